/* gguf: a pure parser for GGUF v2/v3 files over an in-memory buffer, and an mmap loader on top.
 *
 * gguf_parse(buf, len, out, ei) validates the whole header before returning: every read is
 * range-checked, every count is capped by what the remaining bytes could possibly hold, every
 * size multiplication is overflow-checked, tensor data must lie inside the buffer at an aligned
 * offset, tensor names and keys are unique, tensor types are known ggml types. After a
 * successful parse, every pointer in the context points into `buf` (which the caller keeps
 * alive) and every accessor below can trust the lengths it reads.
 *
 * Ownership: the context owns only its kv/tensor index arrays (and the mapping when opened with
 * gguf_open). gguf_free() is safe on a zeroed or partially built context. */
#ifndef LMPIPE_GGUF_GGUF_H
#define LMPIPE_GGUF_GGUF_H

#include "../util/blk.h"
#include "../util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little endian */
#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32u
/* Caps independent of file size, so a hostile header cannot ask for absurd index arrays. */
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KV (1u << 20)
#define GGUF_MAX_KEY_LEN 65535u

/* Metadata value types (GGUF spec). */
enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT_
};

/* A string inside the buffer: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

struct gguf_kv {
    struct gguf_str key;
    uint32_t type;       /* enum gguf_vtype */
    uint32_t arr_type;   /* element type when type == ARRAY */
    uint64_t arr_n;      /* element count when type == ARRAY */
    const uint8_t *data; /* the value (scalar bytes, string length prefix, or first element) */
    uint64_t offset;     /* byte offset of `data` in the buffer */
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length (innermost); unused dims are 1 */
    uint32_t type;              /* enum blk_type */
    uint64_t offset;            /* relative to the data section */
    uint64_t nbytes;
    const void *data;           /* inside the buffer, aligned to the file's alignment */
};

struct gguf_ctx {
    const uint8_t *buf; /* [len] the whole file */
    size_t len;
    uint32_t version;
    uint32_t alignment;
    uint64_t header_len;  /* bytes from the magic to the end of the last tensor info */
    uint64_t data_offset; /* start of the tensor data section */
    uint64_t n_kv;
    struct gguf_kv *kv; /* [n_kv] */
    uint64_t n_tensors;
    struct gguf_tensor *tensors; /* [n_tensors] in file order */
    void *map;                   /* mmap base when opened with gguf_open, else NULL */
    size_t map_len;
};

/* Parse `buf[0..len)`. On error `out` is left freed (zeroed) and `ei` says what, where, why. */
int gguf_parse(const uint8_t *buf, size_t len, struct gguf_ctx *out, struct err_info *ei);
/* mmap `path` read-only and parse it. */
int gguf_open(const char *path, struct gguf_ctx *out, struct err_info *ei);
void gguf_free(struct gguf_ctx *ctx);

const struct gguf_kv *gguf_find_kv(const struct gguf_ctx *ctx, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_ctx *ctx, const char *name);

/* Typed getters. Integer getters accept any integer value type whose value fits; float
 * getters accept FLOAT32/FLOAT64. Return 0, ERR_NOT_FOUND, ERR_BAD_TYPE or ERR_RANGE. */
int gguf_get_u32(const struct gguf_ctx *ctx, const char *key, uint32_t *out);
int gguf_get_i64(const struct gguf_ctx *ctx, const char *key, int64_t *out);
int gguf_get_f32(const struct gguf_ctx *ctx, const char *key, float *out);
int gguf_get_bool(const struct gguf_ctx *ctx, const char *key, bool *out);
int gguf_get_str(const struct gguf_ctx *ctx, const char *key, struct gguf_str *out);
/* An array value: element type and count. */
int gguf_get_arr(const struct gguf_ctx *ctx, const char *key, uint32_t *elem_type, uint64_t *n,
                 const struct gguf_kv **kv);

/* The model fingerprint: XXH64 (util/hash.h, seed 0) of the byte sequence
 *     buf[0 .. header_len)  ||  len as 8 little-endian bytes
 * i.e. the file's own encoding of its magic, version, counts, every metadata key/value and every
 * tensor info (name, dims, type, data offset), then the file size. It never reads tensor data, so
 * it costs one pass over the header (the vocabulary dominates: ~1 MB for a 32k vocabulary), and
 * it is the same on every machine and every run. Two files with the same header and size but
 * different weights (rare: a fine-tune keeps names and shapes, but usually not general.name and
 * never all metadata) share a fingerprint; snapshot files accept that risk for speed. For a
 * context from gguf_open, len is the file size. */
uint64_t gguf_fingerprint(const struct gguf_ctx *ctx);

/* Scalar decoding of one value (kv->data) */
int gguf_kv_i64(const struct gguf_kv *kv, int64_t *out);
int gguf_kv_f64(const struct gguf_kv *kv, double *out);
/* Array element i of a fixed-size numeric array (any integer or float type). */
int gguf_arr_i64(const struct gguf_kv *kv, uint64_t i, int64_t *out);
int gguf_arr_f64(const struct gguf_kv *kv, uint64_t i, double *out);

/* Sequential reader of a STRING array: no allocation, lengths already validated by the parse. */
struct gguf_str_iter {
    const uint8_t *p;
    uint64_t left;
};
void gguf_str_iter_init(struct gguf_str_iter *it, const struct gguf_kv *kv);
bool gguf_str_iter_next(struct gguf_str_iter *it, struct gguf_str *out);

/* Size in bytes of a value type's scalar (0 for STRING/ARRAY/unknown). */
uint32_t gguf_vtype_size(uint32_t vtype);
const char *gguf_vtype_name(uint32_t vtype);
/* strcmp-style comparison of a gguf_str with a C string. */
bool gguf_str_eq(struct gguf_str s, const char *c);

/* ==== writer (src/gguf/gguf_write.c) ====================================================
 * A GGUF v3 writer: metadata of every value type (arrays included), tensor infos, alignment
 * padding. The file is written to a temporary file next to the destination, fsync'ed and then
 * renamed over it, so a failed or interrupted write leaves an existing file untouched.
 *
 * Metadata keeps insertion order; setting a key that exists replaces its value in place.
 * Tensor data is laid out in the order tensors were added, each at an aligned offset. Data is
 * either borrowed at add time (it must stay valid until gguf_writer_write returns) or produced
 * on demand by a callback, one tensor at a time, so a large model never has to sit in memory.
 *
 * Errors are sticky: the first failing call is remembered and gguf_writer_write returns it, so
 * a caller may add everything and check once. Tensor names follow ggml's limit (1..63 bytes). */
struct gguf_writer;

#define GGUF_WRITER_MAX_NAME 63u

int gguf_writer_create(struct gguf_writer **out);
void gguf_writer_free(struct gguf_writer *w); /* NULL-safe */
/* Alignment of the data section (a power of two <= 65536). Writes general.alignment only when
 * it differs from GGUF_DEFAULT_ALIGNMENT. */
int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment);

/* Scalars: `val` points to one value of `vtype` (any scalar type; BOOL is one byte 0/1). */
int gguf_writer_set_scalar(struct gguf_writer *w, const char *key, uint32_t vtype, const void *val);
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *s, size_t len);
/* An array of n fixed-size elements (any scalar type) packed in `elems`. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *elems, uint64_t n);
/* An array of n strings. */
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const struct gguf_str *strs,
                            uint64_t n);
/* Copy one parsed key/value verbatim (general.alignment is applied via set_alignment). */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);
/* Remove a key if present (0 either way). */
int gguf_writer_remove(struct gguf_writer *w, const char *key);
uint64_t gguf_writer_n_kv(const struct gguf_writer *w);

/* Add a tensor: ne[0..n_dims) with ne[0] a multiple of the type's block size. `data` (may be
 * NULL: then the write callback supplies it) holds blk_row_size(type, ne[0]) * rows bytes. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
                           const uint64_t *ne, uint32_t type, const void *data);
uint64_t gguf_writer_n_tensors(const struct gguf_writer *w);
/* Bytes tensor idx occupies (0 if idx is out of range). */
uint64_t gguf_writer_tensor_nbytes(const struct gguf_writer *w, uint64_t idx);

/* Fills dst[0..nbytes) with tensor idx's data (called in order, only for tensors added without
 * data). Return 0 or a negative ERR_* (recording a message in ei) to abort the write. */
typedef int (*gguf_writer_data_fn)(void *ud, uint64_t idx, void *dst, uint64_t nbytes,
                                   struct err_info *ei);
/* Write the file atomically (temp file + fsync + rename). fn may be NULL when every tensor was
 * added with data. On failure the temp file is removed and `path` is left as it was. */
int gguf_writer_write(struct gguf_writer *w, const char *path, gguf_writer_data_fn fn, void *ud,
                      struct err_info *ei);
/* ==== end of writer ==== */

#endif
