/* tok_bpe: BPE vocabularies with ranked merges ("gpt2" byte-level BPE and Gemma's "gemma4").
 *
 * What: tok_bpe_load reads tokenizer.ggml.merges (tok_load has chosen the pre-tokenizer) and
 * builds the merge table, the GPT-2 byte<->unicode map and the printed form of every token
 * (byte-level: each char back to its byte); tok_bpe_fragment
 * encodes one raw-text fragment as llama.cpp's llm_tokenizer_bpe_session does: split into words
 * (tok_pre.c), map each byte of a word to its printable unicode char (byte-level only), start
 * from one symbol per char, repeatedly merge the adjacent pair with the lowest merge rank
 * (ties: leftmost), and emit each final symbol's id, or its bytes as single-byte tokens
 * ("<0xHH>" for gemma4) when it is no token, dropping bytes that have no token either.
 *
 * Why this shape: llama.cpp is the reference, so its quirks are kept: invalid UTF-8 becomes
 * U+FFFD before splitting; Llama 3 vocabularies emit a word that is a whole token without
 * merging (ignore_merges); Gemma 4 keeps an all-newline word that is a token whole.
 * Merges are looked up by the ids of their two parts: one multiply-shift hash of two integers
 * per candidate pair, no string hashing in the merge loop, and the merged symbol's id comes
 * from the table. The loop is a binary heap over a doubly linked symbol list with stale entries
 * skipped (their size no longer adds up), so a word of n chars costs O(n log n).
 *
 * Untrusted merges (decided here, documented in tok.h): the array must be STRING-typed and at
 * most TOK_MAX_MERGES long; an entry is split at its first space after the first byte, like
 * llama.cpp; an entry without that space, or whose parts are not both tokens, is skipped and
 * counted in n_merges_skipped (llama.cpp keeps such entries, but they can only ever join
 * symbols that are not tokens, and Hugging Face refuses to load a tokenizer that has them; on
 * every file it accepts the ids are the same); a repeated pair keeps
 * its first rank. A merge whose result is no token is kept, as in llama.cpp: its symbol is
 * emitted byte by byte.
 *
 * Invariants: m_left/m_right are valid ids, m_res is an id or -1, rank = index; the hash holds
 * each (left, right) pair once. Symbols carry their id (-1 when the text is no token), which is
 * what makes id-keyed lookup exact: a pair is looked up only when both ids are valid. */
#include "tok_int.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GPT-2 byte <-> unicode map ----
 * Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
 * bytes (controls, space, DEL, C1, NBSP, soft hyphen) get U+0100.. in byte order. */
static uint32_t byte_cp(unsigned b)
{
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7f && b <= 0xa0) return 0x100 + 33 + (b - 0x7f);
    if (b == 0xad) return 0x100 + 67;
    return b;
}

static int cp_byte(uint32_t cp)
{
    if (cp >= 0x100 && cp < 0x100 + 68) {
        uint32_t k = cp - 0x100;
        return k <= 0x20 ? (int)k : k < 67 ? (int)(0x7f + k - 33) : 0xad;
    }
    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff)) return (int)cp;
    return -1;
}

/* ---- merge table ---- */

static uint32_t pair_hash(int32_t l, int32_t r, uint32_t mask)
{
    uint64_t k = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    return (uint32_t)((k * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

/* Merge index of (l, r), or -1. */
static int64_t merge_find(const struct tok_vocab *v, int32_t l, int32_t r)
{
    for (uint32_t i = pair_hash(l, r, v->m_mask);; i = (i + 1) & v->m_mask) {
        uint32_t e = v->m_ht[i];
        if (!e) return -1;
        if (v->m_left[e - 1] == l && v->m_right[e - 1] == r) return e - 1;
    }
}

/* One batch of merge entries: parts and concatenations looked up together (tok_lookup_many
 * overlaps their cache misses; a big vocabulary's merges would otherwise take seconds). */
enum { MB = 256 };
struct merge_batch {
    struct tok_key key[3 * MB]; /* [0, MB) left parts, [MB, 2 MB) right parts, then results */
    int32_t id[3 * MB];
    char *cat;
    size_t cap_cat;
};

static int merge_batch_run(struct tok_vocab *v, struct merge_batch *mb, size_t m)
{
    struct tok_key *l = mb->key, *r = mb->key + MB, *c = mb->key + 2 * MB;
    int32_t *li = mb->id, *ri = mb->id + MB, *ci = mb->id + 2 * MB;
    tok_lookup_many(v, l, m, li);
    tok_lookup_many(v, r, m, ri);
    size_t need = 0;
    for (size_t i = 0; i < m; i++) need += li[i] >= 0 && ri[i] >= 0 ? l[i].n + r[i].n : 0;
    if (need > mb->cap_cat) {
        char *p = realloc(mb->cat, need);
        if (!p) return ERR_NOMEM;
        mb->cat = p;
        mb->cap_cat = need;
    }
    size_t w = 0;
    for (size_t i = 0; i < m; i++) {
        c[i] = (struct tok_key){mb->cat + w, 0};
        if (li[i] < 0 || ri[i] < 0) continue;
        memcpy(mb->cat + w, l[i].s, l[i].n);
        memcpy(mb->cat + w + l[i].n, r[i].s, r[i].n);
        c[i].n = l[i].n + r[i].n;
        w += c[i].n;
    }
    tok_lookup_many(v, c, m, ci);
#if defined(__GNUC__)
    for (size_t i = 0; i < m; i++) /* the pair slots, before the dependent probes below */
        if (li[i] >= 0 && ri[i] >= 0) __builtin_prefetch(&v->m_ht[pair_hash(li[i], ri[i], v->m_mask)]);
#endif
    for (size_t i = 0; i < m; i++) {
        if (li[i] < 0 || ri[i] < 0) {
            v->n_merges_skipped++;
            continue;
        }
        if (merge_find(v, li[i], ri[i]) >= 0) continue; /* a repeated pair keeps its first rank */
        uint32_t k = v->n_merges++;
        v->m_left[k] = li[i];
        v->m_right[k] = ri[i];
        v->m_res[k] = ci[i];
        uint32_t h = pair_hash(li[i], ri[i], v->m_mask);
        while (v->m_ht[h]) h = (h + 1) & v->m_mask;
        v->m_ht[h] = k + 1;
    }
    return 0;
}

static int load_merges(struct tok_vocab *v, const struct gguf_ctx *g, struct err_info *ei)
{
    uint32_t et;
    uint64_t cnt;
    const struct gguf_kv *kv;
    int rc = gguf_get_arr(g, "tokenizer.ggml.merges", &et, &cnt, &kv);
    if (rc == ERR_NOT_FOUND)
        return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: tokenizer.ggml.merges is missing (a '%s' "
                       "vocabulary needs its BPE merges)", v->model);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: tokenizer.ggml.merges is not an array");
    if (et != GGUF_VT_STRING)
        return err_set(ei, ERR_BAD_TYPE, kv->offset, "tokenizer: tokenizer.ggml.merges has elements "
                       "of type %s, expected string", gguf_vtype_name(et));
    if (cnt > TOK_MAX_MERGES)
        return err_set(ei, ERR_LIMIT, kv->offset, "tokenizer: %llu merges (limit %u)",
                       (unsigned long long)cnt, TOK_MAX_MERGES);
    uint32_t cap = 2;
    while (cap < 2 * cnt) cap <<= 1;
    v->m_mask = cap - 1;
    v->m_ht = calloc(cap, sizeof *v->m_ht);
    v->m_left = malloc((cnt + 1) * sizeof *v->m_left);
    v->m_right = malloc((cnt + 1) * sizeof *v->m_right);
    v->m_res = malloc((cnt + 1) * sizeof *v->m_res);
    struct merge_batch *mb = calloc(1, sizeof *mb);
    if (!v->m_ht || !v->m_left || !v->m_right || !v->m_res || !mb) {
        free(mb);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory for %llu merges",
                       (unsigned long long)cnt);
    }
    struct gguf_str_iter it;
    struct gguf_str s;
    size_t m = 0;
    gguf_str_iter_init(&it, kv);
    for (bool more = true; more && !rc;) {
        more = gguf_str_iter_next(&it, &s);
        if (more) {
            /* "left right", split at the first space after the first byte (llama.cpp); no
             * such space: both parts empty, which no token is. */
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
            size_t ll = sp ? (size_t)(sp - s.ptr) : 0;
            mb->key[m] = (struct tok_key){s.ptr, ll};
            mb->key[MB + m] = (struct tok_key){sp ? sp + 1 : s.ptr, sp ? s.len - ll - 1 : 0};
            m++;
        }
        if (m == MB || (!more && m)) {
            rc = merge_batch_run(v, mb, m);
            m = 0;
        }
    }
    free(mb->cat);
    free(mb);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: out of memory reading merges");
    return 0;
}

/* ---- printed pieces (byte-level) ----
 * llama_decode_text: each char of a NORMAL token maps back to its byte; a char outside the map
 * prints as "[UNK_BYTE_0x<hex of its UTF-8>" followed by the whole token text and "]". That is
 * quadratic in the token length, so where it would print more than 4 bytes per text byte + 64
 * (never in a real byte-level vocabulary, whose tokens are all mapped chars) the token prints
 * its raw text instead: a hostile file cannot make the printed forms outgrow the texts. */
static size_t decode_piece(const char *t, size_t n, uint32_t *cp, char *out)
{
    size_t m = tok_utf8_decode(t, n, false, cp), w = 0;
    for (size_t i = 0; i < m; i++) {
        int b = cp_byte(cp[i]);
        if (b >= 0) {
            if (out) out[w] = (char)b;
            w++;
            continue;
        }
        char u[4], hx[32];
        size_t ul = util_utf8_encode(cp[i], u), hl = 0;
        for (size_t k = 0; k < ul; k++) hl += (size_t)snprintf(hx + hl, sizeof hx - hl, "%02x", (unsigned char)u[k]);
        if (out) {
            memcpy(out + w, "[UNK_BYTE_0x", 12);
            memcpy(out + w + 12, hx, hl);
            memcpy(out + w + 12 + hl, t, n);
            out[w + 12 + hl + n] = ']';
        }
        w += 12 + hl + n + 1;
    }
    return w;
}

static int load_pieces(struct tok_vocab *v, struct err_info *ei)
{
    uint32_t *cp = malloc((v->max_len + 1) * sizeof *cp);
    v->dec_off = malloc(v->n * sizeof *v->dec_off);
    v->dec_len = malloc(v->n * sizeof *v->dec_len);
    if (!cp || !v->dec_off || !v->dec_len) {
        free(cp);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory");
    }
    size_t total = 0;
    for (uint32_t i = 0; i < v->n; i++) { /* lengths; dec_off[i] = 1 marks "prints raw" */
        size_t l = decode_piece(v->blob + v->off[i], v->len[i], cp, NULL);
        bool raw = l > 4 * (size_t)v->len[i] + 64;
        v->dec_len[i] = raw ? v->len[i] : (uint32_t)l;
        v->dec_off[i] = raw;
        total += v->dec_len[i];
        if (v->dec_len[i] > v->max_len) v->max_len = v->dec_len[i];
    }
    v->dec_blob = malloc(total + 1);
    if (!v->dec_blob) {
        free(cp);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory");
    }
    total = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        char *out = v->dec_blob + total;
        if (v->dec_off[i]) memcpy(out, v->blob + v->off[i], v->len[i]);
        else decode_piece(v->blob + v->off[i], v->len[i], cp, out);
        v->dec_off[i] = total;
        total += v->dec_len[i];
    }
    free(cp);
    return 0;
}

int tok_bpe_load(struct tok_vocab *v, const struct gguf_ctx *g, struct err_info *ei)
{
    int rc = load_merges(v, g, ei);
    if (rc) return rc;
    for (unsigned b = 0; b < 256; b++) {
        char u[4], raw = (char)b, hx[7];
        v->sym_byte[b] = tok_lookup(v, u, util_utf8_encode(byte_cp(b), u));
        /* A symbol that is no token falls back to single-byte tokens: the raw byte as a text of
         * its own (byte-level; llama.cpp looks the byte up, not its mapped char) or "<0xHH>". */
        snprintf(hx, sizeof hx, "<0x%02X>", b);
        v->fallback[b] = v->byte_level ? tok_lookup(v, &raw, 1) : tok_lookup(v, hx, 6);
    }
    for (unsigned c = 0; c < 128; c++) {
        char ch = (char)c;
        v->sym_ascii[c] = tok_lookup(v, &ch, 1);
    }
    return v->byte_level ? load_pieces(v, ei) : 0;
}

void tok_bpe_free(struct tok_vocab *v)
{
    free(v->m_left), free(v->m_right), free(v->m_res), free(v->m_ht);
    free(v->dec_blob), free(v->dec_off), free(v->dec_len);
}

/* ---- encoding ---- */

struct bsym {
    int32_t prev, next;
    uint32_t off, n; /* n == 0: merged into its left neighbour */
    int32_t id;      /* token of the text, or -1 */
};
struct bpair {
    uint32_t rank, size;
    int32_t left, right;
};

struct word_enc {
    const struct tok_vocab *v;
    struct bsym *sym;
    struct bpair *heap;
    size_t n_heap;
};

/* Heap order: lowest rank first, then the leftmost pair (llama.cpp's comparator). */
static bool before(const struct bpair *a, const struct bpair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void try_pair(struct word_enc *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || w->sym[l].id < 0 || w->sym[r].id < 0) return;
    int64_t m = merge_find(w->v, w->sym[l].id, w->sym[r].id);
    if (m < 0) return;
    struct bpair b = {(uint32_t)m, w->sym[l].n + w->sym[r].n, l, r};
    size_t i = w->n_heap++;
    while (i > 0 && before(&b, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = b;
}

static struct bpair pop_pair(struct word_enc *w)
{
    struct bpair top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* BPE over one word of ns symbols (text in word), emitting its tokens. */
static void bpe_word(struct word_enc *w, const char *word, int32_t ns, struct tok_out *o)
{
    const struct tok_vocab *v = w->v;
    struct bsym *sym = w->sym;
    w->n_heap = 0;
    for (int32_t i = 1; i < ns; i++) try_pair(w, i - 1, i);
    while (w->n_heap) {
        struct bpair b = pop_pair(w);
        struct bsym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        l->id = v->m_res[b.rank];
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        try_pair(w, l->prev, b.left);
        try_pair(w, b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) {
            tok_out_emit(o, sym[i].id);
            continue;
        }
        for (uint32_t j = 0; j < sym[i].n; j++) {
            int32_t id = v->fallback[(unsigned char)word[sym[i].off + j]];
            if (id >= 0) tok_out_emit(o, id);
        }
    }
}

void tok_bpe_scratch_free(struct tok_bpe_scratch *s)
{
    free(s->cp), free(s->seg), free(s->seg2), free(s->fl), free(s->word), free(s->sym), free(s->heap);
    memset(s, 0, sizeof *s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    void *q = realloc(*p, need * elem);
    if (!q) return ERR_NOMEM;
    *p = q;
    *cap = need;
    return 0;
}

int tok_bpe_fragment(const struct tok_vocab *v, struct tok_bpe_scratch *s, const char *text,
                     size_t len, struct tok_out *o)
{
    if (len == 0) return 0;
    if (len > s->cap_cp) {
        size_t c = len;
        uint32_t *cp = realloc(s->cp, c * sizeof *cp), *seg, *seg2;
        if (!cp) return ERR_NOMEM;
        s->cp = cp;
        if (!(seg = realloc(s->seg, c * sizeof *seg))) return ERR_NOMEM;
        s->seg = seg;
        if (!(seg2 = realloc(s->seg2, c * sizeof *seg2))) return ERR_NOMEM;
        s->seg2 = seg2;
        uint8_t *fl = realloc(s->fl, c);
        if (!fl) return ERR_NOMEM;
        s->fl = fl;
        s->cap_cp = c;
    }
    uint32_t n = (uint32_t)tok_utf8_decode(text, len, v->escape_spaces, s->cp);
    for (uint32_t i = 0; i < n; i++) s->fl[i] = tok_uni_class(s->cp[i]);
    uint32_t n_seg = tok_pre_split(v->pre, s->cp, s->fl, n, s->seg, s->seg2);

    /* Scratch for the longest word: <= 4 UTF-8 bytes per code point, each byte <= 2 bytes once
     * mapped; one symbol per byte at most; the heap holds <= 2 pairs per symbol. */
    uint32_t longest = 0;
    for (uint32_t i = 0, st = 0; i < n_seg; st = s->seg[i++])
        if (s->seg[i] - st > longest) longest = s->seg[i] - st;
    if (grow((void **)&s->word, &s->cap_word, 8 * (size_t)longest, 1) ||
        grow(&s->sym, &s->cap_sym, 4 * (size_t)longest, sizeof(struct bsym)) ||
        grow(&s->heap, &s->cap_heap, 8 * (size_t)longest, sizeof(struct bpair)))
        return ERR_NOMEM;

    struct word_enc w = {.v = v, .sym = s->sym, .heap = s->heap};
    for (uint32_t i = 0, st = 0; i < n_seg; st = s->seg[i++]) {
        size_t wl = 0;
        int32_t ns = 0;
        bool all_nl = true;
        for (uint32_t k = st; k < s->seg[i]; k++) {
            char u[4];
            size_t ul = util_utf8_encode(s->cp[k], u);
            all_nl = all_nl && s->cp[k] == '\n';
            if (!v->byte_level) { /* one symbol per char of the raw text */
                int32_t id = s->cp[k] < 128 ? v->sym_ascii[s->cp[k]] : tok_lookup(v, u, ul);
                w.sym[ns] = (struct bsym){ns - 1, ns + 1, (uint32_t)wl, (uint32_t)ul, id};
                memcpy(s->word + wl, u, ul);
                wl += ul, ns++;
                continue;
            }
            for (size_t j = 0; j < ul; j++) { /* one symbol per byte, as its mapped char */
                unsigned char b = (unsigned char)u[j];
                size_t ml = util_utf8_encode(byte_cp(b), s->word + wl);
                w.sym[ns] = (struct bsym){ns - 1, ns + 1, (uint32_t)wl, (uint32_t)ml, v->sym_byte[b]};
                wl += ml, ns++;
            }
        }
        w.sym[ns - 1].next = -1;
        if (v->ignore_merges || (v->pre == TOK_PRE_GEMMA4 && all_nl)) {
            int32_t id = tok_lookup(v, s->word, wl);
            if (id >= 0) {
                tok_out_emit(o, id);
                continue;
            }
        }
        bpe_word(&w, s->word, ns, o);
    }
    return 0;
}
