#!/usr/bin/env bash
# robustcv serve under load: requests/s and p50/p99 latency at 1 and 8 concurrent clients
# (bench/serve_load.py: closed loop, one base64 PNG per infer request, client processes), on a
# smallcnn6 briefly trained on Fashion-MNIST (28x28 gray; the weights do not change the timing).
# Client and server share the cores: the server gets SERVE_THREADS (default 1) compute threads, the
# clients the rest. SECONDS_PER_RUN (default 10) per client count.
set -euo pipefail
BUILD=${1:-build}
SECS=${SECONDS_PER_RUN:-10}
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
BIN=$(realpath "$BUILD/robustcv")
T=$(mktemp -d); PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
"$BIN" train --model smallcnn6 --epochs 1 --subset 256 --batch 64 --threads 2 --quiet --out "$T/m" >/dev/null
cp "$T/m/last.safetensors" "$T/smallcnn6.safetensors"
$PY -c "
import gzip, os, sys
from PIL import Image
p = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte'
raw = open(p, 'rb').read() if os.path.exists(p) else gzip.open(p + '.gz').read()
Image.frombytes('L', (28, 28), raw[16:16 + 784]).save('$T/img.png')"
"$BIN" serve --checkpoint "$T/smallcnn6.safetensors" --port 0 --threads "${SERVE_THREADS:-1}" > "$T/log" 2> "$T/err" &
PID=$!
for _ in $(seq 100); do PORT=$(sed -n 's/.*:\([0-9]*\)\/ (models.*/\1/p' "$T/log"); [ -n "$PORT" ] && break; sleep 0.1; done
[ -n "$PORT" ] || { echo "bench_serve: serve did not start: $(cat "$T/err")"; exit 1; }
echo "robustcv serve, smallcnn6 1x28x28, defaults (--max-batch 32 --max-delay-ms 5), ${SERVE_THREADS:-1} compute thread(s), ${SECS} s per run"
for c in 1 8; do $PY bench/serve_load.py "$PORT" smallcnn6 "$SECS" "$c" "$T/img.png"; done
