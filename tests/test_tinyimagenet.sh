#!/usr/bin/env bash
# The CLI on a generated Tiny ImageNet tree (tests/oracle/make_tiny_imagenet.py): train
# end to end with --data tiny-imagenet:TREE, evaluate on val/ and on a Tiny-ImageNet-C tree,
# with image counts checked against the annotation files; the same checkpoint whatever the
# number of loader threads; a truncated JPEG stops training with its name, and skip-bad
# trains without it.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_tiny.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
if ! /usr/bin/python3 -c 'import PIL, numpy, torch' 2>/dev/null; then
  echo "skipping: /usr/bin/python3 with PIL, numpy and torch is needed to write the test tree"; exit 0
fi
/usr/bin/python3 tests/oracle/make_tiny_imagenet.py "$T/g" > /dev/null || { echo "FAIL: tree generator"; exit 1; }
export RCV_CACHE_DIR="$T/cache"
TINY="$T/g/tiny"

# ResNet-18 with the small-input stem, one epoch on 10 images (resnet18 at 64x64 is ~7 GFLOP
# per training image: a larger run would not fit the test budget on 2 cores).
"$BIN" train --data "tiny-imagenet:$TINY" --model resnet18 --small-input --epochs 1 --batch 10 --subset 10 \
  --lr 0.01 --threads 2 --out "$T/r18" 2> "$T/r18.log"; rc=$?
ok test $rc -eq 0
ok grep -q "10 train / 10 test images" "$T/r18.log"
ok test "$(wc -l < "$T/r18/metrics.jsonl")" -eq 1
ok grep -q '"epoch": 1, "step": 1,' "$T/r18/metrics.jsonl"
ok test "$(ls "$RCV_CACHE_DIR"/*.rcvpack | wc -l)" -eq 2   # train and val caches

# eval on val: 25 images, per-class counts as in val_annotations.txt, names from words.txt.
"$BIN" eval --checkpoint "$T/r18/last.safetensors" --data "tiny-imagenet:$TINY" --batch 10 --threads 2 > "$T/eval.txt"; rc=$?
ok test $rc -eq 0
ok grep -q ": 25 images" "$T/eval.txt"
want=$(cut -f2 "$TINY/val/val_annotations.txt" | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
got=$(grep '^thing' "$T/eval.txt" | awk '{print $(NF-1)}' | tr '\n' ' ')
ok test "$want" = "$got"
ok grep -q "^thing 4, object 4" "$T/eval.txt"

# Loader threads change nothing: byte-identical checkpoints (smallcnn, 2 epochs of 40 images).
A=(--data "tiny-imagenet:$TINY" --model smallcnn --batch 20 --lr 0.05 --seed 3 --threads 2 --quiet)
"$BIN" train "${A[@]}" --epochs 2 --subset 40 --loader-threads 0 --out "$T/l0" &&
  "$BIN" train "${A[@]}" --epochs 2 --subset 40 --loader-threads 3 --out "$T/l3"
ok cmp "$T/l0/last.safetensors" "$T/l3/last.safetensors"

# eval on Tiny-ImageNet-C fog, severity 3: 3 images per class.
"$BIN" eval --checkpoint "$T/l0/last.safetensors" --data "tiny-imagenet-c:$T/g/tinyc:fog:3" --batch 5 --threads 2 > "$T/evalc.txt"; rc=$?
ok test $rc -eq 0
ok grep -q ": 15 images" "$T/evalc.txt"
ok test "$(grep '^thing' "$T/evalc.txt" | awk '{print $(NF-1)}' | tr '\n' ' ')" = "3 3 3 3 3 "

# A truncated training JPEG: training refuses with the file's name; skip-bad trains on 99.
BAD="$TINY/train/n08996667/images/n08996667_4.JPEG"
truncate -s $(( $(stat -c %s "$BAD") * 2 / 3 )) "$BAD"
msg=$("$BIN" train "${A[@]}" --epochs 1 --max-steps 1 --out "$T/bad" 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "n08996667_4.JPEG" <<< "$msg"
ok grep -q "skip-bad" <<< "$msg"
msg=$("$BIN" train --data "tiny-imagenet:$TINY:skip-bad" --model smallcnn --epochs 1 --batch 20 --max-steps 1 \
  --threads 2 --out "$T/skip" 2>&1); rc=$?
ok test $rc -eq 0
ok grep -q "skipping .*n08996667_4.JPEG" <<< "$msg"
ok grep -q "99 train / 25 test images" <<< "$msg"

# Unknown source and Tiny-ImageNet-C as a training set: clear errors.
msg=$("$BIN" train --data "tiny-imagenet-c:$T/g/tinyc:fog:3" --out "$T/x" 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "only a test split" <<< "$msg"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
