"""PyTorch oracle for tests/test_attack.c.

Usage: /usr/bin/python3 tests/oracle/attack_ref.py DIR

Reads DIR/case.safetensors, written by the C test: a smallcnn state_dict (torchvision names),
x (N, H, W, C) pixels in [0, 1], y (N) I64 labels, t (N) I64 target classes, x_noisy, aug1, aug2
(the stability and AugMix views the C side drew), trades_start (x + 0.001 N(0, I)) and noise_x
(x + sigma N(0, I)) from the C side's draws, aug_in (8, 8, 3) 8-bit values / 255, and
the settings as metadata. Writes DIR/ref.safetensors:

  adv.fgsm, adv.pgd, adv.pgd_l2, adv.pgd_t   eval-mode attacks, torchattacks (FGSM, PGD, PGDL2, targeted
                                             PGD) with random_start=False; the formulas written out
                                             below when torchattacks is not importable
  <recipe>.loss, <recipe>.grad.<param>       train-mode gradient of each recipe's loss, from the same
                                             starting state: standard, fgsm, kurakin, stability, augmix, pgd,
                                             trades, noise
  trades.x_adv                               TRADES' inner maximisation (eval mode) from trades_start
  pil.<op>                                   PIL ImageOps autocontrast / equalize / posterize(3) /
                                             solarize(128) of aug_in

Prints which attack implementation it used. Exits 77 when torch is not importable.
"""
import json
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"attack_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)

try:
    import torchattacks
except Exception as e:  # noqa: BLE001 - any import failure means "use the formulas"
    torchattacks = None
    print(f"attack_ref.py: torchattacks unavailable ({e}); using the written-out formulas", file=sys.stderr)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    dt = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=dt[h["dtype"]]).reshape(h["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().cpu().float().contiguous().numpy()
        header[name] = {"dtype": "F32", "shape": list(b.shape), "data_offsets": [off, off + b.nbytes]}
        off += b.nbytes
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b.tobytes())


class SmallCNN(nn.Module):
    """The PyTorch twin of src/nn/smallcnn.c, with the model's normalization in front."""

    def __init__(self, in_c, n_classes, mean, std):
        super().__init__()
        widths, c = [32, 32, 64, 64, 128], in_c
        for i, w in enumerate(widths, 1):
            setattr(self, f"conv{i}", nn.Conv2d(c, w, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(w))
            c = w
        self.fc = nn.Linear(c, n_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        x = (x - self.mean) / self.std
        block = lambda i, x: F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        x = F.max_pool2d(block(2, block(1, x)), 2)
        x = F.max_pool2d(block(4, block(3, x)), 2)
        x = F.adaptive_avg_pool2d(block(5, x), 1).flatten(1)
        return self.fc(x)


def nchw(t):
    return t.permute(0, 3, 1, 2).contiguous()


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


# --- attacks, eval mode ---
def input_grad(model, x, y, targeted=False):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    if targeted:
        loss = -loss
    return torch.autograd.grad(loss, x)[0]


def fgsm(model, x, y, eps):
    if torchattacks:
        return torchattacks.FGSM(model, eps=eps)(x, y)
    return (x + eps * input_grad(model, x, y).sign()).clamp(0, 1)


def pgd(model, x, y, eps, alpha, steps, targeted=False):
    if torchattacks:
        atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        if targeted:
            atk.set_mode_targeted_by_label(quiet=True)
        return atk(x, y)
    adv = x.clone()
    for _ in range(steps):
        adv = adv + alpha * input_grad(model, adv, y, targeted).sign()
        adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
    return adv


def pgd_l2(model, x, y, eps, alpha, steps):
    if torchattacks:
        return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    adv, n = x.clone(), x.shape[0]
    for _ in range(steps):
        g = input_grad(model, adv, y)
        g = g / (g.view(n, -1).norm(dim=1) + 1e-10).view(n, 1, 1, 1)
        d = adv + alpha * g - x
        f = torch.clamp(eps / d.view(n, -1).norm(dim=1), max=1.0)
        adv = (x + d * f.view(n, 1, 1, 1)).clamp(0, 1)
    return adv


def main(d):
    t, meta = load_safetensors(f"{d}/case.safetensors")
    f = lambda k: float(meta[k])
    in_c, k = int(meta["in_c"]), int(meta["n_classes"])
    mean, std = [f("mean")] * in_c, [f("std")] * in_c
    state = {n: v for n, v in t.items() if n.startswith(("conv", "bn", "fc"))}
    model = SmallCNN(in_c, k, mean, std)

    def fresh(train):
        model.load_state_dict(state)
        model.train(train)
        model.zero_grad()
        return model

    x, y, tg = nchw(t["x"]), t["y"], t["t"]
    ref = {}
    fresh(False)
    ref["adv.fgsm"] = nhwc(fgsm(model, x, y, f("fgsm_eps")))
    fresh(False)
    ref["adv.pgd"] = nhwc(pgd(model, x, y, f("pgd_eps"), f("pgd_alpha"), int(meta["pgd_steps"])))
    fresh(False)
    ref["adv.pgd_t"] = nhwc(pgd(model, x, tg, f("pgd_eps"), f("pgd_alpha"), int(meta["pgd_steps"]), targeted=True))
    fresh(False)
    ref["adv.pgd_l2"] = nhwc(pgd_l2(model, x, y, f("l2_eps"), f("l2_alpha"), int(meta["pgd_steps"])))

    def grads(name, loss):
        loss.backward()
        ref[f"{name}.loss"] = loss.detach().view(1)
        for n, p in model.named_parameters():
            ref[f"{name}.grad.{n}"] = p.grad.detach().clone()

    # standard
    fresh(True)
    grads("standard", F.cross_entropy(model(x), y))
    # fgsm objective: a J(x) + (1 - a) J(x + eps sign(grad_x J)), the gradient from the train-mode forward
    a, eps = f("fgsm_alpha"), f("adv_eps")
    fresh(True)
    xr = x.clone().requires_grad_(True)
    l0 = F.cross_entropy(model(xr), y)
    gx = torch.autograd.grad(l0, xr, retain_graph=True)[0]
    xa = (x + eps * gx.sign()).clamp(0, 1).detach()
    grads("fgsm", a * l0 + (1 - a) * F.cross_entropy(model(xa), y))
    # kurakin: last k replaced by eval-mode FGSM images; (sum_clean + lam sum_adv) / (m - k + lam k)
    kk, lam, m = int(meta["adv_k"]), f("lambda"), x.shape[0]
    fresh(False)
    xk = (x[m - kk:] + eps * input_grad(model, x[m - kk:], y[m - kk:]).sign()).clamp(0, 1)
    model.train()
    model.zero_grad()
    per = F.cross_entropy(model(torch.cat([x[:m - kk], xk])), y, reduction="none")
    grads("kurakin", (per[:m - kk].sum() + lam * per[m - kk:].sum()) / (m - kk + lam * kk))
    # stability: CE(f(x)) + alpha KL(P(x) || P(x')), gradient through both
    fresh(True)
    zn = model(nchw(t["x_noisy"]))
    z = model(x)
    kl = F.kl_div(F.log_softmax(zn, 1), F.softmax(z, 1), reduction="batchmean")
    grads("stability", F.cross_entropy(z, y) + f("stab_alpha") * kl)
    # augmix: CE(f(x)) + lambda JSD, AugMix's clamped mixture
    fresh(True)
    z1, z2, z0 = model(nchw(t["aug1"])), model(nchw(t["aug2"])), model(x)
    p0, p1, p2 = F.softmax(z0, 1), F.softmax(z1, 1), F.softmax(z2, 1)
    lm = torch.clamp((p0 + p1 + p2) / 3.0, 1e-7, 1).log()
    jsd = (F.kl_div(lm, p0, reduction="batchmean") + F.kl_div(lm, p1, reduction="batchmean")
           + F.kl_div(lm, p2, reduction="batchmean")) / 3.0
    grads("augmix", F.cross_entropy(z0, y) + f("jsd_lambda") * jsd)
    # pgd training: eval-mode PGD (no random start), then the train-mode loss on it
    fresh(False)
    xp = pgd(model, x, y, f("tr_pgd_eps"), f("tr_pgd_alpha"), int(meta["tr_pgd_steps"]))
    model.train()
    model.zero_grad()
    grads("pgd", F.cross_entropy(model(xp), y))

    # trades (yaodongyu/TRADES trades.py): eval-mode inner maximisation of KL_sum from the C side's
    # x + 0.001 N(0, I), then the train-mode CE + beta * KL_sum / B
    fresh(False)
    eps, step = f("trades_eps"), f("trades_step")
    xa = nchw(t["trades_start"])
    for _ in range(int(meta["trades_steps"])):
        xa.requires_grad_()
        with torch.enable_grad():
            loss_kl = F.kl_div(F.log_softmax(model(xa), dim=1), F.softmax(model(x), dim=1), reduction="sum")
        g = torch.autograd.grad(loss_kl, [xa])[0]
        xa = xa.detach() + step * torch.sign(g.detach())
        xa = torch.min(torch.max(xa, x - eps), x + eps)
        xa = torch.clamp(xa, 0.0, 1.0)
    xa = torch.clamp(xa, 0.0, 1.0).detach()
    ref["trades.x_adv"] = nhwc(xa)
    model.train()
    model.zero_grad()
    loss_nat = F.cross_entropy(model(x), y)
    loss_rob = (1.0 / x.shape[0]) * F.kl_div(F.log_softmax(model(xa), dim=1), F.softmax(model(x), dim=1),
                                             reduction="sum")
    grads("trades", loss_nat + f("trades_beta") * loss_rob)
    # noise (Cohen et al. 2019): CE on the C side's x + sigma N(0, I), not clamped
    fresh(True)
    grads("noise", F.cross_entropy(model(nchw(t["noise_x"])), y))

    # PIL's point ops on an 8-bit image
    try:
        from PIL import Image, ImageOps
        img = Image.fromarray((t["aug_in"].numpy() * 255).round().astype(np.uint8))
        ops = {"autocontrast": ImageOps.autocontrast(img), "equalize": ImageOps.equalize(img),
               "posterize": ImageOps.posterize(img, 3), "solarize": ImageOps.solarize(img, 128)}
        for n, o in ops.items():
            ref[f"pil.{n}"] = torch.from_numpy(np.asarray(o).astype(np.float32) / 255.0)
    except ImportError:
        print("attack_ref.py: PIL unavailable, no pil.* references", file=sys.stderr)
    save_safetensors(f"{d}/ref.safetensors", ref)
    print("attack_ref.py: attacks by", f"torchattacks {torchattacks.__version__}" if torchattacks else "formulas")


if __name__ == "__main__":
    torch.manual_seed(0)
    main(sys.argv[1])
