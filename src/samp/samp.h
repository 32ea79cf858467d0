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

/* ---- the numeric fields: names and ranges, defined once ----
 * Every front end reads its sampling settings through this table (the CLI's flags, the
 * protocol's params), and samp_params_check applies the same ranges: one definition of what a
 * valid setting is. */
enum samp_field_type { SAMP_FIELD_FLOAT = 0, SAMP_FIELD_INT };
struct samp_field {
    const char *name; /* the samp_params member, used in messages: "temp" */
    const char *key;  /* the protocol's param: "temperature" */
    const char *flag; /* the CLI's flag: "--temp" */
    int type;         /* enum samp_field_type: float or int32_t member */
    size_t off;       /* offsetof(struct samp_params, member) */
    double lo, hi;    /* inclusive range */
};
size_t samp_field_count(void);
const struct samp_field *samp_field_at(size_t i); /* NULL past the end */
/* Is x in the field's range (and a whole number for an integer field)? NaN never is. */
bool samp_field_ok(const struct samp_field *f, double x);
/* Store x into p's member: 0, or ERR_INVALID "<name> must be in [lo, hi], got x". */
int samp_field_set(struct samp_params *p, const struct samp_field *f, double x,
                   struct err_info *ei);
double samp_field_get(const struct samp_params *p, const struct samp_field *f);

/* Validate: every field of the table in its range, bias ids < n_vocab, bias values finite or
 * -INFINITY. ERR_INVALID with a message naming the field. */
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
 * a bitset (bit i of mask[i/64]) of allowed ids. Errors: ERR_NONFINITE when a logit given is NaN
 * or infinite (the model's output is garbage: never a token drawn from it; found within the
 * sampler's first full pass, no pass of its own), ERR_DEAD_END when no token is allowed (the mask
 * is empty, or the bias banned all it allows). */
int samp_sample(struct samp_ctx *s, float *logits, const uint64_t *mask, int32_t *out_token);
/* Record a token as generated/seen (feeds the penalty window). */
void samp_accept(struct samp_ctx *s, int32_t token);

/* Argmax with the lowest id winning ties (llama.cpp's greedy). */
int32_t samp_argmax(const float *logits, uint32_t n);

/* RNG exposed for tests: uniform in [0, 1). */
double samp_rng_uniform(struct samp_ctx *s);

#endif
