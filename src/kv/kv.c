/* kv: cache types, sizes, allocation and the element moves the model needs (see kv.h). */
#include "kv.h"

#include "../util/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const g_names[KV_TYPE_COUNT_] = {"f32", "f16", "q8_0"};

const char *kv_type_name(int type)
{
    return type >= 0 && type < KV_TYPE_COUNT_ ? g_names[type] : "?";
}

int kv_type_parse(const char *s, int *out)
{
    static const struct {
        const char *name;
        int type;
    } names[] = {{"f32", KV_F32}, {"fp32", KV_F32}, {"f16", KV_F16}, {"fp16", KV_F16}, {"q8_0", KV_Q8_0}, {"q8", KV_Q8_0}};
    if (!s) return ERR_INVALID;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name)) {
            *out = names[i].type;
            return 0;
        }
    return ERR_INVALID;
}

uint32_t kv_type_bytes32(int type)
{
    switch (type) {
    case KV_F32: return 128;
    case KV_F16: return 64;
    case KV_Q8_0: return KV_QBLK_BYTES;
    default: return 0;
    }
}

/* Bytes of one position's K row and of the whole K and V arrays, or an error. */
static int kv_sizes(int type, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim, size_t *row, uint64_t *kb,
                    uint64_t *vb)
{
    uint32_t b32 = kv_type_bytes32(type);
    if (!b32 || (type == KV_Q8_0 && kv_dim % KV_QBLK)) return ERR_INVALID;
    uint64_t r = (uint64_t)kv_dim * b32 / 32; /* exact: F32/F16 per element, Q8_0 per block */
    uint64_t n_vblk = ((uint64_t)n_ctx + KV_VBLK - 1) / KV_VBLK;
    if (util_mul_overflow((uint64_t)n_layer * n_ctx, r, kb)) return ERR_OVERFLOW;
    if (type == KV_Q8_0) {
        *vb = *kb;
    } else if (util_mul_overflow((uint64_t)n_layer * n_vblk * KV_VBLK, r, vb)) {
        return ERR_OVERFLOW;
    }
    *row = (size_t)r;
    return 0;
}

uint64_t kv_mem_bytes(int type, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    size_t row;
    uint64_t kb, vb;
    if (kv_sizes(type, n_layer, n_ctx, kv_dim, &row, &kb, &vb) || kb + vb < kb) return 0;
    return kb + vb;
}

uint64_t kv_bytes(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    return kv_mem_bytes(KV_F32, n_layer, n_ctx, kv_dim);
}

int kv_init(struct kv_cache *kv, int type, uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim)
{
    memset(kv, 0, sizeof *kv);
    size_t row;
    uint64_t kb, vb;
    int rc = kv_sizes(type, n_layer, n_ctx, kv_dim, &row, &kb, &vb);
    if (rc) return rc;
    /* kb == 0: an empty cache is a caller error, reported like a size that cannot exist */
    if (kb == 0 || kb > SIZE_MAX || vb > SIZE_MAX) return ERR_OVERFLOW;
    /* calloc: pages become resident only when a position is written */
    kv->k = calloc(1, (size_t)kb);
    kv->v = calloc(1, (size_t)vb);
    if (!kv->k || !kv->v) {
        kv_free(kv);
        return ERR_NOMEM;
    }
    kv->type = type;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->k_row = row;
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

/* Element d of position pos in a transposed V of a layer, elem-byte cells. */
static inline uint8_t *vt_cell(const struct kv_cache *kv, uint32_t layer, uint32_t pos, size_t elem)
{
    size_t blk = ((size_t)layer * kv->n_vblk + pos / KV_VBLK) * kv->kv_dim * KV_VBLK;
    return kv->v + (blk + pos % KV_VBLK) * elem;
}

void kv_v_put(const struct kv_cache *kv, uint32_t layer, uint32_t pos, const float *row)
{
    if (kv->type == KV_F32) {
        float *base = (float *)(void *)vt_cell(kv, layer, pos, 4);
        for (uint32_t d = 0; d < kv->kv_dim; d++) base[(size_t)d * KV_VBLK] = row[d];
    } else if (kv->type == KV_F16) {
        uint16_t *base = (uint16_t *)(void *)vt_cell(kv, layer, pos, 2);
        for (uint32_t d = 0; d < kv->kv_dim; d++) base[(size_t)d * KV_VBLK] = util_f32_to_fp16(row[d]);
    }
}

void kv_move(const struct kv_cache *kv, uint32_t dst, uint32_t src)
{
    if (dst == src) return;
    for (uint32_t l = 0; l < kv->n_layer; l++) {
        memcpy(kv_k_row(kv, l, dst), kv_k_row(kv, l, src), kv->k_row);
        if (kv->type == KV_Q8_0) {
            memcpy(kv_v_row(kv, l, dst), kv_v_row(kv, l, src), kv->k_row);
            continue;
        }
        size_t e = kv->type == KV_F16 ? 2 : 4;
        uint8_t *a = vt_cell(kv, l, dst, e);
        const uint8_t *b = vt_cell(kv, l, src, e);
        for (uint32_t d = 0; d < kv->kv_dim; d++) memcpy(a + (size_t)d * KV_VBLK * e, b + (size_t)d * KV_VBLK * e, e);
    }
}
