/* cli.c - strict parsing of flag values for `bench` (see cli.h). */
#include "cli.h"
#include "fsb/status.h"

#include <errno.h>
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
