// The runtime record of a spawned task and the wait protocol shared by every awaiter.
//
// Internal to //core (and the executors that implement core/executor.h). User code sees a task
// through TaskHandle<T> and its own Cx.
//
// Thread-safety: a record is touched only by its executor's scheduling loop and by code running
// inside tasks of that executor (single-threaded in the lab).
// Lifetime: reference counted: one reference while the task is live (its region owns it) and
// one per TaskHandle. The record, and the result it holds, outlive the coroutine frame, which is
// destroyed as soon as the task completes.

#ifndef ASUPERSYNC_CORE_INTERNAL_TASK_RECORD_H_
#define ASUPERSYNC_CORE_INTERNAL_TASK_RECORD_H_

#include <coroutine>
#include <cstdint>
#include <string>

#include "cancel/cancel_state.h"
#include "core/budget.h"
#include "core/executor.h"
#include "core/id.h"
#include "core/outcome.h"
#include "core/source_site.h"

namespace asupersync {
class Region;
}  // namespace asupersync

namespace asupersync::internal {

enum class TaskState : uint8_t { kCreated, kRunning, kSuspended, kCompleted };

std::string_view task_state_name(TaskState state);

// Base of every awaiter that parks a task. While parked, the task's `current_wait` points at
// the node. When a deliverable cancel request reaches the task (or the region `scope` the wait
// was made in), the runtime calls interrupt(): the node must deregister from what it waits on
// and remember that it was cancelled; the runtime then reschedules the task in the cancel lane.
// A node's destructor must also deregister (SPEC 4.5: frames may be destroyed while parked).
class WaitNode {
 public:
  // Returns true if the wait ended (the runtime reschedules the task), false if the task keeps
  // waiting (region close: cancelling that wait cancels the region instead).
  virtual bool interrupt() = 0;

  // What the task waits on, for diagnostics and deadlock reports ("sleep", "join", ...).
  const char* what = "";
  // Region of the Cx the wait was made with (region-scoped cancellation of a region body).
  Region* scope = nullptr;
  // False while destroying the waiting frame would abandon live work (a region close).
  bool destroy_safe = true;

 protected:
  ~WaitNode() = default;
};

class TaskRecord {
 public:
  TaskRecord() = default;
  TaskRecord(const TaskRecord&) = delete;
  TaskRecord& operator=(const TaskRecord&) = delete;

  // Moves the finished root frame's result into the record's outcome slot.
  virtual void capture_outcome() = 0;
  // Records Cancelled(reason) as the outcome without a frame (escalation, SPEC 4.5).
  virtual void set_cancelled_outcome(const CancelReason& reason) = 0;
  // The outcome without its value, once completed.
  virtual Outcome<void> outcome_summary() const = 0;

  void add_ref() { ++refs; }
  // Frees the record when the last reference goes.
  void release();

  TaskId id;
  std::string name;
  SourceSite spawn_site;
  Region* region = nullptr;
  Executor* executor = nullptr;
  TaskState state = TaskState::kCreated;
  CancelState cancel;
  Budget budget = Budget::Infinite();

  // The spawned coroutine, and the innermost suspended coroutine to resume next.
  std::coroutine_handle<> root;
  std::coroutine_handle<> resume_point;
  WaitNode* current_wait = nullptr;
  // Set by the root coroutine's final_suspend.
  bool frame_finished = false;
  bool budget_exhausted = false;
  // Outcome recorded by the region join already (avoid double counting).
  bool outcome_reported = false;

  // The innermost region whose body this task is running (Region::open), or null.
  Region* body_region = nullptr;

  // Scheduling state, owned by the executor. When schedule() queues a task that was not
  // queued it sets `queued` and takes a reference (add_ref); run_task releases it.
  bool queued = false;
  Lane queued_lane = Lane::kReady;
  uint64_t executor_data = 0;

  uint32_t polls = 0;
  uint32_t polls_since_cancel = 0;

  // Tasks parked in join() on this one (intrusive, see JoinWaiter in task_handle.h).
  class JoinWaiterBase* join_waiters = nullptr;

  uint32_t refs = 1;

 protected:
  virtual ~TaskRecord() = default;
  virtual void destroy_self() = 0;
};

class JoinWaiterBase : public WaitNode {
 public:
  JoinWaiterBase* prev = nullptr;
  JoinWaiterBase* next = nullptr;
  TaskRecord* waiter = nullptr;
  bool linked = false;

  void link(TaskRecord& target);
  void unlink(TaskRecord& target);

 protected:
  ~JoinWaiterBase() = default;
};

// The cancel request that a cancellation point made with a context for `scope` would deliver
// now, or nullptr: the task's own request unless shielded, else a request on `scope` when it is
// a region the task runs the body of.
const CancelReason* deliverable_cancel(TaskRecord& task, Region* scope);

// Parks `task` on `node` at `resume_point` (call from await_suspend).
void park(TaskRecord& task, WaitNode& node, std::coroutine_handle<> resume_point);
// Makes a parked task runnable again (the wait was satisfied). Routes to the cancel lane when
// a request is pending (SPEC 6.2).
void wake(TaskRecord& task, Lane lane);

// Requests cancellation of one task (SPEC 4.1, 4.2): records the request, interrupts its wait
// if deliverable, and moves it to the cancel lane.
void request_cancel(TaskRecord& task, const CancelReason& reason, const Budget& cleanup);

// Interrupts the wait of a task running a body in (or below) `cancelled`, when deliverable.
void interrupt_scoped_wait(TaskRecord& task, const Region& cancelled);

// Runs one scheduling step of `task` (called by executors when they dispatch it; releases the
// queue's reference): escalates if
// its cleanup budget is spent (SPEC 4.5), resumes it, and completes it when its frame finished.
void run_task(TaskRecord& task);

// Completes a task whose cleanup budget ran out under kDestroy: destroys the frame while it is
// parked (every awaiter deregisters in its destructor) and records Cancelled with
// budget_exhausted. No-op for a task that is waiting on a region close (regions are never
// abandoned) or already completed.
void escalate_destroy(TaskRecord& task);

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_TASK_RECORD_H_
