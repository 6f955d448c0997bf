/* status.h - status codes and the last error message.
 *
 * Every fallible library function returns 0 (FSB_OK) or a negative fsb_status and,
 * on failure, leaves a one-line message naming the file, line or flag involved,
 * readable with fsb_error_last() on the same thread. Programmer errors are asserts.
 * A message longer than the buffer (2047 bytes) keeps its first third and its last two
 * thirds around " ... ", so the cause, which comes last, survives long paths and prefixes.
 */
#ifndef FSB_STATUS_H
#define FSB_STATUS_H

typedef enum fsb_status {
    FSB_OK = 0,
    FSB_EINVAL = -1,    /* bad argument, flag or option value */
    FSB_EIO = -2,       /* a file could not be opened, read, written or renamed */
    FSB_EFORMAT = -3,   /* a file's content is malformed, truncated or corrupt */
    FSB_ENOMEM = -4,    /* an allocation failed */
    FSB_ENOTFOUND = -5, /* a file, class, name or key does not exist */
    FSB_EMISMATCH = -6, /* two things that must agree do not (architecture, hash, run) */
    FSB_EINTERNAL = -7  /* an external library failed in a way we did not expect */
} fsb_status;

/* Record `st` with a printf-style message for the calling thread; returns `st` so that
 * callers can write `return fsb_error(FSB_EIO, "%s: %s", path, strerror(errno));`. */
int fsb_error(int st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current thread's message with "<prefix>: " (adds context on the way up);
 * returns `st` unchanged. Neither part is clipped on its own: when the whole is too long, the
 * middle goes (see above), never the innermost message at the end. */
int fsb_error_wrap(int st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" when none). Valid until the next fsb_error*. */
const char *fsb_error_last(void);

/* Forget the calling thread's last message. */
void fsb_error_clear(void);

/* A short constant name for a status ("invalid argument", ...). */
const char *fsb_status_str(int st);

/* Map a status to a process exit code: 0 for FSB_OK, 2 for FSB_EINVAL (usage), 1 otherwise. */
int fsb_status_exit_code(int st);

#endif
