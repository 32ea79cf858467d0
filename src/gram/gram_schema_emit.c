/* gram_schema_emit: the JSON Schema converter's output, the lowest layer of its files: growing
 * text buffers and arrays, GBNF literals and counted repeats, and the context's first error and
 * rule list (unique names, bodies, the grammar's size limit). Nothing here knows JSON Schema;
 * every other gram_schema_*.c writes through it.
 *
 * Files of the converter, each using only the ones before it: emit, cset (code point sets), rx
 * (patterns as automata), prim (shared building blocks and character-set rules), num and str
 * (numbers and strings under constraints), gram_schema.c (the schema walk). */
#include "gram_schema_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text buffers ---- */

void gram_js_put(struct gram_js_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (gram_js_grow(&b->p, &b->cap, b->n + n + 1, 1)) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void gram_js_puts(struct gram_js_buf *b, const char *s) { gram_js_put(b, s, strlen(s)); }

void gram_js_printf(struct gram_js_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        gram_js_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    gram_js_put(b, big, (size_t)n);
    free(big);
}

void gram_js_buf_free(struct gram_js_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int gram_js_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 8;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return -1;
        c *= 2;
    }
    void *old, *p;
    memcpy(&old, pp, sizeof old);
    p = realloc(old, c * elem);
    if (!p) return -1;
    memcpy(pp, &p, sizeof p);
    *cap = c;
    return 0;
}

void gram_js_put_lit(struct gram_js_buf *b, const char *s, size_t n)
{
    gram_js_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"') gram_js_puts(b, "\\\"");
        else if (ch == '\\') gram_js_puts(b, "\\\\");
        else if (ch == '\n') gram_js_puts(b, "\\n");
        else if (ch == '\r') gram_js_puts(b, "\\r");
        else if (ch == '\t') gram_js_puts(b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) gram_js_printf(b, "\\x%02x", ch);
        else gram_js_put(b, (const char *)&s[i], 1);
    }
    gram_js_put(b, "\"", 1);
}

/* ---- context: the first error, the rule list ---- */

int gram_js_fail(struct gram_js_ctx *c, int code, const char *fmt, ...)
{
    if (c->rc) return c->rc;
    c->rc = code;
    if (c->ei && c->ei->code == 0) {
        char msg[ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        err_set(c->ei, code, ERR_NO_OFFSET, "%s", msg);
    }
    return code;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int name_taken(const struct gram_js_ctx *c, const char *name)
{
    if (!c->names_cap) return 0;
    for (size_t k = name_hash(name) & (c->names_cap - 1); c->names[k]; k = (k + 1) & (c->names_cap - 1))
        if (strcmp(c->rules[c->names[k] - 1].name, name) == 0) return 1;
    return 0;
}

/* Index rule i's name (the table stays at most half full). */
static int name_index(struct gram_js_ctx *c, size_t i)
{
    if ((c->n_rules + 1) * 2 > c->names_cap) {
        size_t cap = c->names_cap ? c->names_cap * 2 : 256;
        size_t *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (size_t r = 0; r < c->n_rules; r++) {
            if (r == i) continue;
            size_t k = name_hash(c->rules[r].name) & (cap - 1);
            while (t[k]) k = (k + 1) & (cap - 1);
            t[k] = r + 1;
        }
        free(c->names);
        c->names = t;
        c->names_cap = cap;
    }
    size_t k = name_hash(c->rules[i].name) & (c->names_cap - 1);
    while (c->names[k]) k = (k + 1) & (c->names_cap - 1);
    c->names[k] = i + 1;
    return 0;
}

/* Append a rule named exactly name. SIZE_MAX after an error. */
static size_t rule_add(struct gram_js_ctx *c, char *name)
{
    if (c->rc) {
        free(name);
        return SIZE_MAX;
    }
    if (c->n_rules >= GRAM_JS_MAX_RULES) {
        free(name);
        gram_js_fail(c, ERR_LIMIT, "the grammar needs more than %d rules", GRAM_JS_MAX_RULES);
        return SIZE_MAX;
    }
    if (gram_js_grow(&c->rules, &c->cap_rules, c->n_rules + 1, sizeof *c->rules)) {
        free(name);
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return SIZE_MAX;
    }
    c->rules[c->n_rules].name = name;
    c->rules[c->n_rules].body = NULL;
    c->bytes += strlen(name) + 6;
    if (name_index(c, c->n_rules)) {
        free(name);
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return SIZE_MAX;
    }
    return c->n_rules++;
}

size_t gram_js_rule_new(struct gram_js_ctx *c, const char *hint)
{
    if (c->rc) return SIZE_MAX;
    const char *pre = c->o.prefix ? c->o.prefix : "";
    size_t np = strlen(pre), nh = strlen(hint);
    if (nh > 48) nh = 48;
    char *name = malloc(np + nh + 24);
    if (!name) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return SIZE_MAX;
    }
    memcpy(name, pre, np);
    size_t k = np;
    for (size_t i = 0; i < nh; i++) {
        char ch = hint[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!ok) ch = '-';
        if (ch == '-' && (k == np || name[k - 1] == '-')) continue;
        name[k++] = ch;
    }
    while (k > np && name[k - 1] == '-') k--;
    if (k == np) name[k++] = 'r';
    name[k] = 0;
    /* a taken name gets a number; numbers only grow, so this ends at once in practice */
    while (name_taken(c, name)) snprintf(name + k, 22, "-%zu", ++c->name_seq);
    return rule_add(c, name);
}

size_t gram_js_rule_named(struct gram_js_ctx *c, const char *name)
{
    if (c->rc) return SIZE_MAX;
    if (name_taken(c, name)) {
        gram_js_fail(c, ERR_DUPLICATE, "rule name \"%.40s\" given twice", name);
        return SIZE_MAX;
    }
    char *copy = strdup(name);
    if (!copy) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return SIZE_MAX;
    }
    return rule_add(c, copy);
}

void gram_js_rule_set(struct gram_js_ctx *c, size_t i, struct gram_js_buf *b)
{
    if (b->oom) gram_js_fail(c, ERR_NOMEM, "out of memory");
    if (c->rc || i == SIZE_MAX) {
        gram_js_buf_free(b);
        return;
    }
    c->bytes += b->n;
    size_t lim = c->o.max_bytes ? c->o.max_bytes : GRAM_JS_MAX_BYTES;
    if (c->bytes > lim) {
        gram_js_fail(c, ERR_LIMIT, "the grammar would exceed %zu bytes", lim);
        gram_js_buf_free(b);
        return;
    }
    c->rules[i].body = b->p ? b->p : strdup("\"\"");
    if (!c->rules[i].body) gram_js_fail(c, ERR_NOMEM, "out of memory");
    memset(b, 0, sizeof *b);
}

const char *gram_js_rule_name(const struct gram_js_ctx *c, size_t i)
{
    return i < c->n_rules ? c->rules[i].name : "";
}

/* ---- counted repeats ---- */

/* what{a,b} with both counts within gram's limit. */
static void repeat_small(struct gram_js_buf *b, const char *what, uint64_t a, uint64_t bmax)
{
    if (bmax == UINT64_MAX) {
        if (a == 0) gram_js_printf(b, "%s*", what);
        else if (a == 1) gram_js_printf(b, "%s+", what);
        else gram_js_printf(b, "%s{%llu,}", what, (unsigned long long)a);
    } else if (a == bmax) {
        if (a == 1) gram_js_puts(b, what);
        else if (a > 1) gram_js_printf(b, "%s{%llu}", what, (unsigned long long)a);
    } else if (a == 0 && bmax == 1) {
        gram_js_printf(b, "%s?", what);
    } else {
        gram_js_printf(b, "%s{%llu,%llu}", what, (unsigned long long)a, (unsigned long long)bmax);
    }
}

/* Counts past GRAM_JS_REPEAT (M) nest: exactly a = q*M + r is (what{M}){q} what{r}; up to N =
 * K*M + R more is ((what{M}){0,K-1} what{0,M-1} | (what{M}){K} what{0,R}), two disjoint length
 * ranges, each with one way to split a length, so the matcher keeps at most a few stacks. */
void gram_js_put_repeat(struct gram_js_buf *b, const char *what, uint64_t a, uint64_t bmax)
{
    const uint64_t M = GRAM_JS_REPEAT;
    if (a <= M && (bmax == UINT64_MAX || bmax <= M)) {
        repeat_small(b, what, a, bmax);
        return;
    }
    struct gram_js_buf blk = {0};
    gram_js_printf(&blk, "(%s{%llu})", what, (unsigned long long)M);
    const char *B = blk.p ? blk.p : "";
    gram_js_puts(b, "(");
    if (a > 0) {
        repeat_small(b, B, a / M, a / M);
        if (a % M) {
            gram_js_puts(b, " ");
            repeat_small(b, what, a % M, a % M);
        }
    }
    if (bmax == UINT64_MAX) {
        gram_js_printf(b, " %s*", what);
    } else if (bmax > a) {
        uint64_t n = bmax - a;
        gram_js_puts(b, " ");
        if (n <= M) {
            repeat_small(b, what, 0, n);
        } else {
            uint64_t k = n / M, r = n % M;
            gram_js_puts(b, "(");
            if (k > 1) {
                repeat_small(b, B, 0, k - 1);
                gram_js_puts(b, " ");
            }
            repeat_small(b, what, 0, M - 1);
            gram_js_puts(b, " | ");
            repeat_small(b, B, k, k);
            if (r) {
                gram_js_puts(b, " ");
                repeat_small(b, what, 0, r);
            }
            gram_js_puts(b, ")");
        }
    }
    gram_js_puts(b, ")");
    if (blk.oom) b->oom = 1;
    gram_js_buf_free(&blk);
}
