#!/usr/bin/env bash
# Failed writes: a file-size limit (ulimit -f, EFBIG), a read-only run directory (EACCES), and,
# where tmpfs can be mounted, a full file system (ENOSPC) during a checkpoint, metrics or report
# write. Each gives an error naming the path and a non-zero exit, leaves the previous files
# byte-identical (cmp against copies) with no temporary file behind, and `--resume` then ends
# with the checkpoint, byte for byte, of an uninterrupted run (the oracle: tests/test_resume.sh
# shows resume reproduces it).
set -u
BIN=$(realpath "${RCV_BIN:-build/robustcv}")
T=$(mktemp -d /tmp/rcv_wfail.XXXXXX)
MNT=""
trap '[ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$T"' EXIT
chmod 755 "$T"
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
has() { grep -qF -- "$2" <<< "$1" || { echo "message was: $1" >&2; return 1; }; }
no_tmp() { test -z "$(find "$1" -name '*.tmp.*')"; }
strip() { sed -E 's/, "train_seconds": [0-9.]+, "images_per_second": [0-9.]+//' "$1"; }
ARGS=(--data fashion-mnist --model smallcnn --epochs 3 --batch 64 --subset 640 --lr 0.05 --schedule constant --seed 7 --threads 2 --quiet)

"$BIN" train "${ARGS[@]}" --out "$T/ref" || { echo "FAIL: reference run"; exit 1; }

# Runs the command as a user who cannot write root's 755 directories (root ignores permissions).
as_other() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi
}
make_readonly() { if [ "$(id -u)" -eq 0 ]; then chmod 755 "$1"; else chmod 555 "$1"; fi; }

# 1. File-size limit below the checkpoint's size: epoch 2's checkpoint write fails with EFBIG
#    (main() ignores SIGXFSZ, so the write returns an error instead of killing the program).
"$BIN" train "${ARGS[@]}" --epochs 1 --out "$T/a" || { echo "FAIL: first epoch"; exit 1; }
cp -a "$T/a" "$T/a0"
blocks=$(( $(stat -c %s "$T/a/last.safetensors") / 1024 - 1 ))
msg=$( (ulimit -f $blocks; exec "$BIN" train "${ARGS[@]}" --out "$T/a" --resume) 2>&1 ); rc=$?
ok test $rc -ne 0 -a $rc -lt 128
ok has "$msg" "$T/a/last.safetensors"
ok has "$msg" "File too large"
ok cmp "$T/a0/last.safetensors" "$T/a/last.safetensors"
ok no_tmp "$T/a"
# metrics.jsonl got epoch 2's line before the checkpoint (by design: resume drops it); the old
# lines are unchanged.
ok cmp -n "$(stat -c %s "$T/a0/metrics.jsonl")" "$T/a0/metrics.jsonl" "$T/a/metrics.jsonl"
"$BIN" train "${ARGS[@]}" --out "$T/a" --resume; ok test $? -eq 0
ok cmp "$T/ref/last.safetensors" "$T/a/last.safetensors"
ok diff <(strip "$T/ref/metrics.jsonl") <(strip "$T/a/metrics.jsonl")

# 2. Read-only run directory: the metrics line (written first) cannot be created.
"$BIN" train "${ARGS[@]}" --epochs 1 --out "$T/b" || { echo "FAIL: first epoch"; exit 1; }
cp -a "$T/b" "$T/b0"
make_readonly "$T/b"
msg=$(as_other "$BIN" train "${ARGS[@]}" --out "$T/b" --resume 2>&1); rc=$?
chmod 755 "$T/b"
ok test $rc -ne 0 -a $rc -lt 128
ok has "$msg" "$T/b/metrics.jsonl"
ok has "$msg" "Permission denied"
ok cmp "$T/b0/last.safetensors" "$T/b/last.safetensors"
ok cmp "$T/b0/metrics.jsonl" "$T/b/metrics.jsonl"
ok no_tmp "$T/b"
"$BIN" train "${ARGS[@]}" --out "$T/b" --resume; ok test $? -eq 0
ok cmp "$T/ref/last.safetensors" "$T/b/last.safetensors"

# 3. A full file system (tmpfs sized for one checkpoint and a half): the second checkpoint's
#    temporary file runs out of space beside the first. Needs mount (root with CAP_SYS_ADMIN).
ck=$(stat -c %s "$T/ref/last.safetensors")
mkdir -p "$T/c"
if mount -t tmpfs -o size=$(( ck * 3 / 2 / 4096 * 4096 + 16384 )) tmpfs "$T/c" 2> /dev/null; then
  MNT="$T/c"
  "$BIN" train "${ARGS[@]}" --epochs 1 --out "$T/c/run" || { echo "FAIL: first epoch on tmpfs"; exit 1; }
  cp -a "$T/c/run" "$T/c0"
  msg=$("$BIN" train "${ARGS[@]}" --out "$T/c/run" --resume 2>&1); rc=$?
  ok test $rc -ne 0 -a $rc -lt 128
  ok has "$msg" "$T/c/run/last.safetensors"
  ok has "$msg" "No space left on device"
  ok cmp "$T/c0/last.safetensors" "$T/c/run/last.safetensors"
  ok no_tmp "$T/c/run"
  cp -a "$T/c/run" "$T/c1"    # the disk is freed (here: the run moves), and the run resumes
  umount "$T/c"; MNT=""
  "$BIN" train "${ARGS[@]}" --out "$T/c1" --resume; ok test $? -eq 0
  ok cmp "$T/ref/last.safetensors" "$T/c1/last.safetensors"
else
  echo "note: cannot mount tmpfs here; the ENOSPC case is skipped (EFBIG and EACCES ran)"
fi

# 4. Report writes: report.html under a file-size limit, then a read-only run directory.
mkdir -p "$T/r"
printf '{"title": "write test", "models": [{"name": "m", "metrics_jsonl": "metrics.jsonl", "clean": {"top1": 0.5}}]}\n' \
  > "$T/r/results.json"
cp "$T/ref/metrics.jsonl" "$T/r/"
"$BIN" report "$T/r" > /dev/null || { echo "FAIL: first report"; exit 1; }
cp -a "$T/r" "$T/r0"
msg=$( (ulimit -f 1; exec "$BIN" report "$T/r") 2>&1 ); rc=$?
ok test $rc -ne 0 -a $rc -lt 128
ok has "$msg" "$T/r/"
ok has "$msg" "File too large"
ok diff -r "$T/r0" "$T/r"
make_readonly "$T/r"
msg=$(as_other "$BIN" report "$T/r" 2>&1); rc=$?
chmod 755 "$T/r"
ok test $rc -ne 0 -a $rc -lt 128
ok has "$msg" "$T/r/"
ok has "$msg" "Permission denied"
ok diff -r "$T/r0" "$T/r"
"$BIN" report "$T/r" > /dev/null; ok test $? -eq 0

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
