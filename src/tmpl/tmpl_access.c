/* tmpl_access: reading a part of a value: `x.name` and `x[key]` with jinja2's sandboxed
 * getattr/getitem rules, and `x[a:b:c]` with Python's slice rules.
 *
 * jinja2 tries the other way when the first fails (x.name falls back to x['name'] and x['k'] to
 * x.k), binds str/list/dict methods as attributes, and turns a missing name into an undefined
 * value that remembers what was missing (the error comes when it is used, in jinja2's words).
 * Item access on a dict with an unhashable key is swallowed as jinja2's getitem does. The loop
 * variable's attributes (index, revindex, cycle...) are read here too.
 *
 * Below the formatter (str.format fields read attributes and items), the methods, filters and
 * the evaluator; it calls only value-level code (tmpl_val, tmpl_mem, tmpl_uni, tmpl_err). */
#include "tmpl_int.h"

#include <string.h>

/* How jinja2's undefined messages name the object: "'dict object' has no attribute 'x'". */
static const char *objtype(struct val v)
{
    switch (v.t) {
    case VT_NONE: return "None";
    case VT_BOOL: return "bool object";
    case VT_INT: return "int object";
    case VT_FLOAT: return "float object";
    case VT_STR: return v.f ? "markupsafe.Markup object" : "str object";
    case VT_DICT: return "dict object";
    case VT_NS: return "jinja2.utils.Namespace object";
    case VT_LOOP: return "jinja2.runtime.LoopContext object";
    case VT_MACRO: return "jinja2.runtime.Macro object";
    case VT_LIST:
        switch (v.f) {
        case LK_TUPLE: return "tuple object";
        case LK_GEN: return "generator object";
        case LK_REVIT: return "list_reverseiterator object";
        case LK_ITEMS: return "dict_items object";
        case LK_KEYS: return "dict_keys object";
        case LK_VALUES: return "dict_values object";
        default: return "list object";
        }
    default: return "object";
    }
}

static int loop_attr(struct rctx *c, struct val lv, const char *a, size_t n, struct val *out)
{
    struct loop *lp = lv.u.lp;
    int64_t i = (int64_t)lp->i, len = (int64_t)lp->items->n;
#define IS(s) (n == sizeof(s) - 1 && memcmp(a, s, n) == 0)
    if (IS("index")) *out = v_int(i + 1);
    else if (IS("index0")) *out = v_int(i);
    else if (IS("revindex")) *out = v_int(len - i);
    else if (IS("revindex0")) *out = v_int(len - i - 1);
    else if (IS("first")) *out = v_bool(i == 0);
    else if (IS("last")) *out = v_bool(i == len - 1);
    else if (IS("length")) *out = v_int(len);
    else if (IS("depth")) *out = v_int(lp->depth0 + 1);
    else if (IS("depth0")) *out = v_int(lp->depth0);
    else if (IS("previtem"))
        *out = i > 0 ? lp->items->v[i - 1] : tmpl_v_undef_hint(c, "there is no previous item");
    else if (IS("nextitem"))
        *out = i + 1 < len ? lp->items->v[i + 1] : tmpl_v_undef_hint(c, "there is no next item");
    else if (IS("cycle")) return tmpl_v_method(c, lv, M_LOOP_CYCLE, out);
    else if (IS("changed")) return tmpl_v_method(c, lv, M_LOOP_CHANGED, out);
    else return 1;
#undef IS
    return 0;
}

int tmpl_get_attr(struct rctx *c, struct val obj, struct str *name, struct val *out)
{
    struct val key = v_strv(name, false);
    switch (obj.t) {
    case VT_UNDEF: return tmpl_undef_fail(c, obj);
    case VT_NS: {
        struct val *v = tmpl_dict_get_cstr(obj.u.m, name->b, name->len);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case VT_LOOP: {
        int rc = loop_attr(c, obj, name->b, name->len, out);
        if (rc <= 0) return rc;
        break;
    }
    default: {
        enum meth m = tmpl_meth_lookup(obj, name->b, name->len);
        if (m != M_NONE) return tmpl_v_method(c, obj, m, out);
        if (obj.t == VT_DICT) {
            struct val *v = tmpl_dict_get_cstr(obj.u.m, name->b, name->len);
            if (v) {
                *out = *v;
                return 0;
            }
        }
        break;
    }
    }
    *out = tmpl_v_undef_name(c, key, objtype(obj), false);
    return 0;
}

int tmpl_get_item(struct rctx *c, struct val obj, struct val key, struct val *out)
{
    int64_t i;
    switch (obj.t) {
    case VT_UNDEF: return tmpl_undef_fail(c, obj);
    case VT_DICT:
        if (key.t != VT_LIST || key.f == LK_TUPLE) {
            int rc;
            struct val *v = tmpl_dict_get(c, obj.u.m, key, &rc);
            if (rc) {
                /* unhashable key: a TypeError that jinja2's getitem swallows */
                c->err = 0;
                if (c->ei) err_clear(c->ei);
                break;
            }
            if (v) {
                *out = *v;
                return 0;
            }
        }
        break;
    case VT_LIST:
        if ((obj.f == LK_LIST || obj.f == LK_TUPLE) && v_as_index(key, &i)) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                *out = obj.u.l->v[i];
                return 0;
            }
        }
        break;
    case VT_STR:
        if (v_as_index(key, &i)) {
            int64_t n = tmpl_str_ncp(obj.u.s);
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                size_t a = tmpl_utf8_off(obj.u.s, i), b = tmpl_utf8_off(obj.u.s, i + 1);
                *out = tmpl_v_str(c, obj.u.s->b + a, b - a);
                out->f = obj.f;
                return out->t == VT_STR ? 0 : -1;
            }
        }
        break;
    default: break;
    }
    if (key.t == VT_STR && obj.t != VT_DICT) return tmpl_get_attr(c, obj, key.u.s, out);
    if (key.t == VT_STR && obj.t == VT_DICT) {
        enum meth m = tmpl_meth_lookup(obj, key.u.s->b, key.u.s->len);
        if (m != M_NONE) return tmpl_v_method(c, obj, m, out);
    }
    *out = tmpl_v_undef_name(c, key, objtype(obj), true);
    return 0;
}

/* Python slice.indices. */
static void slice_indices(int64_t len, const int64_t *a, const int64_t *b, int64_t step,
                          int64_t *start, int64_t *stop)
{
    int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? len - 1 : len;
    if (!a) *start = step < 0 ? upper : lower;
    else {
        *start = *a < 0 ? *a + len : *a;
        if (*start < lower) *start = lower;
        else if (*start > upper) *start = upper;
    }
    if (!b) *stop = step < 0 ? lower : upper;
    else {
        *stop = *b < 0 ? *b + len : *b;
        if (*stop < lower) *stop = lower;
        else if (*stop > upper) *stop = upper;
    }
}

int tmpl_get_slice(struct rctx *c, struct val obj, const struct val *sv, const bool *given,
                   bool forgiving, struct val *out)
{
    /* jinja2 compiles a slice to Python's obj[a:b:c] directly (not its forgiving getitem),
     * unless the optimizer folded it */
    if (obj.t == VT_UNDEF) return tmpl_undef_fail(c, obj);
    bool seq = obj.t == VT_STR || (obj.t == VT_LIST && (obj.f == LK_LIST || obj.f == LK_TUPLE));
    bool bad_ix = false;
    int64_t tmp;
    for (int k = 0; k < 3; k++)
        if (given[k] && sv[k].t != VT_NONE && !v_as_index(sv[k], &tmp)) bad_ix = true;
    if (forgiving && (!seq || bad_ix)) {
        *out = v_undef();
        return 0;
    }
    if (obj.t == VT_DICT)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "unhashable type: 'slice'");
    if (!seq)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object is not subscriptable", tmpl_type_name(obj));
    int64_t ix[3];
    for (int k = 0; k < 3; k++) {
        if (!given[k] || sv[k].t == VT_NONE) continue;
        if (sv[k].t == VT_UNDEF) return tmpl_undef_fail(c, sv[k]);
        if (!v_as_index(sv[k], &ix[k]))
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                          "slice indices must be integers or None or have an __index__ method");
    }
    int64_t step = (given[2] && sv[2].t != VT_NONE) ? ix[2] : 1;
    if (step == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    const int64_t *pa = (given[0] && sv[0].t != VT_NONE) ? &ix[0] : NULL;
    const int64_t *pb = (given[1] && sv[1].t != VT_NONE) ? &ix[1] : NULL;
    int64_t len = obj.t == VT_STR ? tmpl_str_ncp(obj.u.s) : (int64_t)obj.u.l->n, start, stop;
    slice_indices(len, pa, pb, step, &start, &stop);
    if (obj.t == VT_LIST) {
        struct list *l = tmpl_list_new(c, 0);
        if (!l) return -1;
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
            if (tmpl_list_push(c, l, obj.u.l->v[i])) return -1;
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        *out = v_listv(l, (enum lk)obj.f);
        return tmpl_rt_steps(c, l->n / 8);
    }
    struct str *s = obj.u.s;
    if (step == 1) {
        size_t a = tmpl_utf8_off(s, start), b = stop > start ? tmpl_utf8_off(s, stop) : a;
        *out = tmpl_v_str(c, s->b + a, b - a);
    } else {
        struct buf b = {.limit = c->max_output};
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
            size_t o = tmpl_utf8_off(s, i), e = tmpl_utf8_off(s, i + 1);
            if (tmpl_buf_put(&b, s->b + o, e - o)) {
                tmpl_buf_free(&b);
                return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string too long");
            }
            if (tmpl_rt_steps(c, 1)) {
                tmpl_buf_free(&b);
                return -1;
            }
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        *out = tmpl_buf_take(c, &b, false);
        tmpl_buf_free(&b);
    }
    if (out->t != VT_STR) return -1;
    out->f = obj.f;
    return 0;
}
