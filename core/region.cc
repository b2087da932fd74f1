#include "core/region.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace asupersync {
namespace {

[[noreturn]] void invariant_violated(const std::string& what) {
  std::fprintf(stderr, "asupersync invariant violated: %s\n", what.c_str());
  std::abort();
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

Region::Region(Executor& executor, Region* parent, std::string name, RegionOptions options,
               LeakPolicy leak_policy)
    : executor_(&executor),
      parent_(parent),
      id_(executor.allocate_region_index(), 1),
      name_(std::move(name)),
      options_(options),
      ledger_(id_, options.leak_policy.value_or(leak_policy), options.max_obligations) {
  ledger_.set_on_drained([this] { maybe_wake_closer(); });
}

Region::~Region() {
  if (state_ != RegionState::kClosed && !tasks_.empty()) {
    invariant_violated("region '" + name_ + "' destroyed with live tasks");
  }
}

std::unique_ptr<Region> Region::create_root(Executor& executor, RegionOptions options,
                                            LeakPolicy default_leak_policy) {
  return std::unique_ptr<Region>(
      new Region(executor, nullptr, "root", options, default_leak_policy));
}

absl::StatusOr<std::unique_ptr<Region>> Region::create_child(Cx& cx, std::string name,
                                                             RegionOptions options) {
  Region& parent = cx.region();
  if (parent.state_ != RegionState::kOpen) {
    return region_closed_error("Region::open('" + name + "'): parent region '" + parent.name_ +
                               "' is " + std::string(region_state_name(parent.state_)) +
                               " and admits no child regions");
  }
  if (parent.options_.max_child_regions &&
      parent.children_.size() >= *parent.options_.max_child_regions) {
    return absl::ResourceExhaustedError("Region::open('" + name + "'): region '" + parent.name_ +
                                        "' already has " + std::to_string(parent.children_.size()) +
                                        " open child regions (max_child_regions)");
  }
  std::unique_ptr<Region> child(
      new Region(*parent.executor_, &parent, std::move(name), options, parent.ledger_.policy()));
  parent.children_.push_back(child.get());
  return child;
}

bool Region::quiescent() const {
  return tasks_.empty() && admitted_ == 0 && children_.empty() && ledger_.pending() == 0;
}

RegionStats Region::stats() const {
  RegionStats stats;
  stats.live_tasks = tasks_.size();
  stats.open_child_regions = children_.size();
  stats.pending_obligations = ledger_.pending();
  stats.pending_finalizers = finalizers_.size();
  stats.finalizers_run = finalizers_run_;
  stats.tasks_spawned = tasks_spawned_;
  return stats;
}

absl::Status Region::admit_task() {
  if (state_ != RegionState::kOpen) {
    return region_closed_error("spawn into region '" + name_ + "' refused: it is " +
                               std::string(region_state_name(state_)));
  }
  if (options_.max_tasks && admitted_ >= *options_.max_tasks) {
    return absl::ResourceExhaustedError("spawn into region '" + name_ + "' refused: it has " +
                                        std::to_string(admitted_) + " live tasks (max_tasks)");
  }
  ++admitted_;
  return absl::OkStatus();
}

void Region::abandon_admission() { --admitted_; }

void Region::add_task(internal::TaskRecord& task) {
  ++tasks_spawned_;
  tasks_.push_back(&task);
}

void Region::on_task_finished(internal::TaskRecord& task) {
  auto it = std::find(tasks_.begin(), tasks_.end(), &task);
  if (it == tasks_.end()) invariant_violated("finished task not in its region");
  tasks_.erase(it);
  --admitted_;
  Outcome<void> outcome = task.outcome_summary();
  const bool failed = outcome.is_err() || outcome.is_panicked();
  // Children cancelled by this region's own decision do not make it Cancelled (file comment).
  const bool counts = !outcome.is_cancelled() || cancelled_externally_ || !cancel_requested_;
  if (counts) children_outcome_ = join(std::move(children_outcome_), std::move(outcome));
  if (failed && options_.failure_policy == FailurePolicy::kFailFast) {
    cancel_internal(CancelKind::kFailFast,
                    "task '" + task.name + "' failed; cancelling its siblings (FailFast)");
  }
  maybe_wake_closer();
}

absl::Status Region::add_finalizer(std::function<void()> sync_finalizer,
                                   std::function<Task<void>(Cx&)> async_finalizer) {
  if (state_ == RegionState::kFinalizing || state_ == RegionState::kClosed) {
    return absl::FailedPreconditionError("cx.defer: region '" + name_ + "' is already " +
                                         std::string(region_state_name(state_)));
  }
  finalizers_.push_back(Finalizer{std::move(sync_finalizer), std::move(async_finalizer)});
  return absl::OkStatus();
}

void Region::cancel(const CancelReason& reason, const Budget& cleanup) {
  if (state_ == RegionState::kFinalizing || state_ == RegionState::kClosed) return;
  const bool internal_origin =
      reason.origin_region() == id_ &&
      (reason.kind() == CancelKind::kFailFast || reason.kind() == CancelKind::kParentCancelled);
  if (!internal_origin) cancelled_externally_ = true;
  if (!cancel_requested_) {
    cancel_requested_ = true;
    cancel_reason_ = reason;
    cleanup_budget_ = cleanup;
  } else {
    cancel_reason_ = strengthen(cancel_reason_, reason);
    cleanup_budget_ = meet(cleanup_budget_, cleanup);
  }
  if (state_ == RegionState::kOpen) {
    state_ = RegionState::kClosing;
    ledger_.close_admission();
  }
  // Copies: cancelling a task can finish others and change these lists.
  std::vector<internal::TaskRecord*> tasks = tasks_;
  for (internal::TaskRecord* task : tasks) task->add_ref();
  for (internal::TaskRecord* task : tasks) {
    internal::request_cancel(*task, cancel_reason_, cleanup_budget_);
  }
  std::vector<Region*> children = children_;
  for (Region* child : children) {
    child->cancel(
        cancel_reason_.caused_by(CancelKind::kParentCancelled, id_, std::nullopt, executor_->now(),
                                 "parent region '" + name_ + "' was cancelled"),
        cleanup_budget_);
  }
  if (body_task_ != nullptr) internal::interrupt_scoped_wait(*body_task_, *this);
  for (internal::TaskRecord* task : tasks) task->release();
}

void Region::cancel_internal(CancelKind kind, std::string message) {
  cancel(CancelReason(kind, id_, std::nullopt, executor_->now(), std::move(message)),
         Budget::Infinite());
}

void Region::begin_body(internal::TaskRecord& task) {
  body_task_ = &task;
  enclosing_body_region_ = task.body_region;
  task.body_region = this;
}

void Region::end_body(OutcomeKind kind) {
  if (body_task_ != nullptr) body_task_->body_region = enclosing_body_region_;
  body_task_ = nullptr;
  if (state_ == RegionState::kOpen) {
    state_ = RegionState::kClosing;
    ledger_.close_admission();
  }
  if (kind != OutcomeKind::kOk) {
    cancel_internal(CancelKind::kParentCancelled,
                    "the region body finished with " + std::string(outcome_kind_name(kind)));
  } else if (options_.cancel_children_on_exit && !tasks_.empty()) {
    cancel_internal(CancelKind::kParentCancelled,
                    "the region body returned; cancel_children_on_exit is set");
  }
  state_ = RegionState::kDraining;
}

Region::CloseAwaiter Region::wait_for_children(Cx& cx) { return CloseAwaiter(this, &cx); }

void Region::maybe_wake_closer() {
  if (closer_ != nullptr && quiescent()) {
    internal::TaskRecord* closer = std::exchange(closer_, nullptr);
    closer_wait_ = nullptr;
    internal::wake(*closer, Lane::kReady);
  }
}

Region::CloseAwaiter::~CloseAwaiter() {
  if (region_->closer_wait_ == this) {
    region_->closer_ = nullptr;
    region_->closer_wait_ = nullptr;
  }
}

bool Region::CloseAwaiter::await_suspend(std::coroutine_handle<> handle) {
  internal::TaskRecord& task = cx_->task_record();
  // A request already pending for the waiting task cancels the region first (no orphans).
  if (const CancelReason* reason = internal::deliverable_cancel(task, scope)) {
    region_->cancel(
        reason->caused_by(CancelKind::kParentCancelled, task.region->id(), task.id,
                          region_->executor_->now(), "the task closing the region was cancelled"),
        task.cancel.requested() ? task.cancel.cleanup_budget() : Budget::Infinite());
    if (region_->quiescent()) return false;
  }
  region_->closer_ = &task;
  region_->closer_wait_ = this;
  internal::park(task, *this, handle);
  return true;
}

bool Region::CloseAwaiter::interrupt() {
  internal::TaskRecord& task = cx_->task_record();
  const CancelReason reason = task.cancel.requested()
                                  ? task.cancel.reason()
                                  : CancelReason(CancelKind::kParentCancelled, region_->id_,
                                                 task.id, region_->executor_->now(), "");
  region_->cancel(
      reason.caused_by(CancelKind::kParentCancelled, task.region->id(), task.id,
                       region_->executor_->now(), "the task closing the region was cancelled"),
      task.cancel.requested() ? task.cancel.cleanup_budget() : Budget::Infinite());
  return false;  // keep waiting: the region must close before the wait ends
}

Task<void> Region::run_finalizers(Cx& cx) {
  state_ = RegionState::kFinalizing;
  // Finalizers run shielded (SPEC 3.6, 4.4); the shield is released at the end.
  absl::StatusOr<ShieldGuard> shield = cx.shield();
  while (!finalizers_.empty()) {
    Finalizer finalizer = std::move(finalizers_.back());
    finalizers_.pop_back();
    try {
      if (finalizer.sync) {
        finalizer.sync();
      } else {
        co_await finalizer.async(cx);
      }
    } catch (...) {
      children_outcome_ = join(std::move(children_outcome_),
                               Outcome<void>::Panicked(PanicInfo::from_current_exception()));
    }
    ++finalizers_run_;
  }
}

Outcome<void> Region::close() {
  if (!quiescent()) invariant_violated("region '" + name_ + "' closing while not quiescent");
  state_ = RegionState::kClosed;
  if (parent_ != nullptr) {
    auto it = std::find(parent_->children_.begin(), parent_->children_.end(), this);
    if (it == parent_->children_.end()) invariant_violated("closed region not in its parent");
    parent_->children_.erase(it);
    parent_->maybe_wake_closer();
  }
  Outcome<void> outcome = std::move(children_outcome_);
  if (cancelled_externally_) {
    outcome = join(std::move(outcome), Outcome<void>::Cancelled(cancel_reason_));
  }
  if (ledger_.policy() == LeakPolicy::kPanic) {
    for (const LeakReport& leak : ledger_.leaks()) {
      outcome =
          join(std::move(outcome), Outcome<void>::Panicked(PanicInfo{nullptr, leak.to_string()}));
    }
  }
  return outcome;
}

std::string Region::dump() const {
  std::string out;
  dump_into(out, 0);
  return out;
}

void Region::dump_into(std::string& out, int depth) const {
  const std::string indent(static_cast<size_t>(depth) * 2, ' ');
  out += indent + "region '" + name_ + "' " + id_.to_string() + " [" +
         std::string(region_state_name(state_)) + "]";
  if (cancel_requested_) out += " cancel: " + cancel_reason_.to_string();
  if (ledger_.pending() > 0) out += " obligations pending: " + std::to_string(ledger_.pending());
  out += "\n";
  for (const internal::TaskRecord* task : tasks_) {
    out += indent + "  task '" + task->name + "' " + task->id.to_string() + " [" +
           std::string(internal::task_state_name(task->state)) + "]";
    if (task->current_wait != nullptr)
      out += " waiting on " + std::string(task->current_wait->what);
    if (task->cancel.requested()) {
      out += task->cancel.acknowledged() ? " cancel acknowledged" : " cancel requested";
    }
    out += " spawned at " + task->spawn_site.to_string() + "\n";
  }
  for (const Region* child : children_) child->dump_into(out, depth + 1);
}

}  // namespace asupersync
