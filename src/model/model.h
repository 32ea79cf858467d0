/* model: binds GGUF tensors to an architecture's weights and runs the forward pass.
 *
 * model_load() reads hyperparameters from `<arch>.*` metadata and checks everything the forward
 * pass will later trust: every required tensor present with the exact shape, a type kern can
 * multiply, n_layer matching the blocks present, heads dividing the width, the vocabulary
 * length agreeing with the embedding. The weights stay in the (read-only, mmapped) GGUF buffer.
 *
 * A model_state holds what one sequence needs: its KV cache and scratch activations, all
 * allocated once in model_state_init(); model_forward() allocates nothing. */
#ifndef LMPIPE_MODEL_MODEL_H
#define LMPIPE_MODEL_MODEL_H

#include "../gguf/gguf.h"
#include "../kern/kern.h"
#include "../kv/kv.h"
#include "../util/err.h"

#include <stdbool.h>
#include <stdint.h>

#define MODEL_MAX_LAYERS 512

enum model_arch {
    MODEL_ARCH_LLAMA = 0,
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_QWEN3,
    MODEL_ARCH_PHI3,
    MODEL_ARCH_GEMMA3,
    MODEL_ARCH_COUNT_
};

/* What sets an architecture apart from the llama path: one row per architecture. */
struct model_arch_desc {
    const char *name;
    int rope_type;      /* enum model_rope */
    bool qkv_bias;      /* q/k/v biases (qwen2) */
    bool qk_norm;       /* per-head RMSNorm of q and k before RoPE (qwen3, gemma3) */
    bool fused_qkv;     /* one attn_qkv matrix (phi3) */
    bool fused_gate_up; /* ffn_up holds gate then up (phi3) */
    bool gelu;          /* GELU(tanh) gate instead of SiLU (gemma3) */
    bool embd_scale;    /* embeddings times sqrt(n_embd) (gemma3) */
    bool post_norms;    /* RMSNorm after attention and after the FFN (gemma3) */
    bool q_prescale;    /* q scaled by 1/sqrt(head_dim) before q.k, as that graph does */
    bool swa;           /* sliding-window layers (gemma3) */
};
const struct model_arch_desc *model_arch_desc(int arch);
enum model_rope { MODEL_ROPE_NORM = 0, MODEL_ROPE_NEOX = 1 };

struct model_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx_train; /* <arch>.context_length */
    uint32_t n_embd;
    uint32_t n_ff;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t rope_dim; /* dimensions rotated per head (<= head_dim) */
    float rms_eps;
    float rope_base;
    float rope_scale; /* linear scaling factor: positions are divided by it (1 = none) */
    int rope_type;    /* enum model_rope */
    uint32_t n_swa;         /* sliding window (0 = none) */
    uint32_t swa_pattern;   /* layer il is SWA iff il % pattern < pattern - 1 */
    float rope_base_swa;    /* RoPE base of SWA layers */
    float logit_softcap;    /* final logit soft-capping (0 = none) */
};

struct model_layer {
    const struct gguf_tensor *attn_norm, *wq, *wk, *wv, *wqkv, *wo;
    const struct gguf_tensor *bq, *bk, *bv;           /* qwen2 */
    const struct gguf_tensor *q_norm, *k_norm;        /* qwen3, gemma3 */
    const struct gguf_tensor *post_attn_norm;         /* gemma3 */
    const struct gguf_tensor *ffn_norm, *w_gate, *w_up, *w_down;
    const struct gguf_tensor *post_ffn_norm;          /* gemma3 */
    bool swa;                                         /* sliding-window attention layer */
};

struct model {
    struct gguf_ctx gguf; /* owned only when opened with model_open */
    bool owns_gguf;
    const struct gguf_ctx *g;
    int arch;
    char arch_name[32];
    struct model_hparams hp;
    const struct model_arch_desc *desc;
    const struct gguf_tensor *tok_embd, *output_norm, *output;
    const struct gguf_tensor *rope_freqs; /* optional [rope_dim/2] frequency divisors (Llama 3) */
    struct model_layer *layers; /* [n_layer] */
    uint64_t fingerprint; /* gguf_fingerprint of the file: what snapshots are checked against */
};

/* Bind an already parsed GGUF (borrowed: it must outlive the model). */
int model_load(struct model *m, const struct gguf_ctx *g, struct err_info *ei);
/* Open and mmap a file, then bind it (the model owns the mapping). */
int model_open(struct model *m, const char *path, struct err_info *ei);
void model_free(struct model *m); /* safe on zeroed / partial */
const char *model_arch_name(int arch);

/* Tokens evaluated together in one pass of model_forward_batch: the weights stream from memory
 * once per batch instead of once per token. */
#define MODEL_BATCH 32
/* Attention runs as this many tasks (fixed, so results never depend on the thread count), each
 * with its own score scratch row. */
#define MODEL_ATT_SLOTS 16
/* Queries one attention task takes at once over an F32/F16 cache (the heads sharing a KV head,
 * for one or several rows): each K row and V cell is read once for all of them. The batched
 * kernels give every query the bits it gets alone, so the grouping never changes results. */
#define MODEL_ATT_Q 16

/* How attention runs for each KV type (kv.h has the layouts, kern.h the exact arithmetic):
 *   KV_F32, KV_F16: llama.cpp with flash attention off (scores, softmax, softmax.V over the
 *     transposed V); F16 rounds q and the probabilities to fp16 as ggml does;
 *   KV_Q8_0: llama.cpp's flash-attention kernel (the only way 34af94cd runs a quantized V), and,
 *     when head_dim % 64 == 0, its Walsh-Hadamard rotation of q, k, v and of the attention output
 *     (in chunks of the largest power of two dividing head_dim for q/k, of 64 for v), which
 *     spreads outliers before the 8-bit rounding and cancels out exactly in exact arithmetic.
 * Memory per session: model_state_bytes_kv. */
struct model_state {
    uint32_t n_ctx;
    int kv_type;            /* enum kv_type */
    uint32_t rot_k, rot_v;  /* Hadamard chunk of q/k and of v/output (0: no rotation) */
    struct kv_cache kv;
    struct kern_pool *pool; /* borrowed, may be NULL */
    bool decode_order;      /* batches too sum in the one-token order: every row gets exactly the
                               bits evaluating it alone would (a generation's forced runs) */
    size_t xbs, tms, hbs;   /* row strides of xb, tmp, hb (see below) */
    float *x;      /* [MODEL_BATCH][n_embd] residual streams */
    float *xb;     /* [MODEL_BATCH][xbs = max(n_embd, n_head*head_dim)] normed input / attention output */
    float *q;      /* [MODEL_BATCH][n_head * head_dim] */
    float *kb;     /* [MODEL_BATCH][kv_dim] K rows before they are stored in the cache */
    float *qkv;    /* [MODEL_BATCH][n_head*head_dim + 2*kv_dim] fused output (phi3 only, else NULL) */
    float *att;    /* [MODEL_ATT_SLOTS][MODEL_ATT_Q][n_ctx] attention scores (F32/F16 caches, else NULL) */
    uint8_t *ascr; /* [MODEL_ATT_SLOTS][ascr_stride] per-slot q / probabilities in the cache's type
                    * (F16: also [MODEL_ATT_Q][head_dim] queries rounded to fp16 as floats) */
    size_t ascr_stride;
    float *hb;     /* [MODEL_BATCH][hbs = n_ff, 2*n_ff fused] gate (phi3: gate|up) */
    float *hb2;    /* [MODEL_BATCH][n_ff] up (NULL when fused) */
    float *tmp;    /* [MODEL_BATCH][tms = max(n_embd, kv_dim)] V rows, attention and FFN outputs */
    void *act;     /* [MODEL_BATCH][act_stride] prepared activations */
    size_t act_stride;
    float *logits; /* [n_vocab] */
    bool att_pairs; /* one (row, head) pair per step everywhere, as before the batched path (tests
                     * check the batched path gives its bits); false after init */
    bool probe;          /* model_probe's pass: check each stage's output for NaN/inf */
    int32_t probe_first; /* the first stage that failed it (struct model_probe) */
    int32_t stage;       /* the layer running (n_layer: the output), for act_bad */
    int32_t act_bad;     /* the first stage whose activations, about to be rounded to 8 bits, held
                            NaN/inf (MODEL_PROBE_NONE: none): the pass then fails */
};

/* n_ctx 0 means the model's training context. Caps n_ctx at the training context. kv_type is an
 * enum kv_type; KV_Q8_0 needs head_dim % 32 == 0 (ERR_UNSUPPORTED otherwise). */
int model_state_init_kv(struct model_state *st, const struct model *m, uint32_t n_ctx, int kv_type,
                        struct kern_pool *pool, struct err_info *ei);
/* model_state_init_kv with an F32 cache (the llama.cpp references' type). */
int model_state_init(struct model_state *st, const struct model *m, uint32_t n_ctx,
                     struct kern_pool *pool, struct err_info *ei);
void model_state_free(struct model_state *st);
/* Bytes model_state_init_kv would allocate for n_ctx (KV cache + scratch; 0 if it cannot). */
uint64_t model_state_bytes_kv(const struct model *m, uint32_t n_ctx, int kv_type);
uint64_t model_state_bytes(const struct model *m, uint32_t n_ctx); /* F32 */

/* Run one token at position pos (0 <= pos < n_ctx), writing K/V for pos into the cache, and
 * the logits into st->logits when want_logits.
 * Non-finite values: float paths carry NaN/inf through to the logits (the sampler finds them);
 * activations about to be rounded to 8 bits (quantized weights' dot types, a Q8_0 cache), where
 * the rounding would hide them, are checked, and the pass then ends in ERR_NONFINITE (after
 * writing the cache and logits as usual) with the layer in st->act_bad. */
int model_forward(const struct model *m, struct model_state *st, int32_t token, uint32_t pos,
                  bool want_logits);

enum model_logits { MODEL_LOGITS_NONE = 0, MODEL_LOGITS_LAST, MODEL_LOGITS_ALL };
/* Called with the logits (st->logits) of batch row i when MODEL_LOGITS_ALL; nonzero stops. */
typedef int (*model_logits_fn)(void *ud, uint32_t i, const float *logits);

/* Run tokens[0..n) (1 <= n <= MODEL_BATCH) at positions pos0.. in one pass. Batches of two or
 * more tokens give the same bits however they are split; a one-token batch is llama.cpp's decode,
 * whose float sums run in another order (kern.h, KERN_ORDER_*), so it agrees with a batch within
 * rounding, except where every product has one order (quantized weights with a Q8_0 cache).
 * With st->decode_order a batch runs in the one-token order: the same bits as its tokens one by
 * one (the weights still stream once per batch).
 * LAST leaves the last row's logits in st->logits. */
int model_forward_batch(const struct model *m, struct model_state *st, const int32_t *tokens,
                        uint32_t n, uint32_t pos0, int logits, model_logits_fn cb, void *ud);

/* Where a pass went non-finite: model_probe re-evaluates one position (token at pos, whose
 * K/V it writes again, as evaluating it did) checking each stage's output for NaN or infinity.
 * Slow (a scan per layer): for the error path, after the sampler found the logits non-finite.
 * first: MODEL_PROBE_NONE (every stage finite: the logits too), MODEL_PROBE_EMBD (the token's
 * embedding row), a layer 0..n_layer-1 (its output: the residual stream after it, or for a pass
 * that ended in ERR_NONFINITE the layer whose 8-bit-rounded activations held NaN/inf), or
 * n_layer (the output norm and matrix: the logits). Returns 0 once the probe ran. */
#define MODEL_PROBE_NONE (-2)
#define MODEL_PROBE_EMBD (-1)
struct model_probe {
    int32_t first;
    uint32_t n_bad_logits; /* logits that are NaN or infinite */
};
int model_probe(const struct model *m, struct model_state *st, int32_t token, uint32_t pos,
                struct model_probe *out);

/* Context shift (llama.cpp's n_discard / K-shift): of the n_past cached positions, drop
 * keep..keep+n_discard-1, move the later ones down by n_discard, and rotate their keys by
 * -n_discard positions (RoPE of the layer's base, per type: F32 in place; F16 and Q8_0 read,
 * rotated in f32 and stored back, Q8_0 undoing and redoing its Hadamard rotation, as llama.cpp's
 * build_rope_shift). Afterwards the cache holds n_past - n_discard positions. ERR_INVALID when
 * keep + n_discard > n_past. Allocates nothing.
 * The moved cells still carry the dropped tokens in their context (in every layer after the
 * first): they are not what evaluating their tokens afresh gives. So a caller must not reuse
 * positions >= keep as a cached prefix of another prompt, nor save them in a snapshot under
 * those token ids: only positions < keep stay clean. */
int model_kv_shift(const struct model *m, struct model_state *st, uint32_t n_past, uint32_t keep,
                   uint32_t n_discard);

/* What a snapshot must match to be restored into st (kv.h, struct kv_snap_expect). */
void model_snap_expect(const struct model *m, const struct model_state *st, struct kv_snap_expect *x);

#endif
