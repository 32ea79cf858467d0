/* gram_stack: the matcher core's memory: parse-stack frames interned in an arena, their
 * expansion, interned stack sets, compaction, setup (layout in gram_int.h).
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
 * Tables grow to their hard bounds inside one operation at most; between operations
 * gram_gc_maybe_compact drops the sets and caches (and, when they have doubled past the live ones, the
 * dead frames) so memory stays bounded over any length of generation. */
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
#define WORK_HARD (1u << 24)

static bool is_end_op(uint8_t op) { return op <= GOP_ALT; }

/* ---- growth ---- */

static int grow_arr(void *pp, size_t elem, uint32_t ncap)
{
    void *q = realloc(*(void **)pp, (size_t)ncap * elem);
    if (!q) return ERR_NOMEM;
    *(void **)pp = q;
    return 0;
}

static void node_rehash(struct gram_core *c)
{
    memset(c->nhash, 0, (size_t)c->nhash_cap * sizeof *c->nhash);
    uint32_t mask = c->nhash_cap - 1;
    for (uint32_t n = 1; n < c->n_nodes; n++) {
        uint32_t h = gc_mix3(c->npos[n], c->ncnt[n], c->npar[n]) & mask;
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
    uint32_t mask = c->nhash_cap - 1, h = gc_mix3(pos, cnt, par) & mask;
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
int gram_gc_push_out(struct gram_core *c, uint32_t v) { return push_u32(&c->out, &c->n_out, &c->cap_out, v); }

void gram_gc_begin_pass(struct gram_core *c)
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
            rc = gram_gc_push_out(c, 0);
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
            rc = gram_gc_push_out(c, n);
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
int gram_gc_advance_top(struct gram_core *c, uint32_t t)
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
int gram_gc_set_intern(struct gram_core *c, const uint32_t *t, uint32_t n, uint32_t *id)
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
int gram_gc_finish_set(struct gram_core *c, uint32_t *res)
{
    if (c->n_out == 0) {
        *res = GS_DEAD;
        return 0;
    }
    sort_u32(c->out, c->n_out);
    return gram_gc_set_intern(c, c->out, c->n_out, res);
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
    while (c->cap_out < total) { /* the expansion scratch is free between operations */
        if (grow_arr(&c->out, 4, c->cap_out * 2)) return; /* compaction is an optimisation: skip it */
        c->cap_out *= 2;
    }
    uint32_t *tops = c->out;
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
    for (int j = 0, at = 0; j < nk; at += (int)ntop[j], j++) gram_gc_set_intern(c, tops + at, ntop[j], &keep[j]->set);
}

static bool nodes_over(const struct gram_core *c) { return c->n_nodes > NODE_SOFT + 2 * c->live_nodes; }

static bool over_soft(const struct gram_core *c)
{
    return nodes_over(c) || c->n_sets > SET_SOFT || c->n_spool > SPOOL_SOFT || c->tn > TRANS_SOFT;
}

void gram_gc_maybe_compact(struct gram_core *c, struct gram_pos *extra)
{
    if (over_soft(c)) compact(c, extra, nodes_over(c));
}

/* ---- setup ---- */

int gram_gc_init(struct gram_core *c, const struct gram *g)
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
    gram_gc_begin_pass(c);
    int rc = push_alts(c, g->root, 0);
    if (!rc) rc = drain(c);
    if (!rc) rc = gram_gc_finish_set(c, &c->start.set);
    if (!rc && c->start.set == GS_DEAD) rc = ERR_STATE;
    c->cur = c->start;
    return rc;
}

void gram_gc_free(struct gram_core *c)
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

