#!/usr/bin/env bash
# Runs every scenario of sync_compare (the binary is $1) with a small N on 1 and 2 workers and
# checks that each exits 0 and prints its result line.
set -euo pipefail
BIN=$1
for threads in 1 2; do
  for scenario in mpsc_uncontended mpsc_contended mutex_uncontended mutex_contended \
    semaphore_uncontended semaphore_contended; do
    out=$("$BIN" --threads "$threads" "$scenario" 2003)
    case "$out" in
      "peer=asupersync_t$threads scenario=$scenario n=2003 "*) echo "$out" ;;
      *)
        echo "unexpected output of $scenario (threads $threads): $out" >&2
        exit 1
        ;;
    esac
  done
done
# A bad scenario name is refused.
if "$BIN" no_such_scenario 10 2>/dev/null; then
  echo "an unknown scenario was accepted" >&2
  exit 1
fi
