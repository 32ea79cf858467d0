/* fuzz_schema: libFuzzer harness for the JSON Schema converter (src/gram/gram_schema*.c).
 *
 * Each input is schema text, converted with options taken from its length (plain or tool mode,
 * compact or bounded whitespace, objects in any order up to 1..7 keys). The contract checked:
 *  - a refusal carries its code in err_info, a message, and is one of the documented codes;
 *  - an accepted schema gives NUL-terminated GBNF of the stated length that gram_parse accepts;
 *  - a random walk through that grammar (bytes chosen by the input itself), once it may end,
 *    is JSON that jansson parses (unless a number exceeds jansson's 64-bit range) and that the
 *    test-side validator (tests/jsval.h) does not reject: the grammar never accepts an instance
 *    the schema rejects. jsval's "I do not implement this" (-1) skips the last check.
 *
 * Build: make fuzz (links jansson); seeds: tests/fuzz/seeds_schema.c. */
#include "gram/gram.h"
#include "gram/gram_schema.h"

#include "jsval.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int allowed_refusal(int rc)
{
    return rc == ERR_SYNTAX || rc == ERR_INVALID || rc == ERR_UNSUPPORTED || rc == ERR_LIMIT;
}

/* Walk the grammar with the input's bytes as choices; returns the text length or 0. */
static size_t walk(struct gram_matcher *m, const uint8_t *rnd, size_t nr, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t step = 0; n + 1 < cap; step++) {
        unsigned r = nr ? rnd[step % nr] ^ (unsigned)(step * 131u) : (unsigned)step;
        if (gram_matcher_can_end(m) && (r % 4 == 0 || gram_matcher_complete(m))) return n;
        uint64_t set[4];
        int k = gram_matcher_next_bytes(m, set);
        if (k <= 0) return 0;
        /* prefer bytes that close things, so walks end */
        static const char close[] = "\"}]0";
        int pick = -1;
        for (size_t i = 0; i < sizeof close - 1 && pick < 0 && (r & 8); i++) {
            unsigned char b = (unsigned char)close[i];
            if (set[b / 64] >> (b % 64) & 1) pick = b;
        }
        int want = (int)((r >> 4) % (unsigned)k);
        for (int b = 0; b < 256 && pick < 0; b++)
            if ((set[b / 64] >> (b % 64) & 1) && want-- == 0) pick = b;
        char c = (char)pick;
        if (gram_matcher_feed(m, &c, 1, NULL) != 0) abort(); /* next_bytes said it was allowed */
        out[n++] = c;
    }
    return 0;
}

static void check_text(const char *schema_text, size_t schema_len, const char *text, size_t n)
{
    json_error_t je;
    json_t *x = json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!x) {
        if (strstr(je.text, "too big") || strstr(je.text, "overflow")) return;
        fprintf(stderr, "grammar produced non-JSON (%s): %.*s\n", je.text, (int)n, text);
        abort();
    }
    json_t *s = json_loadb(schema_text, schema_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    char why[256];
    if (s && jsval_check(s, x, why, sizeof why) == 0) {
        fprintf(stderr, "grammar accepted an invalid instance (%s): %.*s\n", why, (int)n, text);
        abort();
    }
    json_decref(s);
    json_decref(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    struct gram_schema_opts o;
    gram_schema_opts_default(&o);
    o.mode = size & 1 ? GRAM_SCHEMA_TOOL : GRAM_SCHEMA_PLAIN;
    o.ws = size & 2 ? 1 : 0;
    o.any_order_max = 1 + (unsigned)(size % 7);
    char *g = (char *)1;
    size_t n = 12345;
    struct err_info ei;
    err_clear(&ei);
    int rc = gram_schema_to_gbnf((const char *)data, size, &o, &g, &n, &ei);
    if (rc) {
        if (g != NULL || ei.code != rc || !ei.msg[0] || !allowed_refusal(rc)) abort();
        return 0;
    }
    if (!g || strlen(g) != n) abort();
    struct gram *gr = NULL;
    err_clear(&ei);
    if (gram_parse(g, n, &gr, &ei)) {
        fprintf(stderr, "converter output does not parse: %s\n%s", ei.msg, g);
        abort();
    }
    struct gram_matcher m = {0};
    if (gram_matcher_init(&m, gr, NULL, &ei) == 0) {
        char text[512];
        for (int t = 0; t < 3; t++) {
            gram_matcher_reset(&m);
            size_t tn = walk(&m, data + t, size > (size_t)t ? size - (size_t)t : 0, text, sizeof text);
            if (tn) check_text((const char *)data, size, text, tn);
        }
    }
    gram_matcher_free(&m);
    gram_free(gr);
    free(g);
    return 0;
}
