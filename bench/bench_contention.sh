#!/usr/bin/env bash
# Training throughput on a quiet machine and beside a competing 2-thread busy loop, for OpenMP's
# waiting policies: what robustcv did before (libgomp's default, and OMP_WAIT_POLICY=active)
# and its default now (GOMP_SPINCOUNT=100000, set by src/cli/main.c).
#
# usage: bench/bench_contention.sh [BUILD_DIR] [REPEATS]
# env:   SUBSET (training images per run, default 16000), BATCH (64), THREADS (2), MODEL (smallcnn),
#        POLICIES (default "now libgomp passive active"; also spinN, e.g. spin10000),
#        LOADS (default "quiet busy2"; "quiet" alone for the quiet-speed comparison)
#
# Each run is `robustcv train` on a Fashion-MNIST subset for one epoch (SUBSET/BATCH batches);
# img/s is the epoch's training images per second from metrics.jsonl (evaluation excluded). The
# median of REPEATS runs is printed; the policies take turns run by run. "busy2" runs two shell busy loops beside training, i.e.
# another process wanting 2 cores; on a 2-core machine the fair share is then half, so a policy
# that loses only the cores it gives up runs at about 0.5x its quiet speed.
# The load average before each row is printed: a "quiet" row is only quiet if it says so.
set -u
BUILD=${1:-build}
REPEATS=${2:-3}
BIN=$BUILD/robustcv
SUBSET=${SUBSET:-16000}
BATCH=${BATCH:-64}
THREADS=${THREADS:-2}
MODEL=${MODEL:-smallcnn}
POLICIES=${POLICIES:-now libgomp passive active}
LOADS=${LOADS:-quiet busy2}
[ -x "$BIN" ] || { echo "bench_contention: $BIN not found (build first)" >&2; exit 1; }
T=$(mktemp -d /tmp/rcv_contention.XXXXXX)
busy=()
stop_busy() { for p in "${busy[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; busy=(); }
trap 'stop_busy; rm -rf "$T"' EXIT

# policy name -> environment for the run
policy_env() {
  case $1 in
    now) echo "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT" ;;                          # robustcv's default
    libgomp) echo "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT RCV_OMP_REEXEC=0" ;;     # before: libgomp's own
    active) echo "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active" ;;
    passive) echo "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive" ;;
    spin*) echo "env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=${1#spin}" ;;                # e.g. spin10000
    *) echo "bench_contention: unknown policy $1" >&2; exit 2 ;;
  esac
}

one_run() { # policy -> img/s
  rm -rf "$T/run"
  $(policy_env "$1") "$BIN" train --data fashion-mnist --model "$MODEL" --epochs 1 --batch "$BATCH" \
    --subset "$SUBSET" --threads "$THREADS" --seed 1 --quiet --out "$T/run" > /dev/null 2> "$T/err" ||
    { cat "$T/err" >&2; echo 0; return; }
  sed -E 's/.*"images_per_second": ([0-9.]+).*/\1/' "$T/run/metrics.jsonl" | tail -1
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "# bench_contention: $MODEL, batch $BATCH, $SUBSET images/epoch, $THREADS threads, median of $REPEATS; $(nproc) cores"
echo "# $(uname -n) $(date -u +%FT%TZ)"
printf "%-8s %-6s %10s %8s   %s\n" policy load "img/s" "x quiet" "runs (img/s); load average before"
declare -A runs quiet
for load in $LOADS; do
  if [ $load = busy2 ]; then
    for i in 1 2; do (while :; do :; done) & busy+=($!); done
  fi
  la=$(cut -d' ' -f1-3 /proc/loadavg)
  for pol in $POLICIES; do runs[$pol]=""; done
  # Policies take turns within each repeat, so a drift in the machine's speed hits them alike.
  for r in $(seq 1 "$REPEATS"); do
    for pol in $POLICIES; do runs[$pol]+="$(one_run "$pol") "; done
  done
  stop_busy
  for pol in $POLICIES; do
    med=$(printf "%s\n" ${runs[$pol]} | median)
    [ $load = quiet ] && quiet[$pol]=$med
    ratio=$(awk -v a="$med" -v b="${quiet[$pol]:-0}" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    printf "%-8s %-6s %10.1f %8s   %s; %s\n" "$pol" $load "$med" "$ratio" "${runs[$pol]% }" "$la"
  done
done
