/* check_gramgen: grammar-constrained generation through eng's door, on real models (stories260K
 * and the synthetic synth512 files).
 *
 * What is asserted:
 *  - eng's grammar makers and tools: GBNF errors with line:column, schema refusals naming the
 *    keyword, the whole-text check, the built-in JSON grammar is grammars/json.gbnf;
 *  - the token rules in a real loop: end-of-generation only where the grammar may end (EOS pushed
 *    up by a logit bias cannot end the text early), control tokens only where the grammar names
 *    them, a completed grammar ends the generation with finish "stop" whatever the stop settings
 *    (ignore_eos, stop strings that never match, no max_tokens), a dead end is ERR_DEAD_END at
 *    once (never a loop), a grammar naming a token the vocabulary lacks is ERR_INVALID with its
 *    line:column, a grammar and a constraint together are refused;
 *  - forced runs: evaluated as one batch (fewer forward passes) with exactly the text and token
 *    ids of token-by-token evaluation, at temperature 1.5 over many seeds, on models whose batch
 *    and one-token summation orders differ; greedy without forced runs gives the same tokens;
 *  - validity, the measure of issue 10: at temperature 1.5, every completed output under
 *    json.gbnf parses as JSON and every completed output under each agent-tool schema of
 *    tests/data/schemas validates (tests/jsval.h, written independently of the converter);
 *    completed vs cut by max_tokens is printed per model. 200 seeds on stories260K and 40 on each
 *    synthetic model natively; LMPIPE_TEST_QUICK=1 (qemu) runs a subset;
 *  - `lmpipe run --grammar / --json-schema / --json` print text that parses and validates. */
#include "tutil.h"

#include "jsval.h"

#include "eng/eng_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Allocation counting (glibc, not under a sanitizer, which owns malloc itself): every call of
 * malloc, calloc and realloc in this process while g_counting is set. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer)
#define GRAMGEN_COUNT_ALLOCS 1
#endif
#else
#define GRAMGEN_COUNT_ALLOCS 1
#endif
#endif
#ifdef GRAMGEN_COUNT_ALLOCS
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
static volatile int g_counting;
static volatile long g_allocs;
void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void *malloc(size_t n)
{
    g_allocs += g_counting;
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size)
{
    g_allocs += g_counting;
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n)
{
    g_allocs += g_counting;
    return __libc_realloc(p, n);
}
#endif

static int quick(void) { return getenv("LMPIPE_TEST_QUICK") && atoi(getenv("LMPIPE_TEST_QUICK")) > 0; }

static const char *stories(void) { return tutil_shared("models/stories260K-F32.gguf"); }

static struct eng_model *open_model(const char *path)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em = NULL;
    ck_assert_msg(eng_model_open(&em, path, 1, &ei) == 0, "open %s: %s", path, ei.msg);
    return em;
}

/* A model and a session on it; close_session frees both. */
static struct eng_session *open_session(const char *path, struct eng_model **em)
{
    *em = open_model(path);
    struct eng_session *s = NULL;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_session_create(&s, *em, 0, &ei) == 0, "session: %s", ei.msg);
    return s;
}

static void close_session(struct eng_session *s, struct eng_model *em)
{
    eng_session_free(s);
    eng_model_free(em);
}

static struct eng_grammar *gbnf(const char *text)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_grammar *g = NULL;
    ck_assert_msg(eng_grammar_parse(&g, text, strlen(text), &ei) == 0, "%s: %s", text, ei.msg);
    return g;
}

/* What a generation produced: its text and the token ids behind it (control tokens included:
 * ids come with every on_text call, also those that release no text, through the accept hook
 * below). */
struct out {
    char text[16384];
    size_t len;
    int32_t toks[2048];
    size_t n;
};

static int on_text(void *ud, const char *t, size_t n, int32_t tok)
{
    (void)tok;
    struct out *o = ud;
    ck_assert_uint_lt(o->len + n, sizeof o->text);
    memcpy(o->text + o->len, t, n);
    o->len += n;
    o->text[o->len] = 0;
    return 0;
}

/* A constraint around the grammar's own one that records every accepted token: the ids of a
 * generation, control and end-of-generation tokens included. */
struct rec {
    struct eng_constraint inner;
    struct out *o;
};

static int rec_check(void *self, int32_t tok)
{
    struct rec *r = self;
    return r->inner.ops->check(r->inner.self, tok);
}

static int rec_mask(void *self, uint64_t *bits)
{
    struct rec *r = self;
    return r->inner.ops->mask(r->inner.self, bits);
}

static int rec_accept(void *self, int32_t tok)
{
    struct rec *r = self;
    if (r->o->n < sizeof r->o->toks / sizeof r->o->toks[0]) r->o->toks[r->o->n++] = tok;
    return r->inner.ops->accept(r->inner.self, tok);
}

static int rec_forced(void *self, int32_t *toks, size_t cap, size_t *n)
{
    struct rec *r = self;
    return r->inner.ops->forced(r->inner.self, toks, cap, n);
}

static int rec_complete(void *self)
{
    struct rec *r = self;
    return r->inner.ops->complete(r->inner.self);
}

static const struct eng_constraint_ops k_rec_ops = {rec_check, rec_mask, rec_accept, rec_forced,
                                                    rec_complete, NULL, NULL};

/* Generate from prompt under grammar g (recording ids when o is given). Returns eng's code. */
static int gen(struct eng_session *s, const char *prompt, const struct eng_gen_params *p0,
               const struct eng_grammar *g, struct out *o, struct eng_gen_result *res,
               struct err_info *ei)
{
    struct eng_gen_params p = *p0;
    memset(o, 0, sizeof *o);
    struct rec r = {{NULL, NULL}, o};
    struct eng_constraint c = {&k_rec_ops, &r};
    int rc = 0;
    if (g) {
        rc = eng_grammar_constraint(s->em, g, &r.inner, ei);
        if (rc) return rc;
        p.constraint = &c;
        p.grammar = NULL;
    }
    struct eng_sink sink = {on_text, NULL, o, NULL};
    rc = eng_generate(s, prompt, strlen(prompt), &p, &sink, res, ei);
    if (g) r.inner.ops->free(r.inner.self);
    return rc;
}

static void params(struct eng_gen_params *p, float temp, uint64_t seed, int32_t max_tokens)
{
    eng_gen_params_default(p);
    p->samp.temp = temp;
    p->samp.seed = seed;
    p->max_tokens = max_tokens;
}

/* ---------------- the makers and the tools ---------------- */

START_TEST(grammar_api)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_grammar *g = NULL;
    const char *bad = "root ::= \"a\"\nx ::= [b-a]\n";
    ck_assert_int_ne(eng_grammar_parse(&g, bad, strlen(bad), &ei), 0);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(ei.msg, "line 2:") != NULL, "%s", ei.msg);
    err_clear(&ei);
    ck_assert_int_eq(eng_grammar_parse(&g, "root ::= x", 10, &ei), ERR_NOT_FOUND);
    ck_assert_msg(strstr(ei.msg, "line 1:10") != NULL, "%s", ei.msg);
    /* schemas: unsupported keywords are named, never ignored; not JSON is a syntax error */
    const char *s1 = "{\"type\":\"object\",\"patternProperties\":{\"^a\":{}}}";
    err_clear(&ei);
    ck_assert_int_eq(eng_grammar_from_schema(&g, s1, strlen(s1), false, &ei), ERR_UNSUPPORTED);
    ck_assert_msg(strstr(ei.msg, "patternProperties") != NULL, "%s", ei.msg);
    err_clear(&ei);
    ck_assert_int_eq(eng_grammar_from_schema(&g, "{\"type\":", 8, false, &ei), ERR_SYNTAX);
    char *text = NULL;
    size_t n = 0;
    const char *s2 = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]}";
    err_clear(&ei);
    ck_assert_int_eq(eng_schema_to_gbnf(s2, strlen(s2), false, &text, &n, &ei), 0);
    ck_assert_ptr_nonnull(strstr(text, "root ::="));
    ck_assert_uint_eq(n, strlen(text));
    free(text);
    /* plain mode allows undeclared properties, strict mode does not */
    struct eng_grammar *plain, *strict;
    ck_assert_int_eq(eng_grammar_from_schema(&plain, s2, strlen(s2), false, &ei), 0);
    ck_assert_int_eq(eng_grammar_from_schema(&strict, s2, strlen(s2), true, &ei), 0);
    const char *extra = "{\"a\":1,\"b\":2}";
    ck_assert_int_eq(eng_grammar_check(plain, extra, strlen(extra), NULL), 0);
    err_clear(&ei);
    ck_assert_int_eq(eng_grammar_check(strict, extra, strlen(extra), &ei), ERR_REJECTED);
    ck_assert_uint_eq(ei.offset, 6); /* at the ',' */
    ck_assert_msg(strstr(ei.msg, "line 1:7") != NULL, "%s", ei.msg);
    ck_assert_int_eq(eng_grammar_check(strict, "{\"a\":-3}", 8, NULL), 0);
    ck_assert_int_eq(eng_grammar_check(strict, "{\"a\":", 5, NULL), ERR_REJECTED); /* too early */
    eng_grammar_free(plain);
    eng_grammar_free(strict);
    eng_grammar_free(NULL);
}
END_TEST

/* The built-in JSON grammar is grammars/json.gbnf: the same verdict on the file's own examples
 * and on other texts as a grammar parsed from the file. */
START_TEST(builtin_json_is_the_file)
{
    size_t len;
    char *file = tutil_read("grammars/json.gbnf", &len);
    ck_assert_ptr_nonnull(file);
    struct eng_grammar *a = gbnf(file), *b = NULL;
    ck_assert_int_eq(eng_grammar_json(&b, NULL), 0);
    const char *texts[] = {"{}", "{\"a\": [1, 2.5e+3, true, null]}", "[1]", "{\"a\":01}", "{\"a\":1,}",
                           "{\"k\": \"caf\xc3\xa9\"}\n", "{\"a\" : 1}", "", "{", "{\"x\":{\"y\":{}}}"};
    int accepted = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int ra = eng_grammar_check(a, texts[i], strlen(texts[i]), NULL);
        int rb = eng_grammar_check(b, texts[i], strlen(texts[i]), NULL);
        ck_assert_msg(ra == rb, "'%s': file %d, built-in %d", texts[i], ra, rb);
        accepted += ra == 0;
    }
    ck_assert_int_eq(accepted, 5);
    eng_grammar_free(a);
    eng_grammar_free(b);
    free(file);
}
END_TEST

/* ---------------- the token rules in the loop ---------------- */

/* The ids of every token whose bytes begin with c (the ways the vocabulary spells c first). */
static size_t tokens_starting(const struct vocab_view *v, char c, struct samp_bias *out, size_t cap,
                              float bias)
{
    size_t k = 0;
    for (uint32_t id = 0; id < v->n_vocab && k < cap; id++) {
        size_t l;
        const char *b = vocab_bytes(v, (int32_t)id, &l);
        if (l && b[0] == c) out[k++] = (struct samp_bias){(int32_t)id, bias};
    }
    return k;
}

START_TEST(eog_only_where_the_grammar_may_end)
{
    struct eng_model *em;
    struct eng_session *s = open_session(stories(), &em);
    const struct vocab_view *v = eng_model_vocab(em);
    struct err_info ei;
    err_clear(&ei);
    struct eng_grammar *g = gbnf("root ::= \"ab\" [c-e]?\n");
    struct samp_bias eos = {v->eos, 40.0f};
    struct out o;
    struct eng_gen_result res;
    struct eng_gen_params p;
    for (uint64_t seed = 0; seed < 20; seed++) {
        params(&p, 1.0f, seed, 50);
        p.samp.bias = &eos;
        p.samp.n_bias = 1;
        ck_assert_int_eq(gen(s, "Once upon a time", &p, g, &o, &res, &ei), 0);
        ck_assert_msg(!strcmp(o.text, "ab") || (o.len == 3 && !strncmp(o.text, "ab", 2)), "'%s'", o.text);
        ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
        for (size_t i = 0; i + 1 < o.n; i++) ck_assert_int_ne(o.toks[i], v->eos); /* only last */
    }
    /* the same bias without a grammar: EOS at once */
    params(&p, 1.0f, 0, 50);
    p.samp.bias = &eos;
    p.samp.n_bias = 1;
    ck_assert_int_eq(gen(s, "Once upon a time", &p, NULL, &o, &res, &ei), 0);
    ck_assert_uint_eq(res.completion_tokens, 1);
    eng_grammar_free(g);
    close_session(s, em);
}
END_TEST

START_TEST(control_tokens_only_where_named)
{
    struct eng_model *em;
    struct eng_session *s = open_session(stories(), &em);
    const struct vocab_view *v = eng_model_vocab(em);
    ck_assert(vocab_flags(v, v->bos) & VOCAB_CONTROL);
    struct err_info ei;
    err_clear(&ei);
    struct samp_bias bos = {v->bos, 40.0f};
    struct eng_grammar *free_text = gbnf("root ::= [a-z ]{4,12}\n");
    struct eng_grammar *named = gbnf("root ::= \"x\" <[1]> \"y\"\n");
    struct out o;
    struct eng_gen_result res;
    struct eng_gen_params p;
    for (uint64_t seed = 0; seed < 10; seed++) {
        params(&p, 1.0f, seed, 40);
        p.samp.bias = &bos;
        p.samp.n_bias = 1;
        ck_assert_int_eq(gen(s, "Once upon a time", &p, free_text, &o, &res, &ei), 0);
        for (size_t i = 0; i < o.n; i++) ck_assert_int_ne(o.toks[i], v->bos);
        ck_assert_uint_ge(o.len, 4);
    }
    /* named: the control token is produced where the grammar says (and prints nothing) */
    params(&p, 1.0f, 3, 40);
    ck_assert_int_eq(gen(s, "Once upon a time", &p, named, &o, &res, &ei), 0);
    ck_assert_str_eq(o.text, "xy");
    bool seen = false;
    for (size_t i = 0; i < o.n; i++) seen |= o.toks[i] == v->bos;
    ck_assert(seen);
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    eng_grammar_free(free_text);
    eng_grammar_free(named);
    close_session(s, em);
}
END_TEST

/* A completed grammar ends the text cleanly, whatever the stop settings: ignore_eos, no
 * max_tokens, stop strings that never match. Through eng_gen_params.grammar this time. */
START_TEST(complete_ends_with_ignore_eos)
{
    struct eng_model *em;
    struct eng_session *s = open_session(stories(), &em);
    struct err_info ei;
    err_clear(&ei);
    struct eng_grammar *g = gbnf("root ::= (\" yes\" | \" no\") \".\"\n");
    const char *stops[] = {"zzz", "qqq"};
    for (uint64_t seed = 0; seed < 8; seed++) {
        struct eng_gen_params p;
        params(&p, 1.5f, seed, -1);
        p.ignore_eos = true;
        p.stop = stops;
        p.n_stop = 2;
        p.grammar = g;
        struct out o;
        memset(&o, 0, sizeof o);
        struct eng_sink sink = {on_text, NULL, &o, NULL};
        struct eng_gen_result res;
        ck_assert_int_eq(eng_generate(s, "Once upon a time", 16, &p, &sink, &res, &ei), 0);
        ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
        ck_assert_msg(!strcmp(o.text, " yes.") || !strcmp(o.text, " no."), "'%s'", o.text);
        ck_assert_uint_le(res.completion_tokens, 5);
    }
    eng_grammar_free(g);
    close_session(s, em);
}
END_TEST

START_TEST(dead_end_is_an_error)
{
    struct eng_model *em;
    struct eng_session *s = open_session(stories(), &em);
    const struct vocab_view *v = eng_model_vocab(em);
    struct err_info ei;
    struct eng_gen_params p;
    params(&p, 1.0f, 1, 50);
    struct eng_gen_result res;
    /* a grammar of one token that is never generated (<unk>: unused) */
    struct eng_grammar *unk = gbnf("root ::= <[0]>\n");
    ck_assert(vocab_flags(v, 0) & VOCAB_UNUSED);
    p.grammar = unk;
    err_clear(&ei);
    ck_assert_int_eq(eng_generate(s, "Once upon a time", 16, &p, NULL, &res, &ei), ERR_DEAD_END);
    ck_assert_int_eq(res.finish, ENG_FINISH_ERROR);
    ck_assert_str_eq(err_kind(ei.code), "constraint_dead_end");
    ck_assert_uint_eq(res.completion_tokens, 0);
    /* after "ab", only a 'q' may follow, and a logit bias bans every token that spells one */
    struct samp_bias ban[64];
    size_t nb = tokens_starting(v, 'q', ban, 64, -INFINITY);
    ck_assert_uint_gt(nb, 0);
    ck_assert_uint_lt(nb, 64);
    struct eng_grammar *q = gbnf("root ::= \"ab\" \"q\"\n");
    p.grammar = q;
    p.samp.bias = ban;
    p.samp.n_bias = nb;
    err_clear(&ei);
    ck_assert_int_eq(eng_generate(s, "Once upon a time", 16, &p, NULL, &res, &ei), ERR_DEAD_END);
    ck_assert_uint_ge(res.completion_tokens, 1);
    ck_assert_uint_le(res.completion_tokens, 2);
    /* the session is fine afterwards */
    p.samp.n_bias = 0;
    err_clear(&ei);
    ck_assert_int_eq(eng_generate(s, "Once upon a time", 16, &p, NULL, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    eng_grammar_free(unk);
    eng_grammar_free(q);
    close_session(s, em);
}
END_TEST

START_TEST(params_checked)
{
    struct eng_model *em = open_model(stories());
    struct eng_gen_params p;
    params(&p, 0, 0, 8);
    struct err_info ei;
    err_clear(&ei);
    struct eng_grammar *g = gbnf("root ::= \"a\" <|nosuchtoken|>\n");
    p.grammar = g;
    ck_assert_int_eq(eng_gen_params_check(em, &p, &ei), ERR_INVALID);
    ck_assert_msg(strstr(ei.msg, "line 1:14") && strstr(ei.msg, "nosuchtoken"), "%s", ei.msg);
    struct eng_grammar *ok = gbnf("root ::= \"a\"\n");
    struct eng_constraint c = {&eng_gcon_ops, NULL};
    p.grammar = ok;
    p.constraint = &c;
    err_clear(&ei);
    ck_assert_int_eq(eng_gen_params_check(em, &p, &ei), ERR_INVALID);
    ck_assert_msg(strstr(ei.msg, "not both") != NULL, "%s", ei.msg);
    p.constraint = NULL;
    ck_assert_int_eq(eng_gen_params_check(em, &p, NULL), 0);
    eng_grammar_free(g);
    eng_grammar_free(ok);
    eng_model_free(em);
}
END_TEST

/* The token loop allocates nothing, the grammar's work included: a generation of 100 tokens
 * makes exactly as many allocations as one of 10 (the sampler and the constraint at the start). */
START_TEST(no_allocation_per_token)
{
#ifdef GRAMGEN_COUNT_ALLOCS
    struct eng_model *em;
    struct eng_session *s = open_session(stories(), &em);
    struct eng_grammar *gs[2] = {NULL, NULL};
    ck_assert_int_eq(eng_grammar_json(&gs[0], NULL), 0);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":"
                         "\"number\"}},\"b\":{\"type\":\"string\"}}}";
    ck_assert_int_eq(eng_grammar_from_schema(&gs[1], schema, strlen(schema), false, NULL), 0);
    for (int k = 0; k < 2; k++) {
        long allocs[2];
        const int32_t lens[2] = {10, 100};
        for (int r = 0; r < 3; r++) { /* round 0 builds the model's gram_vocab */
            for (int i = 0; i < 2; i++) {
                struct eng_gen_params p;
                params(&p, 1.5f, 7, lens[i]);
                p.ignore_eos = true;
                p.grammar = gs[k];
                struct eng_gen_result res;
                g_allocs = 0;
                g_counting = 1;
                int rc = eng_generate(s, "Once upon a time", 16, &p, NULL, &res, NULL);
                g_counting = 0;
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(res.completion_tokens, (uint32_t)lens[i]);
                allocs[i] = g_allocs;
            }
            if (r) ck_assert_msg(allocs[0] == allocs[1], "grammar %d: %ld allocations for 10 tokens, %ld for 100", k,
                                 allocs[0], allocs[1]);
        }
        printf("allocations per generation under grammar %d: %ld (10 or 100 tokens)\n", k, allocs[1]);
        eng_grammar_free(gs[k]);
    }
    close_session(s, em);
#endif
}
END_TEST

/* ---------------- forced runs ---------------- */

/* On the stories vocabulary only '#', '=', '@', '^', '_', '{' and '}' have no one-character
 * piece of their own (lowercase letters, quotes and colons have both a piece and a byte token),
 * so runs of them are forced; a fixed JSON key such as "name" is not (two tokens spell "n"). */
static const char k_forced_gbnf[] = "root ::= (\"{{#__@@==^^}}\" [a-z ]{1,12} \"{{^^==@@__#}}\")+\n";

/* Batched forced runs against the same generation evaluated one token per pass: the same text
 * and the same token ids, at temperature 1.5, with far fewer forward passes. */
static void forced_identical(const char *path, int seeds)
{
    struct eng_model *em = open_model(path);
    struct eng_grammar *g = gbnf(k_forced_gbnf);
    static struct out o[2];
    struct err_info ei;
    err_clear(&ei);
    uint64_t passes[2] = {0, 0}, forced = 0, total = 0;
    for (int seed = 0; seed < seeds; seed++) {
        for (int k = 0; k < 2; k++) {
            struct eng_session *s;
            ck_assert_int_eq(eng_session_create(&s, em, 512, &ei), 0);
            if (k == 1) s->eval_max = 1; /* token by token */
            struct eng_gen_params p;
            params(&p, 1.5f, (uint64_t)seed, 100);
            struct eng_gen_result res;
            ck_assert_int_eq(gen(s, "Once upon a time", &p, g, &o[k], &res, &ei), 0);
            passes[k] += s->n_passes;
            if (k == 0) forced += res.forced_tokens, total += res.completion_tokens;
            eng_session_free(s);
        }
        ck_assert_msg(!strcmp(o[0].text, o[1].text), "%s seed %d:\n  %s\n  %s", path, seed, o[0].text, o[1].text);
        ck_assert_uint_eq(o[0].n, o[1].n);
        ck_assert(memcmp(o[0].toks, o[1].toks, o[0].n * sizeof o[0].toks[0]) == 0);
    }
    printf("forced runs, %s: %llu of %llu tokens forced; %llu forward passes batched, %llu one by one\n", path,
           (unsigned long long)forced, (unsigned long long)total, (unsigned long long)passes[0],
           (unsigned long long)passes[1]);
    ck_assert_uint_gt(forced * 2, total); /* most tokens of this grammar are forced */
    ck_assert_uint_lt(passes[0] * 2, passes[1]);
    eng_grammar_free(g);
    eng_model_free(em);
}

START_TEST(forced_runs_batched_identical)
{
    int seeds = quick() ? 4 : 30;
    forced_identical(stories(), seeds);
    /* F32 weights and an F32 cache: the batch order (GEMM) and the one-token order differ here */
    forced_identical(tutil_shared("models/synth512-llama-d256-F32.gguf"), seeds / 2);
    forced_identical(tutil_shared("models/synth512-qwen2-d256-Q4_K.gguf"), seeds / 2);
}
END_TEST

/* Greedy: forced runs, or the same tokens drawn one by one through check and mask. */
START_TEST(forced_runs_greedy_same_as_sampled)
{
    struct eng_model *em = open_model(stories());
    struct eng_grammar *g = gbnf(k_forced_gbnf);
    static struct out o[2];
    struct eng_gen_result res[2];
    for (int k = 0; k < 2; k++) {
        struct eng_session *s;
        ck_assert_int_eq(eng_session_create(&s, em, 0, NULL), 0);
        struct eng_gen_params p;
        params(&p, 0, 0, 80);
        p.no_forced = k == 1;
        ck_assert_int_eq(gen(s, "Once upon a time", &p, g, &o[k], &res[k], NULL), 0);
        eng_session_free(s);
    }
    ck_assert_str_eq(o[0].text, o[1].text);
    ck_assert(o[0].n == o[1].n && !memcmp(o[0].toks, o[1].toks, o[0].n * sizeof o[0].toks[0]));
    ck_assert_uint_gt(res[0].forced_tokens, 20);
    ck_assert_uint_eq(res[1].forced_tokens, 0);
    eng_grammar_free(g);
    eng_model_free(em);
}
END_TEST

/* ---------------- chat ---------------- */

START_TEST(chat_under_a_schema)
{
    struct eng_model *em;
    struct eng_session *s = open_session(stories(), &em);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},"
                         "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99}},\"required\":[\"name\"]}";
    json_t *sj = json_loads(schema, 0, NULL);
    struct eng_grammar *g = NULL;
    ck_assert_int_eq(eng_grammar_from_schema(&g, schema, strlen(schema), true, NULL), 0);
    json_t *req = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", "Hi");
    int completed = 0;
    for (uint64_t seed = 0; seed < 30; seed++) {
        struct eng_gen_params p;
        params(&p, 1.5f, seed, 60);
        p.grammar = g;
        struct out o;
        memset(&o, 0, sizeof o);
        struct eng_sink sink = {on_text, NULL, &o, NULL};
        struct eng_gen_result res;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_int_eq(eng_chat(s, req, NULL, &p, &sink, &res, &ei), 0);
        ck_assert_msg(o.len > 0 && o.text[0] == '{', "'%s'", o.text);
        if (res.finish != ENG_FINISH_STOP) continue;
        completed++;
        json_t *x = json_loadb(o.text, o.len, 0, NULL);
        ck_assert_msg(x != NULL, "not JSON: '%s'", o.text);
        char why[256] = "";
        ck_assert_msg(jsval_check(sj, x, why, sizeof why) == 1, "%s: '%s'", why, o.text);
        json_decref(x);
    }
    printf("chat under a schema: %d of 30 completed within 60 tokens\n", completed);
    ck_assert_int_gt(completed, 15);
    json_decref(sj);
    json_decref(req);
    eng_grammar_free(g);
    close_session(s, em);
}
END_TEST

/* ---------------- validity ---------------- */

/* RFC 8259, independently of the grammar and of jansson (which stops at 64-bit integers and
 * doubles): a value with optional surrounding whitespace. */
static bool js_value(const char **p, const char *e, int depth);

static void js_ws(const char **p, const char *e)
{
    while (*p < e && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) (*p)++;
}

static bool js_lit(const char **p, const char *e, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(e - *p) < n || memcmp(*p, w, n)) return false;
    *p += n;
    return true;
}

static bool js_digits(const char **p, const char *e)
{
    const char *s = *p;
    while (*p < e && **p >= '0' && **p <= '9') (*p)++;
    return *p > s;
}

static bool js_number(const char **p, const char *e)
{
    if (*p < e && **p == '-') (*p)++;
    if (*p < e && **p == '0') (*p)++;
    else if (*p >= e || **p < '1' || **p > '9' || !js_digits(p, e)) return false;
    if (*p < e && **p == '.' && ((*p)++, !js_digits(p, e))) return false;
    if (*p < e && (**p == 'e' || **p == 'E')) {
        (*p)++;
        if (*p < e && (**p == '+' || **p == '-')) (*p)++;
        if (!js_digits(p, e)) return false;
    }
    return true;
}

static bool js_string(const char **p, const char *e)
{
    if (*p >= e || **p != '"') return false;
    for ((*p)++; *p < e; (*p)++) {
        unsigned char c = (unsigned char)**p;
        if (c == '"') return (*p)++, true;
        if (c < 0x20) return false;
        if (c != '\\') continue;
        if (++*p >= e) return false;
        if (**p == 'u') {
            for (int i = 0; i < 4; i++)
                if (++*p >= e || !strchr("0123456789abcdefABCDEF", **p) || !**p) return false;
        } else if (!strchr("\"\\/bfnrt", **p) || !**p) {
            return false;
        }
    }
    return false;
}

static bool js_items(const char **p, const char *e, int depth, char close, bool keys)
{
    (*p)++;
    js_ws(p, e);
    if (*p < e && **p == close) return (*p)++, true;
    for (;;) {
        if (keys) {
            if (!js_string(p, e)) return false;
            js_ws(p, e);
            if (*p >= e || **p != ':') return false;
            (*p)++;
        }
        if (!js_value(p, e, depth + 1)) return false;
        if (*p < e && **p == ',') {
            (*p)++;
            js_ws(p, e);
            continue;
        }
        if (*p < e && **p == close) return (*p)++, true;
        return false;
    }
}

static bool js_value(const char **p, const char *e, int depth)
{
    if (depth > 200) return false;
    js_ws(p, e);
    bool ok;
    if (*p >= e) return false;
    switch (**p) {
    case '{': ok = js_items(p, e, depth, '}', true); break;
    case '[': ok = js_items(p, e, depth, ']', false); break;
    case '"': ok = js_string(p, e); break;
    case 't': ok = js_lit(p, e, "true"); break;
    case 'f': ok = js_lit(p, e, "false"); break;
    case 'n': ok = js_lit(p, e, "null"); break;
    default: ok = js_number(p, e); break;
    }
    js_ws(p, e);
    return ok;
}

static bool is_json(const char *s, size_t n)
{
    const char *p = s;
    return js_value(&p, s + n, 0) && p == s + n;
}

struct tally {
    unsigned runs, completed, valid, clamped; /* clamped: validated with huge numbers clamped */
};

/* JSON has no limit on numbers, jansson has (64-bit integers, doubles): a copy of the text
 * where an integer past 64 bits is written as a real (the same integral value, rounded) and a
 * number past the doubles as +-1e308 (an integral value as large as a double gets), so jsval can
 * judge it. Where a schema bounds a number the converter allows neither form, so only unbounded
 * numbers are changed, and their type (integer or not) and sign stay. *changed says if any was. */
static char *clamp_numbers(const char *t, size_t n, bool *changed)
{
    char *o = malloc(2 * n + 16), *w = o; /* a number grows by at most ".0" */
    *changed = false;
    bool in_str = false;
    for (size_t i = 0; i < n;) {
        char c = t[i];
        if (in_str || (c != '-' && (c < '0' || c > '9'))) {
            if (in_str && c == '\\') *w++ = t[i++];
            else if (c == '"') in_str = !in_str;
            *w++ = t[i++];
            continue;
        }
        const char *p = t + i;
        ck_assert(js_number(&p, t + n));
        size_t len = (size_t)(p - (t + i));
        char num[512];
        ck_assert_uint_lt(len, sizeof num);
        memcpy(num, t + i, len);
        num[len] = 0;
        bool integral = !strpbrk(num, ".eE");
        double d = strtod(num, NULL);
        errno = 0;
        if (integral) (void)strtoll(num, NULL, 10);
        if (!isfinite(d)) {
            w += sprintf(w, "%s1e308", num[0] == '-' ? "-" : "");
            *changed = true;
        } else if (integral && errno == ERANGE) {
            w += sprintf(w, "%s.0", num);
            *changed = true;
        } else {
            memcpy(w, num, len);
            w += len;
        }
        i += len;
    }
    *w = 0;
    return o;
}

/* One completed output: RFC 8259 JSON, and when a schema is given, valid by jsval. */
static void judge(const char *what, const char *text, size_t n, const json_t *schema, struct tally *t)
{
    ck_assert_msg(is_json(text, n), "%s: a completed output is not JSON: '%s'", what, text);
    bool changed;
    char *c = clamp_numbers(text, n, &changed);
    json_error_t je;
    json_t *x = json_loadb(c, strlen(c), JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    ck_assert_msg(x != NULL, "%s: jansson: %s: '%s'", what, je.text, c);
    if (schema) {
        char why[256] = "";
        int r = jsval_check(schema, x, why, sizeof why);
        ck_assert_msg(r == 1, "%s: a completed output fails the schema (%s): '%s'", what, why, c);
    }
    t->valid++;
    t->clamped += changed;
    json_decref(x);
    free(c);
}

/* `seeds` generations at temperature 1.5 under g: completed ones are judged. */
static void sweep(struct eng_session *s, const char *what, const struct eng_grammar *g,
                  const json_t *schema, int seeds, int32_t max_tokens, struct tally *t)
{
    static struct out o;
    for (int seed = 0; seed < seeds; seed++) {
        struct eng_gen_params p;
        params(&p, 1.5f, 1000 + (uint64_t)seed, max_tokens);
        p.grammar = g;
        memset(&o, 0, sizeof o);
        struct eng_sink sink = {on_text, NULL, &o, NULL};
        struct eng_gen_result res;
        struct err_info ei;
        err_clear(&ei);
        int rc = eng_generate(s, "Once upon a time", 16, &p, &sink, &res, &ei);
        ck_assert_msg(rc == 0, "%s seed %d: %s", what, seed, ei.msg);
        t->runs++;
        if (res.finish != ENG_FINISH_STOP && seed == 0 && getenv("GRAMGEN_VERBOSE")) printf("    cut: %s\n", o.text);
        if (res.finish != ENG_FINISH_STOP) continue;
        t->completed++;
        judge(what, o.text, o.len, schema, t);
    }
}

/* The agent-tool schemas of tests/data/schemas, sorted by name: [name, schema] pairs. */
static json_t *load_schemas(void)
{
    DIR *d = opendir("tests/data/schemas");
    ck_assert_ptr_nonnull(d);
    json_t *all = json_array();
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        char path[512];
        snprintf(path, sizeof path, "tests/data/schemas/%s", de->d_name);
        json_error_t je;
        json_t *f = json_load_file(path, JSON_ALLOW_NUL, &je);
        ck_assert_msg(f != NULL, "%s: %s", path, je.text);
        json_array_append_new(all, f);
    }
    closedir(d);
    ck_assert_uint_ge(json_array_size(all), 20);
    return all;
}

/* A stricter copy of a schema, so that random text ends within a few dozen tokens: strings
 * (without enum, const, format or pattern) get maxLength at most 24, arrays maxItems at most 4
 * (never below their minimums). Whatever validates against the copy validates against the
 * original, and the original is what outputs are checked against. */
static void cap(json_t *s, const char *key, const char *min_key, json_int_t most)
{
    json_t *mx = json_object_get(s, key);
    json_int_t lo = json_integer_value(json_object_get(s, min_key));
    if (lo > most) most = lo;
    if (!json_is_integer(mx) || json_integer_value(mx) > most) json_object_set_new(s, key, json_integer(most));
}

static bool has_type(const json_t *s, const char *t)
{
    json_t *ty = json_object_get(s, "type");
    if (json_is_string(ty)) return !strcmp(json_string_value(ty), t);
    for (size_t i = 0; i < json_array_size(ty); i++)
        if (!strcmp(json_string_value(json_array_get(ty, i)) ? json_string_value(json_array_get(ty, i)) : "", t))
            return true;
    return false;
}

static void bound(json_t *s)
{
    if (json_is_array(s))
        for (size_t i = 0; i < json_array_size(s); i++) bound(json_array_get(s, i));
    if (!json_is_object(s)) return;
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) bound(v);
    if (has_type(s, "string") && !json_object_get(s, "enum") && !json_object_get(s, "const") &&
        !json_object_get(s, "format") && !json_object_get(s, "pattern"))
        cap(s, "maxLength", "minLength", 24);
    if (has_type(s, "array")) cap(s, "maxItems", "minItems", 4);
}

/* One model: json.gbnf with json_seeds seeds, then every schema with seeds seeds. */
static void validity_model(const char *file, int json_seeds, int seeds, int32_t max_tokens, struct tally *tj,
                           struct tally *ts, unsigned *schemas_used)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", tutil_shared(file));
    struct eng_model *em;
    struct eng_session *s = open_session(path, &em);
    struct eng_grammar *json = NULL;
    ck_assert_int_eq(eng_grammar_json(&json, NULL), 0);
    char what[256];
    snprintf(what, sizeof what, "%s json.gbnf", file);
    sweep(s, what, json, NULL, json_seeds, max_tokens, tj);
    eng_grammar_free(json);
    json_t *all = load_schemas();
    *schemas_used = 0;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *f = json_array_get(all, i), *schema = json_object_get(f, "schema");
        struct err_info ei;
        err_clear(&ei);
        struct eng_grammar *g = NULL;
        json_t *bounded = json_deep_copy(schema);
        bound(bounded);
        int rc = eng_grammar_from_schema_json(&g, bounded, false, &ei);
        json_decref(bounded);
        snprintf(what, sizeof what, "%s %s", file, json_string_value(json_object_get(f, "name")));
        ck_assert_msg(rc == 0, "%s: %s", what, ei.msg);
        (*schemas_used)++;
        unsigned c0 = ts->completed;
        sweep(s, what, g, schema, seeds, max_tokens, ts);
        if (getenv("GRAMGEN_VERBOSE")) printf("    %s: %u of %d completed\n", what, ts->completed - c0, seeds);
        eng_grammar_free(g);
    }
    json_decref(all);
    close_session(s, em);
}

/* Sanitizer builds run the quick sizes: the same code paths, a tenth of the work. */
static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#endif
#endif
    return 0;
}

START_TEST(validity)
{
    /* seeds for json.gbnf, seeds per schema; the same when quick (qemu, sanitizers) */
    static const struct {
        const char *file;
        int json, each, quick_json, quick_each;
        int32_t max_tokens;
    } models[] = {
        {"models/stories260K-F32.gguf", 200, 200, 20, 4, 120}, /* its context is 128 */
        {"models/synth512-llama-d256-Q8_0.gguf", 200, 8, 10, 1, 160},
        {"models/synth512-qwen2-d256-Q8_0.gguf", 200, 8, 0, 0, 160},
        {"models/synth512-qwen3-d256-Q8_0.gguf", 200, 8, 0, 0, 160},
        {"models/synth512-phi3-d256-Q8_0.gguf", 200, 8, 0, 0, 160},
        {"models/synth512-gemma3-d256-Q8_0.gguf", 200, 8, 0, 0, 160},
    };
    bool small = quick() || sanitized();
    printf("validity at temperature 1.5 (completed: the grammar ended within max_tokens)%s:\n",
           small ? ", quick sizes" : "");
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        int nj = small ? models[i].quick_json : models[i].json, ne = small ? models[i].quick_each : models[i].each;
        if (!nj && !ne) continue;
        struct tally tj = {0}, ts = {0};
        unsigned n_schemas = 0;
        validity_model(models[i].file, nj, ne, models[i].max_tokens, &tj, &ts, &n_schemas);
        printf("  %-38s json.gbnf %u runs, %u completed, %u parse; %u schemas x %d: %u runs, %u completed, "
               "%u valid (%u with numbers clamped for jansson), max_tokens %d\n",
               models[i].file, tj.runs, tj.completed, tj.valid, n_schemas, ne, ts.runs, ts.completed, ts.valid,
               ts.clamped, models[i].max_tokens);
        ck_assert_uint_eq(tj.valid, tj.completed);
        ck_assert_uint_eq(ts.valid, ts.completed);
        ck_assert_uint_ge(n_schemas, 20);
        ck_assert_uint_gt(ts.completed, ts.runs / 3);
    }
}
END_TEST

/* ---------------- the command line ---------------- */

static const char *bin(void)
{
    const char *b = getenv("LMPIPE_BIN");
    return b && *b ? b : "./lmpipe";
}

/* Run `lmpipe run` with extra args; stdout into out (the text and run's final newline). */
static int run_cli(const char *const *extra, char *out, size_t cap)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *argv[32] = {bin(), "run", "-m", stories(), "-p", "Once upon a time", "-t", "1", "--temp", "1.5"};
        int n = 10;
        for (int i = 0; extra[i] && n < 31; i++) argv[n++] = extra[i];
        argv[n] = NULL;
        dup2(pfd[1], 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        close(pfd[0]);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && ((k = read(pfd[0], out + n, cap - 1 - n)) > 0 || (k < 0 && errno == EINTR)))
        if (k > 0) n += (size_t)k;
    out[n] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(cli_run_outputs_parse)
{
    char dir[256];
    ck_assert_int_eq(tutil_mkdtemp(dir, sizeof dir, "gramgen"), 0);
    char sfile[512], gfile[512];
    snprintf(sfile, sizeof sfile, "%s/web_search.json", dir);
    snprintf(gfile, sizeof gfile, "%s/pair.gbnf", dir);
    json_t *f = json_load_file("tests/data/schemas/web_search.json", 0, NULL);
    ck_assert_ptr_nonnull(f);
    json_t *schema = json_object_get(f, "schema");
    ck_assert_int_eq(json_dump_file(schema, sfile, 0), 0);
    FILE *gf = fopen(gfile, "w");
    fputs("root ::= \"(\" [a-z]{1,5} \",\" [0-9]{1,3} \")\"\n", gf);
    fclose(gf);
    static char out[65536];
    int completed[3] = {0, 0, 0};
    for (int seed = 0; seed < 6; seed++) {
        char sd[16];
        snprintf(sd, sizeof sd, "%d", seed);
        const char *a1[] = {"--json-schema", sfile, "-n", "100", "--seed", sd, NULL};
        const char *a2[] = {"--json", "-n", "100", "--seed", sd, NULL};
        const char *a3[] = {"--grammar", gfile, "-n", "100", "--seed", sd, NULL};
        const char *const *args[3] = {a1, a2, a3};
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(run_cli(args[k], out, sizeof out), 0);
            size_t n = strlen(out);
            ck_assert_msg(n > 0 && out[n - 1] == '\n', "'%s'", out);
            out[--n] = 0;
            json_t *x = json_loadb(out, n, 0, NULL);
            if (k == 2) { /* the tuple grammar: the whole text matches it */
                ck_assert_msg(out[0] == '(' && out[n - 1] == ')' && strchr(out, ','), "'%s'", out);
                completed[k]++;
                continue;
            }
            if (!x) continue; /* cut by -n: not complete */
            completed[k]++;
            if (k == 0) {
                char why[256] = "";
                ck_assert_msg(jsval_check(schema, x, why, sizeof why) == 1, "%s: '%s'", why, out);
            }
            json_decref(x);
        }
    }
    printf("lmpipe run: 6 seeds each, complete outputs: --json-schema %d, --json %d, --grammar %d\n", completed[0],
           completed[1], completed[2]);
    ck_assert_int_gt(completed[0], 2);
    json_decref(f);
    tutil_rmtree(dir);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("gramgen");
    TCase *a = tcase_create("rules");
    tcase_set_timeout(a, 300);
    tcase_add_test(a, grammar_api);
    tcase_add_test(a, builtin_json_is_the_file);
    tcase_add_test(a, eog_only_where_the_grammar_may_end);
    tcase_add_test(a, control_tokens_only_where_named);
    tcase_add_test(a, complete_ends_with_ignore_eos);
    tcase_add_test(a, dead_end_is_an_error);
    tcase_add_test(a, params_checked);
    tcase_add_test(a, no_allocation_per_token);
    tcase_add_test(a, forced_runs_batched_identical);
    tcase_add_test(a, forced_runs_greedy_same_as_sampled);
    tcase_add_test(a, chat_under_a_schema);
    tcase_add_test(a, cli_run_outputs_parse);
    suite_add_tcase(s, a);
    TCase *v = tcase_create("validity");
    tcase_set_timeout(v, 1800);
    tcase_add_test(v, validity);
    suite_add_tcase(s, v);
    return s;
}

TUTIL_MAIN
