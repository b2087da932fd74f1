#!/usr/bin/env bash
# Formats the C++ sources with clang-format (Google style, .clang-format).
#   tools/format.sh          rewrite files in place
#   tools/format.sh --check  list unformatted files and fail if there are any
set -euo pipefail
cd "$(dirname "$0")/.."
formatter=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$formatter" ]; then
  echo "format.sh: clang-format-14 is not installed (tools/install_deps.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cc' '*.h')
[ ${#files[@]} -eq 0 ] && exit 0
if [ "${1:-}" = "--check" ]; then
  "$formatter" --dry-run --Werror "${files[@]}"
  echo "format.sh: ${#files[@]} files are formatted"
else
  "$formatter" -i "${files[@]}"
fi
