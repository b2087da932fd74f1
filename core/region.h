// Region: the unit of structured concurrency (SPEC 3).
//
// Every task lives in exactly one region and regions form a tree rooted at the runtime's root
// region. `co_await Region::open(cx, name, body)` creates a child region of `cx`'s region, runs
// `body(region_cx)` in the calling task, and completes only when the region is Closed: every
// task spawned into it finished, every obligation of its ledger resolved, every finalizer ran.
//
//   Open → Closing → Draining → Finalizing → Closed          (SPEC 3.2)
//
// Open admits spawns, child regions and obligations; the body returning (or a cancel) moves
// the region to Closing, where it admits nothing new; Draining waits for its children;
// Finalizing runs the finalizers LIFO, shielded; Closed implies quiescence (SPEC 3.3).
//
// Outcome: the body's outcome joined (SPEC 1.3) with the children's. On Ok the region waits for
// its children to finish on their own, or cancels them when opened with
// `cancel_children_on_exit` (SPEC 3.4); on Err, Cancelled or a throw it cancels them. Children
// cancelled by the region's own decision (FailFast, exit) do not make it Cancelled; a child's
// Err or Panicked always counts. Under FailFast (default) a child's Err or Panicked cancels its
// siblings and the body; under CollectAll the others keep going (SPEC 3.5). Under the kPanic
// leak policy a leaked obligation makes the outcome Panicked with the leak report (SPEC 5.3).
//
// Thread-safety: thread-safe. Tasks of the region may spawn, finish and cancel concurrently on
// several workers; a lock per region (a spin lock) guards its lists and state (lock order:
// parent before child, region before task).
// Lifetime: a Region is reference counted. The frame of its Region::open call holds one
// reference and outlives every task of the region by construction; a canceller holds one for
// the duration of a cancel() call. A closed region is detached from its parent.
// Cancellation contract: waiting for the region to close is not interruptible: a cancel request
// reaching the task that waits cancels the region (its tasks get ParentCancelled) and the wait
// goes on, so a region is never abandoned (no orphans, SPEC 1). A task parked there is never
// destroyed by escalation while the region is live; the region's own tasks are.

#ifndef ASUPERSYNC_CORE_REGION_H_
#define ASUPERSYNC_CORE_REGION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "cancel/cancel_state.h"
#include "core/cx.h"
#include "core/id.h"
#include "core/internal/spin_lock.h"
#include "core/outcome.h"
#include "core/task.h"
#include "obligations/ledger.h"

namespace asupersync {

enum class RegionState : uint8_t { kOpen, kClosing, kDraining, kFinalizing, kClosed };
std::string_view region_state_name(RegionState state);

enum class FailurePolicy : uint8_t { kFailFast, kCollectAll };

struct RegionOptions {
  // SPEC 3.4: on Ok, cancel the remaining children (ParentCancelled) instead of waiting.
  bool cancel_children_on_exit = false;
  FailurePolicy failure_policy = FailurePolicy::kFailFast;
  EscalationPolicy escalation = EscalationPolicy::kDestroy;
  // Unset: the runtime's default (kPanic in the lab, kLog in production).
  std::optional<LeakPolicy> leak_policy;
  // Admission limits (SPEC 3.7); over a limit the request fails with ResourceExhausted.
  std::optional<size_t> max_tasks;
  std::optional<size_t> max_child_regions;
  std::optional<size_t> max_obligations;
  // The body's budget is meet(caller's, budget).
  Budget budget = Budget::Infinite();
};

// Snapshot of a region's counts, for tests and oracles.
struct RegionStats {
  size_t live_tasks = 0;
  size_t open_child_regions = 0;
  size_t pending_obligations = 0;
  size_t pending_finalizers = 0;
  size_t finalizers_run = 0;
  size_t tasks_spawned = 0;
};

class Region;

// An owning reference to a Region (intrusive reference count).
class RegionRef {
 public:
  RegionRef() = default;
  explicit RegionRef(Region* region) : region_(region) {}  // adopts one reference
  RegionRef(RegionRef&& other) noexcept : region_(std::exchange(other.region_, nullptr)) {}
  RegionRef& operator=(RegionRef&& other) noexcept;
  RegionRef(const RegionRef&) = delete;
  RegionRef& operator=(const RegionRef&) = delete;
  ~RegionRef() { reset(); }

  Region* get() const { return region_; }
  Region* operator->() const { return region_; }
  Region& operator*() const { return *region_; }
  explicit operator bool() const { return region_ != nullptr; }
  void reset();

 private:
  Region* region_ = nullptr;
};

class Region {
 public:
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // SPEC 3.1. `body` is taken by value and lives until the region closes. Yields the region's
  // outcome (see the file comment). Fails with Err(RegionClosed) when the caller's region does
  // not admit child regions and Err(ResourceExhausted) over its limit.
  template <typename F>
  static auto open(Cx& cx, std::string name, F&& body, RegionOptions options = {})
      -> Task<Outcome<typename std::invoke_result_t<std::decay_t<F>&, Cx&>::value_type>>;

  RegionId id() const { return id_; }
  const std::string& name() const { return name_; }
  RegionState state() const { return state_.load(std::memory_order_acquire); }
  Region* parent() const { return parent_; }
  bool quiescent() const;
  // Quiescent, with no finalizer left to run and not finalizing: destroying the frame of the
  // task that runs its body loses nothing (escalation, SPEC 4.5).
  bool abandonable() const;
  RegionStats stats() const;
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_acquire); }
  // The (strengthened) request; meaningful once cancel_requested().
  CancelReason cancel_reason() const;
  // cancelled_status(cancel_reason()), formatted once per reason and shared by its tasks.
  absl::Status cancelled_status() const;
  ObligationLedger& ledger() { return ledger_; }
  Executor& executor() const { return *executor_; }
  EscalationPolicy escalation_policy() const { return options_.escalation; }
  Region* enclosing_body_region() const { return enclosing_body_region_; }

  // Requests cancellation of this region and its subtree (SPEC 4.1): Open → Closing; every live
  // task gets a request; descendant regions get ParentCancelled caused by `reason`.
  void cancel(const CancelReason& reason, const Budget& cleanup);

  // The region tree from here down as indented text (SPEC 12.1).
  std::string dump() const;

  // --- Runtime internals (core and executors) -------------------------------------------------
  static RegionRef create_root(Executor& executor, RegionOptions options,
                               LeakPolicy default_leak_policy);
  void add_ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release();
  // Admits `task` (SPEC 3.2, 3.7) and links it into the region, under one lock; with a null
  // task only reports whether a spawn would be admitted now.
  absl::Status admit_task(internal::TaskRecord* task);
  // `outcome` is the task's outcome summary, taken before it was published to joiners, or null
  // for Ok.
  void on_task_finished(internal::TaskRecord& task, Outcome<void>* outcome);
  absl::Status add_finalizer(std::function<void()> sync_finalizer,
                             std::function<Task<void>(Cx&)> async_finalizer);
  // Snapshots for the lab and tests (each task in the list with a reference taken: release
  // them when done).
  std::vector<internal::TaskRecord*> live_tasks_referenced() const;
  std::vector<Region*> children_snapshot() const;
  size_t live_task_count() const;

 private:
  // A spin lock rather than std::mutex: every spawn and every task completion takes it once, for
  // a few stores, and unlocking a spin lock is a plain store where a mutex needs a second atomic
  // read-modify-write. The long holders (a cancel walking the task list) are rare; a waiter
  // yields the CPU after a few spins (SpinLock).
  using RegionMutex = internal::SpinLock;

  struct Finalizer {
    std::function<void()> sync;
    std::function<Task<void>(Cx&)> async;
  };
  class CloseAwaiter;

  // The name and options are taken by reference: open() passes them down twice per region.
  Region(Executor& executor, Region* parent, std::string&& name, const RegionOptions& options,
         LeakPolicy leak_policy);
  ~Region();  // by release()
  static absl::StatusOr<RegionRef> create_child(Cx& cx, std::string&& name,
                                                const RegionOptions& options);
  // Keeps the task's body-region chain (TaskRecord::body_region) up to date: the region is in
  // it from begin_body until close() or abandon(), so a cancel of the task reaches it.
  void begin_body(internal::TaskRecord& task);
  // The body finished with `kind`: decide whether to cancel the children (SPEC 3.4).
  void end_body(OutcomeKind kind);
  CloseAwaiter wait_for_children(Cx& cx);
  // Open → ... → Finalizing (SPEC 3.6); returns whether finalizers are registered. From here
  // on add_finalizer refuses, so the list is final: with none, run_finalizers (a coroutine,
  // shielded) is skipped.
  bool begin_finalizing();
  // Runs the finalizers LIFO, shielded (after begin_finalizing).
  Task<void> run_finalizers(Cx& cx);
  // Closed: checks quiescence, detaches from the parent, returns the children's joined outcome
  // (and leaks under kPanic).
  Outcome<void> close();
  // The Region::open frame is being destroyed before close() (escalation of a quiescent
  // region's body task): detach like close() does.
  void abandon();
  void leave_body_chain();
  void detach_from_parent();
  void cancel_locked(const CancelReason& reason, const Budget& cleanup,
                     std::unique_lock<RegionMutex>& lock);
  void cancel_internal_locked(CancelKind kind, std::string message,
                              std::unique_lock<RegionMutex>& lock);
  bool quiescent_locked() const;
  // The slow paths of admit_task and on_task_finished, out of line so that the common paths
  // (admitted; finished Ok) build no strings and stay small. Both require the lock.
  absl::Status admission_refusal_locked() const;
  void record_task_failure_locked(internal::TaskRecord& task, Outcome<void>& outcome,
                                  std::unique_lock<RegionMutex>& lock);
  // Wakes the task waiting in wait_for_children once the region is quiescent.
  void maybe_wake_closer();
  internal::WakeToken take_closer_if_quiescent_locked();
  void dump_into(std::string& out, int depth) const;

  // The body as open_impl holds it. A body with a destructor is moved to the heap before the
  // coroutine starts: GCC 12 destroys temporaries of a co_await full-expression twice (GCC PR
  // 101367), so such a lambda passed by value straight into a coroutine parameter would be
  // destroyed twice. A trivially destructible body (a lambda capturing references and scalars,
  // the common case) is unaffected by a second no-op destruction and is held by value, which
  // saves an allocation per region.
  template <typename F, bool kByValue = std::is_trivially_destructible_v<F>>
  struct BodyHolder {
    std::unique_ptr<F> body;
    explicit BodyHolder(F&& f) : body(std::make_unique<F>(std::move(f))) {}
    explicit BodyHolder(const F& f) : body(std::make_unique<F>(f)) {}
    F& get() { return *body; }
  };
  template <typename F>
  struct BodyHolder<F, true> {
    F body;
    explicit BodyHolder(F&& f) : body(std::move(f)) {}
    explicit BodyHolder(const F& f) : body(f) {}
    F& get() { return body; }
  };

  // The coroutine behind open().
  template <typename F>
  static auto open_impl(Cx& cx, std::string name, BodyHolder<F> body, RegionOptions options)
      -> Task<Outcome<typename std::invoke_result_t<F&, Cx&>::value_type>>;

  template <typename T>
  static Outcome<T> join_children(Outcome<T> body, const Outcome<void>& children);

  // Constant after construction.
  Executor* executor_;
  Region* parent_;
  RegionId id_;
  std::string name_;
  RegionOptions options_;

  std::atomic<uint32_t> refs_{1};
  std::atomic<RegionState> state_{RegionState::kOpen};  // written under mutex_
  std::atomic<bool> cancel_requested_{false};           // written under mutex_
  ObligationLedger ledger_;                             // thread-safe by itself

  mutable RegionMutex mutex_;
  // Guarded by mutex_.
  internal::TaskRecord* tasks_head_ = nullptr;  // intrusive list through region_prev/next
  size_t live_tasks_ = 0;
  std::vector<Region*> children_;
  size_t admitted_ = 0;  // admitted spawns not yet finished (includes unstarted ones)
  size_t tasks_spawned_ = 0;
  std::vector<Finalizer> finalizers_;
  size_t finalizers_run_ = 0;
  bool cancelled_externally_ = false;
  CancelReason cancel_reason_;
  absl::Status cancel_status_;  // cancelled_status(cancel_reason_)
  Budget cleanup_budget_ = Budget::Infinite();
  Outcome<void> children_outcome_ = Outcome<void>::Ok();
  internal::TaskRecord* body_task_ = nullptr;
  class CloseAwaiter* closer_ = nullptr;

  // Set by begin_body; the chain is read under the body task's lock.
  internal::TaskRecord* chain_task_ = nullptr;
  Region* enclosing_body_region_ = nullptr;  // the body region the same task ran before this
  bool in_body_chain_ = false;
};

class Region::CloseAwaiter final : public internal::WaitNode {
 public:
  CloseAwaiter(Region* region, Cx* cx) : region_(region), cx_(cx) {
    what = "region close";
    interruptible = false;
    destroy_safe = false;
    scope = &cx->region();
  }
  CloseAwaiter(const CloseAwaiter&) = delete;
  ~CloseAwaiter();
  bool await_ready() const { return region_->quiescent(); }
  bool await_suspend(std::coroutine_handle<> handle);
  void await_resume() const {}
  void interrupt() override;

 private:
  Region* region_;
  Cx* cx_;
  // Set once await_suspend made it the region's closer: only then does the destructor need
  // the region's lock (an already quiescent region, the common case, never registers one).
  bool registered_ = false;
};

inline RegionRef& RegionRef::operator=(RegionRef&& other) noexcept {
  if (this != &other) {
    reset();
    region_ = std::exchange(other.region_, nullptr);
  }
  return *this;
}

inline void RegionRef::reset() {
  if (region_ != nullptr) std::exchange(region_, nullptr)->release();
}

template <typename T>
Outcome<T> Region::join_children(Outcome<T> body, const Outcome<void>& children) {
  if (children.ok()) return body;
  if (severity(children.kind()) > severity(body.kind())) {
    return children.template convert_error<T>();
  }
  if (children.is_cancelled() && body.is_cancelled()) {
    return Outcome<T>::Cancelled(strengthen(body.cancel_reason(), children.cancel_reason()));
  }
  return body;
}

template <typename F>
auto Region::open(Cx& cx, std::string name, F&& body, RegionOptions options)
    -> Task<Outcome<typename std::invoke_result_t<std::decay_t<F>&, Cx&>::value_type>> {
  return open_impl<std::decay_t<F>>(cx, std::move(name),
                                    BodyHolder<std::decay_t<F>>(std::forward<F>(body)), options);
}

template <typename F>
auto Region::open_impl(Cx& cx, std::string name, BodyHolder<F> body, RegionOptions options)
    -> Task<Outcome<typename std::invoke_result_t<F&, Cx&>::value_type>> {
  using TaskType = std::invoke_result_t<F&, Cx&>;
  static_assert(internal::IsTask<TaskType>::value,
                "Region::open: the body must take Cx& and return Task<T>");
  using T = typename TaskType::value_type;

  absl::StatusOr<RegionRef> created = create_child(cx, std::move(name), options);
  if (!created.ok()) co_return Outcome<T>::Err(created.status());
  RegionRef region = std::move(created).value();
  Cx body_cx = cx.for_region(*region, options.budget);

  // Detaches the region if this frame is destroyed before the region closed (escalation).
  struct AbandonGuard {
    Region* region;
    ~AbandonGuard() {
      if (region->state() != RegionState::kClosed) region->abandon();
    }
  } abandon_guard{region.get()};
  region->begin_body(cx.task_record());
  std::optional<Outcome<T>> body_outcome;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await body.get()(body_cx);
      body_outcome.emplace(Outcome<void>::Ok());
    } else {
      body_outcome.emplace(internal::outcome_from_value<T>(co_await body.get()(body_cx)));
    }
  } catch (...) {
    body_outcome.emplace(Outcome<T>::Panicked(PanicInfo::from_current_exception()));
  }
  region->end_body(body_outcome->kind());
  co_await region->wait_for_children(cx);
  if (region->begin_finalizing()) co_await region->run_finalizers(body_cx);
  Outcome<void> children = region->close();
  if (children.ok()) co_return std::move(*body_outcome);  // the common case: no join to make
  co_return join_children<T>(std::move(*body_outcome), children);
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_REGION_H_
