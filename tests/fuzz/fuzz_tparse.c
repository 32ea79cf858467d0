/* fuzz_tparse: libFuzzer harness for eng's tool-call parser (src/eng/eng_tparse.c), the text a
 * model generates through the call syntax of every family.
 *
 * Input: byte 0 picks the family, byte 1 the chunk size (1..256) of the second feed, the rest is
 * the generated text. Contract checked on every input:
 *   - the result is 0, ERR_SYNTAX, ERR_NOT_FOUND or ERR_TRUNCATED; a refusal has a message and
 *     an offset inside the text (or at its end, for a truncation);
 *   - the events are well-formed: calls begin with index 0, 1, 2 ... naming a declared tool,
 *     ARGS only inside a call, END once per call and only after its BEGIN;
 *   - feeding the text at once and in chunks gives the same events, result and offset. */
#include "eng/eng_tools.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int k_fams[] = {ENG_TF_GENERIC, ENG_TF_GRANITE,     ENG_TF_LLAMA3,
                             ENG_TF_MISTRAL, ENG_TF_QWEN3_CODER, ENG_TF_FUNCTIONARY,
                             ENG_TF_PYTHONIC, ENG_TF_DEEPSEEK_R1};
#define N_FAMS (sizeof k_fams / sizeof k_fams[0])

static struct eng_toolset g_ts;

static void load_once(void)
{
    static int done;
    if (done) return;
    done = 1;
    json_t *tools = json_loads(
        "[{\"type\":\"function\",\"function\":{\"name\":\"exec\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"command\":{\"type\":\"string\"},\"timeout\":{\"type\":\"integer\"}},"
        "\"required\":[\"command\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"location\":{\"type\":\"string\",\"minLength\":1},\"days\":{\"type\":\"integer\"}}}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}]",
        0, NULL);
    if (!tools || eng_toolset_parse(tools, &g_ts, NULL)) abort();
    json_decref(tools);
}

struct log {
    char buf[1 << 16];
    size_t n;
    size_t calls;
    int open; /* a call begun and not ended */
};

static void put(struct log *l, const void *p, size_t n)
{
    if (l->n + n > sizeof l->buf) n = sizeof l->buf - l->n;
    memcpy(l->buf + l->n, p, n);
    l->n += n;
}

static int on_ev(void *ud, const struct eng_tev *ev)
{
    struct log *l = ud;
    if (ev->kind == ENG_TEV_BEGIN) {
        if (l->open || ev->index != l->calls || ev->tool < 0 || (size_t)ev->tool >= g_ts.n) abort();
        if (ev->len != g_ts.t[ev->tool].name_len || memcmp(ev->text, g_ts.t[ev->tool].name, ev->len)) abort();
        l->open = 1;
        l->calls++;
        put(l, "\x01", 1);
        put(l, ev->text, ev->len);
    } else if (ev->kind == ENG_TEV_ARGS) {
        if (!l->open || ev->index + 1 != l->calls || ev->len == 0) abort();
        put(l, ev->text, ev->len);
    } else if (ev->kind == ENG_TEV_END) {
        if (!l->open || ev->index + 1 != l->calls) abort();
        l->open = 0;
        put(l, "\x02", 1);
    } else {
        abort();
    }
    return 0;
}

static int run(const struct eng_tsyn *s, const uint8_t *t, size_t n, size_t chunk, struct log *l,
               struct err_info *ei)
{
    struct eng_tparse p;
    eng_tparse_init(&p, s, &g_ts, on_ev, l);
    int rc = 0;
    for (size_t off = 0; off < n && !rc; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        rc = eng_tparse_feed(&p, (const char *)t + off, k, ei);
    }
    if (!rc) rc = eng_tparse_finish(&p, ei);
    if (rc && eng_tparse_feed(&p, "x", 1, NULL) != rc) abort(); /* errors are sticky */
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_once();
    if (size < 2) return 0;
    struct eng_tsyn s;
    eng_tsyn_family(&s, k_fams[data[0] % N_FAMS]);
    size_t chunk = (size_t)data[1] + 1, n = size - 2;
    const uint8_t *t = data + 2;
    static struct log a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    struct err_info ea, eb;
    err_clear(&ea);
    err_clear(&eb);
    int ra = run(&s, t, n, n ? n : 1, &a, &ea), rb = run(&s, t, n, chunk, &b, &eb);
    if (ra != 0 && ra != ERR_SYNTAX && ra != ERR_NOT_FOUND && ra != ERR_TRUNCATED) abort();
    if (ra != rb || a.n != b.n || memcmp(a.buf, b.buf, a.n) != 0) abort();
    if (ra) {
        if (!ea.msg[0] || ea.offset > n || ea.offset != eb.offset) abort();
    } else if (a.open || a.calls == 0) {
        abort();
    }
    return 0;
}
