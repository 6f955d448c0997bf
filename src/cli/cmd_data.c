/* cmd_data.c - `bench data check` (fsb_data_check: every problem of a dataset folder) and
 * `bench data pack` (fsb_cache_open per split, printing images, seconds and images/s: the
 * data-path performance benchmark). Flags -> an options struct -> library calls.
 */
#include "cli.h"
#include "fsb/cache.h"
#include "fsb/datacheck.h"
#include "fsb/dataset.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Options of both subcommands. */
typedef struct data_opts {
    const char *data;  /* --data ROOT */
    const char *cache; /* --cache DIR (pack) */
    int splits[3];     /* --split: which of train, val, test (pack) */
    int splits_given;  /* 1 when --split was given (else: the splits that exist) */
    int threads;       /* --threads N (0: one per core) */
    int rebuild;       /* --rebuild (pack) */
    int size;          /* --image-size S (alias --size): the packed side; check judges by it */
} data_opts;

static const char *const split_names[3] = {"train", "val", "test"};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench data check --data ROOT [--split train,val,test] [--image-size S]\n"
            "                        [--threads N]\n"
            "       bench data pack  --data ROOT [--split train,val,test] [--cache DIR]\n"
            "                        [--threads N] [--image-size S] [--rebuild]\n\n"
            "check: read every split (Ravi CSVs or class folders) and every image, list every\n"
            "       problem (file and CSV line) on stdout; exit status 1 if there is any. A\n"
            "       missing split is one (pretrain reads train and val, run test and train):\n"
            "       --split names the splits to check (all three). An image with a side below\n"
            "       --image-size S (as bench run and pretrain; alias --size; %d) is one.\n"
            "pack:  decode each split once into a packed cache of S x S images (default folder\n"
            "       ROOT/.fsbench-cache, else $XDG_CACHE_HOME/fsbench or ~/.cache/fsbench),\n"
            "       rebuilt when the images change; prints images, seconds and images/s.\n",
            FSB_CACHE_DEFAULT_SIZE);
}

static int parse_splits(const char *text, int splits[3])
{
    splits[0] = splits[1] = splits[2] = 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int k = 0; k < 3; k++)
            if (len == strlen(split_names[k]) && !strncmp(p, split_names[k], len)) found = k;
        if (found < 0)
            return fsb_error(FSB_EINVAL, "--split: '%.*s' in '%s' is not train, val or test",
                             (int)len, p, text);
        splits[found] = 1;
        if (!p[len]) return FSB_OK;
        p += len + 1;
    }
}

/* --split train,val,test into o->splits */
static int parse_split_flag(void *dst, const char *flag, const char *text)
{
    data_opts *o = dst;
    o->splits_given = 1;
    int st = parse_splits(text, o->splits);
    return st ? fsb_error_wrap(st, "%s", flag) : FSB_OK;
}

/* Parse flags after the action word; *help set when --help was given. */
static int parse(int argc, char **argv, data_opts *o, int pack, int *help)
{
    memset(o, 0, sizeof *o);
    o->splits[0] = o->splits[1] = o->splits[2] = 1;
    int pack_only = 0; /* --cache or --rebuild given */
    const fsb_cli_flag flags[] = {
        FSB_FLAG("data", FSB_FLAG_STR, &o->data),
        FSB_FLAG("cache", FSB_FLAG_STR, &o->cache, .given = &pack_only),
        FSB_FLAG("split", FSB_FLAG_FN, o, .fn = parse_split_flag),
        FSB_FLAG("threads", FSB_FLAG_INT, &o->threads, .lo = 1, .hi = 1024),
        FSB_FLAG("rebuild", FSB_FLAG_SWITCH, &o->rebuild, .given = &pack_only),
        FSB_FLAG("size", FSB_FLAG_INT, &o->size, .lo = 1, .hi = 1024),
        FSB_FLAG("image-size", FSB_FLAG_INT, &o->size, .lo = 1, .hi = 1024),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "data", help);
    if (st || *help) return st;
    if (!pack && pack_only)
        return fsb_error(FSB_EINVAL, "--cache and --rebuild are flags of `bench data pack`, "
                                     "not of check");
    if (!o->data) return fsb_error(FSB_EINVAL, "--data: required (the dataset root)");
    return FSB_OK;
}

static int run_check(const data_opts *o, fsb_pool *pool)
{
    fsb_data_check_opts co = {0};
    co.progress = stderr;
    co.image_size = o->size;
    for (int k = 0; k < 3; k++)
        co.skip_split[k] = !o->splits[k];
    int n = 0;
    return fsb_data_check(o->data, stdout, pool, &co, &n);
}

static int run_pack(const data_opts *o, fsb_pool *pool)
{
    fsb_cache_opts co = {0};
    co.dir = o->cache;
    co.size = o->size;
    co.pool = pool;
    co.progress = stderr;
    co.rebuild = o->rebuild;
    if (o->splits_given) { /* every split asked for lists cleanly before any is packed */
        const char *need[3];
        int n = 0, st;
        for (int k = 0; k < 3; k++)
            if (o->splits[k]) need[n++] = split_names[k];
        if ((st = fsb_split_require(o->data, need, n, "--split asks for it")))
            return fsb_error_wrap(st, "--data");
    }
    printf("packing with %d thread%s\n", fsb_pool_size(pool), fsb_pool_size(pool) == 1 ? "" : "s");
    long total = 0;
    double total_s = 0;
    int n_packed = 0;
    for (int k = 0; k < 3; k++) {
        if (!o->splits[k]) continue;
        if (!o->splits_given && !fsb_split_exists(o->data, split_names[k])) {
            printf("%-5s absent, skipped\n", split_names[k]);
            continue;
        }
        n_packed++;
        fsb_cache c;
        double t0 = fsb_now();
        int st = fsb_cache_open(&c, o->data, split_names[k], &co);
        double dt = fsb_now() - t0;
        if (st) return fsb_error_wrap(st, "split %s", split_names[k]);
        if (c.packed)
            printf("%-5s %6d images  %7.2f s  %8.0f img/s  packed -> %s\n", split_names[k],
                   c.split.n_images, dt, c.split.n_images / (dt > 0 ? dt : 1e-9), c.path);
        else
            printf("%-5s %6d images  %7.2f s  up to date (opened, not repacked) -> %s\n",
                   split_names[k], c.split.n_images, dt, c.path);
        total += c.split.n_images;
        total_s += dt;
        fsb_cache_close(&c);
    }
    if (n_packed == 0)
        return fsb_error(FSB_ENOTFOUND, "%s: no split (train, val, test) found", o->data);
    printf("total %6ld images  %7.2f s  %8.0f img/s\n", total, total_s,
           total / (total_s > 0 ? total_s : 1e-9));
    return FSB_OK;
}

int fsb_cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? fsb_error(FSB_EINVAL, "data: give an action, check or pack") : FSB_OK;
    }
    int pack = !strcmp(argv[1], "pack");
    if (!pack && strcmp(argv[1], "check") != 0)
        return fsb_error(FSB_EINVAL, "data: unknown action '%s' (check or pack)", argv[1]);
    data_opts o;
    int help, st = parse(argc - 1, argv + 1, &o, pack, &help);
    if (st || help) {
        if (help) usage(stdout);
        return st;
    }
    fsb_pool *pool = NULL;
    if ((st = fsb_pool_create(&pool, o.threads))) return st;
    st = pack ? run_pack(&o, pool) : run_check(&o, pool);
    fsb_pool_destroy(pool);
    return st;
}
