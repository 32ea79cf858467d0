/* eng_chat: a conversation (OpenAI-shaped JSON) → prompt text → generation, the one chat
 * behaviour of every front end.
 *
 * The request is JSON by nature (the Jinja renderer takes JSON values, tool calling needs the
 * tools' JSON Schemas), so this file includes jansson; eng.h only names `struct json_t`.
 * Rendering happens behind one function, eng_chat_render: today the built-in templates of
 * src/tok/chat.c (the family detected from the model's tokenizer.chat_template, or a name);
 * the template choice is an explicit option struct, so other renderers plug in here.
 *
 * Invariants: eng_chat_check accepts exactly what eng_chat_render can render; every string
 * reaching the template is NUL-free; the stop strings a template adds are static. */
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

static int unsupported(struct err_info *ei, const char *what)
{
    return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET,
                   "%s not supported yet (tools and grammars arrive with the grammar work; "
                   "leave the field out or null)",
                   what);
}

/* Content: a string, null, or an array of {"type": "text", "text": string} parts. */
static int check_content(const json_t *c, size_t idx, struct err_info *ei)
{
    if (!c || json_is_null(c)) return 0;
    if (json_is_string(c)) {
        if (strlen(json_string_value(c)) != json_string_length(c)) goto nul;
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
        if (strlen(json_string_value(text)) != json_string_length(text)) goto nul;
    }
    return 0;
nul:
    return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                   "messages[%zu].content must not contain NUL characters", idx);
}

static int check_message(const json_t *m, size_t i, struct err_info *ei)
{
    if (!json_is_object(m))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "messages[%zu] must be an object", i);
    json_t *role = json_object_get(m, "role");
    if (!json_is_string(role) || json_string_length(role) == 0 ||
        strlen(json_string_value(role)) != json_string_length(role))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "messages[%zu].role must be a non-empty string", i);
    json_t *tc = json_object_get(m, "tool_calls");
    if (tc && !json_is_null(tc) && !(json_is_array(tc) && json_array_size(tc) == 0))
        return unsupported(ei, "messages with 'tool_calls' are");
    return check_content(json_object_get(m, "content"), i, ei);
}

int eng_chat_check(const struct json_t *request, struct err_info *ei)
{
    if (!json_is_object(request))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "a chat request must be an object");
    json_t *tools = field(request, "tools");
    if (tools && !(json_is_array(tools) && json_array_size(tools) == 0))
        return unsupported(ei, "'tools' are");
    json_t *tc = field(request, "tool_choice");
    if (tc && !(json_is_string(tc) && (!strcmp(json_string_value(tc), "none") ||
                                      !strcmp(json_string_value(tc), "auto"))))
        return unsupported(ei, "'tool_choice' other than \"none\" or \"auto\" is");
    json_t *msgs = field(request, "messages");
    if (!msgs) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'messages' is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "'messages' must be a non-empty array of {role, content}");
    if (json_array_size(msgs) > ENG_MAX_MESSAGES)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'messages' has %zu entries; at most %d",
                       json_array_size(msgs), ENG_MAX_MESSAGES);
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        int rc = check_message(json_array_get(msgs, i), i, ei);
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
static int pick_template(const struct eng_model *em, const struct eng_chat_opts *o, bool *fallback,
                         struct err_info *ei)
{
    *fallback = false;
    int rc = eng_chat_opts_check(o, ei);
    if (rc) return rc;
    if (o->kind == ENG_TMPL_BUILTIN) return chat_template_by_name(o->name);
    return chat_template_from_gguf(eng_gguf(em), fallback);
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

int eng_chat_render(const struct eng_model *em, const struct json_t *request,
                    const struct eng_chat_opts *o, struct eng_prompt *out, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    struct eng_chat_opts def;
    if (!o) {
        eng_chat_opts_default(&def);
        o = &def;
    }
    int rc = eng_chat_check(request, ei);
    if (rc) return rc;
    int tmpl = pick_template(em, o, &out->fallback, ei);
    if (tmpl < 0) return tmpl;
    struct msgs ms = {0};
    if ((rc = collect(field(request, "messages"), &ms, ei))) goto done;
    size_t need = 0;
    rc = chat_render(tmpl, ms.m, ms.n, o->add_generation_prompt, NULL, 0, &need);
    if (rc == ERR_LIMIT && !(out->text = malloc(need + 1))) rc = ERR_NOMEM;
    else if (rc == ERR_LIMIT)
        rc = chat_render(tmpl, ms.m, ms.n, o->add_generation_prompt, out->text, need + 1, &need);
    if (rc) {
        err_set(ei, rc, ERR_NO_OFFSET, "cannot render the chat template: %s", err_str(rc));
        eng_prompt_free(out);
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
    int rc = eng_chat_render(s->em, request, o, &pr, ei);
    if (rc) return rc;
    struct eng_gen_params gp = *p;
    gp.parse_special = true; /* the template's markers are special tokens */
    rc = eng_generate_stops(s, pr.text, pr.len, &gp, pr.stops, pr.n_stops, sink, res, ei);
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

/* Text that is not valid UTF-8 (a terminal's bytes) is kept with U+FFFD for each bad byte:
 * JSON strings are UTF-8. */
int eng_conv_add(struct eng_conv *c, const char *role, const char *text, size_t len)
{
    if (len > (SIZE_MAX - 1) / 3) return ERR_NOMEM;
    char *fixed = malloc(len * 3 + 1);
    if (!fixed) return ERR_NOMEM;
    size_t n = util_utf8_repair(text, len, fixed);
    json_t *m = json_pack("{s:s,s:s%}", "role", role, "content", fixed, n);
    free(fixed);
    if (!m) return ERR_NOMEM;
    return json_array_append_new(c->msgs, m) ? ERR_NOMEM : 0;
}

size_t eng_conv_len(const struct eng_conv *c) { return json_array_size(c->msgs); }

void eng_conv_truncate(struct eng_conv *c, size_t n)
{
    while (json_array_size(c->msgs) > n) json_array_remove(c->msgs, json_array_size(c->msgs) - 1);
}

const struct json_t *eng_conv_request(const struct eng_conv *c) { return c->request; }

int eng_conv_dump(const struct eng_conv *c, char **text, size_t *len)
{
    *text = json_dumps(c->request, JSON_COMPACT | JSON_ENSURE_ASCII);
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
