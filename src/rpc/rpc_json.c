/* rpc_json: how every outbound line is encoded, and the shapes of errors and envelopes.
 *
 * Clients split lines in more places than JSON requires: Python's str.splitlines() also breaks at
 * U+2028, U+2029 and U+0085, and those characters may appear raw in JSON strings. jansson escapes
 * only what JSON requires, so rpc_json_line() post-processes the dumped text. That is safe
 * because JSON's structure is pure ASCII: the multi-byte sequences E2 80 A8, E2 80 A9 and C2 85
 * can only occur inside string literals, where "\u2028" etc. means the same character.
 * Text from the engine is complete UTF-8 already; rpc_json_text() still validates and replaces
 * bad bytes by U+FFFD, because jansson would refuse the whole string.
 *
 * Inbound, rpc_json_parse() reads one line. jansson refuses a whole document for one integer
 * outside json_int_t (64 bits), which would leave the client without the id of the request that
 * failed; so such integers are found by a scan of the text, a copy with each of them rewritten
 * as a real of the same length (so offsets stay) is parsed, and the caller answers the request
 * with its id, saying where the integer was. Every other integer, the id among them, keeps its
 * exact value (JSON_DECODE_INT_AS_REAL would turn ids above 2^53 into other ids). */
#include "rpc_int.h"

#include "../util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *rpc_json_text(const char *s, size_t n)
{
    size_t ok = util_utf8_valid_prefix(s, n);
    if (ok == n) return json_stringn(s, n);
    /* worst case every byte becomes the 3-byte U+FFFD */
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    char *t = malloc(n * 3 + 1);
    if (!t) return NULL;
    size_t o = util_utf8_repair(s, n, t);
    json_t *j = json_stringn(t, o);
    free(t);
    return j;
}

/* Escaped size of one character of k bytes starting at s. */
static size_t esc_cost(const unsigned char *s, size_t k)
{
    if (k == 1) {
        unsigned char c = s[0];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            return 2;
        return c < 0x20 ? 6 : 1;
    }
    if (k == 2 && s[0] == 0xc2 && s[1] == 0x85) return 6;
    if (k == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)) return 6;
    return k;
}

size_t rpc_json_escaped_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, cost = 0;
    while (i < n) {
        size_t k = util_utf8_char(s + i, n - i);
        if (!k) { cost += 3; i++; continue; } /* becomes U+FFFD */
        cost += esc_cost(u + i, k);
        i += k;
    }
    return cost;
}

size_t rpc_text_fit(const char *s, size_t n, size_t budget)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, cost = 0;
    while (i < n) {
        size_t k = util_utf8_char(s + i, n - i);
        size_t c = k ? esc_cost(u + i, k) : 3;
        if (!k) k = 1;
        if (cost + c > budget) break;
        cost += c;
        i += k;
    }
    return i;
}

char *rpc_json_line(const json_t *msg, size_t *len)
{
    size_t need = json_dumpb(msg, NULL, 0, JSON_COMPACT);
    if (need == 0) return NULL;
    char *raw = malloc(need);
    if (!raw) return NULL;
    if (json_dumpb(msg, raw, need, JSON_COMPACT) != need) {
        free(raw);
        return NULL;
    }
    size_t extra = 0;
    for (size_t i = 0; i + 1 < need; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == 0xc2 && (unsigned char)raw[i + 1] == 0x85) extra += 4;
        else if (c == 0xe2 && i + 2 < need && (unsigned char)raw[i + 1] == 0x80 &&
                 ((unsigned char)raw[i + 2] == 0xa8 || (unsigned char)raw[i + 2] == 0xa9))
            extra += 3;
    }
    char *out = malloc(need + extra + 2);
    if (!out) {
        free(raw);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < need; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == 0xc2 && i + 1 < need && (unsigned char)raw[i + 1] == 0x85) {
            memcpy(out + o, "\\u0085", 6);
            o += 6;
            i += 1;
        } else if (c == 0xe2 && i + 2 < need && (unsigned char)raw[i + 1] == 0x80 &&
                   ((unsigned char)raw[i + 2] == 0xa8 || (unsigned char)raw[i + 2] == 0xa9)) {
            memcpy(out + o, (unsigned char)raw[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            o += 6;
            i += 2;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '\n';
    out[o] = 0; /* not counted in len: a convenience for logs and tests */
    free(raw);
    *len = o;
    return out;
}

/* Length of the JSON number at s[0..n) (0 when none starts there); *integer: no fraction or
 * exponent. */
static size_t number_len(const char *s, size_t n, bool *integer)
{
    size_t i = s[0] == '-';
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return 0;
    *integer = true;
    if (i < n && s[i] == '.') {
        *integer = false;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9';) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *integer = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    return i;
}

/* Is the integer literal s[0..k) (optional '-', digits without a leading zero) outside int64? */
static bool int_too_big(const char *s, size_t k)
{
    bool neg = s[0] == '-';
    const char *d = s + neg;
    size_t nd = k - neg;
    if (nd < 19 || d[0] == '0') return false;
    return nd > 19 || memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

/* Offset of the first integer outside int64 outside strings in s[0..n), SIZE_MAX when none.
 * With fix, every such integer of fix (a copy of s) is rewritten "0.000..." / "-0.00..." at the
 * same length (at least 19 bytes, so always a valid real). */
static size_t big_ints(const char *s, size_t n, char *fix)
{
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') { /* skip the string, escapes included */
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            i++;
            continue;
        }
        bool integer = false;
        size_t k = (c == '-' || (c >= '0' && c <= '9')) ? number_len(s + i, n - i, &integer) : 0;
        if (!k) {
            i++;
            continue;
        }
        if (integer && int_too_big(s + i, k)) {
            if (first == SIZE_MAX) first = i;
            if (!fix) return first;
            size_t o = i;
            if (s[i] == '-') fix[o++] = '-';
            fix[o++] = '0';
            fix[o++] = '.';
            memset(fix + o, '0', i + k - o);
        }
        i += k;
    }
    return first;
}

json_t *rpc_json_parse(const char *line, size_t len, size_t flags, json_error_t *jerr, size_t *big_at)
{
    *big_at = SIZE_MAX;
    json_t *j = json_loadb(line, len, flags, jerr);
    if (j || big_ints(line, len, NULL) == SIZE_MAX) return j;
    char *fix = malloc(len ? len : 1);
    if (!fix) return NULL; /* jerr still describes the line */
    memcpy(fix, line, len);
    size_t at = big_ints(line, len, fix);
    json_error_t e2;
    j = json_loadb(fix, len, flags, &e2);
    free(fix);
    if (j) *big_at = at;
    return j;
}

int rpc_fail_set(struct rpc_fail *f, int code, int err, const char *fmt, ...)
{
    f->code = code ? code : rpc_engine_code(err);
    f->kind = err ? err_kind(err) : rpc_code_kind(code);
    f->retryable = err ? rpc_err_retryable(err) : false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return err ? err : ERR_INVALID;
}

json_t *rpc_error_obj(const struct rpc_fail *f, json_t *extra)
{
    json_t *data = json_object();
    json_object_set_new(data, "kind", json_string(f->kind));
    json_object_set_new(data, "retryable", json_boolean(f->retryable));
    if (extra) {
        json_object_update(data, extra);
        json_decref(extra);
    }
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(f->code));
    json_t *m = rpc_json_text(f->msg, strlen(f->msg));
    json_object_set_new(e, "message", m ? m : json_string("error"));
    json_object_set_new(e, "data", data);
    return e;
}

json_t *rpc_msg_result(json_t *id, json_t *result)
{
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set(m, "id", id);
    json_object_set_new(m, "result", result ? result : json_null());
    return m;
}

json_t *rpc_msg_error(json_t *id, json_t *error)
{
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set(m, "id", id ? id : json_null());
    json_object_set_new(m, "error", error);
    return m;
}

json_t *rpc_msg_notify(const char *method, json_t *params)
{
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "method", json_string(method));
    json_object_set_new(m, "params", params ? params : json_object());
    return m;
}

const char *rpc_code_kind(int code)
{
    switch (code) {
#define RPC_KIND_(name, c, kind) \
    case c:                      \
        return kind;
        RPC_ERR_LIST(RPC_KIND_)
#undef RPC_KIND_
    }
    return "internal_error";
}

int rpc_engine_code(int err)
{
    if (err == ERR_CANCELLED) return RPC_E_CANCELLED;
    if (err >= ERR_MIN_ && err < 0) return RPC_E_ENGINE_BASE + err;
    return RPC_E_INTERNAL;
}

bool rpc_err_retryable(int err) { return err == ERR_BUSY || err == ERR_NOMEM; }

int rpc_buf_add(struct rpc_buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len) return ERR_NOMEM;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return ERR_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

void rpc_buf_free(struct rpc_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
