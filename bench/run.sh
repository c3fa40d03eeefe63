#!/usr/bin/env bash
# make bench: ours vs PyTorch (Debian python3-torch) on the same machine, shapes
# and thread count, measured in one run. Prints ours, peer and ratio per case, and
# peak memory (max RSS of the process) of both. The header names the CPU tier (model, flags,
# oneDNN's ISA); the training rows run at the CPU's own tier and at AVX2. A row the CPU cannot
# run (bf16 without AVX512-BF16 or AMX) prints "skipped: <why>", a failed row "failed: <error>",
# and the bench goes on (failed rows make it exit 1 at the end).
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-10}
export OMP_NUM_THREADS=$THREADS
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(env -u OMP_NUM_THREADS nproc) cores; threads $THREADS"
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { if [[ $flags == *" $1 "* ]]; then echo "$1"; else echo "no $1"; fi; }
echo "cpu flags: $(has avx2), $(has avx512f), $(has avx512_bf16), $(has amx_bf16)"
echo "training step (forward + backward + SGD momentum), images/s; peer = PyTorch $($PY -c 'import torch; print(torch.__version__)') fp32 NCHW"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
FAILED=0
# PyTorch's tier: its own kernels' (ATen's CPU capability) and its oneDNN's ISA, which oneDNN
# prints at its first primitive.
peer_isa() {
  local out
  out=$(env "${PEER[@]}" ONEDNN_VERBOSE=1 $PY -c 'import torch
torch.nn.functional.conv2d(torch.ones(8, 16, 16, 16), torch.ones(16, 16, 3, 3))
print("cap:" + torch.__config__.show().split("CPU capability usage: ")[1].split()[0])')
  echo "ATen $(sed -n 's/^cap://p' <<< "$out"), oneDNN $(sed -n 's/^onednn_verbose,info,cpu,isa://p' <<< "$out")"
}
run() { # label, model c h w classes batch steps [flags for ours]; the tier in TIER, OURS, PEER
  local label="[$TIER] $1" model=$2 c=$3 h=$4 w=$5 k=$6 b=$7 steps=$8 flags=${9:-}
  local ours peer om pm rc=0
  ours=$(env "${OURS[@]}" "$BUILD/bench_train" "$model" "$c" "$h" "$w" "$k" "$b" "$steps" $flags 2>"$T/ours.err") || rc=$?
  if [ $rc = 77 ]; then # a case this CPU cannot run (bf16 without AVX512-BF16 or AMX): the reason, and on
    printf "%-56s %s\n" "$label" "$(tail -1 "$T/ours.err")"
    return
  fi
  if [ $rc != 0 ] || ! peer=$(env "${PEER[@]}" $PY bench/peer_train.py "$model" "$c" "$h" "$w" "$k" "$b" "$steps" "$THREADS" 2>"$T/peer.err"); then
    printf "%-56s failed: %s\n" "$label" "$(tail -1 "$T/$([ $rc != 0 ] && echo ours || echo peer).err")"
    FAILED=$((FAILED + 1))
    return
  fi
  om=$(sed -n 's/peak_rss_mb //p' "$T/ours.err"); pm=$(sed -n 's/peak_rss_mb //p' "$T/peer.err")
  printf "%-56s %9s %9s %6.2fx %10s %10s\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')" "$om" "$pm"
}
# Each training row at two tiers: the CPU's own and AVX2, the lowest x86 tier we support, forced on
# both sides (ONEDNN_MAX_CPU_ISA for oneDNN; ATEN_CPU_CAPABILITY for PyTorch's own kernels).
for TIER in default avx2; do
  if [ $TIER = avx2 ]; then
    OURS=(ONEDNN_MAX_CPU_ISA=AVX2) PEER=(ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)
  else
    OURS=() PEER=()
  fi
  echo "tier $TIER: ours oneDNN $(env "${OURS[@]}" "$BUILD/bench_train" --isa); peer $(peer_isa)"
  printf "%-56s %9s %9s %7s %10s %10s\n" "case" "ours" "peer" "ratio" "ours MB" "peer MB"
  run "resnet18 3x64x64 200 cls b128 fp32" resnet18 3 64 64 200 128 "$STEPS"
  run "resnet18 3x64x64 200 cls b128 bf16 (vs fp32)" resnet18 3 64 64 200 128 "$STEPS" "- bf16"
  run "smallcnn 1x28x28 10 cls b128 fp32" smallcnn 1 28 28 10 128 "$((STEPS * 5))"
  run "smallcnn 1x28x28 10 cls b128 bf16 (vs fp32)" smallcnn 1 28 28 10 128 "$((STEPS * 5))" "- bf16"
  # The demo's model and input (scripts/demo.sh: robustcv run on Fashion-MNIST, batch 128).
  run "smallcnn6 1x28x28 10 cls b128 fp32" smallcnn6 1 28 28 10 128 "$((STEPS * 5))"
  run "smallcnn6 1x28x28 10 cls b128 bf16 (vs fp32)" smallcnn6 1 28 28 10 128 "$((STEPS * 5))" "- bf16"
done
# The portable build (RCV_NATIVE=OFF: x86-64-v3, our AVX-512 kernels picked at run time) against
# this native one, ours against ours at the default tier; built in PORTABLE (default build-avx2,
# `make test-avx2`'s) when missing. The two alternate, three runs each, to spread the machine's drift.
PORTABLE=${PORTABLE:-build-avx2}
if [ -x "$PORTABLE/bench_train" ] || { cmake -S . -B "$PORTABLE" -DCMAKE_BUILD_TYPE=Release -DRCV_NATIVE=OFF -DRCV_CUDA=OFF >/dev/null &&
  cmake --build "$PORTABLE" -j "$(env -u OMP_NUM_THREADS nproc)" --target bench_train >/dev/null; }; then
  med() { printf '%s\n' "$@" | sort -g | sed -n 2p; } # the median of three
  printf "%-56s %9s %9s %7s\n" "portable build vs native (ours, default tier)" "native" "portable" "ratio"
  for m in "smallcnn6 1 28 28 10 128 $((STEPS * 5))" "resnet18 3 64 64 200 128 $STEPS"; do
    nat=() por=()
    for i in 1 2 3; do
      nat+=("$("$BUILD/bench_train" $m 2>/dev/null)") por+=("$("$PORTABLE/bench_train" $m 2>/dev/null)")
    done
    printf "%-56s %9s %9s %6.2fx\n" "${m%% *} fp32 b128 (median of 3)" "$(med "${nat[@]}")" "$(med "${por[@]}")" \
      "$(awk -v a="$(med "${por[@]}")" -v b="$(med "${nat[@]}")" 'BEGIN{print a/b}')"
  done
fi
[ -x "$BUILD/bench_ops" ] && "$BUILD/bench_ops"
# Augmentation and NL-means (bench/bench_augment.c vs bench/peer_augment.py: OpenCV, torchvision).
if [ -x "$BUILD/bench_augment" ]; then
  printf "%-44s %10s %10s %7s\n" "case (augment / denoise)" "ours" "peer" "ratio"
  for nl in nlmeans nlmeans-seed; do
    ours=$(OMP_NUM_THREADS=1 "$BUILD/bench_augment" $nl 20 2>/dev/null)
    peer=$($PY bench/peer_augment.py $nl 5 2>/dev/null || echo nan)
    label="NL-means 64x64 ms/img, 1 thr ($([ $nl = nlmeans ] && echo 'tmpl 7/21' || echo 'seed 21/21'))"
    printf "%-44s %10s %10s %6.2fx\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print b/a}')"
  done
  ours=$(OMP_NUM_THREADS=2 "$BUILD/bench_augment" pipeline 20000 2>/dev/null)
  peer=$($PY bench/peer_augment.py pipeline 4000 2 2>/dev/null || echo nan)
  printf "%-44s %10s %10s %6.2fx\n" "flip+crop4+jitter+erase+norm img/s, 2 thr" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
fi
# Randomized smoothing's sampling loop, noisy forwards/s (bench/bench_certify.c vs bench/peer_certify.py).
[ -x "$BUILD/bench_certify" ] && THREADS=$THREADS bench/bench_certify.sh "$BUILD"
# The attacks' input gradient and APGD-CE (bench/bench_attack_grad.sh), then AutoAttack standard on
# 1000 Fashion-MNIST test images against torchattacks configured the same (bench/bench_autoattack.sh).
[ -x "$BUILD/bench_attack_grad" ] && THREADS=$THREADS bench/bench_attack_grad.sh "$BUILD"
THREADS=$THREADS bench/bench_autoattack.sh "$BUILD" || echo "bench_autoattack.sh failed"
# robustcv serve: requests/s and p50/p99 latency at 1 and 8 concurrent clients (bench/bench_serve.sh).
THREADS=$THREADS bench/bench_serve.sh "$BUILD" || echo "bench_serve.sh failed"
# Inference: ours in-process vs onnxruntime on our exported ONNX file, 2 threads (bench/bench_onnx.sh).
[ -x "$BUILD/bench_onnx" ] && THREADS=2 bench/bench_onnx.sh "$BUILD"
# The model zoo last: the slowest part.
[ -x "$BUILD/bench_models" ] && STEPS=${STEPS_MODELS:-3} bench/models.sh "$BUILD"
[ $FAILED = 0 ] || { echo "bench: $FAILED training rows failed"; exit 1; }
exit 0
