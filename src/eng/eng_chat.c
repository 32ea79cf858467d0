/* eng_chat: a conversation (OpenAI-shaped JSON) → prompt text → generation, the one chat
 * behaviour of every front end.
 *
 * The request is JSON by nature (the Jinja renderer takes JSON values, tool calling needs the
 * tools' JSON Schemas), so this file includes jansson; eng.h only names `struct json_t`.
 * Rendering happens behind one function, eng_chat_render: the model's Jinja template
 * (eng_jinja.c) when it has a usable one, else the built-in templates of src/tok/chat.c (the
 * family detected from the model's tokenizer.chat_template, or a name); the template choice is
 * an explicit option struct.
 *
 * Invariants: eng_chat_check accepts exactly what eng_chat_render can render with a Jinja
 * template (a built-in one refuses tools, tool calls and documents); every string reaching a
 * template is NUL-free; the stop strings a template adds live as long as the model. */
#include "eng_int.h"

#include "../util/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- options ---------------- */

void eng_chat_opts_default(struct eng_chat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->kind = ENG_TMPL_MODEL;
    o->add_generation_prompt = true;
}

int eng_chat_opts_check(const struct eng_chat_opts *o, struct err_info *ei)
{
    if (o->kind == ENG_TMPL_MODEL) return 0;
    if (o->kind == ENG_TMPL_BUILTIN && o->name && chat_template_by_name(o->name) >= 0) return 0;
    return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'%.40s' is not a built-in template name",
                   o->kind == ENG_TMPL_BUILTIN && o->name ? o->name : "(none)");
}

size_t eng_chat_template_count(void) { return chat_template_count(); }

const char *eng_chat_template_name(size_t i)
{
    return i < chat_template_count() ? chat_template_name((int)i) : NULL;
}

/* ---------------- validation ---------------- */

/* A field of the request; JSON null counts as absent (OpenAI clients send "tools": null). */
static json_t *field(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? v : NULL;
}

static bool nul_free(const json_t *s) { return strlen(json_string_value(s)) == json_string_length(s); }

/* Content: a string, null, or an array of {"type": "text", "text": string} parts. */
static int check_content(const json_t *c, size_t idx, struct err_info *ei)
{
    if (!c || json_is_null(c)) return 0;
    if (json_is_string(c)) {
        if (!nul_free(c)) goto nul;
        return 0;
    }
    if (!json_is_array(c))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "messages[%zu].content must be a string or an array of parts", idx);
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *part = json_array_get(c, i);
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0)
            return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                           "messages[%zu].content[%zu]: only text parts are supported", idx, i);
        if (!json_is_string(text))
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "messages[%zu].content[%zu].text must be a string", idx, i);
        if (!nul_free(text)) goto nul;
    }
    return 0;
nul:
    return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                   "messages[%zu].content must not contain NUL characters", idx);
}

/* {function: {name: a non-empty string, ...}}: a tool definition or a tool call's function.
 * what: "tools[3]" or "messages[2].tool_calls[0]". */
static int check_function(const json_t *o, const char *what, struct err_info *ei)
{
    json_t *fn = json_object_get(o, "function"), *name = json_object_get(fn, "name");
    if (!json_is_object(o) || !json_is_object(fn))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "%s must be {\"function\": {\"name\": ...}}",
                       what);
    if (!json_is_string(name) || json_string_length(name) == 0 || !nul_free(name))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "%s.function.name must be a non-empty string",
                       what);
    return 0;
}

/* tool_calls: [{function: {name, arguments: a JSON string or an object}}] (the id is the
 * caller's business: templates that need one say so themselves). */
static int check_tool_calls(const json_t *tc, size_t i, struct err_info *ei)
{
    if (!tc || json_is_null(tc)) return 0;
    if (!json_is_array(tc))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "messages[%zu].tool_calls must be an array", i);
    for (size_t k = 0; k < json_array_size(tc); k++) {
        char what[64];
        snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu]", i, k);
        int rc = check_function(json_array_get(tc, k), what, ei);
        if (rc) return rc;
        json_t *args = json_object_get(json_object_get(json_array_get(tc, k), "function"), "arguments");
        if (json_is_object(args) || !args || json_is_null(args)) continue;
        json_t *parsed = json_is_string(args) && nul_free(args)
                             ? json_loadb(json_string_value(args), json_string_length(args), 0, NULL)
                             : NULL;
        bool ok = json_is_object(parsed);
        json_decref(parsed);
        if (!ok)
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "%s.function.arguments must be an object or a string holding a JSON "
                           "object",
                           what);
    }
    return 0;
}

/* No string anywhere in v holds a NUL (the texts reach a template and then the tokenizer as C
 * strings' contents); what: the field for the message. Nesting is bounded by the JSON parser. */
static int check_no_nul(const json_t *v, const char *what, struct err_info *ei)
{
    if (json_is_string(v) && !nul_free(v))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "%s must not contain NUL characters", what);
    const char *k;
    json_t *x;
    size_t i;
    int rc = 0;
    if (json_is_object(v)) json_object_foreach((json_t *)v, k, x) if (!rc) rc = check_no_nul(x, what, ei);
    if (json_is_array(v)) json_array_foreach(v, i, x) if (!rc) rc = check_no_nul(x, what, ei);
    return rc;
}

static int check_message(const json_t *m, size_t i, struct err_info *ei)
{
    if (!json_is_object(m))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "messages[%zu] must be an object", i);
    json_t *role = json_object_get(m, "role");
    if (!json_is_string(role) || json_string_length(role) == 0 || !nul_free(role))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "messages[%zu].role must be a non-empty string", i);
    int rc = check_tool_calls(json_object_get(m, "tool_calls"), i, ei);
    if (rc || (rc = check_content(json_object_get(m, "content"), i, ei))) return rc;
    char what[32];
    snprintf(what, sizeof what, "messages[%zu]", i);
    return check_no_nul(m, what, ei); /* the other fields: name, tool_call_id, ... */
}

/* The request's other fields: their types. */
static int check_fields(const json_t *request, struct err_info *ei)
{
    static const struct {
        const char *key;
        json_type type;
        const char *says;
    } k[] = {
        {"parallel_tool_calls", JSON_TRUE, "true or false"},
        {"add_generation_prompt", JSON_TRUE, "true or false"},
        {"documents", JSON_ARRAY, "an array"},
        {"chat_template_kwargs", JSON_OBJECT, "an object"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        json_t *v = field(request, k[i].key);
        bool ok = !v || (k[i].type == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == k[i].type);
        if (!ok) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'%s' must be %s", k[i].key, k[i].says);
    }
    static const char *const walked[] = {"tools", "documents", "chat_template_kwargs"};
    for (size_t i = 0; i < sizeof walked / sizeof walked[0]; i++) {
        char what[48];
        snprintf(what, sizeof what, "'%s'", walked[i]);
        int rc = check_no_nul(field(request, walked[i]), what, ei);
        if (rc) return rc;
    }
    return 0;
}

int eng_chat_check(const struct json_t *request, struct err_info *ei)
{
    if (!json_is_object(request))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "a chat request must be an object");
    int rc = check_fields(request, ei);
    if (rc || (rc = eng_tools_check(request, ei))) return rc;
    json_t *msgs = field(request, "messages");
    if (!msgs) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'messages' is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "'messages' must be a non-empty array of {role, content}");
    if (json_array_size(msgs) > ENG_MAX_MESSAGES)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'messages' has %zu entries; at most %d",
                       json_array_size(msgs), ENG_MAX_MESSAGES);
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        rc = check_message(json_array_get(msgs, i), i, ei);
        if (rc) return rc;
    }
    return 0;
}

/* ---------------- rendering ---------------- */

/* The conversation as the built-in renderer takes it: roles and contents as C strings (text
 * parts joined), all in one allocation owned by the caller. */
struct msgs {
    struct chat_msg *m;
    size_t n;
    char *text;
};

static int collect(const json_t *msgs, struct msgs *out, struct err_info *ei)
{
    size_t n = json_array_size(msgs), bytes = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i), *c = json_object_get(m, "content");
        bytes += json_string_length(json_object_get(m, "role")) + 2;
        if (json_is_string(c)) bytes += json_string_length(c);
        for (size_t k = 0; json_is_array(c) && k < json_array_size(c); k++)
            bytes += json_string_length(json_object_get(json_array_get(c, k), "text"));
    }
    out->n = n;
    out->m = calloc(n, sizeof *out->m);
    out->text = malloc(bytes);
    if (!out->m || !out->text) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    char *w = out->text;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i), *role = json_object_get(m, "role"),
               *c = json_object_get(m, "content");
        out->m[i].role = w;
        memcpy(w, json_string_value(role), json_string_length(role) + 1);
        w += json_string_length(role) + 1;
        out->m[i].content = w;
        if (json_is_string(c)) {
            memcpy(w, json_string_value(c), json_string_length(c));
            w += json_string_length(c);
        }
        for (size_t k = 0; json_is_array(c) && k < json_array_size(c); k++) {
            json_t *t = json_object_get(json_array_get(c, k), "text");
            memcpy(w, json_string_value(t), json_string_length(t));
            w += json_string_length(t);
        }
        *w++ = 0;
    }
    return 0;
}

/* The built-in template the options choose for this model. */
static int pick_template(const struct eng_model *em, const struct eng_chat_opts *o, bool *fallback)
{
    *fallback = false;
    if (o->kind == ENG_TMPL_BUILTIN) return chat_template_by_name(o->name);
    *fallback = eng_chat_tmpls_info(em->chat)->fallback;
    return eng_chat_tmpls_builtin(em->chat);
}

/* End-of-turn texts a template closes a reply with, as stop strings: when the vocabulary has
 * the marker as a control token it is an end-of-generation token anyway; when it does not
 * (a chatml fallback on a model that never saw chatml) the text is all we can see. */
static size_t template_stops(int tmpl, const char **stops)
{
    if (tmpl == CHAT_TMPL_CHATML) {
        stops[0] = "<|im_end|>";
        return 1;
    }
    return 0;
}

/* A built-in template writes roles and contents only: what else the request holds would be
 * dropped without a word, so it is refused. */
static int builtin_refuses(const json_t *request, int tmpl, struct err_info *ei)
{
    const char *what = NULL;
    json_t *msgs = field(request, "messages");
    for (size_t i = 0; i < json_array_size(msgs) && !what; i++)
        if (json_array_size(json_object_get(json_array_get(msgs, i), "tool_calls")))
            what = "tool calls";
    if (json_array_size(field(request, "tools"))) what = "tools";
    if (json_array_size(field(request, "documents"))) what = "documents";
    if (!what) return 0;
    return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                   "the built-in chat template '%s' cannot render %s: they need a Jinja chat "
                   "template (the model's own, or --chat-template-file)",
                   chat_template_name(tmpl), what);
}

static int builtin_render(const struct eng_model *em, const json_t *request,
                          const struct eng_chat_opts *o, struct eng_prompt *out,
                          struct err_info *ei)
{
    int tmpl = pick_template(em, o, &out->fallback);
    int rc = builtin_refuses(request, tmpl, ei);
    if (rc) return rc;
    struct msgs ms = {0};
    if ((rc = collect(field(request, "messages"), &ms, ei))) goto done;
    size_t need = 0;
    rc = chat_render(tmpl, ms.m, ms.n, o->add_generation_prompt, NULL, 0, &need);
    if (rc == ERR_LIMIT && !(out->text = malloc(need + 1))) rc = ERR_NOMEM;
    else if (rc == ERR_LIMIT)
        rc = chat_render(tmpl, ms.m, ms.n, o->add_generation_prompt, out->text, need + 1, &need);
    if (rc) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot render the chat template: %s", err_str(rc));
        goto done;
    }
    out->len = need;
    out->tmpl = chat_template_name(tmpl);
    out->n_stops = template_stops(tmpl, out->stops);
done:
    free(ms.m);
    free(ms.text);
    return rc;
}

/* Render, with what the template makes of tools in *tv: a request with tools, tool calls or
 * tool results the template does not show is rewritten first (eng_trun_rewrite). */
static int render(const struct eng_model *em, const json_t *request, const struct eng_chat_opts *o,
                  struct eng_prompt *out, struct eng_tview *tv, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    struct eng_chat_opts opts;
    if (o) opts = *o;
    else eng_chat_opts_default(&opts);
    int rc = eng_chat_check(request, ei);
    if (rc || (rc = eng_chat_opts_check(&opts, ei))) return rc;
    json_t *agp = field(request, "add_generation_prompt"); /* the request's own word wins */
    if (agp) opts.add_generation_prompt = json_is_true(agp);
    struct eng_toolset ts;
    if ((rc = eng_toolset_parse(field(request, "tools"), &ts, ei))) return rc;
    eng_chat_tmpls_tools(em->chat, &opts, ts.n > 0, tv);
    json_t *req = NULL;
    rc = eng_trun_rewrite(request, tv, &ts, &req, ei);
    eng_toolset_free(&ts);
    if (rc) return rc;
    if (opts.kind == ENG_TMPL_MODEL && eng_chat_tmpls_info(em->chat)->jinja)
        rc = eng_jinja_render(em->chat, req, &opts, out, ei);
    else
        rc = builtin_render(em, req, &opts, out, ei);
    json_decref(req);
    if (rc) eng_prompt_free(out);
    return rc;
}

int eng_chat_render(const struct eng_model *em, const struct json_t *request,
                    const struct eng_chat_opts *o, struct eng_prompt *out, struct err_info *ei)
{
    struct eng_tview tv;
    return render(em, request, o, out, &tv, ei);
}

void eng_prompt_free(struct eng_prompt *p)
{
    if (!p) return;
    free(p->text);
    memset(p, 0, sizeof *p);
}

int eng_chat(struct eng_session *s, const struct json_t *request, const struct eng_chat_opts *o,
             const struct eng_gen_params *p, const struct eng_sink *sink,
             struct eng_gen_result *res, struct err_info *ei)
{
    memset(res, 0, sizeof *res);
    res->finish = ENG_FINISH_ERROR;
    struct eng_prompt pr;
    struct eng_tview tv;
    int rc = render(s->em, request, o, &pr, &tv, ei);
    if (rc) return rc;
    /* the tools: their grammar in the model's call syntax (a definition this syntax cannot
     * write is the request's mistake, as a schema the converter refuses is) */
    struct eng_trun tr;
    if (!(rc = eng_trun_parse(&tr, request, pr.parallel_tool_calls || !pr.jinja, ei)) &&
        (rc = eng_trun_setup(&tr, s->em, &tv.syn, ei)) && rc != ERR_NOMEM) {
        if (ei) ei->code = ERR_INVALID;
        rc = ERR_INVALID;
    }
    if (!rc && tr.active && (p->grammar || p->constraint))
        rc = err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                     "give tools or a grammar (grammar, json_schema, response_format), not both "
                     "(or tool_choice \"none\")");
    if (!rc) {
        struct eng_gen_params gp = *p;
        gp.parse_special = true; /* the template's markers are special tokens */
        if (pr.bos_in_text) gp.add_bos = false; /* the template wrote it (as transformers has it) */
        rc = eng_trun_generate(s, &tr, pr.text, pr.len, &gp, pr.stops, pr.n_stops,
                               o ? o->on_tool : NULL, o ? o->tool_ud : NULL, sink, res, ei);
    }
    eng_trun_free(&tr);
    eng_prompt_free(&pr);
    return rc;
}

/* ---------------- a conversation kept by eng ---------------- */

struct eng_conv {
    json_t *request; /* {"messages": [...]} */
    json_t *msgs;    /* borrowed from request */
};

int eng_conv_create(struct eng_conv **out)
{
    struct eng_conv *c = calloc(1, sizeof *c);
    if (!c) return ERR_NOMEM;
    c->request = json_object();
    c->msgs = json_array();
    if (!c->request || !c->msgs || json_object_set(c->request, "messages", c->msgs)) {
        json_decref(c->msgs);
        eng_conv_free(c);
        return ERR_NOMEM;
    }
    json_decref(c->msgs); /* the request holds it */
    *out = c;
    return 0;
}

void eng_conv_free(struct eng_conv *c)
{
    if (!c) return;
    json_decref(c->request);
    free(c);
}

/* Text as a JSON string; bytes that are not valid UTF-8 (a terminal's) become U+FFFD each. */
static json_t *repaired(const char *text, size_t len)
{
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    char *fixed = malloc(len * 3 + 1);
    if (!fixed) return NULL;
    size_t n = util_utf8_repair(text, len, fixed);
    json_t *s = json_stringn(fixed, n);
    free(fixed);
    return s;
}

int eng_conv_add(struct eng_conv *c, const char *role, const char *text, size_t len)
{
    json_t *m = json_pack("{s:s,s:o}", "role", role, "content", repaired(text, len));
    if (!m) return ERR_NOMEM;
    return json_array_append_new(c->msgs, m) ? ERR_NOMEM : 0;
}

size_t eng_conv_len(const struct eng_conv *c) { return json_array_size(c->msgs); }

void eng_conv_truncate(struct eng_conv *c, size_t n)
{
    while (json_array_size(c->msgs) > n) json_array_remove(c->msgs, json_array_size(c->msgs) - 1);
}

const struct json_t *eng_conv_request(const struct eng_conv *c) { return c->request; }

int eng_conv_set_tools(struct eng_conv *c, const char *json, size_t len, const char *tool_choice,
                       struct err_info *ei)
{
    json_error_t je;
    json_t *t = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!t)
        return err_set(ei, ERR_SYNTAX, je.position >= 0 ? (uint64_t)je.position : ERR_NO_OFFSET,
                       "the tools are not JSON: line %d, column %d: %s", je.line, je.column, je.text);
    json_t *tools = json_is_object(t) ? json_object_get(t, "tools") : t;
    json_t *tc = !tool_choice || !strcmp(tool_choice, "auto") || !strcmp(tool_choice, "none") ||
                         !strcmp(tool_choice, "required")
                     ? json_string(tool_choice ? tool_choice : "auto")
                     : json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", tool_choice);
    json_t *r = json_copy(c->request);
    int rc = !tc || !r || json_object_set(r, "tools", tools ? tools : json_null()) ||
                     json_object_set(r, "tool_choice", tc)
                 ? err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory")
                 : 0;
    if (!rc && !json_is_array(tools))
        rc = err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "the tools must be a JSON array (or {\"tools\": [...]})");
    if (!rc) rc = eng_tools_check(r, ei);
    if (!rc) {
        json_object_set(c->request, "tools", tools);
        json_object_set(c->request, "tool_choice", tc);
    }
    json_decref(r);
    json_decref(tc);
    json_decref(t);
    return rc;
}

int eng_conv_add_call(struct eng_conv *c, const char *id, const char *name, const char *args,
                      size_t len)
{
    json_t *last = json_array_get(c->msgs, json_array_size(c->msgs) - 1);
    json_t *role = json_object_get(last, "role");
    if (!last || !json_is_string(role) || strcmp(json_string_value(role), "assistant") != 0) {
        last = json_pack("{s:s,s:s}", "role", "assistant", "content", "");
        if (!last || json_array_append_new(c->msgs, last)) return ERR_NOMEM;
    }
    json_t *calls = json_object_get(last, "tool_calls");
    if (!calls && (!(calls = json_array()) || json_object_set_new(last, "tool_calls", calls)))
        return ERR_NOMEM;
    json_t *call = json_pack("{s:s,s:s,s:{s:s,s:s%}}", "id", id, "type", "function", "function",
                             "name", name, "arguments", args, len);
    return !call || json_array_append_new(calls, call) ? ERR_NOMEM : 0;
}

const char *eng_conv_pending_call(const struct eng_conv *c)
{
    size_t n = json_array_size(c->msgs), answered = 0;
    for (size_t i = n; i-- > 0;) {
        json_t *m = json_array_get(c->msgs, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && !strcmp(role, "tool")) {
            answered++;
            continue;
        }
        json_t *calls = json_object_get(m, "tool_calls");
        if (!role || strcmp(role, "assistant") != 0 || answered >= json_array_size(calls)) return NULL;
        return json_string_value(json_object_get(json_array_get(calls, answered), "id"));
    }
    return NULL;
}

int eng_conv_add_tool_result(struct eng_conv *c, const char *id, const char *text, size_t len)
{
    json_t *m = json_pack("{s:s,s:s,s:o}", "role", "tool", "tool_call_id", id, "content", repaired(text, len));
    return !m || json_array_append_new(c->msgs, m) ? ERR_NOMEM : 0;
}

char *eng_tool_call_json(const char *id, const char *name, const char *args, size_t len)
{
    json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s%}}", "id", id, "type", "function", "function", "name",
                          name, "arguments", args, len);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int eng_conv_dump(const struct eng_conv *c, char **text, size_t *len)
{
    json_t *m = json_pack("{s:O}", "messages", c->msgs); /* not the tools: they are the flags' */
    *text = m ? json_dumps(m, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(m);
    *len = *text ? strlen(*text) : 0;
    return *text ? 0 : ERR_NOMEM;
}

int eng_conv_parse(struct eng_conv *c, const char *text, size_t len, struct err_info *ei)
{
    json_error_t je;
    json_t *r = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!r) return err_set(ei, ERR_INVALID, (uint64_t)je.position, "not a conversation: %s", je.text);
    json_t *msgs = json_object_get(r, "messages");
    int rc = eng_chat_check(r, ei);
    if (!rc && (json_object_size(r) != 1 || json_object_set(c->request, "messages", msgs)))
        rc = err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "a conversation is {\"messages\": [...]} and nothing else");
    if (!rc) c->msgs = msgs;
    json_decref(r);
    return rc;
}
