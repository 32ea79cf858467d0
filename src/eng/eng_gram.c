/* eng_gram: grammars for the generation loop. Front ends never see src/gram: they make a struct
 * eng_grammar here (GBNF text, a JSON Schema, or the built-in JSON grammar), hand it to a
 * generation in eng_gen_params, and use the two tools `lmpipe grammar` needs (schema to GBNF,
 * whole-text check).
 *
 * The constraint is an adapter of one gram matcher to the seam of eng.h, nothing more: gram
 * already implements the token rules (end-of-generation only where the grammar may end, control
 * tokens only where named, forced runs, dead ends). The matcher walks the model's gram_vocab
 * (its byte trie), which is built once per model on the first grammar and then shared read-only
 * by every constraint of that model; a constraint allocates its matcher when it is made and
 * nothing per token once gram's caches are warm.
 *
 * The built-in JSON grammar is grammars/json.gbnf itself: the Makefile turns the file into a C
 * string literal (json_gbnf.inc) at build time, so there is one source of truth. */
#include "eng_int.h"

#include "../gram/gram_schema.h"

#include <stdlib.h>
#include <string.h>

static const char k_json_gbnf[] =
#include "json_gbnf.inc"
    ;

/* ---------------- making grammars ---------------- */

static int wrap(struct eng_grammar **out, struct gram *g, struct err_info *ei)
{
    *out = malloc(sizeof **out);
    if (!*out) {
        gram_free(g);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    (*out)->g = g;
    return 0;
}

int eng_grammar_parse(struct eng_grammar **out, const char *gbnf, size_t len, struct err_info *ei)
{
    *out = NULL;
    struct gram *g;
    int rc = gram_parse(gbnf, len, &g, ei);
    return rc ? rc : wrap(out, g, ei);
}

int eng_grammar_json(struct eng_grammar **out, struct err_info *ei)
{
    return eng_grammar_parse(out, k_json_gbnf, sizeof k_json_gbnf - 1, ei);
}

static void schema_opts(struct gram_schema_opts *o, bool strict)
{
    gram_schema_opts_default(o);
    o->mode = strict ? GRAM_SCHEMA_TOOL : GRAM_SCHEMA_PLAIN;
}

int eng_schema_to_gbnf(const char *json, size_t len, bool strict, char **gbnf, size_t *gbnf_len,
                       struct err_info *ei)
{
    struct gram_schema_opts o;
    schema_opts(&o, strict);
    return gram_schema_to_gbnf(json, len, &o, gbnf, gbnf_len, ei);
}

/* The converter's text through the GBNF parser. Its output always parses; a failure here is a
 * converter bug, said as such. */
static int from_gbnf(struct eng_grammar **out, char *gbnf, size_t len, struct err_info *ei)
{
    struct err_info pei;
    err_clear(&pei);
    int rc = eng_grammar_parse(out, gbnf, len, &pei);
    free(gbnf);
    if (rc == ERR_NOMEM) return err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "the converted schema does not parse (a bug): %s", pei.msg);
    return 0;
}

int eng_grammar_from_schema(struct eng_grammar **out, const char *json, size_t len, bool strict,
                            struct err_info *ei)
{
    *out = NULL;
    char *gbnf;
    size_t n;
    int rc = eng_schema_to_gbnf(json, len, strict, &gbnf, &n, ei);
    return rc ? rc : from_gbnf(out, gbnf, n, ei);
}

int eng_grammar_from_schema_json(struct eng_grammar **out, const struct json_t *schema,
                                 bool strict, struct err_info *ei)
{
    *out = NULL;
    struct gram_schema_opts o;
    schema_opts(&o, strict);
    char *gbnf;
    size_t n;
    int rc = gram_schema_to_gbnf_json(schema, &o, &gbnf, &n, ei);
    return rc ? rc : from_gbnf(out, gbnf, n, ei);
}

void eng_grammar_free(struct eng_grammar *g)
{
    if (!g) return;
    gram_free(g->g);
    free(g);
}

int eng_grammar_check(const struct eng_grammar *g, const char *text, size_t len,
                      struct err_info *ei)
{
    return gram_check(g->g, text, len, ei);
}

/* ---------------- the constraint ---------------- */

int eng_gram_vocab(struct eng_model *em, const struct gram_vocab **out, struct err_info *ei)
{
    if (em->gv_state == 0) {
        struct err_info vei;
        err_clear(&vei);
        int rc = gram_vocab_init(&em->gv, tok_view(em->vocab), &vei);
        em->gv_state = rc ? rc : 1;
        if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "the vocabulary cannot be used by grammars: %s", vei.msg);
    }
    if (em->gv_state < 0)
        return err_set(ei, em->gv_state, ERR_NO_OFFSET,
                       "the vocabulary cannot be used by grammars: %s", err_str(em->gv_state));
    *out = &em->gv;
    return 0;
}

int eng_gcon_init(struct eng_gcon *c, struct eng_model *em, const struct gram *g,
                  struct err_info *ei)
{
    memset(c, 0, sizeof *c);
    const struct gram_vocab *gv;
    int rc = eng_gram_vocab(em, &gv, ei);
    if (rc) return rc;
    struct err_info mei;
    err_clear(&mei);
    if ((rc = gram_matcher_init(&c->m, g, gv, &mei))) {
        gram_matcher_free(&c->m);
        if (rc == ERR_NOT_FOUND) /* a token reference this vocabulary lacks: the caller's */
            return err_set(ei, ERR_INVALID, mei.offset, "grammar: %s", mei.msg);
        return err_set(ei, rc, mei.offset, "grammar: %s", mei.msg);
    }
    return 0;
}

void eng_gcon_free(struct eng_gcon *c) { gram_matcher_free(&c->m); }

static int gc_check(void *self, int32_t tok)
{
    int rc = gram_tok_check(&((struct eng_gcon *)self)->m, tok);
    return rc == 0 ? 1 : rc == ERR_REJECTED ? 0 : rc;
}

static int gc_mask(void *self, uint64_t *bits)
{
    return gram_tok_mask(&((struct eng_gcon *)self)->m, bits);
}

static int gc_accept(void *self, int32_t tok)
{
    return gram_tok_accept(&((struct eng_gcon *)self)->m, tok);
}

static int gc_forced(void *self, int32_t *toks, size_t cap, size_t *n)
{
    return gram_tok_forced(&((struct eng_gcon *)self)->m, toks, cap, n);
}

static int gc_complete(void *self) { return gram_matcher_complete(&((struct eng_gcon *)self)->m); }

static void gc_reset(void *self) { gram_matcher_reset(&((struct eng_gcon *)self)->m); }

static void gc_free_owned(void *self)
{
    eng_gcon_free(self);
    free(self);
}

const struct eng_constraint_ops eng_gcon_ops = {gc_check, gc_mask, gc_accept, gc_forced,
                                                gc_complete, gc_reset, NULL};
static const struct eng_constraint_ops k_owned_ops = {gc_check, gc_mask, gc_accept, gc_forced,
                                                      gc_complete, gc_reset, gc_free_owned};

int eng_grammar_constraint(struct eng_model *em, const struct eng_grammar *g,
                           struct eng_constraint *out, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    struct eng_gcon *c = malloc(sizeof *c);
    if (!c) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    int rc = eng_gcon_init(c, em, g->g, ei);
    if (rc) {
        free(c);
        return rc;
    }
    out->ops = &k_owned_ops;
    out->self = c;
    return 0;
}
