#!/usr/bin/python3
"""Robust-accuracy oracle: torchattacks 3.5.1 on the PyTorch twin of a robustcv checkpoint.

Usage: /usr/bin/python3 tests/oracle/aa_ref.py CHECKPOINT --attack fab-t|square|apgd-ce|apgd-t|autoattack
           [--norm Linf|L2] [--eps E] [--n N] [--seed S] [--flags OUT.txt] [--fm DIR]
           [--steps 100] [--n-queries 5000] [--n-target-classes K-1] [--batch 500] [--threads 2]

Loads a smallcnn / smallcnn6 checkpoint written by `robustcv train` into its PyTorch twin
(tests/oracle/resnet_ref.py; normalization from the checkpoint's metadata, applied inside the
model so attacks work on [0, 1] pixels), takes the first N Fashion-MNIST test images (pixels / 255)
and runs the attack configured to the reference (fra31/auto-attack) defaults, not torchattacks':

  apgd-ce     APGD(loss="ce", steps, n_restarts=1)
  apgd-t      APGDT(steps, n_restarts=1, n_classes=T+1)            (T = 9 targets)
  fab-t       FAB(steps, n_restarts=1, multi_targeted=True, n_classes=T+1)   (alpha_max 0.1,
              eta 1.05, beta 0.9; 9 targets: the 2nd..10th largest clean logits)
  square      Square(n_queries, n_restarts=1, p_init=0.8, loss="margin", resc_schedule=False)
  autoattack  apgd-ce -> apgd-t -> fab-t -> square, each on the points still robust

A point is robust when it is classified correctly, and after each attack still is, or the
adversarial example lies outside the eps ball (norm > eps * (1 + 1e-5): FAB's output can sit a
rounding error outside). Every attack is seeded with --seed (torch.manual_seed inside each).
Prints "clean_acc A", one "robust_acc_after <attack> A" per stage, "robust_acc A" (fractions of N)
and "seconds T" (attack time, loading excluded). --flags writes one 0/1 per line (1 = robust).

Exits 77 when torch or torchattacks is not importable.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchattacks
    import compare_safetensors
    import idx_ref
    from resnet_ref import SMALLCNN, SMALLCNN6, SmallCNN
except ImportError as e:  # pragma: no cover
    print(f"aa_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)


class Normalized(nn.Module):
    """The twin with the checkpoint's (x - mean) / std in front: torchattacks sees [0, 1] pixels."""

    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def load_model(path):
    arrays, meta = compare_safetensors.load(path)
    state = {n: torch.from_numpy(a.copy()) for n, a in arrays.items() if n.startswith(("conv", "bn", "fc"))}
    cfg = {"smallcnn": SMALLCNN, "smallcnn6": SMALLCNN6}[meta["robustcv.model"]]
    in_c, k = int(meta["robustcv.in_c"]), int(meta["robustcv.n_classes"])
    mean = torch.tensor([float(v) for v in meta["robustcv.mean"].split(",")][:in_c]).view(1, -1, 1, 1)
    std = torch.tensor([float(v) for v in meta["robustcv.std"].split(",")][:in_c]).view(1, -1, 1, 1)
    net = SmallCNN(in_c, k, cfg=cfg)
    net.load_state_dict(state)
    model = Normalized(net, mean, std).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, k


def load_fashion(d, n):
    def rd(name):
        p = os.path.join(d, name)
        return idx_ref.read(p + ".gz" if os.path.exists(p + ".gz") else p)

    img = np.frombuffer(rd("t10k-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    y = np.frombuffer(rd("t10k-labels-idx1-ubyte"), np.uint8, offset=8)[:n].astype(np.int64)
    return torch.from_numpy(img.astype(np.float32) / 255), torch.from_numpy(y)


def make_attack(name, model, a, k):
    if name == "apgd-ce":
        return torchattacks.APGD(model, norm=a.norm, eps=a.eps, steps=a.steps, n_restarts=1, loss="ce", seed=a.seed)
    if name == "apgd-t":
        return torchattacks.APGDT(model, norm=a.norm, eps=a.eps, steps=a.steps, n_restarts=1,
                                  n_classes=a.n_target_classes + 1, seed=a.seed)
    if name == "fab-t":
        return torchattacks.FAB(model, norm=a.norm, eps=a.eps, steps=a.steps, n_restarts=1, alpha_max=0.1, eta=1.05,
                                beta=0.9, multi_targeted=True, n_classes=a.n_target_classes + 1, seed=a.seed)
    if name == "square":
        return torchattacks.Square(model, norm=a.norm, eps=a.eps, n_queries=a.n_queries, n_restarts=1, p_init=0.8,
                                   loss="margin", resc_schedule=False, seed=a.seed)
    raise SystemExit(f"aa_ref.py: unknown attack {name!r}")


def norms(d, norm):
    d = d.reshape(d.shape[0], -1)
    return d.abs().max(1)[0] if norm == "Linf" else d.pow(2).sum(1).sqrt()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--attack", required=True, choices=["fab-t", "square", "apgd-ce", "apgd-t", "autoattack"])
    ap.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
    ap.add_argument("--eps", type=float, default=None, help="default 8/255 (Linf), 0.5 (L2)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--n-queries", type=int, default=5000)
    ap.add_argument("--n-target-classes", type=int, default=None, help="apgd-t, fab-t: default classes - 1")
    ap.add_argument("--batch", type=int, default=500, help="images per torchattacks call")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flags", default=None)
    ap.add_argument("--fm", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    if a.eps is None:
        a.eps = 8 / 255 if a.norm == "Linf" else 0.5
    if not a.eps >= 0:
        raise SystemExit(f"aa_ref.py: eps {a.eps}, expected >= 0")
    torch.set_num_threads(a.threads)
    model, k = load_model(a.checkpoint)
    if a.n_target_classes is None:
        a.n_target_classes = k - 1
    if not 1 <= a.n_target_classes <= k - 1:
        raise SystemExit(f"aa_ref.py: --n-target-classes {a.n_target_classes}, expected 1 .. {k - 1}")
    x, y = load_fashion(a.fm, a.n)
    n = x.shape[0]
    with torch.no_grad():
        robust = torch.cat([model(x[s:s + a.batch]).argmax(1) for s in range(0, n, a.batch)]) == y
    print(f"clean_acc {robust.double().mean().item():.6f}")
    stages = ["apgd-ce", "apgd-t", "fab-t", "square"] if a.attack == "autoattack" else [a.attack]
    t0 = time.time()
    for st in stages:
        atk = make_attack(st, model, a, k)
        idx = robust.nonzero().flatten()
        for s in range(0, idx.numel(), a.batch):
            j = idx[s:s + a.batch]
            adv = atk(x[j], y[j])
            with torch.no_grad():
                still = model(adv).argmax(1) == y[j]
            still |= norms(adv - x[j], a.norm) > a.eps * (1 + 1e-5)
            robust[j] = still
        print(f"robust_acc_after {st} {robust.double().mean().item():.6f}", flush=True)
    print(f"robust_acc {robust.double().mean().item():.6f}")
    print(f"seconds {time.time() - t0:.2f}")
    if a.flags:
        with open(a.flags, "w") as f:
            f.write("".join(f"{int(v)}\n" for v in robust.tolist()))


if __name__ == "__main__":
    main()
