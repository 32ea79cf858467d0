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

#include <math.h>
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
};

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

#endif
