/* kern: the numeric kernels behind the forward pass, and the persistent thread pool.
 *
 * Weights stay in their GGUF type. Before a matrix-vector product the f32 activation vector is
 * converted once to the weight type's "vec_dot type", exactly as ggml does, so our numbers match
 * llama.cpp's: F32 weights use f32 activations, F16 uses f16, BF16 uses bf16, Q8_0/Q4_0/Q5_0/
 * IQ4_NL use Q8_0 blocks, Q4_1/Q5_1 use Q8_1, K-quants and IQ4_XS use Q8_K. A row dot product is
 * then computed between a weight row and the prepared activations.
 *
 * kern_ref.c is the specification (scalar C, never deleted). SIMD variants live in their own
 * files with the same signatures and are checked against it on odd lengths.
 *
 * Rounding of activation quantization follows ggml's x86 path: round half to even. */
#ifndef LMPIPE_KERN_KERN_H
#define LMPIPE_KERN_KERN_H

#include "../util/blk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The 16 IQ4_NL / IQ4_XS code values. */
extern const int8_t kern_iq4nl_values[16];

/* True when kern can multiply a weight of this GGUF tensor type. */
bool kern_type_supported(uint32_t type);

/* Dequantize n elements of one row (n a multiple of the type's block size). 0 or ERR_*. */
int kern_dequant_row(uint32_t type, const void *src, float *dst, size_t n);

/* Bytes needed for the prepared activation of n elements for weight type wtype (0 if the type
 * is unsupported or n does not fit its blocks). */
size_t kern_act_size(uint32_t wtype, size_t n);
/* Convert x[n] (f32) into dst (kern_act_size bytes) for dot products with wtype weights. */
void kern_act_prepare(uint32_t wtype, const float *x, void *dst, size_t n);
/* Dot product of one weight row (n elements of wtype) with a prepared activation. */
float kern_vec_dot(uint32_t wtype, const void *wrow, const void *act, size_t n);

/* Plain f32 helpers used by attention and norms. */
float kern_dot_f32(const float *a, const float *b, size_t n);
/* out[r] = kern_dot_f32(q, k + r * k_stride, n) for r < n_rows, with exactly those bits (the
 * keys of one attention head against its query: an ISA may share loads and reductions). */
void kern_dot_f32_rows(float *out, const float *q, const float *k, size_t k_stride, size_t n, size_t n_rows);

/* ---- llama.cpp summation-order variants ----
 * llama.cpp (x86 AVX2, the reference build) computes the same products in two orders, and we
 * reproduce both bit for bit (checked against the reference's own kernels):
 *  - KERN_ORDER_GEMM: what a ubatch of >= 2 tokens gets (prompt processing). Contiguous F32 /
 *    F16 / BF16 matrices go through tinyBLAS (one 8-lane FMA accumulator per output) when
 *    ncols % 8 == 0 and nrows % 4 == 0, else through ggml_vec_dot_*; Q8_0/Q4_0/Q5_0/IQ4_NL go
 *    through tinyBLAS_Q0; all other types through ggml_vec_dot_*.
 *  - KERN_ORDER_VECDOT: what a single token gets (decode) and what non-contiguous operands get:
 *    always ggml_vec_dot_* (for F32/F16/BF16: four 8-lane accumulators per 32 elements, then a
 *    tail; IQ4_NL: two alternating accumulators). Identical to GEMM for the other quant types.
 * kern_vec_dot / kern_matvec use KERN_ORDER_GEMM. kern_matvec_ex applies the nrows % 4 rule
 * itself; kern_vec_dot_ex (one row, nrows unknown) does not.
 * Attention with an F32 KV cache in llama.cpp: q.k is always vec_dot order (q is a permuted,
 * non-contiguous view) -> kern_dot_f32; softmax(qk).V is GEMM order for prompts (tinyBLAS over
 * the n_kv cells, needs n_kv % 8 == 0) -> kern_dot_f32_gemm, and vec_dot order for one token ->
 * kern_dot_f32. Zero weights of masked/padded cells add exactly nothing, but the length decides
 * which structure applies (lane = index % 8, tail handling), so pass llama.cpp's padded n_kv
 * with zeros in the padding to be bit-exact. */
#define KERN_ORDER_GEMM 0u
#define KERN_ORDER_VECDOT 1u
float kern_dot_f32_gemm(const float *a, const float *b, size_t n);
float kern_vec_dot_ex(uint32_t wtype, const void *wrow, const void *act, size_t n, unsigned order);

/* ---- thread pool ----
 * One pool per process, created once. Workers spin briefly then sleep on a condition variable.
 * kern_pool_run(fn, arg, n_tasks) calls fn(arg, task, n_tasks) for task = 0..n_tasks-1 across
 * the workers and the calling thread, and returns when all are done. The split of work into
 * tasks is decided by the caller, never by timing, so results are bit-identical for any thread
 * count as long as each task writes its own outputs. */
struct kern_pool;
typedef void (*kern_task_fn)(void *arg, int task, int n_tasks);
int kern_pool_create(struct kern_pool **out, int n_threads);
void kern_pool_destroy(struct kern_pool *pool); /* NULL-safe */
int kern_pool_threads(const struct kern_pool *pool);
/* pool may be NULL: runs every task on the caller. */
void kern_pool_run(struct kern_pool *pool, kern_task_fn fn, void *arg, int n_tasks);

/* y[r] = dot(W row r, act) for r in [0, nrows). W rows are contiguous with
 * blk_row_size(wtype, ncols) bytes each; act was made by kern_act_prepare(wtype, x, act, ncols).
 * Rows are split across the pool in fixed chunks (deterministic). */
void kern_matvec(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows,
                 size_t ncols, const void *act, float *y);

/* ---- llama.cpp-exact helpers for the rest of the attention and FFN math ----
 * ggml evaluates exp() in softmax and SiLU with its own vectorized approximation (8 lanes at a
 * time on AVX2) and libm expf only for a tail shorter than 8; these reproduce that bit for bit.
 *
 * kern_softmax_f32: in place over a score row as ggml_soft_max does after scale and mask:
 * x[0..n) are the scores (masked ones -INFINITY) of a row llama.cpp sees with n_pad >= n
 * entries (its padded n_kv, e.g. 256); the entries [n, n_pad) are treated as masked and never
 * touched. p = exp(x - max), summed per aligned group of 8 in double, then p *= (float)(1/sum).
 * n_pad decides which elements take the vector exp (i < n_pad rounded down to 8). */
void kern_softmax_f32(float *x, size_t n, size_t n_pad);
/* y[i] = silu(x[i]) * g[i] as ggml_swiglu (llama.cpp's FFN gate; y may alias x or g). */
void kern_swiglu_f32(float *y, const float *x, const float *g, size_t n);
/* y[i] = silu(x[i]) as ggml_silu. */
void kern_silu_f32(float *y, const float *x, size_t n);
/* A transposed V (cells contiguous per dim, as llama.cpp's cache stores V) cut into blocks of
 * `blk` cells: cell t of dim d is v[(t / blk) * blk_stride + d * dim_stride + t % blk]. blk must
 * be a positive multiple of 32 (the kernels' cell groups never straddle a block). Blocks let a
 * cache touch memory only as positions are used. */
struct kern_vt {
    const float *v;
    size_t dim_stride, blk, blk_stride;
};
/* The attention output of one head: out[d] = sum_t p[t] * V(t, d) for d < dim, in the
 * summation order llama.cpp's softmax(qk).V product uses for a row of n_pad cells (its n_kv):
 * KERN_ORDER_GEMM = prompt batches (tinyBLAS, needs n_pad % 8 == 0 else falls back as llama.cpp
 * does), KERN_ORDER_VECDOT = single-token decode. Cells t >= n are padding (weight 0) and are not
 * read; p[t] == 0 entries (masked) add exactly nothing. A bad layout (blk not a positive multiple
 * of 32) gives NaN outputs. */
void kern_wsum_f32(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                   unsigned order);

/* ---- attention over F16 and Q8_0 KV caches (kern_attn.c; references in kern_ref.c) ----
 * What llama.cpp's CPU backend (34af94cd) computes for these cache types, bit for bit:
 *  - F16 K and V, flash attention off (what F16 means here): q is rounded to fp16 (ggml converts
 *    src1 to the K type's vec_dot type) and each score is an F16 dot product: tinyBLAS' order for
 *    a prompt batch (llamafile_sgemm takes F16 x F16 when n_tokens >= 2 and head_dim % 8 == 0),
 *    ggml_vec_dot_f16's for one token. The probabilities are rounded to fp16 the same way before
 *    softmax(qk).V, which is an F16 product over V's transposed cells: tinyBLAS for a batch
 *    (n_kv % 8 == 0, head_dim % 4 == 0), ggml_vec_dot_f16 over the n_kv cells for one token.
 *  - Q8_0 K and V: 34af94cd refuses a quantized V cache without flash attention, so a Q8_0 cache
 *    means its flash-attention kernel, whose K/V types are neither F32 nor F16 and which then
 *    always runs ggml_compute_forward_flash_attn_ext_f16_one_chunk, for a batch as for one token:
 *    q quantized to Q8_0 (quantize_row_q8_0), per visible cell s = vec_dot_q8_0_q8_0(k, q) * scale,
 *    an online softmax with libm expf (M, S, rescaling the accumulator by expf(M_old - M)), the V
 *    row dequantized (fp16 scale times int8) and added with one FMA per element, S = S*ms + vs
 *    contracted to an FMA (gcc -O3 -march=native), and a final scale by 1/S. V is therefore
 *    stored per position (not transposed), in blocks of 32 along the head dimension.
 * n is the number of visible cells, passed contiguously; padding cells (llama.cpp's n_kv) are
 * never read. The F16 functions give exactly the bits of kern_vec_dot_ex(BLK_T_F16, ...) on the
 * same rows; the reference and every ISA return identical bits (tests/check_kern.c). */

/* out[r] = q16 . (k16 + r * k_stride)[0..n) for r < n_rows, in summation order `order`
 * (KERN_ORDER_GEMM falls back to the single-token order when n % 8 != 0, as tinyBLAS declines). */
void kern_dot_f16_rows(float *out, const uint16_t *q16, const uint16_t *k16, size_t k_stride, size_t n,
                       size_t n_rows, unsigned order);
/* A transposed F16 V cut into blocks: the same layout as struct kern_vt with 2-byte cells. */
struct kern_vt_f16 {
    const uint16_t *v;
    size_t dim_stride, blk, blk_stride;
};
/* out[d] = sum_t p16[t] * V(t, d) for d < dim over the n visible cells of a row llama.cpp sees
 * with n_pad cells, in its F16 order for `order` (GEMM needs n_pad % 8 == 0 and dim % 4 == 0,
 * else the single-token order). p16 holds the probabilities rounded to fp16. A bad layout (blk
 * not a positive multiple of 32) gives NaN outputs. */
void kern_wsum_f16(float *out, const uint16_t *p16, const struct kern_vt_f16 *vt, size_t n, size_t n_pad,
                   size_t dim, unsigned order);
/* Flash attention of one query head over n visible cells of a Q8_0 cache: q8 is the query made
 * by kern_act_prepare(BLK_T_Q8_0, q, q8, dim); K row t starts at (const uint8_t *)k + t * k_stride,
 * V row t at v + t * v_stride (dim / 32 blocks each). out[0..dim) receives the normalised
 * softmax(scale * q.k) . V. dim must be a positive multiple of 32 (else NaN outputs); n == 0
 * gives zeros (llama.cpp's S == 0 case). */
void kern_fattn_q8_0(float *out, const void *q8, const void *k, size_t k_stride, const void *v, size_t v_stride,
                     size_t n, size_t dim, float scale);
/* x[0..n) = H x / sqrt(n), the orthonormal Walsh-Hadamard rotation llama.cpp applies to q, k, v
 * and the attention output for a quantized cache (ggml_compute_forward_fwht: scale first, then
 * butterflies u + v, u - v with the span doubling from 1). n a power of two; scalar only, it is
 * O(n log n) per head next to O(n * n_ctx) for the attention itself. */
void kern_fwht_f32(float *x, size_t n);

/* ---- batched attention: several queries over the same keys and values (kern_attn.c) ----
 * The query heads that share a KV head (GQA), for one token or for several prompt tokens, read
 * the same K rows and V cells; these load each row / cell once for all of them instead of once
 * per (token, head). Each output has exactly the bits of the one-query function above applied
 * to that query alone, in every ISA, so a batched prefill or decode is bit-identical to the
 * per-(row, head) path (tests/check_kern.c). Queries and outputs are pointer arrays (rows of a
 * batch and heads of a row have different strides); outputs must not overlap the inputs.
 *
 * For an F16 cache the queries and the probabilities are taken as floats: the caller rounds them
 * to fp16 first (kern_round_f16) to reproduce llama.cpp, which converts them to halves. A product
 * of two halves is exact in f32, so these sums are specified with fmaf: for fp16 inputs that is
 * exactly the F16 functions above, and any other float gives well-defined bits too.
 *
 * kern_attn_qk_f32: out[i][r] = kern_dot_f32(q[i], k + r * k_stride, n) for i < n_q, r < n_rows
 * (the one-token order, as kern_dot_f32_rows).
 * kern_attn_qk_f16: out[i][r] = K row r . q[i] in `order`: for fp16 values in q[i], the bits of
 * kern_dot_f16_rows on their halves (KERN_ORDER_GEMM falls back to the single-token order when
 * n % 8 != 0, as tinyBLAS declines). */
void kern_attn_qk_f32(float *const *out, const float *const *q, size_t n_q, const float *k, size_t k_stride,
                      size_t n, size_t n_rows);
void kern_attn_qk_f16(float *const *out, const float *const *q, size_t n_q, const uint16_t *k16, size_t k_stride,
                      size_t n, size_t n_rows, unsigned order);
/* kern_attn_pv_f32: out[i][0..dim) = kern_wsum_f32(out[i], p[i], vt, n[i], n_pad[i], dim, order).
 * kern_attn_pv_f16: the same over an F16 V with weights p[i]: for fp16 values, the bits of
 * kern_wsum_f16 on their halves. Each query has its own n (visible cells; the rows of a prompt
 * see different prefixes) and n_pad; cells t >= n[i] are never read for query i. A bad layout
 * (blk not a positive multiple of 32) gives NaN outputs. */
void kern_attn_pv_f32(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                      const struct kern_vt *vt, size_t dim, unsigned order);
void kern_attn_pv_f16(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                      const struct kern_vt_f16 *vt, size_t dim, unsigned order);
/* x[i] = the fp16 value nearest x[i] (round to nearest even, NaN to a quiet NaN of the same sign:
 * util_f32_to_fp16), as a float. */
void kern_round_f16(float *x, size_t n);

/* kern_matvec with an explicit summation order (KERN_ORDER_*). */
void kern_matvec_ex(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows,
                    size_t ncols, const void *act, float *y, unsigned order);

/* ---- batched products ----
 * kern_matmul: y[t * y_stride + r] = dot(W row r, act + t * act_stride) for every row r < nrows
 * and token t < n_tok, where each act row was made by kern_act_prepare(wtype, x_t, ., ncols).
 * Every output has exactly the bits of kern_matvec_ex(..., KERN_ORDER_GEMM) on that token alone,
 * which is kern_vec_dot per (row, token) (for F32/F16/BF16 with nrows % 4 != 0 it is the
 * vec_dot order, llama.cpp's tinyBLAS rule, as in kern_matvec_ex). So a batched prefill is
 * bit-identical to token-by-token decoding, for any thread count.
 * Work is split over the pool by fixed row chunks (never by thread count or timing); inside a
 * chunk, SIMD tile kernels load each weight block once for several tokens and rows.
 * kern_matmul_ex takes an explicit order (KERN_ORDER_*). n_tok == 1 is kern_matvec(_ex)
 * (y_stride unused); for n_tok > 1, y_stride must be >= nrows (else nothing is written). */
void kern_matmul(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows, size_t ncols,
                 const void *act, size_t act_stride, size_t n_tok, float *y, size_t y_stride);
void kern_matmul_ex(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows, size_t ncols,
                    const void *act, size_t act_stride, size_t n_tok, float *y, size_t y_stride,
                    unsigned order);

/* ---- ISA dispatch (kern_dispatch.c) ----
 * On first use kern picks the best kernel set this CPU can run, in a fixed order: neon-dotprod,
 * neon, avx512 (AVX-512 F/BW/VL + VNNI), avx-vnni (256-bit VNNI), avx2, then the scalar
 * reference (only ISAs built for the target are candidates).
 * LMPIPE_ISA=scalar|avx2|avx-vnni|avx512|neon|neon-dotprod forces one ("auto" or unset:
 * automatic). A forced
 * ISA that is unknown, not built for this target, or not supported by this CPU is NOT fatal:
 * kern warns once on stderr and uses the automatic choice, so a stale setting never makes the
 * engine unusable; `lmpipe info --cpu` shows what was asked for and what runs.
 * Every ISA returns the scalar reference's bits where it can follow its summation order (every
 * x86 tier does for every function), else stays within a tolerance documented and tested in
 * tests/check_kern.c; the choice changes speed, not results. */

/* Name of the ISA in use: "scalar", "avx2", "avx-vnni", "avx512", "neon" or "neon-dotprod". */
const char *kern_isa_name(void);
/* Switch the whole process to ISA `name` (tests, tools). 0; ERR_INVALID for an unknown name;
 * ERR_UNSUPPORTED when it is not built for this target or this CPU cannot run it (the current
 * choice is kept). Must not run while other threads are inside kern functions. */
int kern_isa_select(const char *name);

#define KERN_MAX_ISAS 8
/* What `lmpipe info --cpu` prints. */
struct kern_cpu_info {
    char features[192];      /* CPU features kern looks at, space-separated ("avx2 fma f16c ...") */
    const char *chosen;      /* kern_isa_name() */
    const char *requested;   /* LMPIPE_ISA as seen at start-up; NULL when unset */
    bool request_honoured;   /* false: unknown / unavailable, the automatic choice runs */
    int n_isa;               /* ISAs built for this target, in choice order, "scalar" last */
    const char *isa[KERN_MAX_ISAS];
    bool isa_available[KERN_MAX_ISAS]; /* this CPU can run it */
};
void kern_cpu_info(struct kern_cpu_info *out);

#endif
