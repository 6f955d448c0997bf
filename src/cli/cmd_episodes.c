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

#include <getopt.h>
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

static int parse_opts(int argc, char **argv, episodes_opts *o)
{
    static const struct option longopts[] = {{"data", required_argument, 0, 'd'},
                                             {"split", required_argument, 0, 's'},
                                             {"way", required_argument, 0, 'w'},
                                             {"shots", required_argument, 0, 'k'},
                                             {"query", required_argument, 0, 'q'},
                                             {"episodes", required_argument, 0, 'e'},
                                             {"seed", required_argument, 0, 'S'},
                                             {"export", required_argument, 0, 'o'},
                                             {"threads", required_argument, 0, 't'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int st = FSB_OK, is_path = 0, c;
    *o = (episodes_opts){.way = 5, .query = 15, .count = 600, .seed = 0, .threads = 0};
    o->n_shots = 4;
    memcpy(o->shots, (int[]){1, 5, 10, 30}, sizeof(int) * 4);
    optind = 1;
    opterr = 0;
    if ((st = fsb_cli_exact_names(argc, argv, longopts, "episodes"))) return st;
    while (!st && (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->data = optarg;
            break;
        case 's':
            o->split = optarg;
            break;
        case 'w':
            o->sampler_flag = "--way";
            st = fsb_cli_int("--way", optarg, 1, 100000, &o->way);
            break;
        case 'k':
            o->sampler_flag = "--shots";
            st = fsb_cli_int_list("--shots", optarg, 100000, o->shots, FSB_EPISODES_MAX_SHOTS,
                                  &o->n_shots);
            break;
        case 'q':
            o->sampler_flag = "--query";
            st = fsb_cli_int("--query", optarg, 0, 100000, &o->query);
            break;
        case 'e':
            st = fsb_episodes_parse_arg("--episodes", optarg, &o->count, &is_path);
            o->manifest = is_path ? optarg : NULL;
            break;
        case 'S':
            o->sampler_flag = "--seed";
            st = fsb_cli_int("--seed", optarg, 0, INT64_MAX, &o->seed);
            break;
        case 'o':
            o->export_path = optarg;
            break;
        case 't':
            st = fsb_cli_int("--threads", optarg, 0, 1024, &o->threads);
            break;
        case 'h':
            usage(stdout);
            return 1;
        case ':':
            st = fsb_error(FSB_EINVAL, "%s needs a value", argv[optind - 1]);
            break;
        default:
            st = fsb_error(FSB_EINVAL, "unknown flag '%s'", argv[optind - 1]);
            break;
        }
    }
    if (st) return st;
    if (optind < argc) return fsb_error(FSB_EINVAL, "unexpected argument '%s'", argv[optind]);
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
