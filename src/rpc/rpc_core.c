/* rpc_core: the protocol itself, independent of transport: one inbound line → validation →
 * dispatch; engine events → notifications and final responses. Runs on the loop thread only.
 *
 * Control methods (initialize, ping, shutdown, stats, model/info, session/list, cancel) are
 * answered here at once, even while a generation runs. Everything that touches the engine becomes
 * a job for the worker (bounded queue, FIFO, one job at a time), so requests are processed in the
 * order they arrive and a pipelined session/create → generate works without waiting.
 *
 * Invariants: every request with a valid id gets exactly one response (a job's response is sent
 * when its DONE event arrives, also when it was cancelled); no line longer than
 * cfg.max_line_out is written (long text is cut with `text_truncated`, after gen/delta
 * notifications have carried all of it); ids of in-flight requests are unique. */
#include "rpc_int.h"

#include "../util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rpc_server_init(struct rpc_server *s, const struct rpc_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    if (!s->cfg.max_line_in) s->cfg.max_line_in = RPC_LINE_IN_DEFAULT;
    if (!s->cfg.max_line_out) s->cfg.max_line_out = RPC_LINE_OUT_MAX;
    if (!s->cfg.queue_max) s->cfg.queue_max = RPC_QUEUE_DEFAULT;
    if (!s->cfg.write_limit) s->cfg.write_limit = RPC_WRITE_LIMIT_DEFAULT;
    s->t_start = util_now();
    s->next_session = 1;
    s->deliver = rpc_handle_event;
    if (uv_mutex_init(&s->mu)) return ERR_NOMEM;
    if (uv_cond_init(&s->job_cv)) {
        uv_mutex_destroy(&s->mu);
        return ERR_NOMEM;
    }
    if (uv_cond_init(&s->space_cv)) {
        uv_cond_destroy(&s->job_cv);
        uv_mutex_destroy(&s->mu);
        return ERR_NOMEM;
    }
    s->mu_ok = true;
    if (cfg->batch) s->initialized = s->client_ready = true;
    return 0;
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s) return;
    while (s->active) {
        struct rpc_job *j = s->active;
        s->active = j->active_next;
        rpc_job_free(j);
    }
    /* queued jobs are also on the active list (freed above); events may still point at them */
    while (s->ev_head) {
        struct rpc_event *e = s->ev_head;
        s->ev_head = e->next;
        if (e->kind == RPC_EV_DELTA || e->kind == RPC_EV_TOOL) free(e->text);
        free(e);
    }
    rpc_exec_free_all(s);
    eng_pcache_free(s->pcache); /* after the sessions that used it */
    if (s->mu_ok) {
        uv_cond_destroy(&s->space_cv);
        uv_cond_destroy(&s->job_cv);
        uv_mutex_destroy(&s->mu);
    }
    memset(s, 0, sizeof *s);
}

/* ---------------- output ---------------- */

void rpc_written(struct rpc_server *s, size_t len)
{
    uv_mutex_lock(&s->mu);
    s->out_pending = s->out_pending > len ? s->out_pending - len : 0;
    if (s->out_pending <= s->cfg.write_limit) uv_cond_broadcast(&s->space_cv);
    uv_mutex_unlock(&s->mu);
}

void rpc_emit(struct rpc_server *s, json_t *msg)
{
    size_t len = 0;
    char *line = msg ? rpc_json_line(msg, &len) : NULL;
    if (line && len > s->cfg.max_line_out) {
        /* Never expected: every producer sizes its output. Answer something valid instead. */
        LOG_ERR("rpc: dropping a %zu-byte line (limit %zu)", len, s->cfg.max_line_out);
        free(line);
        line = NULL;
        json_t *id = json_object_get(msg, "id");
        if (id) {
            struct rpc_fail f;
            rpc_fail_set(&f, RPC_E_INTERNAL, 0, "response too large for one line");
            json_t *e = rpc_msg_error(id, rpc_error_obj(&f, NULL));
            line = rpc_json_line(e, &len);
            json_decref(e);
        }
    }
    json_decref(msg);
    if (!line) return;
    uv_mutex_lock(&s->mu);
    s->out_pending += len;
    if (s->out_pending > s->out_peak) s->out_peak = s->out_pending;
    uv_mutex_unlock(&s->mu);
    s->write_line(s, line, len);
}

static void reply(struct rpc_server *s, json_t *id, json_t *result)
{
    rpc_emit(s, rpc_msg_result(id, result));
}

static void reply_fail(struct rpc_server *s, json_t *id, const struct rpc_fail *f)
{
    s->n.errors++;
    rpc_emit(s, rpc_msg_error(id, rpc_error_obj(f, NULL)));
}

/* Answer id with an error: a protocol code, or 0 and an engine error (see rpc_fail_set). */
static int reply_err(struct rpc_server *s, json_t *id, int code, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int reply_err(struct rpc_server *s, json_t *id, int code, int err, const char *fmt, ...)
{
    struct rpc_fail f;
    int rc = rpc_fail_set(&f, code, err, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.msg, sizeof f.msg, fmt, ap);
    va_end(ap);
    reply_fail(s, id, &f);
    return rc;
}

/* ---------------- control methods ---------------- */

/* model info's chat_template_used: which template chat renders with (PROTOCOL.md). */
static json_t *chat_info_json(const struct eng_chat_info *c)
{
    static const char *const sources[] = {"none", "model", "file", "detected"};
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(c->source >= 0 && c->source <= ENG_CHAT_DETECTED
                                                     ? sources[c->source] : "none"));
    json_object_set_new(o, "jinja", json_boolean(c->jinja));
    if (c->jinja) {
        json_object_set_new(o, "name", rpc_json_text(c->name, strlen(c->name)));
        if (c->source == ENG_CHAT_MODEL) json_object_set_new(o, "name", json_string("tokenizer.chat_template"));
        json_object_set_new(o, "tool_use", json_boolean(c->tool_use));
        json_object_set_new(o, "end_of_turn", c->end_of_turn[0] ? rpc_json_text(c->end_of_turn, strlen(c->end_of_turn))
                                                                 : json_null());
        json_object_set_new(o, "supports", json_pack("{s:b,s:b,s:b,s:b,s:b}", "system_role", c->system_role,
                                                     "tools", c->tools, "tool_calls", c->tool_calls,
                                                     "object_arguments", c->object_arguments,
                                                     "parallel_tool_calls", c->parallel_calls));
    } else {
        json_object_set_new(o, "name", json_string(c->builtin ? c->builtin : "chatml"));
        json_object_set_new(o, "fallback", json_boolean(c->fallback));
        if (c->parse_error[0])
            json_object_set_new(o, "parse_error", rpc_json_text(c->parse_error, strlen(c->parse_error)));
    }
    json_object_set_new(o, "tool_syntax", json_string(c->tool_syntax ? c->tool_syntax : "generic"));
    return o;
}

/* The protocol's model info: printed from the same eng_model_info as `lmpipe info`. */
static json_t *model_info_json(struct rpc_server *s)
{
    uv_mutex_lock(&s->mu);
    bool loaded = s->meta.loaded;
    struct eng_model_info m = s->meta.info;
    uv_mutex_unlock(&s->mu);
    if (!loaded) return json_null();
    const char *name = m.meta[ENG_META_NAME].text;
    json_t *o = json_object();
    json_object_set_new(o, "path", rpc_json_text(m.path, strlen(m.path)));
    json_object_set_new(o, "name", rpc_json_text(name, strlen(name)));
    json_object_set_new(o, "architecture", rpc_json_text(m.arch, strlen(m.arch)));
    json_object_set_new(o, "tokenizer", rpc_json_text(m.tok_model, strlen(m.tok_model)));
    json_object_set_new(o, "file_size", json_integer((json_int_t)m.file_size));
    json_object_set_new(o, "n_vocab", json_integer(m.n_vocab));
    json_object_set_new(o, "n_ctx_train", json_integer(m.n_ctx_train));
    json_object_set_new(o, "n_ctx", json_integer(m.n_ctx));
    json_object_set_new(o, "n_embd", json_integer(m.n_embd));
    json_object_set_new(o, "n_layer", json_integer(m.n_layer));
    json_object_set_new(o, "n_head", json_integer(m.n_head));
    json_object_set_new(o, "n_head_kv", json_integer(m.n_head_kv));
    json_object_set_new(o, "n_ff", json_integer(m.n_ff));
    json_object_set_new(o, "bos_token", json_integer(m.bos));
    json_object_set_new(o, "eos_token", json_integer(m.eos));
    json_object_set_new(o, "chat_template", json_boolean(m.has_chat_template));
    json_object_set_new(o, "chat_template_used", chat_info_json(&m.chat));
    json_object_set_new(o, "threads", json_integer(m.threads));
    return o;
}

static json_t *limits_json(struct rpc_server *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "max_line_in", json_integer((json_int_t)s->cfg.max_line_in));
    json_object_set_new(o, "max_line_out", json_integer((json_int_t)s->cfg.max_line_out));
    json_object_set_new(o, "max_delta_bytes", json_integer(RPC_DELTA_MAX));
    json_object_set_new(o, "queue", json_integer((json_int_t)s->cfg.queue_max));
    json_object_set_new(o, "max_sessions", json_integer(RPC_MAX_SESSIONS));
    json_object_set_new(o, "max_stop", json_integer(ENG_MAX_STOPS));
    json_object_set_new(o, "max_stop_bytes", json_integer(ENG_MAX_STOP_LEN));
    json_object_set_new(o, "max_id_bytes", json_integer(RPC_ID_MAX));
    return o;
}

static void m_initialize(struct rpc_server *s, json_t *id, json_t *p)
{
    if (s->initialized) {
        reply_err(s, id, RPC_E_INVALID_REQUEST, ERR_STATE,
                  "already initialized: initialize may be sent once per process");
        return;
    }
    json_t *pv = p ? json_object_get(p, "protocolVersion") : NULL;
    if (pv && !json_is_string(pv) && !json_is_null(pv)) {
        reply_err(s, id, RPC_E_PARAMS, 0, "'protocolVersion' must be a string");
        return;
    }
    json_t *ci = p ? json_object_get(p, "clientInfo") : NULL;
    json_t *cn = json_is_object(ci) ? json_object_get(ci, "name") : NULL;
    if (json_is_string(cn)) snprintf(s->client_name, sizeof s->client_name, "%s", json_string_value(cn));
    s->initialized = true;
    json_t *r = json_object();
    json_object_set_new(r, "protocolVersion", json_string(RPC_PROTOCOL_VERSION));
    json_t *si = json_object();
    json_object_set_new(si, "name", json_string(RPC_SERVER_NAME));
    json_object_set_new(si, "version", json_string(RPC_SERVER_VERSION));
    json_object_set_new(r, "serverInfo", si);
    json_t *cap = json_object();
    json_object_set_new(cap, "streaming", json_true());
    json_object_set_new(cap, "sessions", json_true());
    json_object_set_new(cap, "cancel", json_pack("[ss]", "notifications/cancelled", "$/cancelRequest"));
    json_t *tmpl = json_array();
    for (size_t i = 0; i < eng_chat_template_count(); i++) json_array_append_new(tmpl, json_string(eng_chat_template_name(i)));
    json_object_set_new(cap, "chat_templates", tmpl);
    json_object_set_new(cap, "tools", json_true());
    json_object_set_new(cap, "grammar", json_true());
    json_object_set_new(cap, "jsonrpc_batch", json_false());
    json_object_set_new(r, "capabilities", cap);
    json_object_set_new(r, "limits", limits_json(s));
    json_object_set_new(r, "model", model_info_json(s));
    reply(s, id, r);
}

static uint64_t rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (!f) return 0;
    int n = fscanf(f, "%llu %llu", &size, &res);
    fclose(f);
    long pg = sysconf(_SC_PAGESIZE);
    return n == 2 && pg > 0 ? res * (uint64_t)pg : 0;
}

/* stats.prompt_cache: the worker's last copy of the cache's counters, or null without one. */
static json_t *pcache_json(struct rpc_server *s)
{
    uv_mutex_lock(&s->mu);
    bool has = s->has_pcache;
    struct eng_pcache_stats p = s->pcache_stats;
    uv_mutex_unlock(&s->mu);
    if (!has) return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "dir", rpc_json_text(p.dir, strlen(p.dir)));
    const struct {
        const char *key;
        uint64_t v;
    } f[] = {{"min_tokens", p.min_tokens}, {"max_bytes", p.max_bytes},         {"lookups", p.lookups},
             {"hits", p.hits},             {"misses", p.misses},               {"hit_tokens", p.hit_tokens},
             {"stores", p.stores},         {"evictions", p.evictions},         {"errors", p.errors},
             {"bytes_read", p.bytes_read}, {"bytes_written", p.bytes_written}, {"entries", p.entries},
             {"disk_bytes", p.disk_bytes}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) json_object_set_new(o, f[i].key, json_integer((json_int_t)f[i].v));
    return o;
}

static void m_stats(struct rpc_server *s, json_t *id)
{
    uv_mutex_lock(&s->mu);
    size_t n_sess = 0;
    for (size_t i = 0; i < RPC_MAX_SESSIONS; i++) n_sess += s->sessions[i].used && !s->sessions[i].closing;
    size_t qlen = s->q_len, pending = s->out_pending, peak = s->out_peak;
    uint64_t waits = s->bp_waits;
    struct rpc_counters c = s->n; /* token counts are the worker's: copied under the lock */
    bool loaded = s->meta.loaded;
    char path[sizeof s->meta.info.path];
    memcpy(path, s->meta.info.path, sizeof path);
    bool running = s->running != NULL;
    uv_mutex_unlock(&s->mu);
    json_t *r = json_object();
    json_object_set_new(r, "model", loaded ? rpc_json_text(path, strlen(path)) : json_null());
    json_object_set_new(r, "sessions", json_integer((json_int_t)n_sess));
    json_object_set_new(r, "queue_depth", json_integer((json_int_t)qlen));
    json_object_set_new(r, "running", json_boolean(running));
    json_object_set_new(r, "uptime_s", json_real(util_now() - s->t_start));
    json_t *mem = json_object();
    json_object_set_new(mem, "rss_bytes", json_integer((json_int_t)rss_now()));
    json_object_set_new(mem, "peak_rss_bytes", json_integer((json_int_t)util_peak_rss()));
    json_object_set_new(r, "memory", mem);
    json_t *tk = json_object();
    json_object_set_new(tk, "prompt", json_integer((json_int_t)c.prompt_tokens));
    json_object_set_new(tk, "completion", json_integer((json_int_t)c.completion_tokens));
    json_object_set_new(tk, "cached", json_integer((json_int_t)c.cached_tokens));
    json_object_set_new(r, "tokens", tk);
    json_t *rq = json_object();
    json_object_set_new(rq, "total", json_integer((json_int_t)s->n.requests));
    json_object_set_new(rq, "errors", json_integer((json_int_t)s->n.errors));
    json_object_set_new(rq, "cancelled", json_integer((json_int_t)s->n.cancelled));
    json_object_set_new(rq, "bad_lines", json_integer((json_int_t)s->n.bad_lines));
    json_object_set_new(r, "requests", rq);
    json_t *bp = json_object();
    json_object_set_new(bp, "pending_bytes", json_integer((json_int_t)pending));
    json_object_set_new(bp, "peak_pending_bytes", json_integer((json_int_t)peak));
    json_object_set_new(bp, "limit_bytes", json_integer((json_int_t)s->cfg.write_limit));
    json_object_set_new(bp, "waits", json_integer((json_int_t)waits));
    json_object_set_new(r, "output", bp);
    json_object_set_new(r, "prompt_cache", pcache_json(s));
    reply(s, id, r);
}

static void m_session_list(struct rpc_server *s, json_t *id)
{
    json_t *arr = json_array();
    uv_mutex_lock(&s->mu);
    for (size_t i = 0; i < RPC_MAX_SESSIONS; i++) {
        const struct rpc_sess *e = &s->sessions[i];
        if (!e->used || e->closing) continue;
        json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:b,s:s}", "session", e->id, "n_ctx",
                                             (json_int_t)(e->ready ? e->n_ctx : e->n_ctx_req),
                                             "n_tokens", (json_int_t)e->n_tokens, "busy", e->busy, "kv_type",
                                             e->ready ? eng_kv_type_name(e->kv_type) : "pending"));
    }
    uv_mutex_unlock(&s->mu);
    reply(s, id, json_pack("{s:o}", "sessions", arr));
}

static struct rpc_job *find_active(struct rpc_server *s, json_t *id)
{
    for (struct rpc_job *j = s->active; j; j = j->active_next)
        if (json_equal(j->id, id)) return j;
    return NULL;
}

static void cancel_job(struct rpc_server *s, struct rpc_job *j)
{
    uv_mutex_lock(&s->mu);
    atomic_store(&j->cancel, true);
    uv_cond_broadcast(&s->space_cv); /* a worker waiting on backpressure re-checks the flag */
    uv_mutex_unlock(&s->mu);
}

void rpc_cancel_all(struct rpc_server *s)
{
    for (struct rpc_job *j = s->active; j; j = j->active_next) cancel_job(s, j);
}

/* notifications/cancelled {requestId, reason?} and $/cancelRequest {id}. Unknown ids are
 * ignored: the request may have finished while the cancel was on its way. */
static void m_cancel(struct rpc_server *s, json_t *p, const char *key)
{
    json_t *target = p ? json_object_get(p, key) : NULL;
    if (!target || !(json_is_string(target) || json_is_integer(target))) return;
    struct rpc_job *j = find_active(s, target);
    if (j) cancel_job(s, j);
}

/* ---------------- jobs ---------------- */

static struct rpc_sess *sess_find_locked(struct rpc_server *s, const char *sid)
{
    for (size_t i = 0; i < RPC_MAX_SESSIONS; i++)
        if (s->sessions[i].used && !s->sessions[i].closing && !strcmp(s->sessions[i].id, sid))
            return &s->sessions[i];
    return NULL;
}

/* Under s->mu: the session a job names, claimed for it (busy) unless it closes it. */
static int claim_session_locked(struct rpc_server *s, struct rpc_job *job, struct rpc_fail *f)
{
    struct rpc_sess *e = sess_find_locked(s, job->session);
    if (!e)
        return rpc_fail_set(f, 0, ERR_NOT_FOUND,
                            "session '%s' not found (closed, never created, or dropped by model/load)",
                            job->session);
    if (job->method == RPC_M_SESSION_CLOSE) {
        e->closing = true;
        return 0;
    }
    if (e->busy)
        return rpc_fail_set(f, 0, ERR_BUSY,
                            "overloaded: session '%s' is busy with another request; retry when it is answered",
                            job->session);
    e->busy = true;
    return 0;
}

/* Under s->mu: a slot and an id for session/create (the worker creates the session). */
static int new_session_locked(struct rpc_server *s, struct rpc_job *job, struct rpc_fail *f)
{
    struct rpc_sess *e = NULL;
    for (size_t i = 0; i < RPC_MAX_SESSIONS && !e; i++)
        if (!s->sessions[i].used) e = &s->sessions[i];
    if (!e)
        return rpc_fail_set(f, 0, ERR_LIMIT, "too many sessions (limit %d): close one first",
                            RPC_MAX_SESSIONS);
    memset(e, 0, sizeof *e);
    e->used = true;
    e->n_ctx_req = job->n_ctx;
    snprintf(e->id, sizeof e->id, "s%llu", (unsigned long long)s->next_session++);
    memcpy(job->session, e->id, sizeof e->id);
    return 0;
}

/* Under s->mu: may the job be queued now? 0, or the error with f filled. */
static int admit_locked(struct rpc_server *s, struct rpc_job *job, struct rpc_fail *f)
{
    bool load = job->method == RPC_M_LOAD || job->method == RPC_M_UNLOAD;
    bool files = load || job->method == RPC_M_SESSION_SAVE || job->method == RPC_M_SESSION_LOAD;
    if (s->stopping) return rpc_fail_set(f, 0, ERR_STATE, "the server is shutting down");
    if (files && !s->cfg.allow_files)
        return rpc_fail_set(f, 0, ERR_UNSUPPORTED,
                            "model/load, model/unload, session/save and session/load are disabled here");
    if (!load && !s->meta.loaded && !s->q_len) /* a queued job may be a model/load: the worker re-checks */
        return rpc_fail_set(f, 0, ERR_STATE,
                            "no model loaded: call model/load first (or start with -m MODEL)");
    if (!s->cfg.inline_exec && s->q_len >= s->cfg.queue_max)
        return rpc_fail_set(f, 0, ERR_BUSY, "overloaded: %zu requests are queued (limit %zu); retry later",
                            s->q_len, s->cfg.queue_max);
    if (job->session[0]) return claim_session_locked(s, job, f);
    if (job->method == RPC_M_SESSION_CREATE) return new_session_locked(s, job, f);
    return 0;
}

/* Queue a job or explain why not. On success the job joins the active list (and runs at once
 * in inline mode). */
static int submit(struct rpc_server *s, struct rpc_job *job, struct rpc_fail *f)
{
    uv_mutex_lock(&s->mu);
    int rc = admit_locked(s, job, f);
    if (rc == 0 && !s->cfg.inline_exec) {
        if (s->q_tail) s->q_tail->next = job;
        else s->q_head = job;
        s->q_tail = job;
        s->q_len++;
        uv_cond_signal(&s->job_cv);
    }
    uv_mutex_unlock(&s->mu);
    if (rc) return rc;
    /* cancelling a close cancels the session's running work first: that is what close means */
    if (job->method == RPC_M_SESSION_CLOSE)
        for (struct rpc_job *j = s->active; j; j = j->active_next)
            if (!strcmp(j->session, job->session)) cancel_job(s, j);
    job->active_next = s->active;
    s->active = job;
    if (s->cfg.inline_exec) rpc_exec_job(s, job);
    return 0;
}

static void m_job(struct rpc_server *s, json_t *id, int method, json_t *params)
{
    struct rpc_job *job = rpc_job_new(method);
    struct rpc_fail f;
    if (!job) {
        reply_err(s, id, 0, ERR_NOMEM, "out of memory");
        return;
    }
    job->id = json_incref(id);
    if (rpc_req_parse(s, method, params, job, &f) || submit(s, job, &f)) {
        reply_fail(s, id, &f);
        rpc_job_free(job);
    }
}

/* ---------------- job results ---------------- */

static json_t *usage_json(const struct eng_gen_result *r)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "prompt_tokens", (json_int_t)r->prompt_tokens,
                     "completion_tokens", (json_int_t)r->completion_tokens, "total_tokens",
                     (json_int_t)(r->prompt_tokens + r->completion_tokens), "cached_tokens",
                     (json_int_t)r->cached_tokens);
}

/* llama-server's timings names. */
static json_t *timings_json(const struct eng_gen_result *r)
{
    uint32_t pn = r->prompt_tokens - r->cached_tokens, dn = r->completion_tokens;
    json_t *t = json_object();
    json_object_set_new(t, "cache_n", json_integer(r->cached_tokens));
    json_object_set_new(t, "prompt_n", json_integer(pn));
    json_object_set_new(t, "prompt_ms", json_real(r->prefill_ms));
    json_object_set_new(t, "prompt_per_token_ms", json_real(pn ? r->prefill_ms / pn : 0.0));
    json_object_set_new(t, "prompt_per_second", json_real(r->prefill_ms > 0 ? pn * 1e3 / r->prefill_ms : 0.0));
    json_object_set_new(t, "predicted_n", json_integer(dn));
    json_object_set_new(t, "predicted_ms", json_real(r->decode_ms));
    json_object_set_new(t, "predicted_per_token_ms", json_real(dn ? r->decode_ms / dn : 0.0));
    json_object_set_new(t, "predicted_per_second", json_real(r->decode_ms > 0 ? dn * 1e3 / r->decode_ms : 0.0));
    return t;
}

static void send_delta(struct rpc_server *s, struct rpc_job *job, const char *text, size_t len,
                       int32_t token)
{
    json_t *p = json_object();
    json_object_set(p, "id", job->id);
    json_object_set_new(p, "index", json_integer(job->n_deltas++));
    json_object_set_new(p, "text", rpc_json_text(text, len));
    if (job->return_tokens) json_object_set_new(p, "tokens", token >= 0 ? json_pack("[I]", (json_int_t)token) : json_array());
    rpc_emit(s, rpc_msg_notify("gen/delta", p));
}

/* gen/tool_call: the piece of call `index` (its start: arguments_delta ""). */
static void send_tool_note(struct rpc_server *s, struct rpc_job *job, uint64_t index, const char *text,
                           size_t len)
{
    const struct rpc_call *c = &job->calls[index < ENG_MAX_TOOL_CALLS ? index : 0];
    json_t *p = json_object();
    json_object_set(p, "id", job->id);
    json_object_set_new(p, "index", json_integer(job->n_tool_notes++));
    json_object_set_new(p, "call_index", json_integer((json_int_t)index));
    json_object_set_new(p, "call_id", json_string(c->id));
    json_object_set_new(p, "name", json_string(c->name));
    json_object_set_new(p, "arguments_delta", rpc_json_text(text, len));
    rpc_emit(s, rpc_msg_notify("gen/tool_call", p));
}

/* A chat's tool calls, OpenAI's shape: the complete ones (a call cut by max_tokens is not one). */
static json_t *tool_calls_json(const struct rpc_job *job)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < job->n_calls && i < ENG_MAX_TOOL_CALLS; i++) {
        const struct rpc_call *c = &job->calls[i];
        if (!c->done) continue;
        json_array_append_new(a, json_pack("{s:s,s:s,s:{s:s,s:o}}", "id", c->id, "type", "function",
                                           "function", "name", c->name, "arguments",
                                           rpc_json_text(c->args.p ? c->args.p : "", c->args.len)));
    }
    return a;
}

/* Put `text` (full text, for results or error data) into obj so the message fits one line:
 * msg is the complete message that contains obj. Cuts the text when needed and says so. */
static void fit_text(struct rpc_server *s, json_t *msg, json_t *obj, struct rpc_job *job)
{
    const char *t = job->out.p ? job->out.p : "";
    size_t n = job->out.len;
    json_object_set_new(obj, "text", rpc_json_text(t, n));
    if (s->cfg.max_line_out == SIZE_MAX) return;
    size_t len;
    char *line = rpc_json_line(msg, &len);
    if (line && len <= s->cfg.max_line_out) {
        free(line);
        return;
    }
    free(line);
    /* The text does not fit: make sure the client has all of it as deltas first. */
    if (!job->stream)
        for (size_t off = 0; off < n;) {
            size_t k = rpc_text_fit(t + off, n - off, RPC_DELTA_MAX);
            if (k == 0) k = n - off;
            send_delta(s, job, t + off, k, -1);
            off += k;
        }
    json_object_set_new(obj, "text", json_string(""));
    json_object_set_new(obj, "text_truncated", json_true());
    json_object_set_new(obj, "text_bytes", json_integer((json_int_t)n));
    line = rpc_json_line(msg, &len);
    size_t base = line ? len : s->cfg.max_line_out;
    free(line);
    size_t budget = base + 64 < s->cfg.max_line_out ? s->cfg.max_line_out - base - 64 : 0;
    size_t k = rpc_text_fit(t, n, budget);
    json_object_set_new(obj, "text", rpc_json_text(t, k));
}

static bool is_gen(const struct rpc_job *job)
{
    return job->method == RPC_M_GENERATE || job->method == RPC_M_CHAT;
}

/* -32800 with what was generated so far. */
static void finish_cancelled(struct rpc_server *s, struct rpc_job *job)
{
    s->n.cancelled++;
    s->n.errors++;
    struct rpc_fail f;
    rpc_fail_set(&f, RPC_E_CANCELLED, 0, "request cancelled");
    json_t *msg = rpc_msg_error(job->id, rpc_error_obj(&f, NULL));
    json_t *d = json_object_get(json_object_get(msg, "error"), "data");
    if (is_gen(job)) {
        json_object_set_new(d, "text", json_null());
        json_object_set_new(d, "finish_reason", json_string("cancelled"));
        json_object_set_new(d, "usage", usage_json(&job->res));
        fit_text(s, msg, d, job);
    }
    rpc_emit(s, msg);
}

/* model/load {check: true}: what the scan saw, and the tensors storing NaN/inf (at most 64 of
 * them, so the line stays short; non_finite_tensors counts them all). */
static json_t *check_json(const struct eng_check *c)
{
    json_t *bad = json_array();
    for (size_t i = 0; i < c->n_bad && i < 64; i++)
        json_array_append_new(bad, json_pack("{s:o,s:s,s:I}", "name", /* a name's bytes may be any */
                                             rpc_json_text(c->bad[i].name, strlen(c->bad[i].name)),
                                             "type", blk_type_name(c->bad[i].type), "non_finite",
                                             (json_int_t)c->bad[i].n_bad));
    return json_pack("{s:I,s:I,s:f,s:I,s:I,s:o}", "tensors", (json_int_t)c->n_tensors, "bytes",
                     (json_int_t)c->bytes, "ms", c->seconds * 1e3, "non_finite_values",
                     (json_int_t)c->n_bad_values, "non_finite_tensors", (json_int_t)c->n_bad,
                     "bad", bad);
}

/* The job's error: -32602 when it was about the params, else the engine's code and kind. */
static void finish_error(struct rpc_server *s, struct rpc_job *job)
{
    s->n.errors++;
    struct rpc_fail f;
    const char *m = job->ei.code ? job->ei.msg : err_str(job->rc);
    if (job->params_error) rpc_fail_set(&f, RPC_E_PARAMS, 0, "%s", m);
    /* the chat template refused the conversation: about the params, with its own kind */
    else if (job->rc == ERR_TEMPLATE) rpc_fail_set(&f, RPC_E_PARAMS, ERR_TEMPLATE, "%s", m);
    else rpc_fail_set(&f, 0, job->rc, "%s", m);
    json_t *msg = rpc_msg_error(job->id, rpc_error_obj(&f, NULL));
    json_t *d = json_object_get(json_object_get(msg, "error"), "data");
    /* a generation that failed after its prompt was evaluated (a full context): what it used */
    if (is_gen(job) && job->res.prompt_tokens) json_object_set_new(d, "usage", usage_json(&job->res));
    if (is_gen(job) && job->out.len) fit_text(s, msg, d, job);
    if (job->rc == ERR_NONFINITE_WEIGHTS) json_object_set_new(d, "check", check_json(&job->chk));
    rpc_emit(s, msg);
}

/* msg when it fits in one line; else (msg freed) limit_exceeded saying why, with extra (stolen)
 * in data. */
static json_t *fit_or_limit(struct rpc_server *s, struct rpc_job *job, json_t *msg, const char *why,
                            json_t *extra)
{
    size_t len;
    char *line = rpc_json_line(msg, &len);
    bool fits = line && len <= s->cfg.max_line_out;
    free(line);
    if (fits) {
        json_decref(extra);
        return msg;
    }
    json_decref(msg);
    s->n.errors++;
    struct rpc_fail f;
    rpc_fail_set(&f, 0, ERR_LIMIT, "%s", why);
    return rpc_msg_error(job->id, rpc_error_obj(&f, extra));
}

/* tokenize's answer, or limit_exceeded when the list does not fit one line. */
static json_t *tokens_result(struct rpc_server *s, struct rpc_job *job, json_t *msg, json_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < job->n_toks; i++) json_array_append_new(a, json_integer(job->toks[i]));
    json_object_set_new(r, "tokens", a);
    return fit_or_limit(s, job, msg, "the token list does not fit in one line; tokenize a shorter text",
                        json_pack("{s:I}", "n_tokens", (json_int_t)job->n_toks));
}

/* chat/render's answer, or limit_exceeded when the prompt does not fit in one line. */
static json_t *render_result(struct rpc_server *s, struct rpc_job *job, json_t *msg, json_t *r)
{
    json_object_set_new(r, "prompt", rpc_json_text(job->out.p ? job->out.p : "", job->out.len));
    json_object_set_new(r, "prompt_tokens", json_integer((json_int_t)job->n_toks));
    json_object_set_new(r, "template", rpc_json_text(job->render.tmpl, strlen(job->render.tmpl)));
    json_object_set_new(r, "jinja", json_boolean(job->render.jinja));
    json_t *stops = json_array();
    for (size_t i = 0; i < job->render.n_stop; i++)
        json_array_append_new(stops, rpc_json_text(job->render.stop[i], strlen(job->render.stop[i])));
    json_object_set_new(r, "stop", stops);
    return fit_or_limit(s, job, msg, "the rendered prompt does not fit in one line",
                        json_pack("{s:I,s:I}", "prompt_bytes", (json_int_t)job->out.len, "prompt_tokens",
                                  (json_int_t)job->n_toks));
}

static void finish_job(struct rpc_server *s, struct rpc_job *job)
{
    bool gen = is_gen(job);
    if (job->rc == ERR_CANCELLED || (gen && job->rc == 0 && job->res.finish == ENG_FINISH_CANCELLED)) {
        finish_cancelled(s, job);
        return;
    }
    if (job->rc) {
        finish_error(s, job);
        return;
    }
    json_t *r = json_object();
    json_t *msg = rpc_msg_result(job->id, r);
    if (gen || job->method == RPC_M_DETOKENIZE) json_object_set_new(r, "text", json_null()); /* first */
    switch (job->method) {
    case RPC_M_GENERATE:
    case RPC_M_CHAT:
        json_object_set_new(r, "finish_reason", json_string(eng_finish_name(job->res.finish)));
        json_object_set_new(r, "usage", usage_json(&job->res));
        json_object_set_new(r, "timings", timings_json(&job->res));
        if (job->session[0]) json_object_set_new(r, "session", json_string(job->session));
        if (job->n_calls && job->calls[0].done) { /* OpenAI's: content (null when only calls), calls */
            json_object_set_new(r, "content", job->out.len ? rpc_json_text(job->out.p, job->out.len) : json_null());
            json_object_set_new(r, "tool_calls", tool_calls_json(job));
        }
        fit_text(s, msg, r, job);
        break;
    case RPC_M_TOKENIZE: msg = tokens_result(s, job, msg, r); break;
    case RPC_M_CHAT_RENDER: msg = render_result(s, job, msg, r); break;
    case RPC_M_DETOKENIZE: fit_text(s, msg, r, job); break;
    case RPC_M_LOAD:
        json_object_set_new(r, "model", model_info_json(s));
        if (job->check) json_object_set_new(r, "check", check_json(&job->chk));
        break;
    case RPC_M_UNLOAD: json_object_set_new(r, "unloaded", json_boolean(job->n_ctx_out != 0)); break;
    case RPC_M_SESSION_CREATE:
        json_object_set_new(r, "session", json_string(job->session));
        json_object_set_new(r, "n_ctx", json_integer(job->n_ctx_out));
        json_object_set_new(r, "kv_type", json_string(eng_kv_type_name(job->kv_type)));
        break;
    case RPC_M_SESSION_CLOSE: json_object_set_new(r, "closed", json_true()); break;
    case RPC_M_SESSION_SAVE:
        json_object_set_new(r, "n_tokens", json_integer(job->n_ctx_out));
        json_object_set_new(r, "bytes", json_integer((json_int_t)job->bytes_out));
        break;
    case RPC_M_SESSION_LOAD: json_object_set_new(r, "n_tokens", json_integer(job->n_ctx_out)); break;
    default: break;
    }
    rpc_emit(s, msg);
}

void rpc_handle_event(struct rpc_server *s, struct rpc_event *ev)
{
    struct rpc_job *job = ev->job;
    if (ev->acct) rpc_written(s, ev->acct); /* the line built below is counted by rpc_emit */
    switch (ev->kind) {
    case RPC_EV_DELTA:
        send_delta(s, job, ev->text, ev->len, ev->token);
        free(ev->text);
        break;
    case RPC_EV_TOOL:
        send_tool_note(s, job, ev->a, ev->text, ev->len);
        free(ev->text);
        break;
    case RPC_EV_PROGRESS:
        rpc_emit(s, rpc_msg_notify("gen/progress", json_pack("{s:O,s:I,s:I}", "id", job->id, "processed",
                                                             (json_int_t)ev->a, "total", (json_int_t)ev->b)));
        break;
    case RPC_EV_MODEL_PROGRESS:
        rpc_emit(s, rpc_msg_notify("model/progress",
                                   json_pack("{s:O,s:s,s:I,s:I}", "id", job->id, "stage", ev->text,
                                             "processed", (json_int_t)ev->a, "total", (json_int_t)ev->b)));
        break;
    case RPC_EV_DONE: {
        /* unlink from the active list, free the session for the next request */
        for (struct rpc_job **pp = &s->active; *pp; pp = &(*pp)->active_next)
            if (*pp == job) {
                *pp = job->active_next;
                break;
            }
        if (job->session[0] && job->method != RPC_M_SESSION_CREATE) {
            uv_mutex_lock(&s->mu);
            for (size_t i = 0; i < RPC_MAX_SESSIONS; i++)
                if (s->sessions[i].used && !strcmp(s->sessions[i].id, job->session) &&
                    job->method != RPC_M_SESSION_CLOSE)
                    s->sessions[i].busy = false;
            uv_mutex_unlock(&s->mu);
        }
        finish_job(s, job);
        rpc_job_free(job);
        break;
    }
    default:
        break;
    }
    free(ev);
}

bool rpc_drain_events(struct rpc_server *s)
{
    uv_mutex_lock(&s->mu);
    struct rpc_event *e = s->ev_head;
    s->ev_head = s->ev_tail = NULL;
    uv_mutex_unlock(&s->mu);
    bool exited = false;
    while (e) {
        struct rpc_event *next = e->next;
        if (e->kind == RPC_EV_EXIT) {
            exited = true;
            free(e);
        } else {
            rpc_handle_event(s, e);
        }
        e = next;
    }
    return exited;
}

/* ---------------- inbound ---------------- */

static const struct {
    const char *name;
    int method;
} job_methods[] = {
    {"generate", RPC_M_GENERATE},
    {"chat", RPC_M_CHAT},
    {"chat/render", RPC_M_CHAT_RENDER},
    {"tokenize", RPC_M_TOKENIZE},
    {"detokenize", RPC_M_DETOKENIZE},
    {"model/load", RPC_M_LOAD},
    {"model/unload", RPC_M_UNLOAD},
    {"session/create", RPC_M_SESSION_CREATE},
    {"session/close", RPC_M_SESSION_CLOSE},
    {"session/save", RPC_M_SESSION_SAVE},
    {"session/load", RPC_M_SESSION_LOAD},
};

static bool is_cancel(const char *m, const char **key)
{
    if (!strcmp(m, "notifications/cancelled")) return *key = "requestId", true;
    if (!strcmp(m, "$/cancelRequest")) return *key = "id", true;
    return false;
}

/* The envelope of a message: the shapes of id, jsonrpc, method and params. 0 with the parts
 * (*m NULL: a response from the client, ignored), or the error it was answered with. */
static int envelope(struct rpc_server *s, json_t *msg, json_t **id, const char **m, json_t **params)
{
    *m = NULL;
    if (json_is_array(msg))
        return reply_err(s, NULL, RPC_E_INVALID_REQUEST, 0,
                         "batch arrays are not supported: send one JSON-RPC message per line");
    if (!json_is_object(msg))
        return reply_err(s, NULL, RPC_E_INVALID_REQUEST, 0, "a message must be a JSON object");
    *id = json_object_get(msg, "id");
    if (*id && json_is_string(*id) && json_string_length(*id) > RPC_ID_MAX)
        return reply_err(s, NULL, RPC_E_INVALID_REQUEST, 0, "'id' is longer than %d bytes", RPC_ID_MAX);
    if (*id && !json_is_string(*id) && !json_is_integer(*id))
        return reply_err(s, NULL, RPC_E_INVALID_REQUEST, 0,
                         "'id' must be a string or an integer (null and fractions are not accepted)");
    json_t *ver = json_object_get(msg, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0)
        return reply_err(s, *id, RPC_E_INVALID_REQUEST, 0, "'jsonrpc' must be \"2.0\"");
    json_t *method = json_object_get(msg, "method");
    if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
        LOG_WARN("rpc: ignoring a response from the client (the server sends no requests)");
        return 0;
    }
    if (!json_is_string(method))
        return reply_err(s, *id, RPC_E_INVALID_REQUEST, 0, "'method' must be a string");
    *params = json_object_get(msg, "params");
    if (*params && json_is_null(*params)) *params = NULL;
    if (*params && !json_is_object(*params) && !json_is_array(*params))
        return reply_err(s, *id, RPC_E_INVALID_REQUEST, 0, "'params' must be an object or an array");
    *m = json_string_value(method);
    return 0;
}

static const char k_not_initialized[] =
    "not initialized: send 'initialize' first (only 'ping' is answered before it)";

/* A request (it has an id): lifecycle and duplicate checks, then its method. */
static int dispatch(struct rpc_server *s, json_t *id, const char *m, json_t *params)
{
    s->n.requests++;
    if (!s->initialized && strcmp(m, "initialize") && strcmp(m, "ping"))
        return reply_err(s, id, RPC_E_NOT_INITIALIZED, 0, "%s", k_not_initialized);
    if (find_active(s, id))
        return reply_err(s, id, RPC_E_INVALID_REQUEST, 0,
                         "duplicate id: a request with this id is still in progress");
    if (params && json_is_array(params))
        return reply_err(s, id, RPC_E_PARAMS, 0, "params must be an object (named parameters)");
    const char *ckey;
    if (!strcmp(m, "initialize")) m_initialize(s, id, params);
    else if (!strcmp(m, "ping")) reply(s, id, json_object());
    else if (!strcmp(m, "stats")) m_stats(s, id);
    else if (!strcmp(m, "model/info")) reply(s, id, json_pack("{s:o}", "model", model_info_json(s)));
    else if (!strcmp(m, "session/list")) m_session_list(s, id);
    else if (!strcmp(m, "shutdown")) {
        reply(s, id, json_object());
        if (s->on_stop) s->on_stop(s);
    } else if (is_cancel(m, &ckey)) {
        m_cancel(s, params, ckey);
        reply(s, id, json_object());
    } else {
        for (size_t i = 0; i < sizeof job_methods / sizeof job_methods[0]; i++)
            if (!strcmp(m, job_methods[i].name)) {
                m_job(s, id, job_methods[i].method, params);
                return 0;
            }
        return reply_err(s, id, RPC_E_METHOD, 0, "method '%.64s' not found", m);
    }
    return 0;
}

int rpc_handle_message(struct rpc_server *s, json_t *msg)
{
    json_t *id = NULL, *params = NULL;
    const char *m;
    int rc = envelope(s, msg, &id, &m, &params);
    if (rc || !m) return rc;
    if (id) return dispatch(s, id, m, params);
    /* a notification: never answered */
    const char *ckey;
    if (is_cancel(m, &ckey)) m_cancel(s, json_is_object(params) ? params : NULL, ckey);
    else if (!strcmp(m, "notifications/initialized") || !strcmp(m, "initialized")) s->client_ready = true;
    else LOG_DEBUG("rpc: ignoring notification '%.64s'", m);
    return 0;
}

/* A line that is JSON but for integers outside 64 bits (rpc_json_parse read them as reals, the
 * first at byte `at`): a request whose envelope and id are sound is answered -32602 with its
 * id; anything else (no id, or the id is such an integer) is a parse error with id null. */
static void big_int_message(struct rpc_server *s, json_t *msg, size_t at)
{
    json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
    if (!json_is_string(id) && !json_is_integer(id)) {
        s->n.bad_lines++;
        reply_err(s, NULL, RPC_E_PARSE, 0,
                  "parse error: the integer at byte %zu does not fit in 64 bits (and no id could be read)", at);
        return;
    }
    json_t *params;
    const char *m;
    if (envelope(s, msg, &id, &m, &params) || !m) return;
    s->n.requests++;
    if (!s->initialized && strcmp(m, "initialize") && strcmp(m, "ping"))
        reply_err(s, id, RPC_E_NOT_INITIALIZED, 0, "%s", k_not_initialized);
    else
        reply_err(s, id, RPC_E_PARAMS, 0,
                  "invalid params: the integer at byte %zu does not fit in 64 bits (integers must lie "
                  "in [-2^63, 2^63-1])", at);
}

void rpc_handle_line(void *ud, const char *line, size_t len)
{
    struct rpc_server *s = ud;
    if (s->stopping) return; /* after shutdown, stdin EOF or a signal nothing more is read */
    s->n.lines_in++;
    if (!line) {
        s->n.bad_lines++;
        reply_err(s, NULL, RPC_E_INVALID_REQUEST, ERR_LIMIT,
                  "line of %zu bytes exceeds the limit of %zu bytes (--max-line); it was discarded",
                  len, s->cfg.max_line_in);
        return;
    }
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == len) return; /* blank lines are allowed between messages */
    size_t ok = util_utf8_valid_prefix(line, len);
    if (ok != len) {
        s->n.bad_lines++;
        reply_err(s, NULL, RPC_E_PARSE, 0, "parse error: invalid UTF-8 at byte %zu", ok);
        return;
    }
    json_error_t jerr;
    size_t big_at;
    json_t *msg = rpc_json_parse(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr, &big_at);
    if (!msg) {
        s->n.bad_lines++;
        reply_err(s, NULL, RPC_E_PARSE, 0, "parse error: %s at byte %d", jerr.text, jerr.position);
        return;
    }
    if (big_at != SIZE_MAX) big_int_message(s, msg, big_at);
    else rpc_handle_message(s, msg);
    json_decref(msg);
}
