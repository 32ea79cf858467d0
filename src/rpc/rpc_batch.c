/* rpc_batch: `lmpipe batch -m MODEL IN.jsonl [-o OUT.jsonl] [--resume] [--shard I/N]`.
 *
 * One request per input line, either a JSON-RPC request ({"id", "method", "params"}) or a flat
 * object ({"id", "prompt" | "messages", sampling...}; "messages" means chat). Each line goes
 * through the same parser, engine code and response builder as `serve` (inline, no threads, no
 * loop), so a batch output line is exactly the JSON-RPC response serve would send (never cut:
 * the 64 KiB line rule is for pipes, not files).
 *
 * Crash safety: every output line is written with one write(2) on an O_APPEND descriptor as soon
 * as it is ready. --resume reads OUT first, drops a torn last line (no '\n'), and skips every id
 * already there, so a killed job continues where it stopped. --shard I/N keeps input lines whose
 * 0-based line number is I modulo N: N processes (GNU parallel, a Slurm array) cover the file
 * once between them. The exit code describes the whole output file: 0 when every line in it is
 * a result, 1 when any is an error, from this run or (--resume) an earlier one (usage errors,
 * 2, are the command line's: src/cli/cli_serve.c). */
#include "rpc_int.h"

#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a set of ids (their compact JSON text), open addressing ---- */
struct idset {
    char **slot;
    size_t cap, n;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool idset_has(const struct idset *set, const char *key)
{
    if (!set->cap) return false;
    for (size_t i = fnv1a(key) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slot[i]) return false;
        if (!strcmp(set->slot[i], key)) return true;
    }
}

static int idset_add(struct idset *set, const char *key)
{
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **ns = calloc(cap, sizeof *ns);
        if (!ns) return ERR_NOMEM;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i]) {
                size_t j = fnv1a(set->slot[i]) & (cap - 1);
                while (ns[j]) j = (j + 1) & (cap - 1);
                ns[j] = set->slot[i];
            }
        free(set->slot);
        set->slot = ns;
        set->cap = cap;
    }
    size_t i = fnv1a(key) & (set->cap - 1);
    while (set->slot[i]) {
        if (!strcmp(set->slot[i], key)) return 0;
        i = (i + 1) & (set->cap - 1);
    }
    if (!(set->slot[i] = strdup(key))) return ERR_NOMEM;
    set->n++;
    return 0;
}

static void idset_free(struct idset *set)
{
    for (size_t i = 0; i < set->cap; i++) free(set->slot[i]);
    free(set->slot);
    memset(set, 0, sizeof *set);
}

static char *id_key(json_t *id) { return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT); }

/* ---- the job ---- */
struct batch {
    struct rpc_server s;
    int out_fd;
    bool out_failed;
    struct idset done; /* ids in OUT before we started (--resume) */
    struct idset seen; /* ids of this run */
    uint64_t line_no, shard_i, shard_n;
    uint64_t n_ok, n_failed, n_skipped;
    uint64_t n_failed_before; /* --resume: error lines (or unreadable ones) already in OUT */
    double t0, t_report;
};

static int batch_write(struct rpc_server *s, char *line, size_t len)
{
    struct batch *b = s->sink_ud;
    size_t off = 0;
    while (off < len && !b->out_failed) {
        ssize_t k = write(b->out_fd, line + off, len - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            fprintf(stderr, "lmpipe: batch: cannot write the output: %s\n", strerror(errno));
            b->out_failed = true;
            break;
        }
        off += (size_t)k;
    }
    free(line);
    rpc_written(s, len);
    return b->out_failed ? ERR_IO : 0;
}

static void report(struct batch *b, bool final)
{
    double now = util_now();
    if (!final && now - b->t_report < 1.0) return;
    b->t_report = now;
    double dt = now - b->t0;
    fprintf(stderr, "lmpipe: batch: %llu done, %llu failed, %llu skipped (%.2f req/s)%s\n",
            (unsigned long long)b->n_ok, (unsigned long long)b->n_failed,
            (unsigned long long)b->n_skipped, dt > 0 ? (double)(b->n_ok + b->n_failed) / dt : 0.0,
            final ? ", finished" : "");
}

static void line_error(struct batch *b, json_t *id, const char *msg)
{
    b->s.n.errors++;
    struct rpc_fail f;
    rpc_fail_set(&f, RPC_E_INVALID_REQUEST, 0, "%s", msg);
    rpc_emit(&b->s, rpc_msg_error(id, rpc_error_obj(&f, NULL)));
}

/* One input object with a fresh id → the JSON-RPC request serve would get: a request as it is,
 * a flat object as the params of chat ("messages") or generate. */
static void batch_request(struct batch *b, json_t *in, json_t *id, uint64_t no)
{
    json_t *method = json_object_get(in, "method"), *params = json_object_get(in, "params");
    json_t *req = json_object();
    json_object_set_new(req, "jsonrpc", json_string("2.0"));
    json_object_set(req, "id", id);
    if (method) json_object_set(req, "method", method);
    else json_object_set_new(req, "method", json_string(json_object_get(in, "messages") ? "chat" : "generate"));
    if (params) {
        json_object_set(req, "params", params);
    } else {
        json_t *p = json_deep_copy(in);
        json_object_del(p, "id");
        json_object_del(p, "method");
        json_object_del(p, "jsonrpc");
        json_object_set_new(req, "params", p);
    }
    const char *m = json_string_value(json_object_get(req, "method"));
    if (!m || (strcmp(m, "generate") && strcmp(m, "chat") && strcmp(m, "chat/render") &&
               strcmp(m, "tokenize") && strcmp(m, "detokenize"))) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "line %llu: 'method' must be generate, chat, chat/render, tokenize or detokenize",
                 (unsigned long long)no + 1);
        line_error(b, id, msg);
    } else {
        rpc_handle_message(&b->s, req);
    }
    json_decref(req);
}

/* A parsed input line: skipped when its id is done (--resume), an error when it has none or
 * repeats one, else a request. */
static void batch_object(struct batch *b, json_t *in, uint64_t no, size_t big_at)
{
    char msg[320];
    json_t *id = json_object_get(in, "id");
    char *key = id && (json_is_string(id) || json_is_integer(id)) ? id_key(id) : NULL;
    if (!key) {
        snprintf(msg, sizeof msg, "line %llu: 'id' (a string or an integer) is required", (unsigned long long)no + 1);
        line_error(b, NULL, msg);
    } else if (idset_has(&b->done, key)) {
        b->n_skipped++;
    } else if (idset_has(&b->seen, key)) {
        snprintf(msg, sizeof msg, "line %llu: duplicate id %.200s", (unsigned long long)no + 1, key);
        line_error(b, id, msg);
    } else {
        idset_add(&b->seen, key);
        if (big_at == SIZE_MAX) {
            batch_request(b, in, id, no);
        } else { /* the id was read: the line's request fails, answered with it */
            struct rpc_fail f;
            b->s.n.errors++;
            rpc_fail_set(&f, RPC_E_PARAMS, 0,
                         "line %llu: invalid params: the integer at byte %zu does not fit in 64 bits "
                         "(integers must lie in [-2^63, 2^63-1])", (unsigned long long)no + 1, big_at);
            rpc_emit(&b->s, rpc_msg_error(id, rpc_error_obj(&f, NULL)));
        }
    }
    free(key);
}

static void batch_line(void *ud, const char *line, size_t len)
{
    struct batch *b = ud;
    uint64_t no = b->line_no++;
    if (b->shard_n > 1 && no % b->shard_n != b->shard_i) return;
    uint64_t errors0 = b->s.n.errors, skipped0 = b->n_skipped;
    size_t i = 0;
    while (line && i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (line && i == len) return;
    json_t *in = NULL;
    json_error_t jerr;
    size_t big_at = SIZE_MAX;
    char msg[320];
    if (!line) {
        snprintf(msg, sizeof msg, "line %llu: %zu bytes exceed the limit of %zu", (unsigned long long)no + 1, len, b->s.cfg.max_line_in);
        line_error(b, NULL, msg);
    } else if (!(in = rpc_json_parse(line, len, JSON_REJECT_DUPLICATES, &jerr, &big_at))) {
        snprintf(msg, sizeof msg, "line %llu: parse error: %s at byte %d", (unsigned long long)no + 1, jerr.text, jerr.position);
        line_error(b, NULL, msg);
    } else if (!json_is_object(in)) {
        snprintf(msg, sizeof msg, "line %llu: each line must be a JSON object with an 'id'", (unsigned long long)no + 1);
        line_error(b, NULL, msg);
    } else {
        batch_object(b, in, no, big_at);
    }
    json_decref(in);
    if (b->n_skipped > skipped0) return;
    if (b->s.n.errors > errors0) b->n_failed++;
    else b->n_ok++;
    report(b, false);
}

/* Collect the ids already in OUT and cut a torn last line. 0 (also when OUT does not exist
 * yet), ERR_NOMEM, or ERR_IO with errno set. */
static int load_resume(struct batch *b, const char *path)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return errno == ENOENT ? 0 : ERR_IO;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t good = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') break; /* torn: written when the last run died */
        good += n;
        json_t *j = json_loadb(line, (size_t)n, 0, NULL);
        json_t *id = j ? json_object_get(j, "id") : NULL;
        if (!j || json_object_get(j, "error")) b->n_failed_before++; /* the exit status covers them */
        if (id && !json_is_null(id)) {
            char *key = id_key(id);
            if (!key || idset_add(&b->done, key)) rc = ERR_NOMEM;
            free(key);
        }
        json_decref(j);
    }
    free(line);
    if (rc == 0 && ftruncate(fileno(f), good) != 0) rc = ERR_IO;
    fclose(f);
    return rc;
}

/* Open IN and OUT, reading OUT first with --resume. 0, or an error after saying why. */
static int batch_open(struct batch *b, const struct rpc_batch_opts *o, FILE **in)
{
    int rc = o->resume ? load_resume(b, o->out) : 0;
    if (rc) {
        fprintf(stderr, "lmpipe: batch: cannot read '%s' to resume: %s\n", o->out,
                rc == ERR_IO ? strerror(errno) : err_str(rc));
        return rc;
    }
    *in = strcmp(o->in, "-") ? fopen(o->in, "rb") : stdin;
    if (!*in) {
        fprintf(stderr, "lmpipe: batch: cannot open '%s': %s\n", o->in, strerror(errno));
        return ERR_IO;
    }
    b->out_fd = o->out ? open(o->out, O_WRONLY | O_CREAT | O_APPEND | (o->resume ? 0 : O_TRUNC), 0644) : 1;
    if (b->out_fd < 0) {
        fprintf(stderr, "lmpipe: batch: cannot open '%s': %s\n", o->out, strerror(errno));
        return ERR_IO;
    }
    return 0;
}

/* Every line of IN through the protocol, one answer each. */
static int batch_feed(struct batch *b, FILE *in, const char *in_path)
{
    const size_t chunk = 1 << 16;
    char *buf = malloc(chunk);
    if (!buf) return ERR_NOMEM;
    struct rpc_lines lines;
    rpc_lines_init(&lines, b->s.cfg.max_line_in);
    size_t n;
    while (!b->out_failed && (n = fread(buf, 1, chunk, in)) > 0) rpc_lines_feed(&lines, buf, n, batch_line, b);
    if (!b->out_failed) rpc_lines_finish(&lines, batch_line, b);
    rpc_lines_free(&lines);
    free(buf);
    if (ferror(in)) {
        fprintf(stderr, "lmpipe: batch: error reading '%s'\n", in_path);
        b->n_failed++;
    }
    return 0;
}

int rpc_batch(const struct rpc_batch_opts *o)
{
    struct rpc_config cfg = {0};
    cfg.inline_exec = cfg.batch = cfg.allow_files = true;
    cfg.max_line_out = SIZE_MAX;
    cfg.max_line_in = o->max_line;
    cfg.n_ctx = o->n_ctx;
    cfg.threads = o->threads;
    cfg.kv_type = o->kv_type;
    cfg.chat_template = o->chat_template;
    static struct batch b;
    memset(&b, 0, sizeof b);
    b.out_fd = -1;
    b.shard_i = o->shard_i;
    b.shard_n = o->shard_n ? o->shard_n : 1;
    if (rpc_server_init(&b.s, &cfg)) {
        fprintf(stderr, "lmpipe: batch: cannot initialise\n");
        return 1;
    }
    b.s.write_line = batch_write;
    b.s.sink_ud = &b;
    int ret = 1;
    FILE *in = NULL;
    struct err_info ei;
    err_clear(&ei);
    int rc = batch_open(&b, o, &in);
    if (rc == 0 && o->pcache_dir && (rc = rpc_exec_pcache(&b.s, o->pcache_dir, o->pcache_min, o->pcache_max, &ei))) {
        char m[512];
        fprintf(stderr, "lmpipe: batch: cannot open the prompt cache: %s\n", err_format(&ei, rc, m, sizeof m));
    }
    if (rc == 0 && (rc = rpc_exec_load(&b.s, o->model, cfg.n_ctx, cfg.threads, &ei))) {
        char m[512];
        fprintf(stderr, "lmpipe: batch: cannot load model: %s\n", err_format(&ei, rc, m, sizeof m));
    }
    if (rc == 0) {
        if (o->resume && b.done.n)
            fprintf(stderr, "lmpipe: batch: resuming, %zu ids already done (%llu of the lines already in '%s' are errors)\n",
                    b.done.n, (unsigned long long)b.n_failed_before, o->out);
        b.t0 = b.t_report = util_now();
        if (batch_feed(&b, in, o->in) == 0) {
            report(&b, true);
            ret = (b.n_failed || b.n_failed_before || b.out_failed) ? 1 : 0;
        }
    }
    if (in && in != stdin) fclose(in);
    if (b.out_fd > 1) close(b.out_fd);
    idset_free(&b.done);
    idset_free(&b.seen);
    rpc_server_free(&b.s);
    return ret;
}
