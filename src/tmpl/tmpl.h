/* tmpl: chat templates from the model file. A sandboxed Jinja2 interpreter that renders a
 * model's `tokenizer.chat_template` the way transformers' apply_chat_template does (jinja2 3.1,
 * ImmutableSandboxedEnvironment, trim_blocks + lstrip_blocks, loop controls, transformers' own
 * `tojson`, `raise_exception` and `strftime_now`), byte for byte.
 *
 * Pure: template text and JSON values in, text out. No I/O, no clock (the time is an option),
 * no global state; a parsed template is immutable and may be rendered from several threads at
 * once. Untrusted templates are bounded: parser nesting, macro recursion, total work (a step
 * counter), output size and memory all have limits, so a hostile template is an error, never
 * a hang or a crash.
 *
 * Errors:
 *   - tmpl_parse: ERR_SYNTAX (or ERR_UNSUPPORTED for constructs jinja2 has but a chat template
 *     cannot use: extends/include/import) with "line L, column C: what" in ei->msg and the byte
 *     offset of the offending token in ei->offset;
 *   - tmpl_render: ERR_TEMPLATE when the template refuses the conversation or fails the way
 *     Python would (raise_exception, a TypeError, an undefined value used); ei->msg starts with
 *     the Python exception name as jinja2 reports it, e.g. "TemplateError: System role not
 *     supported" (the template's own message) or "TypeError: 'NoneType' object is not
 *     iterable", followed by " (line L, column C)". ERR_LIMIT when a bound is hit, ERR_NOMEM.
 *
 * Values: `vars` is a JSON object of top-level variables (messages, tools, add_generation_prompt,
 * bos_token, ...; see tmpl_vars_from_request). JSON integers stay Python ints, reals floats. */
#ifndef LMPIPE_TMPL_TMPL_H
#define LMPIPE_TMPL_TMPL_H

#include "../util/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tmpl;

/* Bounds and inputs of one render; tmpl_opts_default fills the defaults. A zero limit means the
 * default. */
struct tmpl_opts {
    int64_t now;          /* strftime_now's clock, seconds since the Unix epoch */
    int32_t utc_offset;   /* seconds east of UTC that strftime_now's local time is in */
    uint64_t max_steps;   /* total work: expressions + statements + bytes/64 of string work */
    size_t max_output;    /* bytes of rendered text */
    size_t max_mem;       /* bytes of values the render may allocate */
    uint32_t max_depth;   /* nested macro / caller / recursive-loop calls */
};

#define TMPL_DEFAULT_STEPS 10000000ull
#define TMPL_DEFAULT_OUTPUT (32u << 20)
#define TMPL_DEFAULT_MEM (64u << 20)
#define TMPL_DEFAULT_DEPTH 100u
/* Parser nesting (blocks inside blocks, brackets inside brackets) is bounded at parse time. */
#define TMPL_MAX_NEST 100

/* Defaults: now = 0 (1970-01-01 UTC), utc_offset 0, the TMPL_DEFAULT_* limits. */
void tmpl_opts_default(struct tmpl_opts *o);

/* Parse template source (UTF-8, `len` bytes, need not be NUL-terminated). On success *out owns
 * the template (tmpl_free). */
int tmpl_parse(const char *src, size_t len, struct tmpl **out, struct err_info *ei);
void tmpl_free(struct tmpl *t);

/* Render with `vars` (a JSON object; NULL = no variables). On success *out is a malloc'd,
 * NUL-terminated string of *len bytes (the text may itself contain NUL bytes); the caller frees
 * it. opts may be NULL (defaults). */
int tmpl_render(const struct tmpl *t, const json_t *vars, const struct tmpl_opts *opts,
                char **out, size_t *len, struct err_info *ei);

/* Line and column (1-based; the column counts characters) of byte offset `off` in src. */
void tmpl_line_col(const char *src, size_t len, uint64_t off, unsigned *line, unsigned *col);

/* ---- building the variables (tmpl_req.c) ----
 * How transformers' apply_chat_template calls the template: render(messages=..., tools=...,
 * documents=..., add_generation_prompt=..., **special tokens, **extra kwargs). */
struct tmpl_req_opts {
    const char *bos_token;      /* NULL: not set (the variable stays undefined) */
    const char *eos_token;
    bool add_generation_prompt; /* used when the request does not say */
    /* tool_calls[].function.arguments: false = as objects (a JSON string is parsed into an
     * object, as transformers users pass them), true = as the JSON string OpenAI sends (an
     * object is serialised the way Python's json.dumps does). */
    bool arguments_as_string;
    /* Leave tool_calls[].function.arguments exactly as the request has them (string or object;
     * arguments_as_string is then ignored): the raw renderer and the probes want this. */
    bool arguments_as_given;
    /* Pass the request's other top-level keys through as variables (`lmpipe template render`
     * wants this: REQUEST.json may hold bos_token, enable_thinking, ...). A chat request passes
     * only chat_template_kwargs. */
    bool extra_top_level;
};

/* From an OpenAI-shaped request object {messages, tools?, documents?, add_generation_prompt?,
 * chat_template_kwargs?: {...}, ...} build a new object of template variables: messages (a
 * copy, arguments converted per opts), tools (null when absent, as transformers passes None),
 * documents (null when absent), add_generation_prompt, bos_token / eos_token when given, then
 * every key of chat_template_kwargs (they win, as kwargs win over special tokens in
 * transformers), and with extra_top_level the request's other keys. Returns 0 and *out (the
 * caller json_decref's) or ERR_INVALID with a message saying what is wrong (messages missing or
 * not an array of objects with a string role, tools not an array, an arguments string that is
 * not JSON when objects are asked for). */
int tmpl_vars_from_request(const json_t *req, const struct tmpl_req_opts *o, json_t **out,
                           struct err_info *ei);

/* ---- what a template accepts (tmpl_req.c) ----
 * llama.cpp decides its conversation fixes from capabilities found by rendering probe
 * conversations (common/jinja/caps.cpp); tmpl_caps does the same with markers in the output:
 *   system_role      a system message's text appears in the output;
 *   string_content   a user message with string content renders and its text appears;
 *   typed_content    content as [{"type": "text", "text": ...}] parts renders with the text;
 *   tool_calls       an assistant tool call (object, else string arguments) renders its name;
 *   object_arguments ... and an argument value of an object argument appears;
 *   parallel_calls   the second of two calls in one message appears;
 *   tools            a tool definition's name appears in the output. */
struct tmpl_caps {
    bool system_role, string_content, typed_content, tool_calls, object_arguments,
        parallel_calls, tools;
};
/* opts: the bounds for the probe renders (NULL: defaults). Never fails: a probe that errors
 * just means "not supported". */
void tmpl_caps_probe(const struct tmpl *t, const struct tmpl_req_opts *ro,
                     const struct tmpl_opts *opts, struct tmpl_caps *out);

/* ---- conversation fixes (tmpl_req.c) ----
 * llama.cpp's workarounds (common/chat.cpp, namespace workaround), as pure functions: each takes
 * a messages array and returns a new one (the caller json_decref's), or NULL when messages is not
 * an array or memory runs out. */

/* role "developer" -> "system" (llama.cpp does this for every template but GPT-OSS's, whose
 * source contains "<|channel|>"). */
json_t *tmpl_msgs_developer_to_system(const json_t *messages);

/* For a template without a system role: a leading system message is removed and its content
 * prepended to the next message's content with "
" between; a system message alone is dropped.
 * Contents that are not both strings are left alone (the template then refuses, as before). */
json_t *tmpl_msgs_fold_system(const json_t *messages);

/* Messages with tool_calls get content "" where content is missing or null (templates that
 * concatenate content). */
json_t *tmpl_msgs_fill_tool_call_content(const json_t *messages);

/* Content parts <-> strings: to_string joins [{"type":"text","text":...}] parts with "
"
 * (other part types are skipped); !to_string wraps a string content as one text part. */
json_t *tmpl_msgs_content_form(const json_t *messages, bool to_string);

#endif
