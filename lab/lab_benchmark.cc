// Scheduling steps per second of the lab runtime on trivial workloads (tasks that only yield),
// under each choice policy. The figure of merit is the `steps_per_second` counter.
//
//   bazel run --config=opt //lab:lab_benchmark
//
// Thread-safety: single-threaded (the lab). Lifetime: each iteration builds a fresh runtime.
// Cancellation: not applicable.

#include <memory>

#include "benchmark/benchmark.h"
#include "core/cx.h"
#include "core/region.h"
#include "lab/explore.h"
#include "lab/lab_runtime.h"

namespace asupersync {
namespace {

// `tasks` tasks, each yielding `yields` times: tasks * (yields + 1) dispatches, plus the driver.
Task<void> yielders(Cx& cx, int tasks, int yields) {
  for (int t = 0; t < tasks; ++t) {
    (void)cx.spawn("yielder", [yields](Cx& c) -> Task<void> {
      for (int i = 0; i < yields; ++i) (void)co_await c.yield();
    });
  }
  co_return;
}

void run_yielders(benchmark::State& state, lab::LabOptions options) {
  const int tasks = static_cast<int>(state.range(0));
  const int yields = static_cast<int>(state.range(1));
  uint64_t steps = 0;
  for (auto _ : state) {
    lab::LabRuntime runtime(options);
    auto outcome = runtime.run([tasks, yields](Cx& cx) { return yielders(cx, tasks, yields); });
    benchmark::DoNotOptimize(outcome);
    steps += runtime.report().steps;
  }
  state.counters["steps_per_second"] =
      benchmark::Counter(static_cast<double>(steps), benchmark::Counter::kIsRate);
  state.counters["steps_per_run"] =
      static_cast<double>(steps) / static_cast<double>(state.iterations());
}

// The plain runtime: strict lanes, seeded random choice (what core's tests use).
void BM_YieldStepsStrictRandom(benchmark::State& state) {
  run_yielders(state, lab::LabOptions{.seed = 1});
}
BENCHMARK(BM_YieldStepsStrictRandom)->Args({4, 10000})->Args({64, 1000});

// FIFO.
void BM_YieldStepsStrictFifo(benchmark::State& state) {
  run_yielders(state, lab::LabOptions{.seed = 1, .randomize = false});
}
BENCHMARK(BM_YieldStepsStrictFifo)->Args({4, 10000})->Args({64, 1000});

// Any-runnable choice (exploration's lane policy), seeded random.
void BM_YieldStepsAnyRunnable(benchmark::State& state) {
  run_yielders(state, lab::LabOptions{.seed = 1, .lanes = lab::LanePolicy::kAnyRunnable});
}
BENCHMARK(BM_YieldStepsAnyRunnable)->Args({4, 10000})->Args({64, 1000});

// Through lab::Explore with the random strategy (one run per iteration).
void BM_ExploreRandomRun(benchmark::State& state) {
  const int tasks = static_cast<int>(state.range(0));
  const int yields = static_cast<int>(state.range(1));
  uint64_t steps = 0;
  uint64_t seed = 1;
  for (auto _ : state) {
    lab::ExploreResult result =
        lab::Explore({.seed = seed++, .runs = 1, .max_steps = 10'000'000},
                     [tasks, yields](Cx& cx) { return yielders(cx, tasks, yields); });
    benchmark::DoNotOptimize(result);
    steps += result.total_steps;
  }
  state.counters["steps_per_second"] =
      benchmark::Counter(static_cast<double>(steps), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ExploreRandomRun)->Args({4, 10000});

}  // namespace
}  // namespace asupersync
