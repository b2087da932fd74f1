// Copyright The Asupersync Authors.
//
// core/cancel_reason.h: why something was cancelled (SPEC 1.4, 1.5).
//
// `CancelKind` classifies a cancellation; kinds fall into severity tiers (`cancel_tier`), and
// each kind has a default cleanup budget (`cleanup_budget`), the budget a task gets once it has
// acknowledged the request.
//
// `CancelReason` is an immutable record: kind, the region (and optionally task) that originated
// it, when, a human-readable message, and the reason that caused it (e.g. a `ParentCancelled`
// reason points at the region's own reason). The cause chain holds at most `kMaxCauseDepth`
// reasons; when `caused_by` would make it longer, the oldest causes are dropped and
// `cause_truncated()` becomes true. Causes are shared, so copying a reason is cheap (one string,
// one shared_ptr).
//
// When two requests meet, `strengthen` picks the stronger reason. It is deterministic,
// idempotent, commutative and associative in value, and monotone: the strength order
// (`compare_strength`) is total, and `strengthen` is its max.
//
// Thread-safety: immutable after construction; copies may be read and destroyed from any thread
// (the shared cause is const and reference-counted atomically).

#ifndef ASUPERSYNC_CORE_CANCEL_REASON_H_
#define ASUPERSYNC_CORE_CANCEL_REASON_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "core/budget.h"
#include "core/id.h"
#include "core/time.h"

namespace asupersync {

// SPEC 1.4. Tiers, low to high: User < Timeout, Deadline < PollQuota, CostBudget < FailFast,
// RaceLost, LinkedExit < ParentCancelled, ResourceUnavailable < Shutdown.
enum class CancelKind : uint8_t {
  kUser,
  kTimeout,
  kDeadline,
  kPollQuota,
  kCostBudget,
  kFailFast,
  kRaceLost,
  kLinkedExit,
  kParentCancelled,
  kResourceUnavailable,
  kShutdown,
};

// Every kind, in declaration order.
inline constexpr std::array<CancelKind, 11> kAllCancelKinds = {
    CancelKind::kUser,
    CancelKind::kTimeout,
    CancelKind::kDeadline,
    CancelKind::kPollQuota,
    CancelKind::kCostBudget,
    CancelKind::kFailFast,
    CancelKind::kRaceLost,
    CancelKind::kLinkedExit,
    CancelKind::kParentCancelled,
    CancelKind::kResourceUnavailable,
    CancelKind::kShutdown,
};

// The severity tier of `kind`, 0 (User) to 5 (Shutdown). Aborts on a value outside the enum.
int cancel_tier(CancelKind kind);

// "User", "Timeout", ..., "Shutdown"; "InvalidCancelKind" for a value outside the enum.
absl::string_view cancel_kind_name(CancelKind kind);

// SPEC 1.5: the default cleanup budget of `kind`: a poll quota and a priority, no deadline and
// no cost quota. User 1000/200; Timeout, Deadline 500/210; PollQuota, CostBudget 300/215;
// FailFast, RaceLost, LinkedExit, ParentCancelled, ResourceUnavailable 200/220; Shutdown 50/255.
// Aborts on a value outside the enum.
Budget cleanup_budget(CancelKind kind);

class CancelReason {
 public:
  // The most causes a reason keeps; older ones are dropped.
  static constexpr int kMaxCauseDepth = 8;

  // Kind User, invalid origin region, no task, time Epoch, empty message, no cause. For
  // containers; real reasons use the constructor below.
  CancelReason() = default;
  // A reason with no cause. Aborts if `kind` is not a valid CancelKind.
  CancelReason(CancelKind kind, RegionId origin_region, std::optional<TaskId> origin_task,
               Time time, std::string message);

  CancelReason(const CancelReason&) = default;
  CancelReason& operator=(const CancelReason&) = default;
  CancelReason(CancelReason&&) = default;
  CancelReason& operator=(CancelReason&&) = default;

  CancelKind kind() const { return kind_; }
  int tier() const { return cancel_tier(kind_); }
  RegionId origin_region() const { return origin_region_; }
  std::optional<TaskId> origin_task() const { return origin_task_; }
  Time time() const { return time_; }
  const std::string& message() const;

  // The reason that caused this one, or nullptr. Owned by this reason (and shared with its
  // copies); valid as long as this reason is.
  const CancelReason* cause() const { return cause_.get(); }
  // The number of reasons in the cause chain (0 without a cause), at most kMaxCauseDepth.
  int cause_depth() const { return cause_depth_; }
  // True if older causes were dropped from this reason's chain to respect kMaxCauseDepth.
  bool cause_truncated() const { return cause_truncated_; }

  // A new reason with the given fields whose cause is (a copy of) this reason. If the chain
  // would exceed kMaxCauseDepth, the oldest causes are dropped and the result's
  // cause_truncated() is true. Aborts if `kind` is not a valid CancelKind.
  CancelReason caused_by(CancelKind kind, RegionId origin_region, std::optional<TaskId> origin_task,
                         Time time, std::string message) const;

  // E.g. "ParentCancelled at 12ms from region 3#1: 'server stopping' <- User at 10ms from
  // region 1#1 task 4#1: 'ctrl-c'". A task is shown when present, a message when non-empty, and
  // a truncated chain ends with " <- ...".
  std::string to_string() const;

  // Equal when kind, origins, time, message and the whole cause chain (including whether it
  // was truncated) are equal.
  friend bool operator==(const CancelReason& a, const CancelReason& b);

  friend std::ostream& operator<<(std::ostream& os, const CancelReason& r) {
    return os << r.to_string();
  }

 private:
  friend int compare_strength(const CancelReason& a, const CancelReason& b);

  CancelKind kind_ = CancelKind::kUser;
  RegionId origin_region_;
  std::optional<TaskId> origin_task_;
  Time time_;
  // Shared and immutable, so copying a reason (every cancelled task keeps one) never copies
  // the text. Null for an empty message.
  std::shared_ptr<const std::string> message_;
  std::shared_ptr<const CancelReason> cause_;
  int cause_depth_ = 0;
  bool cause_truncated_ = false;
};

// The strength order behind `strengthen`: > 0 if `a` is stronger than `b`, < 0 if weaker, 0 iff
// a == b. Stronger means: higher tier; then earlier time; then lexicographically smaller
// message; then (arbitrary but fixed, so the order is total) smaller kind, smaller origin
// region, absent-then-smaller origin task, absent-then-stronger cause, untruncated first.
int compare_strength(const CancelReason& a, const CancelReason& b);

// SPEC 1.4: the stronger of `a` and `b` (`a` when they are equal).
CancelReason strengthen(const CancelReason& a, const CancelReason& b);

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_CANCEL_REASON_H_
