/* common.c - the fuzz targets' shared helpers (see common.h). */
#include "common.h"
#include "fsb/fileio.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir_buf[4096];

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz property violated: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void remove_dir(void)
{
    if (dir_buf[0]) fsb_remove_tree(dir_buf);
}

const char *fuzz_dir(void)
{
    if (dir_buf[0]) return dir_buf;
    /* tmpfs when there is one: ext4 flushes a file truncated and rewritten on every close,
     * which cut the file-reading targets to a few hundred executions a second */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir_buf, sizeof dir_buf, "%s/fsb-fuzz-XXXXXX", tmp);
    if (!mkdtemp(dir_buf)) fuzz_fail("cannot create a scratch folder %s", dir_buf);
    atexit(remove_dir);
    return dir_buf;
}

char *fuzz_path(const char *name)
{
    char *p = fsb_path_join(fuzz_dir(), name);
    if (!p) fuzz_fail("out of memory");
    return p;
}

void fuzz_write(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) fuzz_fail("cannot write %s", path);
    const char *p = data;
    while (size) {
        ssize_t n = write(fd, p, size);
        if (n <= 0) fuzz_fail("cannot write %s", path);
        p += n;
        size -= (size_t)n;
    }
    close(fd);
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) fuzz_fail("out of memory");
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static volatile unsigned fuzz_sink;

void fuzz_touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    fuzz_sink += sum;
}
