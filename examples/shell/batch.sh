#!/bin/sh
# Batch with nothing but a shell: write one request per line, run `lmpipe batch`, read one
# JSON-RPC response per line. Kill it half-way and run the same command with --resume: only the
# missing ids are done.
# usage: examples/shell/batch.sh [LMPIPE_BIN] [MODEL]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-${LMPIPE_BIN:-$root/lmpipe}}
model=${2:-${LMPIPE_SHARED:-$root/../shared}/models/stories260K-F32.gguf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# flat lines: an id plus generate params ("messages" instead of "prompt" makes it a chat)
i=0
for p in "Once upon a time" "Tom had a" "The sun" "Lily and her mom"; do
    printf '{"id":"q%d","prompt":"%s","max_tokens":16,"temperature":0}\n' "$i" "$p"
    i=$((i + 1))
done >"$tmp/in.jsonl"
printf '%s\n' '{"id":"chat1","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0}' >>"$tmp/in.jsonl"

"$bin" batch -m "$model" "$tmp/in.jsonl" -o "$tmp/out.jsonl"
echo "exit $? (0: every line succeeded)"
cat "$tmp/out.jsonl" | cut -c1-160

# --resume skips what is done: nothing to do the second time
"$bin" batch -m "$model" "$tmp/in.jsonl" -o "$tmp/out.jsonl" --resume
test "$(wc -l <"$tmp/out.jsonl")" -eq 5
grep -q 'little girl named Lily' "$tmp/out.jsonl"
echo ok
