/* tok_hash: the vocabulary's text -> id hash (open addressing, FNV-1a), built once at load and
 * shared by the SentencePiece code in tok.c and the BPE code in tok_bpe.c.
 *
 * A slot holds hash << 32 | (id + 1), 0 = empty: the stored hash spares fetching the texts of
 * other ids while probing. */
#include "tok_int.h"

#include <string.h>

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

int32_t tok_lookup(const struct tok_vocab *v, const char *s, size_t n)
{
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & v->ht_mask;; i = (i + 1) & v->ht_mask) {
        uint64_t e = v->ht[i];
        if (!e) return -1;
        uint32_t id = (uint32_t)e - 1; /* the stored hash spares fetching other texts */
        if ((uint32_t)(e >> 32) == h && v->len[id] == n && memcmp(v->blob + v->off[id], s, n) == 0)
            return (int32_t)id;
    }
}

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Loading a vocabulary does millions of lookups into tables far larger than the caches, each
 * a chain of dependent misses (slot, length and offset, text). In groups, the misses of many
 * lookups overlap: hash all and prefetch their slots, then their candidates' lengths and
 * offsets, then their texts, then compare. Same answers as tok_lookup. */
void tok_lookup_many(const struct tok_vocab *v, const struct tok_key *k, size_t cnt, int32_t *out)
{
    enum { G = 32 };
    for (size_t b = 0; b < cnt; b += G) {
        size_t m = cnt - b < G ? cnt - b : G;
        uint32_t h[G];
        int64_t cand[G];
        for (size_t i = 0; i < m; i++) {
            h[i] = hash_bytes(k[b + i].s, k[b + i].n);
            PREFETCH(&v->ht[h[i] & v->ht_mask]);
        }
        for (size_t i = 0; i < m; i++) {
            cand[i] = -1;
            for (uint32_t j = h[i] & v->ht_mask; v->ht[j]; j = (j + 1) & v->ht_mask) {
                if ((uint32_t)(v->ht[j] >> 32) == h[i]) {
                    cand[i] = (uint32_t)v->ht[j] - 1;
                    PREFETCH(&v->len[cand[i]]);
                    PREFETCH(&v->off[cand[i]]);
                    break;
                }
            }
        }
        for (size_t i = 0; i < m; i++)
            if (cand[i] >= 0) PREFETCH(v->blob + v->off[cand[i]]);
        for (size_t i = 0; i < m; i++) {
            const struct tok_key *q = &k[b + i];
            int64_t c = cand[i];
            if (c < 0) out[b + i] = -1; /* no slot with this hash: absent */
            else if (v->len[c] == q->n && memcmp(v->blob + v->off[c], q->s, q->n) == 0) out[b + i] = (int32_t)c;
            else out[b + i] = tok_lookup(v, q->s, q->n); /* a hash collision: the full probe */
        }
    }
}


/* The hash of every token text, in id order so a duplicate names its first id; slots are
 * prefetched a group at a time (see tok_lookup_many). v->ht must be zeroed with ht_mask + 1
 * slots (more than n). ERR_DUPLICATE when two ids have the same text. */
int tok_hash_build(struct tok_vocab *v, struct err_info *ei)
{
    for (uint32_t b = 0; b < v->n; b += 32) {
        uint32_t hv[32], m = v->n - b < 32 ? v->n - b : 32;
        for (uint32_t k = 0; k < m; k++) {
            hv[k] = hash_bytes(v->blob + v->off[b + k], v->len[b + k]);
            PREFETCH(&v->ht[hv[k] & v->ht_mask]);
        }
        for (uint32_t k = 0, i = b; k < m; k++, i++) {
            const char *p = v->blob + v->off[i];
            uint32_t h = hv[k] & v->ht_mask;
            for (; v->ht[h]; h = (h + 1) & v->ht_mask) {
                uint32_t dup = (uint32_t)v->ht[h] - 1;
                if ((uint32_t)(v->ht[h] >> 32) == hv[k] && v->len[dup] == v->len[i] &&
                    memcmp(v->blob + v->off[dup], p, v->len[i]) == 0)
                    return err_set(ei, ERR_DUPLICATE, ERR_NO_OFFSET, "tokenizer: duplicate token "
                                   "'%.*s' at ids %u and %u", (int)(v->len[i] > 64 ? 64 : v->len[i]),
                                   p, dup, i);
            }
            v->ht[h] = (uint64_t)hv[k] << 32 | (i + 1);
        }
    }
    return 0;
}
