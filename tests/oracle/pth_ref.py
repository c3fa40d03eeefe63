"""PyTorch side of tests/test_pth.c and tests/test_pth.sh: torch.save files for robustcv's .pth
reader (src/io/pth.c), written by Debian's torch itself, plus hostile and broken variants.

Usage: /usr/bin/python3 tests/oracle/pth_ref.py models OUT_DIR [NAME ...]
         per torchvision model NAME (default resnet18 densenet169 vgg19_bn; random init, seeded,
         random batchnorm statistics): NAME.pth = torch.save(model.state_dict(), f) and
         NAME.ref.safetensors = input (2, 64, 64, 3) in [0, 1] and model.eval()'s logits (2, 1000)
       /usr/bin/python3 tests/oracle/pth_ref.py cases OUT_DIR MARKER
         small files for the format's corners (see cases() below); MARKER is a path that a
         pickle naming os.system would create if anything in it were run; also smallcnn.pth,
         robustcv's smallcnn (resnet_ref.SmallCNN, 1x28x28, 10 classes, random batchnorm statistics)
       /usr/bin/python3 tests/oracle/pth_ref.py check OUT.safetensors IN.pth [--strip P] [--key K] [--ignore Q]
         robustcv convert's output against torch.load(IN.pth): the same names (less the prefix P; names
         of OUT starting with Q are left out), dtypes, shapes and bit-identical values (contiguous,
         whatever IN's strides). Several as A B [opts] :: A B [opts] ... Exit 1 if any differ.
Exits 77 without torch/torchvision.
"""
import json
import os
import pickle
import re
import struct
import sys
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"pth_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)
import numpy as np  # noqa: E402

from resnet_ref import SmallCNN, randomize_bn, save_safetensors  # noqa: E402

ST_DTYPES = {"F32": (np.float32, torch.float32), "F16": (np.float16, torch.float16),
             "BF16": (np.int16, torch.bfloat16), "F64": (np.float64, torch.float64),
             "I64": (np.int64, torch.int64), "I32": (np.int32, torch.int32), "U8": (np.uint8, torch.uint8),
             "BOOL": (np.bool_, torch.bool)}


def models(out, names):
    for i, name in enumerate(names):
        torch.manual_seed(100 + i)
        m = getattr(torchvision.models, name)()
        randomize_bn(m)
        m.eval()
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            z = m(x)
        torch.save(m.state_dict(), os.path.join(out, f"{name}.pth"))
        save_safetensors(os.path.join(out, f"{name}.ref.safetensors"), {"input": x.permute(0, 2, 3, 1), "logits": z})


def rezip(src, dst, folder=None, method=zipfile.ZIP_STORED, force_zip64=False, patch=None):
    """Copies a torch.save archive entry by entry, renaming the top folder and/or compressing;
    patch(name, bytes) -> bytes may change an entry."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", compression=method) as zo:
        for info in zi.infolist():
            data = zi.read(info)
            name = info.filename
            if folder is not None:
                name = folder + name[name.index("/"):]
            if patch:
                data = patch(name, data)
            zinfo = zipfile.ZipInfo(name)
            zinfo.compress_type = method
            with zo.open(zinfo, "w", force_zip64=force_zip64) as f:
                f.write(data)


def write_zip64(dst, entries):
    """A stored zip archive whose central directory carries every size and offset only in ZIP64
    extra fields (the 32-bit fields saturated), with a ZIP64 end record and locator and a
    saturated classic end record: what a writer must do for archives above 4 GiB, in a small file."""
    out, cd = bytearray(), bytearray()
    for name, data in entries:
        n = name.encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        off = len(out)
        extra_local = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(n),
                           len(extra_local)) + n + extra_local + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(n),
                          len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + n + extra
    cd_off = len(out)
    out += cd
    e64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(cd), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def torch_like_zip(dst, pkl, extra=()):
    with zipfile.ZipFile(dst, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")
        for name, data in extra:
            z.writestr(name, data)


def cases(out, marker):
    j = lambda n: os.path.join(out, n)  # noqa: E731
    torch.manual_seed(3)
    m = SmallCNN()
    randomize_bn(m)
    torch.save(m.state_dict(), j("smallcnn.pth"))
    torch.manual_seed(5)
    # Corners of the tensor format: half, bfloat16, int64, a transposed (strided) view, a view with a
    # storage offset, a 0-dim tensor, and two tensors sharing one storage.
    base = torch.randn(6, 5)
    sd = {"half": torch.randn(3, 4).half(), "bf16": torch.randn(7).bfloat16(), "long": torch.arange(-3, 9),
          "transposed": base.t(), "offset_view": base[2:4, 1:], "scalar": torch.tensor(2.5),
          "shared_a": base[0], "f64": torch.randn(2, 2).double(), "weird_stride": torch.randn(4, 6, 5).permute(2, 0, 1)[:, 1:3, ::2],
          "param": torch.nn.Parameter(torch.randn(2, 3)), "expanded": torch.randn(3, 1).expand(3, 4)}
    torch.save(sd, j("dtypes.pth"))
    assert not sd["transposed"].is_contiguous() and sd["offset_view"].storage_offset() > 0
    # A checkpoint dict around the state dict, and DataParallel's "module." prefix.
    small = {"conv.weight": torch.randn(2, 3, 3, 3), "conv.bias": torch.randn(2), "bn.num_batches_tracked": torch.tensor(7)}
    torch.save({"epoch": 3, "state_dict": small, "optimizer": {"lr": 0.1}}, j("nested.pth"))
    torch.save({"module." + k: v for k, v in small.items()}, j("dataparallel.pth"))
    torch.save(small, j("small.pth"))
    # torchvision's published DenseNet weights use the old keys "denselayerN.norm.1.weight"; a small
    # torchvision DenseNet saved both ways (the reader renames like torchvision's _load_state_dict).
    dn = torchvision.models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, num_classes=5)
    dsd = dn.state_dict()
    torch.save(dsd, j("densenet_new.pth"))
    legacy = r"(denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$"
    old = {re.sub(legacy, r"\1.\2.\3", k): v for k, v in dsd.items()}
    assert sum(k != o for k, o in zip(dsd, old)) == 4 * 10, "4 dense layers x (norm1 4, conv1 1, norm2 4, conv2 1)"
    torch.save(old, j("densenet_legacy.pth"))
    # Protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL-era opcodes) instead of torch's default 2.
    torch.save(sd, j("proto4.pth"), pickle_protocol=4)
    # Rewritten archives: another top folder, deflate, ZIP64 written by Python's zipfile
    # (force_zip64: ZIP64 local headers) and by hand (ZIP64 central directory and end records).
    rezip(j("dtypes.pth"), j("folder.pth"), folder="resnet18_weights")
    rezip(j("dtypes.pth"), j("deflate.pth"), method=zipfile.ZIP_DEFLATED)
    rezip(j("dtypes.pth"), j("zip64py.pth"), force_zip64=True)
    with zipfile.ZipFile(j("dtypes.pth")) as z:
        write_zip64(j("zip64.pth"), [(i.filename, z.read(i)) for i in z.infolist()])
    # Legacy (pre-1.6) format.
    torch.save(small, j("legacy.pth"), _use_new_zipfile_serialization=False)
    # Hostile pickles: os.system and builtins.eval with a command that would create MARKER.
    cmd = f"touch {marker}"
    torch_like_zip(j("evil_system.pth"), pickle.dumps({"w": Evil(os.system, cmd)}, protocol=2))
    torch_like_zip(j("evil_eval.pth"), pickle.dumps(Evil(eval, f"__import__('os').system('{cmd}')"), protocol=2))
    # INST (opcode 'i') runs a callable too; an opcode that does not exist (0xff).
    torch_like_zip(j("evil_inst.pth"), b"\x80\x02(X" + struct.pack("<I", len(cmd)) + cmd.encode() + b"ios\nsystem\n.")
    good = pickle.dumps({}, protocol=2)
    torch_like_zip(j("badop.pth"), good[:2] + b"}\xff" + good[3:])
    # A storage entry shorter than the storage the pickle declares (the element count is checked
    # against the bytes), and a tensor whose offset reaches past its storage.
    rezip(j("small.pth"), j("short_storage.pth"), patch=lambda n, d: d[:len(d) // 2] if "/data/" in n else d)
    with open(j("small.pth"), "rb") as f:
        raw = f.read()
    # Truncated archives: half the file; all but the last byte (end record incomplete).
    with open(j("truncated.pth"), "wb") as f:
        f.write(raw[:len(raw) // 2])
    with open(j("truncated_end.pth"), "wb") as f:
        f.write(raw[:-1])
    # A corrupt central directory: its first signature broken.
    cd = raw.find(b"PK\x01\x02")
    bad = bytearray(raw)
    bad[cd + 2] = 0x7F
    with open(j("corrupt_cd.pth"), "wb") as f:
        f.write(bad)
    # A bad data offset: the second central record's local header offset points past the file.
    bad = bytearray(raw)
    cd2 = raw.find(b"PK\x01\x02", cd + 4)
    bad[cd2 + 42:cd2 + 46] = struct.pack("<I", len(raw) + 1000)
    with open(j("bad_offset.pth"), "wb") as f:
        f.write(bad)
    pk = bytearray(zipfile.ZipFile(j("small.pth")).read("small/data.pkl"))
    with zipfile.ZipFile(j("small.pth")) as z:
        names = z.namelist()
    assert "small/data.pkl" in names, names
    # A stride that reaches past the storage: patch the pickled size tuple of conv.bias (2,) -> (9,).
    i = pk.find(b"conv.bias")
    k = pk.find(b"K\x02\x85", i)  # BININT1 2, TUPLE1: the size (2,)
    assert k > 0
    pk2 = bytes(pk[:k]) + b"K\x09\x85" + bytes(pk[k + 3:])
    rezip(j("small.pth"), j("past_storage.pth"), patch=lambda n, d: pk2 if n.endswith("data.pkl") else d)


def load_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        npdt, tdt = ST_DTYPES[t["dtype"]]
        a = np.frombuffer(data[base + lo:base + hi], dtype=npdt).reshape(t["shape"]).copy()
        out[name] = (t["dtype"], torch.from_numpy(a).view(tdt) if tdt == torch.bfloat16 else torch.from_numpy(a))
    return out


def check(st_path, pth_path, strip, key, ignore):
    ref = torch.load(pth_path, map_location="cpu")
    if key:
        ref = ref[key]
    ref = {(k[len(strip):] if strip and k.startswith(strip) else k): v for k, v in ref.items() if torch.is_tensor(v)}
    got = {k: v for k, v in load_st(st_path).items() if not (ignore and k.startswith(ignore))}
    names = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
             "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
    bad = []
    if sorted(ref) != sorted(got):
        bad.append(f"names differ: only in torch {sorted(set(ref) - set(got))[:5]}, "
                   f"only in ours {sorted(set(got) - set(ref))[:5]}")
    for k in sorted(set(ref) & set(got)):
        dt, t = got[k]
        r = ref[k]
        if names[dt] != r.dtype or tuple(t.shape) != tuple(r.shape) or not torch.equal(t, r.contiguous()):
            bad.append(f"{k}: ours {dt} {tuple(t.shape)}, torch {r.dtype} {tuple(r.shape)}, equal "
                       f"{names[dt] == r.dtype and tuple(t.shape) == tuple(r.shape) and torch.equal(t, r)}")
    for b in bad[:10]:
        print("pth_ref.py check:", b, file=sys.stderr)
    print(f"pth_ref.py check: {len(got)} tensors of {st_path} vs torch.load({pth_path}): "
          f"{'all bit-identical' if not bad else f'{len(bad)} differ'}")
    return 1 if bad else 0


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "models":
        os.makedirs(a[1], exist_ok=True)
        torch.set_num_threads(1)
        models(a[1], a[2:] or ["resnet18", "densenet169", "vgg19_bn"])
    elif len(a) == 3 and a[0] == "cases":
        os.makedirs(a[1], exist_ok=True)
        cases(a[1], a[2])
    elif len(a) >= 3 and a[0] == "check":
        rc, groups = 0, [[]]
        for x in a[1:]:  # several comparisons in one run: A B [opts] :: A B [opts] ...
            if x == "::":
                groups.append([])
            else:
                groups[-1].append(x)
        for g in groups:
            opt = lambda n: g[g.index(n) + 1] if n in g else ""  # noqa: E731
            rc |= check(g[0], g[1], opt("--strip"), opt("--key"), opt("--ignore"))
        sys.exit(rc)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
