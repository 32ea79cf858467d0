/* cli_args: the one argument parser of every subcommand, the usage text, and the few helpers
 * the commands share (usage errors, reading inputs).
 *
 * Why a table: every command used to scan argv its own way (prefix matches, strcmp chains,
 * per-command helpers); now each command states its options and one loop applies them, so a
 * flag is spelled, validated and reported the same way everywhere. Exit codes: 2 for a usage
 * error (decided here), 1 for a runtime failure (the commands). */
#include "cli.h"

#include "../eng/eng.h"
#include "../util/util.h"
#include "../util/version.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_usage(FILE *f)
{
    fputs("lmpipe " LMPIPE_VERSION " - a small LLM inference engine for agents\n"
          "\n"
          "usage:\n"
          "  lmpipe run -m MODEL [-p TEXT | -f FILE | stdin] [options]   generate text\n"
          "  lmpipe chat -m MODEL [run options]                interactive chat (/reset /save F /load F /exit)\n"
          "  lmpipe eval -m MODEL (-p TEXT | -f FILE) [--top K] [--all-logits] [--no-bos]\n"
          "                                                   teacher-forced logits as JSON\n"
          "  lmpipe tokenize -m MODEL [TEXT | stdin] [--ids] [--no-bos] [--special] [--time]\n"
          "  lmpipe info MODEL [--check] | --cpu               describe a GGUF model (--check: NaN/inf weights) / this CPU's kernels\n"
          "  lmpipe serve [-m MODEL] [-c CTX] [-t N] [--max-line BYTES] [--queue N]\n"
          "               [--chat-template-file FILE]         JSON-RPC 2.0 over stdin/stdout\n"
          "  lmpipe batch -m MODEL IN.jsonl [-o OUT.jsonl] [--resume] [--shard I/N]\n"
          "               [--chat-template-file FILE]         one request per line, resumable\n"
          "  lmpipe template render FILE.jinja [REQUEST.json | stdin]\n"
          "                                                   render a Jinja chat template as is\n"
          "  lmpipe quantize IN.gguf OUT.gguf TYPE [--pure] [-t N]\n"
          "                                                   convert F32/F16/BF16 weights (Q4_K_M, Q8_0, ...)\n"
          "  lmpipe bench -m MODEL [-p 64] [-n 32] [-d 0] [-t 1,2] [-r 5] [--json]\n"
          "                                                   prefill and decode tokens/s\n"
          "  lmpipe grammar convert --json-schema FILE        a JSON Schema as a GBNF grammar\n"
          "  lmpipe grammar check (-g FILE.gbnf | --json-schema FILE | --json) [TEXT | stdin]\n"
          "                                                   exit 0 accepted, 1 rejected, 2 invalid grammar\n"
          "  lmpipe --help | --version\n"
          "\n"
          "run options:\n"
          "  -n N                 tokens to generate (default 128; -1 = until end of generation)\n"
          "  -c CTX               context length (default: the model's, capped to it)\n"
          "  -t THREADS           threads (default: online cores)\n"
          "  --temp T             temperature (default 0.8; 0 = greedy)\n"
          "  --top-k K            (default 40; 0 = off)\n"
          "  --top-p P            (default 0.95; 1 = off)\n"
          "  --min-p P            (default 0.05; 0 = off)\n"
          "  --repeat-penalty R   (default 1.0 = off)\n"
          "  --repeat-last-n N    penalty window (default 64)\n"
          "  --presence-penalty P, --frequency-penalty F   (default 0)\n"
          "  --seed S             RNG seed (default 0)\n"
          "  --stop TEXT          stop string (repeatable, up to 8)\n"
          "  --no-bos             do not add the BOS token\n"
          "  --special            parse special-token text such as <s> in the prompt\n"
          "  --ignore-eos         keep generating after end-of-generation tokens\n"
          "  --kv-type T          KV cache type: f16 (default), f32, q8_0 (head size % 32 == 0)\n"
          "  --context-shift KEEP when the context fills up, keep the first KEEP tokens, drop half\n"
          "                       of the rest and go on (default: context_length_exceeded)\n"
          "  --snapshot FILE      (run) restore the prompt's prefix from FILE when it matches;\n"
          "                       save the session to FILE after the run\n"
          "  --prompt-cache DIR   keep prompts of >= --prompt-cache-min N tokens (default 256) in\n"
          "                       DIR, at most --prompt-cache-max BYTES (default 1g), for later runs\n"
          "  --grammar FILE       the text must match this GBNF grammar (llama.cpp's syntax)\n"
          "  --json-schema FILE   ... this JSON Schema (--strict: OpenAI's strict mode)\n"
          "  --json               ... a JSON object (grammars/json.gbnf, built in)\n"
          "\n"
          "chat templates (run and chat; run stays raw completion unless one of these is given,\n"
          "then the prompt is one user turn rendered with the template):\n"
          "  --chat               render the prompt with the model's chat template\n"
          "  --system TEXT        a system message before it\n"
          "  --chat-template NAME a built-in template instead of the model's (chatml, llama3, ...)\n"
          "  --chat-template-file FILE   a Jinja template instead of the model's\n"
          "\n"
          "tool calling (run and chat; run then renders the prompt as a chat):\n"
          "  --tools FILE         OpenAI tools (a JSON array, or {\"tools\": [...]}) the model may call;\n"
          "                       each call is printed as one JSON line after the reply's text\n"
          "  --tool-choice C      auto (default), none, required, or a tool's name\n"
          "  (chat: answer the oldest call with a line '/tool RESULT')\n",
          f);
}

void cli_kv_defaults(struct cli_kv *k)
{
    memset(k, 0, sizeof *k);
    k->kv_type = ENG_KV_DEFAULT;
    k->pcache_min = ENG_PCACHE_MIN_DEFAULT;
    k->pcache_max = (int64_t)ENG_PCACHE_MAX_DEFAULT;
}

void cli_kv_type_value(void *dst, const char *name, const char *v)
{
    if (eng_kv_type_parse(v, dst))
        cli_usage_error("invalid value '%s' for %s: expected f32, f16 or q8_0", v, name);
}

/* BYTES with an optional k, m or g (KiB, MiB, GiB) */
static void size_value(void *dst, const char *name, const char *v)
{
    char num[32];
    size_t n = strlen(v);
    int shift = 0;
    if (n && strchr("kKmMgG", v[n - 1])) {
        shift = strchr("kK", v[n - 1]) ? 10 : strchr("mM", v[n - 1]) ? 20 : 30;
        n--;
    }
    if (n == 0 || n >= sizeof num) cli_usage_error("invalid value '%s' for %s: expected bytes, e.g. 512m", v, name);
    memcpy(num, v, n);
    num[n] = 0;
    *(int64_t *)dst = cli_flag_int(name, num, 1, ((int64_t)1 << 50) >> shift) << shift;
}

size_t cli_kv_opts(struct cli_kv *k, struct cli_opt *out)
{
    out[0] = (struct cli_opt){.name = "--kv-type", .kind = CLI_FN, .dst = &k->kv_type, .fn = cli_kv_type_value};
    out[1] = (struct cli_opt){.name = "--prompt-cache", .kind = CLI_STR, .dst = &k->pcache_dir};
    out[2] = (struct cli_opt){.name = "--prompt-cache-min", .kind = CLI_INT, .dst = &k->pcache_min, .lo = 1,
                              .hi = 1 << 24};
    out[3] = (struct cli_opt){.name = "--prompt-cache-max", .kind = CLI_FN, .dst = &k->pcache_max, .fn = size_value};
    return CLI_KV_OPTS;
}

_Noreturn void cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lmpipe: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'lmpipe --help')\n");
    va_end(ap);
    exit(2);
}

_Noreturn void cli_die(const char *what, const struct err_info *ei, int rc)
{
    char buf[512];
    fprintf(stderr, "lmpipe: %s: %s\n", what, err_format(ei, rc, buf, sizeof buf));
    exit(1);
}

int64_t cli_flag_int(const char *name, const char *v, int64_t lo, int64_t hi)
{
    int64_t x;
    if (util_parse_i64(v, lo, hi, &x))
        cli_usage_error("invalid value '%s' for %s: expected an integer in [%lld, %lld]", v, name,
                        (long long)lo, (long long)hi);
    return x;
}

static double flag_num(const char *name, const char *v, double lo, double hi)
{
    double x;
    if (util_parse_f64(v, lo, hi, &x))
        cli_usage_error("invalid value '%s' for %s: expected a number in [%g, %g]", v, name, lo, hi);
    return x;
}

/* A sampling field: parsed strictly, then set through samp's one range check. */
static void samp_value(const struct cli_opt *o, const char *name, const char *v)
{
    const struct samp_field *f = o->field;
    double x;
    if (f->type == SAMP_FIELD_INT) {
        x = (double)cli_flag_int(name, v, (int64_t)f->lo, (int64_t)f->hi);
    } else if (util_parse_f64(v, -INFINITY, INFINITY, &x) || !samp_field_ok(f, x)) {
        cli_usage_error("invalid value '%s' for %s: expected a number in [%g, %g]", v, name, f->lo, f->hi);
    }
    samp_field_set(o->dst, f, x, NULL);
}

static void apply(const struct cli_opt *o, const char *name, const char *v)
{
    switch (o->kind) {
    case CLI_SET: *(bool *)o->dst = true; break;
    case CLI_CLEAR: *(bool *)o->dst = false; break;
    case CLI_STR: *(const char **)o->dst = v; break;
    case CLI_INT: *(int64_t *)o->dst = cli_flag_int(name, v, o->lo, o->hi); break;
    case CLI_NUM: *(double *)o->dst = flag_num(name, v, o->dlo, o->dhi); break;
    case CLI_SAMP: samp_value(o, name, v); break;
    case CLI_FN: o->fn(o->dst, name, v); break;
    }
}

static bool takes_value(const struct cli_opt *o) { return o->kind != CLI_SET && o->kind != CLI_CLEAR; }

/* Does arg name option o, as "name", or "--name=value" (then *eq points at the value)? */
static const char *matches(const struct cli_opt *o, const char *arg, const char **eq)
{
    const char *names[2] = {o->name, o->alt};
    for (int k = 0; k < 2; k++) {
        const char *n = names[k];
        if (!n) continue;
        size_t len = strlen(n);
        if (strncmp(arg, n, len) != 0) continue;
        if (arg[len] == '\0') return n;
        if (arg[len] == '=' && n[1] == '-' && takes_value(o)) {
            *eq = arg + len + 1;
            return n;
        }
    }
    return NULL;
}

/* A positional argument, or the complaint about one too many. */
static void positional(const struct cli_spec *spec, const char *arg, size_t *n)
{
    if (*n >= spec->max_pos) {
        if (!spec->max_pos) cli_usage_error("%s takes no argument (got '%s')", spec->cmd, arg);
        cli_usage_error("%s takes %s (extra argument '%s')", spec->cmd, spec->pos_what, arg);
    }
    spec->pos[(*n)++] = arg;
}

void cli_parse(const struct cli_spec *spec, int argc, char **argv)
{
    size_t n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq = NULL, *name = NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            if (spec->usage) fputs(spec->usage, stdout);
            else cli_usage(stdout);
            exit(0);
        }
        size_t k = 0;
        for (; k < spec->n_opts && !(name = matches(&spec->opts[k], arg, &eq)); k++) {}
        if (k == spec->n_opts) {
            if (arg[0] == '-' && arg[1]) cli_usage_error("unknown option '%s' for %s", arg, spec->cmd);
            positional(spec, arg, &n_pos);
            continue;
        }
        const struct cli_opt *o = &spec->opts[k];
        if (takes_value(o) && !eq) {
            if (i + 1 >= argc) cli_usage_error("option %s needs a value", name);
            eq = argv[++i];
        }
        apply(o, name, eq);
    }
    if (spec->n_pos) *spec->n_pos = n_pos;
}

size_t cli_samp_opts(struct samp_params *sp, struct cli_opt *out, size_t cap)
{
    size_t n = 0;
    const struct samp_field *f;
    for (size_t i = 0; (f = samp_field_at(i)) && n < cap; i++)
        out[n++] = (struct cli_opt){.name = f->flag, .kind = CLI_SAMP, .dst = sp, .field = f};
    return n;
}

/* ---------------- inputs ---------------- */

char *cli_slurp(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    if (!p) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > ((size_t)1 << 30)) {
                free(p);
                errno = EFBIG;
                return NULL;
            }
            char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                return NULL;
            }
            p = q;
            cap *= 2;
        }
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        free(p);
        return NULL;
    }
    p[n] = 0;
    *len = n;
    return p;
}

char *cli_read_file_or_die(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "lmpipe: cannot open '%s': %s\n", path, strerror(errno));
        exit(1);
    }
    char *p = cli_slurp(f, len);
    fclose(f);
    if (!p) {
        fprintf(stderr, "lmpipe: cannot read '%s'\n", path);
        exit(1);
    }
    return p;
}

char *cli_chat_template_file(const char *path, size_t *len)
{
    char *src = cli_read_file_or_die(path, len);
    struct eng_template *t;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_template_parse(src, *len, &t, &ei);
    if (rc) {
        free(src);
        if (rc == ERR_NOMEM) cli_die("cannot parse the chat template", &ei, rc);
        fprintf(stderr, "lmpipe: %s: %s\n", path, ei.msg);
        exit(2);
    }
    eng_template_free(t);
    return src;
}

void cli_json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}
