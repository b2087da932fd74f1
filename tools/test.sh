#!/usr/bin/env bash
# Runs the whole test suite. Extra arguments go to `bazel test`, e.g. --config=asan.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
exec bazel test "$@" //...
