# PyTorch peer for bench_train: the same model, shapes, thread count and step
# (forward + backward + SGD momentum step). Prints images/s (mean over STEPS).
# usage: peer_train.py MODEL C H W CLASSES BATCH STEPS THREADS [small] [channels_last]
import sys, time, os
import torch, torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "oracle"))

def build(name, c, classes, small):
    if name in ("smallcnn", "smallcnn6"):  # the twin of src/nn/smallcnn.c (tests/oracle/resnet_ref.py)
        from resnet_ref import SMALLCNN, SMALLCNN6, SmallCNN
        return SmallCNN(c, classes, cfg=SMALLCNN6 if name == "smallcnn6" else SMALLCNN)
    m = getattr(torchvision.models, name)(num_classes=classes)
    if c != 3 or small:
        m.conv1 = torch.nn.Conv2d(c, 64, 3 if small else 7, 1 if small else 2, 1 if small else 3, bias=False)
    if small:
        m.maxpool = torch.nn.Identity()
    return m

def main():
    name, c, h, w, classes, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:9])
    flags = sys.argv[9:]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = build(name, c, classes, "small" in flags)
    x = torch.rand(batch, c, h, w)
    y = torch.randint(0, classes, (batch,))
    if "channels_last" in flags:
        m = m.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    lf = torch.nn.CrossEntropyLoss()
    def step():
        opt.zero_grad(set_to_none=False)
        lf(m(x), y).backward()
        opt.step()
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    print("%.1f" % (batch * steps / (time.perf_counter() - t)))
    import resource
    print("peak_rss_mb %.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), file=sys.stderr)

main()
