/* kv: the key/value cache of one session: memory only (snapshots come later).
 *
 * Layout: k is [n_layer][n_ctx][kv_dim] f32 (a position's keys are one row, as q.k reads them).
 * v is transposed like llama.cpp's cache, so that softmax(qk).V walks contiguous cells for each
 * output dim, but in blocks of KV_VBLK positions: [n_layer][n_vblk][kv_dim][KV_VBLK]. Writing
 * position t touches only its block, so like k the cache becomes resident as positions are used
 * (a plain [kv_dim][n_ctx] transpose would touch every page of a long context on the first
 * token). Allocated once at init, so appending a position never allocates. */
#ifndef LMPIPE_KV_KV_H
#define LMPIPE_KV_KV_H

#include <stddef.h>
#include <stdint.h>

#define KV_VBLK 256u /* positions per V block: a multiple of 32 (kern.h's kern_vt), llama.cpp's n_kv step */

struct kv_cache {
    uint32_t n_layer, n_ctx, kv_dim;
    float *k; /* [n_layer][n_ctx][kv_dim] */
    uint32_t n_vblk; /* ceil(n_ctx / KV_VBLK) */
    float *v;        /* [n_layer][n_vblk][kv_dim][KV_VBLK] */
};

/* Bytes kv_init would allocate (0 on overflow). */
uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
int kv_init(struct kv_cache *kv, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim);
void kv_free(struct kv_cache *kv); /* safe on zeroed / partial */

static inline float *kv_k(const struct kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->k + ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
}
/* V of a layer: dim d of position t at [(t / KV_VBLK) * kv_dim * KV_VBLK + d * KV_VBLK + t % KV_VBLK]
 * (model.c describes it to the kernels as a struct kern_vt). */
static inline const float *kv_v_layer(const struct kv_cache *kv, uint32_t layer)
{
    return kv->v + (size_t)layer * kv->n_vblk * kv->kv_dim * KV_VBLK;
}
/* Store the kv_dim values of position pos (a scatter with stride KV_VBLK inside its block). */
static inline void kv_v_put(const struct kv_cache *kv, uint32_t layer, uint32_t pos, const float *row)
{
    float *base = kv->v + ((size_t)layer * kv->n_vblk + pos / KV_VBLK) * kv->kv_dim * KV_VBLK + pos % KV_VBLK;
    for (uint32_t d = 0; d < kv->kv_dim; d++) base[(size_t)d * KV_VBLK] = row[d];
}

#endif
