/* seeds_rpc: writes the starting corpus for fuzz_rpc into a directory, at run time: short
 * protocol sessions (initialize, then requests) that reach the params parsers, among them the
 * grammar fields: grammar (GBNF text, valid and broken), json_schema (supported and refused),
 * response_format in each of its shapes and a few wrong ones, and two constraints at once, so
 * mutations start on both sides of every check of rpc_req.c's get_grammar / get_response_format.
 * Generations are short (fuzz_rpc runs them for real on stories260K).
 *
 * usage: seeds_rpc <dir> [ignored ...] */
#include "seed_io.h"

#include <string.h>

#define INIT "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\"}\n"
#define GEN(params) "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"generate\",\"params\":{\"prompt\":\"Once\",\"max_tokens\":4," params "}}\n"
#define CHAT(params)                                                                                             \
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"chat\",\"params\":{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]," \
    "\"max_tokens\":4," params "}}\n"

static const char *const k_seeds[] = {
    INIT GEN("\"temperature\":0"),
    INIT GEN("\"grammar\":\"root ::= \\\" \\\" [a-z]+\""),
    INIT GEN("\"grammar\":\"root ::= (\\\"yes\\\" | \\\"no\\\") <[2]>\",\"ignore_eos\":true"),
    INIT GEN("\"grammar\":\"root ::= x\\nx ::= [z-a]\""),
    INIT GEN("\"grammar\":\"root ::= <[0]>\""),
    INIT GEN("\"json_schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"maximum\":9}},\"required\":[\"a\"]}"),
    INIT GEN("\"json_schema\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\",1,null]},\"maxItems\":2}"),
    INIT GEN("\"json_schema\":{\"type\":\"object\",\"patternProperties\":{\"^a\":{}}}"),
    INIT GEN("\"json_schema\":true"),
    INIT GEN("\"json_schema\":\"object\""),
    INIT GEN("\"grammar\":\"root ::= \\\"a\\\"\",\"json_schema\":{}"),
    INIT CHAT("\"response_format\":{\"type\":\"json_object\"}"),
    INIT CHAT("\"response_format\":{\"type\":\"text\"},\"grammar\":\"root ::= [a-z]{1,3}\""),
    INIT CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"strict\":true,"
              "\"schema\":{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"maxLength\":3}}}}}"),
    INIT CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\"}}"),
    INIT CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{},\"strict\":1}}"),
    INIT CHAT("\"response_format\":{\"type\":\"yaml\"}"),
    INIT CHAT("\"response_format\":[]"),
    INIT CHAT("\"response_format\":{\"type\":\"json_object\"},\"json_schema\":{}"),
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof k_seeds / sizeof k_seeds[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "seed%02zu.jsonl", i);
        if (seed_write("seeds_rpc", argv[1], name, k_seeds[i], strlen(k_seeds[i]))) return 1;
    }
    return 0;
}
