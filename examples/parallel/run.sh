#!/bin/sh
# Test of the GNU parallel recipe in README.md: shard a 24-line job 4 ways, kill nothing,
# merge, check every id is answered exactly once and matches an unsharded run.
# usage: examples/parallel/run.sh [LMPIPE_BIN] [MODEL]   (needs GNU parallel)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-${LMPIPE_BIN:-$root/lmpipe}}
model=${2:-${LMPIPE_SHARED:-$root/../shared}/models/stories260K-F32.gguf}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
case $model in /*) ;; *) model=$(pwd)/$model ;; esac
command -v parallel >/dev/null || { echo "GNU parallel is not installed (apt-get install parallel)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 0 23); do
    printf '{"id":%d,"prompt":"Once upon a time %d","max_tokens":12,"temperature":0}\n' "$i" "$i"
done >"$tmp/in.jsonl"

cd "$tmp"
parallel --will-cite --halt now,fail=1 -j4 \
    "$bin" batch -m "$model" -t 1 in.jsonl -o out.{}.jsonl --resume --shard {}/4 ::: 0 1 2 3 2>/dev/null
cat out.*.jsonl >merged.jsonl
"$bin" batch -m "$model" -t 1 in.jsonl -o single.jsonl 2>/dev/null

# every id once, and the same answers as one process (greedy): compare id + text
extract() { sed -n 's/^{"jsonrpc":"2.0","id":\([0-9]*\),"result":{"text":\("[^"]*"\).*/\1 \2/p' "$1" | sort -n; }
n=$(extract merged.jsonl | wc -l)
test "$n" -eq 24 || { echo "FAIL: $n of 24 ids answered"; exit 1; }
test "$(extract merged.jsonl | cut -d' ' -f1 | uniq -d | wc -l)" -eq 0 || { echo "FAIL: duplicate ids"; exit 1; }
extract merged.jsonl >a.txt
extract single.jsonl >b.txt
cmp -s a.txt b.txt || { echo "FAIL: sharded and single runs differ"; diff a.txt b.txt | head; exit 1; }
echo "ok: 24 ids over 4 shards, identical to one process"
