#!/usr/bin/env bash
# The GPU checks of issue 18 in one go, on a machine with an NVIDIA GPU (driver, CUDA toolkit with
# cuDNN in /usr/local/cuda, Debian's /usr/bin/python3 with torch + torchattacks for the bench):
#   1. configure + build with the cuda backend (build-gpu/, archs from nvidia-smi's compute capability)
#   2. the cuda tests: test_cuda_ops (every op vs ref, models vs cpu), test_cuda_attack (every attack
#      and recipe vs the cpu backend), test_cuda_train_sh (training accuracy vs cpu)
#   3. bench/bench_cuda.sh: ResNet-18/50 training img/s vs PyTorch (fp32 no TF32, bf16 autocast,
#      channels_last) and the PGD-7 adversarial training step vs torchattacks
#   4. the demo's quick job on the GPU, timed: `robustcv run --quick --device cuda` (OUT/demo_quick)
#   5. with --full: test_cuda_run_sh (the quick job on cuda and on cpu, accuracies compared, both
#      timed; the cpu run takes minutes) and the whole demo, `robustcv run --device cuda`
# Expected time on one H100/H200 with 16 cores (estimates, not measured): build 2-4 min, tests
# 1-2 min, bench 4-6 min, quick demo 2-4 min; --full adds 10-30 min.
# Everything goes to OUTDIR (default gpu_check_<date>): one log per stage and summary.txt.
# usage: bash scripts/gpu_check.sh [OUTDIR] [--full]      (JOBS=nproc by default)
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_$(date -u +%Y%m%dT%H%M%SZ)}
FULL=0; [ "${2:-}" = "--full" ] || [ "${1:-}" = "--full" ] && FULL=1
[ "${1:-}" = "--full" ] && OUT=gpu_check_$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
S=$OUT/summary.txt; : > "$S"
say() { echo "$*" | tee -a "$S"; }
stage() { # name command...: runs, logs, records time and exit code
  local name=$1; shift
  local t0=$(date +%s)
  "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  say "$(printf '%-18s exit %-3d %5d s   (%s)' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$OUT/$name.log")"
  return $rc
}
say "gpu_check $(date -u +%FT%TZ) on $(hostname): $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
say "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
JOBS=${JOBS:-$(nproc)}
stage build bash -c "cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DRCV_CUDA=ON ${cc:+-DRCV_CUDA_ARCHS=$cc} && cmake --build build-gpu -j$JOBS" ||
  { say "build failed: see $OUT/build.log"; exit 1; }
grep -q "cuda backend ON" "$OUT/build.log" || say "WARNING: the cuda backend was not built (see build.log)"
export OMP_WAIT_POLICY=passive
stage tests bash -c "cd build-gpu && ctest -R 'test_cuda_ops|test_cuda_attack|test_cuda_train_sh' --output-on-failure --timeout 600"
grep -E "tests passed|Passed|Failed|SKIP" "$OUT/tests.log" | sed 's/^/  /' | tee -a "$S"
# the tests' own measurements (cuda vs cpu differences, run --quick times)
for t in test_cuda_attack; do build-gpu/$t > "$OUT/$t.txt" 2>&1; done
sed 's/^/  /' "$OUT/test_cuda_attack.txt" | tee -a "$S" >/dev/null
stage bench bash bench/bench_cuda.sh build-gpu
sed 's/^/  /' "$OUT/bench.log" | tee -a "$S" >/dev/null
stage demo_quick build-gpu/robustcv run --quick --device cuda --out "$OUT/demo_quick"
grep "^run: " "$OUT/demo_quick.log" | sed 's/^/  /' | tee -a "$S"
if [ $FULL = 1 ]; then
  stage run_vs_cpu env RCV_BIN=build-gpu/robustcv bash tests/test_cuda_run.sh
  sed 's/^/  /' "$OUT/run_vs_cpu.log" | tee -a "$S" >/dev/null
  stage demo_cuda build-gpu/robustcv run --device cuda --out "$OUT/demo_cuda"
  grep "^run: " "$OUT/demo_cuda.log" | sed 's/^/  /' | tee -a "$S"
fi
say "done: $S"
