#!/usr/bin/env bash
# Runs //examples:demo and checks the lines that tell its story, in order, so that the first
# program a newcomer runs cannot silently rot: the phases request -> drain -> finalize, each
# cooperative worker acknowledging, the stubborn one escalated, finalizers LIFO, no leaked
# obligation, the outcomes, the lab's oracles. Also runs it twice: the output must be identical
# (the lab runtime is deterministic, SPEC 11.1).
set -euo pipefail

demo="${TEST_SRCDIR:?not run by bazel test}/${TEST_WORKSPACE:?}/examples/demo"
output="$("${demo}")" || { echo "FAIL: the demo exited with status $?"; exit 1; }
second="$("${demo}")"
if [[ "${output}" != "${second}" ]]; then
  echo "FAIL: two runs of the demo printed different output"
  diff <(echo "${output}") <(echo "${second}") || true
  exit 1
fi

failures=0
last_line=0
# expect <fixed text>: the next expected line, after the previous one.
expect() {
  local line
  line="$(grep -nF -- "$1" <<<"${output}" | head -1 | cut -d: -f1 || true)"
  if [[ -z "${line}" ]]; then
    echo "FAIL: missing: $1"
    failures=$((failures + 1))
  elif [[ "${line}" -le "${last_line}" ]]; then
    echo "FAIL: out of order (line ${line}, expected after line ${last_line}): $1"
    failures=$((failures + 1))
  else
    echo "ok   line ${line}: $1"
    last_line="${line}"
  fi
}

expect "== 1. Start: region 'server' with four workers"
expect "worker-1  request 1 done: permit committed"
expect "== 2. The region tree at 25ms"
expect "task 'stubborn'"
expect "== 3. Request: the server cancels its region, cleanup budget 15ms"
expect "[  25.000ms] server    cx.cancel_region(Shutdown"
expect "cancel requested"
expect "== 4. Drain"
for worker in worker-1 worker-2 worker-3; do
  if ! grep -qF "[  25.000ms] ${worker}  acknowledged the request" <<<"${output}"; then
    echo "FAIL: ${worker} did not acknowledge at 25ms"
    failures=$((failures + 1))
  fi
done
expect "flushed for 2ms (shielded); completed its lease; returns"
expect "[  30.000ms] stubborn  cancel requested, but shielded: keeps working"
expect "[  40.000ms] stubborn  cleanup budget spent: the runtime destroyed its frame (kDestroy)"
expect "== 5. Finalize"
expect "'report ledger' ran: committed 6, completed 3, aborted 4, leaked 0, pending 0"
expect "'flush access log' ran"
expect "'close listener' ran"
expect "region 'server' is Closed: Cancelled (Shutdown 'demo: shutting down')"
expect "== 6. Outcomes"
expect "worker-1  Cancelled (Shutdown 'demo: shutting down')"
expect "stubborn  Cancelled (Shutdown 'demo: shutting down')  [budget exhausted: destroyed]"
expect "main      Ok()"
expect "oracles (no task outlives its region, closed regions quiescent): all hold"

if [[ "${failures}" -ne 0 ]]; then
  echo "${failures} failure(s); the demo printed:"
  echo "${output}"
  exit 1
fi
echo "PASS"
