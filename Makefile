# Two commands: `make demo` and `make test`. Both install what is missing first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench clean asan fuzz fuzz-build

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j 1

demo: deps
	@$(MAKE) --no-print-directory build
	bash scripts/demo.sh $(BUILD)/robustcv

bench: deps
	@$(MAKE) --no-print-directory build
	bash bench/run.sh $(BUILD)

# Tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DRCV_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 RCV_QUICK=1 ctest --output-on-failure -j 1

# libFuzzer targets (tests/fuzz/fuzz_*.c; clang + ASan + UBSan) in build-fuzz/, each run for
# FUZZ_SECONDS (FUZZ_TARGETS: a subset); crashes land in tests/fuzz/regress/<target>/. docs/fuzzing.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz-build: deps
	@test -f build-fuzz/CMakeCache.txt || CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRCV_FUZZ=ON -DRCV_CUDA=OFF -DRCV_WERROR=OFF > /dev/null
	cmake --build build-fuzz -j $(JOBS)

fuzz: fuzz-build
	bash tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-asan build-fuzz
