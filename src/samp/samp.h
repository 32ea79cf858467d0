/* samp: turn one position's logits into a token.
 *
 * Order of the steps (as llama.cpp's common sampler chain): logit bias, repetition /
 * frequency / presence penalties over the last N accepted tokens, then greedy if temp <= 0,
 * else top-k, top-p, min-p, temperature, and a draw from a seeded RNG. The same seed and the
 * same logits give the same token on every machine (the RNG is our own 64-bit generator).
 *
 * All scratch memory is allocated in samp_init for the vocabulary size; samp_sample never
 * allocates. An optional mask (bitset of allowed ids, from a grammar) excludes tokens. */
#ifndef LMPIPE_SAMP_SAMP_H
#define LMPIPE_SAMP_SAMP_H

#include "../util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct samp_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
};

struct samp_params {
    float temp;             /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off; logit > 0 ? logit / p : logit * p */
    float freq_penalty;     /* 0: off; minus count * f */
    float presence_penalty; /* 0: off; minus p if present */
    int32_t penalty_last_n; /* window of accepted tokens the penalties look at (0: off) */
    uint64_t seed;
    const struct samp_bias *bias; /* borrowed for the life of the sampler */
    size_t n_bias;
};

/* Defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat 1.0 (off), last_n 64, seed 0. */
void samp_params_default(struct samp_params *p);
/* Validate ranges (temp 0..100, top_p 0..1, min_p 0..1, penalties finite, bias ids < n_vocab). */
int samp_params_check(const struct samp_params *p, uint32_t n_vocab, struct err_info *ei);

struct samp_ctx {
    uint32_t n_vocab;
    struct samp_params p;
    uint64_t rng[4];     /* xoshiro256** state */
    int32_t *hist;       /* [penalty_last_n] ring of accepted tokens */
    uint32_t hist_n, hist_pos;
    uint32_t *counts;    /* [n_vocab] occurrences within the window */
    int32_t *idx;        /* [n_vocab] scratch candidate ids */
    float *val;          /* [n_vocab] scratch candidate values */
};

int samp_init(struct samp_ctx *s, uint32_t n_vocab, const struct samp_params *p);
void samp_free(struct samp_ctx *s); /* safe on zeroed / partial */
void samp_reset(struct samp_ctx *s); /* forget history, re-seed */

/* Pick a token. logits[n_vocab] is modified in place (bias, penalties). mask may be NULL, else
 * a bitset (bit i of mask[i/64]) of allowed ids; if nothing is allowed returns ERR_STATE. */
int samp_sample(struct samp_ctx *s, float *logits, const uint64_t *mask, int32_t *out_token);
/* Record a token as generated/seen (feeds the penalty window). */
void samp_accept(struct samp_ctx *s, int32_t token);

/* Argmax with the lowest id winning ties (llama.cpp's greedy). */
int32_t samp_argmax(const float *logits, uint32_t n);

/* RNG exposed for tests: uniform in [0, 1). */
double samp_rng_uniform(struct samp_ctx *s);

/* ---- stop strings ----
 * Incremental matcher over the generated text. samp_stop_feed() appends text and reports how
 * many bytes of the accumulated, not yet released text are safe to emit (they cannot be part of
 * a stop string) and whether a stop string was completed (then everything before it is safe and
 * the stop string itself is never emitted). */
#define SAMP_MAX_STOPS 8
#define SAMP_MAX_STOP_LEN 256
struct samp_stop {
    char stops[SAMP_MAX_STOPS][SAMP_MAX_STOP_LEN + 1];
    size_t stop_len[SAMP_MAX_STOPS];
    size_t n_stops;
    char held[SAMP_MAX_STOP_LEN * 2 + 64]; /* text held back: could still begin a stop string */
    size_t n_held;
};
void samp_stop_init(struct samp_stop *st);
int samp_stop_add(struct samp_stop *st, const char *s, size_t len); /* ERR_LIMIT / ERR_INVALID */
/* Feed text[0..len). Writes releasable text to out (cap must be >= len + SAMP_MAX_STOP_LEN*2+64)
 * and sets *out_len. Returns 1 when a stop string matched (generation should end), else 0. */
int samp_stop_feed(struct samp_stop *st, const char *text, size_t len, char *out, size_t cap,
                   size_t *out_len);
/* End of generation without a match: release everything held. */
size_t samp_stop_flush(struct samp_stop *st, char *out, size_t cap);

#endif
