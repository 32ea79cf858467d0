/* ftool_synth: random-weight GGUF models of a given architecture and shape (`lmpipe dev synth`).
 *
 * What: a GGUF with a valid SPM-style vocabulary and the hyperparameters lmpipe and llama.cpp
 * read, in any type ftool_quantize can produce (Q4_K_M and the other mixes use the same
 * per-tensor recipe). Benchmarks and tests get real-size models without downloads.
 *
 * Why these numbers: matrices, embeddings and biases are N(0, 0.02) and norm weights
 * 1 + N(0, 0.02) (as the shared synthetic fixtures), so activations keep a sane scale through
 * any depth; gemma3 stores 1 + w like its converter does. Every value comes from a generator
 * seeded by (seed, tensor, row), so the file is identical for any thread count and a tensor
 * never needs to exist in f32 as a whole: rows are generated and quantized one task at a time
 * straight into the writer's buffer.
 *
 * The vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then distinct
 * synthetic pieces up to the vocabulary size, with descending scores; or a real tokenizer copied
 * key by key from another GGUF (vocab_from), so grammar and tokenizer work see real token
 * pieces at a real model's shape. */
#include "ftool.h"

#include "../gguf/gguf.h"
#include "../kern/kern.h"
#include "../kern/quantize.h"
#include "../util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum init_kind { INIT_MATRIX = 0, INIT_NORM, INIT_BIAS };

struct synth_tensor {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[2];
    int init;
};

/* ---- deterministic normals: splitmix64 stream per (seed, tensor, row) ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n standard normals (Box-Muller on 53-bit uniforms), then y = mean + sd * z. */
static void fill_normal(float *y, size_t n, uint64_t state, float mean, float sd)
{
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(splitmix(&state) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
        double u2 = (double)(splitmix(&state) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        y[i] = (float)(mean + sd * r * cos(two_pi * u2));
        if (i + 1 < n) y[i + 1] = (float)(mean + sd * r * sin(two_pi * u2));
    }
}

static uint64_t row_seed(uint64_t seed, uint64_t tensor, uint64_t row)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull ^ (tensor + 1) * 0xc2b2ae3d27d4eb4full;
    s ^= (row + 1) * 0x165667b19e3779f9ull;
    (void)splitmix(&s);
    return s;
}

/* ---- the tensor list of each architecture (names and shapes as llama.cpp expects) ---- */

struct tlist {
    struct synth_tensor *t;
    size_t n, cap;
};

static int tl_add(struct tlist *l, const char *name, uint64_t ne0, uint64_t ne1, int init)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct synth_tensor *p = realloc(l->t, cap * sizeof *p);
        if (!p) return ERR_NOMEM;
        l->t = p;
        l->cap = cap;
    }
    struct synth_tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->init = init;
    return 0;
}

static int build_tensors(const struct ftool_synth_cfg *c, struct tlist *l)
{
    bool phi3 = !strcmp(c->arch, "phi3"), qwen2 = !strcmp(c->arch, "qwen2");
    bool qk_norm = !strcmp(c->arch, "qwen3") || !strcmp(c->arch, "gemma3");
    bool gemma3 = !strcmp(c->arch, "gemma3");
    uint64_t D = (uint64_t)c->dim, F = (uint64_t)c->ffn, V = (uint64_t)c->vocab;
    uint64_t HD = (uint64_t)c->head_dim, QD = (uint64_t)c->heads * HD,
             KVD = (uint64_t)c->kv_heads * HD;
    int rc = tl_add(l, "token_embd.weight", D, V, INIT_MATRIX);
    char nm[64];
#define ADD(suffix, a, b, init)                                  \
    do {                                                         \
        snprintf(nm, sizeof nm, "blk.%lld." suffix, (long long)i); \
        if (!rc) rc = tl_add(l, nm, a, b, init);                 \
    } while (0)
    for (int64_t i = 0; i < c->layers; i++) {
        ADD("attn_norm.weight", D, 0, INIT_NORM);
        if (phi3) {
            ADD("attn_qkv.weight", D, QD + 2 * KVD, INIT_MATRIX);
        } else {
            ADD("attn_q.weight", D, QD, INIT_MATRIX);
            ADD("attn_k.weight", D, KVD, INIT_MATRIX);
            ADD("attn_v.weight", D, KVD, INIT_MATRIX);
        }
        if (qwen2) {
            ADD("attn_q.bias", QD, 0, INIT_BIAS);
            ADD("attn_k.bias", KVD, 0, INIT_BIAS);
            ADD("attn_v.bias", KVD, 0, INIT_BIAS);
        }
        if (qk_norm) {
            ADD("attn_q_norm.weight", HD, 0, INIT_NORM);
            ADD("attn_k_norm.weight", HD, 0, INIT_NORM);
        }
        ADD("attn_output.weight", QD, D, INIT_MATRIX);
        if (gemma3) ADD("post_attention_norm.weight", D, 0, INIT_NORM);
        ADD("ffn_norm.weight", D, 0, INIT_NORM);
        if (phi3) {
            ADD("ffn_up.weight", D, 2 * F, INIT_MATRIX);
        } else {
            ADD("ffn_gate.weight", D, F, INIT_MATRIX);
            ADD("ffn_up.weight", D, F, INIT_MATRIX);
        }
        ADD("ffn_down.weight", F, D, INIT_MATRIX);
        if (gemma3) ADD("post_ffw_norm.weight", D, 0, INIT_NORM);
    }
#undef ADD
    if (!rc) rc = tl_add(l, "output_norm.weight", D, 0, INIT_NORM);
    if (!rc && !c->tied) rc = tl_add(l, "output.weight", D, V, INIT_MATRIX);
    return rc;
}

/* ---- vocabulary ---- */

/* Distinct pieces for ids >= 259: bijective base-26 words, every other one with the SPM
 * word-start marker U+2581, so all strings differ. */
static int build_vocab(struct gguf_writer *w, uint32_t V)
{
    struct gguf_str *tok = calloc(V, sizeof *tok);
    float *score = calloc(V, sizeof *score);
    int32_t *type = calloc(V, sizeof *type);
    char *pool = calloc(V, 16);
    int rc = ERR_NOMEM;
    if (!tok || !score || !type || !pool) goto out;
    static const char *const special[3] = {"<unk>", "<s>", "</s>"};
    for (uint32_t i = 0; i < V; i++) {
        char *p = pool + (size_t)i * 16;
        if (i < 3) {
            snprintf(p, 16, "%s", special[i]);
            type[i] = i == 0 ? 2 : 3; /* UNKNOWN, CONTROL */
        } else if (i < 259) {
            snprintf(p, 16, "<0x%02X>", i - 3);
            type[i] = 6; /* BYTE */
        } else {
            uint32_t k = (i - 259) / 2 + 1;
            char word[8];
            int n = 0;
            while (k && n < 7) {
                k--;
                word[n++] = (char)('a' + k % 26);
                k /= 26;
            }
            size_t o = 0;
            if ((i - 259) % 2 == 0) {
                memcpy(p, "\xe2\x96\x81", 3); /* U+2581 */
                o = 3;
            }
            for (int j = n - 1; j >= 0; j--) p[o++] = word[j];
            p[o] = 0;
            type[i] = 1; /* NORMAL */
            score[i] = -(float)(i - 259);
        }
        tok[i].ptr = p;
        tok[i].len = strlen(p);
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, V);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, score, V);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, type, V);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
out:
    free(tok);
    free(score);
    free(type);
    free(pool);
    return rc;
}

/* Every tokenizer.* key of another GGUF file, copied as it is. */
static int copy_vocab(struct gguf_writer *w, const char *path, struct err_info *ei)
{
    struct gguf_ctx g;
    int rc = gguf_open(path, &g, ei);
    if (rc) return rc;
    for (uint64_t i = 0; i < g.n_kv && rc == 0; i++)
        if (g.kv[i].key.len > 10 && !memcmp(g.kv[i].key.ptr, "tokenizer.", 10))
            rc = gguf_writer_copy_kv(w, &g.kv[i]);
    gguf_free(&g);
    return rc ? err_set(ei, rc, ERR_NO_OFFSET, "cannot copy the vocabulary of '%s': %s", path, err_str(rc)) : 0;
}

/* The token count of vocab_from, which becomes the model's vocabulary size. */
static int vocab_size_from(struct ftool_synth_cfg *c, struct err_info *ei)
{
    struct gguf_ctx g;
    int rc = gguf_open(c->vocab_from, &g, ei);
    if (rc) return rc;
    uint64_t n = 0;
    rc = gguf_get_arr(&g, "tokenizer.ggml.tokens", NULL, &n, NULL);
    gguf_free(&g);
    if (rc || n < 1 || n > (1u << 22))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'%s' has no usable tokenizer.ggml.tokens", c->vocab_from);
    if (c->vocab >= 0 && (uint64_t)c->vocab != n)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "--vocab %lld differs from the %llu tokens of '%s'",
                       (long long)c->vocab, (unsigned long long)n, c->vocab_from);
    c->vocab = (int64_t)n;
    return 0;
}

/* ---- data: rows generated and quantized in parallel ---- */

struct synth_ctx {
    const struct synth_tensor *t;
    const uint32_t *type; /* per tensor */
    uint64_t seed;
    struct kern_pool *pool;
};

struct synth_job {
    const struct synth_tensor *t;
    uint64_t tidx, seed;
    uint32_t type;
    uint8_t *dst;
    size_t n, nrows, per_task, row_bytes;
    int *rc;
};

static void synth_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    struct synth_job *j = arg;
    size_t r0 = (size_t)task * j->per_task, r1 = r0 + j->per_task;
    if (r1 > j->nrows) r1 = j->nrows;
    float *x = malloc(j->n * sizeof *x);
    int rc = x ? 0 : ERR_NOMEM;
    float mean = j->t->init == INIT_NORM ? 1.0f : 0.0f;
    for (size_t r = r0; r < r1 && !rc; r++) {
        fill_normal(x, j->n, row_seed(j->seed, j->tidx, r), mean, 0.02f);
        rc = quant_row(j->type, x, j->dst + r * j->row_bytes, j->n);
    }
    free(x);
    j->rc[task] = rc;
}

static int synth_data(void *ud, uint64_t idx, void *dst, uint64_t nbytes, struct err_info *ei)
{
    struct synth_ctx *c = ud;
    const struct synth_tensor *t = &c->t[idx];
    struct synth_job j = {t, idx, c->seed, c->type[idx], dst, (size_t)t->ne[0], (size_t)t->ne[1],
                          0, (size_t)blk_row_size(c->type[idx], t->ne[0]), NULL};
    if ((uint64_t)j.row_bytes * j.nrows != nbytes)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET, "size mismatch for %s", t->name);
    j.per_task = quant_rows_per_task(j.n); /* fixed, independent of the thread count */
    size_t nt = (j.nrows + j.per_task - 1) / j.per_task;
    j.rc = calloc(nt, sizeof *j.rc);
    if (!j.rc) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    kern_pool_run(c->pool, synth_task, &j, (int)nt);
    int rc = 0;
    for (size_t k = 0; k < nt && !rc; k++) rc = j.rc[k];
    free(j.rc);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "generating %s failed: %s", t->name, err_str(rc));
    return 0;
}


/* ---- shapes ---- */

int ftool_synth_preset(const char *name, struct ftool_synth_cfg *c, bool tied_given)
{
    struct ftool_synth_cfg p;
    if (!strcmp(name, "tinyllama"))
        p = (struct ftool_synth_cfg){"llama", 2048, 22, 32, 4, 5632, 32000, -1, 2048, 0, false, NULL, NULL};
    else if (!strcmp(name, "smollm2-135m"))
        p = (struct ftool_synth_cfg){"llama", 576, 30, 9, 3, 1536, 49152, -1, 2048, 0, true, NULL, NULL};
    else if (!strcmp(name, "qwen2.5-0.5b"))
        p = (struct ftool_synth_cfg){"qwen2", 896, 24, 14, 2, 4864, 151936, -1, 2048, 0, true, NULL, NULL};
    else return ERR_NOT_FOUND;
    /* the preset fills whatever was not given explicitly */
    if (!c->arch) c->arch = p.arch;
    if (c->dim < 0) c->dim = p.dim;
    if (c->layers < 0) c->layers = p.layers;
    if (c->heads < 0) c->heads = p.heads;
    if (c->kv_heads < 0) c->kv_heads = p.kv_heads;
    if (c->ffn < 0) c->ffn = p.ffn;
    if (c->vocab < 0 && !c->vocab_from) c->vocab = p.vocab; /* else the file's */
    if (!tied_given) c->tied = p.tied;
    return 0;
}

static const char *const k_archs[] = {"llama", "qwen2", "qwen3", "phi3", "gemma3"};

int ftool_synth_check(struct ftool_synth_cfg *c, struct err_info *ei)
{
    if (!c->arch) c->arch = "llama";
    if (c->vocab_from) {
        int rc = vocab_size_from(c, ei);
        if (rc) return rc;
    }
    bool arch_ok = false;
    for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++) arch_ok |= !strcmp(c->arch, k_archs[i]);
    if (!arch_ok)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "unknown --arch '%s' (llama, qwen2, qwen3, phi3, gemma3)", c->arch);
    if (c->dim < 0 || c->layers < 0 || c->heads < 0 || c->ffn < 0 || c->vocab < 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "dev synth needs --dim, --layers, --heads, --ffn and --vocab (or --preset)");
    if (c->kv_heads < 0) c->kv_heads = c->heads;
    if (c->heads % c->kv_heads)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "--heads %lld is not a multiple of --kv-heads %lld",
                       (long long)c->heads, (long long)c->kv_heads);
    if (c->head_dim < 0) {
        if (c->dim % c->heads)
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "--heads %lld does not divide --dim %lld (give --head-dim)",
                           (long long)c->heads, (long long)c->dim);
        c->head_dim = c->dim / c->heads;
    }
    if (c->head_dim % 2)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "head dimension %lld must be even",
                       (long long)c->head_dim);
    if (!strcmp(c->arch, "gemma3")) c->tied = true; /* llama.cpp's gemma3 ties the output */
    if (!ftool_target_find(c->type))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "unknown --type '%s' (any `lmpipe quantize` type)",
                       c->type ? c->type : "");
    return 0;
}

/* ---- the file ---- */

/* The hyperparameters llama.cpp and lmpipe read for the architecture. */
static void write_meta(struct gguf_writer *w, const struct ftool_synth_cfg *c, uint32_t ftype)
{
    char key[128], name[128];
    const char *A = c->arch;
    /* "phi3" in general.name makes llama.cpp apply Phi-3 vocabulary fix-ups this vocab lacks */
    snprintf(name, sizeof name, "lmpipe-synth-%s-d%lld-l%lld-seed%lld", strcmp(A, "phi3") ? A : "phi_3",
             (long long)c->dim, (long long)c->layers, (long long)c->seed);
    gguf_writer_set_str(w, "general.architecture", A, strlen(A));
    gguf_writer_set_str(w, "general.name", name, strlen(name));
    gguf_writer_set_u32(w, "general.file_type", ftype);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, A), key)
    gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)c->ctx);
    gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)c->dim);
    gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->ffn);
    gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)c->layers);
    gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)c->heads);
    gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->kv_heads);
    bool qwen_or_gemma = !strncmp(A, "qwen", 4) || !strcmp(A, "gemma3");
    gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), qwen_or_gemma ? 1e-6f : 1e-5f);
    gguf_writer_set_f32(w, KEY("rope.freq_base"), qwen_or_gemma ? 1e6f : 1e4f);
    gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
    if (c->head_dim * c->heads != c->dim || !strcmp(A, "qwen3") || !strcmp(A, "gemma3")) {
        gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
        gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
    }
    if (!strcmp(A, "gemma3")) {
        gguf_writer_set_u32(w, KEY("attention.sliding_window"), 512);
        gguf_writer_set_f32(w, KEY("rope.freq_base_swa"), 1e4f);
    }
    gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)c->vocab);
#undef KEY
}

/* Every tensor's type by the target's recipe, as ftool_quantize would choose it. */
static int plan_types(const struct ftool_synth_cfg *c, const struct ftool_target *tg,
                      const struct tlist *tl, uint32_t *types, const struct ftool_synth_opts *o,
                      struct err_info *ei)
{
    struct ftool_tensor_desc *desc = calloc(tl->n, sizeof *desc);
    if (!desc) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    for (size_t i = 0; i < tl->n; i++) {
        desc[i].name = tl->t[i].name;
        desc[i].n_dims = tl->t[i].n_dims;
        desc[i].ne[0] = tl->t[i].ne[0];
        desc[i].ne[1] = tl->t[i].ne[1];
        desc[i].ne[2] = desc[i].ne[3] = 1;
        desc[i].type = BLK_T_F32;
    }
    struct ftool_plan plan = {0};
    int rc = ftool_plan_make(&plan, tg, false, desc, tl->n, (uint32_t)c->layers, ei);
    for (size_t i = 0; rc == 0 && i < tl->n; i++) {
        types[i] = plan.type[i];
        if (o && o->on_tensor)
            o->on_tensor(o->ud, i, tl->n, tl->t[i].name, BLK_T_F32, plan.type[i], plan.want[i], desc[i].ne);
    }
    ftool_plan_free(&plan);
    free(desc);
    return rc;
}

int ftool_synth(const struct ftool_synth_cfg *cfg, const char *out, const struct ftool_synth_opts *o,
                struct err_info *ei)
{
    struct ftool_synth_cfg c = *cfg;
    int rc = ftool_synth_check(&c, ei);
    if (rc) return rc;
    const struct ftool_target *tg = ftool_target_find(c.type);
    struct tlist tl = {0};
    uint32_t *types = NULL;
    struct gguf_writer *w = NULL;
    struct kern_pool *pool = NULL;
    if ((rc = build_tensors(&c, &tl)) || !(types = calloc(tl.n, sizeof *types))) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    if ((rc = plan_types(&c, tg, &tl, types, o, ei))) goto done;
    if ((rc = gguf_writer_create(&w))) {
        err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
        goto done;
    }
    write_meta(w, &c, tg->ftype);
    if (c.vocab_from) {
        if ((rc = copy_vocab(w, c.vocab_from, ei))) goto done;
    } else if ((rc = build_vocab(w, (uint32_t)c.vocab))) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot build the vocabulary: %s", err_str(rc));
        goto done;
    }
    uint64_t n_params = 0, bytes = 0;
    for (size_t i = 0; i < tl.n; i++) {
        uint64_t ne[2] = {tl.t[i].ne[0], tl.t[i].ne[1]};
        gguf_writer_add_tensor(w, tl.t[i].name, tl.t[i].n_dims, ne, types[i], NULL);
        n_params += tl.t[i].ne[0] * tl.t[i].ne[1];
        bytes += gguf_writer_tensor_nbytes(w, i);
    }
    int threads = o ? o->n_threads : 1;
    if (threads > 1 && (rc = kern_pool_create(&pool, threads))) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot start %d threads", threads);
        goto done;
    }
    if (o && o->on_start) o->on_start(o->ud, n_params, bytes, tg->name);
    struct synth_ctx sc = {tl.t, types, (uint64_t)c.seed, pool};
    rc = gguf_writer_write(w, out, synth_data, &sc, ei);
done:
    kern_pool_destroy(pool);
    gguf_writer_free(w);
    free(types);
    free(tl.t);
    return rc;
}
