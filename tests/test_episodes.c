/* test_episodes.c - the nested-episode sampler (invariants, nesting, order and thread
 * independence, golden values from tools/episodes_ref.py, an independent implementation of
 * docs/episodes.md), manifests (round trip, byte-identical re-export, every rejection with
 * its line) and `bench episodes`. Splits are built in memory or written as small CSVs.
 */
#include "fsb/dataset.h"
#include "fsb/episodes.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A split held in memory: class k is names[k] (or "cNN"), images "images/<class>_NNN.jpg". */
static void mem_split(fsb_split *s, int n, const char *const *names, const int *counts, uint64_t fp)
{
    memset(s, 0, sizeof *s);
    s->root = strdup("/nowhere");
    s->name = strdup("test");
    s->source = strdup("memory");
    s->n_classes = n;
    s->class_names = calloc((size_t)n, sizeof(char *));
    s->class_start = calloc((size_t)n, sizeof(int));
    s->class_count = calloc((size_t)n, sizeof(int));
    for (int k = 0; k < n; k++) {
        char buf[32];
        snprintf(buf, sizeof buf, "c%02d", k);
        s->class_names[k] = strdup(names ? names[k] : buf);
        s->class_start[k] = s->n_images;
        s->class_count[k] = counts[k];
        s->n_images += counts[k];
    }
    s->paths = calloc((size_t)s->n_images, sizeof(char *));
    s->labels = calloc((size_t)s->n_images, sizeof(int));
    s->src_line = calloc((size_t)s->n_images, sizeof(int));
    for (int k = 0; k < n; k++)
        for (int j = 0; j < counts[k]; j++) {
            char buf[64];
            int i = s->class_start[k] + j;
            snprintf(buf, sizeof buf, "images/%s_%03d.jpg", s->class_names[k], j);
            s->paths[i] = strdup(buf);
            s->labels[i] = k;
        }
    s->fingerprint = fp;
}

/* The split of the golden values: a:4 b:5 c:3 d:6 images, fingerprint 0123456789abcdef. */
static void tiny_split(fsb_split *s)
{
    static const char *const names[] = {"a", "b", "c", "d"};
    mem_split(s, 4, names, (const int[]){4, 5, 3, 6}, 0x0123456789abcdefull);
}

/* 20 classes "c00".."c19" of 45 + (7k mod 30) images, fingerprint deadbeef. */
static void medium_split(fsb_split *s)
{
    int counts[20];
    for (int k = 0; k < 20; k++)
        counts[k] = 45 + (k * 7) % 30;
    mem_split(s, 20, NULL, counts, 0xdeadbeefull);
}

static const int SHOTS[4] = {1, 5, 10, 30};

/* 1 if the episode breaks no invariant: distinct valid classes, every image in its class,
 * no image twice (which covers support/query overlap). Plain ifs: Check's assertions are
 * far too slow for millions of checks. */
static int episode_ok(const fsb_split *s, const fsb_episode *e, unsigned char *seen)
{
    int ok = 1;
    for (int c = 0; c < e->way; c++) {
        int k = e->classes[c];
        if (k < 0 || k >= s->n_classes) return 0;
        for (int d = 0; d < c; d++)
            ok &= e->classes[d] != k;
    }
    memset(seen, 0, (size_t)s->n_images);
    for (int c = 0; c < e->way; c++) {
        int k = e->classes[c], lo = s->class_start[k], hi = lo + s->class_count[k];
        for (int j = 0; j < e->max_shot + e->query; j++) {
            int i = j < e->max_shot ? fsb_episode_support_of(e, c)[j]
                                    : e->queries[c * e->query + j - e->max_shot];
            if (i < lo || i >= hi || s->labels[i] != k || seen[i]) return 0;
            seen[i] = 1;
        }
    }
    return ok;
}

static void check_episode(const fsb_split *s, const fsb_episode *e)
{
    unsigned char *seen = malloc((size_t)s->n_images);
    ck_assert(episode_ok(s, e, seen));
    free(seen);
}

START_TEST(invariants_over_thousands_of_episodes)
{
    fsb_split s;
    medium_split(&s);
    fsb_sweep sw;
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 3, 5, SHOTS, 4, 15, 3000, NULL), FSB_OK);
    long class_hits[20] = {0};
    int bad = 0;
    unsigned char *seen = malloc((size_t)s.n_images);
    for (int i = 0; i < sw.n_episodes; i++) {
        fsb_episode e;
        fsb_sweep_episode(&sw, i, &e);
        bad += !episode_ok(&s, &e, seen);
        for (int c = 0; c < 5; c++)
            class_hits[e.classes[c]]++;
    }
    /* every class is drawn, roughly 3000 * 5 / 20 = 750 times */
    for (int k = 0; k < 20; k++)
        ck_assert(class_hits[k] > 600 && class_hits[k] < 900);
    ck_assert_int_eq(bad, 0);
    free(seen);
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
    /* the extreme case: every class, every image */
    mem_split(&s, 3, NULL, (const int[]){4, 4, 4}, 1);
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 0, 3, (const int[]){3}, 1, 1, 200, NULL), FSB_OK);
    for (int i = 0; i < sw.n_episodes; i++) {
        fsb_episode e;
        fsb_sweep_episode(&sw, i, &e);
        check_episode(&s, &e);
    }
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
}
END_TEST

START_TEST(nested_shots)
{
    fsb_split s;
    medium_split(&s);
    fsb_episode e;
    fsb_episode_params p = {11, 5, 30, 15};
    int *scratch = malloc(sizeof(int) * fsb_episode_scratch_len(&s));
    int idx[5 * 30], lab[5 * 30], q[5 * 15], ql[5 * 15];
    ck_assert_int_eq(fsb_episode_init(&e, 5, 30, 15), FSB_OK);
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        fsb_episode_sample(&e, &s, &p, (uint64_t)i, scratch);
        fsb_episode_queries(&e, q, ql);
        for (int t = 0; t < 4; t++) {
            int k = SHOTS[t];
            fsb_episode_support_k(&e, k, idx, lab);
            for (int c = 0; c < 5; c++)
                for (int j = 0; j < k; j++) {
                    /* the K-shot support is the first K of the one per-class order, */
                    bad += idx[c * k + j] != fsb_episode_support_of(&e, c)[j];
                    bad += lab[c * k + j] != c;
                    /* so it contains the smaller shot's support */
                    bad += t > 0 && j < SHOTS[t - 1] && idx[c * k + j] != e.support[c * 30 + j];
                }
        }
        for (int j = 0; j < 5 * 15; j++)
            bad += q[j] != e.queries[j] || ql[j] != j / 15;
    }
    ck_assert_int_eq(bad, 0);
    /* the shot list below the largest shot does not change the episodes */
    fsb_sweep a, b;
    ck_assert_int_eq(fsb_sweep_generate(&a, &s, 11, 5, SHOTS, 4, 15, 100, NULL), FSB_OK);
    ck_assert_int_eq(fsb_sweep_generate(&b, &s, 11, 5, (const int[]){2, 30}, 2, 15, 100, NULL),
                     FSB_OK);
    ck_assert_mem_eq(a.classes, b.classes, sizeof(int) * 500);
    ck_assert_mem_eq(a.support, b.support, sizeof(int) * 500 * 30);
    ck_assert_mem_eq(a.queries, b.queries, sizeof(int) * 500 * 15);
    /* and generating one episode alone gives the sweep's episode */
    fsb_episode_sample(&e, &s, &p, 42, scratch);
    ck_assert_mem_eq(e.classes, a.classes + 42 * 5, sizeof(int) * 5);
    ck_assert_mem_eq(e.support, a.support + 42 * 5 * 30, sizeof(int) * 150);
    ck_assert_mem_eq(e.queries, a.queries + 42 * 5 * 15, sizeof(int) * 75);
    fsb_sweep_free(&a);
    fsb_sweep_free(&b);
    fsb_episode_free(&e);
    fsb_episode_free(&e);
    free(scratch);
    fsb_split_free(&s);
}
END_TEST

START_TEST(order_and_thread_independence)
{
    fsb_split s;
    medium_split(&s);
    const int n = 500;
    fsb_sweep serial, one, two;
    fsb_pool *p1, *p2;
    ck_assert_int_eq(fsb_pool_create(&p1, 1), FSB_OK);
    ck_assert_int_eq(fsb_pool_create(&p2, 2), FSB_OK);
    ck_assert_int_eq(fsb_sweep_generate(&serial, &s, 5, 5, SHOTS, 4, 15, n, NULL), FSB_OK);
    ck_assert_int_eq(fsb_sweep_generate(&one, &s, 5, 5, SHOTS, 4, 15, n, p1), FSB_OK);
    ck_assert_int_eq(fsb_sweep_generate(&two, &s, 5, 5, SHOTS, 4, 15, n, p2), FSB_OK);
    ck_assert_mem_eq(serial.classes, two.classes, sizeof(int) * n * 5);
    ck_assert_mem_eq(serial.support, one.support, sizeof(int) * n * 5 * 30);
    ck_assert_mem_eq(serial.support, two.support, sizeof(int) * n * 5 * 30);
    ck_assert_mem_eq(serial.queries, two.queries, sizeof(int) * n * 5 * 15);
    /* episode i drawn alone, in reverse order, with a dirty scratch buffer */
    fsb_episode_params p = {5, 5, 30, 15};
    size_t len = fsb_episode_scratch_len(&s);
    int *scratch = malloc(sizeof(int) * len);
    for (size_t j = 0; j < len; j++)
        scratch[j] = -7;
    fsb_episode e, v;
    ck_assert_int_eq(fsb_episode_init(&e, 5, 30, 15), FSB_OK);
    int bad = 0;
    for (int i = n - 1; i >= 0; i--) {
        fsb_episode_sample(&e, &s, &p, (uint64_t)i, scratch);
        fsb_sweep_episode(&serial, i, &v);
        bad += memcmp(e.classes, v.classes, sizeof(int) * 5) != 0;
        bad += memcmp(e.support, v.support, sizeof(int) * 150) != 0;
        bad += memcmp(e.queries, v.queries, sizeof(int) * 75) != 0;
    }
    ck_assert_int_eq(bad, 0);
    /* a different seed, way, shot or query changes the episodes */
    fsb_sweep other;
    ck_assert_int_eq(fsb_sweep_generate(&other, &s, 6, 5, SHOTS, 4, 15, n, NULL), FSB_OK);
    ck_assert(memcmp(other.support, serial.support, sizeof(int) * n * 150) != 0);
    fsb_sweep_free(&other);
    fsb_episode_free(&e);
    free(scratch);
    fsb_sweep_free(&serial);
    fsb_sweep_free(&one);
    fsb_sweep_free(&two);
    fsb_pool_destroy(p1);
    fsb_pool_destroy(p2);
    fsb_split_free(&s);
}
END_TEST

/* Golden values: tools/episodes_ref.py 7 0123456789abcdef 3 2 1 2 a:4 b:5 c:3 d:6
 * (a Python implementation written from docs/episodes.md; its rows piped through
 * xxh128sum give the pinned hash). */
START_TEST(golden_episodes)
{
    fsb_split s;
    tiny_split(&s);
    fsb_episode_params p = {7, 3, 2, 1};
    ck_assert_uint_eq(fsb_episode_key(&p, s.fingerprint), 0xdfaaa8933b6fc615ull);
    fsb_sweep sw;
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 7, 3, (const int[]){1, 2}, 2, 1, 2, NULL), FSB_OK);
    /* starts: a 0, b 4, c 9, d 12 */
    static const int classes[2][3] = {{0, 1, 3}, {0, 2, 3}};
    static const int support[2][3][2] = {{{3, 2}, {4, 7}, {12, 17}}, {{3, 0}, {9, 11}, {12, 14}}};
    static const int queries[2][3] = {{0, 8, 13}, {1, 10, 17}};
    for (int e = 0; e < 2; e++)
        for (int c = 0; c < 3; c++) {
            ck_assert_int_eq(sw.classes[e * 3 + c], classes[e][c]);
            ck_assert_int_eq(sw.support[(e * 3 + c) * 2], support[e][c][0]);
            ck_assert_int_eq(sw.support[(e * 3 + c) * 2 + 1], support[e][c][1]);
            ck_assert_int_eq(sw.queries[e * 3 + c], queries[e][c]);
        }
    char hex[33];
    ck_assert_int_eq(fsb_sweep_hash(&sw, &s, hex), FSB_OK);
    ck_assert_str_eq(hex, "89076ab7f7ed6da5af4c955d325410e6");
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
    /* a bigger sweep, pinned the same way:
     * episodes_ref.py 42 00000000deadbeef 5 5 3 50 c00:45 c01:52 ... (45 + 7k mod 30) */
    medium_split(&s);
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 42, 5, (const int[]){1, 5}, 2, 3, 50, NULL),
                     FSB_OK);
    ck_assert_int_eq(fsb_sweep_hash(&sw, &s, hex), FSB_OK);
    ck_assert_str_eq(hex, "a18e5d1c3640fda92ca37dac2df227da");
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
}
END_TEST

START_TEST(check_errors)
{
    fsb_split s;
    tiny_split(&s);
    fsb_episode_params p = {0, 5, 1, 1};
    ck_assert_int_eq(fsb_episode_check(&s, &p), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--way"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "4 classes"));
    p = (fsb_episode_params){0, 2, 2, 2}; /* class c has only 3 images */
    ck_assert_int_eq(fsb_episode_check(&s, &p), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "class c "));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--query"));
    p = (fsb_episode_params){0, 4, 2, 1};
    ck_assert_int_eq(fsb_episode_check(&s, &p), FSB_OK);
    /* with the caller's flags (pretrain's val episodes) the messages name those */
    const fsb_episode_flags vf = {"--val-way", "--val-shots", "--val-query"};
    p = (fsb_episode_params){0, 2, 2, 2};
    ck_assert_int_eq(fsb_episode_check_flags(&s, &p, &vf), FSB_EINVAL);
    ck_assert_ptr_nonnull(
        strstr(fsb_error_last(), "the largest --val-shots 2 + --val-query 2 = 4"));
    p = (fsb_episode_params){0, 5, 1, 1};
    ck_assert_int_eq(fsb_episode_check_flags(&s, &p, &vf), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--val-way: 5 is more than the 4 classes"));
    fsb_sweep sw;
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 0, 2, (const int[]){3}, 1, 1, 0, NULL),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--episodes"));
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 0, 5, (const int[]){1}, 1, 1, 10, NULL),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--way"));
    ck_assert_ptr_null(sw.classes);
    fsb_split_free(&s);
}
END_TEST

/* --- manifests ------------------------------------------------------------------------- */

/* Replace line `no` (1-based) of the file with `text` (NULL: delete it); a line past the
 * end is appended. */
static void edit_line(const char *path, int no, const char *text)
{
    size_t n;
    char *data = tu_read(path, &n);
    ck_assert_ptr_nonnull(data);
    FILE *fp = fopen(path, "wb");
    char *p = data;
    for (int line = 1; *p; line++) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (line != no)
            fwrite(p, 1, len, fp);
        else if (text)
            fprintf(fp, "%s\n", text);
        p += len;
        if (line == no) text = NULL;
    }
    if (text) fprintf(fp, "%s\n", text);
    fclose(fp);
    free(data);
}

/* Copy `src` to `dst` with line `no` replaced, load it, expect `st` and `needle` in the
 * message (and the "file:line:" prefix when line > 0). */
static void expect_reject(const fsb_split *s, const char *src, const char *dst, int no,
                          const char *text, int st, const char *needle, int line)
{
    size_t n;
    char *data = tu_read(src, &n);
    FILE *fp = fopen(dst, "wb");
    fwrite(data, 1, n, fp);
    fclose(fp);
    free(data);
    edit_line(dst, no, text);
    fsb_sweep sw;
    ck_assert_int_eq(fsb_episodes_load(&sw, s, dst, NULL), st);
    ck_assert_msg(strstr(fsb_error_last(), needle), "'%s' not in '%s'", needle, fsb_error_last());
    if (line > 0) {
        char where[4200];
        snprintf(where, sizeof where, "%s:%d:", dst, line);
        ck_assert_msg(strstr(fsb_error_last(), where), "'%s' not in '%s'", where, fsb_error_last());
    }
    ck_assert_ptr_null(sw.classes);
}

START_TEST(manifest_round_trip)
{
    char *dir = tu_tmpdir();
    char *a = tu_path(dir, "a.csv"), *b = tu_path(dir, "b.csv");
    fsb_split s;
    medium_split(&s);
    fsb_sweep sw, back;
    char h1[33], h2[33], h3[33];
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 9, 5, SHOTS, 4, 15, 40, NULL), FSB_OK);
    ck_assert_int_eq(fsb_episodes_export(&sw, &s, a, h1), FSB_OK);
    ck_assert_int_eq(fsb_sweep_hash(&sw, &s, h2), FSB_OK);
    ck_assert_str_eq(h1, h2);
    int differs = -1;
    ck_assert_int_eq(fsb_episodes_load(&back, &s, a, &differs), FSB_OK);
    ck_assert_int_eq(differs, 0);
    ck_assert_str_eq(back.generator, FSB_EPISODES_GENERATOR);
    ck_assert_str_eq(back.split, "test");
    ck_assert_uint_eq(back.seed, 9);
    ck_assert_uint_eq(back.fingerprint, s.fingerprint);
    ck_assert_int_eq(back.way, 5);
    ck_assert_int_eq(back.query, 15);
    ck_assert_int_eq(back.n_shots, 4);
    ck_assert_mem_eq(back.shots, SHOTS, sizeof SHOTS);
    ck_assert_int_eq(back.max_shot, 30);
    ck_assert_int_eq(back.n_episodes, 40);
    ck_assert_mem_eq(back.classes, sw.classes, sizeof(int) * 40 * 5);
    ck_assert_mem_eq(back.support, sw.support, sizeof(int) * 40 * 5 * 30);
    ck_assert_mem_eq(back.queries, sw.queries, sizeof(int) * 40 * 5 * 15);
    ck_assert_int_eq(fsb_episodes_export(&back, &s, b, h3), FSB_OK);
    ck_assert(tu_same_file(a, b));
    ck_assert_str_eq(h1, h3);
    fsb_sweep_free(&back);
    /* the header: format, hash, and the hash is that of the rows (xxh128sum agrees) */
    char *text = tu_read(a, NULL);
    const char *head = "# format=fsbench-episodes/1\n# generator=fsb-nested-philox/1\n"
                       "# seed=9\n# split=test\n# fingerprint=00000000deadbeef\n# way=5\n"
                       "# shots=1,5,10,30\n# query=15\n# episodes=40\n# hash=xxh3-128:";
    ck_assert(strncmp(text, head, strlen(head)) == 0);
    ck_assert(strncmp(text + strlen(head), h1, 32) == 0);
    ck_assert_ptr_nonnull(strstr(text, "\nepisode,label,class,role,rank,file\n0,0,"));
    free(text);
    char *out = NULL;
    ck_assert_int_eq(tu_run(&out, "grep -v '^#' '%s' | xxh128sum", a), 0);
    ck_assert(strncmp(out, h1, 32) == 0);
    free(out);
    /* CRLF line ends load to the same episodes */
    ck_assert_int_eq(tu_run(NULL, "sed 's/$/\\r/' '%s' > '%s'", a, b), 0);
    ck_assert_int_eq(fsb_episodes_load(&back, &s, b, NULL), FSB_OK);
    ck_assert_mem_eq(back.support, sw.support, sizeof(int) * 40 * 5 * 30);
    fsb_sweep_free(&back);
    /* a gzip-compressed manifest loads to the same episodes and names its split; a truncated
     * one is refused naming the file */
    char *gz = tu_path(dir, "a.csv.gz"), *cut = tu_path(dir, "cut.csv.gz"), name[16];
    ck_assert_int_eq(tu_run(NULL, "gzip -9 -n -c '%s' > '%s'", a, gz), 0);
    ck_assert_int_eq(fsb_episodes_load(&back, &s, gz, NULL), FSB_OK);
    ck_assert_mem_eq(back.support, sw.support, sizeof(int) * 40 * 5 * 30);
    fsb_sweep_free(&back);
    ck_assert_int_eq(fsb_episodes_manifest_split(gz, name, sizeof name), FSB_OK);
    ck_assert_str_eq(name, "test");
    ck_assert_int_eq(tu_run(NULL, "head -c 3000 '%s' > '%s'", gz, cut), 0);
    ck_assert_int_eq(fsb_episodes_load(&back, &s, cut, NULL), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "cut.csv.gz: corrupt or truncated gzip"));
    free(gz);
    free(cut);
    /* another fingerprint: still loads by name, and says so */
    s.fingerprint ^= 1;
    ck_assert_int_eq(fsb_episodes_load(&back, &s, a, &differs), FSB_OK);
    ck_assert_int_eq(differs, 1);
    ck_assert_mem_eq(back.queries, sw.queries, sizeof(int) * 40 * 5 * 15);
    ck_assert_uint_eq(back.fingerprint, 0xdeadbeefull);
    fsb_sweep_free(&back);
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
    tu_rmrf(dir);
    free(a);
    free(b);
    free(dir);
}
END_TEST

START_TEST(manifest_rejections)
{
    char *dir = tu_tmpdir();
    char *a = tu_path(dir, "a.csv"), *b = tu_path(dir, "b.csv");
    fsb_split s;
    tiny_split(&s);
    fsb_sweep sw;
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 7, 3, (const int[]){1, 2}, 2, 1, 2, NULL), FSB_OK);
    ck_assert_int_eq(fsb_episodes_export(&sw, &s, a, NULL), FSB_OK);
    fsb_sweep_free(&sw);
    /* lines: 1-10 header, 11 columns, 12.. rows; episode 0 = lines 12-20:
     * 12 0,0,a,support,0,a_003.jpg  13 0,0,a,support,1,a_002.jpg  14 0,0,a,query,0,a_000.jpg
     * 15 0,1,b,support,0,b_000.jpg ... 18 0,2,d,support,0,d_000.jpg ... 29 = last row */
    char *text = tu_read(a, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\n0,0,a,support,0,a_003.jpg\n0,0,a,support,1,a_002.jpg\n"
                                       "0,0,a,query,0,a_000.jpg\n0,1,b,support,0,b_000.jpg\n"));
    free(text);
    expect_reject(&s, a, b, 13, "0,0,a,support,1,zz.jpg", FSB_ENOTFOUND, "image 'zz.jpg'", 13);
    expect_reject(&s, a, b, 15, "0,1,e,support,0,b_000.jpg", FSB_ENOTFOUND, "class 'e'", 15);
    expect_reject(&s, a, b, 16, "0,1,a,support,1,a_001.jpg", FSB_EFORMAT, "differs", 16);
    /* support/query overlap and a repeated image */
    expect_reject(&s, a, b, 14, "0,0,a,query,0,a_003.jpg", FSB_EFORMAT, "used twice", 14);
    /* a class twice in one episode */
    expect_reject(&s, a, b, 15, "0,1,a,support,0,a_000.jpg", FSB_EFORMAT, "appears twice", 15);
    /* missing, repeated, out-of-order and extra rows */
    expect_reject(&s, a, b, 13, NULL, FSB_EFORMAT, "expected episode 0 label 0 support rank 1", 13);
    expect_reject(&s, a, b, 14, "0,0,a,support,1,a_002.jpg", FSB_EFORMAT, "out of order", 14);
    expect_reject(&s, a, b, 29, NULL, FSB_EFORMAT, "rows end early", 29);
    expect_reject(&s, a, b, 30, "2,0,a,support,0,a_000.jpg", FSB_EFORMAT, "extra row", 30);
    expect_reject(&s, a, b, 12, "0,0,a,support,0", FSB_EFORMAT, "not a row", 12);
    expect_reject(&s, a, b, 12, "00,0,a,support,0,a_003.jpg", FSB_EFORMAT, "not a row", 12);
    /* a valid-looking edit (another image of the class) is caught by the hash */
    expect_reject(&s, a, b, 12, "0,0,a,support,0,a_001.jpg", FSB_EMISMATCH, "hash mismatch", 10);
    /* a corrupted hash, and other header damage */
    expect_reject(&s, a, b, 10, "# hash=xxh3-128:00000000000000000000000000000000", FSB_EMISMATCH,
                  "hash mismatch", 10);
    expect_reject(&s, a, b, 10, "# hash=xxh3-128:1234", FSB_EFORMAT, "hash", 10);
    expect_reject(&s, a, b, 10, NULL, FSB_EFORMAT, "'hash' is missing", 0);
    expect_reject(&s, a, b, 1, "# format=fsbench-episodes/2", FSB_EFORMAT, "format", 1);
    expect_reject(&s, a, b, 3, "# colour=blue", FSB_EFORMAT, "unknown header key 'colour'", 3);
    expect_reject(&s, a, b, 3, "# way=3", FSB_EFORMAT, "'way' repeats line 3", 6);
    expect_reject(&s, a, b, 6, "# way=5", FSB_EINVAL, "way 5 is more than the 4 classes", 6);
    expect_reject(&s, a, b, 7, "# shots=2,1", FSB_EFORMAT, "shots", 7);
    expect_reject(&s, a, b, 7, "# shots=1,3", FSB_EFORMAT, "support rank 2", 14);
    expect_reject(&s, a, b, 9, "# episodes=3", FSB_EFORMAT, "rows end early", 30);
    expect_reject(&s, a, b, 9, "# episodes=1000000", FSB_EFORMAT, "more than the", 9);
    expect_reject(&s, a, b, 11, "episode,label,class,role,rank", FSB_EFORMAT, "column row", 11);
    /* found by tests/fuzz/fuzz_manifest: a generator or split name with a comma or a carriage
     * return loaded (the header is not hashed) but could not be exported again, so `bench run
     * --episodes` failed writing episodes.csv; such names are refused on load */
    expect_reject(&s, a, b, 2, "# generator=fs,support", FSB_EFORMAT, "generator", 2);
    expect_reject(&s, a, b, 4, "# split=te\rst", FSB_EFORMAT, "without commas", 4);
    fsb_sweep none;
    ck_assert_int_lt(fsb_episodes_load(&none, &s, "/nonexistent/m.csv", NULL), 0);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "/nonexistent/m.csv"));
    /* the split named in a header */
    char name[64];
    ck_assert_int_eq(fsb_episodes_manifest_split(a, name, sizeof name), FSB_OK);
    ck_assert_str_eq(name, "test");
    tu_write_str(dir, "c.csv", "filename,label\n");
    char *c = tu_path(dir, "c.csv");
    ck_assert_int_eq(fsb_episodes_manifest_split(c, name, sizeof name), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "c.csv"));
    /* --episodes: a count or an existing manifest */
    long count = 0;
    int is_path = -1;
    ck_assert_int_eq(fsb_episodes_parse_arg("--episodes", "600", &count, &is_path), FSB_OK);
    ck_assert_int_eq(count, 600);
    ck_assert_int_eq(is_path, 0);
    ck_assert_int_eq(fsb_episodes_parse_arg("--episodes", a, &count, &is_path), FSB_OK);
    ck_assert_int_eq(is_path, 1);
    ck_assert_int_eq(fsb_episodes_parse_arg("--episodes", "0", &count, &is_path), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--episodes"));
    ck_assert_int_eq(fsb_episodes_parse_arg("--episodes", "9999999", &count, &is_path), FSB_EINVAL);
    ck_assert_int_eq(fsb_episodes_parse_arg("--episodes", "nope.csv", &count, &is_path),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--episodes: 'nope.csv'"));
    fsb_split_free(&s);
    tu_rmrf(dir);
    free(a);
    free(b);
    free(c);
    free(dir);
}
END_TEST

/* The worked example of docs/episodes.md section 5, through the real CSV reader. */
START_TEST(doc_worked_example)
{
    char *root = tu_tmpdir(), *m = tu_path(root, "m.csv");
    char csv[2048] = "filename,label\n";
    const char *names[4] = {"a", "b", "c", "d"};
    const int counts[4] = {4, 5, 3, 6};
    for (int k = 3; k >= 0; k--) /* listed out of order on purpose */
        for (int j = 0; j < counts[k]; j++)
            snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%s_%03d.jpg,%s\n", names[k], j,
                     names[k]);
    tu_write_str(root, "split/test.csv", csv);
    fsb_split s;
    fsb_sweep sw;
    char hex[33];
    ck_assert_int_eq(fsb_split_open(&s, root, "test"), FSB_OK);
    ck_assert_uint_eq(s.fingerprint, 0x85795a054e3b47b8ull);
    fsb_episode_params p = {7, 3, 2, 1};
    ck_assert_uint_eq(fsb_episode_key(&p, s.fingerprint), 0xf7cddeae30ddbfa7ull);
    ck_assert_int_eq(fsb_sweep_generate(&sw, &s, 7, 3, (const int[]){1, 2}, 2, 1, 2, NULL), FSB_OK);
    ck_assert_int_eq(fsb_episodes_export(&sw, &s, m, hex), FSB_OK);
    ck_assert_str_eq(hex, "5f775d52a52aa1e9ecd0738fb3160531");
    char *text = tu_read(m, NULL);
    ck_assert_ptr_nonnull(strstr(text, "# fingerprint=85795a054e3b47b8\n"));
    ck_assert_ptr_nonnull(strstr(text, "episode,label,class,role,rank,file\n"
                                       "0,0,a,support,0,a_000.jpg\n0,0,a,support,1,a_001.jpg\n"
                                       "0,0,a,query,0,a_002.jpg\n0,1,b,support,0,b_001.jpg\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n1,2,d,query,0,d_001.jpg\n"));
    free(text);
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
    tu_rmrf(root);
    free(root);
    free(m);
}
END_TEST

/* --- bench episodes -------------------------------------------------------------------- */

/* ROOT/split/test.csv: 6 classes n000..n005 of 50 images, listed in a scrambled order. */
static char *csv_dataset(void)
{
    char *dir = tu_tmpdir();
    size_t cap = 64 + 6 * 50 * 40, used = 0;
    char *csv = malloc(cap);
    used += (size_t)snprintf(csv, cap, "filename,label\n");
    for (int j = 49; j >= 0; j--)
        for (int k = 0; k < 6; k++)
            used += (size_t)snprintf(csv + used, cap - used, "n%03d%05d.jpg,n%03d\n", k, j, k);
    tu_write_str(dir, "split/test.csv", csv);
    free(csv);
    return dir;
}

START_TEST(cli_generate_and_replay)
{
    char *root = csv_dataset(), *out = NULL;
    const char *bench = tu_bench();
    ck_assert_int_eq(tu_run(&out,
                            "cd '%s' && '%s' episodes --data . --split test --way 5 --shots "
                            "1,5,10,30 --query 15 --episodes 60 --seed 0 --export a.csv "
                            "--threads 2",
                            root, bench),
                     0);
    ck_assert_msg(strstr(out, "episodes 60") && strstr(out, "hash xxh3-128:"), "%s", out);
    free(out);
    ck_assert_int_eq(tu_run(&out,
                            "cd '%s' && '%s' episodes --data . --way 5 --episodes 60 "
                            "--export b.csv --threads 1",
                            root, bench),
                     0);
    free(out);
    char *a = tu_path(root, "a.csv"), *b = tu_path(root, "b.csv"), *c = tu_path(root, "c.csv");
    ck_assert(tu_same_file(a, b));
    ck_assert_int_eq(tu_run(&out,
                            "cd '%s' && '%s' episodes --data . --episodes a.csv "
                            "--export c.csv",
                            root, bench),
                     0);
    free(out);
    ck_assert(tu_same_file(a, c));
    /* the manifest maps onto the split as listed in the CSV */
    fsb_split s;
    fsb_sweep sw;
    ck_assert_int_eq(fsb_split_open(&s, root, "test"), FSB_OK);
    ck_assert_int_eq(fsb_episodes_load(&sw, &s, a, NULL), FSB_OK);
    ck_assert_int_eq(sw.n_episodes, 60);
    for (int i = 0; i < 60; i++) {
        fsb_episode e;
        fsb_sweep_episode(&sw, i, &e);
        check_episode(&s, &e);
    }
    fsb_sweep_free(&sw);
    fsb_split_free(&s);
    /* another listing of the same classes with one image more: warned, still replayed */
    char *root2 = csv_dataset();
    ck_assert_int_eq(tu_run(NULL, "echo n00500050.jpg,n005 >> '%s/split/test.csv'", root2), 0);
    ck_assert_int_eq(tu_run(&out, "'%s' episodes --data '%s' --episodes '%s'", bench, root2, a), 0);
    ck_assert_msg(strstr(out, "warning") && strstr(out, "fingerprint"), "%s", out);
    free(out);
    tu_rmrf(root2);
    free(root2);
    tu_rmrf(root);
    free(root);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(cli_bad_flags)
{
    char *root = csv_dataset(), *out = NULL;
    const char *bench = tu_bench();
    static const char *const bad_shots[] = {"1,x", "0", "-1", "1,,5", "", "5,5", "1.5"};
    for (size_t i = 0; i < sizeof bad_shots / sizeof *bad_shots; i++) {
        ck_assert_int_eq(
            tu_run(&out, "'%s' episodes --data '%s' --shots '%s'", bench, root, bad_shots[i]), 2);
        ck_assert_msg(strstr(out, "--shots"), "%s: %s", bad_shots[i], out);
        free(out);
    }
    struct {
        const char *flags, *needle;
        int code;
    } cases[] = {
        {"--way 7", "--way", 2},
        {"--way 0", "--way", 2},
        {"--shots 1,40 --query 15", "class n000", 2},
        {"--query -1", "--query", 2},
        {"--episodes 0", "--episodes", 2},
        {"--episodes missing.csv", "--episodes", 2},
        {"--seed x", "--seed", 2},
        {"--threads -2", "--threads", 2},
        {"--colour blue", "--colour", 2},
        {"--split val", "val", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ck_assert_int_eq(tu_run(&out, "'%s' episodes --data '%s' %s", bench, root, cases[i].flags),
                         cases[i].code);
        ck_assert_msg(strstr(out, cases[i].needle), "%s: %s", cases[i].flags, out);
        free(out);
    }
    ck_assert_int_eq(tu_run(&out, "'%s' episodes --way 5", bench), 2);
    ck_assert_ptr_nonnull(strstr(out, "--data"));
    free(out);
    /* a manifest fixes the sampler flags */
    ck_assert_int_eq(
        tu_run(&out, "cd '%s' && '%s' episodes --data . --episodes 3 --export m.csv", root, bench),
        0);
    free(out);
    ck_assert_int_eq(
        tu_run(&out, "cd '%s' && '%s' episodes --data . --episodes m.csv --way 3", root, bench), 2);
    ck_assert_ptr_nonnull(strstr(out, "--way cannot be combined"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' episodes --help", bench), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: bench episodes"));
    free(out);
    tu_rmrf(root);
    free(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("episodes");
    TCase *tc = tcase_create("episodes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, invariants_over_thousands_of_episodes);
    tcase_add_test(tc, nested_shots);
    tcase_add_test(tc, order_and_thread_independence);
    tcase_add_test(tc, golden_episodes);
    tcase_add_test(tc, check_errors);
    tcase_add_test(tc, manifest_round_trip);
    tcase_add_test(tc, manifest_rejections);
    tcase_add_test(tc, doc_worked_example);
    tcase_add_test(tc, cli_generate_and_replay);
    tcase_add_test(tc, cli_bad_flags);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
