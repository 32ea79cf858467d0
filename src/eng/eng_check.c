/* eng_check: are the weights finite? One pass over every tensor's data in file order (the
 * mapped file is read once, sequentially), counting the NaN and infinite values blk finds in
 * each (elements of float tensors, fp16 scales of quantized blocks). A damaged download, a bad
 * conversion or random bytes in a block scale otherwise show only as garbage logits later.
 *
 * The list of bad tensors grows by doubling (a damaged file may have many); nothing else is
 * allocated. */
#include "eng_int.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_bad(struct eng_check *c, const struct gguf_tensor *t, uint64_t n_bad, size_t *cap)
{
    if (c->n_bad == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct eng_check_tensor *nb = realloc(c->bad, ncap * sizeof *nb);
        if (!nb) return ERR_NOMEM;
        c->bad = nb;
        *cap = ncap;
    }
    struct eng_check_tensor *b = &c->bad[c->n_bad++];
    size_t n = t->name.len < sizeof b->name - 1 ? (size_t)t->name.len : sizeof b->name - 1;
    memcpy(b->name, t->name.ptr, n);
    b->name[n] = 0;
    b->type = t->type;
    b->n_bad = n_bad;
    return 0;
}

static int check_gguf(const struct gguf_ctx *g, struct eng_check *c, struct err_info *ei)
{
    memset(c, 0, sizeof *c);
    double t0 = util_now();
    size_t cap = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        uint64_t n_bad;
        c->n_tensors++;
        /* the parser checked nbytes against the type's block size: ERR_UNSUPPORTED is IQ1_M */
        if (blk_count_nonfinite(t->type, t->data, t->nbytes, &n_bad)) continue;
        c->n_checked++;
        c->bytes += t->nbytes;
        c->n_bad_values += n_bad;
        if (n_bad && add_bad(c, t, n_bad, &cap)) {
            eng_check_free(c);
            return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        }
    }
    c->seconds = util_now() - t0;
    return 0;
}

int eng_model_check(const struct eng_model *em, struct eng_check *out, struct err_info *ei)
{
    return check_gguf(eng_gguf(em), out, ei);
}

int eng_file_check(const char *path, struct eng_check *out, struct err_info *ei)
{
    struct gguf_ctx g;
    memset(out, 0, sizeof *out);
    int rc = gguf_open(path, &g, ei);
    if (rc) return rc;
    rc = check_gguf(&g, out, ei);
    gguf_free(&g);
    return rc;
}

void eng_check_free(struct eng_check *c)
{
    free(c->bad);
    memset(c, 0, sizeof *c);
}

int eng_check_error(const struct eng_check *c, struct err_info *ei)
{
    if (!c->n_bad) return 0;
    char list[ERR_MSG_MAX];
    size_t len = 0;
    list[0] = 0;
    for (size_t i = 0; i < c->n_bad && len < sizeof list; i++) {
        const struct eng_check_tensor *b = &c->bad[i];
        int w = snprintf(list + len, sizeof list - len, "%s%s (%s): %llu", i ? ", " : "", b->name,
                         blk_type_name(b->type), (unsigned long long)b->n_bad);
        if (w < 0) break;
        len += (size_t)w;
    }
    return err_set(ei, ERR_NONFINITE_WEIGHTS, ERR_NO_OFFSET,
                   "non_finite_weights: %zu tensor%s store%s %llu NaN or infinite values: %s",
                   c->n_bad, c->n_bad == 1 ? "" : "s", c->n_bad == 1 ? "s" : "",
                   (unsigned long long)c->n_bad_values, list);
}
