/* cmd_episodes.c - `bench episodes`: draw a sweep of nested episodes (or replay a manifest)
 * and export it as a manifest; prints one summary line with the content hash.
 *   bench episodes --data ROOT [--split test] [--way 5] [--shots 1,5,10,30] [--query 15]
 *                  [--episodes 600|FILE.csv] [--seed 0] [--export OUT.csv] [--threads N]
 */
#include "cli.h"
#include "fsb/dataset.h"
#include "fsb/episodes.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct episodes_opts {
    const char *data;                  /* --data ROOT */
    const char *split;                 /* --split (NULL: test, or the manifest's) */
    long way;                          /* --way */
    int shots[FSB_EPISODES_MAX_SHOTS]; /* --shots, ascending */
    int n_shots;                       /* values in shots */
    long query;                        /* --query */
    long count;                        /* --episodes as a count */
    const char *manifest;              /* --episodes as a manifest path (replay) */
    long seed;                         /* --seed */
    const char *export_path;           /* --export */
    long threads;                      /* --threads (0: one per core) */
    const char *sampler_flag;          /* a sampler flag given (conflicts with a manifest) */
} episodes_opts;

static void usage(FILE *out)
{
    fprintf(out, "usage: bench episodes --data ROOT [--split NAME] [--way N] [--shots K1,K2,...]\n"
                 "                      [--query Q] [--episodes COUNT|MANIFEST.csv] [--seed S]\n"
                 "                      [--export OUT.csv] [--threads N]\n"
                 "Draw COUNT nested episodes (defaults: test, 5-way, shots 1,5,10,30, 15 queries,\n"
                 "600 episodes, seed 0), or replay MANIFEST.csv, and export them as a manifest.\n");
}

/* --episodes COUNT|MANIFEST.csv */
static int parse_episodes(void *dst, const char *flag, const char *text)
{
    episodes_opts *o = dst;
    int is_path = 0, st = fsb_episodes_parse_arg(flag, text, &o->count, &is_path);
    o->manifest = !st && is_path ? text : NULL;
    return st;
}

/* 1 when --help was given (usage printed). */
static int parse_opts(int argc, char **argv, episodes_opts *o)
{
    *o = (episodes_opts){.way = 5, .query = 15, .count = 600, .seed = 0, .threads = 0};
    o->n_shots = 4;
    memcpy(o->shots, (int[]){1, 5, 10, 30}, sizeof(int) * 4);
    int given[4] = {0}; /* the sampler flags: --way, --shots, --query, --seed */
    const fsb_cli_flag flags[] = {
        FSB_FLAG("data", FSB_FLAG_STR, &o->data),
        FSB_FLAG("split", FSB_FLAG_STR, &o->split),
        FSB_FLAG("way", FSB_FLAG_LONG, &o->way, .lo = 1, .hi = 100000, .given = &given[0]),
        FSB_FLAG("shots", FSB_FLAG_INTLIST, o->shots, .lo = FSB_EPISODES_MAX_SHOTS, .hi = 100000,
                 .count = &o->n_shots, .given = &given[1]),
        FSB_FLAG("query", FSB_FLAG_LONG, &o->query, .lo = 0, .hi = 100000, .given = &given[2]),
        FSB_FLAG("episodes", FSB_FLAG_FN, o, .fn = parse_episodes),
        FSB_FLAG("seed", FSB_FLAG_LONG, &o->seed, .lo = 0, .hi = 9.2e18, .given = &given[3]),
        FSB_FLAG("export", FSB_FLAG_STR, &o->export_path),
        FSB_FLAG("threads", FSB_FLAG_LONG, &o->threads, .lo = 0, .hi = 1024),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help, st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                                 "episodes", &help);
    if (st) return st;
    if (help) {
        usage(stdout);
        return 1;
    }
    static const char *const names[4] = {"--way", "--shots", "--query", "--seed"};
    for (int i = 0; i < 4; i++)
        if (given[i]) o->sampler_flag = names[i];
    if (!o->data) return fsb_error(FSB_EINVAL, "--data ROOT is required");
    if (o->manifest && o->sampler_flag)
        return fsb_error(FSB_EINVAL,
                         "%s cannot be combined with a manifest in --episodes (the "
                         "manifest fixes the episodes)",
                         o->sampler_flag);
    return FSB_OK;
}

int fsb_cmd_episodes(int argc, char **argv)
{
    episodes_opts o;
    fsb_split split = {0};
    fsb_sweep sw = {0};
    fsb_pool *pool = NULL;
    char split_name[64], hex[33];
    int st = parse_opts(argc, argv, &o), differs = 0;
    if (st) return st > 0 ? FSB_OK : st;
    if (!o.split && o.manifest) {
        if ((st = fsb_episodes_manifest_split(o.manifest, split_name, sizeof split_name)))
            goto done;
        o.split = split_name;
    }
    if ((st = fsb_split_open(&split, o.data, o.split ? o.split : "test"))) goto done;
    if (o.manifest) {
        if ((st = fsb_episodes_load(&sw, &split, o.manifest, &differs))) goto done;
        if (differs)
            fprintf(stderr,
                    "bench episodes: warning: %s was made on a split with fingerprint %016" PRIx64
                    ", but %s has %016" PRIx64 "; episodes were matched by image name\n",
                    o.manifest, sw.fingerprint, split.source, split.fingerprint);
    } else {
        if ((st = fsb_pool_create(&pool, (int)o.threads)) ||
            (st = fsb_sweep_generate(&sw, &split, (uint64_t)o.seed, (int)o.way, o.shots, o.n_shots,
                                     (int)o.query, (int)o.count, pool)))
            goto done;
    }
    st = o.export_path ? fsb_episodes_export(&sw, &split, o.export_path, hex)
                       : fsb_sweep_hash(&sw, &split, hex);
    if (st) goto done;
    printf("episodes %d  split %s  way %d  shots", sw.n_episodes, sw.split, sw.way);
    for (int i = 0; i < sw.n_shots; i++)
        printf("%c%d", i ? ',' : ' ', sw.shots[i]);
    printf("  query %d  seed %" PRIu64 "  hash xxh3-128:%s%s%s\n", sw.query, sw.seed, hex,
           o.export_path ? "  -> " : "", o.export_path ? o.export_path : "");
done:
    fsb_pool_destroy(pool);
    fsb_sweep_free(&sw);
    fsb_split_free(&split);
    return st;
}
