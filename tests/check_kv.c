/* check_kv: the KV cache's memory: sizes, overflow and empty caches refused, free safe on
 * zeroed and freed state, and the layouts the attention code relies on: K rows per position,
 * V transposed in blocks of KV_VBLK positions, every (layer, position, dim) its own cell. */
#include "tutil.h"

#include "kv/kv.h"
#include "util/err.h"

START_TEST(sizes)
{
    /* K: layer * ctx * dim; V: layer * ceil(ctx / 256) * 256 * dim; four bytes each */
    ck_assert_uint_eq(kv_bytes(2, 10, 8), (2ull * 10 * 8 + 2ull * 256 * 8) * 4);
    ck_assert_uint_eq(kv_bytes(1, 256, 4), (256ull * 4 + 256ull * 4) * 4);
    ck_assert_uint_eq(kv_bytes(1, 257, 4), (257ull * 4 + 512ull * 4) * 4);
    ck_assert_uint_eq(kv_bytes(UINT32_MAX, UINT32_MAX, UINT32_MAX), 0); /* overflow */
    struct kv_cache kv;
    ck_assert_int_eq(kv_init(&kv, KV_F32, 3, 300, 16), 0);
    ck_assert_uint_eq(kv.n_layer, 3);
    ck_assert_uint_eq(kv.n_ctx, 300);
    ck_assert_uint_eq(kv.kv_dim, 16);
    ck_assert_uint_eq(kv.n_vblk, 2);
    kv_free(&kv);
    ck_assert_ptr_null(kv.k);
    kv_free(&kv); /* twice */
    kv_free(NULL);
    struct kv_cache z;
    memset(&z, 0, sizeof z);
    kv_free(&z);
}
END_TEST

START_TEST(bad_sizes)
{
    struct kv_cache kv;
    ck_assert_int_eq(kv_init(&kv, KV_F32, 0, 16, 8), ERR_OVERFLOW); /* empty */
    ck_assert_int_eq(kv_init(&kv, KV_F32, 2, 0, 8), ERR_OVERFLOW);
    ck_assert_int_eq(kv_init(&kv, KV_F32, 2, 16, 0), ERR_OVERFLOW);
    ck_assert_int_eq(kv_init(&kv, KV_F32, UINT32_MAX, UINT32_MAX, UINT32_MAX), ERR_OVERFLOW);
    ck_assert_ptr_null(kv.k);
    ck_assert_ptr_null(kv.v);
}
END_TEST

/* A fresh cache reads as zeros; every value written lands in its own cell, where the layout
 * comments say it is, and reads back unchanged. */
START_TEST(layout)
{
    const uint32_t L = 2, C = 300, D = 5; /* C spans two V blocks, the second one partial */
    struct kv_cache kv;
    ck_assert_int_eq(kv_init(&kv, KV_F32, L, C, D), 0);
    for (uint32_t l = 0; l < L; l++) {
        const float *vl = (const float *)kv_v_layer(&kv, l);
        for (uint32_t t = 0; t < C; t++) {
            float *k = kv_k(&kv, l, t);
            ck_assert_ptr_eq(k, (float *)(void *)kv.k + ((size_t)l * C + t) * D);
            float row[5];
            for (uint32_t d = 0; d < D; d++) {
                ck_assert(k[d] == 0.0f);
                ck_assert(vl[(t / KV_VBLK) * D * KV_VBLK + d * KV_VBLK + t % KV_VBLK] == 0.0f);
                k[d] = (float)(l * 100000 + t * 10 + d);
                row[d] = -(float)(l * 100000 + t * 10 + d) - 1;
            }
            kv_v_put(&kv, l, t, row);
        }
    }
    for (uint32_t l = 0; l < L; l++) {
        const float *vl = (const float *)kv_v_layer(&kv, l);
        ck_assert_ptr_eq(vl, (float *)(void *)kv.v + (size_t)l * kv.n_vblk * D * KV_VBLK);
        for (uint32_t t = 0; t < C; t++)
            for (uint32_t d = 0; d < D; d++) {
                float want = (float)(l * 100000 + t * 10 + d);
                ck_assert(kv_k(&kv, l, t)[d] == want);
                ck_assert(vl[(t / KV_VBLK) * D * KV_VBLK + d * KV_VBLK + t % KV_VBLK] == -want - 1);
            }
        /* the unused tail of the last V block stays zero */
        for (uint32_t t = C; t < kv.n_vblk * KV_VBLK; t++)
            for (uint32_t d = 0; d < D; d++)
                ck_assert(vl[(t / KV_VBLK) * D * KV_VBLK + d * KV_VBLK + t % KV_VBLK] == 0.0f);
    }
    kv_free(&kv);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_add_test(tc, sizes);
    tcase_add_test(tc, bad_sizes);
    tcase_add_test(tc, layout);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
