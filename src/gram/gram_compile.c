/* gram_compile: builder -> struct gram (flat element array, alternatives table), and the checks
 * that need the whole grammar: undefined rules, the root rule, which rules can match the empty
 * string (nullable), and left recursion.
 *
 * Left recursion here is exact, not syntactic: a rule that can reach itself through rules (or
 * repetition bodies) standing at the start of an alternative, with only nullable elements before
 * them, would let the matcher expand forever without consuming input, so it is an error naming
 * the cycle. Repetition of a nullable body is not recursion (a counter frame, see gram_match.c),
 * and its minimum is lowered to 0, which matches the same strings (empty iterations pad it).
 *
 * Both analyses are linear in the grammar size (worklist for nullability, iterative DFS for
 * cycles), so an adversarial grammar cannot make them quadratic or overflow the C stack. */
#include "gram_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors (here, below the parser, which calls gram_compile: both report through it) ---- */

void gram_linecol(const struct gbuild *b, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < b->len; i++) {
        unsigned char ch = (unsigned char)b->src[i];
        if (ch == '\n' || (ch == '\r' && (i + 1 >= b->len || b->src[i + 1] != '\n'))) {
            ++*line;
            *col = 1;
        } else if ((ch & 0xc0) != 0x80 && ch != '\r') {
            ++*col;
        }
    }
}

int gram_gb_error(const struct gbuild *b, int code, size_t off, const char *fmt, ...)
{
    if (!b->ei || b->ei->code != 0) return code;
    if (off > b->len) off = b->len;
    unsigned line, col;
    gram_linecol(b, off, &line, &col);
    char why[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return err_set(b->ei, code, off, "line %u:%u: %s", line, col, why);
}

static bool is_end(const struct gel *e) { return e->op <= GOP_ALT; }

bool gram_class_has(const struct gram *g, uint32_t k, uint32_t cp)
{
    const struct gclass *c = &g->cls[k];
    if (cp < 128) return (c->asc[cp >> 6] >> (cp & 63)) & 1;
    const struct grange *r = g->rng + c->r0;
    uint32_t lo = 0, hi = c->nr;
    while (lo < hi) { /* first range with r.hi >= cp */
        uint32_t mid = (lo + hi) / 2;
        if (r[mid].hi < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nr && r[lo].lo <= cp;
}

bool gram_class_any(const struct gram *g, uint32_t k, uint32_t lo, uint32_t hi)
{
    const struct gclass *c = &g->cls[k];
    const struct grange *r = g->rng + c->r0;
    for (uint32_t i = 0; i < c->nr; i++)
        if (r[i].lo <= hi && lo <= r[i].hi) return true;
    return false;
}

void gram_free(struct gram *g)
{
    if (!g) return;
    free(g->el);
    free(g->rules);
    free(g->alts);
    free(g->reps);
    free(g->cls);
    free(g->rng);
    free(g->toks);
    free(g->text);
    free(g);
}

uint32_t gram_n_rules(const struct gram *g) { return g ? g->n_rules : 0; }

/* Copy the builder's rules into one element array with GOP_END after each rule. */
static int flatten(struct gbuild *b, struct gram *g)
{
    size_t n_el = 0, n_alts = 0;
    for (uint32_t i = 0; i < b->n_rules; i++) {
        n_el += b->rules[i].n + 1;
        n_alts += 1;
        for (uint32_t k = 0; k < b->rules[i].n; k++) n_alts += b->rules[i].el[k].op == GOP_ALT;
    }
    g->el = malloc(n_el * sizeof *g->el);
    g->alts = malloc(n_alts * sizeof *g->alts);
    g->rules = calloc(b->n_rules, sizeof *g->rules);
    if (!g->el || !g->alts || !g->rules) return ERR_NOMEM;
    uint32_t pos = 0, na = 0;
    for (uint32_t i = 0; i < b->n_rules; i++) {
        const struct gb_rule *br = &b->rules[i];
        struct grule *r = &g->rules[i];
        r->alt0 = na;
        r->name_off = br->name_off;
        r->name_len = br->name_len;
        r->def_off = br->def_off;
        r->synth = br->synth;
        g->alts[na++] = pos;
        for (uint32_t k = 0; k < br->n; k++) {
            g->el[pos++] = br->el[k];
            if (br->el[k].op == GOP_ALT) g->alts[na++] = pos;
        }
        g->el[pos++] = (struct gel){GOP_END, 0, 0};
        r->n_alt = na - r->alt0;
    }
    g->n_el = pos;
    g->n_alts = na;
    g->n_rules = b->n_rules;
    return 0;
}

/* Element e's dependency for nullability: the rule it is nullable through, or UINT32_MAX when it
 * is a terminal (never nullable); *now is set when it is nullable outright. */
static uint32_t null_dep(const struct gram *g, const struct gel *e, bool *now)
{
    *now = false;
    if (e->op == GOP_RULE) return e->a;
    if (e->op == GOP_REP) {
        if (g->reps[e->b].min == 0) *now = true;
        return e->a;
    }
    return UINT32_MAX;
}

/* Nullable rules by a worklist: each alternative counts its elements not yet known nullable;
 * when a rule becomes nullable, every alternative mentioning it counts down. */
static int nullable(struct gram *g)
{
    uint32_t na = g->n_alts, nr = g->n_rules;
    uint32_t *cnt = calloc(na, sizeof *cnt), *owner = malloc(na * sizeof *owner);
    uint32_t *head = calloc((size_t)nr + 1, sizeof *head), *queue = malloc(nr * sizeof *queue);
    uint32_t *occ = NULL;
    bool *dead = calloc(na, sizeof *dead);
    int rc = ERR_NOMEM;
    if (!cnt || !owner || !head || !queue || !dead) goto out;
    size_t n_occ = 0;
    for (uint32_t r = 0; r < nr; r++) {
        for (uint32_t a = g->rules[r].alt0; a < g->rules[r].alt0 + g->rules[r].n_alt; a++) {
            owner[a] = r;
            for (const struct gel *e = g->el + g->alts[a]; !is_end(e); e++) {
                bool now;
                uint32_t d = null_dep(g, e, &now);
                if (now) continue;
                if (d == UINT32_MAX) {
                    dead[a] = true;
                } else {
                    cnt[a]++;
                    head[d + 1]++;
                    n_occ++;
                }
            }
        }
    }
    for (uint32_t r = 0; r < nr; r++) head[r + 1] += head[r];
    occ = malloc((n_occ ? n_occ : 1) * sizeof *occ);
    uint32_t *fill = malloc(((size_t)nr + 1) * sizeof *fill);
    if (!occ || !fill) {
        free(fill);
        goto out;
    }
    memcpy(fill, head, ((size_t)nr + 1) * sizeof *fill);
    for (uint32_t a = 0; a < na; a++) {
        for (const struct gel *e = g->el + g->alts[a]; !is_end(e); e++) {
            bool now;
            uint32_t d = null_dep(g, e, &now);
            if (!now && d != UINT32_MAX) occ[fill[d]++] = a;
        }
    }
    free(fill);
    uint32_t qn = 0;
    for (uint32_t a = 0; a < na; a++) {
        uint32_t r = owner[a];
        if (!dead[a] && cnt[a] == 0 && !g->rules[r].nullable) {
            g->rules[r].nullable = 1;
            queue[qn++] = r;
        }
    }
    for (uint32_t qi = 0; qi < qn; qi++) {
        uint32_t x = queue[qi];
        for (uint32_t k = head[x]; k < head[x + 1]; k++) {
            uint32_t a = occ[k], r = owner[a];
            if (--cnt[a] == 0 && !dead[a] && !g->rules[r].nullable) {
                g->rules[r].nullable = 1;
                queue[qn++] = r;
            }
        }
    }
    rc = 0;
out:
    free(cnt);
    free(owner);
    free(head);
    free(queue);
    free(occ);
    free(dead);
    return rc;
}

/* "'name'" or "a group in 'name'" for messages. */
static int rule_label(const struct gram *g, uint32_t r, char *buf, size_t cap)
{
    const struct grule *x = &g->rules[r];
    return snprintf(buf, cap, "%s'%.*s'", x->synth ? "a group in " : "", (int)x->name_len,
                    g->text + x->name_off);
}

/* Left edges: r -> x when x (a rule or a repetition body) starts r after nullable elements. */
static int left_edges(const struct gram *g, uint32_t **head_out, uint32_t **to_out)
{
    uint32_t nr = g->n_rules;
    uint32_t *head = calloc((size_t)nr + 1, sizeof *head);
    if (!head) return ERR_NOMEM;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t *to = pass ? *to_out : NULL;
        for (uint32_t r = 0; r < nr; r++) {
            uint32_t k = pass ? head[r] : 0;
            for (uint32_t a = g->rules[r].alt0; a < g->rules[r].alt0 + g->rules[r].n_alt; a++) {
                for (const struct gel *e = g->el + g->alts[a]; !is_end(e); e++) {
                    if (e->op != GOP_RULE && e->op != GOP_REP) break;
                    if (pass) to[k++] = e->a;
                    else head[r + 1]++;
                    bool go_on = e->op == GOP_RULE ? g->rules[e->a].nullable : g->reps[e->b].min == 0;
                    if (!go_on) break;
                }
            }
        }
        if (!pass) {
            for (uint32_t r = 0; r < nr; r++) head[r + 1] += head[r];
            *to_out = malloc((head[nr] ? head[nr] : 1) * sizeof **to_out);
            if (!*to_out) {
                free(head);
                return ERR_NOMEM;
            }
        }
    }
    *head_out = head;
    return 0;
}

/* Find a cycle of left edges (iterative DFS, colours 0 new / 1 on the path / 2 done). */
static int left_recursion(struct gbuild *b, const struct gram *g)
{
    uint32_t nr = g->n_rules, *head = NULL, *to = NULL;
    int rc = left_edges(g, &head, &to);
    if (rc) return rc;
    uint8_t *colour = calloc(nr, 1);
    uint32_t *path = malloc(nr * sizeof *path), *it = malloc(nr * sizeof *it);
    if (!colour || !path || !it) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (uint32_t s = 0; s < nr && !rc; s++) {
        if (colour[s]) continue;
        uint32_t depth = 0;
        path[depth] = s;
        it[depth++] = head[s];
        colour[s] = 1;
        while (depth && !rc) {
            uint32_t r = path[depth - 1];
            if (it[depth - 1] == head[r + 1]) {
                colour[r] = 2;
                depth--;
                continue;
            }
            uint32_t x = to[it[depth - 1]++];
            if (colour[x] == 0) {
                colour[x] = 1;
                path[depth] = x;
                it[depth++] = head[x];
            } else if (colour[x] == 1) {
                uint32_t from = 0;
                while (path[from] != x) from++;
                char msg[200];
                size_t n = 0;
                for (uint32_t k = from; k <= depth && n < sizeof msg - 8; k++) {
                    uint32_t y = k < depth ? path[k] : x;
                    n += (size_t)rule_label(g, y, msg + n, sizeof msg - n);
                    if (k < depth && n < sizeof msg - 8) n += (size_t)snprintf(msg + n, sizeof msg - n, " -> ");
                }
                rc = gram_gb_error(b, ERR_SYNTAX, g->rules[x].def_off,
                              "left recursion: %s can reach itself without consuming input", msg);
            }
        }
    }
out:
    free(head);
    free(to);
    free(colour);
    free(path);
    free(it);
    return rc;
}

static int check_defined(struct gbuild *b, uint32_t *root)
{
    *root = UINT32_MAX;
    for (uint32_t i = 0; i < b->n_rules; i++) {
        const struct gb_rule *r = &b->rules[i];
        if (!r->defined)
            return gram_gb_error(b, ERR_NOT_FOUND, r->ref_off, "undefined rule '%.*s'", (int)r->name_len,
                            b->text + r->name_off);
        if (!r->synth && r->name_len == 4 && memcmp(b->text + r->name_off, "root", 4) == 0) *root = i;
    }
    if (*root == UINT32_MAX) return gram_gb_error(b, ERR_NOT_FOUND, b->len, "the grammar has no 'root' rule");
    return 0;
}

/* Move the builder's tables into g (the builder keeps nothing of them). */
static void take_tables(struct gbuild *b, struct gram *g)
{
    g->reps = b->reps, g->n_reps = b->n_reps, b->reps = NULL, b->n_reps = 0;
    g->cls = b->cls, g->n_cls = b->n_cls, b->cls = NULL, b->n_cls = 0;
    g->rng = b->rng, g->n_rng = b->n_rng, b->rng = NULL, b->n_rng = 0;
    g->toks = b->toks, g->n_toks = b->n_toks, b->toks = NULL, b->n_toks = 0;
    g->text = b->text, g->n_text = b->n_text, b->text = NULL, b->n_text = 0;
}

int gram_compile(struct gbuild *b, struct gram **out)
{
    *out = NULL;
    uint32_t root;
    int rc = check_defined(b, &root);
    if (rc) return rc;
    struct gram *g = calloc(1, sizeof *g);
    if (!g) return gram_gb_error(b, ERR_NOMEM, 0, "out of memory");
    g->root = root;
    take_tables(b, g);
    rc = flatten(b, g);
    if (!rc) rc = nullable(g);
    if (!rc) { /* a nullable body pads any minimum with empty iterations */
        for (uint32_t i = 0; i < g->n_el; i++)
            if (g->el[i].op == GOP_REP && g->rules[g->el[i].a].nullable) g->reps[g->el[i].b].min = 0;
        rc = left_recursion(b, g);
    }
    if (rc) {
        if (rc == ERR_NOMEM) gram_gb_error(b, ERR_NOMEM, 0, "out of memory");
        gram_free(g);
        return rc;
    }
    *out = g;
    return 0;
}
