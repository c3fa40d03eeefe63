#!/usr/bin/env bash
# `robustcv run --quick --device cuda` finishes the demo (three members trained with their
# recipes on the GPU, the suite with its attacks, AutoAttack, Grad-CAM, certification) and
# reaches the cpu run's accuracy: the same command on --device cpu is the oracle; each member's
# clean top-1 must be within 2 points (the runs differ only in float rounding: shuffling,
# dropout, augmentation, noise and PGD starts use the same Philox streams) and the members' PGD
# accuracy within 5 points (sign steps amplify rounding). Prints both runs' times.
# Without a GPU: checks the clear error and exit code 1, prints a SKIP line, exits 0.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_cuda_run.XXXXXX)
trap 'rm -rf "$T"' EXIT
# The device is checked while parsing, before anything else: without a GPU exit 1 and the reason;
# with one, the bad --limit that follows gives the usage error (exit 2).
"$BIN" run --quick --device cuda --limit -1 --out "$T/probe" 2>"$T/probe.err" >/dev/null
rc=$?
if [ $rc -ne 2 ]; then
  if [ $rc -eq 1 ] && grep -q "no CUDA device/driver: " "$T/probe.err"; then
    echo "SKIP: no CUDA device ($(sed 's/^robustcv: --device cuda: //' "$T/probe.err" | head -1))"
    exit 0
  fi
  echo "FAIL: run --device cuda --limit -1: exit $rc: $(cat "$T/probe.err")"; exit 1
fi
# fp32 on both (the run's default bf16 falls back to fp32 on a cpu without it: compare like with like);
# --no-timm on the cpu: --device cuda skips the timm model (cpu-only Mixup/CutMix and EMA)
t0=$(date +%s.%N)
"$BIN" run --quick --device cuda --precision fp32 --out "$T/gpu" >"$T/gpu.log" 2>&1 || { echo "FAIL: cuda run"; tail -20 "$T/gpu.log"; exit 1; }
t1=$(date +%s.%N)
"$BIN" run --quick --device cpu --precision fp32 --no-timm --out "$T/cpu" >"$T/cpu.log" 2>&1 || { echo "FAIL: cpu run"; tail -20 "$T/cpu.log"; exit 1; }
t2=$(date +%s.%N)
echo "run --quick: cuda $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", b-a}') s, cpu $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.0f", b-a}') s"
grep "^run: " "$T/gpu.log" | sed 's/^/cuda: /'
grep "^run: " "$T/cpu.log" | sed 's/^/cpu:  /'
${PY:-/usr/bin/python3} - "$T/cpu/results.json" "$T/gpu/results.json" <<'PYEOF'
import json, sys
c, g = (json.load(open(p)) for p in sys.argv[1:3])
bad = 0
for mc, mg in zip(c["models"], g["models"]):
    a, b = mc["clean"]["top1"], mg["clean"]["top1"]
    print("%-12s clean top-1 cpu %.4f cuda %.4f" % (mc["name"], a, b))
    bad |= abs(a - b) > 0.02
    for x, y in zip(mc["pgd"], mg["pgd"]):
        print("%-12s pgd eps %g top-1 cpu %.4f cuda %.4f" % (mc["name"], x["eps"], x["top1"], y["top1"]))
        bad |= abs(x["top1"] - y["top1"]) > 0.05
print("FAIL: accuracies differ too much" if bad else "ok")
sys.exit(bad)
PYEOF
