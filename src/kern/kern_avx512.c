/* kern_avx512: the AVX-512 tier (`kern_isa_avx512`, "avx512": AVX-512 F/BW/VL + VNNI, e.g. Zen 4
 * and 5, Ice Lake and later).
 *
 * What: 512-bit kernels for what dominates real files, laid over a base table that is kern_avx2.c
 * built again with this file's flags and VNNI on 256-bit vectors (KERN_X86_VNNI = 2), so every
 * weight type runs VNNI code in this tier and the hot ones run the kernels below:
 *  - Q4_K, Q5_K, Q6_K: row dot products (decode) and a rows x tokens tile (prefill);
 *  - Q8_0, Q4_0, Q5_0, IQ4_NL (batched order), Q4_1, Q5_1: a rows x tokens tile; their decode
 *    is the base's per-row dot (DRAM-bound: 256 bits read as fast as 512 there);
 *  - attention over F16 and F32 caches (kern_attn_qk_*, kern_attn_pv_*, kern_dot_f16_rows) and
 *    softmax, which dominate decode at depth (SmolLM2-135M Q8_0, 1024 cached positions, one
 *    core: q.k 1.6 -> 1.2 ms, softmax 0.7 -> 0.5, softmax.V 1.8 -> 1.15 per token).
 * Everything else (activation preparation, F32/F16/BF16, Q2_K, Q3_K, IQ4_XS, IQ4_NL's
 * single-token order, kern_wsum_*, the Q8_0 cache's flash attention, the FFN helpers) is the
 * base's.
 *
 * Why these shapes (measured on the AMD EPYC this project builds on, CPU family 26 = Zen 5, one
 * core): vpdpbusd / vpdpwssd / vpmaddubsw / FMA issue two per cycle at 512 bits as at 256 (all
 * on the same two pipes), so a zmm does twice the work per instruction; shifts, blends,
 * shuffles and converts use two other pipes; two 64-byte loads per cycle, but a load that spans
 * two cache lines takes two slots. Hence: two 32-element groups (K-quants) or two tokens (the
 * one-scale types) per zmm; activations copied to aligned storage once per row block (q8_K
 * blocks are 292 bytes, so their zmm loads always split); two rows sharing each activation load;
 * outputs stored a token line at a time (a y_stride that is a multiple of 4 KiB puts every
 * token's line in one L1 set: storing row-major thrashed it and cost 25% on 2048-row matrices);
 * and on decode no software prefetch (KZ_DECODE_NOTE). Versus the AVX2 tiles, one core: Q4_K
 * 2048x2048 x 32 tokens 50 -> 110 GMAC/s, Q6_K 2048x5632 60 -> 118, Q8_0 SmolLM2 shapes 52 ->
 * 100; Q4_K decode 15 -> 25 GB/s from DRAM (whole-model numbers: README, Performance).
 *
 * Why bit-identical: only integer sums are reorganised (VNNI, int16 pair packing, the +128
 * activation offset taken back out exactly); every float operation of every (row, token) is the
 * reference's, in its order, lane for lane — two (row, token) accumulators side by side in one
 * zmm perform the same operations as two ymm would (tests/check_kern.c compares every kernel with
 * the scalar reference on odd lengths, rows and token counts).
 *
 * Invariants:
 *  - no load reads outside the blocks / n elements given (only prefetch hints look beyond);
 *  - the tiles keep their scratch on the stack: at most ~40 KiB (K-quants) and 80 KiB
 *    (one-scale types, Q0Z_MAX_BLOCKS); longer rows fall back to the base tile;
 *  - nothing allocates; everything is reentrant;
 *  - the Makefile compiles this file with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2
 *    -mfma -mf16c; its code must only run when available() (kern_cpu_has_avx512: the CPU has the
 *    four extensions and the OS saves opmask and ZMM state) is true, which the dispatcher
 *    guarantees. Built without those flags, the table is never available. */
#define KERN_X86_VNNI 2
#include "kern_avx2.c"

#if X86_VNNI_OK && (defined(__x86_64__) || defined(__i386__)) && defined(__AVX2__) && defined(__FMA__) && \
    defined(__F16C__)

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

HOT __m512i loadu512(const void *p)
{
    return _mm512_loadu_si512(p);
}

/* The 32 bytes at p in both 256-bit halves. */
HOT __m512i bcast256(const void *p)
{
    return _mm512_broadcast_i64x4(loadu256(p));
}

/* ------------------------------------------------------------------------------------------ */
/* K-quant super-blocks (Q4_K, Q5_K, Q6_K) in 512 bits                                         */
/*                                                                                            */
/* The reference's integer accumulator of a super-block has 8 lanes, lane k = sum over the     */
/* eight 32-element groups g of scale(g, k) * P_g[k], where P_g[k] is the sum of the 4         */
/* products of elements 32g+4k .. 32g+4k+3 (scale(g, k): Q4_K/Q5_K one per group, Q6_K one     */
/* per 16 elements, i.e. lanes 0-3 / 4-7). Here a zmm holds two groups, 2j in the low 256 bits */
/* and 2j+1 in the high, so one vpdpbusd gives P of both (unsigned 4-6 bit weights times the   */
/* signed activations). |P| <= 4 * 63 * 128 < 2^15, so P of two groups fits one 32-bit lane as */
/* two int16 (P_2j in the low half, P_2j+2 in the high: a shift and a blend), and one          */
/* vpdpwssd with the matching scale pairs adds scale * P for both: 4 vpdpbusd + 2 vpdpwssd per */
/* super-block and token where maddubs + madd needed 16. The low and high 256 bits (even and   */
/* odd groups) are added at the end. All of it is exact integer arithmetic, so the lanes are   */
/* the reference's numbers; the float steps below are the reference's, lane for lane.         */

/* One unpacked super-block of a weight row. */
struct kz_w {
    __m512i w[4];  /* unsigned values of groups 2j (low 256 bits) and 2j+1 (high) */
    __m512i s[2];  /* int16 scale pairs: s[j] lane m < 8: (g 4j, g 4j+2), m >= 8: (4j+1, 4j+3) */
    __m512i mins;  /* Q4_K/Q5_K: the 8 int16 mins in each 128-bit lane; Q6_K: -32 * its 16 int16
                      scales in both 256-bit halves (the -32 offset term) */
    __m128i mins8; /* Q4_K/Q5_K: the 8 int16 mins (one token) */
    __m256i sc16;  /* Q6_K: the 16 int16 scales (one token) */
    __m512 dw;     /* d, broadcast */
    __m512 mdmin;  /* -dmin, broadcast (Q4_K/Q5_K) */
};

/* vpermw indices building s[j] from the int16 scales: Q4_K/Q5_K from 8 per-group scales,
 * Q6_K from 16 per-16-element scales (lanes 0-3 of a group: scale 2g, lanes 4-7: 2g+1). */
static const int16_t kz_idx_k4[2][32] = {
    {0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3},
    {4, 6, 4, 6, 4, 6, 4, 6, 4, 6, 4, 6, 4, 6, 4, 6, 5, 7, 5, 7, 5, 7, 5, 7, 5, 7, 5, 7, 5, 7, 5, 7},
};
static const int16_t kz_idx_k6[2][32] = {
    {0, 4, 0, 4, 0, 4, 0, 4, 1, 5, 1, 5, 1, 5, 1, 5, 2, 6, 2, 6, 2, 6, 2, 6, 3, 7, 3, 7, 3, 7, 3, 7},
    {8, 12, 8, 12, 8, 12, 8, 12, 9, 13, 9, 13, 9, 13, 9, 13, 10, 14, 10, 14, 10, 14, 10, 14, 11, 15, 11, 15, 11, 15, 11, 15},
};

HOT size_t kz_bsize(uint32_t type)
{
    return type == BLK_T_Q4_K ? sizeof(struct blk_q4_K) : type == BLK_T_Q5_K ? sizeof(struct blk_q5_K)
                                                                            : sizeof(struct blk_q6_K);
}

/* Nibbles of the 32 bytes at qs: low nibbles in the low 256 bits, high nibbles in the high. */
HOT __m512i kz_nib2(const uint8_t *qs)
{
    const __m512i b = _mm512_srlv_epi64(bcast256(qs), _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
    return _mm512_and_si512(b, _mm512_set1_epi8(0x0F));
}

HOT void kz_unpack(uint32_t type, const uint8_t *blk, struct kz_w *b)
{
    if (type == BLK_T_Q4_K || type == BLK_T_Q5_K) {
        const uint8_t *qs = type == BLK_T_Q4_K ? ((const struct blk_q4_K *)blk)->qs : ((const struct blk_q5_K *)blk)->qs;
        uint32_t u;
        memcpy(&u, blk, 4); /* d, dmin */
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
        b->dw = _mm512_broadcastss_ps(dm);
        b->mdmin = _mm512_broadcastss_ps(_mm_xor_ps(_mm_movehdup_ps(dm), _mm_set1_ps(-0.0f)));
        /* 8 scales then 8 mins as int16 */
        const __m256i ms = _mm256_cvtepu8_epi16(k4_scales_mins(((const struct blk_q4_K *)blk)->scales));
        const __m512i msz = _mm512_castsi256_si512(ms);
        b->s[0] = _mm512_permutexvar_epi16(_mm512_loadu_si512(kz_idx_k4[0]), msz);
        b->s[1] = _mm512_permutexvar_epi16(_mm512_loadu_si512(kz_idx_k4[1]), msz);
        b->mins8 = _mm256_extracti128_si256(ms, 1);
        b->mins = _mm512_broadcast_i32x4(b->mins8);
        b->sc16 = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) b->w[j] = kz_nib2(qs + 32 * j);
        if (type == BLK_T_Q5_K) { /* fifth bit of group g: bit g of qh[l] */
            const __m512i qh = bcast256(((const struct blk_q5_K *)blk)->qh);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * j))),
                                                       _mm256_set1_epi8((char)(1 << (2 * j + 1))), 1);
                b->w[j] = _mm512_mask_add_epi8(b->w[j], _mm512_test_epi8_mask(qh, bit), b->w[j], _mm512_set1_epi8(16));
            }
        }
        return;
    }
    /* Q6_K: group 4h+s of half h: low 4 bits from ql[64h + 32(s&1) + l] (nibble s>>1), high 2
     * bits from qh[32h + l] at bit 2s */
    const struct blk_q6_K *x = (const struct blk_q6_K *)blk;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m512i ql = loadu512(x->ql + 64 * h), qh = bcast256(x->qh + 32 * h);
        const __m512i hi01 = _mm512_sllv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4));
        const __m512i hi23 = _mm512_srlv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0));
        b->w[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(hi01, m2));
        b->w[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(hi23, m2));
    }
    b->sc16 = _mm256_cvtepi8_epi16(loadu128(x->scales));
    const __m512i scz = _mm512_castsi256_si512(b->sc16);
    b->s[0] = _mm512_permutexvar_epi16(_mm512_loadu_si512(kz_idx_k6[0]), scz);
    b->s[1] = _mm512_permutexvar_epi16(_mm512_loadu_si512(kz_idx_k6[1]), scz);
    b->mins = _mm512_broadcast_i64x4(_mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(b->sc16, 5)));
    b->mins8 = _mm_setzero_si128();
    b->dw = _mm512_set1_ps(avx2_h2f(x->d));
    b->mdmin = _mm512_setzero_ps();
}

/* The 16 lanes whose two 256-bit halves add up to the reference's integer accumulator (before
 * Q6_K's offset term) for the 256 activations at q8. */
HOT __m512i kz_tokdot(const struct kz_w *b, const int8_t *q8)
{
    const __m512i z = _mm512_setzero_si512();
    const __m512i p01 = _mm512_dpbusd_epi32(z, b->w[0], loadu512(q8));
    const __m512i p23 = _mm512_dpbusd_epi32(z, b->w[1], loadu512(q8 + 64));
    const __m512i p45 = _mm512_dpbusd_epi32(z, b->w[2], loadu512(q8 + 128));
    const __m512i p67 = _mm512_dpbusd_epi32(z, b->w[3], loadu512(q8 + 192));
    const __m512i t0 = _mm512_mask_blend_epi16(0xAAAAAAAAu, p01, _mm512_slli_epi32(p23, 16));
    const __m512i t1 = _mm512_mask_blend_epi16(0xAAAAAAAAu, p45, _mm512_slli_epi32(p67, 16));
    return _mm512_dpwssd_epi32(_mm512_madd_epi16(t0, b->s[0]), t1, b->s[1]);
}

/* Single token: the reference's 8-lane accumulator of one super-block (Q6_K: offset included). */
HOT __m256i kz_sumi1(uint32_t type, const struct kz_w *b, const struct blk_q8_K *y)
{
    const __m512i a = kz_tokdot(b, y->qs);
    __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    if (type == BLK_T_Q6_K) s = _mm256_sub_epi32(s, q6_K_sub(b->sc16, y->bsums));
    return s;
}

/* The per-row dot products (decode): as kern_avx2.c's, with the integer part above. */
HOT float kz_dot(uint32_t type, const void *wv, const void *av, size_t n)
{
    const uint8_t *x = wv;
    const struct blk_q8_K *y = av;
    const size_t bs = kz_bsize(type);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    float summs = 0.0f;
    for (size_t i = 0; i < n / QK_K; i++, x += bs) {
        struct kz_w b;
        kz_unpack(type, x, &b);
        const __m256 sumi = _mm256_cvtepi32_ps(kz_sumi1(type, &b, &y[i]));
        const float ya = y[i].d;
        /* d = ya * d_w, dmin' = ya * -dmin_w = -(ya * dmin_w): the reference's f32 products */
        const __m256 d = _mm256_mul_ps(_mm256_set1_ps(ya), _mm512_castps512_ps256(b.dw));
        if (type != BLK_T_Q6_K) {
            const __m128i prod = k4_mins_prod(b.mins8, y[i].bsums);
            const __m128 dmin = _mm_mul_ps(_mm_set1_ps(ya), _mm512_castps512_ps128(b.mdmin));
            if (type == BLK_T_Q4_K) accm = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(prod), accm);
            else summs = fmaf(_mm_cvtss_f32(dmin), (float)hsum4_i(prod), summs);
        }
        acc = _mm256_fmadd_ps(d, sumi, acc);
    }
    return kq_result(type, acc, accm, summs);
}

static float dot_q4_K_z(const void *w, const void *a, size_t n)
{
    return kz_dot(BLK_T_Q4_K, w, a, n);
}

static float dot_q5_K_z(const void *w, const void *a, size_t n)
{
    return kz_dot(BLK_T_Q5_K, w, a, n);
}

static float dot_q6_K_z(const void *w, const void *a, size_t n)
{
    return kz_dot(BLK_T_Q6_K, w, a, n);
}

/* KZ_DECODE_NOTE: decode streams every weight once from DRAM. On the AVX-512 machines this tier
 * targets the hardware prefetchers keep up with a row-by-row stream on their own, and the
 * software prefetch the 256-bit tiers issue 6 KiB ahead (pf_row) costs more than it hides:
 * TinyLlama-shape Q4_K_M decode on one Zen 5 core measured 34-38 tok/s without it, 29-33 with
 * it (31-32 at 3 KiB, 23-31 at 1 KiB; thread CPU time, medians of 3, machine under load), so the
 * 512-bit decode paths read rows plainly, as llama.cpp does. */

/* Batches: a row block of KZ_R rows x a token group of up to KZ_T tokens. Per super-block, what
 * the tokens share across rows is made once (activation scales as pair / quad vectors, Q4_K/
 * Q5_K's bsum pairs, Q6_K's bsums); then each row's super-block is unpacked once and multiplied
 * with every token of the group, two tokens per float step (the two 8-lane accumulators of
 * (row, t) and (row, t+1) in one zmm) and four per min-term step (4 lanes each). A group with
 * an odd token count repeats its last token in the spare lanes (same bits, stored once). */
#define KZ_R 16
#define KZ_T 32
#define KZ_PF_BLOCKS 8

/* hsum8 of both 8-lane halves, in lanes 0 and 8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
HOT __m512 kz_hsum8x2(__m512 x)
{
    x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
    x = _mm512_add_ps(x, _mm512_shuffle_ps(x, x, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(x, _mm512_movehdup_ps(x));
}

/* (m0+m2)+(m1+m3) of each 4-lane group, in its first lane (hsum4_m). */
HOT __m512 kz_hsum4x4(__m512 m)
{
    m = _mm512_add_ps(m, _mm512_shuffle_ps(m, m, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(m, _mm512_movehdup_ps(m));
}

struct kz_tok {              /* per super-block, shared by the rows of a block */
    __m512 ya2[KZ_T / 2];    /* activation scales of token pair p: 8 lanes each */
    __m512 ya4[KZ_T / 4];    /* of token quad q: 4 lanes each */
    __m512i q8s4[KZ_T / 4];  /* Q4_K/Q5_K: bsums summed in pairs, 8 int16 per token of quad q */
    __m512i bs2[KZ_T / 2];   /* Q6_K: the 16 bsums of each token of pair p */
    const int8_t *qs[KZ_T];  /* each token's 256 activations (in aq) */
    /* the activations copied to cache-line-aligned rows: q8_K blocks are 292 bytes, so a zmm load
     * from them always spans two lines and costs two load slots, read once per row */
    _Alignas(64) int8_t aq[KZ_T][QK_K];
};

HOT void kz_tok_prep(uint32_t type, const uint8_t *a0, size_t as, size_t i, size_t tg, struct kz_tok *tk)
{
    const size_t nq = (tg + 3) / 4;
    float ya[KZ_T];
    const int16_t *bsums[KZ_T];
    for (size_t t = 0; t < 4 * nq; t++) {
        const struct blk_q8_K *yb = q8k_at(a0, as, t < tg ? t : tg - 1, i);
        ya[t] = yb->d;
        bsums[t] = yb->bsums;
        if (t < tg)
            for (int k = 0; k < 4; k++) _mm512_store_si512(tk->aq[t] + 64 * k, loadu512(yb->qs + 64 * k));
        tk->qs[t] = tk->aq[t < tg ? t : tg - 1];
    }
    const __m512i i4 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i i2a = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i i2b = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
    for (size_t q = 0; q < nq; q++) {
        const __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(ya + 4 * q));
        tk->ya4[q] = _mm512_permutexvar_ps(i4, v);
        tk->ya2[2 * q] = _mm512_permutexvar_ps(i2a, v);
        tk->ya2[2 * q + 1] = _mm512_permutexvar_ps(i2b, v);
        if (type == BLK_T_Q6_K) {
            for (size_t k = 0; k < 2; k++) {
                const int16_t *b0 = bsums[4 * q + 2 * k], *b1 = bsums[4 * q + 2 * k + 1];
                tk->bs2[2 * q + k] = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(b0)), loadu256(b1), 1);
            }
        } else {
            __m128i s[4];
            for (size_t k = 0; k < 4; k++) {
                const __m256i bs = loadu256(bsums[4 * q + k]);
                s[k] = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            }
            const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(s[0]), s[1], 1);
            const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(s[2]), s[3], 1);
            tk->q8s4[q] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
    }
}

/* The float step of (row, token pair): acc = fma(ya * d_w, float(sumi), acc) in all 16 lanes;
 * the first super-block starts from +0 as the reference does. */
HOT __m512 kz_fma(__m512 d, __m512i si, const __m512 *acc, bool first)
{
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(si), first ? _mm512_setzero_ps() : *acc);
}

/* Combine the lanes of tokens t and u (kz_tokdot of each) into [sumi_t | sumi_u]. */
HOT __m512i kz_pair(__m512i s0, __m512i s1)
{
    return _mm512_add_epi32(_mm512_shuffle_i64x2(s0, s1, 0x44), _mm512_shuffle_i64x2(s0, s1, 0xEE));
}

/* One unpacked super-block of nrw (1 or 2) rows against every token of the group: the
 * accumulators of (row, pair p) and (row, quad q). Two rows share each activation load. Out of
 * line (one copy per type and row count), so its register allocation does not depend on the code
 * around it. */
HOT void kz_rows(uint32_t type, int nrw, const struct kz_w *bp, const struct kz_tok *tk, size_t np, size_t nq,
                 __m512 *const *acc, __m512 *const *accm, bool first)
{
    const struct kz_w b0 = bp[0], b1 = bp[nrw - 1];
    for (size_t p = 0; p < np; p++) {
        const int8_t *qt = tk->qs[2 * p], *qu = tk->qs[2 * p + 1];
        __m512i si0 = kz_pair(kz_tokdot(&b0, qt), kz_tokdot(&b0, qu));
        if (type == BLK_T_Q6_K) si0 = _mm512_dpwssd_epi32(si0, tk->bs2[p], b0.mins);
        acc[0][p] = kz_fma(_mm512_mul_ps(tk->ya2[p], b0.dw), si0, &acc[0][p], first);
        if (nrw == 2) {
            __m512i si1 = kz_pair(kz_tokdot(&b1, qt), kz_tokdot(&b1, qu));
            if (type == BLK_T_Q6_K) si1 = _mm512_dpwssd_epi32(si1, tk->bs2[p], b1.mins);
            acc[1][p] = kz_fma(_mm512_mul_ps(tk->ya2[p], b1.dw), si1, &acc[1][p], first);
        }
    }
    if (type == BLK_T_Q6_K) return;
    for (int r = 0; r < nrw; r++) {
        const struct kz_w *b = &bp[r];
        for (size_t q = 0; q < nq; q++) {
            __m512i prod = _mm512_madd_epi16(b->mins, tk->q8s4[q]);
            if (type == BLK_T_Q5_K) { /* the exact sum of each token's 4 lanes, in all 4 */
                prod = _mm512_add_epi32(prod, _mm512_shuffle_epi32(prod, _MM_PERM_BADC));
                prod = _mm512_add_epi32(prod, _mm512_shuffle_epi32(prod, _MM_PERM_CDAB));
            }
            const __m512 dmin = _mm512_mul_ps(tk->ya4[q], b->mdmin);
            accm[r][q] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(prod), first ? _mm512_setzero_ps() : accm[r][q]);
        }
    }
}

typedef void (*kz_rows_t)(const struct kz_w *b, const struct kz_tok *tk, size_t np, size_t nq, __m512 *const *acc,
                          __m512 *const *accm, bool first);
#define KZ_ROWS_FN(name, type, nrw)                                                                                    \
    static __attribute__((noinline)) void name(const struct kz_w *b, const struct kz_tok *tk, size_t np, size_t nq,   \
                                               __m512 *const *acc, __m512 *const *accm, bool first)                    \
    {                                                                                                                  \
        kz_rows(type, nrw, b, tk, np, nq, acc, accm, first);                                                           \
    }
KZ_ROWS_FN(kz_rows1_q4_K, BLK_T_Q4_K, 1)
KZ_ROWS_FN(kz_rows2_q4_K, BLK_T_Q4_K, 2)
KZ_ROWS_FN(kz_rows1_q5_K, BLK_T_Q5_K, 1)
KZ_ROWS_FN(kz_rows2_q5_K, BLK_T_Q5_K, 2)
KZ_ROWS_FN(kz_rows1_q6_K, BLK_T_Q6_K, 1)
KZ_ROWS_FN(kz_rows2_q6_K, BLK_T_Q6_K, 2)
#undef KZ_ROWS_FN

HOT kz_rows_t kz_rows_fn(uint32_t type, size_t nrw)
{
    if (type == BLK_T_Q4_K) return nrw == 2 ? kz_rows2_q4_K : kz_rows1_q4_K;
    if (type == BLK_T_Q5_K) return nrw == 2 ? kz_rows2_q5_K : kz_rows1_q5_K;
    return nrw == 2 ? kz_rows2_q6_K : kz_rows1_q6_K;
}

HOT void kz_tile(uint32_t type, const void *w, size_t rb, size_t nr, const void *act, size_t as, size_t nt, size_t n,
                 float *y, size_t ys)
{
    const size_t nb = n / QK_K, bsz = kz_bsize(type);
    if (nt == 1) { /* decode: row after row; no software prefetch, see KZ_DECODE_NOTE */
        for (size_t r = 0; r < nr; r++) y[r] = kz_dot(type, row_at(w, rb, r), act, n);
        return;
    }
    for (size_t r0 = 0; r0 < nr; r0 += KZ_R) {
        const size_t rr = nr - r0 < KZ_R ? nr - r0 : KZ_R;
        for (size_t t0 = 0; t0 < nt; t0 += KZ_T) {
            const size_t tg = nt - t0 < KZ_T ? nt - t0 : KZ_T, np = (tg + 1) / 2, nq = (tg + 3) / 4;
            const uint8_t *a0 = (const uint8_t *)act + t0 * as;
            __m512 acc[KZ_R][KZ_T / 2], accm[KZ_R][KZ_T / 4]; /* set by the first super-block */
            /* the first super-blocks of every row of the block at once (many misses in flight
             * instead of one after another); the loop below keeps KZ_PF_BLOCKS ahead, and asks
             * for the rows after this block (the next chunk, usually this thread's) into L2 */
            for (size_t r = 0; r < rr; r++)
                for (size_t o = 0; o < KZ_PF_BLOCKS * bsz; o += 64) _mm_prefetch((const char *)row_at(w, rb, r0 + r) + o, _MM_HINT_T0);
            for (size_t i = 0; i < nb; i++) {
                struct kz_tok tk;
                kz_tok_prep(type, a0, as, i, tg, &tk);
                for (size_t r = 0; r < rr; r += 2) {
                    const size_t nrw = rr - r < 2 ? 1 : 2;
                    struct kz_w b[2];
                    for (size_t k = 0; k < nrw; k++) {
                        const uint8_t *blk = row_at(w, rb, r0 + r + k) + i * bsz;
                        /* a later super-block of the row: from DRAM it arrives while these
                         * tokens are multiplied (a prefetch never faults past the row) */
                        const uintptr_t pf = (uintptr_t)blk + KZ_PF_BLOCKS * bsz;
                        const uintptr_t pn = (uintptr_t)blk + nr * rb; /* row r0 + r + k + nr */
                        for (size_t o = 0; o < bsz; o += 64) {
                            _mm_prefetch((const char *)(pf + o), _MM_HINT_T0);
                            if (t0 == 0) _mm_prefetch((const char *)(pn + o), _MM_HINT_T1);
                        }
                        kz_unpack(type, blk, &b[k]);
                    }
                    __m512 *const pa[2] = {acc[r], acc[r + nrw - 1]}, *const pm[2] = {accm[r], accm[r + nrw - 1]};
                    kz_rows_fn(type, nrw)(b, &tk, np, nq, pa, pm, i == 0);
                }
            }
            /* results gathered per token, then each token's rows stored together: one line per
             * token instead of one float per (row, token) (with y_stride a multiple of 4 KiB, the
             * tokens' lines share an L1 set and thrash it) */
            float res[KZ_T][KZ_R];
            for (size_t r = 0; r < rr; r++) {
                float h[KZ_T / 2][16], m[KZ_T / 4][16];
                for (size_t p = 0; p < np; p++) _mm512_storeu_ps(h[p], kz_hsum8x2(acc[r][p]));
                for (size_t q = 0; q < nq && type != BLK_T_Q6_K; q++)
                    _mm512_storeu_ps(m[q], type == BLK_T_Q4_K ? kz_hsum4x4(accm[r][q]) : accm[r][q]);
                for (size_t t = 0; t < tg; t++) {
                    const float v = h[t / 2][8 * (t % 2)];
                    res[t][r] = type == BLK_T_Q6_K ? v : v + m[t / 4][4 * (t % 4)];
                }
            }
            for (size_t t = 0; t < tg; t++) memcpy(y + (t0 + t) * ys + r0, res[t], rr * sizeof(float));
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Types with one scale per 32 weights: Q8_0, Q4_0, Q5_0, IQ4_NL (batched; Q8_0 activations)   */
/* and Q4_1, Q5_1 (Q8_1 activations, plus an offset term)                                     */
/*                                                                                            */
/* Per block, every (row, token) does acc = fma(d_w * d_a, float(lanes), acc) (8 lanes) and, for */
/* Q4_1/Q5_1, summs = fma(m_w, s_a, summs) (one scalar chain, added after hsum8). Here the lanes */
/* of a token pair share one zmm: [t | u] (the offset chain too, in every lane of its half).   */
/* The integer lanes are one vpdpbusd per (row, pair, block): Q4_1/Q5_1 weights are unsigned   */
/* already; for the signed types the activations are packed unsigned (a + 128) and 128 times  */
/* the weights' 4-sums (shared by all tokens of the row) are taken back out — exact for every  */
/* int8 input, -128 included. The float steps are the reference's, lane for lane.             */

#define Q0Z_R 4            /* rows in registers (2 for Q4_1/Q5_1: their offset chains need room) */
#define Q0Z_P 4            /* token pairs in registers (8 tokens) */
#define Q0Z_MAX_BLOCKS 256 /* longer rows: the 256-bit tile (the pack, 80 KiB, is on the stack) */
#define Q0Z_RB 64          /* rows whose results are gathered before they are stored */

HOT bool q0z_offset(uint32_t type)
{
    return type == BLK_T_Q4_1 || type == BLK_T_Q5_1;
}

HOT size_t q0z_rows(uint32_t type)
{
    return q0z_offset(type) ? 2 : Q0Z_R;
}

HOT size_t q0z_bsize(uint32_t type)
{
    return type == BLK_T_Q4_1 ? sizeof(struct blk_q4_1) : type == BLK_T_Q5_1 ? sizeof(struct blk_q5_1) : q0_bsize(type);
}

/* The 32 weights of block i as vpdpbusd's unsigned operand (Q4_1/Q5_1) or signed one. */
HOT __m256i q0z_weights(uint32_t type, const uint8_t *row, size_t i)
{
    if (type == BLK_T_Q4_1) return nibbles32(((const struct blk_q4_1 *)row)[i].qs);
    if (type == BLK_T_Q5_1) {
        const struct blk_q5_1 *b = (const struct blk_q5_1 *)row + i;
        return _mm256_or_si256(nibbles32(b->qs), _mm256_and_si256(bits32(b->qh), _mm256_set1_epi8(0x10)));
    }
    return q0_weights(type, row, i);
}

/* The packed activations, entry p * nb + i for token pair p and block i: the activations
 * [t | u] (signed types: + 128, as unsigned bytes), and as floats d_t, d_u and (Q8_1) s_t, s_u,
 * each spread over its 8 lanes when used. Two arrays, so every zmm entry stays 64-byte aligned
 * and the whole pack is 80 KiB. */
struct q0z_pk {
    __m512i a[Q0Z_P * Q0Z_MAX_BLOCKS];
    float f[Q0Z_P * Q0Z_MAX_BLOCKS][4];
};

/* Pack Q0Z_P pairs of tokens (t0 .. t0 + 2 Q0Z_P - 1, clamped to nt - 1) for every block. */
HOT void q0z_pack(uint32_t type, const uint8_t *a, size_t as, size_t t0, size_t nt, size_t nb, struct q0z_pk *pk)
{
    const bool q81 = q0z_offset(type);
    const size_t bs = q81 ? sizeof(struct blk_q8_1) : sizeof(struct blk_q8_0);
    const size_t qo = q81 ? offsetof(struct blk_q8_1, qs) : offsetof(struct blk_q8_0, qs);
    const __m512i flip = q81 ? _mm512_setzero_si512() : _mm512_set1_epi8((char)0x80);
    for (size_t p = 0; p < Q0Z_P; p++) {
        const size_t t = t0 + 2 * p < nt ? t0 + 2 * p : nt - 1, u = t + 1 < nt ? t + 1 : nt - 1;
        const uint8_t *at = a + t * as, *au = a + u * as;
        for (size_t i = 0; i < nb; i++, at += bs, au += bs) {
            uint16_t dt, du, st = 0, su = 0; /* d is the first field of both layouts, s follows */
            memcpy(&dt, at, 2);
            memcpy(&du, au, 2);
            if (q81) {
                memcpy(&st, at + 2, 2);
                memcpy(&su, au + 2, 2);
            }
            const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(at + qo)), loadu256(au + qo), 1);
            pk->a[p * nb + i] = _mm512_xor_si512(v, flip);
            const float f[4] = {avx2_h2f(dt), avx2_h2f(du), avx2_h2f(st), avx2_h2f(su)};
            memcpy(pk->f[p * nb + i], f, sizeof f);
        }
    }
}

/* Block i of the tile's rows against the packed pairs; the first block starts from +0 as the
 * reference does. All of it stays in registers (the loops are unrolled). */
HOT void q0z_step(uint32_t type, const uint8_t *const row[Q0Z_R], size_t rb, size_t bs, const struct q0z_pk *pk,
                  size_t nb, size_t i, __m512 acc[Q0Z_R][Q0Z_P], __m512 summs[Q0Z_R][Q0Z_P], bool first)
{
    const size_t nrow = q0z_rows(type);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    __m512i wz[Q0Z_R], nc[Q0Z_R];
    __m512 dw[Q0Z_R], mw[Q0Z_R];
#pragma GCC unroll 4
    for (size_t k = 0; k < nrow; k++) {
        /* the rows stream from DRAM on the first token group: ask for the same block of the
         * rows this tile takes next (a line holds about two blocks; a prefetch never faults,
         * past the matrix included) */
        _mm_prefetch((const char *)((uintptr_t)row[k] + nrow * rb + i * bs), _MM_HINT_T0);
        const uint8_t *blk = row[k] + i * bs;
        wz[k] = _mm512_broadcast_i64x4(q0z_weights(type, row[k], i));
        uint16_t h;
        memcpy(&h, blk, 2); /* d: the first field of every layout here */
        dw[k] = _mm512_set1_ps(avx2_h2f(h));
        if (q0z_offset(type)) {
            memcpy(&h, blk + 2, 2); /* m follows d in Q4_1 and Q5_1 */
            mw[k] = _mm512_set1_ps(avx2_h2f(h));
            nc[k] = _mm512_setzero_si512();
        } else { /* -128 * (sum of each 4 weights): the a + 128 offset taken back out */
            mw[k] = _mm512_setzero_ps();
            nc[k] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), x80, wz[k]));
        }
    }
#pragma GCC unroll 4
    for (size_t p = 0; p < Q0Z_P; p++) {
        const __m512i pa = pk->a[p * nb + i];
        const __m512 f4 = _mm512_castps128_ps512(_mm_loadu_ps(pk->f[p * nb + i]));
        const __m512 da = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), f4);
        const __m512 sa = _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2), f4);
#pragma GCC unroll 4
        for (size_t k = 0; k < nrow; k++) {
            const __m512i si = q0z_offset(type) ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), wz[k], pa)
                                                : _mm512_dpbusd_epi32(nc[k], pa, wz[k]);
            acc[k][p] = _mm512_fmadd_ps(_mm512_mul_ps(dw[k], da), _mm512_cvtepi32_ps(si),
                                        first ? _mm512_setzero_ps() : acc[k][p]);
            if (q0z_offset(type)) summs[k][p] = _mm512_fmadd_ps(mw[k], sa, first ? _mm512_setzero_ps() : summs[k][p]);
        }
    }
}

/* The tile's rows (r0.., clamped to nr - 1) x the packed pairs, over all blocks: [row][pair]
 * results, each pair's two in lanes 0 and 8. */
HOT void q0z_block(uint32_t type, const uint8_t *w, size_t rb, size_t r0, size_t nr, const struct q0z_pk *pk,
                   size_t nb, float out[Q0Z_R][Q0Z_P][16])
{
    const size_t bs = q0z_bsize(type), nrow = q0z_rows(type);
    const uint8_t *row[Q0Z_R];
    for (size_t k = 0; k < Q0Z_R; k++) row[k] = w + (r0 + k < nr ? r0 + k : nr - 1) * rb;
    __m512 acc[Q0Z_R][Q0Z_P], summs[Q0Z_R][Q0Z_P];
    q0z_step(type, row, rb, bs, pk, nb, 0, acc, summs, true);
    for (size_t i = 1; i < nb; i++) q0z_step(type, row, rb, bs, pk, nb, i, acc, summs, false);
#pragma GCC unroll 4
    for (size_t k = 0; k < nrow; k++)
#pragma GCC unroll 4
        for (size_t p = 0; p < Q0Z_P; p++) {
            __m512 v = kz_hsum8x2(acc[k][p]);
            if (q0z_offset(type)) v = _mm512_add_ps(v, summs[k][p]); /* hsum8(acc) + summs */
            _mm512_storeu_ps(out[k][p], v);
        }
}

HOT void q0z_tile(uint32_t type, const void *wv, size_t rb, size_t nr, const void *act, size_t as, size_t nt, size_t n,
                  float *y, size_t ys)
{
    const size_t nb = n / QK8_0, nrow = q0z_rows(type);
    if (nt == 1) { /* decode: row after row, no software prefetch (KZ_DECODE_NOTE) */
        const kern_dot_fn dot = type == BLK_T_Q4_1 ? dot_q4_1 : type == BLK_T_Q5_1 ? dot_q5_1 : NULL;
        for (size_t r = 0; r < nr; r++) {
            const uint8_t *row = (const uint8_t *)wv + r * rb;
            y[r] = dot ? dot(row, act, n) : q0_one(type, row, act, nb);
        }
        return;
    }
    if (nb > Q0Z_MAX_BLOCKS) { /* the 256-bit tile, or (Q4_1/Q5_1: none) rows x tokens of the dot */
        if (!q0z_offset(type)) {
            q0_tile(type, wv, rb, nr, act, as, nt, n, y, ys);
            return;
        }
        for (size_t t = 0; t < nt; t++)
            for (size_t r = 0; r < nr; r++)
                y[t * ys + r] = (type == BLK_T_Q4_1 ? dot_q4_1 : dot_q5_1)((const uint8_t *)wv + r * rb,
                                                                          (const uint8_t *)act + t * as, n);
        return;
    }
    struct q0z_pk pk;
    for (size_t t0 = 0; t0 < nt; t0 += 2 * Q0Z_P) {
        q0z_pack(type, act, as, t0, nt, nb, &pk);
        const size_t tg = nt - t0 < 2 * Q0Z_P ? nt - t0 : 2 * Q0Z_P;
        /* results of up to Q0Z_RB rows, then stored a token line at a time (see kz_tile) */
        for (size_t rb0 = 0; rb0 < nr; rb0 += Q0Z_RB) {
            const size_t nrb = nr - rb0 < Q0Z_RB ? nr - rb0 : Q0Z_RB;
            float res[2 * Q0Z_P][Q0Z_RB];
            for (size_t r0 = 0; r0 < nrb; r0 += nrow) {
                float out[Q0Z_R][Q0Z_P][16];
                q0z_block(type, (const uint8_t *)wv + rb0 * rb, rb, r0, nrb, &pk, nb, out);
                const size_t rr = nrb - r0 < nrow ? nrb - r0 : nrow;
                for (size_t t = 0; t < tg; t++)
                    for (size_t k = 0; k < rr; k++) res[t][r0 + k] = out[k][t / 2][8 * (t % 2)];
            }
            for (size_t t = 0; t < tg; t++) memcpy(y + (t0 + t) * ys + rb0, res[t], nrb * sizeof(float));
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Attention over F32 / F16 caches (kern_attn_*, kern_dot_f16_rows) in 512 bits               */
/*                                                                                            */
/* The reference's accumulators are 8-lane vectors (llama.cpp's AVX2 lanes); a zmm holds two   */
/* of them that never meet until the reduction, so every float operation is the base's:       */
/*  - ggml_vec_dot's order (four accumulators s0..s3 by element % 32 / 8) with 16 contiguous   */
/*    elements per zmm: [s0 | s1] and [s2 | s3], reduced as (s0 + s2) + (s1 + s3) by adding    */
/*    the two zmm and then their halves (F32 keys, softmax.V of both types);                   */
/*  - tinyBLAS' order (one accumulator, one chain over the elements) with two independent     */
/*    rows per zmm: two keys (q.k, over F16 keys converted once per 8-key block into pairs) or */
/*    two output dims (softmax.V), the query / weights broadcast to both halves;               */
/*  - F16 keys in ggml_vec_dot's order also as key pairs, [s_e(a) | s_e(b)]: the conversion is */
/*    paid once per block and the reduction needs no shuffles.                                 */
/* Horizontal sums of 8 keys finish lane-parallel (az_hsum_x8), with the additions of          */
/* hsum8_hadd / hsum8 in their order. Cells a query must not see are never read for it: its   */
/* lanes are masked (the accumulator lanes kept, as the reference skips them).                 */

/* lo in the low 256 bits, hi in the high */
HOT __m512 az_join(__m256 lo, __m256 hi)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}

HOT __m256 az_lo(__m512 v)
{
    return _mm512_castps512_ps256(v);
}

HOT __m256 az_hi(__m512 v)
{
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* the 8 floats at p in both halves */
HOT __m512 az_bcast8(const float *p)
{
    return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

HOT __mmask16 az_below(size_t rem)
{
    return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
}

/* The horizontal sums of 8 keys whose 8-lane vectors are the halves of r[0..4) (key 2p low, 2p+1
 * high), into out[0..8): lo128 + hi128 per key, then hsum8_hadd's (t0 + t1) + (t2 + t3)
 * (hadd = 1) or hsum8's (t0 + t2) + (t1 + t3) (hadd = 0), one key per 128-bit lane. */
HOT void az_hsum_x8(float *out, const __m512 r[4], int hadd)
{
    __m512 t[2];
#pragma GCC unroll 8
    for (int j = 0; j < 2; j++) {
        const __m512 a = r[2 * j], b = r[2 * j + 1];
        t[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
        if (hadd) {
            t[j] = _mm512_add_ps(t[j], _mm512_permute_ps(t[j], _MM_SHUFFLE(2, 3, 0, 1))); /* t0+t1, t2+t3 */
            t[j] = _mm512_add_ps(t[j], _mm512_permute_ps(t[j], _MM_SHUFFLE(1, 0, 3, 2)));
        } else {
            t[j] = _mm512_add_ps(t[j], _mm512_permute_ps(t[j], _MM_SHUFFLE(1, 0, 3, 2))); /* t0+t2, t1+t3 */
            t[j] = _mm512_add_ps(t[j], _mm512_movehdup_ps(t[j]));
        }
    }
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm256_storeu_ps(out, az_lo(_mm512_permutex2var_ps(t[0], idx, t[1])));
}

/* [lo(a) + hi(a) | lo(b) + hi(b)]: the 8-lane vectors of two keys kept as [x | y] pairs */
HOT __m512 az_fold2(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* ggml_vec_dot_f32's blocks of one query against 8 F32 keys (stride ks), 16 elements per zmm;
 * r[p] = [reduce4_v of key 2p | of key 2p+1]. */
HOT void az_qk8_f32(__m512 r[4], const float *q, const float *k, size_t ks, size_t np)
{
    __m512 a[8], b[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) a[j] = b[j] = _mm512_setzero_ps();
    for (size_t i = 0; i < np; i += 32) {
        const __m512 q0 = _mm512_loadu_ps(q + i), q1 = _mm512_loadu_ps(q + i + 16);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            a[j] = _mm512_fmadd_ps(_mm512_loadu_ps(k + (size_t)j * ks + i), q0, a[j]);
            b[j] = _mm512_fmadd_ps(_mm512_loadu_ps(k + (size_t)j * ks + i + 16), q1, b[j]);
        }
    }
#pragma GCC unroll 8
    for (int p = 0; p < 4; p++)
        r[p] = az_fold2(_mm512_add_ps(a[2 * p], b[2 * p]), _mm512_add_ps(a[2 * p + 1], b[2 * p + 1]));
}

static void attn_qk_f32_z(float *const *out, const float *const *q, size_t n_q, const float *k, size_t ks, size_t n,
                          size_t n_rows)
{
    const size_t np = n & ~(size_t)31;
    size_t r = 0;
    for (; r + AB_K <= n_rows; r += AB_K) {
        const float *kb = k + r * ks;
        for (size_t i = 0; i < n_q; i++) {
            __m512 red[4];
            az_qk8_f32(red, q[i], kb, ks, np);
            az_hsum_x8(out[i] + r, red, 1);
            if (np < n)
                for (size_t j = 0; j < AB_K; j++) out[i][r + j] = f32_tail(q[i], kb + j * ks, np, n, out[i][r + j]);
        }
    }
    for (; r < n_rows; r++)
        for (size_t i = 0; i < n_q; i++) out[i][r] = dot_f32_vecdot(q[i], k + r * ks, n);
}

/* The 8 F16 keys at k (stride ks) as floats in pairs: elements i..i+8 of keys 2p and 2p+1 side by
 * side at dst[p * 2 * n8 + 2 * i], for i < n8 (a multiple of 8). Exact. Written key by key, each
 * key's lines read in order: decode reads every key once from beyond L2, and converting two keys
 * interleaved (one 256-bit load pair per zmm) took 40% longer there. */
HOT void az_f16_pairs8(float *dst, const uint16_t *k, size_t ks, size_t n8)
{
    for (size_t j = 0; j < AB_K; j++) {
        const uint16_t *kr = k + j * ks;
        float *o = dst + (j / 2) * 2 * n8 + (j % 2) * 8;
        for (size_t i = 0; i < n8; i += 8) _mm256_storeu_ps(o + 2 * i, load_f16x8(kr + i));
    }
}

/* One query against 8 keys in pair layout (az_f16_pairs8, row length n8): ggml_vec_dot's four
 * accumulators per key over np elements (gemm = 0), or tinyBLAS' one over n8 (gemm = 1). */
HOT void az_qk8_pairs(__m512 r[4], const float *q, const float *kp, size_t n8, size_t np, int gemm)
{
    if (gemm) {
        __m512 a[4];
#pragma GCC unroll 8
        for (int p = 0; p < 4; p++) a[p] = _mm512_setzero_ps();
        for (size_t i = 0; i < n8; i += 8) {
            const __m512 qv = az_bcast8(q + i);
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) a[p] = _mm512_fmadd_ps(_mm512_loadu_ps(kp + (size_t)p * 2 * n8 + 2 * i), qv, a[p]);
        }
#pragma GCC unroll 8
        for (int p = 0; p < 4; p++) r[p] = a[p];
        return;
    }
    __m512 s[4][4];
#pragma GCC unroll 8
    for (int p = 0; p < 4; p++)
#pragma GCC unroll 8
        for (int e = 0; e < 4; e++) s[p][e] = _mm512_setzero_ps();
    for (size_t i = 0; i < np; i += 32) {
        __m512 qv[4];
#pragma GCC unroll 8
        for (int e = 0; e < 4; e++) qv[e] = az_bcast8(q + i + 8 * (size_t)e);
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++)
#pragma GCC unroll 8
            for (int e = 0; e < 4; e++)
                s[p][e] = _mm512_fmadd_ps(_mm512_loadu_ps(kp + (size_t)p * 2 * n8 + 2 * (i + 8 * (size_t)e)), qv[e], s[p][e]);
    }
#pragma GCC unroll 8
    for (int p = 0; p < 4; p++) r[p] = _mm512_add_ps(_mm512_add_ps(s[p][0], s[p][2]), _mm512_add_ps(s[p][1], s[p][3]));
}

static void attn_qk_f16_z(float *const *out, const float *const *q, size_t n_q, const uint16_t *k, size_t ks, size_t n,
                          size_t n_rows, unsigned order)
{
    const int gemm = order == KERN_ORDER_GEMM && n % 8 == 0;
    const size_t np = n & ~(size_t)31, n8 = n & ~(size_t)7;
    size_t r = 0;
    if (n <= AB_MAXN)
        for (; r + AB_K <= n_rows; r += AB_K) {
            float kp[AB_K * AB_MAXN];
            az_f16_pairs8(kp, k + r * ks, ks, gemm ? n8 : np);
            for (size_t i = 0; i < n_q; i++) {
                __m512 red[4];
                az_qk8_pairs(red, q[i], kp, gemm ? n8 : np, np, gemm);
                az_hsum_x8(out[i] + r, red, !gemm);
                if (!gemm && np < n)
                    for (size_t j = 0; j < AB_K; j++)
                        out[i][r + j] = kern_ref_qk_f16_tail(k + (r + j) * ks, q[i], np, n, out[i][r + j]);
            }
        }
    for (; r < n_rows; r++)
        for (size_t i = 0; i < n_q; i++) out[i][r] = qk1_f16(k + r * ks, q[i], n, order);
}

/* kern_dot_f16_rows: the query's halves as floats (exact), then the batched kernel for one query,
 * whose operations on half-valued queries are exactly the F16 dot's (check_kern compares them). */
static void dot_f16_rows_z(float *out, const uint16_t *q16, const uint16_t *k, size_t ks, size_t n, size_t n_rows,
                           unsigned order)
{
    if (n > AB_MAXN || n_rows < AB_K) {
        dot_f16_rows_avx2(out, q16, k, ks, n, n_rows, order);
        return;
    }
    float qf[AB_MAXN];
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(qf + i, _mm512_cvtph_ps(loadu256(q16 + i)));
    for (; i < n; i++) qf[i] = avx2_h2f(q16[i]);
    const float *qp = qf;
    attn_qk_f16_z(&out, &qp, 1, k, ks, n, n_rows, order);
}

/* 16 cells of dim d from cell c (a multiple of 16); only the first rem when rem < 16 (the rest
 * zero, never read). */
HOT __m512 az_v16(const struct vt_any *vt, size_t d, size_t c, size_t rem)
{
    const void *x = vt_any_at(vt, d, c);
    if (rem >= 16) return vt->h ? _mm512_cvtph_ps(loadu256(x)) : _mm512_loadu_ps(x);
    const __mmask16 m = az_below(rem);
    return vt->h ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x)) : _mm512_maskz_loadu_ps(m, x);
}

/* 8 cells from cell c of dims d (low half) and e (high half); the first rem only when rem < 8. */
HOT __m512 az_v8x2_at(const void *x, const void *y, int h, size_t rem)
{
    if (rem >= 8) {
        if (h) return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(loadu128(x)), loadu128(y), 1));
        return az_join(_mm256_loadu_ps(x), _mm256_loadu_ps(y));
    }
    const __mmask8 m = (__mmask8)az_below(rem);
    if (h)
        return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_maskz_loadu_epi16(m, x)),
                                                       _mm_maskz_loadu_epi16(m, y), 1));
    return az_join(_mm256_maskz_loadu_ps(m, x), _mm256_maskz_loadu_ps(m, y));
}

HOT __m512 az_v8x2(const struct vt_any *vt, size_t d, size_t e, size_t c, size_t rem)
{
    return az_v8x2_at(vt_any_at(vt, d, c), vt_any_at(vt, e, c), vt->h, rem);
}

/* vec_dot order: NQ queries x ND dims (d, d+1) over cells [0, cmax), every query's cells below
 * cmin read unmasked; red[e][i] = reduce4_v of (dim d+e, query i). a: cells % 32 < 16 ([s0 | s1]),
 * b: the others ([s2 | s3]). */
HOT void az_pv_vecdot(__m256 red[2][PV_Q], const struct pv_q *qs, int NQ, int ND, const struct vt_any *vt, size_t d,
                      size_t cmin, size_t cmax)
{
    __m512 a[2][PV_Q], b[2][PV_Q];
#pragma GCC unroll 8
    for (int e = 0; e < ND; e++)
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) a[e][i] = b[e][i] = _mm512_setzero_ps();
    const size_t c32 = cmin & ~(size_t)31;
    for (size_t b0 = 0; b0 < c32; b0 += vt->blk) { /* block by block: its cells are contiguous */
        const size_t len = c32 - b0 < vt->blk ? c32 - b0 : vt->blk;
        const void *x[2];
#pragma GCC unroll 8
        for (int e = 0; e < ND; e++) x[e] = vt_any_at(vt, d + (size_t)e, b0);
        for (size_t t = 0; t < len; t += 32) {
            __m512 v0[2], v1[2];
#pragma GCC unroll 8
            for (int e = 0; e < ND; e++) {
                v0[e] = vt->h ? _mm512_cvtph_ps(loadu256((const uint16_t *)x[e] + t)) : _mm512_loadu_ps((const float *)x[e] + t);
                v1[e] = vt->h ? _mm512_cvtph_ps(loadu256((const uint16_t *)x[e] + t + 16))
                              : _mm512_loadu_ps((const float *)x[e] + t + 16);
            }
#pragma GCC unroll 8
            for (int i = 0; i < NQ; i++) {
                const float *pc = qs[i].p + b0 + t;
                const __m512 p0 = _mm512_loadu_ps(pc), p1 = _mm512_loadu_ps(pc + 16);
#pragma GCC unroll 8
                for (int e = 0; e < ND; e++) {
                    a[e][i] = _mm512_fmadd_ps(v0[e], p0, a[e][i]);
                    b[e][i] = _mm512_fmadd_ps(v1[e], p1, b[e][i]);
                }
            }
        }
    }
    size_t c = c32;
    for (; c < cmax; c += 16) {
        __m512 v[2];
#pragma GCC unroll 8
        for (int e = 0; e < ND; e++) v[e] = az_v16(vt, d + (size_t)e, c, cmax - c);
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) {
            if (c >= qs[i].lim) continue;
            const __mmask16 m = az_below(qs[i].lim - c);
            const __m512 p = _mm512_maskz_loadu_ps(m, qs[i].p + c);
#pragma GCC unroll 8
            for (int e = 0; e < ND; e++) {
                if (c % 32) b[e][i] = _mm512_mask3_fmadd_ps(v[e], p, b[e][i], m);
                else a[e][i] = _mm512_mask3_fmadd_ps(v[e], p, a[e][i], m);
            }
        }
    }
#pragma GCC unroll 8
    for (int e = 0; e < ND; e++)
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) {
            const __m512 t = _mm512_add_ps(a[e][i], b[e][i]);
            red[e][i] = _mm256_add_ps(az_lo(t), az_hi(t));
        }
}

/* tinyBLAS order: NQ queries x dims d..d+3 ([d | d+1], [d+2 | d+3]) over cells [0, cmax); cells
 * below cmin (a multiple of 8) are visible to every query of the tile. */
HOT void az_pv_gemm(const struct pv_q *qs, int NQ, const struct vt_any *vt, size_t d, size_t cmin, size_t cmax)
{
    __m512 a[PV_Q][2];
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++) a[i][0] = a[i][1] = _mm512_setzero_ps();
    for (size_t b0 = 0; b0 < cmin; b0 += vt->blk) { /* block by block: its cells are contiguous */
        const size_t len = cmin - b0 < vt->blk ? cmin - b0 : vt->blk;
        const void *x0 = vt_any_at(vt, d, b0), *x1 = vt_any_at(vt, d + 1, b0), *x2 = vt_any_at(vt, d + 2, b0),
                   *x3 = vt_any_at(vt, d + 3, b0);
        for (size_t t = 0; t < len; t += 8) {
            const __m512 v0 = az_v8x2_at(cells_at(x0, t, vt->h), cells_at(x1, t, vt->h), vt->h, 8);
            const __m512 v1 = az_v8x2_at(cells_at(x2, t, vt->h), cells_at(x3, t, vt->h), vt->h, 8);
#pragma GCC unroll 8
            for (int i = 0; i < NQ; i++) {
                const __m512 w = az_bcast8(qs[i].p + b0 + t);
                a[i][0] = _mm512_fmadd_ps(v0, w, a[i][0]);
                a[i][1] = _mm512_fmadd_ps(v1, w, a[i][1]);
            }
        }
    }
    size_t c = cmin;
    for (; c < cmax; c += 8) {
        const __m512 v0 = az_v8x2(vt, d, d + 1, c, cmax - c), v1 = az_v8x2(vt, d + 2, d + 3, c, cmax - c);
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) {
            if (c >= qs[i].lim) continue;
            const size_t rem = qs[i].lim - c < 8 ? qs[i].lim - c : 8;
            const __mmask8 m8 = (__mmask8)az_below(rem);
            const __m256 w8 = _mm256_maskz_loadu_ps(m8, qs[i].p + c);
            const __mmask16 m = (__mmask16)(m8 | (m8 << 8));
            const __m512 w = az_join(w8, w8);
            a[i][0] = _mm512_mask3_fmadd_ps(v0, w, a[i][0], m);
            a[i][1] = _mm512_mask3_fmadd_ps(v1, w, a[i][1], m);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 8
        for (int e = 0; e < 2; e++) {
            const __m512 h = kz_hsum8x2(a[i][e]); /* hsum8 of each half, in lanes 0 and 8 */
            qs[i].out[d + 2 * (size_t)e] = _mm512_cvtss_f32(h);
            qs[i].out[d + 2 * (size_t)e + 1] = _mm256_cvtss_f32(az_hi(h));
        }
}

/* pv_tile in 512 bits: one tile of NQ queries of one mode over every dim. */
HOT void az_pv_tile(const struct pv_q *qs, int NQ, bool gemm, const struct vt_any *vt, const struct kern_vt *vt32,
                    const struct kern_vt_f16 *vt16, size_t dim)
{
    size_t cmin = qs[0].lim, cmax = qs[0].lim;
    for (int i = 1; i < NQ; i++) {
        cmin = qs[i].lim < cmin ? qs[i].lim : cmin;
        cmax = qs[i].lim > cmax ? qs[i].lim : cmax;
    }
    if (gemm) {
        for (size_t d = 0; d < dim; d += 4) az_pv_gemm(qs, NQ, vt, d, cmin & ~(size_t)7, cmax);
        return;
    }
    for (size_t d = 0; d < dim; d += 2) {
        __m256 red[2][PV_Q];
        const int nd = d + 2 <= dim ? 2 : 1;
        if (nd == 2) az_pv_vecdot(red, qs, NQ, 2, vt, d, cmin, cmax);
        else az_pv_vecdot(red, qs, NQ, 1, vt, d, cmin, cmax);
        for (int e = 0; e < nd; e++)
#pragma GCC unroll 8
            for (int i = 0; i < NQ; i++) {
                const struct pv_q *q = &qs[i];
                const float head = hsum8_hadd(red[e][i]);
                const size_t de = d + (size_t)e;
                q->out[de] = vt->h ? kern_ref_pv_f16_tail(q->p, vt16, de, q->lim, q->n, head)
                                   : kern_ref_wsum_tail(q->p, vt32, de, q->lim, q->n, q->npad, head);
            }
    }
}

/* attn_pv_any with the 512-bit tiles (the same grouping of queries into tiles of one mode). */
HOT void az_pv_any(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                   const struct vt_any *vt, const struct kern_vt *vt32, const struct kern_vt_f16 *vt16, size_t dim,
                   unsigned order)
{
    for (size_t i0 = 0; i0 < n_q;) {
        struct pv_q qs[PV_Q] = {{0}};
        bool gemm = false;
        const int nq = pv_group(qs, &gemm, out, p, n, n_pad, n_q, i0, dim, order);
        if (nq == 3) az_pv_tile(qs, 3, gemm, vt, vt32, vt16, dim);
        else if (nq == 2) az_pv_tile(qs, 2, gemm, vt, vt32, vt16, dim);
        else az_pv_tile(qs, 1, gemm, vt, vt32, vt16, dim);
        i0 += (size_t)nq;
    }
}

static void attn_pv_f32_z(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                          const struct kern_vt *vt, size_t dim, unsigned order)
{
    const struct vt_any va = {vt->v, vt->dim_stride, vt->blk, vt->blk_stride, 0};
    az_pv_any(out, p, n, n_pad, n_q, &va, vt, NULL, dim, order);
}

static void attn_pv_f16_z(float *const *out, const float *const *p, const size_t *n, const size_t *n_pad, size_t n_q,
                          const struct kern_vt_f16 *vt, size_t dim, unsigned order)
{
    const struct vt_any va = {vt->v, vt->dim_stride, vt->blk, vt->blk_stride, 1};
    az_pv_any(out, p, n, n_pad, n_q, &va, NULL, vt, dim, order);
}

/* ------------------------------------------------------------------------------------------ */
/* Softmax in 512 bits                                                                        */

/* v_expf (ggml_v_expf) on 16 lanes: the same operations lane for lane, masks for the blends. */
HOT __m512 z_expf(__m512 x)
{
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b =
        _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __m512i e = _mm512_slli_epi32(_mm512_castps_si512(z), 23);
    const __m512 k = _mm512_castsi512_ps(_mm512_add_epi32(e, _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    const __m512 an = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(n), _mm512_set1_epi32(0x7fffffff)));
    const __mmask16 c = _mm512_cmp_ps_mask(an, _mm512_set1_ps(126.0f), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_mul_ps(_mm512_set1_ps(0x1.ffffecp-1f), b));
    const __m512 plain = _mm512_fmadd_ps(j, k, k);
    if (!c) return plain;
    const __mmask16 le = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512i g = _mm512_maskz_mov_epi32(le, _mm512_set1_epi32((int)0x82000000u));
    const __m512 s1 = _mm512_castsi512_ps(_mm512_add_epi32(g, _mm512_set1_epi32(0x7f000000)));
    const __m512 s2 = _mm512_castsi512_ps(_mm512_sub_epi32(e, g));
    const __mmask16 d = _mm512_cmp_ps_mask(an, _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __m512 scaled = _mm512_mul_ps(_mm512_fmadd_ps(s2, j, s2), s1);
    return _mm512_mask_blend_ps(d, _mm512_mask_blend_ps(c, plain, scaled), _mm512_mul_ps(s1, s1));
}

/* softmax_max's result without its dependency chain: the sequential "max > x ? max : x" ends
 * with the last element equal to the maximum, so any order gives its bits, except when a NaN
 * (which the chain forgets or keeps by position) or a zero (+0 and -0 compare equal) is
 * involved: then the sequential loop decides. */
HOT float softmax_max_z(const float *x, size_t n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, v);
    }
    if (i < n) {
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), az_below(n - i), x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, v);
    }
    const float max = _mm512_reduce_max_ps(m);
    return nan || max == 0.0f ? softmax_max(x, n) : max;
}

/* softmax_avx2 with the exponentials of 16 lanes at a time where no padding is involved; the sum
 * still takes one double addition per 8-lane hsum8, in order (kz_hsum8x2 gives both). */
static void softmax_z(float *x, size_t n, size_t n_pad)
{
    const float max = softmax_max_z(x, n);
    const __m512 vmax = _mm512_set1_ps(max);
    const size_t nv = n_pad & ~(size_t)7;
    double sum = 0.0;
    size_t i = 0;
    for (; i + 16 <= n && i + 16 <= nv; i += 16) {
        const __m512 v = z_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
        _mm512_storeu_ps(x + i, v);
        const __m512 h = kz_hsum8x2(v);
        sum += (double)_mm512_cvtss_f32(h);
        sum += (double)_mm256_cvtss_f32(az_hi(h));
    }
    softmax_from(x, n, n_pad, i, max, sum);
}

/* the table's tile entries, made with kern_avx2.c's TILE_FN */
TILE_FN(tile_q4_K_z, kz_tile, BLK_T_Q4_K)
TILE_FN(tile_q5_K_z, kz_tile, BLK_T_Q5_K)
TILE_FN(tile_q6_K_z, kz_tile, BLK_T_Q6_K)
TILE_FN(tile_q8_0_z, q0z_tile, BLK_T_Q8_0)
TILE_FN(tile_q4_0_z, q0z_tile, BLK_T_Q4_0)
TILE_FN(tile_q5_0_z, q0z_tile, BLK_T_Q5_0)
TILE_FN(tile_iq4_nl_z, q0z_tile, BLK_T_IQ4_NL)
TILE_FN(tile_q4_1_z, q0z_tile, BLK_T_Q4_1)
TILE_FN(tile_q5_1_z, q0z_tile, BLK_T_Q5_1)
#undef TILE_FN

static const struct kern_isa_ext kern_ext_avx512 = {
    .name = "avx512",
    .tile =
        {
            [BLK_T_Q4_K] = tile_q4_K_z,
            [BLK_T_Q5_K] = tile_q5_K_z,
            [BLK_T_Q6_K] = tile_q6_K_z,
            [BLK_T_Q8_0] = tile_q8_0_z,
            [BLK_T_Q4_0] = tile_q4_0_z,
            [BLK_T_Q5_0] = tile_q5_0_z,
            [BLK_T_IQ4_NL] = tile_iq4_nl_z,
            [BLK_T_Q4_1] = tile_q4_1_z,
            [BLK_T_Q5_1] = tile_q5_1_z,
        },
    .softmax = softmax_z,
    .dot_f16_rows = dot_f16_rows_z,
    .attn_qk_f32 = attn_qk_f32_z,
    .attn_qk_f16 = attn_qk_f16_z,
    .attn_pv_f32 = attn_pv_f32_z,
    .attn_pv_f16 = attn_pv_f16_z,
};

const struct kern_isa kern_isa_avx512 = {
    .name = "avx512",
    .available = kern_cpu_has_avx512,
    .dot_gemm =
        {
            [BLK_T_Q4_K] = dot_q4_K_z,
            [BLK_T_Q5_K] = dot_q5_K_z,
            [BLK_T_Q6_K] = dot_q6_K_z,
        },
    .dot_vecdot =
        {
            [BLK_T_Q4_K] = dot_q4_K_z,
            [BLK_T_Q5_K] = dot_q5_K_z,
            [BLK_T_Q6_K] = dot_q6_K_z,
        },
    .base = &kern_isa_avx512_base,
    .ext = &kern_ext_avx512,
};

#else

const struct kern_isa kern_isa_avx512 = {.name = "avx512", .available = x86_unavailable};

#endif
