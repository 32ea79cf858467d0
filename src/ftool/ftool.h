/* ftool: file tools: GGUF in, GGUF out. The whole-file quantizer (`lmpipe quantize`) with
 * llama.cpp's per-tensor type recipes (Q4_K_M and friends), and the random-weight model
 * synthesizer (`lmpipe dev synth`) that benchmarks and tests use.
 *
 * A room of its own above gguf and kern (it uses both: the file format and the block
 * quantizers), beside eng: the engine never calls it, and it never calls the engine. This
 * header shows neither layer's types, so the command line can use it.
 *
 * Every function returns 0 or a negative ERR_* with the what/where/why in the err_info; an
 * output file is written atomically (a failure leaves no half-written file behind). */
#ifndef LMPIPE_FTOOL_FTOOL_H
#define LMPIPE_FTOOL_FTOOL_H

#include "../util/blk.h"
#include "../util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- targets: the names `lmpipe quantize` takes (llama.cpp's llama_ftype) ---- */

/* A plain type (every 2-D weight gets it) or a mix. */
struct ftool_target {
    const char *name;  /* "Q4_K_M", "Q8_0", ... */
    uint32_t base;     /* default tensor type */
    uint32_t ftype;    /* value written to general.file_type (llama_ftype) */
    bool mix;          /* a llama.cpp mixed recipe (_S/_M/_L) */
};
/* Case-insensitive lookup; NULL when unknown. */
const struct ftool_target *ftool_target_find(const char *name);
/* The i-th known target (NULL past the end), for help texts. */
const struct ftool_target *ftool_target_at(size_t i);

/* ---- recipes (llama.cpp's llama_tensor_get_type) ---- */

#define FTOOL_MAX_DIMS 4
/* One tensor as the recipe sees it. */
struct ftool_tensor_desc {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[FTOOL_MAX_DIMS];
    uint32_t type; /* current type */
};

/* The plan for a whole file: target type per tensor, in llama.cpp's processing order.
 * want[i] is what the recipe asked for; type[i] differs when the row length did not fit the
 * recipe's block size and a wider type was used (a fallback). */
struct ftool_plan {
    size_t n;
    size_t *order;       /* [n] indices into the caller's tensor array, llama.cpp's order */
    uint32_t *type;      /* [n] by caller index: output type */
    uint32_t *want;      /* [n] by caller index: recipe's type before the fallback */
    bool *quantize;      /* [n] by caller index: the recipe may change this tensor's type */
    size_t n_fallback;
};
/* Decide every tensor's type. pure: the base type everywhere a weight may be quantized (as
 * `llama-quantize --pure`); otherwise the mix rules for mixes (plain names are always pure).
 * n_layer is the model's block count (used by the ffn_down / attn_v layer rules). */
int ftool_plan_make(struct ftool_plan *p, const struct ftool_target *tg, bool pure,
                    const struct ftool_tensor_desc *t, size_t n, uint32_t n_layer,
                    struct err_info *ei);
void ftool_plan_free(struct ftool_plan *p); /* safe on zeroed */
/* llama.cpp's order of tensors: by block number (non-block tensors first), then by name. */
int ftool_name_cmp(const char *a, const char *b);

/* ---- the whole-file quantizer ---- */

/* Error of the dequantized result against the source weights (read as f32), accumulated per
 * output type over the tensors that were converted (copied tensors are exact). */
struct ftool_err_stat {
    uint64_t n_tensors;
    uint64_t n;        /* elements */
    double sum_sq;     /* sum of (deq - src)^2 */
    double sum_sq_src; /* sum of src^2 */
    double max_abs;    /* max |deq - src| */
    uint64_t bytes;    /* output bytes of the converted tensors */
};

/* Called once per tensor after its type is decided: i of n, name, source type, output type,
 * the recipe's wish (to != want: a fallback), shape. */
typedef void (*ftool_tensor_fn)(void *ud, size_t i, size_t n, const char *name, uint32_t from,
                                uint32_t to, uint32_t want, const uint64_t *ne);

struct ftool_quant_opts {
    const struct ftool_target *target;
    bool pure;
    int n_threads;            /* <= 1: the calling thread only; the bytes never depend on it */
    ftool_tensor_fn on_tensor; /* may be NULL */
    void *ud;
};

struct ftool_quant_report {
    struct ftool_err_stat by_type[BLK_T_COUNT_];
    uint64_t in_bytes, out_bytes;
    size_t n_tensors, n_quantized, n_copied, n_fallback;
};

/* Read `in` (F32/F16/BF16 weights), write `out` atomically with every tensor converted as the
 * plan says, all metadata copied, general.file_type and general.quantization_version set. */
int ftool_quantize(const char *in, const char *out, const struct ftool_quant_opts *o,
                   struct ftool_quant_report *rep, struct err_info *ei);

/* ---- the model synthesizer ---- */

/* Shape of a random-weight model. -1 in a size: not given. */
struct ftool_synth_cfg {
    const char *arch; /* llama, qwen2, qwen3, phi3, gemma3 */
    int64_t dim, layers, heads, kv_heads, ffn, vocab, head_dim, ctx, seed;
    bool tied;
    const char *type; /* any ftool target name */
    /* NULL: a synthetic SPM vocabulary of `vocab` pieces. Else a GGUF file (a model or llama.cpp's
     * vocab-only ggml-vocab-*.gguf) whose tokenizer.* keys are copied as they are; the model's
     * vocabulary size is its token count. */
    const char *vocab_from;
};
/* Fill what cfg leaves open from a named real model's shape ("tinyllama", "smollm2-135m",
 * "qwen2.5-0.5b"): 0, or ERR_NOT_FOUND for an unknown name. tied_given: cfg->tied was set
 * explicitly. The real vocabularies (SmolLM2's is StarCoder's, 49152 tokens; Qwen2.5's 151936)
 * come with vocab_from. */
int ftool_synth_preset(const char *name, struct ftool_synth_cfg *cfg, bool tied_given);
/* Complete and validate a shape: kv_heads defaults to heads, head_dim to dim / heads; gemma3 is
 * always tied; with vocab_from, vocab becomes that file's token count (ERR_INVALID when a vocab
 * given too differs; the file's own errors when it is no GGUF with tokenizer.ggml.tokens).
 * ERR_INVALID naming what is wrong. */
int ftool_synth_check(struct ftool_synth_cfg *cfg, struct err_info *ei);

struct ftool_synth_opts {
    int n_threads;
    ftool_tensor_fn on_tensor; /* each tensor once its type is decided (may be NULL) */
    /* before writing: the parameter count and the bytes of tensor data (may be NULL) */
    void (*on_start)(void *ud, uint64_t n_params, uint64_t bytes, const char *type);
    void *ud;
};
/* Write a random-weight model of shape cfg (checked) to out. Matrices, embeddings and biases
 * are N(0, 0.02), norms 1 + N(0, 0.02); the file is identical for any thread count. */
int ftool_synth(const struct ftool_synth_cfg *cfg, const char *out, const struct ftool_synth_opts *o,
                struct err_info *ei);

/* ---- editing metadata (ftool_edit.c) ---- */
struct ftool_edit_opts {
    uint32_t n_ctx;            /* 0: keep; else the new <arch>.context_length */
    const char *chat_template; /* NULL: keep; else the new tokenizer.chat_template */
    size_t chat_template_len;
    /* A damaged copy, for tests of non-finite weights: NULL, or the tensor one of whose stored
     * values becomes poison_value (NaN, an infinity): element poison_at of an F32/F16/BF16
     * tensor, or fp16 field poison_field (blk_half_fields: 0 the scale d, 1 dmin/m) of block
     * poison_at of a quantized one. */
    const char *poison;
    float poison_value;
    uint64_t poison_at;
    uint32_t poison_field;
};
/* Copy `in` to `out` (atomically) with that metadata replaced (and that value poisoned),
 * everything else as it is. ERR_NOT_FOUND when n_ctx is given and the file has no
 * *.context_length, or the poisoned tensor does not exist; ERR_RANGE when poison_at or
 * poison_field is not in the tensor. */
int ftool_edit(const char *in, const char *out, const struct ftool_edit_opts *o,
               struct err_info *ei);

#endif
