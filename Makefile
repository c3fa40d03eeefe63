# Two commands: `make demo` and `make test`. Both install what is missing first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench clean asan fuzz fuzz-build cross-check

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

# Tests under AddressSanitizer + UndefinedBehaviorSanitizer at quick sizes (RCV_QUICK=1), CPU build
# only (CUDA's runtime and ASan's shadow memory do not mix): ASAN_TESTS, the programs that parse
# untrusted input or own the kernels and data paths, plus every fuzz replay (fuzz_*: the fuzz corpus
# and its regression inputs) and the server. The long oracle comparisons (attacks, zoo, suite,
# AutoAttack, training runs) stay in `make test`'s release run: under ASan they take over an hour on
# 2 cores. ASAN_TESTS=. runs everything.
ASAN_TESTS ?= ^(fuzz_.*|test_limits_sh|test_write_fail_sh|test_serve_sh|test_safetensors|test_data|test_tinyimagenet|test_augment|test_policy|test_graph|test_ref_ops|test_ops|test_optim|test_metrics|test_smoothing|test_mix|test_classifier|test_box|test_corrupt|test_dist|test_nlmeans|test_report)$$
asan: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DRCV_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRCV_CUDA=OFF"
	cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		RCV_QUICK=1 ctest --output-on-failure -j 1 -R '$(ASAN_TESTS)'

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

# Every C source (the cuda backend aside) through aarch64-linux-gnu-gcc -fsyntax-only -Werror:
# installs the cross compiler when missing (scripts/cross_check.sh).
cross-check:
	bash scripts/cross_check.sh

clean:
	rm -rf build build-asan build-fuzz
