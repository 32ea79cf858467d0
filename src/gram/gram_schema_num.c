/* gram_schema_num: exact decimal intervals as grammar, for minimum / maximum / exclusive bounds
 * and for numeric const and enum values (an interval [v, v]).
 *
 * A JSON number is split by sign: x >= 0 is a magnitude, x <= 0 is "-" and a magnitude (so -0,
 * -0.0 are zero, as in JSON). A magnitude is integer digits then optional fraction digits; an
 * interval of magnitudes [A, B] becomes three pieces by integer part I: I == int(A) with a
 * fraction >= frac(A), int(A) < I < int(B) with any fraction, and I == int(B) with a fraction
 * <= frac(B). Integer parts are ranges of digit strings (the classic split by length and
 * first differing digit); fractions are compared digit by digit against the bound's fraction
 * (a small automaton whose state is "still equal to the lower / upper bound's digits"), so
 * every decimal spelling of a value in range is accepted: 2, 2.0, 2.50 and -0 alike. For
 * integer-only intervals fraction digits can only be zeros.
 *
 * Bounded pieces carry no exponent (documented in gram_schema.h); a piece that is all of
 * [0, inf) uses the general number grammar, exponent included. Deep digit chains are cut into
 * rules every NEST_MAX levels so the grammar's group nesting stays shallow.
 *
 * Double-based validators (Python's jsonschema, anything on jansson) read a number with a
 * fraction or exponent as the nearest double and compare it with the bound's double, so a
 * decimal within one ulp of a bound may pass exact comparison and fail theirs ("0.99999999999
 * 999999" is 1.0). The range is therefore narrowed until both agree (safe_bounds): an exclusive
 * bound becomes an inclusive one at the neighbouring double (its shortest spelling), an integer
 * bound that is no double is rounded inward to one, and a real bound past 2^53 is also cut at
 * its exact integer value; integer-only ranges allow "1.0"-style spellings only while every
 * bound is within +-2^53, where rounding cannot cross it. What is lost is a sliver of width one
 * ulp at each bound. */
#include "gram_schema_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEST_MAX 8

/* ---- decimals ---- */

static int dec_set(struct gram_js_dec *d, int neg, const char *ip, size_t ni, const char *fp,
                   size_t nf)
{
    while (ni > 0 && *ip == '0') ip++, ni--;
    while (nf > 0 && fp[nf - 1] == '0') nf--;
    if (ni > GRAM_JS_MAX_DIGITS || nf > GRAM_JS_MAX_DIGITS) return ERR_RANGE;
    memcpy(d->ip, ip, ni);
    memcpy(d->fp, fp, nf);
    d->ip[ni] = d->fp[nf] = 0;
    d->ni = (uint16_t)ni;
    d->nf = (uint16_t)nf;
    d->neg = neg && (ni || nf);
    return 0;
}

/* The shortest "%.*e" spelling that reads back as x, then placed as integer + fraction. */
static int dec_from_double(double x, struct gram_js_dec *d)
{
    if (!isfinite(x)) return ERR_RANGE;
    int neg = x < 0;
    double a = fabs(x);
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, a);
        if (strtod(buf, NULL) == a) break;
    }
    /* buf: D[.DDD]e[+-]X */
    char mant[32];
    size_t nm = 0;
    const char *s = buf;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nm < sizeof mant) mant[nm++] = *s;
    long e = *s == 'e' ? strtol(s + 1, NULL, 10) : 0;
    char dig[2 * GRAM_JS_MAX_DIGITS + 64];
    /* value = 0.mant * 10^(e+1): point after position e+1 */
    long point = e + 1;
    if (point > GRAM_JS_MAX_DIGITS || point < -GRAM_JS_MAX_DIGITS) return ERR_RANGE;
    size_t n = 0;
    if (point <= 0) {
        for (long i = 0; i < -point; i++) dig[n++] = '0';
        memcpy(dig + n, mant, nm);
        n += nm;
        return dec_set(d, neg, "", 0, dig, n);
    }
    for (long i = 0; i < point; i++) dig[n++] = (size_t)i < nm ? mant[i] : '0';
    size_t nf = nm > (size_t)point ? nm - (size_t)point : 0;
    return dec_set(d, neg, dig, n, mant + point * (nf > 0), nf);
}

int gram_js_dec_from_json(const json_t *j, struct gram_js_dec *d)
{
    if (json_is_integer(j)) {
        long long v = (long long)json_integer_value(j);
        char buf[32];
        unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
        int n = snprintf(buf, sizeof buf, "%llu", m);
        return dec_set(d, v < 0, buf, (size_t)n, "", 0);
    }
    if (json_is_real(j)) return dec_from_double(json_real_value(j), d);
    return ERR_BAD_TYPE;
}

int gram_js_bound_from_json(const json_t *j, int strict, struct gram_js_bound *b)
{
    memset(b, 0, sizeof *b);
    int rc = gram_js_dec_from_json(j, &b->v);
    if (rc) return rc;
    b->has = 1;
    b->strict = strict;
    b->is_int = json_is_integer(j);
    b->n = b->is_int ? (long long)json_integer_value(j) : 0;
    b->d = json_number_value(j);
    return 0;
}

static int is_zero(const struct gram_js_dec *d) { return d->ni == 0 && d->nf == 0; }

static int mag_cmp(const struct gram_js_dec *a, const struct gram_js_dec *b)
{
    if (a->ni != b->ni) return a->ni < b->ni ? -1 : 1;
    int c = memcmp(a->ip, b->ip, a->ni);
    if (c) return c < 0 ? -1 : 1;
    size_t n = a->nf > b->nf ? a->nf : b->nf;
    for (size_t i = 0; i < n; i++) {
        char x = i < a->nf ? a->fp[i] : '0', y = i < b->nf ? b->fp[i] : '0';
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

int gram_js_dec_cmp(const struct gram_js_dec *a, const struct gram_js_dec *b)
{
    int sa = is_zero(a) ? 0 : a->neg ? -1 : 1, sb = is_zero(b) ? 0 : b->neg ? -1 : 1;
    if (sa != sb) return sa < sb ? -1 : 1;
    if (sa == 0) return 0;
    int c = mag_cmp(a, b);
    return sa < 0 ? -c : c;
}

int gram_js_dec_is_int(const struct gram_js_dec *d) { return d->nf == 0; }

void gram_js_bound_lower(struct gram_js_bound *lo, const struct gram_js_bound *b)
{
    if (!b->has) return;
    int c = lo->has ? gram_js_dec_cmp(&b->v, &lo->v) : 1;
    if (c > 0) *lo = *b;
    else if (c == 0) lo->strict |= b->strict;
}

void gram_js_bound_upper(struct gram_js_bound *hi, const struct gram_js_bound *b)
{
    if (!b->has) return;
    int c = hi->has ? gram_js_dec_cmp(&b->v, &hi->v) : -1;
    if (c < 0) *hi = *b;
    else if (c == 0) hi->strict |= b->strict;
}

/* ---- digit strings ---- */

/* s + 1 into out (NUL-terminated); "" is zero. */
static void digits_inc(const char *s, size_t n, char *out)
{
    memcpy(out + 1, s, n);
    out[0] = '0';
    out[n + 1] = 0;
    size_t i = n + 1;
    while (i-- > 0) {
        if (out[i] == '9') {
            out[i] = '0';
        } else {
            out[i]++;
            break;
        }
    }
    if (out[0] == '0') memmove(out, out + 1, n + 1);
}

/* s - 1 into out, s >= 1. */
static void digits_dec(const char *s, size_t n, char *out)
{
    memcpy(out, s, n + 1);
    size_t i = n;
    while (i-- > 0) {
        if (out[i] == '0') {
            out[i] = '9';
        } else {
            out[i]--;
            break;
        }
    }
    size_t z = 0;
    while (out[z] == '0') z++;
    memmove(out, out + z, n + 1 - z);
}

static int digits_cmp(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na != nb) return na < nb ? -1 : 1;
    int c = strcmp(a, b);
    return c < 0 ? -1 : c > 0;
}

/* ---- magnitude intervals ---- */

/* Magnitudes m with A <= m (A < m when sa), and m <= B (m < B when sb) if hb. */
struct mag {
    const struct gram_js_dec *a;
    int sa;
    const struct gram_js_dec *b; /* NULL: no upper bound */
    int sb;
    int integer_only;
};

static int mag_empty(const struct mag *m)
{
    if (!m->integer_only) {
        if (!m->b) return 0;
        int c = mag_cmp(m->a, m->b);
        return c > 0 || (c == 0 && (m->sa || m->sb));
    }
    /* first integer in range: ceil(A), or A + 1 when A is an integer excluded */
    char first[GRAM_JS_MAX_DIGITS + 2];
    if (m->a->nf == 0 && !m->sa) memcpy(first, m->a->ip, m->a->ni + 1);
    else digits_inc(m->a->ip, m->a->ni, first);
    if (!m->b) return 0;
    struct gram_js_dec f;
    if (dec_set(&f, 0, first, strlen(first), "", 0)) return 0;
    int c = mag_cmp(&f, m->b);
    return c > 0 || (c == 0 && m->sb);
}

/* ---- emission ---- */

struct gen {
    struct gram_js_ctx *c;
    int integer_only;
    int no_frac; /* integer-only and no "1.0" spellings: integers as integers only */
};

/* Open a nested group: inline "(" while shallow, else a fresh rule whose name goes into *b and
 * whose body is written into *sub. close_group finishes it. */
struct grp {
    struct gram_js_buf *parent;
    struct gram_js_buf sub;
    size_t rule;
    int inline_;
};

static struct gram_js_buf *open_group(struct gen *g, struct gram_js_buf *b, int *depth,
                                      struct grp *gr)
{
    gr->parent = b;
    memset(&gr->sub, 0, sizeof gr->sub);
    if (*depth < NEST_MAX) {
        gr->inline_ = 1;
        gram_js_puts(b, "(");
        ++*depth;
        return b;
    }
    gr->inline_ = 0;
    gr->rule = gram_js_rule_new(g->c, "num");
    *depth = 0;
    return &gr->sub;
}

static void close_group(struct gen *g, struct grp *gr, int *depth, int saved)
{
    if (gr->inline_) {
        gram_js_puts(gr->parent, ")");
    } else if (gr->rule != SIZE_MAX) {
        gram_js_puts(gr->parent, gram_js_rule_name(g->c, gr->rule));
        gram_js_rule_set(g->c, gr->rule, &gr->sub);
    } else {
        gram_js_buf_free(&gr->sub);
    }
    *depth = saved;
}

static void put_class(struct gram_js_buf *b, int lo, int hi)
{
    if (lo == hi) gram_js_printf(b, "\"%c\"", '0' + lo);
    else gram_js_printf(b, "[%c-%c]", '0' + lo, '0' + hi);
}

/* n digits of any value (integer part, fixed width). */
static void put_any_digits(struct gram_js_buf *b, size_t n)
{
    if (n == 1) gram_js_puts(b, "[0-9]");
    else if (n > 1) gram_js_printf(b, "[0-9]{%zu}", n);
}

/* Fixed-width digit strings >= s (ge) or <= s (!ge), s of n digits. */
static void fixed_bound(struct gen *g, struct gram_js_buf *b, const char *s, size_t n, int ge,
                        int depth)
{
    if (n == 0) return;
    size_t i = 0;
    char edge = ge ? '0' : '9';
    while (i < n && s[i] == edge) i++;
    if (i == n) { /* every string of this width qualifies */
        put_any_digits(b, n);
        return;
    }
    int d = s[0] - '0';
    int lo = ge ? d + 1 : 0, hi = ge ? 9 : d - 1;
    if (n == 1) {
        put_class(b, ge ? d : 0, ge ? 9 : d);
        return;
    }
    struct grp gr;
    int saved = depth;
    struct gram_js_buf *o = open_group(g, b, &depth, &gr);
    gram_js_printf(o, "\"%c\" ", s[0]);
    struct grp gr2;
    int saved2 = depth;
    struct gram_js_buf *o2 = open_group(g, o, &depth, &gr2);
    fixed_bound(g, o2, s + 1, n - 1, ge, depth);
    close_group(g, &gr2, &depth, saved2);
    if (lo <= hi) {
        gram_js_puts(o, " | ");
        put_class(o, lo, hi);
        gram_js_puts(o, " ");
        put_any_digits(o, n - 1);
    }
    close_group(g, &gr, &depth, saved);
}

/* Same-width digit strings in [x, y]. */
static void same_len(struct gen *g, struct gram_js_buf *b, const char *x, const char *y, size_t n,
                     int depth)
{
    size_t p = 0;
    while (p < n && x[p] == y[p]) p++;
    if (p > 0) gram_js_put_lit(b, x, p);
    if (p == n) return;
    if (p > 0) gram_js_puts(b, " ");
    int dx = x[p] - '0', dy = y[p] - '0';
    size_t rest = n - p - 1;
    struct grp gr;
    int saved = depth;
    struct gram_js_buf *o = open_group(g, b, &depth, &gr);
    int first = 1;
    if (rest == 0) {
        put_class(o, dx, dy);
    } else {
        /* x's digit followed by >= x's rest; y's digit by <= y's rest; between: anything */
        gram_js_printf(o, "\"%c\" ", x[p]);
        fixed_bound(g, o, x + p + 1, rest, 1, depth);
        first = 0;
        if (dx + 1 <= dy - 1) {
            gram_js_puts(o, " | ");
            put_class(o, dx + 1, dy - 1);
            gram_js_puts(o, " ");
            put_any_digits(o, rest);
        }
        gram_js_printf(o, "%s\"%c\" ", first ? "" : " | ", y[p]);
        fixed_bound(g, o, y + p + 1, rest, 0, depth);
    }
    close_group(g, &gr, &depth, saved);
}

/* Integers (no leading zeros) in [x, y], x >= 1; y NULL: unbounded. */
static void int_range(struct gen *g, struct gram_js_buf *b, const char *x, const char *y)
{
    size_t lx = strlen(x), ly = y ? strlen(y) : 0;
    char nines[GRAM_JS_MAX_DIGITS + 2], tens[GRAM_JS_MAX_DIGITS + 2];
    if (y && lx == ly) {
        same_len(g, b, x, y, lx, 1);
        return;
    }
    memset(nines, '9', lx);
    nines[lx] = 0;
    gram_js_puts(b, "(");
    same_len(g, b, x, nines, lx, 1);
    if (!y) {
        gram_js_printf(b, " | [1-9] [0-9]{%zu} [0-9]*", lx);
    } else {
        if (ly - lx >= 2) {
            /* every length strictly between */
            gram_js_printf(b, " | [1-9] [0-9]{%zu,%zu}", lx, ly - 2);
        }
        tens[0] = '1';
        memset(tens + 1, '0', ly - 1);
        tens[ly] = 0;
        gram_js_puts(b, " | ");
        same_len(g, b, tens, y, ly, 1);
    }
    gram_js_puts(b, ")");
}

/* ---- fractions ----
 * The fraction digits f of a magnitude compared with lo (f >= lo, or > when ls) and hi. A state
 * is (k digits read, lt = equal to lo so far, ht = equal to hi so far); lo/hi have no trailing
 * zeros, so past their length a tight side reads implicit zeros. */
struct frac {
    const char *lo; /* NULL: none */
    size_t nlo;
    int ls;
    const char *hi;
    size_t nhi;
    int hs;
    int integer_only;
    size_t kmax;       /* states with k >= kmax behave alike */
    uint8_t *nonempty; /* [kmax + 1][4]: memo, 1 + result, 0 = unknown */
};

static int fr_stop_ok(const struct frac *f, size_t k, int lt, int ht)
{
    if (lt && (k < f->nlo || f->ls)) return 0;
    if (ht && k >= f->nhi && f->hs) return 0;
    return 1;
}

/* Digit d from state (k, lt, ht): -1 = not allowed, else the new (lt, ht) as lt*2+ht. */
static int fr_step(const struct frac *f, size_t k, int lt, int ht, int d)
{
    if (f->integer_only && d != 0) return -1;
    int nlt = 0, nht = 0;
    if (lt) {
        int ld = k < f->nlo ? f->lo[k] - '0' : 0;
        if (d < ld) return -1;
        nlt = d == ld;
    }
    if (ht) {
        int hd = k < f->nhi ? f->hi[k] - '0' : 0;
        if (d > hd) return -1;
        nht = d == hd;
    }
    return nlt * 2 + nht;
}

static int fr_nonempty(struct frac *f, size_t k, int lt, int ht)
{
    if (!lt && !ht) return 1;
    if (fr_stop_ok(f, k, lt, ht)) return 1;
    size_t kk = k < f->kmax ? k : f->kmax;
    uint8_t *m = &f->nonempty[kk * 4 + (size_t)(lt * 2 + ht)];
    if (*m) return *m - 1;
    int r = 0;
    if (k >= f->kmax) {
        /* stationary: only a free lower side can still be reached, by a non-zero digit */
        r = lt && !ht && !f->integer_only;
    } else {
        for (int d = 0; d <= 9 && !r; d++) {
            int s = fr_step(f, k, lt, ht, d);
            if (s >= 0) r = fr_nonempty(f, k + 1, s >> 1, s & 1);
        }
    }
    *m = (uint8_t)(1 + r);
    return r;
}

static void fr_emit(struct gen *g, struct frac *f, struct gram_js_buf *b, size_t k, int lt, int ht,
                    int depth);

/* Zeros in the one tight bound's digits from k on (lower side when lt). */
static size_t fr_zero_run(const struct frac *f, size_t k, int lt)
{
    const char *d = lt ? f->lo : f->hi;
    size_t n = lt ? f->nlo : f->nhi, r = 0;
    while (k + r < n && d[k + r] == '0') r++;
    return r;
}

/* A run of r zeros in the one tight bound (a tiny bound such as 5e-324 has hundreds), as
 * counted repetition instead of r nested states. Lower bound: a non-zero digit inside the run
 * already exceeds it, else the run is read whole. Upper bound: only zeros fit, and the text may
 * stop anywhere inside (it is below the bound there). */
static void fr_emit_run(struct gen *g, struct frac *f, struct gram_js_buf *b, size_t k, int lt, int depth)
{
    size_t r = fr_zero_run(f, k, lt);
    int more = fr_nonempty(f, k + r, lt, !lt);
    struct grp gr;
    int saved = depth;
    struct gram_js_buf *o = open_group(g, b, &depth, &gr);
    int first = 1;
    if (lt && !f->integer_only) {
        gram_js_printf(o, "\"0\"{0,%zu} [1-9] [0-9]*", r - 1);
        first = 0;
    } else if (!lt) {
        gram_js_printf(o, "\"0\"{0,%zu}", r - 1);
        first = 0;
    }
    if (more) {
        gram_js_printf(o, "%s\"0\"{%zu} ", first ? "" : " | ", r);
        struct grp g2;
        int saved2 = depth;
        struct gram_js_buf *o2 = open_group(g, o, &depth, &g2);
        fr_emit(g, f, o2, k + r, lt, !lt, depth);
        close_group(g, &g2, &depth, saved2);
        first = 0;
    }
    if (first) gram_js_puts(o, "\"\"");
    close_group(g, &gr, &depth, saved);
}

/* Digits after k read (k >= 1, or the first digit after "." when k == 0 and first). */
static void fr_emit(struct gen *g, struct frac *f, struct gram_js_buf *b, size_t k, int lt,
                    int ht, int depth)
{
    const char *any = f->integer_only ? "\"0\"*" : "[0-9]*";
    if (!lt && !ht) {
        gram_js_puts(b, any);
        return;
    }
    int stop = k > 0 && fr_stop_ok(f, k, lt, ht);
    if (k < f->kmax && lt != ht && fr_zero_run(f, k, lt) >= 2) {
        fr_emit_run(g, f, b, k, lt, depth);
        return;
    }
    if (k >= f->kmax) {
        /* stationary: tight sides read zeros */
        if (lt && !ht && !f->ls && !f->integer_only) gram_js_puts(b, "[0-9]*");
        else if (lt && !ht && !f->integer_only) gram_js_puts(b, "\"0\"* [1-9] [0-9]*");
        else gram_js_puts(b, "\"0\"*"); /* nonempty was checked: stop is fine */
        return;
    }
    /* group digits by the state they lead to */
    int lo_d[4] = {10, 10, 10, 10}, hi_d[4] = {-1, -1, -1, -1};
    for (int d = 0; d <= 9; d++) {
        int s = fr_step(f, k, lt, ht, d);
        if (s < 0 || !fr_nonempty(f, k + 1, s >> 1, s & 1)) continue;
        if (d < lo_d[s]) lo_d[s] = d;
        if (d > hi_d[s]) hi_d[s] = d;
    }
    struct grp gr;
    int saved = depth;
    struct gram_js_buf *o = open_group(g, b, &depth, &gr);
    int first = 1;
    for (int s = 0; s < 4; s++) {
        if (hi_d[s] < 0) continue;
        if (!first) gram_js_puts(o, " | ");
        first = 0;
        put_class(o, lo_d[s], hi_d[s]);
        if (s == 0 && f->integer_only) {
            gram_js_puts(o, " \"0\"*");
        } else if (s == 0) {
            gram_js_puts(o, " [0-9]*");
        } else {
            gram_js_puts(o, " ");
            struct grp g2;
            int saved2 = depth;
            struct gram_js_buf *o2 = open_group(g, o, &depth, &g2);
            fr_emit(g, f, o2, k + 1, s >> 1, s & 1, depth);
            close_group(g, &g2, &depth, saved2);
        }
    }
    close_group(g, &gr, &depth, saved);
    if (stop) gram_js_puts(b, "?");
}

/* The fraction part (no dot, or "." digits) of magnitudes whose fraction lies in [lo, hi]. */
static int frac_part(struct gen *g, struct gram_js_buf *b, const struct gram_js_dec *lo, int ls,
                     const struct gram_js_dec *hi, int hs)
{
    if (g->no_frac) { /* only the integer itself: fraction zero, no dot */
        int zero_ok = (!lo || (lo->nf == 0 && !ls)) && (!hi || !(hs && hi->nf == 0));
        return zero_ok;
    }
    struct frac f = {0};
    f.integer_only = g->integer_only;
    if (lo) f.lo = lo->fp, f.nlo = lo->nf, f.ls = ls;
    if (hi) f.hi = hi->fp, f.nhi = hi->nf, f.hs = hs;
    f.kmax = f.nlo > f.nhi ? f.nlo : f.nhi;
    f.nonempty = calloc((f.kmax + 1) * 4, 1);
    if (!f.nonempty) {
        gram_js_fail(g->c, ERR_NOMEM, "out of memory");
        return -1;
    }
    int lt = lo != NULL, ht = hi != NULL;
    int stop0 = fr_stop_ok(&f, 0, lt, ht);
    int more = 0;
    for (int d = 0; d <= 9 && !more; d++) {
        int s = fr_step(&f, 0, lt, ht, d);
        if (s >= 0) more = fr_nonempty(&f, 1, s >> 1, s & 1);
    }
    if (!stop0 && !more) {
        free(f.nonempty);
        return 0;
    }
    if (more) {
        gram_js_puts(b, stop0 ? " (\".\" " : " \".\" ");
        if (!lt && !ht) {
            gram_js_puts(b, g->integer_only ? "\"0\"+" : "[0-9]+");
        } else {
            /* the first digit is mandatory: emit it as a state with stop forbidden */
            int lo_d[4] = {10, 10, 10, 10}, hi_d[4] = {-1, -1, -1, -1};
            for (int d = 0; d <= 9; d++) {
                int s = fr_step(&f, 0, lt, ht, d);
                if (s < 0 || !fr_nonempty(&f, 1, s >> 1, s & 1)) continue;
                if (d < lo_d[s]) lo_d[s] = d;
                if (d > hi_d[s]) hi_d[s] = d;
            }
            gram_js_puts(b, "(");
            int first = 1;
            for (int s = 0; s < 4; s++) {
                if (hi_d[s] < 0) continue;
                if (!first) gram_js_puts(b, " | ");
                first = 0;
                put_class(b, lo_d[s], hi_d[s]);
                gram_js_puts(b, " ");
                if (s == 0) {
                    gram_js_puts(b, g->integer_only ? "\"0\"*" : "[0-9]*");
                } else {
                    gram_js_puts(b, "(");
                    fr_emit(g, &f, b, 1, s >> 1, s & 1, 2);
                    gram_js_puts(b, ")");
                }
            }
            gram_js_puts(b, ")");
        }
        if (stop0) gram_js_puts(b, ")?");
    }
    free(f.nonempty);
    return 1;
}

/* Integer part literal ("" is 0). */
static void put_int_lit(struct gram_js_buf *b, const char *ip, size_t n)
{
    if (n == 0) gram_js_puts(b, "\"0\"");
    else gram_js_put_lit(b, ip, n);
}

/* One alternative "I F": appended with a separator; returns 1 when something was written. */
static int mag_piece(struct gen *g, struct gram_js_buf *b, int *first, const char *ip, size_t ni,
                     const struct gram_js_dec *lo, int ls, const struct gram_js_dec *hi, int hs)
{
    struct gram_js_buf t = {0};
    put_int_lit(&t, ip, ni);
    int ok = frac_part(g, &t, lo, ls, hi, hs);
    if (ok > 0) {
        if (!*first) gram_js_puts(b, " | ");
        *first = 0;
        gram_js_put(b, t.p, t.n);
    }
    gram_js_buf_free(&t);
    return ok > 0;
}

/* Magnitudes in m, as one parenthesised expression. Caller checked !mag_empty. */
static void mag_emit(struct gen *g, struct gram_js_buf *b, const struct mag *m)
{
    const struct gram_js_dec *a = m->a, *bb = m->b;
    if (!bb && is_zero(a) && !m->sa) {
        gram_js_num_any_mag(b, m->integer_only);
        return;
    }
    gram_js_puts(b, "(");
    int first = 1;
    if (bb && a->ni == bb->ni && memcmp(a->ip, bb->ip, a->ni) == 0) {
        mag_piece(g, b, &first, a->ip, a->ni, a, m->sa, bb, m->sb);
    } else {
        mag_piece(g, b, &first, a->ip, a->ni, a, m->sa, NULL, 0);
        char x[GRAM_JS_MAX_DIGITS + 2], y[GRAM_JS_MAX_DIGITS + 2];
        digits_inc(a->ip, a->ni, x);
        int have_mid = 1;
        if (bb) {
            if (bb->ni == 0) have_mid = 0;
            else {
                digits_dec(bb->ip, bb->ni, y);
                have_mid = y[0] && digits_cmp(x, y) <= 0;
            }
        }
        if (have_mid) {
            if (!first) gram_js_puts(b, " | ");
            first = 0;
            int_range(g, b, x, bb ? y : NULL);
            if (!g->no_frac) gram_js_puts(b, m->integer_only ? " (\".\" \"0\"+)?" : " (\".\" [0-9]+)?");
        }
        if (bb) mag_piece(g, b, &first, bb->ip, bb->ni, NULL, 0, bb, m->sb);
    }
    if (first) gram_js_puts(b, gram_js_prim(g->c, GRAM_JS_P_NEVER));
    gram_js_puts(b, ")");
}

/* Split [lo, hi] into the magnitudes of x >= 0 and of x <= 0. */
static void split(const struct gram_js_bound *lo, const struct gram_js_bound *hi,
                  const struct gram_js_dec *zero, struct mag *pos, struct mag *neg, int *has_pos,
                  int *has_neg)
{
    /* x >= 0 part: [max(lo, 0), hi] */
    *has_pos = !hi->has || !hi->v.neg || is_zero(&hi->v);
    if (lo->has && !lo->v.neg && !is_zero(&lo->v)) pos->a = &lo->v, pos->sa = lo->strict;
    else if (lo->has && is_zero(&lo->v)) pos->a = zero, pos->sa = lo->strict;
    else pos->a = zero, pos->sa = 0;
    pos->b = hi->has ? &hi->v : NULL;
    pos->sb = hi->strict;
    /* x <= 0 part: magnitudes [max(-hi, 0), -lo] */
    *has_neg = !lo->has || lo->v.neg || is_zero(&lo->v);
    if (hi->has && hi->v.neg) neg->a = &hi->v, neg->sa = hi->strict;
    else if (hi->has && is_zero(&hi->v)) neg->a = zero, neg->sa = hi->strict;
    else neg->a = zero, neg->sa = 0;
    neg->b = lo->has ? &lo->v : NULL;
    neg->sb = lo->strict;
}

/* ---- agreement with double-based validators ---- */

/* Whether |b| <= 2^53, where every integer is a double. */
static int within_2p53(const struct gram_js_bound *b)
{
    struct gram_js_dec t;
    dec_set(&t, 0, "9007199254740992", 16, "", 0);
    return !b->has || mag_cmp(&b->v, &t) <= 0;
}

/* (double)n against n, exactly: -1, 0, 1. */
static int cmp_double_ll(double d, long long n)
{
    if (d >= 9223372036854775808.0) return 1;
    if (d < -9223372036854775808.0) return -1;
    long long back = (long long)d;
    return back < n ? -1 : back > n;
}

/* The double a reading must reach (lower side) or not pass (upper side) for a double-based
 * validator to agree with b: 1 and *q, or 0 when exact comparison already implies it. */
static int safe_double(const struct gram_js_bound *b, int lower, double *q)
{
    if (!b->is_int) {
        if (!b->strict) return 0; /* x >= B implies double(x) >= double(B) = d */
        *q = nextafter(b->d, lower ? INFINITY : -INFINITY);
        return 1;
    }
    double d = (double)b->n;
    int c = cmp_double_ll(d, b->n);
    if (c == 0 && !b->strict) return 0;
    if (lower) *q = c > 0 || (c == 0 && !b->strict) ? d : nextafter(d, INFINITY);
    else *q = c < 0 || (c == 0 && !b->strict) ? d : nextafter(d, -INFINITY);
    return 1;
}

/* An inclusive bound at the shortest spelling of q (infinity: 2e308, past which every decimal
 * reads as infinity). */
static void bound_at(double q, struct gram_js_bound *out)
{
    memset(out, 0, sizeof *out);
    out->has = 1;
    if (isinf(q)) {
        char big[310];
        big[0] = '2';
        memset(big + 1, '0', 308);
        dec_set(&out->v, q < 0, big, 309, "", 0);
    } else {
        dec_from_double(q, &out->v);
    }
    out->is_int = 0;
    out->d = q;
}

/* The range both exact and double-based comparison accept (see the file comment); *frac_ok:
 * integer-only ranges may use "1.0" spellings. */
static void safe_bounds(const struct gram_js_bound *lo, const struct gram_js_bound *hi, int integer_only,
                        struct gram_js_bound *elo, struct gram_js_bound *ehi, int *frac_ok)
{
    *elo = *lo;
    *ehi = *hi;
    const struct gram_js_bound *side[2] = {lo, hi};
    for (int k = 0; k < 2; k++) {
        const struct gram_js_bound *b = side[k];
        if (!b->has || b->is_int || fabs(b->d) < 9007199254740992.0) continue;
        /* a real past 2^53 is an integer: integer instances compare with it exactly */
        struct gram_js_bound x = *b;
        char buf[400];
        snprintf(buf, sizeof buf, "%.0f", fabs(b->d));
        if (dec_set(&x.v, b->d < 0, buf, strlen(buf), "", 0)) continue;
        if (k == 0) gram_js_bound_lower(elo, &x);
        else gram_js_bound_upper(ehi, &x);
    }
    *frac_ok = !integer_only || (within_2p53(elo) && within_2p53(ehi));
    if (!*frac_ok) return; /* integers only: compared exactly everywhere */
    for (int k = 0; k < 2; k++) {
        double q;
        if (!side[k]->has || !safe_double(side[k], k == 0, &q)) continue;
        struct gram_js_bound x;
        bound_at(q, &x);
        if (k == 0) gram_js_bound_lower(elo, &x);
        else gram_js_bound_upper(ehi, &x);
    }
}

/* The magnitude ranges of [lo0, hi0] after safe_bounds: *hp / *hn say whether the x >= 0 /
 * x <= 0 parts hold any number. */
struct parts {
    struct gram_js_bound lo, hi;
    struct gram_js_dec zero;
    struct mag pos, neg;
    int hp, hn, frac_ok;
};

static void num_parts(const struct gram_js_bound *lo0, const struct gram_js_bound *hi0, int integer_only,
                      struct parts *r)
{
    memset(r, 0, sizeof *r);
    safe_bounds(lo0, hi0, integer_only, &r->lo, &r->hi, &r->frac_ok);
    dec_set(&r->zero, 0, "", 0, "", 0);
    split(&r->lo, &r->hi, &r->zero, &r->pos, &r->neg, &r->hp, &r->hn);
    r->pos.integer_only = r->neg.integer_only = integer_only;
    r->hp = r->hp && !mag_empty(&r->pos);
    r->hn = r->hn && !mag_empty(&r->neg);
}

int gram_js_num_empty(const struct gram_js_bound *lo, const struct gram_js_bound *hi, int integer_only)
{
    struct parts r;
    num_parts(lo, hi, integer_only, &r);
    return !r.hp && !r.hn;
}

void gram_js_num_emit(struct gram_js_ctx *c, const struct gram_js_bound *lo,
                      const struct gram_js_bound *hi, int integer_only, struct gram_js_buf *out,
                      int *empty)
{
    *empty = 0;
    if (!lo->has && !hi->has) {
        gram_js_puts(out, gram_js_prim(c, integer_only ? GRAM_JS_P_INT : GRAM_JS_P_NUMBER));
        return;
    }
    struct parts r; /* pos / neg point into r */
    num_parts(lo, hi, integer_only, &r);
    if (!r.hp && !r.hn) {
        *empty = 1;
        return;
    }
    struct gen g = {c, integer_only, !r.frac_ok};
    if (r.hp && r.hn) gram_js_puts(out, "(");
    if (r.hn) {
        gram_js_puts(out, "\"-\" ");
        mag_emit(&g, out, &r.neg);
    }
    if (r.hp && r.hn) gram_js_puts(out, " | ");
    if (r.hp) mag_emit(&g, out, &r.pos);
    if (r.hp && r.hn) gram_js_puts(out, ")");
}
