// Copyright The Asupersync Authors.

#include "core/cancel_reason.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace asupersync {
namespace {

[[noreturn]] void InvariantViolated(const char* invariant, int value) {
  std::fprintf(stderr, "asupersync: invariant violated: %s (got %d)\n", invariant, value);
  std::fflush(stderr);
  std::abort();
}

bool IsValidKind(CancelKind kind) {
  return static_cast<uint8_t>(kind) <= static_cast<uint8_t>(CancelKind::kShutdown);
}

void CheckValidKind(CancelKind kind) {
  if (!IsValidKind(kind)) {
    InvariantViolated("a CancelKind must be one of the enumerators", static_cast<int>(kind));
  }
}

// Three-way comparison of two ordered values as an int (<0, 0, >0).
template <typename T>
int Compare(const T& a, const T& b) {
  if (a < b) return -1;
  if (b < a) return 1;
  return 0;
}

}  // namespace

int cancel_tier(CancelKind kind) {
  switch (kind) {
    case CancelKind::kUser:
      return 0;
    case CancelKind::kTimeout:
    case CancelKind::kDeadline:
      return 1;
    case CancelKind::kPollQuota:
    case CancelKind::kCostBudget:
      return 2;
    case CancelKind::kFailFast:
    case CancelKind::kRaceLost:
    case CancelKind::kLinkedExit:
      return 3;
    case CancelKind::kParentCancelled:
    case CancelKind::kResourceUnavailable:
      return 4;
    case CancelKind::kShutdown:
      return 5;
  }
  InvariantViolated("cancel_tier: a CancelKind must be one of the enumerators",
                    static_cast<int>(kind));
}

absl::string_view cancel_kind_name(CancelKind kind) {
  switch (kind) {
    case CancelKind::kUser:
      return "User";
    case CancelKind::kTimeout:
      return "Timeout";
    case CancelKind::kDeadline:
      return "Deadline";
    case CancelKind::kPollQuota:
      return "PollQuota";
    case CancelKind::kCostBudget:
      return "CostBudget";
    case CancelKind::kFailFast:
      return "FailFast";
    case CancelKind::kRaceLost:
      return "RaceLost";
    case CancelKind::kLinkedExit:
      return "LinkedExit";
    case CancelKind::kParentCancelled:
      return "ParentCancelled";
    case CancelKind::kResourceUnavailable:
      return "ResourceUnavailable";
    case CancelKind::kShutdown:
      return "Shutdown";
  }
  return "InvalidCancelKind";
}

Budget cleanup_budget(CancelKind kind) {
  uint32_t polls = 0;
  uint8_t priority = 0;
  switch (kind) {
    case CancelKind::kUser:
      polls = 1000;
      priority = 200;
      break;
    case CancelKind::kTimeout:
    case CancelKind::kDeadline:
      polls = 500;
      priority = 210;
      break;
    case CancelKind::kPollQuota:
    case CancelKind::kCostBudget:
      polls = 300;
      priority = 215;
      break;
    case CancelKind::kFailFast:
    case CancelKind::kRaceLost:
    case CancelKind::kLinkedExit:
    case CancelKind::kParentCancelled:
    case CancelKind::kResourceUnavailable:
      polls = 200;
      priority = 220;
      break;
    case CancelKind::kShutdown:
      polls = 50;
      priority = 255;
      break;
    default:
      InvariantViolated("cleanup_budget: a CancelKind must be one of the enumerators",
                        static_cast<int>(kind));
  }
  return Budget::Infinite().with_poll_quota(polls).with_priority(priority);
}

CancelReason::CancelReason(CancelKind kind, RegionId origin_region,
                           std::optional<TaskId> origin_task, Time time, std::string message) {
  CheckValidKind(kind);
  rep_ = new Rep;
  rep_->kind = kind;
  rep_->origin_region = origin_region;
  rep_->origin_task = origin_task;
  rep_->time = time;
  rep_->message = std::move(message);
}

void CancelReason::release() {
  if (rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete rep_;
}

CancelReason CancelReason::caused_by(CancelKind kind, RegionId origin_region,
                                     std::optional<TaskId> origin_task, Time time,
                                     std::string message) const {
  CancelReason out(kind, origin_region, origin_task, time, std::move(message));
  const int depth = cause_depth();
  if (depth < kMaxCauseDepth) {
    out.rep_->cause = *this;
    out.rep_->cause_depth = depth + 1;
    out.rep_->cause_truncated = cause_truncated();
    return out;
  }
  // The chain would be kMaxCauseDepth + 1 long: keep *this and its kMaxCauseDepth - 1 newest
  // causes, dropping the oldest. Reasons are immutable, so the kept links are copied and
  // relinked, each marked truncated.
  std::array<const CancelReason*, kMaxCauseDepth> kept{};
  const CancelReason* link = this;
  for (int i = 0; i < kMaxCauseDepth; ++i) {
    kept[i] = link;
    link = link->cause();
  }
  CancelReason chain;
  for (int i = kMaxCauseDepth - 1; i >= 0; --i) {
    CancelReason copy(kept[i]->kind(), kept[i]->origin_region(), kept[i]->origin_task(),
                      kept[i]->time(), kept[i]->message());
    copy.rep_->cause = std::move(chain);
    copy.rep_->cause_depth = kMaxCauseDepth - 1 - i;
    copy.rep_->cause_truncated = true;
    chain = std::move(copy);
  }
  out.rep_->cause = std::move(chain);
  out.rep_->cause_depth = kMaxCauseDepth;
  out.rep_->cause_truncated = true;
  return out;
}

const std::string& CancelReason::message() const {
  static const std::string* const kEmpty = new std::string();
  return rep_ != nullptr ? rep_->message : *kEmpty;
}

std::string CancelReason::to_string() const {
  std::string out;
  for (const CancelReason* r = this; r != nullptr; r = r->cause()) {
    if (r != this) out += " <- ";
    absl::StrAppend(&out, cancel_kind_name(r->kind()), " at ", r->time().to_string(),
                    " from region ", r->origin_region().to_string());
    const std::optional<TaskId> task = r->origin_task();
    if (task.has_value()) absl::StrAppend(&out, " task ", task->to_string());
    if (!r->message().empty()) absl::StrAppend(&out, ": '", r->message(), "'");
    if (r->cause() == nullptr && r->cause_truncated()) out += " <- ...";
  }
  return out;
}

bool operator==(const CancelReason& a, const CancelReason& b) {
  if (a.rep_ == b.rep_) return true;  // Copies of one reason (or both default).
  if (a.kind() != b.kind() || a.origin_region() != b.origin_region() ||
      a.origin_task() != b.origin_task() || a.time() != b.time() || a.message() != b.message() ||
      a.cause_depth() != b.cause_depth() || a.cause_truncated() != b.cause_truncated()) {
    return false;
  }
  const CancelReason* a_cause = a.cause();
  const CancelReason* b_cause = b.cause();
  if (a_cause == nullptr || b_cause == nullptr) return a_cause == b_cause;
  return *a_cause == *b_cause;
}

int compare_strength(const CancelReason& a, const CancelReason& b) {
  // Copies of one reason (a region's request shared by its tasks) are equal: no field reads.
  if (a.rep_ == b.rep_) return 0;
  if (int c = Compare(a.tier(), b.tier()); c != 0) return c;        // Higher tier is stronger.
  if (int c = Compare(b.time(), a.time()); c != 0) return c;        // Earlier time is stronger.
  if (int c = Compare(b.message(), a.message()); c != 0) return c;  // Smaller message is stronger.
  // Tie-breakers that make the order total (and `strengthen` commutative in value).
  if (int c = Compare(b.kind(), a.kind()); c != 0) return c;
  if (int c = Compare(b.origin_region(), a.origin_region()); c != 0) return c;
  if (int c = Compare(b.origin_task(), a.origin_task()); c != 0) return c;  // nullopt < any.
  const CancelReason* a_cause = a.cause();
  const CancelReason* b_cause = b.cause();
  if (a_cause != b_cause) {
    if (a_cause == nullptr) return 1;  // No cause is stronger than some cause.
    if (b_cause == nullptr) return -1;
    if (int c = compare_strength(*a_cause, *b_cause); c != 0) return c;
  }
  return Compare(b.cause_truncated(), a.cause_truncated());  // Untruncated is stronger.
}

CancelReason strengthen(const CancelReason& a, const CancelReason& b) {
  return compare_strength(a, b) >= 0 ? a : b;
}

}  // namespace asupersync
