#!/usr/bin/env bash
# Installs the Debian packages robustcv needs, skipping what is present.
# Run as root (or with sudo available). Idempotent and quiet when all is there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libdnnl-dev libopenblas-dev zlib1g-dev libpng-dev libturbojpeg0-dev
      dataset-fashion-mnist python3 python3-numpy python3-torch python3-torchvision python3-scipy
      python3-opencv python3-matplotlib python3-sklearn python3-tqdm python3-pip chromium libopenmpi-dev openmpi-bin
      libjansson-dev libmicrohttpd-dev chromium-driver python3-selenium
      python3-protobuf python3-flatbuffers python3-coloredlogs python3-sympy python3-packaging
      clang libclang-rt-14-dev libomp-dev)  # clang + libFuzzer/ASan/UBSan runtimes + OpenMP: make fuzz
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "robustcv: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# torchattacks (tests/oracle/attack_ref.py's reference; the oracle falls back to written-out formulas
# without it). --no-deps: its pip requirements would pull numpy 2 / scipy wheels into /usr/local that
# break Debian's torch; its real needs (scipy, tqdm, requests) come from the Debian packages above.
if ! /usr/bin/python3 -c "import torchattacks" 2>/dev/null; then
  $SUDO /usr/bin/python3 -m pip install -q --no-deps --break-system-packages torchattacks==3.5.1 ||
    echo "robustcv: torchattacks not installed; attack tests use the formulas in tests/oracle/attack_ref.py"
fi
# The Grad-CAM oracle (tests/oracle/cam_ref.py): PyPI grad-cam on Debian's torch. --no-deps is
# essential: its declared dependencies would pull NumPy 2 into /usr/local, which Debian's
# torch 1.13 cannot use ("Numpy is not available"); the Debian packages above provide them.
if ! /usr/bin/python3 -c "import pytorch_grad_cam" 2>/dev/null; then
  echo "robustcv: installing grad-cam (pip, --no-deps)"
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages --no-deps grad-cam==1.5.7 ttach==0.0.3 ||
    echo "robustcv: grad-cam not installed; tests/oracle/cam_ref.py falls back to its hook-based maps"
fi
# timm (tests/oracle/mix_ref.py: Mixup, SoftTargetCrossEntropy, ModelEmaV3). --no-deps (numpy 2 again);
# the oracle loads those three files directly, so timm's own imports (huggingface_hub) are not needed.
if ! /usr/bin/python3 -c "import importlib.util as u; assert u.find_spec('timm')" 2>/dev/null; then
  echo "robustcv: installing timm (pip, --no-deps)"
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages --no-deps timm==0.9.16 ||
    echo "robustcv: timm not installed; tests/test_mix fails (its oracle is timm's code)"
fi
# ONNX export's oracle and peer (tests/test_onnx.sh, bench/bench_onnx.sh): onnx (checker) and onnxruntime
# (CPUExecutionProvider) from PyPI with --no-deps: the versions that run on Debian 12's numpy 1.24 and
# python 3.11; their needs (protobuf, flatbuffers, coloredlogs, sympy, packaging) are the Debian packages above.
if ! /usr/bin/python3 -c "import onnx, onnxruntime" 2>/dev/null; then
  echo "robustcv: installing onnx and onnxruntime (pip, --no-deps)"
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages --no-deps onnx==1.16.2 onnxruntime==1.18.1 ||
    echo "robustcv: onnx/onnxruntime not installed; tests/test_onnx.sh skips, bench_onnx.sh is skipped"
fi
