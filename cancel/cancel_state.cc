#include "cancel/cancel_state.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace asupersync {

Budget cleanup_budget_for(CancelKind kind, const Budget& requested) {
  return meet(cleanup_budget(kind), requested);
}

bool CancelState::request(const CancelReason& reason, const Budget& cleanup_budget) {
  if (!requested_) {
    requested_ = true;
    reason_ = reason;
    cleanup_budget_ = cleanup_budget;
    return true;
  }
  reason_ = strengthen(reason_, reason);
  cleanup_budget_ = meet(cleanup_budget_, cleanup_budget);
  return false;
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
