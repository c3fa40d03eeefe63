# Peers for bench_augment: OpenCV's NL-means (one thread) and the same torchvision pipeline.
# usage: peer_augment.py nlmeans N | nlmeans-seed N | pipeline N PROCESSES
#   nlmeans*:  ms per 64x64 image, cv2.fastNlMeansDenoisingColored, cv2.setNumThreads(1)
#   pipeline:  64x64 float images/s through RandomHorizontalFlip, RandomCrop(64, padding=4),
#              ColorJitter(0.4, 0.4, 0.4, 0.1), RandomErasing(value='random'), Normalize, in
#              PROCESSES worker processes of one thread each (a DataLoader's layout)
import sys
import time
import multiprocessing as mp


def nlmeans(n, seed_params):
    import cv2
    import numpy as np
    cv2.setNumThreads(1)
    rng = np.random.default_rng(1)
    img = np.clip(128 + 40 * rng.normal(size=(64, 64, 3)), 0, 255).astype(np.uint8)
    p = (10, 7, 21, 21) if seed_params else (10, 10, 7, 21)
    cv2.fastNlMeansDenoisingColored(img, None, *p)
    best = 1e9
    for _ in range(3):
        t = time.time()
        for _ in range(n):
            cv2.fastNlMeansDenoisingColored(img, None, *p)
        best = min(best, (time.time() - t) / n)
    print("%.3f" % (best * 1e3))


def worker(n, q):
    import torch
    import torchvision.transforms as T
    torch.set_num_threads(1)
    tf = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(64, padding=4), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
                    T.RandomErasing(value="random"), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.rand(3, 64, 64)
    for _ in range(20):
        tf(x)
    q.put(None)  # ready
    t = time.time()
    for _ in range(n):
        tf(x)
    q.put(n / (time.time() - t))


def pipeline(n, procs):
    q = mp.Queue()
    ps = [mp.Process(target=worker, args=(n // procs, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    for _ in ps:
        q.get()
    rates = [q.get() for _ in ps]
    for p in ps:
        p.join()
    print("%.0f" % sum(rates))


if __name__ == "__main__":
    if sys.argv[1].startswith("nlmeans"):
        nlmeans(int(sys.argv[2]), sys.argv[1] == "nlmeans-seed")
    else:
        pipeline(int(sys.argv[2]), int(sys.argv[3]))
