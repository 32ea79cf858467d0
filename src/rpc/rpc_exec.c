/* rpc_exec: running jobs against the engine. In `serve` this is the one worker thread; in batch
 * and the fuzz harness the same code runs inline on the calling thread.
 *
 * The worker owns the model and every eng_session: it alone creates, uses and frees them, so
 * eng needs no locks. It reports through events (gen/delta text, progress, DONE). Before posting
 * streamed text it waits while more than cfg.write_limit bytes are waiting to be written
 * (backpressure): a parent that stops reading pauses generation instead of growing our memory,
 * and nothing is dropped. A cancel flag or shutdown wakes that wait.
 * Invariant: after posting RPC_EV_DONE the worker never touches the job again (the loop frees
 * it). */
#include "rpc_int.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- events ---------------- */

static void post(struct rpc_server *s, struct rpc_event *ev, bool wait_space)
{
    if (s->cfg.inline_exec) {
        ev->acct = 0;
        s->deliver(s, ev);
        return;
    }
    uv_mutex_lock(&s->mu);
    if (wait_space && s->out_pending > s->cfg.write_limit && !s->hurry && !atomic_load(&ev->job->cancel)) {
        s->bp_waits++;
        while (s->out_pending > s->cfg.write_limit && !s->hurry && !atomic_load(&ev->job->cancel))
            uv_cond_wait(&s->space_cv, &s->mu);
    }
    s->out_pending += ev->acct;
    if (s->out_pending > s->out_peak) s->out_peak = s->out_pending;
    if (s->ev_tail) s->ev_tail->next = ev;
    else s->ev_head = ev;
    s->ev_tail = ev;
    uv_mutex_unlock(&s->mu);
    if (s->wake) s->wake(s);
}

static void post_simple(struct rpc_server *s, struct rpc_job *job, int kind, const char *text,
                        uint64_t a, uint64_t b)
{
    struct rpc_event *ev = calloc(1, sizeof *ev);
    if (!ev) return; /* a lost progress note is harmless; DONE uses post_done */
    ev->kind = kind;
    ev->job = job;
    ev->text = (char *)text;
    ev->a = a;
    ev->b = b;
    ev->acct = 128;
    post(s, ev, kind != RPC_EV_DONE);
}

/* DONE must arrive or the client waits forever: retry the allocation until it succeeds. */
static void post_done(struct rpc_server *s, struct rpc_job *job)
{
    struct rpc_event *ev;
    while (!(ev = calloc(1, sizeof *ev))) uv_sleep(10);
    ev->kind = RPC_EV_DONE;
    ev->job = job;
    post(s, ev, false);
}

/* ---------------- sessions and model ---------------- */

uint32_t rpc_session_ctx(const struct rpc_server *s, const struct eng_model *em, uint32_t n_ctx)
{
    if (!n_ctx) n_ctx = s->cfg.n_ctx;
    if (!n_ctx) n_ctx = RPC_DEFAULT_CTX;
    return eng_model_ctx_cap(em, n_ctx);
}

/* Free every session whose engine state exists (ready), and the anonymous one. Slots still
 * waiting for their session/create job survive: that job runs later against the new model. */
void rpc_exec_drop_sessions(struct rpc_server *s)
{
    bool mine[RPC_MAX_SESSIONS];
    uv_mutex_lock(&s->mu);
    for (size_t i = 0; i < RPC_MAX_SESSIONS; i++) mine[i] = s->sessions[i].used && s->sessions[i].ready;
    uv_mutex_unlock(&s->mu);
    for (size_t i = 0; i < RPC_MAX_SESSIONS; i++)
        if (mine[i]) eng_session_free(s->sessions[i].es);
    uv_mutex_lock(&s->mu);
    for (size_t i = 0; i < RPC_MAX_SESSIONS; i++)
        if (mine[i]) memset(&s->sessions[i], 0, sizeof s->sessions[i]);
    uv_mutex_unlock(&s->mu);
    eng_session_free(s->anon);
    s->anon = NULL;
}

void rpc_exec_free_all(struct rpc_server *s)
{
    rpc_exec_drop_sessions(s);
    eng_model_free(s->em);
    s->em = NULL;
    uv_mutex_lock(&s->mu);
    s->meta.loaded = false;
    uv_mutex_unlock(&s->mu);
}

struct load_progress {
    struct rpc_server *s;
    struct rpc_job *job;
};

/* model/progress notifications while the weights are paged in (the one long, silent step of
 * loading a big model). */
static void on_stage(void *ud, const char *stage, uint64_t done, uint64_t total)
{
    struct load_progress *lp = ud;
    post_simple(lp->s, lp->job, RPC_EV_MODEL_PROGRESS, stage, done, total);
}

static int load(struct rpc_server *s, struct rpc_job *job, const char *path, uint32_t n_ctx,
                int threads, struct err_info *ei)
{
    struct eng_model *nm;
    int rc = eng_model_open(&nm, path, threads ? threads : s->cfg.threads, ei);
    if (rc) return rc;
    const struct rpc_chat_template *ct = &s->cfg.chat_template;
    if (ct->src && (rc = eng_model_set_chat_template(nm, ct->src, ct->len, ct->name, ei))) {
        eng_model_free(nm);
        return rc;
    }
    struct load_progress lp = {s, job};
    eng_model_prefault(nm, job ? on_stage : NULL, &lp);
    /* {check: true}: a model storing NaN/inf weights is refused (the old one stays) */
    if (job && job->check &&
        ((rc = eng_model_check(nm, &job->chk, ei)) || (rc = eng_check_error(&job->chk, ei)))) {
        eng_model_free(nm);
        return rc;
    }
    /* the old model and its sessions go only once the new one is good */
    rpc_exec_drop_sessions(s);
    eng_model_free(s->em);
    s->em = nm;
    struct rpc_model_meta m;
    m.loaded = true;
    eng_model_info(nm, rpc_session_ctx(s, nm, n_ctx), &m.info);
    const struct eng_chat_info *ci = &m.info.chat;
    if (ci->source == ENG_CHAT_DETECTED)
        LOG_WARN("rpc: %s: the chat template does not parse as Jinja (%s); chat uses the built-in '%s'",
                 path, ci->parse_error, ci->builtin);
    else if (ci->source == ENG_CHAT_NONE)
        LOG_INFO("rpc: %s: no chat template; chat uses chatml", path);
    uv_mutex_lock(&s->mu);
    s->meta = m;
    uv_mutex_unlock(&s->mu);
    return 0;
}

int rpc_exec_load(struct rpc_server *s, const char *path, uint32_t n_ctx, int threads,
                  struct err_info *ei)
{
    return load(s, NULL, path, n_ctx, threads, ei);
}

static struct rpc_sess *slot_find(struct rpc_server *s, const char *sid)
{
    struct rpc_sess *e = NULL;
    uv_mutex_lock(&s->mu);
    for (size_t i = 0; i < RPC_MAX_SESSIONS && !e; i++)
        if (s->sessions[i].used && !strcmp(s->sessions[i].id, sid)) e = &s->sessions[i];
    uv_mutex_unlock(&s->mu);
    return e;
}

static int need_model(struct rpc_server *s, struct rpc_job *job)
{
    if (s->em) return 0;
    return err_set(&job->ei, ERR_STATE, ERR_NO_OFFSET,
                   "no model loaded: call model/load first (or start with -m MODEL)");
}

/* A new session of the current model with the server's prompt cache. */
static int new_session(struct rpc_server *s, uint32_t n_ctx, int kv_type, struct eng_session **out,
                       struct err_info *ei)
{
    int rc = eng_session_create_kv(out, s->em, n_ctx, kv_type < 0 ? s->cfg.kv_type : kv_type, ei);
    if (!rc) eng_session_set_pcache(*out, s->pcache);
    return rc;
}

int rpc_exec_pcache(struct rpc_server *s, const char *dir, uint32_t min_tokens, uint64_t max_bytes,
                    struct err_info *ei)
{
    int rc = eng_pcache_open(&s->pcache, dir, min_tokens, max_bytes, ei);
    if (rc) return rc;
    uv_mutex_lock(&s->mu);
    s->has_pcache = true;
    eng_pcache_stats(s->pcache, &s->pcache_stats);
    uv_mutex_unlock(&s->mu);
    return 0;
}

static int job_session(struct rpc_server *s, struct rpc_job *job, struct eng_session **out)
{
    int rc = need_model(s, job);
    if (rc) return rc;
    if (job->session[0]) {
        struct rpc_sess *e = slot_find(s, job->session);
        if (!e || !e->ready)
            return err_set(&job->ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "session '%s' not found", job->session);
        *out = e->es;
        return 0;
    }
    if (!s->anon && (rc = new_session(s, s->meta.info.n_ctx, -1, &s->anon, &job->ei))) return rc;
    *out = s->anon;
    return 0;
}

/* Under nothing: what a job changed that the loop reports (session/list, stats). */
static void publish(struct rpc_server *s, struct rpc_job *job, struct eng_session *es)
{
    uv_mutex_lock(&s->mu);
    if (job->session[0] && es)
        for (size_t i = 0; i < RPC_MAX_SESSIONS; i++)
            if (s->sessions[i].used && !strcmp(s->sessions[i].id, job->session))
                s->sessions[i].n_tokens = eng_session_n_tokens(es);
    if (s->pcache) eng_pcache_stats(s->pcache, &s->pcache_stats);
    uv_mutex_unlock(&s->mu);
}

/* ---------------- generate / chat ---------------- */

struct gen_ctx {
    struct rpc_server *s;
    struct rpc_job *job;
    bool oom;
};

static int on_text(void *ud, const char *text, size_t len, int32_t token)
{
    struct gen_ctx *g = ud;
    struct rpc_job *job = g->job;
    if (rpc_buf_add(&job->out, text, len)) {
        g->oom = true;
        return 1;
    }
    for (size_t off = 0; job->stream && off < len;) {
        size_t k = len - off;
        if (k > RPC_DELTA_MAX) {
            k = util_utf8_complete_prefix(text + off, RPC_DELTA_MAX);
            if (k == 0) k = RPC_DELTA_MAX;
        }
        struct rpc_event *ev = calloc(1, sizeof *ev);
        char *t = malloc(k ? k : 1);
        if (!ev || !t) {
            free(ev);
            free(t);
            g->oom = true;
            return 1;
        }
        memcpy(t, text + off, k);
        ev->kind = RPC_EV_DELTA;
        ev->job = job;
        ev->text = t;
        ev->len = k;
        ev->token = off + k == len ? token : -1;
        ev->acct = k + 128;
        post(g->s, ev, true);
        off += k;
    }
    return atomic_load(&job->cancel) ? 1 : 0;
}

/* One gen/tool_call piece of call `index` for the loop (text copied). 0, or 1 out of memory. */
static int post_tool(struct gen_ctx *g, uint32_t index, const char *text, size_t k)
{
    struct rpc_event *e = calloc(1, sizeof *e);
    char *t = malloc(k ? k : 1);
    if (!e || !t) {
        free(e);
        free(t);
        g->oom = true;
        return 1;
    }
    if (k) memcpy(t, text, k);
    e->kind = RPC_EV_TOOL;
    e->job = g->job;
    e->text = t;
    e->len = k;
    e->a = index;
    e->acct = k + 192;
    post(g->s, e, true);
    return 0;
}

/* A tool call's piece: kept for the result (id and name when it begins, the validated arguments
 * when it ends) and, streamed, posted as gen/tool_call: the start with "" (it names the call),
 * then the arguments in pieces of at most RPC_DELTA_MAX bytes. */
static int on_tool(void *ud, const struct eng_tool_event *ev)
{
    struct gen_ctx *g = ud;
    struct rpc_job *job = g->job;
    if (ev->index >= ENG_MAX_TOOL_CALLS) return 1;
    struct rpc_call *c = &job->calls[ev->index];
    if (ev->kind == ENG_TOOL_END) {
        c->args.len = 0;
        if (rpc_buf_add(&c->args, ev->text, ev->len)) {
            g->oom = true;
            return 1;
        }
        c->done = true;
        return 0;
    }
    if (ev->kind == ENG_TOOL_BEGIN) {
        snprintf(c->id, sizeof c->id, "%s", ev->id);
        snprintf(c->name, sizeof c->name, "%s", ev->name);
        job->n_calls = ev->index + 1;
        if (job->stream && post_tool(g, ev->index, "", 0)) return 1;
    }
    for (size_t off = 0; job->stream && ev->kind == ENG_TOOL_ARGS && off < ev->len;) {
        size_t k = ev->len - off;
        if (k > RPC_DELTA_MAX) {
            k = util_utf8_complete_prefix(ev->text + off, RPC_DELTA_MAX);
            if (k == 0) k = RPC_DELTA_MAX;
        }
        if (post_tool(g, ev->index, ev->text + off, k)) return 1;
        off += k;
    }
    return atomic_load(&job->cancel) ? 1 : 0;
}

static void on_progress(void *ud, uint32_t done, uint32_t total)
{
    struct gen_ctx *g = ud;
    if (!g->job->stream) return;
    double now = util_now();
    if (done != total && now - g->job->last_progress < 0.25) return;
    g->job->last_progress = now;
    post_simple(g->s, g->job, RPC_EV_PROGRESS, NULL, done, total);
}

static int run_gen(struct rpc_server *s, struct rpc_job *job)
{
    struct eng_session *es = NULL;
    int rc = job_session(s, job, &es);
    if (rc) return rc;
    if ((rc = eng_gen_params_check(s->em, &job->gp, &job->ei))) {
        job->params_error = rc == ERR_INVALID;
        return rc;
    }
    job->last_progress = util_now();
    struct gen_ctx g = {s, job, false};
    struct eng_sink sink = {on_text, on_progress, &g, &job->cancel};
    /* the request's context policy, for this generation only (the hook points into the job) */
    if (job->shift) eng_session_set_hooks(es, &(struct eng_hooks){.ctx_full = eng_ctx_full_shift, .ud = &job->shift_arg});
    if (job->method == RPC_M_CHAT) {
        job->copts.on_tool = on_tool;
        job->copts.tool_ud = &g;
        rc = eng_chat(es, job->chat, &job->copts, &job->gp, &sink, &job->res, &job->ei);
        /* a tool definition the model's call syntax cannot write is the request's */
        job->params_error = rc == ERR_INVALID;
    }
    else
        rc = eng_generate(es, job->prompt, job->prompt_len, &job->gp, &sink, &job->res, &job->ei);
    if (job->shift) eng_session_set_hooks(es, NULL);
    if (rc == 0 && g.oom) rc = err_set(&job->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory for the generated text");
    /* the params passed the loop's check, so this is the conversation's shape */
    if (job->method == RPC_M_CHAT && rc == ERR_INVALID) job->params_error = true;
    uv_mutex_lock(&s->mu);
    s->n.prompt_tokens += job->res.prompt_tokens;
    s->n.cached_tokens += job->res.cached_tokens;
    s->n.completion_tokens += job->res.completion_tokens;
    uv_mutex_unlock(&s->mu);
    publish(s, job, es);
    return rc;
}

/* session/save {session?, path} and session/load {session?, path}. */
static int run_snapshot(struct rpc_server *s, struct rpc_job *job)
{
    struct eng_session *es = NULL;
    int rc = job_session(s, job, &es);
    if (rc) return rc;
    if (job->method == RPC_M_SESSION_SAVE)
        rc = eng_session_save(es, job->path, &job->n_ctx_out, &job->bytes_out, &job->ei);
    else
        rc = eng_session_load(es, job->path, NULL, 0, &job->n_ctx_out, &job->ei);
    publish(s, job, es);
    return rc;
}

/* ---------------- the others ---------------- */

/* chat/render: the prompt chat would evaluate, and how many tokens it is. */
static int run_render(struct rpc_server *s, struct rpc_job *job)
{
    int rc = need_model(s, job);
    if (rc) return rc;
    struct eng_prompt pr;
    if ((rc = eng_chat_render(s->em, job->chat, &job->copts, &pr, &job->ei))) {
        job->params_error = rc == ERR_INVALID;
        return rc;
    }
    size_t n = 0;
    rc = eng_tokenize(s->em, pr.text, pr.len, !pr.bos_in_text, true, NULL, 0, &n, &job->ei);
    if (rc == ERR_LIMIT && n > 0) rc = 0; /* only the count was asked for */
    if (!rc && rpc_buf_add(&job->out, pr.text, pr.len))
        rc = err_set(&job->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    job->n_toks = n;
    snprintf(job->render.tmpl, sizeof job->render.tmpl, "%s", pr.tmpl ? pr.tmpl : "");
    job->render.jinja = pr.jinja;
    for (size_t i = 0; i < pr.n_stops; i++)
        snprintf(job->render.stop[i], sizeof job->render.stop[i], "%s", pr.stops[i]);
    job->render.n_stop = pr.n_stops;
    eng_prompt_free(&pr);
    return rc;
}

static int run_tokenize(struct rpc_server *s, struct rpc_job *job)
{
    int rc = need_model(s, job);
    if (rc) return rc;
    size_t cap = job->prompt_len + 16, n = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        free(job->toks);
        if (!(job->toks = malloc(cap * sizeof *job->toks)))
            return err_set(&job->ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        rc = eng_tokenize(s->em, job->prompt, job->prompt_len, job->add_bos, job->special, job->toks,
                          cap, &n, &job->ei);
        if (rc != ERR_LIMIT || n <= cap) break;
        cap = n + 1;
    }
    if (rc) return rc;
    job->n_toks = n;
    return 0;
}

static int run_detokenize(struct rpc_server *s, struct rpc_job *job)
{
    int rc = need_model(s, job);
    if (rc) return rc;
    char *text;
    size_t len;
    rc = eng_detokenize(s->em, job->toks, job->n_toks, job->special, &text, &len, &job->ei);
    if (rc) {
        job->params_error = rc == ERR_RANGE; /* an id outside the vocabulary is the caller's */
        return rc;
    }
    rc = rpc_buf_add(&job->out, text, len);
    free(text);
    return rc ? err_set(&job->ei, rc, ERR_NO_OFFSET, "out of memory") : 0;
}

static int run_session_create(struct rpc_server *s, struct rpc_job *job)
{
    struct rpc_sess *e = slot_find(s, job->session);
    int rc = need_model(s, job);
    if (!e) return err_set(&job->ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "session '%s' was dropped", job->session);
    if (!rc) rc = new_session(s, job->n_ctx ? job->n_ctx : s->meta.info.n_ctx, job->kv_type, &e->es, &job->ei);
    uv_mutex_lock(&s->mu);
    if (rc) {
        memset(e, 0, sizeof *e);
    } else {
        e->ready = true;
        e->n_ctx = job->n_ctx_out = eng_session_n_ctx(e->es);
        e->kv_type = job->kv_type = eng_session_kv_type(e->es);
    }
    uv_mutex_unlock(&s->mu);
    return rc;
}

static int run_session_close(struct rpc_server *s, struct rpc_job *job)
{
    struct rpc_sess *e = slot_find(s, job->session);
    if (!e) return err_set(&job->ei, ERR_NOT_FOUND, ERR_NO_OFFSET, "session '%s' not found", job->session);
    if (e->ready) eng_session_free(e->es);
    uv_mutex_lock(&s->mu);
    memset(e, 0, sizeof *e);
    uv_mutex_unlock(&s->mu);
    return 0;
}

void rpc_exec_job(struct rpc_server *s, struct rpc_job *job)
{
    int rc = 0;
    /* a cancelled close still closes: the client asked for the session to go */
    if (atomic_load(&job->cancel) && job->method != RPC_M_SESSION_CLOSE) {
        rc = ERR_CANCELLED;
    } else {
        switch (job->method) {
        case RPC_M_GENERATE:
        case RPC_M_CHAT: rc = run_gen(s, job); break;
        case RPC_M_TOKENIZE: rc = run_tokenize(s, job); break;
        case RPC_M_DETOKENIZE: rc = run_detokenize(s, job); break;
        case RPC_M_CHAT_RENDER: rc = run_render(s, job); break;
        case RPC_M_LOAD: rc = load(s, job, job->path, job->n_ctx, job->threads, &job->ei); break;
        case RPC_M_UNLOAD:
            job->n_ctx_out = s->em != NULL; /* 1: a model was unloaded */
            rpc_exec_free_all(s);
            break;
        case RPC_M_SESSION_CREATE: rc = run_session_create(s, job); break;
        case RPC_M_SESSION_CLOSE: rc = run_session_close(s, job); break;
        case RPC_M_SESSION_SAVE:
        case RPC_M_SESSION_LOAD: rc = run_snapshot(s, job); break;
        default: rc = err_set(&job->ei, ERR_INVALID, ERR_NO_OFFSET, "unknown job"); break;
        }
    }
    job->rc = rc;
    post_done(s, job);
}

void rpc_worker_main(void *arg)
{
    struct rpc_server *s = arg;
    uv_mutex_lock(&s->mu);
    for (;;) {
        while (!s->q_head && !s->quit) uv_cond_wait(&s->job_cv, &s->mu);
        struct rpc_job *job = s->q_head;
        if (!job) break; /* quit with nothing left */
        s->q_head = job->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        s->running = job;
        uv_mutex_unlock(&s->mu);
        rpc_exec_job(s, job);
        uv_mutex_lock(&s->mu);
        s->running = NULL;
    }
    uv_mutex_unlock(&s->mu);
    struct rpc_event *ev;
    while (!(ev = calloc(1, sizeof *ev))) uv_sleep(10);
    ev->kind = RPC_EV_EXIT;
    uv_mutex_lock(&s->mu);
    if (s->ev_tail) s->ev_tail->next = ev;
    else s->ev_head = ev;
    s->ev_tail = ev;
    uv_mutex_unlock(&s->mu);
    if (s->wake) s->wake(s);
}
