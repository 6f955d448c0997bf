/* status.c - per-thread last error message (see include/fsb/status.h).
 * The message lives in thread-local storage so that worker threads never race on it.
 */
#include "fsb/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FSB_ERRMSG_MAX 1024

static _Thread_local char errmsg[FSB_ERRMSG_MAX];

int fsb_error(int st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return st;
}

int fsb_error_wrap(int st, const char *fmt, ...)
{
    char prefix[FSB_ERRMSG_MAX], old[FSB_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errmsg, sizeof old);
    if (old[0])
        snprintf(errmsg, sizeof errmsg, "%.500s: %.500s", prefix, old);
    else
        snprintf(errmsg, sizeof errmsg, "%s", prefix);
    return st;
}

const char *fsb_error_last(void)
{
    return errmsg;
}

void fsb_error_clear(void)
{
    errmsg[0] = '\0';
}

const char *fsb_status_str(int st)
{
    switch (st) {
    case FSB_OK:
        return "ok";
    case FSB_EINVAL:
        return "invalid argument";
    case FSB_EIO:
        return "input/output error";
    case FSB_EFORMAT:
        return "malformed input";
    case FSB_ENOMEM:
        return "out of memory";
    case FSB_ENOTFOUND:
        return "not found";
    case FSB_EMISMATCH:
        return "mismatch";
    case FSB_EINTERNAL:
        return "internal library error";
    default:
        return "unknown status";
    }
}

int fsb_status_exit_code(int st)
{
    if (st == FSB_OK) return 0;
    return st == FSB_EINVAL ? 2 : 1;
}
