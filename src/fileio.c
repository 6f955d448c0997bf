/* fileio.c - atomic output files and small file helpers (see include/fsb/fileio.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void outfile_clear(fsb_outfile *f)
{
    free(f->path);
    free(f->tmp_path);
    f->fp = NULL;
    f->path = f->tmp_path = NULL;
}

int fsb_outfile_open(fsb_outfile *f, const char *path)
{
    memset(f, 0, sizeof *f);
    size_t n = strlen(path);
    f->path = strdup(path);
    f->tmp_path = malloc(n + 16);
    if (!f->path || !f->tmp_path) {
        outfile_clear(f);
        return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    }
    snprintf(f->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        int e = errno;
        outfile_clear(f);
        return fsb_error(FSB_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        close(fd);
        unlink(f->tmp_path);
        outfile_clear(f);
        return fsb_error(FSB_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    return FSB_OK;
}

/* fsync the folder holding path, so that a rename into it is durable (best effort: a
 * file system that cannot sync folders still has the data, synced before the rename). */
static void sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int fsb_outfile_commit(fsb_outfile *f)
{
    int st = FSB_OK;
    int bad = ferror(f->fp) || fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0;
    int e = errno;
    if (fclose(f->fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    f->fp = NULL;
    if (bad) {
        unlink(f->tmp_path);
        st = fsb_error(FSB_EIO, "%s: write failed: %s", f->path, strerror(e));
    } else if (rename(f->tmp_path, f->path) != 0) {
        e = errno;
        unlink(f->tmp_path);
        st = fsb_error(FSB_EIO, "%s: cannot rename into place: %s", f->path, strerror(e));
    } else {
        sync_parent(f->path); /* the rename itself survives a power loss */
    }
    outfile_clear(f);
    return st;
}

void fsb_outfile_abort(fsb_outfile *f)
{
    if (!f || !f->tmp_path) return;
    if (f->fp) fclose(f->fp);
    unlink(f->tmp_path);
    outfile_clear(f);
}

int fsb_write_file(const char *path, const void *data, size_t size)
{
    fsb_outfile f;
    int st = fsb_outfile_open(&f, path);
    if (st) return st;
    if (size && fwrite(data, 1, size, f.fp) != size) {
        int e = errno;
        fsb_outfile_abort(&f);
        return fsb_error(FSB_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return fsb_outfile_commit(&f);
}

/* Read everything rd() gives into a malloc'd NUL-terminated buffer; rd returns the bytes
 * read (fewer than asked only at the end) or -1 on an error. */
static int slurp(void *h, long (*rd)(void *h, char *buf, size_t n), const char *path, void **data,
                 size_t *size)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        errno = 0;
        long got = rd(h, buf + n, cap - n);
        if (got < 0) {
            int e = errno;
            free(buf);
            return fsb_error(FSB_EIO, "%s: read failed: %s", path, e ? strerror(e) : "I/O error");
        }
        n += (size_t)got;
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return FSB_OK;
}

static long read_stdio(void *h, char *buf, size_t n)
{
    size_t got = fread(buf, 1, n, h);
    return got < n && ferror((FILE *)h) ? -1 : (long)got;
}

static long read_gz(void *h, char *buf, size_t n)
{
    size_t total = 0; /* gzread takes an unsigned count: read in chunks */
    while (total < n) {
        unsigned chunk = n - total > (1u << 30) ? 1u << 30 : (unsigned)(n - total);
        int got = gzread(h, buf + total, chunk);
        if (got < 0) return -1;
        total += (size_t)got;
        if ((unsigned)got < chunk) break;
    }
    return (long)total;
}

int fsb_read_file(const char *path, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return fsb_error(errno == ENOENT ? FSB_ENOTFOUND : FSB_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp); /* a directory, FIFO or device (/dev/zero would never end) */
        return fsb_error(FSB_EIO, "%s: not a regular file", path);
    }
    int st = slurp(fp, read_stdio, path, data, size);
    fclose(fp);
    return st;
}

int fsb_read_file_gz(const char *path, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return fsb_error(errno == ENOENT ? FSB_ENOTFOUND : FSB_EIO, "%s: cannot open: %s", path,
                         errno ? strerror(errno) : "out of memory");
    int st = slurp(gz, read_gz, path, data, size), code = Z_OK;
    const char *msg = gzerror(gz, &code); /* a truncated stream ends "early" with Z_BUF_ERROR */
    if (st == FSB_EIO || (st == FSB_OK && code != Z_OK && code != Z_STREAM_END)) {
        st = fsb_error(FSB_EIO, "%s: corrupt or truncated gzip data: %s", path, msg ? msg : "?");
        free(*data);
        *data = NULL;
        *size = 0;
    }
    gzclose(gz);
    return st;
}

int fsb_mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (!p) return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                int st = fsb_error(FSB_EIO, "%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return st;
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    free(p);
    if (!fsb_is_dir(path)) return fsb_error(FSB_EIO, "%s: exists and is not a directory", path);
    return FSB_OK;
}

int fsb_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fsb_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *fsb_path_join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/')
        na--;
    char *s = malloc(na + nb + 2);
    if (!s) return NULL;
    memcpy(s, a, na);
    s[na] = '/';
    memcpy(s + na + 1, b, nb + 1);
    return s;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path) != 0 ? -1 : 0;
}

int fsb_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? FSB_OK : fsb_error(FSB_EIO, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0)
        return fsb_error(FSB_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return FSB_OK;
}
