/* bench_tmpl: what a chat template costs per request. For the largest real templates of
 * ../shared/chat/jinja it times, on one 20-message conversation with 5 tools (a system prompt,
 * user/assistant turns, single tool calls with their results):
 *   parse   tmpl_parse of the template text (done once per model load),
 *   vars    tmpl_vars_from_request on the request JSON (per request),
 *   render  tmpl_render (per request; the bound is 2 ms),
 *   eng     eng_chat_render, what a chat request pays: the request checked, the fixes the
 *           template's probed capabilities call for, the variables with the vocabulary's
 *           bos/eos (a vocab-only GGUF of ../shared/vocab), the render, and the tool_use
 *           variant's choice,
 * as the median of repeated runs, after a warm-up. A measurement, not a test: nothing is
 * asserted; `make bench-tmpl` runs it. */
#include "tutil.h"

#include "eng/eng.h"
#include "tmpl/tmpl.h"
#include "util/util.h"

#include <jansson.h>

static const char *const g_files[] = {
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
    "ibm-granite-granite-3.3-2B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "HuggingFaceTB-SmolLM3-3B.jinja",
};

/* 5 tools with realistic schemas */
static json_t *make_tools(void)
{
    json_t *tools = json_array();
    static const char *const names[] = {"get_weather", "search_web", "run_shell", "read_file",
                                        "send_email"};
    for (int i = 0; i < 5; i++) {
        json_t *t = json_pack(
            "{s:s,s:{s:s,s:s,s:{s:s,s:{s:{s:s,s:s},s:{s:s,s:[s,s],s:s},s:{s:s,s:{s:s},s:s},"
            "s:{s:s,s:i,s:s}},s:[s]}}}",
            "type", "function", "function", "name", names[i], "description",
            "A tool that does one useful thing with the arguments it is given, carefully.",
            "parameters", "type", "object", "properties", "query", "type", "string", "description",
            "What to look up, in plain words", "unit", "type", "string", "enum", "celsius",
            "fahrenheit", "description", "Unit of the result", "tags", "type", "array", "items",
            "type", "string", "description", "Labels to filter by", "limit", "type", "integer",
            "minimum", 1, "description", "How many results", "required", "query");
        json_array_append_new(tools, t);
    }
    return tools;
}

/* 20 messages: system, then user/assistant turns, every third assistant turn a tool call
 * followed by its result and an answer. */
static json_t *make_messages(void)
{
    json_t *m = json_array();
    json_array_append_new(m, json_pack("{s:s,s:s}", "role", "system", "content",
                                       "You are a helpful assistant. Answer briefly and use the "
                                       "tools when they help."));
    int k = 0;
    while (json_array_size(m) < 20) {
        char q[128];
        snprintf(q, sizeof q, "Question %d: what is the weather like in city number %d today?", k, k);
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", "user", "content", q));
        if (k % 3 == 1 && json_array_size(m) + 3 <= 20) {
            char id[16];
            snprintf(id, sizeof id, "call%05d", k);
            json_array_append_new(
                m, json_pack("{s:s,s:s,s:[{s:s,s:s,s:{s:s,s:{s:s,s:s}}}]}", "role", "assistant",
                             "content", "", "tool_calls", "id", id, "type", "function", "function",
                             "name", "get_weather", "arguments", "query", q, "unit", "celsius"));
            json_array_append_new(m, json_pack("{s:s,s:s,s:s,s:s}", "role", "tool", "tool_call_id",
                                               id, "name", "get_weather", "content",
                                               "{\"temperature\": 21, \"sky\": \"clear\"}"));
        }
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", "assistant", "content",
                                           "It is 21 degrees and clear, a fine day to be outside."));
        k++;
    }
    while (json_array_size(m) > 20) json_array_remove(m, json_array_size(m) - 1);
    return m;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define REPS 201

/* The median of REPS timed eng_chat_render calls (after 20 untimed), in microseconds; < 0 when
 * it fails. */
static double time_eng(const struct eng_model *em, const json_t *req)
{
    static double t[REPS];
    for (int r = -20; r < REPS; r++) {
        struct eng_prompt pr;
        struct err_info ei;
        err_clear(&ei);
        double t0 = util_now();
        int rc = eng_chat_render(em, req, NULL, &pr, &ei);
        double t1 = util_now();
        if (rc) {
            printf("eng_chat_render failed: %s\n", ei.msg);
            return -1;
        }
        eng_prompt_free(&pr);
        if (r >= 0) t[r] = (t1 - t0) * 1e6;
    }
    qsort(t, REPS, sizeof *t, cmp_d);
    return t[REPS / 2];
}

int main(void)
{
    json_t *req = json_object();
    json_object_set_new(req, "messages", make_messages());
    json_object_set_new(req, "tools", make_tools());
    struct tmpl_req_opts ro = {.bos_token = "<s>", .eos_token = "</s>", .add_generation_prompt = true};
    struct tmpl_opts o;
    tmpl_opts_default(&o);
    o.now = 1721988000;
    printf("conversation: %zu messages, %zu tools\n",
           json_array_size(json_object_get(req, "messages")),
           json_array_size(json_object_get(req, "tools")));
    printf("%-52s %8s %9s %9s %9s %8s %9s\n", "template", "bytes", "parse_us", "vars_us", "render_us",
           "out_B", "eng_us");
    struct eng_model *em = NULL;
    struct err_info vei;
    err_clear(&vei);
    if (eng_model_open_vocab(&em, tutil_shared("vocab/ggml-vocab-llama-bpe.gguf"), &vei))
        printf("(no eng column: %s)\n", vei.msg);
    static double tp[REPS], tv[REPS], tr[REPS];
    for (size_t f = 0; f < sizeof g_files / sizeof g_files[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, "chat/jinja/%s", g_files[f]);
        size_t n;
        char *src = tutil_read(tutil_shared(path), &n);
        if (!src) {
            printf("%-52s missing\n", g_files[f]);
            continue;
        }
        size_t outlen = 0;
        int rc = 0;
        struct err_info ei;
        err_clear(&ei);
        for (int r = -20; r < REPS && !rc; r++) { /* 20 warm-up runs */
            struct tmpl *t;
            json_t *vars;
            char *out;
            double t0 = util_now();
            rc = tmpl_parse(src, n, &t, &ei);
            double t1 = util_now();
            if (rc) break;
            rc = tmpl_vars_from_request(req, &ro, &vars, &ei);
            double t2 = util_now();
            if (!rc) rc = tmpl_render(t, vars, &o, &out, &outlen, &ei);
            double t3 = util_now();
            if (!rc) free(out);
            json_decref(vars);
            tmpl_free(t);
            if (r >= 0) {
                tp[r] = (t1 - t0) * 1e6;
                tv[r] = (t2 - t1) * 1e6;
                tr[r] = (t3 - t2) * 1e6;
            }
        }
        if (rc) {
            printf("%-52s failed: %s\n", g_files[f], ei.msg);
        } else {
            qsort(tp, REPS, sizeof *tp, cmp_d);
            qsort(tv, REPS, sizeof *tv, cmp_d);
            qsort(tr, REPS, sizeof *tr, cmp_d);
            double te = em && eng_model_set_chat_template(em, src, n, g_files[f], NULL) == 0
                            ? time_eng(em, req) : -1;
            printf("%-52s %8zu %9.1f %9.1f %9.1f %8zu %9.1f\n", g_files[f], n, tp[REPS / 2], tv[REPS / 2],
                   tr[REPS / 2], outlen, te);
        }
        free(src);
    }
    printf("(median of %d runs each; render bound in the issue: 2000 us)\n", REPS);
    eng_model_free(em);
    json_decref(req);
    return 0;
}
