# shardlm — top-level build.
#   make            build libshardlm.a and the shardlm binary (build/)
#   make test       build and run every test (final line: "N passed, N failed")
#   make test SAN=1 the same under ASan+UBSan (build-san/)
#   make run        install what is missing, build, generate text from stories260K
#   make fuzz       build the libFuzzer targets (clang) into build-fuzz/
#   CC=clang make   build with clang

ifeq ($(origin CC),default)
CC := gcc
endif
# one job per CPU unless -j was given (a full build is ~50 s of compiling on one core)
ifeq (,$(filter -j% j%,$(MAKEFLAGS)))
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif
SAN ?= 0
BUILD ?= build
ifeq ($(SAN),1)
BUILD := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

OPT ?= -O2
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wvla \
               -Iinclude -Isrc -pthread -fno-strict-aliasing $(SANFLAGS)
CFLAGS += $(CFLAGS_BASE)
LDLIBS := -lcurl -lmicrohttpd -lgnutls -ljansson -lpcre2-8 -lutf8proc -lssl -lcrypto -lm -pthread
LDFLAGS += $(SANFLAGS)

LIB_SRC := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c tests/e2e/test_*.c))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_COMMON := $(BUILD)/tests/harness.o

LIB := $(BUILD)/libshardlm.a
BIN := $(BUILD)/shardlm

.PHONY: all test run fuzz clean deps
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA) -MMD -MP -c $< -o $@

# ISA variants of the kernels: compiled with their own flags, chosen at run time from cpuid.
ISA_AVX2 := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 $(ISA_AVX2)
$(BUILD)/src/compute/%_avx2.o build-fuzz/obj/src/compute/%_avx2.o: ISA := $(ISA_AVX2)
$(BUILD)/src/compute/%_avx512.o build-fuzz/obj/src/compute/%_avx512.o: ISA := $(ISA_AVX512)
$(BUILD)/src/compute/%_amx.o build-fuzz/obj/src/compute/%_amx.o: ISA := $(ISA_AVX512) -mamx-tile -mamx-int8 -mgfni

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/harness.o: tests/harness.c tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_COMMON) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP $< $(TEST_COMMON) $(LIB) -o $@ $(LDFLAGS) $(LDLIBS)

test: $(BIN) $(TEST_BIN)
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)

deps:
	@sh tools/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/run-default.sh $(BIN)

# libFuzzer targets: tests/fuzz/fuzz_NAME.c → build-fuzz/fuzz_NAME, linked with the library
# built by clang with coverage instrumentation and ASan+UBSan.
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -pthread -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined
FUZZ_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz: $(FUZZ_BIN)
.SECONDARY: $(FUZZ_OBJ)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(ISA) -MMD -MP -c $< -o $@
build-fuzz/libshardlm.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libshardlm.a
	clang $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer $< build-fuzz/libshardlm.a -o $@ $(LDLIBS)

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(FUZZ_OBJ:.o=.d) $(FUZZ_BIN:=.d)
