/* eng_tgram: the grammar of a reply's tool calls, for a syntax and a set of tools.
 *
 *   root   ::= HEAD x-call x-more SEC_CLOSE                  required / named
 *            | HEAD-after-trigger x-call x-more SEC_CLOSE     auto, lazy (after the trigger)
 *            | CONTENT_OPEN x-free-clean HEAD x-call x-more SEC_CLOSE
 *            | CONTENT_OPEN x-free | HEAD x-call x-more SEC_CLOSE      auto, text first (functionary)
 *   x-more ::= (CALL_SEP CALL_OPEN x-call){0,15}              parallel
 *   x-call ::= x-c0 | x-c1 | ...
 *   x-cI   ::= "NAME_I" NAME_CLOSE x-tI CALL_CLOSE
 *
 * x-tI, tool I's arguments: for JSON, the schema converter's rule for the tool's parameters (tool
 * mode: no undeclared keys unless the schema allows them; one whitespace character allowed in
 * each gap, so both the compact form and the template's json.dumps form fit); for the keyed
 * syntaxes, its declared properties in schema order, the required ones mandatory, each value the
 * converter's rule for that property's schema (a plain string is raw text in the XML syntax).
 *
 * HEAD = SEC_OPEN CALL_OPEN. Literals that one of the vocabulary's control tokens spells are
 * written as that token (<[id]>), so the model can emit the marker it was trained on; the rest is
 * text. "Text without P" (a raw value before "\n</parameter>", functionary's reply text before
 * ">>>") is a rule per state of P's KMP automaton; where P follows, the text may end only in a
 * state from which reading P does not complete P early, so the first P in the output is the one
 * the grammar meant (the parser splits there). */
#include "eng_tools.h"

#include "../gram/gram_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MORE_MAX (ENG_TOOL_CALLS_MAX - 1)
#define XML_END "\n</parameter>"

/* ---------------- literals ---------------- */

/* Control tokens of the vocabulary (ids), to spell markers with. */
struct ctl {
    int32_t *id;
    size_t n;
};

static int ctl_init(struct ctl *c, const struct vocab_view *v)
{
    memset(c, 0, sizeof *c);
    if (!v) return 0;
    size_t cap = 0;
    for (uint32_t i = 0; i < v->n_vocab; i++) {
        unsigned f = vocab_flags(v, (int32_t)i);
        size_t len;
        vocab_bytes(v, (int32_t)i, &len);
        if (!(f & VOCAB_CONTROL) || (f & VOCAB_UNUSED) || len < 2) continue;
        if (c->n == cap) {
            cap = cap ? cap * 2 : 64;
            int32_t *p = realloc(c->id, cap * sizeof *p);
            if (!p) return ERR_NOMEM;
            c->id = p;
        }
        c->id[c->n++] = (int32_t)i;
    }
    return 0;
}

/* The longest control token spelling s[0..n) at its start: its id and length, or -1. */
static int32_t ctl_match(const struct ctl *c, const struct vocab_view *v, const char *s, size_t n,
                         size_t *len)
{
    int32_t best = -1;
    *len = 0;
    for (size_t k = 0; k < c->n; k++) {
        size_t l;
        const char *t = vocab_bytes(v, c->id[k], &l);
        if (l > *len && l <= n && memcmp(t, s, l) == 0) {
            best = c->id[k];
            *len = l;
        }
    }
    return best;
}

static void gbnf_char(struct eng_sb *b, unsigned char ch)
{
    if (ch == '"' || ch == '\\') eng_sb_printf(b, "\\%c", ch);
    else if (ch == '\n') eng_sb_str(b, "\\n");
    else if (ch < 0x20 || ch == 0x7f) eng_sb_printf(b, "\\x%02X", ch);
    else eng_sb_add(b, &ch, 1);
}

/* s as a GBNF sequence (" " before it); nothing for "". */
static void emit_lit(struct eng_sb *b, const char *s, const struct ctl *c, const struct vocab_view *v)
{
    size_t n = strlen(s);
    bool open = false;
    for (size_t i = 0; i < n;) {
        size_t l = 0;
        int32_t id = v ? ctl_match(c, v, s + i, n - i, &l) : -1;
        if (id >= 0) {
            eng_sb_str(b, open ? "\" " : " ");
            eng_sb_printf(b, "<[%d]>", id);
            open = false;
            i += l;
            continue;
        }
        if (!open) eng_sb_str(b, " \"");
        open = true;
        gbnf_char(b, (unsigned char)s[i++]);
    }
    if (open) eng_sb_str(b, "\"");
}

/* ---------------- text without a pattern ---------------- */

/* KMP: the state after reading c in state k (k = bytes of p matched). */
static size_t kmp_next(const char *p, size_t m, size_t k, char c)
{
    for (;;) {
        if (k < m && p[k] == c) return k + 1;
        if (k == 0) return 0;
        /* the longest proper border of p[0..k) */
        size_t b = k - 1;
        while (b > 0 && memcmp(p, p + k - b, b) != 0) b--;
        k = b;
    }
}

/* Does reading p from state k complete p before its last byte? */
static bool kmp_early(const char *p, size_t m, size_t k)
{
    for (size_t i = 0; i + 1 < m; i++)
        if ((k = kmp_next(p, m, k, p[i])) == m) return true;
    return false;
}

/* Rules NAME-0 .. NAME-(m-1): text that does not contain p; with clean, text after which p can
 * follow without appearing earlier. NAME-0 is the start. p is ASCII (the automaton runs on
 * bytes, the grammar's classes on code points: for ASCII they are the same). */
static void emit_avoid(struct eng_sb *b, const char *name, const char *p, bool clean)
{
    size_t m = strlen(p);
    char set[ENG_TSYN_LIT];
    size_t ns = 0;
    for (size_t i = 0; i < m; i++)
        if (!memchr(set, p[i], ns)) set[ns++] = p[i];
    for (size_t k = 0; k < m; k++) {
        eng_sb_printf(b, "%s-%zu ::= [^", name, k);
        for (size_t i = 0; i < ns; i++) eng_sb_printf(b, "\\x%02X", (unsigned char)set[i]);
        eng_sb_printf(b, "] %s-0", name);
        for (size_t i = 0; i < ns; i++) {
            size_t to = kmp_next(p, m, k, set[i]);
            if (to == m) continue;
            eng_sb_str(b, " |");
            char one[2] = {set[i], 0};
            emit_lit(b, one, NULL, NULL);
            eng_sb_printf(b, " %s-%zu", name, to);
        }
        if (!clean || !kmp_early(p, m, k)) eng_sb_str(b, " | \"\"");
        eng_sb_str(b, "\n");
    }
}

/* ---------------- arguments ---------------- */

/* Every $ref in v points into $defs / definitions (what a property schema can keep when it is
 * cut out of its tool's schema, with those copied along). */
static bool refs_local(const json_t *v)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!refs_local(json_array_get(v, i))) return false;
        return true;
    }
    if (!json_is_object(v)) return true;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        if (!strcmp(k, "$ref")) {
            const char *r = json_string_value(x);
            if (!r || (strncmp(r, "#/$defs/", 8) != 0 && strncmp(r, "#/definitions/", 14) != 0))
                return false;
        } else if (!refs_local(x)) {
            return false;
        }
    }
    return true;
}

/* Can the keyed syntax write tool t's arguments one by one? Its schema may only declare
 * properties (and annotations), and each name must be writable. */
static int keyed_ok(const struct eng_tsyn *s, const struct eng_tool *t, size_t ti,
                    struct err_info *ei)
{
    static const char *const top[] = {"type", "properties", "required", "additionalProperties",
                                      "description", "title", "$defs", "definitions", "$schema",
                                      "$comment", "strict", "examples", "default"};
    const char *k;
    json_t *v;
    json_object_foreach(t->params, k, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof top / sizeof top[0] && !ok; i++) ok = !strcmp(k, top[i]);
        if (!ok)
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "tools[%zu] (%s): this model writes arguments one by one, so '%s' at "
                           "the top of 'parameters' cannot be enforced",
                           ti, t->name, k);
    }
    if (!refs_local(t->params))
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                       "tools[%zu] (%s): with this model's call syntax a $ref must point into "
                       "$defs or definitions",
                       ti, t->name);
    json_t *props = json_object_get(t->params, "properties"), *req = json_object_get(t->params, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const char *r = json_string_value(json_array_get(req, i));
        if (!r || !json_object_get(props, r))
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "tools[%zu] (%s): required argument '%s' is not among 'properties'",
                           ti, t->name, r ? r : "?");
    }
    json_object_foreach(props, k, v) {
        bool ok = *k != 0;
        for (const char *c = k; *c && ok; c++) {
            if (s->args == ENG_TA_XML) ok = *c != '>' && *c != '\n' && *c != '\r';
            else ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                      (c > k && *c >= '0' && *c <= '9');
        }
        if (!ok)
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "tools[%zu] (%s): argument name '%.60s' cannot be written in this "
                           "model's call syntax (%s)",
                           ti, t->name, k,
                           s->args == ENG_TA_XML ? "no '>' or line breaks" : "a Python identifier");
    }
    return 0;
}

static bool is_required(const json_t *params, const char *key)
{
    json_t *req = json_object_get(params, "required");
    for (size_t i = 0; i < json_array_size(req); i++)
        if (json_is_string(json_array_get(req, i)) && !strcmp(json_string_value(json_array_get(req, i)), key))
            return true;
    return false;
}

/* A property's schema made to stand alone: its tool's $defs / definitions come along. */
static json_t *prop_schema(const json_t *params, json_t *p)
{
    json_t *defs = json_object_get(params, "$defs"), *dfn = json_object_get(params, "definitions");
    if ((!defs && !dfn) || !json_is_object(p)) return json_incref(p);
    json_t *c = json_copy(p);
    if (!c) return NULL;
    if (defs && !json_object_get(c, "$defs")) json_object_set(c, "$defs", defs);
    if (dfn && !json_object_get(c, "definitions")) json_object_set(c, "definitions", dfn);
    return c;
}

/* Entries for the converter: the rules x-tI (JSON) or x-tI-pJ (keyed, non-raw values). */
struct entries {
    struct gram_schema_entry *e;
    char (*name)[32];
    json_t **own; /* references to release */
    size_t n, cap;
};

static int entry_add(struct entries *x, json_t *schema, const char *fmt, size_t a, size_t b)
{
    if (!schema) return ERR_NOMEM;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        void *e = realloc(x->e, cap * sizeof *x->e), *n = e ? realloc(x->name, cap * sizeof *x->name) : NULL,
             *o = n ? realloc(x->own, cap * sizeof *x->own) : NULL;
        if (e) x->e = e;
        if (n) x->name = n;
        if (o) x->own = o;
        if (!o) {
            json_decref(schema);
            return ERR_NOMEM;
        }
        x->cap = cap;
    }
    snprintf(x->name[x->n], sizeof x->name[0], fmt, a, b);
    x->own[x->n] = schema;
    x->n++;
    return 0;
}

static void entries_free(struct entries *x)
{
    for (size_t i = 0; i < x->n; i++) json_decref(x->own[i]);
    free(x->e);
    free(x->name);
    free(x->own);
}

static bool tool_wanted(const struct eng_tgram_opts *o, size_t i)
{
    return o->choice != ENG_TC_NAMED || (size_t)o->named == i;
}

static int collect(const struct eng_tsyn *s, const struct eng_toolset *ts,
                   const struct eng_tgram_opts *o, struct entries *x, struct err_info *ei)
{
    for (size_t i = 0; i < ts->n; i++) {
        if (!tool_wanted(o, i)) continue;
        const struct eng_tool *t = &ts->t[i];
        if (s->args == ENG_TA_JSON) {
            if (entry_add(x, json_incref(t->params), "x-t%zu", i, 0)) goto oom;
            continue;
        }
        int rc = keyed_ok(s, t, i, ei);
        if (rc) return rc;
        json_t *props = json_object_get(t->params, "properties"), *v;
        const char *k;
        size_t j = 0;
        json_object_foreach(props, k, v) {
            if (!(s->args == ENG_TA_XML && eng_tools_xml_raw(v)) &&
                entry_add(x, prop_schema(t->params, v), "x-t%zu-p%zu", i, j))
                goto oom;
            j++;
        }
    }
    for (size_t i = 0; i < x->n; i++) x->e[i] = (struct gram_schema_entry){x->own[i], x->name[i]};
    return 0;
oom:
    return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
}

/* Keyed arguments with at most this many properties are accepted in any order (a rule per set
 * of properties already written, as the schema converter does for JSON objects); more keep the
 * schema's order. */
#define KEYED_ANY_ORDER_MAX 6

/* Tool i's argument J: x-tI-kJ. */
static void emit_kv(struct eng_sb *b, const struct eng_tsyn *s, size_t i, size_t j, const char *k,
                    const json_t *v)
{
    eng_sb_printf(b, "x-t%zu-k%zu ::=", i, j);
    char open[ENG_TSYN_LIT + 16];
    if (s->args == ENG_TA_XML) {
        snprintf(open, sizeof open, "<parameter=%s>\n", k);
        emit_lit(b, open, NULL, NULL);
        if (eng_tools_xml_raw(v)) eng_sb_str(b, " x-raw-0");
        else eng_sb_printf(b, " x-t%zu-p%zu", i, j);
        emit_lit(b, XML_END "\n", NULL, NULL);
    } else {
        snprintf(open, sizeof open, "%s=", k);
        emit_lit(b, open, NULL, NULL);
        eng_sb_printf(b, " x-t%zu-p%zu", i, j);
    }
    eng_sb_str(b, "\n");
}

/* Any order: x-tI-mM, M the set of arguments written (Python: ", " before all but the first). */
static void emit_any_order(struct eng_sb *b, const struct eng_tsyn *s, const struct eng_tool *t,
                           size_t i, size_t n)
{
    unsigned req = 0;
    json_t *props = json_object_get(t->params, "properties"), *v;
    const char *k;
    size_t j = 0;
    json_object_foreach(props, k, v) {
        if (is_required(t->params, k)) req |= 1u << j;
        j++;
    }
    eng_sb_printf(b, "x-t%zu ::= x-t%zu-m0\n", i, i);
    for (unsigned m = 0; m < 1u << n; m++) {
        eng_sb_printf(b, "x-t%zu-m%u ::=", i, m);
        bool alt = false;
        if ((req & m) == req) {
            eng_sb_str(b, " \"\"");
            alt = true;
        }
        for (size_t x = 0; x < n; x++) {
            if (m >> x & 1) continue;
            eng_sb_str(b, alt ? " |" : "");
            if (s->args == ENG_TA_PY && m) eng_sb_str(b, " \", \"");
            eng_sb_printf(b, " x-t%zu-k%zu x-t%zu-m%u", i, x, i, m | 1u << x);
            alt = true;
        }
        eng_sb_str(b, "\n");
    }
}

/* Schema order: XML a sequence; Python a comma-separated ordered subsequence (x-tI-fJ: the
 * first of the arguments from J on; x-tI-sJ: the rest, each after ", "). */
static void emit_in_order(struct eng_sb *b, const struct eng_tsyn *s, const struct eng_tool *t,
                          size_t i, size_t n)
{
    json_t *props = json_object_get(t->params, "properties"), *v;
    const char *k;
    size_t j = 0;
    if (s->args == ENG_TA_XML) {
        eng_sb_printf(b, "x-t%zu ::= \"\"", i);
        json_object_foreach(props, k, v) {
            eng_sb_printf(b, " x-t%zu-k%zu%s", i, j, is_required(t->params, k) ? "" : "?");
            j++;
        }
        eng_sb_str(b, "\n");
        return;
    }
    eng_sb_printf(b, "x-t%zu ::= x-t%zu-f0\nx-t%zu-f%zu ::= \"\"\nx-t%zu-s%zu ::= \"\"\n", i, i, i, n,
                  i, n);
    json_object_foreach(props, k, v) {
        bool opt = !is_required(t->params, k);
        eng_sb_printf(b, "x-t%zu-f%zu ::= x-t%zu-k%zu x-t%zu-s%zu", i, j, i, j, i, j + 1);
        if (opt) eng_sb_printf(b, " | x-t%zu-f%zu", i, j + 1);
        eng_sb_printf(b, "\nx-t%zu-s%zu ::= \", \" x-t%zu-k%zu x-t%zu-s%zu", i, j, i, j, i, j + 1);
        if (opt) eng_sb_printf(b, " | x-t%zu-s%zu", i, j + 1);
        eng_sb_str(b, "\n");
        j++;
    }
}

static void emit_keyed(struct eng_sb *b, const struct eng_tsyn *s, const struct eng_tool *t,
                       size_t i)
{
    json_t *props = json_object_get(t->params, "properties"), *v;
    size_t n = json_object_size(props), j = 0;
    const char *k;
    json_object_foreach(props, k, v) emit_kv(b, s, i, j++, k, v);
    if (n <= KEYED_ANY_ORDER_MAX) emit_any_order(b, s, t, i, n);
    else emit_in_order(b, s, t, i, n);
}

/* ---------------- the section ---------------- */

static void emit_calls(struct eng_sb *b, const struct eng_tsyn *s, const struct eng_toolset *ts,
                       const struct eng_tgram_opts *o, const struct ctl *c)
{
    eng_sb_str(b, "x-call ::=");
    bool first = true;
    for (size_t i = 0; i < ts->n; i++) {
        if (!tool_wanted(o, i)) continue;
        eng_sb_printf(b, "%s x-c%zu", first ? "" : " |", i);
        first = false;
    }
    eng_sb_str(b, "\n");
    for (size_t i = 0; i < ts->n; i++) {
        if (!tool_wanted(o, i)) continue;
        eng_sb_printf(b, "x-c%zu ::=", i);
        emit_lit(b, ts->t[i].name, NULL, NULL);
        emit_lit(b, s->name_close, c, o->v);
        eng_sb_printf(b, " x-t%zu", i);
        emit_lit(b, s->call_close, c, o->v);
        eng_sb_str(b, "\n");
        if (s->args != ENG_TA_JSON) emit_keyed(b, s, &ts->t[i], i);
    }
    eng_sb_str(b, "x-more ::=");
    if (o->parallel && s->parallel) {
        eng_sb_str(b, " (");
        emit_lit(b, s->call_sep, c, o->v);
        emit_lit(b, s->call_open, c, o->v);
        eng_sb_printf(b, " x-call){0,%d}\n", MORE_MAX);
    } else {
        eng_sb_str(b, " \"\"\n");
    }
    /* x-sec: the section after its opening text */
    eng_sb_str(b, "x-sec ::= x-call x-more");
    emit_lit(b, s->sec_close, c, o->v);
    eng_sb_str(b, "\n");
}

static void emit_root(struct eng_sb *b, const struct eng_tsyn *s, const struct eng_tgram_opts *o,
                      const struct ctl *c)
{
    char head[2 * ENG_TSYN_LIT];
    snprintf(head, sizeof head, "%s%s", s->sec_open, s->call_open);
    eng_sb_str(b, "root ::=");
    if (o->choice == ENG_TC_AUTO && s->content_open[0]) {
        emit_lit(b, s->content_open, c, o->v);
        eng_sb_str(b, " x-free-0 |");
        emit_lit(b, s->content_open, c, o->v);
        eng_sb_str(b, " x-pre-0");
        emit_lit(b, head, c, o->v);
        eng_sb_str(b, " x-sec |");
        emit_lit(b, head, c, o->v);
        eng_sb_str(b, " x-sec\n");
        emit_avoid(b, "x-free", s->trigger, false);
        emit_avoid(b, "x-pre", s->trigger, true);
    } else if (o->choice == ENG_TC_AUTO && o->lazy) {
        emit_lit(b, head + strlen(s->trigger), c, o->v);
        eng_sb_str(b, " x-sec\n");
    } else {
        emit_lit(b, head, c, o->v);
        eng_sb_str(b, " x-sec\n");
    }
}

int eng_tools_gbnf(const struct eng_tsyn *s, const struct eng_toolset *ts,
                   const struct eng_tgram_opts *o, char **gbnf, size_t *len, struct err_info *ei)
{
    *gbnf = NULL;
    if (len) *len = 0;
    int rc = eng_tsyn_check(s, ei);
    if (rc) return rc;
    if (ts->n == 0 || o->choice == ENG_TC_NONE ||
        (o->choice == ENG_TC_NAMED && (o->named < 0 || (size_t)o->named >= ts->n)))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool grammar: no tool to call");
    struct entries x = {0};
    struct ctl c;
    struct eng_sb b = {0};
    char *conv = NULL;
    size_t conv_len = 0;
    if ((rc = ctl_init(&c, o->v))) {
        rc = err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    if ((rc = collect(s, ts, o, &x, ei))) goto done;
    if (x.n) {
        struct gram_schema_opts go;
        gram_schema_opts_default(&go);
        go.mode = GRAM_SCHEMA_TOOL;
        go.prefix = "s-";
        go.ws = 1;
        if ((rc = gram_schema_to_gbnf_multi(x.e, x.n, &go, &conv, &conv_len, ei))) {
            err_set(ei, rc, ERR_NO_OFFSET, "tool arguments' schema");
            goto done;
        }
    }
    emit_root(&b, s, o, &c);
    emit_calls(&b, s, ts, o, &c);
    if (s->args == ENG_TA_XML) emit_avoid(&b, "x-raw", XML_END, true);
    if (conv) eng_sb_add(&b, conv, conv_len);
    if (b.oom) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    *gbnf = b.p;
    if (len) *len = b.len;
    b.p = NULL;
done:
    eng_sb_free(&b);
    free(conv);
    free(c.id);
    entries_free(&x);
    return rc;
}

int eng_tools_args_gbnf(const struct eng_toolset *ts, size_t i, char **gbnf, size_t *len,
                        struct err_info *ei)
{
    *gbnf = NULL;
    if (i >= ts->n) return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "no tool %zu", i);
    struct gram_schema_opts go;
    gram_schema_opts_default(&go);
    go.mode = GRAM_SCHEMA_TOOL;
    go.ws = 1;
    return gram_schema_to_gbnf_json(ts->t[i].params, &go, gbnf, len, ei);
}
