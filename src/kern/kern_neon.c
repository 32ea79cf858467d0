/* kern_neon: NEON kernels for aarch64 (armv8-a) and 32-bit ARM (NEON with VFPv4 FMA: armv7 Pi 2,
 * armv8 cores in AArch32 such as Pi OS 32-bit on a Pi 3/4), plus the aarch64 +dotprod variant:
 * kern_neon_dotprod.c defines KERN_NEON_DOTPROD and includes this file, so both variants share
 * one body and differ only in how 16 int8 products are summed (dot16z below).
 *
 * What: the `struct kern_isa` of kern_int.h — activation preparation (Q8_0, Q8_1, Q8_K, BF16, and
 * F16 on aarch64), the row dot products of all 15 weight types in both summation orders, and
 * kern_dot_f32. Dequantization stays scalar (only token-embedding rows use it).
 *
 * Why this arithmetic: the results are bit-identical to kern_ref.c (llama.cpp's x86 AVX2 order),
 * not merely close, because that costs almost nothing on NEON:
 *  - the reference's integer lane k of a 32-element group is the sum of the products of elements
 *    4k..4k+3; that is exactly what sdot leaves in 32-bit lane k of a 16-byte dot, and what
 *    vmull_s8 plus two pairwise widening adds leave without dotprod. The 8 AVX2 float lanes are
 *    two float32x4 registers: lanes 0-3 come from bytes 0-15 of each group, 4-7 from 16-31;
 *  - the float steps are the reference's own: one fused multiply-add per lane with the same
 *    (f32-rounded) scale per block or super-block, the same separate min/offset accumulators, the
 *    same pairwise reductions at the end, scalar fmaf where the reference has a scalar FMA;
 *  - activation quantization rounds half to even (vcvtnq / vrndnq, or the 2^23 trick on armv7),
 *    saturates like packssdw/packsswb and maps NaN and out-of-range values to INT32_MIN like
 *    cvtps2dq, so prepared activations are byte-identical.
 * Against ggml's ARM kernels (which add a block's lanes first) this costs one more int->float
 * convert and FMA per 32 elements (K-quants: one int32 multiply-add per 16 elements).
 *
 * Invariants and limits (kern_int.h: never allocate, never fail, trust the arguments):
 *  - little-endian only (blocks are read with vld1); NEON without FMA (VFPv3 cores) and big-endian
 *    targets get a table whose available() is false, so the scalar kernels run there;
 *  - 32-bit ARM: Advanced SIMD arithmetic always flushes subnormal floats to zero (the "standard
 *    FPSCR value"), so F32/BF16 dots whose terms underflow can differ from the reference there;
 *    aarch64 does not flush and is exact. Activation blocks whose largest magnitude is below
 *    2^-100 (or NaN, or zero) are quantized by a scalar copy of the reference, so flushing can
 *    never change a quantized activation;
 *  - aarch64 converts block scales with the hardware half->float instruction: exact, except that
 *    a signalling-NaN scale comes out quiet (the dot product is NaN either way). */
#if defined(__ARM_NEON)

#include "kern_int.h"

#include "../util/util.h"

#include <arm_neon.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(KERN_NEON_DOTPROD)
#define NEON_ISA_SYM kern_isa_neon_dotprod
#define NEON_ISA_NAME "neon-dotprod"
#else
#define NEON_ISA_SYM kern_isa_neon
#define NEON_ISA_NAME "neon"
#endif

/* Which body this translation unit gets: the kernels, or an unavailable table. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#define NEON_KERNELS 0 /* block layouts are little-endian */
#elif !defined(__aarch64__) && !defined(__ARM_FEATURE_FMA)
#define NEON_KERNELS 0 /* no vfmaq_f32: the reference's FMAs cannot be reproduced */
#elif defined(KERN_NEON_DOTPROD) && !(defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD))
#define NEON_KERNELS 0 /* built without -march=armv8.2-a+dotprod (see the Makefile) */
#else
#define NEON_KERNELS 1
#endif

#if NEON_KERNELS

/* ------------------------------------------------------------------------------------------ */
/* Small helpers (aarch64 has the wide pairwise/horizontal forms; 32-bit ARM composes them)    */

static inline float neon_h2f(uint16_t h)
{
#if defined(__aarch64__)
    __fp16 f; /* fcvt: exact for every half */
    memcpy(&f, &h, sizeof f);
    return (float)f;
#else
    return kern_h2f(h); /* armhf has no __fp16 without -mfp16-format */
#endif
}

/* Four halves -> floats, exact (the vector form of kern_h2f on 32-bit ARM, where vcvt_f32_f16
 * needs -mfp16-format; every intermediate there is a normal float, so flushing is harmless). */
static inline float32x4_t neon_h2f4(uint16x4_t h)
{
#if defined(__aarch64__)
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
#else
    const uint32x4_t w = vshll_n_u16(h, 16);
    const uint32x4_t sign = vandq_u32(w, vdupq_n_u32(0x80000000u));
    const uint32x4_t two_w = vaddq_u32(w, w);
    const float32x4_t norm = vmulq_f32(
        vreinterpretq_f32_u32(vaddq_u32(vshrq_n_u32(two_w, 4), vdupq_n_u32(0xE0u << 23))), vdupq_n_f32(0x1.0p-112f));
    const float32x4_t den = vsubq_f32(vreinterpretq_f32_u32(vorrq_u32(vshrq_n_u32(two_w, 17), vdupq_n_u32(126u << 23))),
                                      vdupq_n_f32(0.5f));
    uint32x4_t mag = vbslq_u32(vcltq_u32(two_w, vdupq_n_u32(1u << 27)), vreinterpretq_u32_f32(den),
                               vreinterpretq_u32_f32(norm));
    const uint32x4_t h32 = vmovl_u16(h);
    const uint32x4_t infnan = vceqq_u32(vandq_u32(h32, vdupq_n_u32(0x7C00u)), vdupq_n_u32(0x7C00u));
    const uint32x4_t special = vorrq_u32(vdupq_n_u32(0x7F800000u), vshlq_n_u32(vandq_u32(h32, vdupq_n_u32(0x3FFu)), 13));
    mag = vbslq_u32(infnan, special, mag);
    return vreinterpretq_f32_u32(vorrq_u32(sign, mag));
#endif
}

/* [a0+a1, a2+a3, b0+b1, b2+b3] */
static inline int32x4_t padd_s32(int32x4_t a, int32x4_t b)
{
#if defined(__aarch64__)
    return vpaddq_s32(a, b);
#else
    return vcombine_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)), vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
#endif
}

static inline int16x8_t padd_s16(int16x8_t a, int16x8_t b)
{
#if defined(__aarch64__)
    return vpaddq_s16(a, b);
#else
    return vcombine_s16(vpadd_s16(vget_low_s16(a), vget_high_s16(a)), vpadd_s16(vget_low_s16(b), vget_high_s16(b)));
#endif
}

/* Wrapping sum of the four lanes (integer: any order gives the same result). */
static inline int32_t hadd_s32(int32x4_t v)
{
#if defined(__aarch64__)
    return vaddvq_s32(v);
#else
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
#endif
}

static inline float hmax_f32(float32x4_t v) /* NaN propagates, as vmaxq does */
{
#if defined(__aarch64__)
    return vmaxvq_f32(v);
#else
    float32x2_t m = vmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(m, m), 0);
#endif
}

static inline bool any_u32(uint32x4_t m)
{
#if defined(__aarch64__)
    return vmaxvq_u32(m) != 0;
#else
    uint32x2_t t = vorr_u32(vget_low_u32(m), vget_high_u32(m));
    return (vget_lane_u32(t, 0) | vget_lane_u32(t, 1)) != 0;
#endif
}

/* 16-entry int8 table lookup (indices 0..15). */
static inline int8x16_t lut16(int8x16_t tbl, uint8x16_t idx)
{
#if defined(__aarch64__)
    return vqtbl1q_s8(tbl, idx);
#else
    int8x8x2_t t = {{vget_low_s8(tbl), vget_high_s8(tbl)}};
    return vcombine_s8(vtbl2_s8(t, vreinterpret_s8_u8(vget_low_u8(idx))),
                       vtbl2_s8(t, vreinterpret_s8_u8(vget_high_u8(idx))));
#endif
}

/* kern_hsum8 over lanes lo = 0..3, hi = 4..7: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static inline float hsum8(float32x4_t lo, float32x4_t hi)
{
    const float32x4_t t = vaddq_f32(lo, hi);
    const float32x2_t b = vadd_f32(vget_low_f32(t), vget_high_f32(t));
    return vget_lane_f32(b, 0) + vget_lane_f32(b, 1);
}

/* kern_hsum8_hadd: t = lo + hi, then (t0+t1) + (t2+t3). */
static inline float hsum8_hadd(float32x4_t lo, float32x4_t hi)
{
    const float32x4_t t = vaddq_f32(lo, hi);
    const float32x2_t u = vpadd_f32(vget_low_f32(t), vget_high_f32(t));
    return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

/* The reference's integer lanes of 16 int8 products: lane k = a[4k]*b[4k] + ... + a[4k+3]*b[4k+3].
 * Exact in int32 either way; sdot is one instruction, the plain form five. */
static inline int32x4_t dot16z(int8x16_t a, int8x16_t b)
{
#if defined(KERN_NEON_DOTPROD)
    return vdotq_s32(vdupq_n_s32(0), a, b);
#else
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b)); /* |p| <= 2^14: no overflow */
#if defined(__aarch64__)
    const int16x8_t p1 = vmull_high_s8(a, b);
#else
    const int16x8_t p1 = vmull_s8(vget_high_s8(a), vget_high_s8(b));
#endif
    return padd_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
#endif
}

/* acc += d * lanes (fmaf(d, (float)lane, acc) per lane, as fma_lanes in kern_ref.c). */
static inline float32x4_t fma_lanes(float32x4_t acc, int32x4_t lane, float d)
{
    return vfmaq_f32(acc, vcvtq_f32_s32(lane), vdupq_n_f32(d));
}

/* One Q8_0-family block: weights w0 (elements 0-15) and w1 (16-31) against a[32], scale d. */
static inline void acc_block32(float32x4_t *acc0, float32x4_t *acc1, int8x16_t w0, int8x16_t w1, const int8_t *a,
                               float d)
{
    *acc0 = fma_lanes(*acc0, dot16z(w0, vld1q_s8(a)), d);
    *acc1 = fma_lanes(*acc1, dot16z(w1, vld1q_s8(a + 16)), d);
}

/* K-quant group of 32: lanes 0-3 (elements 0-15) scaled by s0, lanes 4-7 by s1 (lanes256). */
static inline void group32(int32x4_t *l0, int32x4_t *l1, int8x16_t q0, int8x16_t q1, const int8_t *a, int32_t s0,
                           int32_t s1)
{
    *l0 = vmlaq_n_s32(*l0, dot16z(q0, vld1q_s8(a)), s0);
    *l1 = vmlaq_n_s32(*l1, dot16z(q1, vld1q_s8(a + 16)), s1);
}

static inline int8x16_t u8s8(uint8x16_t v)
{
    return vreinterpretq_s8_u8(v);
}

/* ------------------------------------------------------------------------------------------ */
/* Activation quantization                                                                    */

/* Below this block maximum the scalar path quantizes: with a larger multiplier a subnormal
 * element (which 32-bit NEON flushes to zero) could round to a nonzero integer. Real
 * activations are never this small, so the fast path is the only one that matters. */
#define ACT_TINY 0x1.0p-100f

/* cvtps2dq(round_ps(v, nearest)): round half to even; |v| >= 2^31 and NaN give INT32_MIN. */
static inline int32x4_t cvt_rne_i32(float32x4_t v)
{
#if defined(__aarch64__)
    const int32x4_t r = vcvtnq_s32_f32(v);
#elif __ARM_ARCH >= 8
    const int32x4_t r = vcvtq_s32_f32(vrndnq_f32(v)); /* vrintn, then an exact conversion */
#else
    /* armv7: |v| + 2^23 - 2^23 rounds |v| < 2^23 half to even (NEON always rounds to nearest);
     * larger values are already integers; the sign is copied back (-0.4 -> -0 -> 0) */
    const float32x4_t magic = vdupq_n_f32(8388608.0f);
    const float32x4_t a = vabsq_f32(v);
    float32x4_t t = vsubq_f32(vaddq_f32(a, magic), magic);
    t = vbslq_f32(vcltq_f32(a, magic), t, a);
    t = vbslq_f32(vdupq_n_u32(0x80000000u), v, t);
    const int32x4_t r = vcvtq_s32_f32(t);
#endif
    return vbslq_s32(vcaltq_f32(v, vdupq_n_f32(2147483648.0f)), r, vdupq_n_s32(INT32_MIN));
}

/* The reference's Q8_0 block, for the blocks the vector path leaves out (zero, tiny, NaN);
 * returns d as q8_block does. */
static float q8_0_block_scalar(const float *x, int8_t *qs, uint16_t *dh, int32_t *sum)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *dh = util_f32_to_fp16(d);
    uint32_t s = 0;
    for (int j = 0; j < 32; j++) {
        int32_t q = kern_cvt_i32(kern_rne(x[j] * id));
        s += (uint32_t)q;
        qs[j] = kern_sat_i8(q);
    }
    *sum = (int32_t)s;
    return d;
}

/* One Q8_0/Q8_1 block: quants, fp16 scale, and the wrapping sum of the unsaturated int32 values;
 * returns the f32 scale d (amax/127) that Q8_1's s uses. */
static inline float q8_block(const float *x, int8_t *qs, uint16_t *dh, int32_t *sum)
{
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; k++) {
        v[k] = vld1q_f32(x + 4 * k);
        m = vmaxq_f32(m, vabsq_f32(v[k]));
    }
    const float amax = hmax_f32(m);
    if (!(amax >= ACT_TINY)) return q8_0_block_scalar(x, qs, dh, sum); /* zero, tiny or NaN */
    const float d = amax / 127.0f;
    const float id = 127.0f / amax;
    *dh = util_f32_to_fp16(d);
    int32x4_t s = vdupq_n_s32(0);
    for (int k = 0; k < 8; k += 4) {
        int32x4_t q0 = cvt_rne_i32(vmulq_n_f32(v[k], id)), q1 = cvt_rne_i32(vmulq_n_f32(v[k + 1], id));
        int32x4_t q2 = cvt_rne_i32(vmulq_n_f32(v[k + 2], id)), q3 = cvt_rne_i32(vmulq_n_f32(v[k + 3], id));
        s = vaddq_s32(vaddq_s32(s, vaddq_s32(q0, q1)), vaddq_s32(q2, q3));
        int16x8_t h0 = vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1));
        int16x8_t h1 = vcombine_s16(vqmovn_s32(q2), vqmovn_s32(q3));
        vst1q_s8(qs + 4 * k, vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1)));
    }
    *sum = hadd_s32(s);
    return d;
}

static void act_q8_0(const float *x, void *dst, size_t n)
{
    struct blk_q8_0 *y = dst;
    for (size_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
        int32_t sum;
        (void)q8_block(x, y[ib].qs, &y[ib].d, &sum);
    }
}

/* Q8_1: as Q8_0 plus s = fp16(d * sum) with the unrounded f32 d (kern_ref.c act_q8_1). */
static void act_q8_1(const float *x, void *dst, size_t n)
{
    struct blk_q8_1 *y = dst;
    for (size_t ib = 0; ib < n / QK8_1; ib++, x += QK8_1) {
        int32_t sum;
        const float d = q8_block(x, y[ib].qs, &y[ib].d, &sum);
        y[ib].s = util_f32_to_fp16(d * (float)sum);
    }
}

/* The reference's Q8_K block (zero, tiny and NaN blocks). */
static void q8_K_block_scalar(const float *x, struct blk_q8_K *y)
{
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < QK_K; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        memset(y, 0, sizeof *y);
        return;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; j++) {
        uint32_t bits = kern_f32_bits(iscale * x[j] + 12582912.0f);
        int32_t v = (int32_t)(bits & 0x007FFFFFu) - 0x00400000;
        y->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int g = 0; g < QK_K / 16; g++) {
        int32_t sum = 0;
        for (int j = 0; j < 16; j++) sum += y->qs[16 * g + j];
        y->bsums[g] = (int16_t)sum;
    }
    y->d = 1.0f / iscale;
}

/* quantize_row_q8_K_ref: the scale comes from the first element of largest magnitude (with its
 * sign); q = min(127, nearest_int(iscale * x)) where nearest_int reads the low mantissa bits of
 * v + 1.5*2^23 — the same two roundings here, then the same bit arithmetic. */
static void act_q8_K(const float *x, void *dst, size_t n)
{
    struct blk_q8_K *y = dst;
    for (size_t ib = 0; ib < n / QK_K; ib++, x += QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < QK_K; k += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + k)));
        const float amax = hmax_f32(m);
        if (!(amax >= ACT_TINY)) {
            q8_K_block_scalar(x, &y[ib]);
            continue;
        }
        /* the first element whose magnitude is amax (the reference's strict '>' keeps the first) */
        const float32x4_t vamax = vdupq_n_f32(amax);
        int j = 0;
        for (int k = 0; k < QK_K; k += 4)
            if (any_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + k)), vamax))) {
                j = k;
                while (fabsf(x[j]) != amax) j++;
                break;
            }
        const float iscale = -127.0f / x[j];
        const float32x4_t magic = vdupq_n_f32(12582912.0f);
        const int32x4_t mant = vdupq_n_s32(0x007FFFFF), off = vdupq_n_s32(0x00400000), top = vdupq_n_s32(127);
        for (int k = 0; k < QK_K; k += 16) {
            int16x8_t h[2];
            for (int u = 0; u < 2; u++) {
                int32x4_t q[2];
                for (int t = 0; t < 2; t++) {
                    float32x4_t p = vaddq_f32(vmulq_n_f32(vld1q_f32(x + k + 8 * u + 4 * t), iscale), magic);
                    int32x4_t v = vsubq_s32(vandq_s32(vreinterpretq_s32_f32(p), mant), off);
                    q[t] = vminq_s32(v, top);
                }
                h[u] = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1])); /* truncating, as (int8_t) */
            }
            const int8x16_t q8 = vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]));
            vst1q_s8(y[ib].qs + k, q8);
            y[ib].bsums[k / 16] = (int16_t)hadd_s32(vpaddlq_s16(vpaddlq_s8(q8)));
        }
        y[ib].d = 1.0f / iscale;
    }
}

/* F16 activations (aarch64): the hardware rounds to nearest even like util_f32_to_fp16; NaN
 * lanes are rewritten to util's canonical sign|0x7E00 (the hardware keeps the payload). */
#if defined(__aarch64__)
static void act_f16(const float *x, void *dst, size_t n)
{
    uint16_t *h = dst;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        uint16x4_t r = vreinterpret_u16_f16(vcvt_f16_f32(v));
        const uint16x4_t isnan_ = vmovn_u32(vmvnq_u32(vceqq_f32(v, v)));
        const uint16x4_t canon =
            vorr_u16(vand_u16(vshrn_n_u32(vreinterpretq_u32_f32(v), 16), vdup_n_u16(0x8000)), vdup_n_u16(0x7E00));
        vst1_u16(h + i, vbsl_u16(isnan_, canon, r));
    }
    for (; i < n; i++) h[i] = util_f32_to_fp16(x[i]);
}
#endif

/* BF16 activations: round to nearest even on the bits, NaN -> (bits >> 16) | 64 (util's). */
static void act_bf16(const float *x, void *dst, size_t n)
{
    uint16_t *h = dst;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(x + i));
        const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
        const uint16x4_t r = vmovn_u32(vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7FFF))), 16));
        const uint16x4_t q = vorr_u16(vshrn_n_u32(u, 16), vdup_n_u16(64));
        const uint16x4_t nan = vmovn_u32(vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7FFFFFFFu)), vdupq_n_u32(0x7F800000u)));
        vst1_u16(h + i, vbsl_u16(nan, q, r));
    }
    for (; i < n; i++) h[i] = util_f32_to_bf16(x[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* F32 / F16 / BF16 rows                                                                      */

/* ggml_vec_dot_f32's scalar tail as llama.cpp's gcc compiled it (kern_ref.c f32_tail). */
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

/* ggml_vec_dot_f32 order: 4 accumulators x 8 lanes (here s[2j], s[2j+1]) over 32-element steps. */
static float dot_f32_vecdot(const void *wv, const void *av, size_t n)
{
    const float *x = wv, *y = av;
    const size_t np = n & ~(size_t)31;
    float32x4_t s[8];
    for (int j = 0; j < 8; j++) s[j] = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < np; i += 32)
        for (int j = 0; j < 8; j++) s[j] = vfmaq_f32(s[j], vld1q_f32(x + i + 4 * j), vld1q_f32(y + i + 4 * j));
    /* x0 += x2, x1 += x3, x0 += x1 (lane-wise), then lo + hi and two hadds */
    const float32x4_t lo = vaddq_f32(vaddq_f32(s[0], s[4]), vaddq_f32(s[2], s[6]));
    const float32x4_t hi = vaddq_f32(vaddq_f32(s[1], s[5]), vaddq_f32(s[3], s[7]));
    return f32_tail(x, y, np, n, hsum8_hadd(lo, hi));
}

/* tinyBLAS order: one 8-lane FMA accumulator; k % 8 != 0 goes to vec_dot (llama.cpp does). */
static float dot_f32_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_f32_vecdot(wv, av, n);
    const float *x = wv, *y = av;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
    }
    return hsum8(a0, a1);
}

static float dot_f32_row(const float *a, const float *b, size_t n)
{
    return dot_f32_vecdot(a, b, n);
}

/* F16: a product of two halves is exact in f32, so one FMA equals the reference's mul + add. */
static float dot_f16_vecdot(const void *wv, const void *av, size_t n)
{
    const uint16_t *x = wv, *y = av;
    const size_t np = n & ~(size_t)31;
    float32x4_t s[8];
    for (int j = 0; j < 8; j++) s[j] = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < np; i += 32)
        for (int j = 0; j < 8; j++)
            s[j] = vfmaq_f32(s[j], neon_h2f4(vld1_u16(x + i + 4 * j)), neon_h2f4(vld1_u16(y + i + 4 * j)));
    const float32x4_t lo = vaddq_f32(vaddq_f32(s[0], s[4]), vaddq_f32(s[2], s[6]));
    const float32x4_t hi = vaddq_f32(vaddq_f32(s[1], s[5]), vaddq_f32(s[3], s[7]));
    double sumf = (double)hsum8_hadd(lo, hi);
    for (size_t i = np; i < n; i++) sumf += (double)(neon_h2f(x[i]) * neon_h2f(y[i]));
    return (float)sumf;
}

static float dot_f16_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_f16_vecdot(wv, av, n);
    const uint16_t *x = wv, *y = av;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n; i += 8) {
        a0 = vfmaq_f32(a0, neon_h2f4(vld1_u16(x + i)), neon_h2f4(vld1_u16(y + i)));
        a1 = vfmaq_f32(a1, neon_h2f4(vld1_u16(x + i + 4)), neon_h2f4(vld1_u16(y + i + 4)));
    }
    return hsum8(a0, a1);
}

static inline float32x4_t bf16x4(const uint16_t *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

static inline float bf16_1(uint16_t h)
{
    return kern_bits_f32((uint32_t)h << 16);
}

/* BF16: products can underflow, so multiply and add separately as the reference does. */
static float dot_bf16_vecdot(const void *wv, const void *av, size_t n)
{
    const uint16_t *x = wv, *y = av;
    const size_t np = n & ~(size_t)31;
    float32x4_t c[8];
    for (int j = 0; j < 8; j++) c[j] = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < np; i += 32)
        for (int j = 0; j < 8; j++) c[j] = vaddq_f32(c[j], vmulq_f32(bf16x4(x + i + 4 * j), bf16x4(y + i + 4 * j)));
    /* (c1 + c3) + (c2 + c4), then hsum_float_8 */
    const float32x4_t lo = vaddq_f32(vaddq_f32(c[0], c[4]), vaddq_f32(c[2], c[6]));
    const float32x4_t hi = vaddq_f32(vaddq_f32(c[1], c[5]), vaddq_f32(c[3], c[7]));
    double sumf = (double)hsum8(lo, hi);
    for (size_t i = np; i < n; i++) sumf += (double)(bf16_1(x[i]) * bf16_1(y[i]));
    return (float)sumf;
}

static float dot_bf16_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_bf16_vecdot(wv, av, n);
    const uint16_t *x = wv, *y = av;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n; i += 8) {
        a0 = vaddq_f32(a0, vmulq_f32(bf16x4(x + i), bf16x4(y + i)));
        a1 = vaddq_f32(a1, vmulq_f32(bf16x4(x + i + 4), bf16x4(y + i + 4)));
    }
    return hsum8(a0, a1);
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_0-family weights (32-element blocks against Q8_0 / Q8_1 activations)                    */

static float dot_q8_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q8_0 *w = wv;
    const struct blk_q8_0 *a = av;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t ib = 0; ib < n / QK8_0; ib++) {
        const float d = neon_h2f(w[ib].d) * neon_h2f(a[ib].d);
        acc_block32(&acc0, &acc1, vld1q_s8(w[ib].qs), vld1q_s8(w[ib].qs + 16), a[ib].qs, d);
    }
    return hsum8(acc0, acc1);
}

static float dot_q4_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_0 *w = wv;
    const struct blk_q8_0 *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t s8 = vdupq_n_s8(8);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t ib = 0; ib < n / QK4_0; ib++) {
        const uint8x16_t b = vld1q_u8(w[ib].qs);
        const int8x16_t q0 = vsubq_s8(u8s8(vandq_u8(b, m4)), s8), q1 = vsubq_s8(u8s8(vshrq_n_u8(b, 4)), s8);
        const float d = neon_h2f(w[ib].d) * neon_h2f(a[ib].d);
        acc_block32(&acc0, &acc1, q0, q1, a[ib].qs, d);
    }
    return hsum8(acc0, acc1);
}

/* The fifth bits of Q5_0/Q5_1 as 0x10 bytes: element j takes bit j of the little-endian qh. */
static inline void q5_high(const uint8_t *qh4, uint8x16_t *h0, uint8x16_t *h1)
{
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bits = vld1q_u8(bit), b16 = vdupq_n_u8(0x10);
    const uint8x16_t lo = vcombine_u8(vdup_n_u8(qh4[0]), vdup_n_u8(qh4[1]));
    const uint8x16_t hi = vcombine_u8(vdup_n_u8(qh4[2]), vdup_n_u8(qh4[3]));
    *h0 = vandq_u8(vtstq_u8(lo, bits), b16);
    *h1 = vandq_u8(vtstq_u8(hi, bits), b16);
}

static float dot_q5_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_0 *w = wv;
    const struct blk_q8_0 *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t s16 = vdupq_n_s8(16);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t ib = 0; ib < n / QK5_0; ib++) {
        uint8x16_t h0, h1;
        q5_high(w[ib].qh, &h0, &h1);
        const uint8x16_t b = vld1q_u8(w[ib].qs);
        const int8x16_t q0 = vsubq_s8(u8s8(vorrq_u8(vandq_u8(b, m4), h0)), s16);
        const int8x16_t q1 = vsubq_s8(u8s8(vorrq_u8(vshrq_n_u8(b, 4), h1)), s16);
        acc_block32(&acc0, &acc1, q0, q1, a[ib].qs, neon_h2f(w[ib].d) * neon_h2f(a[ib].d));
    }
    return hsum8(acc0, acc1);
}

/* Q4_1 / Q5_1: the lanes as Q8_0 with unsigned quants, plus summs += m_w * s_a (scalar FMA),
 * added after the lane reduction. */
static float dot_q4_1(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_1 *w = wv;
    const struct blk_q8_1 *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float summs = 0.0f;
    for (size_t ib = 0; ib < n / QK4_1; ib++) {
        summs = fmaf(neon_h2f(w[ib].m), neon_h2f(a[ib].s), summs);
        const uint8x16_t b = vld1q_u8(w[ib].qs);
        acc_block32(&acc0, &acc1, u8s8(vandq_u8(b, m4)), u8s8(vshrq_n_u8(b, 4)), a[ib].qs,
                    neon_h2f(w[ib].d) * neon_h2f(a[ib].d));
    }
    return hsum8(acc0, acc1) + summs;
}

static float dot_q5_1(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_1 *w = wv;
    const struct blk_q8_1 *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float summs = 0.0f;
    for (size_t ib = 0; ib < n / QK5_1; ib++) {
        summs = fmaf(neon_h2f(w[ib].m), neon_h2f(a[ib].s), summs);
        uint8x16_t h0, h1;
        q5_high(w[ib].qh, &h0, &h1);
        const uint8x16_t b = vld1q_u8(w[ib].qs);
        acc_block32(&acc0, &acc1, u8s8(vorrq_u8(vandq_u8(b, m4), h0)), u8s8(vorrq_u8(vshrq_n_u8(b, 4), h1)), a[ib].qs,
                    neon_h2f(w[ib].d) * neon_h2f(a[ib].d));
    }
    return hsum8(acc0, acc1) + summs;
}

static inline void iq4_unpack(const uint8_t *qs, int8x16_t tbl, int8x16_t *q0, int8x16_t *q1)
{
    const uint8x16_t b = vld1q_u8(qs);
    *q0 = lut16(tbl, vandq_u8(b, vdupq_n_u8(0x0F)));
    *q1 = lut16(tbl, vshrq_n_u8(b, 4));
}

/* IQ4_NL batched (tinyBLAS_Q0): the Q8_0 structure. */
static float dot_iq4_nl_gemm(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_nl *w = wv;
    const struct blk_q8_0 *a = av;
    const int8x16_t tbl = vld1q_s8(kern_iq4nl_values);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t ib = 0; ib < n / QK4_NL; ib++) {
        int8x16_t q0, q1;
        iq4_unpack(w[ib].qs, tbl, &q0, &q1);
        acc_block32(&acc0, &acc1, q0, q1, a[ib].qs, neon_h2f(w[ib].d) * neon_h2f(a[ib].d));
    }
    return hsum8(acc0, acc1);
}

/* IQ4_NL single token: even and odd blocks in two accumulators, added lane-wise before the
 * reduction; an odd last block joins the scalar sum with one FMA. */
static float dot_iq4_nl_vecdot(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_nl *w = wv;
    const struct blk_q8_0 *a = av;
    const int8x16_t tbl = vld1q_s8(kern_iq4nl_values);
    const size_t nb = n / QK4_NL;
    size_t ib = 0;
    float32x4_t a10 = vdupq_n_f32(0.0f), a11 = vdupq_n_f32(0.0f), a20 = vdupq_n_f32(0.0f), a21 = vdupq_n_f32(0.0f);
    int8x16_t q0, q1;
    for (; ib + 1 < nb; ib += 2) {
        iq4_unpack(w[ib].qs, tbl, &q0, &q1);
        acc_block32(&a10, &a11, q0, q1, a[ib].qs, neon_h2f(a[ib].d) * neon_h2f(w[ib].d));
        iq4_unpack(w[ib + 1].qs, tbl, &q0, &q1);
        acc_block32(&a20, &a21, q0, q1, a[ib + 1].qs, neon_h2f(a[ib + 1].d) * neon_h2f(w[ib + 1].d));
    }
    float sumf = hsum8(vaddq_f32(a10, a20), vaddq_f32(a11, a21));
    for (; ib < nb; ib++) {
        iq4_unpack(w[ib].qs, tbl, &q0, &q1);
        const int32_t sumi = hadd_s32(vaddq_s32(dot16z(q0, vld1q_s8(a[ib].qs)), dot16z(q1, vld1q_s8(a[ib].qs + 16))));
        sumf = fmaf(neon_h2f(a[ib].d) * neon_h2f(w[ib].d), (float)sumi, sumf);
    }
    return sumf;
}

/* ------------------------------------------------------------------------------------------ */
/* K-quants and IQ4_XS (256-element super-blocks against Q8_K)                                */

/* Q4_K/Q5_K: the eight 6-bit scales and mins from their 12 packed bytes (scale_min_k4 of
 * kern_ref.c, four at a time in 32-bit words). */
static inline void k4_scales(const uint8_t *p, uint8_t sc[8], uint8_t m[8])
{
    uint32_t u[3], s[2], mm[2];
    memcpy(u, p, 12);
    s[0] = u[0] & 0x3F3F3F3Fu;
    mm[0] = u[1] & 0x3F3F3F3Fu;
    s[1] = (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    mm[1] = ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 6) & 0x03030303u) << 4;
    memcpy(sc, s, 8);
    memcpy(m, mm, 8);
}

/* The Q4_K/Q5_K min products: prod[k] = m[2k]*(bsums[4k]+bsums[4k+1]) +
 * m[2k+1]*(bsums[4k+2]+bsums[4k+3]) (mins_prod_k4). */
static inline int32x4_t k4_min_prod(const uint8_t m[8], const int16_t *bsums)
{
    const int16x8_t s = padd_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8)); /* |s| <= 4096 */
    const int16x8_t mv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    return padd_s32(vmull_s16(vget_low_s16(mv), vget_low_s16(s)), vmull_s16(vget_high_s16(mv), vget_high_s16(s)));
}

/* ggml_vec_dot_q4_K_q8_K order: lanes acc += d * sumi; the min term in a 4-lane accumulator,
 * reduced (m0+m2)+(m1+m3) and added after hsum8(acc). */
static float dot_q4_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_K *w = wv;
    const struct blk_q8_K *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f), accm = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * neon_h2f(w[i].d);
        const float dmin = -(a[i].d * neon_h2f(w[i].dmin));
        uint8_t sc[8], m[8];
        k4_scales(w[i].scales, sc, m);
        accm = fma_lanes(accm, k4_min_prod(m, a[i].bsums), dmin);
        int32x4_t l0 = vdupq_n_s32(0), l1 = vdupq_n_s32(0);
        const uint8_t *qs = w[i].qs;
        const int8_t *q8 = a[i].qs;
        for (int j = 0; j < 4; j++, qs += 32, q8 += 64) {
            const uint8x16_t b0 = vld1q_u8(qs), b1 = vld1q_u8(qs + 16);
            group32(&l0, &l1, u8s8(vandq_u8(b0, m4)), u8s8(vandq_u8(b1, m4)), q8, sc[2 * j], sc[2 * j]);
            group32(&l0, &l1, u8s8(vshrq_n_u8(b0, 4)), u8s8(vshrq_n_u8(b1, 4)), q8 + 32, sc[2 * j + 1], sc[2 * j + 1]);
        }
        acc0 = fma_lanes(acc0, l0, d);
        acc1 = fma_lanes(acc1, l1, d);
    }
    const float32x2_t mm = vadd_f32(vget_low_f32(accm), vget_high_f32(accm));
    const float msum = vget_lane_f32(mm, 0) + vget_lane_f32(mm, 1);
    return hsum8(acc0, acc1) + msum;
}

/* Q5_K: Q4_K with a fifth bit (qh[l] bit 2j for the low-nibble group, 2j+1 for the high one);
 * the min term is an exact integer per super-block folded into a scalar FMA. */
static float dot_q5_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_K *w = wv;
    const struct blk_q8_K *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b16 = vdupq_n_u8(0x10);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float summs = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * neon_h2f(w[i].d);
        const float dmin = -(a[i].d * neon_h2f(w[i].dmin));
        uint8_t sc[8], m[8];
        k4_scales(w[i].scales, sc, m);
        summs = fmaf(dmin, (float)hadd_s32(k4_min_prod(m, a[i].bsums)), summs);
        int32x4_t l0 = vdupq_n_s32(0), l1 = vdupq_n_s32(0);
        const uint8_t *qs = w[i].qs;
        const int8_t *q8 = a[i].qs;
        uint8x16_t h0 = vld1q_u8(w[i].qh), h1 = vld1q_u8(w[i].qh + 16);
        for (int j = 0; j < 4; j++, qs += 32, q8 += 64) {
            const uint8x16_t b0 = vld1q_u8(qs), b1 = vld1q_u8(qs + 16);
            /* bit 0 of h -> 0x10 for the low nibbles, bit 1 -> 0x10 for the high ones */
            const int8x16_t lo0 = u8s8(vorrq_u8(vandq_u8(b0, m4), vandq_u8(vshlq_n_u8(h0, 4), b16)));
            const int8x16_t lo1 = u8s8(vorrq_u8(vandq_u8(b1, m4), vandq_u8(vshlq_n_u8(h1, 4), b16)));
            const int8x16_t hi0 = u8s8(vorrq_u8(vshrq_n_u8(b0, 4), vandq_u8(vshlq_n_u8(h0, 3), b16)));
            const int8x16_t hi1 = u8s8(vorrq_u8(vshrq_n_u8(b1, 4), vandq_u8(vshlq_n_u8(h1, 3), b16)));
            group32(&l0, &l1, lo0, lo1, q8, sc[2 * j], sc[2 * j]);
            group32(&l0, &l1, hi0, hi1, q8 + 32, sc[2 * j + 1], sc[2 * j + 1]);
            h0 = vshrq_n_u8(h0, 2);
            h1 = vshrq_n_u8(h1, 2);
        }
        acc0 = fma_lanes(acc0, l0, d);
        acc1 = fma_lanes(acc1, l1, d);
    }
    return hsum8(acc0, acc1) + summs;
}

/* Q6_K as the reference's AVX2 kernel: lanes over the unsigned 6-bit values (0..63), then lane k
 * -= 32 * (scale[2k]*bsums[2k] + scale[2k+1]*bsums[2k+1]) — same total as signed values, but
 * that lane split is what the f32 rounding depends on. */
static float dot_q6_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q6_K *w = wv;
    const struct blk_q8_K *a = av;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * neon_h2f(w[i].d);
        const int8_t *sc = w[i].scales;
        /* the offset correction, k = 0..3 in c0 and 4..7 in c1 */
        const int8x16_t scv = vld1q_s8(sc);
        const int16x8_t s0 = vmovl_s8(vget_low_s8(scv)), s1 = vmovl_s8(vget_high_s8(scv));
        const int16x8_t b0 = vld1q_s16(a[i].bsums), b1 = vld1q_s16(a[i].bsums + 8);
        const int32x4_t c0 = padd_s32(vmull_s16(vget_low_s16(s0), vget_low_s16(b0)),
                                      vmull_s16(vget_high_s16(s0), vget_high_s16(b0)));
        const int32x4_t c1 = padd_s32(vmull_s16(vget_low_s16(s1), vget_low_s16(b1)),
                                      vmull_s16(vget_high_s16(s1), vget_high_s16(b1)));
        int32x4_t l0 = vdupq_n_s32(0), l1 = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const int8_t *q8 = a[i].qs + 128 * h;
            const int g = 8 * h; /* scale index of the first 16 elements of this half */
            const uint8x16_t la0 = vld1q_u8(ql), la1 = vld1q_u8(ql + 16);
            const uint8x16_t lb0 = vld1q_u8(ql + 32), lb1 = vld1q_u8(ql + 48);
            const uint8x16_t hb0 = vld1q_u8(qh), hb1 = vld1q_u8(qh + 16);
            /* s = 0: low nibble of ql[l], qh bits 0-1 */
            group32(&l0, &l1, u8s8(vorrq_u8(vandq_u8(la0, m4), vandq_u8(vshlq_n_u8(hb0, 4), m30))),
                    u8s8(vorrq_u8(vandq_u8(la1, m4), vandq_u8(vshlq_n_u8(hb1, 4), m30))), q8, sc[g], sc[g + 1]);
            /* s = 1: low nibble of ql[l + 32], qh bits 2-3 */
            group32(&l0, &l1, u8s8(vorrq_u8(vandq_u8(lb0, m4), vandq_u8(vshlq_n_u8(hb0, 2), m30))),
                    u8s8(vorrq_u8(vandq_u8(lb1, m4), vandq_u8(vshlq_n_u8(hb1, 2), m30))), q8 + 32, sc[g + 2],
                    sc[g + 3]);
            /* s = 2: high nibble of ql[l], qh bits 4-5 */
            group32(&l0, &l1, u8s8(vorrq_u8(vshrq_n_u8(la0, 4), vandq_u8(hb0, m30))),
                    u8s8(vorrq_u8(vshrq_n_u8(la1, 4), vandq_u8(hb1, m30))), q8 + 64, sc[g + 4], sc[g + 5]);
            /* s = 3: high nibble of ql[l + 32], qh bits 6-7 */
            group32(&l0, &l1, u8s8(vorrq_u8(vshrq_n_u8(lb0, 4), vandq_u8(vshrq_n_u8(hb0, 2), m30))),
                    u8s8(vorrq_u8(vshrq_n_u8(lb1, 4), vandq_u8(vshrq_n_u8(hb1, 2), m30))), q8 + 96, sc[g + 6],
                    sc[g + 7]);
        }
        l0 = vsubq_s32(l0, vshlq_n_s32(c0, 5));
        l1 = vsubq_s32(l1, vshlq_n_s32(c1, 5));
        acc0 = fma_lanes(acc0, l0, d);
        acc1 = fma_lanes(acc1, l1, d);
    }
    return hsum8(acc0, acc1);
}

/* Q2_K: per super-block first acc += dmin' * (mins . bsums, pairwise into 8 lanes), then
 * acc += d * lanes; element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]. */
static float dot_q2_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q2_K *w = wv;
    const struct blk_q8_K *a = av;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * neon_h2f(w[i].d);
        const float dmin = -(a[i].d * neon_h2f(w[i].dmin));
        const uint8x16_t scv = vld1q_u8(w[i].scales);
        const int16x8_t mn0 = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_low_u8(scv), 4)));
        const int16x8_t mn1 = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_high_u8(scv), 4)));
        const int16x8_t b0 = vld1q_s16(a[i].bsums), b1 = vld1q_s16(a[i].bsums + 8);
        const int32x4_t p0 = padd_s32(vmull_s16(vget_low_s16(mn0), vget_low_s16(b0)),
                                      vmull_s16(vget_high_s16(mn0), vget_high_s16(b0)));
        const int32x4_t p1 = padd_s32(vmull_s16(vget_low_s16(mn1), vget_low_s16(b1)),
                                      vmull_s16(vget_high_s16(mn1), vget_high_s16(b1)));
        acc0 = fma_lanes(acc0, p0, dmin);
        acc1 = fma_lanes(acc1, p1, dmin);
        const uint8_t *sc = w[i].scales;
        int32x4_t l0 = vdupq_n_s32(0), l1 = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t q0 = vld1q_u8(w[i].qs + 32 * h), q1 = vld1q_u8(w[i].qs + 32 * h + 16);
            const int8_t *q8 = a[i].qs + 128 * h;
            for (int s = 0; s < 4; s++) {
                const int g = 8 * h + 2 * s;
                group32(&l0, &l1, u8s8(vandq_u8(q0, m3)), u8s8(vandq_u8(q1, m3)), q8 + 32 * s, sc[g] & 0x0F,
                        sc[g + 1] & 0x0F);
                q0 = vshrq_n_u8(q0, 2);
                q1 = vshrq_n_u8(q1, 2);
            }
        }
        acc0 = fma_lanes(acc0, l0, d);
        acc1 = fma_lanes(acc1, l1, d);
    }
    return hsum8(acc0, acc1);
}

/* Q3_K's 16 6-bit scales minus 32 (scales_q3_K of kern_ref.c, four at a time). */
static inline void q3_scales(const uint8_t *p, int8_t out[16])
{
    uint32_t u[3], s[4];
    memcpy(u, p, 12);
    s[0] = (u[0] & 0x0F0F0F0Fu) | (u[2] & 0x03030303u) << 4;
    s[1] = (u[1] & 0x0F0F0F0Fu) | ((u[2] >> 2) & 0x03030303u) << 4;
    s[2] = ((u[0] >> 4) & 0x0F0F0F0Fu) | ((u[2] >> 4) & 0x03030303u) << 4;
    s[3] = ((u[1] >> 4) & 0x0F0F0F0Fu) | ((u[2] >> 6) & 0x03030303u) << 4;
    vst1q_s8(out, vsubq_s8(vreinterpretq_s8_u32(vld1q_u32(s)), vdupq_n_s8(32)));
}

/* Q3_K: value = (bits 2s..2s+1 of qs[32h + l]) - 4 + 4 * (hmask[l] bit 4h+s). */
static float dot_q3_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q3_K *w = wv;
    const struct blk_q8_K *a = av;
    const uint8x16_t m3 = vdupq_n_u8(3), m4 = vdupq_n_u8(4);
    const int8x16_t s4 = vdupq_n_s8(4);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = a[i].d * neon_h2f(w[i].d);
        int8_t sc[16];
        q3_scales(w[i].scales, sc);
        uint8x16_t hm0 = vld1q_u8(w[i].hmask), hm1 = vld1q_u8(w[i].hmask + 16);
        int32x4_t l0 = vdupq_n_s32(0), l1 = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t q0 = vld1q_u8(w[i].qs + 32 * h), q1 = vld1q_u8(w[i].qs + 32 * h + 16);
            const int8_t *q8 = a[i].qs + 128 * h;
            for (int s = 0; s < 4; s++) {
                const int g = 8 * h + 2 * s;
                /* (2 low bits | high bit << 2) - 4 */
                const int8x16_t v0 = vsubq_s8(u8s8(vorrq_u8(vandq_u8(q0, m3), vandq_u8(vshlq_n_u8(hm0, 2), m4))), s4);
                const int8x16_t v1 = vsubq_s8(u8s8(vorrq_u8(vandq_u8(q1, m3), vandq_u8(vshlq_n_u8(hm1, 2), m4))), s4);
                group32(&l0, &l1, v0, v1, q8 + 32 * s, sc[g], sc[g + 1]);
                q0 = vshrq_n_u8(q0, 2);
                q1 = vshrq_n_u8(q1, 2);
                hm0 = vshrq_n_u8(hm0, 1);
                hm1 = vshrq_n_u8(hm1, 1);
            }
        }
        acc0 = fma_lanes(acc0, l0, d);
        acc1 = fma_lanes(acc1, l1, d);
    }
    return hsum8(acc0, acc1);
}

/* IQ4_XS: 8 sub-blocks of 32 with a 6-bit scale (minus 32) each, values from the IQ4 table. */
static float dot_iq4_xs(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_xs *w = wv;
    const struct blk_q8_K *a = av;
    const int8x16_t tbl = vld1q_s8(kern_iq4nl_values);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = neon_h2f(w[i].d) * a[i].d;
        int32x4_t l0 = vdupq_n_s32(0), l1 = vdupq_n_s32(0);
        for (int ib = 0; ib < 8; ib++) {
            const int32_t ls = (int32_t)(((w[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) |
                                         ((w[i].scales_h >> (2 * ib)) & 3) << 4) - 32;
            int8x16_t q0, q1;
            iq4_unpack(w[i].qs + 16 * ib, tbl, &q0, &q1);
            group32(&l0, &l1, q0, q1, a[i].qs + 32 * ib, ls, ls);
        }
        acc0 = fma_lanes(acc0, l0, d);
        acc1 = fma_lanes(acc1, l1, d);
    }
    return hsum8(acc0, acc1);
}

/* ------------------------------------------------------------------------------------------ */
/* The table                                                                                  */

#if defined(KERN_NEON_DOTPROD)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static bool neon_available(void)
{
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
}
#elif defined(__aarch64__)
static bool neon_available(void)
{
    return true; /* Advanced SIMD is part of the aarch64 Linux ABI */
}
#else
#ifndef HWCAP_ARM_NEON
#define HWCAP_ARM_NEON 4096
#endif
#ifndef HWCAP_ARM_VFPv4
#define HWCAP_ARM_VFPv4 65536
#endif
static bool neon_available(void)
{
    const unsigned long hw = getauxval(AT_HWCAP);
    return (hw & HWCAP_ARM_NEON) && (hw & HWCAP_ARM_VFPv4); /* vfmaq_f32 needs VFPv4 */
}
#endif

const struct kern_isa NEON_ISA_SYM = {
    .name = NEON_ISA_NAME,
    .available = neon_available,
    .dot_gemm =
        {
            [BLK_T_F32] = dot_f32_gemm,
            [BLK_T_F16] = dot_f16_gemm,
            [BLK_T_BF16] = dot_bf16_gemm,
            [BLK_T_Q8_0] = dot_q8_0,
            [BLK_T_Q4_0] = dot_q4_0,
            [BLK_T_Q4_1] = dot_q4_1,
            [BLK_T_Q5_0] = dot_q5_0,
            [BLK_T_Q5_1] = dot_q5_1,
            [BLK_T_Q2_K] = dot_q2_K,
            [BLK_T_Q3_K] = dot_q3_K,
            [BLK_T_Q4_K] = dot_q4_K,
            [BLK_T_Q5_K] = dot_q5_K,
            [BLK_T_Q6_K] = dot_q6_K,
            [BLK_T_IQ4_NL] = dot_iq4_nl_gemm,
            [BLK_T_IQ4_XS] = dot_iq4_xs,
        },
    .dot_vecdot =
        {
            [BLK_T_F32] = dot_f32_vecdot,
            [BLK_T_F16] = dot_f16_vecdot,
            [BLK_T_BF16] = dot_bf16_vecdot,
            [BLK_T_Q8_0] = dot_q8_0,
            [BLK_T_Q4_0] = dot_q4_0,
            [BLK_T_Q4_1] = dot_q4_1,
            [BLK_T_Q5_0] = dot_q5_0,
            [BLK_T_Q5_1] = dot_q5_1,
            [BLK_T_Q2_K] = dot_q2_K,
            [BLK_T_Q3_K] = dot_q3_K,
            [BLK_T_Q4_K] = dot_q4_K,
            [BLK_T_Q5_K] = dot_q5_K,
            [BLK_T_Q6_K] = dot_q6_K,
            [BLK_T_IQ4_NL] = dot_iq4_nl_vecdot,
            [BLK_T_IQ4_XS] = dot_iq4_xs,
        },
    .act =
        {
            [BLK_T_Q8_0] = act_q8_0,
            [BLK_T_Q8_1] = act_q8_1,
            [BLK_T_Q8_K] = act_q8_K,
            [BLK_T_BF16] = act_bf16,
#if defined(__aarch64__)
            [BLK_T_F16] = act_f16,
#endif
        },
    .dot_f32 = dot_f32_row,
};

#else /* !NEON_KERNELS: the symbol the dispatcher expects, never chosen */

static bool neon_unavailable(void)
{
    return false;
}

const struct kern_isa NEON_ISA_SYM = {.name = NEON_ISA_NAME, .available = neon_unavailable};

#endif /* NEON_KERNELS */

#else /* !__ARM_NEON: nothing here (ISO C forbids an empty translation unit) */
typedef int kern_neon_unused_;
#endif
