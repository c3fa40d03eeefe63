"""PyTorch / torchattacks oracle for tests/test_apgd.c.

Usage: /usr/bin/python3 tests/oracle/apgd_ref.py DIR

Reads DIR/case.safetensors, written by the C test: a smallcnn state_dict (torchvision names),
x (N, H, W, C) pixels in [0, 1], y (N) I64 labels, and for the loss check logits (M, K), ly, lt
(M) I64 labels and targets; the settings as metadata (mean, std, eps_linf, eps_l2, steps).
Writes DIR/ref.safetensors:

  dlr.loss, dlr.grad         torchattacks' APGD.dlr_loss on the logits (float64) and its autograd
                             gradient in the logits
  dlrt.loss, dlrt.grad       APGDT.dlr_loss_targeted, the same
  <case>.adv (N, H, W, C)    torchattacks 3.5.1's adversarial images (perturb, cheap=True, seed 0)
  <case>.robust (N)          its acc (1 = still robust)
  <case>.starts (R, N, H, W, C)  the start of each of its runs (R = restarts x targets), drawn by
                             its own torch.rand / torch.randn calls and recorded for the images
                             that run attacked (the others hold x)

Cases: ce_linf (APGD, loss ce), dlr_linf (APGD, loss dlr), t_linf (APGDT, n_classes 10),
ce_l2 (APGD, norm L2), steps 100; dlr_linf_short, t_linf_short, t_l2_short (APGDT with fra31's
L2 step, see fra31_apgdt) with steps_short steps. Also per case:
  <case>.adv_alt             the same attack on the model run channels-last (PyTorch vs itself)
  <case>.margin              the closest decision the run took (run_margin) Exits 77 when torch or torchattacks is not importable.
"""
import copy
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchattacks
except ImportError as e:  # pragma: no cover
    print(f"apgd_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack_ref import SmallCNN, load_safetensors, nchw, nhwc, save_safetensors  # noqa: E402


def run_margin(atk, zs, y):
    """Smallest relative margin of the decisions one run took (replayed from its logits zs): the
    argmax (top two logits), loss > best loss, and the checkpoints' loss_j > loss_{j-1} and
    best_last >= best. Float32 logits of two implementations differ by ~1e-6 relative (summation
    order); a decision closer than that can go either way, and the runs part there."""
    targeted = isinstance(atk, torchattacks.APGDT)  # and its fra31 twin
    if targeted:
        yt = zs[0].sort(dim=1)[1][:, -atk.target_class]
        zs = zs[1:]
        loss = lambda z: atk.dlr_loss_targeted(z, y, yt)
    else:
        loss = (lambda z: F.cross_entropy(z, y, reduction="none")) if atk.loss == "ce" else (lambda z: atk.dlr_loss(z, y))
    # Exactly equal values come from the same input (a point that did not move): equal in any
    # implementation, so not a close call.
    rel = lambda a, b: ((a - b).abs() / b.abs().clamp_min(1e-30))[a != b].min().item() if (a != b).any() else float("inf")
    srt = lambda z: z.sort(dim=1, descending=True)[0]
    m = min(rel(srt(z)[:, 0], srt(z)[:, 1]) for z in zs)
    L = [loss(z) for z in zs]
    best, last, ls = L[0].clone(), L[0].clone(), []
    n = atk.steps
    k, kmin, decr, c3 = max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1), 0
    for i in range(n):
        y1 = L[i + 1]
        ls.append(y1)
        m = min(m, rel(y1, best))
        best = torch.maximum(best, y1)
        c3 += 1
        if c3 == k:
            for s in range(k):
                j = i - s
                prev = ls[j - 1] if j >= 1 else torch.zeros_like(y1)
                m = min(m, rel(ls[j], prev))
            neq = last != best  # equal = the same stored value in both implementations
            if neq.any():
                m = min(m, rel(last[neq], best[neq]))
            last, c3, k = best.clone(), 0, max(k - decr, kmin)
    return m


def recording(cls):
    """cls with attack_single_run recording its start: the same draw, replayed from the RNG state."""

    class Rec(cls):
        def attack_single_run(self, x_in, y_in):
            state = torch.get_rng_state()
            ones = torch.ones([x_in.shape[0], 1, 1, 1])
            if self.norm == "Linf":
                t = 2 * torch.rand(x_in.shape) - 1
                x0 = x_in + self.eps * ones * t / (
                    t.reshape([t.shape[0], -1]).abs().max(dim=1, keepdim=True)[0].reshape([-1, 1, 1, 1]))
            else:
                t = torch.randn(x_in.shape)
                x0 = x_in + self.eps * ones * t / ((t ** 2).sum(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12)
            torch.set_rng_state(state)
            self.margin = getattr(self, "margin", float("inf"))
            start = self.x_all.clone()
            for r in range(x_in.shape[0]):  # images are distinct: find each attacked row
                j = [i for i in range(self.x_all.shape[0]) if torch.equal(self.x_all[i], x_in[r])]
                assert len(j) == 1
                start[j[0]] = x0[r].clamp(0.0, 1.0)
            self.starts.append(start)
            zs, get = [], self.get_logits
            self.get_logits = lambda v: zs.append(get(v)) or zs[-1]
            out = super().attack_single_run(x_in, y_in)
            del self.get_logits
            self.margin = min(self.margin, run_margin(self, [z.detach() for z in zs], y_in))
            return out

    return Rec


class ChannelsLast(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, v):
        return self.m(v.contiguous(memory_format=torch.channels_last))


def fra31_apgdt():
    """torchattacks 3.5.1's APGDT takes an L2 step with the first point's step size for every point
    (`step_size[0] * grad`); fra31's attack_single_run, shared by APGD and APGD-T, uses each point's
    own (`step_size * self.normalize(grad)`), as its APGD does. The oracle follows fra31: that one
    token replaced."""
    import inspect
    import textwrap
    src = textwrap.dedent(inspect.getsource(torchattacks.APGDT.attack_single_run))
    assert src.count("step_size[0] * grad") == 1
    ns = dict(vars(sys.modules[torchattacks.APGDT.__module__]))
    exec(src.replace("step_size[0] * grad", "step_size * grad"), ns)
    return type("APGDT_fra31", (torchattacks.APGDT,), {"attack_single_run": ns["attack_single_run"]})


def main(d):
    t, meta = load_safetensors(f"{d}/case.safetensors")
    f = lambda k: float(meta[k])
    in_c, n_classes = int(meta["in_c"]), int(meta["n_classes"])
    model = SmallCNN(in_c, n_classes, [f("mean")], [f("std")])
    sd = {k: v for k, v in t.items() if k.startswith(("conv", "bn", "fc"))}
    model.load_state_dict(sd, strict=True)
    model.eval()
    ref = {}

    # The losses as the reference writes them, float64, autograd for the gradient.
    z = t["logits"].double().requires_grad_(True)
    ly, lt = t["ly"], t["lt"]
    apgd = torchattacks.APGD(model, loss="dlr")
    apgdt = torchattacks.APGDT(model, n_classes=n_classes)
    for name, fn in (("dlr", lambda: apgd.dlr_loss(z, ly)), ("dlrt", lambda: apgdt.dlr_loss_targeted(z, ly, lt))):
        loss = fn()
        ref[f"{name}.loss"] = loss.detach()
        ref[f"{name}.grad"] = torch.autograd.grad(loss.sum(), z)[0]

    x, y = nchw(t["x"]), t["y"]
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_model = ChannelsLast(cl)
    steps = int(meta["steps"])
    cases = {
        "ce_linf": (torchattacks.APGD, dict(norm="Linf", eps=f("eps_linf"), loss="ce")),
        "dlr_linf": (torchattacks.APGD, dict(norm="Linf", eps=f("eps_linf"), loss="dlr")),
        "t_linf": (torchattacks.APGDT, dict(norm="Linf", eps=f("eps_linf"), n_classes=n_classes)),
        "ce_l2": (torchattacks.APGD, dict(norm="L2", eps=f("eps_l2"), loss="ce")),
        "dlr_linf_short": (torchattacks.APGD, dict(norm="Linf", eps=f("eps_linf"), loss="dlr")),
        "t_linf_short": (torchattacks.APGDT, dict(norm="Linf", eps=f("eps_linf"), n_classes=n_classes)),
        "t_l2_short": (fra31_apgdt(), dict(norm="L2", eps=f("eps_l2"), n_classes=n_classes)),
    }
    for name, (cls, kw) in cases.items():
        kw["steps"] = int(meta["steps_short"]) if name.endswith("_short") else steps
        atk = recording(cls)(model, n_restarts=1, seed=0, **kw)
        atk.x_all, atk.starts = x, []
        acc, adv = atk.perturb(x.clone(), y.clone(), cheap=True)
        runs = 1 if cls is torchattacks.APGD else n_classes - 1  # APGDT and its fra31 twin
        starts = atk.starts + [x] * (runs - len(atk.starts))
        ref[f"{name}.adv"] = nhwc(adv)
        ref[f"{name}.robust"] = acc.float()
        ref[f"{name}.margin"] = torch.tensor([atk.margin])
        ref[f"{name}.starts"] = torch.stack([nhwc(s) for s in starts])
        # PyTorch against itself: the same attack on the model run channels-last (NHWC, as ours),
        # whose conv kernels sum in another order; where APGD's comparisons (loss > best, the
        # checkpoint counts) sit within that rounding, the two runs part. adv_alt is the yardstick.
        atk2 = cls(cl_model, n_restarts=1, seed=0, **kw)
        _, adv2 = atk2.perturb(x.clone(), y.clone(), cheap=True)
        ref[f"{name}.adv_alt"] = nhwc(adv2)
        print(f"apgd_ref.py: {name}: {len(atk.starts)} runs, robust {int(acc.sum())}/{len(acc)}, closest decision "
              f"{atk.margin:.1e} (relative); PyTorch vs "
              f"PyTorch with x in the other layout: max abs diff {float((adv2 - adv).abs().max()):.2e}")
    save_safetensors(f"{d}/ref.safetensors", ref)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1])
