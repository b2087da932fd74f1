// Barrier: n tasks wait until all n have arrived (SPEC 8.3).
//
//   Barrier barrier(3);
//   absl::StatusOr<BarrierWaitResult> passed = co_await barrier.wait(cx);
//   if (passed.ok() && passed->is_leader) { ... one task per generation ... }
//
// The n-th arrival releases the n-1 waiting tasks and returns at once as the leader of that
// generation; the barrier then starts over (it is reusable, `generation` counts the trips).
// A Barrier(0) behaves like Barrier(1): every wait passes at once as leader.
//
// Thread-safety: thread-safe (an internal spin lock; wakers run after it is released).
// Lifetime: the Barrier must outlive its waiters; destroying it while tasks wait aborts,
// naming the invariant.
//
// Cancellation contract (SPEC 4.2, 8.3): wait() is a cancellation point (a deliverable cancel is
// checked first). A cancelled waiter is removed from the count (SPEC 8.3): it consumed nothing,
// leaves no waiter behind, and the barrier now needs one more arrival to trip. If the barrier
// had already tripped when the waiter's cancel became deliverable, the trip cannot be undone:
// the wait reports success (the cancel is delivered at the next cancellation point). A waiter
// destroyed while parked (SPEC 4.5) deregisters (and is removed from the count).

#ifndef ASUPERSYNC_SYNC_BARRIER_H_
#define ASUPERSYNC_SYNC_BARRIER_H_

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"

namespace asupersync {

struct BarrierWaitResult {
  // Exactly one task per generation: the one whose arrival tripped the barrier.
  bool is_leader = false;
  // The generation this wait belonged to (0 for the first trip).
  uint64_t generation = 0;
};

class Barrier {
 public:
  class WaitAwaiter;

  explicit Barrier(size_t n);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier();

  // co_await barrier.wait(cx) → absl::StatusOr<BarrierWaitResult>. Errors: Cancelled.
  [[nodiscard]] WaitAwaiter wait(Cx& cx);

  size_t parties() const { return parties_; }
  // Tasks waiting now for the current generation (for tests and diagnostics).
  size_t waiting() const;
  uint64_t generation() const;

  class [[nodiscard]] WaitAwaiter final : public sync_internal::Awaiter<WaitAwaiter> {
   public:
    WaitAwaiter(Cx& cx, Barrier* barrier) : Awaiter(cx, "barrier"), barrier_(barrier) {}
    ~WaitAwaiter() { abandon(); }
    absl::StatusOr<BarrierWaitResult> await_resume();

   private:
    friend class sync_internal::Awaiter<WaitAwaiter>;
    sync_internal::ObservedMutex& wait_mutex() { return barrier_->mu_; }
    absl::Status precheck() { return absl::OkStatus(); }
    sync_internal::WaitState try_complete_locked(sync_internal::WakeList& wakes);
    void enqueue_locked() { barrier_->waiters_.push_back(this); }
    void dequeue_locked(sync_internal::WakeList&) { barrier_->waiters_.remove(this); }
    // A trip cannot be undone: a tripped wait reports success even if a cancel raced in.
    bool pass_on_when_cancelled() const { return false; }
    void pass_on_locked(sync_internal::WakeList&) {}

    Barrier* barrier_;
    BarrierWaitResult result_;
  };

 private:
  const size_t parties_;
  mutable sync_internal::ObservedMutex mu_;
  uint64_t generation_ = 0;
  sync_internal::WaiterList<sync_internal::Waiter> waiters_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_BARRIER_H_
