// The runtime record of a spawned task and the wait protocol shared by every awaiter.
//
// Internal to //core and to the packages that build waits or executors on it (//sync, //sched,
// //net, //lab). User code sees a task through TaskHandle<T> and its own Cx.
//
// Thread-safety: a record is shared between the worker running the task and any thread that
// wakes it, cancels it or joins it. `lock` guards the wait and cancel state (the fields marked
// "guarded"); `state` and `refs` are atomics; the executor owns its own fields. Lock order:
// Region lock (parent before child) → TaskRecord::lock → the lock of a primitive, a timer
// wheel or an executor queue. No code holds a task's lock while it takes a region's, runs user
// code or calls WaitNode::interrupt().
// Lifetime: reference counted: one reference while the task is live (its region owns it), one
// per TaskHandle, one per executor queue entry and one per pending WakeToken. The record, and
// the result it holds, outlive the coroutine frame, which is destroyed as soon as the task
// completes.
//
// The wait protocol (every awaiter that parks a task follows it; see docs/wait_protocol.md):
//   1. await_suspend: `begin_wait(task, node)` gives the wait a ticket, unique per task.
//   2. Register the node with what it waits on (under that primitive's lock).
//   3. `if (!park(node, handle))` the wait ended before the task could suspend — it was already
//      woken (the primitive granted it), or a cancel is deliverable: deregister (under the
//      primitive's lock; a grant that raced in stays granted) and return false (don't suspend).
//   4. Completer (any thread): under the primitive's lock take the node off the queue, record the
//      grant in it and make a `WakeToken(node)`; release the lock; `std::move(token).wake(lane)`.
//      A token wakes only the wait it was made for: a stale token (the wait was cancelled, or the
//      task moved on) does nothing, so a waker never resumes a task that is waiting on something
//      else.
//   5. Cancellation (any thread): the runtime claims the wait under the task's lock — after that
//      no token can wake it — then calls `node.interrupt()` without locks held; the node
//      deregisters and notes that it was cancelled; the runtime reschedules the task in the
//      cancel lane. The node's await_resume reports the cancellation (or a grant that raced in).
//   6. A node's destructor deregisters too: frames may be destroyed while parked (SPEC 4.5).

#ifndef ASUPERSYNC_CORE_INTERNAL_TASK_RECORD_H_
#define ASUPERSYNC_CORE_INTERNAL_TASK_RECORD_H_

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "cancel/cancel_state.h"
#include "core/budget.h"
#include "core/executor.h"
#include "core/id.h"
#include "core/internal/frame_allocator.h"
#include "core/internal/spin_lock.h"
#include "core/outcome.h"
#include "core/source_site.h"

namespace asupersync {
class Region;
}  // namespace asupersync

namespace asupersync::internal {

enum class TaskState : uint8_t { kCreated, kRunning, kSuspended, kCompleted };

std::string_view task_state_name(TaskState state);

class TaskRecord;

// Base of every awaiter that parks a task (see the wait protocol above).
class WaitNode {
 public:
  // The runtime claimed this wait for a cancellation: deregister from what it waits on and
  // remember that the wait was cancelled. Called at most once, with no runtime lock held, and
  // only for `interruptible` nodes. The task is rescheduled after it returns.
  virtual void interrupt() = 0;

  // What the task waits on, for diagnostics and deadlock reports ("sleep", "join", ...).
  const char* what = "";
  // Region of the Cx the wait was made with (region-scoped cancellation of a region body).
  Region* scope = nullptr;
  // False for a wait that a cancel request must not end (a region close: cancelling that wait
  // cancels the region instead, SPEC 4.1).
  bool interruptible = true;
  // False while destroying the waiting frame would abandon live work (a region close).
  bool destroy_safe = true;

  // Set by begin_wait() (the ticket next to the flags, so a node is 8 bytes smaller).
  uint32_t ticket = 0;
  TaskRecord* task = nullptr;

 protected:
  ~WaitNode() = default;
};

// A reference to one parked wait, made by a completer under its own lock while the node is
// still registered, and used after that lock is released. Holds a reference on the task, so
// the task record stays valid even if the task finishes in between. Move-only.
class WakeToken {
 public:
  WakeToken() = default;
  explicit WakeToken(const WaitNode& node);
  WakeToken(WakeToken&& other) noexcept
      : task_(std::exchange(other.task_, nullptr)), ticket_(other.ticket_) {}
  WakeToken& operator=(WakeToken&& other) noexcept {
    if (this != &other) {
      reset();
      task_ = std::exchange(other.task_, nullptr);
      ticket_ = other.ticket_;
    }
    return *this;
  }
  WakeToken(const WakeToken&) = delete;
  WakeToken& operator=(const WakeToken&) = delete;
  ~WakeToken() { reset(); }

  explicit operator bool() const { return task_ != nullptr; }
  // Wakes the wait if it is still the task's current wait; consumes the token.
  void wake(Lane lane = Lane::kReady) && {
    if (task_ != nullptr) wake_and_reset(lane);
  }

 private:
  // The empty-token paths are inline: most completions carry no waiter to wake.
  void reset() {
    if (task_ != nullptr) release_task();
  }
  void wake_and_reset(Lane lane);
  void release_task();
  TaskRecord* task_ = nullptr;
  uint32_t ticket_ = 0;
};

class JoinWaiterBase;

// Schedules a task in the cancel lane when its cleanup deadline passes, so a task parked in a
// wait that ignores the request is still escalated (SPEC 4.5).
// Allocated from the recycling allocator (frame_allocator.h), like the record, not from malloc.
class TaskEscalationTimer final : public TimerNode {
 public:
  void fire() override;
  TaskRecord* task = nullptr;

  static void* operator new(std::size_t size) { return allocate_block(size); }
  static void operator delete(void* block, std::size_t size) noexcept {
    deallocate_block(block, size);
  }
};

// A task's CancelState and the rest of its cancellation bookkeeping, allocated on the first
// request or shield: most tasks are never cancelled nor shielded, and carry one null pointer
// instead of 32 bytes. The interface is CancelState's; while nothing is allocated the queries
// answer "no request, no shield".
// Thread-safety: guarded by the task's lock, like the CancelState it holds (the part, once
// allocated, stays until the record goes: a thread that saw it under the lock may use the
// pointer afterwards).
class LazyCancelState {
 public:
  struct Part {
    CancelState state;
    // Allocated when armed (a request with a cleanup deadline).
    std::unique_ptr<TaskEscalationTimer> escalation_timer;
    // Polls since the request (touched only by the thread running the task).
    uint32_t polls_since_cancel = 0;

    // From the per-thread recycling allocator (frame_allocator.h): a region cancel makes one
    // part per task, and malloc's cost there was a visible share of the request walk.
    static void* operator new(std::size_t size) { return allocate_block(size); }
    static void operator delete(void* block, std::size_t size) noexcept {
      deallocate_block(block, size);
    }
  };

  bool requested() const { return part_ != nullptr && part_->state.requested(); }
  bool deliverable() const { return part_ != nullptr && part_->state.deliverable(); }
  bool acknowledged() const { return part_ != nullptr && part_->state.acknowledged(); }
  int shield_depth() const { return part_ != nullptr ? part_->state.shield_depth() : 0; }
  const CancelReason& reason() const { return state().reason(); }
  const Budget& cleanup_budget() const { return state().cleanup_budget(); }
  // Requires requested().
  const absl::Status& delivery_status() const { return part_->state.delivery_status(); }

  bool request(const CancelReason& reason, const Budget& cleanup_budget) {
    return ensure().state.request(reason, cleanup_budget);
  }
  bool request(const SharedCancelRequest& shared) { return ensure().state.request(shared); }
  void acknowledge() { ensure().state.acknowledge(); }
  absl::Status push_shield() { return ensure().state.push_shield(); }
  // Requires a matching push_shield().
  void pop_shield() { part_->state.pop_shield(); }

  // The allocated part, or null.
  Part* part() const { return part_.get(); }
  Part& ensure() {
    if (part_ == nullptr) part_ = std::make_unique<Part>();
    return *part_;
  }

 private:
  const CancelState& state() const { return part_ != nullptr ? part_->state : unrequested(); }
  static const CancelState& unrequested();

  std::unique_ptr<Part> part_;
};

class TaskRecord {
 public:
  TaskRecord() = default;
  explicit TaskRecord(std::string_view task_name) : name(task_name) {}
  TaskRecord(const TaskRecord&) = delete;
  TaskRecord& operator=(const TaskRecord&) = delete;

  // Moves the finished root frame's result into the record's outcome slot. Returns true when
  // the recorded outcome is Ok (the common case, which the region needs no summary of).
  virtual bool capture_outcome() = 0;
  // Records Cancelled(reason) as the outcome without a frame (escalation, SPEC 4.5).
  virtual void set_cancelled_outcome(const CancelReason& reason) = 0;
  // The outcome without its value, once completed.
  virtual Outcome<void> outcome_summary() const = 0;

  void add_ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  // Frees the record when the last reference goes. Inline: every task is released at least
  // twice (its region's reference and its handle's).
  void release() {
    const uint32_t previous = refs.fetch_sub(1, std::memory_order_acq_rel);
    if (previous == 1) {
      destroy_self();
    } else if (previous == 0) [[unlikely]] {
      released_too_often();
    }
  }

  TaskState load_state() const { return state.load(std::memory_order_acquire); }
  bool completed() const { return load_state() == TaskState::kCompleted; }

  // The fields are ordered by size, small ones packed together: every spawn writes the whole
  // record, so its size is a direct cost (200 bytes; rare state is in LazyCancelState).

  // Identity, set before the task is first scheduled and constant afterwards.
  TaskId id;
  std::string name;
  SourceSite spawn_site;
  Region* region = nullptr;
  Executor* executor = nullptr;

  SpinLock lock;
  std::atomic<TaskState> state{TaskState::kCreated};
  // Mirrors cancel.requested() for lock-free checks at cancellation points (set, never cleared).
  std::atomic<bool> cancel_requested{false};
  // A canceller claimed the wait and is running its interrupt() (no lock held): the task is
  // still parked for every purpose — no dispatch resumes or destroys it — until the canceller
  // clears this and reschedules it.
  bool interrupting = false;  // guarded
  // Touched only by the thread running the task.
  bool frame_finished = false;
  bool stall_reported = false;  // kWait: the stall was reported (once)
  std::atomic<bool> budget_exhausted{false};
  // Owned by the region (under its lock).
  bool outcome_reported = false;

  LazyCancelState cancel;            // guarded
  WaitNode* current_wait = nullptr;  // guarded
  // Wait tickets (guarded): 32 bits, and never 0 (which means "none"). A ticket is reused only
  // after 2^32 - 1 further waits of the same task, so a stale token would have to be held that
  // long to wake the wrong wait.
  uint32_t wait_tickets = 0;       // the last ticket issued
  uint32_t current_ticket = 0;     // the ticket of current_wait
  uint32_t early_wake_ticket = 0;  // a wake that came before its park
  // Touched only by the thread running the task (here, in the tickets' padding).
  uint32_t polls = 0;
  JoinWaiterBase* join_waiters = nullptr;  // guarded
  // The innermost region whose body this task runs (Region::open) until that region closed,
  // or null. Guarded: the task changes it, cancellers read it.
  Region* body_region = nullptr;

  // Touched only by the thread running the task.
  std::coroutine_handle<> root;
  std::coroutine_handle<> resume_point;

  // Owned by the region (under its lock): the region's intrusive list of live tasks.
  TaskRecord* region_prev = nullptr;
  TaskRecord* region_next = nullptr;

  // Owned by the executor. The lab uses the plain fields; a multi-threaded executor keeps its
  // queue/run/notify protocol in executor_state.
  bool queued = false;
  Lane queued_lane = Lane::kReady;
  // Set at spawn, constant: the size of the record's block in 16-byte units (the record and,
  // after it, its root frame's area). Here, in padding, so the record does not grow.
  uint16_t block_units = 0;
  std::atomic<uint32_t> executor_state{0};
  uint64_t executor_data = 0;
  void* executor_link = nullptr;

  std::atomic<uint32_t> refs{1};
  // Set at spawn: the root frame lives in the record's own block (see destroy_root_frame).
  // Last, in the tail padding (a derived record's first field can share the rest).
  bool frame_in_block = false;

 protected:
  virtual ~TaskRecord() = default;
  virtual void destroy_self() = 0;

 private:
  [[noreturn, gnu::cold, gnu::noinline]] static void released_too_often();
};

// A task parked in join() on another (intrusive list in the target's record, guarded by the
// target's lock).
class JoinWaiterBase : public WaitNode {
 public:
  JoinWaiterBase* prev = nullptr;
  JoinWaiterBase* next = nullptr;
  bool linked = false;

  // Both require the target's lock.
  void link(TaskRecord& target);
  void unlink(TaskRecord& target);

 protected:
  ~JoinWaiterBase() = default;
};

// Step 1 of the wait protocol: a fresh ticket for `node` (sets node.task and node.ticket).
void begin_wait(TaskRecord& task, WaitNode& node);
// Step 3: parks the task on `node` at `resume_point`. False if the wait already ended (woken
// before the park) or a cancel request is deliverable to it: the caller must not suspend.
[[nodiscard]] bool park(WaitNode& node, std::coroutine_handle<> resume_point);
// Wakes `task` if `ticket` is its current wait (or records an early wake for a wait that has
// not parked yet). Routes to the cancel lane when a request is pending (SPEC 6.2).
void wake(TaskRecord& task, uint32_t ticket, Lane lane);

// True if a cancellation point made with a context for `scope` would deliver a request now:
// the task's own request unless shielded, else a request on `scope` when it is a region the
// task runs the body of.
bool cancel_deliverable(TaskRecord& task, Region* scope);
// The request such a cancellation point would deliver, if any.
std::optional<CancelReason> deliverable_cancel(TaskRecord& task, Region* scope);

// Makes a new task runnable (spawn).
inline void schedule_new(TaskRecord& task) { task.executor->schedule(task, Lane::kReady); }

// Requests cancellation of one task (SPEC 4.1, 4.2): records the request, cancels the regions
// whose body the task runs, interrupts its wait if deliverable, and moves it to the cancel lane.
// `shared` (optional) is the request made once of (reason, cleanup_budget_for(reason.kind(),
// cleanup), cancelled_status(reason)) by a region cancelling many tasks: the task keeps a
// reference to it instead of a copy.
void request_cancel(TaskRecord& task, const CancelReason& reason, const Budget& cleanup,
                    const SharedCancelRequest* shared = nullptr);

// The requests of one region's cancel walk (Region::cancel), queued in batches: request() does
// what request_cancel does, interrupting the task's wait when it claims one, but keeps the task
// instead of scheduling it; flush() (called by request() when a chunk is full, and by the walk
// at its end) hands the chunk to Executor::schedule_cancel_batch at once: one queue operation
// and one wake-up for up to kChunk tasks instead of one each (a cancel from a thread that is
// not a worker otherwise takes the runtime's global queue lock and wakes a worker per task). A
// kept task's wait is interrupted but the task is not yet queued, as between finish_interrupt's
// two steps: only a dispatch already pending (a stale queue entry, its escalation timer) can run
// it meanwhile, and its flush then counts as a wake of a running or completed task. A task that
// is running or queued is promoted at once, as request_cancel does.
// Thread-safety: one walk's object, used by one thread. Lifetime: on the walk's stack; its
// destructor flushes what is left. The records of kept tasks stay alive until the flush because
// the walk holds their region's lock, and a task leaves its region under that lock before its
// record can go (complete_task).
class CancelBatch {
 public:
  explicit CancelBatch(Executor& executor) : executor_(executor) {}
  CancelBatch(const CancelBatch&) = delete;
  CancelBatch& operator=(const CancelBatch&) = delete;
  ~CancelBatch() { flush(); }

  void request(TaskRecord& task, const CancelReason& reason, const Budget& cleanup,
               const SharedCancelRequest* shared);
  void flush();

 private:
  static constexpr size_t kChunk = 64;
  Executor& executor_;
  size_t count_ = 0;
  Executor::CancelDelivery deliveries_[kChunk];
};

// Interrupts the wait of a task running a body in (or below) `cancelled`, when deliverable.
void interrupt_scoped_wait(TaskRecord& task, const Region& cancelled);

// Runs one scheduling step of `task` (called by executors when they dispatch it; the executor
// owns the queue reference and its queued flags): escalates if its cleanup budget is spent
// (SPEC 4.5), resumes it unless it is parked, and completes it when its frame finished.
// Returns true when the task is completed.
bool run_task(TaskRecord& task);

// Completes a task whose cleanup budget ran out under kDestroy: destroys the frame while it is
// parked (every awaiter deregisters in its destructor) and records Cancelled with
// budget_exhausted. No-op for a task that is running, completed, waiting on a region close, or
// running the body of a region that still has live work (regions are never abandoned; their
// own tasks are escalated instead). Call only from the thread that would run the task.
void escalate_destroy(TaskRecord& task);

// Destroys the task's root frame, if it still has one (every awaiter deregisters in its
// destructor). A frame in the record's block is not freed on its own: it goes with the record.
inline void destroy_root_frame(TaskRecord& task) {
  std::coroutine_handle<> root = std::exchange(task.root, {});
  if (!root) return;
  if (task.frame_in_block) {
    BorrowedFrame borrowed(root.address());
    root.destroy();
  } else {
    root.destroy();
  }
}

// Aborts with a message naming the violated invariant.
[[noreturn]] void invariant_violated(const char* what);

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_TASK_RECORD_H_
