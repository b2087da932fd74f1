// Copyright The Asupersync Authors.
//
// sched/internal/invariant.h: the one way the scheduler's building blocks stop the process
// when one of their own invariants is broken (a bug, never an input or resource error: those
// are reported as absl::Status).
//
// Thread-safety: callable from any thread; it writes one line to stderr and aborts.
// Lifetime: nothing to own. Cancellation: not involved.

#ifndef ASUPERSYNC_SCHED_INTERNAL_INVARIANT_H_
#define ASUPERSYNC_SCHED_INTERNAL_INVARIANT_H_

#include <cstdio>
#include <cstdlib>

namespace asupersync::sched {

// Prints "asupersync: invariant violated: <invariant>" and aborts. `invariant` states the rule
// that was broken, e.g. "WorkStealingDeque capacity is a power of two".
[[noreturn]] inline void invariant_violated(const char* invariant) {
  std::fprintf(stderr, "asupersync: invariant violated: %s\n", invariant);
  std::fflush(stderr);
  std::abort();
}

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_INVARIANT_H_
