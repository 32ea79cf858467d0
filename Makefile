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
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -Isrc
CFLAGS ?= $(OPT) -g
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) $(ISA_FLAGS)
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags jansson libuv 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs jansson libuv 2>/dev/null)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
LDLIBS += -lm -lpthread

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BIN := $(if $(filter 1,$(SAN)),$(BUILD)/lmpipe,lmpipe)

# Per-file ISA flags: a user's CFLAGS never drops them.
$(BUILD)/src/kern/%_avx2.o: ISA_FLAGS := -mavx2 -mfma -mf16c

.PHONY: all test check-unit check-cli demo deps bench clean fuzz
all: $(BIN) $(BUILD)/liblmpipe.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/liblmpipe.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(BUILD)/liblmpipe.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/src/main.o: src/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: tests/%.c tests/tutil.h $(BUILD)/liblmpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(ALL_CFLAGS) $(PKG_CFLAGS) $(CHECK_CFLAGS) -o $@ $< \
	  $(BUILD)/liblmpipe.a $(CHECK_LIBS) $(PKG_LIBS) $(LDLIBS)

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

check-unit: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; LMPIPE_SHARED=$(SHARED) LMPIPE_BIN=$(abspath $(BIN)) $$t || fail=1; \
	done; exit $$fail

check-cli: $(BIN)
	@LMPIPE_SHARED=$(SHARED) LMPIPE_BIN=$(abspath $(BIN)) sh tests/cli_test.sh

demo: deps
	@$(MAKE) --no-print-directory all
	./$(BIN) info $(SHARED)/models/stories260K-F32.gguf
	./$(BIN) run -m $(SHARED)/models/stories260K-F32.gguf -p "Once upon a time" -n 120 --temp 0

clean:
	rm -rf build build-san lmpipe

-include $(LIB_OBJ:.o=.d) $(BUILD)/src/main.d
