#include "core/region.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace asupersync {
namespace {

[[noreturn]] void invariant_violated(const std::string& what) {
  internal::invariant_violated(what.c_str());
}

using TaskGuard = std::lock_guard<internal::SpinLock>;

// Tells the executor what a step did to `region` (RuntimeEvent; the lab records it).
void report(Region& region, RuntimeEvent event, internal::TaskRecord* task = nullptr) {
  region.executor().on_runtime_event(event, task, &region);
}

// Out of line: on_task_finished then builds no strings on its common path.
[[noreturn, gnu::cold, gnu::noinline]] void task_not_in_region(const internal::TaskRecord& task,
                                                               const Region& region) {
  invariant_violated("finished task '" + task.name + "' not in its region '" + region.name() + "'");
}

}  // namespace

std::string_view region_state_name(RegionState state) {
  switch (state) {
    case RegionState::kOpen:
      return "Open";
    case RegionState::kClosing:
      return "Closing";
    case RegionState::kDraining:
      return "Draining";
    case RegionState::kFinalizing:
      return "Finalizing";
    case RegionState::kClosed:
      return "Closed";
  }
  return "Unknown";
}

Region::Region(Executor& executor, Region* parent, std::string&& name, const RegionOptions& options,
               LeakPolicy leak_policy)
    : executor_(&executor),
      parent_(parent),
      id_(executor.allocate_region_index(), 1),
      name_(std::move(name)),
      options_(options),
      ledger_(id_, options.leak_policy.value_or(leak_policy), options.max_obligations,
              [this] { maybe_wake_closer(); }) {}

Region::~Region() {
  if (state() != RegionState::kClosed && live_tasks_ != 0) {
    invariant_violated("region '" + name_ + "' destroyed with live tasks");
  }
}

void Region::release() {
  const uint32_t previous = refs_.fetch_sub(1, std::memory_order_acq_rel);
  if (previous == 0) invariant_violated("region '" + name_ + "' released too often");
  if (previous == 1) delete this;
}

RegionRef Region::create_root(Executor& executor, RegionOptions options,
                              LeakPolicy default_leak_policy) {
  return RegionRef(
      new Region(executor, nullptr, std::string("root"), options, default_leak_policy));
}

absl::StatusOr<RegionRef> Region::create_child(Cx& cx, std::string&& name,
                                               const RegionOptions& options) {
  Region& parent = cx.region();
  report(parent, RuntimeEvent::kRegionStateRead);
  std::lock_guard<RegionMutex> lock(parent.mutex_);
  if (parent.state() != RegionState::kOpen) {
    return region_closed_error("Region::open('" + name + "'): parent region '" + parent.name_ +
                               "' is " + std::string(region_state_name(parent.state())) +
                               " and admits no child regions");
  }
  if (parent.options_.max_child_regions &&
      parent.children_.size() >= *parent.options_.max_child_regions) {
    return absl::ResourceExhaustedError("Region::open('" + name + "'): region '" + parent.name_ +
                                        "' already has " + std::to_string(parent.children_.size()) +
                                        " open child regions (max_child_regions)");
  }
  RegionRef child(
      new Region(*parent.executor_, &parent, std::move(name), options, parent.ledger_.policy()));
  parent.children_.push_back(child.get());
  return child;
}

bool Region::quiescent_locked() const {
  return live_tasks_ == 0 && admitted_ == 0 && children_.empty() && ledger_.pending() == 0;
}

bool Region::quiescent() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  return quiescent_locked();
}

bool Region::abandonable() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  return quiescent_locked() && finalizers_.empty() && state() != RegionState::kFinalizing;
}

RegionStats Region::stats() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  RegionStats stats;
  stats.live_tasks = live_tasks_;
  stats.open_child_regions = children_.size();
  stats.pending_obligations = ledger_.pending();
  stats.pending_finalizers = finalizers_.size();
  stats.finalizers_run = finalizers_run_;
  stats.tasks_spawned = tasks_spawned_;
  return stats;
}

CancelReason Region::cancel_reason() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  return cancel_reason_;
}

absl::Status Region::cancelled_status() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  return cancel_status_;
}

std::vector<internal::TaskRecord*> Region::live_tasks_referenced() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  std::vector<internal::TaskRecord*> tasks;
  tasks.reserve(live_tasks_);
  for (internal::TaskRecord* task = tasks_head_; task != nullptr; task = task->region_next) {
    task->add_ref();
    tasks.push_back(task);
  }
  return tasks;
}

std::vector<Region*> Region::children_snapshot() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  return children_;
}

size_t Region::live_task_count() const {
  std::lock_guard<RegionMutex> lock(mutex_);
  return live_tasks_;
}

absl::Status Region::admit_task(internal::TaskRecord* task) {
  report(*this, RuntimeEvent::kRegionStateRead);
  std::lock_guard<RegionMutex> lock(mutex_);
  if (state() != RegionState::kOpen || (options_.max_tasks && admitted_ >= *options_.max_tasks))
      [[unlikely]] {
    return admission_refusal_locked();
  }
  if (task == nullptr) return absl::OkStatus();
  ++admitted_;
  ++tasks_spawned_;
  ++live_tasks_;
  task->region_prev = nullptr;
  task->region_next = tasks_head_;
  if (tasks_head_ != nullptr) tasks_head_->region_prev = task;
  tasks_head_ = task;
  return absl::OkStatus();
}

[[gnu::cold, gnu::noinline]] absl::Status Region::admission_refusal_locked() const {
  if (state() != RegionState::kOpen) {
    return region_closed_error("spawn into region '" + name_ + "' refused: it is " +
                               std::string(region_state_name(state())));
  }
  return absl::ResourceExhaustedError("spawn into region '" + name_ + "' refused: it has " +
                                      std::to_string(admitted_) + " live tasks (max_tasks)");
}

void Region::on_task_finished(internal::TaskRecord& task, Outcome<void>* outcome) {
  internal::WakeToken closer;
  {
    std::unique_lock<RegionMutex> lock(mutex_);
    if (task.region_prev != nullptr) {
      task.region_prev->region_next = task.region_next;
    } else if (tasks_head_ == &task) {
      tasks_head_ = task.region_next;
    } else {
      task_not_in_region(task, *this);
    }
    if (task.region_next != nullptr) task.region_next->region_prev = task.region_prev;
    task.region_prev = task.region_next = nullptr;
    --live_tasks_;
    --admitted_;
    // An Ok outcome changes nothing: join(x, Ok) is x.
    if (outcome != nullptr && !outcome->ok()) [[unlikely]] {
      record_task_failure_locked(task, *outcome, lock);
    }
    if (closer_ != nullptr) closer = take_closer_if_quiescent_locked();
  }
  std::move(closer).wake(Lane::kReady);
}

[[gnu::noinline]] void Region::record_task_failure_locked(internal::TaskRecord& task,
                                                          Outcome<void>& outcome,
                                                          std::unique_lock<RegionMutex>& lock) {
  const bool failed = outcome.is_err() || outcome.is_panicked();
  // Children cancelled by this region's own decision do not make it Cancelled (file comment).
  const bool counts = !outcome.is_cancelled() || cancelled_externally_ || !cancel_requested();
  // The common case of a cancelled region: each task's Cancelled carries the region's shared
  // reason, and join would rebuild children_outcome_ with the reason it already has
  // (strengthen keeps the first on a tie), so it is skipped.
  const bool unchanged =
      counts && children_outcome_.is_cancelled() && outcome.is_cancelled() &&
      compare_strength(children_outcome_.cancel_reason(), outcome.cancel_reason()) >= 0;
  if (counts && !unchanged) {
    children_outcome_ = join(std::move(children_outcome_), std::move(outcome));
  }
  if (failed && options_.failure_policy == FailurePolicy::kFailFast) {
    cancel_internal_locked(CancelKind::kFailFast,
                           "task '" + task.name + "' failed; cancelling its siblings (FailFast)",
                           lock);
  }
}

absl::Status Region::add_finalizer(std::function<void()> sync_finalizer,
                                   std::function<Task<void>(Cx&)> async_finalizer) {
  {
    std::lock_guard<RegionMutex> lock(mutex_);
    const RegionState state = this->state();
    if (state == RegionState::kFinalizing || state == RegionState::kClosed) {
      return absl::FailedPreconditionError("cx.defer: region '" + name_ + "' is already " +
                                           std::string(region_state_name(state)));
    }
    finalizers_.push_back(Finalizer{std::move(sync_finalizer), std::move(async_finalizer)});
  }
  report(*this, RuntimeEvent::kFinalizerAdded);
  return absl::OkStatus();
}

void Region::cancel(const CancelReason& reason, const Budget& cleanup) {
  std::unique_lock<RegionMutex> lock(mutex_);
  cancel_locked(reason, cleanup, lock);
}

void Region::cancel_locked(const CancelReason& reason, const Budget& cleanup,
                           std::unique_lock<RegionMutex>& lock) {
  const RegionState state = this->state();
  if (state == RegionState::kFinalizing || state == RegionState::kClosed) {
    report(*this, RuntimeEvent::kRegionStateRead);
    return;
  }
  const bool internal_origin =
      reason.origin_region() == id_ &&
      (reason.kind() == CancelKind::kFailFast || reason.kind() == CancelKind::kParentCancelled);
  if (!internal_origin) cancelled_externally_ = true;
  if (!cancel_requested()) {
    cancel_reason_ = reason;
    cancel_status_ = asupersync::cancelled_status(reason);
    cleanup_budget_ = cleanup;
    cancel_requested_.store(true, std::memory_order_release);
  } else {
    if (compare_strength(reason, cancel_reason_) > 0) {
      cancel_reason_ = reason;
      cancel_status_ = asupersync::cancelled_status(reason);
    }
    cleanup_budget_ = meet(cleanup_budget_, cleanup);
  }
  report(*this, RuntimeEvent::kRegionCancelled);
  if (state == RegionState::kOpen) {
    state_.store(RegionState::kClosing, std::memory_order_release);
    report(*this, RuntimeEvent::kRegionStateChanged);
    ledger_.close_admission();
  }
  // Tasks cannot leave the list while the lock is held (on_task_finished takes it), and
  // request_cancel never takes this region's lock, so the list can be walked directly. The
  // body-region chain it cancels holds only descendants of this region.
  if (tasks_head_ != nullptr) {
    // One request record for all the tasks: each keeps a reference, none a copy.
    const SharedCancelRequest shared(
        cancel_reason_, cleanup_budget_for(cancel_reason_.kind(), cleanup_budget_), cancel_status_);
    // The woken tasks reach the executor a chunk at a time (one queue operation and one wake-up
    // each; internal::CancelBatch), not one by one.
    internal::CancelBatch batch(*executor_);
    for (internal::TaskRecord* task = tasks_head_; task != nullptr; task = task->region_next) {
      batch.request(*task, cancel_reason_, cleanup_budget_, &shared);
    }
    batch.flush();
  }
  if (!children_.empty()) {
    const CancelReason child_reason =
        cancel_reason_.caused_by(CancelKind::kParentCancelled, id_, std::nullopt, executor_->now(),
                                 "parent region '" + name_ + "' was cancelled");
    for (Region* child : children_) child->cancel(child_reason, cleanup_budget_);
  }
  if (body_task_ != nullptr) internal::interrupt_scoped_wait(*body_task_, *this);
}

void Region::cancel_internal_locked(CancelKind kind, std::string message,
                                    std::unique_lock<RegionMutex>& lock) {
  cancel_locked(CancelReason(kind, id_, std::nullopt, executor_->now(), std::move(message)),
                Budget::Infinite(), lock);
}

void Region::begin_body(internal::TaskRecord& task) {
  report(*this, RuntimeEvent::kRegionOpened, &task);
  {
    std::lock_guard<RegionMutex> lock(mutex_);
    body_task_ = &task;
  }
  TaskGuard guard(task.lock);
  chain_task_ = &task;
  enclosing_body_region_ = task.body_region;
  task.body_region = this;
  in_body_chain_ = true;
}

void Region::leave_body_chain() {
  if (!in_body_chain_) return;
  TaskGuard guard(chain_task_->lock);
  if (chain_task_->body_region != this) {
    invariant_violated("region '" + name_ + "' left its task's body chain out of order");
  }
  chain_task_->body_region = enclosing_body_region_;
  in_body_chain_ = false;
}

void Region::end_body(OutcomeKind kind) {
  std::unique_lock<RegionMutex> lock(mutex_);
  body_task_ = nullptr;
  if (state() == RegionState::kOpen) {
    state_.store(RegionState::kClosing, std::memory_order_release);
    report(*this, RuntimeEvent::kRegionStateChanged);
    ledger_.close_admission();
  }
  if (kind != OutcomeKind::kOk) {
    cancel_internal_locked(CancelKind::kParentCancelled,
                           "the region body finished with " + std::string(outcome_kind_name(kind)),
                           lock);
  } else if (options_.cancel_children_on_exit && live_tasks_ != 0) {
    cancel_internal_locked(CancelKind::kParentCancelled,
                           "the region body returned; cancel_children_on_exit is set", lock);
  }
  state_.store(RegionState::kDraining, std::memory_order_release);
  report(*this, RuntimeEvent::kRegionStateChanged);
}

Region::CloseAwaiter Region::wait_for_children(Cx& cx) { return CloseAwaiter(this, &cx); }

internal::WakeToken Region::take_closer_if_quiescent_locked() {
  if (closer_ == nullptr || !quiescent_locked()) return {};
  internal::WakeToken token(*closer_);
  closer_ = nullptr;
  return token;
}

void Region::maybe_wake_closer() {
  internal::WakeToken closer;
  {
    std::lock_guard<RegionMutex> lock(mutex_);
    closer = take_closer_if_quiescent_locked();
  }
  std::move(closer).wake(Lane::kReady);
}

Region::CloseAwaiter::~CloseAwaiter() {
  if (!registered_) return;
  std::lock_guard<RegionMutex> lock(region_->mutex_);
  if (region_->closer_ == this) region_->closer_ = nullptr;
}

bool Region::CloseAwaiter::await_suspend(std::coroutine_handle<> handle) {
  internal::TaskRecord& task = cx_->task_record();
  internal::begin_wait(task, *this);
  {
    std::lock_guard<RegionMutex> lock(region_->mutex_);
    if (region_->quiescent_locked()) return false;
    region_->closer_ = this;
    registered_ = true;
  }
  if (internal::park(*this, handle)) return true;
  // Woken before it parked: the region became quiescent in between.
  std::lock_guard<RegionMutex> lock(region_->mutex_);
  if (region_->closer_ == this) region_->closer_ = nullptr;
  return false;
}

void Region::CloseAwaiter::interrupt() {
  internal::invariant_violated("a region-close wait was interrupted (it is not interruptible)");
}

bool Region::begin_finalizing() {
  std::lock_guard<RegionMutex> lock(mutex_);
  state_.store(RegionState::kFinalizing, std::memory_order_release);
  report(*this, RuntimeEvent::kRegionStateChanged);
  return !finalizers_.empty();
}

Task<void> Region::run_finalizers(Cx& cx) {
  // Finalizers run shielded (SPEC 3.6, 4.4); the shield is released at the end.
  absl::StatusOr<ShieldGuard> shield = cx.shield();
  while (true) {
    Finalizer finalizer;
    {
      std::lock_guard<RegionMutex> lock(mutex_);
      if (finalizers_.empty()) break;
      finalizer = std::move(finalizers_.back());
      finalizers_.pop_back();
    }
    std::optional<Outcome<void>> panicked;
    try {
      if (finalizer.sync) {
        finalizer.sync();
      } else {
        co_await finalizer.async(cx);
      }
    } catch (...) {
      panicked.emplace(Outcome<void>::Panicked(PanicInfo::from_current_exception()));
    }
    std::lock_guard<RegionMutex> lock(mutex_);
    if (panicked.has_value()) {
      children_outcome_ = join(std::move(children_outcome_), std::move(*panicked));
    }
    ++finalizers_run_;
  }
}

void Region::detach_from_parent() {
  if (parent_ == nullptr) return;
  Region* parent = std::exchange(parent_, nullptr);
  internal::WakeToken closer;
  {
    std::lock_guard<RegionMutex> lock(parent->mutex_);
    auto it = std::find(parent->children_.begin(), parent->children_.end(), this);
    if (it == parent->children_.end()) invariant_violated("closed region not in its parent");
    parent->children_.erase(it);
    closer = parent->take_closer_if_quiescent_locked();
  }
  // The parent may close and go away once its closer runs: it is not touched after this.
  std::move(closer).wake(Lane::kReady);
}

Outcome<void> Region::close() {
  Outcome<void> outcome = Outcome<void>::Ok();
  {
    std::lock_guard<RegionMutex> lock(mutex_);
    if (!quiescent_locked()) {
      invariant_violated("region '" + name_ + "' closing while not quiescent");
    }
    state_.store(RegionState::kClosed, std::memory_order_release);
    report(*this, RuntimeEvent::kRegionStateChanged);
    if (!children_outcome_.ok()) outcome = std::move(children_outcome_);
    if (cancelled_externally_) {
      outcome = join(std::move(outcome), Outcome<void>::Cancelled(cancel_reason_));
    }
  }
  report(*this, RuntimeEvent::kRegionClosed);
  if (ledger_.policy() == LeakPolicy::kPanic && ledger_.leaked() > 0) {
    for (const LeakReport& leak : ledger_.leaks()) {
      outcome =
          join(std::move(outcome), Outcome<void>::Panicked(PanicInfo{nullptr, leak.to_string()}));
    }
  }
  leave_body_chain();
  detach_from_parent();
  return outcome;
}

void Region::abandon() {
  {
    std::lock_guard<RegionMutex> lock(mutex_);
    if (live_tasks_ != 0 || !children_.empty()) {
      invariant_violated("region '" + name_ + "' abandoned with live work");
    }
    body_task_ = nullptr;
    state_.store(RegionState::kClosed, std::memory_order_release);
    report(*this, RuntimeEvent::kRegionStateChanged);
  }
  report(*this, RuntimeEvent::kRegionClosed);
  leave_body_chain();
  detach_from_parent();
}

std::string Region::dump() const {
  std::string out;
  dump_into(out, 0);
  return out;
}

void Region::dump_into(std::string& out, int depth) const {
  std::lock_guard<RegionMutex> lock(mutex_);
  const std::string indent(static_cast<size_t>(depth) * 2, ' ');
  out += indent + "region '" + name_ + "' " + id_.to_string() + " [" +
         std::string(region_state_name(state())) + "]";
  if (cancel_requested()) out += " cancel: " + cancel_reason_.to_string();
  if (ledger_.pending() > 0) out += " obligations pending: " + std::to_string(ledger_.pending());
  out += "\n";
  // Oldest first, as spawned.
  std::vector<const internal::TaskRecord*> tasks;
  for (const internal::TaskRecord* task = tasks_head_; task != nullptr; task = task->region_next) {
    tasks.push_back(task);
  }
  for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) {
    internal::TaskRecord& task = const_cast<internal::TaskRecord&>(**it);
    out += indent + "  task '" + task.name + "' " + task.id.to_string() + " [" +
           std::string(internal::task_state_name(task.load_state())) + "]";
    TaskGuard guard(task.lock);
    if (task.current_wait != nullptr) {
      out += " waiting on " + std::string(task.current_wait->what);
    }
    if (task.cancel.requested()) {
      out += task.cancel.acknowledged() ? " cancel acknowledged" : " cancel requested";
    }
    out += " spawned at " + task.spawn_site.to_string() + "\n";
  }
  for (const Region* child : children_) child->dump_into(out, depth + 1);
}

}  // namespace asupersync
