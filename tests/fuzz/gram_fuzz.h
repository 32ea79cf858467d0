/* gram_fuzz: shared by the GBNF fuzz harnesses: the matcher's contract checked on any input
 * (a rejected feed changes nothing; next_bytes agrees with try byte by byte; feeding all at
 * once equals feeding byte by byte; complete means no byte can follow), and a small synthetic
 * vocabulary (every byte, pieces that end inside characters, control and end tokens) on which
 * the trie mask must equal a per-token reference built from the byte matcher. Any broken
 * contract traps, so libFuzzer keeps the input. */
#ifndef LMPIPE_TESTS_FUZZ_GRAM_FUZZ_H
#define LMPIPE_TESTS_FUZZ_GRAM_FUZZ_H

#include "gram/gram.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GF_CHECK(c) \
    do {            \
        if (!(c)) __builtin_trap(); \
    } while (0)

/* next_bytes must say exactly which single bytes try() accepts. */
static void gf_check_next(struct gram_matcher *m)
{
    uint64_t set[4];
    int n = gram_matcher_next_bytes(m, set), k = 0;
    for (unsigned b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        int in = (set[b >> 6] >> (b & 63)) & 1;
        int rc = gram_matcher_try(m, &c, 1);
        GF_CHECK(rc == 0 || rc == ERR_REJECTED || rc == ERR_LIMIT);
        if (rc != ERR_LIMIT) GF_CHECK(in == (rc == 0));
        k += in;
    }
    GF_CHECK(k == n);
    if (gram_matcher_complete(m)) GF_CHECK(n == 0);
}

/* Feed text at once and byte by byte into two matchers of g: same verdict, same place. */
static void gf_feed_both(const struct gram *g, const uint8_t *text, size_t n)
{
    struct gram_matcher a, b;
    if (gram_matcher_init(&a, g, NULL, NULL)) return;
    if (gram_matcher_init(&b, g, NULL, NULL)) {
        gram_matcher_free(&a);
        return;
    }
    size_t ok = 0;
    int rc = gram_matcher_feed(&a, text, n, &ok);
    GF_CHECK(rc == 0 || rc == ERR_REJECTED || rc == ERR_LIMIT);
    GF_CHECK(ok <= n && (rc != 0 || ok == n));
    size_t i = 0;
    for (; i < n; i++) {
        int before_end = gram_matcher_can_end(&b);
        int r = gram_matcher_feed(&b, text + i, 1, NULL);
        if (r) {
            GF_CHECK(gram_matcher_can_end(&b) == before_end); /* unchanged */
            break;
        }
    }
    if (rc != ERR_LIMIT) GF_CHECK(i == ok);
    if (rc == 0) GF_CHECK(gram_matcher_can_end(&a) == gram_matcher_can_end(&b));
    if (i < 64) gf_check_next(&b);
    gram_matcher_free(&a);
    gram_matcher_free(&b);
}

/* ---- a synthetic vocabulary ---- */

struct gf_vocab {
    struct vocab_view v;
    uint32_t off[512];
    char text[4096];
    uint8_t flags[512];
    struct gram_vocab gv;
    int ready;
};

static void gf_add(struct gf_vocab *x, const char *s, size_t n, uint8_t flags)
{
    uint32_t id = x->v.n_vocab++;
    memcpy(x->text + x->off[id], s, n);
    x->off[id + 1] = x->off[id] + (uint32_t)n;
    x->flags[id] = flags;
}

static struct gf_vocab *gf_vocab(void)
{
    static struct gf_vocab x;
    if (x.ready) return &x;
    static const char *pieces[] = {"ab", "abc", "\"", "\":", "{\"", "\"}", "\xc3\xa9", "\xe6\x97", "\xa5",
                                   "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f", "\x98\x80", "  ", "\n\n", "12",
                                   "true", "null", "<", "<|x|>", "a\"b", "\xed\xa0\x80", "\xc0\x80", "x\xff"};
    x.v.off = x.off;
    x.v.text = x.text;
    x.v.flags = x.flags;
    gf_add(&x, "</s>", 4, VOCAB_CONTROL | VOCAB_EOG);
    gf_add(&x, "<s>", 3, VOCAB_CONTROL);
    gf_add(&x, "<unk>", 5, VOCAB_UNUSED);
    gf_add(&x, "", 0, 0);
    for (unsigned b = 1; b < 256; b++) {
        char c = (char)b;
        gf_add(&x, &c, 1, b >= 0x80 ? VOCAB_BYTE : 0);
    }
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) gf_add(&x, pieces[k], strlen(pieces[k]), 0);
    /* families under shared prefixes, so subtrees are big enough for the mask walk to try
     * skipping them whole, with invalid UTF-8 and grammar-breaking bytes mixed in */
    static const char *pre[] = {"q", "\"", "\xc3\xa9", " ", "\xe6\x97"};
    static const char *suf[] = {"", "a", "b", "ab", "\"", "\\", "\n", "\xc3\xa9", "\xc3", "\xe6", "\xe6\x97\xa5",
                                "\xff", "\xc0\x80", "\xed\xa0\x80", "\x80", "1", "12", "}", "x\xf0\x9f\x98\x80"};
    for (size_t a = 0; a < sizeof pre / sizeof pre[0]; a++) {
        for (size_t b = 0; b < sizeof suf / sizeof suf[0]; b++) {
            char t[16];
            size_t la = strlen(pre[a]), lb = strlen(suf[b]);
            memcpy(t, pre[a], la);
            memcpy(t + la, suf[b], lb);
            gf_add(&x, t, la + lb, 0);
        }
    }
    gf_add(&x, "<|x|>", 5, VOCAB_CONTROL); /* a control token that spells text */
    gf_add(&x, "end", 3, VOCAB_EOG);
    x.v.bos = 1;
    x.v.eos = 0;
    GF_CHECK(gram_vocab_init(&x.gv, &x.v, NULL) == 0);
    x.ready = 1;
    return &x;
}

/* Walk tokens chosen by `pick`: at each position the mask must equal the per-token reference
 * (the byte matcher `ref` at the same position and the token rules of gram.h) whenever the
 * grammar names no tokens. */
static void gf_token_walk(const struct gram *g, int names_tokens, const uint8_t *pick, size_t n_pick)
{
    struct gf_vocab *x = gf_vocab();
    struct gram_matcher m, ref;
    if (gram_matcher_init(&m, g, &x->gv, NULL)) return;
    if (gram_matcher_init(&ref, g, NULL, NULL)) {
        gram_matcher_free(&m);
        return;
    }
    uint64_t bits[8]; /* 512 ids */
    for (size_t step = 0; step <= n_pick && step < 24; step++) {
        int rc = gram_tok_mask(&m, bits);
        if (rc == ERR_LIMIT) break;
        GF_CHECK(rc == 0 || rc == ERR_DEAD_END);
        int32_t allowed[512];
        uint32_t na = 0;
        for (uint32_t id = 0; id < x->v.n_vocab; id++) {
            int in = (bits[id >> 6] >> (id & 63)) & 1;
            GF_CHECK(in == (gram_tok_check(&m, (int32_t)id) == 0));
            if (in) allowed[na++] = (int32_t)id;
            if (names_tokens) continue;
            size_t len;
            const char *s = vocab_bytes(&x->v, (int32_t)id, &len);
            unsigned f = x->flags[id];
            int want = (f & VOCAB_UNUSED) ? 0
                       : (f & VOCAB_EOG)  ? gram_matcher_can_end(&ref)
                       : ((f & VOCAB_CONTROL) || !len) ? 0
                                                       : gram_matcher_try(&ref, s, len) == 0;
            GF_CHECK(in == want);
        }
        GF_CHECK((rc == ERR_DEAD_END) == (na == 0));
        int32_t run[4];
        size_t nrun;
        if (gram_tok_forced(&m, run, 4, &nrun) == 0) GF_CHECK((nrun > 0) == (na == 1));
        if (!na || step == n_pick) break;
        int32_t t = allowed[pick[step] % na];
        GF_CHECK(gram_tok_accept(&m, t) == 0);
        if (x->flags[t] & VOCAB_EOG) {
            GF_CHECK(gram_matcher_complete(&m) || names_tokens);
            break;
        }
        size_t len;
        const char *s = vocab_bytes(&x->v, t, &len);
        if (!names_tokens) GF_CHECK(gram_matcher_feed(&ref, s, len, NULL) == 0);
    }
    gram_matcher_free(&ref);
    gram_matcher_free(&m);
}

#endif
