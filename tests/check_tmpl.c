/* check_tmpl: the Jinja renderer (src/tmpl) against transformers' apply_chat_template.
 *
 *   - the 100 cases of ../shared/chat/jinja/expected.json (10 real templates x 10
 *     conversations) render byte for byte, and the refusals are refusals (ERR_TEMPLATE with the
 *     template's own message, e.g. "TemplateError: System role not supported");
 *   - the language, one construct or Python corner per case (tests/tmpl_cases.h);
 *   - bad templates fail to parse with the expected code at the expected line:column, and
 *     templates that fail at render time say what Python would have said;
 *   - every bound (parser nesting, expression nesting, macro recursion, steps, output, memory,
 *     cyclic and deep values) turns a hostile template into ERR_LIMIT;
 *   - the request -> variables builder, the capability probes and llama.cpp's conversation
 *     fixes, including the fix that makes gemma-2 accept a system prompt. */
#include "tutil.h"

#include "tmpl/tmpl.h"
#include "tmpl_cases.h"

#include <jansson.h>

#define FIXTURE_NOW 1721988000 /* 2024-07-26T10:00:00Z, the fixture's pinned strftime_now */

static struct tmpl_opts test_opts(void)
{
    struct tmpl_opts o;
    tmpl_opts_default(&o);
    o.now = FIXTURE_NOW;
    return o;
}

/* Parse + render; returns the render's (or the parse's) code, output in *out (caller frees). */
static int run(const char *src, const char *vars_json, const struct tmpl_opts *o, char **out,
               size_t *len, struct err_info *ei)
{
    struct tmpl *t = NULL;
    err_clear(ei);
    *out = NULL;
    int rc = tmpl_parse(src, strlen(src), &t, ei);
    if (rc) return rc;
    json_t *vars = NULL;
    if (vars_json) {
        json_error_t je;
        vars = json_loads(vars_json, JSON_ALLOW_NUL, &je);
        ck_assert_msg(vars != NULL, "bad vars JSON in test: %s", je.text);
    }
    struct tmpl_opts d = test_opts();
    rc = tmpl_render(t, vars, o ? o : &d, out, len, ei);
    json_decref(vars);
    tmpl_free(t);
    return rc;
}

/* ---- the fixtures ---- */

static json_t *load_fixture(void)
{
    json_error_t je;
    json_t *j = json_load_file(tutil_shared("chat/jinja/expected.json"), 0, &je);
    ck_assert_msg(j != NULL, "cannot load chat/jinja/expected.json: %s", je.text);
    return j;
}

START_TEST(test_fixtures)
{
    json_t *fx = load_fixture();
    json_t *tpls = json_object_get(fx, "templates");
    ck_assert_str_eq(json_string_value(json_object_get(fx, "strftime_now")), "2024-07-26T10:00:00");
    const char *name;
    json_t *tj;
    int ncases = 0, nbad = 0, nrefusals = 0;
    json_object_foreach(tpls, name, tj) {
        char path[512];
        snprintf(path, sizeof path, "chat/jinja/%s", json_string_value(json_object_get(tj, "file")));
        size_t n;
        char *src = tutil_read(tutil_shared(path), &n);
        ck_assert_msg(src != NULL, "cannot read %s", path);
        struct tmpl *t;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_msg(tmpl_parse(src, n, &t, &ei) == 0, "%s: %s", name, ei.msg);
        json_t *kw = json_object_get(tj, "kwargs");
        struct tmpl_req_opts ro = {
            .bos_token = json_string_value(json_object_get(kw, "bos_token")),
            .eos_token = json_string_value(json_object_get(kw, "eos_token")),
        };
        json_t *cases = json_object_get(tj, "cases");
        for (size_t i = 0; i < json_array_size(cases); i++) {
            json_t *cs = json_array_get(cases, i);
            const char *cname = json_string_value(json_object_get(cs, "name"));
            json_t *as = json_object_get(cs, "arguments_as");
            ro.arguments_as_string = as && !strcmp(json_string_value(as), "string");
            json_t *req = json_pack("{s:O,s:O}", "messages", json_object_get(cs, "messages"),
                                    "add_generation_prompt",
                                    json_object_get(cs, "add_generation_prompt"));
            if (json_object_get(cs, "tools")) json_object_set(req, "tools", json_object_get(cs, "tools"));
            json_t *vars;
            ck_assert_int_eq(tmpl_vars_from_request(req, &ro, &vars, &ei), 0);
            struct tmpl_opts o = test_opts();
            char *out;
            size_t len;
            err_clear(&ei);
            int rc = tmpl_render(t, vars, &o, &out, &len, &ei);
            char what[256];
            snprintf(what, sizeof what, "%s/%s", name, cname);
            json_t *err = json_object_get(cs, "error");
            if (err) {
                nrefusals++;
                const char *want = json_string_value(err);
                if (rc != ERR_TEMPLATE || strncmp(ei.msg, want, strlen(want)) != 0) {
                    printf("MISMATCH %s: want refusal \"%s\", got rc %d \"%s\"\n", what, want, rc, ei.msg);
                    nbad++;
                }
            } else if (rc != 0) {
                printf("MISMATCH %s: render failed: %s\n", what, ei.msg);
                nbad++;
            } else {
                const char *want = json_string_value(json_object_get(cs, "expected"));
                nbad += tutil_diff_report(what, out, len, want, strlen(want));
            }
            free(out);
            json_decref(vars);
            json_decref(req);
            ncases++;
        }
        tmpl_free(t);
        free(src);
    }
    json_decref(fx);
    printf("chat/jinja: %d cases, %d refusals, %d mismatches\n", ncases, nrefusals, nbad);
    ck_assert_int_eq(ncases, 100);
    ck_assert_int_eq(nbad, 0);
}
END_TEST

/* ---- the language ---- */

START_TEST(test_language)
{
    const struct tmpl_case *tc = &g_tmpl_cases[_i];
    char *out;
    size_t len;
    struct err_info ei;
    int rc = run(tc->tpl, tc->vars, NULL, &out, &len, &ei);
    ck_assert_msg(rc == 0, "case %d: %s\n  template: %s", _i, ei.msg, tc->tpl);
    char what[32];
    snprintf(what, sizeof what, "case %d", _i);
    int bad = tutil_diff_report(what, out, len, tc->want, strlen(tc->want));
    free(out);
    ck_assert_msg(!bad, "case %d differs: %s", _i, tc->tpl);
}
END_TEST

/* ---- bad templates ---- */

struct bad_case {
    const char *tpl;
    int code;
    const char *where; /* the message's "line L, column C" prefix */
    const char *what;  /* a substring of the message */
};

static const struct bad_case g_bad[] = {
    {"{{ x ", ERR_SYNTAX, "line 1, column 6", "unexpected end of template"},
    {"{% if x %}a", ERR_SYNTAX, "line 1, column 12", "'elif' or 'else' or 'endif'"},
    {"{% for %}", ERR_SYNTAX, "line 1, column 8", "expected an expression"},
    {"{{ 1 + }}", ERR_SYNTAX, "line 1, column 8", "unexpected 'end of print statement'"},
    {"{% endfor %}", ERR_SYNTAX, "line 1, column 4", "unknown tag 'endfor'"},
    {"{% if x %}{% endfor %}", ERR_SYNTAX, "line 1, column 14", "looking for 'elif' or 'else' or 'endif'"},
    {"{% for x in y %}{% if x %}{% endfor %}", ERR_SYNTAX, "line 1, column 30", "nesting mistake"},
    {"{% frobnicate %}", ERR_SYNTAX, "line 1, column 4", "unknown tag 'frobnicate'"},
    {"{{ x | nofilter }}", ERR_SYNTAX, "line 1, column 8", "no filter named 'nofilter'"},
    {"{{ x is notatest }}", ERR_SYNTAX, "line 1, column 9", "no test named 'notatest'"},
    {"{{ x | groupby('a') }}", ERR_UNSUPPORTED, "line 1, column 8", "'groupby' is not supported"},
    {"{% include 'x' %}", ERR_UNSUPPORTED, "line 1, column 4", "'include' tag is not supported"},
    {"{% extends 'base' %}", ERR_UNSUPPORTED, "line 1, column 4", "'extends'"},
    {"{{ 'abc }}", ERR_SYNTAX, "line 1, column 4", "unexpected character '''"},
    {"{{ x ! y }}", ERR_SYNTAX, "line 1, column 6", "unexpected character '!'"},
    {"ok\n{# never closed", ERR_SYNTAX, "line 2, column 1", "missing end of comment tag"},
    {"{% raw %} no end", ERR_SYNTAX, "line 1, column 1", "missing end of raw directive"},
    {"{{ (1 }}", ERR_SYNTAX, "line 1, column 7", "unexpected '}', expected ')'"},
    {"{{ ) }}", ERR_SYNTAX, "line 1, column 4", "unexpected ')'"},
    {"{% break %}", ERR_SYNTAX, "line 1, column 4", "'break' outside of a loop"},
    {"{% for x in y %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}", ERR_SYNTAX,
     "line 1, column 35", "'continue' outside of a loop"},
    {"{% set 1 = 2 %}", ERR_SYNTAX, "line 1, column 8", "can't assign to 'const'"},
    {"{% macro m(a=1, b) %}{% endmacro %}", ERR_SYNTAX, "line 1, column 17", "non-default argument"},
    {"{{ 99999999999999999999 }}", ERR_UNSUPPORTED, "line 1, column 4", "64 bits"},
    {"{{ '\\xZZ' }}", ERR_SYNTAX, "line 1, column 4", "truncated \\xXX escape"},
    {"{{ '\\ud800' }}", ERR_UNSUPPORTED, "line 1, column 4", "surrogate"},
    {"line1\nline2 {{ }}", ERR_SYNTAX, "line 2, column 10", "expected an expression"},
    {"\xc3\xa9t\xc3\xa9 {{ ) }}", ERR_SYNTAX, "line 1, column 8", "unexpected ')'"},
    {"ab\xff", ERR_UTF8, "line 1, column 3", "invalid UTF-8"},
    {"{% call x %}{% endcall %}", ERR_SYNTAX, "line 1, column 4", "expected call"},
    {"{{ a is defined is none }}", ERR_SYNTAX, "line 1, column 17", "chain multiple tests"},
    {"{% if %}{% endif %}", ERR_SYNTAX, "line 1, column 7", "expected an expression"},
    {"{{ f(a=1, 2) }}", ERR_SYNTAX, "line 1, column 5", "invalid syntax for function call"},
    {"{{ f(*args) }}", ERR_UNSUPPORTED, "line 1, column 6", "*args"},
    {"{% set x %}unclosed", ERR_SYNTAX, "line 1, column 20", "'endset'"},
    {"{{ x.5a }}", ERR_SYNTAX, "line 1, column 7", "expected token 'end of print statement'"},
    {"{{ [1, 2 }}", ERR_SYNTAX, "line 1, column 10", "unexpected '}', expected ']'"},
};

START_TEST(test_parse_errors)
{
    const struct bad_case *bc = &g_bad[_i];
    struct tmpl *t = NULL;
    struct err_info ei;
    err_clear(&ei);
    int rc = tmpl_parse(bc->tpl, strlen(bc->tpl), &t, &ei);
    ck_assert_msg(rc == bc->code, "case %d (%s): rc %d, want %d (%s)", _i, bc->tpl, rc, bc->code, ei.msg);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(ei.code, bc->code);
    ck_assert_msg(strncmp(ei.msg, bc->where, strlen(bc->where)) == 0, "case %d (%s): '%s' does not start with '%s'",
                  _i, bc->tpl, ei.msg, bc->where);
    ck_assert_msg(strstr(ei.msg, bc->what) != NULL, "case %d (%s): '%s' does not say '%s'", _i, bc->tpl,
                  ei.msg, bc->what);
    ck_assert(ei.offset != ERR_NO_OFFSET && ei.offset <= strlen(bc->tpl));
}
END_TEST

/* Positions in the error refer to the original text, \r\n included. */
START_TEST(test_error_positions)
{
    struct tmpl *t = NULL;
    struct err_info ei;
    err_clear(&ei);
    const char *src = "a\r\nb\r{{ ) }}";
    ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, &ei), ERR_SYNTAX);
    ck_assert_msg(strncmp(ei.msg, "line 3, column 4", 16) == 0, "%s", ei.msg);
    ck_assert_uint_eq(ei.offset, 8); /* the ')' in the original bytes */
    unsigned l, c;
    tmpl_line_col(src, strlen(src), 8, &l, &c);
    ck_assert_uint_eq(l, 3);
    ck_assert_uint_eq(c, 4);
    tmpl_line_col("\xc3\xa9\xc3\xa9x", 5, 4, &l, &c);
    ck_assert_uint_eq(l, 1);
    ck_assert_uint_eq(c, 3); /* columns count characters */
    /* a NUL byte inside the text is just text */
    char *out;
    size_t len;
    ck_assert_int_eq(tmpl_parse("a\0b{{ 1 }}", 10, &t, &ei), 0);
    struct tmpl_opts o = test_opts();
    ck_assert_int_eq(tmpl_render(t, NULL, &o, &out, &len, &ei), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(out, "a\0b1", 4) == 0);
    free(out);
    tmpl_free(t);
    tmpl_free(NULL);
}
END_TEST

/* ---- templates that refuse or fail at render time ---- */

struct rt_case {
    const char *tpl, *vars;
    int code;
    const char *prefix; /* the message starts with this */
};

static const struct rt_case g_rt[] = {
    {"{{ raise_exception('nope') }}", NULL, ERR_TEMPLATE, "TemplateError: nope (line 1, column 4)"},
    {"x\n {{- raise_exception('A ' ~ 1) }}", NULL, ERR_TEMPLATE, "TemplateError: A 1 (line 2, column 6)"},
    {"{% for x in none %}{% endfor %}", NULL, ERR_TEMPLATE, "TypeError: 'NoneType' object is not iterable"},
    {"{% for t in tools %}{% endfor %}", "{\"tools\": null}", ERR_TEMPLATE,
     "TypeError: 'NoneType' object is not iterable"},
    {"{{ 'a' + 1 }}", NULL, ERR_TEMPLATE, "TypeError: can only concatenate str (not \"int\") to str"},
    {"{{ 1 + 'a' }}", NULL, ERR_TEMPLATE, "TypeError: unsupported operand type(s) for +: 'int' and 'str'"},
    {"{{ x.y }}", NULL, ERR_TEMPLATE, "UndefinedError: 'x' is undefined"},
    {"{{ d.a.b }}", "{\"d\": {}}", ERR_TEMPLATE, "UndefinedError: 'dict object' has no attribute 'a'"},
    {"{{ l[5].x }}", "{\"l\": []}", ERR_TEMPLATE, "UndefinedError: 'list object' has no element 5"},
    {"{{ 'a' + x }}", NULL, ERR_TEMPLATE, "UndefinedError: 'x' is undefined"},
    {"{{ 1 / 0 }}", NULL, ERR_TEMPLATE, "ZeroDivisionError: division by zero"},
    {"{{ 1 // 0 }}", NULL, ERR_TEMPLATE, "ZeroDivisionError: integer division or modulo by zero"},
    {"{{ [1] < 'a' }}", NULL, ERR_TEMPLATE, "TypeError: '<' not supported between instances of 'list' and 'str'"},
    {"{{ x|tojson }}", NULL, ERR_TEMPLATE, "TypeError: Object of type Undefined is not JSON serializable"},
    {"{{ namespace()|tojson }}", NULL, ERR_TEMPLATE, "TypeError: Object of type Namespace is not JSON serializable"},
    {"{{ 'x'.nope() }}", NULL, ERR_TEMPLATE, "UndefinedError: 'str object' has no attribute 'nope'"},
    {"{% macro m() %}{% endmacro %}{{ m(1) }}", NULL, ERR_TEMPLATE,
     "TypeError: macro 'm' takes not more than 0 argument(s)"},
    {"{% macro m() %}{% endmacro %}{{ m(k=1) }}", NULL, ERR_TEMPLATE, "TypeError: macro 'm' takes no keyword argument 'k'"},
    {"{% set x.y = 1 %}", NULL, ERR_TEMPLATE, "TemplateRuntimeError: cannot assign attribute on non-namespace object"},
    {"{% set a, b = [1] %}", NULL, ERR_TEMPLATE, "ValueError: not enough values to unpack (expected 2, got 1)"},
    {"{% for a, b in [1] %}{% endfor %}", NULL, ERR_TEMPLATE, "TypeError: cannot unpack non-iterable int object"},
    {"{{ [1]|select|last }}", NULL, ERR_TEMPLATE, "TypeError: 'generator' object is not reversible"},
    {"{{ [1]|select|length }}", NULL, ERR_TEMPLATE, "TypeError: object of type 'generator' has no len()"},
    {"{{ range(100001)|length }}", NULL, ERR_TEMPLATE, "OverflowError: Range too big."},
    {"{{ '{}'.format() }}", NULL, ERR_TEMPLATE, "IndexError: Replacement index 0 out of range"},
    {"{% if true %}{{ 1|nofilter }}{% endif %}", NULL, ERR_TEMPLATE, "TemplateRuntimeError: No filter named 'nofilter'."},
    {"{{ 2**64 }}", NULL, ERR_TEMPLATE, "OverflowError: integer result does not fit in 64 bits"},
    {"{{ n[1:] }}", "{\"n\": null}", ERR_TEMPLATE, "TypeError: 'NoneType' object is not subscriptable"},
    {"{{ d[1:] }}", "{\"d\": {}}", ERR_TEMPLATE, "TypeError: unhashable type: 'slice'"},
    {"{% for x in (1)[:-1] %}{% endfor %}", NULL, ERR_TEMPLATE, "TypeError: 'int' object is not subscriptable"},
    {"{% if (true)[1:3] %}{% endif %}", NULL, ERR_TEMPLATE, "TypeError: 'bool' object is not subscriptable"},
    {"{{ [][::0] }}", NULL, ERR_TEMPLATE, "ValueError: slice step cannot be zero"},
    {"{{ x() }}", NULL, ERR_TEMPLATE, "UndefinedError: 'x' is undefined"},
    {"{{ 'a'() }}", NULL, ERR_TEMPLATE, "TypeError: 'str' object is not callable"},
    {"{{ {}.pop('k') }}", NULL, ERR_TEMPLATE, "KeyError: 'k'"},
    {"{{ [].pop() }}", NULL, ERR_TEMPLATE, "IndexError: pop from empty list"},
    {"{{ 'a'.join([1]) }}", NULL, ERR_TEMPLATE, "TypeError: sequence item 0: expected str instance, int found"},
    {"{{ {[1]: 2} }}", NULL, ERR_TEMPLATE, "TypeError: unhashable type: 'list'"},
    {"{{ 'a' in 1 }}", NULL, ERR_TEMPLATE, "TypeError: argument of type 'int' is not iterable"},
    {"{{ 1 in 'a' }}", NULL, ERR_TEMPLATE, "TypeError: 'in <string>' requires string as left operand, not int"},
    {"{{ [1]|map }}", NULL, ERR_TEMPLATE, "FilterArgumentError: map requires a filter argument"},
    {"{{ 'x'|indent(2, bogus=1) }}", NULL, ERR_TEMPLATE, "TypeError: indent() got an unexpected keyword argument 'bogus'"},
    {"{{ (-8) ** 0.5 }}", NULL, ERR_UNSUPPORTED, "ValueError: a negative number to a fractional power is complex"},
};

START_TEST(test_render_errors)
{
    const struct rt_case *rc_ = &g_rt[_i];
    char *out;
    size_t len;
    struct err_info ei;
    int rc = run(rc_->tpl, rc_->vars, NULL, &out, &len, &ei);
    ck_assert_msg(rc == rc_->code, "case %d (%s): rc %d, want %d (%s)", _i, rc_->tpl, rc, rc_->code, ei.msg);
    ck_assert_ptr_null(out);
    ck_assert_msg(strncmp(ei.msg, rc_->prefix, strlen(rc_->prefix)) == 0,
                  "case %d (%s): '%s' does not start with '%s'", _i, rc_->tpl, ei.msg, rc_->prefix);
}
END_TEST

/* ---- bounds ---- */

static char *repeat_str(const char *a, int n, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la * (size_t)n + lb + 8);
    ck_assert_ptr_nonnull(s);
    s[0] = 0;
    strcat(s, "{{ ");
    for (int i = 0; i < n; i++) strcat(s, a);
    strcat(s, b);
    return s;
}

START_TEST(test_limits_parse)
{
    struct tmpl *t;
    struct err_info ei;
    /* blocks nested too deeply */
    size_t cap = 150 * 20 + 16;
    char *s = malloc(cap);
    s[0] = 0;
    for (int i = 0; i < 150; i++) strcat(s, "{% if 1 %}");
    err_clear(&ei);
    ck_assert_int_eq(tmpl_parse(s, strlen(s), &t, &ei), ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(ei.msg, "nested deeper"));
    free(s);
    /* unary chains, not chains, brackets, conditional chains */
    const char *heads[] = {"-", "not ", "(", "1 if 1 else "};
    const char *tails[] = {"1 }}", "1 }}", "1 }}", "1 }}"};
    for (int k = 0; k < 4; k++) {
        s = repeat_str(heads[k], 300, tails[k]);
        err_clear(&ei);
        ck_assert_msg(tmpl_parse(s, strlen(s), &t, &ei) == ERR_LIMIT, "%s...: %s", heads[k], ei.msg);
        free(s);
    }
    /* within the bound everything is fine */
    s = repeat_str("-", 50, "1 }}");
    err_clear(&ei);
    ck_assert_int_eq(tmpl_parse(s, strlen(s), &t, &ei), 0);
    tmpl_free(t);
    free(s);
}
END_TEST

struct lim_case {
    const char *tpl;
    uint64_t steps;
    size_t output, mem;
    const char *says;
};

static const struct lim_case g_lim[] = {
    /* recursion without end */
    {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", 0, 0, 0, "macro calls nested deeper"},
    {"{% macro f() %}{% call f() %}{% endcall %}{% endmacro %}{{ f() }}", 0, 0, 0, "nested deeper"},
    {"{% for x in [[1]] recursive %}{{ loop([[1]]) }}{% endfor %}", 0, 0, 0, "recursive loop nested deeper"},
    /* work without end */
    {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", 1000000, 0, 0,
     "steps of work"},
    {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", 0, 0, 0,
     NULL}, /* the default bounds stop it too (memory or steps, whichever comes first) */
    {"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", 0, 0,
     0, NULL},
    {"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", 0, 0,
     0, NULL},
    {"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", 0,
     1u << 20, 0, "longer than 1048576"},
    {"{{ 'x' * 10000000000 }}", 0, 0, 0, "longer than"},
    {"{{ [1] * 10000000000 }}", 0, 0, 0, "longer than"},
    {"{{ 'ab'|center(100000000) }}", 0, 0, 0, "longer than"},
    /* output and memory */
    {"{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", 0, 1u << 20, 0, "rendered text longer than"},
    {"{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set _ = ns.l.append('x' * 1000) %}"
     "{% endfor %}",
     0, 0, 16u << 20, "too much memory"},
    /* values that do not end */
    {"{% set l = [] %}{% set _ = l.append(l) %}{{ l }}", 0, 0, 0, "nested too deeply"},
    {"{% set l = [] %}{% set _ = l.append(l) %}{{ l|tojson }}", 0, 0, 0, "nested too deeply"},
    {"{% set ns = namespace(l=[]) %}{% for i in range(2000) %}{% set ns.l = [ns.l] %}{% endfor %}"
     "{{ ns.l == ns.l }}{{ ns.l }}",
     0, 0, 0, "nested too deeply"},
};

START_TEST(test_limits_render)
{
    const struct lim_case *lc = &g_lim[_i];
    struct tmpl_opts o = test_opts();
    o.max_steps = lc->steps;
    o.max_output = lc->output;
    o.max_mem = lc->mem;
    char *out;
    size_t len;
    struct err_info ei;
    int rc = run(lc->tpl, NULL, &o, &out, &len, &ei);
    ck_assert_msg(rc == ERR_LIMIT, "case %d: rc %d (%s)", _i, rc, ei.msg);
    ck_assert_ptr_null(out);
    ck_assert_msg(!lc->says || strstr(ei.msg, lc->says) != NULL, "case %d: '%s' does not say '%s'", _i,
                  ei.msg, lc->says);
}
END_TEST

/* ---- request -> variables ---- */

static json_t *vars_of(const char *req_json, const struct tmpl_req_opts *ro, int want_rc, struct err_info *ei)
{
    json_error_t je;
    json_t *req = json_loads(req_json, 0, &je), *vars = NULL;
    ck_assert_msg(req != NULL, "%s", je.text);
    err_clear(ei);
    ck_assert_int_eq(tmpl_vars_from_request(req, ro, &vars, ei), want_rc);
    json_decref(req);
    return vars;
}

START_TEST(test_vars_from_request)
{
    struct err_info ei;
    const char *req =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
        "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
        "\"{\\\"city\\\": \\\"Z\\u00fcrich\\\", \\\"n\\\": 1.5}\"}}]}], \"temperature\": 0.2, "
        "\"enable_thinking\": false, \"chat_template_kwargs\": {\"bos_token\": \"<B>\", \"x\": 1}}";
    struct tmpl_req_opts ro = {.bos_token = "<s>", .eos_token = "</s>", .add_generation_prompt = true};
    json_t *v = vars_of(req, &ro, 0, &ei);
    json_t *args = json_object_get(json_object_get(json_array_get(json_object_get(json_array_get(
                                       json_object_get(v, "messages"), 1), "tool_calls"), 0), "function"),
                                   "arguments");
    ck_assert(json_is_object(args)); /* the string was parsed into an object */
    ck_assert_str_eq(json_string_value(json_object_get(args, "city")), "Z\xc3\xbcrich");
    ck_assert(json_is_null(json_object_get(v, "tools")));
    ck_assert(json_is_null(json_object_get(v, "documents")));
    ck_assert(json_is_true(json_object_get(v, "add_generation_prompt")));
    ck_assert_str_eq(json_string_value(json_object_get(v, "bos_token")), "<B>"); /* kwargs win */
    ck_assert_str_eq(json_string_value(json_object_get(v, "eos_token")), "</s>");
    ck_assert_int_eq(json_integer_value(json_object_get(v, "x")), 1);
    ck_assert_ptr_null(json_object_get(v, "temperature")); /* not passed through for chat */
    ck_assert_ptr_null(json_object_get(v, "enable_thinking"));
    json_decref(v);
    /* arguments as the string OpenAI sends; objects dumped as Python's json.dumps does */
    ro.arguments_as_string = true;
    ro.extra_top_level = true;
    v = vars_of("{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\", "
                "\"arguments\": {\"city\": \"Z\\u00fcrich\", \"n\": 1.0, \"l\": [1, true, null]}}}]}], "
                "\"enable_thinking\": false, \"add_generation_prompt\": false}",
                &ro, 0, &ei);
    args = json_object_get(json_object_get(json_array_get(json_object_get(json_array_get(
                               json_object_get(v, "messages"), 0), "tool_calls"), 0), "function"),
                           "arguments");
    ck_assert_str_eq(json_string_value(args), "{\"city\": \"Z\\u00fcrich\", \"n\": 1.0, \"l\": [1, true, null]}");
    ck_assert(json_is_false(json_object_get(v, "enable_thinking"))); /* extra top-level keys */
    ck_assert(json_is_false(json_object_get(v, "add_generation_prompt")));
    json_decref(v);
    /* refusals of malformed requests */
    ro.arguments_as_string = false;
    vars_of("{\"messages\": \"hi\"}", &ro, ERR_INVALID, &ei);
    ck_assert_ptr_nonnull(strstr(ei.msg, "'messages' must be an array"));
    vars_of("{\"messages\": [{\"content\": \"x\"}]}", &ro, ERR_INVALID, &ei);
    ck_assert_ptr_nonnull(strstr(ei.msg, "messages[0]"));
    vars_of("{\"messages\": [], \"tools\": {}}", &ro, ERR_INVALID, &ei);
    vars_of("{\"messages\": [], \"add_generation_prompt\": 1}", &ro, ERR_INVALID, &ei);
    vars_of("{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"arguments\": "
            "\"{not json\"}}]}]}",
            &ro, ERR_INVALID, &ei);
    ck_assert_ptr_nonnull(strstr(ei.msg, "messages[0].tool_calls[0].function.arguments is not JSON"));
    json_t *notobj = json_string("x");
    json_t *out = NULL;
    ck_assert_int_eq(tmpl_vars_from_request(notobj, &ro, &out, &ei), ERR_INVALID);
    ck_assert_ptr_null(out);
    json_decref(notobj);
}
END_TEST

/* ---- capabilities and fixes ---- */

static struct tmpl *load_tmpl(const char *file)
{
    char path[256];
    snprintf(path, sizeof path, "chat/jinja/%s", file);
    size_t n;
    char *src = tutil_read(tutil_shared(path), &n);
    ck_assert_msg(src != NULL, "cannot read %s", path);
    struct tmpl *t;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(tmpl_parse(src, n, &t, &ei) == 0, "%s", ei.msg);
    free(src);
    return t;
}

START_TEST(test_caps)
{
    static const struct {
        const char *file;
        struct tmpl_caps want;
    } cases[] = {
        /* system, string, typed, tool_calls, object_args, parallel, tools */
        {"Qwen-Qwen2.5-7B-Instruct.jinja", {true, true, false, true, true, true, true}},
        {"google-gemma-2-2b-it.jinja", {false, true, false, false, false, false, false}},
        {"meta-llama-Llama-3.2-3B-Instruct.jinja", {true, true, false, true, true, false, true}},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", {true, true, false, true, true, true, true}},
        {"microsoft-Phi-3.5-mini-instruct.jinja", {true, true, false, false, false, false, false}},
        {"mistralai-Mistral-Nemo-Instruct-2407.jinja", {true, true, false, true, true, true, true}},
    };
    struct tmpl_req_opts ro = {.bos_token = "<s>", .eos_token = "</s>"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tmpl *t = load_tmpl(cases[i].file);
        struct tmpl_caps c;
        tmpl_caps_probe(t, &ro, NULL, &c);
        const struct tmpl_caps *w = &cases[i].want;
        ck_assert_msg(c.system_role == w->system_role && c.string_content == w->string_content &&
                          c.typed_content == w->typed_content && c.tool_calls == w->tool_calls &&
                          c.object_arguments == w->object_arguments &&
                          c.parallel_calls == w->parallel_calls && c.tools == w->tools,
                      "%s: got system %d string %d typed %d calls %d objargs %d parallel %d tools %d",
                      cases[i].file, c.system_role, c.string_content, c.typed_content, c.tool_calls,
                      c.object_arguments, c.parallel_calls, c.tools);
        tmpl_free(t);
    }
}
END_TEST

static json_t *J(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_msg(j != NULL, "%s", je.text);
    return j;
}

static void assert_json_eq(json_t *got, const char *want)
{
    json_t *w = J(want);
    char *g = json_dumps(got, JSON_COMPACT);
    ck_assert_msg(json_equal(got, w), "got %s\nwant %s", g, want);
    free(g);
    json_decref(w);
}

START_TEST(test_fixes)
{
    json_t *m = J("[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U\"}, "
                  "{\"role\": \"assistant\", \"content\": \"A\"}]");
    json_t *r = tmpl_msgs_fold_system(m);
    assert_json_eq(r, "[{\"role\": \"user\", \"content\": \"S\\nU\"}, {\"role\": \"assistant\", \"content\": \"A\"}]");
    json_decref(r);
    json_decref(m);
    m = J("[{\"role\": \"system\", \"content\": \"S\"}]");
    r = tmpl_msgs_fold_system(m);
    assert_json_eq(r, "[]"); /* alone: dropped, as llama.cpp does */
    json_decref(r);
    json_decref(m);
    m = J("[{\"role\": \"user\", \"content\": \"U\"}]");
    r = tmpl_msgs_fold_system(m);
    assert_json_eq(r, "[{\"role\": \"user\", \"content\": \"U\"}]");
    json_decref(r);
    json_decref(m);
    m = J("[{\"role\": \"developer\", \"content\": \"D\"}, {\"role\": \"user\", \"content\": \"U\"}]");
    r = tmpl_msgs_developer_to_system(m);
    assert_json_eq(r, "[{\"role\": \"system\", \"content\": \"D\"}, {\"role\": \"user\", \"content\": \"U\"}]");
    json_decref(r);
    json_decref(m);
    m = J("[{\"role\": \"assistant\", \"tool_calls\": []}, {\"role\": \"assistant\", \"content\": null, "
          "\"tool_calls\": []}, {\"role\": \"user\"}]");
    r = tmpl_msgs_fill_tool_call_content(m);
    assert_json_eq(r, "[{\"role\": \"assistant\", \"tool_calls\": [], \"content\": \"\"}, {\"role\": "
                      "\"assistant\", \"content\": \"\", \"tool_calls\": []}, {\"role\": \"user\"}]");
    json_decref(r);
    json_decref(m);
    m = J("[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": "
          "\"image_url\"}, {\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": \"user\", \"content\": \"c\"}]");
    r = tmpl_msgs_content_form(m, true);
    assert_json_eq(r, "[{\"role\": \"user\", \"content\": \"a\\nb\"}, {\"role\": \"user\", \"content\": \"c\"}]");
    json_decref(r);
    r = tmpl_msgs_content_form(m, false);
    assert_json_eq(r, "[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": "
                      "\"image_url\"}, {\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": \"user\", "
                      "\"content\": [{\"type\": \"text\", \"text\": \"c\"}]}]");
    json_decref(r);
    json_decref(m);
    json_t *notarr = json_object();
    ck_assert_ptr_null(tmpl_msgs_fold_system(notarr));
    ck_assert_ptr_null(tmpl_msgs_developer_to_system(notarr));
    ck_assert_ptr_null(tmpl_msgs_fill_tool_call_content(notarr));
    ck_assert_ptr_null(tmpl_msgs_content_form(notarr, true));
    json_decref(notarr);
}
END_TEST

/* gemma-2 refuses a system prompt; with the system message folded into the first user message
 * (the fix llama.cpp applies when its probe finds no system role) it renders. */
START_TEST(test_fix_gemma_system)
{
    struct tmpl *t = load_tmpl("google-gemma-2-2b-it.jinja");
    struct tmpl_req_opts ro = {.bos_token = "<bos>", .eos_token = "<eos>", .add_generation_prompt = true};
    json_t *req = J("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                    "{\"role\": \"user\", \"content\": \"Hi!\"}]}");
    struct err_info ei;
    json_t *vars;
    ck_assert_int_eq(tmpl_vars_from_request(req, &ro, &vars, &ei), 0);
    struct tmpl_opts o = test_opts();
    char *out;
    size_t len;
    err_clear(&ei);
    ck_assert_int_eq(tmpl_render(t, vars, &o, &out, &len, &ei), ERR_TEMPLATE);
    ck_assert_str_eq(ei.msg, "TemplateError: System role not supported (line 1, column 59)");
    json_t *fixed = tmpl_msgs_fold_system(json_object_get(req, "messages"));
    json_object_set_new(req, "messages", fixed);
    json_decref(vars);
    ck_assert_int_eq(tmpl_vars_from_request(req, &ro, &vars, &ei), 0);
    ck_assert_int_eq(tmpl_render(t, vars, &o, &out, &len, &ei), 0);
    ck_assert_str_eq(out, "<bos><start_of_turn>user\nBe brief.\nHi!<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    json_decref(vars);
    json_decref(req);
    tmpl_free(t);
}
END_TEST

/* ---- rendering properties ---- */

START_TEST(test_render_properties)
{
    /* a template renders the same twice (rendering never changes it), with or without vars */
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                      "{% set _ = messages.append(m) if false %}{% endfor %}{{ ns.n }}|{{ x }}";
    struct tmpl *t;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, &ei), 0);
    json_t *vars = J("{\"messages\": [{}, {}], \"x\": \"X\"}");
    struct tmpl_opts o = test_opts();
    for (int k = 0; k < 2; k++) {
        char *out;
        size_t len;
        ck_assert_int_eq(tmpl_render(t, vars, &o, &out, &len, &ei), 0);
        ck_assert_str_eq(out, "2|X");
        free(out);
    }
    char *out;
    size_t len;
    ck_assert_int_eq(tmpl_render(t, NULL, NULL, &out, &len, &ei), 0);
    ck_assert_str_eq(out, "0|");
    free(out);
    /* the template's mutations do not reach the caller's JSON */
    const char *mut = "{% set _ = messages.append(1) %}{% set _ = d.update(k=2) %}{{ messages|length }}";
    struct tmpl *t2;
    ck_assert_int_eq(tmpl_parse(mut, strlen(mut), &t2, &ei), 0);
    json_t *v2 = J("{\"messages\": [], \"d\": {}}");
    ck_assert_int_eq(tmpl_render(t2, v2, &o, &out, &len, &ei), 0);
    ck_assert_str_eq(out, "1");
    free(out);
    ck_assert_uint_eq(json_array_size(json_object_get(v2, "messages")), 0);
    ck_assert_uint_eq(json_object_size(json_object_get(v2, "d")), 0);
    json_decref(v2);
    tmpl_free(t2);
    /* vars must be an object */
    json_t *arr = json_array();
    err_clear(&ei);
    ck_assert_int_eq(tmpl_render(t, arr, &o, &out, &len, &ei), ERR_INVALID);
    ck_assert_ptr_null(out);
    json_decref(arr);
    json_decref(vars);
    tmpl_free(t);
    /* the empty template */
    ck_assert_int_eq(tmpl_parse("", 0, &t, &ei), 0);
    ck_assert_int_eq(tmpl_render(t, NULL, NULL, &out, &len, &ei), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
    free(out);
    tmpl_free(t);
}
END_TEST

START_TEST(test_strftime_clock)
{
    static const struct {
        int64_t now;
        int32_t off;
        const char *fmt, *want;
    } cases[] = {
        {0, 0, "%Y-%m-%d %H:%M:%S %a", "1970-01-01 00:00:00 Thu"},
        {FIXTURE_NOW, 2 * 3600, "%H:%M %d %b %Y", "12:00 26 Jul 2024"},
        {FIXTURE_NOW, -11 * 3600, "%I %p %d", "11 PM 25"},
        {-86400, 0, "%Y-%m-%d %A %j", "1969-12-31 Wednesday 365"},
        {951782400, 0, "%F %j %U %W %u %w", "2000-02-29 060 09 09 2 2"},
        {1735603200, 0, "%c|%x|%X|%D|%e|%k|%l|%P|%C|%y", "Tue Dec 31 00:00:00 2024|12/31/24|00:00:00|12/31/24|31| 0|12|am|20|24"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[128];
        snprintf(src, sizeof src, "{{ strftime_now('%s') }}", cases[i].fmt);
        struct tmpl_opts o = test_opts();
        o.now = cases[i].now;
        o.utc_offset = cases[i].off;
        char *out;
        size_t len;
        struct err_info ei;
        ck_assert_int_eq(run(src, NULL, &o, &out, &len, &ei), 0);
        ck_assert_msg(!strcmp(out, cases[i].want), "%s: got '%s' want '%s'", cases[i].fmt, out, cases[i].want);
        free(out);
    }
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("tmpl");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixtures);
    tcase_add_loop_test(tc, test_language, 0, (int)(sizeof g_tmpl_cases / sizeof g_tmpl_cases[0]));
    tcase_add_loop_test(tc, test_parse_errors, 0, (int)(sizeof g_bad / sizeof g_bad[0]));
    tcase_add_test(tc, test_error_positions);
    tcase_add_loop_test(tc, test_render_errors, 0, (int)(sizeof g_rt / sizeof g_rt[0]));
    tcase_add_test(tc, test_limits_parse);
    tcase_add_loop_test(tc, test_limits_render, 0, (int)(sizeof g_lim / sizeof g_lim[0]));
    tcase_add_test(tc, test_vars_from_request);
    tcase_add_test(tc, test_caps);
    tcase_add_test(tc, test_fixes);
    tcase_add_test(tc, test_fix_gemma_system);
    tcase_add_test(tc, test_render_properties);
    tcase_add_test(tc, test_strftime_clock);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
