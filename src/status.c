/* status.c - per-thread last error message (see include/fsb/status.h).
 * The message lives in thread-local storage so that worker threads never race on it.
 */
#include "fsb/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FSB_ERRMSG_MAX 2048
#define FSB_ERRMSG_CUT " ... "

static _Thread_local char errmsg[FSB_ERRMSG_MAX];

/* Store the n bytes of text (NUL-terminated) as the message. A text too long for the buffer
 * keeps its first third and its last two thirds around FSB_ERRMSG_CUT: the outermost context
 * stays readable and the innermost message, the cause, which comes last, is never lost. */
static void store(const char *text, size_t n)
{
    if (n < sizeof errmsg) {
        memmove(errmsg, text, n + 1);
        return;
    }
    size_t cut = sizeof FSB_ERRMSG_CUT - 1, keep = sizeof errmsg - 1 - cut;
    size_t head = keep / 3, tail = keep - head;
    memmove(errmsg, text, head);
    memcpy(errmsg + head, FSB_ERRMSG_CUT, cut);
    memmove(errmsg + head + cut, text + n - tail, tail);
    errmsg[sizeof errmsg - 1] = '\0';
}

/* Format into errmsg through store(): a heap buffer only when the text does not fit. */
static void vstore(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    char small[FSB_ERRMSG_MAX];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        small[0] = '\0';
        n = 0;
    }
    char *big = (size_t)n < sizeof small ? NULL : malloc((size_t)n + 1);
    if (big) vsnprintf(big, (size_t)n + 1, fmt, again);
    va_end(again);
    if (big)
        store(big, (size_t)n);
    else /* fits, or no memory for the long text: the head is the best there is */
        store(small, strlen(small));
    free(big);
}

int fsb_error(int st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vstore(fmt, ap);
    va_end(ap);
    return st;
}

int fsb_error_wrap(int st, const char *fmt, ...)
{
    char old[FSB_ERRMSG_MAX];
    memcpy(old, errmsg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vstore(fmt, ap); /* the prefix, stored (trimmed if need be) where the message goes */
    va_end(ap);
    if (!old[0]) return st;
    size_t np = strlen(errmsg), no = strlen(old);
    char *both = malloc(np + 2 + no + 1);
    if (!both) { /* keep the cause rather than the context */
        store(old, no);
        return st;
    }
    memcpy(both, errmsg, np);
    memcpy(both + np, ": ", 2);
    memcpy(both + np + 2, old, no + 1);
    store(both, np + 2 + no);
    free(both);
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
