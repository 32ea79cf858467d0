/* tmpl_val: Python value semantics over struct val: containers, equality / ordering / hashing,
 * str() and repr() as CPython prints them, json.dumps as transformers' tojson calls it, the
 * bridge from jansson values, and the method table (which str/list/dict methods exist, their
 * names, bound method values; what they do is tmpl_meth's).
 *
 * Recursive walks over values (repr, tojson, equality, conversion) stop at VAL_MAX_DEPTH: a
 * template can build arbitrarily deep or cyclic lists (x.append(x)), and Python would raise a
 * RecursionError there too. */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAL_MAX_DEPTH 512

/* ---- containers ---- */

struct list *tmpl_list_new(struct rctx *c, size_t cap)
{
    struct list *l = tmpl_arena_alloc(&c->ar, sizeof *l);
    if (l && cap) {
        l->v = tmpl_arena_alloc(&c->ar, cap * sizeof *l->v);
        if (!l->v) l = NULL;
        else l->cap = cap;
    }
    if (!l) tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
    return l;
}

int tmpl_list_push(struct rctx *c, struct list *l, struct val v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        struct val *nv = tmpl_arena_alloc(&c->ar, nc * sizeof *nv);
        if (!nv) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

struct dict *tmpl_dict_new(struct rctx *c, size_t cap)
{
    struct dict *d = tmpl_arena_alloc(&c->ar, sizeof *d);
    if (d && cap) {
        d->e = tmpl_arena_alloc(&c->ar, cap * sizeof *d->e);
        if (!d->e) d = NULL;
        else d->cap = cap;
    }
    if (!d) tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
    return d;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int hash_rec(struct rctx *c, struct val v, uint64_t *h, int depth)
{
    switch (v.t) {
    case VT_NONE: *h = 0x9e3779b97f4a7c15ull; return 0;
    case VT_UNDEF: *h = 0x1234567ull; return 0;
    case VT_BOOL: *h = mix64((uint64_t)v.u.b); return 0;
    case VT_INT: *h = mix64((uint64_t)v.u.i); return 0;
    case VT_FLOAT:
        if (v.u.d == floor(v.u.d) && fabs(v.u.d) < 9.2e18) *h = mix64((uint64_t)(int64_t)v.u.d);
        else {
            uint64_t b;
            double d = v.u.d;
            memcpy(&b, &d, sizeof b);
            *h = mix64(b ^ 0x5555);
        }
        return 0;
    case VT_STR: {
        uint64_t x = 1469598103934665603ull;
        for (size_t i = 0; i < v.u.s->len; i++) x = (x ^ (unsigned char)v.u.s->b[i]) * 1099511628211ull;
        *h = x;
        return 0;
    }
    case VT_LIST:
        if (v.f == LK_TUPLE) {
            if (depth > VAL_MAX_DEPTH)
                return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "value nested too deeply");
            uint64_t x = 0x345678;
            for (size_t i = 0; i < v.u.l->n; i++) {
                uint64_t e;
                if (hash_rec(c, v.u.l->v[i], &e, depth + 1)) return -1;
                x = mix64(x ^ e) + i;
            }
            *h = x;
            return 0;
        }
        if (v.f == LK_GEN || v.f == LK_REVIT) {
            *h = mix64((uint64_t)(uintptr_t)v.u.l);
            return 0;
        }
        break;
    case VT_FUNC: *h = mix64(v.id + 77u); return 0;
    case VT_MACRO: case VT_LOOP: case VT_NS: case VT_METHOD:
        *h = mix64((uint64_t)(uintptr_t)v.u.mac);
        return 0;
    default: break;
    }
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "unhashable type: '%s'", tmpl_type_name(v));
}

int tmpl_v_hash(struct rctx *c, struct val v, uint64_t *h) { return hash_rec(c, v, h, 0); }

static int dict_index(struct rctx *c, struct dict *d)
{
    size_t icap = 16;
    while (icap < d->n * 2 + 2) icap *= 2;
    uint32_t *idx = tmpl_arena_alloc(&c->ar, icap * sizeof *idx);
    if (!idx) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
    for (size_t i = 0; i < d->n; i++) {
        size_t j = d->e[i].h & (icap - 1);
        while (idx[j]) j = (j + 1) & (icap - 1);
        idx[j] = (uint32_t)i + 1;
    }
    d->idx = idx;
    d->icap = icap;
    return 0;
}

/* Position of key in d->e, or -1. */
static int64_t dict_find(struct dict *d, struct val key, uint64_t h)
{
    if (!d->idx) {
        for (size_t i = 0; i < d->n; i++)
            if (d->e[i].h == h && tmpl_v_eq(d->e[i].k, key)) return (int64_t)i;
        return -1;
    }
    size_t j = h & (d->icap - 1);
    while (d->idx[j]) {
        struct kv *e = &d->e[d->idx[j] - 1];
        if (e->h == h && tmpl_v_eq(e->k, key)) return d->idx[j] - 1;
        j = (j + 1) & (d->icap - 1);
    }
    return -1;
}

struct val *tmpl_dict_get(struct rctx *c, struct dict *d, struct val key, int *rc)
{
    uint64_t h;
    *rc = tmpl_v_hash(c, key, &h);
    if (*rc) return NULL;
    int64_t i = dict_find(d, key, h);
    return i < 0 ? NULL : &d->e[i].v;
}

struct val *tmpl_dict_get_cstr(struct dict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++) {
        struct val *key = &d->e[i].k;
        if (key->t == VT_STR && key->u.s->len == n && memcmp(key->u.s->b, k, n) == 0)
            return &d->e[i].v;
    }
    return NULL;
}

int tmpl_dict_set(struct rctx *c, struct dict *d, struct val key, struct val v)
{
    uint64_t h;
    if (tmpl_v_hash(c, key, &h)) return -1;
    int64_t i = dict_find(d, key, h);
    if (i >= 0) {
        d->e[i].v = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4;
        struct kv *ne = tmpl_arena_alloc(&c->ar, nc * sizeof *ne);
        if (!ne) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        if (d->n) memcpy(ne, d->e, d->n * sizeof *ne);
        d->e = ne;
        d->cap = nc;
    }
    d->e[d->n].k = key;
    d->e[d->n].v = v;
    d->e[d->n].h = h;
    d->n++;
    if (d->n > 8 && (!d->idx || d->n * 2 + 2 > d->icap)) return dict_index(c, d);
    if (d->idx) {
        size_t j = h & (d->icap - 1);
        while (d->idx[j]) j = (j + 1) & (d->icap - 1);
        d->idx[j] = (uint32_t)d->n;
    }
    return 0;
}

int tmpl_dict_del(struct rctx *c, struct dict *d, struct val key, struct val *old)
{
    uint64_t h;
    if (tmpl_v_hash(c, key, &h)) return -1;
    int64_t i = dict_find(d, key, h);
    if (i < 0) return 1;
    if (old) *old = d->e[i].v;
    memmove(&d->e[i], &d->e[i + 1], (d->n - (size_t)i - 1) * sizeof *d->e);
    d->n--;
    d->idx = NULL;
    return d->n > 8 ? dict_index(c, d) : 0;
}

/* ---- undefined ---- */

struct val tmpl_v_undef_name(struct rctx *c, struct val key, const char *objtype, bool is_item)
{
    struct val v = v_undef();
    struct undef *u = tmpl_arena_alloc(&c->ar, sizeof *u);
    if (u) {
        u->key = key;
        u->objtype = objtype;
        u->is_item = is_item;
        v.u.u = u;
    }
    return v;
}

struct val tmpl_v_undef_hint(struct rctx *c, const char *hint)
{
    struct val v = v_undef();
    struct undef *u = tmpl_arena_alloc(&c->ar, sizeof *u);
    if (u) {
        u->hint = hint;
        v.u.u = u;
    }
    return v;
}

int tmpl_undef_fail(struct rctx *c, struct val v)
{
    struct undef *u = v.u.u;
    if (!u) return tmpl_rt_err(c, ERR_TEMPLATE, "UndefinedError", "value is undefined");
    if (u->hint) return tmpl_rt_err(c, ERR_TEMPLATE, "UndefinedError", "%s", u->hint);
    struct buf b = {.limit = 200};
    if (u->key.t == VT_STR) tmpl_buf_put(&b, u->key.u.s->b, u->key.u.s->len);
    else tmpl_v_repr_to(c, &b, u->key);
    const char *k = b.p ? b.p : "";
    int rc;
    if (!u->objtype) rc = tmpl_rt_err(c, ERR_TEMPLATE, "UndefinedError", "'%s' is undefined", k);
    else if (u->is_item && u->key.t != VT_STR)
        rc = tmpl_rt_err(c, ERR_TEMPLATE, "UndefinedError", "'%s' has no element %s", u->objtype, k);
    else
        rc = tmpl_rt_err(c, ERR_TEMPLATE, "UndefinedError", "'%s' has no attribute '%s'", u->objtype, k);
    tmpl_buf_free(&b);
    return rc;
}

/* ---- methods: their names, which receiver has which, bound method values ---- */

static const char *const g_str_m[] = {
    [M_S_STRIP] = "strip", [M_S_LSTRIP] = "lstrip", [M_S_RSTRIP] = "rstrip",
    [M_S_SPLIT] = "split", [M_S_RSPLIT] = "rsplit", [M_S_SPLITLINES] = "splitlines",
    [M_S_STARTSWITH] = "startswith", [M_S_ENDSWITH] = "endswith", [M_S_REPLACE] = "replace",
    [M_S_UPPER] = "upper", [M_S_LOWER] = "lower", [M_S_TITLE] = "title",
    [M_S_CAPITALIZE] = "capitalize", [M_S_SWAPCASE] = "swapcase", [M_S_CASEFOLD] = "casefold",
    [M_S_FORMAT] = "format", [M_S_JOIN] = "join", [M_S_FIND] = "find", [M_S_RFIND] = "rfind",
    [M_S_INDEX] = "index", [M_S_RINDEX] = "rindex", [M_S_COUNT] = "count",
    [M_S_CENTER] = "center", [M_S_LJUST] = "ljust", [M_S_RJUST] = "rjust", [M_S_ZFILL] = "zfill",
    [M_S_PARTITION] = "partition", [M_S_RPARTITION] = "rpartition",
    [M_S_REMOVEPREFIX] = "removeprefix", [M_S_REMOVESUFFIX] = "removesuffix",
    [M_S_ISDIGIT] = "isdigit", [M_S_ISDECIMAL] = "isdecimal", [M_S_ISNUMERIC] = "isnumeric",
    [M_S_ISALPHA] = "isalpha", [M_S_ISALNUM] = "isalnum", [M_S_ISSPACE] = "isspace",
    [M_S_ISLOWER] = "islower", [M_S_ISUPPER] = "isupper", [M_S_ISTITLE] = "istitle",
    [M_S_ISIDENTIFIER] = "isidentifier", [M_S_EXPANDTABS] = "expandtabs",
    [M_S_ENCODE_] = "encode",
    [M_L_APPEND] = "append", [M_L_EXTEND] = "extend", [M_L_POP] = "pop", [M_L_INSERT] = "insert",
    [M_L_REMOVE] = "remove", [M_L_INDEX] = "index", [M_L_COUNT] = "count", [M_L_COPY] = "copy",
    [M_L_CLEAR] = "clear", [M_L_REVERSE] = "reverse", [M_L_SORT] = "sort",
    [M_D_GET] = "get", [M_D_ITEMS] = "items", [M_D_KEYS] = "keys", [M_D_VALUES] = "values",
    [M_D_POP] = "pop", [M_D_UPDATE] = "update", [M_D_COPY] = "copy",
    [M_D_SETDEFAULT] = "setdefault", [M_D_CLEAR] = "clear", [M_D_POPITEM] = "popitem",
};

static enum meth find_in(int lo, int hi, const char *name, size_t len)
{
    for (int m = lo; m <= hi; m++)
        if (g_str_m[m] && strlen(g_str_m[m]) == len && memcmp(g_str_m[m], name, len) == 0)
            return (enum meth)m;
    return M_NONE;
}

const char *tmpl_meth_name(enum meth m)
{
    if (m == M_LOOP_CYCLE) return "cycle";
    if (m == M_LOOP_CHANGED) return "changed";
    return m > M_NONE && m <= M_D_POPITEM && g_str_m[m] ? g_str_m[m] : "?";
}

enum meth tmpl_meth_lookup(struct val obj, const char *name, size_t len)
{
    switch (obj.t) {
    case VT_STR: return find_in(M_S_STRIP, M_S_ENCODE_, name, len);
    case VT_DICT: return find_in(M_D_GET, M_D_POPITEM, name, len);
    case VT_LIST:
        if (obj.f == LK_LIST) return find_in(M_L_APPEND, M_L_SORT, name, len);
        if (obj.f == LK_TUPLE) {
            enum meth m = find_in(M_L_INDEX, M_L_COUNT, name, len);
            return m;
        }
        return M_NONE;
    default: return M_NONE;
    }
}

int tmpl_v_method(struct rctx *c, struct val self, enum meth m, struct val *out)
{
    struct method *bm = tmpl_arena_alloc(&c->ar, sizeof *bm);
    if (!bm) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
    bm->self = self;
    bm->m = m;
    struct val v = {0};
    v.t = VT_METHOD;
    v.u.bm = bm;
    *out = v;
    return 0;
}

/* ---- type names, truth ---- */

const char *tmpl_type_name(struct val v)
{
    switch (v.t) {
    case VT_UNDEF: return "Undefined";
    case VT_NONE: return "NoneType";
    case VT_BOOL: return "bool";
    case VT_INT: return "int";
    case VT_FLOAT: return "float";
    case VT_STR: return v.f ? "Markup" : "str";
    case VT_LIST:
        switch (v.f) {
        case LK_TUPLE: return "tuple";
        case LK_GEN: return "generator";
        case LK_REVIT: return "list_reverseiterator";
        case LK_ITEMS: return "dict_items";
        case LK_KEYS: return "dict_keys";
        case LK_VALUES: return "dict_values";
        default: return "list";
        }
    case VT_DICT: return "dict";
    case VT_NS: return "Namespace";
    case VT_FUNC: return "function";
    case VT_METHOD: return "builtin_function_or_method";
    case VT_MACRO: return "Macro";
    case VT_LOOP: return "LoopContext";
    default: return "object";
    }
}

bool tmpl_truthy(struct val v)
{
    switch (v.t) {
    case VT_UNDEF: case VT_NONE: return false;
    case VT_BOOL: return v.u.b;
    case VT_INT: return v.u.i != 0;
    case VT_FLOAT: return v.u.d != 0.0;
    case VT_STR: return v.u.s->len != 0;
    case VT_LIST: return v_is_gen(v) || v.u.l->n != 0;
    case VT_DICT: return v.u.m->n != 0;
    default: return true;
    }
}

/* ---- equality and ordering ---- */

static bool is_num(struct val v) { return v.t == VT_BOOL || v.t == VT_INT || v.t == VT_FLOAT; }
static int64_t as_i(struct val v) { return v.t == VT_BOOL ? (int64_t)v.u.b : v.u.i; }

/* Compare two numbers exactly (int64 vs double without rounding the int). */
static int num_cmp(struct val a, struct val b, bool *unordered)
{
    *unordered = false;
    if (a.t != VT_FLOAT && b.t != VT_FLOAT) {
        int64_t x = as_i(a), y = as_i(b);
        return x < y ? -1 : x > y;
    }
    if (a.t == VT_FLOAT && b.t == VT_FLOAT) {
        if (isnan(a.u.d) || isnan(b.u.d)) return *unordered = true, 0;
        return a.u.d < b.u.d ? -1 : a.u.d > b.u.d;
    }
    bool swap = a.t != VT_FLOAT;
    double d = swap ? b.u.d : a.u.d;
    int64_t i = swap ? as_i(a) : as_i(b);
    int r;
    if (isnan(d)) return *unordered = true, 0;
    if (d >= 9223372036854775808.0) r = 1;
    else if (d < -9223372036854775808.0) r = -1;
    else {
        double fl = floor(d);
        int64_t di = (int64_t)fl;
        if (di != i) r = di < i ? -1 : 1;
        else r = d > fl ? 1 : 0;
    }
    return swap ? -r : r;
}

static bool eq_rec(struct val a, struct val b, int depth)
{
    if (depth > VAL_MAX_DEPTH) return false;
    if (is_num(a) && is_num(b)) {
        bool un;
        int r = num_cmp(a, b, &un);
        return !un && r == 0;
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case VT_UNDEF: case VT_NONE: return true;
    case VT_STR:
        return a.u.s == b.u.s ||
               (a.u.s->len == b.u.s->len && memcmp(a.u.s->b, b.u.s->b, a.u.s->len) == 0);
    case VT_LIST: {
        if (a.u.l == b.u.l && a.f == b.f) return true;
        bool seq_a = a.f == LK_LIST || a.f == LK_TUPLE, seq_b = b.f == LK_LIST || b.f == LK_TUPLE;
        if (a.f != b.f || !seq_a || !seq_b) {
            if (a.f == b.f && (a.f == LK_VALUES || v_is_gen(a))) return false;
            if (a.f == b.f && (a.f == LK_KEYS || a.f == LK_ITEMS)) goto as_sets;
            return false;
        }
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!eq_rec(a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        return true;
    as_sets:
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++) {
            bool found = false;
            for (size_t j = 0; j < b.u.l->n && !found; j++)
                found = eq_rec(a.u.l->v[i], b.u.l->v[j], depth + 1);
            if (!found) return false;
        }
        return true;
    }
    case VT_DICT: {
        struct dict *x = a.u.m, *y = b.u.m;
        if (x == y) return true;
        if (x->n != y->n) return false;
        for (size_t i = 0; i < x->n; i++) {
            int64_t j = dict_find(y, x->e[i].k, x->e[i].h);
            if (j < 0 || !eq_rec(x->e[i].v, y->e[j].v, depth + 1)) return false;
        }
        return true;
    }
    case VT_FUNC: return a.id == b.id;
    case VT_METHOD:
        return a.u.bm->m == b.u.bm->m && a.u.bm->self.t == b.u.bm->self.t &&
               a.u.bm->self.u.l == b.u.bm->self.u.l;
    default: return a.u.mac == b.u.mac;
    }
}

bool tmpl_v_eq(struct val a, struct val b) { return eq_rec(a, b, 0); }

static int cmp_rec(struct rctx *c, struct val a, struct val b, int *out, int depth)
{
    if (depth > VAL_MAX_DEPTH) return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "value nested too deeply");
    if (is_num(a) && is_num(b)) {
        bool un;
        *out = num_cmp(a, b, &un);
        if (un) *out = 2; /* NaN: every comparison false */
        return 0;
    }
    if (a.t == VT_STR && b.t == VT_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->b, b.u.s->b, n);
        *out = r ? (r < 0 ? -1 : 1) : (a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len);
        return 0;
    }
    if (a.t == VT_LIST && b.t == VT_LIST && a.f == b.f && (a.f == LK_LIST || a.f == LK_TUPLE)) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (eq_rec(a.u.l->v[i], b.u.l->v[i], depth + 1)) continue;
            return cmp_rec(c, a.u.l->v[i], b.u.l->v[i], out, depth + 1);
        }
        *out = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    if (a.t == VT_UNDEF) return tmpl_undef_fail(c, a);
    if (b.t == VT_UNDEF) return tmpl_undef_fail(c, b);
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                  "'<' not supported between instances of '%s' and '%s'", tmpl_type_name(a),
                  tmpl_type_name(b));
}

int tmpl_v_cmp(struct rctx *c, struct val a, struct val b, int *out) { return cmp_rec(c, a, b, out, 0); }

/* ---- str / repr ---- */

void tmpl_fmt_float(char *buf, size_t cap, double d)
{
    if (isnan(d)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, cap, d < 0 ? "-inf" : "inf");
        return;
    }
    if (d == 0) {
        snprintf(buf, cap, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e: [-]D[.DDD]e[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    while (*q && *q != 'e') {
        if (*q >= '0' && *q <= '9' && nd < sizeof digits - 1) digits[nd++] = *q;
        q++;
    }
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int exp10 = atoi(q + 1);
    int decpt = exp10 + 1;
    char out[64];
    size_t w = 0;
    if (neg) out[w++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[w++] = '0';
            out[w++] = '.';
            for (int k = 0; k < -decpt; k++) out[w++] = '0';
            memcpy(out + w, digits, nd);
            w += nd;
        } else if ((size_t)decpt >= nd) {
            memcpy(out + w, digits, nd);
            w += nd;
            for (size_t k = nd; k < (size_t)decpt; k++) out[w++] = '0';
            out[w++] = '.';
            out[w++] = '0';
        } else {
            memcpy(out + w, digits, (size_t)decpt);
            w += (size_t)decpt;
            out[w++] = '.';
            memcpy(out + w, digits + decpt, nd - (size_t)decpt);
            w += nd - (size_t)decpt;
        }
        out[w] = 0;
    } else {
        out[w++] = digits[0];
        if (nd > 1) {
            out[w++] = '.';
            memcpy(out + w, digits + 1, nd - 1);
            w += nd - 1;
        }
        snprintf(out + w, sizeof out - w, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
                 abs(decpt - 1));
    }
    snprintf(buf, cap, "%s", out);
}

static int put(struct rctx *c, struct buf *b, const char *s, size_t n)
{
    int rc = tmpl_buf_put(b, s, n);
    if (rc == ERR_LIMIT)
        return tmpl_rt_err(c, ERR_LIMIT, "OutputLimit", "rendered text longer than %zu bytes", b->limit);
    if (rc) return tmpl_rt_err(c, ERR_NOMEM, "MemoryError", "out of memory");
    return 0;
}
static int puts_(struct rctx *c, struct buf *b, const char *s) { return put(c, b, s, strlen(s)); }

static int str_repr_to(struct rctx *c, struct buf *b, const struct str *s)
{
    bool sq = memchr(s->b, '\'', s->len) != NULL, dq = memchr(s->b, '"', s->len) != NULL;
    char q = (sq && !dq) ? '"' : '\'';
    if (put(c, b, &q, 1)) return -1;
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s->b + i, s->len - i, &adv);
        char tmp[16];
        const char *o = tmp;
        size_t on;
        if (cp == (uint32_t)q || cp == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)cp;
            on = 2;
        } else if (cp == '\n') o = "\\n", on = 2;
        else if (cp == '\r') o = "\\r", on = 2;
        else if (cp == '\t') o = "\\t", on = 2;
        else if (tmpl_uni_isprintable(cp) || cp == ' ') o = s->b + i, on = adv;
        else if (cp < 0x100) on = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", cp);
        else if (cp < 0x10000) on = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", cp);
        else on = (size_t)snprintf(tmp, sizeof tmp, "\\U%08x", cp);
        if (put(c, b, o, on)) return -1;
        i += adv;
    }
    return put(c, b, &q, 1);
}

static const char *const g_fn_names[FN_COUNT_] = {
    [FN_RAISE] = "raise_exception", [FN_STRFTIME] = "strftime_now", [FN_NAMESPACE] = "Namespace",
    [FN_RANGE] = "range",           [FN_DICT] = "dict",             [FN_JOINER] = "joiner",
    [FN_CYCLER] = "cycler"};

static int repr_rec(struct rctx *c, struct buf *b, struct val v, int depth);

static int seq_repr(struct rctx *c, struct buf *b, const struct list *l, const char *open,
                    const char *close, bool tuple1, int depth)
{
    if (puts_(c, b, open)) return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (i && puts_(c, b, ", ")) return -1;
        if (repr_rec(c, b, l->v[i], depth + 1)) return -1;
    }
    if (tuple1 && l->n == 1 && puts_(c, b, ",")) return -1;
    return puts_(c, b, close);
}

static int dict_repr(struct rctx *c, struct buf *b, const struct dict *d, int depth)
{
    if (puts_(c, b, "{")) return -1;
    for (size_t i = 0; i < d->n; i++) {
        if (i && puts_(c, b, ", ")) return -1;
        if (repr_rec(c, b, d->e[i].k, depth + 1) || puts_(c, b, ": ") ||
            repr_rec(c, b, d->e[i].v, depth + 1))
            return -1;
    }
    return puts_(c, b, "}");
}

static int repr_rec(struct rctx *c, struct buf *b, struct val v, int depth)
{
    if (depth > VAL_MAX_DEPTH) return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "value nested too deeply");
    if (tmpl_rt_steps(c, 1)) return -1;
    char tmp[64];
    switch (v.t) {
    case VT_UNDEF: return puts_(c, b, "Undefined");
    case VT_STR:
        if (v.f) {
            if (puts_(c, b, "Markup(") || str_repr_to(c, b, v.u.s)) return -1;
            return puts_(c, b, ")");
        }
        return str_repr_to(c, b, v.u.s);
    case VT_LIST:
        switch (v.f) {
        case LK_TUPLE: return seq_repr(c, b, v.u.l, "(", ")", true, depth);
        case LK_GEN: return puts_(c, b, "<generator object>");
        case LK_REVIT: return puts_(c, b, "<list_reverseiterator object>");
        case LK_ITEMS: return seq_repr(c, b, v.u.l, "dict_items([", "])", false, depth);
        case LK_KEYS: return seq_repr(c, b, v.u.l, "dict_keys([", "])", false, depth);
        case LK_VALUES: return seq_repr(c, b, v.u.l, "dict_values([", "])", false, depth);
        default: return seq_repr(c, b, v.u.l, "[", "]", false, depth);
        }
    case VT_DICT: return dict_repr(c, b, v.u.m, depth);
    case VT_NS:
        if (puts_(c, b, "<Namespace ") || dict_repr(c, b, v.u.m, depth)) return -1;
        return puts_(c, b, ">");
    case VT_FUNC:
        snprintf(tmp, sizeof tmp, "<function %s>", v.id < FN_COUNT_ ? g_fn_names[v.id] : "?");
        return puts_(c, b, tmp);
    case VT_METHOD:
        snprintf(tmp, sizeof tmp, "<built-in method %s of %s object>", tmpl_meth_name(v.u.bm->m),
                 tmpl_type_name(v.u.bm->self));
        return puts_(c, b, tmp);
    case VT_MACRO:
        if (puts_(c, b, "<Macro ")) return -1;
        if (v.u.mac && v.u.mac->name && str_repr_to(c, b, v.u.mac->name)) return -1;
        return puts_(c, b, ">");
    case VT_LOOP: return puts_(c, b, "<LoopContext>");
    default: return tmpl_v_str_to(c, b, v);
    }
}

int tmpl_v_repr_to(struct rctx *c, struct buf *b, struct val v) { return repr_rec(c, b, v, 0); }

/* Decimal digits of i into the end of tmp[24]; returns the start. */
static const char *fmt_int(int64_t i, char *tmp)
{
    char *p = tmp + 23;
    uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    *p = 0;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0) *--p = '-';
    return p;
}

int tmpl_v_str_to(struct rctx *c, struct buf *b, struct val v)
{
    char tmp[64];
    switch (v.t) {
    case VT_UNDEF: return 0;
    case VT_NONE: return puts_(c, b, "None");
    case VT_BOOL: return puts_(c, b, v.u.b ? "True" : "False");
    case VT_INT: return puts_(c, b, fmt_int(v.u.i, tmp));
    case VT_FLOAT:
        tmpl_fmt_float(tmp, sizeof tmp, v.u.d);
        return puts_(c, b, tmp);
    case VT_STR:
        if (tmpl_rt_steps(c, v.u.s->len / 64)) return -1;
        return put(c, b, v.u.s->b, v.u.s->len);
    default: return repr_rec(c, b, v, 0);
    }
}

int tmpl_v_to_str(struct rctx *c, struct val v, struct val *out)
{
    if (v.t == VT_STR) {
        *out = v;
        return 0;
    }
    char tmp[64];
    const char *s = NULL;
    switch (v.t) {
    case VT_UNDEF: s = ""; break;
    case VT_NONE: s = "None"; break;
    case VT_BOOL: s = v.u.b ? "True" : "False"; break;
    case VT_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); s = tmp; break;
    case VT_FLOAT: tmpl_fmt_float(tmp, sizeof tmp, v.u.d); s = tmp; break;
    default: break;
    }
    if (s) {
        *out = tmpl_v_cstr(c, s);
        return out->t == VT_STR ? 0 : -1;
    }
    struct buf b = {.limit = c->max_output};
    int rc = repr_rec(c, &b, v, 0);
    if (!rc) {
        *out = tmpl_buf_take(c, &b, false);
        rc = out->t == VT_STR ? 0 : -1;
    }
    tmpl_buf_free(&b);
    return rc;
}

/* ---- json.dumps ---- */

static int json_str(struct rctx *c, struct buf *b, const struct str *s, bool ascii)
{
    if (put(c, b, "\"", 1)) return -1;
    size_t run = 0; /* start of the pending unescaped run */
    for (size_t i = 0; i < s->len;) {
        unsigned char ch = (unsigned char)s->b[i];
        char tmp[16];
        size_t on = 0;
        size_t adv = 1;
        if (ch == '"') memcpy(tmp, "\\\"", on = 2);
        else if (ch == '\\') memcpy(tmp, "\\\\", on = 2);
        else if (ch == '\n') memcpy(tmp, "\\n", on = 2);
        else if (ch == '\r') memcpy(tmp, "\\r", on = 2);
        else if (ch == '\t') memcpy(tmp, "\\t", on = 2);
        else if (ch == '\b') memcpy(tmp, "\\b", on = 2);
        else if (ch == '\f') memcpy(tmp, "\\f", on = 2);
        else if (ch < 0x20 || (ascii && ch == 0x7f)) on = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", ch);
        else if (ascii && ch >= 0x80) {
            uint32_t cp = tmpl_utf8_dec(s->b + i, s->len - i, &adv);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                on = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                                      0xdc00 + (cp & 0x3ff));
            } else {
                on = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            }
        }
        if (on) {
            if (put(c, b, s->b + run, i - run) || put(c, b, tmp, on)) return -1;
            run = i + adv;
        }
        i += adv;
    }
    if (put(c, b, s->b + run, s->len - run)) return -1;
    return put(c, b, "\"", 1);
}

static int json_newline(struct rctx *c, struct buf *b, const struct json_opts *o, int level)
{
    if (put(c, b, "\n", 1)) return -1;
    for (int k = 0; k < level; k++)
        if (put(c, b, o->indent, o->indent_len)) return -1;
    return 0;
}

static int json_key(struct rctx *c, struct buf *b, struct val k, const struct json_opts *o)
{
    char tmp[64];
    switch (k.t) {
    case VT_STR: return json_str(c, b, k.u.s, o->ensure_ascii);
    case VT_NONE: return puts_(c, b, "\"null\"");
    case VT_BOOL: return puts_(c, b, k.u.b ? "\"true\"" : "\"false\"");
    case VT_INT: snprintf(tmp, sizeof tmp, "\"%lld\"", (long long)k.u.i); return puts_(c, b, tmp);
    case VT_FLOAT: {
        char f[48];
        if (isnan(k.u.d)) snprintf(f, sizeof f, "NaN");
        else if (isinf(k.u.d)) snprintf(f, sizeof f, k.u.d < 0 ? "-Infinity" : "Infinity");
        else tmpl_fmt_float(f, sizeof f, k.u.d);
        snprintf(tmp, sizeof tmp, "\"%s\"", f);
        return puts_(c, b, tmp);
    }
    default:
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                      "keys must be str, int, float, bool or None, not %s", tmpl_type_name(k));
    }
}

static int json_dict(struct rctx *c, struct buf *b, const struct dict *d,
                     const struct json_opts *o, int depth)
{
    if (d->n == 0) return puts_(c, b, "{}");
    size_t *order = NULL;
    if (o->sort_keys && d->n > 1) { /* insertion sort of indices by key (stable) */
        order = tmpl_arena_alloc(&c->ar, d->n * sizeof *order);
        if (!order) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        for (size_t i = 0; i < d->n; i++) {
            size_t j = i;
            while (j > 0) {
                int r;
                if (tmpl_v_cmp(c, d->e[order[j - 1]].k, d->e[i].k, &r)) return -1;
                if (r <= 0) break;
                order[j] = order[j - 1];
                j--;
            }
            order[j] = i;
            if (tmpl_rt_steps(c, i / 8)) return -1;
        }
    }
    if (puts_(c, b, "{")) return -1;
    if (o->indent && json_newline(c, b, o, depth + 1)) return -1;
    for (size_t i = 0; i < d->n; i++) {
        const struct kv *e = &d->e[order ? order[i] : i];
        if (i) {
            if (put(c, b, o->item_sep, o->item_sep_len)) return -1;
            if (o->indent && json_newline(c, b, o, depth + 1)) return -1;
        }
        if (json_key(c, b, e->k, o) || put(c, b, o->key_sep, o->key_sep_len) ||
            tmpl_v_tojson(c, b, e->v, o, depth + 1))
            return -1;
    }
    if (o->indent && json_newline(c, b, o, depth)) return -1;
    return puts_(c, b, "}");
}

int tmpl_v_tojson(struct rctx *c, struct buf *b, struct val v, const struct json_opts *o, int depth)
{
    if (depth > VAL_MAX_DEPTH) return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "value nested too deeply");
    if (tmpl_rt_steps(c, 1)) return -1;
    char tmp[64];
    switch (v.t) {
    case VT_NONE: return puts_(c, b, "null");
    case VT_BOOL: return puts_(c, b, v.u.b ? "true" : "false");
    case VT_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); return puts_(c, b, tmp);
    case VT_FLOAT:
        if (isnan(v.u.d)) return puts_(c, b, "NaN");
        if (isinf(v.u.d)) return puts_(c, b, v.u.d < 0 ? "-Infinity" : "Infinity");
        tmpl_fmt_float(tmp, sizeof tmp, v.u.d);
        return puts_(c, b, tmp);
    case VT_STR:
        if (tmpl_rt_steps(c, v.u.s->len / 64)) return -1;
        return json_str(c, b, v.u.s, o->ensure_ascii);
    case VT_LIST:
        if (v.f == LK_LIST || v.f == LK_TUPLE) {
            const struct list *l = v.u.l;
            if (l->n == 0) return puts_(c, b, "[]");
            if (puts_(c, b, "[")) return -1;
            if (o->indent && json_newline(c, b, o, depth + 1)) return -1;
            for (size_t i = 0; i < l->n; i++) {
                if (i) {
                    if (put(c, b, o->item_sep, o->item_sep_len)) return -1;
                    if (o->indent && json_newline(c, b, o, depth + 1)) return -1;
                }
                if (tmpl_v_tojson(c, b, l->v[i], o, depth + 1)) return -1;
            }
            if (o->indent && json_newline(c, b, o, depth)) return -1;
            return puts_(c, b, "]");
        }
        break;
    case VT_DICT: return json_dict(c, b, v.u.m, o, depth);
    default: break;
    }
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "Object of type %s is not JSON serializable",
                  tmpl_type_name(v));
}

int tmpl_v_from_json(struct rctx *c, const json_t *j, struct val *out, int depth)
{
    if (depth > VAL_MAX_DEPTH)
        return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "input JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        struct dict *d = tmpl_dict_new(c, json_object_size(j));
        if (!d) return -1;
        const char *k;
        json_t *v;
        void *it = json_object_iter((json_t *)j);
        for (; it; it = json_object_iter_next((json_t *)j, it)) {
            k = json_object_iter_key(it);
            v = json_object_iter_value(it);
            struct val kv = tmpl_v_str(c, k, strlen(k)), vv;
            if (kv.t != VT_STR || tmpl_v_from_json(c, v, &vv, depth + 1) || tmpl_dict_set(c, d, kv, vv))
                return -1;
        }
        *out = v_dictv(d);
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        struct list *l = tmpl_list_new(c, n);
        if (!l) return -1;
        for (size_t i = 0; i < n; i++)
            if (tmpl_v_from_json(c, json_array_get(j, i), &l->v[i], depth + 1)) return -1;
        l->n = n;
        *out = v_listv(l, LK_LIST);
        return 0;
    }
    case JSON_STRING:
        *out = tmpl_v_str(c, json_string_value(j), json_string_length(j));
        return out->t == VT_STR ? 0 : -1;
    case JSON_INTEGER: *out = v_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = v_float(json_real_value(j)); return 0;
    case JSON_TRUE: *out = v_bool(true); return 0;
    case JSON_FALSE: *out = v_bool(false); return 0;
    default: *out = v_none(); return 0;
    }
}

/* ---- escaping ---- */

int tmpl_html_escape_to(struct buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *r = NULL;
        switch (s[i]) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&#34;"; break;
        case '\'': r = "&#39;"; break;
        default: continue;
        }
        int rc = tmpl_buf_put(b, s + run, i - run);
        if (!rc) rc = tmpl_buf_put(b, r, strlen(r));
        if (rc) return rc;
        run = i + 1;
    }
    return tmpl_buf_put(b, s + run, n - run);
}

int tmpl_v_escape(struct rctx *c, struct val v, struct val *out)
{
    if (v.t == VT_STR && v.f) {
        *out = v;
        return 0;
    }
    struct val s;
    if (tmpl_v_to_str(c, v, &s)) return -1;
    if (!memchr(s.u.s->b, '&', s.u.s->len) && !memchr(s.u.s->b, '<', s.u.s->len) &&
        !memchr(s.u.s->b, '>', s.u.s->len) && !memchr(s.u.s->b, '"', s.u.s->len) &&
        !memchr(s.u.s->b, '\'', s.u.s->len)) {
        *out = v_strv(s.u.s, true);
        return 0;
    }
    struct buf b = {.limit = c->max_output};
    int rc = tmpl_html_escape_to(&b, s.u.s->b, s.u.s->len);
    if (rc) {
        tmpl_buf_free(&b);
        return tmpl_rt_err(c, rc == ERR_LIMIT ? ERR_LIMIT : ERR_NOMEM, "MemoryError", "string too long");
    }
    *out = tmpl_buf_take(c, &b, true);
    tmpl_buf_free(&b);
    return out->t == VT_STR ? 0 : -1;
}

/* ---- iteration, len, in ---- */

int tmpl_v_iter_list(struct rctx *c, struct val v, struct list **out)
{
    struct list *l;
    switch (v.t) {
    case VT_UNDEF: return (*out = tmpl_list_new(c, 0)) ? 0 : -1;
    case VT_LIST: {
        struct list *src = v.u.l;
        size_t from = v_is_gen(v) ? src->pos : 0, n = src->n - from;
        if (!(l = tmpl_list_new(c, n))) return -1;
        if (n) vcopy(l->v, src->v + from, n);
        l->n = n;
        if (v_is_gen(v)) src->pos = src->n;
        break;
    }
    case VT_DICT: {
        struct dict *d = v.u.m;
        if (!(l = tmpl_list_new(c, d->n))) return -1;
        for (size_t i = 0; i < d->n; i++) l->v[i] = d->e[i].k;
        l->n = d->n;
        break;
    }
    case VT_STR: {
        struct str *s = v.u.s;
        if (!(l = tmpl_list_new(c, (size_t)tmpl_str_ncp(s)))) return -1;
        for (size_t i = 0; i < s->len;) {
            size_t adv;
            tmpl_utf8_dec(s->b + i, s->len - i, &adv);
            struct val ch = tmpl_v_str(c, s->b + i, adv); /* iterating a Markup gives plain str */
            if (ch.t != VT_STR) return -1;
            l->v[l->n++] = ch;
            i += adv;
        }
        break;
    }
    default:
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object is not iterable", tmpl_type_name(v));
    }
    if (tmpl_rt_steps(c, l->n / 8)) return -1;
    *out = l;
    return 0;
}

int tmpl_v_len(struct rctx *c, struct val v, int64_t *out)
{
    switch (v.t) {
    case VT_UNDEF: *out = 0; return 0;
    case VT_STR: *out = tmpl_str_ncp(v.u.s); return 0;
    case VT_LIST:
        if (!v_is_gen(v)) {
            *out = (int64_t)v.u.l->n;
            return 0;
        }
        break;
    case VT_DICT: *out = (int64_t)v.u.m->n; return 0;
    default: break;
    }
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "object of type '%s' has no len()", tmpl_type_name(v));
}

int tmpl_v_contains(struct rctx *c, struct val hay, struct val needle, bool *out)
{
    switch (hay.t) {
    case VT_STR:
        if (needle.t != VT_STR)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                          "'in <string>' requires string as left operand, not %s",
                          tmpl_type_name(needle));
        if (tmpl_rt_steps(c, hay.u.s->len / 64)) return -1;
        if (needle.u.s->len == 0) *out = true;
        else if (needle.u.s->len > hay.u.s->len) *out = false;
        else *out = mem_find(hay.u.s->b, hay.u.s->len, needle.u.s->b, needle.u.s->len) != NULL;
        return 0;
    case VT_LIST: {
        struct list *l = hay.u.l;
        size_t from = v_is_gen(hay) ? l->pos : 0;
        *out = false;
        for (size_t i = from; i < l->n; i++) {
            if (tmpl_v_eq(l->v[i], needle)) {
                *out = true;
                if (v_is_gen(hay)) l->pos = i + 1;
                return tmpl_rt_steps(c, (i - from) / 8);
            }
        }
        if (v_is_gen(hay)) l->pos = l->n;
        return tmpl_rt_steps(c, (l->n - from) / 8);
    }
    case VT_DICT: {
        int rc;
        *out = tmpl_dict_get(c, hay.u.m, needle, &rc) != NULL;
        return rc;
    }
    case VT_UNDEF: *out = false; return 0;
    default:
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "argument of type '%s' is not iterable",
                      tmpl_type_name(hay));
    }
}
