#!/usr/bin/env bash
# robustcv serve end to end on two tiny Fashion-MNIST models (tests/oracle/serve_client.py):
# every Open Inference Protocol endpoint's JSON shape; infer on image files equals `robustcv
# predict` on the same files (top-5 classes and percentages); an FP32 tensor equals the image;
# the ensemble is the mean of its members' probabilities; explain / attack; 400 / 404 / 405 / 413
# with messages; 503 from a full queue; a concurrent load run (RCV_SERVE_LOAD_S seconds, default
# 30; 8 clients, zero failures, p50/p99 printed) and a malformed barrage, after which the server
# still answers; SIGTERM stops it with status 0; a checkpoint that does not load stops start-up
# naming the file; the page at / works in headless Chromium (tests/oracle/serve_page.py).
set -u
BIN=$(realpath "${RCV_BIN:-build/robustcv}")
ROOT=$(pwd)
LOAD_S=${RCV_SERVE_LOAD_S:-30}
T=$(mktemp -d /tmp/rcv_serve.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail=0
ok() { if "$@"; then :; else echo "FAIL: $*" >&2; fail=1; fi; }
export OMP_WAIT_POLICY=passive
PY=/usr/bin/python3

for s in 1 2; do
  "$BIN" train --model smallcnn --epochs 1 --batch 64 --subset 128 --seed $s --threads 1 --quiet --out "$T/r$s" >/dev/null ||
    { echo "FAIL: training model $s"; exit 1; }
  cp "$T/r$s/last.safetensors" "$T/m$s.safetensors"
done
# Test images: 5 Fashion-MNIST test images as gray PNGs, one as an RGB JPEG of another size
# (predict and serve convert and resize it the same way).
$PY - "$T" <<'PY' || { echo "FAIL: writing test images"; exit 1; }
import gzip, os, sys
from PIL import Image
t = sys.argv[1]
src = "/usr/share/datasets/fashion-mnist"
p = os.path.join(src, "t10k-images-idx3-ubyte")
raw = open(p, "rb").read() if os.path.exists(p) else gzip.open(p + ".gz").read()
for i in range(5):
    Image.frombytes("L", (28, 28), raw[16 + 784 * i:16 + 784 * (i + 1)]).save(f"{t}/img{i}.png")
Image.frombytes("L", (28, 28), raw[16 + 784 * 7:16 + 784 * 8]).convert("RGB").resize((40, 36)).save(f"{t}/img5.jpg", quality=90)
PY
IMGS=("$T"/img0.png "$T"/img1.png "$T"/img2.png "$T"/img3.png "$T"/img4.png "$T"/img5.jpg)
"$BIN" predict --checkpoint "$T/m1.safetensors" --threads 1 "${IMGS[@]}" > "$T/predict.txt" || { echo "FAIL: predict"; exit 1; }
echo "[${SECONDS}s] two models trained, predict run"

start() { # start LOG ARGS...: runs serve on a free port, sets PORT and PID
  local log=$1; shift
  "$BIN" serve --port 0 --threads 1 "$@" > "$log" 2> "$log.err" &
  PID=$!; PIDS+=("$PID")
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*:\([0-9]*\)\/ (models.*/\1/p' "$log")
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: serve did not start: $(cat "$log.err")"; return 1
}

start "$T/s1.log" --checkpoint "$T/m1.safetensors" --checkpoint "$T/m2.safetensors" --ensemble --max-request-mb 1 || exit 1
echo "serve on port $PORT"
ok $PY tests/oracle/serve_client.py check "$PORT" "$T/predict.txt" "${IMGS[@]}"
echo "[${SECONDS}s] endpoints checked"
ok $PY tests/oracle/serve_client.py load "$PORT" "$LOAD_S" 8 "${IMGS[@]}"
echo "[${SECONDS}s] load and barrage done"
if $PY -c "import selenium" 2>/dev/null && command -v chromedriver >/dev/null; then
  ok $PY tests/oracle/serve_page.py "$PORT" "$T/img0.png" "$T/page.png"
else
  echo "SKIP: the browser test (python3-selenium and chromium-driver not installed; scripts/deps.sh installs them)"
fi
echo "[${SECONDS}s] page checked"
kill -TERM "$PID"
for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then echo "FAIL: serve still running 5 s after SIGTERM"; fail=1; else
  wait "$PID"; rc=$?
  [ $rc -eq 0 ] && echo "SIGTERM: stopped cleanly (status 0)" || { echo "FAIL: SIGTERM exit status $rc"; fail=1; }
fi

# A queue of two jobs, held by a long batching delay, on ONE HTTP thread: both queued requests wait
# at once (suspended connections, not blocked threads) and are answered from one batch of 2; the
# other four concurrent requests get 503.
start "$T/s2.log" --checkpoint "$T/m1.safetensors" --queue 2 --max-batch 64 --max-delay-ms 1500 --http-threads 1 || exit 1
ok $PY tests/oracle/serve_client.py busy "$PORT" "$T/img0.png"
kill -TERM "$PID"; wait "$PID"

# A checkpoint that does not load stops start-up, naming the file; bad flags name the value.
printf 'not a checkpoint' > "$T/bad.safetensors"
if "$BIN" serve --checkpoint "$T/m1.safetensors" --checkpoint "$T/bad.safetensors" --port 0 > /dev/null 2> "$T/bad.err"; then
  echo "FAIL: a bad checkpoint was served"; fail=1
else
  grep -q "cannot load checkpoint $T/bad.safetensors" "$T/bad.err" && echo "bad checkpoint: $(head -c 200 "$T/bad.err")" ||
    { echo "FAIL: unclear message: $(cat "$T/bad.err")"; fail=1; }
fi
if "$BIN" serve --checkpoint "$T/m1.safetensors" --max-batch 0 2> "$T/flag.err"; then echo "FAIL: --max-batch 0 accepted"; fail=1; fi
grep -q -- "--max-batch 0, expected 1..1024" "$T/flag.err" || { echo "FAIL: flag message: $(cat "$T/flag.err")"; fail=1; }
[ $fail -eq 0 ] && echo "test_serve: all passed" || echo "test_serve: FAILED"
exit $fail
