#!/usr/bin/env python3
"""Compares two safetensors files tensor by tensor (numpy only, independent of robustcv's
reader): for each tensor, max |a - b| / max(max |b|, 1e-3). Prints the worst tensors and
exits 1 if any exceeds --tol, if the tensor names or shapes differ, or on a bad file.

usage: compare_safetensors.py A B [--tol 1e-5] [--skip PREFIX ...]
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "F16": np.float16,
          "U8": np.uint8}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        sys.exit(f"{path}: {len(data)} bytes, not a safetensors file")
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(data[base + lo:base + hi], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out, header.get("__metadata__", {})


def main():
    args = sys.argv[1:]
    tol, skip, files = 1e-5, [], []
    i = 0
    while i < len(args):
        if args[i] == "--tol":
            tol = float(args[i + 1]); i += 2
        elif args[i] == "--skip":
            skip.append(args[i + 1]); i += 2
        else:
            files.append(args[i]); i += 1
    if len(files) != 2:
        sys.exit(__doc__)
    (a, ma), (b, mb) = load(files[0]), load(files[1])
    names = [n for n in a if not any(n.startswith(s) for s in skip)]
    bnames = [n for n in b if not any(n.startswith(s) for s in skip)]
    if sorted(names) != sorted(bnames):
        print(f"tensor names differ: only in A {sorted(set(names) - set(bnames))}, "
              f"only in B {sorted(set(bnames) - set(names))}")
        return 1
    errs = []
    for n in names:
        if a[n].shape != b[n].shape:
            print(f"{n}: shape {a[n].shape} vs {b[n].shape}")
            return 1
        x, y = a[n].astype(np.float64), b[n].astype(np.float64)
        scale = max(float(np.abs(y).max()) if y.size else 0.0, 1e-3)
        errs.append((float(np.abs(x - y).max()) / scale if y.size else 0.0, n))
    errs.sort(reverse=True)
    worst = errs[0][0] if errs else 0.0
    print(f"{len(errs)} tensors, max relative error {worst:.3e} ({errs[0][1] if errs else '-'}); "
          f"epoch {ma.get('robustcv.epoch')} vs {mb.get('robustcv.epoch')}, "
          f"step {ma.get('robustcv.step')} vs {mb.get('robustcv.step')}")
    for e, n in errs[:3]:
        print(f"  {n}: {e:.3e}")
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
