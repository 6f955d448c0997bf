/* make_corpus.c - writes the seed corpora tests/fuzz/corpus/<target>/ with fsbench's own
 * writers (and tests/support/fixtures.c for images): tiny valid inputs of each format, a few
 * KB at most, no dataset pixels. Run from a fuzz build: build-fuzz/fuzz_make_corpus DIR.
 * Regression inputs found by fuzzing are added to the same folders by hand (README.md).
 */
#include "common.h"
#include "fixtures.h"
#include "fsb/dataset.h"
#include "fsb/episodes.h"
#include "fsb/fileio.h"
#include "fsb/journal.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/student.h"
#include "fsb/tensorfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *out;

static void check(int st, const char *what)
{
    if (st) {
        fprintf(stderr, "make_corpus: %s: %s\n", what, fsb_error_last());
        exit(1);
    }
}

/* "<out>/<target>/<name>", its folder created. */
static char *seed_path(const char *target, const char *name)
{
    char *dir = fsb_path_join(out, target);
    check(dir ? fsb_mkdir_p(dir) : FSB_ENOMEM, target);
    char *p = fsb_path_join(dir, name);
    free(dir);
    if (!p) check(FSB_ENOMEM, name);
    return p;
}

static void put(const char *target, const char *name, const void *data, size_t size)
{
    char *p = seed_path(target, name);
    check(fsb_write_file(p, data, size), p);
    free(p);
}

static void put_str(const char *target, const char *name, const char *text)
{
    put(target, name, text, strlen(text));
}

/* gzip of a file's bytes into another seed */
static void put_gz(const char *target, const char *name, const void *data, size_t size)
{
    char *p = seed_path(target, name);
    gzFile gz = gzopen(p, "wb9");
    if (!gz || gzwrite(gz, data, (unsigned)size) != (int)size || gzclose(gz) != Z_OK)
        check(FSB_EIO, p);
    free(p);
}

static void *slurp(const char *path, size_t *size)
{
    void *d;
    check(fsb_read_file(path, &d, size), path);
    return d;
}

static void images(void)
{
    uint16_t s[6 * 5 * 4];
    uint8_t pal[4 * 3] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30};
    uint16_t trns_pal[4] = {255, 128, 0, 255}, trns_grey[1] = {1};
    char *p;
    for (int i = 0; i < 6 * 5 * 4; i++)
        s[i] = (uint16_t)(i * 37 % 256);
#define PNG(name, ct, depth, mask, palette, np, trns, il)                                          \
    do {                                                                                           \
        uint16_t v[6 * 5 * 4];                                                                     \
        for (int i = 0; i < 6 * 5 * 4; i++)                                                        \
            v[i] = (uint16_t)(s[i] & (mask));                                                      \
        p = seed_path("image", name);                                                              \
        fx_png(p, 6, 5, ct, depth, v, palette, np, trns, il);                                      \
        free(p);                                                                                   \
    } while (0)
    PNG("grey1.png", FX_GREY, 1, 1, NULL, 0, NULL, 0);
    PNG("grey16_trns.png", FX_GREY, 16, 0xffff, NULL, 0, trns_grey, 0);
    PNG("palette2_trns.png", FX_PALETTE, 2, 3, pal, 4, trns_pal, 0);
    PNG("grey_alpha8.png", FX_GREY_ALPHA, 8, 0xff, NULL, 0, NULL, 0);
    PNG("rgb8_interlaced.png", FX_RGB, 8, 0xff, NULL, 0, NULL, 1);
    PNG("rgba16.png", FX_RGBA, 16, 0xffff, NULL, 0, NULL, 0);
#undef PNG
    uint8_t px[8 * 8 * 3];
    fx_pattern(px, 8, 8, 3);
    p = seed_path("image", "rgb.jpg");
    fx_jpeg(p, 8, 8, px, 0, 50);
    free(p);
    p = seed_path("image", "grey.jpg");
    fx_jpeg(p, 8, 8, px, 1, 50);
    free(p);
    p = seed_path("image", "progressive.jpg");
    fx_jpeg_progressive_claiming(p, 16, 16);
    free(p);
}

static void split_csvs(void)
{
    put_str("split_csv", "plain.csv", FUZZ_MANIFEST_SPLIT);
    put_str("split_csv", "bom_crlf.csv",
            "\xEF\xBB\xBF"
            "filename,label\r\nx1.png,n02\r\n\r\nx0.jpg,n01\r\nx2.jpeg,n01\r\n");
    put_str("split_csv", "no_final_newline.csv", "filename,label\nb.jpg,z\na.jpg,y");
}

static void manifests(void)
{
    char *csv = fuzz_path("test.csv");
    fuzz_write(csv, FUZZ_MANIFEST_SPLIT, strlen(FUZZ_MANIFEST_SPLIT));
    free(csv);
    fsb_split s;
    check(fsb_split_open(&s, fuzz_dir(), "test"), "split");
    struct {
        const char *name;
        int way, n_shots, shots[2], query, episodes;
    } v[] = {{"way2_shots1,2_query1.csv", 2, 2, {1, 2}, 1, 2},
             {"way3_shot1_query2.csv", 3, 1, {1, 0}, 2, 1},
             {"way4_shot5_query0.csv", 4, 1, {5, 0}, 0, 1}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fsb_sweep sw;
        check(fsb_sweep_generate(&sw, &s, 0, v[i].way, v[i].shots, v[i].n_shots, v[i].query,
                                 v[i].episodes, NULL),
              v[i].name);
        char *p = seed_path("manifest", v[i].name);
        check(fsb_episodes_export(&sw, &s, p, NULL), p);
        if (i == 0) {
            size_t n;
            void *d = slurp(p, &n);
            put_gz("manifest", "way2_shots1,2_query1.csv.gz", d, n);
            free(d);
        }
        free(p);
        fsb_sweep_free(&sw);
    }
    fsb_split_free(&s);
}

static void checkpoints(void)
{
    fsb_model_opts o;
    fsb_model *m;
    const char *key[] = {"epoch"}, *val[] = {"3"};
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    for (int i = 0; i < 4; i++)
        o.widths[i] = 1;
    o.in_hw = 16;
    check(fsb_model_create(&m, &o, 2, 1, NULL, NULL), "conv4");
    char *p = seed_path("checkpoint", "conv4_w1_2class.fsbt");
    check(fsb_model_save(m, p, 1, key, val), p);
    free(p);
    fsb_model_destroy(m);
    fsb_model_opts_default(&o, FSB_ARCH_RES12);
    for (int i = 0; i < 4; i++)
        o.widths[i] = 1;
    o.in_hw = 16;
    check(fsb_model_create(&m, &o, 0, 1, NULL, NULL), "res12");
    p = seed_path("checkpoint", "res12_w1_nohead.fsbt");
    check(fsb_model_save(m, p, 0, NULL, NULL), p);
    free(p);
    fsb_model_destroy(m);
    /* a plain tensor file: scalar, int64, empty dims, empty metadata value */
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int64_t d2[2] = {2, 3}, d0[1] = {0}, i64[2] = {-1, 1ll << 40};
    float f[6] = {0.5f, -1, 2, 3, 4, 5};
    check(fsb_tensorfile_set_meta(&tf, "note", ""), "meta");
    check(fsb_tensorfile_add(&tf, "w", FSB_F32, 2, d2, f), "w");
    check(fsb_tensorfile_add(&tf, "s", FSB_F32, 0, NULL, f), "s");
    check(fsb_tensorfile_add(&tf, "n", FSB_I64, 1, (int64_t[]){2}, i64), "n");
    check(fsb_tensorfile_add(&tf, "e", FSB_F32, 1, d0, NULL), "e");
    p = seed_path("checkpoint", "tensors.fsbt");
    check(fsb_tensorfile_save(&tf, p), p);
    free(p);
    fsb_tensorfile_free(&tf);
}

static void journals(void)
{
    const char *recs[] = {"0,1,1nn,3,5,0.25,0.125", "0,5,protonet,5,5,1.5,0.0625",
                          "1,1,svm,0,5,12,0", "1,5,refilled,4,5,1000.5,3.25"};
    char *p = seed_path("journal", "run.log");
    fsb_journal j;
    remove(p);
    check(fsb_journal_open(&j, p, NULL, NULL), p);
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        check(fsb_journal_append(&j, recs[i]), p);
    fsb_journal_close(&j);
    size_t n;
    char *d = slurp(p, &n);
    free(p);
    /* the same with a torn last record, as a kill -9 mid-write leaves it */
    char *torn = malloc(n + 16);
    memcpy(torn, d, n);
    memcpy(torn + n, "2,1,1nn,4,5,0.2", 15);
    put("journal", "torn_tail.log", torn, n + 15);
    free(torn);
    free(d);
}

static void idx(void)
{
    /* 2 images of 3 x 2 pixels, then FSBIDXLABELS, then their 2 labels */
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3,  0,  0,
                                        0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 9};
    unsigned char both[sizeof img + 12 + sizeof lab];
    memcpy(both, img, sizeof img);
    memcpy(both + sizeof img, "FSBIDXLABELS", 12);
    memcpy(both + sizeof img + 12, lab, sizeof lab);
    put("idx", "plain.idx", both, sizeof both);
    /* gzip files, as Debian ships them */
    char *pi = fuzz_path("i.gz"), *pl = fuzz_path("l.gz");
    gzFile gz = gzopen(pi, "wb9");
    gzwrite(gz, img, sizeof img);
    gzclose(gz);
    gz = gzopen(pl, "wb9");
    gzwrite(gz, lab, sizeof lab);
    gzclose(gz);
    size_t ni, nl;
    char *di = slurp(pi, &ni), *dl = slurp(pl, &nl);
    char *g = malloc(ni + 12 + nl);
    memcpy(g, di, ni);
    memcpy(g + ni, "FSBIDXLABELS", 12);
    memcpy(g + ni + 12, dl, nl);
    put("idx", "gzip.idx", g, ni + 12 + nl);
    free(g);
    free(di);
    free(dl);
    free(pi);
    free(pl);
}

/* a string literal that may hold NUL bytes (the grid's method byte) */
#define PUT_BYTES(target, name, lit) put(target, name, lit, sizeof lit - 1)

static void specs(void)
{
    char canon[FSB_STUDENT_SPEC_MAX];
    fsb_student_opts o;
    fsb_student_opts_default(&o);
    fsb_student_opts_string(&o, canon, sizeof canon);
    put_str("student", "defaults", canon);
    put_str("student", "readme", "lr2=0.01,adapt=last,augment=1");
    put_str("student", "refilled",
            "stage1_steps=5,lr1=1e-3,views=4,k1=skip,miner=facenet,margin=0.5,tau1=2,w1=100,"
            "tau2=4,lambda=0.3,centres_batch=1");
    put_str("student", "sgd",
            "momentum=0,nesterov=0,weight_decay=0,sched=cosine,head_init=uniform");
    put_str("student", "bank", "bank=4,bank_max=64,crop_lo=0.08,jitter=0.4,clean_view=0,batch=2");
    put_str("student", "empty", "");
    PUT_BYTES("grid", "finetune_default", "\0lr2=0.001|0.003|0.01,lambda=0.1|0.3|1");
    PUT_BYTES("grid", "refilled_steps", "\1adapt=head|last,stage1_steps=0|20,lr2=0.01|0.010");
    PUT_BYTES("grid", "svm_C", "\2C=0.01|0.1|1|10");
    PUT_BYTES("grid", "logreg_norm", "\3C=1|2,norm=un|l2n|cl2n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_make_corpus DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    out = argv[1];
    images();
    split_csvs();
    manifests();
    checkpoints();
    journals();
    idx();
    specs();
    return 0;
}
