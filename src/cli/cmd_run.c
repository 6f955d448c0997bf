/* cmd_run.c - `bench [run] --data ROOT --teacher CKPT --shots 1,5,10,30 --way 5 ...`: the
 * main job. Flags -> fsb_run_opts -> fsb_run(). */
#include "cli.h"
#include "fsb/episodes.h"
#include "fsb/idx.h"
#include "fsb/method.h"
#include "fsb/model.h"
#include "fsb/run.h"
#include "fsb/status.h"
#include "fsb/student.h"

#include <getopt.h>
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
            "  --episodes N|FILE  episode count, or a manifest to replay (600)\n"
            "  --seed N           episode seed (0)\n"
            "  --methods LIST     methods, e.g. 1nn,svm,protonet (1nn,svm,protonet)\n"
            "  --norm un|l2n|cl2n feature normalisation for every feature method (1nn: cl2n,\n"
            "                     svm/logreg: l2n, protonet: un)\n"
            "  --C X              SVM / logistic regression C (1)\n"
            "  --threads N        workers, 0 = one per core (0); results never depend on it\n"
            "  --cache DIR        packed images and features (next to the data)\n"
            "  --image-size N     packed image side (84)\n"
            "  --resize N         test transform: shorter side (92)\n"
            "  --crop N           test transform: centre crop (84)\n"
            "  --arch conv4|res12 refuse a teacher of another architecture\n"
            "  --student SPEC     finetune/refilled options, e.g. \"stage1_steps=20,lr2=0.01,\n"
            "                     adapt=last\" (keys and defaults: include/fsb/student.h)\n"
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

int fsb_cmd_run(int argc, char **argv)
{
    enum {
        O_DATA = 256,
        O_TEACHER,
        O_OUT,
        O_SPLIT,
        O_WAY,
        O_SHOTS,
        O_QUERY,
        O_EPISODES,
        O_SEED,
        O_METHODS,
        O_NORM,
        O_C,
        O_THREADS,
        O_CACHE,
        O_SIZE,
        O_RESIZE,
        O_CROP,
        O_ARCH,
        O_STUDENT,
        O_KILL,
        O_HELP,
        O_SHARD
    };
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA},
        {"teacher", required_argument, 0, O_TEACHER},
        {"out", required_argument, 0, O_OUT},
        {"split", required_argument, 0, O_SPLIT},
        {"way", required_argument, 0, O_WAY},
        {"shots", required_argument, 0, O_SHOTS},
        {"query", required_argument, 0, O_QUERY},
        {"episodes", required_argument, 0, O_EPISODES},
        {"seed", required_argument, 0, O_SEED},
        {"methods", required_argument, 0, O_METHODS},
        {"norm", required_argument, 0, O_NORM},
        {"C", required_argument, 0, O_C},
        {"threads", required_argument, 0, O_THREADS},
        {"cache", required_argument, 0, O_CACHE},
        {"image-size", required_argument, 0, O_SIZE},
        {"resize", required_argument, 0, O_RESIZE},
        {"crop", required_argument, 0, O_CROP},
        {"arch", required_argument, 0, O_ARCH},
        {"student", required_argument, 0, O_STUDENT},
        /* fault injection for the resume tests: SIGKILL after N journaled tasks */
        {"debug-kill-after-tasks", required_argument, 0, O_KILL},
        {"help", no_argument, 0, O_HELP},
        {"shard", required_argument, 0, O_SHARD},
        {0, 0, 0, 0}};
    fsb_run_opts o;
    fsb_run_opts_default(&o);
    o.data = getenv("FSB_DATA");
    o.teacher = getenv("FSB_TEACHER");
    o.progress = stderr;
    o.log = stdout;
    char *methods_text = NULL, default_out[256];
    int size_set = 0;  /* --image-size/--resize/--crop given (the demo's defaults are 28) */
    int shape_set = 0; /* bits 1/2/4: --way/--query/--shots given (else a manifest's) */
    const char *teacher_flag = NULL; /* --teacher as given (the demo ignores $FSB_TEACHER) */
    long v = 0;
    int st = FSB_OK, c;
    optind = 1;
    opterr = 0;
    while (!st && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_DATA:
            o.data = optarg;
            break;
        case O_TEACHER:
            o.teacher = teacher_flag = optarg;
            break;
        case O_OUT:
            o.out = optarg;
            break;
        case O_SPLIT:
            o.split = optarg;
            break;
        case O_CACHE:
            o.cache_dir = optarg;
            break;
        case O_WAY:
            shape_set |= 1;
            if (!(st = fsb_cli_int("--way", optarg, 2, 1000, &v))) o.way = (int)v;
            break;
        case O_QUERY:
            shape_set |= 2;
            if (!(st = fsb_cli_int("--query", optarg, 1, 100000, &v))) o.query = (int)v;
            break;
        case O_SHOTS:
            shape_set |= 4;
            st = fsb_cli_int_list("--shots", optarg, 100000, o.shots, FSB_EPISODES_MAX_SHOTS,
                                  &o.n_shots);
            break;
        case O_EPISODES: {
            int is_path = 0;
            if (!(st = fsb_episodes_parse_arg("--episodes", optarg, &o.episodes, &is_path)) &&
                is_path)
                o.manifest = optarg;
            break;
        }
        case O_SEED:
            if (!(st = fsb_cli_int("--seed", optarg, 0, 0x7fffffffffffffffL, &v)))
                o.seed = (uint64_t)v;
            break;
        case O_METHODS:
            methods_text = optarg;
            break;
        case O_NORM: {
            fsb_norm n;
            if (!(st = fsb_norm_parse("--norm", optarg, &n))) o.norm = (int)n;
            break;
        }
        case O_C:
            st = fsb_cli_double("--C", optarg, 1e-8, 1e8, &o.C);
            break;
        case O_THREADS:
            if (!(st = fsb_cli_int("--threads", optarg, 0, 1024, &v))) o.threads = (int)v;
            break;
        case O_SIZE:
            size_set = 1;
            if (!(st = fsb_cli_int("--image-size", optarg, 8, 1024, &v))) o.image_size = (int)v;
            break;
        case O_RESIZE:
            size_set = 1;
            if (!(st = fsb_cli_int("--resize", optarg, 8, 1024, &v))) o.resize = (int)v;
            break;
        case O_CROP:
            size_set = 1;
            if (!(st = fsb_cli_int("--crop", optarg, 8, 1024, &v))) o.crop = (int)v;
            break;
        case O_ARCH: {
            fsb_arch a;
            if ((st = fsb_arch_parse(optarg, &a))) st = fsb_error_wrap(st, "--arch");
            o.arch = optarg;
            break;
        }
        case O_STUDENT: {
            fsb_student_opts so; /* checked here so that a typo fails before any work */
            fsb_student_opts_default(&so);
            if (!(st = fsb_student_opts_parse(&so, optarg, "--student"))) o.student = optarg;
            break;
        }
        case O_KILL:
            st = fsb_cli_int("--debug-kill-after-tasks", optarg, 1, 0x7fffffffL,
                             &o.kill_after_tasks);
            break;
        case O_HELP:
            run_usage(stdout);
            return FSB_OK;
        case O_SHARD:
            st = fsb_shard_parse("--shard", optarg, &o.shard);
            break;
        default:
            st = fsb_error(FSB_EINVAL, "unknown or incomplete flag '%s' (bench run --help)",
                           argv[optind - 1]);
        }
    }
    if (!st && optind < argc) st = fsb_error(FSB_EINVAL, "unexpected argument '%s'", argv[optind]);
    if (!st && methods_text)
        st = split_list("--methods", methods_text, o.methods, FSB_RUN_MAX_METHODS, &o.n_methods);
    if (st) return st;
    if (o.manifest) { /* replaying: what was not given comes from the manifest */
        if (!(shape_set & 1)) o.way = 0;
        if (!(shape_set & 2)) o.query = 0;
        if (!(shape_set & 4)) o.n_shots = 0;
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
        if (!size_set) o.image_size = o.resize = o.crop = 28;
        if (!o.out) o.out = "runs/demo-fashion-mnist";
    }
    if (!o.teacher)
        return fsb_cli_dist_end("run", fsb_error(FSB_EINVAL, "no teacher: pass --teacher CKPT "
                                                             "or set FSB_TEACHER"));
    if (!o.out) {
        snprintf(default_out, sizeof default_out, "runs/%s-%dway-seed%llu", o.split, o.way,
                 (unsigned long long)o.seed);
        o.out = default_out;
    }
    st = fsb_run(&o);
    fsb_demo_free(&demo);
    return fsb_cli_dist_end("run", st); /* mpirun: a failing rank ends the job */
}
