#!/usr/bin/python3
"""Oracle of tests/test_mix.c: timm 0.9.16's Mixup, SoftTargetCrossEntropy and ModelEmaV3, and
torch.optim.swa_utils (AveragedModel, update_bn, SWALR), on the values the C test compares.

timm is installed --no-deps (scripts/deps.sh); its package __init__ wants huggingface_hub, so
the three modules (which import only numpy and torch) are loaded from their files.

  mix_ref.py all DIR    mixup, ce, ema, swalr and swa DIR, one after the other (one torch start-up)
  mix_ref.py mixup      timm Mixup on fixed batches; numpy's draws recorded in call order:
                        case / x / y / draws (u N v.. | b A N v.. | r LO HI v) / out / t / end
  mix_ref.py ce         SoftTargetCrossEntropy loss and autograd gradient on random logits
  mix_ref.py ks A FILE [A FILE..]  Kolmogorov-Smirnov p-value of each FILE's numbers against
                        Beta(A, A), one a line (scipy only: no torch start-up)
  mix_ref.py ema        ModelEmaV3(exclude_buffers=True) on a tiny model over fixed weight steps
  mix_ref.py swa DIR    AveragedModel + update_bn on DIR/w{1,2,3}.safetensors and DIR/x.bin;
                        prints the largest differences from DIR/ours.safetensors
  mix_ref.py swalr      SWALR's learning rate per epoch, torch's usage (one step per epoch)
"""
import importlib.util
import os
import sys

import numpy as np

if __name__ == "__main__" and sys.argv[1:2] == ["ks"]:
    from scipy import stats
    for a, path in zip(sys.argv[2::2], sys.argv[3::2]):
        print("%.6g" % stats.kstest(np.loadtxt(path), stats.beta(float(a), float(a)).cdf).pvalue)
    sys.exit(0)

import torch
import torch.nn as nn
import torch.nn.functional as F


def timm_module(rel):
    spec = importlib.util.find_spec("timm")
    path = os.path.join(spec.submodule_search_locations[0], rel)
    s = importlib.util.spec_from_file_location("timm_" + rel.replace("/", "_")[:-3], path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


def fmt(v):
    return " ".join("%.9g" % float(a) for a in np.asarray(v, dtype=np.float64).ravel())


# --- Mixup / CutMix ---
class Recorder:
    """Wraps np.random.rand / beta / randint: the values timm draws, in order, printed."""

    def __init__(self):
        self.log = []
        self.rand, self.beta, self.randint = np.random.rand, np.random.beta, np.random.randint

    def __enter__(self):
        def rand(*size):
            v = self.rand(*size)
            self.log.append("u %d %s" % (size[0] if size else 1, fmt(v)))
            return v

        def beta(a, b, size=None):
            assert a == b
            v = self.beta(a, b, size=size)
            self.log.append("b %.9g %d %s" % (a, 1 if size is None else size, fmt(v)))
            return v

        def randint(lo, hi=None, size=None):
            assert size is None and hi is not None
            v = self.randint(lo, hi)
            self.log.append("r %d %d %d" % (int(lo), int(hi), int(v)))
            return v

        np.random.rand, np.random.beta, np.random.randint = rand, beta, randint
        return self

    def __exit__(self, *a):
        np.random.rand, np.random.beta, np.random.randint = self.rand, self.beta, self.randint


MIX_CASES = [
    # name, mixup, cutmix, minmax, prob, switch, mode, correct_lam, smoothing
    ("batch_mixup", 0.8, 0.0, None, 1.0, 0.5, "batch", True, 0.1),
    ("batch_cutmix", 0.0, 1.0, None, 1.0, 0.5, "batch", True, 0.0),
    ("batch_both", 0.8, 1.0, None, 1.0, 0.5, "batch", True, 0.1),
    ("batch_nocorrect", 0.0, 0.4, None, 1.0, 0.5, "batch", False, 0.1),
    ("batch_minmax", 0.0, 0.0, (0.2, 0.8), 1.0, 0.5, "batch", True, 0.0),
    ("pair_both", 0.8, 1.0, None, 0.7, 0.5, "pair", True, 0.1),
    ("elem_both", 0.8, 1.0, None, 0.8, 0.5, "elem", True, 0.1),
    ("elem_cutmix_minmax", 0.0, 0.0, (0.3, 0.9), 1.0, 0.5, "elem", True, 0.2),
    ("elem_mixup", 0.3, 0.0, None, 1.0, 0.5, "elem", True, 0.0),
    ("pair_cutmix_nocorrect", 0.0, 2.0, None, 1.0, 0.5, "pair", False, 0.0),
]


def mixup():
    mx = timm_module("data/mixup.py")
    n, c, h, w, k = 6, 2, 7, 5, 4
    for ci, (name, ma, ca, mm, prob, sw, mode, corr, ls) in enumerate(MIX_CASES):
        for rep in range(4):  # several draws per case: boxes at the borders, skipped mixes
            np.random.seed(100 * ci + rep)
            g = torch.Generator().manual_seed(1000 * ci + rep)
            x = torch.rand(n, c, h, w, generator=g)
            y = torch.randint(0, k, (n,), generator=g)
            m = mx.Mixup(mixup_alpha=ma, cutmix_alpha=ca, cutmix_minmax=mm, prob=prob, switch_prob=sw, mode=mode,
                         correct_lam=corr, label_smoothing=ls, num_classes=k)
            print("case %s_%d %g %g %g %g %g %g %s %d %g %d %d %d %d %d" % (
                name, rep, ma, ca, mm[0] if mm else 0, mm[1] if mm else 0, prob, sw, mode, int(corr), ls, n, c, h, w, k))
            print("x", fmt(x.permute(0, 2, 3, 1)))
            print("y", " ".join(str(int(v)) for v in y))
            xo = x.clone()
            with Recorder() as r:
                xo, t = m(xo, y)
            for line in r.log:
                print(line)
            print("out", fmt(xo.permute(0, 2, 3, 1)))
            print("t", fmt(t))
            print("end")


def ce():
    stce = timm_module("loss/cross_entropy.py").SoftTargetCrossEntropy()
    g = torch.Generator().manual_seed(5)
    for n, k in ((5, 7), (8, 10)):
        z = (3 * torch.randn(n, k, generator=g)).requires_grad_(True)
        t = torch.softmax(2 * torch.randn(n, k, generator=g), 1)
        if n == 8:  # timm's own targets: mixed one-hots with smoothing
            y = torch.randint(0, k, (n,), generator=g)
            t = timm_module("data/mixup.py").mixup_target(y, k, lam=0.3, smoothing=0.1)
        loss = stce(z, t)
        loss.backward()
        print("ce %d %d" % (n, k))
        print("z", fmt(z.detach()))
        print("t", fmt(t))
        print("loss %.12g" % loss.item())
        print("grad", fmt(z.grad))


# --- EMA ---
def ema():
    ema_mod = timm_module("utils/model_ema.py")
    for warm, decay in ((0, 0.9), (1, 0.99)):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        e = ema_mod.ModelEmaV3(model, decay=decay, use_warmup=bool(warm), exclude_buffers=True, foreach=False)
        print("ema %d %g 7" % (warm, decay))
        print("w0", fmt(torch.cat([p.detach().ravel() for p in model.parameters()])))
        for step in range(1, 8):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p))
            model(torch.randn(4, 3))  # buffers move; the EMA copies them
            e.update(model, step=step)
            print("w%d" % step, fmt(torch.cat([p.detach().ravel() for p in model.parameters()])))
            print("d%d %.12g" % (step, e.get_decay(step)))
        print("e", fmt(torch.cat([p.detach().ravel() for p in e.module.parameters()])))
        same = all(torch.equal(a, b) for a, b in zip(e.module.buffers(), model.buffers()))
        print("buffers_copied %d" % same)


# --- SWA ---
def load_st(path):
    from attack_ref import load_safetensors
    return load_safetensors(path)[0]


def swa(d):
    from attack_ref import SmallCNN  # the PyTorch twin of src/nn/smallcnn.c
    from torch.optim.swa_utils import AveragedModel, update_bn
    meta = dict(line.split() for line in open(os.path.join(d, "meta.txt")))
    n, c, h, w, k, b = (int(meta[q]) for q in ("n", "c", "h", "w", "k", "batch"))
    model = SmallCNN(c, k, [float(meta["mean"])] * c, [float(meta["std"])] * c)
    model.load_state_dict(load_st(os.path.join(d, "w1.safetensors")))
    avg = AveragedModel(model)
    for i in (1, 2, 3):
        model.load_state_dict(load_st(os.path.join(d, "w%d.safetensors" % i)))
        avg.update_parameters(model)
    x = torch.from_numpy(np.fromfile(os.path.join(d, "x.bin"), dtype=np.float32).reshape(n, h, w, c)).permute(0, 3, 1, 2)
    loader = [x[s:s + b] for s in range(0, n - b + 1, b)]
    update_bn(loader, avg)
    ours = load_st(os.path.join(d, "ours.safetensors"))
    ref = avg.module.state_dict()
    perr = berr = 0.0
    nbt = True
    for name, v in ref.items():
        if name not in ours:
            continue
        if name.endswith("num_batches_tracked"):
            nbt = nbt and int(ours[name]) == int(v) == len(loader)
            continue
        e = ((ours[name].float() - v.float()).abs().max() / max(v.abs().max().item(), 1e-6)).item()
        if "running" in name:
            berr = max(berr, e)
        else:
            perr = max(perr, e)
    print("swa_param_err %.3g" % perr)
    print("swa_bn_err %.3g" % berr)
    print("swa_nbt_ok %d" % nbt)


def swalr():
    """SWALR constructed when SWA begins (epoch `start`), a cosine schedule before it."""
    from torch.optim.swa_utils import SWALR
    for anneal, start in ((3, 2), (0, 1), (10, 0), (2, 5)):
        p = nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8)
        lrs, lr0 = [], None
        for epoch in range(8):
            if epoch == start:
                lr0 = opt.param_groups[0]["lr"]
                sched = SWALR(opt, swa_lr=0.01, anneal_epochs=anneal, anneal_strategy="cos")
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            (sched if epoch >= start else main).step()
        print("swalr %d %d %.12g %s" % (anneal, start, lr0, fmt(lrs)))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    cmd = sys.argv[1]
    if cmd == "all":
        mixup()
        ce()
        ema()
        swalr()
        swa(sys.argv[2])
    elif cmd == "mixup":
        mixup()
    elif cmd == "ce":
        ce()
    elif cmd == "ema":
        ema()
    elif cmd == "swa":
        swa(sys.argv[2])
    elif cmd == "swalr":
        swalr()
    else:
        sys.exit("mix_ref.py: unknown command " + cmd)
