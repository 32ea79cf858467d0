/* kern_ref: the scalar specification of every kernel and the reference dispatch table.
 *
 * What: dequantization of GGUF tensor types, conversion of f32 activations into ggml's
 * "vec_dot type" for each weight type, and fused row dot products between weight blocks and
 * quantized activation blocks (integer dot product per block, then scaled), and ggml-exact
 * softmax / SiLU / attention-weighted sums. kern_dispatch.c owns the public entry points
 * (kern_vec_dot, kern_matvec, ...): it starts from the table here (kern_ref_ops) and lays the
 * chosen ISA's functions over it, so every SIMD function is checked against these.
 *
 * Why this exact arithmetic: our logits must match llama.cpp (x86 AVX2 build, commit 34af94cd)
 * to ~1e-5, and an activation that lands one ulp away from llama.cpp's can flip an 8-bit or fp16
 * rounding and move logits by 1e-2. So every function here reproduces the reference's float
 * operations bit for bit: it was checked against the reference's own quants.c / vec.cpp /
 * sgemm.cpp compiled with its AVX2 flags (every type, random and odd lengths), and check_kern
 * keeps an AVX2 transcription of those kernels to guard it. Integer parts are exact, so the
 * float operations are what is reproduced:
 *   - activation quantization rounds half to even (_mm256_round_ps), Q8_0/Q8_1 scale
 *     d = amax/127 stored as fp16 with multiplier 127/amax, Q8_1 s = fp16(d * sum q) with the
 *     unrounded f32 d, Q8_K scale from the signed element of largest magnitude (iscale = -127/max,
 *     d = 1/iscale kept in f32);
 *   - Q8_0-family dot products keep 8 f32 lanes (lane k = the integer sum of elements 4k..4k+3
 *     of each block), accumulate lane += d_w*d_a * lane_sum with FMA, and reduce the lanes
 *     pairwise like hsum_float_8 — the same sequence ggml's AVX2 vec_dot and tinyBLAS perform;
 *   - F32/F16/BF16 rows follow tinyBLAS (batched) or ggml_vec_dot_* (single token) exactly,
 *     see KERN_ORDER_* in kern.h (the f32 tail even follows gcc's vectorization of it);
 *   - K-quants and IQ4_XS keep the integer lane split of their AVX2 kernels (which lanes a
 *     super-block's scales and min/offset terms land in), then FMA per super-block;
 *   - where llama.cpp's build contracts a scalar a*b + c (gcc -std=gnu11, -march=native) we
 *     use fmaf; where its code is not contracted (ggml-base dequantization, built without FMA)
 *     we do not.
 * Float expressions are written so that no contraction can happen (clang: FP_CONTRACT OFF; gcc
 * in ISO C mode never contracts); every FMA is an explicit fmaf().
 *
 * Invariants: nothing here allocates or fails; the public wrappers in kern_dispatch.c check
 * types and lengths first (invalid arguments give NaN outputs, never a crash). */
#include "kern_int.h"

#include "../util/util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

const int8_t kern_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};

static inline float h2f(uint16_t h)
{
    return kern_h2f(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Shared Q8_0-family machinery                                                               */

/* Accumulate one 32-element block: w[32], a[32] int8 values, d = d_w*d_a (already rounded to
 * f32, as ggml computes it before the FMA). acc[8] are the AVX2 lanes. */
static inline void acc_block32(float acc[8], const int8_t *w, const int8_t *a, float d)
{
    for (int k = 0; k < 8; k++) {
        int32_t s = (int32_t)w[4 * k] * a[4 * k] + (int32_t)w[4 * k + 1] * a[4 * k + 1] +
                    (int32_t)w[4 * k + 2] * a[4 * k + 2] + (int32_t)w[4 * k + 3] * a[4 * k + 3];
        acc[k] = fmaf(d, (float)s, acc[k]);
    }
}

/* Integer lane sums of one 32-element group: lane k = sum of w[j]*a[j] for j = 4k..4k+3, which
 * is what maddubs + madd(1) (or madd with a broadcast scale) leave in each 32-bit lane. */
static inline void lanes32(const int8_t *w, const int8_t *a, int32_t lane[8])
{
    for (int k = 0; k < 8; k++)
        lane[k] = (int32_t)w[4 * k] * a[4 * k] + (int32_t)w[4 * k + 1] * a[4 * k + 1] +
                  (int32_t)w[4 * k + 2] * a[4 * k + 2] + (int32_t)w[4 * k + 3] * a[4 * k + 3];
}

/* K-quant super-block (256 values): lane k = sum over the eight 32-element groups g of
 * scale16[(32g + 4k) / 16] * (products 32g+4k .. 32g+4k+3). This is the integer accumulator
 * `sumi` of every AVX2 K-quant kernel: lanes 0-3 see the first 16 elements of each group, lanes
 * 4-7 the last 16, so a per-16 scale lands on the right lanes. Exact in int32. */
static inline void lanes256(const int8_t *q, const int8_t *a, const int32_t scale16[16], int32_t lane[8])
{
    for (int k = 0; k < 8; k++) lane[k] = 0;
    for (int g = 0; g < 8; g++) {
        int32_t p[8];
        lanes32(q + 32 * g, a + 32 * g, p);
        for (int k = 0; k < 8; k++) lane[k] += scale16[2 * g + (k >> 2)] * p[k];
    }
}

/* acc[k] = fma(d, lane[k], acc[k]): the _mm256_fmadd_ps(broadcast d, cvtepi32_ps(sumi), acc). */
static inline void fma_lanes(float acc[8], float d, const int32_t lane[8])
{
    for (int k = 0; k < 8; k++) acc[k] = fmaf(d, (float)lane[k], acc[k]);
}

/* ------------------------------------------------------------------------------------------ */
/* F32                                                                                        */

static void dequant_f32(const void *src, float *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

static void act_f32(const float *x, void *dst, size_t n)
{
    if ((const void *)x != dst) memcpy(dst, x, n * sizeof(float));
}

/* The scalar tail `for (i = np; i < n; i++) sumf += x[i]*y[i];` of ggml_vec_dot_f32 as gcc 12
 * compiles it in llama.cpp's AVX2 build (checked against the object code): groups of 8, then one
 * group of 4, are multiplied as vectors (each product rounded) and added to sumf one lane at a
 * time in order; the last 0-3 elements are contracted to scalar FMAs. */
static float f32_tail(const float *x, const float *y, size_t i, size_t n, float sumf)
{
    for (; n - i >= 8; i += 8)
        for (int k = 0; k < 8; k++) {
            float p = x[i + k] * y[i + k];
            sumf = sumf + p;
        }
    if (n - i >= 4) {
        for (int k = 0; k < 4; k++) {
            float p = x[i + k] * y[i + k];
            sumf = sumf + p;
        }
        i += 4;
    }
    for (; i < n; i++) sumf = fmaf(x[i], y[i], sumf);
    return sumf;
}

/* ggml_vec_dot_f32, AVX2: 4 accumulators x 8 lanes over 32-element steps (FMA), reduced
 * x0+=x2, x1+=x3, x0+=x1, then lo+hi and two haddps; then the tail above. */
static float dot_f32_vecdot(const void *wv, const void *av, size_t n)
{
    const float *x = wv, *y = av;
    size_t np = n & ~(size_t)31;
    float s[4][8] = {{0}};
    for (size_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 8; k++) s[j][k] = fmaf(x[i + 8 * j + k], y[i + 8 * j + k], s[j][k]);
    for (int k = 0; k < 8; k++) {
        s[0][k] = s[0][k] + s[2][k];
        s[1][k] = s[1][k] + s[3][k];
    }
    for (int k = 0; k < 8; k++) s[0][k] = s[0][k] + s[1][k];
    return f32_tail(x, y, np, n, kern_hsum8_hadd(s[0]));
}

/* tinyBLAS<8, __m256>: one accumulator of 8 lanes, lane k += w[i+k]*a[i+k] by FMA, hsum.
 * tinyBLAS declines k % 8 != 0, and llama.cpp then uses ggml_vec_dot_f32. */
static float dot_f32_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_f32_vecdot(wv, av, n);
    const float *x = wv, *y = av;
    float acc[8] = {0};
    for (size_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] = fmaf(x[i + k], y[i + k], acc[k]);
    return kern_hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* 16-bit float rows (F16 and BF16)                                                           */
/* ggml's F16 and BF16 dot products perform the same float operations in the same order; they  */
/* differ only in the element conversion (cvt) and in the single-token order's final 8-lane     */
/* reduction (hsum). Products of two 16-bit floats are exact in f32, so ggml's FMAs round like  */
/* the multiply-then-add written here.                                                         */

typedef float (*half_cvt_fn)(uint16_t h);

/* ggml_vec_dot_f16 (AVX2+F16C) / ggml_vec_dot_bf16 (AVX2): 4 accumulators x 8 lanes over
 * 32-element steps, lanes combined (s0+s2)+(s1+s3), reduced by hsum (F16: GGML_F32x8_REDUCE's
 * haddps order, kern_hsum8_hadd; BF16: hsum_float_8, kern_hsum8), then a double-precision tail. */
static inline float dot_half_vecdot(const uint16_t *x, const uint16_t *y, size_t n, half_cvt_fn cvt,
                                    float (*hsum)(const float v[8]))
{
    size_t np = n & ~(size_t)31;
    float s[4][8] = {{0}};
    for (size_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 8; k++) {
                float p = cvt(x[i + 8 * j + k]) * cvt(y[i + 8 * j + k]);
                s[j][k] = s[j][k] + p;
            }
    float t[8];
    for (int k = 0; k < 8; k++) {
        float a = s[0][k] + s[2][k], b = s[1][k] + s[3][k];
        t[k] = a + b;
    }
    double sumf = (double)hsum(t);
    for (size_t i = np; i < n; i++) sumf += (double)(cvt(x[i]) * cvt(y[i]));
    return (float)sumf;
}

/* tinyBLAS<8, __m256>: one accumulator of 8 lanes, lane k += w[i+k]*a[i+k], hsum_float_8. The
 * caller handles n % 8 != 0 (tinyBLAS declines it; llama.cpp then uses the vec_dot). */
static inline float dot_half_gemm(const uint16_t *x, const uint16_t *y, size_t n, half_cvt_fn cvt)
{
    float acc[8] = {0};
    for (size_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) {
            float p = cvt(x[i + k]) * cvt(y[i + k]); /* exact: FMA would round the same */
            acc[k] = acc[k] + p;
        }
    return kern_hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* F16 (activations rounded to fp16, round to nearest even like F16C)                         */

static void dequant_f16(const void *src, float *dst, size_t n)
{
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = h2f(h[i]);
}

static void act_f16(const float *x, void *dst, size_t n)
{
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++) h[i] = util_f32_to_fp16(x[i]);
}

static float dot_f16_vecdot(const void *wv, const void *av, size_t n)
{
    return dot_half_vecdot(wv, av, n, h2f, kern_hsum8_hadd);
}

static float dot_f16_gemm(const void *wv, const void *av, size_t n)
{
    return n % 8 ? dot_f16_vecdot(wv, av, n) : dot_half_gemm(wv, av, n, h2f);
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_0 activations                                                                           */

/* quantize_row_q8_0, AVX2 path. */
static void act_q8_0(const float *x, void *dst, size_t n)
{
    struct blk_q8_0 *y = dst;
    for (size_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            float a = fabsf(x[j]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[ib].d = util_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[ib].qs[j] = kern_sat_i8(kern_cvt_i32(kern_rne(x[j] * id)));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_0 weights                                                                               */

static void dequant_q8_0(const void *src, float *dst, size_t nb)
{
    const struct blk_q8_0 *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = (float)b[i].qs[j] * d;
    }
}

static float dot_q8_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q8_0 *w = wv;
    const struct blk_q8_0 *a = av;
    float acc[8] = {0};
    for (size_t ib = 0; ib < n / QK8_0; ib++) {
        const float d = h2f(w[ib].d) * h2f(a[ib].d);
        acc_block32(acc, w[ib].qs, a[ib].qs, d);
    }
    return kern_hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* Q4_0 weights                                                                               */

static inline void unpack_q4_0(const struct blk_q4_0 *b, int8_t q[32])
{
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((b->qs[j] & 0x0F) - 8);
        q[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
    }
}

static void dequant_q4_0(const void *src, float *dst, size_t nb)
{
    const struct blk_q4_0 *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        int8_t q[32];
        unpack_q4_0(&b[i], q);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)q[j] * d;
    }
}

static float dot_q4_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_0 *w = wv;
    const struct blk_q8_0 *a = av;
    float acc[8] = {0};
    for (size_t ib = 0; ib < n / QK4_0; ib++) {
        int8_t q[32];
        unpack_q4_0(&w[ib], q);
        const float d = h2f(w[ib].d) * h2f(a[ib].d);
        acc_block32(acc, q, a[ib].qs, d);
    }
    return kern_hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* BF16 (activations rounded to bf16, nearest even, like GGML_FP32_TO_BF16)                    */

static void dequant_bf16(const void *src, float *dst, size_t n)
{
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = util_bf16_to_f32(h[i]);
}

static void act_bf16(const float *x, void *dst, size_t n)
{
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++) h[i] = util_f32_to_bf16(x[i]);
}

static float dot_bf16_vecdot(const void *wv, const void *av, size_t n)
{
    return dot_half_vecdot(wv, av, n, util_bf16_to_f32, kern_hsum8);
}

static float dot_bf16_gemm(const void *wv, const void *av, size_t n)
{
    return n % 8 ? dot_bf16_vecdot(wv, av, n) : dot_half_gemm(wv, av, n, util_bf16_to_f32);
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_1 activations                                                                           */

/* quantize_row_q8_1, AVX2 path: as Q8_0, plus s = fp16(d * sum(q)) with the unrounded f32 d. */
static void act_q8_1(const float *x, void *dst, size_t n)
{
    struct blk_q8_1 *y = dst;
    for (size_t ib = 0; ib < n / QK8_1; ib++, x += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) {
            float a = fabsf(x[j]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[ib].d = util_f32_to_fp16(d);
        uint32_t sum = 0; /* sum of the int32 lanes before packing (wrapping, like paddd) */
        for (int j = 0; j < QK8_1; j++) {
            int32_t q = kern_cvt_i32(kern_rne(x[j] * id));
            sum += (uint32_t)q;
            y[ib].qs[j] = kern_sat_i8(q);
        }
        y[ib].s = util_f32_to_fp16(d * (float)(int32_t)sum);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Q4_1 / Q5_0 / Q5_1 weights                                                                 */

static inline uint32_t load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void unpack_q4_1(const struct blk_q4_1 *b, int8_t q[32])
{
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(b->qs[j] & 0x0F);
        q[j + 16] = (int8_t)(b->qs[j] >> 4);
    }
}

/* 5-bit value of element j: nibble | bit j of qh << 4 (unsigned, 0..31). */
static inline void unpack_q5(const uint8_t *qs, const uint8_t *qh4, int8_t q[32])
{
    uint32_t qh = load_u32le(qh4);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((qs[j] & 0x0F) | ((qh >> j) & 1u) << 4);
        q[j + 16] = (int8_t)((qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4);
    }
}

static void dequant_q4_1(const void *src, float *dst, size_t nb)
{
    const struct blk_q4_1 *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        int8_t q[32];
        unpack_q4_1(&b[i], q);
        for (int j = 0; j < 32; j++) {
            float v = (float)q[j] * d; /* two roundings: ggml-base is built without FMA */
            dst[i * 32 + j] = v + m;
        }
    }
}

static void dequant_q5_0(const void *src, float *dst, size_t nb)
{
    const struct blk_q5_0 *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        int8_t q[32];
        unpack_q5(b[i].qs, b[i].qh, q);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)(q[j] - 16) * d;
    }
}

static void dequant_q5_1(const void *src, float *dst, size_t nb)
{
    const struct blk_q5_1 *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        int8_t q[32];
        unpack_q5(b[i].qs, b[i].qh, q);
        for (int j = 0; j < 32; j++) {
            float v = (float)q[j] * d;
            dst[i * 32 + j] = v + m;
        }
    }
}

/* ggml_vec_dot_q4_1_q8_1 / q5_1_q8_1, AVX2: lanes as Q8_0 with d = d_w*d_a, plus the offset
 * term summs += m_w * s_a accumulated in scalar f32 (an FMA after gcc's contraction), added after
 * the lane reduction. */
static float dot_q4_1(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_1 *w = wv;
    const struct blk_q8_1 *a = av;
    float acc[8] = {0}, summs = 0.0f;
    for (size_t ib = 0; ib < n / QK4_1; ib++) {
        summs = fmaf(h2f(w[ib].m), h2f(a[ib].s), summs);
        int8_t q[32];
        unpack_q4_1(&w[ib], q);
        acc_block32(acc, q, a[ib].qs, h2f(w[ib].d) * h2f(a[ib].d));
    }
    return kern_hsum8(acc) + summs;
}

static float dot_q5_1(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_1 *w = wv;
    const struct blk_q8_1 *a = av;
    float acc[8] = {0}, summs = 0.0f;
    for (size_t ib = 0; ib < n / QK5_1; ib++) {
        summs = fmaf(h2f(w[ib].m), h2f(a[ib].s), summs);
        int8_t q[32];
        unpack_q5(w[ib].qs, w[ib].qh, q);
        acc_block32(acc, q, a[ib].qs, h2f(w[ib].d) * h2f(a[ib].d));
    }
    return kern_hsum8(acc) + summs;
}

/* Q5_0: the Q8_0 structure (vec_dot and tinyBLAS agree). */
static float dot_q5_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_0 *w = wv;
    const struct blk_q8_0 *a = av;
    float acc[8] = {0};
    for (size_t ib = 0; ib < n / QK5_0; ib++) {
        int8_t q[32];
        unpack_q5(w[ib].qs, w[ib].qh, q);
        for (int j = 0; j < 32; j++) q[j] = (int8_t)(q[j] - 16);
        acc_block32(acc, q, a[ib].qs, h2f(w[ib].d) * h2f(a[ib].d));
    }
    return kern_hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* IQ4_NL                                                                                     */

static inline void unpack_iq4(const uint8_t *qs, int8_t q[32])
{
    for (int j = 0; j < 16; j++) {
        q[j] = kern_iq4nl_values[qs[j] & 0x0F];
        q[j + 16] = kern_iq4nl_values[qs[j] >> 4];
    }
}

static void dequant_iq4_nl(const void *src, float *dst, size_t nb)
{
    const struct blk_iq4_nl *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        int8_t q[32];
        unpack_iq4(b[i].qs, q);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = d * (float)q[j];
    }
}

/* Batched (tinyBLAS_Q0_AVX): the Q8_0 structure. */
static float dot_iq4_nl_gemm(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_nl *w = wv;
    const struct blk_q8_0 *a = av;
    float acc[8] = {0};
    for (size_t ib = 0; ib < n / QK4_NL; ib++) {
        int8_t q[32];
        unpack_iq4(w[ib].qs, q);
        acc_block32(acc, q, a[ib].qs, h2f(w[ib].d) * h2f(a[ib].d));
    }
    return kern_hsum8(acc);
}

/* Single token (ggml_vec_dot_iq4_nl_q8_0, AVX2): blocks alternate between two accumulators, which
 * are added lane-wise before the reduction; an odd last block is added in scalar (FMA). */
static float dot_iq4_nl_vecdot(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_nl *w = wv;
    const struct blk_q8_0 *a = av;
    size_t nb = n / QK4_NL, ib = 0;
    float acc1[8] = {0}, acc2[8] = {0};
    int8_t q[32];
    for (; ib + 1 < nb; ib += 2) {
        unpack_iq4(w[ib].qs, q);
        acc_block32(acc1, q, a[ib].qs, h2f(a[ib].d) * h2f(w[ib].d));
        unpack_iq4(w[ib + 1].qs, q);
        acc_block32(acc2, q, a[ib + 1].qs, h2f(a[ib + 1].d) * h2f(w[ib + 1].d));
    }
    float t[8];
    for (int k = 0; k < 8; k++) t[k] = acc1[k] + acc2[k];
    float sumf = kern_hsum8(t);
    for (; ib < nb; ib++) {
        unpack_iq4(w[ib].qs, q);
        int32_t sumi = 0;
        for (int j = 0; j < 32; j++) sumi += (int32_t)q[j] * a[ib].qs[j];
        sumf = fmaf(h2f(a[ib].d) * h2f(w[ib].d), (float)sumi, sumf);
    }
    return sumf;
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_K activations                                                                           */

/* ggml's nearest_int: adding 1.5*2^23 leaves round-half-even(v) in the low mantissa bits (for
 * |v| <= 2^22; other inputs give what ggml gives). Bit manipulation only: no UB on NaN. */
static inline int32_t nearest_int(float v)
{
    uint32_t bits = kern_f32_bits(v + 12582912.0f);
    return (int32_t)(bits & 0x007FFFFFu) - 0x00400000;
}

/* quantize_row_q8_K_ref (x86 uses the reference): the scale comes from the first element of
 * largest magnitude, with its sign; iscale = -127/max, q = min(127, nearest_int(iscale*x)),
 * d = 1/iscale in f32; bsums are the sums of each 16 quants. */
static void act_q8_K(const float *x, void *dst, size_t n)
{
    struct blk_q8_K *y = dst;
    for (size_t ib = 0; ib < n / QK_K; ib++, x += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[ib], 0, sizeof y[ib]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int32_t v = nearest_int(iscale * x[j]);
            y[ib].qs[j] = (int8_t)(v < 127 ? v : 127); /* ggml: MIN(127, v) stored to int8 */
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int32_t sum = 0;
            for (int j = 0; j < 16; j++) sum += y[ib].qs[16 * g + j];
            y[ib].bsums[g] = (int16_t)sum;
        }
        y[ib].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* K-quants                                                                                   */

/* 6-bit scale and min j (0..7) of Q4_K/Q5_K, packed in 12 bytes. */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* 16 signed 6-bit scales of Q3_K (already minus 32). Low 4 bits: bytes 0..7 (low nibble for
 * j < 8, high nibble for j >= 8); high 2 bits: byte 8 + j%4, bits 2*(j/4). */
static inline void scales_q3_K(const uint8_t *s, int32_t out[16])
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
        int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (lo | hi << 4) - 32;
    }
}

/* Element order of the 2-bit/3-bit layouts: element 128h + 32s + l has its bits in byte
 * qs[32h + l] at shift 2s (h = 0..1, s = 0..3, l = 0..31). */
static inline void unpack_q2_K(const struct blk_q2_K *b, int8_t q[256])
{
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * s + l] = (int8_t)((b->qs[32 * h + l] >> (2 * s)) & 3);
}

/* Q3_K: value = low 2 bits - (hmask bit (4h+s) of byte l set ? 0 : 4). */
static inline void unpack_q3_K(const struct blk_q3_K *b, int8_t q[256])
{
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) {
                int v = (b->qs[32 * h + l] >> (2 * s)) & 3;
                int hb = (b->hmask[l] >> (4 * h + s)) & 1;
                q[128 * h + 32 * s + l] = (int8_t)(v - (hb ? 0 : 4));
            }
}

/* Q4_K: element 64j + l (l < 32) is the low nibble of qs[32j + l], 64j + 32 + l the high one. */
static inline void unpack_q4_K(const uint8_t *qs, int8_t q[256])
{
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[64 * j + l] = (int8_t)(qs[32 * j + l] & 0x0F);
            q[64 * j + 32 + l] = (int8_t)(qs[32 * j + l] >> 4);
        }
}

/* Q5_K: Q4_K plus bit (2j) / (2j+1) of qh[l] as the fifth bit. */
static inline void unpack_q5_K(const struct blk_q5_K *b, int8_t q[256])
{
    unpack_q4_K(b->qs, q);
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[64 * j + l] = (int8_t)(q[64 * j + l] + (((b->qh[l] >> (2 * j)) & 1) << 4));
            q[64 * j + 32 + l] = (int8_t)(q[64 * j + 32 + l] + (((b->qh[l] >> (2 * j + 1)) & 1) << 4));
        }
}

/* Q6_K: element 128h + l + 32s: low 4 bits from ql[64h + l + 32(s&1)] (nibble s>>1),
 * high 2 bits from qh[32h + l] at shift 2s; value - 32. */
static inline void unpack_q6_K(const struct blk_q6_K *b, int8_t q[256])
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *ql = b->ql + 64 * h;
            uint8_t qh = b->qh[32 * h + l];
            q[128 * h + l + 0] = (int8_t)(((ql[l] & 0x0F) | ((qh >> 0) & 3) << 4) - 32);
            q[128 * h + l + 32] = (int8_t)(((ql[l + 32] & 0x0F) | ((qh >> 2) & 3) << 4) - 32);
            q[128 * h + l + 64] = (int8_t)(((ql[l] >> 4) | ((qh >> 4) & 3) << 4) - 32);
            q[128 * h + l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh >> 6) & 3) << 4) - 32);
        }
}

/* IQ4_XS: 6-bit sub-block scales minus 32; low 4 bits in scales_l (nibble ib%2), high 2 bits at
 * scales_h >> 2ib. */
static inline int32_t ls_iq4_xs(const struct blk_iq4_xs *b, int ib)
{
    int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    int hi = (b->scales_h >> (2 * ib)) & 3;
    return (lo | hi << 4) - 32;
}

static void dequant_q2_K(const void *src, float *dst, size_t nb)
{
    const struct blk_q2_K *b = src;
    for (size_t i = 0; i < nb; i++, dst += QK_K) {
        const float d = h2f(b[i].d), min = h2f(b[i].dmin);
        int8_t q[256];
        unpack_q2_K(&b[i], q);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)(b[i].scales[g] & 0x0F), ml = min * (float)(b[i].scales[g] >> 4);
            for (int l = 0; l < 16; l++) {
                float v = dl * (float)q[16 * g + l];
                dst[16 * g + l] = v - ml;
            }
        }
    }
}

static void dequant_q3_K(const void *src, float *dst, size_t nb)
{
    const struct blk_q3_K *b = src;
    for (size_t i = 0; i < nb; i++, dst += QK_K) {
        const float d = h2f(b[i].d);
        int32_t sc[16];
        int8_t q[256];
        scales_q3_K(b[i].scales, sc);
        unpack_q3_K(&b[i], q);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)sc[g];
            for (int l = 0; l < 16; l++) dst[16 * g + l] = dl * (float)q[16 * g + l];
        }
    }
}

static void dequant_q4_K(const void *src, float *dst, size_t nb)
{
    const struct blk_q4_K *b = src;
    for (size_t i = 0; i < nb; i++, dst += QK_K) {
        const float d = h2f(b[i].d), min = h2f(b[i].dmin);
        int8_t q[256];
        unpack_q4_K(b[i].qs, q);
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            scale_min_k4(g, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)q[32 * g + l];
                dst[32 * g + l] = v - m1;
            }
        }
    }
}

static void dequant_q5_K(const void *src, float *dst, size_t nb)
{
    const struct blk_q5_K *b = src;
    for (size_t i = 0; i < nb; i++, dst += QK_K) {
        const float d = h2f(b[i].d), min = h2f(b[i].dmin);
        int8_t q[256];
        unpack_q5_K(&b[i], q);
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            scale_min_k4(g, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)q[32 * g + l];
                dst[32 * g + l] = v - m1;
            }
        }
    }
}

static void dequant_q6_K(const void *src, float *dst, size_t nb)
{
    const struct blk_q6_K *b = src;
    for (size_t i = 0; i < nb; i++, dst += QK_K) {
        const float d = h2f(b[i].d);
        int8_t q[256];
        unpack_q6_K(&b[i], q);
        for (int g = 0; g < 16; g++) {
            const float ds = d * (float)b[i].scales[g]; /* ggml: d * sc * q, left to right */
            for (int l = 0; l < 16; l++) dst[16 * g + l] = ds * (float)q[16 * g + l];
        }
    }
}

static void dequant_iq4_xs(const void *src, float *dst, size_t nb)
{
    const struct blk_iq4_xs *b = src;
    for (size_t i = 0; i < nb; i++, dst += QK_K) {
        const float d = h2f(b[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const float dl = d * (float)ls_iq4_xs(&b[i], ib);
            int8_t q[32];
            unpack_iq4(b[i].qs + 16 * ib, q);
            for (int j = 0; j < 32; j++) dst[32 * ib + j] = dl * (float)q[j];
        }
    }
}

/* ggml_vec_dot_q2_K_q8_K, AVX2: per super-block first acc += dmin' * (mins . bsums, pairwise in
 * 8 lanes) with dmin' = -(d_a * dmin_w), then acc += d * sumi; one hsum at the end. */
static float dot_q2_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q2_K *w = wv;
    const struct blk_q8_K *a = av;
    float acc[8] = {0};
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * h2f(w[i].d);
        const float dmin = -(a[i].d * h2f(w[i].dmin));
        int32_t prod[8], sc[16], lane[8];
        for (int k = 0; k < 8; k++)
            prod[k] = (int32_t)(w[i].scales[2 * k] >> 4) * a[i].bsums[2 * k] +
                      (int32_t)(w[i].scales[2 * k + 1] >> 4) * a[i].bsums[2 * k + 1];
        fma_lanes(acc, dmin, prod);
        for (int g = 0; g < 16; g++) sc[g] = w[i].scales[g] & 0x0F;
        int8_t q[256];
        unpack_q2_K(&w[i], q);
        lanes256(q, a[i].qs, sc, lane);
        fma_lanes(acc, d, lane);
    }
    return kern_hsum8(acc);
}

static float dot_q3_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q3_K *w = wv;
    const struct blk_q8_K *a = av;
    float acc[8] = {0};
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * h2f(w[i].d);
        int32_t sc[16], lane[8];
        int8_t q[256];
        scales_q3_K(w[i].scales, sc);
        unpack_q3_K(&w[i], q);
        lanes256(q, a[i].qs, sc, lane);
        fma_lanes(acc, d, lane);
    }
    return kern_hsum8(acc);
}

/* The min term of Q4_K: 4 lanes, lane k = mins[2k]*(bsums of group 2k) + mins[2k+1]*(...). */
static inline void mins_prod_k4(const uint8_t *scales, const int16_t *bsums, int32_t prod[4], int32_t sc16[16])
{
    uint8_t sc[8], m[8];
    for (int g = 0; g < 8; g++) scale_min_k4(g, scales, &sc[g], &m[g]);
    for (int k = 0; k < 4; k++) {
        int32_t s0 = bsums[4 * k] + bsums[4 * k + 1], s1 = bsums[4 * k + 2] + bsums[4 * k + 3];
        prod[k] = (int32_t)m[2 * k] * s0 + (int32_t)m[2 * k + 1] * s1;
    }
    for (int g = 0; g < 8; g++) sc16[2 * g] = sc16[2 * g + 1] = sc[g];
}

/* ggml_vec_dot_q4_K_q8_K, AVX2: lanes acc += d * sumi; the min term in a separate 4-lane
 * accumulator (FMA), reduced (m0+m2)+(m1+m3) and added after hsum_float_8(acc). */
static float dot_q4_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_K *w = wv;
    const struct blk_q8_K *a = av;
    float acc[8] = {0}, accm[4] = {0};
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * h2f(w[i].d);
        const float dmin = -(a[i].d * h2f(w[i].dmin));
        int32_t prod[4], sc16[16], lane[8];
        mins_prod_k4(w[i].scales, a[i].bsums, prod, sc16);
        for (int k = 0; k < 4; k++) accm[k] = fmaf(dmin, (float)prod[k], accm[k]);
        int8_t q[256];
        unpack_q4_K(w[i].qs, q);
        lanes256(q, a[i].qs, sc16, lane);
        fma_lanes(acc, d, lane);
    }
    float m02 = accm[0] + accm[2], m13 = accm[1] + accm[3];
    float m = m02 + m13;
    return kern_hsum8(acc) + m;
}

/* ggml_vec_dot_q5_K_q8_K, AVX2: the min term is an exact integer per super-block, accumulated in
 * scalar f32 (summs += dmin * isum, an FMA after contraction) and added after the reduction. */
static float dot_q5_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_K *w = wv;
    const struct blk_q8_K *a = av;
    float acc[8] = {0}, summs = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * h2f(w[i].d);
        const float dmin = -(a[i].d * h2f(w[i].dmin));
        int32_t prod[4], sc16[16], lane[8];
        mins_prod_k4(w[i].scales, a[i].bsums, prod, sc16);
        int32_t isum = (prod[0] + prod[1]) + (prod[2] + prod[3]);
        summs = fmaf(dmin, (float)isum, summs);
        int8_t q[256];
        unpack_q5_K(&w[i], q);
        lanes256(q, a[i].qs, sc16, lane);
        fma_lanes(acc, d, lane);
    }
    return kern_hsum8(acc) + summs;
}

/* ggml_vec_dot_q6_K_q8_K, AVX2 (at the reference commit): the lanes multiply the unsigned 6-bit
 * values (0..63), and the -32 offset is removed afterwards per lane from the block sums:
 * lane k -= 32 * (scale[2k]*bsums[2k] + scale[2k+1]*bsums[2k+1]). The total is the same as
 * with signed values, but the split over lanes (and so the f32 rounding) is not. */
static float dot_q6_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q6_K *w = wv;
    const struct blk_q8_K *a = av;
    float acc[8] = {0};
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * h2f(w[i].d);
        int32_t sc[16], lane[8];
        for (int g = 0; g < 16; g++) sc[g] = w[i].scales[g];
        int8_t q[256];
        unpack_q6_K(&w[i], q);
        for (int j = 0; j < 256; j++) q[j] = (int8_t)(q[j] + 32);
        lanes256(q, a[i].qs, sc, lane);
        for (int k = 0; k < 8; k++)
            lane[k] -= 32 * (sc[2 * k] * a[i].bsums[2 * k] + sc[2 * k + 1] * a[i].bsums[2 * k + 1]);
        fma_lanes(acc, d, lane);
    }
    return kern_hsum8(acc);
}

static float dot_iq4_xs(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_xs *w = wv;
    const struct blk_q8_K *a = av;
    float acc[8] = {0};
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(w[i].d) * a[i].d;
        int32_t sc[16], lane[8];
        int8_t q[256];
        for (int ib = 0; ib < 8; ib++) {
            sc[2 * ib] = sc[2 * ib + 1] = ls_iq4_xs(&w[i], ib);
            unpack_iq4(w[i].qs + 16 * ib, q + 32 * ib);
        }
        lanes256(q, a[i].qs, sc, lane);
        fma_lanes(acc, d, lane);
    }
    return kern_hsum8(acc);
}

/* Dequantize activation-only types too (handy for tests and debugging). */
static void dequant_q8_1(const void *src, float *dst, size_t nb)
{
    const struct blk_q8_1 *b = src;
    for (size_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)b[i].qs[j] * d;
    }
}

static void dequant_q8_K(const void *src, float *dst, size_t nb)
{
    const struct blk_q8_K *b = src;
    for (size_t i = 0; i < nb; i++)
        for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = b[i].d * (float)b[i].qs[j];
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatch                                                                                   */

/* The scalar table. An entry with dot_gemm == NULL cannot be multiplied (kern_type_supported
 * is false); an entry with only `dequant` can still be dequantized (e.g. embeddings). */
const struct kern_type_ops kern_ref_ops[BLK_T_COUNT_] = {
    [BLK_T_F32] = {BLK_T_F32, dequant_f32, dot_f32_gemm, dot_f32_vecdot, true},
    [BLK_T_F16] = {BLK_T_F16, dequant_f16, dot_f16_gemm, dot_f16_vecdot, true},
    [BLK_T_Q8_0] = {BLK_T_Q8_0, dequant_q8_0, dot_q8_0, dot_q8_0, false},
    [BLK_T_Q4_0] = {BLK_T_Q8_0, dequant_q4_0, dot_q4_0, dot_q4_0, false},
    [BLK_T_BF16] = {BLK_T_BF16, dequant_bf16, dot_bf16_gemm, dot_bf16_vecdot, true},
    [BLK_T_Q4_1] = {BLK_T_Q8_1, dequant_q4_1, dot_q4_1, dot_q4_1, false},
    [BLK_T_Q5_0] = {BLK_T_Q8_0, dequant_q5_0, dot_q5_0, dot_q5_0, false},
    [BLK_T_Q5_1] = {BLK_T_Q8_1, dequant_q5_1, dot_q5_1, dot_q5_1, false},
    [BLK_T_Q2_K] = {BLK_T_Q8_K, dequant_q2_K, dot_q2_K, dot_q2_K, false},
    [BLK_T_Q3_K] = {BLK_T_Q8_K, dequant_q3_K, dot_q3_K, dot_q3_K, false},
    [BLK_T_Q4_K] = {BLK_T_Q8_K, dequant_q4_K, dot_q4_K, dot_q4_K, false},
    [BLK_T_Q5_K] = {BLK_T_Q8_K, dequant_q5_K, dot_q5_K, dot_q5_K, false},
    [BLK_T_Q6_K] = {BLK_T_Q8_K, dequant_q6_K, dot_q6_K, dot_q6_K, false},
    [BLK_T_IQ4_NL] = {BLK_T_Q8_0, dequant_iq4_nl, dot_iq4_nl_gemm, dot_iq4_nl_vecdot, false},
    [BLK_T_IQ4_XS] = {BLK_T_Q8_K, dequant_iq4_xs, dot_iq4_xs, dot_iq4_xs, false},
    /* activation-only types: dequantize, never multiply */
    [BLK_T_Q8_1] = {BLK_T_Q8_1, dequant_q8_1, NULL, NULL, false},
    [BLK_T_Q8_K] = {BLK_T_Q8_K, dequant_q8_K, NULL, NULL, false},
};

/* The reference activation converter for an activation type (NULL: none). */
kern_act_fn kern_ref_act(uint32_t act_type)
{
    switch (act_type) {
    case BLK_T_F32: return act_f32;
    case BLK_T_F16: return act_f16;
    case BLK_T_BF16: return act_bf16;
    case BLK_T_Q8_0: return act_q8_0;
    case BLK_T_Q8_1: return act_q8_1;
    case BLK_T_Q8_K: return act_q8_K;
    default: return NULL;
    }
}

/* kern_dot_f32's reference: ggml_vec_dot_f32 order. */
float kern_ref_dot_f32(const float *a, const float *b, size_t n)
{
    return dot_f32_vecdot(a, b, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Softmax, SiLU and the attention-weighted sum, as ggml-cpu computes them on AVX2            */

/* One lane of ggml_v_expf (AVX2+FMA): ARM's optimized-routines expf with a 2^n * poly(b)
 * reconstruction; inputs with |n| > 126 take the scaled path, |n| > 192 saturate (to 0 or inf).
 * Every fnmadd(a, b, c) = c - a*b is the single-rounding fmaf(-a, b, c). */
static float ggml_v_expf1(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = kern_f32_bits(z) << 23;
    const float k = kern_bits_f32(e + kern_f32_bits(1.0f));
    const bool c = fabsf(n) > 126.0f;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, 0x1.ffffecp-1f * b);
    if (!c) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = kern_bits_f32(g + 0x7f000000u);
    const float s2 = kern_bits_f32(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

/* ggml_v_silu lane: x / (1 + expv(0 - x)). */
static float ggml_v_silu1(float x)
{
    const float e = ggml_v_expf1(0.0f - x);
    return x / (1.0f + e);
}

/* ggml_silu_f32, the scalar tail. */
static float ggml_silu_tail(float x)
{
    return x / (1.0f + expf(-x));
}

void kern_ref_softmax_f32(float *x, size_t n, size_t n_pad)
{
    if (!x || n == 0) return;
    if (n_pad < n) n_pad = n;
    float max = -INFINITY; /* ggml_vec_max_f32; padding is -inf and cannot raise it */
    for (size_t i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    size_t nv = n_pad & ~(size_t)7; /* elements through the vector exp */
    double sum = 0.0;
    size_t i = 0;
    for (; i < nv && i < n; i += 8) {
        float v[8];
        for (int k = 0; k < 8; k++) {
            /* padding lanes: exp(-inf - max) is exactly 0 in ggml_v_expf */
            v[k] = i + (size_t)k < n ? ggml_v_expf1(x[i + (size_t)k] - max) : 0.0f;
            if (i + (size_t)k < n) x[i + (size_t)k] = v[k];
        }
        sum += (double)kern_hsum8(v);
    }
    for (; i < n; i++) {
        float v = expf(x[i] - max);
        sum += (double)v;
        x[i] = v;
    }
    const float inv = (float)(1.0 / sum);
    for (size_t t = 0; t < n; t++) x[t] *= inv;
}

void kern_ref_swiglu_f32(float *y, const float *x, const float *g, size_t n)
{
    if (!y || !x || !g) return;
    size_t nv = n & ~(size_t)7, i = 0;
    for (; i < nv; i++) y[i] = ggml_v_silu1(x[i]) * g[i];
    for (; i < n; i++) y[i] = ggml_silu_tail(x[i]) * g[i];
}

void kern_ref_silu_f32(float *y, const float *x, size_t n)
{
    if (!y || !x) return;
    size_t nv = n & ~(size_t)7, i = 0;
    for (; i < nv; i++) y[i] = ggml_v_silu1(x[i]);
    for (; i < n; i++) y[i] = ggml_silu_tail(x[i]);
}

void kern_ref_wsum_f32(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                       unsigned order)
{
    if (!out || !p || !vt) return;
    if (n_pad < n) n_pad = n;
    /* tinyBLAS takes k % 8 == 0 and m % 4 == 0 (m = dim); otherwise ggml_vec_dot_f32 */
    bool gemm = order == KERN_ORDER_GEMM && n_pad % 8 == 0 && dim % 4 == 0;
    for (size_t d = 0; d < dim; d++) {
        if (gemm) {
            float acc[8] = {0};
            for (size_t t = 0; t < n; t++) acc[t % 8] = fmaf(*kern_vt_cell(vt, d, t), p[t], acc[t % 8]);
            out[d] = kern_hsum8(acc);
            continue;
        }
        /* ggml_vec_dot_f32 over n_pad cells; the cells past n hold zero weights (exact no-ops
         * in every accumulator and in the tail) and are skipped */
        size_t np = n_pad & ~(size_t)31;
        float s[4][8] = {{0}};
        size_t t = 0;
        for (; t < n && t < np; t++) {
            size_t j = (t % 32) / 8, k = t % 8;
            s[j][k] = fmaf(*kern_vt_cell(vt, d, t), p[t], s[j][k]);
        }
        for (int k = 0; k < 8; k++) {
            s[0][k] = s[0][k] + s[2][k];
            s[1][k] = s[1][k] + s[3][k];
        }
        for (int k = 0; k < 8; k++) s[0][k] = s[0][k] + s[1][k];
        float sumf = kern_hsum8_hadd(s[0]);
        out[d] = kern_ref_wsum_tail(p, vt, d, np, n, n_pad, sumf);
    }
}

float kern_ref_wsum_tail(const float *p, const struct kern_vt *vt, size_t d, size_t np, size_t n, size_t n_pad,
                         float sumf)
{
    /* as gcc vectorizes ggml_vec_dot_f32's tail: 8-wide and 4-wide product groups added in
     * order, then scalar FMAs (padding cells contribute +0 products and are skipped) */
    size_t i = np;
    for (; n_pad - i >= 8; i += 8)
        for (size_t k = 0; k < 8; k++)
            if (i + k < n) {
                float pr = *kern_vt_cell(vt, d, i + k) * p[i + k];
                sumf = sumf + pr;
            }
    if (n_pad - i >= 4) {
        for (size_t k = 0; k < 4; k++)
            if (i + k < n) {
                float pr = *kern_vt_cell(vt, d, i + k) * p[i + k];
                sumf = sumf + pr;
            }
        i += 4;
    }
    for (; i < n_pad; i++)
        if (i < n) sumf = fmaf(*kern_vt_cell(vt, d, i), p[i], sumf);
    return sumf;
}

/* ------------------------------------------------------------------------------------------ */
/* Attention over F16 and Q8_0 KV caches (kern.h says what llama.cpp computes and why)        */

void kern_ref_dot_f16_rows(float *out, const uint16_t *q16, const uint16_t *k16, size_t k_stride, size_t n,
                           size_t n_rows, unsigned order)
{
    for (size_t r = 0; r < n_rows; r++)
        out[r] = order == KERN_ORDER_GEMM ? dot_f16_gemm(k16 + r * k_stride, q16, n)
                                          : dot_f16_vecdot(k16 + r * k_stride, q16, n);
}

/* Cell t of dim d of a kern_vt_f16, as a float. */
static inline float vt16_cell(const struct kern_vt_f16 *vt, size_t d, size_t t)
{
    return h2f(vt->v[(t / vt->blk) * vt->blk_stride + d * vt->dim_stride + t % vt->blk]);
}

float kern_ref_wsum_f16_tail(const uint16_t *p16, const struct kern_vt_f16 *vt, size_t d, size_t np, size_t n,
                             float head)
{
    /* ggml_vec_dot_f16's tail: the cells np..n_pad in double; padding products are +0 */
    double sumf = (double)head;
    for (size_t t = np; t < n; t++) sumf += (double)(vt16_cell(vt, d, t) * h2f(p16[t]));
    return (float)sumf;
}

void kern_ref_wsum_f16(float *out, const uint16_t *p16, const struct kern_vt_f16 *vt, size_t n, size_t n_pad,
                       size_t dim, unsigned order)
{
    if (n_pad < n) n_pad = n;
    bool gemm = order == KERN_ORDER_GEMM && n_pad % 8 == 0 && dim % 4 == 0;
    for (size_t d = 0; d < dim; d++) {
        if (gemm) { /* tinyBLAS F16: one 8-lane accumulator, exact products */
            float acc[8] = {0};
            for (size_t t = 0; t < n; t++) {
                float pr = vt16_cell(vt, d, t) * h2f(p16[t]);
                acc[t % 8] = acc[t % 8] + pr;
            }
            out[d] = kern_hsum8(acc);
            continue;
        }
        /* ggml_vec_dot_f16 over n_pad cells: 4 x 8 lanes per 32 cells, (s0+s2)+(s1+s3), the
         * haddps reduction, then the double tail; cells past n hold zero weights and are skipped */
        size_t np = n_pad & ~(size_t)31;
        float s[4][8] = {{0}};
        for (size_t t = 0; t < n && t < np; t++) {
            float pr = vt16_cell(vt, d, t) * h2f(p16[t]);
            s[(t % 32) / 8][t % 8] = s[(t % 32) / 8][t % 8] + pr;
        }
        float l[8];
        for (int k = 0; k < 8; k++) {
            float a = s[0][k] + s[2][k], b = s[1][k] + s[3][k];
            l[k] = a + b;
        }
        out[d] = kern_ref_wsum_f16_tail(p16, vt, d, np, n, kern_hsum8_hadd(l));
    }
}

static void fattn_rescale(float *out, size_t dim, float m)
{
    for (size_t d = 0; d < dim; d++) out[d] *= m;
}

static void fattn_mad_q8_0(float *out, const void *vrow, size_t dim, float w)
{
    const struct blk_q8_0 *vb = vrow;
    for (size_t b = 0; b < dim / QK8_0; b++) {
        const float dv = h2f(vb[b].d);
        for (size_t j = 0; j < QK8_0; j++) {
            const float x = (float)vb[b].qs[j] * dv; /* dequantize_row_q8_0 */
            out[b * QK8_0 + j] = fmaf(x, w, out[b * QK8_0 + j]);
        }
    }
}

void kern_ref_fattn_q8_0(float *out, const void *q8, const void *k, size_t k_stride, const void *v, size_t v_stride,
                         size_t n, size_t dim, float scale)
{
    kern_fattn_drive(out, q8, k, k_stride, v, v_stride, n, dim, scale, dot_q8_0, fattn_rescale, fattn_mad_q8_0);
}

/* ------------------------------------------------------------------------------------------ */
/* Batched attention over an F16 cache with float queries / probabilities (kern.h)            */
/* The F16 sums above with one operand a float: each product is fused into its sum (fmaf), so   */
/* for fp16 values (exact products) these are the bits of dot_f16_* and kern_ref_wsum_f16.      */

/* K row x (halves) . q (floats), tinyBLAS' order (n % 8 == 0) or ggml_vec_dot_f16's. */
static float dot_f16_qf(const uint16_t *x, const float *q, size_t n, unsigned order)
{
    if (order == KERN_ORDER_GEMM && n % 8 == 0) {
        float acc[8] = {0};
        for (size_t i = 0; i < n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] = fmaf(h2f(x[i + k]), q[i + k], acc[k]);
        return kern_hsum8(acc);
    }
    size_t np = n & ~(size_t)31;
    float s[4][8] = {{0}};
    for (size_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 8; k++) s[j][k] = fmaf(h2f(x[i + 8 * j + k]), q[i + 8 * j + k], s[j][k]);
    float t[8];
    for (int k = 0; k < 8; k++) {
        float a = s[0][k] + s[2][k], b = s[1][k] + s[3][k];
        t[k] = a + b;
    }
    return kern_ref_qk_f16_tail(x, q, np, n, kern_hsum8_hadd(t));
}

float kern_ref_qk_f16_tail(const uint16_t *x, const float *q, size_t np, size_t n, float head)
{
    double sumf = (double)head; /* ggml_vec_dot_f16's tail, in double */
    for (size_t i = np; i < n; i++) {
        float pr = h2f(x[i]) * q[i];
        sumf += (double)pr;
    }
    return (float)sumf;
}

void kern_ref_attn_qk_f16(float *const *out, const float *const *q, size_t n_q, const uint16_t *k16, size_t k_stride,
                          size_t n, size_t n_rows, unsigned order)
{
    for (size_t i = 0; i < n_q; i++)
        for (size_t r = 0; r < n_rows; r++) out[i][r] = dot_f16_qf(k16 + r * k_stride, q[i], n, order);
}

float kern_ref_pv_f16_tail(const float *p, const struct kern_vt_f16 *vt, size_t d, size_t np, size_t n, float head)
{
    double sumf = (double)head; /* ggml_vec_dot_f16's tail: cells np..n in double */
    for (size_t t = np; t < n; t++) {
        float pr = vt16_cell(vt, d, t) * p[t];
        sumf += (double)pr;
    }
    return (float)sumf;
}

/* One query: kern_ref_wsum_f16's two orders with the weights as floats. */
static void pv_f16_one(float *out, const float *p, const struct kern_vt_f16 *vt, size_t n, size_t n_pad, size_t dim,
                       unsigned order)
{
    if (n_pad < n) n_pad = n;
    bool gemm = order == KERN_ORDER_GEMM && n_pad % 8 == 0 && dim % 4 == 0;
    size_t np = n_pad & ~(size_t)31;
    for (size_t d = 0; d < dim; d++) {
        if (gemm) {
            float acc[8] = {0};
            for (size_t t = 0; t < n; t++) acc[t % 8] = fmaf(vt16_cell(vt, d, t), p[t], acc[t % 8]);
            out[d] = kern_hsum8(acc);
            continue;
        }
        float s[4][8] = {{0}};
        for (size_t t = 0; t < n && t < np; t++)
            s[(t % 32) / 8][t % 8] = fmaf(vt16_cell(vt, d, t), p[t], s[(t % 32) / 8][t % 8]);
        float l[8];
        for (int k = 0; k < 8; k++) {
            float a = s[0][k] + s[2][k], b = s[1][k] + s[3][k];
            l[k] = a + b;
        }
        out[d] = kern_ref_pv_f16_tail(p, vt, d, np, n, kern_hsum8_hadd(l));
    }
}

void kern_ref_attn_pv_f16(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                          const struct kern_vt_f16 *vt, size_t dim, unsigned order)
{
    for (size_t i = 0; i < n_q; i++) pv_f16_one(out[i], p[i], vt, n[i], n_pad[i], dim, order);
}

void kern_ref_round_f16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = util_fp16_to_f32(util_f32_to_fp16(x[i]));
}
