#!/usr/bin/env bash
# Builds the benchmarks optimised and runs each one. Extra arguments go to every benchmark
# binary (e.g. --benchmark_filter=Spawn).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
targets=$(bazel query 'attr(tags, "benchmark", //...)' 2>/dev/null)
if [ -z "$targets" ]; then
  echo "bench.sh: no benchmarks are defined yet (see bench/README.md)"
  exit 0
fi
bazel build --config=opt $targets
for target in $targets; do
  binary="bazel-bin/$(echo "${target#//}" | tr ':' '/')"
  echo "== ${target}"
  "$binary" "$@"
done
