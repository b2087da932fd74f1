// lab::Tracked<T>: a shared variable whose reads and writes the lab sees.
//
// Concurrency bugs between tasks live in the state they share. Plain C++ variables are
// invisible to the lab: exploration cannot know that two steps touch the same data. Wrap such
// state in `Tracked<T>` and every load and store becomes a trace event and, under DPOR, an
// access that orders (or does not order) steps:
//
//   auto balance = std::make_shared<lab::Tracked<int>>(100, "balance");
//   int seen = balance->load();                  // a read
//   co_await cx.yield();                         // another task may run here
//   balance->store(seen - 30);                   // a write: lost update if someone wrote between
//
// Waiting (each wait takes the task's Cx and is a cancellation point, SPEC 2.5):
//   - `co_await x.wait_until(cx, pred)` (level-triggered): returns once `pred(value)` holds —
//     at once if it already does. Every check, passing or failing, is a read for DPOR (a write
//     that makes it fail disables the task, and a parked task can still be interrupted by a
//     cancel, so both orders matter); a step resumed by a store's wake is never reordered before
//     that store. Stores wake exactly the level waiters whose predicate they satisfy.
//   - `co_await x.wait_changed(cx)` (edge-triggered): returns after the next store. Registering
//     the wait is a read, so DPOR orders it against stores: a store that comes first is missed
//     (the "missed notify" bug).
// Both return absl::OkStatus() or the Cancelled status (waits follow docs/wait_protocol.md:
// cancelled, they consume nothing and leave no waiter behind).
//
// Scope: `x.ref()` is a checked reference (runtime, run, index). Using it after `x` was
// destroyed does not touch freed memory: the access is reported (oracle "use_after_scope",
// naming the object and the task) and a load returns T{}. Destroying a Tracked while tasks wait
// on it is reported the same way. A plain `&x` captured by a task that outlives `x` is
// undefined behaviour that no oracle can catch safely: use ref() in lab tests.
//
// Identity: a Tracked created inside a task of a lab run is "the k-th Tracked created by that
// task", the same in every run of an exploration. One created outside the run (and shared
// between runs) would carry state from run to run: its accesses are reported as a violation
// (oracle "tracked_outside_run"); create shared state inside the scenario.
//
// Thread-safety: lab only (single-threaded). Outside a lab run a Tracked is a plain variable.
// Lifetime: must outlive every task that uses it directly (see Scope).
// Cancellation contract: wait_until and wait_changed are cancellation points; loads and stores
// never wait.

#ifndef ASUPERSYNC_LAB_TRACKED_H_
#define ASUPERSYNC_LAB_TRACKED_H_

#include <coroutine>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "core/cx.h"
#include "core/internal/task_record.h"
#include "core/task.h"
#include "lab/lab_runtime.h"

namespace asupersync::lab {

class TrackedBase {
 public:
  TrackedBase(const TrackedBase&) = delete;
  TrackedBase& operator=(const TrackedBase&) = delete;

  const std::string& name() const { return name_; }
  // The per-run index the lab knows it by (0: created outside a lab run).
  uint32_t index() const { return index_; }

  // A parked wait on this object (see the wait protocol in core/internal/task_record.h).
  class Waiter : public asupersync::internal::WaitNode {
   public:
    Waiter(Cx& cx, TrackedBase& object, bool level);
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;
    ~Waiter();

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle);
    absl::Status await_resume();
    void interrupt() override;

    // Level waits: whether a store just made the awaited condition true.
    virtual bool satisfied() const { return true; }
    bool level() const { return level_; }
    TrackedBase* object() const { return object_; }

   private:
    friend class TrackedBase;
    Cx* cx_;
    TrackedBase* object_;
    bool level_;
    bool linked_ = false;
    bool woken_ = false;
    bool cancelled_ = false;
    absl::Status early_;
    Waiter* prev_ = nullptr;
    Waiter* next_ = nullptr;
  };

 protected:
  explicit TrackedBase(std::string name);
  ~TrackedBase();

  // Reports an access to the lab (if this object belongs to the run on this thread).
  void note(internal::AccessKind kind, bool has_value, int64_t value) const;
  // After a store: wakes every edge waiter and each level waiter whose condition now holds.
  void wake_waiters();
  // A waiter left the list without a store (interrupted, destroyed): reported to the lab.
  void note_waiters_changed() const;

 private:
  void link(Waiter& waiter);
  void unlink(Waiter& waiter);

  std::string name_;
  LabRuntime* runtime_ = nullptr;
  uint64_t run_ = 0;
  uint32_t index_ = 0;
  Waiter* head_ = nullptr;

 protected:
  bool referenced_ = false;  // ref() was called

 private:
  Waiter* tail_ = nullptr;
};

template <typename T>
class TrackedRef;

template <typename T>
class Tracked : public TrackedBase {
 public:
  explicit Tracked(T initial = T{}, std::string name = "")
      : TrackedBase(std::move(name)), value_(std::move(initial)) {}

  // A read.
  T load() const {
    note(internal::AccessKind::kRead, has_value(), as_int(value_));
    return value_;
  }
  // A write; wakes the waiters it concerns.
  void store(T value) {
    value_ = std::move(value);
    note(internal::AccessKind::kWrite, has_value(), as_int(value_));
    wake_waiters();
  }
  // value = fn(value) as one write (atomic: no other task runs in between). Returns the new
  // value.
  template <typename F>
  T update(F fn) {
    T next = fn(value_);
    store(next);
    return next;
  }
  // Compare-and-swap as one step: if value == expected, stores `desired` and returns true;
  // otherwise sets `expected` to the current value. Counted as a write either way.
  bool compare_exchange(T& expected, T desired) {
    if (value_ == expected) {
      store(std::move(desired));
      return true;
    }
    note(internal::AccessKind::kWrite, has_value(), as_int(value_));
    expected = value_;
    return false;
  }

  // Level-triggered wait (see the file comment). `pred` is called with the value.
  template <typename Pred>
  Task<absl::Status> wait_until(Cx& cx, Pred pred) {
    absl::Status status = co_await cx.checkpoint();
    if (!status.ok()) co_return status;
    while (!pred(value_)) {
      // A failing check is a read too: the write that made it fail disabled this task, and
      // the other order (this check first, passing) must be explored.
      note(internal::AccessKind::kRead, has_value(), as_int(value_));
      PredicateWaiter<Pred> waiter(cx, *this, &pred);
      status = co_await waiter;
      if (!status.ok()) co_return status;
    }
    note(internal::AccessKind::kRead, has_value(), as_int(value_));
    co_return absl::OkStatus();
  }

  // Edge-triggered wait (see the file comment).
  Waiter wait_changed(Cx& cx) {
    note(internal::AccessKind::kRead, has_value(), as_int(value_));
    return Waiter(cx, *this, /*level=*/false);
  }

  // A checked reference (see Scope in the file comment).
  TrackedRef<T> ref() {
    referenced_ = true;
    return TrackedRef<T>(*this);
  }

  // The value without reporting an access (for a test's final assertions after the run).
  const T& peek() const { return value_; }

 private:
  template <typename Pred>
  class PredicateWaiter final : public Waiter {
   public:
    PredicateWaiter(Cx& cx, Tracked& object, const Pred* pred)
        : Waiter(cx, object, /*level=*/true), tracked_(&object), pred_(pred) {}
    bool satisfied() const override { return (*pred_)(tracked_->value_); }

   private:
    Tracked* tracked_;
    const Pred* pred_;
  };

  static constexpr bool has_value() { return std::is_integral_v<T> || std::is_enum_v<T>; }
  static int64_t as_int(const T& value) {
    if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) {
      return static_cast<int64_t>(value);
    } else {
      return 0;
    }
  }

  T value_;
};

// A checked reference to a Tracked<T> of the current run (see Scope in the file comment).
// Copyable; capture it by value in tasks that may outlive the scope of the object.
template <typename T>
class TrackedRef {
 public:
  TrackedRef() = default;
  explicit TrackedRef(Tracked<T>& object)
      : runtime_(LabRuntime::current()),
        run_(runtime_ != nullptr ? runtime_->run_id() : 0),
        index_(object.index()),
        direct_(&object) {}

  T load() const {
    Tracked<T>* object = resolve("load");
    return object != nullptr ? object->load() : T{};
  }
  void store(T value) const {
    if (Tracked<T>* object = resolve("store")) object->store(std::move(value));
  }
  template <typename F>
  T update(F fn) const {
    Tracked<T>* object = resolve("update");
    return object != nullptr ? object->update(std::move(fn)) : T{};
  }

 private:
  Tracked<T>* resolve(std::string_view operation) const {
    if (runtime_ == nullptr || index_ == 0) return direct_;  // outside the lab: plain reference
    if (runtime_ != LabRuntime::current() || runtime_->run_id() != run_) return nullptr;
    TrackedBase* object = runtime_->object_at(index_);
    if (object == nullptr) {
      runtime_->on_dangling_access(index_, operation);
      return nullptr;
    }
    return static_cast<Tracked<T>*>(object);
  }

  LabRuntime* runtime_ = nullptr;
  uint64_t run_ = 0;
  uint32_t index_ = 0;
  Tracked<T>* direct_ = nullptr;
};

}  // namespace asupersync::lab

#endif  // ASUPERSYNC_LAB_TRACKED_H_
