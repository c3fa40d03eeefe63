#!/usr/bin/env bash
# Does every C source compile for aarch64? src/**/*.c (the cuda backend aside) compiled to objects
# at -O2 with -Werror by Debian's cross compiler, installed here if missing. Objects, not
# -fsyntax-only: some warnings come from the optimiser only (an unused static variable, a
# function inlined across target attributes). Nothing is linked. Only the C library's
# headers come from the cross sysroot: the other libraries' (oneDNN, jansson, libmicrohttpd,
# libpng, turbojpeg, zlib) are the host's in /usr/include, reached with -idirafter after the
# sysroot's. Those headers hold no architecture-specific definitions our code uses (dnnl_config.h
# holds oneDNN's build options: threading runtime and the like). One line per failing file, then
# "N passed, N failed"; the exit status is 1 when any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
if ! command -v "$CC" >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "cross_check: installing gcc-aarch64-linux-gnu"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null ||
    { echo "cross_check: could not install gcc-aarch64-linux-gnu"; exit 2; }
fi
FLAGS=(-std=c11 -D_GNU_SOURCE -fopenmp -O2 -c -o /dev/null -Wall -Wextra -Wno-unused-parameter -Werror
       -Iinclude -Isrc -idirafter /usr/include)
pass=0 fail=0
while IFS= read -r f; do
  if err=$("$CC" "${FLAGS[@]}" "$f" 2>&1); then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $f: $(printf '%s\n' "$err" | grep -m1 -E 'error|warning' || printf '%s\n' "$err" | head -1)"
  fi
done < <(find src -name '*.c' -not -path 'src/backend/cuda/*' | sort)
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
