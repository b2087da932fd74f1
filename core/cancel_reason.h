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
// `cause_truncated()` becomes true. A reason is one pointer to a shared, reference-counted
// record: a region cancelling many tasks hands each the same record, so copying, comparing
// (`compare_strength` of two copies is a pointer comparison) and destroying a reason cost one
// atomic reference count operation, not a copy of its fields.
//
// When two requests meet, `strengthen` picks the stronger reason. It is deterministic,
// idempotent, commutative and associative in value, and monotone: the strength order
// (`compare_strength`) is total, and `strengthen` is its max.
//
// Thread-safety: immutable after construction; copies may be read and destroyed from any thread
// (the shared record is const and reference-counted atomically).

#ifndef ASUPERSYNC_CORE_CANCEL_REASON_H_
#define ASUPERSYNC_CORE_CANCEL_REASON_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

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

  CancelReason(const CancelReason& other);
  CancelReason& operator=(const CancelReason& other);
  CancelReason(CancelReason&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  CancelReason& operator=(CancelReason&& other) noexcept {
    std::swap(rep_, other.rep_);
    return *this;
  }
  ~CancelReason();

  CancelKind kind() const;
  int tier() const { return cancel_tier(kind()); }
  RegionId origin_region() const;
  std::optional<TaskId> origin_task() const;
  Time time() const;
  const std::string& message() const;

  // The reason that caused this one, or nullptr. Owned by this reason (and shared with its
  // copies); valid as long as this reason is.
  const CancelReason* cause() const;
  // The number of reasons in the cause chain (0 without a cause), at most kMaxCauseDepth.
  int cause_depth() const;
  // True if older causes were dropped from this reason's chain to respect kMaxCauseDepth.
  bool cause_truncated() const;

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

  // The shared record (defined below); immutable once a CancelReason points at it.
  struct Rep;

  void release();

  // Null for a default-constructed reason (every field at its default).
  Rep* rep_ = nullptr;
};

struct CancelReason::Rep {
  std::atomic<uint32_t> refs{1};
  CancelKind kind = CancelKind::kUser;
  bool cause_truncated = false;
  int cause_depth = 0;
  RegionId origin_region;
  std::optional<TaskId> origin_task;
  Time time;
  std::string message;
  CancelReason cause;  // rep_ == nullptr: no cause
};

inline CancelReason::CancelReason(const CancelReason& other) : rep_(other.rep_) {
  if (rep_ != nullptr) rep_->refs.fetch_add(1, std::memory_order_relaxed);
}
inline CancelReason& CancelReason::operator=(const CancelReason& other) {
  CancelReason copy(other);
  std::swap(rep_, copy.rep_);
  return *this;
}
inline CancelReason::~CancelReason() {
  if (rep_ != nullptr) release();
}
inline CancelKind CancelReason::kind() const {
  return rep_ != nullptr ? rep_->kind : CancelKind::kUser;
}
inline RegionId CancelReason::origin_region() const {
  return rep_ != nullptr ? rep_->origin_region : RegionId();
}
inline std::optional<TaskId> CancelReason::origin_task() const {
  return rep_ != nullptr ? rep_->origin_task : std::nullopt;
}
inline Time CancelReason::time() const { return rep_ != nullptr ? rep_->time : Time(); }
inline const CancelReason* CancelReason::cause() const {
  return rep_ != nullptr && rep_->cause.rep_ != nullptr ? &rep_->cause : nullptr;
}
inline int CancelReason::cause_depth() const { return rep_ != nullptr ? rep_->cause_depth : 0; }
inline bool CancelReason::cause_truncated() const {
  return rep_ != nullptr && rep_->cause_truncated;
}

// The strength order behind `strengthen`: > 0 if `a` is stronger than `b`, < 0 if weaker, 0 iff
// a == b. Stronger means: higher tier; then earlier time; then lexicographically smaller
// message; then (arbitrary but fixed, so the order is total) smaller kind, smaller origin
// region, absent-then-smaller origin task, absent-then-stronger cause, untruncated first.
int compare_strength(const CancelReason& a, const CancelReason& b);

// SPEC 1.4: the stronger of `a` and `b` (`a` when they are equal).
CancelReason strengthen(const CancelReason& a, const CancelReason& b);

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_CANCEL_REASON_H_
