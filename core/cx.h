// Cx: the capability context of a task (SPEC 2.4, 2.5).
//
// Every task body receives its own `Cx&`. Through it the task spawns children into its region
// (`cx.spawn`), waits (`checkpoint`, `yield`, `sleep`; later locks, channels and sockets), reads
// the clock, draws entropy, shields itself from cancellation and registers finalizers. Nothing
// in the runtime is reachable without a Cx: there is no global spawn and no thread-local
// "current runtime" (SPEC 2.1).
//
// Capabilities (Spawn, Time, Io, Random, Blocking) are checked at run time: using one that is
// absent fails with PermissionDenied naming it (SPEC 2.4). `cx.restrict(caps)` narrows a
// context; `CxView<...>` is the compile-time narrowed view in which, for example, `spawn` does
// not exist without the Spawn capability.
//
// Thread-safety: a Cx belongs to its task; use it only from code running in that task.
// Lifetime: a spawned task's Cx lives as long as the task; a region body's Cx as long as the
// body. Awaiters keep a pointer to the Cx they were created from, so await them at once.
//
// Cancellation contract (SPEC 4.2): `checkpoint`, `yield` and `sleep` are cancellation points.
// When a cancel request is deliverable (requested, not shielded) they complete with a
// kCancelled status instead of their normal result, consume nothing (a cancelled sleep removes
// its timer), and acknowledge the request, after which the task drains in the cancel lane under
// its cleanup budget (SPEC 4.3). A task parked in one of them is woken by the request.

#ifndef ASUPERSYNC_CORE_CX_H_
#define ASUPERSYNC_CORE_CX_H_

#include <coroutine>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/budget.h"
#include "core/cancel_reason.h"
#include "core/capabilities.h"
#include "core/id.h"
#include "core/internal/task_record.h"
#include "core/outcome.h"
#include "core/source_site.h"
#include "core/task.h"
#include "core/time.h"

namespace asupersync {

class Cx;
class Region;
template <typename T>
class TaskHandle;

// Options of one spawn: the child's capabilities are the parent's narrowed to `capabilities`,
// and its budget is meet(parent's, `budget`) (SPEC 1.2).
struct SpawnOptions {
  Capabilities capabilities = Capabilities::All();
  Budget budget = Budget::Infinite();
};

// Error helpers. A spawn refused because the region is no longer Open carries the
// "RegionClosed" type (SPEC 3.2); use is_region_closed() to test for it.
absl::Status region_closed_error(std::string_view message);
bool is_region_closed(const absl::Status& status);

namespace internal {

// Tag: a TaskHandle constructed with it adopts an existing reference.
struct AdoptReference {};

// The outcome of a finished task, kept compact in its record: Ok (with the value in place for
// a non-void T) is a state byte; Err, Cancelled and Panicked, the rare states, live on the heap.
// The value and the pointer to the rare outcome share their storage (16 bytes for a word-sized
// T, 8 more than T otherwise): an Outcome<T> is four variant states wide (80 bytes for void).
template <typename T>
class OutcomeSlot {
 public:
  OutcomeSlot() {}
  OutcomeSlot(const OutcomeSlot&) = delete;
  OutcomeSlot& operator=(const OutcomeSlot&) = delete;
  ~OutcomeSlot() { clear(); }

  bool has_value() const { return state_ != State::kEmpty; }
  bool ok() const { return state_ == State::kOk; }
  bool is_err() const { return state_ == State::kOther && other_->is_err(); }

  void set_ok() requires(std::is_void_v<T>) {
    clear();
    state_ = State::kOk;
  }
  template <typename U = T>
  requires(!std::is_void_v<T>) void set_ok(U&& value) {
    clear();
    ::new (static_cast<void*>(std::addressof(value_))) Value(std::forward<U>(value));
    state_ = State::kOk;
  }
  void emplace(Outcome<T> outcome) {
    if (outcome.ok()) {
      if constexpr (std::is_void_v<T>) {
        set_ok();
      } else {
        set_ok(std::move(outcome).value());
      }
      return;
    }
    auto other = std::make_unique<Outcome<T>>(std::move(outcome));
    clear();
    other_ = other.release();
    state_ = State::kOther;
  }

  // Moves the outcome out (requires has_value()); the slot keeps a moved-from state.
  Outcome<T> take() {
    if (state_ == State::kOk) {
      if constexpr (std::is_void_v<T>) {
        return Outcome<void>::Ok();
      } else {
        return Outcome<T>::Ok(std::move(value_));
      }
    }
    return std::move(*other_);
  }
  // The state without the value (requires has_value()).
  Outcome<void> summary() const {
    if (state_ == State::kOk) return Outcome<void>::Ok();
    return other_->discard_value();
  }

 private:
  enum class State : uint8_t { kEmpty, kOk, kOther };
  struct NoValue {};
  using Value = std::conditional_t<std::is_void_v<T>, NoValue, T>;

  void clear() {
    if (state_ == State::kOk) {
      if constexpr (!std::is_void_v<T>) value_.~Value();
    } else if (state_ == State::kOther) {
      delete other_;
    }
    state_ = State::kEmpty;
  }

  // kOk: value_ (T); kOther: other_ (owned); kEmpty: neither.
  union {
    Value value_;
    Outcome<T>* other_;
  };
  State state_ = State::kEmpty;
};

template <typename T>
class TypedTaskRecord : public TaskRecord {
 public:
  using TaskRecord::TaskRecord;

  Outcome<void> outcome_summary() const override {
    if (!outcome.has_value()) {
      return Outcome<void>::Err(absl::InternalError("task has no outcome yet"));
    }
    return outcome.summary();
  }
  void set_cancelled_outcome(const CancelReason& reason) override {
    outcome.emplace(Outcome<T>::Cancelled(reason));
  }

  // First, so that it fits in the tail padding of TaskRecord.
  bool outcome_taken = false;
  OutcomeSlot<T> outcome;
};

template <typename T>
struct StatusTraits {
  static bool failed(const T&) { return false; }
  static absl::Status status(const T&) { return absl::OkStatus(); }
};
template <>
struct StatusTraits<absl::Status> {
  static bool failed(const absl::Status& s) { return !s.ok(); }
  static absl::Status status(const absl::Status& s) { return s; }
};
template <typename U>
struct StatusTraits<absl::StatusOr<U>> {
  static bool failed(const absl::StatusOr<U>& s) { return !s.ok(); }
  static absl::Status status(const absl::StatusOr<U>& s) { return s.status(); }
};

// Turns a returned value into an outcome: a non-OK Status/StatusOr becomes Err.
template <typename T>
Outcome<T> outcome_from_value(T&& value) {
  if (StatusTraits<T>::failed(value)) return Outcome<T>::Err(StatusTraits<T>::status(value));
  return Outcome<T>::Ok(std::forward<T>(value));
}

// A cheap early refusal (capability, region no longer Open) before anything is allocated.
absl::Status precheck_spawn(Cx& parent);
// True when `region` is Open (spawn's fast path; precheck_spawn gives the refusal otherwise).
bool region_open(const Region& region);
// Admits `child` into the region and schedules it, atomically with the region's admission
// checks (SPEC 3.2, 3.7). On refusal returns false with the reason in `refusal`, and nothing
// was registered (a bool, so that the common path destroys no Status).
bool register_spawned(Cx& parent, TaskRecord& child, absl::Status& refusal);

template <typename F, typename T>
class SpawnedTask;

// The Cx of a spawned task lives in its record.
template <typename F, typename T>
Cx& spawned_cx(SpawnedTask<F, T>& task);

}  // namespace internal

// Scoped shield (SPEC 4.4): while alive, cancellation points of the task return normally.
class [[nodiscard]] ShieldGuard {
 public:
  ShieldGuard(ShieldGuard&& other) noexcept : task_(std::exchange(other.task_, nullptr)) {}
  ShieldGuard& operator=(ShieldGuard&&) = delete;
  ~ShieldGuard() {
    if (task_ != nullptr) {
      std::lock_guard<internal::SpinLock> guard(task_->lock);
      task_->cancel.pop_shield();
    }
  }

 private:
  friend class Cx;
  explicit ShieldGuard(internal::TaskRecord* task) : task_(task) {}
  internal::TaskRecord* task_;
};

class Cx {
 public:
  Cx() = default;
  Cx(const Cx&) = default;
  Cx& operator=(const Cx&) = default;

  TaskId task_id() const { return task_->id; }
  RegionId region_id() const;
  const std::string& task_name() const { return task_->name; }
  // The context's budget (SPEC 1.2), unpacked from its compact form.
  Budget budget() const {
    Budget budget;
    if ((budget_flags_ & kHasDeadline) != 0) {
      budget.deadline = Time::FromNanoseconds(deadline_nanos_);
    }
    if ((budget_flags_ & kHasCostQuota) != 0) budget.cost_quota = cost_quota_;
    budget.poll_quota = poll_quota_;
    budget.priority = priority_;
    return budget;
  }
  Capabilities capabilities() const { return caps_; }

  // True if a cancel request is pending for this context (shielded or not).
  bool cancel_requested() const;
  // The pending request in full (kind, origin, time, message, cause chain), if any. The
  // kCancelled status a cancellation point returns carries only its kind and message.
  std::optional<CancelReason> cancel_reason() const;

  // A context with at most `capabilities` (SPEC 2.4): attenuation only narrows.
  Cx restrict(Capabilities capabilities) const {
    Cx narrowed = *this;
    narrowed.caps_ = caps_.intersect(capabilities);
    return narrowed;
  }

  // Fails with PermissionDenied naming `capability` when this context lacks it.
  absl::Status require(Capability capability) const;

  // Starts `fn(child_cx)` as a new task in this context's region (SPEC 2.1, 2.2). `fn` is taken
  // by value and kept alive until the task is done, so a coroutine lambda's captures stay
  // valid. Fails with PermissionDenied without the Spawn capability, with RegionClosed (see
  // is_region_closed) when the region no longer admits work (SPEC 3.2), and with
  // ResourceExhausted over the region's admission limit (SPEC 3.7). `name` is copied into the
  // task's record (a view, so that spawning with a literal builds no temporary string). The
  // record, the callable and the root frame are one allocation when `fn` is the coroutine it
  // returns (a coroutine lambda or function object; core/README.md); a callable that returns
  // another function's coroutine works too, with its frame allocated apart.
  template <typename F>
  auto spawn(std::string_view name, F fn, const SpawnOptions& options = {},
             SourceSite site = SourceSite::current())
      -> absl::StatusOr<TaskHandle<typename std::invoke_result_t<F&, Cx&>::value_type>>;

  // Explicit cancellation point (SPEC 2.5); also enforces this task's budget: a passed deadline
  // requests a Deadline cancel, a spent poll quota a PollQuota cancel. Never suspends.
  auto checkpoint() { return CheckpointAwaiter{this}; }
  // Lets other ready work run, then continues; a cancellation point.
  auto yield() { return YieldAwaiter{this}; }
  // Sleeps for `duration` / until `deadline` (Time capability); a cancellation point whose
  // cancelled form removes the timer.
  auto sleep(Duration duration) { return SleepAwaiter(this, std::nullopt, duration); }
  auto sleep_until(Time deadline) { return SleepAwaiter(this, deadline, Duration::Zero()); }

  // The runtime's clock (Time capability).
  absl::StatusOr<Time> now() const;
  // 64 bits of entropy from the runtime (Random capability); deterministic in the lab.
  absl::StatusOr<uint64_t> random_u64() const;

  // Defers cancellation delivery while the guard lives (SPEC 4.4). FailedPrecondition beyond
  // depth 64.
  absl::StatusOr<ShieldGuard> shield();

  // Registers a finalizer of this context's region: runs exactly once, LIFO, when the region
  // reaches Finalizing, shielded (SPEC 3.6). FailedPrecondition once the region is finalizing.
  absl::Status defer(std::function<void()> finalizer);
  absl::Status defer_async(std::function<Task<void>(Cx&)> finalizer);

  // Requests cancellation of this context's region (SPEC 4.1, 4.7), with kind `kind` and a
  // cleanup budget met with the kind's default.
  void cancel_region(std::string message, Budget cleanup = Budget::Infinite(),
                     CancelKind kind = CancelKind::kUser);

  Region& region() const { return *region_; }

  // For core internals and executors.
  internal::TaskRecord& task_record() const { return *task_; }
  Cx for_region(Region& region, const Budget& requested) const;
  Cx(internal::TaskRecord* task, Region* region, Capabilities caps, Budget budget)
      : task_(task), region_(region), caps_(caps) {
    set_budget(budget);
  }

  struct CheckpointAwaiter {
    Cx* cx;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    absl::Status await_resume() const { return cx->poll_cancel(); }
  };

  struct YieldAwaiter {
    Cx* cx;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle);
    absl::Status await_resume() const { return cx->poll_cancel(); }
  };

  class SleepAwaiter final : public internal::WaitNode, public TimerNode {
   public:
    SleepAwaiter(Cx* cx, std::optional<Time> deadline, Duration duration);
    SleepAwaiter(const SleepAwaiter&) = delete;
    ~SleepAwaiter();
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle);
    absl::Status await_resume();
    void interrupt() override;
    void fire() override;

   private:
    Cx* cx_;
    // sleep(duration) keeps the duration until it suspends; sleep_until(deadline) stores its
    // deadline in the TimerNode at once (the frame of a sleeping task holds one, not both).
    Duration duration_;
    absl::Status early_;
    bool relative_;
    bool cancelled_ = false;
  };

  // Delivers a pending request: acknowledges it and returns its kCancelled status; checks the
  // budget first. OkStatus when nothing is deliverable.
  //
  // Every cancellation point calls it, so the common case is inline: no request for the task,
  // the budget not exhausted (the clock is read only when a deadline is set) and the context
  // scoped to the task's own region (a region-body context also checks its region's request,
  // out of line: Region is incomplete here). Anything else takes the out-of-line path, which
  // makes budget exhaustion a request and delivers.
  absl::Status poll_cancel() {
    const internal::TaskRecord& task = *task_;
    if (region_ == task.region && task.polls <= poll_quota_ &&
        !task.cancel_requested.load(std::memory_order_acquire) &&
        ((budget_flags_ & kHasDeadline) == 0 ||
         task.executor->now() < Time::FromNanoseconds(deadline_nanos_))) {
      return absl::OkStatus();
    }
    return poll_cancel_out_of_line();
  }

 private:
  absl::Status poll_cancel_out_of_line();

  void set_budget(const Budget& budget) {
    budget_flags_ = 0;
    deadline_nanos_ = 0;
    cost_quota_ = 0;
    if (budget.deadline.has_value()) {
      budget_flags_ |= kHasDeadline;
      deadline_nanos_ = budget.deadline->nanoseconds();
    }
    if (budget.cost_quota.has_value()) {
      budget_flags_ |= kHasCostQuota;
      cost_quota_ = *budget.cost_quota;
    }
    poll_quota_ = budget.poll_quota;
    priority_ = budget.priority;
  }

  static constexpr uint8_t kHasDeadline = 1;
  static constexpr uint8_t kHasCostQuota = 2;

  internal::TaskRecord* task_ = nullptr;
  Region* region_ = nullptr;
  // The budget, packed (24 bytes instead of a Budget's 40: a Cx is part of every spawned task's
  // record). The deadline and cost quota count only when their flag is set.
  int64_t deadline_nanos_ = 0;
  uint64_t cost_quota_ = 0;
  uint32_t poll_quota_ = Budget::kUnlimitedPolls;
  uint8_t priority_ = 0;
  uint8_t budget_flags_ = 0;
  Capabilities caps_ = Capabilities::All();
};

// The compile-time narrowed view of a context: members needing a capability outside kCaps do
// not exist, so misuse does not compile (SPEC 2.4). The runtime check still applies to the
// underlying context, which is restricted to kCaps as well.
template <uint8_t kCaps>
class CxView {
 public:
  explicit CxView(const Cx& cx) : cx_(cx.restrict(Capabilities(kCaps))) {}

  static constexpr bool allows(Capability capability) {
    return (kCaps & static_cast<uint8_t>(capability)) != 0;
  }

  template <typename F>
  requires(allows(Capability::kSpawn)) auto spawn(std::string_view name, F fn,
                                                  const SpawnOptions& options = {},
                                                  SourceSite site = SourceSite::current()) {
    return cx_.spawn(name, std::move(fn), options, site);
  }
  auto sleep(Duration duration) requires(allows(Capability::kTime)) { return cx_.sleep(duration); }
  auto now() const requires(allows(Capability::kTime)) { return cx_.now(); }
  auto random_u64() const requires(allows(Capability::kRandom)) { return cx_.random_u64(); }
  auto checkpoint() { return cx_.checkpoint(); }
  auto yield() { return cx_.yield(); }

  // The restricted runtime context, for APIs taking Cx&.
  Cx& cx() { return cx_; }

 private:
  Cx cx_;
};

template <Capability... kCapabilities>
using CxWith = CxView<(static_cast<uint8_t>(kCapabilities) | ... | 0)>;

namespace internal {

template <typename F, typename T>
class SpawnedTask final : public TypedTaskRecord<T> {
 public:
  SpawnedTask(F fn, std::string_view name) : TypedTaskRecord<T>(name), fn(std::move(fn)) {}

  // The record's block: the record, then (at kFrameOffset) the area reserved for the root
  // frame, sized by the frame the last spawn of this callable type asked for (a coroutine's
  // frame size is fixed per function; the first spawn of a type learns it).
  static constexpr std::size_t kFrameOffset = (sizeof(SpawnedTask) + 15) / 16 * 16;
  static inline std::atomic<uint32_t> frame_size_hint{0};
  // A block is at most this large (TaskRecord::block_units is 16 bits); a larger frame is
  // allocated apart.
  static constexpr std::size_t kMaxBlockSize = std::size_t{0xffff} * 16;

  bool capture_outcome() override {
    auto handle = std::coroutine_handle<TaskPromise<T>>::from_address(this->root.address());
    TaskPromise<T>& promise = handle.promise();
    if (promise.exception) {
      try {
        std::rethrow_exception(promise.exception);
      } catch (...) {
        this->outcome.emplace(Outcome<T>::Panicked(PanicInfo::from_current_exception()));
      }
    } else if constexpr (std::is_void_v<T>) {
      this->outcome.set_ok();
    } else {
      T value = promise.take_value();
      if (StatusTraits<T>::failed(value)) {
        this->outcome.emplace(Outcome<T>::Err(StatusTraits<T>::status(value)));
      } else {
        this->outcome.set_ok(std::move(value));
      }
    }
    // SPEC 4.6: finishing after a delivered request is recorded as Cancelled. Only a requested
    // cancel can have been acknowledged, and the flag is set (never cleared) before the request
    // is visible, so a task never cancelled skips the lock.
    if (!this->cancel_requested.load(std::memory_order_acquire)) return this->outcome.ok();
    std::optional<CancelReason> acknowledged;
    {
      std::lock_guard<internal::SpinLock> guard(this->lock);
      if (this->cancel.acknowledged()) acknowledged = this->cancel.reason();
    }
    if (acknowledged.has_value() && (this->outcome.ok() || this->outcome.is_err())) {
      this->outcome.emplace(Outcome<T>::Cancelled(*acknowledged));
    }
    return this->outcome.ok();
  }

  [[no_unique_address]] F fn;
  Cx cx;

 protected:
  void destroy_self() override {
    const std::size_t size = std::size_t{this->block_units} * 16;
    this->~SpawnedTask();
    deallocate_block(this, size);
  }
};

template <typename F, typename T>
Cx& spawned_cx(SpawnedTask<F, T>& task) {
  return task.cx;
}

}  // namespace internal

// Handle to a spawned task (SPEC 2.2). Destroying it neither cancels nor detaches the task: its
// region owns the task and waits for it. Move-only; a moved-from handle is invalid.
//
// Thread-safety: use from tasks of the same runtime.
// Cancellation contract: join() is a cancellation point; a cancelled join returns Cancelled
// (the waiter's reason), consumes nothing (the outcome stays for a later join) and leaves no
// waiter behind. cancel() cancels this task only.
template <typename T>
class TaskHandle {
 public:
  TaskHandle() = default;
  explicit TaskHandle(internal::TypedTaskRecord<T>* record) : record_(record) {
    record_->add_ref();
  }
  // Takes over a reference the caller already holds (spawn counts it in the record's initial
  // reference count instead of adding it atomically).
  TaskHandle(internal::TypedTaskRecord<T>* record, internal::AdoptReference) : record_(record) {}
  TaskHandle(TaskHandle&& other) noexcept : record_(std::exchange(other.record_, nullptr)) {}
  TaskHandle& operator=(TaskHandle&& other) noexcept {
    if (this != &other) {
      reset();
      record_ = std::exchange(other.record_, nullptr);
    }
    return *this;
  }
  TaskHandle(const TaskHandle&) = delete;
  TaskHandle& operator=(const TaskHandle&) = delete;
  ~TaskHandle() { reset(); }

  bool valid() const { return record_ != nullptr; }
  TaskId id() const { return record_ ? record_->id : TaskId(); }
  bool finished() const { return record_ != nullptr && record_->completed(); }
  // True when the task was destroyed by escalation after its cleanup budget ran out (4.5).
  bool budget_exhausted() const {
    return record_ != nullptr && record_->budget_exhausted.load(std::memory_order_relaxed);
  }

  // The outcome, if the task finished and no join took it yet; never waits.
  std::optional<Outcome<T>> try_take() {
    if (!finished() || record_->outcome_taken || !record_->outcome.has_value()) {
      return std::nullopt;
    }
    record_->outcome_taken = true;
    return record_->outcome.take();
  }

  // For executors and the lab.
  internal::TaskRecord& runtime_record() const { return *record_; }

  // Requests cancellation of this task only (SPEC 2.2, 4.1). No-op once it finished (4.6).
  void cancel(std::string message = "cancelled through its handle",
              Budget cleanup = Budget::Infinite(), CancelKind kind = CancelKind::kUser);

  class JoinAwaiter final : public internal::JoinWaiterBase {
   public:
    JoinAwaiter(Cx& cx, internal::TypedTaskRecord<T>* target) : cx_(&cx), target_(target) {
      what = "join";
      scope = &cx.region();
    }
    JoinAwaiter(const JoinAwaiter&) = delete;
    ~JoinAwaiter() { unlink_from_target(); }
    bool await_ready() const noexcept { return target_ == nullptr || target_->completed(); }
    bool await_suspend(std::coroutine_handle<> handle) {
      early_ = cx_->poll_cancel();
      if (!early_.ok()) return false;
      internal::begin_wait(cx_->task_record(), *this);
      may_be_linked_ = true;
      {
        std::lock_guard<internal::SpinLock> guard(target_->lock);
        if (target_->completed()) return false;
        link(*target_);
      }
      if (internal::park(*this, handle)) return true;
      // Not parked: the target finished in between (then it is complete), or a cancel is
      // deliverable (await_resume reports it; the outcome stays for a later join).
      unlink_from_target();
      cancelled_ = !target_->completed();
      return false;
    }
    Outcome<T> await_resume() {
      // The common case inline: a valid handle, not cancelled, the outcome not taken yet. The
      // lab orders this join against the target's completion and other joins (a join that found
      // the target finished never parked, so no wake tells the lab about it).
      if (target_ != nullptr && !cancelled_ && early_.ok() && !target_->outcome_taken) [[likely]] {
        target_->executor->on_runtime_event(RuntimeEvent::kJoinCompleted, target_, nullptr);
        target_->outcome_taken = true;
        return target_->outcome.take();
      }
      return resume_otherwise();
    }
    void interrupt() override {
      unlink_from_target();
      cancelled_ = true;
    }

   private:
    // await_resume's other cases (invalid handle, cancelled, outcome taken): out of line, so the
    // common path builds no strings.
    [[gnu::noinline]] Outcome<T> resume_otherwise() {
      if (target_ == nullptr) {
        return Outcome<T>::Err(absl::FailedPreconditionError("join on an invalid TaskHandle"));
      }
      target_->executor->on_runtime_event(RuntimeEvent::kJoinCompleted, target_, nullptr);
      if (cancelled_ || !early_.ok()) {
        absl::Status status = cancelled_ ? cx_->poll_cancel() : early_;
        return Outcome<T>::Cancelled(cancel_reason_of(status));
      }
      if (target_->outcome_taken) {
        return Outcome<T>::Err(absl::FailedPreconditionError(
            "TaskHandle::join: the outcome of task '" + target_->name +
            "' was already taken by an earlier join"));
      }
      target_->outcome_taken = true;
      return target_->outcome.take();
    }

    void unlink_from_target() {
      // A join that found the target finished never linked: no lock to take.
      if (target_ == nullptr || !may_be_linked_) return;
      std::lock_guard<internal::SpinLock> guard(target_->lock);
      unlink(*target_);
    }

    CancelReason cancel_reason_of(const absl::Status&) const {
      internal::TaskRecord& task = cx_->task_record();
      std::optional<CancelReason> reason = internal::deliverable_cancel(task, &cx_->region());
      if (reason.has_value()) return *reason;
      {
        std::lock_guard<internal::SpinLock> guard(task.lock);
        if (task.cancel.requested()) return task.cancel.reason();
      }
      return CancelReason(CancelKind::kUser, cx_->region_id(), task.id, Time::Epoch(),
                          "join cancelled");
    }

    Cx* cx_;
    internal::TypedTaskRecord<T>* target_;
    absl::Status early_;
    bool cancelled_ = false;
    // Set (by the waiting task only) before the node is first linked into the target.
    bool may_be_linked_ = false;
  };

  // Waits for the task and yields its Outcome (SPEC 2.2). The first join takes the outcome;
  // a later one gets Err(FailedPrecondition).
  JoinAwaiter join(Cx& cx) { return JoinAwaiter(cx, record_); }

 private:
  void reset() {
    if (record_ != nullptr) record_->release();
    record_ = nullptr;
  }

  internal::TypedTaskRecord<T>* record_ = nullptr;
};

namespace internal {
void cancel_task_from_handle(TaskRecord& task, std::string message, Budget cleanup,
                             CancelKind kind);
}  // namespace internal

template <typename T>
void TaskHandle<T>::cancel(std::string message, Budget cleanup, CancelKind kind) {
  if (record_ != nullptr) {
    internal::cancel_task_from_handle(*record_, std::move(message), cleanup, kind);
  }
}

template <typename F>
auto Cx::spawn(std::string_view name, F fn, const SpawnOptions& options, SourceSite site)
    -> absl::StatusOr<TaskHandle<typename std::invoke_result_t<F&, Cx&>::value_type>> {
  using TaskType = std::invoke_result_t<F&, Cx&>;
  static_assert(internal::IsTask<TaskType>::value,
                "cx.spawn: the callable must take Cx& and return Task<T>");
  using T = typename TaskType::value_type;
  // The common case (allowed, region Open) builds no Status.
  if (!caps_.has(Capability::kSpawn) || !internal::region_open(*region_)) [[unlikely]] {
    if (absl::Status refused = internal::precheck_spawn(*this); !refused.ok()) return refused;
  }
  // One allocation: the record, with the root frame's area after it (see SpawnedTask).
  using Record = internal::SpawnedTask<F, T>;
  static_assert(alignof(Record) <= 16, "cx.spawn: over-aligned callables are not supported");
  static_assert(Record::kFrameOffset <= Record::kMaxBlockSize, "cx.spawn: callable too large");
  uint32_t frame_capacity = (Record::frame_size_hint.load(std::memory_order_relaxed) + 15) & ~15u;
  if (Record::kFrameOffset + frame_capacity > Record::kMaxBlockSize) frame_capacity = 0;
  const std::size_t block_size = Record::kFrameOffset + frame_capacity;
  void* block = internal::allocate_block(block_size);
  Record* record;
  try {
    record = new (block) Record(std::move(fn), name);
  } catch (...) {
    internal::deallocate_block(block, block_size);
    throw;
  }
  record->block_units = static_cast<uint16_t>(block_size / 16);
  char* const frame_area = static_cast<char*>(block) + Record::kFrameOffset;
  // Most spawns pass no budget of their own: the child then inherits this one as it is.
  const Budget& own = options.budget;
  const bool inherits_budget = !own.deadline.has_value() &&
                               own.poll_quota == Budget::kUnlimitedPolls &&
                               !own.cost_quota.has_value() && own.priority == 0;
  // The packed budget is copied as it is when inherited.
  Cx& child_cx = record->cx;
  child_cx = *this;
  child_cx.task_ = record;
  child_cx.caps_ = caps_.intersect(options.capabilities);
  if (!inherits_budget) child_cx.set_budget(meet(budget(), own));
  record->spawn_site = site;
  TaskType task;
  uint32_t frame_size;
  try {
    internal::FrameReservation reservation(frame_area, frame_capacity, &record->fn);
    task = std::invoke(record->fn, record->cx);
    frame_size = reservation.requested();
  } catch (...) {
    // The callable threw before producing a coroutine: nothing was started.
    record->release();  // the only reference: frees the block
    throw;
  }
  if (frame_size > frame_capacity) {
    Record::frame_size_hint.store(frame_size, std::memory_order_relaxed);
  }
  record->root = task.release();
  record->frame_in_block = record->root.address() == frame_area;
  if (frame_size != 0 && frame_size <= frame_capacity && !record->frame_in_block) {
    internal::invariant_violated(
        "cx.spawn: the callable's own coroutine frame is not the task it returned (a callable "
        "must return the coroutine it creates with (itself, cx), not wrap it)");
  }
  std::coroutine_handle<internal::TaskPromise<T>>::from_address(record->root.address())
      .promise()
      .set_record(record);
  record->resume_point = record->root;
  // The handle's reference is taken before the task is scheduled: it may run and finish on
  // another worker at once, releasing the region's reference. Nothing else can see the record
  // yet, so both references are counted with a plain store.
  record->refs.store(2, std::memory_order_relaxed);
  TaskHandle<T> handle(record, internal::AdoptReference{});
  absl::Status refusal;
  if (!internal::register_spawned(*this, *record, refusal)) [[unlikely]] {
    // Refused (the region closed meanwhile, or its limit): the frame never ran.
    internal::destroy_root_frame(*record);
    handle = TaskHandle<T>();
    record->release();  // the region's reference, never handed over: frees the record
    return refusal;
  }
  return handle;
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_CX_H_
