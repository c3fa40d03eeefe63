"""PyTorch side of tests/test_transfer.c: a torchvision ResNet-18 (1000 classes) with random
weights and batchnorm statistics, exported the way the README tells users to
(`save_file(model.state_dict(), "r18.safetensors")`; written here by hand because Debian's
python has no safetensors package), plus an input and torchvision's eval-mode logits.

Usage: /usr/bin/python3 tests/oracle/transfer_ref.py OUT_DIR
  OUT_DIR/r18.safetensors   the state_dict, F32 and I64 like safetensors.torch.save_file
  OUT_DIR/r18.ref.safetensors  input (N, H, W, C) in [0, 1], logits (N, 1000) of model.eval()
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"transfer_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)
from resnet_ref import randomize_bn, save_safetensors  # noqa: E402


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(61)
    m = torchvision.models.resnet18()
    randomize_bn(m)
    save_safetensors(os.path.join(out, "r18.safetensors"), m.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = m.eval()(x)
    save_safetensors(os.path.join(out, "r18.ref.safetensors"), {"input": x.permute(0, 2, 3, 1), "logits": z})


if __name__ == "__main__":
    main()
