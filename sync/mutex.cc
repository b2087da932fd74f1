#include "sync/mutex.h"

#include <exception>
#include <utility>

#include "sync/internal/observed_mutex.h"
#include "sync/status.h"

namespace asupersync {
namespace {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

absl::Status poisoned() {
  return poisoned_error(
      "Mutex: a holder panicked or was destroyed inside its critical section; call "
      "clear_poison() once the protected state is repaired");
}

}  // namespace

MutexGuard::MutexGuard(Mutex* mutex, internal::TaskRecord* holder)
    : mutex_(mutex), holder_(holder), uncaught_at_lock_(std::uncaught_exceptions()) {
  if (holder_ != nullptr) holder_->add_ref();
}

MutexGuard::MutexGuard(MutexGuard&& other) noexcept
    : mutex_(std::exchange(other.mutex_, nullptr)),
      holder_(std::exchange(other.holder_, nullptr)),
      uncaught_at_lock_(other.uncaught_at_lock_) {}

MutexGuard& MutexGuard::operator=(MutexGuard&& other) noexcept {
  if (this != &other) {
    release(true);
    mutex_ = std::exchange(other.mutex_, nullptr);
    holder_ = std::exchange(other.holder_, nullptr);
    uncaught_at_lock_ = other.uncaught_at_lock_;
  }
  return *this;
}

MutexGuard::~MutexGuard() { release(true); }

void MutexGuard::unlock() { release(false); }

void MutexGuard::release(bool allow_poison) {
  Mutex* mutex = std::exchange(mutex_, nullptr);
  internal::TaskRecord* holder = std::exchange(holder_, nullptr);
  if (mutex != nullptr) {
    const bool unwinding = std::uncaught_exceptions() > uncaught_at_lock_;
    const bool escalated =
        holder != nullptr && holder->budget_exhausted.load(std::memory_order_relaxed);
    mutex->unlock(allow_poison && (unwinding || escalated));
  }
  if (holder != nullptr) holder->release();
}

Mutex::~Mutex() {
  Guard lock(mu_);
  if (!waiters_.empty()) internal::invariant_violated("Mutex destroyed while tasks wait on it");
  if (locked_) internal::invariant_violated("Mutex destroyed while locked (a guard is alive)");
}

Mutex::LockAwaiter Mutex::lock(Cx& cx) { return LockAwaiter(cx, this); }

absl::StatusOr<MutexGuard> Mutex::try_lock() {
  Guard lock(mu_);
  if (poisoned_) return poisoned();
  if (locked_ || !waiters_.empty()) return absl::UnavailableError("Mutex: locked");
  locked_ = true;
  return MutexGuard(this, nullptr);
}

bool Mutex::is_locked() const {
  Guard lock(mu_);
  return locked_;
}

bool Mutex::is_poisoned() const {
  Guard lock(mu_);
  return poisoned_;
}

void Mutex::clear_poison() {
  Guard lock(mu_);
  poisoned_ = false;
}

size_t Mutex::waiter_count() const {
  Guard lock(mu_);
  return waiters_.size();
}

void Mutex::unlock_locked(bool poison, WakeList& wakes) {
  if (poison) {
    poisoned_ = true;
    locked_ = false;
    while (sync_internal::Waiter* waiter = waiters_.pop_front()) {
      waiter->refuse_locked(poisoned(), wakes);
    }
    return;
  }
  if (sync_internal::Waiter* next = waiters_.pop_front()) {
    next->grant_locked(wakes);  // handoff: stays locked, now owned by `next`
    return;
  }
  locked_ = false;
}

void Mutex::unlock(bool poison) {
  WakeList wakes;
  Guard lock(mu_);
  unlock_locked(poison, wakes);
}

WaitState Mutex::LockAwaiter::try_complete_locked(WakeList&) {
  if (mutex_->poisoned_) {
    status = poisoned();
    return WaitState::kRefused;
  }
  if (mutex_->locked_ || !mutex_->waiters_.empty()) return WaitState::kIdle;
  mutex_->locked_ = true;
  return WaitState::kGranted;
}

absl::StatusOr<MutexGuard> Mutex::LockAwaiter::await_resume() {
  if (settle() != WaitState::kGranted) return status;
  return MutexGuard(mutex_, &cx().task_record());
}

}  // namespace asupersync
