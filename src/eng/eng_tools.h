/* eng_tools: tool calling's pure parts, shared by eng's files and the tests (not by front ends,
 * which only see eng.h).
 *
 *   tools      the request's OpenAI-shaped `tools` checked and kept (names, argument schemas),
 *              `tool_choice`, call ids (eng_tools.c)
 *   syntax     how a model family writes a call: the literals around a call, the trigger text
 *              that starts one, how arguments are spelled; known families found by markers in
 *              the template's source, other templates by rendering a conversation with a call
 *              and one without and comparing the two; our own generic format otherwise
 *              (eng_tsyn.c)
 *   grammar    the GBNF of a reply's call section for a set of tools: a declared name, then
 *              arguments valid against that tool's JSON Schema (gram_schema_to_gbnf_multi in
 *              tool mode), then another call or the end (eng_tgram.c)
 *   parser     the generated text of a call section, incrementally, into calls: name as soon as
 *              it is complete, arguments as JSON text as they stream (eng_tparse.c)
 *
 * The shape of every syntax (struct eng_tsyn), one reply's call section:
 *
 *     sec_open  call_open NAME name_close ARGS call_close  ( call_sep call_open NAME ... )*
 *     sec_close
 *
 * e.g. Hermes / Qwen: call_open `<tool_call>\n{"name": "`, name_close `", "arguments": `,
 * call_close `}\n</tool_call>`, call_sep `\n`; Mistral: sec_open `[TOOL_CALLS][`, call_open
 * `{"name": "`, call_sep `, `, sec_close `]`. ARGS is the arguments object as JSON, or (Qwen3-Coder)
 * `<parameter=KEY>\nVALUE\n</parameter>\n` per argument, or (LFM2) Python keyword arguments
 * `KEY=VALUE, ...` with JSON values. The trigger is a prefix of sec_open + call_open.
 *
 * Invariants: every literal of a syntax is NUL-free and shorter than ENG_TSYN_LIT; a tool name
 * matches [A-Za-z0-9_-]{1,64} (so no literal that follows a name can begin with a name byte);
 * the parser accepts exactly the texts the grammar accepts for the same tools and syntax (the
 * tests generate texts from the grammar and parse them). */
#ifndef LMPIPE_ENG_ENG_TOOLS_H
#define LMPIPE_ENG_ENG_TOOLS_H

#include "eng.h"

#include "../util/err.h"
#include "../util/vocab.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tmpl;
struct tmpl_req_opts;

/* ---------------- a growable string ----------------
 * Errors stick: after a failed allocation every add is a no-op and oom stays set, so a builder
 * checks once at the end. p is NUL-terminated whenever it is not NULL. */
struct eng_sb {
    char *p;
    size_t len, cap;
    bool oom;
};
void eng_sb_add(struct eng_sb *b, const void *s, size_t n);
void eng_sb_str(struct eng_sb *b, const char *s);
void eng_sb_printf(struct eng_sb *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* s[0..n) as the inside of a JSON string (quotes not included): ", \ and control characters
 * escaped, everything else as is. */
void eng_sb_json_str(struct eng_sb *b, const char *s, size_t n);
void eng_sb_free(struct eng_sb *b);

/* ---------------- tools ---------------- */

#define ENG_TOOL_NAME_MAX 64  /* OpenAI's limit on a function name */
#define ENG_TOOLS_MAX ENG_MAX_TOOLS /* tools in one request (eng.h) */
#define ENG_TOOL_CALLS_MAX ENG_MAX_TOOL_CALLS /* calls in one reply (the grammar's bound) */

struct eng_tool {
    char name[ENG_TOOL_NAME_MAX + 1];
    size_t name_len;
    json_t *params; /* own reference: the arguments' schema, an object schema ("type" added) */
    json_t *fn;     /* own reference: the request's "function" object (name, description, ...) */
};
struct eng_toolset {
    struct eng_tool *t; /* [n] */
    size_t n;
};

/* Check and keep `tools` (an array of {"type": "function", "function": {"name", "description"?,
 * "parameters"?, "strict"?}}). ERR_INVALID names the tool and what is wrong: not that shape, a
 * name outside [A-Za-z0-9_-]{1,64}, a duplicate name, parameters that are not an object schema
 * (absent parameters mean no arguments). A schema the converter refuses is caught later, when
 * the grammar is built (eng_tools_gbnf), with the converter's code and reason. */
int eng_toolset_parse(const json_t *tools, struct eng_toolset *ts, struct err_info *ei);
void eng_toolset_free(struct eng_toolset *ts); /* safe on zeroed */
/* Index of the tool named name[0..len), or -1. */
int eng_toolset_find(const struct eng_toolset *ts, const char *name, size_t len);

enum eng_tchoice {
    ENG_TC_NONE = 0, /* no calls: the grammar never constrains */
    ENG_TC_AUTO,     /* text, or calls from the trigger on */
    ENG_TC_REQUIRED, /* calls from the first token */
    ENG_TC_NAMED,    /* calls of one tool from the first token */
};
/* `tool_choice` (NULL or JSON null: auto when there are tools, none otherwise): "none", "auto",
 * "required", or {"type": "function", "function": {"name": N}} with N a declared tool (its
 * index into *named). ERR_INVALID says what is wrong. */
int eng_tool_choice_parse(const json_t *tc, const struct eng_toolset *ts, int *choice, int *named,
                          struct err_info *ei);

/* Call ids, unique per process: "call_" + 24 hex digits (a counter mixed with the process
 * start), or for ENG_TID_ALNUM9 nine characters of [A-Za-z0-9] (Mistral's templates refuse any
 * other id). out needs 32 bytes. Thread-safe. */
enum eng_tid { ENG_TID_CALL = 0, ENG_TID_ALNUM9 };
void eng_tool_call_id(int style, char out[32]);

/* ---------------- syntax ---------------- */

#define ENG_TSYN_LIT 128 /* bytes of one literal, NUL included */

enum eng_tfam {
    ENG_TF_GENERIC = 0, /* ours: the Hermes layout, tools described in the system message */
    ENG_TF_HERMES,      /* Hermes 2/3, Qwen2.5, Qwen3, SmolLM3: JSON in <tool_call> tags */
    ENG_TF_GRANITE,     /* Granite 3.x: <|tool_call|>[{"name", "arguments"}, ...] */
    ENG_TF_LLAMA3,      /* Llama 3.1-3.3: a bare {"name", "parameters"} as the whole reply */
    ENG_TF_MISTRAL,     /* Mistral / Nemo: [TOOL_CALLS][{"name", "arguments"}, ...] */
    ENG_TF_QWEN3_CODER, /* <tool_call>\n<function=N>\n<parameter=K>\nV\n</parameter>\n... */
    ENG_TF_FUNCTIONARY, /* functionary v3.2: >>>all\ntext, >>>NAME\n{args} */
    ENG_TF_PYTHONIC,    /* LFM2: <|tool_call_start|>[name(k=v, ...)]<|tool_call_end|> */
    ENG_TF_DEEPSEEK_R1, /* <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>N\n```json\n... */
    ENG_TF_DERIVED,     /* found by rendering the template (eng_tsyn_derive) */
    ENG_TF_COUNT_
};
enum eng_targs {
    ENG_TA_JSON = 0, /* the arguments object as JSON */
    ENG_TA_XML,      /* <parameter=KEY>\nVALUE\n</parameter>\n per argument (strings raw) */
    ENG_TA_PY,       /* KEY=VALUE, ... (values as JSON) */
};

struct eng_tsyn {
    int family; /* enum eng_tfam */
    int args;   /* enum eng_targs */
    int ids;    /* enum eng_tid */
    bool parallel;   /* the format carries several calls in one reply */
    bool at_start;   /* the trigger counts only at the start of the reply (after whitespace) */
    char trigger[ENG_TSYN_LIT];      /* "auto": text that starts a call section */
    char content_open[ENG_TSYN_LIT]; /* a reply of text starts with this (dropped), or "" */
    char prompt_tail[ENG_TSYN_LIT];  /* removed from the end of the prompt (the model writes it) */
    char sec_open[ENG_TSYN_LIT], call_open[ENG_TSYN_LIT], name_close[ENG_TSYN_LIT];
    char call_close[ENG_TSYN_LIT], call_sep[ENG_TSYN_LIT], sec_close[ENG_TSYN_LIT];
};

const char *eng_tfam_name(int family); /* "generic", "hermes", ...; "derived" */
/* The syntax of a known family (ENG_TF_DERIVED gives the generic one). */
void eng_tsyn_family(struct eng_tsyn *s, int family);
/* The family a template's source text says it is (by its markers), or ENG_TF_DERIVED when it
 * names none of them (then derive, and fall back to generic). */
int eng_tsyn_detect(const char *src, size_t len);
/* Derive a syntax by rendering, with template t, a conversation whose last assistant turn holds
 * a call and the same conversation without it (and one with two calls, for call_sep). 0, or
 * ERR_NOT_FOUND when the template does not show a call in a form this can describe (then use
 * the generic format). ro: how to render (bos/eos tokens; arguments_as_string is tried both
 * ways). */
int eng_tsyn_derive(const struct tmpl *t, const struct tmpl_req_opts *ro, struct eng_tsyn *out);
/* The invariants a syntax must keep (literals sane, trigger a prefix of sec_open + call_open,
 * name_close not starting with a name byte, ...): 0 or ERR_INVALID saying which. */
int eng_tsyn_check(const struct eng_tsyn *s, struct err_info *ei);

/* The text of calls (OpenAI tool_calls: [{"function": {"name", "arguments"}}], arguments a JSON
 * string or an object) in syntax s, appended to out (ts, may be NULL: the declared tools, whose
 * schemas say which XML values are written raw; without them every string is): what a template that cannot show calls
 * gets as the assistant's content, and the example in the tools' description. ERR_INVALID when
 * a call is not that shape or its arguments are not a JSON object. */
int eng_tsyn_render(const struct eng_tsyn *s, const struct eng_toolset *ts, const json_t *calls,
                    struct eng_sb *out, struct err_info *ei);
/* The system-message text describing tools and the syntax (templates that do not show tools). */
int eng_tsyn_describe(const struct eng_tsyn *s, const struct eng_toolset *ts, struct eng_sb *out,
                      struct err_info *ei);

/* ---------------- grammar ---------------- */

struct eng_tgram_opts {
    int choice;       /* ENG_TC_AUTO / REQUIRED / NAMED (NONE: no grammar) */
    int named;        /* ENG_TC_NAMED: the tool's index */
    bool parallel;    /* more than one call (also needs the syntax's parallel) */
    bool lazy;        /* the grammar starts after the trigger (auto), else at the section start */
    const struct vocab_view *v; /* NULL: every literal as text; else literals that a control
                                   token of v spells are written as that token (<|...|>) */
};
/* The call section's grammar (root rule "root"). Errors: the schema converter's (ERR_UNSUPPORTED,
 * ERR_INVALID, ERR_LIMIT ... with the tool's name), ERR_INVALID for a property name the syntax
 * cannot write (XML: no '>' or newline; Python: an identifier). *gbnf malloc'd. */
int eng_tools_gbnf(const struct eng_tsyn *s, const struct eng_toolset *ts,
                   const struct eng_tgram_opts *o, char **gbnf, size_t *len, struct err_info *ei);
/* Tool i's arguments alone, as compact-or-spaced JSON (root rule "root"), for validating a
 * parsed call (bytes only). */
int eng_tools_args_gbnf(const struct eng_toolset *ts, size_t i, char **gbnf, size_t *len,
                        struct err_info *ei);
/* Is property schema p written raw (unquoted) in the XML syntax? True for a plain string schema
 * (type "string" and annotations only): its value is any text. */
bool eng_tools_xml_raw(const json_t *p);

/* ---------------- parser ---------------- */

enum eng_tev_kind {
    ENG_TEV_BEGIN = 0, /* a call's name is complete: index, tool, name */
    ENG_TEV_ARGS,      /* more of its arguments' JSON text: text[0..len) */
    ENG_TEV_END,       /* its arguments are complete */
};
struct eng_tev {
    int kind;
    size_t index;     /* call index in this reply, from 0 */
    int tool;         /* index into the tool set */
    const char *text; /* BEGIN: the name; ARGS: the piece */
    size_t len;
};
/* A nonzero return stops the parser: feed returns it. */
typedef int (*eng_tev_fn)(void *ud, const struct eng_tev *ev);

#define ENG_TPARSE_HOLD 32 /* bytes a value may hold back (a possible "\n</parameter>") */
struct eng_tparse {
    const struct eng_tsyn *s;
    const struct eng_toolset *ts;
    eng_tev_fn fn;
    void *ud;
    int st;             /* state (eng_tparse.c) */
    size_t lit_pos;     /* bytes of the current literal matched */
    int alt;            /* after a call: which continuation is being matched (-1: undecided) */
    size_t n_calls;     /* calls begun */
    int tool;           /* the current call's tool */
    char name[ENG_TOOL_NAME_MAX + 1];
    size_t name_len;
    /* JSON value scanner */
    int depth;
    bool in_str, esc, any_value;
    /* keyed arguments (XML, Python) */
    size_t n_args;      /* arguments written in the current call */
    uint64_t seen;      /* which of its first 64 properties were written */
    char key[ENG_TSYN_LIT];
    size_t key_len;
    bool raw;           /* XML: the current value is raw text */
    char hold[ENG_TPARSE_HOLD];
    size_t n_hold;
    uint64_t off;       /* bytes fed so far (error offsets) */
    int err;            /* the first error: sticky */
};
void eng_tparse_init(struct eng_tparse *p, const struct eng_tsyn *s, const struct eng_toolset *ts,
                     eng_tev_fn fn, void *ud);
/* Feed the next bytes of the section text. 0; ERR_SYNTAX when the text leaves the syntax (ei:
 * offset and what was expected), an unknown tool name or argument is ERR_NOT_FOUND; or the
 * callback's nonzero return. After an error every feed returns it again. */
int eng_tparse_feed(struct eng_tparse *p, const char *buf, size_t n, struct err_info *ei);
/* The text has ended: 0 when it ended between calls (after at least one call), else
 * ERR_TRUNCATED. */
int eng_tparse_finish(struct eng_tparse *p, struct err_info *ei);

#endif
