/* check_kern: unit tests for the numeric kernels and the thread pool.
 *
 * What is checked and why:
 *  - half/bfloat conversions on special values and exhaustively (everything downstream trusts them);
 *  - for every supported weight type: kern_vec_dot equals the float64 dot product of the
 *    dequantized weights and the dequantized prepared activation, to a tight relative tolerance,
 *    on 1/3/7-block rows and several rows (catches wrong bit layouts in the fused dot products);
 *  - activation rounding: Q8_0 half-way values round to even, zero blocks give d = 0; Q8_1 block
 *    sums and Q8_K's signed scale, bsums and zero blocks;
 *  - softmax / SiLU / attention-weighted sums against float64 math (masks, padding);
 *  - known answers: real tensors of the shared synthetic model in each type, dequantized, against
 *    the same tensor of the F32 file, within that type's quantization error (catches layouts that
 *    are self-consistent but not ggml's);
 *  - the summation order: an independent AVX2 intrinsics transcription of llama.cpp's kernels
 *    (compiled here via target attributes, run only when the CPU has AVX2/FMA/F16C) must give
 *    bit-identical results to the scalar kernels;
 *  - the pool: every task runs exactly once for 1/2/4 threads, many back-to-back jobs, nested use,
 *    and kern_matvec is bit-identical for pool NULL / 2 / 3 threads;
 *  - which ISAs are built, which this CPU runs (the automatic choice is the first of them, every
 *    tier is refused by name when the CPU cannot run it) and which are skipped here;
 *  - every SIMD ISA this CPU can run (kern_isa_select) against the scalar reference: prepared
 *    activations byte for byte, dot products (both orders), dequantization and kern_dot_f32 bit
 *    for bit, on 1/2/3/7/9-block rows and ragged float lengths, in exact-size heap buffers so
 *    ASan catches a kernel that reads past a row (NaN results only need to be NaN on both);
 *  - kern_matmul equals kern_vec_dot per (row, token) bit for bit for every type, ISA, token
 *    count (up to 37: more than one 32-token group of the 512-bit tiles) and pool size, and
 *    leaves the y_stride padding alone; rows too long for the tiles' stack scratch take their
 *    fallbacks with the same bits;
 *  - softmax / SiLU / SwiGLU / the weighted V sum of every ISA equal the reference's bits;
 *  - attention over F16 and Q8_0 caches: the F16 score rows and weighted V sum equal the F16 dot
 *    product (itself checked against llama.cpp's order) bit for bit, the Q8_0 flash attention
 *    matches float64 math on the same quantized numbers, and every ISA returns the reference's
 *    bits on odd cell counts and head sizes; the Hadamard rotation against its matrix;
 *  - batched attention (several queries per call, each with its own visible cells) equals the
 *    one-query functions bit for bit in every ISA; fp16 rounding of floats equals util's;
 *  - the llama.cpp transcription tests run once per available ISA;
 *  - ARM: the NEON tables themselves (plain and dotprod) are filled and chosen as expected, and
 *    match the reference bit for bit on full-range int8 quants, packed-bit patterns and
 *    activation edge cases (32-bit ARM: a stated bound for subnormal F32/BF16 terms). */
#include "tutil.h"

#include "gguf/gguf.h"
#include "kern/kern.h"
#include "util/err.h"
#include "util/util.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unif(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static uint8_t rng_byte(void)
{
    return (uint8_t)(rng_next() >> 56);
}

static float rng_gauss(void)
{
    double u1 = rng_unif(), u2 = rng_unif();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ------------------------------------------------------------------------------------------ */
/* fp16 / bf16                                                                                */

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

START_TEST(test_fp16_special)
{
    ck_assert_uint_eq(util_f32_to_fp16(0.0f), 0x0000);
    ck_assert_uint_eq(util_f32_to_fp16(-0.0f), 0x8000);
    ck_assert_uint_eq(util_f32_to_fp16(1.0f), 0x3C00);
    ck_assert_uint_eq(util_f32_to_fp16(-2.0f), 0xC000);
    ck_assert_uint_eq(util_f32_to_fp16(65504.0f), 0x7BFF);
    ck_assert_uint_eq(util_f32_to_fp16(65519.99f), 0x7BFF); /* below the halfway point */
    ck_assert_uint_eq(util_f32_to_fp16(65520.0f), 0x7C00);  /* halfway to 2^16 rounds to inf */
    ck_assert_uint_eq(util_f32_to_fp16(INFINITY), 0x7C00);
    ck_assert_uint_eq(util_f32_to_fp16(-INFINITY), 0xFC00);
    uint16_t hn = util_f32_to_fp16(NAN);
    ck_assert((hn & 0x7C00) == 0x7C00 && (hn & 0x03FF) != 0);
    ck_assert(isnan(util_fp16_to_f32(0x7E00)));
    ck_assert(isinf(util_fp16_to_f32(0x7C00)) && util_fp16_to_f32(0x7C00) > 0);
    /* subnormals: 2^-24 is the smallest, 2^-25 is a tie that rounds to even (0) */
    ck_assert_uint_eq(util_f32_to_fp16(ldexpf(1.0f, -24)), 0x0001);
    ck_assert_uint_eq(util_f32_to_fp16(ldexpf(1.0f, -25)), 0x0000);
    ck_assert_uint_eq(util_f32_to_fp16(ldexpf(3.0f, -25)), 0x0002); /* 1.5 ulp ties to even 2 */
    ck_assert(util_fp16_to_f32(0x0001) == ldexpf(1.0f, -24));
    ck_assert(util_fp16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
    ck_assert_uint_eq(util_f32_to_fp16(ldexpf(1.0f, -14)), 0x0400); /* smallest normal */
    /* normal ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> even (1) */
    ck_assert_uint_eq(util_f32_to_fp16(1.0f + ldexpf(1.0f, -11)), 0x3C00);
    ck_assert_uint_eq(util_f32_to_fp16(1.0f + ldexpf(3.0f, -11)), 0x3C02);
    /* kern's own branch-free conversion (used by F16 dequant and every block scale) agrees
     * with util's on all 65536 halves, NaNs included */
    {
        static uint16_t all[65536];
        static float got[65536];
        for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
        ck_assert_int_eq(kern_dequant_row(BLK_T_F16, all, got, 65536), 0);
        for (uint32_t h = 0; h < 65536; h++) {
            float want = util_fp16_to_f32((uint16_t)h);
            ck_assert_msg(memcmp(&got[h], &want, 4) == 0, "half 0x%04x", h);
        }
    }
    /* every non-NaN half survives a round trip through f32 */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;
        ck_assert_uint_eq(util_f32_to_fp16(util_fp16_to_f32((uint16_t)h)), h);
    }
}
END_TEST

START_TEST(test_bf16_special)
{
    ck_assert_uint_eq(util_f32_to_bf16(1.0f), 0x3F80);
    ck_assert_uint_eq(util_f32_to_bf16(-0.0f), 0x8000);
    ck_assert_uint_eq(util_f32_to_bf16(INFINITY), 0x7F80);
    ck_assert(isnan(util_bf16_to_f32(util_f32_to_bf16(NAN))));
    /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
    ck_assert_uint_eq(util_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3F80);
    ck_assert_uint_eq(util_f32_to_bf16(1.0f + ldexpf(3.0f, -8)), 0x3F82);
    ck_assert_uint_eq(util_f32_to_bf16(bitsf(0x3F808001u)), 0x3F81); /* just above the tie */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7F80) == 0x7F80 && (h & 0x7F)) continue;
        ck_assert_uint_eq(util_f32_to_bf16(util_bf16_to_f32((uint16_t)h)), h);
    }
    ck_assert_uint_eq(fbits(util_bf16_to_f32(0x3F80)), 0x3F800000u);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Per-type test data: quantize (or randomly fill) rows, dequantize prepared activations        */

/* Quantizers written for the test (ggml's reference formulas, so rows look like real ones). */
static void tq_q8_0(const float *x, struct blk_q8_0 *y, size_t n)
{
    for (size_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[i].d = util_f32_to_fp16(d);
        for (int j = 0; j < 32; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void tq_q4_0(const float *x, struct blk_q4_0 *y, size_t n)
{
    for (size_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = util_f32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int a = (int)(x[j] * id + 8.5f), b = (int)(x[j + 16] * id + 8.5f);
            a = a > 15 ? 15 : a;
            b = b > 15 ? 15 : b;
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void tq_q4_1(const float *x, struct blk_q4_1 *y, size_t n)
{
    for (size_t i = 0; i < n / 32; i++, x += 32) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < 32; j++) {
            mn = fminf(mn, x[j]);
            mx = fmaxf(mx, x[j]);
        }
        float d = (mx - mn) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = util_f32_to_fp16(d);
        y[i].m = util_f32_to_fp16(mn);
        for (int j = 0; j < 16; j++) {
            int a = (int)((x[j] - mn) * id + 0.5f), b = (int)((x[j + 16] - mn) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((a > 15 ? 15 : a) | (b > 15 ? 15 : b) << 4);
        }
    }
}

/* 5-bit: q[32] in 0..31 -> qs/qh */
static void pack_q5(const int *q, uint8_t *qs, uint8_t *qh4)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        qh |= (uint32_t)(q[j] >> 4 & 1) << j;
        qh |= (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh4[k] = (uint8_t)(qh >> (8 * k)); /* little endian */
}

static void tq_q5_0(const float *x, struct blk_q5_0 *y, size_t n)
{
    for (size_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = util_f32_to_fp16(d);
        int q[32];
        for (int j = 0; j < 32; j++) {
            int v = (int)(x[j] * id + 16.5f);
            q[j] = v > 31 ? 31 : v;
        }
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

static void tq_q5_1(const float *x, struct blk_q5_1 *y, size_t n)
{
    for (size_t i = 0; i < n / 32; i++, x += 32) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < 32; j++) {
            mn = fminf(mn, x[j]);
            mx = fmaxf(mx, x[j]);
        }
        float d = (mx - mn) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = util_f32_to_fp16(d);
        y[i].m = util_f32_to_fp16(mn);
        int q[32];
        for (int j = 0; j < 32; j++) {
            int v = (int)((x[j] - mn) * id + 0.5f);
            q[j] = v > 31 ? 31 : v;
        }
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

static int iq4_nearest(float v) /* index of the closest IQ4_NL code value */
{
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabsf(v - kern_iq4nl_values[k]) < fabsf(v - kern_iq4nl_values[best])) best = k;
    return best;
}

static void tq_iq4_nl(const float *x, struct blk_iq4_nl *y, size_t n)
{
    for (size_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -127.0f, id = d ? 1.0f / d : 0.0f;
        y[i].d = util_f32_to_fp16(d);
        for (int j = 0; j < 16; j++)
            y[i].qs[j] = (uint8_t)(iq4_nearest(x[j] * id) | iq4_nearest(x[j + 16] * id) << 4);
    }
}

/* K-quants and IQ4_XS: random bit patterns with sane super-block scales (the layouts are then
 * exercised everywhere; the known-answer tests check them against real files). */
static void random_blocks(uint32_t type, void *row, size_t n)
{
    const struct blk_type_info *ti = blk_type_info(type);
    size_t nb = n / ti->blck;
    uint8_t *p = row;
    for (size_t i = 0; i < nb * ti->size; i++) p[i] = rng_byte();
    for (size_t i = 0; i < nb; i++) {
        uint16_t d = util_f32_to_fp16(0.0005f * (float)(1.0 + rng_unif()));
        uint16_t dm = util_f32_to_fp16(0.0005f * (float)rng_unif());
        switch (type) {
        case BLK_T_Q2_K: ((struct blk_q2_K *)row)[i].d = d; ((struct blk_q2_K *)row)[i].dmin = dm; break;
        case BLK_T_Q3_K: ((struct blk_q3_K *)row)[i].d = d; break;
        case BLK_T_Q4_K: ((struct blk_q4_K *)row)[i].d = d; ((struct blk_q4_K *)row)[i].dmin = dm; break;
        case BLK_T_Q5_K: ((struct blk_q5_K *)row)[i].d = d; ((struct blk_q5_K *)row)[i].dmin = dm; break;
        case BLK_T_Q6_K: ((struct blk_q6_K *)row)[i].d = d; break;
        case BLK_T_IQ4_XS: ((struct blk_iq4_xs *)row)[i].d = d; break;
        default: break;
        }
    }
}

/* Make one weight row of `type` with n elements from x (or random bytes when the type has no
 * test quantizer). Returns false for a type the test does not know. */
static bool make_row(uint32_t type, const float *x, void *row, size_t n)
{
    switch (type) {
    case BLK_T_F32: memcpy(row, x, n * 4); return true;
    case BLK_T_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)row)[i] = util_f32_to_fp16(x[i]);
        return true;
    case BLK_T_Q8_0: tq_q8_0(x, row, n); return true;
    case BLK_T_Q4_0: tq_q4_0(x, row, n); return true;
    case BLK_T_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)row)[i] = util_f32_to_bf16(x[i]);
        return true;
    case BLK_T_Q4_1: tq_q4_1(x, row, n); return true;
    case BLK_T_Q5_0: tq_q5_0(x, row, n); return true;
    case BLK_T_Q5_1: tq_q5_1(x, row, n); return true;
    case BLK_T_IQ4_NL: tq_iq4_nl(x, row, n); return true;
    case BLK_T_Q2_K:
    case BLK_T_Q3_K:
    case BLK_T_Q4_K:
    case BLK_T_Q5_K:
    case BLK_T_Q6_K:
    case BLK_T_IQ4_XS: random_blocks(type, row, n); return true;
    default: return false;
    }
}

/* The activation type kern must use for weight `type` (ggml's vec_dot_type). */
static uint32_t act_type_of(uint32_t type)
{
    switch (type) {
    case BLK_T_F32: return BLK_T_F32;
    case BLK_T_F16: return BLK_T_F16;
    case BLK_T_BF16: return BLK_T_BF16;
    case BLK_T_Q8_0:
    case BLK_T_Q4_0:
    case BLK_T_Q5_0:
    case BLK_T_IQ4_NL: return BLK_T_Q8_0;
    case BLK_T_Q4_1:
    case BLK_T_Q5_1: return BLK_T_Q8_1;
    default: return BLK_T_Q8_K;
    }
}

/* Dequantize a prepared activation (test's own decoding of the documented layouts). */
static void act_dequant(uint32_t wtype, const void *act, double *out, size_t n)
{
    switch (act_type_of(wtype)) {
    case BLK_T_F32:
        for (size_t i = 0; i < n; i++) out[i] = ((const float *)act)[i];
        break;
    case BLK_T_F16:
        for (size_t i = 0; i < n; i++) out[i] = util_fp16_to_f32(((const uint16_t *)act)[i]);
        break;
    case BLK_T_BF16:
        for (size_t i = 0; i < n; i++) out[i] = util_bf16_to_f32(((const uint16_t *)act)[i]);
        break;
    case BLK_T_Q8_0: {
        const struct blk_q8_0 *b = act;
        for (size_t i = 0; i < n; i++) out[i] = (double)util_fp16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32];
        break;
    }
    case BLK_T_Q8_1: {
        const struct blk_q8_1 *b = act;
        for (size_t i = 0; i < n; i++) out[i] = (double)util_fp16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32];
        break;
    }
    default: {
        const struct blk_q8_K *b = act;
        for (size_t i = 0; i < n; i++) out[i] = (double)b[i / 256].d * b[i / 256].qs[i % 256];
        break;
    }
    }
}

/* The weight types this build must support, in the order of the brief's priorities. */
static const uint32_t k_types[] = {BLK_T_F32,  BLK_T_F16,  BLK_T_Q8_0, BLK_T_Q4_0,  BLK_T_BF16,
                                   BLK_T_Q4_1, BLK_T_Q5_0, BLK_T_Q5_1, BLK_T_Q2_K,  BLK_T_Q3_K,
                                   BLK_T_Q4_K, BLK_T_Q5_K, BLK_T_Q6_K, BLK_T_IQ4_NL, BLK_T_IQ4_XS};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static size_t blck_of(uint32_t type)
{
    return blk_type_info(type)->blck;
}

/* Row lengths: 1, 3 and 7 blocks of the type's act block (at least 32 elements). */
static size_t test_len(uint32_t type, int k)
{
    static const int nblk[3] = {1, 3, 7};
    size_t b = blck_of(type) < 32 ? 32 : blck_of(type);
    return b * (size_t)nblk[k];
}

/* float64 reference of what kern_vec_dot computes: dot(dequant(w), dequant(act)). For the Q8_1
 * types the offset term uses the activation's stored block sum s (as ggml does), not the sum
 * of the dequantized activations: w = q*d + m, so dot = sum((w - m) * a) + m * s per block. */
static void ref_dot(uint32_t type, const void *row, const float *wd, const void *act, const double *ad, size_t n,
                    double *ref, double *mag)
{
    *ref = 0;
    *mag = 0;
    if (act_type_of(type) != BLK_T_Q8_1) {
        for (size_t i = 0; i < n; i++) {
            *ref += (double)wd[i] * ad[i];
            *mag += fabs((double)wd[i] * ad[i]);
        }
        return;
    }
    const struct blk_q8_1 *a = act;
    for (size_t b = 0; b < n / 32; b++) {
        double m = type == BLK_T_Q4_1 ? util_fp16_to_f32(((const struct blk_q4_1 *)row)[b].m)
                                       : util_fp16_to_f32(((const struct blk_q5_1 *)row)[b].m);
        for (size_t i = 32 * b; i < 32 * b + 32; i++) {
            *ref += ((double)wd[i] - m) * ad[i];
            *mag += fabs(((double)wd[i] - m) * ad[i]);
        }
        *ref += m * util_fp16_to_f32(a[b].s);
        *mag += fabs(m * util_fp16_to_f32(a[b].s));
    }
}

START_TEST(test_supported)
{
    for (int i = 0; i < N_TYPES; i++) ck_assert_msg(kern_type_supported(k_types[i]), "%s", blk_type_name(k_types[i]));
    ck_assert(!kern_type_supported(BLK_T_Q8_K)); /* activation-only types are not weights */
    ck_assert(!kern_type_supported(BLK_T_COUNT_));
    ck_assert(!kern_type_supported(9999));
    ck_assert_uint_eq(kern_act_size(BLK_T_Q8_0, 33), 0);
    ck_assert_uint_eq(kern_act_size(BLK_T_Q8_0, 64), 68);
    ck_assert_uint_eq(kern_act_size(BLK_T_F16, 3), 6);
    ck_assert_int_eq(kern_dequant_row(BLK_T_Q8_0, NULL, NULL, 31), ERR_SHAPE);
    ck_assert_int_eq(kern_dequant_row(9999, NULL, NULL, 32), ERR_UNSUPPORTED);
    ck_assert(isnan(kern_vec_dot(9999, "", "", 32)));
    const char *isa = kern_isa_name();
    static const char *const names[] = {"scalar", "avx2", "avx-vnni", "avx512", "neon", "neon-dotprod"};
    bool known = false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) known = known || !strcmp(isa, names[i]);
    ck_assert_msg(known, "%s", isa);
    const char *req = getenv("LMPIPE_ISA");
    if (req && !strcmp(req, "scalar")) ck_assert_str_eq(isa, "scalar");
    struct kern_cpu_info ci;
    kern_cpu_info(&ci);
    ck_assert_str_eq(ci.chosen, isa);
    ck_assert_int_ge(ci.n_isa, 1);
    ck_assert_str_eq(ci.isa[ci.n_isa - 1], "scalar");
    ck_assert(ci.isa_available[ci.n_isa - 1]);
    /* automatic: the first available in the listed (best-first) order; a tier the CPU cannot
     * run is refused by name, and the aliases reach the same tables */
    int first = 0;
    while (!ci.isa_available[first]) first++;
    for (int i = 0; i < ci.n_isa; i++) /* what the "isa" tests below compare, and what they skip */
        fprintf(stderr, "check_kern: ISA %s: %s\n", ci.isa[i],
                !ci.isa_available[i]            ? "SKIPPED (this CPU cannot run it)"
                : !strcmp(ci.isa[i], "scalar") ? "the reference"
                                               : "compared with the scalar reference");
    if (!req || !*req || !strcmp(req, "auto")) ck_assert_str_eq(isa, ci.isa[first]);
    for (int i = 0; i < ci.n_isa; i++) {
        ck_assert_int_eq(kern_isa_select(ci.isa[i]), ci.isa_available[i] ? 0 : ERR_UNSUPPORTED);
        if (ci.isa_available[i]) ck_assert_str_eq(kern_isa_name(), ci.isa[i]);
        if (!strcmp(ci.isa[i], "avx-vnni")) {
            ck_assert_int_eq(kern_isa_select("avx_vnni"), ci.isa_available[i] ? 0 : ERR_UNSUPPORTED);
            if (ci.isa_available[i]) ck_assert_str_eq(kern_isa_name(), "avx-vnni");
        }
    }
#if defined(__x86_64__)
    /* x86-64 builds all three x86 tiers, best first */
    ck_assert_int_eq(ci.n_isa, 4);
    ck_assert_str_eq(ci.isa[0], "avx512");
    ck_assert_str_eq(ci.isa[1], "avx-vnni");
    ck_assert_str_eq(ci.isa[2], "avx2");
    /* a tier is offered exactly when the features it needs are listed */
    bool f512 = strstr(ci.features, "avx512bw") && strstr(ci.features, "avx512vl") && strstr(ci.features, "avx512vnni");
    ck_assert(!ci.isa_available[0] || f512);
    ck_assert(!ci.isa_available[1] || strstr(ci.features, "avx-vnni"));
    ck_assert(!ci.isa_available[0] || ci.isa_available[2]);
#endif
    ck_assert_int_eq(kern_isa_select(isa), 0);
    ck_assert_int_eq(kern_isa_select("no-such-isa"), ERR_INVALID);
    ck_assert_str_eq(kern_isa_name(), isa); /* a refused switch keeps the choice */
    ck_assert_int_eq(kern_isa_select("scalar"), 0);
    ck_assert_str_eq(kern_isa_name(), "scalar");
    ck_assert_int_eq(kern_isa_select(isa), 0);
    ck_assert_str_eq(kern_isa_name(), isa);
}
END_TEST

/* vec_dot == float64 dot(dequant(w), dequant(act)) for 1/3/7 blocks, several rows, both orders;
 * plus lengths that are not multiples of 8 for the float types (llama.cpp's vec_dot tail). */
START_TEST(test_vec_dot_matches_dequant)
{
    uint32_t type = k_types[_i];
    const size_t nmax = 7 * 256 + 8;
    float *x = malloc(nmax * 4), *a = malloc(nmax * 4), *wd = malloc(nmax * 4);
    double *ad = malloc(nmax * 8);
    void *row = malloc(nmax * 4 + 64), *act = malloc(nmax * 4 + 512);
    ck_assert(x && a && wd && ad && row && act);
    for (int k = 0; k < 5; k++) {
        size_t n;
        if (k < 3) n = test_len(type, k);
        else if (blck_of(type) == 1) n = k == 3 ? 172 : 13; /* odd float lengths */
        else continue;
        for (int r = 0; r < 4; r++) {
            float scale = r == 3 ? 100.0f : 1.0f; /* one row with large values */
            for (size_t i = 0; i < n; i++) {
                x[i] = 0.02f * rng_gauss() * scale;
                a[i] = rng_gauss() * (r == 2 ? 1e-3f : 1.0f);
            }
            if (!make_row(type, x, row, n)) ck_abort_msg("no test quantizer for %s", blk_type_name(type));
            ck_assert_int_eq(kern_dequant_row(type, row, wd, n), 0);
            size_t asz = kern_act_size(type, n);
            ck_assert_uint_gt(asz, 0);
            kern_act_prepare(type, a, act, n);
            act_dequant(type, act, ad, n);
            double ref, mag;
            ref_dot(type, row, wd, act, ad, n, &ref, &mag);
            for (unsigned order = 0; order < 2; order++) {
                float got = kern_vec_dot_ex(type, row, act, n, order);
                double tol = 1e-5 * mag + 1e-30;
                ck_assert_msg(fabs(got - ref) <= tol, "%s n=%zu row=%d order=%u: got %.9g want %.9g (tol %.3g)",
                              blk_type_name(type), n, r, order, (double)got, ref, tol);
            }
            ck_assert(kern_vec_dot(type, row, act, n) == kern_vec_dot_ex(type, row, act, n, KERN_ORDER_GEMM));
            /* the prepared activation itself is close to x (quantization error only) */
            double amax = 0, emax = 0;
            for (size_t i = 0; i < n; i++) {
                amax = fmax(amax, fabs(a[i]));
                emax = fmax(emax, fabs(ad[i] - a[i]));
            }
            ck_assert_msg(emax <= amax * 0.006 + 1e-30, "%s act error %g (amax %g)", blk_type_name(type), emax, amax);
        }
    }
    free(x);
    free(a);
    free(wd);
    free(ad);
    free(row);
    free(act);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* activation rounding                                                                         */

START_TEST(test_q8_0_rounding)
{
    float x[64];
    struct blk_q8_0 b[2];
    /* amax = 127 makes the multiplier exactly 1, so x itself is the value being rounded */
    for (int j = 0; j < 32; j++) x[j] = 0.0f;
    x[0] = 127.0f;
    x[1] = 2.5f;   /* -> 2 (even) */
    x[2] = 3.5f;   /* -> 4 */
    x[3] = -2.5f;  /* -> -2 */
    x[4] = 0.5f;   /* -> 0 */
    x[5] = -0.5f;  /* -> 0 */
    x[6] = 1.5f;   /* -> 2 */
    x[7] = 2.4999998f;
    x[8] = -126.5f; /* -> -126 */
    x[9] = 126.5f;  /* -> 126 */
    for (int j = 32; j < 64; j++) x[j] = 0.0f; /* second block all zero */
    kern_act_prepare(BLK_T_Q8_0, x, b, 64);
    ck_assert_uint_eq(b[0].d, util_f32_to_fp16(1.0f));
    ck_assert_int_eq(b[0].qs[0], 127);
    ck_assert_int_eq(b[0].qs[1], 2);
    ck_assert_int_eq(b[0].qs[2], 4);
    ck_assert_int_eq(b[0].qs[3], -2);
    ck_assert_int_eq(b[0].qs[4], 0);
    ck_assert_int_eq(b[0].qs[5], 0);
    ck_assert_int_eq(b[0].qs[6], 2);
    ck_assert_int_eq(b[0].qs[7], 2);
    ck_assert_int_eq(b[0].qs[8], -126);
    ck_assert_int_eq(b[0].qs[9], 126);
    ck_assert_uint_eq(b[1].d, 0);
    for (int j = 0; j < 32; j++) ck_assert_int_eq(b[1].qs[j], 0);
    /* scale: d = amax/127 in f32, stored as fp16; multiplier 127/amax */
    for (int j = 0; j < 32; j++) x[j] = 0.01f * (float)(j - 16);
    kern_act_prepare(BLK_T_Q8_0, x, b, 32);
    ck_assert_uint_eq(b[0].d, util_f32_to_fp16(0.16f / 127.0f));
    ck_assert_int_eq(b[0].qs[0], -127);
    for (int j = 0; j < 32; j++) ck_assert_int_eq(b[0].qs[j], (int)nearbyintf(x[j] * (127.0f / 0.16f)));
}
END_TEST

/* Q8_1 stores s = fp16(d * sum(q)) with the unrounded f32 d = amax/127; Q8_K takes its scale
 * from the first element of largest magnitude, keeping its sign (iscale = -127/max), so that
 * element quantizes to exactly -127; d = 1/iscale stays f32; bsums are sums of 16. */
START_TEST(test_q8_1_q8_K_act)
{
    float x[512];
    for (int j = 0; j < 64; j++) x[j] = 0.01f * (float)((j * 37) % 23 - 11);
    struct blk_q8_1 b1[2];
    kern_act_prepare(BLK_T_Q4_1, x, b1, 64);
    for (int ib = 0; ib < 2; ib++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * ib + j]));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            ck_assert_int_eq(b1[ib].qs[j], (int)nearbyintf(x[32 * ib + j] * (127.0f / amax)));
            sum += b1[ib].qs[j];
        }
        ck_assert_uint_eq(b1[ib].d, util_f32_to_fp16(amax / 127.0f));
        ck_assert_uint_eq(b1[ib].s, util_f32_to_fp16(amax / 127.0f * (float)sum));
    }
    /* Q8_K: block 0 has its extreme negative, block 1 positive and tied in magnitude with a
     * later negative one (the first wins), block 2 is all zero */
    for (int j = 0; j < 512; j++) x[j] = 0.001f * (float)((j * 53) % 101 - 50);
    x[17] = -0.9f;
    x[256 + 3] = 0.7f;
    x[256 + 200] = -0.7f;
    struct blk_q8_K bk[3];
    float z[768];
    memcpy(z, x, sizeof x);
    for (int j = 512; j < 768; j++) z[j] = 0.0f;
    kern_act_prepare(BLK_T_Q4_K, z, bk, 768);
    ck_assert_int_eq(bk[0].qs[17], -127);
    ck_assert(bk[0].d == 1.0f / (-127.0f / -0.9f));
    ck_assert_int_eq(bk[1].qs[3], -127);
    ck_assert_int_eq(bk[1].qs[200], 127);
    ck_assert(bk[1].d == 1.0f / (-127.0f / 0.7f));
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += bk[0].qs[16 * g + j];
        ck_assert_int_eq(bk[0].bsums[g], sum);
    }
    ck_assert(bk[2].d == 0.0f);
    for (int j = 0; j < 256; j++) ck_assert_int_eq(bk[2].qs[j], 0);
    for (int g = 0; g < 16; g++) ck_assert_int_eq(bk[2].bsums[g], 0);
    ck_assert_uint_eq(kern_act_size(BLK_T_Q4_K, 768), 3 * sizeof(struct blk_q8_K));
    ck_assert_uint_eq(kern_act_size(BLK_T_Q4_K, 32), 0);
    /* activation-only types dequantize but never multiply */
    float back[768];
    ck_assert_int_eq(kern_dequant_row(BLK_T_Q8_K, bk, back, 768), 0);
    ck_assert(back[17] == bk[0].d * -127.0f);
    ck_assert(!kern_type_supported(BLK_T_Q8_1));
    /* unsupported products fill NaN instead of failing silently */
    float y[4];
    kern_matvec(NULL, BLK_T_Q8_K, bk, 1, 256, bk, y);
    ck_assert(isnan(y[0]));
}
END_TEST

/* softmax / SiLU / weighted sum: close to the float64 math, masks and padding respected */
START_TEST(test_softmax_silu_wsum)
{
    float x[300], p[300], ref[300];
    for (int rep = 0; rep < 50; rep++) {
        size_t n = 1 + (size_t)(rep * 7) % 280, n_pad = rep % 2 ? 256 : n + (size_t)(rep % 9);
        if (n_pad < n) n_pad = n;
        for (size_t i = 0; i < n; i++) x[i] = (rep % 3 == 0 ? 20.0f : 2.0f) * rng_gauss();
        if (rep % 4 == 0)
            for (size_t i = 0; i < n / 2; i++) x[i] = -INFINITY; /* masked front (SWA) */
        x[n - 1] = 0.5f;
        for (size_t i = n; i < 300; i++) x[i] = 12345.0f; /* must not be read or written */
        double mx = -INFINITY, sum = 0;
        for (size_t i = 0; i < n; i++) mx = fmax(mx, x[i]);
        for (size_t i = 0; i < n; i++) sum += exp((double)x[i] - mx);
        for (size_t i = 0; i < n; i++) ref[i] = (float)(exp((double)x[i] - mx) / sum);
        memcpy(p, x, sizeof p);
        kern_softmax_f32(p, n, n_pad);
        double tot = 0;
        for (size_t i = 0; i < n; i++) {
            /* exp's own error (< 2 ulp), the rounding of x - max (relative |x - max| * 2^-24 in
             * the result) and of the sum and scale */
            double tol = isinf(x[i]) ? 0.0 : ref[i] * (5e-7 + fabs((double)x[i] - mx) * 1.2e-7) + 1e-12;
            ck_assert_msg(fabs(p[i] - ref[i]) <= tol, "softmax %zu/%zu: %.9g vs %.9g", i, n, (double)p[i], (double)ref[i]);
            if (isinf(x[i])) ck_assert(p[i] == 0.0f);
            tot += p[i];
        }
        ck_assert(fabs(tot - 1.0) < 1e-5);
        for (size_t i = n; i < 300; i++) ck_assert(p[i] == 12345.0f);
    }
    /* silu and swiglu: x*sigmoid(x) to a few ulps, including large |x| and the scalar tail */
    float g[37], y[37], y2[37];
    for (int j = 0; j < 37; j++) {
        x[j] = j < 4 ? (float)(j * 40 - 90) : 4.0f * rng_gauss();
        g[j] = rng_gauss();
    }
    kern_silu_f32(y, x, 37);
    kern_swiglu_f32(y2, x, g, 37);
    for (int j = 0; j < 37; j++) {
        double want = (double)x[j] / (1.0 + exp(-(double)x[j]));
        ck_assert_msg(fabs(y[j] - want) <= 4e-7 * fabs(want) + 1e-30, "silu(%g) = %g, want %g", (double)x[j], (double)y[j], want);
        ck_assert(y2[j] == y[j] * g[j]);
    }
    /* weighted sum over cells t of a transposed, blocked V (2 blocks of 32 cells; gaps between
     * dims and blocks hold NaN and are never read): both orders close to float64, padding ignored */
    enum { T = 45, D = 12, BLK = 32, DS = BLK + 2, BS = D * DS + 5 };
    float v[2 * BS], w[T], out[D];
    struct kern_vt vt = {v, DS, BLK, BS};
    for (int i = 0; i < 2 * BS; i++) v[i] = NAN;
    for (int t = 0; t < T; t++) {
        w[t] = t < 5 ? 0.0f : (float)rng_unif();
        for (int d = 0; d < D; d++) v[(t / BLK) * BS + d * DS + t % BLK] = rng_gauss();
    }
#define VCELL(d, t) v[((t) / BLK) * BS + (d) * DS + (t) % BLK]
    for (unsigned order = 0; order < 2; order++) {
        kern_wsum_f32(out, w, &vt, T, 256, D, order);
        for (int d = 0; d < D; d++) {
            double want = 0, mag = 0;
            for (int t = 0; t < T; t++) {
                want += (double)w[t] * VCELL(d, t);
                mag += fabs((double)w[t] * VCELL(d, t));
            }
            ck_assert(fabs(out[d] - want) <= 1e-6 * mag);
        }
    }
#undef VCELL
    /* a block that is not a multiple of 32 cells would split the kernels' groups: NaN, not garbage */
    struct kern_vt bad = {v, DS, 48, BS};
    kern_wsum_f32(out, w, &bad, T, 256, D, KERN_ORDER_GEMM);
    for (int d = 0; d < D; d++) ck_assert(isnan(out[d]));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* known answers from the shared model files                                                  */

struct kat {
    const char *suffix;
    uint32_t type;
    double max_err; /* max |dequant - f32| over the tensor */
};

/* Bounds are ~1.5-2x the measured errors (weights ~N(0, 0.02), |w| up to ~0.1); a wrong bit
 * layout gives errors of the order of the weights themselves. The RMS bound is max_err/4. */
static const struct kat k_kats[] = {
    {"F16", BLK_T_F16, 5e-5},       {"BF16", BLK_T_BF16, 5e-4},     {"Q8_0", BLK_T_Q8_0, 0.001},
    {"Q4_0", BLK_T_Q4_0, 0.011},    {"Q4_1", BLK_T_Q4_1, 0.008},    {"Q5_0", BLK_T_Q5_0, 0.006},
    {"Q5_1", BLK_T_Q5_1, 0.004},    {"Q2_K", BLK_T_Q2_K, 0.04},     {"Q3_K", BLK_T_Q3_K, 0.02},
    {"Q4_K", BLK_T_Q4_K, 0.01},     {"Q5_K", BLK_T_Q5_K, 0.005},    {"Q6_K", BLK_T_Q6_K, 0.0025},
    {"IQ4_NL", BLK_T_IQ4_NL, 0.01}, {"IQ4_XS", BLK_T_IQ4_XS, 0.01},
};
#define N_KATS ((int)(sizeof k_kats / sizeof k_kats[0]))

static bool open_model(const char *suffix, struct gguf_ctx *ctx)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/synth512-llama-d256-%s.gguf", suffix);
    struct err_info ei = {0};
    int rc = gguf_open(tutil_shared(rel), ctx, &ei);
    if (rc != 0) fprintf(stderr, "check_kern: cannot open %s: %s\n", tutil_shared(rel), ei.msg);
    return rc == 0;
}

START_TEST(test_known_answer)
{
    const struct kat *k = &k_kats[_i];
    struct gguf_ctx f32 = {0}, q = {0};
    ck_assert_msg(open_model("F32", &f32), "fixtures missing: set LMPIPE_SHARED");
    ck_assert(open_model(k->suffix, &q));
    const char *names[] = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output.weight"};
    for (int t = 0; t < 3; t++) {
        const struct gguf_tensor *tf = gguf_find_tensor(&f32, names[t]);
        const struct gguf_tensor *tq = gguf_find_tensor(&q, names[t]);
        ck_assert(tf && tq);
        ck_assert_uint_eq(tq->type, k->type);
        ck_assert_uint_eq(tf->type, BLK_T_F32);
        size_t ncols = tq->ne[0], nrows = tq->ne[1];
        size_t rb = blk_row_size(tq->type, ncols);
        float *row = malloc(ncols * 4);
        ck_assert(row);
        double emax = 0, esq = 0;
        for (size_t r = 0; r < nrows; r++) {
            ck_assert_int_eq(kern_dequant_row(tq->type, (const uint8_t *)tq->data + r * rb, row, ncols), 0);
            const float *ref = (const float *)tf->data + r * ncols;
            for (size_t i = 0; i < ncols; i++) {
                double e = fabs((double)row[i] - ref[i]);
                emax = fmax(emax, e);
                esq += e * e;
            }
        }
        double rms = sqrt(esq / (double)(nrows * ncols));
        if (getenv("KERN_KAT_VERBOSE"))
            fprintf(stderr, "KAT %-6s %-22s max %.3g rms %.3g\n", k->suffix, names[t], emax, rms);
        ck_assert_msg(emax <= k->max_err, "%s %s: max err %g > %g (rms %g)", k->suffix, names[t], emax, k->max_err, rms);
        ck_assert_msg(rms <= k->max_err / 4, "%s %s: rms err %g > %g", k->suffix, names[t], rms, k->max_err / 4);
        /* the fused dot on real rows agrees with the dequantized dot */
        float *x = malloc(ncols * 4);
        double *ad = malloc(ncols * 8);
        void *act = malloc(kern_act_size(tq->type, ncols));
        ck_assert(x && ad && act);
        for (size_t i = 0; i < ncols; i++) x[i] = rng_gauss();
        kern_act_prepare(tq->type, x, act, ncols);
        act_dequant(tq->type, act, ad, ncols);
        for (size_t r = 0; r < nrows; r += 37) {
            const void *wr = (const uint8_t *)tq->data + r * rb;
            kern_dequant_row(tq->type, wr, row, ncols);
            double ref, mag;
            ref_dot(tq->type, wr, row, act, ad, ncols, &ref, &mag);
            float got = kern_vec_dot(tq->type, wr, act, ncols);
            ck_assert_msg(fabs(got - ref) <= 1e-5 * mag, "%s row %zu: %g vs %g", k->suffix, r, (double)got, ref);
        }
        free(x);
        free(ad);
        free(act);
        free(row);
    }
    gguf_free(&q);
    gguf_free(&f32);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* thread pool                                                                                */

struct slots {
    atomic_int *count; /* [n] */
    int n;
};

static void slot_task(void *arg, int task, int n_tasks)
{
    struct slots *s = arg;
    ck_assert_int_eq(n_tasks, s->n);
    atomic_fetch_add_explicit(&s->count[task], 1, memory_order_relaxed);
}

START_TEST(test_pool_tasks_once)
{
    static const int threads[] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
        struct kern_pool *pool = NULL;
        ck_assert_int_eq(kern_pool_create(&pool, threads[ti]), 0);
        ck_assert_int_eq(kern_pool_threads(pool), threads[ti]);
        struct slots s = {calloc(1000, sizeof(atomic_int)), 1000};
        ck_assert(s.count);
        kern_pool_run(pool, slot_task, &s, 1000);
        for (int i = 0; i < 1000; i++) ck_assert_int_eq(atomic_load(&s.count[i]), 1);
        /* many small jobs back to back: the job hand-over is where races would be */
        for (int rep = 0; rep < 2000; rep++) {
            int n = 1 + rep % 7;
            s.n = n;
            for (int i = 0; i < n; i++) atomic_store(&s.count[i], 0);
            kern_pool_run(pool, slot_task, &s, n);
            for (int i = 0; i < n; i++) ck_assert_int_eq(atomic_load(&s.count[i]), 1);
        }
        free(s.count);
        kern_pool_destroy(pool);
    }
    /* NULL pool runs inline; destroy(NULL) is fine; bad sizes are rejected */
    struct slots s = {calloc(10, sizeof(atomic_int)), 10};
    kern_pool_run(NULL, slot_task, &s, 10);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(atomic_load(&s.count[i]), 1);
    free(s.count);
    kern_pool_destroy(NULL);
    ck_assert_int_eq(kern_pool_threads(NULL), 1);
    struct kern_pool *p = (struct kern_pool *)1;
    ck_assert_int_eq(kern_pool_create(&p, 0), ERR_INVALID);
    ck_assert_ptr_null(p);
}
END_TEST

struct nested {
    struct kern_pool *pool;
    struct slots inner[8];
};

static void nested_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    struct nested *nt = arg;
    kern_pool_run(nt->pool, slot_task, &nt->inner[task], nt->inner[task].n); /* runs inline */
}

START_TEST(test_pool_nested)
{
    struct nested nt;
    ck_assert_int_eq(kern_pool_create(&nt.pool, 3), 0);
    for (int i = 0; i < 8; i++) nt.inner[i] = (struct slots){calloc(50, sizeof(atomic_int)), 50};
    kern_pool_run(nt.pool, nested_task, &nt, 8);
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < 50; j++) ck_assert_int_eq(atomic_load(&nt.inner[i].count[j]), 1);
        free(nt.inner[i].count);
    }
    kern_pool_destroy(nt.pool);
}
END_TEST

/* Workers fall asleep between jobs spaced out in time, and must wake up for the next one. */
START_TEST(test_pool_sleep_wake)
{
    struct kern_pool *pool = NULL;
    ck_assert_int_eq(kern_pool_create(&pool, 4), 0);
    struct slots s = {calloc(64, sizeof(atomic_int)), 64};
    for (int rep = 0; rep < 3; rep++) {
        struct timespec ts = {0, 30 * 1000 * 1000}; /* longer than the spin phase */
        nanosleep(&ts, NULL);
        for (int i = 0; i < 64; i++) atomic_store(&s.count[i], 0);
        kern_pool_run(pool, slot_task, &s, 64);
        for (int i = 0; i < 64; i++) ck_assert_int_eq(atomic_load(&s.count[i]), 1);
    }
    free(s.count);
    kern_pool_destroy(pool);
}
END_TEST

START_TEST(test_matvec_deterministic)
{
    uint32_t type = k_types[_i];
    const size_t nrows = 101, ncols = blck_of(type) == 256 ? 512 : 256 + (blck_of(type) == 1 ? 8 : 0);
    size_t rb = blk_row_size(type, ncols);
    uint8_t *W = malloc(nrows * rb);
    float *x = malloc(ncols * 4), *y0 = malloc(nrows * 4), *y2 = malloc(nrows * 4), *y3 = malloc(nrows * 4);
    void *act = malloc(kern_act_size(type, ncols));
    ck_assert(W && x && y0 && y2 && y3 && act);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t i = 0; i < ncols; i++) x[i] = 0.02f * rng_gauss();
        ck_assert(make_row(type, x, W + r * rb, ncols));
    }
    for (size_t i = 0; i < ncols; i++) x[i] = rng_gauss();
    kern_act_prepare(type, x, act, ncols);
    struct kern_pool *p2 = NULL, *p3 = NULL;
    ck_assert_int_eq(kern_pool_create(&p2, 2), 0);
    ck_assert_int_eq(kern_pool_create(&p3, 3), 0);
    for (unsigned order = 0; order < 2; order++) {
        kern_matvec_ex(NULL, type, W, nrows, ncols, act, y0, order);
        kern_matvec_ex(p2, type, W, nrows, ncols, act, y2, order);
        kern_matvec_ex(p3, type, W, nrows, ncols, act, y3, order);
        ck_assert(memcmp(y0, y2, nrows * 4) == 0);
        ck_assert(memcmp(y0, y3, nrows * 4) == 0);
        kern_matvec_ex(p3, type, W, nrows, ncols, act, y3, order); /* and again: same bits */
        ck_assert(memcmp(y0, y3, nrows * 4) == 0);
        /* 101 rows: for float types llama.cpp's tinyBLAS declines (rows % 4), so the batched
         * product uses the vec_dot order */
        unsigned eff = blck_of(type) == 1 ? KERN_ORDER_VECDOT : order;
        for (size_t r = 0; r < nrows; r++) {
            float v = kern_vec_dot_ex(type, W + r * rb, act, ncols, eff);
            ck_assert(memcmp(&v, &y0[r], 4) == 0);
        }
        /* the first 100 rows as their own matrix: rows % 4 == 0, the requested order applies */
        kern_matvec_ex(p2, type, W, 100, ncols, act, y2, order);
        for (size_t r = 0; r < 100; r++) {
            float v = kern_vec_dot_ex(type, W + r * rb, act, ncols, order);
            ck_assert(memcmp(&v, &y2[r], 4) == 0);
        }
    }
    kern_matvec(p3, type, W, nrows, ncols, act, y3);
    kern_matvec_ex(NULL, type, W, nrows, ncols, act, y0, KERN_ORDER_GEMM);
    ck_assert(memcmp(y0, y3, nrows * 4) == 0);
    kern_pool_destroy(p2);
    kern_pool_destroy(p3);
    free(W);
    free(x);
    free(y0);
    free(y2);
    free(y3);
    free(act);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Every SIMD ISA against the scalar reference                                                */

/* The ISAs other than scalar that this CPU can run (names from kern_cpu_info; test_supported
 * says which built tiers were skipped). */
static int simd_isas(const char *out[KERN_MAX_ISAS])
{
    struct kern_cpu_info ci;
    kern_cpu_info(&ci);
    int n = 0;
    for (int i = 0; i < ci.n_isa; i++)
        if (ci.isa_available[i] && strcmp(ci.isa[i], "scalar") != 0) out[n++] = ci.isa[i];
    return n;
}

/* Equal bits, or NaN on both sides (NaN payloads are not part of the contract). */
static bool same_float(float a, float b)
{
    return fbits(a) == fbits(b) || (isnan(a) && isnan(b));
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Lengths for the ISA comparison: odd block counts (1, 3, 7, 9: odd tails of every unrolled or
 * paired loop, IQ4_NL's alternating accumulators), even ones, and for the float types ragged
 * lengths around the 8- and 32-element steps. */
static size_t isa_len(uint32_t type, int k)
{
    static const size_t flen[] = {1, 3, 7, 8, 9, 31, 32, 33, 45, 63, 64, 100, 257, 1000};
    static const size_t nblk[] = {1, 2, 3, 7, 9, 16};
    if (blck_of(type) == 1) return k < (int)(sizeof flen / sizeof flen[0]) ? flen[k] : 0;
    return k < (int)(sizeof nblk / sizeof nblk[0]) ? nblk[k] * (blck_of(type) < 32 ? 32 : blck_of(type)) : 0;
}

/* Activation values for pattern `rep`: plain gaussians, tiny values with a zero block, large
 * values with equal-magnitude extremes of both signs (Q8_K takes the sign of the first one),
 * exact half-way points of the 8-bit grid, and (float types) specials: inf, subnormals,
 * values that round to inf in f16, NaN. */
static void isa_act_values(uint32_t type, int rep, float *a, size_t n)
{
    size_t ablk = act_type_of(type) == BLK_T_Q8_K ? 256 : act_type_of(type) == BLK_T_F32 ||
                                                                   act_type_of(type) == BLK_T_F16 ||
                                                                   act_type_of(type) == BLK_T_BF16
                                                               ? 1
                                                               : 32;
    for (size_t i = 0; i < n; i++) a[i] = rng_gauss() * (rep == 1 ? 1e-3f : rep == 2 ? 37.0f : 1.0f);
    if (rep == 1)
        for (size_t i = 0; i < ablk && i < n; i++) a[i] = 0.0f;
    if (rep == 2 && n >= 8) {
        size_t j = n > 20 ? 5 + rng_next() % (n - 10) : 2;
        a[j] = (rng_next() & 1) ? 400.0f : -400.0f;
        a[j + 3] = -a[j];
    }
    if (rep == 3) { /* amax = 127 * 2 / 2: x * 127 / amax = k / 2, half of them ties */
        for (size_t i = 0; i < n; i++) a[i] = (float)((int)(rng_next() % 255) - 127) * 0.5f;
        for (size_t b = 0; b < n; b += ablk > 1 ? ablk : 32) a[b] = 63.5f;
    }
    if (rep == 4 && ablk == 1) {
        static const float sp[] = {INFINITY, -INFINITY, 1e-40f, -3e-39f, 65520.0f, -65519.0f, 0x1.0p-25f, 1e38f, NAN};
        for (size_t i = 0; i < n; i += 5) a[i] = sp[(i / 5) % (sizeof sp / sizeof sp[0])];
    }
}

START_TEST(test_isa_matches_reference)
{
    uint32_t type = k_types[_i];
    const char *isas[KERN_MAX_ISAS];
    int n_isa = simd_isas(isas);
    if (n_isa == 0) {
        fprintf(stderr, "check_kern: no SIMD ISA available here, nothing to compare for %s\n", blk_type_name(type));
        return;
    }
    const char *keep = kern_isa_name();
    for (int k = 0; isa_len(type, k); k++) {
        size_t n = isa_len(type, k);
        size_t rb = blk_row_size(type, n);
        for (int rep = 0; rep < 5; rep++) {
            float *x = xmalloc(n * 4), *a = xmalloc(n * 4);
            for (size_t i = 0; i < n; i++) x[i] = 0.02f * rng_gauss() * (rep == 2 ? 100.0f : 1.0f);
            isa_act_values(type, rep, a, n);
            void *row = xmalloc(rb);
            ck_assert(make_row(type, x, row, n));
            ck_assert_int_eq(kern_isa_select("scalar"), 0);
            size_t asz = kern_act_size(type, n);
            ck_assert_uint_gt(asz, 0);
            void *act0 = xmalloc(asz), *act1 = xmalloc(asz);
            float *d0 = xmalloc(n * 4), *d1 = xmalloc(n * 4);
            kern_act_prepare(type, a, act0, n);
            float g0 = kern_vec_dot_ex(type, row, act0, n, KERN_ORDER_GEMM);
            float v0 = kern_vec_dot_ex(type, row, act0, n, KERN_ORDER_VECDOT);
            ck_assert_int_eq(kern_dequant_row(type, row, d0, n), 0);
            float f0 = 0, fg0 = 0;
            if (type == BLK_T_F32) {
                f0 = kern_dot_f32(x, a, n);
                fg0 = kern_dot_f32_gemm(x, a, n);
            }
            for (int i = 0; i < n_isa; i++) {
                ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                kern_act_prepare(type, a, act1, n);
                ck_assert_msg(memcmp(act0, act1, asz) == 0, "%s %s act n=%zu rep=%d differs", isas[i],
                              blk_type_name(type), n, rep);
                float g1 = kern_vec_dot_ex(type, row, act0, n, KERN_ORDER_GEMM);
                float v1 = kern_vec_dot_ex(type, row, act0, n, KERN_ORDER_VECDOT);
                ck_assert_msg(same_float(g0, g1), "%s %s gemm n=%zu rep=%d: %.9g vs ref %.9g", isas[i],
                              blk_type_name(type), n, rep, (double)g1, (double)g0);
                ck_assert_msg(same_float(v0, v1), "%s %s vecdot n=%zu rep=%d: %.9g vs ref %.9g", isas[i],
                              blk_type_name(type), n, rep, (double)v1, (double)v0);
                ck_assert_int_eq(kern_dequant_row(type, row, d1, n), 0);
                ck_assert_msg(memcmp(d0, d1, n * 4) == 0, "%s %s dequant n=%zu", isas[i], blk_type_name(type), n);
                if (type == BLK_T_F32) {
                    ck_assert(same_float(f0, kern_dot_f32(x, a, n)));
                    ck_assert(same_float(fg0, kern_dot_f32_gemm(x, a, n)));
                }
            }
            free(x);
            free(a);
            free(row);
            free(act0);
            free(act1);
            free(d0);
            free(d1);
        }
    }
    /* every activation type also on its own, over lengths that are not whole weight rows */
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* The attention / FFN helpers of every SIMD ISA against the reference: weighted sums over odd
 * cell counts, paddings and head sizes in both orders, softmax with masked cells and padding,
 * SiLU / SwiGLU over ragged lengths and the exp range limits. */
START_TEST(test_isa_helpers_match_reference)
{
    const char *isas[KERN_MAX_ISAS];
    int n_isa = simd_isas(isas);
    if (n_isa == 0) return;
    const char *keep = kern_isa_name();
    static const size_t ns[] = {1, 5, 8, 13, 31, 33, 40, 100};
    static const size_t dims[] = {1, 7, 8, 12, 64, 67};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        size_t n = ns[ni];
        size_t pads[3] = {n, (n + 7) & ~(size_t)7, 256};
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            /* transposed V in blocks of 32 cells (several blocks for n > 32) and of 128 (one);
             * dims and blocks are separated by NaN gaps, and the allocation ends right after the
             * last cell, so reading a padding cell shows up as NaN or as an ASan error */
            size_t dim = dims[di], blk = (di % 2) ? 128 : 32, ds = blk + 2, bs = dim * ds + 5;
            size_t nv = ((n - 1) / blk) * bs + (dim - 1) * ds + (n - 1) % blk + 1;
            float *pw = xmalloc(n * 4), *v = xmalloc(nv * 4), *o0 = xmalloc(dim * 4), *o1 = xmalloc(dim * 4);
            struct kern_vt vt = {v, ds, blk, bs};
            for (size_t t = 0; t < n; t++) pw[t] = t % 7 == 3 ? 0.0f : (float)rng_unif();
            for (size_t i = 0; i < nv; i++) v[i] = NAN;
            for (size_t t = 0; t < n; t++)
                for (size_t d = 0; d < dim; d++) v[(t / blk) * bs + d * ds + t % blk] = rng_gauss();
            for (int pi = 0; pi < 3; pi++)
                for (unsigned order = 0; order < 2; order++) {
                    ck_assert_int_eq(kern_isa_select("scalar"), 0);
                    kern_wsum_f32(o0, pw, &vt, n, pads[pi], dim, order);
                    for (size_t d = 0; d < dim; d++) ck_assert_msg(!isnan(o0[d]), "reference read a gap cell");
                    for (int i = 0; i < n_isa; i++) {
                        ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                        kern_wsum_f32(o1, pw, &vt, n, pads[pi], dim, order);
                        ck_assert_msg(memcmp(o0, o1, dim * 4) == 0, "%s wsum n=%zu pad=%zu dim=%zu order=%u", isas[i], n,
                                      pads[pi], dim, order);
                    }
                }
            free(pw);
            free(v);
            free(o0);
            free(o1);
        }
        for (int pi = 0; pi < 3; pi++) {
            float *x0 = xmalloc(n * 4), *x1 = xmalloc(n * 4), *g = xmalloc(n * 4), *y0 = xmalloc(n * 4), *y1 = xmalloc(n * 4);
            for (size_t i = 0; i < n; i++) {
                x0[i] = i % 5 == 2 ? -INFINITY : 4.0f * rng_gauss();
                g[i] = rng_gauss();
            }
            if (n > 3) x0[n - 1] = 150.0f; /* others far below: exp underflow paths */
            memcpy(x1, x0, n * 4);
            ck_assert_int_eq(kern_isa_select("scalar"), 0);
            kern_softmax_f32(x0, n, pads[pi]);
            for (int i = 0; i < n_isa; i++) {
                float *x2 = xmalloc(n * 4);
                memcpy(x2, x1, n * 4);
                ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                kern_softmax_f32(x2, n, pads[pi]);
                ck_assert_msg(memcmp(x0, x2, n * 4) == 0, "%s softmax n=%zu pad=%zu", isas[i], n, pads[pi]);
                free(x2);
            }
            for (size_t i = 0; i < n; i++) x1[i] = i % 9 == 4 ? (i % 2 ? 95.0f : -95.0f) : 6.0f * rng_gauss();
            ck_assert_int_eq(kern_isa_select("scalar"), 0);
            kern_swiglu_f32(y0, x1, g, n);
            for (int i = 0; i < n_isa; i++) {
                ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                kern_swiglu_f32(y1, x1, g, n);
                ck_assert_msg(memcmp(y0, y1, n * 4) == 0, "%s swiglu n=%zu", isas[i], n);
            }
            ck_assert_int_eq(kern_isa_select("scalar"), 0);
            kern_silu_f32(y0, x1, n);
            for (int i = 0; i < n_isa; i++) {
                ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                kern_silu_f32(y1, x1, n);
                ck_assert_msg(memcmp(y0, y1, n * 4) == 0, "%s silu n=%zu", isas[i], n);
            }
            free(x0);
            free(x1);
            free(g);
            free(y0);
            free(y1);
        }
    }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* kern_dot_f32_rows == kern_dot_f32 row by row, bit for bit, for the reference and every SIMD
 * ISA: head sizes with and without a tail past the 32-element blocks, row counts around the
 * 8-key groups, keys strided like the cache (a gap between rows filled with NaN, never read). */
START_TEST(test_dot_f32_rows)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = simd_isas(isas);
    isas[n_isa++] = "scalar";
    const char *keep = kern_isa_name();
    static const size_t ns[] = {1, 7, 32, 33, 64, 67, 100, 128};
    static const size_t rows[] = {1, 7, 8, 9, 16, 23};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
            size_t n = ns[ni], nr = rows[ri], ks = n + 5, nk = (nr - 1) * ks + n;
            float *q = xmalloc(n * 4), *k = xmalloc(nk * 4), *o = xmalloc(nr * 4);
            for (size_t i = 0; i < n; i++) q[i] = rng_gauss();
            for (size_t i = 0; i < nk; i++) k[i] = i % ks < n ? rng_gauss() : NAN;
            for (int i = 0; i < n_isa; i++) {
                ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                kern_dot_f32_rows(o, q, k, ks, n, nr);
                for (size_t r = 0; r < nr; r++) {
                    float want = kern_dot_f32(q, k + r * ks, n);
                    ck_assert_msg(memcmp(&o[r], &want, 4) == 0, "%s n=%zu rows=%zu row %zu: %a != %a", isas[i], n, nr, r,
                                  (double)o[r], (double)want);
                }
            }
            free(q);
            free(k);
            free(o);
        }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* attention over F16 and Q8_0 caches (kern_attn.c)                                           */

/* The SIMD ISAs this CPU can run, then "scalar". */
static int isas_and_scalar(const char *out[KERN_MAX_ISAS + 1])
{
    int n = simd_isas(out);
    out[n++] = "scalar";
    return n;
}

static uint16_t rng_half(void)
{
    return util_f32_to_fp16(rng_gauss());
}

/* kern_dot_f16_rows == kern_vec_dot_ex(BLK_T_F16, row, q16) row by row in both orders, bit for
 * bit, for the reference and every SIMD ISA (that dot is the one checked against llama.cpp's
 * ggml_vec_dot_f16 / tinyBLAS): head sizes around the 8- and 32-element steps, row counts around
 * the 8-key groups, rows strided like the cache with NaN halves in the gaps (never read). */
START_TEST(test_dot_f16_rows)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = isas_and_scalar(isas);
    const char *keep = kern_isa_name();
    static const size_t ns[] = {1, 7, 8, 24, 32, 33, 64, 67, 100, 128};
    static const size_t rows[] = {1, 7, 8, 9, 16, 23};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
            size_t n = ns[ni], nr = rows[ri], ks = n + 3, nk = (nr - 1) * ks + n;
            uint16_t *q = xmalloc(n * 2), *k = xmalloc(nk * 2);
            float *o = xmalloc(nr * 4);
            for (size_t i = 0; i < n; i++) q[i] = rng_half();
            for (size_t i = 0; i < nk; i++) k[i] = i % ks < n ? rng_half() : 0x7e00;
            for (int i = 0; i < n_isa; i++)
                for (unsigned order = 0; order < 2; order++) {
                    ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                    kern_dot_f16_rows(o, q, k, ks, n, nr, order);
                    for (size_t r = 0; r < nr; r++) {
                        float want = kern_vec_dot_ex(BLK_T_F16, k + r * ks, q, n, order);
                        ck_assert_msg(memcmp(&o[r], &want, 4) == 0, "%s n=%zu rows=%zu order=%u row %zu: %a != %a",
                                      isas[i], n, nr, order, r, (double)o[r], (double)want);
                    }
                }
            free(q);
            free(k);
            free(o);
        }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* kern_wsum_f16 over a transposed, blocked F16 V: for every dim the same bits as the F16 dot of
 * that dim's cells with the probabilities, padded with zeros to n_pad (llama.cpp multiplies the
 * whole padded row; zero weights add nothing), in the order tinyBLAS' m % 4 rule picks; the same
 * bits from every ISA; odd cell counts, paddings, head sizes, blocks of 32 (several) and 128, gaps
 * of NaN halves that must never be read, exact-size allocations for ASan. */
START_TEST(test_wsum_f16)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = isas_and_scalar(isas);
    const char *keep = kern_isa_name();
    static const size_t ns[] = {1, 5, 8, 13, 31, 33, 40, 100, 300};
    static const size_t dims[] = {1, 7, 8, 12, 64, 67};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        size_t n = ns[ni];
        size_t pads[3] = {n, (n + 7) & ~(size_t)7, (n + 255) / 256 * 256};
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            size_t dim = dims[di], blk = (di % 2) ? 128 : 32, ds = blk + 2, bs = dim * ds + 5;
            size_t nv = ((n - 1) / blk) * bs + (dim - 1) * ds + (n - 1) % blk + 1;
            uint16_t *p = xmalloc(n * 2), *v = xmalloc(nv * 2), *row = xmalloc(pads[2] * 2), *pp = xmalloc(pads[2] * 2);
            float *o = xmalloc(dim * 4);
            struct kern_vt_f16 vt = {v, ds, blk, bs};
            for (size_t t = 0; t < n; t++) p[t] = t % 7 == 3 ? 0 : util_f32_to_fp16((float)rng_unif());
            for (size_t i = 0; i < nv; i++) v[i] = 0x7e00;
            for (size_t t = 0; t < n; t++)
                for (size_t d = 0; d < dim; d++) v[(t / blk) * bs + d * ds + t % blk] = rng_half();
            memset(pp, 0, pads[2] * 2);
            memcpy(pp, p, n * 2);
            for (int pi = 0; pi < 3; pi++)
                for (unsigned order = 0; order < 2; order++)
                    for (int i = 0; i < n_isa; i++) {
                        ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                        kern_wsum_f16(o, p, &vt, n, pads[pi], dim, order);
                        unsigned ord = order == KERN_ORDER_GEMM && dim % 4 == 0 ? KERN_ORDER_GEMM : KERN_ORDER_VECDOT;
                        for (size_t d = 0; d < dim; d++) {
                            memset(row, 0, pads[2] * 2);
                            for (size_t t = 0; t < n; t++) row[t] = v[(t / blk) * bs + d * ds + t % blk];
                            float want = kern_vec_dot_ex(BLK_T_F16, row, pp, pads[pi], ord);
                            ck_assert_msg(memcmp(&o[d], &want, 4) == 0, "%s wsum_f16 n=%zu pad=%zu dim=%zu order=%u d=%zu: %a != %a",
                                          isas[i], n, pads[pi], dim, order, d, (double)o[d], (double)want);
                        }
                    }
            free(p);
            free(v);
            free(row);
            free(pp);
            free(o);
        }
    }
    /* a block that is not a multiple of 32 cells: NaN, not garbage */
    uint16_t v[64] = {0}, p[8] = {0};
    float o[2];
    struct kern_vt_f16 bad = {v, 8, 48, 16};
    kern_wsum_f16(o, p, &bad, 8, 8, 2, KERN_ORDER_GEMM);
    ck_assert(isnan(o[0]) && isnan(o[1]));
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* Flash attention of one head over a Q8_0 cache: the reference against float64 math on the same
 * quantized numbers (softmax of scale * dequant(k).dequant(q8), times dequant(v)), and every ISA
 * against the reference bit for bit; visible-cell counts 0, 1, 2 and odd ones, head sizes 32..128,
 * rows strided like the cache with NaN-scaled blocks in the gaps (never read), a huge score that
 * makes every earlier weight vanish, and a head size that does not fit Q8_0 blocks (NaN). */
START_TEST(test_fattn_q8_0)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = isas_and_scalar(isas);
    const char *keep = kern_isa_name();
    static const size_t ns[] = {0, 1, 2, 5, 31, 33, 100};
    static const size_t dims[] = {32, 64, 96, 128};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            size_t n = ns[ni], dim = dims[di], nb = dim / 32, rs = (nb + 1) * 34; /* one gap block per row */
            uint8_t *k = xmalloc(n ? n * rs : 1), *v = xmalloc(n ? n * rs : 1), *q8 = xmalloc(nb * 34);
            float *q = xmalloc(dim * 4), *o0 = xmalloc(dim * 4), *o1 = xmalloc(dim * 4), *kf = xmalloc(dim * 4),
                  *qf = xmalloc(dim * 4), *vf = xmalloc(dim * 4);
            for (size_t t = 0; t < n; t++)
                for (size_t b = 0; b <= nb; b++) {
                    struct blk_q8_0 bk, bv;
                    bk.d = b < nb ? util_f32_to_fp16(0.02f + 0.05f * (float)rng_unif()) : 0x7e00;
                    bv.d = b < nb ? util_f32_to_fp16(0.01f + 0.02f * (float)rng_unif()) : 0x7e00;
                    for (int j = 0; j < 32; j++) {
                        bk.qs[j] = (int8_t)(rng_byte() % 255 - 127);
                        bv.qs[j] = (int8_t)(rng_byte() % 255 - 127);
                    }
                    memcpy(k + t * rs + b * 34, &bk, 34);
                    memcpy(v + t * rs + b * 34, &bv, 34);
                }
            for (size_t d = 0; d < dim; d++) q[d] = rng_gauss();
            if (n > 3) q[0] = 40.0f; /* a dominating score somewhere: exp underflow of others */
            kern_act_prepare(BLK_T_Q8_0, q, q8, dim);
            float scale = 1.0f / sqrtf((float)dim);
            ck_assert_int_eq(kern_isa_select("scalar"), 0);
            kern_fattn_q8_0(o0, q8, k, rs, v, rs, n, dim, scale);
            /* float64 on the same numbers */
            ck_assert_int_eq(kern_dequant_row(BLK_T_Q8_0, q8, qf, dim), 0);
            double *s = xmalloc((n ? n : 1) * sizeof(double)), mx = -INFINITY, sum = 0;
            for (size_t t = 0; t < n; t++) {
                ck_assert_int_eq(kern_dequant_row(BLK_T_Q8_0, k + t * rs, kf, dim), 0);
                double acc = 0;
                for (size_t d = 0; d < dim; d++) acc += (double)kf[d] * qf[d];
                s[t] = acc * scale;
                mx = fmax(mx, s[t]);
            }
            for (size_t t = 0; t < n; t++) sum += exp(s[t] - mx);
            for (size_t d = 0; d < dim; d++) {
                double want = 0, mag = 0;
                for (size_t t = 0; t < n; t++) {
                    ck_assert_int_eq(kern_dequant_row(BLK_T_Q8_0, v + t * rs, vf, dim), 0);
                    double w = exp(s[t] - mx) / sum;
                    want += w * vf[d];
                    mag += fabs(w * vf[d]);
                }
                /* float rounding of the running sums and rescalings (~1 ulp per cell) and of the
                 * float scores (~1 ulp per 8 products) */
                double tol = 1e-7 + mag * 1.2e-7 * (double)(n + dim / 8 + 8);
                ck_assert_msg(fabs(o0[d] - want) <= tol, "fattn n=%zu dim=%zu d=%zu: %.9g vs %.9g", n, dim, d,
                              (double)o0[d], want);
            }
            for (int i = 0; i < n_isa; i++) {
                ck_assert_int_eq(kern_isa_select(isas[i]), 0);
                kern_fattn_q8_0(o1, q8, k, rs, v, rs, n, dim, scale);
                ck_assert_msg(memcmp(o0, o1, dim * 4) == 0, "%s fattn n=%zu dim=%zu", isas[i], n, dim);
            }
            free(s);
            free(k);
            free(v);
            free(q8);
            free(q);
            free(o0);
            free(o1);
            free(kf);
            free(qf);
            free(vf);
        }
    float o[48];
    uint8_t z[34 * 2] = {0};
    kern_fattn_q8_0(o, z, z, 34, z, 34, 1, 48, 1.0f);
    for (int d = 0; d < 48; d++) ck_assert(isnan(o[d]));
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* The Walsh-Hadamard rotation: the explicit orthonormal matrix in float64 (H[i][j] = (-1)^popcount(i & j)
 * / sqrt(n)), and applied twice it returns the input (H^2 = I) to float rounding. */
START_TEST(test_fwht)
{
    for (size_t n = 1; n <= 256; n *= 2) {
        float x[256], y[256];
        for (size_t i = 0; i < n; i++) x[i] = y[i] = rng_gauss();
        kern_fwht_f32(y, n);
        for (size_t i = 0; i < n; i++) {
            double want = 0;
            for (size_t j = 0; j < n; j++) want += (__builtin_popcountll(i & j) % 2 ? -1.0 : 1.0) * x[j];
            want /= sqrt((double)n);
            ck_assert_msg(fabs(y[i] - want) <= 1e-6 * (1 + fabs(want)) * (double)(n > 1 ? n : 1), "n=%zu i=%zu", n, i);
        }
        kern_fwht_f32(y, n);
        for (size_t i = 0; i < n; i++) ck_assert_msg(fabsf(y[i] - x[i]) <= 1e-5f * (1 + fabsf(x[i])), "n=%zu twice", n);
    }
    float a[3] = {1, 2, 3}, b[3] = {1, 2, 3};
    kern_fwht_f32(a, 3); /* not a power of two: untouched */
    ck_assert(memcmp(a, b, sizeof a) == 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* batched attention (kern_attn_*)                                                            */

/* Query counts: one, a pair, odd counts around the kernels' groups of 2 and 4 queries, a GQA
 * group of 8, and more than 16. */
static const size_t k_attn_nq[] = {1, 2, 3, 5, 8, 9, 17};
#define N_ATTN_NQ (sizeof k_attn_nq / sizeof k_attn_nq[0])

/* n_q rows of n floats, each its own exact-size allocation (ASan catches a read past a row);
 * fp16 = 1: values that are exactly halves, and their halves in h[i] when h is not NULL. */
static float **attn_rows(size_t n_q, size_t n, int fp16, uint16_t ***h)
{
    float **r = xmalloc(n_q * sizeof *r);
    if (h) *h = xmalloc(n_q * sizeof **h);
    for (size_t i = 0; i < n_q; i++) {
        r[i] = xmalloc(n * 4);
        if (h) (*h)[i] = xmalloc(n * 2);
        for (size_t t = 0; t < n; t++) {
            uint16_t v = rng_half();
            r[i][t] = fp16 ? util_fp16_to_f32(v) : rng_gauss();
            if (h) (*h)[i][t] = v;
        }
    }
    return r;
}

static void attn_rows_free(void *rows, size_t n_q)
{
    void **r = rows;
    for (size_t i = 0; r && i < n_q; i++) free(r[i]);
    free(r);
}

/* nr keys of n elements at stride ks, as floats and as halves, NaN in the gaps (never read) and
 * each allocation ending at the last element. */
static void attn_k_make(size_t n, size_t nr, size_t ks, float **k, uint16_t **k16)
{
    size_t nk = (nr - 1) * ks + n;
    *k = xmalloc(nk * 4);
    *k16 = xmalloc(nk * 2);
    for (size_t i = 0; i < nk; i++) {
        (*k)[i] = i % ks < n ? rng_gauss() : NAN;
        (*k16)[i] = i % ks < n ? rng_half() : 0x7e00;
    }
}

/* kern_attn_qk_f32 == kern_dot_f32 per (query, key), kern_attn_qk_f16 on fp16-valued queries ==
 * kern_dot_f16_rows on their halves in both orders, bit for bit, in every ISA and the reference;
 * on queries that are not halves every ISA gives the reference's bits. Head sizes around the
 * 8/16/32-element steps, key counts around the 8-key blocks, keys strided like the cache with NaN
 * in the gaps (never read). */
START_TEST(test_attn_qk)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = isas_and_scalar(isas);
    const char *keep = kern_isa_name();
    static const size_t ns[] = {1, 7, 8, 16, 24, 32, 33, 64, 67, 128};
    static const size_t rows[] = {1, 7, 8, 9, 16, 23};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
            size_t n = ns[ni], nr = rows[ri], nq = k_attn_nq[(ni + ri) % N_ATTN_NQ];
            size_t ks = n + 5;
            float *k;
            uint16_t *k16, **q16;
            attn_k_make(n, nr, ks, &k, &k16);
            float **q = attn_rows(nq, n, 0, NULL), **qh = attn_rows(nq, n, 1, &q16);
            float **o = attn_rows(nq, nr, 0, NULL), **ref = attn_rows(nq, nr, 0, NULL);
            float *want = xmalloc(nr * 4);
            for (int s = 0; s < n_isa; s++) {
                ck_assert_int_eq(kern_isa_select(isas[s]), 0);
                kern_attn_qk_f32(o, (const float *const *)q, nq, k, ks, n, nr);
                for (size_t i = 0; i < nq; i++)
                    for (size_t r = 0; r < nr; r++) {
                        float w = kern_dot_f32(q[i], k + r * ks, n);
                        ck_assert_msg(fbits(o[i][r]) == fbits(w), "%s qk_f32 n=%zu rows=%zu nq=%zu q%zu key %zu: %a != %a",
                                      isas[s], n, nr, nq, i, r, (double)o[i][r], (double)w);
                    }
                for (unsigned order = 0; order < 2; order++) {
                    kern_attn_qk_f16(o, (const float *const *)qh, nq, k16, ks, n, nr, order);
                    for (size_t i = 0; i < nq; i++) {
                        kern_dot_f16_rows(want, q16[i], k16, ks, n, nr, order);
                        for (size_t r = 0; r < nr; r++)
                            ck_assert_msg(fbits(o[i][r]) == fbits(want[r]),
                                          "%s qk_f16 n=%zu rows=%zu nq=%zu order=%u q%zu key %zu: %a != %a", isas[s], n,
                                          nr, nq, order, i, r, (double)o[i][r], (double)want[r]);
                    }
                    /* queries that are not halves: the reference's fmaf bits */
                    kern_attn_qk_f16(o, (const float *const *)q, nq, k16, ks, n, nr, order);
                    ck_assert_int_eq(kern_isa_select("scalar"), 0);
                    kern_attn_qk_f16(ref, (const float *const *)q, nq, k16, ks, n, nr, order);
                    ck_assert_int_eq(kern_isa_select(isas[s]), 0);
                    for (size_t i = 0; i < nq; i++)
                        for (size_t r = 0; r < nr; r++)
                            ck_assert_msg(fbits(o[i][r]) == fbits(ref[i][r]),
                                          "%s qk_f16 (float q) n=%zu rows=%zu order=%u q%zu key %zu: %a != %a", isas[s],
                                          n, nr, order, i, r, (double)o[i][r], (double)ref[i][r]);
                }
            }
            attn_rows_free(q, nq);
            attn_rows_free(qh, nq);
            attn_rows_free(q16, nq);
            attn_rows_free(o, nq);
            attn_rows_free(ref, nq);
            free(k);
            free(k16);
            free(want);
        }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* The visible cells and paddings of the queries of a batched softmax.V: query i is row i / g of
 * a prompt whose first row sees n0 cells. Padding modes: none (the single-token order's tail),
 * to 8, llama.cpp's 256 per row, and one padding for every row. */
static void attn_pv_shape(size_t nq, size_t g, size_t n0, int pad, size_t *n, size_t *n_pad)
{
    size_t nmax = n0 + (nq - 1) / g;
    for (size_t i = 0; i < nq; i++) {
        n[i] = n0 + i / g;
        n_pad[i] = pad == 0 ? n[i] : pad == 1 ? (n[i] + 7) & ~(size_t)7 : pad == 2 ? (n[i] + 255) / 256 * 256
                                                                          : (nmax + 255) / 256 * 256;
    }
}

/* A transposed V of nmax cells x dim in blocks of blk cells, as floats and as halves: NaN in the
 * gaps between dims and blocks (never read) and each allocation ending at the last cell. */
static void attn_v_make(size_t nmax, size_t dim, size_t blk, struct kern_vt *vt, struct kern_vt_f16 *vt16)
{
    size_t ds = blk + 2, bs = dim * ds + 5;
    size_t nv = ((nmax - 1) / blk) * bs + (dim - 1) * ds + (nmax - 1) % blk + 1;
    float *v = xmalloc(nv * 4);
    uint16_t *v16 = xmalloc(nv * 2);
    for (size_t i = 0; i < nv; i++) {
        v[i] = NAN;
        v16[i] = 0x7e00;
    }
    for (size_t t = 0; t < nmax; t++)
        for (size_t d = 0; d < dim; d++) {
            v[(t / blk) * bs + d * ds + t % blk] = rng_gauss();
            v16[(t / blk) * bs + d * ds + t % blk] = rng_half();
        }
    *vt = (struct kern_vt){v, ds, blk, bs};
    *vt16 = (struct kern_vt_f16){v16, ds, blk, bs};
}

/* kern_attn_pv_f32 == kern_wsum_f32 per query, kern_attn_pv_f16 on fp16-valued probabilities ==
 * kern_wsum_f16 on their halves, both orders, bit for bit, in every ISA and the reference; on
 * weights that are not halves every ISA gives the reference's bits. Queries see different cell
 * counts (rows of a prompt, g heads per row); head sizes, paddings, blocks of 32 and 128, NaN in
 * the gaps of V and exact-size allocations (V up to the last visible cell, each weight row up to
 * its own n) so a read of a cell a query must not see is caught. */
START_TEST(test_attn_pv)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = isas_and_scalar(isas);
    const char *keep = kern_isa_name();
    static const size_t n0s[] = {1, 5, 8, 13, 31, 33, 40, 100, 250, 300};
    static const size_t dims[] = {1, 7, 8, 12, 64, 67};
    for (size_t ni = 0; ni < sizeof n0s / sizeof n0s[0]; ni++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            size_t nq = k_attn_nq[(ni + di) % N_ATTN_NQ], g = (ni + di) % 2 ? 3 : 1, n0 = n0s[ni], dim = dims[di];
            size_t nmax = n0 + (nq - 1) / g, blk = (di % 2) ? 128 : 32;
            struct kern_vt vt;
            struct kern_vt_f16 vt16;
            attn_v_make(nmax, dim, blk, &vt, &vt16);
            size_t *n = xmalloc(nq * sizeof *n), *n_pad = xmalloc(nq * sizeof *n_pad);
            float **p = xmalloc(nq * sizeof *p), **ph = xmalloc(nq * sizeof *ph);
            uint16_t **p16 = xmalloc(nq * sizeof *p16);
            attn_pv_shape(nq, g, n0, 0, n, n_pad);
            for (size_t i = 0; i < nq; i++) { /* some zero weights, as masked cells have */
                p[i] = xmalloc(n[i] * 4);
                ph[i] = xmalloc(n[i] * 4);
                p16[i] = xmalloc(n[i] * 2);
                for (size_t t = 0; t < n[i]; t++) {
                    p[i][t] = t % 7 == 3 ? 0.0f : (float)rng_unif();
                    p16[i][t] = util_f32_to_fp16(p[i][t]);
                    ph[i][t] = util_fp16_to_f32(p16[i][t]);
                }
            }
            float **o = attn_rows(nq, dim, 0, NULL), **ref = attn_rows(nq, dim, 0, NULL), *want = xmalloc(dim * 4);
            for (int pad = 0; pad < 4; pad++) {
                attn_pv_shape(nq, g, n0, pad, n, n_pad);
                for (unsigned order = 0; order < 2; order++)
                    for (int s = 0; s < n_isa; s++) {
                        ck_assert_int_eq(kern_isa_select(isas[s]), 0);
                        kern_attn_pv_f32(o, (const float *const *)p, n, n_pad, nq, &vt, dim, order);
                        for (size_t i = 0; i < nq; i++) {
                            kern_wsum_f32(want, p[i], &vt, n[i], n_pad[i], dim, order);
                            for (size_t d = 0; d < dim; d++)
                                ck_assert_msg(fbits(o[i][d]) == fbits(want[d]),
                                              "%s pv_f32 n=%zu pad=%zu dim=%zu order=%u q%zu/%zu d=%zu: %a != %a",
                                              isas[s], n[i], n_pad[i], dim, order, i, nq, d, (double)o[i][d],
                                              (double)want[d]);
                        }
                        kern_attn_pv_f16(o, (const float *const *)ph, n, n_pad, nq, &vt16, dim, order);
                        for (size_t i = 0; i < nq; i++) {
                            kern_wsum_f16(want, p16[i], &vt16, n[i], n_pad[i], dim, order);
                            for (size_t d = 0; d < dim; d++)
                                ck_assert_msg(fbits(o[i][d]) == fbits(want[d]),
                                              "%s pv_f16 n=%zu pad=%zu dim=%zu order=%u q%zu/%zu d=%zu: %a != %a",
                                              isas[s], n[i], n_pad[i], dim, order, i, nq, d, (double)o[i][d],
                                              (double)want[d]);
                        }
                        kern_attn_pv_f16(o, (const float *const *)p, n, n_pad, nq, &vt16, dim, order);
                        ck_assert_int_eq(kern_isa_select("scalar"), 0);
                        kern_attn_pv_f16(ref, (const float *const *)p, n, n_pad, nq, &vt16, dim, order);
                        for (size_t i = 0; i < nq; i++)
                            for (size_t d = 0; d < dim; d++)
                                ck_assert_msg(fbits(o[i][d]) == fbits(ref[i][d]),
                                              "%s pv_f16 (float p) n=%zu pad=%zu dim=%zu order=%u q%zu d=%zu: %a != %a",
                                              isas[s], n[i], n_pad[i], dim, order, i, d, (double)o[i][d],
                                              (double)ref[i][d]);
                    }
            }
            attn_rows_free(p, nq);
            attn_rows_free(ph, nq);
            attn_rows_free(p16, nq);
            attn_rows_free(o, nq);
            attn_rows_free(ref, nq);
            free(want);
            free(n);
            free(n_pad);
            free((void *)vt.v);
            free((void *)vt16.v);
        }
    /* a block that is not a multiple of 32 cells: NaN for every query, not garbage */
    float vb[64] = {0}, pb[8] = {0}, o0[2], o1[2];
    uint16_t vh[64] = {0};
    float *outs[2] = {o0, o1};
    const float *ps[2] = {pb, pb};
    size_t nn[2] = {8, 8};
    struct kern_vt bad = {vb, 8, 48, 16};
    struct kern_vt_f16 bad16 = {vh, 8, 48, 16};
    kern_attn_pv_f32(outs, ps, nn, nn, 2, &bad, 2, KERN_ORDER_GEMM);
    ck_assert(isnan(o0[0]) && isnan(o0[1]) && isnan(o1[0]) && isnan(o1[1]));
    kern_attn_pv_f16(outs, ps, nn, nn, 2, &bad16, 2, KERN_ORDER_GEMM);
    ck_assert(isnan(o0[0]) && isnan(o0[1]) && isnan(o1[0]) && isnan(o1[1]));
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* The batched attention kernels and kern_dot_f16_rows of every ISA against the scalar reference
 * itself (select "scalar", then the ISA), on the shapes the wide kernels split differently: head
 * sizes around the 8/16/32-element steps and past the on-stack key block (AB_MAXN = 512), key
 * counts around the 8-key blocks and their pairs, query counts around the tiles of 1-3 queries;
 * softmax.V cell counts ending at every place of a 16-cell group (queries of one tile ending in
 * different groups), dims odd and even around the 2- and 4-dim tiles, blocks of 32, 64 and 256
 * cells, all four paddings, weights that are not halves; softmax (kern_softmax_f32) too. Gaps hold
 * NaN, never read. */
static void qk_vs_ref(const char *isa, size_t n, size_t nr, size_t nq)
{
    size_t ks = n + 3;
    float *k;
    uint16_t *k16, **q16;
    attn_k_make(n, nr, ks, &k, &k16);
    float **q = attn_rows(nq, n, 0, NULL), **qh = attn_rows(nq, n, 1, &q16);
    float **o = attn_rows(nq, nr, 0, NULL), **ref = attn_rows(nq, nr, 0, NULL), *o1 = xmalloc(nr * 4), *r1 = xmalloc(nr * 4);
    for (unsigned order = 0; order < 3; order++) { /* 2: kern_attn_qk_f32 (one order) */
        const float *const *qq = (const float *const *)q;
        for (int s = 0; s < 2; s++) {
            ck_assert_int_eq(kern_isa_select(s ? isa : "scalar"), 0);
            if (order == 2) kern_attn_qk_f32(s ? o : ref, qq, nq, k, ks, n, nr);
            else kern_attn_qk_f16(s ? o : ref, qq, nq, k16, ks, n, nr, order);
            if (order < 2) kern_dot_f16_rows(s ? o1 : r1, q16[nq - 1], k16, ks, n, nr, order);
        }
        for (size_t i = 0; i < nq; i++)
            for (size_t r = 0; r < nr; r++)
                ck_assert_msg(fbits(o[i][r]) == fbits(ref[i][r]), "%s qk %s n=%zu rows=%zu nq=%zu q%zu key %zu: %a != %a",
                              isa, order == 2 ? "f32" : order == KERN_ORDER_GEMM ? "f16 gemm" : "f16 vecdot", n, nr, nq, i, r,
                              (double)o[i][r], (double)ref[i][r]);
        for (size_t r = 0; order < 2 && r < nr; r++)
            ck_assert_msg(fbits(o1[r]) == fbits(r1[r]), "%s dot_f16_rows n=%zu rows=%zu order=%u key %zu: %a != %a",
                          isa, n, nr, order, r, (double)o1[r], (double)r1[r]);
    }
    attn_rows_free(q, nq);
    attn_rows_free(qh, nq);
    attn_rows_free(q16, nq);
    attn_rows_free(o, nq);
    attn_rows_free(ref, nq);
    free(k);
    free(k16);
    free(o1);
    free(r1);
}

static void pv_vs_ref(const char *isa, size_t n0, size_t dim, size_t nq, size_t g, size_t blk)
{
    struct kern_vt vt;
    struct kern_vt_f16 vt16;
    attn_v_make(n0 + (nq - 1) / g, dim, blk, &vt, &vt16);
    size_t *n = xmalloc(nq * sizeof *n), *n_pad = xmalloc(nq * sizeof *n_pad);
    float **p = xmalloc(nq * sizeof *p);
    attn_pv_shape(nq, g, n0, 0, n, n_pad);
    for (size_t i = 0; i < nq; i++) {
        p[i] = xmalloc(n[i] * 4);
        for (size_t t = 0; t < n[i]; t++) p[i][t] = t % 5 == 2 ? 0.0f : (float)rng_unif();
    }
    float **o = attn_rows(nq, dim, 0, NULL), **ref = attn_rows(nq, dim, 0, NULL);
    for (int pad = 0; pad < 4; pad++) {
        attn_pv_shape(nq, g, n0, pad, n, n_pad);
        for (unsigned order = 0; order < 2; order++)
            for (int f16 = 0; f16 < 2; f16++) {
                for (int s = 0; s < 2; s++) {
                    ck_assert_int_eq(kern_isa_select(s ? isa : "scalar"), 0);
                    if (f16) kern_attn_pv_f16(s ? o : ref, (const float *const *)p, n, n_pad, nq, &vt16, dim, order);
                    else kern_attn_pv_f32(s ? o : ref, (const float *const *)p, n, n_pad, nq, &vt, dim, order);
                }
                for (size_t i = 0; i < nq; i++)
                    for (size_t d = 0; d < dim; d++)
                        ck_assert_msg(fbits(o[i][d]) == fbits(ref[i][d]),
                                      "%s pv_%s n=%zu pad=%zu dim=%zu blk=%zu order=%u q%zu/%zu d=%zu: %a != %a", isa,
                                      f16 ? "f16" : "f32", n[i], n_pad[i], dim, blk, order, i, nq, d, (double)o[i][d],
                                      (double)ref[i][d]);
            }
    }
    attn_rows_free(p, nq);
    attn_rows_free(o, nq);
    attn_rows_free(ref, nq);
    free(n);
    free(n_pad);
    free((void *)vt.v);
    free((void *)vt16.v);
}

/* softmax: lengths around the 16-lane steps, the three paddings, masked cells (-inf), a maximum
 * that sends others down the exp's range-limit paths, a maximum of +0 and -0, a NaN score. */
static void sm_vs_ref(const char *isa, size_t n)
{
    size_t pads[3] = {n, (n + 7) & ~(size_t)7, (n + 255) / 256 * 256};
    float *x = xmalloc(n * 4), *r = xmalloc(n * 4), *o = xmalloc(n * 4);
    for (int pi = 0; pi < 3; pi++)
        for (int spread = 0; spread < 4; spread++) {
            for (size_t i = 0; i < n; i++) x[i] = i % 11 == 5 ? -INFINITY : (spread == 1 ? 60.0f : 4.0f) * rng_gauss();
            if (spread == 1 && n > 2) x[n / 2] = 200.0f;
            if (spread == 2) /* maximum zero, +0 and -0 (the later one is the sequential maximum) */
                for (size_t i = 0; i < n; i++) x[i] = i == 3 ? 0.0f : i == n - 2 || i == n / 2 ? -0.0f : -fabsf(x[i]);
            if (spread == 3) x[n / 3] = NAN; /* a NaN score (any NaN then matches) */
            memcpy(r, x, n * 4);
            memcpy(o, x, n * 4);
            ck_assert_int_eq(kern_isa_select("scalar"), 0);
            kern_softmax_f32(r, n, pads[pi]);
            ck_assert_int_eq(kern_isa_select(isa), 0);
            kern_softmax_f32(o, n, pads[pi]);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(fbits(o[i]) == fbits(r[i]) || (isnan(o[i]) && isnan(r[i])), "%s softmax n=%zu pad=%zu spread=%d [%zu]: %a != %a", isa, n,
                              pads[pi], spread, i, (double)o[i], (double)r[i]);
        }
    free(x);
    free(r);
    free(o);
}

START_TEST(test_attn_wide_vs_reference)
{
    const char *isas[KERN_MAX_ISAS];
    int n_isa = simd_isas(isas);
    const char *keep = kern_isa_name();
    static const size_t ns[] = {16, 31, 40, 48, 65, 96, 97, 512, 520};
    static const size_t rows[] = {8, 15, 16, 17, 33};
    static const size_t n0s[] = {15, 16, 17, 30, 47, 48, 49, 63, 64, 65, 257, 300};
    static const size_t dims[] = {2, 3, 4, 5, 6, 8, 64};
    static const size_t blks[] = {32, 64, 256};
    for (int s = 0; s < n_isa; s++) {
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                qk_vs_ref(isas[s], ns[ni], rows[ri], 1 + (ni + ri) % 7);
        for (size_t ni = 0; ni < sizeof n0s / sizeof n0s[0]; ni++)
            for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
                size_t nq = 1 + (ni + di) % 7, g = (ni + di) % 3 + 1; /* g = 1: every query a cell further */
                pv_vs_ref(isas[s], n0s[ni], dims[di], nq, g, blks[(ni + di) % 3]);
            }
        static const size_t sms[] = {1, 15, 16, 17, 23, 24, 32, 47, 48, 300, 1025};
        for (size_t i = 0; i < sizeof sms / sizeof sms[0]; i++) sm_vs_ref(isas[s], sms[i]);
    }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* kern_round_f16 == util_fp16_to_f32(util_f32_to_fp16(x)) in every ISA: signed zeros, infinities,
 * NaN (any quiet NaN of the same sign), the largest half and the values that round to infinity,
 * half-way cases between halves (to even), subnormal halves and what underflows, random values
 * of every magnitude; lengths around the 8/16-lane steps. */
START_TEST(test_round_f16)
{
    const char *isas[KERN_MAX_ISAS + 1];
    int n_isa = isas_and_scalar(isas);
    const char *keep = kern_isa_name();
    static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                                       0x7f800001u, 0x477fe000u, 0x477fefffu, 0x477ff000u, 0xc77ff000u, 0x3f801000u,
                                       0x3f803000u, 0x38800000u, 0x387fe000u, 0x33800000u, 0x33000000u, 0x33000001u,
                                       0x00000001u, 0x3f800fffu};
    const size_t ns = sizeof special / sizeof special[0];
    for (size_t len = 1; len <= 67; len += 3) {
        float *x = xmalloc(len * 4), *y = xmalloc(len * 4);
        for (int s = 0; s < n_isa; s++)
            for (int rep = 0; rep < 8; rep++) {
                for (size_t i = 0; i < len; i++) {
                    int e = (int)(rng_next() % 48) - 30;
                    x[i] = (rep + i) % 3 == 0 ? bitsf(special[(rep * 7 + i) % ns]) : ldexpf(rng_gauss(), e);
                    y[i] = x[i];
                }
                ck_assert_int_eq(kern_isa_select(isas[s]), 0);
                kern_round_f16(y, len);
                for (size_t i = 0; i < len; i++) {
                    float w = util_fp16_to_f32(util_f32_to_fp16(x[i]));
                    bool ok = isnan(w) ? isnan(y[i]) && signbit(y[i]) == signbit(w) : fbits(y[i]) == fbits(w);
                    ck_assert_msg(ok, "%s round_f16 %a (0x%08x) -> %a, want %a", isas[s], (double)x[i], fbits(x[i]),
                                  (double)y[i], (double)w);
                }
            }
        free(x);
        free(y);
    }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}
END_TEST

/* kern_matmul == kern_vec_dot per (row, token), for every ISA, token count and pool. */
START_TEST(test_matmul_matches_vec_dot)
{
    uint32_t type = k_types[_i];
    const size_t ncols = blck_of(type) == 256 ? 768 : blck_of(type) == 1 ? 72 : 224;
    const size_t rb = blk_row_size(type, ncols), max_rows = 101, max_tok = 37, pad = 3;
    static const size_t toks[] = {1, 2, 3, 4, 5, 8, 13, 37};
    static const size_t rows[] = {101, 100, 7};
    uint8_t *W = xmalloc(max_rows * rb);
    float *x = xmalloc(ncols * 4);
    for (size_t r = 0; r < max_rows; r++) {
        for (size_t i = 0; i < ncols; i++) x[i] = 0.02f * rng_gauss();
        ck_assert(make_row(type, x, W + r * rb, ncols));
    }
    const size_t asz = kern_act_size(type, ncols);
    uint8_t *act = xmalloc(max_tok * asz);
    const size_t ys = max_rows + pad;
    float *ref = xmalloc(max_tok * ys * 4), *y = xmalloc(max_tok * ys * 4), *first = xmalloc(max_tok * ys * 4);
    struct kern_pool *p2 = NULL, *p3 = NULL;
    ck_assert_int_eq(kern_pool_create(&p2, 2), 0);
    ck_assert_int_eq(kern_pool_create(&p3, 3), 0);
    struct kern_pool *pools[3] = {NULL, p2, p3};
    const char *keep = kern_isa_name();
    struct kern_cpu_info ci;
    kern_cpu_info(&ci);
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
        size_t nrows = rows[ri];
        for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++) {
            size_t nt = toks[ti];
            bool have_first = false;
            for (int ii = ci.n_isa - 1; ii >= 0; ii--) { /* scalar first */
                if (!ci.isa_available[ii]) continue;
                ck_assert_int_eq(kern_isa_select(ci.isa[ii]), 0);
                for (size_t t = 0; t < nt; t++) {
                    for (size_t i = 0; i < ncols; i++) x[i] = rng_gauss();
                    if (!have_first) kern_act_prepare(type, x, act + t * asz, ncols);
                }
                /* the per-element definition: tinyBLAS' rows % 4 rule for the float types */
                unsigned eff = blck_of(type) == 1 && nrows % 4 ? KERN_ORDER_VECDOT : KERN_ORDER_GEMM;
                for (size_t t = 0; t < nt; t++)
                    for (size_t r = 0; r < nrows; r++)
                        ref[t * ys + r] = kern_vec_dot_ex(type, W + r * rb, act + t * asz, ncols, eff);
                for (int pi = 0; pi < 3; pi++) {
                    for (size_t i = 0; i < max_tok * ys; i++) y[i] = -12345.0f;
                    kern_matmul(pools[pi], type, W, nrows, ncols, act, asz, nt, y, ys);
                    for (size_t t = 0; t < nt; t++) {
                        for (size_t r = 0; r < nrows; r++)
                            ck_assert_msg(fbits(y[t * ys + r]) == fbits(ref[t * ys + r]),
                                          "%s %s rows=%zu tok=%zu pool=%d: y[%zu][%zu] %.9g vs vec_dot %.9g", ci.isa[ii],
                                          blk_type_name(type), nrows, nt, pi, t, r, (double)y[t * ys + r],
                                          (double)ref[t * ys + r]);
                        for (size_t r = nrows; r < ys; r++) ck_assert(y[t * ys + r] == -12345.0f);
                    }
                    for (size_t t = nt; t < max_tok; t++)
                        for (size_t r = 0; r < ys; r++) ck_assert(y[t * ys + r] == -12345.0f);
                    if (nt == 1) { /* kern_matvec is the one-token case */
                        float *yv = xmalloc(nrows * 4);
                        kern_matvec(pools[pi], type, W, nrows, ncols, act, yv);
                        ck_assert(memcmp(yv, y, nrows * 4) == 0);
                        free(yv);
                    }
                }
                /* and every ISA gives the scalar reference's bits */
                if (!have_first) {
                    memcpy(first, ref, max_tok * ys * 4);
                    have_first = true;
                } else {
                    for (size_t t = 0; t < nt; t++)
                        ck_assert(memcmp(first + t * ys, ref + t * ys, nrows * 4) == 0);
                }
            }
        }
    }
    ck_assert_int_eq(kern_isa_select(keep), 0);
    kern_pool_destroy(p2);
    kern_pool_destroy(p3);
    free(W);
    free(x);
    free(act);
    free(ref);
    free(y);
    free(first);
}
END_TEST

/* Rows longer than the SIMD tiles' stack scratch holds (the 512-bit one-scale tile packs up to
 * 256 blocks, 8192 weights) take the tiles' fallbacks: still kern_vec_dot per (row, token), bit
 * for bit, in every ISA, for the one-scale types (signed and with the offset term) and a K-quant. */
START_TEST(test_matmul_long_rows)
{
    static const uint32_t types[] = {BLK_T_Q8_0, BLK_T_Q4_1, BLK_T_Q5_1, BLK_T_IQ4_NL, BLK_T_Q6_K};
    const uint32_t type = types[_i];
    const size_t ncols = 32 * 264, nrows = 5, nt = 3; /* 264 blocks; 33 super-blocks */
    const size_t rb = blk_row_size(type, ncols), asz = kern_act_size(type, ncols);
    uint8_t *W = xmalloc(nrows * rb), *act = xmalloc(nt * asz);
    float *x = xmalloc(ncols * 4), *y = xmalloc(nt * nrows * 4);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t i = 0; i < ncols; i++) x[i] = 0.02f * rng_gauss();
        ck_assert(make_row(type, x, W + r * rb, ncols));
    }
    for (size_t t = 0; t < nt; t++) {
        for (size_t i = 0; i < ncols; i++) x[i] = rng_gauss();
        kern_act_prepare(type, x, act + t * asz, ncols);
    }
    const char *keep = kern_isa_name();
    struct kern_cpu_info ci;
    kern_cpu_info(&ci);
    for (int ii = 0; ii < ci.n_isa; ii++) {
        if (!ci.isa_available[ii]) continue;
        ck_assert_int_eq(kern_isa_select(ci.isa[ii]), 0);
        kern_matmul(NULL, type, W, nrows, ncols, act, asz, nt, y, nrows);
        for (size_t t = 0; t < nt; t++)
            for (size_t r = 0; r < nrows; r++) {
                const float want = kern_vec_dot(type, W + r * rb, act + t * asz, ncols);
                ck_assert_msg(fbits(y[t * nrows + r]) == fbits(want), "%s %s y[%zu][%zu] %.9g vs %.9g", ci.isa[ii],
                              blk_type_name(type), t, r, (double)y[t * nrows + r], (double)want);
            }
    }
    ck_assert_int_eq(kern_isa_select(keep), 0);
    free(W);
    free(act);
    free(x);
    free(y);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* An independent AVX2 transcription of llama.cpp's kernels: the scalar emulation of the lane
 * structure must agree with it bit for bit.                                                   */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_CHECK 1
#include <cpuid.h>
#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

AVX2_FN static float x86_hsum_float_8(__m256 x)
{
    __m128 res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res);
}

AVX2_FN static __m256 x86_mul_sum_i8_pairs_float(__m256i x, __m256i y)
{
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sy = _mm256_sign_epi8(y, x);
    const __m256i dot = _mm256_maddubs_epi16(ax, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot));
}

AVX2_FN static float x86_dot_q8_0(const struct blk_q8_0 *x, const struct blk_q8_0 *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, x86_mul_sum_i8_pairs_float(qx, qy), acc);
    }
    return x86_hsum_float_8(acc);
}

AVX2_FN static float x86_dot_q4_0(const struct blk_q4_0 *x, const struct blk_q8_0 *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        const __m128i tmp = _mm_loadu_si128((const __m128i *)x[i].qs);
        __m256i qx = _mm256_and_si256(_mm256_set1_epi8(0xF),
                                      _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1));
        qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(8));
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, x86_mul_sum_i8_pairs_float(qx, qy), acc);
    }
    return x86_hsum_float_8(acc);
}

AVX2_FN static void x86_quant_q8_0(const float *x, struct blk_q8_0 *y, int nb)
{
    for (int i = 0; i < nb; i++, x += 32) {
        __m256 v[4];
        __m256 maxAbs = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            maxAbs = _mm256_max_ps(maxAbs, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[k]));
        }
        __m128 max4 = _mm_max_ps(_mm256_extractf128_ps(maxAbs, 1), _mm256_castps256_ps128(maxAbs));
        max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
        const float m = _mm_cvtss_f32(max4);
        y[i].d = _cvtss_sh(m / 127.f, 0);
        const __m256 mul = _mm256_set1_ps(m != 0.0f ? 127.f / m : 0.0f);
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_ROUND_NEAREST));
            int32_t t[8];
            _mm256_storeu_si256((__m256i *)t, q);
            for (int j = 0; j < 8; j++) y[i].qs[8 * k + j] = (int8_t)(t[j] < -128 ? -128 : t[j] > 127 ? 127 : t[j]);
        }
    }
}

/* tinyBLAS<8, __m256> for f32 and f16 (one output) */
AVX2_FN static float x86_gemm_f32(const float *a, const float *b, int n)
{
    __m256 c = _mm256_setzero_ps();
    for (int l = 0; l < n; l += 8) c = _mm256_fmadd_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l), c);
    return x86_hsum_float_8(c);
}

AVX2_FN static float x86_gemm_f16(const uint16_t *a, const uint16_t *b, int n)
{
    __m256 c = _mm256_setzero_ps();
    for (int l = 0; l < n; l += 8)
        c = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + l))),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + l))), c);
    return x86_hsum_float_8(c);
}

/* ggml_vec_dot_f32 / f16 with GGML_F32x8_REDUCE */
AVX2_FN static float x86_reduce4(__m256 s[4])
{
    s[0] = _mm256_add_ps(s[0], s[2]);
    s[1] = _mm256_add_ps(s[1], s[3]);
    s[0] = _mm256_add_ps(s[0], s[1]);
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s[0]), _mm256_extractf128_ps(s[0], 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

AVX2_FN static float x86_vecdot_f32(const float *x, const float *y, int n)
{
    int np = n & ~31;
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++) s[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), _mm256_loadu_ps(y + i + 8 * j), s[j]);
    float sumf = x86_reduce4(s);
    /* the tail as gcc 12 vectorizes `sumf += x[i]*y[i]`: 8-wide and 4-wide products folded in
     * order, then scalar FMAs */
    int i = np;
    for (; n - i >= 8; i += 8) {
        float p[8];
        _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        for (int k = 0; k < 8; k++) sumf = _mm_cvtss_f32(_mm_add_ss(_mm_set_ss(sumf), _mm_set_ss(p[k])));
    }
    if (n - i >= 4) {
        float p[4];
        _mm_storeu_ps(p, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
        for (int k = 0; k < 4; k++) sumf = _mm_cvtss_f32(_mm_add_ss(_mm_set_ss(sumf), _mm_set_ss(p[k])));
        i += 4;
    }
    for (; i < n; i++) sumf = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(x[i]), _mm_set_ss(y[i]), _mm_set_ss(sumf)));
    return sumf;
}

AVX2_FN static float x86_vecdot_f16(const uint16_t *x, const uint16_t *y, int n)
{
    int np = n & ~31;
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            s[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * j))),
                                   _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8 * j))), s[j]);
    double sumf = x86_reduce4(s);
    for (int i = np; i < n; i++) sumf += (double)(_cvtsh_ss(x[i]) * _cvtsh_ss(y[i]));
    return (float)sumf;
}

AVX2_FN static __m256 x86_mul_sum_us8_pairs_float(__m256i ax, __m256i sy)
{
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(ax, sy)));
}

AVX2_FN static __m256i x86_nibbles(const uint8_t *p)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set1_epi8(0xF), _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1));
}

/* byte j = 0xFF where bit j of the 32-bit word is set */
AVX2_FN static __m256i x86_bits(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

AVX2_FN static float x86_fma_ss(float a, float b, float c)
{
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

AVX2_FN static void x86_quant_q8_1(const float *x, struct blk_q8_1 *y, int nb)
{
    for (int i = 0; i < nb; i++, x += 32) {
        __m256 v[4];
        __m256 maxAbs = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            maxAbs = _mm256_max_ps(maxAbs, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[k]));
        }
        __m128 max4 = _mm_max_ps(_mm256_extractf128_ps(maxAbs, 1), _mm256_castps256_ps128(maxAbs));
        max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
        const float m = _mm_cvtss_f32(max4), d = m / 127.f;
        y[i].d = _cvtss_sh(d, 0);
        const __m256 mul = _mm256_set1_ps(m != 0.0f ? 127.f / m : 0.0f);
        __m256i sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_ROUND_NEAREST));
            sum = _mm256_add_epi32(sum, q);
            int32_t t[8];
            _mm256_storeu_si256((__m256i *)t, q);
            for (int j = 0; j < 8; j++) y[i].qs[8 * k + j] = (int8_t)(t[j] < -128 ? -128 : t[j] > 127 ? 127 : t[j]);
        }
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)t, sum);
        int32_t hs = 0;
        for (int j = 0; j < 8; j++) hs += t[j];
        y[i].s = _cvtss_sh(d * (float)hs, 0);
    }
}

AVX2_FN static float x86_dot_q4_1(const struct blk_q4_1 *x, const struct blk_q8_1 *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < nb; i++) {
        summs = x86_fma_ss(_cvtsh_ss(x[i].m), _cvtsh_ss(y[i].s), summs);
        const __m256 d0d1 = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d)), _mm256_set1_ps(_cvtsh_ss(y[i].d)));
        const __m256 xy = x86_mul_sum_us8_pairs_float(x86_nibbles(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(d0d1, xy, acc);
    }
    return x86_hsum_float_8(acc) + summs;
}

AVX2_FN static float x86_dot_q5_1(const struct blk_q5_1 *x, const struct blk_q8_1 *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < nb; i++) {
        const __m256 dx = _mm256_set1_ps(_cvtsh_ss(x[i].d));
        summs = x86_fma_ss(_cvtsh_ss(x[i].m), _cvtsh_ss(y[i].s), summs);
        __m256i qx = _mm256_or_si256(x86_nibbles(x[i].qs), _mm256_and_si256(x86_bits(x[i].qh), _mm256_set1_epi8(0x10)));
        const __m256 dy = _mm256_set1_ps(_cvtsh_ss(y[i].d));
        const __m256 q = x86_mul_sum_us8_pairs_float(qx, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(q, _mm256_mul_ps(dx, dy), acc);
    }
    return x86_hsum_float_8(acc) + summs;
}

AVX2_FN static float x86_dot_q5_0(const struct blk_q5_0 *x, const struct blk_q8_0 *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        __m256i bxhi = _mm256_andnot_si256(x86_bits(x[i].qh), _mm256_set1_epi8((char)0xF0));
        __m256i qx = _mm256_or_si256(x86_nibbles(x[i].qs), bxhi);
        acc = _mm256_fmadd_ps(d, x86_mul_sum_i8_pairs_float(qx, _mm256_loadu_si256((const __m256i *)y[i].qs)), acc);
    }
    return x86_hsum_float_8(acc);
}

AVX2_FN static __m256i x86_iq4(const uint8_t *qs)
{
    const __m128i values = _mm_loadu_si128((const __m128i *)kern_iq4nl_values);
    const __m128i bits = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f);
    return _mm256_insertf128_si256(_mm256_castsi128_si256(_mm_shuffle_epi8(values, _mm_and_si128(bits, m4))),
                                   _mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(bits, 4), m4)), 1);
}

/* tinyBLAS_Q0_AVX on IQ4_NL: the Q8_0 structure */
AVX2_FN static float x86_gemm_iq4_nl(const struct blk_iq4_nl *x, const struct blk_q8_0 *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        acc = _mm256_fmadd_ps(d, x86_mul_sum_i8_pairs_float(x86_iq4(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs)), acc);
    }
    return x86_hsum_float_8(acc);
}

AVX2_FN static float x86_vecdot_iq4_nl(const struct blk_iq4_nl *x, const struct blk_q8_0 *y, int nb)
{
    __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
    int ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(y[ib].d) * _cvtsh_ss(x[ib].d)),
                             x86_mul_sum_i8_pairs_float(x86_iq4(x[ib].qs), _mm256_loadu_si256((const __m256i *)y[ib].qs)), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(y[ib + 1].d) * _cvtsh_ss(x[ib + 1].d)),
                             x86_mul_sum_i8_pairs_float(x86_iq4(x[ib + 1].qs), _mm256_loadu_si256((const __m256i *)y[ib + 1].qs)), a2);
    }
    float sumf = x86_hsum_float_8(_mm256_add_ps(a1, a2));
    for (; ib < nb; ib++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += y[ib].qs[j] * kern_iq4nl_values[x[ib].qs[j] & 15] + y[ib].qs[j + 16] * kern_iq4nl_values[x[ib].qs[j] >> 4];
        sumf = x86_fma_ss(_cvtsh_ss(y[ib].d) * _cvtsh_ss(x[ib].d), (float)sumi, sumf);
    }
    return sumf;
}

AVX2_FN static __m256 x86_load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

AVX2_FN static float x86_gemm_bf16(const uint16_t *a, const uint16_t *b, int n)
{
    __m256 c = _mm256_setzero_ps();
    for (int l = 0; l < n; l += 8) c = _mm256_fmadd_ps(x86_load_bf16(a + l), x86_load_bf16(b + l), c);
    return x86_hsum_float_8(c);
}

AVX2_FN static float x86_vecdot_bf16(const uint16_t *x, const uint16_t *y, int n)
{
    int i = 0;
    __m256 c1 = _mm256_setzero_ps(), c2 = c1, c3 = c1, c4 = c1;
    for (; i + 32 <= n; i += 32) {
        c1 = _mm256_add_ps(_mm256_mul_ps(x86_load_bf16(x + i), x86_load_bf16(y + i)), c1);
        c2 = _mm256_add_ps(_mm256_mul_ps(x86_load_bf16(x + i + 8), x86_load_bf16(y + i + 8)), c2);
        c3 = _mm256_add_ps(_mm256_mul_ps(x86_load_bf16(x + i + 16), x86_load_bf16(y + i + 16)), c3);
        c4 = _mm256_add_ps(_mm256_mul_ps(x86_load_bf16(x + i + 24), x86_load_bf16(y + i + 24)), c4);
    }
    c1 = _mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4));
    double sumf = x86_hsum_float_8(c1);
    for (; i < n; i++) sumf += (double)(util_bf16_to_f32(x[i]) * util_bf16_to_f32(y[i]));
    return (float)sumf;
}

/* shuffle tables: pick int16 scale i for a 128-bit lane */
AVX2_FN static __m256i x86_shuf_q3k(int i) /* lo lane: scale 2i, hi lane: scale 2i+1 */
{
    return _mm256_setr_epi8(4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i,
                            4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2,
                            4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3,
                            4 * i + 2, 4 * i + 3);
}

AVX2_FN static __m256i x86_shuf_k4(int i) /* both lanes: scale i */
{
    return _mm256_set1_epi16((short)((2 * i) | (2 * i + 1) << 8));
}

AVX2_FN static float x86_dot_q2_K(const struct blk_q2_K *x, const struct blk_q8_K *y, int nb)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const __m128i ms = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i scales8 = _mm_and_si128(ms, m4);
        const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(ms, 4), m4);
        const __m256i prod = _mm256_madd_epi16(_mm256_cvtepi8_epi16(mins8), _mm256_loadu_si256((const __m256i *)y[i].bsums));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
        const __m256i all = _mm256_cvtepi8_epi16(scales8);
        const __m128i lo = _mm256_extracti128_si256(all, 0), hi = _mm256_extracti128_si256(all, 1);
        const __m256i sc[2] = {_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)};
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q2);
            q2 += 32;
            __m256i p[4];
            for (int k = 0; k < 4; k++) {
                const __m256i q8v = _mm256_loadu_si256((const __m256i *)q8);
                q8 += 32;
                const __m256i q2v = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                p[k] = _mm256_madd_epi16(_mm256_shuffle_epi8(sc[j], x86_shuf_q3k(k)), _mm256_maddubs_epi16(q2v, q8v));
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86_hsum_float_8(acc);
}

AVX2_FN static float x86_dot_q3_K(const struct blk_q3_K *x, const struct blk_q8_K *y, int nb)
{
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    const __m256i m3 = _mm256_set1_epi8(3), mone = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const uint8_t *q3 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        uint32_t aux[3];
        memcpy(aux, x[i].scales, 12);
        __m128i s128 = _mm_set_epi32((int)(((aux[1] >> 4) & kmask2) | (((aux[2] >> 6) & kmask1) << 4)),
                                     (int)(((aux[0] >> 4) & kmask2) | (((aux[2] >> 4) & kmask1) << 4)),
                                     (int)((aux[1] & kmask2) | (((aux[2] >> 2) & kmask1) << 4)),
                                     (int)((aux[0] & kmask2) | (((aux[2] >> 0) & kmask1) << 4)));
        s128 = _mm_sub_epi8(s128, _mm_set1_epi8(32));
        const __m256i all = _mm256_cvtepi8_epi16(s128);
        const __m128i lo = _mm256_extracti128_si256(all, 0), hi = _mm256_extracti128_si256(all, 1);
        const __m256i sc[2] = {_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)};
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        int bit = 0;
        for (int j = 0; j < 2; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q3);
            q3 += 32;
            __m256i p[4];
            for (int k = 0; k < 4; k++, bit++) {
                const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i qh = _mm256_slli_epi16(
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, bit)), bit), 2);
                const __m256i q8v = _mm256_loadu_si256((const __m256i *)q8);
                q8 += 32;
                __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(ql, q8v), _mm256_maddubs_epi16(qh, q8v));
                p[k] = _mm256_madd_epi16(_mm256_shuffle_epi8(sc[j], x86_shuf_q3k(k)), p16);
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86_hsum_float_8(acc);
}

static void k4_utmp(const uint8_t *scales, uint32_t utmp[4])
{
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    memcpy(utmp, scales, 12);
    utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = utmp[1] & kmask1;
    utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
    utmp[2] = uaux;
    utmp[0] &= kmask1;
}

AVX2_FN static float x86_dot_q4_K(const struct blk_q4_K *x, const struct blk_q8_K *y, int nb)
{
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        uint32_t u[4];
        k4_utmp(x[i].scales, u);
        const __m256i ms = _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
        const __m256i q8sums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
        const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(ms, 1), q8s);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
        const __m128i sc128 = _mm256_extracti128_si256(ms, 0);
        const __m256i scales = _mm256_set_m128i(sc128, sc128);
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i sl = _mm256_shuffle_epi8(scales, x86_shuf_k4(2 * j));
            const __m256i sh = _mm256_shuffle_epi8(scales, x86_shuf_k4(2 * j + 1));
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q4);
            q4 += 32;
            const __m256i q8l = _mm256_loadu_si256((const __m256i *)q8);
            q8 += 32;
            const __m256i q8h = _mm256_loadu_si256((const __m256i *)q8);
            q8 += 32;
            __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), q8l));
            __m256i ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), q8h));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return x86_hsum_float_8(acc) + _mm_cvtss_f32(acc_m);
}

AVX2_FN static float x86_dot_q5_K(const struct blk_q5_K *x, const struct blk_q8_K *y, int nb)
{
    const __m256i m4 = _mm256_set1_epi8(0xF), mone = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.f;
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        uint32_t u[4];
        k4_utmp(x[i].scales, u);
        const __m256i ms = _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
        const __m256i q8sums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
        const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(ms, 1), q8s);
        const __m128i hs = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
        summs = x86_fma_ss(dmin, (float)_mm_extract_epi32(hs, 0), summs);
        const __m128i sc128 = _mm256_extracti128_si256(ms, 0);
        const __m256i scales = _mm256_set_m128i(sc128, sc128);
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i hmask = mone;
        const uint8_t *q5 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        int bit = 0;
        for (int j = 0; j < 4; j++) {
            const __m256i s0 = _mm256_shuffle_epi8(scales, x86_shuf_k4(2 * j));
            const __m256i s1 = _mm256_shuffle_epi8(scales, x86_shuf_k4(2 * j + 1));
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q5);
            q5 += 32;
            const __m256i q5_0 = _mm256_add_epi8(_mm256_and_si256(bits, m4),
                                                 _mm256_slli_epi16(_mm256_srli_epi16(_mm256_and_si256(hbits, hmask), bit++), 4));
            hmask = _mm256_slli_epi16(hmask, 1);
            const __m256i q5_1 = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                                 _mm256_slli_epi16(_mm256_srli_epi16(_mm256_and_si256(hbits, hmask), bit++), 4));
            hmask = _mm256_slli_epi16(hmask, 1);
            const __m256i q8_0 = _mm256_loadu_si256((const __m256i *)q8);
            q8 += 32;
            const __m256i q8_1 = _mm256_loadu_si256((const __m256i *)q8);
            q8 += 32;
            __m256i p0 = _mm256_madd_epi16(s0, _mm256_maddubs_epi16(q5_0, q8_0));
            __m256i p1 = _mm256_madd_epi16(s1, _mm256_maddubs_epi16(q5_1, q8_1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86_hsum_float_8(acc) + summs;
}

AVX2_FN static float x86_dot_q6_K(const struct blk_q6_K *x, const struct blk_q8_K *y, int nb)
{
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const uint8_t *q4 = x[i].ql, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        const __m128i scales = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i q8sclsub = _mm256_slli_epi32(
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), _mm256_cvtepi8_epi16(scales)), 5);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0, is = 0; j < 2; j++, is += 4) {
            __m128i sc[4];
            for (int k = 0; k < 4; k++) {
                int a = 2 * (is + k), b = a + 1;
                sc[k] = _mm_shuffle_epi8(scales, _mm_setr_epi8((char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a,
                                                               (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b));
            }
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)q4);
            q4 += 32;
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)q4);
            q4 += 32;
            const __m256i bH = _mm256_loadu_si256((const __m256i *)qh);
            qh += 32;
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bH, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bH, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bH, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bH, 6), m2), 4));
            __m256i p[4];
            for (int k = 0; k < 4; k++) {
                const __m256i q8v = _mm256_loadu_si256((const __m256i *)q8);
                q8 += 32;
                p[k] = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc[k]), _mm256_maddubs_epi16(q[k], q8v));
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[2], p[3]));
        }
        sumi = _mm256_sub_epi32(sumi, q8sclsub);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86_hsum_float_8(acc);
}

AVX2_FN static float x86_dot_iq4_xs(const struct blk_iq4_xs *x, const struct blk_q8_K *y, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (int ibl = 0; ibl < nb; ibl++) {
        const uint8_t *qs = x[ibl].qs;
        const int8_t *q8 = y[ibl].qs;
        uint16_t sh = x[ibl].scales_h;
        __m256i s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib += 2) {
            const __m256i q4b_1 = x86_iq4(qs), q4b_2 = x86_iq4(qs + 16);
            qs += 32;
            const __m256i q8b_1 = _mm256_loadu_si256((const __m256i *)q8), q8b_2 = _mm256_loadu_si256((const __m256i *)(q8 + 32));
            q8 += 64;
            const __m256i p16_1 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4b_1, q4b_1), _mm256_sign_epi8(q8b_1, q4b_1));
            const __m256i p16_2 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4b_2, q4b_2), _mm256_sign_epi8(q8b_2, q4b_2));
            const int16_t ls1 = (int16_t)(((x[ibl].scales_l[ib / 2] & 0xf) | ((sh << 4) & 0x30)) - 32);
            const int16_t ls2 = (int16_t)(((x[ibl].scales_l[ib / 2] >> 4) | ((sh << 2) & 0x30)) - 32);
            sh >>= 4;
            s1 = _mm256_add_epi32(_mm256_madd_epi16(p16_1, _mm256_set1_epi16(ls1)), s1);
            s2 = _mm256_add_epi32(_mm256_madd_epi16(p16_2, _mm256_set1_epi16(ls2)), s2);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[ibl].d) * y[ibl].d), _mm256_cvtepi32_ps(_mm256_add_epi32(s1, s2)), acc);
    }
    return x86_hsum_float_8(acc);
}

/* ggml_v_expf / ggml_v_silu (AVX2 + FMA) */
AVX2_FN static __m256 x86_v_expf(__m256 x)
{
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
    const __m256i c = _mm256_castps_si256(_mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(126), _CMP_GT_OQ));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    if (!_mm256_movemask_ps(_mm256_castsi256_ps(c))) return _mm256_fmadd_ps(j, k, k);
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256i d = _mm256_castps_si256(_mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(192), _CMP_GT_OQ));
    return _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(d), _mm256_mul_ps(s1, s1)),
                        _mm256_andnot_ps(_mm256_castsi256_ps(d),
                                         _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(c), _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                                      _mm256_andnot_ps(_mm256_castsi256_ps(c), _mm256_fmadd_ps(k, j, k)))));
}

/* ggml_soft_max on a row of n_pad entries (masked = -inf) */
AVX2_FN static void x86_softmax(float *y, const float *x, int n_pad)
{
    float max = -INFINITY;
    for (int i = 0; i < n_pad; i++) max = max > x[i] ? max : x[i];
    double sum = 0;
    int i = 0;
    for (; i + 7 < n_pad; i += 8) {
        __m256 val = x86_v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(max)));
        _mm256_storeu_ps(y + i, val);
        sum += (double)x86_hsum_float_8(val);
    }
    for (; i < n_pad; i++) {
        y[i] = expf(x[i] - max);
        sum += (double)y[i];
    }
    const float inv = (float)(1.0 / sum);
    for (i = 0; i < n_pad; i++) y[i] *= inv;
}

AVX2_FN static void x86_swiglu(float *y, const float *x, const float *g, int n)
{
    int i = 0;
    for (; i + 7 < n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        const __m256 e = x86_v_expf(_mm256_sub_ps(_mm256_setzero_ps(), xv));
        const __m256 silu = _mm256_div_ps(xv, _mm256_add_ps(_mm256_set1_ps(1), e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(g + i)));
    }
    for (; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i])) * g[i];
}

/* quantize_row_q8_K_ref with ggml's nearest_int */
static void ref_quant_q8_K(const float *x, struct blk_q8_K *y, int nb)
{
    for (int i = 0; i < nb; i++, x += 256) {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        memset(&y[i], 0, sizeof y[i]);
        if (!amax) continue;
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; j++) {
            float val = iscale * x[j] + 12582912.f;
            int32_t bits;
            memcpy(&bits, &val, 4);
            int v = (bits & 0x007fffff) - 0x00400000;
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

AVX2_FN static uint16_t x86_f2h(float f)
{
    return _cvtss_sh(f, 0);
}

static bool x86_ok(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool fma = c & (1u << 12), f16c = c & (1u << 29), osxsave = c & (1u << 27);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return fma && f16c && osxsave && (b & (1u << 5)); /* leaf 7 EBX bit 5: AVX2 */
}

static void x86_bit_exact_body(void)
{
    enum { NB = 9, N = NB * 32 };
    for (int rep = 0; rep < 200; rep++) {
        float w[N + 12], a[N + 12];
        float s = rep % 3 == 0 ? 1e-3f : rep % 3 == 1 ? 1.0f : 37.0f;
        for (int i = 0; i < N + 12; i++) {
            w[i] = 0.02f * rng_gauss();
            a[i] = s * rng_gauss();
        }
        if (rep % 10 == 0) a[5] = 0.0f;
        /* activation quantization */
        struct blk_q8_0 qa[NB], qb[NB];
        kern_act_prepare(BLK_T_Q8_0, a, qa, N);
        x86_quant_q8_0(a, qb, NB);
        ck_assert(memcmp(qa, qb, sizeof qa) == 0);
        /* Q8_0 and Q4_0 dots */
        struct blk_q8_0 wq8[NB];
        struct blk_q4_0 wq4[NB];
        tq_q8_0(w, wq8, N);
        tq_q4_0(w, wq4, N);
        float r1 = kern_vec_dot(BLK_T_Q8_0, wq8, qa, N), e1 = x86_dot_q8_0(wq8, qa, NB);
        float r2 = kern_vec_dot(BLK_T_Q4_0, wq4, qa, N), e2 = x86_dot_q4_0(wq4, qa, NB);
        ck_assert_msg(fbits(r1) == fbits(e1), "q8_0 %.9g vs %.9g", (double)r1, (double)e1);
        ck_assert_msg(fbits(r2) == fbits(e2), "q4_0 %.9g vs %.9g", (double)r2, (double)e2);
        /* F32: gemm order on N, vec_dot order on N and on a ragged length */
        int nr = N - 20 + rep % 13;
        ck_assert(fbits(kern_vec_dot(BLK_T_F32, w, a, N)) == fbits(x86_gemm_f32(w, a, N)));
        ck_assert(fbits(kern_vec_dot_ex(BLK_T_F32, w, a, N, KERN_ORDER_VECDOT)) == fbits(x86_vecdot_f32(w, a, N)));
        ck_assert(fbits(kern_dot_f32(w, a, (size_t)nr)) == fbits(x86_vecdot_f32(w, a, nr)));
        ck_assert(fbits(kern_dot_f32_gemm(w, a, N)) == fbits(x86_gemm_f32(w, a, N)));
        /* tinyBLAS declines k % 8 != 0: llama.cpp then uses vec_dot even when batched */
        ck_assert(fbits(kern_vec_dot(BLK_T_F32, w, a, (size_t)nr)) ==
                  fbits(nr % 8 ? x86_vecdot_f32(w, a, nr) : x86_gemm_f32(w, a, nr)));
        /* F16 */
        uint16_t wh[N + 12], ah[N + 12];
        for (int i = 0; i < N + 12; i++) wh[i] = util_f32_to_fp16(w[i]);
        kern_act_prepare(BLK_T_F16, a, ah, N + 12);
        for (int i = 0; i < N + 12; i++) ck_assert_uint_eq(ah[i], x86_f2h(a[i]));
        ck_assert(fbits(kern_vec_dot(BLK_T_F16, wh, ah, N)) == fbits(x86_gemm_f16(wh, ah, N)));
        ck_assert(fbits(kern_vec_dot_ex(BLK_T_F16, wh, ah, N, KERN_ORDER_VECDOT)) == fbits(x86_vecdot_f16(wh, ah, N)));
        ck_assert(fbits(kern_vec_dot(BLK_T_F16, wh, ah, (size_t)nr)) ==
                  fbits(nr % 8 ? x86_vecdot_f16(wh, ah, nr) : x86_gemm_f16(wh, ah, nr)));
    }
}

static void x86_bit_exact_more_body(void)
{
    enum { NB = 7, N = NB * 32, NK = 3, NKE = NK * 256 };
    float w[NKE], a[NKE];
    for (int rep = 0; rep < 100; rep++) {
        float s = rep % 3 == 0 ? 1e-3f : rep % 3 == 1 ? 1.0f : 37.0f;
        for (int i = 0; i < NKE; i++) {
            w[i] = 0.02f * rng_gauss();
            a[i] = s * rng_gauss();
        }
        /* Q8_1 activations, Q4_1 / Q5_1 */
        struct blk_q8_1 qa[NB], qb[NB];
        kern_act_prepare(BLK_T_Q4_1, a, qa, N);
        x86_quant_q8_1(a, qb, NB);
        ck_assert(memcmp(qa, qb, sizeof qa) == 0);
        struct blk_q4_1 w41[NB];
        struct blk_q5_1 w51[NB];
        tq_q4_1(w, w41, N);
        tq_q5_1(w, w51, N);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q4_1, w41, qa, N)) == fbits(x86_dot_q4_1(w41, qa, NB)));
        ck_assert(fbits(kern_vec_dot(BLK_T_Q5_1, w51, qa, N)) == fbits(x86_dot_q5_1(w51, qa, NB)));
        /* Q8_0 activations, Q5_0 / IQ4_NL (both orders, odd and even block counts) */
        struct blk_q8_0 q8[NB];
        kern_act_prepare(BLK_T_Q5_0, a, q8, N);
        struct blk_q5_0 w50[NB];
        struct blk_iq4_nl wnl[NB];
        tq_q5_0(w, w50, N);
        tq_iq4_nl(w, wnl, N);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q5_0, w50, q8, N)) == fbits(x86_dot_q5_0(w50, q8, NB)));
        for (int nb = NB - 1; nb <= NB; nb++) {
            ck_assert(fbits(kern_vec_dot(BLK_T_IQ4_NL, wnl, q8, (size_t)nb * 32)) == fbits(x86_gemm_iq4_nl(wnl, q8, nb)));
            ck_assert(fbits(kern_vec_dot_ex(BLK_T_IQ4_NL, wnl, q8, (size_t)nb * 32, KERN_ORDER_VECDOT)) ==
                      fbits(x86_vecdot_iq4_nl(wnl, q8, nb)));
        }
        /* BF16 */
        uint16_t wb[N], ab[N];
        for (int i = 0; i < N; i++) wb[i] = util_f32_to_bf16(w[i]);
        kern_act_prepare(BLK_T_BF16, a, ab, N);
        int nr = N - 8 - rep % 11;
        ck_assert(fbits(kern_vec_dot(BLK_T_BF16, wb, ab, N)) == fbits(x86_gemm_bf16(wb, ab, N)));
        ck_assert(fbits(kern_vec_dot_ex(BLK_T_BF16, wb, ab, N, KERN_ORDER_VECDOT)) == fbits(x86_vecdot_bf16(wb, ab, N)));
        ck_assert(fbits(kern_vec_dot(BLK_T_BF16, wb, ab, (size_t)nr)) ==
                  fbits(nr % 8 ? x86_vecdot_bf16(wb, ab, nr) : x86_gemm_bf16(wb, ab, nr)));
        /* Q8_K activations and the K-quants */
        struct blk_q8_K ka[NK], kb[NK];
        if (rep % 7 == 0) a[300] = -40.0f * s; /* a negative extreme sets the scale sign */
        kern_act_prepare(BLK_T_Q4_K, a, ka, NKE);
        ref_quant_q8_K(a, kb, NK);
        ck_assert(memcmp(ka, kb, sizeof ka) == 0);
        union {
            struct blk_q2_K q2[NK];
            struct blk_q3_K q3[NK];
            struct blk_q4_K q4[NK];
            struct blk_q5_K q5[NK];
            struct blk_q6_K q6[NK];
            struct blk_iq4_xs xs[NK];
        } wk;
        random_blocks(BLK_T_Q2_K, wk.q2, NKE);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q2_K, wk.q2, ka, NKE)) == fbits(x86_dot_q2_K(wk.q2, ka, NK)));
        random_blocks(BLK_T_Q3_K, wk.q3, NKE);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q3_K, wk.q3, ka, NKE)) == fbits(x86_dot_q3_K(wk.q3, ka, NK)));
        random_blocks(BLK_T_Q4_K, wk.q4, NKE);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q4_K, wk.q4, ka, NKE)) == fbits(x86_dot_q4_K(wk.q4, ka, NK)));
        random_blocks(BLK_T_Q5_K, wk.q5, NKE);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q5_K, wk.q5, ka, NKE)) == fbits(x86_dot_q5_K(wk.q5, ka, NK)));
        random_blocks(BLK_T_Q6_K, wk.q6, NKE);
        ck_assert(fbits(kern_vec_dot(BLK_T_Q6_K, wk.q6, ka, NKE)) == fbits(x86_dot_q6_K(wk.q6, ka, NK)));
        random_blocks(BLK_T_IQ4_XS, wk.xs, NKE);
        ck_assert(fbits(kern_vec_dot(BLK_T_IQ4_XS, wk.xs, ka, NKE)) == fbits(x86_dot_iq4_xs(wk.xs, ka, NK)));
        /* softmax over a padded, partly masked row; SiLU-gate; exp at the range limits */
        int n_pad = rep % 2 ? 256 : 40 + rep % 23, n = 1 + rep % (n_pad - 1);
        float row[256], p1[256], p2[256];
        for (int i = 0; i < n_pad; i++) row[i] = i < n ? s * 3.0f * rng_gauss() : -INFINITY;
        if (rep % 3 == 0) row[0] = -INFINITY;
        if (rep % 5 == 0) row[n - 1] = 200.0f; /* others far below: exp underflow paths */
        x86_softmax(p1, row, n_pad);
        memcpy(p2, row, sizeof(float) * (size_t)n);
        kern_softmax_f32(p2, (size_t)n, (size_t)n_pad);
        ck_assert(memcmp(p1, p2, sizeof(float) * (size_t)n) == 0);
        float gate[NB * 32], out1[NB * 32], out2[NB * 32];
        int m = NB * 32 - rep % 11;
        for (int i = 0; i < m; i++) {
            row[i % 256] = s * rng_gauss();
            gate[i] = rng_gauss();
        }
        float xs[NB * 32];
        for (int i = 0; i < m; i++) xs[i] = i % 17 == 0 ? 95.0f * (i % 2 ? 1 : -1) : w[i] * 100.0f * s;
        x86_swiglu(out1, xs, gate, m);
        kern_swiglu_f32(out2, xs, gate, (size_t)m);
        ck_assert(memcmp(out1, out2, sizeof(float) * (size_t)m) == 0);
    }
}

/* The transcription checks the scalar reference (the specification) and, through the same
 * public entry points, every SIMD ISA this CPU runs. */
static void for_each_isa(void (*body)(void))
{
    const char *keep = kern_isa_name();
    struct kern_cpu_info ci;
    kern_cpu_info(&ci);
    for (int i = 0; i < ci.n_isa; i++) {
        if (!ci.isa_available[i]) continue;
        ck_assert_int_eq(kern_isa_select(ci.isa[i]), 0);
        body();
    }
    ck_assert_int_eq(kern_isa_select(keep), 0);
}

START_TEST(test_x86_bit_exact)
{
    if (!x86_ok()) {
        fprintf(stderr, "check_kern: no AVX2/FMA/F16C, skipping the bit-exactness test\n");
        return;
    }
    for_each_isa(x86_bit_exact_body);
}
END_TEST

START_TEST(test_x86_bit_exact_more)
{
    if (!x86_ok()) return;
    for_each_isa(x86_bit_exact_more_body);
}
END_TEST
#endif

/* ------------------------------------------------------------------------------------------ */
/* NEON tables called directly (kern_neon.c, kern_neon_dotprod.c)                             */
/* The "isa" tests above compare every ISA this CPU runs through the public entry points. These
 * call the NEON tables themselves against the reference table, so they also check that the
 * tables are filled (a dotprod file built without its -march flag is silently unavailable), and
 * feed inputs the test quantizers never produce: full-range int8 weights and activations (pairs
 * of -128 * -128 overflow int16, which the plain NEON lane sums must widen first), all-zero /
 * all-ones / 0x80 bit patterns of every packed layout, and activation blocks at the edges of the
 * vector path (zero, tiny, subnormal, NaN, inf, ties, equal extremes of both signs, random bits).
 * Tolerance: none. NEON follows the reference's summation order, so every result must have the
 * reference's bits (a NaN may be any NaN) — except where 32-bit NEON flushes subnormals to zero:
 * F32/BF16 rows whose terms are subnormal, checked there against a stated bound instead. */
#if defined(__ARM_NEON) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include "kern/kern_int.h"

#include <sys/auxv.h>

extern const struct kern_isa kern_isa_neon;
extern const struct kern_isa kern_isa_neon_dotprod;

/* kern_neon.c has kernels for this target (32-bit ARM needs VFPv4's fused multiply-add). */
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#define NEON_HAS_TABLE 1
#else
#define NEON_HAS_TABLE 0
#endif

static bool neon_same(float a, float b)
{
    return fbits(a) == fbits(b) || (isnan(a) && isnan(b));
}

static void *neon_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* The NEON variants this CPU can run (plain first). */
static int neon_variants(const struct kern_isa *v[2])
{
    int n = 0;
    if (kern_isa_neon.available()) v[n++] = &kern_isa_neon;
    if (kern_isa_neon_dotprod.available()) v[n++] = &kern_isa_neon_dotprod;
    return n;
}

START_TEST(test_neon_tables)
{
    const struct kern_isa *t[2] = {&kern_isa_neon, &kern_isa_neon_dotprod};
    ck_assert_str_eq(kern_isa_neon.name, "neon");
    ck_assert_str_eq(kern_isa_neon_dotprod.name, "neon-dotprod");
    ck_assert(kern_isa_neon.available && kern_isa_neon_dotprod.available);
    unsigned long hw = getauxval(AT_HWCAP);
#if defined(__aarch64__)
    ck_assert(kern_isa_neon.available());
    /* HWCAP_ASIMDDP (bit 20): the dotprod table runs exactly when the CPU has sdot */
    ck_assert(kern_isa_neon_dotprod.available() == ((hw & (1ul << 20)) != 0));
    int nt = 2; /* the Makefile builds kern_neon_dotprod.c with +dotprod: both tables filled */
#else
    ck_assert(!kern_isa_neon_dotprod.available()); /* aarch64 only */
    int nt = NEON_HAS_TABLE;
    /* HWCAP_ARM_NEON (bit 12) and HWCAP_ARM_VFPv4 (bit 16) */
    if (NEON_HAS_TABLE) ck_assert(kern_isa_neon.available() == ((hw & (1ul << 12)) && (hw & (1ul << 16))));
    else ck_assert(!kern_isa_neon.available());
#endif
    for (int v = 0; v < nt; v++) {
        for (int i = 0; i < N_TYPES; i++)
            ck_assert_msg(t[v]->dot_gemm[k_types[i]] && t[v]->dot_vecdot[k_types[i]], "%s has no %s dot", t[v]->name,
                          blk_type_name(k_types[i]));
        ck_assert(t[v]->act[BLK_T_Q8_0] && t[v]->act[BLK_T_Q8_1] && t[v]->act[BLK_T_Q8_K]);
        ck_assert(t[v]->act[BLK_T_BF16] && t[v]->dot_f32);
    }
    /* the dispatcher prefers NEON (dotprod first) unless told otherwise */
    const char *req = getenv("LMPIPE_ISA");
    if (!req || !*req || !strcmp(req, "auto")) {
        const struct kern_isa *v[2];
        int nv = neon_variants(v);
        ck_assert_str_eq(kern_isa_name(), nv ? v[nv - 1]->name : "scalar");
    }
}
END_TEST

/* Sane fp16 scales for every block of a quantized row whose bytes are a bit pattern. */
static void neon_fix_scales(uint32_t type, void *row, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        uint16_t d = util_f32_to_fp16(0.01f * (float)(1.0 + rng_unif()));
        uint16_t dk = util_f32_to_fp16(0.0005f * (float)(1.0 + rng_unif()));
        uint16_t m = util_f32_to_fp16(-0.1f * (float)rng_unif());
        switch (type) {
        case BLK_T_Q8_0: ((struct blk_q8_0 *)row)[i].d = d; break;
        case BLK_T_Q4_0: ((struct blk_q4_0 *)row)[i].d = d; break;
        case BLK_T_Q5_0: ((struct blk_q5_0 *)row)[i].d = d; break;
        case BLK_T_IQ4_NL: ((struct blk_iq4_nl *)row)[i].d = d; break;
        case BLK_T_Q4_1: ((struct blk_q4_1 *)row)[i].d = d; ((struct blk_q4_1 *)row)[i].m = m; break;
        case BLK_T_Q5_1: ((struct blk_q5_1 *)row)[i].d = d; ((struct blk_q5_1 *)row)[i].m = m; break;
        case BLK_T_Q2_K: ((struct blk_q2_K *)row)[i].d = dk; ((struct blk_q2_K *)row)[i].dmin = dk; break;
        case BLK_T_Q3_K: ((struct blk_q3_K *)row)[i].d = dk; break;
        case BLK_T_Q4_K: ((struct blk_q4_K *)row)[i].d = dk; ((struct blk_q4_K *)row)[i].dmin = dk; break;
        case BLK_T_Q5_K: ((struct blk_q5_K *)row)[i].d = dk; ((struct blk_q5_K *)row)[i].dmin = dk; break;
        case BLK_T_Q6_K: ((struct blk_q6_K *)row)[i].d = dk; break;
        case BLK_T_IQ4_XS: ((struct blk_iq4_xs *)row)[i].d = dk; break;
        default: break;
        }
    }
}

/* Byte pattern `rep` of packed quants: random, 0x80, all ones, all zeros. */
static uint8_t neon_wbyte(int rep)
{
    return rep == 0 ? rng_byte() : rep == 1 ? 0x80 : rep == 2 ? 0xFF : 0x00;
}

/* Activation int8 pattern `rep`: random, all -128, all 127, random. */
static int8_t neon_abyte(int rep)
{
    return (int8_t)(rep == 1 ? 0x80 : rep == 2 ? 0x7F : rng_byte());
}

/* A weight row of n elements: bit patterns for quantized types, normal floats for float types
 * (F16 rows of random bits include subnormal halves, which every NEON target converts exactly). */
static void neon_fill_row(uint32_t type, int rep, void *row, size_t n)
{
    switch (type) {
    case BLK_T_F32:
        for (size_t i = 0; i < n; i++) ((float *)row)[i] = rng_gauss() * (rep == 2 ? 1e3f : 0.02f);
        return;
    case BLK_T_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = rep == 3 ? (uint16_t)rng_next() : util_f32_to_fp16(rng_gauss() * (rep == 2 ? 1e3f : 0.02f));
            if ((h & 0x7C00) == 0x7C00) h &= 0xBFFF; /* no inf / NaN */
            ((uint16_t *)row)[i] = h;
        }
        return;
    case BLK_T_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)row)[i] = util_f32_to_bf16(rng_gauss() * (rep == 2 ? 1e3f : 0.02f));
        return;
    default: {
        const struct blk_type_info *ti = blk_type_info(type);
        size_t nb = n / ti->blck;
        for (size_t i = 0; i < nb * ti->size; i++) ((uint8_t *)row)[i] = neon_wbyte(rep);
        neon_fix_scales(type, row, nb);
    }
    }
}

/* A prepared activation of n elements made directly (not by kern_act_prepare), so its quants
 * cover the full int8 range; Q8_1 s and Q8_K bsums are consistent with the quants. */
static void neon_fill_act(uint32_t act_type, int rep, void *act, size_t n)
{
    switch (act_type) {
    case BLK_T_F32:
        for (size_t i = 0; i < n; i++) ((float *)act)[i] = rng_gauss() * (rep == 2 ? 37.0f : 1.0f);
        return;
    case BLK_T_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)act)[i] = util_f32_to_fp16(rng_gauss() * (rep == 2 ? 37.0f : 1.0f));
        return;
    case BLK_T_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)act)[i] = util_f32_to_bf16(rng_gauss() * (rep == 2 ? 37.0f : 1.0f));
        return;
    case BLK_T_Q8_0:
        for (size_t b = 0; b < n / 32; b++) {
            struct blk_q8_0 *y = (struct blk_q8_0 *)act + b;
            y->d = util_f32_to_fp16(0.01f * (float)(1.0 + rng_unif()));
            for (int j = 0; j < 32; j++) y->qs[j] = neon_abyte(rep);
        }
        return;
    case BLK_T_Q8_1:
        for (size_t b = 0; b < n / 32; b++) {
            struct blk_q8_1 *y = (struct blk_q8_1 *)act + b;
            float d = 0.01f * (float)(1.0 + rng_unif());
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += y->qs[j] = neon_abyte(rep);
            y->d = util_f32_to_fp16(d);
            y->s = util_f32_to_fp16(d * (float)sum);
        }
        return;
    default: /* Q8_K */
        for (size_t b = 0; b < n / 256; b++) {
            struct blk_q8_K *y = (struct blk_q8_K *)act + b;
            y->d = 0.01f * (float)(1.0 + rng_unif());
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += y->qs[16 * g + j] = neon_abyte(rep);
                y->bsums[g] = (int16_t)sum;
            }
        }
    }
}

/* Every dot of every NEON variant == the reference's, bit for bit: 1, 2, 3, 7 and 9 blocks (odd
 * tails; IQ4_NL's paired blocks), ragged lengths for the float types, four bit patterns. */
START_TEST(test_neon_dots)
{
    const uint32_t type = k_types[_i];
    const struct kern_isa *v[2];
    const int nv = neon_variants(v);
    if (nv == 0) return;
    const struct kern_type_ops *ref = &kern_ref_ops[type];
    const size_t blk = blck_of(type) < 32 ? 32 : blck_of(type);
    static const size_t nblk[] = {1, 2, 3, 7, 9};
    for (size_t bi = 0; bi < sizeof nblk / sizeof nblk[0]; bi++)
        for (int rep = 0; rep < 4; rep++) {
            size_t n = blk * nblk[bi];
            if (blck_of(type) == 1) n -= (size_t)(rep * 5 + (int)bi) % 13; /* 19..288: every tail shape */
            void *w = neon_alloc((size_t)blk_row_size(type, n));
            void *a = neon_alloc((size_t)blk_row_size(ref->act_type, n));
            neon_fill_row(type, rep, w, n);
            neon_fill_act(ref->act_type, rep, a, n);
            const float g0 = ref->dot_gemm(w, a, n), v0 = ref->dot_vecdot(w, a, n);
            for (int k = 0; k < nv; k++) {
                const float g1 = v[k]->dot_gemm[type](w, a, n), v1 = v[k]->dot_vecdot[type](w, a, n);
                ck_assert_msg(neon_same(g0, g1), "%s %s gemm n=%zu rep=%d: %.9g vs ref %.9g", v[k]->name,
                              blk_type_name(type), n, rep, (double)g1, (double)g0);
                ck_assert_msg(neon_same(v0, v1), "%s %s vecdot n=%zu rep=%d: %.9g vs ref %.9g", v[k]->name,
                              blk_type_name(type), n, rep, (double)v1, (double)v0);
                if (type == BLK_T_F32)
                    ck_assert(neon_same(kern_ref_dot_f32(w, a, n), v[k]->dot_f32(w, a, n)));
            }
            free(w);
            free(a);
        }
}
END_TEST

/* Activation inputs at the edges of the NEON vector path: n floats, the block patterns in each
 * whole block of `blk`. */
static void neon_edge_values(int pat, float *x, size_t n, size_t blk)
{
    for (size_t i = 0; i < n; i++) x[i] = rng_gauss();
    switch (pat) {
    case 1: /* zero blocks, signed zeros */
        for (size_t i = 0; i < n; i++) x[i] = (i & 1) ? -0.0f : 0.0f;
        break;
    case 2: /* block maximum below the vector path's 2^-100 threshold: the scalar path */
        for (size_t i = 0; i < n; i++) x[i] *= 1e-35f;
        break;
    case 3: /* just above it, with subnormal elements (which 32-bit NEON would flush) */
        for (size_t i = 0; i < n; i++) x[i] = i % 3 ? x[i] * 1e-29f : (i % 2 ? 1e-39f : -3e-42f);
        break;
    case 4: /* a NaN in every block */
        for (size_t b = 0; b + blk <= n; b += blk) x[b + (b / blk * 7) % blk] = NAN;
        break;
    case 5: /* +-inf in every block */
        for (size_t b = 0; b + blk <= n; b += blk) x[b + (b / blk * 5) % blk] = (b / blk) % 2 ? INFINITY : -INFINITY;
        break;
    case 6: /* amax = 127 so the multiplier is 1: every other value is a tie (k + 0.5) */
        for (size_t i = 0; i < n; i++) x[i] = (float)((int)(rng_next() % 253) - 126) + ((i & 1) ? 0.5f : 0.0f);
        for (size_t b = 0; b + blk <= n; b += blk) x[b + 3] = (b / blk) % 2 ? -127.0f : 127.0f;
        break;
    case 7: /* equal extremes of both signs: Q8_K takes the sign of the first */
        for (size_t b = 0; b + blk <= n; b += blk) {
            float e = (b / blk) % 2 ? 9.0f : -9.0f;
            x[b + 1] = e;
            x[b + blk - 2] = -e;
        }
        break;
    case 8: /* huge and tiny together */
        for (size_t i = 0; i < n; i++) x[i] *= i % 4 == 0 ? 1e37f : 1e-20f;
        break;
    case 9: /* the whole block subnormal */
        for (size_t i = 0; i < n; i++) x[i] *= 1e-39f;
        break;
    case 10: /* a tiny normal maximum (multiplier ~1.3e38) over subnormals that quantize to +-1
              * (what flushing would make 0) */
        for (size_t i = 0; i < n; i++) x[i] = (i % 2 ? 1.0f : -1.0f) * (i % 3 ? 6e-39f : 1.1e-38f);
        for (size_t b = 0; b + blk <= n; b += blk) x[b + 2] = 1e-36f;
        break;
    default: /* random bit patterns: NaN, inf, subnormals, every exponent */
        for (size_t i = 0; i < n; i++) x[i] = bitsf((uint32_t)rng_next());
        break;
    }
}

/* Prepared activations of every NEON variant == the reference's, byte for byte. */
START_TEST(test_neon_act_edges)
{
    static const uint32_t act_types[] = {BLK_T_Q8_0, BLK_T_Q8_1, BLK_T_Q8_K, BLK_T_F16, BLK_T_BF16};
    const struct kern_isa *v[2];
    const int nv = neon_variants(v);
    if (nv == 0) return;
    for (size_t ti = 0; ti < sizeof act_types / sizeof act_types[0]; ti++) {
        const uint32_t at = act_types[ti];
        const size_t blk = at == BLK_T_Q8_K ? 256 : 32;
        /* 3 blocks; the float types a ragged length (vector body and scalar tail) */
        const size_t n = at == BLK_T_F16 || at == BLK_T_BF16 ? 3 * blk + 3 : 3 * blk;
        const size_t sz = (size_t)blk_row_size(at, n);
        float *x = neon_alloc(n * 4);
        uint8_t *r0 = neon_alloc(sz), *r1 = neon_alloc(sz);
        for (int pat = 0; pat < 15; pat++) {
            neon_edge_values(pat, x, n, blk);
            memset(r0, 0xA5, sz);
            kern_ref_act(at)(x, r0, n);
            for (int k = 0; k < nv; k++) {
                if (!v[k]->act[at]) continue; /* F16 on 32-bit ARM: the reference's */
                memset(r1, 0x5A, sz);
                v[k]->act[at](x, r1, n);
                size_t off = 0;
                while (off < sz && r0[off] == r1[off]) off++;
                ck_assert_msg(off == sz, "%s act %s pattern %d: byte %zu differs (%02x vs ref %02x)", v[k]->name,
                              blk_type_name(at), pat, off, off < sz ? r1[off] : 0, off < sz ? r0[off] : 0);
            }
        }
        free(x);
        free(r0);
        free(r1);
    }
}
END_TEST

/* F32 / BF16 rows whose terms are subnormal: exact on aarch64; on 32-bit ARM, where NEON
 * flushes subnormal inputs and results to zero, the difference is what the flushed terms and the
 * roundings they touch can add up to: at most 1e-6 of sum |terms| plus n * 2^-120. */
START_TEST(test_neon_subnormal_terms)
{
    const struct kern_isa *v[2];
    const int nv = neon_variants(v);
    if (nv == 0) return;
    enum { N = 203 };
    float x[N], y[N];
    uint16_t xb[N], yb[N];
    for (int rep = 0; rep < 20; rep++) {
        double mag = 0, magb = 0;
        for (int i = 0; i < N; i++) {
            x[i] = rng_gauss() * (i % 3 == 0 ? 1e-39f : i % 3 == 1 ? 1e-20f : 1e-18f);
            y[i] = rng_gauss() * (rep % 2 ? 1e-19f : 1.0f);
            xb[i] = util_f32_to_bf16(x[i]);
            yb[i] = util_f32_to_bf16(y[i]);
            mag += fabs((double)x[i] * y[i]);
            magb += fabs((double)util_bf16_to_f32(xb[i]) * util_bf16_to_f32(yb[i]));
        }
        for (int k = 0; k < nv; k++)
            for (size_t n = 200; n <= N; n += 3) { /* 200: tinyBLAS order, 203: vec_dot with a tail */
                float r[5] = {kern_ref_ops[BLK_T_F32].dot_gemm(x, y, n), kern_ref_ops[BLK_T_F32].dot_vecdot(x, y, n),
                              kern_ref_dot_f32(x, y, n), kern_ref_ops[BLK_T_BF16].dot_gemm(xb, yb, n),
                              kern_ref_ops[BLK_T_BF16].dot_vecdot(xb, yb, n)};
                float g[5] = {v[k]->dot_gemm[BLK_T_F32](x, y, n), v[k]->dot_vecdot[BLK_T_F32](x, y, n),
                              v[k]->dot_f32(x, y, n), v[k]->dot_gemm[BLK_T_BF16](xb, yb, n),
                              v[k]->dot_vecdot[BLK_T_BF16](xb, yb, n)};
                for (int j = 0; j < 5; j++) {
#if defined(__aarch64__)
                    ck_assert_msg(neon_same(r[j], g[j]), "%s subnormal terms #%d n=%zu: %a vs ref %a", v[k]->name, j, n,
                                  (double)g[j], (double)r[j]);
#else
                    double tol = 1e-6 * (j < 3 ? mag : magb) + (double)n * 0x1.0p-120;
                    ck_assert_msg(fabs((double)g[j] - (double)r[j]) <= tol, "%s subnormal terms #%d n=%zu: %a vs ref %a",
                                  v[k]->name, j, n, (double)g[j], (double)r[j]);
#endif
                }
            }
    }
}
END_TEST
#endif /* __ARM_NEON */

/* ------------------------------------------------------------------------------------------ */

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("kern");

    TCase *tc = tcase_create("convert");
    tcase_add_test(tc, test_fp16_special);
    tcase_add_test(tc, test_bf16_special);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_supported);
    tcase_add_loop_test(tc, test_vec_dot_matches_dequant, 0, N_TYPES);
    tcase_add_test(tc, test_q8_0_rounding);
    tcase_add_test(tc, test_q8_1_q8_K_act);
    tcase_add_test(tc, test_softmax_silu_wsum);
    tcase_add_test(tc, test_dot_f32_rows);
    suite_add_tcase(s, tc);

    tc = tcase_create("known_answer");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_known_answer, 0, N_KATS);
    suite_add_tcase(s, tc);

#ifdef HAVE_X86_CHECK
    tc = tcase_create("x86_order");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_x86_bit_exact);
    tcase_add_test(tc, test_x86_bit_exact_more);
    suite_add_tcase(s, tc);
#endif

    tc = tcase_create("isa");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_isa_matches_reference, 0, N_TYPES);
    tcase_add_loop_test(tc, test_matmul_matches_vec_dot, 0, N_TYPES);
    tcase_add_loop_test(tc, test_matmul_long_rows, 0, 5);
    tcase_add_test(tc, test_isa_helpers_match_reference);
    suite_add_tcase(s, tc);

#if defined(__ARM_NEON) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    tc = tcase_create("neon");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_neon_tables);
    tcase_add_loop_test(tc, test_neon_dots, 0, N_TYPES);
    tcase_add_test(tc, test_neon_act_edges);
    tcase_add_test(tc, test_neon_subnormal_terms);
    suite_add_tcase(s, tc);
#endif

    tc = tcase_create("attn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dot_f16_rows);
    tcase_add_test(tc, test_wsum_f16);
    tcase_add_test(tc, test_fattn_q8_0);
    tcase_add_test(tc, test_fwht);
    tcase_add_test(tc, test_attn_qk);
    tcase_add_test(tc, test_attn_pv);
    tcase_add_test(tc, test_attn_wide_vs_reference);
    tcase_add_test(tc, test_round_f16);
    suite_add_tcase(s, tc);

    tc = tcase_create("pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pool_tasks_once);
    tcase_add_test(tc, test_pool_nested);
    tcase_add_test(tc, test_pool_sleep_wake);
    tcase_add_loop_test(tc, test_matvec_deterministic, 0, N_TYPES);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
