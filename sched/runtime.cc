#include "sched/runtime.h"

#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/internal/spin_lock.h"
#include "core/internal/task_record.h"
#include "sched/internal/blocking_pool.h"
#include "sched/internal/reactor.h"
#include "sched/internal/ring_queue.h"
#include "sched/internal/signal_watcher.h"
#include "sched/internal/timing_wheel.h"
#include "sched/services.h"

namespace asupersync::sched {
namespace {

using internal::TaskRecord;

// TaskRecord::executor_state: the queue/run protocol of SPEC 6.3.
constexpr uint32_t kQueued = 1;         // in some lane (exactly one live entry owns the run)
constexpr uint32_t kRunning = 2;        // a worker is running it
constexpr uint32_t kNotified = 4;       // woken while running: queue again afterwards
constexpr uint32_t kNotifyCancel = 8;   // ... in the cancel lane
constexpr uint32_t kNotifyTimed = 16;   // ... in the timed lane
constexpr uint32_t kInCancelLane = 32;  // queued, and an entry is in a cancel lane

int64_t monotonic_nanoseconds() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, int64_t timeout_nanoseconds) {
  timespec timeout;
  timespec* timeout_pointer = nullptr;
  if (timeout_nanoseconds >= 0) {
    timeout.tv_sec = timeout_nanoseconds / 1'000'000'000;
    timeout.tv_nsec = timeout_nanoseconds % 1'000'000'000;
    timeout_pointer = &timeout;
  }
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
          timeout_pointer, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint8_t cleanup_priority(TaskRecord& task) {
  std::lock_guard<internal::SpinLock> guard(task.lock);
  return task.cancel.requested() ? task.cancel.cleanup_budget().priority : 0;
}

// How many tasks of one batch of fired timers the firing worker keeps in its own timed lane;
// the rest is shared through the global timed queue (see share_fired_timers).
constexpr size_t kKeptFiredTimers = 32;

// A cancel-lane schedule whose caller did not pass the task's cleanup priority: read it then.
constexpr int kPriorityUnknown = -1;

// The ready run queue of one worker: a bounded FIFO ring that only its owner pushes to and
// that the owner and thieves pop from the head with a CAS. A thief that reads a slot and then
// loses the CAS discards what it read; the owner never overwrites a slot that a successful CAS
// could still return, because it refuses to push when the ring is full.
class RunQueue {
 public:
  static constexpr uint64_t kCapacity = 256;

  RunQueue() {
    for (auto& slot : slots_) slot.store(nullptr, std::memory_order_relaxed);
  }

  bool push(TaskRecord* task) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    const uint64_t head = head_.load(std::memory_order_acquire);
    if (tail - head >= kCapacity) return false;
    slots_[tail & (kCapacity - 1)].store(task, std::memory_order_relaxed);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  TaskRecord* pop() {
    uint64_t head = head_.load(std::memory_order_acquire);
    while (true) {
      const uint64_t tail = tail_.load(std::memory_order_acquire);
      if (head >= tail) return nullptr;
      TaskRecord* task = slots_[head & (kCapacity - 1)].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return task;
      }
    }
  }

  // Owner only: takes up to `max` of the oldest tasks into `out` with one CAS on the head (a
  // thief's concurrent steal makes the CAS retry) and returns how many.
  size_t pop_batch(TaskRecord** out, size_t max) {
    uint64_t head = head_.load(std::memory_order_acquire);
    while (true) {
      const uint64_t tail = tail_.load(std::memory_order_relaxed);
      if (head >= tail) return 0;
      const size_t count = std::min<uint64_t>(tail - head, max);
      for (size_t i = 0; i < count; ++i) {
        out[i] = slots_[(head + i) & (kCapacity - 1)].load(std::memory_order_relaxed);
      }
      if (head_.compare_exchange_weak(head, head + count, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return count;
      }
    }
  }

  // Free slots (the owner's view; thieves only make it larger).
  uint64_t free_slots() const {
    return kCapacity -
           (tail_.load(std::memory_order_relaxed) - head_.load(std::memory_order_acquire));
  }

  // Takes half of this queue (rounded up) into `thief` (the caller's own, empty queue) and
  // returns one of them to run at once, or null.
  TaskRecord* steal_into(RunQueue& thief) {
    TaskRecord* taken[kCapacity / 2 + 1];
    uint64_t head = head_.load(std::memory_order_acquire);
    size_t count;
    while (true) {
      const uint64_t tail = tail_.load(std::memory_order_acquire);
      if (head >= tail) return nullptr;
      count = std::min<uint64_t>((tail - head + 1) / 2, kCapacity / 2);
      for (size_t i = 0; i < count; ++i) {
        taken[i] = slots_[(head + i) & (kCapacity - 1)].load(std::memory_order_relaxed);
      }
      if (head_.compare_exchange_weak(head, head + count, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        break;
      }
    }
    for (size_t i = 1; i < count; ++i) {
      if (!thief.push(taken[i])) internal::invariant_violated("steal into a full run queue");
    }
    return taken[0];
  }

  bool empty() const {
    return head_.load(std::memory_order_acquire) >= tail_.load(std::memory_order_acquire);
  }

 private:
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<TaskRecord*> slots_[kCapacity];
};

}  // namespace

struct Worker {
  int index = 0;
  std::thread thread;
  RunQueue run_queue;
  // Owner-only lanes.
  TaskRecord* lifo_slot = nullptr;
  RingQueue<TaskRecord*> timed_lane;
  // By cleanup priority (highest first), then FIFO. Each entry keeps the priority it was
  // queued with, so an insert reads only its own task's (passed by request_cancel, else read
  // under that task's lock).
  struct CancelEntry {
    uint8_t priority;
    TaskRecord* task;
  };
  RingQueue<CancelEntry> cancel_lane;
  int cancel_streak = 0;
  int lifo_streak = 0;
  // The task this worker is running, and the notify bits (kNotified | lane) of a schedule()
  // it made of itself (a yield): recorded here instead of in executor_state, because only this
  // worker ends the run, and it merges them into the one transition at the end of dispatch.
  TaskRecord* running = nullptr;
  uint32_t self_notified = 0;
  uint32_t tick = 0;
  bool in_dispatch = false;
  // 0 while parked; an unparker stores 1 and wakes the futex.
  std::atomic<uint32_t> futex_word{1};
  std::atomic<bool> parked{false};
  std::atomic<uint64_t> dispatches{0};
  std::atomic<uint64_t> steals{0};
  std::atomic<uint64_t> parks{0};
};

namespace {
thread_local Worker* current_worker = nullptr;
thread_local const void* current_runtime = nullptr;
thread_local uint64_t random_state = 0;
}  // namespace

class Runtime::Impl {
 public:
  explicit Impl(RuntimeOptions options)
      : options_(options),
        reactor_(create_reactor()),
        wheel_(Time::FromNanoseconds(monotonic_nanoseconds())),
        worker_count_(options.workers > 0
                          ? options.workers
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {}

  ~Impl() { stop(); }

  static std::unique_ptr<Reactor> create_reactor() {
    absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::create();
    if (!reactor.ok()) {
      internal::invariant_violated(
          ("runtime: cannot create the epoll reactor: " + reactor.status().ToString()).c_str());
    }
    return std::move(reactor).value();
  }

  Reactor& reactor() { return *reactor_; }

  absl::Status submit_blocking(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(blocking_mutex_);
      if (blocking_ == nullptr) {
        BlockingPoolOptions pool_options;
        pool_options.min_threads = options_.blocking_min_threads;
        pool_options.max_threads = options_.blocking_max_threads;
        absl::StatusOr<std::unique_ptr<BlockingPool>> pool = BlockingPool::create(pool_options);
        if (!pool.ok()) return pool.status();
        blocking_ = std::move(pool).value();
      }
    }
    return blocking_->submit(std::move(job));
  }

  absl::StatusOr<bool> link_shutdown_waiter(services_internal::ShutdownAwaiter& waiter) {
    if (!options_.watch_shutdown_signals) {
      return absl::FailedPreconditionError(
          "shutdown_signal: the runtime does not watch SIGINT/SIGTERM (set "
          "RuntimeOptions::watch_shutdown_signals, as ASUPERSYNC_MAIN does)");
    }
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    if (shutdown_requested_) return false;
    waiter.prev = nullptr;
    waiter.next = shutdown_waiters_;
    if (shutdown_waiters_ != nullptr) shutdown_waiters_->prev = &waiter;
    shutdown_waiters_ = &waiter;
    waiter.linked = true;
    return true;
  }

  void unlink_shutdown_waiter(services_internal::ShutdownAwaiter& waiter) {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    unlink_locked(waiter);
  }

  bool shutdown_requested() const {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    return shutdown_requested_;
  }

  void on_shutdown_signal() {
    std::vector<internal::WakeToken> tokens;
    {
      std::lock_guard<std::mutex> lock(shutdown_mutex_);
      shutdown_requested_ = true;
      while (services_internal::ShutdownAwaiter* waiter = shutdown_waiters_) {
        tokens.emplace_back(*waiter);
        unlink_locked(*waiter);
      }
    }
    for (internal::WakeToken& token : tokens) std::move(token).wake(Lane::kReady);
  }

  void unlink_locked(services_internal::ShutdownAwaiter& waiter) {
    if (!waiter.linked) return;
    if (waiter.prev != nullptr) {
      waiter.prev->next = waiter.next;
    } else {
      shutdown_waiters_ = waiter.next;
    }
    if (waiter.next != nullptr) waiter.next->prev = waiter.prev;
    waiter.prev = waiter.next = nullptr;
    waiter.linked = false;
  }

  void start() {
    std::lock_guard<std::mutex> lock(start_mutex_);
    if (started_) return;
    started_ = true;
    if (options_.watch_shutdown_signals && signals_ == nullptr) {
      absl::StatusOr<std::unique_ptr<SignalWatcher>> watcher =
          SignalWatcher::create(*reactor_, [this](int) { on_shutdown_signal(); });
      if (!watcher.ok()) {
        internal::invariant_violated(
            ("runtime: cannot watch SIGINT/SIGTERM: " + watcher.status().ToString()).c_str());
      }
      signals_ = std::move(watcher).value();
    }
    for (int i = 0; i < worker_count_; ++i) {
      workers_.push_back(std::make_unique<Worker>());
      workers_.back()->index = i;
    }
    for (auto& worker : workers_) {
      worker->thread = std::thread([this, w = worker.get()] { worker_main(*w); });
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(start_mutex_);
      if (!started_) return;
      started_ = false;
    }
    stopping_.store(true, std::memory_order_seq_cst);
    for (auto& worker : workers_) unpark(*worker);
    reactor_->wake();
    for (auto& worker : workers_) worker->thread.join();
    if (blocking_ != nullptr) blocking_->shutdown();
    // Entries still queued hold references (only stale ones: run() returned, so every task of
    // the main region finished).
    for (auto& worker : workers_) {
      while (TaskRecord* task = worker->run_queue.pop()) task->release();
      for (size_t i = 0; i < worker->timed_lane.size(); ++i) worker->timed_lane[i]->release();
      for (size_t i = 0; i < worker->cancel_lane.size(); ++i) {
        worker->cancel_lane[i].task->release();
      }
      if (worker->lifo_slot != nullptr) worker->lifo_slot->release();
    }
    for (auto* queue : {&global_cancel_, &global_timed_, &injection_}) {
      for (size_t i = 0; i < queue->size(); ++i) (*queue)[i]->release();
      queue->clear();
    }
    workers_.clear();
    stopping_.store(false);
  }

  // --- Executor ----------------------------------------------------------------------------

  static uint32_t notify_bits(Lane lane) {
    return kNotified | (lane == Lane::kCancel  ? kNotifyCancel
                        : lane == Lane::kTimed ? kNotifyTimed
                                               : 0);
  }

  // What schedule() must do after the state transition.
  enum class Admission {
    kNone,      // nothing: deduplicated, completed, or noted as a wake of the running task
    kNew,       // queue a new entry (the task was idle; the entry owns the run)
    kPromoted,  // queue a second entry in the cancel lane (the first one goes stale)
  };

  // The executor_state transition of a schedule (SPEC 6.3); takes the entry's reference when
  // one is to be queued.
  Admission admit(TaskRecord& task, Lane lane) {
    if (task.completed()) return Admission::kNone;
    // The running task schedules itself (a yield): no atomic RMW, see Worker::self_notified.
    if (current_runtime == this && current_worker->running == &task) {
      current_worker->self_notified |= notify_bits(lane);
      return Admission::kNone;
    }
    uint32_t state = task.executor_state.load(std::memory_order_acquire);
    while (true) {
      if (state & kRunning) {
        const uint32_t notified = state | notify_bits(lane);
        if (notified == state) return Admission::kNone;
        if (task.executor_state.compare_exchange_weak(state, notified, std::memory_order_acq_rel)) {
          return Admission::kNone;
        }
        continue;
      }
      if (state & kQueued) {
        if (lane != Lane::kCancel || (state & kInCancelLane)) return Admission::kNone;
        if (task.executor_state.compare_exchange_weak(state, state | kInCancelLane,
                                                      std::memory_order_acq_rel)) {
          task.add_ref();  // a second entry, in the cancel lane; the first goes stale
          return Admission::kPromoted;
        }
        continue;
      }
      const uint32_t queued = kQueued | (lane == Lane::kCancel ? kInCancelLane : 0);
      if (task.executor_state.compare_exchange_weak(state, queued, std::memory_order_acq_rel)) {
        task.add_ref();
        return Admission::kNew;
      }
    }
  }

  // `priority`: the task's cleanup priority when the caller read it already (a cancel-lane
  // schedule from request_cancel), else kPriorityUnknown.
  void schedule(TaskRecord& task, Lane lane, int priority = kPriorityUnknown) {
    switch (admit(task, lane)) {
      case Admission::kNone:
        return;
      case Admission::kNew:
        push(task, lane, /*woken_by_running_task=*/true, priority);
        return;
      case Admission::kPromoted:
        push(task, Lane::kCancel, /*woken_by_running_task=*/false, priority);
        return;
    }
  }

  // Executor::schedule_cancel_batch: the same transitions, then one queue operation for the
  // batch. On a worker the tasks join its cancel lane (as single schedules would: no wake-up,
  // the lane is this worker's); from another thread they join the global cancel queue under
  // one acquisition of its lock, and one parked worker is woken for the whole batch.
  void schedule_cancel_batch(const Executor::CancelDelivery* deliveries, size_t count) {
    Worker* worker = current_runtime == this ? current_worker : nullptr;
    if (worker != nullptr) {
      for (size_t i = 0; i < count; ++i) {
        TaskRecord& task = *deliveries[i].task;
        if (admit(task, Lane::kCancel) != Admission::kNone) {
          push_cancel(*worker, task, deliveries[i].cleanup_priority);
        }
      }
      return;
    }
    bool pushed = false;
    {
      std::lock_guard<internal::SpinLock> lock(global_mutex_);
      for (size_t i = 0; i < count; ++i) {
        TaskRecord& task = *deliveries[i].task;
        if (admit(task, Lane::kCancel) != Admission::kNone) {
          global_cancel_.push_back(&task);
          pushed = true;
        }
      }
      if (pushed) update_global_counts_locked();
    }
    if (!pushed) return;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0) unpark_one();
  }

  void promote_to_cancel_lane(TaskRecord& task, int priority = kPriorityUnknown) {
    if (task.executor_state.load(std::memory_order_acquire) & kQueued) {
      schedule(task, Lane::kCancel, priority);
    }
  }

  void add_timer(TimerNode& node) {
    bool earlier;
    {
      std::lock_guard<std::mutex> lock(timer_mutex_);
      if (node.registered) return;
      wheel_.insert(node);
      // next_timer_ stays a lower bound of the wheel's earliest deadline, so an insert only
      // needs a min (wheel_.next_deadline() would scan the earliest tick's nodes on every
      // insert, ~1,000 of them at 100,000 sleepers over 10 ms, under this lock).
      const int64_t deadline = node.deadline.nanoseconds();
      earlier = deadline < next_timer_.load(std::memory_order_relaxed);
      if (earlier) next_timer_.store(deadline, std::memory_order_release);
    }
    // An earlier deadline than the driver sleeps for: wake it (or any parked worker, which then
    // becomes the driver) so it re-arms. Without parked workers there is nothing to wake (the
    // busy ones check the timers every few dispatches and before they park).
    if (earlier) {
      Worker* driver = driver_.load(std::memory_order_acquire);
      if (driver != nullptr) {
        unpark(*driver);
      } else {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (sleeping_.load(std::memory_order_seq_cst) > 0) unpark_one();
      }
    }
  }

  void remove_timer(TimerNode& node) {
    std::lock_guard<std::mutex> lock(timer_mutex_);
    if (node.registered) wheel_.remove(node);
  }

  uint64_t next_random() {
    if (random_state == 0) {
      random_state = static_cast<uint64_t>(monotonic_nanoseconds()) ^
                     reinterpret_cast<uintptr_t>(&random_state);
    }
    return splitmix64(random_state);
  }

  // --- run() support ---------------------------------------------------------------------

  void on_task_finished(TaskRecord& task) {
    if (awaited_.load(std::memory_order_acquire) == &task) {
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_.notify_all();
    }
  }

  void wait_for(TaskRecord& task, Region& root) {
    {
      std::unique_lock<std::mutex> lock(done_mutex_);
      awaited_.store(&task, std::memory_order_release);
      done_.wait(lock, [&] { return task.completed(); });
      awaited_.store(nullptr, std::memory_order_release);
    }
    // The worker that completed the task may still be inside the root region's bookkeeping.
    while (root.live_task_count() != 0) std::this_thread::yield();
  }

  RuntimeStats stats() const {
    RuntimeStats stats;
    for (const auto& worker : workers_) {
      stats.dispatches += worker->dispatches.load(std::memory_order_relaxed);
      stats.steals += worker->steals.load(std::memory_order_relaxed);
      stats.parks += worker->parks.load(std::memory_order_relaxed);
    }
    stats.timers_fired = timers_fired_.load(std::memory_order_relaxed);
    return stats;
  }

  int worker_count() const { return worker_count_; }
  RuntimeOptions options_;

 private:
  // --- queues --------------------------------------------------------------------------------

  void push(TaskRecord& task, Lane lane, bool woken_by_running_task,
            int priority = kPriorityUnknown) {
    Worker* worker = current_runtime == this ? current_worker : nullptr;
    if (worker == nullptr) {
      push_global(task, lane);
      return;
    }
    switch (lane) {
      case Lane::kCancel:
        push_cancel(*worker, task, priority);
        return;
      case Lane::kTimed:
        worker->timed_lane.push_back(&task);
        return;
      case Lane::kReady:
        if (woken_by_running_task && worker->in_dispatch) {
          // The task the running one just woke runs next (LIFO slot); the one it displaces
          // joins the FIFO queue, where idle workers can steal it.
          TaskRecord* displaced = std::exchange(worker->lifo_slot, &task);
          if (displaced != nullptr) push_ready(*worker, *displaced);
        } else {
          push_ready(*worker, task);
        }
        return;
    }
  }

  void push_cancel(Worker& worker, TaskRecord& task, int known_priority) {
    const uint8_t priority = known_priority == kPriorityUnknown
                                 ? cleanup_priority(task)
                                 : static_cast<uint8_t>(known_priority);
    // The common cases append (an insert at begin() of an empty deque is a push_front, which
    // allocates a fresh block each time the front crosses one).
    if (worker.cancel_lane.empty() || worker.cancel_lane.back().priority >= priority) {
      worker.cancel_lane.push_back(Worker::CancelEntry{priority, &task});
      return;
    }
    // Equal priorities stay FIFO; a higher one goes ahead of lower ones.
    worker.cancel_lane.insert_from_back(
        Worker::CancelEntry{priority, &task},
        [priority](const Worker::CancelEntry& entry) { return entry.priority < priority; });
  }

  // `notify`: wake a parked worker to share the work. A task that this worker just ran and
  // re-queues (a yield, or a wake that arrived while it ran) needs none: this worker stays
  // busy and runs it, and the fence of the check would cost a locked instruction per yield.
  void push_ready(Worker& worker, TaskRecord& task, bool notify = true) {
    if (!worker.run_queue.push(&task)) {
      // Full: move the older half of it to the injection queue with the new task (amortised:
      // one CAS claims the half, one lock moves it).
      TaskRecord* moved[RunQueue::kCapacity / 2];
      const size_t count = worker.run_queue.pop_batch(moved, RunQueue::kCapacity / 2);
      {
        std::lock_guard<internal::SpinLock> lock(global_mutex_);
        for (size_t i = 0; i < count; ++i) injection_.push_back(moved[i]);
        injection_.push_back(&task);
        update_global_counts_locked();
      }
      notify = true;
    }
    if (notify) notify_for_new_work();
  }

  void push_global(TaskRecord& task, Lane lane) {
    {
      std::lock_guard<internal::SpinLock> lock(global_mutex_);
      (lane == Lane::kCancel  ? global_cancel_
       : lane == Lane::kTimed ? global_timed_
                              : injection_)
          .push_back(&task);
      update_global_counts_locked();
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0) unpark_one();
  }

  // Requires global_mutex_.
  void update_global_counts_locked() {
    // A store invalidates the line in the other workers' caches: skip it when nothing changed
    // (the cancel count is almost always 0).
    const size_t cancel_count = global_cancel_.size();
    if (global_cancel_count_.load(std::memory_order_relaxed) != cancel_count) {
      global_cancel_count_.store(cancel_count, std::memory_order_release);
    }
    const size_t timed_count = global_timed_.size();
    if (global_timed_count_.load(std::memory_order_relaxed) != timed_count) {
      global_timed_count_.store(timed_count, std::memory_order_release);
    }
    const size_t count = cancel_count + timed_count + injection_.size();
    if (global_count_.load(std::memory_order_relaxed) != count) {
      global_count_.store(count, std::memory_order_seq_cst);
    }
  }

  // Pops from the global queues, cancel first.
  TaskRecord* pop_global(Worker& worker, bool cancel_only) {
    // pop_cancel() asks on every dispatch: a non-empty injection queue must not make it take
    // the lock only to find the global cancel queue empty.
    if (cancel_only && global_cancel_count_.load(std::memory_order_acquire) == 0) return nullptr;
    if (global_count_.load(std::memory_order_acquire) == 0) return nullptr;
    std::lock_guard<internal::SpinLock> lock(global_mutex_);
    TaskRecord* task = nullptr;
    for (auto* queue : {&global_cancel_, &global_timed_, &injection_}) {
      if (cancel_only && queue != &global_cancel_) break;
      if (!queue->empty()) {
        task = queue->front();
        queue->pop_front();
        break;
      }
    }
    // Take a batch of ready work along (amortises the lock): this worker's share of the
    // injection queue, at most half a run queue and what fits. (Also on the fairness pop of
    // next_task_from_lanes: with one task per 61 dispatches there, a task that overflowed
    // into a long injection queue would wait about 61 dispatches per task ahead of it.)
    if (task != nullptr && !cancel_only && !injection_.empty()) {
      const size_t share = injection_.size() / workers_.size() + 1;
      size_t batch = std::min<size_t>(
          {share, RunQueue::kCapacity / 2, static_cast<size_t>(worker.run_queue.free_slots())});
      for (; batch > 0 && !injection_.empty(); --batch) {
        if (!worker.run_queue.push(injection_.front())) break;
        injection_.pop_front();
      }
    }
    update_global_counts_locked();
    return task;
  }

  TaskRecord* pop_cancel(Worker& worker) {
    if (!worker.cancel_lane.empty()) {
      TaskRecord* task = worker.cancel_lane.front().task;
      worker.cancel_lane.pop_front();
      return task;
    }
    return pop_global(worker, /*cancel_only=*/true);
  }

  bool other_work_waiting(const Worker& worker) const {
    return !worker.timed_lane.empty() || worker.lifo_slot != nullptr || !worker.run_queue.empty() ||
           global_count_.load(std::memory_order_relaxed) != 0;
  }

  TaskRecord* next_task(Worker& worker) {
    TaskRecord* task = next_task_from_lanes(worker);
    if (task != nullptr && !from_lifo_) worker.lifo_streak = 0;
    from_lifo_ = false;
    return task;
  }

  TaskRecord* next_task_from_lanes(Worker& worker) {
    ++worker.tick;
    if ((worker.tick & 15) == 0) fire_due_timers(worker);
    // Cancel lane first, with the streak limit (SPEC 6.2).
    if (worker.cancel_streak < options_.cancel_streak_limit || !other_work_waiting(worker)) {
      if (TaskRecord* task = pop_cancel(worker)) {
        ++worker.cancel_streak;
        return task;
      }
    }
    worker.cancel_streak = 0;
    if (!worker.timed_lane.empty()) {
      TaskRecord* task = worker.timed_lane.front();
      worker.timed_lane.pop_front();
      return task;
    }
    if (TaskRecord* task = pop_global_timed(worker)) return task;
    // Fairness: now and then the injection queue goes before local work, and I/O readiness is
    // polled if no idle worker is driving the reactor.
    if (worker.tick % 61 == 0) {
      poll_io_if_undriven(worker);
      if (TaskRecord* task = pop_global(worker, false)) return task;
    }
    if (worker.lifo_slot != nullptr) {
      TaskRecord* task = std::exchange(worker.lifo_slot, nullptr);
      // After three LIFO dispatches in a row the FIFO queue gets a turn, if it has anything: a
      // ping-pong pair then stays on this worker (demoting it to the stealable FIFO queue
      // would wake an idle worker, which steals one side and makes every message cross cores).
      if (++worker.lifo_streak <= 3 ||
          (worker.run_queue.empty() && global_count_.load(std::memory_order_relaxed) == 0)) {
        from_lifo_ = true;
        return task;
      }
      worker.lifo_streak = 0;
      push_ready(worker, *task);
    }
    if (TaskRecord* task = worker.run_queue.pop()) return task;
    return pop_global(worker, false);
  }

  TaskRecord* steal(Worker& worker) {
    const int count = static_cast<int>(workers_.size());
    if (count <= 1) return nullptr;
    const int start = static_cast<int>(next_random() % static_cast<uint64_t>(count));
    for (int i = 0; i < count; ++i) {
      Worker& victim = *workers_[(start + i) % count];
      if (&victim == &worker) continue;
      if (TaskRecord* task = victim.run_queue.steal_into(worker.run_queue)) {
        worker.steals.fetch_add(1, std::memory_order_relaxed);
        return task;
      }
    }
    return nullptr;
  }

  // --- dispatch ----------------------------------------------------------------------------

  void dispatch(Worker& worker, TaskRecord& task) {
    uint32_t state = task.executor_state.load(std::memory_order_acquire);
    while (true) {
      if (!(state & kQueued)) {  // a stale entry (the task was promoted and already ran)
        task.release();
        return;
      }
      if (task.executor_state.compare_exchange_weak(state, kRunning, std::memory_order_acq_rel)) {
        break;
      }
    }
    // Only this worker writes its counters: a plain increment, no locked instruction.
    worker.dispatches.store(worker.dispatches.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
    worker.in_dispatch = true;
    worker.running = &task;
    const bool completed = internal::run_task(task);
    worker.running = nullptr;
    worker.in_dispatch = false;
    const uint32_t self_notified = std::exchange(worker.self_notified, 0);
    if (completed) {
      // A completed task is never queued again (schedule() checks first; a wake that raced
      // past that check only sets notify bits on kRunning), and a stale entry finds no
      // kQueued: the state can stay as it is, saving the transition's locked instruction.
      task.release();
      return;
    }
    state = task.executor_state.load(std::memory_order_acquire);
    while (true) {
      const uint32_t notified = state | self_notified;
      if (notified & kNotified) {
        const Lane lane = (notified & kNotifyCancel)  ? Lane::kCancel
                          : (notified & kNotifyTimed) ? Lane::kTimed
                                                      : Lane::kReady;
        const uint32_t queued = kQueued | (lane == Lane::kCancel ? kInCancelLane : 0);
        if (task.executor_state.compare_exchange_weak(state, queued, std::memory_order_acq_rel)) {
          // The entry's reference carries over. A yield goes to the back of the FIFO queue.
          if (lane == Lane::kReady) {
            push_ready(worker, task, /*notify=*/false);
          } else {
            push(task, lane, /*woken_by_running_task=*/false);
          }
          return;
        }
        continue;
      }
      if (task.executor_state.compare_exchange_weak(state, 0, std::memory_order_acq_rel)) break;
    }
    task.release();
  }

  void poll_io_if_undriven(Worker& worker) {
    if (reactor_->num_registrations() == 0) return;
    Worker* expected = nullptr;
    if (!driver_.compare_exchange_strong(expected, &worker, std::memory_order_seq_cst)) return;
    (void)reactor_->poll(Duration::Zero());
    driver_.store(nullptr, std::memory_order_seq_cst);
  }

  // --- timers --------------------------------------------------------------------------------

  // Any worker fires the due timers of the one shared wheel: busy ones every 16 dispatches,
  // idle ones before they park, the driver when its timerfd expires. The tasks land in this
  // worker's timed lane (node.fire() schedules them in Lane::kTimed), and a large batch is
  // shared (share_fired_timers).
  void fire_due_timers(Worker& worker) {
    const int64_t now = monotonic_nanoseconds();
    if (now < next_timer_.load(std::memory_order_acquire)) return;
    const size_t lane_before = worker.timed_lane.size();
    {
      std::lock_guard<std::mutex> lock(timer_mutex_);
      const size_t fired =
          wheel_.advance(Time::FromNanoseconds(now), [](TimerNode& node) { node.fire(); });
      timers_fired_.fetch_add(fired, std::memory_order_relaxed);
      next_timer_.store(wheel_.next_deadline().nanoseconds(), std::memory_order_release);
    }
    share_fired_timers(worker, lane_before);
  }

  // Only its owner pops a timed lane. A batch of more than kKeptFiredTimers (this worker fell
  // behind: it was descheduled, or a parked driver woke to a burst) would make the rest wait
  // for this one worker while others are idle, so the excess goes to the global timed queue,
  // which every worker serves right after its own timed lane (ahead of ready work), and a
  // parked worker is woken to help. Small batches, the common case, cost nothing here.
  void share_fired_timers(Worker& worker, size_t lane_before) {
    const size_t lane_after = worker.timed_lane.size();
    if (workers_.size() < 2 || lane_after <= lane_before + kKeptFiredTimers) return;
    const size_t keep = lane_before + kKeptFiredTimers;
    {
      std::lock_guard<internal::SpinLock> lock(global_mutex_);
      for (size_t i = keep; i < lane_after; ++i) global_timed_.push_back(worker.timed_lane[i]);
      update_global_counts_locked();
    }
    while (worker.timed_lane.size() > keep) worker.timed_lane.pop_back();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0) unpark_one();
  }

  // Takes this worker's share of the global timed queue (at most kKeptFiredTimers) into its
  // timed lane and returns the first of it, or null.
  TaskRecord* pop_global_timed(Worker& worker) {
    if (global_timed_count_.load(std::memory_order_acquire) == 0) return nullptr;
    std::lock_guard<internal::SpinLock> lock(global_mutex_);
    if (global_timed_.empty()) return nullptr;
    TaskRecord* task = global_timed_.front();
    global_timed_.pop_front();
    const size_t share = std::min<size_t>(global_timed_.size() / workers_.size(), kKeptFiredTimers);
    for (size_t i = 0; i < share; ++i) {
      worker.timed_lane.push_back(global_timed_.front());
      global_timed_.pop_front();
    }
    update_global_counts_locked();
    return task;
  }

  // --- parking -------------------------------------------------------------------------------

  void notify_for_new_work() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0 &&
        searching_.load(std::memory_order_seq_cst) == 0) {
      unpark_one();
    }
  }

  void unpark(Worker& worker) {
    worker.futex_word.store(1, std::memory_order_seq_cst);
    // The driver sleeps in epoll, the others on their futex. Both sides publish first and then
    // look (seq_cst), so either this sees the driver or the driver sees the word.
    if (driver_.load(std::memory_order_seq_cst) == &worker) {
      reactor_->wake();
    } else {
      futex_wake(worker.futex_word);
    }
  }

  void unpark_one() {
    Worker* chosen = nullptr;
    {
      std::lock_guard<std::mutex> lock(sleepers_mutex_);
      if (sleepers_.empty()) return;
      chosen = sleepers_.back();
      sleepers_.pop_back();
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
    }
    unpark(*chosen);
  }

  bool stealable_work_exists(const Worker& self) const {
    if (global_count_.load(std::memory_order_seq_cst) != 0) return true;
    for (const auto& worker : workers_) {
      if (worker.get() != &self && !worker->run_queue.empty()) return true;
    }
    return false;
  }

  void park(Worker& worker) {
    worker.futex_word.store(0, std::memory_order_seq_cst);
    {
      std::lock_guard<std::mutex> lock(sleepers_mutex_);
      sleepers_.push_back(&worker);
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // Re-check after announcing: a producer either sees this sleeper or this check sees its
    // work (both sides fence), so no wake-up is lost.
    bool has_work = stealable_work_exists(worker) || stopping_.load(std::memory_order_seq_cst);
    // The first parked worker is the driver: it sleeps in epoll with the timerfd armed for the
    // next timer, so it wakes for I/O readiness and timers alike (SPEC 6.4, 6.5).
    Worker* expected = nullptr;
    const bool driver =
        driver_.compare_exchange_strong(expected, &worker, std::memory_order_seq_cst);
    if (driver) {
      if (worker.futex_word.load(std::memory_order_seq_cst) != 0) has_work = true;
      const int64_t next = next_timer_.load(std::memory_order_acquire);
      if (next != Time::Infinite().nanoseconds() && next <= monotonic_nanoseconds()) {
        has_work = true;
      }
      (void)reactor_->arm_timer(Time::FromNanoseconds(next));
      worker.parks.fetch_add(1, std::memory_order_relaxed);
      (void)reactor_->poll(has_work ? Duration::Zero() : Duration::Infinite());
    } else if (!has_work) {
      worker.parks.fetch_add(1, std::memory_order_relaxed);
      while (worker.futex_word.load(std::memory_order_acquire) == 0 &&
             !stopping_.load(std::memory_order_acquire)) {
        futex_wait(worker.futex_word, 0, -1);
      }
    }
    if (driver) driver_.store(nullptr, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(sleepers_mutex_);
      auto it = std::find(sleepers_.begin(), sleepers_.end(), &worker);
      if (it != sleepers_.end()) {
        sleepers_.erase(it);
        sleeping_.fetch_sub(1, std::memory_order_seq_cst);
      }
    }
    worker.futex_word.store(1, std::memory_order_relaxed);
    fire_due_timers(worker);
  }

  void worker_main(Worker& worker) {
    // The timer driver sleeps in a futex wait with a timeout, which the kernel may extend by
    // the thread's timer slack (50 us by default): ask for none, for sub-millisecond timer
    // precision (SPEC 6.4).
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    current_worker = &worker;
    current_runtime = this;
    while (!stopping_.load(std::memory_order_acquire)) {
      if (TaskRecord* task = next_task(worker)) {
        dispatch(worker, *task);
        continue;
      }
      fire_due_timers(worker);
      if (!worker.timed_lane.empty() || !worker.cancel_lane.empty()) continue;
      // Search: steal a few rounds before parking.
      searching_.fetch_add(1, std::memory_order_seq_cst);
      TaskRecord* found = nullptr;
      for (int round = 0; round < 4 && found == nullptr; ++round) {
        found = steal(worker);
        if (found == nullptr) found = pop_global(worker, false);
        if (found == nullptr) std::this_thread::yield();
      }
      searching_.fetch_sub(1, std::memory_order_seq_cst);
      if (found != nullptr) {
        // More may be waiting: let another parked worker search too.
        if (!worker.run_queue.empty()) notify_for_new_work();
        dispatch(worker, *found);
        continue;
      }
      park(worker);
    }
    current_worker = nullptr;
    current_runtime = nullptr;
  }

  static thread_local bool from_lifo_;

  std::mutex start_mutex_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};

  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<SignalWatcher> signals_;
  std::mutex blocking_mutex_;
  std::unique_ptr<BlockingPool> blocking_;
  mutable std::mutex shutdown_mutex_;
  bool shutdown_requested_ = false;
  services_internal::ShutdownAwaiter* shutdown_waiters_ = nullptr;

  std::mutex timer_mutex_;
  TimingWheel wheel_;
  std::atomic<int64_t> next_timer_{Time::Infinite().nanoseconds()};
  std::atomic<uint64_t> timers_fired_{0};

  // A spin lock, not a std::mutex: its sections are short (at most half a run queue moved),
  // and both workers take it all the time when the injection queue holds the load (Q =
  // 100,000 busy tasks in cancel_latency / cancel_group). A contended std::mutex sleeps in
  // futex_wait and the holder's unlock pays a futex_wake: perf of cancel_group showed 2 % of
  // the CPU in futex_wake from these releases, and workers sleeping in __lll_lock_wait.
  internal::SpinLock global_mutex_;
  RingQueue<TaskRecord*> global_cancel_;
  RingQueue<TaskRecord*> global_timed_;
  RingQueue<TaskRecord*> injection_;
  // Read on every dispatch by every worker: each on its own cache line, away from the mutex
  // and the queues, and stored only when they change (see update_global_counts_locked).
  alignas(64) std::atomic<size_t> global_count_{0};
  alignas(64) std::atomic<size_t> global_cancel_count_{0};  // global_cancel_.size()
  alignas(64) std::atomic<size_t> global_timed_count_{0};   // global_timed_.size()
  [[maybe_unused]] alignas(64) char global_counts_padding_ = 0;

  std::mutex sleepers_mutex_;
  std::vector<Worker*> sleepers_;
  std::atomic<int> sleeping_{0};
  std::atomic<int> searching_{0};
  std::atomic<Worker*> driver_{nullptr};

  std::mutex done_mutex_;
  std::condition_variable done_;
  std::atomic<TaskRecord*> awaited_{nullptr};

  const int worker_count_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

thread_local bool Runtime::Impl::from_lifo_ = false;

Runtime::Runtime(RuntimeOptions options) : impl_(std::make_unique<Impl>(options)) {}

Runtime::~Runtime() { impl_->stop(); }

RegionRef Runtime::make_root() {
  impl_->start();
  return Region::create_root(*this, RegionOptions{}, impl_->options_.leak_policy);
}

void Runtime::wait_for(internal::TaskRecord& task, Region& root) { impl_->wait_for(task, root); }

int Runtime::worker_count() const { return impl_->worker_count(); }
RuntimeStats Runtime::stats() const { return impl_->stats(); }
void Runtime::schedule(internal::TaskRecord& task, Lane lane) { impl_->schedule(task, lane); }
void Runtime::promote_to_cancel_lane(internal::TaskRecord& task) {
  impl_->promote_to_cancel_lane(task);
}
void Runtime::schedule_cancel(internal::TaskRecord& task, uint8_t cleanup_priority) {
  impl_->schedule(task, Lane::kCancel, cleanup_priority);
}
void Runtime::promote_to_cancel_lane_at(internal::TaskRecord& task, uint8_t cleanup_priority) {
  impl_->promote_to_cancel_lane(task, cleanup_priority);
}
void Runtime::schedule_cancel_batch(const CancelDelivery* deliveries, size_t count) {
  impl_->schedule_cancel_batch(deliveries, count);
}
Time Runtime::now() const { return Time::FromNanoseconds(monotonic_nanoseconds()); }
void Runtime::add_timer(TimerNode& node) { impl_->add_timer(node); }
void Runtime::remove_timer(TimerNode& node) { impl_->remove_timer(node); }
uint64_t Runtime::next_random() { return impl_->next_random(); }
void Runtime::on_task_finished(internal::TaskRecord& task) { impl_->on_task_finished(task); }
Reactor& Runtime::reactor() { return impl_->reactor(); }
absl::Status Runtime::submit_blocking(std::function<void()> job) {
  return impl_->submit_blocking(std::move(job));
}
absl::StatusOr<bool> Runtime::link_shutdown_waiter(services_internal::ShutdownAwaiter& waiter) {
  return impl_->link_shutdown_waiter(waiter);
}
void Runtime::unlink_shutdown_waiter(services_internal::ShutdownAwaiter& waiter) {
  impl_->unlink_shutdown_waiter(waiter);
}
bool Runtime::shutdown_requested() const { return impl_->shutdown_requested(); }

}  // namespace asupersync::sched
