/* gram_match: the byte-level matcher: positions advanced byte by byte through the inline step
 * (gram_step_int.h), all or nothing for a run of bytes (gram_gc_walk, also used by gram_tok.c for
 * a token's bytes), and the public gram_matcher_feed / try / next_bytes / reset over them.
 *
 * A feed never keeps a partial advance: the position moves only when every byte is accepted, and
 * long feeds compact the core every 1024 bytes (keeping the position in progress), so memory
 * stays bounded whatever the length of the text. */
#include "gram_step_int.h"

#include <string.h>

int gram_gc_walk(struct gram_core *c, struct gram_pos *p, const uint8_t *s, size_t n)
{
    struct gram_pos q = *p;
    for (size_t i = 0; i < n; i++) {
        int rc = gc_step(c, &q, s[i]);
        if (rc) return rc;
    }
    *p = q;
    return 0;
}

/* ---- byte-level matcher API ---- */

int gram_matcher_feed(struct gram_matcher *m, const void *bytes, size_t n, size_t *n_ok)
{
    if (n_ok) *n_ok = 0;
    if (!m || !m->c || (!bytes && n)) return ERR_INVALID;
    struct gram_core *c = m->c;
    gram_gc_maybe_compact(c, NULL);
    struct gram_pos q = c->cur;
    const uint8_t *s = bytes;
    for (size_t i = 0; i < n; i++) {
        if ((i & 1023) == 1023) gram_gc_maybe_compact(c, &q); /* long feeds stay bounded */
        int rc = gc_step(c, &q, s[i]);
        if (rc) {
            if (n_ok) *n_ok = i;
            return rc;
        }
    }
    c->cur = q;
    if (n_ok) *n_ok = n;
    return 0;
}

int gram_matcher_try(struct gram_matcher *m, const void *bytes, size_t n)
{
    if (!m || !m->c || (!bytes && n)) return ERR_INVALID;
    gram_gc_maybe_compact(m->c, NULL);
    struct gram_pos q = m->c->cur;
    const uint8_t *s = bytes;
    for (size_t i = 0; i < n; i++) {
        if ((i & 1023) == 1023) gram_gc_maybe_compact(m->c, &q);
        int rc = gc_step(m->c, &q, s[i]);
        if (rc) return rc;
    }
    return 0;
}

bool gram_matcher_can_end(const struct gram_matcher *m)
{
    return m && m->c && gp_can_end(m->c, m->c->cur);
}

bool gram_matcher_complete(const struct gram_matcher *m)
{
    if (!m || !m->c) return false;
    const struct gram_core *c = m->c;
    return c->cur.part == 0 && !(c->sets[c->cur.set].flags & (GSF_CHARS | GSF_TOKENS));
}

int gram_matcher_next_bytes(struct gram_matcher *m, uint64_t set[4])
{
    memset(set, 0, 4 * sizeof *set);
    if (!m || !m->c) return 0;
    gram_gc_maybe_compact(m->c, NULL);
    int n = 0;
    for (unsigned b = 0; b < 256; b++) {
        struct gram_pos q = m->c->cur;
        if (gc_step(m->c, &q, b) == 0) {
            set[b >> 6] |= 1ull << (b & 63);
            n++;
        }
    }
    return n;
}

void gram_matcher_reset(struct gram_matcher *m)
{
    if (m && m->c) m->c->cur = m->c->start;
}
