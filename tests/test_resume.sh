#!/usr/bin/env bash
# Resume after SIGKILL: a run killed mid-training and resumed with --resume ends
# with the same checkpoint, byte for byte, as the uninterrupted run (same seed,
# same threads), and no checkpoint on disk is ever half-written.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_resume.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
ARGS=(--data fashion-mnist --model smallcnn --epochs 4 --batch 64 --subset 1536 --lr 0.05 --seed 7 --threads 2 --quiet)

"$BIN" train "${ARGS[@]}" --out "$T/a" || { echo "FAIL: reference run"; exit 1; }

"$BIN" train "${ARGS[@]}" --out "$T/b" &
pid=$!
# Kill as soon as the first checkpoint exists, i.e. during epoch 2.
for i in $(seq 1 600); do
  [ -f "$T/b/last.safetensors" ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
ok test -f "$T/b/last.safetensors"
# What is on disk after the kill is a complete checkpoint that eval can load.
# Its --json names the checkpoint as a JSON string (quotes and backslashes escaped) and the
# accuracy the table prints.
cp "$T/b/last.safetensors" "$T/we\"ird\\name.safetensors"
ok "$BIN" eval --checkpoint "$T/we\"ird\\name.safetensors" --data fashion-mnist --batch 500 --threads 2 \
  --json "$T/eval_b.json" > "$T/eval_b.txt"
ok /usr/bin/python3 -c '
import json, re, sys
j = json.load(open(sys.argv[1]))
top1 = float(re.search(r"top-1 ([0-9.]+)%", open(sys.argv[2]).read()).group(1))
sys.exit(0 if j["checkpoint"].endswith("we\"ird\\name.safetensors") and abs(100 * j["top1"] - top1) < 0.01 else 1)' \
  "$T/eval_b.json" "$T/eval_b.txt"
# A run killed after writing an epoch's metrics line and before its checkpoint (train.c writes
# the line first) leaves a line past the checkpoint: resume drops it and redoes the epoch.
tail -1 "$T/a/metrics.jsonl" >> "$T/b/metrics.jsonl"
"$BIN" train "${ARGS[@]}" --out "$T/b" --resume || { echo "FAIL: resumed run"; exit 1; }

ok cmp "$T/a/last.safetensors" "$T/b/last.safetensors"
# Metric lines agree except for timings.
strip() { sed -E 's/, "train_seconds": [0-9.]+, "images_per_second": [0-9.]+//' "$1"; }
ok diff <(strip "$T/a/metrics.jsonl") <(strip "$T/b/metrics.jsonl")
ok test "$(wc -l < "$T/b/metrics.jsonl")" -eq 4
ok test -z "$(ls "$T/b" | grep -v -E '^(last.safetensors|metrics.jsonl)$')"

# A corrupt checkpoint is refused with a message naming it, and is not overwritten.
head -c 1000 "$T/a/last.safetensors" > "$T/trunc.safetensors"
msg=$("$BIN" eval --checkpoint "$T/trunc.safetensors" 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "trunc.safetensors" <<< "$msg"
mkdir -p "$T/c" && cp "$T/trunc.safetensors" "$T/c/last.safetensors"
"$BIN" train "${ARGS[@]}" --out "$T/c" --resume > /dev/null 2>&1; rc=$?
ok test $rc -ne 0
ok cmp "$T/trunc.safetensors" "$T/c/last.safetensors"

# Unknown model name: clear error, non-zero exit.
msg=$("$BIN" train --model resnet7 --out "$T/d" --quiet 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "resnet7" <<< "$msg"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
