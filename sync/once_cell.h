// OnceCell<T>: a value initialized at most once, asynchronously, by one initializer at a time
// (SPEC 8.3).
//
//   OnceCell<Connection> shared;
//   auto connect = [&](Cx& cx) -> Task<absl::StatusOr<Connection>> { ... };
//   auto value = shared.get_or_init(cx, connect);        // name the callable: core/README.md
//   absl::StatusOr<const Connection*> conn = co_await std::move(value);
//
// `get_or_init(cx, init)` returns the value if the cell is set. Otherwise the first caller
// becomes the initializer and runs `init(cx)` (a callable returning Task<absl::StatusOr<T>>) in
// its own task; later callers wait (FIFO). On success the value is stored and every waiter gets
// it. If the initializer fails (an error status, an exception, a cancellation, or its frame is
// destroyed by escalation), the cell stays empty, the initializer gets its error (or the
// exception propagates), and the oldest waiter becomes the next initializer and runs its own
// `init`. Pass the callable as a named object, not a lambda temporary inside the co_await
// expression (GCC 12 destroys such temporaries twice; see core/README.md): get_or_init moves
// it to the heap before its coroutine starts.
//
// `get()` returns the value or null without waiting; `set(v)` stores a value if the cell is
// empty and nobody is initializing it (else FailedPrecondition, the value is dropped).
// Readers get `const T*`, valid as long as the cell lives; the value never changes once set.
//
// Thread-safety: thread-safe (an internal spin lock; wakers run after it is released); `get()`
// is lock-free after initialization (an acquire load). Lifetime: the cell must outlive its
// waiters and readers; destroying it while tasks wait aborts, naming the invariant.
//
// Cancellation contract (SPEC 4.2, 8.3): get_or_init is a cancellation point (a deliverable
// cancel is checked first). A waiter cancelled while waiting consumes nothing and leaves no
// waiter behind. The initializer's turn that raced with its cancel is passed to the next
// waiter; a value that raced with a cancel is returned (reading consumes nothing). A cancelled
// or failed initializer leaves the cell empty and passes the turn on (SPEC 8.3). A waiter or an
// initializer destroyed while parked or running (SPEC 4.5) deregisters / passes the turn on.

#ifndef ASUPERSYNC_SYNC_ONCE_CELL_H_
#define ASUPERSYNC_SYNC_ONCE_CELL_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/task.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"

namespace asupersync {

template <typename T>
class OnceCell {
  enum class Phase : uint8_t { kEmpty, kInitializing, kReady };
  // Grant kinds (Waiter::tag).
  static constexpr uint8_t kTurn = 1;   // you are the initializer now
  static constexpr uint8_t kValue = 2;  // the value is there

 public:
  OnceCell() = default;
  OnceCell(const OnceCell&) = delete;
  OnceCell& operator=(const OnceCell&) = delete;
  ~OnceCell() {
    std::lock_guard<sync_internal::ObservedMutex> lock(mu_);
    if (!waiters_.empty())
      internal::invariant_violated("OnceCell destroyed while tasks wait on it");
    if (phase_ == Phase::kInitializing) {
      internal::invariant_violated("OnceCell destroyed while being initialized");
    }
  }

  // The value, or null if not initialized yet. Never waits.
  const T* get() const {
    // Lock-free, so report the access to the lab by hand (every other path takes mu_).
    internal::observe_object_access(&mu_);
    return ready_.load(std::memory_order_acquire) ? &*value_ : nullptr;
  }
  bool initialized() const { return get() != nullptr; }

  // Stores `value` if the cell is empty and nobody initializes it; FailedPrecondition otherwise.
  absl::Status set(T value) {
    {
      std::lock_guard<sync_internal::ObservedMutex> lock(mu_);
      if (phase_ != Phase::kEmpty) {
        return absl::FailedPreconditionError(phase_ == Phase::kReady
                                                 ? "OnceCell::set: already initialized"
                                                 : "OnceCell::set: an initializer is running");
      }
      phase_ = Phase::kInitializing;
    }
    publish(std::move(value));
    return absl::OkStatus();
  }

  // See the file comment. `init`: callable(Cx&) → Task<absl::StatusOr<T>>.
  template <typename F>
  Task<absl::StatusOr<const T*>> get_or_init(Cx& cx, F&& init) {
    // Moved to the heap before the coroutine starts (GCC 12, see region.h / core/README.md).
    return get_or_init_impl(cx, std::make_unique<std::decay_t<F>>(std::forward<F>(init)));
  }

  // Tasks waiting now (for tests and diagnostics).
  size_t waiter_count() const {
    std::lock_guard<sync_internal::ObservedMutex> lock(mu_);
    return waiters_.size();
  }

  // Waits for the value or for this task's turn to initialize. → absl::StatusOr<bool>: true =
  // the caller must initialize (it holds the turn), false = the value is ready.
  class [[nodiscard]] TurnAwaiter final : public sync_internal::Awaiter<TurnAwaiter> {
    using Base = sync_internal::Awaiter<TurnAwaiter>;
    friend Base;

   public:
    TurnAwaiter(Cx& cx, OnceCell* cell) : Base(cx, "once_cell"), cell_(cell) {}
    ~TurnAwaiter() { this->abandon(); }
    absl::StatusOr<bool> await_resume() {
      if (this->settle() != sync_internal::WaitState::kGranted) return this->status;
      return this->tag == kTurn;
    }

   private:
    sync_internal::ObservedMutex& wait_mutex() { return cell_->mu_; }
    absl::Status precheck() { return absl::OkStatus(); }
    sync_internal::WaitState try_complete_locked(sync_internal::WakeList&) {
      if (cell_->phase_ == Phase::kReady) {
        this->tag = kValue;
        return sync_internal::WaitState::kGranted;
      }
      if (cell_->phase_ == Phase::kEmpty) {
        cell_->phase_ = Phase::kInitializing;
        this->tag = kTurn;
        return sync_internal::WaitState::kGranted;
      }
      return sync_internal::WaitState::kIdle;
    }
    void enqueue_locked() { cell_->waiters_.push_back(this); }
    void dequeue_locked(sync_internal::WakeList&) { cell_->waiters_.remove(this); }
    // A turn is passed on; a value is simply returned (reading consumes nothing).
    bool pass_on_when_cancelled() const { return this->tag == kTurn; }
    void pass_on_locked(sync_internal::WakeList& wakes) {
      if (this->tag == kTurn) cell_->abandon_turn_locked(wakes);
    }

    OnceCell* cell_;
  };

 private:
  // The initializer gives its turn up: the oldest waiter gets it, or the cell is empty again.
  void abandon_turn_locked(sync_internal::WakeList& wakes) {
    if (sync_internal::Waiter* next = waiters_.pop_front()) {
      next->tag = kTurn;
      next->grant_locked(wakes);  // stays kInitializing, now on `next`'s behalf
      return;
    }
    phase_ = Phase::kEmpty;
  }

  void abandon_turn() {
    sync_internal::WakeList wakes;
    std::lock_guard<sync_internal::ObservedMutex> lock(mu_);
    abandon_turn_locked(wakes);
  }

  // The turn holder stores the value (outside the lock: nobody else touches value_ while the
  // phase is kInitializing) and wakes every waiter.
  const T* publish(T value) {
    value_.emplace(std::move(value));
    sync_internal::WakeList wakes;
    std::lock_guard<sync_internal::ObservedMutex> lock(mu_);
    phase_ = Phase::kReady;
    ready_.store(true, std::memory_order_release);
    while (sync_internal::Waiter* waiter = waiters_.pop_front()) {
      waiter->tag = kValue;
      waiter->grant_locked(wakes);
    }
    return &*value_;
  }

  template <typename F>
  Task<absl::StatusOr<const T*>> get_or_init_impl(Cx& cx, std::unique_ptr<F> init) {
    if (const T* ready = get()) co_return ready;
    absl::StatusOr<bool> turn = co_await TurnAwaiter(cx, this);
    if (!turn.ok()) co_return turn.status();
    if (!*turn) co_return get();
    // This task holds the turn. Whatever ends the initialization other than a stored value
    // (error, exception, this frame destroyed while suspended) passes the turn on.
    struct TurnGuard {
      OnceCell* cell;
      bool held = true;
      ~TurnGuard() {
        if (held) cell->abandon_turn();
      }
    } guard{this};
    Task<absl::StatusOr<T>> running = (*init)(cx);
    absl::StatusOr<T> made = co_await std::move(running);
    if (!made.ok()) co_return made.status();  // the guard passes the turn on
    const T* stored = publish(std::move(made).value());
    guard.held = false;
    co_return stored;
  }

  mutable sync_internal::ObservedMutex mu_;
  Phase phase_ = Phase::kEmpty;
  std::atomic<bool> ready_{false};
  std::optional<T> value_;  // written once, by the turn holder, before ready_ is set
  sync_internal::WaiterList<sync_internal::Waiter> waiters_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_ONCE_CELL_H_
