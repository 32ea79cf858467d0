/* check_snap: what a session keeps beyond one request, through eng's door (src/eng/eng_snap.c):
 * snapshot files, the disk prompt cache, the context shift; on the real shared models.
 *
 * What is asserted, and why it can fail:
 *  - greedy text after a snapshot load equals the text without it, byte for byte, for stories260K
 *    and the synthetic architectures, for every KV type the model takes (Q8_0 is refused for
 *    stories260K's head size of 8, with its reason): loading everything, loading only the prefix a
 *    prompt shares, loading a snapshot of a prefix of the prompt (usage.cached_tokens says how
 *    much was restored);
 *  - prefix reuse equals a full recompute bit for bit: the logits after a prompt whose first part
 *    was cached (in memory or restored from a file) are memcmp-equal to a fresh evaluation's,
 *    because a prompt always evaluates at least its last two tokens in one batch;
 *  - refusals: every kind (model, KV type, context, version, damage in every header field, the
 *    token ids, K and V data, the checksum, every truncation, a directory, a missing path) with
 *    its error code, and the session unchanged: the text generated after the failed load, and its
 *    cached_tokens, equal those of a twin session that never saw the load, for an empty session
 *    (streamed load) and one holding tokens (buffered load);
 *  - the prompt cache: miss then hit (in a new session and a new cache handle, as a new process
 *    would), output unchanged, a prefix entry made redundant by a longer one, least recently used
 *    eviction under a size bound, a damaged entry removed and the output unchanged, stats, the
 *    entry-name parser, and three processes hammering one directory with outputs checked;
 *  - the context shift end to end on one-layer cuts of the models: the logits of the continuation
 *    after a shift equal those of a fresh evaluation of the kept tokens within a stated tolerance,
 *    and without a shift the full context is context_length_exceeded. */
#include "tutil.h"

#include "eng/eng_int.h"
#include "gguf/gguf.h"
#include "model_cut.h"
#include "util/hash.h"

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------- helpers ---------------- */

static char g_dir[256];

static void dir_setup(void) { ck_assert(tutil_mkdtemp(g_dir, sizeof g_dir, "snap") == 0); }
static void dir_teardown(void) { tutil_rmtree(g_dir); }

static const char *in_dir(const char *name) { return tutil_path(g_dir, name); }

static struct eng_model *open_model(const char *path)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em = NULL;
    ck_assert_msg(eng_model_open(&em, path, 1, &ei) == 0, "%s: %s", path, ei.msg);
    return em;
}

static const char *shared_model(const char *stem)
{
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "models/%s.gguf", stem);
    snprintf(b, sizeof buf[0], "%s", tutil_shared(b));
    return b;
}

static struct eng_session *new_session(struct eng_model *em, uint32_t n_ctx, int type)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_session *s = NULL;
    ck_assert_msg(eng_session_create_kv(&s, em, n_ctx, type, &ei) == 0, "session %s: %s", eng_kv_type_name(type),
                  ei.msg);
    return s;
}

/* Greedy, ignore_eos, max_tokens n_gen: the text into *out (reset first). */
static int gen(struct eng_session *s, const char *prompt, int32_t n_gen, struct tutil_text *out, struct eng_gen_result *res,
               struct err_info *ei)
{
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.samp.temp = 0;
    p.max_tokens = n_gen;
    p.ignore_eos = true;
    out->len = 0;
    out->buf[0] = 0;
    struct eng_sink sink = {tutil_text_add, NULL, out, NULL};
    err_clear(ei);
    return eng_generate(s, prompt, strlen(prompt), &p, &sink, res, ei);
}

static void gen_ok(struct eng_session *s, const char *prompt, int32_t n_gen, struct tutil_text *out,
                   struct eng_gen_result *res)
{
    struct err_info ei;
    int rc = gen(s, prompt, n_gen, out, res, &ei);
    ck_assert_msg(rc == 0, "generate: %s", ei.msg);
}

/* The prompt's token ids as a generation tokenizes it (BOS, no special parsing). */
static size_t tokens_of(struct eng_model *em, const char *text, int32_t *out, size_t cap)
{
    struct err_info ei;
    err_clear(&ei);
    size_t n = 0;
    ck_assert_int_eq(eng_tokenize(em, text, strlen(text), true, false, out, cap, &n, &ei), 0);
    return n;
}

/* "Once upon a time ..." repeated until it has about `words` words. */
static char *story(int words)
{
    static const char *const w[] = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named",
                                    "Lily.", "She", "loved", "to", "play", "outside", "in", "the", "park", "with",
                                    "her", "dog", "Max.", "One", "day", "they", "found", "a", "shiny", "red",
                                    "ball."};
    size_t cap = (size_t)words * 12 + 1, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < words; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? " " : "", w[(size_t)i % (sizeof w / sizeof w[0])]);
    return s;
}

static void save_ok(struct eng_session *s, const char *path, uint32_t *n)
{
    struct err_info ei;
    err_clear(&ei);
    uint64_t bytes = 0;
    ck_assert_msg(eng_session_save(s, path, n, &bytes, &ei) == 0, "save: %s", ei.msg);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, bytes);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *b = (uint8_t *)tutil_read(path, len);
    ck_assert_ptr_nonnull(b);
    return b;
}

/* ---------------- snapshots: byte for byte ---------------- */

struct snap_case {
    const char *stem;
    int type;
    uint32_t n_ctx;
    int words, n_gen;
};

static const struct snap_case g_snaps[] = {
    {"stories260K-F32", ENG_KV_F32, 128, 20, 40},
    {"stories260K-F32", ENG_KV_F16, 128, 20, 40},
    {"stories260K-Q4_0", ENG_KV_F16, 128, 20, 40},
    {"synth512-llama-d256-F32", ENG_KV_F32, 512, 150, 24}, /* > 256 positions: two V blocks */
    {"synth512-llama-d256-F32", ENG_KV_F16, 512, 150, 24},
    {"synth512-llama-d256-F32", ENG_KV_Q8_0, 512, 150, 24},
    {"synth512-llama-d256-Q4_K_M", ENG_KV_F16, 512, 150, 24},
    {"synth512-qwen2-d256-F32", ENG_KV_F16, 512, 150, 24},
    {"synth512-qwen2-d256-Q8_0", ENG_KV_Q8_0, 512, 150, 24}, /* Hadamard-rotated Q8_0 cells */
    {"synth512-qwen3-d256-Q4_K", ENG_KV_F32, 512, 150, 24},
    {"synth512-phi3-d256-F32", ENG_KV_Q8_0, 512, 150, 24},
    {"synth512-gemma3-d256-F32", ENG_KV_F16, 512, 150, 24}, /* sliding-window layers */
};
#define N_SNAPS ((int)(sizeof g_snaps / sizeof g_snaps[0]))

/* A: fresh. B: everything loaded. C: only the prompt's shared prefix loaded. F: a snapshot of a
 * prefix of the prompt (evaluated as tokens) loaded. All must print A's text. */
START_TEST(test_greedy_after_load)
{
    if (!tutil_sampled(_i)) return; /* LMPIPE_TEST_QUICK=2: a sample */
    const struct snap_case *c = &g_snaps[_i];
    struct eng_model *em = open_model(shared_model(c->stem));
    char *prompt = story(c->words);
    static struct tutil_text ta, tb;
    struct eng_gen_result ra, rb;
    struct err_info ei;
    err_clear(&ei);
    struct eng_session *a = new_session(em, c->n_ctx, c->type);
    gen_ok(a, prompt, c->n_gen, &ta, &ra);
    ck_assert_uint_eq(ra.completion_tokens, (uint32_t)c->n_gen);
    uint32_t n_saved = 0;
    save_ok(a, in_dir("a.snap"), &n_saved);
    ck_assert_uint_eq(n_saved, ra.prompt_tokens + ra.completion_tokens - 1); /* the last token was not evaluated */
    eng_session_free(a);

    struct eng_session *b = new_session(em, c->n_ctx, c->type);
    uint32_t got = 0;
    ck_assert_msg(eng_session_load(b, in_dir("a.snap"), NULL, 0, &got, &ei) == 0, "load: %s", ei.msg);
    ck_assert_uint_eq(got, n_saved);
    ck_assert_uint_eq(eng_session_n_tokens(b), n_saved);
    gen_ok(b, prompt, c->n_gen, &tb, &rb);
    ck_assert_msg(tb.len == ta.len && !memcmp(tb.buf, ta.buf, ta.len), "%s %s: after load '%s' != '%s'", c->stem,
                  eng_kv_type_name(c->type), tb.buf, ta.buf);
    ck_assert_uint_eq(rb.cached_tokens, ra.prompt_tokens - 2);
    eng_session_free(b);

    int32_t toks[1024];
    size_t n = tokens_of(em, prompt, toks, 1024);
    ck_assert_uint_eq(n, ra.prompt_tokens);
    struct eng_session *cs = new_session(em, c->n_ctx, c->type);
    ck_assert_int_eq(eng_session_load(cs, in_dir("a.snap"), toks, n, &got, &ei), 0);
    ck_assert_uint_eq(got, n - 1); /* at most n - 1: the prompt's last token is evaluated */
    gen_ok(cs, prompt, c->n_gen, &tb, &rb);
    ck_assert_str_eq(tb.buf, ta.buf);
    eng_session_free(cs);

    /* a snapshot of the prompt's first n - 7 tokens */
    struct eng_session *e = new_session(em, c->n_ctx, c->type);
    ck_assert_int_eq(eng_prefill(e, toks, n - 7, NULL, NULL, &ei), 0);
    save_ok(e, in_dir("p.snap"), &got);
    ck_assert_uint_eq(got, n - 7);
    eng_session_free(e);
    struct eng_session *f = new_session(em, c->n_ctx, c->type);
    ck_assert_int_eq(eng_session_load(f, in_dir("p.snap"), NULL, 0, &got, &ei), 0);
    gen_ok(f, prompt, c->n_gen, &tb, &rb);
    ck_assert_str_eq(tb.buf, ta.buf);
    ck_assert_uint_eq(rb.cached_tokens, n - 7);
    eng_session_free(f);
    fprintf(stderr, "snap %-28s %-4s %zu-token prompt, %d generated: same text after every load\n", c->stem,
            eng_kv_type_name(c->type), n, c->n_gen);
    free(prompt);
    eng_model_free(em);
}
END_TEST

/* The logits after prefill_min(toks, n, 2) (the generation's prompt step), into out. */
static void prompt_logits(struct eng_session *s, const int32_t *toks, size_t n, float *out, uint32_t *cached)
{
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(eng_prefill_min(s, toks, n, 2, NULL, cached, &ei) == 0, "%s", ei.msg);
    memcpy(out, s->st.logits, s->em->model.hp.n_vocab * sizeof(float));
}

/* Prefix reuse = full recompute, bit for bit: a prefix cached in memory by an earlier prompt, or
 * restored from a snapshot, then the rest of the prompt; for prefixes ending anywhere (a
 * one-token rest included, which still evaluates two). The cached prefixes are prompts of two or
 * more tokens, as a generation's always are: a one-token evaluation is the decode path, whose
 * sums run in another order (model.h). */
START_TEST(test_prefix_reuse_bits)
{
    if (!tutil_sampled(_i)) return; /* LMPIPE_TEST_QUICK=2: a sample */
    const struct snap_case *c = &g_snaps[_i];
    struct eng_model *em = open_model(shared_model(c->stem));
    char *prompt = story(c->words);
    int32_t toks[1024];
    size_t n = tokens_of(em, prompt, toks, 1024);
    uint32_t nv = eng_model_n_vocab(em);
    float *want = malloc(nv * sizeof(float)), *got = malloc(nv * sizeof(float));
    struct eng_session *y = new_session(em, c->n_ctx, c->type);
    uint32_t cached;
    prompt_logits(y, toks, n, want, &cached);
    ck_assert_uint_eq(cached, 0);
    const size_t cuts[] = {2, n / 2, n > 40 ? n - 33 : 3, n > 40 ? n - 32 : 4, n - 2, n - 1, n};
    struct err_info ei;
    err_clear(&ei);
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        size_t cut = cuts[k];
        struct eng_session *x = new_session(em, c->n_ctx, c->type);
        ck_assert_int_eq(eng_prefill(x, toks, cut, NULL, NULL, &ei), 0);
        prompt_logits(x, toks, n, got, &cached);
        ck_assert_msg(!memcmp(got, want, nv * sizeof(float)), "%s %s: prefix %zu in memory changes the logits",
                      c->stem, eng_kv_type_name(c->type), cut);
        ck_assert_uint_eq(cached, cut == n ? n : cut < n - 1 ? cut : n - 2); /* n: its own logits */
        save_ok(x, in_dir("x.snap"), NULL);
        struct eng_session *z = new_session(em, c->n_ctx, c->type);
        ck_assert_int_eq(eng_session_load(z, in_dir("x.snap"), NULL, 0, NULL, &ei), 0);
        prompt_logits(z, toks, n, got, &cached);
        ck_assert_msg(!memcmp(got, want, nv * sizeof(float)), "%s %s: prefix %zu restored changes the logits",
                      c->stem, eng_kv_type_name(c->type), cut);
        eng_session_free(z);
        eng_session_free(x);
    }
    free(want);
    free(got);
    free(prompt);
    eng_session_free(y);
    eng_model_free(em);
}
END_TEST

START_TEST(test_q8_0_refused)
{
    struct eng_model *em = open_model(shared_model("stories260K-F32"));
    struct err_info ei;
    err_clear(&ei);
    struct eng_session *s = NULL;
    ck_assert_int_eq(eng_session_create_kv(&s, em, 64, ENG_KV_Q8_0, &ei), ERR_UNSUPPORTED);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(ei.msg, "multiple of 32") && strstr(ei.msg, "8"), "%s", ei.msg);
    err_clear(&ei);
    ck_assert_int_eq(eng_session_create_kv(&s, em, 64, 7, &ei), ERR_INVALID);
    int t = -1;
    ck_assert_int_eq(eng_kv_type_parse("Q8_0", &t), 0);
    ck_assert_int_eq(t, ENG_KV_Q8_0);
    ck_assert_int_eq(eng_kv_type_parse("f8", &t), ERR_INVALID);
    eng_model_free(em);
}
END_TEST

/* ---------------- refusals ---------------- */

#define R_CTX 64
#define R_PROMPT "Once upon a time there was a little girl named Lily. She loved to play"

/* A target session: empty, or holding a generation's tokens. */
static struct eng_session *target(struct eng_model *em, int type, bool busy)
{
    struct eng_session *s = new_session(em, R_CTX, type);
    if (busy) {
        static struct tutil_text t;
        struct eng_gen_result r;
        gen_ok(s, "Once upon a time there was a dog", 6, &t, &r);
    }
    return s;
}

struct twin_ref {
    struct tutil_text text;
    uint32_t cached, n_tokens;
};

/* What a target does next when nothing happened to it. */
static void twin(struct eng_model *em, int type, bool busy, struct twin_ref *ref)
{
    struct eng_session *s = target(em, type, busy);
    ref->n_tokens = eng_session_n_tokens(s);
    struct eng_gen_result r;
    gen_ok(s, R_PROMPT, 12, &ref->text, &r);
    ref->cached = r.cached_tokens;
    eng_session_free(s);
}

/* Load `path` into a target: the code must be `want` and the target must then behave as its twin. */
static void refused(struct eng_model *em, int type, bool busy, const struct twin_ref *ref, const char *path, int want,
                    const char *what)
{
    struct eng_session *s = target(em, type, busy);
    struct err_info ei;
    err_clear(&ei);
    uint32_t n = 77;
    int rc = eng_session_load(s, path, NULL, 0, &n, &ei);
    ck_assert_msg(rc == want, "%s (%s session): got %d (%s), want %d (%s)", what, busy ? "busy" : "empty", rc,
                  err_kind(rc), want, err_kind(want));
    ck_assert_msg(ei.code == want && ei.msg[0], "%s: no message", what);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(eng_session_n_tokens(s), ref->n_tokens);
    static struct tutil_text t;
    struct eng_gen_result r;
    gen_ok(s, R_PROMPT, 12, &t, &r);
    ck_assert_msg(!strcmp(t.buf, ref->text.buf) && r.cached_tokens == ref->cached,
                  "%s: the session changed (text '%s' vs '%s', cached %u vs %u)", what, t.buf, ref->text.buf,
                  r.cached_tokens, ref->cached);
    eng_session_free(s);
}

/* A snapshot's bytes with one field rewritten and the checksum made valid again. */
static void rewrite(uint8_t *b, size_t len, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
    uint64_t h = util_xxh64(b, len - 8, 0);
    for (int i = 0; i < 8; i++) b[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
}

START_TEST(test_refusals)
{
    const bool busy = _i == 1;
    const int type = ENG_KV_F16;
    struct eng_model *em = open_model(shared_model("stories260K-F32"));
    struct twin_ref ref;
    twin(em, type, busy, &ref);
    /* a good snapshot of 20 tokens */
    struct eng_session *src = new_session(em, R_CTX, type);
    static struct tutil_text t;
    struct eng_gen_result r;
    gen_ok(src, "Once upon a time there was a little", 12, &t, &r);
    uint32_t n_good = 0;
    save_ok(src, in_dir("good.snap"), &n_good);
    size_t len;
    uint8_t *good = slurp(in_dir("good.snap"), &len);
    uint8_t *b = malloc(len);
    /* a bit flip in every header field, a token id, K and V of the first and last layer, the checksum */
    const size_t row = 32 * 2, data = 64 + 4 * (size_t)n_good;
    const size_t offs[] = {0,  9,  13, 16, 23, 25, 29, 33, 37, 41, 45, 49, 57, 64, data - 1, data,
                           data + (size_t)n_good * row + 5, len - 9 - 3 * row, len - 9, len - 8, len - 1};
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        memcpy(b, good, len);
        b[offs[k]] ^= 0x10;
        tutil_write(in_dir("bad.snap"), b, len);
        char what[64];
        snprintf(what, sizeof what, "bit flip at byte %zu of %zu", offs[k], len);
        refused(em, type, busy, &ref, in_dir("bad.snap"), ERR_SNAP_CORRUPT, what);
    }
    /* truncations (every length for the empty session's streamed load; a spread for the other) */
    for (size_t cut = 0; cut < len; cut += busy ? 97 : 1) {
        tutil_write(in_dir("cut.snap"), good, cut);
        struct eng_session *s = target(em, type, busy);
        struct err_info ei;
        err_clear(&ei);
        ck_assert_int_eq(eng_session_load(s, in_dir("cut.snap"), NULL, 0, NULL, &ei), ERR_SNAP_CORRUPT);
        ck_assert_uint_eq(eng_session_n_tokens(s), ref.n_tokens);
        eng_session_free(s);
    }
    refused(em, type, busy, &ref, in_dir("cut.snap"), ERR_SNAP_CORRUPT, "truncated by one byte");
    /* trailing bytes */
    memcpy(b, good, len);
    uint8_t *longer = malloc(len + 3);
    memcpy(longer, good, len);
    memset(longer + len, 0, 3);
    tutil_write(in_dir("long.snap"), longer, len + 3);
    refused(em, type, busy, &ref, in_dir("long.snap"), ERR_SNAP_CORRUPT, "trailing bytes");
    free(longer);
    /* a future version (valid checksum), version 0 */
    memcpy(b, good, len);
    rewrite(b, len, 8, 2);
    tutil_write(in_dir("v2.snap"), b, len);
    refused(em, type, busy, &ref, in_dir("v2.snap"), ERR_SNAP_VERSION, "version 2");
    memcpy(b, good, len);
    rewrite(b, len, 8, 0);
    tutil_write(in_dir("v0.snap"), b, len);
    refused(em, type, busy, &ref, in_dir("v0.snap"), ERR_SNAP_CORRUPT, "version 0");
    /* another model of the same shapes: stories260K-F16 (5 layers, KV width 32 too) */
    struct eng_model *other = open_model(shared_model("stories260K-F16"));
    struct eng_session *os = new_session(other, R_CTX, type);
    gen_ok(os, "Once upon a time", 4, &t, &r);
    save_ok(os, in_dir("other.snap"), NULL);
    eng_session_free(os);
    eng_model_free(other);
    refused(em, type, busy, &ref, in_dir("other.snap"), ERR_SNAP_MODEL, "another model");
    /* another KV type */
    struct eng_session *fs = new_session(em, R_CTX, ENG_KV_F32);
    gen_ok(fs, "Once upon a time", 4, &t, &r);
    save_ok(fs, in_dir("f32.snap"), NULL);
    eng_session_free(fs);
    refused(em, type, busy, &ref, in_dir("f32.snap"), ERR_SNAP_KV, "another KV type");
    /* more tokens than the context holds */
    struct eng_session *big = new_session(em, 128, type);
    gen_ok(big, R_PROMPT, 60, &t, &r);
    save_ok(big, in_dir("big.snap"), NULL);
    eng_session_free(big);
    refused(em, type, busy, &ref, in_dir("big.snap"), ERR_SNAP_KV, "a context too small");
    /* not files */
    refused(em, type, busy, &ref, g_dir, ERR_IO, "a directory");
    refused(em, type, busy, &ref, in_dir("missing.snap"), ERR_IO, "a missing path");
    refused(em, type, busy, &ref, "", ERR_INVALID, "an empty path");
    tutil_write(in_dir("empty.snap"), good, 0);
    refused(em, type, busy, &ref, in_dir("empty.snap"), ERR_SNAP_CORRUPT, "an empty file");
    /* and the good one loads */
    struct eng_session *s = target(em, type, busy);
    struct err_info ei;
    err_clear(&ei);
    uint32_t n = 0;
    ck_assert_int_eq(eng_session_load(s, in_dir("good.snap"), NULL, 0, &n, &ei), 0);
    ck_assert_uint_eq(n, n_good);
    eng_session_free(s);
    eng_session_free(src);
    free(b);
    free(good);
    eng_model_free(em);
}
END_TEST

/* A failed save leaves the previous file as it was. */
START_TEST(test_save_errors)
{
    struct eng_model *em = open_model(shared_model("stories260K-F32"));
    struct eng_session *s = new_session(em, R_CTX, ENG_KV_F16);
    static struct tutil_text t;
    struct eng_gen_result r;
    gen_ok(s, R_PROMPT, 4, &t, &r);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(eng_session_save(s, in_dir("nodir/x.snap"), NULL, NULL, &ei), ERR_IO);
    ck_assert_ptr_nonnull(strstr(ei.msg, "nodir/x.snap"));
    err_clear(&ei);
    ck_assert_int_eq(eng_session_save(s, g_dir, NULL, NULL, &ei), ERR_IO); /* a directory is not replaced */
    save_ok(s, in_dir("keep.snap"), NULL);
    size_t l1, l2;
    uint8_t *b1 = slurp(in_dir("keep.snap"), &l1);
    ck_assert_int_eq(chmod(g_dir, 0500), 0); /* no temporary file can be made beside it */
    err_clear(&ei);
    int rc = eng_session_save(s, in_dir("keep.snap"), NULL, NULL, &ei);
    ck_assert_int_eq(chmod(g_dir, 0700), 0);
    if (geteuid() != 0) ck_assert_int_eq(rc, ERR_IO); /* root writes anyway */
    uint8_t *b2 = slurp(in_dir("keep.snap"), &l2);
    ck_assert(l1 == l2 && !memcmp(b1, b2, l1));
    free(b1);
    free(b2);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

/* ---------------- the prompt cache ---------------- */

static struct eng_pcache *pc_open(const char *dir, uint32_t min, uint64_t max)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_pcache *pc = NULL;
    ck_assert_msg(eng_pcache_open(&pc, dir, min, max, &ei) == 0, "%s", ei.msg);
    return pc;
}

static struct eng_pcache_stats pc_stats(const struct eng_pcache *pc)
{
    struct eng_pcache_stats st;
    eng_pcache_stats(pc, &st);
    return st;
}

/* Entry files under dir (find -name '*.snap'). */
static int count_entries(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.snap' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* One generation of `prompt` in a new session using pc: its text and result. */
static void pc_gen(struct eng_model *em, struct eng_pcache *pc, const char *prompt, struct tutil_text *t,
                   struct eng_gen_result *r)
{
    struct eng_session *s = new_session(em, 512, ENG_KV_F16);
    eng_session_set_pcache(s, pc);
    gen_ok(s, prompt, 8, t, r);
    eng_session_free(s);
}

START_TEST(test_pcache_hit_miss)
{
    struct eng_model *em = open_model(shared_model("synth512-llama-d256-F32"));
    char *p1 = story(120), *p2 = story(200);
    static struct tutil_text want1, want2, t;
    struct eng_gen_result r;
    struct eng_session *plain = new_session(em, 512, ENG_KV_F16);
    gen_ok(plain, p1, 8, &want1, &r);
    const uint32_t n1 = r.prompt_tokens;
    eng_session_reset(plain);
    gen_ok(plain, p2, 8, &want2, &r);
    const uint32_t n2 = r.prompt_tokens;
    eng_session_free(plain);
    const char *dir = in_dir("pc");
    struct eng_pcache *pc = pc_open(dir, 64, (uint64_t)1 << 30);
    struct eng_pcache_stats st = pc_stats(pc);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.min_tokens, 64);
    /* cold: a miss, then the prompt is kept */
    pc_gen(em, pc, p1, &t, &r);
    ck_assert_str_eq(t.buf, want1.buf);
    ck_assert_uint_eq(r.cached_tokens, 0);
    st = pc_stats(pc);
    ck_assert_uint_eq(st.lookups, 1);
    ck_assert_uint_eq(st.misses, 1);
    ck_assert_uint_eq(st.hits, 0);
    ck_assert_uint_eq(st.stores, 1);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_gt(st.bytes_written, 0);
    ck_assert_uint_eq(st.disk_bytes, st.bytes_written);
    ck_assert_int_eq(count_entries(dir), 1);
    /* the same prompt in a new session: restored, the same text, nothing new stored */
    pc_gen(em, pc, p1, &t, &r);
    ck_assert_str_eq(t.buf, want1.buf);
    ck_assert_uint_eq(r.cached_tokens, n1 - 2);
    st = pc_stats(pc);
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.hit_tokens, n1 - 1);
    ck_assert_uint_eq(st.stores, 1);
    ck_assert_uint_ge(st.bytes_read, st.disk_bytes);
    eng_pcache_free(pc);
    /* a new handle on the same directory (a new process): a longer prompt that shares p1 uses it,
     * is stored, and makes p1's entry redundant */
    pc = pc_open(dir, 64, (uint64_t)1 << 30);
    ck_assert_uint_eq(pc_stats(pc).entries, 1);
    pc_gen(em, pc, p2, &t, &r);
    ck_assert_str_eq(t.buf, want2.buf);
    ck_assert_uint_ge(r.cached_tokens, n1 - 4); /* the tokenization of p1's last word may differ */
    ck_assert_uint_lt(r.cached_tokens, n2);
    st = pc_stats(pc);
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.stores, 1);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_int_eq(count_entries(dir), 1);
    /* short prompts are neither looked up nor stored */
    pc_gen(em, pc, "Once upon a time", &t, &r);
    ck_assert_uint_eq(pc_stats(pc).lookups, 1);
    ck_assert_uint_eq(pc_stats(pc).stores, 1);
    /* a prompt mostly in the session's own memory is not looked up */
    struct eng_session *s = new_session(em, 512, ENG_KV_F16);
    eng_session_set_pcache(s, pc);
    gen_ok(s, p2, 8, &t, &r);
    st = pc_stats(pc);
    gen_ok(s, p2, 8, &t, &r);
    ck_assert_uint_eq(pc_stats(pc).lookups, st.lookups);
    eng_session_free(s);
    eng_pcache_free(pc);
    free(p1);
    free(p2);
    eng_model_free(em);
}
END_TEST

/* Three prompts in three buckets; room for two entries: the least recently used goes. */
START_TEST(test_pcache_eviction)
{
    struct eng_model *em = open_model(shared_model("synth512-llama-d256-F32"));
    char *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = story(100);
        p[i][0] = (char)('A' + i); /* "Ance", "Bnce", "Cnce": different first tokens */
    }
    static struct tutil_text t, want[3];
    struct eng_gen_result r;
    struct eng_session *plain = new_session(em, 512, ENG_KV_F16);
    for (int i = 0; i < 3; i++) {
        eng_session_reset(plain);
        gen_ok(plain, p[i], 8, &want[i], &r);
    }
    eng_session_free(plain);
    const char *dir = in_dir("ev");
    struct eng_pcache *pc = pc_open(dir, 32, (uint64_t)1 << 30);
    pc_gen(em, pc, p[0], &t, &r);
    uint64_t one = pc_stats(pc).disk_bytes;
    eng_pcache_free(pc);
    pc = pc_open(dir, 32, one * 2 + one / 2);
    struct timespec ms = {0, 20 * 1000 * 1000}; /* distinct mtimes */
    nanosleep(&ms, NULL);
    pc_gen(em, pc, p[1], &t, &r);
    nanosleep(&ms, NULL);
    pc_gen(em, pc, p[0], &t, &r); /* a hit: p[0] is now the most recent */
    ck_assert_uint_eq(pc_stats(pc).hits, 1);
    nanosleep(&ms, NULL);
    pc_gen(em, pc, p[2], &t, &r); /* stored; p[1] is evicted */
    struct eng_pcache_stats st = pc_stats(pc);
    ck_assert_uint_eq(st.entries, 2);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_le(st.disk_bytes, one * 2 + one / 2);
    ck_assert_int_eq(count_entries(dir), 2);
    pc_gen(em, pc, p[0], &t, &r);
    ck_assert_str_eq(t.buf, want[0].buf);
    ck_assert_uint_gt(r.cached_tokens, 0);
    pc_gen(em, pc, p[1], &t, &r); /* gone: recomputed (and stored again) */
    ck_assert_str_eq(t.buf, want[1].buf);
    ck_assert_uint_eq(r.cached_tokens, 0);
    ck_assert_uint_eq(pc_stats(pc).hits, 2);
    /* an entry larger than the bound is never written */
    eng_pcache_free(pc);
    pc = pc_open(dir, 32, one / 2);
    ck_assert_int_eq(count_entries(dir), 0); /* opening evicts down to the bound */
    pc_gen(em, pc, p[2], &t, &r);
    ck_assert_uint_eq(pc_stats(pc).stores, 0);
    ck_assert_int_eq(count_entries(dir), 0);
    eng_pcache_free(pc);
    for (int i = 0; i < 3; i++) free(p[i]);
    eng_model_free(em);
}
END_TEST

/* The path of the one entry under dir. */
static void the_entry(const char *dir, char *out, size_t cap)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.snap'", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(out, (int)cap, p));
    out[strcspn(out, "\n")] = 0;
    pclose(p);
}

/* A damaged entry (or one of another model planted in the directory) is removed and counted;
 * the output is what it would be without a cache. */
START_TEST(test_pcache_damaged)
{
    struct eng_model *em = open_model(shared_model("synth512-qwen2-d256-F32"));
    char *p1 = story(120);
    static struct tutil_text want, t;
    struct eng_gen_result r;
    struct eng_session *plain = new_session(em, 512, ENG_KV_F16);
    gen_ok(plain, p1, 8, &want, &r);
    eng_session_free(plain);
    const char *dir = in_dir("dmg");
    struct eng_pcache *pc = pc_open(dir, 64, (uint64_t)1 << 30);
    pc_gen(em, pc, p1, &t, &r);
    char entry[1024];
    the_entry(dir, entry, sizeof entry);
    size_t len;
    uint8_t *b = slurp(entry, &len);
    for (int k = 0; k < 2; k++) {
        b[k ? len / 2 : len - 3] ^= 1; /* in the cells; in the checksum */
        tutil_write(entry, b, len);
        b[k ? len / 2 : len - 3] ^= 1;
        pc_gen(em, pc, p1, &t, &r);
        ck_assert_str_eq(t.buf, want.buf);
        ck_assert_uint_eq(r.cached_tokens, 0);
        struct eng_pcache_stats st = pc_stats(pc);
        ck_assert_uint_eq(st.errors, (uint64_t)k + 1);
        ck_assert_uint_eq(st.hits, 0);
        ck_assert_int_eq(count_entries(dir), 1); /* dropped, then stored again */
    }
    pc_gen(em, pc, p1, &t, &r);
    ck_assert_uint_eq(pc_stats(pc).hits, 1);
    /* files the cache did not make are never touched */
    char stray[1100];
    snprintf(stray, sizeof stray, "%s/README", dir);
    tutil_write(stray, (const uint8_t *)"keep", 4);
    eng_pcache_free(pc);
    pc = pc_open(dir, 64, 1);
    ck_assert_int_eq(count_entries(dir), 0);
    ck_assert_int_eq(access(stray, F_OK), 0);
    eng_pcache_free(pc);
    free(b);
    free(p1);
    eng_model_free(em);
}
END_TEST

START_TEST(test_pcache_names)
{
    struct kv_pcache_name nm;
    ck_assert_int_eq(kv_pcache_name("0123456789abcdef-42.snap", 24, &nm), KV_PCN_ENTRY);
    ck_assert_uint_eq(nm.hash, 0x0123456789abcdefull);
    ck_assert_uint_eq(nm.n, 42);
    ck_assert_int_eq(kv_pcache_name("0123456789abcdef", 16, &nm), KV_PCN_BUCKET);
    ck_assert_int_eq(kv_pcache_name("ffffffffffffffff-q8_0-m256", 26, &nm), KV_PCN_MODEL);
    ck_assert_int_eq(nm.kv_type, KV_Q8_0);
    ck_assert_uint_eq(nm.n, 256);
    ck_assert_int_eq(kv_pcache_name("0123456789abcdef-42.snap.tmp-aB3xYz", 35, &nm), KV_PCN_TMP);
    const char *bad[] = {"",
                         "0123456789ABCDEF",                 /* upper case */
                         "0123456789abcde",                  /* 15 digits */
                         "0123456789abcdef0",                /* 17 */
                         "0123456789abcdef-042.snap",        /* leading zero */
                         "0123456789abcdef-4294967296.snap", /* > 32 bits */
                         "0123456789abcdef-42.snapx",
                         "0123456789abcdef-42.snap.tmp-aB3xY", /* 5 characters */
                         "0123456789abcdef-42.snap.tmp-aB3x.z",
                         "0123456789abcdef--1.snap",
                         "0123456789abcdef-f16-m0", /* min 0 */
                         "0123456789abcdef-f64-m1",
                         "0123456789abcdef-f16-m",
                         "0123456789abcdef-.snap",
                         "README"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(kv_pcache_name(bad[i], strlen(bad[i]), &nm) == KV_PCN_NONE, "'%s' accepted", bad[i]);
    ck_assert_int_eq(kv_pcache_name(NULL, 0, &nm), KV_PCN_NONE);
}
END_TEST

/* Three processes share one directory with room for about two entries: each generates prompts
 * that share prefixes, so they store, hit, supersede and evict each other's entries, while every
 * text must be the one computed without a cache and no entry may ever be found damaged. */
START_TEST(test_pcache_processes)
{
    enum { N_PROC = 3, N_ITER = 12, N_PROMPT = 4 };
    char *p[N_PROMPT];
    static struct tutil_text want[N_PROMPT];
    struct eng_gen_result r;
    struct eng_model *em = open_model(shared_model("synth512-llama-d256-Q4_K_M"));
    struct eng_session *plain = new_session(em, 512, ENG_KV_F16);
    for (int i = 0; i < N_PROMPT; i++) { /* two buckets ('A...', 'B...'), a short and a long prompt each */
        p[i] = story(60 + 40 * (i / 2));
        p[i][0] = (char)('A' + i % 2);
        eng_session_reset(plain);
        gen_ok(plain, p[i], 8, &want[i], &r);
    }
    eng_session_free(plain);
    eng_model_free(em); /* each child opens its own (no thread pool crosses a fork) */
    const char *dir = in_dir("shared");
    uint64_t bound = 0;
    {
        struct eng_model *m = open_model(shared_model("synth512-llama-d256-Q4_K_M"));
        struct eng_pcache *pc = pc_open(in_dir("probe"), 32, (uint64_t)1 << 30);
        static struct tutil_text t;
        pc_gen(m, pc, p[N_PROMPT - 1], &t, &r);
        bound = pc_stats(pc).disk_bytes * 3 / 2; /* one long entry and a bit: the families evict each other */
        eng_pcache_free(pc);
        eng_model_free(m);
    }
    pid_t kids[N_PROC];
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    for (int k = 0; k < N_PROC; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k]) continue;
        int bad = 0;
        struct eng_model *m = open_model(shared_model("synth512-llama-d256-Q4_K_M"));
        struct eng_pcache *pc = NULL;
        struct err_info ei;
        if (eng_pcache_open(&pc, dir, 32, bound, &ei)) _exit(3);
        static struct tutil_text t;
        for (int it = 0; it < N_ITER; it++) {
            int i = (it * 7 + k * 3) % N_PROMPT;
            struct eng_session *s = NULL;
            if (eng_session_create_kv(&s, m, 512, ENG_KV_F16, &ei)) _exit(4);
            eng_session_set_pcache(s, pc);
            struct eng_gen_params gp;
            eng_gen_params_default(&gp);
            gp.samp.temp = 0;
            gp.max_tokens = 8;
            gp.ignore_eos = true;
            t.len = 0;
            struct eng_sink sink = {tutil_text_add, NULL, &t, NULL};
            if (eng_generate(s, p[i], strlen(p[i]), &gp, &sink, &r, &ei) || strcmp(t.buf, want[i].buf)) bad = 1;
            eng_session_free(s);
        }
        struct eng_pcache_stats st;
        eng_pcache_stats(pc, &st);
        fprintf(stderr, "pcache child %d: %llu hits, %llu misses, %llu stores, %llu evictions, %llu errors\n", k,
                (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.stores,
                (unsigned long long)st.evictions, (unsigned long long)st.errors);
        if (st.errors) bad = 2;
        if (write(fds[1], &st, sizeof st) != (ssize_t)sizeof st) bad = 5;
        eng_pcache_free(pc);
        eng_model_free(m);
        _exit(bad);
    }
    close(fds[1]);
    uint64_t hits = 0, stores = 0, evictions = 0;
    for (int k = 0; k < N_PROC; k++) {
        int st;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %d", k, WEXITSTATUS(st));
        struct eng_pcache_stats cs;
        ck_assert_int_eq(read(fds[0], &cs, sizeof cs), (ssize_t)sizeof cs);
        hits += cs.hits;
        stores += cs.stores;
        evictions += cs.evictions;
    }
    close(fds[0]);
    /* the test tested something: entries were shared, written and evicted */
    ck_assert_uint_gt(hits, 0);
    ck_assert_uint_gt(stores, 1);
    ck_assert_uint_gt(evictions, 0);
    struct eng_pcache *pc = pc_open(dir, 32, bound);
    ck_assert_uint_le(pc_stats(pc).disk_bytes, bound);
    eng_pcache_free(pc);
    for (int i = 0; i < N_PROMPT; i++) free(p[i]);
}
END_TEST

/* ---------------- context shift ---------------- */

/* A constraint that allows everything and keeps a copy of the logits each token was drawn from
 * (the loop copies them to logits_raw before sampling when there is a constraint). */
struct rec {
    struct eng_session *s;
    uint32_t n_vocab, n;
    float *logits; /* [cap][n_vocab] */
    int32_t *toks;
    uint32_t cap;
};

static int rec_check(void *self, int32_t tok)
{
    struct rec *r = self;
    if (r->n < r->cap) {
        memcpy(r->logits + (size_t)r->n * r->n_vocab, r->s->logits_raw, r->n_vocab * sizeof(float));
        r->toks[r->n++] = tok;
    }
    return 1;
}

static int rec_mask(void *self, uint64_t *bits)
{
    struct rec *r = self;
    for (uint32_t t = 0; t < r->n_vocab; t++) bits[t / 64] |= 1ull << (t % 64);
    return 0;
}

static int rec_accept(void *self, int32_t tok)
{
    (void)self;
    (void)tok;
    return 0;
}

static const struct eng_constraint_ops k_rec = {rec_check, rec_mask, rec_accept, NULL, NULL, NULL, NULL};

struct logit_rows {
    float *v;
    uint32_t n_vocab, from;
};

static int rows_cb(void *ud, uint32_t pos, int32_t token, const float *logits, uint32_t n_vocab)
{
    (void)token;
    struct logit_rows *r = ud;
    if (pos >= r->from) memcpy(r->v + (size_t)(pos - r->from) * n_vocab, logits, n_vocab * sizeof(float));
    return 0;
}

struct shift_case {
    const char *stem;
    int type;
    double tol;
};

/* One-layer cuts; n_ctx 64, keep 4. After the shift the cache holds positions 0..3 and 33..62 of
 * the history (n_past 63 when the 64th token waits: n_discard (63 - 4) / 2 = 29), which the model
 * has to continue from. A fresh evaluation of exactly those tokens, teacher-forced through the
 * continuation, must give the same logits up to: the rounding of rotating a key twice (RoPE(p)
 * then RoPE(-29)) instead of once (check_kvtypes measures <= 1e-5 in F32; F16 and Q8_0 store the
 * re-rotated keys rounded again: <= 5e-4 F16, 8e-4 Q8_0 on the synthetic models), plus the two
 * summation orders here (the continuation is decoded one token at a time, the fresh evaluation
 * runs as batches: model.h, within rounding). stories260K's logits are ~20x larger than the
 * synthetic models', its tolerances too. Measured values are printed; tolerances are about ten
 * times them (other kernel sets round differently); a shift that forgets to re-rotate misses by
 * > 0.06 (check_kvtypes), one that skips model_kv_shift entirely by far more. */
static const struct shift_case g_shifts[] = { /* measured (x86-64, AVX2) in the comments: tol ~10x */
    {"stories260K-F32", ENG_KV_F32, 5e-5},          /* 3.8e-6 */
    {"stories260K-F32", ENG_KV_F16, 6e-3},          /* 6.4e-4 */
    {"synth512-llama-d256-F32", ENG_KV_F32, 1e-5},  /* 4.4e-7 */
    {"synth512-llama-d256-F32", ENG_KV_F16, 1e-3},  /* 1.1e-4 */
    {"synth512-qwen2-d256-F32", ENG_KV_Q8_0, 1e-3}, /* 8.9e-5 */
    {"synth512-gemma3-d256-F32", ENG_KV_F16, 3e-3}, /* 3.1e-4 */
};
#define N_SHIFTS ((int)(sizeof g_shifts / sizeof g_shifts[0]))
enum { SH_CTX = 64, SH_KEEP = 4, SH_HIST = 90 }; /* 90 <= 93: exactly one shift */

START_TEST(test_shift_continuation)
{
    if (!tutil_sampled(_i)) return; /* LMPIPE_TEST_QUICK=2: a sample */
    const struct shift_case *c = &g_shifts[_i];
    char path[600];
    one_layer_copy(c->stem, g_dir, path, sizeof path);
    struct eng_model *em = open_model(path);
    const uint32_t nv = eng_model_n_vocab(em);
    struct eng_session *s = new_session(em, SH_CTX, c->type);
    struct rec rec = {s, nv, 0, malloc((size_t)SH_HIST * nv * sizeof(float)), malloc(SH_HIST * sizeof(int32_t)),
                      SH_HIST};
    const char *prompt = "Once upon a time there was a little girl";
    int32_t hist[SH_CTX + SH_HIST];
    const uint32_t np = (uint32_t)tokens_of(em, prompt, hist, SH_CTX), n_gen = SH_HIST - np;
    struct eng_constraint con = {&k_rec, &rec};
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.samp.temp = 0;
    p.max_tokens = (int32_t)n_gen;
    p.ignore_eos = true;
    p.constraint = &con;
    /* without a shift: context_length_exceeded when the context is full */
    static struct tutil_text t;
    struct eng_sink sink = {tutil_text_add, NULL, &t, NULL};
    struct eng_gen_result res;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(eng_generate(s, prompt, strlen(prompt), &p, &sink, &res, &ei), ERR_CONTEXT);
    ck_assert_ptr_nonnull(strstr(ei.msg, "context_length_exceeded"));
    ck_assert_uint_eq(res.prompt_tokens + res.completion_tokens, SH_CTX);
    ck_assert_uint_eq(res.context_shifts, 0);
    /* with one */
    struct eng_ctx_shift shift = {SH_KEEP};
    eng_session_set_hooks(s, &(struct eng_hooks){.ctx_full = eng_ctx_full_shift, .ud = &shift});
    eng_session_reset(s);
    rec.n = 0;
    t.len = 0;
    err_clear(&ei);
    ck_assert_msg(eng_generate(s, prompt, strlen(prompt), &p, &sink, &res, &ei) == 0, "%s", ei.msg);
    ck_assert_int_eq(res.finish, ENG_FINISH_LENGTH);
    ck_assert_uint_eq(res.completion_tokens, n_gen);
    ck_assert_uint_eq(res.context_shifts, 1);
    ck_assert_uint_eq(rec.n, n_gen);
    /* the history: prompt + generated; the shift came when position 64 was needed */
    memcpy(hist + np, rec.toks, n_gen * sizeof(int32_t));
    const uint32_t n_past = SH_CTX - 1, n_discard = (n_past - SH_KEEP) / 2;
    /* fresh: kept tokens, then the continuation teacher-forced */
    int32_t fresh[SH_CTX + SH_HIST];
    uint32_t nf = 0;
    for (uint32_t i = 0; i < SH_KEEP; i++) fresh[nf++] = hist[i];
    for (uint32_t i = SH_KEEP + n_discard; i < SH_HIST - 1; i++) fresh[nf++] = hist[i];
    const uint32_t first = n_past - n_discard;  /* fresh position of history token n_past */
    const uint32_t g0 = n_past + 1 - np;        /* index (in rec) of the token drawn after it */
    const uint32_t n_cmp = nf - first;          /* continuation steps after the shift */
    ck_assert_uint_le(nf, SH_CTX);
    struct eng_session *f = new_session(em, SH_CTX, c->type);
    struct logit_rows rows = {malloc((size_t)n_cmp * nv * sizeof(float)), nv, first};
    ck_assert_int_eq(eng_evaluate(f, fresh, nf, rows_cb, &rows, &ei), 0);
    double worst = 0;
    uint32_t same = 0;
    for (uint32_t j = 0; j < n_cmp; j++) {
        const float *a = rec.logits + (size_t)(g0 + j) * nv, *b = rows.v + (size_t)j * nv;
        uint32_t am = 0, bm = 0;
        for (uint32_t v = 0; v < nv; v++) {
            double d = fabs((double)a[v] - (double)b[v]);
            if (d > worst) worst = d;
            if (a[v] > a[am]) am = v;
            if (b[v] > b[bm]) bm = v;
        }
        same += am == bm;
    }
    fprintf(stderr, "shift %-26s %-4s 1 layer: %u steps after the shift vs fresh: max |diff| %.3g (tol %.3g), "
                    "same argmax %u/%u\n", c->stem, eng_kv_type_name(c->type), n_cmp, worst, c->tol, same, n_cmp);
    ck_assert_uint_ge(n_cmp, 20);
    ck_assert_msg(worst <= c->tol, "%s %s: continuation after the shift differs by %.3g > %.3g", c->stem,
                  eng_kv_type_name(c->type), worst, c->tol);
    /* positions < keep are all a later prompt may reuse */
    ck_assert_uint_eq(eng_reuse_len(s, hist, np), SH_KEEP);
    uint32_t saved = 0;
    save_ok(s, in_dir("shifted.snap"), &saved);
    ck_assert_uint_eq(saved, SH_KEEP);
    free(rows.v);
    free(rec.logits);
    free(rec.toks);
    eng_session_free(f);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

START_TEST(test_shift_limits)
{
    struct eng_model *em = open_model(shared_model("stories260K-F32"));
    struct eng_session *s = new_session(em, 32, ENG_KV_F16);
    struct eng_ctx_shift shift = {40}; /* more than the context: nothing to drop */
    eng_session_set_hooks(s, &(struct eng_hooks){.ctx_full = eng_ctx_full_shift, .ud = &shift});
    static struct tutil_text t;
    struct eng_gen_result r;
    struct err_info ei;
    ck_assert_int_eq(gen(s, "Once upon a time", 60, &t, &r, &ei), ERR_CONTEXT);
    ck_assert_ptr_nonnull(strstr(ei.msg, "leaves nothing to drop"));
    shift.keep = 0; /* keep nothing: BOS goes too, still a valid shift */
    ck_assert_int_eq(gen(s, "Once upon a time", 60, &t, &r, &ei), 0);
    ck_assert_uint_ge(r.context_shifts, 2);
    /* a prompt that does not fit is an error whatever the hook */
    char *longp = story(40);
    ck_assert_int_eq(gen(s, longp, 4, &t, &r, &ei), ERR_CONTEXT);
    free(longp);
    eng_session_free(s);
    eng_model_free(em);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("snap");
    TCase *a = tcase_create("snapshots");
    tcase_set_timeout(a, 300);
    tcase_add_checked_fixture(a, dir_setup, dir_teardown);
    tcase_add_loop_test(a, test_greedy_after_load, 0, N_SNAPS);
    tcase_add_loop_test(a, test_prefix_reuse_bits, 0, N_SNAPS);
    tcase_add_test(a, test_q8_0_refused);
    tcase_add_loop_test(a, test_refusals, 0, 2);
    tcase_add_test(a, test_save_errors);
    suite_add_tcase(s, a);
    TCase *b = tcase_create("prompt_cache");
    tcase_set_timeout(b, 300);
    tcase_add_checked_fixture(b, dir_setup, dir_teardown);
    tcase_add_test(b, test_pcache_names);
    tcase_add_test(b, test_pcache_hit_miss);
    tcase_add_test(b, test_pcache_eviction);
    tcase_add_test(b, test_pcache_damaged);
    tcase_add_test(b, test_pcache_processes);
    suite_add_tcase(s, b);
    TCase *c = tcase_create("context_shift");
    tcase_set_timeout(c, 300);
    tcase_add_checked_fixture(c, dir_setup, dir_teardown);
    tcase_add_loop_test(c, test_shift_continuation, 0, N_SHIFTS);
    tcase_add_test(c, test_shift_limits);
    suite_add_tcase(s, c);
    return s;
}

TUTIL_MAIN
