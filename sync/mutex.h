// Mutex: an async mutual-exclusion lock with FIFO handoff and poisoning (SPEC 8.3).
//
//   Mutex mutex;
//   absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
//   if (!guard.ok()) return guard.status();   // Cancelled, or Poisoned
//   ... critical section (it may await) ...
//   // the guard's destructor unlocks; or guard->unlock() earlier
//
// Fairness: strictly FIFO. Unlocking with waiters hands the lock directly to the oldest waiter
// (it stays locked in between), so a task that unlocks and locks again queues behind the
// others; `lock` never overtakes a waiter, and try_lock fails while anyone waits.
//
// Poisoning (the SPEC's "a holder panicked"): the guard notes, when it is made, the task that
// locked and std::uncaught_exceptions(). The mutex is poisoned when the guard is destroyed
//   - during stack unwinding (more uncaught exceptions than at lock time): an exception escaped
//     the critical section, so a Panicked task held it; or
//   - while the locking task's frame is being destroyed by escalation (SPEC 4.5: its cleanup
//     budget ran out, TaskHandle::budget_exhausted), i.e. the critical section was cut short.
// An ordinary cancellation does not poison: the task unwinds normally (SPEC 4.3). A poisoned
// mutex is unlocked; every waiter and every later lock/try_lock fails with Poisoned
// (`is_poisoned(status)`), without waiting, until `clear_poison()` (after the caller repaired
// the protected state). A guard moved to another task still checks the task that locked (the
// guard as `lock` returns it borrows that task's record, which outlives the task's frame; a
// moved guard holds a reference to it, so it may outlive the task).
//
// Thread-safety: thread-safe; an internal spin lock guards the waiter queue, wakers run after
// it is released. The lock itself is one atomic word: an uncontended lock and unlock are one
// compare-and-swap each and take no internal lock (a lock that would queue, an unlock with
// waiters and poisoning go through the internal lock). A guard may be released on any thread.
// Lifetime: the Mutex must outlive its guards and its waiters; destroying it while locked or
// awaited aborts, naming the invariant.
//
// Cancellation contract (SPEC 4.2, 8): `lock` is a cancellation point (a deliverable cancel is
// checked first). A cancelled lock takes nothing and leaves no waiter behind. If the lock had
// already been handed to the waiter when its cancel became deliverable, the lock is passed on
// to the next waiter (or released) and the wait reports Cancelled. A waiter destroyed while
// parked (SPEC 4.5) deregisters, and passes on a lock handed to it.

#ifndef ASUPERSYNC_SYNC_MUTEX_H_
#define ASUPERSYNC_SYNC_MUTEX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"

namespace asupersync {

class Mutex;

// Holds a Mutex (move-only). Destroying it unlocks (see poisoning in the file comment).
class [[nodiscard]] MutexGuard {
 public:
  MutexGuard() = default;
  MutexGuard(MutexGuard&& other) noexcept;
  MutexGuard& operator=(MutexGuard&& other) noexcept;
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;
  ~MutexGuard();

  // True while it holds the lock.
  bool owns_lock() const { return mutex_ != nullptr; }
  // Unlocks now (never poisons). No-op on an empty guard.
  void unlock();

  // Only Mutex can make one (absl::StatusOr constructs the guard in place through this key).
  class Key {
    friend class Mutex;
    Key() = default;
  };
  // The guard of a lock just taken by the task `holder` (nullptr: try_lock, no task), made
  // where it is returned. It borrows `holder`: the guard lives in that task's frame, which the
  // task record outlives; a move takes a reference (the guard may then outlive the task).
  MutexGuard(Key, Mutex* mutex, internal::TaskRecord* holder);

 private:
  void release(bool allow_poison);

  Mutex* mutex_ = nullptr;
  // The locking task (for poisoning by escalation). Referenced (add_ref) iff `holder_owned_`;
  // a guard as made by `lock` borrows it (no atomic read-modify-write per lock).
  internal::TaskRecord* holder_ = nullptr;
  bool holder_owned_ = false;
  int uncaught_at_lock_ = 0;
};

class Mutex {
 public:
  class LockAwaiter;

  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  ~Mutex();

  // co_await mutex.lock(cx) → absl::StatusOr<MutexGuard>. Errors: Cancelled, Poisoned.
  [[nodiscard]] LockAwaiter lock(Cx& cx);

  // The lock if it is free and nobody waits; Unavailable otherwise; Poisoned. Needs no
  // runtime (the guard then poisons only on unwinding).
  absl::StatusOr<MutexGuard> try_lock();

  bool is_locked() const;
  bool is_poisoned() const;
  // Clears the poison: later locks succeed again.
  void clear_poison();
  // Waiters queued now (for tests and diagnostics).
  size_t waiter_count() const;

  class [[nodiscard]] LockAwaiter final : public sync_internal::Awaiter<LockAwaiter> {
   public:
    LockAwaiter(Cx& cx, Mutex* mutex) : Awaiter(cx, "mutex lock"), mutex_(mutex) {}
    ~LockAwaiter() { abandon(); }
    absl::StatusOr<MutexGuard> await_resume();

   private:
    friend class sync_internal::Awaiter<LockAwaiter>;
    sync_internal::ObservedMutex& wait_mutex() { return mutex_->mu_; }
    absl::Status precheck() { return absl::OkStatus(); }
    bool try_complete_unlocked() { return mutex_->try_lock_fast(); }
    sync_internal::WaitState try_complete_locked(sync_internal::WakeList& wakes);
    void enqueue_locked() { mutex_->waiters_.push_back(this); }
    void dequeue_locked(sync_internal::WakeList&);
    bool pass_on_when_cancelled() const { return true; }
    void pass_on_locked(sync_internal::WakeList& wakes) { mutex_->unlock_locked(false, wakes); }

    Mutex* mutex_;
  };

 private:
  friend class MutexGuard;
  static MutexGuard::Key guard_key() { return MutexGuard::Key(); }
  // Hands the lock to the oldest waiter, or frees it; poisoning refuses every waiter.
  void unlock_locked(bool poison, sync_internal::WakeList& wakes);
  void unlock(bool poison);
  // Takes the lock if it is free, nobody waits and it is not poisoned (one CAS, no mu_).
  bool try_lock_fast() {
    // Lock-free paths report to the lab by hand (the others take mu_, which reports itself).
    internal::observe_object_access(&mu_);
    uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  // Bits of state_. kLocked: held. kWaiters: the queue may be non-empty, so neither the fast
  // lock (no barging past a waiter) nor the fast unlock (the lock must be handed over) applies;
  // it is set under mu_ before a waiter is queued and cleared under mu_ once the queue is
  // empty. kPoisoned: see above. Only the fast lock (0 → kLocked) and the holder's fast unlock
  // (kLocked → 0) change it without mu_.
  static constexpr uint32_t kLocked = 1;
  static constexpr uint32_t kWaiters = 2;
  static constexpr uint32_t kPoisoned = 4;

  mutable sync_internal::ObservedMutex mu_;
  std::atomic<uint32_t> state_{0};
  sync_internal::WaiterList<sync_internal::Waiter> waiters_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_MUTEX_H_
