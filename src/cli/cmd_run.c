/* cmd_run.c - `bench [run] --data ROOT --teacher CKPT --shots 1,5,10,30 --way 5 ...`: the
 * main job. Flags -> fsb_run_opts -> fsb_run(). */
#include "cli.h"
#include "fsb/episodes.h"
#include "fsb/demo.h"
#include "fsb/method.h"
#include "fsb/model.h"
#include "fsb/run.h"
#include "fsb/status.h"
#include "fsb/student.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: bench [run] --data ROOT --teacher CKPT [flags]\n"
            "  --data ROOT        dataset root (default: $FSB_DATA)\n"
            "  --teacher CKPT     teacher checkpoint (default: $FSB_TEACHER)\n"
            "  --out DIR          run folder (default: runs/<split>-<way>way-seed<seed>)\n"
            "  --split NAME       evaluated split (test)\n"
            "  --way N            classes per episode (5)\n"
            "  --shots LIST       support images per class, e.g. 1,5,10,30 (1,5,10,30)\n"
            "  --query N          queries per class (15)\n"
            "  --episodes N|FILE  episode count, or a manifest to replay (.csv or gzip'd\n"
            "                     .csv.gz) (600)\n"
            "  --seed N           episode seed (0)\n"
            "  --methods LIST     methods (1nn,svm,protonet,finetune,refilled); also logreg,\n"
            "                     feat, maml (needs --model maml=PATH)\n"
            "  --model M=PATH     method M sees the features of its own checkpoint PATH\n"
            "                     instead of the teacher's (feat: also its attention block,\n"
            "                     so a FEAT checkpoint); repeatable or comma-separated,\n"
            "                     e.g. feat=feat.fsbt. For 1nn, protonet, svm, logreg, feat;\n"
            "                     maml requires one: a MAML checkpoint (head of --way classes,\n"
            "                     maml.* meta) it adapts per episode. M must be in --methods,\n"
            "                     PATH take the run's input; its hash (and maml's order)\n"
            "                     joins the run identity\n"
            "  --model M@K=PATH   M uses PATH at K-shot only (K among --shots), M=PATH at the\n"
            "                     other shots, e.g. --model maml=M5.fsbt --model maml@1=M1.fsbt;\n"
            "                     without M=PATH a feature method uses the teacher at the\n"
            "                     other shots, maml needs a model at every shot\n"
            "  --norm un|l2n|cl2n feature normalisation for every feature method (1nn: cl2n,\n"
            "                     svm/logreg: l2n, protonet: un)\n"
            "  --C X              SVM / logistic regression C (each method's val-chosen\n"
            "                     default: baselines/method.c)\n"
            "  --threads N        workers, 0 = one per core (0); results never depend on it\n"
            "  --cache DIR        packed images and features (next to the data)\n"
            "  --image-size N     packed image side (the teacher's: it records the input it\n"
            "                     was trained on; 84 for MiniImageNet teachers)\n"
            "  --resize N         test transform: shorter side (the teacher's; 92)\n"
            "  --crop N           test transform: centre crop (the teacher's; 84)\n"
            "                     (a value that contradicts the teacher is refused)\n"
            "  --arch conv4|res12 refuse a teacher of another architecture\n"
            "  --student SPEC     finetune/refilled options, e.g. \"adapt=last,augment=1,\n"
            "                     lr2=0.01\" (keys and defaults: include/fsb/student.h)\n"
            "  --shard i/n        run only shard i of n (0-based); merge the n folders with\n"
            "                     bench merge (docs/cluster.md). Under mpirun -np N each rank\n"
            "                     runs its shard by itself, in the one --out folder\n"
            "Rerun the same command after an interruption to continue; the final files equal\n"
            "an uninterrupted run's (timing columns aside).\n");
}

static int split_list(const char *flag, char *text, const char **items, int max, int *n)
{
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (*n == max) return fsb_error(FSB_EINVAL, "%s: more than %d entries", flag, max);
        items[(*n)++] = tok;
    }
    if (*n == 0) return fsb_error(FSB_EINVAL, "%s: empty list", flag);
    return FSB_OK;
}

/* --episodes N|FILE into the run options (a count, or a manifest to replay). */
static int parse_episodes(void *dst, const char *flag, const char *text)
{
    fsb_run_opts *o = dst;
    int is_path = 0;
    int st = fsb_episodes_parse_arg(flag, text, &o->episodes, &is_path);
    if (!st && is_path) o->manifest = text;
    return st;
}

/* --student SPEC, checked here so that a typo fails before any work. */
static int parse_student(void *dst, const char *flag, const char *text)
{
    fsb_student_opts so;
    fsb_student_opts_default(&so);
    int st = fsb_student_opts_parse(&so, text, flag);
    if (!st) *(const char **)dst = text;
    return st;
}

/* --model METHOD[@SHOT]=PATH[,...], repeatable: appended to the run options (split in place:
 * the text is our argv, which is writable); SHOT must be a positive integer; fsb_run checks
 * the methods and the shots. */
static int parse_model(void *dst, const char *flag, const char *text)
{
    fsb_run_opts *o = dst;
    char *save = NULL;
    const int max = (int)(sizeof o->models / sizeof o->models[0]);
    if (!*text) return fsb_error(FSB_EINVAL, "%s: empty (METHOD=PATH, e.g. feat=feat.fsbt)", flag);
    for (char *tok = strtok_r((char *)text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1])
            return fsb_error(
                FSB_EINVAL,
                "%s: '%s' is not METHOD=PATH or METHOD@SHOT=PATH (e.g. feat=feat.fsbt, "
                "maml@1=maml1.fsbt)",
                flag, tok);
        if (o->n_models == max) return fsb_error(FSB_EINVAL, "%s: more than %d models", flag, max);
        *eq = '\0';
        char *at = strchr(tok, '@'), *end = NULL;
        long shot = 0;
        if (at) {
            shot = strtol(at + 1, &end, 10);
            if (at == tok || end == at + 1 || *end || shot < 1 || shot > 100000 || at[1] == '+')
                return fsb_error(FSB_EINVAL,
                                 "%s %s=%s: '%s' is not a shot (METHOD@SHOT=PATH, SHOT a positive "
                                 "integer among --shots)",
                                 flag, tok, eq + 1, at + 1);
            *at = '\0';
        }
        o->models[o->n_models++] = (fsb_run_model){tok, eq + 1, (int)shot};
    }
    return FSB_OK;
}

static int parse_shard(void *dst, const char *flag, const char *text)
{
    return fsb_shard_parse(flag, text, dst);
}

int fsb_cmd_run(int argc, char **argv)
{
    fsb_run_opts o;
    fsb_run_opts_default(&o);
    o.data = getenv("FSB_DATA");
    o.teacher = getenv("FSB_TEACHER");
    o.progress = stderr;
    o.log = stdout;
    const char *methods_text = NULL, *teacher_flag = NULL; /* the demo ignores $FSB_TEACHER */
    char default_out[256];
    int way_set = 0, query_set = 0, shots_set = 0; /* else a replayed manifest's */
    int seed_set = 0;
    const fsb_cli_flag flags[] = {
        FSB_FLAG("data", FSB_FLAG_STR, &o.data),
        FSB_FLAG("teacher", FSB_FLAG_STR, &teacher_flag),
        FSB_FLAG("out", FSB_FLAG_STR, &o.out),
        FSB_FLAG("split", FSB_FLAG_STR, &o.split),
        FSB_FLAG("cache", FSB_FLAG_STR, &o.cache_dir),
        FSB_FLAG("way", FSB_FLAG_INT, &o.way, .lo = 2, .hi = 1000, .given = &way_set),
        FSB_FLAG("query", FSB_FLAG_INT, &o.query, .lo = 1, .hi = 100000, .given = &query_set),
        FSB_FLAG("shots", FSB_FLAG_INTLIST, o.shots, .lo = FSB_EPISODES_MAX_SHOTS, .hi = 100000,
                 .count = &o.n_shots, .given = &shots_set),
        FSB_FLAG("episodes", FSB_FLAG_FN, &o, .fn = parse_episodes),
        FSB_FLAG("seed", FSB_FLAG_U64, &o.seed, .lo = 0, .hi = 9.2e18, .given = &seed_set),
        FSB_FLAG("methods", FSB_FLAG_STR, &methods_text),
        FSB_FLAG("model", FSB_FLAG_FN, &o, .fn = parse_model),
        FSB_FLAG("norm", FSB_FLAG_FN, &o.norm, .fn = fsb_cli_norm),
        FSB_FLAG("C", FSB_FLAG_DOUBLE, &o.C, .lo = 1e-8, .hi = 1e8),
        FSB_FLAG("threads", FSB_FLAG_INT, &o.threads, .lo = 0, .hi = 1024),
        FSB_FLAG("image-size", FSB_FLAG_INT, &o.image_size, .lo = 8, .hi = 1024),
        FSB_FLAG("resize", FSB_FLAG_INT, &o.resize, .lo = 8, .hi = 1024),
        FSB_FLAG("crop", FSB_FLAG_INT, &o.crop, .lo = 8, .hi = 1024),
        FSB_FLAG("arch", FSB_FLAG_FN, &o.arch, .fn = fsb_cli_arch),
        FSB_FLAG("student", FSB_FLAG_FN, &o.student, .fn = parse_student),
        FSB_FLAG("shard", FSB_FLAG_FN, &o.shard, .fn = parse_shard),
        /* fault injection for the resume tests: SIGKILL after N journaled tasks */
        FSB_FLAG("debug-kill-after-tasks", FSB_FLAG_LONG, &o.kill_after_tasks, .lo = 1,
                 .hi = 0x7fffffff),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };

    int help,
        st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "run", &help);
    if (!st && help) {
        run_usage(stdout);
        return FSB_OK;
    }
    if (teacher_flag) o.teacher = teacher_flag;
    if (!st && methods_text) /* split in place: the text is our argv, which is writable */
        st = split_list("--methods", (char *)methods_text, o.methods, FSB_RUN_MAX_METHODS,
                        &o.n_methods);
    if (st) return st;
    if (o.manifest) { /* replaying: what was not given comes from the manifest */
        if (seed_set)
            return fsb_error(FSB_EINVAL,
                             "--seed: the episodes come from %s, which fixes them; drop --seed",
                             o.manifest);
        if (!way_set) o.way = 0;
        if (!query_set) o.query = 0;
        if (!shots_set) o.n_shots = 0;
    }
    if ((st = fsb_cli_dist_begin(&argc, &argv, &o))) /* mpirun: this rank's shard */
        return fsb_cli_dist_end("run", st);
    fsb_demo demo = {0};
    if (!o.data) {
        /* no dataset configured: the same protocol on the Fashion-MNIST demo */
        printf("demo: no MiniImageNet configured (--data ROOT or FSB_DATA), so this runs the "
               "same protocol on Fashion-MNIST from Debian's dataset-fashion-mnist: 5 base "
               "classes train a quick ConvNet-4 teacher, 5 novel classes give the episodes. "
               "For MiniImageNet: bench --data /path/to/miniimagenet --teacher "
               "results/teacher-conv4/teacher.fsbt\n");
        fflush(stdout);
        if ((st = fsb_demo_prepare(&demo, o.cache_dir, stdout, stderr))) return st;
        o.data = demo.data;
        o.teacher = teacher_flag ? teacher_flag : demo.teacher;
        if (!o.out) o.out = "runs/demo-fashion-mnist";
    }
    if (!o.out && o.manifest)
        snprintf(default_out, sizeof default_out, "runs/%s-replay", o.split);
    else if (!o.out)
        snprintf(default_out, sizeof default_out, "runs/%s-%dway-seed%llu", o.split, o.way,
                 (unsigned long long)o.seed);
    if (!o.out) o.out = default_out;
    st = o.teacher ? fsb_run(&o)
                   : fsb_error(FSB_EINVAL, "no teacher: pass --teacher CKPT or set FSB_TEACHER");
    fsb_demo_free(&demo);
    return fsb_cli_dist_end("run", st); /* mpirun: a failing rank ends the job */
}
