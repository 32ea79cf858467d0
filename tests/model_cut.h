/* model_cut: a shared model cut down to its first layer, written into a directory (for the
 * context-shift tests: in a one-layer model a cell's K and V depend only on its token and
 * position, so a shifted cache must equal a fresh evaluation of the kept tokens up to rounding;
 * see check_kvtypes.c). Needs tutil.h and gguf/gguf.h included first. */
#ifndef LMPIPE_TESTS_MODEL_CUT_H
#define LMPIPE_TESTS_MODEL_CUT_H

/* Write `dir`/STEM-l1.gguf: the shared model with block_count 1 and only blk.0.* tensors; its
 * path into out[0..cap). */
static inline void one_layer_copy(const char *stem, const char *dir, char *out, size_t cap)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", stem);
    snprintf(out, cap, "%s/%s-l1.gguf", dir, stem);
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gguf_open(tutil_shared(rel), &g, &ei) == 0, "%s", ei.msg);
    struct gguf_writer *w;
    ck_assert_int_eq(gguf_writer_create(&w), 0);
    gguf_writer_set_alignment(w, g.alignment);
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const struct gguf_kv *kv = &g.kv[i];
        if (kv->key.len > 12 && !memcmp(kv->key.ptr + kv->key.len - 12, ".block_count", 12)) {
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
            gguf_writer_set_u32(w, key, 1);
        } else {
            gguf_writer_copy_kv(w, kv);
        }
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (!strncmp(name, "blk.", 4) && strncmp(name, "blk.0.", 6)) continue;
        ck_assert_int_eq(gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type, t->data), 0);
    }
    ck_assert_msg(gguf_writer_write(w, out, NULL, NULL, &ei) == 0, "%s", ei.msg);
    gguf_writer_free(w);
    gguf_free(&g);
}

#endif
