/* eng_int: what the engine's files share and nothing outside src/eng may use (tests may, to look
 * inside: check_eng, check_conform).
 *
 * Files and who calls whom (no cycles): eng.c (models, info, tokens, sessions, prefill) is
 * called by eng_gen.c (the generation loop), which is called by eng_chat.c (rendering and the
 * chat); eng_stop.c (stop strings) and eng_gram.c (grammars and their constraint) are leaves the
 * loop uses; eng_jinja.c (a model's Jinja templates: loading, probing, rendering with the
 * fixes) is a leaf eng.c and eng_chat.c use.
 *
 * Ownership: a struct eng_model owns its model (and mapping), tokenizer and thread pool; a
 * struct eng_session owns its model state (KV cache, activations) and every buffer the token
 * loop touches, sized once at creation from the model's vocabulary. */
#ifndef LMPIPE_ENG_ENG_INT_H
#define LMPIPE_ENG_ENG_INT_H

#include "eng.h"

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
    bool has_logits;   /* st.logits belong to tokens[n_tokens - 1] */
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

/* ---- eng_stop.c: stop strings ----
 * Incremental matcher over the generated text. eng_stop_feed() appends text and reports how
 * many bytes of the accumulated, not yet released text are safe to emit (they cannot be part
 * of a stop string) and whether a stop string was completed (then everything before it is
 * safe and the stop string itself is never emitted). */
#define ENG_STOP_SLOTS (ENG_MAX_STOPS + ENG_MAX_TMPL_STOPS)
#define ENG_STOP_SLACK (ENG_MAX_STOP_LEN * 2 + 64) /* out capacity beyond the fed text */
struct eng_stop {
    char stops[ENG_STOP_SLOTS][ENG_MAX_STOP_LEN + 1];
    size_t stop_len[ENG_STOP_SLOTS];
    size_t n_stops;
    char held[ENG_STOP_SLACK]; /* text held back: could still begin a stop string */
    size_t n_held;
};
void eng_stop_init(struct eng_stop *st);
int eng_stop_add(struct eng_stop *st, const char *s, size_t len); /* ERR_LIMIT / ERR_INVALID */
/* Feed text[0..len). Writes releasable text to out (cap must be >= len + ENG_STOP_SLACK) and
 * sets *out_len. Returns 1 when a stop string matched (generation should end), else 0. */
int eng_stop_feed(struct eng_stop *st, const char *text, size_t len, char *out, size_t cap,
                  size_t *out_len);
/* End of generation without a match: release everything held. */
size_t eng_stop_flush(struct eng_stop *st, char *out, size_t cap);

#endif
