/* check_toolgen: tool calls in the generation loop, below the chat templates.
 *
 *   - eng_stop's switch: the text before the trigger is released, the trigger and what follows
 *     are call text; a trigger is never cut by a stop string (a stop match overlapping a trigger
 *     that completes loses, one that cannot complete wins); at_start; functionary's skip; the
 *     result never depends on how the text is chunked (random texts, every chunking);
 *   - the lazy constraint (eng_tcon) on a real BPE vocabulary: a trigger spanning tokens, the
 *     token that completes it carrying bytes after it (allowed only when the grammar takes
 *     them, and then fed to it), the mask agreeing with check, at_start;
 *   - replies on stories260K (no template: the generic syntax, its trigger as plain text in a
 *     vocabulary of 512 tokens) at temperature 1.3: "required" gives calls of declared tools
 *     whose arguments validate (tests/jsval.h) every time, a named tool is always that tool,
 *     "auto" gives text or valid calls, never a broken call; the streamed events concatenate to
 *     the final arguments. 100 seeds natively, LMPIPE_TEST_QUICK=1 a subset. The tools' strings
 *     have a maxLength: a 260K-parameter model writing a story into an unbounded string may run
 *     past any max_tokens (finish "length"), which no grammar can prevent. */
#include "tutil.h"

#include "jsval.h"

#include "eng/eng_int.h"

static int quick(void) { return getenv("LMPIPE_TEST_QUICK") && atoi(getenv("LMPIPE_TEST_QUICK")) > 0; }

/* ---------------- the stop matcher's switch ---------------- */

/* Everything a feed sequence produced: released text, call text, and how it ended. */
struct sres {
    char text[512], call[512];
    size_t nt, nc;
    int end; /* 0 running, 1 stop */
};

static void sfeed(struct eng_stop *st, const char *t, size_t n, struct sres *r)
{
    if (r->end) return;
    char out[2048];
    size_t ol;
    int rc = eng_stop_feed(st, t, n, out, sizeof out, &ol);
    ck_assert_int_ge(rc, 0);
    ck_assert_uint_lt(r->nt + ol, sizeof r->text);
    memcpy(r->text + r->nt, out, ol);
    r->nt += ol;
    if (rc == 2) {
        ck_assert_uint_lt(r->nc + st->region_len, sizeof r->call);
        memcpy(r->call + r->nc, out + ol, st->region_len);
        r->nc += st->region_len;
    }
    if (rc == 1) r->end = 1;
}

static void sflush(struct eng_stop *st, struct sres *r)
{
    if (r->end) return;
    char out[2048];
    size_t ol = eng_stop_flush(st, out, sizeof out);
    memcpy(r->text + r->nt, out, ol);
    r->nt += ol;
}

static void sarm(struct eng_stop *st, const char *const *stops, const char *trig, bool at_start,
                 const char *skip)
{
    eng_stop_init(st);
    for (size_t i = 0; stops && stops[i]; i++) ck_assert_int_eq(eng_stop_add(st, stops[i], strlen(stops[i])), 0);
    if (trig) ck_assert_int_eq(eng_stop_switch(st, trig, strlen(trig), at_start, skip ? skip : "", skip ? strlen(skip) : 0), 0);
}

/* Run text through a fresh matcher in chunks of `chunk` bytes (0: at once). */
static void srun(const char *const *stops, const char *trig, bool at_start, const char *skip,
                 const char *text, size_t chunk, struct sres *r)
{
    struct eng_stop st;
    sarm(&st, stops, trig, at_start, skip);
    memset(r, 0, sizeof *r);
    size_t n = strlen(text);
    for (size_t off = 0; off < n;) {
        size_t k = chunk && n - off > chunk ? chunk : n - off;
        sfeed(&st, text + off, k, r);
        off += k;
    }
    sflush(&st, r);
}

START_TEST(test_switch_cases)
{
    static const char *const stops_lt[] = {"<t", NULL}, *const stops_call[] = {"call", NULL},
                             *const stops_a[] = {"a<", NULL}, *const stops_end[] = {"END", NULL};
    static const struct {
        const char *const *stops;
        const char *trig, *skip, *text;
        bool at_start;
        const char *want_text, *want_call;
        int end;
    } cases[] = {
        {NULL, "<tool_call>", NULL, "Hi <tool_call>{x}", false, "Hi ", "<tool_call>{x}", 0},
        {NULL, "<tool_call>", NULL, "Hi <tool_cal", false, "Hi <tool_cal", "", 0}, /* flushed as text */
        {NULL, "<tool_call>", NULL, "a <tool b <tool_call>", false, "a <tool b ", "<tool_call>", 0},
        /* a stop inside the trigger loses to it */
        {stops_lt, "<tool_call>", NULL, "x<tool_call>y", false, "x", "<tool_call>y", 0},
        {stops_call, "<tool_call>", NULL, "x<tool_call>y", false, "x", "<tool_call>y", 0},
        /* ... a stop that starts before it and overlaps it loses too */
        {stops_a, "<tool_call>", NULL, "a<tool_call>", false, "a", "<tool_call>", 0},
        /* ... but wins when the trigger does not complete */
        {stops_lt, "<tool_call>", NULL, "x<tx<tool_call>", false, "x", "", 1},
        {stops_a, "<tool_call>", NULL, "a<b", false, "", "", 1},
        /* a stop entirely before the trigger wins */
        {stops_end, "<tool_call>", NULL, "ok END <tool_call>", false, "ok ", "", 1},
        /* at_start: only at the first non-space byte */
        {NULL, "{", NULL, "  {\"name\"", true, "  ", "{\"name\"", 0},
        {NULL, "{", NULL, "x {\"name\"", true, "x {\"name\"", "", 0},
        {NULL, "{\"n", NULL, "{\"x", true, "{\"x", "", 0},
        /* skip: dropped at the start only */
        {NULL, ">>>", ">>>all\n", ">>>all\nHello >> there", false, "Hello >> there", "", 0},
        {NULL, ">>>", ">>>all\n", ">>>all\nSee >>>exec\n{}", false, "See ", ">>>exec\n{}", 0},
        {NULL, ">>>", ">>>all\n", ">>>exec\n{}", false, "", ">>>exec\n{}", 0},
        {NULL, ">>>", ">>>all\n", ">>>al", false, ">>>al", "", 0},
        /* no switch armed: the old matcher */
        {stops_end, NULL, NULL, "abc END def", false, "abc ", "", 1},
        /* switched from the start */
        {stops_end, "", NULL, "END x", false, "", "END x", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t chunk = 0; chunk <= 3; chunk++) {
            struct sres r;
            srun(cases[i].stops, cases[i].trig, cases[i].at_start, cases[i].skip, cases[i].text, chunk, &r);
            ck_assert_msg(r.nt == strlen(cases[i].want_text) && !memcmp(r.text, cases[i].want_text, r.nt),
                          "case %zu chunk %zu: text '%.*s'", i, chunk, (int)r.nt, r.text);
            ck_assert_msg(r.nc == strlen(cases[i].want_call) && !memcmp(r.call, cases[i].want_call, r.nc),
                          "case %zu chunk %zu: call '%.*s'", i, chunk, (int)r.nc, r.call);
            ck_assert_msg(r.end == cases[i].end, "case %zu chunk %zu: end %d", i, chunk, r.end);
        }
    }
}
END_TEST

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

/* Random texts over a small alphabet: every chunking gives what feeding byte by byte gives. */
START_TEST(test_switch_chunking)
{
    static const char alpha[] = "<ab>_ t\nc";
    static const char *const stop_sets[][3] = {{"ab", NULL}, {"<a", "b>"}, {"t_", NULL}, {NULL}};
    static const char *const trigs[] = {"<a_b>", "ab", "<<a", "t"};
    size_t n_runs = 0;
    for (int round = 0; round < 3000; round++) {
        char text[64];
        size_t n = 1 + rnd() % 40;
        for (size_t i = 0; i < n; i++) text[i] = alpha[rnd() % (sizeof alpha - 1)];
        text[n] = 0;
        const char *const *stops = stop_sets[rnd() % 4];
        const char *trig = trigs[rnd() % 4];
        bool at_start = rnd() % 4 == 0;
        struct sres one, r;
        srun(stops, trig, at_start, NULL, text, 1, &one);
        for (size_t chunk = 0; chunk <= 7; chunk += 1 + rnd() % 3) {
            srun(stops, trig, at_start, NULL, text, chunk, &r);
            ck_assert_msg(r.nt == one.nt && !memcmp(r.text, one.text, r.nt) && r.nc == one.nc &&
                              !memcmp(r.call, one.call, r.nc) && r.end == one.end,
                          "'%s' trigger '%s' chunk %zu differs from byte by byte", text, trig, chunk);
            n_runs++;
        }
        /* text + call == the input up to a stop; the call starts with the trigger */
        if (!one.end) {
            ck_assert_uint_eq(one.nt + one.nc, n);
            ck_assert(!memcmp(one.text, text, one.nt) && !memcmp(one.call, text + one.nt, one.nc));
            if (one.nc) ck_assert(!strncmp(one.call, trig, strlen(trig)));
        }
    }
    printf("switch: %zu chunked runs agree with byte-by-byte feeding\n", n_runs);
}
END_TEST

/* ---------------- the lazy constraint on a real vocabulary ---------------- */

static struct eng_model *open_vocab(const char *rel)
{
    struct eng_model *em = NULL;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_model_open_vocab(&em, tutil_shared(rel), &ei) == 0, "%s: %s", rel, ei.msg);
    return em;
}

static size_t tokenize(const struct eng_model *em, const char *s, int32_t *out, size_t cap)
{
    size_t n = 0;
    ck_assert_int_eq(eng_tokenize(em, s, strlen(s), false, false, out, cap, &n, NULL), 0);
    return n;
}

static struct eng_toolset exec_tools(void)
{
    json_t *t = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"exec\",\"parameters\":"
                           "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"}},"
                           "\"required\":[\"command\"]}}}]",
                           0, NULL);
    struct eng_toolset ts;
    ck_assert_int_eq(eng_toolset_parse(t, &ts, NULL), 0);
    json_decref(t);
    return ts;
}

static struct eng_constraint make_con(struct eng_model *em, const struct eng_tsyn *s,
                                      const struct eng_toolset *ts, int choice, bool lazy)
{
    struct eng_tgram_opts o = {.choice = choice, .parallel = true, .lazy = lazy, .v = eng_model_vocab(em)};
    char *g;
    size_t n;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_tools_gbnf(s, ts, &o, &g, &n, &ei) == 0, "%s", ei.msg);
    struct eng_constraint c;
    ck_assert_msg(eng_tcon_make(em, g, n, s->trigger, s->at_start, lazy, &c, &ei) == 0, "%s", ei.msg);
    free(g);
    return c;
}

/* The first token whose bytes start with prefix and go on with more, or -1. */
static int32_t token_starting(const struct vocab_view *v, const char *prefix, char next)
{
    size_t pl = strlen(prefix);
    for (uint32_t id = 0; id < v->n_vocab; id++) {
        size_t n;
        const char *b = vocab_bytes(v, (int32_t)id, &n);
        if (n == pl + 1 && !memcmp(b, prefix, pl) && b[pl] == next && !(vocab_flags(v, (int32_t)id) & VOCAB_CONTROL))
            return (int32_t)id;
    }
    return -1;
}

/* check and mask agree for every token of the vocabulary. */
static void mask_agrees(struct eng_constraint *c, uint32_t n_vocab)
{
    uint64_t *bits = calloc((n_vocab + 63) / 64, sizeof *bits);
    ck_assert_int_eq(c->ops->mask(c->self, bits), 0);
    for (uint32_t id = 0; id < n_vocab; id++) {
        int ok = c->ops->check(c->self, (int32_t)id);
        ck_assert_int_ge(ok, 0);
        ck_assert_msg(ok == (int)(bits[id / 64] >> (id % 64) & 1), "token %u: check %d, mask disagrees", id, ok);
    }
    free(bits);
}

START_TEST(test_lazy_trigger_tokens)
{
    struct eng_model *em = open_vocab("vocab/ggml-vocab-llama-bpe.gguf"); /* no <tool_call> token */
    const struct vocab_view *v = eng_model_vocab(em);
    struct eng_toolset ts = exec_tools();
    struct eng_tsyn s;
    eng_tsyn_family(&s, ENG_TF_HERMES);
    struct eng_constraint c = make_con(em, &s, &ts, ENG_TC_AUTO, true);
    c.ops->reset(c.self);
    /* free text, then the trigger spelled by several tokens */
    int32_t toks[64];
    size_t n = tokenize(em, "Sure. <tool_call", toks, 64);
    ck_assert_uint_ge(n, 3);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(c.ops->check(c.self, toks[i]), 1);
        ck_assert_int_eq(c.ops->accept(c.self, toks[i]), 0);
        ck_assert_int_eq(c.ops->complete(c.self), 0);
    }
    /* the token that completes the trigger: ">\n" carries the grammar's first byte; ">(" does not */
    int32_t good = token_starting(v, ">", '\n'), bad = token_starting(v, ">", '(');
    ck_assert_int_ge(good, 0);
    ck_assert_int_ge(bad, 0);
    ck_assert_int_eq(c.ops->check(c.self, good), 1);
    ck_assert_int_eq(c.ops->check(c.self, bad), 0);
    mask_agrees(&c, v->n_vocab);
    ck_assert_int_eq(c.ops->accept(c.self, good), 0);
    /* now the grammar holds: only the call's text */
    n = tokenize(em, "{\"name\": \"exec\", \"arguments\": {\"command\": \"ls\"}}\n</tool_call>", toks, 64);
    int32_t text_tok[8];
    ck_assert_uint_eq(tokenize(em, " Hello", text_tok, 8), 1);
    ck_assert_int_eq(c.ops->check(c.self, text_tok[0]), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(c.ops->check(c.self, toks[i]) == 1, "token %zu", i);
        ck_assert_int_eq(c.ops->accept(c.self, toks[i]), 0);
    }
    /* the end of generation is allowed now (or another call) */
    ck_assert_int_eq(c.ops->check(c.self, v->eos), 1);
    /* reset: waiting again, text allowed */
    c.ops->reset(c.self);
    ck_assert_int_eq(c.ops->check(c.self, text_tok[0]), 1);
    c.ops->free(c.self);

    /* at_start (Llama 3): "{" counts only as the first non-space byte */
    eng_tsyn_family(&s, ENG_TF_LLAMA3);
    c = make_con(em, &s, &ts, ENG_TC_AUTO, true);
    c.ops->reset(c.self);
    n = tokenize(em, "Hi {", toks, 64);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(c.ops->accept(c.self, toks[i]), 0);
    ck_assert_int_eq(c.ops->check(c.self, text_tok[0]), 1); /* still free text */
    c.ops->reset(c.self);
    int32_t brace = token_starting(v, "{", '"'), brace_bad = token_starting(v, "{", '}');
    ck_assert_int_ge(brace, 0);
    ck_assert_int_ge(brace_bad, 0);
    ck_assert_int_eq(c.ops->check(c.self, brace), 1);
    ck_assert_int_eq(c.ops->check(c.self, brace_bad), 0);
    mask_agrees(&c, v->n_vocab);
    c.ops->free(c.self);

    /* required: the grammar from the first token */
    eng_tsyn_family(&s, ENG_TF_HERMES);
    c = make_con(em, &s, &ts, ENG_TC_REQUIRED, false);
    c.ops->reset(c.self);
    ck_assert_int_eq(c.ops->check(c.self, text_tok[0]), 0);
    n = tokenize(em, "<tool_call>", toks, 64);
    ck_assert_int_eq(c.ops->check(c.self, toks[0]), 1);
    c.ops->free(c.self);
    eng_toolset_free(&ts);
    eng_model_free(em);
}
END_TEST

/* A marker that the vocabulary has as a control token is written as that token. */
START_TEST(test_control_marker)
{
    struct eng_model *em = open_vocab("vocab/ggml-vocab-llama-bpe.gguf");
    const struct vocab_view *v = eng_model_vocab(em);
    /* a syntax whose trigger is one of this vocabulary's control tokens */
    int32_t ctl = -1;
    for (uint32_t id = 0; id < v->n_vocab && ctl < 0; id++) {
        size_t n;
        const char *b = vocab_bytes(v, (int32_t)id, &n);
        if ((vocab_flags(v, (int32_t)id) & VOCAB_CONTROL) && !(vocab_flags(v, (int32_t)id) & VOCAB_EOG) &&
            n > 4 && n < 40 && !memcmp(b, "<|reserved", 10))
            ctl = (int32_t)id;
    }
    ck_assert_int_ge(ctl, 0);
    size_t cl;
    const char *cb = vocab_bytes(v, ctl, &cl);
    struct eng_tsyn s;
    eng_tsyn_family(&s, ENG_TF_MISTRAL);
    snprintf(s.trigger, sizeof s.trigger, "%.*s", (int)cl, cb);
    snprintf(s.sec_open, sizeof s.sec_open, "%.*s[", (int)cl, cb);
    struct eng_toolset ts = exec_tools();
    struct eng_constraint c = make_con(em, &s, &ts, ENG_TC_REQUIRED, false);
    c.ops->reset(c.self);
    ck_assert_int_eq(c.ops->check(c.self, ctl), 1); /* the control token, not its text */
    int32_t lt[4];
    ck_assert_int_ge(tokenize(em, "<", lt, 4), 1);
    ck_assert_int_eq(c.ops->check(c.self, lt[0]), 0);
    c.ops->free(c.self);
    /* lazy: the control token fires the trigger */
    c = make_con(em, &s, &ts, ENG_TC_AUTO, true);
    c.ops->reset(c.self);
    ck_assert_int_eq(c.ops->check(c.self, ctl), 1);
    ck_assert_int_eq(c.ops->accept(c.self, ctl), 0);
    int32_t br[4];
    ck_assert_uint_eq(tokenize(em, "[", br, 4), 1);
    ck_assert_int_eq(c.ops->check(c.self, br[0]), 1);
    ck_assert_int_eq(c.ops->check(c.self, lt[0]), 0);
    c.ops->free(c.self);
    eng_toolset_free(&ts);
    eng_model_free(em);
}
END_TEST

/* ---------------- replies on stories260K ---------------- */

struct reply {
    char text[8192];
    size_t nt;
    int n_begin, n_end;
    char name[ENG_TOOL_CALLS_MAX][ENG_TOOL_NAME_MAX + 1];
    char id[ENG_TOOL_CALLS_MAX][32];
    struct eng_sb streamed[ENG_TOOL_CALLS_MAX], final[ENG_TOOL_CALLS_MAX];
};

static int on_text(void *ud, const char *t, size_t n, int32_t tok)
{
    (void)tok;
    struct reply *r = ud;
    if (r->nt + n < sizeof r->text) {
        memcpy(r->text + r->nt, t, n);
        r->nt += n;
    }
    return 0;
}

static int on_tool(void *ud, const struct eng_tool_event *ev)
{
    struct reply *r = ud;
    ck_assert_uint_lt(ev->index, ENG_TOOL_CALLS_MAX);
    if (ev->kind == ENG_TOOL_BEGIN) {
        ck_assert_int_eq((int)ev->index, r->n_begin);
        snprintf(r->name[ev->index], sizeof r->name[0], "%s", ev->name);
        snprintf(r->id[ev->index], sizeof r->id[0], "%s", ev->id);
        r->n_begin++;
    } else if (ev->kind == ENG_TOOL_ARGS) {
        ck_assert_int_eq((int)ev->index + 1, r->n_begin);
        eng_sb_add(&r->streamed[ev->index], ev->text, ev->len);
    } else {
        ck_assert_int_eq((int)ev->index, r->n_end);
        ck_assert_str_eq(ev->id, r->id[ev->index]);
        eng_sb_add(&r->final[ev->index], ev->text, ev->len);
        r->n_end++;
    }
    return 0;
}

static void reply_free(struct reply *r)
{
    for (int i = 0; i < ENG_TOOL_CALLS_MAX; i++) {
        eng_sb_free(&r->streamed[i]);
        eng_sb_free(&r->final[i]);
    }
}

static const char *k_story_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"exec\",\"description\":\"run a command\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":40},"
    "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":60}},\"required\":[\"command\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"location\":{\"type\":\"string\",\"maxLength\":30},\"unit\":{\"enum\":[\"c\",\"f\"]}},"
    "\"required\":[\"location\",\"unit\"]}}}]";

/* One reply: the tool state of request req (tools, tool_choice), syntax of family fam. */
static int story_reply(struct eng_session *s, struct eng_model *em, const char *req_json, int fam,
                       uint64_t seed, struct reply *r, struct eng_gen_result *res, struct err_info *ei)
{
    json_t *req = json_loads(req_json, 0, NULL);
    ck_assert_ptr_nonnull(req);
    struct eng_trun tr;
    ck_assert_int_eq(eng_trun_parse(&tr, req, true, ei), 0);
    struct eng_tsyn syn;
    eng_tsyn_family(&syn, fam);
    ck_assert_msg(eng_trun_setup(&tr, em, &syn, ei) == 0, "%s", ei->msg);
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.samp.temp = 1.3f;
    p.samp.seed = seed;
    p.max_tokens = 100; /* the prompt (~15 tokens) and the reply within the 128 positions: a full
                         * context is an error, not "length" */
    memset(r, 0, sizeof *r);
    struct eng_sink sink = {on_text, NULL, r, NULL};
    const char *prompt = "Once upon a time, Lily wanted to know the weather.";
    int rc = eng_trun_generate(s, &tr, prompt, strlen(prompt), &p, NULL, 0, on_tool, r, &sink, res, ei);
    eng_trun_free(&tr);
    json_decref(req);
    return rc;
}

/* Every complete call names a declared tool and its arguments validate; streamed == final. */
static void check_calls(const struct reply *r, const json_t *tools, const char *only)
{
    for (int i = 0; i < r->n_end; i++) {
        const json_t *schema = NULL;
        for (size_t k = 0; k < json_array_size(tools); k++) {
            const json_t *fn = json_object_get(json_array_get(tools, k), "function");
            if (!strcmp(json_string_value(json_object_get(fn, "name")), r->name[i]))
                schema = json_object_get(fn, "parameters");
        }
        ck_assert_msg(schema != NULL, "call %d names '%s'", i, r->name[i]);
        if (only) ck_assert_str_eq(r->name[i], only);
        ck_assert_uint_eq(r->streamed[i].len, r->final[i].len);
        ck_assert(!memcmp(r->streamed[i].p, r->final[i].p, r->final[i].len));
        json_error_t je;
        json_t *args = json_loadb(r->final[i].p, r->final[i].len, 0, &je);
        ck_assert_msg(args != NULL, "not JSON (%s): %s", je.text, r->final[i].p);
        char why[256];
        ck_assert_msg(jsval_check(schema, args, why, sizeof why) == 1, "%s: %s (%s)", r->name[i], r->final[i].p, why);
        json_decref(args);
    }
}

START_TEST(test_story_replies)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em = NULL;
    ck_assert_msg(eng_model_open(&em, tutil_shared("models/stories260K-F32.gguf"), 1, &ei) == 0, "%s", ei.msg);
    struct eng_session *s = NULL;
    ck_assert_int_eq(eng_session_create(&s, em, 0, &ei), 0);
    json_t *tools = json_loads(k_story_tools, 0, NULL);
    int seeds = quick() ? 10 : 100;
    static const struct {
        const char *choice, *only, *extra;
    } modes[] = {{"\"required\"", NULL, ""},
                 {"\"required\"", NULL, ", \"parallel_tool_calls\": false"},
                 {"{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}", "weather", ""},
                 {"\"auto\"", NULL, ""}};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        bool required = modes[m].choice[0] != '"' || strstr(modes[m].choice, "required");
        char req[2048];
        snprintf(req, sizeof req, "{\"tools\": %s, \"tool_choice\": %s%s}", k_story_tools, modes[m].choice,
                 modes[m].extra);
        int with_calls = 0, finished = 0, texts = 0, cut = 0, total_calls = 0;
        for (int seed = 1; seed <= seeds; seed++) {
            struct reply r;
            struct eng_gen_result res;
            err_clear(&ei);
            int rc = story_reply(s, em, req, ENG_TF_GENERIC, (uint64_t)seed, &r, &res, &ei);
            ck_assert_msg(rc == 0, "%s seed %d: %s", modes[m].choice, seed, ei.msg);
            check_calls(&r, tools, modes[m].only);
            with_calls += r.n_end > 0;
            total_calls += r.n_end;
            if (res.finish == ENG_FINISH_TOOL_CALLS) {
                ck_assert_int_ge(r.n_end, 1);
                ck_assert_int_eq(r.n_end, r.n_begin);
                finished++;
            } else if (res.finish == ENG_FINISH_LENGTH) {
                cut++; /* the call after the complete ones was cut by max_tokens */
            } else {
                ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
                ck_assert_int_eq(r.n_begin, 0); /* text only: never a broken call */
                texts++;
            }
            if (strstr(modes[m].extra, "false")) ck_assert_int_le(r.n_begin, 1);
            if (required) ck_assert_uint_eq(r.nt, 0); /* nothing before the calls */
            reply_free(&r);
        }
        printf("stories260K %s%s: %d/%d replies with valid calls (%d calls), finish tool_calls %d, "
               "text %d, cut by max_tokens after the complete calls %d\n",
               modes[m].choice, modes[m].extra, with_calls, seeds, total_calls, finished, texts, cut);
        if (required) ck_assert_int_eq(with_calls, seeds);
    }
    json_decref(tools);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("toolgen");
    TCase *tc = tcase_create("toolgen");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_switch_cases);
    tcase_add_test(tc, test_switch_chunking);
    tcase_add_test(tc, test_lazy_trigger_tokens);
    tcase_add_test(tc, test_control_marker);
    tcase_add_test(tc, test_story_replies);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
