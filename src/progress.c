/* progress.c - terminal progress bar (see include/fsb/progress.h). */
#include "fsb/progress.h"
#include "fsb/threads.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void format_hms(char *buf, size_t n, double s)
{
    if (s < 0 || s > 359999.0) {
        snprintf(buf, n, "--:--:--");
        return;
    }
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

void fsb_progress_format(char *buf, size_t n, const char *label, const char *unit, int64_t done,
                         int64_t start, int64_t total, double elapsed, int width)
{
    char bar[128], eta[32];
    if (width > (int)sizeof bar - 1) width = (int)sizeof bar - 1;
    int filled = total > 0 ? (int)((double)width * (double)done / (double)total) : 0;
    if (filled > width) filled = width;
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    double rate = elapsed > 0 ? (double)(done - start) / elapsed : 0.0;
    if (total > 0 && rate > 0)
        format_hms(eta, sizeof eta, (double)(total - done) / rate);
    else
        format_hms(eta, sizeof eta, -1);
    snprintf(buf, n, "%s [%s] %lld/%lld  %.1f %s/s  ETA %s", label, bar, (long long)done,
             (long long)total, rate, unit, eta);
}

static void draw(fsb_progress *p, double now)
{
    char line[256];
    fsb_progress_format(line, sizeof line, p->label, p->unit, p->done, p->start, p->total,
                        now - p->t0, 30);
    fprintf(p->out, "\r%s\033[K", line);
    fflush(p->out);
    p->last_draw = now;
}

void fsb_progress_init(fsb_progress *p, FILE *out, const char *label, const char *unit,
                       int64_t done, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out != NULL && isatty(fileno(out));
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->done = p->start = done;
    p->t0 = fsb_now();
    p->last_draw = 0;
}

void fsb_progress_update(fsb_progress *p, int64_t done)
{
    p->done = done;
    if (!p->tty) return;
    double now = fsb_now();
    if (now - p->last_draw >= 0.1) draw(p, now);
}

void fsb_progress_finish(fsb_progress *p)
{
    if (!p->tty) return;
    draw(p, fsb_now());
    fputc('\n', p->out);
    fflush(p->out);
}
