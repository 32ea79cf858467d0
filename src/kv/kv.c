/* kv: allocation of the per-session cache. */
#include "kv.h"

#include "../util/err.h"
#include "../util/util.h"

#include <stdlib.h>
#include <string.h>

/* Elements of k and of v, or ERR_OVERFLOW. */
static int kv_elems(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim, uint64_t *nk, uint64_t *nv)
{
    uint64_t n_vblk = ((uint64_t)n_ctx + KV_VBLK - 1) / KV_VBLK;
    if (util_mul_overflow((uint64_t)n_layer * n_ctx, kv_dim, nk)) return ERR_OVERFLOW;
    if (util_mul_overflow((uint64_t)n_layer * n_vblk * KV_VBLK, kv_dim, nv)) return ERR_OVERFLOW;
    return 0;
}

uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    uint64_t nk, nv, n;
    if (kv_elems(n_layer, n_ctx, kv_dim, &nk, &nv) || util_mul_overflow(nk + nv, sizeof(float), &n)) return 0;
    return n;
}

int kv_init(struct kv_cache *kv, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    memset(kv, 0, sizeof *kv);
    uint64_t nk, nv;
    /* nk == 0: an empty cache is a caller error, reported like the old whole-size check did */
    if (kv_elems(n_layer, n_ctx, kv_dim, &nk, &nv) || nk == 0 || nk > SIZE_MAX / sizeof(float) ||
        nv > SIZE_MAX / sizeof(float))
        return ERR_OVERFLOW;
    /* calloc: pages become resident only when a position is written */
    kv->k = calloc((size_t)nk, sizeof(float));
    kv->v = calloc((size_t)nv, sizeof(float));
    if (!kv->k || !kv->v) {
        kv_free(kv);
        return ERR_NOMEM;
    }
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->n_vblk = (uint32_t)(((uint64_t)n_ctx + KV_VBLK - 1) / KV_VBLK);
    return 0;
}

void kv_free(struct kv_cache *kv)
{
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}
