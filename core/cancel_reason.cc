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
                           std::optional<TaskId> origin_task, Time time, std::string message)
    : kind_(kind),
      origin_region_(origin_region),
      origin_task_(origin_task),
      time_(time),
      message_(message.empty() ? nullptr
                               : std::make_shared<const std::string>(std::move(message))) {
  CheckValidKind(kind);
}

CancelReason CancelReason::caused_by(CancelKind kind, RegionId origin_region,
                                     std::optional<TaskId> origin_task, Time time,
                                     std::string message) const {
  CancelReason out(kind, origin_region, origin_task, time, std::move(message));
  if (cause_depth_ < kMaxCauseDepth) {
    out.cause_ = std::make_shared<const CancelReason>(*this);
    out.cause_depth_ = cause_depth_ + 1;
    out.cause_truncated_ = cause_truncated_;
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
  std::shared_ptr<const CancelReason> chain;
  for (int i = kMaxCauseDepth - 1; i >= 0; --i) {
    auto copy = std::make_shared<CancelReason>(*kept[i]);
    copy->cause_ = std::move(chain);
    copy->cause_depth_ = kMaxCauseDepth - 1 - i;
    copy->cause_truncated_ = true;
    chain = std::move(copy);
  }
  out.cause_ = std::move(chain);
  out.cause_depth_ = kMaxCauseDepth;
  out.cause_truncated_ = true;
  return out;
}

const std::string& CancelReason::message() const {
  static const std::string* const kEmpty = new std::string();
  return message_ != nullptr ? *message_ : *kEmpty;
}

std::string CancelReason::to_string() const {
  std::string out;
  for (const CancelReason* r = this; r != nullptr; r = r->cause()) {
    if (r != this) out += " <- ";
    absl::StrAppend(&out, cancel_kind_name(r->kind_), " at ", r->time_.to_string(), " from region ",
                    r->origin_region_.to_string());
    if (r->origin_task_.has_value()) absl::StrAppend(&out, " task ", r->origin_task_->to_string());
    if (!r->message().empty()) absl::StrAppend(&out, ": '", r->message(), "'");
    if (r->cause() == nullptr && r->cause_truncated_) out += " <- ...";
  }
  return out;
}

bool operator==(const CancelReason& a, const CancelReason& b) {
  if (a.kind_ != b.kind_ || a.origin_region_ != b.origin_region_ ||
      a.origin_task_ != b.origin_task_ || a.time_ != b.time_ || a.message() != b.message() ||
      a.cause_depth_ != b.cause_depth_ || a.cause_truncated_ != b.cause_truncated_) {
    return false;
  }
  if (a.cause_ == b.cause_) return true;  // Same shared link, or both absent.
  return *a.cause_ == *b.cause_;          // Both present: equal depths imply both are non-null.
}

int compare_strength(const CancelReason& a, const CancelReason& b) {
  if (&a == &b) return 0;
  if (int c = Compare(a.tier(), b.tier()); c != 0) return c;        // Higher tier is stronger.
  if (int c = Compare(b.time_, a.time_); c != 0) return c;          // Earlier time is stronger.
  if (int c = Compare(b.message(), a.message()); c != 0) return c;  // Smaller message is stronger.
  // Tie-breakers that make the order total (and `strengthen` commutative in value).
  if (int c = Compare(b.kind_, a.kind_); c != 0) return c;
  if (int c = Compare(b.origin_region_, a.origin_region_); c != 0) return c;
  if (int c = Compare(b.origin_task_, a.origin_task_); c != 0) return c;  // nullopt < any.
  if (a.cause_ != b.cause_) {
    if (a.cause_ == nullptr) return 1;  // No cause is stronger than some cause.
    if (b.cause_ == nullptr) return -1;
    if (int c = compare_strength(*a.cause_, *b.cause_); c != 0) return c;
  }
  return Compare(b.cause_truncated_, a.cause_truncated_);  // Untruncated is stronger.
}

CancelReason strengthen(const CancelReason& a, const CancelReason& b) {
  return compare_strength(a, b) >= 0 ? a : b;
}

}  // namespace asupersync
