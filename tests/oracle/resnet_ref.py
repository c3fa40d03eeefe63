"""PyTorch oracle for tests/test_models.c.

Usage: /usr/bin/python3 tests/oracle/resnet_ref.py OUT_DIR [--f64]

For each case (resnet18, resnet18 with the small-input stem, ResNet-50 with the
seed paper's geometric residual sum, smallcnn) it builds the model with random
weights and random batchnorm running statistics and writes

  OUT_DIR/<case>.state.safetensors   the state_dict before any step (F32, num_batches_tracked I64)
  OUT_DIR/<case>.ref.safetensors     input (N, H, W, C) NHWC pixels in [0, 1], labels (N) I64, and for
                                     mode in (eval, train), in that order, from the same starting state:
                                       <mode>.logits (N, K), <mode>.loss (1), <mode>.input_grad (N, H, W, C),
                                       <mode>.grad.<param name> (parameter gradients of the mean CE loss)
                                     and after.<buffer name>: running stats after the train step.
  OUT_DIR/<case>.cfg                 the model name and config for the C side, one "key value" per line

The references are computed in float32 like ours (torch's double conv path is
~30x slower on CPU and the test has a time budget); --f64 computes them in
float64 from the same float32 weights, an exact oracle, for a run by hand. It also writes OUT_DIR/listing_<model>.txt
("name dtype d0,d1,..." per state_dict entry, then "params <count>") for every
torchvision ResNet at 1000 classes and for smallcnn at 1x28x28, 10 classes.

Exits 77 when torch or torchvision is not importable (the C test then skips the oracle part).
"""
import json
import os
import struct
import sys
import types

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"resnet_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)


# --- safetensors, written by hand: 8-byte LE header length, JSON header, raw data ---
def save_safetensors(path, tensors, meta=None):
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, off = ({"__metadata__": dict(meta)} if meta else {}), [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.float64:
            t = t.float()
        b = t.numpy()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + b.nbytes]}
        off += b.nbytes
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b.data)


# --- smallcnn, smallcnn6: the PyTorch twin of src/nn/smallcnn.c ---
SMALLCNN = [32, 32, "M", 64, 64, "M", 128]
SMALLCNN6 = [32, 32, "M", 64, 64, "M", 128, 128]


class SmallCNN(nn.Module):
    def __init__(self, in_c=1, n_classes=10, dropout=0.0, cfg=SMALLCNN):
        super().__init__()
        self.cfg, c, i = cfg, in_c, 0
        for w in cfg:
            if w == "M":
                continue
            i += 1
            setattr(self, f"conv{i}", nn.Conv2d(c, w, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(w))
            c = w
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, n_classes)
        for m in self.modules():  # torchvision ResNet's conv init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        i = 0
        for w in self.cfg:
            if w == "M":
                x = F.max_pool2d(x, 2)
            else:
                i += 1
                x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(self.dropout(x))


# --- ResNet-D geometric residual (SEED_FACTS.md), around torchvision's stages ---
def geometric_stage_forward(stage, x):
    """out_1 = B_1(x), S_1 = out_1; out_i = B_i(out_{i-1}) + gamma S_{i-1}; S_i = gamma S_{i-1} + out_i."""
    blocks = list(stage.children())
    out = blocks[0](x)
    s = out
    for b in blocks[1:]:
        out = b(out) + stage.gamma * s
        s = stage.gamma * s + out
    return out


def make_resnet(name, n_classes, small_input=False, gamma=0.0):
    m = getattr(torchvision.models, name)(num_classes=n_classes)
    if small_input:  # CIFAR-style stem: conv1 3x3 stride 1, no max-pool (names unchanged)
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
        m.maxpool = nn.Identity()
    if gamma:
        for s in (m.layer1, m.layer2, m.layer3, m.layer4):  # bound methods survive copy.deepcopy
            s.gamma = gamma
            s.forward = types.MethodType(geometric_stage_forward, s)
    return m


def randomize_bn(model):
    """Random affine parameters and running stats, so eval mode and the stat update are really tested.

    The last batchnorm of each residual branch (BasicBlock.bn2, Bottleneck.bn3) gets a small weight,
    U(0, 0.2), like a trained network and like torchvision's zero_init_residual. With full-size
    branches a freshly initialised deep BN network in train mode is chaotic: float32 rounding is
    amplified layer by layer until ReLUs flip, and torch's own float32 gradients then differ from
    its float64 ones by up to 1e-1 (measured here for resnet34/50 at these sizes); with damped
    branches torch float32 agrees with float64 to ~1e-5, so the comparison tests our kernels.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(3)
        for m in model.modules():
            if isinstance(m, torchvision.models.resnet.Bottleneck):
                m.bn3.weight.uniform_(0.0, 0.2)
            elif isinstance(m, torchvision.models.resnet.BasicBlock):
                m.bn2.weight.uniform_(0.0, 0.2)


def run_case(out, case, model_name, model, n, c, h, w, k, mean, std, cfg_extra, dtype):
    randomize_bn(model)
    state = {name: t.clone() for name, t in model.state_dict().items()}
    save_safetensors(os.path.join(out, f"{case}.state.safetensors"), state)

    x = torch.rand(n, c, h, w)
    labels = torch.randint(0, k, (n,))
    ref = {"input": x.permute(0, 2, 3, 1), "labels": labels}

    model = model.to(dtype)
    mean_t = torch.tensor(mean[:c], dtype=dtype).view(1, c, 1, 1)
    std_t = torch.tensor(std[:c], dtype=dtype).view(1, c, 1, 1)
    for mode in ("eval", "train"):
        model.train(mode == "train")
        model.zero_grad(set_to_none=True)
        xd = x.detach().clone().to(dtype).requires_grad_(True)  # a fresh leaf per mode
        logits = model((xd - mean_t) / std_t)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        ref[f"{mode}.logits"] = logits.detach()
        ref[f"{mode}.loss"] = loss.detach().reshape(1)
        ref[f"{mode}.input_grad"] = xd.grad.permute(0, 2, 3, 1)
        for name, p in model.named_parameters():
            ref[f"{mode}.grad.{name}"] = p.grad
    for name, b in model.named_buffers():
        ref[f"after.{name}"] = b
    save_safetensors(os.path.join(out, f"{case}.ref.safetensors"), ref)

    with open(os.path.join(out, f"{case}.cfg"), "w") as f:
        f.write(f"model {model_name}\nbatch {n}\nin_c {c}\nin_h {h}\nin_w {w}\nn_classes {k}\n")
        f.write("mean " + " ".join(f"{v:.9g}" for v in mean) + "\n")
        f.write("std " + " ".join(f"{v:.9g}" for v in std) + "\n")
        for key, v in cfg_extra.items():
            f.write(f"{key} {v}\n")


def write_listing(out, name, model):
    with open(os.path.join(out, f"listing_{name}.txt"), "w") as f:
        for key, t in model.state_dict().items():
            dt = "I64" if t.dtype == torch.int64 else "F32"
            f.write(f"{key} {dt} {','.join(str(d) for d in t.shape)}\n")
        f.write(f"params {sum(p.numel() for p in model.parameters())}\n")


def main():
    out = sys.argv[1]
    dtype = torch.float64 if "--f64" in sys.argv[2:] else torch.float32
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    # Listings: structure only, so skip the (slow) random init of the deep models.
    init = torch.nn.init
    saved = {f: getattr(init, f) for f in ("kaiming_normal_", "kaiming_uniform_", "uniform_", "constant_",
                                           "normal_", "zeros_", "ones_")}
    for f in saved:
        setattr(init, f, lambda t, *a, **kw: t)
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        write_listing(out, name, getattr(torchvision.models, name)())
    write_listing(out, "smallcnn", SmallCNN(1, 10))
    write_listing(out, "smallcnn6", SmallCNN(1, 10, cfg=SMALLCNN6))
    for f, fn in saved.items():
        setattr(init, f, fn)

    zero4, one4 = [0.0] * 4, [1.0] * 4
    gamma = float(torch.tensor(0.04278, dtype=torch.float32))  # the C side holds it as a float

    torch.manual_seed(1)
    run_case(out, "resnet18", "resnet18", make_resnet("resnet18", 10), 2, 3, 48, 48, 10, zero4, one4, {}, dtype)
    torch.manual_seed(2)
    run_case(out, "resnet18_small", "resnet18", make_resnet("resnet18", 10, small_input=True), 2, 3, 16, 16, 10,
             zero4, one4, {"small_input": 1}, dtype)
    torch.manual_seed(3)
    run_case(out, "resnet50_d", "resnet50", make_resnet("resnet50", 10, gamma=gamma), 2, 3, 40, 40, 10,
             zero4, one4, {"gamma": f"{gamma:.9g}"}, dtype)
    torch.manual_seed(4)
    run_case(out, "smallcnn", "smallcnn", SmallCNN(1, 10), 4, 1, 28, 28, 10, [0.2860, 0, 0, 0],
             [0.3530, 1, 1, 1], {}, dtype)
    torch.manual_seed(5)
    run_case(out, "smallcnn6", "smallcnn6", SmallCNN(1, 10, cfg=SMALLCNN6), 4, 1, 28, 28, 10, [0.2860, 0, 0, 0],
             [0.3530, 1, 1, 1], {}, dtype)


if __name__ == "__main__":
    main()
