/* jsval: a small JSON Schema (draft 2020-12) validator for tests, written with jansson and
 * independent of the converter in src/gram (it shares no code with it: patterns go to the C
 * library's POSIX regex engine, formats are checked by hand). Its job is to be the oracle that
 * says whether an instance is valid, so that grammar outputs can be checked against the schema.
 *
 *   int jsval_check(const json_t *schema, const json_t *inst, char *why, size_t why_len);
 *     1 valid, 0 invalid (why says where), -1 the schema uses something jsval does not
 *     implement (why names it): the caller must not trust the answer.
 *
 * Implemented: boolean schemas; type, enum, const (numbers equal across integer/real), numeric
 * bounds (and draft-04 boolean exclusive bounds), multipleOf; minLength, maxLength (code
 * points), pattern (ECMA-262 subset translated to POSIX ERE; lookaround, backreferences and
 * \p are -1), format date, time, date-time, uuid, email (dot-atom@hostname), ipv4 (other
 * formats are annotations); items, prefixItems (and array items / additionalItems), minItems,
 * maxItems, uniqueItems, contains, minContains, maxContains; properties, required,
 * additionalProperties, patternProperties, propertyNames, minProperties, maxProperties,
 * dependentRequired, dependentSchemas; allOf, anyOf, oneOf, not, if/then/else; $ref to "#",
 * "#/pointer", "#anchor" and the root's $id; nullable (OpenAPI). -1: $id below the root,
 * other URIs, $dynamicRef, unevaluatedProperties/Items. Unknown keywords are ignored, as the
 * specification says. Everything is static: include this header in one test file. */
#ifndef LMPIPE_TESTS_JSVAL_H
#define LMPIPE_TESTS_JSVAL_H

#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jsval {
    const json_t *root;
    const char *root_id;
    char *why;
    size_t why_len;
    int unsupported;
    int depth;
};

static int jsval_fail(struct jsval *v, const char *fmt, ...)
{
    if (v->why && v->why_len && !v->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->why, v->why_len, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static int jsval_unsup(struct jsval *v, const char *what)
{
    if (!v->unsupported && v->why && v->why_len) snprintf(v->why, v->why_len, "jsval does not implement %s", what);
    v->unsupported = 1;
    return 0;
}

/* ---- values ---- */

static int jsval_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_string(a))
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!jsval_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)a, k, x) {
            size_t kl = json_object_iter_key_len(json_object_key_to_iter(k));
            const json_t *y = json_object_getn(b, k, kl);
            if (!y || !jsval_equal(x, y)) return 0;
        }
        return 1;
    }
    return 1; /* true, false, null */
}

static int jsval_is_integer(const json_t *x)
{
    if (json_is_integer(x)) return 1;
    if (!json_is_real(x)) return 0;
    double d = json_real_value(x);
    return isfinite(d) && d == floor(d);
}

static size_t jsval_cps(const json_t *s)
{
    const unsigned char *p = (const unsigned char *)json_string_value(s);
    size_t n = json_string_length(s), k = 0;
    for (size_t i = 0; i < n; i++) k += (p[i] & 0xC0) != 0x80;
    return k;
}

/* a < b: -1, ==: 0, >: 1 (exact for two integers). */
static int jsval_numcmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

/* ---- patterns: ECMA-262 subset -> POSIX ERE ---- */

static void jsval_put(char **o, size_t *n, size_t *cap, const char *s, size_t len)
{
    if (!*o) return;
    if (*n + len + 1 > *cap) {
        *cap = (*n + len + 1) * 2;
        char *p = realloc(*o, *cap);
        if (!p) {
            free(*o);
            *o = NULL;
            return;
        }
        *o = p;
    }
    memcpy(*o + *n, s, len);
    *n += len;
    (*o)[*n] = 0;
}

/* Class escape body (inside brackets) for \d \w \s; NULL for others. */
static const char *jsval_class_body(char e)
{
    switch (e) {
    case 'd': return "0-9";
    case 'w': return "A-Za-z0-9_";
    case 's': return " \t\n\v\f\r\xc2\xa0\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf\xe3\x80\x80";
    default: return NULL;
    }
}

/* One escape (the character after the backslash) in ERE; 0 with *why when ERE cannot say it. */
static int jsval_ere_escape(char **o, size_t *on, size_t *cap, char e, int in_class, const char **why)
{
    const char *body = jsval_class_body((char)(e | 0x20));
    if (body) {
        int neg = e >= 'A' && e <= 'Z';
        if (in_class && neg) return *why = "negated class escape inside a class", 0;
        if (!in_class) jsval_put(o, on, cap, neg ? "[^" : "[", neg ? 2 : 1);
        jsval_put(o, on, cap, body, strlen(body));
        if (!in_class) jsval_put(o, on, cap, "]", 1);
        return 1;
    }
    static const char from[] = "tnrfv", to[] = "\t\n\r\f\v";
    const char *lit = strchr(from, e);
    if (lit && e) {
        jsval_put(o, on, cap, &to[lit - from], 1);
        return 1;
    }
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
        return *why = "escape (backreference, \\b, \\p, \\x, \\u...)", 0;
    if (in_class) {
        if (e == ']' || e == '\\' || e == '-' || e == '^') return *why = "escaped bracket syntax inside a class", 0;
        jsval_put(o, on, cap, &e, 1);
    } else {
        char esc[2] = {'\\', e};
        if (strchr(".[]()*+?{}|^$\\", e)) jsval_put(o, on, cap, esc, 2);
        else jsval_put(o, on, cap, &e, 1);
    }
    return 1;
}

/* Translate; NULL with *why set when the pattern needs what ERE lacks. */
static char *jsval_ere(const char *p, size_t n, const char **why)
{
    size_t cap = 2 * n + 16, on = 0;
    char *o = malloc(cap);
    int in_class = 0;
    if (o) o[0] = 0;
    for (size_t i = 0; i < n && o; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            if (!jsval_ere_escape(&o, &on, &cap, p[++i], in_class, why)) {
                free(o);
                return NULL;
            }
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = 0;
            jsval_put(&o, &on, &cap, &c, 1);
            continue;
        }
        if (c == '[') {
            in_class = 1;
            jsval_put(&o, &on, &cap, "[", 1);
            if (i + 1 < n && p[i + 1] == '^') jsval_put(&o, &on, &cap, &p[++i], 1);
            if (i + 1 < n && p[i + 1] == ']') { /* ECMA: [] is empty, POSIX: literal ] */
                *why = "empty class";
                free(o);
                return NULL;
            }
            continue;
        }
        if (c == '(' && i + 1 < n && p[i + 1] == '?') {
            if (i + 2 < n && p[i + 2] == ':') {
                jsval_put(&o, &on, &cap, "(", 1);
                i += 2;
                continue;
            }
            if (i + 3 < n && p[i + 2] == '<' && p[i + 3] != '=' && p[i + 3] != '!') { /* (?<name> */
                const char *gt = memchr(p + i, '>', n - i);
                if (gt) {
                    jsval_put(&o, &on, &cap, "(", 1);
                    i = (size_t)(gt - p);
                    continue;
                }
            }
            *why = "lookaround or named group";
            free(o);
            return NULL;
        }
        if (c == '?' && i > 0 && strchr("*+?}", p[i - 1]) && !(i > 1 && p[i - 2] == '\\')) continue; /* lazy */
        if (c == '.') {
            static const char dot[] = "[^\n\r\xe2\x80\xa8\xe2\x80\xa9]";
            jsval_put(&o, &on, &cap, dot, sizeof dot - 1);
            continue;
        }
        jsval_put(&o, &on, &cap, &c, 1);
    }
    if (!o) *why = "out of memory";
    return o;
}

static int jsval_pattern(struct jsval *v, const json_t *pat, const json_t *s)
{
    static int locale_set;
    if (!locale_set) {
        locale_set = 1;
        if (!setlocale(LC_CTYPE, "C.UTF-8")) setlocale(LC_CTYPE, "en_US.UTF-8");
    }
    const char *why = NULL;
    char *ere = jsval_ere(json_string_value(pat), json_string_length(pat), &why);
    if (!ere) return jsval_unsup(v, why);
    regex_t re;
    if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB)) {
        free(ere);
        return jsval_unsup(v, "a pattern POSIX regcomp refuses");
    }
    regmatch_t m[1];
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)json_string_length(s);
    int ok = regexec(&re, json_string_value(s), 1, m, REG_STARTEND) == 0;
    regfree(&re);
    free(ere);
    return ok ? 1 : jsval_fail(v, "\"%.40s\" does not match pattern %.60s", json_string_value(s), json_string_value(pat));
}

/* ---- formats ---- */

static int jsval_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int jsval_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

static int jsval_date(const char *s, size_t n)
{
    if (n != 10 || s[4] != '-' || s[7] != '-' || !jsval_digits(s, 4) || !jsval_digits(s + 5, 2) ||
        !jsval_digits(s + 8, 2))
        return 0;
    int y = jsval_num(s, 4), m = jsval_num(s + 5, 2), d = jsval_num(s + 8, 2);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

static int jsval_time(const char *s, size_t n)
{
    if (n < 9 || s[2] != ':' || s[5] != ':' || !jsval_digits(s, 2) || !jsval_digits(s + 3, 2) ||
        !jsval_digits(s + 6, 2))
        return 0;
    int h = jsval_num(s, 2), mi = jsval_num(s + 3, 2), se = jsval_num(s + 6, 2);
    size_t i = 8;
    if (i < n && s[i] == '.') {
        size_t k = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == k) return 0;
    }
    int off = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':' && jsval_digits(s + i + 1, 2) &&
               jsval_digits(s + i + 4, 2)) {
        int oh = jsval_num(s + i + 1, 2), om = jsval_num(s + i + 4, 2);
        if (oh > 23 || om > 59) return 0;
        off = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
    } else {
        return 0;
    }
    if (h > 23 || mi > 59 || se > 60) return 0;
    if (se == 60) { /* a leap second is 23:59:60 UTC */
        int utc = ((h * 60 + mi - off) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59) return 0;
    }
    return 1;
}

static int jsval_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    }
    return 1;
}

static int jsval_email(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at || memchr(at + 1, '@', n - (size_t)(at - s) - 1)) return 0;
    size_t ln = (size_t)(at - s);
    if (ln == 0 || s[0] == '.' || s[ln - 1] == '.') return 0;
    for (size_t i = 0; i < ln; i++) {
        char c = s[i];
        if (c == '.' && s[i + 1] == '.') return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+/=?^_`{|}~-.", c)))
            return 0;
    }
    const char *d = at + 1, *end = s + n;
    while (d <= end) {
        const char *dot = memchr(d, '.', (size_t)(end - d));
        size_t l = dot ? (size_t)(dot - d) : (size_t)(end - d);
        if (!jsval_label(d, l)) return 0;
        if (!dot) break;
        d = dot + 1;
    }
    return 1;
}

static int jsval_ipv4(const char *s, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (i <= n) {
        size_t k = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        size_t l = i - k;
        if (l == 0 || l > 3 || (l > 1 && s[k] == '0') || jsval_num(s + k, (int)l) > 255) return 0;
        parts++;
        if (i == n) break;
        if (s[i] != '.') return 0;
        i++;
    }
    return parts == 4;
}

static int jsval_hex(char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

static int jsval_uuid(const char *s, size_t n)
{
    if (n != 36) return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!jsval_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int jsval_format(struct jsval *v, const char *f, const json_t *s)
{
    const char *p = json_string_value(s);
    size_t n = json_string_length(s);
    int ok = 1;
    if (strcmp(f, "date") == 0) ok = jsval_date(p, n);
    else if (strcmp(f, "time") == 0) ok = jsval_time(p, n);
    else if (strcmp(f, "date-time") == 0)
        ok = n > 11 && (p[10] == 'T' || p[10] == 't') && jsval_date(p, 10) && jsval_time(p + 11, n - 11);
    else if (strcmp(f, "uuid") == 0) ok = jsval_uuid(p, n);
    else if (strcmp(f, "email") == 0) ok = jsval_email(p, n);
    else if (strcmp(f, "ipv4") == 0) ok = jsval_ipv4(p, n);
    return ok ? 1 : jsval_fail(v, "\"%.40s\" is not a %s", p, f);
}

/* ---- references ---- */

static const json_t *jsval_anchor(const json_t *s, const char *name, int depth)
{
    if (depth > 64) return NULL;
    if (json_is_object(s)) {
        const json_t *a = json_object_get(s, "$anchor");
        if (json_is_string(a) && strcmp(json_string_value(a), name) == 0) return s;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)s, k, x) {
            if (strcmp(k, "enum") == 0 || strcmp(k, "const") == 0) continue;
            const json_t *r = jsval_anchor(x, name, depth + 1);
            if (r) return r;
        }
    } else if (json_is_array(s)) {
        for (size_t i = 0; i < json_array_size(s); i++) {
            const json_t *r = jsval_anchor(json_array_get(s, i), name, depth + 1);
            if (r) return r;
        }
    }
    return NULL;
}

static const json_t *jsval_ref(struct jsval *v, const char *ref)
{
    const char *h = strchr(ref, '#');
    size_t bl = h ? (size_t)(h - ref) : strlen(ref);
    if (bl && (!v->root_id || strlen(v->root_id) != bl || strncmp(ref, v->root_id, bl) != 0)) {
        jsval_unsup(v, "non-local $ref");
        return NULL;
    }
    if (!h || !h[1]) return v->root;
    /* percent-decode the fragment */
    size_t n = strlen(h + 1);
    char *f = malloc(n + 1), *o = f;
    if (!f) return NULL;
    for (const char *p = h + 1; *p; p++) {
        unsigned hi, lo;
        if (*p == '%' && p[1] && p[2] && sscanf(p + 1, "%1x%1x", &hi, &lo) == 2) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    const json_t *cur = v->root;
    if (f[0] != '/') {
        cur = jsval_anchor(v->root, f, 0);
    } else {
        char *tok = f + 1;
        for (;;) {
            char *next = strchr(tok, '/');
            if (next) *next = 0;
            char *w = tok;
            for (char *r = tok; *r; r++) {
                if (r[0] == '~' && r[1] == '1') *w++ = '/', r++;
                else if (r[0] == '~' && r[1] == '0') *w++ = '~', r++;
                else *w++ = *r;
            }
            *w = 0;
            if (json_is_object(cur)) cur = json_object_get(cur, tok);
            else if (json_is_array(cur)) cur = json_array_get(cur, strtoul(tok, NULL, 10));
            else cur = NULL;
            if (!cur || !next) break;
            tok = next + 1;
        }
    }
    free(f);
    if (!cur) jsval_unsup(v, "an unresolvable $ref");
    return cur;
}

/* ---- validation ---- */

static int jsval_run(struct jsval *v, const json_t *s, const json_t *x);

static int jsval_type_ok(const char *t, const json_t *x)
{
    if (strcmp(t, "null") == 0) return json_is_null(x);
    if (strcmp(t, "boolean") == 0) return json_is_boolean(x);
    if (strcmp(t, "object") == 0) return json_is_object(x);
    if (strcmp(t, "array") == 0) return json_is_array(x);
    if (strcmp(t, "number") == 0) return json_is_number(x);
    if (strcmp(t, "integer") == 0) return jsval_is_integer(x);
    if (strcmp(t, "string") == 0) return json_is_string(x);
    return 0;
}

/* Run a subschema with a clean message buffer state (for anyOf/oneOf/not/if). */
static int jsval_quiet(struct jsval *v, const json_t *s, const json_t *x)
{
    char *why = v->why;
    v->why = NULL;
    int r = jsval_run(v, s, x);
    v->why = why;
    return r;
}

static int jsval_numbers(struct jsval *v, const json_t *s, const json_t *x)
{
    const json_t *k;
    const json_t *emin = json_object_get(s, "exclusiveMinimum"), *emax = json_object_get(s, "exclusiveMaximum");
    if ((k = json_object_get(s, "minimum")) && jsval_numcmp(x, k) < (json_is_true(emin) ? 1 : 0))
        return jsval_fail(v, "below minimum");
    if ((k = json_object_get(s, "maximum")) && jsval_numcmp(x, k) > (json_is_true(emax) ? -1 : 0))
        return jsval_fail(v, "above maximum");
    if (json_is_number(emin) && jsval_numcmp(x, emin) <= 0) return jsval_fail(v, "not above exclusiveMinimum");
    if (json_is_number(emax) && jsval_numcmp(x, emax) >= 0) return jsval_fail(v, "not below exclusiveMaximum");
    if ((k = json_object_get(s, "multipleOf"))) {
        if (json_is_integer(x) && json_is_integer(k)) {
            if (json_integer_value(x) % json_integer_value(k)) return jsval_fail(v, "not a multiple");
        } else {
            double q = json_number_value(x) / json_number_value(k);
            if (!isfinite(q) || fabs(q - nearbyint(q)) > 1e-9 * fmax(1, fabs(q))) return jsval_fail(v, "not a multiple");
        }
    }
    return 1;
}

static int jsval_strings(struct jsval *v, const json_t *s, const json_t *x)
{
    const json_t *k;
    size_t n = jsval_cps(x);
    if ((k = json_object_get(s, "minLength")) && n < (size_t)json_number_value(k)) return jsval_fail(v, "too short");
    if ((k = json_object_get(s, "maxLength")) && n > (size_t)json_number_value(k)) return jsval_fail(v, "too long");
    if ((k = json_object_get(s, "pattern")) && !jsval_pattern(v, k, x)) return 0;
    if ((k = json_object_get(s, "format")) && json_is_string(k) && !jsval_format(v, json_string_value(k), x)) return 0;
    return 1;
}

static int jsval_arrays(struct jsval *v, const json_t *s, const json_t *x)
{
    const json_t *k;
    size_t n = json_array_size(x);
    if ((k = json_object_get(s, "minItems")) && n < (size_t)json_number_value(k)) return jsval_fail(v, "too few items");
    if ((k = json_object_get(s, "maxItems")) && n > (size_t)json_number_value(k)) return jsval_fail(v, "too many items");
    const json_t *pre = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
    const json_t *tail = items;
    if (json_is_array(items) && !pre) {
        pre = items;
        tail = json_object_get(s, "additionalItems");
    }
    size_t np = json_array_size(pre);
    for (size_t i = 0; i < n; i++) {
        const json_t *sub = i < np ? json_array_get(pre, i) : tail;
        if (sub && !jsval_run(v, sub, json_array_get(x, i))) return jsval_fail(v, "item %zu", i);
    }
    if (json_is_true(json_object_get(s, "uniqueItems")))
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (jsval_equal(json_array_get(x, i), json_array_get(x, j))) return jsval_fail(v, "items not unique");
    if ((k = json_object_get(s, "contains"))) {
        size_t hits = 0;
        for (size_t i = 0; i < n; i++) hits += jsval_quiet(v, k, json_array_get(x, i)) == 1;
        const json_t *mn = json_object_get(s, "minContains"), *mx = json_object_get(s, "maxContains");
        size_t lo = mn ? (size_t)json_number_value(mn) : 1;
        if (hits < lo) return jsval_fail(v, "contains");
        if (mx && hits > (size_t)json_number_value(mx)) return jsval_fail(v, "maxContains");
    }
    return 1;
}

/* Whether key matches any patternProperties pattern; runs them. -1 on unsupported. */
static int jsval_objects(struct jsval *v, const json_t *s, const json_t *x)
{
    const json_t *k;
    size_t n = json_object_size(x);
    if ((k = json_object_get(s, "minProperties")) && n < (size_t)json_number_value(k)) return jsval_fail(v, "minProperties");
    if ((k = json_object_get(s, "maxProperties")) && n > (size_t)json_number_value(k)) return jsval_fail(v, "maxProperties");
    const json_t *req = json_object_get(s, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *r = json_array_get(req, i);
        if (!json_object_getn(x, json_string_value(r), json_string_length(r)))
            return jsval_fail(v, "missing required \"%s\"", json_string_value(r));
    }
    const json_t *props = json_object_get(s, "properties"), *pp = json_object_get(s, "patternProperties");
    const json_t *add = json_object_get(s, "additionalProperties"), *pn = json_object_get(s, "propertyNames");
    const json_t *dr = json_object_get(s, "dependentRequired"), *ds = json_object_get(s, "dependentSchemas");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)x, key, val) {
        size_t kl = json_object_iter_key_len(json_object_key_to_iter(key));
        json_t *ks = json_stringn(key, kl);
        if (!ks) return jsval_unsup(v, "memory");
        int matched = 0;
        const json_t *sub = props ? json_object_getn(props, key, kl) : NULL;
        int ok = 1;
        if (sub) {
            matched = 1;
            ok = jsval_run(v, sub, val);
        }
        const char *pk;
        json_t *ps;
        if (ok && pp) json_object_foreach((json_t *)pp, pk, ps) {
                json_t *pat = json_string(pk);
                char *why = v->why;
                v->why = NULL;
                int m = pat ? jsval_pattern(v, pat, ks) : 0;
                v->why = why;
                json_decref(pat);
                if (m) {
                    matched = 1;
                    if (!jsval_run(v, ps, val)) ok = 0;
                }
            }
        if (ok && !matched && add && !jsval_run(v, add, val)) ok = 0;
        if (ok && pn && !jsval_run(v, pn, ks)) ok = 0;
        if (ok && dr) {
            const json_t *need = json_object_getn(dr, key, kl);
            for (size_t i = 0; i < json_array_size(need) && ok; i++)
                ok = json_object_get(x, json_string_value(json_array_get(need, i))) != NULL;
        }
        if (ok && ds) {
            const json_t *dsub = json_object_getn(ds, key, kl);
            if (dsub && !jsval_run(v, dsub, x)) ok = 0;
        }
        json_decref(ks);
        if (!ok) return jsval_fail(v, "property \"%s\"", key);
    }
    return 1;
}

static const char *const jsval_unimpl[] = {"$dynamicRef", "$dynamicAnchor", "$recursiveRef",
                                           "unevaluatedProperties", "unevaluatedItems"};

static int jsval_run(struct jsval *v, const json_t *s, const json_t *x)
{
    if (v->unsupported) return 0;
    if (json_is_true(s)) return 1;
    if (json_is_false(s)) return jsval_fail(v, "false schema");
    if (!json_is_object(s)) return jsval_unsup(v, "a schema that is not an object or boolean");
    if (++v->depth > 200) {
        v->depth--;
        return jsval_unsup(v, "recursion deeper than 200");
    }
    int ok = 1;
    const json_t *k;
    for (size_t i = 0; i < sizeof jsval_unimpl / sizeof jsval_unimpl[0]; i++)
        if (json_object_get(s, jsval_unimpl[i])) ok = jsval_unsup(v, jsval_unimpl[i]);
    if (s != v->root && json_object_get(s, "$id")) ok = jsval_unsup(v, "$id below the root");
    if (ok && (k = json_object_get(s, "$ref"))) {
        const json_t *t = jsval_ref(v, json_string_value(k));
        ok = t && jsval_run(v, t, x);
    }
    if (ok && (k = json_object_get(s, "type"))) {
        int m = 0;
        if (json_is_string(k)) m = jsval_type_ok(json_string_value(k), x);
        for (size_t i = 0; i < json_array_size(k); i++) m |= jsval_type_ok(json_string_value(json_array_get(k, i)), x);
        if (json_is_true(json_object_get(s, "nullable")) && json_is_null(x)) m = 1;
        if (!m) ok = jsval_fail(v, "wrong type");
    }
    if (ok && (k = json_object_get(s, "enum"))) {
        int m = 0;
        for (size_t i = 0; i < json_array_size(k) && !m; i++) m = jsval_equal(json_array_get(k, i), x);
        if (!m) ok = jsval_fail(v, "not in enum");
    }
    if (ok && (k = json_object_get(s, "const")) && !jsval_equal(k, x)) ok = jsval_fail(v, "not the const");
    if (ok && json_is_number(x)) ok = jsval_numbers(v, s, x);
    if (ok && json_is_string(x)) ok = jsval_strings(v, s, x);
    if (ok && json_is_array(x)) ok = jsval_arrays(v, s, x);
    if (ok && json_is_object(x)) ok = jsval_objects(v, s, x);
    if (ok && (k = json_object_get(s, "allOf")))
        for (size_t i = 0; i < json_array_size(k) && ok; i++) ok = jsval_run(v, json_array_get(k, i), x);
    if (ok && (k = json_object_get(s, "anyOf"))) {
        int m = 0;
        for (size_t i = 0; i < json_array_size(k) && !m; i++) m = jsval_quiet(v, json_array_get(k, i), x);
        if (!m) ok = jsval_fail(v, "no anyOf branch");
    }
    if (ok && (k = json_object_get(s, "oneOf"))) {
        int m = 0;
        for (size_t i = 0; i < json_array_size(k); i++) m += jsval_quiet(v, json_array_get(k, i), x);
        if (m != 1) ok = jsval_fail(v, "%d oneOf branches match", m);
    }
    if (ok && (k = json_object_get(s, "not")) && jsval_quiet(v, k, x)) ok = jsval_fail(v, "not");
    if (ok && (k = json_object_get(s, "if"))) {
        const json_t *br = jsval_quiet(v, k, x) ? json_object_get(s, "then") : json_object_get(s, "else");
        if (br) ok = jsval_run(v, br, x);
    }
    v->depth--;
    return ok && !v->unsupported;
}

static inline int jsval_check(const json_t *schema, const json_t *inst, char *why, size_t why_len)
{
    struct jsval v = {0};
    v.root = schema;
    const json_t *id = json_is_object(schema) ? json_object_get(schema, "$id") : NULL;
    v.root_id = json_is_string(id) ? json_string_value(id) : NULL;
    v.why = why;
    v.why_len = why_len;
    if (why && why_len) why[0] = 0;
    int r = jsval_run(&v, schema, inst);
    return v.unsupported ? -1 : r;
}

#endif
