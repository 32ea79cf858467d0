/* cli_eval: `lmpipe eval` (teacher-forced logits as JSON, with the field names of the llama.cpp
 * reference files) and `lmpipe tokenize` (ids and pieces; works on vocab-only GGUF files). */
#include "cli.h"

#include "../eng/eng.h"
#include "../util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Tokenize into a growing buffer (*ids malloc'd). */
static int tokenize_all(const struct eng_model *em, const char *text, size_t len, bool bos,
                        bool special, int32_t **ids, size_t *n, struct err_info *ei)
{
    size_t cap = len + 8;
    for (int attempt = 0; attempt < 2; attempt++) {
        free(*ids);
        if (!(*ids = malloc(cap * sizeof **ids))) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
        int rc = eng_tokenize(em, text, len, bos, special, *ids, cap, n, ei);
        if (rc != ERR_LIMIT || *n <= cap) return rc;
        cap = *n;
    }
    return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "tokenization failed");
}

/* ---------------- tokenize ---------------- */

static void print_tokens(const struct eng_model *em, const int32_t *ids, size_t n, bool ids_only)
{
    if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        puts("]");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        const char *p = eng_token_text(em, ids[i], &pl);
        printf("%6d ", ids[i]);
        cli_json_str(stdout, p, pl);
        putchar('\n');
    }
}

int cli_tokenize_main(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    bool ids_only = false, bos = true, special = false, timing = false;
    const struct cli_opt opts[] = {
        {.name = "-m", .alt = "--model", .kind = CLI_STR, .dst = &model},
        {.name = "--ids", .kind = CLI_SET, .dst = &ids_only},
        {.name = "--no-bos", .kind = CLI_CLEAR, .dst = &bos},
        {.name = "--special", .kind = CLI_SET, .dst = &special},
        {.name = "--time", .kind = CLI_SET, .dst = &timing},
    };
    const struct cli_spec spec = {"tokenize", NULL, opts, sizeof opts / sizeof opts[0], &text, 1, NULL,
                                  "one TEXT argument"};
    cli_parse(&spec, argc, argv);
    if (!model) cli_usage_error("tokenize needs -m MODEL");
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    if (!text) {
        if (!(buf = cli_slurp(stdin, &len))) {
            fprintf(stderr, "lmpipe: cannot read stdin\n");
            return 1;
        }
        text = buf;
    }
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em;
    int rc = eng_model_open_vocab(&em, model, &ei);
    if (rc) {
        free(buf);
        cli_die("cannot load tokenizer", &ei, rc);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = util_now();
    rc = tokenize_all(em, text, len, bos, special, &ids, &n, &ei);
    if (timing && rc == 0)
        fprintf(stderr, "lmpipe: tokenized %zu bytes into %zu tokens in %.2f ms (%s)\n", len, n,
                (util_now() - t0) * 1e3, eng_tokenizer_name(em));
    if (rc == 0) print_tokens(em, ids, n, ids_only);
    else fprintf(stderr, "lmpipe: tokenization failed: %s\n", err_str(rc));
    free(ids);
    eng_model_free(em);
    free(buf);
    return rc ? 1 : 0;
}

/* ---------------- eval ---------------- */

struct eval_ctx {
    uint32_t n_vocab, top;
    bool all;
    float *all_logits; /* [n][n_vocab] when all */
    int32_t *top_id;   /* [top] */
    bool first;
    uint64_t n_bad;    /* logits that were NaN or infinite, written as null */
    uint32_t bad_pos;  /* the first position with one */
};

/* One logit as JSON: null when it is not a finite number (JSON has no NaN or Infinity). */
static void print_logit(float x)
{
    if (isfinite(x)) printf("%.9g", (double)x);
    else printf("null");
}

/* NaN orders below everything, so the top list is the same whatever the order of the scan. */
static float rank(float x) { return isnan(x) ? -INFINITY : x; }

/* The top k ids of logits[n] by insertion into a sorted list (k is small). */
static void top_k(const float *logits, uint32_t n, uint32_t k, int32_t *top_id)
{
    uint32_t have = 0;
    for (uint32_t i = 0; i < n; i++) {
        float x = rank(logits[i]);
        if (have < k) {
            uint32_t j = have++;
            while (j > 0 && (rank(logits[top_id[j - 1]]) < x)) { top_id[j] = top_id[j - 1]; j--; }
            top_id[j] = (int32_t)i;
        } else if (k && x > rank(logits[top_id[k - 1]])) {
            uint32_t j = k - 1;
            while (j > 0 && rank(logits[top_id[j - 1]]) < x) { top_id[j] = top_id[j - 1]; j--; }
            top_id[j] = (int32_t)i;
        }
    }
}

static int eval_cb(void *ud, uint32_t pos, int32_t token, const float *logits, uint32_t n_vocab)
{
    struct eval_ctx *e = ud;
    (void)n_vocab;
    if (e->all) memcpy(e->all_logits + (size_t)pos * e->n_vocab, logits, e->n_vocab * sizeof(float));
    uint32_t k = e->top < e->n_vocab ? e->top : e->n_vocab;
    top_k(logits, e->n_vocab, k, e->top_id);
    printf("%s\n    {\"pos\": %u, \"token\": %d, \"top\": [", e->first ? "" : ",", pos, token);
    e->first = false;
    for (uint32_t i = 0; i < k; i++) {
        printf("%s[%d, ", i ? ", " : "", e->top_id[i]);
        print_logit(logits[e->top_id[i]]);
        printf("]");
    }
    printf("]}");
    for (uint32_t i = 0; i < e->n_vocab; i++)
        if (!isfinite(logits[i]) && !e->n_bad++) e->bad_pos = pos;
    return 0;
}

/* The reference file's shape: model_file, n_vocab, prompt_tokens, positions[, logits_all]. */
static int eval_print(struct eng_session *s, const char *model, const int32_t *toks, size_t n,
                      struct eval_ctx *e, struct err_info *ei)
{
    printf("{\n  \"model_file\": ");
    cli_json_str(stdout, model, strlen(model));
    printf(",\n  \"n_vocab\": %u,\n  \"prompt_tokens\": [", e->n_vocab);
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", toks[i]);
    printf("],\n  \"positions\": [");
    int rc = eng_evaluate(s, toks, n, eval_cb, e, ei);
    printf("\n  ]");
    if (rc == 0 && e->all) {
        printf(",\n  \"logits_all\": [");
        for (size_t i = 0; i < n; i++) {
            printf("%s\n    [", i ? "," : "");
            for (uint32_t j = 0; j < e->n_vocab; j++) {
                printf("%s", j ? ", " : "");
                print_logit(e->all_logits[i * e->n_vocab + j]);
            }
            printf("]");
        }
        printf("\n  ]");
    }
    if (e->n_bad || rc == ERR_NONFINITE) printf(",\n  \"non_finite\": true");
    printf("\n}\n");
    return rc;
}

int cli_eval_main(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int64_t top = 20, n_ctx = 0, threads = 0;
    bool all = false, bos = true, special = false;
    int kv_type = ENG_KV_DEFAULT;
    const struct cli_opt opts[] = {
        {.name = "-m", .alt = "--model", .kind = CLI_STR, .dst = &model},
        {.name = "-p", .alt = "--prompt", .kind = CLI_STR, .dst = &prompt},
        {.name = "-f", .alt = "--file", .kind = CLI_STR, .dst = &file},
        {.name = "--top", .kind = CLI_INT, .dst = &top, .lo = 0, .hi = 1 << 20},
        {.name = "-c", .kind = CLI_INT, .dst = &n_ctx, .lo = ENG_MIN_CTX, .hi = 1 << 24},
        {.name = "-t", .kind = CLI_INT, .dst = &threads, .lo = 1, .hi = 1024},
        {.name = "--all-logits", .kind = CLI_SET, .dst = &all},
        {.name = "--no-bos", .kind = CLI_CLEAR, .dst = &bos},
        {.name = "--special", .kind = CLI_SET, .dst = &special},
        {.name = "--kv-type", .kind = CLI_FN, .dst = &kv_type, .fn = cli_kv_type_value},
    };
    const struct cli_spec spec = {.cmd = "eval", .opts = opts, .n_opts = sizeof opts / sizeof opts[0]};
    cli_parse(&spec, argc, argv);
    if (!model) cli_usage_error("eval needs -m MODEL");
    if (!!prompt == !!file) cli_usage_error("eval needs exactly one of -p TEXT or -f FILE");
    char *buf = NULL;
    size_t plen = prompt ? strlen(prompt) : 0;
    if (file) buf = cli_read_file_or_die(file, &plen);
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em;
    struct eng_session *s = NULL;
    int rc = eng_model_open(&em, model, (int)threads, &ei);
    if (rc) {
        free(buf);
        cli_die("cannot load model", &ei, rc);
    }
    int32_t *toks = NULL;
    size_t n = 0;
    struct eval_ctx e = {eng_model_n_vocab(em), (uint32_t)top, all, NULL, NULL, true, 0, 0};
    if (!(rc = eng_session_create_kv(&s, em, (uint32_t)n_ctx, kv_type, &ei)))
        rc = tokenize_all(em, prompt ? prompt : buf, plen, bos, special, &toks, &n, &ei);
    if (rc == 0 && n == 0) rc = err_set(&ei, ERR_INVALID, ERR_NO_OFFSET, "the prompt has no tokens");
    if (rc == 0 && n > eng_session_n_ctx(s)) /* say so before any output */
        rc = err_set(&ei, ERR_CONTEXT, ERR_NO_OFFSET,
                     "context_length_exceeded: the prompt needs at least %zu tokens but the context holds %u",
                     n, eng_session_n_ctx(s));
    if (rc == 0) {
        e.top_id = calloc(top ? (size_t)top : 1, sizeof *e.top_id);
        if (all) e.all_logits = malloc(n * e.n_vocab * sizeof(float));
        if (!e.top_id || (all && !e.all_logits)) rc = err_set(&ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    if (rc == 0) rc = eval_print(s, model, toks, n, &e, &ei);
    if (rc == 0 && e.n_bad)
        rc = err_set(&ei, ERR_NONFINITE, ERR_NO_OFFSET,
                     "non_finite_logits: the model computed NaN or infinite logits (first at position "
                     "%u), written as null; check the file with `lmpipe info --check`", e.bad_pos);
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: eval failed: %s\n", err_format(&ei, rc, m, sizeof m));
    }
    free(e.top_id);
    free(e.all_logits);
    free(toks);
    eng_session_free(s);
    eng_model_free(em);
    free(buf);
    return rc ? 1 : 0;
}
