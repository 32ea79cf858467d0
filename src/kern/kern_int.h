/* kern_int: module-private pieces shared by kern_ref.c and (later) the SIMD variants.
 *
 * The dispatch table: one `struct kern_type_ops` per GGUF tensor type, indexed by type number.
 * kern_ref.c fills the scalar table; a SIMD file can provide its own table with the same
 * function signatures, and the public entry points pick one table at startup. Every function
 * here must give bit-identical results to the scalar reference (the numerics are those of
 * llama.cpp's x86 AVX2 build, see kern_ref.c), so switching tables never changes outputs.
 *
 * Invariants: the functions never allocate, never fail, and trust their arguments (the public
 * wrappers in kern_ref.c check types and lengths first). */
#ifndef LMPIPE_KERN_KERN_INT_H
#define LMPIPE_KERN_KERN_INT_H

#include "kern.h"
#include "../util/blk.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Dequantize nblocks blocks of `src` into dst[nblocks * blck]. */
typedef void (*kern_dequant_fn)(const void *src, float *dst, size_t nblocks);
/* Convert x[n] into the prepared activation layout; n is a multiple of the act block size. */
typedef void (*kern_act_fn)(const float *x, void *dst, size_t n);
/* Dot product of one weight row of n elements with a prepared activation. */
typedef float (*kern_dot_fn)(const void *w, const void *act, size_t n);

struct kern_type_ops {
    uint32_t act_type;       /* GGUF type of the prepared activation (ggml's vec_dot_type) */
    kern_dequant_fn dequant; /* NULL: cannot dequantize */
    kern_dot_fn dot_gemm;    /* batched-matmul summation order; NULL: cannot multiply */
    kern_dot_fn dot_vecdot;  /* single-token summation order (== dot_gemm for quant types) */
    bool gemm_rows4;         /* tinyBLAS (float types) declines nrows % 4 != 0: use dot_vecdot */
};

static inline float kern_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t kern_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE half -> float without branches on the value (the hot path of every F16 row and every
 * block scale). Exact for every input, inf and NaN included: normal halves are rebased by an
 * exponent offset and an exact power-of-two multiply; subnormals are built as 0.5 + m*2^-24 in
 * the float format and the 0.5 subtracted exactly; inf/NaN bits are copied. Checked against util_fp16_to_f32 on all
 * 65536 inputs by check_kern. */
static inline float kern_h2f(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w; /* exponent and mantissa, sign shifted out */
    const float normalized = kern_bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = kern_bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    uint32_t mag = two_w < (1u << 27) ? kern_f32_bits(denormalized) : kern_f32_bits(normalized);
    /* inf/NaN: rebuild the bits directly (the multiply would quiet a signalling NaN) */
    mag = (h & 0x7C00u) == 0x7C00u ? 0x7F800000u | ((uint32_t)(h & 0x03FFu) << 13) : mag;
    return kern_bits_f32(sign | mag);
}

/* Round half to even, for |v| < 2^23 (larger values are already integers): the result of
 * x86 _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT) and of ggml's nearest_int(). Relies on
 * the default FP rounding mode, as ggml does. */
static inline float kern_rne(float v)
{
    const float magic = 8388608.0f; /* 2^23: adding it drops every fraction bit */
    float a = fabsf(v);
    if (!(a < magic)) return v; /* already integral, or inf/NaN */
    float r = (a + magic) - magic; /* IEEE semantics: never folded without -ffast-math */
    return copysignf(r, v);
}

/* x86 cvtps2dq on an already-integral float: out-of-range and NaN give INT32_MIN. */
static inline int32_t kern_cvt_i32(float v)
{
    if (!(fabsf(v) < 2147483648.0f)) return INT32_MIN;
    return (int32_t)v;
}

/* Saturate to int8 like packssdw + packsswb. */
static inline int8_t kern_sat_i8(int32_t v)
{
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* Horizontal sum of 8 lanes in the order of ggml's hsum_float_8 and tinyBLAS' hsum(__m256):
 * (hi128 + lo128), then movehl, then movehdup: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static inline float kern_hsum8(const float v[8])
{
    float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
    float b0 = a0 + a2, b1 = a1 + a3;
    return b0 + b1;
}

/* Horizontal sum of 8 lanes in the order of ggml's GGML_F32x8_REDUCE tail:
 * t = lo128 + hi128, then two haddps: (t0+t1) + (t2+t3). */
static inline float kern_hsum8_hadd(const float v[8])
{
    float t0 = v[0] + v[4], t1 = v[1] + v[5], t2 = v[2] + v[6], t3 = v[3] + v[7];
    float u0 = t0 + t1, u1 = t2 + t3;
    return u0 + u1;
}

/* ---- ISA variants (the contract between kern_ref.c, the dispatcher and each SIMD file) ----
 * Each SIMD file (kern_avx2.c, kern_avxvnni.c, kern_avx512.c, kern_neon.c, kern_neon_dotprod.c)
 * defines exactly one registered `const struct kern_isa kern_isa_<name>` and compiles to nothing
 * but a NULL-free empty table on targets it does not apply to (guard its body with the target's
 * predefined macros). Every member may be NULL: the dispatcher then keeps what lies below for
 * that slot. The dispatcher (kern_dispatch.c) picks, at start-up, the best ISA whose available()
 * is true, in a fixed order, unless LMPIPE_ISA forces one. A SIMD function must return what the
 * reference returns for the same inputs: bit-identical where it can follow the reference's
 * summation order (every x86 tier does: the reference is written in that order), else within a
 * documented tolerance checked by tests/check_kern.c on odd lengths.
 *
 * Layering: an ISA's table is laid over the reference, over its `base` first when it has one (a
 * tier that only rewrites its hottest kernels takes the rest from an unregistered base table
 * compiled with its own flags; avx512 does), and its `ext` extras are laid the same way. */
struct kern_isa_ext;
struct kern_isa {
    const char *name;
    bool (*available)(void); /* may this CPU run it (cpuid / getauxval)? */
    kern_dot_fn dot_gemm[BLK_T_COUNT_];   /* by weight type */
    kern_dot_fn dot_vecdot[BLK_T_COUNT_]; /* by weight type */
    kern_act_fn act[BLK_T_COUNT_];        /* by activation type (Q8_0, Q8_1, Q8_K, F16, BF16) */
    kern_dequant_fn dequant[BLK_T_COUNT_];
    float (*dot_f32)(const float *a, const float *b, size_t n); /* kern_dot_f32 */
    const struct kern_isa *base;     /* laid first (NULL: none); its own base is followed too */
    const struct kern_isa_ext *ext;  /* tile kernels and helpers (NULL: none) */
};

/* ---- dispatcher internals (kern_dispatch.c; below the ISA contract, free to change) ---- */

/* The reference (kern_ref.c): the table every ISA is laid over, and its activation converters
 * by activation type (NULL for a type that is not an activation type). */
extern const struct kern_type_ops kern_ref_ops[BLK_T_COUNT_];
kern_act_fn kern_ref_act(uint32_t act_type);
float kern_ref_dot_f32(const float *a, const float *b, size_t n);
/* The references of kern_softmax_f32, kern_swiglu_f32, kern_silu_f32, kern_wsum_f32 (same
 * contracts as in kern.h; the public names dispatch). */
void kern_ref_softmax_f32(float *x, size_t n, size_t n_pad);
void kern_ref_swiglu_f32(float *y, const float *x, const float *g, size_t n);
void kern_ref_silu_f32(float *y, const float *x, size_t n);
void kern_ref_wsum_f32(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                       unsigned order);

/* The single-token order's tail of kern_ref_wsum_f32 for dim d: cells np..n_pad (np = n_pad
 * rounded down to 32) added to sumf, cells past n skipped. SIMD wsums end with it too. */
float kern_ref_wsum_tail(const float *p, const struct kern_vt *vt, size_t d, size_t np, size_t n, size_t n_pad,
                         float sumf);

/* The references of kern_dot_f16_rows, kern_wsum_f16 and kern_fattn_q8_0 (kern.h; arguments
 * already checked by kern_attn.c), and the double tail every wsum_f16 ends with: the cells
 * np..n (np = n_pad rounded down to 32) of dim d added to `head` in double. */
void kern_ref_dot_f16_rows(float *out, const uint16_t *q16, const uint16_t *k16, size_t k_stride, size_t n,
                           size_t n_rows, unsigned order);
void kern_ref_wsum_f16(float *out, const uint16_t *p16, const struct kern_vt_f16 *vt, size_t n, size_t n_pad,
                       size_t dim, unsigned order);
float kern_ref_wsum_f16_tail(const uint16_t *p16, const struct kern_vt_f16 *vt, size_t d, size_t np, size_t n,
                             float head);
void kern_ref_fattn_q8_0(float *out, const void *q8, const void *k, size_t k_stride, const void *v, size_t v_stride,
                         size_t n, size_t dim, float scale);
/* The references of the batched F16 attention with float queries / probabilities (kern.h:
 * kern_attn_qk_f16, kern_attn_pv_f16) and of kern_round_f16, and the double tails their SIMD
 * versions end with: K row x . q over elements np..n, and V cells np..n of dim d . p. The batched
 * F32 functions have no reference of their own: they are the one-query functions in a loop. */
void kern_ref_attn_qk_f16(float *const *out, const float *const *q, size_t n_q, const uint16_t *k16, size_t k_stride,
                          size_t n, size_t n_rows, unsigned order);
void kern_ref_attn_pv_f16(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                          const struct kern_vt_f16 *vt, size_t dim, unsigned order);
void kern_ref_round_f16(float *x, size_t n);
float kern_ref_qk_f16_tail(const uint16_t *x, const float *q, size_t np, size_t n, float head);
float kern_ref_pv_f16_tail(const float *p, const struct kern_vt_f16 *vt, size_t d, size_t np, size_t n, float head);
typedef void (*kern_attn_qk_f32_fn)(float *const *out, const float *const *q, size_t n_q, const float *k,
                                    size_t k_stride, size_t n, size_t n_rows);
typedef void (*kern_attn_qk_f16_fn)(float *const *out, const float *const *q, size_t n_q, const uint16_t *k16,
                                    size_t k_stride, size_t n, size_t n_rows, unsigned order);
typedef void (*kern_attn_pv_f32_fn)(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad,
                                    size_t n_q, const struct kern_vt *vt, size_t dim, unsigned order);
typedef void (*kern_attn_pv_f16_fn)(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad,
                                    size_t n_q, const struct kern_vt_f16 *vt, size_t dim, unsigned order);
typedef void (*kern_dot_f16_rows_fn)(float *out, const uint16_t *q16, const uint16_t *k16, size_t k_stride,
                                     size_t n, size_t n_rows, unsigned order);
typedef void (*kern_wsum_f16_fn)(float *out, const uint16_t *p16, const struct kern_vt_f16 *vt, size_t n,
                                 size_t n_pad, size_t dim, unsigned order);
typedef void (*kern_fattn_fn)(float *out, const void *q8, const void *k, size_t k_stride, const void *v,
                              size_t v_stride, size_t n, size_t dim, float scale);

/* The online softmax of kern_fattn_q8_0 (kern.h: llama.cpp's flash_attn_ext one_chunk), shared by
 * the reference and the ISAs, which supply the score (K row . q8, ggml_vec_dot_q8_0_q8_0), the
 * rescale of the accumulator (ggml_vec_scale_f32: out *= m) and the V row's accumulation
 * (dequantize_row_q8_0 then ggml_vec_mad_f32: out = fma(x, w, out)). Always inlined, so the
 * function pointers are constants and their calls direct. */
static inline void kern_fattn_drive(float *out, const void *q8, const void *k, size_t k_stride, const void *v,
                                    size_t v_stride, size_t n, size_t dim, float scale, kern_dot_fn dot,
                                    void (*rescale)(float *out, size_t dim, float m),
                                    void (*mad)(float *out, const void *vrow, size_t dim, float w))
{
    float S = 0.0f, M = -INFINITY;
    for (size_t d = 0; d < dim; d++) out[d] = 0.0f;
    for (size_t t = 0; t < n; t++) {
        float s = dot((const uint8_t *)k + t * k_stride, q8, dim);
        s = s * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) { /* a new maximum: rescale what was accumulated */
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            rescale(out, dim, ms);
        } else {
            vs = expf(s - M);
        }
        mad(out, (const uint8_t *)v + t * v_stride, dim, vs);
        S = fmaf(S, ms, vs); /* S*ms + vs, contracted by gcc in ggml's build */
    }
    rescale(out, dim, S == 0.0f ? 0.0f : 1.0f / S);
}

/* Cell t of dim d of a kern_vt (see kern.h). */
static inline const float *kern_vt_cell(const struct kern_vt *vt, size_t d, size_t t)
{
    return vt->v + (t / vt->blk) * vt->blk_stride + d * vt->dim_stride + t % vt->blk;
}

/* x86: CPU and OS support what each tier needs (its table's available()). They live in
 * kern_dispatch.c, which is compiled for the baseline ISA, so they run safely on any x86.
 *   avx2:     AVX2 + FMA + F16C, YMM state saved by the OS;
 *   avx-vnni: that plus AVX-VNNI (CPUID 7.1 EAX bit 4; 256-bit vpdpbusd, e.g. Alder Lake);
 *   avx512:   that plus AVX-512 F/BW/VL/VNNI with opmask and ZMM state saved by the OS (XCR0
 *             bits 5-7; Ice Lake, Zen 4). */
bool kern_cpu_has_avx2(void);
bool kern_cpu_has_avxvnni(void);
bool kern_cpu_has_avx512(void);

/* Optional tile kernel of an ISA for one weight type: for r < nr and t < nt,
 *   y[t * ys + r] = dot_gemm(w + r * row_bytes, act + t * act_stride, n)
 * with exactly the bits of that ISA's dot_gemm (so of the reference): it may only share loads
 * and unpacking between the independent per-(row, token) accumulators. Any nr, nt >= 1. */
typedef void (*kern_tile_fn)(const void *w, size_t row_bytes, size_t nr, const void *act, size_t act_stride,
                             size_t nt, size_t n, float *y, size_t ys);

/* Optional extras of an ISA beyond the contract, pointed to by its struct kern_isa's `ext`
 * (kern_ext_avx2, ...): tile kernels, and the ggml-exact attention / FFN helpers of kern.h.
 * Every member may be NULL (what lies below runs) and must return the reference's bits. */
struct kern_isa_ext {
    const char *name;
    kern_tile_fn tile[BLK_T_COUNT_]; /* by weight type; NULL: rows x tokens of dot_gemm */
    void (*softmax)(float *x, size_t n, size_t n_pad);
    void (*swiglu)(float *y, const float *x, const float *g, size_t n);
    void (*silu)(float *y, const float *x, size_t n);
    void (*wsum)(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                 unsigned order);
    void (*dot_f32_rows)(float *out, const float *q, const float *k, size_t k_stride, size_t n, size_t n_rows);
    kern_dot_f16_rows_fn dot_f16_rows; /* attention over F16 / Q8_0 caches (kern_attn.c) */
    kern_wsum_f16_fn wsum_f16;
    kern_fattn_fn fattn_q8_0;
    kern_attn_qk_f32_fn attn_qk_f32; /* batched attention (kern.h kern_attn_*) */
    kern_attn_qk_f16_fn attn_qk_f16;
    kern_attn_pv_f32_fn attn_pv_f32;
    kern_attn_pv_f16_fn attn_pv_f16;
    void (*round_f16)(float *x, size_t n);
};

/* What the public entry points use: the reference with the chosen ISA's non-NULL members laid
 * over it. Built once; kern_active() never returns NULL. */
struct kern_active {
    const char *name;
    struct kern_type_ops ops[BLK_T_COUNT_];
    kern_act_fn act[BLK_T_COUNT_]; /* by activation type */
    float (*dot_f32)(const float *a, const float *b, size_t n);
    kern_tile_fn tile[BLK_T_COUNT_];
    void (*softmax)(float *x, size_t n, size_t n_pad);
    void (*swiglu)(float *y, const float *x, const float *g, size_t n);
    void (*silu)(float *y, const float *x, size_t n);
    void (*wsum)(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                 unsigned order);
    void (*dot_f32_rows)(float *out, const float *q, const float *k, size_t k_stride, size_t n, size_t n_rows);
    kern_dot_f16_rows_fn dot_f16_rows; /* never NULL (the reference) */
    kern_wsum_f16_fn wsum_f16;
    kern_fattn_fn fattn_q8_0;
    kern_attn_qk_f32_fn attn_qk_f32; /* NULL: the one-query kernels in a loop (kern_attn.c) */
    kern_attn_qk_f16_fn attn_qk_f16; /* never NULL (the reference) */
    kern_attn_pv_f32_fn attn_pv_f32; /* NULL: the one-query kernels in a loop */
    kern_attn_pv_f16_fn attn_pv_f16; /* never NULL */
    void (*round_f16)(float *x, size_t n); /* never NULL */
};
const struct kern_active *kern_active(void);

#endif
