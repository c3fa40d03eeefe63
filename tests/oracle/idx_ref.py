#!/usr/bin/python3
"""IDX oracle for tests/test_data.c: reads an IDX pair with gzip + struct + numpy (not zlib's
gzopen like robustcv) and prints

  n h w
  counts c0 ... c9           images per label
  img i label sum p[0] p[100] p[300] p[783]   for images 0..9 and the last
  stats mean std             over all pixels / 255 (float64, population std)
"""
import gzip
import struct
import sys

import numpy as np


def read(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        return f.read()


def main(images, labels):
    ib, lb = read(images), read(labels)
    magic, n, h, w = struct.unpack(">IIII", ib[:16])
    assert magic == 0x803, hex(magic)
    lmagic, ln = struct.unpack(">II", lb[:8])
    assert lmagic == 0x801 and ln == n
    px = np.frombuffer(ib, dtype=np.uint8, offset=16).reshape(n, h, w)
    lab = np.frombuffer(lb, dtype=np.uint8, offset=8)
    print(n, h, w)
    print("counts", " ".join(str(int(c)) for c in np.bincount(lab, minlength=10)))
    for i in list(range(10)) + [n - 1]:
        p = px[i].reshape(-1)
        print("img", i, int(lab[i]), int(p.astype(np.int64).sum()), int(p[0]), int(p[100]), int(p[300]), int(p[-1]))
    x = px.astype(np.float64) / 255.0
    print("stats", repr(float(x.mean())), repr(float(x.std())))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
