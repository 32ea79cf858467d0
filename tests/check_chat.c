/* check_chat: chat templates against llama.cpp.
 *
 *   - every (built-in name x conversation) of ../shared/chat/templates.json renders byte for
 *     byte as llama.cpp's llama_chat_apply_template did (34af94cd), and our name list is its
 *     llama_chat_builtin_templates() list in the same order;
 *   - the phi-3 vocab's own Jinja template detects as "phi3" and renders the recorded outputs;
 *   - a representative Jinja fragment of each family detects as that family, in llama.cpp's
 *     rule order; unknown text falls back to chatml with the flag set;
 *   - buffer contract: exact `needed`, ERR_LIMIT below needed + 1, nothing written past cap;
 *   - quirks the fixture's two conversations do not reach (unknown roles, system merging,
 *     first/last-message rules, trimming, empty conversations), with expectations derived by
 *     hand from llama.cpp's llm_chat_apply_template. */
#include "tutil.h"

#include "gguf/gguf.h"
#include "tok/chat.h"

#include <jansson.h>

/* Render into a fresh heap string (asserting success). */
static char *render(int id, const struct chat_msg *m, size_t n, bool gen)
{
    size_t need = 0;
    int rc = chat_render(id, m, n, gen, NULL, 0, &need);
    ck_assert_msg(rc == ERR_LIMIT || (rc == 0 && need == 0), "size query: rc %d", rc);
    char *buf = malloc(need + 1);
    ck_assert_ptr_nonnull(buf);
    size_t need2 = 0;
    ck_assert_int_eq(chat_render(id, m, n, gen, buf, need + 1, &need2), 0);
    ck_assert_uint_eq(need, need2);
    ck_assert_uint_eq(strlen(buf), need);
    return buf;
}

/* Messages of one fixture conversation; strings borrowed from the JSON. */
static size_t conv_msgs(json_t *conv, struct chat_msg *m, size_t cap)
{
    json_t *arr = json_object_get(conv, "messages");
    ck_assert(json_is_array(arr));
    size_t n = json_array_size(arr);
    ck_assert_uint_le(n, cap);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        m[i].role = json_string_value(json_object_get(e, "role"));
        m[i].content = json_string_value(json_object_get(e, "content"));
        ck_assert(m[i].role && m[i].content);
    }
    return n;
}

static json_t *load_fixture(void)
{
    json_error_t jerr;
    json_t *root = json_load_file(tutil_shared("chat/templates.json"), 0, &jerr);
    ck_assert_msg(root != NULL, "chat/templates.json: %s (set LMPIPE_SHARED)", jerr.text);
    return root;
}

START_TEST(test_builtin_names_match_llamacpp)
{
    json_t *root = load_fixture();
    json_t *names = json_object_get(root, "builtin_names");
    ck_assert_uint_eq(json_array_size(names), chat_template_count());
    ck_assert_uint_eq(chat_template_count(), 54);
    for (size_t i = 0; i < json_array_size(names); i++)
        ck_assert_str_eq(chat_template_name((int)i), json_string_value(json_array_get(names, i)));
    json_decref(root);
}
END_TEST

START_TEST(test_fixture_results)
{
    json_t *root = load_fixture();
    json_t *convs = json_object_get(root, "conversations");
    json_t *results = json_object_get(root, "results");
    size_t total = json_array_size(results), ok = 0;
    ck_assert_uint_eq(total, 108);
    for (size_t i = 0; i < total; i++) {
        json_t *r = json_array_get(results, i);
        const char *name = json_string_value(json_object_get(r, "name"));
        json_int_t ci = json_integer_value(json_object_get(r, "conversation"));
        json_t *conv = json_array_get(convs, (size_t)ci);
        json_t *want = json_object_get(r, "output");
        ck_assert(name && conv && json_is_string(want));
        ck_assert_int_eq(json_integer_value(json_object_get(r, "rc")),
                         (json_int_t)json_string_length(want));
        bool gen = json_is_true(json_object_get(conv, "add_generation_prompt"));

        struct chat_msg m[8];
        size_t n = conv_msgs(conv, m, 8);
        int id = chat_template_by_name(name);
        ck_assert_msg(id >= 0, "unknown built-in name %s", name);
        char *got = render(id, m, n, gen);
        char what[96];
        snprintf(what, sizeof what, "%s conversation %d", name, (int)ci);
        if (!tutil_diff_report(what, got, strlen(got), json_string_value(want), json_string_length(want)))
            ok++;
        free(got);
    }
    printf("check_chat: %zu/%zu results matching\n", ok, total);
    fflush(stdout);
    ck_assert_uint_eq(ok, total);
    json_decref(root);
}
END_TEST

START_TEST(test_gguf_phi3_detects)
{
    struct gguf_ctx g;
    struct err_info ei = {0};
    int rc = gguf_open(tutil_shared("vocab/ggml-vocab-phi-3.gguf"), &g, &ei);
    ck_assert_msg(rc == 0, "gguf_open: %s", ei.msg);
    bool fb = true;
    int id = chat_template_from_gguf(&g, &fb);
    ck_assert_str_eq(chat_template_name(id), "phi3");
    ck_assert(!fb);
    gguf_free(&g);

    /* and the recorded outputs for that template */
    json_t *root = load_fixture();
    json_t *gt = json_array_get(json_object_get(root, "gguf_templates"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(gt, "detected")), "phi3");
    const char *jinja = json_string_value(json_object_get(gt, "chat_template"));
    ck_assert_int_eq(chat_template_detect(jinja, strlen(jinja), &fb), CHAT_TMPL_PHI3);
    json_t *outs = json_object_get(gt, "outputs");
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *o = json_array_get(outs, i);
        json_int_t ci = json_integer_value(json_object_get(o, "conversation"));
        json_t *conv = json_array_get(json_object_get(root, "conversations"), (size_t)ci);
        struct chat_msg m[8];
        size_t n = conv_msgs(conv, m, 8);
        char *got = render(id, m, n, true);
        ck_assert_str_eq(got, json_string_value(json_object_get(o, "output")));
        free(got);
    }
    json_decref(root);
}
END_TEST

/* A fragment carrying each family's marker(s), as found in its real Jinja template. */
static const struct {
    const char *jinja;
    const char *want;
} g_snippets[] = {
    {"{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}", "chatml"},
    {"{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content']}}", "phi4"},
    {"<|im_start|>{% for m in messages %}User:{{ m.content }}<end_of_utterance>", "smolvlm"},
    {"{{ bos_token }}[SYSTEM_PROMPT]{{ system }}[/SYSTEM_PROMPT][INST]", "mistral-v7"},
    {"{{- ' [INST] ' + system_message + '\\n\\n' + content + ' [/INST]' }}", "mistral-v1"},
    {"[AVAILABLE_TOOLS]{{ tools }}[/AVAILABLE_TOOLS]{{ '[INST]' + content + '[/INST]' }}",
     "mistral-v3"},
    {"[AVAILABLE_TOOLS]{{ tools }}{{ \"[INST]\" + content + \"[/INST]\" }}", "mistral-v3-tekken"},
    {"{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}", "llama2"},
    {"mistral-like {{ messages }}", "llama2"}, /* llama.cpp: text starting with "mistral" */
    {"[INST] <<SYS>>\\n{{ system }}\\n<</SYS>>\\n\\n", "llama2-sys"},
    {"{{ bos_token + '[INST] ' + content }} <<SYS>>", "llama2-sys-bos"},
    {"[INST] <<SYS>> {{ content.strip() }} [/INST]", "llama2-sys-strip"},
    {"{{ bos_token }}{% for m in messages %}{{'<|user|>' + '\\n' + m['content'] + '<|end|>' + "
     "'\\n' + '<|assistant|>'}}",
     "phi3"},
    {"[gMASK]<sop>{% for item in messages %}<|{{ item['role'] }}|>", "chatglm4"},
    {"<|user|>\\n{{ c }}<|assistant|>\\n{{ tools }}<|tool_declare|>", "exaone-moe"},
    {"<|user|>\\n{{ c }}\\n<|assistant|>\\n{{ c }}</s>", "falcon3"},
    {"<|user|>\\n{{ c }}<|assistant|>", "glmedge"},
    {"<|{{ item['role'] }}|>\\n<|begin_of_image|>", "glmedge"},
    {"<|user|>\\n{{ c }}<|endoftext|>", "zephyr"},
    {"{{ bos_token + message['role'] + '\\n' + message['content'] + eos_token }}", "monarch"},
    {"{{ '<start_of_turn>' + role + '\\n' }}", "gemma"},
    {"{{ 'Human: ' + content + '\\n\\nAssistant: ' + eos_token }}", "orion"},
    {"{{ 'GPT4 Correct User: ' + content + '<|end_of_turn|>' }}", "openchat"},
    {"{{ 'USER: ' + c + '\\n' }}{{ 'ASSISTANT: ' + c }}", "vicuna"},
    {"{{ 'SYSTEM: ' + s }}{{ 'USER: ' + c + '\\n' }}{{ 'ASSISTANT: ' + c }}", "vicuna-orca"},
    {"### Instruction:\\n{{ c }}\\n### Response:\\n{{ c }}\\n<|EOT|>", "deepseek"},
    {"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{ c }}<|END_OF_TURN_TOKEN|>", "command-r"},
    {"<|start_header_id|>{{ role }}<|end_header_id|>\\n\\n", "llama3"},
    {"[gMASK]sop<|user|>\\n {{ c }}", "chatglm3"},
    {"<用户>{{ c }}<AI>", "minicpm"},
    {"{{ 'Assistant: ' + message['content'] + eos_token }}", "deepseek2"},
    {"<｜User｜>{{ c }}<｜Assistant｜>{{ c }}<｜end▁of▁sentence｜>", "deepseek3"},
    {"[|system|]{{ s }}[|endofturn|]\\n[|assistant|]", "exaone3"},
    {"[|system|]{{ s }}[|endofturn|]\\n[|assistant|][|tool|]", "exaone4"},
    {"{# rwkv-world #}", "rwkv-world"},
    {"{{- 'User: ' + message['content']|trim + '\\n\\n' -}}", "rwkv-world"},
    {"<|start_of_role|>{{ role }}<|end_of_role|>", "granite"},
    {"{%- set g4_default_system_message = '' %}<|start_of_role|><tools>", "granite-4.0"},
    {"<|start_of_role|>{{ role }}<|end_of_role|><tool_call>", "granite-4.1"},
    {"{{ message['role'] + additional_special_tokens[0] + message['content'] + "
     "additional_special_tokens[1] }}",
     "gigachat"},
    {"<|role_start|>{{ role }}<|role_end|>", "megrez"},
    {"{{ ' Пользователь: ' + c }}{{ ' Ассистент:' }}", "yandex"},
    {"{% set role = 'HUMAN' %}<role>ASSISTANT</role>", "bailing"},
    {"{% set role = \"HUMAN\" %}<role>ASSISTANT</role><think>", "bailing-think"},
    {"<role>HUMAN</role>{{ c }}<|role_end|><role>ASSISTANT</role>", "bailing2"},
    {"<|header_start|>{{ role }}<|header_end|>\\n\\n", "llama4"},
    {"<|userprompt|>{{ c }}<|endofuserprompt|>", "dots1"},
    {"<|startoftext|>{{ c }}<|extra_4|>{{ c }}<|extra_0|>", "hunyuan-moe"},
    {"<|start|>{{ role }}<|channel|>final<|message|>", "gpt-oss"},
    {"<｜hy_begin▁of▁sentence｜>{{ c }}<｜hy_Assistant｜>", "hunyuan-vl"},
    {"<｜hy_User｜>{{ c }}<｜hy_Assistant｜><｜hy_place▁holder▁no▁3｜>", "hunyuan-dense"},
    {"<|im_assistant|>assistant<|im_middle|>{{ c }}<|im_end|>", "kimi-k2"},
    {"<seed:bos>{{ role }}\\n{{ c }}<seed:eos>", "seed_oss"},
    {"{{ 'Assistant: '  + message['content'] + '<|separator|>\\n\\n' }}", "grok-2"},
    {"[unused9]系统：[unused10]", "pangu-embedded"},
    {"<|begin|>{{ role }}<|content|>{{ c }}<|end|>", "solar-open"},
};

START_TEST(test_detect_snippets)
{
    bool seen[CHAT_TMPL_N_] = {0};
    for (size_t i = 0; i < sizeof g_snippets / sizeof g_snippets[0]; i++) {
        bool fb = true;
        const char *j = g_snippets[i].jinja;
        int id = chat_template_detect(j, strlen(j), &fb);
        ck_assert_msg(!fb && id >= 0 && strcmp(chat_template_name(id), g_snippets[i].want) == 0,
                      "snippet %zu detected as %s (fallback %d), want %s: %s", i,
                      chat_template_name(id), fb, g_snippets[i].want, j);
        seen[id] = true;
    }
    /* every family is reachable by detection, except the two llama.cpp never detects from
     * Jinja (only by name): mistral-v7-tekken (v7 wins) and deepseek-ocr */
    for (int id = 0; id < CHAT_TMPL_N_; id++)
        if (id != CHAT_TMPL_MISTRAL_V7_TEKKEN && id != CHAT_TMPL_DEEPSEEK_OCR)
            ck_assert_msg(seen[id], "no detection snippet for %s", chat_template_name(id));
}
END_TEST

START_TEST(test_detect_name_and_fallback)
{
    bool fb;
    for (int id = 0; id < (int)chat_template_count(); id++) {
        const char *name = chat_template_name(id);
        fb = true;
        ck_assert_int_eq(chat_template_detect(name, strlen(name), &fb), id);
        ck_assert(!fb);
    }
    const char *unk = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
    fb = false;
    ck_assert_int_eq(chat_template_detect(unk, strlen(unk), &fb), CHAT_TMPL_CHATML);
    ck_assert(fb);
    fb = false;
    ck_assert_int_eq(chat_template_detect("", 0, &fb), CHAT_TMPL_CHATML);
    ck_assert(fb);
    fb = false;
    ck_assert_int_eq(chat_template_detect(NULL, 0, &fb), CHAT_TMPL_CHATML);
    ck_assert(fb);
    ck_assert_int_eq(chat_template_detect(unk, strlen(unk), NULL), CHAT_TMPL_CHATML);
    /* "dots1" is no built-in name in llama.cpp: it detects nothing */
    fb = false;
    ck_assert_int_eq(chat_template_detect("dots1", 5, &fb), CHAT_TMPL_CHATML);
    ck_assert(fb);
    /* only jinja[0..len) counts: bytes after len are ignored */
    ck_assert_int_eq(chat_template_detect("chatml-x", 6, &fb), CHAT_TMPL_CHATML);
    ck_assert(!fb);
    ck_assert_int_eq(chat_template_detect("<start_of_turn>", 14, &fb), CHAT_TMPL_CHATML);
    ck_assert(fb);
    /* a NUL inside the text does not end the search */
    const char with_nul[] = "abc\0<start_of_turn>";
    ck_assert_int_eq(chat_template_detect(with_nul, sizeof with_nul - 1, &fb), CHAT_TMPL_GEMMA);
    /* a gguf without the key */
    struct gguf_ctx g;
    struct err_info ei = {0};
    ck_assert_int_eq(gguf_open(tutil_shared("vocab/ggml-vocab-llama-spm.gguf"), &g, &ei), 0);
    fb = false;
    ck_assert_int_eq(chat_template_from_gguf(&g, &fb), CHAT_TMPL_CHATML);
    ck_assert(fb);
    gguf_free(&g);
    ck_assert_int_eq(chat_template_from_gguf(NULL, &fb), CHAT_TMPL_CHATML);
}
END_TEST

START_TEST(test_names_roundtrip)
{
    ck_assert_uint_eq(chat_template_count(), CHAT_TMPL_N_BUILTIN);
    for (int id = 0; id < (int)chat_template_count(); id++) {
        const char *name = chat_template_name(id);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_eq(chat_template_by_name(name), id);
        /* byte order, as llama_chat_builtin_templates() lists them */
        if (id > 0) ck_assert_int_lt(strcmp(chat_template_name(id - 1), name), 0);
    }
    ck_assert_str_eq(chat_template_name(CHAT_TMPL_CHATML), "chatml");
    ck_assert_str_eq(chat_template_name(CHAT_TMPL_DOTS1), "dots1");
    ck_assert_int_lt(chat_template_by_name("dots1"), 0);
    ck_assert_int_lt(chat_template_by_name("ChatML"), 0);
    ck_assert_int_lt(chat_template_by_name(""), 0);
    ck_assert_int_lt(chat_template_by_name(NULL), 0);
    ck_assert_ptr_null(chat_template_name(-1));
    ck_assert_ptr_null(chat_template_name(CHAT_TMPL_N_));
}
END_TEST

START_TEST(test_buffer_contract)
{
    const struct chat_msg m[] = {{"system", "S"}, {"user", "Hello"}};
    size_t need = 0;
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, m, 2, true, NULL, 0, &need), ERR_LIMIT);
    const char *want = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                       "<|im_start|>assistant\n";
    ck_assert_uint_eq(need, strlen(want));
    /* every cap from 0 to need + 2: exact needed, no byte past cap, prefix on ERR_LIMIT */
    char buf[256];
    for (size_t cap = 0; cap <= need + 2; cap++) {
        memset(buf, 'Z', sizeof buf);
        size_t got = 12345;
        int rc = chat_render(CHAT_TMPL_CHATML, m, 2, true, cap ? buf : NULL, cap, &got);
        ck_assert_uint_eq(got, need);
        if (cap > need) {
            ck_assert_int_eq(rc, 0);
            ck_assert_str_eq(buf, want);
        } else {
            ck_assert_int_eq(rc, ERR_LIMIT);
            if (cap > 0) {
                ck_assert_uint_eq(strlen(buf), cap - 1);
                ck_assert_int_eq(memcmp(buf, want, cap - 1), 0);
            }
        }
        for (size_t k = cap; k < sizeof buf; k++) ck_assert_int_eq(buf[k], 'Z');
    }
    /* needed may be NULL */
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, m, 2, true, buf, sizeof buf, NULL), 0);
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, m, 2, true, buf, 3, NULL), ERR_LIMIT);
}
END_TEST

START_TEST(test_invalid_args)
{
    char buf[64];
    size_t need = 7;
    const struct chat_msg bad_role[] = {{NULL, "x"}};
    const struct chat_msg bad_content[] = {{"user", NULL}};
    const struct chat_msg ok[] = {{"user", "x"}};
    buf[0] = 'Q';
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, bad_role, 1, true, buf, 64, &need), ERR_INVALID);
    ck_assert_int_eq(buf[0], 'Q'); /* nothing written */
    ck_assert_uint_eq(need, 0);
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, bad_content, 1, true, buf, 64, &need),
                     ERR_INVALID);
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, NULL, 1, true, buf, 64, &need), ERR_INVALID);
    ck_assert_int_eq(chat_render(-1, ok, 1, true, buf, 64, &need), ERR_INVALID);
    ck_assert_int_eq(chat_render(CHAT_TMPL_N_, ok, 1, true, buf, 64, &need), ERR_INVALID);
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, ok, 1, true, NULL, 64, &need), ERR_INVALID);
    /* NULL msgs with n == 0 is an empty conversation */
    ck_assert_int_eq(chat_render(CHAT_TMPL_CHATML, NULL, 0, true, buf, 64, &need), 0);
    ck_assert_str_eq(buf, "<|im_start|>assistant\n");
}
END_TEST

START_TEST(test_empty_conversation)
{
    /* every template accepts it */
    for (int id = 0; id < CHAT_TMPL_N_; id++) {
        char *s = render(id, NULL, 0, true);
        free(s);
    }
    static const struct {
        int id;
        bool gen;
        const char *want;
    } cases[] = {
        {CHAT_TMPL_CHATML, false, ""},
        {CHAT_TMPL_CHATML, true, "<|im_start|>assistant\n"},
        {CHAT_TMPL_LLAMA2, true, "[INST] "},      /* the opening is unconditional */
        {CHAT_TMPL_MISTRAL_V1, true, ""},         /* turns open only on a message */
        {CHAT_TMPL_CHATGLM3, false, "[gMASK]sop"},
        {CHAT_TMPL_GIGACHAT, true, "<s>assistant<|role_sep|>"},
        {CHAT_TMPL_HUNYUAN_VL, true, "<｜hy_begin▁of▁sentence｜>"},
        /* bailing2 inserts its default system turn even for no messages; pangu does not */
        {CHAT_TMPL_BAILING2, true,
         "<role>SYSTEM</role>detailed thinking off<|role_end|><role>ASSISTANT</role>"},
        {CHAT_TMPL_PANGU_EMBEDDED, true, "[unused9]助手："},
        {CHAT_TMPL_RWKV_WORLD, true, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = render(cases[i].id, NULL, 0, cases[i].gen);
        ck_assert_msg(strcmp(s, cases[i].want) == 0, "%s: got \"%s\"",
                      chat_template_name(cases[i].id), s);
        free(s);
    }
}
END_TEST

#define M(r, c) {(r), (c)}
/* Quirks beyond the fixture, each expectation written from llama.cpp's code for that family. */
static const struct {
    int id;
    bool gen;
    struct chat_msg m[6];
    size_t n;
    const char *want;
} g_quirks[] = {
    /* role-echoing families pass any role through */
    {CHAT_TMPL_CHATML, false, {M("tool", "42")}, 1, "<|im_start|>tool\n42<|im_end|>\n"},
    /* bailing upper-cases roles except user -> HUMAN; bytes >= 0x80 untouched */
    {CHAT_TMPL_BAILING, false, {M("tool", "x"), M("rôle", "y")}, 2,
     "<role>TOOL</role>x<role>RôLE</role>y"},
    /* openchat capitalises the first byte of non-system roles */
    {CHAT_TMPL_OPENCHAT, false, {M("tool", "x"), M("", "y")}, 2,
     "GPT4 Correct Tool: x<|end_of_turn|>GPT4 Correct : y<|end_of_turn|>"},
    /* families with fixed role texts drop unknown roles */
    {CHAT_TMPL_VICUNA, true, {M("tool", "x"), M("user", "u")}, 2, "USER: u\nASSISTANT:"},
    {CHAT_TMPL_EXAONE3, false, {M("tool", " t ")}, 1, ""},
    {CHAT_TMPL_EXAONE4, false, {M("tool", " t ")}, 1, "[|tool|]t[|endofturn|]\n"},
    {CHAT_TMPL_KIMI_K2, false, {M("other", "c")}, 1, "c<|im_end|>"},
    {CHAT_TMPL_HUNYUAN_MOE, false, {M("user", "u")}, 1, "<|startoftext|>u<|extra_0|>"},
    /* gemma: system text trimmed, concatenated, merged into the next non-model turn */
    {CHAT_TMPL_GEMMA, true,
     {M("system", " sys A "), M("system", "B"), M("user", " hi "), M("assistant", "yo"),
      M("user", "q")},
     5,
     "<start_of_turn>user\nsys AB\n\nhi<end_of_turn>\n<start_of_turn>model\nyo<end_of_turn>\n"
     "<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\n"},
    {CHAT_TMPL_GEMMA, false, {M("system", "S"), M("assistant", "a"), M("user", "u")}, 3,
     "<start_of_turn>model\na<end_of_turn>\n<start_of_turn>user\nS\n\nu<end_of_turn>\n"},
    {CHAT_TMPL_GEMMA, false, {M("system", "  "), M("user", "u")}, 2,
     "<start_of_turn>user\nu<end_of_turn>\n"},
    /* orion merges the system text (untrimmed) into the next user turn, ignores gen */
    {CHAT_TMPL_ORION, true, {M("system", "S "), M("user", "u"), M("assistant", "a")}, 3,
     "Human: S \n\nu\n\nAssistant: </s>a</s>"},
    /* monarch: in-history <s> on every message but the first */
    {CHAT_TMPL_MONARCH, true, {M("user", "a"), M("assistant", "b")}, 2,
     "user\na</s>\n<s>assistant\nb</s>\n<s>assistant\n"},
    /* rwkv: the answer cue follows a final user turn whatever add_generation_prompt says */
    {CHAT_TMPL_RWKV_WORLD, true, {M("user", "a"), M("assistant", " b ")}, 2,
     "User: a\n\nAssistant: b\n\n"},
    {CHAT_TMPL_RWKV_WORLD, false, {M("user", " a ")}, 1, "User: a\n\nAssistant:"},
    /* gigachat and hunyuan take a system prompt only as the first message */
    {CHAT_TMPL_GIGACHAT, false, {M("user", "u"), M("system", "S")}, 2,
     "<s>user<|role_sep|>u<|message_sep|>available functions<|role_sep|>[]<|message_sep|>"},
    {CHAT_TMPL_HUNYUAN_DENSE, true, {M("user", "u"), M("system", "s")}, 2,
     "<｜hy_User｜>u<｜hy_Assistant｜>"},
    {CHAT_TMPL_HUNYUAN_VL, true, {M("system", "s"), M("system", "t"), M("assistant", "a")}, 3,
     "<｜hy_begin▁of▁sentence｜>s<｜hy_place▁holder▁no▁3｜>a<｜hy_Assistant｜>"},
    /* granite tool calls */
    {CHAT_TMPL_GRANITE, false, {M("assistant_tool_call", "[x]")}, 1,
     "<|start_of_role|>assistant_tool_call<|end_of_role|><|tool_call|>[x]<|end_of_text|>\n"},
    {CHAT_TMPL_GRANITE_4_0, false, {M("assistant_tool_call", "[x]")}, 1,
     "<|start_of_role|>assistant<|end_of_role|><|tool_call|>[x]<|end_of_text|>\n"},
    /* gpt-oss ends assistant turns with <|return|> */
    {CHAT_TMPL_GPT_OSS, false, {M("assistant", "a"), M("tool", "t")}, 2,
     "<|start|>assistant<|message|>a<|return|><|start|>tool<|message|>t<|end|>"},
    /* seed trims only the assistant; grok trims all but the assistant */
    {CHAT_TMPL_SEED_OSS, false, {M("assistant", " a "), M("user", " u ")}, 2,
     "<seed:bos>assistant\na<seed:eos><seed:bos>user\n u <seed:eos>"},
    {CHAT_TMPL_GROK2, false, {M("user", " u "), M("assistant", " a ")}, 2,
     "Human: u<|separator|>\n\nAssistant:  a <|separator|>\n\n"},
    /* [INST] turns: a system message after an answer re-opens a turn; v3 trims answers */
    {CHAT_TMPL_MISTRAL_V3, true,
     {M("user", "u"), M("assistant", "  a  "), M("system", "s"), M("user", "v")}, 4,
     "[INST] u[/INST] a</s>[INST] s\n\nv[/INST]"},
    {CHAT_TMPL_MISTRAL_V7, true, {M("tool", "t")}, 1, " t</s>"},
    {CHAT_TMPL_LLAMA2_SYS_STRIP, true, {M("system", " s "), M("user", " u ")}, 2,
     "[INST] <<SYS>>\ns\n<</SYS>>\n\nu [/INST]"},
    {CHAT_TMPL_LLAMA2_SYS_BOS, true, {M("user", "u"), M("assistant", "a"), M("tool", "t")}, 3,
     "[INST] u [/INST]a</s><s>[INST] t</s>"},
    /* trimming uses the C-locale space set: \t\n\v\f\r and space, nothing else */
    {CHAT_TMPL_LLAMA3, false, {M("user", "\t\n\v\f\r x\xc2\xa0 \r")}, 1,
     "<|start_header_id|>user<|end_header_id|>\n\nx\xc2\xa0<|eot_id|>"},
    {CHAT_TMPL_COMMAND_R, false, {M("user", "   ")}, 1,
     "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|END_OF_TURN_TOKEN|>"},
    {CHAT_TMPL_MINICPM, true, {M("system", " s "), M("user", " u "), M("assistant", " a ")}, 3,
     "s<用户>u<AI>a"},
    {CHAT_TMPL_PANGU_EMBEDDED, false, {M("user", "u"), M("function", "f"), M("x", "y")}, 3,
     "[unused9]系统：[unused10][unused9]用户：u[unused10][unused9]方法：f[unused10]"},
    {CHAT_TMPL_BAILING2, true, {M("system", "s")}, 1,
     "<role>SYSTEM</role>s<|role_end|><role>ASSISTANT</role>"},
    {CHAT_TMPL_DOTS1, true, {M("system", "s"), M("user", "u"), M("assistant", "a")}, 3,
     "<|system|>s<|endofsystem|><|userprompt|>u<|endofuserprompt|><|response|>a"
     "<|endofresponse|><|response|>"},
};

START_TEST(test_quirks)
{
    for (size_t i = 0; i < sizeof g_quirks / sizeof g_quirks[0]; i++) {
        char *got = render(g_quirks[i].id, g_quirks[i].m, g_quirks[i].n, g_quirks[i].gen);
        char what[64];
        snprintf(what, sizeof what, "quirk %zu (%s)", i, chat_template_name(g_quirks[i].id));
        int bad = tutil_diff_report(what, got, strlen(got), g_quirks[i].want, strlen(g_quirks[i].want));
        free(got);
        ck_assert_msg(!bad, "%s", what);
    }
}
END_TEST

START_TEST(test_long_content)
{
    /* 4 MiB of content, plus a long role for the upper-casing path */
    size_t big = (size_t)4 << 20;
    char *c = malloc(big + 1);
    ck_assert_ptr_nonnull(c);
    memset(c, 'a', big);
    c[big] = 0;
    char role[300];
    memset(role, 'r', sizeof role - 1);
    role[sizeof role - 1] = 0;
    const struct chat_msg m[] = {{"user", c}, {role, c}};
    for (int id = 0; id < CHAT_TMPL_N_; id++) {
        size_t need = 0;
        ck_assert_int_eq(chat_render(id, m, 2, true, NULL, 0, &need), ERR_LIMIT);
        char *out = malloc(need + 1);
        ck_assert_ptr_nonnull(out);
        size_t need2 = 0;
        ck_assert_int_eq(chat_render(id, m, 2, true, out, need + 1, &need2), 0);
        ck_assert_uint_eq(need, need2);
        ck_assert_uint_eq(strlen(out), need);
        free(out);
    }
    /* bailing upper-cases a role longer than its 64-byte chunk */
    char *b = render(CHAT_TMPL_BAILING, &m[1], 1, false);
    ck_assert_uint_eq(strlen(b), strlen("<role></role>") + 299 + big);
    for (size_t k = 6; k < 6 + 299; k++) ck_assert_int_eq(b[k], 'R');
    free(b);
    free(c);
}
END_TEST

Suite *make_suite(void); /* called by TUTIL_MAIN */
Suite *make_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_builtin_names_match_llamacpp);
    tcase_add_test(tc, test_fixture_results);
    tcase_add_test(tc, test_gguf_phi3_detects);
    tcase_add_test(tc, test_detect_snippets);
    tcase_add_test(tc, test_detect_name_and_fallback);
    tcase_add_test(tc, test_names_roundtrip);
    tcase_add_test(tc, test_buffer_contract);
    tcase_add_test(tc, test_invalid_args);
    tcase_add_test(tc, test_empty_conversation);
    tcase_add_test(tc, test_quirks);
    tcase_add_test(tc, test_long_content);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
