/* check_rpc: the JSON-RPC server and batch runner.
 *
 * Unit cases exercise the line splitter and the output encoder directly. Protocol cases drive
 * the real binary ($LMPIPE_BIN serve / batch) over pipes with the real stories260K model: the
 * transcript in protocol/transcript.jsonl is replayed message by message (volatile values are
 * written "<number>" etc. there), so the spec cannot drift from the code; then streaming order,
 * cancel, sessions, shutdown paths, backpressure and the list of bad inputs.
 *
 * Every line the server writes is checked on the way in: valid JSON, shorter than 60 KiB, no raw
 * U+2028/U+2029/U+0085, valid UTF-8. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include "tutil.h"

#include "ftool/ftool.h"
#include "gguf_builder.h"
#include "rpc_bad_lines.h"
#include "rpc/rpc_int.h"
#include "util/hash.h"
#include "util/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------- unit: line splitter ---------------- */

struct got {
    char lines[16][64];
    size_t lens[16];
    int n, overlong;
};

static void got_line(void *ud, const char *line, size_t len)
{
    struct got *g = ud;
    if (!line) {
        g->overlong++;
        g->lens[g->n] = len;
        snprintf(g->lines[g->n++], 64, "<overlong>");
        return;
    }
    g->lens[g->n] = len;
    snprintf(g->lines[g->n++], 64, "%.*s", (int)len, line);
}

START_TEST(lines_split)
{
    struct rpc_lines l;
    struct got g = {0};
    rpc_lines_init(&l, 16);
    rpc_lines_feed(&l, "ab", 2, got_line, &g);
    rpc_lines_feed(&l, "c\nde\r\n\nf", 8, got_line, &g);
    ck_assert_int_eq(g.n, 3);
    ck_assert_str_eq(g.lines[0], "abc");
    ck_assert_str_eq(g.lines[1], "de"); /* CR dropped */
    ck_assert_str_eq(g.lines[2], "");
    /* a line over the limit is reported once, at its newline, and the next line is intact */
    rpc_lines_feed(&l, "0123456789012345678", 19, got_line, &g);
    ck_assert_int_eq(g.n, 3);
    rpc_lines_feed(&l, "9\nok\n", 5, got_line, &g);
    ck_assert_int_eq(g.overlong, 1);
    ck_assert_uint_eq(g.lens[3], 21); /* "f" + 20 bytes */
    ck_assert_str_eq(g.lines[4], "ok");
    rpc_lines_feed(&l, "tail", 4, got_line, &g);
    rpc_lines_finish(&l, got_line, &g);
    ck_assert_str_eq(g.lines[5], "tail");
    /* exactly the limit is fine */
    rpc_lines_feed(&l, "0123456789abcdef\n", 17, got_line, &g);
    ck_assert_str_eq(g.lines[6], "0123456789abcdef");
    ck_assert_int_eq(g.overlong, 1);
    rpc_lines_free(&l);
}
END_TEST

/* ---------------- unit: encoder ---------------- */

START_TEST(json_escapes_separators)
{
    json_t *m = json_pack("{s:s}", "t", "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c\xc2\x85" "d\n\"\\\x01");
    size_t len;
    char *line = rpc_json_line(m, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(line, "{\"t\":\"a\\u2028b\\u2029c\\u0085d\\n\\\"\\\\\\u0001\"}\n");
    ck_assert_uint_eq(len, strlen(line));
    /* the escaped text decodes back to the same string */
    json_t *back = json_loadb(line, len, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(back, "t")), json_string_value(json_object_get(m, "t")));
    ck_assert_uint_eq(rpc_json_escaped_len(json_string_value(json_object_get(m, "t")),
                                           json_string_length(json_object_get(m, "t"))),
                      len - strlen("{\"t\":\"\"}\n"));
    free(line);
    json_decref(back);
    json_decref(m);
}
END_TEST

START_TEST(json_utf8)
{
    ck_assert_uint_eq(util_utf8_valid_prefix("ab\xc3\xa9", 4), 4);
    ck_assert_uint_eq(util_utf8_valid_prefix("ab\xc3", 3), 2);         /* cut */
    ck_assert_uint_eq(util_utf8_valid_prefix("a\xc0\x80", 3), 1);      /* overlong */
    ck_assert_uint_eq(util_utf8_valid_prefix("a\xed\xa0\x80", 4), 1);  /* surrogate */
    ck_assert_uint_eq(util_utf8_valid_prefix("\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    json_t *j = rpc_json_text("a\xff" "b\xe2\x82", 5);
    ck_assert_str_eq(json_string_value(j), "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
    /* fit never cuts a character and respects the escaped budget */
    const char *t = "\xc3\xa9\xc3\xa9\n";
    ck_assert_uint_eq(rpc_text_fit(t, 5, 3), 2);
    ck_assert_uint_eq(rpc_text_fit(t, 5, 4), 4);
    ck_assert_uint_eq(rpc_text_fit(t, 5, 5), 4);
    ck_assert_uint_eq(rpc_text_fit(t, 5, 6), 5);
}
END_TEST

START_TEST(error_codes)
{
    ck_assert_int_eq(rpc_engine_code(ERR_CANCELLED), -32800);
    ck_assert_int_eq(rpc_engine_code(ERR_BUSY), -32069);
    ck_assert_int_eq(rpc_engine_code(ERR_CONTEXT), -32066);
    ck_assert(rpc_err_retryable(ERR_BUSY));
    ck_assert(!rpc_err_retryable(ERR_CONTEXT));
    /* one list: every protocol code has its own kind */
    ck_assert_str_eq(rpc_code_kind(RPC_E_PARSE), "parse_error");
    ck_assert_str_eq(rpc_code_kind(RPC_E_NOT_INITIALIZED), "not_initialized");
    ck_assert_str_eq(rpc_code_kind(12345), "internal_error");
    struct rpc_fail f;
    ck_assert_int_eq(rpc_fail_set(&f, 0, ERR_BUSY, "queue %d", 3), ERR_BUSY);
    ck_assert_int_eq(f.code, -32069);
    ck_assert_str_eq(f.kind, "overloaded");
    ck_assert(f.retryable);
    ck_assert_str_eq(f.msg, "queue 3");
    /* a protocol code with an engine kind (a line over the limit) */
    rpc_fail_set(&f, RPC_E_INVALID_REQUEST, ERR_LIMIT, "too long");
    ck_assert_int_eq(f.code, -32600);
    ck_assert_str_eq(f.kind, "limit_exceeded");
    ck_assert(!f.retryable);
    ck_assert_int_eq(rpc_fail_set(&f, RPC_E_PARAMS, 0, "x"), ERR_INVALID);
    ck_assert_str_eq(f.kind, "invalid_params");
    ck_assert_int_eq(rpc_engine_code(ERR_DEAD_END), -32073);
    /* issue 15: non-finite values have kinds of their own, not bad_state */
    ck_assert_int_eq(rpc_engine_code(ERR_NONFINITE), -32080);
    ck_assert_int_eq(rpc_engine_code(ERR_NONFINITE_WEIGHTS), -32081);
    rpc_fail_set(&f, 0, ERR_NONFINITE, "nan");
    ck_assert_int_eq(f.code, -32080);
    ck_assert_str_eq(f.kind, "non_finite_logits");
    ck_assert(!f.retryable);
    rpc_fail_set(&f, 0, ERR_NONFINITE_WEIGHTS, "nan");
    ck_assert_str_eq(f.kind, "non_finite_weights");
}
END_TEST

/* Integers outside 64 bits: the line is still read (they become reals) and the first one's
 * offset is reported; every other number keeps its exact value. */
START_TEST(json_big_ints)
{
    static const struct {
        const char *text;
        const char *big; /* the byte before the first too-big integer and its text; NULL: none */
    } cases[] = {
        {"{\"id\":9223372036854775807,\"a\":-9223372036854775808}", NULL},
        {"{\"id\":9223372036854775807,\"a\":9223372036854775808}", ":9223372036854775808"},
        {"{\"id\":1,\"a\":[1,-9223372036854775809]}", ",-9223372036854775809"},
        {"{\"id\":\"x\\\"1234567890123456789012\",\"a\":{\"b\":18446744073709551616e0,\"c\":18446744073709551616}}",
         ":18446744073709551616}"},
        {"{\"id\":2,\"a\":1e400000000000000000000}", NULL}, /* a real: jansson's own error */
        {"[123456789012345678901234567890,-99999999999999999999999.5]", "[123456789012345678901234567890"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text;
        json_error_t e;
        size_t at = 0;
        json_t *j = rpc_json_parse(t, strlen(t), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e, &at);
        if (!cases[i].big) {
            ck_assert_uint_eq(at, SIZE_MAX);
            if (i == 0) ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), INT64_MAX);
            if (i == 0) ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), INT64_MIN);
            if (i == 4) ck_assert_ptr_null(j);
            json_decref(j);
            continue;
        }
        ck_assert_msg(j != NULL, "case %zu: %s", i, e.text);
        ck_assert_uint_eq(at, (size_t)(strstr(t, cases[i].big) - t) + 1);
        json_t *id = json_is_object(j) ? json_object_get(j, "id") : NULL;
        if (i == 1) ck_assert_int_eq(json_integer_value(id), INT64_MAX); /* exact, not a real */
        if (i == 3) ck_assert_str_eq(json_string_value(id), "x\"1234567890123456789012");
        if (i == 3) ck_assert(json_is_real(json_object_get(json_object_get(j, "a"), "b")));
        json_decref(j);
    }
    /* with a duplicate key as well, jansson's refusal stands */
    json_error_t e;
    size_t at;
    const char *dup = "{\"id\":1,\"id\":2,\"a\":99999999999999999999}";
    ck_assert_ptr_null(rpc_json_parse(dup, strlen(dup), JSON_REJECT_DUPLICATES, &e, &at));
    ck_assert_uint_eq(at, SIZE_MAX);
}
END_TEST

/* ---------------- the error table of protocol/PROTOCOL.md ---------------- */

struct code_kind {
    int code;
    char kind[40];
};

static void ck_add(struct code_kind *v, size_t *n, size_t cap, int code, const char *kind)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i].code == code && !strcmp(v[i].kind, kind)) return;
    ck_assert_uint_lt(*n, cap);
    v[*n].code = code;
    snprintf(v[*n].kind, sizeof v[*n].kind, "%s", kind);
    (*n)++;
}

static bool ck_has(const struct code_kind *v, size_t n, int code, const char *kind)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].code == code && !strcmp(v[i].kind, kind)) return true;
    return false;
}

/* The (code, kind) rows of the "## Errors" table: a row's first cell is a code ("-32050 + e",
 * the rule, is skipped), its second the kinds in backquotes. */
static size_t doc_errors(struct code_kind *v, size_t cap)
{
    char path[1024];
    const char *src = getenv("LMPIPE_SRC");
    snprintf(path, sizeof path, "%s/protocol/PROTOCOL.md", src && *src ? src : ".");
    size_t len, n = 0;
    char *t = tutil_read(path, &len);
    ck_assert_msg(t != NULL, "cannot read %s", path);
    char *sec = strstr(t, "\n## Errors\n");
    ck_assert_ptr_nonnull(sec);
    char *end = strstr(sec + 1, "\n## ");
    if (end) *end = 0;
    for (char *line = sec; line && *line; line = strchr(line + 1, '\n')) {
        char *l = line + (*line == '\n');
        char *stop;
        if (strncmp(l, "| -", 3)) continue;
        long code = strtol(l + 2, &stop, 10);
        if (*stop != ' ' || strncmp(stop, " |", 2)) continue; /* "-32050 + e" */
        char *cell = stop + 2, *cell_end = strchr(cell, '|');
        ck_assert_ptr_nonnull(cell_end);
        for (char *q = cell; (q = memchr(q, '`', (size_t)(cell_end - q))) != NULL;) {
            char *close = memchr(q + 1, '`', (size_t)(cell_end - q - 1));
            ck_assert_ptr_nonnull(close);
            char kind[40];
            snprintf(kind, sizeof kind, "%.*s", (int)(close - q - 1), q + 1);
            ck_add(v, &n, cap, (int)code, kind);
            q = close + 1;
        }
    }
    free(t);
    return n;
}

/* A protocol code given with an engine error (so the answer carries the engine's kind): every
 * "RPC_E_X, ERR_Y" argument pair in the .c files of src/rpc. */
static void combined_errors(struct code_kind *v, size_t *n, size_t cap)
{
    static const struct {
        const char *name;
        int code;
    } rpc[] = {
#define RPC_NAME_(name, code, kind) {#name, code},
        RPC_ERR_LIST(RPC_NAME_)
#undef RPC_NAME_
    };
    static const struct {
        const char *name;
        int code;
    } eng[] = {
#define ERR_NAME_(name, val, kind, desc) {#name, val},
        ERR_LIST(ERR_NAME_)
#undef ERR_NAME_
    };
    const char *src = getenv("LMPIPE_SRC");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/src/rpc", src && *src ? src : ".");
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot list %s", dir);
    size_t found = 0, n_files = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t nl = strlen(de->d_name);
        if (nl < 3 || strcmp(de->d_name + nl - 2, ".c")) continue;
        n_files++;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *t = tutil_read(path, &len);
        ck_assert_msg(t != NULL, "cannot read %s", path);
        for (char *q = t; (q = strstr(q, "RPC_E_")) != NULL; q++) {
            for (size_t r = 0; r < sizeof rpc / sizeof rpc[0]; r++) {
                size_t k = strlen(rpc[r].name);
                if (strncmp(q, rpc[r].name, k) || strncmp(q + k, ", ERR_", 6)) continue;
                for (size_t e = 0; e < sizeof eng / sizeof eng[0]; e++) {
                    size_t ke = strlen(eng[e].name);
                    if (strncmp(q + k + 2, eng[e].name, ke) || isalnum((unsigned char)q[k + 2 + ke]) || q[k + 2 + ke] == '_')
                        continue;
                    ck_add(v, n, cap, rpc[r].code, err_kind(eng[e].code));
                    found++;
                }
            }
        }
        free(t);
    }
    closedir(d);
    ck_assert_uint_ge(n_files, 5);
    ck_assert_uint_ge(found, 3); /* the scan works: line too long, second initialize, templates */
}

/* Every (code, data.kind) the server can send is a row of PROTOCOL.md's error table, and every
 * row is one it can send: the protocol's own codes (RPC_ERR_LIST), every engine error
 * (-32050 + e with err_kind, cancellation being -32800), and the protocol codes sent with an
 * engine error's kind, found in the source. A new engine error needs its row. */
START_TEST(error_table_matches_doc)
{
    struct code_kind doc[128], sent[128];
    size_t n_doc = doc_errors(doc, 128), n_sent = 0;
    ck_assert_uint_ge(n_doc, 10);
#define SENT_RPC_(name, code, kind) ck_add(sent, &n_sent, 128, code, kind);
    RPC_ERR_LIST(SENT_RPC_)
#undef SENT_RPC_
#define SENT_ENG_(name, val, kind, desc) \
    if (val < 0) ck_add(sent, &n_sent, 128, rpc_engine_code(val), err_kind(val));
    ERR_LIST(SENT_ENG_)
#undef SENT_ENG_
    combined_errors(sent, &n_sent, 128);
    for (size_t i = 0; i < n_sent; i++)
        ck_assert_msg(ck_has(doc, n_doc, sent[i].code, sent[i].kind),
                      "code %d kind `%s` is not in protocol/PROTOCOL.md's error table", sent[i].code, sent[i].kind);
    for (size_t i = 0; i < n_doc; i++)
        ck_assert_msg(ck_has(sent, n_sent, doc[i].code, doc[i].kind),
                      "protocol/PROTOCOL.md lists code %d kind `%s`, which the server never sends", doc[i].code,
                      doc[i].kind);
}
END_TEST

/* ---------------- the real binary ---------------- */

static const char *bin(void)
{
    const char *b = getenv("LMPIPE_BIN");
    return b && *b ? b : "./lmpipe";
}

static const char *model(void) { return tutil_shared("models/stories260K-F32.gguf"); }

struct proc {
    pid_t pid;
    int in, out; /* our ends: write requests to in, read lines from out */
    char *buf;
    size_t len, cap;
    bool eof;
};

/* args: NULL-terminated, after "serve" (or the subcommand in args[0] when it is "batch"). */
static void proc_start_v(struct proc *p, const char *const *args, int pipe_size)
{
    int a[2], b[2];
    ck_assert_int_eq(pipe(a), 0);
    ck_assert_int_eq(pipe(b), 0);
    if (pipe_size) ck_assert_int_ge(fcntl(b[0], F_SETPIPE_SZ, pipe_size), 0);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        dup2(a[0], 0);
        dup2(b[1], 1);
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
        const char *argv[32];
        int n = 0;
        argv[n++] = bin();
        argv[n++] = "serve";
        for (int i = 0; args && args[i] && n < 31; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(a[0]);
    close(b[1]);
    /* our ends must not leak into the next server we start (it would hold this one's stdin open) */
    fcntl(a[1], F_SETFD, FD_CLOEXEC);
    fcntl(b[0], F_SETFD, FD_CLOEXEC);
    p->in = a[1];
    p->out = b[0];
    p->buf = NULL;
    p->len = p->cap = 0;
    p->eof = false;
}

static void proc_start(struct proc *p, bool with_model)
{
    const char *args[] = {"-m", model(), NULL};
    proc_start_v(p, with_model ? args : NULL, 0);
}

static void proc_send_raw(struct proc *p, const char *data, size_t n)
{
    while (n) {
        ssize_t k = write(p->in, data, n);
        if (k < 0 && errno == EINTR) continue;
        ck_assert_msg(k > 0, "write to server failed: %s", strerror(errno));
        data += k;
        n -= (size_t)k;
    }
}

static void proc_send(struct proc *p, const char *line)
{
    proc_send_raw(p, line, strlen(line));
    proc_send_raw(p, "\n", 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Next raw line (malloc'd, without '\n'), NULL on EOF or timeout. */
static char *proc_line(struct proc *p, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1e3;
    for (;;) {
        char *nl = p->len ? memchr(p->buf, '\n', p->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - p->buf);
            char *line = malloc(n + 1);
            memcpy(line, p->buf, n);
            line[n] = 0;
            memmove(p->buf, nl + 1, p->len - n - 1);
            p->len -= n + 1;
            return line;
        }
        if (p->eof) return NULL;
        int left = (int)((end - now_s()) * 1e3);
        if (left <= 0) return NULL;
        struct pollfd pf = {p->out, POLLIN, 0};
        if (poll(&pf, 1, left) <= 0) continue;
        if (p->cap - p->len < 65536) {
            p->cap = p->cap * 2 + 65536;
            p->buf = realloc(p->buf, p->cap);
        }
        ssize_t k = read(p->out, p->buf + p->len, p->cap - p->len);
        if (k <= 0) p->eof = true;
        else p->len += (size_t)k;
    }
}

static json_t *check_line(const char *line)
{
    size_t n = strlen(line);
    ck_assert_msg(n + 1 <= RPC_LINE_OUT_MAX, "line of %zu bytes", n);
    ck_assert_msg(util_utf8_valid_prefix(line, n) == n, "invalid UTF-8 on stdout");
    ck_assert_msg(!strstr(line, "\xe2\x80\xa8") && !strstr(line, "\xe2\x80\xa9") && !strstr(line, "\xc2\x85"),
                  "raw line separator on stdout");
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    ck_assert_msg(j != NULL, "not JSON on stdout: %.200s", line);
    ck_assert_str_eq(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
    return j;
}

/* A message that must come: its deadline stretches with Check's (CK_TIMEOUT_MULTIPLIER, which
 * `make test SAN=1` sets), since the server runs as slowly as the tests. */
static json_t *proc_recv(struct proc *p, int timeout_ms)
{
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    if (m && atoi(m) > 1 && atoi(m) <= 100) timeout_ms *= atoi(m);
    char *line = proc_line(p, timeout_ms);
    ck_assert_msg(line != NULL, "no message from the server within %d ms", timeout_ms);
    json_t *j = check_line(line);
    free(line);
    return j;
}

/* Read until the response to integer id `id`; notifications before it go to *notes (if given). */
static json_t *proc_wait(struct proc *p, json_int_t id, json_t **notes)
{
    if (notes) *notes = json_array();
    for (;;) {
        json_t *j = proc_recv(p, 30000);
        json_t *jid = json_object_get(j, "id");
        if (!json_object_get(j, "method") && json_is_integer(jid) && json_integer_value(jid) == id) return j;
        ck_assert_msg(json_object_get(j, "method") != NULL, "unexpected response while waiting for %lld: %s",
                      (long long)id, json_dumps(j, JSON_COMPACT));
        if (notes) json_array_append_new(*notes, j);
        else json_decref(j);
    }
}

static json_t *call(struct proc *p, json_int_t id, const char *method, const char *params_json)
{
    char line[8192];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\"%s%s}", (long long)id, method,
             params_json ? ",\"params\":" : "", params_json ? params_json : "");
    proc_send(p, line);
    return proc_wait(p, id, NULL);
}

static int err_code(json_t *resp)
{
    json_t *e = json_object_get(resp, "error");
    return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static const char *err_kind_of(json_t *resp)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(resp, "error"), "data"), "kind"));
}

static const char *err_msg(json_t *resp)
{
    const char *m = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
    return m ? m : "";
}

static void init(struct proc *p)
{
    json_t *r = call(p, 9000, "initialize", "{\"protocolVersion\":\"2025-06-18\",\"clientInfo\":{\"name\":\"check\"}}");
    ck_assert_msg(json_object_get(r, "result"), "initialize failed");
    json_decref(r);
    proc_send(p, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
}

static void assert_alive(struct proc *p)
{
    json_t *r = call(p, 9999, "ping", NULL);
    ck_assert_msg(json_is_object(json_object_get(r, "result")), "ping after bad input failed");
    json_decref(r);
}

/* Wait for exit; returns the exit status, or -1 if it had to be killed / died by a signal. */
static int proc_finish(struct proc *p, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1e3;
    int st;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) break;
        if (now_s() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            st = -1;
            break;
        }
        /* keep draining stdout so the server is never blocked on us */
        char tmp[65536];
        struct pollfd pf = {p->out, POLLIN, 0};
        if (!p->eof && poll(&pf, 1, 10) > 0) {
            ssize_t k = read(p->out, tmp, sizeof tmp);
            if (k <= 0) p->eof = true;
        } else if (p->eof) {
            usleep(10000);
        }
    }
    if (p->in >= 0) close(p->in);
    close(p->out);
    free(p->buf);
    p->in = -1;
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static void proc_close_in(struct proc *p)
{
    close(p->in);
    p->in = -1;
}

/* ---------------- transcript ---------------- */

/* expected may contain "<any>", "<number>", "<int>", "<string>" placeholders. */
static bool match(json_t *want, json_t *got, char *path, size_t cap)
{
    if (json_is_string(want)) {
        const char *w = json_string_value(want);
        if (!strcmp(w, "<any>")) return got != NULL;
        if (!strcmp(w, "<number>")) return json_is_number(got);
        if (!strcmp(w, "<int>")) return json_is_integer(got);
        if (!strcmp(w, "<string>")) return json_is_string(got);
    }
    if (!got || json_typeof(want) != json_typeof(got)) {
        if (json_is_number(want) && json_is_number(got)) return json_number_value(want) == json_number_value(got);
        return false;
    }
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        json_object_foreach(want, k, v) {
            size_t l = strlen(path);
            snprintf(path + l, cap - l, ".%s", k);
            if (!match(v, json_object_get(got, k), path, cap)) return false;
            path[l] = 0;
        }
        json_object_foreach(got, k, v) if (!json_object_get(want, k)) {
            size_t l = strlen(path);
            snprintf(path + l, cap - l, ".%s (not in the transcript)", k);
            return false;
        }
        return true;
    }
    if (json_is_array(want)) {
        if (json_array_size(want) != json_array_size(got)) return false;
        for (size_t i = 0; i < json_array_size(want); i++) {
            size_t l = strlen(path);
            snprintf(path + l, cap - l, "[%zu]", i);
            if (!match(json_array_get(want, i), json_array_get(got, i), path, cap)) return false;
            path[l] = 0;
        }
        return true;
    }
    return json_equal(want, got);
}

/* gen/progress notifications before the one that completes are paced by the clock (one per
 * 250 ms at most): a slow machine (valgrind, qemu) sends more of them. */
static bool timing_note(json_t *m)
{
    json_t *pa = json_object_get(m, "params");
    const char *method = json_string_value(json_object_get(m, "method"));
    return method && !strcmp(method, "gen/progress") &&
           json_integer_value(json_object_get(pa, "processed")) < json_integer_value(json_object_get(pa, "total"));
}

/* Replays protocol/NAME against `lmpipe serve ARGS`: each "send" line is written, each "recv"
 * line must match the next message (placeholders allowed); returns the number of "recv" lines. */
static int replay(const char *name, const char *const *args)
{
    char tpath[1024];
    const char *src = getenv("LMPIPE_SRC");
    snprintf(tpath, sizeof tpath, "%s/protocol/%s", src && *src ? src : ".", name);
    FILE *f = fopen(tpath, "r");
    ck_assert_msg(f != NULL, "cannot open %s", tpath);
    struct proc p;
    proc_start_v(&p, args, 0);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, n_recv = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t e;
        json_t *t = json_loads(line, 0, &e);
        ck_assert_msg(t != NULL, "%s line %d is not JSON: %s", name, lineno, e.text);
        json_t *send = json_object_get(t, "send"), *raw = json_object_get(t, "send_raw"), *recv = json_object_get(t, "recv");
        if (send) {
            char *s = json_dumps(send, JSON_COMPACT);
            proc_send(&p, s);
            free(s);
        } else if (raw) {
            proc_send(&p, json_string_value(raw));
        } else if (recv) {
            json_t *got = proc_recv(&p, 30000);
            while (timing_note(got) && !timing_note(recv)) {
                json_decref(got);
                got = proc_recv(&p, 30000);
            }
            char path[512] = "$";
            bool ok = match(recv, got, path, sizeof path);
            char *gs = json_dumps(got, JSON_COMPACT);
            ck_assert_msg(ok, "%s line %d: mismatch at %s\n  got: %.600s", name, lineno, path, gs);
            free(gs);
            json_decref(got);
            n_recv++;
        }
        json_decref(t);
    }
    free(line);
    fclose(f);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    return n_recv;
}

START_TEST(transcript_replay)
{
    const char *args[] = {"-m", model(), NULL};
    ck_assert_int_gt(replay("transcript.jsonl", args), 10);
}
END_TEST

/* A successful tool exchange (call, result, answer from the cached prefix) needs more positions
 * than stories260K's 128: the same weights with 1024. */
START_TEST(transcript_tools_replay)
{
    char dir[256], gguf[300];
    ck_assert_int_eq(tutil_mkdtemp(dir, sizeof dir, "rpctx"), 0);
    snprintf(gguf, sizeof gguf, "%s/stories1k.gguf", dir);
    struct ftool_edit_opts o = {.n_ctx = 1024};
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(ftool_edit(model(), gguf, &o, &ei) == 0, "%s", ei.msg);
    const char *args[] = {"-m", gguf, NULL};
    ck_assert_int_ge(replay("transcript-tools.jsonl", args), 8);
    tutil_rmtree(dir);
}
END_TEST

/* ---------------- generation ---------------- */

START_TEST(greedy_lily)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    json_t *r = call(&p, 1, "generate", "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0}");
    const char *text = json_string_value(json_object_get(json_object_get(r, "result"), "text"));
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, ", there was a little girl named Lily") != NULL, "got %s", text);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "result"), "finish_reason")), "length");
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* Deltas come before the response, are numbered 0.. without gaps, and add up to its text. */
static void check_stream(json_t *notes, json_t *resp, json_int_t id, bool cancelled)
{
    size_t idx = 0;
    char *acc = calloc(1, 1);
    size_t acc_len = 0;
    for (size_t i = 0; i < json_array_size(notes); i++) {
        json_t *n = json_array_get(notes, i);
        const char *m = json_string_value(json_object_get(n, "method"));
        json_t *pa = json_object_get(n, "params");
        if (json_integer_value(json_object_get(pa, "id")) != id) continue;
        if (!strcmp(m, "gen/progress")) {
            ck_assert_msg(idx == 0, "progress after a delta");
            continue;
        }
        ck_assert_str_eq(m, "gen/delta");
        ck_assert_int_eq(json_integer_value(json_object_get(pa, "index")), (json_int_t)idx);
        idx++;
        const char *t = json_string_value(json_object_get(pa, "text"));
        size_t tl = json_string_length(json_object_get(pa, "text"));
        acc = realloc(acc, acc_len + tl + 1);
        memcpy(acc + acc_len, t, tl + 1);
        acc_len += tl;
    }
    json_t *holder = cancelled ? json_object_get(json_object_get(resp, "error"), "data") : json_object_get(resp, "result");
    const char *text = json_string_value(json_object_get(holder, "text"));
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(acc, text);
    free(acc);
}

START_TEST(stream_order)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":\"g1\",\"method\":\"generate\",\"params\":{\"prompt\":\"Once upon a time\","
                  "\"max_tokens\":60,\"temperature\":0,\"stream\":true,\"return_tokens\":true}}");
    json_t *notes = json_array();
    json_t *resp = NULL;
    while (!resp) {
        json_t *j = proc_recv(&p, 30000);
        if (json_object_get(j, "method")) json_array_append_new(notes, j);
        else resp = j;
    }
    ck_assert_str_eq(json_string_value(json_object_get(resp, "id")), "g1");
    ck_assert_int_gt(json_array_size(notes), 10);
    /* ids are strings here: reuse the checker by mapping */
    size_t idx = 0;
    char acc[8192] = "";
    for (size_t i = 0; i < json_array_size(notes); i++) {
        json_t *pa = json_object_get(json_array_get(notes, i), "params");
        ck_assert_str_eq(json_string_value(json_object_get(pa, "id")), "g1");
        if (!json_object_get(pa, "text")) continue;
        ck_assert_int_eq(json_integer_value(json_object_get(pa, "index")), (json_int_t)idx++);
        ck_assert(json_is_array(json_object_get(pa, "tokens")));
        strncat(acc, json_string_value(json_object_get(pa, "text")), sizeof acc - strlen(acc) - 1);
    }
    json_t *res = json_object_get(resp, "result");
    ck_assert_str_eq(acc, json_string_value(json_object_get(res, "text")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(res, "usage"), "completion_tokens")), 60);
    ck_assert_msg(strstr(acc, "Lily") != NULL, "%s", acc);
    json_decref(notes);
    json_decref(resp);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

static void cancel_with(const char *cancel_fmt)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    /* The cancelled request never ends by itself (no token limit, the context shifts when full),
     * so the cancel always finds it running however the machine schedules the two processes; the
     * reference is the same greedy generation cut at 300 tokens (a few shifts, cheap under qemu). */
    json_t *full = call(&p, 1, "generate", "{\"prompt\":\"Once upon a time\",\"max_tokens\":300,\"temperature\":0,"
                                          "\"ignore_eos\":true,\"context_shift\":{\"keep\":1}}");
    const char *full_text = json_string_value(json_object_get(json_object_get(full, "result"), "text"));
    ck_assert_ptr_nonnull(full_text);
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"generate\",\"params\":{\"prompt\":\"Once upon a time\","
                  "\"max_tokens\":-1,\"temperature\":0,\"ignore_eos\":true,\"context_shift\":{\"keep\":1},\"stream\":true}}");
    json_t *notes = json_array();
    for (;;) { /* wait for the first delta, then cancel */
        json_t *j = proc_recv(&p, 30000);
        ck_assert_ptr_nonnull(json_object_get(j, "method"));
        bool delta = !strcmp(json_string_value(json_object_get(j, "method")), "gen/delta");
        json_array_append_new(notes, j);
        if (delta) break;
    }
    char line[256];
    snprintf(line, sizeof line, cancel_fmt, 2);
    proc_send(&p, line);
    json_t *more;
    json_t *resp = proc_wait(&p, 2, &more);
    json_array_extend(notes, more);
    json_decref(more);
    ck_assert_int_eq(err_code(resp), -32800);
    ck_assert_str_eq(err_kind_of(resp), "cancelled");
    json_t *data = json_object_get(json_object_get(resp, "error"), "data");
    ck_assert_str_eq(json_string_value(json_object_get(data, "finish_reason")), "cancelled");
    const char *part = json_string_value(json_object_get(data, "text"));
    ck_assert_ptr_nonnull(part);
    ck_assert_int_gt(strlen(part), 0);
    size_t cmp = strlen(part) < strlen(full_text) ? strlen(part) : strlen(full_text);
    ck_assert_msg(!strncmp(full_text, part, cmp), "partial text is not a prefix of the greedy text");
    check_stream(notes, resp, 2, true);
    json_decref(notes);
    json_decref(resp);
    json_decref(full);
    assert_alive(&p);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}

START_TEST(cancel_mcp) { cancel_with("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":%d,\"reason\":\"test\"}}"); }
END_TEST

START_TEST(cancel_lsp) { cancel_with("{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":%d}}"); }
END_TEST

START_TEST(sessions_interleaved)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    /* pipelined: create and use without waiting */
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session/create\"}");
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"session/create\",\"params\":{\"n_ctx\":64}}");
    json_t *a = proc_wait(&p, 1, NULL), *b = proc_wait(&p, 2, NULL);
    const char *sa = json_string_value(json_object_get(json_object_get(a, "result"), "session"));
    const char *sb = json_string_value(json_object_get(json_object_get(b, "result"), "session"));
    ck_assert_ptr_nonnull(sa);
    ck_assert_ptr_nonnull(sb);
    ck_assert_str_ne(sa, sb);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(b, "result"), "n_ctx")), 64);
    char params[512];
    snprintf(params, sizeof params, "{\"session\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}", sa);
    json_t *r1 = call(&p, 3, "generate", params);
    snprintf(params, sizeof params, "{\"session\":\"%s\",\"prompt\":\"The cat sat\",\"max_tokens\":8,\"temperature\":0}", sb);
    json_t *r2 = call(&p, 4, "generate", params);
    /* session a again, with its previous prompt as prefix: the cache is reused */
    snprintf(params, sizeof params, "{\"session\":\"%s\",\"prompt\":\"Once upon a time, there\",\"max_tokens\":4,\"temperature\":0}", sa);
    json_t *r3 = call(&p, 5, "generate", params);
    ck_assert_msg(json_object_get(r1, "result") && json_object_get(r2, "result") && json_object_get(r3, "result"), "generate failed");
    json_int_t cached = json_integer_value(json_object_get(json_object_get(json_object_get(r3, "result"), "usage"), "cached_tokens"));
    ck_assert_int_ge(cached, 5);
    /* a session serves one request at a time: a second one at once is overloaded, retryable.
     * Both lines go in one write and the first asks for 120 tokens, so the loop reads the
     * second while the first still runs even on a loaded machine (30 tokens take ~2 ms). */
    char two[1100];
    snprintf(params, sizeof params, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"generate\",\"params\":{\"session\":\"%s\",\"prompt\":\"Once\",\"max_tokens\":120}}", sa);
    snprintf(two, sizeof two, "%s\n%s", params, params);
    two[strlen(params) + 1 + strlen("{\"jsonrpc\":\"2.0\",\"id\":")] = '7';
    proc_send(&p, two);
    json_t *r7 = proc_wait(&p, 7, NULL);
    ck_assert_str_eq(err_kind_of(r7), "overloaded");
    ck_assert(json_is_true(json_object_get(json_object_get(json_object_get(r7, "error"), "data"), "retryable")));
    json_t *r6 = proc_wait(&p, 6, NULL);
    ck_assert_ptr_nonnull(json_object_get(r6, "result"));
    json_t *list = call(&p, 8, "session/list", NULL);
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(list, "result"), "sessions")), 2);
    snprintf(params, sizeof params, "{\"session\":\"%s\"}", sa);
    json_t *cl = call(&p, 9, "session/close", params);
    ck_assert(json_is_true(json_object_get(json_object_get(cl, "result"), "closed")));
    snprintf(params, sizeof params, "{\"session\":\"%s\",\"prompt\":\"x\"}", sa);
    json_t *gone = call(&p, 10, "generate", params);
    ck_assert_str_eq(err_kind_of(gone), "not_found");
    json_decref(a); json_decref(b); json_decref(r1); json_decref(r2); json_decref(r3);
    json_decref(r6); json_decref(r7); json_decref(list); json_decref(cl); json_decref(gone);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

START_TEST(stdin_closed_mid_generation)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"Once upon a time\","
                  "\"max_tokens\":-1,\"ignore_eos\":true,\"context_shift\":{\"keep\":1},\"stream\":true}}");
    json_t *first = proc_recv(&p, 30000);
    json_decref(first);
    double t0 = now_s();
    proc_close_in(&p);
    /* the in-flight request is still answered (-32800), then the process exits 0 */
    json_t *resp = proc_wait(&p, 1, NULL);
    ck_assert_int_eq(err_code(resp), -32800);
    json_decref(resp);
    ck_assert_int_eq(proc_finish(&p, 5000), 0);
    ck_assert_msg(now_s() - t0 < 3.0, "exit took %.2f s", now_s() - t0);
}
END_TEST

START_TEST(sigterm_exits_zero)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"Once\",\"max_tokens\":-1,\"ignore_eos\":true,\"context_shift\":{\"keep\":1},\"stream\":true}}");
    json_decref(proc_recv(&p, 30000));
    kill(p.pid, SIGTERM);
    json_t *resp = proc_wait(&p, 1, NULL);
    ck_assert_int_eq(err_code(resp), -32800);
    json_decref(resp);
    ck_assert_int_eq(proc_finish(&p, 5000), 0);
}
END_TEST

START_TEST(epipe_exits_cleanly)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    close(p.out); /* nobody reads stdout any more */
    p.out = open("/dev/null", O_RDONLY);
    p.eof = true;
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"Once\",\"max_tokens\":-1,\"stream\":true}}");
    int st;
    double end = now_s() + 5;
    pid_t r = 0;
    while (now_s() < end && (r = waitpid(p.pid, &st, WNOHANG)) == 0) usleep(10000);
    ck_assert_msg(r == p.pid, "server still running after its stdout closed");
    ck_assert_msg(WIFEXITED(st), "server died by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    close(p.in);
    close(p.out);
    free(p.buf);
}
END_TEST

/* Bytes the server wrote to its stdout pipe that we have not read yet. */
static int pipe_unread(int fd)
{
    int n = 0;
    ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* Sorts one message read in `backpressure`: a notification goes to notes, the response to one of
 * the n generate requests (ids 100..) to resp, the answer to stats request probe_id sets *waits,
 * *pending (its output.waits and pending_bytes) and *probe_done. */
static void bp_take(json_t *j, json_t *notes, json_t **resp, int n, int *got, json_int_t probe_id,
                    json_int_t *waits, json_int_t *pending, bool *probe_done)
{
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    if (json_object_get(j, "method")) {
        json_array_append_new(notes, j);
    } else if (id == probe_id) {
        json_t *out = json_object_get(json_object_get(j, "result"), "output");
        ck_assert_msg(out != NULL, "stats without result.output");
        *waits = json_integer_value(json_object_get(out, "waits"));
        *pending = json_integer_value(json_object_get(out, "pending_bytes"));
        *probe_done = true;
        json_decref(j);
    } else {
        ck_assert_msg(id >= 100 && id < 100 + n && !resp[id - 100], "unexpected response id %lld",
                      (long long)id);
        resp[id - 100] = j;
        (*got)++;
    }
}

START_TEST(backpressure)
{
    struct proc p;
    const char *args[] = {"-m", model(), "--write-buffer", "2048", NULL};
    proc_start_v(&p, args, 4096); /* a one-page pipe fills after a few dozen deltas */
    const int pipe_cap = fcntl(p.out, F_GETPIPE_SZ);
    ck_assert_int_ge(pipe_cap, 4096);
    init(&p);
    const int N = 4;
    for (int i = 0; i < N; i++) {
        char line[512];
        snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"generate\",\"params\":{\"prompt\":\"Once upon a time\","
                 "\"max_tokens\":120,\"temperature\":0,\"ignore_eos\":true,\"stream\":true,\"return_tokens\":true}}", 100 + i);
        proc_send(&p, line);
    }
    /* Stop reading until the worker has had to wait for the parent, however slow the machine
     * (a fixed sleep was too short under qemu-user on riscv64). The generations do not end
     * before 120 tokens (ignore_eos; the 128-token context holds them), so without reading:
     *   1. the pipe fills: wait until at most 1 KiB of it is free (every delta line is shorter,
     *      so the server cannot stop short of that unless it stopped generating);
     *   2. the server's writes queue up in its own buffer; once more than --write-buffer bytes
     *      are queued the worker must block: keep not reading for twice as long as 1. took (at
     *      least 0.25 s), which at the same speed produces about twice the 1 + 2 KiB needed;
     *   3. ask `stats` (answered by the I/O loop at once, behind what is queued) and read up to
     *      its answer, keeping every message for the checks below. output.waits > 0: done;
     *      otherwise the machine slowed down: repeat with twice the wait, for 60 s at most. */
    json_t *notes = json_array();
    json_t *resp[4] = {0};
    int got = 0;
    json_int_t waits = 0, pending = 0;
    const double deadline = now_s() + 60;
    double t_stop = now_s(), hold = 0;
    for (int probe = 0; waits == 0; probe++) {
        int unread;
        while ((unread = pipe_unread(p.out)) < pipe_cap - 1024) {
            ck_assert_msg(now_s() < deadline,
                          "backpressure: the server did not fill its %d-byte stdout pipe in 60 s "
                          "(%d bytes unread): is it generating?", pipe_cap, unread);
            usleep(10 * 1000);
        }
        double fill = now_s() - t_stop;
        hold = 2 * (hold > fill ? hold : fill);
        if (hold < 0.25) hold = 0.25;
        struct timespec ts = {(time_t)hold, (long)((hold - (double)(time_t)hold) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        json_int_t probe_id = 700 + probe;
        char line[128];
        snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"stats\"}", (long long)probe_id);
        proc_send(&p, line);
        bool probe_done = false;
        while (!probe_done) bp_take(proc_recv(&p, 30000), notes, resp, N, &got, probe_id, &waits, &pending, &probe_done);
        ck_assert_msg(waits > 0 || (got < N && now_s() < deadline),
                      "backpressure: the worker never waited for the parent (output.waits 0, %lld bytes "
                      "pending, %d of %d generations done, %d stats probes, last hold %.2f s): "
                      "--write-buffer 2048 not enforced?", (long long)pending, got, N, probe + 1, hold);
        t_stop = now_s();
        if (waits > 0)
            fprintf(stderr, "backpressure: pipe full after %.2f s, the worker waited within %.2f s more "
                    "(stats probe %d)\n", fill, hold, probe + 1);
    }
    /* nothing is lost once reading resumes: every delta in order, every response complete */
    bool no_probe = false;
    while (got < N) bp_take(proc_recv(&p, 30000), notes, resp, N, &got, -1, &waits, &pending, &no_probe);
    for (int i = 0; i < N; i++) {
        check_stream(notes, resp[i], 100 + i, false);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(resp[i], "result"), "text")),
                         json_string_value(json_object_get(json_object_get(resp[0], "result"), "text")));
    }
    for (int i = 0; i < N; i++) json_decref(resp[i]);
    json_decref(notes);
    json_t *st = call(&p, 7, "stats", NULL);
    json_t *out = json_object_get(json_object_get(st, "result"), "output");
    ck_assert_int_gt(json_integer_value(json_object_get(out, "waits")), 0);
    /* memory stays bounded: what waits to be written never exceeds the limit by much */
    ck_assert_int_lt(json_integer_value(json_object_get(out, "peak_pending_bytes")), 2048 + 8192);
    json_decref(st);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* ---------------- bad input ---------------- */

static json_t *send_recv(struct proc *p, const char *line)
{
    proc_send(p, line);
    return proc_recv(p, 30000);
}

static void expect_error(struct proc *p, const char *line, int code, bool null_id, const char *needle)
{
    json_t *r = send_recv(p, line);
    ck_assert_msg(err_code(r) == code, "%.80s: code %d, expected %d (%s)", line, err_code(r), code, err_msg(r));
    if (null_id) ck_assert_msg(json_is_null(json_object_get(r, "id")), "%.80s: id not null", line);
    ck_assert_ptr_nonnull(err_kind_of(r));
    ck_assert(json_is_boolean(json_object_get(json_object_get(json_object_get(r, "error"), "data"), "retryable")));
    if (needle) ck_assert_msg(strstr(err_msg(r), needle) != NULL, "'%s' not in '%s'", needle, err_msg(r));
    json_decref(r);
    assert_alive(p);
}

START_TEST(bad_input)
{
    struct proc p;
    proc_start(&p, true);
    /* before initialize: only ping */
    assert_alive(&p);
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"stats\"}", -32002, false, "not initialized");
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"stats\",\"params\":{\"a\":99999999999999999999}}", -32002,
                 false, "not initialized");
    init(&p);
    for (size_t i = 0; i < RPC_N_BAD_LINES; i++)
        expect_error(&p, rpc_bad_lines[i].line, rpc_bad_lines[i].code, rpc_bad_lines[i].null_id, rpc_bad_lines[i].needle);
    /* an integer outside 64 bits elsewhere: -32602 with the request's id and the integer's offset */
    {
        static const struct {
            const char *line, *id, *big;
        } big[] = {
            {"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"generate\",\"params\":{\"prompt\":\"a\",\"seed\":18446744073709551616}}",
             "7", "18446744073709551616"},
            {"{\"jsonrpc\":\"2.0\",\"id\":\"big\",\"method\":\"generate\",\"params\":{\"prompt\":\"a\",\"logit_bias\":[[1,2],[-99999999999999999999,1]]}}",
             "\"big\"", "-99999999999999999999"},
            {"{\"params\":{\"n\":9223372036854775808},\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"method\":\"ping\"}",
             "9223372036854775807", "9223372036854775808"},
        };
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
            json_t *r = send_recv(&p, big[i].line);
            ck_assert_int_eq(err_code(r), -32602);
            char *id = json_dumps(json_object_get(r, "id"), JSON_ENCODE_ANY);
            ck_assert_str_eq(id, big[i].id);
            free(id);
            char at[64];
            snprintf(at, sizeof at, "at byte %zu ", (size_t)(strstr(big[i].line, big[i].big) - big[i].line));
            ck_assert_msg(strstr(err_msg(r), at) != NULL, "'%s' not in '%s'", at, err_msg(r));
            json_decref(r);
        }
        /* the limits themselves are integers */
        json_t *r = send_recv(&p, "{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"method\":\"ping\",\"params\":{\"a\":-9223372036854775808}}");
        ck_assert_ptr_nonnull(json_object_get(r, "result"));
        json_decref(r);
    }
    /* n_ctx 0 means the default context (1 is refused: rpc_bad_lines.h) */
    {
        json_t *r = call(&p, 1, "session/create", "{\"n_ctx\":0}");
        json_t *info = call(&p, 2, "model/info", NULL);
        json_int_t want = json_integer_value(json_object_get(json_object_get(json_object_get(info, "result"), "model"), "n_ctx"));
        ck_assert_int_gt(want, 0);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "n_ctx")), want);
        json_decref(info);
        json_decref(r);
        r = call(&p, 3, "session/create", "{\"n_ctx\":2}");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "n_ctx")), 2);
        json_decref(r);
    }
    {
        char big[2048];
        memset(big, 'x', sizeof big);
        int n = snprintf(big, sizeof big, "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":\"");
        memset(big + n, 'i', 1500);
        strcpy(big + n + 1500, "\"}");
        expect_error(&p, big, -32600, true, "longer than");
    }
    /* a context overflow names the phrase agents retry on */
    {
        char line[8192];
        int n = snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"");
        for (int i = 0; i < 300; i++) n += snprintf(line + n, sizeof line - n, "Lily ");
        snprintf(line + n, sizeof line - n, "\"}}");
        json_t *r = send_recv(&p, line);
        ck_assert_str_eq(err_kind_of(r), "context_length_exceeded");
        ck_assert_msg(strstr(err_msg(r), "context_length_exceeded") != NULL, "%s", err_msg(r));
        json_decref(r);
    }
    /* unknown-id cancels and unknown notifications get no answer and harm nothing */
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"nope\"}}");
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":424242}}");
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\"}");
    proc_send(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"some/notification\",\"params\":{}}");
    proc_send(&p, "");
    assert_alive(&p);
    /* a 10 MB line: answered, discarded, and the stream goes on */
    {
        size_t n = 10u << 20;
        char *big = malloc(n + 1);
        memset(big, 'a', n);
        const char *head = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"";
        memcpy(big, head, strlen(head));
        big[n] = '\n';
        proc_send_raw(&p, big, n + 1);
        free(big);
        json_t *r = proc_recv(&p, 30000);
        ck_assert_int_eq(err_code(r), -32600);
        ck_assert(json_is_null(json_object_get(r, "id")));
        ck_assert_msg(strstr(err_msg(r), "exceeds the limit") != NULL, "%s", err_msg(r));
        json_decref(r);
        assert_alive(&p);
    }
    /* line separators in what we echo are escaped (checked by check_line) */
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\xe2\x80\xa8" "b\xc2\x85\"}", -32601, false, NULL);
    /* models that cannot be loaded leave the server, and the loaded model, as they were */
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"model/load\",\"params\":{\"path\":\"/nonexistent/model.gguf\"}}",
                 -32062, false, "cannot open");
    {
        char path[] = "/tmp/lmpipe_corrupt_XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "GGUF\x03\x00\x00\x00garbage", 15), 15);
        close(fd);
        char line[512];
        snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"model/load\",\"params\":{\"path\":\"%s\"}}", path);
        json_t *r = send_recv(&p, line);
        ck_assert_int_lt(err_code(r), -32050);
        ck_assert_int_gt(err_code(r), -32100);
        json_decref(r);
        unlink(path);
    }
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"model/load\",\"params\":{}}", -32602, false, "path");
    json_t *r = call(&p, 2, "generate", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}");
    ck_assert_msg(strstr(json_string_value(json_object_get(json_object_get(r, "result"), "text")), "Lily") != NULL, "model lost");
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* ---------------- grammars ---------------- */

static int run_batch(const char *const *args, const char *errfile);

/* A request built with jansson (params stolen); the response. */
static json_t *call_json(struct proc *p, json_int_t id, const char *method, json_t *params)
{
    json_t *req = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params", params);
    char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    proc_send(p, line);
    free(line);
    return proc_wait(p, id, NULL);
}

static json_t *res_obj(json_t *r) { return json_object_get(r, "result"); }
static const char *text_of(json_t *r) { return json_string_value(json_object_get(res_obj(r), "text")); }
static const char *finish_of(json_t *r) { return json_string_value(json_object_get(res_obj(r), "finish_reason")); }

#define PET_SCHEMA "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8}," \
                   "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":20}},\"required\":[\"name\",\"age\"]," \
                   "\"additionalProperties\":false}"

/* An answer under PET_SCHEMA: cut by max_tokens (0), or complete (1): an object with a short
 * name and an integral age in range, nothing else. */
static int check_pet(json_t *r)
{
    ck_assert_msg(res_obj(r) != NULL, "%s", err_msg(r));
    if (!strcmp(finish_of(r), "length")) return 0;
    ck_assert_str_eq(finish_of(r), "stop");
    json_error_t je;
    json_t *x = json_loads(text_of(r), 0, &je);
    ck_assert_msg(x != NULL, "not JSON (%s): %s", je.text, text_of(r));
    json_t *name = json_object_get(x, "name"), *age = json_object_get(x, "age");
    ck_assert_uint_eq(json_object_size(x), 2);
    ck_assert(json_is_string(name) && json_string_length(name) <= 8);
    ck_assert(json_is_number(age) && json_number_value(age) >= 0 && json_number_value(age) <= 20);
    ck_assert(json_number_value(age) == floor(json_number_value(age)));
    json_decref(x);
    return 1;
}

static json_t *gen_params(const char *prompt, int max_tokens, double temp, int seed)
{
    return json_pack("{s:s,s:i,s:f,s:i}", "prompt", prompt, "max_tokens", max_tokens, "temperature", temp, "seed", seed);
}

static json_t *chat_params(int max_tokens, double temp, int seed)
{
    return json_pack("{s:[{s:s,s:s}],s:i,s:f,s:i}", "messages", "role", "user", "content", "Tell me about a pet",
                     "max_tokens", max_tokens, "temperature", temp, "seed", seed);
}

START_TEST(grammar_requests)
{
    struct proc p;
    proc_start(&p, true);
    json_t *r = call(&p, 1, "initialize", "{}");
    ck_assert(json_is_true(json_object_get(json_object_get(res_obj(r), "capabilities"), "grammar")));
    json_decref(r);
    json_t *schema = json_loads(PET_SCHEMA, 0, NULL);
    /* grammar (GBNF text) on generate, greedy and sampled, streamed: the text is in the language */
    for (int seed = 0; seed < 4; seed++) {
        json_t *pa = gen_params("Once upon a time", 40, seed ? 1.5 : 0, seed);
        json_object_set_new(pa, "grammar", json_string("root ::= \" \" (\"yes\" | \"no\") \"!\"{1,3}\n"));
        json_object_set_new(pa, "stream", json_true());
        proc_send(&p, "");
        json_t *req = json_pack("{s:s,s:i,s:s,s:o}", "jsonrpc", "2.0", "id", 10 + seed, "method", "generate", "params", pa);
        char *line = json_dumps(req, JSON_COMPACT);
        proc_send(&p, line);
        free(line);
        json_decref(req);
        json_t *notes;
        r = proc_wait(&p, 10 + seed, &notes);
        const char *t = text_of(r);
        ck_assert_msg(t && (!strncmp(t, " yes!", 5) || !strncmp(t, " no!", 4)), "%s", t ? t : err_msg(r));
        ck_assert_str_eq(finish_of(r), "stop");
        check_stream(notes, r, 10 + seed, false);
        json_decref(notes);
        json_decref(r);
    }
    /* json_schema on generate; response_format json_schema (strict) on chat. (The integer may be
     * written -0.000...: the converter bounds no digits, and this model likes zeros.) */
    int pets = 0;
    for (int seed = 0; seed < 4; seed++) {
        json_t *pa = gen_params("Once upon a time", 80, 1.0, seed);
        json_object_set(pa, "json_schema", schema);
        pets += check_pet(r = call_json(&p, 20, "generate", pa));
        json_decref(r);
        pa = chat_params(70, 1.0, seed); /* the prompt is 51 of the 128 positions */
        json_object_set_new(pa, "response_format", json_pack("{s:s,s:{s:s,s:O,s:b}}", "type", "json_schema", "json_schema",
                                                             "name", "pet", "schema", schema, "strict", 1));
        pets += check_pet(r = call_json(&p, 21, "chat", pa));
        json_decref(r);
    }
    ck_assert_int_ge(pets, 4);
    /* response_format json_object: JSON, an object, when it completes; a text one changes nothing */
    int completed = 0;
    for (int seed = 0; seed < 6; seed++) {
        json_t *pa = chat_params(70, 1.5, seed);
        json_object_set_new(pa, "response_format", json_pack("{s:s}", "type", "json_object"));
        r = call_json(&p, 22, "chat", pa);
        const char *t = text_of(r);
        ck_assert_msg(t && t[0] == '{', "%s", t ? t : err_msg(r));
        if (!strcmp(finish_of(r), "stop")) {
            json_t *x = json_loads(t, 0, NULL);
            ck_assert_msg(json_is_object(x), "%s", t);
            json_decref(x);
            completed++;
        }
        json_decref(r);
    }
    json_t *pa = gen_params("Once upon a time", 12, 0, 0);
    json_object_set_new(pa, "response_format", json_pack("{s:s}", "type", "text"));
    r = call_json(&p, 23, "generate", pa);
    ck_assert_msg(strstr(text_of(r), "there was a little girl") != NULL, "%s", text_of(r));
    json_decref(r);
    /* ignore_eos with a grammar that completes: it ends cleanly, finish "stop" */
    pa = gen_params("Once upon a time", -1, 1.5, 3);
    json_object_set_new(pa, "grammar", json_string("root ::= [a-z]{2,6} \".\""));
    json_object_set_new(pa, "ignore_eos", json_true());
    r = call_json(&p, 24, "generate", pa);
    ck_assert_str_eq(finish_of(r), "stop");
    ck_assert_int_le(json_integer_value(json_object_get(json_object_get(res_obj(r), "usage"), "completion_tokens")), 7);
    json_decref(r);
    json_decref(schema);
    printf("grammar_requests: %d of 8 schema answers and %d of 6 json_object chats completed\n", pets, completed);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* Invalid grammars and schemas are -32602 with the parser's line:column or the keyword; a dead
 * end is -32073; none of it harms the process or a session. */
START_TEST(grammar_errors)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    json_t *r = call(&p, 1, "session/create", "{}");
    const char *sid = json_string_value(json_object_get(res_obj(r), "session"));
    ck_assert_ptr_nonnull(sid);
    char session[32];
    snprintf(session, sizeof session, "%s", sid);
    json_decref(r);
    json_t *pa = gen_params("Once upon a time", 12, 0, 0);
    json_object_set_new(pa, "session", json_string(session));
    r = call_json(&p, 2, "generate", pa);
    char first[256];
    snprintf(first, sizeof first, "%s", text_of(r));
    json_decref(r);
    static const struct {
        const char *method, *field, *value, *needle;
    } bad[] = {
        {"generate", "grammar", "\"root ::= \\\"a\\\" | \\n  [z-a]\"", "line 2:4"},
        {"generate", "grammar", "\"root ::= x\"", "line 1:10: undefined rule 'x'"},
        {"generate", "grammar", "\"x ::= \\\"a\\\"\"", "root"},
        {"chat", "grammar", "\"root ::= (((\"", "line 1:"},
        {"generate", "grammar", "5", "'grammar' must be a string"},
        {"generate", "grammar", "\"root ::= \\\"a\\\" <|nosuchtoken|>\"", "line 1:"},
        {"generate", "json_schema", "{\"type\":\"object\",\"patternProperties\":{\"^x\":{}}}", "patternProperties"},
        {"generate", "json_schema", "{\"type\":\"strings\"}", "json_schema"},
        {"generate", "json_schema", "\"object\"", "'json_schema' must be a JSON Schema"},
        {"chat", "response_format", "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"if\":{}}}}", "if"},
        {"chat", "response_format", "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}", "schema"},
        {"chat", "response_format", "{\"type\":\"json_schema\"}", "json_schema"},
        {"chat", "response_format", "{\"type\":\"xml\"}", "response_format.type"},
        {"chat", "response_format", "\"json\"", "response_format"},
        {"chat", "response_format", "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{},\"strict\":\"yes\"}}", "strict"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[1024];
        snprintf(line, sizeof line,
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"%s\",\"params\":{\"session\":\"%s\",%s\"%s\":%s}}", bad[i].method,
                 session, !strcmp(bad[i].method, "chat") ? "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," : "\"prompt\":\"x\",",
                 bad[i].field, bad[i].value);
        expect_error(&p, line, -32602, false, bad[i].needle);
    }
    /* two constraints at once */
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"grammar\":\"root ::= \\\"a\\\"\","
                     "\"json_schema\":{}}}", -32602, false, "not both");
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"grammar\":\"root ::= \\\"a\\\"\","
                     "\"response_format\":{\"type\":\"json_object\"}}}", -32602, false, "not several");
    /* a dead end: the only token the grammar allows is never generated (<unk>) */
    pa = gen_params("Once upon a time", 12, 0, 0);
    json_object_set_new(pa, "session", json_string(session));
    json_object_set_new(pa, "grammar", json_string("root ::= \"a\" <[0]>"));
    r = call_json(&p, 4, "generate", pa);
    ck_assert_int_eq(err_code(r), -32073);
    ck_assert_str_eq(err_kind_of(r), "constraint_dead_end");
    ck_assert_msg(strstr(err_msg(r), "dead end") != NULL, "%s", err_msg(r));
    /* what came before the dead end is in data.text */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(r, "error"), "data"), "text")), "a");
    json_decref(r);
    /* the session still works and still has its cache; so does the anonymous one */
    pa = gen_params("Once upon a time", 12, 0, 0);
    json_object_set_new(pa, "session", json_string(session));
    r = call_json(&p, 5, "generate", pa);
    ck_assert_str_eq(text_of(r), first);
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(res_obj(r), "usage"), "cached_tokens")), 0);
    json_decref(r);
    r = call_json(&p, 6, "generate", gen_params("Once upon a time", 12, 0, 0));
    ck_assert_str_eq(text_of(r), first);
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

START_TEST(grammar_batch)
{
    char dir[] = "/tmp/lmpipe_gbatch_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char in[256], out[256], err[256];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    FILE *f = fopen(in, "w");
    fputs("{\"id\":\"g\",\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"grammar\":\"root ::= \\\" \\\" (\\\"yes\\\" | \\\"no\\\")\"}\n"
          "{\"id\":\"s\",\"prompt\":\"Once upon a time\",\"max_tokens\":80,\"temperature\":0,\"json_schema\":" PET_SCHEMA "}\n"
          "{\"id\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":80,\"temperature\":0,"
          "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"pet\",\"schema\":" PET_SCHEMA "}}}\n"
          "{\"id\":\"bad\",\"prompt\":\"x\",\"grammar\":\"root ::= [\"}\n"
          "{\"id\":\"j\",\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":20,"
          "\"response_format\":{\"type\":\"json_object\"}}}\n",
          f);
    fclose(f);
    const char *args[] = {"-m", model(), in, "-o", out, NULL};
    ck_assert_int_eq(run_batch(args, err), 1); /* the bad line failed */
    size_t len;
    char *t = tutil_read(out, &len);
    ck_assert_ptr_nonnull(t);
    int n = 0;
    for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n"), n++) {
        json_t *j = check_line(l);
        const char *id = json_string_value(json_object_get(j, "id"));
        if (!strcmp(id, "bad")) {
            ck_assert_int_eq(err_code(j), -32602);
            ck_assert_msg(strstr(err_msg(j), "line 1:") != NULL, "%s", err_msg(j));
        } else if (!strcmp(id, "g")) {
            ck_assert_msg(!strcmp(text_of(j), " yes") || !strcmp(text_of(j), " no"), "%s", text_of(j));
        } else if (!strcmp(id, "j")) {
            ck_assert_msg(text_of(j) && text_of(j)[0] == '{', "%s", l);
        } else {
            check_pet(j);
        }
        json_decref(j);
    }
    ck_assert_int_eq(n, 5);
    free(t);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(no_model_then_load)
{
    struct proc p;
    proc_start(&p, false);
    init(&p);
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\"}}", -32070, false, "no model");
    char params[1200];
    snprintf(params, sizeof params, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"model/load\",\"params\":{\"path\":\"%s\",\"threads\":1}}", model());
    proc_send(&p, params);
    json_t *notes;
    json_t *r = proc_wait(&p, 2, &notes);
    ck_assert_ptr_nonnull(json_object_get(r, "result"));
    ck_assert_int_ge(json_array_size(notes), 2); /* model/progress */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(notes, 0), "method")), "model/progress");
    json_decref(notes);
    json_decref(r);
    r = call(&p, 3, "generate", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}");
    ck_assert_ptr_nonnull(json_object_get(r, "result"));
    json_decref(r);
    r = call(&p, 4, "model/unload", NULL);
    ck_assert(json_is_true(json_object_get(json_object_get(r, "result"), "unloaded")));
    json_decref(r);
    expect_error(&p, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tokenize\",\"params\":{\"text\":\"x\"}}", -32070, false, "no model");
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

START_TEST(stdin_is_a_file)
{
    char path[] = "/tmp/lmpipe_in_XXXXXX";
    int fd = mkstemp(path);
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tokenize\",\"params\":{\"text\":\"Once upon a time\"}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}";
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    lseek(fd, 0, SEEK_SET);
    int b[2];
    ck_assert_int_eq(pipe(b), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 0);
        dup2(b[1], 1);
        close(b[0]);
        execl(bin(), bin(), "serve", "-m", model(), (char *)NULL);
        _exit(127);
    }
    close(fd);
    close(b[1]);
    unlink(path);
    struct proc p = {pid, -1, b[0], NULL, 0, 0, false};
    /* ping is answered at once, tokenize when the worker has run it: collect by id */
    json_t *r[3] = {0};
    for (int i = 0; i < 3; i++) {
        json_t *j = proc_recv(&p, 30000);
        json_int_t id = json_integer_value(json_object_get(j, "id"));
        ck_assert(id >= 1 && id <= 3 && !r[id - 1]);
        r[id - 1] = j;
    }
    ck_assert(json_is_array(json_object_get(json_object_get(r[1], "result"), "tokens")));
    for (int i = 0; i < 3; i++) json_decref(r[i]);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* ---------------- snapshots, context, prompt cache ---------------- */

static char g_sdir[256];

static void sdir_setup(void) { ck_assert(tutil_mkdtemp(g_sdir, sizeof g_sdir, "rpcsnap") == 0); }
static void sdir_teardown(void) { tutil_rmtree(g_sdir); }

static const char *spath(const char *name) { return tutil_path(g_sdir, name); }

/* call() with printf-formatted params. */
static json_t *callf(struct proc *p, json_int_t id, const char *method, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static json_t *callf(struct proc *p, json_int_t id, const char *method, const char *fmt, ...)
{
    char params[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(params, sizeof params, fmt, ap);
    va_end(ap);
    return call(p, id, method, params);
}

static json_t *result_of(json_t *r, const char *key)
{
    json_t *res = json_object_get(r, "result");
    ck_assert_msg(res != NULL, "error: %s", err_msg(r));
    return json_object_get(res, key);
}

/* A new session's id (static buffer per call site index k). */
static const char *new_sess(struct proc *p, json_int_t id, const char *params, char *out)
{
    json_t *r = call(p, id, "session/create", params);
    snprintf(out, 24, "%s", json_string_value(result_of(r, "session")));
    json_decref(r);
    return out;
}

#define SNAP_PROMPT "Once upon a time there was a little girl named Lily"

/* text and cached_tokens of a greedy 8-token generation in a session */
static void sess_gen(struct proc *p, json_int_t id, const char *sid, char *text, size_t cap, json_int_t *cached)
{
    json_t *r = callf(p, id, "generate", "{\"session\":\"%s\",\"prompt\":\"" SNAP_PROMPT "\",\"max_tokens\":8,"
                      "\"temperature\":0}", sid);
    snprintf(text, cap, "%s", json_string_value(result_of(r, "text")));
    if (cached) *cached = json_integer_value(json_object_get(result_of(r, "usage"), "cached_tokens"));
    json_decref(r);
}

/* session/save, session/load: a load into a fresh session continues exactly as the saved one. */
START_TEST(snapshot_roundtrip)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    char a[24], b[24], ta[512], tb[512];
    new_sess(&p, 1, "{\"n_ctx\":128}", a);
    json_int_t cached;
    sess_gen(&p, 2, a, ta, sizeof ta, &cached);
    json_t *r = callf(&p, 3, "session/save", "{\"session\":\"%s\",\"path\":\"%s\"}", a, spath("a.snap"));
    json_int_t n = json_integer_value(result_of(r, "n_tokens"));
    ck_assert_int_gt(n, 8);
    struct stat st;
    ck_assert_int_eq(stat(spath("a.snap"), &st), 0);
    ck_assert_int_eq(json_integer_value(result_of(r, "bytes")), st.st_size);
    json_decref(r);
    new_sess(&p, 4, "{\"n_ctx\":128}", b);
    r = callf(&p, 5, "session/load", "{\"session\":\"%s\",\"path\":\"%s\"}", b, spath("a.snap"));
    ck_assert_int_eq(json_integer_value(result_of(r, "n_tokens")), n);
    json_decref(r);
    r = call(&p, 6, "session/list", NULL);
    json_t *ss = result_of(r, "sessions");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(ss, 1), "n_tokens")), n);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ss, 1), "kv_type")), "f16");
    json_decref(r);
    sess_gen(&p, 7, b, tb, sizeof tb, &cached);
    ck_assert_str_eq(tb, ta);
    ck_assert_int_gt(cached, 8);
    /* the anonymous session too */
    r = callf(&p, 8, "session/load", "{\"path\":\"%s\"}", spath("a.snap"));
    ck_assert_int_eq(json_integer_value(result_of(r, "n_tokens")), n);
    json_decref(r);
    r = call(&p, 9, "generate", "{\"prompt\":\"" SNAP_PROMPT "\",\"max_tokens\":8,\"temperature\":0}");
    ck_assert_str_eq(json_string_value(result_of(r, "text")), ta);
    json_decref(r);
    r = callf(&p, 10, "session/save", "{\"path\":\"%s\"}", spath("anon.snap"));
    ck_assert_int_eq(json_integer_value(result_of(r, "n_tokens")), n); /* the same tokens again */
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* Write a copy of src with byte off xor-ed (off < 0: nothing), cut to len (0: as is), or with the
 * version field set to `version` and the checksum fixed (version > 0). */
static void variant(const char *src, const char *dst, long off, size_t cut, uint32_t version)
{
    size_t len;
    uint8_t *b = (uint8_t *)tutil_read(src, &len);
    ck_assert_ptr_nonnull(b);
    if (off >= 0) b[off] ^= 0x20;
    if (cut) len = cut;
    if (version) {
        for (int i = 0; i < 4; i++) b[8 + i] = (uint8_t)(version >> (8 * i));
        uint64_t h = util_xxh64(b, len - 8, 0);
        for (int i = 0; i < 8; i++) b[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
    }
    tutil_write(dst, b, len);
    free(b);
}

/* The refusal list through the protocol, each with its code and data.kind, and the session
 * unchanged: after the failed load it generates what its twin (same history, no load) does. */
START_TEST(snapshot_refusals)
{
    /* a snapshot of another model with the same shapes (stories260K-F16) */
    struct proc o;
    const char *oargs[] = {"-m", tutil_shared("models/stories260K-F16.gguf"), NULL};
    proc_start_v(&o, oargs, 0);
    init(&o);
    json_t *r = call(&o, 1, "generate", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4}");
    json_decref(r);
    r = callf(&o, 2, "session/save", "{\"path\":\"%s\"}", spath("other.snap"));
    json_decref(r);
    proc_close_in(&o);
    ck_assert_int_eq(proc_finish(&o, 10000), 0);

    struct proc p;
    proc_start(&p, true);
    init(&p);
    char good[24], f32[24], t1[24], t2[24];
    new_sess(&p, 1, "{\"n_ctx\":128}", good);
    char text[512];
    sess_gen(&p, 2, good, text, sizeof text, NULL);
    json_decref(callf(&p, 3, "session/save", "{\"session\":\"%s\",\"path\":\"%s\"}", good, spath("good.snap")));
    new_sess(&p, 4, "{\"n_ctx\":128,\"kv_type\":\"f32\"}", f32);
    sess_gen(&p, 5, f32, text, sizeof text, NULL);
    json_decref(callf(&p, 6, "session/save", "{\"session\":\"%s\",\"path\":\"%s\"}", f32, spath("f32.snap")));
    json_decref(callf(&p, 7, "generate", "{\"session\":\"%s\",\"prompt\":\"" SNAP_PROMPT ". She loved to play "
                      "outside\",\"max_tokens\":20}", good));
    json_decref(callf(&p, 8, "session/save", "{\"session\":\"%s\",\"path\":\"%s\"}", good, spath("big.snap")));
    size_t len = 0;
    char *gb = tutil_read(spath("good.snap"), &len);
    ck_assert_ptr_nonnull(gb);
    free(gb);
    variant(spath("good.snap"), spath("flip-hdr.snap"), 17, 0, 0);       /* fingerprint */
    variant(spath("good.snap"), spath("flip-tok.snap"), 70, 0, 0);       /* a token id */
    variant(spath("good.snap"), spath("flip-data.snap"), (long)len / 2, 0, 0);
    variant(spath("good.snap"), spath("flip-sum.snap"), (long)len - 2, 0, 0);
    variant(spath("good.snap"), spath("cut.snap"), -1, len - 1, 0);
    variant(spath("good.snap"), spath("cut-hdr.snap"), -1, 40, 0);
    variant(spath("good.snap"), spath("v2.snap"), -1, 0, 2);
    const struct {
        const char *file;
        const char *kind;
        int code;
        bool small;
    } cases[] = {
        {"flip-hdr.snap", "snapshot_corrupt", ERR_SNAP_CORRUPT, false},
        {"flip-tok.snap", "snapshot_corrupt", ERR_SNAP_CORRUPT, false},
        {"flip-data.snap", "snapshot_corrupt", ERR_SNAP_CORRUPT, false},
        {"flip-sum.snap", "snapshot_corrupt", ERR_SNAP_CORRUPT, false},
        {"cut.snap", "snapshot_corrupt", ERR_SNAP_CORRUPT, false},
        {"cut-hdr.snap", "snapshot_corrupt", ERR_SNAP_CORRUPT, false},
        {"v2.snap", "snapshot_version", ERR_SNAP_VERSION, false},
        {"other.snap", "snapshot_model_mismatch", ERR_SNAP_MODEL, false},
        {"f32.snap", "snapshot_kv_mismatch", ERR_SNAP_KV, false},
        {"big.snap", "snapshot_kv_mismatch", ERR_SNAP_KV, true}, /* ~40 tokens into a 24-token context */
        {"", "io_error", ERR_IO, false},                          /* the directory itself */
        {"missing.snap", "io_error", ERR_IO, false},
    };
    json_int_t id = 100;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *ctx = cases[i].small ? "{\"n_ctx\":24}" : "{\"n_ctx\":128}";
        new_sess(&p, id++, ctx, t1);
        new_sess(&p, id++, ctx, t2);
        /* the same history in both twins */
        json_decref(callf(&p, id++, "generate", "{\"session\":\"%s\",\"prompt\":\"Once upon a time there\",\"max_tokens\":3}", t1));
        json_decref(callf(&p, id++, "generate", "{\"session\":\"%s\",\"prompt\":\"Once upon a time there\",\"max_tokens\":3}", t2));
        r = callf(&p, id++, "session/load", "{\"session\":\"%s\",\"path\":\"%s\"}", t1,
                  cases[i].file[0] ? spath(cases[i].file) : g_sdir);
        ck_assert_msg(err_code(r) == -32050 + cases[i].code, "%s: code %d (%s)", cases[i].file, err_code(r), err_msg(r));
        ck_assert_str_eq(err_kind_of(r), cases[i].kind);
        ck_assert(json_is_false(json_object_get(json_object_get(json_object_get(r, "error"), "data"), "retryable")));
        json_decref(r);
        char x1[512], x2[512];
        json_int_t c1, c2;
        sess_gen(&p, id++, t1, x1, sizeof x1, &c1);
        sess_gen(&p, id++, t2, x2, sizeof x2, &c2);
        ck_assert_msg(!strcmp(x1, x2) && c1 == c2 && c1 > 0, "%s: the session changed ('%s' %lld vs '%s' %lld)",
                      cases[i].file, x1, (long long)c1, x2, (long long)c2);
        json_decref(callf(&p, id++, "session/close", "{\"session\":\"%s\"}", t1));
        json_decref(callf(&p, id++, "session/close", "{\"session\":\"%s\"}", t2));
    }
    /* params: a path is required, kv_type must be a type this model runs */
    r = callf(&p, id++, "session/load", "{\"session\":\"%s\"}", good);
    ck_assert_int_eq(err_code(r), -32602);
    json_decref(r);
    r = callf(&p, id++, "session/save", "{\"session\":\"%s\",\"path\":\"\"}", good);
    ck_assert_int_eq(err_code(r), -32602);
    json_decref(r);
    r = call(&p, id++, "session/save", "{\"session\":\"nope\",\"path\":\"/tmp/x\"}");
    ck_assert_str_eq(err_kind_of(r), "not_found");
    json_decref(r);
    r = call(&p, id++, "session/create", "{\"kv_type\":\"f8\"}");
    ck_assert_int_eq(err_code(r), -32602);
    json_decref(r);
    r = call(&p, id++, "session/create", "{\"kv_type\":\"q8_0\"}");
    ck_assert_str_eq(err_kind_of(r), "unsupported"); /* stories260K's head size is 8 */
    ck_assert_ptr_nonnull(strstr(err_msg(r), "multiple of 32"));
    json_decref(r);
    r = callf(&p, id++, "session/save", "{\"session\":\"%s\",\"path\":\"%s\"}", good, spath("no/such/dir.snap"));
    ck_assert_str_eq(err_kind_of(r), "io_error");
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* A full context: context_length_exceeded (the text so far in data), or with context_shift the
 * generation goes on past it. */
START_TEST(context_full)
{
    struct proc p;
    proc_start(&p, true);
    init(&p);
    char sid[24];
    new_sess(&p, 1, "{\"n_ctx\":32}", sid);
    json_t *r = callf(&p, 2, "generate", "{\"session\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":60,"
                      "\"temperature\":0,\"ignore_eos\":true}", sid);
    ck_assert_int_eq(err_code(r), -32066);
    ck_assert_str_eq(err_kind_of(r), "context_length_exceeded");
    ck_assert_ptr_nonnull(strstr(err_msg(r), "context_length_exceeded"));
    json_t *d = json_object_get(json_object_get(r, "error"), "data");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(d, "text")), "there was a little girl"));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(d, "usage"), "completion_tokens")), 32 - 5);
    json_decref(r);
    r = callf(&p, 3, "generate", "{\"session\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":60,"
              "\"temperature\":0,\"ignore_eos\":true,\"context_shift\":{\"keep\":4}}", sid);
    ck_assert_str_eq(json_string_value(result_of(r, "finish_reason")), "length");
    ck_assert_int_eq(json_integer_value(json_object_get(result_of(r, "usage"), "completion_tokens")), 60);
    json_decref(r);
    r = callf(&p, 4, "generate", "{\"session\":\"%s\",\"prompt\":\"Once\",\"context_shift\":{\"keep\":-1}}", sid);
    ck_assert_int_eq(err_code(r), -32602);
    json_decref(r);
    r = callf(&p, 5, "generate", "{\"session\":\"%s\",\"prompt\":\"Once\",\"context_shift\":4}", sid);
    ck_assert_int_eq(err_code(r), -32602);
    json_decref(r);
    /* keep >= the context: nothing can be dropped */
    r = callf(&p, 6, "generate", "{\"session\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":60,"
              "\"ignore_eos\":true,\"context_shift\":{\"keep\":40}}", sid);
    ck_assert_str_eq(err_kind_of(r), "context_length_exceeded");
    json_decref(r);
    /* the hook was the request's only: the next request without context_shift fails again */
    r = callf(&p, 7, "generate", "{\"session\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":60,"
              "\"ignore_eos\":true}", sid);
    ck_assert_str_eq(err_kind_of(r), "context_length_exceeded");
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

static json_t *pcache_stats(struct proc *p, json_int_t id)
{
    json_t *r = call(p, id, "stats", NULL);
    json_t *pc = json_incref(result_of(r, "prompt_cache"));
    json_decref(r);
    return pc;
}

static json_int_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "'%s' is not an integer", k);
    return json_integer_value(v);
}

#define PC_PROMPT "Once upon a time there was a little girl named Lily. She loved to play outside in the park with her dog"

/* --prompt-cache through serve: a second process starts from the first one's entry; stats say so;
 * two processes generating at once on one directory agree with a process without a cache. */
START_TEST(prompt_cache_serve)
{
    struct proc p;
    const char *noc[] = {"-m", model(), NULL};
    proc_start_v(&p, noc, 0);
    init(&p);
    json_t *r = call(&p, 1, "stats", NULL);
    ck_assert(json_is_null(result_of(r, "prompt_cache")));
    json_decref(r);
    r = call(&p, 2, "generate", "{\"prompt\":\"" PC_PROMPT "\",\"max_tokens\":16,\"temperature\":0}");
    char want[512];
    snprintf(want, sizeof want, "%s", json_string_value(result_of(r, "text")));
    json_int_t n_prompt = json_integer_value(json_object_get(result_of(r, "usage"), "prompt_tokens"));
    json_decref(r);
    proc_close_in(&p);
    proc_finish(&p, 10000);

    const char *args[] = {"-m", model(), "--prompt-cache", spath("pc"), "--prompt-cache-min", "16", NULL};
    for (int round = 0; round < 2; round++) {
        proc_start_v(&p, args, 0);
        init(&p);
        json_t *pc = pcache_stats(&p, 10);
        ck_assert_int_eq(jint(pc, "entries"), round);
        ck_assert_int_eq(jint(pc, "min_tokens"), 16);
        ck_assert_int_eq(jint(pc, "max_bytes"), (json_int_t)1 << 30);
        ck_assert_str_eq(json_string_value(json_object_get(pc, "dir")), spath("pc"));
        json_decref(pc);
        r = call(&p, 11, "generate", "{\"prompt\":\"" PC_PROMPT "\",\"max_tokens\":16,\"temperature\":0}");
        ck_assert_str_eq(json_string_value(result_of(r, "text")), want);
        ck_assert_int_eq(json_integer_value(json_object_get(result_of(r, "usage"), "cached_tokens")),
                         round ? n_prompt - 2 : 0);
        json_decref(r);
        pc = pcache_stats(&p, 12);
        static const char *const fields[] = {"lookups", "hits", "misses", "hit_tokens", "stores", "evictions",
                                             "errors", "bytes_read", "bytes_written", "entries", "disk_bytes"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) (void)jint(pc, fields[i]);
        ck_assert_int_eq(jint(pc, "lookups"), 1);
        ck_assert_int_eq(jint(pc, "hits"), round);
        ck_assert_int_eq(jint(pc, "misses"), 1 - round);
        ck_assert_int_eq(jint(pc, "hit_tokens"), round ? n_prompt - 1 : 0);
        ck_assert_int_eq(jint(pc, "stores"), 1 - round);
        ck_assert_int_eq(jint(pc, "errors"), 0);
        ck_assert_int_eq(jint(pc, "entries"), 1);
        ck_assert_int_gt(jint(pc, "disk_bytes"), 0);
        if (round) ck_assert_int_ge(jint(pc, "bytes_read"), jint(pc, "disk_bytes"));
        else ck_assert_int_eq(jint(pc, "bytes_written"), jint(pc, "disk_bytes"));
        json_decref(pc);
        proc_close_in(&p);
        ck_assert_int_eq(proc_finish(&p, 10000), 0);
    }
    /* two servers at once on one small directory, prompts that share prefixes */
    const char *args2[] = {"-m", model(), "--prompt-cache", spath("pc2"), "--prompt-cache-min", "8",
                           "--prompt-cache-max", "64k", NULL};
    struct proc q[2];
    for (int k = 0; k < 2; k++) {
        proc_start_v(&q[k], args2, 0);
        init(&q[k]);
    }
    for (int it = 0; it < 16; it++) {
        int words = 6 + (it * 5) % 13;
        char prompt[256] = "";
        static const char *w[] = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named",
                                  "Lily.", "She", "loved", "to", "play", "outside", "in", "the", "park"};
        for (int i = 0; i < words; i++) snprintf(prompt + strlen(prompt), sizeof prompt - strlen(prompt), "%s%s", i ? " " : "", w[i]);
        char line[600];
        for (int k = 0; k < 2; k++) { /* a new session each time: nothing in memory, the cache decides */
            char sid[24];
            new_sess(&q[k], 1000 + it, "{}", sid);
            snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"generate\",\"params\":"
                     "{\"session\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":8,\"temperature\":0}}", 100 + it, sid,
                     prompt);
            proc_send(&q[k], line);
        }
        json_t *a = proc_wait(&q[0], 100 + it, NULL), *b = proc_wait(&q[1], 100 + it, NULL);
        ck_assert_str_eq(json_string_value(result_of(a, "text")), json_string_value(result_of(b, "text")));
        json_decref(a);
        json_decref(b);
        for (int k = 0; k < 2; k++) json_decref(callf(&q[k], 2000 + it, "session/close", "{\"session\":\"s%d\"}", it + 1));
    }
    json_int_t hits = 0;
    for (int k = 0; k < 2; k++) {
        json_t *pc = pcache_stats(&q[k], 900);
        ck_assert_int_eq(jint(pc, "errors"), 0);
        ck_assert_int_le(jint(pc, "disk_bytes"), 64 * 1024);
        hits += jint(pc, "hits");
        json_decref(pc);
        proc_close_in(&q[k]);
        ck_assert_int_eq(proc_finish(&q[k], 10000), 0);
    }
    ck_assert_int_gt(hits, 0);
}
END_TEST

/* ---------------- batch ---------------- */

static int run_batch(const char *const *args, const char *errfile)
{
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = bin();
        argv[n++] = "batch";
        for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
        argv[n] = NULL;
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static size_t count_lines(const char *path, const char *needle)
{
    size_t len, n = 0;
    char *t = tutil_read(path, &len);
    if (!t) return 0;
    for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *j = check_line(l);
        json_decref(j);
        if (!needle || strstr(l, needle)) n++;
    }
    free(t);
    return n;
}

START_TEST(batch_resume_shard)
{
    char dir[] = "/tmp/lmpipe_batch_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char in[256], out[256], err[256], o0[256], o1[256];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    snprintf(o0, sizeof o0, "%s/o0.jsonl", dir);
    snprintf(o1, sizeof o1, "%s/o1.jsonl", dir);
    FILE *f = fopen(in, "w");
    fputs("{\"id\":\"a\",\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}\n"
          "{\"id\":\"b\",\"method\":\"generate\",\"params\":{\"prompt\":\"Lily\",\"max_tokens\":4}}\n"
          "not json\n"
          "{\"id\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4}\n"
          "{\"id\":\"d\",\"prompt\":5}\n"
          "{\"id\":\"a\",\"prompt\":\"dup\"}\n",
          f);
    fclose(f);
    const char *args[] = {"-m", model(), in, "-o", out, NULL};
    ck_assert_int_eq(run_batch(args, err), 1); /* some lines failed */
    ck_assert_uint_eq(count_lines(out, NULL), 6);
    ck_assert_uint_eq(count_lines(out, "\"result\""), 3);
    ck_assert_uint_eq(count_lines(out, "little girl named Lily"), 1);
    /* resume: a torn last line is dropped, done ids skipped, only the missing work redone */
    size_t len;
    char *t = tutil_read(out, &len);
    char *first_nl = strchr(t, '\n');
    f = fopen(out, "w");
    fwrite(t, 1, (size_t)(first_nl - t) + 1, f); /* keep only "a" */
    fputs("{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"resu", f); /* torn */
    fclose(f);
    free(t);
    const char *args2[] = {"-m", model(), in, "-o", out, "--resume", NULL};
    ck_assert_int_eq(run_batch(args2, err), 1);
    /* a (kept), then b, the parse error, c, d again; the second "a" is now skipped as done */
    ck_assert_uint_eq(count_lines(out, NULL), 5);
    ck_assert_uint_eq(count_lines(out, "\"id\":\"a\""), 1);
    ck_assert_uint_eq(count_lines(out, "\"id\":\"b\",\"result\""), 1);
    /* the exit status describes the whole output file: an error an earlier run left in OUT
     * keeps a resumed run at 1 even when everything it ran itself succeeded */
    {
        char in3[300], out3[300], in4[300], out4[300];
        snprintf(in3, sizeof in3, "%s/in3.jsonl", dir);
        snprintf(out3, sizeof out3, "%s/out3.jsonl", dir);
        snprintf(in4, sizeof in4, "%s/in4.jsonl", dir);
        snprintf(out4, sizeof out4, "%s/out4.jsonl", dir);
        f = fopen(in3, "w");
        fputs("{\"id\":\"e\",\"prompt\":5}\n", f);
        fclose(f);
        const char *r3[] = {"-m", model(), in3, "-o", out3, NULL};
        ck_assert_int_eq(run_batch(r3, err), 1);
        f = fopen(in3, "a");
        fputs("{\"id\":\"f\",\"prompt\":\"Lily\",\"max_tokens\":2}\n", f);
        fclose(f);
        const char *r3b[] = {"-m", model(), in3, "-o", out3, "--resume", NULL};
        ck_assert_int_eq(run_batch(r3b, err), 1);
        ck_assert_uint_eq(count_lines(out3, NULL), 2);
        ck_assert_uint_eq(count_lines(out3, "\"id\":\"f\",\"result\""), 1);
        size_t elen;
        char *etext = tutil_read(err, &elen);
        ck_assert_msg(etext && strstr(etext, "1 of the lines already in"), "stderr: %s", etext ? etext : "?");
        free(etext);
        ck_assert_int_eq(run_batch(r3b, err), 1); /* nothing left to run: still the file's status */
        /* all results: 0, fresh and resumed */
        f = fopen(in4, "w");
        fputs("{\"id\":\"f\",\"prompt\":\"Lily\",\"max_tokens\":2}\n", f);
        fclose(f);
        const char *r4[] = {"-m", model(), in4, "-o", out4, NULL};
        const char *r4b[] = {"-m", model(), in4, "-o", out4, "--resume", NULL};
        ck_assert_int_eq(run_batch(r4, err), 0);
        ck_assert_int_eq(run_batch(r4b, err), 0);
        /* an integer outside 64 bits fails its own line, answered with its id */
        f = fopen(in4, "w");
        fputs("{\"id\":\"g\",\"prompt\":\"x\",\"seed\":99999999999999999999}\n"
              "{\"id\":\"h\",\"prompt\":\"Lily\",\"max_tokens\":2}\n", f);
        fclose(f);
        ck_assert_int_eq(run_batch(r4, err), 1);
        ck_assert_uint_eq(count_lines(out4, "\"id\":\"g\",\"error\":{\"code\":-32602"), 1);
        ck_assert_uint_eq(count_lines(out4, "does not fit in 64 bits"), 1);
        ck_assert_uint_eq(count_lines(out4, "\"id\":\"h\",\"result\""), 1);
    }
    /* shards partition the input */
    const char *s0[] = {"-m", model(), in, "-o", o0, "--shard", "0/2", NULL};
    const char *s1[] = {"-m", model(), in, "-o", o1, "--shard", "1/2", NULL};
    run_batch(s0, err);
    run_batch(s1, err);
    ck_assert_uint_eq(count_lines(o0, NULL) + count_lines(o1, NULL), 6);
    ck_assert_uint_eq(count_lines(o0, "\"id\":\"c\""), 0);
    ck_assert_uint_eq(count_lines(o1, "\"id\":\"c\""), 1);
    /* usage errors */
    const char *bad1[] = {"-m", model(), in, "--shard", "2/2", NULL};
    ck_assert_int_eq(run_batch(bad1, err), 2);
    const char *bad2[] = {"-m", model(), in, "--resume", NULL};
    ck_assert_int_eq(run_batch(bad2, err), 2);
    const char *bad3[] = {"-m", "/nonexistent.gguf", in, NULL};
    ck_assert_int_eq(run_batch(bad3, err), 1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---------------- chat templates (Jinja) ---------------- */

/* A request whose params are built as JSON (stolen): the answer to id. */
static json_t *call_obj(struct proc *p, json_int_t id, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params", params);
    char *line = json_dumps(m, JSON_COMPACT);
    proc_send(p, line);
    free(line);
    json_decref(m);
    return proc_wait(p, id, NULL);
}

static json_t *result_key(json_t *resp, const char *key)
{
    return json_object_get(json_object_get(resp, "result"), key);
}

/* A case of ../shared/chat/jinja/expected.json as chat params: messages, tools,
 * add_generation_prompt and the fixture's bos/eos as chat_template_kwargs; *want its text. */
static json_t *fixture_params(const char *tmpl, const char *name, const char **want, json_t **fx)
{
    json_error_t je;
    *fx = json_load_file(tutil_shared("chat/jinja/expected.json"), 0, &je);
    ck_assert_msg(*fx != NULL, "expected.json: %s", je.text);
    json_t *tj = json_object_get(json_object_get(*fx, "templates"), tmpl), *cases = json_object_get(tj, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *cs = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(cs, "name")), name) != 0) continue;
        json_t *pr = json_pack("{s:O,s:O,s:O}", "messages", json_object_get(cs, "messages"), "add_generation_prompt",
                               json_object_get(cs, "add_generation_prompt"), "chat_template_kwargs",
                               json_object_get(tj, "kwargs"));
        if (json_object_get(cs, "tools")) json_object_set(pr, "tools", json_object_get(cs, "tools"));
        *want = json_string_value(json_object_get(cs, "expected"));
        return pr;
    }
    ck_abort_msg("no case %s/%s", tmpl, name);
    return NULL;
}

static void start_with_template(struct proc *p, const char *model_path, const char *tmpl_path)
{
    const char *args[] = {"-m", model_path, "--chat-template-file", tmpl_path, NULL};
    proc_start_v(p, args, 0);
    init(p);
}

START_TEST(jinja_file_renders_as_jinja2)
{
    const char *qwen = tutil_shared("chat/jinja/Qwen-Qwen2.5-7B-Instruct.jinja");
    struct proc p;
    start_with_template(&p, model(), qwen);
    json_t *r = call(&p, 1, "model/info", NULL);
    json_t *used = json_object_get(result_key(r, "model"), "chat_template_used");
    ck_assert_str_eq(json_string_value(json_object_get(used, "source")), "file");
    ck_assert(json_is_true(json_object_get(used, "jinja")));
    ck_assert_str_eq(json_string_value(json_object_get(used, "name")), qwen);
    ck_assert_str_eq(json_string_value(json_object_get(used, "end_of_turn")), "<|im_end|>");
    json_decref(r);
    /* chat/render gives jinja2's text: a plain conversation, tools with a call and its result
     * (arguments as objects, then as OpenAI's JSON strings), parallel calls */
    static const char *const names[] = {"system_user", "tool_call_and_result", "parallel_tool_calls"};
    for (int i = 0; i < 3; i++) {
        json_t *fx;
        const char *want;
        json_t *params = fixture_params("Qwen-Qwen2.5-7B-Instruct", names[i], &want, &fx);
        for (int as_string = 0; as_string < 2; as_string++) {
            json_t *msgs = json_object_get(params, "messages");
            for (size_t m = 0; as_string && m < json_array_size(msgs); m++) {
                json_t *calls = json_object_get(json_array_get(msgs, m), "tool_calls");
                for (size_t c = 0; c < json_array_size(calls); c++) {
                    json_t *fn = json_object_get(json_array_get(calls, c), "function");
                    char *text = json_dumps(json_object_get(fn, "arguments"), 0);
                    json_object_set_new(fn, "arguments", json_string(text));
                    free(text);
                }
            }
            r = call_obj(&p, 10 + i * 2 + as_string, "chat/render", json_incref(params));
            const char *got = json_string_value(result_key(r, "prompt"));
            ck_assert_msg(got && !strcmp(got, want), "%s (%s arguments): got %s", names[i],
                          as_string ? "string" : "object", got ? got : err_msg(r));
            ck_assert(json_is_true(result_key(r, "jinja")));
            ck_assert_str_eq(json_string_value(json_array_get(result_key(r, "stop"), 0)), "<|im_end|>");
            json_decref(r);
        }
        json_decref(params);
        json_decref(fx);
    }
    /* chat evaluates exactly that prompt: its token count is chat/render's and tokenize's */
    json_t *fx;
    const char *want;
    json_t *params = fixture_params("Qwen-Qwen2.5-7B-Instruct", "system_user", &want, &fx);
    r = call_obj(&p, 20, "chat/render", json_incref(params));
    json_int_t n_render = json_integer_value(result_key(r, "prompt_tokens"));
    json_decref(r);
    json_object_set_new(params, "max_tokens", json_integer(2));
    json_object_set_new(params, "temperature", json_integer(0));
    r = call_obj(&p, 21, "chat", params);
    ck_assert_int_eq(json_integer_value(json_object_get(result_key(r, "usage"), "prompt_tokens")), n_render);
    json_decref(r);
    r = call_obj(&p, 22, "tokenize", json_pack("{s:s,s:b}", "text", want, "special", 1));
    ck_assert_int_eq((json_int_t)json_array_size(result_key(r, "tokens")), n_render);
    ck_assert_int_gt(n_render, 20);
    json_decref(r);
    json_decref(fx);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

START_TEST(jinja_refusals)
{
    struct proc p;
    start_with_template(&p, model(), tutil_shared("chat/jinja/google-gemma-2-2b-it.jinja"));
    /* gemma-2 has no system role: the system message is folded into the first user message */
    json_t *r = call(&p, 1, "chat/render",
                     "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
                     "{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}]}");
    ck_assert_str_eq(json_string_value(result_key(r, "prompt")),
                     "<s><start_of_turn>user\nYou are a helpful assistant.\nWhat is the weather in Paris?"
                     "<end_of_turn>\n<start_of_turn>model\n");
    json_decref(r);
    /* what no fix can mend is -32602 template_error with the template's own message, and only
     * that request fails */
    const char *twice = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}],"
                        "\"max_tokens\":2}";
    for (int k = 0; k < 2; k++) {
        r = call(&p, 2 + k, k ? "chat/render" : "chat", twice);
        ck_assert_int_eq(err_code(r), -32602);
        ck_assert_str_eq(err_kind_of(r), "template_error");
        ck_assert_msg(!strncmp(err_msg(r), "TemplateError: Conversation roles must alternate", 48), "%s", err_msg(r));
        json_decref(r);
    }
    r = call(&p, 4, "chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":3}");
    ck_assert_int_eq(json_integer_value(json_object_get(result_key(r, "usage"), "completion_tokens")), 3);
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    /* Llama 3.2 takes one tool call at a time */
    start_with_template(&p, model(), tutil_shared("chat/jinja/meta-llama-Llama-3.2-3B-Instruct.jinja"));
    json_t *fx;
    const char *want;
    r = call_obj(&p, 5, "chat", fixture_params("meta-llama-Llama-3.2-3B-Instruct", "parallel_tool_calls", &want, &fx));
    ck_assert_int_eq(err_code(r), -32602);
    ck_assert_str_eq(err_kind_of(r), "template_error");
    ck_assert_str_eq(err_msg(r), "TemplateError: This model only supports single tool-calls at once! (line 72, column 17)");
    json_decref(r);
    json_decref(fx);
    assert_alive(&p);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
}
END_TEST

/* A tiny model (tests/gguf_builder.h) with these chat templates, written to path. */
static void write_tiny(const char *path, const char *tmpl, const char *tool_use)
{
    struct gguf_builder b = {0};
    gb_init(&b);
    struct gb_llama_opts o = gb_llama_defaults();
    o.n_ctx = 512;
    gb_llama(&b, &o);
    if (tmpl) gb_kv_str(&b, "tokenizer.chat_template", tmpl);
    if (tool_use) gb_kv_str(&b, "tokenizer.chat_template.tool_use", tool_use);
    ck_assert_int_eq(gb_write_file(&b, path), 0);
    gb_free(&b);
}

START_TEST(jinja_tool_use_and_end_of_turn)
{
    char dir[256], gguf[300], lily[300];
    ck_assert_int_eq(tutil_mkdtemp(dir, sizeof dir, "rpcjinja"), 0);
    snprintf(gguf, sizeof gguf, "%s/tiny.gguf", dir);
    snprintf(lily, sizeof lily, "%s/lily.jinja", dir);
    /* the file's tool_use variant renders the requests with tools, and only those */
    write_tiny(gguf, "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
               "TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}");
    struct proc p;
    const char *args[] = {"-m", gguf, NULL};
    proc_start_v(&p, args, 0);
    init(&p);
    json_t *r = call(&p, 1, "model/info", NULL);
    json_t *used = json_object_get(result_key(r, "model"), "chat_template_used");
    ck_assert_str_eq(json_string_value(json_object_get(used, "source")), "model");
    ck_assert(json_is_true(json_object_get(used, "tool_use")));
    json_decref(r);
    r = call(&p, 2, "chat/render", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    ck_assert_str_eq(json_string_value(result_key(r, "template")), "tokenizer.chat_template");
    ck_assert_str_eq(json_string_value(result_key(r, "prompt")), "<user>hi");
    json_decref(r);
    r = call(&p, 3, "chat/render", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                                   "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]}");
    ck_assert_str_eq(json_string_value(result_key(r, "template")), "tokenizer.chat_template.tool_use");
    ck_assert_str_eq(json_string_value(result_key(r, "prompt")), "TOOLS:get_time;");
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    /* the end-of-turn text comes from the template: here one that closes a reply with
     * " Lily." (artificial, so that stories260K's greedy story meets it) */
    FILE *f = fopen(lily, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{% for m in messages %}{{ m.content }}{% if m.role == 'assistant' %} Lily.{% endif %}{% endfor %}", f);
    fclose(f);
    start_with_template(&p, model(), lily);
    r = call(&p, 4, "chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],"
                            "\"max_tokens\":20,\"temperature\":0}");
    ck_assert_str_eq(json_string_value(result_key(r, "text")), ", there was a little girl named ");
    ck_assert_str_eq(json_string_value(result_key(r, "finish_reason")), "stop");
    json_decref(r);
    r = call(&p, 5, "generate", "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0}");
    ck_assert_ptr_nonnull(strstr(json_string_value(result_key(r, "text")), "named Lily. She"));
    json_decref(r);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    tutil_rmtree(dir);
}
END_TEST

START_TEST(jinja_hostile_template)
{
    /* the load probes and each refusal run the interpreter to its step limit (~3 s native in all):
     * minutes under qemu, for code that has no arch-dependent part (LMPIPE_TEST_QUICK=2 skips) */
    if (tutil_quick() >= 2) return;
    char dir[256], gguf[300];
    ck_assert_int_eq(tutil_mkdtemp(dir, sizeof dir, "rpchostile"), 0);
    snprintf(gguf, sizeof gguf, "%s/hostile.gguf", dir);
    write_tiny(gguf, "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}", NULL);
    struct proc p;
    const char *args[] = {"-m", gguf, NULL};
    proc_start_v(&p, args, 0);
    init(&p);
    json_t *r = call(&p, 1, "session/create", NULL);
    json_decref(r);
    for (int k = 0; k < 2; k++) {
        r = call(&p, 2 + k, "chat", k ? "{\"session\":\"s1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
                                      : "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        ck_assert_int_eq(err_code(r), -32602);
        ck_assert_str_eq(err_kind_of(r), "template_error");
        ck_assert_ptr_nonnull(strstr(err_msg(r), "StepLimit"));
        json_decref(r);
    }
    /* the session and the process keep working */
    r = call(&p, 4, "generate", "{\"session\":\"s1\",\"prompt\":\"hello\",\"max_tokens\":3}");
    ck_assert_int_eq(json_integer_value(json_object_get(result_key(r, "usage"), "completion_tokens")), 3);
    json_decref(r);
    r = call(&p, 5, "chat", "{\"session\":\"s1\",\"chat_template\":\"chatml\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}");
    ck_assert_ptr_nonnull(result_key(r, "text"));
    json_decref(r);
    assert_alive(&p);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    tutil_rmtree(dir);
}
END_TEST

/* ---------------- tool calls ---------------- */

#define RPC_TOOLS "[{\"type\":\"function\",\"function\":{\"name\":\"exec\",\"description\":\"run a command\"," \
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":30}}," \
    "\"required\":[\"command\"]}}},{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":" \
    "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\",\"maxLength\":20},\"unit\":{\"enum\":[\"c\",\"f\"]}}," \
    "\"required\":[\"location\",\"unit\"],\"additionalProperties\":false}}}]"

/* stories260K with 2048 positions (the tools' descriptions need more than its 128) in dir. */
static void story_2k(char *dir, size_t cap, char *path, size_t pcap)
{
    ck_assert_int_eq(tutil_mkdtemp(dir, cap, "rpctools"), 0);
    snprintf(path, pcap, "%s/stories2k.gguf", dir);
    struct ftool_edit_opts o = {.n_ctx = 2048};
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(ftool_edit(model(), path, &o, &ei) == 0, "%s", ei.msg);
}

/* The ids seen in this test (unique per process). */
struct idset {
    char id[64][40];
    int n;
};

/* A result's tool_calls: OpenAI's shape, declared tools (only, when given), arguments a JSON
 * string of an object; mistral: ids of 9 alphanumerics. Returns the number of calls. */
static int check_result_calls(json_t *r, const char *only, bool mistral, struct idset *ids)
{
    json_t *res = res_obj(r);
    ck_assert_msg(res != NULL, "%s", err_msg(r));
    json_t *calls = json_object_get(res, "tool_calls");
    if (!calls) return 0;
    ck_assert(json_is_array(calls));
    for (size_t i = 0; i < json_array_size(calls); i++) {
        json_t *c = json_array_get(calls, i), *fn = json_object_get(c, "function");
        const char *id = json_string_value(json_object_get(c, "id"));
        ck_assert_ptr_nonnull(id);
        ck_assert_str_eq(json_string_value(json_object_get(c, "type")), "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        ck_assert_ptr_nonnull(name);
        ck_assert(!strcmp(name, "exec") || !strcmp(name, "get_weather"));
        if (only) ck_assert_str_eq(name, only);
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        ck_assert_ptr_nonnull(args);
        json_t *a = json_loads(args, 0, NULL);
        ck_assert_msg(json_is_object(a), "arguments %s", args);
        if (!strcmp(name, "get_weather")) {
            const char *u = json_string_value(json_object_get(a, "unit"));
            ck_assert(u && (!strcmp(u, "c") || !strcmp(u, "f")));
            ck_assert(json_is_string(json_object_get(a, "location")));
            ck_assert_uint_eq(json_object_size(a), 2); /* additionalProperties false */
        } else {
            ck_assert(json_string_length(json_object_get(a, "command")) >= 1);
        }
        json_decref(a);
        if (mistral) {
            ck_assert_uint_eq(strlen(id), 9);
            for (int k = 0; k < 9; k++) ck_assert(isalnum((unsigned char)id[k]));
        } else {
            ck_assert(!strncmp(id, "call_", 5));
        }
        for (int k = 0; k < ids->n; k++) ck_assert_msg(strcmp(ids->id[k], id) != 0, "id %s twice", id);
        if (ids->n < 64) snprintf(ids->id[ids->n++], sizeof ids->id[0], "%s", id);
    }
    return (int)json_array_size(calls);
}

static json_t *tool_params(const char *choice, int seed, bool stream)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}],\"tools\":" RPC_TOOLS
             ",\"tool_choice\":%s,\"temperature\":1.3,\"seed\":%d,\"max_tokens\":300,\"stream\":%s}",
             choice, seed, stream ? "true" : "false");
    json_t *p = json_loads(buf, 0, NULL);
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(tool_calls)
{
    char dir[512], path[600];
    story_2k(dir, sizeof dir, path, sizeof path);
    const char *args[] = {"-m", path, NULL};
    struct proc p;
    proc_start_v(&p, args, 0);
    json_t *r = call(&p, 1, "initialize", "{}");
    ck_assert(json_is_true(json_object_get(result_key(r, "capabilities"), "tools")));
    json_decref(r);
    struct idset ids = {.n = 0};
    /* required, streamed, one call: gen/tool_call pieces add up to the result's arguments */
    for (int seed = 1; seed <= 5; seed++) {
        json_t *pa = tool_params("\"required\"", seed, true);
        json_object_set_new(pa, "parallel_tool_calls", json_false());
        json_t *m = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t)(10 + seed), "method", "chat",
                              "params", pa);
        char *line = json_dumps(m, JSON_COMPACT);
        proc_send(&p, line);
        free(line);
        json_decref(m);
        json_t *notes;
        r = proc_wait(&p, 10 + seed, &notes);
        ck_assert_int_eq(check_result_calls(r, NULL, false, &ids), 1);
        ck_assert_str_eq(finish_of(r), "tool_calls");
        ck_assert(json_is_null(result_key(r, "content"))); /* nothing before the call */
        json_t *c = json_array_get(result_key(r, "tool_calls"), 0);
        char streamed[2048] = "";
        json_int_t next = 0;
        for (size_t i = 0; i < json_array_size(notes); i++) {
            json_t *n = json_array_get(notes, i), *np = json_object_get(n, "params");
            if (strcmp(json_string_value(json_object_get(n, "method")), "gen/tool_call") != 0) continue;
            ck_assert_int_eq(json_integer_value(json_object_get(np, "id")), 10 + seed);
            ck_assert_int_eq(json_integer_value(json_object_get(np, "index")), next++);
            ck_assert_int_eq(json_integer_value(json_object_get(np, "call_index")), 0);
            ck_assert_str_eq(json_string_value(json_object_get(np, "call_id")), json_string_value(json_object_get(c, "id")));
            ck_assert_str_eq(json_string_value(json_object_get(np, "name")),
                             json_string_value(json_object_get(json_object_get(c, "function"), "name")));
            strncat(streamed, json_string_value(json_object_get(np, "arguments_delta")), sizeof streamed - strlen(streamed) - 1);
        }
        ck_assert_int_ge(next, 2); /* the start ("") and at least one piece */
        ck_assert_str_eq(streamed, json_string_value(json_object_get(json_object_get(c, "function"), "arguments")));
        json_decref(notes);
        json_decref(r);
    }
    /* named: always that tool (parallel by default: one or more calls) */
    for (int seed = 1; seed <= 5; seed++) {
        r = call_obj(&p, 20 + seed, "chat",
                     tool_params("{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}", seed, false));
        ck_assert_int_ge(check_result_calls(r, "get_weather", false, &ids), 1);
        json_decref(r);
    }
    /* none: never a call */
    r = call_obj(&p, 30, "chat", tool_params("\"none\"", 1, false));
    ck_assert_ptr_nonnull(res_obj(r));
    ck_assert_ptr_null(result_key(r, "tool_calls"));
    ck_assert_str_ne(finish_of(r), "tool_calls");
    json_decref(r);
    /* auto: text, or valid calls */
    for (int seed = 1; seed <= 3; seed++) {
        r = call_obj(&p, 40 + seed, "chat", tool_params("\"auto\"", seed, false));
        int n = check_result_calls(r, NULL, false, &ids);
        if (!strcmp(finish_of(r), "tool_calls")) ck_assert_int_ge(n, 1);
        json_decref(r);
    }
    /* the round trip in a session: the call, its result, the reply from the cached prefix */
    r = call(&p, 50, "session/create", NULL);
    char sess[128];
    snprintf(sess, sizeof sess, "%s", json_string_value(result_key(r, "session")));
    json_decref(r);
    json_t *pa = tool_params("\"required\"", 9, false);
    json_object_set_new(pa, "session", json_string(sess));
    json_object_set_new(pa, "parallel_tool_calls", json_false());
    json_t *msgs = json_deep_copy(json_object_get(pa, "messages"));
    r = call_obj(&p, 51, "chat", pa);
    ck_assert_int_eq(check_result_calls(r, NULL, false, &ids), 1);
    json_t *c = json_array_get(result_key(r, "tool_calls"), 0);
    json_array_append_new(msgs, json_pack("{s:s,s:n,s:[O]}", "role", "assistant", "content", "tool_calls", c));
    json_array_append_new(msgs, json_pack("{s:s,s:O,s:s}", "role", "tool", "tool_call_id", json_object_get(c, "id"),
                                          "content", "sunny, 21 C"));
    json_decref(r);
    pa = tool_params("\"auto\"", 10, false);
    json_object_set_new(pa, "session", json_string(sess));
    json_object_set_new(pa, "messages", msgs);
    json_object_set_new(pa, "max_tokens", json_integer(20));
    r = call_obj(&p, 52, "chat", pa);
    ck_assert_msg(res_obj(r) != NULL, "%s", err_msg(r));
    ck_assert_int_gt(json_integer_value(json_object_get(result_key(r, "usage"), "cached_tokens")), 100);
    json_decref(r);
    assert_alive(&p);
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    /* Mistral's template: its ids are 9 alphanumerics */
    const char *margs[] = {"-m", path, "--chat-template-file",
                           tutil_shared("chat/jinja/mistralai-Mistral-Nemo-Instruct-2407.jinja"), NULL};
    proc_start_v(&p, margs, 0);
    init(&p);
    for (int seed = 1; seed <= 3; seed++) {
        r = call_obj(&p, 60 + seed, "chat", tool_params("\"required\"", seed, false));
        ck_assert_int_ge(check_result_calls(r, NULL, true, &ids), 1);
        json_decref(r);
    }
    proc_close_in(&p);
    ck_assert_int_eq(proc_finish(&p, 10000), 0);
    tutil_rmtree(dir);
}
END_TEST

/* batch lines take the same fields: a chat line with tools answers with tool_calls */
START_TEST(tool_calls_batch)
{
    char dir[512], path[600], in[700], out[700], err[700];
    story_2k(dir, sizeof dir, path, sizeof path);
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\":\"r\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris?\"}],\"tools\":" RPC_TOOLS
          ",\"tool_choice\":\"required\",\"temperature\":1.3,\"seed\":4,\"max_tokens\":300}\n"
          "{\"id\":\"bad\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris?\"}],\"tools\":[{\"type\":\"function\","
          "\"function\":{\"name\":\"a b\"}}]}\n",
          f);
    fclose(f);
    const char *args[] = {"-m", path, in, "-o", out, NULL};
    ck_assert_int_eq(run_batch(args, err), 1); /* the bad line failed */
    size_t len;
    char *t = tutil_read(out, &len);
    ck_assert_ptr_nonnull(t);
    int n = 0;
    struct idset ids = {.n = 0};
    for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n"), n++) {
        json_t *j = check_line(l);
        if (!strcmp(json_string_value(json_object_get(j, "id")), "bad")) {
            ck_assert_int_eq(err_code(j), -32602);
            ck_assert_msg(strstr(err_msg(j), "tools[0]") != NULL, "%s", err_msg(j));
        } else {
            ck_assert_int_ge(check_result_calls(j, NULL, false, &ids), 1);
        }
        json_decref(j);
    }
    ck_assert_int_eq(n, 2);
    free(t);
    tutil_rmtree(dir);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("rpc");
    TCase *u = tcase_create("unit");
    tcase_add_test(u, lines_split);
    tcase_add_test(u, json_escapes_separators);
    tcase_add_test(u, json_utf8);
    tcase_add_test(u, error_codes);
    tcase_add_test(u, json_big_ints);
    tcase_add_test(u, error_table_matches_doc);
    suite_add_tcase(s, u);
    TCase *p = tcase_create("protocol");
    tcase_set_timeout(p, 120);
    tcase_add_test(p, transcript_replay);
    tcase_add_test(p, greedy_lily);
    tcase_add_test(p, stream_order);
    tcase_add_test(p, cancel_mcp);
    tcase_add_test(p, cancel_lsp);
    tcase_add_test(p, sessions_interleaved);
    tcase_add_test(p, stdin_closed_mid_generation);
    tcase_add_test(p, sigterm_exits_zero);
    tcase_add_test(p, epipe_exits_cleanly);
    tcase_add_test(p, backpressure);
    tcase_add_test(p, bad_input);
    tcase_add_test(p, no_model_then_load);
    tcase_add_test(p, stdin_is_a_file);
    tcase_add_test(p, batch_resume_shard);
    tcase_add_test(p, grammar_requests);
    tcase_add_test(p, grammar_errors);
    tcase_add_test(p, grammar_batch);
    tcase_add_test(p, jinja_file_renders_as_jinja2);
    tcase_add_test(p, jinja_refusals);
    tcase_add_test(p, jinja_tool_use_and_end_of_turn);
    tcase_add_test(p, jinja_hostile_template);
    tcase_add_test(p, transcript_tools_replay);
    tcase_add_test(p, tool_calls);
    tcase_add_test(p, tool_calls_batch);
    suite_add_tcase(s, p);
    TCase *k = tcase_create("kv");
    tcase_set_timeout(k, 180);
    tcase_add_checked_fixture(k, sdir_setup, sdir_teardown);
    tcase_add_test(k, snapshot_roundtrip);
    tcase_add_test(k, snapshot_refusals);
    tcase_add_test(k, context_full);
    tcase_add_test(k, prompt_cache_serve);
    suite_add_tcase(s, k);
    return s;
}

TUTIL_MAIN
