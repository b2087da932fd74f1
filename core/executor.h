// Executor: what a runtime must provide to //core.
//
// Core implements tasks, contexts, regions and the cancel protocol on top of this small
// interface; a runtime implements it. //lab's LabRuntime is the deterministic single-threaded
// implementation (seeded choice among runnable tasks, virtual time); //sched will provide the
// multi-threaded one.
//
// Thread-safety: a multi-threaded executor must accept schedule(), promote_to_cancel_lane(),
// schedule_cancel(), promote_to_cancel_lane_at(), schedule_cancel_batch(), add_timer() and
// remove_timer() from any thread, concurrently with the task running: a task is resumed by one
// thread at a time, and a schedule() that arrives while it runs makes it run once more
// afterwards (SPEC 6.3).
// remove_timer() returns only when fire() of that node is not running and will not run. fire()
// may run with the executor's timer lock held; it may take a task's lock and call schedule() but
// nothing else. Core never holds a task's lock while calling schedule(). The lab executor is
// single-threaded.
// Lifetime: an executor outlives every task, region and timer it was given.
//
// Cancellation contract: schedule() with Lane::kCancel must place the task ahead of timed and
// ready work (SPEC 6.2), and move a task already queued in another lane to the cancel lane.

#ifndef ASUPERSYNC_CORE_EXECUTOR_H_
#define ASUPERSYNC_CORE_EXECUTOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/time.h"

namespace asupersync {

class Region;
namespace internal {
class TaskRecord;
}  // namespace internal

// The three dispatch lanes, highest priority first (SPEC 6.2).
enum class Lane : uint8_t { kCancel = 0, kTimed = 1, kReady = 2 };

// What core reports through Executor::on_runtime_event: the runtime objects a step touches, so
// that the lab can record them (exploration, oracles, traces). Each names the task or region it
// concerns; events come from the thread running the step that caused them.
enum class RuntimeEvent : uint8_t {
  kRegionStateRead,        // region: a step read its state (admitting a spawn or a child region,
                           // or a cancel that found it already finalizing or closed)
  kRegionOpened,           // region: its body is about to run in `task` (the opening task)
  kRegionStateChanged,     // region: state() changed (reported with the region's lock held)
  kRegionCancelled,        // region: a cancel request reached it (reported with its lock held)
  kFinalizerAdded,         // region: a finalizer was registered
  kRegionClosed,           // region: Closed (close or abandon), before it detaches from its parent
  kCancelRequested,        // task: request_cancel recorded a request for it (task not completed)
  kCancelAfterCompletion,  // task: a request reached it after it completed (changes nothing)
  kCancelAcknowledged,     // task: a cancellation point delivered its own request
  kWakeAttempt,            // task: a waker tried to end its wait (internal::wake; stale or not)
  kJoinWaitRemoved,        // task: a joiner was unlinked from its join list (target's lock held)
  kJoinCompleted,          // task: a join of it returned (it read the task's completion and took
                           // or was refused its outcome); reported from the joining step
};

// A timer registration, embedded in whatever waits (intrusive: adding a timer allocates
// nothing). The executor calls fire() once when `deadline` is reached, unless the timer was
// removed first. fire() runs on the executor's loop, never inside a task's resume.
class TimerNode {
 public:
  virtual void fire() = 0;

  Time deadline = Time::Infinite();
  // Owned by the executor while registered: a slot and intrusive links (a timing wheel keeps
  // its buckets as doubly linked lists of nodes, so insert and cancel allocate nothing).
  uint64_t executor_slot = 0;
  TimerNode* executor_prev = nullptr;
  TimerNode* executor_next = nullptr;
  bool registered = false;

 protected:
  ~TimerNode() = default;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Makes `task` runnable in `lane`, holding a reference on it while it is queued (add_ref;
  // released after internal::run_task). A task already queued is not queued again (SPEC 6.3);
  // a queued task moves to the cancel lane when asked to. Scheduling a completed task does
  // nothing.
  virtual void schedule(internal::TaskRecord& task, Lane lane) = 0;

  // A cancel request reached `task` without waking it: if it is queued in another lane, move
  // it to the cancel lane (SPEC 6.2); otherwise do nothing.
  virtual void promote_to_cancel_lane(internal::TaskRecord& task) {}

  // The same two, for a caller that has just read the task's cleanup priority under its lock
  // (request_cancel): an executor ordering its cancel lane by priority can then skip taking the
  // task's lock again to read it. The defaults ignore the hint.
  virtual void schedule_cancel(internal::TaskRecord& task, uint8_t cleanup_priority) {
    schedule(task, Lane::kCancel);
  }
  virtual void promote_to_cancel_lane_at(internal::TaskRecord& task, uint8_t cleanup_priority) {
    promote_to_cancel_lane(task);
  }

  // A batch of schedule_cancel() calls, in order: a region's cancel walk hands over the tasks
  // whose waits it interrupted (up to a chunk at a time) in one call, so that an executor can
  // queue them with one queue operation and one wake-up of an idle worker instead of one each.
  // Each task's cancel-lane placement is as if schedule_cancel() had been called for it.
  // The default loops over schedule_cancel() (the lab needs no batch path).
  struct CancelDelivery {
    internal::TaskRecord* task;
    uint8_t cleanup_priority;
  };
  virtual void schedule_cancel_batch(const CancelDelivery* deliveries, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      schedule_cancel(*deliveries[i].task, deliveries[i].cleanup_priority);
    }
  }

  // The runtime's clock (SPEC 1.1): monotonic in production, virtual in the lab.
  virtual Time now() const = 0;

  // Registers a timer (node.deadline must be set). Not registered twice.
  virtual void add_timer(TimerNode& node) = 0;
  // Removes a registered timer; a no-op for one that fired or was never added.
  virtual void remove_timer(TimerNode& node) = 0;

  // Entropy for the Random capability: seeded in the lab.
  virtual uint64_t next_random() = 0;

  // Observability hooks for tests and the lab's oracles; defaults do nothing.
  virtual void on_task_started(internal::TaskRecord& task) {}
  virtual void on_task_finished(internal::TaskRecord& task) {}
  // See RuntimeEvent. Reported only to an executor that set observes_runtime_events_ (the lab):
  // in production a report is an inline load and a branch, not a virtual call to a no-op, on
  // every wake, admission, cancel and join.
  void on_runtime_event(RuntimeEvent event, internal::TaskRecord* task, Region* region) {
    if (observes_runtime_events_) [[unlikely]] {
      observe_runtime_event(event, task, region);
    }
  }
  // A cancelled task spent its cleanup budget in a region with EscalationPolicy::kWait: the
  // runtime keeps waiting for it and reports the stall here, once per task (SPEC 4.5).
  // `description` names the task, its region, the request and what it waits on.
  virtual void on_cleanup_stalled(internal::TaskRecord& task, const std::string& description);

  // Identifier indices, per runtime so that a lab run is reproducible within one process.
  uint32_t allocate_task_index() {
    return task_indices_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  uint32_t allocate_region_index() {
    return region_indices_.fetch_add(1, std::memory_order_relaxed) + 1;
  }

 protected:
  // An implementation must not take the region's lock from it (events marked "lock held" arrive
  // under it) nor call back into the task's or region's mutators.
  virtual void observe_runtime_event(RuntimeEvent event, internal::TaskRecord* task,
                                     Region* region) {}
  // Set (in its constructor) by an executor that overrides observe_runtime_event.
  bool observes_runtime_events_ = false;

 private:
  std::atomic<uint32_t> task_indices_{0};
  std::atomic<uint32_t> region_indices_{0};
};

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_EXECUTOR_H_
