/* gram_schema: JSON Schema -> GBNF. See gram_schema.h for the contract.
 *
 * Three passes over a parsed schema:
 *  1. walk: every schema reachable from the root (through subschema keywords and local $refs) is
 *     visited once; malformed keywords are ERR_INVALID, unsupported ones are collected with their
 *     JSON pointers and refused together. Every oneOf is then checked for exclusive branches.
 *  2. a schema position is a set of terms that must all hold (a schema object, or a const value
 *     standing for itself); `flatten` expands $ref, allOf, anyOf, oneOf and enum into a union of
 *     flat conjunctions, and each conjunction is merged into one `struct ir` with per-type
 *     constraints (allOf is merged, not emitted as alternatives). const and enum values become
 *     structure too: [1, "a"] is prefix items 1 and "a" with exactly two items, {"k": v} is a
 *     required property k = v and no others, a number v is the interval [v, v], so const and
 *     enum intersect with any sibling keyword by the same merge.
 *  3. emit: one rule per distinct term set (memoised, so $ref recursion refers back to the rule
 *     being built), with alternatives per JSON type. Children (items, property values) are term
 *     sets too: the schemas each merged term says for that position.
 * Emptiness ("no instance can match") is computed conservatively over the same structure and
 * used to prune impossible properties / items and to prove oneOf branches exclusive: a set in
 * the middle of being computed counts as non-empty, so "empty" is always a proof. */
#include "gram_schema_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of a key from json_object_foreach (keys may hold NUL). */
static size_t key_len_of(const char *key)
{
    return json_object_iter_key_len(json_object_key_to_iter(key));
}

/* ---- terms and term sets ---- */

enum { TK_SCHEMA, TK_CONST, TK_ANYOF, TK_ONEOF, TK_ENUM };

struct term {
    const json_t *j;
    int kind;
};

static int term_cmp(const void *a, const void *b)
{
    const struct term *x = a, *y = b;
    if (x->j != y->j) return (uintptr_t)x->j < (uintptr_t)y->j ? -1 : 1;
    return x->kind - y->kind;
}

static const char *const g_annotations[] = {
    "$schema", "$comment", "title", "description", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "contentSchema",
    "$vocabulary", "$defs", "definitions", "$anchor", "$id"};

static int in_list(const char *k, const char *const *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, l[i]) == 0) return 1;
    return 0;
}

/* A schema that constrains nothing (true or annotations only). */
static int is_universal(const json_t *s)
{
    if (json_is_true(s)) return 1;
    if (!json_is_object(s)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (!in_list(k, g_annotations, sizeof g_annotations / sizeof g_annotations[0]) && strncmp(k, "x-", 2) != 0)
            return 0;
    }
    return 1;
}

/* Sorted, deduplicated, schemas that constrain nothing dropped. */
static size_t tset_norm(struct term *t, size_t n)
{
    if (n == 0) return 0;
    qsort(t, n, sizeof *t, term_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind == TK_SCHEMA && is_universal(t[i].j)) continue;
        if (k > 0 && term_cmp(&t[k - 1], &t[i]) == 0) continue;
        t[k++] = t[i];
    }
    return k;
}

struct tvec {
    struct term *t;
    size_t n, cap;
    int oom;
};

static void tv_push(struct tvec *v, const json_t *j, int kind)
{
    if (v->oom) return;
    if (gram_js_grow(&v->t, &v->cap, v->n + 1, sizeof *v->t)) {
        v->oom = 1;
        return;
    }
    v->t[v->n].j = j;
    v->t[v->n].kind = kind;
    v->n++;
}

static void tv_free(struct tvec *v)
{
    free(v->t);
    memset(v, 0, sizeof *v);
}

static int tv_has(const struct tvec *v, const json_t *j, int kind)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->t[i].j == j && v->t[i].kind == kind) return 1;
    return 0;
}

/* ---- converter state ---- */

/* A memoised term set: its rule once emitted, its emptiness once known. */
struct mset {
    struct term *t;
    size_t n;
    uint64_t h;
    size_t rule;   /* SIZE_MAX: none */
    int empty;     /* 0 unknown, 1 computing, 2 empty, 3 not empty */
};

/* A visited schema and its JSON pointer (for messages). */
struct visit {
    const json_t *j;
    char *ptr;
};

/* oneOf verdicts, per oneOf array. */
struct oneof {
    const json_t *arr;
    int state; /* 0 checking, 1 exclusive, 2 matches nothing (two branches match everything) */
};

struct sx {
    struct gram_js_ctx *c;
    const json_t *root;
    const char *root_id;
    struct mset *m;
    size_t nm, capm;
    size_t *htab; /* index + 1 */
    size_t hcap;
    struct visit *v;
    size_t nv, capv;
    struct oneof *oo;
    size_t noo, capoo;
    struct gram_js_buf problems; /* "keyword at pointer (why); ..." */
    size_t n_problems;
    int depth; /* emptiness recursion */
};

static uint64_t tset_hash(const struct term *t, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint64_t)(uintptr_t)t[i].j) * 1099511628211ull;
        h = (h ^ (uint64_t)t[i].kind) * 1099511628211ull;
    }
    return h;
}

/* Field by field: struct term has padding, which memcmp would read. */
static int tset_eq(const struct term *a, const struct term *b, size_t n, size_t na)
{
    if (n != na) return 0;
    for (size_t i = 0; i < n; i++)
        if (a[i].j != b[i].j || a[i].kind != b[i].kind) return 0;
    return 1;
}

/* The memo entry of a normalised set, created when missing. NULL after an error. */
static struct mset *mset_get(struct sx *x, const struct term *t, size_t n)
{
    struct gram_js_ctx *c = x->c;
    uint64_t h = tset_hash(t, n);
    if (x->hcap) {
        for (size_t k = h & (x->hcap - 1); x->htab[k]; k = (k + 1) & (x->hcap - 1)) {
            struct mset *e = &x->m[x->htab[k] - 1];
            if (e->h == h && tset_eq(e->t, t, n, e->n)) return e;
        }
    }
    if (x->nm * 2 + 2 >= x->hcap) {
        size_t hc = x->hcap ? x->hcap * 2 : 256;
        size_t *tab = calloc(hc, sizeof *tab);
        if (!tab) {
            gram_js_fail(c, ERR_NOMEM, "out of memory");
            return NULL;
        }
        for (size_t i = 0; i < x->nm; i++) {
            size_t k = x->m[i].h & (hc - 1);
            while (tab[k]) k = (k + 1) & (hc - 1);
            tab[k] = i + 1;
        }
        free(x->htab);
        x->htab = tab;
        x->hcap = hc;
    }
    if (gram_js_grow(&x->m, &x->capm, x->nm + 1, sizeof *x->m)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return NULL;
    }
    struct mset *e = &x->m[x->nm];
    e->t = malloc((n ? n : 1) * sizeof *t);
    if (!e->t) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (n) memcpy(e->t, t, n * sizeof *t);
    e->n = n;
    e->h = h;
    e->rule = SIZE_MAX;
    e->empty = 0;
    size_t k = h & (x->hcap - 1);
    while (x->htab[k]) k = (k + 1) & (x->hcap - 1);
    x->htab[k] = ++x->nm;
    return e;
}

static void memo_clear(struct sx *x)
{
    for (size_t i = 0; i < x->nm; i++) free(x->m[i].t);
    x->nm = 0;
    if (x->htab) memset(x->htab, 0, x->hcap * sizeof *x->htab);
}

static const char *ptr_of(const struct sx *x, const json_t *j)
{
    for (size_t i = 0; i < x->nv; i++)
        if (x->v[i].j == j) return x->v[i].ptr;
    return "";
}

/* ---- $ref resolution ---- */

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = (char)(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into out (NUL-terminated); returns the length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int h1 = i + 2 < n ? hex_digit(s[i + 1]) : -1, h2 = i + 2 < n ? hex_digit(s[i + 2]) : -1;
        if (s[i] == '%' && h1 >= 0 && h2 >= 0) {
            out[k++] = (char)(h1 * 16 + h2);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = 0;
    return k;
}

/* Follow a JSON pointer (already percent-decoded) from the root. */
static const json_t *pointer_get(const json_t *root, const char *p, size_t n)
{
    const json_t *cur = root;
    size_t i = 0;
    if (n == 0) return root;
    if (p[0] != '/') return NULL;
    char *tok = malloc(n + 1);
    if (!tok) return NULL;
    while (i < n && cur) {
        i++; /* the '/' */
        size_t k = 0;
        while (i < n && p[i] != '/') {
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                tok[k++] = p[i + 1] == '0' ? '~' : '/';
                i += 2;
            } else {
                tok[k++] = p[i++];
            }
        }
        tok[k] = 0;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, k);
        } else if (json_is_array(cur)) {
            char *end;
            if (k == 0 || (k > 1 && tok[0] == '0') || tok[0] < '0' || tok[0] > '9') {
                cur = NULL;
                break;
            }
            unsigned long idx = strtoul(tok, &end, 10);
            cur = *end ? NULL : json_array_get(cur, idx);
        } else {
            cur = NULL;
        }
    }
    free(tok);
    return cur;
}

/* The schema with "$anchor": name, searched through subschema positions. */
static const json_t *anchor_find(const json_t *s, const char *name, size_t n, int depth)
{
    if (!json_is_object(s) || depth > GRAM_JS_MAX_DEPTH) return NULL;
    if (depth > 0 && json_object_get(s, "$id")) return NULL; /* another resource's anchors */
    const json_t *a = json_object_get(s, "$anchor");
    if (json_is_string(a) && json_string_length(a) == n && memcmp(json_string_value(a), name, n) == 0)
        return s;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)s, key, val) {
        if (strcmp(key, "enum") == 0 || strcmp(key, "const") == 0 || strcmp(key, "default") == 0 ||
            strcmp(key, "examples") == 0)
            continue;
        if (json_is_object(val)) {
            const json_t *r = anchor_find(val, name, n, depth + 1);
            if (r) return r;
            if (strcmp(key, "properties") == 0 || strcmp(key, "$defs") == 0 ||
                strcmp(key, "definitions") == 0) {
                const char *k2;
                json_t *v2;
                json_object_foreach(val, k2, v2) {
                    r = anchor_find(v2, name, n, depth + 1);
                    if (r) return r;
                }
            }
        } else if (json_is_array(val)) {
            size_t i;
            json_t *v2;
            json_array_foreach(val, i, v2) {
                const json_t *r = anchor_find(v2, name, n, depth + 1);
                if (r) return r;
            }
        }
    }
    return NULL;
}

/* Resolve a $ref; NULL with *why set when it is not local or not found. */
static const json_t *ref_resolve(const struct sx *x, const char *ref, size_t n, const char **why)
{
    const char *frag = memchr(ref, '#', n);
    size_t base_len = frag ? (size_t)(frag - ref) : n;
    if (base_len > 0) {
        if (!x->root_id || strlen(x->root_id) != base_len || memcmp(ref, x->root_id, base_len) != 0) {
            *why = "only local references (#...) are supported";
            return NULL;
        }
    }
    if (!frag) return x->root;
    frag++;
    size_t fl = n - (size_t)(frag - ref);
    char *dec = malloc(fl + 1);
    if (!dec) {
        *why = "out of memory";
        return NULL;
    }
    size_t dl = pct_decode(frag, fl, dec);
    const json_t *r;
    if (dl == 0 || dec[0] == '/') r = pointer_get(x->root, dec, dl);
    else r = anchor_find(x->root, dec, dl, 0);
    free(dec);
    if (!r) *why = "target not found";
    else if (!json_is_object(r) && !json_is_boolean(r)) {
        *why = "target is not a schema";
        r = NULL;
    }
    return r;
}

/* ---- pass 1: walk and check ---- */

static void problem(struct sx *x, const char *ptr, const char *kw, const char *why)
{
    x->n_problems++;
    struct gram_js_buf *b = &x->problems;
    if (b->n > 0) gram_js_puts(b, "; ");
    gram_js_printf(b, "%s at %s/%s", kw, ptr, kw);
    if (why) gram_js_printf(b, " (%s)", why);
}

static const char *const g_unsupported[] = {
    "not", "if", "then", "else", "dependentSchemas", "dependentRequired", "dependencies",
    "patternProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
    "contains", "minContains", "maxContains", "uniqueItems", "multipleOf",
    "maxProperties", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor"};

static int is_count(const json_t *v)
{
    if (json_is_integer(v)) return json_integer_value(v) >= 0;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d >= 0 && d <= 9e15 && d == (double)(long long)d;
    }
    return 0;
}

static uint64_t count_of(const json_t *v)
{
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : (uint64_t)json_real_value(v);
}

static int is_schema(const json_t *v) { return json_is_object(v) || json_is_boolean(v); }

static const char *const g_types[] = {"null", "boolean", "object", "array", "number", "integer",
                                      "string"};

static int valid_type_name(const json_t *v)
{
    return json_is_string(v) && in_list(json_string_value(v), g_types, 7);
}

/* Paths: a growing JSON pointer. */
struct path {
    char *p;
    size_t n, cap;
};

static int path_push(struct path *pa, const char *seg, size_t len)
{
    if (gram_js_grow(&pa->p, &pa->cap, pa->n + 2 * len + 2, 1)) return -1;
    size_t old = pa->n;
    pa->p[pa->n++] = '/';
    for (size_t i = 0; i < len; i++) {
        if (seg[i] == '~') pa->p[pa->n++] = '~', pa->p[pa->n++] = '0';
        else if (seg[i] == '/') pa->p[pa->n++] = '~', pa->p[pa->n++] = '1';
        else pa->p[pa->n++] = seg[i] ? seg[i] : '?';
    }
    pa->p[pa->n] = 0;
    return (int)old;
}

static void path_pop(struct path *pa, int old)
{
    if (old >= 0) {
        pa->n = (size_t)old;
        pa->p[pa->n] = 0;
    }
}

static void walk(struct sx *x, const json_t *s, struct path *pa, int depth);

static void walk_kw(struct sx *x, const json_t *s, const char *kw, struct path *pa, int depth)
{
    const json_t *v = json_object_get(s, kw);
    int o = path_push(pa, kw, strlen(kw));
    if (o < 0) {
        gram_js_fail(x->c, ERR_NOMEM, "out of memory");
        return;
    }
    walk(x, v, pa, depth + 1);
    path_pop(pa, o);
}

static void walk_array(struct sx *x, const json_t *s, const char *kw, struct path *pa, int depth)
{
    const json_t *v = json_object_get(s, kw);
    int o = path_push(pa, kw, strlen(kw));
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        char idx[24];
        int n = snprintf(idx, sizeof idx, "%zu", i);
        int o2 = path_push(pa, idx, (size_t)n);
        walk(x, e, pa, depth + 1);
        path_pop(pa, o2);
    }
    path_pop(pa, o);
}

/* Keyword checkers: each returns 1 when the value is malformed (check_kw then reports
 * ERR_INVALID), and may itself record a problem (unsupported use) or a limit. */
typedef int (*kw_check)(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr);

static int ck_type(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)ptr;
    if (!json_is_array(v)) return !valid_type_name(v);
    if (json_array_size(v) == 0) return 1;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!valid_type_name(json_array_get(v, i))) return 1;
    return 0;
}

static int ck_enum(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s, (void)k;
    if (!json_is_array(v)) return 1;
    if (json_array_size(v) > GRAM_JS_MAX_ENUM)
        gram_js_fail(x->c, ERR_LIMIT, "enum at %s/enum has %zu values (limit %d)", ptr, json_array_size(v),
                     GRAM_JS_MAX_ENUM);
    return 0;
}

static int ck_bool(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!json_is_boolean(v)) return 1;
    if (strcmp(k, "uniqueItems") == 0 && json_is_true(v)) problem(x, ptr, k, NULL);
    return 0;
}

static int ck_number(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)ptr;
    return !json_is_number(v);
}

/* exclusiveMinimum / exclusiveMaximum: a number, or draft-04's boolean modifier */
static int ck_exclusive(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)ptr;
    return !json_is_number(v) && !json_is_boolean(v);
}

static int ck_count(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!is_count(v)) return 1;
    if (count_of(v) > GRAM_JS_MAX_COUNT)
        gram_js_fail(x->c, ERR_LIMIT, "%s at %s/%s is above %llu", k, ptr, k, (unsigned long long)GRAM_JS_MAX_COUNT);
    return 0;
}

static int ck_pattern(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!json_is_string(v)) return 1;
    char why[128] = "";
    int rc = gram_js_pattern_check(json_string_value(v), json_string_length(v), why, sizeof why);
    if (rc == ERR_UNSUPPORTED) problem(x, ptr, k, why);
    else if (rc) gram_js_fail(x->c, rc == ERR_NOMEM || rc == ERR_LIMIT ? rc : ERR_INVALID, "pattern at %s/pattern: %s", ptr, why);
    return 0;
}

static int ck_format(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!json_is_string(v)) return 1;
    if (!gram_js_format_bit(json_string_value(v)) && !(x->c->o.flags & GRAM_SCHEMA_LAX_FORMAT)) {
        char why[96];
        snprintf(why, sizeof why, "format \"%.40s\" unknown", json_string_value(v));
        problem(x, ptr, k, why);
    }
    return 0;
}

static int ck_required(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s, (void)k;
    if (!json_is_array(v)) return 1;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) return 1;
        if (json_string_length(e) > GRAM_JS_MAX_KEY)
            gram_js_fail(x->c, ERR_LIMIT, "required at %s/required: a name longer than %d bytes", ptr, GRAM_JS_MAX_KEY);
    }
    if (json_array_size(v) > GRAM_JS_MAX_PROPS)
        gram_js_fail(x->c, ERR_LIMIT, "required at %s/required lists more than %d names", ptr, GRAM_JS_MAX_PROPS);
    return 0;
}

/* properties, $defs, definitions: name -> schema */
static int ck_schema_map(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!json_is_object(v)) return 1;
    const char *kk;
    json_t *vv;
    json_object_foreach((json_t *)v, kk, vv) {
        if (!is_schema(vv)) return 1;
        if (k[0] == 'p' && key_len_of(kk) > GRAM_JS_MAX_KEY)
            gram_js_fail(x->c, ERR_LIMIT, "properties at %s/properties: a name longer than %d bytes", ptr, GRAM_JS_MAX_KEY);
    }
    if (k[0] == 'p' && json_object_size(v) > GRAM_JS_MAX_PROPS)
        gram_js_fail(x->c, ERR_LIMIT, "properties at %s/properties has more than %d names", ptr, GRAM_JS_MAX_PROPS);
    return 0;
}

/* allOf, anyOf, oneOf, prefixItems: a non-empty list of schemas */
static int ck_schema_list(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)ptr;
    if (!json_is_array(v) || json_array_size(v) == 0) return 1;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!is_schema(json_array_get(v, i))) return 1;
    return 0;
}

static int ck_schema(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)ptr;
    return !is_schema(v);
}

/* items: a schema, or draft-07's list (then not beside prefixItems) */
static int ck_items(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    if (!json_is_array(v)) return !is_schema(v);
    if (ck_schema_list(x, s, k, v, ptr) && json_array_size(v) > 0) return 1;
    if (json_object_get(s, "prefixItems"))
        gram_js_fail(x->c, ERR_INVALID, "items at %s/items: an array of items beside prefixItems", ptr);
    return 0;
}

static int ck_ref(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!json_is_string(v)) return 1;
    const char *why = NULL;
    if (ref_resolve(x, json_string_value(v), json_string_length(v), &why)) return 0;
    if (strcmp(why, "target not found") == 0 || strcmp(why, "target is not a schema") == 0)
        gram_js_fail(x->c, ERR_INVALID, "$ref at %s/$ref: \"%.80s\": %s", ptr, json_string_value(v), why);
    else
        problem(x, ptr, k, why);
    return 0;
}

static int ck_string(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)ptr;
    return !json_is_string(v);
}

/* minProperties 0 says nothing; anything else is not supported */
static int ck_min_properties(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)s;
    if (!is_count(v)) return 1;
    if (count_of(v) > 0) problem(x, ptr, k, NULL);
    return 0;
}

static int ck_none(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    (void)x, (void)s, (void)k, (void)v, (void)ptr;
    return 0;
}

static const struct {
    const char *kw;
    kw_check fn;
} g_keywords[] = {
    {"type", ck_type},           {"enum", ck_enum},           {"const", ck_none},
    {"nullable", ck_bool},       {"uniqueItems", ck_bool},    {"minimum", ck_number},
    {"maximum", ck_number},      {"exclusiveMinimum", ck_exclusive},
    {"exclusiveMaximum", ck_exclusive},                       {"minLength", ck_count},
    {"maxLength", ck_count},     {"minItems", ck_count},      {"maxItems", ck_count},
    {"pattern", ck_pattern},     {"format", ck_format},       {"required", ck_required},
    {"properties", ck_schema_map}, {"$defs", ck_schema_map},  {"definitions", ck_schema_map},
    {"allOf", ck_schema_list},   {"anyOf", ck_schema_list},   {"oneOf", ck_schema_list},
    {"prefixItems", ck_schema_list}, {"items", ck_items},     {"additionalProperties", ck_schema},
    {"additionalItems", ck_schema}, {"$ref", ck_ref},         {"$id", ck_string},
    {"$anchor", ck_string},      {"minProperties", ck_min_properties},
};

/* Check one keyword: supported ones by their checker, unsupported and unknown ones recorded as
 * problems, annotations (and x- extensions) ignored. */
static void check_kw(struct sx *x, const json_t *s, const char *k, const json_t *v, const char *ptr)
{
    for (size_t i = 0; i < sizeof g_keywords / sizeof g_keywords[0]; i++) {
        if (strcmp(k, g_keywords[i].kw) != 0) continue;
        if (g_keywords[i].fn(x, s, k, v, ptr)) gram_js_fail(x->c, ERR_INVALID, "%s at %s/%s: invalid value", k, ptr, k);
        return;
    }
    if (in_list(k, g_unsupported, sizeof g_unsupported / sizeof g_unsupported[0])) problem(x, ptr, k, NULL);
    else if (!in_list(k, g_annotations, sizeof g_annotations / sizeof g_annotations[0]) && strncmp(k, "x-", 2) != 0)
        problem(x, ptr, k, "unknown keyword");
}

/* The subschemas of s under their pointers. */
static void walk_children(struct sx *x, const json_t *s, struct path *pa, int depth)
{
    static const char *const single[] = {"additionalProperties", "additionalItems"};
    for (size_t i = 0; i < 2; i++)
        if (json_object_get(s, single[i])) walk_kw(x, s, single[i], pa, depth);
    const json_t *it = json_object_get(s, "items");
    if (json_is_array(it)) walk_array(x, s, "items", pa, depth);
    else if (it) walk_kw(x, s, "items", pa, depth);
    static const char *const arrays[] = {"allOf", "anyOf", "oneOf", "prefixItems"};
    for (size_t i = 0; i < 4; i++)
        if (json_object_get(s, arrays[i])) walk_array(x, s, arrays[i], pa, depth);
    const json_t *props = json_object_get(s, "properties");
    if (!props) return;
    int o = path_push(pa, "properties", 10);
    const char *pk;
    json_t *pv;
    json_object_foreach((json_t *)props, pk, pv) {
        int o2 = path_push(pa, pk, key_len_of(pk));
        if (o2 < 0) {
            gram_js_fail(x->c, ERR_NOMEM, "out of memory");
            break;
        }
        walk(x, pv, pa, depth + 1);
        path_pop(pa, o2);
    }
    path_pop(pa, o);
}

/* The target of s's $ref, under its own pointer (its fragment), or the root's when it is not a
 * pointer. Deeper for the depth limit, so a chain of references counts as nesting. */
static void walk_ref_target(struct sx *x, const json_t *s, int depth)
{
    const json_t *ref = json_object_get(s, "$ref");
    if (!json_is_string(ref)) return;
    const char *why;
    const json_t *t = ref_resolve(x, json_string_value(ref), json_string_length(ref), &why);
    if (!t || !json_is_object(t)) return;
    struct path tp = {0};
    const char *frag = strchr(json_string_value(ref), '#');
    if (frag && frag[1] == '/') {
        size_t fl = strlen(frag + 1);
        tp.p = malloc(fl + 1);
        if (!tp.p) {
            gram_js_fail(x->c, ERR_NOMEM, "out of memory");
            return;
        }
        tp.n = pct_decode(frag + 1, fl, tp.p);
        tp.cap = fl + 1;
    }
    walk(x, t, &tp, depth + 1);
    free(tp.p);
}

static void walk(struct sx *x, const json_t *s, struct path *pa, int depth)
{
    struct gram_js_ctx *c = x->c;
    if (c->rc || json_is_boolean(s)) return;
    if (!json_is_object(s)) {
        gram_js_fail(c, ERR_INVALID, "schema at %s must be an object or a boolean", pa->n ? pa->p : "(root)");
        return;
    }
    if (depth > GRAM_JS_MAX_DEPTH) {
        gram_js_fail(c, ERR_LIMIT, "schema nests deeper than %d at %s", GRAM_JS_MAX_DEPTH, pa->p ? pa->p : "");
        return;
    }
    for (size_t i = 0; i < x->nv; i++)
        if (x->v[i].j == s) return;
    if (gram_js_grow(&x->v, &x->capv, x->nv + 1, sizeof *x->v)) {
            gram_js_fail(c, ERR_NOMEM, "out of memory");
            return;
        }
    x->v[x->nv].j = s;
    x->v[x->nv].ptr = strdup(pa->n ? pa->p : "");
    if (!x->v[x->nv].ptr) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return;
    }
    x->nv++;
    const char *ptr = pa->n ? pa->p : "";
    if (s != x->root && json_object_get(s, "$id")) {
        /* a schema resource of its own: its references resolve against its $id; stop here */
        problem(x, ptr, "$id", "embedded schema resources are not supported");
        return;
    }
    char *myptr = strdup(ptr);
    if (!myptr) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) check_kw(x, s, k, v, myptr);
    free(myptr);
    if (!c->rc) walk_children(x, s, pa, depth);
    if (!c->rc) walk_ref_target(x, s, depth);
}

/* ---- pass 2: flatten into conjunctions ---- */

struct dnf {
    struct tvec *c; /* conjunctions of TK_SCHEMA (objects) and TK_CONST terms */
    size_t n, cap;
};

static void dnf_free(struct dnf *d)
{
    for (size_t i = 0; i < d->n; i++) tv_free(&d->c[i]);
    free(d->c);
    memset(d, 0, sizeof *d);
}

static int oneof_check(struct sx *x, const json_t *owner, const json_t *arr);

/* Expand pending terms into done; a branching term forks the rest. for_empty: oneOf counts as
 * anyOf (a superset: fine for proving emptiness) instead of requiring the verdict. */
static void expand(struct sx *x, struct tvec *done, struct tvec *pend, struct dnf *out, int for_empty)
{
    struct gram_js_ctx *c = x->c;
    while (pend->n > 0 && !c->rc) {
        struct term t = pend->t[--pend->n];
        const json_t *j = t.j;
        if (t.kind == TK_CONST) {
            if (!tv_has(done, j, TK_CONST)) tv_push(done, j, TK_CONST);
            continue;
        }
        if (t.kind != TK_SCHEMA) { /* fork */
            const json_t *arr = j;
            if (t.kind == TK_ONEOF && !for_empty) {
                int st = 1;
                for (size_t i = 0; i < x->noo; i++)
                    if (x->oo[i].arr == arr) st = x->oo[i].state;
                if (st == 2) return; /* matches nothing */
            }
            for (size_t i = 0; i < json_array_size(arr) && !c->rc; i++) {
                struct tvec d2 = {0}, p2 = {0};
                for (size_t k = 0; k < done->n; k++) tv_push(&d2, done->t[k].j, done->t[k].kind);
                for (size_t k = 0; k < pend->n; k++) tv_push(&p2, pend->t[k].j, pend->t[k].kind);
                tv_push(&p2, json_array_get(arr, i), t.kind == TK_ENUM ? TK_CONST : TK_SCHEMA);
                if (d2.oom || p2.oom) gram_js_fail(c, ERR_NOMEM, "out of memory");
                else expand(x, &d2, &p2, out, for_empty);
                tv_free(&d2);
                tv_free(&p2);
            }
            return;
        }
        if (json_is_true(j)) continue;
        if (json_is_false(j)) return;
        if (tv_has(done, j, TK_SCHEMA)) continue;
        tv_push(done, j, TK_SCHEMA);
        const json_t *v = json_object_get(j, "$ref");
        if (json_is_string(v)) {
            const char *why;
            const json_t *r = ref_resolve(x, json_string_value(v), json_string_length(v), &why);
            if (r) tv_push(pend, r, TK_SCHEMA);
        }
        v = json_object_get(j, "allOf");
        for (size_t i = 0; i < json_array_size(v); i++) tv_push(pend, json_array_get(v, i), TK_SCHEMA);
        if ((v = json_object_get(j, "anyOf"))) tv_push(pend, v, TK_ANYOF);
        if ((v = json_object_get(j, "oneOf"))) tv_push(pend, v, TK_ONEOF);
        if ((v = json_object_get(j, "enum"))) tv_push(pend, v, TK_ENUM);
        if ((v = json_object_get(j, "const"))) tv_push(pend, v, TK_CONST);
    }
    if (done->oom || pend->oom) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return;
    }
    if (c->rc) return;
    if (out->n >= GRAM_JS_MAX_DNF * 8) {
        gram_js_fail(c, ERR_LIMIT, "anyOf/oneOf/enum combinations expand to more than %d alternatives",
                     GRAM_JS_MAX_DNF * 8);
        return;
    }
    if (gram_js_grow(&out->c, &out->cap, out->n + 1, sizeof *out->c)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return;
    }
    out->c[out->n++] = *done;
    memset(done, 0, sizeof *done);
}

static void flatten(struct sx *x, const struct term *t, size_t n, struct dnf *out, int for_empty)
{
    struct tvec done = {0}, pend = {0};
    for (size_t i = n; i-- > 0;) tv_push(&pend, t[i].j, t[i].kind);
    expand(x, &done, &pend, out, for_empty);
    tv_free(&done);
    tv_free(&pend);
}

/* ---- merged constraints of one conjunction ---- */

enum {
    T_NULL = 1,
    T_BOOL = 2,
    T_INT = 4,  /* integer-valued numbers */
    T_FRAC = 8, /* other numbers */
    T_STR = 16,
    T_ARR = 32,
    T_OBJ = 64,
    T_ALL = 127
};

struct ir {
    unsigned types;
    unsigned bools; /* 1 false, 2 true */
    struct gram_js_bound lo, hi;
    struct gram_js_strc str;
    size_t cap_pat, cap_len;
    uint64_t min_items, max_items;
    struct tvec arr; /* terms shaping arrays */
    struct tvec obj; /* terms shaping objects */
    int bad_bound;   /* a bound has too many digits */
    int oom;
};

static void ir_free(struct ir *r)
{
    free(r->str.pat);
    free(r->str.pat_len);
    tv_free(&r->arr);
    tv_free(&r->obj);
}

static unsigned type_bits(const char *t)
{
    static const struct {
        const char *n;
        unsigned b;
    } tb[] = {{"null", T_NULL},     {"boolean", T_BOOL}, {"integer", T_INT},
              {"number", T_INT | T_FRAC}, {"string", T_STR}, {"array", T_ARR},
              {"object", T_OBJ}};
    for (size_t i = 0; i < sizeof tb / sizeof tb[0]; i++)
        if (strcmp(t, tb[i].n) == 0) return tb[i].b;
    return 0;
}

static void ir_bound(struct ir *r, const json_t *v, int lower, int strict)
{
    struct gram_js_bound b;
    if (gram_js_bound_from_json(v, strict, &b)) {
        r->bad_bound = 1;
        return;
    }
    if (lower) gram_js_bound_lower(&r->lo, &b);
    else gram_js_bound_upper(&r->hi, &b);
}

static void ir_const(struct ir *r, const json_t *v)
{
    if (json_is_null(v)) {
        r->types &= T_NULL;
    } else if (json_is_boolean(v)) {
        r->types &= T_BOOL;
        r->bools &= json_is_true(v) ? 2u : 1u;
    } else if (json_is_number(v)) {
        struct gram_js_dec d;
        if (gram_js_dec_from_json(v, &d)) {
            r->bad_bound = 1;
            return;
        }
        r->types &= gram_js_dec_is_int(&d) ? T_INT : T_FRAC;
        ir_bound(r, v, 1, 0);
        ir_bound(r, v, 0, 0);
    } else if (json_is_string(v)) {
        r->types &= T_STR;
        if (!r->str.lit) {
            r->str.lit = json_string_value(v);
            r->str.lit_len = json_string_length(v);
        } else if (r->str.lit_len != json_string_length(v) ||
                   memcmp(r->str.lit, json_string_value(v), r->str.lit_len) != 0) {
            r->str.lit_conflict = 1;
        }
    } else if (json_is_array(v)) {
        r->types &= T_ARR;
        tv_push(&r->arr, v, TK_CONST);
    } else {
        r->types &= T_OBJ;
        tv_push(&r->obj, v, TK_CONST);
    }
}

static void ir_schema(struct ir *r, const json_t *s)
{
    const json_t *v;
    if ((v = json_object_get(s, "type"))) {
        unsigned m = 0;
        if (json_is_string(v)) m = type_bits(json_string_value(v));
        for (size_t i = 0; i < json_array_size(v); i++) m |= type_bits(json_string_value(json_array_get(v, i)));
        if (json_is_true(json_object_get(s, "nullable"))) m |= T_NULL;
        r->types &= m;
    }
    const json_t *emin = json_object_get(s, "exclusiveMinimum"), *emax = json_object_get(s, "exclusiveMaximum");
    if ((v = json_object_get(s, "minimum"))) ir_bound(r, v, 1, json_is_true(emin));
    if ((v = json_object_get(s, "maximum"))) ir_bound(r, v, 0, json_is_true(emax));
    if (json_is_number(emin)) ir_bound(r, emin, 1, 1);
    if (json_is_number(emax)) ir_bound(r, emax, 0, 1);
    if ((v = json_object_get(s, "minLength")) && count_of(v) > r->str.min) r->str.min = count_of(v);
    if ((v = json_object_get(s, "maxLength")) && count_of(v) < r->str.max) r->str.max = count_of(v);
    if ((v = json_object_get(s, "minItems")) && count_of(v) > r->min_items) r->min_items = count_of(v);
    if ((v = json_object_get(s, "maxItems")) && count_of(v) < r->max_items) r->max_items = count_of(v);
    if ((v = json_object_get(s, "pattern"))) {
        if (gram_js_grow(&r->str.pat, &r->cap_pat, r->str.n_pat + 1, sizeof *r->str.pat) ||
            gram_js_grow(&r->str.pat_len, &r->cap_len, r->str.n_pat + 1, sizeof *r->str.pat_len)) {
            r->oom = 1;
            return;
        }
        r->str.pat[r->str.n_pat] = json_string_value(v);
        r->str.pat_len[r->str.n_pat++] = json_string_length(v);
    }
    if ((v = json_object_get(s, "format"))) r->str.formats |= gram_js_format_bit(json_string_value(v));
    if (json_object_get(s, "items") || json_object_get(s, "prefixItems")) tv_push(&r->arr, s, TK_SCHEMA);
    if (json_object_get(s, "properties") || json_object_get(s, "required") ||
        json_object_get(s, "additionalProperties"))
        tv_push(&r->obj, s, TK_SCHEMA);
}

static void ir_build(const struct tvec *conj, struct ir *r)
{
    memset(r, 0, sizeof *r);
    r->types = T_ALL;
    r->bools = 3;
    r->str.max = UINT64_MAX;
    r->max_items = UINT64_MAX;
    for (size_t i = 0; i < conj->n; i++) {
        if (conj->t[i].kind == TK_CONST) ir_const(r, conj->t[i].j);
        else ir_schema(r, conj->t[i].j);
    }
}

/* ---- arrays ---- */

/* A schema's prefix schemas and the schema for later items (NULL: anything). */
static const json_t *arr_prefix(const json_t *s, size_t *n)
{
    const json_t *p = json_object_get(s, "prefixItems");
    if (!p) {
        p = json_object_get(s, "items");
        if (!json_is_array(p)) p = NULL;
    }
    *n = json_array_size(p);
    return p;
}

static const json_t *arr_tail(const json_t *s)
{
    const json_t *it = json_object_get(s, "items");
    if (json_is_array(it)) return json_object_get(s, "additionalItems");
    return it;
}

struct arr_plan {
    size_t L;          /* prefix positions */
    uint64_t min, max; /* after every term and every impossible position */
    struct tvec *kid;  /* [n_kid >= L] */
    size_t n_kid;
    struct tvec tail;  /* positions >= L */
    int tail_empty;
    int empty;
};

static void arr_plan_free(struct arr_plan *p)
{
    for (size_t i = 0; p->kid && i < p->n_kid; i++) tv_free(&p->kid[i]);
    free(p->kid);
    tv_free(&p->tail);
}

static int set_empty(struct sx *x, struct tvec *v);

static void arr_plan(struct sx *x, const struct ir *r, struct arr_plan *p)
{
    memset(p, 0, sizeof *p);
    p->min = r->min_items;
    p->max = r->max_items;
    for (size_t i = 0; i < r->arr.n; i++) {
        const struct term *t = &r->arr.t[i];
        size_t n;
        if (t->kind == TK_CONST) {
            n = json_array_size(t->j);
            if (n > p->min) p->min = n;
            if (n < p->max) p->max = n;
        } else {
            arr_prefix(t->j, &n);
            const json_t *tail = arr_tail(t->j);
            if (json_is_false(tail) && n < p->max) p->max = n;
        }
        if (n > p->L) p->L = n;
    }
    if (p->L > p->max) p->L = (size_t)p->max;
    if (p->min > p->max) {
        p->empty = 1;
        return;
    }
    p->kid = calloc(p->L ? p->L : 1, sizeof *p->kid);
    p->n_kid = p->L;
    if (!p->kid) {
        gram_js_fail(x->c, ERR_NOMEM, "out of memory");
        p->empty = 1;
        return;
    }
    for (size_t i = 0; i < r->arr.n; i++) {
        const struct term *t = &r->arr.t[i];
        if (t->kind == TK_CONST) {
            for (size_t k = 0; k < p->L; k++)
                tv_push(&p->kid[k], k < json_array_size(t->j) ? json_array_get(t->j, k) : json_false(),
                        k < json_array_size(t->j) ? TK_CONST : TK_SCHEMA);
            tv_push(&p->tail, json_false(), TK_SCHEMA);
            continue;
        }
        size_t n;
        const json_t *pre = arr_prefix(t->j, &n), *tail = arr_tail(t->j);
        for (size_t k = 0; k < p->L; k++) {
            if (k < n) tv_push(&p->kid[k], json_array_get(pre, k), TK_SCHEMA);
            else if (tail) tv_push(&p->kid[k], tail, TK_SCHEMA);
        }
        if (tail) tv_push(&p->tail, tail, TK_SCHEMA);
    }
    /* the first impossible position caps the length */
    for (size_t k = 0; k < p->L; k++)
        if (set_empty(x, &p->kid[k])) {
            if (k < p->max) p->max = k;
            break;
        }
    p->tail_empty = set_empty(x, &p->tail);
    if (p->tail_empty && p->L < p->max) p->max = p->L;
    if (p->L > p->max) p->L = (size_t)p->max;
    p->empty = p->min > p->max;
}

/* ---- objects ---- */

struct prop {
    const char *key;
    size_t len;
    struct tvec kid;
    int required;
    int empty;
};

struct obj_plan {
    struct prop *p;
    size_t n, cap;
    struct tvec add; /* schema for other keys (no terms: anything) */
    int add_empty;
    int empty;
};

static void obj_plan_free(struct obj_plan *p)
{
    for (size_t i = 0; i < p->n; i++) tv_free(&p->p[i].kid);
    free(p->p);
    tv_free(&p->add);
}

static struct prop *prop_get(struct obj_plan *p, const char *k, size_t len, int *oom)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->p[i].len == len && memcmp(p->p[i].key, k, len) == 0) return &p->p[i];
    if (gram_js_grow(&p->p, &p->cap, p->n + 1, sizeof *p->p)) {
        *oom = 1;
        return NULL;
    }
    struct prop *e = &p->p[p->n++];
    memset(e, 0, sizeof *e);
    e->key = k;
    e->len = len;
    return e;
}

/* What term t says about the value of key k (pushed to v); nothing when it does not care. */
static void term_for_key(const struct term *t, const char *k, size_t len, struct tvec *v)
{
    if (t->kind == TK_CONST) {
        const json_t *e = json_object_getn(t->j, k, len);
        tv_push(v, e ? e : json_false(), e ? TK_CONST : TK_SCHEMA);
        return;
    }
    const json_t *props = json_object_get(t->j, "properties");
    const json_t *e = props ? json_object_getn(props, k, len) : NULL;
    if (e) tv_push(v, e, TK_SCHEMA);
    else if ((e = json_object_get(t->j, "additionalProperties"))) tv_push(v, e, TK_SCHEMA);
}

static void obj_plan(struct sx *x, const struct ir *r, struct obj_plan *p)
{
    memset(p, 0, sizeof *p);
    int oom = 0, explicit_add = 0;
    /* names in schema order */
    for (size_t i = 0; i < r->obj.n; i++) {
        const struct term *t = &r->obj.t[i];
        const char *k;
        json_t *v;
        if (t->kind == TK_CONST) {
            explicit_add = 1;
            json_object_foreach((json_t *)t->j, k, v) {
                struct prop *e = prop_get(p, k, key_len_of(k), &oom);
                if (e) e->required = 1;
            }
            continue;
        }
        const json_t *props = json_object_get(t->j, "properties");
        json_object_foreach((json_t *)props, k, v) prop_get(p, k, key_len_of(k), &oom);
        const json_t *req = json_object_get(t->j, "required");
        for (size_t q = 0; q < json_array_size(req); q++) {
            const json_t *s = json_array_get(req, q);
            struct prop *e = prop_get(p, json_string_value(s), json_string_length(s), &oom);
            if (e) e->required = 1;
        }
        if (json_object_get(t->j, "additionalProperties")) explicit_add = 1;
    }
    if (p->n > GRAM_JS_MAX_PROPS) {
        gram_js_fail(x->c, ERR_LIMIT, "an object merges more than %d property names", GRAM_JS_MAX_PROPS);
        p->empty = 1;
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        for (size_t q = 0; q < r->obj.n; q++) term_for_key(&r->obj.t[q], p->p[i].key, p->p[i].len, &p->p[i].kid);
    for (size_t q = 0; q < r->obj.n; q++) {
        const struct term *t = &r->obj.t[q];
        const json_t *a = t->kind == TK_CONST ? json_false() : json_object_get(t->j, "additionalProperties");
        if (a) tv_push(&p->add, a, TK_SCHEMA);
    }
    if (!explicit_add && p->n > 0 && x->c->o.mode == GRAM_SCHEMA_TOOL) tv_push(&p->add, json_false(), TK_SCHEMA);
    if (oom || p->add.oom) {
        gram_js_fail(x->c, ERR_NOMEM, "out of memory");
        p->empty = 1;
        return;
    }
    for (size_t i = 0; i < p->n && !p->empty; i++) {
        p->p[i].empty = set_empty(x, &p->p[i].kid);
        if (p->p[i].empty && p->p[i].required) p->empty = 1;
    }
    p->add_empty = set_empty(x, &p->add);
}

/* ---- emptiness ---- */

static int ir_empty(struct sx *x, const struct ir *r)
{
    struct gram_js_ctx *c = x->c;
    if (r->arr.oom || r->obj.oom || r->oom) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return 0;
    }
    if (r->bad_bound) {
        gram_js_fail(c, ERR_LIMIT, "a numeric bound or value has more than %d digits", GRAM_JS_MAX_DIGITS);
        return 0;
    }
    unsigned t = r->types;
    if (t & (T_NULL)) return 0;
    if ((t & T_BOOL) && r->bools) return 0;
    if ((t & (T_INT | T_FRAC)) && !gram_js_num_empty(&r->lo, &r->hi, !(t & T_FRAC))) return 0;
    if ((t & T_STR) && !gram_js_str_empty(c, &r->str)) return 0;
    if (t & T_ARR) {
        struct arr_plan p;
        arr_plan(x, r, &p);
        int e = p.empty;
        arr_plan_free(&p);
        if (!e) return 0;
    }
    if (t & T_OBJ) {
        struct obj_plan p;
        obj_plan(x, r, &p);
        int e = p.empty;
        obj_plan_free(&p);
        if (!e) return 0;
    }
    return 1;
}

/* Whether no instance meets every term of v: 1 only when proven. Normalises v. */
static int set_empty(struct sx *x, struct tvec *v)
{
    v->n = tset_norm(v->t, v->n);
    for (size_t i = 0; i < v->n; i++)
        if (v->t[i].kind == TK_SCHEMA && json_is_false(v->t[i].j)) return 1;
    if (v->n == 0 || x->c->rc) return 0;
    struct mset *m = mset_get(x, v->t, v->n);
    if (!m) return 0;
    if (m->empty >= 2) return m->empty == 2;
    if (m->empty == 1 || x->depth > 200) return 0; /* in progress: assume possible */
    size_t idx = (size_t)(m - x->m);
    x->m[idx].empty = 1;
    x->depth++;
    struct dnf d = {0};
    struct term *copy = malloc(v->n * sizeof *copy);
    int empty = 0;
    if (copy) {
        memcpy(copy, v->t, v->n * sizeof *copy);
        flatten(x, copy, v->n, &d, 1);
        free(copy);
        empty = 1;
        for (size_t i = 0; i < d.n && empty && !x->c->rc; i++) {
            struct ir r;
            ir_build(&d.c[i], &r);
            empty = ir_empty(x, &r);
            ir_free(&r);
        }
    } else {
        gram_js_fail(x->c, ERR_NOMEM, "out of memory");
    }
    dnf_free(&d);
    x->depth--;
    x->m[idx].empty = x->c->rc ? 0 : empty ? 2 : 3; /* x->m may have moved */
    return x->c->rc ? 0 : empty;
}

/* oneOf verdict for arr (inside schema owner): exclusive branches (state 1), two branches that
 * match everything (2: matches nothing), else a problem. */
static int oneof_check(struct sx *x, const json_t *owner, const json_t *arr)
{
    for (size_t i = 0; i < x->noo; i++)
        if (x->oo[i].arr == arr) return x->oo[i].state;
    if (gram_js_grow(&x->oo, &x->capoo, x->noo + 1, sizeof *x->oo)) {
        gram_js_fail(x->c, ERR_NOMEM, "out of memory");
        return 0;
    }
    size_t me = x->noo++;
    x->oo[me].arr = arr;
    x->oo[me].state = 0;
    size_t n = json_array_size(arr), universal = 0;
    for (size_t i = 0; i < n; i++) universal += is_universal(json_array_get(arr, i));
    if (universal >= 2) return x->oo[me].state = 2;
    for (size_t i = 0; i < n && !x->c->rc; i++) {
        for (size_t j = i + 1; j < n && !x->c->rc; j++) {
            struct tvec v = {0};
            tv_push(&v, json_array_get(arr, i), TK_SCHEMA);
            tv_push(&v, json_array_get(arr, j), TK_SCHEMA);
            int ex = set_empty(x, &v);
            tv_free(&v);
            if (!ex) {
                char why[96];
                snprintf(why, sizeof why, "branches %zu and %zu are not provably exclusive", i, j);
                problem(x, ptr_of(x, owner), "oneOf", why);
                return x->oo[me].state = 3;
            }
        }
    }
    return x->oo[me].state = 1;
}

/* ---- pass 3: emit ---- */

static const char *rule_for(struct sx *x, struct tvec *v, const char *hint);

/* "hint-suffix" in buf (at most 40 bytes of hint and 24 of suffix; rule naming sanitises). */
static const char *hint2(char *buf, size_t n, const char *hint, const char *suf, size_t suf_len)
{
    size_t h = strlen(hint);
    if (h > 40) h = 40;
    if (suf_len > 24) suf_len = 24;
    if (h + suf_len + 2 > n) return hint;
    memcpy(buf, hint, h);
    buf[h] = '-';
    memcpy(buf + h + 1, suf, suf_len);
    buf[h + 1 + suf_len] = 0;
    return buf;
}

static void emit_array(struct sx *x, const struct ir *r, const char *hint, struct gram_js_buf *out,
                       int *empty)
{
    struct gram_js_ctx *c = x->c;
    struct arr_plan p;
    arr_plan(x, r, &p);
    *empty = p.empty;
    if (p.empty) {
        arr_plan_free(&p);
        return;
    }
    char hb[96];
    gram_js_puts(out, "\"[\"");
    gram_js_gap(c, out);
    size_t open = 0;
    for (size_t i = 0; i < p.L; i++) {
        if (i >= p.min) {
            gram_js_puts(out, "(");
            open++;
        }
        if (i > 0) gram_js_sep(c, out);
        char idx[24];
        int nn = snprintf(idx, sizeof idx, "%zu", i);
        gram_js_puts(out, rule_for(x, &p.kid[i], hint2(hb, sizeof hb, hint, idx, (size_t)nn)));
        gram_js_puts(out, " ");
    }
    if (p.max > p.L) {
        /* later items: (sep item){a,b}; without a prefix the first has no separator */
        const char *item = rule_for(x, &p.tail, hint2(hb, sizeof hb, hint, "item", 4));
        uint64_t a = p.min > p.L ? p.min - p.L : 0;
        uint64_t b = p.max == UINT64_MAX ? UINT64_MAX : p.max - p.L;
        struct gram_js_buf one = {0};
        gram_js_puts(&one, "(");
        gram_js_sep(c, &one);
        gram_js_printf(&one, "%s)", item);
        if (p.L > 0) {
            gram_js_put_repeat(out, one.p ? one.p : "", a, b);
        } else {
            gram_js_printf(out, "(%s ", item);
            gram_js_put_repeat(out, one.p ? one.p : "", a > 0 ? a - 1 : 0, b == UINT64_MAX ? b : b - 1);
            gram_js_printf(out, ")%s", a == 0 ? "?" : "");
        }
        if (one.oom) out->oom = 1;
        gram_js_buf_free(&one);
    }
    for (size_t i = 0; i < open; i++) gram_js_puts(out, ")?");
    gram_js_gap(c, out);
    gram_js_puts(out, "\"]\"");
    arr_plan_free(&p);
}

/* Object members: a rule per "key":value pair, then either the subset automaton (any order,
 * each key at most once, "}" once every required key is in) or, for many keys, schema order
 * with optional keys skippable. Extra keys, when allowed, may come between any two. */
struct obj_emit {
    struct sx *x;
    const char *hint;
    const char **kv;   /* [n] pair rules of the active keys */
    int *req;          /* [n] */
    size_t n;
    const char *extra; /* pair rule for other keys, NULL: none */
    size_t *state;     /* [1 << n] subset rules + 1 */
};

/* After the members in subset s (something already written). */
static const char *subset_rule(struct obj_emit *e, uint32_t s)
{
    struct gram_js_ctx *c = e->x->c;
    if (e->state[s]) return gram_js_rule_name(c, e->state[s] - 1);
    char hb[96], suf[16];
    int ns = snprintf(suf, sizeof suf, "s%x", (unsigned)s);
    size_t r = gram_js_rule_new(c, hint2(hb, sizeof hb, e->hint, suf, (size_t)ns));
    if (r == SIZE_MAX) return "";
    e->state[s] = r + 1;
    struct gram_js_buf b = {0};
    if (e->extra) {
        gram_js_puts(&b, "(");
        gram_js_sep(c, &b);
        gram_js_printf(&b, "%s)* ", e->extra);
    }
    gram_js_puts(&b, "(");
    int first = 1, done = 1;
    for (size_t i = 0; i < e->n; i++) {
        if (s & (1u << i)) continue;
        if (e->req[i]) done = 0;
        if (!first) gram_js_puts(&b, " | ");
        first = 0;
        gram_js_sep(c, &b);
        gram_js_printf(&b, "%s %s", e->kv[i], subset_rule(e, s | (1u << i)));
    }
    if (done) {
        if (!first) gram_js_puts(&b, " |");
        gram_js_gap(c, &b);
        gram_js_puts(&b, "\"}\"");
    }
    gram_js_puts(&b, ")");
    gram_js_rule_set(c, r, &b);
    return gram_js_rule_name(c, r);
}

static void emit_members_any_order(struct obj_emit *e, struct gram_js_buf *out)
{
    struct gram_js_ctx *c = e->x->c;
    int none_required = 1;
    for (size_t i = 0; i < e->n; i++) none_required &= !e->req[i];
    gram_js_puts(out, "\"{\"");
    gram_js_gap(c, out);
    gram_js_puts(out, "(");
    int first = 1;
    if (none_required) {
        gram_js_puts(out, "\"}\"");
        first = 0;
    }
    for (size_t i = 0; i < e->n; i++) {
        gram_js_printf(out, "%s%s %s", first ? "" : " | ", e->kv[i], subset_rule(e, 1u << i));
        first = 0;
    }
    if (e->extra) gram_js_printf(out, "%s%s %s", first ? "" : " | ", e->extra, subset_rule(e, 0));
    gram_js_puts(out, ")");
}

/* Schema order. g_j: something written, next known key at index >= j. */
static void emit_members_ordered(struct obj_emit *e, struct gram_js_buf *out)
{
    struct gram_js_ctx *c = e->x->c;
    size_t n = e->n;
    size_t *g = calloc(n + 1, sizeof *g);
    if (!g) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return;
    }
    char hb[96];
    /* rules g_0..g_n, built last to first; a_i (after key i) is (extras)* g_{i+1}, inline */
    for (size_t j = n + 1; j-- > 0;) {
        char suf[24];
        int ns = snprintf(suf, sizeof suf, "g%zu", j);
        size_t r = gram_js_rule_new(c, hint2(hb, sizeof hb, e->hint, suf, (size_t)ns));
        if (r == SIZE_MAX) break;
        g[j] = r;
        struct gram_js_buf b = {0};
        if (j == n) {
            gram_js_gap(c, &b);
            gram_js_puts(&b, "\"}\"");
        } else {
            gram_js_sep(c, &b);
            gram_js_printf(&b, "%s ", e->kv[j]);
            if (e->extra) {
                gram_js_puts(&b, "(");
                gram_js_sep(c, &b);
                gram_js_printf(&b, "%s)* ", e->extra);
            }
            gram_js_puts(&b, gram_js_rule_name(c, g[j + 1]));
            if (!e->req[j]) gram_js_printf(&b, " | %s", gram_js_rule_name(c, g[j + 1]));
        }
        gram_js_rule_set(c, r, &b);
    }
    /* f_j: nothing written yet; the first key may be any j up to the first required one */
    gram_js_puts(out, "\"{\"");
    gram_js_gap(c, out);
    gram_js_puts(out, "(");
    int first = 1;
    size_t j = 0;
    for (; j < n && !c->rc; j++) {
        gram_js_printf(out, "%s%s ", first ? "" : " | ", e->kv[j]);
        first = 0;
        if (e->extra) {
            gram_js_puts(out, "(");
            gram_js_sep(c, out);
            gram_js_printf(out, "%s)* ", e->extra);
        }
        gram_js_puts(out, gram_js_rule_name(c, g[j + 1]));
        if (e->req[j]) break;
    }
    if (j == n) gram_js_printf(out, "%s\"}\"", first ? "" : " | ");
    if (e->extra) {
        gram_js_printf(out, " | %s (", e->extra);
        gram_js_sep(c, out);
        gram_js_printf(out, "%s)* %s", e->extra, gram_js_rule_name(c, g[0]));
    }
    gram_js_puts(out, ")");
    free(g);
}

/* A rule for one member: key (a GBNF expression), gap ":" gap, the value's rule. */
static const char *pair_rule(struct sx *x, const char *key, struct tvec *val, const char *hint)
{
    struct gram_js_ctx *c = x->c;
    char hb[112];
    size_t r = gram_js_rule_new(c, hint2(hb, sizeof hb, hint, "kv", 2));
    struct gram_js_buf b = {0};
    gram_js_puts(&b, key);
    gram_js_gap(c, &b);
    gram_js_puts(&b, "\":\"");
    gram_js_gap(c, &b);
    gram_js_puts(&b, rule_for(x, val, hint));
    gram_js_rule_set(c, r, &b);
    return gram_js_rule_name(c, r); /* names never move: each is its own allocation */
}

static void emit_object(struct sx *x, const struct ir *r, const char *hint, struct gram_js_buf *out,
                        int *empty)
{
    struct gram_js_ctx *c = x->c;
    struct obj_plan p;
    obj_plan(x, r, &p);
    *empty = p.empty;
    if (p.empty || c->rc) {
        obj_plan_free(&p);
        return;
    }
    if (p.n == 0 && p.add.n == 0) { /* nothing said: any object */
        gram_js_puts(out, gram_js_prim(c, GRAM_JS_P_OBJECT));
        obj_plan_free(&p);
        return;
    }
    struct obj_emit e = {0};
    e.x = x;
    e.hint = hint;
    e.kv = calloc(p.n + 1, sizeof *e.kv);
    e.req = calloc(p.n + 1, sizeof *e.req);
    const char **keys = calloc(p.n + 1, sizeof *keys);
    size_t *lens = calloc(p.n + 1, sizeof *lens);
    if (!e.kv || !e.req || !keys || !lens) gram_js_fail(c, ERR_NOMEM, "out of memory");
    char hb[96];
    for (size_t i = 0; i < p.n && !c->rc; i++) {
        keys[i] = p.p[i].key;
        lens[i] = p.p[i].len;
        if (p.p[i].empty) continue; /* may not appear; still never an extra key */
        struct gram_js_buf key = {0};
        gram_js_put_json_string(&key, p.p[i].key, p.p[i].len);
        if (key.oom) gram_js_fail(c, ERR_NOMEM, "out of memory");
        e.kv[e.n] = pair_rule(x, key.p ? key.p : "", &p.p[i].kid, hint2(hb, sizeof hb, hint, p.p[i].key, p.p[i].len));
        e.req[e.n++] = p.p[i].required;
        gram_js_buf_free(&key);
    }
    if (!p.add_empty && !c->rc) {
        const char *key = p.n ? gram_js_key_not_in(c, keys, lens, p.n, hint2(hb, sizeof hb, hint, "key", 3))
                              : gram_js_prim(c, GRAM_JS_P_STRING);
        e.extra = pair_rule(x, key, &p.add, hint2(hb, sizeof hb, hint, "more", 4));
    }
    unsigned k = c->o.any_order_max ? c->o.any_order_max : GRAM_JS_DEFAULT_ANY_ORDER;
    if (k > GRAM_JS_MAX_ANY_ORDER) k = GRAM_JS_MAX_ANY_ORDER;
    if (!c->rc && e.n <= k) {
        e.state = calloc((size_t)1 << e.n, sizeof *e.state);
        if (!e.state) gram_js_fail(c, ERR_NOMEM, "out of memory");
        else emit_members_any_order(&e, out);
    } else if (!c->rc) {
        emit_members_ordered(&e, out);
    }
    free(e.kv);
    free(e.req);
    free(e.state);
    free(keys);
    free(lens);
    obj_plan_free(&p);
}

/* Alternatives of one conjunction, appended to out with " | " separators (*n counts them). */
static void emit_conj(struct sx *x, const struct ir *r, const char *hint, struct gram_js_buf *out,
                      int *n)
{
    struct gram_js_ctx *c = x->c;
    if (r->arr.oom || r->obj.oom || r->oom) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return;
    }
    if (r->bad_bound) {
        gram_js_fail(c, ERR_LIMIT, "a numeric bound or value has more than %d digits", GRAM_JS_MAX_DIGITS);
        return;
    }
    unsigned t = r->types;
    struct gram_js_buf alt = {0};
    char hb[96];
    for (unsigned bit = 1; bit <= T_OBJ && !c->rc; bit <<= 1) {
        if (!(t & bit) || bit == T_FRAC) continue;
        int empty = 0;
        alt.n = 0;
        if (alt.p) alt.p[0] = 0;
        switch (bit) {
        case T_NULL:
            gram_js_puts(&alt, "\"null\"");
            break;
        case T_BOOL:
            if (r->bools == 3) gram_js_puts(&alt, "\"true\" | \"false\"");
            else if (r->bools) gram_js_puts(&alt, r->bools == 2 ? "\"true\"" : "\"false\"");
            else empty = 1;
            break;
        case T_INT:
            gram_js_num_emit(c, &r->lo, &r->hi, !(t & T_FRAC), &alt, &empty);
            break;
        case T_STR:
            gram_js_str_emit(c, &r->str, hint2(hb, sizeof hb, hint, "str", 3), &alt, &empty);
            break;
        case T_ARR:
            emit_array(x, r, hint, &alt, &empty);
            break;
        case T_OBJ:
            emit_object(x, r, hint, &alt, &empty);
            break;
        default:
            break;
        }
        if (empty || alt.n == 0) continue;
        if ((*n)++) gram_js_puts(out, " | ");
        gram_js_put(out, alt.p, alt.n);
    }
    /* non-integers without integers: only from a non-integral const, i.e. a point interval */
    if ((t & T_FRAC) && !(t & T_INT) && !c->rc) {
        int empty = 0;
        alt.n = 0;
        gram_js_num_emit(c, &r->lo, &r->hi, 0, &alt, &empty);
        if (!empty && alt.n) {
            if ((*n)++) gram_js_puts(out, " | ");
            gram_js_put(out, alt.p, alt.n);
        }
    }
    if (alt.oom) out->oom = 1;
    gram_js_buf_free(&alt);
}

/* Body of rule r: the alternatives of every conjunction of the (normalised) set v. */
static void rule_fill(struct sx *x, const struct tvec *v, size_t r, const char *hint)
{
    struct gram_js_ctx *c = x->c;
    struct dnf d = {0};
    flatten(x, v->t, v->n, &d, 0);
    struct gram_js_buf b = {0};
    int n = 0;
    for (size_t i = 0; i < d.n && !c->rc; i++) {
        struct ir ir;
        ir_build(&d.c[i], &ir);
        char hb[96], suf[24];
        int ns = snprintf(suf, sizeof suf, "%zu", i);
        const char *h = d.n > 1 ? hint2(hb, sizeof hb, hint, suf, (size_t)ns) : hint;
        emit_conj(x, &ir, h, &b, &n);
        ir_free(&ir);
    }
    if (n == 0) gram_js_puts(&b, gram_js_prim(c, GRAM_JS_P_NEVER));
    dnf_free(&d);
    gram_js_rule_set(c, r, &b);
}

/* The rule for a term set (normalised here), emitted on first use. */
static const char *rule_for(struct sx *x, struct tvec *v, const char *hint)
{
    struct gram_js_ctx *c = x->c;
    if (c->rc) return "";
    v->n = tset_norm(v->t, v->n);
    if (v->oom) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return "";
    }
    if (v->n == 0) return gram_js_prim(c, GRAM_JS_P_VALUE);
    struct mset *m = mset_get(x, v->t, v->n);
    if (!m) return "";
    if (m->rule != SIZE_MAX) return gram_js_rule_name(c, m->rule);
    size_t idx = (size_t)(m - x->m);
    size_t r = gram_js_rule_new(c, hint);
    if (r == SIZE_MAX) return "";
    x->m[idx].rule = r;
    rule_fill(x, v, r, hint);
    return gram_js_rule_name(c, r);
}

/* ---- entry points ---- */

void gram_schema_opts_default(struct gram_schema_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = GRAM_SCHEMA_PLAIN;
}

/* Check one document: walk, then every oneOf. 0 or the error (problems refused together). */
static int check_doc(struct sx *x, const json_t *schema, const char *what)
{
    struct gram_js_ctx *c = x->c;
    x->root = schema;
    x->root_id = json_is_object(schema) && json_is_string(json_object_get(schema, "$id"))
                     ? json_string_value(json_object_get(schema, "$id"))
                     : NULL;
    struct path pa = {0};
    walk(x, schema, &pa, 0);
    free(pa.p);
    for (size_t i = 0; i < x->nv && !c->rc; i++) {
        const json_t *oo = json_object_get(x->v[i].j, "oneOf");
        if (oo) oneof_check(x, x->v[i].j, oo);
    }
    if (!c->rc && x->n_problems) {
        gram_js_fail(c, ERR_UNSUPPORTED, "%s uses what the converter cannot express: %s", what,
                     x->problems.p ? x->problems.p : "");
    }
    return c->rc;
}

static void sx_reset_doc(struct sx *x)
{
    for (size_t i = 0; i < x->nv; i++) free(x->v[i].ptr);
    x->nv = 0;
    x->noo = 0;
    memo_clear(x);
}

static void sx_free(struct sx *x)
{
    sx_reset_doc(x);
    free(x->v);
    free(x->oo);
    free(x->m);
    free(x->htab);
    gram_js_buf_free(&x->problems);
}

static void ctx_free(struct gram_js_ctx *c)
{
    for (size_t i = 0; i < c->n_rules; i++) {
        free(c->rules[i].name);
        free(c->rules[i].body);
    }
    free(c->rules);
    free(c->names);
    gram_js_str_ctx_free(c);
    gram_js_prim_ctx_free(c);
}

/* All rules as text, in creation order. */
static int write_out(struct gram_js_ctx *c, char **gbnf, size_t *gbnf_len)
{
    struct gram_js_buf b = {0};
    for (size_t i = 0; i < c->n_rules; i++) {
        if (!c->rules[i].body) continue;
        gram_js_printf(&b, "%s ::= %s\n", c->rules[i].name, c->rules[i].body);
    }
    if (b.oom || !b.p) {
        gram_js_buf_free(&b);
        return gram_js_fail(c, ERR_NOMEM, "out of memory");
    }
    *gbnf = b.p;
    if (gbnf_len) *gbnf_len = b.n;
    return 0;
}

int gram_schema_to_gbnf_multi(const struct gram_schema_entry *e, size_t n,
                              const struct gram_schema_opts *opts, char **gbnf, size_t *gbnf_len,
                              struct err_info *ei)
{
    struct gram_js_ctx c = {0};
    struct sx x = {0};
    if (gbnf) *gbnf = NULL;
    if (gbnf_len) *gbnf_len = 0;
    if (!gbnf || (n && !e)) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no output or no schemas");
    if (opts) c.o = *opts;
    else gram_schema_opts_default(&c.o);
    c.ei = ei;
    x.c = &c;
    c.priv = &x;
    if (c.o.ws > 64) c.o.ws = 64;
    /* entry rules first, with their exact names */
    size_t *er = calloc(n ? n : 1, sizeof *er);
    if (!er) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    for (size_t i = 0; i < n && !c.rc; i++) {
        const char *nm = e[i].rule;
        int ok = nm && *nm;
        for (const char *p = nm; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-';
        if (!ok) {
            gram_js_fail(&c, ERR_INVALID, "rule name \"%.40s\" must be letters, digits and dashes", nm ? nm : "");
            break;
        }
        er[i] = gram_js_rule_named(&c, nm);
    }
    for (size_t i = 0; i < n && !c.rc; i++) {
        char what[64];
        snprintf(what, sizeof what, n > 1 ? "schema %.40s" : "the schema", e[i].rule);
        if (check_doc(&x, e[i].schema, what)) break;
        /* the entry's term set gets the entry rule, so recursion to "#" refers to it */
        struct tvec v = {0};
        tv_push(&v, e[i].schema, TK_SCHEMA);
        v.n = tset_norm(v.t, v.n);
        const char *hint = n > 1 || strcmp(e[i].rule, "root") ? e[i].rule : "";
        if (v.oom) {
            gram_js_fail(&c, ERR_NOMEM, "out of memory");
        } else if (v.n == 0) {
            struct gram_js_buf b = {0};
            gram_js_puts(&b, gram_js_prim(&c, GRAM_JS_P_VALUE));
            gram_js_rule_set(&c, er[i], &b);
        } else {
            struct mset *m = mset_get(&x, v.t, v.n);
            if (m) {
                m->rule = er[i];
                rule_fill(&x, &v, er[i], hint);
            }
        }
        tv_free(&v);
        sx_reset_doc(&x);
    }
    free(er);
    int rc = c.rc ? c.rc : write_out(&c, gbnf, gbnf_len);
    sx_free(&x);
    ctx_free(&c);
    return rc;
}

int gram_schema_to_gbnf_json(const struct json_t *schema, const struct gram_schema_opts *opts,
                             char **gbnf, size_t *gbnf_len, struct err_info *ei)
{
    struct gram_schema_entry e = {schema, opts && opts->root ? opts->root : "root"};
    if (!schema) {
        if (gbnf) *gbnf = NULL;
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no schema");
    }
    return gram_schema_to_gbnf_multi(&e, 1, opts, gbnf, gbnf_len, ei);
}

int gram_schema_to_gbnf(const char *json, size_t len, const struct gram_schema_opts *opts,
                        char **gbnf, size_t *gbnf_len, struct err_info *ei)
{
    if (gbnf) *gbnf = NULL;
    if (gbnf_len) *gbnf_len = 0;
    if (!json) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no schema text");
    json_error_t je;
    json_t *s = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!s)
        return err_set(ei, ERR_SYNTAX, (uint64_t)(je.position > 0 ? je.position : 0),
                       "schema is not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    int rc = gram_schema_to_gbnf_json(s, opts, gbnf, gbnf_len, ei);
    json_decref(s);
    return rc;
}
