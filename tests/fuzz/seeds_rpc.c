/* seeds_rpc: writes the starting corpus for fuzz_rpc into a directory, at run time. Every seed is
 * a short protocol session (initialize, then requests), so mutations start past the lifecycle
 * check, in the params parsers and the jobs:
 *  - each request of protocol/transcript.jsonl and protocol/transcript-tools.jsonl (read from
 *    $LMPIPE_SRC, default "."), one per seed after an initialize, and each transcript's whole
 *    sequence of sent lines as one seed;
 *  - each line of tests/rpc_bad_lines.h (the malformed lines check_rpc sends, with the answer
 *    each must get) after an initialize and before a ping;
 *  - the grammar fields: grammar (GBNF text, valid and broken), json_schema (supported and
 *    refused), response_format in each of its shapes and a few wrong ones, and two constraints
 *    at once, so mutations start on both sides of every check of rpc_req.c's get_grammar /
 *    get_response_format.
 * Generations are short (fuzz_rpc runs them for real on stories260K).
 *
 * usage: seeds_rpc <dir> [ignored ...] */
#include "rpc_bad_lines.h"
#include "seed_io.h"

#include <stdlib.h>

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

#define PING "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\"}\n"

/* The text a transcript line sends, appended to out[*n..cap): {"send": MSG} gives MSG, {"send_raw":
 * "TEXT"} the string TEXT unescaped (its escapes are \" \\ \n only); other lines nothing.
 * Returns the bytes appended. */
static size_t sent_text(const char *line, size_t len, char *out, size_t cap)
{
    static const char send[] = "{\"send\": ", raw[] = "{\"send_raw\": \"";
    size_t o = 0;
    if (len > sizeof send && !strncmp(line, send, sizeof send - 1) && line[len - 1] == '}') {
        size_t k = len - (sizeof send - 1) - 1;
        if (k + 1 > cap) return 0;
        memcpy(out, line + sizeof send - 1, k);
        o = k;
    } else if (len > sizeof raw + 1 && !strncmp(line, raw, sizeof raw - 1)) {
        for (size_t i = sizeof raw - 1; i + 2 < len && o + 1 < cap; i++) {
            char c = line[i];
            if (c == '\\' && i + 3 < len) c = line[++i] == 'n' ? '\n' : line[i];
            out[o++] = c;
        }
        return o; /* raw text carries its own line ends, if any */
    } else {
        return 0;
    }
    out[o++] = '\n';
    return o;
}

/* Seeds from one transcript: INIT + each sent line, and every sent line in order. */
static int transcript_seeds(const char *dir, const char *name)
{
    const char *src = getenv("LMPIPE_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/protocol/%s", src && *src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "seeds_rpc: cannot read %s (set LMPIPE_SRC to the repository)\n", path);
        return 1;
    }
    size_t cap = 1 << 20, n_all = 0, k = 0;
    char *all = malloc(cap), *one = malloc(cap), *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int bad = !all || !one;
    while (!bad && (len = getline(&line, &lcap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t m = sent_text(line, (size_t)len, all + n_all, cap - n_all);
        if (!m) continue;
        memcpy(one, INIT, strlen(INIT));
        memcpy(one + strlen(INIT), all + n_all, m);
        char seed[96];
        snprintf(seed, sizeof seed, "%.40s-%03zu.jsonl", name, k++);
        bad = seed_write("seeds_rpc", dir, seed, one, strlen(INIT) + m);
        n_all += m;
    }
    if (!bad) {
        char seed[96];
        snprintf(seed, sizeof seed, "%.40s-all.jsonl", name);
        bad = seed_write("seeds_rpc", dir, seed, all, n_all);
    }
    free(line);
    free(all);
    free(one);
    fclose(f);
    return bad;
}

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
    for (size_t i = 0; i < RPC_N_BAD_LINES; i++) {
        char name[32], buf[4096];
        int n = snprintf(buf, sizeof buf, INIT "%s\n" PING, rpc_bad_lines[i].line);
        snprintf(name, sizeof name, "bad%02zu.jsonl", i);
        if (n < 0 || (size_t)n >= sizeof buf || seed_write("seeds_rpc", argv[1], name, buf, (size_t)n)) return 1;
    }
    if (transcript_seeds(argv[1], "transcript.jsonl") || transcript_seeds(argv[1], "transcript-tools.jsonl")) return 1;
    return 0;
}
