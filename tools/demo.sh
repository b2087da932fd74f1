#!/usr/bin/env bash
# Builds and runs the demo (//examples:demo): a server region cancelled with a cleanup budget,
# printed as it happens (request -> drain -> finalize) on the deterministic lab runtime. Installs
# the Debian packages it needs first, as tools/test.sh does. Extra arguments go to `bazel run`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
exec bazel run "$@" //examples:demo
