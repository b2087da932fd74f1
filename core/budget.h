// Copyright The Asupersync Authors.
//
// core/budget.h: `Budget`, the limits a task or region runs under (SPEC 1.2).
//
// A budget bounds work along four axes:
//   - `deadline`: the instant after which the work is cancelled (`Deadline`); none = no deadline.
//   - `poll_quota`: how many times the task may be polled; `kUnlimitedPolls` = no limit.
//   - `cost_quota`: an abstract cost allowance (bytes, rows, ...); none = no limit.
//   - `priority`: scheduling priority, higher runs first.
//
// Budgets combine with `meet`, which keeps the tighter limit on every axis and the higher
// priority. `meet` is commutative, associative and idempotent, and `Budget::Infinite()` (which is
// also the default value) is its identity. A child's budget is always `meet(parent, requested)`,
// so a child can never loosen what its parent allows.
//
// A deadline of `Time::Infinite()` behaves like no deadline but is a distinct value; `meet` keeps
// it as given (it does not normalise), which keeps the algebraic laws exact.
//
// Thread-safety: a plain value type. Lifetime: no references to anything.

#ifndef ASUPERSYNC_CORE_BUDGET_H_
#define ASUPERSYNC_CORE_BUDGET_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <string>

#include "core/time.h"

namespace asupersync {

struct Budget {
  static constexpr uint32_t kUnlimitedPolls = std::numeric_limits<uint32_t>::max();

  // Ordered largest first (40 bytes rather than 48 with padding): a Budget is part of every
  // spawned task's Cx, so of its record.
  std::optional<Time> deadline;
  std::optional<uint64_t> cost_quota;
  uint32_t poll_quota = kUnlimitedPolls;
  uint8_t priority = 0;

  // No deadline, unlimited polls and cost, priority 0: the identity of `meet`.
  static constexpr Budget Infinite() { return Budget{}; }

  // Copies of this budget with one field replaced (not met: `with_deadline` can loosen).
  constexpr Budget with_deadline(Time t) const {
    Budget b = *this;
    b.deadline = t;
    return b;
  }
  constexpr Budget with_poll_quota(uint32_t polls) const {
    Budget b = *this;
    b.poll_quota = polls;
    return b;
  }
  constexpr Budget with_cost_quota(uint64_t cost) const {
    Budget b = *this;
    b.cost_quota = cost;
    return b;
  }
  constexpr Budget with_priority(uint8_t p) const {
    Budget b = *this;
    b.priority = p;
    return b;
  }

  constexpr bool operator==(const Budget&) const = default;

  // E.g. "Budget{deadline=12ms, polls=1000, cost=unlimited, priority=200}"; absent limits print
  // as "none" (deadline) and "unlimited" (polls, cost).
  std::string to_string() const;

  friend std::ostream& operator<<(std::ostream& os, const Budget& b) { return os << b.to_string(); }
};

// SPEC 1.2: the tighter of two budgets. Min of deadline, poll quota and cost quota (an absent
// deadline or cost is the largest), max of priority.
// Always inlined: spawn calls it per task, and an out-of-line call returning the 48-byte Budget
// through memory stalled on store forwarding when the result was copied into the new Cx.
[[gnu::always_inline]] constexpr Budget meet(const Budget& a, const Budget& b) {
  Budget out;
  if (!a.deadline.has_value()) {
    out.deadline = b.deadline;
  } else if (!b.deadline.has_value()) {
    out.deadline = a.deadline;
  } else {
    out.deadline = std::min(*a.deadline, *b.deadline);
  }
  out.poll_quota = std::min(a.poll_quota, b.poll_quota);
  if (!a.cost_quota.has_value()) {
    out.cost_quota = b.cost_quota;
  } else if (!b.cost_quota.has_value()) {
    out.cost_quota = a.cost_quota;
  } else {
    out.cost_quota = std::min(*a.cost_quota, *b.cost_quota);
  }
  out.priority = std::max(a.priority, b.priority);
  return out;
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_BUDGET_H_
