# lmpipe build. `make` builds ./lmpipe and build/liblmpipe.a; `make test` runs every Check suite
# and the conformance/CLI tests; `make demo` runs the real stories260K model; `make deps`
# installs the Debian packages when pkg-config cannot find them. SAN=1 builds everything with
# ASan+UBSan into build-san/.
SHARED ?= ../shared
CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := jansson libuv check
DEB_PKGS := libjansson-dev libuv1-dev check pkg-config

ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT ?= -O1
else
BUILD ?= build
SANFLAGS :=
OPT ?= -O2
endif

WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# _FILE_OFFSET_BITS=64: on 32-bit targets (armhf: Pi OS) off_t and ino_t are 64-bit, so a model
# file over 2 GiB opens and readdir does not fail with EOVERFLOW on a filesystem with large inodes.
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -D_FILE_OFFSET_BITS=64 -Isrc
CFLAGS ?= $(OPT) -g
ALL_CFLAGS = $(WARN) $(TARGET_CFLAGS) $(CFLAGS) $(SANFLAGS) $(ISA_FLAGS)
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags jansson libuv 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs jansson libuv 2>/dev/null)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
LDLIBS += -lm -lpthread

LIB_SRC := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
# ---- cross builds (.ci/cross, issue 4) ----
# TARGET_CFLAGS: the target's ISA flags (e.g. -march=armv8-a), before CFLAGS and before per-file
#   ISA_FLAGS so a kernel file's own -march still wins. EXTRA_LDFLAGS: extra link flags (-static).
# Per-ISA kernel files follow the compiler's target ($(CC) -dumpmachine): *_avx2.c, *_avxvnni.c
#   and *_avx512.c only for x86, *_neon.c only for arm/aarch64; riscv64 and others get the
#   scalar kernels only.
# RUNNER: prefix for running test binaries in check-unit (e.g. "timeout 900 qemu-aarch64 -cpu
#   cortex-a53"); RUN_BIN: what tests run as lmpipe (LMPIPE_BIN; cross: a qemu wrapper script).
CC_MACHINE := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(CC_MACHINE),)
ifeq ($(filter x86_64-% i386-% i486-% i586-% i686-%,$(CC_MACHINE)),)
LIB_SRC := $(filter-out %_avx2.c %_avxvnni.c %_avx512.c,$(LIB_SRC))
endif
ifeq ($(filter aarch64-% aarch64_be-% arm-% armv%,$(CC_MACHINE)),)
LIB_SRC := $(filter-out %_neon.c,$(LIB_SRC))
endif
endif
# gcc on riscv64 calls libatomic for 1- and 2-byte atomics (pool.c's atomic_bool)
ifneq ($(filter riscv%,$(CC_MACHINE)),)
LDLIBS += -latomic
endif
LDLIBS += $(EXTRA_LDFLAGS)
RUN_BIN = $(abspath $(BIN))
# ---- end cross builds ----
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BIN := $(if $(filter 1,$(SAN)),$(BUILD)/lmpipe,lmpipe)

# Per-file ISA flags: a user's CFLAGS never drops them. The x86 tiers are chosen at run time
# (kern_dispatch.c), so each file gets exactly its tier's extensions.
X86_AVX2_FLAGS := -mavx2 -mfma -mf16c
X86_AVXVNNI_FLAGS := -mavxvnni $(X86_AVX2_FLAGS)
X86_AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512vnni $(X86_AVX2_FLAGS)
$(BUILD)/src/kern/%_avx2.o: ISA_FLAGS := $(X86_AVX2_FLAGS)
$(BUILD)/src/kern/%_avxvnni.o: ISA_FLAGS := $(X86_AVXVNNI_FLAGS)
$(BUILD)/src/kern/%_avx512.o: ISA_FLAGS := $(X86_AVX512_FLAGS)
# aarch64 only (CC_MACHINE above): kern_neon_dotprod.c is built for armv8.2-a+dotprod inside any
# aarch64 build and chosen at run time only when HWCAP_ASIMDDP is set; elsewhere it is empty.
ifneq ($(filter aarch64-%,$(CC_MACHINE)),)
$(BUILD)/src/kern/%_dotprod.o: ISA_FLAGS := -march=armv8.2-a+dotprod
endif

.PHONY: all test check-unit check-cli demo deps bench bench-gram clean fuzz tests
all: $(BIN) $(BUILD)/liblmpipe.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# The built-in JSON grammar (response_format json_object, `run --json`) is grammars/json.gbnf
# itself, made a C string literal at build time (one source of truth); eng_gram.c includes it.
%/gen/json_gbnf.inc: grammars/json.gbnf
	@mkdir -p $(dir $@)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/' $< >$@.tmp
	mv $@.tmp $@
$(BUILD)/src/eng/eng_gram.o: $(BUILD)/gen/json_gbnf.inc
$(BUILD)/src/eng/eng_gram.o: CPPFLAGS += -I$(BUILD)/gen

$(BUILD)/liblmpipe.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# The command line: the subcommands in src/cli/ (their own archive, which the test binaries also
# link so they can run a command in-process) and src/main.c (the dispatch).
CLI_SRC := $(sort $(wildcard src/cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
CLI_LIB := $(BUILD)/liblmpipe_cli.a

$(CLI_LIB): $(CLI_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# Only the test binaries (cross builds run them elsewhere).
tests: $(TEST_BIN)

$(BIN): $(BUILD)/src/main.o $(CLI_LIB) $(BUILD)/liblmpipe.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(CLI_LIB) $(BUILD)/liblmpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(ALL_CFLAGS) $(PKG_CFLAGS) $(CHECK_CFLAGS) -o $@ $< \
	  $(CLI_LIB) $(BUILD)/liblmpipe.a $(CHECK_LIBS) $(PKG_LIBS) $(LDLIBS)

deps:
	@if $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null; then :; else \
	  echo "installing $(DEB_PKGS)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq || true; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS); \
	fi

# Unit suites, then the conformance and CLI tests that drive ./lmpipe.
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@$(MAKE) --no-print-directory check-unit check-cli

# Sanitized code runs 2-5x slower: Check's per-test time limits stretch with it (unless set).
CK_ENV := $(if $(filter 1,$(SAN)),CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-3})
check-unit: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; LMPIPE_SHARED=$(SHARED) LMPIPE_BIN=$(RUN_BIN) $(CK_ENV) $(RUNNER) $$t || fail=1; \
	done; exit $$fail

check-cli: $(BIN)
	@LMPIPE_SHARED=$(SHARED) LMPIPE_BIN=$(RUN_BIN) sh tests/cli_test.sh

demo: deps
	@$(MAKE) --no-print-directory all
	./$(BIN) info $(SHARED)/models/stories260K-F32.gguf
	./$(BIN) run -m $(SHARED)/models/stories260K-F32.gguf -p "Once upon a time" -n 120 --temp 0

clean:
	rm -rf build build-san build-clang build-fuzz lmpipe

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BUILD)/src/main.d

# ---- fuzz (GGUF harness owner: tests/fuzz/README.md) ----
# `make fuzz` builds every tests/fuzz/fuzz_*.c as a libFuzzer binary in build-fuzz/, against all
# library sources except src/rpc (only fuzz_rpc* harnesses add src/rpc and libuv; all link jansson).
# `make fuzz-smoke` runs each harness for FUZZ_SECONDS on a corpus generated at run time by
# tests/fuzz/seeds_<name>.c when it exists (a seed program gets the corpus directory and
# $(SHARED)/models/stories260K-*.gguf as extra seeds, LMPIPE_SHARED=$(SHARED) for fixtures and
# LMPIPE_SRC=. for protocol/). CI runs it with FUZZ_SECONDS=5. Needs clang with compiler-rt
# (Debian: libclang-rt-14-dev).
FUZZ_CC ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 10
FUZZ_MAX_LEN ?= 65536
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := $(WARN) -g -O1 $(FUZZ_SAN)
FUZZ_LIB_SRC := $(filter-out src/main.c src/rpc/%,$(LIB_SRC))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SEED_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(sort $(wildcard tests/fuzz/seeds_*.c)))
FUZZ_SEED_FILES := $(wildcard $(SHARED)/models/stories260K-*.gguf)
FUZZ_RPC_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(wildcard src/rpc/*.c))
FUZZ_RPC_BIN := $(filter $(FUZZ_BUILD)/fuzz_rpc%,$(FUZZ_BIN))
# eng's chat API and src/tmpl's values are jansson values, so every harness links jansson; the
# rpc ones all of PKG_LIBS.
FUZZ_LIBS = $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null)

.PHONY: fuzz-smoke clean-fuzz
fuzz: $(FUZZ_BIN) $(FUZZ_SEED_BIN)

# Library objects: coverage instrumentation without libFuzzer's main (fuzzer-no-link).
$(FUZZ_BUILD)/src/kern/%_avx2.o: ISA_FLAGS := $(X86_AVX2_FLAGS)
$(FUZZ_BUILD)/src/kern/%_avxvnni.o: ISA_FLAGS := $(X86_AVXVNNI_FLAGS)
$(FUZZ_BUILD)/src/kern/%_avx512.o: ISA_FLAGS := $(X86_AVX512_FLAGS)
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(ISA_FLAGS) $(PKG_CFLAGS) \
	  -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/src/eng/eng_gram.o: $(FUZZ_BUILD)/gen/json_gbnf.inc
$(FUZZ_BUILD)/src/eng/eng_gram.o: CPPFLAGS += -I$(FUZZ_BUILD)/gen

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -Itests $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< \
	  $(filter %.o,$^) $(FUZZ_LIBS) $(LDLIBS)
$(FUZZ_RPC_BIN): $(FUZZ_RPC_OBJ)
$(FUZZ_RPC_BIN): FUZZ_LIBS = $(PKG_LIBS)

# Seed generators are ordinary programs (they only use the header-only test builders).
$(FUZZ_BUILD)/seeds_%: tests/fuzz/seeds_%.c $(wildcard tests/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -Itests $(FUZZ_CFLAGS) -o $@ $< $(LDLIBS)

# ...except seeds_snapshot, which writes real snapshots with the library's own encoder.
$(FUZZ_BUILD)/seeds_snapshot: tests/fuzz/seeds_snapshot.c tests/fuzz/seed_io.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -Itests $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -o $@ $< $(filter %.o,$^) $(FUZZ_LIBS) $(LDLIBS)

fuzz-smoke: $(FUZZ_BIN) $(FUZZ_SEED_BIN)
	@for f in $(FUZZ_BIN); do \
	  n=$${f#$(FUZZ_BUILD)/fuzz_}; c=$(FUZZ_BUILD)/corpus/$$n; mkdir -p $$c || exit 1; \
	  if [ -x $(FUZZ_BUILD)/seeds_$$n ]; then \
	    LMPIPE_SHARED=$(SHARED) LMPIPE_SRC=. $(FUZZ_BUILD)/seeds_$$n $$c $(FUZZ_SEED_FILES) || exit 1; fi; \
	  echo "== $$f: $(FUZZ_SECONDS) s on $$c"; \
	  LMPIPE_SHARED=$(SHARED) $$f -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$n- $$c || exit 1; \
	done

clean-fuzz:
	rm -rf $(FUZZ_BUILD)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_RPC_OBJ:.o=.d)

# ---- bench-tmpl: what a chat template costs per request (tests/bench_tmpl.c: parse, building
# the variables and rendering a 20-message, 5-tool conversation with the largest shared
# templates; medians printed, nothing asserted) ----
.PHONY: bench-tmpl
bench-tmpl: $(BUILD)/tests/bench_tmpl
	@LMPIPE_SHARED=$(SHARED) $(BUILD)/tests/bench_tmpl

# ---- bench (owner: quantize/bench tools; the script is tests/bench.sh) ----
# `make bench` builds ./lmpipe, generates $(BENCH_DIR)/tinyllama-Q4_K_M.gguf and
# smollm2-135m-Q8_0.gguf with the hidden `lmpipe dev synth` when they are missing (random
# weights, real shapes; the folder is git-ignored), and benches each at 1 and 2 threads.
# PEER=/path/to/llama-bench also runs llama.cpp on the same files, alternating with ours, and
# prints both (median, best, mean ± sd) and the ratio of medians in one table, plus both peak RSS
# (PEER_COMMIT=<sha> names a peer built outside a git checkout). BENCH_P / BENCH_N / BENCH_R /
# BENCH_T ("1 2") tune it; BENCH_ISA ("auto") lists lmpipe kernel tiers to run side by side, e.g.
# BENCH_ISA="auto avx2"; BENCH_TESTS lists tests instead of BENCH_P/BENCH_N, with depths, e.g.
# BENCH_TESTS="pp64 pp512 tg64 tg64@d1024"; BENCH_FILES picks files.
BENCH_DIR ?= .cache/bench
BENCH_P ?= 64
BENCH_N ?= 32
BENCH_R ?= 5
BENCH_T ?= 1 2
BENCH_ISA ?= auto
BENCH_TESTS ?=
BENCH_FILES ?= tinyllama-Q4_K_M.gguf smollm2-135m-Q8_0.gguf
PEER ?=
PEER_COMMIT ?=

bench: $(BIN)
	@BENCH_DIR='$(BENCH_DIR)' BENCH_P='$(BENCH_P)' BENCH_N='$(BENCH_N)' BENCH_R='$(BENCH_R)' \
	  BENCH_T='$(BENCH_T)' BENCH_ISA='$(BENCH_ISA)' BENCH_TESTS='$(BENCH_TESTS)' BENCH_FILES='$(BENCH_FILES)' \
	  PEER='$(PEER)' PEER_COMMIT='$(PEER_COMMIT)' \
	  sh tests/bench.sh $(abspath $(BIN))
	@$(MAKE) --no-print-directory bench-grammar

# `make bench-grammar` (also the last part of `make bench`): what a grammar costs per generated
# token on a SmolLM2-135M-shape model with StarCoder's 49k vocabulary and a Qwen2.5-0.5B-shape
# one with Qwen2's 152k vocabulary (generated into BENCH_DIR), for json.gbnf and a tool-call
# schema, and what forced runs save on a 60-token tool call (tests/bench_grammar.sh).
# PEER_COMPLETION=/path/to/llama-completion measures llama.cpp on the same files in the same run.
# BENCH_GRAMMAR_R (rounds, 5), BENCH_GRAMMAR_N (tokens, 64), BENCH_GRAMMAR_T (threads, 1).
PEER_COMPLETION ?=
BENCH_GRAMMAR_R ?= 5
BENCH_GRAMMAR_N ?= 64
BENCH_GRAMMAR_T ?= 1
.PHONY: bench-grammar
bench-grammar: $(BIN)
	@BENCH_DIR='$(BENCH_DIR)' SHARED='$(SHARED)' PEER_COMPLETION='$(PEER_COMPLETION)' BENCH_GRAMMAR_R='$(BENCH_GRAMMAR_R)' \
	  BENCH_GRAMMAR_N='$(BENCH_GRAMMAR_N)' BENCH_GRAMMAR_T='$(BENCH_GRAMMAR_T)' sh tests/bench_grammar.sh $(abspath $(BIN))

# `make bench-gram` times the grammar matcher alone (tests/bench_gram.c, not a unit test): per
# token check, mask, forced and accept on the starcoder and qwen2 vocabularies walking tool-call
# JSON texts. BENCH_GRAM_ROUNDS sets the rounds.
BENCH_GRAM_ROUNDS ?= 5
bench-gram: $(BUILD)/tests/bench_gram
	@LMPIPE_SHARED=$(SHARED) $(BUILD)/tests/bench_gram $(BENCH_GRAM_ROUNDS)
# `make bench-tools PEER_SERVER=/path/to/llama-server`: one tool call (5 tools, tool_choice
# "required", prompt cached) through lmpipe and llama-server --jinja on the same model file
# (Qwen2.5-0.5B shape, Qwen2 vocabulary, cached in BENCH_DIR), side by side (tests/bench_tools.py;
# BENCH_TOOLS_T threads (2), BENCH_TOOLS_R rounds (10); CHOICE=exec and MODEL=... pass through).
PEER_SERVER ?=
.PHONY: bench-tools
bench-tools: $(BIN)
	@test -n '$(PEER_SERVER)' || { echo 'bench-tools: set PEER_SERVER=/path/to/llama-server'; exit 2; }
	@BENCH_DIR='$(BENCH_DIR)' BENCH_T='$(or $(BENCH_TOOLS_T),2)' python3 tests/bench_tools.py $(abspath $(BIN)) '$(PEER_SERVER)' '$(SHARED)' '$(or $(BENCH_TOOLS_R),10)'
# ---- end of bench ----
