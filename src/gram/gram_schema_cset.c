/* gram_schema_cset: sets of code points as sorted, disjoint, non-adjacent ranges (the alphabet of
 * the converter's pattern automata and of its character rules), and UTF-8 strings as code points.
 * Pure data: no grammar is written here. An allocation failure marks the set (oom) and leaves it
 * a valid, smaller set, so callers check once at the end. */
#include "gram_schema_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- code point sets ---- */

/* Room for n ranges. */
static int cset_reserve(struct gram_js_cset *s, size_t n)
{
    if (!gram_js_grow(&s->r, &s->cap, 2 * n, sizeof *s->r)) return 0;
    s->oom = 1;
    return -1;
}

void gram_js_cset_add(struct gram_js_cset *s, uint32_t lo, uint32_t hi)
{
    if (lo > hi) return;
    /* first range that ends at or after lo - 1 */
    size_t i = 0;
    while (i < s->n && s->r[2 * i + 1] + 1 < lo) i++;
    size_t j = i;
    while (j < s->n && s->r[2 * j] <= (hi == UINT32_MAX ? hi : hi + 1)) {
        if (s->r[2 * j] < lo) lo = s->r[2 * j];
        if (s->r[2 * j + 1] > hi) hi = s->r[2 * j + 1];
        j++;
    }
    if (j == i) { /* insert */
        if (cset_reserve(s, s->n + 1)) return;
        memmove(s->r + 2 * (i + 1), s->r + 2 * i, (s->n - i) * 2 * sizeof *s->r);
        s->n++;
    } else if (j > i + 1) { /* ranges i..j-1 collapse into i */
        memmove(s->r + 2 * (i + 1), s->r + 2 * j, (s->n - j) * 2 * sizeof *s->r);
        s->n -= j - i - 1;
    }
    s->r[2 * i] = lo;
    s->r[2 * i + 1] = hi;
}

void gram_js_cset_free(struct gram_js_cset *s)
{
    free(s->r);
    memset(s, 0, sizeof *s);
}

void gram_js_cset_add_set(struct gram_js_cset *d, const struct gram_js_cset *s)
{
    for (size_t i = 0; i < s->n; i++) gram_js_cset_add(d, s->r[2 * i], s->r[2 * i + 1]);
}

/* d = complement of s within [0, lim], surrogates excluded. */
void gram_js_cset_complement(struct gram_js_cset *d, const struct gram_js_cset *s, uint32_t lim)
{
    uint32_t next = 0;
    for (size_t i = 0; i < s->n && next <= lim; i++) {
        if (s->r[2 * i] > next) gram_js_cset_add(d, next, s->r[2 * i] - 1 < lim ? s->r[2 * i] - 1 : lim);
        next = s->r[2 * i + 1] + 1;
        if (next == 0) return; /* wrapped: s reached UINT32_MAX */
    }
    if (next <= lim) gram_js_cset_add(d, next, lim);
}

/* d = a \ [lo, hi] (d may not alias a). */
void gram_js_cset_minus_range(struct gram_js_cset *d, const struct gram_js_cset *a, uint32_t lo,
                             uint32_t hi)
{
    for (size_t i = 0; i < a->n; i++) {
        uint32_t x = a->r[2 * i], y = a->r[2 * i + 1];
        if (y < lo || x > hi) {
            gram_js_cset_add(d, x, y);
            continue;
        }
        if (x < lo) gram_js_cset_add(d, x, lo - 1);
        if (y > hi) gram_js_cset_add(d, hi + 1, y);
    }
}

void gram_js_cset_intersect(struct gram_js_cset *d, const struct gram_js_cset *a,
                            const struct gram_js_cset *b)
{
    size_t i = 0, j = 0;
    while (i < a->n && j < b->n) {
        uint32_t lo = a->r[2 * i] > b->r[2 * j] ? a->r[2 * i] : b->r[2 * j];
        uint32_t hi = a->r[2 * i + 1] < b->r[2 * j + 1] ? a->r[2 * i + 1] : b->r[2 * j + 1];
        if (lo <= hi) gram_js_cset_add(d, lo, hi);
        if (a->r[2 * i + 1] < b->r[2 * j + 1]) i++;
        else j++;
    }
}

int gram_js_cset_has(const struct gram_js_cset *s, uint32_t c)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (s->r[2 * m + 1] < c) lo = m + 1;
        else if (s->r[2 * m] > c) hi = m;
        else return 1;
    }
    return 0;
}

int gram_js_cset_eq(const struct gram_js_cset *a, const struct gram_js_cset *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->r, b->r, a->n * 2 * sizeof *a->r) == 0);
}

/* Every character a JSON string can hold: all code points but surrogates. */
void gram_js_cset_universe(struct gram_js_cset *s)
{
    gram_js_cset_add(s, 0, GRAM_JS_SUR_LO - 1);
    gram_js_cset_add(s, GRAM_JS_SUR_HI + 1, GRAM_JS_CP_MAX);
}

/* ---- UTF-8 ---- */

size_t gram_js_utf8_dec(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char b = s[0];
    size_t l = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (l > n) l = n;
    uint32_t v = l == 1 ? b : l == 2 ? b & 0x1Fu : l == 3 ? b & 0x0Fu : b & 0x07u;
    for (size_t i = 1; i < l; i++) v = (v << 6) | (s[i] & 0x3Fu);
    *cp = v;
    return l;
}

/* Code points of s into *out (malloc'd). */
int gram_js_utf8_cps(const char *s, size_t n, uint32_t **out, size_t *nout)
{
    uint32_t *v = malloc((n + 1) * sizeof *v);
    if (!v) return ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n;) i += gram_js_utf8_dec((const unsigned char *)s + i, n - i, &v[k++]);
    *out = v;
    *nout = k;
    return 0;
}
