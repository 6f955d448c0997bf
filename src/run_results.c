/* run_results.c - the final files of a run folder (see fsb_run_write_results in run.h),
 * shared by the runner (run.c) and `bench merge` (shard.c) so a merged run is written by
 * the very code a single process uses. Records are sorted into report order first, so the
 * files never depend on the order in which tasks finished or on how the run was split.
 */
#include "fsb/blas.h"
#include "fsb/fileio.h"
#include "fsb/report.h"
#include "fsb/run.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int write_manifest(const char *out, const char *run_id, const char *extra, double seconds)
{
    char versions[1024], *path = fsb_path_join(out, "manifest.txt");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    fsb_versions(versions, sizeof versions);
    fsb_outfile f;
    int st = fsb_outfile_open(&f, path);
    if (!st) {
        time_t now = time(NULL);
        char when[64];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        fprintf(f.fp, "%s%s", run_id, extra ? extra : "");
        fprintf(f.fp,
                "versions=%s\nopenblas_core=%s\nfinished=%s\nwall_seconds_this_session=%.1f\n",
                versions, fsb_blas_core(), when, seconds);
        st = fsb_outfile_commit(&f);
    }
    free(path);
    return st;
}

int fsb_run_write_results(const char *out, const char *run_id, fsb_episode_record *recs, size_t n,
                          const char *manifest_extra, double t0, FILE *log)
{
    fsb_report_sort(recs, n);
    fsb_report_result res;
    memset(&res, 0, sizeof res);
    /* the paper's columns and the backbone's REFILLED row follow from the run's identity:
     * its data_fingerprint, way, query and teacher_arch lines */
    fsb_report_options ropt = {.no_paper = 1};
    char backbone[16];
    fsb_report_options_from_id(&ropt, run_id, backbone);
    int st = fsb_report_write(out, recs, n, &ropt, &res);
    if (st) return st;
    if (res.note[0] && log) fprintf(log, "note: %s\n", res.note);
    st = write_manifest(out, run_id, manifest_extra, fsb_now() - t0);
    if (!st && log)
        fprintf(log,
                "wrote %s/{per_episode.csv,summary.csv,paired.csv,table.md,table.tex,timing.csv%s,"
                "manifest.txt,episodes.csv} in %.1f s\n",
                out, res.plotted ? ",accuracy_vs_shots.png" : "", fsb_now() - t0);
    return st;
}
