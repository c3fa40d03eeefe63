#!/usr/bin/env python3
"""Oracle of tests/test_onnx.sh: `robustcv export --format onnx` checked by ONNX's own checker and
by onnxruntime, model by model.

For each case: build/onnx_hook writes a checkpoint with random weights (random batchnorm affine and
running statistics, a random per-channel normalization), `robustcv export` writes the ONNX file,
and then
  - onnx.checker.check_model(full_check=True) accepts it (strict shape inference included);
  - ir_version 8, the asked opset, input "input" (N, C, H, W) with N symbolic, outputs "logits"
    (N, K) and, for NAME+box models, "boxes" (N, 4);
  - onnxruntime (CPUExecutionProvider) on random [0, 1] images at batch 1 and 3 gives robustcv's
    own eval-mode outputs (onnx_hook logits) within 1e-4 (|a - b| <= 1e-4 + 1e-4 |b|).
Usage: onnx_ref.py HOOK ROBUSTCV TMPDIR CASE...   CASE = model:C:H:W:classes:small_input:gamma[:opset]
Exit 77 when onnx or onnxruntime cannot be imported.
"""
import os
import subprocess
import sys
import time

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except Exception as e:  # noqa: BLE001 - any import failure means "not installed here"
    print(f"SKIP: onnx / onnxruntime not importable ({e}); scripts/deps.sh installs them")
    sys.exit(77)

TOL = 1e-4


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def dims(vi):
    return [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]


def check_case(hook, rcv, tmp, spec, seed):
    f = spec.split(":")
    model, c, h, w, k, small, gamma = f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4]), f[5], f[6]
    opset = int(f[7]) if len(f) > 7 else 17
    box = model.endswith("+box")
    ck, path = os.path.join(tmp, "m.safetensors"), os.path.join(tmp, "m.onnx")
    run([hook, "init", model, str(c), str(h), str(w), str(k), small, gamma, str(seed), ck])
    args = [rcv, "export", "--checkpoint", ck, "--out", path]
    if len(f) > 7:
        args += ["--opset", str(opset)]
    run(args)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    errs = []
    if m.ir_version != 8:
        errs.append(f"ir_version {m.ir_version}, expected 8")
    ops = {o.domain: o.version for o in m.opset_import}
    if ops.get("", None) != opset:
        errs.append(f"opset_import {ops}, expected default domain {opset}")
    ins = [(i.name, dims(i)) for i in m.graph.input]
    if ins != [("input", ["N", c, h, w])]:
        errs.append(f"inputs {ins}, expected input (N, {c}, {h}, {w})")
    outs = [(o.name, dims(o)) for o in m.graph.output]
    want = [("logits", ["N", k])] + ([("boxes", ["N", 4])] if box else [])
    if outs != want:
        errs.append(f"outputs {outs}, expected {want}")
    if any(n.op_type == "Dropout" for n in m.graph.node):
        errs.append("a Dropout node in an eval-mode export")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst, xs, hook_args = 0.0, {}, [hook, "logits", ck]
    for n in (1, 3):
        # Per image and channel a random brightness and contrast over pixel noise, as onnx_hook's
        # batchnorm calibration images: deep features of pure noise images are nearly alike.
        lo = 0.6 * rng.random((n, c, 1, 1))
        span = (1 - lo) * rng.random((n, c, 1, 1))
        xs[n] = (lo + span * rng.random((n, c, h, w))).astype(np.float32)
        xs[n].tofile(os.path.join(tmp, f"x{n}.f32"))
        hook_args += [os.path.join(tmp, f"x{n}.f32"), str(n), os.path.join(tmp, f"y{n}.f32")]
    run(hook_args)
    for n, x in xs.items():
        y = np.fromfile(os.path.join(tmp, f"y{n}.f32"), dtype=np.float32)
        ours = [y[: n * k].reshape(n, k)] + ([y[n * k :].reshape(n, 4)] if box else [])
        theirs = sess.run(None, {"input": x})
        for name, a, b in zip(("logits", "boxes"), theirs, ours):
            if a.shape != b.shape:
                errs.append(f"batch {n}: {name} shape {a.shape} from onnxruntime, {b.shape} from robustcv")
                continue
            d = np.abs(a - b)
            worst = max(worst, float(d.max()))
            if not np.all(d <= TOL + TOL * np.abs(b)):
                i = np.unravel_index(np.argmax(d - TOL * np.abs(b)), d.shape)
                errs.append(f"batch {n}: {name}{list(i)} onnxruntime {a[i]:.7g}, robustcv {b[i]:.7g} "
                            f"(|diff| {d[i]:.3g} > {TOL:g} + {TOL:g}|ref|)")
        # Logits of magnitude O(0.1..10): the comparison is not vacuous.
        if n == 3 and float(np.abs(ours[0]).max()) < 1e-2:
            errs.append(f"logits all below 1e-2 in magnitude ({np.abs(ours[0]).max():.3g}): a vacuous comparison")
    size = os.path.getsize(path) / 1e6
    return errs, worst, len(m.graph.node), size, float(np.abs(ours[0]).max())


def main():
    hook, rcv, tmp, cases = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    fails = 0
    for i, spec in enumerate(cases):
        t0 = time.time()
        try:
            errs, worst, nodes, size, mag = check_case(hook, rcv, tmp, spec, 100 + i)
        except Exception as e:  # noqa: BLE001 - report and go on to the next model
            errs, worst, nodes, size, mag = [f"{type(e).__name__}: {e}"], float("nan"), 0, 0.0, 0.0
        status = "ok" if not errs else "FAIL"
        print(f"{status:4} {spec:40} {nodes:5d} nodes {size:7.1f} MB  max|logit| {mag:8.3g}  max|diff| {worst:.2e}"
              f"  {time.time() - t0:5.1f} s")
        for e in errs:
            print(f"     {e}")
        sys.stdout.flush()
        fails += bool(errs)
    print(f"{len(cases) - fails}/{len(cases)} models export, pass onnx.checker and match onnxruntime")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
