"""PyTorch oracle for tests/test_zoo.c: every model of the zoo beyond tests/test_models.c's cases.

Usage: /usr/bin/python3 tests/oracle/zoo_ref.py OUT_DIR [CASE ...]
       /usr/bin/python3 tests/oracle/zoo_ref.py --f64 OUT_DIR CASE.BACKEND ...

The first form writes, per case, <case>.state.safetensors (the state_dict), <case>.cfg and
<case>.ref.safetensors: input (N, H, W, C), labels, per mode (eval, train) the float32 logits and
loss, and the running stats after the train step ("after.<buffer>"), as resnet_ref.py does but
without gradients. The multi-task case also stores "boxes" and per mode the predicted box and
the two loss terms.

The second form computes the gradients. It runs after test_zoo.c has written
<case>.<backend>.kinks.safetensors: robustcv's decision at every kink of the network, per mode in
execution order (each ReLU's mask, each max-pool's argmax; tests/model_oracle.h). It loads the
state, input and labels into the PyTorch model and writes <case>.<backend>.f64.safetensors with,
per mode (gradients: input_grad (N, H, W, C) and grad.<param>):
  <mode>.logits, <mode>.input_grad, <mode>.grad.<name>  float64 on robustcv's kinks: every ReLU
      multiplies by robustcv's mask and every max-pool takes robustcv's argmax (the exact
      gradient of the piece of the network robustcv's forward pass chose);
  <mode>.torch32.*  PyTorch's float32 gradients; <mode>.torch64.*  float64 on PyTorch float32's
      own kinks (recorded in that pass): PyTorch's rounding error without the kink lottery, the
      yardstick of the train-mode tolerance (train mode only, unless RCV_ZOO_FULL=1);
  <mode>.kinks, <mode>.torch_kinks = [decisions that differ from float64's own, decisions, worst
      margin] for robustcv's and PyTorch float32's decisions, the margin of a differing decision
      being |ReLU input| (max-pool: window max - chosen value) in the float64 pass, relative to
      the largest magnitude of that ReLU's (max-pool's) input; the worst one's name in the
      metadata "<mode>.kink_worst" / "<mode>.torch_kink_worst";
  with RCV_ZOO_FULL=1 (by hand, for docs/models.md) also the eval-mode yardstick and
      <mode>.free.*: plain float64 with its own decisions (either float32 gradient against it
      shows the lottery).
Tensors are stored as float32 (rounding a float64 value to float32, 6e-8 relative, is far below
the tolerances).

Why: deep networks at batch 2 in train mode have ReLU inputs within float32 rounding of 0 (of
the millions of ReLU inputs here, a few to a few dozen). Any float32 implementation decides some
of them the other way than exact arithmetic, and each flip moves the exact gradient by a jump
(up to 0.5 relative here, for PyTorch's float32 as much as for ours, and differently from run to
run). Comparing each side on its own piece removes that lottery and leaves kernel accuracy.

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
import contextlib
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
    from torch.overrides import TorchFunctionMode
except ImportError as e:  # pragma: no cover
    print(f"zoo_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)

import numpy as np  # noqa: E402

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


def load_safetensors(path):
    """name -> tensor (F32, BF16 as float32, I64, I32, U8) in file order, and the metadata."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())  # writable: the tensors share it
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data, out = memoryview(raw)[8 + n:], {}
    np_types = {"F32": np.float32, "BF16": np.uint16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    for name, h in header.items():
        a, b = h["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np_types[h["dtype"]])
        if h["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr).reshape(h["shape"])
    return out, meta


@contextlib.contextmanager
def no_init():
    """Build a model's structure only (its weights are loaded afterwards): init functions are no-ops."""
    init = torch.nn.init
    saved = {f: getattr(init, f) for f in ("kaiming_normal_", "kaiming_uniform_", "uniform_", "constant_",
                                           "normal_", "zeros_", "ones_")}
    for f in saved:
        setattr(init, f, lambda t, *a, **kw: t)
    try:
        yield
    finally:
        for f, fn in saved.items():
            setattr(init, f, fn)


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

    def load_state_dict_flat(self, sd):
        self.box.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("box.")})
        self.net.load_state_dict({k: v for k, v in sd.items() if not k.startswith("box.")})

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.avgpool(n.layer4(n.layer3(n.layer2(n.layer1(x))))).flatten(1)
        return n.fc(x), torch.sigmoid(self.box(x))


def loss_of(model, x, labels, boxes, box_lambda):
    """The test's loss (mean cross-entropy, + box_lambda * smooth-L1 for the multi-task case),
    the logits and, for the multi-task case, {box, loss_cls, loss_box}."""
    outp = model(x)
    if box_lambda is None:
        return F.cross_entropy(outp, labels), outp, {}
    logits, box = outp
    l_cls = F.cross_entropy(logits, labels)
    l_box = F.smooth_l1_loss(box, boxes, beta=1.0)
    return l_cls + box_lambda * l_box, logits, {"box": box, "loss_cls": l_cls.reshape(1), "loss_box": l_box.reshape(1)}


def store_grads(ref, prefix, model, xd, pname, sampled):
    """<prefix>.input_grad (N, H, W, C) and <prefix>.grad.<name>, large ones as strided samples
    (from `sampled`, SampledLinear.grads(), where there)."""
    ref[f"{prefix}.input_grad"] = xd.grad.permute(0, 2, 3, 1)
    for name, p in model.named_parameters():
        g = sampled[id(p)] if id(p) in sampled else p.grad.flatten()[::sample_stride(p.numel())]
        ref[f"{prefix}.grad.{pname(name)}"] = g.detach().clone()


def param_namer(model):
    prefix = "net." if isinstance(model, BoxNet) else ""
    return lambda s: s[len(prefix):] if s.startswith(prefix) else s


def run_case(out, case, model_name, model, n, c, h, w, k, cfg_extra, box_lambda=None):
    damp_branches(model)
    round_to_bf16(model)
    named = lambda: (model.state_dict_flat() if isinstance(model, BoxNet) else model.state_dict())
    save_bf16_state(os.path.join(out, f"{case}.state.safetensors"), named())
    pname = param_namer(model)

    x = torch.rand(n, c, h, w)
    labels = torch.randint(0, k, (n,))
    ref = {"input": x.permute(0, 2, 3, 1), "labels": labels}
    boxes = None
    if box_lambda is not None:
        lo = torch.rand(n, 2) * 0.5
        boxes = torch.cat([lo, lo + 0.1 + torch.rand(n, 2) * 0.4], 1)
        ref["boxes"] = boxes
    for mode in ("eval", "train"):  # forward only: the gradients come from --f64
        model.train(mode == "train")
        with torch.no_grad():
            loss, logits, extra = loss_of(model, x, labels, boxes, box_lambda)
        for key, v in extra.items():
            ref[f"{mode}.{key}"] = v
        ref[f"{mode}.logits"] = logits
        ref[f"{mode}.loss"] = loss.reshape(1)
    for name, b in model.named_buffers():
        ref[f"after.{pname(name)}"] = b
    save_safetensors(os.path.join(out, f"{case}.ref.safetensors"), ref)
    with open(os.path.join(out, f"{case}.cfg"), "w") as f:
        f.write(f"model {model_name}\nbatch {n}\nin_c {c}\nin_h {h}\nin_w {w}\nn_classes {k}\n")
        for key, v in cfg_extra.items():
            f.write(f"{key} {v}\n")


class Kinks(TorchFunctionMode):
    """Replays robustcv's kink decisions (zoo_ref.py's docstring): each ReLU call (F.relu, which
    nn.ReLU calls, torch.relu) takes the next mask, each max-pool call the next argmax, in order;
    kind or shape out of step is an error. Counts the decisions that differ from float64's own."""

    RELU = {F.relu, torch.relu, torch.relu_}
    MAXPOOL = {F.max_pool2d, torch.max_pool2d}

    def __init__(self, entries):
        super().__init__()
        self.entries, self.next = entries, 0
        self.differ, self.total, self.margin, self.worst = 0, 0, 0.0, "-"

    def take(self, kind, shape):
        if self.next >= len(self.entries):
            raise RuntimeError(f"kinks: a {kind} call beyond robustcv's {len(self.entries)} decisions")
        name, t = self.entries[self.next]
        self.next += 1
        got = name.split(".")[2]
        # (N, C, H, W), or (N, F) for a classifier ReLU: robustcv's (N, F, 1, 1)
        nhwc = (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else (shape[0], 1, 1, shape[1])
        if got != kind or tuple(t.shape) != nhwc:
            raise RuntimeError(f"kinks: PyTorch's call {self.next} is a {kind} on {nhwc} (N, H, W, C), robustcv's "
                               f"decision {name} is a {got} on {tuple(t.shape)}")
        return name.split(".", 3)[3], t.permute(0, 3, 1, 2).reshape(shape)

    def note(self, name, differ, dist, scale):
        self.total += differ.numel()
        k = int(differ.sum())
        if k:
            self.differ += k
            m = float(dist[differ].max()) / max(scale, 1e-300)
            if m > self.margin:
                self.margin, self.worst = m, name

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.RELU:
            x = args[0]
            name, mask = self.take("relu", x.shape)
            mask = mask.to(x.dtype)
            xs = x.detach()
            self.note(name, (xs > 0) != (mask > 0), xs.abs(), float(xs.abs().max()))
            return x * mask
        if func in self.MAXPOOL:
            x = args[0]
            natural = func(*args, **kwargs).detach()
            name, idx = self.take("maxpool", natural.shape)
            y = x.flatten(2).gather(2, idx.long().flatten(2)).view(natural.shape)
            gap = natural - y.detach()
            self.note(name, gap > 0, gap, float(x.detach().abs().max()))
            return y
        return func(*args, **kwargs)


class RecordKinks(TorchFunctionMode):
    """Records a forward pass's kink decisions in Kinks' format (PyTorch's own float32 ones)."""

    def __init__(self, mode):
        super().__init__()
        self.mode, self.entries = mode, []

    def add(self, kind, t):
        nhwc = t.permute(0, 2, 3, 1) if t.dim() == 4 else t.reshape(t.shape[0], 1, 1, -1)
        k = len(self.entries)
        self.entries.append((f"{self.mode}.{k:03d}.{kind}.call{k}", nhwc.contiguous()))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in Kinks.RELU:
            y = F.relu(args[0])
            self.add("relu", (y > 0).to(torch.uint8))
            return y
        if func in Kinks.MAXPOOL:
            y, idx = func(*args, **dict(kwargs, return_indices=True))  # first max wins, as ours
            self.add("maxpool", idx.to(torch.int32))
            return y
        return func(*args, **kwargs)


class SampledLinear:
    """A Linear weight whose gradient is stored sampled (VGG's classifier.0: 103M entries) gets
    only the sampled entries computed, dW[i, j] = sum_n dy[n, i] x[n, j] over the batch, instead
    of the whole dW, which in float64 costs more than the rest of the network. Around one pass:
    forward inside `with`, then backward, then grads()."""

    def __init__(self, model):
        self.layers = [m for m in model.modules()
                       if isinstance(m, nn.Linear) and sample_stride(m.weight.numel()) > 1]
        self.seen, self.hooks = {}, []

    def __enter__(self):
        def hook(mod, inp, out):  # keeps out; the layer returns a copy (VGG's next ReLU is in-place)
            out.retain_grad()
            self.seen[mod] = (inp[0].detach(), out)
            return out.clone()
        for m in self.layers:
            m.weight.requires_grad_(False)
            self.hooks.append(m.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
        for m in self.layers:
            m.weight.requires_grad_(True)

    def grads(self):
        """id(weight) -> its sampled gradient, as weight.grad.flatten()[::s] would be."""
        out = {}
        for m, (x, y) in self.seen.items():
            k = torch.arange(0, m.weight.numel(), sample_stride(m.weight.numel()))
            out[id(m.weight)] = (y.grad[:, k // m.in_features] * x[:, k % m.in_features]).sum(0)
        return out


def grad_pass(model, x, labels, boxes, box_lambda, tf_mode, pname, prefix, res):
    """One forward (under the torch-function mode tf_mode, if any) and backward in x's dtype;
    the gradients into res under prefix (store_grads' names); returns the logits."""
    model.zero_grad(set_to_none=True)
    xd = x.clone().requires_grad_(True)
    sampled = SampledLinear(model)
    with sampled, tf_mode if tf_mode else contextlib.nullcontext():
        loss, logits, _ = loss_of(model, xd, labels, boxes, box_lambda)
    loss.backward()
    store_grads(res, prefix, model, xd, pname, sampled.grads())
    return logits.detach()


def f64_case(out, token, full=False):
    """<case>.<backend>.f64.safetensors from robustcv's kinks (see the docstring). The PyTorch
    float32 yardstick in train mode only unless full (then also eval, and the free float64 pass)."""
    case, be = token.rsplit(".", 1)
    seed, model_name, make, n, size, small, extra = CASES[case]
    box_lambda = extra.get("box_lambda")
    with no_init():
        model = make()
    sd, _ = load_safetensors(os.path.join(out, f"{case}.state.safetensors"))
    (model.load_state_dict_flat if isinstance(model, BoxNet) else model.load_state_dict)(sd)
    pname = param_namer(model)
    ref, _ = load_safetensors(os.path.join(out, f"{case}.ref.safetensors"))
    x = ref["input"].permute(0, 3, 1, 2).contiguous()
    labels, boxes = ref["labels"], ref.get("boxes")
    kinks, _ = load_safetensors(os.path.join(out, f"{case}.{be}.kinks.safetensors"))
    res, meta, torch_kinks = {}, {}, {}
    yardstick = ("eval", "train") if full else ("train",)
    before = {k: b.clone() for k, b in model.named_buffers()}
    for mode in yardstick:  # PyTorch float32, recording its own kinks
        model.train(mode == "train")
        torch_kinks[mode] = RecordKinks(mode)
        grad_pass(model, x, labels, boxes, box_lambda, torch_kinks[mode], pname, f"{mode}.torch32", res)
    model.double()
    with torch.no_grad():  # the running stats before the train step again (a train-mode pass updates them)
        for k, b in model.named_buffers():
            b.copy_(before[k])
    x, boxes = x.double(), boxes.double() if boxes is not None else None
    for mode in ("eval", "train"):
        model.train(mode == "train")
        runs = [(mode, [(k, v) for k, v in kinks.items() if k.startswith(mode + ".")])]
        if mode in torch_kinks:
            runs.append((f"{mode}.torch64", torch_kinks[mode].entries))
        for prefix, entries in runs:
            km = Kinks(entries)
            logits = grad_pass(model, x, labels, boxes, box_lambda, km, pname, prefix, res)
            if km.next != len(km.entries):
                raise RuntimeError(f"kinks: {token} {prefix}: PyTorch made {km.next} ReLU/max-pool calls, the "
                                   f"decisions are {len(km.entries)}")
            stats = "kinks" if prefix == mode else "torch_kinks"
            res[f"{mode}.{stats}"] = torch.tensor([km.differ, km.total, km.margin])
            meta[f"{mode}.{stats[:-1]}_worst"] = km.worst
            if prefix == mode:
                res[f"{mode}.logits"] = logits
        if full:  # plain float64: what either float32 gradient is compared with when kinks are ignored
            grad_pass(model, x, labels, boxes, box_lambda, None, pname, f"{mode}.free", res)
    save_safetensors(os.path.join(out, f"{case}.{be}.f64.safetensors"), res, meta)


GAMMA = float(torch.tensor(0.04278, dtype=torch.float32))  # the C side holds it as a float

# case -> (seed, model name, builder, batch, size, small_input, extra cfg)
#
# Logits, losses and running statistics are compared with the float32 results above at 1e-4;
# gradients with the --f64 ones on robustcv's kinks, within max(1e-4, 4 x PyTorch float32's own
# error); the measurements are in docs/models.md. (VGG conv biases feed batchnorm: in train mode their gradient is exactly 0 in
# exact arithmetic, and test_zoo.c checks ours is negligible instead of a relative error of two
# roundings.)
CASES = {
    "resnet34_d": (11, "resnet34", lambda: make_resnet("resnet34", 10, gamma=GAMMA), 2, 64, 0, {"gamma": GAMMA}),
    "resnet101_small": (14, "resnet101", lambda: make_resnet("resnet101", 10, small_input=True), 2, 16, 1, {}),
    "resnet152_d": (13, "resnet152", lambda: make_resnet("resnet152", 10, gamma=GAMMA), 2, 64, 0, {"gamma": GAMMA}),
    "densenet121": (21, "densenet121", lambda: make_densenet("densenet121", 10), 2, 64, 0, {}),
    "densenet121_small": (22, "densenet121", lambda: make_densenet("densenet121", 10, True), 2, 16, 1, {}),
    "densenet169": (23, "densenet169", lambda: make_densenet("densenet169", 10), 2, 64, 0, {}),
    "densenet201": (24, "densenet201", lambda: make_densenet("densenet201", 10), 2, 64, 0, {}),
    # train-mode twins without dropout (random masks cannot match); eval mode is the same either way
    "vgg11_bn": (31, "vgg11_bn", lambda: make_vgg("vgg11_bn", 10, dropout=0.0), 2, 64, 0, {"dropout": 0}),
    "vgg13_bn_small": (32, "vgg13_bn", lambda: make_vgg("vgg13_bn", 10, True, 0.0), 2, 32, 1, {"dropout": 0}),
    "vgg16_bn": (33, "vgg16_bn", lambda: make_vgg("vgg16_bn", 10, dropout=0.0), 2, 64, 0, {"dropout": 0}),
    "vgg19_bn": (34, "vgg19_bn", lambda: make_vgg("vgg19_bn", 10, dropout=0.0), 2, 64, 0, {"dropout": 0}),
    "attention56": (41, "attention56", lambda: attention_ref.attention56(n_classes=10), 2, 64, 0, {}),
    "attention92_small": (42, "attention92", lambda: attention_ref.attention92(n_classes=10, small_input=True),
                          2, 32, 1, {}),
    "resnet18_box": (51, "resnet18+box", lambda: BoxNet(10), 2, 64, 0, {"box_lambda": 0.5}),
}


def main():
    if sys.argv[1] == "--f64":
        torch.set_num_threads(1)
        full = os.environ.get("RCV_ZOO_FULL") == "1"
        for token in sys.argv[3:]:
            f64_case(sys.argv[2], token, full)
        return
    out = sys.argv[1]
    only = sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    if not only:
        with no_init():
            for name in ("densenet121", "densenet169", "densenet201", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
                write_listing(out, name, getattr(torchvision.models, name)())
            write_listing(out, "attention56", attention_ref.attention56())
            write_listing(out, "attention92", attention_ref.attention92())
    for case, (seed, name, make, n, size, small, extra) in CASES.items():
        if only and case not in only:
            continue
        torch.manual_seed(seed)
        cfg = dict(extra)
        if small:
            cfg["small_input"] = 1
        run_case(out, case, name, make(), n, 3, size, size, 10, {k: f"{v:.9g}" if isinstance(v, float) else v
                                                              for k, v in cfg.items()}, extra.get("box_lambda"))


if __name__ == "__main__":
    main()
