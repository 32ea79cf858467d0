/* tmpl_fmt: Python's three formatting languages as chat templates reach them: str.format with
 * its mini-language (`"{:>8}".format(x)`, `{0.name}`, `{key[0]}`), printf-style `%` (the
 * `format` filter and `"..." % x`), and strftime for strftime_now (C locale, the clock and
 * UTC offset of the render).
 *
 * Widths and precisions count code points, as Python does. A Markup format string escapes the
 * plain strings it absorbs, as markupsafe does. Format fields read attributes and items through
 * tmpl_access (the sandbox's rules); nothing here calls methods, filters or the evaluator. */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- str.format ---- */

struct fspec {
    uint32_t fill;
    char align; /* 0, '<', '>', '^', '=' */
    char sign;  /* 0, '+', '-', ' ' */
    bool alt, zero;
    int64_t width, prec; /* -1: none */
    char group;          /* 0, ',', '_' */
    char type;           /* 0 or the letter */
};

static int parse_fspec(struct rctx *c, const char *s, size_t n, struct fspec *f)
{
    memset(f, 0, sizeof *f);
    f->fill = ' ';
    f->width = f->prec = -1;
    size_t i = 0;
    if (n) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s, n, &adv);
        if (adv < n && strchr("<>^=", s[adv])) {
            f->fill = cp;
            f->align = s[adv];
            i = adv + 1;
        } else if (strchr("<>^=", s[0])) {
            f->align = s[0];
            i = 1;
        }
    }
    if (i < n && strchr("+- ", s[i])) f->sign = s[i++];
    if (i < n && s[i] == '#') f->alt = true, i++;
    if (i < n && s[i] == '0') f->zero = true, i++;
    if (i < n && s[i] >= '0' && s[i] <= '9') {
        f->width = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && f->width < 100000) f->width = f->width * 10 + (s[i++] - '0');
    }
    if (i < n && (s[i] == ',' || s[i] == '_')) f->group = s[i++];
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Format specifier missing precision");
        f->prec = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && f->prec < 100000) f->prec = f->prec * 10 + (s[i++] - '0');
    }
    if (i < n) f->type = s[i++];
    if (i < n) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Invalid format specifier");
    if (f->width > 10000 || f->prec > 1000)
        return tmpl_rt_err(c, ERR_LIMIT, "ValueError", "format width or precision too large");
    return 0;
}

/* Insert grouping separators into the integer digits of num (starting at digits). */
static void group_digits(char *num, size_t cap, char g, int every)
{
    char *d = num;
    while (*d && (*d < '0' || *d > '9')) d++;
    char *e = d;
    while ((*e >= '0' && *e <= '9') || (every == 4 && ((*e | 32) >= 'a' && (*e | 32) <= 'f'))) e++;
    size_t nd = (size_t)(e - d), ng = nd ? (nd - 1) / (size_t)every : 0;
    size_t len = strlen(num);
    if (!ng || len + ng + 1 > cap) return;
    memmove(e + ng, e, strlen(e) + 1);
    char *w = e + ng - 1;
    int k = 0;
    for (char *r = e - 1; r >= d; r--) {
        *w-- = *r;
        if (++k % every == 0 && r > d) *w-- = g;
    }
}

/* Format a number per spec into tmp (without padding). */
static int fmt_number(struct rctx *c, struct val v, struct fspec *f, char *tmp, size_t cap)
{
    char t = f->type;
    bool isint = v.t == VT_INT || v.t == VT_BOOL;
    if (isint && (t == 0 || t == 'd' || t == 'n' || t == 'b' || t == 'o' || t == 'x' || t == 'X' || t == 'c')) {
        int64_t x = v.t == VT_BOOL ? v.u.b : v.u.i;
        if (f->prec >= 0) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Precision not allowed in integer format specifier");
        uint64_t ax = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
        char digits[80];
        int base = t == 'b' ? 2 : t == 'o' ? 8 : (t == 'x' || t == 'X') ? 16 : 10;
        if (t == 'c') {
            if (x < 0 || x > 0x10ffff) return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "%%c arg not in range(0x110000)");
            size_t k = tmpl_utf8_enc((uint32_t)x, tmp);
            tmp[k] = 0;
            return 0;
        }
        size_t nd = 0;
        do {
            int d = (int)(ax % (uint64_t)base);
            digits[nd++] = (char)(d < 10 ? '0' + d : (t == 'X' ? 'A' : 'a') + d - 10);
            ax /= (uint64_t)base;
        } while (ax);
        size_t w = 0;
        if (x < 0) tmp[w++] = '-';
        else if (f->sign == '+' || f->sign == ' ') tmp[w++] = f->sign;
        if (f->alt && base != 10) {
            tmp[w++] = '0';
            tmp[w++] = t == 'b' ? 'b' : t == 'o' ? 'o' : t;
        }
        while (nd) tmp[w++] = digits[--nd];
        tmp[w] = 0;
        if (f->group) group_digits(tmp, cap, f->group, base == 10 ? 3 : 4);
        return 0;
    }
    if (!(t == 0 || strchr("eEfFgG%n", t)) || (t == 'n' && !isint && 0))
        return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Unknown format code '%c' for object of type '%s'",
                      t, tmpl_type_name(v));
    double x = v.t == VT_FLOAT ? v.u.d : (double)(v.t == VT_BOOL ? v.u.b : v.u.i);
    int p = f->prec < 0 ? 6 : (int)f->prec;
    char body[400];
    if (t == 0 && f->prec < 0) {
        if (isint) snprintf(body, sizeof body, "%lld", (long long)(v.t == VT_BOOL ? v.u.b : v.u.i));
        else tmpl_fmt_float(body, sizeof body, x);
    } else if (t == 0 || t == 'n' || t == 'g' || t == 'G') {
        if (p == 0) p = 1;
        snprintf(body, sizeof body, f->alt ? "%#.*g" : "%.*g", p, x);
        if (t == 0 && isfinite(x) && !strpbrk(body, ".e")) strcat(body, ".0");
        if (t == 'G') for (char *q = body; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
    } else if (t == '%') {
        snprintf(body, sizeof body, "%.*f%%", p, x * 100);
    } else {
        char fmt[8] = {'%', '.', '*', t == 'F' ? 'f' : t, 0};
        if (f->alt) memcpy(fmt, "%#.*", 4), fmt[4] = t == 'F' ? 'f' : t, fmt[5] = 0;
        snprintf(body, sizeof body, fmt, p, x);
        if (t == 'F') for (char *q = body; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
    }
    const char *b = body;
    size_t w = 0;
    if (*b == '-') tmp[w++] = *b++;
    else if (f->sign == '+' || f->sign == ' ') tmp[w++] = f->sign;
    snprintf(tmp + w, cap - w, "%s", b);
    if (f->group) group_digits(tmp, cap, f->group, 3);
    return 0;
}

/* Python's format(v, spec) appended to out. */
static int format_value(struct rctx *c, struct val v, const char *spec, size_t sn, struct buf *out)
{
    struct fspec f;
    if (sn == 0) return tmpl_v_str_to(c, out, v);
    if (parse_fspec(c, spec, sn, &f)) return -1;
    char tmp[512];
    const char *body;
    size_t blen;
    bool numeric = v.t == VT_INT || v.t == VT_BOOL || v.t == VT_FLOAT;
    struct val sv;
    if (v.t == VT_STR) {
        if (f.type && f.type != 's')
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Unknown format code '%c' for object of type 'str'", f.type);
        if (f.sign || f.alt || f.group || f.align == '=')
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "invalid format specifier for a string");
        body = v.u.s->b;
        blen = v.u.s->len;
        if (f.prec >= 0 && f.prec < tmpl_str_ncp(v.u.s)) blen = tmpl_utf8_off(v.u.s, f.prec);
    } else if (numeric) {
        if (v.t == VT_BOOL && !f.type && f.width >= 0 && !f.sign && !f.zero && !f.group && f.prec < 0) {
            body = v.u.b ? "True" : "False";
        } else {
            if (fmt_number(c, v, &f, tmp, sizeof tmp)) return -1;
            body = tmp;
        }
        blen = strlen(body);
    } else {
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "unsupported format string passed to %s.__format__",
                      tmpl_type_name(v));
    }
    (void)sv;
    int64_t len = 0;
    for (size_t i = 0; i < blen; i++) len += ((unsigned char)body[i] & 0xc0) != 0x80;
    char align = f.align;
    uint32_t fill = f.fill;
    if (!align) {
        if (numeric && f.zero) align = '=', fill = '0';
        else align = numeric ? '>' : '<';
    }
    int64_t pad = f.width > len ? f.width - len : 0, left = 0;
    if (align == '>') left = pad;
    else if (align == '^') left = pad / 2;
    else if (align == '=') left = 0;
    char fc[4];
    size_t fl = tmpl_utf8_enc(fill, fc);
    size_t sign_n = 0;
    if (align == '=' && numeric) {
        while (sign_n < blen && strchr("+- ", body[sign_n])) sign_n++;
        if (sign_n + 1 < blen && body[sign_n] == '0' && strchr("bBoOxX", body[sign_n + 1])) sign_n += 2;
        if (tmpl_buf_put(out, body, sign_n)) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long");
        left = pad;
    }
    for (int64_t i = 0; i < left; i++)
        if (tmpl_buf_put(out, fc, fl)) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long");
    if (tmpl_buf_put(out, body + sign_n, blen - sign_n)) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long");
    for (int64_t i = left; i < pad; i++)
        if (align != '=' && tmpl_buf_put(out, fc, fl)) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long");
    return 0;
}

/* One replacement field "name.attr[key]!c:spec" -> out: the name, its accessors, the
 * conversion and the spec are consecutive steps over one field, kept together. */
static int format_field(struct rctx *c, const char *f, size_t n, struct val *args, size_t nargs,
                        struct str **kwn, struct val *kwv, size_t nkw, size_t *autoidx,
                        int *mode, bool markup, struct buf *out)
{
    size_t i = 0;
    while (i < n && f[i] != '.' && f[i] != '[' && f[i] != '!' && f[i] != ':') i++;
    struct val v;
    if (i == 0 || (f[0] >= '0' && f[0] <= '9')) {
        size_t idx = 0;
        if (i == 0) {
            if (*mode == 2) goto mix;
            *mode = 1;
            idx = (*autoidx)++;
        } else {
            if (*mode == 1) goto mix;
            *mode = 2;
            for (size_t k = 0; k < i; k++) {
                if (f[k] < '0' || f[k] > '9' || idx > 100000)
                    return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "invalid field name");
                idx = idx * 10 + (size_t)(f[k] - '0');
            }
        }
        if (idx >= nargs)
            return tmpl_rt_err(c, ERR_TEMPLATE, "IndexError",
                          "Replacement index %zu out of range for positional args tuple", idx);
        v = args[idx];
    } else {
        size_t k = 0;
        while (k < nkw && !(kwn[k]->len == i && memcmp(kwn[k]->b, f, i) == 0)) k++;
        if (k == nkw) return tmpl_rt_err(c, ERR_TEMPLATE, "KeyError", "'%.*s'", (int)i, f);
        v = kwv[k];
    }
    while (i < n && (f[i] == '.' || f[i] == '[')) {
        size_t j = i + 1;
        if (f[i] == '.') {
            while (j < n && f[j] != '.' && f[j] != '[' && f[j] != '!' && f[j] != ':') j++;
            struct str *nm = tmpl_str_new(&c->ar, f + i + 1, j - i - 1);
            if (!nm) return tmpl_rt_oom(c);
            if (tmpl_get_attr(c, v, nm, &v)) return -1;
            i = j;
        } else {
            while (j < n && f[j] != ']') j++;
            if (j >= n) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Missing ']' in format string");
            bool digits = j > i + 1;
            int64_t num = 0;
            for (size_t k = i + 1; k < j; k++) {
                if (f[k] < '0' || f[k] > '9' || num > 1000000000) digits = false;
                else num = num * 10 + (f[k] - '0');
            }
            struct val key = digits ? v_int(num) : tmpl_v_str(c, f + i + 1, j - i - 1);
            if (tmpl_get_item(c, v, key, &v)) return -1;
            i = j + 1;
        }
        if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
    }
    char conv = 0;
    if (i < n && f[i] == '!') {
        if (i + 1 >= n) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "end of string while looking for conversion specifier");
        conv = f[i + 1];
        i += 2;
        if (conv != 'r' && conv != 's' && conv != 'a')
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Unknown conversion specifier %c", conv);
    }
    const char *spec = "";
    size_t sn = 0;
    if (i < n) {
        if (f[i] != ':') return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "expected ':' after conversion specifier");
        spec = f + i + 1;
        sn = n - i - 1;
    }
    if (conv) {
        struct buf b = {.limit = c->max_output};
        int rc = conv == 's' ? tmpl_v_str_to(c, &b, v) : tmpl_v_repr_to(c, &b, v);
        if (rc) {
            tmpl_buf_free(&b);
            return -1;
        }
        v = tmpl_buf_take(c, &b, false);
        tmpl_buf_free(&b);
        if (v.t != VT_STR) return -1;
    }
    if (markup && (v.t == VT_STR || conv)) { /* markupsafe's escaping formatter */
        if (tmpl_v_escape(c, v, &v)) return -1;
    }
    return format_value(c, v, spec, sn, out);
mix:
    return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError",
                  "cannot switch from automatic field numbering to manual field specification");
}

int tmpl_str_format(struct rctx *c, struct val fmt, struct val *args, size_t nargs, struct str **kwn,
               struct val *kwv, size_t nkw, struct val *out)
{
    const char *s = fmt.u.s->b;
    size_t n = fmt.u.s->len, autoidx = 0;
    int mode = 0;
    struct buf b = {.limit = c->max_output};
    for (size_t i = 0; i < n;) {
        if (s[i] == '{' && i + 1 < n && s[i + 1] == '{') {
            if (tmpl_rt_bput(c, &b, "{", 1)) return -1;
            i += 2;
        } else if (s[i] == '}' && i + 1 < n && s[i + 1] == '}') {
            if (tmpl_rt_bput(c, &b, "}", 1)) return -1;
            i += 2;
        } else if (s[i] == '}') {
            tmpl_buf_free(&b);
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "Single '}' encountered in format string");
        } else if (s[i] == '{') {
            /* the field ends at the matching '}' (a spec may nest one level of {}) */
            size_t j = i + 1;
            int depth = 1;
            while (j < n && depth) {
                if (s[j] == '{') depth++;
                else if (s[j] == '}') depth--;
                if (depth) j++;
            }
            if (j >= n) {
                tmpl_buf_free(&b);
                return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "expected '}' before end of string");
            }
            const char *field = s + i + 1;
            size_t fn = j - i - 1;
            /* nested fields inside the spec: format them first */
            const char *colon = memchr(field, ':', fn);
            if (colon && memchr(colon, '{', fn - (size_t)(colon - field))) {
                struct val inner = tmpl_v_str(c, colon + 1, fn - (size_t)(colon - field) - 1), spec;
                if (inner.t != VT_STR ||
                    tmpl_str_format(c, inner, args, nargs, kwn, kwv, nkw, &spec)) {
                    tmpl_buf_free(&b);
                    return -1;
                }
                struct buf fb = {.limit = c->max_output};
                if (tmpl_rt_bput(c, &fb, field, (size_t)(colon - field) + 1) ||
                    tmpl_rt_bput(c, &fb, spec.u.s->b, spec.u.s->len)) {
                    tmpl_buf_free(&b);
                    return -1;
                }
                int rc = format_field(c, fb.p, fb.n, args, nargs, kwn, kwv, nkw, &autoidx, &mode,
                                      fmt.f, &b);
                tmpl_buf_free(&fb);
                if (rc) {
                    tmpl_buf_free(&b);
                    return -1;
                }
            } else if (format_field(c, field, fn, args, nargs, kwn, kwv, nkw, &autoidx, &mode,
                                    fmt.f, &b)) {
                tmpl_buf_free(&b);
                return -1;
            }
            i = j + 1;
        } else {
            size_t j = i;
            while (j < n && s[j] != '{' && s[j] != '}') j++;
            if (tmpl_rt_bput(c, &b, s + i, j - i)) return -1;
            i = j;
        }
    }
    return tmpl_rt_take(c, &b, fmt.f, out);
}

/* ---- printf-style % ---- */

/* Where the arguments of `fmt % args` come from: a tuple's items in order, a dict by key, or one
 * single value. */
struct pct_args {
    struct val args, *av;
    size_t an, ai;
    bool tuple, mapping;
};

struct pct_spec {
    struct fspec f;
    bool left;
    char type;
};

/* One conversion after '%' (s[*i] is the first char after it): mapping key, flags, width and
 * precision ('*' takes them from the arguments), length modifiers, type. *v is the argument it
 * converts (none for "%%"). */
static int pct_parse(struct rctx *c, const char *s, size_t n, size_t *pi, struct pct_args *pa,
                     struct pct_spec *sp, struct val *v)
{
    size_t i = *pi;
    bool have = false;
    memset(sp, 0, sizeof *sp);
    sp->f.fill = ' ';
    sp->f.width = sp->f.prec = -1;
    if (i < n && s[i] == '(') {
        size_t j = i + 1;
        while (j < n && s[j] != ')') j++;
        if (j >= n || !pa->mapping) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "format requires a mapping");
        struct val key = tmpl_v_str(c, s + i + 1, j - i - 1);
        int rc;
        struct val *p = key.t == VT_STR ? tmpl_dict_get(c, pa->args.u.m, key, &rc) : NULL;
        if (!p) return tmpl_rt_err(c, ERR_TEMPLATE, "KeyError", "'%.*s'", (int)(j - i - 1), s + i + 1);
        *v = *p;
        have = true;
        i = j + 1;
    }
    for (; i < n && strchr("-+ #0", s[i]); i++) {
        if (s[i] == '-') sp->left = true;
        else if (s[i] == '+' || s[i] == ' ') sp->f.sign = sp->f.sign == '+' ? '+' : s[i];
        else if (s[i] == '#') sp->f.alt = true;
        else sp->f.zero = true;
    }
    for (int part = 0; part < 2; part++) {
        int64_t *dst = part ? &sp->f.prec : &sp->f.width;
        if (part) {
            if (i >= n || s[i] != '.') break;
            i++;
            sp->f.prec = 0;
        }
        if (i < n && s[i] == '*') {
            struct val w = pa->ai < pa->an ? pa->av[pa->ai] : v_undef();
            if (w.t != VT_INT && w.t != VT_BOOL) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "* wants int");
            *dst = w.t == VT_INT ? w.u.i : w.u.b;
            if (!part && *dst < 0) sp->left = true, *dst = -*dst;
            pa->ai++;
            i++;
        } else {
            if (!part) sp->f.width = (i < n && s[i] >= '0' && s[i] <= '9') ? 0 : -1;
            while (i < n && s[i] >= '0' && s[i] <= '9' && *dst < 100000) *dst = *dst * 10 + (s[i++] - '0');
        }
    }
    if (sp->f.width > 10000 || sp->f.prec > 1000)
        return tmpl_rt_err(c, ERR_LIMIT, "ValueError", "format width or precision too large");
    while (i < n && (s[i] == 'l' || s[i] == 'h' || s[i] == 'L')) i++;
    if (i >= n) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "incomplete format");
    sp->type = s[i++];
    *pi = i;
    if (sp->type == '%' || have) return 0;
    if (pa->mapping && !pa->tuple) *v = pa->args;
    else if (pa->ai < pa->an) *v = pa->av[pa->ai++];
    else return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "not enough arguments for format string");
    return 0;
}

/* The text of one conversion, before padding. A Markup format escapes what it inserts. */
static int pct_convert(struct rctx *c, const struct pct_spec *sp, struct val v, bool markup,
                       struct buf *piece)
{
    char t = sp->type;
    if (t == 's' || t == 'r' || t == 'a') {
        struct buf raw = {.limit = c->max_output};
        int rc = t == 's' ? tmpl_v_str_to(c, &raw, v) : tmpl_v_repr_to(c, &raw, v);
        if (!rc && markup && !(v.t == VT_STR && v.f && t == 's'))
            rc = tmpl_html_escape_to(piece, raw.p ? raw.p : "", raw.n) ? -1 : 0;
        else if (!rc)
            rc = tmpl_buf_put(piece, raw.p ? raw.p : "", raw.n) ? -1 : 0;
        tmpl_buf_free(&raw);
        if (!rc && sp->f.prec >= 0) { /* precision truncates, in characters */
            size_t k = 0;
            for (int64_t cps = 0; k < piece->n && cps < sp->f.prec; cps++) {
                k++;
                while (k < piece->n && ((unsigned char)piece->p[k] & 0xc0) == 0x80) k++;
            }
            piece->n = k;
        }
        return rc ? tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long") : 0;
    }
    if (!strchr("diuoxXeEfFgGc", t))
        return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "unsupported format character '%c'", t);
    if (t == 'c' && v.t == VT_STR && tmpl_str_ncp(v.u.s) == 1) /* %c of a one-character string */
        return tmpl_buf_put(piece, v.u.s->b, v.u.s->len) ? tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long") : 0;
    struct val num = v;
    if (v.t == VT_FLOAT && strchr("diu", t)) {
        if (!isfinite(v.u.d))
            return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "cannot convert float infinity to integer");
        num = v_int((int64_t)v.u.d);
    }
    if (!(num.t == VT_INT || num.t == VT_BOOL || num.t == VT_FLOAT) || (strchr("oxXc", t) && num.t == VT_FLOAT))
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%%%c format: a%s number is required, not %s", t,
                      strchr("oxXc", t) ? "n integer" : " real", tmpl_type_name(v));
    struct fspec g = sp->f;
    g.type = (t == 'i' || t == 'u') ? 'd' : t;
    g.width = -1;
    if (strchr("diuoxXc", t)) g.prec = -1;
    char tmp[512];
    if (fmt_number(c, num, &g, tmp, sizeof tmp)) return -1;
    return tmpl_buf_put(piece, tmp, strlen(tmp)) ? tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long") : 0;
}

/* Pad a converted piece to the width (zeros after the sign for numbers with '0'). */
static int pct_pad(struct rctx *c, struct buf *b, const struct pct_spec *sp, const struct buf *piece)
{
    const char *p = piece->p ? piece->p : "";
    int64_t len = 0;
    for (size_t k = 0; k < piece->n; k++) len += ((unsigned char)p[k] & 0xc0) != 0x80;
    int64_t pad = sp->f.width > len ? sp->f.width - len : 0;
    size_t lead = 0;
    int rc = 0;
    if (!sp->left && sp->f.zero && strchr("diuoxXeEfFgG", sp->type)) {
        while (lead < piece->n && strchr("+- ", p[lead])) lead++;
        rc = tmpl_buf_put(b, p, lead);
        for (int64_t k = 0; k < pad && !rc; k++) rc = tmpl_buf_putc(b, '0');
        pad = 0;
    }
    for (int64_t k = 0; !sp->left && k < pad && !rc; k++) rc = tmpl_buf_putc(b, ' ');
    if (!rc) rc = tmpl_buf_put(b, p + lead, piece->n - lead);
    for (int64_t k = 0; sp->left && k < pad && !rc; k++) rc = tmpl_buf_putc(b, ' ');
    return rc ? tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long") : 0;
}

int tmpl_str_percent(struct rctx *c, struct val fmt, struct val args, struct val *out)
{
    const char *s = fmt.u.s->b;
    size_t n = fmt.u.s->len;
    struct pct_args pa = {.args = args, .tuple = args.t == VT_LIST && args.f == LK_TUPLE,
                          .mapping = args.t == VT_DICT};
    pa.av = pa.tuple ? args.u.l->v : &args;
    pa.an = pa.tuple ? args.u.l->n : 1;
    struct buf b = {.limit = c->max_output};
    for (size_t i = 0; i < n;) {
        if (s[i] != '%') {
            size_t j = i;
            while (j < n && s[j] != '%') j++;
            if (tmpl_rt_bput(c, &b, s + i, j - i)) return -1;
            i = j;
            continue;
        }
        i++;
        struct pct_spec sp;
        struct val v = v_undef();
        if (pct_parse(c, s, n, &i, &pa, &sp, &v)) {
            tmpl_buf_free(&b);
            return -1;
        }
        if (sp.type == '%') {
            if (tmpl_rt_bput(c, &b, "%", 1)) return -1;
            continue;
        }
        struct buf piece = {.limit = c->max_output};
        int rc = pct_convert(c, &sp, v, fmt.f, &piece);
        if (!rc) rc = pct_pad(c, &b, &sp, &piece);
        tmpl_buf_free(&piece);
        if (rc) {
            tmpl_buf_free(&b);
            return -1;
        }
    }
    if (!pa.mapping && pa.ai < pa.an && !(pa.tuple && pa.an == 0)) {
        tmpl_buf_free(&b);
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "not all arguments converted during string formatting");
    }
    return tmpl_rt_take(c, &b, fmt.f, out);
}

/* ---- strftime (C locale, glibc flags '-', '_', '0') ---- */

static void civil(int64_t days, int64_t *y, int *m, int *d)
{
    /* days since 1970-01-01 -> proleptic Gregorian (H. Hinnant's algorithm) */
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* One switch over the directives (a table would need a function per entry for the same lines). */
int tmpl_strftime_fmt(struct rctx *c, const char *fmt, size_t n, int64_t t, struct buf *b)
{
    static const char *const wd[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
                                     "Friday", "Saturday"};
    static const char *const mo[] = {"January", "February", "March",     "April",
                                     "May",     "June",     "July",      "August",
                                     "September", "October", "November", "December"};
    static const int cum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400), secs = t - days * 86400;
    int64_t year;
    int mon, mday;
    civil(days, &year, &mon, &mday);
    int hour = (int)(secs / 3600), min = (int)(secs / 60 % 60), sec = (int)(secs % 60);
    int wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    int yday = cum[mon - 1] + mday - 1 + (mon > 2 && leap(year));
    for (size_t i = 0; i < n; i++) {
        char tmp[64];
        if (fmt[i] != '%' || i + 1 >= n) {
            if (tmpl_buf_put(b, fmt + i, 1)) goto lim;
            continue;
        }
        size_t start = i++;
        char flag = 0;
        if (strchr("-_0^#", fmt[i]) && i + 1 < n) flag = fmt[i++];
        char d = fmt[i];
        int64_t num = -1;
        int width = 2;
        char pad = '0';
        const char *str = NULL;
        switch (d) {
        case 'Y': num = year, width = 1; break;
        case 'C': num = year / 100; break;
        case 'y': num = year % 100; break;
        case 'm': num = mon; break;
        case 'd': num = mday; break;
        case 'e': num = mday, pad = ' '; break;
        case 'H': num = hour; break;
        case 'k': num = hour, pad = ' '; break;
        case 'I': num = hour % 12 ? hour % 12 : 12; break;
        case 'l': num = hour % 12 ? hour % 12 : 12, pad = ' '; break;
        case 'M': num = min; break;
        case 'S': num = sec; break;
        case 'j': num = yday + 1, width = 3; break;
        case 'w': num = wday, width = 1; break;
        case 'u': num = wday ? wday : 7, width = 1; break;
        case 'U': num = (yday + 7 - wday) / 7; break;
        case 'W': num = (yday + 7 - (wday + 6) % 7) / 7; break;
        case 'a': snprintf(tmp, 4, "%s", wd[wday]); str = tmp; break;
        case 'A': str = wd[wday]; break;
        case 'b': case 'h': snprintf(tmp, 4, "%s", mo[mon - 1]); str = tmp; break;
        case 'B': str = mo[mon - 1]; break;
        case 'p': str = hour < 12 ? "AM" : "PM"; break;
        case 'P': str = hour < 12 ? "am" : "pm"; break;
        case 'c':
            snprintf(tmp, sizeof tmp, "%.3s %.3s %2d %02d:%02d:%02d %lld", wd[wday], mo[mon - 1],
                     mday, hour, min, sec, (long long)year);
            str = tmp;
            break;
        case 'x': case 'D':
            snprintf(tmp, sizeof tmp, "%02d/%02d/%02d", mon, mday, (int)(year % 100));
            str = tmp;
            break;
        case 'X': case 'T':
            snprintf(tmp, sizeof tmp, "%02d:%02d:%02d", hour, min, sec);
            str = tmp;
            break;
        case 'R': snprintf(tmp, sizeof tmp, "%02d:%02d", hour, min); str = tmp; break;
        case 'F':
            snprintf(tmp, sizeof tmp, "%lld-%02d-%02d", (long long)year, mon, mday);
            str = tmp;
            break;
        case 's': snprintf(tmp, sizeof tmp, "%lld", (long long)(t - c->utc_offset)); str = tmp; break;
        case 'n': str = "\n"; break;
        case 't': str = "\t"; break;
        case '%': str = "%"; break;
        case 'Z': case 'z': str = ""; break; /* a naive datetime has no zone */
        default: /* unknown: kept as written, as glibc does */
            if (tmpl_buf_put(b, fmt + start, i + 1 - start)) goto lim;
            continue;
        }
        if (num >= 0) {
            if (flag == '-') snprintf(tmp, sizeof tmp, "%lld", (long long)num);
            else if (flag == '_' || (pad == ' ' && flag != '0'))
                snprintf(tmp, sizeof tmp, "%*lld", width, (long long)num);
            else snprintf(tmp, sizeof tmp, "%0*lld", width, (long long)num);
            str = tmp;
        }
        if (flag == '^' && str != tmp) {
            snprintf(tmp, sizeof tmp, "%s", str);
            str = tmp;
        }
        if (flag == '^')
            for (char *q = tmp; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
        if (tmpl_buf_put(b, str, strlen(str))) goto lim;
    }
    return tmpl_rt_steps(c, n / 8);
lim:
    return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long");
}
