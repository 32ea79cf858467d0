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
 * Byte order: every field, token id and cache element is little-endian; caches are copied as
 * they are in memory, so this file assumes a little-endian host (as the GGUF loader does). */
#define _POSIX_C_SOURCE 200809L
#include "kv.h"

#include "../util/hash.h"
#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* One position's V row <-> its cells in a transposed block (stride KV_VBLK elements), for
 * elements of el = 2 or 4 bytes: typed copies, not a memcpy call per element. */
static void cells_gather(uint8_t *row, const uint8_t *cell, uint32_t n, size_t el)
{
    if (el == 2) {
        const uint16_t *c = (const uint16_t *)(const void *)cell;
        uint16_t *r = (uint16_t *)(void *)row;
        for (uint32_t d = 0; d < n; d++) r[d] = c[(size_t)d * KV_VBLK];
    } else {
        const uint32_t *c = (const uint32_t *)(const void *)cell;
        uint32_t *r = (uint32_t *)(void *)row;
        for (uint32_t d = 0; d < n; d++) r[d] = c[(size_t)d * KV_VBLK];
    }
}

static void cells_scatter(uint8_t *cell, const uint8_t *row, uint32_t n, size_t el)
{
    if (el == 2) {
        uint16_t *c = (uint16_t *)(void *)cell;
        for (uint32_t d = 0; d < n; d++) memcpy(&c[(size_t)d * KV_VBLK], row + 2 * (size_t)d, 2);
    } else {
        uint32_t *c = (uint32_t *)(void *)cell;
        for (uint32_t d = 0; d < n; d++) memcpy(&c[(size_t)d * KV_VBLK], row + 4 * (size_t)d, 4);
    }
}

/* V rows of positions 0..n-1 of a transposed layer, gathered into chunks of whole rows. */
static void enc_v_transposed(struct enc *e, const struct kv_cache *kv, uint32_t l, uint32_t n, uint8_t *chunk,
                             size_t cap)
{
    const size_t el = kv->type == KV_F16 ? 2 : 4, row = kv->k_row;
    const uint8_t *base = kv_v_layer(kv, l);
    size_t used = 0;
    for (uint32_t t = 0; t < n && !e->rc; t++) {
        const uint8_t *cell = base + (((size_t)(t / KV_VBLK) * kv->kv_dim * KV_VBLK) + t % KV_VBLK) * el;
        cells_gather(chunk + used, cell, kv->kv_dim, el);
        used += row;
        if (used + row > cap || t + 1 == n) {
            enc_put(e, chunk, used);
            used = 0;
        }
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

int kv_snap_write(const char *path, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *tokens,
                  uint32_t n_tokens, kv_snap_progress_fn progress, void *pud, struct err_info *ei)
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
    if (!rc && !s.err && fsync(fileno(s.f)) != 0) s.err = errno ? errno : EIO;
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
    } else {
        int e = sync_dir(path);
        if (e) rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "'%s' was written but its directory cannot be synced: %s",
                            path, strerror(e));
    }
    free(tmp);
    return rc;
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

/* The version-1 header fields against each other and the file length. */
static int parse_v1(const uint8_t *buf, size_t len, struct kv_snap *o, struct err_info *ei)
{
    if (len < KV_SNAP_HEADER + 8)
        return err_set(ei, ERR_SNAP_CORRUPT, len, "snapshot is truncated: %zu bytes, the header alone needs %u", len,
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
    if (want != len || rd64(buf + OFF_TOTAL) != len)
        return err_set(ei, ERR_SNAP_CORRUPT, OFF_TOTAL, "snapshot of %u tokens should have %llu bytes, has %zu",
                       o->n_tokens, (unsigned long long)want, len);
    o->row_bytes = (size_t)row;
    o->tokens = buf + KV_SNAP_HEADER;
    o->data = o->tokens + 4 * (size_t)o->n_tokens;
    for (uint32_t i = 0; i < o->n_tokens; i++)
        if ((int32_t)rd32(o->tokens + 4 * (size_t)i) < 0)
            return err_set(ei, ERR_SNAP_CORRUPT, KV_SNAP_HEADER + 4ull * i, "token %u has a negative id", i);
    return 0;
}

/* Does the snapshot fit the reading session? */
static int check_fit(const struct kv_snap *o, const struct kv_snap_expect *x, struct err_info *ei)
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
    for (uint32_t i = 0; i < o->n_tokens; i++)
        if ((uint32_t)kv_snap_token(o, i) >= x->n_vocab)
            return err_set(ei, ERR_SNAP_CORRUPT, KV_SNAP_HEADER + 4ull * i,
                           "token %u is id %d, outside the vocabulary of %u", i, kv_snap_token(o, i), x->n_vocab);
    return 0;
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
    if (version == KV_SNAP_VERSION && len >= KV_SNAP_HEADER && rd64(buf + OFF_TOTAL) != len)
        return err_set(ei, ERR_SNAP_CORRUPT, len, "snapshot is %s: %zu bytes, its header says %llu",
                       len < rd64(buf + OFF_TOTAL) ? "truncated" : "followed by extra bytes", len,
                       (unsigned long long)rd64(buf + OFF_TOTAL));
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
    int rc = parse_v1(buf, len, out, ei);
    if (!rc && expect) rc = check_fit(out, expect, ei);
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
        const size_t el = kv->type == KV_F16 ? 2 : 4;
        uint8_t *base = kv->v + (size_t)l * kv->n_vblk * kv->kv_dim * KV_VBLK * el;
        for (uint32_t t = 0; t < n_cells; t++) {
            uint8_t *cell = base + ((size_t)(t / KV_VBLK) * kv->kv_dim * KV_VBLK + t % KV_VBLK) * el;
            cells_scatter(cell, v + (size_t)t * row, kv->kv_dim, el);
        }
    }
}
