/* eng: the engine seen from the front ends (CLI, JSON-RPC server, batch): a loaded model with its
 * tokenizer and thread pool, sessions that own a KV cache and their token history, and the
 * generation loop (prompt → tokens → forward → sample → text) with streaming callbacks.
 *
 * No I/O and no threads of its own: callers pass callbacks and a cancel flag. A session reuses
 * the longest common prefix of its history with a new prompt, so a conversation re-sent every
 * turn is only processed from where it changed. The token loop allocates nothing: all buffers
 * are sized at session creation. */
#ifndef LMPIPE_ENG_ENG_H
#define LMPIPE_ENG_ENG_H

#include "../kern/kern.h"
#include "../model/model.h"
#include "../samp/samp.h"
#include "../tok/tok.h"
#include "../util/err.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct eng_model {
    struct model model;
    struct tok_vocab *vocab;
    struct kern_pool *pool;
    char path[1024];
    uint64_t file_size;
};

/* n_threads <= 0: number of online cores. */
int eng_model_open(struct eng_model *em, const char *path, int n_threads, struct err_info *ei);
void eng_model_free(struct eng_model *em); /* safe on zeroed / partial */

struct eng_session {
    const struct eng_model *em;
    struct model_state st;
    int32_t *tokens; /* [n_ctx] tokens whose K/V are in the cache, in order */
    uint32_t n_tokens;
    int32_t *scratch; /* [n_ctx] tokenizer output */
    float *logits;    /* [n_vocab] logits after the last evaluated token (valid if has_logits) */
    bool has_logits;
};

int eng_session_init(struct eng_session *s, const struct eng_model *em, uint32_t n_ctx,
                     struct err_info *ei);
void eng_session_free(struct eng_session *s);
void eng_session_reset(struct eng_session *s);
uint32_t eng_session_n_ctx(const struct eng_session *s);

/* Tokenize into the session's scratch. Prompts longer than the context are ERR_CONTEXT with a
 * message containing "context_length_exceeded". */
int eng_tokenize(struct eng_session *s, const char *text, size_t len, bool add_bos,
                 bool parse_special, const int32_t **toks, size_t *n, struct err_info *ei);

/* Make the cache hold exactly toks[0..n): keeps the common prefix, evaluates the rest.
 * on_logits (may be NULL) is called after each evaluated position with its logits (the logits
 * of every position are computed only when on_logits is set; otherwise only the last).
 * *n_cached receives how many tokens were reused from the cache. */
typedef int (*eng_logits_fn)(void *ud, uint32_t pos, int32_t token, const float *logits);
typedef void (*eng_progress_fn)(void *ud, uint32_t done, uint32_t total);
int eng_prefill(struct eng_session *s, const int32_t *toks, size_t n, eng_logits_fn on_logits,
                eng_progress_fn on_progress, void *ud, const atomic_bool *cancel,
                uint32_t *n_cached, struct err_info *ei);

enum eng_finish { ENG_FINISH_STOP = 0, ENG_FINISH_LENGTH, ENG_FINISH_CANCELLED, ENG_FINISH_ERROR };
const char *eng_finish_name(int f);

struct eng_gen_params {
    struct samp_params samp;
    int32_t max_tokens;     /* < 0: until the context is full */
    const char *const *stop; /* stop strings, n_stop of them */
    size_t n_stop;
    bool add_bos;
    bool parse_special;
    bool ignore_eos;
};
void eng_gen_params_default(struct eng_gen_params *p);

struct eng_gen_result {
    int finish;
    uint32_t prompt_tokens, cached_tokens, completion_tokens;
    double prefill_ms, decode_ms;
};

/* Called with each piece of released text (complete UTF-8, stop strings held back) and the
 * token that produced it (-1 for a final flush). Return nonzero to stop. */
typedef int (*eng_text_fn)(void *ud, const char *text, size_t len, int32_t token);

/* Generate a continuation of `prompt` (raw text). */
int eng_generate(struct eng_session *s, const char *prompt, size_t prompt_len,
                 const struct eng_gen_params *p, eng_text_fn on_text, eng_progress_fn on_progress,
                 void *ud, const atomic_bool *cancel, struct eng_gen_result *res,
                 struct err_info *ei);

#endif
