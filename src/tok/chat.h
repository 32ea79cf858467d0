/* chat: llama.cpp's built-in chat templates: the list of names, detection of the family from a
 * model's Jinja `tokenizer.chat_template`, and rendering of a conversation into prompt text.
 *
 * This is not a Jinja engine. Like llama.cpp's llama_chat_apply_template, it recognises the
 * template by substrings of the Jinja text and then renders a fixed, hand-written format for
 * that family; the output is byte-identical to llama.cpp's for every built-in name (checked
 * against ../shared/chat/templates.json). A Jinja template that matches no family falls back to
 * chatml and says so through a flag, so the caller can warn (llama.cpp refuses instead).
 *
 * Ids: 0 .. CHAT_TMPL_N_BUILTIN-1 are the built-in names in byte order, exactly the order of
 * llama_chat_builtin_templates(). CHAT_TMPL_DOTS1 is a family llama.cpp detects but offers no
 * name for; it has an id and a display name but chat_template_by_name() does not accept it.
 *
 * Strings are borrowed, NUL-terminated UTF-8; nothing here allocates. */
#ifndef LMPIPE_TOK_CHAT_H
#define LMPIPE_TOK_CHAT_H

#include "../gguf/gguf.h"
#include "../util/err.h"

#include <stdbool.h>
#include <stddef.h>

enum chat_tmpl {
    CHAT_TMPL_BAILING,
    CHAT_TMPL_BAILING_THINK,
    CHAT_TMPL_BAILING2,
    CHAT_TMPL_CHATGLM3,
    CHAT_TMPL_CHATGLM4,
    CHAT_TMPL_CHATML,
    CHAT_TMPL_COMMAND_R,
    CHAT_TMPL_DEEPSEEK,
    CHAT_TMPL_DEEPSEEK_OCR,
    CHAT_TMPL_DEEPSEEK2,
    CHAT_TMPL_DEEPSEEK3,
    CHAT_TMPL_EXAONE_MOE,
    CHAT_TMPL_EXAONE3,
    CHAT_TMPL_EXAONE4,
    CHAT_TMPL_FALCON3,
    CHAT_TMPL_GEMMA,
    CHAT_TMPL_GIGACHAT,
    CHAT_TMPL_GLMEDGE,
    CHAT_TMPL_GPT_OSS,
    CHAT_TMPL_GRANITE,
    CHAT_TMPL_GRANITE_4_0,
    CHAT_TMPL_GRANITE_4_1,
    CHAT_TMPL_GROK2,
    CHAT_TMPL_HUNYUAN_DENSE,
    CHAT_TMPL_HUNYUAN_MOE,
    CHAT_TMPL_HUNYUAN_VL,
    CHAT_TMPL_KIMI_K2,
    CHAT_TMPL_LLAMA2,
    CHAT_TMPL_LLAMA2_SYS,
    CHAT_TMPL_LLAMA2_SYS_BOS,
    CHAT_TMPL_LLAMA2_SYS_STRIP,
    CHAT_TMPL_LLAMA3,
    CHAT_TMPL_LLAMA4,
    CHAT_TMPL_MEGREZ,
    CHAT_TMPL_MINICPM,
    CHAT_TMPL_MISTRAL_V1,
    CHAT_TMPL_MISTRAL_V3,
    CHAT_TMPL_MISTRAL_V3_TEKKEN,
    CHAT_TMPL_MISTRAL_V7,
    CHAT_TMPL_MISTRAL_V7_TEKKEN,
    CHAT_TMPL_MONARCH,
    CHAT_TMPL_OPENCHAT,
    CHAT_TMPL_ORION,
    CHAT_TMPL_PANGU_EMBEDDED,
    CHAT_TMPL_PHI3,
    CHAT_TMPL_PHI4,
    CHAT_TMPL_RWKV_WORLD,
    CHAT_TMPL_SEED_OSS,
    CHAT_TMPL_SMOLVLM,
    CHAT_TMPL_SOLAR_OPEN,
    CHAT_TMPL_VICUNA,
    CHAT_TMPL_VICUNA_ORCA,
    CHAT_TMPL_YANDEX,
    CHAT_TMPL_ZEPHYR,
    CHAT_TMPL_N_BUILTIN, /* 54: the named templates end here */
    CHAT_TMPL_DOTS1 = CHAT_TMPL_N_BUILTIN, /* detected only, no name */
    CHAT_TMPL_N_
};

struct chat_msg {
    const char *role;    /* "system", "user", "assistant", "tool", ...; each template decides */
    const char *content; /* what it does with roles it does not know, as llama.cpp does */
};

/* Number of named built-in templates (54); ids 0 .. count-1 have names. */
size_t chat_template_count(void);
/* Id of a built-in name (exact, case-sensitive), or ERR_NOT_FOUND (negative). */
int chat_template_by_name(const char *name);
/* Name of an id ("chatml", ...; "dots1" for CHAT_TMPL_DOTS1), NULL when out of range. */
const char *chat_template_name(int id);

/* Detect the family of the Jinja text jinja[0..len) (a built-in name is accepted as is). When
 * nothing matches (also for NULL or empty text) returns CHAT_TMPL_CHATML and sets *fallback to
 * true; otherwise sets it to false. `fallback` may be NULL. Never fails. */
int chat_template_detect(const char *jinja, size_t len, bool *fallback);

/* Detect from the file's `tokenizer.chat_template`; a missing or non-string key counts as
 * unknown (chatml, *fallback = true). */
int chat_template_from_gguf(const struct gguf_ctx *g, bool *fallback);

/* Render msgs[0..n) with template `tmpl`. The output is `*needed` bytes (not counting the NUL
 * terminator); it fits when cap > *needed, like snprintf. Returns
 *   0             out holds the text and a NUL
 *   ERR_LIMIT     cap too small: out holds a NUL-terminated prefix (if cap > 0); retry with
 *                 cap = *needed + 1. out may be NULL with cap == 0 to ask for the size.
 *   ERR_INVALID   unknown tmpl id, msgs NULL with n > 0, a NULL role or content, out NULL with
 *                 cap > 0 (nothing written)
 *   ERR_OVERFLOW  the length does not fit in size_t
 * `needed` may be NULL. add_generation_prompt appends the opening of the assistant's turn;
 * some families (mistral, llama2, orion, minicpm, hunyuan, deepseek-ocr, rwkv-world) ignore
 * it, exactly as llama.cpp does. */
int chat_render(int tmpl, const struct chat_msg *msgs, size_t n, bool add_generation_prompt,
                char *out, size_t cap, size_t *needed);

#endif
