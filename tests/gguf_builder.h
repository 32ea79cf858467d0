/* gguf_builder: a header-only, in-memory GGUF writer for tests and fuzz seeds.
 *
 * Why: the parser and model tests need many GGUF files, most of them subtly broken, and the
 * repository must not hold binary fixtures. A test describes a file as a list of key/values and
 * tensors (gb_kv_*, gb_tensor_*), gb_build() serialises it, and then either parses the result
 * or corrupts it first.
 *
 * Two ways to corrupt a file:
 *  - before building: header overrides in the struct (magic, version, n_tensors / n_kv as
 *    written), gb_kv_raw() for any value type number with any value bytes, gb_tensor_raw() for
 *    any tensor type / shape / byte count, duplicate names (nothing here deduplicates);
 *  - after building: gb_build() records the byte position of every field it wrote (key length,
 *    key, value type, value, tensor name length, n_dims, each ne, type, data offset), and
 *    gb_patch_u8/u32/u64() overwrite any of them in place.
 *
 * Invariants of a built file: the buffer is malloc'ed with exactly `len` bytes (so ASan flags a
 * parser read one byte past the end); tensor data is laid out in insertion order, each tensor
 * at an offset that is a multiple of `alignment` (the builder's own padding rule, independent of
 * any general.alignment key, so a test can make the two disagree); `tensor_end` is the end of the
 * last tensor's bytes, i.e. the shortest prefix that still holds all the data (the padding after
 * the last tensor, written when pad_tail is set, is optional for a reader).
 *
 * The encoding is written here from the GGUF spec, not from src/gguf, so the tests do not share
 * the parser's mistakes. Allocation failure aborts: this is test code.
 *
 * gb_llama() adds a complete, small, valid llama-architecture model (hyperparameters, an SPM
 * vocabulary of byte tokens, F32 weights with small pseudo-random values) that tests edit with
 * gb_set_u32 / gb_kv_del / gb_tensor_del / gb_tensor_f32 before building. */
#ifndef LMPIPE_TESTS_GGUF_BUILDER_H
#define LMPIPE_TESTS_GGUF_BUILDER_H

#include "gguf/gguf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gb_kv {
    char *key; /* NUL-terminated copy (the key itself may hold NULs: key_len counts) */
    size_t key_len;
    uint32_t type;
    uint8_t *val; /* the encoded value exactly as it follows the type field */
    size_t val_len;
    /* byte positions in the built buffer (valid after gb_build) */
    size_t at_key_len, at_key, at_type, at_val;
};

struct gb_tensor {
    char *name; /* NUL-terminated copy */
    size_t name_len;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint8_t *data;
    size_t nbytes;
    /* positions in the built buffer (valid after gb_build) */
    size_t at_name_len, at_name, at_n_dims, at_ne, at_type, at_offset;
    uint64_t offset; /* data offset written, relative to the data section */
    size_t data_at;  /* absolute position of the data */
};

struct gguf_builder {
    /* header as written; gb_init sets the valid values */
    uint32_t magic, version;
    uint32_t alignment; /* padding rule for the data section and tensor offsets */
    bool pad_tail;      /* pad after the last tensor up to alignment (llama.cpp does) */
    bool set_n_tensors, set_n_kv;
    uint64_t n_tensors, n_kv; /* written instead of the real counts when set_* */

    struct gb_kv *kv;
    size_t nkv, capkv;
    struct gb_tensor *t;
    size_t nt, capt;
    uint64_t rng;

    /* output of gb_build */
    uint8_t *buf;
    size_t len;
    size_t header_end;  /* end of the last tensor info */
    size_t data_offset; /* start of the data section */
    size_t tensor_end;  /* end of the last tensor's bytes */
};

/* ---- memory ---- */

static inline void *gb_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "gguf_builder: out of memory\n");
        abort();
    }
    return q;
}

static inline void *gb_xdup(const void *p, size_t n)
{
    void *q = gb_xrealloc(NULL, n);
    if (n) memcpy(q, p, n);
    return q;
}

/* n bytes plus a NUL, so keys and names can be handed to the C-string lookups. */
static inline char *gb_xstrdup(const char *s, size_t n)
{
    char *q = gb_xrealloc(NULL, n + 1);
    if (n) memcpy(q, s, n);
    q[n] = 0;
    return q;
}

/* ---- value encoding (from the spec) ---- */

/* Bytes of one scalar of a GGUF value type; 0 for string, array and unknown numbers. */
static inline size_t gb_vsize(uint32_t t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    }
    return 0;
}

struct gb_bytes {
    uint8_t *p;
    size_t n, cap;
};

static inline void gb_put(struct gb_bytes *o, const void *src, size_t n)
{
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n) cap *= 2;
        o->p = gb_xrealloc(o->p, cap);
        o->cap = cap;
    }
    if (n) memcpy(o->p + o->n, src, n);
    o->n += n;
}
static inline void gb_put_u32(struct gb_bytes *o, uint32_t v) { gb_put(o, &v, 4); }
static inline void gb_put_u64(struct gb_bytes *o, uint64_t v) { gb_put(o, &v, 8); }
static inline void gb_put_str(struct gb_bytes *o, const char *s, size_t n)
{
    gb_put_u64(o, n);
    gb_put(o, s, n);
}
static inline void gb_put_zeros(struct gb_bytes *o, size_t n)
{
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        gb_put(o, z, k);
        n -= k;
    }
}

/* ---- builder ---- */

static inline void gb_init(struct gguf_builder *b)
{
    memset(b, 0, sizeof *b);
    b->magic = GGUF_MAGIC;
    b->version = 3;
    b->alignment = GGUF_DEFAULT_ALIGNMENT;
    b->pad_tail = true;
    b->rng = 0x9E3779B97F4A7C15ull;
}

static inline void gb_free(struct gguf_builder *b)
{
    for (size_t i = 0; i < b->nkv; i++) {
        free(b->kv[i].key);
        free(b->kv[i].val);
    }
    for (size_t i = 0; i < b->nt; i++) {
        free(b->t[i].name);
        free(b->t[i].data);
    }
    free(b->kv);
    free(b->t);
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* Free whatever b holds and start over; b must be initialised or zeroed ({0}). */
static inline void gb_reset(struct gguf_builder *b)
{
    gb_free(b);
    gb_init(b);
}

/* Deterministic xorshift64*: the same build gives the same bytes on every run. */
static inline uint64_t gb_rand(struct gguf_builder *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545F4914F6CDD1Dull;
}
/* Uniform in [-1, 1). */
static inline float gb_randf(struct gguf_builder *b)
{
    return (float)((double)(gb_rand(b) >> 11) / (double)(1ull << 52) - 1.0);
}

/* ---- key/values ---- */

/* Any key (length n, may hold NULs), any type number, any value bytes: the raw escape hatch. */
static inline struct gb_kv *gb_kv_rawn(struct gguf_builder *b, const char *key, size_t n,
                                       uint32_t type, const void *val, size_t val_len)
{
    if (b->nkv == b->capkv) {
        b->capkv = b->capkv ? b->capkv * 2 : 16;
        b->kv = gb_xrealloc(b->kv, b->capkv * sizeof *b->kv);
    }
    struct gb_kv *kv = &b->kv[b->nkv++];
    memset(kv, 0, sizeof *kv);
    kv->key = gb_xstrdup(key, n);
    kv->key_len = n;
    kv->type = type;
    kv->val = gb_xdup(val, val_len);
    kv->val_len = val_len;
    return kv;
}
static inline struct gb_kv *gb_kv_raw(struct gguf_builder *b, const char *key, uint32_t type,
                                      const void *val, size_t val_len)
{
    return gb_kv_rawn(b, key, strlen(key), type, val, val_len);
}

/* One scalar of a fixed-size type; `v` points at a value of that C type. */
static inline struct gb_kv *gb_kv_scalar(struct gguf_builder *b, const char *key, uint32_t type,
                                         const void *v)
{
    return gb_kv_raw(b, key, type, v, gb_vsize(type));
}

#define GB_KV_SCALAR_(fn, ctype, vt)                                                       \
    static inline struct gb_kv *fn(struct gguf_builder *b, const char *key, ctype v)       \
    {                                                                                      \
        return gb_kv_scalar(b, key, vt, &v);                                               \
    }
GB_KV_SCALAR_(gb_kv_u8, uint8_t, GGUF_VT_UINT8)
GB_KV_SCALAR_(gb_kv_i8, int8_t, GGUF_VT_INT8)
GB_KV_SCALAR_(gb_kv_u16, uint16_t, GGUF_VT_UINT16)
GB_KV_SCALAR_(gb_kv_i16, int16_t, GGUF_VT_INT16)
GB_KV_SCALAR_(gb_kv_u32, uint32_t, GGUF_VT_UINT32)
GB_KV_SCALAR_(gb_kv_i32, int32_t, GGUF_VT_INT32)
GB_KV_SCALAR_(gb_kv_f32, float, GGUF_VT_FLOAT32)
GB_KV_SCALAR_(gb_kv_u64, uint64_t, GGUF_VT_UINT64)
GB_KV_SCALAR_(gb_kv_i64, int64_t, GGUF_VT_INT64)
GB_KV_SCALAR_(gb_kv_f64, double, GGUF_VT_FLOAT64)
#undef GB_KV_SCALAR_

static inline struct gb_kv *gb_kv_bool(struct gguf_builder *b, const char *key, bool v)
{
    uint8_t x = v ? 1 : 0;
    return gb_kv_scalar(b, key, GGUF_VT_BOOL, &x);
}

static inline struct gb_kv *gb_kv_strn(struct gguf_builder *b, const char *key, const char *s,
                                       size_t n)
{
    struct gb_bytes o = {0};
    gb_put_str(&o, s, n);
    struct gb_kv *kv = gb_kv_raw(b, key, GGUF_VT_STRING, o.p, o.n);
    free(o.p);
    return kv;
}
static inline struct gb_kv *gb_kv_str(struct gguf_builder *b, const char *key, const char *s)
{
    return gb_kv_strn(b, key, s, strlen(s));
}

/* Array of n fixed-size elements (elem_type any scalar type, bool included); `elems` holds
 * n * size(elem_type) bytes in file order. */
static inline struct gb_kv *gb_kv_arr(struct gguf_builder *b, const char *key, uint32_t elem_type,
                                      uint64_t n, const void *elems)
{
    struct gb_bytes o = {0};
    gb_put_u32(&o, elem_type);
    gb_put_u64(&o, n);
    gb_put(&o, elems, (size_t)n * gb_vsize(elem_type));
    struct gb_kv *kv = gb_kv_raw(b, key, GGUF_VT_ARRAY, o.p, o.n);
    free(o.p);
    return kv;
}

/* Array of strings; lens may be NULL (then strlen). */
static inline struct gb_kv *gb_kv_arr_str(struct gguf_builder *b, const char *key, uint64_t n,
                                          const char *const *strs, const size_t *lens)
{
    struct gb_bytes o = {0};
    gb_put_u32(&o, GGUF_VT_STRING);
    gb_put_u64(&o, n);
    for (uint64_t i = 0; i < n; i++) gb_put_str(&o, strs[i], lens ? lens[i] : strlen(strs[i]));
    struct gb_kv *kv = gb_kv_raw(b, key, GGUF_VT_ARRAY, o.p, o.n);
    free(o.p);
    return kv;
}

static inline struct gb_kv *gb_kv_find(struct gguf_builder *b, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < b->nkv; i++)
        if (b->kv[i].key_len == n && memcmp(b->kv[i].key, key, n) == 0) return &b->kv[i];
    return NULL;
}

/* Remove every kv with this key; returns how many were removed. Order of the rest is kept. */
static inline int gb_kv_del(struct gguf_builder *b, const char *key)
{
    int removed = 0;
    size_t n = strlen(key), j = 0;
    for (size_t i = 0; i < b->nkv; i++) {
        if (b->kv[i].key_len == n && memcmp(b->kv[i].key, key, n) == 0) {
            free(b->kv[i].key);
            free(b->kv[i].val);
            removed++;
        } else {
            b->kv[j++] = b->kv[i];
        }
    }
    b->nkv = j;
    return removed;
}

/* Replace (or add) a hyperparameter. */
static inline struct gb_kv *gb_set_u32(struct gguf_builder *b, const char *key, uint32_t v)
{
    gb_kv_del(b, key);
    return gb_kv_u32(b, key, v);
}
static inline struct gb_kv *gb_set_f32(struct gguf_builder *b, const char *key, float v)
{
    gb_kv_del(b, key);
    return gb_kv_f32(b, key, v);
}
static inline struct gb_kv *gb_set_str(struct gguf_builder *b, const char *key, const char *s)
{
    gb_kv_del(b, key);
    return gb_kv_str(b, key, s);
}

/* ---- tensors ---- */

/* Any name, type number, dims and byte count. data may be NULL: then nbytes pseudo-random
 * bytes. ne[] beyond n_dims is ignored (and not written); n_dims may exceed GGUF_MAX_DIMS only
 * up to 4 stored dims - patch the n_dims field after building for larger values. */
static inline struct gb_tensor *gb_tensor_raw(struct gguf_builder *b, const char *name,
                                              uint32_t type, uint32_t n_dims, const uint64_t *ne,
                                              const void *data, size_t nbytes)
{
    if (b->nt == b->capt) {
        b->capt = b->capt ? b->capt * 2 : 16;
        b->t = gb_xrealloc(b->t, b->capt * sizeof *b->t);
    }
    struct gb_tensor *t = &b->t[b->nt++];
    memset(t, 0, sizeof *t);
    t->name_len = strlen(name);
    t->name = gb_xstrdup(name, t->name_len);
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->data = gb_xrealloc(NULL, nbytes);
    if (data) {
        memcpy(t->data, data, nbytes);
    } else {
        for (size_t i = 0; i < nbytes; i++) t->data[i] = (uint8_t)gb_rand(b);
    }
    return t;
}

static inline struct gb_tensor *gb_tensor_find(struct gguf_builder *b, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < b->nt; i++)
        if (b->t[i].name_len == n && memcmp(b->t[i].name, name, n) == 0) return &b->t[i];
    return NULL;
}

static inline int gb_tensor_del(struct gguf_builder *b, const char *name)
{
    int removed = 0;
    size_t n = strlen(name), j = 0;
    for (size_t i = 0; i < b->nt; i++) {
        if (b->t[i].name_len == n && memcmp(b->t[i].name, name, n) == 0) {
            free(b->t[i].name);
            free(b->t[i].data);
            removed++;
        } else {
            b->t[j++] = b->t[i];
        }
    }
    b->nt = j;
    return removed;
}

/* An F32 tensor of shape ne[0..n_dims) filled with center + scale * U(-1, 1); replaces any
 * tensor of the same name (so it doubles as "change this tensor's shape"). */
static inline struct gb_tensor *gb_tensor_f32(struct gguf_builder *b, const char *name,
                                              uint32_t n_dims, const uint64_t *ne, float center,
                                              float scale)
{
    size_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) nel *= (size_t)ne[d];
    float *v = gb_xrealloc(NULL, nel * sizeof *v);
    for (size_t i = 0; i < nel; i++) v[i] = center + scale * gb_randf(b);
    gb_tensor_del(b, name);
    struct gb_tensor *t = gb_tensor_raw(b, name, BLK_T_F32, n_dims, ne, v, nel * sizeof *v);
    free(v);
    return t;
}
static inline struct gb_tensor *gb_tensor_f32_1d(struct gguf_builder *b, const char *name,
                                                 uint64_t n0, float center, float scale)
{
    uint64_t ne[1] = {n0};
    return gb_tensor_f32(b, name, 1, ne, center, scale);
}
static inline struct gb_tensor *gb_tensor_f32_2d(struct gguf_builder *b, const char *name,
                                                 uint64_t n0, uint64_t n1, float center,
                                                 float scale)
{
    uint64_t ne[2] = {n0, n1};
    return gb_tensor_f32(b, name, 2, ne, center, scale);
}

/* ---- serialisation ---- */

static inline size_t gb_align_up(size_t x, size_t a) { return a ? (x + a - 1) / a * a : x; }

/* Serialise into b->buf (exactly b->len bytes) and record every field position. Can be called
 * again after edits; the previous buffer is freed. Returns b->buf. */
static inline uint8_t *gb_build(struct gguf_builder *b)
{
    struct gb_bytes o = {0};
    free(b->buf);
    b->buf = NULL;
    gb_put_u32(&o, b->magic);
    gb_put_u32(&o, b->version);
    gb_put_u64(&o, b->set_n_tensors ? b->n_tensors : b->nt);
    gb_put_u64(&o, b->set_n_kv ? b->n_kv : b->nkv);
    for (size_t i = 0; i < b->nkv; i++) {
        struct gb_kv *kv = &b->kv[i];
        kv->at_key_len = o.n;
        kv->at_key = o.n + 8;
        gb_put_str(&o, kv->key, kv->key_len);
        kv->at_type = o.n;
        gb_put_u32(&o, kv->type);
        kv->at_val = o.n;
        gb_put(&o, kv->val, kv->val_len);
    }
    /* data layout first: offsets go into the tensor infos */
    size_t a = b->alignment ? b->alignment : 1, off = 0;
    for (size_t i = 0; i < b->nt; i++) {
        b->t[i].offset = off;
        off = gb_align_up(off + b->t[i].nbytes, a);
    }
    for (size_t i = 0; i < b->nt; i++) {
        struct gb_tensor *t = &b->t[i];
        t->at_name_len = o.n;
        t->at_name = o.n + 8;
        gb_put_str(&o, t->name, t->name_len);
        t->at_n_dims = o.n;
        gb_put_u32(&o, t->n_dims);
        t->at_ne = o.n;
        for (uint32_t d = 0; d < t->n_dims && d < GGUF_MAX_DIMS; d++) gb_put_u64(&o, t->ne[d]);
        t->at_type = o.n;
        gb_put_u32(&o, t->type);
        t->at_offset = o.n;
        gb_put_u64(&o, t->offset);
    }
    b->header_end = o.n;
    b->data_offset = gb_align_up(o.n, a);
    b->tensor_end = b->data_offset;
    if (b->nt) gb_put_zeros(&o, b->data_offset - o.n);
    for (size_t i = 0; i < b->nt; i++) {
        struct gb_tensor *t = &b->t[i];
        t->data_at = b->data_offset + (size_t)t->offset;
        gb_put_zeros(&o, t->data_at - o.n);
        gb_put(&o, t->data, t->nbytes);
        b->tensor_end = o.n;
    }
    if (b->nt && b->pad_tail) gb_put_zeros(&o, gb_align_up(o.n, a) - o.n);
    /* exact-size copy: any read past len lands in ASan's redzone */
    b->len = o.n;
    b->buf = gb_xdup(o.p, o.n);
    free(o.p);
    return b->buf;
}

static inline void gb_patch_u8(struct gguf_builder *b, size_t at, uint8_t v)
{
    if (at + 1 > b->len) abort(); /* a test asked to patch outside the file: a test bug */
    b->buf[at] = v;
}
static inline void gb_patch_u32(struct gguf_builder *b, size_t at, uint32_t v)
{
    if (at + 4 > b->len) abort();
    memcpy(b->buf + at, &v, 4);
}
static inline void gb_patch_u64(struct gguf_builder *b, size_t at, uint64_t v)
{
    if (at + 8 > b->len) abort();
    memcpy(b->buf + at, &v, 8);
}

/* Build b and write the file to path; 0, or -1 when it cannot be written. */
static inline int gb_write_file(struct gguf_builder *b, const char *path)
{
    gb_build(b);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(b->buf, 1, b->len, f);
    return fclose(f) == 0 && n == b->len ? 0 : -1;
}

/* ---- one kv of every value type ----
 * Values at the edges of each type, under keys "t.<type>" (scalars) and "a.<type>" (arrays),
 * plus empty strings/arrays and a string with an embedded NUL. check_gguf reads them back
 * through the getters; the fuzz seeds use them to reach every value decoder. */
static const uint8_t gb_ev_u8[] = {0, 255, 7};
static const int8_t gb_ev_i8[] = {-128, 127};
static const uint16_t gb_ev_u16[] = {65535, 1};
static const int16_t gb_ev_i16[] = {-32768, 32767};
static const uint32_t gb_ev_u32[] = {UINT32_MAX, 0};
static const int32_t gb_ev_i32[] = {INT32_MIN, INT32_MAX};
static const float gb_ev_f32[] = {1.5f, -2.25f};
static const uint8_t gb_ev_bool[] = {1, 0, 1};
static const uint64_t gb_ev_u64[] = {UINT64_MAX, 5};
static const int64_t gb_ev_i64[] = {INT64_MIN, INT64_MAX};
static const double gb_ev_f64[] = {1e300, -0.5};
static const char *const gb_ev_str[] = {"x", "", "yz"};

static inline void gb_every_type(struct gguf_builder *b)
{
    gb_kv_str(b, "general.architecture", "test");
    gb_kv_u8(b, "t.u8", 200);
    gb_kv_i8(b, "t.i8", -100);
    gb_kv_u16(b, "t.u16", 60000);
    gb_kv_i16(b, "t.i16", -30000);
    gb_kv_u32(b, "t.u32", 4000000000u);
    gb_kv_i32(b, "t.i32", -2000000000);
    gb_kv_f32(b, "t.f32", 0.15625f);
    gb_kv_bool(b, "t.true", true);
    gb_kv_bool(b, "t.false", false);
    gb_kv_str(b, "t.str", "h\xc3\xa9llo");
    gb_kv_str(b, "t.empty", "");
    gb_kv_strn(b, "t.nul", "a\0b", 3);
    gb_kv_u64(b, "t.u64", 1ull << 40);
    gb_kv_u64(b, "t.u64max", UINT64_MAX);
    gb_kv_i64(b, "t.i64", INT64_MIN);
    gb_kv_f64(b, "t.f64", 0.1);
    gb_kv_arr(b, "a.u8", GGUF_VT_UINT8, 3, gb_ev_u8);
    gb_kv_arr(b, "a.i8", GGUF_VT_INT8, 2, gb_ev_i8);
    gb_kv_arr(b, "a.u16", GGUF_VT_UINT16, 2, gb_ev_u16);
    gb_kv_arr(b, "a.i16", GGUF_VT_INT16, 2, gb_ev_i16);
    gb_kv_arr(b, "a.u32", GGUF_VT_UINT32, 2, gb_ev_u32);
    gb_kv_arr(b, "a.i32", GGUF_VT_INT32, 2, gb_ev_i32);
    gb_kv_arr(b, "a.f32", GGUF_VT_FLOAT32, 2, gb_ev_f32);
    gb_kv_arr(b, "a.bool", GGUF_VT_BOOL, 3, gb_ev_bool);
    gb_kv_arr(b, "a.u64", GGUF_VT_UINT64, 2, gb_ev_u64);
    gb_kv_arr(b, "a.i64", GGUF_VT_INT64, 2, gb_ev_i64);
    gb_kv_arr(b, "a.f64", GGUF_VT_FLOAT64, 2, gb_ev_f64);
    gb_kv_arr_str(b, "a.str", 3, gb_ev_str, NULL);
    gb_kv_arr(b, "a.empty", GGUF_VT_UINT32, 0, NULL);
    gb_kv_arr_str(b, "a.emptystr", 0, NULL, NULL);
}

/* ---- a complete small llama model ---- */

struct gb_llama_opts {
    const char *arch; /* general.architecture and the hyperparameter key prefix */
    uint32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_ctx;
    uint32_t n_vocab; /* tokens in tokenizer.ggml.tokens, and rows of token_embd/output */
    float rms_eps, rope_base;
    bool tied; /* no output.weight (the loader reuses token_embd) */
};

static inline struct gb_llama_opts gb_llama_defaults(void)
{
    struct gb_llama_opts o = {"llama", 64, 128, 2, 4, 2, 64, 260, 1e-5f, 10000.0f, false};
    return o;
}

/* SPM-style vocabulary: <unk>, <s>, </s>, then byte tokens <0x00>.. (as many as fit, up to
 * 256), then pieces "▁the", "▁p5", ... Token types follow llama.cpp: 1 normal, 2 unknown,
 * 3 control, 6 byte. */
static inline void gb_vocab(struct gguf_builder *b, uint32_t n_vocab)
{
    char **tok = gb_xrealloc(NULL, n_vocab * sizeof *tok);
    float *score = gb_xrealloc(NULL, n_vocab * sizeof *score);
    int32_t *type = gb_xrealloc(NULL, n_vocab * sizeof *type);
    for (uint32_t i = 0; i < n_vocab; i++) {
        char s[32];
        uint32_t nbytes = n_vocab > 3 ? n_vocab - 3 : 0;
        if (nbytes > 256) nbytes = 256;
        if (i == 0) {
            snprintf(s, sizeof s, "<unk>");
            type[i] = 2;
        } else if (i == 1 || i == 2) {
            snprintf(s, sizeof s, i == 1 ? "<s>" : "</s>");
            type[i] = 3;
        } else if (i < 3 + nbytes) {
            snprintf(s, sizeof s, "<0x%02X>", i - 3);
            type[i] = 6;
        } else if (i == 3 + nbytes) {
            snprintf(s, sizeof s, "\xe2\x96\x81the");
            type[i] = 1;
        } else {
            snprintf(s, sizeof s, "\xe2\x96\x81p%u", i);
            type[i] = 1;
        }
        tok[i] = gb_xdup(s, strlen(s) + 1);
        score[i] = type[i] == 1 ? -(float)i : 0.0f;
    }
    gb_kv_str(b, "tokenizer.ggml.model", "llama");
    gb_kv_arr_str(b, "tokenizer.ggml.tokens", n_vocab, (const char *const *)tok, NULL);
    gb_kv_arr(b, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, n_vocab, score);
    gb_kv_arr(b, "tokenizer.ggml.token_type", GGUF_VT_INT32, n_vocab, type);
    gb_kv_u32(b, "tokenizer.ggml.unknown_token_id", 0);
    gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 1);
    gb_kv_u32(b, "tokenizer.ggml.eos_token_id", 2);
    for (uint32_t i = 0; i < n_vocab; i++) free(tok[i]);
    free(tok);
    free(score);
    free(type);
}

/* Hyperparameter key "<arch>.<suffix>" into a static buffer (one at a time). */
static inline const char *gb_hkey(const char *arch, const char *suffix)
{
    static char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    return k;
}

/* Add a full model to b (which may already hold other entries). Shapes in GGUF order
 * (ne[0] = input length): attn_q {D, H*hd}, attn_k/v {D, Hkv*hd}, attn_output {H*hd, D},
 * ffn_gate/up {D, F}, ffn_down {F, D}, token_embd/output {D, n_vocab}, norms {D}. */
static inline void gb_llama(struct gguf_builder *b, const struct gb_llama_opts *opts)
{
    struct gb_llama_opts o = opts ? *opts : gb_llama_defaults();
    uint32_t hd = o.n_head ? o.n_embd / o.n_head : 0;
    uint64_t qd = (uint64_t)o.n_head * hd, kvd = (uint64_t)o.n_head_kv * hd;
    gb_kv_str(b, "general.architecture", o.arch);
    gb_kv_str(b, "general.name", "gguf_builder tiny llama");
    gb_kv_u32(b, gb_hkey(o.arch, "context_length"), o.n_ctx);
    gb_kv_u32(b, gb_hkey(o.arch, "embedding_length"), o.n_embd);
    gb_kv_u32(b, gb_hkey(o.arch, "feed_forward_length"), o.n_ff);
    gb_kv_u32(b, gb_hkey(o.arch, "block_count"), o.n_layer);
    gb_kv_u32(b, gb_hkey(o.arch, "attention.head_count"), o.n_head);
    gb_kv_u32(b, gb_hkey(o.arch, "attention.head_count_kv"), o.n_head_kv);
    gb_kv_f32(b, gb_hkey(o.arch, "attention.layer_norm_rms_epsilon"), o.rms_eps);
    gb_kv_u32(b, gb_hkey(o.arch, "rope.dimension_count"), hd);
    gb_kv_f32(b, gb_hkey(o.arch, "rope.freq_base"), o.rope_base);
    gb_kv_u32(b, "general.file_type", 0); /* ALL_F32 */
    gb_vocab(b, o.n_vocab);

    const float w = 0.05f; /* small weights keep activations tame through the layers */
    gb_tensor_f32_2d(b, "token_embd.weight", o.n_embd, o.n_vocab, 0.0f, w);
    for (uint32_t l = 0; l < o.n_layer; l++) {
        char n[64];
#define GB_NAME_(s) (snprintf(n, sizeof n, "blk.%u." s ".weight", l), n)
        gb_tensor_f32_1d(b, GB_NAME_("attn_norm"), o.n_embd, 1.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("attn_q"), o.n_embd, qd, 0.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("attn_k"), o.n_embd, kvd, 0.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("attn_v"), o.n_embd, kvd, 0.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("attn_output"), qd, o.n_embd, 0.0f, w);
        gb_tensor_f32_1d(b, GB_NAME_("ffn_norm"), o.n_embd, 1.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("ffn_gate"), o.n_embd, o.n_ff, 0.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("ffn_up"), o.n_embd, o.n_ff, 0.0f, w);
        gb_tensor_f32_2d(b, GB_NAME_("ffn_down"), o.n_ff, o.n_embd, 0.0f, w);
#undef GB_NAME_
    }
    gb_tensor_f32_1d(b, "output_norm.weight", o.n_embd, 1.0f, w);
    if (!o.tied) gb_tensor_f32_2d(b, "output.weight", o.n_embd, o.n_vocab, 0.0f, w);
}

#endif
