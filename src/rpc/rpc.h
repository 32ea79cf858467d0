/* rpc: the agent protocol front ends: `lmpipe serve` (line-delimited JSON-RPC 2.0 over stdio on a
 * libuv loop, spec in protocol/PROTOCOL.md) and `lmpipe batch` (one request per JSONL line, one
 * response per output line, resumable, shardable).
 *
 * This directory is the only place that includes <uv.h>; it reaches the engine through eng.h
 * alone. The command line (src/cli) parses the flags into these option structs; each entry point
 * returns the process exit code (0 success, 1 runtime failure). */
#ifndef LMPIPE_RPC_RPC_H
#define LMPIPE_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A Jinja chat template that replaces every loaded model's own (--chat-template-file): its
 * text (checked to parse by the caller) and its name (the path). src NULL: none. */
struct rpc_chat_template {
    const char *src;
    size_t len;
    const char *name;
};

struct rpc_serve_opts {
    const char *model;    /* load at start, or NULL (model/load later) */
    uint32_t n_ctx;       /* context of new sessions; 0: min(model's, 4096) */
    int threads;          /* 0: online cores */
    size_t max_line;      /* longest inbound line; 0: 8 MiB */
    size_t queue;         /* queued engine requests before "overloaded"; 0: 16 */
    size_t write_buffer;  /* output waiting before generation pauses; 0: 256 KiB */
    int kv_type;          /* KV cache type of new sessions (enum eng_kv_type; the CLI passes
                             ENG_KV_DEFAULT, a zeroed struct means F32) */
    const char *pcache_dir;   /* disk prompt cache directory, or NULL */
    uint32_t pcache_min;      /* its minimum prompt (tokens) */
    uint64_t pcache_max;      /* its size bound (bytes) */
    struct rpc_chat_template chat_template;
};
int rpc_serve(const struct rpc_serve_opts *o);

struct rpc_batch_opts {
    const char *model;    /* required */
    const char *in;       /* input JSONL, "-" for stdin */
    const char *out;      /* output JSONL, NULL for stdout */
    bool resume;          /* skip ids already in out (needs out) */
    uint64_t shard_i, shard_n; /* only input lines whose 0-based number is i modulo n (n >= 1) */
    uint32_t n_ctx;
    int threads;
    size_t max_line;
    int kv_type;              /* as in rpc_serve_opts */
    const char *pcache_dir;
    uint32_t pcache_min;
    uint64_t pcache_max;
    struct rpc_chat_template chat_template;
};
int rpc_batch(const struct rpc_batch_opts *o);

#endif
