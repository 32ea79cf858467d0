#!/bin/sh
# bench.sh: what `make bench` runs. Generates the two benchmark models into a cache folder if
# they are missing (random weights, real shapes: TinyLlama-1.1B in Q4_K_M, SmolLM2-135M in
# Q8_0, via the hidden `lmpipe dev synth`), then benches each with `lmpipe bench`.
#
# With PEER=/path/to/llama-bench it runs llama.cpp's llama-bench on the same files with the
# same -p/-n/-t, alternating one run of each engine per round (so drift in machine load hits
# both alike), and prints both means ± sd and the ratio in one table.
#
# usage: tests/bench.sh LMPIPE_BIN
# env:   BENCH_DIR (.cache/bench)  BENCH_P (64)  BENCH_N (32)  BENCH_R (5)  BENCH_T ("1 2")
#        BENCH_FILES (both files)  PEER (path to llama-bench, optional)
#        PEER_COMMIT (names the peer's commit when its build reports "unknown")
# With PEER, a second table gives both engines' peak RSS: lmpipe's from its own getrusage, the
# peer's from `lmpipe dev peak-rss` wrapped around it (the same ru_maxrss field).
set -eu

BIN=${1:?usage: tests/bench.sh LMPIPE_BIN}
DIR=${BENCH_DIR:-.cache/bench}
P=${BENCH_P:-64}
N=${BENCH_N:-32}
R=${BENCH_R:-5}
THREADS=${BENCH_T:-"1 2"}
PEER=${PEER:-}
FILES=${BENCH_FILES:-"tinyllama-Q4_K_M.gguf smollm2-135m-Q8_0.gguf"}

mkdir -p "$DIR"

# Generate a cached model unless it is already there (synth writes atomically, so a file that
# exists is complete).
gen() {
    f=$1 preset=$2 type=$3
    if [ -s "$DIR/$f" ]; then
        echo "bench: using cached $DIR/$f"
    else
        echo "bench: generating $DIR/$f (once; random weights, $preset shape, $type)"
        "$BIN" dev synth "$DIR/$f" --preset "$preset" --type "$type"
    fi
}

for f in $FILES; do
    case $f in
    tinyllama-*) gen "$f" tinyllama "$(echo "$f" | sed 's/^tinyllama-//; s/\.gguf$//')" ;;
    smollm2-135m-*) gen "$f" smollm2-135m "$(echo "$f" | sed 's/^smollm2-135m-//; s/\.gguf$//')" ;;
    *) [ -s "$DIR/$f" ] || { echo "bench: $DIR/$f: no such file and no preset for it" >&2; exit 1; } ;;
    esac
done

# Report files this build cannot run (a tensor type without kernels yet) instead of failing.
RUNNABLE=
for f in $FILES; do
    if "$BIN" info "$DIR/$f" | grep -q '^model: not loadable'; then
        echo "bench: SKIP $f: $("$BIN" info "$DIR/$f" | sed -n 's/^model: not loadable: //p')"
        "$BIN" info "$DIR/$f" | grep 'not supported by this build' | sed 's/^/bench:   /' || true
    else
        RUNNABLE="$RUNNABLE $f"
    fi
done
[ -n "$RUNNABLE" ] || { echo "bench: nothing runnable" >&2; exit 1; }

TLIST=$(echo $THREADS | tr ' ' ',')
if [ -z "$PEER" ]; then
    for f in $RUNNABLE; do
        echo
        "$BIN" bench -m "$DIR/$f" -p "$P" -n "$N" -t "$TLIST" -r "$R"
    done
    exit 0
fi

[ -x "$PEER" ] || { echo "bench: PEER=$PEER is not an executable llama-bench" >&2; exit 1; }

# Alternating rounds: one lmpipe run and one llama-bench run per round and thread count.
# Samples are collected as "file threads test engine value" lines, then summarised by awk.
SAMPLES=$(mktemp "${TMPDIR:-/tmp}/lmpipe-bench.XXXXXX")
RSSF=$(mktemp "${TMPDIR:-/tmp}/lmpipe-bench-rss.XXXXXX")
trap 'rm -f "$SAMPLES" "$RSSF"' EXIT
# a llama.cpp built outside a git checkout reports "unknown": PEER_COMMIT=<sha> names it
PEER_COMMIT_SET=${PEER_COMMIT:-}
PEER_COMMIT=${PEER_COMMIT:-unknown}
for f in $RUNNABLE; do
    for t in $THREADS; do
        i=1
        while [ "$i" -le "$R" ]; do
            out=$("$BIN" bench -m "$DIR/$f" -p "$P" -n "$N" -t "$t" -r 1 --json)
            pp=$(echo "$out" | sed -n 's/.*"pp_tps": \([0-9.eE+-]*\).*/\1/p')
            tg=$(echo "$out" | sed -n 's/.*"tg_tps": \([0-9.eE+-]*\).*/\1/p')
            isa=$(echo "$out" | sed -n 's/.*"isa": "\([^"]*\)".*/\1/p')
            rss=$(echo "$out" | sed -n 's/.*"peak_rss": \([0-9]*\).*/\1/p')
            echo "$f $t pp$P lmpipe $pp" >>"$SAMPLES"
            echo "$f $t tg$N lmpipe $tg" >>"$SAMPLES"
            echo "$f $t rss lmpipe $rss" >>"$SAMPLES"
            # the peer runs under `lmpipe dev peak-rss`: its peak RSS from the same getrusage field
            pout=$("$BIN" dev peak-rss "$RSSF" "$PEER" -m "$DIR/$f" -p "$P" -n "$N" -t "$t" -r 1 -o jsonl 2>/dev/null) ||
                { echo "bench: llama-bench failed on $f" >&2; exit 1; }
            echo "$f $t rss llama.cpp $(cat "$RSSF")" >>"$SAMPLES"
            echo "$pout" | awk -v f="$f" -v t="$t" -v P="$P" -v N="$N" '
                function num(k,   s) { s = $0; if (!match(s, "\"" k "\": *[-0-9.eE+]+")) return ""
                                       s = substr(s, RSTART, RLENGTH); sub(/.*: */, "", s); return s }
                { np = num("n_prompt"); ng = num("n_gen"); ts = num("avg_ts")
                  if (np + 0 > 0 && ng + 0 == 0) print f, t, "pp" P, "llama.cpp", ts
                  else if (ng + 0 > 0 && np + 0 == 0) print f, t, "tg" N, "llama.cpp", ts }' \
                >>"$SAMPLES"
            c=$(echo "$pout" | sed -n 's/.*"build_commit": "\([^"]*\)".*/\1/p' | head -n 1)
            [ -z "$c" ] || [ "$c" = unknown ] || [ -n "$PEER_COMMIT_SET" ] || PEER_COMMIT=$c
            i=$((i + 1))
        done
    done
done

echo
echo "lmpipe ($BIN, kernels ${isa:-?}) vs llama.cpp ($PEER, commit $PEER_COMMIT)"
echo "alternating runs, $R rounds, -p $P -n $N; t/s as mean ± sd; ratio = lmpipe / llama.cpp;"
echo "peak RSS: the largest of the rounds, per process (getrusage ru_maxrss), MiB"
awk '
    $3 == "rss" { k = $1 SUBSEP $2; v = $5 / 1048576; if (v > rss[k, $4]) rss[k, $4] = v; next }
    { k = $1 SUBSEP $2 SUBSEP $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      e = $4; v = $5 + 0; s[k, e] += v; ss[k, e] += v * v; c[k, e]++ }
    function mean(k, e) { return c[k, e] ? s[k, e] / c[k, e] : 0 }
    function sd(k, e,   m) { if (c[k, e] < 2) return 0; m = mean(k, e)
                            return sqrt((ss[k, e] - c[k, e] * m * m) / (c[k, e] - 1)) }
    END {
        printf "| %-26s | %7s | %-5s | %17s | %17s | %6s |\n", "model", "threads", "test", "lmpipe t/s", "llama.cpp t/s", "ratio"
        printf "| %-26s | %7s | %-5s | %17s | %17s | %6s |\n", "--------------------------", "------:", ":----", "----------------:", "----------------:", "-----:"
        for (i = 1; i <= n; i++) {
            split(order[i], p, SUBSEP); k = order[i]
            a = mean(k, "lmpipe"); b = mean(k, "llama.cpp")
            printf "| %-26s | %7s | %-5s | %8.2f ± %6.2f | %8.2f ± %6.2f | %6.2f |\n", p[1], p[2], p[3],
                   a, sd(k, "lmpipe"), b, sd(k, "llama.cpp"), (b > 0 ? a / b : 0)
        }
        printf "\n| %-26s | %7s | %15s | %15s | %6s |\n", "model", "threads", "lmpipe RSS MiB", "llama.cpp RSS MiB", "ratio"
        printf "| %-26s | %7s | %15s | %15s | %6s |\n", "--------------------------", "------:", "--------------:", "--------------:", "-----:"
        for (i = 1; i <= n; i++) {
            split(order[i], p, SUBSEP); k = p[1] SUBSEP p[2]
            if (k in done) continue; done[k] = 1
            a = rss[k, "lmpipe"]; b = rss[k, "llama.cpp"]
            printf "| %-26s | %7s | %15.1f | %15.1f | %6.2f |\n", p[1], p[2], a, b, (b > 0 ? a / b : 0)
        }
    }' "$SAMPLES"
