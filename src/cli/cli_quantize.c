/* cli_quantize: `lmpipe quantize IN OUT TYPE [--pure] [-t N] [-v]`.
 *
 * A thin front end over ftool_quantize() (src/ftool/ftool.h): parse the arguments, run it with
 * the threads asked for, and report on stderr what happened — every tensor whose row length forced a
 * different type than the recipe wanted, the sizes, and the quantization error per output type
 * (RMSE, RMSE relative to the source's RMS, and max |error|, all against the f32 source).
 *
 * Exit codes as everywhere: 2 usage (unknown type, missing argument), 1 runtime (unreadable
 * input, unsupported source type, write failure). The output file is replaced atomically, so a
 * failure never leaves a half-written OUT behind. */
#include "cli.h"

#include "../ftool/ftool.h"
#include "../util/err.h"
#include "../util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


struct progress {
    bool verbose;
    size_t n_fallback;
};

static void on_tensor(void *ud, size_t i, size_t n, const char *name, uint32_t from, uint32_t to,
                      uint32_t want, const uint64_t *ne)
{
    struct progress *p = ud;
    if (p->verbose)
        fprintf(stderr, "  [%4zu/%4zu] %-36s [%6llu, %6llu] %-6s -> %s\n", i + 1, n, name,
                (unsigned long long)ne[0], (unsigned long long)ne[1], blk_type_name(from),
                blk_type_name(to));
    if (to != want) {
        const struct blk_type_info *ti = blk_type_info(want);
        fprintf(stderr,
                "lmpipe: fallback: %s has rows of %llu, not a multiple of the %s block size %u: "
                "using %s\n",
                name, (unsigned long long)ne[0], blk_type_name(want), ti ? ti->blck : 0,
                blk_type_name(to));
        p->n_fallback++;
    }
}

static void list_types(FILE *f)
{
    fputs("types:", f);
    const struct ftool_target *t;
    for (size_t i = 0; (t = ftool_target_at(i)); i++) fprintf(f, " %s", t->name);
    fputc('\n', f);
}

static void print_report(const struct ftool_quant_report *r, const char *out, double secs)
{
    fprintf(stderr,
            "lmpipe: wrote %s: %zu tensors (%zu converted, %zu copied), %.2f MiB -> %.2f MiB "
            "in %.1f s\n",
            out, r->n_tensors, r->n_quantized, r->n_copied, (double)r->in_bytes / 1048576.0,
            (double)r->out_bytes / 1048576.0, secs);
    bool any = false;
    for (int t = 0; t < BLK_T_COUNT_; t++) {
        const struct ftool_err_stat *s = &r->by_type[t];
        if (!s->n) continue;
        if (!any)
            fprintf(stderr, "quantization error of the converted tensors against the source weights (as f32):\n"
                            "  %-7s %7s %12s %10s %10s %10s %7s\n",
                    "type", "tensors", "elements", "rmse", "rel_rmse", "max_abs", "bpw");
        any = true;
        double rmse = sqrt(s->sum_sq / (double)s->n);
        double rel = s->sum_sq_src > 0 ? sqrt(s->sum_sq / s->sum_sq_src) : 0.0;
        fprintf(stderr, "  %-7s %7llu %12llu %10.3e %9.3f%% %10.3e %7.2f\n",
                blk_type_name((uint32_t)t), (unsigned long long)s->n_tensors,
                (unsigned long long)s->n, rmse, 100.0 * rel, s->max_abs,
                8.0 * (double)s->bytes / (double)s->n);
    }
}

static const char k_usage[] =
    "usage: lmpipe quantize IN.gguf OUT.gguf TYPE [--pure] [-t THREADS] [-v]\n"
    "  IN holds F32/F16/BF16 weights; OUT is replaced atomically.\n"
    "  Plain type names put every 2-D weight in that type (norms and biases stay\n"
    "  F32), like llama-quantize --pure. The _S/_M/_L names are llama.cpp's mixes\n"
    "  (Q4_K_M: Q6_K for output.weight and half of attn_v/ffn_down, ...); --pure\n"
    "  turns a mix into its base type everywhere.\n";

int cli_quantize_main(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    size_t npos = 0;
    bool pure = false, verbose = false;
    int64_t threads = 0;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { /* the usage, then the types */
            fputs(k_usage, stdout);
            list_types(stdout);
            return 0;
        }
    const struct cli_opt opts[] = {
        {.name = "--pure", .kind = CLI_SET, .dst = &pure},
        {.name = "-v", .alt = "--verbose", .kind = CLI_SET, .dst = &verbose},
        {.name = "-t", .alt = "--threads", .kind = CLI_INT, .dst = &threads, .lo = 1, .hi = 1024},
    };
    const struct cli_spec spec = {"quantize", k_usage, opts, sizeof opts / sizeof opts[0], pos, 3, &npos,
                                  "IN OUT TYPE"};
    cli_parse(&spec, argc, argv);
    if (npos < 3) cli_usage_error("quantize needs IN OUT TYPE (e.g. lmpipe quantize m-F32.gguf m-Q4_K_M.gguf Q4_K_M)");
    const struct ftool_target *tg = ftool_target_find(pos[2]);
    if (!tg) {
        fprintf(stderr, "lmpipe: unknown quantization type '%s'\n", pos[2]);
        list_types(stderr);
        return 2;
    }
    if (threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? nc : 1;
    }
    struct progress pr = {verbose, 0};
    struct ftool_quant_opts o = {tg, pure, (int)threads, on_tensor, &pr};
    struct ftool_quant_report *rep = malloc(sizeof *rep);
    if (!rep) {
        fprintf(stderr, "lmpipe: out of memory\n");
        return 1;
    }
    fprintf(stderr, "lmpipe: quantizing %s -> %s as %s%s (file_type %u), %lld threads\n", pos[0],
            pos[1], tg->name, pure && tg->mix ? " --pure" : "", tg->ftype, (long long)threads);
    struct err_info ei;
    err_clear(&ei);
    double t0 = util_now();
    int rc = ftool_quantize(pos[0], pos[1], &o, rep, &ei);
    double secs = util_now() - t0;
    if (rc) {
        char msg[512];
        fprintf(stderr, "lmpipe: quantize failed: %s\n", err_format(&ei, rc, msg, sizeof msg));
        free(rep);
        return 1;
    }
    print_report(rep, pos[1], secs);
    if (pr.n_fallback)
        fprintf(stderr, "lmpipe: %zu tensor(s) used a fallback type (listed above)\n", pr.n_fallback);
    free(rep);
    return 0;
}
