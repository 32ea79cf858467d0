/* check_samp: the sampler's steps on hand-made logits, its RNG and parameter validation (the
 * stop-string matcher is the engine's now: check_eng). Every random test uses a fixed seed, so
 * a statistical bound is a fixed number computed once, not something that can flake. */
#include "samp/samp.h"

#include "tutil.h"

#include <math.h>
#include <stdint.h>

/* Params with every filter off; tests switch on what they exercise. */
static struct samp_params plain(float temp, uint64_t seed)
{
    struct samp_params p;
    samp_params_default(&p);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.penalty_last_n = 0;
    p.seed = seed;
    return p;
}

/* Sample once from a copy of logits (samp_sample modifies its input). */
static int32_t draw(struct samp_ctx *s, const float *logits, uint32_t n, const uint64_t *mask)
{
    float buf[64];
    ck_assert_uint_le(n, 64);
    memcpy(buf, logits, n * sizeof *buf);
    int32_t t = -2;
    ck_assert_int_eq(samp_sample(s, buf, mask, &t), 0);
    ck_assert_int_ge(t, 0);
    ck_assert_int_lt(t, (int32_t)n);
    return t;
}

/* Draw `times` tokens and count them. */
static void histogram(struct samp_ctx *s, const float *logits, uint32_t n, const uint64_t *mask,
                      int times, int *counts)
{
    memset(counts, 0, n * sizeof *counts);
    for (int i = 0; i < times; i++) counts[draw(s, logits, n, mask)]++;
}

static uint64_t lcg_state;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

/* ---- greedy / argmax ---- */

START_TEST(test_argmax_ties_and_nan)
{
    const float a[] = {1, 3, 3, 2};
    ck_assert_int_eq(samp_argmax(a, 4), 1);
    const float b[] = {NAN, 1, NAN, 2, 2, NAN};
    ck_assert_int_eq(samp_argmax(b, 6), 3);
    const float c[] = {NAN, NAN};
    ck_assert_int_eq(samp_argmax(c, 2), -1);
    ck_assert_int_eq(samp_argmax(a, 0), -1);
    const float d[] = {-INFINITY, -INFINITY};
    ck_assert_int_eq(samp_argmax(d, 2), 0);
}
END_TEST

START_TEST(test_greedy)
{
    struct samp_params p = plain(0.0f, 1);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    const float a[] = {1, 4, 2, 4, 0};
    for (int i = 0; i < 10; i++) ck_assert_int_eq(draw(&s, a, 5, NULL), 1);
    const float b[] = {-7, -5, -4, -3, -3};
    ck_assert_int_eq(draw(&s, b, 5, NULL), 3);
    /* Greedy consumes no randomness. */
    uint64_t before[4];
    memcpy(before, s.rng, sizeof before);
    draw(&s, a, 5, NULL);
    ck_assert(memcmp(before, s.rng, sizeof before) == 0);
    samp_free(&s);
}
END_TEST

START_TEST(test_top_k1_is_greedy)
{
    lcg_state = 7;
    for (int round = 0; round < 200; round++) {
        uint32_t n = 1 + lcg() % 64;
        float l[64];
        for (uint32_t i = 0; i < n; i++) l[i] = (float)(lcg() % 7); /* many ties */
        struct samp_params p = plain(1.0f, (uint64_t)round);
        p.top_k = 1;
        struct samp_ctx s;
        ck_assert_int_eq(samp_init(&s, n, &p), 0);
        int32_t want = samp_argmax(l, n);
        if (want >= 0) ck_assert_int_eq(draw(&s, l, n, NULL), want);
        samp_free(&s);
    }
}
END_TEST

/* ---- top-k / top-p / min-p ---- */

START_TEST(test_top_k)
{
    const float l[] = {0.5f, 3, 1, 2.9f, 2.8f, -1, 2.8f, 0};
    struct samp_params p = plain(5.0f, 3); /* hot, so everything kept would show up */
    p.top_k = 4;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 8, &p), 0);
    int c[8];
    histogram(&s, l, 8, NULL, 4000, c);
    /* The 4 best: ids 1, 3, and both 2.8s (4 and 6). */
    for (int i = 0; i < 8; i++) {
        if (i == 1 || i == 3 || i == 4 || i == 6)
            ck_assert_int_gt(c[i], 0);
        else
            ck_assert_int_eq(c[i], 0);
    }
    samp_free(&s);
    /* k=3 splits the tie at 2.8: the lower id wins. */
    p.top_k = 3;
    ck_assert_int_eq(samp_init(&s, 8, &p), 0);
    histogram(&s, l, 8, NULL, 4000, c);
    ck_assert_int_gt(c[4], 0);
    ck_assert_int_eq(c[6], 0);
    samp_free(&s);
}
END_TEST

START_TEST(test_top_p_minimal_nucleus)
{
    /* Probabilities 0.5, 0.3, 0.15, 0.05, scattered over ids 3, 0, 2, 1. */
    const float l[] = {logf(0.3f), logf(0.05f), logf(0.15f), logf(0.5f)};
    struct { float top_p; int keep[4]; } cases[] = {
        {0.0f, {0, 0, 0, 1}},  {0.45f, {0, 0, 0, 1}}, {0.55f, {1, 0, 0, 1}},
        {0.75f, {1, 0, 0, 1}}, {0.85f, {1, 0, 1, 1}}, {0.99f, {1, 1, 1, 1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct samp_params p = plain(1.0f, 11);
        p.top_p = cases[k].top_p;
        struct samp_ctx s;
        ck_assert_int_eq(samp_init(&s, 4, &p), 0);
        int c[4];
        histogram(&s, l, 4, NULL, 4000, c);
        for (int i = 0; i < 4; i++) {
            if (cases[k].keep[i])
                ck_assert_msg(c[i] > 0, "top_p %g: id %d never drawn", (double)cases[k].top_p, i);
            else
                ck_assert_msg(c[i] == 0, "top_p %g: id %d drawn %d times",
                              (double)cases[k].top_p, i, c[i]);
        }
        samp_free(&s);
    }
}
END_TEST

/* The nucleus in a large vocabulary: `hot` equal logits at scattered ids among N tiny ones.
 * top_p (hot/2 - 0.5)/hot keeps exactly the hot/2 lowest of those ids (the tiny ones add
 * about 1e-10 of mass). */
static void top_p_large(int N, int n_hot, uint64_t seed)
{
    static float l[5000], buf[5000];
    static int hot[5000], count[5000];
    ck_assert_int_le(N, 5000);
    memset(hot, 0, sizeof hot);
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) l[i] = -30.0f;
    lcg_state = seed;
    int placed = 0;
    while (placed < n_hot) {
        int i = (int)(lcg() % N);
        if (!hot[i]) {
            hot[i] = 1;
            l[i] = 0.0f;
            placed++;
        }
    }
    int rank = 0;
    for (int i = 0; i < N; i++)
        if (hot[i]) hot[i] = ++rank <= n_hot / 2 ? 2 : 1; /* 2: inside the nucleus */
    struct samp_params p = plain(1.0f, seed);
    p.top_p = (float)(n_hot / 2 - 0.5) / (float)n_hot;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, N, &p), 0);
    for (int d = 0; d < 12 * n_hot; d++) { /* ~24 expected draws per kept token */
        memcpy(buf, l, (size_t)N * sizeof *l);
        int32_t t;
        ck_assert_int_eq(samp_sample(&s, buf, NULL, &t), 0);
        ck_assert_int_eq(hot[t], 2);
        count[t]++;
    }
    for (int i = 0; i < N; i++)
        if (hot[i] == 2) ck_assert_int_gt(count[i], 0);
    samp_free(&s);
}

START_TEST(test_top_p_large_vocab)
{
    top_p_large(5000, 300, 99); /* 150 kept: the sorted first chunk finds the cut */
    /* 260 and 266 kept: the mass quickselect. These two placements were checked to leave it
     * through each of its exits (range narrowed to one; pivot on the boundary). */
    top_p_large(1024, 520, 1000);
    top_p_large(1024, 533, 1001);
}
END_TEST

START_TEST(test_min_p)
{
    /* p_max = 0.5; min_p 0.25 keeps p >= 0.125: ids 0 (0.5), 2 (0.2), 3 (0.125 + a hair). */
    const float l[] = {logf(0.5f), logf(0.1f), logf(0.2f), logf(0.126f), logf(0.074f)};
    struct samp_params p = plain(1.0f, 21);
    p.min_p = 0.25f;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    int c[5];
    histogram(&s, l, 5, NULL, 4000, c);
    ck_assert_int_gt(c[0], 0);
    ck_assert_int_eq(c[1], 0);
    ck_assert_int_gt(c[2], 0);
    ck_assert_int_gt(c[3], 0);
    ck_assert_int_eq(c[4], 0);
    samp_free(&s);
    /* min_p 1 keeps only the maximum (ties included). */
    const float t[] = {1, 2, 0, 2};
    p.min_p = 1.0f;
    ck_assert_int_eq(samp_init(&s, 4, &p), 0);
    histogram(&s, t, 4, NULL, 1000, c);
    ck_assert_int_eq(c[0] + c[2], 0);
    ck_assert_int_gt(c[1], 0);
    ck_assert_int_gt(c[3], 0);
    samp_free(&s);
}
END_TEST

/* ---- temperature ---- */

START_TEST(test_temperature_limit)
{
    const float l[] = {1.0f, 2.0f, 1.999f, -3.0f};
    struct samp_params p = plain(1e-6f, 4);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 4, &p), 0);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(draw(&s, l, 4, NULL), 1);
    samp_free(&s);
    /* A high temperature flattens: the worst token now shows up often. */
    p.temp = 100.0f;
    ck_assert_int_eq(samp_init(&s, 4, &p), 0);
    int c[4];
    histogram(&s, l, 4, NULL, 4000, c);
    for (int i = 0; i < 4; i++) ck_assert_int_gt(c[i], 800);
    samp_free(&s);
    /* Huge logits with a tiny temperature must not overflow into NaN. */
    const float h[] = {3e38f, -3e38f, 2.9e38f};
    p.temp = 0.01f;
    ck_assert_int_eq(samp_init(&s, 3, &p), 0);
    for (int i = 0; i < 100; i++) ck_assert_int_eq(draw(&s, h, 3, NULL), 0);
    samp_free(&s);
}
END_TEST

/* ---- penalties, bias, mask ---- */

START_TEST(test_penalties)
{
    struct samp_params p = plain(0.0f, 0);
    p.penalty_last_n = 8;
    p.repeat_penalty = 2.0f;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    samp_accept(&s, 1);
    samp_accept(&s, 1);
    samp_accept(&s, 2);
    float l[] = {3, 4, -1, 1, 0};
    int32_t t;
    ck_assert_int_eq(samp_sample(&s, l, NULL, &t), 0);
    /* Repeat: positive divided (once, though 1 occurs twice), negative multiplied. */
    ck_assert(l[0] == 3.0f && l[1] == 2.0f && l[2] == -2.0f && l[3] == 1.0f && l[4] == 0.0f);
    ck_assert_int_eq(t, 0);
    samp_free(&s);

    p.repeat_penalty = 1.0f;
    p.freq_penalty = 0.5f;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    samp_accept(&s, 1);
    samp_accept(&s, 1);
    samp_accept(&s, 2);
    float f[] = {3, 4, -1, 1, 0};
    ck_assert_int_eq(samp_sample(&s, f, NULL, &t), 0);
    ck_assert(f[1] == 3.0f && f[2] == -1.5f && f[0] == 3.0f);
    ck_assert_int_eq(t, 0); /* 3 vs 3: the lower id */
    samp_free(&s);

    p.freq_penalty = 0.0f;
    p.presence_penalty = 0.75f;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    samp_accept(&s, 1);
    samp_accept(&s, 1);
    samp_accept(&s, 2);
    float q[] = {3, 4, -1, 1, 0};
    ck_assert_int_eq(samp_sample(&s, q, NULL, &t), 0);
    ck_assert(q[1] == 3.25f && q[2] == -1.75f && q[0] == 3.0f);
    ck_assert_int_eq(t, 1);
    /* Reset forgets the window. */
    samp_reset(&s);
    float r[] = {3, 4, -1, 1, 0};
    ck_assert_int_eq(samp_sample(&s, r, NULL, &t), 0);
    ck_assert(r[1] == 4.0f && r[2] == -1.0f);
    samp_free(&s);
}
END_TEST

START_TEST(test_penalty_window)
{
    struct samp_params p = plain(0.0f, 0);
    p.penalty_last_n = 2;
    p.freq_penalty = 1.0f;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 4, &p), 0);
    samp_accept(&s, 0);
    samp_accept(&s, 0);
    samp_accept(&s, 1);
    samp_accept(&s, 2); /* window is now {1, 2}: token 0 fell out */
    samp_accept(&s, -1); /* out of range: ignored */
    samp_accept(&s, 4);
    ck_assert_uint_eq(s.counts[0], 0);
    ck_assert_uint_eq(s.counts[1], 1);
    ck_assert_uint_eq(s.counts[2], 1);
    float l[] = {1, 1, 1, 1};
    int32_t t;
    ck_assert_int_eq(samp_sample(&s, l, NULL, &t), 0);
    ck_assert(l[0] == 1.0f && l[1] == 0.0f && l[2] == 0.0f && l[3] == 1.0f);
    ck_assert_int_eq(t, 0);
    /* A long run through the ring keeps counts equal to the window's contents. */
    for (int i = 0; i < 1000; i++) samp_accept(&s, i % 3);
    uint32_t sum = 0;
    for (int i = 0; i < 4; i++) sum += s.counts[i];
    ck_assert_uint_eq(sum, 2);
    samp_reset(&s);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(s.counts[i], 0);
    samp_free(&s);
}
END_TEST

START_TEST(test_bias_and_ban)
{
    const struct samp_bias b[] = {{2, 5.0f}, {0, -INFINITY}};
    struct samp_params p = plain(0.0f, 0);
    p.bias = b;
    p.n_bias = 2;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 4, &p), 0);
    float l[] = {10, 1, 1, 2};
    int32_t t;
    ck_assert_int_eq(samp_sample(&s, l, NULL, &t), 0);
    ck_assert(l[2] == 6.0f && isinf(l[0]) && l[0] < 0);
    ck_assert_int_eq(t, 2);
    samp_free(&s);
    /* A banned token is never sampled, however large its logit. */
    p.temp = 1.0f;
    ck_assert_int_eq(samp_init(&s, 4, &p), 0);
    const float m[] = {50, 0, 0, 0};
    int c[4];
    histogram(&s, m, 4, NULL, 2000, c);
    ck_assert_int_eq(c[0], 0);
    ck_assert_int_gt(c[2], c[1]);
    samp_free(&s);
}
END_TEST

START_TEST(test_mask)
{
    const float l[] = {9, 1, 3, 8, 2, 4};
    uint64_t mask[1] = {(1u << 2) | (1u << 5)};
    struct samp_params p = plain(0.0f, 0);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 6, &p), 0);
    ck_assert_int_eq(draw(&s, l, 6, mask), 5);
    samp_free(&s);
    p.temp = 1.0f;
    ck_assert_int_eq(samp_init(&s, 6, &p), 0);
    int c[6];
    histogram(&s, l, 6, mask, 2000, c);
    ck_assert_int_eq(c[0] + c[1] + c[3] + c[4], 0);
    ck_assert_int_gt(c[2], 0);
    ck_assert_int_gt(c[5], c[2]);
    samp_free(&s);
    /* Mask spanning more than one word. */
    enum { N = 130 };
    float big[N];
    for (int i = 0; i < N; i++) big[i] = (float)i;
    uint64_t m2[3] = {0, 1ull << 63, 0}; /* only id 127 */
    p.temp = 0.0f;
    ck_assert_int_eq(samp_init(&s, N, &p), 0);
    int32_t t;
    ck_assert_int_eq(samp_sample(&s, big, m2, &t), 0);
    ck_assert_int_eq(t, 127);
    samp_free(&s);
}
END_TEST

START_TEST(test_all_banned)
{
    const float ninf = -INFINITY;
    for (int greedy = 0; greedy < 2; greedy++) {
        struct samp_params p = plain(greedy ? 0.0f : 1.0f, 0);
        struct samp_ctx s;
        ck_assert_int_eq(samp_init(&s, 3, &p), 0);
        int32_t t = 7;
        float c[] = {1, 2, 3};
        uint64_t none[1] = {0};
        ck_assert_int_eq(samp_sample(&s, c, none, &t), ERR_DEAD_END);
        ck_assert_int_eq(t, -1);
        samp_free(&s);
        /* Every token banned through the bias list (token 1 twice); or the one the mask allows. */
        const struct samp_bias ban[] = {{0, ninf}, {1, ninf}, {2, ninf}, {1, ninf}, {1, 2.0f}};
        p.bias = ban;
        p.n_bias = 5;
        ck_assert_int_eq(samp_init(&s, 3, &p), 0);
        float e[] = {1, 2, 3};
        ck_assert_int_eq(samp_sample(&s, e, NULL, &t), ERR_DEAD_END);
        p.n_bias = 1;
        samp_free(&s);
        ck_assert_int_eq(samp_init(&s, 3, &p), 0);
        float d[] = {1, 2, 3};
        uint64_t only0[1] = {1};
        ck_assert_int_eq(samp_sample(&s, d, only0, &t), ERR_DEAD_END);
        samp_free(&s);
    }
}
END_TEST

/* Logits the model computed as NaN or +-inf are garbage: ERR_NONFINITE, never a token, whether
 * the bad value is allowed, masked out, biased or penalised, greedy or not; tokens the bias bans
 * (-inf by the caller's wish) are not counted as such. */
START_TEST(test_nonfinite)
{
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const uint64_t all = 0x3f, not2 = 0x3b;
    for (int greedy = 0; greedy < 2; greedy++)
        for (int b = 0; b < 3; b++)
            for (int m = 0; m < 3; m++) {
                struct samp_params p = plain(greedy ? 0.0f : 1.0f, 5);
                const struct samp_bias bias[] = {{2, 1.0f}, {4, -INFINITY}};
                if (m == 2) { /* the bad logit biased, another banned */
                    p.bias = bias;
                    p.n_bias = 2;
                }
                p.penalty_last_n = 4;
                p.repeat_penalty = 1.3f;
                struct samp_ctx s;
                ck_assert_int_eq(samp_init(&s, 6, &p), 0);
                samp_accept(&s, 2); /* the bad logit penalised too */
                float l[] = {0.5f, 1, bad[b], 2, 1.5f, 0};
                int32_t t = 7;
                ck_assert_int_eq(samp_sample(&s, l, m == 1 ? &not2 : &all, &t), ERR_NONFINITE);
                ck_assert_int_eq(t, -1);
                samp_free(&s);
            }
    /* bans only: sampling goes on, and never picks a banned token */
    const struct samp_bias ban[] = {{3, -INFINITY}, {3, -INFINITY}, {1, -INFINITY}};
    struct samp_params p = plain(0.0f, 1);
    p.bias = ban;
    p.n_bias = 3;
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    const float l[] = {1, 9, 2, 8, 0};
    ck_assert_int_eq(draw(&s, l, 5, NULL), 2);
    samp_free(&s);
    p.temp = 1.0f;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    int c[5];
    histogram(&s, l, 5, NULL, 500, c);
    ck_assert_int_eq(c[1] + c[3], 0);
    samp_free(&s);
    /* a huge finite bias saturates (FLT_MAX) rather than making +inf */
    const struct samp_bias big[] = {{4, 3e38f}};
    p = plain(0.0f, 1);
    p.bias = big;
    p.n_bias = 1;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    const float h[] = {1, 2, 3, 4, 3e38f};
    ck_assert_int_eq(draw(&s, h, 5, NULL), 4);
    samp_free(&s);
}
END_TEST

/* ---- RNG ---- */

static void draws(uint64_t seed, int32_t *out, int n)
{
    const float l[] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
    struct samp_params p = plain(1.0f, seed);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 8, &p), 0);
    for (int i = 0; i < n; i++) out[i] = draw(&s, l, 8, NULL);
    samp_free(&s);
}

START_TEST(test_seed_reproducible)
{
    static int32_t a[1000], b[1000], c[1000];
    draws(42, a, 1000);
    draws(42, b, 1000);
    draws(43, c, 1000);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    int diff = 0;
    for (int i = 0; i < 1000; i++) diff += a[i] != c[i];
    ck_assert_int_gt(diff, 500); /* 8 near-uniform choices: ~87% differ */

    /* samp_reset re-seeds: the sequence starts over. */
    const float l[] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
    struct samp_params p = plain(1.0f, 42);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 8, &p), 0);
    for (int i = 0; i < 10; i++) draw(&s, l, 8, NULL);
    samp_reset(&s);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(draw(&s, l, 8, NULL), a[i]);
    samp_free(&s);
}
END_TEST

START_TEST(test_rng_uniform)
{
    struct samp_params p = plain(1.0f, 0);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 1, &p), 0);
    /* Pinned first output: xoshiro256** from splitmix64(0). A change here means every
     * seeded run in the field changes too. */
    uint64_t st[4];
    memcpy(st, s.rng, sizeof st);
    ck_assert_uint_eq(st[0], 0xe220a8397b1dcdafull);
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < 100000; i++) {
        double u = samp_rng_uniform(&s);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    ck_assert(fabs(sum / 100000 - 0.5) < 0.01);
    ck_assert(lo < 0.001 && hi > 0.999);
    samp_free(&s);
}
END_TEST

/* Frequencies match known probabilities: chi-square with 4 degrees of freedom. The 99.99th
 * percentile is ~23.5; with a fixed seed the statistic is one fixed number. */
START_TEST(test_chi_square)
{
    const double prob[] = {0.4, 0.25, 0.2, 0.1, 0.05};
    float l[5];
    for (int i = 0; i < 5; i++) l[i] = (float)log(prob[i]) + 3.0f; /* shift-invariant */
    struct samp_params p = plain(1.0f, 2024);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    enum { DRAWS = 50000 };
    int c[5];
    histogram(&s, l, 5, NULL, DRAWS, c);
    double chi = 0;
    for (int i = 0; i < 5; i++) {
        double e = prob[i] * DRAWS;
        chi += (c[i] - e) * (c[i] - e) / e;
    }
    ck_assert_msg(chi < 23.5, "chi-square %g", chi);
    samp_free(&s);

    /* Temperature 2 is the softmax of logits/2: p_i proportional to sqrt(prob_i). */
    p.temp = 2.0f;
    ck_assert_int_eq(samp_init(&s, 5, &p), 0);
    histogram(&s, l, 5, NULL, DRAWS, c);
    double z = 0;
    for (int i = 0; i < 5; i++) z += sqrt(prob[i]);
    chi = 0;
    for (int i = 0; i < 5; i++) {
        double e = sqrt(prob[i]) / z * DRAWS;
        chi += (c[i] - e) * (c[i] - e) / e;
    }
    ck_assert_msg(chi < 23.5, "chi-square at temp 2: %g", chi);
    samp_free(&s);
}
END_TEST

/* Random logits and settings against a naive reference (full sort): every draw must fall in
 * the reference's kept set, and top_k=1 must equal greedy. Exercises select/sort on sizes that
 * cross the insertion-sort and chunk thresholds. */
static int ref_cmp_val(const float *l, int a, int b)
{
    if (l[a] != l[b]) return l[a] > l[b] ? -1 : 1;
    return a < b ? -1 : 1;
}

START_TEST(test_against_reference)
{
    enum { NMAX = 3000 };
    static float l[NMAX], buf[NMAX];
    static int order[NMAX], keep[NMAX];
    lcg_state = 31337;
    for (int round = 0; round < 60; round++) {
        uint32_t n = 1 + lcg() % NMAX;
        for (uint32_t i = 0; i < n; i++) l[i] = (float)(lcg() % 2000) / 200.0f - 5.0f;
        struct samp_params p = plain(0.5f + (float)(lcg() % 100) / 50.0f, (uint64_t)round);
        p.top_k = (int32_t)(lcg() % 3 ? lcg() % 300 : 0);
        p.top_p = (float)(lcg() % 101) / 100.0f;
        p.min_p = (float)(lcg() % 30) / 100.0f;
        /* Reference: insertion sort of ids, best first. */
        for (uint32_t i = 0; i < n; i++) {
            int j = (int)i;
            while (j > 0 && ref_cmp_val(l, (int)i, order[j - 1]) < 0) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = (int)i;
        }
        uint32_t m = n;
        if (p.top_k > 0 && (uint32_t)p.top_k < m) m = (uint32_t)p.top_k;
        float vmax = l[order[0]];
        if (p.top_p < 1.0f) {
            double sum = 0, cum = 0;
            for (uint32_t i = 0; i < m; i++) sum += exp((double)l[order[i]] - vmax);
            uint32_t cut = m;
            for (uint32_t i = 0; i < m; i++) {
                cum += exp((double)l[order[i]] - vmax);
                if (cum >= p.top_p * sum) {
                    cut = i + 1;
                    break;
                }
            }
            /* Float vs double rounding can move the cut by one at an exact boundary. */
            m = cut + 1 < m ? cut + 1 : m;
        }
        memset(keep, 0, sizeof keep);
        for (uint32_t i = 0; i < m; i++)
            if (p.min_p <= 0 || l[order[i]] >= vmax + logf(p.min_p)) keep[order[i]] = 1;
        struct samp_ctx s;
        ck_assert_int_eq(samp_init(&s, n, &p), 0);
        for (int d = 0; d < 50; d++) {
            memcpy(buf, l, n * sizeof *l);
            int32_t t;
            ck_assert_int_eq(samp_sample(&s, buf, NULL, &t), 0);
            ck_assert_msg(keep[t], "round %d: token %d outside the kept set", round, t);
        }
        samp_free(&s);
        p.top_k = 1;
        ck_assert_int_eq(samp_init(&s, n, &p), 0);
        memcpy(buf, l, n * sizeof *l);
        int32_t t;
        ck_assert_int_eq(samp_sample(&s, buf, NULL, &t), 0);
        ck_assert_int_eq(t, order[0]);
        samp_free(&s);
    }
}
END_TEST

/* ---- params ---- */

static void expect_bad(const struct samp_params *p, uint32_t n_vocab, const char *field)
{
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(samp_params_check(p, n_vocab, &ei), ERR_INVALID);
    ck_assert_int_eq(ei.code, ERR_INVALID);
    ck_assert_msg(strstr(ei.msg, field) != NULL, "message '%s' does not name %s", ei.msg, field);
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, n_vocab, p), ERR_INVALID);
    samp_free(&s);
}

START_TEST(test_params_check)
{
    struct samp_params d;
    samp_params_default(&d);
    ck_assert(d.temp == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f);
    ck_assert(d.repeat_penalty == 1.0f && d.penalty_last_n == 64 && d.seed == 0);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(samp_params_check(&d, 100, &ei), 0);
    ck_assert_int_eq(ei.code, 0);

    struct samp_params p = d;
    p.top_p = 1.5f;
    expect_bad(&p, 100, "top_p");
    err_clear(&ei);
    samp_params_check(&p, 100, &ei);
    ck_assert_str_eq(ei.msg, "top_p must be in [0, 1], got 1.5");
    p = d, p.top_p = -0.1f, expect_bad(&p, 100, "top_p");
    p = d, p.top_p = NAN, expect_bad(&p, 100, "top_p");
    p = d, p.temp = -1.0f, expect_bad(&p, 100, "temp");
    p = d, p.temp = 101.0f, expect_bad(&p, 100, "temp");
    p = d, p.temp = NAN, expect_bad(&p, 100, "temp");
    p = d, p.min_p = 2.0f, expect_bad(&p, 100, "min_p");
    p = d, p.min_p = -0.5f, expect_bad(&p, 100, "min_p");
    p = d, p.repeat_penalty = 0.0f, expect_bad(&p, 100, "repeat_penalty");
    p = d, p.repeat_penalty = INFINITY, expect_bad(&p, 100, "repeat_penalty");
    p = d, p.freq_penalty = NAN, expect_bad(&p, 100, "freq_penalty");
    p = d, p.presence_penalty = -INFINITY, expect_bad(&p, 100, "presence_penalty");
    p = d, p.penalty_last_n = -1, expect_bad(&p, 100, "penalty_last_n");
    /* the ranges are the field table's, the same the CLI and the protocol apply */
    p = d, p.top_k = -5, expect_bad(&p, 100, "top_k");
    p = d, p.repeat_penalty = 0.005f, expect_bad(&p, 100, "repeat_penalty");
    p = d, p.freq_penalty = 101.0f, expect_bad(&p, 100, "freq_penalty");
    p = d, p.n_bias = 1, expect_bad(&p, 100, "bias");
    const struct samp_bias oob[] = {{5, 1.0f}, {100, 1.0f}};
    p = d, p.bias = oob, p.n_bias = 2, expect_bad(&p, 100, "bias[1].token");
    const struct samp_bias neg[] = {{-1, 1.0f}};
    p = d, p.bias = neg, p.n_bias = 1, expect_bad(&p, 100, "bias[0].token");
    const struct samp_bias nanb[] = {{3, NAN}};
    p = d, p.bias = nanb, p.n_bias = 1, expect_bad(&p, 100, "bias[0].bias");
    const struct samp_bias pinf[] = {{3, INFINITY}};
    p = d, p.bias = pinf, p.n_bias = 1, expect_bad(&p, 100, "bias[0].bias");
    expect_bad(&d, 0, "n_vocab");

    /* Edges that are valid. */
    const struct samp_bias ban[] = {{99, -INFINITY}};
    p = d, p.bias = ban, p.n_bias = 1;
    ck_assert_int_eq(samp_params_check(&p, 100, NULL), 0);
    p = d, p.temp = 0, p.top_p = 0, p.min_p = 1, p.top_k = 0, p.penalty_last_n = 0;
    p.freq_penalty = -1.0f;
    ck_assert_int_eq(samp_params_check(&p, 100, NULL), 0);
    ck_assert_int_eq(samp_params_check(NULL, 100, NULL), ERR_INVALID);

    /* NULL params mean the defaults; free is safe on zeroed and twice. */
    struct samp_ctx s;
    ck_assert_int_eq(samp_init(&s, 10, NULL), 0);
    ck_assert(s.p.temp == 0.8f);
    samp_free(&s);
    samp_free(&s);
    samp_free(NULL);
    struct samp_ctx z;
    memset(&z, 0, sizeof z);
    samp_free(&z);
    int32_t t;
    float l[1] = {0};
    ck_assert_int_eq(samp_sample(&z, l, NULL, &t), ERR_INVALID);
}
END_TEST

Suite *make_suite(void); /* called by TUTIL_MAIN */
Suite *make_suite(void)
{
    Suite *s = suite_create("samp");
    TCase *tc = tcase_create("sampler");
    tcase_add_test(tc, test_argmax_ties_and_nan);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_top_k1_is_greedy);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p_minimal_nucleus);
    tcase_add_test(tc, test_top_p_large_vocab);
    tcase_add_test(tc, test_min_p);
    tcase_add_test(tc, test_temperature_limit);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_penalty_window);
    tcase_add_test(tc, test_bias_and_ban);
    tcase_add_test(tc, test_mask);
    tcase_add_test(tc, test_all_banned);
    tcase_add_test(tc, test_nonfinite);
    tcase_add_test(tc, test_seed_reproducible);
    tcase_add_test(tc, test_rng_uniform);
    tcase_add_test(tc, test_chi_square);
    tcase_add_test(tc, test_against_reference);
    tcase_add_test(tc, test_params_check);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
