/* progress.h - a progress bar with rate and ETA for long loops.
 *
 * On a terminal it redraws one line (at most ~10 times a second) on the given stream,
 * normally stderr; when the stream is not a terminal it prints nothing, so logs and
 * CI output stay clean. fsb_progress_format() is the pure formatter, for tests.
 */
#ifndef FSB_PROGRESS_H
#define FSB_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct fsb_progress {
    FILE *out;        /* where to draw; NULL = never draw */
    int tty;          /* 1 when `out` is a terminal */
    char label[64];   /* shown before the bar */
    char unit[16];    /* rate unit, e.g. "img" or "ep" */
    int64_t total;    /* items expected (<= 0: unknown) */
    int64_t done;     /* items finished so far */
    int64_t start;    /* items already done when the bar started (resume), excluded from the rate */
    double t0;        /* fsb_now() at init */
    double last_draw; /* fsb_now() of the last redraw */
} fsb_progress;

/* Start a bar at `done` of `total` items (done > 0 when resuming). */
void fsb_progress_init(fsb_progress *p, FILE *out, const char *label, const char *unit,
                       int64_t done, int64_t total);
/* Record progress (absolute count) and redraw if due. */
void fsb_progress_update(fsb_progress *p, int64_t done);
/* Draw the final state and end the line (terminal only). */
void fsb_progress_finish(fsb_progress *p);
/* Format "label [#####.....]  42/100  12.3 unit/s  ETA 0:00:05" into buf (always
 * NUL-terminated); `elapsed` seconds cover `done - start` items; bar `width` cells. */
void fsb_progress_format(char *buf, size_t n, const char *label, const char *unit, int64_t done,
                         int64_t start, int64_t total, double elapsed, int width);

#endif
