/* check_tools: tool calling's pure parts (src/eng/eng_tools.h).
 *
 *   - tools and tool_choice: what is accepted, and each bad definition refused with its reason;
 *     call ids unique and of the right shape;
 *   - syntax: every shared template (../shared/chat/jinja, read at test time) detected as its
 *     family; the syntax derived by rendering agrees with the family's for the templates that
 *     show calls, and is refused for those that do not; a call written in the family's syntax
 *     appears verbatim in what the real template renders for the same conversation;
 *   - grammar and parser, for every family, with the agent tool schemas of tests/data/schemas:
 *     the grammar accepts the calls written by eng_tsyn_render with the schemas' valid
 *     instances, and the parser gives those calls back; random walks through the grammar give
 *     texts the parser turns into calls of declared tools whose arguments validate (tests/jsval.h,
 *     independent of the converter); feeding byte by byte gives what feeding at once does;
 *   - bad inputs: texts that leave the syntax are refused with their byte offset, never
 *     crash. */
#include "tutil.h"

#include "eng/eng_tools.h"
#include "gram/gram.h"
#include "tmpl/tmpl.h"

#include "gram_walk.h"
#include "jsval.h"

#include <jansson.h>

/* ---------------- helpers ---------------- */

static json_t *schema_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "tests/data/schemas/%s.json", name);
    json_error_t je;
    json_t *d = json_load_file(path, 0, &je);
    ck_assert_msg(d != NULL, "%s: %s", path, je.text);
    return d;
}

/* OpenAI tools from schema files (name, description, schema). */
static json_t *tools_of(const char *const *names, size_t n)
{
    json_t *tools = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *d = schema_file(names[i]);
        json_array_append_new(tools, json_pack("{s:s,s:{s:O,s:O,s:O}}", "type", "function", "function",
                                               "name", json_object_get(d, "name"), "description",
                                               json_object_get(d, "description"), "parameters",
                                               json_object_get(d, "schema")));
        json_decref(d);
    }
    return tools;
}

static void parse_tools(const json_t *tools, struct eng_toolset *ts)
{
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_toolset_parse(tools, ts, &ei) == 0, "%s", ei.msg);
}

static int tools_err(const char *json, char *msg, size_t cap)
{
    json_error_t je;
    json_t *t = json_loads(json, 0, &je);
    ck_assert_msg(t != NULL, "%s", je.text);
    struct eng_toolset ts;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_toolset_parse(t, &ts, &ei);
    snprintf(msg, cap, "%s", ei.msg);
    eng_toolset_free(&ts);
    json_decref(t);
    return rc;
}

/* The calls a parser reports. */
struct calls {
    size_t n;
    int tool[ENG_TOOL_CALLS_MAX + 1];
    char name[ENG_TOOL_CALLS_MAX + 1][ENG_TOOL_NAME_MAX + 1];
    struct eng_sb args[ENG_TOOL_CALLS_MAX + 1];
    bool ended[ENG_TOOL_CALLS_MAX + 1];
    char log[8192]; /* the events in order, for chunking comparisons */
    size_t log_len;
};

static void log_add(struct calls *c, const char *s, size_t n)
{
    if (c->log_len + n < sizeof c->log) {
        memcpy(c->log + c->log_len, s, n);
        c->log_len += n;
    }
}

static int on_ev(void *ud, const struct eng_tev *ev)
{
    struct calls *c = ud;
    ck_assert_uint_le(ev->index, ENG_TOOL_CALLS_MAX);
    if (ev->kind == ENG_TEV_BEGIN) {
        ck_assert_uint_eq(ev->index, c->n);
        c->tool[c->n] = ev->tool;
        snprintf(c->name[c->n], sizeof c->name[0], "%.*s", (int)ev->len, ev->text);
        c->n++;
        log_add(c, "B", 1);
    } else if (ev->kind == ENG_TEV_ARGS) {
        ck_assert_uint_eq(ev->index + 1, c->n);
        ck_assert(!c->ended[ev->index]);
        eng_sb_add(&c->args[ev->index], ev->text, ev->len);
        log_add(c, ev->text, ev->len);
    } else {
        ck_assert_uint_eq(ev->index + 1, c->n);
        c->ended[ev->index] = true;
        log_add(c, "E", 1);
    }
    return 0;
}

static void calls_free(struct calls *c)
{
    for (size_t i = 0; i <= ENG_TOOL_CALLS_MAX; i++) eng_sb_free(&c->args[i]);
}

/* Parse text[0..n) fed in chunks of `chunk` bytes (0: at once). */
static int parse_text(const struct eng_tsyn *s, const struct eng_toolset *ts, const char *text,
                      size_t n, size_t chunk, struct calls *c, struct err_info *ei)
{
    memset(c, 0, sizeof *c);
    struct eng_tparse p;
    eng_tparse_init(&p, s, ts, on_ev, c);
    int rc = 0;
    for (size_t off = 0; off < n && !rc;) {
        size_t k = chunk && n - off > chunk ? chunk : n - off;
        rc = eng_tparse_feed(&p, text + off, k, ei);
        off += k;
    }
    return rc ? rc : eng_tparse_finish(&p, ei);
}

static struct gram *grammar(const struct eng_tsyn *s, const struct eng_toolset *ts,
                            const struct eng_tgram_opts *o)
{
    char *g = NULL;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_tools_gbnf(s, ts, o, &g, NULL, &ei) == 0, "%s: %s", eng_tfam_name(s->family), ei.msg);
    struct gram *gr = NULL;
    err_clear(&ei);
    int rc = gram_parse(g, strlen(g), &gr, &ei);
    if (rc) fprintf(stderr, "%s\n", g);
    ck_assert_msg(rc == 0, "%s: grammar does not parse: %s", eng_tfam_name(s->family), ei.msg);
    free(g);
    return gr;
}

static const char *const agent_tools[] = {"exec", "weather", "read_file", "web_search",
                                          "calendar_event", "sql_query", "nested_config"};
#define N_AGENT (sizeof agent_tools / sizeof agent_tools[0])

static const int families[] = {ENG_TF_GENERIC,     ENG_TF_HERMES,      ENG_TF_GRANITE,
                               ENG_TF_LLAMA3,      ENG_TF_MISTRAL,     ENG_TF_QWEN3_CODER,
                               ENG_TF_FUNCTIONARY, ENG_TF_PYTHONIC,    ENG_TF_DEEPSEEK_R1};
#define N_FAM (sizeof families / sizeof families[0])

/* ---------------- tools, choice, ids ---------------- */

START_TEST(test_toolset_ok)
{
    json_t *tools = tools_of(agent_tools, N_AGENT);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    ck_assert_uint_eq(ts.n, N_AGENT);
    ck_assert_int_eq(eng_toolset_find(&ts, "weather", 7), 1);
    ck_assert_int_eq(eng_toolset_find(&ts, "weathe", 6), -1);
    eng_toolset_free(&ts);
    json_decref(tools);
    /* absent parameters: no arguments; a schema without "type" gets "object" */
    json_t *t = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"now\"}},"
                           "{\"type\":\"function\",\"function\":{\"name\":\"a-b_9\",\"parameters\":"
                           "{\"properties\":{\"x\":{\"type\":\"integer\"}}}}}]",
                           0, NULL);
    parse_tools(t, &ts);
    ck_assert_str_eq(json_string_value(json_object_get(ts.t[0].params, "type")), "object");
    ck_assert_str_eq(json_string_value(json_object_get(ts.t[1].params, "type")), "object");
    /* the request's object is not changed */
    ck_assert_ptr_null(json_object_get(json_object_get(json_object_get(json_array_get(t, 1), "function"),
                                                       "parameters"), "type"));
    eng_toolset_free(&ts);
    eng_toolset_free(&ts); /* twice: safe */
    json_decref(t);
    parse_tools(NULL, &ts);
    ck_assert_uint_eq(ts.n, 0);
}
END_TEST

/* Bad tool definitions: each refused with ERR_INVALID and a message naming the problem. */
START_TEST(test_toolset_bad)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{}", "must be an array"},
        {"[1]", "tools[0] must be"},
        {"[{\"type\":\"code\",\"function\":{\"name\":\"x\"}}]", "tools[0] must be"},
        {"[{\"type\":\"function\"}]", "tools[0] must be"},
        {"[{\"type\":\"function\",\"function\":{}}]", "name must be a string"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"\"}}]", "must be 1 to 64"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]", "'a b' must be 1 to 64"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a.b\"}}]", "must be 1 to 64"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}]",
         "must be 1 to 64"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"x\"}},{\"type\":\"function\",\"function\":{\"name\":\"x\"}}]",
         "tools[1]: the name 'x' is declared twice"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"x\",\"parameters\":[]}}]", "must be a JSON Schema object"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"x\",\"parameters\":{\"type\":\"string\"}}}]",
         "must be an object schema"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"x\",\"parameters\":true}}]", "must be a JSON Schema object"},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"x\",\"description\":5}}]", "'description' must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[ERR_MSG_MAX];
        int rc = tools_err(bad[i].json, msg, sizeof msg);
        ck_assert_msg(rc == ERR_INVALID, "case %zu: rc %d", i, rc);
        ck_assert_msg(strstr(msg, bad[i].want), "case %zu: '%s' lacks '%s'", i, msg, bad[i].want);
    }
    /* more than ENG_TOOLS_MAX */
    json_t *many = json_array();
    for (int i = 0; i <= ENG_TOOLS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        json_array_append_new(many, json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
    }
    struct eng_toolset ts;
    ck_assert_int_eq(eng_toolset_parse(many, &ts, NULL), ERR_INVALID);
    json_decref(many);
}
END_TEST

START_TEST(test_tool_choice)
{
    json_t *tools = tools_of(agent_tools, 2);
    struct eng_toolset ts, none = {0};
    parse_tools(tools, &ts);
    int c, k;
    struct err_info ei;
    ck_assert_int_eq(eng_tool_choice_parse(NULL, &ts, &c, &k, NULL), 0);
    ck_assert_int_eq(c, ENG_TC_AUTO);
    ck_assert_int_eq(eng_tool_choice_parse(NULL, &none, &c, &k, NULL), 0);
    ck_assert_int_eq(c, ENG_TC_NONE);
    static const struct {
        const char *json;
        int rc, choice, named;
    } cases[] = {
        {"\"none\"", 0, ENG_TC_NONE, -1},
        {"\"auto\"", 0, ENG_TC_AUTO, -1},
        {"\"required\"", 0, ENG_TC_REQUIRED, -1},
        {"{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}", 0, ENG_TC_NAMED, 1},
        {"{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}", ERR_INVALID, 0, 0},
        {"{\"type\":\"function\"}", ERR_INVALID, 0, 0},
        {"\"any\"", ERR_INVALID, 0, 0},
        {"3", ERR_INVALID, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        err_clear(&ei);
        int rc = eng_tool_choice_parse(j, &ts, &c, &k, &ei);
        ck_assert_msg(rc == cases[i].rc, "case %zu: %d (%s)", i, rc, ei.msg);
        if (!rc) {
            ck_assert_int_eq(c, cases[i].choice);
            ck_assert_int_eq(k, cases[i].named);
        } else {
            ck_assert(strstr(ei.msg, "tool_choice"));
        }
        json_decref(j);
    }
    json_t *req = json_string("required");
    ck_assert_int_eq(eng_tool_choice_parse(req, &none, &c, &k, NULL), ERR_INVALID);
    json_decref(req);
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

START_TEST(test_ids)
{
    enum { N = 20000 };
    static char ids[2][N][32];
    for (int style = 0; style < 2; style++) {
        for (int i = 0; i < N; i++) eng_tool_call_id(style, ids[style][i]);
        for (int i = 0; i < N; i++) {
            const char *id = ids[style][i];
            if (style == ENG_TID_ALNUM9) {
                ck_assert_uint_eq(strlen(id), 9);
                for (int k = 0; k < 9; k++)
                    ck_assert_msg((id[k] >= 'a' && id[k] <= 'z') || (id[k] >= 'A' && id[k] <= 'Z') ||
                                      (id[k] >= '0' && id[k] <= '9'), "%s", id);
            } else {
                ck_assert_uint_eq(strlen(id), 29);
                ck_assert(!strncmp(id, "call_", 5));
            }
        }
        qsort(ids[style], N, 32, cmp_str);
        for (int i = 1; i < N; i++) ck_assert_str_ne(ids[style][i - 1], ids[style][i]);
    }
}
END_TEST

/* ---------------- syntax vs the real templates ---------------- */

static const struct {
    const char *file;
    int family;  /* what the markers say */
    int derived; /* what rendering says: a family whose literals it must match, or -1 */
} shared_tmpls[] = {
    {"HuggingFaceTB-SmolLM3-3B.jinja", ENG_TF_DERIVED, -1},
    {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", ENG_TF_HERMES, ENG_TF_HERMES},
    {"Qwen-Qwen2.5-7B-Instruct.jinja", ENG_TF_HERMES, ENG_TF_HERMES},
    {"Qwen-Qwen3-0.6B.jinja", ENG_TF_HERMES, ENG_TF_HERMES},
    {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", ENG_TF_DEEPSEEK_R1, ENG_TF_DEEPSEEK_R1},
    {"google-gemma-2-2b-it.jinja", ENG_TF_DERIVED, -1},
    {"ibm-granite-granite-3.3-2B-Instruct.jinja", ENG_TF_GRANITE, -1},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", ENG_TF_LLAMA3, ENG_TF_LLAMA3},
    {"microsoft-Phi-3.5-mini-instruct.jinja", ENG_TF_DERIVED, -1},
    {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ENG_TF_MISTRAL, -1}, /* ids in the call text */
};
#define N_SHARED (sizeof shared_tmpls / sizeof shared_tmpls[0])

static struct tmpl *load_tmpl(const char *file, char **src_out, size_t *len_out)
{
    char rel[256];
    snprintf(rel, sizeof rel, "chat/jinja/%s", file);
    size_t len;
    char *src = tutil_read(tutil_shared(rel), &len);
    ck_assert_msg(src != NULL, "cannot read %s", tutil_shared(rel));
    struct tmpl *t = NULL;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(tmpl_parse(src, len, &t, &ei) == 0, "%s: %s", file, ei.msg);
    if (src_out) *src_out = src, *len_out = len;
    else free(src);
    return t;
}

static const struct tmpl_req_opts probe_ro = {.bos_token = "<s>", .eos_token = "</s>"};

START_TEST(test_detect_and_derive)
{
    for (size_t i = 0; i < N_SHARED; i++) {
        char *src;
        size_t len;
        struct tmpl *t = load_tmpl(shared_tmpls[i].file, &src, &len);
        ck_assert_msg(eng_tsyn_detect(src, len) == shared_tmpls[i].family, "%s: detected %s",
                      shared_tmpls[i].file, eng_tfam_name(eng_tsyn_detect(src, len)));
        struct eng_tsyn d, f;
        int rc = eng_tsyn_derive(t, &probe_ro, &d);
        if (shared_tmpls[i].derived < 0) {
            ck_assert_msg(rc == ERR_NOT_FOUND, "%s: derived a syntax from a template that shows no call",
                          shared_tmpls[i].file);
            ck_assert_int_eq(d.family, ENG_TF_GENERIC);
        } else {
            ck_assert_msg(rc == 0, "%s: no syntax derived", shared_tmpls[i].file);
            ck_assert_int_eq(eng_tsyn_check(&d, NULL), 0);
            eng_tsyn_family(&f, shared_tmpls[i].derived);
            char hd[300], hf[300];
            snprintf(hd, sizeof hd, "%s%s", d.sec_open, d.call_open);
            snprintf(hf, sizeof hf, "%s%s", f.sec_open, f.call_open);
            ck_assert_str_eq(hd, hf);
            ck_assert_str_eq(d.name_close, f.name_close);
            ck_assert_str_eq(d.call_close, f.call_close);
            ck_assert_str_eq(d.sec_close, f.sec_close);
            ck_assert_int_eq(d.parallel, f.parallel);
            if (d.parallel) {
                ck_assert_str_eq(d.sec_open, f.sec_open);
                ck_assert_str_eq(d.call_sep, f.call_sep);
            }
            ck_assert_int_eq(d.at_start, f.at_start);
        }
        tmpl_free(t);
        free(src);
    }
}
END_TEST

/* The call text a family writes appears verbatim in what the real template renders for a
 * conversation with those calls. */
START_TEST(test_family_in_template)
{
    const char *conv =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"weather in Paris and Rome?\"},"
        "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
        "{\"id\": \"AbCdEf123\", \"type\": \"function\", \"function\": {\"name\": \"weather\", "
        "\"arguments\": {\"location\": \"Paris\", \"days\": 2}}},"
        "{\"id\": \"XyZ987abc\", \"type\": \"function\", \"function\": {\"name\": \"weather\", "
        "\"arguments\": {\"location\": \"Rome\"}}}]}],"
        "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"weather\", \"description\": \"a forecast\", \"parameters\": "
        "{\"type\": \"object\", \"properties\": {\"location\": {\"type\": \"string\"}}}}}]}";
    size_t checked = 0;
    for (size_t i = 0; i < N_SHARED; i++) {
        if (shared_tmpls[i].derived < 0) continue;
        struct tmpl *t = load_tmpl(shared_tmpls[i].file, NULL, NULL);
        struct eng_tsyn f;
        eng_tsyn_family(&f, shared_tmpls[i].derived);
        json_t *req = json_loads(conv, 0, NULL), *calls = json_object_get(json_array_get(json_object_get(req, "messages"), 1), "tool_calls");
        if (!f.parallel) json_array_remove(calls, 1);
        json_t *vars = NULL;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_int_eq(tmpl_vars_from_request(req, &probe_ro, &vars, &ei), 0);
        char *out = NULL;
        size_t n;
        ck_assert_msg(tmpl_render(t, vars, NULL, &out, &n, &ei) == 0, "%s: %s", shared_tmpls[i].file, ei.msg);
        struct eng_sb b = {0};
        ck_assert_int_eq(eng_tsyn_render(&f, NULL, calls, &b, NULL), 0);
        ck_assert_msg(strstr(out, b.p), "%s: the template does not show\n%s\nin\n%s", shared_tmpls[i].file, b.p, out);
        checked++;
        eng_sb_free(&b);
        free(out);
        json_decref(vars);
        json_decref(req);
        tmpl_free(t);
    }
    ck_assert_uint_eq(checked, 5);
}
END_TEST

/* A call without arguments (or with null ones) is a call of a tool without parameters:
 * eng_chat_check accepts it, so every family renders it, as {} (fuzz_chat found render refusing
 * what check had accepted). */
START_TEST(test_call_without_arguments)
{
    json_t *calls = json_loads("[{\"function\": {\"name\": \"now\"}}, {\"function\": {\"name\": \"now\", \"arguments\": null}}]", 0, NULL);
    ck_assert_ptr_nonnull(calls);
    struct err_info ei;
    err_clear(&ei);
    json_t *req = json_pack("{s:[{s:s,s:s},{s:s,s:n,s:O}]}", "messages", "role", "user", "content", "hi", "role",
                            "assistant", "content", "tool_calls", calls);
    ck_assert_int_eq(eng_chat_check(req, &ei), 0);
    for (int fam = 0; fam < ENG_TF_DERIVED; fam++) {
        struct eng_tsyn f;
        eng_tsyn_family(&f, fam);
        struct eng_sb b = {0};
        json_t *one = json_array();
        json_array_append(one, json_array_get(calls, 0));
        ck_assert_msg(eng_tsyn_render(&f, NULL, f.parallel ? calls : one, &b, &ei) == 0, "family %d: %s", fam, ei.msg);
        ck_assert_msg(b.p && strstr(b.p, "now"), "family %d: %s", fam, b.p ? b.p : "(nothing)");
        eng_sb_free(&b);
        json_decref(one);
    }
    json_decref(req);
    json_decref(calls);
}
END_TEST

/* ---------------- grammar and parser ---------------- */

/* Bytes that move a walk toward the end of a call section: closing quotes and brackets, and
 * the bytes of the literals of the syntax. */
static void walk_prefer(const struct eng_tsyn *s, char *out, size_t cap)
{
    snprintf(out, cap, "\"}])%s%s%s%s", s->call_close, s->sec_close, s->args == ENG_TA_XML ? "\n</parameter>" : "",
             s->args == ENG_TA_PY ? ")" : "");
}

/* Valid instances of the agent schemas, rendered as calls in each family's syntax: the grammar
 * accepts them, and the parser gives the same calls back. */
START_TEST(test_rendered_calls)
{
    json_t *tools = tools_of(agent_tools, N_AGENT);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    size_t checked = 0;
    for (size_t f = 0; f < N_FAM; f++) {
        struct eng_tsyn s;
        eng_tsyn_family(&s, families[f]);
        struct eng_tgram_opts o = {.choice = ENG_TC_REQUIRED, .parallel = true};
        struct gram *g = grammar(&s, &ts, &o);
        for (size_t t = 0; t < N_AGENT; t++) {
            json_t *d = schema_file(agent_tools[t]), *valid = json_object_get(d, "valid");
            for (size_t v = 0; v < json_array_size(valid); v++) {
                json_t *calls = json_pack("[{s:{s:s,s:O}}]", "function", "name", agent_tools[t], "arguments",
                                          json_array_get(valid, v));
                if (s.parallel) /* and a second call of another tool */
                    json_array_append_new(calls, json_pack("{s:{s:s,s:{s:s}}}", "function", "name", "exec",
                                                           "arguments", "command", "ls"));
                struct eng_sb b = {0};
                ck_assert_int_eq(eng_tsyn_render(&s, &ts, calls, &b, NULL), 0);
                struct err_info ei;
                err_clear(&ei);
                ck_assert_msg(gram_check(g, b.p, b.len, &ei) == 0, "%s: %s\n%s", eng_tfam_name(s.family), ei.msg, b.p);
                struct calls c;
                err_clear(&ei);
                ck_assert_msg(parse_text(&s, &ts, b.p, b.len, 0, &c, &ei) == 0, "%s: %s\n%s",
                              eng_tfam_name(s.family), ei.msg, b.p);
                ck_assert_uint_eq(c.n, json_array_size(calls));
                for (size_t k = 0; k < c.n; k++) {
                    json_t *fn = json_object_get(json_array_get(calls, k), "function");
                    ck_assert_str_eq(c.name[k], json_string_value(json_object_get(fn, "name")));
                    ck_assert(c.ended[k]);
                    json_t *got = json_loadb(c.args[k].p, c.args[k].len, 0, NULL);
                    ck_assert_msg(got && json_equal(got, json_object_get(fn, "arguments")), "%s: args %s",
                                  eng_tfam_name(s.family), c.args[k].p);
                    json_decref(got);
                }
                calls_free(&c);
                eng_sb_free(&b);
                json_decref(calls);
                checked++;
            }
            json_decref(d);
        }
        gram_free(g);
    }
    printf("rendered calls: %zu accepted and parsed back over %zu syntaxes\n", checked, N_FAM);
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

/* Random texts from each family's grammar: the parser finds declared tools whose arguments
 * validate, the same events whatever the chunking. */
static size_t walk_family(int fam, const struct eng_toolset *ts, const json_t *tools, int choice,
                          int named, bool parallel, int tries)
{
    struct eng_tsyn s;
    eng_tsyn_family(&s, fam);
    struct eng_tgram_opts o = {.choice = choice, .named = named, .parallel = parallel};
    struct gram *g = grammar(&s, ts, &o);
    struct gram_matcher m = {0};
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
    char prefer[512], text[6000];
    walk_prefer(&s, prefer, sizeof prefer);
    size_t ok = 0;
    for (int t = 0; t < tries; t++) {
        size_t n = gw_walk(&m, prefer, 50, 60, text, sizeof text);
        if (n == 0) continue;
        struct calls c, c1, c7;
        struct err_info ei;
        err_clear(&ei);
        int rc = parse_text(&s, ts, text, n, 0, &c, &ei);
        ck_assert_msg(rc == 0, "%s: %s\n%.*s", eng_tfam_name(fam), ei.msg, (int)n, text);
        ck_assert_int_eq(parse_text(&s, ts, text, n, 1, &c1, NULL), 0);
        ck_assert_int_eq(parse_text(&s, ts, text, n, 7, &c7, NULL), 0);
        ck_assert_uint_eq(c.log_len, c1.log_len);
        ck_assert(!memcmp(c.log, c1.log, c.log_len) && !memcmp(c.log, c7.log, c.log_len));
        ck_assert_uint_ge(c.n, 1);
        ck_assert(parallel || c.n == 1);
        for (size_t k = 0; k < c.n; k++) {
            ck_assert(c.ended[k]);
            if (choice == ENG_TC_NAMED) ck_assert_int_eq(c.tool[k], named);
            json_error_t je;
            json_t *args = json_loadb(c.args[k].p, c.args[k].len, 0, &je);
            if (!args && (strstr(je.text, "too big") || strstr(je.text, "overflow"))) continue;
            ck_assert_msg(args != NULL, "%s: arguments are not JSON (%s): %s", eng_tfam_name(fam), je.text, c.args[k].p);
            const json_t *schema = json_object_get(json_object_get(json_array_get(tools, (size_t)c.tool[k]), "function"), "parameters");
            char why[256];
            int v = jsval_check(schema, args, why, sizeof why);
            ck_assert_msg(v != 0, "%s: %s: arguments fail the schema (%s): %s", eng_tfam_name(fam), c.name[k], why,
                          c.args[k].p);
            /* and the byte-level validation grammar accepts them */
            char *ag;
            ck_assert_int_eq(eng_tools_args_gbnf(ts, (size_t)c.tool[k], &ag, NULL, NULL), 0);
            struct gram *agr;
            ck_assert_int_eq(gram_parse(ag, strlen(ag), &agr, NULL), 0);
            ck_assert_msg(gram_check(agr, c.args[k].p, c.args[k].len, &ei) == 0, "%s: %s", ei.msg, c.args[k].p);
            gram_free(agr);
            free(ag);
            json_decref(args);
            ok++;
        }
        calls_free(&c);
        calls_free(&c1);
        calls_free(&c7);
    }
    gram_matcher_free(&m);
    gram_free(g);
    return ok;
}

START_TEST(test_grammar_walks)
{
    json_t *tools = tools_of(agent_tools, N_AGENT);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    size_t total = 0;
    for (size_t f = 0; f < N_FAM; f++) {
        size_t ok = walk_family(families[f], &ts, tools, ENG_TC_REQUIRED, -1, true, 60);
        ok += walk_family(families[f], &ts, tools, ENG_TC_REQUIRED, -1, false, 20);
        ok += walk_family(families[f], &ts, tools, ENG_TC_NAMED, 1, true, 20);
        ck_assert_msg(ok >= 40, "%s: only %zu walks finished", eng_tfam_name(families[f]), ok);
        total += ok;
    }
    printf("grammar walks: %zu generated calls parse and validate\n", total);
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

/* The lazy grammar (after the trigger) and the trigger make the whole grammar's texts. */
START_TEST(test_lazy_grammar)
{
    json_t *tools = tools_of(agent_tools, 3);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    for (size_t f = 0; f < N_FAM; f++) {
        struct eng_tsyn s;
        eng_tsyn_family(&s, families[f]);
        if (s.content_open[0]) continue; /* functionary: never lazy */
        struct eng_tgram_opts full = {.choice = ENG_TC_REQUIRED, .parallel = true}, lazy = full;
        lazy.choice = ENG_TC_AUTO;
        lazy.lazy = true;
        struct gram *gf = grammar(&s, &ts, &full), *gl = grammar(&s, &ts, &lazy);
        struct gram_matcher m = {0};
        ck_assert_int_eq(gram_matcher_init(&m, gf, NULL, NULL), 0);
        char prefer[512], text[6000];
        walk_prefer(&s, prefer, sizeof prefer);
        for (int t = 0; t < 30; t++) {
            size_t n = gw_walk(&m, prefer, 50, 60, text, sizeof text), tl = strlen(s.trigger);
            if (n == 0) continue;
            ck_assert(n > tl && !memcmp(text, s.trigger, tl));
            ck_assert_int_eq(gram_check(gl, text + tl, n - tl, NULL), 0);
        }
        gram_matcher_free(&m);
        gram_free(gf);
        gram_free(gl);
    }
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

/* Functionary in auto: text after ">>>all\n" (no ">>>" inside), then maybe calls; or calls. */
START_TEST(test_functionary_auto)
{
    json_t *tools = tools_of(agent_tools, 2);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    struct eng_tsyn s;
    eng_tsyn_family(&s, ENG_TF_FUNCTIONARY);
    struct eng_tgram_opts o = {.choice = ENG_TC_AUTO, .parallel = true};
    struct gram *g = grammar(&s, &ts, &o);
    static const struct {
        const char *text;
        int ok;
    } cases[] = {
        {">>>all\nHello there", 1},
        {">>>all\nHello >> there >", 1},
        {">>>all\nsee: >>>exec\n{\"command\": \"ls\"}", 1},
        {">>>exec\n{\"command\": \"ls\"}>>>weather\n{\"location\": \"Oslo\"}", 1},
        {">>>all\nsee: >>>>exec\n{\"command\": \"ls\"}", 0}, /* the call must start at the first >>> */
        {">>>all\nsee: >>> exec", 0},
        {">>>nope\n{}", 0},
        {"hello", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg((gram_check(g, cases[i].text, strlen(cases[i].text), NULL) == 0) == cases[i].ok,
                      "case %zu", i);
    gram_free(g);
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

/* XML raw values: anything but "\n</parameter>", which ends them. */
START_TEST(test_xml_raw)
{
    json_t *tools = tools_of(agent_tools, 1); /* exec: command (minLength 1: JSON), cwd (plain: raw) */
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    struct eng_tsyn s;
    eng_tsyn_family(&s, ENG_TF_QWEN3_CODER);
    struct eng_tgram_opts o = {.choice = ENG_TC_REQUIRED};
    struct gram *g = grammar(&s, &ts, &o);
    const char *head = "<tool_call>\n<function=exec>\n<parameter=command>\n\"ls\"\n</parameter>\n<parameter=cwd>\n";
    static const struct {
        const char *value, *json;
    } ok[] = {
        {"/tmp", "/tmp"},
        {"a\n</paramete", "a\n</paramete"},
        {"x\n</parameter", NULL}, /* needs the closing '>' and newline: incomplete */
        {"say \"hi\"\\\t\x01", "say \"hi\"\\\t\x01"},
        {"", ""},
        {"\n", "\n"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s\n</parameter>\n</function>\n</tool_call>", head, ok[i].value);
        int rc = gram_check(g, text, strlen(text), NULL);
        struct calls c;
        int prc = parse_text(&s, &ts, text, strlen(text), 0, &c, NULL);
        if (!ok[i].json) {
            ck_assert_msg(rc != 0 || prc != 0 || c.n == 1, "case %zu", i);
            calls_free(&c);
            continue;
        }
        ck_assert_msg(rc == 0, "case %zu: grammar refuses", i);
        ck_assert_msg(prc == 0, "case %zu: parser refuses", i);
        json_t *args = json_loadb(c.args[0].p, c.args[0].len, 0, NULL);
        ck_assert_msg(args != NULL, "case %zu: %s", i, c.args[0].p);
        ck_assert_str_eq(json_string_value(json_object_get(args, "cwd")), ok[i].json);
        ck_assert_str_eq(json_string_value(json_object_get(args, "command")), "ls");
        json_decref(args);
        calls_free(&c);
    }
    gram_free(g);
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

/* Tools a keyed syntax cannot write, and schemas the converter refuses. */
START_TEST(test_grammar_refusals)
{
    static const struct {
        int fam;
        const char *params, *want;
        int rc;
    } cases[] = {
        {ENG_TF_PYTHONIC, "{\"properties\":{\"a-b\":{\"type\":\"string\"}}}", "Python identifier", ERR_UNSUPPORTED},
        {ENG_TF_PYTHONIC, "{\"properties\":{\"1a\":{\"type\":\"string\"}}}", "Python identifier", ERR_UNSUPPORTED},
        {ENG_TF_QWEN3_CODER, "{\"properties\":{\"a>b\":{\"type\":\"string\"}}}", "no '>'", ERR_UNSUPPORTED},
        {ENG_TF_QWEN3_CODER, "{\"properties\":{\"a\":{}},\"anyOf\":[{\"required\":[\"a\"]}]}", "'anyOf'", ERR_UNSUPPORTED},
        {ENG_TF_QWEN3_CODER, "{\"properties\":{\"a\":{\"$ref\":\"#\"}}}", "$ref", ERR_UNSUPPORTED},
        {ENG_TF_PYTHONIC, "{\"properties\":{},\"required\":[\"x\"]}", "not among", ERR_UNSUPPORTED},
        {ENG_TF_HERMES, "{\"properties\":{\"a\":{\"type\":\"string\"}},\"patternProperties\":{\"^x\":{}}}",
         "patternProperties", ERR_UNSUPPORTED},
        {ENG_TF_HERMES, "{\"properties\":{\"a\":{\"type\":\"strung\"}}}", "", ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *params = json_loads(cases[i].params, 0, NULL);
        ck_assert_ptr_nonnull(params);
        json_t *tools = json_pack("[{s:s,s:{s:s,s:o}}]", "type", "function", "function", "name", "t", "parameters", params);
        struct eng_toolset ts;
        parse_tools(tools, &ts);
        struct eng_tsyn s;
        eng_tsyn_family(&s, cases[i].fam);
        struct eng_tgram_opts o = {.choice = ENG_TC_REQUIRED};
        char *g = NULL;
        struct err_info ei;
        err_clear(&ei);
        int rc = eng_tools_gbnf(&s, &ts, &o, &g, NULL, &ei);
        ck_assert_msg(rc == cases[i].rc, "case %zu: rc %d (%s)", i, rc, ei.msg);
        ck_assert_msg(strstr(ei.msg, cases[i].want), "case %zu: '%s'", i, ei.msg);
        ck_assert_ptr_null(g);
        eng_toolset_free(&ts);
        json_decref(tools);
    }
}
END_TEST

/* Texts that leave the syntax: the code and the byte where the parser stops. */
START_TEST(test_parser_bad)
{
    json_t *tools = tools_of(agent_tools, 2);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    static const struct {
        int fam;
        const char *text;
        int rc;
        uint64_t at;
    } bad[] = {
        {ENG_TF_HERMES, "<tool_call>{", ERR_SYNTAX, 11},
        {ENG_TF_HERMES, "<tool_call>\n{\"name\": \"nope\"", ERR_NOT_FOUND, 22},
        {ENG_TF_HERMES, "<tool_call>\n{\"name\": \"exec\", \"arguments\": [1]}", ERR_SYNTAX, 42},
        {ENG_TF_HERMES, "<tool_call>\n{\"name\": \"exec\", \"arguments\": {\"a\": 1", ERR_TRUNCATED, 49},
        {ENG_TF_HERMES, "<tool_call>\n{\"name\": \"exec\", \"arguments\": {}}\n</tool_call>x", ERR_SYNTAX, 58},
        {ENG_TF_HERMES, "", ERR_TRUNCATED, 0},
        {ENG_TF_GRANITE, "<|tool_call|>[{\"name\": \"exec\", \"arguments\": {}}]]", ERR_SYNTAX, 48},
        {ENG_TF_GRANITE, "<|tool_call|>[{\"name\": \"exec\", \"arguments\": {}}", ERR_TRUNCATED, 47},
        {ENG_TF_LLAMA3, "{\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ERR_SYNTAX, 74},
        {ENG_TF_QWEN3_CODER, "<tool_call>\n<function=exec>\n<parameter=zzz>\n", ERR_NOT_FOUND, 39},
        {ENG_TF_QWEN3_CODER, "<tool_call>\n<function=exec>\n<parameter=cwd>\na\n</parameter>\n<parameter=cwd>\n",
         ERR_SYNTAX, 70},
        {ENG_TF_PYTHONIC, "<|tool_call_start|>[exec(command=)]", ERR_SYNTAX, 33},
        {ENG_TF_PYTHONIC, "<|tool_call_start|>[exec(command=\"a\",cwd=\"b\")]", ERR_SYNTAX, 37},
        {ENG_TF_MISTRAL, "[TOOL_CALLS][{\"name\": \"exec\", \"arguments\": {}}, x", ERR_SYNTAX, 48},
        {ENG_TF_MISTRAL, "[TOOL_CALLS][{\"name\": \"exec\", \"arguments\": {}}, {", ERR_TRUNCATED, 49},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct eng_tsyn s;
        eng_tsyn_family(&s, bad[i].fam);
        struct calls c;
        struct err_info ei;
        err_clear(&ei);
        int rc = parse_text(&s, &ts, bad[i].text, strlen(bad[i].text), 0, &c, &ei);
        ck_assert_msg(rc == bad[i].rc, "case %zu: rc %d (%s)", i, rc, ei.msg);
        ck_assert_msg(ei.offset == bad[i].at, "case %zu: offset %llu (%s)", i, (unsigned long long)ei.offset, ei.msg);
        ck_assert(ei.msg[0]);
        calls_free(&c);
    }
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

/* The description for templates that show no tools, and the check of syntaxes. */
START_TEST(test_describe_and_check)
{
    json_t *tools = tools_of(agent_tools, 2);
    struct eng_toolset ts;
    parse_tools(tools, &ts);
    for (size_t f = 0; f < N_FAM; f++) {
        struct eng_tsyn s;
        eng_tsyn_family(&s, families[f]);
        ck_assert_msg(eng_tsyn_check(&s, NULL) == 0, "%s", eng_tfam_name(families[f]));
        struct eng_sb b = {0};
        ck_assert_int_eq(eng_tsyn_describe(&s, &ts, &b, NULL), 0);
        ck_assert(strstr(b.p, "\"name\": \"exec\"") && strstr(b.p, "get a forecast"));
        ck_assert(strstr(b.p, s.call_open));
        eng_sb_free(&b);
    }
    struct eng_tsyn s;
    eng_tsyn_family(&s, ENG_TF_HERMES);
    snprintf(s.trigger, sizeof s.trigger, "<tool>");
    ck_assert_int_eq(eng_tsyn_check(&s, NULL), ERR_INVALID);
    eng_tsyn_family(&s, ENG_TF_HERMES);
    snprintf(s.name_close, sizeof s.name_close, "x");
    ck_assert_int_eq(eng_tsyn_check(&s, NULL), ERR_INVALID);
    eng_toolset_free(&ts);
    json_decref(tools);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("tools");
    TCase *tc = tcase_create("pure");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_toolset_ok);
    tcase_add_test(tc, test_toolset_bad);
    tcase_add_test(tc, test_tool_choice);
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_detect_and_derive);
    tcase_add_test(tc, test_family_in_template);
    tcase_add_test(tc, test_call_without_arguments);
    tcase_add_test(tc, test_rendered_calls);
    tcase_add_test(tc, test_grammar_walks);
    tcase_add_test(tc, test_lazy_grammar);
    tcase_add_test(tc, test_functionary_auto);
    tcase_add_test(tc, test_xml_raw);
    tcase_add_test(tc, test_grammar_refusals);
    tcase_add_test(tc, test_parser_bad);
    tcase_add_test(tc, test_describe_and_check);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
