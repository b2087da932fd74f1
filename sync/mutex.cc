#include "sync/mutex.h"

#include <cxxabi.h>

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

// std::uncaught_exceptions(), cheaply. libstdc++ answers it through __cxa_get_globals(), a
// general-dynamic TLS lookup inside the shared library (about 26 instructions; a guard asks
// twice per lock/unlock, ~15 % of an uncontended one). The per-thread exception globals are
// laid out by the Itanium C++ ABI (2.2.2: the caught-exception stack, then the uncaught
// count) and live as long as their thread, so their address is kept in a thread_local of our
// own (one fs-relative load here).
struct ExceptionGlobals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};
thread_local const ExceptionGlobals* t_exception_globals = nullptr;

int uncaught_exceptions_now() {
  const ExceptionGlobals* globals = t_exception_globals;
  if (globals == nullptr) [[unlikely]] {
    globals = reinterpret_cast<const ExceptionGlobals*>(abi::__cxa_get_globals());
    t_exception_globals = globals;
  }
  return static_cast<int>(globals->uncaught_exceptions);
}

}  // namespace

MutexGuard::MutexGuard(Key, Mutex* mutex, internal::TaskRecord* holder)
    : mutex_(mutex), holder_(holder), uncaught_at_lock_(uncaught_exceptions_now()) {}

MutexGuard::MutexGuard(MutexGuard&& other) noexcept
    : mutex_(std::exchange(other.mutex_, nullptr)),
      holder_(std::exchange(other.holder_, nullptr)),
      holder_owned_(std::exchange(other.holder_owned_, false)),
      uncaught_at_lock_(other.uncaught_at_lock_) {
  // A moved guard may outlive the task that locked (it can be handed to another task).
  if (holder_ != nullptr && !holder_owned_) {
    holder_->add_ref();
    holder_owned_ = true;
  }
}

MutexGuard& MutexGuard::operator=(MutexGuard&& other) noexcept {
  if (this != &other) {
    release(true);
    mutex_ = std::exchange(other.mutex_, nullptr);
    holder_ = std::exchange(other.holder_, nullptr);
    holder_owned_ = std::exchange(other.holder_owned_, false);
    uncaught_at_lock_ = other.uncaught_at_lock_;
    if (holder_ != nullptr && !holder_owned_) {
      holder_->add_ref();
      holder_owned_ = true;
    }
  }
  return *this;
}

MutexGuard::~MutexGuard() { release(true); }

void MutexGuard::unlock() { release(false); }

void MutexGuard::release(bool allow_poison) {
  Mutex* mutex = std::exchange(mutex_, nullptr);
  internal::TaskRecord* holder = std::exchange(holder_, nullptr);
  const bool owned = std::exchange(holder_owned_, false);
  if (mutex != nullptr) {
    const bool unwinding = uncaught_exceptions_now() > uncaught_at_lock_;
    const bool escalated =
        holder != nullptr && holder->budget_exhausted.load(std::memory_order_relaxed);
    mutex->unlock(allow_poison && (unwinding || escalated));
  }
  if (owned) holder->release();
}

Mutex::~Mutex() {
  Guard lock(mu_);
  if (!waiters_.empty()) internal::invariant_violated("Mutex destroyed while tasks wait on it");
  if ((state_.load(std::memory_order_acquire) & kLocked) != 0) {
    internal::invariant_violated("Mutex destroyed while locked (a guard is alive)");
  }
}

Mutex::LockAwaiter Mutex::lock(Cx& cx) { return LockAwaiter(cx, this); }

absl::StatusOr<MutexGuard> Mutex::try_lock() {
  if (try_lock_fast())
    return absl::StatusOr<MutexGuard>(absl::in_place, guard_key(), this, nullptr);
  // Held, waited for, or poisoned (kWaiters also fails the fast lock: try_lock never barges).
  if ((state_.load(std::memory_order_acquire) & kPoisoned) != 0) return poisoned();
  return absl::UnavailableError("Mutex: locked");
}

bool Mutex::is_locked() const {
  internal::observe_object_access(&mu_);
  return (state_.load(std::memory_order_acquire) & kLocked) != 0;
}

bool Mutex::is_poisoned() const {
  internal::observe_object_access(&mu_);
  return (state_.load(std::memory_order_acquire) & kPoisoned) != 0;
}

void Mutex::clear_poison() {
  Guard lock(mu_);
  state_.fetch_and(~kPoisoned, std::memory_order_acq_rel);
}

size_t Mutex::waiter_count() const {
  Guard lock(mu_);
  return waiters_.size();
}

// Called by the holder (or for a handed-over lock nobody took), so kLocked is set and nothing
// but this code, under mu_, changes state_ now.
void Mutex::unlock_locked(bool poison, WakeList& wakes) {
  if (poison) {
    state_.store(kPoisoned, std::memory_order_release);
    while (sync_internal::Waiter* waiter = waiters_.pop_front()) {
      waiter->refuse_locked(poisoned(), wakes);
    }
    return;
  }
  if (sync_internal::Waiter* next = waiters_.pop_front()) {
    // Handoff: stays locked, now owned by `next`.
    if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_acq_rel);
    next->grant_locked(wakes);
    return;
  }
  state_.fetch_and(~(kLocked | kWaiters), std::memory_order_release);
}

void Mutex::unlock(bool poison) {
  if (!poison) {
    internal::observe_object_access(&mu_);  // the lab sees the fast unlock too
    uint32_t expected = kLocked;            // held, nobody waits
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                       std::memory_order_relaxed)) {
      return;
    }
  }
  WakeList wakes;
  Guard lock(mu_);
  unlock_locked(poison, wakes);
}

WaitState Mutex::LockAwaiter::try_complete_locked(WakeList&) {
  uint32_t state = mutex_->state_.load(std::memory_order_acquire);
  while (true) {
    if ((state & kPoisoned) != 0) {
      status = poisoned();
      return WaitState::kRefused;
    }
    if ((state & kLocked) == 0 && mutex_->waiters_.empty()) {
      if (mutex_->state_.compare_exchange_weak(state, state | kLocked, std::memory_order_acquire,
                                               std::memory_order_acquire)) {
        return WaitState::kGranted;
      }
      continue;
    }
    // About to park: mark the word first, so that the holder's unlock cannot take the fast
    // path and miss the waiter queued in this same critical section (or the next one).
    if ((state & kWaiters) != 0) return WaitState::kIdle;
    if (mutex_->state_.compare_exchange_weak(state, state | kWaiters, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
      return WaitState::kIdle;
    }
  }
}

void Mutex::LockAwaiter::dequeue_locked(WakeList&) {
  mutex_->waiters_.remove(this);
  // Nobody left to hand over to: let the fast paths apply again. (A waiter between its two
  // locked steps sets the bit again before it queues.)
  if (mutex_->waiters_.empty()) mutex_->state_.fetch_and(~kWaiters, std::memory_order_acq_rel);
}

absl::StatusOr<MutexGuard> Mutex::LockAwaiter::await_resume() {
  if (settle() != WaitState::kGranted) return status;
  // Made in place: a move would take a task reference (see MutexGuard::holder_).
  return absl::StatusOr<MutexGuard>(absl::in_place, Mutex::guard_key(), mutex_,
                                    &cx().task_record());
}

}  // namespace asupersync
