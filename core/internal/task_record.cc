#include "core/internal/task_record.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

#include "core/region.h"

namespace asupersync::internal {
namespace {

using Guard = std::lock_guard<SpinLock>;

// True when `region` is `ancestor` or below it.
bool within(const Region* region, const Region* ancestor) {
  for (; region != nullptr; region = region->parent()) {
    if (region == ancestor) return true;
  }
  return false;
}

// Requires task.lock.
bool cancel_deliverable_locked(const TaskRecord& task, Region* scope) {
  if (task.cancel.shield_depth() > 0) return false;
  if (task.cancel.requested()) return true;
  return scope != nullptr && scope != task.region && scope->cancel_requested();
}

// Takes the task's current wait away from every waker (requires task.lock): afterwards only
// the caller may end it, by interrupting it and rescheduling the task.
WaitNode* claim_wait_locked(TaskRecord& task) {
  WaitNode* wait = task.current_wait;
  task.current_wait = nullptr;
  task.current_ticket = 0;
  return wait;
}

// Publishes the completion: wakes the joiners, tells the executor and the region (with
// `summary`, the outcome's summary, or null for Ok) and drops the region's reference.
[[gnu::always_inline]] inline void publish_completion(TaskRecord& task, Outcome<void>* summary) {
  // Joiners are woken after the lock is released; each token keeps its task alive.
  WakeToken first_joiner;
  std::vector<WakeToken> more_joiners;
  bool escalation_armed;
  {
    Guard guard(task.lock);
    task.state.store(TaskState::kCompleted, std::memory_order_release);
    claim_wait_locked(task);
    while (JoinWaiterBase* waiter = task.join_waiters) {
      if (!first_joiner) {
        first_joiner = WakeToken(*waiter);
      } else {
        more_joiners.emplace_back(*waiter);
      }
      waiter->unlink(task);
    }
    LazyCancelState::Part* cancel = task.cancel.part();
    escalation_armed = cancel != nullptr && cancel->escalation_timer != nullptr;
  }
  if (escalation_armed) task.executor->remove_timer(*task.cancel.part()->escalation_timer);
  if (first_joiner) std::move(first_joiner).wake(Lane::kReady);
  for (WakeToken& joiner : more_joiners) std::move(joiner).wake(Lane::kReady);
  task.executor->on_task_finished(task);
  task.region->on_task_finished(task, summary);
  task.release();
}

[[gnu::noinline]] void complete_task_with_summary(TaskRecord& task) {
  Outcome<void> summary = task.outcome_summary();
  publish_completion(task, &summary);
}

// `outcome_ok`: the recorded outcome is Ok (the common case: the region needs no summary).
void complete_task(TaskRecord& task, bool outcome_ok) {
  // The region's summary is taken before the outcome is published: once `state` says
  // completed, a joiner on another thread may move the outcome out.
  if (!outcome_ok) [[unlikely]] {
    complete_task_with_summary(task);
    return;
  }
  publish_completion(task, nullptr);
}

}  // namespace

void invariant_violated(const char* what) {
  std::fprintf(stderr, "asupersync invariant violated: %s\n", what);
  std::abort();
}

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

void TaskRecord::released_too_often() {
  invariant_violated("TaskRecord released more often than referenced");
}

const CancelState& LazyCancelState::unrequested() {
  static const CancelState* const kUnrequested = new CancelState();
  return *kUnrequested;
}

void TaskEscalationTimer::fire() {
  // The record is alive: complete_task removes this timer before the region's reference goes.
  task->executor->schedule(*task, Lane::kCancel);
}

WakeToken::WakeToken(const WaitNode& node) : task_(node.task), ticket_(node.ticket) {
  if (task_ == nullptr) invariant_violated("WakeToken made for a node without begin_wait");
  task_->add_ref();
}

void WakeToken::wake_and_reset(Lane lane) {
  internal::wake(*task_, ticket_, lane);
  release_task();
}

void WakeToken::release_task() { std::exchange(task_, nullptr)->release(); }

void JoinWaiterBase::link(TaskRecord& target) {
  prev = nullptr;
  next = target.join_waiters;
  if (next != nullptr) next->prev = this;
  target.join_waiters = this;
  linked = true;
}

void JoinWaiterBase::unlink(TaskRecord& target) {
  if (!linked) return;
  target.executor->on_runtime_event(RuntimeEvent::kJoinWaitRemoved, &target, nullptr);
  if (prev != nullptr) {
    prev->next = next;
  } else {
    target.join_waiters = next;
  }
  if (next != nullptr) next->prev = prev;
  prev = next = nullptr;
  linked = false;
}

void begin_wait(TaskRecord& task, WaitNode& node) {
  Guard guard(task.lock);
  node.task = &task;
  node.ticket = ++task.wait_tickets;
  if (node.ticket == 0) node.ticket = ++task.wait_tickets;  // wrapped: 0 means "none"
}

bool park(WaitNode& node, std::coroutine_handle<> resume_point) {
  TaskRecord& task = *node.task;
  Guard guard(task.lock);
  if (task.early_wake_ticket == node.ticket) return false;
  if (node.interruptible && cancel_deliverable_locked(task, node.scope)) return false;
  task.resume_point = resume_point;
  task.current_wait = &node;
  task.current_ticket = node.ticket;
  return true;
}

void wake(TaskRecord& task, uint32_t ticket, Lane lane) {
  task.executor->on_runtime_event(RuntimeEvent::kWakeAttempt, &task, nullptr);
  {
    Guard guard(task.lock);
    if (task.completed() || ticket == 0) return;
    if (task.current_wait == nullptr || task.current_ticket != ticket) {
      // Not parked on that wait: either it has not parked yet (remember the wake so park()
      // returns at once) or the wake is stale (cancelled, or the task moved on).
      if (task.current_wait == nullptr && ticket == task.wait_tickets) {
        task.early_wake_ticket = ticket;
      }
      return;
    }
    claim_wait_locked(task);
    if (task.cancel.requested()) lane = Lane::kCancel;  // SPEC 6.2
  }
  task.executor->schedule(task, lane);
}

bool cancel_deliverable(TaskRecord& task, Region* scope) {
  Guard guard(task.lock);
  return cancel_deliverable_locked(task, scope);
}

std::optional<CancelReason> deliverable_cancel(TaskRecord& task, Region* scope) {
  {
    Guard guard(task.lock);
    if (task.cancel.shield_depth() > 0) return std::nullopt;
    if (task.cancel.requested()) return task.cancel.reason();
  }
  if (scope != nullptr && scope != task.region && scope->cancel_requested()) {
    return scope->cancel_reason();
  }
  return std::nullopt;
}

// Runs a claimed wait's interrupt() with no lock held, then lets the task go: it is parked
// until `interrupting` is cleared, so no other thread resumes or destroys it meanwhile.
// `cleanup_priority` was read when the wait was claimed, so the executor need not take the
// lock again for it; a request arriving in between counts as one arriving just after this
// schedule.
void finish_interrupt(TaskRecord& task, WaitNode& claimed, uint8_t cleanup_priority) {
  claimed.interrupt();
  {
    Guard guard(task.lock);
    task.interrupting = false;
  }
  task.executor->schedule_cancel(task, cleanup_priority);
}

namespace {

// What request_cancel leaves to its delivery step.
struct RecordedRequest {
  bool completed = false;       // the task had completed: nothing to deliver (SPEC 4.6)
  WaitNode* claimed = nullptr;  // the wait to interrupt, or null: promote the task if queued
  uint8_t cleanup_priority = 0;
};

// request_cancel up to its delivery: records the request, arms the escalation timer, cancels
// the regions whose body the task runs and claims an interruptible wait.
RecordedRequest record_request(TaskRecord& task, const CancelReason& reason, const Budget& cleanup,
                               const SharedCancelRequest* shared) {
  RecordedRequest recorded;
  WaitNode*& claimed = recorded.claimed;
  // The regions whose body this task runs are part of its work: they are cancelled too
  // (SPEC 4.1). References keep them alive once the lock is released.
  Region* body_regions[8];
  std::vector<Region*> more_body_regions;
  size_t body_region_count = 0;
  bool arm_escalation = false;
  bool& completed = recorded.completed;
  uint8_t& cleanup_priority = recorded.cleanup_priority;
  {
    Guard guard(task.lock);
    completed = task.completed();
    if (!completed) {
      if (shared != nullptr) {
        task.cancel.request(*shared);
      } else {
        task.cancel.request(reason, cleanup_budget_for(reason.kind(), cleanup));
      }
      task.cancel_requested.store(true, std::memory_order_release);
      for (Region* region = task.body_region; region != nullptr;
           region = region->enclosing_body_region()) {
        region->add_ref();
        if (body_region_count < 8) {
          body_regions[body_region_count++] = region;
        } else {
          more_body_regions.push_back(region);
        }
      }
      if (task.current_wait != nullptr && task.current_wait->interruptible &&
          task.cancel.deliverable()) {
        claimed = claim_wait_locked(task);
        task.interrupting = true;
      }
      const Budget& budget = task.cancel.cleanup_budget();
      cleanup_priority = budget.priority;
      LazyCancelState::Part& part = *task.cancel.part();  // made by the request
      if (budget.deadline.has_value() && part.escalation_timer == nullptr) {
        part.escalation_timer = std::make_unique<TaskEscalationTimer>();
        part.escalation_timer->task = &task;
        part.escalation_timer->deadline = *budget.deadline;
        arm_escalation = true;
      }
    }
  }
  if (completed) {
    // SPEC 4.6: changes nothing.
    task.executor->on_runtime_event(RuntimeEvent::kCancelAfterCompletion, &task, nullptr);
    return recorded;
  }
  task.executor->on_runtime_event(RuntimeEvent::kCancelRequested, &task, nullptr);
  if (arm_escalation) task.executor->add_timer(*task.cancel.part()->escalation_timer);
  auto cancel_body_region = [&](Region* region) {
    region->cancel(
        reason.caused_by(CancelKind::kParentCancelled, task.region->id(), task.id,
                         task.executor->now(), "the task running the body was cancelled"),
        cleanup);
    region->release();
  };
  for (size_t i = 0; i < body_region_count; ++i) cancel_body_region(body_regions[i]);
  for (Region* region : more_body_regions) cancel_body_region(region);
  return recorded;
}

}  // namespace

void request_cancel(TaskRecord& task, const CancelReason& reason, const Budget& cleanup,
                    const SharedCancelRequest* shared) {
  const RecordedRequest recorded = record_request(task, reason, cleanup, shared);
  if (recorded.completed) return;
  if (recorded.claimed != nullptr) {
    finish_interrupt(task, *recorded.claimed, recorded.cleanup_priority);
    return;
  }
  // A task already queued moves to the cancel lane (SPEC 6.2).
  task.executor->promote_to_cancel_lane_at(task, recorded.cleanup_priority);
}

void CancelBatch::request(TaskRecord& task, const CancelReason& reason, const Budget& cleanup,
                          const SharedCancelRequest* shared) {
  const RecordedRequest recorded = record_request(task, reason, cleanup, shared);
  if (recorded.completed) return;
  if (recorded.claimed == nullptr) {
    task.executor->promote_to_cancel_lane_at(task, recorded.cleanup_priority);
    return;
  }
  // As finish_interrupt, but the schedule is left to flush(), with the rest of the chunk.
  recorded.claimed->interrupt();
  {
    Guard guard(task.lock);
    task.interrupting = false;
  }
  if (count_ == kChunk) flush();
  deliveries_[count_++] = Executor::CancelDelivery{&task, recorded.cleanup_priority};
}

void CancelBatch::flush() {
  if (count_ == 0) return;
  executor_.schedule_cancel_batch(deliveries_, std::exchange(count_, 0));
}

void interrupt_scoped_wait(TaskRecord& task, const Region& cancelled) {
  WaitNode* claimed = nullptr;
  uint8_t cleanup_priority = 0;
  {
    Guard guard(task.lock);
    if (task.current_wait == nullptr || !task.current_wait->interruptible ||
        task.cancel.shield_depth() > 0 || !within(task.current_wait->scope, &cancelled)) {
      return;
    }
    claimed = claim_wait_locked(task);
    task.interrupting = true;
    if (task.cancel.requested()) cleanup_priority = task.cancel.cleanup_budget().priority;
  }
  finish_interrupt(task, *claimed, cleanup_priority);
}

namespace {

// kWait (SPEC 4.5): the runtime keeps waiting; the stall goes to the executor's diagnostics.
void report_stall(TaskRecord& task) {
  std::string description = "cleanup stalled: task '" + task.name + "' " + task.id.to_string() +
                            " in region " + task.region->id().to_string() + " (" +
                            task.region->name() + ") spent its cleanup budget";
  {
    Guard guard(task.lock);
    description += " after " + task.cancel.reason().to_string();
    if (task.current_wait != nullptr) {
      description += "; waiting on " + std::string(task.current_wait->what);
    }
  }
  description += "; escalation policy kWait keeps waiting for it";
  task.executor->on_cleanup_stalled(task, description);
}

}  // namespace

bool run_task(TaskRecord& task) {
  if (task.completed()) return true;
  bool escalate = false;
  bool stalled = false;
  bool parked = false;
  bool cancel_requested = false;
  // First dispatch of a task with no request: it never ran, so it cannot be parked (only the
  // task itself parks), and without a request there is nothing to escalate. A request racing
  // in after this check is seen at the task's first cancellation point, as if it came later.
  const bool fresh = task.state.load(std::memory_order_relaxed) == TaskState::kCreated &&
                     !task.cancel_requested.load(std::memory_order_acquire);
  if (!fresh) {
    Guard guard(task.lock);
    if (task.cancel.requested()) {
      cancel_requested = true;
      const Budget& cleanup = task.cancel.cleanup_budget();
      const bool polls_spent = task.cancel.part()->polls_since_cancel >= cleanup.poll_quota;
      const bool deadline_passed =
          cleanup.deadline.has_value() && task.executor->now() >= *cleanup.deadline;
      if (polls_spent || deadline_passed) {
        if (task.region->escalation_policy() == EscalationPolicy::kDestroy) {
          escalate = true;
        } else if (!task.stall_reported) {
          task.stall_reported = true;
          stalled = true;
        }
      }
    }
    parked = task.current_wait != nullptr || task.interrupting;
  }
  if (stalled) report_stall(task);
  if (escalate) {
    escalate_destroy(task);
    if (task.completed()) return true;
  }
  // A dispatch without a wake (the escalation timer before its time, or a stale entry) never
  // resumes a parked task.
  if (parked) return false;
  // The part exists (a request was seen under the lock) and stays: no lock needed.
  if (cancel_requested) ++task.cancel.part()->polls_since_cancel;
  if (task.state.load(std::memory_order_relaxed) == TaskState::kCreated) {
    task.executor->on_task_started(task);
  }
  task.state.store(TaskState::kRunning, std::memory_order_relaxed);
  ++task.polls;
  task.resume_point.resume();
  if (task.frame_finished) {
    const bool outcome_ok = task.capture_outcome();
    destroy_root_frame(task);
    complete_task(task, outcome_ok);
    return true;
  }
  task.state.store(TaskState::kSuspended, std::memory_order_release);
  return false;
}

void escalate_destroy(TaskRecord& task) {
  const TaskState state = task.load_state();
  if (state == TaskState::kCompleted || state == TaskState::kRunning) return;
  {
    Guard guard(task.lock);
    if (task.current_wait != nullptr && !task.current_wait->destroy_safe) return;
    if (task.interrupting) return;  // a canceller is inside the awaiter; it reschedules
  }
  // Never abandon a region whose body this task runs while it has live work (only this thread
  // changes body_region, so reading it without the lock is safe here).
  for (Region* region = task.body_region; region != nullptr;
       region = region->enclosing_body_region()) {
    if (!region->abandonable()) return;
  }
  task.budget_exhausted.store(true, std::memory_order_relaxed);
  std::optional<CancelReason> requested;
  {
    Guard guard(task.lock);
    claim_wait_locked(task);  // stale wake tokens now do nothing
    if (task.cancel.requested()) requested = task.cancel.reason();
  }
  CancelReason reason = requested.has_value()
                            ? *requested
                            : CancelReason(CancelKind::kShutdown, RegionId(), task.id,
                                           task.executor->now(), "escalated");
  // Destroying the root frame destroys every frame it awaits; their awaiters deregister.
  destroy_root_frame(task);
  task.set_cancelled_outcome(reason);
  // If it is still queued, the queue's reference keeps the record alive and run_task skips it.
  complete_task(task, /*outcome_ok=*/false);
}

}  // namespace asupersync::internal

namespace asupersync {

void Executor::on_cleanup_stalled(internal::TaskRecord&, const std::string& description) {
  std::fprintf(stderr, "asupersync: %s\n", description.c_str());
}

}  // namespace asupersync
