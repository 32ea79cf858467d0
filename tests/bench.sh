#!/bin/sh
# bench.sh: what `make bench` runs. Generates the two benchmark models into a cache folder if
# they are missing (random weights, real shapes: TinyLlama-1.1B in Q4_K_M, SmolLM2-135M in
# Q8_0, via the hidden `lmpipe dev synth`), then benches each with `lmpipe bench`.
#
# With PEER=/path/to/llama-bench it runs llama.cpp's llama-bench on the same files with the
# same -p/-n/-t, alternating one run of each engine per round (so drift in machine load hits
# both alike), and prints, per engine, the median and the best round besides mean ± sd, and the
# ratio of the medians, in one table. BENCH_ISA lists lmpipe kernel tiers to run side by side
# (LMPIPE_ISA values, "auto" = the automatic choice), e.g. BENCH_ISA="auto avx2".
#
# BENCH_TESTS lists the tests, each run on its own per round: ppP (prefill of P tokens), tgN (N
# decode steps), either with @dD for D cached tokens before it (llama-bench -d: filled untimed),
# e.g. BENCH_TESTS="pp64 pp512 tg64 tg64@d1024"; by default "ppBENCH_P tgBENCH_N".
#
# usage: tests/bench.sh LMPIPE_BIN
# env:   BENCH_DIR (.cache/bench)  BENCH_P (64)  BENCH_N (32)  BENCH_R (5)  BENCH_T ("1 2")
#        BENCH_TESTS ("ppP tgN")  BENCH_FILES (both files)  BENCH_ISA ("auto")
#        PEER (path to llama-bench, optional)
#        PEER_COMMIT (names the peer's commit when its build reports "unknown")
# The header states the CPU (model, family/model, the SIMD flags both engines look at), the
# kernel tier of every lmpipe column and the peer's CPU features (from a llama-completion or
# llama-cli next to llama-bench, when there is one), and the load average before and after, so
# a table taken on a busy machine says so.
# With PEER, a second table gives both engines' peak RSS: lmpipe's from its own getrusage, the
# peer's from `lmpipe dev peak-rss` wrapped around it (the same ru_maxrss field), and the peak
# anonymous RSS (RssAnon: memory the engine allocated, e.g. a repacked copy of the weights,
# without the mapped file; lmpipe samples its own after every run, dev peak-rss every 10 ms).
set -eu

BIN=${1:?usage: tests/bench.sh LMPIPE_BIN}
DIR=${BENCH_DIR:-.cache/bench}
P=${BENCH_P:-64}
N=${BENCH_N:-32}
R=${BENCH_R:-5}
THREADS=${BENCH_T:-"1 2"}
ISAS=${BENCH_ISA:-auto}
PEER=${PEER:-}
FILES=${BENCH_FILES:-"tinyllama-Q4_K_M.gguf smollm2-135m-Q8_0.gguf"}
TESTS=${BENCH_TESTS:-"pp$P tg$N"}
[ -n "$TESTS" ] || TESTS="pp$P tg$N"
[ "$P" -ne 0 ] || [ -n "${BENCH_TESTS:-}" ] || TESTS="tg$N"
[ "$N" -ne 0 ] || [ -n "${BENCH_TESTS:-}" ] || TESTS="pp$P"

# A test's flags for both engines' bench commands: "-p P -n 0 -d D" or "-p 0 -n N -d D".
test_flags() {
    echo "$1" | sed -n 's/^pp\([0-9][0-9]*\)\(@d\([0-9][0-9]*\)\)\{0,1\}$/-p \1 -n 0 -d 0\3/p
                        s/^tg\([0-9][0-9]*\)\(@d\([0-9][0-9]*\)\)\{0,1\}$/-p 0 -n \1 -d 0\3/p'
}
for test in $TESTS; do
    [ -n "$(test_flags "$test")" ] || { echo "bench: BENCH_TESTS: '$test' is not ppN, tgN, ppN@dD or tgN@dD" >&2; exit 1; }
done

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

# The machine: CPU model (the VM may hide the exact one; family/model name the core), the SIMD
# flags the engines choose kernels by, and lmpipe's view of them.
cpu_line() {
    name=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
    fam=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
    mod=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
    ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')
    flags=$(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1 | tr ' ' '\n' |
        grep -E '^(avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni|avx512_bf16)$' | tr '\n' ' ')
    echo "cpu: ${name:-unknown} (family ${fam:-?} model ${mod:-?}, $ncpu logical CPUs); flags: ${flags:-?}"
}
load_line() {
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
}
# The tier a LMPIPE_ISA value gives ("auto": the automatic choice).
isa_of() {
    if [ "$1" = auto ]; then LMPIPE_ISA= "$BIN" info --cpu | sed -n 's/^[[:space:]]*isa[[:space:]]*//p'
    else LMPIPE_ISA=$1 "$BIN" info --cpu 2>/dev/null | sed -n 's/^[[:space:]]*isa[[:space:]]*//p'; fi
}
echo
cpu_line
echo "lmpipe $BIN: $(LMPIPE_ISA= "$BIN" info --cpu | sed -n 's/^[[:space:]]*built[[:space:]]*/tiers built: /p')"
for isa in $ISAS; do
    got=$(isa_of "$isa")
    echo "  BENCH_ISA $isa -> kernels $got"
    [ "$isa" = auto ] || [ "$isa" = "$got" ] ||
        echo "bench: WARNING: LMPIPE_ISA=$isa is not available here; that column runs $got" >&2
done
load_line

TLIST=$(echo $THREADS | tr ' ' ',')
if [ -z "$PEER" ]; then
    for f in $RUNNABLE; do
        for isa in $ISAS; do
            for test in $TESTS; do
                echo
                # shellcheck disable=SC2046 # test_flags gives separate words
                if [ "$isa" = auto ]; then "$BIN" bench -m "$DIR/$f" $(test_flags "$test") -t "$TLIST" -r "$R"
                else LMPIPE_ISA=$isa "$BIN" bench -m "$DIR/$f" $(test_flags "$test") -t "$TLIST" -r "$R"; fi
            done
        done
    done
    echo
    load_line
    exit 0
fi

[ -x "$PEER" ] || { echo "bench: PEER=$PEER is not an executable llama-bench" >&2; exit 1; }

# The peer's CPU features, as its own system_info line prints them (the tools next to
# llama-bench load the model for that; a few seconds, once).
PEER_DIR=$(dirname "$PEER")
peer_isa=unknown
for tool in llama-completion llama-cli; do
    if [ -x "$PEER_DIR/$tool" ]; then
        first=$(echo $RUNNABLE | cut -d' ' -f1)
        peer_isa=$(timeout 120 "$PEER_DIR/$tool" -m "$DIR/$first" -p hi -n 1 -t 1 -no-cnv </dev/null 2>&1 |
            sed -n 's/.*system_info:.*| CPU : //p' | head -n 1 | tr -s ' ' |
            tr '|' '\n' | grep '= 1' | sed 's/ = 1//; s/^ *//; s/ *$//' | tr '\n' ' ' | tr -s ' ') ||
            peer_isa=unknown
        [ -n "$peer_isa" ] || peer_isa=unknown
        break
    fi
done

# Alternating rounds: per round and thread count, one lmpipe run per BENCH_ISA entry, then one
# llama-bench run. Samples are collected as "file threads test engine value" lines, then
# summarised by awk.
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
            for test in $TESTS; do
                fl=$(test_flags "$test")
                for isa in $ISAS; do
                    # shellcheck disable=SC2086 # $fl is separate words
                    if [ "$isa" = auto ]; then
                        out=$("$BIN" bench -m "$DIR/$f" $fl -t "$t" -r 1 --json)
                    else
                        out=$(LMPIPE_ISA=$isa "$BIN" bench -m "$DIR/$f" $fl -t "$t" -r 1 --json)
                    fi
                    v=$(echo "$out" | sed -n 's/.*"[pt][pg]_tps": \([0-9.eE+-]*\).*/\1/p')
                    got=$(echo "$out" | sed -n 's/.*"isa": "\([^"]*\)".*/\1/p')
                    rss=$(echo "$out" | sed -n 's/.*"peak_rss": \([0-9]*\).*/\1/p')
                    anon=$(echo "$out" | sed -n 's/.*"peak_rss_anon": \([0-9]*\).*/\1/p')
                    eng="lmpipe[$got]"
                    echo "$f $t $test $eng $v" >>"$SAMPLES"
                    echo "$f $t rss $eng $rss ${anon:-0}" >>"$SAMPLES"
                done
                # the peer runs under `lmpipe dev peak-rss`: its peak RSS from the same getrusage
                # field, its RssAnon sampled while it runs
                # shellcheck disable=SC2086
                pout=$("$BIN" dev peak-rss "$RSSF" "$PEER" -m "$DIR/$f" $fl -t "$t" -r 1 -o jsonl 2>/dev/null) ||
                    { echo "bench: llama-bench failed on $f ($test)" >&2; exit 1; }
                echo "$f $t rss llama.cpp $(cat "$RSSF")" >>"$SAMPLES"
                echo "$pout" | awk -v f="$f" -v t="$t" -v T="$test" '
                    function num(k,   s) { s = $0; if (!match(s, "\"" k "\": *[-0-9.eE+]+")) return ""
                                           s = substr(s, RSTART, RLENGTH); sub(/.*: */, "", s); return s }
                    { ts = num("avg_ts"); if (ts != "") print f, t, T, "llama.cpp", ts }' \
                    >>"$SAMPLES"
                c=$(echo "$pout" | sed -n 's/.*"build_commit": "\([^"]*\)".*/\1/p' | head -n 1)
                [ -z "$c" ] || [ "$c" = unknown ] || [ -n "$PEER_COMMIT_SET" ] || PEER_COMMIT=$c
            done
            i=$((i + 1))
        done
    done
done

echo
echo "lmpipe ($BIN) vs llama.cpp ($PEER, commit $PEER_COMMIT; its CPU features: $peer_isa)"
echo "alternating runs, $R rounds, tests: $TESTS (ppP@dD: P prompt tokens after D cached ones);"
echo "t/s: median, best round, mean ± sd; ratio = lmpipe median / llama.cpp median; peak RSS: the"
echo "largest of the rounds, per process (getrusage ru_maxrss), and the largest RssAnon, MiB"
load_line
awk '
    $3 == "rss" { k = $1 SUBSEP $2; v = $5 / 1048576; if (v > rss[k, $4]) rss[k, $4] = v
                  v = $6 / 1048576; if (v > anon[k, $4]) anon[k, $4] = v
                  if (!((k, $4) in rseen)) { rseen[k, $4] = 1; reng[k] = reng[k] " " $4 }; next }
    { k = $1 SUBSEP $2 SUBSEP $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      e = $4; if (!((k, e) in eseen)) { eseen[k, e] = 1; engs[k] = engs[k] " " e }
      v = $5 + 0; c[k, e]++; x[k, e, c[k, e]] = v; s[k, e] += v; ss[k, e] += v * v }
    function mean(k, e) { return c[k, e] ? s[k, e] / c[k, e] : 0 }
    function sd(k, e,   m) { if (c[k, e] < 2) return 0; m = mean(k, e)
                            return sqrt((ss[k, e] - c[k, e] * m * m) / (c[k, e] - 1)) }
    function sorted(k, e,   i, j, t, m) { m = c[k, e]; for (i = 1; i <= m; i++) y[i] = x[k, e, i]
                            for (i = 2; i <= m; i++) { t = y[i]; for (j = i - 1; j >= 1 && y[j] > t; j--) y[j + 1] = y[j]; y[j + 1] = t }
                            return m }
    function median(k, e,   m) { m = sorted(k, e); if (!m) return 0
                            return m % 2 ? y[(m + 1) / 2] : (y[m / 2] + y[m / 2 + 1]) / 2 }
    function best(k, e,   m) { m = sorted(k, e); return m ? y[m] : 0 }
    END {
        printf "| %-26s | %7s | %-11s | %-17s | %8s | %8s | %17s | %6s |\n", "model", "threads", "test", "engine", "median", "best", "mean ± sd", "ratio"
        printf "| %-26s | %7s | %-11s | %-17s | %8s | %8s | %17s | %6s |\n", "--------------------------", "------:", ":----------", ":----------------", "-------:", "-------:", "----------------:", "-----:"
        for (i = 1; i <= n; i++) {
            split(order[i], p, SUBSEP); k = order[i]
            ref = median(k, "llama.cpp"); ne = split(engs[k], el, " ")
            for (j = 1; j <= ne; j++) {
                e = el[j]; m = median(k, e)
                r = (e != "llama.cpp" && ref > 0) ? sprintf("%6.2f", m / ref) : "      "
                printf "| %-26s | %7s | %-11s | %-17s | %8.2f | %8.2f | %8.2f ± %6.2f | %6s |\n", p[1], p[2], p[3], e,
                       m, best(k, e), mean(k, e), sd(k, e), r
            }
        }
        printf "\n| %-26s | %7s | %-17s | %9s | %12s |\n", "model", "threads", "engine", "RSS MiB", "RssAnon MiB"
        printf "| %-26s | %7s | %-17s | %9s | %12s |\n", "--------------------------", "------:", ":----------------", "--------:", "-----------:"
        for (i = 1; i <= n; i++) {
            split(order[i], p, SUBSEP); k = p[1] SUBSEP p[2]
            if (k in done) continue; done[k] = 1
            ne = split(reng[k], el, " ")
            for (j = 1; j <= ne; j++)
                printf "| %-26s | %7s | %-17s | %9.1f | %12.1f |\n", p[1], p[2], el[j], rss[k, el[j]], anon[k, el[j]]
        }
    }' "$SAMPLES"
