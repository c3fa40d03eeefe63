#!/usr/bin/env bash
# Does the code compile for aarch64? Every C file of the library and CLI (src/, the cuda backend
# aside), of the tests and of the benchmarks, compiled to an object with a Release build's flags
# (-O3 -DNDEBUG -Wall -Wextra -Werror) by Debian's cross compiler, installed here if missing.
# Objects at -O3, not -fsyntax-only: some warnings come from the optimiser only (an unused static
# variable), and GCC 12's vectoriser crashes on some loops (see CMakeLists.txt: the tests get
# -fno-tree-loop-vectorize where it does, here too). Nothing is linked. Only the C library's
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
FLAGS=(-std=c11 -D_GNU_SOURCE -fopenmp -O3 -DNDEBUG -c -o /dev/null -Wall -Wextra -Wno-unused-parameter -Werror
       -Iinclude -Isrc -Itests -Itests/fuzz -idirafter /usr/include)
# CMakeLists.txt's probe (RCV_VECT_FMAX_OK) for the test programs' flags.
TEST_FLAGS=()
printf '#include <math.h>\ndouble f(const float *v, int n) { double m = 0; for (int i = 0; i < n; i++) m = fmax(m, v[i]); return m; }\n' |
  "$CC" -O3 -x c -c -o /dev/null - 2>/dev/null || TEST_FLAGS=(-fno-tree-loop-vectorize)
pass=0 fail=0
while IFS= read -r f; do
  extra=()
  case $f in tests/test_*.c | tests/testutil.c) extra=("${TEST_FLAGS[@]}") ;; esac
  if err=$("$CC" "${FLAGS[@]}" "${extra[@]}" "$f" 2>&1); then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $f: $(printf '%s\n' "$err" | grep -m1 -E 'error|warning' || printf '%s\n' "$err" | head -1)"
  fi
done < <(find src tests bench -name '*.c' -not -path 'src/backend/cuda/*' | sort)
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
