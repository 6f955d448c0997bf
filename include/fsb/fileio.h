/* fileio.h - files written atomically, whole-file reads, directories.
 *
 * Every output fsbench writes goes through fsb_outfile: bytes go to a temporary file
 * beside the target, which is flushed, fsync'd and renamed over the target only on
 * commit, so a crash, a full disk or a bad input never leaves a half-written file.
 */
#ifndef FSB_FILEIO_H
#define FSB_FILEIO_H

#include <stddef.h>
#include <stdio.h>

typedef struct fsb_outfile {
    FILE *fp;       /* write here between open and commit */
    char *path;     /* final path (owned) */
    char *tmp_path; /* temporary path beside it (owned) */
} fsb_outfile;

/* Create a temporary file beside `path` (in the same folder) and open it for writing. */
int fsb_outfile_open(fsb_outfile *f, const char *path);
/* Flush, fsync and close the temporary file, then rename it to the final path. On any
 * failure (including an earlier write error on fp) the temporary is removed, the target
 * is untouched, and the error names the path. Frees the struct's strings either way. */
int fsb_outfile_commit(fsb_outfile *f);
/* Close and remove the temporary file; no-op after commit or on a zeroed struct. */
void fsb_outfile_abort(fsb_outfile *f);
/* Write `size` bytes to `path` atomically (open + fwrite + commit). */
int fsb_write_file(const char *path, const void *data, size_t size);

/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience; *size excludes
 * the NUL). The caller frees *data. */
int fsb_read_file(const char *path, void **data, size_t *size);
/* The same for a file that may be gzip-compressed (zlib): a .gz file is decompressed, any
 * other file read as it is. Truncated or corrupt gzip data is FSB_EIO naming the file. */
int fsb_read_file_gz(const char *path, void **data, size_t *size);

/* mkdir -p; existing directories are fine. */
int fsb_mkdir_p(const char *path);
/* 1 if `path` is an existing directory / regular file, else 0. */
int fsb_is_dir(const char *path);
int fsb_is_file(const char *path);
/* rm -rf path: a missing path is fine; errors name the entry that could not be removed. */
int fsb_remove_tree(const char *path);
/* malloc'd "a/b" (no doubled slash); NULL on OOM. */
char *fsb_path_join(const char *a, const char *b);

#endif
