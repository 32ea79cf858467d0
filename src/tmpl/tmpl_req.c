/* tmpl_req: from an OpenAI-shaped chat request to the template's variables, the way
 * transformers' apply_chat_template passes them; capability probes; and llama.cpp's conversation
 * workarounds as pure functions over JSON.
 *
 * Nothing here renders text for the model except the probes, which render fixed conversations
 * with marker strings and only look for the markers. */
#include "tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- json.dumps (Python defaults: ensure_ascii, ", " and ": ") over jansson ---- */

static int dump_str(struct buf *b, const char *s, size_t n)
{
    int rc = tmpl_buf_putc(b, '"');
    for (size_t i = 0; i < n && !rc;) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[16];
        size_t adv = 1;
        if (ch == '"') rc = tmpl_buf_put(b, "\\\"", 2);
        else if (ch == '\\') rc = tmpl_buf_put(b, "\\\\", 2);
        else if (ch == '\n') rc = tmpl_buf_put(b, "\\n", 2);
        else if (ch == '\r') rc = tmpl_buf_put(b, "\\r", 2);
        else if (ch == '\t') rc = tmpl_buf_put(b, "\\t", 2);
        else if (ch == '\b') rc = tmpl_buf_put(b, "\\b", 2);
        else if (ch == '\f') rc = tmpl_buf_put(b, "\\f", 2);
        else if (ch >= 0x20 && ch < 0x7f) rc = tmpl_buf_putc(b, (char)ch);
        else {
            uint32_t cp = tmpl_utf8_dec(s + i, n - i, &adv);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            }
            rc = tmpl_buf_put(b, tmp, strlen(tmp));
        }
        i += adv;
    }
    return rc ? rc : tmpl_buf_putc(b, '"');
}

static int dump_json(struct buf *b, const json_t *j, int depth)
{
    char tmp[64];
    if (depth > 512) return ERR_LIMIT;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        int rc = tmpl_buf_putc(b, '{');
        bool first = true;
        for (void *it = json_object_iter((json_t *)j); it && !rc;
             it = json_object_iter_next((json_t *)j, it)) {
            const char *k = json_object_iter_key(it);
            if (!first) rc = tmpl_buf_put(b, ", ", 2);
            first = false;
            if (!rc) rc = dump_str(b, k, strlen(k));
            if (!rc) rc = tmpl_buf_put(b, ": ", 2);
            if (!rc) rc = dump_json(b, json_object_iter_value(it), depth + 1);
        }
        return rc ? rc : tmpl_buf_putc(b, '}');
    }
    case JSON_ARRAY: {
        int rc = tmpl_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(j) && !rc; i++) {
            if (i) rc = tmpl_buf_put(b, ", ", 2);
            if (!rc) rc = dump_json(b, json_array_get(j, i), depth + 1);
        }
        return rc ? rc : tmpl_buf_putc(b, ']');
    }
    case JSON_STRING: return dump_str(b, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(j));
        return tmpl_buf_put(b, tmp, strlen(tmp));
    case JSON_REAL: tmpl_fmt_float(tmp, sizeof tmp, json_real_value(j)); return tmpl_buf_put(b, tmp, strlen(tmp));
    case JSON_TRUE: return tmpl_buf_put(b, "true", 4);
    case JSON_FALSE: return tmpl_buf_put(b, "false", 5);
    default: return tmpl_buf_put(b, "null", 4);
    }
}

/* ---- request -> variables ---- */

/* Convert every tool call's arguments in a (deep-copied) messages array. */
static int convert_arguments(json_t *messages, bool as_string, struct err_info *ei)
{
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *calls = json_object_get(json_array_get(messages, i), "tool_calls");
        for (size_t k = 0; k < json_array_size(calls); k++) {
            json_t *fn = json_object_get(json_array_get(calls, k), "function");
            json_t *args = json_object_get(fn, "arguments");
            if (!args) continue;
            if (!as_string && json_is_string(args)) {
                json_error_t je;
                json_t *obj = json_loadb(json_string_value(args), json_string_length(args),
                                         JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
                if (!obj)
                    return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                                   "messages[%zu].tool_calls[%zu].function.arguments is not JSON: %s",
                                   i, k, je.text);
                json_object_set_new(fn, "arguments", obj);
            } else if (as_string && !json_is_string(args)) {
                struct buf b = {0};
                int rc = dump_json(&b, args, 0);
                if (rc) {
                    tmpl_buf_free(&b);
                    return err_set(ei, rc, ERR_NO_OFFSET, "tool call arguments too deep");
                }
                json_object_set_new(fn, "arguments", json_stringn(b.p ? b.p : "", b.n));
                tmpl_buf_free(&b);
            }
        }
    }
    return 0;
}

static bool is_reserved_key(const char *k)
{
    static const char *const keys[] = {"messages", "tools", "documents", "add_generation_prompt",
                                       "chat_template_kwargs", NULL};
    for (int i = 0; keys[i]; i++)
        if (!strcmp(k, keys[i])) return true;
    return false;
}

int tmpl_vars_from_request(const json_t *req, const struct tmpl_req_opts *o, json_t **out,
                           struct err_info *ei)
{
    *out = NULL;
    struct tmpl_req_opts d = {0};
    if (!o) o = &d;
    if (!json_is_object(req)) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "the request must be a JSON object");
    const json_t *msgs = json_object_get(req, "messages");
    if (!json_is_array(msgs))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'messages' must be an array");
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "messages[%zu] must be an object with a string 'role'", i);
    }
    const json_t *tools = json_object_get(req, "tools");
    if (tools && !json_is_array(tools) && !json_is_null(tools))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'tools' must be an array");
    const json_t *kw = json_object_get(req, "chat_template_kwargs");
    if (kw && !json_is_object(kw) && !json_is_null(kw))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'chat_template_kwargs' must be an object");
    const json_t *agp = json_object_get(req, "add_generation_prompt");
    if (agp && !json_is_boolean(agp))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'add_generation_prompt' must be a boolean");

    json_t *v = json_object();
    json_t *mc = json_deep_copy(msgs);
    if (!v || !mc) goto nomem;
    int rc = o->arguments_as_given ? 0 : convert_arguments(mc, o->arguments_as_string, ei);
    if (rc) {
        json_decref(mc);
        json_decref(v);
        return rc;
    }
    json_object_set_new(v, "messages", mc);
    json_object_set_new(v, "tools", tools ? json_deep_copy(tools) : json_null());
    const json_t *docs = json_object_get(req, "documents");
    json_object_set_new(v, "documents", docs ? json_deep_copy(docs) : json_null());
    json_object_set_new(v, "add_generation_prompt",
                        json_boolean(agp ? json_is_true(agp) : o->add_generation_prompt));
    if (o->bos_token) json_object_set_new(v, "bos_token", json_string(o->bos_token));
    if (o->eos_token) json_object_set_new(v, "eos_token", json_string(o->eos_token));
    const char *k;
    json_t *x;
    if (o->extra_top_level) {
        json_object_foreach((json_t *)req, k, x) {
            if (!is_reserved_key(k)) json_object_set_new(v, k, json_deep_copy(x));
        }
    }
    if (json_is_object(kw)) {
        json_object_foreach((json_t *)kw, k, x) json_object_set_new(v, k, json_deep_copy(x));
    }
    *out = v;
    return 0;
nomem:
    json_decref(mc);
    json_decref(v);
    return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
}

/* ---- conversation fixes ---- */

json_t *tmpl_msgs_developer_to_system(const json_t *messages)
{
    if (!json_is_array(messages)) return NULL;
    json_t *r = json_deep_copy(messages);
    for (size_t i = 0; r && i < json_array_size(r); i++) {
        json_t *m = json_array_get(r, i);
        json_t *role = json_object_get(m, "role");
        if (json_is_string(role) && !strcmp(json_string_value(role), "developer"))
            json_object_set_new(m, "role", json_string("system"));
    }
    return r;
}

json_t *tmpl_msgs_fold_system(const json_t *messages)
{
    if (!json_is_array(messages)) return NULL;
    json_t *r = json_deep_copy(messages);
    if (!r || json_array_size(r) == 0) return r;
    json_t *first = json_array_get(r, 0);
    json_t *role = json_object_get(first, "role");
    if (!json_is_string(role) || strcmp(json_string_value(role), "system")) return r;
    if (json_array_size(r) == 1) {
        json_array_remove(r, 0);
        return r;
    }
    json_t *next = json_array_get(r, 1);
    json_t *a = json_object_get(first, "content"), *b = json_object_get(next, "content");
    if (!json_is_string(a) || !json_is_string(b)) return r;
    size_t na = json_string_length(a), nb = json_string_length(b);
    char *s = malloc(na + nb + 2);
    if (!s) {
        json_decref(r);
        return NULL;
    }
    memcpy(s, json_string_value(a), na);
    s[na] = '\n';
    memcpy(s + na + 1, json_string_value(b), nb);
    json_t *joined = json_stringn(s, na + 1 + nb);
    free(s);
    if (!joined) {
        json_decref(r);
        return NULL;
    }
    json_object_set_new(next, "content", joined);
    json_array_remove(r, 0);
    return r;
}

json_t *tmpl_msgs_fill_tool_call_content(const json_t *messages)
{
    if (!json_is_array(messages)) return NULL;
    json_t *r = json_deep_copy(messages);
    for (size_t i = 0; r && i < json_array_size(r); i++) {
        json_t *m = json_array_get(r, i);
        if (!json_object_get(m, "tool_calls")) continue;
        json_t *c = json_object_get(m, "content");
        if (!c || json_is_null(c)) json_object_set_new(m, "content", json_string(""));
    }
    return r;
}

json_t *tmpl_msgs_content_form(const json_t *messages, bool to_string)
{
    if (!json_is_array(messages)) return NULL;
    json_t *r = json_deep_copy(messages);
    for (size_t i = 0; r && i < json_array_size(r); i++) {
        json_t *m = json_array_get(r, i);
        json_t *c = json_object_get(m, "content");
        if (!to_string && json_is_string(c)) {
            json_t *part = json_pack("{s:s,s:O}", "type", "text", "text", c);
            json_t *arr = json_array();
            if (!part || !arr) {
                json_decref(part);
                json_decref(arr);
                json_decref(r);
                return NULL;
            }
            json_array_append_new(arr, part);
            json_object_set_new(m, "content", arr);
        } else if (to_string && json_is_array(c)) {
            struct buf b = {0};
            bool any = false;
            int rc = 0;
            for (size_t k = 0; k < json_array_size(c) && !rc; k++) {
                json_t *p = json_array_get(c, k);
                json_t *type = json_object_get(p, "type"), *text = json_object_get(p, "text");
                if (!json_is_string(type) || strcmp(json_string_value(type), "text")) continue;
                if (any) rc = tmpl_buf_putc(&b, '\n');
                if (!rc && json_is_string(text))
                    rc = tmpl_buf_put(&b, json_string_value(text), json_string_length(text));
                any = true;
            }
            json_t *s = rc ? NULL : json_stringn(b.p ? b.p : "", b.n);
            tmpl_buf_free(&b);
            if (!s) {
                json_decref(r);
                return NULL;
            }
            json_object_set_new(m, "content", s);
        }
    }
    return r;
}

/* ---- capability probes ---- */

#define MK_SYS "SYSTEM_MARKER_7f3a"
#define MK_USER "USER_MARKER_51c2"
#define MK_FN1 "fn_marker_one_8d"
#define MK_FN2 "fn_marker_two_2e"
#define MK_ARG "ARG_VALUE_MARKER_c9"
#define MK_TOOL "tool_def_marker_64"

/* Render a probe request (JSON text); true when it renders, the output contains every marker
 * in `want` and none of `forbid` (both NULL-terminated, forbid may be NULL). As llama.cpp's
 * probes, a request without tools gets "tools": [] (a template that iterates tools unguarded
 * still shows what it does with messages). */
static bool probe(const struct tmpl *t, const struct tmpl_req_opts *ro, const struct tmpl_opts *o,
                  const char *req_json, const char *const *want, const char *const *forbid)
{
    json_error_t je;
    json_t *req = json_loads(req_json, 0, &je), *vars = NULL;
    bool ok = false;
    char *out = NULL;
    size_t len = 0;
    struct tmpl_req_opts r = *ro;
    r.arguments_as_given = true; /* the string-arguments probe must see strings */
    r.add_generation_prompt = true;
    if (req && !json_object_get(req, "tools")) json_object_set_new(req, "tools", json_array());
    if (req && tmpl_vars_from_request(req, &r, &vars, NULL) == 0 &&
        tmpl_render(t, vars, o, &out, &len, NULL) == 0) {
        ok = true;
        for (int i = 0; want[i] && ok; i++) ok = mem_find(out, len, want[i], strlen(want[i])) != NULL;
        for (int i = 0; forbid && forbid[i] && ok; i++)
            ok = mem_find(out, len, forbid[i], strlen(forbid[i])) == NULL;
    }
    free(out);
    json_decref(vars);
    json_decref(req);
    return ok;
}

#define TOOL_DEF                                                                                  \
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"" MK_TOOL "\", "             \
    "\"description\": \"d\", \"parameters\": {\"type\": \"object\", \"properties\": {\"arg\": "   \
    "{\"type\": \"string\", \"description\": \"a\"}}, \"required\": [\"arg\"]}}}]"
#define CALL(id, name, args)                                                                      \
    "{\"id\": \"" id "\", \"type\": \"function\", \"function\": {\"name\": \"" name "\", "        \
    "\"arguments\": " args "}}"

void tmpl_caps_probe(const struct tmpl *t, const struct tmpl_req_opts *ro,
                     const struct tmpl_opts *opts, struct tmpl_caps *out)
{
    struct tmpl_req_opts d = {0};
    if (!ro) ro = &d;
    memset(out, 0, sizeof *out);
    out->string_content =
        probe(t, ro, opts, "{\"messages\": [{\"role\": \"user\", \"content\": \"" MK_USER "\"}]}",
              (const char *const[]){MK_USER, NULL}, NULL);
    /* typed: the marker must come out as text, not inside a printed list or JSON dump */
    out->typed_content = probe(t, ro, opts,
                               "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": "
                               "\"text\", \"text\": \"" MK_USER "\"}]}]}",
                               (const char *const[]){MK_USER, NULL},
                               (const char *const[]){"'text': '" MK_USER, "\"text\": \"" MK_USER, NULL});
    out->system_role = probe(t, ro, opts,
                             "{\"messages\": [{\"role\": \"system\", \"content\": \"" MK_SYS "\"}, "
                             "{\"role\": \"user\", \"content\": \"" MK_USER "\"}]}",
                             (const char *const[]){MK_SYS, NULL}, NULL);
    out->tools = probe(t, ro, opts,
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], " TOOL_DEF "}",
                       (const char *const[]){MK_TOOL, NULL}, NULL);
#define CONV(calls)                                                                               \
    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "       \
    "\"content\": \"\", \"tool_calls\": [" calls "]}, {\"role\": \"tool\", \"content\": \"r\", "  \
    "\"tool_call_id\": \"call00001\"}, {\"role\": \"assistant\", \"content\": \"ok\"}, "          \
    "{\"role\": \"user\", \"content\": \"again\"}], " TOOL_DEF "}"
    out->object_arguments = probe(t, ro, opts, CONV(CALL("call00001", MK_FN1, "{\"arg\": \"" MK_ARG "\"}")),
                                  (const char *const[]){MK_FN1, MK_ARG, NULL}, NULL);
    out->tool_calls = out->object_arguments ||
                      probe(t, ro, opts, CONV(CALL("call00001", MK_FN1, "\"{\\\"arg\\\": \\\"v\\\"}\"")),
                            (const char *const[]){MK_FN1, NULL}, NULL);
    if (out->tool_calls) {
        const char *par = out->object_arguments
            ? CONV(CALL("call00001", MK_FN1, "{\"arg\": \"v\"}") ", " CALL("call00002", MK_FN2, "{\"arg\": \"v\"}"))
            : CONV(CALL("call00001", MK_FN1, "\"{}\"") ", " CALL("call00002", MK_FN2, "\"{}\""));
        out->parallel_calls = probe(t, ro, opts, par, (const char *const[]){MK_FN1, MK_FN2, NULL}, NULL);
    }
#undef CONV
}
