/* gram_trans: transitions between stack sets, and the slow path of the per-byte step.
 *
 * A transition on a code point keeps the stacks whose top matches it, moves each past its
 * terminal and expands again (gram_stack.c); the result is interned as a new set and cached:
 * per set, a row of the 128 ASCII transitions, the transition on any non-ASCII character when
 * every top treats them alike, and others in a hash keyed by which tops matched. UTF-8 is decoded
 * here, byte by byte and strictly; while a character is unfinished the position keeps its bytes
 * and accepts a byte only if some top still matches a code point the character could become
 * (llama.cpp's partial-character check), so any byte string accepted is a prefix of the grammar's
 * language. The inline fast path over the cached ASCII row is gc_step in gram_step_int.h, for the
 * files that step bytes (gram_match.c, gram_tok.c); this file only fills the caches it reads.
 * Token transitions, unions of sets and the mask walk's uniform chains (gram_gc_chain) are
 * computed here as well. */
#include "gram_int.h"

#include <stdlib.h>
#include <string.h>

#define TRANS_HARD (1u << 20) /* cached transitions in the hash (between compactions) */

/* gram_byte_group's table for ASCII, and the bytes of each group in order (group g is
 * group_bytes[group_start[g] .. group_start[g + 1])); see gram_int.h for the groups. */
static const uint8_t byte_group[128] = {
     0,  1,  1,  1,  1,  1,  1,  1,  1,  2,  3,  1,  1,  4,  1,  1,
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,
     5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    38, 39, 39, 39, 39, 39, 39, 39, 39, 39, 21, 22, 23, 24, 25, 26,
    27, 40, 40, 40, 40, 40, 40, 41, 41, 41, 41, 41, 41, 41, 41, 41,
    41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 28, 29, 30, 31, 32,
    33, 42, 42, 42, 42, 42, 42, 43, 43, 43, 43, 43, 43, 43, 43, 43,
    43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 34, 35, 36, 37, 44,
};
static const uint8_t group_bytes[128] = {
      0,   1,   2,   3,   4,   5,   6,   7,   8,  11,  12,  14,  15,  16,  17,  18,
     19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,   9,  10,  13,
     32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,  43,  44,  45,  46,  47,
     58,  59,  60,  61,  62,  63,  64,  91,  92,  93,  94,  95,  96, 123, 124, 125,
    126,  48,  49,  50,  51,  52,  53,  54,  55,  56,  57,  65,  66,  67,  68,  69,
     70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,  81,  82,  83,  84,  85,
     86,  87,  88,  89,  90,  97,  98,  99, 100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 127,
};
static const uint8_t group_start[49] = {0,  1,  29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
                                        40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
                                        53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
                                        66, 75, 81, 101, 107, 127, 128, 128, 128, 128};

unsigned gram_byte_group(unsigned b) { return b >= 0x80 ? GRAM_GROUP_NONASCII : byte_group[b]; }

/* ---- transitions ---- */

static bool top_matches(const struct gram_core *c, uint32_t t, uint32_t cp)
{
    const struct gel *e = &c->g->el[c->npos[t]];
    if (e->op == GOP_CHAR) return e->a == cp;
    if (e->op == GOP_CLASS) return gram_class_has(c->g, e->a, cp);
    return false;
}

static uint32_t tkey_hash(uint64_t k) { return gc_mix3((uint32_t)k, (uint32_t)(k >> 32), 0x5bd1e995u); }

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

/* Which tops of set s (at most 32) match code point cp, as a bitmask. */
static uint32_t top_hits(const struct gram_core *c, uint32_t s, uint32_t cp)
{
    uint32_t off = c->sets[s].off, len = c->sets[s].len, hits = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = c->spool[off + i];
        if (t && top_matches(c, t, cp)) hits |= 1u << i;
    }
    return hits;
}

/* Set s (at most 32 tops) after a character that matched the tops in hits (non-zero). The
 * result depends only on which tops match, so it is cached under that bitmask: every ordinary
 * character inside a JSON string, say, shares one expansion. */
static int delta_hits(struct gram_core *c, uint32_t s, uint32_t hits, uint32_t *res)
{
    uint64_t key = ((uint64_t)s << 34) | (3ull << 32) | hits;
    if (trans_find(c, key, res)) return 0;
    gram_gc_begin_pass(c);
    uint32_t off = c->sets[s].off;
    for (uint32_t i = 0; i < 32; i++) {
        if ((hits >> i) & 1) {
            int rc = gram_gc_advance_top(c, c->spool[off + i]);
            if (rc) return rc;
        }
    }
    int rc = gram_gc_finish_set(c, res);
    return rc ? rc : trans_put(c, key, *res);
}

/* Set s after code point cp. */
static int delta_cp(struct gram_core *c, uint32_t s, uint32_t cp, uint32_t *res)
{
    uint32_t off = c->sets[s].off, len = c->sets[s].len;
    if (len <= 32) {
        uint32_t hits = top_hits(c, s, cp);
        if (!hits) {
            *res = GS_DEAD;
            return 0;
        }
        return delta_hits(c, s, hits, res);
    }
    gram_gc_begin_pass(c);
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = c->spool[off + i];
        if (t && top_matches(c, t, cp)) {
            int rc = gram_gc_advance_top(c, t);
            if (rc) return rc;
        }
    }
    return gram_gc_finish_set(c, res);
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

int gram_gc_step_slow(struct gram_core *c, struct gram_pos *p, unsigned b)
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

int gram_gc_token_step(struct gram_core *c, uint32_t s, int32_t tok, bool text, const int32_t *tokid,
                  uint32_t *res)
{
    uint64_t key = ((uint64_t)s << 34) | ((uint64_t)(text ? 2 : 1) << 32) | (uint32_t)tok;
    if (trans_find(c, key, res)) return 0;
    gram_gc_begin_pass(c);
    uint32_t off = c->sets[s].off, len = c->sets[s].len;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = c->spool[off + i];
        if (!t) continue;
        const struct gel *e = &c->g->el[c->npos[t]];
        bool hit = (e->op == GOP_TOKEN && tokid[e->a] == tok) ||
                   (e->op == GOP_NTOKEN && text && tokid[e->a] != tok);
        if (hit) {
            int rc = gram_gc_advance_top(c, t);
            if (rc) return rc;
        }
    }
    int rc = gram_gc_finish_set(c, res);
    if (!rc) rc = trans_put(c, key, *res);
    return rc;
}

int gram_gc_union(struct gram_core *c, uint32_t a, uint32_t b, uint32_t *res)
{
    if (a == GS_DEAD || a == b) {
        *res = b;
        return 0;
    }
    if (b == GS_DEAD) {
        *res = a;
        return 0;
    }
    gram_gc_begin_pass(c);
    const uint32_t ids[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        for (uint32_t i = 0; i < c->sets[ids[k]].len; i++) {
            uint32_t t = c->spool[c->sets[ids[k]].off + i];
            if (c->nmark[t] == c->pass) continue;
            c->nmark[t] = c->pass;
            int rc = gram_gc_push_out(c, t);
            if (rc) return rc;
        }
    }
    return gram_gc_finish_set(c, res);
}

int gram_gc_empty_set(struct gram_core *c, uint32_t *res)
{
    const uint32_t zero = 0;
    return gram_gc_set_intern(c, &zero, 1, res);
}

/* The uniform step of set s for the mask walk: H = the tops most printable ASCII characters
 * match; ugroups = the byte groups whose every byte matches exactly H (the non-ASCII group when
 * every character >= 0x80 does), usucc = the set all of them lead to. */
static int uniform(struct gram_core *c, uint32_t s)
{
    if (c->sets[s].flags & GSF_UNI_KNOWN) return 0;
    uint64_t groups = 0;
    uint32_t succ = GS_DEAD;
    if (c->sets[s].len <= 32) {
        uint32_t hits[128] = {0}, best = 0, best_n = 0;
        for (uint32_t i = 0; i < c->sets[s].len; i++) { /* every ASCII byte at once, from the bitmaps */
            uint32_t t = c->spool[c->sets[s].off + i];
            const struct gel *e = t ? &c->g->el[c->npos[t]] : NULL;
            if (e && e->op == GOP_CHAR && e->a >= 1 && e->a < 128) hits[e->a] |= 1u << i; /* 0 never matches */
            if (!e || e->op != GOP_CLASS) continue;
            for (int w = 0; w < 2; w++)
                for (uint64_t m = c->g->cls[e->a].asc[w]; m; m &= m - 1) hits[w * 64 + __builtin_ctzll(m)] |= 1u << i;
        }
        uint32_t val[16], cnt[16], nd = 0; /* the most frequent non-empty match */
        for (unsigned b = 0x20; b < 0x7f; b++) {
            if (!hits[b]) continue;
            uint32_t k = 0;
            while (k < nd && val[k] != hits[b]) k++;
            if (k == nd) {
                if (nd == 16) continue; /* rare: so many distinct matches, no long uniform run */
                val[nd] = hits[b], cnt[nd++] = 0;
            }
            if (++cnt[k] > best_n) best = val[k], best_n = cnt[k];
        }
        for (unsigned grp = 1; best && grp < GRAM_GROUP_NONASCII; grp++) { /* not 0: NUL */
            bool all = group_start[grp] < group_start[grp + 1];
            for (unsigned k = group_start[grp]; k < group_start[grp + 1] && all; k++) all = hits[group_bytes[k]] == best;
            if (all) groups |= 1ull << grp;
        }
        uint8_t f = c->sets[s].flags;
        if (best && (f & GSF_NA_UNIFORM) && (f & GSF_NA_ALL) && top_hits(c, s, 0x80) == best)
            groups |= 1ull << GRAM_GROUP_NONASCII;
        int rc;
        if (best && (rc = delta_hits(c, s, best, &succ))) return rc;
    }
    c->sets[s].ugroups = groups;
    c->sets[s].usucc = succ;
    c->sets[s].flags |= GSF_UNI_KNOWN;
    return 0;
}

int gram_gc_chain(struct gram_core *c, uint32_t s, uint32_t cap, uint64_t *groups, uint32_t *len)
{
    int rc = uniform(c, s);
    if (rc) return rc;
    *groups = c->sets[s].ugroups;
    if (c->sets[s].flags & GSF_CHAIN_KNOWN) {
        *len = c->sets[s].chain;
        return 0;
    }
    uint32_t n = 0, cur = s;
    while (*groups && n < cap) {
        if ((rc = uniform(c, cur))) return rc;
        const struct gset_info *ci = &c->sets[cur];
        if ((ci->ugroups & *groups) != *groups || ci->usucc == GS_DEAD) break;
        n++;
        if (ci->usucc == cur || ci->usucc == s) { /* back on the chain: it never ends */
            n = UINT32_MAX;
            break;
        }
        cur = ci->usucc;
    }
    c->sets[s].chain = n; /* == cap: at least cap */
    c->sets[s].flags |= GSF_CHAIN_KNOWN;
    *len = c->sets[s].chain;
    return 0;
}
