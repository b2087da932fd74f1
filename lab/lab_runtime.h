// LabRuntime: the deterministic single-threaded runtime (SPEC 11.1).
//
// Runs a program — `rt.run([](Cx& cx) -> Task<T> {...})` — to completion on one thread with
// virtual time. At each step it dispatches one runnable task from the highest non-empty lane
// (cancel > timed > ready, SPEC 6.2); within the lane the choice is drawn from a seeded
// generator (or FIFO with `randomize = false`). When every task is blocked, virtual time jumps
// to the next timer; when no timer is pending either, the run is a deadlock: the report names
// every task and what it waits on, the blocked tasks are destroyed (kDestroy, so every awaiter
// deregisters) and the outcome is Err(FailedPrecondition) carrying the report.
//
// Same seed and options ⇒ same schedule, same trace hash and same outcomes: the runtime reads
// no wall clock, and every choice comes from the seed.
//
// After each run the oracles are checked (SPEC 11.3 subset): no task outlives its region,
// the root region is quiescent, every spawned task finished exactly once. Violations are
// listed in `report().violations`.
//
// Thread-safety: a LabRuntime and everything running on it belong to the thread that calls
// run(). Lifetime: run() returns only after the root region is Closed.
// Cancellation contract: see Cx and Region; the lab adds nothing.

#ifndef ASUPERSYNC_LAB_LAB_RUNTIME_H_
#define ASUPERSYNC_LAB_LAB_RUNTIME_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/cx.h"
#include "core/executor.h"
#include "core/region.h"
#include "core/task.h"

namespace asupersync::lab {

struct LabOptions {
  uint64_t seed = 0;
  // Draw the next task at random within its lane; false: FIFO.
  bool randomize = true;
  // Abort the run as a livelock after this many dispatches.
  uint64_t max_steps = 50'000'000;
  LeakPolicy leak_policy = LeakPolicy::kPanic;
};

struct LabReport {
  uint64_t steps = 0;
  uint64_t tasks_started = 0;
  uint64_t tasks_finished = 0;
  Time end_time = Time::Epoch();
  // A 64-bit hash of the dispatch sequence (task ids, lanes, virtual times): same seed and
  // options, same hash. Compare it between runs of one build; its values are not stable across
  // versions of the lab.
  uint64_t trace_hash = 0;
  bool deadlocked = false;
  std::string deadlock_report;
  std::vector<std::string> violations;
  // Cleanup stalls reported under EscalationPolicy::kWait (SPEC 4.5), in order.
  std::vector<std::string> stalls;
};

class LabRuntime final : public Executor {
 public:
  explicit LabRuntime(LabOptions options = {});
  ~LabRuntime() override;
  LabRuntime(const LabRuntime&) = delete;
  LabRuntime& operator=(const LabRuntime&) = delete;

  // Runs `main(cx)` as the body of a region "main" under the root region and returns its
  // outcome (the region's: body joined with its children).
  template <typename F>
  auto run(F main) -> Outcome<typename std::invoke_result_t<F&, Cx&>::value_type>;

  const LabReport& report() const { return report_; }

  // Executor.
  void schedule(internal::TaskRecord& task, Lane lane) override;
  void promote_to_cancel_lane(internal::TaskRecord& task) override;
  Time now() const override { return now_; }
  void add_timer(TimerNode& node) override;
  void remove_timer(TimerNode& node) override;
  uint64_t next_random() override;
  void on_task_started(internal::TaskRecord& task) override;
  void on_task_finished(internal::TaskRecord& task) override;
  void on_cleanup_stalled(internal::TaskRecord& task, const std::string& description) override;

 private:
  // Dispatches until `driver` finished and nothing is runnable or timed; on a deadlock fills
  // the report and destroys the blocked tasks.
  void drive(internal::TaskRecord& driver);
  internal::TaskRecord* pick();
  bool fire_next_timers();
  void check_oracles(const internal::TaskRecord& driver);
  void mix(uint64_t value);

  // The cancel lane: one FIFO bucket per cleanup priority, highest priority first (SPEC 6.2).
  // Within a bucket, tasks keep their order of arrival in the lane, so the k-th task of the
  // best bucket is the k-th task of the lane among those of the best priority: picking needs no
  // scan of the lane. A task in the lane has executor_data = (arrival << 8) | its bucket's
  // priority.
  struct CancelBucket {
    uint8_t priority;
    std::deque<internal::TaskRecord*> tasks;
  };
  void push_cancel(internal::TaskRecord& task);
  // A repeated request can raise the cleanup priority of a task already in the cancel lane:
  // move it to its new bucket, at its place by arrival.
  void rebucket_cancel(internal::TaskRecord& task);
  std::deque<internal::TaskRecord*>& cancel_bucket(uint8_t priority);

  LabOptions options_;
  uint64_t rng_state_;
  Time now_ = Time::Epoch();
  // Indexed by Lane; lanes_[kCancel] is unused (see cancel_buckets_).
  std::deque<internal::TaskRecord*> lanes_[3];
  std::vector<CancelBucket> cancel_buckets_;  // by priority, descending; empty ones are kept
  size_t cancel_queued_ = 0;
  uint64_t cancel_arrivals_ = 0;
  std::map<std::pair<int64_t, uint64_t>, TimerNode*> timers_;
  uint64_t timer_sequence_ = 0;
  RegionRef root_;
  LabReport report_;
};

template <typename F>
auto LabRuntime::run(F main) -> Outcome<typename std::invoke_result_t<F&, Cx&>::value_type> {
  using T = typename std::invoke_result_t<F&, Cx&>::value_type;
  report_ = LabReport{};
  root_ = Region::create_root(*this, RegionOptions{}, options_.leak_policy);
  Cx root_cx(nullptr, root_.get(), Capabilities::All(), Budget::Infinite());
  auto driver = root_cx.spawn("main", [main = std::move(main)](Cx& cx) mutable -> Task<Outcome<T>> {
    co_return co_await Region::open(cx, "main", std::move(main));
  });
  if (!driver.ok()) return Outcome<T>::Err(driver.status());
  drive(driver->runtime_record());
  std::optional<Outcome<Outcome<T>>> result = driver->try_take();
  root_.reset();
  if (report_.deadlocked) {
    return Outcome<T>::Err(absl::FailedPreconditionError(
        "lab: deadlock: every task is blocked and no timer is pending\n" +
        report_.deadlock_report));
  }
  if (!result.has_value()) {
    return Outcome<T>::Err(absl::InternalError("lab: the main task did not finish"));
  }
  if (result->ok()) return std::move(*result).value();
  return result->template convert_error<T>();
}

}  // namespace asupersync::lab

#endif  // ASUPERSYNC_LAB_LAB_RUNTIME_H_
