#!/usr/bin/env bash
# Installs the Debian packages robustcv needs, skipping what is present.
# Run as root (or with sudo available). Idempotent and quiet when all is there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libdnnl-dev libopenblas-dev zlib1g-dev libpng-dev libturbojpeg0-dev
      dataset-fashion-mnist python3 python3-numpy python3-torch python3-torchvision
      libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "robustcv: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
