/* check_toolchat: tool calling through eng_chat, the way the protocol and the CLI use it, on
 * every shared chat template and on none.
 *
 * Models: stories260K (given 4096 positions by ftool_edit: the tools' descriptions alone are
 * longer than its 128) with each template of ../shared/chat/jinja forced on it, and with none
 * (the built-in chatml and our generic call syntax); the synthetic models (random weights,
 * 2048 positions) with none. The model knows nothing of tools: every call it makes is the
 * grammar's work, which is what is measured.
 *
 * For each: tool_choice "required" at temperature 1.3 over 100 seeds gives, every time, calls of
 * declared tools whose arguments validate against the tool's schema (tests/jsval.h, a validator
 * of the tests' own); a named choice always calls that tool; "auto" gives text or valid calls,
 * never a call that begins and is not finished unless max_tokens cut it; the streamed argument
 * pieces add up to the final arguments; ids are unique in the process (Mistral's: 9
 * alphanumerics); a tool result sent back continues the conversation with the prompt's prefix
 * from the cache (cached_tokens > 0). 25 seeds for "required" (10 for the others) by default,
 * LMPIPE_TEST_QUICK=1 10, =2 (qemu) 4 on none, DeepSeek-R1, Mistral and synth llama, LMPIPE_TOOL_SEEDS=N N (and
 * N/5): the measure is N=100 (about 10 minutes on 2 cores); LMPIPE_TOOL_TEMPLATE=TEXT runs
 * the stories260K cases of the templates whose file name contains TEXT ("none" for none). */
#include "tutil.h"

#include "jsval.h"

#include "eng/eng.h"
#include "ftool/ftool.h"

#include <ctype.h>
#include <jansson.h>

static int quick(void) { return getenv("LMPIPE_TEST_QUICK") && atoi(getenv("LMPIPE_TEST_QUICK")) > 0; }

static const char *k_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"exec\",\"description\":\"run a command\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":40},"
    "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":60}},\"required\":[\"command\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"the weather in a city\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\",\"maxLength\":30},"
    "\"unit\":{\"enum\":[\"c\",\"f\"]}},\"required\":[\"location\",\"unit\"]}}}]";

static const char *const k_templates[] = {
    NULL, /* none: chatml, the generic syntax */
    "HuggingFaceTB-SmolLM3-3B.jinja",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "google-gemma-2-2b-it.jinja",
    "ibm-granite-granite-3.3-2B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
};
#define N_TEMPLATES (sizeof k_templates / sizeof k_templates[0])

static const char *const k_synth[] = {"synth512-llama-d256-F32.gguf", "synth512-qwen2-d256-F32.gguf",
                                      "synth512-phi3-d256-F32.gguf", "synth512-gemma3-d256-F32.gguf"};

/* ---------------- one reply ---------------- */

#define MAXC 16
struct reply {
    struct tutil_text text;
    int n_begin, n_end;
    char name[MAXC][72], id[MAXC][40];
    char streamed[MAXC][2048], final[MAXC][2048];
    size_t ns[MAXC], nf[MAXC];
};

/* Every id this process handed out (unique). */
static char (*g_ids)[40];
static size_t g_n_ids, g_cap_ids;

static void id_seen(const char *id)
{
    for (size_t i = 0; i < g_n_ids; i++) ck_assert_msg(strcmp(g_ids[i], id) != 0, "id %s twice", id);
    if (g_n_ids == g_cap_ids) {
        g_cap_ids = g_cap_ids ? g_cap_ids * 2 : 256;
        g_ids = realloc(g_ids, g_cap_ids * sizeof *g_ids);
        ck_assert_ptr_nonnull(g_ids);
    }
    snprintf(g_ids[g_n_ids++], sizeof g_ids[0], "%s", id);
}

static int on_tool(void *ud, const struct eng_tool_event *ev)
{
    struct reply *r = ud;
    ck_assert_uint_lt(ev->index, MAXC);
    int i = (int)ev->index;
    if (ev->kind == ENG_TOOL_BEGIN) {
        ck_assert_int_eq(i, r->n_begin);
        snprintf(r->name[i], sizeof r->name[0], "%s", ev->name);
        snprintf(r->id[i], sizeof r->id[0], "%s", ev->id);
        id_seen(ev->id);
        r->n_begin++;
    } else if (ev->kind == ENG_TOOL_ARGS) {
        ck_assert_int_eq(i + 1, r->n_begin);
        ck_assert_uint_lt(r->ns[i] + ev->len, sizeof r->streamed[0]);
        memcpy(r->streamed[i] + r->ns[i], ev->text, ev->len);
        r->ns[i] += ev->len;
    } else {
        ck_assert_int_eq(i, r->n_end);
        ck_assert_str_eq(ev->id, r->id[i]);
        ck_assert_uint_lt(ev->len, sizeof r->final[0]);
        memcpy(r->final[i], ev->text, ev->len);
        r->nf[i] = ev->len;
        r->n_end++;
    }
    return 0;
}

static json_t *request(const char *choice, json_t *messages)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "{\"tools\": %s, \"tool_choice\": %s}", k_tools, choice);
    json_t *r = json_loads(buf, 0, NULL);
    ck_assert_ptr_nonnull(r);
    json_object_set_new(r, "messages", messages ? messages
                                                : json_pack("[{s:s,s:s}]", "role", "user", "content",
                                                            "What is the weather in Paris? Then list the files."));
    return r;
}

static int chat(struct eng_session *s, json_t *req, uint64_t seed, int max_tokens, struct reply *r,
                struct eng_gen_result *res, struct err_info *ei)
{
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.samp.temp = 1.3f;
    p.samp.seed = seed;
    p.max_tokens = max_tokens;
    struct eng_chat_opts co;
    eng_chat_opts_default(&co);
    co.on_tool = on_tool;
    co.tool_ud = r;
    memset(r, 0, sizeof *r);
    struct eng_sink sink = {tutil_text_add, NULL, &r->text, NULL};
    err_clear(ei);
    return eng_chat(s, req, &co, &p, &sink, res, ei);
}

/* Every complete call: a declared tool (only, when given), arguments valid, streamed == final,
 * Mistral's ids 9 alphanumerics. */
static void check_calls(const struct reply *r, const json_t *tools, const char *only, bool mistral,
                        const char *what)
{
    for (int i = 0; i < r->n_end; i++) {
        const json_t *schema = NULL;
        for (size_t k = 0; k < json_array_size(tools); k++) {
            const json_t *fn = json_object_get(json_array_get(tools, k), "function");
            if (!strcmp(json_string_value(json_object_get(fn, "name")), r->name[i]))
                schema = json_object_get(fn, "parameters");
        }
        ck_assert_msg(schema != NULL, "%s: call %d names '%s'", what, i, r->name[i]);
        if (only) ck_assert_str_eq(r->name[i], only);
        ck_assert_msg(r->ns[i] == r->nf[i] && !memcmp(r->streamed[i], r->final[i], r->nf[i]),
                      "%s: streamed %.*s, final %.*s", what, (int)r->ns[i], r->streamed[i], (int)r->nf[i],
                      r->final[i]);
        json_error_t je;
        json_t *args = json_loadb(r->final[i], r->nf[i], 0, &je);
        ck_assert_msg(args != NULL, "%s: not JSON (%s): %.*s", what, je.text, (int)r->nf[i], r->final[i]);
        char why[256];
        ck_assert_msg(jsval_check(schema, args, why, sizeof why) == 1, "%s: %s %.*s (%s)", what, r->name[i],
                      (int)r->nf[i], r->final[i], why);
        json_decref(args);
        if (mistral) {
            ck_assert_uint_eq(strlen(r->id[i]), 9);
            for (int k = 0; k < 9; k++) ck_assert(isalnum((unsigned char)r->id[i][k]));
        } else {
            ck_assert(!strncmp(r->id[i], "call_", 5));
        }
    }
}

/* ---------------- one model and template ---------------- */

struct tally {
    int with_calls, calls, finish_calls, text, cut;
};

/* n seeds of one tool_choice; returns the tally and checks each reply. */
static struct tally run_mode(struct eng_session *s, const char *choice, const char *only, int seeds,
                             const json_t *tools, bool mistral, const char *what)
{
    struct tally t = {0};
    bool required = choice[0] == '{' || strstr(choice, "required");
    json_t *req = request(choice, NULL);
    struct reply *r = malloc(sizeof *r);
    ck_assert_ptr_nonnull(r);
    for (int seed = 1; seed <= seeds; seed++) {
        struct eng_gen_result res;
        struct err_info ei;
        int rc = chat(s, req, (uint64_t)seed, 300, r, &res, &ei);
        ck_assert_msg(rc == 0, "%s %s seed %d: %s", what, choice, seed, ei.msg);
        check_calls(r, tools, only, mistral, what);
        t.with_calls += r->n_end > 0;
        t.calls += r->n_end;
        if (res.finish == ENG_FINISH_TOOL_CALLS) {
            ck_assert_int_ge(r->n_end, 1);
            ck_assert_int_eq(r->n_end, r->n_begin);
            t.finish_calls++;
        } else if (res.finish == ENG_FINISH_LENGTH) {
            t.cut++;
        } else {
            ck_assert_msg(res.finish == ENG_FINISH_STOP, "%s seed %d: finish %d", what, seed, res.finish);
            ck_assert_int_eq(r->n_begin, r->n_end); /* never a broken call */
            t.text += r->n_end == 0;
        }
        if (required) ck_assert_uint_eq(r->text.len, 0); /* nothing before the calls */
    }
    free(r);
    json_decref(req);
    printf("  %-58s %-45s %3d/%d with valid calls (%d calls), finish tool_calls %d, text %d, cut %d\n",
           what, choice, t.with_calls, seeds, t.calls, t.finish_calls, t.text, t.cut);
    if (required) ck_assert_int_eq(t.with_calls, seeds);
    return t;
}

/* A required call, its result sent back, the conversation goes on from the cache. */
static void round_trip(struct eng_session *s, const json_t *tools, bool mistral, const char *what)
{
    struct reply *r = malloc(sizeof *r);
    ck_assert_ptr_nonnull(r);
    struct eng_gen_result res;
    struct err_info ei;
    json_t *req = request("\"required\"", NULL);
    json_object_set_new(req, "parallel_tool_calls", json_false());
    ck_assert_msg(chat(s, req, 7, 400, r, &res, &ei) == 0, "%s: %s", what, ei.msg);
    check_calls(r, tools, NULL, mistral, what);
    ck_assert_int_eq(r->n_end, 1);
    json_t *msgs = json_deep_copy(json_object_get(req, "messages"));
    json_array_append_new(
        msgs, json_pack("{s:s,s:s,s:[{s:s,s:s,s:{s:s,s:s%}}]}", "role", "assistant", "content", "", "tool_calls",
                        "id", r->id[0], "type", "function", "function", "name", r->name[0], "arguments",
                        r->final[0], r->nf[0]));
    json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", r->id[0], "content",
                                          "{\"temperature\": 21, \"files\": [\"a.txt\"]}"));
    json_t *req2 = request("\"auto\"", msgs);
    uint32_t first_prompt = res.prompt_tokens;
    int rc = chat(s, req2, 8, 60, r, &res, &ei);
    ck_assert_msg(rc == 0, "%s: the round trip: %s", what, ei.msg);
    check_calls(r, tools, NULL, mistral, what);
    printf("  %-58s round trip: %u prompt tokens (first turn %u), %u from the cache\n", what, res.prompt_tokens,
           first_prompt, res.cached_tokens);
    ck_assert_uint_gt(res.prompt_tokens, first_prompt);
    ck_assert_uint_gt(res.cached_tokens, 0);
    json_decref(req);
    json_decref(req2);
    free(r);
}

static void run_all(const char *model_path, const char *tmpl_file, const char *label)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em = NULL;
    ck_assert_msg(eng_model_open(&em, model_path, 1, &ei) == 0, "%s: %s", model_path, ei.msg);
    if (tmpl_file) {
        char path[256];
        snprintf(path, sizeof path, "chat/jinja/%s", tmpl_file);
        size_t n;
        char *src = tutil_read(tutil_shared(path), &n);
        ck_assert_ptr_nonnull(src);
        ck_assert_msg(eng_model_set_chat_template(em, src, n, tmpl_file, &ei) == 0, "%s: %s", tmpl_file, ei.msg);
        free(src);
    }
    struct eng_model_info mi;
    ck_assert_int_eq(eng_model_info(em, 0, &mi), 0);
    bool mistral = mi.chat.tool_syntax && !strcmp(mi.chat.tool_syntax, "mistral");
    char what[160];
    snprintf(what, sizeof what, "%s + %s (%s)", label, tmpl_file ? tmpl_file : "no template",
             mi.chat.tool_syntax ? mi.chat.tool_syntax : "?");
    struct eng_session *s = NULL;
    ck_assert_int_eq(eng_session_create(&s, em, 0, &ei), 0);
    json_t *tools = json_loads(k_tools, 0, NULL);
    int seeds = tutil_quick() >= 2 ? 4 : quick() ? 10 : 25, few = tutil_quick() >= 2 ? 2 : quick() ? 5 : 10;
    const char *env = getenv("LMPIPE_TOOL_SEEDS"); /* the measure: 100 */
    if (env && atoi(env) > 0) seeds = atoi(env), few = seeds / 5 > few ? seeds / 5 : few;
    run_mode(s, "\"required\"", NULL, seeds, tools, mistral, what);
    run_mode(s, "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}", "get_weather", few, tools,
             mistral, what);
    run_mode(s, "\"auto\"", NULL, few, tools, mistral, what);
    round_trip(s, tools, mistral, what);
    json_decref(tools);
    eng_session_free(s);
    eng_model_free(em);
}

/* stories260K with 4096 positions, written once per process. */
static char g_dir[512], g_story[600];

static const char *story_model(void)
{
    if (!g_story[0]) {
        ck_assert_int_eq(tutil_mkdtemp(g_dir, sizeof g_dir, "toolchat"), 0);
        snprintf(g_story, sizeof g_story, "%s/stories2k.gguf", g_dir);
        struct ftool_edit_opts o = {.n_ctx = 4096}; /* granite's prompt is 1750 tokens + 300 */
        struct err_info ei;
        err_clear(&ei);
        ck_assert_msg(ftool_edit(tutil_shared("models/stories260K-F32.gguf"), g_story, &o, &ei) == 0, "%s",
                      ei.msg);
    }
    return g_story;
}

START_TEST(stories_with_each_template)
{
    if (tutil_quick() >= 2 && _i % 5) return; /* LMPIPE_TEST_QUICK=2: none, DeepSeek-R1, Mistral */
    /* LMPIPE_TOOL_TEMPLATE=TEXT: only the templates whose file name contains TEXT ("none": none) */
    const char *only = getenv("LMPIPE_TOOL_TEMPLATE"), *name = k_templates[_i] ? k_templates[_i] : "none";
    if (only && *only && !strstr(name, only)) return;
    run_all(story_model(), k_templates[_i], "stories260K");
    tutil_rmtree(g_dir);
    g_story[0] = 0;
}
END_TEST

START_TEST(synth_models)
{
    if (tutil_quick() >= 2 && _i) return; /* LMPIPE_TEST_QUICK=2: llama only */
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", k_synth[_i]);
    run_all(tutil_shared(rel), NULL, k_synth[_i]);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("toolchat");
    TCase *tc = tcase_create("toolchat");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, stories_with_each_template, 0, (int)N_TEMPLATES);
    tcase_add_loop_test(tc, synth_models, 0, (int)(sizeof k_synth / sizeof k_synth[0]));
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
