/* eng: model + tokenizer bundle, sessions with prefix reuse, the generation loop. */
#include "eng.h"

#include "../util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int eng_model_open(struct eng_model *em, const char *path, int n_threads, struct err_info *ei)
{
    memset(em, 0, sizeof *em);
    int rc = model_open(&em->model, path, ei);
    if (rc) return rc;
    if ((rc = tok_load(&em->vocab, em->model.g, ei))) goto fail;
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
    snprintf(em->path, sizeof em->path, "%s", path);
    em->file_size = em->model.g->len;
    return 0;
fail:
    eng_model_free(em);
    return rc;
}

void eng_model_free(struct eng_model *em)
{
    if (!em) return;
    kern_pool_destroy(em->pool);
    tok_free(em->vocab);
    model_free(&em->model);
    memset(em, 0, sizeof *em);
}

int eng_session_init(struct eng_session *s, const struct eng_model *em, uint32_t n_ctx,
                     struct err_info *ei)
{
    memset(s, 0, sizeof *s);
    s->em = em;
    int rc = model_state_init(&s->st, &em->model, n_ctx, em->pool, ei);
    if (rc) return rc;
    s->tokens = calloc(s->st.n_ctx, sizeof *s->tokens);
    s->scratch = calloc(s->st.n_ctx + 1, sizeof *s->scratch);
    s->logits = s->st.logits;
    if (!s->tokens || !s->scratch) {
        eng_session_free(s);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for session");
    }
    return 0;
}

void eng_session_free(struct eng_session *s)
{
    if (!s) return;
    model_state_free(&s->st);
    free(s->tokens);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

void eng_session_reset(struct eng_session *s)
{
    s->n_tokens = 0;
    s->has_logits = false;
}

uint32_t eng_session_n_ctx(const struct eng_session *s) { return s->st.n_ctx; }

int eng_tokenize(struct eng_session *s, const char *text, size_t len, bool add_bos,
                 bool parse_special, const int32_t **toks, size_t *n, struct err_info *ei)
{
    size_t need = 0;
    int rc = tok_encode(s->em->vocab, text, len, add_bos, parse_special, s->scratch,
                        s->st.n_ctx + 1, &need);
    if (rc == ERR_LIMIT || need > s->st.n_ctx)
        return err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                       "context_length_exceeded: the prompt needs at least %zu tokens but the "
                       "context holds %u",
                       need, s->st.n_ctx);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenization failed: %s", err_str(rc));
    *toks = s->scratch;
    *n = need;
    return 0;
}

struct prefill_cb {
    eng_logits_fn fn;
    void *ud;
    uint32_t base; /* position of batch row 0 */
    const int32_t *toks;
    int user_rc;
};

static int prefill_logits(void *ud, uint32_t i, const float *logits)
{
    struct prefill_cb *pc = ud;
    uint32_t pos = pc->base + i;
    pc->user_rc = pc->fn(pc->ud, pos, pc->toks[pos], logits);
    return pc->user_rc;
}

int eng_prefill(struct eng_session *s, const int32_t *toks, size_t n, eng_logits_fn on_logits,
                eng_progress_fn on_progress, void *ud, const atomic_bool *cancel,
                uint32_t *n_cached, struct err_info *ei)
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
    /* Reuse the common prefix, but always evaluate at least the last token so logits exist. */
    uint32_t keep = 0;
    while (keep < s->n_tokens && keep < n && s->tokens[keep] == toks[keep]) keep++;
    if (on_logits) keep = 0;
    if (keep == n && n > 0) {
        if (keep == s->n_tokens && s->has_logits) {
            if (n_cached) *n_cached = keep;
            return 0;
        }
        keep = (uint32_t)n - 1;
    }
    s->n_tokens = keep;
    s->has_logits = false;
    if (n_cached) *n_cached = keep;
    struct prefill_cb pc = {on_logits, ud, keep, toks, 0};
    for (size_t i = keep; i < n;) {
        if (cancel && atomic_load(cancel)) return ERR_CANCELLED;
        uint32_t b = (uint32_t)(n - i < MODEL_BATCH ? n - i : MODEL_BATCH);
        int mode = on_logits ? MODEL_LOGITS_ALL : (i + b == n ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE);
        pc.base = (uint32_t)i;
        int rc = model_forward_batch(&s->em->model, &s->st, toks + i, b, (uint32_t)i, mode,
                                     prefill_logits, &pc);
        if (rc == ERR_CANCELLED || (rc && on_logits && pc.user_rc)) return pc.user_rc ? pc.user_rc : rc;
        if (rc)
            return err_set(ei, rc, ERR_NO_OFFSET, "forward pass failed at positions %zu..%zu", i,
                           i + b - 1);
        memcpy(s->tokens + i, toks + i, b * sizeof *toks);
        s->n_tokens = (uint32_t)(i + b);
        i += b;
        if (on_progress) on_progress(ud, (uint32_t)(i - keep), (uint32_t)(n - keep));
    }
    s->has_logits = n > 0;
    return 0;
}

const char *eng_finish_name(int f)
{
    static const char *const names[] = {"stop", "length", "cancelled", "error"};
    return (f >= 0 && f <= ENG_FINISH_ERROR) ? names[f] : "error";
}

void eng_gen_params_default(struct eng_gen_params *p)
{
    memset(p, 0, sizeof *p);
    samp_params_default(&p->samp);
    p->max_tokens = -1;
    p->add_bos = true;
}

int eng_generate(struct eng_session *s, const char *prompt, size_t prompt_len,
                 const struct eng_gen_params *p, eng_text_fn on_text, eng_progress_fn on_progress,
                 void *ud, const atomic_bool *cancel, struct eng_gen_result *res,
                 struct err_info *ei)
{
    memset(res, 0, sizeof *res);
    res->finish = ENG_FINISH_ERROR;
    const struct eng_model *em = s->em;
    const struct tok_vocab *v = em->vocab;
    uint32_t n_vocab = em->model.hp.n_vocab;
    int rc = samp_params_check(&p->samp, n_vocab, ei);
    if (rc) return rc;
    const int32_t *toks;
    size_t n;
    bool bos = p->add_bos && tok_add_bos(v);
    if ((rc = eng_tokenize(s, prompt, prompt_len, bos, p->parse_special, &toks, &n, ei))) return rc;
    if (n == 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "the prompt is empty (no tokens)");
    if (n >= s->st.n_ctx)
        return err_set(ei, ERR_CONTEXT, ERR_NO_OFFSET,
                       "context_length_exceeded: the prompt has %zu tokens and the context "
                       "holds %u, leaving no room to generate",
                       n, s->st.n_ctx);
    struct samp_stop stop;
    samp_stop_init(&stop);
    for (size_t i = 0; i < p->n_stop; i++)
        if ((rc = samp_stop_add(&stop, p->stop[i], strlen(p->stop[i]))))
            return err_set(ei, rc, ERR_NO_OFFSET, "stop string %zu is empty or too long", i);
    struct samp_ctx sc;
    if ((rc = samp_init(&sc, n_vocab, &p->samp)))
        return err_set(ei, rc, ERR_NO_OFFSET, "cannot initialise the sampler");
    double t0 = util_now();
    uint32_t cached = 0;
    rc = eng_prefill(s, toks, n, NULL, on_progress, ud, cancel, &cached, ei);
    double t1 = util_now();
    res->prompt_tokens = (uint32_t)n;
    res->cached_tokens = cached;
    res->prefill_ms = (t1 - t0) * 1e3;
    if (rc == ERR_CANCELLED) {
        res->finish = ENG_FINISH_CANCELLED;
        samp_free(&sc);
        return 0;
    }
    if (rc) {
        samp_free(&sc);
        return rc;
    }
    for (size_t i = 0; i < n; i++) samp_accept(&sc, s->tokens[i]);

    struct tok_detok dt;
    tok_detok_init(&dt, v);
    dt.at_start = false; /* a continuation keeps its leading space: it follows the prompt */
    char piece[1024], out[sizeof piece + SAMP_MAX_STOP_LEN * 2 + 64];
    int finish = ENG_FINISH_LENGTH;
    uint32_t max_new = s->st.n_ctx - s->n_tokens;
    if (p->max_tokens >= 0 && (uint32_t)p->max_tokens < max_new) max_new = (uint32_t)p->max_tokens;
    bool stopped = false;
    for (uint32_t k = 0; k < max_new && !stopped; k++) {
        if (cancel && atomic_load(cancel)) {
            finish = ENG_FINISH_CANCELLED;
            break;
        }
        int32_t tok;
        if ((rc = samp_sample(&sc, s->st.logits, NULL, &tok))) {
            err_set(ei, rc, ERR_NO_OFFSET, "sampling failed");
            break;
        }
        samp_accept(&sc, tok);
        res->completion_tokens++;
        if (!p->ignore_eos && tok_is_eog(v, tok)) {
            finish = ENG_FINISH_STOP;
            s->has_logits = false; /* the EOG token is not fed back */
            break;
        }
        size_t pl = tok_detok_push(&dt, v, tok, piece, sizeof piece);
        size_t ol = 0;
        if (samp_stop_feed(&stop, piece, pl, out, sizeof out, &ol) == 1) {
            finish = ENG_FINISH_STOP;
            stopped = true;
        }
        if (ol && on_text && on_text(ud, out, ol, tok)) {
            finish = ENG_FINISH_CANCELLED;
            break;
        }
        if (stopped) break;
        if (k + 1 == max_new) break; /* no need to evaluate a token we will not sample after */
        rc = model_forward(&em->model, &s->st, tok, s->n_tokens, true);
        if (rc) {
            err_set(ei, rc, ERR_NO_OFFSET, "forward pass failed at position %u", s->n_tokens);
            break;
        }
        s->tokens[s->n_tokens++] = tok;
    }
    if (rc == 0 && finish != ENG_FINISH_CANCELLED && !stopped) {
        size_t fl = tok_detok_flush(&dt, piece, sizeof piece);
        size_t ol = 0;
        if (fl && samp_stop_feed(&stop, piece, fl, out, sizeof out, &ol) == 1) finish = ENG_FINISH_STOP;
        if (ol && on_text) on_text(ud, out, ol, -1);
        ol = samp_stop_flush(&stop, out, sizeof out);
        if (ol && on_text) on_text(ud, out, ol, -1);
    }
    /* the last sampled token was not evaluated: the cache ends at the prompt + fed tokens */
    s->has_logits = false;
    res->decode_ms = (util_now() - t1) * 1e3;
    res->finish = rc ? ENG_FINISH_ERROR : finish;
    samp_free(&sc);
    return rc;
}
