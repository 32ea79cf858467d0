/* gram_parse: GBNF text -> builder (gram_int.h), the syntax of llama.cpp's grammar parser.
 *
 *   grammar  := space* (rule)*
 *   rule     := name sp "::=" space* alts (newline | end) space*
 *   alts     := seq ("|" space* seq)*
 *   seq      := (item | quantifier)*          item: "lit" [class] [^class] . name (alts) <tok> !<tok>
 *   quantifier := * + ? {m} {m,} {m,n}      applies to the item just before (itself maybe quantified)
 *
 * Spacing is llama.cpp's: blanks and # comments anywhere; newlines only between rules, after
 * "::=" and "|", and anywhere inside parentheses, so a rule ends at the first newline outside
 * them. Names are [A-Za-z0-9-]+. Escapes: \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH.
 *
 * Every error names line:column (columns in characters) and a reason; the parser never reads past
 * len and recursion is bounded by GRAM_MAX_DEPTH. */
#include "gram_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct parser {
    struct gbuild *b;
    const char *s;
    size_t n;
};

/* A printable rendering of the byte at off, for messages. */
static const char *show(const struct parser *p, size_t off, char buf[16])
{
    if (off >= p->n) return "end of input";
    unsigned char ch = (unsigned char)p->s[off];
    if (ch >= 0x20 && ch < 0x7f)
        snprintf(buf, 16, "'%c'", ch);
    else
        snprintf(buf, 16, "byte 0x%02X", ch);
    return buf;
}

/* ---- growable arrays ---- */

static int grow(void *pp, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) return 0;
    uint32_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > UINT32_MAX / 2) return ERR_NOMEM;
        nc *= 2;
    }
    void *q = realloc(*(void **)pp, (size_t)nc * elem);
    if (!q) return ERR_NOMEM;
    *(void **)pp = q;
    *cap = nc;
    return 0;
}

static int oom(struct parser *p) { return gram_gb_error(p->b, ERR_NOMEM, 0, "out of memory"); }

static int push_el(struct parser *p, uint32_t rid, uint8_t op, uint32_t a, uint32_t bb, size_t off)
{
    struct gbuild *b = p->b;
    if (b->n_el_total >= GRAM_MAX_ELEMS)
        return gram_gb_error(b, ERR_LIMIT, off, "grammar too large (more than %u elements)", GRAM_MAX_ELEMS);
    struct gb_rule *r = &b->rules[rid];
    if (grow(&r->el, &r->cap, r->n + 1, sizeof *r->el)) return oom(p);
    r->el[r->n++] = (struct gel){op, a, bb};
    b->n_el_total++;
    return 0;
}

static int add_text(struct parser *p, const char *t, uint32_t len, uint32_t *off)
{
    struct gbuild *b = p->b;
    if (grow(&b->text, &b->cap_text, b->n_text + len + 1, 1)) return oom(p);
    memcpy(b->text + b->n_text, t, len);
    *off = b->n_text;
    b->n_text += len;
    b->text[b->n_text++] = 0;
    return 0;
}

static int new_rule(struct parser *p, uint32_t name_off, uint32_t name_len, bool synth, size_t off,
                    uint32_t *rid)
{
    struct gbuild *b = p->b;
    if (b->n_rules >= GRAM_MAX_RULES)
        return gram_gb_error(b, ERR_LIMIT, off, "grammar too large (more than %u rules)", GRAM_MAX_RULES);
    if (grow(&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules)) return oom(p);
    struct gb_rule *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    r->name_off = name_off;
    r->name_len = name_len;
    r->synth = synth;
    r->def_off = r->ref_off = off;
    r->defined = synth;
    *rid = b->n_rules++;
    return 0;
}

/* ---- rule names: open addressing over named rules ---- */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int names_rehash(struct parser *p)
{
    struct gbuild *b = p->b;
    uint32_t nc = b->names_cap ? b->names_cap * 2 : 64;
    uint32_t *t = calloc(nc, sizeof *t);
    if (!t) return oom(p);
    for (uint32_t i = 0; i < b->n_rules; i++) {
        if (b->rules[i].synth) continue;
        uint32_t h = name_hash(b->text + b->rules[i].name_off, b->rules[i].name_len) & (nc - 1);
        while (t[h]) h = (h + 1) & (nc - 1);
        t[h] = i + 1;
    }
    free(b->names);
    b->names = t;
    b->names_cap = nc;
    return 0;
}

/* Rule id for a name, created (undefined, first referenced at off) when new. */
static int lookup_rule(struct parser *p, const char *name, uint32_t len, size_t off, uint32_t *rid)
{
    struct gbuild *b = p->b;
    if ((b->n_rules + 1) * 2 > b->names_cap) {
        int rc = names_rehash(p);
        if (rc) return rc;
    }
    uint32_t mask = b->names_cap - 1, h = name_hash(name, len) & mask;
    for (; b->names[h]; h = (h + 1) & mask) {
        const struct gb_rule *r = &b->rules[b->names[h] - 1];
        if (r->name_len == len && memcmp(b->text + r->name_off, name, len) == 0) {
            *rid = b->names[h] - 1;
            return 0;
        }
    }
    uint32_t noff;
    int rc = add_text(p, name, len, &noff);
    if (rc) return rc;
    rc = new_rule(p, noff, len, false, off, rid);
    if (rc) return rc;
    b->names[h] = *rid + 1;
    return 0;
}

/* ---- lexical pieces ---- */

static bool is_word(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
}

static size_t skip_space(const struct parser *p, size_t i, bool newline_ok)
{
    while (i < p->n) {
        char ch = p->s[i];
        if (ch == ' ' || ch == '\t' || (newline_ok && (ch == '\r' || ch == '\n'))) {
            i++;
        } else if (ch == '#') {
            while (i < p->n && p->s[i] != '\r' && p->s[i] != '\n') i++;
        } else {
            break;
        }
    }
    return i;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Strict UTF-8 decode at i: code point and length, or 0 length if invalid. */
static size_t utf8_at(const char *s, size_t n, size_t i, uint32_t *cp)
{
    unsigned char c0 = (unsigned char)s[i];
    if (c0 < 0x80) {
        *cp = c0;
        return 1;
    }
    size_t len;
    uint32_t v, lo;
    if (c0 >= 0xc2 && c0 <= 0xdf) len = 2, v = c0 & 0x1f, lo = 0x80;
    else if (c0 >= 0xe0 && c0 <= 0xef) len = 3, v = c0 & 0x0f, lo = 0x800;
    else if (c0 >= 0xf0 && c0 <= 0xf4) len = 4, v = c0 & 0x07, lo = 0x10000;
    else return 0;
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        unsigned char ck = (unsigned char)s[i + k];
        if ((ck & 0xc0) != 0x80) return 0;
        v = (v << 6) | (ck & 0x3f);
    }
    if (v < lo || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* One character of a literal or class at *i (escape or UTF-8). */
static int parse_char(struct parser *p, size_t *i, uint32_t *cp)
{
    size_t at = *i;
    if (at >= p->n) return gram_gb_error(p->b, ERR_SYNTAX, at, "unexpected end of input");
    if (p->s[at] == 0) return gram_gb_error(p->b, ERR_SYNTAX, at, "NUL byte in grammar");
    if (p->s[at] != '\\') {
        size_t len = utf8_at(p->s, p->n, at, cp);
        if (!len) return gram_gb_error(p->b, ERR_SYNTAX, at, "invalid UTF-8 in grammar");
        *i = at + len;
        return 0;
    }
    if (at + 1 >= p->n) return gram_gb_error(p->b, ERR_SYNTAX, at, "unexpected end of input after '\\'");
    char e = p->s[at + 1];
    int digits = 0;
    switch (e) {
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case '\\': case '"': case '[': case ']': *cp = (unsigned char)e; break;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: {
        char buf[16];
        return gram_gb_error(p->b, ERR_SYNTAX, at, "unknown escape '\\' followed by %s",
                        show(p, at + 1, buf));
    }
    }
    if (!digits) {
        *i = at + 2;
        return 0;
    }
    uint32_t v = 0;
    for (int k = 0; k < digits; k++) {
        int h = at + 2 + (size_t)k < p->n ? hexval(p->s[at + 2 + k]) : -1;
        if (h < 0)
            return gram_gb_error(p->b, ERR_SYNTAX, at, "expecting %d hex digits after '\\%c'", digits, e);
        v = (v << 4) | (uint32_t)h;
    }
    if (v > 0x10ffff)
        return gram_gb_error(p->b, ERR_RANGE, at, "code point U+%X is past U+10FFFF", v);
    *cp = v;
    *i = at + 2 + (size_t)digits;
    return 0;
}

/* Decimal count for {m,n}. */
static int parse_count(struct parser *p, size_t *i, uint32_t *out)
{
    size_t at = *i;
    if (at >= p->n || p->s[at] < '0' || p->s[at] > '9')
        return gram_gb_error(p->b, ERR_SYNTAX, at, "expecting a number in {m,n}");
    uint64_t v = 0;
    while (at < p->n && p->s[at] >= '0' && p->s[at] <= '9') {
        v = v * 10 + (uint64_t)(p->s[at] - '0');
        if (v > GRAM_MAX_REPEAT)
            return gram_gb_error(p->b, ERR_LIMIT, *i, "repetition count exceeds %u", GRAM_MAX_REPEAT);
        at++;
    }
    *out = (uint32_t)v;
    *i = at;
    return 0;
}

/* ---- classes ---- */

static int cmp_range(const void *x, const void *y)
{
    const struct grange *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Turn tmp ranges (unsorted) into a normalized class; *k gets its index. */
static int make_class(struct parser *p, struct grange *tmp, uint32_t nt, bool neg, uint32_t *k)
{
    struct gbuild *b = p->b;
    qsort(tmp, nt, sizeof *tmp, cmp_range);
    uint32_t m = 0;
    for (uint32_t i = 0; i < nt; i++) {
        if (m && tmp[i].lo <= tmp[m - 1].hi + 1) {
            if (tmp[i].hi > tmp[m - 1].hi) tmp[m - 1].hi = tmp[i].hi;
        } else {
            tmp[m++] = tmp[i];
        }
    }
    /* complement over [0, 0x10FFFF] needs at most m + 1 ranges; code point 0 is then dropped */
    if (grow(&b->rng, &b->cap_rng, b->n_rng + m + 1, sizeof *b->rng)) return oom(p);
    if (grow(&b->cls, &b->cap_cls, b->n_cls + 1, sizeof *b->cls)) return oom(p);
    struct gclass *c = &b->cls[b->n_cls];
    memset(c, 0, sizeof *c);
    c->r0 = b->n_rng;
    struct grange *out = b->rng + b->n_rng;
    uint32_t n = 0;
    if (neg) {
        uint32_t next = 0;
        for (uint32_t i = 0; i < m; i++) {
            if (tmp[i].lo > next) out[n++] = (struct grange){next, tmp[i].lo - 1};
            next = tmp[i].hi + 1;
        }
        if (next <= 0x10ffff) out[n++] = (struct grange){next, 0x10ffff};
    } else {
        memcpy(out, tmp, m * sizeof *tmp);
        n = m;
    }
    if (n && out[0].lo == 0) {
        if (out[0].hi == 0) {
            memmove(out, out + 1, (n - 1) * sizeof *out);
            n--;
        } else {
            out[0].lo = 1;
        }
    }
    c->nr = n;
    b->n_rng += n;
    bool na_any = false;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t cp = out[i].lo; cp <= out[i].hi && cp < 128; cp++) c->asc[cp >> 6] |= 1ull << (cp & 63);
        if (out[i].hi >= 0x80) na_any = true;
    }
    if (!n) c->flags |= GC_EMPTY;
    if (!na_any) c->flags |= GC_NA_NONE;
    /* every valid code point >= 0x80: [0x80, 0xD7FF] and [0xE000, 0x10FFFF] covered */
    bool lo_ok = false, hi_ok = false;
    for (uint32_t i = 0; i < n; i++) {
        if (out[i].lo <= 0x80 && out[i].hi >= 0xd7ff) lo_ok = true;
        if (out[i].lo <= 0xe000 && out[i].hi >= 0x10ffff) hi_ok = true;
    }
    if (lo_ok && hi_ok) c->flags |= GC_NA_ALL;
    *k = b->n_cls++;
    return 0;
}

/* [...] at *i (on the '['): a GOP_CLASS element, or GOP_CHAR for a single positive character. */
static int parse_class(struct parser *p, uint32_t rid, size_t *i)
{
    size_t at = *i + 1, open = *i;
    bool neg = at < p->n && p->s[at] == '^';
    if (neg) at++;
    struct grange *tmp = NULL;
    uint32_t nt = 0, cap = 0;
    int rc = 0;
    while (!rc) {
        if (at >= p->n) {
            rc = gram_gb_error(p->b, ERR_SYNTAX, open, "unterminated character class");
            break;
        }
        if (p->s[at] == ']') break;
        uint32_t lo, hi;
        size_t cstart = at;
        if ((rc = parse_char(p, &at, &lo))) break;
        hi = lo;
        if (at + 1 < p->n && p->s[at] == '-' && p->s[at + 1] != ']') {
            at++;
            if ((rc = parse_char(p, &at, &hi))) break;
            if (hi < lo) {
                rc = gram_gb_error(p->b, ERR_SYNTAX, cstart, "range end U+%04X is before its start U+%04X",
                              hi, lo);
                break;
            }
        }
        if (grow(&tmp, &cap, nt + 1, sizeof *tmp)) {
            rc = oom(p);
            break;
        }
        tmp[nt++] = (struct grange){lo, hi};
    }
    if (!rc && nt == 0) rc = gram_gb_error(p->b, ERR_SYNTAX, open, "empty character class");
    if (!rc) {
        if (!neg && nt == 1 && tmp[0].lo == tmp[0].hi) {
            rc = push_el(p, rid, GOP_CHAR, tmp[0].lo, 0, open);
        } else {
            uint32_t k;
            rc = make_class(p, tmp, nt, neg, &k);
            if (!rc) rc = push_el(p, rid, GOP_CLASS, k, 0, open);
        }
    }
    free(tmp);
    *i = at + 1;
    return rc;
}

/* <[id]>, <text>, with an optional leading '!' (already consumed when neg). */
static int parse_token(struct parser *p, uint32_t rid, size_t *i, bool neg, size_t item_off)
{
    struct gbuild *b = p->b;
    size_t at = *i;
    char buf[16];
    if (at >= p->n || p->s[at] != '<')
        return gram_gb_error(b, ERR_SYNTAX, at, "expecting '<' after '!', got %s", show(p, at, buf));
    struct gtokref t = {.id = -1, .src_off = item_off};
    if (at + 1 < p->n && p->s[at + 1] == '[') {
        size_t d = at + 2;
        uint64_t v = 0;
        if (d >= p->n || p->s[d] < '0' || p->s[d] > '9')
            return gram_gb_error(b, ERR_SYNTAX, d, "expecting a token id in <[id]>");
        while (d < p->n && p->s[d] >= '0' && p->s[d] <= '9') {
            v = v * 10 + (uint64_t)(p->s[d] - '0');
            if (v > INT32_MAX) return gram_gb_error(b, ERR_RANGE, at, "token id too large");
            d++;
        }
        if (d >= p->n || p->s[d] != ']') return gram_gb_error(b, ERR_SYNTAX, d, "expecting ']' in <[id]>");
        if (d + 1 >= p->n || p->s[d + 1] != '>')
            return gram_gb_error(b, ERR_SYNTAX, d + 1, "expecting '>' after <[id]");
        t.id = (int64_t)v;
        at = d + 2;
    } else {
        size_t e = at + 1;
        while (e < p->n && p->s[e] != '>' && p->s[e] != 0) e++;
        if (e >= p->n || p->s[e] != '>') return gram_gb_error(b, ERR_SYNTAX, at, "unterminated <token>");
        if (e + 1 - at > GRAM_MAX_NAME)
            return gram_gb_error(b, ERR_LIMIT, at, "token text longer than %u bytes", GRAM_MAX_NAME);
        int rc = add_text(p, p->s + at, (uint32_t)(e + 1 - at), &t.text_off);
        if (rc) return rc;
        t.text_len = (uint32_t)(e + 1 - at);
        at = e + 1;
    }
    if (grow(&b->toks, &b->cap_toks, b->n_toks + 1, sizeof *b->toks)) return oom(p);
    b->toks[b->n_toks] = t;
    int rc = push_el(p, rid, neg ? GOP_NTOKEN : GOP_TOKEN, b->n_toks, 0, item_off);
    if (rc) return rc;
    b->n_toks++;
    *i = at;
    return 0;
}

/* Apply a quantifier to the item at rule rid's elements [last, n). */
static int quantify(struct parser *p, uint32_t rid, uint32_t *last, uint32_t min, uint32_t max,
                    size_t off)
{
    struct gbuild *b = p->b;
    if (*last == NONE) return gram_gb_error(b, ERR_SYNTAX, off, "nothing to repeat before the quantifier");
    if (max < min) return gram_gb_error(b, ERR_SYNTAX, off, "repetition maximum %u is below its minimum %u", max, min);
    struct gb_rule *r = &b->rules[rid];
    uint32_t n = r->n - *last;
    if (min == 1 && max == 1) return 0;
    if (max == 0) { /* x{0}: matches only the empty string, and leaves nothing to quantify */
        r->n = *last;
        b->n_el_total -= n;
        *last = NONE;
        return 0;
    }
    uint32_t body;
    if (n == 1 && r->el[*last].op == GOP_RULE) {
        body = r->el[*last].a;
    } else {
        int rc = new_rule(p, r->name_off, r->name_len, true, off, &body);
        if (rc) return rc;
        r = &b->rules[rid];
        struct gb_rule *br = &b->rules[body];
        if (grow(&br->el, &br->cap, n, sizeof *br->el)) return oom(p);
        memcpy(br->el, r->el + *last, n * sizeof *r->el);
        br->n = n;
    }
    r->n = *last;
    b->n_el_total -= n;
    if (grow(&b->reps, &b->cap_reps, b->n_reps + 1, sizeof *b->reps)) return oom(p);
    b->reps[b->n_reps] = (struct grep){min, max};
    int rc = push_el(p, rid, GOP_REP, body, b->n_reps, off);
    if (!rc) b->n_reps++;
    return rc;
}

/* {m} {m,} {m,n} at *i (on the '{'). */
static int parse_braces(struct parser *p, size_t *i, bool nested, uint32_t *min, uint32_t *max)
{
    size_t at = skip_space(p, *i + 1, nested);
    int rc = parse_count(p, &at, min);
    if (rc) return rc;
    at = skip_space(p, at, nested);
    char buf[16];
    if (at < p->n && p->s[at] == '}') {
        *max = *min;
    } else if (at < p->n && p->s[at] == ',') {
        at = skip_space(p, at + 1, nested);
        *max = GRAM_INF;
        if (at < p->n && p->s[at] >= '0' && p->s[at] <= '9') {
            if ((rc = parse_count(p, &at, max))) return rc;
            at = skip_space(p, at, nested);
        }
        if (at >= p->n || p->s[at] != '}')
            return gram_gb_error(p->b, ERR_SYNTAX, at, "expecting '}', got %s", show(p, at, buf));
    } else {
        return gram_gb_error(p->b, ERR_SYNTAX, at, "expecting ',' or '}', got %s", show(p, at, buf));
    }
    *i = at + 1;
    return 0;
}

static int parse_alternates(struct parser *p, uint32_t rid, size_t *i, bool nested, unsigned depth);

static int parse_group(struct parser *p, uint32_t rid, size_t *i, unsigned depth)
{
    size_t open = *i;
    if (depth >= GRAM_MAX_DEPTH)
        return gram_gb_error(p->b, ERR_LIMIT, open, "groups nested deeper than %u", GRAM_MAX_DEPTH);
    uint32_t sub;
    int rc = new_rule(p, p->b->rules[rid].name_off, p->b->rules[rid].name_len, true, open, &sub);
    if (rc) return rc;
    size_t at = skip_space(p, open + 1, true);
    if ((rc = parse_alternates(p, sub, &at, true, depth + 1))) return rc;
    if (at >= p->n || p->s[at] != ')') {
        char buf[16];
        return gram_gb_error(p->b, ERR_SYNTAX, at, "expecting ')' to close the group at %s",
                        show(p, at, buf));
    }
    *i = at + 1;
    return push_el(p, rid, GOP_RULE, sub, 0, open);
}

/* One item or quantifier at *i; *done when the sequence ends here. */
static int parse_item(struct parser *p, uint32_t rid, size_t *i, bool nested, unsigned depth,
                      uint32_t *last, bool *done)
{
    size_t at = *i;
    unsigned char ch = (unsigned char)p->s[at];
    uint32_t before = p->b->rules[rid].n;
    uint32_t min = 0, max = 0;
    int rc = 0;
    if (ch == '"') {
        at++;
        while (!rc) {
            if (at >= p->n) return gram_gb_error(p->b, ERR_SYNTAX, *i, "unterminated string literal");
            if (p->s[at] == '"') break;
            uint32_t cp;
            if (!(rc = parse_char(p, &at, &cp))) rc = push_el(p, rid, GOP_CHAR, cp, 0, at);
        }
        at++;
        *last = p->b->rules[rid].n > before ? before : NONE; /* "" is no item */
    } else if (ch == '[') {
        rc = parse_class(p, rid, &at);
        *last = before;
    } else if (ch == '<' || ch == '!') {
        bool neg = ch == '!';
        at += neg;
        rc = parse_token(p, rid, &at, neg, *i);
        *last = before;
    } else if (is_word(ch)) {
        size_t e = at;
        while (e < p->n && is_word((unsigned char)p->s[e])) e++;
        if (e - at > GRAM_MAX_NAME)
            return gram_gb_error(p->b, ERR_LIMIT, at, "rule name longer than %u bytes", GRAM_MAX_NAME);
        uint32_t ref;
        if (!(rc = lookup_rule(p, p->s + at, (uint32_t)(e - at), at, &ref)))
            rc = push_el(p, rid, GOP_RULE, ref, 0, at);
        at = e;
        *last = before;
    } else if (ch == '(') {
        rc = parse_group(p, rid, &at, depth);
        *last = before;
    } else if (ch == '.') {
        struct grange any = {1, 0x10ffff};
        uint32_t k;
        if (!(rc = make_class(p, &any, 1, false, &k))) rc = push_el(p, rid, GOP_CLASS, k, 0, at);
        at++;
        *last = before;
    } else if (ch == '*' || ch == '+' || ch == '?') {
        min = ch == '+';
        max = ch == '?' ? 1 : GRAM_INF;
        rc = quantify(p, rid, last, min, max, at);
        at++;
    } else if (ch == '{') {
        if (!(rc = parse_braces(p, &at, nested, &min, &max))) rc = quantify(p, rid, last, min, max, *i);
    } else {
        *done = true;
        return 0;
    }
    if (rc) return rc;
    *i = skip_space(p, at, nested);
    return 0;
}

static int parse_sequence(struct parser *p, uint32_t rid, size_t *i, bool nested, unsigned depth)
{
    uint32_t last = NONE;
    bool done = false;
    while (*i < p->n && !done) {
        if (p->s[*i] == 0) return gram_gb_error(p->b, ERR_SYNTAX, *i, "NUL byte in grammar");
        int rc = parse_item(p, rid, i, nested, depth, &last, &done);
        if (rc) return rc;
    }
    return 0;
}

static int parse_alternates(struct parser *p, uint32_t rid, size_t *i, bool nested, unsigned depth)
{
    int rc = parse_sequence(p, rid, i, nested, depth);
    while (!rc && *i < p->n && p->s[*i] == '|') {
        if ((rc = push_el(p, rid, GOP_ALT, 0, 0, *i))) break;
        *i = skip_space(p, *i + 1, true);
        rc = parse_sequence(p, rid, i, nested, depth);
    }
    return rc;
}

static int parse_rule(struct parser *p, size_t *i)
{
    struct gbuild *b = p->b;
    size_t at = *i, e = at;
    char buf[16];
    while (e < p->n && is_word((unsigned char)p->s[e])) e++;
    if (e == at) return gram_gb_error(b, ERR_SYNTAX, at, "expecting a rule name, got %s", show(p, at, buf));
    if (e - at > GRAM_MAX_NAME)
        return gram_gb_error(b, ERR_LIMIT, at, "rule name longer than %u bytes", GRAM_MAX_NAME);
    uint32_t rid;
    int rc = lookup_rule(p, p->s + at, (uint32_t)(e - at), at, &rid);
    if (rc) return rc;
    struct gb_rule *r = &b->rules[rid];
    if (r->defined) {
        unsigned line, col;
        gram_linecol(b, r->def_off, &line, &col);
        return gram_gb_error(b, ERR_DUPLICATE, at, "rule '%.*s' is already defined at line %u:%u",
                        (int)(e - at), p->s + at, line, col);
    }
    r->defined = true;
    r->def_off = at;
    size_t q = skip_space(p, e, false);
    if (q + 3 > p->n || memcmp(p->s + q, "::=", 3) != 0)
        return gram_gb_error(b, ERR_SYNTAX, q, "expecting '::=' after the rule name, got %s", show(p, q, buf));
    q = skip_space(p, q + 3, true);
    if ((rc = parse_alternates(p, rid, &q, false, 0))) return rc;
    if (q < p->n) {
        if (p->s[q] == '\r')
            q += (q + 1 < p->n && p->s[q + 1] == '\n') ? 2 : 1;
        else if (p->s[q] == '\n')
            q++;
        else
            return gram_gb_error(b, ERR_SYNTAX, q, "unexpected %s (expecting a newline or the end)",
                            show(p, q, buf));
    }
    *i = skip_space(p, q, true);
    return 0;
}

void gram_gb_free(struct gbuild *b)
{
    if (!b) return;
    for (uint32_t i = 0; i < b->n_rules; i++) free(b->rules[i].el);
    free(b->rules);
    free(b->names);
    free(b->reps);
    free(b->cls);
    free(b->rng);
    free(b->toks);
    free(b->text);
    memset(b, 0, sizeof *b);
}

int gram_parse(const char *src, size_t len, struct gram **out, struct err_info *ei)
{
    if (!out) return ERR_INVALID;
    *out = NULL;
    struct gbuild b = {.src = src, .len = len, .ei = ei};
    if (!src && len) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "grammar: NULL text");
    if (len > GRAM_MAX_SRC)
        return err_set(ei, ERR_LIMIT, 0, "line 1:1: grammar text is %zu bytes, more than %u", len,
                       GRAM_MAX_SRC);
    struct parser p = {&b, src, len};
    size_t i = skip_space(&p, 0, true);
    int rc = 0;
    while (!rc && i < len) rc = parse_rule(&p, &i);
    if (!rc) { /* line:column of token references, for errors when a vocabulary resolves them */
        size_t at = 0;
        unsigned line = 1, col = 1;
        for (uint32_t k = 0; k < b.n_toks; k++) { /* in source order */
            for (; at < b.toks[k].src_off; at++) {
                unsigned char ch = (unsigned char)src[at];
                if (ch == '\n' || (ch == '\r' && (at + 1 >= len || src[at + 1] != '\n')))
                    line++, col = 1;
                else if ((ch & 0xc0) != 0x80 && ch != '\r')
                    col++;
            }
            b.toks[k].line = line;
            b.toks[k].col = col;
        }
        rc = gram_compile(&b, out);
    }
    gram_gb_free(&b);
    return rc;
}
