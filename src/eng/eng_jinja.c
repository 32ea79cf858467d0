/* eng_jinja: a model's chat templates run as Jinja (src/tmpl), the way transformers'
 * apply_chat_template runs them, with llama.cpp's fixes for conversations a template refuses.
 *
 * When a model is opened its tokenizer.chat_template (and tokenizer.chat_template.tool_use) is
 * parsed once, its capabilities are probed once (tmpl_caps_probe) and its end-of-turn text is
 * derived once; every request then only builds its variables, applies the fixes its template's
 * capabilities call for, and renders. The rules are in eng.h ("chat").
 *
 * Untrusted templates: the probes and the end-of-turn derivation run at load with small bounds
 * (a hostile template costs a bounded moment at load and is then a template that renders
 * nothing useful); a request's render has tmpl's default bounds, and any failure of it is that
 * request's ERR_TEMPLATE. Nothing here keeps state between renders.
 *
 * Invariants: a struct jinja with t == NULL is unused; info describes exactly the templates
 * held (main.t set <=> info.jinja); every string handed to tmpl is valid UTF-8 without NUL. */
#include "eng_int.h"

#include "../tmpl/tmpl.h"
#include "../util/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One Jinja template, ready for requests. */
struct jinja {
    struct tmpl *t;
    struct tmpl_caps caps;
    bool keep_developer;         /* GPT-OSS ("<|channel|>"): role developer is its own */
    char eot[ENG_EOT_MAX + 1];   /* end-of-turn text, "" when none */
    char name[256];              /* what eng_prompt.tmpl says */
};

struct eng_chat_tmpls {
    struct jinja main, tool_use; /* tool_use.t: only from the file, only for requests with tools */
    int builtin;                 /* the built-in template when main.t is NULL */
    bool fallback;               /* ... chatml because the file's text was not recognised */
    char *bos, *eos;             /* the vocabulary's token texts (NULL: none) */
    struct eng_chat_info info;
};

struct eng_template {
    struct tmpl *t;
};

/* ---------------- the clock and the bounds ---------------- */

/* strftime_now's clock: SOURCE_DATE_EPOCH (UTC) when set, else now in local time. */
static void render_opts(struct tmpl_opts *o)
{
    tmpl_opts_default(o);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    int64_t pinned;
    if (sde && util_parse_i64(sde, 0, INT64_MAX / 2, &pinned) == 0) {
        o->now = pinned;
        return;
    }
    time_t now = time(NULL);
    struct tm g;
    o->now = (int64_t)now;
    if (gmtime_r(&now, &g)) {
        g.tm_isdst = -1; /* mktime reads g as local time: the difference is the local offset */
        time_t as_local = mktime(&g);
        if (as_local != (time_t)-1) o->utc_offset = (int32_t)(now - as_local);
    }
}

/* Probes and the end-of-turn derivation render tiny fixed conversations: a real template needs
 * a few thousand steps for them; a hostile one stops here. */
static void probe_opts(struct tmpl_opts *o)
{
    render_opts(o);
    o->max_steps = 1000000;
    o->max_output = 1u << 20;
    o->max_mem = 16u << 20;
}

/* ---------------- parsing, probing, end of turn ---------------- */

/* Rendering [user U, assistant A] (no generation prompt): the marker text after A. The
 * tool_use variants of some templates iterate tools unguarded, so an empty and a one-tool list
 * are tried when the plain request fails. */
#define EOT_USER "lmpipe_eot_user_5b1d"
#define EOT_REPLY "lmpipe_eot_reply_93ce"
#define EOT_MSGS                                                                              \
    "\"messages\": [{\"role\": \"user\", \"content\": \"" EOT_USER "\"}, {\"role\": "         \
    "\"assistant\", \"content\": \"" EOT_REPLY "\"}]"

static bool eot_render(const struct tmpl *t, const struct tmpl_req_opts *ro, char **out,
                       size_t *len)
{
    static const char *const reqs[] = {
        "{" EOT_MSGS "}",
        "{" EOT_MSGS ", \"tools\": []}",
        "{" EOT_MSGS ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", "
        "\"description\": \"d\", \"parameters\": {\"type\": \"object\", \"properties\": {}}}}]}",
    };
    struct tmpl_opts o;
    probe_opts(&o);
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        json_t *req = json_loads(reqs[i], 0, NULL), *vars = NULL;
        int rc = req ? tmpl_vars_from_request(req, ro, &vars, NULL) : ERR_NOMEM;
        if (rc == 0) rc = tmpl_render(t, vars, &o, out, len, NULL);
        json_decref(vars);
        json_decref(req);
        if (rc == 0) return true;
    }
    return false;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The end-of-turn text of t with these bos/eos texts into eot ("" when none qualifies). */
static void derive_eot(const struct tmpl *t, const char *bos, const char *eos, char *eot)
{
    eot[0] = 0;
    struct tmpl_req_opts ro = {.bos_token = bos, .eos_token = eos};
    char *text;
    size_t len;
    if (!eot_render(t, &ro, &text, &len)) return;
    /* the last occurrence of the reply, then the marker after it */
    const char *after = NULL;
    for (const char *p = text; (p = util_mem_find(p, len - (size_t)(p - text), EOT_REPLY,
                                                 strlen(EOT_REPLY)));
         p++)
        after = p + strlen(EOT_REPLY);
    size_t a = after ? (size_t)(after - text) : len, b;
    while (a < len && is_space(text[a])) a++;
    for (b = a; b < len && !is_space(text[b]) && text[b]; b++) {}
    /* a bracketed marker ends at its bracket: Llama 3's original template writes the next
     * header right after "<|eot_id|>" */
    char close = a < b && text[a] == '<' ? '>' : a < b && text[a] == '[' ? ']' : 0;
    const char *end = close ? memchr(text + a, close, b - a) : NULL;
    if (end) b = (size_t)(end - text) + 1;
    size_t n = b - a;
    bool word = true; /* only letters and digits: not a marker */
    for (size_t i = a; i < b; i++)
        if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
              (text[i] >= '0' && text[i] <= '9')))
            word = false;
    if (after && n >= 2 && n <= ENG_EOT_MAX && !word && util_utf8_valid_prefix(text + a, n) == n &&
        !util_mem_find(text + a, n, EOT_USER, strlen(EOT_USER))) {
        memcpy(eot, text + a, n);
        eot[n] = 0;
    }
    free(text);
}

static void jinja_free(struct jinja *j)
{
    tmpl_free(j->t);
    memset(j, 0, sizeof *j);
}

/* Parse src into j: probe it and derive its end-of-turn text. */
static int jinja_init(struct jinja *j, const char *src, size_t len, const char *bos,
                      const char *eos, const char *name, struct err_info *ei)
{
    memset(j, 0, sizeof *j);
    int rc = tmpl_parse(src, len, &j->t, ei);
    if (rc) return rc;
    struct tmpl_req_opts ro = {.bos_token = bos, .eos_token = eos};
    struct tmpl_opts o;
    probe_opts(&o);
    tmpl_caps_probe(j->t, &ro, &o, &j->caps);
    j->keep_developer = util_mem_find(src, len, "<|channel|>", 11) != NULL;
    derive_eot(j->t, bos, eos, j->eot);
    snprintf(j->name, sizeof j->name, "%s", name ? name : "(unnamed)");
    return 0;
}

/* The description eng_model_info gives, from the templates held. */
static void describe(struct eng_chat_tmpls *ct, int source)
{
    struct eng_chat_info *d = &ct->info;
    d->source = source;
    d->jinja = ct->main.t != NULL;
    d->builtin = d->jinja ? NULL : chat_template_name(ct->builtin);
    d->fallback = !d->jinja && ct->fallback;
    d->tool_use = ct->tool_use.t != NULL;
    if (source != ENG_CHAT_FILE) d->name[0] = 0;
    if (source != ENG_CHAT_DETECTED) d->parse_error[0] = 0;
    const struct tmpl_caps *c = &ct->main.caps;
    memcpy(d->end_of_turn, ct->main.eot, sizeof d->end_of_turn);
    d->system_role = c->system_role;
    d->typed_content = c->typed_content;
    d->tools = c->tools;
    d->tool_calls = c->tool_calls;
    d->object_arguments = c->object_arguments;
    d->parallel_calls = c->parallel_calls;
}

/* A special token's text for bos_token / eos_token: NULL when there is none or it is no
 * valid, NUL-free UTF-8 (a JSON string could not hold it). */
static char *token_text(const struct tok_vocab *v, int32_t id)
{
    size_t n = 0;
    const char *s = v && id >= 0 ? tok_piece_raw(v, id, &n) : NULL;
    if (!s || util_utf8_valid_prefix(s, n) != n || memchr(s, 0, n)) return NULL;
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

int eng_chat_tmpls_load(struct eng_chat_tmpls **out, const struct gguf_ctx *g,
                        const struct tok_vocab *v, struct err_info *ei)
{
    struct eng_chat_tmpls *ct = calloc(1, sizeof *ct);
    *out = NULL;
    if (!ct) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    ct->bos = token_text(v, v ? tok_bos(v) : -1);
    ct->eos = token_text(v, v ? tok_eos(v) : -1);
    struct gguf_str src, tu;
    int source = ENG_CHAT_NONE;
    if (gguf_get_str(g, "tokenizer.chat_template", &src) == 0) {
        struct err_info pe;
        err_clear(&pe);
        int rc = jinja_init(&ct->main, src.ptr, src.len, ct->bos, ct->eos, "tokenizer.chat_template", &pe);
        if (rc == ERR_NOMEM) {
            eng_chat_tmpls_free(ct);
            return err_set(ei, rc, ERR_NO_OFFSET, "out of memory for the chat template");
        }
        source = rc ? ENG_CHAT_DETECTED : ENG_CHAT_MODEL;
        if (rc) snprintf(ct->info.parse_error, sizeof ct->info.parse_error, "%s", pe.msg);
    }
    /* a tool_use variant that does not parse is ignored, as llama.cpp does */
    if (source == ENG_CHAT_MODEL && gguf_get_str(g, "tokenizer.chat_template.tool_use", &tu) == 0 &&
        jinja_init(&ct->tool_use, tu.ptr, tu.len, ct->bos, ct->eos,
                   "tokenizer.chat_template.tool_use", NULL) != 0)
        jinja_free(&ct->tool_use);
    ct->builtin = chat_template_from_gguf(g, &ct->fallback);
    describe(ct, source);
    *out = ct;
    return 0;
}

void eng_chat_tmpls_free(struct eng_chat_tmpls *ct)
{
    if (!ct) return;
    jinja_free(&ct->main);
    jinja_free(&ct->tool_use);
    free(ct->bos);
    free(ct->eos);
    free(ct);
}

const struct eng_chat_info *eng_chat_tmpls_info(const struct eng_chat_tmpls *ct) { return &ct->info; }

int eng_chat_tmpls_builtin(const struct eng_chat_tmpls *ct) { return ct->builtin; }

int eng_model_set_chat_template(struct eng_model *em, const char *src, size_t len,
                                const char *name, struct err_info *ei)
{
    struct eng_chat_tmpls *ct = em->chat;
    struct jinja j;
    int rc = jinja_init(&j, src, len, ct->bos, ct->eos, name, ei);
    if (rc) return rc;
    jinja_free(&ct->main);
    jinja_free(&ct->tool_use);
    ct->main = j;
    snprintf(ct->info.name, sizeof ct->info.name, "%s", j.name);
    describe(ct, ENG_CHAT_FILE);
    return 0;
}

/* ---------------- rendering a chat ---------------- */

/* Replace *msgs with fix(*msgs) (a new array). */
static int apply_fix(json_t **msgs, json_t *(*fix)(const json_t *), struct err_info *ei)
{
    json_t *r = fix(*msgs);
    if (!r) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    json_decref(*msgs);
    *msgs = r;
    return 0;
}

static json_t *content_to_string(const json_t *m) { return tmpl_msgs_content_form(m, true); }
static json_t *content_to_parts(const json_t *m) { return tmpl_msgs_content_form(m, false); }

/* The request's messages with the fixes j's capabilities call for (eng.h lists them). */
static int fixed_messages(const struct jinja *j, const json_t *request, json_t **out,
                          struct err_info *ei)
{
    json_t *m = json_incref(json_object_get(request, "messages"));
    int rc = 0;
    if (!j->keep_developer) rc = apply_fix(&m, tmpl_msgs_developer_to_system, ei);
    /* contents in the template's form first: the fold joins strings */
    if (!rc && !j->caps.typed_content && j->caps.string_content)
        rc = apply_fix(&m, content_to_string, ei);
    else if (!rc && j->caps.typed_content && !j->caps.string_content)
        rc = apply_fix(&m, content_to_parts, ei);
    if (!rc && !j->caps.system_role) rc = apply_fix(&m, tmpl_msgs_fold_system, ei);
    if (!rc && j->caps.tool_calls) rc = apply_fix(&m, tmpl_msgs_fill_tool_call_content, ei);
    if (rc) {
        json_decref(m);
        return rc;
    }
    *out = m;
    return 0;
}

static bool has_tools(const json_t *request)
{
    return json_array_size(json_object_get(request, "tools")) > 0;
}

/* A render's failure as the request's: a refusal, or a bound the template hit. */
static int render_failed(int rc, struct err_info *ei, const struct err_info *te)
{
    if (rc == ERR_NOMEM) return err_set(ei, rc, ERR_NO_OFFSET, "out of memory rendering the chat template");
    return err_set(ei, ERR_TEMPLATE, ERR_NO_OFFSET, "%s", te->msg[0] ? te->msg : err_str(rc));
}

int eng_jinja_render(const struct eng_chat_tmpls *ct, const json_t *request,
                     const struct eng_chat_opts *o, struct eng_prompt *out, struct err_info *ei)
{
    const struct jinja *j = has_tools(request) && ct->tool_use.t ? &ct->tool_use : &ct->main;
    json_t *msgs = NULL, *req = json_copy((json_t *)request), *vars = NULL;
    if (!req) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    int rc = fixed_messages(j, request, &msgs, ei);
    if (!rc && json_object_set_new(req, "messages", msgs))
        rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    struct tmpl_req_opts ro = {.bos_token = ct->bos, .eos_token = ct->eos,
                               .add_generation_prompt = o->add_generation_prompt,
                               .arguments_as_string = !j->caps.object_arguments};
    if (!rc) rc = tmpl_vars_from_request(req, &ro, &vars, ei);
    json_decref(req);
    if (rc) return rc;
    struct tmpl_opts to;
    render_opts(&to);
    struct err_info te;
    err_clear(&te);
    rc = tmpl_render(j->t, vars, &to, &out->text, &out->len, &te);
    json_decref(vars);
    if (rc) return render_failed(rc, ei, &te);
    json_t *ptc = json_object_get(request, "parallel_tool_calls");
    out->parallel_tool_calls = json_is_boolean(ptc) ? json_is_true(ptc) : j->caps.parallel_calls;
    out->jinja = true;
    out->tmpl = j->name;
    out->bos_in_text = ct->bos && ct->bos[0] && out->len >= strlen(ct->bos) &&
                       memcmp(out->text, ct->bos, strlen(ct->bos)) == 0;
    if (j->eot[0]) out->stops[out->n_stops++] = j->eot;
    return 0;
}

/* ---------------- a template on its own ---------------- */

int eng_template_parse(const char *src, size_t len, struct eng_template **out,
                       struct err_info *ei)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    int rc = tmpl_parse(src, len, &(*out)->t, ei);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

void eng_template_free(struct eng_template *t)
{
    if (!t) return;
    tmpl_free(t->t);
    free(t);
}

int eng_template_render(const struct eng_template *t, const char *request, size_t len, char **out,
                        size_t *out_len, struct err_info *ei)
{
    *out = NULL;
    *out_len = 0;
    json_error_t je;
    json_t *req = json_loadb(request, len, JSON_REJECT_DUPLICATES, &je), *vars = NULL;
    if (!req)
        return err_set(ei, ERR_INVALID, je.position >= 0 ? (uint64_t)je.position : ERR_NO_OFFSET,
                       "the request is not JSON: line %d, column %d: %s", je.line, je.column, je.text);
    struct tmpl_req_opts ro = {.extra_top_level = true, .arguments_as_given = true};
    int rc = tmpl_vars_from_request(req, &ro, &vars, ei);
    json_decref(req);
    if (rc) return rc;
    struct tmpl_opts o;
    render_opts(&o);
    rc = tmpl_render(t->t, vars, &o, out, out_len, ei);
    json_decref(vars);
    return rc;
}
