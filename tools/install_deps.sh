#!/usr/bin/env bash
# Installs the Debian packages this project builds with, when they are missing.
# Needs root or sudo for apt-get; prints what it installs and why. Idempotent and quiet when
# everything is present. Nothing else is downloaded: the Bazel build itself is offline.
set -euo pipefail

# package : why it is needed
readonly REQUIRED=(
  "bazel-bootstrap:the build system (Bazel 4.2.3)"
  "g++:the default C++20 compiler (GCC 12)"
  "clang-14:the second compiler (--config=clang)"
  "libclang-rt-14-dev:sanitizer runtimes for clang"
  "clang-format-14:formatting check (tools/format.sh)"
  "libabsl-dev:Abseil (Status, StatusOr, containers, strings)"
  "libgtest-dev:GoogleTest"
  "libgmock-dev:GoogleMock"
  "libbenchmark-dev:Google Benchmark (bench/)"
  "libc-ares-dev:c-ares, the DNS resolver (net/)"
  "node-llhttp:llhttp C sources, the HTTP/1.1 parser (http/)"
)

missing=()
for entry in "${REQUIRED[@]}"; do
  package="${entry%%:*}"
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
    echo "install_deps: will install ${package} -- ${entry#*:}"
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install_deps: missing packages (${missing[*]}) and neither root nor sudo is available;" >&2
  echo "install_deps: run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  echo "install_deps: package lists may be stale; running apt-get update and retrying"
  "${as_root[@]}" apt-get update
  "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
