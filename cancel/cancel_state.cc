#include "cancel/cancel_state.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace asupersync {

Budget cleanup_budget_for(CancelKind kind, const Budget& requested) {
  return meet(cleanup_budget(kind), requested);
}

absl::Status cancelled_status(const CancelReason& reason) {
  std::string text = "cancelled (";
  const absl::string_view kind = cancel_kind_name(reason.kind());
  text.append(kind.data(), kind.size());
  text += ")";
  if (!reason.message().empty()) {
    text += ": ";
    text += reason.message();
  }
  return absl::CancelledError(std::move(text));
}

bool CancelState::request(const CancelReason& reason, const Budget& cleanup_budget,
                          const absl::Status* formatted) {
  if (details_ == nullptr) {
    details_ = std::make_unique<Details>(
        Details{reason, cleanup_budget, formatted != nullptr ? *formatted : absl::OkStatus()});
    return true;
  }
  if (compare_strength(reason, details_->reason) > 0) {
    details_->reason = reason;
    details_->formatted = formatted != nullptr ? *formatted : absl::OkStatus();
  }
  details_->cleanup_budget = meet(details_->cleanup_budget, cleanup_budget);
  return false;
}

const absl::Status& CancelState::delivery_status() {
  if (details_->formatted.ok()) details_->formatted = cancelled_status(details_->reason);
  return details_->formatted;
}

const CancelReason& CancelState::reason() const {
  static const CancelReason* const kNone = new CancelReason();
  return details_ != nullptr ? details_->reason : *kNone;
}

const Budget& CancelState::cleanup_budget() const {
  static const Budget* const kInfinite = new Budget(Budget::Infinite());
  return details_ != nullptr ? details_->cleanup_budget : *kInfinite;
}

absl::Status CancelState::push_shield() {
  if (shield_depth_ >= kMaxShieldDepth) {
    return absl::FailedPreconditionError("cx.shield(): shields nest at most " +
                                         std::to_string(kMaxShieldDepth) +
                                         " deep; this one would exceed the limit");
  }
  ++shield_depth_;
  return absl::OkStatus();
}

void CancelState::pop_shield() {
  if (shield_depth_ <= 0) {
    std::fprintf(stderr,
                 "asupersync invariant violated: CancelState::pop_shield without a shield\n");
    std::abort();
  }
  --shield_depth_;
}

}  // namespace asupersync
