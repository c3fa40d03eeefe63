#!/usr/bin/env bash
# robustcv export --format onnx, checked by ONNX's checker and onnxruntime (tests/oracle/onnx_ref.py):
# zoo models (all of them with RCV_ONNX_ALL=1; see the list below) with random weights export, onnx.checker.check_model(full_check=True) accepts the file, and
# onnxruntime's outputs on random inputs at batch 1 and 3 match robustcv's within 1e-4. Then the
# bad-argument paths: each gives a clear message and a non-zero exit, and leaves no file behind.
# Exit 77 (a skip in ctest) when onnx / onnxruntime cannot be imported (scripts/deps.sh installs them).
set -u
BIN=${RCV_BIN:-build/robustcv}
HOOK=$(dirname "$BIN")/onnx_hook
PY=/usr/bin/python3
if ! $PY -c 'import onnx, onnxruntime, numpy' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 cannot import onnx and onnxruntime (scripts/deps.sh installs them)"; exit 77
fi
[ -x "$HOOK" ] || { echo "FAIL: $HOOK not built"; exit 1; }
# tmpfs when there is one: the VGG files are 0.5 GB each, and this test need not wait for a disk.
base=/tmp; [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
T=$(mktemp -d "$base/rcv_onnx.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=passive
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }

# model:C:H:W:classes:small_input:gamma[:opset]. Small inputs keep each model to seconds: the
# ResNets and DenseNets end at 1x1, and VGG's adaptive pool spreads its 1x1 map to 7x7 through the
# exporter's general (matmul) form. By default one model of each family and every op kind: the
# 1-channel stem, the ResNet-D geometric sums (gamma) with the small-input stem, the bottleneck with a
# box head, DenseNet's concatenations and transitions, VGG's adaptive pool, flatten and dropouts, the
# attention module's bilinear upsampling, sigmoid and mul, opset 13. RCV_ONNX_ALL=1: every zoo name
# (resnet152 with gamma 0.04278 is the seeds' ResNet-152D); ~30 min on this loaded 2-core VM, the
# VGGs' 0.5 GB files most of it.
cases=(
  smallcnn:1:28:28:10:0:0 smallcnn6+box:3:32:32:10:0:0:13 resnet18:3:16:16:10:1:0.5 resnet50+box:3:32:32:10:0:0
  densenet121:3:16:16:10:1:0 vgg11_bn:3:32:32:10:0:0 attention56:3:32:32:10:0:0
)
if [ "${RCV_ONNX_ALL:-0}" = 1 ]; then
  cases=(
    smallcnn:1:28:28:10:0:0 smallcnn6:3:32:32:10:0:0 smallcnn+box:3:32:32:10:0:0:13
    resnet18:3:32:32:10:0:0 resnet18:3:16:16:10:1:0.5 resnet18+box:3:32:32:10:0:0
    resnet34:3:32:32:10:0:0 resnet50:3:32:32:10:0:0 resnet101:3:32:32:10:0:0 resnet152:3:32:32:10:0:0.04278
    densenet121:3:32:32:10:0:0 densenet121+box:3:16:16:10:1:0 densenet169:3:32:32:10:0:0 densenet201:3:32:32:10:0:0
    vgg11_bn:3:32:32:10:0:0 vgg13_bn:3:16:16:10:1:0 vgg16_bn:3:32:32:10:0:0 vgg19_bn+box:3:32:32:10:0:0
    attention56:3:32:32:10:0:0 attention92:3:16:16:10:1:0
  )
fi
$PY tests/oracle/onnx_ref.py "$HOOK" "$BIN" "$T" "${cases[@]}"; rc=$?
[ $rc -eq 77 ] && exit 77
ok test $rc -eq 0

# Bad arguments: clear messages, non-zero exits, no output file.
"$HOOK" init smallcnn 1 28 28 10 0 0 1 "$T/s.safetensors" || { echo "FAIL: hook init"; exit 1; }
expect() { # exit-code, grep-pattern, args...
  local want=$1 pat=$2; shift 2
  "$BIN" export "$@" > "$T/out" 2> "$T/err"; local got=$?
  if [ $got -ne "$want" ] || ! grep -q -- "$pat" "$T/err"; then
    echo "FAIL: export $* -> exit $got (want $want), stderr: $(cat "$T/err")" >&2; fail=$((fail+1))
  else pass=$((pass+1)); fi
}
expect 2 "format 'tflite', expected onnx" --checkpoint "$T/s.safetensors" --format tflite --out "$T/x.onnx"
expect 2 "opset 12, expected 13..17" --checkpoint "$T/s.safetensors" --opset 12 --out "$T/x.onnx"
expect 2 "\-\-checkpoint FILE is required" --out "$T/x.onnx"
expect 2 "\-\-out FILE is required" --checkpoint "$T/s.safetensors"
expect 1 "$T/missing.safetensors" --checkpoint "$T/missing.safetensors" --out "$T/x.onnx"
printf 'not a checkpoint' > "$T/bad.safetensors"
expect 1 "$T/bad.safetensors" --checkpoint "$T/bad.safetensors" --out "$T/x.onnx"
expect 1 "$T/no/such/dir/x.onnx" --checkpoint "$T/s.safetensors" --out "$T/no/such/dir/x.onnx"
ok test ! -e "$T/x.onnx"
# --help names the defaults.
"$BIN" export --help > "$T/help" 2>&1
ok grep -q "default 17" "$T/help"

echo "test_onnx: $pass passed, $fail failed"
[ $fail -eq 0 ]
