/* eng_int: what the engine's files share and nothing outside src/eng may use (tests may, to look
 * inside: check_eng, check_conform).
 *
 * Files and who calls whom (no cycles): eng.c (models, info, tokens, sessions, prefill) is
 * called by eng_snap.c (snapshots, the prompt cache, the context shift) and both by eng_gen.c
 * (the generation loop), which is called by eng_chat.c (rendering and the chat); eng_stop.c
 * (stop strings) and eng_gram.c (grammars and their constraint) are leaves the loop uses;
 * eng_jinja.c (a model's Jinja templates: loading, probing, rendering with the fixes) is a leaf
 * eng.c and eng_chat.c use.
 *
 * Ownership: a struct eng_model owns its model (and mapping), tokenizer and thread pool; a
 * struct eng_session owns its model state (KV cache, activations) and every buffer the token
 * loop touches, sized once at creation from the model's vocabulary. */
#ifndef LMPIPE_ENG_ENG_INT_H
#define LMPIPE_ENG_ENG_INT_H

#include "eng.h"
#include "eng_tools.h"

#include "../gram/gram.h"
#include "../kern/kern.h"
#include "../model/model.h"
#include "../samp/samp.h"
#include "../tok/chat.h"
#include "../tok/tok.h"

struct eng_model {
    bool has_model;   /* false for eng_model_open_vocab */
    struct model model;
    struct gguf_ctx gguf; /* vocab-only handles: the file, for the tokenizer */
    bool has_gguf;
    struct tok_vocab *vocab;
    struct kern_pool *pool;
    char path[1024];
    uint64_t file_size;
    eng_constraint_make_fn make_constraint; /* default constraint factory, or NULL */
    void *make_ud;
    /* the grammar engine's view of the vocabulary: built on the first grammar, then shared by
     * every grammar constraint of this model (read-only) */
    struct gram_vocab gv;
    int gv_state; /* 0: not built; 1: built; < 0: building failed (that error, again) */
    struct eng_chat_tmpls *chat; /* the chat templates (eng_jinja.c) */
};

/* The GGUF file behind a handle (the model's, or the vocab-only one). */
const struct gguf_ctx *eng_gguf(const struct eng_model *em);

struct eng_session {
    struct eng_model *em;
    struct model_state st;
    int32_t *tokens;   /* [n_ctx] tokens whose K/V are in the cache, in order */
    uint32_t n_tokens;
    uint32_t n_clean;  /* cells 0..n_clean-1 are what evaluating tokens[0..n_clean) from position 0
                          gives (only a context shift makes later cells differ): what prefix reuse,
                          snapshots and the prompt cache may use. Invariant: n_clean <= n_tokens
                          except after a hook shortened n_tokens (eng_reuse_limit takes the min) */
    bool has_logits;   /* st.logits belong to tokens[n_tokens - 1] */
    struct eng_pcache *pcache; /* borrowed, or NULL */
    uint32_t n_shifts;         /* context shifts made, ever */
    int32_t *scratch;  /* [n_ctx + 1] the prompt's ids */
    struct eng_hooks hooks;
    /* the token loop's buffers */
    float *logits_raw; /* [n_vocab] logits before sampling changed them (constrained redraw) */
    uint64_t *mask;    /* [n_mask] allowed ids of a constraint */
    size_t n_mask;
    int32_t *pending;  /* [MODEL_BATCH] accepted tokens not yet evaluated */
    char *piece;       /* [piece_cap] one token's text */
    size_t piece_cap;
    char *out;         /* [out_cap] text released by the stop matcher */
    size_t out_cap;
    uint32_t eval_max; /* most tokens per forward pass in the loop (MODEL_BATCH; tests: 1) */
    uint32_t run_min;  /* fewest tokens evaluated as one pass (ENG_RUN_MIN; tests: lower) */
    uint64_t n_passes; /* forward passes the loop made (tests see forced runs batched) */
};

/* Ask the session's context-full hook (or eng_ctx_full_default). */
int eng_ctx_full(struct eng_session *s, int event, size_t need, struct err_info *ei);
/* Tokenize into the session's scratch; a prompt longer than the context is ERR_CONTEXT. */
int eng_tokenize_prompt(struct eng_session *s, const char *text, size_t len, bool add_bos,
                        bool special, const int32_t **toks, size_t *n, struct err_info *ei);
/* Evaluate toks[0..n) at the end of the cache (n <= MODEL_BATCH) and append them: the logits of
 * the last one are then in st.logits. Several tokens are one pass in the one-token summation
 * order (model_state.decode_order): the same bits as evaluating them one by one. Fewer than
 * s->run_min (ENG_RUN_MIN) go one by one: on x86-64 AVX2 (SmolLM2-135M / Qwen2.5-0.5B shapes, Q8_0, one
 * thread) a pass of 2-4 tokens took longer than as many one-token passes, 6 about as long,
 * 8 less than half (the kernels' batch path pays off from 8 rows). */
#define ENG_RUN_MIN 6
int eng_eval_append(struct eng_session *s, const int32_t *toks, uint32_t n, struct err_info *ei);
/* How many leading tokens of toks[0..n) the cache holds cleanly (reusable). */
uint32_t eng_reuse_len(const struct eng_session *s, const int32_t *toks, size_t n);
/* eng_prefill, evaluating at least min(n, min_eval) tokens (the generation loop asks 2: see
 * eng.h's reuse rule; bench's one-token steps ask 1). */
int eng_prefill_min(struct eng_session *s, const int32_t *toks, size_t n, uint32_t min_eval,
                    const struct eng_sink *sink, uint32_t *n_cached, struct err_info *ei);
/* The pass over positions lo..hi (tokens[lo..hi] set, K/V written) gave NaN/inf: probe hi
 * (model_probe: slow, the error path) for the first stage that went non-finite, forget the
 * cache from lo on, and return ERR_NONFINITE "non_finite_logits" naming both. */
int eng_nonfinite_fail(struct eng_session *s, uint32_t lo, uint32_t hi, struct err_info *ei);
/* Forget every cached position from m on (cells there may have been overwritten). */
void eng_session_cut(struct eng_session *s, uint32_t m);

/* ---- eng_snap.c: the prompt cache around a prompt's evaluation (never an error: a failing
 * cache only costs time) ---- */
void eng_pcache_before(struct eng_session *s, const int32_t *toks, size_t n);
void eng_pcache_after(struct eng_session *s, const int32_t *toks, size_t n);

/* ---- eng_gram.c: grammar constraints ----
 * struct eng_grammar is a compiled gram (and nothing else yet: a grammar that only starts
 * after a trigger text, for tool calls, wraps the constraint below rather than changing it).
 * struct eng_gcon adapts one gram matcher to the constraint seam, 1:1: check is gram_tok_check,
 * mask gram_tok_mask, accept gram_tok_accept, forced gram_tok_forced, complete
 * gram_matcher_complete. It is a plain struct so another constraint can embed one and feed its
 * matcher bytes itself (eng_gcon_ops takes the struct as self). */
struct eng_grammar {
    struct gram *g;
};
struct eng_gcon {
    struct gram_matcher m;
};
extern const struct eng_constraint_ops eng_gcon_ops; /* no free: the owner calls eng_gcon_free */
/* The model's gram_vocab, built on first use (the model's one thread, like sessions). */
int eng_gram_vocab(struct eng_model *em, const struct gram_vocab **out, struct err_info *ei);
/* A matcher of g at its start over em's vocabulary; ERR_INVALID for an unknown token reference. */
int eng_gcon_init(struct eng_gcon *c, struct eng_model *em, const struct gram *g,
                  struct err_info *ei);
void eng_gcon_free(struct eng_gcon *c); /* safe on zeroed */
/* ---- eng_jinja.c: a model's chat templates ----
 * The file's Jinja template(s), parsed and probed once, or what replaces them; the built-in
 * family when there is no usable Jinja template. Opaque outside eng_jinja.c (its fields need
 * tmpl.h, which brings jansson). */
struct eng_chat_tmpls;
/* From the file's tokenizer.chat_template(.tool_use); v (may be NULL) gives bos/eos texts.
 * Fails only for lack of memory: a template that does not parse is described, not an error. */
int eng_chat_tmpls_load(struct eng_chat_tmpls **out, const struct gguf_ctx *g,
                        const struct tok_vocab *v, struct err_info *ei);
void eng_chat_tmpls_free(struct eng_chat_tmpls *ct); /* NULL-safe */
const struct eng_chat_info *eng_chat_tmpls_info(const struct eng_chat_tmpls *ct);
/* The built-in template id to use when there is no usable Jinja template. */
int eng_chat_tmpls_builtin(const struct eng_chat_tmpls *ct);
/* Render with the Jinja template (eng_chat_tmpls_info(ct)->jinja must be true). */
int eng_jinja_render(const struct eng_chat_tmpls *ct, const struct json_t *request,
                     const struct eng_chat_opts *o, struct eng_prompt *out, struct err_info *ei);

/* ---- eng_gen.c ---- */
/* eng_generate with extra stop strings (a chat template's end-of-turn texts). */
int eng_generate_stops(struct eng_session *s, const char *prompt, size_t len,
                       const struct eng_gen_params *p, const char *const *extra, size_t n_extra,
                       const struct eng_sink *sink, struct eng_gen_result *res,
                       struct err_info *ei);
/* A reply that may turn into tool calls: from the trigger on (eng_stop's switch) the text goes
 * to on_text here instead of the sink, stop strings no longer apply, and control tokens are
 * text (their markers are part of the call syntax). trigger "" : call text from the start. */
struct eng_region {
    const char *trigger; /* NUL-terminated */
    bool at_start;
    const char *skip;    /* NUL-terminated or NULL */
    eng_text_fn on_text;
    void *ud;
};
int eng_generate_region(struct eng_session *s, const char *prompt, size_t len,
                        const struct eng_gen_params *p, const char *const *extra, size_t n_extra,
                        const struct eng_region *rg, const struct eng_sink *sink,
                        struct eng_gen_result *res, struct err_info *ei);

/* ---- eng_tcon.c: the tool-call constraint ----
 * The call section's grammar gbnf (from eng_tools_gbnf over em's vocabulary); lazy: every token
 * is allowed until the text holds trigger (at_start: at its first non-space byte), the grammar
 * holds what follows (eng_tcon.c says how a trigger inside a token is handled). out->ops->free
 * releases it. */
struct eng_tcon;
int eng_tcon_make(struct eng_model *em, const char *gbnf, size_t len, const char *trigger,
                  bool at_start, bool lazy, struct eng_constraint *out, struct err_info *ei);
void eng_tcon_free(struct eng_tcon *c);

/* What a chat's template makes of tools: the syntax the model writes calls in, and whether the
 * template shows the tools, calls in the history and tool results itself (else eng_trun_rewrite
 * writes them into the conversation). */
struct eng_tview {
    struct eng_tsyn syn;
    bool jinja, shows_tools, shows_calls, tool_role;
};
/* For the template o chooses on this model, for a request with or without tools. */
void eng_chat_tmpls_tools(const struct eng_chat_tmpls *ct, const struct eng_chat_opts *o,
                          bool has_tools, struct eng_tview *out);

/* ---- eng_tchat.c: one reply that may call tools ----
 * parse: the request's tools, tool_choice, parallel_tool_calls (absent: parallel_default);
 * setup: the syntax the model writes calls in, the grammar and constraint (nothing when
 * tool_choice is none); generate: the reply, calls reported to sink->on_tool, finish
 * "tool_calls" after complete calls. */
struct eng_trun {
    struct eng_toolset ts;
    int choice, named;
    bool parallel;
    struct eng_tsyn syn;
    bool active;               /* a constraint and a region (tool_choice not none) */
    struct eng_constraint con; /* owned */
    struct eng_region rg;
    struct eng_tparse parser;
    eng_tool_fn on_tool;
    void *tool_ud;
    size_t n_calls, n_done;    /* calls begun, calls complete and validated */
    int tool[ENG_TOOL_CALLS_MAX];
    char id[ENG_TOOL_CALLS_MAX][32];
    struct eng_sb args[ENG_TOOL_CALLS_MAX];
    struct gram **check;       /* [ts.n] each tool's arguments alone, built when needed */
    bool seen_region;
    int err;                   /* the parser's or the validation's error, ends the reply */
    bool err_cut;              /* ... on text holding U+FFFD: the detokenizer's flush of a
                                  character max_tokens cut in half */
    struct err_info ei;
};
int eng_trun_parse(struct eng_trun *r, const json_t *req, bool parallel_default,
                   struct err_info *ei);
int eng_trun_setup(struct eng_trun *r, struct eng_model *em, const struct eng_tsyn *syn,
                   struct err_info *ei);
int eng_trun_generate(struct eng_session *s, struct eng_trun *r, const char *prompt, size_t len,
                      const struct eng_gen_params *p, const char *const *stops, size_t n_stops,
                      eng_tool_fn on_tool, void *tool_ud, const struct eng_sink *sink,
                      struct eng_gen_result *res, struct err_info *ei);
void eng_trun_free(struct eng_trun *r); /* safe on zeroed */
/* The request as a template that shows no tools / calls / tool results renders it: the tools'
 * description (eng_tsyn_describe) opens the system message; an assistant's tool_calls become
 * the end of its content, written in the syntax; a "tool" message becomes a user message
 * "<tool_response>\n...\n</tool_response>" (consecutive ones joined) unless the template has a
 * tool role; a built-in template loses "tools". *out: a new request, or req itself (a new
 * reference) when nothing changes. */
int eng_trun_rewrite(const json_t *req, const struct eng_tview *tv, const struct eng_toolset *ts,
                     json_t **out, struct err_info *ei);
/* The request's tools, tool_choice and parallel_tool_calls as eng_chat_check checks them:
 * shapes, names, duplicates, each schema through the converter. ERR_INVALID says which. */
int eng_tools_check(const json_t *req, struct err_info *ei);

/* ---- eng_stop.c: stop strings, and the switch to call text ----
 * Incremental matcher over the generated text. eng_stop_feed() appends text and reports how
 * many bytes of the accumulated, not yet released text are safe to emit (they cannot be part
 * of a stop string) and whether a stop string was completed (then everything before it is
 * safe and the stop string itself is never emitted).
 *
 * The switch (tool calls in "auto"): from the first occurrence of a trigger text on, the text
 * is a call's, not the reply's: the text before it is released, the trigger and everything
 * after are handed back as call text, and stop strings no longer apply. A trigger is never cut
 * by a stop string: a stop match that ends after a possible trigger begins waits until the
 * trigger completes (it wins) or cannot (the stop wins). With at_start the trigger counts only
 * at the first non-space byte of the text; skip, when the text starts with it, is dropped
 * (functionary's ">>>all\n" before a reply of plain text). */
#define ENG_STOP_SLOTS (ENG_MAX_STOPS + ENG_MAX_TMPL_STOPS)
#define ENG_STOP_SLACK (ENG_MAX_STOP_LEN * 2 + 64) /* out capacity beyond the fed text */
#define ENG_SWITCH_MAX 128                        /* bytes of a trigger or a skip text */
struct eng_stop {
    char stops[ENG_STOP_SLOTS][ENG_MAX_STOP_LEN + 1];
    size_t stop_len[ENG_STOP_SLOTS];
    size_t n_stops;
    char held[ENG_STOP_SLACK]; /* text held back: could still begin a stop string or trigger */
    size_t n_held;
    /* the switch */
    char sw[ENG_SWITCH_MAX], skip[ENG_SWITCH_MAX];
    size_t sw_len, skip_len;
    bool sw_at_start;
    bool skip_done;     /* the start of the text was compared with skip */
    bool start_done;    /* at_start: the first non-space byte was seen */
    bool switched;      /* call text from here on */
    size_t region_len;  /* after a feed that returned 2: call-text bytes after the released text */
};
void eng_stop_init(struct eng_stop *st);
int eng_stop_add(struct eng_stop *st, const char *s, size_t len); /* ERR_LIMIT / ERR_INVALID */
/* Arm the switch: trigger sw[0..sw_len) (sw_len 0: switched already, all text is call text),
 * at_start, and skip[0..skip_len) (may be 0). ERR_LIMIT for texts over ENG_SWITCH_MAX. */
int eng_stop_switch(struct eng_stop *st, const char *sw, size_t sw_len, bool at_start,
                    const char *skip, size_t skip_len);
/* Feed text[0..len). Writes releasable text to out (cap must be >= len + ENG_STOP_SLACK) and
 * sets *out_len. Returns 1 when a stop string matched (generation should end); 2 when the
 * switch has happened (now or before): out[*out_len .. *out_len + st->region_len) is call text;
 * else 0. */
int eng_stop_feed(struct eng_stop *st, const char *text, size_t len, char *out, size_t cap,
                  size_t *out_len);
/* End of generation without a match: release everything held. */
size_t eng_stop_flush(struct eng_stop *st, char *out, size_t cap);

#endif
