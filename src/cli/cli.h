/* cli.h - shared pieces of the `bench` command line: the subcommand table entry type and
 * strict flag-value parsers whose errors name the flag. Only the CLI maps a status to an
 * exit code; everything here returns fsb_status like the library.
 */
#ifndef FSB_CLI_H
#define FSB_CLI_H

#include <stdint.h>
#include <stdio.h>

typedef struct fsb_cli_cmd {
    const char *name;                  /* first word after `bench` */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name; returns fsb_status */
    const char *summary;               /* one line for `bench --help` */
} fsb_cli_cmd;

/* Parse a whole-number flag value in [lo, hi]. */
int fsb_cli_int(const char *flag, const char *text, long lo, long hi, long *out);
/* Parse a finite floating-point flag value in [lo, hi]. */
int fsb_cli_double(const char *flag, const char *text, double lo, double hi, double *out);
/* Parse "1,5,10,30": 1..max_n positive integers <= hi, strictly increasing after sorting
 * and without duplicates; returned sorted ascending. */
int fsb_cli_int_list(const char *flag, const char *text, long hi, int *vals, int max_n, int *n);

struct option;
/* getopt_long accepts any unique prefix of a flag (--de for --debug-kill-after-tasks); bench
 * does not: FSB_EINVAL naming the typed flag and the one it abbreviates, if any flag argument
 * in argv is not spelled out. Flag values (the argument after a flag that takes one) are
 * skipped. Call before the getopt_long loop. */
int fsb_cli_exact_names(int argc, char **argv, const struct option *longopts, const char *cmd);

/* How a flag's value is parsed by fsb_cli_parse. */
typedef enum fsb_flag_kind {
    FSB_FLAG_STR,     /* const char *: the text itself */
    FSB_FLAG_INT,     /* int in [lo, hi] */
    FSB_FLAG_LONG,    /* long in [lo, hi] */
    FSB_FLAG_U64,     /* uint64_t in [lo, hi] (seeds) */
    FSB_FLAG_DOUBLE,  /* double in [lo, hi] */
    FSB_FLAG_INTLIST, /* int[]: "1,5,10" ascending, values in [1, hi], at most lo of them */
    FSB_FLAG_FN,      /* fn(dst, "--name", text) parses and checks it */
    FSB_FLAG_SWITCH,  /* no value: int *dst = 1 */
    FSB_FLAG_HELP,    /* no value: the caller prints its usage */
    FSB_FLAG_ARGS     /* not a flag: the arguments after the flags, char ** into dst
                         (char ***), their number into *count; name describes them; without
                         such an entry a stray argument is an error */
} fsb_flag_kind;

/* Parse one value for a FSB_FLAG_FN flag; errors name `flag`. */
typedef int (*fsb_flag_fn)(void *dst, const char *flag, const char *text);

/* One flag of a subcommand, `--name VALUE`, stored into *dst (its type follows kind). */
typedef struct fsb_cli_flag {
    const char *name;   /* long name without "--" */
    fsb_flag_kind kind; /* how VALUE is parsed */
    void *dst;          /* where it goes */
    double lo, hi;      /* accepted range (FSB_FLAG_INTLIST: lo = most values) */
    int *count;         /* FSB_FLAG_INTLIST: number of values stored */
    fsb_flag_fn fn;     /* FSB_FLAG_FN: the parser */
    int *given;         /* set to 1 when the flag appears, or NULL */
} fsb_cli_flag;

#define FSB_CLI_MAX_FLAGS 64
/* A table entry: FSB_FLAG("way", FSB_FLAG_INT, &o.way, .lo = 2, .hi = 1000). */
#define FSB_FLAG(flag_name, flag_kind, flag_dst, ...)                                              \
    {                                                                                              \
        .name = (flag_name), .kind = (flag_kind), .dst = (flag_dst), __VA_ARGS__                   \
    }

/* The one flag parser of every `bench` command: getopt_long over a flag table, every value
 * parsed and range-checked into its field, errors naming the flag, in one wording for all
 * commands: "unknown flag '--x'", "--x needs a value", "unexpected argument 'y'" (each with
 * "(bench <cmd> --help)"); abbreviated flags are refused (fsb_cli_exact_names). *help = 1
 * when --help was given (parsing stops there). */
int fsb_cli_parse(int argc, char **argv, const fsb_cli_flag *flags, int n_flags, const char *cmd,
                  int *help);
/* FSB_FLAG_FN parsers shared by several commands: a feature normalisation into an int
 * (fsb_norm), an architecture name checked and kept as text (const char *). */
int fsb_cli_norm(void *dst, const char *flag, const char *text);
int fsb_cli_arch(void *dst, const char *flag, const char *text);

/* Subcommands (one file each in src/cli/). */
int fsb_cmd_version(int argc, char **argv);
int fsb_cmd_run(int argc, char **argv);
int fsb_cmd_pretrain(int argc, char **argv);
int fsb_cmd_episodes(int argc, char **argv);
int fsb_cmd_data(int argc, char **argv);
int fsb_cmd_perf(int argc, char **argv);
int fsb_cmd_table(int argc, char **argv);
int fsb_cmd_perf_methods(int argc, char **argv);
int fsb_cmd_tune(int argc, char **argv);
int fsb_cmd_merge(int argc, char **argv);
int fsb_cmd_compare(int argc, char **argv);

/* mpirun support of `bench run` (cli_dist.c). Begin: initialise MPI when started by
 * mpirun (dist.h) and, with N > 1 ranks, make this rank run shard rank/N of the tasks in
 * the common --out folder (refusing --shard and a missing --data), silence ranks > 0 and
 * default --threads to cores / ranks on this machine. End: a failing rank prints its error
 * and aborts the job (MPI_Abort); otherwise MPI is finalised. Returns st. */
struct fsb_run_opts;
int fsb_cli_dist_begin(int *argc, char ***argv, struct fsb_run_opts *o);
/* The part of fsb_cli_dist_begin every command shares (used by `pretrain`): initialise MPI
 * under mpirun; with N > 1 ranks set *progress and *log to NULL on ranks > 0 and a *threads
 * of 0 to cores / ranks on this machine. */
int fsb_cli_dist_start(int *argc, char ***argv, FILE **progress, FILE **log, int *threads);
int fsb_cli_dist_end(const char *cmd, int st);

#endif
