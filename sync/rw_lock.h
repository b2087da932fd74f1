// RwLock: an async reader-writer lock with bounded writer preference (SPEC 8.3).
//
//   RwLock lock;
//   absl::StatusOr<ReadGuard> reading = co_await lock.read(cx);    // shared
//   absl::StatusOr<WriteGuard> writing = co_await lock.write(cx);  // exclusive
//
// Policy. Writers are preferred: while a writer waits, new readers queue (they do not join the
// readers holding the lock), so a stream of readers cannot starve writers. The preference is
// bounded so that readers are not starved either: when the lock becomes free and both readers
// and writers wait, writers are served first (FIFO among writers) but at most
// `max_consecutive_writers` in a row (default 4); then every reader waiting at that moment is
// admitted together, and the count starts again. Bound, stated: a reader that starts waiting
// is admitted after at most `max_consecutive_writers` write critical sections granted after it
// started waiting (plus the one holding the lock then, and the readers already holding it).
// Waiting writers are served FIFO; waiting readers are admitted together (as a batch).
//
// Guards are move-only and unlock when destroyed (or with unlock()). No poisoning (only Mutex
// has it). try_read/try_write succeed only when the lock is compatible and nobody waits.
//
// Thread-safety: thread-safe (an internal spin lock; wakers run after it is released); guards
// may be released on any thread. Lifetime: the RwLock must outlive its guards and waiters;
// destroying it while held or awaited aborts, naming the invariant.
//
// Cancellation contract (SPEC 4.2, 8): read and write are cancellation points (a deliverable
// cancel is checked first). A cancelled wait takes nothing and leaves no waiter behind; a
// cancelled waiting writer no longer holds readers back (those it blocked are admitted if the
// lock allows). A grant (shared or exclusive) that raced with a cancel is released at once and
// the lock re-dispatched to the next waiters; the wait reports Cancelled. A waiter destroyed
// while parked (SPEC 4.5) deregisters and releases a grant it had not taken.

#ifndef ASUPERSYNC_SYNC_RW_LOCK_H_
#define ASUPERSYNC_SYNC_RW_LOCK_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"

namespace asupersync {

class RwLock;

struct RwLockOptions {
  // At least 1. The most writers served in a row while readers wait.
  uint32_t max_consecutive_writers = 4;
};

// Shared access (move-only); unlocks when destroyed.
class [[nodiscard]] ReadGuard {
 public:
  ReadGuard() = default;
  ReadGuard(ReadGuard&& other) noexcept : lock_(std::exchange(other.lock_, nullptr)) {}
  ReadGuard& operator=(ReadGuard&& other) noexcept;
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;
  ~ReadGuard() { unlock(); }
  bool owns_lock() const { return lock_ != nullptr; }
  void unlock();

 private:
  friend class RwLock;
  explicit ReadGuard(RwLock* lock) : lock_(lock) {}
  RwLock* lock_ = nullptr;
};

// Exclusive access (move-only); unlocks when destroyed.
class [[nodiscard]] WriteGuard {
 public:
  WriteGuard() = default;
  WriteGuard(WriteGuard&& other) noexcept : lock_(std::exchange(other.lock_, nullptr)) {}
  WriteGuard& operator=(WriteGuard&& other) noexcept;
  WriteGuard(const WriteGuard&) = delete;
  WriteGuard& operator=(const WriteGuard&) = delete;
  ~WriteGuard() { unlock(); }
  bool owns_lock() const { return lock_ != nullptr; }
  void unlock();

 private:
  friend class RwLock;
  explicit WriteGuard(RwLock* lock) : lock_(lock) {}
  RwLock* lock_ = nullptr;
};

class RwLock {
 public:
  template <bool kWrite>
  class LockAwaiter;

  explicit RwLock(RwLockOptions options = {});
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;
  ~RwLock();

  // co_await lock.read(cx) → absl::StatusOr<ReadGuard>; lock.write(cx) → StatusOr<WriteGuard>.
  // Errors: Cancelled.
  [[nodiscard]] LockAwaiter<false> read(Cx& cx);
  [[nodiscard]] LockAwaiter<true> write(Cx& cx);

  // Unavailable unless compatible now and nobody waits.
  absl::StatusOr<ReadGuard> try_read();
  absl::StatusOr<WriteGuard> try_write();

  // Snapshot for tests and diagnostics.
  struct Stats {
    size_t readers = 0;  // holding shared access
    bool writer = false;
    size_t waiting_readers = 0;
    size_t waiting_writers = 0;
  };
  Stats stats() const;

  template <bool kWrite>
  class [[nodiscard]] LockAwaiter final : public sync_internal::Awaiter<LockAwaiter<kWrite>> {
    using Base = sync_internal::Awaiter<LockAwaiter<kWrite>>;
    friend Base;
    using Guard = std::conditional_t<kWrite, WriteGuard, ReadGuard>;

   public:
    LockAwaiter(Cx& cx, RwLock* lock)
        : Base(cx, kWrite ? "rwlock write" : "rwlock read"), lock_(lock) {}
    ~LockAwaiter() { this->abandon(); }
    absl::StatusOr<Guard> await_resume() {
      if (this->settle() != sync_internal::WaitState::kGranted) return this->status;
      return Guard(lock_);
    }

   private:
    sync_internal::ObservedMutex& wait_mutex() { return lock_->mu_; }
    absl::Status precheck() { return absl::OkStatus(); }
    sync_internal::WaitState try_complete_locked(sync_internal::WakeList&) {
      if (!lock_->can_enter_now_locked(kWrite)) return sync_internal::WaitState::kIdle;
      lock_->enter_locked(kWrite);
      return sync_internal::WaitState::kGranted;
    }
    void enqueue_locked() { (kWrite ? lock_->writers_ : lock_->readers_).push_back(this); }
    void dequeue_locked(sync_internal::WakeList& wakes) {
      (kWrite ? lock_->writers_ : lock_->readers_).remove(this);
      lock_->dispatch_locked(wakes);  // a writer that left may have held readers back
    }
    bool pass_on_when_cancelled() const { return true; }
    void pass_on_locked(sync_internal::WakeList& wakes) { lock_->leave_locked(kWrite, wakes); }

    RwLock* lock_;
  };

 private:
  friend class ReadGuard;
  friend class WriteGuard;

  bool can_enter_now_locked(bool write) const;
  void enter_locked(bool write);
  void leave_locked(bool write, sync_internal::WakeList& wakes);
  void leave(bool write);
  // Grants whatever the policy allows now (see the file comment).
  void dispatch_locked(sync_internal::WakeList& wakes);
  void admit_waiting_readers_locked(sync_internal::WakeList& wakes);

  const uint32_t max_consecutive_writers_;
  mutable sync_internal::ObservedMutex mu_;
  size_t readers_active_ = 0;
  bool writer_active_ = false;
  uint32_t writer_streak_ = 0;  // writers granted while readers waited, since readers last got in
  sync_internal::WaiterList<sync_internal::Waiter> readers_;
  sync_internal::WaiterList<sync_internal::Waiter> writers_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_RW_LOCK_H_
