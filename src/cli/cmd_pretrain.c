/* cmd_pretrain.c - `bench pretrain --data ROOT --arch conv4 --out PATH ...`: teacher
 * pre-training on the train split (cross-entropy, or ProtoNet or FEAT episodes from an
 * --init checkpoint, or MAML meta-training of its own ConvNet-4-32), resumable by rerunning
 * the same command. */
#include "cli.h"
#include "fsb/method.h"
#include "fsb/optim.h"
#include "fsb/pretrain.h"
#include "fsb/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pretrain_usage(FILE *out)
{
    fprintf(out,
            "usage: bench pretrain --data ROOT --out PATH [flags]\n"
            "  --objective ce|protonet|feat|maml  cross-entropy on all train classes, or\n"
            "                       episodic ProtoNet, FEAT (Ye et al. 2020) or MAML (Finn et\n"
            "                       al. 2017) meta-training (ce)\n"
            "  --init PATH          start from this checkpoint's backbone and architecture\n"
            "                       (fresh initialisation)\n"
            "  --arch conv4|conv4-32|res12  backbone, conv4-32 = 32 filters per block (conv4;\n"
            "                       maml conv4-32; --init's; must match it if given)\n"
            "  --epochs N           epochs (100)\n"
            "  --batch N            ce: images per step (128)\n"
            "  --train-way N        protonet, feat: classes per training episode (5)\n"
            "  --train-shot N       protonet, feat: support images per class (1)\n"
            "  --train-query N      protonet, feat: query images per class (15)\n"
            "  --episodes-per-epoch N  protonet, feat: episodes (steps) per epoch (100)\n"
            "  --temperature X      protonet, feat: logits = -squared distance / X (1; FEAT's\n"
            "                       recipes use 64 with --lr 0.0001 --schedule step:20:0.5)\n"
            "  --temperature2 X     feat: the regulariser's temperature (16; FEAT's ConvNet:\n"
            "                       16 for 1-shot, 64 for 5-shot episodes)\n"
            "  --balance X          feat: weight of the regulariser (1; FEAT's ConvNet: 1 for\n"
            "                       1-shot, 0.1 for 5-shot)\n"
            "  --lr-mul X           feat: the attention block's lr = --lr x X (10, FEAT's)\n"
            "  --meta-batch N       maml: tasks per meta-iteration, meta-gradients averaged (4;\n"
            "                       Finn: 4 for 1-shot, 2 for 5-shot); an epoch is\n"
            "                       --episodes-per-epoch meta-iterations\n"
            "  --inner-steps N      maml: inner SGD steps in training (5)\n"
            "  --inner-steps-test N maml: inner SGD steps at validation (10)\n"
            "  --inner-lr X         maml: inner SGD learning rate (0.01)\n"
            "  --first-order        maml: first-order MAML, labelled so in the log and the\n"
            "                       checkpoint (maml.order 1)\n"
            "  --hvp-eps X          maml: relative step of the finite-difference Hessian-vector\n"
            "                       products (0.01; maml.h)\n"
            "  --lr X               base learning rate (ce 0.1, protonet, feat, maml 0.001)\n"
            "  --schedule SPEC      cosine:T[:min] | step:k:gamma | multistep:a,b:gamma |\n"
            "                       constant, optionally +warmup=W[:f] (cosine over --epochs;\n"
            "                       maml constant)\n"
            "  --optimizer sgd|adam|adamw  SGD with Nesterov momentum, or Adam / AdamW with\n"
            "                       torch's betas (0.9, 0.999), eps 1e-8 (sgd; FEAT's ConvNet\n"
            "                       recipes: adam --weight-decay 0; maml: adam)\n"
            "  --momentum X         sgd: Nesterov momentum (0.9)\n"
            "  --weight-decay X     (5e-4, maml 0; adamw: decoupled)\n"
            "  --augment on|off     off: training images get the val transform (on; maml\n"
            "                       off, and on is refused)\n"
            "  --crop-scale LO,HI   augment: random resized crop area range (0.08,1)\n"
            "  --jitter X           augment: colour jitter strength, 0 = none (0.4)\n"
            "  --flip on|off        augment: horizontal flips (on; off for characters)\n"
            "  --seed N             (0)\n"
            "  --threads N          workers, 0 = one per core (0)\n"
            "  --val-every K        validate every K epochs (1)\n"
            "  --val-episodes N     fixed val episodes per shot (500)\n"
            "  --val-shots LIST     val shots; the best mean over them is kept (1,5)\n"
            "  --val-way N          (5)   --val-query N (15)   --val-seed N (0)\n"
            "  --val-norm un|l2n    prototype classifier features (l2n)\n"
            "  --max-per-class N    train images per class, 0 = all (0)\n"
            "  --cache DIR          packed images (next to the data)\n"
            "  --image-size N       packed image side (--init's, else 84)\n"
            "  --resize N / --crop N  val transform and network input (--init's, else 92 / 84;\n"
            "                       the checkpoint records all three for bench run)\n"
            "Writes PATH (best checkpoint), PATH.state (resume), PATH.csv (log), PATH.png (plot).\n"
            "Rerun the same command after an interruption to resume. A protonet or feat\n"
            "checkpoint has no classifier head (feat's holds FEAT's slf_attn.* block besides);\n"
            "`bench --teacher` uses only its embedding. A maml checkpoint is the whole network\n"
            "with its --train-way head and maml.* meta (docs/formats.md); maml validates by\n"
            "adapting on each val episode (--val-way must equal --train-way).\n");
}

/* --arch NAME into the options' arch and width: conv4-32 is ConvNet-4 with 32 filters per
 * block (as `bench perf --arch conv4-32`). Noted as given (it must then match --init). */
static int parse_arch(void *dst, const char *flag, const char *text)
{
    fsb_pretrain_opts *o = dst;
    if (strcmp(text, "conv4-32") == 0) {
        o->arch = FSB_ARCH_CONV4;
        o->width = 32;
        return FSB_OK;
    }
    o->width = 0;
    int st = fsb_arch_parse(text, &o->arch);
    return st ? fsb_error_wrap(st, "%s", flag) : FSB_OK;
}

static int parse_optimizer(void *dst, const char *flag, const char *text)
{
    int k = fsb_opt_kind_parse(text);
    if (k < 0) return fsb_error(FSB_EINVAL, "%s: '%s' is not sgd, adam or adamw", flag, text);
    *(int *)dst = k;
    return FSB_OK;
}

static int parse_on_off(void *dst, const char *flag, const char *text)
{
    if (strcmp(text, "on") == 0)
        *(int *)dst = 1;
    else if (strcmp(text, "off") == 0)
        *(int *)dst = 0;
    else
        return fsb_error(FSB_EINVAL, "%s: '%s' is not on or off", flag, text);
    return FSB_OK;
}

/* --crop-scale LO,HI: 0 < LO <= HI <= 1 */
static int parse_crop_scale(void *dst, const char *flag, const char *text)
{
    fsb_pretrain_opts *o = dst;
    double lo, hi;
    int used = 0;
    if (sscanf(text, "%lf,%lf%n", &lo, &hi, &used) != 2 || text[used] || !(lo > 0) || !(lo <= hi) ||
        !(hi <= 1))
        return fsb_error(FSB_EINVAL, "%s: '%s' is not LO,HI with 0 < LO <= HI <= 1", flag, text);
    o->crop_scale_lo = lo;
    o->crop_scale_hi = hi;
    return FSB_OK;
}

static int parse_objective(void *dst, const char *flag, const char *text)
{
    if (strcmp(text, "ce") == 0)
        *(int *)dst = FSB_PRETRAIN_CE;
    else if (strcmp(text, "protonet") == 0)
        *(int *)dst = FSB_PRETRAIN_PROTONET;
    else if (strcmp(text, "feat") == 0)
        *(int *)dst = FSB_PRETRAIN_FEAT;
    else if (strcmp(text, "maml") == 0)
        *(int *)dst = FSB_PRETRAIN_MAML;
    else
        return fsb_error(FSB_EINVAL, "%s: '%s' is not ce, protonet, feat or maml", flag, text);
    return FSB_OK;
}

/* The maml-only flags are refused for the other objectives, naming the first given; maml
 * takes Finn's meta-optimiser (Adam, lr 0.001 -- the episodic default --, no weight decay) and
 * no augmentation unless --optimizer / --weight-decay / --augment say otherwise (--augment on
 * is then refused by fsb_pretrain). */
static int maml_flags(fsb_pretrain_opts *o, const int *set, int optimizer_set, int wd_set,
                      int augment_set)
{
    static const char *const names[6] = {"--meta-batch", "--inner-steps", "--inner-steps-test",
                                         "--inner-lr",   "--first-order", "--hvp-eps"};
    if (o->objective != FSB_PRETRAIN_MAML) {
        for (int k = 0; k < 6; k++)
            if (set[k])
                return fsb_error(FSB_EINVAL, "%s applies to --objective maml only", names[k]);
        return FSB_OK;
    }
    if (o->first_order && set[5])
        return fsb_error(FSB_EINVAL, "--hvp-eps: first-order maml computes no Hessian-vector "
                                     "products");
    if (!optimizer_set) o->optimizer = FSB_OPT_ADAM;
    if (!wd_set) o->weight_decay = 0;
    if (!augment_set) o->augment = 0;
    return FSB_OK;
}

int fsb_cmd_pretrain(int argc, char **argv)
{
    fsb_pretrain_opts o;
    fsb_pretrain_opts_default(&o);
    o.progress = stderr;
    o.log = stdout;
    int episodic_set = 0, batch_set = 0, momentum_set = 0, aug_set = 0; /* of one setting */
    int feat_set = 0, temperature_set = 0, optimizer_set = 0, augment_set = 0, wd_set = 0;
    int maml_set[6] = {0}; /* the maml-only flags, in the order of maml_flags */
    const fsb_cli_flag flags[] = {
        FSB_FLAG("data", FSB_FLAG_STR, &o.data),
        FSB_FLAG("out", FSB_FLAG_STR, &o.out),
        FSB_FLAG("cache", FSB_FLAG_STR, &o.cache_dir),
        FSB_FLAG("arch", FSB_FLAG_FN, &o, .fn = parse_arch, .given = &o.arch_set),
        FSB_FLAG("objective", FSB_FLAG_FN, &o.objective, .fn = parse_objective),
        FSB_FLAG("init", FSB_FLAG_STR, &o.init),
        FSB_FLAG("train-way", FSB_FLAG_INT, &o.train_way, .lo = 2, .hi = 10000,
                 .given = &episodic_set),
        FSB_FLAG("train-shot", FSB_FLAG_INT, &o.train_shot, .lo = 1, .hi = 10000,
                 .given = &episodic_set),
        FSB_FLAG("train-query", FSB_FLAG_INT, &o.train_query, .lo = 1, .hi = 10000,
                 .given = &episodic_set),
        FSB_FLAG("episodes-per-epoch", FSB_FLAG_INT, &o.train_episodes, .lo = 1, .hi = 10000000,
                 .given = &episodic_set),
        FSB_FLAG("temperature", FSB_FLAG_DOUBLE, &o.temperature, .lo = 1e-6, .hi = 1e6,
                 .given = &temperature_set),
        FSB_FLAG("meta-batch", FSB_FLAG_INT, &o.meta_batch, .lo = 1, .hi = 10000,
                 .given = &maml_set[0]),
        FSB_FLAG("inner-steps", FSB_FLAG_INT, &o.inner_steps, .lo = 0, .hi = 1000,
                 .given = &maml_set[1]),
        FSB_FLAG("inner-steps-test", FSB_FLAG_INT, &o.inner_steps_test, .lo = 0, .hi = 1000,
                 .given = &maml_set[2]),
        FSB_FLAG("inner-lr", FSB_FLAG_DOUBLE, &o.inner_lr, .lo = 0, .hi = 1e3,
                 .given = &maml_set[3]),
        FSB_FLAG("first-order", FSB_FLAG_SWITCH, &o.first_order, .given = &maml_set[4]),
        FSB_FLAG("hvp-eps", FSB_FLAG_DOUBLE, &o.hvp_eps, .lo = 1e-12, .hi = 0.5,
                 .given = &maml_set[5]),
        FSB_FLAG("temperature2", FSB_FLAG_DOUBLE, &o.temperature2, .lo = 1e-6, .hi = 1e6,
                 .given = &feat_set),
        FSB_FLAG("balance", FSB_FLAG_DOUBLE, &o.balance, .lo = 0, .hi = 1e6, .given = &feat_set),
        FSB_FLAG("lr-mul", FSB_FLAG_DOUBLE, &o.lr_mul, .lo = 0, .hi = 1e6, .given = &feat_set),
        FSB_FLAG("epochs", FSB_FLAG_INT, &o.epochs, .lo = 1, .hi = 100000),
        FSB_FLAG("batch", FSB_FLAG_INT, &o.batch, .lo = 2, .hi = 4096, .given = &batch_set),
        FSB_FLAG("lr", FSB_FLAG_DOUBLE, &o.lr, .lo = 0, .hi = 100),
        FSB_FLAG("schedule", FSB_FLAG_STR, &o.schedule),
        FSB_FLAG("optimizer", FSB_FLAG_FN, &o.optimizer, .fn = parse_optimizer,
                 .given = &optimizer_set),
        FSB_FLAG("augment", FSB_FLAG_FN, &o.augment, .fn = parse_on_off, .given = &augment_set),
        FSB_FLAG("crop-scale", FSB_FLAG_FN, &o, .fn = parse_crop_scale, .given = &aug_set),
        FSB_FLAG("jitter", FSB_FLAG_DOUBLE, &o.jitter, .lo = 0, .hi = 0.999, .given = &aug_set),
        FSB_FLAG("flip", FSB_FLAG_FN, &o.flip, .fn = parse_on_off, .given = &aug_set),
        FSB_FLAG("momentum", FSB_FLAG_DOUBLE, &o.momentum, .lo = 1e-6, .hi = 0.999,
                 .given = &momentum_set),
        FSB_FLAG("weight-decay", FSB_FLAG_DOUBLE, &o.weight_decay, .lo = 0, .hi = 1,
                 .given = &wd_set),
        FSB_FLAG("seed", FSB_FLAG_U64, &o.seed, .lo = 0, .hi = 9.2e18),
        FSB_FLAG("threads", FSB_FLAG_INT, &o.threads, .lo = 0, .hi = 1024),
        FSB_FLAG("val-every", FSB_FLAG_INT, &o.val_every, .lo = 1, .hi = 100000),
        FSB_FLAG("val-episodes", FSB_FLAG_INT, &o.val_episodes, .lo = 1, .hi = 1000000),
        FSB_FLAG("val-shots", FSB_FLAG_INTLIST, o.val_shots, .lo = FSB_PRETRAIN_MAX_VAL_SHOTS,
                 .hi = 100000, .count = &o.n_val_shots),
        FSB_FLAG("val-way", FSB_FLAG_INT, &o.val_way, .lo = 2, .hi = 1000),
        FSB_FLAG("val-query", FSB_FLAG_INT, &o.val_query, .lo = 1, .hi = 10000),
        FSB_FLAG("val-seed", FSB_FLAG_U64, &o.val_seed, .lo = 0, .hi = 9.2e18),
        FSB_FLAG("val-norm", FSB_FLAG_FN, &o.val_norm, .fn = fsb_cli_norm),
        FSB_FLAG("max-per-class", FSB_FLAG_INT, &o.max_per_class, .lo = 0, .hi = 1000000),
        FSB_FLAG("image-size", FSB_FLAG_INT, &o.image_size, .lo = 8, .hi = 1024),
        FSB_FLAG("resize", FSB_FLAG_INT, &o.resize, .lo = 8, .hi = 1024),
        FSB_FLAG("crop", FSB_FLAG_INT, &o.crop, .lo = 8, .hi = 1024),
        /* fault injection for the resume tests: SIGKILL after N steps of this process */
        FSB_FLAG("debug-kill-after-steps", FSB_FLAG_LONG, &o.kill_after_steps, .lo = 1,
                 .hi = 0x7fffffff),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help, st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                                 "pretrain", &help);
    if (!st && help) {
        pretrain_usage(stdout);
        return FSB_OK;
    }
    if (st) return st;
    int proto = o.objective != FSB_PRETRAIN_CE; /* episodic: protonet, feat or maml */
    if (!proto && (episodic_set || temperature_set))
        return fsb_error(FSB_EINVAL, "--train-way, --train-shot, --train-query, "
                                     "--episodes-per-epoch and --temperature apply to "
                                     "--objective protonet, feat or maml only");
    if (o.objective == FSB_PRETRAIN_MAML && temperature_set)
        return fsb_error(FSB_EINVAL, "--temperature applies to --objective protonet or feat only");
    if ((st = maml_flags(&o, maml_set, optimizer_set, wd_set, augment_set))) return st;
    if (o.objective != FSB_PRETRAIN_FEAT && feat_set)
        return fsb_error(FSB_EINVAL, "--temperature2, --balance and --lr-mul apply to "
                                     "--objective feat only");
    if (!o.augment && aug_set)
        return fsb_error(FSB_EINVAL, "--crop-scale, --jitter and --flip apply to --augment on");
    if (o.optimizer != FSB_OPT_SGD && momentum_set)
        return fsb_error(FSB_EINVAL, "--momentum applies to --optimizer sgd only");
    if (proto && batch_set)
        return fsb_error(FSB_EINVAL, "--batch applies to --objective ce only (an episodic batch "
                                     "is one episode: --train-way x (--train-shot + "
                                     "--train-query))");
    /* mpirun: data-parallel over the ranks (pretrain_dist.h); rank 0 alone talks */
    if ((st = fsb_cli_dist_start(&argc, &argv, &o.progress, &o.log, &o.threads)))
        return fsb_cli_dist_end("pretrain", st);
    return fsb_cli_dist_end("pretrain", fsb_pretrain(&o));
}
