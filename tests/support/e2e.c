/* e2e.c - shared set-up of the end-to-end suites (see e2e.h). */
#define _GNU_SOURCE /* memrchr */
#include "e2e.h"
#include "fixtures.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tu_e2e_make(tu_e2e *e, const char *pretrain_flags)
{
    e->root = tu_tmpdir();
    e->work = tu_tmpdir();
    int n_classes[3] = {4, 3, 5};
    fx_make_ravi(e->root, n_classes, 12, 32);
    e->teacher = tu_path(e->work, "teacher.fsbt");
    char *out = NULL;
    int rc =
        tu_run(&out, "'%s' pretrain --data '%s' --cache '%s/cache' %s" TU_E2E_IMG " --out '%s'",
               tu_bench(), e->root, e->work, pretrain_flags, e->teacher);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    ck_assert_int_eq(rc, 0);
    free(out);
}

void tu_e2e_free(tu_e2e *e)
{
    tu_rmrf(e->root);
    tu_rmrf(e->work);
    free(e->root);
    free(e->work);
    free(e->teacher);
    e->root = e->work = e->teacher = NULL;
}

char *tu_drop_last_column(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *comma = memrchr(line, ',', len);
        size_t keep = comma ? (size_t)(comma - line) : len;
        memcpy(o, line, keep);
        o += keep;
        *o++ = '\n';
        line += len + (nl != NULL);
    }
    *o = '\0';
    return out;
}

char *tu_results_without_timing(const char *dir)
{
    char *path = tu_path(dir, "per_episode.csv"), *text = tu_read(path, NULL);
    ck_assert_msg(text != NULL, "%s missing", path);
    char *a = tu_drop_last_column(text), *b = tu_drop_last_column(a);
    free(text);
    free(a);
    free(path);
    return b;
}

char *tu_rows_at(const char *dir, const char *method, int shot, int *n)
{
    char *all = tu_results_without_timing(dir), *out = malloc(strlen(all) + 1), *o = out;
    ck_assert_ptr_nonnull(out);
    *n = 0;
    for (const char *line = all; *line;) {
        size_t len = strcspn(line, "\n");
        /* episode,shot,method,...: the shot follows the first comma, the method the second */
        const char *c1 = memchr(line, ',', len),
                   *c2 = c1 ? memchr(c1 + 1, ',', len - (size_t)(c1 + 1 - line)) : NULL;
        size_t ml = strlen(method);
        if (c2 && c2 + 1 + ml < line + len && !strncmp(c2 + 1, method, ml) && c2[1 + ml] == ',' &&
            (shot == 0 || atoi(c1 + 1) == shot)) {
            memcpy(o, line, len + 1);
            o += len + 1;
            (*n)++;
        }
        line += len + (line[len] == '\n');
    }
    *o = '\0';
    free(all);
    return out;
}

const char *tu_mpirun_prefix(const char **why)
{
#ifndef FSB_HAVE_MPI
    *why = "this build has no MPI support (configure with -DFSB_MPI=ON)";
    return NULL;
#else
    if (tu_run(NULL, "command -v mpirun >/dev/null 2>&1") != 0) {
        *why = "mpirun is not installed (apt-get install openmpi-bin)";
        return NULL;
    }
    return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
           "OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --oversubscribe "
           "--bind-to none";
#endif
}

char *tu_file_value(const char *dir, const char *file, const char *key)
{
    char *path = tu_path(dir, file), *text = tu_read(path, NULL), line[128];
    ck_assert_msg(text != NULL, "%s missing", path);
    snprintf(line, sizeof line, "\n%s=", key);
    const char *p = strstr(text, line);
    ck_assert_msg(p != NULL, "%s: no %s", path, key);
    p += strlen(line);
    char *v = strndup(p, strcspn(p, "\n"));
    free(text), free(path);
    return v;
}
