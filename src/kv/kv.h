/* kv: the key/value cache of one session: memory only (snapshots come later).
 *
 * Layout: k and v are [n_layer][n_ctx][kv_dim] f32, allocated once at init, so appending a
 * position never allocates. kv_dim = n_head_kv * head_dim. */
#ifndef LMPIPE_KV_KV_H
#define LMPIPE_KV_KV_H

#include <stddef.h>
#include <stdint.h>

struct kv_cache {
    uint32_t n_layer, n_ctx, kv_dim;
    float *k; /* [n_layer][n_ctx][kv_dim] */
    float *v; /* [n_layer][n_ctx][kv_dim] */
};

/* Bytes kv_init would allocate (0 on overflow). */
uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
int kv_init(struct kv_cache *kv, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
void kv_free(struct kv_cache *kv); /* safe on zeroed / partial */

static inline float *kv_k(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->k + ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
}
static inline float *kv_v(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->v + ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
}

#endif
