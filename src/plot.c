/* plot.c - run gnuplot on a generated script (see include/fsb/plot.h). */
#define _DEFAULT_SOURCE /* environ */
#include "fsb/plot.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* 1 when an executable `name` is on $PATH. */
static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path) return 0;
    char buf[4096];
    for (const char *p = path;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, len ? p : ".", name);
        struct stat sb;
        if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode) && access(buf, X_OK) == 0) return 1;
        if (!colon) return 0;
        p = colon + 1;
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int fsb_plot(const char *gp_path, const char *script, const char *png_path, int *plotted,
             char *note, size_t note_n)
{
    *plotted = 0;
    note[0] = '\0';
    size_t n = strlen(script) + 1024;
    char *text = malloc(n);
    char *tmp = malloc(strlen(png_path) + 16), *log = malloc(strlen(png_path) + 16);
    int st = FSB_OK;
    if (!text || !tmp || !log) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", gp_path);
        goto done;
    }
    snprintf(text, n,
             "if (!exists(\"outfile\")) outfile = \"%s\"\n"
             "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
             "    set terminal pngcairo size 800,560 noenhanced font \",11\"\n"
             "} else {\n"
             "    set terminal png size 800,560 noenhanced\n"
             "}\n"
             "set output outfile\n%s",
             base_name(png_path), script);
    if ((st = fsb_write_file(gp_path, text, strlen(text)))) goto done;
    sprintf(tmp, "%s.tmp.png", png_path);
    sprintf(log, "%s.tmp.log", png_path);
    if (!on_path("gnuplot")) {
        snprintf(note, note_n,
                 "gnuplot not found on PATH: %s not drawn (run `gnuplot %s` to "
                 "draw it)",
                 png_path, gp_path);
        goto done;
    }
    if (strchr(tmp, '\'')) {
        snprintf(note, note_n, "%s not drawn: its path contains a quote", png_path);
        goto done;
    }
    char expr[4200];
    snprintf(expr, sizeof expr, "outfile='%.4000s'", tmp);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *argv[] = {"gnuplot", "-e", expr, (char *)gp_path, NULL};
    pid_t pid;
    int err = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (err == 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    struct stat sb;
    if (err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && stat(tmp, &sb) == 0 &&
        sb.st_size > 0 && rename(tmp, png_path) == 0) {
        *plotted = 1;
    } else {
        char first[200] = "";
        FILE *lf = fopen(log, "r");
        if (lf) {
            size_t got = fread(first, 1, sizeof first - 1, lf);
            first[got] = '\0';
            first[strcspn(first, "\n")] = '\0';
            fclose(lf);
        }
        char why[64];
        if (err)
            snprintf(why, sizeof why, "%s", strerror(err));
        else if (WIFEXITED(status))
            snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
        else
            snprintf(why, sizeof why, "killed");
        snprintf(note, note_n, "gnuplot failed (%s%s%s): %s not drawn", why, first[0] ? ": " : "",
                 first, png_path);
        unlink(tmp);
    }
    unlink(log);
done:
    free(text);
    free(tmp);
    free(log);
    return st;
}
