#!/usr/bin/env bash
# robustcv evaluate (the robustness suite, src/eval/suite.c) against PyTorch on the same weights
# (tests/oracle/suite_ref.py): a smallcnn6 trained here for one epoch on 2000 Fashion-MNIST images,
# the first 300 test images. Clean top-1 / top-5 / NLL and ECE, each of the 8 symmetries, TTA over
# them, white-box FGSM and the NL-means denoised set (OpenCV) must agree: NLL within 1e-4, ECE
# within 1e-3, accuracies within one image (FGSM and denoised: within three, for gradient signs
# and pixels that round the other way).
set -u
BIN=${RCV_BIN:-build/robustcv}
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ] && [ ! -f "$FM/t10k-images-idx3-ubyte" ]; then
  echo "SKIP: Fashion-MNIST not found in $FM"; exit 0
fi
T=$(mktemp -d /tmp/rcv_suite.XXXXXX)
trap 'rm -rf "$T"' EXIT
N=300

"$BIN" train --model smallcnn6 --epochs 1 --batch 50 --subset 2000 --lr 0.05 --threads 2 --quiet --out "$T/m" ||
  { echo "FAIL: training the model"; exit 1; }
CK=$T/m/last.safetensors
"$BIN" evaluate "$CK" --limit $N --noise none --fgsm-eps 0.02,0.05 --pgd-eps none --transfer 0 --uap 0 \
  --threads 2 --json "$T/ours.json" > "$T/ours.txt" 2>&1 || { cat "$T/ours.txt"; echo "FAIL: robustcv evaluate"; exit 1; }
/usr/bin/python3 tests/oracle/suite_ref.py "$CK" "$FM" $N 0.02,0.05 "$T/ref.json"
rc=$?
if [ $rc -eq 77 ] || [ $rc -eq 127 ]; then echo "SKIP: /usr/bin/python3 with torch is not available"; exit 0; fi
[ $rc -eq 0 ] || { echo "FAIL: tests/oracle/suite_ref.py exited $rc"; exit 1; }

/usr/bin/python3 - "$T/ours.json" "$T/ref.json" $N <<'PY'
import json, sys
ours, ref, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
m = ours["models"][0]
sets = m["sets"]
fail = passed = 0
def check(what, a, b, tol):
    global fail, passed
    ok = abs(a - b) <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {what:22s} ours {a:.6f} pytorch {b:.6f} (tolerance {tol:.2g})")
    fail += not ok
    passed += ok
one = 1 / n + 1e-9
for name, r in ref.items():
    if name not in sets:
        print(f"FAIL {name}: not in robustcv evaluate's JSON"); fail += 1; continue
    images = 3 * one if name.startswith(("fgsm", "denoised")) else one
    check(name + " top-1", sets[name]["top1"], r["top1"], images)
    check(name + " top-5", sets[name]["top5"], r["top5"], images)
    if not name.startswith(("fgsm", "denoised")):
        check(name + " nll", sets[name]["nll"], r["nll"], 1e-4)
check("clean ece", m["ece"], ref["clean"]["ece"], 1e-3)
# the symmetries matter here: an upright-trained model is not right on rot90
assert sets["sym:1"]["top1"] < sets["clean"]["top1"] - 0.2, "sym:1 should cost accuracy"
# the Figure-2 transform table includes the automatic policies (their ops: tests/test_policy.c)
for t in ("autoaugment", "randaugment", "trivialaugment"):
    ok = 0 <= sets.get("transform:" + t, {}).get("top1", -1) <= 1
    print(f"{'ok  ' if ok else 'FAIL'} transform:{t} scored")
    fail += not ok
    passed += ok
print(f"{passed} passed, {fail} failed")
sys.exit(1 if fail else 0)
PY
