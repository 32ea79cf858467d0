/* lmpipe command line: argv → subcommand. The only file that may exit().
 *
 * Every flag value is parsed strictly (the whole string must be a number in range, "-n abc" is
 * an error, not 0). Generated text goes to stdout; statistics and logs go to stderr. Exit codes:
 * 0 success, 1 runtime failure (bad model, prompt too long, ...), 2 usage error. */
#include "cli/cli.h"
#include "eng/eng.h"
#include "gguf/gguf.h"
#include "rpc/rpc.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "util/err.h"
#include "util/util.h"
#include "util/version.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static void usage(FILE *f)
{
    fputs("lmpipe " LMPIPE_VERSION " - a small LLM inference engine for agents\n"
          "\n"
          "usage:\n"
          "  lmpipe run -m MODEL [-p TEXT | -f FILE | stdin] [options]   generate text\n"
          "  lmpipe chat -m MODEL [--chat-template NAME] [--system TEXT] [run options]\n"
          "                                                   interactive chat (/reset, /exit)\n"
          "  lmpipe eval -m MODEL (-p TEXT | -f FILE) [--top K] [--all-logits] [--no-bos]\n"
          "                                                   teacher-forced logits as JSON\n"
          "  lmpipe tokenize -m MODEL [TEXT | stdin] [--ids] [--no-bos] [--special] [--time]\n"
          "  lmpipe info MODEL | --cpu                         describe a GGUF model / the kernels this CPU runs\n"
          "  lmpipe serve [-m MODEL] [-c CTX] [-t N] [--max-line BYTES] [--queue N]\n"
          "                                                   JSON-RPC 2.0 over stdin/stdout\n"
          "  lmpipe batch -m MODEL IN.jsonl [-o OUT.jsonl] [--resume] [--shard I/N]\n"
          "                                                   one request per line, resumable\n"
          "  lmpipe quantize IN.gguf OUT.gguf TYPE [--pure] [-t N]\n"
          "                                                   convert F32/F16/BF16 weights (Q4_K_M, Q8_0, ...)\n"
          "  lmpipe bench -m MODEL [-p 64] [-n 32] [-t 1,2] [-r 5] [--json]\n"
          "                                                   prefill and decode tokens/s\n"
          "  lmpipe --help | --version\n"
          "\n"
          "run options:\n"
          "  -n N                 tokens to generate (default 128; -1 = until the context is full)\n"
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
          "  --ignore-eos         keep generating after end-of-generation tokens\n",
          f);
}

static _Noreturn void die_usage(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "lmpipe: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see 'lmpipe --help')\n");
    exit(2);
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

/* Option scanner: supports "--flag value", "--flag=value" and "-n value". */
struct args {
    int argc, i;
    char **argv;
    const char *val; /* value of the last matched option */
    char eqbuf[64];
};

static bool opt_match(struct args *a, const char *name, bool has_value)
{
    const char *s = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(s, name, n) != 0) return false;
    if (s[n] == '\0') {
        if (has_value) {
            if (a->i + 1 >= a->argc) die_usage("option %s needs a value%s", name, "");
            a->val = a->argv[++a->i];
        }
        return true;
    }
    if (s[n] == '=' && has_value && name[1] == '-') {
        a->val = s + n + 1;
        return true;
    }
    return false;
}

int64_t cli_flag_int(const char *name, const char *v, int64_t lo, int64_t hi)
{
    int64_t x;
    int rc = util_parse_i64(v, lo, hi, &x);
    if (rc) {
        char range[96];
        snprintf(range, sizeof range, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
        fprintf(stderr, "lmpipe: invalid value '%s' for %s: expected %s\n", v, name, range);
        exit(2);
    }
    return x;
}

double cli_flag_num(const char *name, const char *v, double lo, double hi)
{
    double x;
    if (util_parse_f64(v, lo, hi, &x)) {
        fprintf(stderr, "lmpipe: invalid value '%s' for %s: expected a number in [%g, %g]\n", v,
                name, lo, hi);
        exit(2);
    }
    return x;
}

/* Read a whole stream or file into a NUL-terminated buffer. */
static char *slurp(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    if (!p) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > ((size_t)1 << 30)) { free(p); errno = EFBIG; return NULL; }
            char *q = realloc(p, cap * 2);
            if (!q) { free(p); return NULL; }
            p = q;
            cap *= 2;
        }
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) { free(p); return NULL; }
    p[n] = 0;
    *len = n;
    return p;
}

static char *read_file_or_die(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "lmpipe: cannot open '%s': %s\n", path, strerror(errno));
        exit(1);
    }
    char *p = slurp(f, len);
    fclose(f);
    if (!p) {
        fprintf(stderr, "lmpipe: cannot read '%s'\n", path);
        exit(1);
    }
    return p;
}

static _Noreturn void die_err(const char *what, const struct err_info *ei, int rc)
{
    char buf[512];
    fprintf(stderr, "lmpipe: %s: %s\n", what, err_format(ei, rc, buf, sizeof buf));
    exit(1);
}

/* Load MODEL and create one session, or exit 1 with the reason (freeing `owned` first). */
static void open_session_or_die(const char *path, int64_t threads, int64_t n_ctx,
                                struct eng_model *em, struct eng_session *s, void *owned)
{
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_model_open(em, path, (int)threads, &ei);
    if (rc) {
        free(owned);
        die_err("cannot load model", &ei, rc);
    }
    if ((rc = eng_session_init(s, em, (uint32_t)n_ctx, &ei))) {
        eng_model_free(em);
        free(owned);
        die_err("cannot create session", &ei, rc);
    }
}

/* ---------------- run ---------------- */

struct run_out {
    int epipe;
};

static int on_text_stdout(void *ud, const char *text, size_t len, int32_t token)
{
    (void)token;
    struct run_out *o = ud;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        o->epipe = 1;
        return 1;
    }
    return 0;
}

/* Flags shared by run and chat: model, context, threads, sampling, stops. */
struct gen_opts {
    const char *model;
    int64_t n_predict, n_ctx, threads;
    struct eng_gen_params gp;
    const char *stops[SAMP_MAX_STOPS];
    size_t n_stop;
};

static void gen_opts_init(struct gen_opts *o, int64_t n_predict)
{
    memset(o, 0, sizeof *o);
    o->n_predict = n_predict;
    eng_gen_params_default(&o->gp);
}

/* Consume argv[a->i] if it is one of the shared flags. */
static bool gen_flag(struct args *a, struct gen_opts *o)
{
    struct samp_params *sp = &o->gp.samp;
    if (opt_match(a, "-m", true) || opt_match(a, "--model", true)) o->model = a->val;
    else if (opt_match(a, "-n", true) || opt_match(a, "--n-predict", true))
        o->n_predict = cli_flag_int("-n", a->val, -1, INT32_MAX);
    else if (opt_match(a, "-c", true) || opt_match(a, "--ctx-size", true))
        o->n_ctx = cli_flag_int("-c", a->val, 1, 1 << 24);
    else if (opt_match(a, "-t", true) || opt_match(a, "--threads", true))
        o->threads = cli_flag_int("-t", a->val, 1, 1024);
    else if (opt_match(a, "--temp", true)) sp->temp = (float)cli_flag_num("--temp", a->val, 0, 100);
    else if (opt_match(a, "--top-k", true))
        sp->top_k = (int32_t)cli_flag_int("--top-k", a->val, 0, INT32_MAX);
    else if (opt_match(a, "--top-p", true)) sp->top_p = (float)cli_flag_num("--top-p", a->val, 0, 1);
    else if (opt_match(a, "--min-p", true)) sp->min_p = (float)cli_flag_num("--min-p", a->val, 0, 1);
    else if (opt_match(a, "--repeat-penalty", true))
        sp->repeat_penalty = (float)cli_flag_num("--repeat-penalty", a->val, 0.01, 100);
    else if (opt_match(a, "--repeat-last-n", true))
        sp->penalty_last_n = (int32_t)cli_flag_int("--repeat-last-n", a->val, 0, 1 << 20);
    else if (opt_match(a, "--presence-penalty", true))
        sp->presence_penalty = (float)cli_flag_num("--presence-penalty", a->val, -100, 100);
    else if (opt_match(a, "--frequency-penalty", true))
        sp->freq_penalty = (float)cli_flag_num("--frequency-penalty", a->val, -100, 100);
    else if (opt_match(a, "--seed", true))
        sp->seed = (uint64_t)cli_flag_int("--seed", a->val, 0, INT64_MAX);
    else if (opt_match(a, "--stop", true)) {
        if (o->n_stop == SAMP_MAX_STOPS) cli_usage_error("at most %d stop strings", SAMP_MAX_STOPS);
        if (!a->val[0]) cli_usage_error("--stop needs a non-empty string");
        o->stops[o->n_stop++] = a->val;
    } else if (opt_match(a, "--no-bos", false)) o->gp.add_bos = false;
    else if (opt_match(a, "--special", false)) o->gp.parse_special = true;
    else if (opt_match(a, "--ignore-eos", false)) o->gp.ignore_eos = true;
    else return false;
    return true;
}

static void gen_opts_finish(struct gen_opts *o)
{
    o->gp.max_tokens = (int32_t)o->n_predict;
    o->gp.stop = o->stops;
    o->gp.n_stop = o->n_stop;
}

/* A generating command's own string-valued option: name, a second spelling or NULL, where the
 * value goes. */
struct own_opt {
    const char *name, *alt;
    const char **val;
};

/* The arguments of run and chat: the shared generation flags plus the command's own options;
 * anything else, or no -m, is a usage error. Leaves *o finished (gen_opts_finish). */
static void gen_args(int argc, char **argv, const char *cmd, int64_t n_predict, const struct own_opt *own,
                     size_t n_own, struct gen_opts *o)
{
    gen_opts_init(o, n_predict);
    struct args a = {argc, 0, argv, NULL, {0}};
    for (a.i = 0; a.i < argc; a.i++) {
        if (gen_flag(&a, o)) continue;
        size_t k = 0;
        for (; k < n_own; k++)
            if (opt_match(&a, own[k].name, true) || (own[k].alt && opt_match(&a, own[k].alt, true))) break;
        if (k == n_own) cli_usage_error("unknown option '%s' for %s", argv[a.i], cmd);
        *own[k].val = a.val;
    }
    if (!o->model) cli_usage_error("%s needs -m MODEL", cmd);
    gen_opts_finish(o);
}

static void print_gen_stats(const struct eng_gen_result *res, const struct eng_model *em)
{
    fprintf(stderr,
            "lmpipe: prompt %u tokens (%u cached) in %.1f ms (%.1f tok/s); generated %u tokens "
            "in %.1f ms (%.1f tok/s); finish %s; peak RSS %.1f MiB; kernels %s, %d threads\n",
            res->prompt_tokens, res->cached_tokens, res->prefill_ms,
            res->prefill_ms > 0 ? (res->prompt_tokens - res->cached_tokens) * 1e3 / res->prefill_ms
                                : 0.0,
            res->completion_tokens, res->decode_ms,
            res->decode_ms > 0 ? res->completion_tokens * 1e3 / res->decode_ms : 0.0,
            eng_finish_name(res->finish), (double)util_peak_rss() / (1024.0 * 1024.0),
            kern_isa_name(), em->pool ? kern_pool_threads(em->pool) : 1);
}

static int cmd_run(int argc, char **argv)
{
    const char *prompt = NULL, *file = NULL;
    struct gen_opts o;
    const struct own_opt own[] = {{"-p", "--prompt", &prompt}, {"-f", "--file", &file}};
    gen_args(argc, argv, "run", 128, own, sizeof own / sizeof own[0], &o);
    const char *model = o.model;
    int64_t n_ctx = o.n_ctx, threads = o.threads;
    struct eng_gen_params gp = o.gp;
    if (prompt && file) die_usage("give either -p or -f, not both%s%s", "", "");

    char *buf = NULL;
    size_t plen;
    if (file) buf = read_file_or_die(file, &plen);
    else if (!prompt) {
        buf = slurp(stdin, &plen);
        if (!buf) { fprintf(stderr, "lmpipe: cannot read the prompt from stdin\n"); return 1; }
    }
    const char *text = prompt ? prompt : buf;
    if (prompt) plen = strlen(prompt);

    struct eng_model em;
    struct eng_session s;
    open_session_or_die(model, threads, n_ctx, &em, &s, buf);
    struct err_info ei;
    err_clear(&ei);
    int rc;
    if (n_ctx > (int64_t)em.model.hp.n_ctx_train)
        LOG_WARN("context %lld capped to the model's training context %u", (long long)n_ctx,
                 em.model.hp.n_ctx_train);
    struct run_out out = {0};
    struct eng_gen_result res;
    rc = eng_generate(&s, text, plen, &gp, on_text_stdout, NULL, &out, NULL, &res, &ei);
    if (!out.epipe) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: generation failed: %s\n", err_format(&ei, rc, m, sizeof m));
    } else {
        print_gen_stats(&res, &em);
    }
    eng_session_free(&s);
    eng_model_free(&em);
    free(buf);
    return rc ? 1 : 0;
}

/* ---------------- chat ---------------- */

/* One conversation: messages own their strings. */
struct chat_hist {
    struct chat_msg *msgs;
    char **owned; /* [n] the content strings (roles are literals) */
    size_t n, cap;
};

static int hist_add(struct chat_hist *h, const char *role, const char *text, size_t len)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        struct chat_msg *m = realloc(h->msgs, nc * sizeof *m);
        if (!m) return ERR_NOMEM;
        h->msgs = m;
        char **o = realloc(h->owned, nc * sizeof *o);
        if (!o) return ERR_NOMEM;
        h->owned = o;
        h->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return ERR_NOMEM;
    memcpy(c, text, len);
    c[len] = 0;
    h->owned[h->n] = c;
    h->msgs[h->n].role = role;
    h->msgs[h->n].content = c;
    h->n++;
    return 0;
}

static void hist_clear(struct chat_hist *h, size_t keep)
{
    while (h->n > keep) free(h->owned[--h->n]);
}

struct chat_out {
    char *buf; /* the assistant reply being collected */
    size_t len, cap;
    int epipe;
};

static int on_text_chat(void *ud, const char *text, size_t len, int32_t token)
{
    (void)token;
    struct chat_out *o = ud;
    if (o->len + len + 1 > o->cap) {
        size_t nc = (o->len + len + 1) * 2;
        char *b = realloc(o->buf, nc);
        if (!b) return 1;
        o->buf = b;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, text, len);
    o->len += len;
    o->buf[o->len] = 0;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        o->epipe = 1;
        return 1;
    }
    return 0;
}

/* Interactive multi-turn chat. The whole conversation is re-rendered with the chat template each
 * turn; the session keeps its KV cache, so only the new part of the prompt is evaluated. */
static int cmd_chat(int argc, char **argv)
{
    const char *tmpl_name = NULL, *system = NULL;
    struct gen_opts o;
    const struct own_opt own[] = {{"--chat-template", NULL, &tmpl_name}, {"--system", NULL, &system}};
    gen_args(argc, argv, "chat", 512, own, sizeof own / sizeof own[0], &o);
    o.gp.parse_special = true; /* the template's own markers are special tokens */
    int tmpl = -1;
    if (tmpl_name && (tmpl = chat_template_by_name(tmpl_name)) < 0)
        cli_usage_error("unknown chat template '%s'", tmpl_name);

    struct eng_model em;
    struct eng_session s;
    open_session_or_die(o.model, o.threads, o.n_ctx, &em, &s, NULL);
    struct err_info ei;
    err_clear(&ei);
    int rc = 0;
    if (tmpl < 0) {
        bool fallback = false;
        tmpl = chat_template_from_gguf(em.model.g, &fallback);
        if (fallback)
            LOG_WARN("the model has no chat template lmpipe recognises: using chatml "
                     "(--chat-template NAME to choose)");
    }
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "lmpipe chat: %s, template %s, context %u. Commands: /reset /exit\n",
                model_arch_name(em.model.arch), chat_template_name(tmpl), eng_session_n_ctx(&s));
    struct chat_hist h = {0};
    size_t base = 0;
    if (system && (rc = hist_add(&h, "system", system, strlen(system))) == 0) base = 1;
    struct chat_out out = {0};
    char *line = NULL, *prompt = NULL;
    size_t line_cap = 0, prompt_cap = 0;
    int status = 0;
    for (;;) {
        if (tty) fprintf(stderr, "> ");
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            hist_clear(&h, base);
            eng_session_reset(&s);
            fprintf(stderr, "lmpipe: conversation reset\n");
            continue;
        }
        if (!strncmp(line, "/save", 5) || !strncmp(line, "/load", 5)) {
            fprintf(stderr, "lmpipe: %.5s: KV-cache snapshots are not implemented yet\n", line);
            continue;
        }
        if (line[0] == '/') {
            fprintf(stderr, "lmpipe: unknown command '%s' (/reset /exit)\n", line);
            continue;
        }
        if ((rc = hist_add(&h, "user", line, (size_t)n))) break;
        size_t need = 0;
        rc = chat_render(tmpl, h.msgs, h.n, true, prompt, prompt_cap, &need);
        if (rc == ERR_LIMIT) {
            char *p = realloc(prompt, need + 1);
            if (!p) { rc = ERR_NOMEM; break; }
            prompt = p;
            prompt_cap = need + 1;
            rc = chat_render(tmpl, h.msgs, h.n, true, prompt, prompt_cap, &need);
        }
        if (rc) break;
        out.len = 0;
        struct eng_gen_result res;
        err_clear(&ei);
        rc = eng_generate(&s, prompt, need, &o.gp, on_text_chat, NULL, &out, NULL, &res, &ei);
        if (out.epipe) break;
        fputc('\n', stdout);
        fflush(stdout);
        if (rc) {
            char m[512];
            fprintf(stderr, "lmpipe: %s\n", err_format(&ei, rc, m, sizeof m));
            hist_clear(&h, h.n - 1); /* forget the turn that failed; the session stays usable */
            if (rc == ERR_CONTEXT) fprintf(stderr, "lmpipe: use /reset to start over\n");
            status = 1;
            rc = 0;
            continue;
        }
        print_gen_stats(&res, &em);
        if ((rc = hist_add(&h, "assistant", out.buf ? out.buf : "", out.len))) break;
    }
    if (rc) {
        fprintf(stderr, "lmpipe: chat failed: %s\n", err_str(rc));
        status = 1;
    }
    hist_clear(&h, 0);
    free(h.msgs);
    free(h.owned);
    free(out.buf);
    free(line);
    free(prompt);
    eng_session_free(&s);
    eng_model_free(&em);
    return status;
}

/* ---------------- tokenize ---------------- */

static void print_json_str(FILE *f, const char *s, size_t n)
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

static int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    bool ids_only = false, bos = true, special = false, timing = false;
    struct args a = {argc, 0, argv, NULL, {0}};
    for (a.i = 0; a.i < argc; a.i++) {
        if (opt_match(&a, "-m", true) || opt_match(&a, "--model", true)) model = a.val;
        else if (opt_match(&a, "--ids", false)) ids_only = true;
        else if (opt_match(&a, "--no-bos", false)) bos = false;
        else if (opt_match(&a, "--special", false)) special = true;
        else if (opt_match(&a, "--time", false)) timing = true;
        else if (argv[a.i][0] == '-' && argv[a.i][1]) die_usage("unknown option '%s' for tokenize%s", argv[a.i], "");
        else if (!text) text = argv[a.i];
        else die_usage("tokenize takes one TEXT argument (got '%s')%s", argv[a.i], "");
    }
    if (!model) die_usage("tokenize needs -m MODEL%s%s", "", "");
    char *buf = NULL;
    size_t len;
    if (!text) {
        buf = slurp(stdin, &len);
        if (!buf) { fprintf(stderr, "lmpipe: cannot read stdin\n"); return 1; }
        text = buf;
    } else {
        len = strlen(text);
    }
    struct err_info ei;
    err_clear(&ei);
    struct gguf_ctx g;
    int rc = gguf_open(model, &g, &ei);
    if (rc) { free(buf); die_err("cannot load model", &ei, rc); }
    struct tok_vocab *v = NULL;
    if ((rc = tok_load(&v, &g, &ei))) { gguf_free(&g); free(buf); die_err("cannot load tokenizer", &ei, rc); }
    size_t n = 0, cap = len + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    double t0 = util_now();
    rc = ids ? tok_encode(v, text, len, bos && tok_add_bos(v), special, ids, cap, &n) : ERR_NOMEM;
    if (timing && rc == 0)
        fprintf(stderr, "lmpipe: tokenized %zu bytes into %zu tokens in %.2f ms (%s)\n", len, n,
                (util_now() - t0) * 1e3, tok_model_name(v));
    if (rc == 0) {
        if (ids_only) {
            putchar('[');
            for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
            puts("]");
        } else {
            for (size_t i = 0; i < n; i++) {
                size_t pl;
                const char *p = tok_piece_raw(v, ids[i], &pl);
                printf("%6d ", ids[i]);
                print_json_str(stdout, p, pl);
                putchar('\n');
            }
        }
    } else {
        fprintf(stderr, "lmpipe: tokenization failed: %s\n", err_str(rc));
    }
    free(ids);
    tok_free(v);
    gguf_free(&g);
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
};

static int eval_cb(void *ud, uint32_t pos, int32_t token, const float *logits)
{
    struct eval_ctx *e = ud;
    if (e->all) memcpy(e->all_logits + (size_t)pos * e->n_vocab, logits, e->n_vocab * sizeof(float));
    /* top-K by selection: K is small */
    uint32_t k = e->top < e->n_vocab ? e->top : e->n_vocab;
    uint32_t have = 0;
    for (uint32_t i = 0; i < e->n_vocab; i++) {
        float x = logits[i];
        if (have < k) {
            uint32_t j = have++;
            while (j > 0 && (logits[e->top_id[j - 1]] < x)) { e->top_id[j] = e->top_id[j - 1]; j--; }
            e->top_id[j] = (int32_t)i;
        } else if (k && x > logits[e->top_id[k - 1]]) {
            uint32_t j = k - 1;
            while (j > 0 && logits[e->top_id[j - 1]] < x) { e->top_id[j] = e->top_id[j - 1]; j--; }
            e->top_id[j] = (int32_t)i;
        }
    }
    printf("%s\n    {\"pos\": %u, \"token\": %d, \"top\": [", e->first ? "" : ",", pos, token);
    e->first = false;
    for (uint32_t i = 0; i < k; i++)
        printf("%s[%d, %.9g]", i ? ", " : "", e->top_id[i], (double)logits[e->top_id[i]]);
    printf("]}");
    return 0;
}

static int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int64_t top = 20, n_ctx = 0, threads = 0;
    bool all = false, bos = true, special = false;
    struct args a = {argc, 0, argv, NULL, {0}};
    for (a.i = 0; a.i < argc; a.i++) {
        if (opt_match(&a, "-m", true) || opt_match(&a, "--model", true)) model = a.val;
        else if (opt_match(&a, "-p", true) || opt_match(&a, "--prompt", true)) prompt = a.val;
        else if (opt_match(&a, "-f", true) || opt_match(&a, "--file", true)) file = a.val;
        else if (opt_match(&a, "--top", true)) top = cli_flag_int("--top", a.val, 0, 1 << 20);
        else if (opt_match(&a, "-c", true)) n_ctx = cli_flag_int("-c", a.val, 1, 1 << 24);
        else if (opt_match(&a, "-t", true)) threads = cli_flag_int("-t", a.val, 1, 1024);
        else if (opt_match(&a, "--all-logits", false)) all = true;
        else if (opt_match(&a, "--no-bos", false)) bos = false;
        else if (opt_match(&a, "--special", false)) special = true;
        else die_usage("unknown option '%s' for eval%s", argv[a.i], "");
    }
    if (!model) die_usage("eval needs -m MODEL%s%s", "", "");
    if (!!prompt == !!file) die_usage("eval needs exactly one of -p TEXT or -f FILE%s%s", "", "");
    char *buf = NULL;
    size_t plen;
    if (file) buf = read_file_or_die(file, &plen);
    else plen = strlen(prompt);
    const char *text = prompt ? prompt : buf;

    struct eng_model em;
    struct eng_session s;
    open_session_or_die(model, threads, n_ctx, &em, &s, buf);
    struct err_info ei;
    err_clear(&ei);
    int rc;
    const int32_t *toks;
    size_t n = 0;
    rc = eng_tokenize(&s, text, plen, bos && tok_add_bos(em.vocab), special, &toks, &n, &ei);
    struct eval_ctx e = {em.model.hp.n_vocab, (uint32_t)top, all, NULL, NULL, true};
    if (rc == 0 && n == 0) rc = err_set(&ei, ERR_INVALID, ERR_NO_OFFSET, "the prompt has no tokens");
    if (rc == 0) {
        e.top_id = calloc(top ? (size_t)top : 1, sizeof *e.top_id);
        if (all) e.all_logits = malloc(n * e.n_vocab * sizeof(float));
        if (!e.top_id || (all && !e.all_logits)) rc = err_set(&ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    if (rc == 0) {
        printf("{\n  \"model_file\": ");
        print_json_str(stdout, model, strlen(model));
        printf(",\n  \"n_vocab\": %u,\n  \"prompt_tokens\": [", e.n_vocab);
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", toks[i]);
        printf("],\n  \"positions\": [");
        /* prefill copies toks into the cache history; keep our own copy */
        rc = eng_prefill(&s, toks, n, eval_cb, NULL, &e, NULL, NULL, &ei);
        printf("\n  ]");
        if (rc == 0 && all) {
            printf(",\n  \"logits_all\": [");
            for (size_t i = 0; i < n; i++) {
                printf("%s\n    [", i ? "," : "");
                for (uint32_t j = 0; j < e.n_vocab; j++)
                    printf("%s%.9g", j ? ", " : "", (double)e.all_logits[i * e.n_vocab + j]);
                printf("]");
            }
            printf("\n  ]");
        }
        printf("\n}\n");
    }
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: eval failed: %s\n", err_format(&ei, rc, m, sizeof m));
    }
    free(e.top_id);
    free(e.all_logits);
    eng_session_free(&s);
    eng_model_free(&em);
    free(buf);
    return rc ? 1 : 0;
}

/* ---------------- info ---------------- */

static void print_kv_scalar(const struct gguf_ctx *g, const char *key, const char *label)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return;
    int64_t i;
    double d;
    struct gguf_str s;
    if (kv->type == GGUF_VT_STRING && gguf_get_str(g, key, &s) == 0)
        printf("  %-22s %.*s\n", label, (int)(s.len > 200 ? 200 : s.len), s.ptr);
    else if ((kv->type == GGUF_VT_FLOAT32 || kv->type == GGUF_VT_FLOAT64) && gguf_kv_f64(kv, &d) == 0)
        printf("  %-22s %g\n", label, d);
    else if (gguf_kv_i64(kv, &i) == 0)
        printf("  %-22s %lld\n", label, (long long)i);
}

static int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int64_t n_ctx = 0;
    bool cpu = false;
    struct args a = {argc, 0, argv, NULL, {0}};
    for (a.i = 0; a.i < argc; a.i++) {
        if (opt_match(&a, "-m", true) || opt_match(&a, "--model", true)) path = a.val;
        else if (opt_match(&a, "-c", true)) n_ctx = cli_flag_int("-c", a.val, 1, 1 << 24);
        else if (!strcmp(argv[a.i], "--cpu")) cpu = true;
        else if (argv[a.i][0] == '-' && argv[a.i][1]) die_usage("unknown option '%s' for info%s", argv[a.i], "");
        else if (!path) path = argv[a.i];
        else die_usage("info takes one MODEL argument (got '%s')%s", argv[a.i], "");
    }
    if (cpu) { /* kernels: what the CPU offers, what runs, what LMPIPE_ISA asked for */
        struct kern_cpu_info ci;
        kern_cpu_info(&ci);
        printf("cpu:\n  %-22s %s\n  %-22s %s\n  %-22s", "features", ci.features, "isa", ci.chosen, "built");
        for (int i = 0; i < ci.n_isa; i++) printf(" %s%s", ci.isa[i], ci.isa_available[i] ? "" : " (unavailable)");
        printf("\n  %-22s %s%s\n", "LMPIPE_ISA", ci.requested ? ci.requested : "(unset: automatic)",
               ci.requested && !ci.request_honoured ? " (ignored: not available here)" : "");
        if (!path) return 0;
    }
    if (!path) die_usage("info needs a MODEL path%s%s", "", "");
    struct err_info ei;
    err_clear(&ei);
    struct gguf_ctx g;
    int rc = gguf_open(path, &g, &ei);
    if (rc) die_err("cannot read model", &ei, rc);
    printf("file: %s\n  %-22s %zu bytes (%.2f MiB)\n  %-22s v%u, %llu metadata keys, %llu tensors, alignment %u\n",
           path, "size", g.len, (double)g.len / 1048576.0, "gguf", g.version,
           (unsigned long long)g.n_kv, (unsigned long long)g.n_tensors, g.alignment);
    print_kv_scalar(&g, "general.name", "name");
    print_kv_scalar(&g, "general.architecture", "architecture");
    /* tensor type histogram */
    uint64_t count[BLK_T_COUNT_] = {0}, bytes[BLK_T_COUNT_] = {0};
    uint64_t n_params = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        count[g.tensors[i].type]++;
        bytes[g.tensors[i].type] += g.tensors[i].nbytes;
        n_params += g.tensors[i].ne[0] * g.tensors[i].ne[1] * g.tensors[i].ne[2] * g.tensors[i].ne[3];
    }
    printf("tensors: %llu parameters\n", (unsigned long long)n_params);
    for (int t = 0; t < BLK_T_COUNT_; t++)
        if (count[t])
            printf("  %-8s %5llu tensors %12llu bytes%s\n", blk_type_name((uint32_t)t),
                   (unsigned long long)count[t], (unsigned long long)bytes[t],
                   kern_type_supported((uint32_t)t) ? "" : "  (not supported by this build)");
    struct model m;
    rc = model_load(&m, &g, &ei);
    if (rc == 0) {
        const struct model_hparams *hp = &m.hp;
        printf("model: %s\n", model_arch_name(m.arch));
        printf("  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %u\n"
               "  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %g\n  %-22s %g\n  %-22s %g\n  %-22s %s\n",
               "n_vocab", hp->n_vocab, "context_length", hp->n_ctx_train, "embedding_length",
               hp->n_embd, "feed_forward_length", hp->n_ff, "block_count", hp->n_layer,
               "head_count", hp->n_head, "head_count_kv", hp->n_head_kv, "head_dim", hp->head_dim,
               "rope_dim", hp->rope_dim, "rms_epsilon", (double)hp->rms_eps, "rope_freq_base",
               (double)hp->rope_base, "rope_scale", (double)hp->rope_scale, "output",
               m.output == m.tok_embd ? "tied to token_embd" : "separate");
        uint32_t ctx = n_ctx ? (uint32_t)n_ctx : hp->n_ctx_train;
        if (ctx > hp->n_ctx_train) ctx = hp->n_ctx_train;
        uint64_t kvb = kv_bytes(hp->n_layer, ctx, hp->n_head_kv * hp->head_dim);
        printf("  %-22s %.2f MiB at context %u (f32 K and V); session total %.2f MiB\n", "kv_cache",
               (double)kvb / 1048576.0, ctx, (double)model_state_bytes(&m, ctx) / 1048576.0);
        model_free(&m);
    } else {
        char msg[512];
        printf("model: not loadable: %s\n", err_format(&ei, rc, msg, sizeof msg));
    }
    printf("tokenizer:\n");
    print_kv_scalar(&g, "tokenizer.ggml.model", "model");
    print_kv_scalar(&g, "tokenizer.ggml.pre", "pre-tokenizer");
    uint64_t nt = 0;
    if (gguf_get_arr(&g, "tokenizer.ggml.tokens", NULL, &nt, NULL) == 0)
        printf("  %-22s %llu\n", "tokens", (unsigned long long)nt);
    static const char *const special[][2] = {
        {"tokenizer.ggml.bos_token_id", "bos_token_id"},
        {"tokenizer.ggml.eos_token_id", "eos_token_id"},
        {"tokenizer.ggml.eot_token_id", "eot_token_id"},
        {"tokenizer.ggml.eom_token_id", "eom_token_id"},
        {"tokenizer.ggml.unknown_token_id", "unknown_token_id"},
        {"tokenizer.ggml.padding_token_id", "padding_token_id"},
        {"tokenizer.ggml.add_bos_token", "add_bos_token"},
        {"tokenizer.ggml.add_eos_token", "add_eos_token"},
        {"tokenizer.ggml.add_space_prefix", "add_space_prefix"},
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        print_kv_scalar(&g, special[i][0], special[i][1]);
    struct gguf_str tmpl;
    bool has_tmpl = gguf_get_str(&g, "tokenizer.chat_template", &tmpl) == 0;
    printf("  %-22s %s", "chat_template", has_tmpl ? "present" : "absent");
    if (has_tmpl) printf(" (%llu bytes)", (unsigned long long)tmpl.len);
    printf("\n");
    gguf_free(&g);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("lmpipe %s\n", LMPIPE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return rpc_cmd_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "batch")) return rpc_cmd_batch(argc - 2, argv + 2);
    if (!strcmp(cmd, "quantize")) return cli_quantize_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cli_bench_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "dev")) return cli_dev_main(argc - 2, argv + 2); /* hidden: dev synth */
    fprintf(stderr, "lmpipe: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
