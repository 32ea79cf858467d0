/* tmpl_arith: Python's operators on values: + - * / // % ** and unary - and +, with Python's
 * results (int stays int, / is true division, // and % floor toward minus infinity, ** of a
 * negative exponent is a float), sequences concatenated and repeated, and `str % args` handed to
 * printf-style formatting (tmpl_fmt).
 *
 * Ints are 64-bit where Python's are unbounded: a result that does not fit is an OverflowError,
 * never a wrapped value. Results that would grow past max_output are a MemoryError, and copying
 * is charged to the step budget. */
#include "tmpl_int.h"

#include <math.h>
#include <string.h>

static bool is_num(struct val v) { return v.t == VT_BOOL || v.t == VT_INT || v.t == VT_FLOAT; }
static bool is_intish(struct val v) { return v.t == VT_BOOL || v.t == VT_INT; }
static int64_t ival(struct val v) { return v.t == VT_BOOL ? v.u.b : v.u.i; }
static double dval(struct val v) { return v.t == VT_FLOAT ? v.u.d : (double)ival(v); }

static int ovf(struct rctx *c)
{
    return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "integer result does not fit in 64 bits");
}

static const char *const g_opsym[] = {"+", "-", "*", "/", "//", "%", "**"};

static int unsupported(struct rctx *c, int op, struct val a, struct val b)
{
    return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                  "unsupported operand type(s) for %s: '%s' and '%s'", g_opsym[op], tmpl_type_name(a),
                  tmpl_type_name(b));
}

static int concat_str(struct rctx *c, struct val a, struct val b, struct val *out)
{
    bool markup = a.f || b.f;
    if (markup) { /* Markup + str escapes the plain side (markupsafe) */
        if (!a.f && tmpl_v_escape(c, a, &a)) return -1;
        if (!b.f && tmpl_v_escape(c, b, &b)) return -1;
    }
    size_t n = a.u.s->len + b.u.s->len;
    if (n > c->max_output) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string longer than %zu bytes", c->max_output);
    if (tmpl_rt_steps(c, n / 64)) return -1;
    struct str *s = tmpl_str_alloc(&c->ar, n);
    if (!s) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
    memcpy(s->b, a.u.s->b, a.u.s->len);
    memcpy(s->b + a.u.s->len, b.u.s->b, b.u.s->len);
    *out = v_strv(s, markup);
    return 0;
}

static int repeat(struct rctx *c, struct val seq, int64_t k, struct val *out)
{
    if (k < 0) k = 0;
    if (seq.t == VT_STR) {
        size_t len = seq.u.s->len;
        if (len && (uint64_t)k > c->max_output / len)
            return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "string longer than %zu bytes", c->max_output);
        if (tmpl_rt_steps(c, len * (size_t)k / 64)) return -1;
        struct str *s = tmpl_str_alloc(&c->ar, len * (size_t)k);
        if (!s) return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
        for (int64_t i = 0; i < k; i++) memcpy(s->b + (size_t)i * len, seq.u.s->b, len);
        *out = v_strv(s, seq.f);
        return 0;
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)k > (c->max_output / 16) / n)
        return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "list longer than the limit");
    struct list *l = tmpl_list_new(c, n * (size_t)k);
    if (!l) return -1;
    for (int64_t i = 0; n && i < k; i++) vcopy(l->v + (size_t)i * n, seq.u.l->v, n);
    l->n = n * (size_t)k;
    if (tmpl_rt_steps(c, l->n / 8)) return -1;
    *out = v_listv(l, (enum lk)seq.f);
    return 0;
}

static int pow_int(struct rctx *c, int64_t b, int64_t e, struct val *out)
{
    int64_t r = 1;
    while (e > 0) {
        if (e & 1 && __builtin_mul_overflow(r, b, &r)) return ovf(c);
        e >>= 1;
        if (e && __builtin_mul_overflow(b, b, &b)) return ovf(c);
    }
    *out = v_int(r);
    return 0;
}

static int arith(struct rctx *c, int op, struct val a, struct val b, struct val *out)
{
    if (is_intish(a) && is_intish(b)) {
        int64_t x = ival(a), y = ival(b), r;
        switch (op) {
        case B_ADD: if (__builtin_add_overflow(x, y, &r)) return ovf(c); *out = v_int(r); return 0;
        case B_SUB: if (__builtin_sub_overflow(x, y, &r)) return ovf(c); *out = v_int(r); return 0;
        case B_MUL: if (__builtin_mul_overflow(x, y, &r)) return ovf(c); *out = v_int(r); return 0;
        case B_FLOORDIV: case B_MOD:
            if (y == 0)
                return tmpl_rt_err(c, ERR_TEMPLATE, "ZeroDivisionError", "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) return ovf(c);
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) r--;
            *out = op == B_FLOORDIV ? v_int(r) : v_int(x - r * y);
            return 0;
        case B_POW:
            if (y >= 0) return pow_int(c, x, y, out);
            if (x == 0)
                return tmpl_rt_err(c, ERR_TEMPLATE, "ZeroDivisionError",
                              "0.0 cannot be raised to a negative power");
            *out = v_float(pow((double)x, (double)y));
            return 0;
        default: break;
        }
    }
    double x = dval(a), y = dval(b), r;
    switch (op) {
    case B_ADD: r = x + y; break;
    case B_SUB: r = x - y; break;
    case B_MUL: r = x * y; break;
    case B_DIV:
        if (y == 0) return tmpl_rt_err(c, ERR_TEMPLATE, "ZeroDivisionError", "division by zero");
        r = x / y;
        break;
    case B_FLOORDIV: case B_MOD: {
        if (y == 0)
            return tmpl_rt_err(c, ERR_TEMPLATE, "ZeroDivisionError",
                          op == B_MOD ? "float modulo" : "float floor division by zero");
        double m = fmod(x, y);
        if (m != 0 && ((y < 0) != (m < 0))) m += y;
        if (op == B_MOD) {
            r = m == 0 ? copysign(0.0, y) : m;
        } else {
            double d = (x - m) / y;
            if (m == 0 && d == 0) d = copysign(0.0, x / y);
            else {
                double fl = floor(d);
                if (d - fl > 0.5) fl += 1.0;
                d = fl;
            }
            r = d;
        }
        break;
    }
    case B_POW:
        if (x == 0 && y < 0)
            return tmpl_rt_err(c, ERR_TEMPLATE, "ZeroDivisionError",
                          "0.0 cannot be raised to a negative power");
        if (x < 0 && y != floor(y))
            return tmpl_rt_err(c, ERR_UNSUPPORTED, "ValueError",
                          "a negative number to a fractional power is complex");
        r = pow(x, y);
        if (isinf(r) && !isinf(x) && !isinf(y))
            return tmpl_rt_err(c, ERR_TEMPLATE, "OverflowError", "(34, 'Numerical result out of range')");
        break;
    default: return -1;
    }
    *out = v_float(r);
    return 0;
}

int tmpl_binop(struct rctx *c, int op, struct val a, struct val b, struct val *out)
{
    if (a.t == VT_UNDEF) return tmpl_undef_fail(c, a);
    if (b.t == VT_UNDEF) return tmpl_undef_fail(c, b);
    if (is_num(a) && is_num(b)) return arith(c, op, a, b, out);
    switch (op) {
    case B_ADD:
        if (a.t == VT_STR && b.t == VT_STR) return concat_str(c, a, b, out);
        if (a.t == VT_LIST && b.t == VT_LIST && a.f == b.f && (a.f == LK_LIST || a.f == LK_TUPLE)) {
            size_t n = a.u.l->n + b.u.l->n;
            struct list *l = tmpl_list_new(c, n);
            if (!l) return -1;
            vcopy(l->v, a.u.l->v, a.u.l->n);
            if (b.u.l->n) vcopy(l->v + a.u.l->n, b.u.l->v, b.u.l->n);
            l->n = n;
            *out = v_listv(l, (enum lk)a.f);
            return tmpl_rt_steps(c, n / 8);
        }
        if (a.t == VT_STR || (a.t == VT_LIST && (a.f == LK_LIST || a.f == LK_TUPLE)))
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "can only concatenate %s (not \"%s\") to %s",
                          tmpl_type_name(a), tmpl_type_name(b), tmpl_type_name(a));
        break;
    case B_MUL: {
        bool sa = a.t == VT_STR || (a.t == VT_LIST && (a.f == LK_LIST || a.f == LK_TUPLE));
        bool sb = b.t == VT_STR || (b.t == VT_LIST && (b.f == LK_LIST || b.f == LK_TUPLE));
        if (sa && is_intish(b)) return repeat(c, a, ival(b), out);
        if (sb && is_intish(a)) return repeat(c, b, ival(a), out);
        if (sa || sb)
            return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError",
                          "can't multiply sequence by non-int of type '%s'",
                          tmpl_type_name(sa ? b : a));
        break;
    }
    case B_MOD:
        if (a.t == VT_STR) return tmpl_str_percent(c, a, b, out);
        break;
    default: break;
    }
    return unsupported(c, op, a, b);
}

int tmpl_unary(struct rctx *c, bool neg, struct val a, struct val *out)
{
    if (a.t == VT_UNDEF) return tmpl_undef_fail(c, a);
    if (a.t == VT_FLOAT) *out = v_float(neg ? -a.u.d : a.u.d);
    else if (is_intish(a)) {
        if (neg && ival(a) == INT64_MIN) return ovf(c);
        *out = v_int(neg ? -ival(a) : ival(a));
    } else {
        return tmpl_rt_err(c, ERR_TEMPLATE, "TypeError", "bad operand type for unary %c: '%s'",
                      neg ? '-' : '+', tmpl_type_name(a));
    }
    return 0;
}
