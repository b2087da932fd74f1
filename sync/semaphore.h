// Semaphore: counted permits, strictly FIFO, handed out as obligations (SPEC 8.3, 5.1-5.4).
//
//   Semaphore pool(4);
//   absl::StatusOr<SemaphorePermit> permit = co_await pool.acquire(cx, 2);
//   if (!permit.ok()) return permit.status();   // Cancelled, closed, region closing, ...
//   ... use the two units ...
//   std::move(*permit).release();               // exactly once; destroying it unreleased is a
//                                               // leak: released and reported
//
// Fairness: strictly FIFO. A request is served only when every older request was; a large
// request at the head blocks smaller ones behind it even if they would fit. `add_permits(n)`
// (alias `release(n)`) and every permit released wake as many waiters, in order, as the
// available units cover.
//
// Obligations: each SemaphorePermit is recorded in the ledger of the acquiring context's region,
// so the region cannot close while it is held (SPEC 3.3). It is a counted obligation
// (`ObligationLedger::record_counted`: one compare-and-swap, no entry of its own); the permit
// keeps its acquire site, and a leak is reported as "semaphore permits (n)" with that site. Paths:
//   | `std::move(p).release()` | units back, waiters woken | kCompleted          |
//   | destroyed unreleased     | units back, waiters woken | kLeaked + report    |
// Acquiring needs an Open region (SPEC 3.2); in a closing region acquire fails with
// FailedPrecondition (and takes nothing).
//
// close(): every waiter and every later acquire fails with FailedPrecondition; permits already
// held can still be released.
//
// Thread-safety: thread-safe; permits may be released on any thread. The units and two flags
// (waiters queued, closed) are one atomic word: an acquire that can be served at once and a
// release with nobody waiting are one compare-and-swap each; the waiter queue is guarded by an
// internal spin lock (wakers run after it is released). The count saturates at 2^62 - 1.
// Lifetime: the Semaphore must outlive its permits and its waiters; destroying it while tasks
// wait aborts, naming the invariant.
//
// Cancellation contract (SPEC 4.2, 8): `acquire` is a cancellation point (a deliverable cancel
// is checked first). A cancelled acquire takes no unit, records no obligation and leaves no
// waiter behind; removing it from the head of the queue lets the waiters behind it through if
// the units now cover them. Units granted to a waiter whose cancel raced in are given back and
// passed on in FIFO order (the wait reports Cancelled). A waiter destroyed while parked
// (SPEC 4.5) deregisters and gives back units granted to it.

#ifndef ASUPERSYNC_SYNC_SEMAPHORE_H_
#define ASUPERSYNC_SYNC_SEMAPHORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/id.h"
#include "core/source_site.h"
#include "obligations/ledger.h"
#include "obligations/typestate.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"

namespace asupersync {

class Semaphore;

// `count` units of a Semaphore, held (move-only, linear: released exactly once). See the file
// comment.
class [[nodiscard]] ASUPERSYNC_CONSUMABLE(unconsumed) SemaphorePermit {
 public:
  // The empty permit.
  ASUPERSYNC_RETURN_TYPESTATE(consumed) SemaphorePermit() noexcept {}
  SemaphorePermit(SemaphorePermit&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept;
  // Moving over a live permit leaks it first (as destroying it would).
  SemaphorePermit& operator=(
      SemaphorePermit&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept;
  SemaphorePermit(const SemaphorePermit&) = delete;
  SemaphorePermit& operator=(const SemaphorePermit&) = delete;
  // Destroying a live permit is a leak: the units go back, the ledger records a LeakReport.
  ~SemaphorePermit();

  // Gives the units back and resolves the obligation as kCompleted. Aborts on an empty permit.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void release() &&;

  ASUPERSYNC_TEST_TYPESTATE(unconsumed)
  bool valid() const { return semaphore_ != nullptr; }
  size_t count() const { return count_; }
  // Where it was acquired (reported if it leaks).
  SourceSite acquired_at() const { return site_; }

 private:
  friend class Semaphore;
  SemaphorePermit(Semaphore* semaphore, size_t count, ObligationLedger* ledger, SourceSite site)
      : semaphore_(semaphore), count_(count), ledger_(ledger), site_(site) {}
  void finish(Resolution resolution) noexcept;
  [[gnu::noinline]] static absl::Status leak(ObligationLedger& ledger, size_t count,
                                             SourceSite site);

  Semaphore* semaphore_ = nullptr;
  size_t count_ = 0;
  ObligationLedger* ledger_ = nullptr;  // holds the counted obligation
  SourceSite site_;
};

class Semaphore {
 public:
  class AcquireAwaiter;

  explicit Semaphore(size_t permits);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore();

  // co_await sem.acquire(cx, n) → absl::StatusOr<SemaphorePermit> holding n units. Errors:
  // Cancelled, InvalidArgument (n == 0), FailedPrecondition (closed, region closing),
  // ResourceExhausted (the region's obligation limit).
  [[nodiscard]] AcquireAwaiter acquire(Cx& cx, size_t n = 1,
                                       SourceSite site = SourceSite::current());

  // n units now if they are available and nobody waits; Unavailable otherwise. Not a
  // cancellation point.
  absl::StatusOr<SemaphorePermit> try_acquire(Cx& cx, size_t n = 1,
                                              SourceSite site = SourceSite::current());

  // Adds n units and wakes the waiters they cover, in FIFO order. release(n) is the same.
  void add_permits(size_t n);
  void release(size_t n) { add_permits(n); }

  // Refuses every waiter and every later acquire (FailedPrecondition).
  void close();
  bool is_closed() const;

  size_t available_permits() const;
  // Waiters queued now (for tests and diagnostics).
  size_t waiter_count() const;

  class [[nodiscard]] AcquireAwaiter final : public sync_internal::Awaiter<AcquireAwaiter> {
   public:
    AcquireAwaiter(Cx& cx, Semaphore* semaphore, size_t n, SourceSite site)
        : Awaiter(cx, "semaphore acquire"), semaphore_(semaphore), site_(site) {
      amount = n;
    }
    ~AcquireAwaiter() { abandon(); }
    // The uncontended acquire without suspending the coroutine: await_suspend's first steps (a
    // deliverable cancel, then the lock-free take), whose outcomes are final; otherwise
    // await_suspend starts over (poll_cancel is repeatable) and may park.
    bool await_ready() {
      if (absl::Status cancelled = cx().poll_cancel(); !cancelled.ok()) [[unlikely]] {
        status = std::move(cancelled);
        set_state(sync_internal::WaitState::kCancelled);
        return true;
      }
      if (try_complete_unlocked()) {
        set_state(sync_internal::WaitState::kGranted);
        return true;
      }
      return false;
    }
    absl::StatusOr<SemaphorePermit> await_resume();

   private:
    friend class sync_internal::Awaiter<AcquireAwaiter>;
    sync_internal::ObservedMutex& wait_mutex() { return semaphore_->mu_; }
    absl::Status precheck();
    // Runs before precheck: a grant made here is recorded by await_resume, whose ledger
    // refuses it (FailedPrecondition, units given back) in a closing region.
    bool try_complete_unlocked() { return amount != 0 && semaphore_->try_take_fast(amount); }
    sync_internal::WaitState try_complete_locked(sync_internal::WakeList& wakes);
    void enqueue_locked() { semaphore_->waiters_.push_back(this); }
    void dequeue_locked(sync_internal::WakeList& wakes);
    bool pass_on_when_cancelled() const { return true; }
    void pass_on_locked(sync_internal::WakeList& wakes);

    Semaphore* semaphore_;
    SourceSite site_;
  };

 private:
  friend class SemaphorePermit;
  // Takes n units if nobody waits, the semaphore is open and they are available (CAS, no mu_).
  bool try_take_fast(uint64_t n) {
    internal::observe_object_access(&mu_);  // lock-free: report to the lab by hand
    uint64_t state = state_.load(std::memory_order_relaxed);
    while ((state & (kWaiters | kClosed)) == 0 && (state >> kUnitShift) >= n) {
      if (state_.compare_exchange_weak(state, state - (n << kUnitShift), std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  // Serves the head of the queue while the units cover it (strict FIFO).
  void dispatch_locked(sync_internal::WakeList& wakes);
  void give_back_locked(size_t n, sync_internal::WakeList& wakes);
  // Clears kWaiters once the queue is empty (the fast paths apply again).
  void sync_waiters_flag_locked();
  // Records the permit for n units the caller holds; gives them back on failure.
  absl::StatusOr<SemaphorePermit> make_permit(Cx& cx, size_t n, SourceSite site);

  // state_ = units << kUnitShift | flags. kWaiters: the queue may be non-empty, so neither the
  // fast acquire (no overtaking a waiter) nor the fast release (waiters must be dispatched)
  // applies; set under mu_ before a waiter queues, cleared under mu_ once the queue is empty.
  // While it is set only code under mu_ changes the word. kClosed: see close().
  static constexpr uint64_t kWaiters = 1;
  static constexpr uint64_t kClosed = 2;
  static constexpr int kUnitShift = 2;
  static constexpr uint64_t kMaxUnits = ~uint64_t{0} >> kUnitShift;

  mutable sync_internal::ObservedMutex mu_;
  std::atomic<uint64_t> state_;
  sync_internal::WaiterList<sync_internal::Waiter> waiters_;
};

inline Semaphore::AcquireAwaiter Semaphore::acquire(Cx& cx, size_t n, SourceSite site) {
  return AcquireAwaiter(cx, this, n, site);
}

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_SEMAPHORE_H_
