/* quantize: reference quantizers, llama.cpp's type recipes, and the GGUF file quantizer.
 *
 * What: F32 -> {F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * IQ4_NL, IQ4_XS} one row at a time; the per-tensor type choice of llama.cpp's mixes; and
 * quant_file(), which streams a GGUF through both into a new GGUF.
 *
 * Why byte-identical to llama-quantize: a user comparing our file with theirs, or our logits
 * with theirs on a file we made, should see no difference that comes from the quantizer. The
 * algorithms are the published ones (round-to-nearest for the 32-blocks, the min/scale grid
 * searches of the K-quants, the non-linear codebook search of IQ4), written here from their
 * description; what makes the bytes agree is doing the same float operations in the same
 * order. So expressions below are written as explicit left-to-right products and sums, the
 * file is compiled without contraction (ISO C mode; clang: FP_CONTRACT OFF), and the few
 * float->int conversions use helpers that give x86's results even for values out of range
 * (which only arise for denormal inputs, where the scale's inverse overflows).
 *
 * Invariants: row quantizers never allocate and never read outside x[0..n); every output
 * byte is written (blocks are fully initialised); a non-finite input is rejected before any
 * search runs, so the searches only ever see finite numbers. quant_rows and quant_file split
 * work in fixed row chunks, so output bytes and error statistics do not depend on threads. */
#define _POSIX_C_SOURCE 200809L
#include "quantize.h"

#include "../util/util.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QEPS 1e-15f /* a group whose largest magnitude is below this is all zeros */

/* ---- small helpers ---- */

static inline uint16_t f2h(float f) { return util_f32_to_fp16(f); }
static inline float h2f(uint16_t h) { return util_fp16_to_f32(h); }

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5*2^23 leaves the integer in the
 * low mantissa bits. Garbage (but no undefined behaviour) outside that range. */
static inline int qround(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* (int8_t)v and (uint8_t)v as x86 computes them: truncate to int32 (out of range and NaN give
 * INT32_MIN), keep the low byte. */
static inline int32_t trunc_i32(float v)
{
    return fabsf(v) < 2147483648.0f ? (int32_t)v : INT32_MIN;
}
static inline int8_t trunc_i8(float v) { return (int8_t)(uint8_t)((uint32_t)trunc_i32(v) & 0xff); }
static inline uint8_t trunc_u8(float v) { return (uint8_t)((uint32_t)trunc_i32(v) & 0xff); }

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int iclamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Largest magnitude of x[0..n) and the signed value that has it (first one on ties). */
static inline float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* ---- 32-element blocks: one scale (and a min for the _1 types), round to nearest ---- */

static void row_q8_0(const float *x, void *dst, size_t nb)
{
    struct blk_q8_0 *y = dst;
    for (size_t b = 0; b < nb; b++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        for (int j = 0; j < 32; j++) y[b].qs[j] = trunc_i8(roundf(x[j] * id));
    }
}

/* Symmetric 4/5-bit: the element of largest magnitude maps exactly onto the most negative
 * code, so the scale is negative when that element is positive. */
static void row_q4_0(const float *x, void *dst, size_t nb)
{
    struct blk_q4_0 *y = dst;
    for (size_t b = 0; b < nb; b++, x += 32) {
        float amax;
        float max = signed_absmax(x, 32, &amax);
        float d = max / -8;
        float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        for (int j = 0; j < 16; j++) {
            uint8_t lo = (uint8_t)imin(15, trunc_i8(x[j] * id + 8.5f));
            uint8_t hi = (uint8_t)imin(15, trunc_i8(x[j + 16] * id + 8.5f));
            y[b].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void row_q5_0(const float *x, void *dst, size_t nb)
{
    struct blk_q5_0 *y = dst;
    for (size_t b = 0; b < nb; b++, x += 32) {
        float amax;
        float max = signed_absmax(x, 32, &amax);
        float d = max / -16;
        float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t lo = (uint8_t)imin(31, trunc_i8(x[j] * id + 16.5f));
            uint8_t hi = (uint8_t)imin(31, trunc_i8(x[j + 16] * id + 16.5f));
            y[b].qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
            qh |= (uint32_t)((lo >> 4) & 1) << j;
            qh |= (uint32_t)((hi >> 4) & 1) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
}

/* Asymmetric: [min, max] spread over 0..nmax. */
static inline void minmax32(const float *x, float *mn, float *mx)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void row_q4_1(const float *x, void *dst, size_t nb)
{
    struct blk_q4_1 *y = dst;
    for (size_t b = 0; b < nb; b++, x += 32) {
        float mn, mx;
        minmax32(x, &mn, &mx);
        float d = (mx - mn) / 15;
        float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        y[b].m = f2h(mn);
        for (int j = 0; j < 16; j++) {
            uint8_t lo = (uint8_t)imin(15, trunc_i8((x[j] - mn) * id + 0.5f));
            uint8_t hi = (uint8_t)imin(15, trunc_i8((x[j + 16] - mn) * id + 0.5f));
            y[b].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void row_q5_1(const float *x, void *dst, size_t nb)
{
    struct blk_q5_1 *y = dst;
    for (size_t b = 0; b < nb; b++, x += 32) {
        float mn, mx;
        minmax32(x, &mn, &mx);
        float d = (mx - mn) / 31;
        float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        y[b].m = f2h(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t lo = trunc_u8((x[j] - mn) * id + 0.5f);
            uint8_t hi = trunc_u8((x[j + 16] - mn) * id + 0.5f);
            y[b].qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
            qh |= (uint32_t)((lo >> 4) & 1) << j;
            qh |= (uint32_t)((hi >> 4) & 1) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
}

/* ---- scale searches used by the K-quants ---- */

/* The weighted fit of the symmetric levels l = clamp(round(iscale * x), -nmax, nmax-1) with
 * weights x^2: *sumlx = sum w*x*l, *suml2 = sum w*l*l, summed in element order. With L, also
 * stores l + off there. */
static inline void sym_fit(int n, int nmax, const float *x, float iscale, int8_t *L, int off, float *sumlx,
                           float *suml2)
{
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = iclamp(qround(iscale * x[i]), -nmax, nmax - 1);
        if (L) L[i] = (int8_t)(l + off);
        float w = x[i] * x[i];
        slx += w * x[i] * (float)l;
        sl2 += w * (float)l * (float)l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

/* How both symmetric searches start: the levels (stored as l + off) of the scale that maps the
 * extreme element onto -nmax, and their fit. Returns that signed extreme element, or 0 for a
 * group of (near-)zeros, whose L is then all 0. */
static float sym_start(int n, int nmax, const float *x, int8_t *L, int off, float *sumlx, float *suml2)
{
    float amax;
    float max = signed_absmax(x, n, &amax);
    if (amax < QEPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    sym_fit(n, nmax, x, (float)-nmax / max, L, off, sumlx, suml2);
    return max;
}

/* Symmetric levels -nmax..nmax-1 for x[0..n), weighting each element by x^2: start from the
 * scale that maps the extreme element onto -nmax, then try 18 nearby scales and keep the
 * least-squares scale of the best level assignment. L receives level + nmax. */
static float search_sym(int n, int nmax, const float *x, int8_t *L)
{
    float sumlx, suml2;
    const float max = sym_start(n, nmax, x, L, nmax, &sumlx, &suml2);
    if (max == 0) return 0.0f;
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float iscale = -((float)nmax + 0.1f * (float)is) / max;
        sym_fit(n, nmax, x, iscale, NULL, 0, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + iclamp(qround(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K's variant: symmetric levels, then up to 5 passes of coordinate descent moving single
 * elements to the level that best improves the weighted fit. L receives level + nmax. */
static float search_sym_refine(int n, int nmax, const float *x, int8_t *L)
{
    float sumlx, suml2;
    if (sym_start(n, nmax, x, L, 0, &sumlx, &suml2) == 0) return 0.0f;
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int nl = iclamp(qround(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric levels 0..nmax with value = scale*l - the_min (min <= 0 only): grid over
 * nstep+1 inverse scales around nmax/(max-min), each followed by a weighted least-squares fit
 * of scale and min to the levels it produced; the fit with the least weighted error (squared,
 * or absolute when use_mad) wins. Returns the scale, *the_min the (non-negative) offset. */
static float search_asym(int n, int nmax, const float *x, const float *w, uint8_t *L,
                         float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                         bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)iclamp(qround(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_err += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = iclamp(qround(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best_err) {
            memcpy(L, Laux, (size_t)n);
            best_err = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/* ---- K-quants: 256-element super-blocks ---- */

static void row_q2_K(const float *x, void *dst, size_t nb)
{
    struct blk_q2_K *y = dst;
    uint8_t L[256], Laux[16];
    float w[16], mins[16], scales[16];
    for (size_t b = 0; b < nb; b++, x += 256) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = search_asym(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                    15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float is = 15.0f / max_scale;
            for (int j = 0; j < 16; j++) y[b].scales[j] = (uint8_t)qround(is * scales[j]);
            y[b].d = f2h(max_scale / 15.0f);
        } else {
            memset(y[b].scales, 0, 16);
            y[b].d = f2h(0.0f);
        }
        if (max_min > 0) {
            float im = 15.0f / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)(y[b].scales[j] | qround(im * mins[j]) << 4);
            y[b].dmin = f2h(max_min / 15.0f);
        } else {
            y[b].dmin = f2h(0.0f);
        }
        /* requantize against the rounded 4-bit scales and mins actually stored */
        for (int j = 0; j < 16; j++) {
            float d = h2f(y[b].d) * (float)(y[b].scales[j] & 0xf);
            if (d == 0) continue;
            float dm = h2f(y[b].dmin) * (float)(y[b].scales[j] >> 4);
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (uint8_t)iclamp(qround((x[16 * j + i] + dm) / d), 0, 3);
        }
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                y[b].qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 |
                                               L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
}

static void row_q3_K(const float *x, void *dst, size_t nb)
{
    struct blk_q3_K *y = dst;
    int8_t L[256];
    float scales[16];
    for (size_t b = 0; b < nb; b++, x += 256) {
        for (int j = 0; j < 16; j++) scales[j] = search_sym_refine(16, 4, x + 16 * j, L + 16 * j);
        float amax;
        const float max_scale = signed_absmax(scales, 16, &amax);
        /* 16 six-bit scales: low nibbles in bytes 0..7, top two bits in bytes 8..11 */
        memset(y[b].scales, 0, 12);
        if (max_scale != 0) {
            float is = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l8 = (int8_t)qround(is * scales[j]);
                int l = imax(-32, imin(31, l8)) + 32;
                if (j < 8) y[b].scales[j] = (uint8_t)(l & 0xf);
                else y[b].scales[j - 8] = (uint8_t)(y[b].scales[j - 8] | (l & 0xf) << 4);
                l >>= 4;
                y[b].scales[j % 4 + 8] = (uint8_t)(y[b].scales[j % 4 + 8] | l << (2 * (j / 4)));
            }
            y[b].d = f2h(1 / is);
        } else {
            y[b].d = f2h(0.0f);
        }
        for (int j = 0; j < 16; j++) {
            int sc = j < 8 ? y[b].scales[j] & 0xf : y[b].scales[j - 8] >> 4;
            sc = (int8_t)((sc | ((y[b].scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32);
            float d = h2f(y[b].d) * (float)sc;
            if (d == 0) continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(iclamp(qround(x[16 * j + i] / d), -4, 3) + 4);
        }
        /* high bit of element j goes to bit j/32 of hmask[j%32] */
        memset(y[b].hmask, 0, 32);
        for (int j = 0; j < 256; j++)
            if (L[j] > 3) {
                y[b].hmask[j % 32] = (uint8_t)(y[b].hmask[j % 32] | 1u << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                y[b].qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 |
                                               L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
}

/* Q4_K/Q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes. */
static void pack_scale_min_k4(uint8_t s[12], int j, uint8_t ls, uint8_t lm)
{
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xf) | (lm & 0xf) << 4);
        s[j - 4] = (uint8_t)(s[j - 4] | (ls >> 4) << 6);
        s[j] = (uint8_t)(s[j] | (lm >> 4) << 6);
    }
}

static void unpack_scale_min_k4(const uint8_t s[12], int j, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4);
        *m = (uint8_t)((s[j + 4] >> 4) | (s[j] >> 6) << 4);
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-sub-block asymmetric search weighted by
 * rms + |x|, then 6-bit scales and mins relative to the largest, then requantization. */
static void k4_levels(const float *x, int nmax, float rmin, int nstep, uint8_t scales12[12],
                      uint16_t *d_out, uint16_t *dmin_out, uint8_t L[256])
{
    uint8_t Laux[32];
    float w[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = search_asym(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)qround(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)qround(inv_min * mins[j]);
        pack_scale_min_k4(scales12, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
    }
    *d_out = f2h(max_scale / 63.0f);
    *dmin_out = f2h(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        unpack_scale_min_k4(scales12, j, &sc, &m);
        float d = h2f(*d_out) * (float)sc;
        if (d == 0) continue;
        float dm = h2f(*dmin_out) * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)iclamp(qround((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

static void row_q4_K(const float *x, void *dst, size_t nb)
{
    struct blk_q4_K *y = dst;
    uint8_t L[256];
    for (size_t b = 0; b < nb; b++, x += 256) {
        k4_levels(x, 15, -1.0f, 20, y[b].scales, &y[b].d, &y[b].dmin, L);
        uint8_t *q = y[b].qs;
        for (int j = 0; j < 256; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

static void row_q5_K(const float *x, void *dst, size_t nb)
{
    struct blk_q5_K *y = dst;
    uint8_t L[256];
    for (size_t b = 0; b < nb; b++, x += 256) {
        k4_levels(x, 31, -0.5f, 15, y[b].scales, &y[b].d, &y[b].dmin, L);
        memset(y[b].qh, 0, 32);
        uint8_t *ql = y[b].qs;
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < 256; n += 64, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    y[b].qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    y[b].qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | l2 << 4);
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

static void row_q6_K(const float *x, void *dst, size_t nb)
{
    struct blk_q6_K *y = dst;
    int8_t L[256];
    float scales[16];
    for (size_t b = 0; b < nb; b++, x += 256) {
        for (int j = 0; j < 16; j++) scales[j] = search_sym(16, 32, x + 16 * j, L + 16 * j);
        float max_abs;
        const float max_scale = signed_absmax(scales, 16, &max_abs);
        if (max_abs < QEPS) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float is = -128.0f / max_scale;
        y[b].d = f2h(1 / is);
        for (int j = 0; j < 16; j++) y[b].scales[j] = (int8_t)imin(127, qround(is * scales[j]));
        for (int j = 0; j < 16; j++) {
            float d = h2f(y[b].d) * (float)y[b].scales[j];
            if (d == 0) continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(iclamp(qround(x[16 * j + i] / d), -32, 31) + 32);
        }
        uint8_t *ql = y[b].ql, *qh = y[b].qh;
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0xf) | (q3 & 0xf) << 4);
                ql[l + 32] = (uint8_t)((q2 & 0xf) | (q4 & 0xf) << 4);
                qh[l] = (uint8_t)(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        }
    }
}

/* ---- IQ4_NL / IQ4_XS: 4-bit indices into a fixed non-linear codebook ---- */

/* Index of the codebook value nearest to v (ties to the lower one). */
static inline int iq4_index(float v)
{
    const int8_t *val = kern_iq4nl_values;
    if (v <= val[0]) return 0;
    if (v >= val[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < val[mid]) hi = mid;
        else lo = mid;
    }
    return v - val[hi - 1] < val[hi] - v ? hi - 1 : hi;
}

#define IQ4_NTRY 7 /* llama-quantize's scale candidates: 2*7+1 around the extreme's scale */

/* Best scale for one 32-block (weights x^2): map the extreme element onto the codebook's end,
 * least-squares fit, then try 15 nearby inverse scales and keep the best fit. L gets indices
 * for the first candidate (IQ4_NL re-derives them from the final scale). */
static float iq4_block_scale(const float *xb, uint8_t *L)
{
    const int8_t *val = kern_iq4nl_values;
    float w[32];
    for (int j = 0; j < 32; j++) w[j] = xb[j] * xb[j];
    float amax;
    float max = signed_absmax(xb, 32, &amax);
    if (amax < QEPS) return 0.0f;
    float d = -max / (float)val[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        int l = iq4_index(id * xb[j]);
        L[j] = (uint8_t)l;
        float q = (float)val[l];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int t = -IQ4_NTRY; t <= IQ4_NTRY; t++) {
        id = (float)(t + val[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = (float)val[iq4_index(id * xb[j])];
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

static void pack_iq4(const uint8_t *L, uint8_t *qs, int n)
{
    for (int i = 0; i < n / 32; i++)
        for (int j = 0; j < 16; j++)
            qs[16 * i + j] = (uint8_t)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
}

static void row_iq4_nl(const float *x, void *dst, size_t nb)
{
    struct blk_iq4_nl *y = dst;
    uint8_t L[32];
    for (size_t b = 0; b < nb; b++, x += 32) {
        float d = iq4_block_scale(x, L);
        y[b].d = f2h(d);
        float id = d != 0 ? 1 / d : 0.0f;
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)iq4_index(id * x[j]);
        pack_iq4(L, y[b].qs, 32);
    }
}

static void row_iq4_xs(const float *x, void *dst, size_t nb)
{
    struct blk_iq4_xs *y = dst;
    uint8_t L[256];
    float scales[8];
    for (size_t b = 0; b < nb; b++, x += 256) {
        for (int ib = 0; ib < 8; ib++) scales[ib] = iq4_block_scale(x + 32 * ib, L + 32 * ib);
        float amax_scale;
        const float max_scale = signed_absmax(scales, 8, &amax_scale);
        /* 6-bit signed sub-block scales relative to d = -max/32, indices re-derived from them */
        float d = -max_scale / 32;
        y[b].d = f2h(d);
        float id = d != 0 ? 1 / d : 0.0f;
        uint16_t sh = 0;
        for (int ib = 0; ib < 8; ib++) {
            int l = iclamp(qround(id * scales[ib]), -32, 31);
            float dl = d * (float)l;
            float idl = dl != 0 ? 1 / dl : 0.0f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)iq4_index(idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) y[b].scales_l[ib / 2] = (uint8_t)(l & 0xf);
            else y[b].scales_l[ib / 2] = (uint8_t)(y[b].scales_l[ib / 2] | (l & 0xf) << 4);
            sh = (uint16_t)(sh | (l >> 4) << (2 * (ib % 8)));
        }
        y[b].scales_h = sh;
        pack_iq4(L, y[b].qs, 256);
    }
}

/* ---- float targets ---- */

static void row_f32(const float *x, void *dst, size_t n) { memcpy(dst, x, n * sizeof(float)); }
static void row_f16(const float *x, void *dst, size_t n)
{
    uint16_t *y = dst;
    for (size_t i = 0; i < n; i++) y[i] = f2h(x[i]);
}
static void row_bf16(const float *x, void *dst, size_t n)
{
    uint16_t *y = dst;
    for (size_t i = 0; i < n; i++) y[i] = util_f32_to_bf16(x[i]);
}

/* ---- dispatch ---- */

typedef void (*row_fn)(const float *x, void *dst, size_t nblocks);

static row_fn row_fn_for(uint32_t type)
{
    switch (type) {
    case BLK_T_F32: return row_f32;
    case BLK_T_F16: return row_f16;
    case BLK_T_BF16: return row_bf16;
    case BLK_T_Q8_0: return row_q8_0;
    case BLK_T_Q4_0: return row_q4_0;
    case BLK_T_Q4_1: return row_q4_1;
    case BLK_T_Q5_0: return row_q5_0;
    case BLK_T_Q5_1: return row_q5_1;
    case BLK_T_Q2_K: return row_q2_K;
    case BLK_T_Q3_K: return row_q3_K;
    case BLK_T_Q4_K: return row_q4_K;
    case BLK_T_Q5_K: return row_q5_K;
    case BLK_T_Q6_K: return row_q6_K;
    case BLK_T_IQ4_NL: return row_iq4_nl;
    case BLK_T_IQ4_XS: return row_iq4_xs;
    default: return NULL;
    }
}

static bool is_float_type(uint32_t t)
{
    return t == BLK_T_F32 || t == BLK_T_F16 || t == BLK_T_BF16;
}

bool quant_type_supported(uint32_t type) { return row_fn_for(type) != NULL; }

int quant_row(uint32_t type, const float *x, void *dst, size_t n)
{
    row_fn fn = row_fn_for(type);
    const struct blk_type_info *ti = blk_type_info(type);
    if (!fn || !ti) return ERR_UNSUPPORTED;
    if (n % ti->blck) return ERR_SHAPE;
    if (n == 0) return 0;
    if (!x || !dst) return ERR_INVALID;
    if (!is_float_type(type))
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i])) return ERR_RANGE;
    fn(x, dst, n / ti->blck);
    return 0;
}

/* Rows per pool task: a fixed amount of work, never derived from the thread count. */
static size_t rows_per_task(size_t n)
{
    size_t r = (size_t)16384 / (n ? n : 1);
    return r ? r : 1;
}

struct rows_job {
    uint32_t type;
    const float *x;
    uint8_t *dst;
    size_t nrows, n, row_bytes, per_task;
    int *rc; /* [n_tasks] */
};

static void rows_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    struct rows_job *j = arg;
    size_t r0 = (size_t)task * j->per_task, r1 = r0 + j->per_task;
    if (r1 > j->nrows) r1 = j->nrows;
    int rc = 0;
    for (size_t r = r0; r < r1 && !rc; r++)
        rc = quant_row(j->type, j->x + r * j->n, j->dst + r * j->row_bytes, j->n);
    j->rc[task] = rc;
}

int quant_rows(struct kern_pool *pool, uint32_t type, const float *x, void *dst, size_t nrows,
               size_t n)
{
    if (!quant_type_supported(type)) return ERR_UNSUPPORTED;
    uint64_t rb = blk_row_size(type, n);
    if (n == 0 || rb == 0) return ERR_SHAPE;
    if (nrows == 0) return 0;
    struct rows_job j = {type, x, dst, nrows, n, (size_t)rb, rows_per_task(n), NULL};
    size_t nt = (nrows + j.per_task - 1) / j.per_task;
    if (nt > INT32_MAX) return ERR_LIMIT;
    j.rc = calloc(nt, sizeof *j.rc);
    if (!j.rc) return ERR_NOMEM;
    kern_pool_run(pool, rows_task, &j, (int)nt);
    int rc = 0;
    for (size_t t = 0; t < nt && !rc; t++) rc = j.rc[t];
    free(j.rc);
    return rc;
}

/* ---- targets: command-line names, default types, llama_ftype numbers ---- */

/* llama_ftype values (llama.h). A plain K name is written as llama-quantize writes it (its
 * "Q4_K" is an alias of Q4_K_M), so files made either way carry the same file_type. */
static const struct quant_target g_targets[] = {
    {"F32", BLK_T_F32, 0, false},        {"F16", BLK_T_F16, 1, false},
    {"BF16", BLK_T_BF16, 32, false},     {"Q8_0", BLK_T_Q8_0, 7, false},
    {"Q4_0", BLK_T_Q4_0, 2, false},      {"Q4_1", BLK_T_Q4_1, 3, false},
    {"Q5_0", BLK_T_Q5_0, 8, false},      {"Q5_1", BLK_T_Q5_1, 9, false},
    {"Q2_K", BLK_T_Q2_K, 10, false},     {"Q3_K", BLK_T_Q3_K, 12, false},
    {"Q4_K", BLK_T_Q4_K, 15, false},     {"Q5_K", BLK_T_Q5_K, 17, false},
    {"Q6_K", BLK_T_Q6_K, 18, false},     {"IQ4_NL", BLK_T_IQ4_NL, 25, false},
    {"IQ4_XS", BLK_T_IQ4_XS, 30, false}, {"Q3_K_S", BLK_T_Q3_K, 11, true},
    {"Q3_K_M", BLK_T_Q3_K, 12, true},    {"Q3_K_L", BLK_T_Q3_K, 13, true},
    {"Q4_K_S", BLK_T_Q4_K, 14, true},    {"Q4_K_M", BLK_T_Q4_K, 15, true},
    {"Q5_K_S", BLK_T_Q5_K, 16, true},    {"Q5_K_M", BLK_T_Q5_K, 17, true},
};
#define N_TARGETS (sizeof g_targets / sizeof g_targets[0])

enum { FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
       FT_Q5_K_S = 16, FT_Q5_K_M = 17 };

const struct quant_target *quant_target_at(size_t i) { return i < N_TARGETS ? &g_targets[i] : NULL; }

const struct quant_target *quant_target_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < N_TARGETS; i++) {
        const char *a = g_targets[i].name, *b = name;
        while (*a && *b && (*a == *b || (*b >= 'a' && *b <= 'z' && *a == *b - 32))) a++, b++;
        if (!*a && !*b) return &g_targets[i];
    }
    return NULL;
}

/* ---- recipe: llama.cpp's tensor categories and per-tensor type rules ---- */

enum cat { CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B,
           CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER };

static enum cat category(const char *name)
{
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct { const char *s; enum cat c; } sub[] = {
        {"attn_qkv.weight", CAT_ATTN_QKV},   {"attn_kv_b.weight", CAT_ATTN_KV_B},
        {"attn_v.weight", CAT_ATTN_V},       {"attn_k.weight", CAT_ATTN_K},
        {"attn_q.weight", CAT_ATTN_Q},       {"attn_output.weight", CAT_ATTN_OUTPUT},
        {"ffn_up", CAT_FFN_UP},              {"ffn_gate", CAT_FFN_GATE},
        {"ffn_down", CAT_FFN_DOWN},
    };
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
        if (strstr(name, sub[i].s)) return sub[i].c;
    return CAT_OTHER;
}

static bool cat_is_attn_v(enum cat c)
{
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* Which tensors a quantizer may touch: 2-D+ weights, not norms, not the small special ones
 * llama.cpp keeps (expert routers, positional embeddings, convolution kernels, ...). */
static bool may_quantize(const struct quant_tensor_desc *t)
{
    size_t n = strlen(t->name);
    if (t->n_dims < 2 || n < 6 || strcmp(t->name + n - 6, "weight") != 0) return false;
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
        "position_embd", "token_types", "ssm_conv1d", "shortconv.conv.weight",
        "attn_rel_b.weight", "time_mix_",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (strstr(t->name, keep[i])) return false;
    return true;
}

static int blk_of(const char *name)
{
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) l = -1;
    return l;
}

int quant_name_cmp(const char *a, const char *b)
{
    int la = blk_of(a), lb = blk_of(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

struct recipe_state {
    int n_attn_v, i_attn_v, n_ffn_down, i_ffn_down;
    bool tied;
};

/* llama_tensor_get_type_impl for the K mixes, dense models (no experts, not Falcon). */
static uint32_t mix_type(struct recipe_state *s, uint32_t ftype, uint32_t t,
                         const struct quant_tensor_desc *d, enum cat c)
{
    if (c == CAT_OUTPUT || (s->tied && c == CAT_TOKEN_EMBD)) {
        if (d->ne[0] % blk_type_info(t)->blck) t = BLK_T_Q8_0;
        else if (t != BLK_T_Q8_0) t = BLK_T_Q6_K;
    } else if (c == CAT_TOKEN_EMBD) {
        /* kept at the default type by every K mix */
    } else if (cat_is_attn_v(c)) {
        int i = s->i_attn_v, n = s->n_attn_v;
        if (ftype == FT_Q3_K_M) t = i < 2 ? BLK_T_Q5_K : BLK_T_Q4_K;
        else if (ftype == FT_Q3_K_L) t = BLK_T_Q5_K;
        else if ((ftype == FT_Q4_K_M || ftype == FT_Q5_K_M) && use_more_bits(i, n)) t = BLK_T_Q6_K;
        else if (ftype == FT_Q4_K_S && i < 4) t = BLK_T_Q5_K;
        s->i_attn_v++;
    } else if (c == CAT_FFN_DOWN) {
        int i = s->i_ffn_down, n = s->n_ffn_down;
        if (ftype == FT_Q3_K_M) t = i < n / 16 ? BLK_T_Q5_K : BLK_T_Q4_K;
        else if (ftype == FT_Q3_K_L) t = BLK_T_Q5_K;
        else if ((ftype == FT_Q4_K_M || ftype == FT_Q5_K_M) && use_more_bits(i, n)) t = BLK_T_Q6_K;
        else if (ftype == FT_Q4_K_S && i < n / 8) t = BLK_T_Q5_K;
        s->i_ffn_down++;
    } else if (c == CAT_ATTN_OUTPUT) {
        if (ftype == FT_Q3_K_M) t = BLK_T_Q4_K;
        else if (ftype == FT_Q3_K_L) t = BLK_T_Q5_K;
    }
    return t;
}

/* A row length that does not fill the type's blocks: llama.cpp's substitutes, then F16 (it
 * gives up where we use F16 directly: a plain 32-block type has no narrower substitute). */
static uint32_t fallback_type(uint32_t t, uint64_t ne0)
{
    if (ne0 % blk_type_info(t)->blck == 0) return t;
    uint32_t r;
    switch (t) {
    case BLK_T_IQ4_XS: r = BLK_T_IQ4_NL; break;
    case BLK_T_Q2_K:
    case BLK_T_Q3_K: r = BLK_T_Q4_0; break;
    case BLK_T_Q4_K: r = BLK_T_Q5_0; break;
    case BLK_T_Q5_K: r = BLK_T_Q5_1; break;
    case BLK_T_Q6_K: r = BLK_T_Q8_0; break;
    default: r = BLK_T_F16; break;
    }
    if (ne0 % blk_type_info(r)->blck) r = BLK_T_F16;
    return r;
}

struct name_idx {
    const char *name;
    size_t idx;
};
static int cmp_order(const void *a, const void *b)
{
    return quant_name_cmp(((const struct name_idx *)a)->name, ((const struct name_idx *)b)->name);
}

void quant_plan_free(struct quant_plan *p)
{
    if (!p) return;
    free(p->order);
    free(p->type);
    free(p->want);
    free(p->quantize);
    memset(p, 0, sizeof *p);
}

int quant_plan_make(struct quant_plan *p, const struct quant_target *tg, bool pure,
                    const struct quant_tensor_desc *t, size_t n, uint32_t n_layer,
                    struct err_info *ei)
{
    memset(p, 0, sizeof *p);
    if (!tg || !quant_type_supported(tg->base))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no valid target type");
    p->n = n;
    p->order = malloc((n ? n : 1) * sizeof *p->order);
    p->type = malloc((n ? n : 1) * sizeof *p->type);
    p->want = malloc((n ? n : 1) * sizeof *p->want);
    p->quantize = malloc((n ? n : 1) * sizeof *p->quantize);
    if (!p->order || !p->type || !p->want || !p->quantize) {
        quant_plan_free(p);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    struct name_idx *ni = malloc((n ? n : 1) * sizeof *ni);
    if (!ni) {
        quant_plan_free(p);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !blk_type_info(t[i].type) || t[i].ne[0] == 0) {
            free(ni);
            quant_plan_free(p);
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "bad tensor description %zu", i);
        }
        ni[i] = (struct name_idx){t[i].name, i};
    }
    qsort(ni, n, sizeof *ni, cmp_order); /* names are unique, so the order is total */
    for (size_t i = 0; i < n; i++) p->order[i] = ni[i].idx;
    free(ni);

    struct recipe_state s = {0, 0, (int)n_layer, 0, true};
    for (size_t i = 0; i < n; i++) {
        enum cat c = category(t[i].name);
        if (cat_is_attn_v(c)) s.n_attn_v++;
        if (c == CAT_OUTPUT) s.tied = false;
    }
    bool quantized = !is_float_type(tg->base);
    for (size_t k = 0; k < n; k++) {
        size_t i = p->order[k];
        p->quantize[i] = may_quantize(&t[i]);
        if (!p->quantize[i]) {
            p->type[i] = p->want[i] = t[i].type;
            continue;
        }
        uint32_t ty = tg->base;
        if (quantized && tg->mix && !pure) ty = mix_type(&s, tg->ftype, ty, &t[i], category(t[i].name));
        p->want[i] = ty;
        if (quantized) ty = fallback_type(ty, t[i].ne[0]);
        if (ty != p->want[i]) p->n_fallback++;
        p->type[i] = ty;
    }
    return 0;
}

/* ---- whole files ---- */

struct qf_task_stat {
    double sum_sq, sum_sq_src, max_abs;
    int rc;
};

struct qf_job {
    const struct gguf_tensor *src;
    uint32_t to;
    uint8_t *dst;
    size_t n, nrows, per_task;
    uint64_t src_row, dst_row;
    struct qf_task_stat *st;
};

/* Convert rows [r0, r1) of one tensor: source row to f32, quantize, dequantize the result
 * back and accumulate its error against the f32 source. */
static void qf_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    struct qf_job *j = arg;
    struct qf_task_stat *st = &j->st[task];
    size_t r0 = (size_t)task * j->per_task, r1 = r0 + j->per_task;
    if (r1 > j->nrows) r1 = j->nrows;
    float *xs = malloc(j->n * sizeof *xs), *back = malloc(j->n * sizeof *back);
    if (!xs || !back) {
        st->rc = ERR_NOMEM;
        goto out;
    }
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *srow = (const uint8_t *)j->src->data + r * j->src_row;
        uint8_t *drow = j->dst + r * j->dst_row;
        const float *x = xs;
        if (j->src->type == BLK_T_F32) {
            memcpy(xs, srow, j->n * sizeof *xs); /* the mapping may not be float-aligned */
        } else if ((st->rc = kern_dequant_row(j->src->type, srow, xs, j->n))) {
            goto out;
        }
        if ((st->rc = quant_row(j->to, x, drow, j->n))) goto out;
        if ((st->rc = kern_dequant_row(j->to, drow, back, j->n))) goto out;
        for (size_t i = 0; i < j->n; i++) {
            double e = (double)back[i] - (double)x[i];
            st->sum_sq += e * e;
            st->sum_sq_src += (double)x[i] * (double)x[i];
            if (fabs(e) > st->max_abs) st->max_abs = fabs(e);
        }
    }
out:
    free(xs);
    free(back);
}

struct qf_ctx {
    const struct gguf_ctx *g;
    const struct quant_file_opts *o;
    const struct quant_plan *plan;
    struct quant_file_report *rep;
    size_t *wr_to_src; /* writer tensor index -> source tensor index */
};

static int qf_data(void *ud, uint64_t idx, void *dst, uint64_t nbytes, struct err_info *ei)
{
    struct qf_ctx *c = ud;
    size_t si = c->wr_to_src[idx];
    const struct gguf_tensor *src = &c->g->tensors[si];
    uint32_t to = c->plan->type[si];
    struct qf_job j;
    memset(&j, 0, sizeof j);
    j.src = src;
    j.to = to;
    j.dst = dst;
    j.n = (size_t)src->ne[0];
    j.nrows = (size_t)(src->ne[1] * src->ne[2] * src->ne[3]);
    j.per_task = rows_per_task(j.n);
    j.src_row = blk_row_size(src->type, src->ne[0]);
    j.dst_row = blk_row_size(to, src->ne[0]);
    size_t nt = (j.nrows + j.per_task - 1) / j.per_task;
    if (j.dst_row * j.nrows != nbytes || nt > INT32_MAX)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET, "internal size mismatch for '%.*s'",
                       (int)src->name.len, src->name.ptr);
    j.st = calloc(nt ? nt : 1, sizeof *j.st);
    if (!j.st) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    kern_pool_run(c->o->pool, qf_task, &j, (int)nt);
    struct quant_err_stat *s = &c->rep->by_type[to];
    int rc = 0;
    for (size_t t = 0; t < nt; t++) {
        if (j.st[t].rc && !rc) rc = j.st[t].rc;
        s->sum_sq += j.st[t].sum_sq;
        s->sum_sq_src += j.st[t].sum_sq_src;
        if (j.st[t].max_abs > s->max_abs) s->max_abs = j.st[t].max_abs;
    }
    free(j.st);
    if (rc)
        return err_set(ei, rc, ERR_NO_OFFSET, "converting '%.*s' from %s to %s failed: %s%s",
                       (int)src->name.len, src->name.ptr, blk_type_name(src->type),
                       blk_type_name(to), err_str(rc),
                       rc == ERR_RANGE ? " (the tensor holds NaN or infinite values)" : "");
    s->n_tensors++;
    s->n += (uint64_t)j.n * j.nrows;
    return 0;
}

static bool is_split_key(struct gguf_str k)
{
    return gguf_str_eq(k, "split.no") || gguf_str_eq(k, "split.count") ||
           gguf_str_eq(k, "split.tensors.count");
}

int quant_file(const char *in, const char *out, const struct quant_file_opts *o,
               struct quant_file_report *rep, struct err_info *ei)
{
    memset(rep, 0, sizeof *rep);
    if (!o || !o->target) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no target type");
    struct gguf_ctx g;
    int rc = gguf_open(in, &g, ei);
    if (rc) return rc;
    struct quant_tensor_desc *d = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *d);
    char *names = calloc(g.n_tensors ? g.n_tensors : 1, 256);
    size_t *wr_to_src = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *wr_to_src);
    struct quant_plan plan = {0};
    struct gguf_writer *w = NULL;
    if (!d || !names || !wr_to_src || gguf_writer_create(&w)) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    uint32_t n_layer = 0, max_blk = 0;
    struct gguf_str arch;
    if (gguf_get_str(&g, "general.architecture", &arch) == 0 && arch.len < 64) {
        char key[96];
        snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
        if (gguf_get_u32(&g, key, &n_layer)) n_layer = 0;
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        char *nm = names + i * 256;
        memcpy(nm, t->name.ptr, t->name.len); /* the parser caps names at 255 bytes */
        d[i].name = nm;
        d[i].n_dims = t->n_dims;
        memcpy(d[i].ne, t->ne, sizeof d[i].ne);
        d[i].type = t->type;
        int b = blk_of(nm);
        if (b >= 0 && (uint32_t)b + 1 > max_blk) max_blk = (uint32_t)b + 1;
    }
    if (!n_layer) n_layer = max_blk; /* no block_count: count the blocks present */
    if ((rc = quant_plan_make(&plan, o->target, o->pure, d, g.n_tensors, n_layer, ei))) goto done;
    rep->n_fallback = plan.n_fallback;
    /* refuse sources we cannot read as f32 before writing anything */
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        if (plan.type[i] == t->type) continue;
        if (!is_float_type(t->type)) {
            rc = err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                         "tensor '%s' is %s: only F32, F16 and BF16 tensors can be quantized "
                         "(re-quantizing a quantized file would compound the error)",
                         d[i].name, blk_type_name(t->type));
            goto done;
        }
    }
    for (uint64_t i = 0; i < g.n_kv; i++)
        if (!is_split_key(g.kv[i].key)) gguf_writer_copy_kv(w, &g.kv[i]);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "general.file_type", o->target->ftype);
    for (size_t k = 0; k < plan.n; k++) {
        size_t i = plan.order[k];
        const struct gguf_tensor *t = &g.tensors[i];
        uint32_t to = plan.type[i];
        bool copy = to == t->type;
        if (o->on_tensor) o->on_tensor(o->ud, k, plan.n, d[i].name, t->type, to, plan.want[i], t->ne);
        wr_to_src[k] = i;
        if ((rc = gguf_writer_add_tensor(w, d[i].name, t->n_dims, t->ne, to, copy ? t->data : NULL))) {
            rc = err_set(ei, rc, ERR_NO_OFFSET, "cannot add tensor '%s' to the output: %s",
                         d[i].name, err_str(rc));
            goto done;
        }
        rep->in_bytes += t->nbytes;
        rep->out_bytes += gguf_writer_tensor_nbytes(w, k);
        if (copy) {
            rep->n_copied++;
        } else {
            rep->n_quantized++;
            rep->by_type[to].bytes += gguf_writer_tensor_nbytes(w, k);
        }
    }
    rep->n_tensors = plan.n;
    struct qf_ctx c = {&g, o, &plan, rep, wr_to_src};
    rc = gguf_writer_write(w, out, qf_data, &c, ei);
done:
    gguf_writer_free(w);
    quant_plan_free(&plan);
    free(wr_to_src);
    free(names);
    free(d);
    gguf_free(&g);
    return rc;
}
