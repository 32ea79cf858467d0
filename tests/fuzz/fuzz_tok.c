/* fuzz_tok: libFuzzer harness for the tokenizer. Loads, once, from $LMPIPE_SHARED (default
 * ../shared) one vocabulary of each encoder: stories260K (SentencePiece), qwen2 (byte-level
 * BPE, Qwen2 pre-tokenizer), deepseek-llm (byte-level BPE, the longest list of splitting
 * passes) and gemma-3 ("gemma4" BPE: escaped spaces, <0xHH> fallback, no pre-splitting).
 * Each input is encoded by each with parse_special off and on, and the ids are streamed back
 * through the detokenizer. Besides memory errors it checks properties that must always hold:
 * every id is in range, the ERR_LIMIT retry reports a stable count, a push never writes more
 * than tok_detok_max, and valid UTF-8 decodes back to itself with parse_special off (for SPM
 * and gemma4 only without a literal U+2581, which they read as a space).
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -D_POSIX_C_SOURCE=200809L -Isrc \
 *          tests/fuzz/fuzz_tok.c src/tok/tok*.c src/tok/unicode_tab.c src/gguf/gguf.c \
 *          src/util/err.c src/util/util.c -lm -o fuzz_tok   (linking every module source works too) */
#include "gguf/gguf.h"
#include "tok/tok.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vocab_files[] = {
    "models/stories260K-F32.gguf",
    "vocab/ggml-vocab-qwen2.gguf",
    "vocab/ggml-vocab-deepseek-llm.gguf",
    "vocab/ggml-vocab-gemma-3.gguf",
};
#define N_VOCABS (sizeof vocab_files / sizeof vocab_files[0])

static struct gguf_ctx g_gguf[N_VOCABS];
static struct tok_vocab *g_vocab[N_VOCABS];

static void load_vocabs(void)
{
    static int tried;
    if (tried) return;
    tried = 1;
    const char *base = getenv("LMPIPE_SHARED");
    for (size_t k = 0; k < N_VOCABS; k++) {
        char path[1024];
        struct err_info ei;
        err_clear(&ei);
        snprintf(path, sizeof path, "%s/%s", base && *base ? base : "../shared", vocab_files[k]);
        if (gguf_open(path, &g_gguf[k], &ei) || tok_load(&g_vocab[k], &g_gguf[k], &ei)) {
            fprintf(stderr, "fuzz_tok: cannot load %s: %s\n", path, ei.msg);
            g_vocab[k] = NULL;
        }
    }
}

/* Strict UTF-8 (no overlong forms, surrogates, > U+10FFFF); *has_2581 tells whether U+2581
 * occurs, which SPM and gemma4 turn into a space on the way back. */
static int plain_utf8(const uint8_t *s, size_t n, int *has_2581)
{
    *has_2581 = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t l = c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
        if (!l || i + l > n) return 0;
        for (size_t k = 1; k < l; k++) {
            uint8_t lo = 0x80, hi = 0xbf, b = s[i + k];
            if (k == 1 && c == 0xe0) lo = 0xa0;
            if (k == 1 && c == 0xed) hi = 0x9f;
            if (k == 1 && c == 0xf0) lo = 0x90;
            if (k == 1 && c == 0xf4) hi = 0x8f;
            if (b < lo || b > hi) return 0;
        }
        if (l == 3 && c == 0xe2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) *has_2581 = 1;
        i += l;
    }
    return 1;
}

static void run(const struct tok_vocab *v, const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int has_2581, utf8 = plain_utf8(data, size, &has_2581);
    int byte_level = strcmp(tok_model_name(v), "gpt2") == 0;
    int must_round_trip = utf8 && (byte_level || !has_2581);
    for (int special = 0; special <= 1; special++) {
        size_t need = 0, n = 0;
        int32_t small[4];
        bool bos = special && tok_bos(v) >= 0;
        int rc = tok_encode(v, text, size, bos, special, small, 4, &need);
        if (rc != 0 && rc != ERR_LIMIT) __builtin_trap();
        int32_t *ids = malloc((need + 1) * sizeof *ids);
        if (!ids) return;
        if (tok_encode(v, text, size, bos, special, ids, need + 1, &n) != 0 || n != need) __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || (uint32_t)ids[i] >= tok_n_vocab(v)) __builtin_trap();

        size_t step = tok_detok_max(v), cap = 16 + n * step, w = 0;
        char *out = malloc(cap);
        if (!out) {
            free(ids);
            return;
        }
        struct tok_detok d;
        tok_detok_init(&d, v);
        d.special = special;
        for (size_t i = 0; i < n; i++) {
            size_t k = tok_detok_push(&d, v, ids[i], out + w, cap - w);
            if (k > step) __builtin_trap();
            w += k;
        }
        w += tok_detok_flush(&d, out + w, cap - w);
        if (!special && must_round_trip && (w != size || memcmp(out, data, size) != 0)) __builtin_trap();
        char piece[64];
        for (size_t i = 0; i < n; i++) (void)tok_piece_bytes(v, ids[i], special, piece, sizeof piece);
        free(out);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_vocabs();
    if (size > (1 << 16)) return 0;
    for (size_t k = 0; k < N_VOCABS; k++)
        if (g_vocab[k]) run(g_vocab[k], data, size);
    return 0;
}
