#include "sync/rw_lock.h"
#include "sync/internal/observed_mutex.h"

#include <algorithm>
#include <utility>

namespace asupersync {
namespace {

using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

}  // namespace

ReadGuard& ReadGuard::operator=(ReadGuard&& other) noexcept {
  if (this != &other) {
    unlock();
    lock_ = std::exchange(other.lock_, nullptr);
  }
  return *this;
}

void ReadGuard::unlock() {
  if (lock_ != nullptr) std::exchange(lock_, nullptr)->leave(false);
}

WriteGuard& WriteGuard::operator=(WriteGuard&& other) noexcept {
  if (this != &other) {
    unlock();
    lock_ = std::exchange(other.lock_, nullptr);
  }
  return *this;
}

void WriteGuard::unlock() {
  if (lock_ != nullptr) std::exchange(lock_, nullptr)->leave(true);
}

RwLock::RwLock(RwLockOptions options)
    : max_consecutive_writers_(std::max<uint32_t>(1, options.max_consecutive_writers)) {}

RwLock::~RwLock() {
  Guard lock(mu_);
  if (!readers_.empty() || !writers_.empty()) {
    internal::invariant_violated("RwLock destroyed while tasks wait on it");
  }
  if (writer_active_ || readers_active_ != 0) {
    internal::invariant_violated("RwLock destroyed while held (a guard is alive)");
  }
}

RwLock::LockAwaiter<false> RwLock::read(Cx& cx) { return LockAwaiter<false>(cx, this); }
RwLock::LockAwaiter<true> RwLock::write(Cx& cx) { return LockAwaiter<true>(cx, this); }

absl::StatusOr<ReadGuard> RwLock::try_read() {
  Guard lock(mu_);
  if (!can_enter_now_locked(false)) return absl::UnavailableError("RwLock: not readable now");
  enter_locked(false);
  return ReadGuard(this);
}

absl::StatusOr<WriteGuard> RwLock::try_write() {
  Guard lock(mu_);
  if (!can_enter_now_locked(true)) return absl::UnavailableError("RwLock: not writable now");
  enter_locked(true);
  return WriteGuard(this);
}

RwLock::Stats RwLock::stats() const {
  Guard lock(mu_);
  return Stats{readers_active_, writer_active_, readers_.size(), writers_.size()};
}

bool RwLock::can_enter_now_locked(bool write) const {
  // Nobody overtakes a waiter (after every change dispatch_locked granted whatever it could).
  if (writer_active_ || !writers_.empty() || !readers_.empty()) return false;
  return !write || readers_active_ == 0;
}

void RwLock::enter_locked(bool write) {
  if (write) {
    writer_active_ = true;
  } else {
    ++readers_active_;
  }
}

void RwLock::leave_locked(bool write, WakeList& wakes) {
  if (write) {
    writer_active_ = false;
  } else {
    --readers_active_;
  }
  dispatch_locked(wakes);
}

void RwLock::leave(bool write) {
  WakeList wakes;
  Guard lock(mu_);
  leave_locked(write, wakes);
}

void RwLock::admit_waiting_readers_locked(WakeList& wakes) {
  while (sync_internal::Waiter* reader = readers_.pop_front()) {
    ++readers_active_;
    reader->grant_locked(wakes);
  }
  writer_streak_ = 0;
}

void RwLock::dispatch_locked(WakeList& wakes) {
  if (writer_active_) return;
  if (readers_active_ > 0) {
    // Readers hold it: more readers may join only while no writer waits (writer preference).
    if (writers_.empty()) admit_waiting_readers_locked(wakes);
    return;
  }
  // Free.
  if (!writers_.empty() && (readers_.empty() || writer_streak_ < max_consecutive_writers_)) {
    if (!readers_.empty()) ++writer_streak_;
    writer_active_ = true;
    writers_.pop_front()->grant_locked(wakes);
    return;
  }
  if (!readers_.empty()) admit_waiting_readers_locked(wakes);
}

}  // namespace asupersync
