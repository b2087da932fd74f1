#!/usr/bin/env bash
# No-compile test for the compile-time capability views CxView / CxWith (SPEC 2.4).
#
# Compiles core/no_compile/capability_misuse.cc with the C++ compiler, -fsyntax-only:
#   - without a CASE_* macro (correct use of the views): must compile, so the test cannot pass
#     just because the snippet is broken;
#   - once per CASE_* macro (exactly one misuse each): must fail, and the diagnostics must name
#     both the member that was used and the capability the view lacks (or, for widening, the
#     refused conversion), so a failure for an unrelated reason does not count.
# It runs ${CXX:-g++} and, when installed, clang++-14. No -Werror: the cases are hard errors, and
# Clang warns about an unrelated tag mismatch in core/internal/task_record.h.
#
# Finding the headers: as obligations/no_compile_test.sh does, it resolves the symlink of one of
# its own runfiles (core/cx.h) into the source tree and compiles against that root, because the
# headers of //cancel and //obligations that core/cx.h includes are not runfiles here. This needs
# local execution (how this repository runs its tests); a change to those other packages' headers
# alone does not re-run this test from cache (bazel test --cache_test_results=no forces it).
set -euo pipefail
export LC_ALL=C  # plain ASCII quotes in the diagnostics

runfiles_root="${TEST_SRCDIR:?not run by bazel test}/${TEST_WORKSPACE:?}"
snippet="${runfiles_root}/core/no_compile/capability_misuse.cc"
source_header="$(readlink -f "${runfiles_root}/core/cx.h")"
source_root="$(dirname "$(dirname "${source_header}")")"
if [[ ! -f "${source_root}/cancel/cancel_state.h" || ! -f "${source_root}/obligations/ledger.h" ]]; then
  echo "FAIL: no cancel/ or obligations/ headers under ${source_root} (resolved from" \
    "${source_header}); this test needs runfiles that are symlinks into the source tree" >&2
  exit 1
fi

compilers=("${CXX:-g++}")
if command -v clang++-14 >/dev/null 2>&1 && [[ "${compilers[0]}" != "clang++-14" ]]; then
  compilers+=("clang++-14")
fi

# Each case: the CASE_* macro, then the extended regexes that must all match its diagnostics
# (GCC's and Clang's wording as alternatives; `.` stands for a quote), separated by tabs.
member_error() {  # the call of member $1 is rejected
  echo "(no matching function for call to .asupersync::CxView<[0-9]+>::$1\(|no matching member function for call to .$1.|invalid reference to function .$1.: constraints not satisfied)"
}
lacks() {  # the constraint that failed names capability $1
  echo "Capability::$1\)[^ ]* ?(\[with kCaps = [0-9]+\])?. evaluated to .?false"
}
tab=$'\t'
cases=(
  "CASE_SPAWN_WITHOUT_SPAWN${tab}$(member_error spawn)${tab}$(lacks kSpawn)"
  "CASE_SPAWN_WITHOUT_ANY_CAPABILITY${tab}$(member_error spawn)${tab}$(lacks kSpawn)"
  "CASE_SLEEP_WITHOUT_TIME${tab}$(member_error sleep)${tab}$(lacks kTime)"
  "CASE_NOW_WITHOUT_TIME${tab}$(member_error now)${tab}$(lacks kTime)"
  "CASE_RANDOM_WITHOUT_RANDOM${tab}$(member_error random_u64)${tab}$(lacks kRandom)"
  "CASE_WIDEN_VIEW${tab}(conversion from .CxView<2>. to non-scalar type .CxView<3>. requested|no viable conversion from .CxWith<Capability::kTime.*. to .CxWith<Capability::kSpawn, Capability::kTime>.)"
)

failures=0
output_file="$(mktemp)"
trap 'rm -f "${output_file}"' EXIT

compile() {  # compile <compiler> [extra flags...]; output in ${output_file}; returns the status
  local cxx="$1"
  shift
  "${cxx}" -std=c++20 -fsyntax-only -Wall -Wextra -Wno-unused-parameter \
    -Wno-missing-field-initializers -x c++ -I "${source_root}" "$@" "${snippet}" \
    >"${output_file}" 2>&1
}

for cxx in "${compilers[@]}"; do
  if compile "${cxx}"; then
    echo "ok   ${cxx}: correct use compiles"
  else
    echo "FAIL ${cxx}: correct use does not compile:"
    cat "${output_file}"
    failures=$((failures + 1))
  fi

  for entry in "${cases[@]}"; do
    IFS="${tab}" read -r -a fields <<<"${entry}"
    macro="${fields[0]}"
    if compile "${cxx}" "-D${macro}"; then
      echo "FAIL ${cxx}: ${macro} compiled, but it must not"
      failures=$((failures + 1))
      continue
    fi
    missing=""
    for pattern in "${fields[@]:1}"; do
      if ! grep -Eq -- "${pattern}" "${output_file}"; then missing="${pattern}"; fi
    done
    if [[ -z "${missing}" ]]; then
      echo "ok   ${cxx}: ${macro} is rejected"
    else
      echo "FAIL ${cxx}: ${macro} failed to compile, but not with /${missing}/:"
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
