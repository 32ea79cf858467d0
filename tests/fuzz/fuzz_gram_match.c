/* fuzz_gram_match: libFuzzer harness for the grammar matcher: a random grammar and random
 * bytes. The first input byte chooses the form: odd = GBNF text up to the first NUL, then the
 * bytes to feed; even = a grammar generated from the input (rules, alternatives, literals with
 * multi-byte characters, classes, references, groups, every quantifier), so most inputs are
 * valid grammars. Then the byte contract (gram_fuzz.h) on the bytes, and a token walk over a
 * synthetic vocabulary where the trie mask must equal the per-token reference. */
#include "gram_fuzz.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct gen {
    const uint8_t *p;
    size_t n, i;
    char out[4096];
    size_t len;
};

static unsigned take(struct gen *s) { return s->i < s->n ? s->p[s->i++] : 0; }

static void put(struct gen *s, const char *t)
{
    size_t l = strlen(t);
    if (s->len + l < sizeof s->out) {
        memcpy(s->out + s->len, t, l);
        s->len += l;
    }
}

static void gen_item(struct gen *s, unsigned n_rules, int depth);

/* 1-3 alternatives of up to max_items - 1 items each. */
static void gen_alts(struct gen *s, unsigned n_rules, int depth, unsigned max_items)
{
    unsigned alts = 1 + take(s) % 3;
    for (unsigned a = 0; a < alts; a++) {
        if (a) put(s, " | ");
        unsigned items = take(s) % max_items;
        for (unsigned k = 0; k < items; k++) {
            put(s, " ");
            gen_item(s, n_rules, depth);
        }
    }
}

static void gen_item(struct gen *s, unsigned n_rules, int depth)
{
    static const char *lits[] = {"\"a\"", "\"ab\"", "\"\\u00e9\"", "\"\\\"\"", "\"\\n\"", "\"\\U0001F600\"", "\"\"",
                                 "\"12\"", "\"\xe6\x97\xa5\""};
    static const char *cls[] = {"[a-c]", "[^a]", "[0-9]", "[^\"\\\\]", ".", "[\\u00e0-\\u00ff]", "[^\\x00-\\x7f]",
                                "[ \\t\\n]", "[\xe3\x81\x81-\xe3\x82\x9f]"};
    static const char *quant[] = {"", "", "", "*", "+", "?", "{2}", "{0,3}", "{1,}", "{0,0}", "{2,4}"};
    unsigned c = take(s) % 8;
    char buf[32];
    if (c < 3) put(s, lits[take(s) % 9]);
    else if (c < 5) put(s, cls[take(s) % 9]);
    else if (c < 7 || depth > 3) {
        snprintf(buf, sizeof buf, "r%u", take(s) % n_rules);
        put(s, buf);
    } else {
        put(s, "(");
        gen_alts(s, n_rules, depth + 1, 3);
        put(s, ")");
    }
    put(s, quant[take(s) % 11]); /* after "" this is "nothing to repeat": a refusal, also fine */
}

static void gen_grammar(struct gen *s)
{
    unsigned n_rules = 1 + take(s) % 5;
    char buf[32];
    put(s, "root ::= r0\n");
    for (unsigned r = 0; r < n_rules; r++) {
        snprintf(buf, sizeof buf, "r%u ::= ", r);
        put(s, buf);
        gen_alts(s, n_rules, 0, 4);
        put(s, "\n");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 14)) return 0;
    struct gram *g = NULL;
    const uint8_t *text;
    size_t n_text;
    if (data[0] & 1) {
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        size_t glen = nul ? (size_t)(nul - data - 1) : size - 1;
        if (gram_parse((const char *)data + 1, glen, &g, NULL)) return 0;
        text = nul ? nul + 1 : data + size;
        n_text = nul ? size - glen - 2 : 0;
    } else {
        struct gen s = {data + 1, size - 1, 0, {0}, 0};
        gen_grammar(&s);
        if (gram_parse(s.out, s.len, &g, NULL)) return 0;
        text = data + 1 + s.i;
        n_text = size - 1 - s.i;
    }
    gf_feed_both(g, text, n_text);
    int names_tokens = 0; /* generated grammars name none; GBNF text may */
    for (size_t i = 1; i < size; i++) names_tokens |= data[i] == '<';
    gf_token_walk(g, names_tokens, text, n_text);
    gram_free(g);
    return 0;
}
