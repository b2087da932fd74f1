#include "lab/lab_runtime.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace asupersync::lab {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr uint64_t kTraceSeed = 0xcbf29ce484222325ull;
constexpr uint64_t kTraceMultiplier = 0x9e3779b97f4a7c15ull;

}  // namespace

LabRuntime::LabRuntime(LabOptions options) : options_(options), rng_state_(options.seed) {}

LabRuntime::~LabRuntime() = default;

// One multiply per event (the byte-wise FNV-1a this replaced took eight dependent multiplies
// per word, twice per dispatch). Order-sensitive; good enough to tell two schedules apart.
void LabRuntime::mix(uint64_t value) {
  const uint64_t h = (report_.trace_hash ^ value) * kTraceMultiplier;
  report_.trace_hash = h ^ (h >> 32);
}

uint64_t LabRuntime::next_random() { return splitmix64(rng_state_); }

void LabRuntime::schedule(internal::TaskRecord& task, Lane lane) {
  if (task.completed()) return;
  if (task.queued) {
    if (lane != Lane::kCancel) return;  // deduplicated
    if (task.queued_lane == Lane::kCancel) {
      rebucket_cancel(task);
      return;
    }
    auto& from = lanes_[static_cast<int>(task.queued_lane)];
    from.erase(std::find(from.begin(), from.end(), &task));
  } else {
    task.queued = true;
    task.add_ref();  // the queue's reference; released after the task ran
  }
  task.queued_lane = lane;
  if (lane == Lane::kCancel) {
    push_cancel(task);
  } else {
    lanes_[static_cast<int>(lane)].push_back(&task);
  }
}

std::deque<internal::TaskRecord*>& LabRuntime::cancel_bucket(uint8_t priority) {
  auto it = cancel_buckets_.begin();
  while (it != cancel_buckets_.end() && it->priority > priority) ++it;
  if (it == cancel_buckets_.end() || it->priority != priority) {
    it = cancel_buckets_.insert(it, CancelBucket{priority, {}});
  }
  return it->tasks;
}

void LabRuntime::push_cancel(internal::TaskRecord& task) {
  const uint8_t priority = task.cancel.cleanup_budget().priority;
  task.executor_data = (++cancel_arrivals_ << 8) | priority;
  cancel_bucket(priority).push_back(&task);
  ++cancel_queued_;
}

void LabRuntime::rebucket_cancel(internal::TaskRecord& task) {
  const uint8_t old_priority = static_cast<uint8_t>(task.executor_data & 0xff);
  const uint8_t priority = task.cancel.cleanup_budget().priority;
  if (priority == old_priority) return;
  auto& from = cancel_bucket(old_priority);
  from.erase(std::find(from.begin(), from.end(), &task));
  const uint64_t arrival = task.executor_data >> 8;
  task.executor_data = (arrival << 8) | priority;
  auto& to = cancel_bucket(priority);
  to.insert(std::lower_bound(to.begin(), to.end(), arrival,
                             [](const internal::TaskRecord* queued, uint64_t value) {
                               return (queued->executor_data >> 8) < value;
                             }),
            &task);
}

void LabRuntime::promote_to_cancel_lane(internal::TaskRecord& task) {
  if (task.queued) schedule(task, Lane::kCancel);
}

void LabRuntime::add_timer(TimerNode& node) {
  if (node.registered) return;
  node.executor_slot = ++timer_sequence_;
  node.registered = true;
  timers_.emplace(std::make_pair(node.deadline.nanoseconds(), node.executor_slot), &node);
}

void LabRuntime::remove_timer(TimerNode& node) {
  if (!node.registered) return;
  timers_.erase(std::make_pair(node.deadline.nanoseconds(), node.executor_slot));
  node.registered = false;
}

void LabRuntime::on_task_started(internal::TaskRecord& task) { ++report_.tasks_started; }

void LabRuntime::on_task_finished(internal::TaskRecord& task) { ++report_.tasks_finished; }

void LabRuntime::on_cleanup_stalled(internal::TaskRecord&, const std::string& description) {
  report_.stalls.push_back(description);
}

namespace {

// Removes and returns the task at `index` (the front, in FIFO mode: a cheap pop_front rather
// than deque::erase's general path).
internal::TaskRecord* take(std::deque<internal::TaskRecord*>& queue, size_t index) {
  internal::TaskRecord* task = queue[index];
  if (index == 0) {
    queue.pop_front();
  } else {
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(index));
  }
  return task;
}

// A dispatch as one trace word: the task's index and the lane.
uint64_t dispatch_event(const internal::TaskRecord& task, Lane lane) {
  return (static_cast<uint64_t>(task.id.index()) << 2) | static_cast<uint64_t>(lane);
}

}  // namespace

internal::TaskRecord* LabRuntime::pick() {
  if (cancel_queued_ > 0) {
    // Cancel lane: highest cleanup priority first (SPEC 6.2), seeded among equals.
    for (CancelBucket& bucket : cancel_buckets_) {
      auto& queue = bucket.tasks;
      if (queue.empty()) continue;
      const size_t index = options_.randomize ? next_random() % queue.size() : 0;
      internal::TaskRecord* task = take(queue, index);
      --cancel_queued_;
      mix(dispatch_event(*task, Lane::kCancel));
      return task;
    }
  }
  for (int lane = static_cast<int>(Lane::kTimed); lane < 3; ++lane) {
    auto& queue = lanes_[lane];
    if (queue.empty()) continue;
    const size_t index = options_.randomize ? next_random() % queue.size() : 0;
    internal::TaskRecord* task = take(queue, index);
    mix(dispatch_event(*task, static_cast<Lane>(lane)));
    return task;
  }
  return nullptr;
}

bool LabRuntime::fire_next_timers() {
  if (timers_.empty()) return false;
  const int64_t due = timers_.begin()->first.first;
  if (due > now_.nanoseconds()) now_ = Time::FromNanoseconds(due);
  mix(static_cast<uint64_t>(now_.nanoseconds()));
  // Fire everything due now, in deadline-then-registration order.
  while (!timers_.empty() && timers_.begin()->first.first <= now_.nanoseconds()) {
    TimerNode* node = timers_.begin()->second;
    timers_.erase(timers_.begin());
    node->registered = false;
    node->fire();
  }
  return true;
}

void LabRuntime::drive(internal::TaskRecord& driver) {
  report_.trace_hash = kTraceSeed;
  while (true) {
    if (internal::TaskRecord* task = pick()) {
      task->queued = false;
      internal::run_task(*task);
      task->release();
      if (++report_.steps > options_.max_steps) {
        std::fprintf(stderr, "lab: livelock: more than %llu steps\n",
                     static_cast<unsigned long long>(options_.max_steps));
        std::abort();
      }
      continue;
    }
    if (fire_next_timers()) continue;
    if (driver.completed()) break;
    // Deadlock (SPEC 11.1): report, then destroy the blocked tasks (innermost first: a task
    // waiting on a region close is destroyed once its region closed).
    if (!report_.deadlocked) {
      report_.deadlocked = true;
      report_.deadlock_report = root_->dump();
    }
    std::vector<internal::TaskRecord*> blocked;
    std::vector<Region*> pending = {root_.get()};
    while (!pending.empty()) {
      Region* region = pending.back();
      pending.pop_back();
      for (internal::TaskRecord* task : region->live_tasks_referenced()) blocked.push_back(task);
      for (Region* child : region->children_snapshot()) pending.push_back(child);
    }
    bool progressed = false;
    for (internal::TaskRecord* task : blocked) {
      internal::escalate_destroy(*task);
      if (task->completed()) progressed = true;
    }
    for (internal::TaskRecord* task : blocked) task->release();
    if (!progressed) {
      std::fprintf(stderr, "lab: deadlock that cannot be torn down:\n%s\n",
                   report_.deadlock_report.c_str());
      std::abort();
    }
  }
  report_.end_time = now_;
  check_oracles(driver);
}

void LabRuntime::check_oracles(const internal::TaskRecord& driver) {
  if (root_->live_task_count() != 0 || !root_->children_snapshot().empty()) {
    report_.violations.push_back("task outlives its region: root region not quiescent:\n" +
                                 root_->dump());
  }
  if (report_.tasks_finished != report_.tasks_started) {
    report_.violations.push_back("tasks started " + std::to_string(report_.tasks_started) +
                                 " but finished " + std::to_string(report_.tasks_finished));
  }
  for (auto& lane : lanes_) {
    if (!lane.empty()) report_.violations.push_back("tasks left queued after the run");
  }
  if (cancel_queued_ != 0) report_.violations.push_back("tasks left queued after the run");
}

}  // namespace asupersync::lab
