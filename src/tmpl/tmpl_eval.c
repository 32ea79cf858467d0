/* tmpl_eval: the tree-walking interpreter: scopes, statements, expressions, calls (macros,
 * callers, built-ins, methods, recursive loops), and the render entry point. The top of the
 * module: what a node does to values is delegated down (tmpl_access: attributes, items, slices;
 * tmpl_arith: operators; tmpl_filt: filters and tests; tmpl_meth: methods), nothing below calls
 * back into the evaluator.
 *
 * Scoping follows what jinja2 3.1 compiles to: `set` writes to the innermost scope; each for-loop
 * iteration, macro call, call-block caller and with-block gets a fresh scope whose parent is the
 * scope it appears in (so assignments inside a loop never leak out, and a name assigned later in
 * the same iteration reads the outer value until then); if-blocks do not create scopes. The
 * bottom scope is the globals: the request's variables over the built-in functions.
 *
 * Every statement and expression costs a step; a render that spends its budget, nests calls past
 * max_depth or recurses past TMPL_MAX_CDEPTH C frames stops with ERR_LIMIT. Errors are recorded
 * once (first wins) with the position of the node being evaluated. */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EX_OK = 0, EX_BREAK = 1, EX_CONTINUE = 2 };

/* ---- scopes ---- */

static struct scope *scope_new(struct rctx *c, struct scope *parent)
{
    struct scope *s = tmpl_arena_alloc(&c->ar, sizeof *s);
    if (!s) {
        tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        return NULL;
    }
    s->parent = parent;
    return s;
}

static int scope_set(struct rctx *c, struct scope *s, uint32_t sym, struct val v)
{
    if (s == c->globals) {
        c->gvals[sym] = v;
        c->gset[sym] = true;
        return 0;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->sym[i] == sym) {
            s->v[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        uint32_t *ns = tmpl_arena_alloc(&c->ar, nc * sizeof *ns);
        struct val *nv = tmpl_arena_alloc(&c->ar, nc * sizeof *nv);
        if (!ns || !nv) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        if (s->n) {
            memcpy(ns, s->sym, s->n * sizeof *ns);
            memcpy(nv, s->v, s->n * sizeof *nv);
        }
        s->sym = ns;
        s->v = nv;
        s->cap = nc;
    }
    s->sym[s->n] = sym;
    s->v[s->n++] = v;
    return 0;
}

static bool scope_get(struct rctx *c, struct scope *s, uint32_t sym, struct val *out)
{
    for (; s; s = s->parent) {
        if (s == c->globals) {
            if (!c->gset[sym]) return false;
            *out = c->gvals[sym];
            return true;
        }
        for (size_t i = s->n; i-- > 0;)
            if (s->sym[i] == sym) {
                *out = s->v[i];
                return true;
            }
    }
    return false;
}

/* ---- forward ---- */

static int eval(struct rctx *c, struct scope *sc, const struct node *n, struct val *out);
static int exec_nodes(struct rctx *c, struct scope *sc, const struct nodes *body);

static int enter(struct rctx *c, const struct node *n)
{
    c->cur_pos = n->pos;
    if (++c->cdepth > TMPL_MAX_CDEPTH)
        return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "template nested deeper than %d levels",
                      TMPL_MAX_CDEPTH);
    return tmpl_rt_steps(c, 1);
}

static int out_val(struct rctx *c, struct val v)
{
    if (v.t == VT_UNDEF) return 0;
    return tmpl_v_str_to(c, c->out, v);
}

/* Run body with output captured into a new string value. */
static int capture(struct rctx *c, struct scope *sc, const struct nodes *body, struct val *out)
{
    struct buf b = {.limit = c->max_output};
    struct buf *saved = c->out;
    c->out = &b;
    int rc = exec_nodes(c, sc, body);
    c->out = saved;
    if (rc >= 0) {
        *out = tmpl_buf_take(c, &b, false);
        rc = out->t == VT_STR ? 0 : -1;
    }
    tmpl_buf_free(&b);
    return rc < 0 ? -1 : 0;
}

/* ---- calls ---- */

static int call_macro(struct rctx *c, struct macro *m, struct val *args, size_t nargs,
                      struct str **kwn, struct val *kwv, size_t nkw, struct val caller,
                      struct val *out);
static int exec_for(struct rctx *c, struct scope *sc, const struct node *n, struct list *items,
                    uint32_t depth0);

/* dict(mapping or pairs, **kw) and namespace(...): a new dict. */
static int make_dict(struct rctx *c, struct val *args, size_t nargs, struct str **kwn,
                     struct val *kwv, size_t nkw, struct val *out)
{
    if (nargs > 1)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "dict expected at most 1 argument, got %zu", nargs);
    struct dict *d = tmpl_dict_new(c, nkw);
    if (!d) return -1;
    if (nargs == 1 && (args[0].t == VT_DICT || args[0].t == VT_NS)) {
        for (size_t i = 0; i < args[0].u.m->n; i++)
            if (tmpl_dict_set(c, d, args[0].u.m->e[i].k, args[0].u.m->e[i].v)) return -1;
    } else if (nargs == 1) {
        struct list *l;
        if (tmpl_v_iter_list(c, args[0], &l)) return -1;
        for (size_t i = 0; i < l->n; i++) {
            struct list *pair;
            if (l->v[i].t == VT_UNDEF || tmpl_v_iter_list(c, l->v[i], &pair)) return -1;
            if (pair->n != 2)
                return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError",
                              "dictionary update sequence element #%zu has length %zu; 2 is required",
                              i, pair->n);
            if (tmpl_dict_set(c, d, pair->v[0], pair->v[1])) return -1;
        }
    }
    for (size_t i = 0; i < nkw; i++)
        if (tmpl_dict_set(c, d, v_strv(kwn[i], false), kwv[i])) return -1;
    *out = v_dictv(d);
    return 0;
}

/* range(stop) / range(start, stop[, step]) as a list; the sandbox's 100000-item cap. */
static int make_range(struct rctx *c, struct val *args, size_t nargs, struct val *out)
{
    if (nargs < 1 || nargs > 3)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "range expected 1 to 3 arguments, got %zu", nargs);
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < nargs; i++)
        if (!v_as_index(args[i], &v[nargs == 1 ? 1 : i]))
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object cannot be interpreted as an integer",
                          tmpl_type_name(args[i]));
    if (v[2] == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "range() arg 3 must not be zero");
    double cnt = v[2] > 0 ? ceil(((double)v[1] - (double)v[0]) / (double)v[2])
                          : ceil(((double)v[0] - (double)v[1]) / (double)-v[2]);
    if (cnt < 0) cnt = 0;
    if (cnt > 100000)
        return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError",
                      "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    struct list *l = tmpl_list_new(c, (size_t)cnt);
    if (!l) return -1;
    if (tmpl_rt_steps(c, (uint64_t)cnt)) return -1; /* a range is materialised: pay per item */
    for (size_t i = 0; i < (size_t)cnt; i++) l->v[i] = v_int(v[0] + (int64_t)i * v[2]);
    l->n = (size_t)cnt;
    *out = v_listv(l, LK_LIST);
    return 0;
}

static int call_builtin(struct rctx *c, struct val fn, struct val *args, size_t nargs,
                        struct str **kwn, struct val *kwv, size_t nkw, struct val *out)
{
    switch (fn.id) {
    case FN_RAISE: {
        static const char *const names[] = {"message"};
        struct val a[1];
        if (tmpl_bind_args(c, "raise_exception", names, 1, args, nargs, kwn, kwv, nkw, a)) return -1;
        struct val s;
        if (tmpl_v_to_str(c, a[0], &s)) return -1;
        return tmpl_rt_err(c, ERR_TEMPLATE, "TemplateError", "%.*s", (int)(s.u.s->len > 200 ? 200 : s.u.s->len),
                      s.u.s->b);
    }
    case FN_STRFTIME: {
        static const char *const names[] = {"format"};
        struct val a[1];
        if (tmpl_bind_args(c, "strftime_now", names, 1, args, nargs, kwn, kwv, nkw, a)) return -1;
        if (a[0].t != VT_STR)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "strftime() argument 1 must be str, not %s",
                          tmpl_type_name(a[0]));
        struct buf b = {.limit = c->max_output};
        int rc = tmpl_strftime_fmt(c, a[0].u.s->b, a[0].u.s->len, c->now + c->utc_offset, &b);
        if (!rc) {
            *out = tmpl_buf_take(c, &b, false);
            rc = out->t == VT_STR ? 0 : -1;
        }
        tmpl_buf_free(&b);
        return rc;
    }
    case FN_NAMESPACE: case FN_DICT:
        if (make_dict(c, args, nargs, kwn, kwv, nkw, out)) return -1;
        if (fn.id == FN_NAMESPACE) out->t = VT_NS;
        return 0;
    case FN_RANGE:
        if (nkw) return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "range() takes no keyword arguments");
        return make_range(c, args, nargs, out);
    case FN_JOINER: {
        static const char *const names[] = {"sep"};
        struct val a[1];
        if (tmpl_bind_args(c, "joiner", names, 1, args, nargs, kwn, kwv, nkw, a)) return -1;
        struct list *st = tmpl_list_new(c, 2);
        if (!st) return -1;
        st->v[0] = a[0].t == VT_UNDEF ? tmpl_v_cstr(c, ", ") : a[0];
        st->v[1] = v_bool(false);
        st->n = 2;
        return tmpl_v_method(c, v_listv(st, LK_LIST), M_JOINER_CALL, out);
    }
    default:
        return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "this global function is not supported");
    }
}

static int call_full(struct rctx *c, struct val fn, struct val *args, size_t nargs,
                     struct str **kwn, struct val *kwv, size_t nkw, struct val caller,
                     struct val *out)
{
    switch (fn.t) {
    case VT_MACRO: return call_macro(c, fn.u.mac, args, nargs, kwn, kwv, nkw, caller, out);
    case VT_FUNC: return call_builtin(c, fn, args, nargs, kwn, kwv, nkw, out);
    case VT_METHOD: return tmpl_call_method(c, fn.u.bm, args, nargs, kwn, kwv, nkw, out);
    case VT_LOOP: {
        struct loop *lp = fn.u.lp;
        if (!lp->def->u.loop.recursive)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                          "The loop must have the 'recursive' marker to be called recursively.");
        if (nargs != 1 || nkw)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "loop() takes exactly one argument");
        if (c->depth >= c->max_depth)
            return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "recursive loop nested deeper than %u",
                          c->max_depth);
        struct list *items;
        if (tmpl_v_iter_list(c, args[0], &items)) return -1;
        struct buf b = {.limit = c->max_output};
        struct buf *saved = c->out;
        c->out = &b;
        c->depth++;
        int rc = exec_for(c, lp->scope, lp->def, items, lp->depth0 + 1);
        c->depth--;
        c->out = saved;
        if (rc >= 0) {
            *out = tmpl_buf_take(c, &b, false);
            rc = out->t == VT_STR ? 0 : -1;
        }
        tmpl_buf_free(&b);
        return rc < 0 ? -1 : 0;
    }
    case VT_UNDEF: return tmpl_undef_fail(c, fn);
    default:
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "'%s' object is not callable", tmpl_type_name(fn));
    }
}

static bool str_is(const struct str *s, const char *z)
{
    size_t n = strlen(z);
    return s->len == n && memcmp(s->b, z, n) == 0;
}

/* Bind a macro's parameters in its new scope (jinja2's Macro._invoke rules). */
static int macro_bind(struct rctx *c, struct macro *m, struct scope *ms, struct val *args,
                      size_t nargs, struct str **kwn, struct val *kwv, size_t nkw,
                      struct val caller)
{
    const struct node *d = m->def;
    size_t np = d->u.mac.nparams, ndef = d->u.mac.defaults.n;
    const char *name = m->name->b;
    if (nargs > np && !d->u.mac.uses_varargs)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "macro '%s' takes not more than %zu argument(s)",
                      name, np);
    bool *given = tmpl_arena_alloc(&c->ar, np + 1);
    struct val *vals = tmpl_arena_alloc(&c->ar, (np + 1) * sizeof *vals);
    struct dict *kw = tmpl_dict_new(c, 0);
    if (!given || !vals || !kw) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "out of memory");
    for (size_t i = 0; i < np && i < nargs; i++) {
        vals[i] = args[i];
        given[i] = true;
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < np && !str_is(c->t->syms[d->u.mac.params[i]], kwn[k]->b)) i++;
        if (i < np) {
            if (given[i])
                return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                              "macro '%s' got multiple values for argument '%s'", name, kwn[k]->b);
            vals[i] = kwv[k];
            given[i] = true;
        } else if (str_is(kwn[k], "caller") && d->u.mac.uses_caller) {
            caller = kwv[k];
        } else if (d->u.mac.uses_kwargs) {
            if (tmpl_dict_set(c, kw, v_strv(kwn[k], false), kwv[k])) return -1;
        } else {
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "macro '%s' takes no keyword argument '%s'",
                          name, kwn[k]->b);
        }
    }
    for (size_t i = 0; i < np; i++) {
        if (!given[i]) {
            size_t first_def = np - ndef;
            if (i >= first_def) {
                if (eval(c, ms, d->u.mac.defaults.v[i - first_def], &vals[i])) return -1;
            } else {
                char *h = tmpl_arena_alloc(&c->ar, 96);
                if (h) snprintf(h, 96, "parameter '%s' was not provided", c->t->syms[d->u.mac.params[i]]->b);
                vals[i] = tmpl_v_undef_hint(c, h ? h : "parameter was not provided");
            }
        }
        if (scope_set(c, ms, d->u.mac.params[i], vals[i])) return -1;
    }
    if (d->u.mac.uses_varargs) {
        struct list *va = tmpl_list_new(c, nargs > np ? nargs - np : 0);
        if (!va) return -1;
        for (size_t i = np; i < nargs; i++) va->v[va->n++] = args[i];
        if (scope_set(c, ms, c->t->sym_varargs, v_listv(va, LK_TUPLE))) return -1;
    }
    if (d->u.mac.uses_kwargs && scope_set(c, ms, c->t->sym_kwargs, v_dictv(kw))) return -1;
    if (d->u.mac.uses_caller) {
        if (caller.t == VT_UNDEF) caller = tmpl_v_undef_hint(c, "No caller defined");
        if (scope_set(c, ms, c->t->sym_caller, caller)) return -1;
    }
    return 0;
}

static int call_macro(struct rctx *c, struct macro *m, struct val *args, size_t nargs,
                      struct str **kwn, struct val *kwv, size_t nkw, struct val caller,
                      struct val *out)
{
    if (c->depth >= c->max_depth)
        return tmpl_rt_err(c, ERR_LIMIT, "RecursionError", "macro calls nested deeper than %u",
                      c->max_depth);
    struct scope *ms = scope_new(c, m->closure);
    if (!ms) return -1;
    uint32_t pos = c->cur_pos;
    if (macro_bind(c, m, ms, args, nargs, kwn, kwv, nkw, caller)) return -1;
    c->depth++;
    int rc = capture(c, ms, &m->def->u.mac.body, out);
    c->depth--;
    c->cur_pos = pos;
    return rc;
}

/* Evaluate call arguments into arena arrays. */
static int eval_args(struct rctx *c, struct scope *sc, const struct node *n, struct val **args,
                     struct val **kwv)
{
    size_t na = n->u.call.args.n, nk = n->u.call.kwv.n;
    *args = na ? tmpl_arena_alloc(&c->ar, na * sizeof **args) : NULL;
    *kwv = nk ? tmpl_arena_alloc(&c->ar, nk * sizeof **kwv) : NULL;
    if ((na && !*args) || (nk && !*kwv))
        return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
    for (size_t i = 0; i < na; i++)
        if (eval(c, sc, n->u.call.args.v[i], &(*args)[i])) return -1;
    for (size_t i = 0; i < nk; i++)
        if (eval(c, sc, n->u.call.kwv.v[i], &(*kwv)[i])) return -1;
    return 0;
}

static int eval_call(struct rctx *c, struct scope *sc, const struct node *n, struct val caller,
                     struct val *out)
{
    struct val fn, *args, *kwv;
    if (eval(c, sc, n->u.call.obj, &fn) || eval_args(c, sc, n, &args, &kwv)) return -1;
    c->cur_pos = n->pos;
    return call_full(c, fn, args, n->u.call.args.n, n->u.call.kwn, kwv, n->u.call.kwv.n, caller,
                     out);
}

/* Apply a filter node to v (v given: the value of a block body). */
static int eval_filter(struct rctx *c, struct scope *sc, const struct node *n, const struct val *v,
                       struct val *out)
{
    struct val x, *args, *kwv;
    if (n->u.call.obj) {
        if (n->u.call.obj->k == N_FILTER) {
            if (eval_filter(c, sc, n->u.call.obj, v, &x)) return -1;
        } else if (eval(c, sc, n->u.call.obj, &x)) {
            return -1;
        }
    } else {
        x = *v;
    }
    if (eval_args(c, sc, n, &args, &kwv)) return -1;
    c->cur_pos = n->pos;
    if (n->u.call.fid < 0)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TemplateRuntimeError", "No filter named '%s'.",
                      n->u.call.fname->b);
    return tmpl_apply_filter(c, n->u.call.fid, x, args, n->u.call.args.n, n->u.call.kwn, kwv,
                        n->u.call.kwv.n, out);
}

/* ---- expressions ---- */

static int eval_compare(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    struct val l, r;
    if (eval(c, sc, n->u.cmp.first, &l)) return -1;
    for (size_t i = 0; i < n->u.cmp.rhs.n; i++) {
        if (eval(c, sc, n->u.cmp.rhs.v[i], &r)) return -1;
        c->cur_pos = n->pos;
        bool res;
        int k;
        switch (n->u.cmp.ops[i]) {
        case C_EQ: res = tmpl_v_eq(l, r); break;
        case C_NE: res = !tmpl_v_eq(l, r); break;
        case C_IN: case C_NOTIN:
            if (tmpl_v_contains(c, r, l, &res)) return -1;
            if (n->u.cmp.ops[i] == C_NOTIN) res = !res;
            break;
        default:
            if (tmpl_v_cmp(c, l, r, &k)) return -1;
            switch (n->u.cmp.ops[i]) {
            case C_LT: res = k == -1; break;
            case C_LE: res = k == -1 || k == 0; break;
            case C_GT: res = k == 1; break;
            default: res = k == 1 || k == 0; break;
            }
        }
        if (!res) {
            *out = v_bool(false);
            return 0;
        }
        l = r;
    }
    *out = v_bool(true);
    return 0;
}

static int eval_concat(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    struct buf b = {.limit = c->max_output};
    int rc = 0;
    for (size_t i = 0; i < n->u.items.n && !rc; i++) {
        struct val v;
        rc = eval(c, sc, n->u.items.v[i], &v);
        if (!rc && v.t != VT_UNDEF) rc = tmpl_v_str_to(c, &b, v);
    }
    if (!rc) {
        *out = tmpl_buf_take(c, &b, false);
        rc = out->t == VT_STR ? 0 : -1;
    }
    tmpl_buf_free(&b);
    return rc;
}

static int eval_unary(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    struct val a;
    if (eval(c, sc, n->u.bin.a, &a)) return -1;
    c->cur_pos = n->pos;
    if (n->k == N_NOT) {
        *out = v_bool(!tmpl_truthy(a));
        return 0;
    }
    return tmpl_unary(c, n->k == N_NEG, a, out);
}

static int eval_literal(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    if (n->k == N_DICT) {
        struct dict *d = tmpl_dict_new(c, n->u.dict.keys.n);
        if (!d) return -1;
        for (size_t i = 0; i < n->u.dict.keys.n; i++) {
            struct val k, v;
            if (eval(c, sc, n->u.dict.keys.v[i], &k) || eval(c, sc, n->u.dict.vals.v[i], &v))
                return -1;
            c->cur_pos = n->pos;
            if (tmpl_dict_set(c, d, k, v)) return -1;
        }
        *out = v_dictv(d);
        return 0;
    }
    struct list *l = tmpl_list_new(c, n->u.items.n);
    if (!l) return -1;
    for (size_t i = 0; i < n->u.items.n; i++)
        if (eval(c, sc, n->u.items.v[i], &l->v[i])) return -1;
    l->n = n->u.items.n;
    *out = v_listv(l, n->k == N_TUPLE ? LK_TUPLE : LK_LIST);
    return 0;
}

static int eval_slice(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    if (!n->u.sl.obj) { /* a slice inside a tuple subscript: a key no sequence accepts */
        *out = v_none();
        return 0;
    }
    struct val obj, sv[3];
    bool given[3] = {n->u.sl.a != NULL, n->u.sl.b != NULL, n->u.sl.c != NULL};
    if (eval(c, sc, n->u.sl.obj, &obj)) return -1;
    const struct node *parts[3] = {n->u.sl.a, n->u.sl.b, n->u.sl.c};
    for (int k = 0; k < 3; k++)
        if (given[k] && eval(c, sc, parts[k], &sv[k])) return -1;
    c->cur_pos = n->pos;
    return tmpl_get_slice(c, obj, sv, given, n->op == NODE_CONST_SLICE, out);
}

static int eval_inner(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    struct val a, b;
    switch (n->k) {
    case N_CONST: *out = n->u.c; return 0;
    case N_NAME:
        if (!scope_get(c, sc, n->u.name.sym, out))
            *out = tmpl_v_undef_name(c, v_strv(c->t->syms[n->u.name.sym], false), NULL, false);
        return 0;
    case N_GETATTR:
        if (eval(c, sc, n->u.ga.obj, &a)) return -1;
        c->cur_pos = n->pos;
        return tmpl_get_attr(c, a, n->u.ga.attr, out);
    case N_GETITEM:
        if (eval(c, sc, n->u.gi.obj, &a) || eval(c, sc, n->u.gi.key, &b)) return -1;
        c->cur_pos = n->pos;
        return tmpl_get_item(c, a, b, out);
    case N_SLICE: return eval_slice(c, sc, n, out);
    case N_CALL: return eval_call(c, sc, n, v_undef(), out);
    case N_FILTER: return eval_filter(c, sc, n, NULL, out);
    case N_TEST: {
        struct val *args, *kwv;
        bool r;
        if (eval(c, sc, n->u.call.obj, &a) || eval_args(c, sc, n, &args, &kwv)) return -1;
        c->cur_pos = n->pos;
        if (n->u.call.fid < 0)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TemplateRuntimeError", "No test named '%s'.",
                          n->u.call.fname->b);
        if (n->u.call.kwv.n)
            return tmpl_rt_err(c, ERR_UNSUPPORTED, "TypeError", "keyword arguments to tests are not supported");
        if (tmpl_apply_test(c, n->u.call.fid, a, args, n->u.call.args.n, &r)) return -1;
        *out = v_bool(r);
        return 0;
    }
    case N_NEG: case N_POS: case N_NOT: return eval_unary(c, sc, n, out);
    case N_BINOP:
        if (n->op == B_POW_NEGCONST) { /* -(c ** b): see B_POW_NEGCONST */
            if (eval(c, sc, n->u.bin.a->u.bin.a, &a) || eval(c, sc, n->u.bin.b, &b)) return -1;
            c->cur_pos = n->pos;
            if (tmpl_binop(c, B_POW, a, b, &a)) return -1;
            return tmpl_unary(c, true, a, out);
        }
        if (eval(c, sc, n->u.bin.a, &a) || eval(c, sc, n->u.bin.b, &b)) return -1;
        c->cur_pos = n->pos;
        return tmpl_binop(c, n->op, a, b, out);
    case N_AND: case N_OR:
        if (eval(c, sc, n->u.bin.a, &a)) return -1;
        if (tmpl_truthy(a) == (n->k == N_OR)) {
            *out = a;
            return 0;
        }
        return eval(c, sc, n->u.bin.b, out);
    case N_CONCAT: return eval_concat(c, sc, n, out);
    case N_COMPARE: return eval_compare(c, sc, n, out);
    case N_COND:
        if (eval(c, sc, n->u.cond.test, &a)) return -1;
        if (tmpl_truthy(a)) return eval(c, sc, n->u.cond.a, out);
        if (n->u.cond.b) return eval(c, sc, n->u.cond.b, out);
        *out = tmpl_v_undef_hint(c, "the inline if-expression evaluated to false and no else section "
                               "was defined.");
        return 0;
    case N_LIST: case N_TUPLE: case N_DICT: return eval_literal(c, sc, n, out);
    default: return tmpl_rt_err(c, ERR_INVALID, "InternalError", "not an expression");
    }
}

static int eval(struct rctx *c, struct scope *sc, const struct node *n, struct val *out)
{
    if (enter(c, n)) return -1;
    int rc = eval_inner(c, sc, n, out);
    c->cdepth--;
    return rc;
}

/* ---- statements ---- */

/* Unpack v into a tuple target of `want` names. */
static int unpack(struct rctx *c, struct val v, size_t want, struct list **out)
{
    if (v.t != VT_LIST && v.t != VT_STR && v.t != VT_DICT && v.t != VT_UNDEF)
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "cannot unpack non-iterable %s object",
                      tmpl_type_name(v));
    if (tmpl_v_iter_list(c, v, out)) return -1;
    if ((*out)->n < want)
        return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "not enough values to unpack (expected %zu, got %zu)",
                      want, (*out)->n);
    if ((*out)->n > want)
        return tmpl_rt_err(c, ERR_TEMPLATE, "ValueError", "too many values to unpack (expected %zu)", want);
    return 0;
}

static int assign(struct rctx *c, struct scope *sc, const struct node *t, struct val v)
{
    if (t->k == N_NAME) return scope_set(c, sc, t->u.name.sym, v);
    if (t->k == N_NSREF) {
        struct val ns;
        c->cur_pos = t->pos;
        if (!scope_get(c, sc, t->u.ns.sym, &ns) || ns.t != VT_NS)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TemplateRuntimeError",
                          "cannot assign attribute on non-namespace object");
        return tmpl_dict_set(c, ns.u.m, v_strv(t->u.ns.attr, false), v);
    }
    struct list *parts;
    c->cur_pos = t->pos;
    if (unpack(c, v, t->u.items.n, &parts)) return -1;
    for (size_t i = 0; i < t->u.items.n; i++)
        if (assign(c, sc, t->u.items.v[i], parts->v[i])) return -1;
    return 0;
}

static int exec_for(struct rctx *c, struct scope *sc, const struct node *n, struct list *items,
                    uint32_t depth0)
{
    const struct node *target = n->u.loop.target;
    if (n->u.loop.test) { /* for x in xs if test: filter first (loop.length counts kept ones) */
        struct list *kept = tmpl_list_new(c, items->n);
        if (!kept) return -1;
        struct scope *fs = scope_new(c, sc);
        if (!fs) return -1;
        for (size_t i = 0; i < items->n; i++) {
            struct val t;
            fs->n = 0;
            if (assign(c, fs, target, items->v[i]) || eval(c, fs, n->u.loop.test, &t)) return -1;
            if (tmpl_truthy(t)) kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    bool want_loop = c->t->sym_loop != SYM_NONE;
    struct loop *lp = NULL;
    struct val lv = {0};
    if (want_loop) {
        lp = tmpl_arena_alloc(&c->ar, sizeof *lp);
        if (!lp) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        lp->items = items;
        lp->depth0 = depth0;
        lp->def = n;
        lp->scope = sc;
        lv.t = VT_LOOP;
        lv.u.lp = lp;
    }
    struct scope *is = scope_new(c, sc);
    if (!is) return -1;
    for (size_t i = 0; i < items->n; i++) {
        if (tmpl_rt_steps(c, 1)) return -1;
        is->n = 0; /* a fresh scope per iteration */
        if (lp) {
            lp->i = i;
            if (scope_set(c, is, c->t->sym_loop, lv)) return -1;
        }
        c->cur_pos = n->pos;
        if (assign(c, is, target, items->v[i])) return -1;
        int rc = exec_nodes(c, is, &n->u.loop.body);
        if (rc < 0) return -1;
        if (rc == EX_BREAK) break;
    }
    if (items->n == 0 && n->u.loop.els.n) {
        struct scope *es = scope_new(c, sc);
        if (!es || exec_nodes(c, es, &n->u.loop.els) < 0) return -1;
    }
    return 0;
}

static int exec_node(struct rctx *c, struct scope *sc, const struct node *n)
{
    struct val v;
    switch (n->k) {
    case N_TEXT:
        c->cur_pos = n->pos;
        if (tmpl_rt_steps(c, n->u.text->len / 64)) return -1;
        if (tmpl_buf_put(c->out, n->u.text->b, n->u.text->len))
            return tmpl_rt_err(c, ERR_LIMIT, "OutputLimit", "rendered text longer than %zu bytes",
                          c->out->limit);
        return 0;
    case N_OUTPUT:
        for (size_t i = 0; i < n->u.out.n; i++) {
            if (eval(c, sc, n->u.out.v[i], &v)) return -1;
            c->cur_pos = n->pos;
            if (out_val(c, v)) return -1;
        }
        return 0;
    case N_IF:
        if (eval(c, sc, n->u.iff.test, &v)) return -1;
        return exec_nodes(c, sc, tmpl_truthy(v) ? &n->u.iff.body : &n->u.iff.els);
    case N_FOR: {
        struct list *items;
        if (eval(c, sc, n->u.loop.iter, &v)) return -1;
        c->cur_pos = n->pos;
        /* a list is iterated in place, as Python does (no copy per loop) */
        if (v.t == VT_LIST && !v_is_gen(v)) items = v.u.l;
        else if (tmpl_v_iter_list(c, v, &items)) return -1;
        return exec_for(c, sc, n, items, 0);
    }
    case N_SET:
        if (eval(c, sc, n->u.set.value, &v)) return -1;
        return assign(c, sc, n->u.set.target, v);
    case N_SETBLOCK: {
        struct scope *bs = scope_new(c, sc);
        if (!bs || capture(c, bs, &n->u.setb.body, &v)) return -1;
        if (n->u.setb.filter && eval_filter(c, sc, n->u.setb.filter, &v, &v)) return -1;
        return assign(c, sc, n->u.setb.target, v);
    }
    case N_MACRO: {
        struct macro *m = tmpl_arena_alloc(&c->ar, sizeof *m);
        if (!m) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        m->name = n->u.mac.name;
        m->def = n;
        m->closure = sc;
        v = (struct val){.t = VT_MACRO};
        v.u.mac = m;
        return scope_set(c, sc, n->u.mac.sym, v);
    }
    case N_CALLBLOCK: {
        struct macro *m = tmpl_arena_alloc(&c->ar, sizeof *m);
        if (!m) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        m->name = n->u.mac.name;
        m->def = n;
        m->closure = sc;
        struct val caller = {.t = VT_MACRO};
        caller.u.mac = m;
        if (eval_call(c, sc, n->u.mac.call, caller, &v)) return -1;
        return out_val(c, v);
    }
    case N_FILTERBLOCK: {
        struct scope *bs = scope_new(c, sc);
        if (!bs || capture(c, bs, &n->u.fb.body, &v)) return -1;
        if (eval_filter(c, sc, n->u.fb.filter, &v, &v)) return -1;
        return out_val(c, v);
    }
    case N_WITH: {
        struct scope *ws = scope_new(c, sc);
        if (!ws) return -1;
        for (size_t i = 0; i < n->u.with.targets.n; i++) {
            if (eval(c, sc, n->u.with.vals.v[i], &v) || assign(c, ws, n->u.with.targets.v[i], v))
                return -1;
        }
        return exec_nodes(c, ws, &n->u.with.body);
    }
    case N_BREAK: return EX_BREAK;
    case N_CONTINUE: return EX_CONTINUE;
    case N_BODY: return exec_nodes(c, sc, &n->u.body);
    default: return tmpl_rt_err(c, ERR_INVALID, "InternalError", "not a statement");
    }
}

static int exec_nodes(struct rctx *c, struct scope *sc, const struct nodes *body)
{
    for (size_t i = 0; i < body->n; i++) {
        const struct node *n = body->v[i];
        if (enter(c, n)) return -1;
        int rc = exec_node(c, sc, n);
        c->cdepth--;
        if (rc) return rc;
    }
    return 0;
}

/* ---- entry ---- */

void tmpl_opts_default(struct tmpl_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_steps = TMPL_DEFAULT_STEPS;
    o->max_output = TMPL_DEFAULT_OUTPUT;
    o->max_mem = TMPL_DEFAULT_MEM;
    o->max_depth = TMPL_DEFAULT_DEPTH;
}

static const struct {
    const char *name;
    enum fn id;
} g_globals[] = {{"raise_exception", FN_RAISE}, {"strftime_now", FN_STRFTIME},
                 {"namespace", FN_NAMESPACE},   {"range", FN_RANGE},
                 {"dict", FN_DICT},             {"joiner", FN_JOINER},
                 {"cycler", FN_CYCLER}};

/* Globals: built-ins, then the request's variables over them (jinja2: render args win). */
static int init_globals(struct rctx *c, const json_t *vars)
{
    const struct tmpl *t = c->t;
    size_t ns = t->nsyms ? t->nsyms : 1;
    c->gvals = tmpl_arena_alloc(&c->ar, ns * sizeof *c->gvals);
    c->gset = tmpl_arena_alloc(&c->ar, ns);
    c->globals = scope_new(c, NULL);
    if (!c->gvals || !c->gset || !c->globals)
        return tmpl_rt_err(c, ERR_NOMEM, "MemoryError", "out of memory");
    for (size_t i = 0; i < t->nsyms; i++) {
        for (size_t g = 0; g < sizeof g_globals / sizeof g_globals[0]; g++) {
            if (str_is(t->syms[i], g_globals[g].name)) {
                c->gvals[i] = (struct val){.t = VT_FUNC, .id = (uint16_t)g_globals[g].id};
                c->gset[i] = true;
            }
        }
        json_t *j = vars ? json_object_getn(vars, t->syms[i]->b, t->syms[i]->len) : NULL;
        if (j) {
            if (tmpl_v_from_json(c, j, &c->gvals[i], 0)) return -1;
            c->gset[i] = true;
        }
    }
    return 0;
}

int tmpl_render(const struct tmpl *t, const json_t *vars, const struct tmpl_opts *opts,
                char **out, size_t *len, struct err_info *ei)
{
    *out = NULL;
    if (len) *len = 0;
    if (!t) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no template");
    if (vars && !json_is_object(vars))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "template variables must be a JSON object");
    struct tmpl_opts o;
    tmpl_opts_default(&o);
    if (opts) {
        o.now = opts->now;
        o.utc_offset = opts->utc_offset;
        if (opts->max_steps) o.max_steps = opts->max_steps;
        if (opts->max_output) o.max_output = opts->max_output;
        if (opts->max_mem) o.max_mem = opts->max_mem;
        if (opts->max_depth) o.max_depth = opts->max_depth;
    }
    struct buf main = {.limit = o.max_output};
    struct rctx c = {
        .t = t,
        .out = &main,
        .max_steps = o.max_steps,
        .max_output = o.max_output,
        .max_depth = o.max_depth,
        .now = o.now,
        .utc_offset = o.utc_offset,
        .ei = ei,
    };
    c.ar.limit = o.max_mem;
    int rc = init_globals(&c, vars);
    if (!rc) rc = exec_nodes(&c, c.globals, &t->body) < 0 ? -1 : 0;
    tmpl_arena_free(&c.ar);
    if (rc || c.err) {
        tmpl_buf_free(&main);
        return c.err ? c.err : ERR_TEMPLATE;
    }
    if (!main.p) {
        main.p = malloc(1);
        if (!main.p) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        main.p[0] = 0;
    }
    *out = main.p;
    if (len) *len = main.n;
    return 0;
}
