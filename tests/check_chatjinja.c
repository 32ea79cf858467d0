/* check_chatjinja: chat through the model's own Jinja template, at eng's door, on a tiny
 * in-memory model (tests/gguf_builder.h) whose tokenizer.chat_template is set per test.
 *
 * What is asserted:
 *   - the template choice: the file's Jinja template when it parses (and its tool_use variant
 *     only for requests with tools), the built-in family detected from a template that does not
 *     parse (with the parse error, line:column, in the description), chatml when there is none,
 *     a named built-in on request, a caller's template replacing the file's; eng_file_info
 *     describes the same;
 *   - the end-of-turn text derived from each of the 10 shared templates, and none from
 *     templates that close a reply with nothing marker-like;
 *   - the 100 shared conversations rendered through eng_chat_render (variables, bos/eos,
 *     kwargs, fixes) are jinja2's text, the refusals llama.cpp cannot fix stay refusals with the
 *     template's message, and gemma-2's system prompt is folded as llama.cpp folds it;
 *   - each fix on its own: developer -> system, string/object arguments, content parts,
 *     parallel_tool_calls' default, a BOS the template writes is not added twice;
 *   - generation ends on the derived end-of-turn text when the vocabulary lacks the marker;
 *   - hostile templates (endless loops, recursion, memory and output bombs, a template that
 *     refuses everything) fail only the request: the model and session keep working;
 *   - SOURCE_DATE_EPOCH pins strftime_now; eng_template_render is the raw renderer;
 *   - the binary (LMPIPE_BIN): `info` and `chat` on a file whose template does not parse. */
#include "tutil.h"

#include "gguf_builder.h"

#include "eng/eng.h"

#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURE_NOW "1721988000" /* the shared fixtures' strftime_now: 2024-07-26T10:00:00Z */

/* ---------------- tiny models with a chat template ---------------- */

static char g_path[64];

/* Write the tiny llama model with tokenizer.chat_template = tmpl (NULL: none) and
 * tokenizer.chat_template.tool_use = tool_use (NULL: none) to g_path. */
static void write_model(const char *tmpl, const char *tool_use)
{
    struct gguf_builder b = {0};
    gb_init(&b);
    struct gb_llama_opts o = gb_llama_defaults();
    o.n_ctx = 2048; /* prompts here are byte tokens */
    gb_llama(&b, &o);
    if (tmpl) gb_kv_str(&b, "tokenizer.chat_template", tmpl);
    if (tool_use) gb_kv_str(&b, "tokenizer.chat_template.tool_use", tool_use);
    ck_assert_int_eq(gb_write_file(&b, g_path), 0);
    gb_free(&b);
}

static void setup(void)
{
    snprintf(g_path, sizeof g_path, "/tmp/lmpipe_chatjinja_%d.gguf", (int)getpid());
    setenv("SOURCE_DATE_EPOCH", FIXTURE_NOW, 1);
}

static void teardown(void) { unlink(g_path); }

static struct eng_model *open_with(const char *tmpl, const char *tool_use)
{
    write_model(tmpl, tool_use);
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em = NULL;
    ck_assert_msg(eng_model_open(&em, g_path, 1, &ei) == 0, "open: %s", ei.msg);
    return em;
}

static struct eng_chat_info chat_info(const struct eng_model *em)
{
    struct eng_model_info *mi = malloc(sizeof *mi);
    ck_assert_int_eq(eng_model_info(em, 0, mi), 0);
    struct eng_chat_info ci = mi->chat;
    free(mi);
    return ci;
}

static char *shared_template(const char *file)
{
    char rel[256];
    snprintf(rel, sizeof rel, "chat/jinja/%s", file);
    char *src = tutil_read(tutil_shared(rel), NULL);
    ck_assert_msg(src != NULL, "cannot read %s", rel);
    return src;
}

static void use_file(struct eng_model *em, const char *file)
{
    char *src = shared_template(file);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_model_set_chat_template(em, src, strlen(src), file, &ei) == 0, "%s: %s", file, ei.msg);
    free(src);
}

static json_t *req(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    ck_assert_msg(j != NULL, "test JSON: %s", e.text);
    return j;
}

/* Render request text with the model's default choice; rc, and the prompt in *pr. */
static int render(const struct eng_model *em, const char *request, struct eng_prompt *pr,
                  struct err_info *ei)
{
    json_t *r = req(request);
    err_clear(ei);
    int rc = eng_chat_render(em, r, NULL, pr, ei);
    json_decref(r);
    return rc;
}

#define CHATML_JINJA                                                                              \
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"  \
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
#define TOOLS_JINJA                                                                               \
    "TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}"                               \
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
#define USER_HI "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"
#define WITH_TOOL                                                                                 \
    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": "          \
    "\"function\", \"function\": {\"name\": \"get_time\", \"parameters\": {\"type\": "             \
    "\"object\"}}}]}"

/* ---------------- the template choice ---------------- */

START_TEST(choice_model_jinja_and_tool_use)
{
    struct eng_model *em = open_with(CHATML_JINJA, TOOLS_JINJA);
    struct eng_chat_info ci = chat_info(em);
    ck_assert_int_eq(ci.source, ENG_CHAT_MODEL);
    ck_assert(ci.jinja && ci.tool_use && ci.system_role);
    ck_assert_str_eq(ci.end_of_turn, "<|im_end|>");
    ck_assert_str_eq(ci.parse_error, "");
    struct eng_prompt pr;
    struct err_info ei;
    /* without tools: the default template; its BOS text is the vocabulary's "<s>" */
    ck_assert_int_eq(render(em, USER_HI, &pr, &ei), 0);
    ck_assert_str_eq(pr.text, "<s><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    ck_assert_str_eq(pr.tmpl, "tokenizer.chat_template");
    ck_assert(pr.jinja && pr.bos_in_text && !pr.fallback);
    ck_assert_uint_eq(pr.n_stops, 1);
    ck_assert_str_eq(pr.stops[0], "<|im_end|>");
    eng_prompt_free(&pr);
    /* with tools: the tool_use variant */
    ck_assert_int_eq(render(em, WITH_TOOL, &pr, &ei), 0);
    ck_assert_str_eq(pr.text, "TOOLS:get_time;[user]hi");
    ck_assert_str_eq(pr.tmpl, "tokenizer.chat_template.tool_use");
    ck_assert(!pr.bos_in_text);
    eng_prompt_free(&pr);
    /* an empty tools list is no tools */
    ck_assert_int_eq(render(em, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": []}",
                            &pr, &ei), 0);
    ck_assert_str_eq(pr.tmpl, "tokenizer.chat_template");
    eng_prompt_free(&pr);
    /* a named built-in still wins */
    struct eng_chat_opts co;
    eng_chat_opts_default(&co);
    co.kind = ENG_TMPL_BUILTIN;
    co.name = "llama2";
    json_t *r = req(USER_HI);
    ck_assert_int_eq(eng_chat_render(em, r, &co, &pr, &ei), 0);
    ck_assert_str_eq(pr.tmpl, "llama2");
    ck_assert_str_eq(pr.text, "[INST] hi [/INST]");
    ck_assert(!pr.jinja);
    eng_prompt_free(&pr);
    /* ... and refuses what it cannot write */
    json_decref(r);
    r = req(WITH_TOOL);
    ck_assert_int_eq(eng_chat_render(em, r, &co, &pr, &ei), ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(ei.msg, "cannot render tools"));
    json_decref(r);
    eng_model_free(em);
}
END_TEST

START_TEST(choice_unparseable_and_absent)
{
    /* Llama 3's markers in a template that does not parse: the built-in llama3, with why */
    const char *bad = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
                      "{{ m.content }}<|eot_id|>{% endfor";
    struct eng_model *em = open_with(bad, NULL);
    struct eng_chat_info ci = chat_info(em);
    ck_assert_int_eq(ci.source, ENG_CHAT_DETECTED);
    ck_assert(!ci.jinja && !ci.fallback);
    ck_assert_str_eq(ci.builtin, "llama3");
    ck_assert_msg(strstr(ci.parse_error, "line 3, column 35: ") != NULL, "%s", ci.parse_error);
    ck_assert_str_eq(ci.end_of_turn, "");
    struct eng_prompt pr;
    struct err_info ei;
    ck_assert_int_eq(render(em, USER_HI, &pr, &ei), 0);
    ck_assert_str_eq(pr.tmpl, "llama3");
    ck_assert_str_eq(pr.text, "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    eng_prompt_free(&pr);
    /* the file described without opening the model says the same */
    struct eng_model_info *mi = malloc(sizeof *mi);
    ck_assert_int_eq(eng_file_info(g_path, 0, mi, &ei), 0);
    ck_assert_int_eq(mi->chat.source, ENG_CHAT_DETECTED);
    ck_assert_str_eq(mi->chat.parse_error, ci.parse_error);
    ck_assert(mi->has_chat_template);
    /* a caller's template replaces it; a bad one leaves the model as it was */
    ck_assert_int_eq(eng_model_set_chat_template(em, "{{ x", 4, "bad.jinja", &ei), ERR_SYNTAX);
    ck_assert_ptr_nonnull(strstr(ei.msg, "line 1, column"));
    ck_assert_int_eq(chat_info(em).source, ENG_CHAT_DETECTED);
    err_clear(&ei);
    ck_assert_int_eq(eng_model_set_chat_template(em, CHATML_JINJA, strlen(CHATML_JINJA), "mine.jinja", &ei), 0);
    ci = chat_info(em);
    ck_assert_int_eq(ci.source, ENG_CHAT_FILE);
    ck_assert(ci.jinja);
    ck_assert_str_eq(ci.name, "mine.jinja");
    ck_assert_str_eq(ci.parse_error, "");
    ck_assert_int_eq(render(em, USER_HI, &pr, &ei), 0);
    ck_assert_str_eq(pr.tmpl, "mine.jinja");
    eng_prompt_free(&pr);
    eng_model_free(em);
    /* not recognised either: chatml, fallback */
    em = open_with("{% if %}", NULL);
    ci = chat_info(em);
    ck_assert_int_eq(ci.source, ENG_CHAT_DETECTED);
    ck_assert(ci.fallback);
    ck_assert_str_eq(ci.builtin, "chatml");
    eng_model_free(em);
    /* no template at all */
    em = open_with(NULL, NULL);
    ci = chat_info(em);
    ck_assert_int_eq(ci.source, ENG_CHAT_NONE);
    ck_assert(ci.fallback && !ci.jinja);
    ck_assert_str_eq(ci.builtin, "chatml");
    ck_assert_int_eq(eng_file_info(g_path, 0, mi, &ei), 0);
    ck_assert_int_eq(mi->chat.source, ENG_CHAT_NONE);
    free(mi);
    eng_model_free(em);
}
END_TEST

/* ---------------- end of turn ---------------- */

START_TEST(end_of_turn_shared_templates)
{
    static const struct {
        const char *file, *eot;
    } k[] = {
        {"Qwen-Qwen2.5-7B-Instruct.jinja", "<|im_end|>"},
        {"Qwen-Qwen3-0.6B.jinja", "<|im_end|>"},
        {"meta-llama-Llama-3.2-3B-Instruct.jinja", "<|eot_id|>"},
        {"HuggingFaceTB-SmolLM3-3B.jinja", "<|im_end|>"},
        {"microsoft-Phi-3.5-mini-instruct.jinja", "<|end|>"},
        {"google-gemma-2-2b-it.jinja", "<end_of_turn>"},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "<|im_end|>"}, /* needs tools */
        {"mistralai-Mistral-Nemo-Instruct-2407.jinja", "</s>"},              /* the eos_token */
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "<\xef\xbd\x9c" "end\xe2\x96\x81of"
                                                           "\xe2\x96\x81sentence\xef\xbd\x9c>"},
        {"ibm-granite-granite-3.3-2B-Instruct.jinja", "<|end_of_text|>"},
    };
    struct eng_model *em = open_with(NULL, NULL);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        use_file(em, k[i].file);
        struct eng_chat_info ci = chat_info(em);
        ck_assert_msg(!strcmp(ci.end_of_turn, k[i].eot), "%s: '%s', expected '%s'", k[i].file,
                      ci.end_of_turn, k[i].eot);
    }
    /* Llama 3's original template writes the next header right after the marker (the
     * vocabulary file keeps that template) */
    struct eng_model *vm;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_model_open_vocab(&vm, tutil_shared("vocab/ggml-vocab-llama-bpe.gguf"), &ei) == 0, "%s", ei.msg);
    ck_assert_str_eq(chat_info(vm).end_of_turn, "<|eot_id|>");
    eng_model_free(vm);
    /* nothing marker-like after the reply: no stop */
    static const char *const none[] = {
        "{% for m in messages %}{{ m.content }}\n{% endfor %}",       /* only whitespace */
        "{% for m in messages %}{{ m.content }} END\n{% endfor %}",   /* a word */
        "{% for m in messages %}{{ m.content }}.{% endfor %}",        /* one byte */
        "{{ raise_exception('never') }}",                             /* refuses everything */
        "{% for m in messages %}{{ m.content }}<{{ 'x' * 60 }}>{% endfor %}", /* too long */
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        ck_assert_int_eq(eng_model_set_chat_template(em, none[i], strlen(none[i]), NULL, NULL), 0);
        struct eng_chat_info ci = chat_info(em);
        ck_assert_msg(ci.end_of_turn[0] == 0, "%s: '%s'", none[i], ci.end_of_turn);
    }
    eng_model_free(em);
}
END_TEST

/* A scripted constraint: the text is exactly script (byte tokens of the tiny vocabulary, id =
 * 3 + byte), then EOS. */
struct script {
    int32_t toks[64];
    size_t n, i;
};

static int32_t script_next(const struct script *s) { return s->i < s->n ? s->toks[s->i] : 2; }
static int script_check(void *self, int32_t tok) { return tok == script_next(self); }
static int script_mask(void *self, uint64_t *bits)
{
    int32_t t = script_next(self);
    bits[t / 64] |= 1ull << (t % 64);
    return 0;
}
static int script_accept(void *self, int32_t tok)
{
    (void)tok;
    ((struct script *)self)->i++;
    return 0;
}
static const struct eng_constraint_ops k_script = {script_check, script_mask, script_accept, NULL,
                                                   NULL, NULL, NULL};

/* Chat USER_HI with the script "ok<|im_end|>more"; the text produced and the result. */
static void chat_script(struct eng_model *em, struct tutil_text *out, struct eng_gen_result *res)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_session *s;
    ck_assert_int_eq(eng_session_create(&s, em, 0, &ei), 0);
    struct script sc = {{0}, 0, 0};
    const char *text = "ok<|im_end|>more";
    for (const char *p = text; *p; p++) sc.toks[sc.n++] = 3 + (unsigned char)*p;
    struct eng_constraint c = {&k_script, &sc};
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.samp.temp = 0;
    p.max_tokens = 40;
    p.constraint = &c;
    memset(out, 0, sizeof *out);
    struct eng_sink sink = {tutil_text_add, NULL, out, NULL};
    json_t *r = req(USER_HI);
    ck_assert_msg(eng_chat(s, r, NULL, &p, &sink, res, &ei) == 0, "%s", ei.msg);
    json_decref(r);
    eng_session_free(s);
}

START_TEST(end_of_turn_stops_generation)
{
    /* the tiny vocabulary has no <|im_end|> token: only the derived text stop can end it */
    struct eng_model *em = open_with(NULL, NULL);
    use_file(em, "Qwen-Qwen2.5-7B-Instruct.jinja");
    struct tutil_text t;
    struct eng_gen_result res;
    chat_script(em, &t, &res);
    ck_assert_str_eq(t.buf, "ok");
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    /* a template without an end-of-turn text: the same script runs to its end */
    const char *plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
    ck_assert_int_eq(eng_model_set_chat_template(em, plain, strlen(plain), NULL, NULL), 0);
    chat_script(em, &t, &res);
    ck_assert_str_eq(t.buf, "ok<|im_end|>more");
    eng_model_free(em);
}
END_TEST

START_TEST(bos_written_once)
{
    /* the template writes {{ bos_token }}: the prompt has one BOS, not two */
    struct eng_model *em = open_with(CHATML_JINJA, NULL);
    struct eng_prompt pr;
    struct err_info ei;
    ck_assert_int_eq(render(em, USER_HI, &pr, &ei), 0);
    ck_assert(pr.bos_in_text);
    int32_t toks[256];
    size_t n = 0;
    ck_assert_int_eq(eng_tokenize(em, pr.text, pr.len, false, true, toks, 256, &n, &ei), 0);
    ck_assert_int_eq(toks[0], 1);
    ck_assert_int_ne(toks[1], 1);
    struct eng_session *s;
    ck_assert_int_eq(eng_session_create(&s, em, 0, &ei), 0);
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.max_tokens = 1;
    struct eng_gen_result res;
    json_t *r = req(USER_HI);
    ck_assert_int_eq(eng_chat(s, r, NULL, &p, NULL, &res, &ei), 0);
    ck_assert_uint_eq(res.prompt_tokens, n);
    json_decref(r);
    eng_prompt_free(&pr);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

/* ---------------- the shared conversations through eng ---------------- */

/* The case as a chat request: its messages, tools, add_generation_prompt, and the fixture's
 * bos/eos as chat_template_kwargs (they win over the tiny vocabulary's). */
static json_t *case_request(json_t *cs, json_t *kwargs)
{
    json_t *r = json_pack("{s:O,s:O,s:O}", "messages", json_object_get(cs, "messages"),
                          "add_generation_prompt", json_object_get(cs, "add_generation_prompt"),
                          "chat_template_kwargs", kwargs);
    if (json_object_get(cs, "tools")) json_object_set(r, "tools", json_object_get(cs, "tools"));
    return r;
}

/* gemma-2 with its system message folded by hand, through the raw renderer (no fixes). */
static char *folded_by_hand(const char *src, json_t *request)
{
    json_t *r = json_deep_copy(request), *m = json_object_get(r, "messages");
    json_t *kw = json_object_get(r, "chat_template_kwargs");
    json_object_update(r, kw);
    json_object_del(r, "chat_template_kwargs");
    char joined[4096];
    snprintf(joined, sizeof joined, "%s\n%s", json_string_value(json_object_get(json_array_get(m, 0), "content")),
             json_string_value(json_object_get(json_array_get(m, 1), "content")));
    json_object_set_new(json_array_get(m, 1), "content", json_string(joined));
    json_array_remove(m, 0);
    char *text = json_dumps(r, 0), *out = NULL;
    struct eng_template *t;
    size_t n;
    ck_assert_int_eq(eng_template_parse(src, strlen(src), &t, NULL), 0);
    ck_assert_int_eq(eng_template_render(t, text, strlen(text), &out, &n, NULL), 0);
    eng_template_free(t);
    free(text);
    json_decref(r);
    return out;
}

START_TEST(shared_cases_through_eng)
{
    json_error_t je;
    json_t *fx = json_load_file(tutil_shared("chat/jinja/expected.json"), 0, &je);
    ck_assert_msg(fx != NULL, "expected.json: %s", je.text);
    struct eng_model *em = open_with(NULL, NULL);
    const char *name;
    json_t *tj;
    int n_ok = 0, n_refused = 0, n_folded = 0, bad = 0;
    json_object_foreach(json_object_get(fx, "templates"), name, tj) {
        const char *file = json_string_value(json_object_get(tj, "file"));
        use_file(em, file);
        char *src = shared_template(file);
        json_t *cases = json_object_get(tj, "cases");
        for (size_t i = 0; i < json_array_size(cases); i++) {
            json_t *cs = json_array_get(cases, i), *r = case_request(cs, json_object_get(tj, "kwargs"));
            const char *cname = json_string_value(json_object_get(cs, "name"));
            const char *want_err = json_string_value(json_object_get(cs, "error"));
            struct eng_prompt pr;
            struct err_info ei;
            err_clear(&ei);
            int rc = eng_chat_render(em, r, NULL, &pr, &ei);
            char what[256];
            snprintf(what, sizeof what, "%s/%s", name, cname);
            if (!want_err) {
                const char *want = json_string_value(json_object_get(cs, "expected"));
                ck_assert_msg(rc == 0, "%s: %s", what, ei.msg);
                bad += tutil_diff_report(what, pr.text, pr.len, want, strlen(want));
                n_ok++;
            } else if (strstr(want_err, "System role not supported") && rc == 0) {
                /* llama.cpp's fix: the system message folded into the first user message */
                char *want = folded_by_hand(src, r);
                bad += tutil_diff_report(what, pr.text, pr.len, want, strlen(want));
                free(want);
                n_folded++;
            } else {
                ck_assert_msg(rc == ERR_TEMPLATE, "%s: rc %d, expected a refusal", what, rc);
                /* the fold can only leave a refusal about the roles' order */
                const char *says = strstr(want_err, "System role") ? "TemplateError: Conversation roles must alternate"
                                                                    : want_err;
                ck_assert_msg(strncmp(ei.msg, says, strlen(says)) == 0, "%s: '%s'", what, ei.msg);
                n_refused++;
            }
            if (rc == 0) eng_prompt_free(&pr);
            json_decref(r);
        }
        free(src);
    }
    printf("chat/jinja through eng: %d rendered as jinja2, %d folded as llama.cpp, %d refused, "
           "%d mismatches\n", n_ok, n_folded, n_refused, bad);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(n_ok, 88);
    ck_assert_int_eq(n_folded, 3);
    ck_assert_int_eq(n_refused, 9);
    json_decref(fx);
    eng_model_free(em);
}
END_TEST

/* ---------------- each fix ---------------- */

/* Render request on em and compare with want ("!" + text: a refusal containing text). */
static void expect_render(const struct eng_model *em, const char *request, const char *want)
{
    struct eng_prompt pr;
    struct err_info ei;
    int rc = render(em, request, &pr, &ei);
    if (want[0] == '!') {
        ck_assert_msg(rc == ERR_TEMPLATE, "%s: rc %d", request, rc);
        ck_assert_msg(strstr(ei.msg, want + 1) != NULL, "%s: '%s'", request, ei.msg);
        return;
    }
    ck_assert_msg(rc == 0, "%s: %s", request, ei.msg);
    ck_assert_msg(!strcmp(pr.text, want), "%s:\n got  '%s'\n want '%s'", request, pr.text, want);
    eng_prompt_free(&pr);
}

START_TEST(fixes_one_by_one)
{
    struct eng_model *em = open_with(NULL, NULL);
    /* developer -> system; content parts joined for a template that prints content as text */
    const char *roles = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}";
    ck_assert_int_eq(eng_model_set_chat_template(em, roles, strlen(roles), NULL, NULL), 0);
    expect_render(em, "{\"messages\": [{\"role\": \"developer\", \"content\": \"d\"}, {\"role\": \"user\", "
                      "\"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}]}",
                  "[system:d][user:a\nb]");
    /* ... but not for GPT-OSS-style templates, which know the developer role */
    const char *oss = "{% for m in messages %}<|start|>{{ m.role }}<|channel|>{{ m.content }}{% endfor %}";
    ck_assert_int_eq(eng_model_set_chat_template(em, oss, strlen(oss), NULL, NULL), 0);
    expect_render(em, "{\"messages\": [{\"role\": \"developer\", \"content\": \"d\"}]}",
                  "<|start|>developer<|channel|>d");
    /* a template that takes only parts gets parts */
    const char *parts = "{% for m in messages %}{% for p in m.content %}{{ p.text }}|{% endfor %}{% endfor %}";
    ck_assert_int_eq(eng_model_set_chat_template(em, parts, strlen(parts), NULL, NULL), 0);
    expect_render(em, USER_HI, "hi|");
    /* tool-call arguments: objects for a template that renders objects, strings otherwise;
     * either form in the request */
    const char *obj = "{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.name }}("
                      "{% for k, v in c.function.arguments.items() %}{{ k }}={{ v }}{% endfor %})"
                      "{% endfor %}{% endfor %}";
    const char *str = "{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.name }}"
                      "({{ c.function.arguments }}){% if c.function.arguments is mapping %}"
                      "{{ raise_exception('objects refused') }}{% endif %}{% endfor %}{% endfor %}";
#define CALL_ARGS(a)                                                                              \
    "{\"messages\": [{\"role\": \"user\", \"content\": \"w\"}, {\"role\": \"assistant\", "        \
    "\"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"get\", " \
    "\"arguments\": " a "}}]}]}"
    ck_assert_int_eq(eng_model_set_chat_template(em, obj, strlen(obj), NULL, NULL), 0);
    ck_assert(chat_info(em).object_arguments);
    expect_render(em, CALL_ARGS("{\"city\": \"Paris\"}"), "get(city=Paris)");
    expect_render(em, CALL_ARGS("\"{\\\"city\\\": \\\"Paris\\\"}\""), "get(city=Paris)");
    ck_assert_int_eq(eng_model_set_chat_template(em, str, strlen(str), NULL, NULL), 0);
    ck_assert(chat_info(em).tool_calls && !chat_info(em).object_arguments);
    expect_render(em, CALL_ARGS("{\"city\": \"Paris\"}"), "get({\"city\": \"Paris\"})");
    expect_render(em, CALL_ARGS("\"{\\\"city\\\":\\\"Paris\\\"}\""), "get({\"city\":\"Paris\"})");
    /* content "" on tool-call messages for templates that concatenate it */
    const char *concat = "{% for m in messages %}{{ m.role + ':' + m.content }}{% if m.tool_calls %}"
                         "{{ m.tool_calls[0].function.name }}{% endif %};{% endfor %}";
    ck_assert_int_eq(eng_model_set_chat_template(em, concat, strlen(concat), NULL, NULL), 0);
    expect_render(em, CALL_ARGS("{}"), "user:w;assistant:get;");
    /* gemma-2: the system prompt folded in; alternation still refused with its message */
    use_file(em, "google-gemma-2-2b-it.jinja");
    ck_assert(!chat_info(em).system_role);
    expect_render(em, "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"}, "
                      "{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"}]}",
                  "<s><start_of_turn>user\nYou are a helpful assistant.\nWhat is the weather in Paris?"
                  "<end_of_turn>\n<start_of_turn>model\n");
    /* ... also from the developer role and with the user's text in parts */
    expect_render(em, "{\"messages\": [{\"role\": \"developer\", \"content\": \"S\"}, {\"role\": \"user\", "
                      "\"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}]}",
                  "<s><start_of_turn>user\nS\na\nb<end_of_turn>\n<start_of_turn>model\n");
    /* a system message alone is dropped (as llama.cpp does): gemma then has no message 0 */
    expect_render(em, "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}]}",
                  "!UndefinedError: 'list object' has no element 0");
    expect_render(em, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", "
                      "\"content\": \"b\"}]}", "!TemplateError: Conversation roles must alternate");
    /* Llama 3.2: one call at a time, and parallel_tool_calls defaults to what it renders */
    use_file(em, "meta-llama-Llama-3.2-3B-Instruct.jinja");
    struct eng_chat_info ci = chat_info(em);
    ck_assert(ci.tool_calls && !ci.parallel_calls);
    struct eng_prompt pr;
    struct err_info ei;
    ck_assert_int_eq(render(em, USER_HI, &pr, &ei), 0);
    ck_assert(!pr.parallel_tool_calls);
    eng_prompt_free(&pr);
    ck_assert_int_eq(render(em, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
                                "\"parallel_tool_calls\": true}", &pr, &ei), 0);
    ck_assert(pr.parallel_tool_calls);
    eng_prompt_free(&pr);
    expect_render(em, "{\"messages\": [{\"role\": \"user\", \"content\": \"w\"}, {\"role\": \"assistant\", "
                      "\"tool_calls\": [{\"function\": {\"name\": \"a\", \"arguments\": {}}}, "
                      "{\"function\": {\"name\": \"b\", \"arguments\": {}}}]}]}",
                  "!This model only supports single tool-calls at once!");
    use_file(em, "Qwen-Qwen2.5-7B-Instruct.jinja");
    ck_assert(chat_info(em).parallel_calls);
    ck_assert_int_eq(render(em, USER_HI, &pr, &ei), 0);
    ck_assert(pr.parallel_tool_calls);
    eng_prompt_free(&pr);
    /* chat_template_kwargs reach the template and win over eos_token */
    const char *kw = "{{ eos_token }}|{{ flavour }}|{{ add_generation_prompt }}";
    ck_assert_int_eq(eng_model_set_chat_template(em, kw, strlen(kw), NULL, NULL), 0);
    expect_render(em, "{\"messages\": [{\"role\": \"user\", \"content\": \"w\"}], \"add_generation_prompt\": false, "
                      "\"chat_template_kwargs\": {\"flavour\": \"mint\", \"eos_token\": \"E\"}}",
                  "E|mint|False");
    expect_render(em, USER_HI, "</s>||True");
    eng_model_free(em);
}
END_TEST

START_TEST(clock_pinned)
{
    struct eng_model *em = open_with("{{ strftime_now('%d %b %Y %H:%M') }}", NULL);
    expect_render(em, USER_HI, "26 Jul 2024 10:00");
    setenv("SOURCE_DATE_EPOCH", "0", 1);
    expect_render(em, USER_HI, "01 Jan 1970 00:00");
    eng_model_free(em);
}
END_TEST

/* ---------------- untrusted templates ---------------- */

START_TEST(hostile_templates)
{
    static const struct {
        const char *src, *says;
    } k[] = {
        {"{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}", "StepLimit"},
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "RecursionError"},
        {"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
         "{{ ns.s }}", "MemoryError"},
        {"{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "Limit"},
        {"{{ raise_exception('I refuse') }}", "TemplateError: I refuse"},
        {"{{ messages[99].content }}", "UndefinedError"},
        {"{{ messages.foo.bar }}", "UndefinedError"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        struct eng_model *em = open_with(k[i].src, NULL);
        ck_assert_msg(chat_info(em).jinja, "%s does parse", k[i].src);
        struct err_info ei;
        err_clear(&ei);
        struct eng_session *s;
        ck_assert_int_eq(eng_session_create(&s, em, 0, &ei), 0);
        struct eng_gen_params p;
        eng_gen_params_default(&p);
        p.max_tokens = 3;
        struct eng_gen_result res;
        json_t *r = req(USER_HI);
        ck_assert_int_eq(eng_chat(s, r, NULL, &p, NULL, &res, &ei), ERR_TEMPLATE);
        ck_assert_msg(strstr(ei.msg, k[i].says) != NULL, "%s: '%s'", k[i].src, ei.msg);
        ck_assert_int_eq(res.finish, ENG_FINISH_ERROR);
        /* only that request failed: the session generates, a built-in template chats */
        err_clear(&ei);
        ck_assert_int_eq(eng_generate(s, "hello", 5, &p, NULL, &res, &ei), 0);
        ck_assert_uint_eq(res.completion_tokens, 3);
        struct eng_chat_opts co;
        eng_chat_opts_default(&co);
        co.kind = ENG_TMPL_BUILTIN;
        co.name = "chatml";
        ck_assert_int_eq(eng_chat(s, r, &co, &p, NULL, &res, &ei), 0);
        json_decref(r);
        eng_session_free(s);
        eng_model_free(em);
    }
}
END_TEST

/* ---------------- the raw renderer ---------------- */

START_TEST(raw_render)
{
    const char *src = "{{ bos_token }}{{ extra }}{% for m in messages %}{{ m.content }}{% endfor %}"
                      "{{ add_generation_prompt }}";
    struct eng_template *t;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(eng_template_parse(src, strlen(src), &t, &ei), 0);
    char *out;
    size_t n;
    const char *r = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"bos_token\": \"B\", \"extra\": 7}";
    ck_assert_int_eq(eng_template_render(t, r, strlen(r), &out, &n, &ei), 0);
    ck_assert_str_eq(out, "B7aFalse"); /* add_generation_prompt defaults to false, as transformers */
    ck_assert_uint_eq(n, 8);
    free(out);
    r = "{\"messages\": [}";
    ck_assert_int_eq(eng_template_render(t, r, strlen(r), &out, &n, &ei), ERR_INVALID);
    ck_assert_msg(strstr(ei.msg, "line 1, column") != NULL, "%s", ei.msg);
    err_clear(&ei);
    r = "{\"tools\": []}";
    ck_assert_int_eq(eng_template_render(t, r, strlen(r), &out, &n, &ei), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(ei.msg, "messages"));
    eng_template_free(t);
    /* no fixes: gemma-2 refuses a system message here */
    char *g = shared_template("google-gemma-2-2b-it.jinja");
    ck_assert_int_eq(eng_template_parse(g, strlen(g), &t, NULL), 0);
    r = "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}]}";
    err_clear(&ei);
    ck_assert_int_eq(eng_template_render(t, r, strlen(r), &out, &n, &ei), ERR_TEMPLATE);
    ck_assert_ptr_nonnull(strstr(ei.msg, "System role not supported"));
    eng_template_free(t);
    eng_template_free(NULL);
    free(g);
    /* a template that does not parse says where */
    err_clear(&ei);
    ck_assert_int_eq(eng_template_parse("a\n{% for %}", 11, &t, &ei), ERR_SYNTAX);
    ck_assert_ptr_nonnull(strstr(ei.msg, "line 2, column"));
    ck_assert_ptr_null(t);
}
END_TEST

/* ---------------- the binary on a file whose template does not parse ---------------- */

/* Run `$LMPIPE_BIN args` with stdin from in_text; stdout+stderr into out; the exit status. */
static int run_bin(const char *args, const char *in_text, char *out, size_t cap)
{
    const char *bin = getenv("LMPIPE_BIN");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "printf '%s' | '%s' %s 2>&1", in_text, bin && *bin ? bin : "./lmpipe", args);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(binary_fallback_warning)
{
    write_model("{{ x }}<|start_header_id|><|end_header_id|>{% endif %}", NULL);
    char out[16384], args[256];
    snprintf(args, sizeof args, "info %s", g_path);
    ck_assert_int_eq(run_bin(args, "", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "chat renders with      built-in llama3: the model's template does not "
                              "parse as Jinja (line 1, column 47: encountered unknown tag 'endif')") != NULL, "%s", out);
    snprintf(args, sizeof args, "chat -m %s -n 2 --temp 0", g_path);
    ck_assert_int_eq(run_bin(args, "hi\\n", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "the model's chat template does not parse as Jinja (line 1, column 47") != NULL,
                  "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "using the built-in 'llama3'"));
    /* run stays raw completion without a chat option: no template, no warning */
    snprintf(args, sizeof args, "run -m %s -p hi -n 2 --temp 0", g_path);
    ck_assert_int_eq(run_bin(args, "", out, sizeof out), 0);
    ck_assert_ptr_null(strstr(out, "does not parse"));
    snprintf(args, sizeof args, "run -m %s -p hi -n 2 --temp 0 --chat", g_path);
    ck_assert_int_eq(run_bin(args, "", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "does not parse as Jinja"));
    /* a template that parses: info says jinja and its end of turn */
    write_model(CHATML_JINJA, NULL);
    snprintf(args, sizeof args, "info %s", g_path);
    ck_assert_int_eq(run_bin(args, "", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "chat renders with      jinja: the model's tokenizer.chat_template; "
                              "end of turn \"<|im_end|>\"") != NULL, "%s", out);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("chatjinja");
    TCase *tc = tcase_create("eng");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, choice_model_jinja_and_tool_use);
    tcase_add_test(tc, choice_unparseable_and_absent);
    tcase_add_test(tc, end_of_turn_shared_templates);
    tcase_add_test(tc, end_of_turn_stops_generation);
    tcase_add_test(tc, bos_written_once);
    tcase_add_test(tc, shared_cases_through_eng);
    tcase_add_test(tc, fixes_one_by_one);
    tcase_add_test(tc, clock_pinned);
    tcase_add_test(tc, hostile_templates);
    tcase_add_test(tc, raw_render);
    tcase_add_test(tc, binary_fallback_warning);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
