/* ftool_quant: llama.cpp's quantization recipes and the GGUF file quantizer (`lmpipe quantize`).
 *
 * What: the target names and their llama_ftype numbers; the per-tensor type choice of
 * llama.cpp's mixes (llama_tensor_get_type: categories by tensor name, layer rules for attn_v
 * and ffn_down, the fallback when a row length does not fit a block); and ftool_quantize(),
 * which streams a GGUF through the row quantizers of src/kern/quantize.c into a new GGUF.
 *
 * Why byte-identical to llama-quantize: see src/kern/quantize.c; the recipe decides the same
 * type for every tensor, in llama.cpp's order. Work is split in fixed row chunks
 * (quant_rows_per_task), so output bytes and error statistics do not depend on threads. */
#include "ftool.h"

#include "../gguf/gguf.h"
#include "../kern/kern.h"
#include "../kern/quantize.h"
#include "../util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(FTOOL_MAX_DIMS == GGUF_MAX_DIMS, "tensor descriptions hold every GGUF dimension");

/* ---- targets: command-line names, default types, llama_ftype numbers ---- */

/* llama_ftype values (llama.h). A plain K name is written as llama-quantize writes it (its
 * "Q4_K" is an alias of Q4_K_M), so files made either way carry the same file_type. */
static const struct ftool_target g_targets[] = {
    {"F32", BLK_T_F32, 0, false},        {"F16", BLK_T_F16, 1, false},
    {"BF16", BLK_T_BF16, 32, false},     {"Q8_0", BLK_T_Q8_0, 7, false},
    {"Q4_0", BLK_T_Q4_0, 2, false},      {"Q4_1", BLK_T_Q4_1, 3, false},
    {"Q5_0", BLK_T_Q5_0, 8, false},      {"Q5_1", BLK_T_Q5_1, 9, false},
    {"Q2_K", BLK_T_Q2_K, 10, false},     {"Q3_K", BLK_T_Q3_K, 12, false},
    {"Q4_K", BLK_T_Q4_K, 15, false},     {"Q5_K", BLK_T_Q5_K, 17, false},
    {"Q6_K", BLK_T_Q6_K, 18, false},     {"IQ4_NL", BLK_T_IQ4_NL, 25, false},
    {"IQ4_XS", BLK_T_IQ4_XS, 30, false}, {"Q3_K_S", BLK_T_Q3_K, 11, true},
    {"Q3_K_M", BLK_T_Q3_K, 12, true},    {"Q3_K_L", BLK_T_Q3_K, 13, true},
    {"Q4_K_S", BLK_T_Q4_K, 14, true},    {"Q4_K_M", BLK_T_Q4_K, 15, true},
    {"Q5_K_S", BLK_T_Q5_K, 16, true},    {"Q5_K_M", BLK_T_Q5_K, 17, true},
};
#define N_TARGETS (sizeof g_targets / sizeof g_targets[0])

enum { FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
       FT_Q5_K_S = 16, FT_Q5_K_M = 17 };

const struct ftool_target *ftool_target_at(size_t i) { return i < N_TARGETS ? &g_targets[i] : NULL; }

const struct ftool_target *ftool_target_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < N_TARGETS; i++) {
        const char *a = g_targets[i].name, *b = name;
        while (*a && *b && (*a == *b || (*b >= 'a' && *b <= 'z' && *a == *b - 32))) a++, b++;
        if (!*a && !*b) return &g_targets[i];
    }
    return NULL;
}

/* ---- recipe: llama.cpp's tensor categories and per-tensor type rules ---- */

enum cat { CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B,
           CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER };

static enum cat category(const char *name)
{
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct { const char *s; enum cat c; } sub[] = {
        {"attn_qkv.weight", CAT_ATTN_QKV},   {"attn_kv_b.weight", CAT_ATTN_KV_B},
        {"attn_v.weight", CAT_ATTN_V},       {"attn_k.weight", CAT_ATTN_K},
        {"attn_q.weight", CAT_ATTN_Q},       {"attn_output.weight", CAT_ATTN_OUTPUT},
        {"ffn_up", CAT_FFN_UP},              {"ffn_gate", CAT_FFN_GATE},
        {"ffn_down", CAT_FFN_DOWN},
    };
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
        if (strstr(name, sub[i].s)) return sub[i].c;
    return CAT_OTHER;
}

static bool cat_is_attn_v(enum cat c)
{
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* Which tensors a quantizer may touch: 2-D+ weights, not norms, not the small special ones
 * llama.cpp keeps (expert routers, positional embeddings, convolution kernels, ...). */
static bool may_quantize(const struct ftool_tensor_desc *t)
{
    size_t n = strlen(t->name);
    if (t->n_dims < 2 || n < 6 || strcmp(t->name + n - 6, "weight") != 0) return false;
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
        "position_embd", "token_types", "ssm_conv1d", "shortconv.conv.weight",
        "attn_rel_b.weight", "time_mix_",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (strstr(t->name, keep[i])) return false;
    return true;
}

static int blk_of(const char *name)
{
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) l = -1;
    return l;
}

int ftool_name_cmp(const char *a, const char *b)
{
    int la = blk_of(a), lb = blk_of(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

struct recipe_state {
    int n_attn_v, i_attn_v, n_ffn_down, i_ffn_down;
    bool tied;
};

/* llama_tensor_get_type_impl for the K mixes, dense models (no experts, not Falcon). */
static uint32_t mix_type(struct recipe_state *s, uint32_t ftype, uint32_t t,
                         const struct ftool_tensor_desc *d, enum cat c)
{
    if (c == CAT_OUTPUT || (s->tied && c == CAT_TOKEN_EMBD)) {
        if (d->ne[0] % blk_type_info(t)->blck) t = BLK_T_Q8_0;
        else if (t != BLK_T_Q8_0) t = BLK_T_Q6_K;
    } else if (c == CAT_TOKEN_EMBD) {
        /* kept at the default type by every K mix */
    } else if (cat_is_attn_v(c)) {
        int i = s->i_attn_v, n = s->n_attn_v;
        if (ftype == FT_Q3_K_M) t = i < 2 ? BLK_T_Q5_K : BLK_T_Q4_K;
        else if (ftype == FT_Q3_K_L) t = BLK_T_Q5_K;
        else if ((ftype == FT_Q4_K_M || ftype == FT_Q5_K_M) && use_more_bits(i, n)) t = BLK_T_Q6_K;
        else if (ftype == FT_Q4_K_S && i < 4) t = BLK_T_Q5_K;
        s->i_attn_v++;
    } else if (c == CAT_FFN_DOWN) {
        int i = s->i_ffn_down, n = s->n_ffn_down;
        if (ftype == FT_Q3_K_M) t = i < n / 16 ? BLK_T_Q5_K : BLK_T_Q4_K;
        else if (ftype == FT_Q3_K_L) t = BLK_T_Q5_K;
        else if ((ftype == FT_Q4_K_M || ftype == FT_Q5_K_M) && use_more_bits(i, n)) t = BLK_T_Q6_K;
        else if (ftype == FT_Q4_K_S && i < n / 8) t = BLK_T_Q5_K;
        s->i_ffn_down++;
    } else if (c == CAT_ATTN_OUTPUT) {
        if (ftype == FT_Q3_K_M) t = BLK_T_Q4_K;
        else if (ftype == FT_Q3_K_L) t = BLK_T_Q5_K;
    }
    return t;
}

/* A row length that does not fill the type's blocks: llama.cpp's substitutes, then F16 (it
 * gives up where we use F16 directly: a plain 32-block type has no narrower substitute). */
static uint32_t fallback_type(uint32_t t, uint64_t ne0)
{
    if (ne0 % blk_type_info(t)->blck == 0) return t;
    uint32_t r;
    switch (t) {
    case BLK_T_IQ4_XS: r = BLK_T_IQ4_NL; break;
    case BLK_T_Q2_K:
    case BLK_T_Q3_K: r = BLK_T_Q4_0; break;
    case BLK_T_Q4_K: r = BLK_T_Q5_0; break;
    case BLK_T_Q5_K: r = BLK_T_Q5_1; break;
    case BLK_T_Q6_K: r = BLK_T_Q8_0; break;
    default: r = BLK_T_F16; break;
    }
    if (ne0 % blk_type_info(r)->blck) r = BLK_T_F16;
    return r;
}

struct name_idx {
    const char *name;
    size_t idx;
};
static int cmp_order(const void *a, const void *b)
{
    return ftool_name_cmp(((const struct name_idx *)a)->name, ((const struct name_idx *)b)->name);
}

void ftool_plan_free(struct ftool_plan *p)
{
    if (!p) return;
    free(p->order);
    free(p->type);
    free(p->want);
    free(p->quantize);
    memset(p, 0, sizeof *p);
}

int ftool_plan_make(struct ftool_plan *p, const struct ftool_target *tg, bool pure,
                    const struct ftool_tensor_desc *t, size_t n, uint32_t n_layer,
                    struct err_info *ei)
{
    memset(p, 0, sizeof *p);
    if (!tg || !quant_type_supported(tg->base))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no valid target type");
    p->n = n;
    p->order = malloc((n ? n : 1) * sizeof *p->order);
    p->type = malloc((n ? n : 1) * sizeof *p->type);
    p->want = malloc((n ? n : 1) * sizeof *p->want);
    p->quantize = malloc((n ? n : 1) * sizeof *p->quantize);
    if (!p->order || !p->type || !p->want || !p->quantize) {
        ftool_plan_free(p);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    struct name_idx *ni = malloc((n ? n : 1) * sizeof *ni);
    if (!ni) {
        ftool_plan_free(p);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !blk_type_info(t[i].type) || t[i].ne[0] == 0) {
            free(ni);
            ftool_plan_free(p);
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "bad tensor description %zu", i);
        }
        ni[i] = (struct name_idx){t[i].name, i};
    }
    qsort(ni, n, sizeof *ni, cmp_order); /* names are unique, so the order is total */
    for (size_t i = 0; i < n; i++) p->order[i] = ni[i].idx;
    free(ni);

    struct recipe_state s = {0, 0, (int)n_layer, 0, true};
    for (size_t i = 0; i < n; i++) {
        enum cat c = category(t[i].name);
        if (cat_is_attn_v(c)) s.n_attn_v++;
        if (c == CAT_OUTPUT) s.tied = false;
    }
    bool quantized = !quant_is_float_type(tg->base);
    for (size_t k = 0; k < n; k++) {
        size_t i = p->order[k];
        p->quantize[i] = may_quantize(&t[i]);
        if (!p->quantize[i]) {
            p->type[i] = p->want[i] = t[i].type;
            continue;
        }
        uint32_t ty = tg->base;
        if (quantized && tg->mix && !pure) ty = mix_type(&s, tg->ftype, ty, &t[i], category(t[i].name));
        p->want[i] = ty;
        if (quantized) ty = fallback_type(ty, t[i].ne[0]);
        if (ty != p->want[i]) p->n_fallback++;
        p->type[i] = ty;
    }
    return 0;
}

/* ---- whole files ---- */

struct qf_task_stat {
    double sum_sq, sum_sq_src, max_abs;
    int rc;
};

struct qf_job {
    const struct gguf_tensor *src;
    uint32_t to;
    uint8_t *dst;
    size_t n, nrows, per_task;
    uint64_t src_row, dst_row;
    struct qf_task_stat *st;
};

/* Convert rows [r0, r1) of one tensor: source row to f32, quantize, dequantize the result
 * back and accumulate its error against the f32 source. */
static void qf_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    struct qf_job *j = arg;
    struct qf_task_stat *st = &j->st[task];
    size_t r0 = (size_t)task * j->per_task, r1 = r0 + j->per_task;
    if (r1 > j->nrows) r1 = j->nrows;
    float *xs = malloc(j->n * sizeof *xs), *back = malloc(j->n * sizeof *back);
    if (!xs || !back) {
        st->rc = ERR_NOMEM;
        goto out;
    }
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *srow = (const uint8_t *)j->src->data + r * j->src_row;
        uint8_t *drow = j->dst + r * j->dst_row;
        const float *x = xs;
        if (j->src->type == BLK_T_F32) {
            memcpy(xs, srow, j->n * sizeof *xs); /* the mapping may not be float-aligned */
        } else if ((st->rc = kern_dequant_row(j->src->type, srow, xs, j->n))) {
            goto out;
        }
        if ((st->rc = quant_row(j->to, x, drow, j->n))) goto out;
        if ((st->rc = kern_dequant_row(j->to, drow, back, j->n))) goto out;
        for (size_t i = 0; i < j->n; i++) {
            double e = (double)back[i] - (double)x[i];
            st->sum_sq += e * e;
            st->sum_sq_src += (double)x[i] * (double)x[i];
            if (fabs(e) > st->max_abs) st->max_abs = fabs(e);
        }
    }
out:
    free(xs);
    free(back);
}

struct qf_ctx {
    const struct gguf_ctx *g;
    struct kern_pool *pool;
    const struct ftool_plan *plan;
    struct ftool_quant_report *rep;
    size_t *wr_to_src; /* writer tensor index -> source tensor index */
};

static int qf_data(void *ud, uint64_t idx, void *dst, uint64_t nbytes, struct err_info *ei)
{
    struct qf_ctx *c = ud;
    size_t si = c->wr_to_src[idx];
    const struct gguf_tensor *src = &c->g->tensors[si];
    uint32_t to = c->plan->type[si];
    struct qf_job j;
    memset(&j, 0, sizeof j);
    j.src = src;
    j.to = to;
    j.dst = dst;
    j.n = (size_t)src->ne[0];
    j.nrows = (size_t)(src->ne[1] * src->ne[2] * src->ne[3]);
    j.per_task = quant_rows_per_task(j.n);
    j.src_row = blk_row_size(src->type, src->ne[0]);
    j.dst_row = blk_row_size(to, src->ne[0]);
    size_t nt = (j.nrows + j.per_task - 1) / j.per_task;
    if (j.dst_row * j.nrows != nbytes || nt > INT32_MAX)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET, "internal size mismatch for '%.*s'",
                       (int)src->name.len, src->name.ptr);
    j.st = calloc(nt ? nt : 1, sizeof *j.st);
    if (!j.st) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    kern_pool_run(c->pool, qf_task, &j, (int)nt);
    struct ftool_err_stat *s = &c->rep->by_type[to];
    int rc = 0;
    for (size_t t = 0; t < nt; t++) {
        if (j.st[t].rc && !rc) rc = j.st[t].rc;
        s->sum_sq += j.st[t].sum_sq;
        s->sum_sq_src += j.st[t].sum_sq_src;
        if (j.st[t].max_abs > s->max_abs) s->max_abs = j.st[t].max_abs;
    }
    free(j.st);
    if (rc)
        return err_set(ei, rc, ERR_NO_OFFSET, "converting '%.*s' from %s to %s failed: %s%s",
                       (int)src->name.len, src->name.ptr, blk_type_name(src->type),
                       blk_type_name(to), err_str(rc),
                       rc == ERR_RANGE ? " (the tensor holds NaN or infinite values)" : "");
    s->n_tensors++;
    s->n += (uint64_t)j.n * j.nrows;
    return 0;
}

static bool is_split_key(struct gguf_str k)
{
    return gguf_str_eq(k, "split.no") || gguf_str_eq(k, "split.count") ||
           gguf_str_eq(k, "split.tensors.count");
}

/* The recipe's view of the file's tensors (names copied NUL-terminated into names[i * 256])
 * and its block count (general.architecture's, else the blocks present). */
static uint32_t describe(const struct gguf_ctx *g, struct ftool_tensor_desc *d, char *names)
{
    uint32_t n_layer = 0, max_blk = 0;
    struct gguf_str arch;
    if (gguf_get_str(g, "general.architecture", &arch) == 0 && arch.len < 64) {
        char key[96];
        snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
        if (gguf_get_u32(g, key, &n_layer)) n_layer = 0;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        char *nm = names + i * 256;
        memcpy(nm, t->name.ptr, t->name.len); /* the parser caps names at 255 bytes */
        d[i].name = nm;
        d[i].n_dims = t->n_dims;
        memcpy(d[i].ne, t->ne, sizeof d[i].ne);
        d[i].type = t->type;
        int b = blk_of(nm);
        if (b >= 0 && (uint32_t)b + 1 > max_blk) max_blk = (uint32_t)b + 1;
    }
    return n_layer ? n_layer : max_blk;
}

/* Metadata and tensor list of the output, in the plan's order, with the report's byte counts;
 * refuses sources that cannot be read as f32 before anything is written. */
static int add_tensors(struct gguf_writer *w, const struct gguf_ctx *g, const struct ftool_plan *plan,
                       const struct ftool_tensor_desc *d, const struct ftool_quant_opts *o,
                       struct ftool_quant_report *rep, size_t *wr_to_src, struct err_info *ei)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (plan->type[i] != g->tensors[i].type && !quant_is_float_type(g->tensors[i].type))
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "tensor '%s' is %s: only F32, F16 and BF16 tensors can be quantized "
                           "(re-quantizing a quantized file would compound the error)",
                           d[i].name, blk_type_name(g->tensors[i].type));
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (!is_split_key(g->kv[i].key)) gguf_writer_copy_kv(w, &g->kv[i]);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "general.file_type", o->target->ftype);
    for (size_t k = 0; k < plan->n; k++) {
        size_t i = plan->order[k];
        const struct gguf_tensor *t = &g->tensors[i];
        uint32_t to = plan->type[i];
        bool copy = to == t->type;
        if (o->on_tensor) o->on_tensor(o->ud, k, plan->n, d[i].name, t->type, to, plan->want[i], t->ne);
        wr_to_src[k] = i;
        int rc = gguf_writer_add_tensor(w, d[i].name, t->n_dims, t->ne, to, copy ? t->data : NULL);
        if (rc)
            return err_set(ei, rc, ERR_NO_OFFSET, "cannot add tensor '%s' to the output: %s",
                           d[i].name, err_str(rc));
        rep->in_bytes += t->nbytes;
        rep->out_bytes += gguf_writer_tensor_nbytes(w, k);
        if (copy) {
            rep->n_copied++;
        } else {
            rep->n_quantized++;
            rep->by_type[to].bytes += gguf_writer_tensor_nbytes(w, k);
        }
    }
    rep->n_tensors = plan->n;
    return 0;
}

int ftool_quantize(const char *in, const char *out, const struct ftool_quant_opts *o,
                   struct ftool_quant_report *rep, struct err_info *ei)
{
    memset(rep, 0, sizeof *rep);
    if (!o || !o->target) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "no target type");
    struct gguf_ctx g;
    int rc = gguf_open(in, &g, ei);
    if (rc) return rc;
    size_t nt = g.n_tensors ? g.n_tensors : 1;
    struct ftool_tensor_desc *d = calloc(nt, sizeof *d);
    char *names = calloc(nt, 256);
    size_t *wr_to_src = calloc(nt, sizeof *wr_to_src);
    struct ftool_plan plan = {0};
    struct gguf_writer *w = NULL;
    struct kern_pool *pool = NULL;
    if (!d || !names || !wr_to_src || gguf_writer_create(&w)) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    uint32_t n_layer = describe(&g, d, names);
    if ((rc = ftool_plan_make(&plan, o->target, o->pure, d, g.n_tensors, n_layer, ei))) goto done;
    rep->n_fallback = plan.n_fallback;
    if ((rc = add_tensors(w, &g, &plan, d, o, rep, wr_to_src, ei))) goto done;
    if (o->n_threads > 1 && (rc = kern_pool_create(&pool, o->n_threads))) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot start %d threads", o->n_threads);
        goto done;
    }
    struct qf_ctx c = {&g, pool, &plan, rep, wr_to_src};
    rc = gguf_writer_write(w, out, qf_data, &c, ei);
done:
    kern_pool_destroy(pool);
    gguf_writer_free(w);
    ftool_plan_free(&plan);
    free(wr_to_src);
    free(names);
    free(d);
    gguf_free(&g);
    return rc;
}
