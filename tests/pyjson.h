/* pyjson: serialise a jansson value exactly as Python's
 *   json.dumps(x, separators=(",", ":"), ensure_ascii=False)
 * writes it, so tests can feed grammars the text the JSON-Schema-Test-Suite instances have in
 * the issue's measurement. Integers as integers; reals as Python's repr (the shortest digits
 * that read back, fixed notation when the decimal point falls within -4 < exp <= 16, else
 * d.ddde+XX with at least two exponent digits; 1.0 stays "1.0"); strings escape only ", \, and
 * control characters (\b \f \n \r \t short, the rest \u00xx); keys in document order. */
#ifndef LMPIPE_TESTS_PYJSON_H
#define LMPIPE_TESTS_PYJSON_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pyjson_buf {
    char *p;
    size_t n, cap;
};

static void pyjson_put(struct pyjson_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) abort(); /* tests only */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void pyjson_puts(struct pyjson_buf *b, const char *s) { pyjson_put(b, s, strlen(s)); }

/* Python's repr of a finite double. */
static void pyjson_real(struct pyjson_buf *b, double x)
{
    if (!isfinite(x)) {
        pyjson_puts(b, x != x ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char buf[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    /* buf: [-]d[.ddd]e[+-]XX -> digits and decimal point position */
    const char *s = buf;
    int neg = *s == '-';
    if (neg) s++;
    char dig[24];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') dig[nd++] = *s;
    int e = atoi(s + 1), decpt = e + 1;
    if (neg) pyjson_puts(b, "-");
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            pyjson_puts(b, "0.");
            for (int i = 0; i < -decpt; i++) pyjson_puts(b, "0");
            pyjson_put(b, dig, (size_t)nd);
        } else if (decpt < nd) {
            pyjson_put(b, dig, (size_t)decpt);
            pyjson_puts(b, ".");
            pyjson_put(b, dig + decpt, (size_t)(nd - decpt));
        } else {
            pyjson_put(b, dig, (size_t)nd);
            for (int i = nd; i < decpt; i++) pyjson_puts(b, "0");
            pyjson_puts(b, ".0");
        }
        return;
    }
    pyjson_put(b, dig, 1);
    if (nd > 1) {
        pyjson_puts(b, ".");
        pyjson_put(b, dig + 1, (size_t)(nd - 1));
    }
    char ex[16];
    snprintf(ex, sizeof ex, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    pyjson_puts(b, ex);
}

static void pyjson_string(struct pyjson_buf *b, const char *s, size_t n)
{
    pyjson_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        switch (c) {
        case '"': pyjson_puts(b, "\\\""); break;
        case '\\': pyjson_puts(b, "\\\\"); break;
        case '\b': pyjson_puts(b, "\\b"); break;
        case '\f': pyjson_puts(b, "\\f"); break;
        case '\n': pyjson_puts(b, "\\n"); break;
        case '\r': pyjson_puts(b, "\\r"); break;
        case '\t': pyjson_puts(b, "\\t"); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                pyjson_puts(b, esc);
            } else {
                pyjson_put(b, &s[i], 1);
            }
        }
    }
    pyjson_puts(b, "\"");
}

static void pyjson_dump(struct pyjson_buf *b, const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_NULL: pyjson_puts(b, "null"); break;
    case JSON_TRUE: pyjson_puts(b, "true"); break;
    case JSON_FALSE: pyjson_puts(b, "false"); break;
    case JSON_INTEGER: {
        char t[32];
        snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(x));
        pyjson_puts(b, t);
        break;
    }
    case JSON_REAL: pyjson_real(b, json_real_value(x)); break;
    case JSON_STRING: pyjson_string(b, json_string_value(x), json_string_length(x)); break;
    case JSON_ARRAY:
        pyjson_puts(b, "[");
        for (size_t i = 0; i < json_array_size(x); i++) {
            if (i) pyjson_puts(b, ",");
            pyjson_dump(b, json_array_get(x, i));
        }
        pyjson_puts(b, "]");
        break;
    case JSON_OBJECT: {
        pyjson_puts(b, "{");
        const char *k;
        json_t *v;
        int first = 1;
        json_object_foreach((json_t *)x, k, v) {
            if (!first) pyjson_puts(b, ",");
            first = 0;
            pyjson_string(b, k, json_object_iter_key_len(json_object_key_to_iter(k)));
            pyjson_puts(b, ":");
            pyjson_dump(b, v);
        }
        pyjson_puts(b, "}");
        break;
    }
    }
}

/* malloc'd text of x (caller frees). */
static inline char *pyjson_dumps(const json_t *x, size_t *len)
{
    struct pyjson_buf b = {0};
    pyjson_put(&b, "", 0);
    pyjson_dump(&b, x);
    if (len) *len = b.n;
    return b.p;
}

#endif
