/* runfolder.c - the run folder's files: the run identity, the claim of a folder, journal
 * records and the final write (see include/fsb/runfolder.h). Parsing is strict by
 * construction: a parsed identity is formatted again and must give back the very text read,
 * so one formatter defines the format and nothing outside it is accepted.
 */
#include "fsb/runfolder.h"
#include "fsb/blas.h"
#include "fsb/fileio.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "fsb/version.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- identity: format ------------------------------------------------------------------ */

/* A name that formats back to itself inside "name(...)," lists and key=value lines, and is
 * safe wherever reports quote it (gnuplot titles, Markdown, LaTeX): [A-Za-z0-9_.+-] only. */
static int plain_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '+' || *s == '-'))
            return 0;
    return 1;
}

/* A method's per-shot models (model@K=): K among the run's shots, in the order of shots=, at
 * most one per shot. */
static int shot_models_ok(const fsb_run_ident *id, const fsb_run_method_id *m)
{
    if (m->n_at < 0 || m->n_at > FSB_EPISODES_MAX_SHOTS) return 0;
    for (int j = 0, prev = -1; j < m->n_at; j++) {
        int s = 0;
        while (s < id->n_shots && id->shots[s] != m->at[j].shot)
            s++;
        if (s == id->n_shots || s <= prev) return 0;
        prev = s;
    }
    return 1;
}

int fsb_run_ident_format(const fsb_run_ident *id, char **text)
{
    *text = NULL;
    if (id->n_shots < 1 || id->n_shots > FSB_EPISODES_MAX_SHOTS || id->n_methods < 1 ||
        id->n_methods > FSB_RUN_MAX_METHODS || !plain_name(id->split) ||
        !plain_name(id->teacher_arch) || strchr(id->student, '\n'))
        return fsb_error(FSB_EINVAL, "run identity: bad split, architecture, shots or methods");
    for (int i = 0; i < id->n_methods; i++) {
        if (!plain_name(id->methods[i].name) || !plain_name(id->methods[i].norm))
            return fsb_error(FSB_EINVAL, "run identity: bad method name '%s'", id->methods[i].name);
        if (!shot_models_ok(id, &id->methods[i]))
            return fsb_error(FSB_EINVAL,
                             "run identity: %s's per-shot models are not of the run's "
                             "shots in their order",
                             id->methods[i].name);
    }
    size_t size = 0;
    FILE *f = open_memstream(text, &size);
    if (!f) return fsb_error(FSB_ENOMEM, "out of memory");
    fprintf(f,
            "format=fsbench-run/1\nsplit=%s\ndata_fingerprint=%016" PRIx64 "\n"
            "teacher_xxh3=%016" PRIx64 "\nteacher_arch=%s\nepisodes_hash=%s\nepisodes=%ld\n"
            "way=%d\nquery=%d\nshots=",
            id->split, id->data_fp, id->teacher_xxh3, id->teacher_arch, id->episodes_hash,
            id->episodes, id->way, id->query);
    for (int i = 0; i < id->n_shots; i++)
        fprintf(f, "%s%d", i ? "," : "", id->shots[i]);
    fprintf(f, "\nseed=%" PRIu64 "\nmethods=", id->seed);
    for (int i = 0; i < id->n_methods; i++) {
        const fsb_run_method_id *m = &id->methods[i];
        fprintf(f, "%s%s(norm=%s,C=%g", i ? "," : "", m->name, m->norm, m->C);
        if (m->order) fprintf(f, ",order=%d", m->order);
        if (m->has_model) fprintf(f, ",model=%016" PRIx64, m->model_xxh3);
        for (int j = 0; j < m->n_at; j++)
            fprintf(f, ",model@%d=%016" PRIx64, m->at[j].shot, m->at[j].xxh3);
        fprintf(f, ")");
    }
    fprintf(f, "\nimage_size=%d\nresize=%d\ncrop=%d\n", id->image_size, id->resize, id->crop);
    if (id->has_base_fp) fprintf(f, "base_fingerprint=%016" PRIx64 "\n", id->base_fp);
    if (id->student[0]) fprintf(f, "student=%s\n", id->student);
    if (fsb_shard_active(&id->shard) && !id->shard.shared)
        fprintf(f, "shard=%d/%d\n", id->shard.index, id->shard.count);
    if (ferror(f) | fclose(f)) {
        free(*text);
        *text = NULL;
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    return FSB_OK;
}

/* ---- identity: parse ------------------------------------------------------------------- */

/* Copy value v (len bytes) into dst[cap]; 0 when it does not fit. */
static int take(char *dst, size_t cap, const char *v, size_t len)
{
    if (len >= cap) return 0;
    memcpy(dst, v, len);
    dst[len] = '\0';
    return 1;
}

static int parse_u64(const char *v, int base, uint64_t *out)
{
    char *end;
    if (!*v || *v == '-' || *v == '+') return 0;
    *out = strtoull(v, &end, base);
    return *end == '\0';
}

static int parse_long(const char *v, long lo, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo) return 0;
    *out = x;
    return 1;
}

static int parse_int(const char *v, int *out)
{
    long x;
    if (!parse_long(v, 1, &x) || x > 1000000000L) return 0;
    *out = (int)x;
    return 1;
}

static int parse_shots(fsb_run_ident *id, char *v)
{
    id->n_shots = 0;
    for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (id->n_shots == FSB_EPISODES_MAX_SHOTS || !parse_int(tok, &id->shots[id->n_shots]))
            return 0;
        id->n_shots++;
    }
    return id->n_shots > 0;
}

/* ",model@K=<16 hex>" entries at *end into m (K a positive integer); 0 when malformed (the
 * order and the shots are checked by shot_models_ok). */
static int parse_shot_models(fsb_run_method_id *m, const char *end)
{
    while (*end) {
        char *after;
        if (strncmp(end, ",model@", 7) != 0 || end[7] < '1' || end[7] > '9' ||
            m->n_at == FSB_EPISODES_MAX_SHOTS)
            return 0;
        long k = strtol(end + 7, &after, 10);
        char hex[17];
        if (k > 1000000000L || *after != '=' || !take(hex, sizeof hex, after + 1, 16)) return 0;
        uint64_t h;
        if (strspn(after + 1, "0123456789abcdef") < 16 || !parse_u64(hex, 16, &h)) return 0;
        m->at[m->n_at++] = (fsb_run_shot_model){(int)k, h};
        end = after + 17;
    }
    return 1;
}

/* "name(norm=N,C=c),name(norm=N,C=c[,order=1|2][,model=<hex>][,model@K=<hex>...]),..."
 * (fsb_run_method_id) */
static int parse_methods(fsb_run_ident *id, const char *v)
{
    id->n_methods = 0;
    while (*v) {
        if (id->n_methods == FSB_RUN_MAX_METHODS) return 0;
        fsb_run_method_id *m = &id->methods[id->n_methods++];
        const char *open = strchr(v, '('), *close = open ? strchr(open, ')') : NULL;
        if (!close || !take(m->name, sizeof m->name, v, (size_t)(open - v))) return 0;
        char inner[128 + 32 * FSB_EPISODES_MAX_SHOTS], *end;
        if (!take(inner, sizeof inner, open + 1, (size_t)(close - open - 1)) ||
            strncmp(inner, "norm=", 5) != 0)
            return 0;
        char *comma = strstr(inner, ",C=");
        if (!comma || !take(m->norm, sizeof m->norm, inner + 5, (size_t)(comma - inner - 5)))
            return 0;
        m->C = strtod(comma + 3, &end);
        if (end == comma + 3 || !isfinite(m->C)) return 0;
        if (!strncmp(end, ",order=", 7)) { /* maml's order: one digit, 1 or 2 */
            if (end[7] != '1' && end[7] != '2') return 0;
            m->order = end[7] - '0';
            end += 8;
        }
        if (!strncmp(end, ",model=", 7)) { /* the method's own model; the format check of
                                              fsb_run_ident_parse refuses a non-canonical hash */
            m->has_model = 1;
            end += 7;
            size_t hl = strcspn(end, ",");
            char hex[17];
            if (hl != 16 || !take(hex, sizeof hex, end, hl) || !parse_u64(hex, 16, &m->model_xxh3))
                return 0;
            end += 16;
        }
        if (!parse_shot_models(m, end) || !shot_models_ok(id, m)) return 0;
        v = close + 1;
        if (*v == ',') v++;
    }
    return id->n_methods > 0;
}

/* The keys in their order; required ones first, then the optional ones. */
static const char *const KEYS[] = {"format",
                                   "split",
                                   "data_fingerprint",
                                   "teacher_xxh3",
                                   "teacher_arch",
                                   "episodes_hash",
                                   "episodes",
                                   "way",
                                   "query",
                                   "shots",
                                   "seed",
                                   "methods",
                                   "image_size",
                                   "resize",
                                   "crop",
                                   "base_fingerprint",
                                   "student",
                                   "shard"};
enum { N_REQUIRED = 15, N_KEYS = (int)(sizeof KEYS / sizeof KEYS[0]) };

/* Parse value v of key k into id; 0 when malformed. */
static int parse_value(fsb_run_ident *id, int k, char *v)
{
    switch (k) {
    case 0:
        return strcmp(v, "fsbench-run/1") == 0;
    case 1:
        return plain_name(v) && take(id->split, sizeof id->split, v, strlen(v));
    case 2:
        return parse_u64(v, 16, &id->data_fp);
    case 3:
        return parse_u64(v, 16, &id->teacher_xxh3);
    case 4:
        return plain_name(v) && take(id->teacher_arch, sizeof id->teacher_arch, v, strlen(v));
    case 5:
        return take(id->episodes_hash, sizeof id->episodes_hash, v, strlen(v));
    case 6: /* the runner counts episodes in int, and tasks = methods x shots x episodes */
        return parse_long(v, 1, &id->episodes) && id->episodes <= 100000000L;
    case 7: /* bench's own limits, so way x query stays an int */
        return parse_int(v, &id->way) && id->way <= 1000;
    case 8:
        return parse_int(v, &id->query) && id->query <= 100000;
    case 9:
        return parse_shots(id, v);
    case 10:
        return parse_u64(v, 10, &id->seed);
    case 11:
        return parse_methods(id, v);
    case 12:
        return parse_int(v, &id->image_size);
    case 13:
        return parse_int(v, &id->resize);
    case 14:
        return parse_int(v, &id->crop);
    case 15:
        return (id->has_base_fp = parse_u64(v, 16, &id->base_fp));
    case 16:
        return take(id->student, sizeof id->student, v, strlen(v)) && *v;
    case 17:
        return fsb_shard_parse("shard", v, &id->shard) == FSB_OK;
    }
    return 0;
}

int fsb_run_ident_parse(fsb_run_ident *id, const char *text, const char *what)
{
    memset(id, 0, sizeof *id);
    int next = 0, line_no = 0;
    for (const char *p = text; *p;) {
        line_no++;
        size_t len = strcspn(p, "\n");
        char line[FSB_RUN_ID_STUDENT_MAX + 64];
        if (!take(line, sizeof line, p, len))
            return fsb_error(FSB_EFORMAT, "%s: line %d is too long", what, line_no);
        char *eq = strchr(line, '=');
        int k = next;
        if (eq) {
            *eq = '\0';
            while (k < N_KEYS && strcmp(KEYS[k], line) != 0)
                k++;
        }
        if (!eq || k == N_KEYS || (k >= N_REQUIRED && next < N_REQUIRED) ||
            (k < N_REQUIRED && k != next))
            return fsb_error(FSB_EFORMAT,
                             "%s: line %d ('%.40s') is not the run identity's next "
                             "line (%s=)",
                             what, line_no, line, next < N_KEYS ? KEYS[next] : "end of file");
        if (!parse_value(id, k, eq + 1))
            return fsb_error(FSB_EFORMAT, "%s: line %d: bad %s= value '%.60s'", what, line_no,
                             KEYS[k], eq + 1);
        next = k + 1;
        p += len + (p[len] == '\n');
    }
    if (next < N_REQUIRED) return fsb_error(FSB_EFORMAT, "%s: no %s= line", what, KEYS[next]);
    char *again = NULL;
    int st = fsb_run_ident_format(id, &again);
    if (st) return fsb_error_wrap(st, "%s", what);
    if (strcmp(again, text) != 0) {
        char diff[512];
        fsb_run_ident_diff(text, again, diff, sizeof diff);
        st = fsb_error(FSB_EFORMAT, "%s: not in the run identity's form (%s)", what, diff);
    }
    free(again);
    return st;
}

int fsb_run_ident_read(const char *dir, fsb_run_ident *id, char **text)
{
    if (text) *text = NULL;
    char *path = fsb_path_join(dir, "run.id");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    void *data = NULL;
    size_t n;
    int st = fsb_is_dir(dir) ? fsb_read_file(path, &data, &n) : FSB_ENOTFOUND;
    if (st == FSB_ENOTFOUND)
        st = fsb_error(FSB_ENOTFOUND, "%s is not a run folder (no run.id)", dir);
    if (!st) st = fsb_run_ident_parse(id, data, path);
    free(path);
    if (!st && text)
        *text = data;
    else
        free(data);
    return st;
}

/* The line of text whose key (before '=') equals that of line `key` (klen bytes), or NULL. */
static const char *find_key(const char *text, const char *key, size_t klen)
{
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') return p;
        p += len + (p[len] == '\n');
    }
    return NULL;
}

/* Append "its <line of a>, this run's <line of b>" for every key of `a` whose line differs in
 * b (or is missing there); with swapped set, only the keys b has and a lacks. */
static void diff_keys(const char *a, const char *b, int swapped, char *out, size_t n)
{
    for (const char *p = a; *p;) {
        size_t len = strcspn(p, "\n"), klen = strcspn(p, "=\n");
        const char *q = find_key(b, p, klen);
        size_t qlen = q ? strcspn(q, "\n") : 0;
        if (!q || (!swapped && (qlen != len || strncmp(p, q, len) != 0))) {
            size_t used = strlen(out);
            const char *mine = swapped ? "" : p, *theirs = swapped ? p : q ? q : "";
            int ml = (int)(swapped ? 0 : len), tl = (int)(swapped ? len : qlen);
            snprintf(out + used, n - used, "%sits %.*s%s, this run's %.*s%s", used ? "; " : "", ml,
                     mine, ml ? "" : "nothing", tl, theirs, tl ? "" : "nothing");
        }
        p += len + (p[len] == '\n');
    }
}

void fsb_run_ident_diff(const char *a, const char *b, char *out, size_t n)
{
    out[0] = '\0';
    diff_keys(a, b, 0, out, n);
    diff_keys(b, a, 1, out, n);
}

/* The checkpoint that serves shot slot s of method m: 1 and its hash in *h, or 0 for the
 * teacher. */
static int shot_source(const fsb_run_ident *id, const fsb_run_method_id *m, int s, uint64_t *h)
{
    for (int j = 0; j < m->n_at; j++)
        if (m->at[j].shot == id->shots[s]) return *h = m->at[j].xxh3, 1;
    *h = m->model_xxh3;
    return m->has_model;
}

/* Method m's entry of the Models line when it has per-shot models: the shots of each
 * checkpoint (in the order of their first shot), "5-, 10-, 30-shot checkpoint XXH3-64 H";
 * shots without a model of the method "3-shot the teacher". */
static void models_per_shot(const fsb_run_ident *id, const fsb_run_method_id *m, const char *order,
                            int own, char *out, size_t n)
{
    uint64_t h[FSB_EPISODES_MAX_SHOTS];
    int has[FSB_EPISODES_MAX_SHOTS], done[FSB_EPISODES_MAX_SHOTS] = {0}, n_own = 0;
    for (int s = 0; s < id->n_shots; s++) {
        has[s] = shot_source(id, m, s, &h[s]);
        int first = 1;
        for (int t = 0; t < s; t++)
            first &= !(has[t] == has[s] && h[t] == h[s]);
        n_own += has[s] && first;
    }
    size_t len = (size_t)snprintf(
        out, n, "%s%s uses its own model%s%s%s%s:", own ? ", " : "Models: ", m->name,
        n_own > 1 ? "s" : "", *order ? " (" : "", order, *order ? ")" : "");
    for (int s = 0, groups = 0; s < id->n_shots && len < n; s++) {
        if (done[s]) continue;
        len += (size_t)snprintf(out + len, n - len, "%s", groups++ ? ";" : "");
        for (int t = s, k = 0; t < id->n_shots && len < n; t++)
            if (!done[t] && has[t] == has[s] && h[t] == h[s]) {
                done[t] = 1;
                len += (size_t)snprintf(out + len, n - len, "%s %d-", k++ ? "," : "", id->shots[t]);
            }
        if (len < n && has[s])
            len +=
                (size_t)snprintf(out + len, n - len, "shot checkpoint XXH3-64 %016" PRIx64, h[s]);
        else if (len < n)
            len += (size_t)snprintf(out + len, n - len, "shot the teacher");
    }
}

void fsb_run_ident_report_options(const fsb_run_ident *id, fsb_report_options *o,
                                  fsb_run_report_text *text)
{
    /* the paper's numbers are 5-way with 15 queries per class on the canonical test split:
     * another protocol is not comparable, cell for cell */
    int canonical = fsb_report_paper_applies(id->data_fp);
    o->no_paper = !canonical || id->way != 5 || id->query != 15;
    snprintf(text->backbone, sizeof text->backbone, "%s", id->teacher_arch);
    o->backbone = text->backbone[0] ? text->backbone : NULL;
    if (canonical)
        snprintf(text->setting, sizeof text->setting, "MiniImageNet %s", id->split);
    else
        snprintf(text->setting, sizeof text->setting, "split %s (fingerprint %016" PRIx64 ")",
                 id->split, id->data_fp);
    size_t len = strlen(text->setting);
    snprintf(text->setting + len, sizeof text->setting - len,
             ", %d-way, %d queries/class, %s teacher", id->way, id->query, id->teacher_arch);
    o->setting = text->setting;
    /* rows with their own model (bench run --model): named, with the hashes run.id holds */
    int own = 0;
    text->models[0] = '\0';
    for (int i = 0; i < id->n_methods; i++) {
        const fsb_run_method_id *m = &id->methods[i];
        if (!m->has_model && !m->n_at) continue;
        len = strlen(text->models);
        const char *order = m->order == 1   ? "first-order MAML"
                            : m->order == 2 ? "second-order MAML"
                                            : "";
        if (!m->n_at)
            snprintf(text->models + len, sizeof text->models - len,
                     "%s%s uses its own model (%s%scheckpoint XXH3-64 %016" PRIx64 ")",
                     own ? ", " : "Models: ", m->name, order, *order ? ", " : "", m->model_xxh3);
        else
            models_per_shot(id, m, order, own, text->models + len, sizeof text->models - len);
        own++;
    }
    if (own) {
        len = strlen(text->models);
        if (own < id->n_methods)
            snprintf(text->models + len, sizeof text->models - len,
                     "; the other rows use the teacher (XXH3-64 %016" PRIx64 ").",
                     id->teacher_xxh3);
        else
            snprintf(text->models + len, sizeof text->models - len, ".");
    }
    o->models = own ? text->models : NULL;
}

/* ---- the folder -------------------------------------------------------------------------- */

/* 1 when folder `out` holds an mpirun rank's journal (journal.r<i>of<n>.log) or shard.done. */
static int holds_run_files(const char *out)
{
    DIR *d = opendir(out);
    if (!d) return 0;
    int found = 0, r, n, len;
    struct dirent *ent;
    while (!found && (ent = readdir(d))) {
        len = 0;
        found = !strcmp(ent->d_name, "shard.done") ||
                (sscanf(ent->d_name, "journal.r%dof%d.log%n", &r, &n, &len) == 2 &&
                 ent->d_name[len] == '\0');
    }
    closedir(d);
    return found;
}

int fsb_runfolder_check(const char *out, const char *id_text, const char *flag)
{
    if (!fsb_is_dir(out))
        return fsb_is_file(out) ? fsb_error(FSB_EIO, "%s: %s is a file", flag, out) : FSB_OK;
    char *path = fsb_path_join(out, "run.id"), *pe = fsb_path_join(out, "per_episode.csv"),
         *jl = fsb_path_join(out, "journal.log");
    void *old = NULL;
    size_t n;
    int st = !path || !pe || !jl ? fsb_error(FSB_ENOMEM, "out of memory")
                                 : fsb_read_file(path, &old, &n);
    if (st == FSB_OK && strcmp(old, id_text) != 0) {
        char diff[1024];
        fsb_run_ident_diff(old, id_text, diff, sizeof diff);
        st = fsb_error(FSB_EMISMATCH, "%s: %s holds a different run (%s); use another folder", flag,
                       out, diff);
    } else if (st == FSB_ENOTFOUND) {
        st = fsb_is_file(pe) || fsb_is_file(jl) || holds_run_files(out)
                 ? fsb_error(FSB_EMISMATCH,
                             "%s: %s holds results without a run.id; use another folder", flag, out)
                 : FSB_OK;
    }
    free(old);
    free(path);
    free(pe);
    free(jl);
    return st;
}

int fsb_runfolder_claim(const char *out, const char *id_text, const char *flag)
{
    int st = fsb_runfolder_check(out, id_text, flag);
    if (st) return st;
    if ((st = fsb_mkdir_p(out))) return fsb_error_wrap(st, "%s", flag);
    char *path = fsb_path_join(out, "run.id");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    if (!fsb_is_file(path)) st = fsb_write_file(path, id_text, strlen(id_text));
    free(path);
    return st;
}

/* ---- journal records ---------------------------------------------------------------------- */

int fsb_run_record_format(const fsb_episode_record *rec, char *buf, size_t n)
{
    return snprintf(buf, n, "%lld,%d,%s,%d,%d,%.3f,%.3f", (long long)rec->episode, rec->shot,
                    rec->method, rec->n_correct, rec->n_query, rec->fit_ms, rec->predict_ms);
}

int fsb_run_record_parse(const char *payload, fsb_episode_record *rec)
{
    long long ep;
    int shot, nc, nq, used = 0;
    double fit, pred;
    char name[FSB_METHOD_NAME_MAX];
    if (sscanf(payload, "%lld,%d,%47[^,],%d,%d,%lf,%lf%n", &ep, &shot, name, &nc, &nq, &fit, &pred,
               &used) != 7 ||
        payload[used] != '\0' || ep < 0 || shot < 1 || nq <= 0 || nc < 0 || nc > nq ||
        !(fit >= 0 && fit < HUGE_VAL) || !(pred >= 0 && pred < HUGE_VAL))
        return fsb_error(FSB_EFORMAT, "malformed record '%s'", payload);
    memset(rec, 0, sizeof *rec);
    rec->episode = ep;
    rec->shot = shot;
    snprintf(rec->method, sizeof rec->method, "%s", name);
    rec->n_correct = nc;
    rec->n_query = nq;
    rec->accuracy = (double)nc / nq;
    rec->fit_ms = fit;
    rec->predict_ms = pred;
    return FSB_OK;
}

/* ---- final files ------------------------------------------------------------------------- */

static int write_manifest(const char *out, const char *id_text, const char *extra, double seconds)
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
        fprintf(f.fp, "%s%s", id_text, extra ? extra : "");
        fprintf(f.fp,
                "versions=%s\nopenblas_core=%s\nfinished=%s\nwall_seconds_this_session=%.1f\n",
                versions, fsb_blas_core(), when, seconds);
        st = fsb_outfile_commit(&f);
    }
    free(path);
    return st;
}

int fsb_runfolder_write_results(const char *out, const char *id_text, fsb_episode_record *recs,
                                size_t n, const char *manifest_extra, double t0, FILE *log)
{
    fsb_run_ident id;
    int st = fsb_run_ident_parse(&id, id_text, "run.id");
    if (st) return st;
    fsb_report_sort(recs, n);
    fsb_report_result res;
    memset(&res, 0, sizeof res);
    fsb_report_options ropt = {.no_paper = 1};
    fsb_run_report_text text;
    fsb_run_ident_report_options(&id, &ropt, &text);
    if ((st = fsb_report_write(out, recs, n, &ropt, &res))) return st;
    if (res.note[0] && log) fprintf(log, "note: %s\n", res.note);
    st = write_manifest(out, id_text, manifest_extra, fsb_now() - t0);
    if (!st && log)
        fprintf(log,
                "wrote %s/{per_episode.csv,summary.csv,paired.csv,table.md,table.tex,timing.csv%s,"
                "manifest.txt,episodes.csv} in %.1f s\n",
                out, res.plotted ? ",accuracy_vs_shots.png" : "", fsb_now() - t0);
    return st;
}

int fsb_runfolder_rebuild(const char *run_dir, const fsb_report_options *opt,
                          fsb_report_result *res)
{
    if (!fsb_is_dir(run_dir)) return fsb_error(FSB_ENOTFOUND, "%s: no such run folder", run_dir);
    char *path = fsb_path_join(run_dir, "per_episode.csv"),
         *id_path = fsb_path_join(run_dir, "run.id");
    if (!path || !id_path) {
        free(path), free(id_path);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    fsb_episode_record *recs = NULL;
    size_t n = 0;
    int st = fsb_is_file(path) ? fsb_report_read_episodes(path, &recs, &n)
                               : fsb_error(FSB_ENOTFOUND, "%s: not found", path);
    fsb_report_options o2 = {0};
    fsb_run_report_text text;
    if (opt) o2 = *opt;
    fsb_run_ident id;
    if (st == FSB_OK && fsb_is_file(id_path)) {
        if ((st = fsb_run_ident_read(run_dir, &id, NULL)) == FSB_OK)
            fsb_run_ident_report_options(&id, &o2, &text);
    }
    if (st == FSB_OK) st = fsb_report_derive(run_dir, recs, n, &o2, res);
    free(recs);
    free(path);
    free(id_path);
    return st;
}
