/* gram_schema_str: JSON strings under constraints, as grammar.
 *
 * A JSON string is a sequence of characters (code points), each of which can be written several
 * ways: literally (not ", \ or a control character), as a short escape (\" \\ \/ \b \f \n \r \t),
 * as \uXXXX in either case, or as a surrogate pair for U+10000 and above. Constraints are on the
 * decoded characters, so every constraint is first an automaton over code points and only then
 * spelled: a set of code points becomes one rule listing all spellings of its members
 * (gram_js_cset_rule in gram_schema_prim.c), which keeps the grammar exact whatever escapes a
 * writer uses.
 *
 * pattern and format are deterministic automata (gram_schema_rx.c; formats are patterns we
 * wrote, below). Several patterns and formats and minLength/maxLength (a counter) are combined
 * as a product automaton, explored from the start state, pruned to the states that can still
 * reach acceptance, and written as one right-linear rule per state. A state that only loops on
 * one set and accepts ends the recursion as `set{a,b}`, so `^[a-z]+$` with maxLength 64 is a
 * handful of rules, not 64. A deterministic automaton means one parse per text, so the matcher
 * never carries more than one stack for a string.
 *
 * Keys that must differ from a set of names (extra properties beside declared ones) are a trie
 * of the names turned inside out: at each node, end the string (when no name ends there), take
 * a character no name continues with, or follow a name's next character - every spelling
 * included, so "f\u006fo" can never pass for an extra key when "foo" is declared. */
#include "gram_schema_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-context caches: compiled patterns, written constraints ---- */

struct pat_entry {
    char *src; /* pattern text (format entries: NULL) */
    size_t len;
    unsigned format;
    struct gram_js_dfa *d; /* NULL: compile failed (error already recorded) */
};

/* A string constraint already written: its key (counts, formats, patterns) and its grammar. */
struct str_entry {
    char *key;
    size_t key_len;
    char *expr; /* NULL: no string meets it */
};

struct gram_js_str_memo {
    struct pat_entry *p;
    size_t np, capp;
    struct str_entry *s;
    size_t ns, caps;
};

static struct gram_js_str_memo *memo(struct gram_js_ctx *c)
{
    if (!c->str) {
        c->str = calloc(1, sizeof *c->str);
        if (!c->str) gram_js_fail(c, ERR_NOMEM, "out of memory");
    }
    return c->str;
}

void gram_js_str_ctx_free(struct gram_js_ctx *c)
{
    struct gram_js_str_memo *m = c->str;
    if (!m) return;
    for (size_t i = 0; i < m->np; i++) {
        free(m->p[i].src);
        gram_js_dfa_free(m->p[i].d);
    }
    for (size_t i = 0; i < m->ns; i++) {
        free(m->s[i].key);
        free(m->s[i].expr);
    }
    free(m->p);
    free(m->s);
    free(m);
    c->str = NULL;
}

/* ---- canonical JSON text ---- */

void gram_js_put_json_string(struct gram_js_buf *b, const char *s, size_t n)
{
    struct gram_js_buf t = {0};
    gram_js_put(&t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *e = NULL;
        switch (ch) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default: break;
        }
        if (e) gram_js_puts(&t, e);
        else if (ch < 0x20) gram_js_printf(&t, "\\u%04x", ch);
        else gram_js_put(&t, (const char *)&s[i], 1);
    }
    gram_js_put(&t, "\"", 1);
    if (t.oom) b->oom = 1;
    gram_js_put_lit(b, t.p ? t.p : "", t.n);
    gram_js_buf_free(&t);
}

/* ---- strings that are not one of a set of keys ---- */

struct trie {
    uint32_t cp;
    int end;                /* a key ends here */
    struct trie *kid, *sib; /* children sorted by cp */
};

static struct trie *trie_child(struct trie *t, uint32_t cp)
{
    struct trie **p = &t->kid;
    while (*p && (*p)->cp < cp) p = &(*p)->sib;
    if (*p && (*p)->cp == cp) return *p;
    struct trie *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->cp = cp;
    n->sib = *p;
    *p = n;
    return n;
}

static void trie_free(struct trie *t)
{
    while (t) {
        struct trie *s = t->sib;
        trie_free(t->kid);
        free(t);
        t = s;
    }
}

/* Rest of a string (closing quote included) after reaching trie node t. */
static void key_rest(struct gram_js_ctx *c, struct gram_js_buf *b, const struct trie *t,
                     const char *hint)
{
    const char *ch = gram_js_prim(c, GRAM_JS_P_CHAR);
    if (!t->kid) { /* a key ends here and nothing continues it: one more character at least */
        gram_js_printf(b, "%s+ \"\\\"\"", ch);
        return;
    }
    size_t r = gram_js_rule_new(c, hint);
    if (r == SIZE_MAX) return;
    gram_js_puts(b, gram_js_rule_name(c, r));
    struct gram_js_buf body = {0};
    int first = 1;
    if (!t->end) {
        gram_js_puts(&body, "\"\\\"\"");
        first = 0;
    }
    struct gram_js_cset kids = {0}, other = {0}, uni = {0};
    for (const struct trie *k = t->kid; k; k = k->sib) gram_js_cset_add(&kids, k->cp, k->cp);
    gram_js_cset_universe(&uni);
    struct gram_js_cset all = {0};
    gram_js_cset_complement(&all, &kids, GRAM_JS_CP_MAX);
    gram_js_cset_intersect(&other, &all, &uni);
    gram_js_cset_free(&all);
    if (other.n > 0) {
        gram_js_printf(&body, "%s%s %s* \"\\\"\"", first ? "" : " | ", gram_js_cset_rule(c, &other),
                       ch);
        first = 0;
    }
    for (const struct trie *k = t->kid; k; k = k->sib) {
        struct gram_js_cset one = {0};
        gram_js_cset_add(&one, k->cp, k->cp);
        gram_js_printf(&body, "%s%s ", first ? "" : " | ", gram_js_cset_rule(c, &one));
        gram_js_cset_free(&one);
        first = 0;
        key_rest(c, &body, k, hint);
    }
    if (kids.oom || other.oom || uni.oom) gram_js_fail(c, ERR_NOMEM, "out of memory");
    gram_js_cset_free(&kids);
    gram_js_cset_free(&other);
    gram_js_cset_free(&uni);
    gram_js_rule_set(c, r, &body);
}

const char *gram_js_key_not_in(struct gram_js_ctx *c, const char *const *keys,
                               const size_t *len, size_t n, const char *hint)
{
    struct trie root = {0};
    for (size_t i = 0; i < n && !c->rc; i++) {
        struct trie *t = &root;
        for (size_t j = 0; j < len[i] && t;) {
            uint32_t cp;
            j += gram_js_utf8_dec((const unsigned char *)keys[i] + j, len[i] - j, &cp);
            t = trie_child(t, cp);
        }
        if (!t) gram_js_fail(c, ERR_NOMEM, "out of memory");
        else t->end = 1;
    }
    size_t r = gram_js_rule_new(c, hint);
    if (r == SIZE_MAX) {
        trie_free(root.kid);
        return "";
    }
    struct gram_js_buf b = {0};
    gram_js_puts(&b, "\"\\\"\" ");
    if (!root.kid && !root.end) gram_js_printf(&b, "%s* \"\\\"\"", gram_js_prim(c, GRAM_JS_P_CHAR));
    else key_rest(c, &b, &root, hint);
    gram_js_rule_set(c, r, &b);
    trie_free(root.kid);
    return gram_js_rule_name(c, r);
}

/* ---- formats ---- */

#define DATE_RX                                                                                \
    "(?:\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)" \
    "|02-(?:0[1-9]|1\\d|2[0-8]))|(?:\\d\\d(?:[02468][48]|[13579][26]|[2468]0)"                    \
    "|(?:[02468][048]|[13579][26])00)-02-29)"
#define TIME_RX                                                                      \
    "(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:[Zz]|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)"
#define LABEL_RX "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#define ATOM_RX "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
#define OCTET_RX "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"

static const struct {
    unsigned bit;
    const char *name;
    const char *rx;
} g_formats[] = {
    {GRAM_JS_F_DATE, "date", "^" DATE_RX "$"},
    {GRAM_JS_F_TIME, "time", "^" TIME_RX "$"},
    {GRAM_JS_F_DATE_TIME, "date-time", "^" DATE_RX "[Tt]" TIME_RX "$"},
    {GRAM_JS_F_UUID, "uuid",
     "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
    {GRAM_JS_F_EMAIL, "email",
     "^" ATOM_RX "(?:\\." ATOM_RX ")*@" LABEL_RX "(?:\\." LABEL_RX ")*$"},
    {GRAM_JS_F_IPV4, "ipv4", "^(?:" OCTET_RX "\\.){3}" OCTET_RX "$"},
};
#define N_FORMATS (sizeof g_formats / sizeof g_formats[0])

unsigned gram_js_format_bit(const char *name)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (strcmp(name, g_formats[i].name) == 0) return g_formats[i].bit;
    return 0;
}

/* The compiled automaton of a pattern (fmt == 0) or a format, cached per context. */
static const struct gram_js_dfa *get_dfa(struct gram_js_ctx *c, const char *src, size_t len, unsigned fmt)
{
    struct gram_js_str_memo *m = memo(c);
    if (!m) return NULL;
    for (size_t i = 0; i < m->np; i++) {
        struct pat_entry *e = &m->p[i];
        if (fmt ? e->format == fmt : (!e->format && e->len == len && memcmp(e->src, src, len) == 0))
            return e->d;
    }
    if (gram_js_grow(&m->p, &m->capp, m->np + 1, sizeof *m->p)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return NULL;
    }
    const char *rx = src;
    size_t rlen = len;
    const char *fname = NULL;
    if (fmt)
        for (size_t i = 0; i < N_FORMATS; i++)
            if (g_formats[i].bit == fmt) rx = g_formats[i].rx, rlen = strlen(rx), fname = g_formats[i].name;
    struct pat_entry *e = &m->p[m->np];
    memset(e, 0, sizeof *e);
    e->format = fmt;
    if (!fmt) {
        e->src = malloc(len + 1);
        if (!e->src) {
            gram_js_fail(c, ERR_NOMEM, "out of memory");
            return NULL;
        }
        memcpy(e->src, src, len);
        e->src[len] = 0;
        e->len = len;
    }
    m->np++;
    int rc = 0;
    char why[128] = "";
    e->d = gram_js_rx_compile(rx, rlen, &rc, why, sizeof why);
    if (!e->d) {
        if (fname) gram_js_fail(c, rc ? rc : ERR_NOMEM, "format %s: %s", fname, why);
        else gram_js_fail(c, rc ? rc : ERR_NOMEM, "pattern \"%.60s\": %s", src, why[0] ? why : "cannot compile");
    }
    return e->d;
}

/* ---- string constraints as a product automaton ---- */

#define PROD_MAX_DFAS 16

struct pstate {
    int q[PROD_MAX_DFAS];
    uint64_t cnt;
    int live;
    int loop;      /* every component loops on itself and accepts: written as set{a,b} */
    int loop_any;  /* loop: the loop set is not empty */
    size_t rule;   /* SIZE_MAX: not written yet */
    struct gram_js_dtr *t; /* transitions (to = product index) */
    size_t nt;
};

struct prod {
    struct gram_js_ctx *c;
    const struct gram_js_dfa *d[PROD_MAX_DFAS];
    size_t k;
    uint64_t min, max; /* max UINT64_MAX: none */
    struct pstate *s;
    size_t n, cap;
    int rc;
};

static int comp_loop(const struct gram_js_dfa *d, int q)
{
    const struct gram_js_dst *s = &d->s[q];
    if (!s->accept) return 0;
    for (size_t i = 0; i < s->nt; i++)
        if (s->t[i].to != q) return 0;
    return 1;
}

static int accepting(const struct prod *p, const struct pstate *s)
{
    if (s->cnt < p->min) return 0;
    for (size_t i = 0; i < p->k; i++)
        if (!p->d[i]->s[s->q[i]].accept) return 0;
    return 1;
}

static uint64_t next_cnt(const struct prod *p, uint64_t cnt)
{
    if (p->max != UINT64_MAX) return cnt + 1;
    return cnt < p->min ? cnt + 1 : cnt;
}

static void loop_set(const struct prod *p, const struct pstate *s, struct gram_js_cset *out);

static int pstate_find(struct prod *p, const int *q, uint64_t cnt)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->s[i].cnt == cnt && memcmp(p->s[i].q, q, p->k * sizeof *q) == 0) return (int)i;
    if (p->n >= GRAM_JS_MAX_PRODUCT) {
        p->rc = ERR_LIMIT;
        return -1;
    }
    if (gram_js_grow(&p->s, &p->cap, p->n + 1, sizeof *p->s)) {
        p->rc = ERR_NOMEM;
        return -1;
    }
    struct pstate *s = &p->s[p->n];
    memset(s, 0, sizeof *s);
    memcpy(s->q, q, p->k * sizeof *q);
    s->cnt = cnt;
    s->rule = SIZE_MAX;
    s->loop = p->max != UINT64_MAX || cnt < p->min;
    for (size_t i = 0; i < p->k && s->loop; i++) s->loop = comp_loop(p->d[i], q[i]);
    if (s->loop) {
        struct gram_js_cset set = {0};
        loop_set(p, s, &set);
        if (set.oom) p->rc = ERR_NOMEM;
        s->loop_any = set.n > 0;
        gram_js_cset_free(&set);
    }
    return (int)p->n++;
}

/* Transitions of product state i: intersect the components' interval lists. */
static void pstate_expand(struct prod *p, size_t i)
{
    if (p->s[i].loop) return; /* written as a repetition, never expanded */
    if (p->max != UINT64_MAX && p->s[i].cnt >= p->max) return;
    /* current intersection as a list of (lo, hi, tuple) */
    size_t n = 1, cap = 8;
    struct iv {
        uint32_t lo, hi;
        int q[PROD_MAX_DFAS];
    } *cur = malloc(cap * sizeof *cur);
    if (!cur) {
        p->rc = ERR_NOMEM;
        return;
    }
    cur[0].lo = 0;
    cur[0].hi = GRAM_JS_CP_MAX;
    for (size_t d = 0; d < p->k && n > 0; d++) {
        const struct gram_js_dst *s = &p->d[d]->s[p->s[i].q[d]];
        /* merging two sorted lists of disjoint intervals gives fewer than n + nt pieces */
        size_t m = 0;
        struct iv *nx = malloc((n + s->nt + 1) * sizeof *nx);
        if (!nx) {
            free(cur);
            p->rc = ERR_NOMEM;
            return;
        }
        size_t a = 0, b = 0;
        while (a < n && b < s->nt) {
            uint32_t lo = cur[a].lo > s->t[b].lo ? cur[a].lo : s->t[b].lo;
            uint32_t hi = cur[a].hi < s->t[b].hi ? cur[a].hi : s->t[b].hi;
            if (lo <= hi) {
                nx[m] = cur[a];
                nx[m].lo = lo;
                nx[m].hi = hi;
                nx[m].q[d] = s->t[b].to;
                m++;
            }
            if (cur[a].hi < s->t[b].hi) a++;
            else b++;
        }
        free(cur);
        cur = nx;
        n = m;
    }
    uint64_t cnt = next_cnt(p, p->s[i].cnt);
    struct gram_js_dtr *t = malloc((2 * n + 1) * sizeof *t);
    if (!t) {
        free(cur);
        p->rc = ERR_NOMEM;
        return;
    }
    size_t nt = 0;
    for (size_t k = 0; k < n; k++) {
        /* without components the single interval spans the surrogates: skip them */
        uint32_t lo = cur[k].lo, hi = cur[k].hi;
        int to = pstate_find(p, cur[k].q, cnt);
        if (to < 0) break;
        if (lo <= GRAM_JS_SUR_HI && hi >= GRAM_JS_SUR_LO) {
            if (lo < GRAM_JS_SUR_LO) t[nt++] = (struct gram_js_dtr){lo, GRAM_JS_SUR_LO - 1, to};
            if (hi > GRAM_JS_SUR_HI) t[nt++] = (struct gram_js_dtr){GRAM_JS_SUR_HI + 1, hi, to};
        } else {
            t[nt++] = (struct gram_js_dtr){lo, hi, to};
        }
    }
    free(cur);
    p->s[i].t = t;
    p->s[i].nt = nt;
}

/* Explore, then mark live states. 0 or an error code. */
static int prod_build(struct prod *p)
{
    int q0[PROD_MAX_DFAS] = {0};
    if (pstate_find(p, q0, 0) < 0) return p->rc;
    for (size_t i = 0; i < p->n && !p->rc; i++) pstate_expand(p, i);
    if (p->rc) return p->rc;
    for (size_t i = 0; i < p->n; i++) {
        struct pstate *s = &p->s[i];
        if (s->loop) /* a repetition: live when it can match some count */
            s->live = (p->max == UINT64_MAX || s->cnt <= p->max) && (s->loop_any || s->cnt >= p->min);
        else
            s->live = accepting(p, s);
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (p->s[i].live) continue;
            for (size_t k = 0; k < p->s[i].nt; k++)
                if (p->s[p->s[i].t[k].to].live) {
                    p->s[i].live = 1;
                    changed = 1;
                    break;
                }
        }
    }
    return 0;
}

static void prod_free(struct prod *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->s[i].t);
    free(p->s);
}

/* The loop set of a looping state: the intersection of its components' sets. */
static void loop_set(const struct prod *p, const struct pstate *s, struct gram_js_cset *out)
{
    struct gram_js_cset cur = {0};
    gram_js_cset_universe(&cur);
    for (size_t i = 0; i < p->k; i++) {
        struct gram_js_cset mine = {0}, nx = {0};
        const struct gram_js_dst *d = &p->d[i]->s[s->q[i]];
        for (size_t t = 0; t < d->nt; t++) gram_js_cset_add(&mine, d->t[t].lo, d->t[t].hi);
        gram_js_cset_intersect(&nx, &cur, &mine);
        gram_js_cset_free(&cur);
        gram_js_cset_free(&mine);
        cur = nx;
    }
    *out = cur;
}

static void prod_ref(struct prod *p, size_t i, struct gram_js_buf *b, const char *hint);

/* Body of product state i's rule. */
static void prod_body(struct prod *p, size_t i, struct gram_js_buf *b, const char *hint)
{
    struct pstate *s = &p->s[i];
    int acc = accepting(p, s);
    /* self loop first, then one alternative per live target */
    struct gram_js_cset self = {0};
    for (size_t k = 0; k < s->nt; k++)
        if ((size_t)s->t[k].to == i) gram_js_cset_add(&self, s->t[k].lo, s->t[k].hi);
    if (self.n > 0) gram_js_printf(b, "%s* ", gram_js_cset_rule(p->c, &self));
    gram_js_cset_free(&self);
    struct gram_js_buf alts = {0};
    int nalt = 0;
    for (size_t k = 0; k < s->nt; k++) {
        int to = s->t[k].to;
        if ((size_t)to == i || !p->s[to].live) continue;
        int seen = 0;
        for (size_t j = 0; j < k && !seen; j++) seen = s->t[j].to == to;
        if (seen) continue;
        struct gram_js_cset set = {0};
        for (size_t j = k; j < s->nt; j++)
            if (s->t[j].to == to) gram_js_cset_add(&set, s->t[j].lo, s->t[j].hi);
        if (nalt++) gram_js_puts(&alts, " | ");
        gram_js_puts(&alts, gram_js_cset_rule(p->c, &set));
        gram_js_cset_free(&set);
        gram_js_puts(&alts, " ");
        prod_ref(p, (size_t)to, &alts, hint);
    }
    if (nalt > 0) {
        gram_js_printf(b, "(%s)%s", alts.p, acc ? "?" : "");
    } else if (b->n == 0) {
        gram_js_puts(b, "\"\""); /* accepting, nothing follows */
    }
    if (alts.oom) b->oom = 1;
    gram_js_buf_free(&alts);
}

/* A reference to state i: inline for repetitions and for the accepting end, else its rule. */
static void prod_ref(struct prod *p, size_t i, struct gram_js_buf *b, const char *hint)
{
    struct pstate *s = &p->s[i];
    if (s->loop) {
        struct gram_js_cset set = {0};
        loop_set(p, s, &set);
        uint64_t a = s->cnt < p->min ? p->min - s->cnt : 0;
        uint64_t mx = p->max == UINT64_MAX ? UINT64_MAX : p->max - s->cnt;
        if (set.n == 0 || mx == 0) gram_js_puts(b, "\"\"");
        else gram_js_put_repeat(b, gram_js_cset_rule(p->c, &set), a, mx);
        gram_js_cset_free(&set);
        return;
    }
    if (s->rule == SIZE_MAX) {
        int any_live = 0;
        for (size_t k = 0; k < s->nt && !any_live; k++) any_live = p->s[s->t[k].to].live;
        if (!any_live) { /* accepting, nothing can follow */
            gram_js_puts(b, "\"\"");
            return;
        }
        s->rule = gram_js_rule_new(p->c, hint);
        if (s->rule == SIZE_MAX) return;
        struct gram_js_buf body = {0};
        prod_body(p, i, &body, hint);
        gram_js_rule_set(p->c, s->rule, &body);
    }
    gram_js_puts(b, gram_js_rule_name(p->c, s->rule));
}

/* The automata a constraint needs (patterns, then formats). -1 after an error. */
static int collect_dfas(struct gram_js_ctx *c, const struct gram_js_strc *s, struct prod *p)
{
    for (size_t i = 0; i < s->n_pat; i++) {
        const struct gram_js_dfa *d = get_dfa(c, s->pat[i], s->pat_len[i], 0);
        if (!d) return -1;
        if (p->k == PROD_MAX_DFAS) {
            gram_js_fail(c, ERR_LIMIT, "more than %d patterns and formats on one string", PROD_MAX_DFAS);
            return -1;
        }
        p->d[p->k++] = d;
    }
    for (size_t i = 0; i < N_FORMATS; i++) {
        if (!(s->formats & g_formats[i].bit)) continue;
        const struct gram_js_dfa *d = get_dfa(c, NULL, 0, g_formats[i].bit);
        if (!d) return -1;
        if (p->k == PROD_MAX_DFAS) {
            gram_js_fail(c, ERR_LIMIT, "more than %d patterns and formats on one string", PROD_MAX_DFAS);
            return -1;
        }
        p->d[p->k++] = d;
    }
    return 0;
}

/* Whether the literal meets every constraint. */
static int lit_ok(struct gram_js_ctx *c, const struct gram_js_strc *s)
{
    uint32_t *cps;
    size_t n;
    if (gram_js_utf8_cps(s->lit, s->lit_len, &cps, &n)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        return 0;
    }
    int ok = n >= s->min && n <= s->max;
    struct prod p = {0};
    if (ok && collect_dfas(c, s, &p)) ok = 0;
    for (size_t d = 0; d < p.k && ok; d++) {
        int q = 0;
        for (size_t i = 0; i < n && q >= 0; i++) {
            const struct gram_js_dst *st = &p.d[d]->s[q];
            int to = -1;
            for (size_t t = 0; t < st->nt; t++)
                if (cps[i] >= st->t[t].lo && cps[i] <= st->t[t].hi) to = st->t[t].to;
            q = to;
        }
        ok = q >= 0 && p.d[d]->s[q].accept;
    }
    free(cps);
    return ok;
}

static int prod_setup(struct gram_js_ctx *c, const struct gram_js_strc *s, struct prod *p)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->min = s->min;
    p->max = s->max;
    if (collect_dfas(c, s, p)) return -1;
    int rc = prod_build(p);
    if (rc == ERR_LIMIT)
        gram_js_fail(c, rc, "string constraints (patterns, formats, lengths %llu..%llu) need more than %d automaton states",
                     (unsigned long long)s->min, (unsigned long long)s->max, GRAM_JS_MAX_PRODUCT);
    else if (rc)
        gram_js_fail(c, rc, "out of memory");
    return rc ? -1 : 0;
}

int gram_js_str_empty(struct gram_js_ctx *c, const struct gram_js_strc *s)
{
    if (s->lit_conflict || s->min > s->max) return 1;
    if (s->lit) return !lit_ok(c, s);
    if (s->n_pat == 0 && s->formats == 0) return 0;
    struct prod p;
    int empty = 0;
    if (prod_setup(c, s, &p) == 0) empty = !p.s[0].live;
    prod_free(&p);
    return empty;
}

void gram_js_str_emit(struct gram_js_ctx *c, const struct gram_js_strc *s, const char *hint,
                      struct gram_js_buf *out, int *empty)
{
    *empty = 0;
    if (s->lit_conflict || s->min > s->max) {
        *empty = 1;
        return;
    }
    if (s->lit) {
        if (lit_ok(c, s)) gram_js_put_json_string(out, s->lit, s->lit_len);
        else *empty = 1;
        return;
    }
    if (s->n_pat == 0 && s->formats == 0 && s->min == 0 && s->max == UINT64_MAX) {
        gram_js_puts(out, gram_js_prim(c, GRAM_JS_P_STRING));
        return;
    }
    if (s->n_pat == 0 && s->formats == 0) {
        gram_js_puts(out, "\"\\\"\" ");
        gram_js_put_repeat(out, gram_js_prim(c, GRAM_JS_P_CHAR), s->min, s->max);
        gram_js_puts(out, " \"\\\"\"");
        return;
    }
    /* the same constraints twice (two date-time fields) share one set of rules */
    struct gram_js_str_memo *m = memo(c);
    struct gram_js_buf key = {0};
    gram_js_printf(&key, "%llu %llu %u", (unsigned long long)s->min, (unsigned long long)s->max, s->formats);
    for (size_t i = 0; i < s->n_pat; i++) {
        gram_js_printf(&key, " %zu:", s->pat_len[i]);
        gram_js_put(&key, s->pat[i], s->pat_len[i]);
    }
    for (size_t i = 0; m && !key.oom && i < m->ns; i++) {
        if (m->s[i].key_len != key.n || memcmp(m->s[i].key, key.p, key.n) != 0) continue;
        if (m->s[i].expr) gram_js_puts(out, m->s[i].expr);
        else *empty = 1;
        gram_js_buf_free(&key);
        return;
    }
    struct gram_js_buf expr = {0};
    struct prod p;
    if (prod_setup(c, s, &p) == 0) {
        if (!p.s[0].live) {
            *empty = 1;
        } else {
            gram_js_puts(&expr, "\"\\\"\" ");
            prod_ref(&p, 0, &expr, hint);
            gram_js_puts(&expr, " \"\\\"\"");
            gram_js_put(out, expr.p ? expr.p : "", expr.n);
        }
    }
    prod_free(&p);
    if (key.oom || expr.oom || !m || gram_js_grow(&m->s, &m->caps, m->ns + 1, sizeof *m->s)) {
        gram_js_fail(c, ERR_NOMEM, "out of memory");
        gram_js_buf_free(&key);
        gram_js_buf_free(&expr);
        return;
    }
    m->s[m->ns].key = key.p;
    m->s[m->ns].key_len = key.n;
    m->s[m->ns++].expr = *empty ? (gram_js_buf_free(&expr), NULL) : expr.p;
}
