/* eng: model handles, their description, tokens, sessions and the prefill (the generation loop
 * is eng_gen.c, the chat eng_chat.c).
 *
 * A session reuses the longest common prefix of its token history with a new prompt, and always
 * evaluates at least the prompt's last token so that logits exist. Every buffer the token loop
 * needs is allocated here, at session creation, from the model's sizes. */
#include "eng_int.h"

#include "../util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------- models ---------------- */

/* The process-wide default constraint factory that models opened from now on start with. */
static eng_constraint_make_fn g_make_constraint;
static void *g_make_ud;

void eng_set_default_constraint(eng_constraint_make_fn make, void *ud)
{
    g_make_constraint = make;
    g_make_ud = ud;
}

void eng_model_set_default_constraint(struct eng_model *em, eng_constraint_make_fn make, void *ud)
{
    em->make_constraint = make;
    em->make_ud = ud;
}

static int model_alloc(struct eng_model **out, const char *path, struct err_info *ei)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    snprintf((*out)->path, sizeof (*out)->path, "%s", path);
    (*out)->make_constraint = g_make_constraint;
    (*out)->make_ud = g_make_ud;
    return 0;
}

int eng_model_open(struct eng_model **out, const char *path, int n_threads, struct err_info *ei)
{
    struct eng_model *em;
    int rc = model_alloc(&em, path, ei);
    if (rc) return rc;
    if ((rc = model_open(&em->model, path, ei))) goto fail;
    em->has_model = true;
    em->file_size = em->model.g->len;
    if ((rc = tok_load(&em->vocab, em->model.g, ei))) goto fail;
    if ((rc = eng_chat_tmpls_load(&em->chat, em->model.g, em->vocab, ei))) goto fail;
    if (tok_n_vocab(em->vocab) != em->model.hp.n_vocab) {
        rc = err_set(ei, ERR_SHAPE, ERR_NO_OFFSET, "tokenizer has %u tokens, model %u",
                     tok_n_vocab(em->vocab), em->model.hp.n_vocab);
        goto fail;
    }
    if (n_threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc > 0 ? (int)nc : 1;
    }
    if (n_threads > 1 && (rc = kern_pool_create(&em->pool, n_threads))) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot start %d threads", n_threads);
        goto fail;
    }
    *out = em;
    return 0;
fail:
    eng_model_free(em);
    *out = NULL;
    return rc;
}

int eng_model_open_vocab(struct eng_model **out, const char *path, struct err_info *ei)
{
    struct eng_model *em;
    int rc = model_alloc(&em, path, ei);
    if (rc) return rc;
    if ((rc = gguf_open(path, &em->gguf, ei))) goto fail;
    em->has_gguf = true;
    em->file_size = em->gguf.len;
    if ((rc = tok_load(&em->vocab, &em->gguf, ei))) goto fail;
    if ((rc = eng_chat_tmpls_load(&em->chat, &em->gguf, em->vocab, ei))) goto fail;
    *out = em;
    return 0;
fail:
    eng_model_free(em);
    *out = NULL;
    return rc;
}

void eng_model_free(struct eng_model *em)
{
    if (!em) return;
    kern_pool_destroy(em->pool);
    gram_vocab_free(&em->gv);
    eng_chat_tmpls_free(em->chat);
    tok_free(em->vocab);
    if (em->has_model) model_free(&em->model);
    if (em->has_gguf) gguf_free(&em->gguf);
    free(em);
}

const struct gguf_ctx *eng_gguf(const struct eng_model *em)
{
    return em->has_model ? em->model.g : &em->gguf;
}

const struct vocab_view *eng_model_vocab(const struct eng_model *em) { return tok_view(em->vocab); }

uint32_t eng_model_n_vocab(const struct eng_model *em) { return tok_n_vocab(em->vocab); }

uint32_t eng_model_n_ctx_train(const struct eng_model *em)
{
    return em->has_model ? em->model.hp.n_ctx_train : 0;
}

uint32_t eng_model_ctx_cap(const struct eng_model *em, uint32_t n_ctx)
{
    uint32_t train = eng_model_n_ctx_train(em);
    if (n_ctx == 0 || (train && n_ctx > train)) return train;
    return n_ctx;
}

void eng_model_prefault(const struct eng_model *em, eng_stage_fn progress, void *ud)
{
    const struct gguf_ctx *g = eng_gguf(em);
    const volatile unsigned char *p = g->buf;
    size_t len = g->len;
    const size_t step = (size_t)64 << 20;
    unsigned char acc = 0;
    if (progress) progress(ud, "mapped", 0, len);
    for (size_t off = 0; off < len; off += 4096) {
        acc ^= p[off];
        if (progress && off && off % step == 0) progress(ud, "paging", off, len);
    }
    (void)acc;
    if (progress) progress(ud, "ready", len, len);
}

/* ---------------- describing a model ---------------- */

static const struct {
    const char *key, *label;
} k_meta[ENG_META_N_] = {
    [ENG_META_NAME] = {"general.name", "name"},
    [ENG_META_ARCH] = {"general.architecture", "architecture"},
    [ENG_META_TOK_MODEL] = {"tokenizer.ggml.model", "model"},
    [ENG_META_TOK_PRE] = {"tokenizer.ggml.pre", "pre-tokenizer"},
    [ENG_META_BOS] = {"tokenizer.ggml.bos_token_id", "bos_token_id"},
    [ENG_META_EOS] = {"tokenizer.ggml.eos_token_id", "eos_token_id"},
    [ENG_META_EOT] = {"tokenizer.ggml.eot_token_id", "eot_token_id"},
    [ENG_META_EOM] = {"tokenizer.ggml.eom_token_id", "eom_token_id"},
    [ENG_META_UNK] = {"tokenizer.ggml.unknown_token_id", "unknown_token_id"},
    [ENG_META_PAD] = {"tokenizer.ggml.padding_token_id", "padding_token_id"},
    [ENG_META_ADD_BOS] = {"tokenizer.ggml.add_bos_token", "add_bos_token"},
    [ENG_META_ADD_EOS] = {"tokenizer.ggml.add_eos_token", "add_eos_token"},
    [ENG_META_ADD_SPACE_PREFIX] = {"tokenizer.ggml.add_space_prefix", "add_space_prefix"},
};

/* A metadata scalar as text: strings (first 200 bytes), floats %g, integers and bools %lld. */
static void render_kv(const struct gguf_ctx *g, struct eng_info_kv *out)
{
    const struct gguf_kv *kv = gguf_find_kv(g, out->key);
    if (!kv) return;
    int64_t i;
    double d;
    struct gguf_str s;
    out->present = true;
    if (kv->type == GGUF_VT_STRING && gguf_get_str(g, out->key, &s) == 0)
        snprintf(out->text, sizeof out->text, "%.*s", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    else if ((kv->type == GGUF_VT_FLOAT32 || kv->type == GGUF_VT_FLOAT64) && gguf_kv_f64(kv, &d) == 0)
        snprintf(out->text, sizeof out->text, "%g", d);
    else if (gguf_kv_i64(kv, &i) == 0)
        snprintf(out->text, sizeof out->text, "%lld", (long long)i);
    else
        out->present = false; /* an array or out of range: nothing to show */
}

/* The file: sizes, metadata, the tensor-type histogram, the chat template's size. */
static void info_file(const struct gguf_ctx *g, struct eng_model_info *o)
{
    o->file_size = g->len;
    o->gguf_version = g->version;
    o->alignment = g->alignment;
    o->n_kv = g->n_kv;
    o->n_tensors = g->n_tensors;
    for (int i = 0; i < ENG_META_N_; i++) {
        o->meta[i].key = k_meta[i].key;
        o->meta[i].label = k_meta[i].label;
        render_kv(g, &o->meta[i]);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        o->type_count[t->type]++;
        o->type_bytes[t->type] += t->nbytes;
        o->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    for (int t = 0; t < BLK_T_COUNT_; t++) o->type_supported[t] = kern_type_supported((uint32_t)t);
    struct gguf_str tmpl;
    o->has_chat_template = gguf_get_str(g, "tokenizer.chat_template", &tmpl) == 0;
    o->chat_template_bytes = o->has_chat_template ? tmpl.len : 0;
    uint64_t nt = 0;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &nt, NULL) == 0) o->n_tokens = nt;
    o->isa = kern_isa_name();
}

/* The model: hyperparameters and what a session of n_ctx costs. */
static void info_model(const struct model *m, uint32_t n_ctx, struct eng_model_info *o)
{
    const struct model_hparams *hp = &m->hp;
    o->model_ok = true;
    snprintf(o->arch, sizeof o->arch, "%s", model_arch_name(m->arch));
    o->n_vocab = hp->n_vocab;
    o->n_ctx_train = hp->n_ctx_train;
    o->n_embd = hp->n_embd;
    o->n_ff = hp->n_ff;
    o->n_layer = hp->n_layer;
    o->n_head = hp->n_head;
    o->n_head_kv = hp->n_head_kv;
    o->head_dim = hp->head_dim;
    o->rope_dim = hp->rope_dim;
    o->rms_eps = hp->rms_eps;
    o->rope_base = hp->rope_base;
    o->rope_scale = hp->rope_scale;
    o->output_tied = m->output == m->tok_embd;
    o->n_ctx = n_ctx == 0 || n_ctx > hp->n_ctx_train ? hp->n_ctx_train : n_ctx;
    o->kv_bytes = kv_bytes(hp->n_layer, o->n_ctx, hp->n_head_kv * hp->head_dim);
    o->session_bytes = model_state_bytes(m, o->n_ctx);
    for (int t = 0; t < ENG_KV_TYPES; t++) {
        o->session_type_bytes[t] = model_state_bytes_kv(m, o->n_ctx, t);
        o->kv_type_bytes[t] = o->session_type_bytes[t] ? kv_mem_bytes(t, hp->n_layer, o->n_ctx, hp->n_head_kv * hp->head_dim) : 0;
    }
}

static void info_tok(const struct tok_vocab *v, struct eng_model_info *o)
{
    o->tok_ok = true;
    snprintf(o->tok_model, sizeof o->tok_model, "%s", tok_model_name(v));
    o->bos = tok_bos(v);
    o->eos = tok_eos(v);
}

int eng_model_info(const struct eng_model *em, uint32_t n_ctx, struct eng_model_info *out)
{
    memset(out, 0, sizeof *out);
    out->bos = out->eos = -1;
    snprintf(out->path, sizeof out->path, "%s", em->path);
    info_file(eng_gguf(em), out);
    if (em->has_model) info_model(&em->model, n_ctx, out);
    else snprintf(out->model_error, sizeof out->model_error, "opened for its vocabulary only");
    info_tok(em->vocab, out);
    out->chat = *eng_chat_tmpls_info(em->chat);
    out->threads = em->pool ? kern_pool_threads(em->pool) : 1;
    return 0;
}

int eng_file_info(const char *path, uint32_t n_ctx, struct eng_model_info *out,
                  struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    out->bos = out->eos = -1;
    snprintf(out->path, sizeof out->path, "%s", path);
    struct gguf_ctx g;
    int rc = gguf_open(path, &g, ei);
    if (rc) return rc;
    info_file(&g, out);
    struct err_info mei;
    err_clear(&mei);
    struct model m;
    if ((rc = model_load(&m, &g, &mei)) == 0) {
        info_model(&m, n_ctx, out);
        model_free(&m);
    } else {
        err_format(&mei, rc, out->model_error, sizeof out->model_error);
    }
    struct tok_vocab *v = NULL;
    if (tok_load(&v, &g, NULL) == 0) info_tok(v, out);
    else v = NULL;
    struct eng_chat_tmpls *ct;
    rc = eng_chat_tmpls_load(&ct, &g, v, ei);
    if (rc == 0) out->chat = *eng_chat_tmpls_info(ct);
    eng_chat_tmpls_free(ct);
    tok_free(v);
    gguf_free(&g);
    return rc;
}

void eng_cpu_info(struct eng_cpu_info *out)
{
    struct kern_cpu_info ci;
    kern_cpu_info(&ci);
    memset(out, 0, sizeof *out);
    _Static_assert(sizeof out->features == sizeof ci.features, "feature text sizes differ");
    _Static_assert(ENG_MAX_ISAS >= KERN_MAX_ISAS, "room for every kernel set");
    memcpy(out->features, ci.features, sizeof out->features);
    out->chosen = ci.chosen;
    out->requested = ci.requested;
    out->request_honoured = ci.request_honoured;
    out->n_isa = ci.n_isa;
    for (int i = 0; i < ci.n_isa && i < ENG_MAX_ISAS; i++) {
        out->isa[i] = ci.isa[i];
        out->isa_available[i] = ci.isa_available[i];
    }
}

/* ---------------- tokens ---------------- */

int eng_tokenize(const struct eng_model *em, const char *text, size_t len, bool add_bos,
                 bool special, int32_t *out, size_t cap, size_t *n, struct err_info *ei)
{
    *n = 0;
    int rc = tok_encode(em->vocab, text, len, add_bos && tok_add_bos(em->vocab), special, out, cap, n);
    if (rc == ERR_LIMIT && *n <= cap) /* not the output: the input is over the tokenizer's limit */
        return err_set(ei, rc, ERR_NO_OFFSET, "tokenization failed: %zu bytes of text are more "
                       "than the tokenizer takes", len);
    if (rc && rc != ERR_LIMIT)
        return err_set(ei, rc, ERR_NO_OFFSET, "tokenization failed: %s", err_str(rc));
    return rc;
}

int eng_detokenize(const struct eng_model *em, const int32_t *toks, size_t n, bool special,
                   char **out, size_t *len, struct err_info *ei)
{
    *out = NULL;
    *len = 0;
    const struct tok_vocab *v = em->vocab;
    uint32_t nv = tok_n_vocab(v);
    for (size_t i = 0; i < n; i++)
        if (toks[i] < 0 || (uint32_t)toks[i] >= nv)
            return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "tokens[%zu] = %d is not in [0, %u)", i,
                           toks[i], nv);
    size_t step = tok_detok_max(v), cap = step + 16, w = 0;
    char *buf = malloc(cap);
    struct tok_detok d;
    tok_detok_init(&d, v);
    d.special = special;
    for (size_t i = 0; buf && i <= n; i++) {
        if (cap - w < step + 16) { /* room for one more push, or the final flush */
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        w += i < n ? tok_detok_push(&d, v, toks[i], buf + w, cap - w - 1)
                   : tok_detok_flush(&d, buf + w, cap - w - 1);
    }
    if (!buf) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    buf[w] = 0;
    *out = buf;
    *len = w;
    return 0;
}

const char *eng_token_text(const struct eng_model *em, int32_t id, size_t *len)
{
    return tok_piece_raw(em->vocab, id, len);
}

const char *eng_tokenizer_name(const struct eng_model *em) { return tok_model_name(em->vocab); }

/* ---------------- sessions ---------------- */

int eng_session_create(struct eng_session **out, struct eng_model *em, uint32_t n_ctx,
                       struct err_info *ei)
{
    return eng_session_create_kv(out, em, n_ctx, ENG_KV_F32, ei);
}

int eng_session_create_kv(struct eng_session **out, struct eng_model *em, uint32_t n_ctx, int kv_type,
                          struct err_info *ei)
{
    *out = NULL;
    if (kv_type < 0 || kv_type >= ENG_KV_TYPES)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "KV cache type %d is not one of f32, f16, q8_0", kv_type);
    if (!em->has_model)
        return err_set(ei, ERR_STATE, ERR_NO_OFFSET, "'%s' was opened for its vocabulary only",
                       em->path);
    uint32_t eff = eng_model_ctx_cap(em, n_ctx);
    if (eff < ENG_MIN_CTX)
        return err_set(ei, ERR_RANGE, ERR_NO_OFFSET,
                       "a context of %u positions is too small: a session needs at least %u (one prompt "
                       "token and one generated token)", eff, ENG_MIN_CTX);
    struct eng_session *s = calloc(1, sizeof *s);
    if (!s) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for session");
    s->em = em;
    s->eval_max = MODEL_BATCH;
    s->run_min = ENG_RUN_MIN;
    int rc = model_state_init_kv(&s->st, &em->model, n_ctx, kv_type, em->pool, ei);
    if (rc) {
        free(s);
        return rc;
    }
    uint32_t nv = em->model.hp.n_vocab;
    s->n_mask = ((size_t)nv + 63) / 64;
    s->piece_cap = tok_detok_max(em->vocab) + 16;
    s->out_cap = s->piece_cap + ENG_STOP_SLACK;
    s->tokens = calloc(s->st.n_ctx, sizeof *s->tokens);
    s->scratch = calloc((size_t)s->st.n_ctx + 1, sizeof *s->scratch);
    s->logits_raw = malloc((size_t)nv * sizeof *s->logits_raw);
    s->mask = malloc(s->n_mask * sizeof *s->mask);
    s->pending = malloc(MODEL_BATCH * sizeof *s->pending);
    s->piece = malloc(s->piece_cap);
    s->out = malloc(s->out_cap);
    if (!s->tokens || !s->scratch || !s->logits_raw || !s->mask || !s->pending || !s->piece ||
        !s->out) {
        eng_session_free(s);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for session");
    }
    *out = s;
    return 0;
}

void eng_session_free(struct eng_session *s)
{
    if (!s) return;
    model_state_free(&s->st);
    free(s->tokens);
    free(s->scratch);
    free(s->logits_raw);
    free(s->mask);
    free(s->pending);
    free(s->piece);
    free(s->out);
    free(s);
}

void eng_session_reset(struct eng_session *s)
{
    s->n_tokens = s->n_clean = 0;
    s->has_logits = false;
}

void eng_session_cut(struct eng_session *s, uint32_t m)
{
    if (s->n_tokens > m) s->n_tokens = m;
    if (s->n_clean > m) s->n_clean = m;
    s->has_logits = false;
}

uint32_t eng_session_n_ctx(const struct eng_session *s) { return s->st.n_ctx; }

int eng_session_kv_type(const struct eng_session *s) { return s->st.kv_type; }

uint32_t eng_session_n_tokens(const struct eng_session *s) { return s->n_tokens; }

void eng_session_set_hooks(struct eng_session *s, const struct eng_hooks *h)
{
    if (h) s->hooks = *h;
    else memset(&s->hooks, 0, sizeof s->hooks);
}

int eng_ctx_full_default(void *ud, struct eng_session *s, int event, size_t need,
                         struct err_info *ei)
{
    (void)ud;
    if (event == ENG_CTX_GENERATE)
        return err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                       "context_length_exceeded: the context of %u tokens is full (context_shift / "
                       "--context-shift KEEP continues past it by dropping old tokens)", s->st.n_ctx);
    return err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                   "context_length_exceeded: the prompt needs at least %zu tokens but the "
                   "context holds %u",
                   need, s->st.n_ctx);
}

int eng_ctx_full(struct eng_session *s, int event, size_t need, struct err_info *ei)
{
    if (s->hooks.ctx_full) return s->hooks.ctx_full(s->hooks.ud, s, event, need, ei);
    return eng_ctx_full_default(NULL, s, event, need, ei);
}

int eng_tokenize_prompt(struct eng_session *s, const char *text, size_t len, bool add_bos,
                        bool special, const int32_t **toks, size_t *n, struct err_info *ei)
{
    size_t need = 0;
    int rc = eng_tokenize(s->em, text, len, add_bos, special, s->scratch, (size_t)s->st.n_ctx + 1,
                          &need, ei);
    if (rc == ERR_LIMIT || (rc == 0 && need > s->st.n_ctx)) {
        rc = eng_ctx_full(s, ENG_CTX_PROMPT, need, ei);
        /* No policy can shorten a prompt that was never stored: anything else is an error. */
        if (rc >= 0) rc = err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                                  "context_length_exceeded: the prompt needs at least %zu tokens "
                                  "but the context holds %u", need, s->st.n_ctx);
    }
    if (rc) return rc;
    *toks = s->scratch;
    *n = need;
    return 0;
}

/* ---------------- prefill and evaluation ---------------- */

int eng_eval_append(struct eng_session *s, const int32_t *toks, uint32_t n, struct err_info *ei)
{
    const struct model *m = &s->em->model;
    uint32_t pos = s->n_tokens;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0;) {
        uint32_t b = n - i < s->eval_max ? n - i : s->eval_max;
        if (b < s->run_min) b = 1; /* too short to pay for the batch path */
        /* one token: the decode path, exactly as it always ran; a run (a sampled token and the
         * forced ones after it) in the decode's order too, so it gives the same bits */
        s->st.decode_order = true;
        rc = b == 1 ? model_forward(m, &s->st, toks[i], pos + i, true)
                    : model_forward_batch(m, &s->st, toks + i, b, pos + i, MODEL_LOGITS_LAST, NULL, NULL);
        s->st.decode_order = false;
        if (rc == ERR_NONFINITE) {
            memcpy(s->tokens + pos + i, toks + i, b * sizeof *toks); /* the probe re-runs the last */
            return eng_nonfinite_fail(s, pos + i, pos + i + b - 1, ei);
        }
        if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "forward pass failed at position %u", pos + i);
        s->n_passes++;
        memcpy(s->tokens + pos + i, toks + i, b * sizeof *toks);
        if (s->n_clean == s->n_tokens) s->n_clean = pos + i + b; /* appended to a clean cache */
        s->n_tokens = pos + i + b;
        i += b;
    }
    s->has_logits = n > 0;
    return 0;
}

static int check_ids(const struct eng_session *s, const int32_t *toks, size_t n,
                     struct err_info *ei)
{
    if (n > s->st.n_ctx)
        return err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                       "context_length_exceeded: %zu tokens do not fit a context of %u", n,
                       s->st.n_ctx);
    uint32_t n_vocab = s->em->model.hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (toks[i] < 0 || (uint32_t)toks[i] >= n_vocab)
            return err_set(ei, ERR_RANGE, ERR_NO_OFFSET, "token id %d at index %zu is not in [0, %u)",
                           toks[i], i, n_vocab);
    return 0;
}

struct prefill_cb {
    eng_logits_fn fn;
    void *ud;
    uint32_t base, n_vocab; /* position of batch row 0 */
    const int32_t *toks;
    int user_rc;
};

static int prefill_logits(void *ud, uint32_t i, const float *logits)
{
    struct prefill_cb *pc = ud;
    uint32_t pos = pc->base + i;
    pc->user_rc = pc->fn(pc->ud, pos, pc->toks[pos], logits, pc->n_vocab);
    return pc->user_rc;
}

/* Tokens of the next pass when `left` remain: a full batch, except that a pass never leaves a
 * single token behind (a one-token pass is the decode path, whose sums run in another order:
 * model.h), so a prompt's positions all get the batch path's bits wherever its evaluation starts. */
static uint32_t pass_len(size_t left)
{
    uint32_t b = (uint32_t)(left < MODEL_BATCH ? left : MODEL_BATCH);
    return left - b == 1 ? b - 1 : b;
}

int eng_nonfinite_fail(struct eng_session *s, uint32_t lo, uint32_t hi, struct err_info *ei)
{
    const struct model *m = &s->em->model;
    /* the cells lo..hi hold that pass's K/V: the probe re-runs hi on them */
    struct model_probe pr = {MODEL_PROBE_NONE, 0};
    if (lo <= hi && hi < s->st.n_ctx && model_probe(m, &s->st, s->tokens[hi], hi, &pr) == 0)
        eng_session_cut(s, lo);
    s->has_logits = false;
    char where[128] = "", at[48];
    if (pr.first == MODEL_PROBE_EMBD)
        snprintf(where, sizeof where, "; first non-finite: the token embedding");
    else if (pr.first >= 0 && (uint32_t)pr.first < m->hp.n_layer)
        snprintf(where, sizeof where, "; first non-finite: the output of layer %d (blk.%d)",
                 pr.first, pr.first);
    else if (pr.first >= 0)
        snprintf(where, sizeof where, "; first non-finite: the output norm and matrix");
    if (lo == hi) snprintf(at, sizeof at, "position %u", lo);
    else snprintf(at, sizeof at, "positions %u..%u", lo, hi);
    return err_set(ei, ERR_NONFINITE, ERR_NO_OFFSET,
                   "non_finite_logits: the model computed NaN or infinite values at %s%s; check "
                   "the file with `lmpipe info --check`", at, where);
}

/* Evaluate toks[keep..n) after the cached keep tokens, in batches; with on_logits every
 * position's logits are reported, else only the last position's are computed. */
static int prefill_from(struct eng_session *s, const int32_t *toks, size_t n, uint32_t keep,
                        eng_logits_fn on_logits, void *ud, const struct eng_sink *sink,
                        struct err_info *ei)
{
    s->n_tokens = keep;
    if (s->n_clean > keep) s->n_clean = keep;
    s->has_logits = false;
    struct prefill_cb pc = {on_logits, ud, keep, s->em->model.hp.n_vocab, toks, 0};
    for (size_t i = keep; i < n;) {
        if (sink && sink->cancel && atomic_load(sink->cancel)) return ERR_CANCELLED;
        uint32_t b = pass_len(n - i);
        int mode = on_logits ? MODEL_LOGITS_ALL : (i + b == n ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE);
        pc.base = (uint32_t)i;
        int rc = model_forward_batch(&s->em->model, &s->st, toks + i, b, (uint32_t)i, mode,
                                     on_logits ? prefill_logits : NULL, &pc);
        if (rc && pc.user_rc) return pc.user_rc;
        if (rc == ERR_NONFINITE) {
            memcpy(s->tokens + i, toks + i, b * sizeof *toks); /* the probe re-runs the last */
            return eng_nonfinite_fail(s, (uint32_t)i, (uint32_t)(i + b - 1), ei);
        }
        if (rc)
            return err_set(ei, rc, ERR_NO_OFFSET, "forward pass failed at positions %zu..%zu", i,
                           i + b - 1);
        memcpy(s->tokens + i, toks + i, b * sizeof *toks);
        s->n_tokens = s->n_clean = (uint32_t)(i + b);
        i += b;
        if (sink && sink->on_progress)
            sink->on_progress(sink->ud, (uint32_t)(i - keep), (uint32_t)(n - keep));
    }
    s->has_logits = n > 0;
    return 0;
}

uint32_t eng_reuse_len(const struct eng_session *s, const int32_t *toks, size_t n)
{
    uint32_t lim = s->n_clean < s->n_tokens ? s->n_clean : s->n_tokens, keep = 0;
    while (keep < lim && keep < n && s->tokens[keep] == toks[keep]) keep++;
    return keep;
}

int eng_prefill_min(struct eng_session *s, const int32_t *toks, size_t n, uint32_t min_eval,
                    const struct eng_sink *sink, uint32_t *n_cached, struct err_info *ei)
{
    int rc = check_ids(s, toks, n, ei);
    if (rc) return rc;
    /* Reuse the common prefix, but always evaluate at least min_eval tokens so logits exist. */
    uint32_t keep = eng_reuse_len(s, toks, n);
    if (keep == n && n > 0 && keep == s->n_tokens && s->has_logits) {
        if (n_cached) *n_cached = keep;
        return 0;
    }
    if (min_eval < 1) min_eval = 1;
    if (n - keep < min_eval) keep = n > min_eval ? (uint32_t)(n - min_eval) : 0;
    if (n_cached) *n_cached = keep;
    return prefill_from(s, toks, n, keep, NULL, NULL, sink, ei);
}

int eng_prefill(struct eng_session *s, const int32_t *toks, size_t n, const struct eng_sink *sink,
                uint32_t *n_cached, struct err_info *ei)
{
    return eng_prefill_min(s, toks, n, 1, sink, n_cached, ei);
}

int eng_evaluate(struct eng_session *s, const int32_t *toks, size_t n, eng_logits_fn on_logits,
                 void *ud, struct err_info *ei)
{
    int rc = check_ids(s, toks, n, ei);
    if (rc) return rc;
    if (n == 0) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "nothing to evaluate (no tokens)");
    return prefill_from(s, toks, n, 0, on_logits, ud, NULL, ei);
}
