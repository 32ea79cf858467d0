/* kv: the key/value cache of one session: memory only (snapshots come later).
 *
 * Layout: k is [n_layer][n_ctx][kv_dim] f32 (a position's keys are one row, as q.k reads them);
 * v is [n_layer][kv_dim][n_ctx], transposed like llama.cpp's cache, so that the weighted sum
 * softmax(qk).V walks contiguous cells for each output dim. Allocated once at init, so
 * appending a position never allocates. kv_dim = n_head_kv * head_dim. */
#ifndef LMPIPE_KV_KV_H
#define LMPIPE_KV_KV_H

#include <stddef.h>
#include <stdint.h>

struct kv_cache {
    uint32_t n_layer, n_ctx, kv_dim;
    float *k; /* [n_layer][n_ctx][kv_dim] */
    float *v; /* [n_layer][kv_dim][n_ctx] */
};

/* Bytes kv_init would allocate (0 on overflow). */
uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
int kv_init(struct kv_cache *kv, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
void kv_free(struct kv_cache *kv); /* safe on zeroed / partial */

static inline float *kv_k(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->k + ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
}
/* The transposed V of a layer: element (dim d, position t) at [d * n_ctx + t]. */
static inline float *kv_vt(const struct kv_cache *kv, uint32_t layer)
{
    return kv->v + (size_t)layer * kv->kv_dim * kv->n_ctx;
}
/* Store the kv_dim values of position pos (a scatter with stride n_ctx). */
static inline void kv_v_put(const struct kv_cache *kv, uint32_t layer, uint32_t pos, const float *row)
{
    float *base = kv_vt(kv, layer) + pos;
    for (uint32_t d = 0; d < kv->kv_dim; d++) base[(size_t)d * kv->n_ctx] = row[d];
}

#endif
