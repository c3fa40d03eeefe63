# PyTorch peer for bench_certify: randomized smoothing's sampling loop as Cohen et al.'s
# core.py writes it (Smooth._sample_noise): batch = x.repeat(b, 1, 1, 1); noise = randn_like * sigma;
# predictions = model(batch + noise).argmax(1); counts += bincount - eval mode, under no_grad, on the
# weights bench_certify wrote. Prints noisy forward passes per second (timed after a warm-up).
# usage: peer_certify.py MODEL C H W CLASSES BATCH SAMPLES THREADS WEIGHTS
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "oracle"))
import compare_safetensors  # noqa: E402
from resnet_ref import SmallCNN  # noqa: E402


def sample(model, x, num, batch, sigma, k):
    counts = torch.zeros(k, dtype=torch.long)
    with torch.no_grad():
        remaining = num
        while remaining > 0:
            b = min(batch, remaining)
            remaining -= b
            xb = x.repeat((b, 1, 1, 1))
            noise = torch.randn_like(xb) * sigma
            counts += torch.bincount(model(xb + noise).argmax(1), minlength=k)
    return counts


def main():
    name, c, h, w, k, batch, samples, threads = sys.argv[1], *map(int, sys.argv[2:9])
    if name != "smallcnn":
        raise SystemExit(f"peer_certify.py: model {name!r}: only smallcnn has a PyTorch twin here")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = SmallCNN(c, k)
    arrays, _ = compare_safetensors.load(sys.argv[9])
    m.load_state_dict({n: torch.from_numpy(a.copy()) for n, a in arrays.items()})
    m.eval()
    x = torch.tensor([((e * 37) % 255) / 255.0 for e in range(c * h * w)]).reshape(h, w, c).permute(2, 0, 1)[None]
    sample(m, x, 2 * batch, batch, 0.25, k)  # warm-up
    t = time.perf_counter()
    sample(m, x, samples, batch, 0.25, k)
    print("%.1f" % (samples / (time.perf_counter() - t)))


main()
