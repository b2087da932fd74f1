#include "sync/notify.h"
#include "sync/internal/observed_mutex.h"

namespace asupersync {
namespace {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

}  // namespace

Notify::~Notify() {
  Guard lock(mu_);
  if (!waiters_.empty()) internal::invariant_violated("Notify destroyed while tasks wait on it");
}

Notify::NotifiedAwaiter Notify::notified(Cx& cx) { return NotifiedAwaiter(cx, this); }

void Notify::notify_one_locked(WakeList& wakes) {
  if (sync_internal::Waiter* waiter = waiters_.pop_front()) {
    waiter->tag = kOne;
    waiter->grant_locked(wakes);
    return;
  }
  permit_ = true;
}

void Notify::notify_one() {
  WakeList wakes;
  Guard lock(mu_);
  notify_one_locked(wakes);
}

void Notify::notify_all() {
  WakeList wakes;
  Guard lock(mu_);
  while (sync_internal::Waiter* waiter = waiters_.pop_front()) {
    waiter->tag = kAll;
    waiter->grant_locked(wakes);
  }
}

size_t Notify::waiter_count() const {
  Guard lock(mu_);
  return waiters_.size();
}

bool Notify::has_permit() const {
  Guard lock(mu_);
  return permit_;
}

WaitState Notify::NotifiedAwaiter::try_complete_locked(WakeList&) {
  if (!notify_->permit_) return WaitState::kIdle;
  notify_->permit_ = false;
  tag = kOne;
  return WaitState::kGranted;
}

void Notify::NotifiedAwaiter::pass_on_locked(WakeList& wakes) {
  if (tag == kOne) notify_->notify_one_locked(wakes);
}

absl::Status Notify::NotifiedAwaiter::await_resume() {
  if (settle() != WaitState::kGranted) return status;
  return absl::OkStatus();
}

}  // namespace asupersync
