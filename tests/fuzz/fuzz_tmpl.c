/* fuzz_tmpl: libFuzzer harness for the Jinja renderer (src/tmpl). Each input is template text;
 * it is parsed, and when it parses it is rendered with one fixed conversation that reaches the
 * paths real templates take (system/user/assistant turns, a parallel tool call with object
 * arguments, tool results, tools, bos/eos, documents null), under small bounds so a hostile input
 * ends quickly (the step counter is the time bound).
 *
 * Contract checked on every input (abort() so libFuzzer keeps the input):
 *   - a refused parse has a known code, a message with a "line L, column C" prefix and an
 *     offset inside the input, and returns no template;
 *   - a render returns 0 or one of ERR_TEMPLATE / ERR_LIMIT / ERR_UNSUPPORTED / ERR_NOMEM with a
 *     message, and no text; on success the text is NUL-terminated, within max_output, and a
 *     second render gives the same bytes (rendering is pure);
 *   - the capability probes never fail on a template that parses (they only report).
 *
 * Build: make fuzz (links -ljansson); run: make fuzz-smoke, or by hand:
 *   ./build-fuzz/seeds_tmpl build-fuzz/corpus/tmpl && \
 *   ./build-fuzz/fuzz_tmpl -max_len=8192 build-fuzz/corpus/tmpl */
#include "tmpl/tmpl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char g_vars_json[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful. \\u00e9\\u4e2d\"},"
    "{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
    "{\"id\": \"a1b2c3d4e\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
    "\"arguments\": {\"city\": \"Paris\", \"n\": 2.5}}},"
    "{\"id\": \"f5g6h7i8j\", \"type\": \"function\", \"function\": {\"name\": \"exec\", "
    "\"arguments\": {\"command\": \"ls\"}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"a1b2c3d4e\", \"name\": \"get_weather\", \"content\": \"21 C\"},"
    "{\"role\": \"assistant\", \"content\": \"<think>\\nhm\\n</think>\\n\\nIt is 21 C.\", "
    "\"reasoning_content\": \"hm\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Thanks!\"}]}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
    "\"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": "
    "{\"city\": {\"type\": \"string\", \"description\": \"City\"}, \"unit\": {\"type\": \"string\", "
    "\"enum\": [\"c\", \"f\"]}, \"days\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}}, "
    "\"required\": [\"city\"]}}}],"
    "\"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\", "
    "\"eos_token\": \"</s>\", \"enable_thinking\": false}";

static json_t *g_vars;

static void check_err(const struct err_info *ei, int rc, size_t size, bool parse)
{
    if (ei->code != rc || ei->msg[0] == 0) abort();
    if (parse) {
        if (rc != ERR_SYNTAX && rc != ERR_UNSUPPORTED && rc != ERR_LIMIT && rc != ERR_UTF8 &&
            rc != ERR_NOMEM)
            abort();
        if (rc != ERR_NOMEM && (strncmp(ei->msg, "line ", 5) != 0 || ei->offset > size)) abort();
    } else if (rc != ERR_TEMPLATE && rc != ERR_LIMIT && rc != ERR_UNSUPPORTED && rc != ERR_NOMEM) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_vars) {
        json_error_t je;
        g_vars = json_loads(g_vars_json, 0, &je);
        if (!g_vars) {
            fprintf(stderr, "fuzz_tmpl: bad vars: %s\n", je.text);
            abort();
        }
    }
    struct tmpl *t = NULL;
    struct err_info ei;
    err_clear(&ei);
    int rc = tmpl_parse((const char *)data, size, &t, &ei);
    if (rc) {
        if (t) abort();
        check_err(&ei, rc, size, true);
        return 0;
    }
    struct tmpl_opts o;
    tmpl_opts_default(&o);
    o.now = 1721988000;
    o.max_steps = 200000;
    o.max_output = 1 << 20;
    o.max_mem = 32u << 20;
    o.max_depth = 40;
    char *out = NULL, *out2 = NULL;
    size_t len = 0, len2 = 0;
    err_clear(&ei);
    rc = tmpl_render(t, g_vars, &o, &out, &len, &ei);
    if (rc) {
        if (out) abort();
        check_err(&ei, rc, size, false);
    } else {
        if (!out || out[len] != 0 || len > o.max_output) abort();
        err_clear(&ei);
        if (tmpl_render(t, g_vars, &o, &out2, &len2, &ei) != 0 || len2 != len ||
            memcmp(out, out2, len) != 0)
            abort();
    }
    free(out);
    free(out2);
    if (size < 2048) { /* probes render 7 conversations: only for small inputs */
        struct tmpl_caps caps;
        struct tmpl_opts po = o;
        po.max_steps = 20000;
        tmpl_caps_probe(t, NULL, &po, &caps);
    }
    tmpl_free(t);
    return 0;
}
