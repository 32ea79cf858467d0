#!/bin/sh
# bench_grammar.sh: what grammars cost per generated token, the grammar section of `make bench`
# (`make bench-grammar` alone). Issue 10's measures, on random-weight models of real shapes with
# real vocabularies, generated once into BENCH_DIR by `lmpipe dev synth` (never into the repo):
#   smollm2-135m-starcoder-Q8_0.gguf  SmolLM2-135M shape, StarCoder's 49,152-token vocabulary
#   qwen2.5-0.5b-qwen2-Q8_0.gguf      Qwen2.5-0.5B shape, Qwen2's 151,936-token vocabulary
#   smollm2-135m-stories-Q8_0.gguf    SmolLM2-135M shape, stories260K's 512 tokens (forced runs)
#
# 1. Cost per token, for json.gbnf and a tool-call schema ({"name":"exec","arguments":{...}}):
#    R rounds, each one run without a grammar (--ignore-eos, so it also makes N tokens) and one
#    with it, same seed, in alternating order; time per token = decode time / tokens (lmpipe
#    run's own stderr line), as CPU time (the process's, one thread: what a busy machine's
#    waiting for a core does not inflate) and as wall-clock time; cost = (median with - median
#    without) / median without. Beside it, the grammar's own share as lmpipe measures it
#    in-process (eng_gen_result.constraint_ms: the constraint's operations, the logits copy and
#    the redraws over decode_ms).
#    With PEER_COMPLETION=/path/to/llama-completion the same for llama.cpp (--grammar-file /
#    --json-schema-file, its eval + sampling time per token from llama_perf), alternating with
#    ours in the same rounds.
# 2. A 60-token tool call with and without forced runs (--no-forced: the same tokens sampled one
#    by one), decode ms as medians: on the real vocabularies, and on the stories vocabulary with
#    a grammar made of forced runs (where the mechanism has work to do).
#
# usage: tests/bench_grammar.sh LMPIPE_BIN
# env:   BENCH_DIR (.cache/bench)  SHARED (../shared)  BENCH_GRAMMAR_R (5 rounds)
#        BENCH_GRAMMAR_N (64 tokens)  BENCH_GRAMMAR_T (1 thread)  PEER_COMPLETION (optional)
#        BENCH_GRAMMAR_MODELS (default: the two real-vocabulary files)
set -eu

BIN=${1:?usage: tests/bench_grammar.sh LMPIPE_BIN}
DIR=${BENCH_DIR:-.cache/bench}
SHARED=${SHARED:-../shared}
R=${BENCH_GRAMMAR_R:-5}
N=${BENCH_GRAMMAR_N:-64}
T=${BENCH_GRAMMAR_T:-1}
PEER=${PEER_COMPLETION:-}
MODELS=${BENCH_GRAMMAR_MODELS:-"smollm2-135m-starcoder-Q8_0.gguf qwen2.5-0.5b-qwen2-Q8_0.gguf"}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PROMPT="Once upon a time"

mkdir -p "$DIR"

# A cached model, or a new one (synth writes atomically: a file that exists is complete).
gen() {
    f=$1 preset=$2 vocab=$3
    if [ -s "$DIR/$f" ]; then
        echo "bench-grammar: using cached $DIR/$f"
    else
        echo "bench-grammar: generating $DIR/$f (once; random weights, $preset shape, vocabulary of $vocab)"
        nice "$BIN" dev synth "$DIR/$f" --preset "$preset" --vocab-from "$vocab" --type Q8_0
    fi
}
gen smollm2-135m-starcoder-Q8_0.gguf smollm2-135m "$SHARED/vocab/ggml-vocab-starcoder.gguf"
gen qwen2.5-0.5b-qwen2-Q8_0.gguf qwen2.5-0.5b "$SHARED/vocab/ggml-vocab-qwen2.gguf"
gen smollm2-135m-stories-Q8_0.gguf smollm2-135m "$SHARED/models/stories260K-F32.gguf"

# The tool call: exec's arguments (tests/data/schemas/exec.json) wrapped as a call.
TOOL=$DIR/tool-call-exec.schema.json
cat >"$TOOL" <<'EOF'
{"type": "object", "additionalProperties": false, "required": ["name", "arguments"],
 "properties": {"name": {"const": "exec"},
  "arguments": {"type": "object", "additionalProperties": false, "required": ["command"],
   "properties": {"command": {"type": "string", "minLength": 1},
                  "timeout": {"type": "integer", "minimum": 1, "maximum": 3600},
                  "cwd": {"type": "string"}}}}}
EOF
JSON=$SRC/grammars/json.gbnf
FORCED=$DIR/forced-runs.gbnf
printf '%s\n' 'root ::= ("{{#__@@==^^}}" [a-z ]{1,12} "{{^^==@@__#}}")+' >"$FORCED"

SAMPLES=$(mktemp "${TMPDIR:-/tmp}/lmpipe-bench-grammar.XXXXXX")
ERRF=$(mktemp "${TMPDIR:-/tmp}/lmpipe-bench-grammar-err.XXXXXX")
trap 'rm -f "$SAMPLES" "$ERRF"' EXIT
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# ours MODEL TAG SEED N ARGS...: one lmpipe run; appends
# "model tag engine wall_ms_per_token share tokens forced decode_ms cpu_ms_per_token"
ours() {
    m=$1 tag=$2 seed=$3 n=$4
    shift 4
    "$BIN" run -m "$DIR/$m" -p "$PROMPT" -n "$n" -t "$T" --temp 1.0 --seed "$seed" "$@" >/dev/null 2>"$ERRF" ||
        { echo "bench-grammar: lmpipe run failed on $m ($tag):" >&2; cat "$ERRF" >&2; exit 1; }
    awk -v m="$m" -v tag="$tag" '
        /generated [0-9]+ tokens in/ { for (i = 1; i <= NF; i++) { if ($i == "generated") n = $(i + 1); if ($i == "in" && $(i - 1) == "tokens") ms = $(i + 1) } }
        /^lmpipe: grammar / { g = $3; f = $(NF - 4) }
        /decode CPU/ { c = $(NF - 1) }
        END { if (n > 0) printf "%s %s lmpipe %.6f %.6f %d %d %.3f %.6f\n", m, tag, ms / n, (g + 0) / ms, n, f + 0, ms, c / n }' \
        "$ERRF" >>"$SAMPLES"
}

# peer MODEL TAG SEED ARGS...: one llama-completion run; per token = (eval + sampling) / tokens
peer() {
    m=$1 tag=$2 seed=$3
    shift 3
    "$PEER" -m "$DIR/$m" -p "$PROMPT" -n "$N" -t "$T" --temp 1.0 --seed "$seed" -no-cnv --no-warmup \
        --no-display-prompt "$@" </dev/null >/dev/null 2>"$ERRF" ||
        { echo "bench-grammar: llama-completion failed on $m ($tag):" >&2; tail -5 "$ERRF" >&2; exit 1; }
    awk -v m="$m" -v tag="$tag" '
        /sampling time =/ { s = $0; sub(/.*sampling time = */, "", s); samp = s + 0 }
        /[^t] eval time =/ && !/prompt eval/ { s = $0; sub(/.*eval time = */, "", s); ev = s + 0; r = $0; sub(/.*\/ */, "", r); n = r + 0 }
        END { if (n > 0) printf "%s %s llama.cpp %.6f 0 %d 0 %.3f 0\n", m, tag, (ev + samp) / n, n, ev + samp }' \
        "$ERRF" >>"$SAMPLES"
}

# 1. cost per token
for m in $MODELS; do
    i=1
    while [ "$i" -le "$R" ]; do
        s=$((100 + i))
        if [ $((i % 2)) = 1 ]; then
            ours "$m" none "$s" "$N" --ignore-eos
            ours "$m" json "$s" "$N" --grammar "$JSON"
            ours "$m" tool "$s" "$N" --json-schema "$TOOL"
        else
            ours "$m" tool "$s" "$N" --json-schema "$TOOL"
            ours "$m" json "$s" "$N" --grammar "$JSON"
            ours "$m" none "$s" "$N" --ignore-eos
        fi
        if [ -n "$PEER" ]; then
            peer "$m" none "$s" --ignore-eos
            peer "$m" json "$s" --grammar-file "$JSON"
            peer "$m" tool "$s" --json-schema-file "$TOOL"
        fi
        i=$((i + 1))
    done
done
# 2. forced runs: a 60-token tool call (and the forced-run grammar on the stories vocabulary)
for m in $MODELS smollm2-135m-stories-Q8_0.gguf; do
    case $m in *stories*) g="--grammar $FORCED" tag=forced-grammar ;; *) g="--json-schema $TOOL" tag=tool60 ;; esac
    i=1
    while [ "$i" -le "$R" ]; do
        s=$((200 + i))
        # shellcheck disable=SC2086
        ours "$m" "$tag" "$s" 60 $g
        # shellcheck disable=SC2086
        ours "$m" "$tag-noforced" "$s" 60 $g --no-forced
        i=$((i + 1))
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

echo
echo "grammar cost per token: lmpipe ($BIN)${PEER:+ vs llama.cpp ($PEER)}, $R alternating rounds of $N tokens,"
echo "$T thread(s), temperature 1.0, medians; load average $LOAD0 before, $LOAD1 after ($(nproc 2>/dev/null || echo ?) cores)"
awk -v R="$R" '
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " "); if (n == 0) return 0
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    { k = $1 SUBSEP $2 SUBSEP $3; tpt[k] = tpt[k] " " $4; share[k] = share[k] " " $5; toks[k] = toks[k] " " $6
      forced[k] = forced[k] " " $7; dms[k] = dms[k] " " $8; cpt[k] = cpt[k] " " $9
      if (!($1 in seen)) { seen[$1] = 1; order[++nm] = $1 } }
    END {
        printf "| %-34s | %-9s | %-9s | %13s | %13s | %8s | %8s | %8s |\n", "model", "grammar", "engine", "CPU ms/tok no", "CPU ms/tok with", "CPU cost", "wall cost", "in-proc"
        printf "| %-34s | %-9s | %-9s | %13s | %13s | %8s | %8s | %8s |\n", "---", "---", "---", "---:", "---:", "---:", "---:", "---:"
        for (i = 1; i <= nm; i++) for (e = 1; e <= 2; e++) for (gi = 1; gi <= 2; gi++) {
            m = order[i]; eng = e == 1 ? "lmpipe" : "llama.cpp"; g = gi == 1 ? "json" : "tool"
            a = median(tpt[m, "none", eng]); b = median(tpt[m, g, eng])
            if (a == 0 || b == 0) continue
            ca = median(cpt[m, "none", eng]); cb = median(cpt[m, g, eng])
            cc = ca > 0 ? sprintf("%.2f%%", 100 * (cb - ca) / ca) : "-"
            sh = eng == "lmpipe" ? sprintf("%.2f%%", 100 * median(share[m, g, eng])) : "-"
            printf "| %-34s | %-9s | %-9s | %13s | %13s | %8s | %7.2f%% | %8s |\n", m, g == "json" ? "json.gbnf" : "tool-call", eng,
                   (ca > 0 ? sprintf("%.3f", ca) : sprintf("(wall) %.3f", a)), (cb > 0 ? sprintf("%.3f", cb) : sprintf("(wall) %.3f", b)),
                   cc, 100 * (b - a) / a, sh
        }
        printf "\nforced runs: decode ms (medians of %d) for 60 tokens under the grammar, with forced runs and without (--no-forced)\n", R
        printf "| %-34s | %-14s | %8s | %10s | %12s | %8s |\n", "model", "grammar", "forced", "ms with", "ms without", "saved"
        printf "| %-34s | %-14s | %8s | %10s | %12s | %8s |\n", "---", "---", "---:", "---:", "---:", "---:"
        for (i = 1; i <= nm; i++) for (gi = 1; gi <= 2; gi++) {
            m = order[i]; g = gi == 1 ? "tool60" : "forced-grammar"
            a = median(dms[m, g, "lmpipe"]); b = median(dms[m, g "-noforced", "lmpipe"])
            if (a == 0 || b == 0) continue
            printf "| %-34s | %-14s | %5d/%2d | %10.1f | %12.1f | %7.1f%% |\n", m, g == "tool60" ? "tool call" : "forced runs", median(forced[m, g, "lmpipe"]),
                   median(toks[m, g, "lmpipe"]), a, b, 100 * (b - a) / b
        }
    }' "$SAMPLES"
