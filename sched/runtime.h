// Runtime: the production multi-threaded runtime (SPEC 6).
//
//   int main() {
//     asupersync::sched::Runtime runtime;              // N workers, N = number of cores
//     asupersync::Outcome<int> outcome = runtime.run([](asupersync::Cx& cx) -> Task<int> {
//       auto child = cx.spawn("worker", [](Cx& cx) -> Task<int> { co_return 42; });
//       co_return (co_await child->join(cx)).value();
//     });
//   }
//
// or `ASUPERSYNC_MAIN(main_task)` with `Task<int> main_task(Cx& cx)`, which returns the
// value as the process exit status (1 for a non-Ok outcome, printed to stderr).
//
// Workers. Each worker thread dispatches from three lanes, highest first (SPEC 6.2):
//   Cancel  tasks with a cancel request, by cleanup priority, then FIFO;
//   Timed   tasks woken by their timer, in firing (deadline) order;
//   Ready   everything else: a LIFO slot for the task the running one just woke, then a FIFO
//           run queue that idle workers steal from, then the runtime's injection queue.
// A worker takes at most `cancel_streak_limit` cancel-lane tasks in a row while other work is
// waiting. A task is queued at most once (a per-task atomic state: idle, queued, running,
// notified), and a wake that arrives while it runs re-queues it once afterwards (SPEC 6.3).
// A cancel request moves a queued task to the cancel lane at once.
//
// Idle workers look for work (steal) a few rounds, then park on a futex. One idle worker is the
// timer driver: it sleeps until the earliest timer is due, with sub-millisecond precision, and
// fires it. Waking a worker is one atomic check when no worker is parked (SPEC 6.3).
//
// Timers: one hierarchical timing wheel (O(1) insert and cancel) under its own lock, advanced by
// whichever worker finds a timer due (busy workers check every few dispatches); a cancelled
// sleep removes its timer (SPEC 6.4).
//
// Thread-safety: run() is called from one thread at a time; the Executor interface is
// thread-safe as core/executor.h requires. Lifetime: destroying the runtime stops and joins the
// workers; run() returns only after the main region closed, so no task outlives it.
// Cancellation contract: as in core (Cx, Region); the runtime adds the lane placement of
// SPEC 6.2 and, for shutdown_signal(), SIGINT/SIGTERM as a cancellation source.

#ifndef ASUPERSYNC_SCHED_RUNTIME_H_
#define ASUPERSYNC_SCHED_RUNTIME_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "core/cx.h"
#include "core/executor.h"
#include "core/region.h"
#include "core/task.h"
#include "obligations/ledger.h"

namespace asupersync::sched {

class Reactor;
namespace services_internal {
class ShutdownAwaiter;
}  // namespace services_internal

struct RuntimeOptions {
  // Worker threads; 0 means one per core (std::thread::hardware_concurrency).
  int workers = 0;
  // SPEC 6.2: cancel-lane dispatches in a row before due or ready work gets a turn.
  int cancel_streak_limit = 16;
  // Leak policy of regions that do not set one (SPEC 5.3): kLog in production.
  LeakPolicy leak_policy = LeakPolicy::kLog;
  // Route SIGINT and SIGTERM to shutdown_signal() (sched/services.h) instead of their default
  // action. Process-wide: the runtime blocks both signals in the thread that starts it (before
  // its workers exist, so they inherit the mask) and reads them through a signalfd.
  bool watch_shutdown_signals = false;
  // Blocking pool (spawn_blocking): threads kept when idle, and the most it grows to.
  size_t blocking_min_threads = 0;
  size_t blocking_max_threads = 64;
};

// Counters for tests and benchmarks (approximate while the runtime runs).
struct RuntimeStats {
  uint64_t dispatches = 0;
  uint64_t steals = 0;
  uint64_t parks = 0;
  uint64_t timers_fired = 0;
};

class Runtime final : public Executor {
 public:
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime() override;
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs `main(cx)` as the body of region "main" under the root region, on the workers, and
  // returns the region's outcome once it closed. Starts the workers on first use.
  template <typename F>
  auto run(F main) -> Outcome<typename std::invoke_result_t<F&, Cx&>::value_type>;

  int worker_count() const;
  RuntimeStats stats() const;

  // Executor.
  void schedule(internal::TaskRecord& task, Lane lane) override;
  void promote_to_cancel_lane(internal::TaskRecord& task) override;
  void schedule_cancel(internal::TaskRecord& task, uint8_t cleanup_priority) override;
  void promote_to_cancel_lane_at(internal::TaskRecord& task, uint8_t cleanup_priority) override;
  void schedule_cancel_batch(const CancelDelivery* deliveries, size_t count) override;
  Time now() const override;
  void add_timer(TimerNode& node) override;
  void remove_timer(TimerNode& node) override;
  uint64_t next_random() override;
  void on_task_finished(internal::TaskRecord& task) override;

  // The epoll reactor (for sched/io.h).
  Reactor& reactor();
  // For sched/services.h: queue a job on the blocking pool (created on first use); register a
  // shutdown waiter (false: the signal already arrived; FailedPrecondition: not watching).
  absl::Status submit_blocking(std::function<void()> job);
  absl::StatusOr<bool> link_shutdown_waiter(services_internal::ShutdownAwaiter& waiter);
  void unlink_shutdown_waiter(services_internal::ShutdownAwaiter& waiter);
  bool shutdown_requested() const;

 private:
  class Impl;
  RegionRef make_root();
  // Waits until `task` completed and left `root`.
  void wait_for(internal::TaskRecord& task, Region& root);

  std::unique_ptr<Impl> impl_;
};

template <typename F>
auto Runtime::run(F main) -> Outcome<typename std::invoke_result_t<F&, Cx&>::value_type> {
  using T = typename std::invoke_result_t<F&, Cx&>::value_type;
  RegionRef root = make_root();
  Cx root_cx(nullptr, root.get(), Capabilities::All(), Budget::Infinite());
  auto driver = root_cx.spawn("main", [main = std::move(main)](Cx& cx) mutable -> Task<Outcome<T>> {
    co_return co_await Region::open(cx, "main", std::move(main));
  });
  if (!driver.ok()) return Outcome<T>::Err(driver.status());
  wait_for(driver->runtime_record(), *root);
  std::optional<Outcome<Outcome<T>>> result = driver->try_take();
  if (!result.has_value()) {
    return Outcome<T>::Err(absl::InternalError("runtime: the main task did not finish"));
  }
  if (result->ok()) return std::move(*result).value();
  return result->template convert_error<T>();
}

}  // namespace asupersync::sched

// Defines main() running `main_task(Cx&) -> Task<int>` on a default Runtime; the exit status is
// its value, or 1 (with the outcome printed to stderr) when it did not finish Ok.
#define ASUPERSYNC_MAIN(main_task)                                                   \
  int main() {                                                                       \
    ::asupersync::sched::RuntimeOptions asupersync_options;                          \
    asupersync_options.watch_shutdown_signals = true;                                \
    ::asupersync::sched::Runtime asupersync_runtime(asupersync_options);             \
    auto asupersync_outcome =                                                        \
        asupersync_runtime.run([](::asupersync::Cx& cx) -> ::asupersync::Task<int> { \
          co_return co_await main_task(cx);                                          \
        });                                                                          \
    if (asupersync_outcome.ok()) return asupersync_outcome.value();                  \
    std::fprintf(stderr, "%s\n", asupersync_outcome.to_string().c_str());            \
    return 1;                                                                        \
  }

#endif  // ASUPERSYNC_SCHED_RUNTIME_H_
