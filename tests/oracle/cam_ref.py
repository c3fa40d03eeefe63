"""PyTorch oracle for tests/test_explain.c: CAM, Grad-CAM and Grad-CAM++ maps.

Usage: /usr/bin/python3 tests/oracle/cam_ref.py OUT_DIR

For each case (smallcnn at 3x32x32, resnet18 with the small-input stem at 3x32x32) it builds the
PyTorch twin with random weights and batchnorm statistics and writes

  OUT_DIR/<case>.state.safetensors   the state_dict
  OUT_DIR/<case>.ref.safetensors     input (N, H, W, C) pixels in [0,1], targets (N) I64 class per image,
                                     and maps <method>.<layer> (N, H, W) for each method and layer
  OUT_DIR/<case>.cfg                 model config ("key value" lines, as resnet_ref.py) plus
                                     "map <method> <layer>" lines

Grad-CAM and Grad-CAM++ come from the PyPI package grad-cam (pytorch_grad_cam) when it is
importable; the same maps are also computed here by hand with hooks and the two must agree to
1e-5, so the package's conventions are pinned down. Without the package the hand-computed maps are
written (the C test says which). CAM (Zhou et al. 2016) is not in the package: it is computed
here from the fc weights and the hooked feature map, normalised with the package's
scale_cam_image when available (a NumPy copy of it otherwise).

Exits 77 when torch or torchvision is not importable.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"cam_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_ref import make_resnet, randomize_bn, save_safetensors  # noqa: E402

try:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    HAVE_PKG = True
except Exception as e:  # ImportError, or a binary mismatch inside its dependencies
    print(f"cam_ref.py: pytorch_grad_cam unavailable ({e}); using the hand-computed maps", file=sys.stderr)
    HAVE_PKG = False


class SmallCNN(nn.Module):
    """src/nn/smallcnn.c's twin, with the ReLUs as modules so that relu<i> can be hooked."""

    def __init__(self, in_c, n_classes):
        super().__init__()
        c = in_c
        for i, w in enumerate([32, 32, 64, 64, 128], 1):
            setattr(self, f"conv{i}", nn.Conv2d(c, w, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(w))
            setattr(self, f"relu{i}", nn.ReLU())
            c = w
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        blk = lambda i, x: getattr(self, f"relu{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        x = F.max_pool2d(blk(2, blk(1, x)), 2)
        x = F.max_pool2d(blk(4, blk(3, x)), 2)
        return self.fc(F.adaptive_avg_pool2d(blk(5, x), 1).flatten(1))


class Normalized(nn.Module):
    """Our models normalise inside; the twin gets the same first step."""

    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def scale_np(cam, size):
    """pytorch-grad-cam's scale_cam_image without cv2: min-max, bilinear (half-pixel), min-max."""
    out = []
    for img in cam:
        img = img - img.min()
        img = img / (1e-7 + img.max())
        t = torch.from_numpy(np.float32(img))[None, None]
        img = F.interpolate(t, size=(size[1], size[0]), mode="bilinear", align_corners=False)[0, 0].numpy()
        out.append(img)
    return np.float32(out)


def scale(cam, size):
    if HAVE_PKG:  # BaseCAM: scale_cam_image(cam, size) per layer, then scale_cam_image(mean over layers)
        return scale_cam_image(scale_cam_image(cam, size))
    s = scale_np(cam, size)
    return np.float32([(m - m.min()) / (1e-7 + (m - m.min()).max()) for m in s])


def hooked(model, layer, x, targets):
    """Feature map A and d(sum_i logit_i[target_i]) / dA for a module, by hooks."""
    store = {}

    def fwd(_m, _i, out):
        store["a"] = out
        out.register_hook(lambda g: store.__setitem__("g", g))

    h = layer.register_forward_hook(fwd)
    model.zero_grad()
    logits = model(x)
    logits.gather(1, targets.view(-1, 1)).sum().backward()
    h.remove()
    return store["a"].detach().numpy(), store["g"].detach().numpy()


def by_hand(method, model, layer, x, targets):
    a, g = hooked(model, layer, x, targets)
    if method == "gradcam":
        w = g.mean(axis=(2, 3))
    else:  # Grad-CAM++ as explain.h writes it
        g2, g3 = g ** 2, g ** 3
        sa = a.sum(axis=(2, 3))[:, :, None, None]
        aij = np.where(g != 0, g2 / (2 * g2 + sa * g3 + 1e-6), 0)
        w = (np.maximum(g, 0) * aij).sum(axis=(2, 3))
    cam = np.maximum((w[:, :, None, None] * a).sum(axis=1), 0)
    return scale(cam, (x.shape[3], x.shape[2]))


def package(method, model, layer, x, targets):
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    with cls(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


def cam_zhou(model, layer, fc, x, targets):
    a, _ = hooked(model, layer, x, targets)
    w = fc.weight.detach().numpy()[targets.numpy()]  # (N, C)
    cam = (w[:, :, None, None] * a).sum(axis=1)      # no bias, no ReLU
    return scale(cam, (x.shape[3], x.shape[2]))


def run_case(out, case, model_name, net, n, c, h, w, k, mean, std, extra, maps, fc):
    randomize_bn(net)
    save_safetensors(os.path.join(out, f"{case}.state.safetensors"), dict(net.state_dict()))
    model = Normalized(net, mean[:c], std[:c]).eval()
    x = torch.rand(n, c, h, w)
    with torch.no_grad():
        top = model(x).argmax(1)
    targets = top.clone()
    targets[1::2] = (top[1::2] + 3) % k  # half the maps for the predicted class, half for another
    ref = {"input": x.permute(0, 2, 3, 1), "targets": targets}
    lines = []
    for method, lname in maps:
        layer = dict(net.named_modules())[lname]
        if method == "cam":
            m = cam_zhou(model, layer, fc, x, targets)
        else:
            m = by_hand(method, model, layer, x, targets)
            if HAVE_PKG:
                p = package(method, model, layer, x, targets)
                err = float(np.abs(p - m).max())
                print(f"{case} {method} {lname}: pytorch_grad_cam vs hooks max |diff| {err:.1e}")
                if err > 1e-5:
                    print(f"cam_ref.py: pytorch_grad_cam and the hand-computed {method} disagree by {err}",
                          file=sys.stderr)
                    sys.exit(1)
                m = p
        ref[f"{method}.{lname}"] = torch.from_numpy(np.float32(m))
        lines.append(f"map {method} {lname}\n")
    save_safetensors(os.path.join(out, f"{case}.ref.safetensors"), ref)
    with open(os.path.join(out, f"{case}.cfg"), "w") as f:
        f.write(f"model {model_name}\nbatch {n}\nin_c {c}\nin_h {h}\nin_w {w}\nn_classes {k}\n")
        f.write("mean " + " ".join(f"{v:.9g}" for v in mean) + "\n")
        f.write("std " + " ".join(f"{v:.9g}" for v in std) + "\n")
        for key, v in extra.items():
            f.write(f"{key} {v}\n")
        f.write(f"oracle {'pytorch_grad_cam' if HAVE_PKG else 'hooks'}\n")
        f.writelines(lines)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(11)
    net = SmallCNN(3, 10)
    mean, std = [0.5, 0.4, 0.3, 0.0], [0.25, 0.3, 0.2, 1.0]
    run_case(out, "smallcnn", "smallcnn", net, 4, 3, 32, 32, 10, mean, std, {},
             [("cam", "relu5"), ("gradcam", "relu5"), ("gradcam++", "relu5"), ("gradcam", "relu3"),
              ("gradcam++", "conv4")], net.fc)
    torch.manual_seed(12)
    net = make_resnet("resnet18", 10, small_input=True)
    run_case(out, "resnet18_small", "resnet18", net, 2, 3, 32, 32, 10, [0.0] * 4, [1.0] * 4, {"small_input": 1},
             [("cam", "layer4"), ("gradcam", "layer4"), ("gradcam++", "layer4"), ("gradcam", "layer3")], net.fc)


if __name__ == "__main__":
    main()
