/* eng_snap: what a session keeps beyond one request: snapshot files (save, load), the disk
 * prompt cache around a prompt's evaluation, and the context shift.
 *
 * Loading, and why it is safe: kv_snap_peek checks the header and token ids against the session
 * (every refusal it makes is confirmed by the file's checksum first, so damage is always
 * snapshot_corrupt, whatever field it hit). Then the cells are copied:
 *  - into a session that holds nothing (a new session, a new process: the case that matters for
 *    time to first token) in one pass straight from the file, checksumming every byte on the
 *    way (kv_snap_stream); the copied cells count only once the checksum matched, so a failure
 *    leaves the session as it was: empty;
 *  - into a session that holds tokens, from a buffer holding the whole file that kv_snap_parse
 *    verified completely, so nothing of the session is touched before everything was checked
 *    (the rare case: it costs the file's size in memory while it runs);
 *  - for the prompt cache, in one pass into the positions after the prefix the session already
 *    shares with the prompt; a failure forgets those positions only (the prompt is then evaluated
 *    as if there were no entry: the output never depends on the cache).
 * Token ids are copied into the session only after all of it succeeded. */
#include "eng_int.h"

#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert((int)ENG_KV_F32 == (int)KV_F32 && (int)ENG_KV_F16 == (int)KV_F16 &&
                   (int)ENG_KV_Q8_0 == (int)KV_Q8_0 && (int)ENG_KV_TYPES == (int)KV_TYPE_COUNT_,
               "eng's KV type numbers are kv's");

const char *eng_kv_type_name(int type) { return kv_type_name(type); }

int eng_kv_type_parse(const char *s, int *out) { return kv_type_parse(s, out); }

/* ---------------- reading a snapshot file ---------------- */

struct snap_file {
    int fd;
    uint64_t len;
    uint8_t *head; /* [head_len] the file's first bytes: header and token ids */
    size_t head_len;
    struct kv_snap snap; /* peeked: everything but the checksum is checked */
};

static void snap_close(struct snap_file *f)
{
    if (f->fd >= 0) close(f->fd);
    free(f->head);
    f->fd = -1;
    f->head = NULL;
}

/* pread all of buf[0..n) from offset 0; 0, or the errno (EIO for a file that got shorter). */
static int read_head(int fd, uint8_t *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? errno : EIO;
        got += (size_t)k;
    }
    return 0;
}

/* Open path and peek its header and token ids against session s. A refusal by model, KV type,
 * shape or version is believed only after the whole file's checksum was verified. */
static int snap_open(struct eng_session *s, const char *path, struct snap_file *f, struct err_info *ei)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (!path || !*path) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "empty snapshot path");
    if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot open snapshot '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return err_set(ei, ERR_IO, ERR_NO_OFFSET, "cannot stat snapshot '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(ei, ERR_IO, ERR_NO_OFFSET, "snapshot '%s' is %s, not a regular file", path,
                       S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    f->len = (uint64_t)st.st_size;
    struct kv_snap_expect x;
    model_snap_expect(&s->em->model, &s->st, &x);
    f->head_len = (size_t)kv_snap_head_len(f->len, x.n_ctx);
    if (!(f->head = malloc(f->head_len ? f->head_len : 1)))
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory reading '%s'", path);
    int e = read_head(f->fd, f->head, f->head_len);
    if (e)
        return err_set(ei, e == EIO ? ERR_SNAP_CORRUPT : ERR_IO, ERR_NO_OFFSET, "reading snapshot '%s' failed: %s",
                       path, e == EIO ? "the file got shorter while it was read" : strerror(e));
    struct err_info pe;
    err_clear(&pe);
    int rc = kv_snap_peek(f->head, f->head_len, f->len, &x, &f->snap, &pe);
    if (rc == 0) return 0;
    if (rc != ERR_SNAP_CORRUPT) { /* provisional: is the file whole? */
        struct err_info ve;
        err_clear(&ve);
        int vrc = kv_snap_stream(f->fd, f->head, f->head_len, f->len, NULL, NULL, 0, 0, &ve);
        if (vrc) pe = ve, rc = vrc;
        else if (rc == ERR_SNAP_VERSION && f->head_len >= 12 && !f->head[8] && !f->head[9] && !f->head[10] && !f->head[11])
            rc = ERR_SNAP_CORRUPT; /* version 0 was never written */
    }
    return err_set(ei, rc, pe.offset, "snapshot '%s': %s", path, pe.msg);
}

/* Copy tokens [from, to) of the snapshot into the session and make them its cached prefix. */
static void snap_commit(struct eng_session *s, const struct kv_snap *snap, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) s->tokens[i] = kv_snap_token(snap, i);
    s->n_tokens = s->n_clean = to;
    s->has_logits = false;
}

/* Positions of the snapshot a load restores: all, or its common prefix with the next prompt,
 * at most n - 1 (the prompt's last token is evaluated for its logits). */
static uint32_t snap_want(const struct kv_snap *snap, const int32_t *toks, size_t n)
{
    if (!toks) return snap->n_tokens;
    uint32_t c = kv_snap_common_prefix(snap, toks, n);
    return n && c >= n ? (uint32_t)n - 1 : c;
}

/* The whole file in memory, parsed and verified completely, then restored: for a session whose
 * cache must stay as it is should anything be wrong. */
static int load_buffered(struct eng_session *s, const char *path, const int32_t *toks, size_t n, uint32_t *want,
                         struct err_info *ei)
{
    struct kv_snap_expect x;
    model_snap_expect(&s->em->model, &s->st, &x);
    uint64_t max_len = kv_snap_size(x.kv_type, x.n_layer, x.kv_dim, x.n_ctx);
    uint8_t *buf;
    size_t len;
    struct err_info e2;
    err_clear(&e2);
    int rc = kv_snap_read_file(path, max_len, &buf, &len, &e2); /* its messages name the path */
    if (rc) return err_set(ei, rc, e2.offset, "%s", e2.msg);
    struct kv_snap snap;
    if ((rc = kv_snap_parse(buf, len, &x, &snap, &e2))) {
        free(buf);
        return err_set(ei, rc, e2.offset, "snapshot '%s': %s", path, e2.msg);
    }
    *want = snap_want(&snap, toks, n);
    if (*want) {
        kv_snap_restore(&s->st.kv, &snap, *want);
        snap_commit(s, &snap, 0, *want);
    }
    free(buf);
    return 0;
}

int eng_session_load(struct eng_session *s, const char *path, const int32_t *toks, size_t n,
                     uint32_t *n_restored, struct err_info *ei)
{
    if (n_restored) *n_restored = 0;
    struct snap_file f;
    int rc = snap_open(s, path, &f, ei);
    uint32_t want = rc ? 0 : snap_want(&f.snap, toks, n);
    if (rc || (toks && want == 0)) { /* refused, or nothing in it is of use: not read further */
        snap_close(&f);
        return rc;
    }
    if (s->n_tokens == 0) {
        struct err_info e2;
        err_clear(&e2);
        rc = kv_snap_stream(f.fd, f.head, f.head_len, f.len, &f.snap, &s->st.kv, 0, want, &e2);
        if (rc) err_set(ei, rc, e2.offset, "snapshot '%s': %s", path, e2.msg);
        else snap_commit(s, &f.snap, 0, want);
        snap_close(&f);
    } else {
        snap_close(&f);
        rc = load_buffered(s, path, toks, n, &want, ei);
    }
    if (!rc && n_restored) *n_restored = want;
    return rc;
}

int eng_session_save(struct eng_session *s, const char *path, uint32_t *n_tokens, uint64_t *bytes,
                     struct err_info *ei)
{
    uint32_t n = s->n_clean < s->n_tokens ? s->n_clean : s->n_tokens;
    int rc = kv_snap_write(path, &s->st.kv, s->em->model.fingerprint, s->tokens, n, NULL, NULL, ei);
    if (rc) return rc;
    if (n_tokens) *n_tokens = n;
    if (bytes) *bytes = kv_snap_size(s->st.kv.type, s->st.kv.n_layer, s->st.kv.kv_dim, n);
    return 0;
}

/* ---------------- the prompt cache ---------------- */

struct eng_pcache {
    struct kv_pcache kv;
};

int eng_pcache_open(struct eng_pcache **out, const char *dir, uint32_t min_tokens, uint64_t max_bytes,
                    struct err_info *ei)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    int rc = kv_pcache_open(&(*out)->kv, dir, min_tokens, max_bytes, ei);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

void eng_pcache_free(struct eng_pcache *pc)
{
    if (!pc) return;
    kv_pcache_close(&pc->kv);
    free(pc);
}

void eng_pcache_stats(const struct eng_pcache *pc, struct eng_pcache_stats *out)
{
    memset(out, 0, sizeof *out);
    const struct kv_pcache_stats *k = &pc->kv.st;
    out->dir = pc->kv.root;
    out->min_tokens = pc->kv.min_tokens;
    out->max_bytes = pc->kv.max_bytes;
    out->lookups = k->lookups;
    out->hits = k->hits;
    out->misses = k->misses;
    out->hit_tokens = k->hit_tokens;
    out->stores = k->stores;
    out->evictions = k->evictions;
    out->errors = k->errors;
    out->bytes_read = k->bytes_read;
    out->bytes_written = k->bytes_written;
    out->entries = k->entries;
    out->disk_bytes = k->disk_bytes;
}

void eng_session_set_pcache(struct eng_session *s, struct eng_pcache *pc) { s->pcache = pc; }

/* Restore positions [mem, want) of entry `path` into s, checksumming the whole file on the way.
 * 0 and *want (possibly lowered: the entry may have been replaced since it was found), or an
 * error after which positions >= mem are forgotten. */
static int pcache_restore(struct eng_session *s, const char *path, const int32_t *toks, size_t n, uint32_t mem,
                          uint32_t *want, struct err_info *ei)
{
    struct snap_file f;
    int rc = snap_open(s, path, &f, ei);
    if (!rc) {
        uint32_t w = snap_want(&f.snap, toks, n);
        if (w < *want) *want = w;
        if (*want > mem) {
            rc = kv_snap_stream(f.fd, f.head, f.head_len, f.len, &f.snap, &s->st.kv, mem, *want, ei);
            s->pcache->kv.st.bytes_read += f.len;
            if (!rc) snap_commit(s, &f.snap, mem, *want);
        }
    }
    snap_close(&f);
    if (rc) eng_session_cut(s, mem);
    return rc;
}

void eng_pcache_before(struct eng_session *s, const int32_t *toks, size_t n)
{
    struct eng_pcache *pc = s->pcache;
    if (!pc) return;
    uint32_t mem = eng_reuse_len(s, toks, n), min = pc->kv.min_tokens;
    if (n < min || n - mem < min) return; /* short, or mostly in memory: not worth a lookup */
    struct kv_pcache_stats *st = &pc->kv.st;
    st->lookups++;
    struct kv_snap_expect x;
    model_snap_expect(&s->em->model, &s->st, &x);
    char path[4096];
    uint32_t common = 0;
    struct err_info ei;
    err_clear(&ei);
    int rc = kv_pcache_find(&pc->kv, &x, toks, n, mem, path, sizeof path, &common, &ei);
    uint32_t want = common >= n ? (uint32_t)n - 1 : common;
    if (rc == 1 && want > mem) rc = pcache_restore(s, path, toks, n, mem, &want, &ei);
    else if (rc == 1) rc = 0, want = mem;
    if (rc < 0) {
        if (rc <= ERR_SNAP_MODEL && rc >= ERR_SNAP_KV) kv_pcache_drop(&pc->kv, path);
        if (rc != ERR_IO) LOG_WARN("prompt cache: %s (evaluating the prompt instead)", ei.msg);
    }
    if (rc == 0 && want > mem) {
        st->hits++;
        st->hit_tokens += want - mem;
        kv_pcache_touch(path);
    } else {
        st->misses++;
    }
}

void eng_pcache_after(struct eng_session *s, const int32_t *toks, size_t n)
{
    struct eng_pcache *pc = s->pcache;
    if (!pc || n < pc->kv.min_tokens || eng_reuse_len(s, toks, n) < n) return;
    struct err_info ei;
    err_clear(&ei);
    if (kv_pcache_store(&pc->kv, &s->st.kv, s->em->model.fingerprint, toks, (uint32_t)n, &ei) < 0)
        LOG_WARN("prompt cache: cannot keep the prompt: %s", ei.msg);
}

/* ---------------- context shift ---------------- */

int eng_ctx_full_shift(void *ud, struct eng_session *s, int event, size_t need, struct err_info *ei)
{
    const struct eng_ctx_shift *c = ud;
    if (event != ENG_CTX_GENERATE || !c) return eng_ctx_full_default(NULL, s, event, need, ei);
    uint32_t n_past = s->n_tokens, keep = c->keep;
    uint32_t n_discard = keep < n_past ? (n_past - keep) / 2 : 0; /* llama.cpp's n_left / 2 */
    if (n_discard == 0)
        return err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                       "context_length_exceeded: the context of %u tokens is full and context_shift keep %u "
                       "leaves nothing to drop",
                       s->st.n_ctx, keep);
    int rc = model_kv_shift(&s->em->model, &s->st, n_past, keep, n_discard);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "context shift failed: %s", err_str(rc));
    memmove(s->tokens + keep, s->tokens + keep + n_discard, (size_t)(n_past - keep - n_discard) * sizeof *s->tokens);
    s->n_tokens = n_past - n_discard;
    if (s->n_clean > keep) s->n_clean = keep;
    s->has_logits = false;
    s->n_shifts++;
    LOG_DEBUG("context shift: kept %u, dropped %u, %u cached", keep, n_discard, s->n_tokens);
    return 0;
}
