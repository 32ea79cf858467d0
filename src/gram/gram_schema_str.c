/* gram_schema_str: JSON strings under constraints, as grammar.
 *
 * A JSON string is a sequence of characters (code points), each of which can be written several
 * ways: literally (not ", \ or a control character), as a short escape (\" \\ \/ \b \f \n \r \t),
 * as \uXXXX in either case, or as a surrogate pair for U+10000 and above. Constraints are on the
 * decoded characters, so every constraint is first an automaton over code points and only then
 * spelled: a set of code points becomes one rule listing all spellings of its members
 * (gram_js_cset_rule), which keeps the grammar exact whatever escapes a writer uses.
 *
 * pattern and format become deterministic automata: an ECMA-262 pattern is parsed into a tree,
 * compiled to a Thompson NFA, determinised over code point intervals and minimised; formats are
 * patterns we wrote. Several patterns and formats and minLength/maxLength (a counter) are
 * combined as a product automaton, explored from the start state, pruned to the states that can
 * still reach acceptance, and written as one right-linear rule per state. A state that only loops
 * on one set and accepts ends the recursion as `set{a,b}`, so `^[a-z]+$` with maxLength 64 is a
 * handful of rules, not 64. A deterministic automaton means one parse per text, so the matcher
 * never carries more than one stack for a string.
 *
 * Supported pattern subset (ECMA-262 without flags): alternation, groups ( ) (?: ) (?<name> ),
 * quantifiers * + ? {n} {n,} {n,m} (lazy forms too, same language), . and classes [...] [^...]
 * with ranges, \d \D \w \W \s \S, escapes \t \n \v \f \r \0 \cX \xHH \uHHHH (a surrogate pair
 * of \u escapes is one character), identity escapes of punctuation, ^ at the start and $ at the
 * end of a top-level alternative. A pattern is unanchored: without ^ (without $) any text may
 * come before (after) the match. Refused: backreferences, lookaround, \b \B, \p{...}, \u{...},
 * anchors elsewhere, non-BMP characters inside classes or under a quantifier (UTF-16 and code
 * point semantics disagree there). `.`, negated classes and \D \W \S match BMP characters only
 * (the two semantics agree there), so a match never depends on which one a validator uses. */
#include "gram_schema_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CP_MAX 0x10FFFFu
#define SUR_LO 0xD800u
#define SUR_HI 0xDFFFu

/* ---- code point sets ---- */

static int cset_reserve(struct gram_js_cset *s, size_t n)
{
    if (n <= s->cap) return 0;
    size_t cap = s->cap ? s->cap * 2 : 8;
    while (cap < n) cap *= 2;
    uint32_t *r = realloc(s->r, cap * 2 * sizeof *r);
    if (!r) {
        s->oom = 1;
        return -1;
    }
    s->r = r;
    s->cap = cap;
    return 0;
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

static void cset_add_set(struct gram_js_cset *d, const struct gram_js_cset *s)
{
    for (size_t i = 0; i < s->n; i++) gram_js_cset_add(d, s->r[2 * i], s->r[2 * i + 1]);
}

/* d = complement of s within [0, lim], surrogates excluded. */
static void cset_complement(struct gram_js_cset *d, const struct gram_js_cset *s, uint32_t lim)
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
static void cset_minus_range(struct gram_js_cset *d, const struct gram_js_cset *a, uint32_t lo,
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

static void cset_intersect(struct gram_js_cset *d, const struct gram_js_cset *a,
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

static int cset_has(const struct gram_js_cset *s, uint32_t c)
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

static int cset_eq(const struct gram_js_cset *a, const struct gram_js_cset *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->r, b->r, a->n * 2 * sizeof *a->r) == 0);
}

/* Every character a JSON string can hold: all code points but surrogates. */
static void cset_universe(struct gram_js_cset *s)
{
    gram_js_cset_add(s, 0, SUR_LO - 1);
    gram_js_cset_add(s, SUR_HI + 1, CP_MAX);
}

/* ---- spelling a set ---- */

/* One code point inside a GBNF class. */
static void put_class_cp(struct gram_js_buf *b, uint32_t c)
{
    if (c < 0x80 && c > 0x20 && c != 0x7f && !strchr("\\]-^[\"", (int)c)) {
        char ch = (char)c;
        gram_js_put(b, &ch, 1);
    } else if (c < 0x80) {
        gram_js_printf(b, "\\x%02x", (unsigned)c);
    } else if (c <= 0xFFFF) {
        gram_js_printf(b, "\\u%04x", (unsigned)c);
    } else {
        gram_js_printf(b, "\\U%08x", (unsigned)c);
    }
}

static void put_class(struct gram_js_buf *b, const struct gram_js_cset *s, int neg)
{
    gram_js_puts(b, neg ? "[^" : "[");
    for (size_t i = 0; i < s->n; i++) {
        put_class_cp(b, s->r[2 * i]);
        if (s->r[2 * i + 1] != s->r[2 * i]) {
            if (s->r[2 * i + 1] > s->r[2 * i] + 1) gram_js_puts(b, "-");
            put_class_cp(b, s->r[2 * i + 1]);
        }
    }
    gram_js_puts(b, "]");
}

/* Class of hex digits with values lo..hi, both letter cases. */
static void put_hex_digits(struct gram_js_buf *b, unsigned lo, unsigned hi)
{
    static const char dig[] = "0123456789abcdef";
    if (lo == hi && lo < 10) {
        gram_js_printf(b, "\"%c\"", dig[lo]);
        return;
    }
    gram_js_puts(b, "[");
    if (lo <= 9) {
        unsigned e = hi < 9 ? hi : 9;
        if (e > lo) gram_js_printf(b, "%c-%c", dig[lo], dig[e]);
        else gram_js_printf(b, "%c", dig[lo]);
    }
    if (hi >= 10) {
        unsigned s = lo > 10 ? lo : 10;
        for (int up = 0; up < 2; up++) {
            char a = (char)(up ? dig[s] - 32 : dig[s]), z = (char)(up ? dig[hi] - 32 : dig[hi]);
            if (z > a) gram_js_printf(b, "%c-%c", a, z);
            else gram_js_printf(b, "%c", a);
        }
    }
    gram_js_puts(b, "]");
}

/* width hex digits spelling a value in [lo, hi] (any case). */
static void put_hex_range(struct gram_js_buf *b, uint32_t lo, uint32_t hi, int width)
{
    if (width == 0) return;
    uint32_t p = 1;
    for (int i = 1; i < width; i++) p *= 16;
    unsigned dl = lo / p, dh = hi / p;
    uint32_t rl = lo % p, rh = hi % p;
    if (lo % (p * 16) == 0 && hi % (p * 16) == p * 16 - 1 && dh - dl == 15) {
        gram_js_printf(b, "[0-9a-fA-F]{%d}", width);
        return;
    }
    if (dl == dh) {
        put_hex_digits(b, dl, dl);
        if (width > 1) {
            gram_js_puts(b, " ");
            put_hex_range(b, rl, rh, width - 1);
        }
        return;
    }
    gram_js_puts(b, "(");
    int first = 1;
    unsigned ml = dl, mh = dh;
    if (rl != 0) {
        put_hex_digits(b, dl, dl);
        gram_js_puts(b, " ");
        put_hex_range(b, rl, p - 1, width - 1);
        first = 0;
        ml = dl + 1;
    }
    if (rh != p - 1) mh = dh - 1;
    if (ml <= mh && mh != UINT32_MAX) {
        if (!first) gram_js_puts(b, " | ");
        first = 0;
        put_hex_digits(b, ml, mh);
        if (width > 1) gram_js_printf(b, " [0-9a-fA-F]{%d}", width - 1);
    }
    if (rh != p - 1) {
        if (!first) gram_js_puts(b, " | ");
        put_hex_digits(b, dh, dh);
        gram_js_puts(b, " ");
        put_hex_range(b, 0, rh, width - 1);
    }
    gram_js_puts(b, ")");
}

/* "\\u" spellings of the BMP part of s (surrogates already excluded). */
static void put_u_escapes(struct gram_js_buf *b, const struct gram_js_cset *s, int *first)
{
    for (size_t i = 0; i < s->n && s->r[2 * i] <= 0xFFFF; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1] > 0xFFFF ? 0xFFFF : s->r[2 * i + 1];
        gram_js_puts(b, *first ? "\"\\\\u\" " : " | \"\\\\u\" ");
        *first = 0;
        put_hex_range(b, lo, hi, 4);
    }
}

static void put_pair(struct gram_js_buf *b, int *first, uint32_t h0, uint32_t h1, uint32_t l0,
                     uint32_t l1)
{
    gram_js_puts(b, *first ? "\"\\\\u\" " : " | \"\\\\u\" ");
    *first = 0;
    put_hex_range(b, h0, h1, 4);
    gram_js_puts(b, " \"\\\\u\" ");
    put_hex_range(b, l0, l1, 4);
}

/* Surrogate-pair spellings of the part of s above U+FFFF. */
static void put_pairs(struct gram_js_buf *b, const struct gram_js_cset *s, int *first)
{
    for (size_t i = 0; i < s->n; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
        if (hi < 0x10000) continue;
        if (lo < 0x10000) lo = 0x10000;
        uint32_t ha = 0xD800 + ((lo - 0x10000) >> 10), la = 0xDC00 + ((lo - 0x10000) & 0x3FF);
        uint32_t hb = 0xD800 + ((hi - 0x10000) >> 10), lb = 0xDC00 + ((hi - 0x10000) & 0x3FF);
        if (ha == hb) {
            put_pair(b, first, ha, ha, la, lb);
            continue;
        }
        uint32_t m0 = ha, m1 = hb;
        if (la != 0xDC00) {
            put_pair(b, first, ha, ha, la, 0xDFFF);
            m0 = ha + 1;
        }
        if (lb != 0xDFFF) m1 = hb - 1;
        if (m0 <= m1) put_pair(b, first, m0, m1, 0xDC00, 0xDFFF);
        if (lb != 0xDFFF) put_pair(b, first, hb, hb, 0xDC00, lb);
    }
}

/* The right side of a rule matching one character in s, any spelling. */
static void spell_set(struct gram_js_ctx *c, struct gram_js_buf *b, const struct gram_js_cset *s)
{
    struct gram_js_cset lit = {0}, tmp = {0}, tmp2 = {0}, comp = {0};
    /* literal: not a control, ", \ */
    cset_minus_range(&tmp, s, 0, 0x1f);
    cset_minus_range(&tmp2, &tmp, 0x22, 0x22);
    cset_minus_range(&lit, &tmp2, 0x5c, 0x5c);
    int first = 1;
    if (lit.n > 0) {
        /* the negated form when it is shorter (surrogates are no characters either way) */
        struct gram_js_cset with_sur = {0};
        cset_add_set(&with_sur, &lit);
        gram_js_cset_add(&with_sur, SUR_LO, SUR_HI);
        cset_complement(&comp, &with_sur, CP_MAX);
        gram_js_cset_free(&with_sur);
        if (comp.n < lit.n) put_class(b, &comp, 1);
        else put_class(b, &lit, 0);
        first = 0;
    }
    static const struct {
        uint32_t cp;
        char esc;
    } shorts[] = {{'"', '"'}, {'\\', '\\'}, {'/', '/'}, {8, 'b'},
                  {12, 'f'},  {10, 'n'},    {13, 'r'}, {9, 't'}};
    char esc[16];
    size_t ne = 0;
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++)
        if (cset_has(s, shorts[i].cp)) esc[ne++] = shorts[i].esc;
    if (ne > 0) {
        gram_js_puts(b, first ? "\"\\\\\" [" : " | \"\\\\\" [");
        for (size_t i = 0; i < ne; i++) {
            if (esc[i] == '\\') gram_js_puts(b, "\\\\");
            else gram_js_put(b, &esc[i], 1);
        }
        gram_js_puts(b, "]");
        first = 0;
    }
    put_u_escapes(b, s, &first);
    put_pairs(b, s, &first);
    if (first) gram_js_puts(b, gram_js_prim(c, GRAM_JS_P_NEVER));
    if (lit.oom || tmp.oom || tmp2.oom || comp.oom)
        gram_js_fail(c, ERR_NOMEM, "out of memory");
    gram_js_cset_free(&lit);
    gram_js_cset_free(&tmp);
    gram_js_cset_free(&tmp2);
    gram_js_cset_free(&comp);
}

/* ---- per-context caches: set rules, compiled patterns ---- */

struct dfa;
static void dfa_free(struct dfa *d);

struct cs_entry {
    struct gram_js_cset set;
    size_t rule;
};

struct pat_entry {
    char *src; /* pattern text (format entries: NULL) */
    size_t len;
    unsigned format;
    struct dfa *d; /* NULL: compile failed (error already recorded) */
};

struct gram_js_charset_memo {
    struct cs_entry *e;
    size_t n, cap;
    struct pat_entry *p;
    size_t np, capp;
};

static struct gram_js_charset_memo *memo(struct gram_js_ctx *c)
{
    if (!c->cs) {
        c->cs = calloc(1, sizeof *c->cs);
        if (!c->cs) gram_js_fail(c, ERR_NOMEM, "out of memory");
    }
    return c->cs;
}

void gram_js_str_ctx_free(struct gram_js_ctx *c)
{
    struct gram_js_charset_memo *m = c->cs;
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) gram_js_cset_free(&m->e[i].set);
    for (size_t i = 0; i < m->np; i++) {
        free(m->p[i].src);
        dfa_free(m->p[i].d);
    }
    free(m->e);
    free(m->p);
    free(m);
    c->cs = NULL;
}

const char *gram_js_cset_rule(struct gram_js_ctx *c, const struct gram_js_cset *s)
{
    struct gram_js_charset_memo *m = memo(c);
    if (!m || c->rc) return "";
    if (s->oom) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return "";
    }
    for (size_t i = 0; i < m->n; i++)
        if (cset_eq(&m->e[i].set, s)) return gram_js_rule_name(c, m->e[i].rule);
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct cs_entry *e = realloc(m->e, cap * sizeof *e);
        if (!e) {
            gram_js_fail(c, ERR_NOMEM, "out of memory");
            return "";
        }
        m->e = e;
        m->cap = cap;
    }
    size_t r = gram_js_rule_new(c, "char");
    if (r == SIZE_MAX) return "";
    struct cs_entry *e = &m->e[m->n];
    memset(e, 0, sizeof *e);
    cset_add_set(&e->set, s);
    e->rule = r;
    m->n++;
    struct gram_js_buf b = {0};
    spell_set(c, &b, s);
    gram_js_rule_set(c, r, &b);
    return gram_js_rule_name(c, r);
}

/* ---- UTF-8 ---- */

/* Decode one code point of well-formed UTF-8 (jansson's strings are); returns its length. */
static size_t utf8_dec(const unsigned char *s, size_t n, uint32_t *cp)
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
static int utf8_cps(const char *s, size_t n, uint32_t **out, size_t *nout)
{
    uint32_t *v = malloc((n + 1) * sizeof *v);
    if (!v) return ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n;) i += utf8_dec((const unsigned char *)s + i, n - i, &v[k++]);
    *out = v;
    *nout = k;
    return 0;
}

void gram_js_put_json_string(struct gram_js_buf *b, const char *s, size_t n)
{
    struct gram_js_buf t = {0};
    gram_js_put(&t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *e = NULL;
        switch (ch) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default: break;
        }
        if (e) gram_js_puts(&t, e);
        else if (ch < 0x20) gram_js_printf(&t, "\\u%04x", ch);
        else gram_js_put(&t, (const char *)&s[i], 1);
    }
    gram_js_put(&t, "\"", 1);
    if (t.oom) b->oom = 1;
    gram_js_put_lit(b, t.p ? t.p : "", t.n);
    gram_js_buf_free(&t);
}

/* ---- strings that are not one of a set of keys ---- */

struct trie {
    uint32_t cp;
    int end;                /* a key ends here */
    struct trie *kid, *sib; /* children sorted by cp */
};

static struct trie *trie_child(struct trie *t, uint32_t cp)
{
    struct trie **p = &t->kid;
    while (*p && (*p)->cp < cp) p = &(*p)->sib;
    if (*p && (*p)->cp == cp) return *p;
    struct trie *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->cp = cp;
    n->sib = *p;
    *p = n;
    return n;
}

static void trie_free(struct trie *t)
{
    while (t) {
        struct trie *s = t->sib;
        trie_free(t->kid);
        free(t);
        t = s;
    }
}

/* Rest of a string (closing quote included) after reaching trie node t. */
static void key_rest(struct gram_js_ctx *c, struct gram_js_buf *b, const struct trie *t,
                     const char *hint)
{
    const char *ch = gram_js_prim(c, GRAM_JS_P_CHAR);
    if (!t->kid) { /* a key ends here and nothing continues it: one more character at least */
        gram_js_printf(b, "%s+ \"\\\"\"", ch);
        return;
    }
    size_t r = gram_js_rule_new(c, hint);
    if (r == SIZE_MAX) return;
    gram_js_puts(b, gram_js_rule_name(c, r));
    struct gram_js_buf body = {0};
    int first = 1;
    if (!t->end) {
        gram_js_puts(&body, "\"\\\"\"");
        first = 0;
    }
    struct gram_js_cset kids = {0}, other = {0}, uni = {0};
    for (const struct trie *k = t->kid; k; k = k->sib) gram_js_cset_add(&kids, k->cp, k->cp);
    cset_universe(&uni);
    struct gram_js_cset all = {0};
    cset_complement(&all, &kids, CP_MAX);
    cset_intersect(&other, &all, &uni);
    gram_js_cset_free(&all);
    if (other.n > 0) {
        gram_js_printf(&body, "%s%s %s* \"\\\"\"", first ? "" : " | ", gram_js_cset_rule(c, &other),
                       ch);
        first = 0;
    }
    for (const struct trie *k = t->kid; k; k = k->sib) {
        struct gram_js_cset one = {0};
        gram_js_cset_add(&one, k->cp, k->cp);
        gram_js_printf(&body, "%s%s ", first ? "" : " | ", gram_js_cset_rule(c, &one));
        gram_js_cset_free(&one);
        first = 0;
        key_rest(c, &body, k, hint);
    }
    if (kids.oom || other.oom || uni.oom) gram_js_fail(c, ERR_NOMEM, "out of memory");
    gram_js_cset_free(&kids);
    gram_js_cset_free(&other);
    gram_js_cset_free(&uni);
    gram_js_rule_set(c, r, &body);
}

const char *gram_js_key_not_in(struct gram_js_ctx *c, const char *const *keys,
                               const size_t *len, size_t n, const char *hint)
{
    struct trie root = {0};
    for (size_t i = 0; i < n && !c->rc; i++) {
        struct trie *t = &root;
        for (size_t j = 0; j < len[i] && t;) {
            uint32_t cp;
            j += utf8_dec((const unsigned char *)keys[i] + j, len[i] - j, &cp);
            t = trie_child(t, cp);
        }
        if (!t) gram_js_fail(c, ERR_NOMEM, "out of memory");
        else t->end = 1;
    }
    size_t r = gram_js_rule_new(c, hint);
    if (r == SIZE_MAX) {
        trie_free(root.kid);
        return "";
    }
    struct gram_js_buf b = {0};
    gram_js_puts(&b, "\"\\\"\" ");
    if (!root.kid && !root.end) gram_js_printf(&b, "%s* \"\\\"\"", gram_js_prim(c, GRAM_JS_P_CHAR));
    else key_rest(c, &b, &root, hint);
    gram_js_rule_set(c, r, &b);
    trie_free(root.kid);
    return gram_js_rule_name(c, r);
}

/* ---- regular expressions: parse ---- */

enum { RX_SET, RX_CAT, RX_ALT, RX_REP, RX_EMPTY };

struct rxn {
    int type;
    int first, next; /* children (CAT, ALT, REP) as a sibling list */
    int set;         /* RX_SET: index into sets */
    int min, max;    /* RX_REP; max < 0: unbounded */
};

struct rx {
    const uint32_t *s; /* pattern code points */
    size_t n, i;
    struct rxn *nodes;
    size_t nn, capn;
    struct gram_js_cset *sets;
    size_t ns, caps;
    char *why;
    size_t why_len;
    int rc;
    int depth;
};

#define RX_MAX_DEPTH 100
#define RX_MAX_COUNT 1000

static int rx_fail(struct rx *p, int code, const char *msg)
{
    if (!p->rc) {
        p->rc = code;
        if (p->why && p->why_len) {
            size_t n = strlen(msg);
            if (n >= p->why_len) n = p->why_len - 1;
            memcpy(p->why, msg, n);
            p->why[n] = 0;
        }
    }
    return -1;
}

static int rx_node(struct rx *p, int type)
{
    if (p->rc) return -1;
    if (p->nn == p->capn) {
        size_t cap = p->capn ? p->capn * 2 : 32;
        if (cap > GRAM_JS_MAX_NFA) return rx_fail(p, ERR_LIMIT, "pattern too long");
        struct rxn *n = realloc(p->nodes, cap * sizeof *n);
        if (!n) return rx_fail(p, ERR_NOMEM, "out of memory");
        p->nodes = n;
        p->capn = cap;
    }
    struct rxn *n = &p->nodes[p->nn];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->first = n->next = n->set = -1;
    return (int)p->nn++;
}

/* A new empty set; returns its index. */
static int rx_set(struct rx *p)
{
    if (p->rc) return -1;
    if (p->ns == p->caps) {
        size_t cap = p->caps ? p->caps * 2 : 16;
        struct gram_js_cset *s = realloc(p->sets, cap * sizeof *s);
        if (!s) return rx_fail(p, ERR_NOMEM, "out of memory");
        p->sets = s;
        p->caps = cap;
    }
    memset(&p->sets[p->ns], 0, sizeof p->sets[0]);
    return (int)p->ns++;
}

static void rx_free(struct rx *p)
{
    for (size_t i = 0; i < p->ns; i++) gram_js_cset_free(&p->sets[i]);
    free(p->sets);
    free(p->nodes);
}

static int rx_peek(const struct rx *p, size_t k) { return p->i + k < p->n ? (int)p->s[p->i + k] : -1; }

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Predefined classes. BMP only for the negated ones (see the file comment). */
static void class_named(struct gram_js_cset *s, int name)
{
    struct gram_js_cset pos = {0};
    int lower = name | 0x20;
    if (lower == 'd') {
        gram_js_cset_add(&pos, '0', '9');
    } else if (lower == 'w') {
        gram_js_cset_add(&pos, '0', '9');
        gram_js_cset_add(&pos, 'A', 'Z');
        gram_js_cset_add(&pos, '_', '_');
        gram_js_cset_add(&pos, 'a', 'z');
    } else { /* s: WhiteSpace and LineTerminator */
        static const uint32_t ws[][2] = {{9, 13},         {32, 32},         {0xa0, 0xa0},
                                         {0x1680, 0x1680}, {0x2000, 0x200a}, {0x2028, 0x2029},
                                         {0x202f, 0x202f}, {0x205f, 0x205f}, {0x3000, 0x3000},
                                         {0xfeff, 0xfeff}};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) gram_js_cset_add(&pos, ws[i][0], ws[i][1]);
    }
    if (name == lower) {
        cset_add_set(s, &pos);
    } else {
        struct gram_js_cset neg = {0};
        gram_js_cset_add(&pos, SUR_LO, SUR_HI);
        cset_complement(&neg, &pos, 0xFFFF);
        cset_add_set(s, &neg);
        gram_js_cset_free(&neg);
    }
    if (pos.oom) s->oom = 1;
    gram_js_cset_free(&pos);
}

/* An escape after '\'. Sets *cp (a character, returns 1) or adds to set (returns 2). */
static int rx_escape(struct rx *p, int in_class, uint32_t *cp, struct gram_js_cset *set)
{
    int c = rx_peek(p, 0);
    if (c < 0) return rx_fail(p, ERR_INVALID, "pattern ends with a backslash");
    p->i++;
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        class_named(set, c);
        return 2;
    case 't': *cp = 9; return 1;
    case 'n': *cp = 10; return 1;
    case 'v': *cp = 11; return 1;
    case 'f': *cp = 12; return 1;
    case 'r': *cp = 13; return 1;
    case 'b':
        if (in_class) {
            *cp = 8;
            return 1;
        }
        return rx_fail(p, ERR_UNSUPPORTED, "word boundary \\b is not supported");
    case '0':
        if (is_digit(rx_peek(p, 0))) return rx_fail(p, ERR_UNSUPPORTED, "octal escapes are not supported");
        *cp = 0;
        return 1;
    case 'c': {
        int l = rx_peek(p, 0);
        if (!((l >= 'a' && l <= 'z') || (l >= 'A' && l <= 'Z')))
            return rx_fail(p, ERR_UNSUPPORTED, "\\c must be followed by a letter");
        p->i++;
        *cp = (uint32_t)(l % 32);
        return 1;
    }
    case 'x': {
        int h1 = hexval(rx_peek(p, 0)), h2 = hexval(rx_peek(p, 1));
        if (h1 < 0 || h2 < 0) return rx_fail(p, ERR_UNSUPPORTED, "\\x needs two hex digits");
        p->i += 2;
        *cp = (uint32_t)(h1 * 16 + h2);
        return 1;
    }
    case 'u': {
        if (rx_peek(p, 0) == '{') return rx_fail(p, ERR_UNSUPPORTED, "\\u{...} needs unicode mode");
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int h = hexval(rx_peek(p, (size_t)k));
            if (h < 0) return rx_fail(p, ERR_UNSUPPORTED, "\\u needs four hex digits");
            v = v * 16 + (uint32_t)h;
        }
        p->i += 4;
        if (v >= 0xD800 && v <= 0xDBFF && rx_peek(p, 0) == '\\' && rx_peek(p, 1) == 'u') {
            uint32_t w = 0;
            int ok = 1;
            for (int k = 0; k < 4 && ok; k++) {
                int h = hexval(rx_peek(p, (size_t)k + 2));
                if (h < 0) ok = 0;
                else w = w * 16 + (uint32_t)h;
            }
            if (ok && w >= 0xDC00 && w <= 0xDFFF) {
                p->i += 6;
                *cp = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                return 1;
            }
        }
        if (v >= SUR_LO && v <= SUR_HI)
            return rx_fail(p, ERR_UNSUPPORTED, "a lone surrogate \\u escape is not supported");
        *cp = v;
        return 1;
    }
    case 'p': case 'P':
        return rx_fail(p, ERR_UNSUPPORTED, "unicode property escapes \\p{...} are not supported");
    case 'B':
        return rx_fail(p, ERR_UNSUPPORTED, "\\B is not supported");
    case 'k':
        return rx_fail(p, ERR_UNSUPPORTED, "named backreferences are not supported");
    default:
        break;
    }
    if (c >= '1' && c <= '9') return rx_fail(p, ERR_UNSUPPORTED, "backreferences are not supported");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return rx_fail(p, ERR_UNSUPPORTED, "unknown escape");
    *cp = (uint32_t)c; /* identity escape of punctuation (and anything else non-alphanumeric) */
    return 1;
}

static int rx_set_node(struct rx *p, int set)
{
    int n = rx_node(p, RX_SET);
    if (n >= 0) p->nodes[n].set = set;
    return n;
}

/* [...] after the '['. */
static int rx_class(struct rx *p)
{
    int neg = 0;
    if (rx_peek(p, 0) == '^') {
        neg = 1;
        p->i++;
    }
    int si = rx_set(p);
    if (si < 0) return -1;
    struct gram_js_cset acc = {0};
    for (;;) {
        int c = rx_peek(p, 0);
        if (c < 0) {
            gram_js_cset_free(&acc);
            return rx_fail(p, ERR_INVALID, "unterminated character class");
        }
        if (c == ']') {
            p->i++;
            break;
        }
        uint32_t a = 0;
        int kind = 1;
        p->i++;
        if (c == '\\') kind = rx_escape(p, 1, &a, &acc);
        else a = (uint32_t)c;
        if (kind < 0) break;
        if (kind == 2) {
            if (rx_peek(p, 0) == '-' && rx_peek(p, 1) != ']' && rx_peek(p, 1) >= 0) {
                rx_fail(p, ERR_UNSUPPORTED, "a range with a class escape as an end");
                break;
            }
            continue;
        }
        uint32_t b = a;
        if (rx_peek(p, 0) == '-' && rx_peek(p, 1) != ']' && rx_peek(p, 1) >= 0) {
            p->i++;
            int d = rx_peek(p, 0);
            p->i++;
            struct gram_js_cset dummy = {0};
            int k2 = 1;
            if (d == '\\') k2 = rx_escape(p, 1, &b, &dummy);
            else b = (uint32_t)d;
            gram_js_cset_free(&dummy);
            if (k2 < 0) break;
            if (k2 == 2) {
                rx_fail(p, ERR_UNSUPPORTED, "a range with a class escape as an end");
                break;
            }
            if (b < a) {
                rx_fail(p, ERR_INVALID, "range out of order in character class");
                break;
            }
        }
        if (b > 0xFFFF) {
            rx_fail(p, ERR_UNSUPPORTED, "non-BMP characters inside a class are not supported");
            break;
        }
        gram_js_cset_add(&acc, a, b);
    }
    if (p->rc) {
        gram_js_cset_free(&acc);
        return -1;
    }
    /* characters only: no surrogates */
    struct gram_js_cset clean = {0};
    cset_minus_range(&clean, &acc, SUR_LO, SUR_HI);
    if (neg) {
        gram_js_cset_add(&clean, SUR_LO, SUR_HI);
        cset_complement(&p->sets[si], &clean, 0xFFFF);
    } else {
        cset_add_set(&p->sets[si], &clean);
    }
    if (acc.oom || clean.oom || p->sets[si].oom) rx_fail(p, ERR_NOMEM, "out of memory");
    gram_js_cset_free(&acc);
    gram_js_cset_free(&clean);
    return rx_set_node(p, si);
}

static int rx_disj(struct rx *p, int top, int *anch);

/* {n}, {n,}, {n,m} at p->i (just past '{'): 0 and the bounds, or 1 when it is not a quantifier. */
static int rx_braces(struct rx *p, int *mn, int *mx)
{
    size_t i = p->i;
    long a = 0, b = -1;
    int nd = 0;
    while (i < p->n && is_digit((int)p->s[i]) && nd < 9) a = a * 10 + (long)(p->s[i++] - '0'), nd++;
    if (nd == 0 || i >= p->n) return 1;
    if (p->s[i] == ',') {
        i++;
        int nd2 = 0;
        long v = 0;
        while (i < p->n && is_digit((int)p->s[i]) && nd2 < 9) v = v * 10 + (long)(p->s[i++] - '0'), nd2++;
        if (nd2 > 0) b = v;
    } else {
        b = a;
    }
    if (i >= p->n || p->s[i] != '}') return 1;
    p->i = i + 1;
    *mn = (int)(a > RX_MAX_COUNT + 1 ? RX_MAX_COUNT + 1 : a);
    *mx = b < 0 ? -1 : (int)(b > RX_MAX_COUNT + 1 ? RX_MAX_COUNT + 1 : b);
    return 0;
}

static int rx_atom(struct rx *p, int *is_astral)
{
    int c = rx_peek(p, 0);
    *is_astral = 0;
    p->i++;
    if (c == '(') {
        if (rx_peek(p, 0) == '?') {
            int d = rx_peek(p, 1);
            if (d == ':') {
                p->i += 2;
            } else if (d == '<' && rx_peek(p, 2) != '=' && rx_peek(p, 2) != '!') {
                p->i += 2;
                while (rx_peek(p, 0) >= 0 && rx_peek(p, 0) != '>') p->i++;
                if (rx_peek(p, 0) != '>') return rx_fail(p, ERR_INVALID, "unterminated group name");
                p->i++;
            } else {
                return rx_fail(p, ERR_UNSUPPORTED, "lookaround assertions are not supported");
            }
        }
        if (++p->depth > RX_MAX_DEPTH) return rx_fail(p, ERR_LIMIT, "pattern nests too deeply");
        int n = rx_disj(p, 0, NULL);
        p->depth--;
        if (n < 0) return -1;
        if (rx_peek(p, 0) != ')') return rx_fail(p, ERR_INVALID, "unbalanced parenthesis");
        p->i++;
        return n;
    }
    if (c == '[') return rx_class(p);
    int si = rx_set(p);
    if (si < 0) return -1;
    struct gram_js_cset *s = &p->sets[si];
    if (c == '.') {
        /* any BMP character but line terminators */
        gram_js_cset_add(s, 0, 9);
        gram_js_cset_add(s, 11, 12);
        gram_js_cset_add(s, 14, 0x2027);
        gram_js_cset_add(s, 0x202a, SUR_LO - 1);
        gram_js_cset_add(s, SUR_HI + 1, 0xFFFF);
    } else if (c == '\\') {
        uint32_t cp = 0;
        int k = rx_escape(p, 0, &cp, s);
        if (k < 0) return -1;
        if (k == 1) gram_js_cset_add(s, cp, cp);
        *is_astral = k == 1 && cp > 0xFFFF;
    } else {
        gram_js_cset_add(s, (uint32_t)c, (uint32_t)c);
        *is_astral = (uint32_t)c > 0xFFFF;
    }
    if (s->oom) return rx_fail(p, ERR_NOMEM, "out of memory");
    return rx_set_node(p, si);
}

/* One alternative: a sequence of quantified atoms. anch (top level only): bit 0 = ^ at the
 * start, bit 1 = $ at the end. */
static int rx_alt(struct rx *p, int top, int *anch)
{
    int cat = rx_node(p, RX_CAT);
    if (cat < 0) return -1;
    int last = -1;
    if (anch) *anch = 0;
    if (rx_peek(p, 0) == '^') {
        if (!top) return rx_fail(p, ERR_UNSUPPORTED, "^ is only supported at the start of the pattern");
        *anch |= 1;
        p->i++;
    }
    for (;;) {
        int c = rx_peek(p, 0);
        if (c < 0 || c == '|' || c == ')') break;
        if (c == '$') {
            p->i++;
            int d = rx_peek(p, 0);
            if (!top || !(d < 0 || d == '|'))
                return rx_fail(p, ERR_UNSUPPORTED, "$ is only supported at the end of the pattern");
            *anch |= 2;
            break;
        }
        if (c == '^') return rx_fail(p, ERR_UNSUPPORTED, "^ is only supported at the start of the pattern");
        if (c == '*' || c == '+' || c == '?') return rx_fail(p, ERR_INVALID, "nothing to repeat");
        if (c == '{') {
            int a, b;
            size_t save = p->i;
            p->i++;
            if (!rx_braces(p, &a, &b)) return rx_fail(p, ERR_INVALID, "nothing to repeat");
            p->i = save;
        }
        int astral = 0;
        int at;
        if (c == '{' || c == '}' || c == ']') { /* Annex B: literal */
            p->i++;
            int si = rx_set(p);
            if (si < 0) return -1;
            gram_js_cset_add(&p->sets[si], (uint32_t)c, (uint32_t)c);
            at = rx_set_node(p, si);
        } else {
            at = rx_atom(p, &astral);
        }
        if (at < 0) return -1;
        int q = rx_peek(p, 0), mn = 1, mx = 1, quant = 0;
        if (q == '*') mn = 0, mx = -1, quant = 1, p->i++;
        else if (q == '+') mn = 1, mx = -1, quant = 1, p->i++;
        else if (q == '?') mn = 0, mx = 1, quant = 1, p->i++;
        else if (q == '{') {
            p->i++;
            if (rx_braces(p, &mn, &mx) == 0) quant = 1;
            else p->i--;
        }
        if (quant) {
            if (rx_peek(p, 0) == '?') p->i++; /* lazy: same language */
            if (astral)
                return rx_fail(p, ERR_UNSUPPORTED, "a quantified non-BMP character is not supported");
            if (mx >= 0 && mx < mn) return rx_fail(p, ERR_INVALID, "numbers out of order in {} quantifier");
            if (mn > RX_MAX_COUNT || mx > RX_MAX_COUNT) return rx_fail(p, ERR_LIMIT, "quantifier bound above 1000");
            int r = rx_node(p, RX_REP);
            if (r < 0) return -1;
            p->nodes[r].first = at;
            p->nodes[r].min = mn;
            p->nodes[r].max = mx;
            at = r;
            c = rx_peek(p, 0);
            if (c == '*' || c == '+' || c == '?') return rx_fail(p, ERR_INVALID, "nothing to repeat");
        }
        if (last < 0) p->nodes[cat].first = at;
        else p->nodes[last].next = at;
        last = at;
    }
    return cat;
}

/* Alternatives. At the top level every alternative gets its own anchors; *anch unused. */
static int rx_disj(struct rx *p, int top, int *anch)
{
    (void)anch;
    int alt = rx_node(p, RX_ALT);
    if (alt < 0) return -1;
    int last = -1;
    for (;;) {
        int a = 0;
        int n = rx_alt(p, top, &a);
        if (n < 0) return -1;
        if (top) {
            /* (anything)* unless anchored, on each side */
            int cat = rx_node(p, RX_CAT);
            if (cat < 0) return -1;
            int head = -1, tail = -1;
            if (!(a & 1)) {
                int si = rx_set(p);
                if (si < 0) return -1;
                cset_universe(&p->sets[si]);
                int s = rx_set_node(p, si), r = rx_node(p, RX_REP);
                if (s < 0 || r < 0) return -1;
                p->nodes[r].first = s;
                p->nodes[r].min = 0;
                p->nodes[r].max = -1;
                head = r;
            }
            if (!(a & 2)) {
                int si = rx_set(p);
                if (si < 0) return -1;
                cset_universe(&p->sets[si]);
                int s = rx_set_node(p, si), r = rx_node(p, RX_REP);
                if (s < 0 || r < 0) return -1;
                p->nodes[r].first = s;
                p->nodes[r].min = 0;
                p->nodes[r].max = -1;
                tail = r;
            }
            int seq[3] = {head, n, tail}, prev = -1;
            for (int k = 0; k < 3; k++) {
                if (seq[k] < 0) continue;
                if (prev < 0) p->nodes[cat].first = seq[k];
                else p->nodes[prev].next = seq[k];
                prev = seq[k];
            }
            n = cat;
        }
        if (last < 0) p->nodes[alt].first = n;
        else p->nodes[last].next = n;
        last = n;
        if (rx_peek(p, 0) != '|') break;
        p->i++;
    }
    return alt;
}

/* Parse pat; on success p holds the tree and returns its root. */
static int rx_parse(struct rx *p, const char *pat, size_t len, uint32_t **cps)
{
    size_t n;
    if (len > GRAM_JS_MAX_PATTERN) return rx_fail(p, ERR_LIMIT, "pattern longer than 4096 bytes");
    if (utf8_cps(pat, len, cps, &n)) return rx_fail(p, ERR_NOMEM, "out of memory");
    p->s = *cps;
    p->n = n;
    int root = rx_disj(p, 1, NULL);
    if (root >= 0 && p->i < p->n) return rx_fail(p, ERR_INVALID, "unbalanced parenthesis");
    return root;
}

int gram_js_pattern_check(const char *pat, size_t len, char *why, size_t why_len)
{
    struct rx p = {0};
    p.why = why;
    p.why_len = why_len;
    uint32_t *cps = NULL;
    rx_parse(&p, pat, len, &cps);
    free(cps);
    rx_free(&p);
    return p.rc;
}

/* ---- NFA ---- */

enum { N_EPS, N_SET, N_ACC };

struct nst {
    int kind;
    int out1, out2; /* N_EPS: up to two targets (-1: none); N_SET: out1 */
    int set;
};

struct nfa {
    struct nst *st;
    size_t n, cap;
    int rc;
};

static int nfa_new(struct nfa *a, int kind, int out1, int out2, int set)
{
    if (a->rc) return -1;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        if (a->n >= GRAM_JS_MAX_NFA) {
            a->rc = ERR_LIMIT;
            return -1;
        }
        struct nst *s = realloc(a->st, cap * sizeof *s);
        if (!s) {
            a->rc = ERR_NOMEM;
            return -1;
        }
        a->st = s;
        a->cap = cap;
    }
    a->st[a->n] = (struct nst){kind, out1, out2, set};
    return (int)a->n++;
}

/* Build node x so that it continues at state next; returns x's start state. */
static int nfa_build(struct nfa *a, const struct rx *p, int x, int next)
{
    if (a->rc || x < 0) return -1;
    const struct rxn *n = &p->nodes[x];
    switch (n->type) {
    case RX_SET:
        return nfa_new(a, N_SET, next, -1, n->set);
    case RX_CAT: {
        /* children in order, then built back to front */
        size_t nk = 0;
        for (int k = n->first; k >= 0; k = p->nodes[k].next) nk++;
        int *v = malloc((nk + 1) * sizeof *v);
        if (!v) {
            a->rc = ERR_NOMEM;
            return -1;
        }
        nk = 0;
        for (int k = n->first; k >= 0; k = p->nodes[k].next) v[nk++] = k;
        int s = next;
        for (size_t i = nk; i-- > 0 && s >= 0;) s = nfa_build(a, p, v[i], s);
        free(v);
        return s;
    }
    case RX_ALT: {
        int s = -1;
        for (int k = n->first; k >= 0; k = p->nodes[k].next) {
            int b = nfa_build(a, p, k, next);
            if (b < 0) return -1;
            s = s < 0 ? b : nfa_new(a, N_EPS, b, s, -1);
        }
        return s < 0 ? next : s;
    }
    case RX_REP: {
        int s = next;
        if (n->max < 0) {
            int loop = nfa_new(a, N_EPS, -1, next, -1);
            if (loop < 0) return -1;
            int body = nfa_build(a, p, n->first, loop);
            if (body < 0) return -1;
            a->st[loop].out1 = body;
            s = loop;
        } else {
            for (int i = n->min; i < n->max; i++) {
                int body = nfa_build(a, p, n->first, s);
                if (body < 0) return -1;
                s = nfa_new(a, N_EPS, body, next, -1);
            }
        }
        for (int i = 0; i < n->min && s >= 0; i++) s = nfa_build(a, p, n->first, s);
        return s;
    }
    default:
        return next;
    }
}

/* ---- DFA ---- */

struct dtr {
    uint32_t lo, hi;
    int to;
};

struct dst {
    int accept;
    struct dtr *t; /* sorted, disjoint */
    size_t nt;
};

struct dfa {
    struct dst *s; /* state 0 is the start */
    size_t n;
};

static void dfa_free(struct dfa *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) free(d->s[i].t);
    free(d->s);
    free(d);
}

/* Sets of NFA states keyed for the subset construction. */
struct sset {
    int *v;
    size_t n;
};

struct det {
    const struct nfa *a;
    const struct rx *p;
    struct sset *sets; /* [dfa state] */
    size_t n, cap;
    size_t *hash; /* open addressing: dfa index + 1 */
    size_t hcap;
    struct dst *st;
    int *stack, *mark;
    int gen;
    int rc;
};

static uint64_t hash_ints(const int *v, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint64_t)(unsigned)v[i]) * 1099511628211ull;
    return h;
}

/* Epsilon closure of seeds (only N_SET and N_ACC states kept), sorted. */
static int closure(struct det *d, const int *seeds, size_t ns, struct sset *out)
{
    size_t sp = 0, no = 0;
    d->gen++;
    int *res = malloc((d->a->n + 1) * sizeof *res);
    if (!res) return ERR_NOMEM;
    for (size_t i = 0; i < ns; i++)
        if (seeds[i] >= 0 && d->mark[seeds[i]] != d->gen) {
            d->mark[seeds[i]] = d->gen;
            d->stack[sp++] = seeds[i];
        }
    while (sp > 0) {
        int s = d->stack[--sp];
        const struct nst *x = &d->a->st[s];
        if (x->kind != N_EPS) {
            res[no++] = s;
            continue;
        }
        int outs[2] = {x->out1, x->out2};
        for (int k = 0; k < 2; k++)
            if (outs[k] >= 0 && d->mark[outs[k]] != d->gen) {
                d->mark[outs[k]] = d->gen;
                d->stack[sp++] = outs[k];
            }
    }
    /* insertion sort is fine: closures are small, and sorting gives a canonical key */
    for (size_t i = 1; i < no; i++) {
        int v = res[i];
        size_t j = i;
        while (j > 0 && res[j - 1] > v) res[j] = res[j - 1], j--;
        res[j] = v;
    }
    out->v = res;
    out->n = no;
    return 0;
}

/* Index of the DFA state for set s (taking s), creating it. -1 on error. */
static int det_state(struct det *d, struct sset *s)
{
    if (d->hcap == 0 || d->n * 2 >= d->hcap) {
        size_t hc = d->hcap ? d->hcap * 2 : 64;
        size_t *h = calloc(hc, sizeof *h);
        if (!h) {
            d->rc = ERR_NOMEM;
            return -1;
        }
        for (size_t i = 0; i < d->n; i++) {
            size_t k = hash_ints(d->sets[i].v, d->sets[i].n) & (hc - 1);
            while (h[k]) k = (k + 1) & (hc - 1);
            h[k] = i + 1;
        }
        free(d->hash);
        d->hash = h;
        d->hcap = hc;
    }
    size_t k = hash_ints(s->v, s->n) & (d->hcap - 1);
    while (d->hash[k]) {
        struct sset *o = &d->sets[d->hash[k] - 1];
        if (o->n == s->n && memcmp(o->v, s->v, s->n * sizeof *s->v) == 0) {
            free(s->v);
            s->v = NULL;
            return (int)(d->hash[k] - 1);
        }
        k = (k + 1) & (d->hcap - 1);
    }
    if (d->n >= GRAM_JS_MAX_DFA) {
        d->rc = ERR_LIMIT;
        free(s->v);
        s->v = NULL;
        return -1;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 32;
        struct sset *ns = realloc(d->sets, cap * sizeof *ns);
        struct dst *st = ns ? realloc(d->st, cap * sizeof *st) : NULL;
        if (ns) d->sets = ns;
        if (!ns || !st) {
            d->rc = ERR_NOMEM;
            free(s->v);
            s->v = NULL;
            return -1;
        }
        d->st = st;
        d->cap = cap;
    }
    d->sets[d->n] = *s;
    s->v = NULL;
    memset(&d->st[d->n], 0, sizeof d->st[0]);
    d->hash[k] = d->n + 1;
    return (int)d->n++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Transitions of DFA state i: split the code points at every range edge of its members, and
 * follow each elementary interval. */
static int det_expand(struct det *d, size_t i)
{
    const struct sset cur = d->sets[i];
    size_t nb = 0, capb = 16;
    uint32_t *bnd = malloc(capb * sizeof *bnd);
    if (!bnd) return ERR_NOMEM;
    for (size_t k = 0; k < cur.n; k++) {
        const struct nst *x = &d->a->st[cur.v[k]];
        if (x->kind == N_ACC) d->st[i].accept = 1;
        if (x->kind != N_SET) continue;
        const struct gram_js_cset *cs = &d->p->sets[x->set];
        for (size_t r = 0; r < cs->n; r++) {
            if (nb + 2 > capb) {
                uint32_t *b2 = realloc(bnd, capb * 2 * sizeof *b2);
                if (!b2) {
                    free(bnd);
                    return ERR_NOMEM;
                }
                bnd = b2;
                capb *= 2;
            }
            bnd[nb++] = cs->r[2 * r];
            bnd[nb++] = cs->r[2 * r + 1] + 1;
        }
    }
    qsort(bnd, nb, sizeof *bnd, cmp_u32);
    int *seeds = malloc((cur.n + 1) * sizeof *seeds);
    struct dtr *t = NULL;
    size_t nt = 0, capt = 0;
    int rc = seeds ? 0 : ERR_NOMEM;
    for (size_t b = 0; b + 1 < nb && !rc; b++) {
        uint32_t lo = bnd[b], hi = bnd[b + 1] - 1;
        if (bnd[b + 1] == lo) continue;
        size_t ns = 0;
        for (size_t k = 0; k < cur.n; k++) {
            const struct nst *x = &d->a->st[d->sets[i].v[k]];
            if (x->kind == N_SET && cset_has(&d->p->sets[x->set], lo)) seeds[ns++] = x->out1;
        }
        if (ns == 0) continue;
        struct sset tgt;
        rc = closure(d, seeds, ns, &tgt);
        if (rc) break;
        int to = det_state(d, &tgt);
        if (to < 0) {
            rc = d->rc;
            break;
        }
        if (nt > 0 && t[nt - 1].to == to && t[nt - 1].hi + 1 == lo) {
            t[nt - 1].hi = hi;
            continue;
        }
        if (nt == capt) {
            size_t c2 = capt ? capt * 2 : 8;
            struct dtr *t2 = realloc(t, c2 * sizeof *t2);
            if (!t2) {
                rc = ERR_NOMEM;
                break;
            }
            t = t2;
            capt = c2;
        }
        t[nt++] = (struct dtr){lo, hi, to};
    }
    free(seeds);
    free(bnd);
    d->st[i].t = t;
    d->st[i].nt = nt;
    return rc;
}

/* Merge equivalent states (Moore's partition refinement), dropping states that cannot reach
 * acceptance. The result's state 0 is the start; it may have no transitions and not accept. */
static struct dfa *dfa_minimise(struct dst *st, size_t n, int *rc);

static struct dfa *rx_compile(const char *pat, size_t len, int *rc, char *why, size_t why_len)
{
    struct rx p = {0};
    p.why = why;
    p.why_len = why_len;
    uint32_t *cps = NULL;
    int root = rx_parse(&p, pat, len, &cps);
    free(cps);
    struct nfa a = {0};
    struct dfa *out = NULL;
    struct det d = {0};
    if (root < 0) {
        *rc = p.rc;
        goto done;
    }
    int acc = nfa_new(&a, N_ACC, -1, -1, -1);
    int start = nfa_build(&a, &p, root, acc);
    if (start < 0 || a.rc) {
        *rc = a.rc ? a.rc : ERR_LIMIT;
        if (why && why_len) snprintf(why, why_len, "pattern automaton too large");
        goto done;
    }
    d.a = &a;
    d.p = &p;
    d.stack = malloc(a.n * sizeof *d.stack);
    d.mark = calloc(a.n, sizeof *d.mark);
    struct sset s0;
    if (!d.stack || !d.mark || closure(&d, &start, 1, &s0)) {
        *rc = ERR_NOMEM;
        goto done;
    }
    det_state(&d, &s0);
    for (size_t i = 0; i < d.n && !d.rc; i++) {
        int r = det_expand(&d, i);
        if (r) d.rc = r;
    }
    if (d.rc) {
        *rc = d.rc;
        if (why && why_len) snprintf(why, why_len, "pattern has too many states (limit %d)", GRAM_JS_MAX_DFA);
        goto done;
    }
    out = dfa_minimise(d.st, d.n, rc);
done:
    for (size_t i = 0; i < d.n; i++) {
        free(d.sets[i].v);
        if (d.st) free(d.st[i].t);
    }
    free(d.sets);
    free(d.st);
    free(d.hash);
    free(d.stack);
    free(d.mark);
    free(a.st);
    rx_free(&p);
    return out;
}

/* Which states can reach an accepting one: reverse reachability by iteration (n is small). */
static unsigned char *coreachable(const struct dst *st, size_t n)
{
    unsigned char *live = calloc(n ? n : 1, 1);
    if (!live) return NULL;
    for (size_t i = 0; i < n; i++) live[i] = (unsigned char)st[i].accept;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (live[i]) continue;
            for (size_t k = 0; k < st[i].nt; k++)
                if (live[st[i].t[k].to]) {
                    live[i] = 1;
                    changed = 1;
                    break;
                }
        }
    }
    return live;
}

/* Signature of a state under a partition: accept flag then (lo, hi, class) with adjacent equal
 * classes merged; dead targets dropped. Written into sig; returns its length. */
static size_t signature(const struct dst *s, const int *cls, const unsigned char *live,
                        uint32_t *sig)
{
    size_t k = 0;
    sig[k++] = (uint32_t)s->accept;
    for (size_t i = 0; i < s->nt; i++) {
        if (!live[s->t[i].to]) continue;
        uint32_t c = (uint32_t)cls[s->t[i].to];
        if (k > 1 && sig[k - 1] == c && sig[k - 2] + 1 == s->t[i].lo) {
            sig[k - 2] = s->t[i].hi;
            continue;
        }
        sig[k++] = s->t[i].lo;
        sig[k++] = s->t[i].hi;
        sig[k++] = c;
    }
    return k;
}

static uint64_t hash_u32(const uint32_t *v, size_t n, uint32_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) h = (h ^ v[i]) * 1099511628211ull;
    return h;
}

/* One refinement round: ncls[i] = the first state with i's class and signature. Returns the
 * number of classes. */
static size_t refine(const struct dst *st, size_t n, const int *cls, const unsigned char *live,
                     uint32_t **sig, size_t *sl, int *ncls, size_t *tab, size_t tcap)
{
    size_t count = 0;
    memset(tab, 0, tcap * sizeof *tab);
    for (size_t i = 0; i < n; i++) {
        sl[i] = signature(&st[i], cls, live, sig[i]);
        size_t k = hash_u32(sig[i], sl[i], (uint32_t)cls[i]) & (tcap - 1);
        for (;; k = (k + 1) & (tcap - 1)) {
            if (!tab[k]) {
                tab[k] = i + 1;
                ncls[i] = (int)i;
                count++;
                break;
            }
            size_t j = tab[k] - 1;
            if (cls[j] == cls[i] && sl[j] == sl[i] && memcmp(sig[j], sig[i], sl[i] * sizeof **sig) == 0) {
                ncls[i] = (int)j;
                break;
            }
        }
    }
    return count;
}

static struct dfa *dfa_minimise(struct dst *st, size_t n, int *rc)
{
    unsigned char *live = coreachable(st, n);
    int *cls = malloc(n * sizeof *cls), *ncls = malloc(n * sizeof *ncls);
    uint32_t **sig = calloc(n, sizeof *sig);
    size_t *sl = calloc(n, sizeof *sl);
    size_t tcap = 16;
    while (tcap < 2 * n) tcap *= 2;
    size_t *tab = malloc(tcap * sizeof *tab);
    int *num = malloc(n * sizeof *num);
    struct dfa *out = NULL;
    if (!live || !cls || !ncls || !sig || !sl || !tab || !num) goto oom;
    for (size_t i = 0; i < n; i++) {
        cls[i] = live[i] ? (st[i].accept ? 1 : 2) : 0;
        sig[i] = malloc((3 * st[i].nt + 2) * sizeof **sig);
        if (!sig[i]) goto oom;
    }
    /* refine until the number of classes stops growing */
    for (size_t ncl = 0;;) {
        size_t count = refine(st, n, cls, live, sig, sl, ncls, tab, tcap);
        memcpy(cls, ncls, n * sizeof *cls);
        if (count == ncl) break;
        ncl = count;
    }
    /* number the classes so the start's class is 0 */
    for (size_t i = 0; i < n; i++) num[i] = -1;
    size_t k = 0;
    num[cls[0]] = (int)k++;
    for (size_t i = 0; i < n; i++)
        if (cls[i] == (int)i && num[i] < 0 && live[i]) num[i] = (int)k++;
    out = calloc(1, sizeof *out);
    if (out) out->s = calloc(k, sizeof *out->s);
    if (!out || !out->s) goto oom;
    out->n = k;
    for (size_t i = 0; i < n; i++) {
        if (cls[i] != (int)i || num[i] < 0 || !live[i]) continue;
        struct dst *o = &out->s[num[i]];
        o->accept = st[i].accept;
        o->t = malloc((st[i].nt + 1) * sizeof *o->t);
        if (!o->t) goto oom;
        for (size_t t = 0; t < st[i].nt; t++) {
            if (!live[st[i].t[t].to]) continue;
            int to = num[cls[st[i].t[t].to]];
            if (o->nt > 0 && o->t[o->nt - 1].to == to && o->t[o->nt - 1].hi + 1 == st[i].t[t].lo)
                o->t[o->nt - 1].hi = st[i].t[t].hi;
            else
                o->t[o->nt++] = (struct dtr){st[i].t[t].lo, st[i].t[t].hi, to};
        }
    }
    goto done;
oom:
    *rc = ERR_NOMEM;
    dfa_free(out);
    out = NULL;
done:
    for (size_t i = 0; sig && i < n; i++) free(sig[i]);
    free(sig);
    free(sl);
    free(cls);
    free(ncls);
    free(tab);
    free(num);
    free(live);
    return out;
}

/* ---- formats ---- */

#define DATE_RX                                                                                \
    "(?:\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)" \
    "|02-(?:0[1-9]|1\\d|2[0-8]))|(?:\\d\\d(?:[02468][48]|[13579][26]|[2468]0)"                    \
    "|(?:[02468][048]|[13579][26])00)-02-29)"
#define TIME_RX                                                                      \
    "(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:[Zz]|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)"
#define LABEL_RX "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#define ATOM_RX "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
#define OCTET_RX "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"

static const struct {
    unsigned bit;
    const char *name;
    const char *rx;
} g_formats[] = {
    {GRAM_JS_F_DATE, "date", "^" DATE_RX "$"},
    {GRAM_JS_F_TIME, "time", "^" TIME_RX "$"},
    {GRAM_JS_F_DATE_TIME, "date-time", "^" DATE_RX "[Tt]" TIME_RX "$"},
    {GRAM_JS_F_UUID, "uuid",
     "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
    {GRAM_JS_F_EMAIL, "email",
     "^" ATOM_RX "(?:\\." ATOM_RX ")*@" LABEL_RX "(?:\\." LABEL_RX ")*$"},
    {GRAM_JS_F_IPV4, "ipv4", "^(?:" OCTET_RX "\\.){3}" OCTET_RX "$"},
};
#define N_FORMATS (sizeof g_formats / sizeof g_formats[0])

unsigned gram_js_format_bit(const char *name)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (strcmp(name, g_formats[i].name) == 0) return g_formats[i].bit;
    return 0;
}

/* The compiled automaton of a pattern (fmt == 0) or a format, cached per context. */
static const struct dfa *get_dfa(struct gram_js_ctx *c, const char *src, size_t len, unsigned fmt)
{
    struct gram_js_charset_memo *m = memo(c);
    if (!m) return NULL;
    for (size_t i = 0; i < m->np; i++) {
        struct pat_entry *e = &m->p[i];
        if (fmt ? e->format == fmt : (!e->format && e->len == len && memcmp(e->src, src, len) == 0))
            return e->d;
    }
    if (m->np == m->capp) {
        size_t cap = m->capp ? m->capp * 2 : 8;
        struct pat_entry *p = realloc(m->p, cap * sizeof *p);
        if (!p) {
            gram_js_fail(c, ERR_NOMEM, "out of memory");
            return NULL;
        }
        m->p = p;
        m->capp = cap;
    }
    const char *rx = src;
    size_t rlen = len;
    const char *fname = NULL;
    if (fmt)
        for (size_t i = 0; i < N_FORMATS; i++)
            if (g_formats[i].bit == fmt) rx = g_formats[i].rx, rlen = strlen(rx), fname = g_formats[i].name;
    struct pat_entry *e = &m->p[m->np];
    memset(e, 0, sizeof *e);
    e->format = fmt;
    if (!fmt) {
        e->src = malloc(len + 1);
        if (!e->src) {
            gram_js_fail(c, ERR_NOMEM, "out of memory");
            return NULL;
        }
        memcpy(e->src, src, len);
        e->src[len] = 0;
        e->len = len;
    }
    m->np++;
    int rc = 0;
    char why[128] = "";
    e->d = rx_compile(rx, rlen, &rc, why, sizeof why);
    if (!e->d) {
        if (fname) gram_js_fail(c, rc ? rc : ERR_NOMEM, "format %s: %s", fname, why);
        else gram_js_fail(c, rc ? rc : ERR_NOMEM, "pattern \"%.60s\": %s", src, why[0] ? why : "cannot compile");
    }
    return e->d;
}

/* ---- string constraints as a product automaton ---- */

#define PROD_MAX_DFAS 16

struct pstate {
    int q[PROD_MAX_DFAS];
    uint64_t cnt;
    int live;
    int loop;      /* every component loops on itself and accepts: written as set{a,b} */
    int loop_any;  /* loop: the loop set is not empty */
    size_t rule;   /* SIZE_MAX: not written yet */
    struct dtr *t; /* transitions (to = product index) */
    size_t nt;
};

struct prod {
    struct gram_js_ctx *c;
    const struct dfa *d[PROD_MAX_DFAS];
    size_t k;
    uint64_t min, max; /* max UINT64_MAX: none */
    struct pstate *s;
    size_t n, cap;
    int rc;
};

static int comp_loop(const struct dfa *d, int q)
{
    const struct dst *s = &d->s[q];
    if (!s->accept) return 0;
    for (size_t i = 0; i < s->nt; i++)
        if (s->t[i].to != q) return 0;
    return 1;
}

static int accepting(const struct prod *p, const struct pstate *s)
{
    if (s->cnt < p->min) return 0;
    for (size_t i = 0; i < p->k; i++)
        if (!p->d[i]->s[s->q[i]].accept) return 0;
    return 1;
}

static uint64_t next_cnt(const struct prod *p, uint64_t cnt)
{
    if (p->max != UINT64_MAX) return cnt + 1;
    return cnt < p->min ? cnt + 1 : cnt;
}

static void loop_set(const struct prod *p, const struct pstate *s, struct gram_js_cset *out);

static int pstate_find(struct prod *p, const int *q, uint64_t cnt)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->s[i].cnt == cnt && memcmp(p->s[i].q, q, p->k * sizeof *q) == 0) return (int)i;
    if (p->n >= GRAM_JS_MAX_PRODUCT) {
        p->rc = ERR_LIMIT;
        return -1;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct pstate *s = realloc(p->s, cap * sizeof *s);
        if (!s) {
            p->rc = ERR_NOMEM;
            return -1;
        }
        p->s = s;
        p->cap = cap;
    }
    struct pstate *s = &p->s[p->n];
    memset(s, 0, sizeof *s);
    memcpy(s->q, q, p->k * sizeof *q);
    s->cnt = cnt;
    s->rule = SIZE_MAX;
    s->loop = p->max != UINT64_MAX || cnt < p->min;
    for (size_t i = 0; i < p->k && s->loop; i++) s->loop = comp_loop(p->d[i], q[i]);
    if (s->loop) {
        struct gram_js_cset set = {0};
        loop_set(p, s, &set);
        if (set.oom) p->rc = ERR_NOMEM;
        s->loop_any = set.n > 0;
        gram_js_cset_free(&set);
    }
    return (int)p->n++;
}

/* Transitions of product state i: intersect the components' interval lists. */
static void pstate_expand(struct prod *p, size_t i)
{
    if (p->s[i].loop) return; /* written as a repetition, never expanded */
    if (p->max != UINT64_MAX && p->s[i].cnt >= p->max) return;
    /* current intersection as a list of (lo, hi, tuple) */
    size_t n = 1, cap = 8;
    struct iv {
        uint32_t lo, hi;
        int q[PROD_MAX_DFAS];
    } *cur = malloc(cap * sizeof *cur);
    if (!cur) {
        p->rc = ERR_NOMEM;
        return;
    }
    cur[0].lo = 0;
    cur[0].hi = CP_MAX;
    for (size_t d = 0; d < p->k && n > 0; d++) {
        const struct dst *s = &p->d[d]->s[p->s[i].q[d]];
        size_t m = 0, capm = n + s->nt + 4;
        struct iv *nx = malloc(capm * sizeof *nx);
        if (!nx) {
            free(cur);
            p->rc = ERR_NOMEM;
            return;
        }
        size_t a = 0, b = 0;
        while (a < n && b < s->nt) {
            uint32_t lo = cur[a].lo > s->t[b].lo ? cur[a].lo : s->t[b].lo;
            uint32_t hi = cur[a].hi < s->t[b].hi ? cur[a].hi : s->t[b].hi;
            if (lo <= hi) {
                if (m == capm) {
                    capm *= 2;
                    struct iv *n2 = realloc(nx, capm * sizeof *n2);
                    if (!n2) {
                        free(nx);
                        free(cur);
                        p->rc = ERR_NOMEM;
                        return;
                    }
                    nx = n2;
                }
                nx[m] = cur[a];
                nx[m].lo = lo;
                nx[m].hi = hi;
                nx[m].q[d] = s->t[b].to;
                m++;
            }
            if (cur[a].hi < s->t[b].hi) a++;
            else b++;
        }
        free(cur);
        cur = nx;
        n = m;
    }
    uint64_t cnt = next_cnt(p, p->s[i].cnt);
    struct dtr *t = malloc((2 * n + 1) * sizeof *t);
    if (!t) {
        free(cur);
        p->rc = ERR_NOMEM;
        return;
    }
    size_t nt = 0;
    for (size_t k = 0; k < n; k++) {
        /* without components the single interval spans the surrogates: skip them */
        uint32_t lo = cur[k].lo, hi = cur[k].hi;
        int to = pstate_find(p, cur[k].q, cnt);
        if (to < 0) break;
        if (lo <= SUR_HI && hi >= SUR_LO) {
            if (lo < SUR_LO) t[nt++] = (struct dtr){lo, SUR_LO - 1, to};
            if (hi > SUR_HI) t[nt++] = (struct dtr){SUR_HI + 1, hi, to};
        } else {
            t[nt++] = (struct dtr){lo, hi, to};
        }
    }
    free(cur);
    p->s[i].t = t;
    p->s[i].nt = nt;
}

/* Explore, then mark live states. 0 or an error code. */
static int prod_build(struct prod *p)
{
    int q0[PROD_MAX_DFAS] = {0};
    if (pstate_find(p, q0, 0) < 0) return p->rc;
    for (size_t i = 0; i < p->n && !p->rc; i++) pstate_expand(p, i);
    if (p->rc) return p->rc;
    for (size_t i = 0; i < p->n; i++) {
        struct pstate *s = &p->s[i];
        if (s->loop) /* a repetition: live when it can match some count */
            s->live = (p->max == UINT64_MAX || s->cnt <= p->max) && (s->loop_any || s->cnt >= p->min);
        else
            s->live = accepting(p, s);
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (p->s[i].live) continue;
            for (size_t k = 0; k < p->s[i].nt; k++)
                if (p->s[p->s[i].t[k].to].live) {
                    p->s[i].live = 1;
                    changed = 1;
                    break;
                }
        }
    }
    return 0;
}

static void prod_free(struct prod *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->s[i].t);
    free(p->s);
}

/* The loop set of a looping state: the intersection of its components' sets. */
static void loop_set(const struct prod *p, const struct pstate *s, struct gram_js_cset *out)
{
    struct gram_js_cset cur = {0};
    cset_universe(&cur);
    for (size_t i = 0; i < p->k; i++) {
        struct gram_js_cset mine = {0}, nx = {0};
        const struct dst *d = &p->d[i]->s[s->q[i]];
        for (size_t t = 0; t < d->nt; t++) gram_js_cset_add(&mine, d->t[t].lo, d->t[t].hi);
        cset_intersect(&nx, &cur, &mine);
        gram_js_cset_free(&cur);
        gram_js_cset_free(&mine);
        cur = nx;
    }
    *out = cur;
}

void gram_js_put_repeat(struct gram_js_buf *b, const char *what, uint64_t a, uint64_t bmax)
{
    if (bmax == UINT64_MAX) {
        if (a == 0) gram_js_printf(b, "%s*", what);
        else if (a == 1) gram_js_printf(b, "%s+", what);
        else gram_js_printf(b, "%s{%llu,}", what, (unsigned long long)a);
    } else if (a == bmax) {
        if (a == 1) gram_js_puts(b, what);
        else if (a > 1) gram_js_printf(b, "%s{%llu}", what, (unsigned long long)a);
    } else if (a == 0 && bmax == 1) {
        gram_js_printf(b, "%s?", what);
    } else {
        gram_js_printf(b, "%s{%llu,%llu}", what, (unsigned long long)a, (unsigned long long)bmax);
    }
}

static void prod_ref(struct prod *p, size_t i, struct gram_js_buf *b, const char *hint);

/* Body of product state i's rule. */
static void prod_body(struct prod *p, size_t i, struct gram_js_buf *b, const char *hint)
{
    struct pstate *s = &p->s[i];
    int acc = accepting(p, s);
    /* self loop first, then one alternative per live target */
    struct gram_js_cset self = {0};
    for (size_t k = 0; k < s->nt; k++)
        if ((size_t)s->t[k].to == i) gram_js_cset_add(&self, s->t[k].lo, s->t[k].hi);
    if (self.n > 0) gram_js_printf(b, "%s* ", gram_js_cset_rule(p->c, &self));
    gram_js_cset_free(&self);
    struct gram_js_buf alts = {0};
    int nalt = 0;
    for (size_t k = 0; k < s->nt; k++) {
        int to = s->t[k].to;
        if ((size_t)to == i || !p->s[to].live) continue;
        int seen = 0;
        for (size_t j = 0; j < k && !seen; j++) seen = s->t[j].to == to;
        if (seen) continue;
        struct gram_js_cset set = {0};
        for (size_t j = k; j < s->nt; j++)
            if (s->t[j].to == to) gram_js_cset_add(&set, s->t[j].lo, s->t[j].hi);
        if (nalt++) gram_js_puts(&alts, " | ");
        gram_js_puts(&alts, gram_js_cset_rule(p->c, &set));
        gram_js_cset_free(&set);
        gram_js_puts(&alts, " ");
        prod_ref(p, (size_t)to, &alts, hint);
    }
    if (nalt > 0) {
        gram_js_printf(b, "(%s)%s", alts.p, acc ? "?" : "");
    } else if (b->n == 0) {
        gram_js_puts(b, "\"\""); /* accepting, nothing follows */
    }
    if (alts.oom) b->oom = 1;
    gram_js_buf_free(&alts);
}

/* A reference to state i: inline for repetitions and for the accepting end, else its rule. */
static void prod_ref(struct prod *p, size_t i, struct gram_js_buf *b, const char *hint)
{
    struct pstate *s = &p->s[i];
    if (s->loop) {
        struct gram_js_cset set = {0};
        loop_set(p, s, &set);
        uint64_t a = s->cnt < p->min ? p->min - s->cnt : 0;
        uint64_t mx = p->max == UINT64_MAX ? UINT64_MAX : p->max - s->cnt;
        if (set.n == 0 || mx == 0) gram_js_puts(b, "\"\"");
        else gram_js_put_repeat(b, gram_js_cset_rule(p->c, &set), a, mx);
        gram_js_cset_free(&set);
        return;
    }
    if (s->rule == SIZE_MAX) {
        int any_live = 0;
        for (size_t k = 0; k < s->nt && !any_live; k++) any_live = p->s[s->t[k].to].live;
        if (!any_live) { /* accepting, nothing can follow */
            gram_js_puts(b, "\"\"");
            return;
        }
        s->rule = gram_js_rule_new(p->c, hint);
        if (s->rule == SIZE_MAX) return;
        struct gram_js_buf body = {0};
        prod_body(p, i, &body, hint);
        gram_js_rule_set(p->c, s->rule, &body);
    }
    gram_js_puts(b, gram_js_rule_name(p->c, s->rule));
}

/* The automata a constraint needs (patterns, then formats). -1 after an error. */
static int collect_dfas(struct gram_js_ctx *c, const struct gram_js_strc *s, struct prod *p)
{
    for (size_t i = 0; i < s->n_pat; i++) {
        const struct dfa *d = get_dfa(c, s->pat[i], s->pat_len[i], 0);
        if (!d) return -1;
        if (p->k == PROD_MAX_DFAS) {
            gram_js_fail(c, ERR_LIMIT, "more than %d patterns and formats on one string", PROD_MAX_DFAS);
            return -1;
        }
        p->d[p->k++] = d;
    }
    for (size_t i = 0; i < N_FORMATS; i++) {
        if (!(s->formats & g_formats[i].bit)) continue;
        const struct dfa *d = get_dfa(c, NULL, 0, g_formats[i].bit);
        if (!d) return -1;
        if (p->k == PROD_MAX_DFAS) {
            gram_js_fail(c, ERR_LIMIT, "more than %d patterns and formats on one string", PROD_MAX_DFAS);
            return -1;
        }
        p->d[p->k++] = d;
    }
    return 0;
}

/* Whether the literal meets every constraint. */
static int lit_ok(struct gram_js_ctx *c, const struct gram_js_strc *s)
{
    uint32_t *cps;
    size_t n;
    if (utf8_cps(s->lit, s->lit_len, &cps, &n)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return 0;
    }
    int ok = n >= s->min && n <= s->max;
    struct prod p = {0};
    if (ok && collect_dfas(c, s, &p)) ok = 0;
    for (size_t d = 0; d < p.k && ok; d++) {
        int q = 0;
        for (size_t i = 0; i < n && q >= 0; i++) {
            const struct dst *st = &p.d[d]->s[q];
            int to = -1;
            for (size_t t = 0; t < st->nt; t++)
                if (cps[i] >= st->t[t].lo && cps[i] <= st->t[t].hi) to = st->t[t].to;
            q = to;
        }
        ok = q >= 0 && p.d[d]->s[q].accept;
    }
    free(cps);
    return ok;
}

static int prod_setup(struct gram_js_ctx *c, const struct gram_js_strc *s, struct prod *p)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->min = s->min;
    p->max = s->max;
    if (collect_dfas(c, s, p)) return -1;
    int rc = prod_build(p);
    if (rc == ERR_LIMIT)
        gram_js_fail(c, rc, "string constraints (patterns, formats, lengths %llu..%llu) need more than %d automaton states",
                     (unsigned long long)s->min, (unsigned long long)s->max, GRAM_JS_MAX_PRODUCT);
    else if (rc)
        gram_js_fail(c, rc, "out of memory");
    return rc ? -1 : 0;
}

int gram_js_str_empty(struct gram_js_ctx *c, const struct gram_js_strc *s)
{
    if (s->lit_conflict || s->min > s->max) return 1;
    if (s->lit) return !lit_ok(c, s);
    if (s->n_pat == 0 && s->formats == 0) return 0;
    struct prod p;
    int empty = 0;
    if (prod_setup(c, s, &p) == 0) empty = !p.s[0].live;
    prod_free(&p);
    return empty;
}

void gram_js_str_emit(struct gram_js_ctx *c, const struct gram_js_strc *s, const char *hint,
                      struct gram_js_buf *out, int *empty)
{
    *empty = 0;
    if (s->lit_conflict || s->min > s->max) {
        *empty = 1;
        return;
    }
    if (s->lit) {
        if (lit_ok(c, s)) gram_js_put_json_string(out, s->lit, s->lit_len);
        else *empty = 1;
        return;
    }
    if (s->n_pat == 0 && s->formats == 0 && s->min == 0 && s->max == UINT64_MAX) {
        gram_js_puts(out, gram_js_prim(c, GRAM_JS_P_STRING));
        return;
    }
    if (s->n_pat == 0 && s->formats == 0) {
        gram_js_puts(out, "\"\\\"\" ");
        gram_js_put_repeat(out, gram_js_prim(c, GRAM_JS_P_CHAR), s->min, s->max);
        gram_js_puts(out, " \"\\\"\"");
        return;
    }
    struct prod p;
    if (prod_setup(c, s, &p) == 0) {
        if (!p.s[0].live) {
            *empty = 1;
        } else {
            gram_js_puts(out, "\"\\\"\" ");
            prod_ref(&p, 0, out, hint);
            gram_js_puts(out, " \"\\\"\"");
        }
    }
    prod_free(&p);
}
