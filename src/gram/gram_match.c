/* gram_match: parse stacks, stack sets and byte transitions (the layout is in gram_int.h), and
 * the byte-level matcher API.
 *
 * Expansion ("closure") takes a frame and replaces it, without consuming input, until every
 * resulting stack has a terminal on top: a rule reference pushes each alternative of the rule
 * over the continuation frame (dropped when the reference is the last element of its
 * alternative, so right recursion does not grow the stack); a repetition frame (pos at GOP_REP,
 * cnt iterations done) offers to leave when cnt >= min and to run the body again when cnt < max,
 * with cnt+1 in the frame under the body (an unbounded count saturates at min, so `x*` loops in
 * one frame). Each frame is expanded at most once per transition (marks), which is what makes a
 * nullable repetition body terminate; left recursion is refused at compile time, so expansion
 * creates finitely many frames, and the arena's hard bound turns anything unexpected into
 * ERR_LIMIT instead of a hang.
 *
 * A transition on a code point keeps the stacks whose top matches it, moves each past its
 * terminal and expands again; the result is interned as a new set. UTF-8 is decoded here, byte
 * by byte and strictly; while a character is unfinished the position keeps its bytes and accepts
 * a byte only if some top still matches a code point the character could become (llama.cpp's
 * partial-character check), so any byte string accepted is a prefix of the grammar's language. */
#include "gram_int.h"

#include <stdlib.h>
#include <string.h>

#define NODE_SOFT (1u << 18)
#define NODE_HARD (1u << 22)
#define SET_SOFT 4096u
#define SET_HARD 65536u
#define SPOOL_SOFT (1u << 20)
#define SPOOL_HARD (1u << 24)
#define TRANS_SOFT (1u << 16)
#define TRANS_HARD (1u << 20)
#define WORK_HARD (1u << 24)

static bool is_end_op(uint8_t op) { return op <= GOP_ALT; }

unsigned gram_byte_group(unsigned b)
{
    static const char punct[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    if (b >= 0x80) return GRAM_GROUP_NONASCII;
    if (b == 0) return 0;
    if (b == '\t') return 2;
    if (b == '\n') return 3;
    if (b == '\r') return 4;
    if (b < 0x20) return 1;
    if (b == ' ') return 5;
    if (b == 0x7f) return 44;
    if (b == '0') return 38;
    if (b >= '1' && b <= '9') return 39;
    if (b >= 'A' && b <= 'F') return 40;
    if (b >= 'G' && b <= 'Z') return 41;
    if (b >= 'a' && b <= 'f') return 42;
    if (b >= 'g' && b <= 'z') return 43;
    const char *q = strchr(punct, (int)b);
    return 6 + (unsigned)(q - punct); /* 6..37 */
}

/* ---- growth ---- */

static int grow_arr(void *pp, size_t elem, uint32_t ncap)
{
    void *q = realloc(*(void **)pp, (size_t)ncap * elem);
    if (!q) return ERR_NOMEM;
    *(void **)pp = q;
    return 0;
}

static uint32_t mix3(uint32_t a, uint32_t b, uint32_t c)
{
    uint64_t h = (uint64_t)a * 0x9e3779b97f4a7c15ull ^ (uint64_t)b * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)c * 0x165667b19e3779f9ull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

static void node_rehash(struct gram_core *c)
{
    memset(c->nhash, 0, (size_t)c->nhash_cap * sizeof *c->nhash);
    uint32_t mask = c->nhash_cap - 1;
    for (uint32_t n = 1; n < c->n_nodes; n++) {
        uint32_t h = mix3(c->npos[n], c->ncnt[n], c->npar[n]) & mask;
        while (c->nhash[h]) h = (h + 1) & mask;
        c->nhash[h] = n;
    }
}

static int node_grow(struct gram_core *c)
{
    if (c->cap_nodes >= NODE_HARD) return ERR_LIMIT;
    uint32_t nc = c->cap_nodes * 2;
    if (grow_arr(&c->npos, 4, nc) || grow_arr(&c->ncnt, 4, nc) ||
        grow_arr(&c->npar, 4, nc) || grow_arr(&c->nmark, 4, nc))
        return ERR_NOMEM;
    memset(c->nmark + c->cap_nodes, 0, (size_t)(nc - c->cap_nodes) * 4);
    c->cap_nodes = nc;
    uint32_t *h = realloc(c->nhash, (size_t)nc * 2 * sizeof *h);
    if (!h) return ERR_NOMEM;
    c->nhash = h;
    c->nhash_cap = nc * 2;
    node_rehash(c);
    return 0;
}

/* The frame (pos, cnt) over par, interned. */
static int node_intern(struct gram_core *c, uint32_t pos, uint32_t cnt, uint32_t par, uint32_t *out)
{
    uint32_t mask = c->nhash_cap - 1, h = mix3(pos, cnt, par) & mask;
    for (uint32_t n; (n = c->nhash[h]); h = (h + 1) & mask) {
        if (c->npos[n] == pos && c->ncnt[n] == cnt && c->npar[n] == par) {
            *out = n;
            return 0;
        }
    }
    if (c->n_nodes == c->cap_nodes) {
        int rc = node_grow(c);
        if (rc) return rc;
        return node_intern(c, pos, cnt, par, out);
    }
    uint32_t n = c->n_nodes++;
    c->npos[n] = pos;
    c->ncnt[n] = cnt;
    c->npar[n] = par;
    c->nmark[n] = 0;
    c->nhash[h] = n;
    *out = n;
    return 0;
}

static int push_u32(uint32_t **arr, uint32_t *n, uint32_t *cap, uint32_t v)
{
    if (*n == *cap) {
        if (*cap >= WORK_HARD) return ERR_LIMIT;
        if (grow_arr(arr, 4, *cap * 2)) return ERR_NOMEM;
        *cap *= 2;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static int push_work(struct gram_core *c, uint32_t v) { return push_u32(&c->work, &c->n_work, &c->cap_work, v); }
static int push_out(struct gram_core *c, uint32_t v) { return push_u32(&c->out, &c->n_out, &c->cap_out, v); }

static void begin_pass(struct gram_core *c)
{
    if (++c->pass == 0) { /* wrapped: old marks could collide */
        memset(c->nmark, 0, (size_t)c->cap_nodes * sizeof *c->nmark);
        c->pass = 1;
    }
    c->n_out = 0;
    c->n_work = 0;
}

/* ---- expansion ---- */

/* Push the frame at element pos over par, or par itself when pos ends the alternative. */
static int push_frame(struct gram_core *c, uint32_t pos, uint32_t cnt, uint32_t par)
{
    uint32_t n = par;
    if (!is_end_op(c->g->el[pos].op)) {
        int rc = node_intern(c, pos, cnt, par, &n);
        if (rc) return rc;
    }
    return push_work(c, n);
}

/* Push every alternative of rule r over the frame under. */
static int push_alts(struct gram_core *c, uint32_t r, uint32_t under)
{
    const struct grule *rule = &c->g->rules[r];
    for (uint32_t k = 0; k < rule->n_alt; k++) {
        int rc = push_frame(c, c->g->alts[rule->alt0 + k], 0, under);
        if (rc) return rc;
    }
    return 0;
}

/* Expand every frame on the work stack (and everything they lead to) into terminal-top stacks
 * appended to c->out. */
static int drain(struct gram_core *c)
{
    int rc = 0;
    while (!rc && c->n_work) {
        uint32_t n = c->work[--c->n_work];
        if (c->nmark[n] == c->pass) continue;
        c->nmark[n] = c->pass;
        if (n == 0) {
            rc = push_out(c, 0);
            continue;
        }
        uint32_t pos = c->npos[n], par = c->npar[n];
        const struct gel *e = &c->g->el[pos];
        if (e->op == GOP_RULE) {
            uint32_t cont = par;
            if (!is_end_op(c->g->el[pos + 1].op)) rc = node_intern(c, pos + 1, 0, par, &cont);
            if (!rc) rc = push_alts(c, e->a, cont);
        } else if (e->op == GOP_REP) {
            const struct grep *rp = &c->g->reps[e->b];
            uint32_t cnt = c->ncnt[n];
            if (cnt >= rp->min) rc = push_frame(c, pos + 1, 0, par);
            if (!rc && cnt < rp->max) {
                uint32_t nc = rp->max == GRAM_INF ? (cnt + 1 < rp->min ? cnt + 1 : rp->min) : cnt + 1;
                uint32_t f;
                rc = node_intern(c, pos, nc, par, &f);
                if (!rc) rc = push_alts(c, e->a, f);
            }
        } else if (is_end_op(e->op)) {
            rc = push_work(c, par);
        } else {
            rc = push_out(c, n);
        }
    }
    return rc;
}

static int expand(struct gram_core *c, uint32_t n0)
{
    int rc = push_work(c, n0);
    return rc ? rc : drain(c);
}

/* Continue the stack whose top t just matched its terminal. */
static int advance_top(struct gram_core *c, uint32_t t)
{
    uint32_t pos = c->npos[t] + 1, par = c->npar[t], n = par;
    if (!is_end_op(c->g->el[pos].op)) {
        int rc = node_intern(c, pos, 0, par, &n);
        if (rc) return rc;
    }
    return expand(c, n);
}

/* ---- sets ---- */

static void sort_u32(uint32_t *a, uint32_t n)
{
    if (n < 24) {
        for (uint32_t i = 1; i < n; i++) {
            uint32_t v = a[i], j = i;
            for (; j && a[j - 1] > v; j--) a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    uint32_t p = a[n / 2], i = 0, j = n - 1; /* Hoare partition, recursing on the smaller side */
    for (;;) {
        while (a[i] < p) i++;
        while (a[j] > p) j--;
        if (i >= j) break;
        uint32_t t = a[i];
        a[i++] = a[j];
        a[j--] = t;
    }
    sort_u32(a, j + 1);
    sort_u32(a + j + 1, n - j - 1);
}

static uint32_t set_hash(const uint32_t *t, uint32_t n)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h ^= t[i];
        h *= 0x100000001b3ull;
        h ^= h >> 32;
    }
    return (uint32_t)h;
}

static uint8_t set_flags(const struct gram_core *c, const uint32_t *t, uint32_t n)
{
    uint8_t f = GSF_NA_UNIFORM;
    for (uint32_t i = 0; i < n; i++) {
        if (t[i] == 0) {
            f |= GSF_CAN_END;
            continue;
        }
        const struct gel *e = &c->g->el[c->npos[t[i]]];
        if (e->op == GOP_TOKEN || e->op == GOP_NTOKEN) {
            f |= GSF_TOKENS;
        } else if (e->op == GOP_CHAR) {
            f |= GSF_CHARS;
            if (e->a >= 0x80) f &= (uint8_t)~GSF_NA_UNIFORM;
        } else {
            uint8_t cf = c->g->cls[e->a].flags;
            if (!(cf & GC_EMPTY)) f |= GSF_CHARS;
            if (cf & GC_NA_ALL) f |= GSF_NA_ALL;
            else if (!(cf & GC_NA_NONE)) f &= (uint8_t)~GSF_NA_UNIFORM;
        }
    }
    return f;
}

static int shash_grow(struct gram_core *c)
{
    uint32_t nc = c->shash_cap * 2;
    uint32_t *t = calloc(nc, sizeof *t);
    if (!t) return ERR_NOMEM;
    for (uint32_t s = 0; s < c->n_sets; s++) {
        uint32_t h = set_hash(c->spool + c->sets[s].off, c->sets[s].len) & (nc - 1);
        while (t[h]) h = (h + 1) & (nc - 1);
        t[h] = s + 1;
    }
    free(c->shash);
    c->shash = t;
    c->shash_cap = nc;
    return 0;
}

static int sets_grow(struct gram_core *c)
{
    if (c->cap_sets >= SET_HARD) return ERR_LIMIT;
    uint32_t nc = c->cap_sets * 2;
    if (grow_arr(&c->sets, sizeof *c->sets, nc) ||
        grow_arr(&c->asc, 128 * sizeof *c->asc, nc))
        return ERR_NOMEM;
    c->cap_sets = nc;
    return 0;
}

/* Intern the sorted, distinct tops t[0..n). */
static int set_intern(struct gram_core *c, const uint32_t *t, uint32_t n, uint32_t *id)
{
    if (n > GRAM_MAX_STACKS) return ERR_LIMIT;
    uint32_t h0 = set_hash(t, n), mask = c->shash_cap - 1;
    uint32_t h = h0 & mask;
    for (uint32_t s; (s = c->shash[h]); h = (h + 1) & mask) {
        const struct gset_info *si = &c->sets[s - 1];
        if (si->len == n && memcmp(c->spool + si->off, t, n * sizeof *t) == 0) {
            *id = s - 1;
            return 0;
        }
    }
    int rc;
    if (c->n_sets == c->cap_sets && (rc = sets_grow(c))) return rc;
    if (c->n_spool + n > c->cap_spool) {
        if (c->n_spool + n > SPOOL_HARD) return ERR_LIMIT;
        uint32_t nc = c->cap_spool;
        while (nc < c->n_spool + n) nc *= 2;
        if (grow_arr(&c->spool, 4, nc)) return ERR_NOMEM;
        c->cap_spool = nc;
    }
    if ((c->n_sets + 1) * 2 > c->shash_cap) {
        if ((rc = shash_grow(c))) return rc;
        mask = c->shash_cap - 1;
        for (h = h0 & mask; c->shash[h]; h = (h + 1) & mask) {}
    }
    uint32_t s = c->n_sets++;
    memcpy(c->spool + c->n_spool, t, n * sizeof *t);
    struct gset_info *si = &c->sets[s];
    memset(si, 0, sizeof *si);
    si->off = c->n_spool;
    si->len = n;
    si->na_next = GS_UNKNOWN;
    si->flags = set_flags(c, t, n);
    c->n_spool += n;
    uint32_t *row = c->asc + (size_t)s * 128;
    for (int b = 0; b < 128; b++) row[b] = GS_UNKNOWN;
    row[0] = GS_DEAD; /* code point 0 never matches */
    c->shash[h] = s + 1;
    *id = s;
    return 0;
}

/* The expansion output as a set (GS_DEAD when empty). */
static int finish_set(struct gram_core *c, uint32_t *res)
{
    if (c->n_out == 0) {
        *res = GS_DEAD;
        return 0;
    }
    sort_u32(c->out, c->n_out);
    return set_intern(c, c->out, c->n_out, res);
}

/* ---- transitions ---- */

static bool top_matches(const struct gram_core *c, uint32_t t, uint32_t cp)
{
    const struct gel *e = &c->g->el[c->npos[t]];
    if (e->op == GOP_CHAR) return e->a == cp;
    if (e->op == GOP_CLASS) return gram_class_has(c->g, e->a, cp);
    return false;
}

static int delta_cp(struct gram_core *c, uint32_t s, uint32_t cp, uint32_t *res)
{
    begin_pass(c);
    uint32_t off = c->sets[s].off, len = c->sets[s].len;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = c->spool[off + i];
        if (t && top_matches(c, t, cp)) {
            int rc = advance_top(c, t);
            if (rc) return rc;
        }
    }
    return finish_set(c, res);
}

static uint32_t tkey_hash(uint64_t k) { return mix3((uint32_t)k, (uint32_t)(k >> 32), 0x5bd1e995u); }

static int trans_find(const struct gram_core *c, uint64_t key, uint32_t *val)
{
    uint32_t mask = c->tcap - 1;
    for (uint32_t h = tkey_hash(key) & mask; c->tkey[h]; h = (h + 1) & mask) {
        if (c->tkey[h] == key + 1) {
            *val = c->tval[h];
            return 1;
        }
    }
    return 0;
}

static int trans_put(struct gram_core *c, uint64_t key, uint32_t val)
{
    if ((c->tn + 1) * 2 > c->tcap) {
        if (c->tcap >= TRANS_HARD * 2) return ERR_LIMIT;
        uint32_t nc = c->tcap * 2;
        uint64_t *k = calloc(nc, sizeof *k);
        uint32_t *v = malloc(nc * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return ERR_NOMEM;
        }
        for (uint32_t i = 0; i < c->tcap; i++) {
            if (!c->tkey[i]) continue;
            uint32_t h = tkey_hash(c->tkey[i] - 1) & (nc - 1);
            while (k[h]) h = (h + 1) & (nc - 1);
            k[h] = c->tkey[i];
            v[h] = c->tval[i];
        }
        free(c->tkey);
        free(c->tval);
        c->tkey = k;
        c->tval = v;
        c->tcap = nc;
    }
    uint32_t mask = c->tcap - 1, h = tkey_hash(key) & mask;
    while (c->tkey[h]) h = (h + 1) & mask;
    c->tkey[h] = key + 1;
    c->tval[h] = val;
    c->tn++;
    return 0;
}

/* Set s after a whole code point >= 0x80. */
static int step_cp(struct gram_core *c, uint32_t s, uint32_t cp, uint32_t *res)
{
    int rc;
    if (c->sets[s].flags & GSF_NA_UNIFORM) {
        if (c->sets[s].na_next == GS_UNKNOWN) {
            uint32_t nx;
            if ((rc = delta_cp(c, s, 0x80, &nx))) return rc;
            c->sets[s].na_next = nx;
        }
        *res = c->sets[s].na_next;
        return 0;
    }
    uint64_t key = ((uint64_t)s << 34) | cp;
    if (trans_find(c, key, res)) return 0;
    if ((rc = delta_cp(c, s, cp, res))) return rc;
    return trans_put(c, key, *res);
}

/* Could the unfinished character `part` still become a code point some top of s matches? */
static bool part_viable(const struct gram_core *c, uint32_t s, uint32_t part)
{
    const struct gset_info *si = &c->sets[s];
    if (si->flags & GSF_NA_UNIFORM) return si->flags & GSF_NA_ALL;
    uint32_t nrem = GP_NREM(part), v = GP_VAL(part);
    uint32_t lo = v << (6 * nrem), hi = lo | ((1u << (6 * nrem)) - 1);
    if (GP_FIRST(part)) { /* right after the lead: the strict limits of the second byte */
        if (nrem == 2 && v == 0) lo = 0x800;
        if (nrem == 2 && v == 0xd) hi = 0xd7ff;
        if (nrem == 3 && v == 0) lo = 0x10000;
    }
    if (hi > 0x10ffff) hi = 0x10ffff;
    for (uint32_t i = 0; i < si->len; i++) {
        uint32_t t = c->spool[si->off + i];
        if (!t) continue;
        const struct gel *e = &c->g->el[c->npos[t]];
        if (e->op == GOP_CHAR && e->a >= lo && e->a <= hi) return true;
        if (e->op == GOP_CLASS && gram_class_any(c->g, e->a, lo, hi)) return true;
    }
    return false;
}

static int step_lead(struct gram_core *c, struct gram_pos *p, unsigned b)
{
    uint32_t part;
    if (b >= 0xc2 && b <= 0xdf)
        part = (1u << 28) | (b & 0x1f);
    else if (b >= 0xe0 && b <= 0xef)
        part = (2u << 28) | (1u << 27) | (b & 0x0f);
    else if (b >= 0xf0 && b <= 0xf4)
        part = (3u << 28) | (1u << 27) | (b & 0x07);
    else
        return ERR_REJECTED;
    if (!part_viable(c, p->set, part)) return ERR_REJECTED;
    p->part = part;
    return 0;
}

static int step_cont(struct gram_core *c, struct gram_pos *p, unsigned b)
{
    uint32_t nrem = GP_NREM(p->part), v = GP_VAL(p->part);
    if ((b & 0xc0) != 0x80) return ERR_REJECTED;
    if (GP_FIRST(p->part)) {
        if (nrem == 2 && ((v == 0 && b < 0xa0) || (v == 0xd && b > 0x9f))) return ERR_REJECTED;
        if (nrem == 3 && ((v == 0 && b < 0x90) || (v == 4 && b > 0x8f))) return ERR_REJECTED;
    }
    v = (v << 6) | (b & 0x3f);
    nrem--;
    if (nrem) {
        uint32_t part = (nrem << 28) | v;
        if (!part_viable(c, p->set, part)) return ERR_REJECTED;
        p->part = part;
        return 0;
    }
    uint32_t nx;
    int rc = step_cp(c, p->set, v, &nx);
    if (rc) return rc;
    if (nx == GS_DEAD) return ERR_REJECTED;
    p->set = nx;
    p->part = 0;
    return 0;
}

int gc_step_slow(struct gram_core *c, struct gram_pos *p, unsigned b)
{
    if (p->part) return step_cont(c, p, b);
    if (b >= 0x80) return step_lead(c, p, b);
    uint32_t nx = c->asc[(size_t)p->set * 128 + b];
    if (nx == GS_UNKNOWN) {
        int rc = delta_cp(c, p->set, b, &nx);
        if (rc) return rc;
        c->asc[(size_t)p->set * 128 + b] = nx;
    }
    if (nx == GS_DEAD) return ERR_REJECTED;
    p->set = nx;
    return 0;
}

int gc_walk(struct gram_core *c, struct gram_pos *p, const uint8_t *s, size_t n)
{
    struct gram_pos q = *p;
    for (size_t i = 0; i < n; i++) {
        int rc = gc_step(c, &q, s[i]);
        if (rc) return rc;
    }
    *p = q;
    return 0;
}

int gc_token_step(struct gram_core *c, uint32_t s, int32_t tok, bool text, const int32_t *tokid,
                  uint32_t *res)
{
    uint64_t key = ((uint64_t)s << 34) | ((uint64_t)(text ? 2 : 1) << 32) | (uint32_t)tok;
    if (trans_find(c, key, res)) return 0;
    begin_pass(c);
    uint32_t off = c->sets[s].off, len = c->sets[s].len;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = c->spool[off + i];
        if (!t) continue;
        const struct gel *e = &c->g->el[c->npos[t]];
        bool hit = (e->op == GOP_TOKEN && tokid[e->a] == tok) ||
                   (e->op == GOP_NTOKEN && text && tokid[e->a] != tok);
        if (hit) {
            int rc = advance_top(c, t);
            if (rc) return rc;
        }
    }
    int rc = finish_set(c, res);
    if (!rc) rc = trans_put(c, key, *res);
    return rc;
}

int gc_union(struct gram_core *c, uint32_t a, uint32_t b, uint32_t *res)
{
    if (a == GS_DEAD || a == b) {
        *res = b;
        return 0;
    }
    if (b == GS_DEAD) {
        *res = a;
        return 0;
    }
    begin_pass(c);
    const uint32_t ids[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        for (uint32_t i = 0; i < c->sets[ids[k]].len; i++) {
            uint32_t t = c->spool[c->sets[ids[k]].off + i];
            if (c->nmark[t] == c->pass) continue;
            c->nmark[t] = c->pass;
            int rc = push_out(c, t);
            if (rc) return rc;
        }
    }
    return finish_set(c, res);
}

int gc_empty_set(struct gram_core *c, uint32_t *res)
{
    const uint32_t zero = 0;
    return set_intern(c, &zero, 1, res);
}

int gc_loop_groups(struct gram_core *c, uint32_t s, uint64_t want)
{
    uint64_t todo = want & ~c->sets[s].gknown;
    while (todo) {
        unsigned grp = (unsigned)__builtin_ctzll(todo);
        todo &= todo - 1;
        bool loop = true;
        int rc;
        if (grp == GRAM_GROUP_NONASCII) {
            uint32_t nx = GS_DEAD;
            uint8_t f = c->sets[s].flags;
            if ((f & GSF_NA_UNIFORM) && (f & GSF_NA_ALL) && (rc = step_cp(c, s, 0x80, &nx))) return rc;
            loop = nx == s;
        } else {
            for (unsigned b = 1; b < 128 && loop; b++) {
                if (gram_byte_group(b) != grp) continue;
                struct gram_pos q = {s, 0};
                rc = gc_step(c, &q, b);
                if (rc && rc != ERR_REJECTED) return rc;
                loop = rc == 0 && q.set == s;
            }
            if (grp == 0) loop = false;
        }
        c->sets[s].gknown |= 1ull << grp;
        if (loop) c->sets[s].gloop |= 1ull << grp;
    }
    return 0;
}

/* ---- compaction ---- */

/* Drop every set and cached transition and re-intern the live positions (current, start, and
 * *extra when given). With `nodes`, first keep only the frames under their stacks, renumbered in
 * place: a parent always has a smaller id than its child, so one ascending pass remaps. Sets are
 * cheap to rebuild; frames are compacted only when they have doubled past the live ones, so a
 * deep stack is not copied over and over. */
static void compact(struct gram_core *c, struct gram_pos *extra, bool nodes)
{
    struct gram_pos *keep[3] = {&c->cur, &c->start, extra};
    int nk = extra ? 3 : 2;
    uint32_t ntop[3] = {0, 0, 0}, total = 0;
    for (int k = 0; k < nk; k++) total += ntop[k] = c->sets[keep[k]->set].len;
    uint32_t *tops = malloc(((size_t)total + 1) * sizeof *tops);
    if (!tops) return; /* compaction is an optimisation: skip it */
    for (int k = 0, at = 0; k < nk; at += (int)ntop[k], k++)
        memcpy(tops + at, c->spool + c->sets[keep[k]->set].off, ntop[k] * sizeof *tops);
    if (nodes) {
        uint32_t live = ++c->pass;
        if (live == 0) live = c->pass = 1;
        for (uint32_t i = 0; i < total; i++)
            for (uint32_t n = tops[i]; n && c->nmark[n] != live; n = c->npar[n]) c->nmark[n] = live;
        uint32_t k = 1;
        c->nmark[0] = 0;
        for (uint32_t n = 1; n < c->n_nodes; n++) {
            if (c->nmark[n] != live) continue;
            c->npos[k] = c->npos[n];
            c->ncnt[k] = c->ncnt[n];
            c->npar[k] = c->nmark[c->npar[n]]; /* parent already renumbered (0 stays 0) */
            c->nmark[n] = k++;
        }
        for (uint32_t i = 0; i < total; i++) tops[i] = tops[i] ? c->nmark[tops[i]] : 0;
        c->n_nodes = c->live_nodes = k;
        memset(c->nmark, 0, (size_t)c->cap_nodes * sizeof *c->nmark);
        c->pass = 1;
        node_rehash(c);
    }
    c->n_sets = c->n_spool = 0;
    memset(c->shash, 0, (size_t)c->shash_cap * sizeof *c->shash);
    memset(c->tkey, 0, (size_t)c->tcap * sizeof *c->tkey);
    c->tn = 0;
    for (uint32_t i = 0; i < c->memo_n; i++) c->memo_age[i] = 0;
    /* renumbering keeps the order, so the tops stay sorted; interning cannot fail here (the
     * tables are at least as large as when these sets were first made) */
    for (int j = 0, at = 0; j < nk; at += (int)ntop[j], j++) set_intern(c, tops + at, ntop[j], &keep[j]->set);
    free(tops);
}

static bool nodes_over(const struct gram_core *c) { return c->n_nodes > NODE_SOFT + 2 * c->live_nodes; }

static bool over_soft(const struct gram_core *c)
{
    return nodes_over(c) || c->n_sets > SET_SOFT || c->n_spool > SPOOL_SOFT || c->tn > TRANS_SOFT;
}

static void maybe_compact(struct gram_core *c, struct gram_pos *extra)
{
    if (over_soft(c)) compact(c, extra, nodes_over(c));
}

void gc_maybe_compact(struct gram_core *c) { maybe_compact(c, NULL); }

/* ---- setup ---- */

int gc_init(struct gram_core *c, const struct gram *g)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->cap_nodes = 1024;
    c->nhash_cap = 2048;
    c->cap_sets = 64;
    c->shash_cap = 256;
    c->cap_spool = 1024;
    c->tcap = 1024;
    c->cap_work = c->cap_out = 256;
    c->npos = malloc(c->cap_nodes * 4);
    c->ncnt = malloc(c->cap_nodes * 4);
    c->npar = malloc(c->cap_nodes * 4);
    c->nmark = calloc(c->cap_nodes, 4);
    c->nhash = calloc(c->nhash_cap, 4);
    c->sets = malloc(c->cap_sets * sizeof *c->sets);
    c->asc = malloc((size_t)c->cap_sets * 128 * 4);
    c->shash = calloc(c->shash_cap, 4);
    c->spool = malloc(c->cap_spool * 4);
    c->tkey = calloc(c->tcap, sizeof *c->tkey);
    c->tval = malloc(c->tcap * sizeof *c->tval);
    c->work = malloc(c->cap_work * 4);
    c->out = malloc(c->cap_out * 4);
    if (!c->npos || !c->ncnt || !c->npar || !c->nmark || !c->nhash || !c->sets || !c->asc ||
        !c->shash || !c->spool || !c->tkey || !c->tval || !c->work || !c->out)
        return ERR_NOMEM;
    c->npos[0] = c->ncnt[0] = c->npar[0] = 0; /* the bottom */
    c->n_nodes = 1;
    c->pass = 1;
    begin_pass(c);
    int rc = push_alts(c, g->root, 0);
    if (!rc) rc = drain(c);
    if (!rc) rc = finish_set(c, &c->start.set);
    if (!rc && c->start.set == GS_DEAD) rc = ERR_STATE;
    c->cur = c->start;
    return rc;
}

void gc_free(struct gram_core *c)
{
    if (!c) return;
    free(c->npos);
    free(c->ncnt);
    free(c->npar);
    free(c->nmark);
    free(c->nhash);
    free(c->sets);
    free(c->asc);
    free(c->shash);
    free(c->spool);
    free(c->tkey);
    free(c->tval);
    free(c->work);
    free(c->out);
    free(c->tokid);
    free(c->obits);
    free(c->dstack);
    free(c->memo_bits);
    free(c->memo_pos);
    free(c->memo_age);
    memset(c, 0, sizeof *c);
}

/* ---- byte-level matcher API ---- */

int gram_matcher_feed(struct gram_matcher *m, const void *bytes, size_t n, size_t *n_ok)
{
    if (n_ok) *n_ok = 0;
    if (!m || !m->c || (!bytes && n)) return ERR_INVALID;
    struct gram_core *c = m->c;
    gc_maybe_compact(c);
    struct gram_pos q = c->cur;
    const uint8_t *s = bytes;
    for (size_t i = 0; i < n; i++) {
        if ((i & 1023) == 1023) maybe_compact(c, &q); /* long feeds stay bounded */
        int rc = gc_step(c, &q, s[i]);
        if (rc) {
            if (n_ok) *n_ok = i;
            return rc;
        }
    }
    c->cur = q;
    if (n_ok) *n_ok = n;
    return 0;
}

int gram_matcher_try(struct gram_matcher *m, const void *bytes, size_t n)
{
    if (!m || !m->c || (!bytes && n)) return ERR_INVALID;
    gc_maybe_compact(m->c);
    struct gram_pos q = m->c->cur;
    const uint8_t *s = bytes;
    for (size_t i = 0; i < n; i++) {
        if ((i & 1023) == 1023) maybe_compact(m->c, &q);
        int rc = gc_step(m->c, &q, s[i]);
        if (rc) return rc;
    }
    return 0;
}

bool gram_matcher_can_end(const struct gram_matcher *m)
{
    return m && m->c && gp_can_end(m->c, m->c->cur);
}

bool gram_matcher_complete(const struct gram_matcher *m)
{
    if (!m || !m->c) return false;
    const struct gram_core *c = m->c;
    return c->cur.part == 0 && !(c->sets[c->cur.set].flags & (GSF_CHARS | GSF_TOKENS));
}

int gram_matcher_next_bytes(struct gram_matcher *m, uint64_t set[4])
{
    memset(set, 0, 4 * sizeof *set);
    if (!m || !m->c) return 0;
    gc_maybe_compact(m->c);
    int n = 0;
    for (unsigned b = 0; b < 256; b++) {
        struct gram_pos q = m->c->cur;
        if (gc_step(m->c, &q, b) == 0) {
            set[b >> 6] |= 1ull << (b & 63);
            n++;
        }
    }
    return n;
}

void gram_matcher_reset(struct gram_matcher *m)
{
    if (m && m->c) m->c->cur = m->c->start;
}
