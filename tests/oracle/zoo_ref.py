"""PyTorch oracle for tests/test_zoo.c: every model of the zoo beyond tests/test_models.c's cases.

Usage: /usr/bin/python3 tests/oracle/zoo_ref.py OUT_DIR [CASE ...]

Writes, per case, the same files as resnet_ref.py (see there): <case>.state.safetensors,
<case>.ref.safetensors (input, labels, eval/train logits, loss, input gradient, parameter
gradients, running stats after the train step) and <case>.cfg. The multi-task case also stores
"boxes", the predicted box and the two loss terms.

To keep the files small (VGG's classifier.0 alone is 103M floats) two things differ from
resnet_ref.py, neither weakening the comparison:
  - the state is stored as BF16 after rounding the model's own weights and buffers to bfloat16
    values first, so PyTorch computes with exactly the values robustcv loads;
  - a parameter gradient with more than 2^14 elements is stored as the strided sample
    grad.flatten()[::s], s = (numel // 4096) | 1 (odd, so the samples walk across rows and
    columns); test_zoo.c samples its own gradient the same way. Also writes listing_<model>.txt (state_dict names, dtypes,
shapes, parameter count) for every DenseNet, VGG-bn and attention model at 1000 classes.

References: torchvision 0.14 for ResNet, DenseNet and VGG; tests/oracle/attention_ref.py (from the
paper) for the Residual Attention Network. Exits 77 without torch/torchvision.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"zoo_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)

import attention_ref  # noqa: E402
from resnet_ref import make_resnet, randomize_bn, save_safetensors, write_listing  # noqa: E402

SAMPLE_ABOVE = 1 << 14


def sample_stride(numel):
    return (numel // 4096) | 1 if numel > SAMPLE_ABOVE else 1


def save_bf16_state(path, sd):
    """state_dict as safetensors: float tensors BF16 (already bf16-exact), int64 as I64."""
    header, blobs, off = {}, [], 0
    for name, t in sd.items():
        t = t.detach().contiguous()
        if t.dtype == torch.int64:
            b, dt = t.numpy().tobytes(), "I64"
        else:
            b, dt = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes(), "BF16"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def round_to_bf16(model):
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dtype == torch.float32:
                t.copy_(t.to(torch.bfloat16).float())


def damp_branches(model):
    """Random BN affine/statistics (randomize_bn), and small last convs of the residual branches
    of the attention network's pre-activation units (the same conditioning reason as there)."""
    randomize_bn(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, attention_ref.RU):
                m.conv3.weight.mul_(0.2)


def make_densenet(name, k, small_input=False):
    m = getattr(torchvision.models, name)(num_classes=k)
    if small_input:  # 3x3 stride-1 conv0, no pool0 (names unchanged)
        m.features.conv0 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.features.pool0 = nn.Identity()
    return m


def make_vgg(name, k, small_input=False, dropout=0.5):
    m = getattr(torchvision.models, name)(num_classes=k, dropout=dropout)
    if small_input:  # the last max-pool dropped, indices unchanged
        last = max(i for i, l in enumerate(m.features) if isinstance(l, nn.MaxPool2d))
        m.features[last] = nn.Identity()
    return m


class BoxNet(nn.Module):
    """resnet18+box: torchvision ResNet-18 plus box = sigmoid(Linear(512, 4)) on the pooled features."""

    def __init__(self, k, small_input=False):
        super().__init__()
        self.net = make_resnet("resnet18", k, small_input=small_input)
        self.box = nn.Linear(512, 4)

    def state_dict_flat(self):  # our names: the ResNet's without the "net." prefix, then box.*
        sd = dict(self.net.state_dict())
        sd.update({f"box.{k}": v for k, v in self.box.state_dict().items()})
        return sd

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.avgpool(n.layer4(n.layer3(n.layer2(n.layer1(x))))).flatten(1)
        return n.fc(x), torch.sigmoid(self.box(x))


def run_case(out, case, model_name, model, n, c, h, w, k, cfg_extra, box_lambda=None):
    damp_branches(model)
    round_to_bf16(model)
    named = lambda: (model.state_dict_flat() if isinstance(model, BoxNet) else model.state_dict())
    save_bf16_state(os.path.join(out, f"{case}.state.safetensors"), named())
    prefix = "net." if isinstance(model, BoxNet) else ""
    pname = lambda s: s[len(prefix):] if s.startswith(prefix) else s

    x = torch.rand(n, c, h, w)
    labels = torch.randint(0, k, (n,))
    ref = {"input": x.permute(0, 2, 3, 1), "labels": labels}
    if box_lambda is not None:
        lo = torch.rand(n, 2) * 0.5
        boxes = torch.cat([lo, lo + 0.1 + torch.rand(n, 2) * 0.4], 1)
        ref["boxes"] = boxes
    for mode in ("eval", "train"):
        model.train(mode == "train")
        model.zero_grad(set_to_none=True)
        xd = x.detach().clone().requires_grad_(True)
        outp = model(xd)
        if box_lambda is not None:
            logits, box = outp
            l_cls = F.cross_entropy(logits, labels)
            l_box = F.smooth_l1_loss(box, boxes, beta=1.0)
            loss = l_cls + box_lambda * l_box
            ref[f"{mode}.box"] = box.detach()
            ref[f"{mode}.loss_cls"] = l_cls.detach().reshape(1)
            ref[f"{mode}.loss_box"] = l_box.detach().reshape(1)
        else:
            logits = outp
            loss = F.cross_entropy(logits, labels)
        loss.backward()
        ref[f"{mode}.logits"] = logits.detach()
        ref[f"{mode}.loss"] = loss.detach().reshape(1)
        ref[f"{mode}.input_grad"] = xd.grad.permute(0, 2, 3, 1)
        for name, p in model.named_parameters():
            ref[f"{mode}.grad.{pname(name)}"] = p.grad.flatten()[::sample_stride(p.numel())].clone()
    for name, b in model.named_buffers():
        ref[f"after.{pname(name)}"] = b
    save_safetensors(os.path.join(out, f"{case}.ref.safetensors"), ref)
    with open(os.path.join(out, f"{case}.cfg"), "w") as f:
        f.write(f"model {model_name}\nbatch {n}\nin_c {c}\nin_h {h}\nin_w {w}\nn_classes {k}\n")
        for key, v in cfg_extra.items():
            f.write(f"{key} {v}\n")


GAMMA = float(torch.tensor(0.04278, dtype=torch.float32))  # the C side holds it as a float

# case -> (seed, model name, builder, batch, size, small_input, extra cfg)
#
# Gradient tolerances. Logits and losses are always compared at 1e-4. Gradients are too, except
# where PyTorch's own float32 gradients disagree with its float64 ones (same weights and input;
# measured by hand, 1 thread, torch 1.13.1, numbers below): deep train-mode batchnorm at batch 2
# amplifies rounding, and max-pooling of un-rectified values (the attention mask branch) has
# near-ties that float32 rounding decides either way. There grad_tol_<mode> is 10x PyTorch's
# own float32 error, and -1 (not compared; logits, loss and running statistics still are) where
# that error exceeds 1e-2, since a tolerance above 0.1 would not test anything.
#   PyTorch f32 vs f64, max relative error over input and parameter gradients (eval | train):
#   resnet34_d 9e-7 | 5e-6; resnet101_small 1e-6 | 2e-5; resnet152_d 1e-6 | 2e-5;
#   densenet121 8e-7 | 6e-2; densenet121_small 1e-6 | 3e-5; densenet169 2e-6 | 1e-1;
#   densenet201 1e-6 | 5e-1; vgg11_bn 2e-6 | 4e-6; vgg13_bn_small 1e-6 | 6e-6; vgg16_bn 2e-6 | 1e-1;
#   vgg19_bn 3e-6 | 2e-2; attention56 1.3e-3 | 3.6e-3; attention92_small 6e-3 | 6e-2.
# (VGG conv biases feed batchnorm: in train mode their gradient is exactly 0 in exact arithmetic,
# and test_zoo.c checks ours is negligible instead of a relative error of two roundings.)
CASES = {
    "resnet34_d": (11, "resnet34", lambda: make_resnet("resnet34", 10, gamma=GAMMA), 2, 64, 0, {"gamma": GAMMA}),
    "resnet101_small": (14, "resnet101", lambda: make_resnet("resnet101", 10, small_input=True), 2, 16, 1, {}),
    "resnet152_d": (13, "resnet152", lambda: make_resnet("resnet152", 10, gamma=GAMMA), 2, 64, 0, {"gamma": GAMMA}),
    "densenet121": (21, "densenet121", lambda: make_densenet("densenet121", 10), 2, 64, 0, {"grad_tol_train": -1}),
    "densenet121_small": (22, "densenet121", lambda: make_densenet("densenet121", 10, True), 2, 16, 1, {}),
    "densenet169": (23, "densenet169", lambda: make_densenet("densenet169", 10), 2, 64, 0, {"grad_tol_train": -1}),
    "densenet201": (24, "densenet201", lambda: make_densenet("densenet201", 10), 2, 64, 0, {"grad_tol_train": -1}),
    # train-mode twins without dropout (random masks cannot match); eval mode is the same either way
    "vgg11_bn": (31, "vgg11_bn", lambda: make_vgg("vgg11_bn", 10, dropout=0.0), 2, 64, 0, {"dropout": 0}),
    "vgg13_bn_small": (32, "vgg13_bn", lambda: make_vgg("vgg13_bn", 10, True, 0.0), 2, 32, 1, {"dropout": 0}),
    "vgg16_bn": (33, "vgg16_bn", lambda: make_vgg("vgg16_bn", 10, dropout=0.0), 2, 64, 0,
                 {"dropout": 0, "grad_tol_train": -1}),
    "vgg19_bn": (34, "vgg19_bn", lambda: make_vgg("vgg19_bn", 10, dropout=0.0), 2, 64, 0,
                 {"dropout": 0, "grad_tol_train": -1}),
    "attention56": (41, "attention56", lambda: attention_ref.attention56(n_classes=10), 2, 64, 0,
                    {"grad_tol_eval": 1.3e-2, "grad_tol_train": 3.6e-2}),
    "attention92_small": (42, "attention92", lambda: attention_ref.attention92(n_classes=10, small_input=True),
                          2, 32, 1, {"grad_tol_eval": 6e-2, "grad_tol_train": -1}),
}


def main():
    out = sys.argv[1]
    only = sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    if not only:
        init = torch.nn.init
        saved = {f: getattr(init, f) for f in ("kaiming_normal_", "kaiming_uniform_", "uniform_", "constant_",
                                               "normal_", "zeros_", "ones_")}
        for f in saved:
            setattr(init, f, lambda t, *a, **kw: t)
        for name in ("densenet121", "densenet169", "densenet201", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
            write_listing(out, name, getattr(torchvision.models, name)())
        write_listing(out, "attention56", attention_ref.attention56())
        write_listing(out, "attention92", attention_ref.attention92())
        for f, fn in saved.items():
            setattr(init, f, fn)
    for case, (seed, name, make, n, size, small, extra) in CASES.items():
        if only and case not in only:
            continue
        torch.manual_seed(seed)
        cfg = dict(extra)
        if small:
            cfg["small_input"] = 1
        run_case(out, case, name, make(), n, 3, size, size, 10, {k: f"{v:.9g}" if isinstance(v, float) else v
                                                              for k, v in cfg.items()})
    if not only or "resnet18_box" in only:
        torch.manual_seed(51)
        run_case(out, "resnet18_box", "resnet18+box", BoxNet(10), 2, 3, 64, 64, 10, {"box_lambda": 0.5},
                 box_lambda=0.5)


if __name__ == "__main__":
    main()
