// Micro-benchmarks of the core model on the deterministic single-threaded LabRuntime
// (issue 3): spawn+join of an empty task, region open+close, cancelling a region of N suspended
// tasks until it is Closed, Outcome join and Budget meet.
//
// Runtime benchmarks time the operation only. Each benchmark iteration is one LabRuntime::run;
// inside it the main task reads std::chrono::steady_clock (and the thread's CPU clock) around
// the measured loop and reports that through manual timing (UseManualTime), so building the
// runtime, opening the "main" region and (for the cancel benchmark) spawning the victims are
// excluded. The "Time" column is therefore the measured window of one run; the per-operation
// figures are the counters `ns_per_op` (wall) and `cpu_ns_per_op` (thread CPU time, which leaves
// out preemption by other processes), total measured time / total operations, which is what
// bench/README.md records.
//
// Arguments: /N = operations per run, /R = LabOptions::randomize (0: FIFO, production-like;
// 1: seeded random choice within a lane, what the lab uses to explore interleavings).
//
// A benchmark whose runtime misbehaves (an unexpected outcome, an oracle violation) aborts: its
// figure would be meaningless. //bench:core_benchmark_smoke_test runs each benchmark briefly.

#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/budget.h"
#include "core/cancel_reason.h"
#include "core/cx.h"
#include "core/outcome.h"
#include "core/region.h"
#include "core/task.h"
#include "lab/lab_runtime.h"

namespace asupersync {
namespace {

using Clock = std::chrono::steady_clock;

// The measured window of one run: wall time (steady_clock, what the targets are about) and the
// calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which leaves out the time the thread was
// preempted: on a shared, loaded machine it is the better estimate of the code's cost.
struct Measured {
  double wall = 0;
  double cpu = 0;
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

class Window {
 public:
  void start() {
    wall_ = Clock::now();
    cpu_ = thread_cpu_seconds();
  }
  Measured stop() const {
    const double cpu = thread_cpu_seconds() - cpu_;
    return Measured{std::chrono::duration<double>(Clock::now() - wall_).count(), cpu};
  }

 private:
  Clock::time_point wall_;
  double cpu_ = 0;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "core_benchmark: %s\n", what.c_str());
  std::abort();
}

template <typename T>
void check_run(const lab::LabRuntime& runtime, const Outcome<T>& outcome) {
  if (!outcome.ok()) fail("the run failed: " + outcome.to_string());
  if (!runtime.report().violations.empty()) {
    fail("lab oracle violation: " + runtime.report().violations.front());
  }
}

// One untimed run that warms the per-thread frame allocator and the caches, so that every timed
// iteration sees the steady state. A separate function so that a profiler can leave it out
// (callgrind: --toggle-collect='*run_benchmark<*' --toggle-collect='*warm_up<*' with
// --benchmark_min_time=0 counts exactly one steady-state run).
template <typename RunOnce>
[[gnu::noinline]] void warm_up(RunOnce run_once, const lab::LabOptions& options, int64_t n) {
  (void)run_once(options, n);
}

// Runs a runtime benchmark: `run_once(options, n)` is one LabRuntime run that returns its
// measured window. The manual time of an iteration is the window's wall time; `ns_per_op` and
// `cpu_ns_per_op` are the total wall and thread CPU time over the total operations.
template <typename RunOnce>
void run_benchmark(benchmark::State& state, RunOnce run_once) {
  const lab::LabOptions options{.seed = 1, .randomize = state.range(1) != 0};
  const int64_t n = state.range(0);
  warm_up(run_once, options, n);
  Measured total;
  for (auto _ : state) {
    const Measured measured = run_once(options, n);
    state.SetIterationTime(measured.wall);
    total.wall += measured.wall;
    total.cpu += measured.cpu;
  }
  const double ops = static_cast<double>(state.iterations()) * static_cast<double>(n);
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["ns_per_op"] = ops > 0 ? total.wall * 1e9 / ops : 0;
  state.counters["cpu_ns_per_op"] = ops > 0 ? total.cpu * 1e9 / ops : 0;
}

// Function objects rather than lambdas: nothing is a lambda temporary inside a co_await
// (core/README.md, GCC 12).
struct EmptyTask {
  Task<void> operator()(Cx&) const { co_return; }
};

struct SleepForever {
  Task<void> operator()(Cx& cx) const {
    // Cancelled by the benchmark; the status is the Cancelled one and is ignored on purpose.
    (void)co_await cx.sleep(Duration::Seconds(1'000'000'000));
  }
};

// --- spawn + join ----------------------------------------------------------------------------

// The main task spawns N empty tasks, then joins each: the per-task cost of spawning, running,
// completing and joining, with N tasks live at once.
[[gnu::noinline]] Measured run_spawn_join_batch(const lab::LabOptions& options, int64_t n) {
  lab::LabRuntime runtime(options);
  Measured measured;
  Outcome<void> outcome = runtime.run([n, &measured](Cx& cx) -> Task<void> {
    std::vector<TaskHandle<void>> handles;
    handles.reserve(static_cast<size_t>(n));
    Window window;
    window.start();
    for (int64_t i = 0; i < n; ++i) {
      auto spawned = cx.spawn("empty", EmptyTask{});
      if (!spawned.ok()) fail("spawn: " + spawned.status().ToString());
      handles.push_back(std::move(spawned).value());
    }
    for (TaskHandle<void>& handle : handles) {
      Outcome<void> joined = co_await handle.join(cx);
      if (!joined.ok()) fail("join: " + joined.to_string());
    }
    measured = window.stop();
  });
  check_run(runtime, outcome);
  return measured;
}
void BM_SpawnJoinBatch(benchmark::State& state) { run_benchmark(state, run_spawn_join_batch); }
BENCHMARK(BM_SpawnJoinBatch)
    ->ArgNames({"N", "R"})
    ->ArgsProduct({{100, 1'000, 10'000}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// The main task spawns one empty task and joins it, N times: the round trip of one task
// (spawn, the main task parks in join, the child runs and completes, the main task resumes).
[[gnu::noinline]] Measured run_spawn_join_one_by_one(const lab::LabOptions& options, int64_t n) {
  lab::LabRuntime runtime(options);
  Measured measured;
  Outcome<void> outcome = runtime.run([n, &measured](Cx& cx) -> Task<void> {
    Window window;
    window.start();
    for (int64_t i = 0; i < n; ++i) {
      auto spawned = cx.spawn("empty", EmptyTask{});
      if (!spawned.ok()) fail("spawn: " + spawned.status().ToString());
      Outcome<void> joined = co_await spawned->join(cx);
      if (!joined.ok()) fail("join: " + joined.to_string());
    }
    measured = window.stop();
  });
  check_run(runtime, outcome);
  return measured;
}
void BM_SpawnJoinOneByOne(benchmark::State& state) {
  run_benchmark(state, run_spawn_join_one_by_one);
}
BENCHMARK(BM_SpawnJoinOneByOne)
    ->ArgNames({"N", "R"})
    ->ArgsProduct({{1'000}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// --- region open + close ---------------------------------------------------------------------

// The main task opens and closes a child region with an empty body, N times. An empty region
// never goes through the scheduler (the body runs inline and the region is quiescent at once),
// so `randomize` does not matter and only FIFO is run.
[[gnu::noinline]] Measured run_region_open_close(const lab::LabOptions& options, int64_t n) {
  lab::LabRuntime runtime(options);
  Measured measured;
  Outcome<void> outcome = runtime.run([n, &measured](Cx& cx) -> Task<void> {
    Window window;
    window.start();
    for (int64_t i = 0; i < n; ++i) {
      auto region = Region::open(cx, "r", EmptyTask{});
      Outcome<void> closed = co_await std::move(region);
      if (!closed.ok()) fail("region: " + closed.to_string());
    }
    measured = window.stop();
  });
  check_run(runtime, outcome);
  return measured;
}
void BM_RegionOpenClose(benchmark::State& state) { run_benchmark(state, run_region_open_close); }
BENCHMARK(BM_RegionOpenClose)
    ->ArgNames({"N", "R"})
    ->Args({1'000, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// --- cancel a region of N suspended tasks until Closed -----------------------------------------

// The body of region "victims" spawns N tasks that sleep "forever" and sleeps 1 ns itself, so
// virtual time moves only once every victim is parked on its timer. Then the clock starts, the
// body cancels its region and returns; the clock stops when Region::open completes, i.e. when
// the region is Closed. Measured: the request to every task (interrupting its sleep, removing
// its timer, queueing it in the cancel lane), running each cancelled task to completion, the
// region's bookkeeping for each, and the close. Spawning is outside the window.
// ns_per_op is per cancelled task; the Time column is the whole cancel-to-Closed time.
[[gnu::noinline]] Measured run_cancel_region(const lab::LabOptions& options, int64_t n) {
  lab::LabRuntime runtime(options);
  Measured measured;
  Outcome<void> outcome = runtime.run([n, &measured](Cx& cx) -> Task<void> {
    Window window;
    auto region = Region::open(cx, "victims", [n, &window](Cx& rcx) -> Task<void> {
      for (int64_t i = 0; i < n; ++i) {
        auto spawned = rcx.spawn("sleeper", SleepForever{});
        if (!spawned.ok()) fail("spawn: " + spawned.status().ToString());
      }
      absl::Status slept = co_await rcx.sleep(Duration::Nanoseconds(1));
      if (!slept.ok()) fail("body sleep: " + slept.ToString());
      window.start();
      rcx.cancel_region("benchmark");
    });
    Outcome<void> closed = co_await std::move(region);
    measured = window.stop();
    if (!closed.is_cancelled()) {
      fail("the victims region should be Cancelled: " + closed.to_string());
    }
  });
  check_run(runtime, outcome);
  if (runtime.report().tasks_finished < static_cast<uint64_t>(n)) fail("tasks did not finish");
  return measured;
}
void BM_CancelRegion(benchmark::State& state) { run_benchmark(state, run_cancel_region); }
BENCHMARK(BM_CancelRegion)
    ->ArgNames({"N", "R"})
    ->ArgsProduct({{1'000, 10'000}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// --- Outcome join ----------------------------------------------------------------------------

CancelReason some_reason(CancelKind kind, int64_t at_ns, std::string message) {
  return CancelReason(kind, RegionId(1, 1), TaskId(2, 1), Time::FromNanoseconds(at_ns),
                      std::move(message));
}

// join(a, b) takes its arguments by value, as callers use it (region outcome accumulation), so
// the copies of the inputs are part of what is measured.
template <typename MakeA, typename MakeB>
void run_outcome_join(benchmark::State& state, MakeA make_a, MakeB make_b) {
  const Outcome<int> a = make_a();
  const Outcome<int> b = make_b();
  for (auto _ : state) {
    Outcome<int> joined = join(a, b);
    benchmark::DoNotOptimize(joined);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_OutcomeJoin_OkOk(benchmark::State& state) {
  run_outcome_join(
      state, [] { return Outcome<int>::Ok(1); }, [] { return Outcome<int>::Ok(2); });
}
BENCHMARK(BM_OutcomeJoin_OkOk);

void BM_OutcomeJoin_OkErr(benchmark::State& state) {
  run_outcome_join(
      state, [] { return Outcome<int>::Ok(1); },
      [] { return Outcome<int>::Err(absl::UnavailableError("disk full")); });
}
BENCHMARK(BM_OutcomeJoin_OkErr);

void BM_OutcomeJoin_ErrCancelled(benchmark::State& state) {
  run_outcome_join(
      state, [] { return Outcome<int>::Err(absl::UnavailableError("disk full")); },
      [] { return Outcome<int>::Cancelled(some_reason(CancelKind::kUser, 5, "stop")); });
}
BENCHMARK(BM_OutcomeJoin_ErrCancelled);

// Two Cancelled outcomes join to the stronger reason (strengthen).
void BM_OutcomeJoin_CancelledCancelled(benchmark::State& state) {
  run_outcome_join(
      state, [] { return Outcome<int>::Cancelled(some_reason(CancelKind::kUser, 5, "stop")); },
      [] {
        return Outcome<int>::Cancelled(some_reason(CancelKind::kUser, 3, "stop")
                                           .caused_by(CancelKind::kParentCancelled, RegionId(3, 1),
                                                      std::nullopt, Time::FromNanoseconds(7),
                                                      "parent region was cancelled"));
      });
}
BENCHMARK(BM_OutcomeJoin_CancelledCancelled);

// --- Budget meet -----------------------------------------------------------------------------

void run_budget_meet(benchmark::State& state, Budget a, Budget b) {
  for (auto _ : state) {
    // Opaque inputs: meet is constexpr and would otherwise be folded away.
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
    Budget met = meet(a, b);
    benchmark::DoNotOptimize(met);
  }
  state.SetItemsProcessed(state.iterations());
}

// Every axis set on both sides.
void BM_BudgetMeet_Full(benchmark::State& state) {
  run_budget_meet(state,
                  Budget::Infinite()
                      .with_deadline(Time::FromNanoseconds(5'000))
                      .with_poll_quota(1'000)
                      .with_cost_quota(1 << 20)
                      .with_priority(10),
                  Budget::Infinite()
                      .with_deadline(Time::FromNanoseconds(3'000))
                      .with_poll_quota(200)
                      .with_cost_quota(1 << 10)
                      .with_priority(220));
}
BENCHMARK(BM_BudgetMeet_Full);

// The common case on spawn: a parent budget met with Infinite().
void BM_BudgetMeet_Identity(benchmark::State& state) {
  run_budget_meet(state,
                  Budget::Infinite().with_deadline(Time::FromNanoseconds(5'000)).with_priority(3),
                  Budget::Infinite());
}
BENCHMARK(BM_BudgetMeet_Identity);

}  // namespace
}  // namespace asupersync
