#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD (default build-fuzz) for SECONDS each (default 60), one after
# another, or only the targets named after SECONDS. New corpus entries go to BUILD/fuzz-corpus/<t>/
# (the checked-in seeds in tests/fuzz/corpus/<t>/ are read, never written); a crash, hang (-timeout)
# or out-of-memory input (-rss_limit_mb, which also caps single allocations) is written to
# tests/fuzz/regress/<t>/, where `make test` replays it. Logs: BUILD/fuzz-logs/<t>.log. Exits
# non-zero when any target found something. FUZZ_KEEP_GOING=1: libFuzzer's fork mode, which records a
# finding and goes on fuzzing instead of stopping at the first one.
#   usage: tests/fuzz/run.sh [BUILD] [SECONDS] [TARGET...]
set -u
cd "$(dirname "$0")/../.."
build=${1:-build-fuzz}
secs=${2:-60}
shift 2 2>/dev/null || shift $#
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
fi
# Longest input per target: enough for every structure the parser reads, small enough to stay fast.
max_len() {
  case $1 in
    image) echo 16384 ;; safetensors | serve) echo 8192 ;; idx | json) echo 4096 ;; checkpoint | ti_*) echo 2048 ;;
    *) echo 512 ;;
  esac
}
keep=()
[ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
mkdir -p "$build/fuzz-logs"
status=0
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $bin not built (make fuzz-build)"; status=1; continue; }
  mkdir -p "$build/fuzz-corpus/$t" "tests/fuzz/regress/$t"
  log=$build/fuzz-logs/$t.log
  echo "fuzz: $t for ${secs}s (max_len $(max_len "$t")) -> $log"
  "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "${keep[@]}" \
    -artifact_prefix="tests/fuzz/regress/$t/" "$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  found=$(ls "tests/fuzz/regress/$t" | wc -l)
  execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz: $t exit $rc, execs ${execs:-?}, files in regress/$t: $found: ${last:-no progress line}"
  if [ $rc -ne 0 ] || grep -q 'ERROR: libFuzzer\|ERROR: AddressSanitizer\|runtime error' "$log"; then
    status=1
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5
  fi
done
exit $status
