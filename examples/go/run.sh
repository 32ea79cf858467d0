#!/bin/sh
# Build and run the Go example end to end against a real model (CI: needs golang-go).
# usage: examples/go/run.sh [LMPIPE_BIN] [MODEL]   (run from anywhere)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-${LMPIPE_BIN:-$root/lmpipe}}
model=${2:-${LMPIPE_SHARED:-$root/../shared}/models/stories260K-F32.gguf}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
case $model in /*) ;; *) model=$(pwd)/$model ;; esac
cd "$here"
export GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-/tmp/lmpipe-go-cache}
go vet .
go build -o /tmp/lmpipe-go-example .
# the agent loop's prompt (tools described in the system message) needs more than stories260K's
# 128 positions: a copy that declares 2048 (the model runs past its training length)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" dev edit "$model" "$tmp/agent.gguf" --ctx 2048
/tmp/lmpipe-go-example -lmpipe "$bin" -model "$model" -agent-model "$tmp/agent.gguf"
