#!/usr/bin/env bash
# --precision bf16 where oneDNN has no native bf16 (AVX512-BF16 or AMX; forced here with
# ONEDNN_MAX_CPU_ISA=AVX2, the lowest x86 tier): training says so in exactly one line and runs
# the fp32 run itself (same seed: the same checkpoint, byte for byte, and the same metrics as
# --precision fp32), and oneDNN's verbose log shows no bf16 primitive (no emulated bf16 kernels).
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_bf16.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
strip() { sed -E 's/, "train_seconds": [0-9.]+, "images_per_second": [0-9.]+//' "$1"; }
export ONEDNN_MAX_CPU_ISA=AVX2
ARGS=(--data fashion-mnist --model smallcnn --epochs 1 --batch 64 --subset 512 --seed 5 --threads 2 --quiet)

"$BIN" train "${ARGS[@]}" --precision fp32 --out "$T/fp32" 2> "$T/fp32.err" || { echo "FAIL: fp32 run"; exit 1; }
ONEDNN_VERBOSE=1 "$BIN" train "${ARGS[@]}" --precision bf16 --out "$T/bf16" > "$T/bf16.log" 2> "$T/bf16.err" ||
  { echo "FAIL: bf16 run"; cat "$T/bf16.err"; exit 1; }

# One notice, and nothing else on stderr (the fp32 run has nothing there).
ok test ! -s "$T/fp32.err"
ok test "$(wc -l < "$T/bf16.err")" -eq 1
ok grep -q "precision bf16 is not available .*; using fp32" "$T/bf16.err"
ok cmp "$T/fp32/last.safetensors" "$T/bf16/last.safetensors"
ok diff <(strip "$T/fp32/metrics.jsonl") <(strip "$T/bf16/metrics.jsonl")
# The log holds the run's convolutions, none of them on bf16 data.
ok grep -q '^onednn_verbose,exec,cpu,convolution,' "$T/bf16.log"
ok test "$(grep '^onednn_verbose,exec,' "$T/bf16.log" | grep -c bf16)" -eq 0
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
