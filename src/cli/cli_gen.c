/* cli_gen: `lmpipe run` (a continuation of a prompt) and `lmpipe chat` (an interactive
 * conversation), the two generating commands. They share their flags (one table) and go
 * through eng like the protocol does: eng_generate for run, eng_chat for each chat turn (the
 * same rendering, stop strings and defaults as the protocol's chat).
 *
 * Generated text goes to stdout as it is released; statistics and logs go to stderr. A prompt
 * that does not fit the context is an error whose message contains context_length_exceeded. */
#include "cli.h"

#include "../eng/eng.h"
#include "../util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Flags shared by run and chat: model, context, threads, sampling, stops, the template, grammar,
 * the KV cache (type, prompt cache, context shift); and what they open. */
struct gen_opts {
    const char *model;
    int64_t n_predict, n_ctx, threads;
    struct eng_gen_params gp;
    const char *stops[ENG_MAX_STOPS];
    size_t n_stop;
    struct cli_kv kv;
    int64_t shift_keep;         /* --context-shift KEEP; -1: none */
    struct eng_ctx_shift shift; /* the hook's argument */
    struct eng_pcache *pc;      /* --prompt-cache, opened with the model */
    const char *grammar_file, *schema_file;
    bool json, strict;
    struct eng_grammar *grammar; /* owned: freed by the command */
    const char *tmpl_name, *tmpl_file, *system;
    bool chat; /* --chat (run: render the prompt as a chat; chat: always) */
    char *tmpl_src; /* tmpl_file's text, checked to parse */
    size_t tmpl_len;
    struct eng_chat_opts co;
    const char *tools_file, *tool_choice;
    char *tools_src; /* tools_file's text, checked (eng_conv_set_tools) */
    size_t tools_len;
};

static void add_stop(void *dst, const char *name, const char *v)
{
    (void)name;
    struct gen_opts *o = dst;
    if (o->n_stop == ENG_MAX_STOPS) cli_usage_error("at most %d stop strings", ENG_MAX_STOPS);
    if (!v[0]) cli_usage_error("--stop needs a non-empty string");
    if (strlen(v) > ENG_MAX_STOP_LEN) cli_usage_error("--stop strings have at most %d bytes", ENG_MAX_STOP_LEN);
    o->stops[o->n_stop++] = v;
}

static void set_seed(void *dst, const char *name, const char *v)
{
    *(uint64_t *)dst = (uint64_t)cli_flag_int(name, v, 0, INT64_MAX);
}

#define GEN_MAX_OPTS 56
#define GEN_OWN_OPTS 32 /* room after the sampling fields: the 20 shared flags below + run's own */

/* The shared part of the option table; returns its length. */
static size_t gen_table(struct gen_opts *o, struct cli_opt *t)
{
    size_t n = 0;
    t[n++] = (struct cli_opt){.name = "-m", .alt = "--model", .kind = CLI_STR, .dst = &o->model};
    t[n++] = (struct cli_opt){.name = "-n", .alt = "--n-predict", .kind = CLI_INT, .dst = &o->n_predict,
                              .lo = -1, .hi = INT32_MAX};
    t[n++] = (struct cli_opt){.name = "-c", .alt = "--ctx-size", .kind = CLI_INT, .dst = &o->n_ctx,
                              .lo = ENG_MIN_CTX, .hi = 1 << 24};
    t[n++] = (struct cli_opt){.name = "-t", .alt = "--threads", .kind = CLI_INT, .dst = &o->threads,
                              .lo = 1, .hi = 1024};
    n += cli_samp_opts(&o->gp.samp, t + n, GEN_MAX_OPTS - GEN_OWN_OPTS - n);
    t[n++] = (struct cli_opt){.name = "--seed", .kind = CLI_FN, .dst = &o->gp.samp.seed, .fn = set_seed};
    t[n++] = (struct cli_opt){.name = "--stop", .kind = CLI_FN, .dst = o, .fn = add_stop};
    t[n++] = (struct cli_opt){.name = "--no-bos", .kind = CLI_CLEAR, .dst = &o->gp.add_bos};
    t[n++] = (struct cli_opt){.name = "--special", .kind = CLI_SET, .dst = &o->gp.parse_special};
    t[n++] = (struct cli_opt){.name = "--ignore-eos", .kind = CLI_SET, .dst = &o->gp.ignore_eos};
    n += cli_kv_opts(&o->kv, t + n);
    t[n++] = (struct cli_opt){.name = "--context-shift", .kind = CLI_INT, .dst = &o->shift_keep, .lo = 0,
                              .hi = 1 << 24};
    t[n++] = (struct cli_opt){.name = "--grammar", .kind = CLI_STR, .dst = &o->grammar_file};
    t[n++] = (struct cli_opt){.name = "--json-schema", .kind = CLI_STR, .dst = &o->schema_file};
    t[n++] = (struct cli_opt){.name = "--json", .kind = CLI_SET, .dst = &o->json};
    t[n++] = (struct cli_opt){.name = "--strict", .kind = CLI_SET, .dst = &o->strict};
    /* hidden: forced runs of a grammar sampled token by token (what tests/bench_grammar.sh compares) */
    t[n++] = (struct cli_opt){.name = "--no-forced", .kind = CLI_SET, .dst = &o->gp.no_forced};
    t[n++] = (struct cli_opt){.name = "--chat-template", .kind = CLI_STR, .dst = &o->tmpl_name};
    t[n++] = (struct cli_opt){.name = "--chat-template-file", .kind = CLI_STR, .dst = &o->tmpl_file};
    t[n++] = (struct cli_opt){.name = "--system", .kind = CLI_STR, .dst = &o->system};
    t[n++] = (struct cli_opt){.name = "--chat", .kind = CLI_SET, .dst = &o->chat};
    t[n++] = (struct cli_opt){.name = "--tools", .kind = CLI_STR, .dst = &o->tools_file};
    t[n++] = (struct cli_opt){.name = "--tool-choice", .kind = CLI_STR, .dst = &o->tool_choice};
    return n;
}

/* Parse run's or chat's arguments: the shared table plus the command's own options. */
static void gen_args(int argc, char **argv, const char *cmd, int64_t n_predict,
                     const struct cli_opt *own, size_t n_own, struct gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = n_predict;
    o->shift_keep = -1;
    cli_kv_defaults(&o->kv);
    eng_gen_params_default(&o->gp);
    struct cli_opt t[GEN_MAX_OPTS];
    size_t n = gen_table(o, t);
    for (size_t i = 0; i < n_own && n < GEN_MAX_OPTS; i++) t[n++] = own[i];
    struct cli_spec spec = {.cmd = cmd, .opts = t, .n_opts = n};
    cli_parse(&spec, argc, argv);
    if (!o->model) cli_usage_error("%s needs -m MODEL", cmd);
    o->gp.max_tokens = (int32_t)o->n_predict;
    o->gp.stop = o->stops;
    o->gp.n_stop = o->n_stop;
    eng_chat_opts_default(&o->co);
    if (o->tmpl_name && o->tmpl_file)
        cli_usage_error("give either --chat-template or --chat-template-file, not both");
    if (o->tmpl_name) {
        o->co.kind = ENG_TMPL_BUILTIN;
        o->co.name = o->tmpl_name;
        if (eng_chat_opts_check(&o->co, NULL)) cli_usage_error("unknown chat template '%s'", o->tmpl_name);
    }
    /* a file that does not parse is a usage error, found before the model loads */
    if (o->tmpl_file) o->tmpl_src = cli_chat_template_file(o->tmpl_file, &o->tmpl_len);
    o->grammar = cli_grammar_load(o->grammar_file, o->schema_file, o->json, o->strict);
    o->gp.grammar = o->grammar;
    if (o->tool_choice && !o->tools_file) cli_usage_error("--tool-choice needs --tools FILE");
    if (o->tools_file) {
        o->tools_src = cli_read_file_or_die(o->tools_file, &o->tools_len);
        struct eng_conv *c = NULL;
        struct err_info ei;
        err_clear(&ei);
        int rc = eng_conv_create(&c);
        if (!rc) rc = eng_conv_set_tools(c, o->tools_src, o->tools_len, o->tool_choice, &ei);
        eng_conv_free(c);
        if (rc) cli_usage_error("%s: %s", o->tools_file, ei.msg[0] ? ei.msg : err_str(rc));
    }
}

/* The tools of --tools for a conversation (checked by gen_args). */
static int conv_tools(const struct gen_opts *o, struct eng_conv *c, struct err_info *ei)
{
    return o->tools_src ? eng_conv_set_tools(c, o->tools_src, o->tools_len, o->tool_choice, ei) : 0;
}

/* A tool call, once complete: one line of OpenAI's JSON on stdout (after the reply's text). */
static int print_call(const struct eng_tool_event *ev, int *epipe)
{
    char *line = eng_tool_call_json(ev->id, ev->name, ev->text, ev->len);
    if (!line) return 1;
    bool ok = printf("\n%s", line) >= 0 && fflush(stdout) == 0;
    free(line);
    if (!ok) *epipe = 1;
    return ok ? 0 : 1;
}

/* The model (with --chat-template-file's template) and one session with its KV cache settings,
 * or exit 1 with the reason (freeing `owned` and the template text first). */
static void open_or_die(struct gen_opts *o, struct eng_model **em, struct eng_session **s,
                        void *owned)
{
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_model_open(em, o->model, (int)o->threads, &ei);
    const char *what = "cannot load model";
    if (!rc && o->tmpl_src) {
        rc = eng_model_set_chat_template(*em, o->tmpl_src, o->tmpl_len, o->tmpl_file, &ei);
        what = "cannot use the chat template";
    }
    free(o->tmpl_src);
    o->tmpl_src = NULL;
    *s = NULL;
    if (!rc) {
        what = "cannot create session";
        rc = eng_session_create_kv(s, *em, (uint32_t)o->n_ctx, o->kv.kv_type, &ei);
    }
    if (!rc && o->kv.pcache_dir) {
        what = "cannot open the prompt cache";
        rc = eng_pcache_open(&o->pc, o->kv.pcache_dir, (uint32_t)o->kv.pcache_min, (uint64_t)o->kv.pcache_max, &ei);
    }
    if (rc) {
        eng_session_free(*s);
        eng_model_free(*em);
        free(owned);
        cli_die(what, &ei, rc);
    }
    eng_session_set_pcache(*s, o->pc);
    if (o->shift_keep >= 0) {
        o->shift.keep = (uint32_t)o->shift_keep;
        eng_session_set_hooks(*s, &(struct eng_hooks){.ctx_full = eng_ctx_full_shift, .ud = &o->shift});
    }
    if (o->n_ctx > (int64_t)eng_model_n_ctx_train(*em))
        LOG_WARN("context %lld capped to the model's training context %u", (long long)o->n_ctx,
                 eng_model_n_ctx_train(*em));
}

static void close_all(struct gen_opts *o, struct eng_model *em, struct eng_session *s)
{
    eng_session_free(s);
    eng_pcache_free(o->pc);
    o->pc = NULL;
    eng_model_free(em);
}

/* Which template a chat renders with, for the banner. */
static const char *template_label(const struct eng_chat_info *ci, const struct eng_chat_opts *co)
{
    if (co->kind == ENG_TMPL_BUILTIN) return co->name;
    if (ci->source == ENG_CHAT_FILE) return ci->name;
    return ci->jinja ? "the model's own (Jinja)" : ci->builtin;
}

/* The warning when the model's own template cannot be used as it is. */
static void template_warning(const struct eng_chat_info *ci, const struct eng_chat_opts *co)
{
    if (co->kind == ENG_TMPL_BUILTIN || ci->jinja) return;
    if (ci->source == ENG_CHAT_DETECTED)
        LOG_WARN("the model's chat template does not parse as Jinja (%s): using the built-in "
                 "'%s'%s (--chat-template NAME or --chat-template-file FILE to choose)",
                 ci->parse_error, ci->builtin, ci->fallback ? ", as nothing was recognised" : "");
    else
        LOG_WARN("the model has no chat template: using chatml (--chat-template NAME or "
                 "--chat-template-file FILE to choose)");
}

/* The model's description, or NULL (out of memory). */
static struct eng_model_info *model_info(const struct eng_model *em)
{
    struct eng_model_info *mi = malloc(sizeof *mi);
    if (mi && eng_model_info(em, 0, mi)) {
        free(mi);
        mi = NULL;
    }
    return mi;
}

/* One line on stderr after each generation (finish error included: what ran until then). */
static void print_stats(const struct eng_gen_result *res, const struct eng_model *em,
                        const struct eng_session *s, const struct eng_pcache *pc)
{
    struct eng_model_info *mi = model_info(em);
    if (!mi) return;
    const double mib = 1024.0 * 1024.0;
    if (res->constraint_ms > 0)
        fprintf(stderr, "lmpipe: grammar %.2f ms of the decode (%.2f%%); %u of %u tokens forced\n",
                res->constraint_ms, res->decode_ms > 0 ? 100.0 * res->constraint_ms / res->decode_ms : 0.0,
                res->forced_tokens, res->completion_tokens);
    fprintf(stderr,
            "lmpipe: prompt %u tokens (%u cached) in %.1f ms (%.1f tok/s); generated %u tokens "
            "in %.1f ms (%.1f tok/s); finish %s; peak RSS %.1f MiB, RssAnon %.1f MiB; KV %s; "
            "kernels %s, %d threads; decode CPU %.1f ms",
            res->prompt_tokens, res->cached_tokens, res->prefill_ms,
            res->prefill_ms > 0 ? (res->prompt_tokens - res->cached_tokens) * 1e3 / res->prefill_ms
                                : 0.0,
            res->completion_tokens, res->decode_ms,
            res->decode_ms > 0 ? res->completion_tokens * 1e3 / res->decode_ms : 0.0,
            eng_finish_name(res->finish), (double)util_peak_rss() / mib, (double)util_rss_anon(0) / mib,
            eng_kv_type_name(eng_session_kv_type(s)), mi->isa, mi->threads, res->decode_cpu_ms);
    if (res->context_shifts) fprintf(stderr, "; %u context shifts", res->context_shifts);
    fputc('\n', stderr);
    if (pc) {
        struct eng_pcache_stats ps;
        eng_pcache_stats(pc, &ps);
        fprintf(stderr,
                "lmpipe: prompt cache %s: %llu hits, %llu misses, %llu stored; %llu entries, %.1f MiB on disk\n",
                ps.dir, (unsigned long long)ps.hits, (unsigned long long)ps.misses, (unsigned long long)ps.stores,
                (unsigned long long)ps.entries, (double)ps.disk_bytes / mib);
    }
    free(mi);
}

/* ---------------- run ---------------- */

struct text_out {
    char *buf; /* chat: the reply being collected (NULL for run) */
    size_t len, cap;
    bool collect;
    int epipe;
};

static int on_text(void *ud, const char *text, size_t len, int32_t token)
{
    (void)token;
    struct text_out *o = ud;
    if (o->collect && o->len + len + 1 > o->cap) {
        size_t nc = (o->len + len + 1) * 2;
        char *b = realloc(o->buf, nc);
        if (!b) return 1;
        o->buf = b;
        o->cap = nc;
    }
    if (o->collect) {
        memcpy(o->buf + o->len, text, len);
        o->len += len;
        o->buf[o->len] = 0;
    }
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        o->epipe = 1;
        return 1;
    }
    return 0;
}

static int run_on_tool(void *ud, const struct eng_tool_event *ev)
{
    struct text_out *o = ud;
    return ev->kind == ENG_TOOL_END ? print_call(ev, &o->epipe) : 0;
}

/* --snapshot FILE before the run: restore the prompt's prefix from FILE when they share one. A
 * missing FILE is the first run (nothing to restore); any other problem with it is an error (the
 * file is not overwritten). text NULL (run with a chat template: the rendered prompt is not known
 * here): the whole snapshot is loaded and the chat reuses what its rendered prompt shares with it.
 * 0, or 1 after saying why. */
static int snapshot_restore(struct eng_session *s, const struct eng_model *em, const struct gen_opts *o,
                            const char *path, const char *text, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        fprintf(stderr, "lmpipe: snapshot %s: none yet (it is written after this run)\n", path);
        return 0;
    }
    struct err_info ei;
    err_clear(&ei);
    size_t cap = (size_t)eng_session_n_ctx(s) + 1, n = 0;
    int32_t *toks = malloc(cap * sizeof *toks);
    int rc = !toks ? err_set(&ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory")
             : text ? eng_tokenize(em, text, len, o->gp.add_bos, o->gp.parse_special, toks, cap, &n, &ei)
                    : 0;
    uint32_t restored = 0;
    double t0 = util_now();
    if (rc == ERR_LIMIT) rc = 0, n = 0; /* longer than the context: the generation says so */
    else if (!rc) rc = eng_session_load(s, path, text ? toks : NULL, n, &restored, &ei);
    free(toks);
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: cannot use snapshot %s: %s\n", path, err_format(&ei, rc, m, sizeof m));
        return 1;
    }
    if (text)
        fprintf(stderr, "lmpipe: snapshot %s: restored %u of %zu prompt tokens in %.1f ms\n", path, restored, n,
                (util_now() - t0) * 1e3);
    else
        fprintf(stderr, "lmpipe: snapshot %s: restored %u tokens in %.1f ms (the chat reuses its common prefix)\n",
                path, restored, (util_now() - t0) * 1e3);
    return 0;
}

/* --snapshot FILE after the run. 0, or 1 after saying why. */
static int snapshot_save(struct eng_session *s, const char *path)
{
    struct err_info ei;
    err_clear(&ei);
    uint32_t n = 0;
    uint64_t bytes = 0;
    double t0 = util_now();
    int rc = eng_session_save(s, path, &n, &bytes, &ei);
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: cannot save snapshot %s: %s\n", path, err_format(&ei, rc, m, sizeof m));
        return 1;
    }
    fprintf(stderr, "lmpipe: snapshot %s: saved %u tokens (%.1f MiB) in %.1f ms\n", path, n,
            (double)bytes / (1024.0 * 1024.0), (util_now() - t0) * 1e3);
    return 0;
}

/* run with a chat option: the prompt is one user turn (after the --system message) rendered
 * with the chat template and its generation prompt, generated as chat generates it; with
 * --tools each call the reply makes is printed as a JSON line after its text. */
static int run_chat(struct gen_opts *o, struct eng_session *s, const struct eng_model *em,
                    const char *prompt, size_t len, const struct eng_sink *sink,
                    struct eng_gen_result *res, struct err_info *ei)
{
    struct eng_model_info *mi = model_info(em);
    if (mi) template_warning(&mi->chat, &o->co);
    free(mi);
    struct eng_conv *c;
    int rc = eng_conv_create(&c);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
    if (o->system) rc = eng_conv_add(c, "system", o->system, strlen(o->system));
    if (!rc) rc = eng_conv_add(c, "user", prompt, len);
    if (rc) err_set(ei, rc, ERR_NO_OFFSET, "out of memory");
    if (!rc) rc = conv_tools(o, c, ei);
    struct eng_chat_opts co = o->co;
    co.on_tool = run_on_tool;
    co.tool_ud = sink->ud;
    if (!rc) rc = eng_chat(s, eng_conv_request(c), &co, &o->gp, sink, res, ei);
    eng_conv_free(c);
    return rc;
}

int cli_run_main(int argc, char **argv)
{
    const char *prompt = NULL, *file = NULL, *snapshot = NULL;
    struct gen_opts o;
    const struct cli_opt own[] = {
        {.name = "-p", .alt = "--prompt", .kind = CLI_STR, .dst = &prompt},
        {.name = "-f", .alt = "--file", .kind = CLI_STR, .dst = &file},
        {.name = "--snapshot", .kind = CLI_STR, .dst = &snapshot},
    };
    gen_args(argc, argv, "run", 128, own, sizeof own / sizeof own[0], &o);
    if (prompt && file) cli_usage_error("give either -p or -f, not both");
    bool chat = o.chat || o.tmpl_name || o.tmpl_file || o.system || o.tools_file;
    char *buf = NULL;
    size_t plen = prompt ? strlen(prompt) : 0;
    if (file) {
        buf = cli_read_file_or_die(file, &plen);
    } else if (!prompt && !(buf = cli_slurp(stdin, &plen))) {
        fprintf(stderr, "lmpipe: cannot read the prompt from stdin\n");
        free(o.tmpl_src);
        return 1;
    }
    struct eng_model *em;
    struct eng_session *s;
    open_or_die(&o, &em, &s, buf);
    const char *text = prompt ? prompt : buf;
    if (snapshot && snapshot_restore(s, em, &o, snapshot, chat ? NULL : text, plen)) {
        close_all(&o, em, s);
        free(buf);
        return 1;
    }
    struct err_info ei;
    err_clear(&ei);
    struct text_out out = {0};
    struct eng_sink sink = {on_text, NULL, &out, NULL};
    struct eng_gen_result res;
    int rc = chat ? run_chat(&o, s, em, text, plen, &sink, &res, &ei)
                  : eng_generate(s, text, plen, &o.gp, &sink, &res, &ei);
    if (!out.epipe) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: generation failed: %s\n", err_format(&ei, rc, m, sizeof m));
    } else {
        print_stats(&res, em, s, o.pc);
        if (snapshot) rc = snapshot_save(s, snapshot);
    }
    close_all(&o, em, s);
    eng_grammar_free(o.grammar);
    free(o.tools_src);
    free(buf);
    return rc ? 1 : 0;
}

/* ---------------- chat ---------------- */

struct chat {
    struct eng_model *em;
    struct eng_session *s;
    struct eng_conv *conv;
    struct eng_chat_opts co;
    struct gen_opts *o;
    size_t base; /* messages kept by /reset (the system prompt) */
    struct text_out out;
    /* the calls of the reply being generated (added to the conversation after its text) */
    struct chat_call {
        char id[32], name[72];
        char *args;
        size_t len;
    } calls[ENG_MAX_TOOL_CALLS];
    size_t n_calls;
};

static int chat_on_tool(void *ud, const struct eng_tool_event *ev)
{
    struct chat *c = ud;
    if (ev->kind != ENG_TOOL_END || c->n_calls == ENG_MAX_TOOL_CALLS) return 0;
    struct chat_call *k = &c->calls[c->n_calls];
    if (!(k->args = malloc(ev->len + 1))) return 1;
    memcpy(k->args, ev->text, ev->len);
    k->len = ev->len;
    snprintf(k->id, sizeof k->id, "%s", ev->id);
    snprintf(k->name, sizeof k->name, "%s", ev->name);
    c->n_calls++;
    return print_call(ev, &c->out.epipe);
}

/* The reply into the conversation: its text, then its calls. */
static int chat_record(struct chat *c)
{
    int rc = eng_conv_add(c->conv, "assistant", c->out.buf ? c->out.buf : "", c->out.len);
    for (size_t i = 0; i < c->n_calls; i++) {
        if (!rc) rc = eng_conv_add_call(c->conv, c->calls[i].id, c->calls[i].name, c->calls[i].args, c->calls[i].len);
        free(c->calls[i].args);
    }
    c->n_calls = 0;
    return rc;
}

/* FILE.chat.json: where /save keeps the conversation beside the snapshot FILE. */
static char *conv_path(const char *path)
{
    static const char ext[] = ".chat.json";
    size_t n = strlen(path);
    char *p = malloc(n + sizeof ext);
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, ext, sizeof ext);
    }
    return p;
}

/* data[0..len) to path atomically (temporary file, fsync, rename). 0 or an errno. */
static int write_atomic(const char *path, const char *data, size_t len)
{
    size_t n = strlen(path) + sizeof ".tmp-XXXXXX";
    char *tmp = malloc(n);
    if (!tmp) return ENOMEM;
    snprintf(tmp, n, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp), e = 0;
    if (fd < 0) e = errno;
    for (size_t done = 0; !e && done < len;) {
        ssize_t k = write(fd, data + done, len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) e = k < 0 ? errno : EIO;
        else done += (size_t)k;
    }
    if (!e && fsync(fd) != 0) e = errno;
    if (fd >= 0 && close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e && fd >= 0) unlink(tmp);
    free(tmp);
    return e;
}

/* /save FILE: the session's cache as a snapshot in FILE, the conversation in FILE.chat.json. */
static void chat_save(struct chat *c, const char *path)
{
    char *cp = conv_path(path), *text = NULL;
    size_t len = 0;
    if (!cp || eng_conv_dump(c->conv, &text, &len)) {
        fprintf(stderr, "lmpipe: /save: out of memory\n");
    } else if (snapshot_save(c->s, path) == 0) {
        int e = write_atomic(cp, text, len);
        if (e) fprintf(stderr, "lmpipe: /save: cannot write %s: %s\n", cp, strerror(e));
        else fprintf(stderr, "lmpipe: conversation (%zu messages) saved to %s\n", eng_conv_len(c->conv), cp);
    }
    free(text);
    free(cp);
}

/* /load FILE: the conversation from FILE.chat.json and the cache from the snapshot FILE, each
 * checked before anything changes; the next turn then reuses the restored cache. */
static void chat_load(struct chat *c, const char *path)
{
    char *cp = conv_path(path), *text = NULL;
    size_t len = 0;
    struct eng_conv *conv = NULL;
    struct err_info ei;
    err_clear(&ei);
    FILE *f = cp ? fopen(cp, "rb") : NULL;
    int rc = 0;
    if (!f) {
        fprintf(stderr, "lmpipe: /load: cannot open %s (written by /save beside the snapshot): %s\n",
                cp ? cp : path, strerror(errno));
    } else if (!(text = cli_slurp(f, &len)) || eng_conv_create(&conv)) {
        fprintf(stderr, "lmpipe: /load: cannot read %s\n", cp);
    } else if ((rc = eng_conv_parse(conv, text, len, &ei)) || (rc = eng_session_load(c->s, path, NULL, 0, NULL, &ei))) {
        char m[512];
        fprintf(stderr, "lmpipe: /load %s: %s\n", path, err_format(&ei, rc, m, sizeof m));
    } else {
        eng_conv_free(c->conv);
        c->conv = conv;
        conv = NULL;
        if (c->base > eng_conv_len(c->conv)) c->base = eng_conv_len(c->conv);
        fprintf(stderr, "lmpipe: loaded %u cached tokens and %zu messages from %s\n", eng_session_n_tokens(c->s),
                eng_conv_len(c->conv), path);
    }
    if (f) fclose(f);
    eng_conv_free(conv);
    free(text);
    free(cp);
}

/* A line that starts with '/': 1 to quit, 0 when handled. */
static int chat_command(struct chat *c, const char *line)
{
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) return 1;
    if (!strcmp(line, "/reset")) {
        eng_conv_truncate(c->conv, c->base);
        eng_session_reset(c->s);
        fprintf(stderr, "lmpipe: conversation reset\n");
    } else if (!strncmp(line, "/save ", 6) && line[6]) {
        chat_save(c, line + 6);
    } else if (!strncmp(line, "/load ", 6) && line[6]) {
        chat_load(c, line + 6);
    } else {
        fprintf(stderr, "lmpipe: unknown command '%s' (/reset /save FILE /load FILE /tool RESULT /exit)\n", line);
    }
    return 0;
}

/* One turn: the user's line (or, for "/tool RESULT", the result of the oldest call not answered
 * yet) joins the conversation, eng_chat answers it (once every call has its result). 0, 1 when
 * stdout is gone, or an error that ends the chat; a failed turn (e.g. a full context) is
 * forgotten and the chat goes on (*failed set). */
static int chat_turn(struct chat *c, const char *line, size_t n, bool *failed)
{
    size_t before = eng_conv_len(c->conv);
    int rc;
    if (!strncmp(line, "/tool ", 6)) {
        const char *id = eng_conv_pending_call(c->conv);
        if (!id) {
            fprintf(stderr, "lmpipe: no tool call is waiting for a result\n");
            *failed = true;
            return 0;
        }
        if ((rc = eng_conv_add_tool_result(c->conv, id, line + 6, n - 6))) return rc;
        if (eng_conv_pending_call(c->conv)) return 0; /* more results to come */
    } else if ((rc = eng_conv_add(c->conv, "user", line, n))) {
        return rc;
    }
    c->out.len = 0;
    struct eng_sink sink = {on_text, NULL, &c->out, NULL};
    struct eng_gen_result res;
    struct err_info ei;
    err_clear(&ei);
    rc = eng_chat(c->s, eng_conv_request(c->conv), &c->co, &c->o->gp, &sink, &res, &ei);
    if (c->out.epipe) return 1;
    fputc('\n', stdout);
    fflush(stdout);
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: %s\n", err_format(&ei, rc, m, sizeof m));
        eng_conv_truncate(c->conv, before); /* forget the turn that failed; the session stays usable */
        for (size_t i = 0; i < c->n_calls; i++) free(c->calls[i].args);
        c->n_calls = 0;
        if (rc == ERR_CONTEXT) fprintf(stderr, "lmpipe: use /reset to start over\n");
        *failed = true;
        return 0;
    }
    print_stats(&res, c->em, c->s, c->o->pc);
    return chat_record(c);
}

/* Read turns until EOF or /exit. The whole conversation is re-rendered every turn; the session
 * keeps its KV cache, so only the new part of the prompt is evaluated. */
static int chat_loop(struct chat *c, bool tty)
{
    char *line = NULL;
    size_t line_cap = 0;
    int status = 0, rc = 0;
    for (;;) {
        if (tty) fprintf(stderr, "> ");
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (line[0] == '/' && strncmp(line, "/tool ", 6) != 0) {
            if (chat_command(c, line)) break;
            continue;
        }
        bool failed = false;
        if ((rc = chat_turn(c, line, (size_t)n, &failed))) break;
        if (failed) status = 1;
    }
    if (rc < 0) {
        fprintf(stderr, "lmpipe: chat failed: %s\n", err_str(rc));
        status = 1;
    }
    free(line);
    return status;
}

int cli_chat_main(int argc, char **argv)
{
    struct gen_opts o;
    gen_args(argc, argv, "chat", 512, NULL, 0, &o);
    struct chat c = {.o = &o, .co = o.co};
    c.co.on_tool = chat_on_tool;
    c.co.tool_ud = &c;
    if (eng_conv_create(&c.conv) || conv_tools(&o, c.conv, NULL)) {
        fprintf(stderr, "lmpipe: out of memory\n");
        free(o.tmpl_src);
        free(o.tools_src);
        eng_conv_free(c.conv);
        return 1;
    }
    open_or_die(&o, &c.em, &c.s, NULL);
    struct eng_model_info *mi = model_info(c.em);
    if (mi) template_warning(&mi->chat, &c.co);
    bool tty = isatty(STDIN_FILENO);
    if (tty && mi)
        fprintf(stderr, "lmpipe chat: %s, template %s, context %u. Commands: /reset /save FILE /load FILE /exit\n",
                mi->arch, template_label(&mi->chat, &c.co), eng_session_n_ctx(c.s));
    free(mi);
    int status = 0;
    if (o.system && eng_conv_add(c.conv, "system", o.system, strlen(o.system)) == 0) c.base = 1;
    else if (o.system) status = 1;
    if (!status) status = chat_loop(&c, tty);
    eng_conv_free(c.conv);
    free(c.out.buf);
    close_all(&o, c.em, c.s);
    eng_grammar_free(o.grammar);
    free(o.tools_src);
    return status;
}
