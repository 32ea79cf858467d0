/* rpc: the agent protocol front ends: `lmpipe serve` (line-delimited JSON-RPC 2.0 over stdio on a
 * libuv loop, spec in protocol/PROTOCOL.md) and `lmpipe batch` (one request per JSONL line, one
 * response per output line, resumable, shardable).
 *
 * This directory is the only place that includes <uv.h> and <jansson.h>; everything below it
 * (eng, tok, samp, ...) stays free of I/O and threads. main.c calls these two entry points with
 * the arguments after the subcommand name and returns what they return as the exit code
 * (0 success, 1 runtime failure, 2 usage error). */
#ifndef LMPIPE_RPC_RPC_H
#define LMPIPE_RPC_RPC_H

int rpc_cmd_serve(int argc, char **argv);
int rpc_cmd_batch(int argc, char **argv);

#endif
