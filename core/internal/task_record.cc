#include "core/internal/task_record.h"

#include <cstdio>
#include <cstdlib>

#include "core/region.h"

namespace asupersync::internal {
namespace {

[[noreturn]] void invariant_violated(const char* what) {
  std::fprintf(stderr, "asupersync invariant violated: %s\n", what);
  std::abort();
}

// True when `region` is `ancestor` or below it.
bool within(const Region* region, const Region* ancestor) {
  for (; region != nullptr; region = region->parent()) {
    if (region == ancestor) return true;
  }
  return false;
}

void complete_task(TaskRecord& task) {
  task.state = TaskState::kCompleted;
  task.current_wait = nullptr;
  // Wake every joiner; each unlinks itself as it is taken off the list.
  while (JoinWaiterBase* waiter = task.join_waiters) {
    waiter->unlink(task);
    wake(*waiter->waiter, Lane::kReady);
  }
  task.executor->on_task_finished(task);
  Region* region = task.region;
  region->on_task_finished(task);
  task.release();
}

}  // namespace

std::string_view task_state_name(TaskState state) {
  switch (state) {
    case TaskState::kCreated:
      return "created";
    case TaskState::kRunning:
      return "running";
    case TaskState::kSuspended:
      return "suspended";
    case TaskState::kCompleted:
      return "completed";
  }
  return "unknown";
}

void TaskRecord::release() {
  if (refs == 0) invariant_violated("TaskRecord released more often than referenced");
  if (--refs == 0) destroy_self();
}

void JoinWaiterBase::link(TaskRecord& target) {
  prev = nullptr;
  next = target.join_waiters;
  if (next != nullptr) next->prev = this;
  target.join_waiters = this;
  linked = true;
}

void JoinWaiterBase::unlink(TaskRecord& target) {
  if (!linked) return;
  if (prev != nullptr) {
    prev->next = next;
  } else {
    target.join_waiters = next;
  }
  if (next != nullptr) next->prev = prev;
  prev = next = nullptr;
  linked = false;
}

const CancelReason* deliverable_cancel(TaskRecord& task, Region* scope) {
  if (task.cancel.shield_depth() > 0) return nullptr;
  if (task.cancel.requested()) return &task.cancel.reason();
  if (scope != nullptr && scope != task.region && scope->cancel_requested()) {
    return &scope->cancel_reason();
  }
  return nullptr;
}

void park(TaskRecord& task, WaitNode& node, std::coroutine_handle<> resume_point) {
  task.resume_point = resume_point;
  task.current_wait = &node;
}

void wake(TaskRecord& task, Lane lane) {
  if (task.state == TaskState::kCompleted) return;
  task.current_wait = nullptr;
  if (task.cancel.requested()) lane = Lane::kCancel;  // SPEC 6.2
  task.executor->schedule(task, lane);
}

void request_cancel(TaskRecord& task, const CancelReason& reason, const Budget& cleanup) {
  if (task.state == TaskState::kCompleted) return;  // SPEC 4.6: changes nothing
  task.cancel.request(reason, cleanup_budget_for(reason.kind(), cleanup));
  // The regions whose body this task runs are part of its work: cancel them too (SPEC 4.1).
  for (Region* region = task.body_region; region != nullptr;
       region = region->enclosing_body_region()) {
    region->cancel(
        reason.caused_by(CancelKind::kParentCancelled, task.region->id(), task.id,
                         task.executor->now(), "the task running the body was cancelled"),
        cleanup);
  }
  if (task.current_wait != nullptr && task.cancel.deliverable()) {
    WaitNode* wait = task.current_wait;
    if (wait->interrupt()) {
      wake(task, Lane::kCancel);
      return;
    }
  }
  // A task already queued moves to the cancel lane (SPEC 6.2).
  if (task.queued) task.executor->schedule(task, Lane::kCancel);
}

void interrupt_scoped_wait(TaskRecord& task, const Region& cancelled) {
  if (task.current_wait == nullptr || task.cancel.shield_depth() > 0) return;
  if (!within(task.current_wait->scope, &cancelled)) return;
  if (task.current_wait->interrupt()) wake(task, Lane::kCancel);
}

void run_task(TaskRecord& task) {
  task.queued = false;
  // The queue's reference, released when this step is over.
  struct QueueReference {
    TaskRecord& task;
    ~QueueReference() { task.release(); }
  } queue_reference{task};
  if (task.state == TaskState::kCompleted) return;
  if (task.cancel.requested()) {
    const Budget& cleanup = task.cancel.cleanup_budget();
    const bool polls_spent = task.polls_since_cancel >= cleanup.poll_quota;
    const bool deadline_passed =
        cleanup.deadline.has_value() && task.executor->now() >= *cleanup.deadline;
    if ((polls_spent || deadline_passed) &&
        task.region->escalation_policy() == EscalationPolicy::kDestroy) {
      escalate_destroy(task);
      if (task.state == TaskState::kCompleted) return;
    }
    ++task.polls_since_cancel;
  }
  if (task.state == TaskState::kCreated) task.executor->on_task_started(task);
  task.state = TaskState::kRunning;
  ++task.polls;
  task.resume_point.resume();
  if (task.frame_finished) {
    task.capture_outcome();
    task.root.destroy();
    task.root = {};
    complete_task(task);
    return;
  }
  task.state = TaskState::kSuspended;
}

void escalate_destroy(TaskRecord& task) {
  if (task.state == TaskState::kCompleted || task.state == TaskState::kRunning) return;
  if (task.current_wait != nullptr && !task.current_wait->destroy_safe) {
    return;  // never abandon a live region; its own tasks are escalated instead
  }
  task.budget_exhausted = true;
  task.current_wait = nullptr;
  CancelReason reason = task.cancel.requested()
                            ? task.cancel.reason()
                            : CancelReason(CancelKind::kShutdown, RegionId(), task.id,
                                           task.executor->now(), "escalated");
  // Destroying the root frame destroys every frame it awaits; their awaiters deregister.
  std::coroutine_handle<> root = std::exchange(task.root, {});
  root.destroy();
  task.set_cancelled_outcome(reason);
  // If it is still queued, the queue's reference keeps the record alive and run_task skips it.
  complete_task(task);
}

}  // namespace asupersync::internal
