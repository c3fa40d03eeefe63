#!/usr/bin/env bash
# A short Fashion-MNIST training run on the GPU reaches the CPU run's accuracy: smallcnn,
# same seed, data subset and schedule on both backends; the GPU's test top-1 after 2 epochs
# must be within 2 points of the CPU's (the runs differ only in float rounding; dropout and
# shuffling use the same Philox streams). A bf16 run must also come within 3 points.
# Without a GPU: checks the clear error and exit code 1, prints a SKIP line, exits 0.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_cuda_train.XXXXXX)
trap 'rm -rf "$T"' EXIT
ARGS=(--data fashion-mnist --model smallcnn --epochs 2 --batch 64 --subset 4096 --lr 0.05 --seed 3 --quiet)
"$BIN" train "${ARGS[@]}" --device cuda --max-steps 1 --out "$T/probe" 2>"$T/probe.err"
rc=$?
if [ $rc -ne 0 ]; then
  if [ $rc -eq 1 ] && grep -q "no CUDA device/driver: " "$T/probe.err"; then
    echo "SKIP: no CUDA device ($(sed 's/^robustcv: --device cuda: //' "$T/probe.err" | head -1))"
    exit 0
  fi
  echo "FAIL: --device cuda failed (exit $rc) without the clear no-device message: $(cat "$T/probe.err")"
  exit 1
fi
top1() { sed -n 's/.*"test_top1": \([0-9.]*\).*/\1/p' "$1/metrics.jsonl" | tail -1; }
"$BIN" train "${ARGS[@]}" --device cpu --threads 2 --out "$T/cpu" || { echo "FAIL: cpu run"; exit 1; }
"$BIN" train "${ARGS[@]}" --device cuda --out "$T/gpu" || { echo "FAIL: cuda run"; exit 1; }
"$BIN" train "${ARGS[@]}" --device cuda --precision bf16 --out "$T/bf16" || { echo "FAIL: cuda bf16 run"; exit 1; }
c=$(top1 "$T/cpu"); g=$(top1 "$T/gpu"); b=$(top1 "$T/bf16")
echo "test top-1: cpu $c, cuda fp32 $g, cuda bf16 $b"
# The GPU checkpoint loads and evaluates on the CPU to the same accuracy (device -> host sync).
e=$("$BIN" eval --checkpoint "$T/gpu/last.safetensors" --data fashion-mnist --batch 500 --threads 2 2>&1 | grep -o 'top-1 [0-9.]*%' | head -1)
echo "cuda checkpoint evaluated on cpu: $e"
awk -v c="$c" -v g="$g" -v b="$b" 'BEGIN { d = c - g; if (d < 0) d = -d; e = c - b; if (e < 0) e = -e;
  if (c == "" || g == "" || d > 0.02 || e > 0.03) { print "FAIL: accuracies differ too much"; exit 1 } }' || exit 1
echo "ok"
