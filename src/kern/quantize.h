/* quantize: reference quantizers F32 -> every GGUF weight type lmpipe multiplies, llama.cpp's
 * per-tensor type recipes (Q4_K_M and friends), and a whole-file GGUF quantizer on top.
 *
 * The row quantizers reproduce what llama-quantize does without an importance matrix
 * (ggml's quantize_row_*_ref searches, and IQ4_NL/IQ4_XS's scale search with 7 tries), with
 * the same float operations in the same order, so on the same input the bytes agree with
 * llama.cpp's. Each quantized row dequantizes with kern_dequant_row().
 *
 * Nothing here allocates inside a row quantizer; the file driver allocates per tensor. Every
 * function returns 0 or a negative ERR_* with a message in the err_info when one is given. */
#ifndef LMPIPE_KERN_QUANTIZE_H
#define LMPIPE_KERN_QUANTIZE_H

#include "../gguf/gguf.h"
#include "../util/err.h"
#include "kern.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when quant_row() can produce this type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q2_K..Q6_K, IQ4_NL, IQ4_XS). */
bool quant_type_supported(uint32_t type);

/* Quantize x[n] (n a multiple of the type's block size) into dst (blk_row_size(type, n)
 * bytes). 0, ERR_UNSUPPORTED or ERR_SHAPE. */
int quant_row(uint32_t type, const float *x, void *dst, size_t n);

/* Quantize nrows contiguous rows of n elements each, split across the pool (NULL: caller's
 * thread). The output does not depend on the thread count. */
int quant_rows(struct kern_pool *pool, uint32_t type, const float *x, void *dst, size_t nrows,
               size_t n);

/* ---- file types and recipes (llama.cpp's llama_ftype and llama_tensor_get_type) ---- */

/* A target named on the command line: a plain type (every 2-D weight gets it) or a mix. */
struct quant_target {
    const char *name;  /* "Q4_K_M", "Q8_0", ... */
    uint32_t base;     /* default tensor type */
    uint32_t ftype;    /* value written to general.file_type (llama_ftype) */
    bool mix;          /* a llama.cpp mixed recipe (_S/_M/_L) */
};
/* Case-insensitive lookup; NULL when unknown. */
const struct quant_target *quant_target_find(const char *name);
/* The i-th known target (NULL past the end), for help texts. */
const struct quant_target *quant_target_at(size_t i);

/* One tensor as the recipe sees it. */
struct quant_tensor_desc {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint32_t type; /* current type */
};

/* The plan for a whole file: target type per tensor, in llama.cpp's processing order.
 * fallback[i] is set when the recipe's type did not fit the row length and a wider one was
 * used (want[i] is what the recipe asked for). */
struct quant_plan {
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
int quant_plan_make(struct quant_plan *p, const struct quant_target *tg, bool pure,
                    const struct quant_tensor_desc *t, size_t n, uint32_t n_layer,
                    struct err_info *ei);
void quant_plan_free(struct quant_plan *p);
/* llama.cpp's order of tensors: by block number (non-block tensors first), then by name. */
int quant_name_cmp(const char *a, const char *b);

/* ---- whole files ---- */

/* Error of the dequantized result against the source weights (read as f32), accumulated per
 * output type over the tensors that were converted (copied tensors are exact). */
struct quant_err_stat {
    uint64_t n_tensors;
    uint64_t n;        /* elements */
    double sum_sq;     /* sum of (deq - src)^2 */
    double sum_sq_src; /* sum of src^2 */
    double max_abs;    /* max |deq - src| */
    uint64_t bytes;    /* output bytes of the converted tensors */
};

struct quant_file_opts {
    const struct quant_target *target;
    bool pure;
    struct kern_pool *pool; /* may be NULL */
    /* Called once per tensor after its type is decided (may be NULL); for progress logs. */
    void (*on_tensor)(void *ud, size_t i, size_t n, const char *name, uint32_t from,
                      uint32_t to, uint32_t want, const uint64_t *ne);
    void *ud;
};

struct quant_file_report {
    struct quant_err_stat by_type[BLK_T_COUNT_];
    uint64_t in_bytes, out_bytes;
    size_t n_tensors, n_quantized, n_copied, n_fallback;
};

/* Read `in` (F32/F16/BF16 weights), write `out` atomically with every tensor converted as the
 * plan says, all metadata copied, general.file_type and general.quantization_version set. */
int quant_file(const char *in, const char *out, const struct quant_file_opts *o,
               struct quant_file_report *rep, struct err_info *ei);

#endif
