/* tmpl_parse: tokens -> syntax tree, following jinja2 3.1's parser.py rule for rule (the
 * precedence ladder condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary <
 * postfix/filter/test, tuples without parentheses where jinja2 allows them, `is` tests with a
 * bare argument, for ... if ... recursive, set blocks with filters, macro/call signatures), plus
 * the tags transformers enables: break/continue (loopcontrols) and generation (its assistant
 * tracker). Filter and test names are resolved here, as jinja2's compiler does, so an unknown one
 * is a parse error. Names are interned into the template's symbol table.
 *
 * Also the entry point tmpl_parse: UTF-8 check, newline normalisation, lexing, parsing.
 * Nesting (blocks in blocks, unary/not chains, conditional chains) is bounded by TMPL_MAX_NEST
 * so the recursive descent cannot exhaust the stack. */
#include "tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps {
    struct tmpl *t;
    const struct token *tk;
    size_t n, i;
    struct err_info *ei;
    int err;
    int depth;
    int loops; /* enclosing for loops (break/continue are only valid inside one) */
    /* jinja2 compiles an unknown filter/test inside an if-statement or a conditional expression
     * into a runtime error ("soft" frames); elsewhere it is a compile error. Unknown names are
     * collected with whether they sit in a soft frame and checked at the end. */
    int soft;
    struct unk {
        uint32_t pos;
        bool soft, is_test, unsupported;
        char name[64];
    } *unk;
    size_t nunk, unkcap;
    /* symbol interning: open addressing over t->syms indices (+1) */
    uint32_t *h;
    size_t hcap;
    size_t syms_cap;
    /* end-tag stack for error messages */
    const char *const *ends[TMPL_MAX_NEST + 4];
    int nends;
};

static const struct token *cur(struct ps *P) { return &P->tk[P->i]; }
static const struct token *look(struct ps *P) { return &P->tk[P->i + 1 < P->n ? P->i + 1 : P->i]; }
static const struct token *next(struct ps *P)
{
    const struct token *t = &P->tk[P->i];
    if (P->i + 1 < P->n) P->i++;
    return t;
}

static void *fail(struct ps *P, uint32_t pos, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void *fail(struct ps *P, uint32_t pos, int code, const char *fmt, ...)
{
    if (!P->err) {
        va_list ap;
        va_start(ap, fmt);
        tmpl_errv(P->t, P->ei, code, pos, fmt, ap);
        va_end(ap);
        P->err = code;
    }
    return NULL;
}

static void *oom(struct ps *P)
{
    if (!P->err) {
        err_set(P->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory parsing template");
        P->err = ERR_NOMEM;
    }
    return NULL;
}

static bool is_name(const struct token *t, const char *s)
{
    return t->t == TK_NAME && t->s->len == strlen(s) && memcmp(t->s->b, s, t->s->len) == 0;
}

static const char *tk_desc(const struct token *t)
{
    static const char *const ops[] = {
        [TK_ADD] = "+",      [TK_SUB] = "-",     [TK_DIV] = "/",   [TK_FLOORDIV] = "//",
        [TK_MUL] = "*",      [TK_MOD] = "%",     [TK_POW] = "**",  [TK_TILDE] = "~",
        [TK_LBRACKET] = "[", [TK_RBRACKET] = "]", [TK_LPAREN] = "(", [TK_RPAREN] = ")",
        [TK_LBRACE] = "{",   [TK_RBRACE] = "}",  [TK_EQ] = "==",   [TK_NE] = "!=",
        [TK_GT] = ">",       [TK_GTEQ] = ">=",   [TK_LT] = "<",    [TK_LTEQ] = "<=",
        [TK_ASSIGN] = "=",   [TK_DOT] = ".",     [TK_COLON] = ":", [TK_PIPE] = "|",
        [TK_COMMA] = ",",    [TK_SEMICOLON] = ";"};
    switch (t->t) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data / text";
    case TK_VAR_BEGIN: return "begin of print statement";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "begin of statement block";
    case TK_BLOCK_END: return "end of statement block";
    case TK_NAME: return t->s->b;
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    default: return t->t < sizeof ops / sizeof ops[0] && ops[t->t] ? ops[t->t] : "?";
    }
}

static bool expect(struct ps *P, uint8_t type, const char *what)
{
    const struct token *t = cur(P);
    if (t->t == type) {
        next(P);
        return true;
    }
    if (t->t == TK_EOF)
        fail(P, t->pos, ERR_SYNTAX, "unexpected end of template, expected '%s'", what);
    else
        fail(P, t->pos, ERR_SYNTAX, "expected token '%s', got '%s'", what, tk_desc(t));
    return false;
}

static bool expect_name(struct ps *P, const char *name)
{
    if (is_name(cur(P), name)) {
        next(P);
        return true;
    }
    return expect(P, TK_NAME + 100, name); /* never matches: reports */
}

static bool enter(struct ps *P, uint32_t pos)
{
    if (++P->depth > TMPL_MAX_NEST) {
        fail(P, pos, ERR_LIMIT, "template nested deeper than %d levels", TMPL_MAX_NEST);
        return false;
    }
    return true;
}
static void leave(struct ps *P) { P->depth--; }

/* ---- symbols ---- */

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint32_t sym_find(const struct ps *P, const char *s, size_t n, size_t *slot)
{
    size_t m = P->hcap - 1, j = fnv(s, n) & m;
    while (P->h[j]) {
        struct str *e = P->t->syms[P->h[j] - 1];
        if (e->len == n && memcmp(e->b, s, n) == 0) return P->h[j] - 1;
        j = (j + 1) & m;
    }
    *slot = j;
    return SYM_NONE;
}

static uint32_t intern(struct ps *P, struct str *name)
{
    struct tmpl *t = P->t;
    if (t->nsyms * 2 >= P->hcap) { /* grow + rehash */
        size_t nc = P->hcap ? P->hcap * 2 : 64;
        uint32_t *nh = calloc(nc, sizeof *nh);
        if (!nh) return (void)oom(P), SYM_NONE;
        free(P->h);
        P->h = nh;
        P->hcap = nc;
        for (size_t k = 0; k < t->nsyms; k++) {
            size_t slot;
            sym_find(P, t->syms[k]->b, t->syms[k]->len, &slot);
            P->h[slot] = (uint32_t)k + 1;
        }
    }
    size_t slot;
    uint32_t s = sym_find(P, name->b, name->len, &slot);
    if (s != SYM_NONE) return s;
    if (t->nsyms == P->syms_cap) {
        size_t nc = P->syms_cap ? P->syms_cap * 2 : 64;
        struct str **ns = realloc(t->syms, nc * sizeof *ns);
        if (!ns) return (void)oom(P), SYM_NONE;
        t->syms = ns;
        P->syms_cap = nc;
    }
    t->syms[t->nsyms] = name;
    P->h[slot] = (uint32_t)t->nsyms + 1;
    return (uint32_t)t->nsyms++;
}

static uint32_t intern_c(struct ps *P, const char *s)
{
    struct str *n = tmpl_str_new(&P->t->ar, s, strlen(s));
    if (n) tmpl_str_ncp(n);
    return n ? intern(P, n) : (oom(P), SYM_NONE);
}

/* ---- node helpers ---- */

static struct node *mk(struct ps *P, uint8_t k, uint32_t pos)
{
    struct node *n = tmpl_arena_alloc(&P->t->ar, sizeof *n);
    if (!n) return oom(P);
    n->k = k;
    n->pos = pos;
    return n;
}

struct nvec {
    struct node **v;
    size_t n, cap;
};
static bool nv_push(struct ps *P, struct nvec *v, struct node *x)
{
    if (!x) return false;
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        struct node **nn = realloc(v->v, nc * sizeof *nn);
        if (!nn) return (void)oom(P), false;
        v->v = nn;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return true;
}
static struct nodes nv_done(struct ps *P, struct nvec *v)
{
    struct nodes r = {0};
    if (v->n && !P->err) {
        r.v = tmpl_arena_alloc(&P->t->ar, v->n * sizeof *r.v);
        if (r.v) {
            memcpy(r.v, v->v, v->n * sizeof *r.v);
            r.n = v->n;
        } else {
            oom(P);
        }
    }
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
    return r;
}

/* ---- expressions ---- */

static struct node *parse_expression(struct ps *P, bool with_condexpr);
static struct node *parse_tuple(struct ps *P, bool simplified, bool with_condexpr,
                                const char *extra_end, bool explicit_paren, bool with_ns);
static struct node *parse_or(struct ps *P);
static struct node *parse_unary(struct ps *P, bool with_filter);
static struct node *parse_primary(struct ps *P, bool with_ns);
static struct node *parse_postfix(struct ps *P, struct node *n);
static struct node *parse_filter_expr(struct ps *P, struct node *n);
static struct node *parse_filter(struct ps *P, struct node *n, bool start_inline);

static struct node *parse_condexpr(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    if (!enter(P, pos)) return NULL;
    size_t unk0 = P->nunk;
    struct node *e1 = parse_or(P);
    while (e1 && is_name(cur(P), "if")) {
        next(P);
        P->soft++;
        struct node *e2 = parse_or(P), *e3 = NULL;
        if (e2 && is_name(cur(P), "else")) {
            next(P);
            e3 = parse_condexpr(P);
        }
        P->soft--;
        if (!e2 || P->err) return NULL;
        for (size_t k = unk0; k < P->nunk; k++) P->unk[k].soft = true;
        struct node *c = mk(P, N_COND, pos);
        if (!c) return NULL;
        c->u.cond.test = e2;
        c->u.cond.a = e1;
        c->u.cond.b = e3;
        e1 = c;
    }
    leave(P);
    return e1;
}

static struct node *parse_expression(struct ps *P, bool with_condexpr)
{
    return with_condexpr ? parse_condexpr(P) : parse_or(P);
}

static struct node *bin(struct ps *P, uint8_t k, uint8_t op, struct node *a, struct node *b,
                        uint32_t pos)
{
    if (!a || !b) return NULL;
    struct node *n = mk(P, k, pos);
    if (!n) return NULL;
    n->op = op;
    n->u.bin.a = a;
    n->u.bin.b = b;
    return n;
}

static struct node *parse_not(struct ps *P);
static struct node *parse_and(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *l = parse_not(P);
    while (l && is_name(cur(P), "and")) {
        next(P);
        l = bin(P, N_AND, 0, l, parse_not(P), pos);
        pos = cur(P)->pos;
    }
    return l;
}

static struct node *parse_or(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *l = parse_and(P);
    while (l && is_name(cur(P), "or")) {
        next(P);
        l = bin(P, N_OR, 0, l, parse_and(P), pos);
        pos = cur(P)->pos;
    }
    return l;
}

static struct node *parse_math1(struct ps *P);
static struct node *parse_compare(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *e = parse_math1(P);
    if (!e) return NULL;
    struct nvec rhs = {0};
    uint8_t opsbuf[64];
    uint8_t *ops = opsbuf;
    size_t nops = 0, opcap = sizeof opsbuf;
    for (;;) {
        const struct token *t = cur(P);
        int op = -1;
        switch (t->t) {
        case TK_EQ: op = C_EQ; break;
        case TK_NE: op = C_NE; break;
        case TK_LT: op = C_LT; break;
        case TK_LTEQ: op = C_LE; break;
        case TK_GT: op = C_GT; break;
        case TK_GTEQ: op = C_GE; break;
        default: break;
        }
        if (op >= 0) {
            next(P);
        } else if (is_name(t, "in")) {
            next(P);
            op = C_IN;
        } else if (is_name(t, "not") && is_name(look(P), "in")) {
            next(P);
            next(P);
            op = C_NOTIN;
        } else {
            break;
        }
        if (nops == opcap) {
            if (ops == opsbuf) {
                ops = malloc(opcap * 2);
                if (ops) memcpy(ops, opsbuf, opcap);
            } else {
                uint8_t *o2 = realloc(ops, opcap * 2);
                if (!o2) free(ops);
                ops = o2;
            }
            if (!ops) {
                free(rhs.v);
                return oom(P);
            }
            opcap *= 2;
        }
        ops[nops++] = (uint8_t)op;
        if (!nv_push(P, &rhs, parse_math1(P))) break;
    }
    struct node *r = e;
    if (nops && !P->err) {
        r = mk(P, N_COMPARE, pos);
        uint8_t *o = r ? tmpl_arena_alloc(&P->t->ar, nops) : NULL;
        if (r && o) {
            memcpy(o, ops, nops);
            r->u.cmp.first = e;
            r->u.cmp.ops = o;
            r->u.cmp.rhs = nv_done(P, &rhs);
        } else {
            r = oom(P);
        }
    }
    free(rhs.v);
    if (ops != opsbuf) free(ops);
    return P->err ? NULL : r;
}

static struct node *parse_not(struct ps *P)
{
    if (is_name(cur(P), "not")) {
        uint32_t pos = next(P)->pos;
        if (!enter(P, pos)) return NULL;
        struct node *a = parse_not(P);
        leave(P);
        if (!a) return NULL;
        struct node *n = mk(P, N_NOT, pos);
        if (n) n->u.bin.a = a;
        return n;
    }
    return parse_compare(P);
}

static struct node *parse_concat(struct ps *P);
static struct node *parse_math1(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *l = parse_concat(P);
    while (l && (cur(P)->t == TK_ADD || cur(P)->t == TK_SUB)) {
        uint8_t op = next(P)->t == TK_ADD ? B_ADD : B_SUB;
        l = bin(P, N_BINOP, op, l, parse_concat(P), pos);
        pos = cur(P)->pos;
    }
    return l;
}

static struct node *parse_math2(struct ps *P);
static struct node *parse_concat(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *first = parse_math2(P);
    if (!first || cur(P)->t != TK_TILDE) return first;
    struct nvec v = {0};
    nv_push(P, &v, first);
    while (!P->err && cur(P)->t == TK_TILDE) {
        next(P);
        nv_push(P, &v, parse_math2(P));
    }
    struct node *n = P->err ? NULL : mk(P, N_CONCAT, pos);
    struct nodes items = nv_done(P, &v);
    if (!n || P->err) return NULL;
    n->u.items = items;
    return n;
}

static struct node *parse_pow(struct ps *P);
static struct node *parse_math2(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *l = parse_pow(P);
    for (;;) {
        if (!l) return NULL;
        uint8_t t = cur(P)->t, op;
        if (t == TK_MUL) op = B_MUL;
        else if (t == TK_DIV) op = B_DIV;
        else if (t == TK_FLOORDIV) op = B_FLOORDIV;
        else if (t == TK_MOD) op = B_MOD;
        else return l;
        next(P);
        l = bin(P, N_BINOP, op, l, parse_pow(P), pos);
        pos = cur(P)->pos;
    }
}

/* Would jinja2's optimizer fold this expression to a constant? (A conservative subset of its
 * as_const rules: literals and operators over literals; filters and calls are not folded.) */
static bool is_const(const struct node *n)
{
    if (!n) return true;
    switch (n->k) {
    case N_CONST: return true;
    case N_NEG: case N_POS: case N_NOT: case N_BINOP: case N_AND: case N_OR:
        return is_const(n->u.bin.a) && is_const(n->u.bin.b);
    case N_LIST: case N_TUPLE: case N_CONCAT:
        for (size_t i = 0; i < n->u.items.n; i++)
            if (!is_const(n->u.items.v[i])) return false;
        return true;
    case N_DICT:
        for (size_t i = 0; i < n->u.dict.keys.n; i++)
            if (!is_const(n->u.dict.keys.v[i]) || !is_const(n->u.dict.vals.v[i])) return false;
        return true;
    case N_COMPARE:
        if (!is_const(n->u.cmp.first)) return false;
        for (size_t i = 0; i < n->u.cmp.rhs.n; i++)
            if (!is_const(n->u.cmp.rhs.v[i])) return false;
        return true;
    case N_COND: return is_const(n->u.cond.test) && is_const(n->u.cond.a) && is_const(n->u.cond.b);
    case N_GETATTR: return is_const(n->u.ga.obj);
    case N_GETITEM: return is_const(n->u.gi.obj) && is_const(n->u.gi.key);
    case N_SLICE:
        return is_const(n->u.sl.obj) && is_const(n->u.sl.a) && is_const(n->u.sl.b) &&
               is_const(n->u.sl.c);
    case N_TEST:
        if (n->u.call.fid < 0 || !is_const(n->u.call.obj) || n->u.call.kwv.n) return false;
        for (size_t i = 0; i < n->u.call.args.n; i++)
            if (!is_const(n->u.call.args.v[i])) return false;
        return true;
    default: return false;
    }
}

static struct node *parse_pow(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *l = parse_unary(P, true);
    while (l && cur(P)->t == TK_POW) {
        next(P);
        struct node *r = parse_unary(P, true);
        bool negconst = r && l->k == N_NEG && l->u.bin.a->k == N_CONST &&
                        (l->u.bin.a->u.c.t == VT_INT || l->u.bin.a->u.c.t == VT_FLOAT) &&
                        !is_const(r);
        l = bin(P, N_BINOP, negconst ? B_POW_NEGCONST : B_POW, l, r, pos);
        pos = cur(P)->pos;
    }
    return l;
}

static struct node *parse_unary(struct ps *P, bool with_filter)
{
    const struct token *t = cur(P);
    uint32_t pos = t->pos;
    struct node *n;
    if (!enter(P, pos)) return NULL;
    if (t->t == TK_SUB || t->t == TK_ADD) {
        bool neg = t->t == TK_SUB;
        next(P);
        struct node *a = parse_unary(P, false);
        n = a ? mk(P, neg ? N_NEG : N_POS, pos) : NULL;
        if (n) n->u.bin.a = a;
    } else {
        n = parse_primary(P, false);
    }
    if (n) n = parse_postfix(P, n);
    if (n && with_filter) n = parse_filter_expr(P, n);
    leave(P);
    return n;
}

static struct node *mk_const(struct ps *P, uint32_t pos, struct val v)
{
    struct node *n = mk(P, N_CONST, pos);
    if (n) n->u.c = v;
    return n;
}

static struct node *parse_list(struct ps *P);
static struct node *parse_dict(struct ps *P);

static struct node *parse_primary(struct ps *P, bool with_ns)
{
    const struct token *t = cur(P);
    uint32_t pos = t->pos;
    if (t->t == TK_NAME) {
        next(P);
        if (is_name(t, "true") || is_name(t, "True")) return mk_const(P, pos, v_bool(true));
        if (is_name(t, "false") || is_name(t, "False")) return mk_const(P, pos, v_bool(false));
        if (is_name(t, "none") || is_name(t, "None")) return mk_const(P, pos, v_none());
        if (with_ns && cur(P)->t == TK_DOT) {
            next(P);
            const struct token *a = cur(P);
            if (!expect(P, TK_NAME, "name")) return NULL;
            struct node *n = mk(P, N_NSREF, pos);
            if (!n) return NULL;
            n->u.ns.sym = intern(P, t->s);
            n->u.ns.attr = a->s;
            return n;
        }
        struct node *n = mk(P, N_NAME, pos);
        if (n) n->u.name.sym = intern(P, t->s);
        return n;
    }
    if (t->t == TK_STRING) {
        next(P);
        if (cur(P)->t != TK_STRING) return mk_const(P, pos, v_strv(t->s, false));
        size_t total = t->s->len;
        for (size_t k = P->i; P->tk[k].t == TK_STRING; k++) total += P->tk[k].s->len;
        struct str *s = tmpl_str_alloc(&P->t->ar, total);
        if (!s) return oom(P);
        size_t w = 0;
        memcpy(s->b, t->s->b, t->s->len);
        w = t->s->len;
        while (cur(P)->t == TK_STRING) {
            const struct token *u = next(P);
            memcpy(s->b + w, u->s->b, u->s->len);
            w += u->s->len;
        }
        tmpl_str_ncp(s);
        return mk_const(P, pos, v_strv(s, false));
    }
    if (t->t == TK_INT) {
        next(P);
        return mk_const(P, pos, v_int(t->num.i));
    }
    if (t->t == TK_FLOAT) {
        next(P);
        return mk_const(P, pos, v_float(t->num.d));
    }
    if (t->t == TK_LPAREN) {
        next(P);
        struct node *n = parse_tuple(P, false, true, NULL, true, false);
        if (n && !expect(P, TK_RPAREN, ")")) return NULL;
        return n;
    }
    if (t->t == TK_LBRACKET) return parse_list(P);
    if (t->t == TK_LBRACE) return parse_dict(P);
    if (t->t == TK_EOF) return fail(P, pos, ERR_SYNTAX, "unexpected end of template");
    return fail(P, pos, ERR_SYNTAX, "unexpected '%s'", tk_desc(t));
}

static bool is_tuple_end(struct ps *P, const char *extra_end)
{
    uint8_t t = cur(P)->t;
    if (t == TK_VAR_END || t == TK_BLOCK_END || t == TK_RPAREN) return true;
    return extra_end && is_name(cur(P), extra_end);
}

static struct node *parse_tuple(struct ps *P, bool simplified, bool with_condexpr,
                                const char *extra_end, bool explicit_paren, bool with_ns)
{
    uint32_t pos = cur(P)->pos;
    struct nvec v = {0};
    bool is_tuple = false;
    for (;;) {
        if (v.n && !expect(P, TK_COMMA, ",")) break;
        if (is_tuple_end(P, extra_end)) break;
        struct node *e = simplified ? parse_primary(P, with_ns) : parse_expression(P, with_condexpr);
        if (!nv_push(P, &v, e)) break;
        if (cur(P)->t == TK_COMMA) is_tuple = true;
        else break;
    }
    if (P->err) {
        free(v.v);
        return NULL;
    }
    if (!is_tuple) {
        if (v.n) {
            struct node *r = v.v[0];
            free(v.v);
            return r;
        }
        if (!explicit_paren) {
            free(v.v);
            return fail(P, cur(P)->pos, ERR_SYNTAX, "expected an expression, got '%s'",
                        tk_desc(cur(P)));
        }
    }
    struct node *n = mk(P, N_TUPLE, pos);
    struct nodes items = nv_done(P, &v);
    if (n) n->u.items = items;
    return n;
}

static struct node *parse_list(struct ps *P)
{
    uint32_t pos = next(P)->pos;
    struct nvec v = {0};
    while (!P->err && cur(P)->t != TK_RBRACKET) {
        if (v.n && !expect(P, TK_COMMA, ",")) break;
        if (cur(P)->t == TK_RBRACKET) break;
        nv_push(P, &v, parse_expression(P, true));
    }
    if (!P->err) expect(P, TK_RBRACKET, "]");
    struct node *n = P->err ? NULL : mk(P, N_LIST, pos);
    struct nodes items = nv_done(P, &v);
    if (n) n->u.items = items;
    return P->err ? NULL : n;
}

static struct node *parse_dict(struct ps *P)
{
    uint32_t pos = next(P)->pos;
    struct nvec ks = {0}, vs = {0};
    while (!P->err && cur(P)->t != TK_RBRACE) {
        if (ks.n && !expect(P, TK_COMMA, ",")) break;
        if (cur(P)->t == TK_RBRACE) break;
        if (!nv_push(P, &ks, parse_expression(P, true))) break;
        if (!expect(P, TK_COLON, ":")) break;
        nv_push(P, &vs, parse_expression(P, true));
    }
    if (!P->err) expect(P, TK_RBRACE, "}");
    struct node *n = P->err ? NULL : mk(P, N_DICT, pos);
    struct nodes k = nv_done(P, &ks), v = nv_done(P, &vs);
    if (!n || P->err) return NULL;
    n->u.dict.keys = k;
    n->u.dict.vals = v;
    return n;
}

static struct node *parse_subscribed(struct ps *P)
{
    uint32_t pos = cur(P)->pos;
    struct node *args[3] = {0};
    if (cur(P)->t == TK_COLON) {
        next(P);
    } else {
        struct node *e = parse_expression(P, true);
        if (!e || cur(P)->t != TK_COLON) return e;
        next(P);
        args[0] = e;
    }
    uint8_t t = cur(P)->t;
    if (t != TK_COLON && t != TK_RBRACKET && t != TK_COMMA) {
        if (!(args[1] = parse_expression(P, true))) return NULL;
    }
    if (cur(P)->t == TK_COLON) {
        next(P);
        t = cur(P)->t;
        if (t != TK_RBRACKET && t != TK_COMMA) {
            if (!(args[2] = parse_expression(P, true))) return NULL;
        }
    }
    struct node *n = mk(P, N_SLICE, pos);
    if (!n) return NULL;
    n->u.sl.a = args[0];
    n->u.sl.b = args[1];
    n->u.sl.c = args[2];
    return n;
}

static struct node *parse_subscript(struct ps *P, struct node *obj)
{
    const struct token *t = next(P);
    if (t->t == TK_DOT) {
        const struct token *a = next(P);
        if (a->t == TK_NAME) {
            struct node *n = mk(P, N_GETATTR, t->pos);
            if (!n) return NULL;
            n->u.ga.obj = obj;
            n->u.ga.attr = a->s;
            return n;
        }
        if (a->t != TK_INT) return fail(P, a->pos, ERR_SYNTAX, "expected name or number");
        struct node *k = mk_const(P, a->pos, v_int(a->num.i));
        struct node *n = k ? mk(P, N_GETITEM, t->pos) : NULL;
        if (!n) return NULL;
        n->u.gi.obj = obj;
        n->u.gi.key = k;
        return n;
    }
    /* '[' */
    struct nvec v = {0};
    while (!P->err && cur(P)->t != TK_RBRACKET) {
        if (v.n && !expect(P, TK_COMMA, ",")) break;
        nv_push(P, &v, parse_subscribed(P));
    }
    if (!P->err) expect(P, TK_RBRACKET, "]");
    if (P->err) {
        free(v.v);
        return NULL;
    }
    if (v.n == 0) {
        free(v.v);
        return fail(P, t->pos, ERR_SYNTAX, "expected subscript expression");
    }
    struct node *key;
    if (v.n == 1) {
        key = v.v[0];
        free(v.v);
    } else {
        key = mk(P, N_TUPLE, t->pos);
        struct nodes items = nv_done(P, &v);
        if (!key) return NULL;
        key->u.items = items;
    }
    if (key->k == N_SLICE) { /* obj[a:b:c] */
        key->u.sl.obj = obj;
        key->pos = t->pos;
        if (is_const(key)) key->op = NODE_CONST_SLICE;
        return key;
    }
    struct node *n = mk(P, N_GETITEM, t->pos);
    if (!n) return NULL;
    n->u.gi.obj = obj;
    n->u.gi.key = key;
    return n;
}

/* (args, k=v, ...) into n->u.call; *args / **kwargs are refused. */
static bool parse_call_args(struct ps *P, struct node *n)
{
    uint32_t pos = cur(P)->pos;
    if (!expect(P, TK_LPAREN, "(")) return false;
    struct nvec args = {0}, kwv = {0};
    struct str **kwn = NULL;
    size_t nkw = 0, kwcap = 0;
    bool need_comma = false;
    while (!P->err && cur(P)->t != TK_RPAREN) {
        if (need_comma) {
            if (!expect(P, TK_COMMA, ",")) break;
            if (cur(P)->t == TK_RPAREN) break;
        }
        if (cur(P)->t == TK_MUL || cur(P)->t == TK_POW) {
            fail(P, cur(P)->pos, ERR_UNSUPPORTED, "*args and **kwargs in calls are not supported");
            break;
        }
        if (cur(P)->t == TK_NAME && look(P)->t == TK_ASSIGN) {
            struct str *k = next(P)->s;
            next(P);
            if (nkw == kwcap) {
                size_t nc = kwcap ? kwcap * 2 : 4;
                struct str **nk = realloc(kwn, nc * sizeof *nk);
                if (!nk) {
                    oom(P);
                    break;
                }
                kwn = nk;
                kwcap = nc;
            }
            kwn[nkw++] = k;
            nv_push(P, &kwv, parse_expression(P, true));
        } else {
            if (nkw) {
                fail(P, pos, ERR_SYNTAX, "invalid syntax for function call expression");
                break;
            }
            nv_push(P, &args, parse_expression(P, true));
        }
        need_comma = true;
    }
    if (!P->err) expect(P, TK_RPAREN, ")");
    n->u.call.args = nv_done(P, &args);
    n->u.call.kwv = nv_done(P, &kwv);
    if (nkw && !P->err) {
        n->u.call.kwn = tmpl_arena_alloc(&P->t->ar, nkw * sizeof *kwn);
        if (n->u.call.kwn) memcpy(n->u.call.kwn, kwn, nkw * sizeof *kwn);
        else oom(P);
    }
    free(kwn);
    return !P->err;
}

static struct node *parse_call(struct ps *P, struct node *fn)
{
    struct node *n = mk(P, N_CALL, fn->pos); /* errors point at what is called */
    if (!n) return NULL;
    n->u.call.obj = fn;
    return parse_call_args(P, n) ? n : NULL;
}

static struct node *parse_postfix(struct ps *P, struct node *n)
{
    while (n) {
        uint8_t t = cur(P)->t;
        if (t == TK_DOT || t == TK_LBRACKET) n = parse_subscript(P, n);
        else if (t == TK_LPAREN) n = parse_call(P, n);
        else break;
    }
    return n;
}

static struct node *parse_test(struct ps *P, struct node *obj);
static struct node *parse_filter_expr(struct ps *P, struct node *n)
{
    while (n) {
        const struct token *t = cur(P);
        if (t->t == TK_PIPE) n = parse_filter(P, n, false);
        else if (is_name(t, "is")) n = parse_test(P, n);
        else if (t->t == TK_LPAREN) n = parse_call(P, n);
        else break;
    }
    return n;
}

/* A dotted filter/test name (jinja2 allows "a.b"); returns the name token. */
static const struct token *dotted_name(struct ps *P, char *buf, size_t cap)
{
    const struct token *t = cur(P);
    if (!expect(P, TK_NAME, "name")) return NULL;
    snprintf(buf, cap, "%s", t->s->b);
    while (cur(P)->t == TK_DOT) {
        next(P);
        const struct token *u = cur(P);
        if (!expect(P, TK_NAME, "name")) return NULL;
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, ".%s", u->s->b);
    }
    return t;
}

static bool note_unknown(struct ps *P, uint32_t pos, const char *name, bool is_test, int id)
{
    if (P->nunk == P->unkcap) {
        size_t nc = P->unkcap ? P->unkcap * 2 : 8;
        struct unk *nu = realloc(P->unk, nc * sizeof *nu);
        if (!nu) return (void)oom(P), false;
        P->unk = nu;
        P->unkcap = nc;
    }
    struct unk *u = &P->unk[P->nunk++];
    u->pos = pos;
    u->soft = P->soft > 0;
    u->is_test = is_test;
    u->unsupported = id == -2;
    snprintf(u->name, sizeof u->name, "%s", name);
    return true;
}

static struct node *parse_filter(struct ps *P, struct node *n, bool start_inline)
{
    while (cur(P)->t == TK_PIPE || start_inline) {
        if (!start_inline) next(P);
        start_inline = false;
        char name[128];
        const struct token *t = dotted_name(P, name, sizeof name);
        if (!t) return NULL;
        int id = tmpl_filt_lookup(name, strlen(name));
        if (id < 0 && !note_unknown(P, t->pos, name, false, id)) return NULL;
        struct node *f = mk(P, N_FILTER, t->pos);
        if (!f) return NULL;
        f->u.call.obj = n;
        f->u.call.fid = (int16_t)(id < 0 ? -1 : id);
        f->u.call.fname = t->s;
        if (cur(P)->t == TK_LPAREN && !parse_call_args(P, f)) return NULL;
        n = f;
    }
    return n;
}

static struct node *parse_test(struct ps *P, struct node *obj)
{
    uint32_t pos = next(P)->pos; /* 'is' */
    bool negated = false;
    if (is_name(cur(P), "not")) {
        next(P);
        negated = true;
    }
    char name[128];
    const struct token *t = dotted_name(P, name, sizeof name);
    if (!t) return NULL;
    int id = tmpl_test_lookup(name, strlen(name));
    if (id < 0 && !note_unknown(P, t->pos, name, true, id)) return NULL;
    struct node *n = mk(P, N_TEST, pos);
    if (!n) return NULL;
    n->u.call.obj = obj;
    n->u.call.fid = (int16_t)(id < 0 ? -1 : id);
    n->u.call.fname = t->s;
    const struct token *c = cur(P);
    if (c->t == TK_LPAREN) {
        if (!parse_call_args(P, n)) return NULL;
    } else if ((c->t == TK_NAME || c->t == TK_STRING || c->t == TK_INT || c->t == TK_FLOAT ||
                c->t == TK_LBRACKET || c->t == TK_LBRACE) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return fail(P, c->pos, ERR_SYNTAX, "you cannot chain multiple tests with is");
        struct node *a = parse_primary(P, false);
        if (a) a = parse_postfix(P, a);
        if (!a) return NULL;
        struct node **v = tmpl_arena_alloc(&P->t->ar, sizeof *v);
        if (!v) return oom(P);
        v[0] = a;
        n->u.call.args.v = v;
        n->u.call.args.n = 1;
    }
    if (negated) {
        struct node *x = mk(P, N_NOT, pos);
        if (x) x->u.bin.a = n;
        return x;
    }
    return n;
}

/* ---- statements ---- */

static bool subparse(struct ps *P, const char *const *ends, struct nvec *body);

static const char *const END_FOR[] = {"endfor", "else", NULL};
static const char *const END_FOR2[] = {"endfor", NULL};
static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_IF2[] = {"endif", NULL};
static const char *const END_SET[] = {"endset", NULL};
static const char *const END_MACRO[] = {"endmacro", NULL};
static const char *const END_CALL[] = {"endcall", NULL};
static const char *const END_FILTER[] = {"endfilter", NULL};
static const char *const END_WITH[] = {"endwith", NULL};
static const char *const END_BLOCK[] = {"endblock", NULL};
static const char *const END_GEN[] = {"endgeneration", NULL};

/* parse_statements: optional ':', block end, body up to one of `ends` (left as current). */
static bool parse_body(struct ps *P, const char *const *ends, struct nodes *out, bool drop)
{
    if (cur(P)->t == TK_COLON) next(P);
    if (!expect(P, TK_BLOCK_END, "end of statement block")) return false;
    struct nvec v = {0};
    bool ok = subparse(P, ends, &v);
    *out = nv_done(P, &v);
    if (!ok || P->err) return false;
    if (cur(P)->t == TK_EOF) {
        char want[160] = "";
        for (int k = 0; ends[k]; k++) {
            size_t l = strlen(want);
            snprintf(want + l, sizeof want - l, "%s'%s'", k ? " or " : "", ends[k]);
        }
        fail(P, cur(P)->pos, ERR_SYNTAX,
             "unexpected end of template; jinja was looking for the following tags: %s", want);
        return false;
    }
    if (drop) next(P);
    return true;
}

/* A body compiled in a new jinja2 frame (not soft: unknown filters are compile errors). */
static bool parse_body_hard(struct ps *P, const char *const *ends, struct nodes *out, bool drop)
{
    int soft = P->soft;
    P->soft = 0;
    bool ok = parse_body(P, ends, out, drop);
    P->soft = soft;
    return ok;
}

static bool can_assign(const struct node *n)
{
    if (n->k == N_NAME || n->k == N_NSREF) return true;
    if (n->k != N_TUPLE) return false;
    for (size_t i = 0; i < n->u.items.n; i++)
        if (!can_assign(n->u.items.v[i])) return false;
    return true;
}

static struct node *parse_assign_target(struct ps *P, const char *extra_end, bool with_ns)
{
    struct node *t = parse_tuple(P, true, true, extra_end, false, with_ns);
    if (t && !can_assign(t)) {
        return fail(P, t->pos, ERR_SYNTAX, "can't assign to '%s'",
                    t->k == N_CONST ? "const" : t->k == N_TUPLE ? "tuple" : "expression");
    }
    return t;
}

static struct node *parse_for(struct ps *P, uint32_t pos)
{
    struct node *n = mk(P, N_FOR, pos);
    if (!n) return NULL;
    if (!(n->u.loop.target = parse_assign_target(P, "in", false))) return NULL;
    if (!expect_name(P, "in")) return NULL;
    if (!(n->u.loop.iter = parse_tuple(P, false, false, "recursive", false, false))) return NULL;
    if (is_name(cur(P), "if")) {
        next(P);
        if (!(n->u.loop.test = parse_expression(P, true))) return NULL;
    }
    if (is_name(cur(P), "recursive")) {
        next(P);
        n->u.loop.recursive = true;
    }
    int soft = P->soft;
    P->soft = 0;
    P->loops++;
    bool ok = parse_body(P, END_FOR, &n->u.loop.body, false);
    P->loops--;
    if (ok && is_name(next(P), "else")) ok = parse_body(P, END_FOR2, &n->u.loop.els, true);
    P->soft = soft;
    return ok ? n : NULL;
}

static struct node *parse_if_chain(struct ps *P, struct node *top);
static struct node *parse_if(struct ps *P, uint32_t pos)
{
    struct node *top = mk(P, N_IF, pos);
    if (!top) return NULL;
    P->soft++;
    top = parse_if_chain(P, top);
    P->soft--;
    return top;
}

static struct node *parse_if_chain(struct ps *P, struct node *top)
{
    struct node *n = top;
    while (n) {
        if (!(n->u.iff.test = parse_tuple(P, false, false, NULL, false, false))) return NULL;
        if (!parse_body(P, END_IF, &n->u.iff.body, false)) return NULL;
        const struct token *t = next(P);
        if (is_name(t, "elif")) {
            struct node *e = mk(P, N_IF, cur(P)->pos);
            struct node **v = e ? tmpl_arena_alloc(&P->t->ar, sizeof *v) : NULL;
            if (!v) return oom(P);
            v[0] = e;
            n->u.iff.els.v = v;
            n->u.iff.els.n = 1;
            n = e;
            continue;
        }
        if (is_name(t, "else") && !parse_body(P, END_IF2, &n->u.iff.els, true)) return NULL;
        break;
    }
    return top;
}

static struct node *parse_set(struct ps *P, uint32_t pos)
{
    struct node *target = parse_assign_target(P, NULL, true);
    if (!target) return NULL;
    if (cur(P)->t == TK_ASSIGN) {
        next(P);
        struct node *n = mk(P, N_SET, pos);
        if (!n) return NULL;
        n->u.set.target = target;
        n->u.set.value = parse_tuple(P, false, true, NULL, false, false);
        return n->u.set.value ? n : NULL;
    }
    struct node *n = mk(P, N_SETBLOCK, pos);
    if (!n) return NULL;
    n->u.setb.target = target;
    if (cur(P)->t == TK_PIPE && !(n->u.setb.filter = parse_filter(P, NULL, false))) return NULL;
    return parse_body_hard(P, END_SET, &n->u.setb.body, true) ? n : NULL;
}

/* ---- walking the tree ---- */

/* Call f on every direct child of n (expressions and statements alike) until it returns true;
 * returns whether it did. */
typedef bool (*child_fn)(struct node *child, void *ctx);

static bool each(const struct nodes *v, child_fn f, void *ctx)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i] && f(v->v[i], ctx)) return true;
    return false;
}

static bool one(struct node *n, child_fn f, void *ctx) { return n && f(n, ctx); }

static bool visit_children(struct node *n, child_fn f, void *ctx)
{
    switch (n->k) {
    case N_GETATTR: return one(n->u.ga.obj, f, ctx);
    case N_GETITEM: return one(n->u.gi.obj, f, ctx) || one(n->u.gi.key, f, ctx);
    case N_SLICE:
        return one(n->u.sl.obj, f, ctx) || one(n->u.sl.a, f, ctx) || one(n->u.sl.b, f, ctx) ||
               one(n->u.sl.c, f, ctx);
    case N_CALL: case N_FILTER: case N_TEST:
        return one(n->u.call.obj, f, ctx) || each(&n->u.call.args, f, ctx) ||
               each(&n->u.call.kwv, f, ctx);
    case N_NEG: case N_POS: case N_NOT: case N_BINOP: case N_AND: case N_OR:
        return one(n->u.bin.a, f, ctx) || one(n->u.bin.b, f, ctx);
    case N_COMPARE: return one(n->u.cmp.first, f, ctx) || each(&n->u.cmp.rhs, f, ctx);
    case N_COND: return one(n->u.cond.test, f, ctx) || one(n->u.cond.a, f, ctx) || one(n->u.cond.b, f, ctx);
    case N_LIST: case N_TUPLE: case N_CONCAT: return each(&n->u.items, f, ctx);
    case N_DICT: return each(&n->u.dict.keys, f, ctx) || each(&n->u.dict.vals, f, ctx);
    case N_OUTPUT: return each(&n->u.out, f, ctx);
    case N_IF: return one(n->u.iff.test, f, ctx) || each(&n->u.iff.body, f, ctx) || each(&n->u.iff.els, f, ctx);
    case N_FOR:
        return one(n->u.loop.iter, f, ctx) || one(n->u.loop.test, f, ctx) ||
               each(&n->u.loop.body, f, ctx) || each(&n->u.loop.els, f, ctx);
    case N_SET: return one(n->u.set.value, f, ctx);
    case N_SETBLOCK: return one(n->u.setb.filter, f, ctx) || each(&n->u.setb.body, f, ctx);
    case N_MACRO: case N_CALLBLOCK:
        return each(&n->u.mac.defaults, f, ctx) || one(n->u.mac.call, f, ctx) || each(&n->u.mac.body, f, ctx);
    case N_FILTERBLOCK: return one(n->u.fb.filter, f, ctx) || each(&n->u.fb.body, f, ctx);
    case N_WITH: return each(&n->u.with.vals, f, ctx) || each(&n->u.with.body, f, ctx);
    case N_BODY: return each(&n->u.body, f, ctx);
    default: return false; /* N_CONST, N_NAME, N_NSREF, N_TEXT, N_BREAK, N_CONTINUE */
    }
}

/* Does anything under n load symbol *ctx? (jinja2's find_undeclared for caller/varargs/kwargs) */
static bool uses_visit(struct node *n, void *ctx)
{
    uint32_t s = *(const uint32_t *)ctx;
    return (n->k == N_NAME && n->u.name.sym == s) || visit_children(n, uses_visit, ctx);
}
static bool uses_any(const struct nodes *v, uint32_t s)
{
    return s != SYM_NONE && each(v, uses_visit, &s);
}

/* jinja2 folds a constant expression at the largest constant node, and keeps the value only if
 * it has a Python literal repr, except for the whole expression of an output, which is folded
 * regardless. A constant slice therefore goes through jinja2's forgiving getitem (so slicing a
 * number gives undefined) unless it is itself the largest constant of a non-output position,
 * where it runs as Python's obj[a:b] and raises. This pass clears NODE_CONST_SLICE there. */
static bool strict_expr(struct node *n, void *ctx);
static bool strict_stmt(struct node *n, void *ctx)
{
    if (n->k == N_OUTPUT) {
        for (size_t i = 0; i < n->u.out.n; i++)
            if (!is_const(n->u.out.v[i])) strict_expr(n->u.out.v[i], ctx);
        return false;
    }
    if (n->k >= N_TEXT) return visit_children(n, strict_stmt, ctx);
    return strict_expr(n, ctx);
}
static bool strict_expr(struct node *n, void *ctx)
{
    if (n->k >= N_TEXT) return strict_stmt(n, ctx);
    if (is_const(n)) {
        if (n->k == N_SLICE) n->op = 0;
        return false;
    }
    return visit_children(n, strict_expr, ctx);
}

static bool parse_signature(struct ps *P, struct node *n)
{
    if (!expect(P, TK_LPAREN, "(")) return false;
    uint32_t buf[64];
    uint32_t *params = buf;
    size_t np = 0, cap = 64;
    struct nvec defs = {0};
    bool ok = true;
    while (ok && cur(P)->t != TK_RPAREN) {
        if (np && !(ok = expect(P, TK_COMMA, ","))) break;
        const struct token *t = cur(P);
        if (!(ok = expect(P, TK_NAME, "name"))) break;
        if (cur(P)->t == TK_ASSIGN) {
            next(P);
            ok = nv_push(P, &defs, parse_expression(P, true));
        } else if (defs.n) {
            fail(P, t->pos, ERR_SYNTAX, "non-default argument follows default argument");
            ok = false;
        }
        if (!ok) break;
        if (np == cap) {
            fail(P, t->pos, ERR_LIMIT, "more than %zu macro parameters", cap);
            ok = false;
            break;
        }
        params[np++] = intern(P, t->s);
    }
    if (ok) ok = expect(P, TK_RPAREN, ")");
    n->u.mac.defaults = nv_done(P, &defs);
    if (ok && np) {
        n->u.mac.params = tmpl_arena_alloc(&P->t->ar, np * sizeof *params);
        if (!n->u.mac.params) return (void)oom(P), false;
        memcpy(n->u.mac.params, params, np * sizeof *params);
    }
    n->u.mac.nparams = np;
    return ok && !P->err;
}

/* Macro and call-block bodies: break/continue inside do not reach an outer loop. */
static bool parse_macro_body(struct ps *P, struct node *n, const char *const *ends)
{
    int saved = P->loops, soft = P->soft;
    P->loops = 0;
    P->soft = 0;
    bool ok = parse_body(P, ends, &n->u.mac.body, true);
    P->loops = saved;
    P->soft = soft;
    if (!ok) return false;
    n->u.mac.uses_caller = uses_any(&n->u.mac.body, P->t->sym_caller);
    n->u.mac.uses_varargs = uses_any(&n->u.mac.body, P->t->sym_varargs);
    n->u.mac.uses_kwargs = uses_any(&n->u.mac.body, P->t->sym_kwargs);
    return true;
}

static struct node *parse_macro(struct ps *P, uint32_t pos)
{
    struct node *n = mk(P, N_MACRO, pos);
    if (!n) return NULL;
    const struct token *t = cur(P);
    if (!expect(P, TK_NAME, "name")) return NULL;
    n->u.mac.sym = intern(P, t->s);
    n->u.mac.name = t->s;
    if (!parse_signature(P, n)) return NULL;
    return parse_macro_body(P, n, END_MACRO) ? n : NULL;
}

static struct node *parse_call_block(struct ps *P, uint32_t pos)
{
    struct node *n = mk(P, N_CALLBLOCK, pos);
    if (!n) return NULL;
    if (cur(P)->t == TK_LPAREN && !parse_signature(P, n)) return NULL;
    struct node *call = parse_expression(P, true);
    if (!call) return NULL;
    if (call->k != N_CALL) return fail(P, pos, ERR_SYNTAX, "expected call");
    n->u.mac.call = call;
    n->u.mac.name = P->t->syms[P->t->sym_caller];
    return parse_macro_body(P, n, END_CALL) ? n : NULL;
}

static struct node *parse_with(struct ps *P, uint32_t pos)
{
    struct node *n = mk(P, N_WITH, pos);
    if (!n) return NULL;
    struct nvec ts = {0}, vs = {0};
    while (!P->err && cur(P)->t != TK_BLOCK_END) {
        if (ts.n && !expect(P, TK_COMMA, ",")) break;
        struct node *t = parse_assign_target(P, NULL, false);
        if (!nv_push(P, &ts, t)) break;
        if (!expect(P, TK_ASSIGN, "=")) break;
        nv_push(P, &vs, parse_expression(P, true));
    }
    n->u.with.targets = nv_done(P, &ts);
    n->u.with.vals = nv_done(P, &vs);
    if (P->err) return NULL;
    return parse_body_hard(P, END_WITH, &n->u.with.body, true) ? n : NULL;
}

static struct node *parse_statement(struct ps *P)
{
    const struct token *t = cur(P);
    uint32_t pos = t->pos;
    if (t->t != TK_NAME) return fail(P, pos, ERR_SYNTAX, "tag name expected");
    if (!enter(P, pos)) return NULL;
    struct node *r = NULL;
    next(P);
    if (is_name(t, "for")) {
        r = parse_for(P, pos);
    } else if (is_name(t, "if")) {
        r = parse_if(P, pos);
    } else if (is_name(t, "set")) {
        r = parse_set(P, pos);
    } else if (is_name(t, "macro")) {
        r = parse_macro(P, pos);
    } else if (is_name(t, "call")) {
        r = parse_call_block(P, pos);
    } else if (is_name(t, "filter")) {
        r = mk(P, N_FILTERBLOCK, pos);
        if (r && !(r->u.fb.filter = parse_filter(P, NULL, true))) r = NULL;
        if (r && !parse_body_hard(P, END_FILTER, &r->u.fb.body, true)) r = NULL;
    } else if (is_name(t, "with")) {
        r = parse_with(P, pos);
    } else if (is_name(t, "print")) {
        struct nvec v = {0};
        while (!P->err && cur(P)->t != TK_BLOCK_END) {
            if (v.n && !expect(P, TK_COMMA, ",")) break;
            nv_push(P, &v, parse_expression(P, true));
        }
        r = P->err ? NULL : mk(P, N_OUTPUT, pos);
        struct nodes out = nv_done(P, &v);
        if (r) r->u.out = out;
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        if (!P->loops) {
            fail(P, pos, ERR_SYNTAX, "'%s' outside of a loop", t->s->b);
        } else {
            r = mk(P, is_name(t, "break") ? N_BREAK : N_CONTINUE, pos);
        }
    } else if (is_name(t, "block") || is_name(t, "generation")) {
        bool blk = is_name(t, "block");
        if (blk && !expect(P, TK_NAME, "name")) goto out;
        if (blk) {
            while (is_name(cur(P), "scoped") || is_name(cur(P), "required")) next(P);
        }
        r = mk(P, N_BODY, pos);
        if (r && !parse_body_hard(P, blk ? END_BLOCK : END_GEN, &r->u.body, true)) r = NULL;
        if (r && blk && cur(P)->t == TK_NAME) next(P); /* {% endblock name %} */
    } else if (is_name(t, "extends") || is_name(t, "include") || is_name(t, "import") ||
               is_name(t, "from") || is_name(t, "autoescape")) {
        fail(P, pos, ERR_UNSUPPORTED, "the '%s' tag is not supported in chat templates", t->s->b);
    } else {
        /* an end tag of an enclosing block here is a nesting mistake */
        bool expected = false;
        for (int k = 0; k < P->nends && !expected; k++)
            for (int j = 0; P->ends[k][j]; j++)
                if (is_name(t, P->ends[k][j])) expected = true;
        char want[160] = "";
        for (int j = 0; P->nends && P->ends[P->nends - 1][j]; j++) {
            size_t l = strlen(want);
            snprintf(want + l, sizeof want - l, "%s'%s'", j ? " or " : "", P->ends[P->nends - 1][j]);
        }
        if (expected)
            fail(P, pos, ERR_SYNTAX,
                 "unexpected '%s'; you probably made a nesting mistake, jinja is looking for %s",
                 t->s->b, want);
        else if (P->nends)
            fail(P, pos, ERR_SYNTAX, "encountered unknown tag '%s'; jinja was looking for %s",
                 t->s->b, want);
        else
            fail(P, pos, ERR_SYNTAX, "encountered unknown tag '%s'", t->s->b);
    }
out:
    leave(P);
    return P->err ? NULL : r;
}

static bool at_end_tag(struct ps *P, const char *const *ends)
{
    if (!ends) return false;
    for (int k = 0; ends[k]; k++)
        if (is_name(cur(P), ends[k])) return true;
    return false;
}

static bool subparse(struct ps *P, const char *const *ends, struct nvec *body)
{
    if (ends) {
        if (P->nends >= (int)(sizeof P->ends / sizeof P->ends[0]))
            return (void)fail(P, cur(P)->pos, ERR_LIMIT, "template nested too deeply"), false;
        P->ends[P->nends++] = ends;
    }
    bool ok = true;
    while (ok && !P->err && cur(P)->t != TK_EOF) {
        const struct token *t = cur(P);
        if (t->t == TK_DATA) {
            struct node *n = mk(P, N_TEXT, t->pos);
            if (n) n->u.text = t->s;
            ok = nv_push(P, body, n);
            next(P);
        } else if (t->t == TK_VAR_BEGIN) {
            next(P);
            struct node *e = parse_tuple(P, false, true, NULL, false, false);
            struct node *n = e ? mk(P, N_OUTPUT, t->pos) : NULL;
            struct node **v = n ? tmpl_arena_alloc(&P->t->ar, sizeof *v) : NULL;
            if (!v) {
                if (!P->err) oom(P);
                ok = false;
                break;
            }
            v[0] = e;
            n->u.out.v = v;
            n->u.out.n = 1;
            ok = nv_push(P, body, n) && expect(P, TK_VAR_END, "end of print statement");
        } else if (t->t == TK_BLOCK_BEGIN) {
            next(P);
            if (at_end_tag(P, ends)) break;
            struct node *s = parse_statement(P);
            ok = s && nv_push(P, body, s) && expect(P, TK_BLOCK_END, "end of statement block");
        } else {
            fail(P, t->pos, ERR_SYNTAX, "unexpected '%s'", tk_desc(t));
            ok = false;
        }
    }
    if (ends) P->nends--;
    return ok && !P->err;
}

int tmpl_parse_tokens(struct tmpl *t, const struct lexed *lx, struct err_info *ei)
{
    struct ps P = {.t = t, .tk = lx->v, .n = lx->n, .ei = ei};
    t->sym_loop = intern_c(&P, "loop");
    t->sym_caller = intern_c(&P, "caller");
    t->sym_varargs = intern_c(&P, "varargs");
    t->sym_kwargs = intern_c(&P, "kwargs");
    struct nvec body = {0};
    if (!P.err) subparse(&P, NULL, &body);
    t->body = nv_done(&P, &body);
    if (!P.err) each(&t->body, strict_stmt, NULL);
    for (size_t k = 0; k < P.nunk && !P.err; k++) {
        const struct unk *u = &P.unk[k];
        if (u->soft) continue;
        if (u->unsupported)
            fail(&P, u->pos, ERR_UNSUPPORTED, "the %s '%s' is not supported",
                 u->is_test ? "test" : "filter", u->name);
        else
            fail(&P, u->pos, ERR_SYNTAX, "no %s named '%s'", u->is_test ? "test" : "filter", u->name);
    }
    free(P.h);
    free(P.unk);
    return P.err;
}

/* ---- entry: check, normalise, lex, parse ---- */

/* Strict UTF-8: offset of the first bad byte, or len. */
static size_t utf8_bad(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l = c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
        if (!l || i + l > n) return i;
        for (size_t k = 1; k < l; k++) {
            unsigned char lo = 0x80, hi = 0xbf, b = p[i + k];
            if (k == 1 && c == 0xe0) lo = 0xa0;
            if (k == 1 && c == 0xed) hi = 0x9f;
            if (k == 1 && c == 0xf0) lo = 0x90;
            if (k == 1 && c == 0xf4) hi = 0x8f;
            if (b < lo || b > hi) return i;
        }
        i += l;
    }
    return n;
}

int tmpl_parse(const char *src, size_t len, struct tmpl **out, struct err_info *ei)
{
    *out = NULL;
    if (!src && len) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "template text is NULL");
    if (len >= UINT32_MAX - 1)
        return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "template larger than 4 GiB");
    size_t bad = utf8_bad(src, len);
    if (bad < len) {
        unsigned l, c;
        tmpl_line_col(src, len, bad, &l, &c);
        return err_set(ei, ERR_UTF8, bad, "line %u, column %u: invalid UTF-8 in template", l, c);
    }
    struct tmpl *t = calloc(1, sizeof *t);
    if (!t) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    t->src = malloc(len + 1);
    bool has_cr = memchr(src, '\r', len) != NULL;
    if (has_cr) t->omap = malloc((len + 1) * sizeof *t->omap);
    if (!t->src || (has_cr && !t->omap)) {
        tmpl_free(t);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (t->omap) t->omap[w] = (uint32_t)i;
        if (src[i] == '\r') {
            t->src[w++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->src[w++] = src[i];
        }
    }
    if (t->omap) t->omap[w] = (uint32_t)len;
    if (w > 0 && t->src[w - 1] == '\n') w--; /* keep_trailing_newline=False */
    t->src[w] = 0;
    t->len = w;
    struct lexed lx = {0};
    int rc = tmpl_lex(t, &lx, ei);
    if (!rc) rc = tmpl_parse_tokens(t, &lx, ei);
    free(lx.v);
    if (rc) {
        tmpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tmpl_free(struct tmpl *t)
{
    if (!t) return;
    tmpl_arena_free(&t->ar);
    free(t->src);
    free(t->omap);
    free(t->syms);
    free(t);
}
