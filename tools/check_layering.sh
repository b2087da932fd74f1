#!/usr/bin/env bash
# Fails when a BUILD file inside the repository depends on one of the root aliases (//:core,
# //:sync, ...). Those aliases exist for downstream workspaces; inside the repository the
# package layering (ARCHITECTURE.md) is enforced by each target's visibility, which a
# dependency through a root alias would bypass.
set -euo pipefail
cd "$(dirname "$0")/.."
if git grep -nE '"//:[a-z][a-z_]*"' -- '*/BUILD.bazel'; then
  echo "check_layering.sh: depend on the package target (e.g. //core), not on a root alias" >&2
  exit 1
fi
echo "check_layering.sh: no in-repository dependency on root aliases"
