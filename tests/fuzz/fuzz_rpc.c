/* fuzz_rpc: libFuzzer harness for the protocol's line handler. Each input is a byte stream fed
 * to a fresh server (inline mode: jobs run at once on this thread, no loop, no worker) through
 * the real line splitter with a small line limit, so framing, parsing, dispatch, params
 * validation, job execution and response encoding are all exercised. The stories260K model is
 * loaded once from $LMPIPE_SHARED (default ../shared) and lent to every server, so generate,
 * chat, tokenize and sessions run for real; model/load, model/unload, session/save and
 * session/load are disabled (cfg.allow_files off: a fuzzed path must not read or write
 * arbitrary files, and the shared model must survive).
 *
 * Besides memory errors it checks what every outbound line must satisfy: shorter than
 * RPC_LINE_OUT_MAX, '\n'-terminated, valid UTF-8, no raw U+2028/U+2029/U+0085, a JSON object
 * with "jsonrpc": "2.0".
 *
 * Build (clang, from the repo root):
 *   make CC=clang SAN=1 BUILD=build-fuzz BIN=build-fuzz/lmpipe CFLAGS="-O1 -g -fsanitize=fuzzer-no-link" \
 *     build-fuzz/liblmpipe.a
 *   clang -fsanitize=fuzzer,address,undefined -D_POSIX_C_SOURCE=200809L -Isrc \
 *     tests/fuzz/fuzz_rpc.c build-fuzz/liblmpipe.a $(pkg-config --cflags --libs jansson libuv) \
 *     -lm -lpthread -o build-fuzz/fuzz_rpc
 *   LMPIPE_SHARED=../shared build-fuzz/fuzz_rpc -max_len=4096 -max_total_time=60 */
#include "rpc/rpc_int.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rpc_server g_model_holder;
static bool g_tried;

static void load_model_once(void)
{
    if (g_tried) return;
    g_tried = true;
    struct rpc_config cfg = {0};
    cfg.inline_exec = true;
    if (rpc_server_init(&g_model_holder, &cfg)) return;
    const char *base = getenv("LMPIPE_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K-F32.gguf", base && *base ? base : "../shared");
    struct err_info ei;
    err_clear(&ei);
    if (rpc_exec_load(&g_model_holder, path, 64, 1, &ei))
        fprintf(stderr, "fuzz_rpc: no model (%s): engine jobs will answer 'no model'\n", ei.msg);
}

static int check_write(struct rpc_server *s, char *line, size_t len)
{
    if (len == 0 || len > s->cfg.max_line_out || line[len - 1] != '\n') abort();
    if (util_utf8_valid_prefix(line, len) != len) abort();
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == 0xc2 && (unsigned char)line[i + 1] == 0x85) abort();
        if (c == 0xe2 && i + 2 < len && (unsigned char)line[i + 1] == 0x80 &&
            ((unsigned char)line[i + 2] == 0xa8 || (unsigned char)line[i + 2] == 0xa9))
            abort();
        if (c == '\n') abort(); /* exactly one line */
    }
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *v = j ? json_object_get(j, "jsonrpc") : NULL;
    if (!v || !json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) abort();
    json_decref(j);
    free(line);
    rpc_written(s, len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_model_once();
    static struct rpc_server s;
    struct rpc_config cfg = {0};
    cfg.inline_exec = true;
    cfg.max_line_in = 1024;
    if (rpc_server_init(&s, &cfg)) return 0;
    s.write_line = check_write;
    s.em = g_model_holder.em; /* lent: taken back before rpc_server_free */
    s.meta = g_model_holder.meta;
    struct rpc_lines l;
    rpc_lines_init(&l, s.cfg.max_line_in);
    /* split the input in two feeds at a data-chosen point to cover chunk boundaries */
    size_t cut = size ? data[0] % (size + 1) : 0;
    rpc_lines_feed(&l, (const char *)data, cut, rpc_handle_line, &s);
    rpc_lines_feed(&l, (const char *)data + cut, size - cut, rpc_handle_line, &s);
    rpc_lines_finish(&l, rpc_handle_line, &s);
    rpc_lines_free(&l);
    if (s.active) abort(); /* inline mode: every job is answered before the call returns */
    if (s.out_pending) abort();
    /* free the sessions this input made, then hand the model back */
    rpc_exec_drop_sessions(&s);
    s.em = NULL;
    rpc_server_free(&s);
    return 0;
}
