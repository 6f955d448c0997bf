/* test_journal.c - the resumable-run journal: replay, torn tails, corrupt records. */
#include "fsb/journal.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char seen[16][64]; /* payloads replayed */
    int n;             /* how many */
    int fail_at;       /* line to reject (0 = none) */
} collect;

static int collect_fn(void *ctx, const char *payload, int line)
{
    collect *c = ctx;
    if (line == c->fail_at) return fsb_error(FSB_EFORMAT, "bad record '%s'", payload);
    snprintf(c->seen[c->n++], 64, "%s", payload);
    return FSB_OK;
}

/* dir/j.log holding the records (NULL-terminated list), closed; malloc'd path. */
static char *journal_of(const char *dir, const char *const *payloads)
{
    char *path = tu_path(dir, "j.log");
    fsb_journal j;
    ck_assert_int_eq(fsb_journal_open(&j, path, NULL, NULL), FSB_OK);
    for (; *payloads; payloads++)
        ck_assert_int_eq(fsb_journal_append(&j, *payloads), FSB_OK);
    fsb_journal_close(&j);
    return path;
}

START_TEST(append_and_replay)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "j.log");
    fsb_journal j;
    collect c = {0};
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_OK);
    ck_assert_int_eq(c.n, 0);
    ck_assert_int_eq(fsb_journal_append(&j, "ep=0,acc=0.5"), FSB_OK);
    ck_assert_int_eq(fsb_journal_append(&j, "ep=1,acc=0.75"), FSB_OK);
    fsb_journal_close(&j);
    char *text = tu_read(path, NULL);
    ck_assert_ptr_nonnull(strstr(text, "ep=0,acc=0.5\t"));
    free(text);
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_OK);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.seen[1], "ep=1,acc=0.75");
    ck_assert_int_eq(fsb_journal_append(&j, "ep=2"), FSB_OK);
    fsb_journal_close(&j);
    c.n = 0;
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_OK);
    ck_assert_int_eq(c.n, 3);
    fsb_journal_close(&j);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(torn_and_corrupt_tails_are_cut)
{
    char *dir = tu_tmpdir();
    char *path = journal_of(dir, (const char *const[]){"a", "b", NULL});
    fsb_journal j;
    collect c = {0};
    size_t good;
    free(tu_read(path, &good));
    /* a kill -9 in the middle of a write leaves a partial line */
    FILE *fp = fopen(path, "a");
    fputs("c\t1234", fp);
    fclose(fp);
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_OK);
    ck_assert_int_eq(c.n, 2);
    fsb_journal_close(&j);
    size_t n;
    free(tu_read(path, &n));
    ck_assert_uint_eq(n, good);
    /* a flipped byte in the last record: that record and everything after are dropped */
    char *text = tu_read(path, &n);
    text[n - 11] ^= 1; /* the payload byte of "b\t<crc>\n" */
    tu_write_str(dir, "j.log", text);
    free(text);
    c.n = 0;
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_OK);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.seen[0], "a");
    fsb_journal_close(&j);
    /* a record the caller rejects is an error naming the file and line */
    c.n = 0;
    c.fail_at = 1;
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "j.log: line 1: bad record 'a'"));
    /* an unwritable location */
    char *bad = tu_path(dir, "missing/j.log");
    ck_assert_int_eq(fsb_journal_open(&j, bad, NULL, NULL), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "missing/j.log"));
    free(bad);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* One writer at a time: a second open fails naming the file until the first is closed. */
START_TEST(one_writer_at_a_time)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "j.log");
    fsb_journal a, b;
    ck_assert_int_eq(fsb_journal_open(&a, path, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_journal_open(&b, path, NULL, NULL), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "j.log: in use by another bench process"));
    fsb_journal_close(&a);
    ck_assert_int_eq(fsb_journal_open(&b, path, NULL, NULL), FSB_OK);
    fsb_journal_close(&b);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* Damage with intact records after it is not a torn tail: an error naming the line, and the
 * file is left as it was (nothing after it is thrown away). */
START_TEST(damage_before_records_is_an_error)
{
    char *dir = tu_tmpdir();
    char *path = journal_of(dir, (const char *const[]){"a", "b", "c", NULL});
    fsb_journal j;
    size_t n, n2;
    char *text = tu_read(path, &n);
    text[11] ^= 1; /* the payload byte of line 2, "b\t<crc>\n" after "a\t<crc>\n" */
    tu_write_str(dir, "j.log", text);
    collect c = {0};
    ck_assert_int_eq(fsb_journal_open(&j, path, collect_fn, &c), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "j.log: line 2 is damaged"));
    char *after = tu_read(path, &n2);
    ck_assert_uint_eq(n2, n);
    ck_assert(memcmp(after, text, n) == 0);
    ck_assert_int_eq(fsb_journal_replay(path, NULL, NULL), FSB_EFORMAT);
    free(after);
    free(text);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("journal");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, append_and_replay);
    tcase_add_test(tc, torn_and_corrupt_tails_are_cut);
    tcase_add_test(tc, damage_before_records_is_an_error);
    tcase_add_test(tc, one_writer_at_a_time);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
