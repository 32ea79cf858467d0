/* rpc_bad_lines: the list of malformed protocol lines (each sent after initialize) and the answer
 * each must get. check_rpc sends every one to the real server and checks the code, whether the
 * id is null and a phrase of the message; the fuzz_rpc seed program (tests/fuzz/seeds_rpc.c)
 * starts its corpus from the same lines, so the fuzzer begins at every refusal. */
#ifndef LMPIPE_TESTS_RPC_BAD_LINES_H
#define LMPIPE_TESTS_RPC_BAD_LINES_H

#include <stdbool.h>
#include <stddef.h>

static const struct rpc_bad_line {
    const char *line;
    int code;
    bool null_id;
    const char *needle; /* in the message, or NULL */
} rpc_bad_lines[] = {
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}",
     -32600, false, "already initialized"},
    {"this is not json",
     -32700, true, "parse error"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,",
     -32700, true, NULL},
    {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
     -32600, true, "batch"},
    {"[]",
     -32600, true, NULL},
    {"42",
     -32600, true, "object"},
    {"{\"id\":1,\"method\":\"ping\"}",
     -32600, false, "jsonrpc"},
    {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
     -32600, false, "jsonrpc"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
     -32600, false, "method"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1}",
     -32600, false, "method"},
    {"{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}",
     -32600, true, "id"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
     -32600, true, "id"},
    {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
     -32600, true, "id"},
    {"{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234567890,\"method\":\"ping\"}",
     -32700, true, NULL},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session/create\",\"params\":{\"n_ctx\":1}}",
     -32602, false, "at least 2"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"model/load\",\"params\":{\"path\":\"x.gguf\",\"n_ctx\":1}}",
     -32602, false, "at least 2"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"id\":2}",
     -32700, true, "duplicate"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"frobnicate\"}",
     -32601, false, "not found"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":[\"x\"]}",
     -32602, false, NULL},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":7}",
     -32600, false, "params"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{}}",
     -32602, false, "prompt"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":5}}",
     -32602, false, "prompt"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"temperature\":\"hot\"}}",
     -32602, false, "temperature"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"max_tokens\":-5}}",
     -32602, false, "max_tokens"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"top_p\":1.5}}",
     -32602, false, "top_p"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"stop\":[\"\"]}}",
     -32602, false, "stop"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"logit_bias\":{\"99999\":1}}}",
     -32602, false, NULL},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"x\",\"session\":\"nope\"}}",
     -32062, false, "not found"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[]}}",
     -32602, false, "messages"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"tool_choice\":\"required\"}}",
     -32602, false, "needs at least one tool"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}}",
     -32602, false, "declared twice"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"bad name!\"}}]}}",
     -32602, false, "tools[0]"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"patternProperties\":{\"^x\":{}}}}}]}}",
     -32602, false, "cannot be enforced"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}}",
     -32602, false, "not a tool in 'tools'"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"sometimes\"}}",
     -32602, false, "tool_choice"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat/render\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":5}]}}",
     -32602, false, "content"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
     "\"response_format\":{\"type\":\"xml\"}}}",
     -32602, false, "response_format.type"},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"detokenize\",\"params\":{\"tokens\":[1,99999]}}",
     -32602, false, NULL},
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"a\xff\xfe\"}}",
     -32700, true, "UTF-8"},
    /* integers outside 64 bits where no id can be read: a notification, an id that is itself
     * too big (with an id, -32602: check_rpc's bad_input); a bad envelope is said as such */
    {"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{\"a\":99999999999999999999}}",
     -32700, true, "64 bits"},
    {"{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775809,\"method\":\"x\",\"params\":{\"a\":99999999999999999999}}",
     -32700, true, "64 bits"},
    {"{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"x\",\"params\":{\"a\":99999999999999999999}}",
     -32600, false, "jsonrpc"},
    /* an empty prompt: nothing to evaluate */
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"\",\"add_bos\":false}}",
     -32065, false, "empty"},
};
#define RPC_N_BAD_LINES (sizeof rpc_bad_lines / sizeof rpc_bad_lines[0])

#endif
