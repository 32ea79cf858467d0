/* rpc_req: request params → struct rpc_job, strictly.
 *
 * Every known field is type- and range-checked here, on the loop thread, so a bad request is
 * answered -32602 at once with the field named, never queued. A JSON null counts as absent
 * (OpenAI clients send `"stop": null`). Unknown fields are ignored so clients written against
 * OpenAI shapes (model, n, user, ...) work; PROTOCOL.md says so. The sampling fields and their
 * ranges come from samp's one table (samp_field_at); a chat request is checked by eng_chat_check,
 * the same check every chat front end goes through, and kept as JSON for the worker to render.
 *
 * Every function returns 0 or a negative error code with the rpc_fail filled. */
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
    j->kv_type = -1;
    atomic_init(&j->cancel, false);
    eng_gen_params_default(&j->gp);
    eng_chat_opts_default(&j->copts);
    j->add_bos = true;
    return j;
}

void rpc_job_free(struct rpc_job *job)
{
    if (!job) return;
    json_decref(job->id);
    json_decref(job->chat);
    eng_grammar_free(job->grammar);
    free(job->prompt);
    for (size_t i = 0; i < ENG_MAX_STOPS; i++) free(job->stops[i]);
    free(job->bias);
    free(job->toks);
    free(job->path);
    eng_check_free(&job->chk);
    rpc_buf_free(&job->out);
    for (size_t i = 0; i < ENG_MAX_TOOL_CALLS; i++) rpc_buf_free(&job->calls[i].args);
    free(job);
}

/* -32602 naming the field. */
static int bad(struct rpc_fail *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int bad(struct rpc_fail *f, const char *fmt, ...)
{
    rpc_fail_set(f, RPC_E_PARAMS, 0, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

static int oom(struct rpc_fail *f) { return rpc_fail_set(f, 0, ERR_NOMEM, "out of memory"); }

/* Field getters: an absent (or null) field leaves *out as it is and returns 0; a wrong type or
 * range is ERR_INVALID with f filled. */
static json_t *field(json_t *p, const char *key)
{
    json_t *v = p ? json_object_get(p, key) : NULL;
    return (v && !json_is_null(v)) ? v : NULL;
}

static int get_int(json_t *p, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   struct rpc_fail *f)
{
    json_t *v = field(p, key);
    if (!v) return 0;
    if (!json_is_integer(v))
        return bad(f, "'%s' must be an integer in [%lld, %lld]", key, (long long)lo, (long long)hi);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(f, "'%s' is %lld, outside [%lld, %lld]", key, (long long)x, (long long)lo,
                   (long long)hi);
    *out = x;
    return 0;
}

/* n_ctx of session/create and model/load: 0 (absent) is the default context; 1 is refused, as
 * no request could ever generate in it (ENG_MIN_CTX). */
static int get_ctx(json_t *p, uint32_t *n_ctx, struct rpc_fail *f)
{
    int64_t i = 0;
    int rc = get_int(p, "n_ctx", 0, 1 << 24, &i, f);
    if (rc) return rc;
    if (i > 0 && i < ENG_MIN_CTX)
        return bad(f, "'n_ctx' is %lld: a context must hold at least %u positions (one prompt token and "
                   "one generated token); 0 or no n_ctx means the default", (long long)i, ENG_MIN_CTX);
    *n_ctx = (uint32_t)i;
    return 0;
}

static int get_bool(json_t *p, const char *key, bool *out, struct rpc_fail *f)
{
    json_t *v = field(p, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return bad(f, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A NUL-free string; *s stays NULL when the field is absent. */
static int get_str(json_t *p, const char *key, const char **s, size_t *len, struct rpc_fail *f)
{
    *s = NULL;
    *len = 0;
    json_t *v = field(p, key);
    if (!v) return 0;
    if (!json_is_string(v)) return bad(f, "'%s' must be a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return bad(f, "'%s' must not contain NUL characters", key);
    *s = json_string_value(v);
    *len = json_string_length(v);
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

static int get_session(struct rpc_server *s, json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *v;
    size_t n;
    int rc = get_str(p, "session", &v, &n, f);
    if (rc || !v) return rc;
    if (s->cfg.batch) return bad(f, "'session' is not available in batch jobs");
    if (n == 0 || n >= RPC_SESSION_ID_MAX) return bad(f, "'session' is not a session id");
    memcpy(job->session, v, n + 1);
    return 0;
}

/* ---- sampling ---- */

/* stop: a string or an array of up to ENG_MAX_STOPS non-empty strings. */
static int get_stops(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *v = field(p, "stop");
    if (!v) return 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (n > ENG_MAX_STOPS) return bad(f, "'stop' has %zu strings; at most %d", n, ENG_MAX_STOPS);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(x)) return bad(f, "'stop' must be a string or an array of strings");
        size_t len = json_string_length(x);
        if (len == 0 || len > ENG_MAX_STOP_LEN || strlen(json_string_value(x)) != len)
            return bad(f, "stop string %zu must have 1 to %d bytes and no NUL", i, ENG_MAX_STOP_LEN);
        if (!(job->stops[job->gp.n_stop] = dup_n(json_string_value(x), len))) return oom(f);
        job->gp.n_stop++;
    }
    job->gp.stop = (const char *const *)job->stops;
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

static int bias_entry(json_t *v, size_t i, struct samp_bias *out, struct rpc_fail *f)
{
    json_t *e = json_array_get(v, i);
    json_t *id = json_array_get(e, 0);
    if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(id) ||
        json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX)
        return bad(f, "logit_bias entry %zu must be [token id, bias]", i);
    char what[32];
    snprintf(what, sizeof what, "%lld", (long long)json_integer_value(id));
    out->token = (int32_t)json_integer_value(id);
    return bias_value(json_array_get(e, 1), what, &out->bias, f);
}

static int get_bias(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *v = field(p, "logit_bias");
    if (!v) return 0;
    if (!json_is_object(v) && !json_is_array(v))
        return bad(f, "'logit_bias' must be an object {\"token id\": bias} or [[id, bias], ...]");
    size_t n = json_is_object(v) ? json_object_size(v) : json_array_size(v);
    if (n == 0) return 0;
    if (n > RPC_MAX_BIAS) return bad(f, "'logit_bias' has %zu entries; at most %d", n, RPC_MAX_BIAS);
    if (!(job->bias = calloc(n, sizeof *job->bias))) return oom(f);
    size_t k = 0;
    int rc = 0;
    if (json_is_object(v)) {
        const char *key;
        json_t *b;
        json_object_foreach(v, key, b) {
            int64_t id;
            if (util_parse_i64(key, 0, INT32_MAX, &id))
                return bad(f, "logit_bias key '%.40s' is not a token id", key);
            job->bias[k].token = (int32_t)id;
            if ((rc = bias_value(b, key, &job->bias[k].bias, f))) return rc;
            k++;
        }
    } else {
        for (; k < n; k++)
            if ((rc = bias_entry(v, k, &job->bias[k], f))) return rc;
    }
    job->gp.samp.bias = job->bias;
    job->gp.samp.n_bias = k;
    return 0;
}

/* The numeric sampling fields, by samp's table of names and ranges. */
static int get_samp_fields(json_t *p, struct samp_params *sp, struct rpc_fail *f)
{
    const struct samp_field *sf;
    for (size_t i = 0; (sf = samp_field_at(i)); i++) {
        json_t *v = field(p, sf->key);
        if (!v) continue;
        if (sf->type == SAMP_FIELD_INT && !json_is_integer(v))
            return bad(f, "'%s' must be an integer in [%lld, %lld]", sf->key, (long long)sf->lo,
                       (long long)sf->hi);
        if (!json_is_number(v)) return bad(f, "'%s' must be a number in [%g, %g]", sf->key, sf->lo, sf->hi);
        double x = json_number_value(v);
        if (sf->type == SAMP_FIELD_INT && !samp_field_ok(sf, x))
            return bad(f, "'%s' is %lld, outside [%lld, %lld]", sf->key,
                       (long long)json_integer_value(v), (long long)sf->lo, (long long)sf->hi);
        if (!samp_field_ok(sf, x)) return bad(f, "'%s' is %g, outside [%g, %g]", sf->key, x, sf->lo, sf->hi);
        samp_field_set(sp, sf, x, NULL);
    }
    return 0;
}

static int get_sampling(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    struct samp_params *sp = &job->gp.samp;
    int64_t i = job->gp.max_tokens;
    int rc = get_int(p, "max_tokens", -1, INT32_MAX, &i, f);
    if (rc) return rc;
    job->gp.max_tokens = (int32_t)i;
    if ((rc = get_samp_fields(p, sp, f))) return rc;
    i = 0;
    json_t *seed = field(p, "seed");
    if ((rc = get_int(p, "seed", -1, INT64_MAX, &i, f))) return rc;
    if (seed) sp->seed = i < 0 ? (uint64_t)(util_now() * 1e9) : (uint64_t)i;
    if ((rc = get_stops(p, job, f)) || (rc = get_bias(p, job, f))) return rc;
    if ((rc = get_bool(p, "stream", &job->stream, f))) return rc;
    if ((rc = get_bool(p, "return_tokens", &job->return_tokens, f))) return rc;
    return get_bool(p, "ignore_eos", &job->gp.ignore_eos, f);
}

/* context_shift: {keep: int >= 0}: shift the context instead of failing when it fills up. */
static int get_shift(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    json_t *v = field(p, "context_shift");
    if (!v) return 0;
    if (!json_is_object(v) || !json_object_get(v, "keep"))
        return bad(f, "'context_shift' must be {\"keep\": N}: the first N tokens are always kept");
    int64_t keep = 0;
    int rc = get_int(v, "keep", 0, 1 << 24, &keep, f);
    if (rc) return rc;
    job->shift = true;
    job->shift_arg.keep = (uint32_t)keep;
    return 0;
}

/* path: a non-empty file path (session/save, session/load). */
static int get_path(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *str;
    size_t n;
    int rc = get_str(p, "path", &str, &n, f);
    if (rc) return rc;
    if (!str || n == 0) return bad(f, "'path' is required (a file path)");
    if (n > 4096) return bad(f, "'path' is too long");
    if (!(job->path = dup_n(str, n))) return oom(f);
    return 0;
}

/* ---- grammars ---- */

/* OpenAI's response_format: {type: "text"} (no constraint: *schema and *json stay unset),
 * {type: "json_object"} (*json), {type: "json_schema", json_schema: {name?, schema, strict?}}
 * (*schema, *strict). */
static int get_response_format(json_t *rf, json_t **schema, bool *json, bool *strict,
                               struct rpc_fail *f)
{
    json_t *t = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(t))
        return bad(f, "'response_format' must be {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}");
    const char *type = json_string_value(t);
    if (!strcmp(type, "text")) return 0;
    if (!strcmp(type, "json_object")) return *json = true, 0;
    if (strcmp(type, "json_schema"))
        return bad(f, "'response_format.type' '%.40s' is not \"text\", \"json_object\" or \"json_schema\"", type);
    json_t *js = json_object_get(rf, "json_schema");
    if (!json_is_object(js))
        return bad(f, "'response_format.json_schema' must be an object {name, schema, strict?}");
    json_t *name = field(js, "name"), *st = field(js, "strict");
    *schema = json_object_get(js, "schema");
    if (name && !json_is_string(name)) return bad(f, "'response_format.json_schema.name' must be a string");
    if (st && !json_is_boolean(st)) return bad(f, "'response_format.json_schema.strict' must be true or false");
    if (!json_is_object(*schema) && !json_is_boolean(*schema))
        return bad(f, "'response_format.json_schema.schema' must be a JSON Schema (an object or a boolean)");
    *strict = json_is_true(st);
    return 0;
}

/* grammar (GBNF text), json_schema (a JSON Schema) or response_format: at most one constrains
 * the text. It is compiled here, so a bad one is answered -32602 at once with the parser's
 * line:column or the schema's unsupported keywords, and the worker only runs it. */
static int get_grammar(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *gbnf;
    size_t n;
    int rc = get_str(p, "grammar", &gbnf, &n, f);
    if (rc) return rc;
    json_t *schema = field(p, "json_schema"), *rf = field(p, "response_format");
    if (schema && !json_is_object(schema) && !json_is_boolean(schema))
        return bad(f, "'json_schema' must be a JSON Schema (an object or a boolean)");
    bool json = false, strict = false;
    const char *what = gbnf ? "grammar" : "json_schema";
    if (rf) {
        json_t *rs = NULL;
        if ((rc = get_response_format(rf, &rs, &json, &strict, f))) return rc;
        if ((rs || json) && (gbnf || schema))
            return bad(f, "give one of 'grammar', 'json_schema' and 'response_format', not several");
        if (rs) schema = rs, what = "response_format.json_schema.schema";
    }
    if (gbnf && schema) return bad(f, "give one of 'grammar' and 'json_schema', not both");
    struct err_info ei;
    err_clear(&ei);
    if (gbnf) rc = eng_grammar_parse(&job->grammar, gbnf, n, &ei);
    else if (schema) rc = eng_grammar_from_schema_json(&job->grammar, schema, strict, &ei);
    else if (json) rc = eng_grammar_json(&job->grammar, &ei);
    if (rc == ERR_NOMEM) return oom(f);
    if (rc) return bad(f, "'%s': %s", what, ei.msg);
    job->gp.grammar = job->grammar;
    return 0;
}

/* ---- methods ---- */

/* A chat: eng's check of the conversation, the template choice, and a copy of the request for
 * the worker. */
static int parse_chat(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    if (!p) return bad(f, "'messages' is required");
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_chat_check(p, &ei);
    if (rc == ERR_INVALID) return bad(f, "%s", ei.msg);
    if (rc) return rpc_fail_set(f, 0, rc, "%s", ei.msg);
    if ((rc = get_bool(p, "add_generation_prompt", &job->copts.add_generation_prompt, f))) return rc;
    const char *name;
    size_t n;
    if ((rc = get_str(p, "chat_template", &name, &n, f))) return rc;
    if (name) {
        snprintf(job->tmpl_name, sizeof job->tmpl_name, "%s", name);
        job->copts.kind = ENG_TMPL_BUILTIN;
        job->copts.name = job->tmpl_name;
        if (n >= sizeof job->tmpl_name || eng_chat_opts_check(&job->copts, NULL))
            return bad(f, "'chat_template' '%.40s' is not a built-in template name", name);
    }
    if (!(job->chat = json_deep_copy(p))) return oom(f);
    return 0;
}

static int parse_gen(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *s;
    size_t n;
    int rc = get_str(p, "prompt", &s, &n, f);
    if (rc) return rc;
    if (!s) return bad(f, "'prompt' is required (a string)");
    if (!(job->prompt = dup_n(s, n))) return oom(f);
    job->prompt_len = n;
    if ((rc = get_bool(p, "add_bos", &job->gp.add_bos, f))) return rc;
    return get_bool(p, "special", &job->gp.parse_special, f);
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

static int parse_tokenize(json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *str;
    size_t n;
    int rc = get_str(p, "text", &str, &n, f);
    if (rc) return rc;
    if (!str) return bad(f, "'text' is required (a string)");
    if (!(job->prompt = dup_n(str, n))) return oom(f);
    job->prompt_len = n;
    if ((rc = get_bool(p, "add_bos", &job->add_bos, f))) return rc;
    return get_bool(p, "special", &job->special, f);
}

static int parse_load(struct rpc_server *s, json_t *p, struct rpc_job *job, struct rpc_fail *f)
{
    const char *str;
    size_t n;
    int rc = get_str(p, "path", &str, &n, f);
    if (rc) return rc;
    if (!str || n == 0) return bad(f, "'path' is required (a file path)");
    if (n >= sizeof s->meta.info.path) return bad(f, "'path' is too long");
    if (!(job->path = dup_n(str, n))) return oom(f);
    int64_t i = 0;
    if ((rc = get_ctx(p, &job->n_ctx, f))) return rc;
    if ((rc = get_int(p, "threads", 0, 1024, &i, f))) return rc;
    job->threads = (int)i;
    return get_bool(p, "check", &job->check, f);
}

int rpc_req_parse(struct rpc_server *s, int method, json_t *params, struct rpc_job *job,
                  struct rpc_fail *f)
{
    if (params && !json_is_object(params))
        return bad(f, "params must be an object (named parameters)");
    int rc;
    switch (method) {
    case RPC_M_GENERATE:
    case RPC_M_CHAT:
        if ((rc = get_session(s, params, job, f))) return rc;
        /* the sampling defaults of the CLI, except that a request runs until EOS by default */
        if ((rc = get_sampling(params, job, f)) || (rc = get_shift(params, job, f)) ||
            (rc = get_grammar(params, job, f)))
            return rc;
        if (s->cfg.batch) job->stream = false;
        return method == RPC_M_GENERATE ? parse_gen(params, job, f) : parse_chat(params, job, f);
    case RPC_M_CHAT_RENDER:
        return parse_chat(params, job, f);
    case RPC_M_TOKENIZE:
        return parse_tokenize(params, job, f);
    case RPC_M_DETOKENIZE:
        if ((rc = get_bool(params, "special", &job->special, f))) return rc;
        return parse_tokens(params, job, f);
    case RPC_M_LOAD:
        return parse_load(s, params, job, f);
    case RPC_M_SESSION_CREATE: {
        if ((rc = get_ctx(params, &job->n_ctx, f))) return rc;
        const char *kt;
        size_t n;
        if ((rc = get_str(params, "kv_type", &kt, &n, f))) return rc;
        if (kt && eng_kv_type_parse(kt, &job->kv_type))
            return bad(f, "'kv_type' is '%.32s'; expected \"f32\", \"f16\" or \"q8_0\"", kt);
        return 0;
    }
    case RPC_M_SESSION_SAVE:
    case RPC_M_SESSION_LOAD:
        if ((rc = get_session(s, params, job, f))) return rc;
        return get_path(params, job, f);
    case RPC_M_SESSION_CLOSE:
        if ((rc = get_session(s, params, job, f))) return rc;
        if (!job->session[0]) return bad(f, "'session' is required");
        return 0;
    case RPC_M_UNLOAD:
        return 0;
    default:
        return bad(f, "no params parser for this method");
    }
}
