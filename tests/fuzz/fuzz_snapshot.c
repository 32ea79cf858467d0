/* fuzz_snapshot: libFuzzer harness for the KV snapshot readers (src/kv/kv_snap.c): the buffer
 * parser kv_snap_parse, and the piecewise reader the engine loads with, kv_snap_peek on the first
 * bytes and kv_snap_stream over a file descriptor (a memfd holding the input).
 *
 * Every input is parsed twice: as it is, and with its checksum (and, for a version-1 header, its
 * length field) recomputed, so mutations get past the checksum and reach the field checks and the
 * fit with the session. Each parse runs against three sessions (F32, F16, Q8_0 caches of 2 layers,
 * KV width 64, 64 positions, 512-token vocabulary, the seeds' fingerprint) and without one.
 *
 * What it checks beyond "no crash" (ASan/UBSan turn any bad read into a crash):
 *  - a refusal is one of the four snapshot kinds (or the NULL-buffer case), is recorded in the
 *    err_info with a message and an offset inside the input, hands out nothing (n_tokens 0), and
 *    gives the same code without an err_info;
 *  - an acceptance is what it says: the size formula equals the input length, the tokens fit the
 *    session's context and vocabulary, restoring it into the matching cache reads only inside the
 *    input, and encoding that cache again gives back the input's bytes (all of them when the
 *    writer's context equals the session's, else all but that field and the checksum);
 *  - at most one of the three sessions accepts (the KV type decides);
 *  - the piecewise reader agrees with the parser: peek refuses nothing the parser accepts (and
 *    reads the same fields), a peek-accepted input with a valid checksum is parser-accepted, and
 *    streaming it restores exactly the cells kv_snap_restore does, while a bad checksum is always
 *    ERR_SNAP_CORRUPT from the stream.
 * A broken invariant calls abort() so libFuzzer saves the input. */
#define _GNU_SOURCE /* memfd_create */
#include "kv/kv.h"
#include "util/err.h"
#include "util/hash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_snapshot: invariant failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#define FP 0x5EED5EED5EED5EEDull /* tests/fuzz/seeds_snapshot.c writes snapshots of this "model" */
#define N_LAYER 2u
#define KV_DIM 64u
#define N_CTX 64u
#define N_VOCAB 512u

static struct kv_cache g_kv[KV_TYPE_COUNT_], g_kv2[KV_TYPE_COUNT_];
static int g_fd = -1; /* a memfd holding the current input */

/* Bytes of a cache's K and V arrays. */
static size_t k_bytes(const struct kv_cache *kv) { return (size_t)kv->n_layer * kv->n_ctx * kv->k_row; }
static size_t v_bytes(const struct kv_cache *kv)
{
    if (kv->type == KV_Q8_0) return k_bytes(kv);
    return (size_t)kv->n_layer * kv->n_vblk * kv->kv_dim * KV_VBLK * (kv->type == KV_F16 ? 2 : 4);
}

static void zero_kv(struct kv_cache *kv)
{
    memset(kv->k, 0, k_bytes(kv));
    memset(kv->v, 0, v_bytes(kv));
}

struct cmp {
    const uint8_t *want;
    size_t len, pos;
    int skip_ctx; /* the writer's n_ctx differs from the session's: skip it and the checksum */
    int diff;
};

static int cmp_write(void *ud, const void *p, size_t n)
{
    struct cmp *c = ud;
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++, c->pos++) {
        if (c->pos >= c->len) {
            c->diff = 1;
            continue;
        }
        int ignored = c->skip_ctx && ((c->pos >= 28 && c->pos < 32) || c->pos >= c->len - 8);
        if (!ignored && b[i] != c->want[c->pos]) c->diff = 1;
    }
    return 0;
}

static void accepted(const uint8_t *buf, size_t len, const struct kv_snap_expect *x, const struct kv_snap *s)
{
    CHECK(s->version == KV_SNAP_VERSION);
    CHECK(kv_snap_size(s->kv_type, s->n_layer, s->kv_dim, s->n_tokens) == len);
    CHECK(s->n_tokens <= s->n_ctx);
    if (!x) return;
    CHECK(s->n_tokens <= x->n_ctx && s->kv_type == x->kv_type && s->fingerprint == x->fingerprint);
    int32_t toks[N_CTX];
    for (uint32_t i = 0; i < s->n_tokens; i++) {
        toks[i] = kv_snap_token(s, i);
        CHECK(toks[i] >= 0 && (uint32_t)toks[i] < x->n_vocab);
    }
    struct kv_cache *kv = &g_kv[x->kv_type];
    zero_kv(kv);
    kv_snap_restore(kv, s, s->n_tokens);
    struct cmp c = {buf, len, 0, s->n_ctx != N_CTX, 0};
    CHECK(kv_snap_encode(kv, s->fingerprint, toks, s->n_tokens, cmp_write, &c, NULL, NULL) == 0);
    CHECK(!c.diff && c.pos == len);
}

/* The piecewise reader on the same bytes (the input is in g_fd), against the parser's verdict
 * prc (and its result ps when 0). */
static void piecewise(const uint8_t *buf, size_t len, const struct kv_snap_expect *x, int prc, const struct kv_snap *ps)
{
    size_t hl = (size_t)kv_snap_head_len(len, x->n_ctx);
    struct kv_snap s;
    struct err_info ei;
    err_clear(&ei);
    int rc = kv_snap_peek(buf, hl, len, x, &s, &ei);
    CHECK(rc == 0 || rc == ERR_SNAP_CORRUPT || rc == ERR_SNAP_VERSION || rc == ERR_SNAP_MODEL || rc == ERR_SNAP_KV ||
          (rc == ERR_INVALID && !buf));
    if (rc) {
        CHECK(prc != 0 && ei.code == rc && ei.msg[0] && s.n_tokens == 0 && s.tokens == NULL);
        return;
    }
    CHECK(s.data == NULL && kv_snap_size(s.kv_type, s.n_layer, s.kv_dim, s.n_tokens) == len && s.n_tokens <= x->n_ctx);
    if (prc == 0)
        CHECK(s.n_tokens == ps->n_tokens && s.kv_type == ps->kv_type && s.n_ctx == ps->n_ctx &&
              s.fingerprint == ps->fingerprint && s.row_bytes == ps->row_bytes);
    bool sum_ok = util_xxh64(buf, len - 8, 0) == ((uint64_t)buf[len - 8] | (uint64_t)buf[len - 7] << 8 |
                                                  (uint64_t)buf[len - 6] << 16 | (uint64_t)buf[len - 5] << 24 |
                                                  (uint64_t)buf[len - 4] << 32 | (uint64_t)buf[len - 3] << 40 |
                                                  (uint64_t)buf[len - 2] << 48 | (uint64_t)buf[len - 1] << 56);
    CHECK(sum_ok == (prc == 0));
    if (g_fd < 0) return;
    struct kv_cache *kv = &g_kv2[x->kv_type];
    zero_kv(kv);
    err_clear(&ei);
    rc = kv_snap_stream(g_fd, buf, hl, len, &s, kv, 0, s.n_tokens, &ei);
    CHECK(rc == (sum_ok ? 0 : ERR_SNAP_CORRUPT));
    if (rc) {
        CHECK(ei.code == rc && ei.msg[0]);
        return;
    }
    /* g_kv[type] holds kv_snap_restore's result of the same bytes (accepted() just ran) */
    CHECK(!memcmp(kv->k, g_kv[x->kv_type].k, k_bytes(kv)) && !memcmp(kv->v, g_kv[x->kv_type].v, v_bytes(kv)));
    CHECK(kv_snap_stream(g_fd, buf, hl, len, NULL, NULL, 0, 0, NULL) == 0);
}

/* One parse with checks; returns 1 when accepted. */
static int one(const uint8_t *buf, size_t len, const struct kv_snap_expect *x)
{
    struct kv_snap s;
    struct err_info ei;
    err_clear(&ei);
    int rc = kv_snap_parse(buf, len, x, &s, &ei);
    struct kv_snap s2;
    CHECK(kv_snap_parse(buf, len, x, &s2, NULL) == rc);
    if (rc == 0) {
        CHECK(ei.code == 0);
        accepted(buf, len, x, &s);
        if (x) piecewise(buf, len, x, rc, &s);
        return 1;
    }
    if (x && buf) piecewise(buf, len, x, rc, NULL);
    CHECK(rc == ERR_SNAP_CORRUPT || rc == ERR_SNAP_VERSION || rc == ERR_SNAP_MODEL || rc == ERR_SNAP_KV ||
          (rc == ERR_INVALID && !buf));
    CHECK(ei.code == rc && ei.msg[0] != 0);
    CHECK(ei.offset == ERR_NO_OFFSET || ei.offset <= len);
    CHECK(s.n_tokens == 0 && s.tokens == NULL && s.data == NULL);
    return 0;
}

static void all_sessions(const uint8_t *buf, size_t len)
{
    if (g_fd >= 0) { /* the file the piecewise reader streams */
        CHECK(ftruncate(g_fd, 0) == 0);
        CHECK(!len || pwrite(g_fd, buf, len, 0) == (ssize_t)len);
    }
    int n_ok = 0;
    for (int t = 0; t < KV_TYPE_COUNT_; t++) {
        struct kv_snap_expect x = {FP, t, N_LAYER, KV_DIM, N_CTX, N_VOCAB};
        n_ok += one(buf, len, &x);
    }
    CHECK(n_ok <= 1);
    one(buf, len, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_kv[0].k) {
        for (int t = 0; t < KV_TYPE_COUNT_; t++)
            CHECK(kv_init(&g_kv[t], t, N_LAYER, N_CTX, KV_DIM) == 0 && kv_init(&g_kv2[t], t, N_LAYER, N_CTX, KV_DIM) == 0);
        g_fd = memfd_create("fuzz_snapshot", 0); /* without it the stream checks are skipped */
    }
    uint8_t *buf = malloc(size ? size : 1); /* exact size: ASan sees a read past the end */
    CHECK(buf);
    if (size) memcpy(buf, data, size);
    all_sessions(size ? buf : NULL, size);
    if (size >= 20) { /* the same bytes with a valid length field and checksum */
        if (size >= 64 && buf[8] == 1 && !buf[9] && !buf[10] && !buf[11])
            for (int i = 0; i < 8; i++) buf[48 + i] = (uint8_t)((uint64_t)size >> (8 * i));
        uint64_t h = util_xxh64(buf, size - 8, 0);
        for (int i = 0; i < 8; i++) buf[size - 8 + i] = (uint8_t)(h >> (8 * i));
        all_sessions(buf, size);
    }
    free(buf);
    return 0;
}
