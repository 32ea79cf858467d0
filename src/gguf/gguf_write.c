/* gguf_write: the GGUF v3 writer declared in the "writer" section of gguf.h.
 *
 * What: an in-memory description of a file (metadata as already-encoded value bytes, tensor
 * infos with borrowed or on-demand data) serialised in one pass by gguf_writer_write().
 *
 * Why this shape: `lmpipe quantize` and `lmpipe dev synth` produce files far larger than the
 * memory we want to use, so tensor bytes are pulled from a callback one tensor at a time into
 * a single reusable buffer. Metadata is small and kept encoded (exactly the bytes that follow
 * the value-type field in the file), which makes copying a parsed key a memcpy and serialising
 * a straight concatenation.
 *
 * Invariants: every stored kv value is a well-formed encoding of its type; tensor names are
 * unique and 1..GGUF_WRITER_MAX_NAME bytes; every tensor's nbytes equals
 * blk_row_size(type, ne[0]) * rows. The destination is only ever replaced by rename() of a
 * complete, fsync'ed temporary file in the same directory; on any failure the temporary file
 * is unlinked. The first error is sticky (w->err) so callers may check once at the end. */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"

#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct wkv {
    char *key; /* NUL-terminated copy */
    size_t key_len;
    uint32_t type;
    uint8_t *val; /* encoded value: what follows the type field in the file */
    size_t val_len;
};

struct wtensor {
    char name[GGUF_WRITER_MAX_NAME + 1];
    size_t name_len;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t nbytes;
    uint64_t offset; /* relative to the data section, assigned at write time */
    const void *data; /* borrowed, or NULL: ask the callback */
};

struct gguf_writer {
    struct wkv *kv;
    size_t nkv, capkv;
    struct wtensor *t;
    size_t nt, capt;
    uint32_t alignment;
    int err; /* first error of a setter, returned by gguf_writer_write */
};

static int w_fail(struct gguf_writer *w, int code)
{
    if (w && !w->err) w->err = code;
    return code;
}

int gguf_writer_create(struct gguf_writer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return ERR_NOMEM;
    (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
    return 0;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->nkv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

uint64_t gguf_writer_n_kv(const struct gguf_writer *w) { return w->nkv; }
uint64_t gguf_writer_n_tensors(const struct gguf_writer *w) { return w->nt; }
uint64_t gguf_writer_tensor_nbytes(const struct gguf_writer *w, uint64_t idx)
{
    return idx < w->nt ? w->t[idx].nbytes : 0;
}

static struct wkv *find_kv(struct gguf_writer *w, const char *key, size_t len)
{
    for (size_t i = 0; i < w->nkv; i++)
        if (w->kv[i].key_len == len && memcmp(w->kv[i].key, key, len) == 0) return &w->kv[i];
    return NULL;
}

/* Store (key, type, encoded value), taking ownership of `val`. Replaces in place if present. */
static int put_kv(struct gguf_writer *w, const char *key, size_t key_len, uint32_t type,
                  uint8_t *val, size_t val_len)
{
    if (!key || key_len == 0 || key_len > GGUF_MAX_KEY_LEN) {
        free(val);
        return w_fail(w, ERR_INVALID);
    }
    struct wkv *e = find_kv(w, key, key_len);
    if (e) {
        free(e->val);
        e->type = type;
        e->val = val;
        e->val_len = val_len;
        return 0;
    }
    if (w->nkv == w->capkv) {
        size_t cap = w->capkv ? w->capkv * 2 : 32;
        struct wkv *p = realloc(w->kv, cap * sizeof *p);
        if (!p) {
            free(val);
            return w_fail(w, ERR_NOMEM);
        }
        w->kv = p;
        w->capkv = cap;
    }
    char *k = malloc(key_len + 1);
    if (!k) {
        free(val);
        return w_fail(w, ERR_NOMEM);
    }
    memcpy(k, key, key_len);
    k[key_len] = 0;
    w->kv[w->nkv++] = (struct wkv){k, key_len, type, val, val_len};
    return 0;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

int gguf_writer_set_scalar(struct gguf_writer *w, const char *key, uint32_t vtype, const void *val)
{
    uint32_t sz = gguf_vtype_size(vtype);
    if (!sz || !val) return w_fail(w, ERR_BAD_TYPE);
    if (vtype == GGUF_VT_BOOL && *(const uint8_t *)val > 1) return w_fail(w, ERR_RANGE);
    uint8_t *v = dup_bytes(val, sz);
    if (!v) return w_fail(w, ERR_NOMEM);
    return put_kv(w, key, key ? strlen(key) : 0, vtype, v, sz);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_VT_UINT32, &v);
}
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_VT_INT32, &v);
}
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    return gguf_writer_set_scalar(w, key, GGUF_VT_FLOAT32, &v);
}
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return gguf_writer_set_scalar(w, key, GGUF_VT_BOOL, &b);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *s, size_t len)
{
    if (!s && len) return w_fail(w, ERR_INVALID);
    uint8_t *v = malloc(8 + len);
    if (!v) return w_fail(w, ERR_NOMEM);
    uint64_t n = len;
    memcpy(v, &n, 8);
    if (len) memcpy(v + 8, s, len);
    return put_kv(w, key, key ? strlen(key) : 0, GGUF_VT_STRING, v, 8 + len);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *elems, uint64_t n)
{
    uint32_t sz = gguf_vtype_size(elem_type);
    if (!sz) return w_fail(w, ERR_BAD_TYPE);
    uint64_t body;
    if (util_mul_overflow(n, sz, &body) || body > SIZE_MAX - 12) return w_fail(w, ERR_OVERFLOW);
    if (body && !elems) return w_fail(w, ERR_INVALID);
    if (elem_type == GGUF_VT_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)elems)[i] > 1) return w_fail(w, ERR_RANGE);
    uint8_t *v = malloc(12 + (size_t)body);
    if (!v) return w_fail(w, ERR_NOMEM);
    memcpy(v, &elem_type, 4);
    memcpy(v + 4, &n, 8);
    if (body) memcpy(v + 12, elems, (size_t)body);
    return put_kv(w, key, key ? strlen(key) : 0, GGUF_VT_ARRAY, v, 12 + (size_t)body);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const struct gguf_str *strs,
                            uint64_t n)
{
    uint64_t total = 12;
    if (n && !strs) return w_fail(w, ERR_INVALID);
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i].len && !strs[i].ptr) return w_fail(w, ERR_INVALID);
        if (util_add_overflow(total, 8 + strs[i].len, &total)) return w_fail(w, ERR_OVERFLOW);
    }
    if (total > SIZE_MAX) return w_fail(w, ERR_OVERFLOW);
    uint8_t *v = malloc((size_t)total), *p = v;
    if (!v) return w_fail(w, ERR_NOMEM);
    uint32_t et = GGUF_VT_STRING;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n, 8);
    p += 12;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(p, &strs[i].len, 8);
        if (strs[i].len) memcpy(p + 8, strs[i].ptr, strs[i].len);
        p += 8 + strs[i].len;
    }
    return put_kv(w, key, key ? strlen(key) : 0, GGUF_VT_ARRAY, v, (size_t)total);
}

/* Encoded size of one value of scalar/string type t starting at p (already validated). */
static uint64_t value_len(uint32_t t, const uint8_t *p)
{
    if (t == GGUF_VT_STRING) {
        uint64_t n;
        memcpy(&n, p, 8);
        return 8 + n;
    }
    return gguf_vtype_size(t);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
    if (!kv || !kv->key.ptr || !kv->data) return w_fail(w, ERR_INVALID);
    if (gguf_str_eq(kv->key, "general.alignment")) {
        int64_t a;
        if (kv->type != GGUF_VT_UINT32 || gguf_kv_i64(kv, &a)) return w_fail(w, ERR_BAD_TYPE);
        return gguf_writer_set_alignment(w, (uint32_t)a);
    }
    const uint8_t *start = kv->data;
    uint64_t len;
    if (kv->type == GGUF_VT_ARRAY) {
        /* data points at the first element; the 12-byte array header precedes it */
        start = kv->data - 12;
        len = 12;
        const uint8_t *p = kv->data;
        if (kv->arr_type == GGUF_VT_STRING) {
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                uint64_t l = value_len(GGUF_VT_STRING, p);
                p += l;
                len += l;
            }
        } else {
            len += kv->arr_n * gguf_vtype_size(kv->arr_type);
        }
    } else if (kv->type < GGUF_VT_COUNT_) {
        len = value_len(kv->type, kv->data);
    } else {
        return w_fail(w, ERR_BAD_TYPE);
    }
    if (len > SIZE_MAX) return w_fail(w, ERR_OVERFLOW);
    uint8_t *v = dup_bytes(start, (size_t)len);
    if (!v) return w_fail(w, ERR_NOMEM);
    return put_kv(w, kv->key.ptr, (size_t)kv->key.len, kv->type, v, (size_t)len);
}

int gguf_writer_remove(struct gguf_writer *w, const char *key)
{
    struct wkv *e = find_kv(w, key, strlen(key));
    if (!e) return 0;
    size_t i = (size_t)(e - w->kv);
    free(e->key);
    free(e->val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->nkv - i - 1) * sizeof *w->kv);
    w->nkv--;
    return 0;
}

int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > 65536)
        return w_fail(w, ERR_ALIGN);
    w->alignment = alignment;
    if (alignment == GGUF_DEFAULT_ALIGNMENT) return gguf_writer_remove(w, "general.alignment");
    return gguf_writer_set_u32(w, "general.alignment", alignment);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
                           const uint64_t *ne, uint32_t type, const void *data)
{
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl > GGUF_WRITER_MAX_NAME || n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return w_fail(w, ERR_INVALID);
    for (size_t i = 0; i < w->nt; i++)
        if (w->t[i].name_len == nl && memcmp(w->t[i].name, name, nl) == 0)
            return w_fail(w, ERR_DUPLICATE);
    const struct blk_type_info *ti = blk_type_info(type);
    if (!ti) return w_fail(w, ERR_BAD_TYPE);
    struct wtensor t;
    memset(&t, 0, sizeof t);
    memcpy(t.name, name, nl);
    t.name_len = nl;
    t.n_dims = n_dims;
    t.type = type;
    t.data = data;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0) return w_fail(w, ERR_SHAPE);
        if (d > 0 && util_mul_overflow(rows, t.ne[d], &rows)) return w_fail(w, ERR_OVERFLOW);
    }
    uint64_t rs = blk_row_size(type, t.ne[0]);
    if (rs == 0) return w_fail(w, ERR_SHAPE);
    if (util_mul_overflow(rs, rows, &t.nbytes)) return w_fail(w, ERR_OVERFLOW);
    if (w->nt == w->capt) {
        size_t cap = w->capt ? w->capt * 2 : 64;
        struct wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return w_fail(w, ERR_NOMEM);
        w->t = p;
        w->capt = cap;
    }
    w->t[w->nt++] = t;
    return 0;
}

/* ---- serialisation ---- */

struct out {
    FILE *f;
    int err; /* errno of the first failed write */
};

static void out_bytes(struct out *o, const void *p, size_t n)
{
    if (o->err || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
}
static void out_u32(struct out *o, uint32_t v) { out_bytes(o, &v, 4); }
static void out_u64(struct out *o, uint64_t v) { out_bytes(o, &v, 8); }
static void out_zeros(struct out *o, size_t n)
{
    static const uint8_t z[256];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        out_bytes(o, z, k);
        n -= k;
    }
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Open a fresh temporary file next to `path` (same directory, so rename is atomic). The mode
 * 0666 goes through the umask like any file the user creates. */
static int open_temp(const char *path, char *tmp, size_t cap)
{
    static unsigned counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^ (counter++ * 40503u);
        int n = snprintf(tmp, cap, "%s.tmp-%08x", path, r);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

/* Every tensor's offset in the data section, and the largest one the callback must fill. */
static int layout(struct gguf_writer *w, gguf_writer_data_fn fn, uint64_t *max_cb, struct err_info *ei)
{
    uint64_t off = 0;
    *max_cb = 0;
    for (size_t i = 0; i < w->nt; i++) {
        w->t[i].offset = off;
        if (util_add_overflow(off, w->t[i].nbytes, &off))
            return err_set(ei, ERR_OVERFLOW, ERR_NO_OFFSET, "tensor data size overflows");
        off = pad_to(off, w->alignment);
        if (!w->t[i].data) {
            if (!fn)
                return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                               "tensor '%s' has no data and no data callback was given",
                               w->t[i].name);
            if (w->t[i].nbytes > *max_cb) *max_cb = w->t[i].nbytes;
        }
    }
    if (*max_cb > SIZE_MAX) return err_set(ei, ERR_OVERFLOW, ERR_NO_OFFSET, "tensor too large for memory");
    return 0;
}

/* Header, metadata and tensor infos, padded to the data section. */
static void write_head(struct out *o, const struct gguf_writer *w)
{
    out_u32(o, GGUF_MAGIC);
    out_u32(o, 3);
    out_u64(o, w->nt);
    out_u64(o, w->nkv);
    uint64_t pos = 24;
    for (size_t i = 0; i < w->nkv; i++) {
        const struct wkv *e = &w->kv[i];
        out_u64(o, e->key_len);
        out_bytes(o, e->key, e->key_len);
        out_u32(o, e->type);
        out_bytes(o, e->val, e->val_len);
        pos += 8 + e->key_len + 4 + e->val_len;
    }
    for (size_t i = 0; i < w->nt; i++) {
        const struct wtensor *t = &w->t[i];
        out_u64(o, t->name_len);
        out_bytes(o, t->name, t->name_len);
        out_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) out_u64(o, t->ne[d]);
        out_u32(o, t->type);
        out_u64(o, t->offset);
        pos += 8 + t->name_len + 4 + 8ull * t->n_dims + 4 + 8;
    }
    out_zeros(o, (size_t)(pad_to(pos, w->alignment) - pos));
}

/* Tensor data in order: copied, or produced by fn into buf. 0 or fn's error. */
static int write_data(struct out *o, const struct gguf_writer *w, gguf_writer_data_fn fn, void *ud,
                      uint8_t *buf, struct err_info *ei)
{
    for (size_t i = 0; i < w->nt && !o->err; i++) {
        const struct wtensor *t = &w->t[i];
        const void *src = t->data;
        if (!src) {
            int rc = fn(ud, i, buf, t->nbytes, ei);
            if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "producing tensor '%s' failed", t->name);
            src = buf;
        }
        out_bytes(o, src, (size_t)t->nbytes);
        out_zeros(o, (size_t)(pad_to(t->nbytes, w->alignment) - t->nbytes));
    }
    return 0;
}

/* Flush, fsync and close the temporary file, then rename it over path; on any failure the
 * temporary file goes and path is untouched. */
static int finish_file(struct out *o, int rc, const char *tmp, const char *path, struct err_info *ei)
{
    if (!rc && !o->err && fflush(o->f) != 0) o->err = errno ? errno : EIO;
    if (!rc && !o->err && fsync(fileno(o->f)) != 0) o->err = errno ? errno : EIO;
    if (fclose(o->f) != 0 && !o->err) o->err = errno ? errno : EIO;
    if (!rc && o->err)
        rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "writing '%s' failed: %s", path, strerror(o->err));
    if (!rc && rename(tmp, path) != 0)
        rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot rename the temporary file to '%s': %s",
                     path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

int gguf_writer_write(struct gguf_writer *w, const char *path, gguf_writer_data_fn fn, void *ud,
                      struct err_info *ei)
{
    if (w->err)
        return err_set(ei, w->err, ERR_NO_OFFSET, "cannot build the GGUF file: %s",
                       err_str(w->err));
    if (!path || !*path) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "empty output path");
    uint64_t max_cb;
    int rc = layout(w, fn, &max_cb, ei);
    if (rc) return rc;
    uint8_t *buf = NULL;
    if (max_cb && !(buf = malloc((size_t)max_cb)))
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for a %llu-byte tensor",
                       (unsigned long long)max_cb);
    size_t tcap = strlen(path) + 32;
    char *tmp = malloc(tcap);
    int fd = tmp ? open_temp(path, tmp, tcap) : -1;
    struct out o = {fd >= 0 ? fdopen(fd, "wb") : NULL, 0};
    if (!o.f) {
        int e = tmp ? errno : ENOMEM;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(buf);
        free(tmp);
        return err_set(ei, e == ENOMEM ? ERR_NOMEM : ERR_IO, ERR_NO_OFFSET,
                       "cannot create a temporary file next to '%s': %s", path, strerror(e));
    }
    write_head(&o, w);
    rc = write_data(&o, w, fn, ud, buf, ei);
    free(buf);
    rc = finish_file(&o, rc, tmp, path, ei);
    free(tmp);
    return rc;
}
