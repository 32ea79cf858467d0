/* bench_gram: the grammar matcher's cost per token, alone (the engine integration comes later).
 *
 * For the qwen2 (152k) and starcoder (49k, SmolLM2's) vocabularies and three grammars (our
 * grammars/json.gbnf, and a tool-call grammar written here as a schema converter would emit it,
 * with unbounded strings and with maxLength 500 strings, a counted repetition),
 * it tokenizes realistic tool-call JSON texts (~60 tokens) with the vocabulary's tokenizer and
 * walks them token by token through a fresh matcher, timing at every position:
 *   check  - gram_tok_check of the token that comes next (the sampled token, accepted);
 *   mask   - gram_tok_mask, as if that token had been rejected (first visit of the position;
 *            "memo" is the same mask asked again);
 *   forced - gram_tok_forced (the engine asks it once per step);
 *   accept - gram_tok_accept of the token.
 * Each text is walked ROUNDS times with a new matcher (the first round also pays for caches and
 * first-touch memory); times are thread CPU time, so other processes on the machine do not
 * count. Not a unit test: nothing is asserted about speed.
 *
 * usage: bench_gram [rounds]    (LMPIPE_SHARED: fixtures folder, default ../shared) */
#include "gram/gram.h"
#include "tok/tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *tool_grammar =
    "# a tool call: {\"name\": ..., \"arguments\": {...}} for four tools, compact or one space\n"
    "root ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws call \"}\"\n"
    "call ::= \"\\\"exec\\\"\" ws \",\" ws args-key \"{\" ws exec \"}\" ws |\n"
    "       \"\\\"read_file\\\"\" ws \",\" ws args-key \"{\" ws path-kv \"}\" ws |\n"
    "       \"\\\"write_file\\\"\" ws \",\" ws args-key \"{\" ws path-kv \",\" ws content-kv \"}\" ws |\n"
    "       \"\\\"web_search\\\"\" ws \",\" ws args-key \"{\" ws search \"}\" ws\n"
    "args-key ::= \"\\\"arguments\\\"\" ws \":\" ws\n"
    "exec ::= \"\\\"command\\\"\" ws \":\" ws string ( \",\" ws \"\\\"timeout\\\"\" ws \":\" ws integer )?\n"
    "path-kv ::= \"\\\"path\\\"\" ws \":\" ws string\n"
    "content-kv ::= \"\\\"content\\\"\" ws \":\" ws string\n"
    "search ::= \"\\\"query\\\"\" ws \":\" ws string ( \",\" ws \"\\\"count\\\"\" ws \":\" ws integer )?\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )%s \"\\\"\" ws\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ws\n"
    "ws ::= \" \"?\n";

static const char *texts[] = {
    "{\"name\": \"exec\", \"arguments\": {\"command\": \"grep -rn \\\"TODO\\\" src/ --include=*.c | sort | head -n 20\", "
    "\"timeout\": 30}}",
    "{\"name\": \"write_file\", \"arguments\": {\"path\": \"/home/user/notes/meeting-2024-07-26.md\", \"content\": "
    "\"# Meeting\\n- ship the grammar engine\\n- caf\\u00e9 at 10:00\\n\"}}",
    "{\"name\": \"web_search\", \"arguments\": {\"query\": \"llama.cpp GBNF grammar performance on large vocabularies "
    "2024\", \"count\": 5}}",
};

struct acc {
    double check, mask, mask_max, memo, forced, accept;
    long n, n_mask;
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[*len] = 0;
    return buf;
}

/* Walk one text through fresh matchers, one pass per operation so each timer pair spans work
 * far longer than the clock's own cost (a system call for thread CPU time): checks and forced
 * runs are repeated REPS times per position, masks (tens of microseconds and up) timed one by
 * one, accepts timed over the whole text. */
#define REPS 50
static int walk(const struct gram *g, const struct gram_vocab *gv, const int32_t *ids, size_t n, uint64_t *bits,
                struct acc *a)
{
    struct gram_matcher m[4];
    struct err_info ei;
    err_clear(&ei);
    for (int k = 0; k < 4; k++) {
        if (gram_matcher_init(&m[k], g, gv, &ei)) {
            fprintf(stderr, "bench_gram: %s\n", ei.msg);
            while (k--) gram_matcher_free(&m[k]);
            return 1;
        }
    }
    int bad = 0;
    double t = now();
    for (size_t k = 0; k < n; k++) bad |= gram_tok_accept(&m[0], ids[k]);
    a->accept += now() - t;
    for (size_t k = 0; k < n; k++) {
        double t0 = now();
        for (int r = 0; r < REPS; r++) bad |= gram_tok_check(&m[1], ids[k]);
        double t1 = now();
        bad |= gram_tok_accept(&m[1], ids[k]);
        bad |= gram_tok_mask(&m[2], bits);
        double t2 = now();
        for (int r = 0; r < REPS; r++) gram_tok_mask(&m[2], bits);
        double t3 = now();
        bad |= gram_tok_accept(&m[2], ids[k]);
        int32_t run[16];
        size_t nrun;
        double t4 = now();
        for (int r = 0; r < REPS; r++) bad |= gram_tok_forced(&m[3], run, 16, &nrun);
        double t5 = now();
        bad |= gram_tok_accept(&m[3], ids[k]);
        a->check += (t1 - t0) / REPS;
        a->mask += t2 - t1;
        if (t2 - t1 > a->mask_max) a->mask_max = t2 - t1;
        a->memo += (t3 - t2) / REPS;
        a->forced += (t5 - t4) / REPS;
        a->n++;
    }
    if (bad) fprintf(stderr, "bench_gram: a token of the text was rejected\n");
    if (!gram_matcher_can_end(&m[0])) {
        fprintf(stderr, "bench_gram: the text does not end the grammar\n");
        bad = 1;
    }
    for (int k = 0; k < 4; k++) gram_matcher_free(&m[k]);
    return bad != 0;
}

static int bench_vocab(const char *shared, const char *name, int rounds)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", shared, name);
    struct gguf_ctx gg;
    struct tok_vocab *tv = NULL;
    struct err_info ei;
    err_clear(&ei);
    if (gguf_open(path, &gg, &ei) || tok_load(&tv, &gg, &ei)) {
        fprintf(stderr, "bench_gram: %s: %s\n", path, ei.msg);
        return 1;
    }
    struct gram_vocab gv;
    double t0 = now();
    if (gram_vocab_init(&gv, tok_view(tv), &ei)) {
        fprintf(stderr, "bench_gram: %s\n", ei.msg);
        return 1;
    }
    printf("%s: %u tokens, trie %u nodes, built in %.1f ms\n", name, gv.n_vocab, gv.n_nodes, (now() - t0) * 1e3);
    size_t jlen;
    const char *json = slurp("grammars/json.gbnf", &jlen);
    /* the tool-call grammar with unbounded strings, and with maxLength 500 (a counted class) */
    char tool[2][4096];
    snprintf(tool[0], sizeof tool[0], tool_grammar, "*");
    snprintf(tool[1], sizeof tool[1], tool_grammar, "{0,500}");
    const char *gsrc[3] = {json, tool[0], tool[1]};
    const char *gname[3] = {"json.gbnf", "tool-call", "tool-max"};
    uint64_t *bits = calloc(gv.n_words, sizeof *bits);
    int bad = !json || !bits;
    for (int gi = 0; gi < 3 && !bad; gi++) {
        struct gram *g;
        if (gram_parse(gsrc[gi], strlen(gsrc[gi]), &g, &ei)) {
            fprintf(stderr, "bench_gram: %s: %s\n", gname[gi], ei.msg);
            bad = 1;
            break;
        }
        struct acc first = {0}, rest = {0};
        for (int r = 0; r < rounds && !bad; r++) {
            for (size_t t = 0; t < sizeof texts / sizeof texts[0] && !bad; t++) {
                int32_t ids[512];
                size_t n;
                if (tok_encode(tv, texts[t], strlen(texts[t]), false, false, ids, 512, &n)) {
                    bad = 1;
                    break;
                }
                bad = walk(g, &gv, ids, n, bits, r ? &rest : &first);
            }
        }
        for (int k = 0; k < 2 && !bad; k++) {
            const struct acc *a = k ? &rest : &first;
            if (!a->n) continue;
            printf("  %-10s %-6s %4ld tokens: check %6.2f us  mask %6.3f ms (max %6.3f)  memo %6.2f us  forced %6.2f us  "
                   "accept %5.2f us\n",
                   gname[gi], k ? "later" : "first", a->n, a->check / a->n * 1e6, a->mask / a->n * 1e3, a->mask_max * 1e3,
                   a->memo / a->n * 1e6, a->forced / a->n * 1e6, a->accept / a->n * 1e6);
        }
        gram_free(g);
    }
    free(bits);
    gram_vocab_free(&gv);
    tok_free(tv);
    gguf_free(&gg);
    return bad;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) rounds = 1;
    const char *shared = getenv("LMPIPE_SHARED");
    if (!shared || !*shared) shared = "../shared";
    printf("bench_gram: %d rounds of %zu tool-call texts; per token, thread CPU time\n", rounds,
           sizeof texts / sizeof texts[0]);
    return bench_vocab(shared, "starcoder", rounds) | bench_vocab(shared, "qwen2", rounds);
}
