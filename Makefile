# Two commands: `make demo` and `make test`. Both install what is missing first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-avx2 demo bench clean asan fuzz fuzz-build cross-check

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

# The AVX2 tier on any machine: a portable build (RCV_NATIVE=OFF: -march=x86-64-v3, our AVX-512
# kernels chosen at run time only) in build-avx2/, its kernel, layout, model, inference and attack
# tests run with oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA, which caps our own SIMD too) and
# PyTorch's oracles at AVX2 (ATEN_CPU_CAPABILITY). An AVX-512 machine so checks what an AVX2-only
# one runs: nChw8c chains, oneDNN's AVX2 kernels, no Winograd, no bf16. The rest of the suite
# (data, I/O, serving, CLI runs) runs the same code at every tier and stays in `make test`.
AVX2_TESTS ?= ^(test_noref|test_ops|test_ref_ops|test_layout|test_graph|test_infer|test_input_grad|test_optim|test_models|test_nlmeans|test_attack|test_apgd|test_cw|test_bf16_fallback_sh)$$
test-avx2: deps
	@$(MAKE) --no-print-directory build BUILD=build-avx2 CMAKE_FLAGS="-DRCV_NATIVE=OFF -DRCV_CUDA=OFF"
	cd build-avx2 && ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 RCV_NOREF_TIERS=AVX2 \
		ctest --output-on-failure -j 1 -R '$(AVX2_TESTS)'

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

# Every C source (the cuda backend aside) compiled for aarch64 by Debian's cross compiler, -Werror
# (scripts/cross_check.sh; installs the cross compiler when missing).
cross-check:
	bash scripts/cross_check.sh

clean:
	rm -rf build build-asan build-avx2 build-fuzz
