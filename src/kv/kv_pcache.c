/* kv_pcache: the prompt cache directory: entry names, lookups that read only headers and token
 * ids, stores, least-recently-used eviction. kv.h describes the layout and the rules.
 *
 * Why these choices:
 *  - An entry is an ordinary snapshot file (protocol/SNAPSHOT.md), so everything that protects a
 *    snapshot load protects an entry load (fingerprint, KV type, shapes, checksum), and the
 *    engine loads both with the same code.
 *  - Buckets keyed by the first min_tokens ids: a lookup opens only the entries that can share
 *    at least min_tokens tokens with the prompt, whatever the directory holds.
 *  - Concurrency without locks: entries appear by rename (never half-written), are never changed
 *    in place, and disappear by unlink, which does not disturb a reader that has them open.
 *    Two processes may write the same entry (the second rename wins; both files are whole) or
 *    evict at once (one unlink finds nothing: fine). A bucket directory removed while empty may
 *    race with a writer creating its temporary file there: the writer makes it again and retries.
 *  - mtime is the recency: a hit touches its entry; eviction removes the oldest first.
 *  - Only names kv_pcache_name recognises, at the depth it expects, are ever removed, so pointing
 *    DIR at a directory with other files in it cannot delete them. */
#define _POSIX_C_SOURCE 200809L
#include "kv.h"

#include "../util/hash.h"
#include "../util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PC_PATH 4096

/* ---------------- names ---------------- */

/* Exactly 16 lower-case hex digits. */
static int hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* A decimal in [0, 2^32) of exactly len digits, no sign, no leading zero (but "0"). */
static int dec32(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10 || (len > 1 && s[0] == '0')) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

static bool tmp_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int kv_pcache_name(const char *name, size_t len, struct kv_pcache_name *out)
{
    memset(out, 0, sizeof *out);
    if (!name || len < 16 || hex16(name, &out->hash)) goto none;
    if (len == 16) return KV_PCN_BUCKET;
    if (name[16] != '-') goto none;
    const char *p = name + 17;
    size_t rest = len - 17;
    for (int t = 0; t < KV_TYPE_COUNT_; t++) { /* "<type>-m<min>" */
        const char *tn = kv_type_name(t);
        size_t tl = strlen(tn);
        if (rest > tl + 2 && !memcmp(p, tn, tl) && p[tl] == '-' && p[tl + 1] == 'm' &&
            !dec32(p + tl + 2, rest - tl - 2, &out->n) && out->n > 0) {
            out->kv_type = t;
            return KV_PCN_MODEL;
        }
    }
    size_t d = 0; /* "<n>.snap", then maybe ".tmp-XXXXXX" */
    while (d < rest && p[d] >= '0' && p[d] <= '9') d++;
    if (dec32(p, d, &out->n) || rest - d < 5 || memcmp(p + d, ".snap", 5)) goto none;
    if (rest == d + 5) return KV_PCN_ENTRY;
    if (rest == d + 5 + 5 + 6 && !memcmp(p + d + 5, ".tmp-", 5)) {
        for (size_t i = d + 10; i < rest; i++)
            if (!tmp_char(p[i])) goto none;
        return KV_PCN_TMP;
    }
none:
    memset(out, 0, sizeof *out);
    return KV_PCN_NONE;
}

/* ---------------- paths ---------------- */

/* XXH64 of ids toks[0..n) as little-endian int32 (the snapshot's own encoding of them). */
static uint64_t ids_hash(const int32_t *toks, size_t n)
{
    struct util_xxh64 h;
    util_xxh64_init(&h, 0);
    uint8_t b[4 * 256];
    for (size_t i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        for (size_t j = 0; j < m; j++) {
            uint32_t v = (uint32_t)toks[i + j];
            for (int k = 0; k < 4; k++) b[4 * j + (size_t)k] = (uint8_t)(v >> (8 * k));
        }
        util_xxh64_update(&h, b, 4 * m);
    }
    return util_xxh64_final(&h);
}

/* DIR/<fp>-<type>-m<min>/<bucket> of a prompt (n >= min_tokens). */
static int bucket_dir(const struct kv_pcache *pc, uint64_t fp, int type, const int32_t *toks, char *out, size_t cap)
{
    int w = snprintf(out, cap, "%s/%016llx-%s-m%u/%016llx", pc->root, (unsigned long long)fp, kv_type_name(type),
                     pc->min_tokens, (unsigned long long)ids_hash(toks, pc->min_tokens));
    return w > 0 && (size_t)w < cap ? 0 : ERR_LIMIT;
}

/* mkdir of every missing component of path (mode 0700: entries hold conversations). */
static int mkdirs(const char *path)
{
    char buf[PC_PATH];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return errno;
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* ---------------- open, close ---------------- */

int kv_pcache_open(struct kv_pcache *pc, const char *dir, uint32_t min_tokens, uint64_t max_bytes,
                   struct err_info *ei)
{
    memset(pc, 0, sizeof *pc);
    if (!dir || !*dir) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "empty prompt cache directory");
    if (min_tokens == 0) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "the prompt cache minimum must be >= 1 token");
    if (strlen(dir) > PC_PATH - 128)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "prompt cache directory path is too long");
    int e = mkdirs(dir);
    if (e) return err_set(ei, ERR_IO, ERR_NO_OFFSET, "prompt cache directory '%s': %s", dir, strerror(e));
    if (!(pc->root = strdup(dir))) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    size_t n = strlen(pc->root);
    while (n > 1 && pc->root[n - 1] == '/') pc->root[--n] = 0;
    pc->min_tokens = min_tokens;
    pc->max_bytes = max_bytes;
    kv_pcache_evict(pc);
    return 0;
}

void kv_pcache_close(struct kv_pcache *pc)
{
    if (!pc) return;
    free(pc->root);
    memset(pc, 0, sizeof *pc);
}

/* ---------------- lookups ---------------- */

/* The header and token ids of entry `path` peeked against x into *s (head: a buffer of
 * KV_SNAP_HEADER + 4 * x->n_ctx bytes). 0, or -1 when it cannot be read or is refused. */
static int peek_entry(struct kv_pcache *pc, const char *path, const struct kv_snap_expect *x, uint8_t *head,
                      struct kv_snap *s)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        uint64_t hl = kv_snap_head_len((uint64_t)st.st_size, x->n_ctx);
        size_t got = 0;
        while (got < hl) {
            ssize_t k = pread(fd, head + got, (size_t)hl - got, (off_t)got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        pc->st.bytes_read += got;
        if (got == hl && kv_snap_peek(head, (size_t)hl, (uint64_t)st.st_size, x, s, NULL) == 0) rc = 0;
    }
    close(fd);
    return rc;
}

/* Walk a bucket: the entry with the longest common prefix with toks[0..n) above *best (its path
 * into best_path), and, when drop_below > 0, remove the entries of fewer than drop_below tokens
 * that are a prefix of toks. Returns 1 when a better entry was found, 0 when not, or an error. */
static int bucket_scan(struct kv_pcache *pc, const struct kv_snap_expect *x, const char *dir, const int32_t *toks,
                       size_t n, uint32_t *best, char *best_path, size_t cap, uint32_t drop_below,
                       struct err_info *ei)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint8_t *head = malloc(KV_SNAP_HEADER + 4 * (size_t)x->n_ctx);
    if (!head) {
        closedir(d);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for a prompt cache lookup");
    }
    int found = 0, rc = 0;
    struct dirent *de;
    char path[PC_PATH];
    while (!rc && (de = readdir(d))) {
        struct kv_pcache_name nm;
        if (kv_pcache_name(de->d_name, strlen(de->d_name), &nm) != KV_PCN_ENTRY || nm.n > x->n_ctx) continue;
        bool drop = nm.n < drop_below;
        if (!drop && nm.n <= *best) continue; /* cannot share more than it holds */
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        struct kv_snap s;
        if (peek_entry(pc, path, x, head, &s)) continue;
        uint32_t c = kv_snap_common_prefix(&s, toks, n);
        if (drop && c == s.n_tokens) {
            if (unlink(path) == 0) pc->st.evictions++;
            continue;
        }
        if (c <= *best) continue;
        if (strlen(path) >= cap) {
            rc = err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "prompt cache path too long");
            break;
        }
        memcpy(best_path, path, strlen(path) + 1);
        *best = c;
        found = 1;
    }
    free(head);
    closedir(d);
    return rc ? rc : found;
}

int kv_pcache_find(struct kv_pcache *pc, const struct kv_snap_expect *x, const int32_t *toks, size_t n,
                   uint32_t better, char *path, size_t cap, uint32_t *common, struct err_info *ei)
{
    *common = 0;
    if (n < pc->min_tokens) return 0;
    char dir[PC_PATH];
    if (bucket_dir(pc, x->fingerprint, x->kv_type, toks, dir, sizeof dir))
        return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "prompt cache path too long");
    uint32_t best = better;
    int rc = bucket_scan(pc, x, dir, toks, n, &best, path, cap, 0, ei);
    if (rc == 1) *common = best;
    return rc;
}

void kv_pcache_touch(const char *path)
{
    (void)utimensat(AT_FDCWD, path, NULL, 0); /* best effort: recency only orders eviction */
}

void kv_pcache_drop(struct kv_pcache *pc, const char *path)
{
    pc->st.errors++;
    (void)unlink(path);
}

/* ---------------- stores ---------------- */

int kv_pcache_store(struct kv_pcache *pc, const struct kv_cache *kv, uint64_t fingerprint, const int32_t *toks,
                    uint32_t n, struct err_info *ei)
{
    if (n < pc->min_tokens || n > kv->n_ctx) return 0;
    uint64_t size = kv_snap_size(kv->type, kv->n_layer, kv->kv_dim, n);
    if (!size || size > pc->max_bytes) return 0;
    struct kv_snap_expect x = {fingerprint, kv->type, kv->n_layer, kv->kv_dim, kv->n_ctx, UINT32_MAX};
    char dir[PC_PATH], path[PC_PATH], best[PC_PATH];
    if (bucket_dir(pc, fingerprint, kv->type, toks, dir, sizeof dir) ||
        snprintf(path, sizeof path, "%s/%016llx-%u.snap", dir, (unsigned long long)ids_hash(toks, n), n) >=
            (int)sizeof path)
        return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "prompt cache path too long");
    uint32_t c = 0;
    int rc = bucket_scan(pc, &x, dir, toks, n, &c, best, sizeof best, 0, ei);
    if (rc < 0) return rc;
    if (rc == 1 && n - c < pc->min_tokens) { /* covered well enough (or the very same prompt) */
        kv_pcache_touch(best);
        return 0;
    }
    for (int attempt = 0; attempt < 2; attempt++) { /* the bucket may vanish under us once */
        int e = mkdirs(dir);
        if (e) rc = err_set(ei, ERR_IO, ERR_NO_OFFSET, "prompt cache directory '%s': %s", dir, strerror(e));
        else rc = kv_snap_write_fast(path, kv, fingerprint, toks, n, attempt ? ei : NULL);
        if (!rc) break;
    }
    if (rc) {
        pc->st.errors++;
        return rc;
    }
    pc->st.stores++;
    pc->st.bytes_written += size;
    c = n; /* nothing is better than the entry itself: only drop its prefixes */
    bucket_scan(pc, &x, dir, toks, n, &c, best, sizeof best, n, NULL);
    kv_pcache_evict(pc);
    return 1;
}

/* ---------------- eviction ---------------- */

struct pc_ent {
    char *path;
    uint64_t size;
    struct timespec mtime;
};

struct pc_scan {
    struct pc_ent *v;
    size_t n, cap;
    uint64_t bytes; /* entries and temporary files */
    bool oom;
};

static int ent_older(const void *a, const void *b)
{
    const struct pc_ent *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->path, y->path);
}

static void scan_add(struct pc_scan *sc, const char *path, const struct stat *st)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 64;
        struct pc_ent *v = realloc(sc->v, cap * sizeof *v);
        if (!v) {
            sc->oom = true;
            return;
        }
        sc->v = v;
        sc->cap = cap;
    }
    char *p = strdup(path);
    if (!p) {
        sc->oom = true;
        return;
    }
    sc->v[sc->n++] = (struct pc_ent){p, (uint64_t)st->st_size, st->st_mtim};
    sc->bytes += (uint64_t)st->st_size;
}

/* The files of one bucket: entries collected, stale temporary files removed. The bucket itself
 * is removed when nothing is left in it (a writer that loses that race makes it again). */
static void scan_bucket(struct pc_scan *sc, const char *dir, time_t now)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[PC_PATH];
    size_t left = 0;
    while ((de = readdir(d))) {
        struct kv_pcache_name nm;
        int kind = kv_pcache_name(de->d_name, strlen(de->d_name), &nm);
        if (kind != KV_PCN_ENTRY && kind != KV_PCN_TMP) {
            left += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
            continue;
        }
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path || lstat(path, &st) != 0 ||
            !S_ISREG(st.st_mode)) {
            left++;
            continue;
        }
        if (kind == KV_PCN_TMP && now - st.st_mtim.tv_sec > KV_PCACHE_STALE_TMP && unlink(path) == 0) continue;
        left++;
        if (kind == KV_PCN_ENTRY) scan_add(sc, path, &st);
        else sc->bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    if (!left) (void)rmdir(dir);
}

/* Every directory of `root` whose name is of `kind`, with fn called on its path. */
static void each_dir(const char *root, int kind, void (*fn)(struct pc_scan *, const char *, time_t),
                     struct pc_scan *sc, time_t now)
{
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *de;
    char path[PC_PATH];
    while ((de = readdir(d))) {
        struct kv_pcache_name nm;
        if (kv_pcache_name(de->d_name, strlen(de->d_name), &nm) != kind) continue;
        if (snprintf(path, sizeof path, "%s/%s", root, de->d_name) >= (int)sizeof path) continue;
        fn(sc, path, now);
    }
    closedir(d);
}

static void scan_model(struct pc_scan *sc, const char *dir, time_t now)
{
    each_dir(dir, KV_PCN_BUCKET, scan_bucket, sc, now);
}

void kv_pcache_evict(struct kv_pcache *pc)
{
    struct pc_scan sc;
    memset(&sc, 0, sizeof sc);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    each_dir(pc->root, KV_PCN_MODEL, scan_model, &sc, ts.tv_sec);
    if (sc.oom) LOG_WARN("prompt cache: out of memory while scanning %s; eviction is partial", pc->root);
    if (sc.n) qsort(sc.v, sc.n, sizeof *sc.v, ent_older); /* qsort(NULL, 0) is undefined */
    size_t kept = sc.n;
    for (size_t i = 0; i < sc.n && sc.bytes > pc->max_bytes; i++) {
        if (unlink(sc.v[i].path) != 0 && errno != ENOENT) continue;
        sc.bytes -= sc.v[i].size;
        kept--;
        pc->st.evictions++;
    }
    for (size_t i = 0; i < sc.n; i++) free(sc.v[i].path);
    free(sc.v);
    pc->st.entries = kept;
    pc->st.disk_bytes = sc.bytes;
}
