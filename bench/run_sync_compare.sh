#!/usr/bin/env bash
# Builds //bench:sync_compare (--config=opt) and bench/tokio_sync (cargo, offline, from Debian's
# crate sources), runs every scenario on both REPS times, interleaved (the order alternates
# from one rep to the next, so drift on this shared machine hits both sides alike), and prints
# the medians and our ratio (ours / tokio throughput; > 1 = we are faster). Issue 6,
# acceptance 3; the figures are recorded in bench/README.md.
#
#   bench/run_sync_compare.sh                          REPS=3, both thread counts
#   REPS=5 THREADS="2" SCENARIOS="mutex_contended" bench/run_sync_compare.sh
#   N_MPSC=200000 N_LOCK=1000000 bench/run_sync_compare.sh
#   SKIP_BUILD=1 bench/run_sync_compare.sh              reuse the binaries of the last build
#                                                     (BAZEL_BIN=bazel-out/k8-opt/bin also skips
#                                                     `bazel info`, which waits for a running build)
#
# Environment: REPS (3), THREADS ("2 1": --threads 2 → asupersync_t2 vs tokio_mt2, --threads
# 1 → asupersync_t1 vs tokio_ct), SCENARIOS (all six), N_MPSC (messages, 1,000,000), N_LOCK
# (lock or acquire operations, 2,000,000), CARGO_TARGET_DIR (default
# ${TMPDIR:-/tmp}/asupersync-tokio-sync-target), RUN_TIMEOUT (seconds per run, 120), OUT (the
# raw lines; default a temporary file, kept and named at the end), OURS_BIN (another
# sync_compare binary to measure instead of the one just built, e.g. a copy from before a change).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
THREADS=${THREADS:-"2 1"}
SCENARIOS=${SCENARIOS:-"mpsc_uncontended mpsc_contended mutex_uncontended mutex_contended semaphore_uncontended semaphore_contended"}
N_MPSC=${N_MPSC:-1000000}
N_LOCK=${N_LOCK:-2000000}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-"${TMPDIR:-/tmp}/asupersync-tokio-sync-target"}
WORK=$(mktemp -d)
OUT=${OUT:-"$WORK/raw.txt"}

cd "$ROOT"
if [ -z "${SKIP_BUILD:-}" ]; then
  if ! command -v cargo > /dev/null; then
    echo "run_sync_compare: cargo is missing. Install Rust and Tokio's sources from Debian:" >&2
    echo "  apt-get install cargo librust-tokio-dev   (the crate builds offline from" >&2
    echo "  /usr/share/cargo/registry, see bench/tokio_sync/.cargo/config.toml)" >&2
    exit 1
  fi
  bazel build --config=opt //bench:sync_compare
  (cd bench/tokio_sync && cargo build --release --offline)
fi
# Private copies, so that a later build (another config) cannot swap a binary mid-run.
OURS="$WORK/sync_compare"
# The opt output (bazel-bin points to whichever config was built last).
BAZEL_BIN=${BAZEL_BIN:-$(bazel info --config=opt bazel-bin 2>/dev/null)}
TOKIO="$WORK/tokio_sync"
cp "${OURS_BIN:-$BAZEL_BIN/bench/sync_compare}" "$OURS"
cp "$CARGO_TARGET_DIR/release/tokio_sync" "$TOKIO"

{
  echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -srm)  cpus: $(nproc)"
  echo "# $(gcc --version | head -1)  $(rustc --version 2>/dev/null || echo rustc ?)"
  echo "# tokio: $(grep -A1 '^name = "tokio"$' bench/tokio_sync/Cargo.lock 2>/dev/null |
    sed -n 's/^version = "\(.*\)"/\1/p')  reps: $REPS  N_MPSC=$N_MPSC N_LOCK=$N_LOCK"
} > "$OUT"

run_one() { # binary threads scenario n
  local line
  if line=$(timeout "$RUN_TIMEOUT" "$1" --threads "$2" "$3" "$4"); then
    echo "$line status=ok" | tee -a "$OUT"
  else
    echo "peer=? bin=$(basename "$1") threads=$2 scenario=$3 n=$4 status=failed" | tee -a "$OUT"
  fi
}

for rep in $(seq 1 "$REPS"); do
  for threads in $THREADS; do
    for scenario in $SCENARIOS; do
      case "$scenario" in
        mpsc_*) n=$N_MPSC ;;
        *) n=$N_LOCK ;;
      esac
      if [ $((rep % 2)) -eq 1 ]; then
        run_one "$OURS" "$threads" "$scenario" "$n"
        run_one "$TOKIO" "$threads" "$scenario" "$n"
      else
        run_one "$TOKIO" "$threads" "$scenario" "$n"
        run_one "$OURS" "$threads" "$scenario" "$n"
      fi
    done
  done
done

echo
python3 - "$OUT" <<'PY'
import shlex, statistics, sys
from collections import defaultdict

PAIRS = [("asupersync_t2", "tokio_mt2"), ("asupersync_t1", "tokio_ct")]
ops = defaultdict(list)  # (scenario, peer) -> ops_per_sec
scenarios, failed = [], 0
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("#"):
        print("- " + line.lstrip("# "))
        continue
    d = dict(t.split("=", 1) for t in shlex.split(line) if "=" in t)
    if d.get("status") != "ok":
        failed += 1
        continue
    if d["scenario"] not in scenarios:
        scenarios.append(d["scenario"])
    ops[(d["scenario"], d["peer"])].append(float(d["ops_per_sec"]))

def med(s, p):
    v = ops.get((s, p))
    return statistics.median(v) if v else None

print()
print("| scenario | ours | tokio | ours ops/s (median) | tokio ops/s (median) | ratio ours/tokio |")
print("|---|---|---|---:|---:|---:|")
for ours, tokio in PAIRS:
    for s in scenarios:
        a, b = med(s, ours), med(s, tokio)
        if a is None and b is None:
            continue
        fa = "-" if a is None else f"{a:,.0f}"
        fb = "-" if b is None else f"{b:,.0f}"
        r = "-" if a is None or not b else f"{a / b:.2f}"
        print(f"| {s} | {ours} | {tokio} | {fa} | {fb} | {r} |")
if failed:
    print(f"\n{failed} run(s) failed (status=failed lines in the raw file)")
PY
echo
echo "raw results: $OUT"
