/* blk: ggml's tensor types and their block layouts, the leaf both the file parser (gguf) and the
 * kernels (kern) stand on, as ggml-common.h is for ggml.
 *
 * The type numbers are fixed by the GGUF format. Each quantized type is a block struct whose size
 * is asserted at compile time; the type table derives its block sizes from those structs, so a
 * layout and its size cannot disagree. fp16 fields are raw IEEE half bits (util.h converts).
 * Nothing here allocates or fails; unknown type numbers read as NULL / "?" / 0. */
#ifndef LMPIPE_UTIL_BLK_H
#define LMPIPE_UTIL_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml tensor types (numbering fixed by the file format). */
enum blk_type {
    BLK_T_F32 = 0,
    BLK_T_F16 = 1,
    BLK_T_Q4_0 = 2,
    BLK_T_Q4_1 = 3,
    BLK_T_Q5_0 = 6,
    BLK_T_Q5_1 = 7,
    BLK_T_Q8_0 = 8,
    BLK_T_Q8_1 = 9,
    BLK_T_Q2_K = 10,
    BLK_T_Q3_K = 11,
    BLK_T_Q4_K = 12,
    BLK_T_Q5_K = 13,
    BLK_T_Q6_K = 14,
    BLK_T_Q8_K = 15,
    BLK_T_IQ2_XXS = 16,
    BLK_T_IQ2_XS = 17,
    BLK_T_IQ3_XXS = 18,
    BLK_T_IQ1_S = 19,
    BLK_T_IQ4_NL = 20,
    BLK_T_IQ3_S = 21,
    BLK_T_IQ2_S = 22,
    BLK_T_IQ4_XS = 23,
    BLK_T_I8 = 24,
    BLK_T_I16 = 25,
    BLK_T_I32 = 26,
    BLK_T_I64 = 27,
    BLK_T_F64 = 28,
    BLK_T_IQ1_M = 29,
    BLK_T_BF16 = 30,
    BLK_T_COUNT_ = 40
};

struct blk_type_info {
    const char *name; /* NULL for numbers that are not a known type */
    uint32_t blck;    /* elements per block */
    uint32_t size;    /* bytes per block */
};
/* NULL when `type` is not a known ggml type. */
const struct blk_type_info *blk_type_info(uint32_t type);
const char *blk_type_name(uint32_t type); /* "?" when unknown */
/* Bytes for one row of n elements; 0 when n is not a multiple of the block size or unknown. */
uint64_t blk_row_size(uint32_t type, uint64_t n);

/* ---- finiteness of stored values (`lmpipe info --check`) ---- */

/* Byte offsets, within one block, of a block type's fp16 fields (scales d, mins dmin/m, q8_1's
 * s); returns how many (0..2). 0 for plain and integer types, IQ1_M (its scale is spread over
 * nibbles) and unknown types. */
unsigned blk_half_fields(uint32_t type, uint32_t off[2]);
/* Count the NaN and infinite values stored in data[0..nbytes) of a tensor of `type`: every
 * element of F32/F16/BF16/F64, every fp16 (Q8_K: f32) scale field of a quantized block (the
 * quants are integers, always finite; integer types have nothing to count). One pass, no
 * allocation, unaligned data allowed. ERR_UNSUPPORTED for IQ1_M and unknown types, ERR_SHAPE
 * when nbytes is not a whole number of blocks. */
int blk_count_nonfinite(uint32_t type, const void *data, uint64_t nbytes, uint64_t *count);

/* ---- block layouts (ggml-common.h); sizes asserted ---- */
#define QK8_0 32
#define QK4_0 32

/* 34 bytes: 32 int8 values sharing one fp16 scale. */
struct blk_q8_0 {
    uint16_t d; /* fp16 scale */
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct blk_q8_0) == 34, "q8_0 block size");

/* 18 bytes: 32 4-bit values (low nibbles = elements 0..15, high = 16..31), value = (q-8)*d. */
struct blk_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
_Static_assert(sizeof(struct blk_q4_0) == 18, "q4_0 block size");

#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_1 32
#define QK4_NL 32
#define QK_K 256 /* K-quant super-block */

/* 20 bytes: value = q*d + m, q in 0..15 (low nibbles = elements 0..15, high = 16..31). */
struct blk_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct blk_q4_1) == 20, "q4_1 block size");

/* 22 bytes: 5-bit q = nibble | (bit j of qh) << 4, value = (q-16)*d. qh is little-endian u32. */
struct blk_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
_Static_assert(sizeof(struct blk_q5_0) == 22, "q5_0 block size");

/* 24 bytes: as q5_0 but value = q*d + m. */
struct blk_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct blk_q5_1) == 24, "q5_1 block size");

/* 36 bytes (activations only): s = fp16(d_f32 * sum(qs)), d the fp16 scale. */
struct blk_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK8_1];
};
_Static_assert(sizeof(struct blk_q8_1) == 36, "q8_1 block size");

/* 84 bytes: 16 sub-blocks of 16, scales = 4-bit scale | 4-bit min << 4, 2-bit quants,
 * value = d*(sc&15)*q - dmin*(sc>>4). */
struct blk_q2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d;
    uint16_t dmin;
};
_Static_assert(sizeof(struct blk_q2_K) == 84, "q2_K block size");

/* 110 bytes: 3-bit quants = 2 low bits in qs + high bit in hmask, 16 6-bit scales packed in 12
 * bytes, value = d*(scale-32)*(q-4). */
struct blk_q3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};
_Static_assert(sizeof(struct blk_q3_K) == 110, "q3_K block size");

/* 144 bytes: 8 sub-blocks of 32 with 6-bit scale and min packed in 12 bytes,
 * value = d*sc*q - dmin*m. */
struct blk_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct blk_q4_K) == 144, "q4_K block size");

/* 176 bytes: q4_K plus a fifth bit per element in qh. */
struct blk_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct blk_q5_K) == 176, "q5_K block size");

/* 210 bytes: 6-bit quants (4 low bits in ql, 2 high in qh), 16 int8 scales,
 * value = d*scale*(q-32). */
struct blk_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
_Static_assert(sizeof(struct blk_q6_K) == 210, "q6_K block size");

/* 292 bytes (activations only): f32 scale, 256 int8, bsums[i] = sum of qs[16i..16i+15]. */
struct blk_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
_Static_assert(sizeof(struct blk_q8_K) == 292, "q8_K block size");

/* 18 bytes: 4-bit indices into the fixed non-linear table kern_iq4nl_values, value = d*table[q]. */
struct blk_iq4_nl {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
};
_Static_assert(sizeof(struct blk_iq4_nl) == 18, "iq4_nl block size");

/* 136 bytes: 8 sub-blocks of 32 with a 6-bit scale each (low 4 bits in scales_l, high 2 bits in
 * scales_h), value = d*(ls-32)*table[q]. */
struct blk_iq4_xs {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct blk_iq4_xs) == 136, "iq4_xs block size");

#endif
