#include "sync/barrier.h"
#include "sync/internal/observed_mutex.h"

#include <algorithm>

namespace asupersync {
namespace {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

}  // namespace

Barrier::Barrier(size_t n) : parties_(std::max<size_t>(1, n)) {}

Barrier::~Barrier() {
  Guard lock(mu_);
  if (!waiters_.empty()) internal::invariant_violated("Barrier destroyed while tasks wait on it");
}

Barrier::WaitAwaiter Barrier::wait(Cx& cx) { return WaitAwaiter(cx, this); }

size_t Barrier::waiting() const {
  Guard lock(mu_);
  return waiters_.size();
}

uint64_t Barrier::generation() const {
  Guard lock(mu_);
  return generation_;
}

WaitState Barrier::WaitAwaiter::try_complete_locked(WakeList& wakes) {
  if (barrier_->waiters_.size() + 1 < barrier_->parties_) {
    result_.generation = barrier_->generation_;
    return WaitState::kIdle;
  }
  // This arrival trips the barrier: release the others, lead this generation.
  while (sync_internal::Waiter* waiter = barrier_->waiters_.pop_front()) {
    waiter->grant_locked(wakes);
  }
  result_ = BarrierWaitResult{true, barrier_->generation_};
  ++barrier_->generation_;
  return WaitState::kGranted;
}

absl::StatusOr<BarrierWaitResult> Barrier::WaitAwaiter::await_resume() {
  if (settle() != WaitState::kGranted) return status;
  return result_;
}

}  // namespace asupersync
