/* check_quantize: the GGUF writer, the reference quantizers, llama.cpp's type recipes and the
 * whole-file quantizer (src/gguf/gguf_write.c, src/kern/quantize.c), plus the CLI's error exits.
 *
 * What is checked and why:
 *  - writer: every metadata value type (arrays of numbers, bools and strings included), tensors
 *    with borrowed and with callback data, a non-default alignment, then a parse of the result
 *    with our own parser; a failing write (callback error, unwritable directory) leaves the
 *    previous file byte-for-byte intact and no temporary file behind;
 *  - row quantizers: each type round-trips through kern_dequant_row within its expected error
 *    on Gaussian rows (so layouts agree with the kernels), degenerate rows (zeros, constants,
 *    one outlier, denormals, huge values) do not crash and dequantize to finite values, NaN is
 *    refused, and quant_rows gives the same bytes for 1 and 3 threads;
 *  - recipes: Q4_K_M / Q3_K_M / Q5_K_M pick the types llama.cpp's llama_tensor_get_type picks
 *    on the shared synthetic model, tied embeddings take output's type, rows that do not fill a
 *    block fall back (Q4_K -> Q5_0 -> F16, IQ4_XS -> IQ4_NL, Q8_0 -> F16);
 *  - files: the shared F32 llama model quantized to every type loads with model_open, every
 *    converted tensor is within its type's error of the F32 source, and where the shared set has
 *    llama-quantize's file of the same type, the fraction of byte-identical blocks is printed
 *    and must be 1 (the quantizers mirror ggml's float operations exactly);
 *  - CLI (when LMPIPE_BIN is set): missing input and unsupported source exit 1, a bad type name
 *    exits 2, and `dev synth` writes a model that model_open loads.
 * Scratch files go to a fresh directory under $TMPDIR (default /dev/shm, else /tmp), removed at
 * the end. */
#include "tutil.h"

#include "gguf/gguf.h"
#include "kern/kern.h"
#include "kern/quantize.h"
#include "ftool/ftool.h"
#include "model/model.h"
#include "util/err.h"
#include "util/util.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static char g_dir[512];

static void scratch_setup(void)
{
    /* tmpfs when there is one: every write ends in fsync, which is free there */
    const char *t = getenv("TMPDIR");
    if (!t || !*t) t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/lmpipe-checkq-XXXXXX", t);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void scratch_teardown(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(g_dir);
}

static const char *spath(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

static int count_files(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static uint64_t rng = 0x1234567887654321ull;
static uint64_t rnext(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float gauss(void)
{
    double u1 = ((double)(rnext() >> 11) + 1.0) * 0x1.0p-53, u2 = (double)(rnext() >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Expected relative RMSE bound (error RMS / signal RMS) on Gaussian data, with headroom. */
static double rel_bound(uint32_t t)
{
    switch (t) {
    case BLK_T_F32: return 1e-9;
    case BLK_T_F16: return 0.001;
    case BLK_T_BF16: return 0.004;
    case BLK_T_Q8_0: return 0.008;
    case BLK_T_Q6_K: return 0.025;
    case BLK_T_Q5_0: case BLK_T_Q5_1: case BLK_T_Q5_K: return 0.05;
    case BLK_T_Q4_0: return 0.10;
    case BLK_T_Q4_1: case BLK_T_Q4_K: case BLK_T_IQ4_NL: case BLK_T_IQ4_XS: return 0.09;
    case BLK_T_Q3_K: return 0.18;
    case BLK_T_Q2_K: return 0.35;
    default: return 0;
    }
}

static const uint32_t k_types[] = {BLK_T_F32,  BLK_T_F16,  BLK_T_BF16, BLK_T_Q8_0,
                                   BLK_T_Q4_0, BLK_T_Q4_1, BLK_T_Q5_0, BLK_T_Q5_1,
                                   BLK_T_Q2_K, BLK_T_Q3_K, BLK_T_Q4_K, BLK_T_Q5_K,
                                   BLK_T_Q6_K, BLK_T_IQ4_NL, BLK_T_IQ4_XS};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

/* ---- writer ---- */

static int cb_fill(void *ud, uint64_t idx, void *dst, uint64_t nbytes, struct err_info *ei)
{
    (void)ei;
    int *calls = ud;
    (*calls)++;
    for (uint64_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = (uint8_t)(idx * 31 + i);
    return 0;
}

static int cb_fail(void *ud, uint64_t idx, void *dst, uint64_t nbytes, struct err_info *ei)
{
    (void)ud;
    (void)idx;
    (void)dst;
    (void)nbytes;
    return err_set(ei, ERR_IO, ERR_NO_OFFSET, "simulated failure");
}

START_TEST(writer_roundtrip)
{
    struct gguf_writer *w;
    ck_assert_int_eq(gguf_writer_create(&w), 0);
    uint8_t u8 = 200;
    int8_t i8 = -5;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 1ull << 60;
    int64_t i64 = -(1ll << 50);
    double f64 = 3.25;
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.u8", GGUF_VT_UINT8, &u8), 0);
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.i8", GGUF_VT_INT8, &i8), 0);
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.u16", GGUF_VT_UINT16, &u16), 0);
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.i16", GGUF_VT_INT16, &i16), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "t.u32", 7), 0);
    ck_assert_int_eq(gguf_writer_set_i32(w, "t.i32", -7), 0);
    ck_assert_int_eq(gguf_writer_set_f32(w, "t.f32", 1.5f), 0);
    ck_assert_int_eq(gguf_writer_set_bool(w, "t.bool", true), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "t.str", "héllo", strlen("héllo")), 0);
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.u64", GGUF_VT_UINT64, &u64), 0);
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.i64", GGUF_VT_INT64, &i64), 0);
    ck_assert_int_eq(gguf_writer_set_scalar(w, "t.f64", GGUF_VT_FLOAT64, &f64), 0);
    float fa[3] = {1, 2, 3};
    uint8_t ba[2] = {1, 0};
    struct gguf_str sa[3] = {{"a", 1}, {"", 0}, {"ccc", 3}};
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.farr", GGUF_VT_FLOAT32, fa, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.barr", GGUF_VT_BOOL, ba, 2), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "t.sarr", sa, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.empty", GGUF_VT_INT32, NULL, 0), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "t.u32", 8), 0); /* replaced in place */
    ck_assert_int_eq(gguf_writer_set_alignment(w, 64), 0);
    float tdata[64];
    for (int i = 0; i < 64; i++) tdata[i] = (float)i;
    uint64_t ne1[1] = {64}, ne2[2] = {32, 3};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "a.weight", 1, ne1, BLK_T_F32, tdata), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "b.weight", 2, ne2, BLK_T_Q8_0, NULL), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "c", 1, ne1, BLK_T_F16, NULL), 0);
    ck_assert_uint_eq(gguf_writer_tensor_nbytes(w, 1), 3 * 34);
    int calls = 0;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gguf_writer_write(w, spath("w.gguf"), cb_fill, &calls, &ei), 0);
    ck_assert_int_eq(calls, 2);
    gguf_writer_free(w);

    struct gguf_ctx g;
    ck_assert_int_eq(gguf_open(spath("w.gguf"), &g, &ei), 0);
    ck_assert_uint_eq(g.version, 3);
    ck_assert_uint_eq(g.alignment, 64);
    ck_assert_uint_eq(g.n_kv, 17); /* 16 set + general.alignment */
    int64_t v;
    double d;
    ck_assert_int_eq(gguf_get_i64(&g, "t.u8", &v), 0);
    ck_assert_int_eq(v, 200);
    ck_assert_int_eq(gguf_get_i64(&g, "t.i8", &v), 0);
    ck_assert_int_eq(v, -5);
    ck_assert_int_eq(gguf_get_i64(&g, "t.u16", &v), 0);
    ck_assert_int_eq(v, 60000);
    ck_assert_int_eq(gguf_get_i64(&g, "t.i16", &v), 0);
    ck_assert_int_eq(v, -30000);
    ck_assert_int_eq(gguf_get_i64(&g, "t.u32", &v), 0);
    ck_assert_int_eq(v, 8);
    ck_assert_int_eq(gguf_get_i64(&g, "t.i32", &v), 0);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(gguf_get_i64(&g, "t.u64", &v), 0);
    ck_assert_int_eq(v, (int64_t)(1ull << 60));
    ck_assert_int_eq(gguf_get_i64(&g, "t.i64", &v), 0);
    ck_assert_int_eq(v, -(1ll << 50));
    ck_assert_int_eq(gguf_kv_f64(gguf_find_kv(&g, "t.f64"), &d), 0);
    ck_assert(d == 3.25);
    float f;
    ck_assert_int_eq(gguf_get_f32(&g, "t.f32", &f), 0);
    ck_assert(f == 1.5f);
    bool b;
    ck_assert_int_eq(gguf_get_bool(&g, "t.bool", &b), 0);
    ck_assert(b);
    struct gguf_str s;
    ck_assert_int_eq(gguf_get_str(&g, "t.str", &s), 0);
    ck_assert(gguf_str_eq(s, "héllo"));
    const struct gguf_kv *kv;
    uint32_t et;
    uint64_t n;
    ck_assert_int_eq(gguf_get_arr(&g, "t.farr", &et, &n, &kv), 0);
    ck_assert_uint_eq(et, GGUF_VT_FLOAT32);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(gguf_arr_f64(kv, 2, &d), 0);
    ck_assert(d == 3.0);
    ck_assert_int_eq(gguf_get_arr(&g, "t.barr", &et, &n, &kv), 0);
    ck_assert_uint_eq(et, GGUF_VT_BOOL);
    ck_assert_int_eq(gguf_arr_i64(kv, 0, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(gguf_get_arr(&g, "t.sarr", &et, &n, &kv), 0);
    struct gguf_str_iter it;
    gguf_str_iter_init(&it, kv);
    const char *want[3] = {"a", "", "ccc"};
    for (int i = 0; i < 3; i++) {
        ck_assert(gguf_str_iter_next(&it, &s));
        ck_assert(gguf_str_eq(s, want[i]));
    }
    ck_assert_int_eq(gguf_get_arr(&g, "t.empty", &et, &n, &kv), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(g.n_tensors, 3);
    ck_assert_mem_eq(g.tensors[0].data, tdata, sizeof tdata);
    ck_assert_uint_eq(g.tensors[1].ne[0], 32);
    ck_assert_uint_eq(g.tensors[1].ne[1], 3);
    ck_assert_uint_eq(g.tensors[1].type, BLK_T_Q8_0);
    for (int i = 0; i < 3 * 34; i++)
        ck_assert_uint_eq(((const uint8_t *)g.tensors[1].data)[i], (uint8_t)(31 + i));
    ck_assert_uint_eq(g.tensors[2].type, BLK_T_F16);

    /* a copy through copy_kv reproduces every value; the old file survives failed writes */
    ck_assert_int_eq(gguf_writer_create(&w), 0);
    for (uint64_t i = 0; i < g.n_kv; i++) ck_assert_int_eq(gguf_writer_copy_kv(w, &g.kv[i]), 0);
    ck_assert_uint_eq(gguf_writer_n_kv(w), g.n_kv);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "x", 1, ne1, BLK_T_F32, NULL), 0);
    size_t before_len;
    char *before = tutil_read(spath("w.gguf"), &before_len);
    ck_assert_ptr_nonnull(before);
    int nfiles = count_files();
    err_clear(&ei);
    ck_assert_int_eq(gguf_writer_write(w, spath("w.gguf"), cb_fail, NULL, &ei), ERR_IO);
    ck_assert_ptr_nonnull(strstr(ei.msg, "simulated"));
    ck_assert_int_eq(count_files(), nfiles); /* temp file removed */
    size_t after_len = 0; /* tutil_read leaves it unset when the file cannot be opened */
    char *after = tutil_read(spath("w.gguf"), &after_len);
    ck_assert_uint_eq(after_len, before_len);
    ck_assert_mem_eq(after, before, before_len);
    free(after);
    err_clear(&ei);
    ck_assert_int_ne(gguf_writer_write(w, spath("no/such/dir/x.gguf"), cb_fill, &calls, &ei), 0);
    ck_assert_ptr_nonnull(strstr(ei.msg, "temporary"));
    /* and a successful rewrite of the copy parses with the same metadata */
    err_clear(&ei);
    ck_assert_int_eq(gguf_writer_write(w, spath("w2.gguf"), cb_fill, &calls, &ei), 0);
    gguf_writer_free(w);
    struct gguf_ctx g2;
    ck_assert_int_eq(gguf_open(spath("w2.gguf"), &g2, &ei), 0);
    ck_assert_uint_eq(g2.n_kv, g.n_kv);
    ck_assert_uint_eq(g2.alignment, 64);
    for (uint64_t i = 0; i < g.n_kv; i++) {
        ck_assert(g2.kv[i].key.len == g.kv[i].key.len);
        ck_assert_mem_eq(g2.kv[i].key.ptr, g.kv[i].key.ptr, g.kv[i].key.len);
        ck_assert_uint_eq(g2.kv[i].type, g.kv[i].type);
    }
    ck_assert_int_eq(gguf_get_arr(&g2, "t.sarr", &et, &n, &kv), 0);
    ck_assert_uint_eq(n, 3);
    gguf_free(&g2);
    gguf_free(&g);
    free(before);
}
END_TEST

START_TEST(writer_rejects)
{
    struct gguf_writer *w;
    ck_assert_int_eq(gguf_writer_create(&w), 0);
    uint64_t ne[2] = {33, 2};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", 2, ne, BLK_T_Q8_0, NULL), ERR_SHAPE);
    uint64_t ok[1] = {32};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "", 1, ok, BLK_T_F32, NULL), ERR_INVALID);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[79] = 0;
    ck_assert_int_eq(gguf_writer_add_tensor(w, longname, 1, ok, BLK_T_F32, NULL), ERR_INVALID);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "t", 1, ok, 99, NULL), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_writer_set_alignment(w, 48), ERR_ALIGN);
    uint8_t two = 2;
    ck_assert_int_eq(gguf_writer_set_scalar(w, "b", GGUF_VT_BOOL, &two), ERR_RANGE);
    /* the first error is sticky */
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gguf_writer_write(w, spath("bad.gguf"), NULL, NULL, &ei), ERR_SHAPE);
    ck_assert_int_eq(access(spath("bad.gguf"), F_OK), -1);
    gguf_writer_free(w);
    /* duplicate tensor names; a tensor without data and no callback */
    ck_assert_int_eq(gguf_writer_create(&w), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "t", 1, ok, BLK_T_F32, NULL), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "t", 1, ok, BLK_T_F32, NULL), ERR_DUPLICATE);
    gguf_writer_free(w);
    ck_assert_int_eq(gguf_writer_create(&w), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "t", 1, ok, BLK_T_F32, NULL), 0);
    err_clear(&ei);
    ck_assert_int_eq(gguf_writer_write(w, spath("bad.gguf"), NULL, NULL, &ei), ERR_INVALID);
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}
END_TEST

/* ---- row quantizers ---- */

START_TEST(rows_roundtrip)
{
    const size_t n = 512, rows = 8;
    float *x = malloc(n * rows * sizeof *x), *back = malloc(n * sizeof *back);
    uint8_t *q = malloc(n * rows * 4), *q3 = malloc(n * rows * 4);
    for (size_t i = 0; i < n * rows; i++) x[i] = 0.02f * gauss();
    struct kern_pool *pool;
    ck_assert_int_eq(kern_pool_create(&pool, 3), 0);
    for (size_t k = 0; k < N_TYPES; k++) {
        uint32_t t = k_types[k];
        ck_assert(quant_type_supported(t));
        size_t rb = (size_t)blk_row_size(t, n);
        ck_assert_int_eq(quant_rows(NULL, t, x, q, rows, n), 0);
        ck_assert_int_eq(quant_rows(pool, t, x, q3, rows, n), 0);
        ck_assert_mem_eq(q, q3, rb * rows);
        double se = 0, ss = 0;
        for (size_t r = 0; r < rows; r++) {
            ck_assert_int_eq(kern_dequant_row(t, q + r * rb, back, n), 0);
            for (size_t i = 0; i < n; i++) {
                double e = (double)back[i] - x[r * n + i];
                se += e * e;
                ss += (double)x[r * n + i] * x[r * n + i];
            }
        }
        double rel = sqrt(se / ss);
        ck_assert_msg(rel <= rel_bound(t), "%s: relative RMSE %.4f > %.4f", blk_type_name(t), rel,
                      rel_bound(t));
    }
    kern_pool_destroy(pool);
    ck_assert_int_eq(quant_row(BLK_T_Q4_K, x, q, 100), ERR_SHAPE);
    ck_assert_int_eq(quant_row(BLK_T_IQ2_XXS, x, q, 256), ERR_UNSUPPORTED);
    ck_assert(!quant_type_supported(BLK_T_Q8_K));
    free(x);
    free(back);
    free(q);
    free(q3);
}
END_TEST

START_TEST(rows_degenerate)
{
    const size_t n = 256;
    float x[256], back[256];
    uint8_t q[1024];
    for (int c = 0; c < 7; c++) {
        for (size_t i = 0; i < n; i++) {
            switch (c) {
            case 0: x[i] = 0; break;
            case 1: x[i] = 0.5f; break;                         /* constant */
            case 2: x[i] = i == 77 ? 100.0f : 0.001f * gauss(); break; /* one outlier */
            case 3: x[i] = 1e-41f * (float)(i % 7); break;      /* denormals */
            case 4: x[i] = (i % 2 ? -1 : 1) * 6e4f; break;      /* near fp16 max */
            case 5: x[i] = 1e30f * gauss(); break;              /* beyond fp16 */
            default: x[i] = -(float)i; break;                   /* ramp, all <= 0 */
            }
        }
        for (size_t k = 0; k < N_TYPES; k++) {
            uint32_t t = k_types[k];
            ck_assert_int_eq(quant_row(t, x, q, n), 0);
            ck_assert_int_eq(kern_dequant_row(t, q, back, n), 0);
            if (c == 0)
                for (size_t i = 0; i < n; i++) ck_assert_msg(back[i] == 0, "%s zeros", blk_type_name(t));
            if (c != 5 && c != 4 && t != BLK_T_F32)
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(isfinite(back[i]), "%s case %d: element %zu not finite",
                                  blk_type_name(t), c, i);
        }
    }
    x[10] = NAN;
    ck_assert_int_eq(quant_row(BLK_T_Q4_0, x, q, n), ERR_RANGE);
    x[10] = INFINITY;
    ck_assert_int_eq(quant_row(BLK_T_Q6_K, x, q, n), ERR_RANGE);
    ck_assert_int_eq(quant_row(BLK_T_F16, x, q, n), 0); /* float targets carry infinities */
}
END_TEST

/* ---- recipes ---- */

static struct ftool_tensor_desc D(const char *name, uint64_t ne0, uint64_t ne1)
{
    struct ftool_tensor_desc d = {name, ne1 ? 2u : 1u, {ne0, ne1 ? ne1 : 1, 1, 1}, BLK_T_F32};
    return d;
}

static uint32_t plan_type(const struct ftool_plan *p, const struct ftool_tensor_desc *d, size_t n,
                          const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(d[i].name, name)) return p->type[i];
    ck_abort_msg("no tensor %s", name);
    return 0;
}

START_TEST(recipe_mixes)
{
    /* the shared synth512-llama-d256 layout, in file order */
    struct ftool_tensor_desc d[32];
    size_t n = 0;
    static char names[2][9][40];
    static const char *const sfx[9] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight",
                                       "attn_v.weight", "attn_output.weight", "ffn_norm.weight",
                                       "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
    static const uint64_t shp[9][2] = {{256, 0}, {256, 256}, {256, 128}, {256, 128}, {256, 256},
                                       {256, 0}, {256, 768}, {256, 768}, {768, 256}};
    d[n++] = D("token_embd.weight", 256, 512);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 9; k++) {
            snprintf(names[l][k], sizeof names[l][k], "blk.%d.%s", l, sfx[k]);
            d[n++] = D(names[l][k], shp[k][0], shp[k][1]);
        }
    d[n++] = D("output_norm.weight", 256, 0);
    d[n++] = D("output.weight", 256, 512);
    struct ftool_plan p;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("q4_k_m"), false, d, n, 2, &ei), 0);
    ck_assert_uint_eq(plan_type(&p, d, n, "output.weight"), BLK_T_Q6_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "token_embd.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.attn_v.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.attn_v.weight"), BLK_T_Q6_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.ffn_down.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.ffn_down.weight"), BLK_T_Q6_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.attn_q.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.attn_norm.weight"), BLK_T_F32);
    ck_assert_uint_eq(p.n_fallback, 0);
    /* processing order: non-block tensors first, then by block, names sorted */
    ck_assert_str_eq(d[p.order[0]].name, "output.weight");
    ck_assert_str_eq(d[p.order[3]].name, "blk.0.attn_k.weight");
    ftool_plan_free(&p);
    /* --pure: the base type everywhere, output included */
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q4_K_M"), true, d, n, 2, &ei), 0);
    ck_assert_uint_eq(plan_type(&p, d, n, "output.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.ffn_down.weight"), BLK_T_Q4_K);
    ftool_plan_free(&p);
    /* plain names are pure */
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q4_0"), false, d, n, 2, &ei), 0);
    ck_assert_uint_eq(plan_type(&p, d, n, "output.weight"), BLK_T_Q4_0);
    ftool_plan_free(&p);
    /* Q3_K_M: attn_v Q5_K for the first two, attn_output Q4_K, ffn_down Q4_K (n/16 = 0) */
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q3_K_M"), false, d, n, 2, &ei), 0);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.attn_v.weight"), BLK_T_Q5_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.attn_v.weight"), BLK_T_Q5_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.attn_output.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.ffn_down.weight"), BLK_T_Q4_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.ffn_up.weight"), BLK_T_Q3_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "output.weight"), BLK_T_Q6_K);
    ftool_plan_free(&p);
    /* Q5_K_M */
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q5_K_M"), false, d, n, 2, &ei), 0);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.1.attn_v.weight"), BLK_T_Q6_K);
    ck_assert_uint_eq(plan_type(&p, d, n, "blk.0.attn_v.weight"), BLK_T_Q5_K);
    ftool_plan_free(&p);
    /* tied embeddings (no output.weight): token_embd takes output's Q6_K */
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q4_K_M"), false, d, n - 1, 2, &ei), 0);
    ck_assert_uint_eq(plan_type(&p, d, n - 1, "token_embd.weight"), BLK_T_Q6_K);
    ftool_plan_free(&p);
    ck_assert_ptr_null(ftool_target_find("Q4_K_X"));
    ck_assert_ptr_null(ftool_target_find(NULL));
}
END_TEST

START_TEST(recipe_fallback)
{
    struct ftool_tensor_desc d[4] = {D("blk.0.ffn_down.weight", 172, 64), D("blk.0.ffn_up.weight", 96, 64),
                                     D("blk.0.attn_q.weight", 48, 48), D("blk.0.attn_norm.weight", 172, 0)};
    struct ftool_plan p;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q4_K"), false, d, 4, 1, &ei), 0);
    ck_assert_uint_eq(p.type[0], BLK_T_F16);  /* Q4_K -> Q5_0 -> 172 % 32 -> F16 */
    ck_assert_uint_eq(p.type[1], BLK_T_Q5_0); /* 96 fits 32-blocks */
    ck_assert_uint_eq(p.want[1], BLK_T_Q4_K);
    ck_assert_uint_eq(p.type[3], BLK_T_F32);
    ck_assert_uint_eq(p.n_fallback, 3);
    ftool_plan_free(&p);
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("IQ4_XS"), false, d, 4, 1, &ei), 0);
    ck_assert_uint_eq(p.type[1], BLK_T_IQ4_NL);
    ftool_plan_free(&p);
    ck_assert_int_eq(ftool_plan_make(&p, ftool_target_find("Q8_0"), false, d, 4, 1, &ei), 0);
    ck_assert_uint_eq(p.type[0], BLK_T_F16);
    ck_assert_uint_eq(p.type[2], BLK_T_F16); /* 48 does not fill 32-blocks either */
    ftool_plan_free(&p);
}
END_TEST

/* ---- whole files against the shared model and llama.cpp's quantizations of it ---- */

struct file_case {
    const char *type, *ref; /* ref: shared file made by llama-quantize, NULL if none */
};

static const struct file_case k_cases[] = {
    {"F16", "synth512-llama-d256-F16.gguf"},   {"BF16", "synth512-llama-d256-BF16.gguf"},
    {"Q8_0", "synth512-llama-d256-Q8_0.gguf"}, {"Q4_0", "synth512-llama-d256-Q4_0.gguf"},
    {"Q4_1", "synth512-llama-d256-Q4_1.gguf"}, {"Q5_0", "synth512-llama-d256-Q5_0.gguf"},
    {"Q5_1", "synth512-llama-d256-Q5_1.gguf"}, {"Q2_K", "synth512-llama-d256-Q2_K.gguf"},
    {"Q3_K", "synth512-llama-d256-Q3_K.gguf"}, {"Q4_K", "synth512-llama-d256-Q4_K.gguf"},
    {"Q5_K", "synth512-llama-d256-Q5_K.gguf"}, {"Q6_K", "synth512-llama-d256-Q6_K.gguf"},
    {"IQ4_NL", "synth512-llama-d256-IQ4_NL.gguf"}, {"IQ4_XS", "synth512-llama-d256-IQ4_XS.gguf"},
    {"Q4_K_M", "synth512-llama-d256-Q4_K_M.gguf"}, {"Q5_K_M", NULL}, {"Q3_K_M", NULL},
};

static void check_one_file(const struct file_case *fc, int n_threads)
{
    const char *src = tutil_shared("models/synth512-llama-d256-F32.gguf");
    if (access(src, R_OK) != 0) {
        fprintf(stderr, "check_quantize: %s missing, skipping file checks\n", src);
        return;
    }
    char outname[64];
    snprintf(outname, sizeof outname, "out-%s.gguf", fc->type);
    const char *out = spath(outname);
    struct ftool_quant_opts o = {ftool_target_find(fc->type), false, n_threads, NULL, NULL};
    ck_assert_ptr_nonnull(o.target);
    struct ftool_quant_report *rep = malloc(sizeof *rep);
    struct err_info ei;
    err_clear(&ei);
    int rc = ftool_quantize(src, out, &o, rep, &ei);
    ck_assert_msg(rc == 0, "%s: %s", fc->type, ei.msg);
    ck_assert_uint_eq(rep->n_fallback, 0);

    struct model m;
    ck_assert_msg(model_open(&m, out, &ei) == 0, "%s: model_open: %s", fc->type, ei.msg);
    struct gguf_ctx gs;
    ck_assert_int_eq(gguf_open(src, &gs, &ei), 0);
    uint32_t ft;
    ck_assert_int_eq(gguf_get_u32(m.g, "general.file_type", &ft), 0);
    ck_assert_uint_eq(ft, o.target->ftype);
    ck_assert_uint_eq(m.g->n_kv, gs.n_kv + 1); /* + general.quantization_version */
    struct gguf_ctx gr = {0};
    bool have_ref = false;
    if (fc->ref) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/%s", fc->ref);
        have_ref = gguf_open(tutil_shared(rel), &gr, &ei) == 0;
    }
    uint64_t blocks = 0, same = 0;
    float *a = malloc(768 * sizeof *a), *b = malloc(768 * sizeof *b);
    for (uint64_t i = 0; i < m.g->n_tensors; i++) {
        const struct gguf_tensor *t = &m.g->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const struct gguf_tensor *s = gguf_find_tensor(&gs, name);
        ck_assert_ptr_nonnull(s);
        ck_assert(memcmp(s->ne, t->ne, sizeof s->ne) == 0);
        if (t->n_dims == 1) {
            ck_assert_uint_eq(t->type, BLK_T_F32);
            ck_assert_mem_eq(t->data, s->data, s->nbytes);
            continue;
        }
        if (!o.target->mix) ck_assert_uint_eq(t->type, o.target->base);
        size_t n = (size_t)t->ne[0], rows = (size_t)t->ne[1];
        uint64_t rb = blk_row_size(t->type, n);
        double se = 0, ss = 0;
        for (size_t r = 0; r < rows; r++) {
            ck_assert_int_eq(kern_dequant_row(t->type, (const uint8_t *)t->data + r * rb, a, n), 0);
            memcpy(b, (const uint8_t *)s->data + r * n * 4, n * 4);
            for (size_t k = 0; k < n; k++) {
                se += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
                ss += (double)b[k] * b[k];
            }
        }
        double rel = sqrt(se / ss);
        ck_assert_msg(rel <= rel_bound(t->type), "%s %s: relative RMSE %.4f > %.4f", fc->type, name,
                      rel, rel_bound(t->type));
        if (have_ref) {
            const struct gguf_tensor *r = gguf_find_tensor(&gr, name);
            ck_assert_ptr_nonnull(r);
            ck_assert_msg(r->type == t->type, "%s %s: llama.cpp chose %s, we %s", fc->type, name,
                          blk_type_name(r->type), blk_type_name(t->type));
            const struct blk_type_info *ti = blk_type_info(t->type);
            uint64_t nb = t->nbytes / ti->size;
            for (uint64_t k = 0; k < nb; k++) {
                blocks++;
                same += memcmp((const uint8_t *)t->data + k * ti->size,
                               (const uint8_t *)r->data + k * ti->size, ti->size) == 0;
            }
        }
    }
    if (have_ref) {
        fprintf(stderr, "check_quantize: %-6s identical to llama-quantize: %llu/%llu blocks (%.4f)\n",
                fc->type, (unsigned long long)same, (unsigned long long)blocks,
                (double)same / (double)blocks);
        ck_assert_msg(same == blocks, "%s: %llu of %llu blocks differ from llama.cpp's", fc->type,
                      (unsigned long long)(blocks - same), (unsigned long long)blocks);
        gguf_free(&gr);
    }
    free(a);
    free(b);
    gguf_free(&gs);
    model_free(&m);
    free(rep);
}

START_TEST(file_types)
{
    check_one_file(&k_cases[_i], 2);
}
END_TEST

START_TEST(file_errors)
{
    struct ftool_quant_opts o = {ftool_target_find("Q4_0"), false, 1, NULL, NULL};
    struct ftool_quant_report *rep = malloc(sizeof *rep);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(ftool_quantize(spath("missing.gguf"), spath("o.gguf"), &o, rep, &ei), ERR_NOT_FOUND);
    const char *q8 = tutil_shared("models/synth512-llama-d256-Q8_0.gguf");
    if (access(q8, R_OK) == 0) {
        err_clear(&ei);
        ck_assert_int_eq(ftool_quantize(q8, spath("o.gguf"), &o, rep, &ei), ERR_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(ei.msg, "only F32, F16 and BF16"));
        ck_assert_int_eq(access(spath("o.gguf"), F_OK), -1);
    }
    free(rep);
}
END_TEST

/* ---- the CLI, when the binary is known ---- */

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(cli_exits)
{
    const char *bin = getenv("LMPIPE_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "check_quantize: LMPIPE_BIN not set, skipping CLI checks\n");
        return;
    }
    char cmd[2048];
    const char *f32 = tutil_shared("models/synth512-llama-d256-F32.gguf");
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' Q4_K 2>/dev/null", bin, spath("nope.gguf"), spath("o.gguf"));
    ck_assert_int_eq(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' Q9_X 2>/dev/null", bin, f32, spath("o.gguf"));
    ck_assert_int_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' 2>/dev/null", bin, f32);
    ck_assert_int_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' Q4_K --bogus 2>/dev/null", bin, f32, spath("o.gguf"));
    ck_assert_int_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' Q4_0 2>/dev/null", bin,
             tutil_shared("models/synth512-llama-d256-Q8_0.gguf"), spath("o.gguf"));
    ck_assert_int_eq(run(cmd), 1);
    /* synth: a small qwen2 (biases, tied) and a phi3 (fused), both must load */
    snprintf(cmd, sizeof cmd,
             "'%s' dev synth '%s' --arch qwen2 --dim 64 --layers 2 --heads 4 --kv-heads 2 "
             "--ffn 96 --vocab 300 --tied --type Q8_0 -t 2 2>/dev/null", bin, spath("s1.gguf"));
    ck_assert_int_eq(run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' dev synth '%s' --arch phi3 --dim 64 --layers 1 --heads 4 --ffn 64 --vocab 260 "
             "--type Q4_K_M 2>/dev/null", bin, spath("s2.gguf"));
    ck_assert_int_eq(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' dev synth '%s' --arch gpt9 --dim 64 2>/dev/null", bin, spath("s3.gguf"));
    ck_assert_int_eq(run(cmd), 2);
    /* the same model from one thread is byte-identical */
    snprintf(cmd, sizeof cmd,
             "'%s' dev synth '%s' --arch qwen2 --dim 64 --layers 2 --heads 4 --kv-heads 2 "
             "--ffn 96 --vocab 300 --tied --type Q8_0 -t 1 2>/dev/null", bin, spath("s1b.gguf"));
    ck_assert_int_eq(run(cmd), 0);
    size_t la = 0, lb = 1;
    char *fa = tutil_read(spath("s1.gguf"), &la), *fb = tutil_read(spath("s1b.gguf"), &lb);
    ck_assert(fa && fb && la == lb && memcmp(fa, fb, la) == 0);
    free(fa);
    free(fb);
    /* bench runs on it and prints one JSON line per thread count */
    snprintf(cmd, sizeof cmd, "'%s' bench -m '%s' -p 3 -n 2 -r 2 -t 1,2 --json > '%s' 2>/dev/null",
             bin, spath("s1.gguf"), spath("bench.json"));
    ck_assert_int_eq(run(cmd), 0);
    char *js = tutil_read(spath("bench.json"), NULL);
    ck_assert_ptr_nonnull(js);
    ck_assert_ptr_nonnull(strstr(js, "\"threads\": 1,"));
    ck_assert_ptr_nonnull(strstr(js, "\"threads\": 2,"));
    ck_assert_ptr_nonnull(strstr(js, "\"tg_tps\": "));
    ck_assert_ptr_nonnull(strstr(js, "\"Q8_0\": "));
    free(js);
    snprintf(cmd, sizeof cmd, "'%s' bench -m '%s' -p 0 -n 0 2>/dev/null", bin, spath("s1.gguf"));
    ck_assert_int_eq(run(cmd), 2);
    struct model m;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(model_open(&m, spath("s1.gguf"), &ei) == 0, "%s", ei.msg);
    ck_assert_uint_eq(m.hp.n_vocab, 300);
    ck_assert_ptr_eq(m.output, m.tok_embd);
    ck_assert_uint_eq(m.layers[0].wq->type, BLK_T_Q8_0);
    model_free(&m);
    err_clear(&ei);
    ck_assert_msg(model_open(&m, spath("s2.gguf"), &ei) == 0, "%s", ei.msg);
    /* 64 columns do not fill 256-blocks: attn_qkv (attn_v-like, Q6_K in Q4_K_M) -> Q8_0, the
     * rest Q4_K -> Q5_0 */
    ck_assert_uint_eq(m.layers[0].wqkv->type, BLK_T_Q8_0);
    ck_assert_uint_eq(m.layers[0].w_up->type, BLK_T_Q5_0);
    model_free(&m);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, writer_roundtrip);
    tcase_add_test(tc, writer_rejects);
    tcase_add_test(tc, rows_roundtrip);
    tcase_add_test(tc, rows_degenerate);
    tcase_add_test(tc, recipe_mixes);
    tcase_add_test(tc, recipe_fallback);
    tcase_add_loop_test(tc, file_types, 0, (int)(sizeof k_cases / sizeof k_cases[0]));
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, cli_exits);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
