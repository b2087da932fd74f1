// CancelState: the per-task record of the cancellation protocol (SPEC 4).
//
// A task's cancellation goes request → drain → finalize. CancelState holds the part of that
// protocol that belongs to one task: whether a request arrived, its (strengthened) reason, the
// cleanup budget the task drains under, whether the task has acknowledged the request at a
// cancellation point, and the shield depth that defers delivery. Propagation down the region
// tree, waking suspended tasks and escalation live in //core, which owns one CancelState per
// task.
//
// Thread-safety: not synchronised; the owner (the task's runtime record) serialises access.
// Lifetime: a plain value owned by the task record.
//
// Cancellation contract: requests are idempotent and monotone (SPEC 4.1): the reason only
// ever strengthens (SPEC 1.4) and the cleanup budget only ever tightens (SPEC 1.5). A request is
// deliverable when no shield is active (SPEC 4.4); shields nest to kMaxShieldDepth.

#ifndef ASUPERSYNC_CANCEL_CANCEL_STATE_H_
#define ASUPERSYNC_CANCEL_CANCEL_STATE_H_

#include <atomic>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "core/budget.h"
#include "core/cancel_reason.h"

namespace asupersync {

// Nesting limit of cx.shield() (SPEC 4.4).
inline constexpr int kMaxShieldDepth = 64;

// What the runtime does when a cancelled task's cleanup budget runs out (SPEC 4.5).
enum class EscalationPolicy : uint8_t {
  // Stop resuming the coroutine and destroy its frame so destructors run; the outcome is
  // Cancelled with budget_exhausted set.
  kDestroy,
  // Keep waiting for the task and report the stall through the runtime's diagnostics.
  kWait,
};

// The cleanup budget for a request: the kind's default met with what the caller supplied
// (SPEC 1.5).
Budget cleanup_budget_for(CancelKind kind, const Budget& requested);

// The kCancelled status a cancellation point returns for `reason`: its kind and message (the
// full reason, with origin, time and cause chain, stays available from the context).
absl::Status cancelled_status(const CancelReason& reason);

// A recorded request: reason, cleanup budget and cancelled_status(reason), immutable and
// reference-counted. A region that cancels many tasks with one reason makes one and hands it to
// each task, so a task's request costs a reference count, not an allocation and three copies.
// Thread-safety: immutable; copies may be used and destroyed from any thread. Move and copy
// are cheap (one pointer).
class SharedCancelRequest {
 public:
  SharedCancelRequest() = default;
  // `status` is cancelled_status(reason) when the caller already has it; when it is OK it is
  // formatted here.
  SharedCancelRequest(const CancelReason& reason, const Budget& cleanup_budget,
                      absl::Status status = absl::OkStatus());
  SharedCancelRequest(const SharedCancelRequest& other) : rep_(other.rep_) {
    if (rep_ != nullptr) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  SharedCancelRequest& operator=(const SharedCancelRequest& other) {
    SharedCancelRequest copy(other);
    std::swap(rep_, copy.rep_);
    return *this;
  }
  SharedCancelRequest(SharedCancelRequest&& other) noexcept
      : rep_(std::exchange(other.rep_, nullptr)) {}
  SharedCancelRequest& operator=(SharedCancelRequest&& other) noexcept {
    std::swap(rep_, other.rep_);
    return *this;
  }
  ~SharedCancelRequest() {
    if (rep_ != nullptr) release();
  }

  explicit operator bool() const { return rep_ != nullptr; }
  // Require a request (operator bool).
  const CancelReason& reason() const { return rep_->reason; }
  const Budget& cleanup_budget() const { return rep_->cleanup_budget; }
  const absl::Status& status() const { return rep_->status; }

 private:
  struct Rep {
    std::atomic<uint32_t> refs{1};
    CancelReason reason;
    Budget cleanup_budget;
    absl::Status status;
  };
  void release();
  Rep* rep_ = nullptr;
};

class CancelState {
 public:
  CancelState() = default;

  // Records a request. Returns true if this is the first request. A repeated request
  // strengthens the reason and tightens the cleanup budget; it never loosens either.
  bool request(const CancelReason& reason, const Budget& cleanup_budget);
  // The same with a request made once for many tasks: the first request of a task keeps a
  // reference to `shared` (no copy).
  bool request(const SharedCancelRequest& shared);

  // cancelled_status(reason()). Requires requested().
  const absl::Status& delivery_status() const { return request_.status(); }

  bool requested() const { return static_cast<bool>(request_); }
  // The request; a default reason and an infinite budget when none was made.
  const CancelReason& reason() const;
  const Budget& cleanup_budget() const;

  // True when a request is pending and no shield defers it (SPEC 4.4).
  bool deliverable() const { return requested() && shield_depth_ == 0; }

  // The task observed the request at a cancellation point (SPEC 4.2, 4.3). Idempotent.
  void acknowledge() { acknowledged_ = true; }
  bool acknowledged() const { return acknowledged_; }

  // Shield nesting. push_shield fails with FailedPrecondition beyond kMaxShieldDepth and
  // leaves the depth unchanged.
  absl::Status push_shield();
  void pop_shield();
  int shield_depth() const { return shield_depth_; }

 private:
  // Set by the first request (a task that is never cancelled, the common case, carries one
  // null pointer); replaced, never mutated, when a later request strengthens or tightens it.
  SharedCancelRequest request_;
  bool acknowledged_ = false;
  int shield_depth_ = 0;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_CANCEL_CANCEL_STATE_H_
