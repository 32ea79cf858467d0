/* kern_attn: public entry points of the attention kernels for F16 and Q8_0 KV caches and of the
 * batched attention over several queries (kern.h), and the Walsh-Hadamard rotation a quantized
 * cache needs.
 *
 * The entry points check their arguments, then call the active ISA's kernel (kern_active(),
 * reference from kern_ref.c with the ISA's members laid over it), so this file is the only
 * place that knows what an invalid call returns. They live apart from kern_dispatch.c so that
 * adding cache types never touches the ISA selection code. */
#include "kern_int.h"

#include <math.h>

void kern_dot_f16_rows(float *out, const uint16_t *q16, const uint16_t *k16, size_t k_stride, size_t n,
                       size_t n_rows, unsigned order)
{
    if (!out || n_rows == 0) return;
    if (n == 0 || !q16 || !k16) {
        for (size_t r = 0; r < n_rows; r++) out[r] = 0.0f;
        return;
    }
    kern_active()->dot_f16_rows(out, q16, k16, k_stride, n, n_rows, order);
}

void kern_wsum_f16(float *out, const uint16_t *p16, const struct kern_vt_f16 *vt, size_t n, size_t n_pad,
                   size_t dim, unsigned order)
{
    if (!out || !p16 || !vt || !vt->v) return;
    if (vt->blk == 0 || vt->blk % 32) { /* cell groups would straddle blocks: refuse, visibly */
        for (size_t d = 0; d < dim; d++) out[d] = NAN;
        return;
    }
    kern_active()->wsum_f16(out, p16, vt, n, n_pad < n ? n : n_pad, dim, order);
}

void kern_fattn_q8_0(float *out, const void *q8, const void *k, size_t k_stride, const void *v, size_t v_stride,
                     size_t n, size_t dim, float scale)
{
    if (!out) return;
    if (dim == 0 || dim % QK8_0 || (n && (!q8 || !k || !v))) {
        for (size_t d = 0; d < dim; d++) out[d] = NAN;
        return;
    }
    kern_active()->fattn_q8_0(out, q8, k, k_stride, v, v_stride, n, dim, scale);
}

/* ---- batched attention ---- */

static bool vt_blocks_ok(size_t blk)
{
    return blk != 0 && blk % 32 == 0; /* cell groups never straddle blocks */
}

static void fill_nan(float *const *out, size_t n_q, size_t dim)
{
    for (size_t i = 0; i < n_q; i++)
        for (size_t d = 0; d < dim; d++) out[i][d] = NAN;
}

void kern_attn_qk_f32(float *const *out, const float *const *q, size_t n_q, const float *k, size_t k_stride,
                      size_t n, size_t n_rows)
{
    if (!out || !q || n_rows == 0) return;
    const kern_attn_qk_f32_fn fn = kern_active()->attn_qk_f32;
    if (fn && n && k) {
        fn(out, q, n_q, k, k_stride, n, n_rows);
        return;
    }
    for (size_t i = 0; i < n_q; i++) kern_dot_f32_rows(out[i], q[i], k, k_stride, n, n_rows);
}

void kern_attn_qk_f16(float *const *out, const float *const *q, size_t n_q, const uint16_t *k16, size_t k_stride,
                      size_t n, size_t n_rows, unsigned order)
{
    if (!out || !q || n_rows == 0) return;
    if (n == 0 || !k16) {
        for (size_t i = 0; i < n_q; i++)
            for (size_t r = 0; r < n_rows; r++) out[i][r] = 0.0f;
        return;
    }
    kern_active()->attn_qk_f16(out, q, n_q, k16, k_stride, n, n_rows, order);
}

void kern_attn_pv_f32(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                      const struct kern_vt *vt, size_t dim, unsigned order)
{
    if (!out || !p || !n || !n_pad || !vt || !vt->v) return;
    if (!vt_blocks_ok(vt->blk)) {
        fill_nan(out, n_q, dim);
        return;
    }
    const struct kern_active *a = kern_active();
    if (a->attn_pv_f32) {
        a->attn_pv_f32(out, p, n, n_pad, n_q, vt, dim, order);
        return;
    }
    for (size_t i = 0; i < n_q; i++) a->wsum(out[i], p[i], vt, n[i], n_pad[i] < n[i] ? n[i] : n_pad[i], dim, order);
}

void kern_attn_pv_f16(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                      const struct kern_vt_f16 *vt, size_t dim, unsigned order)
{
    if (!out || !p || !n || !n_pad || !vt || !vt->v) return;
    if (!vt_blocks_ok(vt->blk)) {
        fill_nan(out, n_q, dim);
        return;
    }
    kern_active()->attn_pv_f16(out, p, n, n_pad, n_q, vt, dim, order);
}

void kern_round_f16(float *x, size_t n)
{
    if (x && n) kern_active()->round_f16(x, n);
}

void kern_fwht_f32(float *x, size_t n)
{
    if (!x || n == 0 || (n & (n - 1))) return;
    const float scale = 1.0f / sqrtf((float)n);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    for (size_t len = 1; len < n; len <<= 1)
        for (size_t i = 0; i < n; i += 2 * len)
            for (size_t j = i; j < i + len; j++) {
                const float u = x[j], w = x[j + len];
                x[j] = u + w;
                x[j + len] = u - w;
            }
}
