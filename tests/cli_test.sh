#!/bin/sh
# CLI tests: drive the real ./lmpipe binary with good and bad flags and inputs and check exit
# codes, stdout and stderr. Reads fixtures from $LMPIPE_SHARED (default ../shared).
# Ends with the plain "N passed, N failed" line.
set -u
BIN=${LMPIPE_BIN:-./lmpipe}
SHARED=${LMPIPE_SHARED:-../shared}
M="$SHARED/models/stories260K-F32.gguf"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $1" >&2; }

# expect CODE NAME -- command...: runs the command, keeps stdout/stderr in $TMP/out, $TMP/err
expect() {
    want=$1; name=$2; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    if [ "$got" = "$want" ]; then ok; else bad "$name: exit $got, expected $want; stderr: $(head -c 300 "$TMP/err")"; fi
}
# has FILE TEXT NAME: FILE contains TEXT
has() { if grep -qF -- "$2" "$TMP/$1"; then ok; else bad "$3: '$2' not in $1: $(head -c 300 "$TMP/$1")"; fi; }
empty() { if [ ! -s "$TMP/$1" ]; then ok; else bad "$2: $1 not empty: $(head -c 200 "$TMP/$1")"; fi; }

# --- usage and flag validation: exit 2 with a message naming the problem, never a silent 0
expect 0 help -- "$BIN" --help; has out "usage:" help
expect 2 no-args -- "$BIN"
expect 2 unknown-cmd -- "$BIN" frobnicate
expect 2 n-abc -- "$BIN" run -m "$M" -p hi -n abc; has err "invalid value 'abc' for -n" n-abc
expect 2 n-empty -- "$BIN" run -m "$M" -p hi -n ""
expect 2 n-trailing -- "$BIN" run -m "$M" -p hi -n 12x
expect 2 n-overflow -- "$BIN" run -m "$M" -p hi -n 99999999999999999999
expect 2 t-zero -- "$BIN" run -m "$M" -p hi -t 0
expect 2 c-neg -- "$BIN" run -m "$M" -p hi -c -5
# a context must hold one prompt token and one generated token (ENG_MIN_CTX): 1 never could
expect 2 c-one -- "$BIN" run -m "$M" -p hi -c 1; has err "expected an integer in [2," c-one
expect 2 c-one-serve -- "$BIN" serve -m "$M" -c 1
expect 2 c-one-batch -- "$BIN" batch -m "$M" -c 1 /dev/null
expect 2 c-one-eval -- "$BIN" eval -m "$M" -c 1 -p hi
expect 2 temp-neg -- "$BIN" run -m "$M" -p hi --temp -1
expect 2 temp-nan -- "$BIN" run -m "$M" -p hi --temp nan
expect 2 top-p-big -- "$BIN" run -m "$M" -p hi --top-p 1.5
expect 2 seed-abc -- "$BIN" run -m "$M" -p hi --seed x
expect 2 missing-value -- "$BIN" run -m "$M" -p
expect 2 unknown-flag -- "$BIN" run -m "$M" -p hi --bogus; has err "unknown option '--bogus'" unknown-flag
expect 2 no-model -- "$BIN" run -p hi; has err "needs -m MODEL" no-model
expect 2 p-and-f -- "$BIN" run -m "$M" -p hi -f /dev/null

# --- bad models: exit 1 with what/where/why
expect 1 missing-model -- "$BIN" run -m "$TMP/nope.gguf" -p hi; has err "cannot open" missing-model
printf 'hello, I am a text file\n' >"$TMP/text.gguf"
expect 1 text-model -- "$BIN" run -m "$TMP/text.gguf" -p hi; has err "not a GGUF file" text-model
expect 1 info-text -- "$BIN" info "$TMP/text.gguf"; has err "not a GGUF file" info-text
head -c 100000 "$M" >"$TMP/trunc.gguf"
expect 1 truncated-model -- "$BIN" run -m "$TMP/trunc.gguf" -p hi; has err "past the end" truncated-model
expect 1 dir-model -- "$BIN" info "$TMP"

# --- run: the real model, greedy, is llama.cpp's continuation (shared/expected greedy.text); the
# references were made with F32 caches, so these comparisons ask for one (the default is F16)
expect 0 run-greedy -- "$BIN" run -m "$M" -p "Once upon a time" -n 32 --temp 0 --kv-type f32
has out ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw" run-greedy
has err "tok/s" run-stats
has err "peak RSS" run-stats-rss
# every stories260K type, free-running greedy, prints llama.cpp's 32-token continuation of p0
for ty in F32 F16 Q8_0 Q4_0; do
    want=$(sed -n 's/^ *"text": "\(.*\)",\{0,1\}$/\1/p' "$SHARED/expected/stories260K-$ty.p0.json" | tail -n 1)
    "$BIN" run -m "$SHARED/models/stories260K-$ty.gguf" -f "$SHARED/prompts/p0.txt" -n 32 --temp 0 --kv-type f32 >"$TMP/g.out" 2>/dev/null
    if [ -n "$want" ] && [ "$(cat "$TMP/g.out")" = "$want" ]; then ok; else bad "greedy $ty: '$(cat "$TMP/g.out")' != '$want'"; fi
done
# prompt from stdin and from a file give the same text
printf 'Once upon a time' | "$BIN" run -m "$M" -n 16 --temp 0 >"$TMP/stdin.out" 2>/dev/null || bad stdin-run
printf 'Once upon a time' >"$TMP/p.txt"
"$BIN" run -m "$M" -f "$TMP/p.txt" -n 16 --temp 0 >"$TMP/file.out" 2>/dev/null || bad file-run
if cmp -s "$TMP/stdin.out" "$TMP/file.out" && [ -s "$TMP/file.out" ]; then ok; else bad "stdin vs -f differ"; fi
# same seed, same text; sampling with temperature actually samples
"$BIN" run -m "$M" -p "Once upon a time" -n 40 --temp 1 --seed 7 >"$TMP/s1" 2>/dev/null
"$BIN" run -m "$M" -p "Once upon a time" -n 40 --temp 1 --seed 7 >"$TMP/s2" 2>/dev/null
"$BIN" run -m "$M" -p "Once upon a time" -n 40 --temp 1 --seed 8 >"$TMP/s3" 2>/dev/null
if cmp -s "$TMP/s1" "$TMP/s2"; then ok; else bad "same seed gave different text"; fi
if cmp -s "$TMP/s1" "$TMP/s3"; then bad "seeds 7 and 8 gave the same text"; else ok; fi
# threads do not change greedy output
"$BIN" run -m "$M" -p "Once upon a time" -n 32 --temp 0 -t 2 >"$TMP/t2" 2>/dev/null
"$BIN" run -m "$M" -p "Once upon a time" -n 32 --temp 0 -t 1 >"$TMP/t1" 2>/dev/null
if cmp -s "$TMP/t1" "$TMP/t2"; then ok; else bad "-t 1 and -t 2 differ"; fi
# stop string: output ends before it
expect 0 stop -- "$BIN" run -m "$M" -p "Once upon a time" -n 32 --temp 0 --stop "Lily"
has out "a little girl named " stop
if grep -q "Lily" "$TMP/out"; then bad "stop string was printed"; else ok; fi
has err "finish stop" stop-finish
# -n 0 generates nothing, exits 0
expect 0 n-zero -- "$BIN" run -m "$M" -p "Once upon a time" -n 0 --temp 0
# a prompt longer than the context: a clear error, never empty output with exit 0
expect 1 too-long -- "$BIN" run -m "$M" -c 8 -p "Once upon a time there was a little girl named Lily who loved"
has err "context_length_exceeded" too-long
expect 1 empty-prompt -- "$BIN" run -m "$M" -p "" --no-bos

# --- chat: multi-turn over stdin, the KV cache kept between turns, /reset, /exit
printf 'Hello\nHow are you\n/reset\nHi\n/bogus\n/exit\nnot read\n' >"$TMP/chat.in"
expect 0 chat -- sh -c "'$BIN' chat -m '$M' -n 8 --temp 0 <'$TMP/chat.in'"
has err "(0 cached)" chat-first-turn
if grep -Eq "\(([1-9][0-9]*) cached\)" "$TMP/err"; then ok; else bad "chat: the second turn reused no cached tokens"; fi
has err "conversation reset" chat-reset
has err "unknown command '/bogus'" chat-unknown
if [ "$(grep -c "tok/s" "$TMP/err")" = 3 ]; then ok; else bad "chat: expected 3 turns (nothing after /exit)"; fi
expect 2 chat-bad-template -- "$BIN" chat -m "$M" --chat-template nosuch; has err "unknown chat template" chat-bad-template
printf 'Hi\n' >"$TMP/chat1.in"
expect 0 chat-named-template -- sh -c "'$BIN' chat -m '$M' -n 4 --temp 0 --chat-template llama2 <'$TMP/chat1.in'"
# a turn that overflows the context is an error for that turn; the chat goes on
expect 1 chat-overflow -- sh -c "'$BIN' chat -m '$M' -c 16 -n 4 --temp 0 <'$TMP/chat1.in'"
has err "context_length_exceeded" chat-overflow

# --- KV cache: types, snapshots, the prompt cache, the context
expect 2 kv-type-bad -- "$BIN" run -m "$M" -p hi --kv-type f8; has err "invalid value 'f8' for --kv-type" kv-type-bad
expect 1 kv-q8-refused -- "$BIN" run -m "$M" -p hi --kv-type q8_0; has err "multiple of 32" kv-q8-refused
expect 0 kv-f16-default -- "$BIN" run -m "$M" -p "Once upon a time" -n 4 --temp 0; has err "KV f16" kv-f16-default
has err "RssAnon" run-stats-rssanon
expect 0 info-kv-types -- "$BIN" info "$M" -c 64
has out "kv_cache f16 (default) 0.10 MiB at context 64" info-kv-f16; has out "kv_cache f32" info-kv-f32
has out "kv_cache q8_0          not available" info-kv-q8
expect 2 pc-max-bad -- "$BIN" run -m "$M" -p hi --prompt-cache "$TMP/x" --prompt-cache-max 12q
# run --snapshot: the first run saves, the next restores the prompt's prefix; the text is the same
"$BIN" run -m "$M" -p "Once upon a time" -n 24 --temp 0 >"$TMP/nosnap.out" 2>/dev/null
expect 0 snap-cold -- "$BIN" run -m "$M" -p "Once upon a time" -n 24 --temp 0 --snapshot "$TMP/s.snap"
has err "none yet" snap-cold; has err "saved 28 tokens" snap-cold-saved
if cmp -s "$TMP/out" "$TMP/nosnap.out"; then ok; else bad "snap-cold: text differs from a run without a snapshot"; fi
expect 0 snap-warm -- "$BIN" run -m "$M" -p "Once upon a time" -n 24 --temp 0 --snapshot "$TMP/s.snap"
has err "restored 4 of 5 prompt tokens" snap-warm; has err "(3 cached)" snap-warm-cached
if cmp -s "$TMP/out" "$TMP/nosnap.out"; then ok; else bad "snap-warm: text differs from a run without a snapshot"; fi
# a snapshot of another model, or a damaged one: refused, and left as it was
cp "$TMP/s.snap" "$TMP/keep.snap"
expect 1 snap-model -- "$BIN" run -m "$SHARED/models/stories260K-F16.gguf" -p "Once upon a time" -n 4 --snapshot "$TMP/s.snap"
has err "another model" snap-model
if cmp -s "$TMP/s.snap" "$TMP/keep.snap"; then ok; else bad "snap-model: the snapshot was overwritten"; fi
expect 1 snap-kv -- "$BIN" run -m "$M" -p "Once upon a time" -n 4 --kv-type f32 --snapshot "$TMP/s.snap"; has err "KV type" snap-kv
printf 'X' | dd of="$TMP/s.snap" bs=1 seek=300 conv=notrunc 2>/dev/null
expect 1 snap-damaged -- "$BIN" run -m "$M" -p "Once upon a time" -n 4 --snapshot "$TMP/s.snap"; has err "checksum" snap-damaged
expect 1 snap-dir -- "$BIN" run -m "$M" -p "Once upon a time" -n 4 --snapshot "$TMP"; has err "a directory" snap-dir
# a snapshot that shares nothing with the prompt is not used (and is replaced after the run)
expect 0 snap-unrelated -- "$BIN" run -m "$M" -p "Lily" -n 4 --temp 0 --snapshot "$TMP/keep.snap" --no-bos
has err "restored 0 of" snap-unrelated
# the prompt cache: the second process restores what the first one evaluated
printf 'Once upon a time there was a little girl named Lily. She loved to play outside in the park.' >"$TMP/pc.txt"
"$BIN" run -m "$M" -f "$TMP/pc.txt" -n 12 --temp 0 >"$TMP/nopc.out" 2>/dev/null
expect 0 pc-cold -- "$BIN" run -m "$M" -f "$TMP/pc.txt" -n 12 --temp 0 --prompt-cache "$TMP/pc" --prompt-cache-min 16
has err "0 hits, 1 misses, 1 stored; 1 entries" pc-cold
expect 0 pc-warm -- "$BIN" run -m "$M" -f "$TMP/pc.txt" -n 12 --temp 0 --prompt-cache "$TMP/pc" --prompt-cache-min 16
has err "1 hits, 0 misses, 0 stored" pc-warm
if cmp -s "$TMP/out" "$TMP/nopc.out"; then ok; else bad "pc-warm: text differs from a run without the cache"; fi
# two processes at once on one directory
( "$BIN" run -m "$M" -f "$TMP/pc.txt" -n 12 --temp 0 --prompt-cache "$TMP/pc2" --prompt-cache-min 16 >"$TMP/pa.out" 2>/dev/null &
  "$BIN" run -m "$M" -f "$TMP/pc.txt" -n 12 --temp 0 --prompt-cache "$TMP/pc2" --prompt-cache-min 16 >"$TMP/pb.out" 2>/dev/null &
  wait ) || bad "pc-concurrent: a run failed"
if cmp -s "$TMP/pa.out" "$TMP/nopc.out" && cmp -s "$TMP/pb.out" "$TMP/nopc.out"; then ok; else bad "pc-concurrent: texts differ"; fi
# a full context: context_length_exceeded, unless --context-shift
expect 1 ctx-full -- "$BIN" run -m "$M" -c 32 -p "Once upon a time" -n 60 --temp 0 --ignore-eos
has err "context_length_exceeded" ctx-full; has out ", there was a little girl" ctx-full-text
expect 0 ctx-shift -- "$BIN" run -m "$M" -c 32 -p "Once upon a time" -n 60 --temp 0 --ignore-eos --context-shift 4
has err "generated 60 tokens" ctx-shift; has err "context shifts" ctx-shift-count
# chat: /save keeps the cache and the conversation, /load brings both back for the next turn
printf 'Hello\n/save %s/c.snap\n' "$TMP" >"$TMP/chat-save.in"
expect 0 chat-save -- sh -c "'$BIN' chat -m '$M' -n 8 --temp 0 <'$TMP/chat-save.in'"
has err "conversation (2 messages) saved" chat-save
[ -s "$TMP/c.snap" ] && [ -s "$TMP/c.snap.chat.json" ] && ok || bad "chat-save: files missing"
printf '/load %s/c.snap\nHow are you\n/load %s/nope.snap\n/save\n' "$TMP" "$TMP" >"$TMP/chat-load.in"
expect 0 chat-load -- sh -c "'$BIN' chat -m '$M' -n 8 --temp 0 <'$TMP/chat-load.in'"
has err "and 2 messages from" chat-load
if grep -Eq "\(([1-9][0-9]*) cached\)" "$TMP/err"; then ok; else bad "chat-load: the turn after /load reused nothing"; fi
has err "nope.snap.chat.json" chat-load-missing; has err "unknown command '/save'" chat-save-noarg

# --- tokenize
expect 0 tok-ids -- "$BIN" tokenize -m "$M" --ids "Once upon a time"; has out "[1, 403, 407, 261, 378]" tok-ids
expect 0 tok-nobos -- "$BIN" tokenize -m "$M" --ids --no-bos "Once upon a time"; has out "[403, 407, 261, 378]" tok-nobos
expect 0 tok-pieces -- "$BIN" tokenize -m "$M" "Once"; has out "Once" tok-pieces
expect 0 tok-special -- "$BIN" tokenize -m "$M" --ids --no-bos --special "<s>"; has out "[1]" tok-special
expect 0 tok-nospecial -- "$BIN" tokenize -m "$M" --ids --no-bos "<s>"
if grep -qx "\[1\]" "$TMP/out"; then bad "<s> parsed as special without --special"; else ok; fi
printf 'Once upon a time' | "$BIN" tokenize -m "$M" --ids >"$TMP/out" 2>&1; has out "[1, 403, 407, 261, 378]" tok-stdin
expect 0 tok-vocab-only -- "$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-llama-spm.gguf" --ids --no-bos "Hello world"; has out "[15043, 3186]" tok-vocab-only

printf 'Hello world' | "$BIN" tokenize -m "$SHARED/vocab/ggml-vocab-qwen2.gguf" --ids --no-bos --time >"$TMP/out" 2>"$TMP/err"
has out "[9707, 1879]" tok-bpe; has err "tokenized 11 bytes into 2 tokens" tok-time

# --- eval: the reference JSON field names
expect 0 eval -- "$BIN" eval -m "$M" -p "Once upon a time" --top 3 --kv-type f32
has out '"prompt_tokens": [1, 403, 407, 261, 378]' eval
has out '"positions"' eval-pos
has out '"top": [[403, 17.02' eval-top
expect 0 eval-all -- "$BIN" eval -m "$M" -p "Once upon a time" --all-logits; has out '"logits_all"' eval-all
expect 2 eval-noprompt -- "$BIN" eval -m "$M"

# --- info
expect 0 info -- "$BIN" info "$M"
has out "architecture" info; has out "llama" info-arch; has out "block_count" info-hp
has out "F32" info-types; has out "bos_token_id" info-special; has out "chat_template" info-tmpl
has out "kv_cache" info-kv
expect 0 info-q4 -- "$BIN" info "$SHARED/models/stories260K-Q4_0.gguf"; has out "Q4_0" info-q4

# --- kernels: info --cpu names the choice; LMPIPE_ISA=scalar forces the reference, same text
expect 0 info-cpu -- "$BIN" info --cpu; has out "isa" info-cpu; has out "scalar" info-cpu-built
LMPIPE_ISA=scalar "$BIN" run -m "$M" -p "Once upon a time" -n 24 --temp 0 >"$TMP/isa1" 2>"$TMP/isa1.err"
"$BIN" run -m "$M" -p "Once upon a time" -n 24 --temp 0 >"$TMP/isa2" 2>/dev/null
if cmp -s "$TMP/isa1" "$TMP/isa2"; then ok; else bad "LMPIPE_ISA=scalar changed the greedy text"; fi
if grep -q "kernels scalar" "$TMP/isa1.err"; then ok; else bad "LMPIPE_ISA=scalar not honoured"; fi
LMPIPE_ISA=bogus "$BIN" run -m "$M" -p "Once" -n 2 --temp 0 >/dev/null 2>"$TMP/err" && ok || bad "LMPIPE_ISA=bogus failed the run"
has err "bogus" isa-bogus-warning

# --- quantize: F32 -> Q8_0 round trip runs and keeps the story; bad input is a clear error
expect 0 quantize -- "$BIN" quantize "$M" "$TMP/q8.gguf" Q8_0
expect 0 quantized-run -- "$BIN" run -m "$TMP/q8.gguf" -p "Once upon a time" -n 12 --temp 0
has out "there was a little girl" quantized-run
expect 2 quantize-badtype -- "$BIN" quantize "$M" "$TMP/x.gguf" Q9_9
expect 1 quantize-missing -- "$BIN" quantize "$TMP/nope.gguf" "$TMP/x.gguf" Q8_0
expect 1 quantize-quantized -- "$BIN" quantize "$SHARED/models/stories260K-Q4_0.gguf" "$TMP/x.gguf" Q8_0
# --- bench prints prefill and decode rates
expect 0 bench -- "$BIN" bench -m "$M" -p 8 -n 4 -r 1 -t 1
has out "| pp8 " bench; has out "| tg4 " bench-tg; has out "peak RSS" bench-rss; has out "RssAnon " bench-anon
# -d: the tests after N cached tokens, named as llama-bench names them; JSON has median and best
expect 0 bench-depth -- "$BIN" bench -m "$M" -p 8 -n 4 -d 20 -r 3 -t 1 --json
has out '"n_depth": 20' bench-depth-json; has out '"pp_median": ' bench-median; has out '"tg_best": ' bench-best
has out '"peak_rss_anon": ' bench-anon-json
expect 0 bench-depth-table -- "$BIN" bench -m "$M" -p 8 -n 0 -d 20 -r 1 -t 1
has out "| pp8 @ d20 " bench-depth-name
expect 1 bench-depth-ctx -- "$BIN" bench -m "$M" -p 8 -n 4 -d 1000000 -r 1 -t 1
has err "more than the model's context" bench-depth-ctx-msg
# --- dev peak-rss (bench.sh measures the peer with it): the child's output and exit status pass
# through, and the file gets its peak RSS in bytes (an lmpipe run maps at least the 1 MB model)
# and its largest sampled RssAnon (its heap: more than 0, less than the peak RSS)
expect 0 peak-rss -- "$BIN" dev peak-rss "$TMP/rss" "$BIN" run -m "$M" -p "Once upon a time" -n 4 --temp 0
has out "there was" peak-rss-out
read -r RSS ANON <"$TMP/rss" || RSS=0
if [ "${RSS:-0}" -gt 1000000 ]; then ok; else bad "peak-rss: '$(cat "$TMP/rss" 2>/dev/null)' is not > 1 MB"; fi
if [ "${ANON:-0}" -gt 0 ] && [ "${ANON:-0}" -lt "${RSS:-0}" ]; then ok; else bad "peak-rss: RssAnon '${ANON:-}' not in (0, RSS)"; fi
expect 1 peak-rss-status -- "$BIN" dev peak-rss "$TMP/rss2" "$BIN" run -m "$TMP/nope.gguf" -p hi
expect 127 peak-rss-nocmd -- "$BIN" dev peak-rss "$TMP/rss3" "$TMP/no-such-command"
expect 2 peak-rss-usage -- "$BIN" dev peak-rss "$TMP/rss4"

# --- grammar: convert a schema, check texts (0 accepted, 1 rejected, 2 invalid), constrained run
printf '%s\n' '{"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},' \
    ' "age": {"type": "integer", "minimum": 0, "maximum": 20}}, "required": ["name"]}' >"$TMP/pet.json"
expect 0 grammar-convert -- "$BIN" grammar convert --json-schema "$TMP/pet.json"; has out "root ::=" grammar-convert
cp "$TMP/out" "$TMP/pet.gbnf"
expect 0 grammar-check-arg -- "$BIN" grammar check --json-schema "$TMP/pet.json" '{"name":"Rex","age":3}'; empty out grammar-check-quiet
expect 0 grammar-check-gbnf -- "$BIN" grammar check -g "$TMP/pet.gbnf" '{"age":3,"name":"Rex"}'
expect 1 grammar-check-reject -- "$BIN" grammar check --json-schema "$TMP/pet.json" '{"name":"Rex","age":30}'
has err "rejected at byte 21" grammar-check-where; has err "line 1:" grammar-check-linecol
printf '{"name":"Rex"}' | "$BIN" grammar check --json-schema "$TMP/pet.json" >/dev/null 2>&1 && ok || bad "grammar check from stdin: not accepted"
printf '{"name":"Rex"}\n' | "$BIN" grammar check --json-schema "$TMP/pet.json" >/dev/null 2>&1
[ $? = 1 ] && ok || bad "grammar check: a trailing newline is part of the text"
printf '{"a": [1, 2.5, null]}\n' | "$BIN" grammar check --json >/dev/null 2>&1 && ok || bad "grammar check --json from stdin"
expect 1 grammar-check-short -- "$BIN" grammar check --json '{"a":'; has err "rejected at byte 5" grammar-check-short-where
printf 'root ::= "a"\nx ::= [z-a]\n' >"$TMP/bad.gbnf"
expect 2 grammar-check-badgbnf -- "$BIN" grammar check -g "$TMP/bad.gbnf" a; has err "line 2:" grammar-badgbnf-linecol
printf 'root ::= "a" b\n' >"$TMP/undef.gbnf"
expect 2 grammar-check-undef -- "$BIN" grammar check -g "$TMP/undef.gbnf" a; has err "line 1:14: undefined rule 'b'" grammar-undef
printf '{"type": "object", "patternProperties": {"^x": {}}}' >"$TMP/unsup.json"
expect 2 grammar-convert-unsup -- "$BIN" grammar convert --json-schema "$TMP/unsup.json"; has err "patternProperties" grammar-unsup
printf '{"type": ' >"$TMP/notjson.json"
expect 2 grammar-convert-notjson -- "$BIN" grammar convert --json-schema "$TMP/notjson.json"; has err "line 1" grammar-notjson
expect 2 grammar-convert-missing -- "$BIN" grammar convert --json-schema "$TMP/nope.json"; has err "cannot read" grammar-missing
expect 2 grammar-no-cmd -- "$BIN" grammar
expect 2 grammar-bad-cmd -- "$BIN" grammar frob
expect 2 grammar-check-none -- "$BIN" grammar check '{}'
expect 2 grammar-check-two -- "$BIN" grammar check --json -g "$TMP/pet.gbnf" '{}'
expect 2 grammar-convert-noschema -- "$BIN" grammar convert
expect 0 grammar-help -- "$BIN" grammar --help; has out "grammar check" grammar-help
# run under a grammar: the output is in the language (grammar check says so; check_gramgen also
# parses and validates run's outputs with jansson)
expect 0 run-json-schema -- "$BIN" run -m "$M" -p "Once upon a time" -n 100 --temp 0 --json-schema "$TMP/pet.json" --strict
head -c -1 "$TMP/out" >"$TMP/pet.out"
"$BIN" grammar check --json-schema "$TMP/pet.json" <"$TMP/pet.out" && ok || bad "run --json-schema: output rejected: $(cat "$TMP/pet.out")"
has err "finish stop" run-json-schema-finish; has err "grammar" run-json-schema-stats
printf 'root ::= " " ("yes" | "no") "."\n' >"$TMP/yn.gbnf"
expect 0 run-grammar -- "$BIN" run -m "$M" -p "Once upon a time" -n 50 --temp 1.5 --seed 3 --ignore-eos --grammar "$TMP/yn.gbnf"
if grep -Eqx ' (yes|no)\.' "$TMP/out"; then ok; else bad "run --grammar: '$(cat "$TMP/out")'"; fi
has err "finish stop" run-grammar-finish
expect 0 run-json -- "$BIN" run -m "$M" -p "Once upon a time" -n 20 --temp 0 --json; has out "{" run-json
expect 2 run-grammar-two -- "$BIN" run -m "$M" -p hi --json --grammar "$TMP/yn.gbnf"
expect 2 run-grammar-bad -- "$BIN" run -m "$M" -p hi --grammar "$TMP/bad.gbnf"; has err "line 2:" run-grammar-bad-linecol
expect 2 run-grammar-missing -- "$BIN" run -m "$M" -p hi --grammar "$TMP/nope.gbnf"
printf 'root ::= <|nosuchtoken|>\n' >"$TMP/tok.gbnf"
expect 1 run-grammar-token -- "$BIN" run -m "$M" -p hi --grammar "$TMP/tok.gbnf"; has err "nosuchtoken" run-grammar-token-msg
printf 'root ::= <[0]>\n' >"$TMP/dead.gbnf"
expect 1 run-dead-end -- "$BIN" run -m "$M" -p hi --grammar "$TMP/dead.gbnf"; has err "dead end" run-dead-end-msg
# dev synth with a real tokenizer (a tiny shape): the vocabulary size is the file's
expect 0 synth-vocab-from -- "$BIN" dev synth "$TMP/sc.gguf" --arch llama --dim 64 --layers 1 --heads 4 --ffn 128 \
    --vocab-from "$SHARED/vocab/ggml-vocab-starcoder.gguf" --tied
expect 0 synth-vocab-info -- "$BIN" info "$TMP/sc.gguf"; has out "49152" synth-vocab-size; has out "starcoder" synth-vocab-pre
expect 2 synth-vocab-mismatch -- "$BIN" dev synth "$TMP/x.gguf" --preset smollm2-135m --vocab 1000 \
    --vocab-from "$SHARED/vocab/ggml-vocab-starcoder.gguf"
# --- chat templates: lmpipe template render (the raw Jinja renderer), --chat-template-file
J="$SHARED/chat/jinja"
QWEN="$J/Qwen-Qwen2.5-7B-Instruct.jinja"
printf '{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}' >"$TMP/req.json"
expect 0 tmpl-render -- "$BIN" template render "$QWEN" "$TMP/req.json"
printf '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n' >"$TMP/want"
if cmp -s "$TMP/out" "$TMP/want"; then ok; else bad "template render: bytes differ (no newline may be added): $(od -c "$TMP/out" | tail -3)"; fi
empty err tmpl-render-quiet
"$BIN" template render "$QWEN" <"$TMP/req.json" >"$TMP/stdin.out" 2>/dev/null || bad "template render from stdin failed"
if cmp -s "$TMP/stdin.out" "$TMP/want"; then ok; else bad "template render from stdin differs"; fi
# any other top-level key is a variable; add_generation_prompt defaults to false
printf '{{ bos_token }}{{ flavour }}|{{ add_generation_prompt }}' >"$TMP/vars.jinja"
printf '{"messages": [], "bos_token": "<s>", "flavour": "mint"}' | "$BIN" template render "$TMP/vars.jinja" >"$TMP/out" 2>&1
if [ "$(cat "$TMP/out")" = "<s>mint|False" ]; then ok; else bad "template render variables: '$(cat "$TMP/out")'"; fi
# refusals (the template's own message) are 1; no fixes here: gemma-2 refuses a system message
printf '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}' >"$TMP/sys.json"
expect 1 tmpl-refuses -- "$BIN" template render "$J/google-gemma-2-2b-it.jinja" "$TMP/sys.json"
has err "TemplateError: System role not supported (line 1, column" tmpl-refuses; empty out tmpl-refuses-out
printf '{%% for i in range(100000) %%}{%% for j in range(100000) %%}{{ j }}{%% endfor %%}{%% endfor %%}' >"$TMP/loop.jinja"
expect 1 tmpl-steps -- "$BIN" template render "$TMP/loop.jinja" "$TMP/req.json"; has err "StepLimit" tmpl-steps
# a template that does not parse, a bad request, usage: 2
printf 'ok\n{%% if x %%}' >"$TMP/bad.jinja"
expect 2 tmpl-syntax -- "$BIN" template render "$TMP/bad.jinja" "$TMP/req.json"; has err "bad.jinja: line 2, column" tmpl-syntax
printf '{"messages": [' >"$TMP/badreq.json"
expect 2 tmpl-badjson -- "$BIN" template render "$QWEN" "$TMP/badreq.json"; has err "not JSON: line 1" tmpl-badjson
printf '{"tools": []}' >"$TMP/nomsg.json"
expect 2 tmpl-nomsgs -- "$BIN" template render "$QWEN" "$TMP/nomsg.json"; has err "messages" tmpl-nomsgs
expect 2 tmpl-nosub -- "$BIN" template
expect 2 tmpl-badsub -- "$BIN" template draw "$QWEN"
expect 2 tmpl-nofile -- "$BIN" template render
expect 1 tmpl-missing -- "$BIN" template render "$TMP/nope.jinja" "$TMP/req.json"
# run: raw completion unless a chat option is given; with --chat-template-file the prompt is
# one user turn rendered by that template: as many tokens as `template render` + tokenize say
"$BIN" tokenize -m "$M" --ids --special <"$TMP/want" >"$TMP/ids" 2>/dev/null
want_n=$(tr -cd ',' <"$TMP/ids" | wc -c); want_n=$((want_n + 1))
expect 0 run-tmpl-file -- "$BIN" run -m "$M" --chat-template-file "$QWEN" -p hi -n 4 --temp 0
has err "prompt $want_n tokens" run-tmpl-file
expect 0 run-raw -- "$BIN" run -m "$M" -p hi -n 4 --temp 0; has err "prompt 3 tokens" run-raw
expect 0 run-system -- "$BIN" run -m "$M" --system "Be brief." -p hi -n 2 --temp 0
has err "no chat template: using chatml" run-system-warns
expect 2 run-tmpl-bad -- "$BIN" run -m "$M" --chat-template-file "$TMP/bad.jinja" -p hi; has err "line 2, column" run-tmpl-bad
expect 2 run-tmpl-both -- "$BIN" run -m "$M" --chat-template-file "$QWEN" --chat-template chatml -p hi
expect 1 run-tmpl-missing -- "$BIN" run -m "$M" --chat-template-file "$TMP/nope.jinja" -p hi
printf "{{ raise_exception('no chat here') }}" >"$TMP/refuse.jinja"
expect 1 run-tmpl-refuses -- "$BIN" run -m "$M" --chat-template-file "$TMP/refuse.jinja" -p u -n 2
has err "TemplateError: no chat here" run-tmpl-refuses
# gemma-2 has no system role: --system is folded into the user turn (llama.cpp's fix)
expect 0 run-gemma-fold -- "$BIN" run -m "$M" --chat-template-file "$J/google-gemma-2-2b-it.jinja" --system s -p u -n 2
# chat renders the same single turn the same way
printf 'hi\n' | "$BIN" chat -m "$M" --chat-template-file "$QWEN" -n 4 --temp 0 >/dev/null 2>"$TMP/err" || bad "chat --chat-template-file failed"
has err "prompt $want_n tokens" chat-tmpl-file
if grep -q "no chat template" "$TMP/err"; then bad "chat --chat-template-file still warned"; else ok; fi
expect 2 chat-tmpl-bad -- "$BIN" chat -m "$M" --chat-template-file "$TMP/bad.jinja"; has err "line 2, column" chat-tmpl-bad
# serve and batch
printf '{"jsonrpc":"2.0","id":1,"method":"initialize"}\n{"jsonrpc":"2.0","id":2,"method":"chat/render","params":{"messages":[{"role":"user","content":"hi"}]}}\n' >"$TMP/serve.in"
expect 0 serve-tmpl-file -- sh -c "'$BIN' serve -m '$M' --chat-template-file '$QWEN' <'$TMP/serve.in'"
has out '"source":"file"' serve-tmpl-info; has out '"prompt":"<|im_start|>system\nYou are Qwen' serve-tmpl-render
expect 2 serve-tmpl-bad -- "$BIN" serve --chat-template-file "$TMP/bad.jinja"; has err "line 2, column" serve-tmpl-bad
printf '{"id":"a","method":"chat/render","params":{"messages":[{"role":"user","content":"hi"}]}}\n{"id":"b","messages":[{"role":"user","content":"hi"}],"max_tokens":2}\n' >"$TMP/batch.in"
expect 0 batch-tmpl-file -- "$BIN" batch -m "$M" --chat-template-file "$QWEN" "$TMP/batch.in"
has out '"prompt":"<|im_start|>system\nYou are Qwen' batch-tmpl-render
has out "\"prompt_tokens\":$want_n" batch-tmpl-chat
expect 2 batch-tmpl-bad -- "$BIN" batch -m "$M" --chat-template-file "$TMP/bad.jinja" "$TMP/batch.in"
# info says which template chat uses
expect 0 info-chat -- "$BIN" info "$M"; has out "chat renders with      none: the file has no chat template" info-chat

# --- tool calling: dev edit gives stories260K room for the tools' descriptions; run/chat --tools
expect 0 dev-edit -- "$BIN" dev edit "$M" "$TMP/s2k.gguf" --ctx 2048
expect 0 dev-edit-info -- "$BIN" info "$TMP/s2k.gguf"; has out "context_length         2048" dev-edit-info
expect 2 dev-edit-nothing -- "$BIN" dev edit "$M" "$TMP/x.gguf"; has err "nothing to change" dev-edit-nothing
expect 1 dev-edit-missing -- "$BIN" dev edit "$TMP/nope.gguf" "$TMP/x.gguf" --ctx 64
cat >"$TMP/tools.json" <<'EOF2'
[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string","maxLength":20},"unit":{"enum":["c","f"]}},"required":["location","unit"]}}},
 {"type":"function","function":{"name":"exec","parameters":{"type":"object","properties":{"command":{"type":"string","minLength":1,"maxLength":30}},"required":["command"]}}}]
EOF2
S2K="$TMP/s2k.gguf"
expect 0 run-tools-required -- "$BIN" run -m "$S2K" --tools "$TMP/tools.json" --tool-choice required -p "Weather?" -n 300 --temp 1.3 --seed 2
has out '"type":"function","function":{"name":"' run-tools-required
expect 0 run-tools-named -- "$BIN" run -m "$S2K" --tools "$TMP/tools.json" --tool-choice exec -p "ls" -n 300 --temp 1.3 --seed 2
has out '"function":{"name":"exec","arguments":"{' run-tools-named
if grep -q '"name":"get_weather"' "$TMP/out"; then bad "run-tools-named called another tool"; else ok; fi
expect 0 run-tools-none -- "$BIN" run -m "$S2K" --tools "$TMP/tools.json" --tool-choice none -p "hi" -n 20 --temp 0
if grep -q '"type":"function"' "$TMP/out"; then bad "run-tools-none made a call"; else ok; fi
expect 2 tool-choice-alone -- "$BIN" run -m "$S2K" --tool-choice exec -p hi; has err "needs --tools" tool-choice-alone
printf '[{"type":"function","function":{"name":"a b"}}]' >"$TMP/badtools.json"
expect 2 tools-bad-name -- "$BIN" run -m "$S2K" --tools "$TMP/badtools.json" -p hi; has err "tools[0].function.name" tools-bad-name
printf '[{"type":' >"$TMP/trunctools.json"
expect 2 tools-not-json -- "$BIN" run -m "$S2K" --tools "$TMP/trunctools.json" -p hi; has err "line 1" tools-not-json
expect 2 tool-choice-unknown -- "$BIN" run -m "$S2K" --tools "$TMP/tools.json" --tool-choice nope -p hi; has err "not a tool in 'tools'" tool-choice-unknown
expect 1 tools-missing-file -- "$BIN" run -m "$S2K" --tools "$TMP/none.json" -p hi
# chat: the call, then '/tool RESULT' answers it and the model goes on from the cache
printf 'Weather?\n/tool sunny\n' >"$TMP/chat.in"
expect 0 chat-tools -- sh -c "'$BIN' chat -m '$S2K' --tools '$TMP/tools.json' --tool-choice get_weather -n 120 --temp 1.3 --seed 3 <'$TMP/chat.in'"
has out '"name":"get_weather"' chat-tools
printf '/tool sunny\n' >"$TMP/chat2.in"
expect 1 chat-tool-nothing-pending -- sh -c "'$BIN' chat -m '$S2K' --tools '$TMP/tools.json' -n 4 <'$TMP/chat2.in'"
has err "no tool call is waiting" chat-tool-nothing-pending

# --- non-finite weights (issue 15): damaged copies made with `dev edit --poison` (NaN/inf in an
# F32 weight, in a norm, in Q8_0 and K-quant block scales). Every front end says so: run exits 1
# naming non_finite_logits, the position and the first bad layer; serve/batch answer -32080;
# eval writes valid JSON (null, "non_finite": true) and exits 1; info --check lists the tensors.
Q4K="$SHARED/models/synth512-llama-d256-Q4_K.gguf"
expect 0 poison-norm -- "$BIN" dev edit "$M" "$TMP/nan-norm.gguf" --poison blk.0.attn_norm.weight=nan
expect 0 poison-f32 -- "$BIN" dev edit "$M" "$TMP/inf-q.gguf" --poison blk.2.attn_q.weight=inf --poison-at 70
expect 0 poison-q8 -- "$BIN" dev edit "$SHARED/models/stories260K-Q8_0.gguf" "$TMP/nan-q8.gguf" --poison blk.1.ffn_up.weight=nan --poison-at 3
expect 0 poison-q4k -- "$BIN" dev edit "$Q4K" "$TMP/inf-q4k.gguf" --poison blk.0.attn_v.weight=-inf
expect 0 poison-q4k-min -- "$BIN" dev edit "$Q4K" "$TMP/nan-q4k-min.gguf" --poison blk.0.attn_k.weight=nan --poison-field 1
expect 2 poison-bad-value -- "$BIN" dev edit "$M" "$TMP/x.gguf" --poison output.weight=7; has err "nan, inf or -inf" poison-bad-value
expect 1 poison-no-tensor -- "$BIN" dev edit "$M" "$TMP/x.gguf" --poison nope=nan; has err "no tensor nope" poison-no-tensor
expect 1 poison-range -- "$BIN" dev edit "$M" "$TMP/x.gguf" --poison blk.0.attn_norm.weight=nan --poison-at 64; has err "has no value 64" poison-range
expect 1 poison-field-f32 -- "$BIN" dev edit "$M" "$TMP/x.gguf" --poison blk.0.attn_norm.weight=nan --poison-field 1
expect 0 check-clean -- "$BIN" info --check "$M"; has out "every value is finite" check-clean; has out "MB/s" check-speed
expect 0 check-clean-q4k -- "$BIN" info --check "$Q4K"; has out "every value is finite" check-clean-q4k
for f in nan-norm:blk.0.attn_norm.weight:F32:0 inf-q:blk.2.attn_q.weight:F32:2 nan-q8:blk.1.ffn_up.weight:Q8_0:1 \
         inf-q4k:blk.0.attn_v.weight:Q4_K:0 nan-q4k-min:blk.0.attn_k.weight:Q4_K:0; do
    IFS=: read -r file tensor type layer <<EOF2
$f
EOF2
    expect 1 "check-$file" -- "$BIN" info --check "$TMP/$file.gguf"
    has out "1 tensors hold 1 NaN or infinite values" "check-$file-count"
    if grep -Eq "^  $tensor +$type +1\$" "$TMP/out"; then ok; else bad "check-$file-list: $(grep -A3 '^check' "$TMP/out")"; fi
    has err "non_finite_weights" "check-$file-err"
    expect 1 "run-$file" -- "$BIN" run -m "$TMP/$file.gguf" -p "Once upon a time" -n 8
    has err "non_finite_logits" "run-$file-kind"; has err "at position" "run-$file-pos"
    has err "output of layer $layer (blk.$layer)" "run-$file-layer"
    if [ -z "$(tr -d '\n' <"$TMP/out")" ]; then ok; else bad "run-$file-no-text: $(head -c 100 "$TMP/out")"; fi
    expect 1 "run-sampled-$file" -- "$BIN" run -m "$TMP/$file.gguf" -p "Once upon a time" -n 8 --temp 0.8 --seed 2
    has err "non_finite_logits" "run-sampled-$file"
    expect 1 "eval-$file" -- "$BIN" eval -m "$TMP/$file.gguf" -p "Once upon" --top 4
    has err "non_finite_logits" "eval-$file-err"
    # valid JSON whatever the model; float paths show the values as null (8-bit paths stop first)
    if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["non_finite"] is True; assert sys.argv[2] != "F32" or any(v is None for p in d["positions"] for _, v in p["top"])' "$TMP/out" "$type"; then ok; else bad "eval-$file-json: $(head -c 300 "$TMP/out")"; fi
done
expect 1 eval-all-logits -- "$BIN" eval -m "$TMP/inf-q.gguf" -p "Once" --all-logits --top 1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["non_finite"] is True and None in d["logits_all"][0]' "$TMP/out"; then ok; else bad "eval-all-logits-json"; fi
expect 0 eval-clean -- "$BIN" eval -m "$M" -p "Once" --top 2; if grep -q non_finite "$TMP/out"; then bad "eval-clean: non_finite"; else ok; fi
# serve: the error has its own code and kind; model/load {check: true} refuses the file (the old
# model stays), without check it loads and generation fails cleanly; the server goes on
cat >"$TMP/nf.in" <<EOF2
{"jsonrpc":"2.0","id":1,"method":"initialize"}
{"jsonrpc":"2.0","id":2,"method":"generate","params":{"prompt":"Once upon a time","max_tokens":4}}
{"jsonrpc":"2.0","id":3,"method":"model/load","params":{"path":"$M","check":true}}
{"jsonrpc":"2.0","id":4,"method":"model/load","params":{"path":"$TMP/nan-q8.gguf","check":true}}
{"jsonrpc":"2.0","id":5,"method":"generate","params":{"prompt":"Once upon a time","max_tokens":4,"temperature":0}}
{"jsonrpc":"2.0","id":6,"method":"model/load","params":{"path":"$TMP/nan-q8.gguf"}}
{"jsonrpc":"2.0","id":7,"method":"chat","params":{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}}
{"jsonrpc":"2.0","id":8,"method":"ping"}
EOF2
expect 0 serve-nonfinite -- sh -c "'$BIN' serve -m '$TMP/inf-q4k.gguf' <'$TMP/nf.in'"
has out '"id":2,"error":{"code":-32080,"message":"non_finite_logits: ' serve-nf-generate
has out '"kind":"non_finite_logits"' serve-nf-kind
has out '"id":3,"result":{"model":' serve-nf-check-clean; has out '"non_finite_tensors":0' serve-nf-check-clean-count
has out '"id":4,"error":{"code":-32081' serve-nf-check-refused; has out '"bad":[{"name":"blk.1.ffn_up.weight","type":"Q8_0","non_finite":1}]' serve-nf-check-list
has out '"id":5,"result":{"text":", there was a"' serve-nf-old-model-stays
has out '"id":7,"error":{"code":-32080' serve-nf-chat; has out '"id":8,"result"' serve-nf-goes-on
# batch: the failing line records the error, the job goes on, exit 1
printf '{"id":"a","prompt":"Once upon a time","max_tokens":4}\n{"id":"b","prompt":"Lily","max_tokens":4,"temperature":0}\n' >"$TMP/nf-batch.in"
expect 1 batch-nonfinite -- "$BIN" batch -m "$TMP/nan-norm.gguf" "$TMP/nf-batch.in"
has out '"id":"a","error":{"code":-32080' batch-nf-a; has out '"id":"b","error":{"code":-32080' batch-nf-b
# a bias that bans every token is a dead end with its own message (no longer bad_state)
printf '{"id":"c","prompt":"Once","max_tokens":2,"logit_bias":[%s]}\n' "$(seq 0 511 | sed 's/.*/[&,false]/' | paste -sd, -)" >"$TMP/ban.in"
expect 1 batch-all-banned -- "$BIN" batch -m "$M" "$TMP/ban.in"
has out '"code":-32073' batch-all-banned-code; has out 'the logit bias bans every token' batch-all-banned-msg

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
