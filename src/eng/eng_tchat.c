/* eng_tchat: one chat reply that may call tools. Between the request and the generation loop:
 *
 *   setup     the request's tools, tool_choice and parallel_tool_calls checked against the
 *             model's call syntax (eng_tools.h); the call section's grammar over the model's
 *             vocabulary; the constraint (lazy from the trigger for "auto", from the first
 *             token for "required" or a named tool) and the loop's region (where call text
 *             goes instead of the reply);
 *   generate  the loop runs with both; the call text feeds the incremental parser, whose
 *             events become the sink's on_tool: BEGIN with a fresh id once a name is complete,
 *             ARGS as the arguments stream, END once they are complete and validated against
 *             the tool's schema once more (a byte grammar of that schema alone; with the call
 *             grammar they always validate: this is belt and braces);
 *   finish    a reply that ended cleanly after complete calls finishes "tool_calls".
 *
 * Everything a run owns is freed by eng_trun_free, safe after a failed setup. */
#include "eng_int.h"

#include "eng_tools.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The request's parallel_tool_calls: absent or null means `dflt`. */
static int parallel_field(const json_t *req, bool dflt, bool *out, struct err_info *ei)
{
    json_t *v = json_object_get(req, "parallel_tool_calls");
    *out = dflt;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'parallel_tool_calls' must be true or false");
    *out = json_is_true(v);
    return 0;
}

int eng_trun_parse(struct eng_trun *r, const json_t *req, bool parallel_default,
                   struct err_info *ei)
{
    memset(r, 0, sizeof *r);
    int rc = eng_toolset_parse(json_object_get(req, "tools"), &r->ts, ei);
    if (!rc) rc = eng_tool_choice_parse(json_object_get(req, "tool_choice"), &r->ts, &r->choice, &r->named, ei);
    if (!rc) rc = parallel_field(req, parallel_default, &r->parallel, ei);
    return rc;
}

int eng_trun_setup(struct eng_trun *r, struct eng_model *em, const struct eng_tsyn *syn,
                   struct err_info *ei)
{
    r->syn = *syn;
    r->parallel = r->parallel && syn->parallel;
    if (r->choice == ENG_TC_NONE) return 0;
    bool lazy = r->choice == ENG_TC_AUTO && !syn->content_open[0];
    struct eng_tgram_opts o = {.choice = r->choice, .named = r->named, .parallel = r->parallel,
                               .lazy = lazy, .v = tok_view(em->vocab)};
    char *gbnf = NULL;
    size_t len = 0;
    int rc = eng_tools_gbnf(&r->syn, &r->ts, &o, &gbnf, &len, ei);
    if (rc) return rc;
    rc = eng_tcon_make(em, gbnf, len, syn->trigger, syn->at_start, lazy, &r->con, ei);
    free(gbnf);
    if (rc) return rc;
    bool auto_text = r->choice == ENG_TC_AUTO;
    r->rg = (struct eng_region){auto_text ? r->syn.trigger : "", syn->at_start,
                                auto_text ? r->syn.content_open : NULL, NULL, r};
    r->active = true;
    return 0;
}

void eng_trun_free(struct eng_trun *r)
{
    if (!r) return;
    if (r->con.ops && r->con.ops->free) r->con.ops->free(r->con.self);
    for (size_t i = 0; i < ENG_TOOL_CALLS_MAX; i++) eng_sb_free(&r->args[i]);
    for (size_t i = 0; i < r->ts.n && r->check; i++) gram_free(r->check[i]);
    free(r->check);
    eng_toolset_free(&r->ts);
    memset(r, 0, sizeof *r);
}

/* The arguments of call i, validated against its tool's schema alone. */
static int validate(struct eng_trun *r, size_t i, struct err_info *ei)
{
    int t = r->tool[i];
    if (!r->check && !(r->check = calloc(r->ts.n, sizeof *r->check)))
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    if (!r->check[t]) {
        char *g;
        size_t n;
        int rc = eng_tools_args_gbnf(&r->ts, (size_t)t, &g, &n, ei);
        if (!rc) rc = gram_parse(g, n, &r->check[t], ei);
        free(g);
        if (rc) return rc;
    }
    struct err_info vei;
    err_clear(&vei);
    if (gram_check(r->check[t], r->args[i].p, r->args[i].len, &vei))
        return err_set(ei, ERR_STATE, ERR_NO_OFFSET,
                       "tool call %zu (%s): the arguments do not match the tool's schema: %s", i,
                       r->ts.t[t].name, vei.msg);
    return 0;
}

static int on_call_event(void *ud, const struct eng_tev *ev)
{
    struct eng_trun *r = ud;
    size_t i = ev->index;
    if (i >= ENG_TOOL_CALLS_MAX) return ERR_LIMIT;
    struct eng_tool_event out = {.index = (uint32_t)i, .id = r->id[i], .name = r->ts.t[ev->tool].name};
    if (ev->kind == ENG_TEV_BEGIN) {
        r->n_calls = i + 1;
        r->tool[i] = ev->tool;
        eng_tool_call_id(r->syn.ids, r->id[i]);
        out.kind = ENG_TOOL_BEGIN;
    } else if (ev->kind == ENG_TEV_ARGS) {
        eng_sb_add(&r->args[i], ev->text, ev->len);
        if (r->args[i].oom) return ERR_NOMEM;
        out.kind = ENG_TOOL_ARGS;
        out.text = ev->text;
        out.len = ev->len;
    } else {
        int rc = validate(r, i, &r->ei);
        if (rc) return rc;
        r->n_done = i + 1;
        out.kind = ENG_TOOL_END;
        out.text = r->args[i].p ? r->args[i].p : "";
        out.len = r->args[i].len;
    }
    return r->on_tool && r->on_tool(r->tool_ud, &out) ? ERR_CANCELLED : 0;
}

/* The loop's call text. */
static int on_region(void *ud, const char *text, size_t len, int32_t token)
{
    (void)token;
    struct eng_trun *r = ud;
    if (r->err) return 1;
    r->seen_region = true;
    int rc = eng_tparse_feed(&r->parser, text, len, &r->ei);
    if (rc) {
        r->err = rc;
        r->err_cut = util_mem_find(text, len, "\xef\xbf\xbd", 3) != NULL;
    }
    return rc != 0;
}

int eng_trun_generate(struct eng_session *s, struct eng_trun *r, const char *prompt, size_t len,
                      const struct eng_gen_params *p, const char *const *stops, size_t n_stops,
                      eng_tool_fn on_tool, void *tool_ud, const struct eng_sink *sink,
                      struct eng_gen_result *res, struct err_info *ei)
{
    if (!r->active) return eng_generate_stops(s, prompt, len, p, stops, n_stops, sink, res, ei);
    /* the model writes what the generation prompt would have ended with (functionary's ">>>") */
    size_t tl = strlen(r->syn.prompt_tail);
    if (tl && len >= tl && !memcmp(prompt + len - tl, r->syn.prompt_tail, tl)) len -= tl;
    r->on_tool = on_tool;
    r->tool_ud = tool_ud;
    r->rg.on_text = on_region;
    r->rg.ud = r;
    err_clear(&r->ei);
    eng_tparse_init(&r->parser, &r->syn, &r->ts, on_call_event, r);
    struct eng_gen_params gp = *p;
    gp.constraint = &r->con;
    gp.grammar = NULL;
    int rc = eng_generate_region(s, prompt, len, &gp, stops, n_stops, &r->rg, sink, res, ei);
    if (r->err == ERR_CANCELLED) r->err = 0, res->finish = ENG_FINISH_CANCELLED;
    /* max_tokens ended the reply inside a multi-byte character of the call text: the flushed
     * tail is U+FFFD, which no call syntax takes. The complete calls stand, finish "length". */
    if (r->err == ERR_SYNTAX && r->err_cut && res->finish == ENG_FINISH_LENGTH) r->err = 0;
    if (r->err) {
        res->finish = ENG_FINISH_ERROR;
        return err_set(ei, r->err, r->ei.offset, "%s", r->ei.msg[0] ? r->ei.msg : err_str(r->err));
    }
    if (rc) return rc;
    if (res->finish == ENG_FINISH_STOP && r->seen_region) {
        if ((rc = eng_tparse_finish(&r->parser, &r->ei))) {
            res->finish = ENG_FINISH_ERROR;
            return err_set(ei, ERR_STATE, r->ei.offset, "the tool-call text ended early (a bug): %s",
                           r->ei.msg);
        }
        res->finish = ENG_FINISH_TOOL_CALLS;
    }
    return 0;
}

/* ---------------- requests ---------------- */

int eng_tools_check(const json_t *req, struct err_info *ei)
{
    struct eng_trun r;
    int rc = eng_trun_parse(&r, req, true, ei);
    for (size_t i = 0; !rc && i < r.ts.n; i++) {
        char *g = NULL;
        struct err_info cei;
        err_clear(&cei);
        if (eng_tools_args_gbnf(&r.ts, i, &g, NULL, &cei))
            rc = err_set(ei, ERR_INVALID, cei.offset,
                         "tools[%zu] (%s): its parameters cannot be enforced: %s", i,
                         r.ts.t[i].name, cei.msg);
        free(g);
    }
    eng_trun_free(&r);
    return rc;
}

/* Append a message to msgs, joined to the previous one when both are tool results made user
 * messages (templates that alternate roles refuse two in a row). */
static int add_tool_result(json_t *msgs, const json_t *m, bool *joinable)
{
    json_t *c = json_object_get(m, "content");
    const char *text = json_is_string(c) ? json_string_value(c) : "";
    struct eng_sb b = {0};
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    if (*joinable && last) {
        json_t *lc = json_object_get(last, "content");
        eng_sb_add(&b, json_string_value(lc), json_string_length(lc));
        eng_sb_str(&b, "\n");
    }
    eng_sb_str(&b, "<tool_response>\n");
    eng_sb_str(&b, text);
    eng_sb_str(&b, "\n</tool_response>");
    json_t *u = b.oom ? NULL : json_pack("{s:s,s:s}", "role", "user", "content", b.p);
    eng_sb_free(&b);
    if (!u) return ERR_NOMEM;
    int rc = *joinable && last ? json_array_set_new(msgs, json_array_size(msgs) - 1, u)
                               : json_array_append_new(msgs, u);
    *joinable = true;
    return rc ? ERR_NOMEM : 0;
}

/* An assistant message whose calls are written into its content (NULL: out of memory, or
 * calls eng_chat_check would have refused, *ei says). */
static json_t *calls_as_text(const json_t *m, const struct eng_tview *tv,
                             const struct eng_toolset *ts, struct err_info *ei)
{
    json_t *c = json_object_get(m, "content");
    struct eng_sb b = {0};
    if (json_is_string(c) && json_string_length(c)) {
        eng_sb_add(&b, json_string_value(c), json_string_length(c));
        eng_sb_str(&b, "\n");
    }
    if (eng_tsyn_render(&tv->syn, ts, json_object_get(m, "tool_calls"), &b, ei)) {
        eng_sb_free(&b);
        return NULL;
    }
    json_t *a = b.oom ? NULL : json_copy((json_t *)m);
    if (a && (json_object_del(a, "tool_calls") || json_object_set_new(a, "content", json_string(b.p)))) {
        json_decref(a);
        a = NULL;
    }
    eng_sb_free(&b);
    if (!a) err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    return a;
}

/* The messages with calls and tool results written as text (see eng_int.h). */
static int rewrite_history(const json_t *msgs, const struct eng_tview *tv,
                           const struct eng_toolset *ts, json_t **out, struct err_info *ei)
{
    *out = json_array();
    if (!*out) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    bool joinable = false;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i), *role = json_object_get(m, "role");
        int rc = 0;
        if (!strcmp(json_string_value(role), "tool") && !tv->tool_role) {
            rc = add_tool_result(*out, m, &joinable);
            if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
            continue;
        }
        joinable = false;
        struct err_info cei;
        err_clear(&cei);
        json_t *n = json_array_size(json_object_get(m, "tool_calls")) ? calls_as_text(m, tv, ts, &cei)
                                                                       : json_incref(m);
        if (!n) return err_set(ei, cei.code ? cei.code : ERR_NOMEM, ERR_NO_OFFSET, "messages[%zu]: %s", i, cei.msg);
        if (json_array_append_new(*out, n)) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    return 0;
}

/* The tools' description as the first system message's head (or a new system message). */
static int describe_tools(json_t *msgs, const struct eng_tview *tv, const struct eng_toolset *ts,
                          struct err_info *ei)
{
    struct eng_sb b = {0};
    int rc = eng_tsyn_describe(&tv->syn, ts, &b, ei);
    json_t *first = json_array_get(msgs, 0), *c = json_object_get(first, "content");
    bool merge = !rc && first && !strcmp(json_string_value(json_object_get(first, "role")), "system") &&
                 (json_is_string(c) || !c || json_is_null(c));
    if (merge && json_is_string(c) && json_string_length(c)) {
        eng_sb_str(&b, "\n\n");
        eng_sb_add(&b, json_string_value(c), json_string_length(c));
    }
    json_t *sys = rc || b.oom ? NULL : json_pack("{s:s,s:s}", "role", "system", "content", b.p);
    eng_sb_free(&b);
    if (rc) return rc;
    if (!sys) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    if (merge) {
        json_t *m = json_copy(first);
        if (!m || json_object_set(m, "content", json_object_get(sys, "content")) ||
            json_array_set_new(msgs, 0, m)) {
            json_decref(sys);
            return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        }
        json_decref(sys);
        return 0;
    }
    return json_array_insert_new(msgs, 0, sys) ? err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory") : 0;
}

int eng_trun_rewrite(const json_t *req, const struct eng_tview *tv, const struct eng_toolset *ts,
                     json_t **out, struct err_info *ei)
{
    const json_t *msgs = json_object_get(req, "messages");
    bool calls = false, results = false;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        calls |= json_array_size(json_object_get(m, "tool_calls")) > 0;
        results |= !strcmp(json_string_value(json_object_get(m, "role")), "tool");
    }
    bool want_tools = ts->n && !tv->shows_tools, want_calls = (calls && !tv->shows_calls) ||
                                                              (results && !tv->tool_role);
    if (!want_tools && !want_calls && (tv->jinja || !json_object_get(req, "tools"))) {
        *out = json_incref((json_t *)req);
        return 0;
    }
    json_t *r = json_copy((json_t *)req), *m = NULL;
    if (!r) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    int rc = want_calls ? rewrite_history(msgs, tv, ts, &m, ei) : 0;
    if (!want_calls) m = json_copy((json_t *)msgs);
    if (!rc && !m) rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    if (!rc && want_tools) rc = describe_tools(m, tv, ts, ei);
    if (!rc && json_object_set(r, "messages", m)) rc = err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    if (!rc && !tv->jinja) json_object_del(r, "tools");
    json_decref(m);
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}
