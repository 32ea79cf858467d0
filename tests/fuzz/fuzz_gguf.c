/* fuzz_gguf: libFuzzer harness for the GGUF parser and, on accepted files, the model binder.
 *
 * What it checks beyond "no crash" (ASan/UBSan turn any bad read into a crash):
 *  - a refused input reports the code it returned, a message, an offset inside the input (or
 *    ERR_NO_OFFSET), leaves the context zeroed, and gives the same code without an err_info;
 *  - an accepted input really is what the header promises: every tensor's bytes lie in the
 *    data section, every accessor can be called on every kv (so a getter that trusts a length
 *    the parser did not check reads out of bounds here), every string array iterates to its
 *    end inside the buffer;
 *  - model_load either binds or refuses with a recorded error, and model_free cleans up.
 * A broken invariant calls abort() so libFuzzer saves the input.
 *
 * The input is copied into a 64-byte-aligned buffer of exactly `size` bytes: the alignment of
 * an mmap'ed file (tensor pointers are then as aligned as in production) and an end ASan can
 * see. */
#include "gguf/gguf.h"
#include "model/model.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_gguf: invariant failed: %s (line %d)\n", #cond,    \
                    __LINE__);                                                       \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static int is_zeroed(const struct gguf_ctx *g)
{
    return g->buf == NULL && g->kv == NULL && g->tensors == NULL && g->n_kv == 0 &&
           g->n_tensors == 0 && g->map == NULL;
}

/* Call every accessor on every kv; the values are discarded, the reads are the point. */
static void walk_kvs(const struct gguf_ctx *g)
{
    /* a NUL-terminated copy of each key, for the by-name getters */
    char key[GGUF_MAX_KEY_LEN + 1];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct gguf_kv *kv = &g->kv[i];
        CHECK(kv->key.len >= 1 && kv->key.len <= GGUF_MAX_KEY_LEN);
        CHECK((const uint8_t *)kv->key.ptr >= g->buf &&
              (const uint8_t *)kv->key.ptr + kv->key.len <= g->buf + g->len);
        CHECK(kv->offset <= g->len);
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        uint32_t u;
        int64_t i64;
        float f;
        bool b;
        struct gguf_str s;
        double d;
        const struct gguf_kv *found = gguf_find_kv(g, key);
        /* an embedded NUL shortens the C key, so the lookup may find another kv or none */
        if (strlen(key) == kv->key.len) CHECK(found != NULL);
        (void)gguf_get_u32(g, key, &u);
        (void)gguf_get_i64(g, key, &i64);
        (void)gguf_get_f32(g, key, &f);
        (void)gguf_get_bool(g, key, &b);
        if (gguf_get_str(g, key, &s) == 0)
            CHECK((const uint8_t *)s.ptr >= g->buf &&
                  (const uint8_t *)s.ptr + s.len <= g->buf + g->len);
        if (kv->type != GGUF_VT_ARRAY && kv->type != GGUF_VT_STRING) {
            (void)gguf_kv_i64(kv, &i64);
            (void)gguf_kv_f64(kv, &d);
        }
        if (kv->type == GGUF_VT_ARRAY) {
            /* first and last element of numeric arrays (all of them would be slow on big ones) */
            if (kv->arr_n) {
                (void)gguf_arr_i64(kv, 0, &i64);
                (void)gguf_arr_f64(kv, kv->arr_n - 1, &d);
            }
            CHECK(gguf_arr_i64(kv, kv->arr_n, &i64) != 0);
            struct gguf_str_iter it;
            gguf_str_iter_init(&it, kv);
            uint64_t n = 0;
            while (gguf_str_iter_next(&it, &s)) {
                CHECK((const uint8_t *)s.ptr >= g->buf &&
                      (const uint8_t *)s.ptr + s.len <= g->buf + g->len);
                n++;
            }
            CHECK(n == (kv->arr_type == GGUF_VT_STRING ? kv->arr_n : 0));
        }
    }
}

static void walk_tensors(const struct gguf_ctx *g)
{
    CHECK(g->alignment && (g->alignment & (g->alignment - 1)) == 0);
    if (g->n_tensors) CHECK(g->data_offset % g->alignment == 0 && g->data_offset <= g->len);
    CHECK(gguf_find_tensor(g, "") == NULL); /* empty names are refused */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        CHECK(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS);
        CHECK(blk_type_info(t->type) != NULL);
        CHECK(t->offset % g->alignment == 0);
        const uint8_t *p = t->data;
        CHECK(p >= g->buf + g->data_offset && p <= g->buf + g->len);
        CHECK(t->nbytes <= (uint64_t)(g->buf + g->len - p));
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        CHECK(blk_row_size(t->type, t->ne[0]) * rows == t->nbytes);
        /* touch the first and last byte: ASan proves they are inside the input */
        volatile uint8_t sink = p[0];
        sink = p[t->nbytes - 1];
        (void)sink;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = NULL;
    if (size && posix_memalign((void **)&buf, 64, size) != 0) return 0;
    if (size) memcpy(buf, data, size);

    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    int rc = gguf_parse(buf, size, &g, &ei);
    if (rc) {
        CHECK(rc < 0 && ei.code == rc && ei.msg[0] != 0);
        CHECK(ei.offset == ERR_NO_OFFSET || ei.offset <= size);
        CHECK(is_zeroed(&g));
        CHECK(gguf_parse(buf, size, &g, NULL) == rc);
        free(buf);
        return 0;
    }
    CHECK(ei.code == 0);
    CHECK(g.buf == buf && g.len == size);
    walk_kvs(&g);
    walk_tensors(&g);

    struct model m;
    struct err_info mei;
    err_clear(&mei);
    rc = model_load(&m, &g, &mei);
    if (rc) {
        CHECK(rc < 0 && mei.code == rc && mei.msg[0] != 0);
    } else {
        /* what the forward pass will trust */
        CHECK(m.tok_embd && m.output_norm && m.output && m.layers);
        CHECK(m.hp.n_layer >= 1 && m.hp.n_head && m.hp.n_head_kv && m.hp.head_dim);
        CHECK(m.hp.n_head % m.hp.n_head_kv == 0);
        CHECK(m.tok_embd->ne[1] == m.hp.n_vocab);
        for (uint32_t l = 0; l < m.hp.n_layer; l++)
            CHECK(m.layers[l].wq && m.layers[l].wk && m.layers[l].wv && m.layers[l].wo &&
                  m.layers[l].w_gate && m.layers[l].w_up && m.layers[l].w_down &&
                  m.layers[l].attn_norm && m.layers[l].ffn_norm);
    }
    model_free(&m);
    gguf_free(&g);
    CHECK(is_zeroed(&g));
    free(buf);
    return 0;
}
