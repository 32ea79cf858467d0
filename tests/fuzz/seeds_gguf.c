/* seeds_gguf: writes the starting corpus for fuzz_gguf into a directory, at run time.
 *
 * Why generated: the repository holds no binary files. The seeds are small (a few KB) so
 * libFuzzer mutates them quickly, and together they reach every decoder: one kv of every value
 * type (gb_every_type), tensors of several types and ranks, alignments 1/32/64, v2 and v3, an
 * empty file, and a tiny llama model that model_load accepts (so mutations explore the binder
 * too, not just the parser's refusals). Optional extra arguments are real GGUF files copied in
 * as they are (libFuzzer truncates them to -max_len).
 *
 * usage: seeds_gguf <dir> [file.gguf ...] */
#include "gguf_builder.h"
#include "seed_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_built(const char *dir, const char *name, struct gguf_builder *b)
{
    gb_build(b);
    int rc = seed_write("seeds_gguf", dir, name, b->buf, b->len);
    gb_free(b);
    return rc;
}

static int copy_file(const char *dir, const char *src)
{
    FILE *f = fopen(src, "rb");
    if (!f) return 0; /* optional: a missing fixture is not an error */
    size_t cap = 1 << 20, n = 0, r;
    uint8_t *p = gb_xrealloc(NULL, cap);
    while ((r = fread(p + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) p = gb_xrealloc(p, cap *= 2);
    }
    fclose(f);
    const char *base = strrchr(src, '/');
    char name[512];
    snprintf(name, sizeof name, "real-%s", base ? base + 1 : src);
    int rc = seed_write("seeds_gguf", dir, name, p, n);
    free(p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <dir> [file.gguf ...]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int rc = 0;
    struct gguf_builder b = {0};

    /* header only: 0 tensors, 0 kv */
    gb_reset(&b);
    rc |= write_built(dir, "empty.gguf", &b);

    /* every value type and tensors of several types/ranks */
    gb_reset(&b);
    gb_every_type(&b);
    gb_tensor_f32_1d(&b, "a", 8, 0, 1);
    uint64_t ne_q8[2] = {32, 2}, ne_q4k[2] = {256, 1}, ne_4d[4] = {2, 3, 1, 2};
    gb_tensor_raw(&b, "q8", BLK_T_Q8_0, 2, ne_q8, NULL, 2 * 34);
    gb_tensor_raw(&b, "q4k", BLK_T_Q4_K, 2, ne_q4k, NULL, 144);
    gb_tensor_f32(&b, "d4", 4, ne_4d, 0, 1);
    rc |= write_built(dir, "types.gguf", &b);

    /* the same as GGUF v2 */
    gb_reset(&b);
    b.version = 2;
    gb_every_type(&b);
    gb_tensor_f32_1d(&b, "a", 8, 0, 1);
    rc |= write_built(dir, "types-v2.gguf", &b);

    /* explicit alignments */
    const uint32_t aligns[] = {1, 64};
    for (size_t i = 0; i < 2; i++) {
        gb_reset(&b);
        b.alignment = aligns[i];
        gb_kv_u32(&b, "general.alignment", aligns[i]);
        gb_tensor_f32_1d(&b, "x", 3, 0, 1);
        gb_tensor_f32_1d(&b, "y", 5, 0, 1);
        char name[64];
        snprintf(name, sizeof name, "align%u.gguf", aligns[i]);
        rc |= write_built(dir, name, &b);
    }

    /* tiny llama models that model_load accepts: untied and tied */
    for (int tied = 0; tied < 2; tied++) {
        struct gb_llama_opts o = gb_llama_defaults();
        o.n_embd = 8;
        o.n_ff = 16;
        o.n_layer = 1;
        o.n_head = 2;
        o.n_head_kv = 1;
        o.n_ctx = 8;
        o.n_vocab = 8;
        o.tied = tied;
        gb_reset(&b);
        gb_llama(&b, &o);
        rc |= write_built(dir, tied ? "llama-tiny-tied.gguf" : "llama-tiny.gguf", &b);
    }

    for (int i = 2; i < argc; i++) rc |= copy_file(dir, argv[i]);
    gb_free(&b);
    return rc ? 1 : 0;
}
