/* eng_tparse: a reply's call section, incrementally, into calls.
 *
 * A byte-at-a-time state machine over the syntax's literals (struct eng_tsyn), so the result does
 * not depend on how the text is chunked: the name is known when the byte after it arrives (names
 * are [A-Za-z0-9_-], the literal after one never starts with such a byte), and the arguments
 * stream out as JSON text as they are read:
 *   JSON     the model's own bytes, from '{' to its matching '}' (a bracket/string scanner);
 *   XML      `{"KEY": ` per <parameter=KEY>, then the value: raw text JSON-escaped inside quotes,
 *            or the model's JSON; the value ends at the first "\n</parameter>", so up to
 *            ENG_TPARSE_HOLD bytes that may begin it are held back;
 *   Python   `{"KEY": ` per KEY=, then the JSON value up to the ',' or ')' after it.
 * The concatenated ARGS pieces of a call are its arguments (what the result's `arguments` holds).
 *
 * The parser checks the shape only: JSON validity and the schema are the grammar's (the final
 * arguments are validated once more before they are returned). Any input is safe: a text that
 * leaves the syntax is ERR_SYNTAX with its byte offset and what was expected, never a crash. */
#include "eng_tools.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    S_SEC_OPEN = 0, /* matching sec_open */
    S_CALL_OPEN,    /* matching call_open */
    S_NAME,         /* a name's bytes */
    S_NAME_CLOSE,   /* matching name_close */
    S_JSON_WS,      /* JSON arguments: spaces before '{' */
    S_JSON,         /* JSON arguments: inside the object */
    S_KEYED,        /* keyed arguments: the next argument or the end of them */
    S_KEY,          /* a key's bytes */
    S_KEY_CLOSE,    /* XML: ">\n" after a key */
    S_XML_VALUE,    /* XML: a value up to "\n</parameter>" */
    S_XML_END,      /* XML: "\n</parameter>\n" */
    S_PY_VALUE,     /* Python: a JSON value up to ',' or ')' */
    S_PY_SEP,       /* Python: the ' ' of ", " */
    S_CALL_CLOSE,   /* matching call_close */
    S_AFTER,        /* call_sep + call_open, or sec_close, or the end */
    S_DONE,         /* sec_close matched: nothing may follow */
};

#define XML_OPEN "<parameter="
#define XML_END "\n</parameter>"
#define XML_END_NL "\n</parameter>\n"

/* A piece of arguments text built by the parser, flushed to the callback when full or when the
 * feed ends. */
struct out {
    struct eng_tparse *p;
    char buf[256];
    size_t n;
    int rc;
};

static void out_flush(struct out *o)
{
    if (o->n && !o->rc && o->p->fn) {
        struct eng_tev ev = {ENG_TEV_ARGS, o->p->n_calls - 1, o->p->tool, o->buf, o->n};
        o->rc = o->p->fn(o->p->ud, &ev);
    }
    o->n = 0;
}

static void out_add(struct out *o, const char *s, size_t n)
{
    while (n && !o->rc) {
        size_t k = sizeof o->buf - o->n < n ? sizeof o->buf - o->n : n;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        s += k;
        n -= k;
        if (o->n == sizeof o->buf) out_flush(o);
    }
}

static void out_str(struct out *o, const char *s) { out_add(o, s, strlen(s)); }

/* One byte inside a JSON string, escaped. */
static void out_esc(struct out *o, unsigned char c)
{
    char e[8];
    if (c >= 0x20 && c != '"' && c != '\\') {
        out_add(o, (const char *)&c, 1);
        return;
    }
    if (c == '"' || c == '\\') snprintf(e, sizeof e, "\\%c", c);
    else if (c == '\n') snprintf(e, sizeof e, "\\n");
    else if (c == '\t') snprintf(e, sizeof e, "\\t");
    else if (c == '\r') snprintf(e, sizeof e, "\\r");
    else snprintf(e, sizeof e, "\\u%04x", c);
    out_str(o, e);
}

static int event(struct out *o, int kind, const char *text, size_t len)
{
    out_flush(o);
    if (o->rc || !o->p->fn) return o->rc;
    struct eng_tev ev = {kind, o->p->n_calls - 1, o->p->tool, text, len};
    return o->rc = o->p->fn(o->p->ud, &ev);
}

void eng_tparse_init(struct eng_tparse *p, const struct eng_tsyn *s, const struct eng_toolset *ts,
                     eng_tev_fn fn, void *ud)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->ts = ts;
    p->fn = fn;
    p->ud = ud;
    p->st = s->sec_open[0] ? S_SEC_OPEN : S_CALL_OPEN;
    p->tool = -1;
    p->alt = -1;
}

static bool name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int fail(struct eng_tparse *p, struct err_info *ei, int code, uint64_t at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int fail(struct eng_tparse *p, struct err_info *ei, int code, uint64_t at, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->err = code;
    return err_set(ei, code, at, "tool call text, byte %llu: %s", (unsigned long long)at, msg);
}

/* Match byte c against literal l at p->lit_pos: 1 when l is complete, 0 when more is needed,
 * -1 when c does not fit. */
static int lit_step(struct eng_tparse *p, const char *l, unsigned char c)
{
    if ((unsigned char)l[p->lit_pos] != c) return -1;
    p->lit_pos++;
    return l[p->lit_pos] == 0;
}

/* The property of the current tool named p->key, its index in properties, or -1. */
static int find_key(struct eng_tparse *p, json_t **schema)
{
    json_t *props = json_object_get(p->ts->t[p->tool].params, "properties"), *v;
    const char *k;
    int j = 0;
    json_object_foreach(props, k, v) {
        if (strlen(k) == p->key_len && memcmp(k, p->key, p->key_len) == 0) {
            *schema = v;
            return j;
        }
        j++;
    }
    return -1;
}

/* A key is complete: `{"KEY": ` or `, "KEY": `. */
static int key_done(struct eng_tparse *p, struct out *o, struct err_info *ei, uint64_t at)
{
    json_t *schema = NULL;
    int j = find_key(p, &schema);
    if (j < 0) {
        p->key[p->key_len < sizeof p->key ? p->key_len : sizeof p->key - 1] = 0;
        return fail(p, ei, ERR_NOT_FOUND, at - p->key_len, "'%s' is not an argument of the tool", p->key);
    }
    if (j < 64 && (p->seen >> j & 1)) {
        p->key[p->key_len] = 0;
        return fail(p, ei, ERR_SYNTAX, at - p->key_len, "argument '%s' appears twice", p->key);
    }
    if (j < 64) p->seen |= 1ull << j;
    out_str(o, p->n_args++ ? ", \"" : "{\"");
    for (size_t i = 0; i < p->key_len; i++) out_esc(o, (unsigned char)p->key[i]);
    out_str(o, "\": ");
    p->raw = p->s->args == ENG_TA_XML && eng_tools_xml_raw(schema);
    if (p->raw) out_str(o, "\"");
    p->depth = 0;
    p->in_str = p->esc = p->any_value = false;
    return 0;
}

/* The arguments are complete. */
static int args_done(struct eng_tparse *p, struct out *o)
{
    if (p->s->args != ENG_TA_JSON) out_str(o, p->n_args ? "}" : "{}");
    p->lit_pos = 0;
    p->st = S_CALL_CLOSE;
    return event(o, ENG_TEV_END, NULL, 0);
}

/* One JSON byte through the bracket/string scanner. Returns 1 when it closed the outermost
 * container. */
static int json_scan(struct eng_tparse *p, unsigned char c)
{
    p->any_value = true;
    if (p->in_str) {
        if (p->esc) p->esc = false;
        else if (c == '\\') p->esc = true;
        else if (c == '"') p->in_str = false;
        return 0;
    }
    if (c == '"') p->in_str = true;
    else if (c == '{' || c == '[') p->depth++;
    else if ((c == '}' || c == ']') && p->depth > 0) return --p->depth == 0;
    return 0;
}

/* The XML value: held bytes that might begin "\n</parameter>" are released once they cannot. */
static void xml_release(struct eng_tparse *p, struct out *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->raw) out_esc(o, (unsigned char)p->hold[i]);
        else out_add(o, &p->hold[i], 1);
    }
    memmove(p->hold, p->hold + n, p->n_hold - n);
    p->n_hold -= n;
}

static int xml_value(struct eng_tparse *p, struct out *o, unsigned char c)
{
    p->hold[p->n_hold++] = (char)c;
    /* keep the longest held suffix that is a prefix of XML_END */
    for (size_t s = 0; s < p->n_hold; s++) {
        size_t k = p->n_hold - s;
        if (k <= strlen(XML_END) && memcmp(p->hold + s, XML_END, k) == 0) {
            xml_release(p, o, s);
            if (p->n_hold == strlen(XML_END)) {
                p->n_hold = 0;
                if (p->raw) out_str(o, "\"");
                p->lit_pos = strlen(XML_END);
                p->st = S_XML_END;
            }
            return 0;
        }
    }
    xml_release(p, o, p->n_hold);
    return 0;
}

/* The literals after a call: next call (call_sep + call_open, alt 0) or sec_close (alt 1). */
static int after_step(struct eng_tparse *p, struct out *o, unsigned char c, struct err_info *ei,
                      uint64_t at)
{
    const struct eng_tsyn *s = p->s;
    char next[2 * ENG_TSYN_LIT];
    snprintf(next, sizeof next, "%s%s", s->call_sep, s->call_open);
    bool can_next = s->parallel && p->n_calls < ENG_TOOL_CALLS_MAX;
    bool a = can_next && (unsigned char)next[p->lit_pos] == c && next[p->lit_pos];
    bool b = (unsigned char)s->sec_close[p->lit_pos] == c && s->sec_close[p->lit_pos];
    if (p->alt == 0) b = false;
    if (p->alt == 1) a = false;
    if (!a && !b)
        return fail(p, ei, ERR_SYNTAX, at, "expected %s",
                    can_next ? "another call or the end of the calls" : "the end of the calls");
    p->lit_pos++;
    if (a && !next[p->lit_pos]) {
        p->lit_pos = 0;
        p->alt = -1;
        p->name_len = 0;
        p->st = S_NAME;
        return 0;
    }
    if (b && !s->sec_close[p->lit_pos]) {
        p->st = S_DONE;
        return 0;
    }
    p->alt = a && b ? -1 : a ? 0 : 1;
    (void)o;
    return 0;
}

/* S_KEYED: the next argument, or the end of the arguments (the call's closing text). */
static int keyed_step(struct eng_tparse *p, struct out *o, unsigned char c, struct err_info *ei,
                      uint64_t at)
{
    const char *close = p->s->call_close;
    if (p->s->args == ENG_TA_PY) {
        if (p->lit_pos == 0 && c == (unsigned char)close[0]) {
            int rc = args_done(p, o);
            if (rc) return rc;
            p->lit_pos = 1;
            if (!close[1]) p->st = S_AFTER, p->lit_pos = 0;
            return 0;
        }
        if (p->n_args || !name_byte(c) || c == '-')
            return fail(p, ei, ERR_SYNTAX, at, "expected %s",
                        p->n_args ? "')'" : "an argument name or ')'");
        p->key_len = 0;
        p->key[p->key_len++] = (char)c;
        p->st = S_KEY;
        return 0;
    }
    /* XML: "<parameter=" (alt 0) or call_close (alt 1) */
    bool a = p->alt != 1 && (unsigned char)XML_OPEN[p->lit_pos] == c;
    bool b = p->alt != 0 && (unsigned char)close[p->lit_pos] == c;
    if (!a && !b)
        return fail(p, ei, ERR_SYNTAX, at, "expected %s",
                    "<parameter= or the end of the call");
    p->lit_pos++;
    p->alt = a && b ? -1 : a ? 0 : 1;
    if (a && !XML_OPEN[p->lit_pos]) {
        p->alt = -1;
        p->key_len = 0;
        p->st = S_KEY;
        return 0;
    }
    if (p->alt == 1) {
        size_t matched = p->lit_pos;
        int rc = args_done(p, o);
        if (rc) return rc;
        p->lit_pos = matched;
        p->alt = -1;
        if (!close[matched]) p->st = S_AFTER, p->lit_pos = 0;
    }
    return 0;
}

static int key_step(struct eng_tparse *p, struct out *o, unsigned char c, struct err_info *ei,
                    uint64_t at)
{
    bool xml = p->s->args == ENG_TA_XML;
    bool end = xml ? c == '>' : c == '=';
    if (!end) {
        bool ok = xml ? (c != '\n' && c != '\r') : (name_byte(c) && c != '-');
        if (!ok || p->key_len + 1 >= sizeof p->key)
            return fail(p, ei, ERR_SYNTAX, at, "bad argument name");
        p->key[p->key_len++] = (char)c;
        return 0;
    }
    if (p->key_len == 0) return fail(p, ei, ERR_SYNTAX, at, "empty argument name");
    int rc = key_done(p, o, ei, at);
    if (rc) return rc;
    p->lit_pos = 1; /* of ">\n" */
    p->st = xml ? S_KEY_CLOSE : S_PY_VALUE;
    return 0;
}

static int py_value(struct eng_tparse *p, struct out *o, unsigned char c, struct err_info *ei,
                    uint64_t at)
{
    if (!p->in_str && p->depth == 0 && p->any_value && (c == ',' || c == ')')) {
        if (c == ',') {
            p->st = S_PY_SEP;
            return 0;
        }
        int rc = args_done(p, o);
        if (rc) return rc;
        if (c != (unsigned char)p->s->call_close[0])
            return fail(p, ei, ERR_SYNTAX, at, "expected %s", "the call's end");
        p->lit_pos = 1;
        if (!p->s->call_close[1]) p->st = S_AFTER, p->lit_pos = 0;
        return 0;
    }
    if (!p->any_value && (c == ',' || c == ')'))
        return fail(p, ei, ERR_SYNTAX, at, "expected %s", "a value");
    json_scan(p, c);
    out_add(o, (const char *)&c, 1);
    return 0;
}

/* One byte. Not split further: each state is a few lines (the dispatch is the machine). */
static int step(struct eng_tparse *p, struct out *o, unsigned char c, struct err_info *ei,
                uint64_t at)
{
    const struct eng_tsyn *s = p->s;
    int r;
    switch (p->st) {
    case S_SEC_OPEN:
    case S_CALL_OPEN: {
        const char *l = p->st == S_SEC_OPEN ? s->sec_open : s->call_open;
        if ((r = lit_step(p, l, c)) < 0)
            return fail(p, ei, ERR_SYNTAX, at, "expected '%s'", l);
        if (r == 1) {
            p->lit_pos = 0;
            p->st = p->st == S_SEC_OPEN && s->call_open[0] ? S_CALL_OPEN : S_NAME;
            p->name_len = 0;
        }
        return 0;
    }
    case S_NAME:
        if (name_byte(c)) {
            if (p->name_len == ENG_TOOL_NAME_MAX)
                return fail(p, ei, ERR_SYNTAX, at, "%s", "a name longer than 64 bytes");
            p->name[p->name_len++] = (char)c;
            return 0;
        }
        p->name[p->name_len] = 0;
        if ((p->tool = eng_toolset_find(p->ts, p->name, p->name_len)) < 0)
            return fail(p, ei, ERR_NOT_FOUND, at - p->name_len, "'%s' is not a declared tool", p->name);
        p->n_calls++;
        p->n_args = 0;
        p->seen = 0;
        if (event(o, ENG_TEV_BEGIN, p->name, p->name_len)) return o->rc;
        p->lit_pos = 0;
        p->st = S_NAME_CLOSE;
        return step(p, o, c, ei, at);
    case S_NAME_CLOSE:
        if ((r = lit_step(p, s->name_close, c)) < 0)
            return fail(p, ei, ERR_SYNTAX, at, "expected '%s'", s->name_close);
        if (r == 1) {
            p->lit_pos = 0;
            p->alt = -1;
            p->depth = 0;
            p->in_str = p->esc = p->any_value = false;
            p->st = s->args == ENG_TA_JSON ? S_JSON_WS : S_KEYED;
        }
        return 0;
    case S_JSON_WS:
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') return 0;
        if (c != '{') return fail(p, ei, ERR_SYNTAX, at, "expected %s", "'{'");
        p->st = S_JSON;
        /* fall through */
    case S_JSON:
        out_add(o, (const char *)&c, 1);
        return json_scan(p, c) ? args_done(p, o) : 0;
    case S_KEYED: return keyed_step(p, o, c, ei, at);
    case S_KEY: return key_step(p, o, c, ei, at);
    case S_KEY_CLOSE:
        if ((r = lit_step(p, ">\n", c)) < 0)
            return fail(p, ei, ERR_SYNTAX, at, "expected '%s'", ">\\n");
        if (r == 1) p->st = S_XML_VALUE, p->n_hold = 0;
        return 0;
    case S_XML_VALUE: return xml_value(p, o, c);
    case S_XML_END:
        if ((r = lit_step(p, XML_END_NL, c)) < 0)
            return fail(p, ei, ERR_SYNTAX, at, "expected '%s'", "\\n after </parameter>");
        if (r == 1) p->st = S_KEYED, p->lit_pos = 0, p->alt = -1;
        return 0;
    case S_PY_VALUE: return py_value(p, o, c, ei, at);
    case S_PY_SEP:
        if (c != ' ') return fail(p, ei, ERR_SYNTAX, at, "expected %s", "' ' after ','");
        p->key_len = 0;
        p->st = S_KEY;
        return 0;
    case S_CALL_CLOSE:
        if ((r = lit_step(p, s->call_close, c)) < 0)
            return fail(p, ei, ERR_SYNTAX, at, "expected '%s'", s->call_close);
        if (r == 1) p->st = S_AFTER, p->lit_pos = 0, p->alt = -1;
        return 0;
    case S_AFTER: return after_step(p, o, c, ei, at);
    default:
        return fail(p, ei, ERR_SYNTAX, at, "%s", "text after the end of the calls");
    }
}

int eng_tparse_feed(struct eng_tparse *p, const char *buf, size_t n, struct err_info *ei)
{
    if (p->err) return p->err;
    struct out o = {.p = p};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        /* a call_close of "" ends the arguments with the call: go straight on */
        rc = step(p, &o, (unsigned char)buf[i], ei, p->off + i);
        if (!rc && p->st == S_CALL_CLOSE && !p->s->call_close[0]) p->st = S_AFTER, p->lit_pos = 0;
        if (!rc) rc = o.rc;
    }
    out_flush(&o); /* what was read before an error is still reported: chunking never matters */
    if (!rc) rc = o.rc;
    p->off += n;
    if (rc && !p->err) p->err = rc;
    return rc;
}

int eng_tparse_finish(struct eng_tparse *p, struct err_info *ei)
{
    if (p->err) return p->err;
    bool clean = p->st == S_DONE || (p->st == S_AFTER && p->lit_pos == 0 && !p->s->sec_close[0]);
    if (clean && p->n_calls) return 0;
    p->err = ERR_TRUNCATED;
    return err_set(ei, ERR_TRUNCATED, p->off, "tool call text ends inside a call (byte %llu)",
                   (unsigned long long)p->off);
}
