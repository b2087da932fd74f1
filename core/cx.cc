#include "core/cx.h"

#include <string>

#include "absl/strings/cord.h"
#include "core/region.h"

namespace asupersync {
namespace {

constexpr char kErrorTypeUrl[] = "asupersync/error-type";

}  // namespace

absl::Status region_closed_error(std::string_view message) {
  absl::Status status = absl::FailedPreconditionError(std::string(message) + " (RegionClosed)");
  status.SetPayload(kErrorTypeUrl, absl::Cord("RegionClosed"));
  return status;
}

bool is_region_closed(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorTypeUrl);
  return payload.has_value() && *payload == "RegionClosed";
}

std::optional<CancelReason> Cx::cancel_reason() const {
  {
    std::lock_guard<internal::SpinLock> guard(task_->lock);
    if (task_->cancel.requested()) return task_->cancel.reason();
  }
  if (region_ != task_->region && region_->cancel_requested()) return region_->cancel_reason();
  return std::nullopt;
}

RegionId Cx::region_id() const { return region_->id(); }

bool Cx::cancel_requested() const {
  {
    std::lock_guard<internal::SpinLock> guard(task_->lock);
    if (task_->cancel.requested()) return true;
  }
  return region_ != task_->region && region_->cancel_requested();
}

absl::Status Cx::require(Capability capability) const {
  if (caps_.has(capability)) return absl::OkStatus();
  return absl::PermissionDeniedError("task '" +
                                     (task_ != nullptr ? task_->name : std::string("root")) +
                                     "' lacks the " + std::string(capability_name(capability)) +
                                     " capability (its context allows: " + caps_.to_string() + ")");
}

absl::StatusOr<Time> Cx::now() const {
  if (absl::Status status = require(Capability::kTime); !status.ok()) return status;
  return region_->executor().now();
}

absl::StatusOr<uint64_t> Cx::random_u64() const {
  if (absl::Status status = require(Capability::kRandom); !status.ok()) return status;
  return region_->executor().next_random();
}

absl::StatusOr<ShieldGuard> Cx::shield() {
  std::lock_guard<internal::SpinLock> guard(task_->lock);
  if (absl::Status status = task_->cancel.push_shield(); !status.ok()) return status;
  return ShieldGuard(task_);
}

absl::Status Cx::defer(std::function<void()> finalizer) {
  return region_->add_finalizer(std::move(finalizer), nullptr);
}

absl::Status Cx::defer_async(std::function<Task<void>(Cx&)> finalizer) {
  return region_->add_finalizer(nullptr, std::move(finalizer));
}

void Cx::cancel_region(std::string message, Budget cleanup, CancelKind kind) {
  region_->cancel(
      CancelReason(kind, region_->id(), task_->id, region_->executor().now(), std::move(message)),
      cleanup);
}

Cx Cx::for_region(Region& region, const Budget& requested) const {
  return Cx(task_, &region, caps_, meet(budget(), requested));
}

absl::Status Cx::poll_cancel_out_of_line() {
  internal::TaskRecord& task = *task_;
  // Budget enforcement (SPEC 2.5): exhaustion becomes a request of the matching kind.
  if (!task.cancel_requested.load(std::memory_order_acquire)) {
    Executor& executor = region_->executor();
    if ((budget_flags_ & kHasDeadline) != 0 &&
        executor.now() >= Time::FromNanoseconds(deadline_nanos_)) {
      internal::request_cancel(task,
                               CancelReason(CancelKind::kDeadline, region_->id(), task.id,
                                            executor.now(), "the task's deadline passed"),
                               Budget::Infinite());
    } else if (task.polls > poll_quota_) {
      internal::request_cancel(task,
                               CancelReason(CancelKind::kPollQuota, region_->id(), task.id,
                                            executor.now(), "the task's poll quota is spent"),
                               Budget::Infinite());
    }
    // Fast path: no request for the task nor for the region this context is scoped to.
    if (!task.cancel_requested.load(std::memory_order_acquire) &&
        (region_ == task.region || !region_->cancel_requested())) {
      return absl::OkStatus();
    }
  }
  absl::Status acknowledged;  // OK: nothing delivered
  {
    std::lock_guard<internal::SpinLock> guard(task.lock);
    if (task.cancel.shield_depth() > 0) return absl::OkStatus();
    if (task.cancel.requested()) {
      task.cancel.acknowledge();
      acknowledged = task.cancel.delivery_status();  // shared, formatted once
    }
  }
  if (!acknowledged.ok()) {
    region_->executor().on_runtime_event(RuntimeEvent::kCancelAcknowledged, &task, nullptr);
    return acknowledged;
  }
  if (region_ == task.region || !region_->cancel_requested()) return absl::OkStatus();
  return region_->cancelled_status();
}

bool Cx::YieldAwaiter::await_suspend(std::coroutine_handle<> handle) {
  // Always goes back to the scheduler, even when a cancel is pending: a task looping on yield
  // must keep spending polls so that its cleanup budget can run out (SPEC 4.5).
  internal::TaskRecord& task = cx->task_record();
  task.resume_point = handle;
  task.executor->schedule(task, Lane::kReady);  // runs it again after this step (SPEC 6.3)
  return true;
}

Cx::SleepAwaiter::SleepAwaiter(Cx* cx, std::optional<Time> deadline, Duration duration)
    : cx_(cx), duration_(duration), relative_(!deadline.has_value()) {
  if (deadline.has_value()) this->deadline = *deadline;
  what = "sleep";
  scope = &cx->region();
}

Cx::SleepAwaiter::~SleepAwaiter() {
  if (task != nullptr) cx_->region().executor().remove_timer(*this);
}

bool Cx::SleepAwaiter::await_suspend(std::coroutine_handle<> handle) {
  early_ = cx_->require(Capability::kTime);
  if (!early_.ok()) return false;
  early_ = cx_->poll_cancel();
  if (!early_.ok()) return false;
  Executor& executor = cx_->region().executor();
  if (relative_) deadline = executor.now() + duration_;
  if (deadline <= executor.now()) return false;
  internal::begin_wait(cx_->task_record(), *this);
  executor.add_timer(*this);
  if (internal::park(*this, handle)) return true;
  // Fired already (then the sleep is over), or a cancel is deliverable.
  executor.remove_timer(*this);
  cancelled_ = internal::cancel_deliverable(cx_->task_record(), scope);
  return false;
}

absl::Status Cx::SleepAwaiter::await_resume() {
  if (!early_.ok()) return early_;
  if (cancelled_) return cx_->poll_cancel();
  return absl::OkStatus();
}

void Cx::SleepAwaiter::interrupt() {
  cx_->region().executor().remove_timer(*this);
  cancelled_ = true;
}

void Cx::SleepAwaiter::fire() { internal::wake(*task, ticket, Lane::kTimed); }

namespace internal {

absl::Status precheck_spawn(Cx& parent) {
  if (!parent.capabilities().has(Capability::kSpawn)) return parent.require(Capability::kSpawn);
  if (parent.region().state() != RegionState::kOpen) return parent.region().admit_task(nullptr);
  return absl::OkStatus();
}

bool region_open(const Region& region) { return region.state() == RegionState::kOpen; }

bool register_spawned(Cx& parent, TaskRecord& child, absl::Status& refusal) {
  Region& region = parent.region();
  child.id = TaskId(region.executor().allocate_task_index(), 1);
  child.region = &region;
  child.executor = &region.executor();
  if (absl::Status admitted = region.admit_task(&child); !admitted.ok()) [[unlikely]] {
    refusal = std::move(admitted);
    return false;
  }
  schedule_new(child);
  return true;
}

void cancel_task_from_handle(TaskRecord& task, std::string message, Budget cleanup,
                             CancelKind kind) {
  if (task.completed()) {
    task.executor->on_runtime_event(RuntimeEvent::kCancelAfterCompletion, &task, nullptr);
    return;
  }
  request_cancel(
      task,
      CancelReason(kind, task.region->id(), task.id, task.executor->now(), std::move(message)),
      cleanup);
}

}  // namespace internal
}  // namespace asupersync
