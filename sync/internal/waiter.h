// The machinery every wait in //sync is built on: an intrusive FIFO waiter list, a batch of
// WakeTokens fired after the primitive's lock is released, and `Awaiter<Derived>`, which runs
// the wait protocol (docs/wait_protocol.md) once for all primitives.
//
// Internal to //sync (visibility restricted to the package).
//
// How a primitive uses it: its awaiter derives from `Awaiter<Self>` and provides, all called
// with the primitive's mutex held except `precheck`:
//
//   sync_internal::ObservedMutex& wait_mutex();
//   absl::Status precheck();                    // after poll_cancel: bad input (an invalid
//                                              // handle, a closing region) is refused at once
//   WaitState try_complete_locked(WakeList&);  // kGranted / kRefused (with `status` set) to end
//                                              // the wait without parking; kIdle to park
//   void enqueue_locked();                      // put *this on the primitive's queue
//   void dequeue_locked(WakeList&);             // take *this off (it is queued); re-dispatch if
//                                              // removing it lets others through
//   bool pass_on_when_cancelled() const;        // a grant that raced with a cancel: pass it on
//                                              // (true) or report it as success (false)
//   void pass_on_locked(WakeList&);             // give an untaken grant to the next waiter
//
// and may provide
//
//   bool try_complete_unlocked();               // without the mutex, right after poll_cancel
//                                              // and before precheck: true if it took the
//                                              // resource at once (granted, nothing queued);
//                                              // false to go on (precheck, locked steps). It
//                                              // must return false on input precheck refuses
//
// and calls `abandon()` first thing in its destructor. `await_resume` starts with `settle()`.
//
// Thread-safety: `Waiter::state`, `status`, `amount` and `tag` are guarded by the primitive's
// mutex while the node is queued. Completers change a node only while it is queued; once it is
// granted, refused or withdrawn only the waiting task touches it, and reads it without the
// lock (state is an atomic so that the destructor and `settle` can see a final state; the
// wake or the rescheduling that resumes the task orders the completer's writes before). Lifetime: a
// node lives in the awaiting coroutine's frame; its destructor deregisters it (SPEC 4.5).
// Cancellation: see `settle()` and SPEC 8.

#ifndef ASUPERSYNC_SYNC_INTERNAL_WAITER_H_
#define ASUPERSYNC_SYNC_INTERNAL_WAITER_H_

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/cx.h"
#include "core/executor.h"
#include "core/internal/task_record.h"
#include "sync/internal/observed_mutex.h"

namespace asupersync::sync_internal {

// Links of a node in a WaiterList.
struct WaiterHook {
  WaiterHook* prev = nullptr;
  WaiterHook* next = nullptr;
  bool linked = false;
};

// An intrusive doubly linked FIFO of `Node`s (which derive from WaiterHook). Allocates nothing.
// Not synchronised: the owning primitive's mutex guards it.
template <typename Node>
class WaiterList {
 public:
  WaiterList() = default;
  WaiterList(const WaiterList&) = delete;
  WaiterList& operator=(const WaiterList&) = delete;

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  Node* front() const { return static_cast<Node*>(head_); }
  static Node* next(const Node* node) { return static_cast<Node*>(node->next); }

  void push_back(Node* node) {
    WaiterHook* hook = node;
    if (hook->linked) internal::invariant_violated("sync: a waiter was queued twice");
    hook->prev = tail_;
    hook->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = hook;
    } else {
      head_ = hook;
    }
    tail_ = hook;
    hook->linked = true;
    ++size_;
  }

  Node* pop_front() {
    Node* node = front();
    if (node != nullptr) remove(node);
    return node;
  }

  // Removes `node` if it is in the list (a no-op otherwise).
  void remove(Node* node) {
    WaiterHook* hook = node;
    if (!hook->linked) return;
    if (hook->prev != nullptr) {
      hook->prev->next = hook->next;
    } else {
      head_ = hook->next;
    }
    if (hook->next != nullptr) {
      hook->next->prev = hook->prev;
    } else {
      tail_ = hook->prev;
    }
    hook->prev = hook->next = nullptr;
    hook->linked = false;
    --size_;
  }

 private:
  WaiterHook* head_ = nullptr;
  WaiterHook* tail_ = nullptr;
  size_t size_ = 0;
};

// WakeTokens taken under a primitive's lock and fired after it is released (wakers never run
// under internal locks, SPEC 6.6 / 8). Declare it before the lock guard: its destructor wakes
// whatever is left, after the guard has released the lock. Up to kInline tokens allocate
// nothing.
class WakeList {
 public:
  WakeList() {}
  WakeList(const WakeList&) = delete;
  WakeList& operator=(const WakeList&) = delete;
  // Most lists stay empty (every fast path declares one): then this is two loads and two
  // tests, inlined (GCC otherwise keeps it a call, ~14 instructions per wait).
  [[gnu::always_inline]] ~WakeList() {
    if (count_ != 0) [[unlikely]] {
      wake_all();
    }
  }

  void add(const internal::WaitNode& node) {
    if (count_ < kInline) {
      new (&inline_[count_].token) internal::WakeToken(node);
    } else {
      if (overflow_ == nullptr) overflow_ = std::make_unique<std::vector<internal::WakeToken>>();
      overflow_->emplace_back(node);
    }
    ++count_;
  }

  [[gnu::noinline]] void wake_all(Lane lane = Lane::kReady) {
    const size_t inline_count = count_ < kInline ? count_ : kInline;
    for (size_t i = 0; i < inline_count; ++i) {
      std::move(inline_[i].token).wake(lane);
      inline_[i].token.~WakeToken();
    }
    count_ = 0;
    if (overflow_ != nullptr) {
      for (internal::WakeToken& token : *overflow_) std::move(token).wake(lane);
      overflow_->clear();
    }
  }

 private:
  static constexpr size_t kInline = 4;
  // Raw storage: only the first `count_` slots (at most kInline) hold a token (constructing and
  // destroying four empty tokens per list cost more than the uncontended lock itself).
  union Slot {
    Slot() {}
    ~Slot() {}
    internal::WakeToken token;
  };
  Slot inline_[kInline];
  size_t count_ = 0;  // tokens held: the first min(count_, kInline) slots, then overflow_
  // Allocated on the first token past kInline (rare), so that destroying an empty list is a
  // null test rather than a call to the vector's destructor.
  std::unique_ptr<std::vector<internal::WakeToken>> overflow_;
};

// Where one wait is (guarded by the primitive's mutex).
enum class WaitState : uint8_t {
  kIdle,       // not registered anywhere (not awaited yet, or completed without parking)
  kQueued,     // on the primitive's queue
  kGranted,    // a completer handed it the resource or the event; the task has not taken it
  kRefused,    // a completer ended it without the resource; `status` says why
  kCancelled,  // withdrawn by a cancellation; nothing was consumed
  kDone,       // the task took the grant (await_resume) or passed it on
};

// A parked wait of any sync primitive: the core wait node plus the queue links and what the
// completer needs to know about it.
class Waiter : public internal::WaitNode, public WaiterHook {
 public:
  WaitState state() const { return state_.load(std::memory_order_acquire); }
  void set_state(WaitState state) { state_.store(state, std::memory_order_release); }

  // Grants the wait and takes a token to wake it after the lock (requires the lock; the node
  // is off the queue).
  void grant_locked(WakeList& wakes) {
    set_state(WaitState::kGranted);
    wakes.add(*this);
  }
  // Ends the wait without the resource (requires the lock; the node is off the queue).
  void refuse_locked(absl::Status why, WakeList& wakes) {
    status = std::move(why);
    set_state(WaitState::kRefused);
    wakes.add(*this);
  }

  // Guarded by the primitive's mutex while the node is queued.
  absl::Status status;  // why it was refused / how it was cancelled
  uint64_t amount = 0;  // primitive-specific: units asked for (Semaphore)
  uint8_t tag = 0;      // primitive-specific: writer / grant kind

 protected:
  Waiter() = default;
  ~Waiter() = default;

 private:
  std::atomic<WaitState> state_{WaitState::kIdle};
};

// Runs the wait protocol for a primitive's awaiter (see the file comment for what `Derived`
// provides). Await it at once: it keeps a pointer to the Cx.
template <typename Derived>
class Awaiter : public Waiter {
 public:
  Awaiter(const Awaiter&) = delete;
  Awaiter& operator=(const Awaiter&) = delete;

  bool await_ready() const noexcept { return false; }

  // Steps of docs/wait_protocol.md: poll_cancel, bad input, fast path, ticket, register, park;
  // not parked (a grant raced in, or a cancel is deliverable): withdraw if still queued. A
  // primitive with a lock-free fast path (try_complete_unlocked) tries it before bad input.
  bool await_suspend(std::coroutine_handle<> handle) {
    Derived& self = derived();
    if (absl::Status cancelled = cx_->poll_cancel(); !cancelled.ok()) {
      status = std::move(cancelled);
      set_state(WaitState::kCancelled);
      return false;
    }
    constexpr bool kHasLockFreeTry = requires(Derived & d) { d.try_complete_unlocked(); };
    if constexpr (kHasLockFreeTry) {
      if (self.try_complete_unlocked()) {
        set_state(WaitState::kGranted);
        return false;
      }
    }
    if (absl::Status bad = self.precheck(); !bad.ok()) {
      status = std::move(bad);
      set_state(WaitState::kRefused);
      return false;
    }
    WakeList wakes;  // fired after the lock guards below are gone
    // The try without a ticket. A primitive whose lock-free try just failed is most likely
    // held: it goes straight to the ticket (one lock per contended wait instead of two; the
    // locked step below still completes a wait that became possible meanwhile).
    if constexpr (!kHasLockFreeTry) {
      std::lock_guard<sync_internal::ObservedMutex> lock(self.wait_mutex());
      if (complete_locked(wakes)) return false;
    }
    internal::begin_wait(cx_->task_record(), *this);
    {
      std::lock_guard<sync_internal::ObservedMutex> lock(self.wait_mutex());
      if (complete_locked(wakes)) return false;
      self.enqueue_locked();
      set_state(WaitState::kQueued);
      waited_ = true;
    }
    if (internal::park(*this, handle)) return true;  // nothing of *this is touched after this
    withdraw();
    return false;
  }

  // The runtime claimed this wait for a cancellation (any thread, no runtime lock held).
  void interrupt() override { withdraw(); }

 protected:
  Awaiter(Cx& cx, const char* wait_name) : cx_(&cx) {
    what = wait_name;
    scope = &cx.region();
  }
  ~Awaiter() = default;

  Derived& derived() { return static_cast<Derived&>(*this); }

  // The first step of await_resume. Returns
  //   kGranted:   the grant is the caller's to take;
  //   kRefused:   `status` says why (closed, poisoned, bad input, ...);
  //   kCancelled: `status` is the Cancelled status; nothing was consumed (a grant that raced
  //               with the cancel was passed on when the primitive says so).
  WaitState settle() {
    // The common case, kept small enough to inline: granted without parking (no cancel can
    // have raced in, there is nothing to pass on).
    if (!waited_ && state() == WaitState::kGranted) {
      set_state(WaitState::kDone);
      return WaitState::kGranted;
    }
    return settle_general();
  }

  // settle() for every other case.
  [[gnu::noinline]] WaitState settle_general() {
    // No lock needed once parked: the task runs again only after whatever ended the wait is
    // done with the node, and that ordered its writes (state, status) before the resume: a
    // completer grants or refuses under the lock and wakes the task after releasing it; a
    // cancellation runs interrupt() (withdraw, under the lock) before it reschedules the task;
    // a wait that did not park withdrew under the lock itself. Completers touch a node only
    // while it is queued.
    const WaitState state_now = state();
    switch (state_now) {
      case WaitState::kCancelled:
        if (status.ok()) status = cancel_status();
        return WaitState::kCancelled;
      case WaitState::kRefused:
        return WaitState::kRefused;
      case WaitState::kGranted:
        break;
      default:
        internal::invariant_violated(
            "sync: await_resume on a wait that is neither granted, "
            "refused nor cancelled");
    }
    // Granted after parking while a cancel may have become deliverable: cancel wins (SPEC 8).
    if (waited_ && derived().pass_on_when_cancelled()) {
      absl::Status cancelled = cx_->poll_cancel();
      if (!cancelled.ok()) {
        WakeList wakes;
        std::lock_guard<sync_internal::ObservedMutex> lock(derived().wait_mutex());
        derived().pass_on_locked(wakes);
        set_state(WaitState::kDone);
        status = std::move(cancelled);
        return WaitState::kCancelled;
      }
    }
    set_state(WaitState::kDone);
    return WaitState::kGranted;
  }

  // Derived destructors call this first: deregister a queued node, pass on an untaken grant
  // (the frame may be destroyed while parked, SPEC 4.5).
  void abandon() {
    // Only a queued node can still change under a completer; refused, cancelled and done are
    // final, idle was never seen by anyone.
    const WaitState state_now = state();
    if (state_now != WaitState::kQueued && state_now != WaitState::kGranted) return;
    WakeList wakes;
    std::lock_guard<sync_internal::ObservedMutex> lock(derived().wait_mutex());
    if (state() == WaitState::kQueued) {
      derived().dequeue_locked(wakes);
      set_state(WaitState::kCancelled);
    } else if (state() == WaitState::kGranted) {
      derived().pass_on_locked(wakes);
      set_state(WaitState::kDone);
    }
  }

  Cx& cx() const { return *cx_; }

 private:
  bool complete_locked(WakeList& wakes) {
    const WaitState result = derived().try_complete_locked(wakes);
    if (result == WaitState::kIdle) return false;
    set_state(result);
    return true;
  }

  void withdraw() {
    WakeList wakes;
    std::lock_guard<sync_internal::ObservedMutex> lock(derived().wait_mutex());
    if (state() != WaitState::kQueued) return;  // a grant raced in: await_resume decides
    derived().dequeue_locked(wakes);
    set_state(WaitState::kCancelled);
  }

  absl::Status cancel_status() {
    absl::Status cancelled = cx_->poll_cancel();
    if (!cancelled.ok()) return cancelled;
    return absl::CancelledError(std::string(what) + ": the wait was cancelled");
  }

  Cx* cx_;
  bool waited_ = false;  // queued at least once (only the task itself writes it)
};

}  // namespace asupersync::sync_internal

#endif  // ASUPERSYNC_SYNC_INTERNAL_WAITER_H_
