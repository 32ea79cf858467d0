/* tmpl_filt: jinja2 3.1's built-in filters and tests (filters.py, tests.py) as the
 * transformers environment has them: `tojson` is transformers' own (json.dumps with
 * ensure_ascii=False, keys in insertion order, no HTML escaping), no autoescaping.
 *
 * Python semantics that decide bytes: filters that jinja2 writes as generators (select, reject,
 * map, unique, items, batch, slice) return generator-flavoured lists (tmpl_truthy even when empty,
 * no len(), consumed when iterated); `reverse` of a list is an iterator; min/max/first/last of
 * nothing is an undefined value; `round` is Python's (ties to even on the exact binary value);
 * `indent` splits on every Unicode line boundary.
 *
 * Filters jinja2 has but chat templates do not use (filesizeformat, pprint, random, urlencode,
 * urlize, wordwrap, xmlattr, groupby, striptags) are a parse error that says "not supported". */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const g_filt_names[F_COUNT_] = {
    [F_ABS] = "abs",           [F_ATTR] = "attr",           [F_BATCH] = "batch",
    [F_CAPITALIZE] = "capitalize", [F_CENTER] = "center",   [F_COUNT] = "count",
    [F_D] = "d",               [F_DEFAULT] = "default",     [F_DICTSORT] = "dictsort",
    [F_E] = "e",               [F_ESCAPE] = "escape",       [F_FIRST] = "first",
    [F_FLOAT] = "float",       [F_FORCEESCAPE] = "forceescape", [F_FORMAT] = "format",
    [F_INDENT] = "indent",     [F_INT] = "int",             [F_ITEMS] = "items",
    [F_JOIN] = "join",         [F_LAST] = "last",           [F_LENGTH] = "length",
    [F_LIST] = "list",         [F_LOWER] = "lower",         [F_MAP] = "map",
    [F_MAX] = "max",           [F_MIN] = "min",             [F_REJECT] = "reject",
    [F_REJECTATTR] = "rejectattr", [F_REPLACE] = "replace", [F_REVERSE] = "reverse",
    [F_ROUND] = "round",       [F_SAFE] = "safe",           [F_SELECT] = "select",
    [F_SELECTATTR] = "selectattr", [F_SLICE] = "slice",     [F_SORT] = "sort",
    [F_STRING] = "string",     [F_SUM] = "sum",
    [F_TITLE] = "title",       [F_TOJSON] = "tojson",       [F_TRIM] = "trim",
    [F_TRUNCATE] = "truncate", [F_UNIQUE] = "unique",       [F_UPPER] = "upper",
    [F_WORDCOUNT] = "wordcount",
};
static const char *const g_filt_unsupported[] = {
    "filesizeformat", "pprint", "random", "urlencode", "urlize", "wordwrap", "xmlattr",
    "groupby", "striptags", NULL};

static const char *const g_test_names[T_COUNT_] = {
    [T_ODD] = "odd",         [T_EVEN] = "even",     [T_DIVISIBLEBY] = "divisibleby",
    [T_DEFINED] = "defined", [T_UNDEFINED] = "undefined", [T_FILTER] = "filter",
    [T_TEST] = "test",       [T_NONE] = "none",     [T_BOOLEAN] = "boolean",
    [T_FALSE] = "false",     [T_TRUE] = "true",     [T_INTEGER] = "integer",
    [T_FLOAT] = "float",     [T_LOWER] = "lower",   [T_UPPER] = "upper",
    [T_STRING] = "string",   [T_MAPPING] = "mapping", [T_NUMBER] = "number",
    [T_SEQUENCE] = "sequence", [T_ITERABLE] = "iterable", [T_CALLABLE] = "callable",
    [T_SAMEAS] = "sameas",   [T_ESCAPED] = "escaped", [T_IN] = "in",
    [T_EQ] = "eq",           [T_NE] = "ne",         [T_GT] = "gt",
    [T_GE] = "ge",           [T_LT] = "lt",         [T_LE] = "le",
};
static const struct {
    const char *name;
    enum test id;
} g_test_alias[] = {{"==", T_EQ},          {"equalto", T_EQ}, {"!=", T_NE},
                    {">", T_GT},           {"greaterthan", T_GT}, {">=", T_GE},
                    {"<", T_LT},           {"lessthan", T_LT}, {"<=", T_LE}};

static bool name_eq(const char *a, const char *s, size_t n)
{
    return a && strlen(a) == n && memcmp(a, s, n) == 0;
}

int tmpl_filt_lookup(const char *name, size_t len)
{
    for (int i = 0; g_filt_unsupported[i]; i++)
        if (name_eq(g_filt_unsupported[i], name, len)) return -2;
    for (int i = 0; i < F_COUNT_; i++)
        if (name_eq(g_filt_names[i], name, len)) return i;
    return -1;
}

int tmpl_test_lookup(const char *name, size_t len)
{
    for (int i = 0; i < T_COUNT_; i++)
        if (name_eq(g_test_names[i], name, len)) return i;
    for (size_t i = 0; i < sizeof g_test_alias / sizeof g_test_alias[0]; i++)
        if (name_eq(g_test_alias[i].name, name, len)) return (int)g_test_alias[i].id;
    return -1;
}

static int type_err(struct rctx *c, const char *fmt, const char *a)
{
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", fmt, a);
}

/* ---- attribute paths (make_attrgetter) ---- */

/* Look up "a.b.0" on item with getitem semantics; dflt replaces undefined values when given. */
static int attr_path(struct rctx *c, struct val item, struct val path, const struct val *dflt,
                     struct val *out)
{
    if (path.t != VT_STR) {
        if (path.t == VT_NONE) {
            *out = item;
            return 0;
        }
        int rc = tmpl_get_item(c, item, path, out);
        if (!rc && dflt && out->t == VT_UNDEF) *out = *dflt;
        return rc;
    }
    const char *s = path.u.s->b;
    size_t n = path.u.s->len, i = 0;
    struct val cur = item;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != '.') j++;
        bool digits = j > i;
        int64_t num = 0;
        for (size_t k = i; k < j && digits; k++) {
            if (s[k] < '0' || s[k] > '9' || num > INT64_MAX / 10 - 10) digits = false;
            else num = num * 10 + (s[k] - '0');
        }
        struct val key = digits ? v_int(num) : tmpl_v_str(c, s + i, j - i);
        if (key.t == VT_UNDEF) return -1;
        if (tmpl_get_item(c, cur, key, &cur)) return -1;
        if (dflt && cur.t == VT_UNDEF) cur = *dflt;
        if (j >= n) break;
        i = j + 1;
    }
    *out = cur;
    return 0;
}

static struct val gen_of(struct list *l) { return v_listv(l, LK_GEN); }

static bool lower_key(struct rctx *c, struct val v, struct val *out)
{
    if (v.t != VT_STR) {
        *out = v;
        return true;
    }
    struct val a[1] = {v};
    struct method m = {.self = v, .m = M_S_LOWER};
    return tmpl_call_method(c, &m, a, 0, NULL, NULL, 0, out) == 0;
}

/* ---- sort helpers (stable merge sort on keys) ---- */

struct keyed {
    struct val key, item;
};

static int keyed_cmp(struct rctx *c, const struct keyed *a, const struct keyed *b, bool rev,
                     int *out)
{
    int r;
    if (tmpl_v_cmp(c, a->key, b->key, &r)) return -1;
    if (r == 2) r = 0;
    *out = rev ? -r : r;
    return 0;
}

static int msort(struct rctx *c, struct keyed *v, struct keyed *tmp, size_t n, bool rev)
{
    if (n < 2) return 0;
    size_t h = n / 2;
    if (msort(c, v, tmp, h, rev) || msort(c, v + h, tmp, n - h, rev)) return -1;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r;
        if (keyed_cmp(c, &v[j], &v[i], rev, &r)) return -1;
        tmp[k++] = r < 0 ? v[j++] : v[i++];
    }
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
    return tmpl_rt_steps(c, n / 4);
}

/* Python's sorted(): stable, reverse keeps stability (equal keys keep their order); the items
 * in their new order as a list. */
static int sort_keyed(struct rctx *c, struct keyed *v, size_t n, bool rev, struct val *out)
{
    struct keyed *tmp = tmpl_arena_alloc(&c->ar, (n ? n : 1) * sizeof *tmp);
    if (!tmp) return tmpl_rt_oom(c);
    if (msort(c, v, tmp, n, rev)) return -1;
    struct list *r = tmpl_list_new(c, n);
    if (!r) return -1;
    for (size_t i = 0; i < n; i++) r->v[i] = v[i].item;
    r->n = n;
    *out = v_listv(r, LK_LIST);
    return 0;
}

/* ---- individual filters ---- */

static int f_default(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct val dflt = a[0].t == VT_UNDEF ? tmpl_v_cstr(c, "") : a[0];
    bool boolean = a[1].t != VT_UNDEF && tmpl_truthy(a[1]);
    *out = (v.t == VT_UNDEF || (boolean && !tmpl_truthy(v))) ? dflt : v;
    return 0;
}

static int f_join(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    struct buf b = {.limit = c->max_output};
    struct val sep = a[0];
    if (sep.t == VT_UNDEF) sep = tmpl_v_cstr(c, "");
    for (size_t i = 0; i < l->n; i++) {
        struct val item = l->v[i];
        if (a[1].t != VT_UNDEF && a[1].t != VT_NONE && attr_path(c, item, a[1], NULL, &item)) {
            tmpl_buf_free(&b);
            return -1;
        }
        if ((i && tmpl_v_str_to(c, &b, sep)) || tmpl_v_str_to(c, &b, item)) {
            tmpl_buf_free(&b);
            return -1;
        }
    }
    return tmpl_rt_take(c, &b, false, out);
}

static bool is_scalar_kind(struct val v)
{
    return v.t == VT_NONE || v.t == VT_BOOL || v.t == VT_INT || v.t == VT_FLOAT;
}

static int f_first_last(struct rctx *c, int fid, struct val v, struct val *out)
{
    if (fid == F_LAST && v_is_gen(v))
        return type_err(c, "'%s' object is not reversible", tmpl_type_name(v));
    if (fid == F_LAST && (v.t == VT_NS || is_scalar_kind(v)))
        return type_err(c, "'%s' object is not reversible", tmpl_type_name(v));
    if (v.t == VT_LIST && v_is_gen(v)) { /* first of a generator consumes one item */
        struct list *l = v.u.l;
        if (l->pos < l->n) {
            *out = l->v[l->pos++];
            return 0;
        }
        *out = tmpl_v_undef_hint(c, "No first item, sequence was empty.");
        return 0;
    }
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    if (l->n == 0)
        *out = tmpl_v_undef_hint(c, fid == F_FIRST ? "No first item, sequence was empty."
                                              : "No last item, sequence was empty.");
    else
        *out = l->v[fid == F_FIRST ? 0 : l->n - 1];
    return 0;
}

static int f_minmax(struct rctx *c, bool is_max, struct val v, const struct val *a,
                    struct val *out)
{
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    if (l->n == 0) {
        *out = tmpl_v_undef_hint(c, "No aggregated item, sequence was empty.");
        return 0;
    }
    bool cs = a[0].t != VT_UNDEF && tmpl_truthy(a[0]);
    size_t best = 0;
    struct val bk;
    for (size_t i = 0; i < l->n; i++) {
        struct val k = l->v[i];
        if (a[1].t != VT_UNDEF && a[1].t != VT_NONE && attr_path(c, k, a[1], NULL, &k)) return -1;
        if (!cs && !lower_key(c, k, &k)) return -1;
        if (i == 0) {
            bk = k;
            continue;
        }
        int r;
        if (tmpl_v_cmp(c, k, bk, &r)) return -1;
        if ((is_max && r == 1) || (!is_max && r == -1)) {
            best = i;
            bk = k;
        }
    }
    *out = l->v[best];
    return 0;
}

static int f_sort(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    bool rev = a[0].t != VT_UNDEF && tmpl_truthy(a[0]);
    bool cs = a[1].t != VT_UNDEF && tmpl_truthy(a[1]);
    struct keyed *kv = tmpl_arena_alloc(&c->ar, (l->n ? l->n : 1) * sizeof *kv);
    if (!kv) return tmpl_rt_oom(c);
    /* attribute may be "a,b": the key is then the list of each */
    struct list *attrs = NULL;
    if (a[2].t == VT_STR && memchr(a[2].u.s->b, ',', a[2].u.s->len)) {
        struct method m = {.self = a[2], .m = M_S_SPLIT};
        struct val sep = tmpl_v_cstr(c, ","), parts;
        if (tmpl_call_method(c, &m, &sep, 1, NULL, NULL, 0, &parts)) return -1;
        attrs = parts.u.l;
    }
    for (size_t i = 0; i < l->n; i++) {
        kv[i].item = l->v[i];
        struct val k = l->v[i];
        if (attrs) {
            struct list *kl = tmpl_list_new(c, attrs->n);
            if (!kl) return -1;
            for (size_t j = 0; j < attrs->n; j++) {
                struct val x;
                if (attr_path(c, l->v[i], attrs->v[j], NULL, &x)) return -1;
                if (!cs && !lower_key(c, x, &x)) return -1;
                kl->v[kl->n++] = x;
            }
            k = v_listv(kl, LK_LIST);
        } else {
            if (a[2].t != VT_UNDEF && a[2].t != VT_NONE && attr_path(c, k, a[2], NULL, &k))
                return -1;
            if (!cs && !lower_key(c, k, &k)) return -1;
        }
        kv[i].key = k;
    }
    return sort_keyed(c, kv, l->n, rev, out);
}

static int f_dictsort(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    if (v.t != VT_DICT && v.t != VT_NS) {
        if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
        return tmpl_rt_err(c, ERR_TEMPLATE, "AttributeError", "'%s' object has no attribute 'items'",
                      tmpl_type_name(v));
    }
    bool cs = a[0].t != VT_UNDEF && tmpl_truthy(a[0]);
    int pos = 0;
    if (a[1].t != VT_UNDEF) {
        if (a[1].t == VT_STR && a[1].u.s->len == 5 && !memcmp(a[1].u.s->b, "value", 5)) pos = 1;
        else if (!(a[1].t == VT_STR && a[1].u.s->len == 3 && !memcmp(a[1].u.s->b, "key", 3)))
            return tmpl_rt_err(c, ERR_TEMPLATE, "FilterArgumentError",
                          "You can only sort by either \"key\" or \"value\"");
    }
    bool rev = a[2].t != VT_UNDEF && tmpl_truthy(a[2]);
    struct dict *d = v.u.m;
    struct keyed *kv = tmpl_arena_alloc(&c->ar, (d->n ? d->n : 1) * sizeof *kv);
    if (!kv) return tmpl_rt_oom(c);
    for (size_t i = 0; i < d->n; i++) {
        struct list *pair = tmpl_list_new(c, 2);
        if (!pair) return -1;
        pair->v[0] = d->e[i].k;
        pair->v[1] = d->e[i].v;
        pair->n = 2;
        kv[i].item = v_listv(pair, LK_TUPLE);
        kv[i].key = pair->v[pos];
        if (!cs && !lower_key(c, kv[i].key, &kv[i].key)) return -1;
    }
    return sort_keyed(c, kv, d->n, rev, out);
}

static int f_items(struct rctx *c, struct val v, struct val *out)
{
    struct list *r;
    if (v.t == VT_UNDEF) {
        if (!(r = tmpl_list_new(c, 0))) return -1;
        *out = gen_of(r);
        return 0;
    }
    if (v.t != VT_DICT) return type_err(c, "Can only get item pairs from a mapping.%s", "");
    struct dict *d = v.u.m;
    if (!(r = tmpl_list_new(c, d->n))) return -1;
    for (size_t i = 0; i < d->n; i++) {
        struct list *pair = tmpl_list_new(c, 2);
        if (!pair) return -1;
        pair->v[0] = d->e[i].k;
        pair->v[1] = d->e[i].v;
        pair->n = 2;
        r->v[r->n++] = v_listv(pair, LK_TUPLE);
    }
    *out = gen_of(r);
    return 0;
}

/* select / reject / selectattr / rejectattr */
static int f_select(struct rctx *c, int fid, struct val v, struct val *args, size_t nargs,
                    struct val *out)
{
    bool attr = fid == F_SELECTATTR || fid == F_REJECTATTR;
    bool want = fid == F_SELECT || fid == F_SELECTATTR;
    struct list *r = tmpl_list_new(c, 0);
    if (!r) return -1;
    *out = gen_of(r);
    if (!tmpl_truthy(v)) return 0;
    if (attr && nargs < 1)
        return tmpl_rt_err(c, ERR_TEMPLATE, "FilterArgumentError", "Missing parameter for attribute name");
    size_t off = attr ? 1 : 0;
    int tid = -1;
    if (nargs > off) {
        if (args[off].t != VT_STR) return type_err(c, "test name must be a string, not %s", tmpl_type_name(args[off]));
        tid = tmpl_test_lookup(args[off].u.s->b, args[off].u.s->len);
        if (tid < 0)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TemplateRuntimeError", "No test named '%s'.",
                          args[off].u.s->b);
    }
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    for (size_t i = 0; i < l->n; i++) {
        struct val x = l->v[i];
        if (attr && attr_path(c, x, args[0], NULL, &x)) return -1;
        bool ok;
        if (tid >= 0) {
            if (tmpl_apply_test(c, tid, x, args + off + 1, nargs - off - 1, &ok)) return -1;
        } else {
            ok = tmpl_truthy(x);
        }
        if (ok == want && tmpl_list_push(c, r, l->v[i])) return -1;
    }
    return 0;
}

static int f_map(struct rctx *c, struct val v, struct val *args, size_t nargs, struct str **kwn,
                 struct val *kwv, size_t nkw, struct val *out)
{
    struct list *l, *r;
    if (!(r = tmpl_list_new(c, 0))) return -1;
    *out = gen_of(r);
    if (!tmpl_truthy(v)) return 0; /* jinja2: `if value:` before anything else */
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    struct val attr = v_undef(), dflt = v_undef();
    bool by_attr = false;
    if (nargs == 0) {
        for (size_t i = 0; i < nkw; i++) {
            if (kwn[i]->len == 9 && !memcmp(kwn[i]->b, "attribute", 9)) attr = kwv[i], by_attr = true;
            else if (kwn[i]->len == 7 && !memcmp(kwn[i]->b, "default", 7)) dflt = kwv[i];
            else
                return tmpl_rt_err(c, ERR_TEMPLATE, "FilterArgumentError",
                              "Unexpected keyword argument '%s'", kwn[i]->b);
        }
        if (!by_attr)
            return tmpl_rt_err(c, ERR_TEMPLATE, "FilterArgumentError", "map requires a filter argument");
    }
    int fid = -1;
    if (!by_attr) {
        if (args[0].t != VT_STR) return type_err(c, "filter name must be a string, not %s", tmpl_type_name(args[0]));
        fid = tmpl_filt_lookup(args[0].u.s->b, args[0].u.s->len);
        if (fid < 0)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TemplateRuntimeError", "No filter named '%s'.",
                          args[0].u.s->b);
    }
    for (size_t i = 0; i < l->n; i++) {
        struct val x;
        if (by_attr) {
            if (attr_path(c, l->v[i], attr, dflt.t == VT_UNDEF || dflt.t == VT_NONE ? NULL : &dflt, &x))
                return -1;
        } else if (tmpl_apply_filter(c, fid, l->v[i], args + 1, nargs - 1, kwn, kwv, nkw, &x)) {
            return -1;
        }
        if (tmpl_list_push(c, r, x)) return -1;
    }
    return 0;
}

static int f_unique(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct list *l, *r, *seen;
    if (tmpl_v_iter_list(c, v, &l) || !(r = tmpl_list_new(c, 0)) || !(seen = tmpl_list_new(c, 0))) return -1;
    bool cs = a[0].t != VT_UNDEF && tmpl_truthy(a[0]);
    struct dict *set = tmpl_dict_new(c, 0);
    if (!set) return -1;
    for (size_t i = 0; i < l->n; i++) {
        struct val k = l->v[i];
        if (a[1].t != VT_UNDEF && a[1].t != VT_NONE && attr_path(c, k, a[1], NULL, &k)) return -1;
        if (!cs && !lower_key(c, k, &k)) return -1;
        int rc;
        if (tmpl_dict_get(c, set, k, &rc)) continue;
        if (rc || tmpl_dict_set(c, set, k, v_none()) || tmpl_list_push(c, r, l->v[i])) return -1;
    }
    *out = gen_of(r);
    return 0;
}

static int f_batch_slice(struct rctx *c, int fid, struct val v, const struct val *a,
                         struct val *out)
{
    struct list *l, *r;
    if (tmpl_v_iter_list(c, v, &l) || !(r = tmpl_list_new(c, 0))) return -1;
    if (a[0].t != VT_INT || a[0].u.i <= 0) {
        if (fid == F_BATCH && a[0].t == VT_INT)
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "range() arg 3 must not be zero");
        return type_err(c, "'%s' object cannot be interpreted as an integer", tmpl_type_name(a[0]));
    }
    size_t k = (size_t)a[0].u.i;
    bool fill = a[1].t != VT_UNDEF;
    if (fid == F_BATCH) {
        for (size_t i = 0; i < l->n; i += k) {
            struct list *b = tmpl_list_new(c, k);
            if (!b) return -1;
            for (size_t j = i; j < i + k && j < l->n; j++) b->v[b->n++] = l->v[j];
            while (fill && b->n < k) b->v[b->n++] = a[1];
            if (tmpl_list_push(c, r, v_listv(b, LK_LIST))) return -1;
        }
    } else { /* slice into k columns */
        size_t per = l->n / k, extra = l->n % k, off = 0;
        for (size_t s = 0; s < k; s++) {
            size_t start = off + 0, n = per + (s < extra);
            struct list *b = tmpl_list_new(c, n + 1);
            if (!b) return -1;
            for (size_t j = 0; j < n; j++) b->v[b->n++] = l->v[start + j];
            if (fill && s >= extra && extra) b->v[b->n++] = a[1];
            off += n;
            if (tmpl_list_push(c, r, v_listv(b, LK_LIST))) return -1;
        }
    }
    *out = gen_of(r);
    return 0;
}

/* int(str, base) as Python parses it; false if not a valid literal. */
static bool parse_pyint(const char *s, size_t n, int base, int64_t *out)
{
    size_t i = 0;
    while (i < n && tmpl_uni_isspace((unsigned char)s[i])) i++;
    while (n > i && tmpl_uni_isspace((unsigned char)s[n - 1])) n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i + 1 < n && s[i] == '0') {
        char p = (char)(s[i + 1] | 32);
        int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            base = pb;
            i += 2;
            if (i < n && s[i] == '_') i++;
        }
    }
    if (base == 0) base = 10;
    if (i >= n) return false;
    uint64_t acc = 0;
    bool prev_us = true;
    for (; i < n; i++) {
        if (s[i] == '_') {
            if (prev_us) return false;
            prev_us = true;
            continue;
        }
        int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0'
                : (s[i] | 32) >= 'a' && (s[i] | 32) <= 'z' ? (s[i] | 32) - 'a' + 10 : 99;
        if (d >= base) return false;
        if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        acc = acc * (uint64_t)base + (uint64_t)d;
        prev_us = false;
    }
    if (prev_us || acc > (uint64_t)INT64_MAX + neg) return false;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

/* float(str): strip, underscores between digits, inf/nan. */
static bool parse_pyfloat(const char *s, size_t n, double *out)
{
    size_t i = 0;
    while (i < n && tmpl_uni_isspace((unsigned char)s[i])) i++;
    while (n > i && tmpl_uni_isspace((unsigned char)s[n - 1])) n--;
    if (i >= n || n - i > 300) return false;
    char tmp[320];
    size_t w = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] == '_') {
            if (k == i || k + 1 >= n || !(s[k - 1] >= '0' && s[k - 1] <= '9') ||
                !(s[k + 1] >= '0' && s[k + 1] <= '9'))
                return false;
            continue;
        }
        if (s[k] == 'x' || s[k] == 'X' || s[k] == 'p' || s[k] == 'P') return false; /* no hex */
        tmp[w++] = s[k];
    }
    tmp[w] = 0;
    char *end;
    double d = strtod(tmp, &end);
    if (end != tmp + w || w == 0) return false;
    const char *p = tmp + (tmp[0] == '+' || tmp[0] == '-');
    if ((p[0] | 32) == 'i' && strcmp(p, "inf") && strcmp(p, "Inf") && strcmp(p, "INF") &&
        strcasecmp(p, "infinity"))
        return false;
    *out = d;
    return true;
}

static int f_int(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct val dflt = a[0].t == VT_UNDEF ? v_int(0) : a[0];
    int64_t base = 10;
    if (a[1].t == VT_INT) base = a[1].u.i;
    if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
    int64_t i;
    double d;
    switch (v.t) {
    case VT_INT: *out = v; return 0;
    case VT_BOOL: *out = v_int(v.u.b); return 0;
    case VT_FLOAT:
        if (isnan(v.u.d)) break;
        if (isinf(v.u.d) || fabs(v.u.d) >= 9.2e18)
            return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "cannot convert float infinity to integer");
        *out = v_int((int64_t)v.u.d);
        return 0;
    case VT_STR:
        if ((base == 0 || (base >= 2 && base <= 36)) &&
            parse_pyint(v.u.s->b, v.u.s->len, (int)base, &i)) {
            *out = v_int(i);
            return 0;
        }
        if (parse_pyfloat(v.u.s->b, v.u.s->len, &d) && !isnan(d)) {
            if (isinf(d) || fabs(d) >= 9.2e18)
                return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "cannot convert float infinity to integer");
            *out = v_int((int64_t)d);
            return 0;
        }
        break;
    default: break;
    }
    *out = dflt;
    return 0;
}

static int f_float(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct val dflt = a[0].t == VT_UNDEF ? v_float(0.0) : a[0];
    double d;
    switch (v.t) {
    case VT_UNDEF: return tmpl_undef_fail(c, v);
    case VT_FLOAT: *out = v; return 0;
    case VT_INT: *out = v_float((double)v.u.i); return 0;
    case VT_BOOL: *out = v_float(v.u.b); return 0;
    case VT_STR:
        if (parse_pyfloat(v.u.s->b, v.u.s->len, &d)) {
            *out = v_float(d);
            return 0;
        }
        break;
    default: break;
    }
    *out = dflt;
    return 0;
}

static int f_round(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    int64_t prec = 0;
    if (a[0].t == VT_INT) prec = a[0].u.i;
    else if (a[0].t == VT_BOOL) prec = a[0].u.b;
    else if (a[0].t != VT_UNDEF)
        return type_err(c, "'%s' object cannot be interpreted as an integer", tmpl_type_name(a[0]));
    const char *method = "common";
    if (a[1].t == VT_STR) method = a[1].u.s->b;
    bool common = !strcmp(method, "common"), ceil_ = !strcmp(method, "ceil"),
         floor_ = !strcmp(method, "floor");
    if (!common && !ceil_ && !floor_)
        return tmpl_rt_err(c, ERR_TEMPLATE, "FilterArgumentError", "method must be common, ceil or floor");
    if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
    if (v.t != VT_INT && v.t != VT_BOOL && v.t != VT_FLOAT)
        return type_err(c, "type %s doesn't define __round__ method", tmpl_type_name(v));
    if (prec > 300) prec = 300;
    if (prec < -300) prec = -300;
    if (common && v.t != VT_FLOAT) { /* round(int, n) stays an int */
        int64_t x = v.t == VT_BOOL ? v.u.b : v.u.i;
        if (prec >= 0) {
            *out = v_int(x);
            return 0;
        }
        double p = pow(10.0, (double)-prec);
        *out = v_int((int64_t)(nearbyint((double)x / p) * p));
        return 0;
    }
    double x = v.t == VT_FLOAT ? v.u.d : (double)(v.t == VT_BOOL ? v.u.b : v.u.i);
    double r;
    if (common) {
        if (!isfinite(x)) r = x;
        else if (prec >= 0) {
            char tmp[400];
            snprintf(tmp, sizeof tmp, "%.*f", (int)prec, x); /* exact, ties to even */
            r = strtod(tmp, NULL);
        } else {
            double p = pow(10.0, (double)-prec);
            r = nearbyint(x / p) * p;
        }
    } else {
        double p = pow(10.0, (double)prec);
        r = (ceil_ ? ceil(x * p) : floor(x * p)) / p;
    }
    *out = v_float(r);
    return 0;
}

static int f_indent(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
    if (v.t != VT_STR) return type_err(c, "unsupported operand type(s) for +=: '%s' and 'str'", tmpl_type_name(v));
    struct buf ind = {.limit = 4096};
    if (a[0].t == VT_STR) {
        if (tmpl_rt_bput(c, &ind, a[0].u.s->b, a[0].u.s->len)) return -1;
    } else {
        int64_t w = a[0].t == VT_UNDEF ? 4 : a[0].t == VT_INT ? a[0].u.i : a[0].t == VT_BOOL ? a[0].u.b : -1;
        if (a[0].t != VT_UNDEF && a[0].t != VT_INT && a[0].t != VT_BOOL)
            return type_err(c, "can't multiply sequence by non-int of type '%s'", tmpl_type_name(a[0]));
        for (int64_t i = 0; i < w && i < 4096; i++)
            if (tmpl_rt_bput(c, &ind, " ", 1)) return -1;
    }
    bool first = a[1].t != VT_UNDEF && tmpl_truthy(a[1]);
    bool blank = a[2].t != VT_UNDEF && tmpl_truthy(a[2]);
    const char *indp = ind.p ? ind.p : "";
    size_t indn = ind.n;
    /* lines of s + "\n" by splitlines() */
    const char *s = v.u.s->b;
    size_t n = v.u.s->len;
    struct buf b = {.limit = c->max_output};
    if (first && tmpl_rt_bput(c, &b, indp, indn)) goto fail;
    size_t i = 0, line = 0;
    for (;;) {
        /* find the end of the line starting at i (the appended "\n" ends the last one) */
        size_t j = i, next;
        for (;;) {
            if (j >= n) {
                next = n + 1;
                break;
            }
            size_t adv;
            uint32_t cp = tmpl_utf8_dec(s + j, n - j, &adv);
            if (tmpl_uni_islinebreak(cp)) {
                next = j + adv + (cp == '\r' && j + 1 < n && s[j + 1] == '\n');
                break;
            }
            j += adv;
        }
        bool empty = j == i;
        if (line > 0) {
            if (tmpl_rt_bput(c, &b, "\n", 1)) goto fail;
            if ((blank || !empty) && tmpl_rt_bput(c, &b, indp, indn)) goto fail;
        }
        if (tmpl_rt_bput(c, &b, s + i, j - i)) goto fail;
        line++;
        if (next > n) break; /* the appended newline closed the last line */
        i = next;
    }
    tmpl_buf_free(&ind);
    if (tmpl_rt_steps(c, n / 64)) {
        tmpl_buf_free(&b);
        return -1;
    }
    return tmpl_rt_take(c, &b, v.f, out);
fail:
    tmpl_buf_free(&ind);
    return -1;
}

static int f_truncate(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct val s = v;
    int64_t length = a[0].t == VT_INT ? a[0].u.i : 255;
    bool kill = a[1].t != VT_UNDEF && tmpl_truthy(a[1]);
    struct val end = a[2].t == VT_STR ? a[2] : tmpl_v_cstr(c, "...");
    int64_t leeway = a[3].t == VT_INT ? a[3].u.i : 5;
    int64_t elen = tmpl_str_ncp(end.u.s), slen;
    if (tmpl_v_len(c, v, &slen)) return -1; /* jinja2 takes len(s) of whatever it is given */
    if (length < elen)
        return tmpl_rt_err(c, ERR_TEMPLATE, "AssertionError", "expected length >= %lld, got %lld",
                      (long long)elen, (long long)length);
    if (leeway < 0)
        return tmpl_rt_err(c, ERR_TEMPLATE, "AssertionError", "expected leeway >= 0, got %lld",
                      (long long)leeway);
    if (slen <= length + leeway) {
        *out = s;
        return 0;
    }
    if (v.t != VT_STR)
        return tmpl_rt_err(c, ERR_TEMPLATE, kill ? "TypeError" : "AttributeError",
                      kill ? "can only concatenate %s (not \"str\") to %s"
                           : "'%s' object has no attribute 'rsplit'%s",
                      tmpl_type_name(v), kill ? tmpl_type_name(v) : "");
    size_t cut = tmpl_utf8_off(s.u.s, length - elen);
    if (!kill) { /* rsplit(" ", 1)[0] */
        size_t k = cut;
        while (k > 0 && s.u.s->b[k - 1] != ' ') k--;
        if (k > 0) cut = k - 1;
    }
    struct buf b = {.limit = c->max_output};
    if (tmpl_rt_bput(c, &b, s.u.s->b, cut) || tmpl_rt_bput(c, &b, end.u.s->b, end.u.s->len)) return -1;
    return tmpl_rt_take(c, &b, false, out);
}

static int f_wordcount(struct rctx *c, struct val v, struct val *out)
{
    struct val s;
    if (tmpl_v_to_str(c, v, &s)) return -1;
    int64_t words = 0;
    bool in = false;
    for (size_t i = 0; i < s.u.s->len;) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s.u.s->b + i, s.u.s->len - i, &adv);
        bool w = cp == '_' || tmpl_uni_isalpha(cp) || tmpl_uni_isdigit(cp);
        if (w && !in) words++;
        in = w;
        i += adv;
    }
    *out = v_int(words);
    return 0;
}

static int f_title(struct rctx *c, struct val v, struct val *out)
{
    struct val s;
    if (tmpl_v_to_str(c, v, &s)) return -1;
    struct buf b = {.limit = c->max_output};
    bool sep_prev = true; /* segments split at runs of [-\s({\[<] */
    bool seg_start = true;
    for (size_t i = 0; i < s.u.s->len;) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s.u.s->b + i, s.u.s->len - i, &adv);
        bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || tmpl_uni_isspace(cp);
        if (sep != sep_prev) seg_start = true;
        sep_prev = sep;
        uint32_t o = seg_start ? tmpl_uni_upper(cp) : tmpl_uni_lower(cp);
        seg_start = false;
        char tmp[4];
        if (tmpl_rt_bput(c, &b, tmp, tmpl_utf8_enc(o, tmp))) return -1;
        i += adv;
    }
    return tmpl_rt_take(c, &b, s.f, out);
}

static int f_tojson(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct json_opts o = {.ensure_ascii = a[0].t != VT_UNDEF && tmpl_truthy(a[0]),
                          .sort_keys = a[3].t != VT_UNDEF && tmpl_truthy(a[3])};
    char spaces[64];
    struct val ind = a[1];
    if (ind.t == VT_STR) {
        o.indent = ind.u.s->b;
        o.indent_len = ind.u.s->len;
    } else if (ind.t == VT_INT || ind.t == VT_BOOL) {
        int64_t w = ind.t == VT_BOOL ? ind.u.b : ind.u.i;
        if (w > (int64_t)sizeof spaces) return tmpl_rt_err(c, ERR_LIMIT, "ValueError", "indent too large");
        if (w < 0) w = 0;
        memset(spaces, ' ', (size_t)w);
        o.indent = spaces;
        o.indent_len = (size_t)w;
    } else if (ind.t != VT_UNDEF && ind.t != VT_NONE) {
        return type_err(c, "can't multiply sequence by non-int of type '%s'", tmpl_type_name(ind));
    }
    o.item_sep = o.indent ? "," : ", ";
    o.key_sep = ": ";
    if (a[2].t != VT_UNDEF && a[2].t != VT_NONE) {
        struct val sp = a[2];
        if (sp.t != VT_LIST || sp.u.l->n != 2 || sp.u.l->v[0].t != VT_STR || sp.u.l->v[1].t != VT_STR)
            return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "separators must be a pair of strings");
        o.item_sep = sp.u.l->v[0].u.s->b;
        o.item_sep_len = sp.u.l->v[0].u.s->len;
        o.key_sep = sp.u.l->v[1].u.s->b;
        o.key_sep_len = sp.u.l->v[1].u.s->len;
    } else {
        o.item_sep_len = strlen(o.item_sep);
        o.key_sep_len = strlen(o.key_sep);
    }
    struct buf b = {.limit = c->max_output};
    if (tmpl_v_tojson(c, &b, v, &o, 0)) {
        tmpl_buf_free(&b);
        return -1;
    }
    return tmpl_rt_take(c, &b, false, out);
}

static int f_sum(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    struct val acc = a[1].t == VT_UNDEF ? v_int(0) : a[1];
    if (acc.t == VT_STR) return type_err(c, "sum() can't sum strings [use ''.join(seq) instead]%s", "");
    for (size_t i = 0; i < l->n; i++) {
        struct val x = l->v[i];
        if (a[0].t != VT_UNDEF && a[0].t != VT_NONE && attr_path(c, x, a[0], NULL, &x)) return -1;
        if (tmpl_binop(c, B_ADD, acc, x, &acc)) return -1;
    }
    *out = acc;
    return 0;
}

static int f_center(struct rctx *c, struct val v, const struct val *a, struct val *out)
{
    struct val s;
    if (tmpl_v_to_str(c, v, &s)) return -1;
    struct method m = {.self = s, .m = M_S_CENTER};
    struct val w = a[0].t == VT_UNDEF ? v_int(80) : a[0];
    return tmpl_call_method(c, &m, &w, 1, NULL, NULL, 0, out);
}

static int f_reverse(struct rctx *c, struct val v, struct val *out)
{
    if (v.t == VT_STR) {
        struct buf b = {.limit = c->max_output};
        const struct str *s = v.u.s;
        for (size_t i = s->len; i > 0;) {
            size_t st = i - 1;
            while (st > 0 && ((unsigned char)s->b[st] & 0xc0) == 0x80) st--;
            if (tmpl_rt_bput(c, &b, s->b + st, i - st)) return -1;
            i = st;
        }
        return tmpl_rt_take(c, &b, v.f, out);
    }
    struct list *l;
    if (tmpl_v_iter_list(c, v, &l)) return -1;
    for (size_t i = 0; i < l->n / 2; i++) {
        struct val t = l->v[i];
        l->v[i] = l->v[l->n - 1 - i];
        l->v[l->n - 1 - i] = t;
    }
    /* a list or dict gives an iterator; a generator gives a list */
    *out = v_listv(l, v_is_gen(v) ? LK_LIST : LK_REVIT);
    return 0;
}

/* Filters that call a str method on soft_str(value). */
static int str_meth(struct rctx *c, enum meth m, struct val v, struct val *args, size_t nargs,
                    struct val *out)
{
    struct val s;
    if (tmpl_v_to_str(c, v, &s)) return -1;
    struct method bm = {.self = s, .m = m};
    return tmpl_call_method(c, &bm, args, nargs, NULL, NULL, 0, out);
}

/* The filter argument names (jinja2's signatures, after the value). */
static const char *const *filt_params(int fid, size_t *n)
{
    static const char *const p_default[] = {"default_value", "boolean"};
    static const char *const p_join[] = {"d", "attribute"};
    static const char *const p_minmax[] = {"case_sensitive", "attribute"};
    static const char *const p_sort[] = {"reverse", "case_sensitive", "attribute"};
    static const char *const p_dictsort[] = {"case_sensitive", "by", "reverse"};
    static const char *const p_unique[] = {"case_sensitive", "attribute"};
    static const char *const p_batch[] = {"linecount", "fill_with"};
    static const char *const p_slice[] = {"slices", "fill_with"};
    static const char *const p_int[] = {"default", "base"};
    static const char *const p_float[] = {"default"};
    static const char *const p_round[] = {"precision", "method"};
    static const char *const p_indent[] = {"width", "first", "blank"};
    static const char *const p_truncate[] = {"length", "killwords", "end", "leeway"};
    static const char *const p_tojson[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    static const char *const p_sum[] = {"attribute", "start"};
    static const char *const p_center[] = {"width"};
    static const char *const p_trim[] = {"chars"};
    static const char *const p_replace[] = {"old", "new", "count"};
    static const char *const p_attr[] = {"name"};
    static const char *const p_none[] = {NULL};
#define R(a) (*n = sizeof(a) / sizeof(a[0]), a)
    switch (fid) {
    case F_D: case F_DEFAULT: return R(p_default);
    case F_JOIN: return R(p_join);
    case F_MIN: case F_MAX: return R(p_minmax);
    case F_SORT: return R(p_sort);
    case F_DICTSORT: return R(p_dictsort);
    case F_UNIQUE: return R(p_unique);
    case F_BATCH: return R(p_batch);
    case F_SLICE: return R(p_slice);
    case F_INT: return R(p_int);
    case F_FLOAT: return R(p_float);
    case F_ROUND: return R(p_round);
    case F_INDENT: return R(p_indent);
    case F_TRUNCATE: return R(p_truncate);
    case F_TOJSON: return R(p_tojson);
    case F_SUM: return R(p_sum);
    case F_CENTER: return R(p_center);
    case F_TRIM: return R(p_trim);
    case F_REPLACE: return R(p_replace);
    case F_ATTR: return R(p_attr);
    default: *n = 0; return p_none;
    }
#undef R
}

static int f_replace(struct rctx *c, struct val v, struct val *a, struct val *out)
{
    struct val s, o, nw;
    if (tmpl_v_to_str(c, v, &s) || tmpl_v_to_str(c, a[0], &o) || tmpl_v_to_str(c, a[1], &nw)) return -1;
    s.f = o.f = nw.f = 0; /* str(s).replace(str(old), str(new)): plain */
    struct val args[3] = {o, nw, a[2].t == VT_UNDEF || a[2].t == VT_NONE ? v_int(-1) : a[2]};
    struct method m = {.self = s, .m = M_S_REPLACE};
    return tmpl_call_method(c, &m, args, 3, NULL, NULL, 0, out);
}

/* This dispatcher is one switch over every filter, each case a line or two. */
int tmpl_apply_filter(struct rctx *c, int fid, struct val v, struct val *args, size_t nargs,
                 struct str **kwn, struct val *kwv, size_t nkw, struct val *out)
{
    if (tmpl_rt_steps(c, 1)) return -1;
    /* variadic filters take their arguments as they come */
    switch (fid) {
    case F_MAP: return f_map(c, v, args, nargs, kwn, kwv, nkw, out);
    case F_SELECT: case F_REJECT: case F_SELECTATTR: case F_REJECTATTR:
        if (nkw) return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "keyword arguments to %s are not supported", g_filt_names[fid]);
        return f_select(c, fid, v, args, nargs, out);
    case F_FORMAT:
        if (nkw && nargs)
            return tmpl_rt_err(c, ERR_TEMPLATE, "FilterArgumentError",
                          "can't handle positional and keyword arguments at the same time");
        if (nkw) {
            struct dict *d = tmpl_dict_new(c, nkw);
            if (!d) return -1;
            for (size_t i = 0; i < nkw; i++)
                if (tmpl_dict_set(c, d, v_strv(kwn[i], false), kwv[i])) return -1;
            struct val s;
            if (tmpl_v_to_str(c, v, &s)) return -1;
            return tmpl_str_percent(c, s, v_dictv(d), out);
        } else {
            struct list *t = tmpl_list_new(c, nargs);
            if (!t) return -1;
            vcopy(t->v, args, nargs);
            t->n = nargs;
            struct val s;
            if (tmpl_v_to_str(c, v, &s)) return -1;
            return tmpl_str_percent(c, s, v_listv(t, LK_TUPLE), out);
        }
    default: break;
    }
    size_t np;
    const char *const *names = filt_params(fid, &np);
    struct val a[4];
    if (tmpl_bind_args(c, g_filt_names[fid], names, np, args, nargs, kwn, kwv, nkw, a)) return -1;
    switch (fid) {
    case F_ABS:
        if (v.t == VT_INT) {
            if (v.u.i == INT64_MIN) return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "integer overflow");
            *out = v_int(v.u.i < 0 ? -v.u.i : v.u.i);
        } else if (v.t == VT_BOOL) *out = v_int(v.u.b);
        else if (v.t == VT_FLOAT) *out = v_float(fabs(v.u.d));
        else if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
        else return type_err(c, "bad operand type for abs(): '%s'", tmpl_type_name(v));
        return 0;
    case F_ATTR:
        if (v.t == VT_UNDEF) return tmpl_undef_fail(c, v);
        if (a[0].t != VT_STR) {
            *out = v_undef();
            return 0;
        }
        if (v.t == VT_DICT) { /* attributes only: a dict's keys are not attributes */
            enum meth m = tmpl_meth_lookup(v, a[0].u.s->b, a[0].u.s->len);
            if (m == M_NONE) {
                *out = tmpl_v_undef_name(c, a[0], "dict object", false);
                return 0;
            }
        }
        return tmpl_get_attr(c, v, a[0].u.s, out);
    case F_BATCH: case F_SLICE: return f_batch_slice(c, fid, v, a, out);
    case F_CAPITALIZE: return str_meth(c, M_S_CAPITALIZE, v, NULL, 0, out);
    case F_CENTER: return f_center(c, v, a, out);
    case F_COUNT: case F_LENGTH: {
        int64_t n;
        if (tmpl_v_len(c, v, &n)) return -1;
        *out = v_int(n);
        return 0;
    }
    case F_D: case F_DEFAULT: return f_default(c, v, a, out);
    case F_DICTSORT: return f_dictsort(c, v, a, out);
    case F_E: case F_ESCAPE: return tmpl_v_escape(c, v, out);
    case F_FORCEESCAPE: {
        struct val s;
        if (tmpl_v_to_str(c, v, &s)) return -1;
        s.f = 0;
        return tmpl_v_escape(c, s, out);
    }
    case F_FIRST: case F_LAST: return f_first_last(c, fid, v, out);
    case F_FLOAT: return f_float(c, v, a, out);
    case F_INDENT: return f_indent(c, v, a, out);
    case F_INT: return f_int(c, v, a, out);
    case F_ITEMS: return f_items(c, v, out);
    case F_JOIN: return f_join(c, v, a, out);
    case F_LIST: {
        struct list *l;
        if (tmpl_v_iter_list(c, v, &l)) return -1;
        *out = v_listv(l, LK_LIST);
        return 0;
    }
    case F_LOWER: return str_meth(c, M_S_LOWER, v, NULL, 0, out);
    case F_UPPER: return str_meth(c, M_S_UPPER, v, NULL, 0, out);
    case F_MAX: case F_MIN: return f_minmax(c, fid == F_MAX, v, a, out);
    case F_REPLACE: return f_replace(c, v, a, out);
    case F_REVERSE: return f_reverse(c, v, out);
    case F_ROUND: return f_round(c, v, a, out);
    case F_SAFE: {
        struct val s;
        if (tmpl_v_to_str(c, v, &s)) return -1;
        s.f = 1;
        *out = s;
        return 0;
    }
    case F_SORT: return f_sort(c, v, a, out);
    case F_STRING: return tmpl_v_to_str(c, v, out);
    case F_SUM: return f_sum(c, v, a, out);
    case F_TITLE: return f_title(c, v, out);
    case F_TOJSON: return f_tojson(c, v, a, out);
    case F_TRIM: {
        struct val ch = a[0].t == VT_UNDEF ? v_none() : a[0];
        return str_meth(c, M_S_STRIP, v, &ch, 1, out);
    }
    case F_TRUNCATE: return f_truncate(c, v, a, out);
    case F_UNIQUE: return f_unique(c, v, a, out);
    case F_WORDCOUNT: return f_wordcount(c, v, out);
    default: return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "filter not supported");
    }
}

/* ---- tests ---- */

static int t_mod(struct rctx *c, struct val v, struct val m, int64_t want, bool *out)
{
    struct val r;
    if (tmpl_binop(c, B_MOD, v, m, &r)) return -1;
    *out = tmpl_v_eq(r, v_int(want));
    return 0;
}

static bool str_cased(struct rctx *c, struct val v, bool upper)
{
    struct val s;
    if (tmpl_v_to_str(c, v, &s)) return false;
    bool any = false;
    for (size_t i = 0; i < s.u.s->len;) {
        size_t adv;
        uint32_t cp = tmpl_utf8_dec(s.u.s->b + i, s.u.s->len - i, &adv);
        bool is_up = tmpl_uni_lower(cp) != cp, is_lo = tmpl_uni_upper(cp) != cp;
        if ((upper && is_lo) || (!upper && is_up)) return false;
        if (is_up || is_lo) any = true;
        i += adv;
    }
    return any;
}

int tmpl_apply_test(struct rctx *c, int tid, struct val v, struct val *args, size_t nargs, bool *out)
{
    if (tmpl_rt_steps(c, 1)) return -1;
    size_t need = (tid == T_DIVISIBLEBY || tid == T_SAMEAS || tid == T_IN || tid >= T_EQ) ? 1 : 0;
    if (nargs != need)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "test '%s' takes %zu argument(s), %zu given",
                      g_test_names[tid], need, nargs);
    int cmp;
    switch (tid) {
    case T_ODD: return t_mod(c, v, v_int(2), 1, out);
    case T_EVEN: return t_mod(c, v, v_int(2), 0, out);
    case T_DIVISIBLEBY: return t_mod(c, v, args[0], 0, out);
    case T_DEFINED: *out = v.t != VT_UNDEF; return 0;
    case T_UNDEFINED: *out = v.t == VT_UNDEF; return 0;
    case T_FILTER: *out = v.t == VT_STR && tmpl_filt_lookup(v.u.s->b, v.u.s->len) >= 0; return 0;
    case T_TEST: *out = v.t == VT_STR && tmpl_test_lookup(v.u.s->b, v.u.s->len) >= 0; return 0;
    case T_NONE: *out = v.t == VT_NONE; return 0;
    case T_BOOLEAN: *out = v.t == VT_BOOL; return 0;
    case T_FALSE: *out = v.t == VT_BOOL && !v.u.b; return 0;
    case T_TRUE: *out = v.t == VT_BOOL && v.u.b; return 0;
    case T_INTEGER: *out = v.t == VT_INT; return 0;
    case T_FLOAT: *out = v.t == VT_FLOAT; return 0;
    case T_LOWER: *out = str_cased(c, v, false); return c->err ? -1 : 0;
    case T_UPPER: *out = str_cased(c, v, true); return c->err ? -1 : 0;
    case T_STRING: *out = v.t == VT_STR; return 0;
    case T_MAPPING: *out = v.t == VT_DICT; return 0;
    case T_NUMBER: *out = v.t == VT_BOOL || v.t == VT_INT || v.t == VT_FLOAT; return 0;
    case T_SEQUENCE: /* len() and __getitem__ */
        *out = v.t == VT_UNDEF || v.t == VT_STR || v.t == VT_DICT ||
               (v.t == VT_LIST && (v.f == LK_LIST || v.f == LK_TUPLE));
        return 0;
    case T_ITERABLE:
        *out = v.t == VT_UNDEF || v.t == VT_STR || v.t == VT_LIST || v.t == VT_DICT || v.t == VT_LOOP;
        return 0;
    case T_CALLABLE:
        *out = v.t == VT_FUNC || v.t == VT_METHOD || v.t == VT_MACRO || v.t == VT_LOOP ||
               v.t == VT_UNDEF;
        return 0;
    case T_SAMEAS: {
        struct val o = args[0];
        if (v.t != o.t) *out = false;
        else if (v.t == VT_NONE || v.t == VT_UNDEF) *out = true;
        else if (v.t == VT_BOOL) *out = v.u.b == o.u.b;
        else if (v.t == VT_INT) *out = v.u.i == o.u.i && v.u.i >= -5 && v.u.i <= 256;
        else if (v.t == VT_FLOAT) *out = false;
        else if (v.t == VT_FUNC) *out = v.id == o.id;
        else *out = v.u.l == o.u.l && v.f == o.f;
        return 0;
    }
    case T_ESCAPED: *out = v.t == VT_STR && v.f; return 0;
    case T_IN: return tmpl_v_contains(c, args[0], v, out);
    case T_EQ: *out = tmpl_v_eq(v, args[0]); return 0;
    case T_NE: *out = !tmpl_v_eq(v, args[0]); return 0;
    default:
        if (tmpl_v_cmp(c, v, args[0], &cmp)) return -1;
        *out = tid == T_GT ? cmp == 1 : tid == T_GE ? (cmp == 1 || cmp == 0)
               : tid == T_LT ? cmp == -1 : (cmp == -1 || cmp == 0);
        return 0;
    }
}
