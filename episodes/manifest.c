/* manifest.c - episode manifests: export a sweep to CSV with a `# key=value` header and an
 * XXH3-128 content hash, and load one back onto a split by class and image name, checking
 * every row. Exporting a loaded manifest reproduces it byte for byte (docs/episodes.md).
 */
#include "fsb/episodes.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <xxhash.h>

static const char COLUMNS[] = "episode,label,class,role,rank,file";
static const char *const HEADER_KEYS[] = {"format", "generator", "seed",  "split",    "fingerprint",
                                          "way",    "shots",     "query", "episodes", "hash"};
enum {
    K_FORMAT,
    K_GENERATOR,
    K_SEED,
    K_SPLIT,
    K_FINGERPRINT,
    K_WAY,
    K_SHOTS,
    K_QUERY,
    K_EPISODES,
    K_HASH,
    N_KEYS
};

/* --- writing --------------------------------------------------------------------------- */

#define OUTBUF_SIZE (1 << 20) /* bytes formatted before one hash update + fwrite */

typedef struct row_writer {
    char *buf;          /* OUTBUF_SIZE bytes */
    size_t used;        /* bytes pending in buf */
    XXH3_state_t *hash; /* the content hash, fed everything flushed */
    FILE *fp;           /* where rows go (NULL: hash only) */
} row_writer;

static int rw_flush(row_writer *w)
{
    XXH3_128bits_update(w->hash, w->buf, w->used);
    if (w->fp && w->used && fwrite(w->buf, 1, w->used, w->fp) != w->used) {
        w->used = 0;
        return FSB_EIO; /* fsb_outfile_commit reports the path and the error */
    }
    w->used = 0;
    return FSB_OK;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_int(char *p, int v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static int name_ok(const char *s)
{
    for (; *s; s++)
        if (*s == ',' || *s == '\n' || *s == '\r') return 0;
    return 1;
}

/* hex[33]: the 16 bytes as 32 lowercase hex digits. */
static void digest_hex(const unsigned char digest[16], char hex[33])
{
    for (int b = 0; b < 16; b++)
        snprintf(hex + 2 * b, 3, "%02x", digest[b]);
}

/* Write (or only hash) the column row and all data rows of `sw`. */
static int write_rows(const fsb_sweep *sw, const fsb_split *s, FILE *fp, char hex[33])
{
    int st = FSB_OK;
    row_writer w = {0};
    size_t *blen = NULL, *clen = NULL;
    const char **base = NULL;
    w.fp = fp;
    w.buf = malloc(OUTBUF_SIZE);
    w.hash = XXH3_createState();
    base = malloc(sizeof *base * (size_t)(s->n_images + 1));
    blen = malloc(sizeof *blen * (size_t)(s->n_images + 1));
    clen = malloc(sizeof *clen * (size_t)(s->n_classes + 1));
    if (!w.buf || !w.hash || !base || !blen || !clen) {
        st = fsb_error(FSB_ENOMEM, "writing episodes: out of memory");
        goto done;
    }
    for (int k = 0; k < s->n_classes; k++) {
        if (!name_ok(s->class_names[k])) {
            st = fsb_error(FSB_EINVAL,
                           "class '%s' contains a comma or line break and cannot "
                           "be written to an episode manifest",
                           s->class_names[k]);
            goto done;
        }
        clen[k] = strlen(s->class_names[k]);
    }
    for (int i = 0; i < s->n_images; i++) {
        base[i] = fsb_split_basename(s, i);
        blen[i] = strlen(base[i]);
    }
    XXH3_128bits_reset(w.hash);
    w.used = (size_t)(put_str(w.buf, COLUMNS, sizeof COLUMNS - 1) - w.buf);
    w.buf[w.used++] = '\n';
    for (int e = 0; e < sw->n_episodes; e++) {
        fsb_episode ep;
        fsb_sweep_episode(sw, e, &ep);
        for (int c = 0; c < sw->way; c++) {
            int k = ep.classes[c];
            for (int role = 0; role < 2; role++) {
                int n = role == 0 ? sw->max_shot : sw->query;
                const int *img = role == 0 ? ep.support + (size_t)c * (size_t)sw->max_shot
                                           : ep.queries + (size_t)c * (size_t)sw->query;
                for (int r = 0; r < n; r++) {
                    int i = img[r];
                    if (!name_ok(base[i])) {
                        st = fsb_error(FSB_EINVAL,
                                       "image '%s' contains a comma or line break "
                                       "and cannot be written to an episode manifest",
                                       base[i]);
                        goto done;
                    }
                    if (w.used + 64 + clen[k] + blen[i] > OUTBUF_SIZE && (st = rw_flush(&w)))
                        goto done;
                    char *p = w.buf + w.used;
                    p = put_int(p, e);
                    *p++ = ',';
                    p = put_int(p, c);
                    *p++ = ',';
                    p = put_str(p, s->class_names[k], clen[k]);
                    p = role == 0 ? put_str(p, ",support,", 9) : put_str(p, ",query,", 7);
                    p = put_int(p, r);
                    *p++ = ',';
                    p = put_str(p, base[i], blen[i]);
                    *p++ = '\n';
                    w.used = (size_t)(p - w.buf);
                }
            }
        }
    }
    if ((st = rw_flush(&w))) goto done;
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(w.hash));
    digest_hex(canon.digest, hex);
done:
    XXH3_freeState(w.hash);
    free(w.buf);
    free(base);
    free(blen);
    free(clen);
    return st;
}

int fsb_sweep_hash(const fsb_sweep *sw, const fsb_split *s, char hex[33])
{
    return write_rows(sw, s, NULL, hex);
}

static void shots_text(const fsb_sweep *sw, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < sw->n_shots && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%d", i ? "," : "", sw->shots[i]);
}

int fsb_episodes_export(const fsb_sweep *sw, const fsb_split *s, const char *path, char hex[33])
{
    int st;
    char h[33] = {0}, shots[16 * FSB_EPISODES_MAX_SHOTS];
    fsb_outfile f = {0};
    if (!name_ok(sw->generator) || !name_ok(sw->split))
        return fsb_error(FSB_EINVAL, "%s: generator or split name contains a comma or line break",
                         path);
    if ((st = fsb_outfile_open(&f, path))) return st;
    shots_text(sw, shots, sizeof shots);
    fprintf(f.fp,
            "# format=%s\n# generator=%s\n# seed=%" PRIu64 "\n# split=%s\n"
            "# fingerprint=%016" PRIx64 "\n# way=%d\n# shots=%s\n# query=%d\n# episodes=%d\n",
            FSB_EPISODES_FORMAT, sw->generator, sw->seed, sw->split, sw->fingerprint, sw->way,
            shots, sw->query, sw->n_episodes);
    fputs("# hash=xxh3-128:", f.fp);
    long hash_at = ftell(f.fp);
    fputs("00000000000000000000000000000000\n", f.fp);
    if ((st = write_rows(sw, s, f.fp, h))) goto done;
    if (hash_at < 0 || fseek(f.fp, hash_at, SEEK_SET) || fputs(h, f.fp) == EOF ||
        fseek(f.fp, 0, SEEK_END)) {
        st = fsb_error(FSB_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    st = fsb_outfile_commit(&f);
    if (!st && hex) memcpy(hex, h, 33);
done:
    if (st) fsb_outfile_abort(&f);
    return st;
}

/* --- reading --------------------------------------------------------------------------- */

/* A cursor over a whole file read into memory, one line at a time. */
typedef struct line_reader {
    char *p;      /* next unread byte */
    char *end;    /* end of data */
    long line_no; /* 1-based number of the line last returned */
} line_reader;

/* Next line, NUL-terminated in place, without its "\n" or "\r\n"; NULL at the end. */
static char *next_line(line_reader *r, size_t *len)
{
    if (r->p >= r->end) return NULL;
    char *line = r->p;
    char *nl = memchr(line, '\n', (size_t)(r->end - line));
    char *stop = nl ? nl : r->end;
    r->p = nl ? nl + 1 : r->end;
    if (stop > line && stop[-1] == '\r') stop--;
    *stop = '\0';
    *len = (size_t)(stop - line);
    r->line_no++;
    return line;
}

/* Strict decimal in [lo, hi]: digits only, no sign, no leading zero (except "0"). */
static int parse_dec(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!*s || (s[0] == '0' && s[1])) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_hex(const char *s, size_t digits, unsigned char *out_bytes, uint64_t *out64)
{
    if (strlen(s) != digits) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        int d;
        if (s[i] >= '0' && s[i] <= '9')
            d = s[i] - '0';
        else if (s[i] >= 'a' && s[i] <= 'f')
            d = s[i] - 'a' + 10;
        else
            return -1;
        v = v << 4 | (uint64_t)d;
        if (out_bytes && (i & 1)) out_bytes[i / 2] = (unsigned char)(v & 0xff);
    }
    if (out64) *out64 = v;
    return 0;
}

/* The header block of a manifest: raw values and their lines. */
typedef struct manifest_header {
    char *val[N_KEYS]; /* value text of each key (points into the file buffer) */
    long line[N_KEYS]; /* line of each key, 0 when missing */
} manifest_header;

static int read_header(line_reader *r, const char *path, manifest_header *h)
{
    memset(h, 0, sizeof *h);
    while (r->p < r->end && *r->p == '#') { /* the block ends at the column row */
        size_t len;
        char *line = next_line(r, &len);
        if (strncmp(line, "# ", 2) != 0 || !strchr(line, '='))
            return fsb_error(FSB_EFORMAT, "%s:%ld: header lines must be '# key=value'", path,
                             r->line_no);
        char *key = line + 2, *eq = strchr(key, '=');
        *eq = '\0';
        int k = 0;
        while (k < N_KEYS && strcmp(HEADER_KEYS[k], key) != 0)
            k++;
        if (k == N_KEYS)
            return fsb_error(FSB_EFORMAT, "%s:%ld: unknown header key '%s'", path, r->line_no, key);
        if (h->line[k])
            return fsb_error(FSB_EFORMAT, "%s:%ld: header key '%s' repeats line %ld", path,
                             r->line_no, key, h->line[k]);
        h->val[k] = eq + 1;
        h->line[k] = r->line_no;
    }
    for (int k = 0; k < N_KEYS; k++)
        if (!h->line[k])
            return fsb_error(FSB_EFORMAT, "%s: header key '%s' is missing", path, HEADER_KEYS[k]);
    if (strcmp(h->val[K_FORMAT], FSB_EPISODES_FORMAT) != 0)
        return fsb_error(FSB_EFORMAT, "%s:%ld: format '%s' is not %s", path, h->line[K_FORMAT],
                         h->val[K_FORMAT], FSB_EPISODES_FORMAT);
    return FSB_OK;
}

/* Parse the header values into sw (no arrays yet). `hash` gets the 16 declared bytes. */
static int parse_header(const manifest_header *h, const char *path, const fsb_split *s,
                        fsb_sweep *sw, unsigned char hash[16])
{
    uint64_t v;
#define BAD(k, what)                                                                               \
    fsb_error(FSB_EFORMAT, "%s:%ld: %s '%s' is not " what, path, h->line[k], HEADER_KEYS[k],       \
              h->val[k])
    /* the names the export writes back (the header is not hashed: a name it would refuse
     * must not load) */
    if (strlen(h->val[K_GENERATOR]) >= sizeof sw->generator || !h->val[K_GENERATOR][0] ||
        !name_ok(h->val[K_GENERATOR]))
        return BAD(K_GENERATOR, "a name of 1 to 63 characters without commas or line breaks");
    snprintf(sw->generator, sizeof sw->generator, "%s", h->val[K_GENERATOR]);
    if (strlen(h->val[K_SPLIT]) >= sizeof sw->split || !h->val[K_SPLIT][0] ||
        !name_ok(h->val[K_SPLIT]))
        return BAD(K_SPLIT, "a name of 1 to 63 characters without commas or line breaks");
    snprintf(sw->split, sizeof sw->split, "%s", h->val[K_SPLIT]);
    if (parse_dec(h->val[K_SEED], 0, UINT64_MAX, &sw->seed)) return BAD(K_SEED, "a whole number");
    if (parse_hex(h->val[K_FINGERPRINT], 16, NULL, &sw->fingerprint))
        return BAD(K_FINGERPRINT, "16 lowercase hex digits");
    if (parse_dec(h->val[K_WAY], 1, 1000000, &v)) return BAD(K_WAY, "a positive whole number");
    sw->way = (int)v;
    if (sw->way > s->n_classes)
        return fsb_error(FSB_EINVAL, "%s:%ld: way %d is more than the %d classes of split %s", path,
                         h->line[K_WAY], sw->way, s->n_classes, s->name);
    if (parse_dec(h->val[K_QUERY], 0, 1000000, &v)) return BAD(K_QUERY, "a whole number");
    sw->query = (int)v;
    if (parse_dec(h->val[K_EPISODES], 1, FSB_EPISODES_MAX_COUNT, &v))
        return BAD(K_EPISODES, "a whole number in [1, 1000000]");
    sw->n_episodes = (int)v;
    char shots[16 * FSB_EPISODES_MAX_SHOTS];
    if (strlen(h->val[K_SHOTS]) >= sizeof shots)
        return BAD(K_SHOTS, "a short ascending list of shots");
    strcpy(shots, h->val[K_SHOTS]);
    sw->n_shots = 0;
    for (char *tok = shots, *comma; tok; tok = comma ? comma + 1 : NULL) {
        comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        if (sw->n_shots == FSB_EPISODES_MAX_SHOTS || parse_dec(tok, 1, 1000000, &v) ||
            (sw->n_shots && (int)v <= sw->shots[sw->n_shots - 1]))
            return BAD(K_SHOTS, "an ascending list of positive shots");
        sw->shots[sw->n_shots++] = (int)v;
    }
    sw->max_shot = sw->shots[sw->n_shots - 1];
    if (strncmp(h->val[K_HASH], "xxh3-128:", 9) != 0 ||
        parse_hex(h->val[K_HASH] + 9, 32, hash, NULL))
        return BAD(K_HASH, "xxh3-128: and 32 lowercase hex digits");
#undef BAD
    return FSB_OK;
}

/* Split a row into exactly 6 comma-separated fields (in place). */
static int split_row(char *line, char *f[6])
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == ',') {
            if (n == 6) return -1;
            *p = '\0';
            f[n++] = p + 1;
        }
    return n == 6 ? 0 : -1;
}

/* The state of reading a manifest's rows onto a split. */
typedef struct row_reader {
    line_reader r;      /* the file, after the header */
    const char *path;   /* for messages */
    const fsb_split *s; /* the split the rows are mapped onto */
    fsb_sweep *sw;      /* receives classes, support and queries */
    XXH3_state_t *hash; /* the content hash of the column row and the rows read */
    int *class_seen;    /* [n_classes] episode+1 in which the class was last used */
    int *image_seen;    /* [n_images] episode+1 in which the image was last used */
    long *image_line;   /* [n_images] line where the image was last used */
    long label_line;    /* line of the first row of the current (episode, label) */
} row_reader;

/* The next line, fed to the content hash with its "\n"; NULL at the end. */
static char *hashed_line(row_reader *rr, size_t *len)
{
    char *line = next_line(&rr->r, len);
    if (line) {
        XXH3_128bits_update(rr->hash, line, *len);
        XXH3_128bits_update(rr->hash, "\n", 1);
    }
    return line;
}

/* The class of the row of episode e, label c that names f_class: the first row of a label
 * looks it up (*k < 0 on entry) and claims it for the episode; later rows must repeat it. */
static int row_class(row_reader *rr, int e, int c, const char *f_class, int *k)
{
    const char *path = rr->path;
    const fsb_split *s = rr->s;
    long no = rr->r.line_no;
    if (*k >= 0) {
        if (strcmp(f_class, s->class_names[*k]) == 0) return FSB_OK;
        return fsb_error(FSB_EFORMAT,
                         "%s:%ld: class '%s' differs from '%s' given "
                         "for episode %d label %d on line %ld",
                         path, no, f_class, s->class_names[*k], e, c, rr->label_line);
    }
    *k = fsb_split_class_index(s, f_class);
    rr->label_line = no;
    if (*k < 0)
        return fsb_error(FSB_ENOTFOUND,
                         "%s:%ld: class '%s' is not in split "
                         "%s (%s)",
                         path, no, f_class, s->name, s->source);
    if (rr->class_seen[*k] == e + 1)
        return fsb_error(FSB_EFORMAT,
                         "%s:%ld: class '%s' appears twice in "
                         "episode %d",
                         path, no, f_class, e);
    rr->class_seen[*k] = e + 1;
    rr->sw->classes[(size_t)e * rr->sw->way + c] = *k;
    return FSB_OK;
}

/* Read the row of episode e, label c, role (0 support, 1 query), rank: it must be exactly
 * that row, of the label's class *k (see row_class), naming an image of that class not yet
 * used in the episode; the image goes to *img. */
static int read_row(row_reader *rr, int e, int c, int role, int rank, int *k, int *img)
{
    const char *path = rr->path, *role_name = role == 0 ? "support" : "query";
    size_t len;
    char *f[6], *line = hashed_line(rr, &len);
    uint64_t ve, vc, vr;
    if (!line)
        return fsb_error(FSB_EFORMAT,
                         "%s:%ld: rows end early: missing episode %d label %d "
                         "%s rank %d (header says %d episodes)",
                         path, rr->r.line_no + 1, e, c, role_name, rank, rr->sw->n_episodes);
    long no = rr->r.line_no;
    if (split_row(line, f) || parse_dec(f[0], 0, INT32_MAX, &ve) ||
        parse_dec(f[1], 0, INT32_MAX, &vc) || parse_dec(f[4], 0, INT32_MAX, &vr))
        return fsb_error(FSB_EFORMAT,
                         "%s:%ld: not a row "
                         "'episode,label,class,role,rank,file'",
                         path, no);
    if ((int)ve != e || (int)vc != c || strcmp(f[3], role_name) != 0 || (int)vr != rank)
        return fsb_error(FSB_EFORMAT,
                         "%s:%ld: expected episode %d label %d %s rank %d here, "
                         "found episode %s label %s %s rank %s (a row is missing, "
                         "repeated or out of order)",
                         path, no, e, c, role_name, rank, f[0], f[1], f[3], f[4]);
    int st = row_class(rr, e, c, f[2], k);
    if (st) return st;
    int i = fsb_split_image_index(rr->s, *k, f[5]);
    if (i < 0)
        return fsb_error(FSB_ENOTFOUND,
                         "%s:%ld: image '%s' of class '%s' is not "
                         "in split %s (%s)",
                         path, no, f[5], f[2], rr->s->name, rr->s->source);
    if (rr->image_seen[i] == e + 1)
        return fsb_error(FSB_EFORMAT,
                         "%s:%ld: image '%s' is used twice in episode "
                         "%d (also on line %ld)",
                         path, no, f[5], e, rr->image_line[i]);
    rr->image_seen[i] = e + 1;
    rr->image_line[i] = no;
    *img = i;
    return FSB_OK;
}

/* The column row, every row in order (episode, label, support ranks then query ranks), then
 * nothing but empty lines. */
static int read_rows(row_reader *rr)
{
    fsb_sweep *sw = rr->sw;
    size_t len;
    char *line = hashed_line(rr, &len);
    if (!line || strcmp(line, COLUMNS) != 0)
        return fsb_error(FSB_EFORMAT, "%s:%ld: expected the column row '%s'", rr->path,
                         rr->r.line_no + !line, COLUMNS);
    for (int e = 0; e < sw->n_episodes; e++)
        for (int c = 0; c < sw->way; c++) {
            int k = -1;
            size_t at = (size_t)e * sw->way + c;
            for (int r = 0; r < sw->max_shot; r++) {
                int st = read_row(rr, e, c, 0, r, &k, sw->support + at * sw->max_shot + r);
                if (st) return st;
            }
            for (int r = 0; r < sw->query; r++) {
                int st = read_row(rr, e, c, 1, r, &k, sw->queries + at * sw->query + r);
                if (st) return st;
            }
        }
    while ((line = next_line(&rr->r, &len)))
        if (len)
            return fsb_error(FSB_EFORMAT,
                             "%s:%ld: extra row after the %d episodes the header "
                             "declares",
                             rr->path, rr->r.line_no, sw->n_episodes);
    return FSB_OK;
}

int fsb_episodes_load(fsb_sweep *sw, const fsb_split *s, const char *path, int *fingerprint_differs)
{
    int st = FSB_OK;
    char *data = NULL;
    size_t size;
    row_reader rr = {.path = path, .s = s, .sw = sw};
    manifest_header h;
    unsigned char want[16];
    memset(sw, 0, sizeof *sw);
    if (fingerprint_differs) *fingerprint_differs = 0;
    if ((st = fsb_read_file_gz(path, (void **)&data, &size))) return st;
    rr.r = (line_reader){data, data + size, 0};
    if ((st = read_header(&rr.r, path, &h)) || (st = parse_header(&h, path, s, sw, want)))
        goto done;
    size_t ne = (size_t)sw->n_episodes * (size_t)sw->way;
    /* a row takes at least 16 bytes ("0,0,a,query,0,x\n"): refuse to allocate for a header
     * that declares more rows than the file could hold */
    double rows = (double)ne * ((double)sw->max_shot + sw->query);
    if (rows * 16 > (double)size) {
        st = fsb_error(FSB_EFORMAT,
                       "%s:%ld: the header declares %.0f rows, more than the %zu "
                       "bytes of the file can hold",
                       path, h.line[K_EPISODES], rows, size);
        goto done;
    }
    sw->classes = malloc(sizeof(int) * ne);
    sw->support = malloc(sizeof(int) * ne * (size_t)sw->max_shot);
    sw->queries = malloc(sizeof(int) * (ne * (size_t)sw->query + 1));
    rr.class_seen = calloc((size_t)s->n_classes + 1, sizeof *rr.class_seen);
    rr.image_seen = calloc((size_t)s->n_images + 1, sizeof *rr.image_seen);
    rr.image_line = calloc((size_t)s->n_images + 1, sizeof *rr.image_line);
    rr.hash = XXH3_createState();
    if (!sw->classes || !sw->support || !sw->queries || !rr.class_seen || !rr.image_seen ||
        !rr.image_line || !rr.hash) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    XXH3_128bits_reset(rr.hash);
    if ((st = read_rows(&rr))) goto done;
    XXH128_canonical_t got;
    XXH128_canonicalFromHash(&got, XXH3_128bits_digest(rr.hash));
    if (memcmp(got.digest, want, 16) != 0) {
        char hex[33];
        digest_hex(got.digest, hex);
        st = fsb_error(FSB_EMISMATCH,
                       "%s:%ld: content hash mismatch: the header says %s, the "
                       "rows hash to xxh3-128:%s (the file was edited or "
                       "damaged)",
                       path, h.line[K_HASH], h.val[K_HASH], hex);
        goto done;
    }
    if (fingerprint_differs) *fingerprint_differs = sw->fingerprint != s->fingerprint;
done:
    XXH3_freeState(rr.hash);
    free(rr.class_seen);
    free(rr.image_seen);
    free(rr.image_line);
    free(data);
    if (st) fsb_sweep_free(sw);
    return st;
}

int fsb_episodes_manifest_split(const char *path, char *name, size_t n)
{
    gzFile fp = gzopen(path, "rb"); /* a plain or a gzip-compressed manifest */
    if (!fp) return fsb_error(FSB_EIO, "%s: %s", path, errno ? strerror(errno) : "out of memory");
    char line[1024];
    long no = 0;
    int st = FSB_ENOTFOUND;
    while (gzgets(fp, line, sizeof line) && line[0] == '#') {
        no++;
        if (strncmp(line, "# split=", 8) == 0) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[8] && strlen(line + 8) < n) {
                snprintf(name, n, "%s", line + 8);
                st = FSB_OK;
            } else {
                st = FSB_EFORMAT;
            }
            break;
        }
    }
    gzclose(fp);
    if (st == FSB_EFORMAT) return fsb_error(st, "%s:%ld: bad split name", path, no);
    if (st)
        return fsb_error(FSB_EFORMAT,
                         "%s: no '# split=' line in the header (not an episode "
                         "manifest?)",
                         path);
    return FSB_OK;
}

int fsb_episodes_parse_arg(const char *flag, const char *text, long *count, int *is_path)
{
    int digits = *text != '\0';
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9') digits = 0;
    if (digits) {
        uint64_t v;
        if (parse_dec(text, 1, FSB_EPISODES_MAX_COUNT, &v))
            return fsb_error(FSB_EINVAL, "%s: %s is not a count in [1, %d]", flag, text,
                             FSB_EPISODES_MAX_COUNT);
        *count = (long)v;
        *is_path = 0;
        return FSB_OK;
    }
    if (!fsb_is_file(text))
        return fsb_error(FSB_EINVAL,
                         "%s: '%s' is neither an episode count nor an existing "
                         "manifest file",
                         flag, text);
    *is_path = 1;
    return FSB_OK;
}
