#!/usr/bin/python3
"""PyTorch reference for tests/test_optim.c: torch.optim, torch.optim.lr_scheduler and
torch.nn.utils.clip_grad_norm_ on fixed numbers. Prints (all values float32, as float64 reprs):

  cfg NAME                       one optimizer configuration, then
  p0 v...                        initial parameters: fc.weight (2x3), fc.bias (2), fc2.weight (2x2),
                                 fc3.weight (2x2) concatenated; fc2 has lr_mult 0.5 (its own param
                                 group), fc3 is frozen (not in the optimizer)
  lr t LR                        learning rate passed at step t (1-based)
  g t v...                       gradients at step t (all four tensors)
  p t v...                       parameters after step t
  sched NAME e LR                lr during epoch e
  clip MAX NORM v...             total norm and the clipped gradients (non-frozen tensors)
"""
import warnings

import torch

warnings.filterwarnings("ignore")  # SequentialLR calls step(0), which PyTorch 1.13 flags as deprecated

SHAPES = [(2, 3), (2,), (2, 2), (2, 2)]
STEPS = 5


def fmt(t):
    return " ".join(repr(float(x)) for x in t.reshape(-1).tolist())


def params():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=g).requires_grad_(True) for s in SHAPES]


def grads(t):
    g = torch.Generator().manual_seed(100 + t)
    return [torch.randn(s, generator=g) * (0.5 + t) for s in SHAPES]


CONFIGS = {
    # name: (constructor, lr per step)
    "sgd": (lambda groups: torch.optim.SGD(groups, lr=0.1), None),
    "sgd_momentum_wd": (lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, dampening=0.1,
                                                       weight_decay=1e-2), None),
    "sgd_nesterov": (lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=5e-4,
                                                    nesterov=True), None),
    "adam": (lambda groups: torch.optim.Adam(groups, lr=1e-2), None),
    "adam_wd": (lambda groups: torch.optim.Adam(groups, lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                                weight_decay=1e-2), None),
    "adamw": (lambda groups: torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1),
              lambda t: 1e-2 * (1 - 0.1 * t)),
}


def run(name, make, lr_at):
    ps = params()
    print("cfg", name)
    print("p0", " ".join(fmt(p.detach()) for p in ps))
    base = None
    opt = make([{"params": ps[:2]}, {"params": [ps[2]]}])
    base = opt.param_groups[0]["lr"]
    opt.param_groups[1]["lr"] = base * 0.5
    for t in range(1, STEPS + 1):
        lr = lr_at(t) if lr_at else base
        opt.param_groups[0]["lr"] = lr
        opt.param_groups[1]["lr"] = lr * 0.5
        gs = grads(t)
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        opt.step()
        print("lr", t, repr(float(torch.tensor(lr, dtype=torch.float32))))
        print("g", t, " ".join(fmt(g) for g in gs))
        print("p", t, " ".join(fmt(p.detach()) for p in ps))


def sched(name, make, epochs=16):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    s = make(opt)
    for e in range(epochs):
        print("sched", name, e, repr(opt.param_groups[0]["lr"]))
        opt.step()
        s.step()


def main():
    for name, (make, lr_at) in CONFIGS.items():
        run(name, make, lr_at)
    L = torch.optim.lr_scheduler
    sched("step", lambda o: L.StepLR(o, step_size=3, gamma=0.5))
    sched("multistep", lambda o: L.MultiStepLR(o, milestones=[2, 5, 7], gamma=0.1))
    sched("cosine", lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=1e-3), epochs=11)
    sched("warmcos", lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=2),
                                                  L.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)],
                                              milestones=[2]), epochs=13)
    for max_norm in (0.5, 1000.0):
        ps = params()
        for p, g in zip(ps, grads(1)):
            p.grad = g.clone()
        n = torch.nn.utils.clip_grad_norm_(ps[:3], max_norm)
        print("clip", max_norm, repr(float(n)), " ".join(fmt(p.grad) for p in ps[:3]))


if __name__ == "__main__":
    main()
