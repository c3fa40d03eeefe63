# PyTorch peer for bench_cuda: the same model and step (forward + backward + SGD momentum)
# on the GPU, channels_last, bf16 autocast (or fp32/tf32/fp16 when asked), random data on
# the device. Prints images/s (mean over STEPS after 3 warm-up steps, timed after a sync).
# pgd=K: the adversarial training step instead: torchattacks' PGD (eps 0.1, alpha 0.025, K steps,
# random start; eval mode during the attack, as torchattacks does) under the same autocast, then
# the training step on the adversarial batch (bench_cuda's pgd=K, `train --recipe pgd`).
# usage: peer_cuda.py MODEL C H W CLASSES BATCH STEPS [fp32|tf32|bf16|fp16] [small] [pgd=K]
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "oracle"))


def build(name, c, classes, small):
    if name == "smallcnn":
        from resnet_ref import SmallCNN
        return SmallCNN(c, classes)
    m = getattr(torchvision.models, name)(num_classes=classes)
    if c != 3 or small:
        m.conv1 = torch.nn.Conv2d(c, 64, 3 if small else 7, 1 if small else 2, 1 if small else 3, bias=False)
    if small:
        m.maxpool = torch.nn.Identity()
    return m


def main():
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device (torch.cuda.is_available() is False)")
        return
    name, c, h, w, classes, batch, steps = sys.argv[1], *map(int, sys.argv[2:8])
    prec = sys.argv[8] if len(sys.argv) > 8 else "bf16"
    small = "small" in sys.argv[9:]
    pgd = next((int(a[4:]) for a in sys.argv[9:] if a.startswith("pgd=")), 0)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = prec == "tf32"
    torch.manual_seed(0)
    dev = torch.device("cuda")
    m = build(name, c, classes, small).to(dev).to(memory_format=torch.channels_last)
    x = torch.rand(batch, c, h, w, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=dev)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    lf = torch.nn.CrossEntropyLoss()
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)
    scaler = torch.cuda.amp.GradScaler(enabled=prec == "fp16")

    atk = None
    if pgd:
        import torchattacks
        atk = torchattacks.PGD(m, eps=0.1, alpha=0.025, steps=pgd, random_start=True)

    def step():
        xin = x
        if atk is not None:
            with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
                xin = atk(x, y)  # eval mode inside, training mode restored after
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
            loss = lf(m(xin), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    print("%.1f" % (batch * steps / (time.perf_counter() - t)))


main()
