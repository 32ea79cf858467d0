/* gram_schema_prim: the converter's shared building blocks, defined once per grammar on first
 * use: whitespace and the gaps between tokens, any JSON string / number / integer / value /
 * object / array, "never", and the rule for one character of a JSON string drawn from any set of
 * code points (gram_js_cset_rule), spelled every way JSON can write it.
 *
 * A set of code points becomes one rule listing all spellings of its members: literally (not ",
 * \ or a control character), as a short escape (\" \\ \/ \b \f \n \r \t), as \uXXXX in
 * either case, or as a surrogate pair for U+10000 and above. Constraints on strings are on the
 * decoded characters (gram_schema_str.c), so spelling every set this way keeps the grammar exact
 * whatever escapes a writer uses. Set rules are memoised by their ranges, so a pattern and the
 * plain string type share the rule of "any character". */
#include "gram_schema_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- gaps and building blocks ---- */

void gram_js_gap(struct gram_js_ctx *c, struct gram_js_buf *b)
{
    if (c->o.ws == 0) {
        gram_js_puts(b, " ");
        return;
    }
    gram_js_printf(b, " %s ", gram_js_prim(c, GRAM_JS_P_WS));
}

void gram_js_sep(struct gram_js_ctx *c, struct gram_js_buf *b)
{
    gram_js_gap(c, b);
    gram_js_puts(b, "\",\"");
    gram_js_gap(c, b);
}

static const char *const g_prim_name[GRAM_JS_P_COUNT_] = {
    "ws", "char", "string", "integer", "number", "value", "object", "array", "never"};

const char *gram_js_prim(struct gram_js_ctx *c, enum gram_js_prim p)
{
    if (c->rc) return "";
    if (c->prim[p]) return gram_js_rule_name(c, c->prim[p] - 1);
    if (p == GRAM_JS_P_CHAR) { /* a set rule, shared with patterns that allow any character */
        struct gram_js_cset u = {0};
        gram_js_cset_add(&u, 0, 0xD7FF);
        gram_js_cset_add(&u, 0xE000, 0x10FFFF);
        const char *n = gram_js_cset_rule(c, &u);
        gram_js_cset_free(&u);
        for (size_t i = 0; i < c->n_rules; i++)
            if (c->rules[i].name == n || strcmp(c->rules[i].name, n) == 0) c->prim[p] = i + 1;
        return n;
    }
    size_t r = gram_js_rule_new(c, g_prim_name[p]);
    if (r == SIZE_MAX) return "";
    c->prim[p] = r + 1;
    struct gram_js_buf b = {0};
    switch (p) {
    case GRAM_JS_P_WS:
        gram_js_printf(&b, "[ \\t\\n\\r]{0,%u}", c->o.ws);
        break;
    case GRAM_JS_P_STRING:
        gram_js_printf(&b, "\"\\\"\" %s* \"\\\"\"", gram_js_prim(c, GRAM_JS_P_CHAR));
        break;
    case GRAM_JS_P_INT:
    case GRAM_JS_P_NUMBER:
        gram_js_puts(&b, "\"-\"? ");
        gram_js_num_any_mag(&b, p == GRAM_JS_P_INT);
        break;
    case GRAM_JS_P_VALUE:
        gram_js_printf(&b, "%s | %s | %s | %s | \"true\" | \"false\" | \"null\"",
                       gram_js_prim(c, GRAM_JS_P_OBJECT), gram_js_prim(c, GRAM_JS_P_ARRAY),
                       gram_js_prim(c, GRAM_JS_P_STRING), gram_js_prim(c, GRAM_JS_P_NUMBER));
        break;
    case GRAM_JS_P_OBJECT: {
        const char *s = gram_js_prim(c, GRAM_JS_P_STRING), *v = gram_js_prim(c, GRAM_JS_P_VALUE);
        struct gram_js_buf kv = {0};
        gram_js_puts(&kv, s);
        gram_js_gap(c, &kv);
        gram_js_puts(&kv, "\":\"");
        gram_js_gap(c, &kv);
        gram_js_puts(&kv, v);
        gram_js_puts(&b, "\"{\"");
        gram_js_gap(c, &b);
        gram_js_printf(&b, "(%s (", kv.p ? kv.p : "");
        gram_js_sep(c, &b);
        gram_js_printf(&b, "%s)*", kv.p ? kv.p : "");
        gram_js_puts(&b, ")?");
        gram_js_gap(c, &b);
        gram_js_puts(&b, "\"}\"");
        if (kv.oom) b.oom = 1;
        gram_js_buf_free(&kv);
        break;
    }
    case GRAM_JS_P_ARRAY: {
        const char *v = gram_js_prim(c, GRAM_JS_P_VALUE);
        gram_js_puts(&b, "\"[\"");
        gram_js_gap(c, &b);
        gram_js_printf(&b, "(%s (", v);
        gram_js_sep(c, &b);
        gram_js_printf(&b, "%s)*)?", v);
        gram_js_gap(c, &b);
        gram_js_puts(&b, "\"]\"");
        break;
    }
    case GRAM_JS_P_NEVER:
        /* a class that excludes every code point */
        gram_js_puts(&b, "[^\\x00-\\U0010ffff]");
        break;
    default:
        break;
    }
    gram_js_rule_set(c, r, &b);
    return gram_js_rule_name(c, r);
}

/* Unbounded magnitudes, exponent included. An integer written with a fraction (zeros) or an
 * exponent has at most 16 digits before it and a two-digit exponent, so a double-based reader
 * gets a finite integer (1e999 would be infinity, which Python's jsonschema calls no integer). */
void gram_js_num_any_mag(struct gram_js_buf *b, int integer_only)
{
    if (integer_only)
        gram_js_puts(b, "((\"0\" | [1-9] [0-9]*) | (\"0\" | [1-9] [0-9]{0,15}) (\".\" \"0\"+ ([eE] \"+\"? [0-9]{1,2})? | "
                        "[eE] \"+\"? [0-9]{1,2}))");
    else
        gram_js_puts(b, "((\"0\" | [1-9] [0-9]*) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)?)");
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
    gram_js_cset_minus_range(&tmp, s, 0, 0x1f);
    gram_js_cset_minus_range(&tmp2, &tmp, 0x22, 0x22);
    gram_js_cset_minus_range(&lit, &tmp2, 0x5c, 0x5c);
    int first = 1;
    if (lit.n > 0) {
        /* the negated form when it is shorter (surrogates are no characters either way) */
        struct gram_js_cset with_sur = {0};
        gram_js_cset_add_set(&with_sur, &lit);
        gram_js_cset_add(&with_sur, GRAM_JS_SUR_LO, GRAM_JS_SUR_HI);
        gram_js_cset_complement(&comp, &with_sur, GRAM_JS_CP_MAX);
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
        if (gram_js_cset_has(s, shorts[i].cp)) esc[ne++] = shorts[i].esc;
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

/* ---- character-set rules, memoised per context ---- */

struct cs_entry {
    struct gram_js_cset set;
    size_t rule;
};

struct gram_js_charset_memo {
    struct cs_entry *e;
    size_t n, cap;
};

static struct gram_js_charset_memo *memo(struct gram_js_ctx *c)
{
    if (!c->cs) {
        c->cs = calloc(1, sizeof *c->cs);
        if (!c->cs) gram_js_fail(c, ERR_NOMEM, "out of memory");
    }
    return c->cs;
}

void gram_js_prim_ctx_free(struct gram_js_ctx *c)
{
    struct gram_js_charset_memo *m = c->cs;
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) gram_js_cset_free(&m->e[i].set);
    free(m->e);
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
        if (gram_js_cset_eq(&m->e[i].set, s)) return gram_js_rule_name(c, m->e[i].rule);
    if (gram_js_grow(&m->e, &m->cap, m->n + 1, sizeof *m->e)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return "";
    }
    size_t r = gram_js_rule_new(c, "char");
    if (r == SIZE_MAX) return "";
    struct cs_entry *e = &m->e[m->n];
    memset(e, 0, sizeof *e);
    gram_js_cset_add_set(&e->set, s);
    e->rule = r;
    m->n++;
    struct gram_js_buf b = {0};
    spell_set(c, &b, s);
    gram_js_rule_set(c, r, &b);
    return gram_js_rule_name(c, r);
}
