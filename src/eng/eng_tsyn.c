/* eng_tsyn: how a model family writes a tool call (struct eng_tsyn, see eng_tools.h).
 *
 * Three ways to a syntax, in this order:
 *   1. the template's source names a known family by its markers (as llama.cpp detects them):
 *      the family's syntax, written down here from the real templates;
 *   2. otherwise derive it: render a conversation whose assistant turn holds one call, the same
 *      turn without the call, and one with two calls; the call's text is what the first adds,
 *      and the probe name and arguments inside it split it into the literals around a call
 *      (eng_tsyn_derive);
 *   3. otherwise (the template shows no call, or not in a shape this describes; no template)
 *      the generic format: the Hermes layout, which many small models were trained on,
 *
 *          <tool_call>
 *          {"name": "NAME", "arguments": {ARGUMENTS}}
 *          </tool_call>
 *
 *      with the tools and this layout described in the system message (eng_tsyn_describe).
 *
 * The renderers here write calls in a syntax (a template that cannot show calls in history gets
 * them as assistant text this way). Everything is pure: templates in, text out. */
#include "eng_tools.h"

#include "../tmpl/tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- known families ---------------- */

static const char *const fam_names[ENG_TF_COUNT_] = {
    "generic", "hermes", "granite", "llama3", "mistral", "qwen3-coder", "functionary", "pythonic",
    "deepseek-r1", "derived",
};

const char *eng_tfam_name(int family)
{
    return family >= 0 && family < ENG_TF_COUNT_ ? fam_names[family] : "unknown";
}

/* One family's literals, in struct order. */
struct fam_def {
    int family, args, ids;
    bool parallel, at_start;
    const char *trigger, *content_open, *prompt_tail;
    const char *sec_open, *call_open, *name_close, *call_close, *call_sep, *sec_close;
};

#define HERMES_OPEN "<tool_call>\n{\"name\": \""
#define JSON_NAME_CLOSE "\", \"arguments\": "
static const struct fam_def fams[] = {
    {ENG_TF_GENERIC, ENG_TA_JSON, ENG_TID_CALL, true, false, "<tool_call>", "", "", "",
     HERMES_OPEN, JSON_NAME_CLOSE, "}\n</tool_call>", "\n", ""},
    {ENG_TF_HERMES, ENG_TA_JSON, ENG_TID_CALL, true, false, "<tool_call>", "", "", "",
     HERMES_OPEN, JSON_NAME_CLOSE, "}\n</tool_call>", "\n", ""},
    {ENG_TF_GRANITE, ENG_TA_JSON, ENG_TID_CALL, true, false, "<|tool_call|>", "", "",
     "<|tool_call|>[", "{\"name\": \"", JSON_NAME_CLOSE, "}", ", ", "]"},
    {ENG_TF_LLAMA3, ENG_TA_JSON, ENG_TID_CALL, false, true, "{", "", "", "", "{\"name\": \"",
     "\", \"parameters\": ", "}", "", ""},
    {ENG_TF_MISTRAL, ENG_TA_JSON, ENG_TID_ALNUM9, true, false, "[TOOL_CALLS]", "", "",
     "[TOOL_CALLS][", "{\"name\": \"", JSON_NAME_CLOSE, "}", ", ", "]"},
    {ENG_TF_QWEN3_CODER, ENG_TA_XML, ENG_TID_CALL, true, false, "<tool_call>", "", "", "",
     "<tool_call>\n<function=", ">\n", "</function>\n</tool_call>", "\n", ""},
    {ENG_TF_FUNCTIONARY, ENG_TA_JSON, ENG_TID_CALL, true, false, ">>>", ">>>all\n", ">>>", "",
     ">>>", "\n", "", "", ""},
    {ENG_TF_PYTHONIC, ENG_TA_PY, ENG_TID_CALL, true, false, "<|tool_call_start|>", "", "",
     "<|tool_call_start|>[", "", "(", ")", ", ", "]<|tool_call_end|>"},
    {ENG_TF_DEEPSEEK_R1, ENG_TA_JSON, ENG_TID_CALL, true, false,
     "<｜tool▁calls▁begin｜>", "", "", "<｜tool▁calls▁begin｜>",
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>", "\n```json\n", "\n```<｜tool▁call▁end｜>", "\n",
     "<｜tool▁calls▁end｜>"},
};

static void lit(char dst[ENG_TSYN_LIT], const char *src)
{
    snprintf(dst, ENG_TSYN_LIT, "%s", src);
}

void eng_tsyn_family(struct eng_tsyn *s, int family)
{
    const struct fam_def *f = &fams[0];
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++)
        if (fams[i].family == family) f = &fams[i];
    memset(s, 0, sizeof *s);
    s->family = f->family;
    s->args = f->args;
    s->ids = f->ids;
    s->parallel = f->parallel;
    s->at_start = f->at_start;
    lit(s->trigger, f->trigger);
    lit(s->content_open, f->content_open);
    lit(s->prompt_tail, f->prompt_tail);
    lit(s->sec_open, f->sec_open);
    lit(s->call_open, f->call_open);
    lit(s->name_close, f->name_close);
    lit(s->call_close, f->call_close);
    lit(s->call_sep, f->call_sep);
    lit(s->sec_close, f->sec_close);
}

static bool has(const char *src, size_t len, const char *needle)
{
    size_t m = strlen(needle);
    if (m > len) return false;
    for (size_t i = 0; i + m <= len; i++)
        if (src[i] == needle[0] && memcmp(src + i, needle, m) == 0) return true;
    return false;
}

/* Markers in the order that tells them apart: Qwen3-Coder templates also hold <tool_call>,
 * Granite's <|tool_call|> is not <tool_call>. */
int eng_tsyn_detect(const char *src, size_t len)
{
    if (!src) return ENG_TF_DERIVED;
    if (has(src, len, "[TOOL_CALLS]")) return ENG_TF_MISTRAL;
    if (has(src, len, "<｜tool▁calls▁begin｜>")) return ENG_TF_DEEPSEEK_R1;
    if (has(src, len, "<tool_call>") && has(src, len, "<function=") && has(src, len, "<parameter="))
        return ENG_TF_QWEN3_CODER;
    if (has(src, len, ">>>all")) return ENG_TF_FUNCTIONARY;
    if (has(src, len, "<|tool_call_start|>")) return ENG_TF_PYTHONIC;
    if (has(src, len, "<|tool_call|>")) return ENG_TF_GRANITE;
    if (has(src, len, "<tool_call>")) return ENG_TF_HERMES;
    if (has(src, len, "<|start_header_id|>") && has(src, len, "\"parameters\""))
        return ENG_TF_LLAMA3;
    return ENG_TF_DERIVED;
}

/* ---------------- invariants ---------------- */

static bool name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool lit_ok(const char *s)
{
    return memchr(s, 0, ENG_TSYN_LIT) != NULL;
}

int eng_tsyn_check(const struct eng_tsyn *s, struct err_info *ei)
{
    const char *l[] = {s->trigger, s->content_open, s->prompt_tail, s->sec_open, s->call_open,
                       s->name_close, s->call_close, s->call_sep, s->sec_close};
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        if (!lit_ok(l[i])) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool syntax: literal %zu is not terminated", i);
    if (s->args < ENG_TA_JSON || s->args > ENG_TA_PY)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool syntax: unknown argument kind %d", s->args);
    if (!s->trigger[0]) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool syntax: empty trigger");
    size_t t = strlen(s->trigger), a = strlen(s->sec_open), b = strlen(s->call_open);
    char head[2 * ENG_TSYN_LIT];
    memcpy(head, s->sec_open, a);
    memcpy(head + a, s->call_open, b + 1);
    if (t > a + b || memcmp(head, s->trigger, t) != 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tool syntax: the trigger '%s' does not begin the call text '%s'", s->trigger, head);
    if (!s->name_close[0] || name_byte((unsigned char)s->name_close[0]))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tool syntax: what follows a name must begin with a byte no name has");
    if (a + b == 0) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool syntax: a call has no opening text");
    /* after a call the parser tells "another call" from "the end" byte by byte */
    char next[2 * ENG_TSYN_LIT];
    snprintf(next, sizeof next, "%s%s", s->call_sep, s->call_open);
    size_t nn = strlen(next), nc = strlen(s->sec_close);
    if (s->parallel && (nn == 0 || (nc && !strncmp(next, s->sec_close, nn < nc ? nn : nc))))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tool syntax: the text between calls and the closing text must differ early");
    if (s->content_open[0] && strncmp(s->content_open, s->trigger, t) != 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tool syntax: a text reply's opening must begin with the trigger");
    return 0;
}

/* ---------------- rendering calls ---------------- */

/* Shared with the grammar (eng_tgram.c) and the parser (eng_tparse.c): the syntax decides what is
 * written raw, so all three agree through this one place. */
bool eng_tools_xml_raw(const json_t *p)
{
    json_t *t = json_object_get(p, "type");
    if (!json_is_object(p) || !json_is_string(t) || strcmp(json_string_value(t), "string") != 0)
        return false;
    static const char *const ann[] = {"type", "description", "title", "examples", "default",
                                      "$comment", "deprecated", "readOnly", "writeOnly"};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p, k, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof ann / sizeof ann[0] && !ok; i++) ok = !strcmp(k, ann[i]);
        if (!ok) return false;
    }
    return true;
}


/* A call's arguments as a JSON object (a JSON string is parsed; absent or null: {}, as
 * eng_chat_check accepts them for a call of a tool without parameters); *out is a new reference. */
static int call_args(const json_t *fn, size_t i, json_t **out, struct err_info *ei)
{
    json_t *a = json_object_get(fn, "arguments");
    if (!a || json_is_null(a)) {
        *out = json_object();
        return *out ? 0 : err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    if (json_is_string(a)) {
        json_error_t je;
        *out = json_loadb(json_string_value(a), json_string_length(a), 0, &je);
    } else {
        *out = json_incref(a);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tool_calls[%zu].function.arguments must be a JSON object (or its text)", i);
    }
    return 0;
}

/* v as JSON the way Python's json.dumps writes it by default (", " and ": ", non-ASCII kept). */
static void dump(struct eng_sb *b, const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY);
    if (!s) {
        b->oom = true;
        return;
    }
    eng_sb_str(b, s);
    free(s);
}

/* ts (may be NULL): the tools, whose schemas say which XML values are raw text. */
static void render_args(const struct eng_tsyn *s, const struct eng_toolset *ts, int tool,
                        const json_t *args, struct eng_sb *b)
{
    json_t *props = ts && tool >= 0 ? json_object_get(ts->t[tool].params, "properties") : NULL;
    if (s->args == ENG_TA_JSON) {
        dump(b, args);
        return;
    }
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)args, k, v) {
        if (s->args == ENG_TA_XML) {
            eng_sb_printf(b, "<parameter=%s>\n", k);
            json_t *p = json_object_get(props, k);
            if (json_is_string(v) && (!p || eng_tools_xml_raw(p)))
                eng_sb_add(b, json_string_value(v), json_string_length(v));
            else dump(b, v);
            eng_sb_str(b, "\n</parameter>\n");
        } else {
            eng_sb_printf(b, "%s%s=", i ? ", " : "", k);
            dump(b, v);
        }
        i++;
    }
}

int eng_tsyn_render(const struct eng_tsyn *s, const struct eng_toolset *ts, const json_t *calls,
                    struct eng_sb *out, struct err_info *ei)
{
    if (!json_is_array(calls) || json_array_size(calls) == 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool_calls must be a non-empty array");
    eng_sb_str(out, s->sec_open);
    for (size_t i = 0; i < json_array_size(calls); i++) {
        json_t *fn = json_object_get(json_array_get(calls, i), "function");
        json_t *name = json_object_get(fn, "name");
        if (!json_is_string(name))
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "tool_calls[%zu] must be {\"function\": {\"name\", \"arguments\"}}", i);
        json_t *args;
        int rc = call_args(fn, i, &args, ei);
        if (rc) return rc;
        if (i) eng_sb_str(out, s->call_sep);
        eng_sb_str(out, s->call_open);
        eng_sb_add(out, json_string_value(name), json_string_length(name));
        eng_sb_str(out, s->name_close);
        render_args(s, ts,
                    ts ? eng_toolset_find(ts, json_string_value(name), json_string_length(name)) : -1,
                    args, out);
        eng_sb_str(out, s->call_close);
        json_decref(args);
    }
    eng_sb_str(out, s->sec_close);
    return out->oom ? err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory") : 0;
}

int eng_tsyn_describe(const struct eng_tsyn *s, const struct eng_toolset *ts, struct eng_sb *out,
                      struct err_info *ei)
{
    eng_sb_str(out, "# Tools\n\nYou may call one or more functions to help with the user's "
                    "request. The functions, as JSON Schema, within <tools></tools>:\n<tools>");
    for (size_t i = 0; i < ts->n; i++) {
        json_t *d = json_pack("{s:s,s:O}", "type", "function", "function", ts->t[i].fn);
        if (!d) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        eng_sb_str(out, "\n");
        dump(out, d);
        json_decref(d);
    }
    eng_sb_str(out, "\n</tools>\n\nTo call a function, reply with exactly:\n");
    eng_sb_str(out, s->sec_open);
    eng_sb_str(out, s->call_open);
    eng_sb_str(out, "<function-name>");
    eng_sb_str(out, s->name_close);
    eng_sb_str(out, s->args == ENG_TA_JSON  ? "<arguments-json-object>"
                    : s->args == ENG_TA_XML ? "<parameter=<name>>\n<value>\n</parameter>\n"
                                            : "<name>=<json-value>, ...");
    eng_sb_str(out, s->call_close);
    eng_sb_str(out, s->sec_close);
    return out->oom ? err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory") : 0;
}

/* ---------------- deriving a syntax from a template ---------------- */

#define PROBE_A "tool_probe_alpha"
#define PROBE_B "tool_probe_beta"
#define PROBE_ID_A "Pr0beCa11"
#define PROBE_ID_B "Pr0beCb22"
#define PROBE_ARGS "{\"probe_key\": \"probe_value\"}"
#define PROBE_ARGS_COMPACT "{\"probe_key\":\"probe_value\"}"

static json_t *probe_tool(const char *name)
{
    return json_pack("{s:s,s:{s:s,s:s,s:{s:s,s:{s:{s:s}},s:[s]}}}", "type", "function", "function",
                     "name", name, "description", "a probe", "parameters", "type", "object",
                     "properties", "probe_key", "type", "string", "required", "probe_key");
}

static json_t *probe_call(const char *name, const char *id, bool as_string)
{
    json_t *args = as_string ? json_string(PROBE_ARGS) : json_pack("{s:s}", "probe_key", "probe_value");
    return json_pack("{s:s,s:s,s:{s:s,s:o}}", "id", id, "type", "function", "function", "name",
                     name, "arguments", args);
}

/* Render messages [user, assistant(content "" or null, calls)] with the probe tools. */
static char *render_probe(const struct tmpl *t, const struct tmpl_req_opts *ro0, int n_calls,
                          bool as_string, bool null_content, bool gen_prompt, size_t *len)
{
    json_t *calls = json_array(), *tools = json_array();
    json_array_append_new(tools, probe_tool(PROBE_A));
    json_array_append_new(tools, probe_tool(PROBE_B));
    if (n_calls > 0) json_array_append_new(calls, probe_call(PROBE_A, PROBE_ID_A, as_string));
    if (n_calls > 1) json_array_append_new(calls, probe_call(PROBE_B, PROBE_ID_B, as_string));
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", "probe question");
    if (!gen_prompt) {
        json_t *a = json_pack("{s:s,s:o}", "role", "assistant", "content",
                              null_content && n_calls ? json_null() : json_string(""));
        if (n_calls) json_object_set(a, "tool_calls", calls);
        json_array_append_new(msgs, a);
    }
    json_t *req = json_pack("{s:o,s:O,s:b}", "messages", msgs, "tools", tools,
                            "add_generation_prompt", gen_prompt);
    json_decref(calls);
    json_decref(tools);
    struct tmpl_req_opts ro = *ro0;
    ro.arguments_as_string = as_string;
    ro.add_generation_prompt = gen_prompt;
    json_t *vars = NULL;
    char *out = NULL;
    *len = 0;
    if (req && tmpl_vars_from_request(req, &ro, &vars, NULL) == 0) {
        if (tmpl_render(t, vars, NULL, &out, len, NULL) != 0 || strlen(out) != *len) {
            free(out);
            out = NULL;
        }
    }
    json_decref(vars);
    json_decref(req);
    return out;
}

static size_t common_prefix(const char *a, size_t na, const char *b, size_t nb)
{
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

static size_t common_suffix(const char *a, size_t na, const char *b, size_t nb)
{
    size_t k = 0;
    while (k < na && k < nb && a[na - 1 - k] == b[nb - 1 - k]) k++;
    return k;
}

/* Bytes that open a marker (or sit inside a multi-byte character): a common prefix that ends
 * on one of them has eaten the start of something that differs, so it is backed off. */
static bool opener(unsigned char c)
{
    return c == '<' || c == '[' || c == '{' || c == '(' || c == '|' || c >= 0x80;
}
static bool closer(unsigned char c)
{
    return c == '>' || c == ']' || c == '}' || c == ')' || c == '|' || c >= 0x80;
}

static const char *find(const char *h, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i + m <= n; i++)
        if (memcmp(h + i, needle, m) == 0) return h + i;
    return NULL;
}

/* A call's text located in rendered text: name at [name, name + len), arguments [args, end). */
struct located {
    const char *name, *args, *end;
};

static bool locate(const char *s, size_t n, const char *name, struct located *l)
{
    l->name = find(s, n, name);
    if (!l->name) return false;
    const char *after = l->name + strlen(name);
    size_t rest = n - (size_t)(after - s);
    const char *a = find(after, rest, PROBE_ARGS), *c = find(after, rest, PROBE_ARGS_COMPACT);
    if (!a || (c && c < a)) a = c;
    if (!a) return false;
    l->args = a;
    l->end = a + (a == c ? strlen(PROBE_ARGS_COMPACT) : strlen(PROBE_ARGS));
    return true;
}

static bool put(char dst[ENG_TSYN_LIT], const char *s, size_t n)
{
    if (n >= ENG_TSYN_LIT || memchr(s, 0, n)) return false;
    memcpy(dst, s, n);
    dst[n] = 0;
    return true;
}

/* The call text of a one-call render A against the no-call render B: A minus what both share
 * at the start (backed off to a marker boundary) and at the end. */
static bool call_text(const char *a, size_t na, const char *b, size_t nb, const char **out,
                      size_t *n)
{
    size_t p = common_prefix(a, na, b, nb);
    while (p > 0 && opener((unsigned char)a[p - 1])) p--;
    size_t s = common_suffix(a + p, na - p, b + p, nb - p);
    while (s > 0 && closer((unsigned char)a[na - s])) s--;
    if (p + s >= na) return false;
    *out = a + p;
    *n = na - p - s;
    return true;
}

/* The trigger: the call's opening text from its first non-space byte up to the first space
 * after that (what the grammar then holds the model to starts there). */
static void derive_trigger(struct eng_tsyn *s)
{
    char head[2 * ENG_TSYN_LIT];
    snprintf(head, sizeof head, "%s%s", s->sec_open, s->call_open);
    size_t n = 0;
    while (head[n] && !(n > 0 && (head[n] == ' ' || head[n] == '\n' || head[n] == '\t'))) n++;
    put(s->trigger, head, n);
    s->at_start = head[0] == '{' || head[0] == '[';
}

/* Split the two-call render into sec_open / call_open / call_close / call_sep / sec_close. */
static bool split_parallel(struct eng_tsyn *s, const char *p, size_t np, const char *sfx, size_t ns,
                           const char *c, size_t nc)
{
    struct located x, y;
    if (!locate(c, nc, PROBE_A, &x) || !locate(x.end, nc - (size_t)(x.end - c), PROBE_B, &y))
        return false;
    const char *j = x.end;
    size_t nj = (size_t)(y.name - x.end);
    size_t co = common_suffix(j, nj, p, np); /* call_open */
    size_t cc = common_prefix(j, nj - co, sfx, ns); /* call_close */
    return put(s->sec_open, p, np - co) && put(s->call_open, p + np - co, co) &&
           put(s->call_close, sfx, cc) && put(s->sec_close, sfx + cc, ns - cc) &&
           put(s->call_sep, j + cc, nj - co - cc);
}

static bool has_probe_id(const char *s, size_t n)
{
    return find(s, n, PROBE_ID_A) || find(s, n, PROBE_ID_B) || find(s, n, "probe_key");
}

/* One attempt with a given argument form and content form. */
static int derive_with(const struct tmpl *t, const struct tmpl_req_opts *ro, bool as_string,
                       bool null_content, struct eng_tsyn *out)
{
    size_t na, nb, nc;
    char *a = render_probe(t, ro, 1, as_string, null_content, false, &na);
    char *b = render_probe(t, ro, 0, as_string, null_content, false, &nb);
    char *c = render_probe(t, ro, 2, as_string, null_content, false, &nc);
    int rc = ERR_NOT_FOUND;
    const char *ct;
    size_t n;
    struct located l;
    if (!a || !b || !call_text(a, na, b, nb, &ct, &n) || !locate(ct, n, PROBE_A, &l)) goto done;
    /* the opening text starts at the first non-space byte: spaces before it are the model's */
    const char *p = ct;
    while (p < l.name && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
    size_t np = (size_t)(l.name - p), nm = (size_t)(l.args - l.name) - strlen(PROBE_A);
    size_t ns = n - (size_t)(l.end - ct);
    if (np == 0 || has_probe_id(p, np) || has_probe_id(l.end, ns) ||
        has_probe_id(l.name + strlen(PROBE_A), nm))
        goto done;
    memset(out, 0, sizeof *out);
    out->family = ENG_TF_DERIVED;
    out->args = ENG_TA_JSON;
    out->ids = ENG_TID_CALL;
    if (!put(out->name_close, l.name + strlen(PROBE_A), nm)) goto done;
    out->parallel = c && split_parallel(out, p, np, l.end, ns, c, nc) &&
                    !has_probe_id(out->call_sep, strlen(out->call_sep));
    if (!out->parallel &&
        !(put(out->sec_open, "", 0) && put(out->call_open, p, np) && put(out->call_close, l.end, ns) &&
          put(out->sec_close, "", 0) && put(out->call_sep, "", 0)))
        goto done;
    derive_trigger(out);
    rc = eng_tsyn_check(out, NULL) ? ERR_NOT_FOUND : 0;
done:
    free(a);
    free(b);
    free(c);
    return rc;
}

int eng_tsyn_derive(const struct tmpl *t, const struct tmpl_req_opts *ro, struct eng_tsyn *out)
{
    /* content null first: a template may add the content after the calls as a second turn */
    for (int k = 0; k < 4; k++)
        if (derive_with(t, ro, k & 1, k < 2, out) == 0) return 0;
    eng_tsyn_family(out, ENG_TF_GENERIC);
    return ERR_NOT_FOUND;
}
