/* cli_bench: `lmpipe bench -m MODEL [-p 64] [-n 32] [-t 1,2] [-r 5] [--json]`.
 *
 * Measures what llama.cpp's llama-bench measures, the same way, so the two can be put side by
 * side: prefill ("pp<P>") evaluates a P-token prompt from an empty cache and reports P / time;
 * decode ("tg<N>") evaluates N single-token steps from an empty cache and reports N / time.
 * Tokens are random ids (fixed seed). One untimed warm-up (a full prompt and one step) runs
 * first, as llama-bench does, so page-in and thread start-up are not measured. Each of -r runs
 * gives one sample; we print mean ± sample standard deviation, plus peak RSS, the kernel ISA,
 * the thread count and the model's tensor type histogram.
 *
 * Both phases go through eng_prefill(), the path `run` and `serve` use, so whatever the engine
 * does for prompts (batched matrix-matrix prefill) is what gets measured. --json prints one
 * JSON object per thread count on its own line (tests/bench.sh parses that). */
#include "cli.h"

#include "../eng/eng.h"
#include "../gguf/gguf.h"
#include "../kern/kern.h"
#include "../util/err.h"
#include "../util/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>


#define BENCH_MAX_THREADS 16 /* entries in a -t list */

struct stats {
    double mean, sd;
};

static struct stats stats_of(const double *v, int n)
{
    struct stats s = {0, 0};
    if (n <= 0) return s;
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    if (n > 1) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (v[i] - s.mean) * (v[i] - s.mean);
        s.sd = sqrt(ss / (n - 1));
    }
    return s;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int time_prefill(struct eng_session *s, const int32_t *toks, size_t n, double *secs,
                        struct err_info *ei)
{
    eng_session_reset(s);
    double t0 = util_now();
    int rc = eng_prefill(s, toks, n, NULL, NULL, NULL, NULL, NULL, ei);
    *secs = util_now() - t0;
    return rc;
}

/* n single-token steps from an empty cache: each call evaluates only the newest token. */
static int time_decode(struct eng_session *s, const int32_t *toks, size_t n, double *secs,
                       struct err_info *ei)
{
    eng_session_reset(s);
    double t0 = util_now();
    for (size_t i = 0; i < n; i++) {
        int rc = eng_prefill(s, toks, i + 1, NULL, NULL, NULL, NULL, NULL, ei);
        if (rc) return rc;
    }
    *secs = util_now() - t0;
    return 0;
}

static int parse_threads(const char *v, int *out, int max)
{
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) cli_usage_error("at most %d thread counts in -t", max);
        out[n++] = (int)cli_flag_int("-t", tok, 1, 1024);
    }
    if (!n) cli_usage_error("-t needs a thread count or a comma-separated list");
    return n;
}

int cli_bench_main(int argc, char **argv)
{
    const char *path = NULL;
    int64_t n_prompt = 64, n_gen = 32, reps = 5;
    int threads[BENCH_MAX_THREADS], n_threads = 0;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
#define VAL() (i + 1 < argc ? argv[++i] : (cli_usage_error("option %s needs a value", a), ""))
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) path = VAL();
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) n_prompt = cli_flag_int("-p", VAL(), 0, 1 << 20);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) n_gen = cli_flag_int("-n", VAL(), 0, 1 << 20);
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) reps = cli_flag_int("-r", VAL(), 1, 1000);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) n_threads = parse_threads(VAL(), threads, BENCH_MAX_THREADS);
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: lmpipe bench -m MODEL [-p N_PROMPT] [-n N_GEN] [-t T[,T...]] [-r REPS] [--json]\n"
                   "  prefill: N_PROMPT tokens from an empty cache; decode: N_GEN single-token steps\n"
                   "  from an empty cache; mean ± sd over REPS runs after one warm-up.\n");
            return 0;
        } else cli_usage_error("unknown argument '%s' for bench", a);
#undef VAL
    }
    if (!path) cli_usage_error("bench needs -m MODEL");
    if (n_prompt == 0 && n_gen == 0) cli_usage_error("nothing to measure: -p and -n are both 0");
    if (!n_threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads[n_threads++] = nc > 0 ? (int)nc : 1;
    }
    size_t n_tok = (size_t)(n_prompt > n_gen ? n_prompt : n_gen);
    int32_t *toks = malloc(n_tok * sizeof *toks);
    double *pp = malloc((size_t)reps * sizeof *pp), *tg = malloc((size_t)reps * sizeof *tg);
    if (!toks || !pp || !tg) {
        fprintf(stderr, "lmpipe: out of memory\n");
        return 1;
    }
    int status = 0;
    for (int ti = 0; ti < n_threads && !status; ti++) {
        struct err_info ei;
        err_clear(&ei);
        struct eng_model em;
        struct eng_session s;
        memset(&s, 0, sizeof s);
        char msg[512];
        int rc = eng_model_open(&em, path, threads[ti], &ei);
        if (rc) {
            fprintf(stderr, "lmpipe: cannot load model: %s\n", err_format(&ei, rc, msg, sizeof msg));
            if (rc == ERR_UNSUPPORTED)
                fprintf(stderr, "lmpipe: bench: this build's kernels (%s) cannot run this file's "
                                "tensor types yet\n", kern_isa_name());
            status = 1;
            break;
        }
        const struct model *m = &em.model;
        uint32_t n_ctx = (uint32_t)(n_prompt + n_gen);
        if (n_tok > m->hp.n_ctx_train) {
            fprintf(stderr, "lmpipe: bench: -p/-n %zu exceeds the model's context %u\n", n_tok,
                    m->hp.n_ctx_train);
            eng_model_free(&em);
            status = 1;
            break;
        }
        if ((rc = eng_session_init(&s, &em, n_ctx, &ei))) {
            fprintf(stderr, "lmpipe: cannot create session: %s\n", err_format(&ei, rc, msg, sizeof msg));
            eng_model_free(&em);
            status = 1;
            break;
        }
        uint64_t state = 0x5eed;
        for (size_t i = 0; i < n_tok; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            toks[i] = (int32_t)((state >> 33) % m->hp.n_vocab);
        }
        /* warm-up, not measured */
        double secs;
        if (n_prompt) rc = time_prefill(&s, toks, (size_t)n_prompt, &secs, &ei);
        if (!rc && n_gen) rc = time_decode(&s, toks, 1, &secs, &ei);
        for (int r = 0; r < reps && !rc; r++) {
            if (n_prompt && !(rc = time_prefill(&s, toks, (size_t)n_prompt, &secs, &ei)))
                pp[r] = (double)n_prompt / secs;
            if (!rc && n_gen && !(rc = time_decode(&s, toks, (size_t)n_gen, &secs, &ei)))
                tg[r] = (double)n_gen / secs;
        }
        if (rc) {
            fprintf(stderr, "lmpipe: bench failed: %s\n", err_format(&ei, rc, msg, sizeof msg));
            status = 1;
        } else {
            /* type histogram and size */
            const struct gguf_ctx *g = m->g;
            uint64_t count[BLK_T_COUNT_] = {0}, n_params = 0, wbytes = 0;
            for (uint64_t i = 0; i < g->n_tensors; i++) {
                const struct gguf_tensor *t = &g->tensors[i];
                count[t->type]++;
                n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
                wbytes += t->nbytes;
            }
            struct stats sp = stats_of(pp, (int)reps), sg = stats_of(tg, (int)reps);
            int nthr = em.pool ? kern_pool_threads(em.pool) : 1;
            double rss = (double)util_peak_rss() / 1048576.0;
            if (json) {
                printf("{\"model\": ");
                json_str(path);
                printf(", \"arch\": \"%s\", \"n_params\": %llu, \"size\": %llu, \"types\": {",
                       model_arch_name(m->arch), (unsigned long long)n_params,
                       (unsigned long long)wbytes);
                bool first = true;
                for (int t = 0; t < BLK_T_COUNT_; t++)
                    if (count[t]) {
                        printf("%s\"%s\": %llu", first ? "" : ", ", blk_type_name((uint32_t)t),
                               (unsigned long long)count[t]);
                        first = false;
                    }
                printf("}, \"isa\": \"%s\", \"threads\": %d, \"n_prompt\": %lld, \"n_gen\": %lld, "
                       "\"reps\": %lld",
                       kern_isa_name(), nthr, (long long)n_prompt, (long long)n_gen, (long long)reps);
                if (n_prompt) {
                    printf(", \"pp_tps\": %.4f, \"pp_tps_sd\": %.4f, \"pp_samples\": [", sp.mean, sp.sd);
                    for (int r = 0; r < reps; r++) printf("%s%.4f", r ? ", " : "", pp[r]);
                    printf("]");
                }
                if (n_gen) {
                    printf(", \"tg_tps\": %.4f, \"tg_tps_sd\": %.4f, \"tg_samples\": [", sg.mean, sg.sd);
                    for (int r = 0; r < reps; r++) printf("%s%.4f", r ? ", " : "", tg[r]);
                    printf("]");
                }
                printf(", \"peak_rss\": %llu}\n", (unsigned long long)util_peak_rss());
            } else {
                if (ti == 0) {
                    printf("model: %s (%s, %.1f M params, %.1f MiB of weights)\n", path,
                           model_arch_name(m->arch), (double)n_params / 1e6,
                           (double)wbytes / 1048576.0);
                    printf("types:");
                    for (int t = 0; t < BLK_T_COUNT_; t++)
                        if (count[t])
                            printf(" %s×%llu", blk_type_name((uint32_t)t), (unsigned long long)count[t]);
                    printf("\nkernels: %s, %lld runs each after a warm-up\n", kern_isa_name(),
                           (long long)reps);
                    printf("| threads | test   |              t/s |\n");
                    printf("| ------: | :----- | ---------------: |\n");
                }
                char test[32];
                if (n_prompt) {
                    snprintf(test, sizeof test, "pp%lld", (long long)n_prompt);
                    printf("| %7d | %-6s | %8.2f ± %5.2f |\n", nthr, test, sp.mean, sp.sd);
                }
                if (n_gen) {
                    snprintf(test, sizeof test, "tg%lld", (long long)n_gen);
                    printf("| %7d | %-6s | %8.2f ± %5.2f |\n", nthr, test, sg.mean, sg.sd);
                }
                if (ti == n_threads - 1) printf("peak RSS: %.1f MiB\n", rss);
            }
            fflush(stdout);
        }
        eng_session_free(&s);
        eng_model_free(&em);
    }
    free(toks);
    free(pp);
    free(tg);
    return status;
}

/* `lmpipe dev peak-rss FILE CMD [ARGS...]`: run CMD (stdio inherited), then write its peak
 * resident set in bytes to FILE and exit with its status. tests/bench.sh measures the peer's
 * memory this way, so both engines' peak RSS come from the same getrusage field. */
int cli_dev_peak_rss(int argc, char **argv)
{
    if (argc < 2) cli_usage_error("usage: lmpipe dev peak-rss FILE CMD [ARGS...]");
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lmpipe: dev peak-rss: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        fprintf(stderr, "lmpipe: dev peak-rss: cannot run '%s': %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "lmpipe: dev peak-rss: waitpid: %s\n", strerror(errno));
            return 1;
        }
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) != 0) return 1;
    FILE *f = fopen(argv[0], "w");
    bool ok = f && fprintf(f, "%llu\n", (unsigned long long)ru.ru_maxrss * 1024ull) > 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "lmpipe: dev peak-rss: cannot write '%s'\n", argv[0]);
        return 1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
