/* test_tune.c - the grid expansion of `bench tune` (fsb_tune_expand, include/fsb/tune.h):
 * the cross product of several keys in order (the last key fastest), what each method keeps
 * and drops, a key given twice, empty items and a trailing comma, dropped values still
 * checked, points that spell the same settings merged, the point length limit at its edge,
 * the grid size limits, and bad values named in the message. The runs themselves are
 * tested end to end (tests/e2e/test_student_smoke.c, test_pipeline.c).
 */
#include "fsb/status.h"
#include "fsb/tune.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Expand `grid` for `method` under the flag "--grid" into points[]; returns the status. */
static int expand(const char *grid, const char *method, char **points, int *n)
{
    for (int i = 0; i < FSB_TUNE_MAX_POINTS; i++)
        points[i] = NULL;
    *n = -1;
    return fsb_tune_expand(grid, method, "--grid", points, n);
}

static void free_points(char **points, int n)
{
    for (int i = 0; i < n; i++)
        free(points[i]);
}

/* The grid expands to exactly want[0..n_want) in that order. */
static void expect_points(const char *grid, const char *method, const char *const *want, int n_want)
{
    char *points[FSB_TUNE_MAX_POINTS];
    int n;
    int st = expand(grid, method, points, &n);
    ck_assert_msg(st == FSB_OK, "%s / %s: %s", method, grid ? grid : "(null)", fsb_error_last());
    ck_assert_msg(n == n_want, "%s / %s: %d points, want %d", method, grid, n, n_want);
    for (int i = 0; i < n; i++)
        ck_assert_msg(!strcmp(points[i], want[i]), "%s / %s: point %d is '%s', want '%s'", method,
                      grid, i, points[i], want[i]);
    free_points(points, n);
}

/* The grid is refused with FSB_EINVAL, no point left, and the message holds the flag and
 * every string of `needles` (NULL-terminated). */
static void expect_error(const char *grid, const char *method, const char *const *needles)
{
    char *points[FSB_TUNE_MAX_POINTS];
    int n;
    int st = expand(grid, method, points, &n);
    ck_assert_msg(st == FSB_EINVAL, "%s / %s: status %d, want FSB_EINVAL", method, grid, st);
    ck_assert_int_eq(n, 0);
    const char *msg = fsb_error_last();
    ck_assert_msg(strstr(msg, "--grid") != NULL, "%s / %s: '%s' does not name --grid", method, grid,
                  msg);
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(msg, needles[i]) != NULL, "%s / %s: '%s' does not name '%s'", method,
                      grid, msg, needles[i]);
}

#define POINTS(...) ((const char *const[]){__VA_ARGS__})
#define N_POINTS(...) ((int)(sizeof POINTS(__VA_ARGS__) / sizeof(const char *)))
#define EXPECT(grid, method, ...)                                                                  \
    expect_points(grid, method, POINTS(__VA_ARGS__), N_POINTS(__VA_ARGS__))
#define REFUSED(grid, method, ...) expect_error(grid, method, POINTS(__VA_ARGS__, NULL))

/* Several keys: the cross product in the order the keys are given, the last key fastest;
 * each point spelled as given. */
START_TEST(cross_product_last_key_fastest)
{
    EXPECT("lr2=0.001|0.01,lambda=0.1|0.3|1,stage2_steps=50", "refilled",
           "lr2=0.001,lambda=0.1,stage2_steps=50", "lr2=0.001,lambda=0.3,stage2_steps=50",
           "lr2=0.001,lambda=1,stage2_steps=50", "lr2=0.01,lambda=0.1,stage2_steps=50",
           "lr2=0.01,lambda=0.3,stage2_steps=50", "lr2=0.01,lambda=1,stage2_steps=50");
    EXPECT("adapt=head|last,sched=const|cosine", "finetune", "adapt=head,sched=const",
           "adapt=head,sched=cosine", "adapt=last,sched=const", "adapt=last,sched=cosine");
    /* one key, one value: one point; no grid (NULL or empty): the defaults, spelled "" */
    EXPECT("bank=4", "refilled", "bank=4");
    EXPECT(NULL, "refilled", "");
    EXPECT("", "finetune", "");
    /* the default grid is the documented one: 3 x 3 for refilled */
    char *points[FSB_TUNE_MAX_POINTS];
    int n;
    ck_assert_int_eq(expand(fsb_tune_default_grid("refilled"), "refilled", points, &n), FSB_OK);
    ck_assert_int_eq(n, 9);
    ck_assert_str_eq(points[0], "lr2=0.001,lambda=0.1");
    ck_assert_str_eq(points[8], "lr2=0.01,lambda=1");
    free_points(points, n);
}
END_TEST

/* What each method keeps: finetune drops the refilled-only keys and merges the points that
 * become equal; the students drop C and norm; svm and logreg keep only C and norm. */
START_TEST(methods_keep_their_keys)
{
    EXPECT("lr2=0.001|0.01,lambda=0.1|0.3|1,stage2_steps=50", "finetune",
           "lr2=0.001,stage2_steps=50", "lr2=0.01,stage2_steps=50");
    EXPECT("stage1_steps=5|10,lr1=0.1,views=3,k1=skip,miner=facenet,margin=0.3,tau1=2,w1=10,"
           "tau2=4,lambda=1,centres_batch=1,lr2=0.01",
           "finetune", "lr2=0.01");
    EXPECT("C=0.1|1,norm=l2n,lr2=0.01|0.1", "refilled", "lr2=0.01", "lr2=0.1");
    EXPECT("C=0.1|1,norm=l2n|cl2n,lr2=0.01|0.1", "svm", "C=0.1,norm=l2n", "C=0.1,norm=cl2n",
           "C=1,norm=l2n", "C=1,norm=cl2n");
    EXPECT("lambda=1,C=10", "logreg", "C=10");
    /* nothing left to vary: one point of the method's defaults */
    EXPECT("lambda=0.1|1", "finetune", "");
    EXPECT("lr2=0.01|0.1", "svm", "");
    EXPECT(fsb_tune_default_grid("svm"), "svm", "C=0.01", "C=0.1", "C=1", "C=10");
}
END_TEST

/* A key given twice is refused, even one the method drops, naming the key. */
START_TEST(key_given_twice_refused)
{
    REFUSED("lr2=0.01,lambda=1,lr2=0.1", "refilled", "lr2 is given twice", "lr2=a|b");
    REFUSED("lambda=1,lr2=0.01,lambda=0.3", "finetune", "lambda is given twice");
    REFUSED("C=1,C=10", "svm", "C is given twice");
    REFUSED("norm=l2n,norm=un", "refilled", "norm is given twice");
    /* a key that begins another is another key */
    EXPECT("bank=4,bank_max=16|32", "refilled", "bank=4,bank_max=16", "bank=4,bank_max=32");
}
END_TEST

/* Items are separated by single commas: a trailing comma ends the grid (the points are those
 * without it); an empty item elsewhere, a missing key or '=', or an empty value is refused. */
START_TEST(commas_and_empty_items)
{
    EXPECT("lr2=0.01|0.1,", "refilled", "lr2=0.01", "lr2=0.1");
    EXPECT("lr2=0.01,lambda=1,", "finetune", "lr2=0.01");
    REFUSED(",lr2=0.01", "refilled", "is not key=value");
    REFUSED("lr2=0.01,,lambda=1", "refilled", "is not key=value");
    REFUSED("lr2", "refilled", "'lr2' is not key=value");
    REFUSED("=0.01", "refilled", "'=0.01' is not key=value");
    REFUSED("lr2=0.01|", "refilled", "lr2 has an empty value");
    REFUSED("lr2=|0.01", "refilled", "lr2 has an empty value");
    REFUSED("lr2=0.01||0.1", "refilled", "lr2 has an empty value");
    REFUSED("lr2=", "refilled", "lr2 has an empty value");
    REFUSED("lambda=0.1||1", "finetune", "lambda has an empty value");
}
END_TEST

/* Values of a key the method drops are checked all the same (alone), so that a typo does not
 * vanish from the grid silently. */
START_TEST(dropped_values_still_checked)
{
    REFUSED("lr2=0.01,lambda=abc", "finetune", "lambda='abc' is not a number");
    REFUSED("lambda=0.3|-1", "finetune", "lambda=-1 is out of range");
    REFUSED("miner=hardest", "finetune", "miner='hardest' is not one of semihard, facenet");
    REFUSED("lr2=0.01,C=0", "refilled", "C=0 is not a number in (0, 1e8]");
    REFUSED("norm=l3n", "finetune", "'l3n' is not a normalisation");
    REFUSED("C=1,lr2=x", "svm", "lr2='x' is not a number", "(svm and logreg read C and norm)");
    REFUSED("C=1,colour=red", "logreg", "unknown key 'colour'", "(svm and logreg read C and norm)");
    REFUSED("typo=1", "finetune", "unknown key 'typo'");
    /* and the kept values, within their point (the cross-key rules too) */
    REFUSED("lr2=0.01|fast", "refilled", "lr2='fast' is not a number");
    REFUSED("C=1|-2", "svm", "C=-2 is not a number in (0, 1e8]");
    REFUSED("momentum=0.9|0", "finetune", "nesterov=1 needs momentum > 0");
}
END_TEST

/* Points that spell the same settings differently are one point, the first spelling kept;
 * so are the points a method's dropped keys told apart. */
START_TEST(same_settings_merged)
{
    EXPECT("lr2=0.01|0.010", "refilled", "lr2=0.01");
    EXPECT("stage2_steps=10|1e1|20", "finetune", "stage2_steps=10", "stage2_steps=20");
    EXPECT("lr2=0.010|0.01|1e-2,lambda=0.3|0.30", "refilled", "lr2=0.010,lambda=0.3");
    EXPECT("lr2=0.003|0.01,adapt=head", "refilled", "lr2=0.003,adapt=head", "lr2=0.01,adapt=head");
    EXPECT("C=1|1.0|10,norm=l2n", "svm", "C=1,norm=l2n", "C=10,norm=l2n");
    EXPECT("lr2=0.01,lambda=0.1|0.3|1", "finetune", "lr2=0.01");
}
END_TEST

/* `len` characters of "key=0.0...0" style padding: a number whose value does not depend on
 * how many zeros follow its digits. */
static void padded(char *buf, const char *item, size_t len)
{
    size_t n = strlen(item);
    memcpy(buf, item, n);
    memset(buf + n, '0', len - n);
    buf[len] = '\0';
}

/* A point names its run folder: up to FSB_TUNE_POINT_NAME_MAX characters are fine, one more
 * is refused, naming the limit. */
START_TEST(overlong_point_refused)
{
    ck_assert_int_eq(FSB_TUNE_POINT_NAME_MAX, 200);
    char a[128], b[128], grid[512];
    padded(a, "lr1=0.01", 100);
    padded(b, "lr2=0.003", 99); /* "a,b": 100 + 1 + 99 = 200 characters */
    snprintf(grid, sizeof grid, "%s,%s", a, b);
    char *points[FSB_TUNE_MAX_POINTS];
    int n;
    ck_assert_int_eq(expand(grid, "refilled", points, &n), FSB_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(points[0], grid);
    free_points(points, n);
    padded(b, "lr2=0.003", 100); /* 201 */
    snprintf(grid, sizeof grid, "%s,%s", a, b);
    REFUSED(grid, "refilled", "is longer than 200 characters");
    /* only the kept keys count: finetune drops lambda, so its point is b alone */
    padded(a, "lambda=0.3", 120);
    snprintf(grid, sizeof grid, "%s,%s", a, b);
    ck_assert_int_eq(expand(grid, "finetune", points, &n), FSB_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(points[0], b);
    free_points(points, n);
    /* a realistic one: every key spelled out at its default */
    REFUSED("stage1_steps=20,lr1=0.01,stage2_steps=100,lr2=0.003,batch=0,augment=1,bank=8,"
            "bank_max=0,crop_lo=0.5,jitter=0,clean_view=1,views=2,k1=views,adapt=head,prefix=1,"
            "miner=semihard,margin=0.2,tau1=4,w1=500,tau2=2,lambda=0.3",
            "refilled", "longer than 200 characters", "give only the keys that vary");
}
END_TEST

/* At most FSB_TUNE_MAX_POINTS points before merging, 16 values per key. */
START_TEST(grid_size_limits)
{
    ck_assert_int_eq(FSB_TUNE_MAX_POINTS, 64);
    char *points[FSB_TUNE_MAX_POINTS];
    int n;
    /* 4 x 4 x 4 = 64: fine */
    ck_assert_int_eq(
        expand("lr2=0.1|0.2|0.3|0.4,bank=1|2|3|4,views=2|3|4|5", "refilled", points, &n), FSB_OK);
    ck_assert_int_eq(n, 64);
    ck_assert_str_eq(points[63], "lr2=0.4,bank=4,views=5");
    free_points(points, n);
    REFUSED("lr2=0.1|0.2|0.3|0.4|0.5,bank=1|2|3|4,views=2|3|4|5", "refilled",
            "more than 64 grid points");
    /* counted before merging */
    REFUSED("lr2=0.1|0.10|0.100|0.1000|0.10000,bank=1|2|3|4,views=2|3|4|5", "refilled",
            "more than 64 grid points");
    REFUSED("bank=1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16|17", "refilled",
            "bank has more than 16 values");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("expand");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, cross_product_last_key_fastest);
    tcase_add_test(tc, methods_keep_their_keys);
    tcase_add_test(tc, key_given_twice_refused);
    tcase_add_test(tc, commas_and_empty_items);
    tcase_add_test(tc, dropped_values_still_checked);
    tcase_add_test(tc, same_settings_merged);
    tcase_add_test(tc, overlong_point_refused);
    tcase_add_test(tc, grid_size_limits);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
