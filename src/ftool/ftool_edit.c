/* ftool_edit: a copy of a GGUF file with some of its metadata replaced, tensors untouched:
 * `lmpipe dev edit`. Tests and benchmarks use it to give a model what its file lacks: a longer
 * declared context (stories260K was trained on 128 positions; tool-calling tests need room for
 * a template's tool descriptions, and the model then simply runs past its training length, as
 * llama.cpp lets it) or a chat template (so that lmpipe and llama-server see the same one).
 *
 * It also writes damaged copies (one value made NaN or infinite, in a weight or a block scale)
 * for the tests of what lmpipe does with non-finite weights.
 *
 * The copy is written atomically (gguf_writer_write: temp file, fsync, rename); the input is
 * only read. */
#include "ftool.h"

#include "../gguf/gguf.h"
#include "../util/err.h"
#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does kv's key end in ".context_length" (the architecture's, e.g. "llama.context_length")? */
static bool is_ctx_key(const struct gguf_kv *kv)
{
    static const char suffix[] = ".context_length";
    size_t n = kv->key.len, m = sizeof suffix - 1;
    return n > m && memcmp(kv->key.ptr + n - m, suffix, m) == 0;
}

/* A copy of t's data with o's poison value stored in it: *out (the caller frees it). */
static int poison_copy(const struct gguf_tensor *t, const struct ftool_edit_opts *o, void **out,
                       struct err_info *ei)
{
    const struct blk_type_info *ti = blk_type_info(t->type);
    uint32_t off[2];
    unsigned nh = blk_half_fields(t->type, off);
    uint64_t n_blocks = ti ? t->nbytes / ti->size : 0, at = o->poison_at;
    bool plain = t->type == BLK_T_F32 || t->type == BLK_T_F16 || t->type == BLK_T_BF16;
    if (at >= n_blocks || o->poison_field >= (plain ? 1u : nh))
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET,
                       "cannot poison %s: a %s tensor of %llu blocks has no value %llu (field %u)",
                       o->poison, blk_type_name(t->type), (unsigned long long)n_blocks,
                       (unsigned long long)at, o->poison_field);
    uint8_t *d = malloc(t->nbytes ? t->nbytes : 1);
    if (!d) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    memcpy(d, t->data, t->nbytes);
    uint8_t *p = d + at * ti->size + (plain ? 0 : off[o->poison_field]);
    uint16_t h = t->type == BLK_T_BF16 ? util_f32_to_bf16(o->poison_value) : util_f32_to_fp16(o->poison_value);
    if (t->type == BLK_T_F32) memcpy(p, &o->poison_value, 4); /* tensor data is little-endian */
    else memcpy(p, &h, 2);
    *out = d;
    return 0;
}

int ftool_edit(const char *in, const char *out, const struct ftool_edit_opts *o,
               struct err_info *ei)
{
    void *poisoned = NULL;
    struct gguf_ctx g;
    int rc = gguf_open(in, &g, ei);
    if (rc) return rc;
    struct gguf_writer *w = NULL;
    if ((rc = gguf_writer_create(&w))) {
        rc = err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    bool ctx_done = false;
    for (uint64_t i = 0; i < g.n_kv && !rc; i++) {
        const struct gguf_kv *kv = &g.kv[i];
        if (o->n_ctx && is_ctx_key(kv)) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, (const char *)kv->key.ptr);
            rc = gguf_writer_set_u32(w, key, o->n_ctx);
            ctx_done = true;
        } else if (!(o->chat_template && gguf_str_eq(kv->key, "tokenizer.chat_template"))) {
            rc = gguf_writer_copy_kv(w, kv);
        }
    }
    if (!rc && o->n_ctx && !ctx_done)
        rc = err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "%s has no *.context_length to change", in);
    if (!rc && o->chat_template)
        rc = gguf_writer_set_str(w, "tokenizer.chat_template", o->chat_template, o->chat_template_len);
    for (uint64_t i = 0; i < g.n_tensors && !rc; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, (const char *)t->name.ptr);
        const void *data = t->data;
        if (o->poison && !strcmp(name, o->poison) && !(rc = poison_copy(t, o, &poisoned, ei)))
            data = poisoned;
        if (!rc) rc = gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type, data);
    }
    if (!rc && o->poison && !poisoned)
        rc = err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "%s has no tensor %s to poison", in, o->poison);
    if (rc && !ei->code) err_set(ei, rc, ERR_NO_OFFSET, "cannot copy %s: %s", in, err_str(rc));
    if (!rc) rc = gguf_writer_write(w, out, NULL, NULL, ei);
done:
    free(poisoned);
    gguf_writer_free(w);
    gguf_free(&g);
    return rc;
}
