/* kv_snap: snapshot files of a KV cache: encoder, atomic file writer, the pure validating parser,
 * and the restore that cannot fail. protocol/SNAPSHOT.md is the format; kv.h the contract.
 *
 * Why the parser checks in this order: magic, then (for a version-1 header) the recorded file
 * length, so a cut-off file says "truncated" and not just "checksum"; then the checksum over
 * everything, so no field of a damaged file is believed; only then the version (every version
 * keeps magic, version and a trailing XXH64, so a file of a future version is recognised as
 * such and not as damage); then the version-1 fields against each other; last the fit with the
 * reading session (model, KV type, shape, context). Nothing is written anywhere before all of
 * it passed; restore only copies bytes whose sizes the parse proved.
 *
 * The streaming reader (kv_snap_peek + kv_snap_stream) is the same checks for a file that is
 * not in memory: peek does everything but the checksum on the first bytes, so its refusals are
 * provisional (a damaged file can look like another model); the stream then hashes the file in
 * order while it copies the requested cells into the cache, and only a matching checksum makes
 * those cells count. The caller owns that rule (eng_snap.c): it copies only into positions that
 * hold nothing it must keep, and forgets them when the checksum fails.
 *
 * Byte order: every field, token id and cache element is little-endian; caches are copied as
 * they are in memory, so this file assumes a little-endian host (as the GGUF loader does). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include "kv.h"

#include "../util/hash.h"
#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels refuse it (EINVAL) and nothing happens */
#endif
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kv_snap.c copies cache elements as little-endian bytes"
#endif

static const uint8_t g_magic[8] = {'L', 'M', 'P', 'K', 'V', 'S', 'N', 'P'};

/* Header field offsets (version 1). */
enum {
    OFF_VERSION = 8,
    OFF_HDR_LEN = 12,
    OFF_FPRINT = 16,
    OFF_TYPE = 24,
    OFF_NCTX = 28,
    OFF_NLAYER = 32,
    OFF_KVDIM = 36,
    OFF_NTOK = 40,
    OFF_ROW = 44,
    OFF_TOTAL = 48,
    OFF_RESERVED = 56,
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Bytes of one position's row, 0 for a type/width that cannot exist. */
static uint64_t row_bytes(int type, uint32_t kv_dim)
{
    uint32_t b32 = kv_type_bytes32(type);
    if (!b32 || kv_dim == 0 || (type == KV_Q8_0 && kv_dim % KV_QBLK)) return 0;
    return (uint64_t)kv_dim * b32 / 32;
}

uint64_t kv_snap_size(int kv_type, uint32_t n_layer, uint32_t kv_dim, uint32_t n_tokens)
{
    uint64_t row = row_bytes(kv_type, kv_dim), data, total;
    if (!row || n_layer == 0) return 0;
    /* 2 rows (K and V) per position per layer; every factor < 2^32 except the product */
    if (util_mul_overflow((uint64_t)n_layer * 2 * n_tokens, row, &data)) return 0;
    if (util_add_overflow(data, KV_SNAP_HEADER + 4ull * n_tokens + 8, &total)) return 0;
    return total;
}

/* ---- encoder ---- */

struct enc {
    kv_snap_write_fn write;
    void *ud;
    struct util_xxh64 h;
    uint64_t done, total;
    kv_snap_progress_fn progress;
    void *pud;
    int rc;
};

static void enc_put(struct enc *e, const void *p, size_t n)
{
    if (e->rc || !n) return;
    util_xxh64_update(&e->h, p, n);
    e->rc = e->write(e->ud, p, n);
    e->done += n;
}

static void enc_progress(struct enc *e)
{
    if (!e->rc && e->progress && e->progress(e->pud, e->done, e->total)) e->rc = ERR_CANCELLED;
}

/* Whole rows <-> a transposed V block. A block of KV_VBLK positions of one layer holds element d
 * of position t at [d][t % KV_VBLK]; rows[0..m) are positions t_in..t_in+m-1 of the block (kv_dim
 * elements each). The copies walk the block in tiles of VT_TILE dims, so each destination line is
 * filled by consecutive positions while the tile's source rows stay in cache (a row at a time
 * would write kv_dim lines 512 bytes apart per position). Rows may be unaligned (they can point
 * into a file buffer): elements are moved with memcpy of a constant size, i.e. plain loads. */
#define VT_TILE 16u
#define VT_COPIES(NAME, T)                                                                          \
    static void NAME##_put(uint8_t *blk, uint32_t t_in, const uint8_t *rows, uint32_t m, uint32_t kv_dim) \
    {                                                                                              \
        T *b = (T *)(void *)blk;                                                                    \
        for (uint32_t d0 = 0; d0 < kv_dim; d0 += VT_TILE) {                                        \
            uint32_t d1 = kv_dim - d0 < VT_TILE ? kv_dim : d0 + VT_TILE;                           \
            for (uint32_t t = 0; t < m; t++) {                                                     \
                const uint8_t *r = rows + (size_t)t * kv_dim * sizeof(T);                          \
                for (uint32_t d = d0; d < d1; d++)                                                 \
                    memcpy(&b[(size_t)d * KV_VBLK + t_in + t], r + (size_t)d * sizeof(T), sizeof(T)); \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void NAME##_get(uint8_t *rows, const uint8_t *blk, uint32_t t_in, uint32_t m, uint32_t kv_dim) \
    {                                                                                              \
        const T *b = (const T *)(const void *)blk;                                                  \
        for (uint32_t d0 = 0; d0 < kv_dim; d0 += VT_TILE) {                                        \
            uint32_t d1 = kv_dim - d0 < VT_TILE ? kv_dim : d0 + VT_TILE;                           \
            for (uint32_t t = 0; t < m; t++) {                                                     \
                uint8_t *r = rows + (size_t)t * kv_dim * sizeof(T);                                \
                for (uint32_t d = d0; d < d1; d++)                                                 \
                    memcpy(r + (size_t)d * sizeof(T), &b[(size_t)d * KV_VBLK + t_in + t], sizeof(T)); \
            }                                                                                      \
        }                                                                                          \
    }
VT_COPIES(vt16, uint16_t)
VT_COPIES(vt32, uint32_t)

/* The block of layer l that holds position t, and t's index in it. */
static uint8_t *vblk_of(const struct kv_cache *kv, uint32_t l, uint32_t t, uint32_t *t_in)
{
    const size_t el = kv->type == KV_F16 ? 2 : 4;
    *t_in = t % KV_VBLK;
    return (uint8_t *)kv_v_layer(kv, l) + (size_t)(t / KV_VBLK) * kv->kv_dim * KV_VBLK * el;
}

/* Rows of positions [t, t + m) (within one block) into / out of a transposed layer. */
static void v_rows_put(const struct kv_cache *kv, uint32_t l, uint32_t t, const uint8_t *rows, uint32_t m)
{
    uint32_t t_in;
    uint8_t *blk = vblk_of(kv, l, t, &t_in);
    if (kv->type == KV_F16) vt16_put(blk, t_in, rows, m, kv->kv_dim);
    else vt32_put(blk, t_in, rows, m, kv->kv_dim);
}

static void v_rows_get(const struct kv_cache *kv, uint32_t l, uint32_t t, uint8_t *rows, uint32_t m)
{
    uint32_t t_in;
    const uint8_t *blk = vblk_of(kv, l, t, &t_in);
    if (kv->type == KV_F16) vt16_get(rows, blk, t_in, m, kv->kv_dim);
    else vt32_get(rows, blk, t_in, m, kv->kv_dim);
}

/* Positions in a run that starts at t, stays inside t's V block, ends before `end` and has at
 * most `cap` rows (>= 1). */
static uint32_t vblk_run(uint32_t t, uint32_t end, uint32_t cap)
{
    uint32_t m = KV_VBLK - t % KV_VBLK;
    if (m > end - t) m = end - t;
    return m < cap ? m : cap;
}

/* V rows of positions 0..n-1 of a transposed layer, gathered into chunks of whole rows. */
static void enc_v_transposed(struct enc *e, const struct kv_cache *kv, uint32_t l, uint32_t n, uint8_t *chunk,
                             size_t cap)
{
    uint32_t rows_cap = (uint32_t)(cap / kv->k_row);
    for (uint32_t t = 0; t < n && !e->rc;) {
        uint32_t m = vblk_run(t, n, rows_cap);
        v_rows_get(kv, l, t, chunk, m);
        enc_put(e, chunk, (size_t)m * kv->k_row);
        t += m;
    }
}

int kv_snap_encode(const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens, uint32_t n_tokens,
                   kv_snap_write_fn write, void *ud, kv_snap_progress_fn progress, void *pud)
{
    if (!kv || !kv->k || n_tokens > kv->n_ctx || (n_tokens && !tokens) || !write) return ERR_INVALID;
    for (uint32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0) return ERR_INVALID; /* would write a file no reader accepts */
    uint64_t total = kv_snap_size(kv->type, kv->n_layer, kv->kv_dim, n_tokens);
    if (!total) return ERR_OVERFLOW;
    struct enc e = {.write = write, .ud = ud, .total = total, .progress = progress, .pud = pud};
    util_xxh64_init(&e.h, 0);
    uint8_t hdr[KV_SNAP_HEADER] = {0};
    memcpy(hdr, g_magic, sizeof g_magic);
    wr32(hdr + OFF_VERSION, KV_SNAP_VERSION);
    wr32(hdr + OFF_HDR_LEN, KV_SNAP_HEADER);
    wr64(hdr + OFF_FPRINT, fingerprint);
    wr32(hdr + OFF_TYPE, (uint32_t)kv->type);
    wr32(hdr + OFF_NCTX, kv->n_ctx);
    wr32(hdr + OFF_NLAYER, kv->n_layer);
    wr32(hdr + OFF_KVDIM, kv->kv_dim);
    wr32(hdr + OFF_NTOK, n_tokens);
    wr32(hdr + OFF_ROW, (uint32_t)kv->k_row);
    wr64(hdr + OFF_TOTAL, total);
    enc_put(&e, hdr, sizeof hdr);
    uint8_t tb[4 * 256];
    for (uint32_t i = 0; i < n_tokens; i += 256) {
        uint32_t m = n_tokens - i < 256 ? n_tokens - i : 256;
        for (uint32_t j = 0; j < m; j++) wr32(tb + 4 * j, (uint32_t)tokens[i + j]);
        enc_put(&e, tb, 4 * (size_t)m);
    }
    size_t cap = 1u << 16;
    if (cap < kv->k_row) cap = kv->k_row;
    uint8_t *chunk = kv->type == KV_Q8_0 ? NULL : malloc(cap);
    if (kv->type != KV_Q8_0 && !chunk) return ERR_NOMEM;
    for (uint32_t l = 0; l < kv->n_layer && !e.rc; l++) {
        enc_put(&e, kv_k_row(kv, l, 0), (size_t)n_tokens * kv->k_row);
        if (kv->type == KV_Q8_0) enc_put(&e, kv_v_row(kv, l, 0), (size_t)n_tokens * kv->k_row);
        else enc_v_transposed(&e, kv, l, n_tokens, chunk, cap);
        enc_progress(&e);
    }
    free(chunk);
    uint8_t sum[8];
    wr64(sum, util_xxh64_final(&e.h));
    if (!e.rc) e.rc = write(ud, sum, sizeof sum);
    return e.rc;
}

/* ---- atomic file writer ---- */

struct fsink {
    FILE *f;
    int err; /* errno of the first failure */
};

static int fsink_write(void *ud, const void *p, size_t n)
{
    struct fsink *s = ud;
    if (fwrite(p, 1, n, s->f) != n) {
        s->err = errno ? errno : EIO;
        return ERR_IO;
    }
    return 0;
}

/* fsync the directory holding path, so the rename itself survives a crash. Filesystems that
 * cannot sync a directory (EINVAL) are accepted: the rename is as durable as they allow. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return errno;
    int e = fsync(fd) != 0 && errno != EINVAL ? errno : 0;
    close(fd);
    return e;
}

/* durable: fsync the file before the rename and the directory after it. */
static int write_file(const char *path, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens,
                      uint32_t n_tokens, kv_snap_progress_fn progress, void *pud, bool durable, struct err_info *ei)
{
    if (!path || !*path) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "empty snapshot path");
    if (!kv || n_tokens > kv->n_ctx)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "cannot save %u positions of a %u-position cache", n_tokens,
                       kv ? kv->n_ctx : 0);
    size_t tl = strlen(path) + sizeof ".tmp-XXXXXX";
    char *tmp = malloc(tl);
    if (!tmp) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    snprintf(tmp, tl, "%s.tmp-XXXXXX", path);
    /* mkstemp: a fresh file of mode 0600 (a snapshot holds the conversation) beside the target,
     * so rename() replaces the target atomically on the same filesystem */
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot create a temporary file beside '%s': %s", path,
                       strerror(e));
    }
    struct fsink s = {fdopen(fd, "wb"), 0};
    if (!s.f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot write '%s': %s", path, strerror(e));
    }
    int rc = kv_snap_encode(kv, fingerprint, tokens, n_tokens, fsink_write, &s, progress, pud);
    if (!rc && fflush(s.f) != 0) s.err = errno ? errno : EIO;
    if (durable && !rc && !s.err && fsync(fileno(s.f)) != 0) s.err = errno ? errno : EIO;
    if (fclose(s.f) != 0 && !s.err) s.err = errno ? errno : EIO;
    if (rc == ERR_CANCELLED) {
        err_set(ei, rc, ERR_NO_OFFSET, "saving '%s' was cancelled", path);
    } else if (rc && rc != ERR_IO) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot encode the snapshot for '%s': %s", path, err_str(rc));
    } else if (rc || s.err) {
        rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "writing '%s' failed: %s", path, strerror(s.err ? s.err : EIO));
    } else if (rename(tmp, path) != 0) {
        rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot rename the temporary file to '%s': %s", path,
                     strerror(errno));
    }
    if (rc) {
        unlink(tmp);
    } else if (durable) {
        int e = sync_dir(path);
        if (e) rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "'%s' was written but its directory cannot be synced: %s",
                            path, strerror(e));
    }
    free(tmp);
    return rc;
}

int kv_snap_write(const char *path, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens,
                  uint32_t n_tokens, kv_snap_progress_fn progress, void *pud, struct err_info *ei)
{
    return write_file(path, kv, fingerprint, tokens, n_tokens, progress, pud, true, ei);
}

int kv_snap_write_fast(const char *path, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens,
                       uint32_t n_tokens, struct err_info *ei)
{
    return write_file(path, kv, fingerprint, tokens, n_tokens, NULL, NULL, false, ei);
}

/* ---- reader ---- */

int kv_snap_read_file(const char *path, uint64_t max_len, uint8_t **buf, size_t *len, struct err_info *ei)
{
    *buf = NULL;
    *len = 0;
    if (!path || !*path) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "empty snapshot path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot open snapshot '%s': %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot stat snapshot '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "snapshot '%s' is %s, not a regular file", path,
                     S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    } else if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = err_set(ei, ERR_SNAP_KV, ERR_NO_OFFSET, "snapshot '%s' is too large for this machine", path);
    }
    size_t n = rc ? 0 : (size_t)st.st_size;
    uint8_t *p = rc ? NULL : malloc(n ? n : 1);
    if (!rc && !p) rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory reading '%s' (%zu bytes)", path, n);
    size_t got = 0;
    /* the first bytes decide between "not a snapshot" and "too big for this session" */
    size_t first = n < KV_SNAP_HEADER ? n : KV_SNAP_HEADER;
    while (!rc && got < n) {
        size_t want = got < first ? first - got : n - got;
        ssize_t r = read(fd, p + got, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = err_set(ei, r < 0 ? ERR_IO : ERR_SNAP_CORRUPT, got, "reading snapshot '%s' failed: %s", path,
                         r < 0 ? strerror(errno) : "the file got shorter while being read");
            break;
        }
        got += (size_t)r;
        if (got == first && max_len && n > max_len) {
            if (n < sizeof g_magic || memcmp(p, g_magic, sizeof g_magic))
                rc = err_set(ei, ERR_SNAP_CORRUPT, 0, "'%s' is not an lmpipe snapshot (bad magic)", path);
            else
                rc = err_set(ei, ERR_SNAP_KV, ERR_NO_OFFSET,
                             "snapshot '%s' has %zu bytes, more than a snapshot of this session's context can "
                             "(%llu)", path, n, (unsigned long long)max_len);
        }
    }
    close(fd);
    if (rc) {
        free(p);
        return rc;
    }
    *buf = p;
    *len = n;
    return 0;
}

/* The version-1 header fields against each other and the file length (head: at least
 * KV_SNAP_HEADER bytes of a file of file_len bytes). */
static int v1_header(const uint8_t *buf, uint64_t file_len, struct kv_snap *o, struct err_info *ei)
{
    if (file_len < KV_SNAP_HEADER + 8)
        return err_set(ei, ERR_SNAP_CORRUPT, file_len,
                       "snapshot is truncated: %llu bytes, the header alone needs %u", (unsigned long long)file_len,
                       KV_SNAP_HEADER + 8);
    if (rd32(buf + OFF_HDR_LEN) != KV_SNAP_HEADER || rd64(buf + OFF_RESERVED) != 0)
        return err_set(ei, ERR_SNAP_CORRUPT, OFF_HDR_LEN, "snapshot header length or reserved field is wrong");
    uint32_t type = rd32(buf + OFF_TYPE);
    o->fingerprint = rd64(buf + OFF_FPRINT);
    o->n_ctx = rd32(buf + OFF_NCTX);
    o->n_layer = rd32(buf + OFF_NLAYER);
    o->kv_dim = rd32(buf + OFF_KVDIM);
    o->n_tokens = rd32(buf + OFF_NTOK);
    if (type >= KV_TYPE_COUNT_) return err_set(ei, ERR_SNAP_CORRUPT, OFF_TYPE, "unknown KV type %u", type);
    o->kv_type = (int)type;
    uint64_t row = row_bytes(o->kv_type, o->kv_dim);
    if (!row || o->n_layer == 0 || o->n_ctx == 0 || o->n_tokens > o->n_ctx || rd32(buf + OFF_ROW) != row)
        return err_set(ei, ERR_SNAP_CORRUPT, OFF_NCTX,
                       "impossible snapshot shape: %s, n_ctx %u, n_layer %u, kv_dim %u, %u tokens, row %u bytes",
                       kv_type_name(o->kv_type), o->n_ctx, o->n_layer, o->kv_dim, o->n_tokens, rd32(buf + OFF_ROW));
    uint64_t want = kv_snap_size(o->kv_type, o->n_layer, o->kv_dim, o->n_tokens);
    if (want != file_len || rd64(buf + OFF_TOTAL) != file_len)
        return err_set(ei, ERR_SNAP_CORRUPT, OFF_TOTAL, "snapshot of %u tokens should have %llu bytes, has %llu",
                       o->n_tokens, (unsigned long long)want, (unsigned long long)file_len);
    o->row_bytes = (size_t)row;
    o->tokens = buf + KV_SNAP_HEADER;
    return 0;
}

/* The token ids (head_len bytes of the file are in memory: they must include them). */
static int v1_tokens(const struct kv_snap *o, size_t head_len, struct err_info *ei)
{
    if (head_len < KV_SNAP_HEADER + 4ull * o->n_tokens)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "the token ids of the snapshot were not read");
    for (uint32_t i = 0; i < o->n_tokens; i++)
        if ((int32_t)rd32(o->tokens + 4 * (size_t)i) < 0)
            return err_set(ei, ERR_SNAP_CORRUPT, KV_SNAP_HEADER + 4ull * i, "token %u has a negative id", i);
    return 0;
}

/* Does the snapshot fit the reading session? The header's part... */
static int fit_header(const struct kv_snap *o, const struct kv_snap_expect *x, struct err_info *ei)
{
    if (o->fingerprint != x->fingerprint)
        return err_set(ei, ERR_SNAP_MODEL, OFF_FPRINT,
                       "snapshot was made with another model (fingerprint %016llx, this model %016llx)",
                       (unsigned long long)o->fingerprint, (unsigned long long)x->fingerprint);
    if (o->kv_type != x->kv_type)
        return err_set(ei, ERR_SNAP_KV, OFF_TYPE, "snapshot KV type is %s, this session's is %s",
                       kv_type_name(o->kv_type), kv_type_name(x->kv_type));
    if (o->n_layer != x->n_layer || o->kv_dim != x->kv_dim)
        return err_set(ei, ERR_SNAP_KV, OFF_NLAYER, "snapshot has %u layers x %u KV width, this session %u x %u",
                       o->n_layer, o->kv_dim, x->n_layer, x->kv_dim);
    if (o->n_tokens > x->n_ctx)
        return err_set(ei, ERR_SNAP_KV, OFF_NTOK, "snapshot holds %u tokens, this session's context only %u",
                       o->n_tokens, x->n_ctx);
    return 0;
}

/* ... and the token ids'. */
static int fit_tokens(const struct kv_snap *o, const struct kv_snap_expect *x, struct err_info *ei)
{
    for (uint32_t i = 0; i < o->n_tokens; i++)
        if ((uint32_t)kv_snap_token(o, i) >= x->n_vocab)
            return err_set(ei, ERR_SNAP_CORRUPT, KV_SNAP_HEADER + 4ull * i,
                           "token %u is id %d, outside the vocabulary of %u", i, kv_snap_token(o, i), x->n_vocab);
    return 0;
}

/* A version-1 file's recorded length against the real one: "truncated" says more than "checksum". */
static int v1_length(const uint8_t *buf, size_t head_len, uint64_t file_len, struct err_info *ei)
{
    if (rd32(buf + OFF_VERSION) != KV_SNAP_VERSION || head_len < KV_SNAP_HEADER || rd64(buf + OFF_TOTAL) == file_len)
        return 0;
    return err_set(ei, ERR_SNAP_CORRUPT, file_len, "snapshot is %s: %llu bytes, its header says %llu",
                   file_len < rd64(buf + OFF_TOTAL) ? "truncated" : "followed by extra bytes",
                   (unsigned long long)file_len, (unsigned long long)rd64(buf + OFF_TOTAL));
}

int kv_snap_parse(const uint8_t *buf, size_t len, const struct kv_snap_expect *expect, struct kv_snap *out,
                  struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    if (!buf && len) return err_set(ei, ERR_INVALID, 0, "NULL buffer");
    if (len < sizeof g_magic + 4 + 8)
        return err_set(ei, ERR_SNAP_CORRUPT, len, "not an lmpipe snapshot: only %zu bytes", len);
    if (memcmp(buf, g_magic, sizeof g_magic))
        return err_set(ei, ERR_SNAP_CORRUPT, 0, "not an lmpipe snapshot (bad magic)");
    uint32_t version = rd32(buf + OFF_VERSION);
    int rc = v1_length(buf, len, len, ei);
    if (rc) return rc;
    uint64_t sum = util_xxh64(buf, len - 8, 0);
    if (sum != rd64(buf + len - 8))
        return err_set(ei, ERR_SNAP_CORRUPT, len - 8,
                       "snapshot checksum mismatch (stored %016llx, computed %016llx): the file is damaged",
                       (unsigned long long)rd64(buf + len - 8), (unsigned long long)sum);
    if (version != KV_SNAP_VERSION)
        return err_set(ei, version > KV_SNAP_VERSION ? ERR_SNAP_VERSION : ERR_SNAP_CORRUPT, OFF_VERSION,
                       "snapshot format version %u is not supported (this lmpipe reads version %u)", version,
                       KV_SNAP_VERSION);
    out->version = version;
    out->checksum = sum;
    rc = v1_header(buf, len, out, ei);
    if (!rc) rc = v1_tokens(out, len, ei);
    if (!rc && expect) rc = fit_header(out, expect, ei);
    if (!rc && expect) rc = fit_tokens(out, expect, ei);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->data = out->tokens + 4 * (size_t)out->n_tokens;
    return 0;
}

uint64_t kv_snap_head_len(uint64_t file_len, uint32_t n_ctx)
{
    uint64_t most = KV_SNAP_HEADER + 4ull * n_ctx;
    return file_len < most ? file_len : most;
}

/* The same checks as kv_snap_parse but the checksum, in an order that never needs more than
 * kv_snap_head_len bytes: the token ids are looked at only once n_tokens fits the session. */
int kv_snap_peek(const uint8_t *head, size_t head_len, uint64_t file_len, const struct kv_snap_expect *expect,
                 struct kv_snap *out, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    if (!expect || (!head && head_len) || head_len > file_len ||
        head_len < kv_snap_head_len(file_len, expect->n_ctx))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "kv_snap_peek: bad arguments");
    if (file_len < sizeof g_magic + 4 + 8)
        return err_set(ei, ERR_SNAP_CORRUPT, file_len, "not an lmpipe snapshot: only %llu bytes",
                       (unsigned long long)file_len);
    if (memcmp(head, g_magic, sizeof g_magic))
        return err_set(ei, ERR_SNAP_CORRUPT, 0, "not an lmpipe snapshot (bad magic)");
    uint32_t version = rd32(head + OFF_VERSION);
    int rc = v1_length(head, head_len, file_len, ei);
    if (rc) return rc;
    if (version != KV_SNAP_VERSION)
        return err_set(ei, ERR_SNAP_VERSION, OFF_VERSION,
                       "snapshot format version %u is not supported (this lmpipe reads version %u)", version,
                       KV_SNAP_VERSION);
    out->version = version;
    rc = v1_header(head, file_len, out, ei);
    bool toks_read = !rc && head_len >= KV_SNAP_HEADER + 4ull * out->n_tokens;
    if (!rc && toks_read) rc = v1_tokens(out, head_len, ei);
    if (!rc) rc = fit_header(out, expect, ei);
    if (!rc && !toks_read) rc = v1_tokens(out, head_len, ei); /* head_len too short for the caller's n_ctx */
    if (!rc) rc = fit_tokens(out, expect, ei);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

int32_t kv_snap_token(const struct kv_snap *s, uint32_t i)
{
    return (int32_t)rd32(s->tokens + 4 * (size_t)i);
}

uint32_t kv_snap_common_prefix(const struct kv_snap *s, const int32_t *toks, size_t n)
{
    uint32_t i = 0;
    while (i < s->n_tokens && i < n && kv_snap_token(s, i) == toks[i]) i++;
    return i;
}

void kv_snap_restore(struct kv_cache *kv, const struct kv_snap *s, uint32_t n_cells)
{
    if (n_cells > s->n_tokens) n_cells = s->n_tokens;
    const size_t row = s->row_bytes, layer_bytes = 2 * (size_t)s->n_tokens * row;
    for (uint32_t l = 0; l < kv->n_layer; l++) {
        const uint8_t *k = s->data + l * layer_bytes, *v = k + (size_t)s->n_tokens * row;
        memcpy(kv_k_row(kv, l, 0), k, (size_t)n_cells * row);
        if (kv->type == KV_Q8_0) {
            memcpy(kv_v_row(kv, l, 0), v, (size_t)n_cells * row);
            continue;
        }
        for (uint32_t t = 0; t < n_cells;) {
            uint32_t m = vblk_run(t, n_cells, KV_VBLK);
            v_rows_put(kv, l, t, v + (size_t)t * row, m);
            t += m;
        }
    }
}

/* ---- streaming reader ---- */

/* A file read front to back at increasing offsets, every byte hashed once, in the order of the
 * file (so the checksum is the one kv_snap_parse computes). */
struct rdr {
    int fd;
    uint64_t off, end; /* next offset; the checksum's offset (file_len - 8) */
    struct util_xxh64 h;
};

/* Read the next n bytes into dst and hash them. */
static int rdr_take(struct rdr *r, void *dst, size_t n, struct err_info *ei)
{
    uint8_t *p = dst;
    if (n > r->end - r->off)
        return err_set(ei, ERR_SNAP_CORRUPT, r->off, "snapshot data runs past its checksum (inconsistent header)");
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(r->fd, p + got, n - got, (off_t)(r->off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return err_set(ei, ERR_IO, r->off + got, "reading the snapshot failed: %s", strerror(errno));
        if (k == 0)
            return err_set(ei, ERR_SNAP_CORRUPT, r->off + got, "the snapshot got shorter while it was read");
        got += (size_t)k;
    }
    util_xxh64_update(&r->h, p, n);
    r->off += n;
    return 0;
}

/* Rows [0, n) of a region of n rows of `row` bytes: rows [from, to) read straight into dst (their
 * place in the cache, contiguous from position `from`), the others through the bounce buffer
 * (only hashed). dst NULL: all through the bounce buffer. Pieces of at most bounce_rows rows, so
 * each piece is still in cache when it is hashed. */
static int rdr_rows(struct rdr *r, uint8_t *dst, uint32_t n, uint32_t from, uint32_t to, size_t row, uint8_t *bounce,
                    uint32_t bounce_rows, struct err_info *ei)
{
    int rc = 0;
    for (uint32_t t = 0; t < n && !rc;) {
        bool copy = dst && t >= from && t < to;
        uint32_t lim = copy ? to : (dst && t < from) ? from : n;
        uint32_t m = lim - t < bounce_rows ? lim - t : bounce_rows;
        rc = rdr_take(r, copy ? dst + (size_t)(t - from) * row : bounce, (size_t)m * row, ei);
        t += m;
    }
    return rc;
}

/* V rows of a transposed layer: read through the bounce buffer, positions [from, to) put into
 * their block. */
static int rdr_v_transposed(struct rdr *r, struct kv_cache *kv, uint32_t l, uint32_t n, uint32_t from, uint32_t to,
                            uint8_t *bounce, uint32_t bounce_rows, struct err_info *ei)
{
    const size_t row = kv->k_row;
    for (uint32_t t = 0; t < n;) {
        uint32_t m = vblk_run(t, n, bounce_rows);
        int rc = rdr_take(r, bounce, (size_t)m * row, ei);
        if (rc) return rc;
        uint32_t a = t > from ? t : from, b = t + m < to ? t + m : to;
        if (a < b) v_rows_put(kv, l, a, bounce + (size_t)(a - t) * row, b - a);
        t += m;
    }
    return 0;
}

/* Have the kernel map the pages of p[0..n) for writing, in one call, before a copy writes them.
 * Fresh cache memory is otherwise faulted in one 4 KiB page at a time as the copy reaches it,
 * and on virtual machines a fault costs more than copying its page (measured on this project's
 * VM: restoring 35 MB into a new session took ~180 ms page by page, ~90 ms populated first).
 * Best effort: where it is not available nothing happens. */
static void populate(void *p, size_t n)
{
#if defined(__linux__)
    const uintptr_t pg = 4096, a = (uintptr_t)p & ~(pg - 1), b = ((uintptr_t)p + n + pg - 1) & ~(pg - 1);
    if (n) (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

/* populate() the cells [from, to) of every layer of kv. */
static void populate_cells(struct kv_cache *kv, uint32_t from, uint32_t to)
{
    if (from >= to) return;
    for (uint32_t l = 0; l < kv->n_layer; l++) {
        populate(kv_k_row(kv, l, from), (size_t)(to - from) * kv->k_row);
        if (kv->type == KV_Q8_0) {
            populate(kv_v_row(kv, l, from), (size_t)(to - from) * kv->k_row);
        } else {
            uint32_t t_in;
            uint8_t *a = vblk_of(kv, l, from, &t_in), *b = vblk_of(kv, l, to - 1, &t_in);
            populate(a, (size_t)(b - a) + (size_t)kv->kv_dim * KV_VBLK * (kv->type == KV_F16 ? 2 : 4));
        }
    }
}

/* The layers' K and V regions of a file peeked into s (positions [from, to) into kv when given). */
static int stream_layers(struct rdr *r, const struct kv_snap *s, struct kv_cache *kv, uint32_t from, uint32_t to,
                         uint8_t *bounce, uint32_t bounce_rows, struct err_info *ei)
{
    const size_t row = s->row_bytes;
    int rc = 0;
    if (kv) populate_cells(kv, from, to);
    for (uint32_t l = 0; l < s->n_layer && !rc; l++) {
        rc = rdr_rows(r, kv ? kv_k_row(kv, l, from) : NULL, s->n_tokens, from, to, row, bounce, bounce_rows, ei);
        if (rc) break;
        if (!kv || kv->type == KV_Q8_0)
            rc = rdr_rows(r, kv ? kv_v_row(kv, l, from) : NULL, s->n_tokens, from, to, row, bounce, bounce_rows, ei);
        else
            rc = rdr_v_transposed(r, kv, l, s->n_tokens, from, to, bounce, bounce_rows, ei);
    }
    if (!rc && r->off != r->end)
        rc = err_set(ei, ERR_SNAP_CORRUPT, r->off, "snapshot has bytes its header does not describe");
    return rc;
}

int kv_snap_stream(int fd, const uint8_t *head, size_t head_len, uint64_t file_len, const struct kv_snap *s,
                   struct kv_cache *kv, uint32_t from, uint32_t to, struct err_info *ei)
{
    bool bad = file_len < 8 || head_len > file_len || (head_len && !head);
    if (s) bad = bad || from > to || to > s->n_tokens || head_len < KV_SNAP_HEADER + 4ull * s->n_tokens;
    if (s && kv)
        bad = bad || kv->type != s->kv_type || kv->n_layer != s->n_layer || kv->kv_dim != s->kv_dim || to > kv->n_ctx;
    if (bad) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "kv_snap_stream: bad arguments");
    struct rdr r;
    memset(&r, 0, sizeof r);
    r.fd = fd;
    r.end = file_len - 8;
    util_xxh64_init(&r.h, 0);
    /* What is in memory already: the header and token ids (the data after them is read again,
     * into place), or without a structure all that was read. */
    uint64_t known = s ? KV_SNAP_HEADER + 4ull * s->n_tokens : head_len;
    if (known > r.end) known = r.end;
    util_xxh64_update(&r.h, head, (size_t)known);
    r.off = known;
    size_t row = s ? s->row_bytes : 1, cap = (size_t)1 << 17;
    if (cap < row) cap = row;
    uint8_t *bounce = malloc(cap);
    if (!bounce) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory reading a snapshot");
    int rc = 0;
    if (s) {
        rc = stream_layers(&r, s, kv, kv ? from : 0, kv ? to : 0, bounce, (uint32_t)(cap / row), ei);
    } else {
        while (!rc && r.off < r.end) {
            uint64_t left = r.end - r.off;
            rc = rdr_take(&r, bounce, left < cap ? (size_t)left : cap, ei);
        }
    }
    free(bounce);
    if (rc) return rc;
    uint8_t stored[8];
    for (size_t got = 0; got < 8;) {
        ssize_t k = pread(fd, stored + got, 8 - got, (off_t)(r.end + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return err_set(ei, k < 0 ? ERR_IO : ERR_SNAP_CORRUPT, r.end + got, "reading the snapshot's checksum failed: %s",
                           k < 0 ? strerror(errno) : "the file got shorter");
        got += (size_t)k;
    }
    uint64_t sum = util_xxh64_final(&r.h);
    if (sum != rd64(stored))
        return err_set(ei, ERR_SNAP_CORRUPT, r.end,
                       "snapshot checksum mismatch (stored %016llx, computed %016llx): the file is damaged",
                       (unsigned long long)rd64(stored), (unsigned long long)sum);
    return 0;
}
