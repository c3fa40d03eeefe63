#!/usr/bin/env bash
# Hostile sizes in files (issue 19): a checkpoint declaring 10^8 classes, one declaring a 2^31-pixel
# input, an IDX header declaring 10^10 pixels, and a Tiny ImageNet tree with an empty boxes file. Each
# file is written here; each command must exit non-zero with a message naming the file and the value,
# within a second, and without allocating what the file declares (run under `ulimit -v` 1 GB, and peak
# RSS from /usr/bin/time well under what one declared buffer would take: 10^8 classes x 128 features x
# 4 bytes = 51 GB).
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_limits.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive RCV_CACHE_DIR="$T/cache"
MAX_KB=400000   # peak RSS allowed (the binary with its libraries takes ~100 MB)
# ASan reserves terabytes of address space for its shadow memory, so under `make asan` the address
# limit is lifted and the peak-RSS bound below is the check that nothing declared was allocated.
VLIMIT=1000000
ldd "$BIN" 2>/dev/null | grep -q libasan && VLIMIT=unlimited

# A safetensors checkpoint with one small tensor and robustcv's model metadata (written with
# Python's struct and json, not with robustcv).
ckpt() { # FILE N_CLASSES IN_H IN_W
  /usr/bin/python3 - "$@" <<'PY'
import json, struct, sys
path, k, h, w = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
meta = {"format": "pt", "robustcv.model": "smallcnn", "robustcv.in_c": "1", "robustcv.in_h": h, "robustcv.in_w": w,
        "robustcv.n_classes": k, "robustcv.small_input": "0", "robustcv.mean": "0,0,0,0", "robustcv.std": "1,1,1,1",
        "robustcv.gamma": "0", "robustcv.dropout": "-1"}
hdr = json.dumps({"__metadata__": meta, "fc.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
open(path, "wb").write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<f", 0))
PY
}
# run NAME EXPECTED_RE CMD...: non-zero exit, the message, under a second, peak RSS under MAX_KB.
run() {
  local name=$1 want=$2; shift 2
  local t0 t1 rc ms kb
  t0=$(date +%s%N)
  # 1 GB of address space: allocating what a file declares aborts with "out of memory" instead of
  # succeeding lazily (overcommit), so the message check below fails on it.
  (ulimit -v "$VLIMIT"; exec timeout 5 /usr/bin/time -f %M -o "$T/$name.rss" "$@") > "$T/$name.out" 2> "$T/$name.err"; rc=$?
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  kb=$(tail -1 "$T/$name.rss" 2>/dev/null || echo 0)
  echo "$name: exit $rc, ${ms} ms, peak RSS ${kb} kB: $(grep -v '^Command exited' "$T/$name.err" | head -1)"
  ok test "$rc" -ne 0 -a "$rc" -ne 124
  ok grep -Eq "$want" "$T/$name.err"
  ok test "$ms" -lt 1000
  ok test "$kb" -gt 0 -a "$kb" -lt $MAX_KB
}
printf '\x89PNG' > "$T/x.png"

ckpt "$T/classes.safetensors" 100000000 28 28
run classes "classes.safetensors: metadata 'robustcv.n_classes' = 100000000, expected 1\.\.100000" \
  "$BIN" predict --checkpoint "$T/classes.safetensors" "$T/x.png"

ckpt "$T/pixels.safetensors" 10 65536 32768
run pixels "pixels.safetensors: .*input 1x65536x32768 .*at most 16777216 pixels" \
  "$BIN" predict --checkpoint "$T/pixels.safetensors" "$T/x.png"

# Within every bound, but the model needs more elements than the file has bytes.
ckpt "$T/params.safetensors" 100000 28 28
run params "params.safetensors: .*parameter and buffer elements, more than the [0-9]+ allowed" \
  "$BIN" predict --checkpoint "$T/params.safetensors" "$T/x.png"

# IDX: 100000 images of 1000 x 100 pixels = 10^10 bytes promised, 16 present.
mkdir -p "$T/idx"
/usr/bin/python3 -c '
import struct, sys
d = sys.argv[1]
open(d + "/train-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, 100000, 1000, 100) + bytes(16))
open(d + "/train-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, 100000) + bytes(100000))
' "$T/idx"
run idx "train-images-idx3-ubyte: truncated: expected 10000000000 bytes of data after the header, got 16" \
  "$BIN" train --data "fashion-mnist:$T/idx" --model smallcnn --epochs 1 --out "$T/idx-run"

# Tiny ImageNet with an empty train/n01/n01_boxes.txt.
R=$T/tiny
mkdir -p "$R/train/n01/images" "$R/val/images"
printf 'n01\n' > "$R/wnids.txt"
/usr/bin/python3 -c '
import struct, zlib, sys
raw = b"".join(b"\x00" + bytes(4 * 3) for _ in range(4))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
' "$R/train/n01/images/a.png"
: > "$R/train/n01/n01_boxes.txt"
run boxes "n01_boxes.txt: no boxes \(an empty file\)" \
  "$BIN" train --data "tiny-imagenet:$R" --model smallcnn --epochs 1 --out "$T/tiny-run"

echo "test_limits: $pass passed, $fail failed"
[ $fail -eq 0 ]
