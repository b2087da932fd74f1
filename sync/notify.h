// Notify: wake one waiting task, or all of them (SPEC 8.3).
//
//   Notify ready;
//   // waiter:                                    // notifier:
//   absl::Status s = co_await ready.notified(cx);  ready.notify_one();   // or notify_all()
//
// notify_one() wakes the oldest waiter; if nobody waits it stores one permit (at most one:
// repeated calls do not accumulate), which the next notified() consumes without waiting.
// notify_all() wakes every task waiting at that moment and stores nothing. Waiters are FIFO.
//
// Thread-safety: thread-safe (an internal spin lock; wakers run after it is released);
// notify_one/notify_all need no runtime and may be called from any thread.
// Lifetime: the Notify must outlive its waiters; destroying it while tasks wait aborts, naming
// the invariant.
//
// Cancellation contract (SPEC 4.2, 8): notified() is a cancellation point (a deliverable cancel
// is checked first). A cancelled wait consumes nothing (no permit, no notification) and leaves
// no waiter behind. A notify_one that had already picked the waiter when its cancel became
// deliverable is passed on: to the next waiter, or stored as the permit; the wait reports
// Cancelled. A notify_all wake whose cancel raced in reports Cancelled (there is nothing to
// pass on). A waiter destroyed while parked (SPEC 4.5) deregisters and passes a notify_one on.

#ifndef ASUPERSYNC_SYNC_NOTIFY_H_
#define ASUPERSYNC_SYNC_NOTIFY_H_

#include <cstddef>
#include <mutex>

#include "absl/status/status.h"
#include "core/cx.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"

namespace asupersync {

class Notify {
 public:
  class NotifiedAwaiter;

  Notify() = default;
  Notify(const Notify&) = delete;
  Notify& operator=(const Notify&) = delete;
  ~Notify();

  // co_await notify.notified(cx) → absl::Status: OK when notified; Cancelled.
  [[nodiscard]] NotifiedAwaiter notified(Cx& cx);

  void notify_one();
  void notify_all();

  // For tests and diagnostics.
  size_t waiter_count() const;
  bool has_permit() const;

  class [[nodiscard]] NotifiedAwaiter final : public sync_internal::Awaiter<NotifiedAwaiter> {
   public:
    NotifiedAwaiter(Cx& cx, Notify* notify) : Awaiter(cx, "notify"), notify_(notify) {}
    ~NotifiedAwaiter() { abandon(); }
    absl::Status await_resume();

   private:
    friend class sync_internal::Awaiter<NotifiedAwaiter>;
    sync_internal::ObservedMutex& wait_mutex() { return notify_->mu_; }
    absl::Status precheck() { return absl::OkStatus(); }
    sync_internal::WaitState try_complete_locked(sync_internal::WakeList& wakes);
    void enqueue_locked() { notify_->waiters_.push_back(this); }
    void dequeue_locked(sync_internal::WakeList&) { notify_->waiters_.remove(this); }
    bool pass_on_when_cancelled() const { return true; }
    void pass_on_locked(sync_internal::WakeList& wakes);

    Notify* notify_;
  };

 private:
  // Grant kinds (Waiter::tag).
  static constexpr uint8_t kOne = 1;
  static constexpr uint8_t kAll = 2;

  void notify_one_locked(sync_internal::WakeList& wakes);

  mutable sync_internal::ObservedMutex mu_;
  bool permit_ = false;
  sync_internal::WaiterList<sync_internal::Waiter> waiters_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_NOTIFY_H_
