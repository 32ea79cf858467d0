/* tmpl_meth: methods of Python's str, list and dict that templates call (jinja2 resolves
 * `x.strip` to the bound method; which names exist is tmpl_val's method table), the joiner and
 * loop.cycle/changed helpers, and the argument binding every built-in shares. str.format is
 * tmpl_fmt's; filters and the evaluator call down into this file, never the other way.
 *
 * Strings are UTF-8; every index and width is in code points, as in Python. A Markup receiver
 * gives Markup results and escapes the plain strings it absorbs (replace, join, format, %), as
 * markupsafe does. Mutating list/dict methods are allowed (the ImmutableSandboxedEnvironment
 * transformers uses would refuse them; llama.cpp and real templates such as Kimi's rely on
 * append/pop), on values that belong to this render only. */
#include "tmpl_int.h"

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
