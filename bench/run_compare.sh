#!/usr/bin/env bash
# Runs //bench:compare as two more columns (asupersync_t2, asupersync_t1) of the peers'
# side-by-side benchmark (../shared/peers, see its README), then prints our ratio to every peer.
#
#   bench/run_compare.sh                                 full profile, REPS=3 (about 25 min)
#   PROFILE=quick REPS=1 bench/run_compare.sh            smoke test (a few minutes)
#   PEERS="tokio_mt2 go_p2" SCENARIOS="spawn_join ping_pong" REPS=5 bench/run_compare.sh
#   bench/run_compare.sh --ratios results/raw-STAMP.txt  only re-print the ratios of a past run
#
# Environment: PEERS_DIR (default ../shared/peers from the repository root); when that folder
# is not writable (or is read-only by its mode, as the shared copy is) it is copied to
# PEERS_COPY (default ${TMPDIR:-/tmp}/asupersync-peers), keeping earlier build outputs there.
# PROFILE, REPS, PEERS, SCENARIOS, RUN_TIMEOUT, CL_Q, CL_K, CG_Q, CG_G, CG_K, SKIP_BUILD pass
# through to run_all.sh. PEERS lists the peer columns; ours are always added.
# The peers are built with their own ./build.sh when bin/ is missing (it installs what it needs
# with apt when run as root).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# Our ratio to every peer, per scenario, from a raw results file of run_all.sh (medians over
# the reps, like summarize.py).
ratios() {
  python3 - "$1" <<'PY'
import shlex, statistics, sys
from collections import defaultdict

OURS = ("asupersync_t2", "asupersync_t1")
LATENCY = ("cancel_latency", "cancel_group")
vals = defaultdict(lambda: defaultdict(list))  # (scenario, peer) -> metric -> values
peers, scens, header = [], [], []
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("#"):
        header.append(line.lstrip("# "))
        continue
    d = dict(t.split("=", 1) for t in shlex.split(line) if "=" in t)
    if "peer" not in d or "scenario" not in d:
        continue
    p, s = d["peer"], d["scenario"]
    if p not in peers:
        peers.append(p)
    if s not in scens:
        scens.append(s)
    if d.get("status") != "ok":
        continue
    for k, v in d.items():
        try:
            vals[(s, p)][k].append(float(v))
        except ValueError:
            pass

def med(s, p, m):
    v = vals[(s, p)].get(m)
    return statistics.median(v) if v else None

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

others = [p for p in peers if p not in OURS]
for h in header:
    print("- " + h)
print()
for ours in OURS:
    if ours not in peers:
        continue
    print(f"### {ours}: throughput ratio ours / peer (median ops_per_sec; > 1 = we are faster)")
    print()
    print("| scenario | " + " | ".join(others) + " |")
    print("|---|" + "---:|" * len(others))
    for s in scens:
        cells = [ratio(med(s, ours, "ops_per_sec"), med(s, p, "ops_per_sec")) for p in others]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print()
    rows = [s for s in scens if s in LATENCY] + [s for s in scens if s == "timers"]
    if rows:
        print(f"### {ours}: latency ratio peer / ours (> 1 = our latency is lower)")
        print()
        print("| scenario, statistic | " + " | ".join(others) + " |")
        print("|---|" + "---:|" * len(others))
        for s in rows:
            metrics = ("p50_us", "p99_us") if s in LATENCY else ("late_mean_us", "late_max_us")
            for m in metrics:
                cells = [ratio(med(s, p, m), med(s, ours, m)) for p in others]
                print(f"| {s} {m} | " + " | ".join(cells) + " |")
        print()
print("### medians of our columns")
print()
print("| scenario | metric | " + " | ".join(p for p in OURS if p in peers) + " |")
print("|---|---|" + "---:|" * len([p for p in OURS if p in peers]))
for s in scens:
    for m in ("ops_per_sec", "p50_us", "p99_us", "max_us", "late_mean_us", "late_p50_us",
              "late_p99_us", "late_max_us", "spawn_s", "maxrss_kb"):
        cells = [med(s, p, m) for p in OURS if p in peers]
        if all(c is None for c in cells):
            continue
        f = lambda x: "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.3f}")
        print(f"| {s} | {m} | " + " | ".join(f(c) for c in cells) + " |")
PY
}

if [ "${1:-}" = "--ratios" ]; then
  ratios "$2"
  exit 0
fi

cd "$ROOT"
tools/install_deps.sh
bazel build --config=opt //bench:compare

PEERS_DIR=${PEERS_DIR:-"$ROOT/../shared/peers"}
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)
writable() { # root passes `test -w` everywhere: also require the owner's write bit
  [ -w "$1" ] && [ -n "$(find "$1" -maxdepth 0 -perm -u+w)" ]
}
if writable "$PEERS_DIR"; then
  WORK="$PEERS_DIR"
else
  WORK=${PEERS_COPY:-"${TMPDIR:-/tmp}/asupersync-peers"}
  echo "run_compare: $PEERS_DIR is not writable; working in a copy: $WORK"
  mkdir -p "$WORK"
  # Sources (with their times, so build.sh only rebuilds what changed); build outputs and
  # results already in the copy are kept.
  (cd "$PEERS_DIR" && tar --exclude=./bin --exclude=./rust/target --exclude=./third_party \
    --exclude=./results --exclude=./asupersync -cf - .) | (cd "$WORK" && tar -xf -)
  chmod -R u+w "$WORK"
fi
cd "$WORK"
# A private copy of the binary, so that a later build (another config) cannot swap it mid-run.
mkdir -p asupersync
BIN="$WORK/asupersync/compare"
cp -f "$ROOT/bazel-bin/bench/compare" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
if [ ! -d bin ] || [ -z "$(ls -A bin 2>/dev/null)" ]; then
  echo "run_compare: building the peers (./build.sh)"
  ./build.sh
fi

OURS="asupersync_t2=$BIN --threads 2;asupersync_t1=$BIN --threads 1"
export EXTRA_PEERS="$OURS"
# PEERS/SCENARIOS/PROFILE/REPS/... are inherited by run_all.sh when set.
log=$(mktemp)
set +e
./run_all.sh 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
raw=$(grep -o 'raw results: .*' "$log" | tail -1 | sed 's/raw results: //')
rm -f "$log"
if [ -z "$raw" ]; then
  echo "run_compare: run_all.sh did not report a raw results file (exit $status)" >&2
  exit 1
fi
echo
ratios "$WORK/$raw" | tee "$WORK/${raw%.txt}.ratios.md"
echo
echo "raw results: $WORK/$raw"
echo "ratios:      $WORK/${raw%.txt}.ratios.md"
exit "$status"
