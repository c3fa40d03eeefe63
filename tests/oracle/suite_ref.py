"""PyTorch oracle for tests/test_suite.sh: the robustness suite's numbers on the same weights.

Usage: /usr/bin/python3 tests/oracle/suite_ref.py CHECKPOINT FASHION_MNIST_DIR N EPS[,EPS] OUT.json

Loads a smallcnn / smallcnn6 checkpoint written by `robustcv train` into its PyTorch twin
(tests/oracle/resnet_ref.py, normalization from the checkpoint's metadata), takes the first N
Fashion-MNIST test images as pixels / 255 and writes, per set, {"top1", "top5", "nll"}:

  clean        the plain images; also "ece": 15 equal-width confidence bins (Guo et al. 2017)
  sym:K        K = 4 * flip + rot: torch.rot90(torch.flip(x, dims=(W,)), rot, dims=(H, W))
  tta          log of the softmax probabilities averaged over the 8 symmetries
  fgsm:EPS     clamp(x + EPS * sign(grad_x CE), 0, 1), model in eval mode
  denoised     cv2.fastNlMeansDenoisingColored(gray replicated to RGB, None, 10, 10, 7, 21), back
               to gray with PIL's convert("L") luma (only when cv2 imports)

Exits 77 when torch is not importable.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import compare_safetensors
    import idx_ref
    from resnet_ref import SMALLCNN, SMALLCNN6, SmallCNN
except ImportError as e:  # pragma: no cover
    print(f"suite_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)


def load_checkpoint(path):
    arrays, meta = compare_safetensors.load(path)
    # the model's state_dict, without the optimizer state
    return {n: torch.from_numpy(a.copy()) for n, a in arrays.items() if n.startswith(("conv", "bn", "fc"))}, meta


def read_idx(d, name):
    p = os.path.join(d, name)
    return idx_ref.read(p + ".gz" if os.path.exists(p + ".gz") else p)


def scores(z, y):
    top5 = z.topk(5, dim=1).indices
    return {"top1": (z.argmax(1) == y).double().mean().item(),
            "top5": (top5 == y[:, None]).any(1).double().mean().item(),
            "nll": F.cross_entropy(z.double(), y).item()}


def ece15(z, y):
    p = z.double().softmax(1)
    conf, pred = p.max(1)
    e = 0.0
    for b in range(15):
        m = (conf > b / 15) & (conf <= (b + 1) / 15)
        if m.any():
            e += m.double().mean().item() * abs((pred[m] == y[m]).double().mean().item() - conf[m].mean().item())
    return e


def main():
    ckpt, fm, n, eps_list, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    state, meta = load_checkpoint(ckpt)
    name = meta["robustcv.model"]
    cfg = {"smallcnn": SMALLCNN, "smallcnn6": SMALLCNN6}[name]
    in_c, k = int(meta["robustcv.in_c"]), int(meta["robustcv.n_classes"])
    mean = torch.tensor([float(v) for v in meta["robustcv.mean"].split(",")][:in_c]).view(1, -1, 1, 1)
    std = torch.tensor([float(v) for v in meta["robustcv.std"].split(",")][:in_c]).view(1, -1, 1, 1)
    net = SmallCNN(in_c, k, cfg=cfg)
    net.load_state_dict(state)
    net.eval()
    model = lambda x: net((x - mean) / std)

    img = np.frombuffer(read_idx(fm, "t10k-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    y = torch.from_numpy(np.frombuffer(read_idx(fm, "t10k-labels-idx1-ubyte"), np.uint8, offset=8)[:n].astype(np.int64))
    x = torch.from_numpy(img.astype(np.float32) / 255)
    ref = {}
    with torch.no_grad():
        z = model(x)
        ref["clean"] = scores(z, y)
        ref["clean"]["ece"] = ece15(z, y)
        prob = torch.zeros(n, k, dtype=torch.float64)
        for s in range(8):
            xs = torch.flip(x, dims=(3,)) if s & 4 else x
            zs = model(torch.rot90(xs, s & 3, dims=(2, 3)))
            ref[f"sym:{s}"] = scores(zs, y)
            prob += zs.double().softmax(1) / 8
        ref["tta"] = scores(torch.log(prob + 1e-30), y)
    for e in eps_list.split(","):
        xg = x.clone().requires_grad_(True)
        F.cross_entropy(model(xg), y).backward()
        with torch.no_grad():
            ref[f"fgsm:{float(e):g}"] = scores(model((x + float(e) * xg.grad.sign()).clamp(0, 1)), y)
    try:
        import cv2
        den = np.stack([cv2.fastNlMeansDenoisingColored(np.repeat(im[0][:, :, None], 3, 2), None, 10, 10, 7, 21)
                        for im in img])
        d = den.astype(np.int64)  # back to gray with PIL's convert("L") luma, in integers
        luma = (19595 * d[..., 0] + 38470 * d[..., 1] + 7471 * d[..., 2] + 32768) >> 16
        xd = torch.from_numpy(luma.astype(np.float32)[:, None] / 255)
        with torch.no_grad():
            ref["denoised"] = scores(model(xd), y)
    except ImportError:
        print("suite_ref.py: cv2 not importable; no denoised reference", file=sys.stderr)
    json.dump(ref, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
