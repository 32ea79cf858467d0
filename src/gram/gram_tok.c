/* gram_tok: the matcher's life cycle and its token-level operations over a gram_vocab.
 *
 * check / accept walk one token's bytes through the cached byte transitions (a few table reads
 * per byte once warm). mask walks the vocabulary trie in preorder with the position reached at
 * each depth, pruning a subtree at its first rejected byte, and takes a whole subtree at once
 * when every byte group it uses moves the position along a uniform chain at least as long as the
 * subtree is deep (gram_gc_chain: inside a JSON string a loop, nearly the whole vocabulary; inside a
 * counted class until the count nears its maximum); accepted tokens are marked in trie order and
 * turned into ids by the cheaper polarity (set the accepted, or copy all text tokens and clear
 * the rest).
 * The last few masks are memoised by position. forced runs the same walk but stops at the second
 * allowed token.
 *
 * Token references in the grammar (<[id]>, <text>) are resolved here once per matcher. */
#include "gram_step_int.h"

#include <stdlib.h>
#include <string.h>

#define MEMO_N 8u
#define SKIP_MIN 8u /* test a subtree for a whole-subtree skip when it has more nodes */

/* ---- resolution of token references ---- */

/* The id spelling text: control before user-defined before others, lowest id; -1 if none. */
static int32_t find_token(const struct vocab_view *v, const char *text, size_t len)
{
    static const unsigned rank_flags[3] = {VOCAB_CONTROL, VOCAB_USER, 0};
    for (int r = 0; r < 3; r++) {
        for (uint32_t id = 0; id < v->n_vocab; id++) {
            unsigned f = v->flags[id];
            if (f & VOCAB_UNUSED) continue;
            if (rank_flags[r] ? !(f & rank_flags[r]) : (f & (VOCAB_CONTROL | VOCAB_USER))) continue;
            size_t l;
            const char *s = vocab_bytes(v, (int32_t)id, &l);
            if (l == len && memcmp(s, text, len) == 0) return (int32_t)id;
        }
    }
    return -1;
}

static int resolve_tokens(struct gram_core *c, const struct gram *g, const struct gram_vocab *gv,
                          struct err_info *ei)
{
    c->tokid = malloc(((size_t)g->n_toks + 1) * sizeof *c->tokid);
    if (!c->tokid) return ERR_NOMEM;
    for (uint32_t i = 0; i < g->n_toks; i++) {
        const struct gtokref *t = &g->toks[i];
        int64_t id = t->id;
        if (id < 0) {
            id = find_token(gv->v, g->text + t->text_off, t->text_len);
            if (id < 0)
                return err_set(ei, ERR_NOT_FOUND, t->src_off, "line %u:%u: no token of the vocabulary is %.*s",
                               t->line, t->col, (int)t->text_len, g->text + t->text_off);
        } else if (id >= gv->n_vocab) {
            return err_set(ei, ERR_NOT_FOUND, t->src_off, "line %u:%u: token id %lld is past the vocabulary (%u tokens)",
                           t->line, t->col, (long long)id, gv->n_vocab);
        }
        c->tokid[i] = (int32_t)id;
    }
    return 0;
}

/* ---- life cycle ---- */

int gram_matcher_init(struct gram_matcher *m, const struct gram *g, const struct gram_vocab *gv,
                      struct err_info *ei)
{
    if (!m) return ERR_INVALID;
    memset(m, 0, sizeof *m);
    if (!g) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "gram_matcher_init: no grammar");
    m->g = g;
    m->gv = gv;
    m->c = calloc(1, sizeof *m->c);
    if (!m->c) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    struct gram_core *c = m->c;
    int rc = gram_gc_init(c, g);
    if (!rc && gv) {
        rc = resolve_tokens(c, g, gv, ei);
        c->obits = calloc(gv->n_text / 64 + 2, sizeof *c->obits);
        c->dstack = malloc(((size_t)gv->max_depth + 2) * sizeof *c->dstack);
        c->memo_bits = malloc((size_t)MEMO_N * (gv->n_words + 1) * sizeof *c->memo_bits);
        c->memo_pos = calloc(MEMO_N, sizeof *c->memo_pos);
        c->memo_age = calloc(MEMO_N, sizeof *c->memo_age);
        c->memo_n = MEMO_N;
        if (!rc && (!c->obits || !c->dstack || !c->memo_bits || !c->memo_pos || !c->memo_age)) rc = ERR_NOMEM;
    }
    if (rc) {
        if (rc == ERR_LIMIT) err_set(ei, rc, ERR_NO_OFFSET, "grammar: more than %u parse stacks at the start", GRAM_MAX_STACKS);
        else err_set(ei, rc, ERR_NO_OFFSET, "grammar matcher: %s", err_str(rc));
        gram_matcher_free(m);
    }
    return rc;
}

void gram_matcher_free(struct gram_matcher *m)
{
    if (!m) return;
    if (m->c) {
        gram_gc_free(m->c);
        free(m->c);
    }
    memset(m, 0, sizeof *m);
}

/* ---- one token ---- */

static bool is_text(const struct vocab_view *v, int32_t tok)
{
    size_t len;
    vocab_bytes(v, tok, &len);
    return len && !(vocab_flags(v, tok) & (VOCAB_CONTROL | VOCAB_UNUSED | VOCAB_EOG));
}

/* Position after token tok from p, or ERR_REJECTED. A text token that ends inside a character
 * keeps only its text path (a position has one pending character). */
static int advance(struct gram_matcher *m, struct gram_pos p, int32_t tok, struct gram_pos *out)
{
    struct gram_core *c = m->c;
    const struct vocab_view *v = m->gv->v;
    if (tok < 0 || (uint32_t)tok >= m->gv->n_vocab) return ERR_INVALID;
    unsigned f = vocab_flags(v, tok);
    if (f & VOCAB_UNUSED) return ERR_REJECTED;
    bool text = is_text(v, tok);
    uint32_t set = GS_DEAD;
    int rc;
    if (text) {
        size_t len;
        const uint8_t *s = (const uint8_t *)vocab_bytes(v, tok, &len);
        struct gram_pos q = p;
        rc = gram_gc_walk(c, &q, s, len);
        if (rc && rc != ERR_REJECTED) return rc;
        if (!rc && q.part) {
            *out = q;
            return 0;
        }
        if (!rc) set = q.set;
    }
    if (p.part == 0 && (c->sets[p.set].flags & GSF_TOKENS)) {
        uint32_t ts;
        if ((rc = gram_gc_token_step(c, p.set, tok, text, c->tokid, &ts)) || (rc = gram_gc_union(c, set, ts, &set)))
            return rc;
    }
    if ((f & VOCAB_EOG) && gp_can_end(c, p)) {
        uint32_t es;
        if ((rc = gram_gc_empty_set(c, &es)) || (rc = gram_gc_union(c, set, es, &set))) return rc;
    }
    if (set == GS_DEAD) return ERR_REJECTED;
    *out = (struct gram_pos){set, 0};
    return 0;
}

int gram_tok_check(struct gram_matcher *m, int32_t tok)
{
    if (!m || !m->c || !m->gv) return ERR_STATE;
    gram_gc_maybe_compact(m->c, NULL);
    struct gram_pos q;
    return advance(m, m->c->cur, tok, &q);
}

int gram_tok_accept(struct gram_matcher *m, int32_t tok)
{
    if (!m || !m->c || !m->gv) return ERR_STATE;
    gram_gc_maybe_compact(m->c, NULL);
    struct gram_pos q;
    int rc = advance(m, m->c->cur, tok, &q);
    if (!rc) m->c->cur = q;
    return rc;
}

/* ---- the trie walk ---- */

static void range_set(uint64_t *b, uint32_t lo, uint32_t hi)
{
    if (lo >= hi) return;
    uint32_t wl = lo >> 6, wh = (hi - 1) >> 6;
    uint64_t ml = ~0ull << (lo & 63), mh = ~0ull >> (63 - ((hi - 1) & 63));
    if (wl == wh) {
        b[wl] |= ml & mh;
        return;
    }
    b[wl] |= ml;
    for (uint32_t w = wl + 1; w < wh; w++) b[w] = ~0ull;
    b[wh] |= mh;
}

struct walk {
    uint64_t *obits;  /* accepted tokens in trie order, or NULL */
    uint32_t limit;   /* stop once this many are accepted */
    uint32_t n_acc;   /* accepted so far */
    uint32_t first;   /* trie-order index of the first accepted */
};

static bool take(struct walk *w, uint32_t lo, uint32_t hi)
{
    if (lo >= hi) return false;
    if (!w->n_acc) w->first = lo;
    w->n_acc += hi - lo;
    if (w->obits) range_set(w->obits, lo, hi);
    return w->n_acc >= w->limit;
}

/* Visit the trie from position start; long by nature (one loop over preorder nodes, its three
 * cases written out for speed). */
static int walk_trie(struct gram_matcher *m, struct gram_pos start, struct walk *w)
{
    const struct gram_vocab *gv = m->gv;
    struct gram_core *c = m->c;
    struct gram_pos *st = c->dstack;
    const struct gram_vnode *nd = gv->node;
    st[0] = start;
    uint32_t i = 1, n = gv->n_nodes;
    while (i < n) {
        const struct gram_vnode *x = &nd[i];
        struct gram_pos q = st[x->depth - 1];
        int rc = gc_step(c, &q, x->byte);
        if (rc) {
            if (rc != ERR_REJECTED) return rc;
            i = x->end;
            continue;
        }
        /* Whole subtree: every byte below takes q's set one uniform step on (gram_gc_chain), for
         * at least as many steps as the subtree is deep. Also right inside an unfinished
         * character: its continuation bytes are below, so the non-ASCII group must be uniform,
         * which means every valid character completes into the next set. */
        if (x->end - i > SKIP_MIN && (x->flags & GV_SUBOK)) {
            uint64_t groups;
            uint32_t len;
            if ((rc = gram_gc_chain(c, q.set, gv->max_depth, &groups, &len))) return rc;
            if ((x->sig & ~groups) == 0 && x->height <= len) {
                if (take(w, x->ord_lo, nd[x->end].ord_lo)) return 0;
                i = x->end;
                continue;
            }
        }
        st[x->depth] = q;
        if (take(w, x->ord_lo, x[1].ord_lo)) return 0;
        i++;
    }
    return 0;
}

/* Trie-order marks -> id bitset, by whichever polarity touches fewer tokens. */
static void marks_to_ids(const struct gram_vocab *gv, const uint64_t *obits, uint32_t n_acc, uint64_t *bits)
{
    uint32_t nw = (gv->n_text + 63) / 64;
    if ((uint64_t)n_acc * 2 <= gv->n_text) {
        memset(bits, 0, gv->n_words * sizeof *bits);
        for (uint32_t w = 0; w < nw; w++) {
            for (uint64_t x = obits[w]; x; x &= x - 1) {
                int32_t id = gv->order[w * 64 + (uint32_t)__builtin_ctzll(x)];
                bits[id >> 6] |= 1ull << (id & 63);
            }
        }
        return;
    }
    memcpy(bits, gv->text_bits, gv->n_words * sizeof *bits);
    for (uint32_t w = 0; w < nw; w++) {
        uint64_t x = ~obits[w];
        if (w == nw - 1 && (gv->n_text & 63)) x &= (1ull << (gv->n_text & 63)) - 1;
        for (; x; x &= x - 1) {
            int32_t id = gv->order[w * 64 + (uint32_t)__builtin_ctzll(x)];
            bits[id >> 6] &= ~(1ull << (id & 63));
        }
    }
}

/* Tokens allowed by token references on top of the stacks and by the end of the grammar. */
static void add_non_text(struct gram_matcher *m, struct gram_pos p, uint64_t *bits)
{
    const struct gram_core *c = m->c;
    const struct gram_vocab *gv = m->gv;
    if (gp_can_end(c, p))
        for (uint32_t k = 0; k < gv->n_eog; k++) bits[gv->eog[k] >> 6] |= 1ull << (gv->eog[k] & 63);
    if (p.part || !(c->sets[p.set].flags & GSF_TOKENS)) return;
    const struct gset_info *si = &c->sets[p.set];
    for (uint32_t i = 0; i < si->len; i++) {
        uint32_t t = c->spool[si->off + i];
        const struct gel *e = &m->g->el[c->npos[t]];
        if (!t || (e->op != GOP_TOKEN && e->op != GOP_NTOKEN)) continue;
        int32_t id = c->tokid[e->a];
        uint64_t bit = 1ull << (id & 63), keep = bits[id >> 6] & bit;
        if (vocab_flags(gv->v, id) & VOCAB_UNUSED) continue;
        if (e->op == GOP_TOKEN) {
            bits[id >> 6] |= bit;
        } else {
            for (uint32_t w = 0; w < gv->n_words; w++) bits[w] |= gv->text_bits[w];
            bits[id >> 6] = (bits[id >> 6] & ~bit) | keep;
        }
    }
}

static int memo_find(const struct gram_core *c, struct gram_pos p)
{
    for (uint32_t i = 0; i < c->memo_n; i++)
        if (c->memo_age[i] && c->memo_pos[i].set == p.set && c->memo_pos[i].part == p.part) return (int)i;
    return -1;
}

static void memo_store(struct gram_core *c, struct gram_pos p, const uint64_t *bits, uint32_t nw)
{
    uint32_t v = 0;
    for (uint32_t i = 1; i < c->memo_n; i++)
        if (c->memo_age[i] < c->memo_age[v]) v = i;
    memcpy(c->memo_bits + (size_t)v * nw, bits, nw * sizeof *bits);
    c->memo_pos[v] = p;
    c->memo_age[v] = ++c->memo_clock ? c->memo_clock : (c->memo_clock = 1);
}

static bool any_bit(const uint64_t *bits, uint32_t nw)
{
    for (uint32_t w = 0; w < nw; w++)
        if (bits[w]) return true;
    return false;
}

int gram_tok_mask(struct gram_matcher *m, uint64_t *bits)
{
    if (!m || !m->c || !m->gv || !bits) return ERR_STATE;
    struct gram_core *c = m->c;
    const struct gram_vocab *gv = m->gv;
    gram_gc_maybe_compact(c, NULL);
    struct gram_pos p = c->cur;
    int k = memo_find(c, p);
    if (k >= 0) {
        memcpy(bits, c->memo_bits + (size_t)k * gv->n_words, gv->n_words * sizeof *bits);
        c->memo_age[k] = ++c->memo_clock ? c->memo_clock : (c->memo_clock = 1);
        return any_bit(bits, gv->n_words) ? 0 : ERR_DEAD_END;
    }
    memset(c->obits, 0, ((gv->n_text + 63) / 64) * sizeof *c->obits);
    struct walk w = {c->obits, UINT32_MAX, 0, 0};
    int rc = walk_trie(m, p, &w);
    if (rc) {
        memset(bits, 0, gv->n_words * sizeof *bits);
        return rc;
    }
    marks_to_ids(gv, c->obits, w.n_acc, bits);
    add_non_text(m, p, bits);
    memo_store(c, p, bits, gv->n_words);
    return any_bit(bits, gv->n_words) ? 0 : ERR_DEAD_END;
}

/* The only allowed token at p, -1 when none, -2 when several. */
static int only_token(struct gram_matcher *m, struct gram_pos p, int32_t *only)
{
    struct gram_core *c = m->c;
    const struct gram_vocab *gv = m->gv;
    int32_t cand = -1;
    uint32_t n = 0;
    if (gp_can_end(c, p)) {
        n += gv->n_eog;
        if (gv->n_eog) cand = gv->eog[0];
    }
    if (!p.part && (c->sets[p.set].flags & GSF_TOKENS)) {
        const struct gset_info *si = &c->sets[p.set];
        for (uint32_t i = 0; i < si->len && n < 2; i++) {
            uint32_t t = c->spool[si->off + i];
            const struct gel *e = &m->g->el[c->npos[t]];
            if (!t || (e->op != GOP_TOKEN && e->op != GOP_NTOKEN)) continue;
            int32_t id = c->tokid[e->a];
            if (e->op == GOP_NTOKEN) n += 2; /* all text tokens but one */
            else if (!(vocab_flags(gv->v, id) & VOCAB_UNUSED) && id != cand) n++, cand = id;
        }
    }
    if (n < 2) {
        struct walk w = {NULL, 2, 0, 0};
        int rc = walk_trie(m, p, &w);
        if (rc) return rc;
        if (w.n_acc == 1 && gv->order[w.first] != cand) n++, cand = gv->order[w.first];
        else if (w.n_acc > 1) n = 2;
    }
    *only = n == 0 ? -1 : n == 1 ? cand : -2;
    return 0;
}

int gram_tok_forced(struct gram_matcher *m, int32_t *toks, size_t cap, size_t *n)
{
    if (n) *n = 0;
    if (!m || !m->c || !m->gv || !n || (!toks && cap)) return ERR_STATE;
    gram_gc_maybe_compact(m->c, NULL);
    struct gram_pos p = m->c->cur;
    while (*n < cap) {
        int32_t t;
        int rc = only_token(m, p, &t);
        if (rc) return rc;
        if (t < 0) break;
        if ((rc = advance(m, p, t, &p))) return rc;
        toks[(*n)++] = t;
        if (vocab_flags(m->gv->v, t) & VOCAB_EOG) break;
    }
    return 0;
}
