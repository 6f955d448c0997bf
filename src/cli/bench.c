/* bench.c - entry point of the `bench` command: OpenBLAS kernel selection, then dispatch
 * to a subcommand found by name in one table. A failing subcommand's status becomes the
 * exit code (2 for usage errors, 1 otherwise) after its message is printed to stderr.
 */
#include "cli.h"
#include "fsb/blas.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const fsb_cli_cmd commands[] = {
    {"run", fsb_cmd_run, "the benchmark (also: bench --data ... with no command word)"},
    {"pretrain", fsb_cmd_pretrain, "pre-train a teacher on the train split (resumable)"},
    {"version", fsb_cmd_version, "print versions, the CPU and the OpenBLAS core in use"},
    {"episodes", fsb_cmd_episodes, "draw nested episodes or replay a manifest; export a manifest"},
    {"data", fsb_cmd_data, "check a dataset folder, or pack its splits into the image cache"},
    {"perf", fsb_cmd_perf, "images/s of the backbone engine (train step, inference), profile"},
    {"table", fsb_cmd_table, "rebuild a run's summary, tables and plot from per_episode.csv"},
    {"perf-methods", fsb_cmd_perf_methods, "time the frozen-feature methods on random episodes"},
    {"tune", fsb_cmd_tune, "choose finetune/refilled options on val-split episodes"},
    {"merge", fsb_cmd_merge, "merge the folders of bench --shard i/n into one run folder"},
    {"compare", fsb_cmd_compare,
     "two runs on the same episodes, paired: B - A per method and shot"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

/* OpenBLAS picks its kernels when it is loaded; if it picked generic ones for this CPU,
 * run ourselves again with OPENBLAS_CORETYPE set (once; never over a user's setting). */
static void select_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE"))
        return; /* the user's choice, or ours after the re-exec (FSB_BLAS_AUTO=1) */
    const char *want = fsb_blas_preferred_core();
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("FSB_BLAS_AUTO", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the kernels we have */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("FSB_BLAS_AUTO");
}

static int report(const char *name, int st)
{
    if (st != 0) fprintf(stderr, "bench %s: %s\n", name, fsb_error_last());
    /* a report printed to a full disk or a closed pipe is not a success */
    if ((fflush(stdout) != 0 || ferror(stdout)) && st == 0) {
        fprintf(stderr, "bench %s: cannot write the standard output\n", name);
        return 1;
    }
    return fsb_status_exit_code(st);
}

/* argv[0] is "bench" and flags follow: the run command with the same argv. */
static int run_main(int argc, char **argv)
{
    return report("run", fsb_cmd_run(argc, argv));
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench <command> [flags]   (bench <command> --help for its flags)\n\n");
    for (int i = 0; i < n_commands; i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    select_blas_kernels(argv);
    fsb_fpu_flush_subnormals(); /* pools set it in their workers too (threads.h) */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return report("--help", 0);
    }
    if (!strcmp(name, "--version"))
        name = "version";
    else if (name[0] == '-') /* `bench --shots 1,5 ...`: the main job */
        return run_main(argc, argv);
    for (int i = 0; i < n_commands; i++) {
        if (strcmp(commands[i].name, name) != 0) continue;
        return report(name, commands[i].run(argc - 1, argv + 1));
    }
    fprintf(stderr, "bench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
