/* quantize: reference quantizers F32 -> every GGUF weight type lmpipe multiplies (the recipes
 * such as Q4_K_M and the whole-file quantizer are file tools: src/ftool/ftool.h).
 *
 * The row quantizers reproduce what llama-quantize does without an importance matrix
 * (ggml's quantize_row_*_ref searches, and IQ4_NL/IQ4_XS's scale search with 7 tries), with
 * the same float operations in the same order, so on the same input the bytes agree with
 * llama.cpp's. Each quantized row dequantizes with kern_dequant_row().
 *
 * Nothing here allocates inside a row quantizer. Every
 * function returns 0 or a negative ERR_* with a message in the err_info when one is given. */
#ifndef LMPIPE_KERN_QUANTIZE_H
#define LMPIPE_KERN_QUANTIZE_H

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

/* F32, F16 or BF16: the types a tensor can be read as f32 from and quantized. */
bool quant_is_float_type(uint32_t type);
/* Rows per pool task in quant_rows for rows of n elements: a fixed amount of work, never derived
 * from the thread count (callers that split quantization work the same way use it too). */
size_t quant_rows_per_task(size_t n);

#endif
