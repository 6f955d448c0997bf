/* cli.c - strict parsing of flag values for `bench` (see cli.h). */
#include "cli.h"
#include "fsb/method.h"
#include "fsb/model.h"
#include "fsb/status.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int fsb_cli_int(const char *flag, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
        return fsb_error(FSB_EINVAL, "%s: '%s' is not a whole number", flag, text);
    if (v < lo || v > hi)
        return fsb_error(FSB_EINVAL, "%s: %ld is out of range [%ld, %ld]", flag, v, lo, hi);
    *out = v;
    return FSB_OK;
}

int fsb_cli_double(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
        return fsb_error(FSB_EINVAL, "%s: '%s' is not a number", flag, text);
    if (v < lo || v > hi)
        return fsb_error(FSB_EINVAL, "%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    *out = v;
    return FSB_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int fsb_cli_int_list(const char *flag, const char *text, long hi, int *vals, int max_n, int *n)
{
    *n = 0;
    const char *p = text;
    if (*p == '\0') return fsb_error(FSB_EINVAL, "%s: empty list", flag);
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        if (len == 0 || len >= sizeof item)
            return fsb_error(FSB_EINVAL,
                             "%s: '%s' is not a comma-separated list of positive "
                             "whole numbers",
                             flag, text);
        memcpy(item, p, len);
        item[len] = '\0';
        long v = 0;
        if (fsb_cli_int(flag, item, 1, hi, &v))
            return fsb_error(FSB_EINVAL, "%s: '%s' in '%s' is not a whole number in [1, %ld]", flag,
                             item, text, hi);
        if (*n == max_n) return fsb_error(FSB_EINVAL, "%s: more than %d values", flag, max_n);
        vals[(*n)++] = (int)v;
        if (!comma) break;
        p = comma + 1;
    }
    qsort(vals, (size_t)*n, sizeof *vals, cmp_int);
    for (int i = 1; i < *n; i++)
        if (vals[i] == vals[i - 1])
            return fsb_error(FSB_EINVAL, "%s: %d appears twice", flag, vals[i]);
    return FSB_OK;
}

static int parse_value(const fsb_cli_flag *f, const char *flag, const char *text)
{
    long v = 0;
    int st = FSB_OK;
    switch (f->kind) {
    case FSB_FLAG_STR:
        *(const char **)f->dst = text;
        break;
    case FSB_FLAG_INT:
        if (!(st = fsb_cli_int(flag, text, (long)f->lo, (long)f->hi, &v))) *(int *)f->dst = (int)v;
        break;
    case FSB_FLAG_LONG:
        st = fsb_cli_int(flag, text, (long)f->lo, (long)f->hi, (long *)f->dst);
        break;
    case FSB_FLAG_U64:
        if (!(st = fsb_cli_int(flag, text, (long)f->lo, (long)f->hi, &v)))
            *(uint64_t *)f->dst = (uint64_t)v;
        break;
    case FSB_FLAG_DOUBLE:
        st = fsb_cli_double(flag, text, f->lo, f->hi, (double *)f->dst);
        break;
    case FSB_FLAG_INTLIST:
        st = fsb_cli_int_list(flag, text, (long)f->hi, (int *)f->dst, (int)f->lo, f->count);
        break;
    case FSB_FLAG_FN:
        st = f->fn(f->dst, flag, text);
        break;
    case FSB_FLAG_SWITCH:
    case FSB_FLAG_HELP:
    case FSB_FLAG_ARGS:
        break;
    }
    return st;
}

int fsb_cli_exact_names(int argc, char **argv, const struct option *longopts, const char *cmd)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') continue;
        if (!a[2]) break; /* "--": the end of the flags */
        size_t n = strcspn(a + 2, "=");
        const struct option *exact = NULL, *prefix = NULL;
        for (const struct option *o = longopts; o->name; o++) {
            if (strlen(o->name) == n && !strncmp(o->name, a + 2, n)) exact = o;
            if (!prefix && strlen(o->name) > n && !strncmp(o->name, a + 2, n)) prefix = o;
        }
        if (!exact && prefix)
            return fsb_error(FSB_EINVAL,
                             "unknown flag '--%.*s': write it out (--%s?) (bench %s "
                             "--help)",
                             (int)n, a + 2, prefix->name, cmd);
        if (exact && exact->has_arg == required_argument && !a[2 + n]) i++; /* its value */
    }
    return FSB_OK;
}

int fsb_cli_parse(int argc, char **argv, const fsb_cli_flag *flags, int n_flags, const char *cmd,
                  int *help)
{
    struct option longopts[FSB_CLI_MAX_FLAGS + 1];
    const fsb_cli_flag *args = NULL; /* the FSB_FLAG_ARGS entry, if any */
    int n_long = 0;
    assert(n_flags <= FSB_CLI_MAX_FLAGS);
    for (int i = 0; i < n_flags; i++) {
        fsb_flag_kind k = flags[i].kind;
        if (k == FSB_FLAG_ARGS) {
            args = &flags[i];
            continue;
        }
        int bare = k == FSB_FLAG_HELP || k == FSB_FLAG_SWITCH;
        longopts[n_long++] =
            (struct option){flags[i].name, bare ? no_argument : required_argument, NULL, 256 + i};
    }
    longopts[n_long] = (struct option){NULL, 0, NULL, 0};
    *help = 0;
    optind = 1;
    opterr = 0;
    int c, st = fsb_cli_exact_names(argc, argv, longopts, cmd);
    if (st) return st;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == ':')
            return fsb_error(FSB_EINVAL, "%s needs a value (bench %s --help)", argv[optind - 1],
                             cmd);
        if (c < 256 || c >= 256 + n_flags)
            return fsb_error(FSB_EINVAL, "unknown flag '%s' (bench %s --help)", argv[optind - 1],
                             cmd);
        const fsb_cli_flag *f = &flags[c - 256];
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", f->name);
        if (f->given) *f->given = 1;
        if (f->kind == FSB_FLAG_HELP) {
            *help = 1;
            return FSB_OK;
        }
        if (f->kind == FSB_FLAG_SWITCH)
            *(int *)f->dst = 1;
        else if ((st = parse_value(f, flag, optarg)))
            return st;
    }
    if (args) {
        *(char ***)args->dst = argv + optind;
        *args->count = argc - optind;
    } else if (optind < argc) {
        return fsb_error(FSB_EINVAL, "unexpected argument '%s' (bench %s --help)", argv[optind],
                         cmd);
    }
    return FSB_OK;
}

int fsb_cli_norm(void *dst, const char *flag, const char *text)
{
    fsb_norm n;
    int st = fsb_norm_parse(flag, text, &n);
    if (!st) *(int *)dst = (int)n;
    return st;
}

int fsb_cli_arch(void *dst, const char *flag, const char *text)
{
    fsb_arch a;
    int st = fsb_arch_parse(text, &a);
    if (st) return fsb_error_wrap(st, "%s", flag);
    *(const char **)dst = text;
    return FSB_OK;
}
