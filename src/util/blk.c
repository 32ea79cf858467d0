/* blk: the tensor type table. Block sizes of the quantized types come from their structs in
 * blk.h; the few types with no struct here (IQ2/IQ3/IQ1, which lmpipe cannot multiply but whose
 * files it must still parse and size) carry ggml's byte counts. */
#include "blk.h"

#include "util.h"


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
