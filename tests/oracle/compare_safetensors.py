#!/usr/bin/env python3
"""Compares two safetensors files (numpy only, independent of robustcv's reader). Prints
the relative L2 error over all compared float tensors together, ||a - b|| / ||b||, and per
tensor max |a - b| / max(max |b|, 1e-3) for the worst three. Exits 1 if the L2 error
exceeds --tol, a tensor's exceeds --tol-tensor (if given), the tensor names or shapes
differ, or on a bad file.

usage: compare_safetensors.py A B [--tol 1e-5] [--tol-tensor X] [--skip PREFIX ...]
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
    tol, tol_tensor, skip, files = 1e-5, None, [], []
    i = 0
    while i < len(args):
        if args[i] == "--tol":
            tol = float(args[i + 1]); i += 2
        elif args[i] == "--tol-tensor":
            tol_tensor = float(args[i + 1]); i += 2
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
    errs, num, den = [], 0.0, 0.0
    for n in names:
        if a[n].shape != b[n].shape:
            print(f"{n}: shape {a[n].shape} vs {b[n].shape}")
            return 1
        x, y = a[n].astype(np.float64), b[n].astype(np.float64)
        if a[n].dtype.kind == "f":
            num += float(((x - y) ** 2).sum())
            den += float((y ** 2).sum())
        scale = max(float(np.abs(y).max()) if y.size else 0.0, 1e-3)
        errs.append((float(np.abs(x - y).max()) / scale if y.size else 0.0, n))
    errs.sort(reverse=True)
    worst = errs[0][0] if errs else 0.0
    l2 = (num / den) ** 0.5 if den > 0 else (0.0 if num == 0 else float("inf"))
    print(f"{len(errs)} tensors, relative L2 error {l2:.3e}, worst tensor {worst:.3e} ({errs[0][1] if errs else '-'}); "
          f"epoch {ma.get('robustcv.epoch')} vs {mb.get('robustcv.epoch')}, "
          f"step {ma.get('robustcv.step')} vs {mb.get('robustcv.step')}")
    for e, n in errs[:3]:
        print(f"  {n}: {e:.3e}")
    return 0 if l2 <= tol and (tol_tensor is None or worst <= tol_tensor) else 1


if __name__ == "__main__":
    sys.exit(main())
