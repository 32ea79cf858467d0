/* check_eng: the engine's door on a tiny in-memory model (tests/gguf_builder.h: a 2-layer llama
 * with a 260-token SentencePiece vocabulary, written to a temporary file), plus the stop-string
 * matcher the generation loop uses.
 *
 * What is asserted: sessions and prefix reuse; tokenize/detokenize through eng; the generation
 * loop's ends (max_tokens, a full context through the context-full hook, stop strings, EOG,
 * cancel); the constraint seam (a refused draw is redrawn from the mask and only then is a mask
 * built, a dead end is ERR_DEAD_END, EOG only where the constraint allows it, complete() ends
 * the text even with ignore_eos, forced runs are evaluated as one batch and give the same tokens
 * as token-by-token evaluation); the after-prefill hook; the chat API's checks and rendering;
 * eng_model_info; the model-wide default constraint factory. */
#include "tutil.h"

#include "gguf_builder.h"

#include "eng/eng_int.h"

#include <jansson.h>
#include <math.h>
#include <unistd.h>

/* ---------------- the tiny model ---------------- */

static char g_model[64]; /* path of the tiny model file */

static void write_model(const char *path, const struct gb_llama_opts *o)
{
    struct gguf_builder b = {0};
    gb_init(&b);
    gb_llama(&b, o);
    uint8_t *buf = gb_build(&b);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, b.len, f), b.len);
    fclose(f);
    gb_free(&b);
}

static void setup(void)
{
    snprintf(g_model, sizeof g_model, "/tmp/lmpipe_eng_%d.gguf", (int)getpid());
    struct gb_llama_opts o = gb_llama_defaults();
    o.n_ctx = 256; /* a chat prompt of byte tokens needs room */
    write_model(g_model, &o);
}

static void teardown(void) { unlink(g_model); }

static struct eng_model *open_model(void)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em = NULL;
    ck_assert_msg(eng_model_open(&em, g_model, 1, &ei) == 0, "open: %s", ei.msg);
    return em;
}

static struct eng_session *open_session(struct eng_model *em, uint32_t n_ctx)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_session *s = NULL;
    ck_assert_msg(eng_session_create(&s, em, n_ctx, &ei) == 0, "session: %s", ei.msg);
    return s;
}

/* What a generation produced: the token of every piece of text, the text. */
struct got {
    int32_t toks[512];
    size_t n;
    char text[8192];
    size_t len;
    int stop_after; /* cancel after this many pieces (0: never) */
};

static int got_text(void *ud, const char *text, size_t len, int32_t token)
{
    struct got *g = ud;
    if (token >= 0 && g->n < 512) g->toks[g->n++] = token;
    if (g->len + len < sizeof g->text) {
        memcpy(g->text + g->len, text, len);
        g->len += len;
        g->text[g->len] = 0;
    }
    return g->stop_after && (int)g->n >= g->stop_after;
}

static int gen(struct eng_session *s, const char *prompt, const struct eng_gen_params *p,
               struct got *g, struct eng_gen_result *res, struct err_info *ei)
{
    struct eng_sink sink = {got_text, NULL, g, NULL};
    err_clear(ei);
    return eng_generate(s, prompt, strlen(prompt), p, &sink, res, ei);
}

static void greedy(struct eng_gen_params *p, int32_t max_tokens)
{
    eng_gen_params_default(p);
    p->samp.temp = 0;
    p->max_tokens = max_tokens;
}

/* ---- stop strings (moved here from check_samp with the matcher) ---- */

static uint64_t lcg_state;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

/* Feed chunks and gather what is released; returns the feed result of the last chunk. */
static int feed_all(struct eng_stop *st, const char *const *chunks, size_t n, char *acc,
                    size_t *acc_len)
{
    static char out[1 << 16];
    int r = 0;
    *acc_len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ol = 99;
        r = eng_stop_feed(st, chunks[i], strlen(chunks[i]), out, sizeof out, &ol);
        ck_assert_int_ge(r, 0);
        memcpy(acc + *acc_len, out, ol);
        *acc_len += ol;
        if (r == 1) break;
    }
    acc[*acc_len] = 0;
    return r;
}

START_TEST(test_stop_across_chunks)
{
    struct eng_stop st;
    eng_stop_init(&st);
    ck_assert_int_eq(eng_stop_add(&st, "</s>", 4), 0);
    char acc[256];
    size_t n;
    const char *c1[] = {"Hello <", "/", "s> world"};
    ck_assert_int_eq(feed_all(&st, c1, 3, acc, &n), 1);
    ck_assert_str_eq(acc, "Hello ");

    /* Step by step: "<" and "</" are held, nothing of the stop string is ever released. */
    eng_stop_init(&st);
    eng_stop_add(&st, "</s>", 4);
    char out[1024];
    size_t ol;
    ck_assert_int_eq(eng_stop_feed(&st, "Hi <", 4, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 3);
    ck_assert(memcmp(out, "Hi ", 3) == 0);
    ck_assert_uint_eq(st.n_held, 1);
    ck_assert_int_eq(eng_stop_feed(&st, "/", 1, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(eng_stop_feed(&st, "x", 1, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 3);
    ck_assert(memcmp(out, "</x", 3) == 0);
    ck_assert_uint_eq(st.n_held, 0);
}
END_TEST

START_TEST(test_stop_in_middle)
{
    struct eng_stop st;
    eng_stop_init(&st);
    eng_stop_add(&st, "STOP", 4);
    char out[1024];
    size_t ol;
    ck_assert_int_eq(eng_stop_feed(&st, "abc STOP def STOP", 17, out, sizeof out, &ol), 1);
    ck_assert_uint_eq(ol, 4);
    ck_assert(memcmp(out, "abc ", 4) == 0);
    ck_assert_uint_eq(eng_stop_flush(&st, out, sizeof out), 0);
}
END_TEST

START_TEST(test_stop_overlapping_prefix)
{
    char acc[256];
    size_t n;
    struct eng_stop st;
    /* "aab" in "aaab": the held "aa" must slide, not be reset. */
    const char *bytes[] = {"a", "a", "a", "b"};
    eng_stop_init(&st);
    eng_stop_add(&st, "aab", 3);
    ck_assert_int_eq(feed_all(&st, bytes, 4, acc, &n), 1);
    ck_assert_str_eq(acc, "a");
    const char *whole[] = {"aaab"};
    eng_stop_init(&st);
    eng_stop_add(&st, "aab", 3);
    ck_assert_int_eq(feed_all(&st, whole, 1, acc, &n), 1);
    ck_assert_str_eq(acc, "a");
    const char *two[] = {"xaa", "ab"};
    eng_stop_init(&st);
    eng_stop_add(&st, "aab", 3);
    ck_assert_int_eq(feed_all(&st, two, 2, acc, &n), 1);
    ck_assert_str_eq(acc, "xa");

    /* Several stops: the one that ends first wins, as it would byte by byte. */
    eng_stop_init(&st);
    eng_stop_add(&st, "abc", 3);
    eng_stop_add(&st, "b", 1);
    const char *abc[] = {"xabc"};
    ck_assert_int_eq(feed_all(&st, abc, 1, acc, &n), 1);
    ck_assert_str_eq(acc, "xa");
    /* Same end: the longer (earlier) one, so less is released. */
    eng_stop_init(&st);
    eng_stop_add(&st, "b", 1);
    eng_stop_add(&st, "ab", 2);
    ck_assert_int_eq(feed_all(&st, abc, 1, acc, &n), 1);
    ck_assert_str_eq(acc, "x");
}
END_TEST

START_TEST(test_stop_no_match_flush)
{
    struct eng_stop st;
    eng_stop_init(&st);
    eng_stop_add(&st, "xyz", 3);
    char out[1024];
    size_t ol;
    ck_assert_int_eq(eng_stop_feed(&st, "hello x", 7, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 6);
    ck_assert_int_eq(eng_stop_feed(&st, "y", 1, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(eng_stop_feed(&st, "!", 1, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 3);
    ck_assert(memcmp(out, "xy!", 3) == 0);
    ck_assert_int_eq(eng_stop_feed(&st, " xy", 3, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 1);
    ck_assert_uint_eq(eng_stop_flush(&st, out, sizeof out), 2);
    ck_assert(memcmp(out, "xy", 2) == 0);
    ck_assert_uint_eq(eng_stop_flush(&st, out, sizeof out), 0);

    /* No stop strings: everything goes straight through. */
    eng_stop_init(&st);
    ck_assert_int_eq(eng_stop_feed(&st, "abc", 3, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 3);
    ck_assert_int_eq(eng_stop_feed(&st, "", 0, out, sizeof out, &ol), 0);
    ck_assert_uint_eq(ol, 0);

    /* A long chunk: held text stays bounded; a short flush buffer gets what fits. */
    static char big[5000];
    memset(big, 'q', sizeof big);
    static char bout[5000 + ENG_MAX_STOP_LEN * 2 + 64];
    char stop[ENG_MAX_STOP_LEN];
    memset(stop, 'q', sizeof stop);
    stop[ENG_MAX_STOP_LEN - 1] = '!';
    eng_stop_init(&st);
    ck_assert_int_eq(eng_stop_add(&st, stop, ENG_MAX_STOP_LEN), 0);
    ck_assert_int_eq(eng_stop_feed(&st, big, sizeof big, bout, sizeof bout, &ol), 0);
    ck_assert_uint_eq(st.n_held, ENG_MAX_STOP_LEN - 1);
    ck_assert_uint_eq(ol, sizeof big - (ENG_MAX_STOP_LEN - 1));
    ck_assert_int_eq(eng_stop_feed(&st, "!", 1, bout, sizeof bout, &ol), 1);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(eng_stop_feed(&st, big, 10, bout, sizeof bout, &ol), 0);
    ck_assert_uint_eq(eng_stop_flush(&st, out, 4), 4);
    ck_assert_uint_eq(eng_stop_flush(&st, out, sizeof out), 6);
}
END_TEST

START_TEST(test_stop_errors)
{
    struct eng_stop st;
    eng_stop_init(&st);
    ck_assert_int_eq(eng_stop_add(&st, "", 0), ERR_INVALID);
    char longs[ENG_MAX_STOP_LEN + 1];
    memset(longs, 'a', sizeof longs);
    ck_assert_int_eq(eng_stop_add(&st, longs, sizeof longs), ERR_LIMIT);
    for (int i = 0; i < ENG_STOP_SLOTS; i++) ck_assert_int_eq(eng_stop_add(&st, "s", 1), 0);
    ck_assert_int_eq(eng_stop_add(&st, "t", 1), ERR_LIMIT);
    char out[8];
    size_t ol;
    eng_stop_init(&st);
    eng_stop_add(&st, "zz", 2);
    ck_assert_int_eq(eng_stop_feed(&st, "abcdefghij", 10, out, sizeof out, &ol), ERR_INVALID);
    ck_assert_int_eq(eng_stop_feed(&st, NULL, 3, out, sizeof out, &ol), ERR_INVALID);
}
END_TEST

/* Random text and random chunking against the whole-text answer: output is the text before the
 * first-ending match (or, with no match, everything after a flush). */
START_TEST(test_stop_random_chunking)
{
    const char *stops[] = {"abba", "bab", "aaab", "b\0a"};
    const size_t slen[] = {4, 3, 4, 3};
    static char text[400], acc[400 + 1024], out[400 + 1024];
    lcg_state = 4242;
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + lcg() % 60;
        for (size_t i = 0; i < n; i++) {
            uint32_t r = lcg() % 10;
            text[i] = r < 5 ? 'a' : r < 9 ? 'b' : '\0';
        }
        size_t nstops = 1 + lcg() % 4;
        /* Reference: smallest end, then smallest start. */
        size_t best_end = SIZE_MAX, best_start = SIZE_MAX;
        for (size_t e = 1; e <= n && best_end == SIZE_MAX; e++) {
            for (size_t k = 0; k < nstops; k++) {
                if (slen[k] > e || memcmp(text + e - slen[k], stops[k], slen[k]) != 0) continue;
                if (e - slen[k] < best_start) best_start = e - slen[k];
                best_end = e;
            }
        }
        struct eng_stop st;
        eng_stop_init(&st);
        for (size_t k = 0; k < nstops; k++)
            ck_assert_int_eq(eng_stop_add(&st, stops[k], slen[k]), 0);
        size_t pos = 0, got = 0;
        int matched = 0;
        while (pos < n && !matched) {
            size_t c = 1 + lcg() % 7;
            if (c > n - pos) c = n - pos;
            size_t ol;
            int r = eng_stop_feed(&st, text + pos, c, out, sizeof out, &ol);
            ck_assert_int_ge(r, 0);
            ck_assert_uint_lt(st.n_held, ENG_MAX_STOP_LEN);
            memcpy(acc + got, out, ol);
            got += ol;
            pos += c;
            matched = r == 1;
        }
        if (!matched) got += eng_stop_flush(&st, acc + got, sizeof acc - got);
        if (best_end == SIZE_MAX) {
            ck_assert(!matched);
            ck_assert_uint_eq(got, n);
            ck_assert(memcmp(acc, text, n) == 0);
        } else {
            ck_assert_msg(matched, "round %d: match missed", round);
            ck_assert_uint_eq(got, best_start);
            ck_assert(memcmp(acc, text, got) == 0);
        }
    }
}
END_TEST

/* ---------------- toy constraints ---------------- */

/* Only even ids (EOG ids too, when even). Counts its calls and records what it accepted. */
struct even {
    int checks, masks, accepts, resets;
    int32_t seen[512];
    size_t n_seen;
    uint32_t n_vocab;
    bool refuse_eog; /* also refuse every end-of-generation id */
    const struct vocab_view *vv;
};

static bool even_allows(const struct even *e, int32_t t)
{
    if (t % 2) return false;
    return !(e->refuse_eog && (vocab_flags(e->vv, t) & VOCAB_EOG));
}

static int even_check(void *self, int32_t tok)
{
    struct even *e = self;
    e->checks++;
    return even_allows(e, tok);
}

static int even_mask(void *self, uint64_t *bits)
{
    struct even *e = self;
    e->masks++;
    for (uint32_t t = 0; t < e->n_vocab; t++)
        if (even_allows(e, (int32_t)t)) bits[t / 64] |= 1ull << (t % 64);
    return 0;
}

static int even_accept(void *self, int32_t tok)
{
    struct even *e = self;
    e->accepts++;
    if (e->n_seen < 512) e->seen[e->n_seen++] = tok;
    return 0;
}

static void even_reset(void *self) { ((struct even *)self)->resets++; }

static const struct eng_constraint_ops k_even_ops = {even_check, even_mask, even_accept, NULL, NULL,
                                                     even_reset, NULL};

/* Nothing is ever allowed. */
static int none_check(void *self, int32_t tok) { (void)self, (void)tok; return 0; }
static int none_mask(void *self, uint64_t *bits) { (void)self, (void)bits; return 0; }
static int none_accept(void *self, int32_t tok) { (void)self, (void)tok; return 0; }
static const struct eng_constraint_ops k_none_ops = {none_check, none_mask, none_accept, NULL, NULL,
                                                     NULL, NULL};

/* After every sampled token, the next three are forced: ids 100, 101, 102 ('a', 'b', 'c' as
 * byte tokens). With use_forced the loop hears them from forced(); without, it must find them
 * through check/mask like any other token. complete_after: complete() after that many tokens. */
struct abc {
    int phase; /* 0: free; 1..3: the next forced token is 99 + phase */
    bool use_forced;
    int complete_after, accepted;
    uint32_t n_vocab;
};

static int abc_check(void *self, int32_t tok)
{
    struct abc *a = self;
    return a->phase ? tok == 99 + a->phase : 1;
}

static int abc_mask(void *self, uint64_t *bits)
{
    struct abc *a = self;
    for (uint32_t t = 0; t < a->n_vocab; t++)
        if (!a->phase || (int32_t)t == 99 + a->phase) bits[t / 64] |= 1ull << (t % 64);
    return 0;
}

static int abc_accept(void *self, int32_t tok)
{
    struct abc *a = self;
    a->accepted++;
    if (a->phase) {
        ck_assert_int_eq(tok, 99 + a->phase);
        a->phase = a->phase == 3 ? 0 : a->phase + 1;
    } else {
        a->phase = 1;
    }
    return 0;
}

static int abc_forced(void *self, int32_t *toks, size_t cap, size_t *n)
{
    struct abc *a = self;
    *n = 0;
    if (!a->use_forced) return 0;
    for (int p = a->phase; p && p <= 3 && *n < cap; p++) toks[(*n)++] = 99 + p;
    return 0;
}

static int abc_complete(void *self)
{
    struct abc *a = self;
    return a->complete_after && a->accepted >= a->complete_after;
}

static void abc_reset(void *self) { ((struct abc *)self)->phase = 0; }

static const struct eng_constraint_ops k_abc_ops = {abc_check, abc_mask, abc_accept, abc_forced,
                                                    abc_complete, abc_reset, NULL};

/* ---------------- sessions, tokens, info ---------------- */

START_TEST(sessions_and_prefill)
{
    struct eng_model *em = open_model();
    ck_assert_uint_eq(eng_model_n_vocab(em), 260);
    ck_assert_uint_eq(eng_model_n_ctx_train(em), 256);
    ck_assert_uint_eq(eng_model_ctx_cap(em, 1000), 256);
    ck_assert_uint_eq(eng_model_ctx_cap(em, 0), 256);
    ck_assert_uint_eq(eng_model_ctx_cap(em, 16), 16);
    struct eng_session *s = open_session(em, 1000);
    ck_assert_uint_eq(eng_session_n_ctx(s), 256); /* capped */
    ck_assert_uint_eq(eng_session_n_tokens(s), 0);
    struct err_info ei;
    err_clear(&ei);
    const int32_t t[] = {1, 40, 77, 3, 200, 9};
    uint32_t cached = 99;
    ck_assert_int_eq(eng_prefill(s, t, 4, NULL, &cached, &ei), 0);
    ck_assert_uint_eq(cached, 0);
    ck_assert_uint_eq(eng_session_n_tokens(s), 4);
    ck_assert_int_eq(eng_prefill(s, t, 6, NULL, &cached, &ei), 0);
    ck_assert_uint_eq(cached, 4);
    float *l1 = malloc(260 * sizeof *l1);
    memcpy(l1, s->st.logits, 260 * sizeof *l1);
    /* the same prompt again: nothing evaluated, logits kept */
    ck_assert_int_eq(eng_prefill(s, t, 6, NULL, &cached, &ei), 0);
    ck_assert_uint_eq(cached, 6);
    ck_assert(memcmp(l1, s->st.logits, 260 * sizeof *l1) == 0);
    /* a fresh session from scratch gives the same logits */
    struct eng_session *s2 = open_session(em, 32);
    ck_assert_int_eq(eng_prefill(s2, t, 6, NULL, &cached, &ei), 0);
    ck_assert(memcmp(l1, s2->st.logits, 260 * sizeof *l1) == 0);
    /* bad ids and too many tokens are errors naming the problem */
    const int32_t bad[] = {1, 260};
    ck_assert_int_eq(eng_prefill(s2, bad, 2, NULL, NULL, &ei), ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(ei.msg, "260"));
    int32_t big[40] = {0};
    err_clear(&ei);
    ck_assert_int_eq(eng_prefill(s2, big, 33, NULL, NULL, &ei), ERR_CONTEXT);
    ck_assert_ptr_nonnull(strstr(ei.msg, "context_length_exceeded"));
    eng_session_reset(s2);
    ck_assert_uint_eq(eng_session_n_tokens(s2), 0);
    free(l1);
    eng_session_free(s2);
    eng_session_free(s);
    eng_session_free(NULL);
    eng_model_free(em);
    eng_model_free(NULL);
}
END_TEST

struct eval_rec {
    uint32_t n;
    float last[260];
};

static int eval_cb(void *ud, uint32_t pos, int32_t token, const float *logits, uint32_t n_vocab)
{
    struct eval_rec *r = ud;
    ck_assert_uint_eq(pos, r->n);
    ck_assert_uint_eq(n_vocab, 260);
    (void)token;
    r->n++;
    memcpy(r->last, logits, sizeof r->last);
    return 0;
}

static int eval_stop(void *ud, uint32_t pos, int32_t token, const float *logits, uint32_t n_vocab)
{
    (void)ud, (void)token, (void)logits, (void)n_vocab;
    return pos == 2 ? ERR_CANCELLED : 0;
}

START_TEST(evaluate_every_position)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 64), *s2 = open_session(em, 64);
    struct err_info ei;
    err_clear(&ei);
    const int32_t t[] = {1, 40, 77, 3, 200, 9};
    struct eval_rec r = {0, {0}};
    ck_assert_int_eq(eng_evaluate(s, t, 6, eval_cb, &r, &ei), 0);
    ck_assert_uint_eq(r.n, 6);
    /* the last position's logits are the prefill's */
    ck_assert_int_eq(eng_prefill(s2, t, 6, NULL, NULL, &ei), 0);
    for (int i = 0; i < 260; i++) ck_assert(fabsf(r.last[i] - s2->st.logits[i]) <= 1e-4f);
    ck_assert_int_eq(eng_evaluate(s, t, 6, eval_stop, NULL, &ei), ERR_CANCELLED);
    ck_assert_int_eq(eng_evaluate(s, t, 0, eval_cb, &r, &ei), ERR_INVALID);
    eng_session_free(s);
    eng_session_free(s2);
    eng_model_free(em);
}
END_TEST

START_TEST(tokens_through_eng)
{
    struct eng_model *em = open_model();
    struct err_info ei;
    err_clear(&ei);
    int32_t ids[64];
    size_t n = 0;
    ck_assert_int_eq(eng_tokenize(em, "hi the", 6, true, false, ids, 64, &n, &ei), 0);
    ck_assert_uint_gt(n, 2);
    ck_assert_int_eq(ids[0], 1); /* BOS: the vocabulary's default */
    size_t n2 = 0;
    ck_assert_int_eq(eng_tokenize(em, "hi the", 6, false, false, ids, 64, &n2, &ei), 0);
    ck_assert_uint_eq(n2, n - 1);
    /* too small an output: ERR_LIMIT and the size needed */
    ck_assert_int_eq(eng_tokenize(em, "hi the", 6, true, false, ids, 1, &n2, &ei), ERR_LIMIT);
    ck_assert_uint_eq(n2, n);
    char *text;
    size_t len;
    /* this vocabulary has no word pieces it can reach: the SPM space marker and the letters
     * fall back to byte tokens (id = 3 + byte) */
    ck_assert_int_eq(eng_tokenize(em, "hi", 2, false, false, ids, 64, &n, &ei), 0);
    const int32_t want[] = {3 + 0xe2, 3 + 0x96, 3 + 0x81, 3 + 'h', 3 + 'i'};
    ck_assert_uint_eq(n, 5);
    ck_assert(memcmp(ids, want, sizeof want) == 0);
    const int32_t bytes[] = {3 + 'h', 3 + 'i', 259};
    ck_assert_int_eq(eng_detokenize(em, bytes, 3, false, &text, &len, &ei), 0);
    ck_assert_str_eq(text, "hi the");
    ck_assert_uint_eq(len, 6);
    free(text);
    const int32_t bad[] = {5, -1};
    ck_assert_int_eq(eng_detokenize(em, bad, 2, false, &text, &len, &ei), ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(ei.msg, "tokens[1]"));
    ck_assert_ptr_null(text);
    size_t pl;
    ck_assert_str_eq(eng_token_text(em, 1, &pl), "<s>");
    ck_assert_str_eq(eng_tokenizer_name(em), "llama");
    const struct vocab_view *vv = eng_model_vocab(em);
    ck_assert_uint_eq(vv->n_vocab, 260);
    ck_assert(vocab_flags(vv, 2) & VOCAB_EOG);
    eng_model_free(em);
    /* vocab-only handles tokenize but hold no sessions */
    ck_assert_int_eq(eng_model_open_vocab(&em, g_model, &ei), 0);
    ck_assert_int_eq(eng_tokenize(em, "hi", 2, true, false, ids, 64, &n, &ei), 0);
    struct eng_session *s;
    ck_assert_int_eq(eng_session_create(&s, em, 16, &ei), ERR_STATE);
    eng_model_free(em);
}
END_TEST

START_TEST(model_info)
{
    struct eng_model *em = open_model();
    struct eng_model_info *m = malloc(sizeof *m);
    ck_assert_int_eq(eng_model_info(em, 16, m), 0);
    ck_assert(m->model_ok && m->tok_ok);
    ck_assert_str_eq(m->arch, "llama");
    ck_assert_str_eq(m->meta[ENG_META_NAME].text, "gguf_builder tiny llama");
    ck_assert_uint_eq(m->n_vocab, 260);
    ck_assert_uint_eq(m->n_layer, 2);
    ck_assert_uint_eq(m->n_ctx, 16);
    ck_assert_uint_eq(m->n_ctx_train, 256);
    ck_assert_uint_gt(m->kv_bytes, 0);
    ck_assert_uint_ge(m->session_bytes, m->kv_bytes);
    ck_assert_int_eq(m->bos, 1);
    ck_assert_int_eq(m->eos, 2);
    ck_assert_str_eq(m->tok_model, "llama");
    ck_assert(!m->has_chat_template && m->chat.fallback && !m->chat.jinja);
    ck_assert_int_eq(m->chat.source, ENG_CHAT_NONE);
    ck_assert_str_eq(m->chat.builtin, "chatml");
    ck_assert_uint_eq(m->type_count[BLK_T_F32], m->n_tensors);
    ck_assert(m->meta[ENG_META_BOS].present);
    ck_assert_str_eq(m->meta[ENG_META_BOS].text, "1");
    ck_assert(!m->meta[ENG_META_EOT].present);
    ck_assert_int_eq(m->threads, 1);
    ck_assert_ptr_nonnull(m->isa);
    eng_model_free(em);
    /* a file whose model is broken is still described, and says why */
    char path[64];
    snprintf(path, sizeof path, "/tmp/lmpipe_eng_bad_%d.gguf", (int)getpid());
    struct gb_llama_opts o = gb_llama_defaults();
    o.n_head = 3; /* does not divide the width */
    write_model(path, &o);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(eng_file_info(path, 0, m, &ei), 0);
    ck_assert(!m->model_ok);
    ck_assert(m->model_error[0]);
    ck_assert(m->tok_ok);
    unlink(path);
    /* not a GGUF file at all: an error */
    ck_assert_int_ne(eng_file_info("/dev/null", 0, m, &ei), 0);
    free(m);
}
END_TEST

/* ---------------- the generation loop ---------------- */

START_TEST(generate_ends)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 64);
    struct eng_gen_params p;
    struct eng_gen_result res;
    struct err_info ei;
    struct got g = {0};
    greedy(&p, 8);
    p.ignore_eos = true;
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_uint_eq(res.completion_tokens, 8);
    /* deterministic, and the second run reuses the cached prompt */
    struct got g2 = {0};
    ck_assert_int_eq(gen(s, "hello", &p, &g2, &res, &ei), 0);
    ck_assert_str_eq(g.text, g2.text);
    ck_assert_uint_gt(res.cached_tokens, 0);
    /* max_tokens 0: nothing */
    greedy(&p, 0);
    struct got g3 = {0};
    ck_assert_int_eq(gen(s, "hello", &p, &g3, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_uint_eq(res.completion_tokens, 0);
    ck_assert_uint_eq(g3.len, 0);
    /* a full context is context_length_exceeded after n_ctx - prompt tokens (the default hook),
     * the text until then emitted */
    struct eng_session *small = open_session(em, 12);
    greedy(&p, -1);
    p.ignore_eos = true;
    g3.len = 0;
    ck_assert_int_eq(gen(small, "hello", &p, &g3, &res, &ei), ERR_CONTEXT);
    ck_assert_int_eq(res.finish, ENG_FINISH_ERROR);
    ck_assert_ptr_nonnull(strstr(ei.msg, "context_length_exceeded"));
    ck_assert_uint_eq(res.completion_tokens, 12 - res.prompt_tokens);
    ck_assert_uint_gt(g3.len, 0);
    /* a max_tokens that fits ends with "length" exactly at the last position */
    greedy(&p, (int32_t)(12 - res.prompt_tokens));
    p.ignore_eos = true;
    ck_assert_int_eq(gen(small, "hello", &p, &g3, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    /* a prompt that does not fit, or fills the context: context_length_exceeded */
    ck_assert_int_eq(gen(small, "hello hello hello hello", &p, &g3, &res, &ei), ERR_CONTEXT);
    ck_assert_ptr_nonnull(strstr(ei.msg, "context_length_exceeded"));
    ck_assert_int_eq(res.finish, ENG_FINISH_ERROR);
    p.add_bos = false;
    ck_assert_int_eq(gen(small, "", &p, &g3, &res, &ei), ERR_INVALID);
    /* cancel from the sink */
    struct got gc = {0};
    gc.stop_after = 2;
    greedy(&p, 20);
    p.ignore_eos = true;
    ck_assert_int_eq(gen(s, "hello", &p, &gc, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_CANCELLED);
    eng_session_free(small);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

START_TEST(generate_stops_and_eog)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 64);
    struct eng_gen_params p;
    struct eng_gen_result res;
    struct err_info ei;
    /* force 'x' (byte token 3 + 'x') everywhere: the text is "xxxx..." */
    struct samp_bias bx[] = {{3 + 'x', 1000.0f}};
    greedy(&p, 6);
    p.samp.bias = bx;
    p.samp.n_bias = 1;
    struct got g = {0};
    ck_assert_int_eq(gen(s, "hi", &p, &g, &res, &ei), 0);
    ck_assert_str_eq(g.text, "xxxxxx");
    /* a stop string is not emitted and ends with "stop" */
    const char *stops[] = {"xxx"};
    p.stop = stops;
    p.n_stop = 1;
    struct got g2 = {0};
    ck_assert_int_eq(gen(s, "hi", &p, &g2, &res, &ei), 0);
    ck_assert_str_eq(g2.text, "");
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    ck_assert_uint_eq(res.completion_tokens, 3);
    /* EOG ends with "stop" and is not text; ignore_eos makes it text */
    struct samp_bias beos[] = {{2, 1000.0f}};
    greedy(&p, 5);
    p.samp.bias = beos;
    p.samp.n_bias = 1;
    struct got g3 = {0};
    ck_assert_int_eq(gen(s, "hi", &p, &g3, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    ck_assert_uint_eq(res.completion_tokens, 1);
    p.ignore_eos = true;
    ck_assert_int_eq(gen(s, "hi", &p, &g3, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_uint_eq(res.completion_tokens, 5);
    /* params are checked: an empty stop string, too many, a bias id outside the vocabulary */
    const char *empty[] = {""};
    greedy(&p, 5);
    p.stop = empty;
    p.n_stop = 1;
    ck_assert_int_eq(eng_gen_params_check(em, &p, &ei), ERR_INVALID);
    p.n_stop = ENG_MAX_STOPS + 1;
    ck_assert_int_eq(eng_gen_params_check(em, &p, &ei), ERR_INVALID);
    greedy(&p, 5);
    struct samp_bias oob[] = {{260, 1.0f}};
    p.samp.bias = oob;
    p.samp.n_bias = 1;
    err_clear(&ei);
    ck_assert_int_eq(gen(s, "hi", &p, &g3, &res, &ei), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(ei.msg, "bias[0].token"));
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

START_TEST(constraint_even)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 64);
    struct eng_gen_params p;
    struct eng_gen_result res;
    struct err_info ei;
    for (int temp = 0; temp < 2; temp++) {
        struct even e = {0};
        e.n_vocab = 260;
        e.vv = eng_model_vocab(em);
        struct eng_constraint c = {&k_even_ops, &e};
        greedy(&p, 24);
        p.samp.temp = temp ? 1.0f : 0.0f;
        p.samp.seed = 7;
        p.ignore_eos = true;
        p.constraint = &c;
        struct got g = {0};
        ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
        ck_assert_uint_eq(res.completion_tokens, 24);
        ck_assert_uint_eq(e.n_seen, 24); /* told every token, not the prompt's */
        for (size_t i = 0; i < e.n_seen; i++) ck_assert_msg(e.seen[i] % 2 == 0, "token %d", e.seen[i]);
        ck_assert_int_eq(e.checks, 24); /* one check per draw */
        ck_assert_int_le(e.masks, 24);  /* a mask only when the draw was refused */
        ck_assert_int_eq(e.resets, 1);
    }
    /* nothing allowed: a dead end, reported, never a loop */
    struct eng_constraint none = {&k_none_ops, NULL};
    greedy(&p, 10);
    p.constraint = &none;
    struct got g = {0};
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), ERR_DEAD_END);
    ck_assert_str_eq(err_kind(ERR_DEAD_END), "constraint_dead_end");
    ck_assert_ptr_nonnull(strstr(ei.msg, "dead end"));
    /* a constraint missing an operation is refused */
    const struct eng_constraint_ops half = {even_check, NULL, even_accept, NULL, NULL, NULL, NULL};
    struct eng_constraint bad = {&half, NULL};
    p.constraint = &bad;
    ck_assert_int_eq(eng_gen_params_check(em, &p, &ei), ERR_INVALID);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

/* EOG only where the constraint allows the text to end. */
START_TEST(constraint_eog)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 64);
    struct eng_gen_params p;
    struct eng_gen_result res;
    struct err_info ei;
    struct samp_bias beos[] = {{2, 1000.0f}}; /* without a constraint: EOS at once */
    struct even e = {0};
    e.n_vocab = 260;
    e.vv = eng_model_vocab(em);
    e.refuse_eog = true;
    struct eng_constraint c = {&k_even_ops, &e};
    greedy(&p, 6);
    p.samp.bias = beos;
    p.samp.n_bias = 1;
    p.constraint = &c;
    struct got g = {0};
    ck_assert_int_eq(gen(s, "hi", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_uint_eq(res.completion_tokens, 6);
    for (size_t i = 0; i < e.n_seen; i++) ck_assert(!(vocab_flags(e.vv, e.seen[i]) & VOCAB_EOG));
    /* allowed: it ends there */
    e.refuse_eog = false;
    ck_assert_int_eq(gen(s, "hi", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    ck_assert_uint_eq(res.completion_tokens, 1);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

/* Forced runs: accepted without sampling, evaluated as one batch, the same tokens as a loop
 * that evaluates one token per pass, and as a loop that samples them through check/mask. */
START_TEST(constraint_forced_batched)
{
    struct eng_model *em = open_model();
    struct eng_gen_params p;
    struct eng_gen_result res[3];
    struct err_info ei;
    struct got g[3];
    uint64_t passes[3];
    for (int k = 0; k < 3; k++) {
        struct eng_session *s = open_session(em, 64);
        s->run_min = 2;              /* batch these runs of 4 however short */
        if (k == 1) s->eval_max = 1; /* token by token */
        struct abc a = {0, k != 2, 0, 0, 260};
        struct eng_constraint c = {&k_abc_ops, &a};
        greedy(&p, 17);
        p.ignore_eos = true;
        p.constraint = &c;
        memset(&g[k], 0, sizeof g[k]);
        ck_assert_int_eq(gen(s, "hello", &p, &g[k], &res[k], &ei), 0);
        ck_assert_uint_eq(res[k].completion_tokens, 17);
        passes[k] = s->n_passes;
        eng_session_free(s);
    }
    /* 17 tokens: 5 sampled, each followed by 3 forced (the last run cut at the budget) */
    ck_assert_uint_eq(res[0].forced_tokens, 12);
    ck_assert_uint_eq(res[1].forced_tokens, 12);
    ck_assert_uint_eq(res[2].forced_tokens, 0);
    ck_assert_ptr_nonnull(strstr(g[0].text, "abc"));
    ck_assert_str_eq(g[0].text, g[1].text);
    ck_assert_str_eq(g[0].text, g[2].text);
    ck_assert_uint_eq(g[0].n, g[1].n);
    ck_assert(memcmp(g[0].toks, g[1].toks, g[0].n * sizeof g[0].toks[0]) == 0);
    ck_assert(memcmp(g[0].toks, g[2].toks, g[0].n * sizeof g[0].toks[0]) == 0);
    /* batched: one pass per sampled token and its run; token by token: one per token */
    ck_assert_uint_eq(passes[0], 4);
    ck_assert_uint_eq(passes[1], 16);
    ck_assert_uint_eq(passes[2], 16);
    eng_model_free(em);
}
END_TEST

/* complete() ends the text cleanly, ignore_eos and stop settings notwithstanding. */
START_TEST(constraint_complete)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 64);
    struct abc a = {0, true, 6, 0, 260};
    struct eng_constraint c = {&k_abc_ops, &a};
    struct eng_gen_params p;
    greedy(&p, -1);
    p.ignore_eos = true;
    p.constraint = &c;
    struct eng_gen_result res;
    struct err_info ei;
    struct got g = {0};
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_STOP);
    ck_assert_uint_eq(res.completion_tokens, 6);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

/* The model's default constraint: made per generation, freed by eng. */
static int g_made, g_freed;

static void even_free(void *self)
{
    free(self);
    g_freed++;
}

static const struct eng_constraint_ops k_even_owned = {even_check, even_mask, even_accept, NULL,
                                                       NULL, NULL, even_free};

static int make_even(void *ud, const struct vocab_view *v, struct eng_constraint *out,
                     struct err_info *ei)
{
    (void)ud, (void)ei;
    struct even *e = calloc(1, sizeof *e);
    if (!e) return ERR_NOMEM;
    e->n_vocab = v->n_vocab;
    e->vv = v;
    out->ops = &k_even_owned;
    out->self = e;
    g_made++;
    return 0;
}

START_TEST(default_constraint)
{
    g_made = g_freed = 0;
    eng_set_default_constraint(make_even, NULL);
    struct eng_model *em = open_model();
    eng_set_default_constraint(NULL, NULL);
    struct eng_model *plain = open_model();
    struct eng_session *s = open_session(em, 64), *sp = open_session(plain, 64);
    struct eng_gen_params p;
    greedy(&p, 12);
    p.ignore_eos = true;
    struct eng_gen_result res;
    struct err_info ei;
    struct got g = {0}, gp = {0};
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(g_made, 2);
    ck_assert_int_eq(g_freed, 2);
    for (size_t i = 0; i < g.n; i++) ck_assert(g.toks[i] % 2 == 0);
    ck_assert_int_eq(gen(sp, "hello", &p, &gp, &res, &ei), 0);
    ck_assert_int_eq(g_made, 2); /* opened after the default was cleared */
    /* per handle */
    eng_model_set_default_constraint(plain, make_even, NULL);
    ck_assert_int_eq(gen(sp, "hello", &p, &gp, &res, &ei), 0);
    ck_assert_int_eq(g_made, 3);
    ck_assert_int_eq(g_freed, 3);
    eng_session_free(s);
    eng_session_free(sp);
    eng_model_free(em);
    eng_model_free(plain);
}
END_TEST

/* ---------------- hooks ---------------- */

struct hooks_rec {
    int full_calls, after_calls;
    size_t after_n;
    uint32_t after_cached;
    int policy; /* 0: end; 1: make room by dropping to 4 tokens; 2: make no room; 3: fail */
};

static int on_full(void *ud, struct eng_session *s, int event, size_t need, struct err_info *ei)
{
    struct hooks_rec *h = ud;
    h->full_calls++;
    if (event == ENG_CTX_PROMPT) return eng_ctx_full_default(NULL, s, event, need, ei);
    ck_assert_uint_eq(need, 1);
    switch (h->policy) {
    case 0: return ENG_HOOK_END;
    case 1: s->n_tokens = 4; s->has_logits = false; return 0; /* a crude shift: keep 4 */
    case 2: return 0;
    default: return err_set(ei, ERR_IO, ERR_NO_OFFSET, "hook failed");
    }
}

static int on_after(void *ud, struct eng_session *s, const int32_t *toks, size_t n,
                    uint32_t n_cached, struct err_info *ei)
{
    (void)ei;
    struct hooks_rec *h = ud;
    h->after_calls++;
    h->after_n = n;
    h->after_cached = n_cached;
    ck_assert_uint_eq(eng_session_n_tokens(s), n);
    ck_assert_int_eq(toks[0], 1);
    return 0;
}

START_TEST(session_hooks)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 12);
    struct hooks_rec h = {0};
    struct eng_hooks hk = {on_full, on_after, &h};
    eng_session_set_hooks(s, &hk);
    struct eng_gen_params p;
    greedy(&p, -1);
    p.ignore_eos = true;
    struct eng_gen_result res;
    struct err_info ei;
    struct got g = {0};
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_int_eq(h.full_calls, 1);
    ck_assert_int_eq(h.after_calls, 1);
    ck_assert_uint_eq(h.after_n, res.prompt_tokens);
    ck_assert_uint_eq(h.after_cached, 0);
    /* making room lets the generation go past the context */
    h.policy = 1;
    p.max_tokens = 30;
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), 0);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_uint_eq(res.completion_tokens, 30);
    ck_assert_int_gt(h.full_calls, 2);
    /* a hook that makes no room is an error, not a loop; a failing hook's error is returned */
    h.policy = 2;
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), ERR_STATE);
    h.policy = 3;
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), ERR_IO);
    ck_assert_str_eq(ei.msg, "hook failed");
    eng_session_set_hooks(s, NULL); /* the default again: a full context is an error */
    h.policy = 0;
    int before = h.full_calls;
    ck_assert_int_eq(gen(s, "hello", &p, &g, &res, &ei), ERR_CONTEXT);
    ck_assert_int_eq(h.full_calls, before);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

/* ---------------- chat ---------------- */

static json_t *req(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != NULL, "test JSON: %s", e.text);
    return j;
}

START_TEST(chat_checks)
{
    static const struct {
        const char *json;
        int rc;
        const char *says;
    } bad[] = {
        {"{}", ERR_INVALID, "'messages' is required"},
        {"{\"messages\": []}", ERR_INVALID, "non-empty array"},
        {"{\"messages\": {}}", ERR_INVALID, "non-empty array"},
        {"{\"messages\": [1]}", ERR_INVALID, "messages[0] must be an object"},
        {"{\"messages\": [{\"role\": \"\"}]}", ERR_INVALID, "messages[0].role"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", ERR_INVALID, "messages[0].content"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}", ERR_INVALID, "NUL"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
         ERR_UNSUPPORTED, "only text parts"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 1}]}]}",
         ERR_INVALID, "content[0].text"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{}]}",
         ERR_INVALID, "tools[0] must be"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": {}}",
         ERR_INVALID, "'tools' must be an array"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", "
         "\"function\": {\"name\": \"\"}}]}", ERR_INVALID, "tools[0].function.name"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"parallel_tool_calls\": 1}",
         ERR_INVALID, "'parallel_tool_calls' must be true or false"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"chat_template_kwargs\": []}",
         ERR_INVALID, "'chat_template_kwargs' must be an object"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"documents\": \"d\"}",
         ERR_INVALID, "'documents' must be an array"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tool_choice\": \"required\"}",
         ERR_INVALID, "'tool_choice' \"required\" needs at least one tool"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{}]}]}", ERR_INVALID,
         "messages[0].tool_calls[0] must be"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": {}}]}", ERR_INVALID,
         "messages[0].tool_calls must be an array"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": "
         "\"f\", \"arguments\": \"{nope\"}}]}]}", ERR_INVALID, "arguments must be an object or a string"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": "
         "\"f\", \"arguments\": \"[1]\"}}]}]}", ERR_INVALID, "holding a JSON object"},
        {"{\"messages\": [{\"role\": \"tool\", \"content\": \"r\", \"tool_call_id\": \"a\\u0000\"}]}",
         ERR_INVALID, "messages[0] must not contain NUL"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"function\": "
         "{\"name\": \"f\", \"description\": \"\\u0000\"}}]}", ERR_INVALID, "'tools' must not contain NUL"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", "
         "\"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": "
         "{\"type\": \"string\"}}, \"patternProperties\": {\"^x\": {}}}}}]}", ERR_INVALID,
         "tools[0] (f): its parameters cannot be enforced"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", "
         "\"function\": {\"name\": \"f\"}}, {\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
         ERR_INVALID, "declared twice"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", "
         "\"function\": {\"name\": \"f\"}}], \"tool_choice\": {\"type\": \"function\", \"function\": "
         "{\"name\": \"g\"}}}", ERR_INVALID, "not a tool in 'tools'"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"chat_template_kwargs\": "
         "{\"x\": [\"\\u0000\"]}}", ERR_INVALID, "'chat_template_kwargs' must not contain NUL"},
        {"[]", ERR_INVALID, "object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *r = req(bad[i].json);
        struct err_info ei;
        err_clear(&ei);
        ck_assert_msg(eng_chat_check(r, &ei) == bad[i].rc, "%s", bad[i].json);
        ck_assert_msg(strstr(ei.msg, bad[i].says), "%s: '%s'", bad[i].json, ei.msg);
        json_decref(r);
    }
    json_t *ok = req("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", "
                     "\"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": "
                     "\"assistant\", \"content\": null}], \"tools\": null, \"tool_choice\": \"auto\"}");
    ck_assert_int_eq(eng_chat_check(ok, NULL), 0);
    /* rendered with the model's fallback (chatml): parts joined, the end-of-turn stop */
    struct eng_model *em = open_model();
    struct eng_prompt pr;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(eng_chat_render(em, ok, NULL, &pr, &ei), 0);
    ck_assert_str_eq(pr.text, "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
                              "<|im_start|>assistant\n");
    ck_assert_uint_eq(pr.len, strlen(pr.text));
    ck_assert_str_eq(pr.tmpl, "chatml");
    ck_assert(pr.fallback);
    ck_assert_uint_eq(pr.n_stops, 1);
    ck_assert_str_eq(pr.stops[0], "<|im_end|>");
    eng_prompt_free(&pr);
    /* a named template, no generation prompt */
    struct eng_chat_opts co;
    eng_chat_opts_default(&co);
    co.kind = ENG_TMPL_BUILTIN;
    co.name = "llama2";
    co.add_generation_prompt = false;
    ck_assert_int_eq(eng_chat_render(em, ok, &co, &pr, &ei), 0);
    ck_assert_str_eq(pr.tmpl, "llama2");
    ck_assert_uint_eq(pr.n_stops, 0);
    eng_prompt_free(&pr);
    co.name = "nosuch";
    ck_assert_int_eq(eng_chat_opts_check(&co, &ei), ERR_INVALID);
    ck_assert_int_eq(eng_chat_render(em, ok, &co, &pr, &ei), ERR_INVALID);
    ck_assert_uint_eq(eng_chat_template_count(), 54);
    ck_assert_str_eq(eng_chat_template_name(5), "chatml");
    ck_assert_ptr_null(eng_chat_template_name(54));
    json_decref(ok);
    eng_model_free(em);
}
END_TEST

START_TEST(chat_conversation)
{
    struct eng_model *em = open_model();
    struct eng_session *s = open_session(em, 256);
    struct eng_conv *c;
    ck_assert_int_eq(eng_conv_create(&c), 0);
    ck_assert_int_eq(eng_conv_add(c, "system", "be brief", 8), 0);
    ck_assert_int_eq(eng_conv_add(c, "user", "hi \xff", 4), 0); /* invalid UTF-8 is kept as U+FFFD */
    ck_assert_uint_eq(eng_conv_len(c), 2);
    ck_assert_int_eq(eng_chat_check(eng_conv_request(c), NULL), 0);
    struct eng_prompt pr;
    ck_assert_int_eq(eng_chat_render(em, eng_conv_request(c), NULL, &pr, NULL), 0);
    ck_assert_ptr_nonnull(strstr(pr.text, "hi \xef\xbf\xbd"));
    eng_prompt_free(&pr);
    /* generation stops at the template's end-of-turn text; the markers are special tokens */
    struct samp_bias bias[] = {{3 + '<', 1000.0f}};
    struct eng_gen_params p;
    greedy(&p, 4);
    p.samp.bias = bias;
    p.samp.n_bias = 1;
    struct got g = {0};
    struct eng_sink sink = {got_text, NULL, &g, NULL};
    struct eng_gen_result res;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(eng_chat(s, eng_conv_request(c), NULL, &p, &sink, &res, &ei), 0);
    ck_assert_str_eq(g.text, "<<<<");
    eng_conv_truncate(c, 1);
    ck_assert_uint_eq(eng_conv_len(c), 1);
    /* a bad request is refused before any generation */
    json_t *bad = req("{\"messages\": []}");
    ck_assert_int_eq(eng_chat(s, bad, NULL, &p, &sink, &res, &ei), ERR_INVALID);
    ck_assert_int_eq(res.finish, ENG_FINISH_ERROR);
    json_decref(bad);
    eng_conv_free(c);
    eng_conv_free(NULL);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("eng");
    TCase *st = tcase_create("stop");
    tcase_add_test(st, test_stop_across_chunks);
    tcase_add_test(st, test_stop_in_middle);
    tcase_add_test(st, test_stop_overlapping_prefix);
    tcase_add_test(st, test_stop_no_match_flush);
    tcase_add_test(st, test_stop_errors);
    tcase_add_test(st, test_stop_random_chunking);
    suite_add_tcase(s, st);
    TCase *tc = tcase_create("door");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sessions_and_prefill);
    tcase_add_test(tc, evaluate_every_position);
    tcase_add_test(tc, tokens_through_eng);
    tcase_add_test(tc, model_info);
    tcase_add_test(tc, generate_ends);
    tcase_add_test(tc, generate_stops_and_eog);
    tcase_add_test(tc, constraint_even);
    tcase_add_test(tc, constraint_eog);
    tcase_add_test(tc, constraint_forced_batched);
    tcase_add_test(tc, constraint_complete);
    tcase_add_test(tc, default_constraint);
    tcase_add_test(tc, session_hooks);
    tcase_add_test(tc, chat_checks);
    tcase_add_test(tc, chat_conversation);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
