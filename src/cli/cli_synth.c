/* cli_synth: `lmpipe dev ...`, the hidden developer commands: `dev synth OUT --arch A --dim D
 * ...` writes a random-weight model with ftool_synth (src/ftool/ftool_synth.c says how and why),
 * `dev edit IN OUT --ctx N --chat-template-file F` copies a model with that metadata replaced
 * (ftool_edit), `dev peak-rss` is in cli_bench.c. */
#include "cli.h"

#include "../ftool/ftool.h"
#include "../util/err.h"
#include "../util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char k_synth_usage[] =
    "usage: lmpipe dev synth OUT.gguf [--preset tinyllama|smollm2-135m|qwen2.5-0.5b]\n"
    "         [--arch llama|qwen2|qwen3|phi3|gemma3] [--dim D] [--layers L] [--heads H]\n"
    "         [--kv-heads K] [--ffn F] [--vocab V | --vocab-from VOCAB.gguf] [--head-dim HD]\n"
    "         [--tied] [--type T] [--seed S] [--ctx N] [-t THREADS]\n"
    "  writes a random-weight model (N(0,0.02) weights, SPM vocabulary) of that shape;\n"
    "  T is any `lmpipe quantize` type (default F32; mixes such as Q4_K_M apply).\n"
    "  --vocab-from copies a real tokenizer (the tokenizer.* keys of a GGUF, e.g. llama.cpp's\n"
    "  ggml-vocab-starcoder.gguf for SmolLM2, ggml-vocab-qwen2.gguf for Qwen2.5).\n";

struct synth_report {
    const char *out;
    const struct ftool_synth_cfg *c;
};

static void on_tensor(void *ud, size_t i, size_t n, const char *name, uint32_t from, uint32_t to,
                      uint32_t want, const uint64_t *ne)
{
    (void)ud, (void)i, (void)n, (void)from;
    if (to != want)
        fprintf(stderr, "lmpipe: fallback: %s has rows of %llu: %s instead of %s\n", name,
                (unsigned long long)ne[0], blk_type_name(to), blk_type_name(want));
}

static void on_start(void *ud, uint64_t n_params, uint64_t bytes, const char *type)
{
    const struct synth_report *r = ud;
    const struct ftool_synth_cfg *c = r->c;
    fprintf(stderr, "lmpipe: synth %s: %s d%lld l%lld h%lld/%lld ffn %lld vocab %lld%s, %.1f M params, "
                    "%s (%.1f MiB)\n",
            r->out, c->arch, (long long)c->dim, (long long)c->layers, (long long)c->heads,
            (long long)c->kv_heads, (long long)c->ffn, (long long)c->vocab, c->tied ? " tied" : "",
            (double)n_params / 1e6, type, (double)bytes / 1048576.0);
}

static int cmd_synth(int argc, char **argv)
{
    struct ftool_synth_cfg c = {NULL, -1, -1, -1, -1, -1, -1, -1, 2048, 1234, false, "F32", NULL};
    const char *out = NULL, *preset = NULL;
    int64_t threads = 0;
    bool tied = false;
    const struct cli_opt opts[] = {
        {.name = "--arch", .kind = CLI_STR, .dst = &c.arch},
        {.name = "--preset", .kind = CLI_STR, .dst = &preset},
        {.name = "--dim", .kind = CLI_INT, .dst = &c.dim, .lo = 1, .hi = 65536},
        {.name = "--layers", .kind = CLI_INT, .dst = &c.layers, .lo = 1, .hi = 512},
        {.name = "--heads", .kind = CLI_INT, .dst = &c.heads, .lo = 1, .hi = 1024},
        {.name = "--kv-heads", .kind = CLI_INT, .dst = &c.kv_heads, .lo = 1, .hi = 1024},
        {.name = "--ffn", .kind = CLI_INT, .dst = &c.ffn, .lo = 1, .hi = 1 << 20},
        {.name = "--vocab", .kind = CLI_INT, .dst = &c.vocab, .lo = 259, .hi = 1 << 22},
        {.name = "--head-dim", .kind = CLI_INT, .dst = &c.head_dim, .lo = 2, .hi = 1024},
        {.name = "--ctx", .kind = CLI_INT, .dst = &c.ctx, .lo = 1, .hi = 1 << 24},
        {.name = "--seed", .kind = CLI_INT, .dst = &c.seed, .lo = 0, .hi = INT64_MAX},
        {.name = "--type", .kind = CLI_STR, .dst = &c.type},
        {.name = "--vocab-from", .kind = CLI_STR, .dst = &c.vocab_from},
        {.name = "-t", .alt = "--threads", .kind = CLI_INT, .dst = &threads, .lo = 1, .hi = 1024},
        {.name = "--tied", .kind = CLI_SET, .dst = &tied},
    };
    const struct cli_spec spec = {"dev synth", k_synth_usage, opts, sizeof opts / sizeof opts[0], &out,
                                  1, NULL, "one OUT path"};
    cli_parse(&spec, argc, argv);
    if (!out) cli_usage_error("dev synth needs an OUT path");
    c.tied = tied;
    if (preset && ftool_synth_preset(preset, &c, tied))
        cli_usage_error("unknown preset '%s' (tinyllama, smollm2-135m, qwen2.5-0.5b)", preset);
    struct err_info ei;
    err_clear(&ei);
    if (ftool_synth_check(&c, &ei)) cli_usage_error("%s", ei.msg);
    if (threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? nc : 1;
    }
    struct synth_report r = {out, &c};
    struct ftool_synth_opts o = {(int)threads, on_tensor, on_start, &r};
    double t0 = util_now();
    int rc = ftool_synth(&c, out, &o, &ei);
    if (rc) {
        char msg[512];
        fprintf(stderr, "lmpipe: dev synth failed: %s\n", err_format(&ei, rc, msg, sizeof msg));
        return 1;
    }
    fprintf(stderr, "lmpipe: wrote %s in %.1f s\n", out, util_now() - t0);
    return 0;
}

static const char k_edit_usage[] =
    "usage: lmpipe dev edit IN.gguf OUT.gguf [--ctx N] [--chat-template-file FILE]\n"
    "         [--poison TENSOR=nan|inf|-inf [--poison-at I] [--poison-field F]]\n"
    "  copies a model with its declared context length and/or its tokenizer.chat_template\n"
    "  replaced (the model then runs past its training context, as llama.cpp lets it).\n"
    "  --poison stores a NaN or an infinity in TENSOR (a damaged file, for tests): in its element\n"
    "  I (F32/F16/BF16), or in fp16 field F (0: the scale d, 1: dmin or m) of its block I.\n";

static int cmd_edit(int argc, char **argv)
{
    int64_t ctx = 0, at = 0, field = 0;
    const char *tmpl = NULL, *poison = NULL, *paths[2] = {NULL, NULL};
    const struct cli_opt opts[] = {
        {.name = "--ctx", .kind = CLI_INT, .dst = &ctx, .lo = 1, .hi = 1 << 24},
        {.name = "--chat-template-file", .kind = CLI_STR, .dst = &tmpl},
        {.name = "--poison", .kind = CLI_STR, .dst = &poison},
        {.name = "--poison-at", .kind = CLI_INT, .dst = &at, .lo = 0, .hi = INT64_MAX},
        {.name = "--poison-field", .kind = CLI_INT, .dst = &field, .lo = 0, .hi = 1},
    };
    const struct cli_spec spec = {"dev edit", k_edit_usage, opts, sizeof opts / sizeof opts[0], paths,
                                  2, NULL, "IN and OUT paths"};
    cli_parse(&spec, argc, argv);
    if (!paths[0] || !paths[1]) cli_usage_error("dev edit needs IN and OUT paths");
    if (!ctx && !tmpl && !poison)
        cli_usage_error("dev edit: nothing to change (--ctx, --chat-template-file, --poison)");
    struct ftool_edit_opts o = {(uint32_t)ctx, NULL, 0, NULL, 0, (uint64_t)at, (uint32_t)field};
    char name[128];
    if (poison) {
        const char *eq = strrchr(poison, '=');
        if (!eq || eq == poison || (size_t)(eq - poison) >= sizeof name)
            cli_usage_error("--poison takes TENSOR=nan|inf|-inf, got '%s'", poison);
        if (!strcmp(eq + 1, "nan")) o.poison_value = NAN;
        else if (!strcmp(eq + 1, "inf")) o.poison_value = INFINITY;
        else if (!strcmp(eq + 1, "-inf")) o.poison_value = -INFINITY;
        else cli_usage_error("--poison: the value must be nan, inf or -inf, got '%s'", eq + 1);
        snprintf(name, sizeof name, "%.*s", (int)(eq - poison), poison);
        o.poison = name;
    }
    char *src = tmpl ? cli_read_file_or_die(tmpl, &o.chat_template_len) : NULL;
    o.chat_template = src;
    struct err_info ei;
    err_clear(&ei);
    int rc = ftool_edit(paths[0], paths[1], &o, &ei);
    free(src);
    if (rc) {
        char msg[512];
        fprintf(stderr, "lmpipe: dev edit failed: %s\n", err_format(&ei, rc, msg, sizeof msg));
        return 1;
    }
    return 0;
}

/* `lmpipe dev SUBCOMMAND ...`: developer tools, not in the main usage. */
int cli_dev_main(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
        FILE *f = argc < 1 ? stderr : stdout;
        fputs("lmpipe dev: developer tools\n", f);
        fputs(k_synth_usage, f);
        fputs(k_edit_usage, f);
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "synth")) return cmd_synth(argc - 1, argv + 1);
    if (!strcmp(argv[0], "edit")) return cmd_edit(argc - 1, argv + 1);
    if (!strcmp(argv[0], "peak-rss")) return cli_dev_peak_rss(argc - 1, argv + 1);
    cli_usage_error("unknown dev command '%s' (synth, edit, peak-rss)", argv[0]);
}
