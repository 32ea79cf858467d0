/* gram_schema_rx: ECMA-262 patterns as deterministic automata over code points.
 *
 * A pattern is parsed into a tree, compiled to a Thompson NFA (built back to front, so each
 * piece is created knowing where it continues), determinised by the subset construction over
 * code point intervals (the interval edges of a state's members split the code points; each
 * piece follows one set of NFA states), and minimised by Moore's partition refinement after
 * dropping states that cannot reach acceptance. Sizes are bounded (GRAM_JS_MAX_NFA and
 * GRAM_JS_MAX_DFA states, quantifier bounds <= 1000, nesting <= 100): a pattern past them is
 * ERR_LIMIT, never a hang.
 *
 * Supported subset (ECMA-262 without flags): alternation, groups ( ) (?: ) (?<name> ),
 * quantifiers * + ? {n} {n,} {n,m} (lazy forms too, same language), . and classes [...] [^...]
 * with ranges, \d \D \w \W \s \S, escapes \t \n \v \f \r \0 \cX \xHH \uHHHH (a surrogate pair
 * of \u escapes is one character), identity escapes of punctuation, ^ at the start and $ at the
 * end of a top-level alternative, and Annex B's literal { } ]. A pattern is unanchored: without
 * ^ (without $) anything may come before (after) the match, i.e. it means "contains". Refused
 * (ERR_UNSUPPORTED with the reason): backreferences, lookaround, \b \B, \p{...}, \u{...},
 * anchors elsewhere, non-BMP characters inside classes or under a quantifier (UTF-16 and code
 * point semantics disagree there). `.` and negated classes match BMP characters only, where
 * the two agree; \d \w \s and their negations keep only what they mean both in ECMA-262 and
 * in Unicode-aware engines such as Python's re (class_named), so a match never depends on
 * which one a validator uses. */
#include "gram_schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
    if (p->nn >= GRAM_JS_MAX_NFA) return rx_fail(p, ERR_LIMIT, "pattern too long");
    if (gram_js_grow(&p->nodes, &p->capn, p->nn + 1, sizeof *p->nodes)) return rx_fail(p, ERR_NOMEM, "out of memory");
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
    if (gram_js_grow(&p->sets, &p->caps, p->ns + 1, sizeof *p->sets)) return rx_fail(p, ERR_NOMEM, "out of memory");
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

/* Predefined classes as two sets: `sure` holds what the class matches under ECMA-262 and under
 * Unicode-aware engines alike (Python's re reads \d \w \s as Unicode classes), `maybe` what it
 * matches under either. A pattern keeps a character only when it is sure: a positive class
 * uses the sure sets of its members, a negated one the complement of their maybe sets. So
 * \d \w are ASCII, \s leaves out U+FEFF (not space to Python), \D \W are ASCII non-digits /
 * non-word characters (a non-ASCII letter or digit may be either), \S leaves out U+001C-001F
 * and U+0085 as well (space to Python). All within the BMP. */
static void class_named(struct gram_js_cset *sure, struct gram_js_cset *maybe, int name)
{
    struct gram_js_cset ps = {0}, pm = {0}; /* the lower-case class */
    int lower = name | 0x20;
    if (lower == 'd' || lower == 'w') {
        gram_js_cset_add(&ps, '0', '9');
        if (lower == 'w') {
            gram_js_cset_add(&ps, 'A', 'Z');
            gram_js_cset_add(&ps, '_', '_');
            gram_js_cset_add(&ps, 'a', 'z');
        }
        gram_js_cset_add_set(&pm, &ps);
        gram_js_cset_add(&pm, 0x80, 0xFFFF);
    } else { /* s: ECMA's WhiteSpace and LineTerminator, Python's isspace() */
        static const uint32_t both[][2] = {{9, 13}, {32, 32}, {0xa0, 0xa0}, {0x1680, 0x1680},
                                           {0x2000, 0x200a}, {0x2028, 0x2029}, {0x202f, 0x202f},
                                           {0x205f, 0x205f}, {0x3000, 0x3000}};
        for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) gram_js_cset_add(&ps, both[i][0], both[i][1]);
        gram_js_cset_add_set(&pm, &ps);
        gram_js_cset_add(&pm, 0x1c, 0x1f);
        gram_js_cset_add(&pm, 0x85, 0x85);
        gram_js_cset_add(&pm, 0xfeff, 0xfeff);
    }
    if (name == lower) {
        gram_js_cset_add_set(sure, &ps);
        gram_js_cset_add_set(maybe, &pm);
    } else { /* negated: sure = not maybe, maybe = not sure (BMP, no surrogates) */
        struct gram_js_cset a = {0}, b = {0};
        gram_js_cset_add(&pm, GRAM_JS_SUR_LO, GRAM_JS_SUR_HI);
        gram_js_cset_add(&ps, GRAM_JS_SUR_LO, GRAM_JS_SUR_HI);
        gram_js_cset_complement(&a, &pm, 0xFFFF);
        gram_js_cset_complement(&b, &ps, 0xFFFF);
        gram_js_cset_add_set(sure, &a);
        gram_js_cset_add_set(maybe, &b);
        if (a.oom || b.oom) sure->oom = 1;
        gram_js_cset_free(&a);
        gram_js_cset_free(&b);
    }
    if (ps.oom || pm.oom) sure->oom = 1;
    gram_js_cset_free(&ps);
    gram_js_cset_free(&pm);
}

/* \uHHHH (after the u); a lead and trail surrogate pair of escapes is one character. */
static int rx_escape_u(struct rx *p, uint32_t *cp)
{
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
    if (v >= GRAM_JS_SUR_LO && v <= GRAM_JS_SUR_HI)
        return rx_fail(p, ERR_UNSUPPORTED, "a lone surrogate \\u escape is not supported");
    *cp = v;
    return 1;
}

/* An escape after '\'. Sets *cp (a character, returns 1) or adds a class to set and maybe
 * (returns 2; see class_named). */
static int rx_escape(struct rx *p, int in_class, uint32_t *cp, struct gram_js_cset *set,
                     struct gram_js_cset *maybe)
{
    int c = rx_peek(p, 0);
    if (c < 0) return rx_fail(p, ERR_INVALID, "pattern ends with a backslash");
    p->i++;
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        class_named(set, maybe, c);
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
    case 'u':
        return rx_escape_u(p, cp);
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
    struct gram_js_cset acc = {0}, may = {0}; /* sure members, possible members */
    for (;;) {
        int c = rx_peek(p, 0);
        if (c < 0) {
            gram_js_cset_free(&acc);
            gram_js_cset_free(&may);
            return rx_fail(p, ERR_INVALID, "unterminated character class");
        }
        if (c == ']') {
            p->i++;
            break;
        }
        uint32_t a = 0;
        int kind = 1;
        p->i++;
        if (c == '\\') kind = rx_escape(p, 1, &a, &acc, &may);
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
            struct gram_js_cset dummy = {0}, dummy2 = {0};
            int k2 = 1;
            if (d == '\\') k2 = rx_escape(p, 1, &b, &dummy, &dummy2);
            else b = (uint32_t)d;
            gram_js_cset_free(&dummy);
            gram_js_cset_free(&dummy2);
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
        gram_js_cset_add(&may, a, b);
    }
    if (p->rc) {
        gram_js_cset_free(&acc);
        gram_js_cset_free(&may);
        return -1;
    }
    /* characters only, no surrogates; a negated class keeps what is surely none of its members */
    struct gram_js_cset clean = {0};
    gram_js_cset_minus_range(&clean, neg ? &may : &acc, GRAM_JS_SUR_LO, GRAM_JS_SUR_HI);
    if (neg) {
        gram_js_cset_add(&clean, GRAM_JS_SUR_LO, GRAM_JS_SUR_HI);
        gram_js_cset_complement(&p->sets[si], &clean, 0xFFFF);
    } else {
        gram_js_cset_add_set(&p->sets[si], &clean);
    }
    if (acc.oom || may.oom || clean.oom || p->sets[si].oom) rx_fail(p, ERR_NOMEM, "out of memory");
    gram_js_cset_free(&acc);
    gram_js_cset_free(&may);
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
        gram_js_cset_add(s, 0x202a, GRAM_JS_SUR_LO - 1);
        gram_js_cset_add(s, GRAM_JS_SUR_HI + 1, 0xFFFF);
    } else if (c == '\\') {
        uint32_t cp = 0;
        struct gram_js_cset maybe = {0};
        int k = rx_escape(p, 0, &cp, s, &maybe);
        gram_js_cset_free(&maybe);
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

/* (any character)*: what an unanchored side of a pattern may hold. */
static int rx_any_star(struct rx *p)
{
    int si = rx_set(p);
    if (si < 0) return -1;
    gram_js_cset_universe(&p->sets[si]);
    int s = rx_set_node(p, si), r = rx_node(p, RX_REP);
    if (s < 0 || r < 0) return -1;
    p->nodes[r].first = s;
    p->nodes[r].min = 0;
    p->nodes[r].max = -1;
    return r;
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
            int head = a & 1 ? -2 : rx_any_star(p), tail = a & 2 ? -2 : rx_any_star(p);
            if (head == -1 || tail == -1) return -1;
            int seq[3] = {head, n, tail}, prev = -1;
            for (int k = 0; k < 3; k++) {
                if (seq[k] < 0) continue; /* -2: anchored, nothing there */
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
    if (gram_js_utf8_cps(pat, len, cps, &n)) return rx_fail(p, ERR_NOMEM, "out of memory");
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
    if (a->n >= GRAM_JS_MAX_NFA) {
        a->rc = ERR_LIMIT;
        return -1;
    }
    if (gram_js_grow(&a->st, &a->cap, a->n + 1, sizeof *a->st)) {
        a->rc = ERR_NOMEM;
        return -1;
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

void gram_js_dfa_free(struct gram_js_dfa *d)
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
    size_t n, cap_sets, cap_st;
    size_t *hash; /* open addressing: dfa index + 1 */
    size_t hcap;
    struct gram_js_dst *st;
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
    if (gram_js_grow(&d->sets, &d->cap_sets, d->n + 1, sizeof *d->sets) ||
        gram_js_grow(&d->st, &d->cap_st, d->n + 1, sizeof *d->st)) {
        d->rc = ERR_NOMEM;
        free(s->v);
        s->v = NULL;
        return -1;
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

/* The interval edges (lo and hi + 1 of every range) of the sets leaving DFA state i, sorted;
 * marks the state accepting on the way. NULL when out of memory. */
static uint32_t *det_edges(struct det *d, size_t i, size_t *nb)
{
    const struct sset *cur = &d->sets[i];
    size_t cap = 0;
    uint32_t *bnd = NULL;
    *nb = 0;
    if (gram_js_grow(&bnd, &cap, 2, sizeof *bnd)) return NULL;
    for (size_t k = 0; k < cur->n; k++) {
        const struct nst *x = &d->a->st[cur->v[k]];
        if (x->kind == N_ACC) d->st[i].accept = 1;
        if (x->kind != N_SET) continue;
        const struct gram_js_cset *cs = &d->p->sets[x->set];
        if (gram_js_grow(&bnd, &cap, *nb + 2 * cs->n, sizeof *bnd)) {
            free(bnd);
            return NULL;
        }
        for (size_t r = 0; r < cs->n; r++) {
            bnd[(*nb)++] = cs->r[2 * r];
            bnd[(*nb)++] = cs->r[2 * r + 1] + 1;
        }
    }
    qsort(bnd, *nb, sizeof *bnd, cmp_u32);
    return bnd;
}

/* Transitions of DFA state i: split the code points at every range edge of its members, and
 * follow each elementary interval to the closure of its targets. */
static int det_expand(struct det *d, size_t i)
{
    size_t nb;
    uint32_t *bnd = det_edges(d, i, &nb);
    int *seeds = malloc((d->sets[i].n + 1) * sizeof *seeds);
    struct gram_js_dtr *t = NULL;
    size_t nt = 0, capt = 0;
    int rc = seeds && bnd ? 0 : ERR_NOMEM;
    for (size_t b = 0; b + 1 < nb && !rc; b++) {
        uint32_t lo = bnd[b], hi = bnd[b + 1] - 1;
        if (bnd[b + 1] == lo) continue;
        size_t ns = 0;
        for (size_t k = 0; k < d->sets[i].n; k++) {
            const struct nst *x = &d->a->st[d->sets[i].v[k]];
            if (x->kind == N_SET && gram_js_cset_has(&d->p->sets[x->set], lo)) seeds[ns++] = x->out1;
        }
        if (ns == 0) continue;
        struct sset tgt;
        rc = closure(d, seeds, ns, &tgt);
        if (rc) break;
        int to = det_state(d, &tgt); /* may move d->sets and d->st */
        if (to < 0) {
            rc = d->rc;
            break;
        }
        if (nt > 0 && t[nt - 1].to == to && t[nt - 1].hi + 1 == lo) {
            t[nt - 1].hi = hi;
            continue;
        }
        if (gram_js_grow(&t, &capt, nt + 1, sizeof *t)) {
            rc = ERR_NOMEM;
            break;
        }
        t[nt++] = (struct gram_js_dtr){lo, hi, to};
    }
    free(seeds);
    free(bnd);
    d->st[i].t = t;
    d->st[i].nt = nt;
    return rc;
}

/* Merge equivalent states (Moore's partition refinement), dropping states that cannot reach
 * acceptance. The result's state 0 is the start; it may have no transitions and not accept. */
static struct gram_js_dfa *dfa_minimise(struct gram_js_dst *st, size_t n, int *rc);

struct gram_js_dfa *gram_js_rx_compile(const char *pat, size_t len, int *rc, char *why, size_t why_len)
{
    struct rx p = {0};
    p.why = why;
    p.why_len = why_len;
    uint32_t *cps = NULL;
    int root = rx_parse(&p, pat, len, &cps);
    free(cps);
    struct nfa a = {0};
    struct gram_js_dfa *out = NULL;
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
static unsigned char *coreachable(const struct gram_js_dst *st, size_t n)
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
static size_t signature(const struct gram_js_dst *s, const int *cls, const unsigned char *live,
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
static size_t refine(const struct gram_js_dst *st, size_t n, const int *cls, const unsigned char *live,
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

static struct gram_js_dfa *dfa_minimise(struct gram_js_dst *st, size_t n, int *rc)
{
    unsigned char *live = coreachable(st, n);
    int *cls = malloc(n * sizeof *cls), *ncls = malloc(n * sizeof *ncls);
    uint32_t **sig = calloc(n, sizeof *sig);
    size_t *sl = calloc(n, sizeof *sl);
    size_t tcap = 16;
    while (tcap < 2 * n) tcap *= 2;
    size_t *tab = malloc(tcap * sizeof *tab);
    int *num = malloc(n * sizeof *num);
    struct gram_js_dfa *out = NULL;
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
        struct gram_js_dst *o = &out->s[num[i]];
        o->accept = st[i].accept;
        o->t = malloc((st[i].nt + 1) * sizeof *o->t);
        if (!o->t) goto oom;
        for (size_t t = 0; t < st[i].nt; t++) {
            if (!live[st[i].t[t].to]) continue;
            int to = num[cls[st[i].t[t].to]];
            if (o->nt > 0 && o->t[o->nt - 1].to == to && o->t[o->nt - 1].hi + 1 == st[i].t[t].lo)
                o->t[o->nt - 1].hi = st[i].t[t].hi;
            else
                o->t[o->nt++] = (struct gram_js_dtr){st[i].t[t].lo, st[i].t[t].hi, to};
        }
    }
    goto done;
oom:
    *rc = ERR_NOMEM;
    gram_js_dfa_free(out);
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

