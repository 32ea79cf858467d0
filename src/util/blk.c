/* blk: the tensor type table. Block sizes of the quantized types come from their structs in
 * blk.h; the few types with no struct here (IQ2/IQ3/IQ1, which lmpipe cannot multiply but whose
 * files it must still parse and size) carry ggml's byte counts. */
#include "blk.h"

#include "err.h"
#include "util.h"

#include <stddef.h>
#include <string.h>


static const struct blk_type_info g_types[BLK_T_COUNT_] = {
    [BLK_T_F32] = {"F32", 1, 4},
    [BLK_T_F16] = {"F16", 1, 2},
    [BLK_T_BF16] = {"BF16", 1, 2},
    [BLK_T_Q4_0] = {"Q4_0", QK4_0, sizeof(struct blk_q4_0)},
    [BLK_T_Q4_1] = {"Q4_1", QK4_1, sizeof(struct blk_q4_1)},
    [BLK_T_Q5_0] = {"Q5_0", QK5_0, sizeof(struct blk_q5_0)},
    [BLK_T_Q5_1] = {"Q5_1", QK5_1, sizeof(struct blk_q5_1)},
    [BLK_T_Q8_0] = {"Q8_0", QK8_0, sizeof(struct blk_q8_0)},
    [BLK_T_Q8_1] = {"Q8_1", QK8_1, sizeof(struct blk_q8_1)},
    [BLK_T_Q2_K] = {"Q2_K", QK_K, sizeof(struct blk_q2_K)},
    [BLK_T_Q3_K] = {"Q3_K", QK_K, sizeof(struct blk_q3_K)},
    [BLK_T_Q4_K] = {"Q4_K", QK_K, sizeof(struct blk_q4_K)},
    [BLK_T_Q5_K] = {"Q5_K", QK_K, sizeof(struct blk_q5_K)},
    [BLK_T_Q6_K] = {"Q6_K", QK_K, sizeof(struct blk_q6_K)},
    [BLK_T_Q8_K] = {"Q8_K", QK_K, sizeof(struct blk_q8_K)},
    [BLK_T_IQ4_NL] = {"IQ4_NL", QK4_NL, sizeof(struct blk_iq4_nl)},
    [BLK_T_IQ4_XS] = {"IQ4_XS", QK_K, sizeof(struct blk_iq4_xs)},
    /* layouts lmpipe does not compute with: ggml's sizes, for parsing and sizing files */
    [BLK_T_IQ2_XXS] = {"IQ2_XXS", QK_K, 66},
    [BLK_T_IQ2_XS] = {"IQ2_XS", QK_K, 74},
    [BLK_T_IQ3_XXS] = {"IQ3_XXS", QK_K, 98},
    [BLK_T_IQ1_S] = {"IQ1_S", QK_K, 50},
    [BLK_T_IQ3_S] = {"IQ3_S", QK_K, 110},
    [BLK_T_IQ2_S] = {"IQ2_S", QK_K, 82},
    [BLK_T_IQ1_M] = {"IQ1_M", QK_K, 56},
    [BLK_T_I8] = {"I8", 1, 1},
    [BLK_T_I16] = {"I16", 1, 2},
    [BLK_T_I32] = {"I32", 1, 4},
    [BLK_T_I64] = {"I64", 1, 8},
    [BLK_T_F64] = {"F64", 1, 8},
};

const struct blk_type_info *blk_type_info(uint32_t type)
{
    if (type >= BLK_T_COUNT_ || !g_types[type].name) return NULL;
    return &g_types[type];
}

const char *blk_type_name(uint32_t type)
{
    const struct blk_type_info *ti = blk_type_info(type);
    return ti ? ti->name : "?";
}

uint64_t blk_row_size(uint32_t type, uint64_t n)
{
    const struct blk_type_info *ti = blk_type_info(type);
    if (!ti || n % ti->blck) return 0;
    uint64_t r;
    if (util_mul_overflow(n / ti->blck, ti->size, &r)) return 0;
    return r;
}

unsigned blk_half_fields(uint32_t type, uint32_t off[2])
{
    switch (type) {
    case BLK_T_Q4_1:
    case BLK_T_Q5_1:
    case BLK_T_Q8_1: /* d then m (q8_1: s) */
    case BLK_T_Q4_K:
    case BLK_T_Q5_K: /* d then dmin */
        off[0] = 0;
        off[1] = 2;
        return 2;
    case BLK_T_Q2_K:
        off[0] = (uint32_t)offsetof(struct blk_q2_K, d);
        off[1] = (uint32_t)offsetof(struct blk_q2_K, dmin);
        return 2;
    case BLK_T_Q3_K:
        off[0] = (uint32_t)offsetof(struct blk_q3_K, d);
        return 1;
    case BLK_T_Q6_K:
        off[0] = (uint32_t)offsetof(struct blk_q6_K, d);
        return 1;
    case BLK_T_Q4_0:
    case BLK_T_Q5_0:
    case BLK_T_Q8_0:
    case BLK_T_IQ4_NL:
    case BLK_T_IQ4_XS:
    case BLK_T_IQ2_XXS:
    case BLK_T_IQ2_XS:
    case BLK_T_IQ3_XXS:
    case BLK_T_IQ1_S:
    case BLK_T_IQ3_S:
    case BLK_T_IQ2_S: /* the fp16 scale d first */
        off[0] = 0;
        return 1;
    default:
        return 0;
    }
}

static inline uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static inline uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }

/* Count words whose exponent bits (mask) are all ones: NaN or infinity. memcpy loads (any
 * alignment) in the host's order, as the kernels read tensor data (little-endian hosts); the
 * loops vectorize. Block fields below use rd16/rd32 (a few per block, order-independent). */
static uint64_t count16(const uint8_t *p, uint64_t n, uint16_t mask)
{
    uint64_t c = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        c += (h & mask) == mask;
    }
    return c;
}

static uint64_t count32(const uint8_t *p, uint64_t n)
{
    uint64_t c = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, p + 4 * i, 4);
        c += (w & 0x7f800000u) == 0x7f800000u;
    }
    return c;
}

int blk_count_nonfinite(uint32_t type, const void *data, uint64_t nbytes, uint64_t *count)
{
    const struct blk_type_info *ti = blk_type_info(type);
    const uint8_t *p = data;
    *count = 0;
    if (!ti || type == BLK_T_IQ1_M) return ERR_UNSUPPORTED;
    if (nbytes % ti->size) return ERR_SHAPE;
    uint64_t nb = nbytes / ti->size, c = 0;
    uint32_t off[2];
    unsigned nh = blk_half_fields(type, off);
    switch (type) {
    case BLK_T_F32:
        c = count32(p, nb);
        break;
    case BLK_T_F16:
        c = count16(p, nb, 0x7c00u);
        break;
    case BLK_T_BF16:
        c = count16(p, nb, 0x7f80u);
        break;
    case BLK_T_F64:
        for (uint64_t i = 0; i < nb; i++) c += (rd32(p + 8 * i + 4) & 0x7ff00000u) == 0x7ff00000u;
        break;
    case BLK_T_Q8_K: /* an f32 scale */
        for (uint64_t i = 0; i < nb; i++) c += (rd32(p + i * ti->size) & 0x7f800000u) == 0x7f800000u;
        break;
    default:
        for (uint64_t i = 0; i < nb; i++)
            for (unsigned k = 0; k < nh; k++) c += (rd16(p + i * ti->size + off[k]) & 0x7c00u) == 0x7c00u;
        break;
    }
    *count = c;
    return 0;
}
