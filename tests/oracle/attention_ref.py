"""PyTorch reference of the Residual Attention Network (Wang et al., CVPR 2017), written from
the paper with the module names of src/nn/attention.c, so its state_dict loads there unchanged.

p = 1 pre- and post-processing residual units, t = 2 trunk units, r = 1 unit between pooling
levels in the mask branch (2r at the lowest level); pre-activation bottleneck residual units;
mask branch: max-pool 3x3/2 down, bilinear x2 (align_corners False) up, skip connections between
the matching resolutions, then BN-ReLU-conv1x1 twice and a sigmoid; module output (1 + M) * T.
Attention-56 has 1-1-1 attention modules in its three stages, Attention-92 1-2-3.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)


class RU(nn.Module):
    """Pre-activation bottleneck: x + conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x))))))))); a 1x1
    projection of relu(bn1(x)) replaces x when the shape changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv(cin, cout // 4, 1)
        self.bn2 = nn.BatchNorm2d(cout // 4)
        self.conv2 = conv(cout // 4, cout // 4, 3, stride)
        self.bn3 = nn.BatchNorm2d(cout // 4)
        self.conv3 = conv(cout // 4, cout, 1)
        self.shortcut = conv(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x):
        a = F.relu(self.bn1(x))
        y = self.conv1(a)
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + (self.shortcut(a) if self.shortcut is not None else x)


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ru = RU(c, c)


class MaskOut(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c)
        self.conv1 = conv(c, c, 1)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv2 = conv(c, c, 1)

    def forward(self, x):
        x = self.conv1(F.relu(self.bn1(x)))
        return torch.sigmoid(self.conv2(F.relu(self.bn2(x))))


class Mask(nn.Module):
    def __init__(self, c, d):
        super().__init__()
        self.d = d
        for k in range(1, d + 1):
            if k < d:
                setattr(self, f"down{k}", RU(c, c))
                setattr(self, f"skip{k}", RU(c, c))
            else:
                setattr(self, f"down{k}", nn.Sequential(RU(c, c), RU(c, c)))
        for k in range(d - 1, 0, -1):
            setattr(self, f"up{k}", Up(c))
        self.out = MaskOut(c)

    def forward(self, x):
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
        m, skips = x, {}
        for k in range(1, self.d + 1):
            m = getattr(self, f"down{k}")(F.max_pool2d(m, 3, 2, 1))
            if k < self.d:
                skips[k] = getattr(self, f"skip{k}")(m)
        for k in range(self.d - 1, 0, -1):
            m = getattr(self, f"up{k}").ru(up(m) + skips[k])
        return self.out(up(m))


class AttentionModule(nn.Module):
    def __init__(self, c, d):
        super().__init__()
        self.pre = RU(c, c)
        self.trunk = nn.Sequential(RU(c, c), RU(c, c))
        self.mask = Mask(c, d)
        self.post = RU(c, c)

    def forward(self, x):
        x = self.pre(x)
        t = self.trunk(x)
        return self.post(t + self.mask(x) * t)  # (1 + M) * T


class AttentionNet(nn.Module):
    def __init__(self, modules=(1, 1, 1), n_classes=1000, small_input=False, in_c=3):
        super().__init__()
        self.small_input = small_input
        self.conv1 = conv(in_c, 64, 3) if small_input else nn.Conv2d(in_c, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c = 64
        for s, (w, n) in enumerate(zip((256, 512, 1024), modules)):
            setattr(self, f"res{s + 1}", RU(c, w, 1 if s == 0 else 2))
            setattr(self, f"att{s + 1}", nn.ModuleList([AttentionModule(w, 3 - s) for _ in range(n)]))
            c = w
        self.res4 = nn.Sequential(RU(1024, 2048, 2), RU(2048, 2048), RU(2048, 2048))
        self.bn = nn.BatchNorm2d(2048)
        self.fc = nn.Linear(2048, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.small_input:
            x = F.max_pool2d(x, 3, 2, 1)
        for s in range(1, 4):
            x = getattr(self, f"res{s}")(x)
            for a in getattr(self, f"att{s}"):
                x = a(x)
        x = F.relu(self.bn(self.res4(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def attention56(**kw):
    return AttentionNet((1, 1, 1), **kw)


def attention92(**kw):
    return AttentionNet((1, 2, 3), **kw)
