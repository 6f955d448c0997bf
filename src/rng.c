/* rng.c - Philox4x32-10 and the draws built on it (see include/fsb/rng.h).
 * Constants and round structure follow Random123 (Salmon et al. 2011); the known-answer
 * vectors in tests/test_rng.c come from its kat_vectors file.
 */
#include "fsb/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void fsb_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint64_t fsb_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void fsb_rng_init(fsb_rng *r, uint64_t key, uint64_t stream)
{
    r->key[0] = (uint32_t)key;
    r->key[1] = (uint32_t)(key >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    r->used = 4;
}

uint32_t fsb_rng_u32(fsb_rng *r)
{
    if (r->used == 4) {
        fsb_philox4x32_10(r->buf, r->ctr, r->key);
        if (++r->ctr[0] == 0) ++r->ctr[1];
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t fsb_rng_u64(fsb_rng *r)
{
    uint64_t a = fsb_rng_u32(r);
    uint64_t b = fsb_rng_u32(r);
    return b << 32 | a;
}

uint32_t fsb_rng_below(fsb_rng *r, uint32_t n)
{
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint64_t m = (uint64_t)fsb_rng_u32(r) * n;
        if ((uint32_t)m >= threshold) return (uint32_t)(m >> 32);
    }
}

double fsb_rng_uniform(fsb_rng *r)
{
    return (double)(fsb_rng_u64(r) >> 11) * 0x1.0p-53;
}

float fsb_rng_uniformf(fsb_rng *r)
{
    return (float)(fsb_rng_u32(r) >> 8) * 0x1.0p-24f;
}

void fsb_rng_partial_shuffle(fsb_rng *r, int *a, int n, int m)
{
    for (int j = 0; j < n; j++)
        a[j] = j;
    for (int j = 0; j < m; j++) {
        int pick = j + (int)fsb_rng_below(r, (uint32_t)(n - j));
        int t = a[j];
        a[j] = a[pick];
        a[pick] = t;
    }
}

double fsb_rng_normal(fsb_rng *r)
{
    double u1 = 1.0 - fsb_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = fsb_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
