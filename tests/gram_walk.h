/* gram_walk: random texts from a grammar for tests (check_schema, check_tools): a walk over the
 * bytes the matcher allows, biased toward bytes that close things (caller's list) so most walks
 * end. Header-only; a deterministic xorshift generator the caller may reseed. */
#ifndef LMPIPE_TESTS_GRAM_WALK_H
#define LMPIPE_TESTS_GRAM_WALK_H

#include "gram/gram.h"

#include <stdint.h>
#include <string.h>

static uint64_t gw_rng = 0x9E3779B97F4A7C15ull;
static inline uint32_t gw_rnd(void)
{
    gw_rng ^= gw_rng << 13;
    gw_rng ^= gw_rng >> 7;
    gw_rng ^= gw_rng << 17;
    return (uint32_t)(gw_rng >> 11);
}

/* One text into out[0..cap) from the matcher's start: at each step, end when the grammar may
 * (with probability end_pct, always when nothing can follow), else one allowed byte, from
 * `prefer` with probability prefer_pct. Returns the length, or 0 when the walk gave up (cap
 * reached, or a dead end: -1 is never returned; a dead end cannot happen in a sound grammar). */
static inline size_t gw_walk(struct gram_matcher *m, const char *prefer, unsigned end_pct,
                             unsigned prefer_pct, char *out, size_t cap)
{
    size_t np = strlen(prefer);
    gram_matcher_reset(m);
    size_t n = 0;
    while (n + 1 < cap) {
        if (gram_matcher_can_end(m) && (gw_rnd() % 100 < end_pct || gram_matcher_complete(m)))
            return n;
        uint64_t set[4];
        int k = gram_matcher_next_bytes(m, set);
        if (k <= 0) return 0;
        int pick = -1;
        if (np && gw_rnd() % 100 < prefer_pct) {
            size_t start = gw_rnd() % np;
            for (size_t i = 0; i < np && pick < 0; i++) {
                unsigned char b = (unsigned char)prefer[(start + i) % np];
                if (set[b / 64] >> (b % 64) & 1) pick = b;
            }
        }
        if (pick < 0) {
            int want = (int)(gw_rnd() % (unsigned)k);
            for (int b = 0; b < 256 && pick < 0; b++)
                if ((set[b / 64] >> (b % 64) & 1) && want-- == 0) pick = b;
        }
        char c = (char)pick;
        if (gram_matcher_feed(m, &c, 1, NULL) != 0) return 0;
        out[n++] = c;
    }
    return 0;
}

#endif
