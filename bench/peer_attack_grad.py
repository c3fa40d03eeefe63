# PyTorch peer for bench_attack_grad: the same model (tests/oracle/resnet_ref.py's twin), shapes,
# thread count and work, eval mode.
#   grad MODEL BATCH STEPS THREADS   -> ms per torch.autograd.grad(sum_i CE_i, x) (forward + backward)
#   apgd MODEL BATCH N THREADS [ITERS] -> s for torchattacks.APGD (ce, Linf, eps 0.1) on N images
# The labels are the model's own predictions (every image attacked), x ~ U[0, 1].
import os, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "oracle"))
from resnet_ref import SMALLCNN, SMALLCNN6, SmallCNN  # noqa: E402


def main():
    mode, name = sys.argv[1], sys.argv[2]
    batch, count, threads = map(int, sys.argv[3:6])
    iters = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = SmallCNN(1, 10, cfg={"smallcnn": SMALLCNN, "smallcnn6": SMALLCNN6}[name]).eval()
    for p in m.parameters():  # what an attack does: no parameter gradients wanted
        p.requires_grad_(False)
    n = batch if mode == "grad" else count
    x = torch.rand(n, 1, 28, 28)
    with torch.no_grad():
        y = m(x).argmax(1)
    if mode == "grad":
        def step():
            xa = x.clone().requires_grad_(True)
            loss = F.cross_entropy(m(xa), y, reduction="sum")
            return torch.autograd.grad(loss, xa)[0]
        for _ in range(3):
            step()
        t = time.perf_counter()
        for _ in range(count):
            step()
        print("%.3f" % (1e3 * (time.perf_counter() - t) / count))
    else:
        import torchattacks
        atk = torchattacks.APGD(m, norm="Linf", eps=0.1, steps=iters, n_restarts=1, loss="ce", seed=0)
        t = time.perf_counter()
        atk(x, y)
        print("%.3f" % (time.perf_counter() - t))


main()
