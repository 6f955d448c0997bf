/* test_rng.c - Philox4x32-10 known answers (Random123 kat_vectors) and the draws on it. */
#include "fsb/rng.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

START_TEST(philox_known_answers)
{
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                       {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    static const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        fsb_philox4x32_10(out, ctr[i], key[i]);
        for (int j = 0; j < 4; j++)
            ck_assert_uint_eq(out[j], want[i][j]);
    }
}
END_TEST

START_TEST(stream_is_counter_sequence)
{
    /* word 4*b + j of (key, stream) is out[j] of block b */
    fsb_rng r;
    fsb_rng_init(&r, 0x0123456789abcdefull, 7);
    uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    for (uint32_t b = 0; b < 5; b++) {
        uint32_t ctr[4] = {b, 0, 7, 0}, out[4];
        fsb_philox4x32_10(out, ctr, key);
        for (int j = 0; j < 4; j++)
            ck_assert_uint_eq(fsb_rng_u32(&r), out[j]);
    }
}
END_TEST

START_TEST(streams_differ_and_repeat)
{
    fsb_rng a, b, c;
    fsb_rng_init(&a, 42, 0);
    fsb_rng_init(&b, 42, 1);
    fsb_rng_init(&c, 42, 0);
    int same = 0;
    for (int i = 0; i < 64; i++) {
        uint32_t x = fsb_rng_u32(&a), y = fsb_rng_u32(&b), z = fsb_rng_u32(&c);
        same += x == y;
        ck_assert_uint_eq(x, z);
    }
    ck_assert_int_lt(same, 2);
}
END_TEST

START_TEST(below_is_uniform_and_in_range)
{
    fsb_rng r;
    fsb_rng_init(&r, 1, 2);
    int counts[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        uint32_t v = fsb_rng_below(&r, 7);
        ck_assert_uint_lt(v, 7);
        counts[v]++;
    }
    /* chi-square with 6 dof: 99.99th percentile is about 27.9 */
    double chi = 0;
    for (int k = 0; k < 7; k++)
        chi += (counts[k] - n / 7.0) * (counts[k] - n / 7.0) / (n / 7.0);
    ck_assert_double_lt(chi, 27.9);
    ck_assert_uint_eq(fsb_rng_below(&r, 1), 0);
}
END_TEST

/* pfy(n, m) as docs/episodes.md writes it, replayed by hand on a twin generator: the first m
 * entries are the draws, the whole array stays a permutation, m = 0 draws nothing. */
START_TEST(partial_shuffle_follows_the_spec)
{
    enum { N = 9, M = 4 };
    fsb_rng r, twin;
    fsb_rng_init(&r, 5, 1);
    fsb_rng_init(&twin, 5, 1);
    int a[N], want[N], seen[N] = {0};
    fsb_rng_partial_shuffle(&r, a, N, M);
    for (int j = 0; j < N; j++)
        want[j] = j;
    for (int j = 0; j < M; j++) {
        int p = j + (int)fsb_rng_below(&twin, (uint32_t)(N - j)), t = want[j];
        want[j] = want[p];
        want[p] = t;
    }
    for (int j = 0; j < N; j++) {
        ck_assert_int_eq(a[j], want[j]);
        seen[a[j]]++;
    }
    for (int j = 0; j < N; j++)
        ck_assert_int_eq(seen[j], 1);
    ck_assert_uint_eq(fsb_rng_u32(&r), fsb_rng_u32(&twin)); /* exactly M draws were taken */
    fsb_rng_partial_shuffle(&r, a, N, 0);
    for (int j = 0; j < N; j++)
        ck_assert_int_eq(a[j], j);
    ck_assert_uint_eq(fsb_rng_u32(&r), fsb_rng_u32(&twin));
}
END_TEST

START_TEST(uniform_and_normal_moments)
{
    fsb_rng r;
    fsb_rng_init(&r, 3, 4);
    double s = 0, s2 = 0, us = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = fsb_rng_uniform(&r);
        float f = fsb_rng_uniformf(&r);
        ck_assert(u >= 0 && u < 1);
        ck_assert(f >= 0 && f < 1);
        us += u;
        double z = fsb_rng_normal(&r);
        s += z;
        s2 += z * z;
    }
    ck_assert_double_lt(fabs(us / n - 0.5), 0.005);
    ck_assert_double_lt(fabs(s / n), 0.01);
    ck_assert_double_lt(fabs(s2 / n - 1.0), 0.02);
}
END_TEST

START_TEST(mix64_known_answer)
{
    /* SplitMix64's first output for seed 0 is mix64(0) = 0xE220A8397B1DCDAF */
    ck_assert_uint_eq(fsb_mix64(0), 0xE220A8397B1DCDAFull);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, stream_is_counter_sequence);
    tcase_add_test(tc, streams_differ_and_repeat);
    tcase_add_test(tc, below_is_uniform_and_in_range);
    tcase_add_test(tc, partial_shuffle_follows_the_spec);
    tcase_add_test(tc, uniform_and_normal_moments);
    tcase_add_test(tc, mix64_known_answer);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
