/* test_report.c - per_episode.csv round trip and validation, summary statistics and paired
 * differences on hand-computed numbers, the table against the paper (golden text), byte-
 * identical rebuilds, the plot with and without gnuplot, and `bench table --from`.
 */
#include "fsb/fileio.h"
#include "fsb/report.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static fsb_episode_record rec(int64_t episode, int shot, const char *method, int correct,
                              int n_query)
{
    fsb_episode_record r;
    memset(&r, 0, sizeof r);
    r.episode = episode;
    r.shot = shot;
    snprintf(r.method, sizeof r.method, "%s", method);
    r.n_correct = correct;
    r.n_query = n_query;
    r.accuracy = (double)correct / n_query;
    r.fit_ms = 0.25 * (double)episode;
    r.predict_ms = 1.0 / 3.0;
    return r;
}

START_TEST(mean_std_ci_by_hand)
{
    /* {0.5, 0.7, 0.9}: mean 0.7, sigma = sqrt((0.04 + 0 + 0.04) / 3), ci = 1.96 sigma / sqrt 3 */
    const double x[3] = {0.5, 0.7, 0.9};
    double m, sd, ci;
    fsb_stats_mean_ci(x, 3, &m, &sd, &ci);
    ck_assert_double_eq_tol(m, 0.7, 1e-12);
    ck_assert_double_eq_tol(sd, sqrt(0.08 / 3), 1e-12);
    ck_assert_double_eq_tol(ci, 1.96 * sqrt(0.08 / 3) / sqrt(3.0), 1e-12);
    const double one = 0.25;
    fsb_stats_mean_ci(&one, 1, &m, &sd, &ci);
    ck_assert(m == 0.25 && sd == 0 && ci == 0);
}
END_TEST

START_TEST(summary_by_hand)
{
    /* listed out of order on purpose: report order is 1nn, svm, then others bytewise */
    fsb_episode_record r[] = {rec(2, 1, "zeta", 3, 4), rec(1, 1, "1nn", 7, 10),
                              rec(0, 5, "1nn", 1, 2),  rec(0, 1, "1nn", 5, 10),
                              rec(2, 1, "1nn", 9, 10), rec(0, 1, "alpha", 1, 1),
                              rec(0, 1, "svm", 0, 1)};
    fsb_summary_row *s;
    size_t n;
    ck_assert_int_eq(fsb_report_summarise(r, 7, &s, &n), FSB_OK);
    ck_assert_uint_eq(n, 5);
    const char *order[] = {"1nn", "1nn", "svm", "alpha", "zeta"};
    const int shots[] = {1, 5, 1, 1, 1};
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(s[i].method, order[i]);
        ck_assert_int_eq(s[i].shot, shots[i]);
    }
    ck_assert_int_eq(s[0].episodes, 3);
    ck_assert_double_eq_tol(s[0].mean, 0.7, 1e-12);
    ck_assert_double_eq_tol(s[0].std, sqrt(0.08 / 3), 1e-12);
    ck_assert_double_eq_tol(s[0].ci95, 1.96 * sqrt(0.08 / 3) / sqrt(3.0), 1e-12);
    ck_assert_double_eq_tol(s[4].mean, 0.75, 1e-12);
    ck_assert(s[4].std == 0);
    free(s);
}
END_TEST

START_TEST(paired_by_hand)
{
    /* reference refilled-conv4: episodes 0,1,2 -> .8, .6, 1.0; 1nn: 1,2,3 -> .5, .7, .9.
     * Shared 1 and 2: differences .1 and .3 -> mean .2, std .1, ci 1.96 * .1 / sqrt 2.
     * protonet shares nothing with it at shot 1; svm is only at shot 5. */
    fsb_episode_record r[] = {rec(3, 1, "1nn", 9, 10),
                              rec(0, 1, "refilled-conv4", 8, 10),
                              rec(1, 1, "refilled-conv4", 6, 10),
                              rec(2, 1, "refilled-conv4", 10, 10),
                              rec(1, 1, "1nn", 5, 10),
                              rec(2, 1, "1nn", 7, 10),
                              rec(9, 1, "protonet", 1, 2),
                              rec(0, 5, "svm", 1, 2),
                              rec(0, 5, "refilled-conv4", 2, 2)};
    const size_t n = sizeof r / sizeof r[0];
    ck_assert_str_eq(fsb_report_reference(r, n, "svm"), "refilled-conv4");
    ck_assert_str_eq(fsb_report_reference(r, 1, "svm"), "1nn");
    ck_assert_str_eq(fsb_report_reference(r + 6, 2, "svm"), "svm");
    ck_assert_str_eq(fsb_report_reference(r + 6, 2, NULL), "svm"); /* svm before protonet */
    ck_assert_ptr_null(fsb_report_reference(r, 0, NULL));
    fsb_paired_row *p;
    size_t np;
    ck_assert_int_eq(fsb_report_paired(r, n, "refilled-conv4", &p, &np), FSB_OK);
    ck_assert_uint_eq(np, 2);
    ck_assert_int_eq(p[0].shot, 1);
    ck_assert_str_eq(p[0].method, "1nn");
    ck_assert_str_eq(p[0].reference, "refilled-conv4");
    ck_assert_int_eq(p[0].episodes, 2);
    ck_assert_double_eq_tol(p[0].mean_diff, 0.2, 1e-12);
    ck_assert_double_eq_tol(p[0].std, 0.1, 1e-12);
    ck_assert_double_eq_tol(p[0].ci95, 1.96 * 0.1 / sqrt(2.0), 1e-12);
    ck_assert_int_eq(p[1].shot, 5);
    ck_assert_str_eq(p[1].method, "svm");
    ck_assert_double_eq_tol(p[1].mean_diff, 0.5, 1e-12);
    free(p);
}
END_TEST

START_TEST(csv_round_trip)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "per_episode.csv");
    fsb_episode_record r[] = {rec(0, 1, "1nn", 40, 75),
                              rec(12345678901LL, 30, "refilled-res12", 75, 75),
                              rec(7, 5, "svm_c0.1", 0, 75)};
    ck_assert_int_eq(fsb_report_write_episodes(path, r, 3), FSB_OK);
    char *text = tu_read(path, NULL);
    ck_assert_str_eq(text, "episode,shot,method,n_correct,n_query,accuracy,fit_ms,predict_ms\n"
                           "0,1,1nn,40,75,0.533333,0.000,0.333\n"
                           "12345678901,30,refilled-res12,75,75,1.000000,3086419725.250,0.333\n"
                           "7,5,svm_c0.1,0,75,0.000000,1.750,0.333\n");
    free(text);
    fsb_episode_record *back;
    size_t n;
    ck_assert_int_eq(fsb_report_read_episodes(path, &back, &n), FSB_OK);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(back[i].episode, r[i].episode);
        ck_assert_int_eq(back[i].shot, r[i].shot);
        ck_assert_str_eq(back[i].method, r[i].method);
        ck_assert_int_eq(back[i].n_correct, r[i].n_correct);
        ck_assert_int_eq(back[i].n_query, r[i].n_query);
        ck_assert(back[i].accuracy == r[i].accuracy);
        ck_assert_double_eq_tol(back[i].fit_ms, r[i].fit_ms, 5e-4);
        ck_assert_double_eq_tol(back[i].predict_ms, r[i].predict_ms, 5e-4);
    }
    free(back);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* Write `text` as per_episode.csv, read it and expect FSB_EFORMAT with `want` in the message. */
static void expect_bad(const char *dir, const char *text, const char *want)
{
    tu_write_str(dir, "bad.csv", text);
    char *path = tu_path(dir, "bad.csv");
    fsb_episode_record *r = (void *)1;
    size_t n = 99;
    ck_assert_int_eq(fsb_report_read_episodes(path, &r, &n), FSB_EFORMAT);
    ck_assert_msg(strstr(fsb_error_last(), want) != NULL, "'%s' not in '%s'", want,
                  fsb_error_last());
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "bad.csv"));
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(n, 0);
    free(path);
}

#define HDR "episode,shot,method,n_correct,n_query,accuracy,fit_ms,predict_ms\n"
#define ROW0 "0,1,1nn,5,10,0.5,1,1\n"

START_TEST(bad_csv_names_the_line)
{
    char *dir = tu_tmpdir();
    expect_bad(dir, "episode,shot,method,correct,n_query,accuracy,fit_ms,predict_ms\n" ROW0,
               "bad.csv:1: header is 'episode,shot,method,correct");
    expect_bad(dir, "", "empty file");
    expect_bad(dir, HDR ROW0 "1,1,1nn,x5,10,0.5,1,1\n", "bad.csv:3: bad n_correct");
    expect_bad(dir, HDR ROW0 ROW0 "1,1,1nn,11,10,1.1,1,1\n", "bad.csv:4: bad n_correct");
    expect_bad(dir, HDR "1,1,1nn,5,10,0.5,1\n", "bad.csv:2: 7 fields, expected 8");
    expect_bad(dir, HDR "1,1,1nn,5,10,0.5,1,1,9\n", "bad.csv:2: more than 8 fields");
    expect_bad(dir, HDR "1,0,1nn,5,10,0.5,1,1\n", "bad.csv:2: bad shot");
    expect_bad(dir, HDR "-1,1,1nn,5,10,0.5,1,1\n", "bad.csv:2: bad episode");
    expect_bad(dir, HDR "1,1,1 nn,5,10,0.5,1,1\n", "bad.csv:2: bad method");
    expect_bad(dir, HDR "1,1,1nn,5,10,0.6,1,1\n", "accuracy (must equal n_correct / n_query)");
    expect_bad(dir, HDR "1,1,1nn,5,10,0.5,nan,1\n", "bad.csv:2: bad fit_ms");
    expect_bad(dir, HDR "1,1,1nn,5,10,0.5,1,-2\n", "bad.csv:2: bad predict_ms");
    expect_bad(dir, HDR ROW0 "\n", "bad.csv:3: empty line");
    expect_bad(dir, HDR ROW0 "0,5,1nn,5,10,0.5,1,1\n" ROW0, "bad.csv:4: duplicate of line 2");
    /* CRLF line ends and a missing final newline are accepted */
    tu_write_str(dir, "ok.csv",
                 "episode,shot,method,n_correct,n_query,accuracy,fit_ms,predict_ms\r\n"
                 "0,1,1nn,5,10,0.500000,1,1\r\n1,1,1nn,5,10,0.5,1,1");
    char *ok = tu_path(dir, "ok.csv");
    fsb_episode_record *r;
    size_t n;
    ck_assert_int_eq(fsb_report_read_episodes(ok, &r, &n), FSB_OK);
    ck_assert_uint_eq(n, 2);
    free(r);
    free(ok);
    char *missing = tu_path(dir, "missing.csv");
    ck_assert_int_eq(fsb_report_read_episodes(missing, &r, &n), FSB_ENOTFOUND);
    free(missing);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* 1nn shot 1: {.5, .7, .9} -> 70.00 +- 18.48 (1.96 * 0.163299 / sqrt 3 = 0.184791), paper 49.73 ->
 * +20.27; 1nn shot 2: {.5, .5} -> 50.00 +- 0.00, no paper value; zeta shot 1: {.75} -> 75.00 +-
 * 0.00. */
static const char golden_md[] =
    "# Few-shot accuracy (%) on frozen-teacher episodes, fsbench vs the paper\n"
    "\n"
    "| method | 1-shot | paper | Δ | 2-shot | paper | Δ |\n"
    "|---|---:|---:|---:|---:|---:|---:|\n"
    "| 1nn | 70.00 ± 18.48 | 49.73 | +20.27 † | 50.00 ± 0.00 | – | – |\n"
    "| svm (not run here) | – | 51.61 | – | – | – | – |\n"
    "| finetune (not run here) | – | 45.89 | – | – | – | – |\n"
    "| maml (not run here) | – | 48.70 | – | – | – | – |\n"
    "| protonet (not run here) | – | 51.79 | – | – | – | – |\n"
    "| feat (not run here) | – | 55.15 | – | – | – | – |\n"
    "| refilled-conv4 (not run here) | – | 53.44 | – | – | – | – |\n"
    "| refilled-res12 (not run here) | – | 54.82 | – | – | – | – |\n"
    "| zeta | 75.00 ± 0.00 | – | – | – | – | – |\n"
    "\n"
    "Accuracy in %, mean ± 95% confidence interval over the episodes of each cell (E = 1 to "
    "3, see summary.csv); CI = 1.96·σ/√E with σ the population standard deviation (ddof 0) "
    "of the per-episode accuracies. Δ = ours − paper; † = the paper's value lies outside our "
    "mean ± CI.\n"
    "Paper: the REFILLED paper's middle-shot table (MiniImageNet, 5-way; episode count not "
    "stated; its 1NN 5-shot value equals MAML's and may be a transcription slip). Rows: 1nn = "
    "1NN, svm = SVM, finetune = Fine-Tune, maml = MAML, protonet = ProtoNet, feat = FEAT, "
    "refilled-conv4 = REFILLED (ConvNet backbone), refilled-res12 = REFILLED (ResNet "
    "backbone).\n";

static const fsb_episode_record *table_input(size_t *n)
{
    static fsb_episode_record r[6];
    r[0] = rec(0, 1, "1nn", 5, 10);
    r[1] = rec(1, 1, "1nn", 7, 10);
    r[2] = rec(2, 1, "1nn", 9, 10);
    r[3] = rec(0, 2, "1nn", 1, 2);
    r[4] = rec(1, 2, "1nn", 2, 4);
    r[5] = rec(0, 1, "zeta", 3, 4);
    *n = 6;
    return r;
}

START_TEST(table_golden)
{
    size_t n;
    const fsb_episode_record *r = table_input(&n);
    fsb_summary_row *s;
    size_t ns;
    ck_assert_int_eq(fsb_report_summarise(r, n, &s, &ns), FSB_OK);
    char *md;
    ck_assert_int_eq(fsb_report_table_md(s, ns, NULL, "", NULL, &md), FSB_OK);
    ck_assert_str_eq(md, golden_md);
    free(md);
    /* rows with their own model (bench run --model): one line under each table, the rest as
     * without it */
    const char *models = "Models: zeta_2 uses its own model (checkpoint XXH3-64 "
                         "0123456789abcdef); the other rows use the teacher (XXH3-64 "
                         "72f37f049a605602).";
    ck_assert_int_eq(fsb_report_table_md(s, ns, NULL, "", models, &md), FSB_OK);
    ck_assert_int_eq(strncmp(md, golden_md, strlen(golden_md)), 0);
    ck_assert_str_eq(md + strlen(golden_md),
                     "Models: zeta_2 uses its own model (checkpoint XXH3-64 0123456789abcdef); "
                     "the other rows use the teacher (XXH3-64 72f37f049a605602).\n");
    free(md);
    char *tex;
    ck_assert_int_eq(fsb_report_table_tex(s, ns, NULL, NULL, models, &tex), FSB_OK);
    ck_assert_ptr_nonnull(strstr(tex, "\\end{tabular}\n\\par\\smallskip{\\footnotesize Models: "
                                      "zeta\\_2 uses its own model (checkpoint XXH3-64 "
                                      "0123456789abcdef); the other rows use the teacher "
                                      "(XXH3-64 72f37f049a605602).}\n\\end{table}\n"));
    free(tex);
    ck_assert_int_eq(fsb_report_table_tex(s, ns, "T_1 & 50% \\x", "", NULL, &tex), FSB_OK);
    ck_assert_ptr_nonnull(
        strstr(tex, "\\caption{T\\_1 \\& 50\\% \\textbackslash{}x. Mean $\\pm$ 95\\% CI"));
    ck_assert_ptr_nonnull(strstr(tex, "\\begin{tabular}{lrrrrrr}"));
    ck_assert_ptr_nonnull(strstr(
        tex,
        "1nn & 70.00 $\\pm$ 18.48 & 49.73 & $+20.27^\\dagger$ & 50.00 $\\pm$ 0.00 & -- & -- \\\\"));
    ck_assert_ptr_nonnull(strstr(tex, "zeta & 75.00 $\\pm$ 0.00 & -- & -- & -- & -- & -- \\\\"));
    free(tex);
    /* another dataset: no paper columns, and a note saying why */
    ck_assert_int_eq(fsb_report_table_md(s, ns, NULL, NULL, NULL, &md), FSB_OK);
    ck_assert_ptr_null(strstr(md, "paper |"));
    ck_assert_ptr_nonnull(strstr(md, "| 1nn | 70.00 ± 18.48 | 50.00 ± 0.00 |"));
    ck_assert_ptr_nonnull(strstr(md, "not shown for this dataset"));
    free(md);
    ck_assert_int_eq(fsb_report_table_tex(s, ns, NULL, NULL, NULL, &tex), FSB_OK);
    ck_assert_ptr_nonnull(strstr(tex, "\\begin{tabular}{lrr}"));
    ck_assert_ptr_nonnull(strstr(tex, "1nn & 70.00 $\\pm$ 18.48 & 50.00 $\\pm$ 0.00 \\\\"));
    free(tex);
    /* plain "refilled" takes the paper row of the run's backbone */
    fsb_summary_row rf = {.method = "refilled", .shot = 1, .episodes = 1, .mean = 0.5};
    ck_assert_int_eq(fsb_report_table_md(&rf, 1, NULL, "conv4", NULL, &md), FSB_OK);
    ck_assert_ptr_nonnull(strstr(md, "| refilled | 50.00 ± 0.00 | 53.44 | -3.44 † |"));
    ck_assert_ptr_nonnull(strstr(md, "refilled = REFILLED (ConvNet backbone)"));
    free(md);
    /* the paper's value inside our mean ± CI: no mark */
    fsb_summary_row in = {.method = "refilled", .shot = 1, .episodes = 9, .mean = .53, .ci95 = .01};
    ck_assert_int_eq(fsb_report_table_md(&in, 1, NULL, "conv4", NULL, &md), FSB_OK);
    ck_assert_ptr_nonnull(strstr(md, "| refilled | 53.00 ± 1.00 | 53.44 | -0.44 |"));
    free(md);
    ck_assert_int_eq(fsb_report_table_md(&rf, 1, NULL, "res12", NULL, &md), FSB_OK);
    ck_assert_ptr_nonnull(strstr(md, "| 54.82 |"));
    free(md);
    ck_assert_int_eq(fsb_report_table_md(&rf, 1, NULL, "", NULL, &md), FSB_OK);
    ck_assert_ptr_nonnull(strstr(md, "| refilled | 50.00 ± 0.00 | – | – |"));
    free(md);
    /* the paper's rows in the paper's order: the run's rows where it has them, the others
     * "not run here" with the paper's value; MAML has no 10-shot value; the run's other
     * methods last; a shot without paper values brings no "not run here" rows */
    fsb_summary_row mix[] = {
        {.method = "feat", .shot = 10, .episodes = 1, .mean = 0.5},
        {.method = "logreg", .shot = 10, .episodes = 1, .mean = 0.5},
        {.method = "maml", .shot = 10, .episodes = 1, .mean = 0.5},
        {.method = "refilled", .shot = 10, .episodes = 1, .mean = 0.5},
    };
    ck_assert_int_eq(fsb_report_table_md(mix, 4, NULL, "conv4", NULL, &md), FSB_OK);
    const char *order[] = {"| 1nn (not run here) | – | 66.56 | – |",
                           "| svm (not run here) |",
                           "| finetune (not run here) |",
                           "| maml | 50.00 ± 0.00 | – | – |",
                           "| protonet (not run here) |",
                           "| feat | 50.00 ± 0.00 | 74.86 | -24.86 † |",
                           "| refilled | 50.00 ± 0.00 | 75.37 | -25.37 † |",
                           "| refilled-res12 (not run here) | – | 76.42 | – |",
                           "| logreg | 50.00 ± 0.00 | – | – |"};
    const char *at = md;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *hit = strstr(at, order[i]);
        ck_assert_msg(hit != NULL, "%s not after the previous row in\n%s", order[i], md);
        at = hit + 1;
    }
    ck_assert_ptr_null(strstr(md, "refilled-conv4 (not run here)"));
    free(md);
    ck_assert_int_eq(fsb_report_table_tex(mix, 4, NULL, "conv4", NULL, &tex), FSB_OK);
    ck_assert_ptr_null(strstr(tex, "maml (not run here)"));
    ck_assert_ptr_nonnull(strstr(tex, "refilled-res12 (not run here) & -- & 76.42 & -- \\\\"));
    free(tex);
    fsb_summary_row two = {.method = "maml", .shot = 2, .episodes = 1, .mean = 0.5};
    ck_assert_int_eq(fsb_report_table_md(&two, 1, NULL, "conv4", NULL, &md), FSB_OK);
    ck_assert_ptr_null(strstr(md, "not run here"));
    free(md);
    ck_assert(fsb_report_paper_applies(0x120c10c9ea03f538ull));
    ck_assert(!fsb_report_paper_applies(0x3cfb3ee002e3d937ull));
    free(s);
    /* the paper table mapping */
    ck_assert_double_eq(fsb_report_paper_value("svm", 10), 74.24);
    ck_assert_double_eq(fsb_report_paper_value("refilled-res12", 30), 80.33);
    ck_assert_double_eq(fsb_report_paper_value("refilled-conv4", 1), 53.44);
    ck_assert_double_eq(fsb_report_paper_value("finetune", 5), 68.61);
    ck_assert_double_eq(fsb_report_paper_value("protonet", 1), 51.79);
    ck_assert(fsb_report_paper_value("protonet", 2) < 0);
    ck_assert(fsb_report_paper_value("logreg", 1) < 0);
}
END_TEST

static const char *derived[] = {"summary.csv", "paired.csv", "table.md",
                                "table.tex",   "timing.csv", "accuracy_vs_shots.gp"};

START_TEST(rebuild_is_byte_identical)
{
    char *a = tu_tmpdir(), *b = tu_tmpdir();
    size_t n;
    const fsb_episode_record *r = table_input(&n);
    fsb_report_options opt = {.skip_plot = 0};
    fsb_report_result res;
    ck_assert_int_eq(fsb_report_write(a, r, n, &opt, &res), FSB_OK);
    char *summary = tu_path(a, "summary.csv");
    char *text = tu_read(summary, NULL);
    ck_assert_str_eq(text, "# accuracy as a fraction; std = population standard deviation "
                           "(ddof 0) of the per-episode accuracies; ci95 = 1.96 * std / "
                           "sqrt(episodes)\n"
                           "method,shot,episodes,mean,ci95,std\n"
                           "1nn,1,3,0.700000,0.184791,0.163299\n"
                           "1nn,2,2,0.500000,0.000000,0.000000\n"
                           "zeta,1,1,0.750000,0.000000,0.000000\n");
    free(text);
    char *timing = tu_path(a, "timing.csv");
    text = tu_read(timing, NULL);
    ck_assert_ptr_nonnull(strstr(text, "method,shot,episodes,fit_ms,predict_ms,total_s\n"
                                       "1nn,1,3,0.250,0.333,0.0\n1nn,2,2,0.125,0.333,0.0\n"
                                       "zeta,1,1,0.000,0.333,0.0\n"));
    free(text);
    free(timing);
    char *paired = tu_path(a, "paired.csv");
    text = tu_read(paired, NULL);
    /* no refilled: reference = first in report order (1nn); zeta shares episode 0:
     * 0.5 - 0.75 */
    ck_assert_ptr_nonnull(strstr(text, "shot,reference,method,episodes,mean_diff,ci95,std\n"
                                       "1,1nn,zeta,1,-0.250000,0.000000,0.000000\n"));
    free(text);
    /* the same records shuffled, rebuilt from the CSV elsewhere: identical derived files */
    fsb_episode_record shuffled[6];
    for (size_t i = 0; i < n; i++)
        shuffled[i] = r[(i * 5 + 2) % n];
    char *csv = tu_path(b, "per_episode.csv");
    ck_assert_int_eq(fsb_report_write_episodes(csv, shuffled, n), FSB_OK);
    fsb_report_result res2;
    ck_assert_int_eq(fsb_runfolder_rebuild(b, &opt, &res2), FSB_OK);
    ck_assert_int_eq(res2.plotted, res.plotted);
    for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++) {
        char *pa = tu_path(a, derived[i]), *pb = tu_path(b, derived[i]);
        ck_assert_msg(tu_same_file(pa, pb), "%s differs", derived[i]);
        free(pa);
        free(pb);
    }
    /* rebuilding in place changes nothing */
    char *before = tu_read(summary, NULL);
    ck_assert_int_eq(fsb_runfolder_rebuild(a, &opt, NULL), FSB_OK);
    char *after = tu_read(summary, NULL);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    /* errors: no folder, no CSV, no records */
    ck_assert_int_eq(fsb_runfolder_rebuild("/nonexistent/run", NULL, NULL), FSB_ENOTFOUND);
    char *empty = tu_tmpdir();
    ck_assert_int_eq(fsb_runfolder_rebuild(empty, NULL, NULL), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "per_episode.csv"));
    tu_write_str(empty, "per_episode.csv", HDR);
    ck_assert_int_eq(fsb_runfolder_rebuild(empty, NULL, NULL), FSB_EINVAL);
    tu_rmrf(empty);
    free(empty);
    free(csv);
    free(summary);
    free(paired);
    tu_rmrf(a);
    tu_rmrf(b);
    free(a);
    free(b);
}
END_TEST

START_TEST(plot_with_and_without_gnuplot)
{
    char *dir = tu_tmpdir();
    size_t n;
    const fsb_episode_record *r = table_input(&n);
    fsb_report_result res;
    char *png = tu_path(dir, "accuracy_vs_shots.png");
    if (tu_run(NULL, "command -v gnuplot") == 0) {
        ck_assert_int_eq(fsb_report_write(dir, r, n, NULL, &res), FSB_OK);
        ck_assert_msg(res.plotted == 1, "not plotted: %s", res.note);
        ck_assert_str_eq(res.note, "");
        size_t size = 0;
        char *data = tu_read(png, &size);
        ck_assert_ptr_nonnull(data);
        ck_assert(size > 8 && memcmp(data, "\x89PNG", 4) == 0);
        free(data);
        char *ls = NULL;
        tu_run(&ls, "ls -A '%s'", dir); /* no temporaries left behind */
        ck_assert_str_eq(ls, "accuracy_vs_shots.gp\naccuracy_vs_shots.png\npaired.csv\n"
                             "per_episode.csv\nsummary.csv\ntable.md\ntable.tex\ntiming.csv\n");
        free(ls);
        unlink(png);
    }
    /* a PATH without gnuplot: the run succeeds, the note says why there is no plot */
    char *empty = tu_tmpdir();
    char *old_path = strdup(getenv("PATH"));
    setenv("PATH", empty, 1);
    ck_assert_int_eq(fsb_report_write(dir, r, n, NULL, &res), FSB_OK);
    ck_assert_int_eq(res.plotted, 0);
    ck_assert_ptr_nonnull(strstr(res.note, "gnuplot not found on PATH"));
    ck_assert(!fsb_is_file(png));
    char *gp = tu_path(dir, "accuracy_vs_shots.gp");
    ck_assert(fsb_is_file(gp));
    char *md = tu_path(dir, "table.md");
    ck_assert(fsb_is_file(md));
    /* a gnuplot that fails is a note too */
    tu_write_str(empty, "gnuplot", "#!/bin/sh\necho 'broken plotter' >&2\nexit 3\n");
    char *fake = tu_path(empty, "gnuplot");
    chmod(fake, 0755);
    ck_assert_int_eq(fsb_report_derive(dir, r, n, NULL, &res), FSB_OK);
    ck_assert_int_eq(res.plotted, 0);
    ck_assert_msg(strstr(res.note, "gnuplot failed (exit status 3: broken plotter)") != NULL, "%s",
                  res.note);
    ck_assert(!fsb_is_file(png));
    setenv("PATH", old_path, 1); /* tu_rmrf runs rm through the shell */
    free(old_path);
    free(fake);
    free(md);
    free(gp);
    tu_rmrf(empty);
    free(empty);
    free(png);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(cli_table_from)
{
    char *dir = tu_tmpdir();
    size_t n;
    const fsb_episode_record *r = table_input(&n);
    char *csv = tu_path(dir, "per_episode.csv");
    ck_assert_int_eq(fsb_report_write_episodes(csv, r, n), FSB_OK);
    char *out = NULL;
    ck_assert_int_eq(tu_run(&out, "'%s' table --from '%s' --no-plot", tu_bench(), dir), 0);
    ck_assert_ptr_nonnull(strstr(out, "rebuilt the reports"));
    free(out);
    char *md = tu_path(dir, "table.md");
    char *text = tu_read(md, NULL);
    ck_assert_str_eq(text, golden_md);
    free(text);
    ck_assert_int_eq(tu_run(&out, "'%s' table --from", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--from needs a value"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' table --form x", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown flag '--form'"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' table", tu_bench()), 2);
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' table --from '%s/none'", tu_bench(), dir), 1);
    ck_assert_ptr_nonnull(strstr(out, "no such run folder"));
    free(out);
    free(md);
    free(csv);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mean_std_ci_by_hand);
    tcase_add_test(tc, summary_by_hand);
    tcase_add_test(tc, paired_by_hand);
    tcase_add_test(tc, csv_round_trip);
    tcase_add_test(tc, bad_csv_names_the_line);
    tcase_add_test(tc, table_golden);
    tcase_add_test(tc, rebuild_is_byte_identical);
    tcase_add_test(tc, plot_with_and_without_gnuplot);
    tcase_add_test(tc, cli_table_from);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
