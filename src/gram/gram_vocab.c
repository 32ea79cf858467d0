/* gram_vocab: the byte trie of a vocabulary's text tokens, built once per model.
 *
 * Text tokens are every id that is not control, unused or end-of-generation and has at least one
 * byte. Sorted by their bytes, they give the trie directly in preorder: each token adds the nodes
 * past its longest common prefix with the previous one, so a subtree is a contiguous range of
 * node indices [i, end[i]) and its tokens a contiguous range of trie-order positions
 * [ord_lo[i], ord_lo[end[i]]) (ord_lo has a sentinel at n_nodes). Tokens with equal bytes share a
 * node and sit next to each other.
 *
 * Per node (struct gram_vnode, one record so a walk that jumps over subtrees touches one cache
 * line per visit), for the mask walk to skip whole subtrees (gram_tok.c): sig = the byte groups
 * (gram_byte_group) of every edge strictly below the node, and GV_SUBOK when every path through
 * the node is a valid UTF-8 prefix read from the root. */
#include "gram_int.h"

#include <stdlib.h>
#include <string.h>

void gram_vocab_free(struct gram_vocab *gv)
{
    if (!gv) return;
    free(gv->node);
    free(gv->order);
    free(gv->text_bits);
    free(gv->eog);
    memset(gv, 0, sizeof *gv);
}

struct piece {
    const char *s;
    uint32_t len;
    int32_t id;
};

static int cmp_piece(const void *x, const void *y)
{
    const struct piece *a = x, *b = y;
    int r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    if (r) return r;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Strict UTF-8 prefix check, one byte: *st is (remaining << 8) | constraint, 0 between
 * characters. Returns false when b cannot continue. */
static bool utf8_next(uint32_t *st, unsigned b)
{
    uint32_t nrem = *st >> 8, lim = *st & 0xff;
    if (nrem == 0) {
        if (b < 0x80) return true;
        if (b >= 0xc2 && b <= 0xdf) *st = 1u << 8;
        else if (b == 0xe0) *st = (2u << 8) | 1;       /* A0..BF next */
        else if (b == 0xed) *st = (2u << 8) | 2;       /* 80..9F next */
        else if (b >= 0xe1 && b <= 0xef) *st = 2u << 8;
        else if (b == 0xf0) *st = (3u << 8) | 3;       /* 90..BF next */
        else if (b == 0xf4) *st = (3u << 8) | 4;       /* 80..8F next */
        else if (b >= 0xf1 && b <= 0xf3) *st = 3u << 8;
        else return false;
        return true;
    }
    if ((b & 0xc0) != 0x80) return false;
    if ((lim == 1 && b < 0xa0) || (lim == 2 && b > 0x9f) || (lim == 3 && b < 0x90) || (lim == 4 && b > 0x8f))
        return false;
    *st = (nrem - 1) << 8;
    return true;
}

/* Trie in preorder from the sorted pieces; parent[] and the UTF-8 states are scratch. */
static int build_trie(struct gram_vocab *gv, const struct piece *ids, uint32_t n, uint32_t *parent)
{
    uint32_t *path = malloc(((size_t)gv->max_depth + 1) * sizeof *path);
    uint32_t *ust = malloc(((size_t)gv->max_depth + 1) * sizeof *ust);
    if (!path || !ust) {
        free(path);
        free(ust);
        return ERR_NOMEM;
    }
    uint32_t nn = 1, nord = 0, plen = 0;
    const char *prev = "";
    struct gram_vnode *nd = gv->node;
    nd[0] = (struct gram_vnode){.flags = GV_VALID};
    path[0] = 0, ust[0] = 0, parent[0] = 0;
    for (uint32_t k = 0; k < n; k++) {
        size_t len = ids[k].len;
        const char *s = ids[k].s;
        uint32_t lcp = 0;
        while (lcp < plen && lcp < len && prev[lcp] == s[lcp]) lcp++;
        for (uint32_t d = plen; d > lcp; d--) nd[path[d]].end = nn; /* close finished subtrees */
        for (uint32_t d = lcp + 1; d <= len; d++) {
            uint32_t i = nn++, par = path[d - 1];
            unsigned b = (unsigned char)s[d - 1];
            ust[d] = ust[d - 1];
            bool ok = (nd[par].flags & GV_VALID) && utf8_next(&ust[d], b);
            nd[i] = (struct gram_vnode){.ord_lo = nord, .depth = (uint16_t)d, .byte = (uint8_t)b,
                                        .flags = ok ? GV_VALID : 0};
            parent[i] = par;
            path[d] = i;
        }
        gv->order[nord++] = ids[k].id;
        prev = s;
        plen = (uint32_t)len;
    }
    for (uint32_t d = plen; d > 0; d--) nd[path[d]].end = nn;
    nd[0].end = nn;
    nd[nn] = (struct gram_vnode){.end = nn, .ord_lo = nord};
    gv->n_nodes = nn;
    /* bottom-up summaries: children come after their parent in preorder */
    for (uint32_t i = 0; i < nn; i++)
        if (nd[i].flags & GV_VALID) nd[i].flags |= GV_SUBOK;
    for (uint32_t i = nn - 1; i > 0; i--) {
        uint32_t par = parent[i];
        nd[par].sig |= nd[i].sig | (1ull << gram_byte_group(nd[i].byte));
        if (nd[i].height + 1 > nd[par].height) nd[par].height = (uint16_t)(nd[i].height + 1);
        if (!(nd[i].flags & GV_SUBOK)) nd[par].flags &= (uint8_t)~GV_SUBOK;
    }
    free(path);
    free(ust);
    return 0;
}

int gram_vocab_init(struct gram_vocab *gv, const struct vocab_view *v, struct err_info *ei)
{
    memset(gv, 0, sizeof *gv);
    if (!v || !v->off || (!v->text && v->n_vocab) || !v->flags)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "gram_vocab_init: no vocabulary");
    gv->v = v;
    gv->n_vocab = v->n_vocab;
    gv->n_words = (v->n_vocab + 63) / 64;
    struct piece *ids = malloc(((size_t)v->n_vocab + 1) * sizeof *ids);
    gv->eog = malloc(((size_t)v->n_vocab + 1) * sizeof *gv->eog);
    gv->text_bits = calloc(gv->n_words + 1, sizeof *gv->text_bits);
    if (!ids || !gv->eog || !gv->text_bits) {
        free(ids);
        gram_vocab_free(gv);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    uint32_t n = 0;
    size_t total = 0;
    for (uint32_t id = 0; id < v->n_vocab; id++) {
        unsigned f = v->flags[id];
        size_t len;
        const char *s = vocab_bytes(v, (int32_t)id, &len);
        if (f & VOCAB_EOG) gv->eog[gv->n_eog++] = (int32_t)id;
        if ((f & (VOCAB_CONTROL | VOCAB_UNUSED | VOCAB_EOG)) || len == 0) continue;
        if (len > UINT16_MAX) {
            free(ids);
            gram_vocab_free(gv);
            return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "token %u is %zu bytes long (limit 65535)", id, len);
        }
        if (len > gv->max_depth) gv->max_depth = (uint32_t)len;
        ids[n++] = (struct piece){s, (uint32_t)len, (int32_t)id};
        total += len;
        gv->text_bits[id >> 6] |= 1ull << (id & 63);
    }
    gv->n_text = n;
    qsort(ids, n, sizeof *ids, cmp_piece);
    uint32_t *parent = malloc((total + 1) * sizeof *parent);
    gv->order = malloc(((size_t)n + 1) * sizeof *gv->order);
    gv->node = malloc((total + 2) * sizeof *gv->node);
    int rc = parent && gv->order && gv->node ? build_trie(gv, ids, n, parent) : ERR_NOMEM;
    if (!rc) { /* give back what the shared prefixes saved */
        struct gram_vnode *shrunk = realloc(gv->node, ((size_t)gv->n_nodes + 1) * sizeof *gv->node);
        if (shrunk) gv->node = shrunk;
    }
    free(parent);
    free(ids);
    if (rc) {
        gram_vocab_free(gv);
        return err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
    }
    return 0;
}
