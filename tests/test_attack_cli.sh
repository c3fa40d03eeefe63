#!/usr/bin/env bash
# robustcv attack from the command line: results.json and PNGs are written and agree with the
# printed numbers; FGSM at eps 0 changes nothing (adversarial = clean accuracy, fooling rate 0);
# a stability, a trades and a noise run resumed after epoch 1 end bit for bit where the uninterrupted
# ones do; bad input (trades / noise settings too) gives a message naming the value and a non-zero
# exit.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_attack_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
has() { grep -q -- "$2" "$1" || { echo "--- $1:"; cat "$1"; return 1; }; }

"$BIN" train --model smallcnn --epochs 1 --batch 50 --subset 200 --lr 0.05 --threads 2 --quiet --out "$T/m" ||
  { echo "FAIL: training the model to attack"; exit 1; }
CK=$T/m/last.safetensors

ok "$BIN" attack --checkpoint "$CK" --attack fgsm --eps 0.1 --limit 64 --out "$T/a" --save-images 5 > "$T/a.txt" 2>/dev/null
ok test "$(ls "$T/a"/adv_*.png | wc -l)" -eq 5
ok has "$T/a/results.json" '"images":64'
# the printed adversarial accuracy is the one in results.json
acc=$(sed -n 's/^adversarial accuracy *\([0-9.]*\)/\1/p' "$T/a.txt")
ok python3 -c "import json,sys; r=json.load(open('$T/a/results.json')); sys.exit(abs(r['adversarial_accuracy']-$acc)>1e-4)"
# eps 0: nothing moves
ok "$BIN" attack --checkpoint "$CK" --attack fgsm --eps 0 --limit 64 --out "$T/z" > "$T/z.txt" 2>/dev/null
ok python3 -c "import json,sys; r=json.load(open('$T/z/results.json')); sys.exit(not (r['adversarial_accuracy']==r['clean_accuracy'] and r['fooling_rate']==0 and r['max_linf']==0))"

# a recipe run resumed after epoch 1 ends where the uninterrupted one does (recipe noise stream,
# dropout re-forward of the noisy view)
R=(--recipe stability --subset 100 --batch 50 --dropout 0.1 --seed 3 --threads 2 --quiet --schedule constant)
"$BIN" train "${R[@]}" --epochs 2 --out "$T/r1" && "$BIN" train "${R[@]}" --epochs 1 --out "$T/r2" &&
  "$BIN" train "${R[@]}" --epochs 2 --out "$T/r2" --resume
ok cmp "$T/r1/last.safetensors" "$T/r2/last.safetensors"

# trades and noise resumed after epoch 1 end where the uninterrupted runs do (their normals come
# from the step's rng)
for rec in "--recipe trades --trades-steps 2" "--recipe noise --noise-sigma 0.3"; do
  R=($rec --subset 100 --batch 50 --seed 5 --threads 2 --quiet --schedule constant)
  d=$T/$(echo "$rec" | cut -d' ' -f2)
  "$BIN" train "${R[@]}" --epochs 2 --out "$d.1" && "$BIN" train "${R[@]}" --epochs 1 --out "$d.2" &&
    "$BIN" train "${R[@]}" --epochs 2 --out "$d.2" --resume
  ok cmp "$d.1/last.safetensors" "$d.2/last.safetensors"
done
# bad trades / noise settings are refused by name before any data is read
for bad in "trades --trades-eps -1:--trades-eps -1, expected" "trades --trades-beta -2:--trades-beta -2, expected" \
           "trades --trades-steps -1:--trades-steps -1, expected" "noise --noise-sigma 0:--noise-sigma 0, expected"; do
  "$BIN" train --recipe ${bad%%:*} --quiet > /dev/null 2> "$T/e9.txt"; ok test $? -eq 2
  ok has "$T/e9.txt" "${bad#*:}"
done

# bad input
"$BIN" attack --checkpoint "$CK" --attack nope > /dev/null 2> "$T/e1.txt"; ok test $? -eq 2
ok has "$T/e1.txt" "--attack 'nope', expected one of"
"$BIN" attack --checkpoint "$T/missing.safetensors" > /dev/null 2> "$T/e2.txt"; ok test $? -eq 1
ok has "$T/e2.txt" "missing.safetensors"
"$BIN" attack --checkpoint "$CK" --target 12 --limit 8 > /dev/null 2> "$T/e3.txt"; ok test $? -eq 1
ok has "$T/e3.txt" "--target 12: the model has classes 0..9"
"$BIN" attack --checkpoint "$CK" --attack transfer > /dev/null 2> "$T/e4.txt"; ok test $? -eq 2
ok has "$T/e4.txt" "needs --source"
"$BIN" train --recipe bogus --quiet > /dev/null 2> "$T/e5.txt"; ok test $? -eq 2
ok has "$T/e5.txt" "--recipe 'bogus': expected standard"
# augment-curriculum: raw epochs, then the default seed-fce pipeline; a bad spec is refused by name.
"$BIN" train --recipe augment-curriculum --raw-epochs 1 --epochs 2 --subset 100 --batch 50 --quiet --out "$T/c" > /dev/null 2>&1; ok test $? -eq 0
"$BIN" train --recipe augment-curriculum --augment bogus --subset 100 --batch 50 --quiet --out "$T/c2" > /dev/null 2> "$T/e6.txt"; ok test $? -eq 1
ok has "$T/e6.txt" "unknown transform 'bogus'"
"$BIN" search --param nope=0:1 --trials 1 > /dev/null 2> "$T/e7.txt"; ok test $? -eq 2
ok has "$T/e7.txt" "unknown parameter 'nope'"
"$BIN" search --param lr=0:1:log --trials 1 > /dev/null 2> "$T/e8.txt"; ok test $? -eq 2
ok has "$T/e8.txt" "LO > 0 for log-uniform"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
