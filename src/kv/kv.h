/* kv: the key/value cache of one session, in one of three element types, its snapshot files
 * (kv_snap.c, format in protocol/SNAPSHOT.md), and the prompt cache directory of snapshots
 * (kv_pcache.c).
 *
 * Types (chosen per session; what each means numerically is model.c's and kern.h's business):
 *   KV_F32   4 + 4 bytes per element (K + V), the layout of the llama.cpp references;
 *   KV_F16   2 + 2 bytes, llama.cpp's default cache type (IEEE half, round to nearest even);
 *   KV_Q8_0  34/32 + 34/32 bytes: blocks of 32 int8 with an fp16 scale along the head dimension,
 *            for K and V (needs head_dim % 32 == 0, checked by the model).
 *
 * Layout. A position's keys are one row, as q.k reads them: k is [n_layer][n_ctx][k_row bytes]
 * (k_row = kv_dim elements, or kv_dim/32 Q8_0 blocks). For F32 and F16, v is transposed like
 * llama.cpp's cache (softmax(qk).V then walks contiguous cells for each output dim), in blocks
 * of KV_VBLK positions: [n_layer][n_vblk][kv_dim][KV_VBLK] elements. For Q8_0, v is stored like k,
 * one row of kv_dim/32 blocks per position ([n_layer][n_ctx][v_row bytes]): llama.cpp only runs a
 * quantized V cache with flash attention, which reads V by position and quantizes it in blocks of
 * 32 along the head dimension (a transposed Q8_0 V would put 32 positions in a block, which no
 * kernel of the reference computes). Writing position t touches only its own rows / block, so the
 * cache becomes resident as positions are used: calloc'd pages cost nothing until touched.
 * Allocated once at init; appending a position never allocates.
 *
 * Memory (kv_mem_bytes), with kv_dim = n_head_kv * head_dim and n_vblk = ceil(n_ctx / 256):
 *   F32   n_layer * kv_dim * (n_ctx * 4 + n_vblk * 256 * 4)
 *   F16   n_layer * kv_dim * (n_ctx * 2 + n_vblk * 256 * 2)
 *   Q8_0  n_layer * (kv_dim / 32) * 34 * (n_ctx + n_ctx)
 * i.e. n_layer x n_ctx x kv_dim x (K + V bytes per element), V rounded up to whole 256-position
 * blocks for F32/F16, and Q8_0's fp16 scale per 32 elements. TinyLlama-1.1B (22 layers, kv_dim
 * 256) at 2048 positions: F32 88 MiB, F16 44 MiB, Q8_0 23.4 MiB. */
#ifndef LMPIPE_KV_KV_H
#define LMPIPE_KV_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

#define KV_VBLK 256u /* positions per V block: a multiple of 32 (kern.h's kern_vt), llama.cpp's n_kv step */
#define KV_QBLK 32u  /* elements per Q8_0 block */
#define KV_QBLK_BYTES 34u

enum kv_type { KV_F32 = 0, KV_F16 = 1, KV_Q8_0 = 2, KV_TYPE_COUNT_ };

/* "f32", "f16", "q8_0" ("?" for anything else). */
const char *kv_type_name(int type);
/* Parse a type name (case-insensitive; also "fp32", "fp16", "q8"). 0 or ERR_INVALID. */
int kv_type_parse(const char *s, int *out);
/* Bytes per element of K (or V) of a type, times 32 (exact for Q8_0: 34). 0 for a bad type. */
uint32_t kv_type_bytes32(int type);

struct kv_cache {
    int type; /* enum kv_type */
    uint32_t n_layer, n_ctx, kv_dim;
    size_t k_row;   /* bytes of one position's K (and, for Q8_0, V) row */
    uint8_t *k;     /* [n_layer][n_ctx][k_row] */
    uint32_t n_vblk; /* ceil(n_ctx / KV_VBLK) (F32 / F16) */
    uint8_t *v;      /* F32/F16: [n_layer][n_vblk][kv_dim][KV_VBLK] elements; Q8_0: [n_layer][n_ctx][k_row] */
};

/* Bytes kv_init would allocate (0 for a bad type, kv_dim not fitting Q8_0 blocks, or overflow). */
uint64_t kv_mem_bytes(int type, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
/* kv_mem_bytes for F32 (the callers that predate KV types). */
uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
/* 0, ERR_INVALID (bad type; Q8_0 with kv_dim % 32), ERR_OVERFLOW (empty or absurd sizes), ERR_NOMEM. */
int kv_init(struct kv_cache *kv, int type, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
void kv_free(struct kv_cache *kv); /* safe on zeroed / partial */

/* K row of position pos (k_row bytes). */
static inline uint8_t *kv_k_row(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->k + ((size_t)layer * kv->n_ctx + pos) * kv->k_row;
}
/* F32 K row (type KV_F32 only). */
static inline float *kv_k(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return (float *)(void *)kv_k_row(kv, layer, pos);
}
/* Q8_0 V row of position pos (type KV_Q8_0 only). */
static inline uint8_t *kv_v_row(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->v + ((size_t)layer * kv->n_ctx + pos) * kv->k_row;
}
/* Transposed V of a layer (F32 / F16): element d of position t at index
 * (t / KV_VBLK) * kv_dim * KV_VBLK + d * KV_VBLK + t % KV_VBLK of this array of 4- or 2-byte cells
 * (model.c describes it to the kernels as a struct kern_vt / kern_vt_f16). */
static inline const void *kv_v_layer(const struct kv_cache *kv, uint32_t layer)
{
    return kv->v + (size_t)layer * kv->n_vblk * kv->kv_dim * KV_VBLK * (kv->type == KV_F16 ? 2 : 4);
}
/* Store the kv_dim values of position pos into a transposed V (F32: as is; F16: rounded to
 * nearest even, as ggml's fp32 -> fp16). Not for Q8_0 (the model quantizes into kv_v_row). */
void kv_v_put(const struct kv_cache *kv, uint32_t layer, uint32_t pos, const float *row);
/* Copy position src's K and V to position dst in every layer (context shift; the model then
 * re-rotates K). dst may equal src. */
void kv_move(const struct kv_cache *kv, uint32_t dst, uint32_t src);

/* ---- snapshots (kv_snap.c; protocol/SNAPSHOT.md is the format) ----
 *
 * A snapshot holds the token ids of positions 0..n_tokens-1 of a session and the K and V of
 * exactly those positions, plus everything needed to refuse it where it does not belong: the
 * model fingerprint (gguf_fingerprint), the KV type, n_layer, kv_dim, the writer's context size.
 * Writing is atomic (temporary file beside the target, fsync, rename, fsync of the directory).
 * Reading is a pure parse over a buffer that validates everything (structure, checksum, then
 * fit against the session) before anything touches a cache; restoring a parsed snapshot into a
 * matching cache cannot fail. */

#define KV_SNAP_VERSION 1u
#define KV_SNAP_HEADER 64u /* bytes of the version-1 header */

/* What the reading session is: a snapshot must match all of it (n_ctx: must hold its tokens). */
struct kv_snap_expect {
    uint64_t fingerprint;
    int kv_type;
    uint32_t n_layer, kv_dim, n_ctx;
    uint32_t n_vocab; /* token ids must be below it */
};

/* A parsed snapshot: a view into the caller's buffer (nothing allocated). */
struct kv_snap {
    uint32_t version;
    uint64_t fingerprint;
    int kv_type;
    uint32_t n_ctx; /* the writer's context size */
    uint32_t n_layer, kv_dim, n_tokens;
    const uint8_t *tokens; /* [n_tokens] little-endian int32 (may be unaligned: use kv_snap_token) */
    const uint8_t *data;   /* per layer: K rows of n_tokens positions, then V rows of n_tokens positions */
    size_t row_bytes;      /* bytes of one position's K (or V) row in the file */
    uint64_t checksum;
};

/* Bytes of a snapshot of n_tokens positions (0 on overflow or a bad type). */
uint64_t kv_snap_size(int kv_type, uint32_t n_layer, uint32_t kv_dim, uint32_t n_tokens);

/* Validate buf[0..len) completely against `expect` (NULL: structure and checksum only). Errors:
 * ERR_SNAP_CORRUPT (not a snapshot, truncated, trailing bytes, checksum, impossible fields or
 * token ids), ERR_SNAP_VERSION (a well-formed file of another format version), ERR_SNAP_MODEL
 * (another model), ERR_SNAP_KV (another KV type, n_layer or kv_dim, or more tokens than the
 * context holds). ei gets the byte offset and the reason. */
int kv_snap_parse(const uint8_t *buf, size_t len, const struct kv_snap_expect *expect, struct kv_snap *out,
                  struct err_info *ei);
int32_t kv_snap_token(const struct kv_snap *s, uint32_t i);
/* Length of the common prefix of the snapshot's tokens and toks[0..n). */
uint32_t kv_snap_common_prefix(const struct kv_snap *s, const int32_t *toks, size_t n);
/* Copy positions 0..n_cells-1 (n_cells <= s->n_tokens) into kv, which must match what the
 * snapshot was parsed against (type, n_layer, kv_dim; n_ctx >= n_cells). Cannot fail. */
void kv_snap_restore(struct kv_cache *kv, const struct kv_snap *s, uint32_t n_cells);

/* ---- reading a file piece by piece (what the engine's loads use) ----
 * kv_snap_parse needs the whole file in memory. A load instead reads the first bytes (the header
 * and the token ids: at most KV_SNAP_HEADER + 4 * n_ctx of them), checks them with kv_snap_peek,
 * and then streams the rest with kv_snap_stream, which checksums every byte of the file in order
 * and copies the cells it is asked for straight from the file into the cache: one pass, no
 * buffer the size of the file, and a file that is cut or changed while it is read is refused
 * (short read, checksum). */

/* Bytes of a file a peek should read for a session of n_ctx positions: the header and the token
 * ids of the largest snapshot that session accepts, or the whole file when it is smaller. */
uint64_t kv_snap_head_len(uint64_t file_len, uint32_t n_ctx);
/* Validate what head[0..head_len) (the first bytes of a file of file_len bytes; head_len >=
 * kv_snap_head_len(file_len, expect->n_ctx)) can show: magic, the version-1 fields against each
 * other and against file_len, the fit with `expect` (required), the token ids. Everything but
 * the checksum. out->tokens points into head; out->data is NULL. Errors as kv_snap_parse, except
 * that a version other than 1 is ERR_SNAP_VERSION (0 included) and that none of them is final:
 * a damaged file can look like another model or version, so a caller verifies the checksum
 * (kv_snap_stream with s NULL) before it believes a refusal; only then is damage told apart. */
int kv_snap_peek(const uint8_t *head, size_t head_len, uint64_t file_len, const struct kv_snap_expect *expect,
                 struct kv_snap *out, struct err_info *ei);
/* Stream the open file fd (file_len bytes; head[0..head_len) its first bytes, already read and
 * peeked into s) from head_len to its end: hash every byte of the file, and copy positions
 * [from, to) (to <= s->n_tokens) of every layer's K and V into kv, which must match s (type,
 * n_layer, kv_dim; n_ctx >= to). kv NULL: only verify. s NULL: only verify, with no structure
 * known (a file peek refused). Errors: ERR_SNAP_CORRUPT (checksum, or the file got shorter),
 * ERR_IO (a read failed), ERR_NOMEM; on an error, positions [from, to) of kv hold whatever was
 * read (the caller forgets them) and nothing else of kv was written. */
int kv_snap_stream(int fd, const uint8_t *head, size_t head_len, uint64_t file_len, const struct kv_snap *s,
                   struct kv_cache *kv, uint32_t from, uint32_t to, struct err_info *ei);

/* Called while a snapshot is written, after each piece, with bytes done and total; a nonzero
 * return cancels the write (the target is left as it was; ERR_CANCELLED). */
typedef int (*kv_snap_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* Serialise positions 0..n_tokens-1 of kv with their token ids through `write` (called with
 * consecutive pieces; nonzero stops with that code). For memory buffers, tests and fuzz seeds.
 * ERR_INVALID: more tokens than positions, a negative token id, no writer. */
typedef int (*kv_snap_write_fn)(void *ud, const void *p, size_t n);
int kv_snap_encode(const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens, uint32_t n_tokens,
                   kv_snap_write_fn write, void *ud, kv_snap_progress_fn progress, void *pud);
/* Write a snapshot file atomically. Errors: ERR_INVALID (n_tokens > n_ctx), ERR_IO (with the
 * path and errno text in ei), ERR_CANCELLED; on any error the file at `path` is unchanged. */
int kv_snap_write(const char *path, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens,
                  uint32_t n_tokens, kv_snap_progress_fn progress, void *pud, struct err_info *ei);
/* kv_snap_write without the fsyncs (file and directory): for entries of a cache, where a file
 * that a crash leaves damaged is refused by its checksum and deleted, so the wait for the disk
 * (seconds on an SD card) buys nothing. Still written to a temporary file and renamed: a reader
 * never sees a half-written file. */
int kv_snap_write_fast(const char *path, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens,
                       uint32_t n_tokens, struct err_info *ei);
/* Read a whole snapshot file into a malloc'd buffer (caller frees), refusing what cannot be one:
 * a directory or other non-regular file, an unreadable path (ERR_IO with the reason), more than
 * max_len bytes (ERR_SNAP_KV: too big for this session; 0 = no limit). */
int kv_snap_read_file(const char *path, uint64_t max_len, uint8_t **buf, size_t *len, struct err_info *ei);

/* ---- the prompt cache directory (kv_pcache.c) ----
 *
 * A directory of snapshot files, one per evaluated prompt, shared by any number of processes:
 *
 *   DIR/<fingerprint>-<kv type>-m<min>/<bucket>/<hash>-<n>.snap
 *
 * <fingerprint> the model's (16 hex digits), <kv type> "f32" / "f16" / "q8_0", <min> the
 * cache's min_tokens; <bucket> the XXH64 (16 hex digits) of the prompt's first min_tokens token
 * ids, so every prompt that shares at least min_tokens leading tokens with an entry looks in the
 * same bucket, and only there; <hash> the XXH64 of all n ids of the entry (little-endian int32).
 * An entry holds the whole prompt it was made from (as llama.cpp's prompt cache does): a later
 * prompt uses its longest common prefix.
 *
 * Lookups read only the header and token ids of a bucket's entries (a few KB each), never their
 * cache data. Writers create a temporary file beside the entry and rename it into place, so a
 * reader never sees half an entry; a reader keeps its file descriptor, so an entry evicted or
 * replaced while it is read stays whole for it. Least recently used eviction by mtime (a hit
 * touches its entry) keeps the directory under max_bytes after every store; an entry whose
 * tokens are a prefix of a newer one in its bucket is redundant (every prompt shares at least as
 * much with the newer one) and is removed when the newer one is written; temporary files older
 * than an hour (a killed writer) are removed. Only names this code makes are ever removed (see
 * kv_pcache_name). Nothing here is allocated in a token loop. */

#define KV_PCACHE_STALE_TMP 3600 /* seconds after which a leftover temporary file is removed */

enum kv_pcache_name_kind {
    KV_PCN_NONE = 0, /* not ours */
    KV_PCN_MODEL,    /* "<16 hex>-<type>-m<min>" (a directory) */
    KV_PCN_BUCKET,   /* "<16 hex>" (a directory) */
    KV_PCN_ENTRY,    /* "<16 hex>-<n>.snap" */
    KV_PCN_TMP,      /* an entry name followed by ".tmp-" and 6 characters (kv_snap_write's) */
};
struct kv_pcache_name {
    uint64_t hash;   /* fingerprint, bucket or token hash */
    uint32_t n;      /* KV_PCN_ENTRY / TMP: tokens; KV_PCN_MODEL: min_tokens */
    int kv_type;     /* KV_PCN_MODEL */
};
/* Classify a directory entry's name (a pure parser over name[0..len); no NUL needed). Decimal
 * numbers have no sign, no leading zeros and fit 32 bits; hex digits are lower-case. */
int kv_pcache_name(const char *name, size_t len, struct kv_pcache_name *out);

struct kv_pcache_stats {
    uint64_t lookups;       /* prompts looked up (at least min_tokens of them not in memory) */
    uint64_t hits;          /* ... that restored an entry */
    uint64_t misses;        /* ... that found nothing usable */
    uint64_t hit_tokens;    /* positions restored from entries */
    uint64_t stores;        /* entries written */
    uint64_t evictions;     /* entries removed: least recently used, or made redundant */
    uint64_t errors;        /* damaged entries dropped, failed writes (generation goes on) */
    uint64_t bytes_read;    /* headers and token ids looked at, and entries loaded */
    uint64_t bytes_written;
    uint64_t entries;       /* in the directory at the last scan (all models and types) */
    uint64_t disk_bytes;    /* their size, temporary files included */
};

struct kv_pcache {
    char *root;             /* DIR */
    uint32_t min_tokens;    /* >= 1 */
    uint64_t max_bytes;
    struct kv_pcache_stats st;
};

/* Open (and create) DIR; scans it once for the stats. ERR_IO naming the path when it cannot be
 * made or is not a directory; ERR_INVALID for min_tokens 0. */
int kv_pcache_open(struct kv_pcache *pc, const char *dir, uint32_t min_tokens, uint64_t max_bytes,
                   struct err_info *ei);
void kv_pcache_close(struct kv_pcache *pc); /* safe on zeroed */

/* The entry of the bucket of toks[0..n) (n >= min_tokens) whose common prefix with it is the
 * longest and longer than `better`, for a session `x` describes. Returns 1 with its path (in
 * path[0..cap)) and that common prefix, 0 when there is none (a missing bucket is none), or an
 * error (the path does not fit). Entries that cannot be opened or peeked are skipped (another
 * process may be evicting them). */
int kv_pcache_find(struct kv_pcache *pc, const struct kv_snap_expect *x, const int32_t *toks, size_t n,
                   uint32_t better, char *path, size_t cap, uint32_t *common, struct err_info *ei);
/* Keep positions 0..n-1 of kv (whose token ids are toks) as an entry, unless an entry already
 * covers all but fewer than min_tokens of them (that one is touched instead), or an entry would
 * be larger than max_bytes. Then removes the bucket's entries that the new one makes redundant
 * and evicts until the directory is under max_bytes. Returns 1 when written, 0 when not needed,
 * or an error (the cache stays consistent: at worst an entry is missing). */
int kv_pcache_store(struct kv_pcache *pc, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *toks,
                    uint32_t n, struct err_info *ei);
/* An entry was used: make it the most recently used. */
void kv_pcache_touch(const char *path);
/* An entry turned out damaged: remove it (counted in errors). */
void kv_pcache_drop(struct kv_pcache *pc, const char *path);
/* Evict least recently used entries until the directory holds at most max_bytes, remove stale
 * temporary files, refresh entries / disk_bytes. */
void kv_pcache_evict(struct kv_pcache *pc);

#endif
