/* quantize: the reference row quantizers (the per-tensor recipes and the GGUF file quantizer
 * are file tools: src/ftool/ftool_quant.c).
 *
 * What: F32 -> {F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * IQ4_NL, IQ4_XS} one row at a time.
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
 * search runs, so the searches only ever see finite numbers. quant_rows splits work in fixed
 * row chunks, so output bytes do not depend on threads. */
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

bool quant_is_float_type(uint32_t t)
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
    if (!quant_is_float_type(type))
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i])) return ERR_RANGE;
    fn(x, dst, n / ti->blck);
    return 0;
}

size_t quant_rows_per_task(size_t n)
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
    struct rows_job j = {type, x, dst, nrows, n, (size_t)rb, quant_rows_per_task(n), NULL};
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
