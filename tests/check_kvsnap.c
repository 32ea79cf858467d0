/* check_kvsnap: snapshot files of the KV cache (src/kv/kv_snap.c, protocol/SNAPSHOT.md), the
 * model fingerprint they are checked against, and the hash both use.
 *
 * What is checked and why:
 *  - XXH64 against the specification's published values, streaming = one-shot for every split;
 *  - the fingerprint: a pinned value for a shared model file (the definition is a file format: it
 *    must never drift), equal for files that differ only in tensor data, different for any
 *    metadata, tensor-table or size change;
 *  - round trip: every KV type, several V blocks, bit for bit, positions past the snapshot left
 *    alone, restoring only a prefix;
 *  - refusals with the right kind and nothing restored: a bit flip in every byte (so in every
 *    region: header, fingerprint, token ids, each layer's K and V, checksum), every truncation,
 *    trailing bytes, another model of the same shapes, another KV type / shape / too small a
 *    context, a token outside the vocabulary, a future version (valid checksum), version 0;
 *  - files: atomic write, a directory / missing / special path refused, a too-large file refused
 *    before it is read, a cancelled save and a child killed (SIGKILL) in the middle of a save both
 *    leave the previous snapshot loadable;
 *  - with real models, for every KV type: continuing after a restore gives the same logits bit for
 *    bit as continuing the session that was saved, and restoring a common prefix then evaluating
 *    the rest equals evaluating everything (prefix reuse = full recompute). */
#include "tutil.h"

#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "kv/kv.h"
#include "model/model.h"
#include "util/hash.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t g_rng = 0x853c49e6748fea9bull;

static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- hash ---- */

START_TEST(test_xxh64)
{
    static const struct {
        const char *s;
        uint64_t h;
    } v[] = {
        {"", 0xEF46DB3751D8E999ull},
        {"a", 0xD24EC4F1A98C6E5Bull},
        {"abc", 0x44BC2CF5AD770999ull},
        {"message digest", 0x066ED728FCEEB3BEull},
        {"abcdefghijklmnopqrstuvwxyz", 0xCFE1F278FA89835Cull},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 0xAAA46907D3047814ull},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890", 0xE04A477F19EE145Dull},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_msg(util_xxh64(v[i].s, strlen(v[i].s), 0) == v[i].h, "xxh64(\"%s\")", v[i].s);
    /* bytes i % 251, lengths around the 32-byte stripes and the 8/4/1-byte tails */
    static const struct {
        size_t n;
        uint64_t h;
    } p[] = {{1, 0xe934a84adb052768ull},  {3, 0xe5c7bb4533bc65ddull},  {4, 0xffced8604453cc1eull},
             {7, 0x14cc643f630c72d2ull},  {8, 0x884a173614b81b8dull},  {15, 0xa948f5f0f6abac2dull},
             {31, 0xc346d2b59b4d8ee1ull}, {32, 0xcbf59c5116ff32b4ull}, {33, 0x0c535d1acafb8eadull},
             {63, 0xe26aa9e2a95f8e4full}, {64, 0xf7c67301db6713f0ull}, {65, 0xc31eb63b2ae4465bull},
             {1000, 0xf306f04aa88b54d3ull}};
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i % 251);
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        ck_assert_msg(util_xxh64(buf, p[i].n, 0) == p[i].h, "pattern %zu", p[i].n);
        for (size_t split = 1; split < 70; split += 3) { /* streaming, any piece size */
            struct util_xxh64 s;
            util_xxh64_init(&s, 0);
            for (size_t o = 0; o < p[i].n; o += split) util_xxh64_update(&s, buf + o, p[i].n - o < split ? p[i].n - o : split);
            ck_assert(util_xxh64_final(&s) == p[i].h);
        }
    }
    ck_assert(util_xxh64("abc", 3, 1) != util_xxh64("abc", 3, 0)); /* the seed matters */
}
END_TEST

/* ---- fingerprint ---- */

/* Fingerprint of the built file, with `extra` zero bytes appended (a reader ignores them). */
static uint64_t fp_of(struct gguf_builder *b, size_t extra)
{
    uint8_t *built = gb_build(b), *buf = calloc(1, b->len + extra);
    memcpy(buf, built, b->len);
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gguf_parse(buf, b->len + extra, &g, &ei) == 0, "%s", ei.msg);
    uint64_t f = gguf_fingerprint(&g);
    gguf_free(&g);
    free(buf);
    return f;
}

START_TEST(test_fingerprint)
{
    /* pinned: the fingerprint is part of every snapshot file, its definition must not drift
     * (value computed once from the definition in gguf.h; the file's sha256 is in SHA256SUMS) */
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gguf_open(tutil_shared("models/stories260K-F32.gguf"), &g, &ei) == 0, "%s", ei.msg);
    uint64_t f1 = gguf_fingerprint(&g);
    ck_assert_msg(f1 == 0x89e59c4af3dd7e3bull, "stories260K-F32 fingerprint %016llx", (unsigned long long)f1);
    /* by hand: XXH64 of the header bytes, then the size */
    uint8_t *tmp = malloc(g.header_len + 8);
    memcpy(tmp, g.buf, g.header_len);
    for (int i = 0; i < 8; i++) tmp[g.header_len + i] = (uint8_t)((uint64_t)g.len >> (8 * i));
    ck_assert(util_xxh64(tmp, g.header_len + 8, 0) == f1);
    free(tmp);
    gguf_free(&g);
    ck_assert(gguf_open(tutil_shared("models/stories260K-F16.gguf"), &g, &ei) == 0);
    ck_assert(gguf_fingerprint(&g) != f1); /* same shapes, other tensor types */
    gguf_free(&g);

    struct gguf_builder b = {0};
    gb_init(&b);
    gb_llama(&b, NULL);
    uint64_t base = fp_of(&b, 0);
    ck_assert(fp_of(&b, 0) == base); /* stable */
    /* tensor data is not part of it */
    struct gb_tensor *t = gb_tensor_find(&b, "blk.0.ffn_down.weight");
    ck_assert(t && t->data && t->nbytes >= 4);
    t->data[0] ^= 0x55;
    ck_assert(fp_of(&b, 0) == base);
    /* metadata, the tensor table and the size are */
    ck_assert(fp_of(&b, 32) != base);
    gb_set_str(&b, "general.name", "another model, same shapes");
    uint64_t named = fp_of(&b, 0);
    ck_assert(named != base);
    gb_set_u32(&b, "llama.context_length", 4096);
    uint64_t ctx = fp_of(&b, 0);
    ck_assert(ctx != named);
    t = gb_tensor_find(&b, "blk.0.ffn_down.weight");
    t->type = BLK_T_F16; /* same bytes, another type: other shapes */
    t->ne[0] /= 2;
    t->ne[1] *= 2;
    ck_assert(fp_of(&b, 0) != ctx);
    gb_free(&b);
}
END_TEST

/* ---- format ---- */

/* A cache of `type` whose first n positions hold random bytes (valid values for every type:
 * floats from random halves / small floats, Q8_0 blocks with finite scales). */
static void fill_kv(struct kv_cache *kv, int type, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim, uint32_t n)
{
    ck_assert_int_eq(kv_init(kv, type, n_layer, n_ctx, kv_dim), 0);
    float *row = malloc(kv_dim * sizeof(float));
    for (uint32_t l = 0; l < n_layer; l++)
        for (uint32_t t = 0; t < n; t++) {
            for (uint32_t d = 0; d < kv_dim; d++) row[d] = (float)((int64_t)(rnd() % 2001) - 1000) / 256.0f;
            if (type == KV_Q8_0) {
                for (size_t i = 0; i < kv->k_row; i++) {
                    kv_k_row(kv, l, t)[i] = (uint8_t)rnd();
                    kv_v_row(kv, l, t)[i] = (uint8_t)rnd();
                }
                for (uint32_t bl = 0; bl < kv_dim / 32; bl++) { /* finite scales */
                    kv_k_row(kv, l, t)[bl * 34 + 1] &= 0x3b;
                    kv_v_row(kv, l, t)[bl * 34 + 1] &= 0x3b;
                }
                continue;
            }
            if (type == KV_F32) memcpy(kv_k(kv, l, t), row, kv_dim * sizeof(float));
            else
                for (uint32_t d = 0; d < kv_dim; d++) ((uint16_t *)(void *)kv_k_row(kv, l, t))[d] = util_f32_to_fp16(row[d]);
            for (uint32_t d = 0; d < kv_dim; d++) row[d] = -row[d] * 0.5f;
            kv_v_put(kv, l, t, row);
        }
    free(row);
}

struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static int mem_write(void *ud, const void *p, size_t n)
{
    struct membuf *m = ud;
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        ck_assert(m->p);
    }
    memcpy(m->p + m->n, p, n);
    m->n += n;
    return 0;
}

static struct membuf encode(const struct kv_cache *kv, uint64_t fp, const int32_t *toks, uint32_t n)
{
    struct membuf m = {0};
    ck_assert_int_eq(kv_snap_encode(kv, fp, toks, n, mem_write, &m, NULL, NULL), 0);
    ck_assert_uint_eq(m.n, kv_snap_size(kv->type, kv->n_layer, kv->kv_dim, n));
    return m;
}

static struct kv_snap_expect expect_of(const struct kv_cache *kv, uint64_t fp)
{
    struct kv_snap_expect x = {fp, kv->type, kv->n_layer, kv->kv_dim, kv->n_ctx, 512};
    return x;
}

/* Positions 0..n-1 of two caches hold the same bits (K rows and every V element). */
static bool same_cells(const struct kv_cache *a, const struct kv_cache *b, uint32_t n)
{
    for (uint32_t l = 0; l < a->n_layer; l++) {
        if (memcmp(kv_k_row(a, l, 0), kv_k_row(b, l, 0), (size_t)n * a->k_row)) return false;
        if (a->type == KV_Q8_0) {
            if (memcmp(kv_v_row(a, l, 0), kv_v_row(b, l, 0), (size_t)n * a->k_row)) return false;
            continue;
        }
        size_t e = a->type == KV_F16 ? 2 : 4;
        const uint8_t *va = kv_v_layer(a, l), *vb = kv_v_layer(b, l);
        for (uint32_t t = 0; t < n; t++)
            for (uint32_t d = 0; d < a->kv_dim; d++) {
                size_t i = ((size_t)(t / KV_VBLK) * a->kv_dim * KV_VBLK + (size_t)d * KV_VBLK + t % KV_VBLK) * e;
                if (memcmp(va + i, vb + i, e)) return false;
            }
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

START_TEST(test_roundtrip)
{
    int type = _i;
    enum { NL = 3, CTX = 600, DIM = 64, N = 300 }; /* V of F32/F16 spans two 256-position blocks */
    struct kv_cache a, b;
    fill_kv(&a, type, NL, CTX, DIM, N);
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)(rnd() % 512);
    struct membuf m = encode(&a, 0x1234, toks, N);
    struct kv_snap s;
    struct err_info ei;
    err_clear(&ei);
    struct kv_snap_expect x = expect_of(&a, 0x1234);
    ck_assert_msg(kv_snap_parse(m.p, m.n, &x, &s, &ei) == 0, "%s", ei.msg);
    ck_assert_uint_eq(s.n_tokens, N);
    ck_assert_uint_eq(s.n_ctx, CTX);
    ck_assert_int_eq(s.kv_type, type);
    for (int i = 0; i < N; i++) ck_assert_int_eq(kv_snap_token(&s, (uint32_t)i), toks[i]);
    ck_assert_uint_eq(kv_snap_common_prefix(&s, toks, N), N);
    int32_t other[N];
    memcpy(other, toks, sizeof other);
    other[77] ^= 1;
    ck_assert_uint_eq(kv_snap_common_prefix(&s, other, N), 77);
    ck_assert_uint_eq(kv_snap_common_prefix(&s, toks, 12), 12);
    /* into a larger context: the positions are what matters */
    ck_assert_int_eq(kv_init(&b, type, NL, CTX + 100, DIM), 0);
    x.n_ctx = CTX + 100;
    ck_assert_int_eq(kv_snap_parse(m.p, m.n, &x, &s, &ei), 0);
    kv_snap_restore(&b, &s, N);
    ck_assert(same_cells(&a, &b, N));
    for (uint32_t l = 0; l < NL; l++) ck_assert(all_zero(kv_k_row(&b, l, N), (size_t)(CTX + 100 - N) * b.k_row));
    kv_free(&b);
    /* only a prefix */
    ck_assert_int_eq(kv_init(&b, type, NL, CTX, DIM), 0);
    kv_snap_restore(&b, &s, 77);
    ck_assert(same_cells(&a, &b, 77));
    ck_assert(!same_cells(&a, &b, 78));
    for (uint32_t l = 0; l < NL; l++) ck_assert(all_zero(kv_k_row(&b, l, 77), (size_t)(CTX - 77) * b.k_row));
    kv_free(&b);
    /* a negative token id would make a file no reader accepts: refused before writing */
    struct membuf bad = {0};
    toks[3] = -2;
    ck_assert_int_eq(kv_snap_encode(&a, 0x1234, toks, N, mem_write, &bad, NULL, NULL), ERR_INVALID);
    ck_assert_uint_eq(bad.n, 0);
    /* an empty snapshot is valid */
    struct membuf e = encode(&a, 0x1234, toks, 0);
    ck_assert_int_eq(kv_snap_parse(e.p, e.n, &x, &s, &ei), 0);
    ck_assert_uint_eq(s.n_tokens, 0);
    free(e.p);
    free(m.p);
    kv_free(&a);
}
END_TEST

/* A small snapshot: 2 layers, 5 tokens, F16 (K and V rows of 64 bytes). */
static struct membuf small_snap(struct kv_cache *kv, int type)
{
    fill_kv(kv, type, 2, 16, 32, 5);
    const int32_t toks[5] = {1, 400, 3, 511, 42};
    return encode(kv, 0xfeedface, toks, 5);
}

START_TEST(test_bitflips)
{
    struct kv_cache kv;
    struct membuf m = small_snap(&kv, KV_F16);
    struct kv_snap_expect x = expect_of(&kv, 0xfeedface);
    struct kv_snap s;
    struct err_info ei;
    /* regions of this file (SNAPSHOT.md): header 0..63 (fingerprint 16..23), tokens 64..83,
     * layer 0 K 84..403, V 404..723 (5 rows of 64 bytes each), layer 1 K 724.., V 1044..,
     * checksum the last 8 bytes */
    ck_assert_uint_eq(m.n, 64 + 20 + 2 * 2 * 5 * 64 + 8);
    size_t regions[] = {0, 8, 12, 16, 24, 28, 40, 48, 56, 64, 84, 404, 724, 1044, m.n - 8};
    size_t seen = 0;
    for (size_t i = 0; i < m.n; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            m.p[i] ^= (uint8_t)(1u << bit);
            err_clear(&ei);
            int rc = kv_snap_parse(m.p, m.n, &x, &s, &ei);
            ck_assert_msg(rc == ERR_SNAP_CORRUPT, "flip of bit %d at byte %zu: %s (%s)", bit, i, err_kind(rc), ei.msg);
            ck_assert(ei.msg[0] && ei.offset <= m.n);
            ck_assert_uint_eq(s.n_tokens, 0); /* nothing half-parsed is handed out */
            m.p[i] ^= (uint8_t)(1u << bit);
            for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) seen += i == regions[r] && bit == 0;
        }
    ck_assert_uint_eq(seen, sizeof regions / sizeof regions[0]);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_parse(m.p, m.n, &x, &s, &ei), 0); /* and it was valid all along */
    free(m.p);
    kv_free(&kv);
}
END_TEST

START_TEST(test_truncations)
{
    struct kv_cache kv;
    struct membuf m = small_snap(&kv, KV_Q8_0);
    struct kv_snap_expect x = expect_of(&kv, 0xfeedface);
    struct kv_snap s;
    struct err_info ei;
    for (size_t n = 0; n < m.n; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size: ASan sees any read past the end */
        memcpy(cut, m.p, n);
        err_clear(&ei);
        int rc = kv_snap_parse(n ? cut : NULL, n, &x, &s, &ei);
        ck_assert_msg(rc == ERR_SNAP_CORRUPT, "length %zu of %zu: %s", n, m.n, err_kind(rc));
        if (n >= 64) ck_assert_msg(strstr(ei.msg, "truncated"), "length %zu: %s", n, ei.msg);
        free(cut);
    }
    uint8_t *more = malloc(m.n + 1);
    memcpy(more, m.p, m.n);
    more[m.n] = 0;
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_parse(more, m.n + 1, &x, &s, &ei), ERR_SNAP_CORRUPT);
    ck_assert(strstr(ei.msg, "extra"));
    free(more);
    free(m.p);
    kv_free(&kv);
}
END_TEST

/* Rewrite a field of a valid snapshot and fix its checksum: a well-formed file that says
 * something else. */
static void patch32(struct membuf *m, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++) m->p[at + i] = (uint8_t)(v >> (8 * i));
    uint64_t h = util_xxh64(m->p, m->n - 8, 0);
    for (int i = 0; i < 8; i++) m->p[m->n - 8 + i] = (uint8_t)(h >> (8 * i));
}

START_TEST(test_refusals)
{
    struct kv_cache kv;
    struct membuf m = small_snap(&kv, KV_F16);
    const struct kv_snap_expect good = expect_of(&kv, 0xfeedface);
    struct kv_snap_expect x;
    struct kv_snap s;
    struct err_info ei;
#define REFUSED(code, what)                                                                            \
    do {                                                                                               \
        err_clear(&ei);                                                                                \
        int rc_ = kv_snap_parse(m.p, m.n, &x, &s, &ei);                                                \
        ck_assert_msg(rc_ == (code), "%s: %s (%s)", what, err_kind(rc_), ei.msg);                     \
        ck_assert_msg(ei.msg[0], "%s: no message", what);                                             \
    } while (0)
    x = good;
    x.fingerprint ^= 1;
    REFUSED(ERR_SNAP_MODEL, "another model");
    ck_assert(strstr(ei.msg, "another model"));
    x = good;
    x.kv_type = KV_F32;
    REFUSED(ERR_SNAP_KV, "another KV type");
    ck_assert(strstr(ei.msg, "f16") && strstr(ei.msg, "f32"));
    x = good;
    x.n_layer = 3;
    REFUSED(ERR_SNAP_KV, "another layer count");
    x = good;
    x.kv_dim = 64;
    REFUSED(ERR_SNAP_KV, "another KV width");
    x = good;
    x.n_ctx = 4;
    REFUSED(ERR_SNAP_KV, "a context smaller than the snapshot");
    x = good;
    x.n_ctx = 5; /* exactly its tokens: fits */
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_parse(m.p, m.n, &x, &s, &ei), 0);
    x = good;
    x.n_vocab = 500; /* token 511 */
    REFUSED(ERR_SNAP_CORRUPT, "a token outside the vocabulary");
    x = good;
    ck_assert_int_eq(kv_snap_parse(m.p, m.n, &x, &s, &ei), 0); /* nothing above changed the bytes */
    /* well-formed files that say something impossible or unknown (checksum fixed up) */
    struct membuf c = {malloc(m.n), m.n, m.n};
    static const struct {
        size_t at;
        uint32_t v;
        int code;
        const char *what;
    } fields[] = {
        {8, 2, ERR_SNAP_VERSION, "a future version"},  {8, 0, ERR_SNAP_CORRUPT, "version 0"},
        {12, 72, ERR_SNAP_CORRUPT, "header length"},   {24, 3, ERR_SNAP_CORRUPT, "unknown KV type"},
        {24, KV_F32, ERR_SNAP_CORRUPT, "KV type with the wrong row size"},
        {28, 4, ERR_SNAP_CORRUPT, "more tokens than its own context"},
        {32, 0, ERR_SNAP_CORRUPT, "zero layers"},       {36, 0, ERR_SNAP_CORRUPT, "zero width"},
        {40, 6, ERR_SNAP_CORRUPT, "a token count the size does not match"},
        {44, 63, ERR_SNAP_CORRUPT, "row size"},        {56, 1, ERR_SNAP_CORRUPT, "reserved bits"},
        {64 + 8, 0x80000000u, ERR_SNAP_CORRUPT, "a negative token id"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(c.p, m.p, m.n);
        patch32(&c, fields[i].at, fields[i].v);
        err_clear(&ei);
        int rc = kv_snap_parse(c.p, c.n, &good, &s, &ei);
        ck_assert_msg(rc == fields[i].code, "%s: %s (%s)", fields[i].what, err_kind(rc), ei.msg);
    }
    memcpy(c.p, m.p, m.n);
    patch32(&c, 8, 7);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_parse(c.p, c.n, NULL, &s, &ei), ERR_SNAP_VERSION);
    ck_assert_msg(strstr(ei.msg, "version 7"), "%s", ei.msg);
    memcpy(c.p, "LMPKVSNQ", 8);
    ck_assert_int_eq(kv_snap_parse(c.p, c.n, NULL, &s, &ei), ERR_SNAP_CORRUPT);
    free(c.p);
#undef REFUSED
    free(m.p);
    kv_free(&kv);
}
END_TEST

/* ---- files ---- */

static char g_dir[256];

static void dir_setup(void)
{
    ck_assert(tutil_mkdtemp(g_dir, sizeof g_dir, "kvsnap") == 0);
}

static void dir_teardown(void)
{
    tutil_rmtree(g_dir);
}

/* Number of entries of g_dir whose name starts with prefix. */
static int count_entries(const char *prefix)
{
    DIR *d = opendir(g_dir);
    ck_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

/* Load `path` against kv's expectation; return the parse code, the snapshot's first token in *first. */
static int load_file(const char *path, const struct kv_cache *kv, uint64_t fp, int32_t *first, struct err_info *ei)
{
    uint8_t *buf;
    size_t len;
    err_clear(ei);
    int rc = kv_snap_read_file(path, 0, &buf, &len, ei);
    if (rc) return rc;
    struct kv_snap s;
    struct kv_snap_expect x = expect_of(kv, fp);
    rc = kv_snap_parse(buf, len, &x, &s, ei);
    if (!rc && first) *first = s.n_tokens ? kv_snap_token(&s, 0) : -1;
    free(buf);
    return rc;
}

START_TEST(test_files)
{
    struct kv_cache kv;
    fill_kv(&kv, KV_F32, 2, 64, 32, 40);
    int32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = i + 10;
    char path[512];
    snprintf(path, sizeof path, "%s/a.snap", g_dir);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(kv_snap_write(path, &kv, 77, toks, 40, NULL, NULL, &ei) == 0, "%s", ei.msg);
    int32_t first = 0;
    ck_assert_int_eq(load_file(path, &kv, 77, &first, &ei), 0);
    ck_assert_int_eq(first, 10);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600); /* the conversation is private */
    ck_assert_int_eq(count_entries("a.snap.tmp"), 0);
    /* overwrite: the new content replaces the old */
    toks[0] = 99;
    ck_assert_int_eq(kv_snap_write(path, &kv, 77, toks, 40, NULL, NULL, &ei), 0);
    ck_assert_int_eq(load_file(path, &kv, 77, &first, &ei), 0);
    ck_assert_int_eq(first, 99);
    /* a directory is not a snapshot, and cannot be overwritten by one */
    ck_assert_int_eq(load_file(g_dir, &kv, 77, NULL, &ei), ERR_IO);
    ck_assert_msg(strstr(ei.msg, "directory"), "%s", ei.msg);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", g_dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_write(sub, &kv, 77, toks, 40, NULL, NULL, &ei), ERR_IO);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(count_entries("sub.tmp"), 0);
    /* missing file, missing directory, special file */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.snap", g_dir);
    ck_assert_int_eq(load_file(missing, &kv, 77, NULL, &ei), ERR_IO);
    ck_assert_msg(strstr(ei.msg, "none.snap") && strstr(ei.msg, "No such file"), "%s", ei.msg);
    snprintf(missing, sizeof missing, "%s/no/dir.snap", g_dir);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_write(missing, &kv, 77, toks, 40, NULL, NULL, &ei), ERR_IO);
    ck_assert_int_eq(load_file("/dev/null", &kv, 77, NULL, &ei), ERR_IO);
    ck_assert_msg(strstr(ei.msg, "special"), "%s", ei.msg);
    /* a file larger than any snapshot of the session is refused before it is read */
    uint8_t *buf;
    size_t len;
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_read_file(path, 1000, &buf, &len, &ei), ERR_SNAP_KV);
    ck_assert_ptr_null(buf);
    snprintf(missing, sizeof missing, "%s/big.bin", g_dir);
    FILE *f = fopen(missing, "wb");
    for (int i = 0; i < 5000; i++) fputc('x', f);
    fclose(f);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_read_file(missing, 1000, &buf, &len, &ei), ERR_SNAP_CORRUPT); /* not even a snapshot */
    /* more tokens than the cache has positions: refused, nothing written */
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_write(path, &kv, 77, toks, 65, NULL, NULL, &ei), ERR_INVALID);
    ck_assert_int_eq(load_file(path, &kv, 77, &first, &ei), 0);
    ck_assert_int_eq(first, 99);
    kv_free(&kv);
}
END_TEST

static int cancel_after_first(void *ud, uint64_t done, uint64_t total)
{
    (void)ud;
    ck_assert(done > 0 && done <= total);
    return 1;
}

START_TEST(test_cancelled_save)
{
    struct kv_cache kv;
    fill_kv(&kv, KV_Q8_0, 3, 64, 64, 50);
    int32_t toks[50] = {5};
    char path[512];
    snprintf(path, sizeof path, "%s/c.snap", g_dir);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_write(path, &kv, 1, toks, 50, NULL, NULL, &ei), 0);
    toks[0] = 6;
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_write(path, &kv, 1, toks, 50, cancel_after_first, NULL, &ei), ERR_CANCELLED);
    ck_assert(strstr(ei.msg, "cancelled"));
    int32_t first;
    ck_assert_int_eq(load_file(path, &kv, 1, &first, &ei), 0);
    ck_assert_int_eq(first, 5); /* the old one */
    ck_assert_int_eq(count_entries("c.snap.tmp"), 0);
    kv_free(&kv);
}
END_TEST

/* The saving child reports through a pipe once a part of the new snapshot is on disk, then
 * waits to be killed. */
static int g_pipe_w = -1;

static int stall_after_first(void *ud, uint64_t done, uint64_t total)
{
    (void)ud;
    (void)total;
    if (done > 0) {
        char c = 'x';
        if (write(g_pipe_w, &c, 1) != 1) _exit(3);
        for (;;) pause();
    }
    return 0;
}

START_TEST(test_killed_save)
{
    struct kv_cache kv;
    fill_kv(&kv, KV_F16, 4, 512, 256, 500); /* ~2 MB of cells */
    int32_t toks[500];
    for (int i = 0; i < 500; i++) toks[i] = i % 500;
    char path[512];
    snprintf(path, sizeof path, "%s/k.snap", g_dir);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_write(path, &kv, 9, toks, 500, NULL, NULL, &ei), 0);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        g_pipe_w = fds[1];
        toks[0] = 42;
        kv_snap_write(path, &kv, 9, toks, 500, stall_after_first, NULL, NULL);
        _exit(2); /* never reached: the progress callback stalls */
    }
    close(fds[1]);
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1); /* the child is in the middle of its save */
    close(fds[0]);
    ck_assert_int_eq(count_entries("k.snap.tmp"), 1); /* its partial file exists... */
    int32_t first;
    ck_assert_int_eq(load_file(path, &kv, 9, &first, &ei), 0); /* ...beside the intact old one */
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_int_eq(load_file(path, &kv, 9, &first, &ei), 0);
    ck_assert_int_eq(first, 0); /* the previous snapshot, whole */
    /* the killed writer's temporary file stays (nobody is left to remove it): a partial file
     * under another name, never mistaken for the snapshot */
    ck_assert_int_eq(count_entries("k.snap.tmp"), 1);
    kv_free(&kv);
}
END_TEST

/* ---- with real models ---- */

struct mcase {
    const char *stem;
    int type;
};

static const struct mcase g_models[] = {
    {"stories260K-F32", KV_F32},          {"stories260K-F32", KV_F16},
    {"synth512-llama-d256-Q8_0", KV_F32}, {"synth512-llama-d256-Q8_0", KV_F16},
    {"synth512-llama-d256-Q8_0", KV_Q8_0}, {"synth512-qwen2-d256-F32", KV_Q8_0},
    {"synth512-gemma3-d256-Q4_K", KV_F16}, {"synth512-gemma3-d256-Q4_K", KV_Q8_0},
};
#define N_MODELS ((int)(sizeof g_models / sizeof g_models[0]))

static int32_t mtok(uint32_t i)
{
    return (int32_t)((i * 53 + 7) % 500) + 3;
}

/* Prefill tokens [from, to) of the sequence as batches of up to MODEL_BATCH (no logits). */
static void prefill(const struct model *m, struct model_state *st, uint32_t from, uint32_t to)
{
    int32_t toks[MODEL_BATCH];
    for (uint32_t p = from; p < to;) {
        uint32_t k = to - p < MODEL_BATCH ? to - p : MODEL_BATCH;
        for (uint32_t i = 0; i < k; i++) toks[i] = mtok(p + i);
        ck_assert_int_eq(model_forward_batch(m, st, toks, k, p, MODEL_LOGITS_LAST, NULL, NULL), 0);
        p += k;
    }
}

/* Decode tokens [from, to) one by one; logits rows into out. */
static void decode(const struct model *m, struct model_state *st, uint32_t from, uint32_t to, float *out)
{
    for (uint32_t p = from; p < to; p++) {
        ck_assert_int_eq(model_forward(m, st, mtok(p), p, true), 0);
        memcpy(out + (size_t)(p - from) * m->hp.n_vocab, st->logits, m->hp.n_vocab * sizeof(float));
    }
}

START_TEST(test_model_restore)
{
    const struct mcase *c = &g_models[_i];
    enum { PROMPT = 40, MORE = 16, PREFIX = 30 };
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", c->stem);
    struct model m;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(model_open(&m, tutil_shared(rel), &ei) == 0, "%s", ei.msg);
    size_t sz = (size_t)MORE * m.hp.n_vocab;
    float *l1 = malloc(sz * sizeof(float)), *l2 = malloc(sz * sizeof(float));
    struct model_state a, b;
    ck_assert_int_eq(model_state_init_kv(&a, &m, 96, c->type, NULL, &ei), 0);
    prefill(&m, &a, 0, PROMPT);
    int32_t toks[PROMPT];
    for (uint32_t i = 0; i < PROMPT; i++) toks[i] = mtok(i);
    char path[512];
    snprintf(path, sizeof path, "%s/m.snap", g_dir);
    ck_assert_msg(kv_snap_write(path, &a.kv, m.fingerprint, toks, PROMPT, NULL, NULL, &ei) == 0, "%s", ei.msg);
    decode(&m, &a, PROMPT, PROMPT + MORE, l1);
    /* a fresh session (larger context) restores and continues: the same bits */
    ck_assert_int_eq(model_state_init_kv(&b, &m, 128, c->type, NULL, &ei), 0);
    struct kv_snap_expect x;
    model_snap_expect(&m, &b, &x);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(kv_snap_read_file(path, kv_snap_size(x.kv_type, x.n_layer, x.kv_dim, x.n_ctx), &buf, &len, &ei), 0);
    struct kv_snap s;
    ck_assert_msg(kv_snap_parse(buf, len, &x, &s, &ei) == 0, "%s", ei.msg);
    ck_assert_uint_eq(kv_snap_common_prefix(&s, toks, PROMPT), PROMPT);
    kv_snap_restore(&b.kv, &s, s.n_tokens);
    decode(&m, &b, PROMPT, PROMPT + MORE, l2);
    ck_assert_msg(memcmp(l1, l2, sz * sizeof(float)) == 0, "%s %s: continuation after restore differs", c->stem,
                  kv_type_name(c->type));
    model_state_free(&b);
    /* prefix reuse: restore 30 of the 40 cells, evaluate 30..39, continue == everything fresh
     * with the same batches (0..29, 30..39) */
    ck_assert_int_eq(model_state_init_kv(&b, &m, 96, c->type, NULL, &ei), 0);
    kv_snap_restore(&b.kv, &s, PREFIX);
    prefill(&m, &b, PREFIX, PROMPT);
    decode(&m, &b, PROMPT, PROMPT + MORE, l2);
    model_state_free(&b);
    ck_assert_int_eq(model_state_init_kv(&b, &m, 96, c->type, NULL, &ei), 0);
    prefill(&m, &b, 0, PREFIX);
    prefill(&m, &b, PREFIX, PROMPT);
    decode(&m, &b, PROMPT, PROMPT + MORE, l1);
    ck_assert_msg(memcmp(l1, l2, sz * sizeof(float)) == 0, "%s %s: prefix reuse differs from a recompute", c->stem,
                  kv_type_name(c->type));
    model_state_free(&b);
    /* the same snapshot is refused by a session of another type or another model */
    struct model_state o;
    int other = c->type == KV_F16 ? KV_F32 : KV_F16;
    ck_assert_int_eq(model_state_init_kv(&o, &m, 96, other, NULL, &ei), 0);
    model_snap_expect(&m, &o, &x);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_parse(buf, len, &x, &s, &ei), ERR_SNAP_KV);
    model_state_free(&o);
    free(buf);
    free(l1);
    free(l2);
    model_state_free(&a);
    model_free(&m);
}
END_TEST

/* Two shared files with the same shapes (stories260K F32 and F16: 5 layers, KV width 32): a
 * snapshot of one is refused by the other as another model. */
START_TEST(test_same_shapes_other_model)
{
    struct model a, b;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(model_open(&a, tutil_shared("models/stories260K-F32.gguf"), &ei), 0);
    ck_assert_int_eq(model_open(&b, tutil_shared("models/stories260K-F16.gguf"), &ei), 0);
    struct model_state sa, sb;
    ck_assert_int_eq(model_state_init_kv(&sa, &a, 64, KV_F16, NULL, &ei), 0);
    ck_assert_int_eq(model_state_init_kv(&sb, &b, 64, KV_F16, NULL, &ei), 0);
    ck_assert_uint_eq(sa.kv.n_layer, sb.kv.n_layer);
    ck_assert_uint_eq(sa.kv.kv_dim, sb.kv.kv_dim);
    prefill(&a, &sa, 0, 10);
    int32_t toks[10];
    for (uint32_t i = 0; i < 10; i++) toks[i] = mtok(i);
    struct membuf m = {0};
    ck_assert_int_eq(kv_snap_encode(&sa.kv, a.fingerprint, toks, 10, mem_write, &m, NULL, NULL), 0);
    struct kv_snap_expect x;
    struct kv_snap s;
    model_snap_expect(&b, &sb, &x);
    ck_assert_int_eq(kv_snap_parse(m.p, m.n, &x, &s, &ei), ERR_SNAP_MODEL);
    model_snap_expect(&a, &sa, &x);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_parse(m.p, m.n, &x, &s, &ei), 0);
    free(m.p);
    model_state_free(&sa);
    model_state_free(&sb);
    model_free(&a);
    model_free(&b);
}
END_TEST

/* ---- the streaming reader (kv_snap_peek + kv_snap_stream) ---- */

/* Element d of position t's V in a cache (any type), as bytes at *out (e bytes). */
static const uint8_t *v_elem(const struct kv_cache *kv, uint32_t l, uint32_t t, uint32_t d, size_t *e)
{
    if (kv->type == KV_Q8_0) {
        *e = kv->k_row;
        return kv_v_row(kv, l, t);
    }
    *e = kv->type == KV_F16 ? 2 : 4;
    return (const uint8_t *)kv_v_layer(kv, l) +
           ((size_t)(t / KV_VBLK) * kv->kv_dim * KV_VBLK + (size_t)d * KV_VBLK + t % KV_VBLK) * *e;
}

/* Positions [from, to) of b equal a's; every other position of b is zero. */
static bool cells_range(const struct kv_cache *a, const struct kv_cache *b, uint32_t from, uint32_t to)
{
    for (uint32_t l = 0; l < a->n_layer; l++)
        for (uint32_t t = 0; t < b->n_ctx; t++) {
            bool in = t >= from && t < to;
            const uint8_t *kb = kv_k_row(b, l, t);
            if (in ? memcmp(kv_k_row(a, l, t), kb, a->k_row) : !all_zero(kb, b->k_row)) return false;
            for (uint32_t d = 0; d < (a->type == KV_Q8_0 ? 1 : a->kv_dim); d++) {
                size_t e;
                const uint8_t *vb = v_elem(b, l, t, d, &e);
                if (in ? memcmp(v_elem(a, l, t, d, &e), vb, e) : !all_zero(vb, e)) return false;
            }
        }
    return true;
}

static int open_written(const char *name, const struct membuf *m)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(m->p, 1, m->n, f), m->n);
    ck_assert_int_eq(fclose(f), 0);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* The file's V rows are the cache's V values in position order (checked element by element
 * against the cache layout, independently of the encoder's transposes), and streaming any range
 * of positions gives exactly those cells and touches no other. */
START_TEST(test_stream)
{
    int type = _i;
    enum { NL = 3, CTX = 600, DIM = 64, N = 300 };
    struct kv_cache a, b;
    fill_kv(&a, type, NL, CTX, DIM, N);
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)(rnd() % 512);
    struct membuf m = encode(&a, 0x77, toks, N);
    const size_t row = a.k_row, data = KV_SNAP_HEADER + 4 * (size_t)N;
    for (uint32_t l = 0; l < NL; l++)
        for (uint32_t t = 0; t < N; t++) {
            const uint8_t *vr = m.p + data + ((size_t)l * 2 * N + N + t) * row;
            for (uint32_t d = 0; d < (type == KV_Q8_0 ? 1 : DIM); d++) {
                size_t e;
                const uint8_t *want = v_elem(&a, l, t, d, &e);
                ck_assert_msg(!memcmp(vr + (type == KV_Q8_0 ? 0 : d * e), want, e), "V of layer %u position %u dim %u", l,
                              t, d);
            }
        }
    int fd = open_written("s.snap", &m);
    struct kv_snap_expect x = expect_of(&a, 0x77);
    size_t hl = (size_t)kv_snap_head_len(m.n, CTX);
    ck_assert_uint_eq(hl, KV_SNAP_HEADER + 4 * CTX); /* the largest a session of CTX positions accepts */
    struct kv_snap s;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(kv_snap_peek(m.p, hl, m.n, &x, &s, &ei) == 0, "%s", ei.msg);
    ck_assert_uint_eq(s.n_tokens, N);
    ck_assert_ptr_null(s.data);
    ck_assert_int_eq(kv_snap_token(&s, 5), toks[5]);
    const uint32_t ranges[][2] = {{0, N}, {0, 77}, {77, N}, {255, 257}, {0, 0}, {N - 1, N}, {1, 256}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        ck_assert_int_eq(kv_init(&b, type, NL, CTX, DIM), 0);
        ck_assert_msg(kv_snap_stream(fd, m.p, hl, m.n, &s, &b, ranges[r][0], ranges[r][1], &ei) == 0, "%s", ei.msg);
        ck_assert_msg(cells_range(&a, &b, ranges[r][0], ranges[r][1]), "%s: range [%u, %u)", kv_type_name(type),
                      ranges[r][0], ranges[r][1]);
        kv_free(&b);
    }
    ck_assert_int_eq(kv_snap_stream(fd, m.p, hl, m.n, &s, NULL, 0, 0, &ei), 0);  /* verify only */
    ck_assert_int_eq(kv_snap_stream(fd, m.p, hl, m.n, NULL, NULL, 0, 0, &ei), 0); /* without a structure */
    ck_assert_int_eq(kv_snap_stream(fd, m.p, hl, m.n, &s, NULL, 0, N + 1, NULL), ERR_INVALID);
    close(fd);
    /* damage anywhere in the data: the checksum says so, only the asked-for cells were written */
    const size_t flips[] = {data + 3, data + row * N + 1, m.n - 9 - row, m.n - 1};
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        m.p[flips[k]] ^= 4;
        fd = open_written("d.snap", &m);
        ck_assert_int_eq(kv_init(&b, type, NL, CTX, DIM), 0);
        err_clear(&ei);
        ck_assert_int_eq(kv_snap_stream(fd, m.p, hl, m.n, &s, &b, 10, 20, &ei), ERR_SNAP_CORRUPT);
        ck_assert_ptr_nonnull(strstr(ei.msg, "checksum"));
        for (uint32_t l = 0; l < NL; l++) {
            ck_assert(all_zero(kv_k_row(&b, l, 0), 10 * b.k_row));
            ck_assert(all_zero(kv_k_row(&b, l, 20), (size_t)(CTX - 20) * b.k_row));
        }
        kv_free(&b);
        close(fd);
        m.p[flips[k]] ^= 4;
    }
    /* the file got shorter after the peek */
    fd = open_written("t.snap", &m);
    char path[512];
    snprintf(path, sizeof path, "%s/t.snap", g_dir);
    ck_assert_int_eq(truncate(path, (off_t)(m.n - 100)), 0);
    err_clear(&ei);
    ck_assert_int_eq(kv_snap_stream(fd, m.p, hl, m.n, &s, NULL, 0, 0, &ei), ERR_SNAP_CORRUPT);
    ck_assert_ptr_nonnull(strstr(ei.msg, "shorter"));
    close(fd);
    /* peek: what the first bytes show, in the parser's words; refusals needing the checksum are
     * the caller's to confirm (a damaged fingerprint looks like another model here) */
    struct kv_snap_expect other = x;
    other.fingerprint ^= 1;
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n, &other, &s, NULL), ERR_SNAP_MODEL);
    other = x;
    other.n_ctx = N - 1;
    ck_assert_int_eq(kv_snap_peek(m.p, (size_t)kv_snap_head_len(m.n, N - 1), m.n, &other, &s, NULL), ERR_SNAP_KV);
    other = x;
    other.kv_type = (type + 1) % KV_TYPE_COUNT_;
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n, &other, &s, NULL), ERR_SNAP_KV);
    other = x;
    other.n_vocab = 3;
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n, &other, &s, NULL), ERR_SNAP_CORRUPT);
    ck_assert_int_eq(kv_snap_peek(m.p, hl - 1, m.n, &x, &s, NULL), ERR_INVALID);
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n - 1, &x, &s, NULL), ERR_SNAP_CORRUPT); /* length field */
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n, NULL, &s, NULL), ERR_INVALID);
    m.p[8] = 2;
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n, &x, &s, NULL), ERR_SNAP_VERSION);
    m.p[0] = 'X';
    ck_assert_int_eq(kv_snap_peek(m.p, hl, m.n, &x, &s, NULL), ERR_SNAP_CORRUPT);
    ck_assert_uint_eq(s.n_tokens, 0);
    free(m.p);
    kv_free(&a);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("kvsnap");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_xxh64);
    tcase_add_test(tc, test_fingerprint);
    tcase_add_loop_test(tc, test_roundtrip, 0, KV_TYPE_COUNT_);
    tcase_add_test(tc, test_bitflips);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_files);
    tcase_add_loop_test(tc, test_stream, 0, KV_TYPE_COUNT_);
    tcase_add_test(tc, test_cancelled_save);
    tcase_add_test(tc, test_killed_save);
    tcase_add_loop_test(tc, test_model_restore, 0, N_MODELS);
    tcase_add_test(tc, test_same_shapes_other_model);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
