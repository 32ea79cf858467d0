/* tmpl_meth: methods of Python's str, list and dict that templates call (jinja2 resolves
 * `x.strip` to the bound method), str.format's mini-language, printf-style `%` formatting
 * (the `format` filter and `"..." % x`), built-in argument binding, and strftime.
 *
 * Strings are UTF-8; every index and width is in code points, as in Python. A Markup receiver
 * gives Markup results and escapes the plain strings it absorbs (replace, join, format, %), as
 * markupsafe does. Mutating list/dict methods are allowed (the ImmutableSandboxedEnvironment
 * transformers uses would refuse them; llama.cpp and real templates such as Kimi's rely on
 * append/pop), on values that belong to this render only. */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct val sub(struct rctx *c, const struct str *s, size_t a, size_t b, bool markup)
{
    struct val v = tmpl_v_str(c, s->b + a, b - a);
    v.f = markup;
    return v;
}

/* ---- argument binding ---- */

int tmpl_bind_args(struct rctx *c, const char *what, const char *const *names, size_t nnames,
              struct val *args, size_t nargs, struct str **kwn, struct val *kwv, size_t nkw,
              struct val *vals)
{
    for (size_t i = 0; i < nnames; i++) vals[i] = v_undef();
    if (nargs > nnames)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes at most %zu argument(s) (%zu given)",
                      what, nnames, nargs);
    for (size_t i = 0; i < nargs; i++) vals[i] = args[i];
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < nnames && !(strlen(names[i]) == kwn[k]->len &&
                               memcmp(names[i], kwn[k]->b, kwn[k]->len) == 0))
            i++;
        if (i == nnames)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() got an unexpected keyword argument '%s'",
                          what, kwn[k]->b);
        if (i < nargs)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() got multiple values for argument '%s'",
                          what, kwn[k]->b);
        vals[i] = kwv[k];
    }
    return 0;
}

/* ---- string helpers ---- */

/* Code points of a "chars" argument; NULL set = whitespace. */
struct cpset {
    uint32_t *v;
    size_t n;
};

static int cpset_of(struct rctx *c, struct val chars, struct cpset *set, const char *what)
{
    set->v = NULL;
    set->n = 0;
    if (chars.t == VT_UNDEF || chars.t == VT_NONE) return 0;
    if (chars.t != VT_STR)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s arg must be None or str", what);
    const struct str *s = chars.u.s;
    set->v = tmpl_arena_alloc(&c->ar, (s->len + 1) * sizeof *set->v);
    if (!set->v) return tmpl_rt_oom(c);
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        set->v[set->n++] = tmpl_utf8_dec(s->b + i, s->len - i, &adv);
        i += adv;
    }
    set->v[set->n] = UINT32_MAX; /* marks "a set was given" even when empty */
    return 0;
}

static bool in_set(const struct cpset *set, uint32_t cp)
{
    if (!set->v) return tmpl_uni_isspace(cp);
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i] == cp) return true;
    return false;
}

static size_t cp_start(const char *s, size_t i) /* start of the code point ending before i */
{
    size_t st = i - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xc0) == 0x80) st--;
    return st;
}

static int m_strip(struct rctx *c, struct val self, int which, struct val chars, struct val *out)
{
    struct cpset set;
    if (cpset_of(c, chars, &set, which == M_S_STRIP ? "strip" : which == M_S_LSTRIP ? "lstrip" : "rstrip"))
        return -1;
    const struct str *s = self.u.s;
    size_t a = 0, b = s->len;
    if (which != M_S_RSTRIP) {
        while (a < b) {
            size_t adv;
            uint32_t cp = tmpl_utf8_dec(s->b + a, b - a, &adv);
            if (!in_set(&set, cp)) break;
            a += adv;
        }
    }
    if (which != M_S_LSTRIP) {
        while (b > a) {
            size_t st = cp_start(s->b, b), adv;
            uint32_t cp = tmpl_utf8_dec(s->b + st, b - st, &adv);
            if (!in_set(&set, cp)) break;
            b = st;
        }
    }
    if (tmpl_rt_steps(c, s->len / 64)) return -1;
    if (a == 0 && b == s->len) {
        *out = self;
        return 0;
    }
    *out = sub(c, s, a, b, self.f);
    return out->t == VT_STR ? 0 : -1;
}

static int need_str(struct rctx *c, struct val v, const char *what)
{
    if (v.t == VT_STR) return 0;
    if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s must be str, not %s", what, tmpl_type_name(v));
}

static bool as_int(struct val v, int64_t *out)
{
    if (v.t == VT_INT) *out = v.u.i;
    else if (v.t == VT_BOOL) *out = v.u.b;
    else return false;
    return true;
}

static void reverse_vals(struct list *l)
{
    for (size_t a = 0; a < l->n / 2; a++) {
        struct val t = l->v[a];
        l->v[a] = l->v[l->n - 1 - a];
        l->v[l->n - 1 - a] = t;
    }
}

/* str.split() / rsplit() without a separator: runs of whitespace, no empty strings; after
 * maxsplit splits the rest (stripped on the splitting side only) is the last item. */
static int split_ws(struct rctx *c, struct val self, bool right, int64_t maxsplit, struct list *l)
{
    const struct str *s = self.u.s;
    size_t n = s->len, adv;
    size_t i = right ? n : 0; /* the edge being consumed */
    for (;;) {
        if (!right) {
            while (i < n && tmpl_uni_isspace(tmpl_utf8_dec(s->b + i, n - i, &adv))) i += adv;
            if (i >= n) break;
        } else {
            while (i > 0 && tmpl_uni_isspace(tmpl_utf8_dec(s->b + cp_start(s->b, i), i - cp_start(s->b, i), &adv)))
                i = cp_start(s->b, i);
            if (i == 0) break;
        }
        if (maxsplit >= 0 && (int64_t)l->n == maxsplit) {
            if (tmpl_list_push(c, l, right ? sub(c, s, 0, i, self.f) : sub(c, s, i, n, self.f))) return -1;
            break;
        }
        size_t j = i;
        if (!right) {
            while (j < n && !tmpl_uni_isspace(tmpl_utf8_dec(s->b + j, n - j, &adv))) j += adv;
            if (tmpl_list_push(c, l, sub(c, s, i, j, self.f))) return -1;
        } else {
            while (j > 0 && !tmpl_uni_isspace(tmpl_utf8_dec(s->b + cp_start(s->b, j), j - cp_start(s->b, j), &adv)))
                j = cp_start(s->b, j);
            if (tmpl_list_push(c, l, sub(c, s, j, i, self.f))) return -1;
        }
        i = j;
    }
    if (right) reverse_vals(l);
    return 0;
}

/* str.split(sep) / rsplit(sep): every occurrence, empty strings kept. */
static int split_sep(struct rctx *c, struct val self, bool right, const struct str *sep,
                     int64_t maxsplit, struct list *l)
{
    const struct str *s = self.u.s;
    size_t i = right ? s->len : 0;
    for (;;) {
        size_t at = SIZE_MAX;
        if (maxsplit < 0 || (int64_t)l->n < maxsplit) {
            if (!right) {
                const char *f = mem_find(s->b + i, s->len - i, sep->b, sep->len);
                if (f) at = (size_t)(f - s->b);
            } else if (i >= sep->len) {
                for (size_t k = i - sep->len + 1; k-- > 0;)
                    if (memcmp(s->b + k, sep->b, sep->len) == 0) {
                        at = k;
                        break;
                    }
            }
        }
        if (at == SIZE_MAX) {
            if (tmpl_list_push(c, l, right ? sub(c, s, 0, i, self.f) : sub(c, s, i, s->len, self.f))) return -1;
            break;
        }
        if (tmpl_list_push(c, l, right ? sub(c, s, at + sep->len, i, self.f) : sub(c, s, i, at, self.f)))
            return -1;
        i = right ? at : at + sep->len;
    }
    if (right) reverse_vals(l);
    return 0;
}

static int m_split(struct rctx *c, struct val self, bool right, struct val sepv, struct val maxv,
                   struct val *out)
{
    int64_t maxsplit = -1;
    if (maxv.t != VT_UNDEF && !as_int(maxv, &maxsplit))
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object cannot be interpreted as an integer",
                      tmpl_type_name(maxv));
    struct list *l = tmpl_list_new(c, 0);
    if (!l || tmpl_rt_steps(c, self.u.s->len / 32)) return -1;
    int rc;
    if (sepv.t == VT_UNDEF || sepv.t == VT_NONE) {
        rc = split_ws(c, self, right, maxsplit, l);
    } else {
        if (need_str(c, sepv, "must be str or None")) return -1;
        if (sepv.u.s->len == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "empty separator");
        rc = split_sep(c, self, right, sepv.u.s, maxsplit, l);
    }
    *out = v_listv(l, LK_LIST);
    return rc;
}

static int m_splitlines(struct rctx *c, struct val self, bool keep, struct val *out)
{
    const struct str *s = self.u.s;
    struct list *l = tmpl_list_new(c, 0);
    if (!l) return -1;
    size_t i = 0, n = s->len;
    while (i < n) {
        size_t j = i, eol = n, next = n;
        while (j < n) {
            size_t adv;
            uint32_t cp = tmpl_utf8_dec(s->b + j, n - j, &adv);
            if (tmpl_uni_islinebreak(cp)) {
                eol = j;
                next = j + adv + (cp == '\r' && j + 1 < n && s->b[j + 1] == '\n');
                break;
            }
            j += adv;
        }
        if (tmpl_list_push(c, l, sub(c, s, i, keep ? next : eol, self.f))) return -1;
        i = next;
    }
    *out = v_listv(l, LK_LIST);
    return tmpl_rt_steps(c, n / 32);
}

/* Resolve Python start/end (code points, slice rules) to byte offsets. */
static void range_bytes(const struct str *s, struct val st, struct val en, size_t *a, size_t *b)
{
    int64_t n = s->ncp >= 0 ? s->ncp : tmpl_str_ncp((struct str *)s), x = 0, y = n, v;
    if (as_int(st, &v)) x = v < 0 ? (v + n < 0 ? 0 : v + n) : (v > n ? n : v);
    if (as_int(en, &v)) y = v < 0 ? (v + n < 0 ? 0 : v + n) : (v > n ? n : v);
    *a = tmpl_utf8_off(s, x);
    *b = y > x ? tmpl_utf8_off(s, y) : *a;
}

static int64_t cp_index(const struct str *s, size_t byte)
{
    int64_t k = 0;
    for (size_t i = 0; i < byte; i++) k += ((unsigned char)s->b[i] & 0xc0) != 0x80;
    return k;
}

static int m_startsends(struct rctx *c, struct val self, bool ends, struct val *a, struct val *out)
{
    size_t lo, hi;
    range_bytes(self.u.s, a[1], a[2], &lo, &hi);
    const char *base = self.u.s->b + lo;
    size_t n = hi - lo;
    struct val p = a[0];
    struct val *opts = &p;
    size_t nopts = 1;
    if (p.t == VT_LIST && p.f == LK_TUPLE) {
        opts = p.u.l->v;
        nopts = p.u.l->n;
    } else if (p.t != VT_STR) {
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                      "%s first arg must be str or a tuple of str, not %s",
                      ends ? "endswith" : "startswith", tmpl_type_name(p));
    }
    *out = v_bool(false);
    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].t != VT_STR)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                          "tuple for %s must only contain str, not %s",
                          ends ? "endswith" : "startswith", tmpl_type_name(opts[i]));
        const struct str *q = opts[i].u.s;
        if (q->len <= n &&
            memcmp(ends ? base + n - q->len : base, q->b, q->len) == 0) {
            *out = v_bool(true);
            return 0;
        }
    }
    return 0;
}

static int m_replace(struct rctx *c, struct val self, struct val *a, struct val *out)
{
    if (need_str(c, a[0], "replace() argument 1") || need_str(c, a[1], "replace() argument 2"))
        return -1;
    int64_t count = -1;
    if (a[2].t != VT_UNDEF && !as_int(a[2], &count))
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object cannot be interpreted as an integer",
                      tmpl_type_name(a[2]));
    struct val o = a[0], nw = a[1];
    if (self.f && (tmpl_v_escape(c, o, &o) || tmpl_v_escape(c, nw, &nw))) return -1;
    const struct str *s = self.u.s, *old = o.u.s, *rep = nw.u.s;
    struct buf b = {.limit = c->max_output};
    size_t i = 0;
    int64_t done = 0;
    if (old->len == 0) { /* insert before every code point and at the end */
        while (count < 0 || done < count) {
            if (tmpl_rt_bput(c, &b, rep->b, rep->len)) return -1;
            done++;
            if (i >= s->len) break;
            size_t adv;
            tmpl_utf8_dec(s->b + i, s->len - i, &adv);
            if (tmpl_rt_bput(c, &b, s->b + i, adv)) return -1;
            i += adv;
        }
    } else {
        while (count < 0 || done < count) {
            const char *f = mem_find(s->b + i, s->len - i, old->b, old->len);
            if (!f) break;
            size_t at = (size_t)(f - s->b);
            if (tmpl_rt_bput(c, &b, s->b + i, at - i) || tmpl_rt_bput(c, &b, rep->b, rep->len)) return -1;
            i = at + old->len;
            done++;
            if (tmpl_rt_steps(c, 1)) {
                tmpl_buf_free(&b);
                return -1;
            }
        }
    }
    if (tmpl_rt_bput(c, &b, s->b + i, s->len - i)) return -1;
    if (tmpl_rt_steps(c, b.n / 64)) {
        tmpl_buf_free(&b);
        return -1;
    }
    return tmpl_rt_take(c, &b, self.f, out);
}

enum casing { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAP, CASE_SWAP };

static int m_case(struct rctx *c, struct val self, enum casing how, struct val *out)
{
    const struct str *s = self.u.s;
    struct buf b = {.limit = c->max_output};
    bool prev_cased = false, first = true;
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s->b + i, s->len - i, &adv), o = cp;
        uint32_t up = tmpl_uni_upper(cp), lo = tmpl_uni_lower(cp);
        bool cased = up != cp || lo != cp;
        switch (how) {
        case CASE_UPPER: o = up; break;
        case CASE_LOWER: o = lo; break;
        case CASE_CAP: o = first ? up : lo; break;
        case CASE_SWAP: o = up != cp ? up : lo; break;
        case CASE_TITLE: o = prev_cased ? lo : up; prev_cased = cased; break;
        }
        first = false;
        char tmp[4];
        if (tmpl_rt_bput(c, &b, tmp, tmpl_utf8_enc(o, tmp))) return -1;
        i += adv;
    }
    if (tmpl_rt_steps(c, s->len / 32)) {
        tmpl_buf_free(&b);
        return -1;
    }
    return tmpl_rt_take(c, &b, self.f, out);
}

static int m_find(struct rctx *c, struct val self, enum meth m, struct val *a, struct val *out)
{
    if (need_str(c, a[0], "must be str")) return -1;
    const struct str *s = self.u.s, *q = a[0].u.s;
    size_t lo, hi;
    range_bytes(s, a[1], a[2], &lo, &hi);
    if (tmpl_rt_steps(c, (hi - lo) / 64)) return -1;
    if (m == M_S_COUNT) {
        int64_t k = 0;
        if (q->len == 0) {
            k = cp_index(s, hi) - cp_index(s, lo) + 1;
            if (lo > s->len || hi < lo) k = 0;
        } else {
            size_t i = lo;
            const char *f;
            while (i < hi && (f = mem_find(s->b + i, hi - i, q->b, q->len)) != NULL) {
                k++;
                i = (size_t)(f - s->b) + q->len;
            }
        }
        *out = v_int(k);
        return 0;
    }
    int64_t at = -1;
    bool rev = m == M_S_RFIND || m == M_S_RINDEX;
    if (q->len <= hi - lo) {
        if (!rev) {
            const char *f = mem_find(s->b + lo, hi - lo, q->b, q->len);
            if (f) at = cp_index(s, (size_t)(f - s->b));
        } else {
            for (size_t k = hi - q->len + 1; k-- > lo;)
                if (memcmp(s->b + k, q->b, q->len) == 0) {
                    at = cp_index(s, k);
                    break;
                }
        }
    }
    if (at < 0 && (m == M_S_INDEX || m == M_S_RINDEX))
        return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "substring not found");
    *out = v_int(at);
    return 0;
}

static int m_pad(struct rctx *c, struct val self, enum meth m, struct val *a, struct val *out)
{
    int64_t w;
    if (!as_int(a[0], &w))
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object cannot be interpreted as an integer",
                      tmpl_type_name(a[0]));
    const struct str *s = self.u.s;
    const char *fill = " ";
    size_t fl = 1;
    if (a[1].t != VT_UNDEF) {
        if (a[1].t != VT_STR || tmpl_str_ncp(a[1].u.s) != 1)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                          "The fill character must be exactly one character long");
        fill = a[1].u.s->b;
        fl = a[1].u.s->len;
    }
    int64_t len = tmpl_str_ncp(self.u.s);
    if (w <= len) {
        *out = self;
        return 0;
    }
    if ((uint64_t)(w - len) > c->max_output / fl)
        return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string longer than %zu bytes", c->max_output);
    int64_t marg = w - len, left;
    if (m == M_S_CENTER) left = marg / 2 + (marg & w & 1);
    else if (m == M_S_LJUST) left = 0;
    else left = marg;
    struct buf b = {.limit = c->max_output};
    size_t body_at = 0;
    if (m == M_S_ZFILL && s->len && (s->b[0] == '+' || s->b[0] == '-')) {
        if (tmpl_rt_bput(c, &b, s->b, 1)) return -1;
        body_at = 1;
        fill = "0";
    } else if (m == M_S_ZFILL) {
        fill = "0";
    }
    for (int64_t i = 0; i < left; i++)
        if (tmpl_rt_bput(c, &b, fill, fl)) return -1;
    if (tmpl_rt_bput(c, &b, s->b + body_at, s->len - body_at)) return -1;
    for (int64_t i = 0; i < marg - left; i++)
        if (tmpl_rt_bput(c, &b, fill, fl)) return -1;
    if (tmpl_rt_steps(c, (size_t)w / 64)) {
        tmpl_buf_free(&b);
        return -1;
    }
    return tmpl_rt_take(c, &b, self.f, out);
}

static int m_join(struct rctx *c, struct val self, struct val it, struct val *out)
{
    struct list *l;
    if (tmpl_v_iter_list(c, it, &l)) return -1;
    struct buf b = {.limit = c->max_output};
    for (size_t i = 0; i < l->n; i++) {
        struct val x = l->v[i];
        if (x.t != VT_STR) {
            tmpl_buf_free(&b);
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "sequence item %zu: expected str instance, %s found",
                          i, tmpl_type_name(x));
        }
        if (self.f && tmpl_v_escape(c, x, &x)) {
            tmpl_buf_free(&b);
            return -1;
        }
        if ((i && tmpl_rt_bput(c, &b, self.u.s->b, self.u.s->len)) || tmpl_rt_bput(c, &b, x.u.s->b, x.u.s->len))
            return -1;
    }
    if (tmpl_rt_steps(c, b.n / 64)) {
        tmpl_buf_free(&b);
        return -1;
    }
    return tmpl_rt_take(c, &b, self.f, out);
}

static int m_partition(struct rctx *c, struct val self, bool right, struct val sepv, struct val *out)
{
    if (need_str(c, sepv, "must be str")) return -1;
    const struct str *s = self.u.s, *sep = sepv.u.s;
    if (sep->len == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "empty separator");
    size_t at = SIZE_MAX;
    if (!right) {
        const char *f = mem_find(s->b, s->len, sep->b, sep->len);
        if (f) at = (size_t)(f - s->b);
    } else if (s->len >= sep->len) {
        for (size_t k = s->len - sep->len + 1; k-- > 0;)
            if (memcmp(s->b + k, sep->b, sep->len) == 0) {
                at = k;
                break;
            }
    }
    struct list *l = tmpl_list_new(c, 3);
    if (!l) return -1;
    struct val empty = sub(c, s, 0, 0, self.f);
    if (at == SIZE_MAX) {
        l->v[0] = right ? empty : self;
        l->v[1] = empty;
        l->v[2] = right ? self : empty;
    } else {
        l->v[0] = sub(c, s, 0, at, self.f);
        l->v[1] = sepv;
        l->v[2] = sub(c, s, at + sep->len, s->len, self.f);
    }
    l->n = 3;
    *out = v_listv(l, LK_TUPLE);
    return 0;
}

static bool str_all(const struct str *s, bool (*pred)(uint32_t))
{
    if (s->len == 0) return false;
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        if (!pred(tmpl_utf8_dec(s->b + i, s->len - i, &adv))) return false;
        i += adv;
    }
    return true;
}
static bool p_alnum(uint32_t c) { return tmpl_uni_isalpha(c) || tmpl_uni_isdigit(c); }
static bool p_space(uint32_t c) { return tmpl_uni_isspace(c); }
static bool p_ident(uint32_t c) { return c == '_' || tmpl_uni_isalpha(c) || tmpl_uni_isdigit(c); }

static int m_is(struct rctx *c, struct val self, enum meth m, struct val *out)
{
    const struct str *s = self.u.s;
    bool r = false;
    switch (m) {
    case M_S_ISDIGIT: case M_S_ISDECIMAL: case M_S_ISNUMERIC: r = str_all(s, tmpl_uni_isdigit); break;
    case M_S_ISALPHA: r = str_all(s, tmpl_uni_isalpha); break;
    case M_S_ISALNUM: r = str_all(s, p_alnum); break;
    case M_S_ISSPACE: r = str_all(s, p_space); break;
    case M_S_ISIDENTIFIER:
        r = str_all(s, p_ident) && !tmpl_uni_isdigit((unsigned char)s->b[0]);
        break;
    case M_S_ISLOWER: case M_S_ISUPPER: {
        bool any = false;
        r = true;
        for (size_t i = 0; i < s->len && r;) {
            size_t adv;
            uint32_t cp = tmpl_utf8_dec(s->b + i, s->len - i, &adv);
            bool up = tmpl_uni_lower(cp) != cp, lo = tmpl_uni_upper(cp) != cp;
            if ((m == M_S_ISLOWER && up) || (m == M_S_ISUPPER && lo)) r = false;
            any |= up || lo;
            i += adv;
        }
        r = r && any;
        break;
    }
    case M_S_ISTITLE: {
        bool prev = false, any = false;
        r = true;
        for (size_t i = 0; i < s->len && r;) {
            size_t adv;
            uint32_t cp = tmpl_utf8_dec(s->b + i, s->len - i, &adv);
            bool up = tmpl_uni_lower(cp) != cp, lo = tmpl_uni_upper(cp) != cp;
            if (up) {
                if (prev) r = false;
                prev = any = true;
            } else if (lo) {
                if (!prev) r = false;
                prev = true;
            } else {
                prev = false;
            }
            i += adv;
        }
        r = r && any;
        break;
    }
    default: break;
    }
    (void)c;
    *out = v_bool(r);
    return 0;
}

static int m_expandtabs(struct rctx *c, struct val self, struct val ts, struct val *out)
{
    int64_t tab = 8;
    if (ts.t != VT_UNDEF && !as_int(ts, &tab))
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "an integer is required");
    if (tab > 1024) tab = 1024;
    const struct str *s = self.u.s;
    struct buf b = {.limit = c->max_output};
    int64_t col = 0;
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s->b + i, s->len - i, &adv);
        if (cp == '\t') {
            int64_t k = tab > 0 ? tab - col % tab : 0;
            for (int64_t j = 0; j < k; j++)
                if (tmpl_rt_bput(c, &b, " ", 1)) return -1;
            col += k;
        } else {
            if (tmpl_rt_bput(c, &b, s->b + i, adv)) return -1;
            col = (cp == '\n' || cp == '\r') ? 0 : col + 1;
        }
        i += adv;
    }
    return tmpl_rt_take(c, &b, self.f, out);
}

/* str methods: one case per method, mostly a call into a helper above. */
static int call_str(struct rctx *c, struct val self, enum meth m, struct val *args, size_t nargs,
                    struct str **kwn, struct val *kwv, size_t nkw, struct val *out)
{
    static const char *const p_chars[] = {"chars"};
    static const char *const p_split[] = {"sep", "maxsplit"};
    static const char *const p_lines[] = {"keepends"};
    static const char *const p_starts[] = {"prefix", "start", "end"};
    static const char *const p_replace[] = {"old", "new", "count"};
    static const char *const p_find[] = {"sub", "start", "end"};
    static const char *const p_pad[] = {"width", "fillchar"};
    static const char *const p_one[] = {"x"};
    static const char *const p_tab[] = {"tabsize"};
    struct val a[3];
    const char *name = tmpl_meth_name(m);
#define BIND(p) tmpl_bind_args(c, name, p, sizeof p / sizeof p[0], args, nargs, kwn, kwv, nkw, a)
    switch (m) {
    case M_S_STRIP: case M_S_LSTRIP: case M_S_RSTRIP:
        if (BIND(p_chars)) return -1;
        return m_strip(c, self, m, a[0], out);
    case M_S_SPLIT: case M_S_RSPLIT:
        if (BIND(p_split)) return -1;
        return m_split(c, self, m == M_S_RSPLIT, a[0], a[1], out);
    case M_S_SPLITLINES:
        if (BIND(p_lines)) return -1;
        return m_splitlines(c, self, a[0].t != VT_UNDEF && tmpl_truthy(a[0]), out);
    case M_S_STARTSWITH: case M_S_ENDSWITH:
        if (BIND(p_starts)) return -1;
        if (nargs < 1) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes at least 1 argument (0 given)", name);
        return m_startsends(c, self, m == M_S_ENDSWITH, a, out);
    case M_S_REPLACE:
        if (BIND(p_replace)) return -1;
        return m_replace(c, self, a, out);
    case M_S_UPPER: case M_S_LOWER: case M_S_CASEFOLD: case M_S_TITLE: case M_S_CAPITALIZE:
    case M_S_SWAPCASE:
        if (nargs || nkw) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes no arguments", name);
        return m_case(c, self,
                      m == M_S_UPPER ? CASE_UPPER : m == M_S_TITLE ? CASE_TITLE
                      : m == M_S_CAPITALIZE ? CASE_CAP : m == M_S_SWAPCASE ? CASE_SWAP
                                                                           : CASE_LOWER,
                      out);
    case M_S_FORMAT: return tmpl_str_format(c, self, args, nargs, kwn, kwv, nkw, out);
    case M_S_JOIN:
        if (BIND(p_one)) return -1;
        return m_join(c, self, a[0], out);
    case M_S_FIND: case M_S_RFIND: case M_S_INDEX: case M_S_RINDEX: case M_S_COUNT:
        if (BIND(p_find)) return -1;
        return m_find(c, self, m, a, out);
    case M_S_CENTER: case M_S_LJUST: case M_S_RJUST: case M_S_ZFILL:
        if (BIND(p_pad)) return -1;
        return m_pad(c, self, m, a, out);
    case M_S_PARTITION: case M_S_RPARTITION:
        if (BIND(p_one)) return -1;
        return m_partition(c, self, m == M_S_RPARTITION, a[0], out);
    case M_S_REMOVEPREFIX: case M_S_REMOVESUFFIX: {
        if (BIND(p_one) || need_str(c, a[0], "removeprefix() argument")) return -1;
        const struct str *s = self.u.s, *p = a[0].u.s;
        bool pre = m == M_S_REMOVEPREFIX;
        if (p->len && p->len <= s->len &&
            memcmp(pre ? s->b : s->b + s->len - p->len, p->b, p->len) == 0) {
            *out = pre ? sub(c, s, p->len, s->len, self.f) : sub(c, s, 0, s->len - p->len, self.f);
            return out->t == VT_STR ? 0 : -1;
        }
        *out = self;
        return 0;
    }
    case M_S_EXPANDTABS:
        if (BIND(p_tab)) return -1;
        return m_expandtabs(c, self, a[0], out);
    case M_S_ENCODE_:
        return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "bytes are not supported");
    default:
        if (nargs || nkw) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes no arguments", name);
        return m_is(c, self, m, out);
    }
#undef BIND
}

/* ---- list and dict methods ---- */

static int no_args(struct rctx *c, const char *name, size_t nargs, size_t nkw)
{
    if (nargs || nkw) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes no arguments", name);
    return 0;
}

/* list methods: one case per method, each a few lines; splitting would only scatter them. */
static int call_list(struct rctx *c, struct val self, enum meth m, struct val *args, size_t nargs,
                     size_t nkw, struct val *out)
{
    struct list *l = self.u.l;
    const char *name = tmpl_meth_name(m);
    *out = v_none();
    if (nkw && m != M_L_SORT)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes no keyword arguments", name);
    switch (m) {
    case M_L_APPEND:
        if (nargs != 1) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "list.append() takes exactly one argument (%zu given)", nargs);
        return tmpl_list_push(c, l, args[0]);
    case M_L_EXTEND: {
        struct list *src;
        if (nargs != 1) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "list.extend() takes exactly one argument (%zu given)", nargs);
        if (tmpl_v_iter_list(c, args[0], &src)) return -1;
        for (size_t i = 0; i < src->n; i++)
            if (tmpl_list_push(c, l, src->v[i])) return -1;
        return 0;
    }
    case M_L_POP: case M_L_INSERT: {
        int64_t i = m == M_L_POP ? -1 : 0, n = (int64_t)l->n;
        if ((m == M_L_POP && nargs > 1) || (m == M_L_INSERT && nargs != 2))
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes %s arguments", name,
                          m == M_L_POP ? "at most 1" : "exactly 2");
        if (nargs && !as_int(args[0], &i))
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object cannot be interpreted as an integer",
                          tmpl_type_name(args[0]));
        if (m == M_L_INSERT) {
            if (i < 0) i = i + n < 0 ? 0 : i + n;
            if (i > n) i = n;
            if (tmpl_list_push(c, l, args[1])) return -1;
            memmove(&l->v[i + 1], &l->v[i], (size_t)(n - i) * sizeof *l->v);
            l->v[i] = args[1];
            return 0;
        }
        if (n == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "IndexError", "pop from empty list");
        if (i < 0) i += n;
        if (i < 0 || i >= n) return tmpl_rt_err(c, ERR_TEMPLATE, "IndexError", "pop index out of range");
        *out = l->v[i];
        memmove(&l->v[i], &l->v[i + 1], (size_t)(n - i - 1) * sizeof *l->v);
        l->n--;
        return 0;
    }
    case M_L_REMOVE: case M_L_INDEX: case M_L_COUNT: {
        if (nargs < 1) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes exactly one argument (0 given)", name);
        int64_t cnt = 0;
        for (size_t i = 0; i < l->n; i++) {
            if (!tmpl_v_eq(l->v[i], args[0])) continue;
            if (m == M_L_INDEX) {
                *out = v_int((int64_t)i);
                return 0;
            }
            if (m == M_L_REMOVE) {
                memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
                l->n--;
                return 0;
            }
            cnt++;
        }
        if (m == M_L_COUNT) {
            *out = v_int(cnt);
            return 0;
        }
        return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", m == M_L_INDEX ? "value is not in list"
                                                                    : "list.remove(x): x not in list");
    }
    case M_L_COPY: {
        if (no_args(c, name, nargs, nkw)) return -1;
        struct list *r = tmpl_list_new(c, l->n);
        if (!r) return -1;
        vcopy(r->v, l->v, l->n);
        r->n = l->n;
        *out = v_listv(r, LK_LIST);
        return 0;
    }
    case M_L_CLEAR:
        if (no_args(c, name, nargs, nkw)) return -1;
        l->n = 0;
        return 0;
    case M_L_REVERSE:
        if (no_args(c, name, nargs, nkw)) return -1;
        for (size_t i = 0; i < l->n / 2; i++) {
            struct val t = l->v[i];
            l->v[i] = l->v[l->n - 1 - i];
            l->v[l->n - 1 - i] = t;
        }
        return 0;
    default: /* sort: through the sort filter, in place */
        return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "list.sort() is not supported; use |sort");
    }
}

/* dict methods: one case per method (as call_list). */
static int call_dict(struct rctx *c, struct val self, enum meth m, struct val *args, size_t nargs,
                     struct str **kwn, struct val *kwv, size_t nkw, struct val *out)
{
    struct dict *d = self.u.m;
    const char *name = tmpl_meth_name(m);
    *out = v_none();
    if (nkw && m != M_D_UPDATE)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s() takes no keyword arguments", name);
    switch (m) {
    case M_D_GET: case M_D_SETDEFAULT: case M_D_POP: {
        if (nargs < 1 || nargs > 2)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "%s expected 1 or 2 arguments, got %zu", name, nargs);
        int rc;
        struct val *v = tmpl_dict_get(c, d, args[0], &rc);
        if (rc) return -1;
        struct val dflt = nargs == 2 ? args[1] : v_none();
        if (m == M_D_GET) {
            *out = v ? *v : dflt;
            return 0;
        }
        if (m == M_D_SETDEFAULT) {
            if (v) {
                *out = *v;
                return 0;
            }
            *out = dflt;
            return tmpl_dict_set(c, d, args[0], dflt);
        }
        if (v) return tmpl_dict_del(c, d, args[0], out) < 0 ? -1 : 0;
        if (nargs == 2) {
            *out = dflt;
            return 0;
        }
        struct buf b = {.limit = 200};
        tmpl_v_repr_to(c, &b, args[0]);
        rc = tmpl_rt_err(c, ERR_TEMPLATE, "KeyError", "%s", b.p ? b.p : "");
        tmpl_buf_free(&b);
        return rc;
    }
    case M_D_ITEMS: case M_D_KEYS: case M_D_VALUES: {
        if (no_args(c, name, nargs, nkw)) return -1;
        struct list *l = tmpl_list_new(c, d->n);
        if (!l) return -1;
        for (size_t i = 0; i < d->n; i++) {
            if (m == M_D_KEYS) l->v[i] = d->e[i].k;
            else if (m == M_D_VALUES) l->v[i] = d->e[i].v;
            else {
                struct list *pair = tmpl_list_new(c, 2);
                if (!pair) return -1;
                pair->v[0] = d->e[i].k;
                pair->v[1] = d->e[i].v;
                pair->n = 2;
                l->v[i] = v_listv(pair, LK_TUPLE);
            }
        }
        l->n = d->n;
        *out = v_listv(l, m == M_D_KEYS ? LK_KEYS : m == M_D_VALUES ? LK_VALUES : LK_ITEMS);
        return tmpl_rt_steps(c, d->n / 8);
    }
    case M_D_UPDATE: {
        if (nargs > 1) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "update expected at most 1 argument, got %zu", nargs);
        if (nargs == 1) {
            struct val o = args[0];
            if (o.t != VT_DICT && o.t != VT_NS)
                return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object is not a mapping", tmpl_type_name(o));
            for (size_t i = 0; i < o.u.m->n; i++)
                if (tmpl_dict_set(c, d, o.u.m->e[i].k, o.u.m->e[i].v)) return -1;
        }
        for (size_t i = 0; i < nkw; i++)
            if (tmpl_dict_set(c, d, v_strv(kwn[i], false), kwv[i])) return -1;
        return 0;
    }
    case M_D_COPY: {
        if (no_args(c, name, nargs, nkw)) return -1;
        struct dict *r = tmpl_dict_new(c, d->n);
        if (!r) return -1;
        for (size_t i = 0; i < d->n; i++)
            if (tmpl_dict_set(c, r, d->e[i].k, d->e[i].v)) return -1;
        *out = v_dictv(r);
        return 0;
    }
    case M_D_CLEAR:
        if (no_args(c, name, nargs, nkw)) return -1;
        d->n = 0;
        d->idx = NULL;
        return 0;
    default: { /* popitem */
        if (no_args(c, name, nargs, nkw)) return -1;
        if (d->n == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "KeyError", "'popitem(): dictionary is empty'");
        struct list *pair = tmpl_list_new(c, 2);
        if (!pair) return -1;
        pair->v[0] = d->e[d->n - 1].k;
        pair->v[1] = d->e[d->n - 1].v;
        pair->n = 2;
        *out = v_listv(pair, LK_TUPLE);
        return tmpl_dict_del(c, d, pair->v[0], NULL) < 0 ? -1 : 0;
    }
    }
}

int tmpl_call_method(struct rctx *c, struct method *bm, struct val *args, size_t nargs,
                struct str **kwn, struct val *kwv, size_t nkw, struct val *out)
{
    if (tmpl_rt_steps(c, 1)) return -1;
    struct val self = bm->self;
    enum meth m = bm->m;
    if (m >= M_S_STRIP && m <= M_S_ENCODE_) return call_str(c, self, m, args, nargs, kwn, kwv, nkw, out);
    if (m >= M_L_APPEND && m <= M_L_SORT) return call_list(c, self, m, args, nargs, nkw, out);
    if (m >= M_D_GET && m <= M_D_POPITEM) return call_dict(c, self, m, args, nargs, kwn, kwv, nkw, out);
    switch (m) {
    case M_LOOP_CYCLE: {
        if (nargs == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "no items for cycling given");
        *out = args[self.u.lp->i % nargs];
        return 0;
    }
    case M_LOOP_CHANGED: {
        struct list *l = tmpl_list_new(c, nargs);
        if (!l) return -1;
        vcopy(l->v, args, nargs);
        l->n = nargs;
        struct val now = v_listv(l, LK_TUPLE);
        struct loop *lp = self.u.lp;
        bool changed = !lp->has_changed || !tmpl_v_eq(lp->last_changed, now);
        lp->last_changed = now;
        lp->has_changed = true;
        *out = v_bool(changed);
        return 0;
    }
    case M_JOINER_CALL: {
        struct list *st = self.u.l;
        if (!tmpl_truthy(st->v[1])) {
            st->v[1] = v_bool(true);
            *out = tmpl_v_cstr(c, "");
            return out->t == VT_STR ? 0 : -1;
        }
        *out = st->v[0];
        return 0;
    }
    default:
        return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "method not supported");
    }
}

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
