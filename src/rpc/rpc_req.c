/* rpc_req: request params → struct rpc_job, strictly.
 *
 * Every known field is type- and range-checked here, on the loop thread, so a bad request is
 * answered -32602 at once with the field named, never queued. A JSON null counts as absent
 * (OpenAI clients send `"stop": null`). Unknown fields are ignored so clients written against
 * OpenAI shapes (model, n, user, ...) work; PROTOCOL.md says so.
 *
 * chat: messages are copied out as plain strings; the worker renders them with the loaded
 * model's template (src/tok/chat.h), because only it knows which model will run the job. */
#include "rpc_int.h"

#include "../util/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rpc_job *rpc_job_new(int method)
{
    struct rpc_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->method = method;
    atomic_init(&j->cancel, false);
    eng_gen_params_default(&j->gp);
    j->add_bos = true;
    j->tmpl = -1;
    return j;
}

void rpc_job_free(struct rpc_job *job)
{
    if (!job) return;
    json_decref(job->id);
    free(job->prompt);
    for (size_t i = 0; i < SAMP_MAX_STOPS; i++) free(job->stops[i]);
    free(job->bias);
    free(job->toks);
    free(job->path);
    rpc_buf_free(&job->out);
    for (size_t i = 0; job->msgs && i < job->n_msgs; i++) {
        free((char *)job->msgs[i].role);
        free((char *)job->msgs[i].content);
    }
    free(job->msgs);
    free(job);
}

static int bad(struct rpc_fail *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int bad(struct rpc_fail *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    f->code = RPC_E_PARAMS;
    f->kind = "invalid_params";
    f->retryable = false;
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Field getters: 1 = absent or null, 0 = set, -1 = wrong type or range (f filled). */
static json_t *field(json_t *p, const char *key)
{
    json_t *v = p ? json_object_get(p, key) : NULL;
    return (v && !json_is_null(v)) ? v : NULL;
}

static int get_int(json_t *p, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   struct rpc_fail *f)
{
    json_t *v = field(p, key);
    if (!v) return 1;
    if (!json_is_integer(v))
        return bad(f, "'%s' must be an integer in [%lld, %lld]", key, (long long)lo, (long long)hi);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(f, "'%s' is %lld, outside [%lld, %lld]", key, (long long)x, (long long)lo,
                   (long long)hi);
    *out = x;
    return 0;
}

static int get_num(json_t *p, const char *key, double lo, double hi, float *out,
                   struct rpc_fail *f)
{
    json_t *v = field(p, key);
    if (!v) return 1;
    if (!json_is_number(v)) return bad(f, "'%s' must be a number in [%g, %g]", key, lo, hi);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return bad(f, "'%s' is %g, outside [%g, %g]", key, x, lo, hi);
    *out = (float)x;
    return 0;
}

static int get_bool(json_t *p, const char *key, bool *out, struct rpc_fail *f)
{
    json_t *v = field(p, key);
    if (!v) return 1;
    if (!json_is_boolean(v)) return bad(f, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

static int get_str(json_t *p, const char *key, const char **s, size_t *len, struct rpc_fail *f)
{
    json_t *v = field(p, key);
    if (!v) return 1;
    if (!json_is_string(v)) return bad(f, "'%s' must be a string", key);
    *s = json_string_value(v);
    *len = json_string_length(v);
    if (strlen(*s) != *len) return bad(f, "'%s' must not contain NUL characters", key);
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int oom(struct rpc_fail *f)
{
    rpc_fail_set(f, RPC_E_ENGINE_BASE + ERR_NOMEM, err_kind(ERR_NOMEM), true, "out of memory");
    return -1;
}

static int get_session(struct rpc_server *s, json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *v;
    size_t n;
    int rc = get_str(p, "session", &v, &n, f);
    if (rc < 0) return -1;
    if (rc == 1) return 0;
    if (s->cfg.batch) return bad(f, "'session' is not available in batch jobs");
    if (n == 0 || n >= RPC_SESSION_ID_MAX) return bad(f, "'session' is not a session id");
    memcpy(job->session, v, n + 1);
    return 0;
}

/* stop: a string or an array of up to SAMP_MAX_STOPS non-empty strings. */
static int get_stops(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *v = field(p, "stop");
    if (!v) return 0;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    json_t *arr[SAMP_MAX_STOPS];
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > SAMP_MAX_STOPS) return bad(f, "'stop' has %zu strings; at most %d", n, SAMP_MAX_STOPS);
        for (size_t i = 0; i < n; i++) arr[i] = json_array_get(v, i);
        items = arr;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = items[i];
        if (!json_is_string(x)) return bad(f, "'stop' must be a string or an array of strings");
        size_t len = json_string_length(x);
        if (len == 0 || len > SAMP_MAX_STOP_LEN || strlen(json_string_value(x)) != len)
            return bad(f, "stop string %zu must have 1 to %d bytes and no NUL", i, SAMP_MAX_STOP_LEN);
        if (!(job->stops[job->gp.n_stop] = dup_n(json_string_value(x), len))) return oom(f);
        job->gp.n_stop++;
    }
    return 0;
}

/* logit_bias: OpenAI's {"id": bias} or llama-server's [[id, bias], ...]; bias false bans. */
static int bias_value(json_t *b, const char *what, float *out, struct rpc_fail *f)
{
    if (json_is_false(b)) {
        *out = -INFINITY;
        return 0;
    }
    if (!json_is_number(b) || !isfinite(json_number_value(b)) || fabs(json_number_value(b)) > 1e6)
        return bad(f, "logit_bias for token %s must be a number (|x| <= 1e6) or false", what);
    *out = (float)json_number_value(b);
    return 0;
}

static int get_bias(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *v = field(p, "logit_bias");
    if (!v) return 0;
    size_t n = json_is_object(v) ? json_object_size(v) : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_object(v) && !json_is_array(v))
        return bad(f, "'logit_bias' must be an object {\"token id\": bias} or [[id, bias], ...]");
    if (n == 0) return 0;
    if (n > RPC_MAX_BIAS) return bad(f, "'logit_bias' has %zu entries; at most %d", n, RPC_MAX_BIAS);
    if (!(job->bias = calloc(n, sizeof *job->bias))) return oom(f);
    size_t k = 0;
    if (json_is_object(v)) {
        const char *key;
        json_t *b;
        json_object_foreach(v, key, b) {
            int64_t id;
            if (util_parse_i64(key, 0, INT32_MAX, &id))
                return bad(f, "logit_bias key '%.40s' is not a token id", key);
            job->bias[k].token = (int32_t)id;
            if (bias_value(b, key, &job->bias[k].bias, f)) return -1;
            k++;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            json_t *id = json_array_get(e, 0);
            if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(id) ||
                json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX)
                return bad(f, "logit_bias entry %zu must be [token id, bias]", i);
            char what[32];
            snprintf(what, sizeof what, "%lld", (long long)json_integer_value(id));
            job->bias[k].token = (int32_t)json_integer_value(id);
            if (bias_value(json_array_get(e, 1), what, &job->bias[k].bias, f)) return -1;
            k++;
        }
    }
    job->gp.samp.bias = job->bias;
    job->gp.samp.n_bias = k;
    return 0;
}

static int get_sampling(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    struct samp_params *sp = &job->gp.samp;
    int64_t i;
    int rc;
    if ((rc = get_int(p, "max_tokens", -1, INT32_MAX, &i, f)) < 0) return -1;
    if (rc == 0) job->gp.max_tokens = (int32_t)i;
    if (get_num(p, "temperature", 0, 100, &sp->temp, f) < 0) return -1;
    if ((rc = get_int(p, "top_k", 0, INT32_MAX, &i, f)) < 0) return -1;
    if (rc == 0) sp->top_k = (int32_t)i;
    if (get_num(p, "top_p", 0, 1, &sp->top_p, f) < 0) return -1;
    if (get_num(p, "min_p", 0, 1, &sp->min_p, f) < 0) return -1;
    if (get_num(p, "repeat_penalty", 0.01, 100, &sp->repeat_penalty, f) < 0) return -1;
    if ((rc = get_int(p, "repeat_last_n", 0, 1 << 20, &i, f)) < 0) return -1;
    if (rc == 0) sp->penalty_last_n = (int32_t)i;
    if (get_num(p, "presence_penalty", -100, 100, &sp->presence_penalty, f) < 0) return -1;
    if (get_num(p, "frequency_penalty", -100, 100, &sp->freq_penalty, f) < 0) return -1;
    if ((rc = get_int(p, "seed", -1, INT64_MAX, &i, f)) < 0) return -1;
    if (rc == 0) sp->seed = i < 0 ? (uint64_t)(util_now() * 1e9) : (uint64_t)i;
    if (get_stops(p, job, f) || get_bias(p, job, f)) return -1;
    if (get_bool(p, "stream", &job->stream, f) < 0) return -1;
    if (get_bool(p, "return_tokens", &job->return_tokens, f) < 0) return -1;
    if (get_bool(p, "ignore_eos", &job->gp.ignore_eos, f) < 0) return -1;
    return 0;
}

/* ---- chat ---- */

/* Message content: a string, or an array of {"type": "text", "text": ...} parts (joined). */
static int content_text(json_t *c, size_t idx, struct rpc_buf *out, struct rpc_fail *f)
{
    if (!c || json_is_null(c)) return 0;
    if (json_is_string(c)) {
        if (rpc_buf_add(out, json_string_value(c), json_string_length(c))) return oom(f);
        return 0;
    }
    if (!json_is_array(c)) return bad(f, "messages[%zu].content must be a string or an array of parts", idx);
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *part = json_array_get(c, i);
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0) {
            rpc_fail_set(f, RPC_E_ENGINE_BASE + ERR_UNSUPPORTED, err_kind(ERR_UNSUPPORTED), false,
                         "messages[%zu].content[%zu]: only text parts are supported", idx, i);
            return -1;
        }
        if (!json_is_string(text)) return bad(f, "messages[%zu].content[%zu].text must be a string", idx, i);
        if (rpc_buf_add(out, json_string_value(text), json_string_length(text))) return oom(f);
    }
    return 0;
}

static int unsupported(struct rpc_fail *f, const char *what)
{
    rpc_fail_set(f, RPC_E_ENGINE_BASE + ERR_UNSUPPORTED, err_kind(ERR_UNSUPPORTED), false,
                 "%s not supported yet (tools and grammars arrive with the grammar work; "
                 "leave the field out or null)",
                 what);
    return -1;
}

/* OpenAI-shaped messages → job->msgs (role and content copied as C strings). */
static int parse_messages(json_t *msgs, struct rpc_job *job, struct rpc_fail *f)
{
    size_t n = json_array_size(msgs);
    if (!(job->msgs = calloc(n, sizeof *job->msgs))) return oom(f);
    job->n_msgs = n;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m)) return bad(f, "messages[%zu] must be an object", i);
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role) || json_string_length(role) == 0 ||
            strlen(json_string_value(role)) != json_string_length(role))
            return bad(f, "messages[%zu].role must be a non-empty string", i);
        json_t *tc = json_object_get(m, "tool_calls");
        if (tc && !json_is_null(tc) && !(json_is_array(tc) && json_array_size(tc) == 0))
            return unsupported(f, "messages with 'tool_calls' are");
        struct rpc_buf b = {0};
        if (content_text(json_object_get(m, "content"), i, &b, f)) {
            rpc_buf_free(&b);
            return -1;
        }
        if (rpc_buf_add(&b, "", 0)) {
            rpc_buf_free(&b);
            return oom(f);
        }
        if (strlen(b.p) != b.len) {
            rpc_buf_free(&b);
            return bad(f, "messages[%zu].content must not contain NUL characters", i);
        }
        job->msgs[i].content = b.p;
        if (!(job->msgs[i].role = dup_n(json_string_value(role), json_string_length(role)))) return oom(f);
    }
    return 0;
}

static int parse_chat(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *tools = field(p, "tools");
    if (tools && !(json_is_array(tools) && json_array_size(tools) == 0))
        return unsupported(f, "'tools' are");
    json_t *tc = field(p, "tool_choice");
    if (tc && !(json_is_string(tc) && (!strcmp(json_string_value(tc), "none") ||
                                      !strcmp(json_string_value(tc), "auto"))))
        return unsupported(f, "'tool_choice' other than \"none\" or \"auto\" is");
    json_t *rf = field(p, "response_format");
    if (rf) {
        json_t *t = json_object_get(rf, "type");
        if (!json_is_object(rf) || !json_is_string(t)) return bad(f, "'response_format' must be {\"type\": ...}");
        if (strcmp(json_string_value(t), "text") != 0) return unsupported(f, "'response_format' (JSON mode and schemas) is");
    }
    if (field(p, "grammar")) return unsupported(f, "'grammar' is");
    json_t *msgs = field(p, "messages");
    if (!msgs) return bad(f, "'messages' is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(f, "'messages' must be a non-empty array of {role, content}");
    if (json_array_size(msgs) > RPC_MAX_MESSAGES)
        return bad(f, "'messages' has %zu entries; at most %d", json_array_size(msgs), RPC_MAX_MESSAGES);
    job->add_gen = true;
    if (get_bool(p, "add_generation_prompt", &job->add_gen, f) < 0) return -1;
    const char *name;
    size_t n;
    int rc = get_str(p, "chat_template", &name, &n, f);
    if (rc < 0) return -1;
    job->tmpl = -1;
    if (rc == 0 && (job->tmpl = chat_template_by_name(name)) < 0)
        return bad(f, "'chat_template' '%.40s' is not a built-in template name", name);
    job->gp.parse_special = true; /* the template's markers are special tokens */
    return parse_messages(msgs, job, f);
}

static int parse_gen(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *s;
    size_t n;
    int rc = get_str(p, "prompt", &s, &n, f);
    if (rc < 0) return -1;
    if (rc == 1) return bad(f, "'prompt' is required (a string)");
    if (!(job->prompt = dup_n(s, n))) return oom(f);
    job->prompt_len = n;
    if (get_bool(p, "add_bos", &job->gp.add_bos, f) < 0) return -1;
    if (get_bool(p, "special", &job->gp.parse_special, f) < 0) return -1;
    return 0;
}

static int parse_tokens(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *v = field(p, "tokens");
    if (!v || !json_is_array(v)) return bad(f, "'tokens' is required (an array of token ids)");
    size_t n = json_array_size(v);
    if (!(job->toks = malloc((n ? n : 1) * sizeof *job->toks))) return oom(f);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX)
            return bad(f, "tokens[%zu] must be a non-negative integer token id", i);
        job->toks[i] = (int32_t)json_integer_value(x);
    }
    job->n_toks = n;
    return 0;
}

int rpc_req_parse(struct rpc_server *s, int method, json_t *params, struct rpc_job *job,
                  struct rpc_fail *f)
{
    if (params && !json_is_object(params))
        return bad(f, "params must be an object (named parameters)");
    const char *str;
    size_t n;
    int64_t i;
    int rc;
    switch (method) {
    case RPC_M_GENERATE:
    case RPC_M_CHAT:
        if (get_session(s, params, job, f)) return -1;
        /* the sampling defaults of the CLI, except that a request runs until EOS by default */
        if (get_sampling(params, job, f)) return -1;
        if (s->cfg.batch) job->stream = false;
        return method == RPC_M_GENERATE ? parse_gen(params, job, f) : parse_chat(params, job, f);
    case RPC_M_TOKENIZE:
        if ((rc = get_str(params, "text", &str, &n, f)) < 0) return -1;
        if (rc == 1) return bad(f, "'text' is required (a string)");
        if (!(job->prompt = dup_n(str, n))) return oom(f);
        job->prompt_len = n;
        if (get_bool(params, "add_bos", &job->add_bos, f) < 0) return -1;
        if (get_bool(params, "special", &job->special, f) < 0) return -1;
        return 0;
    case RPC_M_DETOKENIZE:
        if (get_bool(params, "special", &job->special, f) < 0) return -1;
        return parse_tokens(params, job, f);
    case RPC_M_LOAD:
        if ((rc = get_str(params, "path", &str, &n, f)) < 0) return -1;
        if (rc == 1 || n == 0) return bad(f, "'path' is required (a file path)");
        if (n >= sizeof s->meta.path) return bad(f, "'path' is too long");
        if (!(job->path = dup_n(str, n))) return oom(f);
        if ((rc = get_int(params, "n_ctx", 0, 1 << 24, &i, f)) < 0) return -1;
        if (rc == 0) job->n_ctx = (uint32_t)i;
        if ((rc = get_int(params, "threads", 0, 1024, &i, f)) < 0) return -1;
        if (rc == 0) job->threads = (int)i;
        return 0;
    case RPC_M_SESSION_CREATE:
        if ((rc = get_int(params, "n_ctx", 0, 1 << 24, &i, f)) < 0) return -1;
        if (rc == 0) job->n_ctx = (uint32_t)i;
        return 0;
    case RPC_M_SESSION_CLOSE:
        if (get_session(s, params, job, f)) return -1;
        if (!job->session[0]) return bad(f, "'session' is required");
        return 0;
    case RPC_M_UNLOAD:
        return 0;
    default:
        return bad(f, "no params parser for this method");
    }
}
