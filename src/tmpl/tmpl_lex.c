/* tmpl_lex: template text -> tokens, following jinja2 3.1's lexer (lexer.py) with the
 * environment transformers uses: trim_blocks, lstrip_blocks, default delimiters, no line
 * statements, keep_trailing_newline off.
 *
 * Whitespace rules (the part that decides bytes of output):
 *   - `{%-` / `{{-` / `{#-` strip all whitespace (Python's str.isspace set) before the tag;
 *   - `-%}` / `-}}` / `-#}` strip all whitespace after it;
 *   - trim_blocks: a block or comment end `%}` / `#}` eats one following newline (`+%}` keeps it);
 *   - lstrip_blocks: spaces and tabs (any whitespace but newline) between the start of a line and
 *     a block or comment tag are dropped (not before `{{`; `{%+` keeps them). "Start of a line"
 *     includes text right after a tag whose match ended with a newline (`line_starting`);
 *   - `{% raw %}` does not eat the newline after it; `{% endraw %}` does.
 * The caller (tmpl_parse) has already normalised \r\n and \r to \n and dropped one trailing
 * newline. Positions are byte offsets in that normalised text. */
#include "tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lx {
    struct tmpl *t;
    const char *s;
    size_t n, pos;
    bool line_starting;
    struct lexed *out;
    struct err_info *ei;
    char bal[TMPL_MAX_NEST];
    int nbal;
};

static int lex_fail(struct lx *L, uint32_t pos, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int lex_fail(struct lx *L, uint32_t pos, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tmpl_errv(L->t, L->ei, code, pos, fmt, ap);
    va_end(ap);
    return code;
}

static int emit(struct lx *L, uint8_t type, size_t pos, struct token **tp)
{
    struct lexed *o = L->out;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        struct token *v = realloc(o->v, nc * sizeof *v);
        if (!v) return err_set(L->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory lexing template");
        o->v = v;
        o->cap = nc;
    }
    struct token *tk = &o->v[o->n++];
    memset(tk, 0, sizeof *tk);
    tk->t = type;
    tk->pos = (uint32_t)pos;
    if (tp) *tp = tk;
    return 0;
}

static int emit_text(struct lx *L, uint8_t type, size_t pos, const char *p, size_t n)
{
    struct token *tk;
    int rc = emit(L, type, pos, &tk);
    if (rc) return rc;
    tk->s = tmpl_str_new(&L->t->ar, p, n);
    if (!tk->s) return err_set(L->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory lexing template");
    tmpl_str_ncp(tk->s); /* cached now: a parsed template is never written by a render */
    return 0;
}

/* Python whitespace at s[i]: its byte length, 0 if none. */
static size_t ws_at(const char *s, size_t n, size_t i)
{
    if (i >= n) return 0;
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) return tmpl_uni_isspace(c) ? 1 : 0;
    size_t adv;
    uint32_t cp = tmpl_utf8_dec(s + i, n - i, &adv);
    return tmpl_uni_isspace(cp) ? adv : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    size_t k;
    while ((k = ws_at(s, n, i)) > 0) i += k;
    return i;
}

/* Length of text[0..len) after Python's rstrip(). */
static size_t rstrip_len(const char *s, size_t len)
{
    while (len > 0) {
        size_t st = len - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xc0) == 0x80) st--;
        if (ws_at(s, len, st) != len - st) break;
        len = st;
    }
    return len;
}

/* The data before a tag, after the tag's whitespace control. sign: '-', '+' or 0;
 * lstrip: whether lstrip_blocks applies to this tag kind. Returns the kept length. */
static size_t data_keep(struct lx *L, const char *text, size_t len, char sign, bool lstrip)
{
    if (sign == '-') return rstrip_len(text, len);
    if (sign == '+' || !lstrip) return len;
    size_t l_pos = len;
    while (l_pos > 0 && text[l_pos - 1] != '\n') l_pos--;
    if (l_pos > 0 || L->line_starting) {
        /* strip only when everything after the last newline is (non-empty) whitespace */
        if (l_pos < len && skip_ws(text, len, l_pos) == len) return l_pos;
    }
    return len;
}

/* ---- tag contents ---- */

static size_t digits_us(const char *s, size_t n, size_t i) /* (\d+_)*\d+ ; returns end or i */
{
    size_t j = i;
    if (j >= n || s[j] < '0' || s[j] > '9') return i;
    for (;;) {
        while (j < n && s[j] >= '0' && s[j] <= '9') j++;
        if (j + 1 < n && s[j] == '_' && s[j + 1] >= '0' && s[j + 1] <= '9') {
            j++;
            continue;
        }
        return j;
    }
}

/* float_re: returns end > i on a match. */
static size_t match_float(const char *s, size_t n, size_t i)
{
    if (i > 0 && s[i - 1] == '.') return i;
    size_t j = digits_us(s, n, i);
    if (j == i) return i;
    size_t k = j, f = j;
    if (k < n && s[k] == '.') {
        size_t e = digits_us(s, n, k + 1);
        if (e > k + 1) f = e;
    }
    /* exponent after the optional fraction, or directly after the integer part */
    for (int pass = 0; pass < 2; pass++) {
        size_t b = pass == 0 ? f : j;
        if (pass == 1 && f == j) break;
        if (b < n && (s[b] == 'e' || s[b] == 'E')) {
            size_t c = b + 1;
            if (c < n && (s[c] == '+' || s[c] == '-')) c++;
            size_t e = digits_us(s, n, c);
            if (e > c) return e;
        }
    }
    return f > j ? f : i;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 32);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* integer_re; returns end > i on a match, the value in *v (ERR_RANGE on overflow). */
static size_t match_int(const char *s, size_t n, size_t i, int64_t *v, bool *ovf)
{
    *ovf = false;
    uint64_t acc = 0;
    int base = 10;
    size_t j = i;
    if (j + 1 < n && s[j] == '0') {
        char p = (char)(s[j + 1] | 32);
        base = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 10;
    }
    if (base != 10) {
        size_t k = j + 2, ndig = 0;
        for (;;) {
            size_t q = k;
            if (q < n && s[q] == '_') q++;
            int d = q < n ? hexval(s[q]) : -1;
            if (d < 0 || d >= base) break;
            if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) *ovf = true;
            acc = acc * (uint64_t)base + (uint64_t)d;
            k = q + 1;
            ndig++;
        }
        if (ndig > 0) {
            if (acc > INT64_MAX) *ovf = true;
            *v = (int64_t)acc;
            return k;
        }
        base = 10; /* "0b" without digits: just the 0 */
    }
    if (j >= n || s[j] < '0' || s[j] > '9') return i;
    if (s[j] == '0') {
        size_t k = j + 1;
        for (;;) {
            size_t q = k;
            if (q < n && s[q] == '_') q++;
            if (q < n && s[q] == '0') k = q + 1;
            else break;
        }
        *v = 0;
        return k;
    }
    size_t k = j;
    for (;;) {
        size_t q = k;
        if (q > j && q < n && s[q] == '_') q++;
        if (q >= n || s[q] < '0' || s[q] > '9') break;
        uint64_t d = (uint64_t)(s[q] - '0');
        if (acc > (UINT64_MAX - d) / 10) *ovf = true;
        acc = acc * 10 + d;
        k = q + 1;
    }
    if (acc > INT64_MAX) *ovf = true;
    *v = (int64_t)acc;
    return k;
}

/* Decode a string literal body with Python's unicode-escape rules (after jinja2's
 * backslashreplace: a backslash before a non-ASCII character stays a backslash and the
 * character becomes its \x/\u/\U spelling). One loop, one case per escape. */
static int unescape(struct lx *L, size_t pos, const char *p, size_t n, struct str **out)
{
    struct str *o = tmpl_str_alloc(&L->t->ar, n);
    if (!o) return err_set(L->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory lexing template");
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (p[i] != '\\' || i + 1 >= n) {
            o->b[w++] = p[i++];
            continue;
        }
        char e = p[i + 1];
        uint32_t cp = 0;
        size_t adv = 2;
        int need = 0;
        switch (e) {
        case '\n': i += 2; continue;
        case '\\': cp = '\\'; break;
        case '\'': cp = '\''; break;
        case '"': cp = '"'; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'n': cp = 10; break;
        case 'r': cp = 13; break;
        case 't': cp = 9; break;
        case 'v': cp = 11; break;
        case 'x': need = 2; break;
        case 'u': need = 4; break;
        case 'U': need = 8; break;
        case 'N':
            return lex_fail(L, (uint32_t)pos, ERR_UNSUPPORTED,
                            "\\N{...} escapes in string literals are not supported");
        default:
            if (e >= '0' && e <= '7') {
                size_t k = i + 1;
                while (k < n && k < i + 4 && p[k] >= '0' && p[k] <= '7') {
                    cp = cp * 8 + (uint32_t)(p[k] - '0');
                    k++;
                }
                adv = k - i;
            } else if ((unsigned char)e >= 0x80) {
                size_t a2;
                uint32_t c2 = tmpl_utf8_dec(p + i + 1, n - i - 1, &a2);
                char tmp[16];
                int k = c2 < 0x100     ? snprintf(tmp, sizeof tmp, "\\x%02x", c2)
                        : c2 < 0x10000 ? snprintf(tmp, sizeof tmp, "\\u%04x", c2)
                                       : snprintf(tmp, sizeof tmp, "\\U%08x", c2);
                /* "\\" + "\xe9" decodes to a backslash then "xe9" */
                memcpy(o->b + w, tmp, (size_t)k);
                w += (size_t)k;
                i += 1 + a2;
                continue;
            } else {
                o->b[w++] = '\\';
                o->b[w++] = e;
                i += 2;
                continue;
            }
        }
        if (need) {
            if (i + 2 + (size_t)need > n) goto trunc;
            for (int k = 0; k < need; k++) {
                int h = hexval(p[i + 2 + (size_t)k]);
                if (h < 0) goto trunc;
                cp = cp * 16 + (uint32_t)h;
            }
            adv = 2 + (size_t)need;
            if (cp > 0x10ffff)
                return lex_fail(L, (uint32_t)pos, ERR_SYNTAX, "illegal Unicode character");
        }
        if (cp >= 0xd800 && cp <= 0xdfff)
            return lex_fail(L, (uint32_t)pos, ERR_UNSUPPORTED,
                            "a surrogate code point in a string literal cannot be encoded");
        w += tmpl_utf8_enc(cp, o->b + w);
        i += adv;
        continue;
    trunc:
        return lex_fail(L, (uint32_t)pos, ERR_SYNTAX, "truncated \\%cXX escape", e);
    }
    o->len = w;
    o->b[w] = 0;
    tmpl_str_ncp(o);
    *out = o;
    return 0;
}

static const struct {
    const char *s;
    uint8_t t;
} g_ops2[] = {{"//", TK_FLOORDIV}, {"**", TK_POW}, {"==", TK_EQ},
              {"!=", TK_NE},       {">=", TK_GTEQ}, {"<=", TK_LTEQ}};

static int op1(char c)
{
    switch (c) {
    case '+': return TK_ADD;
    case '-': return TK_SUB;
    case '/': return TK_DIV;
    case '*': return TK_MUL;
    case '%': return TK_MOD;
    case '~': return TK_TILDE;
    case '[': return TK_LBRACKET;
    case ']': return TK_RBRACKET;
    case '(': return TK_LPAREN;
    case ')': return TK_RPAREN;
    case '{': return TK_LBRACE;
    case '}': return TK_RBRACE;
    case '>': return TK_GT;
    case '<': return TK_LT;
    case '=': return TK_ASSIGN;
    case '.': return TK_DOT;
    case ':': return TK_COLON;
    case '|': return TK_PIPE;
    case ',': return TK_COMMA;
    case ';': return TK_SEMICOLON;
    default: return -1;
    }
}

static int lex_operator(struct lx *L, size_t i, size_t *end)
{
    const char *s = L->s;
    int t = -1;
    size_t len = 1;
    for (size_t k = 0; k < sizeof g_ops2 / sizeof g_ops2[0]; k++)
        if (i + 1 < L->n && s[i] == g_ops2[k].s[0] && s[i + 1] == g_ops2[k].s[1]) {
            t = g_ops2[k].t;
            len = 2;
            break;
        }
    if (t < 0) t = op1(s[i]);
    if (t < 0) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s + i, L->n - i, &adv);
        char shown[8] = {0};
        if (cp >= 0x20 && cp != 0x7f) memcpy(shown, s + i, adv);
        else snprintf(shown, sizeof shown, "\\x%02x", cp);
        return lex_fail(L, (uint32_t)i, ERR_SYNTAX, "unexpected character '%s'", shown);
    }
    char c = s[i];
    if (c == '{' || c == '(' || c == '[') {
        if (L->nbal >= TMPL_MAX_NEST)
            return lex_fail(L, (uint32_t)i, ERR_LIMIT, "brackets nested deeper than %d",
                            TMPL_MAX_NEST);
        L->bal[L->nbal++] = c == '{' ? '}' : c == '(' ? ')' : ']';
    } else if (c == '}' || c == ')' || c == ']') {
        if (L->nbal == 0) return lex_fail(L, (uint32_t)i, ERR_SYNTAX, "unexpected '%c'", c);
        char want = L->bal[--L->nbal];
        if (want != c)
            return lex_fail(L, (uint32_t)i, ERR_SYNTAX, "unexpected '%c', expected '%c'", c,
                            want);
    }
    *end = i + len;
    return emit(L, (uint8_t)t, i, NULL);
}

/* The end of a `%}` (block) or `}}` tag starting at i, with its whitespace control, or 0:
 * `+%}` keeps what follows, `-%}` / `-}}` eat all whitespace, `%}` eats one newline. */
static size_t tag_end_at(const char *s, size_t n, size_t i, bool block)
{
    char close = block ? '%' : '}';
    if (block && i + 2 < n && s[i] == '+' && s[i + 1] == '%' && s[i + 2] == '}') return i + 3;
    if (i + 2 < n && s[i] == '-' && s[i + 1] == close && s[i + 2] == '}') return skip_ws(s, n, i + 3);
    if (i + 1 < n && s[i] == close && s[i + 1] == '}')
        return i + 2 + (block && i + 2 < n && s[i + 2] == '\n');
    return 0;
}

/* One token inside a tag at L->pos. *done when the tag ended (or the text did). */
static int lex_tag_token(struct lx *L, bool block, bool *done)
{
    const char *s = L->s;
    size_t n = L->n, i = L->pos;
    if (i >= n) {
        *done = true; /* the template ends inside a tag: the parser reports it */
        return 0;
    }
    if (L->nbal == 0) { /* end tags only count outside brackets, as in jinja2 */
        size_t end = tag_end_at(s, n, i, block);
        if (end) {
            *done = true;
            L->line_starting = s[end - 1] == '\n';
            L->pos = end;
            return emit(L, block ? TK_BLOCK_END : TK_VAR_END, i, NULL);
        }
    }
    size_t w = skip_ws(s, n, i);
    if (w > i) {
        L->pos = w;
        return 0;
    }
    size_t e = match_float(s, n, i);
    if (e > i) {
        char tmp[64];
        size_t k = 0;
        for (size_t j = i; j < e && k < sizeof tmp - 1; j++)
            if (s[j] != '_') tmp[k++] = s[j];
        tmp[k] = 0;
        struct token *tk;
        int rc = emit(L, TK_FLOAT, i, &tk);
        if (rc) return rc;
        tk->num.d = strtod(tmp, NULL);
        L->pos = e;
        return 0;
    }
    int64_t iv;
    bool ovf;
    e = match_int(s, n, i, &iv, &ovf);
    if (e > i) {
        if (ovf)
            return lex_fail(L, (uint32_t)i, ERR_UNSUPPORTED,
                            "integer literal does not fit in 64 bits");
        struct token *tk;
        int rc = emit(L, TK_INT, i, &tk);
        if (rc) return rc;
        tk->num.i = iv;
        L->pos = e;
        return 0;
    }
    char c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
        size_t j = i + 1;
        while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                         (s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
            j++;
        L->pos = j;
        return emit_text(L, TK_NAME, i, s + i, j - i);
    }
    if (c == '\'' || c == '"') {
        size_t j = i + 1;
        while (j < n && s[j] != c) j += (s[j] == '\\' && j + 1 < n) ? 2 : 1;
        if (j < n) {
            struct token *tk;
            struct str *v = NULL;
            int rc = unescape(L, i, s + i + 1, j - i - 1, &v);
            if (rc) return rc;
            rc = emit(L, TK_STRING, i, &tk);
            if (rc) return rc;
            tk->s = v;
            L->pos = j + 1;
            return 0;
        }
        /* unterminated: falls through to the operator rule, which refuses the quote */
    }
    size_t end = i;
    int rc = lex_operator(L, i, &end);
    if (rc) return rc;
    L->pos = end;
    return 0;
}

static int lex_tag(struct lx *L, bool block)
{
    bool done = false;
    L->nbal = 0;
    while (!done) {
        int rc = lex_tag_token(L, block, &done);
        if (rc) return rc;
    }
    return 0;
}

/* After `{#`: find the comment end; no tokens. */
static int lex_comment(struct lx *L, size_t start)
{
    const char *s = L->s;
    size_t n = L->n;
    for (size_t i = L->pos; i < n; i++) {
        size_t end = 0;
        if (i + 2 < n && s[i] == '+' && s[i + 1] == '#' && s[i + 2] == '}') end = i + 3;
        else if (i + 2 < n && s[i] == '-' && s[i + 1] == '#' && s[i + 2] == '}')
            end = skip_ws(s, n, i + 3);
        else if (i + 1 < n && s[i] == '#' && s[i + 1] == '}')
            end = i + 2 + (i + 2 < n && s[i + 2] == '\n');
        if (end) {
            L->line_starting = s[end - 1] == '\n';
            L->pos = end;
            return 0;
        }
    }
    return lex_fail(L, (uint32_t)start, ERR_SYNTAX, "missing end of comment tag");
}

/* `{%[-+]?\s*endraw\s*(+%}|-%}\s*|%}\n?)` at i: its end, 0 if none; *sign the sign. */
static size_t match_endraw(const char *s, size_t n, size_t i, char *sign)
{
    if (i + 1 >= n || s[i] != '{' || s[i + 1] != '%') return 0;
    size_t j = i + 2;
    *sign = 0;
    if (j < n && (s[j] == '-' || s[j] == '+')) *sign = s[j++];
    j = skip_ws(s, n, j);
    if (n - j < 6 || memcmp(s + j, "endraw", 6) != 0) return 0;
    j = skip_ws(s, n, j + 6);
    if (j + 2 < n && s[j] == '+' && s[j + 1] == '%' && s[j + 2] == '}') return j + 3;
    if (j + 2 < n && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}')
        return skip_ws(s, n, j + 3);
    if (j + 1 < n && s[j] == '%' && s[j + 1] == '}') return j + 2 + (j + 2 < n && s[j + 2] == '\n');
    return 0;
}

/* `{%[-+]?\s*raw\s*(-%}\s*|%})` at i: its end, 0 if none. */
static size_t match_raw(const char *s, size_t n, size_t i, char *sign)
{
    size_t j = i + 2;
    *sign = 0;
    if (j < n && (s[j] == '-' || s[j] == '+')) *sign = s[j++];
    j = skip_ws(s, n, j);
    if (n - j < 3 || memcmp(s + j, "raw", 3) != 0) return 0;
    j = skip_ws(s, n, j + 3);
    if (j + 2 < n && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}')
        return skip_ws(s, n, j + 3);
    if (j + 1 < n && s[j] == '%' && s[j + 1] == '}') return j + 2;
    return 0;
}

static int lex_raw(struct lx *L, size_t start)
{
    const char *s = L->s;
    size_t n = L->n;
    for (size_t i = L->pos; i + 1 < n; i++) {
        char sign;
        size_t end = match_endraw(s, n, i, &sign);
        if (!end) continue;
        size_t keep = data_keep(L, s + L->pos, i - L->pos, sign, true);
        if (keep) {
            int rc = emit_text(L, TK_DATA, L->pos, s + L->pos, keep);
            if (rc) return rc;
        }
        L->line_starting = s[end - 1] == '\n';
        L->pos = end;
        return 0;
    }
    return lex_fail(L, (uint32_t)start, ERR_SYNTAX, "missing end of raw directive");
}

int tmpl_lex(struct tmpl *t, struct lexed *out, struct err_info *ei)
{
    struct lx L = {.t = t, .s = t->src, .n = t->len, .line_starting = true, .out = out, .ei = ei};
    const char *s = L.s;
    size_t n = L.n;
    while (L.pos < n) {
        size_t p = L.pos;
        while (p + 1 < n && !(s[p] == '{' && (s[p + 1] == '{' || s[p + 1] == '%' || s[p + 1] == '#')))
            p++;
        if (p + 1 >= n) { /* no more tags: the rest is data */
            int rc = emit_text(&L, TK_DATA, L.pos, s + L.pos, n - L.pos);
            if (rc) return rc;
            break;
        }
        char kind = s[p + 1], sign = 0;
        size_t after;
        bool raw = false;
        if (kind == '%' && (after = match_raw(s, n, p, &sign)) != 0) {
            raw = true;
        } else {
            after = p + 2;
            if (after < n && (s[after] == '-' || s[after] == '+')) sign = s[after++];
        }
        size_t keep = data_keep(&L, s + L.pos, p - L.pos, sign, kind != '{');
        if (keep) {
            int rc = emit_text(&L, TK_DATA, L.pos, s + L.pos, keep);
            if (rc) return rc;
        }
        L.line_starting = s[after - 1] == '\n';
        L.pos = after;
        int rc;
        if (raw) {
            rc = lex_raw(&L, p);
        } else if (kind == '#') {
            rc = lex_comment(&L, p);
        } else {
            rc = emit(&L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, p, NULL);
            if (!rc) rc = lex_tag(&L, kind == '%');
        }
        if (rc) return rc;
    }
    return emit(&L, TK_EOF, n, NULL);
}
