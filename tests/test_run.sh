#!/usr/bin/env bash
# `robustcv run` end to end on the cpu, small (--quick, 1 epoch, the suite on the first 100 test
# images, AutoAttack's APGD-CE alone on 20, no certification), checked against what does not come
# from the run:
#  - the timm model (TrivialAugment + CutMix + EMA, issue 20) is evaluated with its EMA weights:
#    PyTorch on timm/ema.safetensors gives results.json's clean top-1 (within one image) and NLL
#    (1e-4), and the raw last.safetensors does not (its NLL differs: the check can tell them apart);
#    its metrics.jsonl logged the EMA (ema_test_top1) every epoch;
#  - its corruption errors (15 x 5 severities) equal `robustcv evaluate` of ema.safetensors alone on
#    the same images (the suite's corruptions are seeded per image, not per model);
#  - PGD and AutoAttack rows are there, AutoAttack never above PGD nor PGD above clean;
#  - the ensemble stays the three members: every ensemble subset has members 0-2 only (7 rows), the
#    ensemble attacked as one has 3 forward passes, and its clean accuracy on the AutoAttack images
#    equals PyTorch's softmax average of the three members' (the four models' is printed beside it);
#  - report.md lists the timm model in the models table with its recipe flags, in the leaderboard,
#    the corruption and AutoAttack tables, and not in the ensembles table;
#  - --no-timm re-run in the same directory (nothing retrained) has the three members alone.
set -u
BIN=${RCV_BIN:-build/robustcv}
PY=${PY:-/usr/bin/python3}
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ] && [ ! -f "$FM/t10k-images-idx3-ubyte" ]; then
  echo "SKIP: Fashion-MNIST not found in $FM"; exit 0
fi
T=$(mktemp -d /tmp/rcv_run.XXXXXX)
trap 'rm -rf "$T"' EXIT
N=100
AA=20
R=$T/run
"$BIN" run --quick --epochs 1 --limit $N --autoattack $AA --aa-attacks apgd-ce --certify 0 --threads 2 --out "$R" >"$T/run.log" 2>&1 ||
  { tail -30 "$T/run.log"; echo "FAIL: robustcv run"; exit 1; }
grep "^run: " "$T/run.log"
"$BIN" evaluate "$R/timm/ema.safetensors" --limit $N --noise none --fgsm-eps none --pgd-eps none --symmetries 0 \
  --transfer 0 --uap 0 --denoise 0 --autoattack 0 --threads 2 --json "$T/ema_eval.json" >"$T/eval.log" 2>&1 ||
  { cat "$T/eval.log"; echo "FAIL: robustcv evaluate"; exit 1; }

$PY - "$R" "$T/ema_eval.json" "$FM" $N $AA <<'PY'
import json, os, sys
run, ev_path, fm, n, n_aa = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
res = json.load(open(os.path.join(run, "results.json")))
ev = json.load(open(ev_path))["models"][0]
fail = passed = 0
def check(ok, what):
    global fail, passed
    print(("ok   " if ok else "FAIL ") + what)
    fail += not ok
    passed += ok

names = [m["name"] for m in res["models"]]
check(names == ["standard", "stability", "fgsm", "timm"], f"models {names}")
t = res["models"][3] if len(names) == 4 else {}
rec = t.get("recipe", "")
check(all(f in rec for f in ("trivialaugment", "--cutmix 1", "--ema 0.999", "--ema-warmup")), f"timm recipe '{rec}'")
check(t.get("checkpoint") == "timm/ema.safetensors", f"timm checkpoint {t.get('checkpoint')}")
log = [json.loads(l) for l in open(os.path.join(run, "timm/metrics.jsonl"))]
check(len(log) == 1 and all("ema_test_top1" in l for l in log), "timm/metrics.jsonl logs the EMA each epoch")

# Corruptions: the same errors as robustcv evaluate of the EMA checkpoint alone.
errs = t.get("corruptions", {}).get("errors", {})
check(len(errs) == 15, f"{len(errs)} corruptions")
worst = 0
for c, e in errs.items():
    for s, x in enumerate(e):
        worst = max(worst, abs(x - (1 - ev["sets"][f"corrupt:{c}:{s + 1}"]["top1"])))
check(worst < 1e-9, f"corruption errors = robustcv evaluate of ema.safetensors (max difference {worst:.2g})")
check(abs(t["clean"]["top1"] - ev["sets"]["clean"]["top1"]) < 1e-9, "clean top-1 = robustcv evaluate's")
# Attacks: rows present and ordered.
pgd, aa = t.get("pgd", []), t.get("autoattack", [])
check(len(pgd) == 1 and len(aa) == 1 and aa[0]["images"] == n_aa and list(aa[0]["after"]) == ["apgd-ce"],
      f"timm PGD and AutoAttack (--aa-attacks apgd-ce) rows ({len(pgd)}, {len(aa)})")
if aa:
    check(aa[0]["autoattack"] <= aa[0]["pgd"] + 1e-9 and aa[0]["pgd"] <= aa[0]["clean"] + 1e-9,
          f"timm AutoAttack {aa[0]['autoattack']:.3f} <= PGD {aa[0]['pgd']:.3f} <= clean {aa[0]['clean']:.3f}")
# The ensemble: members 0-2 only.
rows = res["ensembles"]["rows"]
check(len(rows) == 7 and all(max(r["members"]) <= 2 for r in rows), f"{len(rows)} ensemble subsets of members 0-2")
check(res.get("ensemble_members") == [0, 1, 2], f"ensemble_members {res.get('ensemble_members')}")
cards = {c["name"]: c for c in res["cards"]}
check("timm" in cards and cards["timm"]["recipe"] == rec and cards["timm"]["autoattack_acc"] is not None
      and cards["timm"]["corruptions_mce"] is not None, "timm's card: recipe, AutoAttack, mCE")
check(os.path.exists(os.path.join(run, "timm/card.json")), "timm/card.json written")
ens = [c for c in res["cards"] if c["name"].startswith("ensemble")]
check(len(ens) == 1 and ens[0]["number_forward_passes"] == 3, "the ensemble's card: 3 forward passes")

# PyTorch on the checkpoints.
sys.path.insert(0, "tests/oracle")
try:
    import numpy as np, torch, torch.nn.functional as F
    import compare_safetensors, idx_ref
    from resnet_ref import SMALLCNN, SMALLCNN6, SmallCNN
except ImportError as e:
    print(f"SKIP PyTorch checks: {e}")
    print(f"{passed} passed, {fail} failed")
    sys.exit(1 if fail else 0)
torch.set_num_threads(2)
def read_idx(name):
    p = os.path.join(fm, name)
    return idx_ref.read(p + ".gz" if os.path.exists(p + ".gz") else p)
img = np.frombuffer(read_idx("t10k-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
y = torch.from_numpy(np.frombuffer(read_idx("t10k-labels-idx1-ubyte"), np.uint8, offset=8)[:n].astype(np.int64))
x = torch.from_numpy(img.astype(np.float32) / 255)
def logits(path):
    arrays, meta = compare_safetensors.load(path)
    state = {k: torch.from_numpy(a.copy()) for k, a in arrays.items() if k.startswith(("conv", "bn", "fc"))}
    in_c, k = int(meta["robustcv.in_c"]), int(meta["robustcv.n_classes"])
    mean = torch.tensor([float(v) for v in meta["robustcv.mean"].split(",")][:in_c]).view(1, -1, 1, 1)
    std = torch.tensor([float(v) for v in meta["robustcv.std"].split(",")][:in_c]).view(1, -1, 1, 1)
    net = SmallCNN(in_c, k, cfg={"smallcnn": SMALLCNN, "smallcnn6": SMALLCNN6}[meta["robustcv.model"]])
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return net((x - mean) / std).double()
z_ema, z_last = logits(os.path.join(run, "timm/ema.safetensors")), logits(os.path.join(run, "timm/last.safetensors"))
top1 = (z_ema.argmax(1) == y).double().mean().item()
nll, nll_last = F.cross_entropy(z_ema, y).item(), F.cross_entropy(z_last, y).item()
check(abs(t["clean"]["top1"] - top1) <= 1 / n + 1e-9, f"timm clean top-1 {t['clean']['top1']:.4f}, PyTorch on ema.safetensors {top1:.4f}")
check(abs(t["clean"]["loss"] - nll) < 1e-4, f"timm clean NLL {t['clean']['loss']:.6f}, PyTorch on ema.safetensors {nll:.6f}")
check(abs(nll_last - nll) > 1e-3, f"the raw weights differ: NLL of last.safetensors {nll_last:.6f}")
zs = [logits(os.path.join(run, m, "last.safetensors")) for m in ("standard", "stability", "fgsm")]
for m, z in zip(("standard", "stability", "fgsm"), zs):
    a = (z.argmax(1) == y).double().mean().item()
    check(abs(res["models"][names.index(m)]["clean"]["top1"] - a) <= 1 / n + 1e-9, f"{m} clean top-1 = PyTorch's {a:.4f}")
ea = res.get("ensemble_autoattack", [{}])[0]
avg = lambda zz: (sum(z[:n_aa].softmax(1) for z in zz).argmax(1) == y[:n_aa]).double().mean().item()
e3, e4 = avg(zs), avg(zs + [z_ema])
check(abs(ea.get("clean", -1) - e3) <= 1 / n_aa + 1e-9,
      f"ensemble clean on the AutoAttack images {ea.get('clean', -1):.3f} = the three members' {e3:.3f} (four models: {e4:.3f})")
print(f"{passed} passed, {fail} failed")
sys.exit(1 if fail else 0)
PY
[ $? -eq 0 ] || { echo "FAIL: results.json"; exit 1; }

fail=0
ok() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
MD=$R/report.md
# the section between "## TITLE" and the next "## "
sec() { awk -v h="$1" 'index($0, "## ") == 1 { on = index($0, h) > 0; next } on' "$MD"; }
ok "report.md: timm in the models table with its recipe" "sec 'Models' | grep -q '| (4) | timm |.*--cutmix 1 --ema 0.999'"
ok "report.md: timm in the leaderboard with its recipe" "sec 'Leaderboard' | grep -q '| timm | smallcnn6 | standard --augment .*--cutmix 1'"
ok "report.md: (4) in the corruption table" "sec 'corruption' | grep -q '(4) CE'"
ok "report.md: timm in the AutoAttack table" "sec 'AutoAttack' | grep -q '| (4) timm |'"
ok "report.md: the ensemble attacked as one is the members'" "sec 'AutoAttack' | grep -q '| ensemble of (1), (2), (3) (attacked as one) |'"
ok "report.md: not in the ensembles table" "! sec 'Ensembles' | grep -q 'timm\|(4)'"

# --no-timm: the same directory, nothing trained again, three models (re-evaluated on 20 images).
"$BIN" run --quick --epochs 1 --limit 20 --autoattack 0 --certify 0 --threads 2 --no-timm --out "$R" >"$T/run2.log" 2>&1 ||
  { tail -30 "$T/run2.log"; echo "FAIL: robustcv run --no-timm"; exit 1; }
ok "--no-timm: nothing retrained" "! grep -q 'training model' '$T/run2.log'"
ok "--no-timm: three models, three cards" "$PY -c \"import json,sys; r=json.load(open('$R/results.json')); sys.exit(not ([m['name'] for m in r['models']]==['standard','stability','fgsm'] and [c['name'] for c in r['cards']]==['standard','stability','fgsm']))\""
ok "--no-timm: report.md without timm" "! grep -q 'timm' '$MD'"
ok "--help names --no-timm" "'$BIN' run --help 2>&1 | grep -q -- '--no-timm'"
[ $fail -eq 0 ] && echo "ok" || { echo "FAIL"; exit 1; }
