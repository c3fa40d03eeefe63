#!/usr/bin/env bash
# AutoAttack from the command line against torchattacks 3.5.1 on the same weights and images
# (tests/oracle/aa_ref.py: APGD-CE -> APGD-T -> FAB-T -> Square at the reference's defaults, each
# on the points still robust): robust accuracy within 1 point on AA_N Fashion-MNIST test images
# (default 1000). Then robustcv evaluate: AutoAttack is never above PGD on the same images, for
# each model and for the ensemble attacked as one model; the model cards carry the evaluated
# numbers; the JSON agrees with the table; bad arguments are refused by name.
set -u
BIN=${RCV_BIN:-build/robustcv}
PY=/usr/bin/python3
N=${AA_N:-1000}
EPS=${AA_EPS:-0.1}
T=$(mktemp -d /tmp/rcv_aa.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
has() { grep -q -- "$2" "$1" || { echo "--- $1:"; cat "$1"; return 1; }; }

"$BIN" train --model smallcnn --epochs 1 --subset 6000 --batch 128 --lr 0.05 --seed 1 --threads 2 --quiet --out "$T/a" &&
"$BIN" train --model smallcnn --epochs 1 --subset 6000 --batch 128 --lr 0.05 --seed 2 --threads 2 --quiet --out "$T/b" ||
  { echo "FAIL: training the models to attack"; exit 1; }
A=$T/a/last.safetensors; B=$T/b/last.safetensors

# --- ours vs torchattacks: the whole standard sequence ---
"$BIN" attack --checkpoint "$A" --attack autoattack --eps "$EPS" --limit "$N" --batch 500 --out "$T/aa" > "$T/aa.txt" 2> "$T/aa.err"
ok test $? -eq 0
ours=$($PY -c "import json; print(json.load(open('$T/aa/results.json'))['adversarial_accuracy'])")
ours_s=$($PY -c "import json; print('%.1f' % json.load(open('$T/aa/results.json'))['seconds'])")
if $PY tests/oracle/aa_ref.py "$A" --attack autoattack --norm Linf --eps "$EPS" --n "$N" --batch 500 > "$T/ref.txt" 2> "$T/ref.err"; then
  ref=$(sed -n 's/^robust_acc //p' "$T/ref.txt")
  echo "AutoAttack robust accuracy on $N images, eps $EPS: ours $ours ($ours_s s), torchattacks $ref ($(sed -n 's/^seconds //p' "$T/ref.txt") s)"
  ok $PY -c "import sys; sys.exit(abs($ours - $ref) > 0.01)"
else
  rc=$?; [ $rc -eq 77 ] && echo "skip: torch/torchattacks missing" || { echo "FAIL: aa_ref.py exited $rc"; cat "$T/ref.err"; fail=$((fail+1)); }
fi
# the per-attack trace is printed and results.json has it
ok has "$T/aa.err" "robust accuracy after apgd-ce"
ok $PY -c "import json,sys; r=json.load(open('$T/aa/results.json')); a=r['after']; sys.exit(not (list(a)==['apgd-ce','apgd-t','fab-t','square'] and a['square']==r['adversarial_accuracy'] and r['max_linf']<=$EPS+1e-6))"

# --- evaluate: AutoAttack beside PGD, members and the ensemble; cards ---
"$BIN" evaluate "$A" "$B" --limit 300 --autoattack 200 --aa-eps "$EPS" --pgd-eps "$EPS" --noise none --fgsm-eps none \
  --symmetries 0 --transfer 0 --uap 0 --corruptions 0 --denoise 0 --cards "$T/cards" --json "$T/ev.json" > "$T/ev.txt" 2> "$T/ev.err"
ok test $? -eq 0
ok $PY - "$T/ev.json" "$T/cards" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
rows = [m["autoattack"][0] for m in r["models"]] + [r["ensemble_autoattack"][0]]
bad = [x for x in rows if not (x["autoattack"] <= x["pgd"] + 1e-9 and x["pgd"] <= x["clean"] + 1e-9 and x["images"] == 200)]
for x in rows: print("clean %.3f pgd %.3f autoattack %.3f" % (x["clean"], x["pgd"], x["autoattack"]))
card = json.load(open(sys.argv[2] + "/a.card.json"))
card_b = json.load(open(sys.argv[2] + "/b.card.json"))
m0 = r["models"][0]
ok = (not bad and card["autoattack_acc"] == "%.2f" % (100 * m0["autoattack"][0]["autoattack"])
      and card["clean_acc"] == "%.2f" % (100 * m0["sets"]["clean"]["top1"]) and card["threat_model"] == "Linf"
      and card["number_forward_passes"] == 1 and card["architecture"] == "smallcnn" and card["name"] == "a"
      and card_b["autoattack_acc"] == "%.2f" % (100 * r["models"][1]["autoattack"][0]["autoattack"]))
sys.exit(0 if ok else 1)
PYEOF

# --- bad arguments ---
"$BIN" attack --checkpoint "$A" --attack autoattack --eps -1 --limit 8 > /dev/null 2> "$T/e1.txt"; ok test $? -ne 0
ok has "$T/e1.txt" "eps -1"
"$BIN" attack --checkpoint "$A" --attack autoattack --norm l3 --limit 8 > /dev/null 2> "$T/e2.txt"; ok test $? -eq 2
ok has "$T/e2.txt" "--norm 'l3'"
"$BIN" attack --checkpoint "$A" --attack autoattack --aa-attacks apgd-ce,nope --limit 8 > /dev/null 2> "$T/e3.txt"; ok test $? -ne 0
ok has "$T/e3.txt" "attack 'nope'"
"$BIN" attack --checkpoint "$A" --attack autoattack --version fast --limit 8 > /dev/null 2> "$T/e4.txt"; ok test $? -eq 2
ok has "$T/e4.txt" "--version 'fast'"
"$BIN" evaluate "$A" --autoattack -3 > /dev/null 2> "$T/e5.txt"; ok test $? -eq 2
ok has "$T/e5.txt" "--autoattack -3"
# refused before any evaluation runs (it once came after the whole suite); the suite's clean table
# on stdout is proof it ran
"$BIN" evaluate "$A" --aa-attacks apgd-ce,nope --limit 8 > "$T/o6.txt" 2> "$T/e6.txt"; ok test $? -eq 2
ok has "$T/e6.txt" "attack 'nope'"
ok test ! -s "$T/o6.txt"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
