/* fuzz_chat: libFuzzer harness for eng's chat API: the request JSON a client sends (`chat`
 * params, batch lines) through eng_chat_check, and every accepted request through
 * eng_chat_render with the model's own template (Jinja, with the fixes) and with a built-in one
 * the input picks.
 *
 * Contract checked on every input: a refusal is ERR_INVALID or ERR_UNSUPPORTED with a message;
 * rendering refuses exactly what the check refuses, with the same code; an accepted request
 * renders into NUL-free text of the reported length, or is refused with a message: by a Jinja
 * template (ERR_TEMPLATE) or by a built-in one that cannot write tools, tool calls or documents
 * (ERR_UNSUPPORTED). The vocabularies (with their chat templates) come, once, from
 * $LMPIPE_SHARED (default ../shared), opened vocab-only. */
#include "eng/eng.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vocab_files[] = {
    "vocab/ggml-vocab-qwen2.gguf",     /* a chatml-family template */
    "vocab/ggml-vocab-llama-bpe.gguf", /* llama3 */
    "vocab/ggml-vocab-phi-3.gguf",     /* phi3 */
    "models/stories260K-F32.gguf",     /* none: the chatml fallback */
};
#define N_VOCABS (sizeof vocab_files / sizeof vocab_files[0])

static struct eng_model *g_em[N_VOCABS];

static void load_once(void)
{
    static int tried;
    if (tried) return;
    tried = 1;
    const char *base = getenv("LMPIPE_SHARED");
    for (size_t k = 0; k < N_VOCABS; k++) {
        char path[1024];
        struct err_info ei;
        err_clear(&ei);
        snprintf(path, sizeof path, "%s/%s", base && *base ? base : "../shared", vocab_files[k]);
        if (eng_model_open_vocab(&g_em[k], path, &ei)) {
            fprintf(stderr, "fuzz_chat: cannot load %s: %s\n", path, ei.msg);
            g_em[k] = NULL;
        }
    }
}

static void render_ok(const struct eng_model *em, const json_t *req, const struct eng_chat_opts *o)
{
    struct eng_prompt pr;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_chat_render(em, req, o, &pr, &ei);
    if (rc) {
        bool jinja = (!o || o->kind == ENG_TMPL_MODEL) && rc == ERR_TEMPLATE;
        if ((!jinja && rc != ERR_UNSUPPORTED) || !ei.msg[0] || pr.text) abort();
        return;
    }
    if (!pr.text || strlen(pr.text) != pr.len || !pr.tmpl) abort();
    eng_prompt_free(&pr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_once();
    json_t *req = json_loadb((const char *)data, size, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
    if (!req) return 0;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_chat_check(req, &ei);
    if (rc && ((rc != ERR_INVALID && rc != ERR_UNSUPPORTED) || !ei.msg[0])) abort();
    struct eng_chat_opts o;
    eng_chat_opts_default(&o);
    o.kind = ENG_TMPL_BUILTIN;
    o.name = eng_chat_template_name(size % eng_chat_template_count());
    o.add_generation_prompt = size % 2;
    for (size_t k = 0; k < N_VOCABS; k++) {
        if (!g_em[k]) continue;
        if (rc == 0) {
            render_ok(g_em[k], req, NULL);
            render_ok(g_em[k], req, &o);
        } else {
            struct eng_prompt pr;
            if (eng_chat_render(g_em[k], req, NULL, &pr, NULL) != rc || pr.text) abort();
        }
    }
    json_decref(req);
    return 0;
}
