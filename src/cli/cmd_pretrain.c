/* cmd_pretrain.c - `bench pretrain --data ROOT --arch conv4 --out PATH ...`: teacher
 * pre-training on the train split (cross-entropy, or ProtoNet episodes from an --init
 * checkpoint), resumable by rerunning the same command. */
#include "cli.h"
#include "fsb/method.h"
#include "fsb/pretrain.h"
#include "fsb/status.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pretrain_usage(FILE *out)
{
    fprintf(out,
            "usage: bench pretrain --data ROOT --out PATH [flags]\n"
            "  --objective ce|protonet  cross-entropy on all train classes, or episodic\n"
            "                       ProtoNet meta-training (ce)\n"
            "  --init PATH          start from this checkpoint's backbone and architecture\n"
            "                       (fresh initialisation)\n"
            "  --arch conv4|res12   backbone (conv4, or --init's; must match it if given)\n"
            "  --epochs N           epochs (100)\n"
            "  --batch N            ce: images per step (128)\n"
            "  --train-way N        protonet: classes per training episode (5)\n"
            "  --train-shot N       protonet: support images per class (1)\n"
            "  --train-query N      protonet: query images per class (15)\n"
            "  --episodes-per-epoch N  protonet: episodes (SGD steps) per epoch (100)\n"
            "  --temperature X      protonet: logits = -squared distance / X (1; FEAT's\n"
            "                       recipes use 64 with --lr 0.0001 --schedule step:20:0.5)\n"
            "  --lr X               base learning rate (ce 0.1, protonet 0.001)\n"
            "  --schedule SPEC      cosine:T[:min] | step:k:gamma | multistep:a,b:gamma |\n"
            "                       constant, optionally +warmup=W[:f] (cosine over --epochs)\n"
            "  --momentum X         Nesterov momentum (0.9)\n"
            "  --weight-decay X     (5e-4)\n"
            "  --seed N             (0)\n"
            "  --threads N          workers, 0 = one per core (0)\n"
            "  --val-every K        validate every K epochs (1)\n"
            "  --val-episodes N     fixed val episodes per shot (500)\n"
            "  --val-way N          (5)   --val-query N (15)   --val-seed N (0)\n"
            "  --val-norm un|l2n    prototype classifier features (l2n)\n"
            "  --max-per-class N    train images per class, 0 = all (0)\n"
            "  --cache DIR          packed images (next to the data)\n"
            "  --image-size N       packed image side (84)\n"
            "  --resize N / --crop N  val transform and network input (92 / 84)\n"
            "Writes PATH (best checkpoint), PATH.state (resume), PATH.csv (log), PATH.png (plot).\n"
            "Rerun the same command after an interruption to resume. A protonet checkpoint\n"
            "has no classifier head; `bench --teacher` uses only its embedding.\n");
}

int fsb_cmd_pretrain(int argc, char **argv)
{
    enum {
        O_DATA = 256,
        O_OUT,
        O_ARCH,
        O_EPOCHS,
        O_BATCH,
        O_LR,
        O_SCHEDULE,
        O_MOMENTUM,
        O_WD,
        O_SEED,
        O_THREADS,
        O_VAL_EVERY,
        O_VAL_EPISODES,
        O_VAL_WAY,
        O_VAL_QUERY,
        O_VAL_SEED,
        O_VAL_NORM,
        O_MAX_PER_CLASS,
        O_CACHE,
        O_SIZE,
        O_RESIZE,
        O_CROP,
        O_KILL,
        O_HELP,
        O_OBJECTIVE,
        O_INIT,
        O_TRAIN_WAY,
        O_TRAIN_SHOT,
        O_TRAIN_QUERY,
        O_EPISODES,
        O_TEMP
    };
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA},
        {"out", required_argument, 0, O_OUT},
        {"arch", required_argument, 0, O_ARCH},
        {"objective", required_argument, 0, O_OBJECTIVE},
        {"init", required_argument, 0, O_INIT},
        {"train-way", required_argument, 0, O_TRAIN_WAY},
        {"train-shot", required_argument, 0, O_TRAIN_SHOT},
        {"train-query", required_argument, 0, O_TRAIN_QUERY},
        {"episodes-per-epoch", required_argument, 0, O_EPISODES},
        {"temperature", required_argument, 0, O_TEMP},
        {"epochs", required_argument, 0, O_EPOCHS},
        {"batch", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR},
        {"schedule", required_argument, 0, O_SCHEDULE},
        {"momentum", required_argument, 0, O_MOMENTUM},
        {"weight-decay", required_argument, 0, O_WD},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"val-every", required_argument, 0, O_VAL_EVERY},
        {"val-episodes", required_argument, 0, O_VAL_EPISODES},
        {"val-way", required_argument, 0, O_VAL_WAY},
        {"val-query", required_argument, 0, O_VAL_QUERY},
        {"val-seed", required_argument, 0, O_VAL_SEED},
        {"val-norm", required_argument, 0, O_VAL_NORM},
        {"max-per-class", required_argument, 0, O_MAX_PER_CLASS},
        {"cache", required_argument, 0, O_CACHE},
        {"image-size", required_argument, 0, O_SIZE},
        {"resize", required_argument, 0, O_RESIZE},
        {"crop", required_argument, 0, O_CROP},
        /* fault injection for the resume tests: SIGKILL after N steps of this process */
        {"debug-kill-after-steps", required_argument, 0, O_KILL},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    fsb_pretrain_opts o;
    fsb_pretrain_opts_default(&o);
    o.progress = stderr;
    o.log = stdout;
    long v = 0;
    int st = FSB_OK, c;
    optind = 1;
    opterr = 0;
    while (!st && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_DATA:
            o.data = optarg;
            break;
        case O_OUT:
            o.out = optarg;
            break;
        case O_CACHE:
            o.cache_dir = optarg;
            break;
        case O_SCHEDULE:
            o.schedule = optarg;
            break;
        case O_ARCH:
            if ((st = fsb_arch_parse(optarg, &o.arch))) st = fsb_error_wrap(st, "--arch");
            o.arch_set = 1;
            break;
        case O_OBJECTIVE:
            if (strcmp(optarg, "ce") == 0)
                o.objective = FSB_PRETRAIN_CE;
            else if (strcmp(optarg, "protonet") == 0)
                o.objective = FSB_PRETRAIN_PROTONET;
            else
                st = fsb_error(FSB_EINVAL, "--objective: '%s' is not ce or protonet", optarg);
            break;
        case O_INIT:
            o.init = optarg;
            break;
        case O_TRAIN_WAY:
            if (!(st = fsb_cli_int("--train-way", optarg, 2, 10000, &v))) o.train_way = (int)v;
            break;
        case O_TRAIN_SHOT:
            if (!(st = fsb_cli_int("--train-shot", optarg, 1, 10000, &v))) o.train_shot = (int)v;
            break;
        case O_TRAIN_QUERY:
            if (!(st = fsb_cli_int("--train-query", optarg, 1, 10000, &v))) o.train_query = (int)v;
            break;
        case O_EPISODES:
            if (!(st = fsb_cli_int("--episodes-per-epoch", optarg, 1, 10000000, &v)))
                o.train_episodes = (int)v;
            break;
        case O_TEMP:
            st = fsb_cli_double("--temperature", optarg, 1e-6, 1e6, &o.temperature);
            break;
        case O_EPOCHS:
            if (!(st = fsb_cli_int("--epochs", optarg, 1, 100000, &v))) o.epochs = (int)v;
            break;
        case O_BATCH:
            if (!(st = fsb_cli_int("--batch", optarg, 2, 4096, &v))) o.batch = (int)v;
            break;
        case O_LR:
            st = fsb_cli_double("--lr", optarg, 0, 100, &o.lr);
            break;
        case O_MOMENTUM:
            st = fsb_cli_double("--momentum", optarg, 1e-6, 0.999, &o.momentum);
            break;
        case O_WD:
            st = fsb_cli_double("--weight-decay", optarg, 0, 1, &o.weight_decay);
            break;
        case O_SEED:
            if (!(st = fsb_cli_int("--seed", optarg, 0, 0x7fffffffffffffffL, &v)))
                o.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (!(st = fsb_cli_int("--threads", optarg, 0, 1024, &v))) o.threads = (int)v;
            break;
        case O_VAL_EVERY:
            if (!(st = fsb_cli_int("--val-every", optarg, 1, 100000, &v))) o.val_every = (int)v;
            break;
        case O_VAL_EPISODES:
            if (!(st = fsb_cli_int("--val-episodes", optarg, 1, 1000000, &v)))
                o.val_episodes = (int)v;
            break;
        case O_VAL_WAY:
            if (!(st = fsb_cli_int("--val-way", optarg, 2, 1000, &v))) o.val_way = (int)v;
            break;
        case O_VAL_QUERY:
            if (!(st = fsb_cli_int("--val-query", optarg, 1, 10000, &v))) o.val_query = (int)v;
            break;
        case O_VAL_SEED:
            if (!(st = fsb_cli_int("--val-seed", optarg, 0, 0x7fffffffffffffffL, &v)))
                o.val_seed = (uint64_t)v;
            break;
        case O_VAL_NORM: {
            fsb_norm n;
            if (!(st = fsb_norm_parse("--val-norm", optarg, &n))) o.val_norm = (int)n;
            break;
        }
        case O_MAX_PER_CLASS:
            if (!(st = fsb_cli_int("--max-per-class", optarg, 0, 1000000, &v)))
                o.max_per_class = (int)v;
            break;
        case O_SIZE:
            if (!(st = fsb_cli_int("--image-size", optarg, 8, 1024, &v))) o.image_size = (int)v;
            break;
        case O_RESIZE:
            if (!(st = fsb_cli_int("--resize", optarg, 8, 1024, &v))) o.resize = (int)v;
            break;
        case O_CROP:
            if (!(st = fsb_cli_int("--crop", optarg, 8, 1024, &v))) o.crop = (int)v;
            break;
        case O_KILL:
            st = fsb_cli_int("--debug-kill-after-steps", optarg, 1, 0x7fffffffL,
                             &o.kill_after_steps);
            break;
        case O_HELP:
            pretrain_usage(stdout);
            return FSB_OK;
        default:
            st = fsb_error(FSB_EINVAL, "unknown or incomplete flag '%s' (bench pretrain --help)",
                           argv[optind - 1]);
        }
    }
    if (!st && optind < argc) st = fsb_error(FSB_EINVAL, "unexpected argument '%s'", argv[optind]);
    if (st) return st;
    /* mpirun: data-parallel over the ranks (pretrain_dist.h); rank 0 alone talks */
    if ((st = fsb_cli_dist_start(&argc, &argv, &o.progress, &o.log, &o.threads)))
        return fsb_cli_dist_end("pretrain", st);
    return fsb_cli_dist_end("pretrain", fsb_pretrain(&o));
}
