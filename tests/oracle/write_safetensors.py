#!/usr/bin/python3
"""Independent safetensors oracle for tests/test_safetensors.c (struct + json + torch, no
safetensors package). Arguments are MODE PATH pairs, run in order; each mode's output follows
a line "== MODE".

  write OUT            write a mixed-dtype file laid out like the reference implementation
                       (header padded to 8, tensors sorted by alignment then name), print
                       "name dtype v0 v1 ..." per tensor (values as float64 reprs of what
                       PyTorch holds)
  check PATH           read a file robustcv wrote (tests' formula tensors), validate the format
                       as strictly as the reference implementation, compare values; exit 1 on
                       any mismatch
  sd_write OUT         write the state_dict of the torch twin of the C test's small model
  sd_check PATH        load a file robustcv wrote into the torch twin with
                       load_state_dict(strict=True) and compare with the C test's formula
"""
import json
import struct
import sys

import numpy as np
import torch

DT = {  # name -> (torch dtype, element size)
    "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "F64": (torch.float64, 8), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
NAME = {v[0]: k for k, v in DT.items()}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save(tensors, path, metadata=None):
    """The reference layout: data sorted by (alignment desc, name); header padded with spaces."""
    order = sorted(tensors, key=lambda k: (-DT[NAME[tensors[k].dtype]][1], k))
    header, blobs, pos = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for k in order:
        b = raw_bytes(tensors[k])
        header[k] = {"dtype": NAME[tensors[k].dtype], "shape": list(tensors[k].shape),
                     "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def fail(msg):
    print("oracle: " + msg, file=sys.stderr)
    sys.exit(1)


def load(path):
    """Strict reader: the checks of the reference implementation, plus our writer's promises."""
    buf = open(path, "rb").read()
    if len(buf) < 8:
        fail(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        fail(f"{path}: header length {n} beyond the file")
    if n % 8:
        fail(f"{path}: header length {n} not a multiple of 8")
    hb = buf[8:8 + n]
    if not hb.startswith(b"{"):
        fail(f"{path}: header does not start with '{{'")
    header = json.loads(hb.decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for b, e, k in spans:
        if b != pos:
            fail(f"{path}: tensor {k} begins at {b}, expected {pos} (holes or overlaps)")
        pos = e
    if pos != len(data):
        fail(f"{path}: tensors cover {pos} bytes of a {len(data)}-byte data section")
    out = {}
    for k, v in header.items():
        tdt, size = DT[v["dtype"]]
        b, e = v["data_offsets"]
        numel = int(np.prod(v["shape"])) if v["shape"] else 1
        if numel * size != e - b:
            fail(f"{path}: tensor {k} shape {v['shape']} does not match {e - b} bytes")
        if b % size:
            fail(f"{path}: tensor {k} at offset {b} not aligned to {size}")
        raw = bytearray(data[b:e])
        if tdt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if numel else torch.zeros(0, dtype=tdt)
        else:
            t = torch.frombuffer(raw, dtype=tdt) if numel else torch.zeros(0, dtype=tdt)
        out[k] = t.reshape(v["shape"])
    return out, meta, list(header.keys())


def emit(tensors):
    for k, t in tensors.items():
        vals = t.reshape(-1).to(torch.float64).tolist() if t.dtype != torch.int64 else t.reshape(-1).tolist()
        print(k, NAME[t.dtype], " ".join(repr(float(x)) if not isinstance(x, int) else str(x) for x in vals))


def formula(p, n):
    """The C test's values: ((j * 7 + p * 13) % 101 - 50) / 16, exact in every float format used."""
    j = np.arange(n, dtype=np.int64)
    return ((j * 7 + p * 13) % 101 - 50).astype(np.float64) / 16.0


class Twin(torch.nn.Module):
    """conv1 (3->4, 3x3, no bias) -> bn1 -> global pool -> fc (4->5): the C test's graph."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 5)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        fail("usage: MODE PATH [MODE PATH ...]")
    for mode, path in zip(args[::2], args[1::2]):  # one interpreter start for several modes
        print("==", mode, flush=True)
        run(mode, path)


def run(mode, path):
    if mode == "write":
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(2, 3, 5, generator=g)
        t = {
            "a.f32": x,
            "b.f16": (x * 3).half(),
            "c.bf16": (x * 5).bfloat16(),
            "d.f64": x.double() / 3,
            "e.i64": torch.tensor([-(2 ** 40), 3, 2 ** 40 + 1], dtype=torch.int64),
            "f.i32": torch.tensor([[-7, 8], [9, 100000]], dtype=torch.int32),
            "g.u8": torch.tensor([0, 1, 254, 255], dtype=torch.uint8),
            "h.scalar": torch.tensor(42, dtype=torch.int64),
            "i.f16sub": torch.tensor([6e-8, -3e-5, 65504.0, float("inf")], dtype=torch.float16),
        }
        save(t, path, {"format": "pt", "epoch": "3"})
        emit(t)
    elif mode == "check":
        t, meta, order = load(path)
        if meta != {"model": "test", "epoch": "7"}:
            fail(f"metadata {meta}")
        if order[:4] != ["w.f32", "x.i64", "y.f16", "z.bf16"]:
            fail(f"header order {order}, expected insertion order")
        for p, (k, dt) in enumerate([("w.f32", torch.float32), ("y.f16", torch.float16),
                                     ("z.bf16", torch.bfloat16)]):
            want = torch.from_numpy(formula(p, t[k].numel())).to(dt).reshape(t[k].shape)
            if t[k].dtype != dt or not torch.equal(t[k], want):
                fail(f"{k}: got {t[k]}, expected {want}")
        if t["w.f32"].shape != (3, 4, 5):
            fail(f"w.f32 shape {t['w.f32'].shape}")
        if t["x.i64"].tolist() != [-(2 ** 40), 0, 2 ** 40 + 1] or t["s.i64"].shape != () or int(t["s.i64"]) != 12345678901:
            fail(f"x.i64 {t['x.i64']} s.i64 {t['s.i64']}")
        # Rounding of our float->half and float->bf16 against PyTorch's (round to nearest even).
        src = t["rnd.src"]
        for k, dt in (("rnd.f16", torch.float16), ("rnd.bf16", torch.bfloat16)):
            want = src.to(dt)
            if not torch.equal(t[k].view(torch.int16), want.view(torch.int16)):
                bad = (t[k].view(torch.int16) != want.view(torch.int16)).nonzero()[:5].flatten().tolist()
                fail(f"{k}: rounding differs from PyTorch at {bad}: src {src[bad].tolist()} got "
                     f"{t[k][bad].tolist()} want {want[bad].tolist()}")
        if t["empty"].shape != (0, 3):
            fail(f"empty: shape {t['empty'].shape}")
    elif mode == "sd_write":
        torch.manual_seed(7)
        m = Twin()
        with torch.no_grad():
            m.bn1.running_mean.uniform_(-1, 1)
            m.bn1.running_var.uniform_(0.5, 2)
            m.bn1.weight.uniform_(0.5, 1.5)
            m.bn1.bias.uniform_(-1, 1)
            m.bn1.num_batches_tracked.fill_(2 ** 33 + 5)
        sd = {k: v.clone() for k, v in m.state_dict().items()}
        save(sd, path)
        emit(sd)
    elif mode == "sd_check":
        t, _, _ = load(path)
        m = Twin()
        m.load_state_dict(t, strict=True)  # raises on any missing/unexpected name or shape mismatch
        for p, (k, v) in enumerate(m.state_dict().items()):
            if k.endswith("num_batches_tracked"):
                if v.dtype != torch.int64 or v.shape != () or int(v) != 12345678901:
                    fail(f"{k}: {v!r}")
                continue
            want = torch.from_numpy(formula(p, v.numel())).float().reshape(v.shape)
            if not torch.equal(v, want):
                fail(f"{k}: got {v}, expected {want}")
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
