/* Model-level behaviour the shared fixtures do not exercise, on small models built in memory
 * (tests/gguf_builder.h): Llama 3 RoPE frequency factors, linear RoPE scaling, logit
 * soft-capping, and the state/forward error paths. Where no llama.cpp reference exists the tests
 * use equivalences that must hold bit for bit: a frequency factor f on every pair divides each
 * angle exactly as a linear scaling factor f does. */
#include "tutil.h"

#include "gguf_builder.h"
#include "model/model.h"

#include <math.h>

/* Logits of a fixed 6-token sequence for the model in `b`, into out[6][n_vocab]. */
static int run_model(struct gguf_builder *b, float *out, uint32_t *n_vocab, struct err_info *ei)
{
    uint8_t *buf = gb_build(b);
    struct gguf_ctx g;
    int rc = gguf_parse(buf, b->len, &g, ei);
    if (rc) return rc;
    struct model m;
    if ((rc = model_load(&m, &g, ei))) {
        gguf_free(&g);
        return rc;
    }
    struct model_state st;
    ck_assert_int_eq(model_state_init(&st, &m, 16, NULL, ei), 0);
    const int32_t toks[6] = {1, 40, 77, 3, 200, 9};
    *n_vocab = m.hp.n_vocab;
    for (uint32_t i = 0; i < 6; i++) {
        ck_assert_int_eq(model_forward(&m, &st, toks[i], i, true), 0);
        memcpy(out + (size_t)i * m.hp.n_vocab, st.logits, m.hp.n_vocab * sizeof(float));
    }
    model_state_free(&st);
    model_free(&m);
    gguf_free(&g);
    return 0;
}

static float *g_base, *g_other;
static uint32_t g_nv;

static void setup(void)
{
    g_base = malloc(6 * 4096 * sizeof(float));
    g_other = malloc(6 * 4096 * sizeof(float));
}

static void teardown(void)
{
    free(g_base);
    free(g_other);
}

static size_t n_floats(void) { return 6 * (size_t)g_nv; }

START_TEST(test_rope_freqs)
{
    struct err_info ei;
    struct gguf_builder b = {0};
    gb_init(&b);
    gb_llama(&b, NULL);
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_base, &g_nv, &ei), 0);
    uint32_t hd = 64 / 4;

    /* factors of 1 change nothing */
    gb_tensor_f32_1d(&b, "rope_freqs.weight", hd / 2, 1.0f, 0.0f);
    ck_assert_int_eq(run_model(&b, g_other, &g_nv, &ei), 0);
    ck_assert(memcmp(g_base, g_other, n_floats() * sizeof(float)) == 0);

    /* factors of 2 on every pair == linear scaling by 2, and differ from no scaling */
    gb_tensor_f32_1d(&b, "rope_freqs.weight", hd / 2, 2.0f, 0.0f);
    ck_assert_int_eq(run_model(&b, g_other, &g_nv, &ei), 0);
    ck_assert(memcmp(g_base, g_other, n_floats() * sizeof(float)) != 0);
    struct gguf_builder c = {0};
    gb_init(&c);
    gb_llama(&c, NULL);
    gb_set_str(&c, "llama.rope.scaling.type", "linear");
    gb_set_f32(&c, "llama.rope.scaling.factor", 2.0f);
    float *lin = malloc(n_floats() * sizeof(float));
    ck_assert_int_eq(run_model(&c, lin, &g_nv, &ei), 0);
    ck_assert(memcmp(lin, g_other, n_floats() * sizeof(float)) == 0);
    free(lin);
    gb_free(&c);

    /* a factor table of the wrong length is refused with a shape error */
    gb_tensor_f32_1d(&b, "rope_freqs.weight", hd, 1.0f, 0.0f);
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_other, &g_nv, &ei), ERR_SHAPE);
    ck_assert(strstr(ei.msg, "rope_freqs"));
    gb_free(&b);
}
END_TEST

START_TEST(test_rope_scaling_keys)
{
    struct err_info ei;
    struct gguf_builder b = {0};
    gb_init(&b);
    gb_llama(&b, NULL);
    gb_set_str(&b, "llama.rope.scaling.type", "yarn");
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_base, &g_nv, &ei), ERR_UNSUPPORTED);
    ck_assert(strstr(ei.msg, "yarn"));
    gb_set_str(&b, "llama.rope.scaling.type", "none");
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_base, &g_nv, &ei), 0);
    gb_set_str(&b, "llama.rope.scaling.type", "linear");
    gb_set_f32(&b, "llama.rope.scaling.factor", -1.0f);
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_base, &g_nv, &ei), ERR_RANGE);
    gb_free(&b);
}
END_TEST

/* final_logit_softcapping: logits = c * tanh(logits / c), so every |logit| <= c */
START_TEST(test_softcap)
{
    struct err_info ei;
    struct gguf_builder b = {0};
    gb_init(&b);
    gb_llama(&b, NULL);
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_base, &g_nv, &ei), 0);
    gb_set_f32(&b, "llama.final_logit_softcapping", 0.05f);
    ck_assert_int_eq(run_model(&b, g_other, &g_nv, &ei), 0);
    for (size_t i = 0; i < n_floats(); i++) {
        ck_assert(fabsf(g_other[i]) <= 0.05f); /* tanh may round to exactly 1 */
        float want = 0.05f * tanhf(g_base[i] / 0.05f);
        ck_assert_msg(fabsf(want - g_other[i]) <= 1e-6f, "logit %zu: %g vs %g", i, g_other[i], want);
    }
    gb_set_f32(&b, "llama.final_logit_softcapping", -1.0f);
    err_clear(&ei);
    ck_assert_int_eq(run_model(&b, g_other, &g_nv, &ei), ERR_RANGE);
    gb_free(&b);
}
END_TEST

/* The forward pass refuses bad tokens and positions without touching memory out of range. */
START_TEST(test_forward_errors)
{
    struct err_info ei;
    err_clear(&ei);
    struct gguf_builder b = {0};
    gb_init(&b);
    gb_llama(&b, NULL);
    uint8_t *buf = gb_build(&b);
    struct gguf_ctx g;
    ck_assert_int_eq(gguf_parse(buf, b.len, &g, &ei), 0);
    struct model m;
    ck_assert_int_eq(model_load(&m, &g, &ei), 0);
    struct model_state st;
    ck_assert_int_eq(model_state_init(&st, &m, 8, NULL, &ei), 0);
    ck_assert_uint_eq(st.n_ctx, 8);
    ck_assert_int_eq(model_forward(&m, &st, -1, 0, true), ERR_RANGE);
    ck_assert_int_eq(model_forward(&m, &st, (int32_t)m.hp.n_vocab, 0, true), ERR_RANGE);
    ck_assert_int_eq(model_forward(&m, &st, 1, 8, true), ERR_CONTEXT);
    ck_assert_int_eq(model_forward(&m, &st, 1, 7, true), 0);
    model_state_free(&st);
    model_state_free(&st); /* free is idempotent */
    /* a context larger than the training context is capped to it */
    ck_assert_int_eq(model_state_init(&st, &m, 100000, NULL, &ei), 0);
    ck_assert_uint_eq(st.n_ctx, m.hp.n_ctx_train);
    ck_assert(model_state_bytes(&m, 0) > kv_bytes(m.hp.n_layer, st.n_ctx, m.hp.n_head_kv * m.hp.head_dim));
    model_state_free(&st);
    model_free(&m);
    model_free(&m);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_rope_freqs);
    tcase_add_test(tc, test_rope_scaling_keys);
    tcase_add_test(tc, test_softcap);
    tcase_add_test(tc, test_forward_errors);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
