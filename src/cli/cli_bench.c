/* cli_bench: `lmpipe bench -m MODEL [-p 64] [-n 32] [-d 0] [-t 1,2] [-r 5] [--json]`.
 *
 * Measures what llama.cpp's llama-bench measures, the same way, so the two can be put side by
 * side: prefill ("pp<P>") evaluates a P-token prompt from an empty cache and reports P / time;
 * decode ("tg<N>") evaluates N single-token steps from an empty cache and reports N / time.
 * Tokens are random ids (fixed seed). One untimed warm-up (a full prompt and one step) runs
 * first, as llama-bench does, so page-in and thread start-up are not measured. -d N (llama-bench's
 * -d) fills the cache with N tokens, untimed, before every timed prefill and decode, so the cost
 * of attention at depth shows. Each of -r runs gives one sample; we print the median and the best
 * run (a shared machine's load only ever slows a run down) besides mean ± sample standard
 * deviation, plus peak RSS, the peak anonymous RSS (RssAnon: what the engine allocated, without
 * the mapped model file), the kernel ISA, the thread count and the model's tensor type histogram.
 *
 * Both phases go through eng_prefill(), the path `run` and `serve` use, so whatever the engine
 * does for prompts (batched matrix-matrix prefill) is what gets measured. --json prints one
 * JSON object per thread count on its own line (tests/bench.sh parses that). */
#include "cli.h"

#include "../eng/eng.h"
#include "../util/err.h"
#include "../util/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
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

/* The median of v[0..n) (sorted in a copy; 0 when it cannot be). */
static double median_of(const double *v, int n)
{
    if (n <= 0) return 0;
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return 0;
    memcpy(c, v, (size_t)n * sizeof *c);
    for (int i = 1; i < n; i++) { /* insertion sort: a handful of runs */
        double t = c[i];
        int j = i - 1;
        for (; j >= 0 && c[j] > t; j--) c[j + 1] = c[j];
        c[j + 1] = t;
    }
    double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    free(c);
    return m;
}

static double best_of(const double *v, int n)
{
    double b = 0;
    for (int i = 0; i < n; i++) b = v[i] > b ? v[i] : b;
    return b;
}

/* An empty cache, then the first `depth` tokens evaluated untimed. */
static int fill_depth(struct eng_session *s, const int32_t *toks, size_t depth, struct err_info *ei)
{
    eng_session_reset(s);
    return depth ? eng_prefill(s, toks, depth, NULL, NULL, ei) : 0;
}

/* n prompt tokens after `depth` cached ones, as one prefill. */
static int time_prefill(struct eng_session *s, const int32_t *toks, size_t depth, size_t n, double *secs,
                        struct err_info *ei)
{
    int rc = fill_depth(s, toks, depth, ei);
    if (rc) return rc;
    double t0 = util_now();
    rc = eng_prefill(s, toks, depth + n, NULL, NULL, ei);
    *secs = util_now() - t0;
    return rc;
}

/* n single-token steps after `depth` cached tokens: each call evaluates only the newest token. */
static int time_decode(struct eng_session *s, const int32_t *toks, size_t depth, size_t n, double *secs,
                       struct err_info *ei)
{
    int rc = fill_depth(s, toks, depth, ei);
    if (rc) return rc;
    double t0 = util_now();
    for (size_t i = 0; i < n; i++)
        if ((rc = eng_prefill(s, toks, depth + i + 1, NULL, NULL, ei))) return rc;
    *secs = util_now() - t0;
    return 0;
}

/* -t 1,2,4: the thread counts, in order. */
struct thread_list {
    int t[BENCH_MAX_THREADS];
    int n;
};

static void parse_threads(void *dst, const char *name, const char *v)
{
    struct thread_list *l = dst;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    l->n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (l->n == BENCH_MAX_THREADS) cli_usage_error("at most %d thread counts in -t", BENCH_MAX_THREADS);
        l->t[l->n++] = (int)cli_flag_int(name, tok, 1, 1024);
    }
    if (!l->n) cli_usage_error("-t needs a thread count or a comma-separated list");
}

struct bench {
    const char *path;
    int64_t n_prompt, n_gen, reps, depth;
    bool json;
    int kv_type;    /* --kv-type (default f16, llama-bench's default cache type too) */
    int32_t *toks;  /* [depth + max(n_prompt, n_gen)] random ids */
    double *pp, *tg; /* [reps] tokens/s of each run */
    uint64_t anon;   /* the largest RssAnon seen after a run */
};

static void sample_anon(struct bench *b)
{
    uint64_t a = util_rss_anon(0);
    if (a > b->anon) b->anon = a;
}

/* One warm-up, then reps runs of prefill and decode. */
static int measure(struct bench *b, struct eng_session *s, struct err_info *ei)
{
    double secs;
    int rc = 0;
    size_t d = (size_t)b->depth;
    /* the warm-up: no depth (llama-bench's warm-up does not fill it either) */
    if (b->n_prompt) rc = time_prefill(s, b->toks, 0, (size_t)b->n_prompt, &secs, ei);
    if (!rc && b->n_gen) rc = time_decode(s, b->toks, 0, 1, &secs, ei);
    for (int r = 0; r < b->reps && !rc; r++) {
        if (b->n_prompt && !(rc = time_prefill(s, b->toks, d, (size_t)b->n_prompt, &secs, ei)))
            b->pp[r] = (double)b->n_prompt / secs;
        sample_anon(b);
        if (!rc && b->n_gen && !(rc = time_decode(s, b->toks, d, (size_t)b->n_gen, &secs, ei)))
            b->tg[r] = (double)b->n_gen / secs;
        sample_anon(b);
    }
    return rc;
}

/* One JSON object per thread count (tests/bench.sh reads these). */
static void report_json(const struct bench *b, const struct eng_model_info *m, uint64_t wbytes)
{
    struct stats sp = stats_of(b->pp, (int)b->reps), sg = stats_of(b->tg, (int)b->reps);
    printf("{\"model\": ");
    cli_json_str(stdout, b->path, strlen(b->path));
    printf(", \"arch\": \"%s\", \"n_params\": %llu, \"size\": %llu, \"types\": {", m->arch,
           (unsigned long long)m->n_params, (unsigned long long)wbytes);
    bool first = true;
    for (int t = 0; t < BLK_T_COUNT_; t++)
        if (m->type_count[t]) {
            printf("%s\"%s\": %llu", first ? "" : ", ", blk_type_name((uint32_t)t),
                   (unsigned long long)m->type_count[t]);
            first = false;
        }
    printf("}, \"isa\": \"%s\", \"kv_type\": \"%s\", \"threads\": %d, \"n_prompt\": %lld, \"n_gen\": %lld, "
           "\"n_depth\": %lld, \"reps\": %lld",
           m->isa, eng_kv_type_name(b->kv_type), m->threads, (long long)b->n_prompt, (long long)b->n_gen,
           (long long)b->depth, (long long)b->reps);
    int n = (int)b->reps;
    if (b->n_prompt) {
        printf(", \"pp_tps\": %.4f, \"pp_tps_sd\": %.4f, \"pp_median\": %.4f, \"pp_best\": %.4f, \"pp_samples\": [",
               sp.mean, sp.sd, median_of(b->pp, n), best_of(b->pp, n));
        for (int r = 0; r < b->reps; r++) printf("%s%.4f", r ? ", " : "", b->pp[r]);
        printf("]");
    }
    if (b->n_gen) {
        printf(", \"tg_tps\": %.4f, \"tg_tps_sd\": %.4f, \"tg_median\": %.4f, \"tg_best\": %.4f, \"tg_samples\": [",
               sg.mean, sg.sd, median_of(b->tg, n), best_of(b->tg, n));
        for (int r = 0; r < b->reps; r++) printf("%s%.4f", r ? ", " : "", b->tg[r]);
        printf("]");
    }
    printf(", \"peak_rss\": %llu, \"peak_rss_anon\": %llu}\n", (unsigned long long)util_peak_rss(),
           (unsigned long long)b->anon);
}

/* The table: a header before the first thread count, one row per test, peak RSS (weights
 * included: they are mapped) and RssAnon (the KV cache and buffers) at the end. */
static void report_table(const struct bench *b, const struct eng_model_info *m, uint64_t wbytes,
                         bool first, bool last)
{
    struct stats sp = stats_of(b->pp, (int)b->reps), sg = stats_of(b->tg, (int)b->reps);
    if (first) {
        printf("model: %s (%s, %.1f M params, %.1f MiB of weights)\n", b->path, m->arch,
               (double)m->n_params / 1e6, (double)wbytes / 1048576.0);
        printf("types:");
        for (int t = 0; t < BLK_T_COUNT_; t++)
            if (m->type_count[t])
                printf(" %s×%llu", blk_type_name((uint32_t)t), (unsigned long long)m->type_count[t]);
        printf("\nkernels: %s, KV cache %s, %lld runs each after a warm-up\n", m->isa, eng_kv_type_name(b->kv_type),
               (long long)b->reps);
        printf("| threads | test          |   median |     best |              t/s |\n");
        printf("| ------: | :------------ | -------: | -------: | ---------------: |\n");
    }
    char test[48], at[24] = "";
    int n = (int)b->reps;
    if (b->depth) snprintf(at, sizeof at, " @ d%lld", (long long)b->depth);
    if (b->n_prompt) {
        snprintf(test, sizeof test, "pp%lld%s", (long long)b->n_prompt, at);
        printf("| %7d | %-13s | %8.2f | %8.2f | %8.2f ± %5.2f |\n", m->threads, test, median_of(b->pp, n),
               best_of(b->pp, n), sp.mean, sp.sd);
    }
    if (b->n_gen) {
        snprintf(test, sizeof test, "tg%lld%s", (long long)b->n_gen, at);
        printf("| %7d | %-13s | %8.2f | %8.2f | %8.2f ± %5.2f |\n", m->threads, test, median_of(b->tg, n),
               best_of(b->tg, n), sg.mean, sg.sd);
    }
    if (last)
        printf("peak RSS: %.1f MiB, RssAnon %.1f MiB (largest seen after a run)\n",
               (double)util_peak_rss() / 1048576.0, (double)b->anon / 1048576.0);
}

/* Load the model with n threads, measure, report. 0 or 1 (the reason said on stderr). */
static int bench_threads(struct bench *b, int n, bool first, bool last)
{
    struct err_info ei;
    err_clear(&ei);
    char msg[512];
    struct eng_model *em;
    struct eng_session *s = NULL;
    struct eng_model_info *m = malloc(sizeof *m);
    int rc = m ? eng_model_open(&em, b->path, n, &ei) : err_set(&ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    if (rc) {
        fprintf(stderr, "lmpipe: cannot load model: %s\n", err_format(&ei, rc, msg, sizeof msg));
        if (rc == ERR_UNSUPPORTED)
            fprintf(stderr, "lmpipe: bench: this build's kernels cannot run this file's tensor types yet\n");
        free(m);
        return 1;
    }
    eng_model_info(em, 0, m);
    size_t n_tok = (size_t)b->depth + (size_t)(b->n_prompt > b->n_gen ? b->n_prompt : b->n_gen);
    if (n_tok > m->n_ctx_train) {
        fprintf(stderr, "lmpipe: bench: -d plus -p/-n is %zu, more than the model's context %u\n", n_tok,
                m->n_ctx_train);
        rc = ERR_CONTEXT;
    } else if ((rc = eng_session_create_kv(&s, em, (uint32_t)n_tok, b->kv_type, &ei))) {
        fprintf(stderr, "lmpipe: cannot create session: %s\n", err_format(&ei, rc, msg, sizeof msg));
    } else {
        uint64_t state = 0x5eed;
        for (size_t i = 0; i < n_tok; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            b->toks[i] = (int32_t)((state >> 33) % m->n_vocab);
        }
        if ((rc = measure(b, s, &ei))) fprintf(stderr, "lmpipe: bench failed: %s\n", err_format(&ei, rc, msg, sizeof msg));
    }
    if (rc == 0) {
        uint64_t wbytes = 0;
        for (int t = 0; t < BLK_T_COUNT_; t++) wbytes += m->type_bytes[t];
        if (b->json) report_json(b, m, wbytes);
        else report_table(b, m, wbytes, first, last);
        fflush(stdout);
    }
    eng_session_free(s);
    eng_model_free(em);
    free(m);
    return rc ? 1 : 0;
}

static const char k_bench_usage[] =
    "usage: lmpipe bench -m MODEL [-p N_PROMPT] [-n N_GEN] [-d DEPTH] [-t T[,T...]] [-r REPS] [--json]\n"
    "                    [--kv-type f16|f32|q8_0]\n"
    "  prefill: N_PROMPT tokens; decode: N_GEN single-token steps; each after DEPTH\n"
    "  cached tokens (default 0, evaluated untimed); median, best and mean ± sd over\n"
    "  REPS runs after one warm-up. KV cache f16 by default (llama-bench's default too).\n";

int cli_bench_main(int argc, char **argv)
{
    struct bench b = {NULL, 64, 32, 5, 0, false, ENG_KV_DEFAULT, NULL, NULL, NULL, 0};
    struct thread_list tl = {{0}, 0};
    const struct cli_opt opts[] = {
        {.name = "-m", .alt = "--model", .kind = CLI_STR, .dst = &b.path},
        {.name = "-p", .alt = "--n-prompt", .kind = CLI_INT, .dst = &b.n_prompt, .lo = 0, .hi = 1 << 20},
        {.name = "-n", .alt = "--n-gen", .kind = CLI_INT, .dst = &b.n_gen, .lo = 0, .hi = 1 << 20},
        {.name = "-d", .alt = "--n-depth", .kind = CLI_INT, .dst = &b.depth, .lo = 0, .hi = 1 << 20},
        {.name = "-r", .alt = "--repetitions", .kind = CLI_INT, .dst = &b.reps, .lo = 1, .hi = 1000},
        {.name = "-t", .alt = "--threads", .kind = CLI_FN, .dst = &tl, .fn = parse_threads},
        {.name = "--json", .kind = CLI_SET, .dst = &b.json},
        {.name = "--kv-type", .kind = CLI_FN, .dst = &b.kv_type, .fn = cli_kv_type_value},
    };
    const struct cli_spec spec = {.cmd = "bench", .usage = k_bench_usage, .opts = opts,
                                  .n_opts = sizeof opts / sizeof opts[0]};
    cli_parse(&spec, argc, argv);
    if (!b.path) cli_usage_error("bench needs -m MODEL");
    if (b.n_prompt == 0 && b.n_gen == 0) cli_usage_error("nothing to measure: -p and -n are both 0");
    if (!tl.n) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        tl.t[tl.n++] = nc > 0 ? (int)nc : 1;
    }
    size_t n_tok = (size_t)b.depth + (size_t)(b.n_prompt > b.n_gen ? b.n_prompt : b.n_gen);
    b.toks = malloc(n_tok * sizeof *b.toks);
    b.pp = calloc((size_t)b.reps, sizeof *b.pp);
    b.tg = calloc((size_t)b.reps, sizeof *b.tg);
    int status = !b.toks || !b.pp || !b.tg;
    if (status) fprintf(stderr, "lmpipe: out of memory\n");
    for (int i = 0; i < tl.n && !status; i++) status = bench_threads(&b, tl.t[i], i == 0, i == tl.n - 1);
    free(b.toks);
    free(b.pp);
    free(b.tg);
    return status;
}

/* `lmpipe dev peak-rss FILE CMD [ARGS...]`: run CMD (stdio inherited), then write its peak
 * resident set in bytes and the largest anonymous RSS seen (RssAnon, sampled every 10 ms while it
 * runs) to FILE, "RSS ANON\n", and exit with its status. tests/bench.sh measures the peer's
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
    uint64_t anon = 0;
    for (;;) {
        uint64_t a = util_rss_anon((int)pid); /* before waitpid: a reaped child has no status */
        anon = a > anon ? a : anon;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            fprintf(stderr, "lmpipe: dev peak-rss: waitpid: %s\n", strerror(errno));
            return 1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) != 0) return 1;
    FILE *f = fopen(argv[0], "w");
    bool ok = f && fprintf(f, "%llu %llu\n", (unsigned long long)ru.ru_maxrss * 1024ull, (unsigned long long)anon) > 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "lmpipe: dev peak-rss: cannot write '%s'\n", argv[0]);
        return 1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
