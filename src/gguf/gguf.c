/* gguf: parser and mmap loader. See gguf.h for the contract.
 *
 * The parser walks the header with a bounded cursor (struct rd): every read first checks that
 * the bytes are there, and reports the offset where they were missing. Counts read from the file
 * are checked against what the remaining bytes could hold before anything is allocated, so a
 * header claiming 2^62 tensors fails at once instead of asking malloc for exabytes. */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"

#include "../util/hash.h"
#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint32_t g_vsize[GGUF_VT_COUNT_] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const g_vname[GGUF_VT_COUNT_] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64"};

uint32_t gguf_vtype_size(uint32_t vtype) { return vtype < GGUF_VT_COUNT_ ? g_vsize[vtype] : 0; }
const char *gguf_vtype_name(uint32_t vtype)
{
    return vtype < GGUF_VT_COUNT_ ? g_vname[vtype] : "?";
}

bool gguf_str_eq(struct gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* ---- bounded reader ---- */

struct rd {
    const uint8_t *buf;
    uint64_t len;
    uint64_t pos;
    struct err_info *ei;
};

static int rd_need(struct rd *r, uint64_t n, const char *what)
{
    if (r->len - r->pos < n)
        return err_set(r->ei, ERR_TRUNCATED, r->pos,
                       "file ends while reading %s: need %llu bytes, %llu left", what,
                       (unsigned long long)n, (unsigned long long)(r->len - r->pos));
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    int rc = rd_need(r, 4, what);
    if (rc) return rc;
    memcpy(v, r->buf + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
    int rc = rd_need(r, 8, what);
    if (rc) return rc;
    memcpy(v, r->buf + r->pos, 8);
    r->pos += 8;
    return 0;
}

static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
    uint64_t at = r->pos, n;
    int rc = rd_u64(r, &n, what);
    if (rc) return rc;
    if (n > r->len - r->pos)
        return err_set(r->ei, ERR_TRUNCATED, at,
                       "%s: string length %llu exceeds the %llu bytes left in the file", what,
                       (unsigned long long)n, (unsigned long long)(r->len - r->pos));
    s->ptr = (const char *)r->buf + r->pos;
    s->len = n;
    r->pos += n;
    return 0;
}

/* Skip over one value of type t (scalar or string), validating it. */
static int rd_skip_value(struct rd *r, uint32_t t, const char *what)
{
    if (t == GGUF_VT_STRING) {
        struct gguf_str s;
        return rd_str(r, &s, what);
    }
    uint32_t sz = gguf_vtype_size(t);
    int rc = rd_need(r, sz, what);
    if (rc) return rc;
    if (t == GGUF_VT_BOOL && r->buf[r->pos] > 1)
        return err_set(r->ei, ERR_RANGE, r->pos, "%s: bool value %u is neither 0 nor 1", what,
                       r->buf[r->pos]);
    r->pos += sz;
    return 0;
}

static int parse_kv(struct rd *r, struct gguf_kv *kv, uint64_t idx)
{
    uint64_t at = r->pos;
    int rc = rd_str(r, &kv->key, "metadata key");
    if (rc) return rc;
    if (kv->key.len == 0 || kv->key.len > GGUF_MAX_KEY_LEN)
        return err_set(r->ei, ERR_LIMIT, at, "metadata key %llu has length %llu (allowed 1..%u)",
                       (unsigned long long)idx, (unsigned long long)kv->key.len,
                       GGUF_MAX_KEY_LEN);
    uint64_t tat = r->pos;
    if ((rc = rd_u32(r, &kv->type, "metadata value type"))) return rc;
    if (kv->type >= GGUF_VT_COUNT_)
        return err_set(r->ei, ERR_BAD_TYPE, tat, "metadata '%.*s': unknown value type %u",
                       (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.ptr, kv->type);
    if (kv->type != GGUF_VT_ARRAY) {
        kv->data = r->buf + r->pos;
        kv->offset = r->pos;
        return rd_skip_value(r, kv->type, "metadata value");
    }
    if ((rc = rd_u32(r, &kv->arr_type, "array element type"))) return rc;
    if (kv->arr_type >= GGUF_VT_COUNT_ || kv->arr_type == GGUF_VT_ARRAY)
        return err_set(r->ei, ERR_BAD_TYPE, tat + 4,
                       "metadata '%.*s': array element type %u not allowed",
                       (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.ptr, kv->arr_type);
    uint64_t nat = r->pos;
    if ((rc = rd_u64(r, &kv->arr_n, "array length"))) return rc;
    uint64_t min_elem = kv->arr_type == GGUF_VT_STRING ? 8 : gguf_vtype_size(kv->arr_type);
    if (kv->arr_n > (r->len - r->pos) / min_elem)
        return err_set(r->ei, ERR_LIMIT, nat,
                       "metadata '%.*s': array of %llu elements cannot fit in the %llu bytes left",
                       (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.ptr,
                       (unsigned long long)kv->arr_n, (unsigned long long)(r->len - r->pos));
    kv->data = r->buf + r->pos;
    kv->offset = r->pos;
    if (kv->arr_type == GGUF_VT_STRING || kv->arr_type == GGUF_VT_BOOL) {
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if ((rc = rd_skip_value(r, kv->arr_type, "array element"))) return rc;
    } else {
        r->pos += kv->arr_n * min_elem; /* fits: checked above */
    }
    return 0;
}

static int parse_tensor_info(struct rd *r, struct gguf_tensor *t, uint64_t idx)
{
    uint64_t at = r->pos;
    int rc = rd_str(r, &t->name, "tensor name");
    if (rc) return rc;
    if (t->name.len == 0 || t->name.len > 255)
        return err_set(r->ei, ERR_LIMIT, at, "tensor %llu: name length %llu (allowed 1..255)",
                       (unsigned long long)idx, (unsigned long long)t->name.len);
    int nl = (int)t->name.len;
    uint64_t dat = r->pos;
    if ((rc = rd_u32(r, &t->n_dims, "tensor dimension count"))) return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return err_set(r->ei, ERR_SHAPE, dat, "tensor '%.*s': %u dimensions (allowed 1..%d)", nl,
                       t->name.ptr, t->n_dims, GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        uint64_t eat = r->pos;
        if ((rc = rd_u64(r, &t->ne[d], "tensor dimension"))) return rc;
        if (t->ne[d] == 0 || t->ne[d] > (1ull << 40))
            return err_set(r->ei, ERR_SHAPE, eat, "tensor '%.*s': dimension %u is %llu", nl,
                           t->name.ptr, d, (unsigned long long)t->ne[d]);
        if (util_mul_overflow(nel, t->ne[d], &nel))
            return err_set(r->ei, ERR_OVERFLOW, eat, "tensor '%.*s': element count overflows",
                           nl, t->name.ptr);
    }
    uint64_t tat = r->pos;
    if ((rc = rd_u32(r, &t->type, "tensor type"))) return rc;
    const struct blk_type_info *ti = blk_type_info(t->type);
    if (!ti)
        return err_set(r->ei, ERR_BAD_TYPE, tat, "tensor '%.*s': unknown tensor type %u", nl,
                       t->name.ptr, t->type);
    if (t->ne[0] % ti->blck)
        return err_set(r->ei, ERR_SHAPE, tat,
                       "tensor '%.*s': row length %llu is not a multiple of the %s block size %u",
                       nl, t->name.ptr, (unsigned long long)t->ne[0], ti->name, ti->blck);
    uint64_t rows = nel / t->ne[0];
    if (util_mul_overflow(t->ne[0] / ti->blck * ti->size, rows, &t->nbytes))
        return err_set(r->ei, ERR_OVERFLOW, tat, "tensor '%.*s': byte size overflows", nl,
                       t->name.ptr);
    return rd_u64(r, &t->offset, "tensor data offset");
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
    const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
    uint64_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = memcmp(x->name.ptr, y->name.ptr, n);
    if (c) return c;
    return (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

static int cmp_kv_key(const void *a, const void *b)
{
    const struct gguf_kv *x = *(const struct gguf_kv *const *)a;
    const struct gguf_kv *y = *(const struct gguf_kv *const *)b;
    uint64_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    if (c) return c;
    return (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static int cmp_tensor_off(const void *a, const void *b)
{
    const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
    const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Duplicate key / tensor name and overlap checks in O(n log n) over a scratch pointer array. */
static int check_unique(struct gguf_ctx *c, struct err_info *ei)
{
    uint64_t n = c->n_kv > c->n_tensors ? c->n_kv : c->n_tensors;
    if (n < 2) return 0;
    const void **p = malloc(n * sizeof *p);
    if (!p) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory checking names");
    int rc = 0;
    for (uint64_t i = 0; i < c->n_kv; i++) p[i] = &c->kv[i];
    qsort(p, c->n_kv, sizeof *p, cmp_kv_key);
    for (uint64_t i = 1; i < c->n_kv && !rc; i++)
        if (cmp_kv_key(&p[i - 1], &p[i]) == 0) {
            const struct gguf_kv *k = p[i];
            rc = err_set(ei, ERR_DUPLICATE, (uint64_t)((const uint8_t *)k->key.ptr - c->buf),
                         "duplicate metadata key '%.*s'", (int)(k->key.len > 64 ? 64 : k->key.len),
                         k->key.ptr);
        }
    for (uint64_t i = 0; i < c->n_tensors && !rc; i++) p[i] = &c->tensors[i];
    if (!rc) qsort(p, c->n_tensors, sizeof *p, cmp_tensor_name);
    for (uint64_t i = 1; i < c->n_tensors && !rc; i++)
        if (cmp_tensor_name(&p[i - 1], &p[i]) == 0) {
            const struct gguf_tensor *t = p[i];
            rc = err_set(ei, ERR_DUPLICATE, (uint64_t)((const uint8_t *)t->name.ptr - c->buf),
                         "duplicate tensor name '%.*s'", (int)t->name.len, t->name.ptr);
        }
    if (!rc) qsort(p, c->n_tensors, sizeof *p, cmp_tensor_off);
    for (uint64_t i = 1; i < c->n_tensors && !rc; i++) {
        const struct gguf_tensor *a = p[i - 1], *b = p[i];
        if (a->offset + a->nbytes > b->offset) /* both in range: no overflow */
            rc = err_set(ei, ERR_RANGE, c->data_offset + b->offset,
                         "tensor '%.*s' overlaps tensor '%.*s'", (int)b->name.len, b->name.ptr,
                         (int)a->name.len, a->name.ptr);
    }
    free(p);
    return rc;
}

/* Magic, version and the two counts, each count bounded by what the file's size can hold. */
static int parse_header(struct rd *r, struct gguf_ctx *out)
{
    const uint8_t *buf = r->buf;
    size_t len = r->len;
    struct err_info *ei = r->ei;
    uint32_t magic;
    if (len < 4) return err_set(ei, ERR_BAD_MAGIC, 0, "not a GGUF file: only %zu bytes", len);
    memcpy(&magic, buf, 4);
    if (magic != GGUF_MAGIC)
        return err_set(ei, ERR_BAD_MAGIC, 0,
                       "not a GGUF file: magic is %02x %02x %02x %02x, expected 'GGUF'", buf[0],
                       buf[1], buf[2], buf[3]);
    r->pos = 4;
    int rc;
    if ((rc = rd_u32(r, &out->version, "version"))) return rc;
    if (out->version != 2 && out->version != 3)
        return err_set(ei, ERR_VERSION, 4, "GGUF version %u is not supported (only 2 and 3)%s",
                       out->version, out->version == 1 ? ": v1 files predate 64-bit counts" : "");
    uint64_t nt_at = r->pos;
    if ((rc = rd_u64(r, &out->n_tensors, "tensor count"))) return rc;
    uint64_t nkv_at = r->pos;
    if ((rc = rd_u64(r, &out->n_kv, "metadata count"))) return rc;
    /* smallest kv: 8 (key len) + 1 (key) + 4 (type) + 1 (u8); smallest tensor info: 8+1+4+8+4+8 */
    if (out->n_kv > GGUF_MAX_KV || out->n_kv > (len - r->pos) / 14)
        return err_set(ei, ERR_LIMIT, nkv_at, "metadata count %llu is impossible for a %zu-byte file",
                       (unsigned long long)out->n_kv, len);
    if (out->n_tensors > GGUF_MAX_TENSORS || out->n_tensors > (len - r->pos) / 33)
        return err_set(ei, ERR_LIMIT, nt_at, "tensor count %llu is impossible for a %zu-byte file",
                       (unsigned long long)out->n_tensors, len);
    return 0;
}

/* general.alignment, if present: a uint32 power of two up to 65536. */
static int parse_alignment(struct gguf_ctx *out, struct err_info *ei)
{
    out->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *al = gguf_find_kv(out, "general.alignment");
    if (!al) return 0;
    int64_t a;
    if (al->type != GGUF_VT_UINT32 || gguf_kv_i64(al, &a) || a == 0 || (a & (a - 1)) || a > 65536)
        return err_set(ei, ERR_ALIGN, al->offset,
                       "general.alignment must be a uint32 power of two up to 65536");
    out->alignment = (uint32_t)a;
    return 0;
}

/* The data section starts at the first aligned offset after the infos (pos); every tensor's
 * data must be aligned and lie inside the file. */
static int place_tensors(struct gguf_ctx *out, uint64_t pos, struct err_info *ei)
{
    uint64_t data = pos;
    if (data % out->alignment) data += out->alignment - data % out->alignment;
    out->data_offset = data;
    if (out->n_tensors && data > out->len)
        return err_set(ei, ERR_TRUNCATED, pos, "file ends before the tensor data section");
    for (uint64_t i = 0; i < out->n_tensors; i++) {
        struct gguf_tensor *t = &out->tensors[i];
        if (t->offset % out->alignment)
            return err_set(ei, ERR_ALIGN, data,
                           "tensor '%.*s': data offset %llu is not a multiple of the alignment %u",
                           (int)t->name.len, t->name.ptr, (unsigned long long)t->offset,
                           out->alignment);
        uint64_t end;
        if (util_add_overflow(data, t->offset, &end) || util_add_overflow(end, t->nbytes, &end) ||
            end > out->len)
            return err_set(ei, ERR_RANGE, data,
                           "tensor '%.*s': data [%llu, +%llu) lies past the end of the %zu-byte file",
                           (int)t->name.len, t->name.ptr,
                           (unsigned long long)(data + (t->offset < out->len ? t->offset : 0)),
                           (unsigned long long)t->nbytes, out->len);
        t->data = out->buf + data + t->offset;
    }
    return 0;
}

int gguf_parse(const uint8_t *buf, size_t len, struct gguf_ctx *out, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    struct rd r = {buf, len, 0, ei};
    if (!buf && len) return err_set(ei, ERR_INVALID, 0, "NULL buffer");
    int rc = parse_header(&r, out);
    if (rc) goto fail;
    out->buf = buf;
    out->len = len;
    if ((out->n_kv && !(out->kv = calloc(out->n_kv, sizeof *out->kv))) ||
        (out->n_tensors && !(out->tensors = calloc(out->n_tensors, sizeof *out->tensors)))) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < out->n_kv; i++)
        if ((rc = parse_kv(&r, &out->kv[i], i))) goto fail;
    if ((rc = parse_alignment(out, ei))) goto fail;
    for (uint64_t i = 0; i < out->n_tensors; i++)
        if ((rc = parse_tensor_info(&r, &out->tensors[i], i))) goto fail;
    out->header_len = r.pos; /* magic .. last tensor info: what gguf_fingerprint hashes */
    if ((rc = place_tensors(out, r.pos, ei)) || (rc = check_unique(out, ei))) goto fail;
    return 0;
fail:
    gguf_free(out);
    return rc;
}

int gguf_open(const char *path, struct gguf_ctx *out, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears;
     * it changes nothing for the regular files we accept (checked right below). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return err_set(ei, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, ERR_NO_OFFSET,
                       "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(ei, ERR_IO, ERR_NO_OFFSET, "'%s' is not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot mmap '%s': %s", path, strerror(e));
        }
    }
    close(fd);
    int rc = gguf_parse(map, len, out, ei);
    if (rc) {
        if (map) munmap(map, len);
        return rc;
    }
    out->map = map;
    out->map_len = len;
    return 0;
}

void gguf_free(struct gguf_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->kv);
    free(ctx->tensors);
    if (ctx->map) munmap(ctx->map, ctx->map_len);
    memset(ctx, 0, sizeof *ctx);
}

const struct gguf_kv *gguf_find_kv(const struct gguf_ctx *ctx, const char *key)
{
    for (uint64_t i = 0; i < ctx->n_kv; i++)
        if (ctx->kv[i].key.ptr && gguf_str_eq(ctx->kv[i].key, key)) return &ctx->kv[i];
    return NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_ctx *ctx, const char *name)
{
    for (uint64_t i = 0; i < ctx->n_tensors; i++)
        if (gguf_str_eq(ctx->tensors[i].name, name)) return &ctx->tensors[i];
    return NULL;
}

static int scalar_i64(uint32_t t, const uint8_t *p, int64_t *out)
{
    switch (t) {
    case GGUF_VT_UINT8: *out = p[0]; return 0;
    case GGUF_VT_INT8: *out = (int8_t)p[0]; return 0;
    case GGUF_VT_BOOL: *out = p[0]; return 0;
    case GGUF_VT_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_VT_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_VT_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_VT_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_VT_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 0; }
    case GGUF_VT_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > INT64_MAX) return ERR_RANGE;
        *out = (int64_t)v;
        return 0;
    }
    }
    return ERR_BAD_TYPE;
}

static int scalar_f64(uint32_t t, const uint8_t *p, double *out)
{
    if (t == GGUF_VT_FLOAT32) { float v; memcpy(&v, p, 4); *out = v; return 0; }
    if (t == GGUF_VT_FLOAT64) { double v; memcpy(&v, p, 8); *out = v; return 0; }
    int64_t i;
    int rc = scalar_i64(t, p, &i);
    if (rc) return rc;
    *out = (double)i;
    return 0;
}

int gguf_kv_i64(const struct gguf_kv *kv, int64_t *out) { return scalar_i64(kv->type, kv->data, out); }
int gguf_kv_f64(const struct gguf_kv *kv, double *out) { return scalar_f64(kv->type, kv->data, out); }

int gguf_arr_i64(const struct gguf_kv *kv, uint64_t i, int64_t *out)
{
    if (kv->type != GGUF_VT_ARRAY || i >= kv->arr_n) return ERR_RANGE;
    uint32_t sz = gguf_vtype_size(kv->arr_type);
    if (!sz) return ERR_BAD_TYPE;
    return scalar_i64(kv->arr_type, kv->data + i * sz, out);
}

int gguf_arr_f64(const struct gguf_kv *kv, uint64_t i, double *out)
{
    if (kv->type != GGUF_VT_ARRAY || i >= kv->arr_n) return ERR_RANGE;
    uint32_t sz = gguf_vtype_size(kv->arr_type);
    if (!sz) return ERR_BAD_TYPE;
    return scalar_f64(kv->arr_type, kv->data + i * sz, out);
}

int gguf_get_i64(const struct gguf_ctx *ctx, const char *key, int64_t *out)
{
    const struct gguf_kv *kv = gguf_find_kv(ctx, key);
    if (!kv) return ERR_NOT_FOUND;
    if (kv->type == GGUF_VT_FLOAT32 || kv->type == GGUF_VT_FLOAT64) return ERR_BAD_TYPE;
    return gguf_kv_i64(kv, out);
}

int gguf_get_u32(const struct gguf_ctx *ctx, const char *key, uint32_t *out)
{
    int64_t v;
    int rc = gguf_get_i64(ctx, key, &v);
    if (rc) return rc;
    if (v < 0 || v > UINT32_MAX) return ERR_RANGE;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const struct gguf_ctx *ctx, const char *key, float *out)
{
    const struct gguf_kv *kv = gguf_find_kv(ctx, key);
    if (!kv) return ERR_NOT_FOUND;
    if (kv->type != GGUF_VT_FLOAT32 && kv->type != GGUF_VT_FLOAT64) return ERR_BAD_TYPE;
    double d;
    int rc = gguf_kv_f64(kv, &d);
    if (rc) return rc;
    *out = (float)d;
    return 0;
}

int gguf_get_bool(const struct gguf_ctx *ctx, const char *key, bool *out)
{
    const struct gguf_kv *kv = gguf_find_kv(ctx, key);
    if (!kv) return ERR_NOT_FOUND;
    if (kv->type != GGUF_VT_BOOL) return ERR_BAD_TYPE;
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_get_str(const struct gguf_ctx *ctx, const char *key, struct gguf_str *out)
{
    const struct gguf_kv *kv = gguf_find_kv(ctx, key);
    if (!kv) return ERR_NOT_FOUND;
    if (kv->type != GGUF_VT_STRING) return ERR_BAD_TYPE;
    uint64_t n;
    memcpy(&n, kv->data, 8);
    out->ptr = (const char *)kv->data + 8;
    out->len = n;
    return 0;
}

int gguf_get_arr(const struct gguf_ctx *ctx, const char *key, uint32_t *elem_type, uint64_t *n,
                 const struct gguf_kv **kvp)
{
    const struct gguf_kv *kv = gguf_find_kv(ctx, key);
    if (!kv) return ERR_NOT_FOUND;
    if (kv->type != GGUF_VT_ARRAY) return ERR_BAD_TYPE;
    if (elem_type) *elem_type = kv->arr_type;
    if (n) *n = kv->arr_n;
    if (kvp) *kvp = kv;
    return 0;
}

void gguf_str_iter_init(struct gguf_str_iter *it, const struct gguf_kv *kv)
{
    it->p = kv->data;
    it->left = (kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING) ? kv->arr_n : 0;
}

bool gguf_str_iter_next(struct gguf_str_iter *it, struct gguf_str *out)
{
    if (!it->left) return false;
    uint64_t n;
    memcpy(&n, it->p, 8);
    out->ptr = (const char *)it->p + 8;
    out->len = n;
    it->p += 8 + n;
    it->left--;
    return true;
}

uint64_t gguf_fingerprint(const struct gguf_ctx *ctx)
{
    struct util_xxh64 h;
    util_xxh64_init(&h, 0);
    uint64_t n = ctx->header_len <= ctx->len ? ctx->header_len : ctx->len;
    util_xxh64_update(&h, ctx->buf, (size_t)n);
    uint8_t size[8];
    for (int i = 0; i < 8; i++) size[i] = (uint8_t)((uint64_t)ctx->len >> (8 * i));
    util_xxh64_update(&h, size, sizeof size);
    return util_xxh64_final(&h);
}
