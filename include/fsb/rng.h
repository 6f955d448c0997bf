/* rng.h - counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
 *
 * A generator is a pure function of (key, counter): the same key and stream give the
 * same sequence on every machine, thread and build, and any position can be reached
 * without replaying earlier draws. No global state: every consumer owns an fsb_rng.
 * The integer and uniform draws are exact integer arithmetic; fsb_rng_normal goes through
 * libm's log and cos, which glibc may implement differently per CPU, so its last bits
 * (ResNet-12's initial weights) are only as portable as libm.
 */
#ifndef FSB_RNG_H
#define FSB_RNG_H

#include <stdint.h>

typedef struct fsb_rng {
    uint32_t key[2]; /* Philox key: low/high words of the 64-bit key */
    uint32_t ctr[4]; /* ctr[0..1]: 64-bit block index; ctr[2..3]: 64-bit stream id */
    uint32_t buf[4]; /* the current output block */
    unsigned used;   /* words of buf already handed out (4 = need a new block) */
} fsb_rng;

/* The raw bijection: out = Philox4x32 with 10 rounds of (ctr, key). */
void fsb_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* SplitMix64's finaliser: a fixed bijective 64-bit mix, used to derive keys from ids. */
uint64_t fsb_mix64(uint64_t x);

/* Start the sequence (key, stream) at block 0. Words are drawn from each block in order
 * out[0], out[1], out[2], out[3]; then the 64-bit block index increments. */
void fsb_rng_init(fsb_rng *r, uint64_t key, uint64_t stream);

uint32_t fsb_rng_u32(fsb_rng *r);
/* Two consecutive u32 draws a, b give (uint64_t)b << 32 | a. */
uint64_t fsb_rng_u64(fsb_rng *r);
/* Uniform integer in [0, n), n >= 1, unbiased (Lemire's multiply with rejection of
 * x*n mod 2^32 < (2^32 - n) mod n). */
uint32_t fsb_rng_below(fsb_rng *r, uint32_t n);
/* Uniform double in [0, 1) with 53 random bits: (u64 >> 11) * 2^-53. */
double fsb_rng_uniform(fsb_rng *r);
/* Uniform float in [0, 1) with 24 random bits: (u32 >> 8) * 2^-24. */
float fsb_rng_uniformf(fsb_rng *r);
/* Standard normal (Box-Muller on two uniform doubles, first output only). */
double fsb_rng_normal(fsb_rng *r);
/* Partial Fisher-Yates pfy(n, m), 0 <= m <= n (docs/episodes.md): a[0..n) is set to the
 * identity, then for j = 0 .. m-1 a[j] is swapped with a[j + fsb_rng_below(r, n - j)].
 * a[0..m) is then m distinct values of [0, n) in draw order; m draws, a has n ints. */
void fsb_rng_partial_shuffle(fsb_rng *r, int *a, int n, int m);

#endif
