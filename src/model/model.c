/* model: hyperparameters, tensor binding and the llama-family forward pass.
 *
 * The numerics follow ggml's CPU graph for llama so that logits agree with llama.cpp:
 *   - RMSNorm sums squares in double, then scale = 1/sqrtf(mean + eps), then multiplies by w.
 *   - RoPE angles are built by repeated float multiplication theta *= base^(-2/n_dims), as
 *     ggml's rope cache does, and positions are divided by the linear scaling factor.
 *   - Weight matmuls convert the activation to the weight's vec_dot type first (kern).
 *   - Attention runs in f32 against an f32 KV cache; softmax sums in double.
 * Invariants: after model_load every tensor pointer the forward pass touches exists, has the
 * shape it expects and a type kern supports; model_forward never allocates. */
#include "model.h"

#include "../util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*                              name      rope              bias   qknorm fusedqkv fusedup gelu  escale postnrm qpre   swa */
static const struct model_arch_desc g_archs[MODEL_ARCH_COUNT_] = {
    [MODEL_ARCH_LLAMA] = {"llama", MODEL_ROPE_NORM, false, false, false, false, false, false, false, false, false},
    [MODEL_ARCH_QWEN2] = {"qwen2", MODEL_ROPE_NEOX, true, false, false, false, false, false, false, false, false},
    [MODEL_ARCH_QWEN3] = {"qwen3", MODEL_ROPE_NEOX, false, true, false, false, false, false, false, false, false},
    [MODEL_ARCH_PHI3] = {"phi3", MODEL_ROPE_NEOX, false, false, true, true, false, false, false, true, false},
    [MODEL_ARCH_GEMMA3] = {"gemma3", MODEL_ROPE_NEOX, false, true, false, false, true, true, true, true, true},
};

const struct model_arch_desc *model_arch_desc(int arch)
{
    return (arch >= 0 && arch < MODEL_ARCH_COUNT_) ? &g_archs[arch] : NULL;
}

const char *model_arch_name(int arch)
{
    return (arch >= 0 && arch < MODEL_ARCH_COUNT_) ? g_archs[arch].name : "?";
}

/* Read "<arch>.<suffix>" as u32; missing → default (or ERR_NOT_FOUND when required). */
static int hp_u32(const struct model *m, const char *suffix, uint32_t *out, bool required,
                  uint32_t def, struct err_info *ei)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    int rc = gguf_get_u32(m->g, key, out);
    if (rc == ERR_NOT_FOUND && !required) {
        *out = def;
        return 0;
    }
    if (rc == ERR_NOT_FOUND)
        return err_set(ei, rc, ERR_NO_OFFSET, "required metadata '%s' is missing", key);
    if (rc) {
        const struct gguf_kv *kv = gguf_find_kv(m->g, key);
        return err_set(ei, rc, kv ? kv->offset : ERR_NO_OFFSET,
                       "metadata '%s' must be a non-negative 32-bit integer", key);
    }
    return 0;
}

static int hp_f32(const struct model *m, const char *suffix, float *out, bool required, float def,
                  struct err_info *ei)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    int rc = gguf_get_f32(m->g, key, out);
    if (rc == ERR_NOT_FOUND && !required) {
        *out = def;
        return 0;
    }
    if (rc == ERR_NOT_FOUND)
        return err_set(ei, rc, ERR_NO_OFFSET, "required metadata '%s' is missing", key);
    if (rc || !isfinite(*out)) {
        const struct gguf_kv *kv = gguf_find_kv(m->g, key);
        return err_set(ei, rc ? rc : ERR_RANGE, kv ? kv->offset : ERR_NO_OFFSET,
                       "metadata '%s' must be a finite float", key);
    }
    return 0;
}

static uint64_t tensor_off(const struct model *m, const struct gguf_tensor *t)
{
    return (uint64_t)((const uint8_t *)t->name.ptr - m->g->buf);
}

/* Find a tensor and check its shape {ne0, ne1} (ne1 = 0 for a vector). */
static int bind(const struct model *m, const char *name, uint64_t ne0, uint64_t ne1, bool matmul,
                bool optional, const struct gguf_tensor **out, struct err_info *ei)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->g, name);
    *out = t;
    if (!t) {
        if (optional) return 0;
        return err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "required tensor '%s' is missing", name);
    }
    uint32_t want_dims = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok || t->n_dims > want_dims)
        return err_set(ei, ERR_SHAPE, tensor_off(m, t),
                       "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                       (unsigned long long)ne0, (unsigned long long)(ne1 ? ne1 : 1));
    if (matmul) {
        if (!kern_type_supported(t->type))
            return err_set(ei, ERR_UNSUPPORTED, tensor_off(m, t),
                           "tensor '%s' has type %s, which this build cannot multiply yet", name,
                           blk_type_name(t->type));
    } else if (t->type != BLK_T_F32) {
        return err_set(ei, ERR_BAD_TYPE, tensor_off(m, t),
                       "tensor '%s' must be F32 (norm weights), got %s", name,
                       blk_type_name(t->type));
    }
    return 0;
}

/* RoPE scaling (none or linear: the factor divides positions), logit soft-capping, and the
 * sliding window of the architectures that have one. */
static int load_rope_extras(struct model *m, struct err_info *ei)
{
    struct model_hparams *hp = &m->hp;
    char key[128];
    int rc;
    hp->rope_scale = 1.0f;
    struct gguf_str st;
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
    rc = gguf_get_str(m->g, key, &st);
    if (rc == 0 && !gguf_str_eq(st, "none") && !gguf_str_eq(st, "linear"))
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET, "rope scaling type '%.*s' is not supported",
                       (int)(st.len > 32 ? 32 : st.len), st.ptr);
    if (rc == 0 && gguf_str_eq(st, "linear")) {
        if ((rc = hp_f32(m, "rope.scaling.factor", &hp->rope_scale, false, 1.0f, ei))) return rc;
    } else if (rc == ERR_NOT_FOUND) {
        if ((rc = hp_f32(m, "rope.scale_linear", &hp->rope_scale, false, 1.0f, ei))) return rc;
    } else if (rc) {
        return err_set(ei, rc, ERR_NO_OFFSET, "metadata '%s' must be a string", key);
    }
    if (hp->rope_scale == 0.0f) hp->rope_scale = 1.0f;
    if (!(hp->rope_scale > 0 && hp->rope_scale < 1e6f))
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "rope scaling factor %g out of range",
                       (double)hp->rope_scale);
    hp->rope_type = m->desc->rope_type;
    if ((rc = hp_f32(m, "final_logit_softcapping", &hp->logit_softcap, false, 0.0f, ei))) return rc;
    if (hp->logit_softcap < 0)
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "final_logit_softcapping %g is negative",
                       (double)hp->logit_softcap);
    if (m->desc->swa) {
        if ((rc = hp_u32(m, "attention.sliding_window", &hp->n_swa, false, 0, ei)) ||
            (rc = hp_u32(m, "attention.sliding_window_pattern", &hp->swa_pattern, false, 6, ei)) ||
            (rc = hp_f32(m, "rope.freq_base_swa", &hp->rope_base_swa, false, 10000.0f, ei)))
            return rc;
        if (!(hp->rope_base_swa > 0))
            return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "rope.freq_base_swa must be positive");
    }
    return 0;
}

static int load_hparams(struct model *m, struct err_info *ei)
{
    struct model_hparams *hp = &m->hp;
    int rc;
    if ((rc = hp_u32(m, "context_length", &hp->n_ctx_train, true, 0, ei)) ||
        (rc = hp_u32(m, "embedding_length", &hp->n_embd, true, 0, ei)) ||
        (rc = hp_u32(m, "feed_forward_length", &hp->n_ff, true, 0, ei)) ||
        (rc = hp_u32(m, "block_count", &hp->n_layer, true, 0, ei)) ||
        (rc = hp_u32(m, "attention.head_count", &hp->n_head, true, 0, ei)) ||
        (rc = hp_u32(m, "attention.head_count_kv", &hp->n_head_kv, false, hp->n_head, ei)) ||
        (rc = hp_f32(m, "attention.layer_norm_rms_epsilon", &hp->rms_eps, true, 0, ei)) ||
        (rc = hp_f32(m, "rope.freq_base", &hp->rope_base, false, 10000.0f, ei)))
        return rc;
    if (hp->n_embd == 0 || hp->n_embd > 65536 || hp->n_ff == 0 || hp->n_ff > (1u << 20) ||
        hp->n_ctx_train == 0)
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET,
                       "implausible sizes: embedding_length %u, feed_forward_length %u, "
                       "context_length %u",
                       hp->n_embd, hp->n_ff, hp->n_ctx_train);
    if (hp->n_layer == 0 || hp->n_layer > MODEL_MAX_LAYERS)
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "block_count %u is outside 1..%d",
                       hp->n_layer, MODEL_MAX_LAYERS);
    if (hp->n_head == 0 || hp->n_head > 1024 || hp->n_head_kv == 0 ||
        hp->n_head % hp->n_head_kv)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET,
                       "head_count %u must be a positive multiple of head_count_kv %u",
                       hp->n_head, hp->n_head_kv);
    char key[128];
    uint32_t hd_default = hp->n_embd / hp->n_head;
    if ((rc = hp_u32(m, "attention.key_length", &hp->head_dim, false, hd_default, ei))) return rc;
    uint32_t vlen;
    if ((rc = hp_u32(m, "attention.value_length", &vlen, false, hp->head_dim, ei))) return rc;
    snprintf(key, sizeof key, "%s.attention.key_length", m->arch_name);
    if (!gguf_find_kv(m->g, key) && hp->n_embd % hp->n_head)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET,
                       "head_count %u does not divide embedding_length %u", hp->n_head,
                       hp->n_embd);
    if (hp->head_dim == 0 || hp->head_dim > 1024 || hp->head_dim % 2 || vlen != hp->head_dim)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET,
                       "head size %u (value length %u) must be even, equal, and at most 1024",
                       hp->head_dim, vlen);
    if ((rc = hp_u32(m, "rope.dimension_count", &hp->rope_dim, false, hp->head_dim, ei))) return rc;
    if (hp->rope_dim == 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return err_set(ei, ERR_SHAPE, ERR_NO_OFFSET,
                       "rope.dimension_count %u must be even and at most the head size %u",
                       hp->rope_dim, hp->head_dim);
    if (!(hp->rms_eps > 0 && hp->rms_eps < 1) || !(hp->rope_base > 0))
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "rms epsilon %g or rope base %g out of range",
                       (double)hp->rms_eps, (double)hp->rope_base);
    return load_rope_extras(m, ei);
}


/* general.architecture: one of the table's rows. */
static int find_arch(struct model *m, const struct gguf_ctx *g, struct err_info *ei)
{
    struct gguf_str a;
    int rc = gguf_get_str(g, "general.architecture", &a);
    if (rc)
        return err_set(ei, rc, ERR_NO_OFFSET, "metadata 'general.architecture' is %s",
                       rc == ERR_NOT_FOUND ? "missing" : "not a string");
    m->arch = -1;
    for (int i = 0; i < MODEL_ARCH_COUNT_; i++)
        if (gguf_str_eq(a, g_archs[i].name)) m->arch = i;
    if (m->arch < 0)
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                       "architecture '%.*s' is not supported (supported: llama, qwen2, qwen3, "
                       "phi3, gemma3)",
                       (int)(a.len > 40 ? 40 : a.len), a.ptr);
    m->desc = &g_archs[m->arch];
    snprintf(m->arch_name, sizeof m->arch_name, "%s", m->desc->name);
    return 0;
}

/* The vocabulary size (the tokenizer's token list if present, else the embedding's rows) and
 * the tensors outside the blocks. */
static int bind_globals(struct model *m, struct err_info *ei)
{
    const struct gguf_ctx *g = m->g;
    struct model_hparams *hp = &m->hp;
    const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "required tensor 'token_embd.weight' is missing");
    uint64_t n_tok = 0;
    uint32_t et;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, NULL) == 0 && n_tok != emb->ne[1])
        return err_set(ei, ERR_SHAPE, tensor_off(m, emb),
                       "vocabulary has %llu tokens but token_embd.weight has %llu rows",
                       (unsigned long long)n_tok, (unsigned long long)emb->ne[1]);
    if (emb->ne[1] == 0 || emb->ne[1] > (1u << 24))
        return err_set(ei, ERR_RANGE, tensor_off(m, emb), "vocabulary size %llu out of range",
                       (unsigned long long)emb->ne[1]);
    hp->n_vocab = (uint32_t)emb->ne[1];
    int rc;
    if ((rc = bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, true, false, &m->tok_embd, ei)) ||
        (rc = bind(m, "output_norm.weight", hp->n_embd, 0, false, false, &m->output_norm, ei)) ||
        (rc = bind(m, "output.weight", hp->n_embd, hp->n_vocab, true, true, &m->output, ei)))
        return rc;
    if (!m->output) m->output = m->tok_embd; /* tied */
    if ((rc = bind(m, "rope_freqs.weight", hp->rope_dim / 2, 0, false, true, &m->rope_freqs, ei)))
        return rc;
    static const char *const unsupported[] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (size_t i = 0; i < 2; i++)
        if (gguf_find_tensor(g, unsupported[i]))
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "LongRoPE tensor '%s' is not supported yet", unsupported[i]);
    return 0;
}

/* Block l's tensors, as the architecture's row says it has them. */
static int bind_layer(struct model *m, uint32_t l, struct err_info *ei)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = m->desc;
    struct model_layer *L = &m->layers[l];
    uint32_t qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    char nm[96];
    snprintf(nm, sizeof nm, "blk.%u.attn_norm.weight", l);
    if (!gguf_find_tensor(m->g, nm))
        return err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET,
                       "block_count is %u but the file has no tensors for block %u (missing '%s')",
                       hp->n_layer, l, nm);
    int rc;
#define BIND(field, suffix, ne0, ne1, mm)                                  \
    snprintf(nm, sizeof nm, "blk.%u." suffix, l);                          \
    if ((rc = bind(m, nm, ne0, ne1, mm, false, &L->field, ei))) return rc;
    BIND(attn_norm, "attn_norm.weight", hp->n_embd, 0, false)
    if (d->fused_qkv) {
        BIND(wqkv, "attn_qkv.weight", hp->n_embd, qd + 2 * kvd, true)
    } else {
        BIND(wq, "attn_q.weight", hp->n_embd, qd, true)
        BIND(wk, "attn_k.weight", hp->n_embd, kvd, true)
        BIND(wv, "attn_v.weight", hp->n_embd, kvd, true)
    }
    if (d->qkv_bias) {
        BIND(bq, "attn_q.bias", qd, 0, false)
        BIND(bk, "attn_k.bias", kvd, 0, false)
        BIND(bv, "attn_v.bias", kvd, 0, false)
    }
    if (d->qk_norm) {
        BIND(q_norm, "attn_q_norm.weight", hp->head_dim, 0, false)
        BIND(k_norm, "attn_k_norm.weight", hp->head_dim, 0, false)
    }
    BIND(wo, "attn_output.weight", qd, hp->n_embd, true)
    if (d->post_norms) {
        BIND(post_attn_norm, "post_attention_norm.weight", hp->n_embd, 0, false)
        BIND(post_ffn_norm, "post_ffw_norm.weight", hp->n_embd, 0, false)
    }
    BIND(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, false)
    if (d->fused_gate_up) {
        BIND(w_up, "ffn_up.weight", hp->n_embd, 2 * hp->n_ff, true)
    } else {
        BIND(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, true)
        BIND(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, true)
    }
    BIND(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, true)
#undef BIND
    L->swa = d->swa && hp->n_swa > 0 && (hp->swa_pattern == 0 || l % hp->swa_pattern < hp->swa_pattern - 1);
    return 0;
}

/* Tensors of blocks past block_count would be silently ignored: refuse, as llama.cpp does. */
static int refuse_extra_blocks(const struct model *m, struct err_info *ei)
{
    for (uint64_t i = 0; i < m->g->n_tensors; i++) {
        const struct gguf_tensor *t = &m->g->tensors[i];
        unsigned long blk;
        char rest;
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", (int)(t->name.len < 63 ? t->name.len : 63), t->name.ptr);
        if (sscanf(nm, "blk.%lu.%c", &blk, &rest) == 2 && blk >= m->hp.n_layer)
            return err_set(ei, ERR_SHAPE, tensor_off(m, t),
                           "tensor '%s' belongs to block %lu but block_count is %u", nm, blk,
                           m->hp.n_layer);
    }
    return 0;
}

int model_load(struct model *m, const struct gguf_ctx *g, struct err_info *ei)
{
    memset(m, 0, sizeof *m);
    m->g = g;
    int rc = find_arch(m, g, ei);
    if (rc) return rc;
    if ((rc = load_hparams(m, ei)) || (rc = bind_globals(m, ei))) goto fail;
    struct model_hparams *hp = &m->hp;
    if (!(m->layers = calloc(hp->n_layer, sizeof *m->layers))) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if ((rc = bind_layer(m, l, ei))) goto fail;
    if ((rc = refuse_extra_blocks(m, ei))) goto fail;
    uint32_t qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    m->max_row = hp->n_embd > qd ? hp->n_embd : qd;
    if (hp->n_ff > m->max_row) m->max_row = hp->n_ff;
    m->max_out = m->max_row;
    if (2 * hp->n_ff > m->max_out) m->max_out = 2 * hp->n_ff;
    if (qd + 2 * kvd > m->max_out) m->max_out = qd + 2 * kvd;
    return 0;
fail:
    model_free(m);
    return rc;
}

int model_open(struct model *m, const char *path, struct err_info *ei)
{
    struct gguf_ctx g;
    int rc = gguf_open(path, &g, ei);
    if (rc) {
        memset(m, 0, sizeof *m);
        return rc;
    }
    /* bind against the local copy first, then move it into the model */
    rc = model_load(m, &g, ei);
    if (rc) {
        gguf_free(&g);
        return rc;
    }
    m->gguf = g;
    m->g = &m->gguf;
    m->owns_gguf = true;
    return 0;
}

void model_free(struct model *m)
{
    if (!m) return;
    free(m->layers);
    if (m->owns_gguf) gguf_free(&m->gguf);
    memset(m, 0, sizeof *m);
}

/* ---- state ---- */

static size_t act_cap_for(const struct model *m)
{
    size_t cap = kern_act_size(m->output->type, (size_t)m->output->ne[0]);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        const struct gguf_tensor *w[] = {L->wq, L->wk, L->wv, L->wqkv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            if (!w[i]) continue;
            size_t s = kern_act_size(w[i]->type, (size_t)w[i]->ne[0]);
            if (s > cap) cap = s;
        }
    }
    return (cap + 63) & ~(size_t)63; /* each row's activation starts on a cache line */
}

uint64_t model_state_bytes(const struct model *m, uint32_t n_ctx)
{
    const struct model_hparams *hp = &m->hp;
    if (n_ctx == 0 || n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    uint64_t qd = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t qkv = qd + 2ull * hp->n_head_kv * hp->head_dim;
    uint64_t per_tok = hp->n_embd + m->max_row + qd + qkv + 3ull * hp->n_ff + m->max_out;
    uint64_t floats = MODEL_BATCH * per_tok + (uint64_t)MODEL_ATT_SLOTS * n_ctx + hp->n_vocab;
    return kv_bytes(hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim) + floats * sizeof(float) +
           (uint64_t)MODEL_BATCH * act_cap_for(m);
}

int model_state_init(struct model_state *st, const struct model *m, uint32_t n_ctx,
                     struct kern_pool *pool, struct err_info *ei)
{
    memset(st, 0, sizeof *st);
    const struct model_hparams *hp = &m->hp;
    if (n_ctx == 0 || n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    st->n_ctx = n_ctx;
    st->pool = pool;
    int rc = kv_init(&st->kv, hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "cannot allocate the KV cache for %u positions", n_ctx);
    size_t B = MODEL_BATCH, qd = (size_t)hp->n_head * hp->head_dim;
    st->x = calloc(B * hp->n_embd, sizeof(float));
    st->xb = calloc(B * m->max_row, sizeof(float));
    st->q = calloc(B * qd, sizeof(float));
    st->qkv = calloc(B * (qd + 2 * (size_t)hp->n_head_kv * hp->head_dim), sizeof(float));
    st->att = calloc((size_t)MODEL_ATT_SLOTS * n_ctx, sizeof(float));
    st->hb = calloc(B * 2 * (size_t)hp->n_ff, sizeof(float));
    st->hb2 = calloc(B * hp->n_ff, sizeof(float));
    st->tmp = calloc(B * m->max_out, sizeof(float));
    st->logits = calloc(hp->n_vocab, sizeof(float));
    st->act_stride = act_cap_for(m);
    st->act = calloc(B, st->act_stride ? st->act_stride : 64);
    if (!st->x || !st->xb || !st->q || !st->qkv || !st->att || !st->hb || !st->hb2 || !st->tmp ||
        !st->logits || !st->act) {
        model_state_free(st);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for model state");
    }
    return 0;
}

void model_state_free(struct model_state *st)
{
    if (!st) return;
    kv_free(&st->kv);
    free(st->x);
    free(st->xb);
    free(st->q);
    free(st->qkv);
    free(st->att);
    free(st->hb);
    free(st->hb2);
    free(st->tmp);
    free(st->logits);
    free(st->act);
    memset(st, 0, sizeof *st);
}

/* ---- forward ---- */

static void rmsnorm(float *out, const float *x, const float *w, size_t n, float eps)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (size_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* Prepare rows x[t*xs .. +ncols) of a batch for weight w's vec_dot type. */
static void prepare(struct model_state *st, const struct gguf_tensor *w, const float *x, size_t xs,
                    uint32_t n)
{
    for (uint32_t t = 0; t < n; t++)
        kern_act_prepare(w->type, x + t * xs, (uint8_t *)st->act + t * st->act_stride,
                         (size_t)w->ne[0]);
}

/* y[t][r] = W row r . prepared activation t, for the n prepared rows. One token gets llama.cpp's
 * vec_dot order, as in its decode; a batch gets its batched order (kern_matmul_ex applies
 * tinyBLAS' rows % 4 rule for float weights; quantized types have one order). kern_matmul_ex
 * loads each weight block once per group of tokens, in fixed row chunks. */
static void matmul(const struct model_state *st, const struct gguf_tensor *w, uint32_t n, float *y,
                   size_t ys)
{
    size_t nrows = (size_t)w->ne[1], ncols = (size_t)w->ne[0];
    kern_matmul_ex(st->pool, w->type, w->data, nrows, ncols, st->act, st->act_stride, n, y,
                   n == 1 ? nrows : ys, n == 1 ? KERN_ORDER_VECDOT : KERN_ORDER_GEMM);
}

/* Rotate one head in place. NORM rotates adjacent pairs, NEOX the halves. The angle of pair i is
 * pos * base^(-2i/rope_dim) built by repeated multiplication (ggml's rope cache), divided by the
 * linear scale and by the optional per-pair frequency factor. */
static void rope_head(float *v, uint32_t rope_dim, uint32_t pos, float base, float scale,
                      const float *freq_factors, int type)
{
    float theta_scale = powf(base, -2.0f / (float)rope_dim);
    float theta = (float)pos;
    for (uint32_t i = 0; i < rope_dim; i += 2) {
        float t = theta / (freq_factors ? freq_factors[i / 2] : 1.0f) / scale;
        float c = cosf(t), s = sinf(t);
        uint32_t a = type == MODEL_ROPE_NEOX ? i / 2 : i;
        uint32_t b = type == MODEL_ROPE_NEOX ? i / 2 + rope_dim / 2 : i + 1;
        float x0 = v[a], x1 = v[b];
        /* the contraction gcc applies to ggml's rope loop, so angles land on the same bits */
        v[a] = fmaf(x0, c, -(x1 * s));
        v[b] = fmaf(x1, c, x0 * s);
        theta *= theta_scale;
    }
}

struct attn_job {
    const struct model *m;
    struct model_state *st;
    uint32_t layer, pos0, n; /* batch rows 0..n-1 are at positions pos0.. */
    bool swa;
    float *out; /* [n][out_stride] attention output per row, heads concatenated */
    size_t out_stride;
};

/* Task k computes the (row, head) pairs k, k + n_tasks, ... entirely by itself, with its own
 * score row, so the result of every pair is independent of the scheduling. */
static void attn_task(void *arg, int task, int n_tasks)
{
    struct attn_job *j = arg;
    const struct model_hparams *hp = &j->m->hp;
    struct model_state *st = j->st;
    uint32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    size_t qd = (size_t)hp->n_head * hd;
    float scale = j->m->desc->q_prescale ? 1.0f : 1.0f / sqrtf((float)hd);
    float *att = st->att + (size_t)task * st->n_ctx;
    uint32_t pairs = j->n * hp->n_head;
    for (uint32_t pr = (uint32_t)task; pr < pairs; pr += (uint32_t)n_tasks) {
        uint32_t row = pr / hp->n_head, h = pr % hp->n_head;
        uint32_t pos = j->pos0 + row;
        uint32_t first = (j->swa && pos >= hp->n_swa) ? pos - hp->n_swa + 1 : 0;
        const float *q = st->q + row * qd + (size_t)h * hd;
        uint32_t kvh = h / group;
        /* llama.cpp sees a score row of n_pad cells (its KV size padded to 256); cells outside the
         * window are masked. Reproducing the row layout reproduces its summation groups. */
        uint32_t n = pos + 1;
        size_t n_pad = ((size_t)n + 255) / 256 * 256;
        for (uint32_t t = 0; t < first; t++) att[t] = -INFINITY;
        kern_dot_f32_rows(att + first, q, kv_k(&st->kv, j->layer, first) + (size_t)kvh * hd, st->kv.kv_dim, hd,
                          n - first);
        for (uint32_t t = first; t < n; t++) att[t] *= scale;
        kern_softmax_f32(att, n, n_pad);
        float *o = j->out + row * j->out_stride + (size_t)h * hd;
        const struct kern_vt vt = {kv_v_layer(&st->kv, j->layer) + (size_t)kvh * hd * KV_VBLK, KV_VBLK, KV_VBLK,
                                   (size_t)st->kv.kv_dim * KV_VBLK};
        kern_wsum_f32(o, att, &vt, n, n_pad,
                      hd, j->n > 1 ? KERN_ORDER_GEMM : KERN_ORDER_VECDOT);
    }
}

static int embed(const struct model *m, int32_t token, float *x)
{
    const struct gguf_tensor *e = m->tok_embd;
    size_t row = (size_t)blk_row_size(e->type, e->ne[0]);
    int rc = kern_dequant_row(e->type, (const uint8_t *)e->data + (size_t)token * row, x,
                              (size_t)e->ne[0]);
    if (rc == 0 && m->desc->embd_scale) {
        float s = sqrtf((float)m->hp.n_embd);
        for (uint32_t i = 0; i < m->hp.n_embd; i++) x[i] *= s;
    }
    return rc;
}

/* GELU (tanh form) evaluated as ggml-cpu does: through a table indexed by the fp16 input and
 * holding fp16 outputs, with pass-through beyond +-10. Emulated without the 128 KB table. */
static float gelu_ggml(float x)
{
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    float f = util_fp16_to_f32(util_f32_to_fp16(x));
    float y = 0.5f * f * (1.0f + tanhf(0.79788456080286535587989211986876f * f *
                                        (1.0f + 0.044715f * f * f)));
    return util_fp16_to_f32(util_f32_to_fp16(y));
}

static void add_bias(float *y, const struct gguf_tensor *b, size_t n)
{
    const float *bb = b->data;
    for (size_t i = 0; i < n; i++) y[i] += bb[i];
}

/* One function on purpose: a layer's steps (norm, q/k/v, RoPE, V scatter, attention, FFN)
 * read top to bottom in the order of the llama.cpp graph they reproduce bit for bit, and share a
 * dozen local sizes and strides; the attention and FFN blocks are where it would split. */
int model_forward_batch(const struct model *m, struct model_state *st, const int32_t *tokens,
                        uint32_t n, uint32_t pos0, int logits, model_logits_fn cb, void *ud)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = m->desc;
    if (n == 0 || n > MODEL_BATCH) return ERR_INVALID;
    if (pos0 >= st->n_ctx || n > st->n_ctx - pos0) return ERR_CONTEXT;
    for (uint32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab) return ERR_RANGE;
    uint32_t hd = hp->head_dim, ne = hp->n_embd, nff = hp->n_ff;
    size_t qd = (size_t)hp->n_head * hd, kvd = (size_t)hp->n_head_kv * hd, qkvd = qd + 2 * kvd;
    size_t xbs = m->max_row, tms = m->max_out;
    int rc;
    for (uint32_t t = 0; t < n; t++)
        if ((rc = embed(m, tokens[t], st->x + (size_t)t * ne))) return rc;
    const float *ff = m->rope_freqs ? m->rope_freqs->data : NULL;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        for (uint32_t t = 0; t < n; t++)
            rmsnorm(st->xb + t * xbs, st->x + (size_t)t * ne, L->attn_norm->data, ne, hp->rms_eps);
        if (d->fused_qkv) {
            prepare(st, L->wqkv, st->xb, xbs, n);
            matmul(st, L->wqkv, n, st->qkv, qkvd);
            for (uint32_t t = 0; t < n; t++) {
                const float *r = st->qkv + t * qkvd;
                memcpy(st->q + t * qd, r, qd * sizeof(float));
                memcpy(kv_k(&st->kv, l, pos0 + t), r + qd, kvd * sizeof(float));
            }
        } else {
            /* K and V rows of consecutive positions are contiguous in the cache */
            prepare(st, L->wq, st->xb, xbs, n);
            matmul(st, L->wq, n, st->q, qd);
            if (L->wk->type != L->wq->type) prepare(st, L->wk, st->xb, xbs, n);
            matmul(st, L->wk, n, kv_k(&st->kv, l, pos0), kvd);
            if (L->wv->type != L->wk->type) prepare(st, L->wv, st->xb, xbs, n);
            matmul(st, L->wv, n, st->tmp, tms); /* V rows go to the transposed cache below */
        }
        /* V row of token t, before it is scattered into the cache */
        float *vrows = d->fused_qkv ? st->qkv + qd + kvd : st->tmp;
        size_t vrs = d->fused_qkv ? qkvd : tms;
        /* SWA layers (gemma3) use their own base and no linear scaling */
        float base = L->swa ? hp->rope_base_swa : hp->rope_base;
        float rscale = L->swa ? 1.0f : hp->rope_scale;
        for (uint32_t t = 0; t < n; t++) {
            uint32_t pos = pos0 + t;
            float *q = st->q + t * qd, *kc = kv_k(&st->kv, l, pos), *vc = vrows + t * vrs;
            if (d->qkv_bias) {
                add_bias(q, L->bq, qd);
                add_bias(kc, L->bk, kvd);
                add_bias(vc, L->bv, kvd);
            }
            if (d->qk_norm) {
                for (uint32_t h = 0; h < hp->n_head; h++)
                    rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, L->q_norm->data, hd, hp->rms_eps);
                for (uint32_t h = 0; h < hp->n_head_kv; h++)
                    rmsnorm(kc + (size_t)h * hd, kc + (size_t)h * hd, L->k_norm->data, hd, hp->rms_eps);
            }
            for (uint32_t h = 0; h < hp->n_head; h++)
                rope_head(q + (size_t)h * hd, hp->rope_dim, pos, base, rscale, ff, hp->rope_type);
            for (uint32_t h = 0; h < hp->n_head_kv; h++)
                rope_head(kc + (size_t)h * hd, hp->rope_dim, pos, base, rscale, ff, hp->rope_type);
            if (d->q_prescale) {
                float qs = 1.0f / sqrtf((float)hd);
                for (size_t i = 0; i < qd; i++) q[i] *= qs;
            }
            kv_v_put(&st->kv, l, pos, vc);
        }
        struct attn_job job = {m, st, l, pos0, n, L->swa, st->xb, xbs};
        uint32_t pairs = n * hp->n_head;
        kern_pool_run(st->pool, attn_task, &job, (int)(pairs < MODEL_ATT_SLOTS ? pairs : MODEL_ATT_SLOTS));
        prepare(st, L->wo, st->xb, xbs, n);
        matmul(st, L->wo, n, st->tmp, tms);
        for (uint32_t t = 0; t < n; t++) {
            float *o = st->tmp + t * tms, *x = st->x + (size_t)t * ne;
            if (d->post_norms) rmsnorm(o, o, L->post_attn_norm->data, ne, hp->rms_eps);
            for (uint32_t i = 0; i < ne; i++) x[i] += o[i];
            rmsnorm(st->xb + t * xbs, x, L->ffn_norm->data, ne, hp->rms_eps);
        }
        size_t gs = d->fused_gate_up ? 2 * (size_t)nff : nff; /* row stride of gate */
        float *up = st->hb2;
        size_t us = nff;
        if (d->fused_gate_up) {
            prepare(st, L->w_up, st->xb, xbs, n);
            matmul(st, L->w_up, n, st->hb, gs); /* [gate | up] per row */
            up = st->hb + nff;
            us = gs;
        } else {
            prepare(st, L->w_gate, st->xb, xbs, n);
            matmul(st, L->w_gate, n, st->hb, gs);
            if (L->w_up->type != L->w_gate->type) prepare(st, L->w_up, st->xb, xbs, n);
            matmul(st, L->w_up, n, up, us);
        }
        for (uint32_t t = 0; t < n; t++) {
            float *g = st->hb + t * gs;
            const float *u = up + t * us;
            if (d->gelu) {
                for (uint32_t i = 0; i < nff; i++) g[i] = gelu_ggml(g[i]) * u[i];
            } else {
                kern_swiglu_f32(g, g, u, nff);
            }
        }
        prepare(st, L->w_down, st->hb, gs, n);
        matmul(st, L->w_down, n, st->tmp, tms);
        for (uint32_t t = 0; t < n; t++) {
            float *o = st->tmp + t * tms, *x = st->x + (size_t)t * ne;
            if (d->post_norms) rmsnorm(o, o, L->post_ffn_norm->data, ne, hp->rms_eps);
            for (uint32_t i = 0; i < ne; i++) x[i] += o[i];
        }
    }
    if (logits == MODEL_LOGITS_NONE) return 0;
    for (uint32_t t = logits == MODEL_LOGITS_ALL ? 0 : n - 1; t < n; t++) {
        rmsnorm(st->xb, st->x + (size_t)t * ne, m->output_norm->data, ne, hp->rms_eps);
        prepare(st, m->output, st->xb, xbs, 1);
        matmul(st, m->output, 1, st->logits, 0);
        if (hp->logit_softcap > 0) {
            float c = hp->logit_softcap;
            for (uint32_t i = 0; i < hp->n_vocab; i++) st->logits[i] = c * tanhf(st->logits[i] / c);
        }
        if (logits == MODEL_LOGITS_ALL && cb && (rc = cb(ud, t, st->logits))) return rc;
    }
    return 0;
}

int model_forward(const struct model *m, struct model_state *st, int32_t token, uint32_t pos,
                  bool want_logits)
{
    return model_forward_batch(m, st, &token, 1, pos, want_logits ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE,
                               NULL, NULL);
}
