#include "cancel/cancel_state.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace asupersync {

Budget cleanup_budget_for(CancelKind kind, const Budget& requested) {
  return meet(cleanup_budget(kind), requested);
}

absl::Status cancelled_status(const CancelReason& reason) {
  // "cancelled (KIND)" or "cancelled (KIND): MESSAGE". The status copies its text, so a short
  // one is assembled on the stack: one allocation (the status) instead of a growing string's.
  constexpr absl::string_view kPrefix = "cancelled (";
  const absl::string_view kind = cancel_kind_name(reason.kind());
  const absl::string_view message = reason.message();
  const size_t size = kPrefix.size() + kind.size() + 1 + (message.empty() ? 0 : 2 + message.size());
  char stack_buffer[160];
  std::string heap_buffer;
  char* text = stack_buffer;
  if (size > sizeof stack_buffer) {
    heap_buffer.resize(size);
    text = heap_buffer.data();
  }
  char* out = text;
  auto append = [&out](absl::string_view piece) {
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
  };
  append(kPrefix);
  append(kind);
  append(")");
  if (!message.empty()) {
    append(": ");
    append(message);
  }
  return absl::CancelledError(absl::string_view(text, size));
}

SharedCancelRequest::SharedCancelRequest(const CancelReason& reason, const Budget& cleanup_budget,
                                         absl::Status status)
    : rep_(new Rep) {
  rep_->reason = reason;
  rep_->cleanup_budget = cleanup_budget;
  rep_->status = status.ok() ? cancelled_status(reason) : std::move(status);
}

void SharedCancelRequest::release() {
  if (rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete rep_;
}

bool CancelState::request(const CancelReason& reason, const Budget& cleanup_budget) {
  if (!request_) {
    request_ = SharedCancelRequest(reason, cleanup_budget);
    return true;
  }
  const bool stronger = compare_strength(reason, request_.reason()) > 0;
  const Budget tightened = meet(request_.cleanup_budget(), cleanup_budget);
  if (!stronger && tightened == request_.cleanup_budget()) return false;
  request_ = stronger ? SharedCancelRequest(reason, tightened)
                      : SharedCancelRequest(request_.reason(), tightened, request_.status());
  return false;
}

bool CancelState::request(const SharedCancelRequest& shared) {
  if (!request_) {
    request_ = shared;
    return true;
  }
  const bool stronger = compare_strength(shared.reason(), request_.reason()) > 0;
  const Budget tightened = meet(request_.cleanup_budget(), shared.cleanup_budget());
  if (!stronger) {
    if (tightened != request_.cleanup_budget()) {
      request_ = SharedCancelRequest(request_.reason(), tightened, request_.status());
    }
  } else if (tightened == shared.cleanup_budget()) {
    request_ = shared;
  } else {
    request_ = SharedCancelRequest(shared.reason(), tightened, shared.status());
  }
  return false;
}

const CancelReason& CancelState::reason() const {
  static const CancelReason* const kNone = new CancelReason();
  return request_ ? request_.reason() : *kNone;
}

const Budget& CancelState::cleanup_budget() const {
  static const Budget* const kInfinite = new Budget(Budget::Infinite());
  return request_ ? request_.cleanup_budget() : *kInfinite;
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
