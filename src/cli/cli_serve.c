/* cli_serve: the command lines of `lmpipe serve` and `lmpipe batch`: flags into rpc's option
 * structs (the protocol itself lives in src/rpc). */
#include "cli.h"

#include "../eng/eng.h"
#include "../rpc/rpc.h"

#include <stdlib.h>
#include <string.h>

static const char k_serve_usage[] =
    "usage: lmpipe serve [-m MODEL] [-c CTX] [-t THREADS] [--max-line BYTES] [--queue N]\n"
    "                    [--write-buffer BYTES] [--kv-type T] [--prompt-cache DIR]\n"
    "                    [--prompt-cache-min N] [--prompt-cache-max BYTES]\n"
    "                    [--chat-template-file FILE]\n"
    "JSON-RPC 2.0, one message per line on stdin/stdout (see protocol/PROTOCOL.md).\n"
    "  -m MODEL             load a GGUF model at start (else use model/load)\n"
    "  -c CTX               context of each session (default min(model, 4096))\n"
    "  -t THREADS           threads (default: online cores)\n"
    "  --max-line BYTES     longest accepted input line (default 8 MiB)\n"
    "  --queue N            queued requests before 'overloaded' (default 16)\n"
    "  --write-buffer BYTES output waiting to be read before generation pauses (default 256 KiB)\n"
    "  --kv-type T          KV cache of sessions that name none: f16 (default), f32, q8_0\n"
    "  --prompt-cache DIR   keep evaluated prompts of >= --prompt-cache-min N tokens (256) in DIR,\n"
    "                       at most --prompt-cache-max BYTES (default 1g; k/m/g suffixes)\n"
    "  --chat-template-file FILE   a Jinja chat template used instead of each model's own\n";

static const char k_batch_usage[] =
    "usage: lmpipe batch -m MODEL IN.jsonl [-o OUT.jsonl] [--resume] [--shard I/N]\n"
    "                    [-c CTX] [-t THREADS] [--max-line BYTES] [--kv-type T]\n"
    "                    [--prompt-cache DIR] [--prompt-cache-min N] [--prompt-cache-max BYTES]\n"
    "                    [--chat-template-file FILE]\n"
    "One request per input line (generate or chat params plus an 'id'); one JSON-RPC\n"
    "response per output line. IN may be '-' for stdin; OUT defaults to stdout.\n"
    "  --resume     skip ids already in OUT (needs -o)\n"
    "  --shard I/N  only lines whose 0-based number is I modulo N\n";

/* The options serve and batch share: model, context, threads, longest inbound line, the chat
 * template file, KV cache (SERVER_OPTS ends with CLI_KV_OPTS empty entries that kv_tail fills: it
 * must come last). */
struct server_flags {
    const char *model, *tmpl_file;
    int64_t n_ctx, threads, max_line;
    struct cli_kv kv;
};

#define SERVER_OPTS(f)                                                                          \
    {.name = "-m", .alt = "--model", .kind = CLI_STR, .dst = &(f).model},                       \
    {.name = "-c", .alt = "--ctx-size", .kind = CLI_INT, .dst = &(f).n_ctx, .lo = ENG_MIN_CTX, .hi = 1 << 24}, \
    {.name = "-t", .alt = "--threads", .kind = CLI_INT, .dst = &(f).threads, .lo = 1, .hi = 1024}, \
    {.name = "--max-line", .kind = CLI_INT, .dst = &(f).max_line, .lo = 1024, .hi = (int64_t)1 << 32}, \
    {.name = "--chat-template-file", .kind = CLI_STR, .dst = &(f).tmpl_file},                   \
    {0}, {0}, {0}, {0}

static void kv_tail(struct server_flags *f, struct cli_opt *opts, size_t n)
{
    _Static_assert(CLI_KV_OPTS == 4, "SERVER_OPTS leaves four entries for cli_kv_opts");
    cli_kv_defaults(&f->kv);
    cli_kv_opts(&f->kv, opts + n - CLI_KV_OPTS);
}

/* --chat-template-file: read and checked before anything starts (exit 2 when it does not
 * parse); src NULL without the flag. */
static struct rpc_chat_template server_template(const struct server_flags *f)
{
    struct rpc_chat_template t = {NULL, 0, f->tmpl_file};
    if (f->tmpl_file) t.src = cli_chat_template_file(f->tmpl_file, &t.len);
    return t;
}

int cli_serve_main(int argc, char **argv)
{
    struct server_flags f = {0};
    int64_t queue = 0, write_buffer = 0;
    struct cli_opt opts[] = {
        {.name = "--queue", .kind = CLI_INT, .dst = &queue, .lo = 1, .hi = 1 << 20},
        {.name = "--write-buffer", .kind = CLI_INT, .dst = &write_buffer, .lo = 1024, .hi = (int64_t)1 << 32},
        SERVER_OPTS(f),
    };
    kv_tail(&f, opts, sizeof opts / sizeof opts[0]);
    const struct cli_spec spec = {.cmd = "serve", .usage = k_serve_usage, .opts = opts,
                                  .n_opts = sizeof opts / sizeof opts[0]};
    cli_parse(&spec, argc, argv);
    struct rpc_serve_opts o = {.model = f.model, .n_ctx = (uint32_t)f.n_ctx, .threads = (int)f.threads,
                               .max_line = (size_t)f.max_line, .queue = (size_t)queue,
                               .write_buffer = (size_t)write_buffer, .kv_type = f.kv.kv_type,
                               .pcache_dir = f.kv.pcache_dir, .pcache_min = (uint32_t)f.kv.pcache_min,
                               .pcache_max = (uint64_t)f.kv.pcache_max, .chat_template = server_template(&f)};
    int rc = rpc_serve(&o);
    free((char *)o.chat_template.src);
    return rc;
}

/* --shard I/N */
static void shard_value(void *dst, const char *name, const char *v)
{
    (void)name;
    uint64_t *in = dst;
    const char *slash = strchr(v, '/');
    char a[32];
    if (!slash || (size_t)(slash - v) >= sizeof a)
        cli_usage_error("invalid value '%s' for --shard: expected I/N", v);
    memcpy(a, v, (size_t)(slash - v));
    a[slash - v] = 0;
    int64_t n = cli_flag_int("--shard N", slash + 1, 1, 1 << 20);
    in[0] = (uint64_t)cli_flag_int("--shard I", a, 0, n - 1);
    in[1] = (uint64_t)n;
}

int cli_batch_main(int argc, char **argv)
{
    struct server_flags f = {0};
    const char *in = NULL, *out = NULL;
    bool resume = false;
    uint64_t shard[2] = {0, 1};
    struct cli_opt opts[] = {
        {.name = "-o", .alt = "--output", .kind = CLI_STR, .dst = &out},
        {.name = "--resume", .kind = CLI_SET, .dst = &resume},
        {.name = "--shard", .kind = CLI_FN, .dst = shard, .fn = shard_value},
        SERVER_OPTS(f),
    };
    kv_tail(&f, opts, sizeof opts / sizeof opts[0]);
    const struct cli_spec spec = {"batch", k_batch_usage, opts, sizeof opts / sizeof opts[0], &in, 1,
                                  NULL, "one input file"};
    cli_parse(&spec, argc, argv);
    if (!f.model || !in) cli_usage_error("batch needs -m MODEL and an input file");
    if (resume && !out) cli_usage_error("--resume needs -o OUT.jsonl");
    struct rpc_batch_opts o = {f.model, in, out, resume, shard[0], shard[1], (uint32_t)f.n_ctx,
                               (int)f.threads, (size_t)f.max_line, f.kv.kv_type, f.kv.pcache_dir,
                               (uint32_t)f.kv.pcache_min, (uint64_t)f.kv.pcache_max, server_template(&f)};
    int rc = rpc_batch(&o);
    free((char *)o.chat_template.src);
    return rc;
}
