#!/usr/bin/env bash
# No-compile test for the obligation tokens (SPEC 5.2).
#
# Compiles obligations/no_compile/misuse.cc with the C++ compiler, -fsyntax-only:
#   - without a CASE_* macro (correct usage): must compile with -Wall -Wextra -Werror, so the test
#     cannot pass just because the snippet is broken;
#   - once per CASE_* macro (exactly one misuse each): must fail, and the diagnostics must name
#     the actual problem (a deleted copy, an rvalue ref-qualifier, a const object, nodiscard,
#     the consumed state), so a failure for an unrelated reason does not count.
# It runs ${CXX:-g++} and, when installed, clang++-14 (which also checks -Wconsumed).
#
# Finding the headers: the snippet includes obligations/*.h (runfiles of this test) and, through
# them, core/*.h, which are not runfiles here (//core:types does not export its headers as
# files, and data deps on a cc_library do not carry headers). Bazel 4 builds the runfiles tree
# out of symlinks that resolve into the source tree, so resolving the symlink of one of our own
# runfiles (obligations/permit.h) leads to the real workspace root, where core/ lives. This needs
# local execution (not remote), which is how this repository runs its tests. Bazel does not
# know about that dependency: a change to core/ headers alone does not re-run this test from
# cache (bazel test --cache_test_results=no forces it).
set -euo pipefail
export LC_ALL=C  # plain ASCII quotes in the diagnostics

runfiles_root="${TEST_SRCDIR:?not run by bazel test}/${TEST_WORKSPACE:?}"
snippet="${runfiles_root}/obligations/no_compile/misuse.cc"
source_header="$(readlink -f "${runfiles_root}/obligations/permit.h")"
source_root="$(dirname "$(dirname "${source_header}")")"
if [[ ! -f "${source_root}/core/id.h" || ! -f "${source_root}/core/generational_arena.h" ]]; then
  echo "FAIL: no core/ headers under ${source_root} (resolved from ${source_header});" \
    "this test needs runfiles that are symlinks into the source tree" >&2
  exit 1
fi

compilers=("${CXX:-g++}")
if command -v clang++-14 >/dev/null 2>&1 && [[ "${compilers[0]}" != "clang++-14" ]]; then
  compilers+=("clang++-14")
fi

# Each case: the CASE_* macro, then an extended regex the diagnostics must match. Alternatives
# cover GCC's and Clang's wording. `.` stands for a quote.
cases=(
  "CASE_COPY_PERMIT|(use of deleted function .asupersync::Permit<T>::Permit\(const asupersync::Permit<T>&\)|call to deleted constructor of .Permit<int>.)"
  "CASE_SEND_ON_LVALUE|(.this. argument to member function .send. is an lvalue, but function has rvalue ref-qualifier|passing .asupersync::Permit<int>. as .this. argument discards qualifiers)"
  "CASE_SEND_ON_CONST|const asupersync::Permit<int>.[)}],? (but function is not marked const|as .this. argument discards qualifiers)"
  "CASE_COMPLETE_LEASE_ON_LVALUE|(.this. argument to member function .complete. is an lvalue, but function has rvalue ref-qualifier|passing .asupersync::Lease. as .this. argument discards qualifiers)"
  "CASE_COPY_LEASE|(use of deleted function .asupersync::Lease::Lease\(const asupersync::Lease&\)|call to deleted constructor of .asupersync::Lease.)"
  "CASE_DISCARD_PERMIT|nodiscard.*unused-result"
  # Clang only: GCC has no consumed-state analysis, so this case compiles there.
  "CASE_SEND_AFTER_SEND|invalid invocation of method .send. on a temporary object while it is in the .consumed. state"
)

failures=0
output_file="$(mktemp)"
trap 'rm -f "${output_file}"' EXIT

compile() {  # compile <compiler> [extra flags...]; output in ${output_file}; returns the status
  local cxx="$1"
  shift
  local flags=(-std=c++20 -fsyntax-only -Wall -Wextra -Werror -x c++
    -I "${runfiles_root}" -I "${source_root}")
  if "${cxx}" --version 2>/dev/null | grep -q clang; then flags+=(-Wconsumed); fi
  "${cxx}" "${flags[@]}" "$@" "${snippet}" >"${output_file}" 2>&1
}

for cxx in "${compilers[@]}"; do
  is_clang=0
  if "${cxx}" --version 2>/dev/null | grep -q clang; then is_clang=1; fi

  if compile "${cxx}"; then
    echo "ok   ${cxx}: correct usage compiles"
  else
    echo "FAIL ${cxx}: correct usage does not compile:"
    cat "${output_file}"
    failures=$((failures + 1))
  fi

  for entry in "${cases[@]}"; do
    macro="${entry%%|*}"
    pattern="${entry#*|}"
    if [[ "${macro}" == "CASE_SEND_AFTER_SEND" && "${is_clang}" == 0 ]]; then
      echo "skip ${cxx}: ${macro} (needs Clang's -Wconsumed)"
      continue
    fi
    if compile "${cxx}" "-D${macro}"; then
      echo "FAIL ${cxx}: ${macro} compiled, but it must not"
      failures=$((failures + 1))
    elif grep -Eq -- "${pattern}" "${output_file}"; then
      echo "ok   ${cxx}: ${macro} is rejected"
    else
      echo "FAIL ${cxx}: ${macro} failed to compile, but not with /${pattern}/:"
      cat "${output_file}"
      failures=$((failures + 1))
    fi
  done
done

if [[ "${failures}" -ne 0 ]]; then
  echo "${failures} failure(s)"
  exit 1
fi
echo "PASS"
