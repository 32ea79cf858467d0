/* eng_gen: the generation loop, as a sequence of named steps.
 *
 *   setup    params checked, prompt tokenized, stop strings, sampler, constraint
 *   prefill  the prompt into the cache: the disk prompt cache's entry for it (if any), prefix
 *            reuse, at least the last two tokens evaluated in one batch, then the prompt cache's
 *            store and the after-prefill hook
 *   then per token (gen_step):
 *     room       is there room for one more token? (max_tokens; a full context asks the
 *                context-full hook, whose default ends the generation with "length")
 *     forced     a constraint may say the next tokens are certain: they are accepted without
 *                sampling and evaluated together, as one batch
 *     logits     tokens accepted but not yet evaluated go through the model (lazily: only when
 *                a token is about to be sampled, so the last token is never evaluated for
 *                nothing)
 *     constraint+sample   draw a token; a constraint that refuses it supplies the allowed set
 *                and the token is drawn again from that
 *     accept     the sampler's penalty window and the constraint hear the token
 *     end check  end-of-generation token (unless ignore_eos), constraint complete
 *     detokenize, stop strings, emit
 *   flush    the detokenizer's and the stop matcher's held text, unless a stop string or a
 *            cancel ended the generation
 *
 * Invariants: nothing here allocates after setup (the session holds every buffer). A token is
 * accepted only when its position is inside the context; tokens in g->pending are accepted
 * and not yet in the cache. When the loop ends, the session's cache holds the prompt and every
 * evaluated token, and has_logits is false (the last token was not fed back). */
#include "eng_int.h"

#include "../util/util.h"

#include <string.h>
#include <time.h>

/* One generation: what its steps share. */
struct gen {
    struct eng_session *s;
    const struct eng_gen_params *p;
    const struct eng_sink *sink;
    struct eng_gen_result *res;
    struct err_info *ei;
    const struct vocab_view *vv;
    struct samp_ctx sc;
    struct eng_stop stop;
    struct tok_detok dt;
    struct eng_constraint con;
    bool con_owned;      /* made by the model's factory: freed at the end */
    const struct eng_region *rg; /* tool calls: where call text goes, or NULL */
    uint32_t n_pending;  /* s->pending[0..n_pending): accepted, not evaluated */
    bool done;           /* the generation has ended; finish says how */
    bool stop_matched;   /* it ended on a stop string: nothing held is released */
    int finish;
};

static void end(struct gen *g, int finish)
{
    g->done = true;
    g->finish = finish;
}

const char *eng_finish_name(int f)
{
    static const char *const names[] = {"stop", "length", "cancelled", "error", "tool_calls"};
    return (f >= 0 && f <= ENG_FINISH_TOOL_CALLS) ? names[f] : "error";
}

void eng_gen_params_default(struct eng_gen_params *p)
{
    memset(p, 0, sizeof *p);
    samp_params_default(&p->samp);
    p->max_tokens = -1;
    p->add_bos = true;
}

int eng_gen_params_check(const struct eng_model *em, const struct eng_gen_params *p,
                         struct err_info *ei)
{
    if (!em->has_model)
        return err_set(ei, ERR_STATE, ERR_NO_OFFSET, "'%s' was opened for its vocabulary only",
                       em->path);
    int rc = samp_params_check(&p->samp, em->model.hp.n_vocab, ei);
    if (rc) return rc;
    if (p->n_stop > ENG_MAX_STOPS)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "%zu stop strings; at most %d", p->n_stop,
                       ENG_MAX_STOPS);
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t n = p->stop && p->stop[i] ? strlen(p->stop[i]) : 0;
        if (n == 0 || n > ENG_MAX_STOP_LEN)
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "stop string %zu must have 1 to %d bytes", i, ENG_MAX_STOP_LEN);
    }
    const struct eng_constraint *c = p->constraint;
    if (c && c->ops && (!c->ops->check || !c->ops->mask || !c->ops->accept))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "a constraint needs its check, mask and accept operations");
    if (!p->grammar) return 0;
    if (c && c->ops)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "give a grammar or a constraint, not both");
    /* the grammar's token references against this vocabulary: a matcher made and dropped (the
     * model's gram_vocab is a cache built once, so the model is not const for it) */
    struct eng_gcon gc;
    rc = eng_gcon_init(&gc, (struct eng_model *)em, p->grammar->g, ei);
    eng_gcon_free(&gc);
    return rc;
}

/* A constraint's failure, as an error of the generation. */
static int con_fail(struct gen *g, const char *op, int rc)
{
    return err_set(g->ei, rc, ERR_NO_OFFSET, "constraint: %s failed at completion token %u: %s",
                   op, g->res->completion_tokens, err_str(rc));
}

/* The sampler found NaN or infinite logits (they belong to tokens[n_tokens - 1]). */
static int nonfinite_fail(struct gen *g)
{
    uint32_t pos = g->s->n_tokens - 1;
    return eng_nonfinite_fail(g->s, pos, pos, g->ei);
}

/* A sampling failure as an error of its own kind. */
static int samp_fail(struct gen *g, int rc)
{
    if (rc == ERR_NONFINITE) return nonfinite_fail(g);
    if (rc == ERR_DEAD_END)
        return err_set(g->ei, ERR_DEAD_END, ERR_NO_OFFSET,
                       "no token is allowed at completion token %u: the logit bias bans every "
                       "token", g->res->completion_tokens);
    return err_set(g->ei, rc, ERR_NO_OFFSET, "sampling failed: %s", err_str(rc));
}

/* ---------------- setup and prefill ---------------- */

/* The constraint of this generation: the caller's, one made from its grammar, else one from the
 * model's factory. */
static int setup_constraint(struct gen *g)
{
    struct eng_model *em = g->s->em;
    if (g->p->grammar) {
        int rc = eng_grammar_constraint(em, g->p->grammar, &g->con, g->ei);
        g->con_owned = rc == 0;
        return rc;
    }
    if (g->p->constraint) {
        g->con = *g->p->constraint;
        if (g->con.ops && g->con.ops->reset) g->con.ops->reset(g->con.self);
        return 0;
    }
    if (!em->make_constraint) return 0;
    int rc = em->make_constraint(em->make_ud, g->vv, &g->con, g->ei);
    if (rc) return err_set(g->ei, rc, ERR_NO_OFFSET, "cannot make the default constraint");
    g->con_owned = g->con.ops != NULL;
    const struct eng_constraint_ops *o = g->con.ops;
    if (o && (!o->check || !o->mask || !o->accept))
        return err_set(g->ei, ERR_INVALID, ERR_NO_OFFSET,
                       "a constraint needs its check, mask and accept operations");
    return 0;
}

static int gen_setup(struct gen *g, const char *prompt, size_t len, const char *const *extra,
                     size_t n_extra, const int32_t **toks, size_t *n)
{
    struct eng_session *s = g->s;
    const struct eng_gen_params *p = g->p;
    int rc = eng_gen_params_check(s->em, p, g->ei);
    if (rc) return rc;
    if ((rc = eng_tokenize_prompt(s, prompt, len, p->add_bos, p->parse_special, toks, n, g->ei)))
        return rc;
    if (*n == 0) return err_set(g->ei, ERR_INVALID, ERR_NO_OFFSET, "the prompt is empty (no tokens)");
    if (*n >= s->st.n_ctx) { /* no room for one generated token */
        rc = eng_ctx_full(s, ENG_CTX_PROMPT, *n + 1, g->ei);
        return rc < 0 ? rc : err_set(g->ei, ERR_CONTEXT, ERR_NO_OFFSET,
                                     "context_length_exceeded: the prompt has %zu tokens and the "
                                     "context holds %u, leaving no room to generate",
                                     *n, s->st.n_ctx);
    }
    eng_stop_init(&g->stop);
    for (size_t i = 0; i < p->n_stop; i++) eng_stop_add(&g->stop, p->stop[i], strlen(p->stop[i]));
    for (size_t i = 0; i < n_extra; i++)
        if ((rc = eng_stop_add(&g->stop, extra[i], strlen(extra[i]))))
            return err_set(g->ei, rc, ERR_NO_OFFSET, "template stop string %zu is invalid", i);
    if ((rc = samp_init(&g->sc, s->em->model.hp.n_vocab, &p->samp)))
        return err_set(g->ei, rc, ERR_NO_OFFSET, "cannot initialise the sampler");
    tok_detok_init(&g->dt, s->em->vocab);
    g->dt.at_start = false; /* a continuation keeps its leading space: it follows the prompt */
    if (g->rg) {
        const char *skip = g->rg->skip ? g->rg->skip : "";
        if ((rc = eng_stop_switch(&g->stop, g->rg->trigger, strlen(g->rg->trigger), g->rg->at_start,
                                  skip, strlen(skip))))
            return err_set(g->ei, rc, ERR_NO_OFFSET, "the tool-call trigger is invalid");
        g->dt.special = true; /* call markers may be control tokens */
    }
    return setup_constraint(g);
}

static int gen_prefill(struct gen *g, const int32_t *toks, size_t n)
{
    struct eng_session *s = g->s;
    double t0 = util_now();
    uint32_t cached = 0;
    eng_pcache_before(s, toks, n);
    int rc = eng_prefill_min(s, toks, n, 2, g->sink, &cached, g->ei);
    g->res->prompt_tokens = (uint32_t)n;
    g->res->cached_tokens = cached;
    g->res->prefill_ms = (util_now() - t0) * 1e3;
    if (rc == ERR_CANCELLED) {
        end(g, ENG_FINISH_CANCELLED);
        return 0;
    }
    if (rc) return rc;
    eng_pcache_after(s, s->tokens, n);
    g->res->prefill_ms = (util_now() - t0) * 1e3; /* the first token waits for the store too */
    if (s->hooks.after_prefill &&
        (rc = s->hooks.after_prefill(s->hooks.ud, s, s->tokens, n, cached, g->ei)))
        return rc < 0 ? rc : err_set(g->ei, ERR_STATE, ERR_NO_OFFSET, "the after-prefill hook failed");
    for (size_t i = 0; i < n; i++) samp_accept(&g->sc, s->tokens[i]);
    return 0;
}

/* ---------------- the steps of one token ---------------- */

/* Is there room for one more token? 0: yes; 1: no, the generation has ended ("length");
 * < 0: an error. A full context asks the hook, which may make room. */
static int gen_room(struct gen *g)
{
    struct eng_session *s = g->s;
    if (g->p->max_tokens >= 0 && g->res->completion_tokens >= (uint32_t)g->p->max_tokens) {
        end(g, ENG_FINISH_LENGTH);
        return 1;
    }
    for (;;) {
        uint32_t pos = s->n_tokens + g->n_pending; /* where the new token will be evaluated */
        if (pos < s->st.n_ctx) return 0;
        int rc = eng_ctx_full(s, ENG_CTX_GENERATE, 1, g->ei);
        if (rc == ENG_HOOK_END) {
            end(g, ENG_FINISH_LENGTH);
            return 1;
        }
        if (rc < 0) return rc;
        if (s->n_tokens + g->n_pending >= pos)
            return err_set(g->ei, ERR_STATE, ERR_NO_OFFSET, "the context-full hook made no room");
    }
}

/* Evaluate the accepted tokens that are not in the cache yet. */
static int gen_eval_pending(struct gen *g)
{
    uint32_t n = g->n_pending;
    g->n_pending = 0;
    return n ? eng_eval_append(g->s, g->s->pending, n, g->ei) : 0;
}

/* The constraint's word on the first draw: kept when allowed, else drawn again from the allowed
 * set (the mask) starting from the logits as they were before the first draw changed them. */
static int gen_redraw(struct gen *g, float *logits, int32_t *tok)
{
    struct eng_session *s = g->s;
    const struct eng_constraint_ops *o = g->con.ops;
    int ok = o->check(g->con.self, *tok);
    if (ok < 0) return con_fail(g, "check", ok);
    if (ok) return 0;
    memset(s->mask, 0, s->n_mask * sizeof *s->mask);
    int rc = o->mask(g->con.self, s->mask);
    if (rc < 0 && rc != ERR_DEAD_END) return con_fail(g, "mask", rc);
    memcpy(logits, s->logits_raw, (size_t)g->sc.n_vocab * sizeof *logits);
    if (rc == 0) rc = samp_sample(&g->sc, logits, s->mask, tok);
    if (rc == ERR_DEAD_END) /* nothing allowed, or all of it banned by a bias */
        return err_set(g->ei, ERR_DEAD_END, ERR_NO_OFFSET,
                       "constraint dead end: no token is allowed at completion token %u",
                       g->res->completion_tokens);
    return rc ? samp_fail(g, rc) : 0;
}

/* logits → constraint → sample: a token, drawn from the allowed set when a constraint refuses
 * the first draw. The first draw changes the logits in place (bias, penalties), so a redraw
 * starts from the copy taken before it. */
static int gen_pick(struct gen *g, int32_t *tok)
{
    struct eng_session *s = g->s;
    int rc = gen_eval_pending(g);
    if (rc) return rc;
    float *logits = s->st.logits;
    const struct eng_constraint_ops *o = g->con.ops;
    if (!o) {
        rc = samp_sample(&g->sc, logits, NULL, tok);
        return rc ? samp_fail(g, rc) : 0;
    }
    /* the constraint's time: everything here but the first draw */
    double t0 = util_now();
    memcpy(s->logits_raw, logits, (size_t)g->sc.n_vocab * sizeof *logits);
    double t1 = util_now();
    if ((rc = samp_sample(&g->sc, logits, NULL, tok))) return samp_fail(g, rc);
    double t2 = util_now();
    rc = gen_redraw(g, logits, tok);
    g->res->constraint_ms += (t1 - t0 + util_now() - t2) * 1e3;
    return rc;
}

/* Released text to the sink, call text (after the switch, r == 2) to the region. */
static int gen_release(struct gen *g, int r, size_t ol, int32_t tok)
{
    const struct eng_sink *k = g->sink;
    const char *out = g->s->out;
    if (ol && k && k->on_text && k->on_text(k->ud, out, ol, tok)) return 1;
    if (r == 2 && g->stop.region_len && g->rg && g->rg->on_text &&
        g->rg->on_text(g->rg->ud, out + ol, g->stop.region_len, tok))
        return 1;
    return 0;
}

/* Text of the token through the detokenizer and the stop matcher to the sink. */
static void gen_emit(struct gen *g, int32_t tok)
{
    struct eng_session *s = g->s;
    size_t pl = tok_detok_push(&g->dt, s->em->vocab, tok, s->piece, s->piece_cap), ol = 0;
    int r = eng_stop_feed(&g->stop, s->piece, pl, s->out, s->out_cap, &ol);
    g->stop_matched = r == 1;
    if (gen_release(g, r, ol, tok)) end(g, ENG_FINISH_CANCELLED);
    else if (g->stop_matched) end(g, ENG_FINISH_STOP);
}

/* accept → end check → detokenize, stop strings, emit. */
static int gen_accept(struct gen *g, int32_t tok, bool forced)
{
    const struct eng_constraint_ops *o = g->con.ops;
    samp_accept(&g->sc, tok);
    int rc;
    double t0 = o ? util_now() : 0;
    if (o && (rc = o->accept(g->con.self, tok)) < 0) return con_fail(g, "accept", rc);
    g->res->completion_tokens++;
    g->res->forced_tokens += forced;
    g->s->pending[g->n_pending++] = tok;
    if (!g->p->ignore_eos && (vocab_flags(g->vv, tok) & VOCAB_EOG)) {
        end(g, ENG_FINISH_STOP); /* an end-of-generation token is not text */
        return 0;
    }
    if (o) g->res->constraint_ms += (util_now() - t0) * 1e3;
    gen_emit(g, tok);
    if (g->done || !o || !o->complete) return 0;
    if ((rc = o->complete(g->con.self)) < 0) return con_fail(g, "complete", rc);
    if (rc) end(g, ENG_FINISH_STOP);
    return 0;
}

/* The constraint's forced tokens, if it has any: accepted in order while there is room. The
 * pending run is evaluated as one batch when the next token is sampled. Returns how many were
 * accepted, or an error. */
static int gen_forced(struct gen *g)
{
    const struct eng_constraint_ops *o = g->con.ops;
    if (!o || !o->forced || g->p->no_forced) return 0;
    int rc;
    if (g->n_pending == MODEL_BATCH && (rc = gen_eval_pending(g))) return rc;
    int32_t *buf = g->s->pending + g->n_pending;
    size_t cap = MODEL_BATCH - g->n_pending, n = 0;
    double t0 = util_now();
    rc = o->forced(g->con.self, buf, cap, &n);
    g->res->constraint_ms += (util_now() - t0) * 1e3;
    if (rc < 0) return con_fail(g, "forced", rc);
    if (n > cap) return con_fail(g, "forced", ERR_LIMIT);
    /* buf aliases the pending run: accepting appends each token onto itself */
    for (size_t i = 0; i < n && !g->done; i++) {
        int32_t tok = buf[i];
        if (tok < 0 || (uint32_t)tok >= g->sc.n_vocab) return con_fail(g, "forced", ERR_RANGE);
        if ((rc = gen_room(g))) return rc < 0 ? rc : 0;
        if ((rc = gen_accept(g, tok, true))) return rc;
    }
    return (int)n;
}

/* One step: a forced run, or one sampled token. */
static int gen_step(struct gen *g)
{
    const struct eng_sink *k = g->sink;
    if (k && k->cancel && atomic_load(k->cancel)) {
        end(g, ENG_FINISH_CANCELLED);
        return 0;
    }
    int rc = gen_forced(g);
    if (rc != 0 || g->done) return rc < 0 ? rc : 0;
    if ((rc = gen_room(g))) return rc < 0 ? rc : 0;
    int32_t tok;
    if ((rc = gen_pick(g, &tok))) return rc;
    return gen_accept(g, tok, false);
}

/* The text held back at the end: the detokenizer's unfinished character, the stop matcher's
 * possible beginning of a stop string. */
static void gen_flush(struct gen *g)
{
    struct eng_session *s = g->s;
    size_t fl = tok_detok_flush(&g->dt, s->piece, s->piece_cap), ol = 0;
    int r = fl ? eng_stop_feed(&g->stop, s->piece, fl, s->out, s->out_cap, &ol) : 0;
    if (r == 1) g->finish = ENG_FINISH_STOP;
    gen_release(g, r, ol, -1);
    ol = eng_stop_flush(&g->stop, s->out, s->out_cap);
    if (ol) gen_release(g, 0, ol, -1);
}

static double cpu_now(void)
{
    struct timespec t;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) == 0 ? (double)t.tv_sec + (double)t.tv_nsec * 1e-9 : 0;
}

int eng_generate_region(struct eng_session *s, const char *prompt, size_t len,
                        const struct eng_gen_params *p, const char *const *extra, size_t n_extra,
                        const struct eng_region *rg, const struct eng_sink *sink,
                        struct eng_gen_result *res, struct err_info *ei)
{
    memset(res, 0, sizeof *res);
    res->finish = ENG_FINISH_ERROR;
    struct gen g;
    memset(&g, 0, sizeof g);
    g.s = s;
    g.p = p;
    g.sink = sink;
    g.res = res;
    g.ei = ei;
    g.vv = tok_view(s->em->vocab);
    g.rg = rg;
    const int32_t *toks;
    size_t n = 0;
    uint32_t shifts0 = s->n_shifts;
    int rc = gen_setup(&g, prompt, len, extra, n_extra, &toks, &n);
    if (rc == 0) rc = gen_prefill(&g, toks, n);
    double t1 = util_now(), c1 = cpu_now();
    while (rc == 0 && !g.done) rc = gen_step(&g);
    if (rc == 0 && g.finish != ENG_FINISH_CANCELLED && !g.stop_matched) gen_flush(&g);
    s->has_logits = false; /* the last accepted token was not evaluated */
    if (g.con_owned && g.con.ops->free) g.con.ops->free(g.con.self);
    samp_free(&g.sc);
    res->decode_ms = (util_now() - t1) * 1e3;
    res->decode_cpu_ms = (cpu_now() - c1) * 1e3;
    res->finish = rc ? ENG_FINISH_ERROR : g.finish;
    res->context_shifts = s->n_shifts - shifts0;
    return rc;
}

int eng_generate_stops(struct eng_session *s, const char *prompt, size_t len,
                       const struct eng_gen_params *p, const char *const *extra, size_t n_extra,
                       const struct eng_sink *sink, struct eng_gen_result *res,
                       struct err_info *ei)
{
    return eng_generate_region(s, prompt, len, p, extra, n_extra, NULL, sink, res, ei);
}

int eng_generate(struct eng_session *s, const char *prompt, size_t len,
                 const struct eng_gen_params *p, const struct eng_sink *sink,
                 struct eng_gen_result *res, struct err_info *ei)
{
    return eng_generate_stops(s, prompt, len, p, NULL, 0, sink, res, ei);
}
