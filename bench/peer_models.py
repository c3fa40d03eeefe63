# PyTorch peer for bench_models: the same model (torchvision, or tests/oracle/attention_ref.py),
# input size, batch and threads; forward + backward in train mode, no optimizer step.
# usage: peer_models.py MODEL H BATCH STEPS THREADS -> prints images/s (mean over STEPS after a warm-up)
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "oracle"))
import attention_ref  # noqa: E402


def main():
    name, h, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if name.startswith("attention"):
        m = getattr(attention_ref, name)(n_classes=200)
    elif name.startswith("vgg"):
        m = getattr(torchvision.models, name)(num_classes=200, dropout=0.0)
    else:
        m = getattr(torchvision.models, name)(num_classes=200)
    x = torch.rand(batch, 3, h, h)
    y = torch.arange(batch) % 200
    m.train()
    t0 = 0.0
    for s in range(steps + 1):
        if s == 1:
            t0 = time.perf_counter()
        m.zero_grad(set_to_none=False)
        F.cross_entropy(m(x), y).backward()
    print(f"{batch * steps / (time.perf_counter() - t0):.1f}")


if __name__ == "__main__":
    main()
