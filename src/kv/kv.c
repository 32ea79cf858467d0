/* kv: allocation of the per-session cache. */
#include "kv.h"

#include "../util/err.h"
#include "../util/util.h"

#include <stdlib.h>
#include <string.h>

uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    uint64_t n;
    if (util_mul_overflow((uint64_t)n_layer * n_ctx, kv_dim, &n)) return 0;
    if (util_mul_overflow(n, 2 * sizeof(float), &n)) return 0;
    return n;
}

int kv_init(struct kv_cache *kv, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    memset(kv, 0, sizeof *kv);
    uint64_t bytes = kv_bytes(n_layer, n_ctx, kv_dim);
    if (!bytes || bytes / 2 > SIZE_MAX) return ERR_OVERFLOW;
    kv->k = calloc(1, (size_t)(bytes / 2));
    kv->v = calloc(1, (size_t)(bytes / 2));
    if (!kv->k || !kv->v) {
        kv_free(kv);
        return ERR_NOMEM;
    }
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    return 0;
}

void kv_free(struct kv_cache *kv)
{
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}
