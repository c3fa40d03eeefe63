"""torchattacks oracle for tests/test_cw.c.

Usage: /usr/bin/python3 tests/oracle/cw_ref.py DIR

Reads DIR/case.safetensors, written by the C test: a smallcnn state_dict (torchvision names), x
(N, H, W, C) pixels in [0, 1], y (N) I64 labels, t (N) I64 targets, and as metadata the model's
normalization, the planned batch and a JSON list of cases {name, c, kappa, lr, steps, targeted}.
Runs torchattacks.CW(model, c, kappa, steps, lr) (eval mode; targeted by label when asked) on the
same chunks of the planned batch as the C side (CW's early stop judges the summed cost of its
batch) and writes DIR/ref.safetensors with adv.<name> (N, H, W, C).

Exits 77 when torch or torchattacks is not importable.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import torchattacks
    from attack_ref import SmallCNN, load_safetensors, nchw, nhwc, save_safetensors
except ImportError as e:  # pragma: no cover
    print(f"cw_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)


def main(d):
    t, meta = load_safetensors(f"{d}/case.safetensors")
    in_c, k, b = int(meta["in_c"]), int(meta["n_classes"]), int(meta["batch"])
    model = SmallCNN(in_c, k, [float(meta["mean"])] * in_c, [float(meta["std"])] * in_c)
    model.load_state_dict({n: v for n, v in t.items() if n.startswith(("conv", "bn", "fc"))})
    model.eval()
    x, y, tg = nchw(t["x"]), t["y"], t["t"]
    ref = {}
    for case in json.loads(meta["cases"]):
        atk = torchattacks.CW(model, c=case["c"], kappa=case["kappa"], steps=case["steps"], lr=case["lr"])
        labels = tg if case["targeted"] else y
        if case["targeted"]:
            atk.set_mode_targeted_by_label(quiet=True)
        t0 = time.perf_counter()
        adv = torch.cat([atk(x[s:s + b], labels[s:s + b]) for s in range(0, x.shape[0], b)])
        print(f"cw_ref.py: torchattacks {torchattacks.__version__} CW {case['name']}: "
              f"{time.perf_counter() - t0:.3f} s", file=sys.stderr)
        ref[f"adv.{case['name']}"] = nhwc(adv)
    save_safetensors(f"{d}/ref.safetensors", ref)


if __name__ == "__main__":
    torch.manual_seed(0)
    main(sys.argv[1])
