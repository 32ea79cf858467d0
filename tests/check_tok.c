/* check_tok: every tokenizer against llama.cpp's own test vectors (SentencePiece: llama-spm,
 * phi-3; BPE: gemma-3 and the byte-level gpt-2, llama-bpe, qwen2, deepseek-llm,
 * deepseek-coder, falcon, mpt, starcoder, refact), the stories260K reference prompts and
 * pieces, special tokens and end-of-generation sets, the streaming detokenizer's UTF-8
 * handling, and hostile metadata (SPM and BPE) built in memory with a tiny GGUF writer. */
#include "tok/tok.h"
#include "tutil.h"

#include <jansson.h>
#include <stdint.h>
#include <time.h>

/* ---- helpers ---- */

struct vocab {
    struct gguf_ctx g;
    struct tok_vocab *v;
};

static void vocab_open(struct vocab *x, const char *rel)
{
    struct err_info ei;
    err_clear(&ei);
    memset(x, 0, sizeof *x);
    int rc = gguf_open(tutil_shared(rel), &x->g, &ei);
    ck_assert_msg(rc == 0, "gguf_open %s: %s", rel, ei.msg);
    rc = tok_load(&x->v, &x->g, &ei);
    ck_assert_msg(rc == 0, "tok_load %s: %s", rel, ei.msg);
}

static void vocab_close(struct vocab *x)
{
    tok_free(x->v);
    gguf_free(&x->g);
}

/* Encode with a retry on ERR_LIMIT; returns a malloc'd array (caller frees). */
static int32_t *encode(const struct tok_vocab *v, const char *s, size_t len, bool bos, bool special,
                       size_t *n)
{
    size_t cap = 4, need = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    int rc = tok_encode(v, s, len, bos, special, ids, cap, &need);
    if (rc == ERR_LIMIT) {
        ck_assert_uint_gt(need, cap);
        ids = realloc(ids, need * sizeof *ids);
        cap = need;
        rc = tok_encode(v, s, len, bos, special, ids, cap, &need);
    }
    ck_assert_int_eq(rc, 0);
    *n = need;
    return ids;
}

/* Streaming detokenization of a whole list; returns a malloc'd NUL-terminated string. */
static char *detok(const struct tok_vocab *v, const int32_t *ids, size_t n, bool special, size_t *len)
{
    struct tok_detok d;
    tok_detok_init(&d, v);
    d.special = special;
    size_t cap = 16 + n * tok_detok_max(v), w = 0;
    char *out = malloc(cap + 1);
    for (size_t i = 0; i < n; i++) {
        size_t k = tok_detok_push(&d, v, ids[i], out + w, cap - w);
        ck_assert_uint_le(k, tok_detok_max(v));
        w += k;
    }
    w += tok_detok_flush(&d, out + w, cap - w);
    out[w] = 0;
    if (len) *len = w;
    return out;
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, size_t n)
{
    size_t w = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && w + 16 < cap; i++) w += (size_t)snprintf(buf + w, cap - w, " %d", ids[i]);
}

/* ---- llama.cpp test vectors ---- */

#define SEP "\n__ggml_vocab_test__\n"

/* Every string of <name>.inp (each one followed by SEP, except that the last one may end the
 * file instead) must give the ids of the same line of <name>.out (no BOS), and must decode back
 * to itself: SPM with byte fallback and a space prefix, byte-level BPE, and Gemma's BPE with
 * <0xHH> fallback all round-trip these strings (our detokenizer does not apply llama.cpp's
 * optional clean_spaces pass, see tok.h). */
static void run_vectors(const char *name)
{
    char rel[256];
    struct vocab x;
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    vocab_open(&x, rel);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    char *inp = tutil_read(tutil_shared(rel), NULL);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    char *outp = tutil_read(tutil_shared(rel), NULL);
    ck_assert_msg(inp && outp, "cannot read the %s vectors", name);

    int n_str = 0, n_bad = 0, n_rt_bad = 0;
    char *s = inp, *line = outp;
    for (char *end; *s; n_str++) {
        if ((end = strstr(s, SEP)) != NULL) *end = 0;
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "%s: .out has fewer lines than .inp has strings", name);
        *nl = 0;
        int32_t want[1024];
        size_t n_want = 0;
        for (char *p = line, *q; n_want < 1024; p = q) {
            long val = strtol(p, &q, 10);
            if (q == p) break;
            want[n_want++] = (int32_t)val;
        }
        line = nl + 1;

        size_t n_got;
        int32_t *got = encode(x.v, s, strlen(s), false, false, &n_got);
        if (n_got != n_want || memcmp(got, want, n_got * sizeof *got) != 0) {
            char a[4096], b[4096];
            fmt_ids(a, sizeof a, want, n_want);
            fmt_ids(b, sizeof b, got, n_got);
            fprintf(stderr, "%s vector %d: '%s'\n  expected:%s\n  got:     %s\n", name, n_str, s, a, b);
            n_bad++;
        }
        /* SPM with byte fallback and a space prefix: llama_detokenize gives the text back. */
        size_t n_text;
        char *text = detok(x.v, got, n_got, false, &n_text);
        if (n_text != strlen(s) || memcmp(text, s, n_text) != 0) {
            fprintf(stderr, "%s vector %d: round trip '%s' -> '%s'\n", name, n_str, s, text);
            n_rt_bad++;
        }
        free(text);
        free(got);
        s = end ? end + strlen(SEP) : s + strlen(s);
    }
    ck_assert_msg(n_str > 0, "%s: no vectors", name);
    ck_assert_msg(*line == 0, "%s: .out has more lines than .inp has strings", name);
    ck_assert_msg(n_bad == 0, "%s: %d of %d vectors differ (see stderr)", name, n_bad, n_str);
    ck_assert_msg(n_rt_bad == 0, "%s: %d of %d round trips differ", name, n_rt_bad, n_str);
    free(inp);
    free(outp);
    vocab_close(&x);
}

static const char *const vocab_names[] = {
    "llama-spm", "phi-3", "gemma-3", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm",
    "deepseek-coder", "falcon", "mpt", "starcoder", "refact",
};
#define N_VOCABS ((int)(sizeof vocab_names / sizeof vocab_names[0]))

START_TEST(vectors) { run_vectors(vocab_names[_i]); }
END_TEST

/* The vocabulary view agrees with the tokenizer's own answers for every id of every vocabulary:
 * bytes = tok_piece_bytes(special = true), flags = the token's type and end-of-generation set,
 * byte tokens are exactly their one byte. */
START_TEST(vocab_view)
{
    char rel[256];
    struct vocab x;
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", vocab_names[_i]);
    vocab_open(&x, rel);
    const struct vocab_view *vv = tok_view(x.v);
    ck_assert_ptr_nonnull(vv);
    ck_assert_uint_eq(vv->n_vocab, tok_n_vocab(x.v));
    ck_assert_int_eq(vv->bos, tok_bos(x.v));
    ck_assert_int_eq(vv->eos, tok_eos(x.v));
    char buf[4096];
    uint32_t n_eog = 0, n_byte = 0;
    for (uint32_t id = 0; id < vv->n_vocab; id++) {
        size_t len, want = tok_piece_bytes(x.v, (int32_t)id, true, buf, sizeof buf);
        const char *b = vocab_bytes(vv, (int32_t)id, &len);
        ck_assert_msg(len == want && memcmp(b, buf, len) == 0, "%s id %u: view bytes differ", rel, id);
        unsigned f = vocab_flags(vv, (int32_t)id);
        ck_assert_msg(!!(f & VOCAB_EOG) == tok_is_eog(x.v, (int32_t)id), "%s id %u: EOG flag", rel, id);
        int ty = tok_token_type(x.v, (int32_t)id);
        if (ty == TOK_T_CONTROL) ck_assert_msg(f & VOCAB_CONTROL, "%s id %u: control flag", rel, id);
        if (f & VOCAB_BYTE) {
            ck_assert_msg(len == 1, "%s id %u: byte token of %zu bytes", rel, id, len);
            n_byte++;
        }
        n_eog += !!(f & VOCAB_EOG);
    }
    ck_assert_msg(n_eog > 0, "%s: no end-of-generation token in the view", rel);
    ck_assert_ptr_null(vocab_bytes(vv, -1, &(size_t){0}));
    ck_assert_ptr_null(vocab_bytes(vv, (int32_t)vv->n_vocab, &(size_t){0}));
    if (!strcmp(vocab_names[_i], "llama-spm")) ck_assert_uint_eq(n_byte, 256);
    vocab_close(&x);
}
END_TEST

/* ---- stories260K against the reference JSON ---- */

static void hex_of(char *buf, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) sprintf(buf + 2 * i, "%02x", (unsigned char)s[i]);
    buf[2 * n] = 0;
}

static void check_ids(json_t *arr, const int32_t *ids, size_t n, const char *what)
{
    ck_assert_msg(json_is_array(arr), "%s: not an array", what);
    ck_assert_msg(json_array_size(arr) == n, "%s: %zu ids, expected %zu", what, n, json_array_size(arr));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(json_integer_value(json_array_get(arr, i)) == ids[i], "%s[%zu]: %d, expected %lld",
                      what, i, ids[i], (long long)json_integer_value(json_array_get(arr, i)));
}

/* Each token's piece (special = true) as hex, like llama_token_to_piece in the JSON. */
static void check_pieces(const struct tok_vocab *v, json_t *hexes, json_t *ids, const char *what)
{
    for (size_t i = 0; i < json_array_size(ids); i++) {
        char piece[256], hx[520];
        int32_t id = (int32_t)json_integer_value(json_array_get(ids, i));
        size_t n = tok_piece_bytes(v, id, true, piece, sizeof piece);
        hex_of(hx, piece, n);
        ck_assert_msg(strcmp(hx, json_string_value(json_array_get(hexes, i))) == 0,
                      "%s piece %zu (id %d): %s, expected %s", what, i, id, hx,
                      json_string_value(json_array_get(hexes, i)));
    }
}

START_TEST(stories_prompts)
{
    struct vocab x;
    vocab_open(&x, "models/stories260K-F32.gguf");
    char rel[128];
    snprintf(rel, sizeof rel, "prompts/p%d.txt", _i);
    size_t len;
    char *prompt = tutil_read(tutil_shared(rel), &len);
    ck_assert_ptr_nonnull(prompt);
    snprintf(rel, sizeof rel, "expected/stories260K-F32.p%d.json", _i);
    json_error_t je;
    json_t *root = json_load_file(tutil_shared(rel), 0, &je);
    ck_assert_msg(root != NULL, "%s: %s", rel, je.text);

    ck_assert(tok_add_bos(x.v));
    size_t n;
    int32_t *ids = encode(x.v, prompt, len, tok_add_bos(x.v), false, &n);
    check_ids(json_object_get(root, "prompt_tokens"), ids, n, rel);
    if (_i == 0) {
        static const int32_t p0[] = {1, 403, 407, 261, 378};
        ck_assert_uint_eq(n, 5);
        ck_assert_mem_eq(ids, p0, sizeof p0);
    }
    check_pieces(x.v, json_object_get(root, "prompt_pieces_hex"), json_object_get(root, "prompt_tokens"),
                 "prompt");

    /* greedy.text is llama_detokenize of the greedy tokens (first leading space dropped). */
    json_t *greedy = json_object_get(root, "greedy"), *gt = json_object_get(greedy, "tokens");
    check_pieces(x.v, json_object_get(greedy, "pieces_hex"), gt, "greedy");
    int32_t g[64];
    size_t ng = json_array_size(gt);
    ck_assert_uint_le(ng, 64);
    for (size_t i = 0; i < ng; i++) g[i] = (int32_t)json_integer_value(json_array_get(gt, i));
    char *text = detok(x.v, g, ng, false, NULL);
    ck_assert_str_eq(text, json_string_value(json_object_get(greedy, "text")));
    for (size_t i = 0; i < ng; i++) ck_assert(tok_is_eog(x.v, g[i]) == json_is_true(json_array_get(json_object_get(greedy, "is_eog"), i)));

    free(text);
    free(ids);
    free(prompt);
    json_decref(root);
    vocab_close(&x);
}
END_TEST

/* ---- special tokens, flags ---- */

START_TEST(flags_and_special)
{
    struct vocab x;
    vocab_open(&x, "models/stories260K-F32.gguf");
    const struct tok_vocab *v = x.v;
    ck_assert_uint_eq(tok_n_vocab(v), 512);
    ck_assert_str_eq(tok_model_name(v), "llama");
    ck_assert_int_eq(tok_bos(v), 1);
    ck_assert_int_eq(tok_eos(v), 2);
    ck_assert(tok_add_bos(v) && !tok_add_eos(v));
    ck_assert(tok_is_eog(v, 2) && !tok_is_eog(v, 1) && !tok_is_eog(v, 0) && !tok_is_eog(v, 400));
    ck_assert(!tok_is_eog(v, -1) && !tok_is_eog(v, 512));
    ck_assert_int_eq(tok_token_type(v, 1), TOK_T_CONTROL);
    ck_assert_int_eq(tok_token_type(v, 0), TOK_T_UNKNOWN);
    ck_assert_int_eq(tok_token_type(v, 3), TOK_T_BYTE);
    ck_assert_int_eq(tok_token_type(v, 300), TOK_T_NORMAL);
    ck_assert_int_eq(tok_token_type(v, 512), -1);
    size_t len;
    ck_assert_str_eq(tok_piece_raw(v, 126, &len), "<0x7B>");
    ck_assert_uint_eq(len, 6);

    size_t n;
    int32_t *ids = encode(v, "<s>", 3, false, true, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 1);
    free(ids);
    ids = encode(v, "<s>", 3, false, false, &n);
    ck_assert_uint_gt(n, 1);
    for (size_t i = 0; i < n; i++) ck_assert_int_ne(ids[i], 1);
    char *text = detok(v, ids, n, false, NULL);
    ck_assert_str_eq(text, "<s>");
    free(text);
    free(ids);
    /* After a special token the next text fragment gets the space prefix again. */
    size_t n2;
    int32_t *a = encode(v, "<s>Once upon</s>", 16, false, true, &n);
    int32_t *b = encode(v, "Once upon", 9, false, false, &n2);
    ck_assert_uint_eq(n, n2 + 2);
    ck_assert_int_eq(a[0], 1);
    ck_assert_mem_eq(a + 1, b, n2 * sizeof *b);
    ck_assert_int_eq(a[n - 1], 2);
    text = detok(v, a, n, false, NULL);
    ck_assert_str_eq(text, " Once upon"); /* BOS took the first-token strip */
    free(text);
    text = detok(v, a, n, true, NULL);
    ck_assert_str_eq(text, "<s> Once upon</s>");
    free(text);
    free(a);
    free(b);

    char buf[16];
    ck_assert_uint_eq(tok_piece_bytes(v, 1, false, buf, sizeof buf), 0);
    ck_assert_uint_eq(tok_piece_bytes(v, 1, true, buf, sizeof buf), 3);
    ck_assert_uint_eq(tok_piece_bytes(v, 126, false, buf, sizeof buf), 1);
    ck_assert_int_eq(buf[0], '{');
    ck_assert_uint_eq(tok_piece_bytes(v, 403, false, buf, 2), 2); /* " Once" cut to cap */
    ck_assert_mem_eq(buf, " O", 2);
    ck_assert_uint_eq(tok_piece_bytes(v, 9999, true, buf, sizeof buf), 0);

    /* Empty text: only BOS when asked. Too small an output: ERR_LIMIT with the size needed. */
    int32_t out[8];
    ck_assert_int_eq(tok_encode(v, "", 0, true, false, out, 8, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(tok_encode(v, NULL, 0, false, false, out, 8, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tok_encode(v, "Once upon a time", 16, true, false, out, 2, &n), ERR_LIMIT);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(out[0], 1);
    vocab_close(&x);
}
END_TEST

START_TEST(phi3_special)
{
    struct vocab x;
    vocab_open(&x, "vocab/ggml-vocab-phi-3.gguf");
    const struct tok_vocab *v = x.v;
    ck_assert_int_eq(tok_bos(v), 1);
    ck_assert_int_eq(tok_eos(v), 32000);
    /* EOG: eos, and the texts llama.cpp recognises (<|end|>, </s>). */
    ck_assert(tok_is_eog(v, 32000) && tok_is_eog(v, 32007) && tok_is_eog(v, 2));
    ck_assert(!tok_is_eog(v, 32001) && !tok_is_eog(v, 1));
    /* Phi-3: special tokens eat the whitespace after them. */
    static const char chat[] = "<|user|>\nHello<|end|>\n<|assistant|>\n";
    size_t n;
    int32_t *ids = encode(v, chat, strlen(chat), true, true, &n);
    static const int32_t want[] = {1, 32010, 15043, 32007, 32001};
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(ids, want, sizeof want);
    free(ids);
    /* Without parse_special the markers are plain text, </s> included (it is made CONTROL). */
    ids = encode(v, "a</s>b", 6, false, false, &n);
    for (size_t i = 0; i < n; i++) ck_assert(ids[i] < 32000 && ids[i] != 2);
    char *text = detok(v, ids, n, false, NULL);
    ck_assert_str_eq(text, "a</s>b");
    free(text);
    free(ids);
    vocab_close(&x);
}
END_TEST

/* ---- streaming detokenizer and UTF-8 ---- */

START_TEST(detok_utf8)
{
    struct vocab x;
    vocab_open(&x, "models/stories260K-F32.gguf");
    const struct tok_vocab *v = x.v;
    /* "ж₽🦙" has no pieces in a 512 vocab: all byte tokens, never emitted half. */
    static const char s[] = "\xd0\xb6\xe2\x82\xbd\xf0\x9f\xa6\x99";
    size_t n;
    int32_t *ids = encode(v, s, strlen(s), false, false, &n);
    ck_assert_uint_eq(n, 1 + 9); /* "▁" prefix then 9 bytes */
    struct tok_detok d;
    tok_detok_init(&d, v);
    char out[256];
    ck_assert_uint_eq(tok_detok_push(&d, v, ids[0], out, sizeof out), 0); /* the dropped space */
    static const size_t emit_after[9] = {0, 2, 0, 0, 3, 0, 0, 0, 4};
    for (size_t i = 1; i < n; i++) {
        ck_assert_int_eq(tok_token_type(v, ids[i]), TOK_T_BYTE);
        size_t k = tok_detok_push(&d, v, ids[i], out, sizeof out);
        ck_assert_uint_eq(k, emit_after[i - 1]);
    }
    ck_assert_mem_eq(out, "\xf0\x9f\xa6\x99", 4);
    ck_assert_uint_eq(tok_detok_flush(&d, out, sizeof out), 0);
    free(ids);

    /* Invalid bytes: one U+FFFD per byte that starts no valid sequence. */
    struct {
        const char *in, *want;
    } cases[] = {
        {"\xff", "\xef\xbf\xbd"},
        {"\xe2\x41", "\xef\xbf\xbd" "A"},
        {"\xe2\x82\x41", "\xef\xbf\xbd\xef\xbf\xbd" "A"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},         /* overlong */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},         /* cut off: flushed */
        {"a\xf0\x9f\xa6", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t bt[8];
        size_t nb = strlen(cases[c].in);
        for (size_t i = 0; i < nb; i++) bt[i] = 3 + (unsigned char)cases[c].in[i]; /* <0xHH> */
        char *text = detok(v, bt, nb, false, NULL);
        ck_assert_msg(strcmp(text, cases[c].want) == 0, "case %zu", c);
        free(text);
    }
    /* The leading-space drop applies to the first token only, and not at all without it. */
    int32_t sp[2] = {3 + ' ', 3 + ' '};
    char *text = detok(v, sp, 2, false, NULL);
    ck_assert_str_eq(text, " ");
    free(text);
    vocab_close(&x);
}
END_TEST

/* Merging is a heap, not a rescan: 1 MiB with no spaces (one fragment; for Gemma's BPE one
 * single word, as it splits only at newlines) stays fast, and round-trips.
 * LMPIPE_TEST_QUICK=1 (.ci/cross: qemu-user, 10-50x slower): 256 KiB, the same case at a quarter
 * of the size; a quadratic rescan would still blow the limit (one 256 KiB word: ~3e10 steps). */
static const char *const long_vocabs[] = {"llama-spm", "llama-bpe", "gemma-3", "deepseek-llm"};
START_TEST(long_input)
{
    struct vocab x;
    char rel[128];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", long_vocabs[_i]);
    vocab_open(&x, rel);
    const char *quick = getenv("LMPIPE_TEST_QUICK");
    size_t len = quick && !strcmp(quick, "1") ? 1 << 18 : 1 << 20;
    char *s = malloc(len);
    uint32_t r = 1;
    for (size_t i = 0; i < len; i++) {
        r = r * 1103515245u + 12345u;
        s[i] = "abcdefghijklmnopqrstuvwxyz.,;"[(r >> 16) % 29];
    }
    clock_t t0 = clock();
    size_t n;
    int32_t *ids = encode(x.v, s, len, false, false, &n);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    ck_assert_msg(secs < 10.0, "%s: %zu KiB took %.1f s", long_vocabs[_i], len >> 10, secs);
    char *text = detok(x.v, ids, n, false, NULL);
    ck_assert(strlen(text) == len && memcmp(text, s, len) == 0);
    free(text);
    free(ids);
    free(s);
    vocab_close(&x);
}
END_TEST

/* ---- metadata built in memory ---- */

struct gb {
    uint8_t buf[8192];
    size_t n;
    uint64_t n_kv;
};

static void gb_raw(struct gb *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->n + n, sizeof b->buf);
    memcpy(b->buf + b->n, p, n);
    b->n += n;
}
static void gb_u32(struct gb *b, uint32_t v) { gb_raw(b, &v, 4); }
static void gb_u64(struct gb *b, uint64_t v) { gb_raw(b, &v, 8); }
static void gb_str(struct gb *b, const char *s)
{
    gb_u64(b, strlen(s));
    gb_raw(b, s, strlen(s));
}
static void gb_key(struct gb *b, const char *k, uint32_t type)
{
    gb_str(b, k);
    gb_u32(b, type);
    b->n_kv++;
}
static void gb_kv_str(struct gb *b, const char *k, const char *v)
{
    gb_key(b, k, GGUF_VT_STRING);
    gb_str(b, v);
}
static void gb_kv_u32(struct gb *b, const char *k, uint32_t v)
{
    gb_key(b, k, GGUF_VT_UINT32);
    gb_u32(b, v);
}
static void gb_kv_bool(struct gb *b, const char *k, bool v)
{
    gb_key(b, k, GGUF_VT_BOOL);
    uint8_t c = v;
    gb_raw(b, &c, 1);
}
static void gb_kv_strs(struct gb *b, const char *k, const char *const *s, size_t n)
{
    gb_key(b, k, GGUF_VT_ARRAY);
    gb_u32(b, GGUF_VT_STRING);
    gb_u64(b, n);
    for (size_t i = 0; i < n; i++) gb_str(b, s[i]);
}
static void gb_kv_arr32(struct gb *b, const char *k, uint32_t et, const void *p, size_t n)
{
    gb_key(b, k, GGUF_VT_ARRAY);
    gb_u32(b, et);
    gb_u64(b, n);
    gb_raw(b, p, 4 * n);
}

/* The vocab under test: 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 a, 5 b, 6 ab, 7 ▁a, 8 <0x41>. */
enum { M_MODEL = 1, M_TOKENS = 2, M_SCORES = 4, M_TYPES = 8 };
struct meta {
    unsigned omit;              /* M_* to leave out */
    const char *model;          /* default "llama" */
    const char *const *tokens;  /* default the 9 above */
    size_t n_tok;
    float s_ab, s_pa;           /* scores of "ab" and "▁a" */
    size_t n_scores;            /* 0: n_tok */
    uint32_t types_et;          /* 0: INT32 */
    int32_t bad_type_at, bad_type; /* type override for one id, when bad_type != 0 */
    const char *extra_u32_key;
    uint32_t extra_u32;
    const char *extra_str_key;  /* a string value where a number belongs */
    int add_bos;                /* 0: key absent, 1: true, 2: false */
    const char *false_key;      /* a bool key set to false */
};

static const char *const tiny[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "ab", "\342\226\201a", "<0x41>"};

static int build_and_load(const struct meta *m, struct tok_vocab **v, struct gguf_ctx *g, struct err_info *ei)
{
    static struct gb b;
    memset(&b, 0, sizeof b);
    const char *const *tk = m->tokens ? m->tokens : tiny;
    size_t n = m->tokens ? m->n_tok : 9;
    float sc[64] = {0};
    int32_t ty[64];
    for (size_t i = 0; i < n; i++) ty[i] = i == 0 ? 2 : i < 3 ? 3 : (!m->tokens && i == 8) ? 6 : 1;
    if (!m->tokens) {
        sc[6] = m->s_ab;
        sc[7] = m->s_pa;
    }
    if (m->bad_type) ty[m->bad_type_at] = m->bad_type;
    size_t kv_at;
    gb_u32(&b, GGUF_MAGIC);
    gb_u32(&b, 3);
    gb_u64(&b, 0);
    kv_at = b.n;
    gb_u64(&b, 0);
    gb_kv_str(&b, "general.architecture", "llama");
    if (!(m->omit & M_MODEL)) gb_kv_str(&b, "tokenizer.ggml.model", m->model ? m->model : "llama");
    if (!(m->omit & M_TOKENS)) gb_kv_strs(&b, "tokenizer.ggml.tokens", tk, n);
    if (!(m->omit & M_SCORES)) gb_kv_arr32(&b, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, sc, m->n_scores ? m->n_scores : n);
    if (!(m->omit & M_TYPES)) gb_kv_arr32(&b, "tokenizer.ggml.token_type", m->types_et ? m->types_et : GGUF_VT_INT32, ty, n);
    if (m->extra_u32_key) gb_kv_u32(&b, m->extra_u32_key, m->extra_u32);
    if (m->extra_str_key) gb_kv_str(&b, m->extra_str_key, "1");
    if (m->false_key) gb_kv_bool(&b, m->false_key, false);
    if (m->add_bos) gb_kv_bool(&b, "tokenizer.ggml.add_bos_token", m->add_bos == 1);
    memcpy(b.buf + kv_at, &b.n_kv, 8);
    while (b.n % 32) b.buf[b.n++] = 0;
    err_clear(ei);
    int rc = gguf_parse(b.buf, b.n, g, ei);
    ck_assert_msg(rc == 0, "test GGUF does not parse: %s", ei->msg);
    *v = NULL;
    rc = tok_load(v, g, ei);
    if (rc) {
        ck_assert_ptr_null(*v);
        ck_assert_int_eq(ei->code, rc);
        ck_assert_msg(ei->msg[0] != 0, "no message for error %d", rc);
    }
    return rc;
}

static int load_err(const struct meta *m, const char *needle)
{
    struct tok_vocab *v;
    struct gguf_ctx g;
    struct err_info ei;
    int rc = build_and_load(m, &v, &g, &ei);
    if (needle) ck_assert_msg(strstr(ei.msg, needle) != NULL, "message '%s' lacks '%s'", ei.msg, needle);
    tok_free(v);
    gguf_free(&g);
    return rc;
}

START_TEST(bad_metadata)
{
    static const char *const dup[] = {"<unk>", "<s>", "</s>", "a", "a"};
    static const char *const badbyte[] = {"<unk>", "<s>", "</s>", "<0xZZ>"};
    static const char *const one[] = {"<unk>"};
    ck_assert_int_eq(load_err(&(struct meta){.omit = M_MODEL}, "tokenizer.ggml.model"), ERR_NOT_FOUND);
    ck_assert_int_eq(load_err(&(struct meta){.model = "gpt2"}, "merges"), ERR_NOT_FOUND);
    ck_assert_int_eq(load_err(&(struct meta){.model = "gemma4"}, "merges"), ERR_NOT_FOUND);
    ck_assert_int_eq(load_err(&(struct meta){.model = "xyzzy"}, "xyzzy"), ERR_UNSUPPORTED);
    ck_assert_int_eq(load_err(&(struct meta){.omit = M_TOKENS}, "tokens"), ERR_NOT_FOUND);
    ck_assert_int_eq(load_err(&(struct meta){.omit = M_SCORES}, "scores"), ERR_NOT_FOUND);
    ck_assert_int_eq(load_err(&(struct meta){.omit = M_TYPES}, "token_type"), ERR_NOT_FOUND);
    ck_assert_int_eq(load_err(&(struct meta){.n_scores = 8}, "scores"), ERR_SHAPE);
    ck_assert_int_eq(load_err(&(struct meta){.types_et = GGUF_VT_FLOAT32}, "token_type"), ERR_BAD_TYPE);
    ck_assert_int_eq(load_err(&(struct meta){.bad_type_at = 5, .bad_type = 9}, "type 9"), ERR_RANGE);
    ck_assert_int_eq(load_err(&(struct meta){.bad_type_at = 5, .bad_type = -1}, "type -1"), ERR_RANGE);
    ck_assert_int_eq(load_err(&(struct meta){.tokens = dup, .n_tok = 5}, "duplicate"), ERR_DUPLICATE);
    ck_assert_int_eq(load_err(&(struct meta){.tokens = badbyte, .n_tok = 4, .bad_type_at = 3, .bad_type = 6},
                              "<0xZZ>"), ERR_INVALID);
    ck_assert_int_eq(load_err(&(struct meta){.tokens = one, .n_tok = 0}, "0 tokens"), ERR_LIMIT);
    /* One token: the default BOS (1) is out of range, yet add_bos defaults to true. */
    ck_assert_int_eq(load_err(&(struct meta){.tokens = one, .n_tok = 1}, "bos"), ERR_INVALID);
    ck_assert_int_eq(load_err(&(struct meta){.tokens = one, .n_tok = 1, .add_bos = 2}, NULL), 0);
    ck_assert_int_eq(load_err(&(struct meta){.extra_str_key = "tokenizer.ggml.bos_token_id"}, "bos_token_id"),
                     ERR_BAD_TYPE);
    ck_assert_int_eq(load_err(&(struct meta){.extra_str_key = "tokenizer.ggml.add_eos_token"}, "add_eos"),
                     ERR_BAD_TYPE);
    /* Out-of-range ids are ignored without error, as llama.cpp does. */
    ck_assert_int_eq(load_err(&(struct meta){.extra_u32_key = "tokenizer.ggml.eot_token_id", .extra_u32 = 0xFFFFFFFFu}, NULL), 0);
    ck_assert_int_eq(load_err(&(struct meta){.extra_u32_key = "tokenizer.ggml.bos_token_id", .extra_u32 = 9}, NULL), 0);
}
END_TEST

START_TEST(tiny_merges)
{
    struct tok_vocab *v;
    struct gguf_ctx g;
    struct err_info ei;
    int32_t out[16];
    size_t n;
    /* "ab" -> "▁ab": pairs (▁,a) and (a,b); the better score merges first, ties go left. */
    struct {
        float s_ab, s_pa;
        int32_t want[2];
    } c[] = {{-1, -2, {3, 6}}, {-2, -1, {7, 5}}, {-1, -1, {7, 5}}};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(build_and_load(&(struct meta){.s_ab = c[i].s_ab, .s_pa = c[i].s_pa}, &v, &g, &ei), 0);
        ck_assert_int_eq(tok_encode(v, "ab", 2, false, false, out, 16, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(out[0], c[i].want[0]);
        ck_assert_int_eq(out[1], c[i].want[1]);
        if (i == 0) {
            /* 'A' has <0x41>; 'é' has no byte token: <unk> per byte. */
            ck_assert_int_eq(tok_encode(v, "A\xc3\xa9", 3, true, false, out, 16, &n), 0);
            static const int32_t want[] = {1, 3, 8, 0, 0};
            ck_assert_uint_eq(n, 5);
            ck_assert_mem_eq(out, want, sizeof want);
            ck_assert_int_eq(tok_encode(v, "ab", 2, false, false, out, 16, &n), 0);
            char *text = detok(v, out, n, false, NULL);
            ck_assert_str_eq(text, "ab");
            free(text);
            /* parse_special: "<unk>" is UNKNOWN, recognised only when asked. */
            ck_assert_int_eq(tok_encode(v, "<unk>", 5, false, true, out, 16, &n), 0);
            ck_assert_uint_eq(n, 1);
            ck_assert_int_eq(out[0], 0);
        }
        tok_free(v);
        gguf_free(&g);
    }
    /* add_space_prefix = false: no "▁" before the text, no space dropped when decoding. */
    ck_assert_int_eq(build_and_load(&(struct meta){.s_ab = -1, .s_pa = -2,
                                                   .false_key = "tokenizer.ggml.add_space_prefix"}, &v, &g, &ei), 0);
    ck_assert_int_eq(tok_encode(v, "ab", 2, false, false, out, 16, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0], 6);
    out[0] = 3, out[1] = 6;
    char *text = detok(v, out, 2, false, NULL);
    ck_assert_str_eq(text, " ab");
    free(text);
    tok_free(v);
    gguf_free(&g);
    ck_assert_int_eq(tok_encode(NULL, "a", 1, false, false, out, 16, &n), ERR_INVALID);
}
END_TEST

/* ---- BPE: special tokens, flags, end of generation, printed pieces ---- */

START_TEST(bpe_flags_and_eog)
{
    struct vocab x;
    vocab_open(&x, "vocab/ggml-vocab-qwen2.gguf");
    const struct tok_vocab *v = x.v;
    ck_assert_str_eq(tok_model_name(v), "gpt2");
    ck_assert(!tok_add_bos(v) && !tok_add_eos(v));
    ck_assert_int_eq(tok_bos(v), 151643);
    ck_assert_int_eq(tok_eos(v), 151645);
    /* eos <|im_end|>, <|endoftext|> by text, and the FIM pad/repo/file-separator slots. */
    static const int32_t eog[] = {151643, 151645, 151662, 151663, 151664};
    for (size_t i = 0; i < sizeof eog / sizeof eog[0]; i++) ck_assert_msg(tok_is_eog(v, eog[i]), "id %d", eog[i]);
    ck_assert(!tok_is_eog(v, 151644) && !tok_is_eog(v, 151659) && !tok_is_eog(v, 9707));
    ck_assert_int_eq(tok_token_type(v, 151644), TOK_T_CONTROL);
    vocab_close(&x);

    vocab_open(&x, "vocab/ggml-vocab-llama-bpe.gguf");
    v = x.v;
    ck_assert(tok_add_bos(v));
    ck_assert_int_eq(tok_bos(v), 128000);
    ck_assert_int_eq(tok_eos(v), 128001);
    ck_assert(tok_is_eog(v, 128001) && tok_is_eog(v, 128009));
    ck_assert(!tok_is_eog(v, 128000) && !tok_is_eog(v, 128006) && !tok_is_eog(v, 128007));
    vocab_close(&x);

    vocab_open(&x, "vocab/ggml-vocab-gpt-2.gguf");
    ck_assert(!tok_add_bos(x.v));
    ck_assert_int_eq(tok_bos(x.v), 50256);
    ck_assert(tok_is_eog(x.v, 50256) && !tok_is_eog(x.v, 995));
    vocab_close(&x);

    /* Gemma: "gemma4" BPE; add_bos is forced on as llama.cpp does, whatever the file says. */
    vocab_open(&x, "vocab/ggml-vocab-gemma-3.gguf");
    v = x.v;
    ck_assert_str_eq(tok_model_name(v), "gemma4");
    ck_assert(tok_add_bos(v));
    ck_assert_int_eq(tok_bos(v), 2);
    ck_assert_int_eq(tok_eos(v), 106);
    ck_assert(tok_is_eog(v, 106) && tok_is_eog(v, 1) && !tok_is_eog(v, 105) && !tok_is_eog(v, 2));
    vocab_close(&x);
}
END_TEST

START_TEST(bpe_special)
{
    struct vocab x;
    vocab_open(&x, "vocab/ggml-vocab-qwen2.gguf");
    const struct tok_vocab *v = x.v;
    static const char chat[] = "<|im_start|>user\nHello<|im_end|>\n";
    size_t n;
    int32_t *ids = encode(v, chat, strlen(chat), false, true, &n);
    static const int32_t want[] = {151644, 872, 198, 9707, 151645, 198};
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(ids, want, sizeof want);
    char *text = detok(v, ids, n, true, NULL);
    ck_assert_str_eq(text, chat);
    free(text);
    text = detok(v, ids, n, false, NULL); /* control tokens print nothing by default */
    ck_assert_str_eq(text, "user\nHello\n");
    free(text);
    free(ids);
    /* Without parse_special the markers are text: no control id, and the text comes back. */
    ids = encode(v, chat, strlen(chat), false, false, &n);
    ck_assert_uint_gt(n, 6);
    for (size_t i = 0; i < n; i++) ck_assert_int_lt(ids[i], 151643);
    text = detok(v, ids, n, false, NULL);
    ck_assert_str_eq(text, chat);
    free(text);
    free(ids);
    /* add_bos: the caller asked, the vocabulary has one. */
    ids = encode(v, "Hello", 5, true, false, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 151643);
    ck_assert_int_eq(ids[1], 9707);
    free(ids);
    vocab_close(&x);

    vocab_open(&x, "vocab/ggml-vocab-llama-bpe.gguf");
    static const char hdr[] = "<|start_header_id|>user<|end_header_id|>\n\nHello world<|eot_id|>";
    ids = encode(x.v, hdr, strlen(hdr), true, true, &n);
    static const int32_t want3[] = {128000, 128006, 882, 128007, 271, 9906, 1917, 128009};
    ck_assert_uint_eq(n, 8);
    ck_assert_mem_eq(ids, want3, sizeof want3);
    free(ids);
    vocab_close(&x);

    /* MPT: user-defined tokens (runs of spaces) are cut out even without parse_special. */
    vocab_open(&x, "vocab/ggml-vocab-mpt.gguf");
    ids = encode(x.v, "a    b", 6, false, false, &n);
    bool user = false;
    for (size_t i = 0; i < n; i++) user = user || tok_token_type(x.v, ids[i]) == TOK_T_USER_DEFINED;
    ck_assert(user);
    text = detok(x.v, ids, n, false, NULL);
    ck_assert_str_eq(text, "a    b");
    free(text);
    free(ids);
    vocab_close(&x);
}
END_TEST

START_TEST(bpe_pieces)
{
    struct vocab x;
    vocab_open(&x, "vocab/ggml-vocab-qwen2.gguf");
    const struct tok_vocab *v = x.v;
    char buf[64];
    size_t len;
    /* Byte-level: the stored text is mapped chars, the piece is bytes. */
    ck_assert_str_eq(tok_piece_raw(v, 11162, &len), "\xc4\xa0\xc3\xb0\xc5\x81"); /* "ĠðŁ" */
    ck_assert_uint_eq(tok_piece_bytes(v, 11162, false, buf, sizeof buf), 3);
    ck_assert_mem_eq(buf, " \xf0\x9f", 3);
    ck_assert_uint_eq(tok_piece_bytes(v, 151644, false, buf, sizeof buf), 0);
    ck_assert_uint_eq(tok_piece_bytes(v, 151644, true, buf, sizeof buf), 12);
    /* " 🦙" is three tokens; the stream holds the emoji until its last byte arrives. */
    size_t n;
    int32_t *ids = encode(v, " \xf0\x9f\xa6\x99", 5, false, false, &n);
    static const int32_t want[] = {11162, 99, 247};
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(ids, want, sizeof want);
    struct tok_detok d;
    tok_detok_init(&d, v);
    char out[256];
    ck_assert_uint_eq(tok_detok_push(&d, v, ids[0], out, sizeof out), 1);
    ck_assert_int_eq(out[0], ' ');
    ck_assert_uint_eq(tok_detok_push(&d, v, ids[1], out, sizeof out), 0);
    ck_assert_uint_eq(tok_detok_push(&d, v, ids[2], out, sizeof out), 4);
    ck_assert_mem_eq(out, "\xf0\x9f\xa6\x99", 4);
    ck_assert_uint_eq(tok_detok_flush(&d, out, sizeof out), 0);
    free(ids);
    /* Invalid UTF-8 is read as U+FFFD before splitting, as llama.cpp does. */
    int32_t *a = encode(v, "a\xff" "b", 3, false, false, &n);
    size_t n2;
    int32_t *b = encode(v, "a\xef\xbf\xbd" "b", 5, false, false, &n2);
    ck_assert_uint_eq(n, n2);
    ck_assert_mem_eq(a, b, n * sizeof *a);
    free(a);
    free(b);
    vocab_close(&x);

    /* Gemma: spaces are U+2581 in the vocabulary; user-defined whitespace runs print as spaces
     * (llama.cpp would print the raw "▁▁", see tok.c), bytes of unknown chars as <0xHH>. */
    vocab_open(&x, "vocab/ggml-vocab-gemma-3.gguf");
    v = x.v;
    ids = encode(v, "Hello  world", 12, false, false, &n);
    static const int32_t want2[] = {9259, 138, 12392};
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(ids, want2, sizeof want2);
    ck_assert_int_eq(tok_token_type(v, 138), TOK_T_USER_DEFINED);
    char *text = detok(v, ids, n, false, NULL);
    ck_assert_str_eq(text, "Hello  world");
    free(text);
    free(ids);
    ck_assert_uint_eq(tok_piece_bytes(v, 138, false, buf, sizeof buf), 2);
    ck_assert_mem_eq(buf, "  ", 2);
    ck_assert_uint_eq(tok_piece_bytes(v, 12392, false, buf, sizeof buf), 5);
    ck_assert_mem_eq(buf, "world", 5);
    vocab_close(&x);
}
END_TEST

/* ---- BPE metadata built in memory ---- */

struct bmeta {
    const char *model;                 /* default "gpt2" */
    const char *pre;                   /* NULL: no key */
    bool pre_u32;                      /* pre as a number */
    const char *const *tokens;         /* default bpe_tokens */
    size_t n_tok;
    const char *const *merges;         /* default bpe_merges */
    size_t n_merges;
    bool no_merges, merges_i32;        /* leave the key out / give it INT32 elements */
    bool with_types;
};

/* Byte-level: "Ġ" is the mapped space. 0 a, 1 b, 2 c, 3 ab, 4 abc, 5 aa, 6 Ġ, 7 Ġb, 8 <|end|> */
static const char *const bpe_tokens[] = {"a", "b", "c", "ab", "abc", "aa", "\xc4\xa0", "\xc4\xa0\x62", "<|end|>"};
/* Ranks: "a b" 0, "ab c" 1, "c c" 2 (no token "cc"), "x y" (parts no tokens: skipped), "nospace"
 * (skipped), "a a" 5, "a b" again (keeps rank 0), "Ġ b" 7. */
static const char *const bpe_merges[] = {"a b", "ab c", "c c", "x y", "nospace", "a a", "a b", "\xc4\xa0 b"};

static int build_bpe(const struct bmeta *m, struct tok_vocab **v, struct gguf_ctx *g, struct err_info *ei)
{
    static struct gb b;
    memset(&b, 0, sizeof b);
    const char *const *tk = m->tokens ? m->tokens : bpe_tokens;
    size_t n = m->tokens ? m->n_tok : sizeof bpe_tokens / sizeof bpe_tokens[0];
    const char *const *mg = m->merges ? m->merges : bpe_merges;
    size_t nm = m->merges ? m->n_merges : sizeof bpe_merges / sizeof bpe_merges[0];
    int32_t ty[16];
    for (size_t i = 0; i < n && i < 16; i++) ty[i] = strcmp(tk[i], "<|end|>") == 0 ? TOK_T_CONTROL : TOK_T_NORMAL;
    gb_u32(&b, GGUF_MAGIC);
    gb_u32(&b, 3);
    gb_u64(&b, 0);
    size_t kv_at = b.n;
    gb_u64(&b, 0);
    gb_kv_str(&b, "tokenizer.ggml.model", m->model ? m->model : "gpt2");
    if (m->pre) gb_kv_str(&b, "tokenizer.ggml.pre", m->pre);
    if (m->pre_u32) gb_kv_u32(&b, "tokenizer.ggml.pre", 7);
    gb_kv_strs(&b, "tokenizer.ggml.tokens", tk, n);
    if (m->with_types) gb_kv_arr32(&b, "tokenizer.ggml.token_type", GGUF_VT_INT32, ty, n);
    if (m->merges_i32) gb_kv_arr32(&b, "tokenizer.ggml.merges", GGUF_VT_INT32, ty, 2);
    else if (!m->no_merges) gb_kv_strs(&b, "tokenizer.ggml.merges", mg, nm);
    memcpy(b.buf + kv_at, &b.n_kv, 8);
    while (b.n % 32) b.buf[b.n++] = 0;
    err_clear(ei);
    int rc = gguf_parse(b.buf, b.n, g, ei);
    ck_assert_msg(rc == 0, "test GGUF does not parse: %s", ei->msg);
    *v = NULL;
    rc = tok_load(v, g, ei);
    if (rc) {
        ck_assert_ptr_null(*v);
        ck_assert_int_eq(ei->code, rc);
        ck_assert_msg(ei->msg[0] != 0, "no message for error %d", rc);
    }
    return rc;
}

static int bpe_err(const struct bmeta *m, const char *needle)
{
    struct tok_vocab *v;
    struct gguf_ctx g;
    struct err_info ei;
    int rc = build_bpe(m, &v, &g, &ei);
    if (needle) ck_assert_msg(strstr(ei.msg, needle) != NULL, "message '%s' lacks '%s'", ei.msg, needle);
    tok_free(v);
    gguf_free(&g);
    return rc;
}

START_TEST(bpe_bad_metadata)
{
    ck_assert_int_eq(bpe_err(&(struct bmeta){.no_merges = true}, "merges"), ERR_NOT_FOUND);
    ck_assert_int_eq(bpe_err(&(struct bmeta){.merges_i32 = true}, "merges"), ERR_BAD_TYPE);
    ck_assert_int_eq(bpe_err(&(struct bmeta){.pre = "no-such-pre"}, "no-such-pre"), ERR_UNSUPPORTED);
    ck_assert_int_eq(bpe_err(&(struct bmeta){.pre_u32 = true}, "tokenizer.ggml.pre"), ERR_BAD_TYPE);
    ck_assert_int_eq(bpe_err(&(struct bmeta){.model = "gemma4", .no_merges = true}, "merges"), ERR_NOT_FOUND);
    /* Every name of the list loads; no pre at all means "default". Llama 3 names turn
     * add_bos on by default, and this vocabulary has no BOS (the default 11 is out of range). */
    static const char *const pres[] = {"default", "gpt-2", "qwen2", "deepseek-llm", "deepseek-coder",
                                       "falcon", "mpt", "starcoder", "refact", "smollm"};
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++)
        ck_assert_int_eq(bpe_err(&(struct bmeta){.pre = pres[i], .with_types = true}, NULL), 0);
    ck_assert_int_eq(bpe_err(&(struct bmeta){.pre = "llama-bpe"}, "bos_token_id"), ERR_INVALID);
    ck_assert_int_eq(bpe_err(&(struct bmeta){0}, NULL), 0);
    /* Merges of any shape, empty strings included, never break loading or encoding. */
    static const char *const odd[] = {"", " ", "  ", "a ", " a", "a  b", "\xff \xfe", "a b c", "ab c"};
    struct tok_vocab *v;
    struct gguf_ctx g;
    struct err_info ei;
    ck_assert_int_eq(build_bpe(&(struct bmeta){.merges = odd, .n_merges = 9}, &v, &g, &ei), 0);
    int32_t out[16];
    size_t n;
    ck_assert_int_eq(tok_encode(v, "abc", 3, false, false, out, 16, &n), 0);
    ck_assert_uint_eq(n, 3); /* "a b" is not among them: no merge applies */
    tok_free(v);
    gguf_free(&g);
}
END_TEST

START_TEST(tiny_bpe)
{
    struct tok_vocab *v;
    struct gguf_ctx g;
    struct err_info ei;
    int32_t out[16];
    size_t n;
    ck_assert_int_eq(build_bpe(&(struct bmeta){.pre = "gpt-2", .with_types = true}, &v, &g, &ei), 0);
    struct {
        const char *in;
        size_t n;
        int32_t want[6];
    } c[] = {
        {"abc", 1, {4}},          /* a b -> ab, ab c -> abc */
        {"abcc", 2, {4, 2}},      /* "ab c" (rank 1) beats "c c" (rank 2) */
        {"cc", 2, {2, 2}},        /* "c c" makes "cc", no token: its bytes, one token each */
        {"aaa", 2, {5, 0}},       /* one pair, two places: the leftmost merges first */
        {"aab", 2, {0, 3}},       /* "a b" (rank 0) before "a a" (rank 5) */
        {"a b", 2, {0, 7}},       /* GPT-2 split: "a", " b"; the space is "Ġ" */
        {"a<|end|>", 2, {0, 8}},  /* parse_special on below */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ck_assert_int_eq(tok_encode(v, c[i].in, strlen(c[i].in), false, i == 6, out, 16, &n), 0);
        ck_assert_msg(n == c[i].n, "'%s': %zu tokens, expected %zu", c[i].in, n, c[i].n);
        ck_assert_msg(memcmp(out, c[i].want, n * sizeof *out) == 0, "'%s': wrong ids", c[i].in);
    }
    /* A byte with no token of its own (here 'z') is dropped, as llama.cpp does. */
    ck_assert_int_eq(tok_encode(v, "azb", 3, false, false, out, 16, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(out[1], 1);
    /* Defaults for "gpt2": BOS/EOS 11, out of range here; no BOS added. */
    ck_assert_int_eq(tok_bos(v), -1);
    ck_assert(!tok_add_bos(v));
    ck_assert_int_eq(tok_encode(v, "a", 1, true, false, out, 16, &n), ERR_STATE);
    /* <|end|> is EOG by its text. */
    ck_assert(tok_is_eog(v, 8) && !tok_is_eog(v, 0));
    tok_free(v);
    gguf_free(&g);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("tok");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, vectors, 0, N_VOCABS);
    tcase_add_loop_test(tc, vocab_view, 0, N_VOCABS);
    tcase_add_loop_test(tc, stories_prompts, 0, 3);
    tcase_add_loop_test(tc, long_input, 0, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("behaviour");
    tcase_set_timeout(tc, 60); /* loads real vocabularies (150k tokens): seconds under ASan on a busy machine */
    tcase_add_test(tc, flags_and_special);
    tcase_add_test(tc, phi3_special);
    tcase_add_test(tc, detok_utf8);
    tcase_add_test(tc, bad_metadata);
    tcase_add_test(tc, tiny_merges);
    tcase_add_test(tc, bpe_flags_and_eog);
    tcase_add_test(tc, bpe_special);
    tcase_add_test(tc, bpe_pieces);
    tcase_add_test(tc, bpe_bad_metadata);
    tcase_add_test(tc, tiny_bpe);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
