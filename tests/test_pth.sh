#!/usr/bin/env bash
# robustcv convert and train --init on torch.save files (tests/oracle/pth_ref.py writes them with
# Debian's torch): converted safetensors hold exactly what torch.load sees (names, dtypes, shapes,
# bits; strided views made contiguous) for float16/bfloat16/int64/float64 storages, transposed,
# offset and expanded views, an nn.Parameter, pickle protocol 4, another top folder, deflate,
# ZIP64 (Python's and a hand-written ZIP64 central directory), a nested checkpoint dict and
# DataParallel's "module." prefix, torchvision's legacy DenseNet keys ("norm.1" -> "norm1");
# `train --init x.pth` starts from exactly the file's weights;
# hostile pickles (os.system, eval, INST), an unknown opcode, truncated and corrupt archives, a
# bad data offset, storages too short for their tensors and a legacy (pre-1.6) file each exit 1
# with a message naming the problem, write nothing, and run nothing (the marker file a hostile
# pickle would create never appears).
set -u
BIN=${RCV_BIN:-build/robustcv}
PY=/usr/bin/python3
REF=tests/oracle/pth_ref.py
T=$(mktemp -d /tmp/rcv_pth.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }

$PY $REF cases "$T" "$T/MARKER"; rc=$?
if [ $rc = 77 ] || [ $rc = 127 ]; then echo "SKIP: /usr/bin/python3 with torch is not available"; exit 0; fi
[ $rc = 0 ] || { echo "FAIL: pth_ref.py cases exited $rc"; exit 1; }

# --- files that load: convert, then compare with torch.load in one Python run ---
for f in dtypes proto4 folder deflate zip64 zip64py nested dataparallel smallcnn densenet_legacy; do
  ok "$BIN" convert "$T/$f.pth" "$T/$f.safetensors"
done
ok "$BIN" convert "$T/nested.pth" "$T/nested_key.safetensors" --key state_dict
ok "$BIN" convert "$T/dataparallel.pth" "$T/dp_keep.safetensors" --prefix-strip ''
ok "$BIN" convert "$T/small.pth" "$T/small_strip.safetensors" --prefix-strip conv.
# --- train --init FILE.pth: a run whose every module is frozen (and lr 0) ends with exactly the file's weights ---
"$BIN" train --data fashion-mnist --model smallcnn --init "$T/smallcnn.pth" --train-from fc --lr 0 --weight-decay 0 \
  --epochs 1 --subset 32 --batch 32 --threads 2 --out "$T/run" > "$T/train.out" 2> "$T/train.err"
ok test $? = 0
ok grep -q "init: 32 tensors from $T/smallcnn.pth, 0 re-initialised" "$T/train.err"
# One Python run compares them all with torch.load.
ok $PY $REF check "$T/dtypes.safetensors" "$T/dtypes.pth" \
  :: "$T/proto4.safetensors" "$T/proto4.pth" \
  :: "$T/folder.safetensors" "$T/dtypes.pth" \
  :: "$T/deflate.safetensors" "$T/dtypes.pth" \
  :: "$T/zip64.safetensors" "$T/dtypes.pth" \
  :: "$T/zip64py.safetensors" "$T/dtypes.pth" \
  :: "$T/nested.safetensors" "$T/nested.pth" --key state_dict \
  :: "$T/nested_key.safetensors" "$T/nested.pth" --key state_dict \
  :: "$T/dataparallel.safetensors" "$T/dataparallel.pth" --strip module. \
  :: "$T/dp_keep.safetensors" "$T/dataparallel.pth" \
  :: "$T/small_strip.safetensors" "$T/small.pth" --strip conv. \
  :: "$T/smallcnn.safetensors" "$T/smallcnn.pth" \
  :: "$T/densenet_legacy.safetensors" "$T/densenet_new.pth" \
  :: "$T/run/last.safetensors" "$T/smallcnn.pth" --ignore optim.
# The check itself notices a difference (one byte of a converted tensor changed).
cp "$T/dtypes.safetensors" "$T/dtypes.safetensors.flip"
n=$(stat -c %s "$T/dtypes.safetensors")
printf '\x7f' | dd of="$T/dtypes.safetensors.flip" bs=1 seek=$((n - 3)) conv=notrunc status=none
ok test "$($PY $REF check "$T/dtypes.safetensors.flip" "$T/dtypes.pth" >/dev/null 2>&1; echo $?)" = 1
# --list names each tensor with dtype and shape.
"$BIN" convert "$T/dtypes.pth" --list > "$T/list.txt"
ok grep -Eq '^half +F16 +\[3, 4\]$' "$T/list.txt"
ok grep -Eq '^bf16 +BF16 +\[7\]$' "$T/list.txt"
ok grep -Eq '^transposed +F32 +\[5, 6\]$' "$T/list.txt"
ok grep -Eq '^scalar +F32 +\[\]$' "$T/list.txt"

# --- files that must be refused: exit 1, a message naming the problem, no output ---
refuse() { # FILE PATTERN...
  local f=$1; shift
  "$BIN" convert "$T/$f" "$T/out_$f.safetensors" 2> "$T/err.txt"
  local rc=$?
  if [ $rc != 1 ]; then echo "FAIL: convert $f exited $rc, expected 1" >&2; fail=$((fail+1)); return; fi
  for p in "$@"; do
    if ! grep -q -- "$p" "$T/err.txt"; then
      echo "FAIL: convert $f: message lacks '$p': $(cat "$T/err.txt")" >&2; fail=$((fail+1)); return
    fi
  done
  if [ -e "$T/out_$f.safetensors" ]; then echo "FAIL: convert $f wrote output" >&2; fail=$((fail+1)); return; fi
  pass=$((pass+1))
}
refuse evil_system.pth "evil_system.pth" "global 'posix.system' is not allowed" "nothing in it was run"
refuse evil_eval.pth "global '__builtin__.eval' is not allowed"
refuse evil_inst.pth "opcode 0x69 (INST) is not allowed"
refuse badop.pth "opcode 0xff (unknown) is not allowed"
refuse legacy.pth "legacy torch.save file" "_use_new_zipfile_serialization=True"
refuse truncated.pth "no zip end-of-central-directory record"
refuse truncated_end.pth "no zip end-of-central-directory record"
refuse corrupt_cd.pth "no central header signature"
refuse bad_offset.pth "local header offset" "does not hold a local header"
refuse short_storage.pth "storage '0' claims 54 F32 elements" "holds 108 bytes"
refuse past_storage.pth "tensor 'conv.bias'" "reaches element 8 of storage"
refuse dtypes.safetensors "not a torch.save zip archive"
ok test ! -e "$T/MARKER"
# --init refuses the same way and names the option.
"$BIN" train --data fashion-mnist --model smallcnn --init "$T/evil_system.pth" --epochs 1 --subset 32 --batch 32 \
  --threads 2 --out "$T/run2" --quiet 2> "$T/err.txt"
ok test $? != 0
ok grep -q -- "--init: .*posix.system" "$T/err.txt"
ok test ! -e "$T/MARKER"
# Usage errors: exit 2.
"$BIN" convert "$T/small.pth" 2>/dev/null; ok test $? = 2
"$BIN" convert "$T/nested.pth" "$T/x.safetensors" --key nope 2> "$T/err.txt"; ok test $? = 1
ok grep -q "key 'nope' is not in the checkpoint; the top-level keys are: 'epoch' (int), 'state_dict' (dict of 3 tensors)" "$T/err.txt"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
