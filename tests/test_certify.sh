#!/usr/bin/env bash
# robustcv certify and predict --smooth from the command line: the TSV has certify.py's columns,
# one row per selected image (--limit / --skip), correct = (predict == label), abstentions at radius
# 0; every radius is sigma * Phi^-1(Clopper-Pearson lower bound) of some count 0..n (scipy); the
# printed and JSON certified accuracies equal those recomputed from the TSV; the same seed gives the
# same TSV; predict --smooth at a tiny sigma agrees with plain predict; bad arguments exit 2 with a
# message naming the value.
set -u
BIN=${RCV_BIN:-build/robustcv}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rcv_certify.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
has() { grep -q -- "$2" "$1" || { echo "--- $1:"; cat "$1"; return 1; }; }

"$BIN" train --model smallcnn --epochs 2 --batch 32 --subset 600 --lr 0.05 --threads 2 --quiet --out "$T/m" ||
  { echo "FAIL: training the base classifier"; exit 1; }
CK=$T/m/last.safetensors
C=(--checkpoint "$CK" --sigma 0.12 --n0 20 --n 300 --alpha 0.01 --batch 128 --limit 24 --skip 3 --threads 2)
ok "$BIN" certify "${C[@]}" --seed 5 --out "$T/a.tsv" --json "$T/a.json" > "$T/a.txt" 2>/dev/null
ok "$BIN" certify "${C[@]}" --seed 5 --out "$T/b.tsv" > /dev/null 2>&1
ok test "$(head -1 "$T/a.tsv")" = "$(printf 'idx\tlabel\tpredict\tradius\tcorrect\ttime')"
ok test "$(cut -f1 "$T/a.tsv" | tail -n +2 | tr '\n' ' ')" = "0 3 6 9 12 15 18 21 "
# the same seed, the same certificates (the time column aside)
ok cmp <(cut -f1-5 "$T/a.tsv") <(cut -f1-5 "$T/b.tsv")
cat > "$T/check.py" <<'PY'
import json, re, sys
tsv, txt, js = sys.argv[1:4]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)][1:]
err = []
for r in rows:
    idx, label, pred, radius, correct = int(r[0]), int(r[1]), int(r[2]), float(r[3]), int(r[4])
    if correct != int(pred == label): err.append(f"row {idx}: correct {correct}, predict {pred}, label {label}")
    if pred == -1 and radius != 0: err.append(f"row {idx}: abstained with radius {radius}")
radii = [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
acc = [sum(int(r[2]) == int(r[1]) and int(r[2]) >= 0 and float(r[3]) >= t for r in rows) / len(rows) for t in radii]
printed = [float(v) for v in re.findall(r"^\d\.\d\d\s+(\d\.\d+)$", open(txt).read(), re.M)]
if len(printed) != len(radii) or any(abs(a - b) > 5e-5 for a, b in zip(acc, printed)):
    err.append(f"printed {printed}, recomputed {acc}")
j = json.load(open(js))
if j["radii"] != radii or any(abs(a - b) > 1e-12 for a, b in zip(acc, j["certified_accuracy"])):
    err.append(f"json {j['certified_accuracy']}, recomputed {acc}")
if (j["images"], j["n"], j["n0"], j["sigma"], j["alpha"]) != (len(rows), 300, 20, 0.12, 0.01):
    err.append(f"json settings {j}")
try:
    import scipy.stats as st
    # every radius is sigma * Phi^-1(pA) with pA = Beta(alpha; k, n - k + 1) for a count k
    possible = [0.12 * st.norm.ppf(st.beta.ppf(0.01, k, 300 - k + 1)) for k in range(1, 301)]
    for r in rows:
        rad = float(r[3])
        if int(r[2]) >= 0 and min(abs(rad - p) for p in possible) > 1e-6 * max(rad, 1e-3):
            err.append(f"row {r[0]}: radius {rad} is no count's radius")
    print(f"{len(rows)} rows, certified accuracy {acc}, radii checked against scipy")
except ImportError:
    print("scipy missing: radii not checked")
for e in err: print("ERROR", e)
sys.exit(1 if err else 0)
PY
ok $PY "$T/check.py" "$T/a.tsv" "$T/a.txt" "$T/a.json"

# predict --smooth: at a tiny sigma the smoothed class is the plain top-1
"$BIN" attack --checkpoint "$CK" --attack noise --sigma 0 --limit 3 --out "$T/img" --save-images 3 > /dev/null 2>&1
IMGS=("$T"/img/adv_*.png)
ok test "${#IMGS[@]}" -eq 3
"$BIN" predict --checkpoint "$CK" --top 1 "${IMGS[@]}" > "$T/p.txt" 2>&1
"$BIN" predict --checkpoint "$CK" --smooth --sigma 0.0001 --n 200 --batch 64 "${IMGS[@]}" > "$T/s.txt" 2>&1
ok test "$(sed -n 's/.*(class \([0-9]*\)).*/\1/p' "$T/p.txt" | tr '\n' ' ')" = "$(sed -n 's/.*smoothed: .*(class \([0-9]*\);.*/\1/p' "$T/s.txt" | tr '\n' ' ')"
# a huge sigma: the model sees noise only, one class or an abstention per image, never a crash
ok "$BIN" predict --checkpoint "$CK" --smooth --sigma 5 --n 100 --batch 50 "${IMGS[0]}" > "$T/h.txt" 2>&1
ok has "$T/h.txt" "smoothed: "

# bad arguments
bad() { # expected message, then the arguments
  local msg=$1; shift
  "$BIN" "$@" > /dev/null 2> "$T/e.txt"; ok test $? -eq 2; ok has "$T/e.txt" "$msg"
}
bad "--sigma 0, expected" certify --checkpoint "$CK" --sigma 0 --out "$T/x.tsv"
bad "--sigma -1, expected" certify --checkpoint "$CK" --sigma -1 --out "$T/x.tsv"
bad "--n0 500, expected 0 < n0 <= n (--n 100)" certify --checkpoint "$CK" --sigma 0.25 --n0 500 --n 100 --out "$T/x.tsv"
bad "--n 0, expected > 0" certify --checkpoint "$CK" --sigma 0.25 --n 0 --out "$T/x.tsv"
bad "--alpha 0, expected 0 < alpha < 1" certify --checkpoint "$CK" --sigma 0.25 --alpha 0 --out "$T/x.tsv"
bad "--alpha 1.5, expected 0 < alpha < 1" certify --checkpoint "$CK" --sigma 0.25 --alpha 1.5 --out "$T/x.tsv"
bad "--batch 0, expected > 0" certify --checkpoint "$CK" --sigma 0.25 --batch 0 --out "$T/x.tsv"
bad "--skip 0" certify --checkpoint "$CK" --sigma 0.25 --skip 0 --out "$T/x.tsv"
bad "--sigma X and --out FILE.tsv are required" certify --checkpoint "$CK" --out "$T/x.tsv"
bad "--smooth needs --sigma" predict --checkpoint "$CK" --smooth "${IMGS[0]}"
bad "go with --smooth" predict --checkpoint "$CK" --sigma 0.25 "${IMGS[0]}"
bad "--alpha 2, expected" predict --checkpoint "$CK" --smooth --sigma 0.25 --alpha 2 "${IMGS[0]}"
ok test ! -e "$T/x.tsv"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
