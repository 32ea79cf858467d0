/* model: hyperparameters, tensor binding and the llama-family forward pass.
 *
 * The numerics follow ggml's CPU graph for llama so that logits agree with llama.cpp:
 *   - RMSNorm sums squares in double, then scale = 1/sqrtf(mean + eps), then multiplies by w.
 *   - RoPE angles are built by repeated float multiplication theta *= base^(-2/n_dims), as
 *     ggml's rope cache does, and positions are divided by the linear scaling factor.
 *   - Weight matmuls convert the activation to the weight's vec_dot type first (kern).
 *   - Attention follows the session's KV type (model.h): f32 scores and softmax over an F32 or
 *     F16 cache (F16 rounds q and the probabilities to fp16 as ggml does), llama.cpp's flash
 *     attention kernel and Hadamard rotation over a Q8_0 cache.
 *   - A context shift re-rotates kept keys by the negative delta, as llama.cpp's K-shift.
 * Invariants: after model_load every tensor pointer the forward pass touches exists, has the
 * shape it expects and a type kern supports; model_forward and model_kv_shift never allocate. */
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
    m->fingerprint = gguf_fingerprint(g);
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

/* Every size a state of this model needs, computed once for model_state_init_kv and
 * model_state_bytes_kv so the two cannot disagree. Element counts unless named _bytes. */
struct state_layout {
    uint32_t n_ctx;
    size_t qd, kvd, xbs, tms, hbs;
    size_t n_qkv, n_hb2;     /* 0 when the architecture does not use the buffer */
    size_t n_att;            /* score row per slot (0 for Q8_0: flash attention needs none) */
    size_t ascr_stride;      /* bytes per attention slot of q / probabilities in the cache type */
    size_t act_stride;       /* bytes per prepared activation row */
    uint32_t rot_k, rot_v;
};

static int state_layout(const struct model *m, uint32_t n_ctx, int kv_type, struct state_layout *L,
                        struct err_info *ei)
{
    const struct model_hparams *hp = &m->hp;
    memset(L, 0, sizeof *L);
    if (n_ctx == 0 || n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    L->n_ctx = n_ctx;
    uint32_t hd = hp->head_dim;
    L->qd = (size_t)hp->n_head * hd;
    L->kvd = (size_t)hp->n_head_kv * hd;
    L->xbs = hp->n_embd > L->qd ? hp->n_embd : L->qd;
    L->tms = hp->n_embd > L->kvd ? hp->n_embd : L->kvd;
    L->hbs = m->desc->fused_gate_up ? 2 * (size_t)hp->n_ff : hp->n_ff;
    L->n_hb2 = m->desc->fused_gate_up ? 0 : hp->n_ff;
    L->n_qkv = m->desc->fused_qkv ? L->qd + 2 * L->kvd : 0;
    L->act_stride = act_cap_for(m);
    switch (kv_type) {
    case KV_F32: L->n_att = (size_t)MODEL_ATT_Q * n_ctx; break;
    case KV_F16: { /* q in fp16, then the probabilities in fp16 (one pair), or the batch's q */
        L->n_att = (size_t)MODEL_ATT_Q * n_ctx;
        size_t pair = (hd + (size_t)n_ctx) * 2, batch = (size_t)MODEL_ATT_Q * hd * sizeof(float);
        L->ascr_stride = ((pair > batch ? pair : batch) + 63) & ~(size_t)63;
        break;
    }
    case KV_Q8_0:
        if (hd % KV_QBLK)
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "a Q8_0 KV cache needs a head size that is a multiple of 32 (this model's is %u)", hd);
        L->ascr_stride = ((hd / KV_QBLK) * KV_QBLK_BYTES + 63) & ~(size_t)63;
        if (hd % 64 == 0) { /* llama.cpp's attn_rot_k / attn_rot_v */
            L->rot_v = 64;
            for (L->rot_k = 64; hd % (2 * L->rot_k) == 0;) L->rot_k *= 2;
        }
        break;
    default: return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "unknown KV cache type %d", kv_type);
    }
    return 0;
}

uint64_t model_state_bytes_kv(const struct model *m, uint32_t n_ctx, int kv_type)
{
    const struct model_hparams *hp = &m->hp;
    struct state_layout L;
    if (state_layout(m, n_ctx, kv_type, &L, NULL)) return 0;
    uint64_t kv = kv_mem_bytes(kv_type, hp->n_layer, L.n_ctx, (uint32_t)L.kvd);
    if (!kv) return 0;
    uint64_t per_tok = hp->n_embd + L.xbs + L.qd + L.kvd + L.n_qkv + L.hbs + L.n_hb2 + L.tms;
    uint64_t floats = MODEL_BATCH * per_tok + (uint64_t)MODEL_ATT_SLOTS * L.n_att + hp->n_vocab;
    return kv + floats * sizeof(float) + (uint64_t)MODEL_ATT_SLOTS * L.ascr_stride +
           (uint64_t)MODEL_BATCH * L.act_stride;
}

uint64_t model_state_bytes(const struct model *m, uint32_t n_ctx)
{
    return model_state_bytes_kv(m, n_ctx, KV_F32);
}

/* calloc(n, size), or NULL without allocating when n == 0 (an unused buffer). */
static void *calloc_opt(size_t n, size_t size, bool *fail)
{
    if (!n) return NULL;
    void *p = calloc(n, size);
    if (!p) *fail = true;
    return p;
}

int model_state_init_kv(struct model_state *st, const struct model *m, uint32_t n_ctx, int kv_type,
                        struct kern_pool *pool, struct err_info *ei)
{
    memset(st, 0, sizeof *st);
    const struct model_hparams *hp = &m->hp;
    struct state_layout L;
    int rc = state_layout(m, n_ctx, kv_type, &L, ei);
    if (rc) return rc;
    st->n_ctx = L.n_ctx;
    st->kv_type = kv_type;
    st->rot_k = L.rot_k;
    st->rot_v = L.rot_v;
    st->pool = pool;
    rc = kv_init(&st->kv, kv_type, hp->n_layer, L.n_ctx, (uint32_t)L.kvd);
    if (rc)
        return err_set(ei, rc, ERR_NO_OFFSET, "cannot allocate the %s KV cache for %u positions",
                       kv_type_name(kv_type), L.n_ctx);
    size_t B = MODEL_BATCH;
    bool fail = false;
    st->xbs = L.xbs;
    st->tms = L.tms;
    st->hbs = L.hbs;
    st->x = calloc_opt(B * hp->n_embd, sizeof(float), &fail);
    st->xb = calloc_opt(B * L.xbs, sizeof(float), &fail);
    st->q = calloc_opt(B * L.qd, sizeof(float), &fail);
    st->kb = calloc_opt(B * L.kvd, sizeof(float), &fail);
    st->qkv = calloc_opt(B * L.n_qkv, sizeof(float), &fail);
    st->att = calloc_opt((size_t)MODEL_ATT_SLOTS * L.n_att, sizeof(float), &fail);
    st->ascr_stride = L.ascr_stride;
    st->ascr = calloc_opt(MODEL_ATT_SLOTS, L.ascr_stride, &fail);
    st->hb = calloc_opt(B * L.hbs, sizeof(float), &fail);
    st->hb2 = calloc_opt(B * L.n_hb2, sizeof(float), &fail);
    st->tmp = calloc_opt(B * L.tms, sizeof(float), &fail);
    st->logits = calloc_opt(hp->n_vocab, sizeof(float), &fail);
    st->act_stride = L.act_stride;
    st->act = calloc_opt(B, st->act_stride ? st->act_stride : 64, &fail);
    if (fail) {
        model_state_free(st);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for model state");
    }
    return 0;
}

int model_state_init(struct model_state *st, const struct model *m, uint32_t n_ctx,
                     struct kern_pool *pool, struct err_info *ei)
{
    return model_state_init_kv(st, m, n_ctx, KV_F32, pool, ei);
}

void model_state_free(struct model_state *st)
{
    if (!st) return;
    kv_free(&st->kv);
    free(st->x);
    free(st->xb);
    free(st->q);
    free(st->kb);
    free(st->qkv);
    free(st->att);
    free(st->ascr);
    free(st->hb);
    free(st->hb2);
    free(st->tmp);
    free(st->logits);
    free(st->act);
    memset(st, 0, sizeof *st);
}

void model_snap_expect(const struct model *m, const struct model_state *st, struct kv_snap_expect *x)
{
    memset(x, 0, sizeof *x);
    x->fingerprint = m->fingerprint;
    x->kv_type = st->kv_type;
    x->n_layer = st->kv.n_layer;
    x->kv_dim = st->kv.kv_dim;
    x->n_ctx = st->n_ctx;
    x->n_vocab = m->hp.n_vocab;
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

/* Activations about to be rounded to 8 bits (a quantized weight's Q8 dot type, a Q8_0 cache):
 * the rounding keeps the block's largest finite magnitude and turns a NaN into a finite number
 * (as ggml's), so a NaN weight scale would become finite garbage downstream. They are checked
 * first, rows x[t*xs .. +len) for t < n: len values against the len*n_out products the matmul
 * after it costs. The first stage (st->stage) with one is kept; the pass then fails. */
static void act_check(struct model_state *st, const float *x, size_t xs, uint32_t n, size_t len)
{
    if (st->act_bad != MODEL_PROBE_NONE) return;
    for (uint32_t t = 0; t < n; t++) {
        uint32_t bad = 0;
        for (size_t i = 0; i < len; i++) bad += !isfinite(x[t * xs + i]);
        if (bad) {
            st->act_bad = st->stage;
            return;
        }
    }
}

/* Prepare rows x[t*xs .. +ncols) of a batch for weight w's vec_dot type. */
static void prepare(struct model_state *st, const struct gguf_tensor *w, const float *x, size_t xs,
                    uint32_t n)
{
    if (w->type != BLK_T_F32 && w->type != BLK_T_F16 && w->type != BLK_T_BF16)
        act_check(st, x, xs, n, (size_t)w->ne[0]);
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
                   n == 1 ? nrows : ys, n == 1 || st->decode_order ? KERN_ORDER_VECDOT : KERN_ORDER_GEMM);
}

/* Rotate one head in place. NORM rotates adjacent pairs, NEOX the halves. The angle of pair i is
 * pos * base^(-2i/rope_dim) built by repeated multiplication (ggml's rope cache), divided by the
 * linear scale and by the optional per-pair frequency factor. pos is signed: a context shift
 * rotates by a negative delta, as llama.cpp's K-shift does. */
static void rope_head(float *v, uint32_t rope_dim, int32_t pos, float base, float scale,
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

/* RoPE of every head of a row of n_heads heads, with layer l's base and scaling. */
static void rope_row(const struct model *m, uint32_t l, float *row, uint32_t n_heads, int32_t pos)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_layer *L = &m->layers[l];
    /* SWA layers (gemma3) use their own base and no linear scaling */
    float base = L->swa ? hp->rope_base_swa : hp->rope_base;
    float rscale = L->swa ? 1.0f : hp->rope_scale;
    const float *ff = m->rope_freqs ? m->rope_freqs->data : NULL;
    for (uint32_t h = 0; h < n_heads; h++)
        rope_head(row + (size_t)h * hp->head_dim, hp->rope_dim, pos, base, rscale, ff, hp->rope_type);
}

/* llama.cpp's Hadamard rotation of a row for a quantized cache: chunks of `chunk` (a power of
 * two dividing head_dim, so no chunk straddles heads); 0 means none. */
static void hadamard_row(float *row, size_t n, uint32_t chunk)
{
    if (!chunk) return;
    for (size_t i = 0; i < n; i += chunk) kern_fwht_f32(row + i, chunk);
}

/* Store position pos's K row (rotated when the cache says so) and V row in the cache's type. */
static void kv_store(struct model_state *st, uint32_t l, uint32_t pos, float *k, float *v)
{
    struct kv_cache *kv = &st->kv;
    switch (kv->type) {
    case KV_F32:
        memcpy(kv_k(kv, l, pos), k, kv->kv_dim * sizeof(float));
        kv_v_put(kv, l, pos, v);
        break;
    case KV_F16: /* ggml's fp32 -> fp16 (round to nearest even) */
        kern_act_prepare(BLK_T_F16, k, kv_k_row(kv, l, pos), kv->kv_dim);
        kv_v_put(kv, l, pos, v);
        break;
    case KV_Q8_0: /* quantize_row_q8_0, as ggml_set_rows into a Q8_0 tensor */
        act_check(st, k, 0, 1, kv->kv_dim);
        act_check(st, v, 0, 1, kv->kv_dim);
        hadamard_row(k, kv->kv_dim, st->rot_k);
        hadamard_row(v, kv->kv_dim, st->rot_v);
        kern_act_prepare(BLK_T_Q8_0, k, kv_k_row(kv, l, pos), kv->kv_dim);
        kern_act_prepare(BLK_T_Q8_0, v, kv_v_row(kv, l, pos), kv->kv_dim);
        break;
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

/* The first cell a query at position pos sees: past the window in a sliding-window layer. */
static uint32_t attn_first(const struct attn_job *j, uint32_t pos)
{
    uint32_t w = j->m->hp.n_swa;
    return j->swa && pos >= w ? pos - w + 1 : 0;
}

/* One (row, head) pair over a float cache (F32 or F16): scores, softmax, softmax.V. llama.cpp
 * sees a score row of n_pad cells (its KV size padded to 256); cells outside the window are
 * masked. Reproducing the row layout reproduces its summation groups. */
static void attn_pair_float(const struct attn_job *j, float *att, uint8_t *scr, const float *q, uint32_t kvh,
                            uint32_t first, uint32_t n, float scale, float *o)
{
    const struct model_state *st = j->st;
    const struct kv_cache *kv = &st->kv;
    uint32_t hd = j->m->hp.head_dim;
    size_t n_pad = ((size_t)n + 255) / 256 * 256;
    unsigned order = j->n > 1 && !st->decode_order ? KERN_ORDER_GEMM : KERN_ORDER_VECDOT;
    for (uint32_t t = 0; t < first; t++) att[t] = -INFINITY;
    if (kv->type == KV_F32) {
        kern_dot_f32_rows(att + first, q, kv_k(kv, j->layer, first) + (size_t)kvh * hd, kv->kv_dim, hd, n - first);
    } else { /* q rounded to fp16 as ggml converts src1 to F16's vec_dot type */
        uint16_t *q16 = (uint16_t *)(void *)scr;
        kern_act_prepare(BLK_T_F16, q, q16, hd);
        const uint16_t *k16 = (const uint16_t *)(const void *)kv_k_row(kv, j->layer, first) + (size_t)kvh * hd;
        kern_dot_f16_rows(att + first, q16, k16, kv->kv_dim, hd, n - first, order);
    }
    for (uint32_t t = first; t < n; t++) att[t] *= scale;
    kern_softmax_f32(att, n, n_pad);
    const size_t blk_stride = (size_t)kv->kv_dim * KV_VBLK;
    if (kv->type == KV_F32) {
        const struct kern_vt vt = {(const float *)kv_v_layer(kv, j->layer) + (size_t)kvh * hd * KV_VBLK, KV_VBLK,
                                   KV_VBLK, blk_stride};
        kern_wsum_f32(o, att, &vt, n, n_pad, hd, order);
    } else { /* the probabilities rounded to fp16 likewise */
        uint16_t *p16 = (uint16_t *)(void *)scr + hd;
        kern_act_prepare(BLK_T_F16, att, p16, n);
        const struct kern_vt_f16 vt = {(const uint16_t *)kv_v_layer(kv, j->layer) + (size_t)kvh * hd * KV_VBLK,
                                       KV_VBLK, KV_VBLK, blk_stride};
        kern_wsum_f16(o, p16, &vt, n, n_pad, hd, order);
    }
}

/* Rows per batched attention unit: as many as fit MODEL_ATT_Q queries with all the heads of a
 * KV head (at least one row). */
static uint32_t attn_unit_rows(const struct model_hparams *hp)
{
    uint32_t g = hp->n_head / hp->n_head_kv;
    return g >= MODEL_ATT_Q ? 1 : MODEL_ATT_Q / g;
}

/* One unit of the batched path (F32/F16 cache): the g query heads of KV head kvh for rows
 * r0..r0+nr-1 (g * nr <= MODEL_ATT_Q). Every query's scores, softmax and softmax.V are
 * attn_pair_float's, computed by the batched kernels, which give each query the bits the
 * one-query kernels give it: scores of the cells a row cannot see yet (up to the unit's last
 * row) are computed but never read (softmax and softmax.V stop at each query's n). In a sliding-
 * window layer the scores start at the unit's first visible cell (its first row's) and each
 * query's cells before its own window are -INFINITY, as attn_pair_float sets them; softmax and
 * softmax.V then run over cells 0..n as there (a masked cell's weight is 0 and adds nothing). */
static void attn_unit(const struct attn_job *j, float *att, uint8_t *scr, uint32_t kvh, uint32_t r0, uint32_t nr)
{
    const struct model_hparams *hp = &j->m->hp;
    const struct kv_cache *kv = &j->st->kv;
    uint32_t hd = hp->head_dim, g = hp->n_head / hp->n_head_kv;
    size_t qd = (size_t)hp->n_head * hd, n_ctx = j->st->n_ctx;
    float scale = j->m->desc->q_prescale ? 1.0f : 1.0f / sqrtf((float)hd);
    unsigned order = j->n > 1 && !j->st->decode_order ? KERN_ORDER_GEMM : KERN_ORDER_VECDOT;
    bool f16 = kv->type == KV_F16;
    /* zeroed: gcc for armhf cannot see that nq >= 1 fills what the kernels read */
    float *out[MODEL_ATT_Q] = {0}, *sc[MODEL_ATT_Q] = {0};
    const float *q[MODEL_ATT_Q] = {0};
    size_t n[MODEL_ATT_Q] = {0}, n_pad[MODEL_ATT_Q] = {0}, first[MODEL_ATT_Q] = {0};
    size_t nq = (size_t)g * nr;
    for (size_t i = 0; i < nq; i++) {
        uint32_t row = r0 + (uint32_t)(i / g), h = kvh * g + (uint32_t)(i % g);
        first[i] = attn_first(j, j->pos0 + row);
        const float *qi = j->st->q + row * qd + (size_t)h * hd;
        if (f16) { /* q rounded to fp16 as ggml converts src1 to F16's vec_dot type */
            float *qr = (float *)(void *)scr + i * hd;
            memcpy(qr, qi, hd * sizeof *qr);
            kern_round_f16(qr, hd);
            qi = qr;
        }
        q[i] = qi;
        sc[i] = att + i * n_ctx;
        out[i] = j->out + row * j->out_stride + (size_t)h * hd;
        n[i] = (size_t)j->pos0 + row + 1;
        n_pad[i] = (n[i] + 255) / 256 * 256;
    }
    /* the unit's last row sees the most cells, its first row's window starts first */
    size_t n_keys = n[nq - 1], f0 = first[0];
    float *sf[MODEL_ATT_Q] = {0};
    for (size_t i = 0; i < nq; i++) sf[i] = sc[i] + f0;
    if (f16)
        kern_attn_qk_f16(sf, q, nq, (const uint16_t *)(const void *)kv_k_row(kv, j->layer, (uint32_t)f0) + (size_t)kvh * hd,
                         kv->kv_dim, hd, n_keys - f0, order);
    else
        kern_attn_qk_f32(sf, q, nq, kv_k(kv, j->layer, (uint32_t)f0) + (size_t)kvh * hd, kv->kv_dim, hd, n_keys - f0);
    for (size_t i = 0; i < nq; i++) {
        for (size_t t = 0; t < first[i]; t++) sc[i][t] = -INFINITY;
        for (size_t t = first[i]; t < n[i]; t++) sc[i][t] *= scale;
        kern_softmax_f32(sc[i], n[i], n_pad[i]);
        if (f16) kern_round_f16(sc[i], n[i]); /* the probabilities rounded to fp16 likewise */
    }
    const size_t blk_stride = (size_t)kv->kv_dim * KV_VBLK, off = (size_t)kvh * hd * KV_VBLK;
    if (f16) {
        const struct kern_vt_f16 vt = {(const uint16_t *)kv_v_layer(kv, j->layer) + off, KV_VBLK, KV_VBLK,
                                       blk_stride};
        kern_attn_pv_f16(out, (const float *const *)sc, n, n_pad, nq, &vt, hd, order);
    } else {
        const struct kern_vt vt = {(const float *)kv_v_layer(kv, j->layer) + off, KV_VBLK, KV_VBLK, blk_stride};
        kern_attn_pv_f32(out, (const float *const *)sc, n, n_pad, nq, &vt, hd, order);
    }
}

/* The batched path's tasks: task k takes units k, k + n_tasks, ... (unit u: KV head u % n_head_kv,
 * rows of block u / n_head_kv), with its own score rows and scratch. */
static void attn_batch_task(void *arg, int task, int n_tasks)
{
    struct attn_job *j = arg;
    const struct model_hparams *hp = &j->m->hp;
    struct model_state *st = j->st;
    uint32_t rb = attn_unit_rows(hp), blocks = (j->n + rb - 1) / rb, units = blocks * hp->n_head_kv;
    float *att = st->att + (size_t)task * MODEL_ATT_Q * st->n_ctx;
    uint8_t *scr = st->ascr ? st->ascr + (size_t)task * st->ascr_stride : NULL;
    for (uint32_t u = (uint32_t)task; u < units; u += (uint32_t)n_tasks) {
        uint32_t kvh = u % hp->n_head_kv, r0 = (u / hp->n_head_kv) * rb;
        attn_unit(j, att, scr, kvh, r0, j->n - r0 < rb ? j->n - r0 : rb);
    }
}

static void attn_task(void *arg, int task, int n_tasks);

/* Run layer l's attention for the job's rows: batched units over an F32/F16 cache (sliding-window
 * layers too), else (Q8_0 cache, query groups over MODEL_ATT_Q, or att_pairs) one (row, head)
 * pair per step. */
static void attn_run(struct attn_job *job)
{
    const struct model_hparams *hp = &job->m->hp;
    struct model_state *st = job->st;
    if (st->kv.type != KV_Q8_0 && !st->att_pairs && hp->n_head / hp->n_head_kv <= MODEL_ATT_Q) {
        uint32_t rb = attn_unit_rows(hp), units = (job->n + rb - 1) / rb * hp->n_head_kv;
        kern_pool_run(st->pool, attn_batch_task, job, (int)(units < MODEL_ATT_SLOTS ? units : MODEL_ATT_SLOTS));
        return;
    }
    uint32_t pairs = job->n * hp->n_head;
    kern_pool_run(st->pool, attn_task, job, (int)(pairs < MODEL_ATT_SLOTS ? pairs : MODEL_ATT_SLOTS));
}

/* Task k computes the (row, head) pairs k, k + n_tasks, ... entirely by itself, with its own
 * score row and scratch, so the result of every pair is independent of the scheduling. */
static void attn_task(void *arg, int task, int n_tasks)
{
    struct attn_job *j = arg;
    const struct model_hparams *hp = &j->m->hp;
    struct model_state *st = j->st;
    const struct kv_cache *kv = &st->kv;
    uint32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    size_t qd = (size_t)hp->n_head * hd;
    float scale = j->m->desc->q_prescale ? 1.0f : 1.0f / sqrtf((float)hd);
    float *att = st->att ? st->att + (size_t)task * MODEL_ATT_Q * st->n_ctx : NULL;
    uint8_t *scr = st->ascr ? st->ascr + (size_t)task * st->ascr_stride : NULL;
    uint32_t pairs = j->n * hp->n_head;
    for (uint32_t pr = (uint32_t)task; pr < pairs; pr += (uint32_t)n_tasks) {
        uint32_t row = pr / hp->n_head, h = pr % hp->n_head;
        uint32_t pos = j->pos0 + row;
        uint32_t first = attn_first(j, pos);
        const float *q = st->q + row * qd + (size_t)h * hd;
        uint32_t kvh = h / group;
        float *o = j->out + row * j->out_stride + (size_t)h * hd;
        if (kv->type != KV_Q8_0) {
            attn_pair_float(j, att, scr, q, kvh, first, pos + 1, scale, o);
            continue;
        }
        /* flash attention over the visible cells first..pos (masked cells are skipped) */
        kern_act_prepare(BLK_T_Q8_0, q, scr, hd);
        size_t head_off = (size_t)kvh * (hd / KV_QBLK) * KV_QBLK_BYTES;
        kern_fattn_q8_0(o, scr, kv_k_row(kv, j->layer, first) + head_off, kv->k_row,
                        kv_v_row(kv, j->layer, first) + head_off, kv->k_row, pos + 1 - first, hd, scale);
    }
}

/* model_probe's check after a stage: the first stage whose output (one row, the last token's)
 * holds a NaN or an infinity. One predictable branch per layer when not probing. */
static void probe_stage(struct model_state *st, int32_t stage, const float *row, size_t n)
{
    if (!st->probe || st->probe_first != MODEL_PROBE_NONE) return;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(row[i])) {
            st->probe_first = stage;
            return;
        }
}

/* The end of a pass: ERR_NONFINITE when act_check saw a NaN or an infinity (the stage is in
 * st->act_bad), else 0. */
static int act_fail(const struct model_state *st)
{
    return st->act_bad == MODEL_PROBE_NONE ? 0 : ERR_NONFINITE;
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

/* Layer l's q, k, v for the batch: the projections (st->xb holds the normed inputs), biases,
 * q/k norms, RoPE, q's prescale and Hadamard rotation, then K and V of each position into the
 * cache. */
static void layer_qkv(const struct model *m, struct model_state *st, uint32_t l, uint32_t pos0, uint32_t n)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = m->desc;
    const struct model_layer *L = &m->layers[l];
    uint32_t hd = hp->head_dim;
    size_t qd = (size_t)hp->n_head * hd, kvd = (size_t)hp->n_head_kv * hd, qkvd = qd + 2 * kvd;
    size_t xbs = st->xbs, tms = st->tms;
    float *krows = st->kb, *vrows = st->tmp; /* row of token t at t * krs / t * vrs */
    size_t krs = kvd, vrs = tms;
    if (d->fused_qkv) {
        prepare(st, L->wqkv, st->xb, xbs, n);
        matmul(st, L->wqkv, n, st->qkv, qkvd);
        for (uint32_t t = 0; t < n; t++) memcpy(st->q + t * qd, st->qkv + t * qkvd, qd * sizeof(float));
        krows = st->qkv + qd;
        vrows = st->qkv + qd + kvd;
        krs = vrs = qkvd;
    } else {
        prepare(st, L->wq, st->xb, xbs, n);
        matmul(st, L->wq, n, st->q, qd);
        if (L->wk->type != L->wq->type) prepare(st, L->wk, st->xb, xbs, n);
        matmul(st, L->wk, n, st->kb, kvd);
        if (L->wv->type != L->wk->type) prepare(st, L->wv, st->xb, xbs, n);
        matmul(st, L->wv, n, st->tmp, tms);
    }
    for (uint32_t t = 0; t < n; t++) {
        uint32_t pos = pos0 + t;
        float *q = st->q + t * qd, *kc = krows + t * krs, *vc = vrows + t * vrs;
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
        rope_row(m, l, q, hp->n_head, (int32_t)pos);
        rope_row(m, l, kc, hp->n_head_kv, (int32_t)pos);
        if (d->q_prescale) {
            float qs = 1.0f / sqrtf((float)hd);
            for (size_t i = 0; i < qd; i++) q[i] *= qs;
        }
        hadamard_row(q, qd, st->rot_k);
        kv_store(st, l, pos, kc, vc);
    }
}

/* x[t] += o[t] for the batch's block outputs o in st->tmp, after the optional post-norm (gemma3). */
static void residual_add(const struct model *m, struct model_state *st, const struct gguf_tensor *post_norm,
                         uint32_t n)
{
    uint32_t ne = m->hp.n_embd;
    for (uint32_t t = 0; t < n; t++) {
        float *o = st->tmp + t * st->tms, *x = st->x + (size_t)t * ne;
        if (post_norm) rmsnorm(o, o, post_norm->data, ne, m->hp.rms_eps);
        for (uint32_t i = 0; i < ne; i++) x[i] += o[i];
    }
}

/* Layer l's FFN on the batch, from the normed inputs in st->xb into the residual streams. */
static void layer_ffn(const struct model *m, struct model_state *st, uint32_t l, uint32_t n)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = m->desc;
    const struct model_layer *L = &m->layers[l];
    uint32_t nff = hp->n_ff;
    size_t xbs = st->xbs, tms = st->tms, gs = st->hbs; /* gs: row stride of gate */
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
    residual_add(m, st, d->post_norms ? L->post_ffn_norm : NULL, n);
}

int model_forward_batch(const struct model *m, struct model_state *st, const int32_t *tokens,
                        uint32_t n, uint32_t pos0, int logits, model_logits_fn cb, void *ud)
{
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = m->desc;
    if (n == 0 || n > MODEL_BATCH) return ERR_INVALID;
    if (pos0 >= st->n_ctx || n > st->n_ctx - pos0) return ERR_CONTEXT;
    for (uint32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab) return ERR_RANGE;
    uint32_t ne = hp->n_embd;
    size_t qd = (size_t)hp->n_head * hp->head_dim, xbs = st->xbs, tms = st->tms;
    int rc;
    for (uint32_t t = 0; t < n; t++)
        if ((rc = embed(m, tokens[t], st->x + (size_t)t * ne))) return rc;
    probe_stage(st, MODEL_PROBE_EMBD, st->x + (size_t)(n - 1) * ne, ne);
    st->act_bad = MODEL_PROBE_NONE;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        st->stage = (int32_t)l;
        for (uint32_t t = 0; t < n; t++)
            rmsnorm(st->xb + t * xbs, st->x + (size_t)t * ne, L->attn_norm->data, ne, hp->rms_eps);
        layer_qkv(m, st, l, pos0, n);
        if (st->kv_type == KV_Q8_0) act_check(st, st->q, qd, n, qd); /* rounded as keys are */
        struct attn_job job = {m, st, l, pos0, n, L->swa, st->xb, xbs};
        attn_run(&job);
        for (uint32_t t = 0; t < n; t++) hadamard_row(st->xb + t * xbs, qd, st->rot_v); /* undo v's */
        prepare(st, L->wo, st->xb, xbs, n);
        matmul(st, L->wo, n, st->tmp, tms);
        residual_add(m, st, d->post_norms ? L->post_attn_norm : NULL, n);
        for (uint32_t t = 0; t < n; t++)
            rmsnorm(st->xb + t * xbs, st->x + (size_t)t * ne, L->ffn_norm->data, ne, hp->rms_eps);
        layer_ffn(m, st, l, n);
        probe_stage(st, (int32_t)l, st->x + (size_t)(n - 1) * ne, ne);
    }
    st->stage = (int32_t)hp->n_layer;
    if (logits == MODEL_LOGITS_NONE) return act_fail(st);
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
    probe_stage(st, (int32_t)hp->n_layer, st->logits, hp->n_vocab);
    return act_fail(st);
}

int model_probe(const struct model *m, struct model_state *st, int32_t token, uint32_t pos,
                struct model_probe *out)
{
    if (pos >= st->n_ctx || token < 0 || (uint32_t)token >= m->hp.n_vocab) return ERR_RANGE;
    st->probe = true;
    st->probe_first = MODEL_PROBE_NONE;
    int rc = model_forward(m, st, token, pos, true);
    st->probe = false;
    /* the earlier of a stage's output and a stage's activations before 8-bit rounding */
    out->first = st->probe_first;
    if (rc == ERR_NONFINITE) {
        if (out->first == MODEL_PROBE_NONE || st->act_bad < out->first) out->first = st->act_bad;
        rc = 0;
    }
    out->n_bad_logits = 0;
    if (rc == 0)
        for (uint32_t i = 0; i < m->hp.n_vocab; i++) out->n_bad_logits += !isfinite(st->logits[i]);
    return rc;
}

/* Rotate the K row of position pos in layer l by delta positions, in the cache's type, as
 * llama.cpp's build_rope_shift: F32 in place; F16 through f32 and back (rounded to nearest even);
 * Q8_0 dequantized, its Hadamard rotation undone, rotated, the rotation redone, requantized.
 * row: kv_dim floats of scratch. */
static void shift_k_row(const struct model *m, struct model_state *st, uint32_t l, uint32_t pos, int32_t delta,
                        float *row)
{
    struct kv_cache *kv = &st->kv;
    uint32_t n_kv = m->hp.n_head_kv;
    switch (kv->type) {
    case KV_F32:
        rope_row(m, l, kv_k(kv, l, pos), n_kv, delta);
        break;
    case KV_F16:
        kern_dequant_row(BLK_T_F16, kv_k_row(kv, l, pos), row, kv->kv_dim);
        rope_row(m, l, row, n_kv, delta);
        kern_act_prepare(BLK_T_F16, row, kv_k_row(kv, l, pos), kv->kv_dim);
        break;
    case KV_Q8_0:
        kern_dequant_row(BLK_T_Q8_0, kv_k_row(kv, l, pos), row, kv->kv_dim);
        hadamard_row(row, kv->kv_dim, st->rot_k);
        rope_row(m, l, row, n_kv, delta);
        hadamard_row(row, kv->kv_dim, st->rot_k);
        kern_act_prepare(BLK_T_Q8_0, row, kv_k_row(kv, l, pos), kv->kv_dim);
        break;
    }
}

int model_kv_shift(const struct model *m, struct model_state *st, uint32_t n_past, uint32_t keep,
                   uint32_t n_discard)
{
    if (n_past > st->n_ctx || keep > n_past || n_discard > n_past - keep) return ERR_INVALID;
    if (n_discard == 0) return 0;
    uint32_t n_keep_after = n_past - keep - n_discard;
    if (n_discard > (uint32_t)INT32_MAX) return ERR_INVALID;
    for (uint32_t i = 0; i < n_keep_after; i++) kv_move(&st->kv, keep + i, keep + n_discard + i);
    for (uint32_t l = 0; l < m->hp.n_layer; l++)
        for (uint32_t i = 0; i < n_keep_after; i++) shift_k_row(m, st, l, keep + i, -(int32_t)n_discard, st->kb);
    return 0;
}

int model_forward(const struct model *m, struct model_state *st, int32_t token, uint32_t pos,
                  bool want_logits)
{
    return model_forward_batch(m, st, &token, 1, pos, want_logits ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE,
                               NULL, NULL);
}
