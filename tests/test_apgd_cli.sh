#!/usr/bin/env bash
# robustcv attack --attack apgd-ce | apgd-dlr | apgd-t on a briefly trained smallcnn: APGD-CE (100
# steps) leaves at most the robust accuracy PGD (10 steps, same eps) leaves on the same images;
# results.json carries the settings and agrees with the printed numbers; the attack's own robust
# count equals the re-predicted adversarial accuracy; perturbations within eps; bad arguments give a
# message naming the value and a non-zero exit.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_apgd_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
has() { grep -q -- "$2" "$1" || { echo "--- $1:"; cat "$1"; return 1; }; }
num() { python3 -c "import json; print(json.load(open('$1'))['$2'])"; }

"$BIN" train --model smallcnn --epochs 2 --batch 50 --subset 1000 --lr 0.02 --threads 2 --quiet --out "$T/m" ||
  { echo "FAIL: training the model to attack"; exit 1; }
CK=$T/m/last.safetensors
# one thread: the attacks are small, and a second thread only waits on a shared machine
A=(--checkpoint "$CK" --limit 64 --batch 64 --threads 1 --eps 0.05)

ok "$BIN" attack "${A[@]}" --attack pgd --out "$T/pgd" > "$T/pgd.txt" 2>/dev/null
ok "$BIN" attack "${A[@]}" --attack apgd-ce --out "$T/ce" > "$T/ce.txt" 2>/dev/null
ok "$BIN" attack "${A[@]}" --attack apgd-t --steps 20 --n-target-classes 3 --out "$T/t" > "$T/t.txt" 2>/dev/null
ok "$BIN" attack "${A[@]}" --attack apgd-dlr --norm l2 --eps 1.0 --steps 20 --out "$T/l2" > "$T/l2.txt" 2>/dev/null
p=$(num "$T/pgd/results.json" adversarial_accuracy); c=$(num "$T/ce/results.json" adversarial_accuracy)
echo "clean $(num "$T/ce/results.json" clean_accuracy), pgd (10 steps) $p, apgd-ce (100 steps) $c," \
  "apgd-t (20 steps, 3 targets) $(num "$T/t/results.json" adversarial_accuracy)," \
  "apgd-dlr l2 eps 1 (20 steps) $(num "$T/l2/results.json" adversarial_accuracy); apgd-ce $(num "$T/ce/results.json" seconds) s"
ok python3 -c "import sys; sys.exit(not ($c <= $p))"
ok python3 -c "import sys; sys.exit(not ($p < $(num "$T/ce/results.json" clean_accuracy)))"
for r in ce t l2; do
  # the attack's own robust count is the re-predicted adversarial accuracy; bounds; settings recorded
  ok python3 -c "import json,sys; r=json.load(open('$T/$r/results.json')); sys.exit(not (r['robust_accuracy']==r['adversarial_accuracy']))"
done
ok python3 -c "import json,sys; r=json.load(open('$T/ce/results.json')); sys.exit(not (r['max_linf']<=0.05+1e-6 and r['steps']==100 and r['restarts']==1 and r['rho']==0.75 and r['norm']=='linf' and r['eot_iter']==1))"
ok python3 -c "import json,sys; r=json.load(open('$T/t/results.json')); sys.exit(not (r['n_target_classes']==3 and r['steps']==20 and r['attack']=='apgd-t'))"
ok python3 -c "import json,sys; r=json.load(open('$T/l2/results.json')); sys.exit(not (r['norm']=='l2' and r['eps']==1.0))"
acc=$(sed -n 's/^robust accuracy *\([0-9.]*\).*/\1/p' "$T/ce.txt")
ok python3 -c "import json,sys; r=json.load(open('$T/ce/results.json')); sys.exit(abs(r['robust_accuracy']-$acc)>1e-4)"

# bad arguments
"$BIN" attack "${A[@]}" --attack apgd-ce --eps -1 > /dev/null 2> "$T/e1.txt"; ok test $? -eq 2
ok has "$T/e1.txt" "--eps -1, expected a finite value >= 0"
"$BIN" attack "${A[@]}" --attack apgd-ce --norm l3 > /dev/null 2> "$T/e2.txt"; ok test $? -eq 2
ok has "$T/e2.txt" "--norm 'l3', expected linf or l2"
"$BIN" attack "${A[@]}" --attack apgd-t --n-target-classes 10 > /dev/null 2> "$T/e3.txt"; ok test $? -eq 1
ok has "$T/e3.txt" "--n-target-classes 10: the model has 10 classes, expected 1..9"
"$BIN" attack "${A[@]}" --attack apgd-ce --rho 1.5 > /dev/null 2> "$T/e4.txt"; ok test $? -eq 2
ok has "$T/e4.txt" "--rho 1.5"
"$BIN" attack "${A[@]}" --attack apgd-dlr --eot-iter 0 > /dev/null 2> "$T/e5.txt"; ok test $? -eq 2
ok has "$T/e5.txt" "--eot-iter 0"
"$BIN" attack "${A[@]}" --attack apgd-ce --target 3 > /dev/null 2> "$T/e6.txt"; ok test $? -eq 2
ok has "$T/e6.txt" "apgd-ce is untargeted"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
