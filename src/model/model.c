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
                           gguf_type_name(t->type));
    } else if (t->type != GGUF_T_F32) {
        return err_set(ei, ERR_BAD_TYPE, tensor_off(m, t),
                       "tensor '%s' must be F32 (norm weights), got %s", name,
                       gguf_type_name(t->type));
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
    /* RoPE scaling: none or linear (the factor divides positions). */
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

int model_load(struct model *m, const struct gguf_ctx *g, struct err_info *ei)
{
    memset(m, 0, sizeof *m);
    m->g = g;
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
    if ((rc = load_hparams(m, ei))) goto fail;
    struct model_hparams *hp = &m->hp;

    /* Vocabulary size: the tokenizer's token list if present, else the embedding's rows. */
    const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) {
        rc = err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "required tensor 'token_embd.weight' is missing");
        goto fail;
    }
    uint64_t n_tok = 0;
    uint32_t et;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, NULL) == 0) {
        if (n_tok != emb->ne[1]) {
            rc = err_set(ei, ERR_SHAPE, tensor_off(m, emb),
                         "vocabulary has %llu tokens but token_embd.weight has %llu rows",
                         (unsigned long long)n_tok, (unsigned long long)emb->ne[1]);
            goto fail;
        }
    }
    if (emb->ne[1] == 0 || emb->ne[1] > (1u << 24)) {
        rc = err_set(ei, ERR_RANGE, tensor_off(m, emb), "vocabulary size %llu out of range",
                     (unsigned long long)emb->ne[1]);
        goto fail;
    }
    hp->n_vocab = (uint32_t)emb->ne[1];
    uint32_t qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    if ((rc = bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, true, false, &m->tok_embd, ei)) ||
        (rc = bind(m, "output_norm.weight", hp->n_embd, 0, false, false, &m->output_norm, ei)) ||
        (rc = bind(m, "output.weight", hp->n_embd, hp->n_vocab, true, true, &m->output, ei)))
        goto fail;
    if (!m->output) m->output = m->tok_embd; /* tied */
    if ((rc = bind(m, "rope_freqs.weight", hp->rope_dim / 2, 0, false, true, &m->rope_freqs, ei)))
        goto fail;
    static const char *const unsupported[] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (size_t i = 0; i < 2; i++)
        if (gguf_find_tensor(g, unsupported[i])) {
            rc = err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                         "LongRoPE tensor '%s' is not supported yet", unsupported[i]);
            goto fail;
        }

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        struct model_layer *L = &m->layers[l];
        char nm[96];
        char probe[64];
        snprintf(probe, sizeof probe, "blk.%u.attn_norm.weight", l);
        if (!gguf_find_tensor(g, probe)) {
            rc = err_set(ei, ERR_NOT_FOUND, ERR_NO_OFFSET,
                         "block_count is %u but the file has no tensors for block %u "
                         "(missing '%s')",
                         hp->n_layer, l, probe);
            goto fail;
        }
#define BIND(field, suffix, ne0, ne1, mm)                                          \
    snprintf(nm, sizeof nm, "blk.%u." suffix, l);                                  \
    if ((rc = bind(m, nm, ne0, ne1, mm, false, &L->field, ei))) goto fail;
        const struct model_arch_desc *d = m->desc;
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
        L->swa = d->swa && hp->n_swa > 0 &&
                 (hp->swa_pattern == 0 || l % hp->swa_pattern < hp->swa_pattern - 1);
#undef BIND
    }
    /* Tensors of blocks past block_count would be silently ignored: refuse, as llama.cpp does. */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        unsigned long blk;
        char rest;
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", (int)(t->name.len < 63 ? t->name.len : 63), t->name.ptr);
        if (sscanf(nm, "blk.%lu.%c", &blk, &rest) == 2 && blk >= hp->n_layer) {
            rc = err_set(ei, ERR_SHAPE, tensor_off(m, t),
                         "tensor '%s' belongs to block %lu but block_count is %u", nm, blk,
                         hp->n_layer);
            goto fail;
        }
    }
    m->max_row = hp->n_embd > qd ? hp->n_embd : qd;
    if (hp->n_ff > m->max_row) m->max_row = hp->n_ff;
    m->max_out = m->max_row > hp->n_vocab ? m->max_row : hp->n_vocab;
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
    size_t cap = 0;
    const struct gguf_tensor *all[] = {m->output};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        size_t s = kern_act_size(all[i]->type, (size_t)all[i]->ne[0]);
        if (s > cap) cap = s;
    }
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        const struct gguf_tensor *w[] = {L->wq, L->wk, L->wv, L->wqkv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            if (!w[i]) continue;
            size_t s = kern_act_size(w[i]->type, (size_t)w[i]->ne[0]);
            if (s > cap) cap = s;
        }
    }
    return cap;
}

uint64_t model_state_bytes(const struct model *m, uint32_t n_ctx)
{
    const struct model_hparams *hp = &m->hp;
    if (n_ctx == 0 || n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    uint64_t qd = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t qkv = qd + 2ull * hp->n_head_kv * hp->head_dim;
    uint64_t floats = hp->n_embd + m->max_row + qd + qkv + (uint64_t)hp->n_head * n_ctx +
                      3ull * hp->n_ff + m->max_out + hp->n_vocab;
    return kv_bytes(hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim) + floats * sizeof(float) +
           act_cap_for(m);
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
    size_t qd = (size_t)hp->n_head * hp->head_dim;
    st->x = calloc(hp->n_embd, sizeof(float));
    st->xb = calloc(m->max_row, sizeof(float));
    st->q = calloc(qd, sizeof(float));
    st->att = calloc((size_t)hp->n_head * n_ctx, sizeof(float));
    st->qkv = calloc(qd + 2 * (size_t)hp->n_head_kv * hp->head_dim, sizeof(float));
    st->hb = calloc(2 * (size_t)hp->n_ff, sizeof(float));
    st->hb2 = calloc(hp->n_ff, sizeof(float));
    st->tmp = calloc(m->max_out, sizeof(float));
    st->logits = calloc(hp->n_vocab, sizeof(float));
    st->act_cap = act_cap_for(m);
    st->act = calloc(1, st->act_cap ? st->act_cap : 1);
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

/* y = W x for a bound weight tensor. act must already hold x prepared for W's type. */
static void matvec(const struct model_state *st, const struct gguf_tensor *w, float *y)
{
    kern_matvec(st->pool, w->type, w->data, (size_t)w->ne[1], (size_t)w->ne[0], st->act, y);
}

static void prepare(struct model_state *st, const struct gguf_tensor *w, const float *x)
{
    kern_act_prepare(w->type, x, st->act, (size_t)w->ne[0]);
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
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
        theta *= theta_scale;
    }
}

struct attn_job {
    const struct model *m;
    struct model_state *st;
    uint32_t layer, pos;
    uint32_t first; /* first visible key position (sliding window) */
    float *out;     /* [n_head * head_dim] */
};

static void attn_task(void *arg, int task, int n_tasks)
{
    struct attn_job *j = arg;
    const struct model_hparams *hp = &j->m->hp;
    struct model_state *st = j->st;
    uint32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float scale = j->m->desc->q_prescale ? 1.0f : 1.0f / sqrtf((float)hd);
    for (uint32_t h = (uint32_t)task; h < hp->n_head; h += (uint32_t)n_tasks) {
        const float *q = st->q + (size_t)h * hd;
        float *att = st->att + (size_t)h * st->n_ctx;
        uint32_t kvh = h / group;
        float mx = -INFINITY;
        for (uint32_t t = j->first; t <= j->pos; t++) {
            const float *k = kv_k(&st->kv, j->layer, t) + (size_t)kvh * hd;
            float s = kern_dot_f32(q, k, hd) * scale;
            att[t] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (uint32_t t = j->first; t <= j->pos; t++) {
            float e = expf(att[t] - mx);
            att[t] = e;
            sum += (double)e;
        }
        float inv = (float)(1.0 / sum);
        float *o = j->out + (size_t)h * hd;
        memset(o, 0, hd * sizeof(float));
        for (uint32_t t = j->first; t <= j->pos; t++) {
            const float *v = kv_v(&st->kv, j->layer, t) + (size_t)kvh * hd;
            float a = att[t] * inv;
            for (uint32_t i = 0; i < hd; i++) o[i] += a * v[i];
        }
    }
}

static int embed(const struct model *m, int32_t token, float *x)
{
    const struct gguf_tensor *e = m->tok_embd;
    size_t row = (size_t)gguf_row_size(e->type, e->ne[0]);
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

int model_forward(const struct model *m, struct model_state *st, int32_t token, uint32_t pos,
                  bool want_logits)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = m->desc;
    if (token < 0 || (uint32_t)token >= hp->n_vocab) return ERR_RANGE;
    if (pos >= st->n_ctx) return ERR_CONTEXT;
    int rc = embed(m, token, st->x);
    if (rc) return rc;
    uint32_t hd = hp->head_dim, n = hp->n_embd;
    size_t qd = (size_t)hp->n_head * hd, kvd = (size_t)hp->n_head_kv * hd;
    const float *ff = m->rope_freqs ? m->rope_freqs->data : NULL;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        float *kc = kv_k(&st->kv, l, pos), *vc = kv_v(&st->kv, l, pos);
        rmsnorm(st->xb, st->x, L->attn_norm->data, n, hp->rms_eps);
        if (d->fused_qkv) {
            prepare(st, L->wqkv, st->xb);
            matvec(st, L->wqkv, st->qkv);
            memcpy(st->q, st->qkv, qd * sizeof(float));
            memcpy(kc, st->qkv + qd, kvd * sizeof(float));
            memcpy(vc, st->qkv + qd + kvd, kvd * sizeof(float));
        } else {
            prepare(st, L->wq, st->xb);
            matvec(st, L->wq, st->q);
            if (L->wk->type != L->wq->type) prepare(st, L->wk, st->xb);
            matvec(st, L->wk, kc);
            if (L->wv->type != L->wk->type) prepare(st, L->wv, st->xb);
            matvec(st, L->wv, vc);
        }
        if (d->qkv_bias) {
            add_bias(st->q, L->bq, qd);
            add_bias(kc, L->bk, kvd);
            add_bias(vc, L->bv, kvd);
        }
        if (d->qk_norm) {
            for (uint32_t h = 0; h < hp->n_head; h++)
                rmsnorm(st->q + (size_t)h * hd, st->q + (size_t)h * hd, L->q_norm->data, hd, hp->rms_eps);
            for (uint32_t h = 0; h < hp->n_head_kv; h++)
                rmsnorm(kc + (size_t)h * hd, kc + (size_t)h * hd, L->k_norm->data, hd, hp->rms_eps);
        }
        /* SWA layers (gemma3) use their own base and no linear scaling */
        float base = L->swa ? hp->rope_base_swa : hp->rope_base;
        float rscale = L->swa ? 1.0f : hp->rope_scale;
        for (uint32_t h = 0; h < hp->n_head; h++)
            rope_head(st->q + (size_t)h * hd, hp->rope_dim, pos, base, rscale, ff, hp->rope_type);
        for (uint32_t h = 0; h < hp->n_head_kv; h++)
            rope_head(kc + (size_t)h * hd, hp->rope_dim, pos, base, rscale, ff, hp->rope_type);
        if (d->q_prescale) {
            float qs = 1.0f / sqrtf((float)hd);
            for (size_t i = 0; i < qd; i++) st->q[i] *= qs;
        }
        uint32_t first = (L->swa && pos >= hp->n_swa) ? pos - hp->n_swa + 1 : 0;
        struct attn_job job = {m, st, l, pos, first, st->xb};
        kern_pool_run(st->pool, attn_task, &job, (int)hp->n_head);
        prepare(st, L->wo, st->xb);
        matvec(st, L->wo, st->tmp);
        if (d->post_norms) rmsnorm(st->tmp, st->tmp, L->post_attn_norm->data, n, hp->rms_eps);
        for (uint32_t i = 0; i < n; i++) st->x[i] += st->tmp[i];

        rmsnorm(st->xb, st->x, L->ffn_norm->data, n, hp->rms_eps);
        float *gate = st->hb, *up = st->hb2;
        if (d->fused_gate_up) {
            prepare(st, L->w_up, st->xb);
            matvec(st, L->w_up, st->hb); /* [gate | up] */
            up = st->hb + hp->n_ff;
        } else {
            prepare(st, L->w_gate, st->xb);
            matvec(st, L->w_gate, gate);
            if (L->w_up->type != L->w_gate->type) prepare(st, L->w_up, st->xb);
            matvec(st, L->w_up, up);
        }
        if (d->gelu) {
            for (uint32_t i = 0; i < hp->n_ff; i++) gate[i] = gelu_ggml(gate[i]) * up[i];
        } else {
            for (uint32_t i = 0; i < hp->n_ff; i++) {
                float g = gate[i];
                gate[i] = (g / (1.0f + expf(-g))) * up[i];
            }
        }
        prepare(st, L->w_down, gate);
        matvec(st, L->w_down, st->tmp);
        if (d->post_norms) rmsnorm(st->tmp, st->tmp, L->post_ffn_norm->data, n, hp->rms_eps);
        for (uint32_t i = 0; i < n; i++) st->x[i] += st->tmp[i];
    }
    if (!want_logits) return 0;
    rmsnorm(st->xb, st->x, m->output_norm->data, n, hp->rms_eps);
    prepare(st, m->output, st->xb);
    matvec(st, m->output, st->logits);
    if (hp->logit_softcap > 0) {
        float c = hp->logit_softcap;
        for (uint32_t i = 0; i < hp->n_vocab; i++) st->logits[i] = c * tanhf(st->logits[i] / c);
    }
    return 0;
}
