/* fuzz_gbnf: libFuzzer harness for the GBNF parser. The input is grammar text. A refusal must
 * carry its code, a "line L:C: ..." message and an offset inside the input; an accepted grammar
 * must give a matcher (or a clear ERR_LIMIT), and the matcher's byte contract must hold on the
 * grammar's own text and on a random walk of its allowed bytes, and its trie mask over a small
 * synthetic vocabulary must equal the per-token reference (gram_fuzz.h). */
#include "gram_fuzz.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1 << 16)) return 0;
    struct gram *g = (struct gram *)&g;
    struct err_info ei;
    err_clear(&ei);
    int rc = gram_parse((const char *)data, size, &g, &ei);
    if (rc) {
        GF_CHECK(g == NULL && ei.code == rc && rc < 0);
        GF_CHECK(strncmp(ei.msg, "line ", 5) == 0 && ei.offset <= size);
        return 0;
    }
    GF_CHECK(g != NULL && gram_n_rules(g) > 0);
    gf_feed_both(g, data, size);
    gf_token_walk(g, memchr(data, '<', size) != NULL, data, size < 24 ? size : 24);
    struct gram_matcher m;
    if (gram_matcher_init(&m, g, NULL, NULL) == 0) {
        /* a walk through allowed bytes chosen by the input's own bytes */
        for (size_t i = 0; i < size && i < 256; i++) {
            uint64_t set[4];
            int n = gram_matcher_next_bytes(&m, set);
            if (n <= 0) break;
            int pick = data[i] % n;
            unsigned b = 0;
            for (; b < 256; b++)
                if (((set[b >> 6] >> (b & 63)) & 1) && pick-- == 0) break;
            uint8_t c = (uint8_t)b;
            int r = gram_matcher_feed(&m, &c, 1, NULL);
            if (r == ERR_LIMIT) break;
            GF_CHECK(r == 0);
        }
        gram_matcher_free(&m);
    }
    gram_free(g);
    return 0;
}
