/* kern_avx2: x86 AVX2 + FMA + F16C versions of the hot kernels (`kern_isa_avx2`), and the
 * shared body of the avx-vnni tier and of the avx512 tier's base table (see KERN_X86_VNNI).
 *
 * What: activation preparation (Q8_0, Q8_1, Q8_K, F16, BF16), row dot products for all 15
 * weight types in both summation orders, kern_dot_f32, F16 dequantization, tile kernels
 * (several rows x several tokens) for kern_matvec / kern_matmul on the types that dominate real
 * files (Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, Q5_0, IQ4_NL), and ggml's exp-based softmax / SiLU /
 * SwiGLU and the attention-weighted V sum (`kern_ext_avx2`, kern_int.h).
 *
 * Where the time goes (TinyLlama-shape Q4_K_M, one core, this file's numbers): decode streams
 * ~640 MB of weights per token and is bound by DRAM bandwidth, so the per-row kernels prefetch
 * ahead (pf_row) to overlap memory with compute; prefill is bound by the integer multiply
 * units (16 maddubs/madd per 256 weights per token), so the tiles amortize everything else.
 *
 * Why bit-identical is possible: kern_ref.c is written in the summation order of llama.cpp's
 * AVX2 kernels (8 f32 lanes, lane k = integer sum of elements 4k..4k+3 of each 32-group, FMA
 * per block or super-block, hsum_float_8 at the end). Integer parts are exact here too, so the
 * only requirement is to perform the same float operations in the same order: every function
 * below returns exactly the reference's bits (tests/check_kern.c compares them on random data
 * and odd block counts). The one exception is the payload of a NaN result when a block scale is
 * a NaN (the hardware half->float conversion quiets it): the value is NaN either way.
 *
 * Invariants:
 *  - integer lanes never saturate: maddubs pairs are |w| <= 128 times |a| <= 127 (prepared
 *    activations never hold -128: |x * 127/amax| rounds to at most 127), so 2*128*127 < 32767;
 *    the sign trick (sign_epi8(a, w)) is exact for the same reason;
 *  - no function reads or writes past the n elements / n/blck blocks it is given (no
 *    over-reading loads at row ends, so exact-size buffers are safe under ASan); only
 *    prefetch hints (which never fault and are not reads) look beyond;
 *  - tile kernels compute every (row, token) output with exactly the per-row function's
 *    operations: they only share loads and unpacking between independent accumulators;
 *  - nothing allocates; everything is reentrant.
 * Float expressions are never contracted implicitly (gcc in ISO C mode does not; clang is told
 * below); every FMA is explicit. The file compiles to an empty, never-available table when the
 * compiler does not target x86 with AVX2/FMA/F16C, plus the variant's VNNI flags (the Makefile
 * gives each file its flags: -mavx2 -mfma -mf16c, and -mavxvnni / -mavx512* for the others). */
#include "kern_int.h"

/* Which variant this translation unit builds: kern_avxvnni.c and kern_avx512.c include this file
 * with KERN_X86_VNNI set, so the three x86 tiers share one body and differ only in how int8
 * products become 32-bit lanes (x86_lanes_u8, x86_acc_madd below):
 *   0  avx2:      maddubs + madd, the table `kern_isa_avx2`;
 *   1  avx-vnni:  VEX vpdpbusd / vpdpwssd (256-bit VNNI), `kern_isa_avxvnni`;
 *   2  avx512:    EVEX vpdpbusd / vpdpwssd on ymm, the base table `kern_isa_avx512_base` that
 *                 kern_avx512.c lays its 512-bit kernels over (not a tier of its own). */
#ifndef KERN_X86_VNNI
#define KERN_X86_VNNI 0
#endif
#if KERN_X86_VNNI == 0
#define X86_ISA_SYM kern_isa_avx2
#define X86_EXT_SYM kern_ext_avx2
#define X86_ISA_NAME "avx2"
#define X86_AVAILABLE kern_cpu_has_avx2
#define X86_VNNI_OK 1
#elif KERN_X86_VNNI == 1
#define X86_ISA_SYM kern_isa_avxvnni
#define X86_EXT_SYM kern_ext_avxvnni
#define X86_ISA_NAME "avx-vnni"
#define X86_AVAILABLE kern_cpu_has_avxvnni
#if defined(__AVXVNNI__)
#define X86_VNNI_OK 1
#endif
#else
#define X86_ISA_SYM kern_isa_avx512_base
#define X86_EXT_SYM kern_ext_avx512_base
#define X86_ISA_NAME "avx512"
#define X86_AVAILABLE kern_cpu_has_avx512
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512F__)
#define X86_VNNI_OK 1
#endif
#endif
#ifndef X86_VNNI_OK
#define X86_VNNI_OK 0
#endif

#if (defined(__x86_64__) || defined(__i386__)) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && \
    X86_VNNI_OK

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* KEEP(v): v must exist in a register here. Stops gcc from re-associating a chain of integer
 * adds into a tree, which makes it compute every product first and spill them to the stack. */
#if defined(__GNUC__) || defined(__clang__)
#define KEEP(v) __asm__("" : "+x"(v))
#else
#define KEEP(v) (void)0
#endif

/* Hot helpers must inline into their loops: an out-of-line call costs a vzeroupper and spills. */
#if defined(__GNUC__) || defined(__clang__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

HOT float avx2_h2f(uint16_t h)
{
    return _cvtsh_ss(h); /* exact for every finite and infinite half */
}

/* hsum_float_8 / kern_hsum8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
HOT float hsum8(__m256 x)
{
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* kern_hsum8_hadd: (t0+t1)+(t2+t3) with t = lo128 + hi128. */
static inline float hsum8_hadd(__m256 x)
{
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

HOT __m256i loadu256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

HOT __m128i loadu128(const void *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

/* The integer primitives of the variants (exact: see the invariants; vpdpbusd does not saturate,
 * and where maddubs would not saturate either the lanes are the same numbers). */
#if KERN_X86_VNNI == 1
#define X86_DPBUSD _mm256_dpbusd_avx_epi32
#define X86_DPWSSD _mm256_dpwssd_avx_epi32
#elif KERN_X86_VNNI == 2
#define X86_DPBUSD _mm256_dpbusd_epi32
#define X86_DPWSSD _mm256_dpwssd_epi32
#endif

/* Eight i32 lanes: lane k = sum of u[j]*s[j], j = 4k..4k+3 (u unsigned, s signed bytes; pairs
 * never reach the int16 limit, see the invariants). */
HOT __m256i x86_lanes_u8(__m256i u, __m256i s)
{
#if KERN_X86_VNNI
    return X86_DPBUSD(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* acc + madd(p16, sc16): int16 pairs multiplied and summed into the 32-bit lanes. */
HOT __m256i x86_acc_madd(__m256i acc, __m256i p16, __m256i sc16)
{
#if KERN_X86_VNNI
    return X86_DPWSSD(acc, p16, sc16);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, sc16));
#endif
}

/* Eight i32 lanes: lane k = sum of w[j]*a[j], j = 4k..4k+3 (w signed, a signed, see invariants). */
HOT __m256i dot_i8_lanes(__m256i w, __m256i a)
{
    return x86_lanes_u8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

/* As dot_i8_lanes with w unsigned (0..127). */
HOT __m256i dot_u8_lanes(__m256i w, __m256i a)
{
    return x86_lanes_u8(w, a);
}

/* 32 nibbles of 16 bytes: low nibbles in bytes 0..15, high in 16..31. */
HOT __m256i nibbles32(const uint8_t *p)
{
    const __m128i t = loadu128(p);
    const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Byte j = 0xFF where bit j of the little-endian 32-bit word at p is set. */
HOT __m256i bits32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* IQ4_NL code values of 16 packed bytes: low nibbles then high nibbles. */
HOT __m256i iq4_32(const uint8_t *qs)
{
    const __m128i values = loadu128(kern_iq4nl_values);
    const __m128i bits = loadu128(qs), m4 = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_shuffle_epi8(values, _mm_and_si128(bits, m4));
    const __m128i hi = _mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(bits, 4), m4));
    return _mm256_insertf128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* F32 / F16 / BF16                                                                           */

/* kern_ref.c f32_tail: the gcc-vectorized tail of ggml_vec_dot_f32, element by element. */
static float f32_tail(const float *x, const float *y, size_t i, size_t n, float sumf)
{
    for (; n - i >= 8; i += 8) {
        float p[8];
        _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        for (int k = 0; k < 8; k++) sumf = sumf + p[k];
    }
    if (n - i >= 4) {
        float p[4];
        _mm_storeu_ps(p, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
        for (int k = 0; k < 4; k++) sumf = sumf + p[k];
        i += 4;
    }
    for (; i < n; i++) sumf = fmaf(x[i], y[i], sumf);
    return sumf;
}

/* The vector part of GGML_F32x8_REDUCE of four accumulators: (s0 + s2) + (s1 + s3). */
static inline __m256 reduce4_v(__m256 s0, __m256 s1, __m256 s2, __m256 s3)
{
    return _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
}

/* GGML_F32x8_REDUCE of four accumulators. */
static inline float reduce4(__m256 s0, __m256 s1, __m256 s2, __m256 s3)
{
    return hsum8_hadd(reduce4_v(s0, s1, s2, s3));
}

/* ggml_vec_dot_f32's main loop over the first np (a multiple of 32) elements, reduced to the
 * vector that hsum8_hadd finishes (the tail np..n is the caller's). */
static inline __m256 f32_blocks(const float *x, const float *y, size_t np)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    return reduce4_v(s0, s1, s2, s3);
}

static float dot_f32_vecdot(const void *wv, const void *av, size_t n)
{
    const float *x = wv, *y = av;
    size_t np = n & ~(size_t)31;
    return f32_tail(x, y, np, n, hsum8_hadd(f32_blocks(x, y, np)));
}

static float dot_f32_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_f32_vecdot(wv, av, n);
    const float *x = wv, *y = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc);
    return hsum8(acc);
}

static float dot_f32_pub(const float *a, const float *b, size_t n)
{
    return dot_f32_vecdot(a, b, n);
}

/* hsum8_hadd of eight vectors at once, into out[0..8): lo + hi per vector (the two 128-bit halves
 * brought together by permutes), then the two hadd steps, which leave the results in lane order
 * 0 2 4 6 1 3 5 7 (undone by the final permute). Same additions on the same operands. */
HOT void hsum8_hadd_x8(float *out, const __m256 red[8])
{
    __m256 t[4];
    for (int j = 0; j < 4; j++)
        t[j] = _mm256_add_ps(_mm256_permute2f128_ps(red[2 * j], red[2 * j + 1], 0x20),
                             _mm256_permute2f128_ps(red[2 * j], red[2 * j + 1], 0x31));
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(t[0], t[1]), _mm256_hadd_ps(t[2], t[3]));
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* kern_dot_f32_rows: 8 keys at a time. Each key keeps dot_f32_vecdot's four accumulators; the
 * eight reduce4 horizontal sums then run lane-parallel: lo + hi per key (the two 128-bit halves
 * are brought together by permutes), then the two hadd steps of hsum8_hadd, which leave the
 * keys in lane order 0 2 4 6 1 3 5 7. Same additions on the same operands: same bits. */
static void dot_f32_rows_avx2(float *out, const float *q, const float *k, size_t ks, size_t n, size_t n_rows)
{
    const size_t np = n & ~(size_t)31;
    size_t r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        __m256 red[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) red[j] = f32_blocks(q, k + (r + (size_t)j) * ks, np);
        hsum8_hadd_x8(out + r, red);
        if (np < n)
            for (size_t j = 0; j < 8; j++) out[r + j] = f32_tail(q, k + (r + j) * ks, np, n, out[r + j]);
    }
    for (; r < n_rows; r++) out[r] = dot_f32_vecdot(q, k + r * ks, n);
}

static inline __m256 load_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(loadu128(p));
}

/* ggml_vec_dot_f16's main loop over np (a multiple of 32) elements, reduced to the vector that
 * hsum8_hadd finishes. Products of two halves are exact in f32, so an FMA rounds exactly like the
 * reference's multiply-then-add. */
static inline __m256 f16_blocks(const uint16_t *x, const uint16_t *y, size_t np)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), s0);
        s1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), load_f16x8(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), load_f16x8(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), load_f16x8(y + i + 24), s3);
    }
    return reduce4_v(s0, s1, s2, s3);
}

static float dot_f16_vecdot(const void *wv, const void *av, size_t n)
{
    const uint16_t *x = wv, *y = av;
    size_t np = n & ~(size_t)31;
    double sumf = (double)hsum8_hadd(f16_blocks(x, y, np));
    for (size_t i = np; i < n; i++) sumf += (double)(avx2_h2f(x[i]) * avx2_h2f(y[i]));
    return (float)sumf;
}

static float dot_f16_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_f16_vecdot(wv, av, n);
    const uint16_t *x = wv, *y = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) acc = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), acc);
    return hsum8(acc);
}

static inline __m256 load_bf16x8(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
}

static inline float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float dot_bf16_vecdot(const void *wv, const void *av, size_t n)
{
    const uint16_t *x = wv, *y = av;
    size_t np = n & ~(size_t)31;
    __m256 c1 = _mm256_setzero_ps(), c2 = c1, c3 = c1, c4 = c1;
    for (size_t i = 0; i < np; i += 32) {
        c1 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), c1);
        c2 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8), c2);
        c3 = _mm256_fmadd_ps(load_bf16x8(x + i + 16), load_bf16x8(y + i + 16), c3);
        c4 = _mm256_fmadd_ps(load_bf16x8(x + i + 24), load_bf16x8(y + i + 24), c4);
    }
    double sumf = (double)hsum8(_mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4)));
    for (size_t i = np; i < n; i++) sumf += (double)(bf2f(x[i]) * bf2f(y[i]));
    return (float)sumf;
}

static float dot_bf16_gemm(const void *wv, const void *av, size_t n)
{
    if (n % 8) return dot_bf16_vecdot(wv, av, n);
    const uint16_t *x = wv, *y = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) acc = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), acc);
    return hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* Activations                                                                                */

/* f32 -> f16, round to nearest even; NaN becomes sign | 0x7e00 like util_f32_to_fp16. */
static void act_f16(const float *x, void *dst, size_t n)
{
    uint16_t *h = dst;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m128i r = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
        const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        if (_mm256_movemask_ps(nan)) {
            uint16_t t[8];
            _mm_storeu_si128((__m128i *)t, r);
            for (int k = 0; k < 8; k++)
                if (x[i + (size_t)k] != x[i + (size_t)k]) t[k] = (uint16_t)((t[k] & 0x8000u) | 0x7e00u);
            r = loadu128(t);
        }
        _mm_storeu_si128((__m128i *)(h + i), r);
    }
    for (; i < n; i++) {
        uint16_t v = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
        h[i] = x[i] != x[i] ? (uint16_t)((v & 0x8000u) | 0x7e00u) : v;
    }
}

/* f32 -> bf16 as util_f32_to_bf16: round half to even by integer add, NaN quieted (| 64). */
static void act_bf16(const float *x, void *dst, size_t n)
{
    uint16_t *h = dst;
    size_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        const __m256i rnd = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
        const __m256i nanv = _mm256_or_si256(u, _mm256_set1_epi32(64 << 16));
        const __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
        const __m256i r = _mm256_srli_epi32(_mm256_blendv_epi8(rnd, nanv, isnan), 16);
        const __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(h + i), p);
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        h[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 64) : (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }
}

/* Max |x| over 32 floats, reduced as ggml's quantize_row_q8_0 does (order is irrelevant for
 * max of non-NaN values). */
static inline float amax32(const float *x, __m256 v[4])
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    return _mm_cvtss_f32(m4);
}

/* Round half to even, convert (out of range -> INT32_MIN) and saturate to int8: 32 values. */
static inline __m256i quant32(const __m256 v[4], __m256 mul, __m256i *sum)
{
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (sum) *sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    /* packs work per 128-bit lane: restore element order */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void act_q8_0(const float *x, void *dst, size_t n)
{
    struct blk_q8_0 *y = dst;
    for (size_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
        __m256 v[4];
        const float amax = amax32(x, v);
        const float d = amax / 127.0f;
        y[ib].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        _mm256_storeu_si256((__m256i *)y[ib].qs, quant32(v, mul, NULL));
    }
}

static void act_q8_1(const float *x, void *dst, size_t n)
{
    struct blk_q8_1 *y = dst;
    for (size_t ib = 0; ib < n / QK8_1; ib++, x += QK8_1) {
        __m256 v[4];
        const float amax = amax32(x, v);
        const float d = amax / 127.0f;
        y[ib].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        __m256i sum;
        _mm256_storeu_si256((__m256i *)y[ib].qs, quant32(v, mul, &sum));
        /* wrapping int32 sum of the unsaturated lanes, as the reference */
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        y[ib].s = _cvtss_sh(d * (float)_mm_cvtsi128_si32(s), _MM_FROUND_TO_NEAREST_INT);
    }
}

/* quantize_row_q8_K_ref: scale from the first element of largest magnitude (with its sign),
 * q = min(127, nearest_int(iscale * x)) with nearest_int(v) = bits(v + 1.5*2^23) - 2^22. */
static void act_q8_K(const float *x, void *dst, size_t n)
{
    struct blk_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t ib = 0; ib < n / QK_K; ib++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        /* max_ps(|v|, m) returns m when |v| is NaN: NaNs are skipped like the reference's
         * `if (ax > amax)`, so amax is exactly the reference's */
        const float amax = _mm_cvtss_f32(m4);
        if (amax == 0.0f) {
            memset(&y[ib], 0, sizeof y[ib]);
            continue;
        }
        /* the first element whose magnitude equals amax gives the signed max */
        float max = amax;
        const __m256 va = _mm256_set1_ps(amax);
        for (int j = 0; j < QK_K; j += 8) {
            const __m256 v = _mm256_loadu_ps(x + j);
            int msk = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), va, _CMP_EQ_OQ));
            if (msk) {
                max = x[j + __builtin_ctz((unsigned)msk)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale), magic = _mm256_set1_ps(12582912.0f);
        const __m256i mant = _mm256_set1_epi32(0x007FFFFF), off = _mm256_set1_epi32(0x00400000);
        const __m256i m127 = _mm256_set1_epi32(127), lowb = _mm256_set1_epi32(0xFF);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_add_ps(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 8 * k)), magic);
                __m256i iv = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), mant), off);
                /* the reference stores (int8_t)min(v, 127): keep the low byte (wrap) */
                q[k] = _mm256_and_si256(_mm256_min_epi32(iv, m127), lowb);
            }
            __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]), _mm256_packus_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[ib].qs + j), p);
        }
        /* bsums: sums of 16 quants */
        for (int g = 0; g < QK_K / 16; g += 2) {
            const __m256i q = loadu256(y[ib].qs + 16 * g);
            __m256i s32 = x86_lanes_u8(_mm256_set1_epi8(1), q); /* 8 x sums of 4, exact */
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            lo = _mm_hadd_epi32(lo, hi); /* [s0+s1, s2+s3, s4+s5, s6+s7] */
            lo = _mm_hadd_epi32(lo, lo);
            y[ib].bsums[g] = (int16_t)_mm_cvtsi128_si32(lo);
            y[ib].bsums[g + 1] = (int16_t)_mm_extract_epi32(lo, 1);
        }
        y[ib].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_0-family dots (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL)                                    */

static float dot_q8_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q8_0 *w = wv, *a = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t ib = 0; ib < n / QK8_0; ib++) {
        const __m256 d = _mm256_set1_ps(avx2_h2f(w[ib].d) * avx2_h2f(a[ib].d));
        const __m256i s = dot_i8_lanes(loadu256(w[ib].qs), loadu256(a[ib].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc);
}

HOT __m256i q4_0_vals(const struct blk_q4_0 *b)
{
    return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
}

static float dot_q4_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_0 *w = wv;
    const struct blk_q8_0 *a = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t ib = 0; ib < n / QK4_0; ib++) {
        const __m256 d = _mm256_set1_ps(avx2_h2f(w[ib].d) * avx2_h2f(a[ib].d));
        const __m256i s = dot_i8_lanes(q4_0_vals(&w[ib]), loadu256(a[ib].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc);
}

static float dot_q4_1(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_1 *w = wv;
    const struct blk_q8_1 *a = av;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (size_t ib = 0; ib < n / QK4_1; ib++) {
        summs = fmaf(avx2_h2f(w[ib].m), avx2_h2f(a[ib].s), summs);
        const __m256 d = _mm256_set1_ps(avx2_h2f(w[ib].d) * avx2_h2f(a[ib].d));
        const __m256i s = dot_u8_lanes(nibbles32(w[ib].qs), loadu256(a[ib].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc) + summs;
}

static float dot_q5_1(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_1 *w = wv;
    const struct blk_q8_1 *a = av;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (size_t ib = 0; ib < n / QK5_1; ib++) {
        summs = fmaf(avx2_h2f(w[ib].m), avx2_h2f(a[ib].s), summs);
        const __m256i q = _mm256_or_si256(nibbles32(w[ib].qs), _mm256_and_si256(bits32(w[ib].qh), _mm256_set1_epi8(0x10)));
        const __m256 d = _mm256_set1_ps(avx2_h2f(w[ib].d) * avx2_h2f(a[ib].d));
        const __m256i s = dot_u8_lanes(q, loadu256(a[ib].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc) + summs;
}

static float dot_q5_0(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_0 *w = wv;
    const struct blk_q8_0 *a = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t ib = 0; ib < n / QK5_0; ib++) {
        /* (nibble | bit << 4) - 16 == nibble | (bit ? 0 : 0xF0) as int8 */
        const __m256i hi = _mm256_andnot_si256(bits32(w[ib].qh), _mm256_set1_epi8((char)0xF0));
        const __m256i q = _mm256_or_si256(nibbles32(w[ib].qs), hi);
        const __m256 d = _mm256_set1_ps(avx2_h2f(w[ib].d) * avx2_h2f(a[ib].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_lanes(q, loadu256(a[ib].qs))), acc);
    }
    return hsum8(acc);
}

static float dot_iq4_nl_gemm(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_nl *w = wv;
    const struct blk_q8_0 *a = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t ib = 0; ib < n / QK4_NL; ib++) {
        const __m256 d = _mm256_set1_ps(avx2_h2f(w[ib].d) * avx2_h2f(a[ib].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_lanes(iq4_32(w[ib].qs), loadu256(a[ib].qs))), acc);
    }
    return hsum8(acc);
}

static float dot_iq4_nl_vecdot(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_nl *w = wv;
    const struct blk_q8_0 *a = av;
    size_t nb = n / QK4_NL, ib = 0;
    __m256 a1 = _mm256_setzero_ps(), a2 = a1;
    for (; ib + 1 < nb; ib += 2) {
        const __m256 d1 = _mm256_set1_ps(avx2_h2f(a[ib].d) * avx2_h2f(w[ib].d));
        const __m256 d2 = _mm256_set1_ps(avx2_h2f(a[ib + 1].d) * avx2_h2f(w[ib + 1].d));
        a1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(dot_i8_lanes(iq4_32(w[ib].qs), loadu256(a[ib].qs))), a1);
        a2 = _mm256_fmadd_ps(d2, _mm256_cvtepi32_ps(dot_i8_lanes(iq4_32(w[ib + 1].qs), loadu256(a[ib + 1].qs))), a2);
    }
    float sumf = hsum8(_mm256_add_ps(a1, a2));
    for (; ib < nb; ib++) {
        const __m256i s = dot_i8_lanes(iq4_32(w[ib].qs), loadu256(a[ib].qs));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        sumf = fmaf(avx2_h2f(a[ib].d) * avx2_h2f(w[ib].d), (float)_mm_cvtsi128_si32(t), sumf);
    }
    return sumf;
}

/* ------------------------------------------------------------------------------------------ */
/* K-quants and IQ4_XS                                                                        */

/* Lo lane: int16 scale 2i, hi lane: 2i+1 (the 16-element split of a 32-element group). */
static inline __m256i shuf_q3k(int i)
{
    const char a = (char)(4 * i), b = (char)(4 * i + 1), c = (char)(4 * i + 2), e = (char)(4 * i + 3);
    return _mm256_setr_epi8(a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, c, e, c, e, c, e, c, e, c, e, c, e, c, e,
                            c, e);
}

/* Four groups' int16 pair products p[k] times their scales (int16 2k of sc for lanes 0-3, 2k+1
 * for 4-7), summed into 32-bit lanes: two independent multiply-add chains, then one add. */
HOT __m256i scaled4(const __m256i p[4], __m256i sc)
{
    const __m256i a = x86_acc_madd(_mm256_madd_epi16(p[0], _mm256_shuffle_epi8(sc, shuf_q3k(0))), p[1],
                                   _mm256_shuffle_epi8(sc, shuf_q3k(1)));
    const __m256i b = x86_acc_madd(_mm256_madd_epi16(p[2], _mm256_shuffle_epi8(sc, shuf_q3k(2))), p[3],
                                   _mm256_shuffle_epi8(sc, shuf_q3k(3)));
    return _mm256_add_epi32(a, b);
}

static float dot_q2_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q2_K *x = wv;
    const struct blk_q8_K *y = av;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * avx2_h2f(x[i].d);
        const float dmin = -(y[i].d * avx2_h2f(x[i].dmin));
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const __m128i ms = loadu128(x[i].scales);
        const __m128i scales8 = _mm_and_si128(ms, m4);
        const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(ms, 4), m4);
        const __m256i prod = _mm256_madd_epi16(_mm256_cvtepi8_epi16(mins8), loadu256(y[i].bsums));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
        const __m256i all = _mm256_cvtepi8_epi16(scales8);
        const __m128i lo = _mm256_castsi256_si128(all), hi = _mm256_extracti128_si256(all, 1);
        const __m256i sc[2] = {_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)};
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; j++) {
            const __m256i bits = loadu256(q2);
            q2 += 32;
            __m256i p[4];
            for (int k = 0; k < 4; k++) {
                const __m256i q8v = loadu256(q8);
                q8 += 32;
                const __m256i q2v = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                p[k] = _mm256_maddubs_epi16(q2v, q8v);
            }
            sumi = _mm256_add_epi32(sumi, scaled4(p, sc[j]));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

static float dot_q3_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q3_K *x = wv;
    const struct blk_q8_K *y = av;
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    const __m256i m3 = _mm256_set1_epi8(3), mone = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * avx2_h2f(x[i].d);
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
        const __m128i lo = _mm256_castsi256_si128(all), hi = _mm256_extracti128_si256(all, 1);
        const __m256i sc[2] = {_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)};
        const __m256i hbits = loadu256(x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        int bit = 0;
        for (int j = 0; j < 2; j++) {
            const __m256i bits = loadu256(q3);
            q3 += 32;
            __m256i p[4];
            for (int k = 0; k < 4; k++, bit++) {
                const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                /* 4 where the high bit is clear (value - 4), else 0 */
                const __m256i qh = _mm256_slli_epi16(
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, bit)), bit), 2);
                const __m256i q8v = loadu256(q8);
                q8 += 32;
                p[k] = _mm256_sub_epi16(_mm256_maddubs_epi16(ql, q8v), _mm256_maddubs_epi16(qh, q8v));
            }
            sumi = _mm256_add_epi32(sumi, scaled4(p, sc[j]));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* Q4_K/Q5_K: the 12 packed bytes of 6-bit scales and mins -> 8 scales then 8 mins as bytes
 * (ggml's utmp), in SIMD. p points at the scales; the 16-byte load ends inside the block (the
 * quants follow), so it never reads past a row. With v = [u0 u1 u2 x] (32-bit words):
 * scales 0-3 = u0 & 0x3f, mins 0-3 = u1 & 0x3f, scales 4-7 = (u2 & 0x0f) | (u0 >> 6 & 3) << 4,
 * mins 4-7 = (u2 >> 4 & 0x0f) | (u1 >> 6 & 3) << 4 (bytewise). */
HOT __m128i k4_scales_mins(const uint8_t *p)
{
    const __m128i v = loadu128(p), m4 = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x3f));
    const __m128i top = _mm_and_si128(_mm_srli_epi16(v, 2), _mm_set1_epi8(0x30)); /* bits 6-7 -> 4-5 */
    const __m128i c = _mm_shuffle_epi32(v, 0xAA);
    const __m128i hi = _mm_or_si128(_mm_unpacklo_epi32(_mm_and_si128(c, m4), _mm_and_si128(_mm_srli_epi16(c, 4), m4)), top);
    return _mm_unpacklo_epi32(lo, hi);
}

/* Shuffle control picking int16 element j of each 128-bit half. */
#define K4_SHUF(j) _mm256_set1_epi16((short)(0x0100 + 0x0202 * (j)))

/* The min term's 4 int32 lanes: lane k = mins[2k]*(bsums 4k + 4k+1) + mins[2k+1]*(4k+2 + 4k+3). */
HOT __m128i k4_mins_prod(__m128i mins16, const int16_t *bsums)
{
    const __m256i q8sums = loadu256(bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
    return _mm_madd_epi16(mins16, q8s);
}

/* [d, dmin] of a Q4_K/Q5_K block times the activation scale: lane 0 = ya*d, lane 1 = ya*dmin
 * (the reference's products; the order of a product's operands does not matter). */
HOT __m128 k4_dmin(const void *dpair, float ya)
{
    uint32_t u;
    memcpy(&u, dpair, 4);
    return _mm_mul_ps(_mm_set1_ps(ya), _mm_cvtph_ps(_mm_cvtsi32_si128((int)u)));
}

/* sumi of one 32-element group pair (low and high nibbles of 32 bytes). */
#define K4_PAIR(bits_lo, bits_hi, j, q8)                                                                    \
    x86_acc_madd(                                                                                           \
        _mm256_madd_epi16(_mm256_shuffle_epi8(scales, K4_SHUF(2 * (j))), _mm256_maddubs_epi16(bits_lo, loadu256(q8))), \
        _mm256_maddubs_epi16(bits_hi, loadu256((q8) + 32)), _mm256_shuffle_epi8(scales, K4_SHUF(2 * (j) + 1)))

/* sumi of a Q4_K super-block: scales = 8 int16 scales in both halves. */
HOT __m256i q4k_sumi(const uint8_t *qs, __m256i scales, const int8_t *q8)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b0 = loadu256(qs), b1 = loadu256(qs + 32), b2 = loadu256(qs + 64), b3 = loadu256(qs + 96);
    const __m256i p0 = K4_PAIR(_mm256_and_si256(b0, m4), _mm256_and_si256(_mm256_srli_epi16(b0, 4), m4), 0, q8);
    const __m256i p1 = K4_PAIR(_mm256_and_si256(b1, m4), _mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), 1, q8 + 64);
    const __m256i p2 = K4_PAIR(_mm256_and_si256(b2, m4), _mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), 2, q8 + 128);
    const __m256i p3 = K4_PAIR(_mm256_and_si256(b3, m4), _mm256_and_si256(_mm256_srli_epi16(b3, 4), m4), 3, q8 + 192);
    return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
}

/* (m0+m2)+(m1+m3) */
HOT float hsum4_m(__m128 m)
{
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

HOT __m128 neg_lane1(__m128 dm)
{
    return _mm_xor_ps(_mm_shuffle_ps(dm, dm, 0x55), _mm_set1_ps(-0.0f));
}

static float dot_q4_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q4_K *x = wv;
    const struct blk_q8_K *y = av;
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m128 dm = k4_dmin(&x[i].d, y[i].d);
        const __m256i ms = _mm256_cvtepu8_epi16(k4_scales_mins(x[i].scales));
        acc_m = _mm_fmadd_ps(neg_lane1(dm), _mm_cvtepi32_ps(k4_mins_prod(_mm256_extracti128_si256(ms, 1), y[i].bsums)), acc_m);
        const __m256i scales = _mm256_permute2x128_si256(ms, ms, 0x00);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(q4k_sumi(x[i].qs, scales, y[i].qs)), acc);
    }
    return hsum8(acc) + hsum4_m(acc_m);
}

/* Exact int sum of the 4 min lanes: (p0+p1)+(p2+p3). */
HOT int32_t hsum4_i(__m128i p)
{
    const __m128i hs = _mm_hadd_epi32(_mm_hadd_epi32(p, _mm_setzero_si128()), _mm_setzero_si128());
    return _mm_cvtsi128_si32(hs);
}

/* sumi of a Q5_K super-block: nibbles plus bit (2j) / (2j+1) of qh as the fifth bit. */
HOT __m256i q5k_sumi(const struct blk_q5_K *b, __m256i scales, const int8_t *q8)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(0x10);
    const __m256i hb = loadu256(b->qh);
    /* fifth bit j of each byte moved to bit 4: (hb << (4 - j)) & 0x10 for j <= 4, else >> */
#define Q5_HI(j) ((j) <= 4 ? _mm256_and_si256(_mm256_slli_epi16(hb, 4 - (j)), m16) : _mm256_and_si256(_mm256_srli_epi16(hb, (j) - 4), m16))
#define Q5_GRP(j)                                                                                                      \
    K4_PAIR(_mm256_or_si256(_mm256_and_si256(loadu256(b->qs + 32 * (j)), m4), Q5_HI(2 * (j))),                        \
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(loadu256(b->qs + 32 * (j)), 4), m4), Q5_HI(2 * (j) + 1)), \
            j, q8 + 64 * (j))
    const __m256i p0 = Q5_GRP(0), p1 = Q5_GRP(1), p2 = Q5_GRP(2), p3 = Q5_GRP(3);
#undef Q5_GRP
#undef Q5_HI
    return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
}

static float dot_q5_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q5_K *x = wv;
    const struct blk_q8_K *y = av;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m128 dm = k4_dmin(&x[i].d, y[i].d);
        const __m256i ms = _mm256_cvtepu8_epi16(k4_scales_mins(x[i].scales));
        const float dmin = -_mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 0x55));
        summs = fmaf(dmin, (float)hsum4_i(k4_mins_prod(_mm256_extracti128_si256(ms, 1), y[i].bsums)), summs);
        const __m256i scales = _mm256_permute2x128_si256(ms, ms, 0x00);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(q5k_sumi(&x[i], scales, y[i].qs)), acc);
    }
    return hsum8(acc) + summs;
}

/* Q6_K: 64 bytes of ql and 32 of qh -> four vectors of unsigned 6-bit values (elements +0, +32,
 * +64, +96 of a 128-element half), each against its 32 activations with scales 2g, 2g+1. */
#define Q6_SHUF(k) shuf_q3k(k)
HOT __m256i q6k_half(const uint8_t *ql, const uint8_t *qh, __m256i s2, const int8_t *q8)
{
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(0x30);
    const __m256i b1 = loadu256(ql), b2 = loadu256(ql + 32), bH = loadu256(qh);
    const __m256i q0 = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_and_si256(_mm256_slli_epi16(bH, 4), m2));
    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_and_si256(_mm256_slli_epi16(bH, 2), m2));
    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), _mm256_and_si256(bH, m2));
    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(bH, 2), m2));
    const __m256i p[4] = {_mm256_maddubs_epi16(q0, loadu256(q8)), _mm256_maddubs_epi16(q1, loadu256(q8 + 32)),
                          _mm256_maddubs_epi16(q2, loadu256(q8 + 64)), _mm256_maddubs_epi16(q3, loadu256(q8 + 96))};
    return scaled4(p, s2);
}

/* 32 * (scale[2k]*bsums[2k] + scale[2k+1]*bsums[2k+1]) per lane k. */
HOT __m256i q6_K_sub(__m256i sc16, const int16_t *bsums)
{
    return _mm256_slli_epi32(_mm256_madd_epi16(loadu256(bsums), sc16), 5);
}

HOT __m256i q6k_sumi(const struct blk_q6_K *b, const int8_t *q8, const int16_t *bsums)
{
    const __m256i all = _mm256_cvtepi8_epi16(loadu128(b->scales)); /* 16 int16 scales */
    const __m256i s_lo = _mm256_permute2x128_si256(all, all, 0x00), s_hi = _mm256_permute2x128_si256(all, all, 0x11);
    const __m256i h0 = q6k_half(b->ql, b->qh, s_lo, q8), h1 = q6k_half(b->ql + 64, b->qh + 32, s_hi, q8 + 128);
    return _mm256_sub_epi32(_mm256_add_epi32(h0, h1), q6_K_sub(all, bsums));
}

static float dot_q6_K(const void *wv, const void *av, size_t n)
{
    const struct blk_q6_K *x = wv;
    const struct blk_q8_K *y = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < n / QK_K; i++) {
        const __m256 d = _mm256_set1_ps(y[i].d * avx2_h2f(x[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q6k_sumi(&x[i], y[i].qs, y[i].bsums)), acc);
    }
    return hsum8(acc);
}

static float dot_iq4_xs(const void *wv, const void *av, size_t n)
{
    const struct blk_iq4_xs *x = wv;
    const struct blk_q8_K *y = av;
    __m256 acc = _mm256_setzero_ps();
    for (size_t ibl = 0; ibl < n / QK_K; ibl++) {
        const uint8_t *qs = x[ibl].qs;
        const int8_t *q8 = y[ibl].qs;
        uint16_t sh = x[ibl].scales_h;
        __m256i s1 = _mm256_setzero_si256(), s2 = s1;
        for (int ib = 0; ib < 8; ib += 2) {
            const __m256i q4b_1 = iq4_32(qs), q4b_2 = iq4_32(qs + 16);
            qs += 32;
            const __m256i q8b_1 = loadu256(q8), q8b_2 = loadu256(q8 + 32);
            q8 += 64;
            const __m256i p16_1 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4b_1, q4b_1), _mm256_sign_epi8(q8b_1, q4b_1));
            const __m256i p16_2 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4b_2, q4b_2), _mm256_sign_epi8(q8b_2, q4b_2));
            const int16_t ls1 = (int16_t)(((x[ibl].scales_l[ib / 2] & 0xf) | ((sh << 4) & 0x30)) - 32);
            const int16_t ls2 = (int16_t)(((x[ibl].scales_l[ib / 2] >> 4) | ((sh << 2) & 0x30)) - 32);
            sh = (uint16_t)(sh >> 4);
            s1 = x86_acc_madd(s1, p16_1, _mm256_set1_epi16(ls1));
            s2 = x86_acc_madd(s2, p16_2, _mm256_set1_epi16(ls2));
        }
        const __m256 d = _mm256_set1_ps(avx2_h2f(x[ibl].d) * y[ibl].d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_add_epi32(s1, s2)), acc);
    }
    return hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* Tile kernels (kern_int.h's kern_tile_fn): rows x tokens                                    */
/* A weight block is unpacked once and multiplied with several tokens' activations (and an     */
/* activation block is reused by several rows while it is in L1); each (row, token) keeps its   */
/* own accumulators and performs exactly the per-row function's float operations, in its order. */
/* One token (decode) is the per-row function itself, row after row, with prefetching.        */

HOT const uint8_t *row_at(const void *w, size_t rb, size_t r)
{
    return (const uint8_t *)w + r * rb;
}

/* Decode streams every weight once from DRAM while the kernel computes; the hardware prefetcher
 * alone lets the two serialize (measured on one core: a Q8_0 matvec from DRAM at 8 GB/s, 12
 * GB/s with this; Q4_K 8.5 -> 11.5 GB/s; 4-8 KiB ahead all do about as well). So before each
 * row, ask for one row-length of bytes starting KERN_PF_AHEAD further on. A prefetch never
 * faults, so running past the matrix end is harmless. */
#define KERN_PF_AHEAD 6144
HOT void pf_row(const uint8_t *row, size_t rb)
{
    const uintptr_t p = (uintptr_t)row + KERN_PF_AHEAD; /* integer math: may point past the matrix */
    for (size_t o = 0; o < rb; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
}

HOT const struct blk_q8_K *q8k_at(const uint8_t *a, size_t as, size_t t, size_t i)
{
    return (const struct blk_q8_K *)(a + t * as) + i;
}

/* The integer sums of one unpacked K-quant super-block (q[g]: 32 unsigned values of group g,
 * sc[g]: its int16 scales) against 4 tokens: group-outer, so each q[g] / sc[g] is loaded once
 * for the 4 tokens. Integer sums are exact, so the grouping does not change them. */
#define KQ_STEP(g)                                                                                    \
    do {                                                                                              \
        const __m256i qg = q[g], sg = sc[g];                                                          \
        s0 = x86_acc_madd(s0, _mm256_maddubs_epi16(qg, loadu256(y0->qs + 32 * (g))), sg);            \
        s1 = x86_acc_madd(s1, _mm256_maddubs_epi16(qg, loadu256(y1->qs + 32 * (g))), sg);            \
        s2 = x86_acc_madd(s2, _mm256_maddubs_epi16(qg, loadu256(y2->qs + 32 * (g))), sg);            \
        s3 = x86_acc_madd(s3, _mm256_maddubs_epi16(qg, loadu256(y3->qs + 32 * (g))), sg);            \
        KEEP(s0);                                                                                     \
        KEEP(s1);                                                                                     \
        KEEP(s2);                                                                                     \
        KEEP(s3);                                                                                     \
    } while (0)

HOT void kq_sumi4(const __m256i q[8], const __m256i sc[8], const struct blk_q8_K *y0,
                            const struct blk_q8_K *y1, const struct blk_q8_K *y2,
                            const struct blk_q8_K *y3, __m256i out[4])
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    KQ_STEP(0);
    KQ_STEP(1);
    KQ_STEP(2);
    KQ_STEP(3);
    KQ_STEP(4);
    KQ_STEP(5);
    KQ_STEP(6);
    KQ_STEP(7);
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

HOT __m256i kq_sumi1(const __m256i q[8], const __m256i sc[8], const struct blk_q8_K *y0)
{
    __m256i s = _mm256_setzero_si256();
    for (int g = 0; g < 8; g++) s = x86_acc_madd(s, _mm256_maddubs_epi16(q[g], loadu256(y0->qs + 32 * g)), sc[g]);
    return s;
}

/* Integer sums of `tg` tokens starting at token t of the group (4 at a time, then singles). */
HOT void kq_sumi(const __m256i q[8], const __m256i sc[8], const uint8_t *a0, size_t as, size_t i, size_t tg,
                           __m256i *sumi)
{
    size_t t = 0;
    for (; t + 4 <= tg; t += 4)
        kq_sumi4(q, sc, q8k_at(a0, as, t, i), q8k_at(a0, as, t + 1, i), q8k_at(a0, as, t + 2, i),
                 q8k_at(a0, as, t + 3, i), sumi + t);
    for (; t < tg; t++) sumi[t] = kq_sumi1(q, sc, q8k_at(a0, as, t, i));
}

/* One unpacked K-quant super-block of a weight row: the 8 groups of 32 unsigned values and their
 * int16 scale vectors, plus what the per-token float step needs. */
struct kq_blk {
    __m256i q[8], sc[8];
    __m256i all6;   /* Q6_K: the 16 scales as int16 (for the -32 offset term) */
    __m128 dw;      /* Q4_K/Q5_K: [d, dmin, 0, 0] */
    __m128i mins;   /* Q4_K/Q5_K: 8 int16 mins */
    float d6;       /* Q6_K: d */
};

HOT void kq_unpack(uint32_t type, const uint8_t *row, size_t i, struct kq_blk *b)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (type == BLK_T_Q4_K || type == BLK_T_Q5_K) {
        const uint8_t *blk = row + i * (type == BLK_T_Q4_K ? sizeof(struct blk_q4_K) : sizeof(struct blk_q5_K));
        const uint8_t *qs = type == BLK_T_Q4_K ? ((const struct blk_q4_K *)blk)->qs
                                                : ((const struct blk_q5_K *)blk)->qs;
        const uint8_t *scales = ((const struct blk_q4_K *)blk)->scales; /* same offset in both */
        uint32_t u;
        memcpy(&u, blk, 4); /* d, dmin */
        b->dw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
        b->d6 = 0.0f;
        b->all6 = _mm256_setzero_si256();
        const __m256i ms = _mm256_cvtepu8_epi16(k4_scales_mins(scales));
        const __m256i sv = _mm256_permute2x128_si256(ms, ms, 0x00);
        b->mins = _mm256_extracti128_si256(ms, 1);
        b->sc[0] = _mm256_shuffle_epi8(sv, K4_SHUF(0));
        b->sc[1] = _mm256_shuffle_epi8(sv, K4_SHUF(1));
        b->sc[2] = _mm256_shuffle_epi8(sv, K4_SHUF(2));
        b->sc[3] = _mm256_shuffle_epi8(sv, K4_SHUF(3));
        b->sc[4] = _mm256_shuffle_epi8(sv, K4_SHUF(4));
        b->sc[5] = _mm256_shuffle_epi8(sv, K4_SHUF(5));
        b->sc[6] = _mm256_shuffle_epi8(sv, K4_SHUF(6));
        b->sc[7] = _mm256_shuffle_epi8(sv, K4_SHUF(7));
        for (int j = 0; j < 4; j++) {
            const __m256i bits = loadu256(qs + 32 * j);
            b->q[2 * j] = _mm256_and_si256(bits, m4);
            b->q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        }
        if (type == BLK_T_Q5_K) {
            const __m256i m16 = _mm256_set1_epi8(0x10);
            const __m256i hb = loadu256(((const struct blk_q5_K *)blk)->qh);
            for (int j = 0; j < 4; j++) { /* fifth bits 2j and 2j+1 of each qh byte to bit 4 */
                b->q[2 * j] = _mm256_or_si256(b->q[2 * j], _mm256_and_si256(_mm256_srli_epi16(_mm256_slli_epi16(hb, 7 - 2 * j), 3), m16));
                b->q[2 * j + 1] =
                    _mm256_or_si256(b->q[2 * j + 1], _mm256_and_si256(_mm256_srli_epi16(_mm256_slli_epi16(hb, 6 - 2 * j), 3), m16));
            }
        }
        return;
    }
    /* Q6_K */
    const struct blk_q6_K *x = (const struct blk_q6_K *)row + i;
    const __m256i m2 = _mm256_set1_epi8(0x30);
    b->d6 = avx2_h2f(x->d);
    b->dw = _mm_setzero_ps();
    b->mins = _mm_setzero_si128();
    b->all6 = _mm256_cvtepi8_epi16(loadu128(x->scales));
    const __m256i s_lo = _mm256_permute2x128_si256(b->all6, b->all6, 0x00);
    const __m256i s_hi = _mm256_permute2x128_si256(b->all6, b->all6, 0x11);
    for (int h = 0; h < 2; h++) {
        const __m256i b1 = loadu256(x->ql + 64 * h), b2 = loadu256(x->ql + 64 * h + 32);
        const __m256i bH = loadu256(x->qh + 32 * h);
        b->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_and_si256(_mm256_slli_epi16(bH, 4), m2));
        b->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_and_si256(_mm256_slli_epi16(bH, 2), m2));
        b->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), _mm256_and_si256(bH, m2));
        b->q[4 * h + 3] =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), _mm256_and_si256(_mm256_srli_epi16(bH, 2), m2));
    }
    b->sc[0] = _mm256_shuffle_epi8(s_lo, Q6_SHUF(0));
    b->sc[1] = _mm256_shuffle_epi8(s_lo, Q6_SHUF(1));
    b->sc[2] = _mm256_shuffle_epi8(s_lo, Q6_SHUF(2));
    b->sc[3] = _mm256_shuffle_epi8(s_lo, Q6_SHUF(3));
    b->sc[4] = _mm256_shuffle_epi8(s_hi, Q6_SHUF(0));
    b->sc[5] = _mm256_shuffle_epi8(s_hi, Q6_SHUF(1));
    b->sc[6] = _mm256_shuffle_epi8(s_hi, Q6_SHUF(2));
    b->sc[7] = _mm256_shuffle_epi8(s_hi, Q6_SHUF(3));
}

/* What the per-token step needs from one activation super-block, made once per (token,
 * super-block) and shared by the rows of a row block. */
struct kq_tok {
    __m128i q8s; /* Q4_K/Q5_K: bsums summed in pairs (8 int16) */
    float ya;    /* the activation scale */
};

/* The per-token float step of one super-block: exactly the per-row dot function's. The row's
 * scales come pre-broadcast: dv = d_w, mv = -dmin_w (Q4_K/Q5_K; ya * -dmin_w is bit for bit
 * -(ya * dmin_w): IEEE multiplication is sign-symmetric). */
HOT void kq_finish(uint32_t type, const struct kq_blk *b, __m256 dv, __m128 mv, const struct kq_tok *tk,
                   const struct blk_q8_K *yb, __m256i sumi, __m256 *acc, __m128 *accm, float *summs)
{
    const __m256 ya = _mm256_broadcast_ss(&tk->ya);
    if (type == BLK_T_Q6_K) {
        const __m256i si = _mm256_sub_epi32(sumi, q6_K_sub(b->all6, yb->bsums));
        *acc = _mm256_fmadd_ps(_mm256_mul_ps(ya, dv), _mm256_cvtepi32_ps(si), *acc);
        return;
    }
    const __m128i prod = _mm_madd_epi16(b->mins, tk->q8s);
    if (type == BLK_T_Q4_K) {
        *accm = _mm_fmadd_ps(_mm_mul_ps(_mm256_castps256_ps128(ya), mv), _mm_cvtepi32_ps(prod), *accm);
    } else {
        *summs = fmaf(tk->ya * _mm_cvtss_f32(mv), (float)hsum4_i(prod), *summs);
    }
    *acc = _mm256_fmadd_ps(_mm256_mul_ps(ya, dv), _mm256_cvtepi32_ps(sumi), *acc);
}

HOT float kq_result(uint32_t type, __m256 acc, __m128 accm, float summs)
{
    if (type == BLK_T_Q4_K) return hsum8(acc) + hsum4_m(accm);
    if (type == BLK_T_Q5_K) return hsum8(acc) + summs;
    return hsum8(acc);
}

#define KT_R 8  /* rows whose accumulators share one pass over a token group's activations */
#define KT_T 16 /* tokens per group: their activation blocks stay in L1 across the rows */

/* Decode (one token): the type's per-row dot function itself, row after row, prefetching ahead.
 * Batches: loop order row block, token group, super-block, row, tokens (4 at a time). The group's
 * activation super-blocks are reused by KT_R rows while hot in L1; each row's super-block is
 * unpacked once per token group. */
HOT void kq_tile(uint32_t type, const void *w, size_t rb, size_t nr, const void *act, size_t as, size_t nt, size_t n,
                 float *y, size_t ys)
{
    if (nt == 1) {
        /* type is a constant in every caller (the tile_* wrappers): a direct call */
        const kern_dot_fn dot = type == BLK_T_Q4_K ? dot_q4_K : type == BLK_T_Q5_K ? dot_q5_K : dot_q6_K;
        for (size_t r = 0; r < nr; r++) {
            pf_row(row_at(w, rb, r), rb);
            y[r] = dot(row_at(w, rb, r), act, n);
        }
        return;
    }
    const size_t nb = n / QK_K;
    for (size_t r0 = 0; r0 < nr; r0 += KT_R) {
        const size_t rr = nr - r0 < KT_R ? nr - r0 : KT_R;
        for (size_t t0 = 0; t0 < nt; t0 += KT_T) {
            const size_t tg = nt - t0 < KT_T ? nt - t0 : KT_T;
            const uint8_t *a0 = (const uint8_t *)act + t0 * as;
            __m256 acc[KT_R][KT_T];
            __m128 accm[KT_R][KT_T];
            float summs[KT_R][KT_T];
            for (size_t r = 0; r < rr; r++)
                for (size_t t = 0; t < tg; t++) {
                    acc[r][t] = _mm256_setzero_ps();
                    accm[r][t] = _mm_setzero_ps();
                    summs[r][t] = 0.0f;
                }
            for (size_t i = 0; i < nb; i++) {
                struct kq_tok tk[KT_T];
                for (size_t t = 0; t < tg; t++) {
                    const struct blk_q8_K *yb = q8k_at(a0, as, t, i);
                    const __m256i bs = loadu256(yb->bsums);
                    tk[t].q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                    tk[t].ya = yb->d;
                }
                for (size_t r = 0; r < rr; r++) {
                    struct kq_blk b;
                    __m256i sumi[KT_T];
                    kq_unpack(type, row_at(w, rb, r0 + r), i, &b);
                    const __m256 dv = _mm256_set1_ps(type == BLK_T_Q6_K ? b.d6 : _mm_cvtss_f32(b.dw));
                    const __m128 mv = _mm_xor_ps(_mm_shuffle_ps(b.dw, b.dw, 0x55), _mm_set1_ps(-0.0f));
                    kq_sumi(b.q, b.sc, a0, as, i, tg, sumi);
                    for (size_t t = 0; t < tg; t++)
                        kq_finish(type, &b, dv, mv, &tk[t], q8k_at(a0, as, t, i), sumi[t], &acc[r][t], &accm[r][t],
                                  &summs[r][t]);
                }
            }
            /* token-major: each token's rows are adjacent in y (row-major would touch one line
             * per token for every row, and with y_stride a multiple of 4 KiB those lines share
             * an L1 set) */
            for (size_t t = 0; t < tg; t++)
                for (size_t r = 0; r < rr; r++) y[(t0 + t) * ys + r0 + r] = kq_result(type, acc[r][t], accm[r][t], summs[r][t]);
        }
    }
}

/* Q8_0-activation types with one scale per 32 weights (Q8_0, Q4_0, Q5_0, IQ4_NL batched):
 * every (row, token) does acc = fma(d_w * d_a, lanes(w . a), acc) per block, then hsum8. The
 * batch tiles keep 1 row x 8 tokens of accumulators in registers; decode goes row by row,
 * prefetching ahead. */

/* The 32 signed weights of block i of a row. */
HOT __m256i q0_weights(uint32_t type, const uint8_t *row, size_t i)
{
    switch (type) {
    case BLK_T_Q8_0: return loadu256(((const struct blk_q8_0 *)row)[i].qs);
    case BLK_T_Q4_0: return q4_0_vals((const struct blk_q4_0 *)row + i);
    case BLK_T_Q5_0: {
        const struct blk_q5_0 *b = (const struct blk_q5_0 *)row + i;
        return _mm256_or_si256(nibbles32(b->qs), _mm256_andnot_si256(bits32(b->qh), _mm256_set1_epi8((char)0xF0)));
    }
    default: return iq4_32(((const struct blk_iq4_nl *)row)[i].qs);
    }
}

HOT size_t q0_bsize(uint32_t type)
{
    return type == BLK_T_Q8_0 ? sizeof(struct blk_q8_0)
           : type == BLK_T_Q5_0 ? sizeof(struct blk_q5_0)
                                 : sizeof(struct blk_q4_0); /* Q4_0 and IQ4_NL: 18 */
}

/* The block's fp16 scale is its first field in all four layouts. */
HOT __m256 q0_dw(const uint8_t *row, size_t i, size_t bs)
{
    uint16_t h;
    memcpy(&h, row + i * bs, 2);
    return _mm256_set1_ps(avx2_h2f(h));
}

/* float(lanes(w . a)) with w signed, a signed (never -128). */
HOT __m256 q0_lanes(__m256i w, __m256i a)
{
    return _mm256_cvtepi32_ps(dot_i8_lanes(w, a));
}

/* One token, 4 rows sharing the activation loads (the token tail of a batch, weights in cache;
 * decode streams rows one at a time instead: four interleaved row streams halve the DRAM
 * throughput here). d_w * d_a is the reference's f32 product (the vector multiply of two
 * broadcasts rounds exactly like the scalar one). */
HOT void q0_rows4(uint32_t type, const uint8_t *w, size_t rb, const struct blk_q8_0 *a, size_t nb, float *y)
{
    const size_t bs = q0_bsize(type);
    const uint8_t *r0 = w, *r1 = w + rb, *r2 = w + 2 * rb, *r3 = w + 3 * rb;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    for (size_t i = 0; i < nb; i++) {
        const __m256i av = loadu256(a[i].qs);
        const __m256 da = _mm256_set1_ps(avx2_h2f(a[i].d));
        c0 = _mm256_fmadd_ps(_mm256_mul_ps(q0_dw(r0, i, bs), da), q0_lanes(q0_weights(type, r0, i), av), c0);
        c1 = _mm256_fmadd_ps(_mm256_mul_ps(q0_dw(r1, i, bs), da), q0_lanes(q0_weights(type, r1, i), av), c1);
        c2 = _mm256_fmadd_ps(_mm256_mul_ps(q0_dw(r2, i, bs), da), q0_lanes(q0_weights(type, r2, i), av), c2);
        c3 = _mm256_fmadd_ps(_mm256_mul_ps(q0_dw(r3, i, bs), da), q0_lanes(q0_weights(type, r3, i), av), c3);
    }
    y[0] = hsum8(c0);
    y[1] = hsum8(c1);
    y[2] = hsum8(c2);
    y[3] = hsum8(c3);
}

/* Batches: 1 row x 8 tokens. da[t * nb + i] holds the activation scales as floats (converted
 * once per token group for all rows), so a (row, token, block) step is load, sign, maddubs,
 * madd, convert, broadcast-load, multiply, FMA, with all 8 accumulators in registers. */
HOT void q0_row_tok8(uint32_t type, const uint8_t *row, const uint8_t *a, size_t as, const float *da, size_t nb, float *y,
                     size_t ys)
{
    const size_t bs = q0_bsize(type);
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (size_t i = 0; i < nb; i++) {
        const __m256i w = q0_weights(type, row, i), aw = _mm256_sign_epi8(w, w);
        const __m256 dw = q0_dw(row, i, bs);
        const uint8_t *ai = a + i * sizeof(struct blk_q8_0) + offsetof(struct blk_q8_0, qs);
#define Q0_T8(t, c)                                                                                          \
    c = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(da + (t) * nb + i)),                          \
                        _mm256_cvtepi32_ps(x86_lanes_u8(aw, _mm256_sign_epi8(loadu256(ai + (t) * as), w))),  \
                        c)
        Q0_T8(0, c0);
        Q0_T8(1, c1);
        Q0_T8(2, c2);
        Q0_T8(3, c3);
        Q0_T8(4, c4);
        Q0_T8(5, c5);
        Q0_T8(6, c6);
        Q0_T8(7, c7);
#undef Q0_T8
    }
    y[0] = hsum8(c0);
    y[ys] = hsum8(c1);
    y[2 * ys] = hsum8(c2);
    y[3 * ys] = hsum8(c3);
    y[4 * ys] = hsum8(c4);
    y[5 * ys] = hsum8(c5);
    y[6 * ys] = hsum8(c6);
    y[7 * ys] = hsum8(c7);
}

/* One row x one token (edges). */
HOT float q0_one(uint32_t type, const uint8_t *row, const struct blk_q8_0 *a, size_t nb)
{
    const size_t bs = q0_bsize(type);
    __m256 c = _mm256_setzero_ps();
    for (size_t i = 0; i < nb; i++)
        c = _mm256_fmadd_ps(_mm256_mul_ps(q0_dw(row, i, bs), _mm256_set1_ps(avx2_h2f(a[i].d))), q0_lanes(q0_weights(type, row, i), loadu256(a[i].qs)), c);
    return hsum8(c);
}

/* Activation scales of 8 tokens as floats, for at most this many blocks per row (32 KiB of
 * stack); longer rows take 4 rows x 1 token steps instead. */
#define Q0_DA_MAX_BLOCKS 1024

HOT void q0_tile(uint32_t type, const void *wv, size_t rb, size_t nr, const void *act, size_t as, size_t nt, size_t n,
                 float *y, size_t ys)
{
    const size_t nb = n / QK8_0;
    const uint8_t *w = wv, *a = act;
    if (nt == 1) {
        for (size_t r = 0; r < nr; r++) {
            pf_row(w + r * rb, rb);
            y[r] = q0_one(type, w + r * rb, act, nb);
        }
        return;
    }
    size_t t = 0;
    if (nb <= Q0_DA_MAX_BLOCKS) {
        float da[8 * Q0_DA_MAX_BLOCKS];
        for (; t + 8 <= nt; t += 8) {
            for (size_t k = 0; k < 8; k++) {
                const struct blk_q8_0 *ak = (const void *)(a + (t + k) * as);
                for (size_t i = 0; i < nb; i++) da[k * nb + i] = avx2_h2f(ak[i].d);
            }
            for (size_t r = 0; r < nr; r++) q0_row_tok8(type, w + r * rb, a + t * as, as, da, nb, y + t * ys + r, ys);
        }
    }
    for (; t < nt; t++) {
        size_t r = 0;
        for (; r + 4 <= nr; r += 4) {
            float o[4];
            q0_rows4(type, w + r * rb, rb, (const void *)(a + t * as), nb, o);
            for (int k = 0; k < 4; k++) y[t * ys + r + (size_t)k] = o[k];
        }
        for (; r < nr; r++) y[t * ys + r] = q0_one(type, w + r * rb, (const void *)(a + t * as), nb);
    }
}

/* The table's tile entries (kern_tile_fn has no type argument): one function per type, each
 * with its type as a constant, so the always-inline kq_tile / q0_tile bodies are specialised.
 * (Left defined: kern_avx512.c, which includes this file, makes its entries with it too.) */
#define TILE_FN(name, body, type)                                                                                   \
    static void name(const void *w, size_t rb, size_t nr, const void *act, size_t as, size_t nt, size_t n, float *y, \
                     size_t ys)                                                                                      \
    {                                                                                                                \
        body(type, w, rb, nr, act, as, nt, n, y, ys);                                                                \
    }
TILE_FN(tile_q4_K, kq_tile, BLK_T_Q4_K)
TILE_FN(tile_q5_K, kq_tile, BLK_T_Q5_K)
TILE_FN(tile_q6_K, kq_tile, BLK_T_Q6_K)
TILE_FN(tile_q8_0, q0_tile, BLK_T_Q8_0)
TILE_FN(tile_q4_0, q0_tile, BLK_T_Q4_0)
TILE_FN(tile_q5_0, q0_tile, BLK_T_Q5_0)
/* IQ4_NL: the batched (tinyBLAS) order only; its single-token order pairs blocks differently. */
TILE_FN(tile_iq4_nl, q0_tile, BLK_T_IQ4_NL)

/* ------------------------------------------------------------------------------------------ */
/* Softmax, SiLU, SwiGLU and the attention-weighted sum (kern_ref.c's ggml-exact definitions)  */

/* ggml_v_expf on 8 lanes: each lane is kern_ref.c's ggml_v_expf1. */
HOT __m256 v_expf(__m256 x)
{
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b =
        _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 plain = _mm256_fmadd_ps(j, k, k);
    if (!_mm256_movemask_ps(c)) return plain;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 d = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    return _mm256_blendv_ps(_mm256_blendv_ps(plain, scaled, c), _mm256_mul_ps(s1, s1), d);
}

/* ggml_v_silu: x / (1 + exp(0 - x)). */
HOT __m256 v_silu(__m256 x)
{
    const __m256 e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* The sequential maximum of the reference, so NaN scores behave the same. */
HOT float softmax_max(const float *x, size_t n)
{
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    return max;
}

/* softmax from element i (a multiple of 8) on, the exponentials of x[0..i) already stored and
 * their sum in `sum` (one double addition per 8-lane hsum8, in order), then the normalization. */
HOT void softmax_from(float *x, size_t n, size_t n_pad, size_t i, float max, double sum)
{
    const __m256 vmax = _mm256_set1_ps(max);
    const size_t nv = n_pad & ~(size_t)7; /* elements through the vector exp */
    for (; i < nv && i < n; i += 8) {
        if (i + 8 <= n) {
            const __m256 v = v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
            _mm256_storeu_ps(x + i, v);
            sum += (double)hsum8(v);
        } else { /* the last group reaches into the padding: those lanes are exactly 0 */
            float t[8];
            for (size_t k = 0; k < 8; k++) t[k] = i + k < n ? x[i + k] : max;
            const __m256 keep = _mm256_cmp_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0), _mm256_set1_ps((float)(n - i)), _CMP_LT_OQ);
            const __m256 v = _mm256_and_ps(v_expf(_mm256_sub_ps(_mm256_loadu_ps(t), vmax)), keep);
            _mm256_storeu_ps(t, v);
            for (size_t k = 0; i + k < n; k++) x[i + k] = t[k];
            sum += (double)hsum8(v);
        }
    }
    for (; i < n; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        x[i] = v;
    }
    const float inv = (float)(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++) x[i] *= inv;
}

static void softmax_avx2(float *x, size_t n, size_t n_pad)
{
    softmax_from(x, n, n_pad, 0, softmax_max(x, n), 0.0);
}

static void swiglu_avx2(float *y, const float *x, const float *g, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(v_silu(_mm256_loadu_ps(x + i)), _mm256_loadu_ps(g + i)));
    for (; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i])) * g[i];
}

static void silu_avx2(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, v_silu(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

/* kern_wsum_f32 / kern_wsum_f16 over a transposed V (kern_vt / kern_vt_f16): each output dim is
 * a dot product of contiguous cells with p, vectorized over cells, which is exactly how the
 * references' accumulators are laid out (lane = cell % 8, and blocks hold whole groups of 32
 * cells). Cells t >= n are not read: the group that holds n loads them masked (f32) or from a
 * zero-padded copy (halves) and keeps the old accumulator lanes (blend), as the references skip
 * them. One body serves both element types: `h` (1 = IEEE halves, for V and p alike) is a
 * constant in every caller and the always-inlined helpers fold it away. */

/* lanes < rem set (0 < rem < 8) */
static inline __m256i lanes_below(size_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* acc + x * y on the lanes of m (cells < n), acc unchanged elsewhere */
static inline __m256 fma_masked(const float *x, const float *y, __m256i m, __m256 acc)
{
    const __m256 r = _mm256_fmadd_ps(_mm256_maskload_ps(x, m), _mm256_maskload_ps(y, m), acc);
    return _mm256_blendv_ps(acc, r, _mm256_castsi256_ps(m));
}

/* 8 cells of 16-bit floats, the first rem (< 8) read, the rest zero: no read past the row. */
static inline __m256 load_f16_part(const uint16_t *p, size_t rem)
{
    uint16_t t[8] = {0};
    memcpy(t, p, rem * sizeof *t);
    return load_f16x8(t);
}

/* A transposed V of either element type. */
struct vt_any {
    const void *v;
    size_t ds, blk, bs; /* dim stride, cells per block, block stride (in cells) */
    int h;              /* 1: IEEE halves, 0: floats */
};

HOT const void *cells_at(const void *p, size_t i, int h)
{
    return h ? (const void *)((const uint16_t *)p + i) : (const void *)((const float *)p + i);
}

HOT const void *vt_any_at(const struct vt_any *vt, size_t d, size_t t)
{
    return cells_at(vt->v, (t / vt->blk) * vt->bs + d * vt->ds + t % vt->blk, vt->h);
}

HOT __m256 load8_any(const void *p, size_t i, int h)
{
    return h ? load_f16x8((const uint16_t *)p + i) : _mm256_loadu_ps((const float *)p + i);
}

/* acc + x[i..] * y[i..] on the lanes below rem (0 < rem < 8), acc unchanged elsewhere */
HOT __m256 fma_part_any(const void *x, const void *y, size_t i, size_t rem, __m256 acc, int h)
{
    if (!h) return fma_masked((const float *)x + i, (const float *)y + i, lanes_below(rem), acc);
    const __m256 r = _mm256_fmadd_ps(load_f16_part((const uint16_t *)x + i, rem), load_f16_part((const uint16_t *)y + i, rem), acc);
    return _mm256_blendv_ps(acc, r, _mm256_castsi256_ps(lanes_below(rem)));
}

/* tinyBLAS order, output dims d..d+3 (gemm needs dim % 4 == 0), block by block. Products of
 * halves are exact in f32, so the FMA rounds like the reference's multiply-then-add. */
HOT void wsum_gemm4(float *out, const void *p, const struct vt_any *vt, size_t d, size_t n)
{
    const int h = vt->h;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t b0 = 0; b0 < n; b0 += vt->blk) {
        const size_t len = n - b0 < vt->blk ? n - b0 : vt->blk, n8 = len & ~(size_t)7, rem = len - n8;
        const void *v0 = vt_any_at(vt, d, b0), *v1 = vt_any_at(vt, d + 1, b0), *v2 = vt_any_at(vt, d + 2, b0),
                   *v3 = vt_any_at(vt, d + 3, b0), *pb = cells_at(p, b0, h);
        for (size_t t = 0; t < n8; t += 8) {
            const __m256 pv = load8_any(pb, t, h);
            a0 = _mm256_fmadd_ps(load8_any(v0, t, h), pv, a0);
            a1 = _mm256_fmadd_ps(load8_any(v1, t, h), pv, a1);
            a2 = _mm256_fmadd_ps(load8_any(v2, t, h), pv, a2);
            a3 = _mm256_fmadd_ps(load8_any(v3, t, h), pv, a3);
        }
        if (rem) {
            a0 = fma_part_any(v0, pb, n8, rem, a0, h);
            a1 = fma_part_any(v1, pb, n8, rem, a1, h);
            a2 = fma_part_any(v2, pb, n8, rem, a2, h);
            a3 = fma_part_any(v3, pb, n8, rem, a3, h);
        }
    }
    out[0] = hsum8(a0);
    out[1] = hsum8(a1);
    out[2] = hsum8(a2);
    out[3] = hsum8(a3);
}

/* ggml_vec_dot_f32 / ggml_vec_dot_f16 order over n_pad cells for dim d: four 8-lane
 * accumulators per 32 cells below n_pad & ~31, reduced as GGML_F32x8_REDUCE; the caller adds
 * its type's tail (cells past n skipped throughout). */
HOT float wsum_vecdot1(const void *p, const struct vt_any *vt, size_t d, size_t n, size_t n_pad)
{
    const int h = vt->h;
    const size_t np = n_pad & ~(size_t)31, lim = n < np ? n : np;
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t b0 = 0; b0 < lim; b0 += vt->blk) {
        const size_t len = lim - b0 < vt->blk ? lim - b0 : vt->blk;
        const void *x = vt_any_at(vt, d, b0), *pb = cells_at(p, b0, h);
        size_t t = 0;
        for (; t + 32 <= len; t += 32) {
            s[0] = _mm256_fmadd_ps(load8_any(x, t, h), load8_any(pb, t, h), s[0]);
            s[1] = _mm256_fmadd_ps(load8_any(x, t + 8, h), load8_any(pb, t + 8, h), s[1]);
            s[2] = _mm256_fmadd_ps(load8_any(x, t + 16, h), load8_any(pb, t + 16, h), s[2]);
            s[3] = _mm256_fmadd_ps(load8_any(x, t + 24, h), load8_any(pb, t + 24, h), s[3]);
        }
        for (int j = 0; t < len; t += 8, j++) { /* the group of 32 that holds lim */
            if (len - t >= 8) s[j] = _mm256_fmadd_ps(load8_any(x, t, h), load8_any(pb, t, h), s[j]);
            else s[j] = fma_part_any(x, pb, t, len - t, s[j], h);
        }
    }
    return reduce4(s[0], s[1], s[2], s[3]);
}

static void wsum_avx2(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                      unsigned order)
{
    const struct vt_any va = {vt->v, vt->dim_stride, vt->blk, vt->blk_stride, 0};
    /* tinyBLAS takes k % 8 == 0 and m % 4 == 0 (m = dim); otherwise ggml_vec_dot_f32 */
    if (order == KERN_ORDER_GEMM && n_pad % 8 == 0 && dim % 4 == 0) {
        for (size_t d = 0; d < dim; d += 4) wsum_gemm4(out + d, p, &va, d, n);
        return;
    }
    const size_t np = n_pad & ~(size_t)31;
    for (size_t d = 0; d < dim; d++)
        out[d] = kern_ref_wsum_tail(p, vt, d, np, n, n_pad, wsum_vecdot1(p, &va, d, n, n_pad));
}

static void wsum_f16_avx2(float *out, const uint16_t *p, const struct kern_vt_f16 *vt, size_t n, size_t n_pad,
                          size_t dim, unsigned order)
{
    const struct vt_any va = {vt->v, vt->dim_stride, vt->blk, vt->blk_stride, 1};
    if (order == KERN_ORDER_GEMM && n_pad % 8 == 0 && dim % 4 == 0) {
        for (size_t d = 0; d < dim; d += 4) wsum_gemm4(out + d, p, &va, d, n);
        return;
    }
    const size_t np = n_pad & ~(size_t)31;
    for (size_t d = 0; d < dim; d++)
        out[d] = kern_ref_wsum_f16_tail(p, vt, d, np, n, wsum_vecdot1(p, &va, d, n, n_pad));
}

/* ------------------------------------------------------------------------------------------ */
/* Attention over F16 and Q8_0 caches (kern.h; references at the end of kern_ref.c)           */

/* Single-token order, 8 keys at a time: each key keeps dot_f16_vecdot's accumulators and the
 * eight horizontal sums run lane-parallel exactly as in dot_f32_rows_avx2; then each key's
 * double tail. */
static void dot_f16_rows_avx2(float *out, const uint16_t *q, const uint16_t *k, size_t ks, size_t n, size_t n_rows,
                              unsigned order)
{
    if (order == KERN_ORDER_GEMM && n % 8 == 0) {
        for (size_t r = 0; r < n_rows; r++) out[r] = dot_f16_gemm(k + r * ks, q, n);
        return;
    }
    const size_t np = n & ~(size_t)31;
    size_t r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        __m256 red[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) red[j] = f16_blocks(q, k + (r + (size_t)j) * ks, np);
        hsum8_hadd_x8(out + r, red);
        if (np < n)
            for (size_t j = 0; j < 8; j++) {
                const uint16_t *kr = k + (r + j) * ks;
                double sumf = (double)out[r + j];
                for (size_t i = np; i < n; i++) sumf += (double)(avx2_h2f(kr[i]) * avx2_h2f(q[i]));
                out[r + j] = (float)sumf;
            }
    }
    for (; r < n_rows; r++) out[r] = dot_f16_vecdot(k + r * ks, q, n);
}

/* The one_chunk flash attention over Q8_0 rows (kern_fattn_drive) with this file's dot_q8_0, the
 * accumulator rescaled and the V row dequantized and accumulated 8 lanes at a time (x = q * d
 * rounded, then one FMA per element: the reference's operations). dim % 32 == 0 (checked). */
static void fattn_rescale_avx2(float *out, size_t dim, float m)
{
    const __m256 vm = _mm256_set1_ps(m);
    for (size_t d = 0; d < dim; d += 8) _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_loadu_ps(out + d), vm));
}

static void fattn_mad_q8_0_avx2(float *out, const void *vrow, size_t dim, float w)
{
    const struct blk_q8_0 *vb = vrow;
    const __m256 vw = _mm256_set1_ps(w);
    for (size_t b = 0; b < dim / QK8_0; b++) {
        const __m256 dv = _mm256_set1_ps(avx2_h2f(vb[b].d));
        const __m256i q = loadu256(vb[b].qs);
        float *o = out + b * QK8_0;
        for (int g = 0; g < 4; g++) {
            const __m128i q8g = g < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
            const __m128i q8h = (g & 1) ? _mm_srli_si128(q8g, 8) : q8g;
            const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8h)), dv);
            _mm256_storeu_ps(o + 8 * g, _mm256_fmadd_ps(x, vw, _mm256_loadu_ps(o + 8 * g)));
        }
    }
}

static void fattn_q8_0_avx2(float *out, const void *q8, const void *k, size_t k_stride, const void *v,
                            size_t v_stride, size_t n, size_t dim, float scale)
{
    kern_fattn_drive(out, q8, k, k_stride, v, v_stride, n, dim, scale, dot_q8_0, fattn_rescale_avx2,
                     fattn_mad_q8_0_avx2);
}

/* ------------------------------------------------------------------------------------------ */
/* Batched attention (kern_attn_*: the queries sharing a KV head, over the same keys / cells)  */
/*                                                                                            */
/* Scores: 8 keys at a time, every query against them while their rows are in L1 (F16 rows     */
/* converted to floats once per 8-key block and query group); per key the one-query kernels'   */
/* accumulators and reductions. softmax.V: tiles of dims x queries share each V load (and its  */
/* conversion) and each weight load, every (query, dim) keeping its own accumulators in the     */
/* reference's lanes; cells past a query's n are never read for it (masked lanes keep their     */
/* accumulator, as the reference skips them).                                                   */

#define AB_K 8      /* keys per block */
#define AB_MAXN 512 /* longest head whose F16 key block is converted on the stack (16 KiB) */

/* hsum8 (kern_hsum8's order: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))) of eight vectors, lane
 * parallel: lo + hi by permutes, then the two pairings of hsum8 by in-lane shuffles. */
HOT void hsum8_x8(float *out, const __m256 red[8])
{
    __m256 t[4];
    for (int j = 0; j < 4; j++) { /* [t(2j) | t(2j+1)], t = lo + hi (lo first, as hsum8) */
        const __m256 lo = _mm256_permute2f128_ps(red[2 * j], red[2 * j + 1], 0x20);
        const __m256 hi = _mm256_permute2f128_ps(red[2 * j], red[2 * j + 1], 0x31);
        t[j] = _mm256_add_ps(lo, hi);
        t[j] = _mm256_add_ps(t[j], _mm256_permute_ps(t[j], _MM_SHUFFLE(1, 0, 3, 2))); /* t0+t2, t1+t3 */
        t[j] = _mm256_add_ps(t[j], _mm256_movehdup_ps(t[j]));                       /* (t0+t2)+(t1+t3) */
    }
    for (int j = 0; j < 4; j++) {
        out[2 * j] = _mm256_cvtss_f32(t[j]);
        out[2 * j + 1] = _mm256_cvtss_f32(_mm256_permute2f128_ps(t[j], t[j], 0x01));
    }
}

/* ggml_vec_dot_f32's blocks (4 accumulators per 32 elements) of one query against 8 keys, two
 * keys sharing each query load; red[j] = (s0 + s2) + (s1 + s3) of key j. */
HOT void qk8_vecdot(__m256 red[8], const float *q, const float *k, size_t ks, size_t np)
{
    for (int j = 0; j < 8; j += 2) {
        const float *ka = k + (size_t)j * ks, *kb = ka + ks;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (size_t i = 0; i < np; i += 32) {
            const __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
            const __m256 q2 = _mm256_loadu_ps(q + i + 16), q3 = _mm256_loadu_ps(q + i + 24);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ka + i), q0, a0);
            b0 = _mm256_fmadd_ps(_mm256_loadu_ps(kb + i), q0, b0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(ka + i + 8), q1, a1);
            b1 = _mm256_fmadd_ps(_mm256_loadu_ps(kb + i + 8), q1, b1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(ka + i + 16), q2, a2);
            b2 = _mm256_fmadd_ps(_mm256_loadu_ps(kb + i + 16), q2, b2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(ka + i + 24), q3, a3);
            b3 = _mm256_fmadd_ps(_mm256_loadu_ps(kb + i + 24), q3, b3);
        }
        red[j] = reduce4_v(a0, a1, a2, a3);
        red[j + 1] = reduce4_v(b0, b1, b2, b3);
    }
}

/* tinyBLAS' one accumulator per key (n % 8 == 0) of one query against 8 keys. */
HOT void qk8_gemm(__m256 red[8], const float *q, const float *k, size_t ks, size_t n)
{
    __m256 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) {
        const __m256 qv = _mm256_loadu_ps(q + i);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(k + (size_t)j * ks + i), qv, a[j]);
    }
    for (int j = 0; j < 8; j++) red[j] = a[j];
}

static void attn_qk_f32_avx2(float *const *out, const float *const *q, size_t n_q, const float *k, size_t ks,
                             size_t n, size_t n_rows)
{
    const size_t np = n & ~(size_t)31;
    size_t r = 0;
    for (; r + AB_K <= n_rows; r += AB_K) {
        const float *kb = k + r * ks;
        for (size_t i = 0; i < n_q; i++) {
            __m256 red[8];
            qk8_vecdot(red, q[i], kb, ks, np);
            hsum8_hadd_x8(out[i] + r, red);
            if (np < n)
                for (size_t j = 0; j < AB_K; j++) out[i][r + j] = f32_tail(q[i], kb + j * ks, np, n, out[i][r + j]);
        }
    }
    for (; r < n_rows; r++)
        for (size_t i = 0; i < n_q; i++) out[i][r] = dot_f32_vecdot(q[i], k + r * ks, n);
}

/* One F16 key . float query, for keys outside the 8-key blocks: the reference's operations with
 * the products fused (exact for halves). */
static float qk1_f16(const uint16_t *x, const float *q, size_t n, unsigned order)
{
    if (order == KERN_ORDER_GEMM && n % 8 == 0) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t i = 0; i < n; i += 8) acc = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(q + i), acc);
        return hsum8(acc);
    }
    const size_t np = n & ~(size_t)31;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(q + i), s0);
        s1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), _mm256_loadu_ps(q + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), _mm256_loadu_ps(q + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), _mm256_loadu_ps(q + i + 24), s3);
    }
    return kern_ref_qk_f16_tail(x, q, np, n, reduce4(s0, s1, s2, s3));
}

/* The 8 F16 rows at k (stride ks) as floats, n elements each (exact). */
HOT void f16_rows8(float *dst, const uint16_t *k, size_t ks, size_t n)
{
    for (size_t j = 0; j < AB_K; j++) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + j * n + i, load_f16x8(k + j * ks + i));
        for (; i < n; i++) dst[j * n + i] = avx2_h2f(k[j * ks + i]);
    }
}

static void attn_qk_f16_avx2(float *const *out, const float *const *q, size_t n_q, const uint16_t *k, size_t ks,
                             size_t n, size_t n_rows, unsigned order)
{
    const bool gemm = order == KERN_ORDER_GEMM && n % 8 == 0;
    const size_t np = n & ~(size_t)31;
    size_t r = 0;
    if (n <= AB_MAXN)
        for (; r + AB_K <= n_rows; r += AB_K) {
            float kf[AB_K * AB_MAXN];
            f16_rows8(kf, k + r * ks, ks, n);
            for (size_t i = 0; i < n_q; i++) {
                __m256 red[8];
                if (gemm) {
                    qk8_gemm(red, q[i], kf, n, n);
                    hsum8_x8(out[i] + r, red);
                    continue;
                }
                qk8_vecdot(red, q[i], kf, n, np);
                hsum8_hadd_x8(out[i] + r, red);
                if (np < n)
                    for (size_t j = 0; j < AB_K; j++)
                        out[i][r + j] = kern_ref_qk_f16_tail(k + (r + j) * ks, q[i], np, n, out[i][r + j]);
            }
        }
    for (; r < n_rows; r++)
        for (size_t i = 0; i < n_q; i++) out[i][r] = qk1_f16(k + r * ks, q[i], n, order);
}

/* softmax.V tiles. A query's mode: tinyBLAS' order (one 8-lane accumulator: order GEMM, n_pad %
 * 8 == 0, dim % 4 == 0) or ggml_vec_dot's (four, by cell % 32 / 8) over its cells below
 * np = n_pad & ~31, followed by the reference's scalar tail over np..n. */
struct pv_q {
    const float *p;
    float *out;
    size_t lim;     /* cells through the tile's accumulators: n, or min(n, np) */
    size_t n, npad; /* visible cells, padded row (n_pad, at least n) */
};

#define PV_Q 3 /* queries per tile (AVX2: 12 accumulators) */

/* acc + v * w[c..c+8) of one query, the lanes below its limit only (the ragged end of a tile) */
HOT __m256 pv_fma_part(__m256 acc, __m256 v, const struct pv_q *q, size_t c)
{
    if (c + 8 <= q->lim) return _mm256_fmadd_ps(v, _mm256_loadu_ps(q->p + c), acc);
    if (c >= q->lim) return acc;
    const __m256i m = lanes_below(q->lim - c);
    const __m256 r = _mm256_fmadd_ps(v, _mm256_maskload_ps(q->p + c, m), acc);
    return _mm256_blendv_ps(acc, r, _mm256_castsi256_ps(m));
}

/* 8 cells of dim d from cell c; only the first rem when rem < 8 (the rest zero, never read). */
HOT __m256 pv_load(const struct vt_any *vt, size_t d, size_t c, size_t rem)
{
    const void *x = vt_any_at(vt, d, c);
    if (rem >= 8) return load8_any(x, 0, vt->h);
    if (vt->h) return load_f16_part(x, rem);
    return _mm256_maskload_ps(x, lanes_below(rem));
}

/* tinyBLAS order: NQ queries x dims d..d+3 over cells [0, cmax); cells below cmin (a multiple
 * of 8) are visible to every query of the tile. */
HOT void pv_tile_gemm(const struct pv_q *qs, int NQ, const struct vt_any *vt, size_t d, size_t cmin, size_t cmax)
{
    __m256 a[PV_Q][4];
    for (int i = 0; i < NQ; i++)
        for (int e = 0; e < 4; e++) a[i][e] = _mm256_setzero_ps();
    size_t c = 0;
    for (; c < cmin; c += 8) {
        __m256 v[4];
        for (int e = 0; e < 4; e++) v[e] = load8_any(vt_any_at(vt, d + (size_t)e, c), 0, vt->h);
        for (int i = 0; i < NQ; i++) {
            const __m256 w = _mm256_loadu_ps(qs[i].p + c);
            for (int e = 0; e < 4; e++) a[i][e] = _mm256_fmadd_ps(v[e], w, a[i][e]);
        }
    }
    for (; c < cmax; c += 8) {
        __m256 v[4];
        for (int e = 0; e < 4; e++) v[e] = pv_load(vt, d + (size_t)e, c, cmax - c);
        for (int i = 0; i < NQ; i++)
            for (int e = 0; e < 4; e++) a[i][e] = pv_fma_part(a[i][e], v[e], &qs[i], c);
    }
    for (int i = 0; i < NQ; i++)
        for (int e = 0; e < 4; e++) qs[i].out[d + (size_t)e] = hsum8(a[i][e]);
}

/* vec_dot order: NQ queries x dim d; accumulator set (c % 32) / 8 (blocks hold whole groups of 32
 * cells, so c % 32 is a cell's place in its group); red[i] = reduce4's vector of query i. */
HOT void pv_tile_vecdot(__m256 *red, const struct pv_q *qs, int NQ, const struct vt_any *vt, size_t d, size_t cmin,
                        size_t cmax)
{
    __m256 s[PV_Q][4];
    for (int i = 0; i < NQ; i++)
        for (int e = 0; e < 4; e++) s[i][e] = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 32 <= cmin; c += 32) {
        const void *x = vt_any_at(vt, d, c);
        for (int e = 0; e < 4; e++) {
            const __m256 v = load8_any(x, 8 * (size_t)e, vt->h);
            for (int i = 0; i < NQ; i++) s[i][e] = _mm256_fmadd_ps(v, _mm256_loadu_ps(qs[i].p + c + 8 * (size_t)e), s[i][e]);
        }
    }
    for (; c < cmax; c += 8) {
        const __m256 v = pv_load(vt, d, c, cmax - c);
        const size_t j = (c % 32) / 8;
        for (int i = 0; i < NQ; i++) s[i][j] = pv_fma_part(s[i][j], v, &qs[i], c);
    }
    for (int i = 0; i < NQ; i++) red[i] = reduce4_v(s[i][0], s[i][1], s[i][2], s[i][3]);
}

/* One tile of NQ queries of one mode over every dim. vt32 / vt16 (one of them set, as vt->h says)
 * give the scalar tails. */
HOT void pv_tile(const struct pv_q *qs, int NQ, bool gemm, const struct vt_any *vt, const struct kern_vt *vt32,
                 const struct kern_vt_f16 *vt16, size_t dim)
{
    size_t cmin = qs[0].lim, cmax = qs[0].lim;
    for (int i = 1; i < NQ; i++) {
        cmin = qs[i].lim < cmin ? qs[i].lim : cmin;
        cmax = qs[i].lim > cmax ? qs[i].lim : cmax;
    }
    if (gemm) {
        for (size_t d = 0; d < dim; d += 4) pv_tile_gemm(qs, NQ, vt, d, cmin & ~(size_t)7, cmax);
        return;
    }
    for (size_t d = 0; d < dim; d++) {
        __m256 red[PV_Q];
        pv_tile_vecdot(red, qs, NQ, vt, d, cmin, cmax);
        for (int i = 0; i < NQ; i++) {
            const struct pv_q *q = &qs[i];
            const float head = hsum8_hadd(red[i]);
            q->out[d] = vt->h ? kern_ref_pv_f16_tail(q->p, vt16, d, q->lim, q->n, head)
                              : kern_ref_wsum_tail(q->p, vt32, d, q->lim, q->n, q->npad, head);
        }
    }
}

/* The next tile from query i0 on: up to PV_Q queries of one mode, into qs; returns how many. */
HOT int pv_group(struct pv_q qs[PV_Q], bool *gemm, float *const *out, const float *const *p, const size_t *n,
                 const size_t *n_pad, size_t n_q, size_t i0, size_t dim, unsigned order)
{
    int nq = 0;
    for (; nq < PV_Q && i0 + (size_t)nq < n_q; nq++) {
        const size_t i = i0 + (size_t)nq, npad = n_pad[i] < n[i] ? n[i] : n_pad[i], np = npad & ~(size_t)31;
        const bool g = order == KERN_ORDER_GEMM && npad % 8 == 0 && dim % 4 == 0;
        if (nq && g != *gemm) break;
        *gemm = g;
        qs[nq] = (struct pv_q){p[i], out[i], g || n[i] < np ? n[i] : np, n[i], npad};
    }
    return nq;
}

/* Queries in tiles of up to PV_Q of one mode; the tile size is a constant in each call so the
 * accumulators stay in registers. */
HOT void attn_pv_any(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                     const struct vt_any *vt, const struct kern_vt *vt32, const struct kern_vt_f16 *vt16, size_t dim,
                     unsigned order)
{
    for (size_t i0 = 0; i0 < n_q;) {
        struct pv_q qs[PV_Q] = {{0}};
        bool gemm = false;
        const int nq = pv_group(qs, &gemm, out, p, n, n_pad, n_q, i0, dim, order);
        if (nq == 3) pv_tile(qs, 3, gemm, vt, vt32, vt16, dim);
        else if (nq == 2) pv_tile(qs, 2, gemm, vt, vt32, vt16, dim);
        else pv_tile(qs, 1, gemm, vt, vt32, vt16, dim);
        i0 += (size_t)nq;
    }
}

static void attn_pv_f32_avx2(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad,
                             size_t n_q, const struct kern_vt *vt, size_t dim, unsigned order)
{
    const struct vt_any va = {vt->v, vt->dim_stride, vt->blk, vt->blk_stride, 0};
    attn_pv_any(out, p, n, n_pad, n_q, &va, vt, NULL, dim, order);
}

static void attn_pv_f16_avx2(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad,
                             size_t n_q, const struct kern_vt_f16 *vt, size_t dim, unsigned order)
{
    const struct vt_any va = {vt->v, vt->dim_stride, vt->blk, vt->blk_stride, 1};
    attn_pv_any(out, p, n, n_pad, n_q, &va, NULL, vt, dim, order);
}

/* fp16 rounding of floats: vcvtps2ph (round to nearest even) and back; NaN lanes become the
 * quiet NaN of their sign (util_f32_to_fp16's 0x7e00), which vcvtps2ph would not guarantee. */
HOT __m256 round_f16x8(__m256 v)
{
    const __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m256 qnan = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)));
    return _mm256_blendv_ps(r, qnan, nan);
}

static void round_f16_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, round_f16x8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (n - i) * sizeof *t);
        _mm256_storeu_ps(t, round_f16x8(_mm256_loadu_ps(t)));
        memcpy(x + i, t, (n - i) * sizeof *t);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Dequantization (only what runs per token: F16 embeddings)                                 */

static void dequant_f16(const void *src, float *dst, size_t n)
{
    const uint16_t *h = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = load_f16x8(h + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            /* vcvtph2ps quiets signalling NaNs; the reference copies their bits */
            for (size_t k = i; k < i + 8; k++) dst[k] = kern_h2f(h[k]);
            continue;
        }
        _mm256_storeu_ps(dst + i, v);
    }
    for (; i < n; i++) dst[i] = kern_h2f(h[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* The table                                                                                  */

const struct kern_isa_ext X86_EXT_SYM;
const struct kern_isa X86_ISA_SYM = {
    .name = X86_ISA_NAME,
    .available = X86_AVAILABLE,
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
            [BLK_T_IQ4_NL] = dot_iq4_nl_gemm,
            [BLK_T_Q2_K] = dot_q2_K,
            [BLK_T_Q3_K] = dot_q3_K,
            [BLK_T_Q4_K] = dot_q4_K,
            [BLK_T_Q5_K] = dot_q5_K,
            [BLK_T_Q6_K] = dot_q6_K,
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
            [BLK_T_IQ4_NL] = dot_iq4_nl_vecdot,
            [BLK_T_Q2_K] = dot_q2_K,
            [BLK_T_Q3_K] = dot_q3_K,
            [BLK_T_Q4_K] = dot_q4_K,
            [BLK_T_Q5_K] = dot_q5_K,
            [BLK_T_Q6_K] = dot_q6_K,
            [BLK_T_IQ4_XS] = dot_iq4_xs,
        },
    .act =
        {
            [BLK_T_F16] = act_f16,
            [BLK_T_BF16] = act_bf16,
            [BLK_T_Q8_0] = act_q8_0,
            [BLK_T_Q8_1] = act_q8_1,
            [BLK_T_Q8_K] = act_q8_K,
        },
    .dequant = {[BLK_T_F16] = dequant_f16},
    .dot_f32 = dot_f32_pub,
    .ext = &X86_EXT_SYM,
};

const struct kern_isa_ext X86_EXT_SYM = {
    .name = X86_ISA_NAME,
    .tile =
        {
            [BLK_T_Q4_K] = tile_q4_K,
            [BLK_T_Q5_K] = tile_q5_K,
            [BLK_T_Q6_K] = tile_q6_K,
            [BLK_T_Q8_0] = tile_q8_0,
            [BLK_T_Q4_0] = tile_q4_0,
            [BLK_T_Q5_0] = tile_q5_0,
            [BLK_T_IQ4_NL] = tile_iq4_nl,
        },
    .softmax = softmax_avx2,
    .swiglu = swiglu_avx2,
    .silu = silu_avx2,
    .wsum = wsum_avx2,
    .dot_f32_rows = dot_f32_rows_avx2,
    .dot_f16_rows = dot_f16_rows_avx2,
    .wsum_f16 = wsum_f16_avx2,
    .fattn_q8_0 = fattn_q8_0_avx2,
    .attn_qk_f32 = attn_qk_f32_avx2,
    .attn_qk_f16 = attn_qk_f16_avx2,
    .attn_pv_f32 = attn_pv_f32_avx2,
    .attn_pv_f16 = attn_pv_f16_avx2,
    .round_f16 = round_f16_avx2,
};

#else /* not an x86 compilation with this variant's ISA flags */

static bool x86_unavailable(void)
{
    return false;
}

const struct kern_isa X86_ISA_SYM = {.name = X86_ISA_NAME, .available = x86_unavailable};

#endif
