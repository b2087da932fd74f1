// Copyright The Asupersync Authors.
//
// Micro-benchmarks of the hierarchical timing wheel (sched/internal/timing_wheel.h). Run
// optimised:
//   bazel run --config=opt //sched:timing_wheel_benchmark

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "sched/internal/timing_wheel.h"

namespace asupersync::sched {
namespace {

struct BenchTimer final : TimerNode {
  void fire() override {}
};

constexpr int64_t kSecond = 1'000'000'000;
const Time kStart = Time::FromNanoseconds(1000 * kSecond);

// Deadlines uniformly spread over the next `span_ns` after kStart.
std::vector<Time> random_deadlines(size_t count, int64_t span_ns, uint64_t seed = 1) {
  std::mt19937_64 random(seed);
  std::vector<Time> deadlines(count);
  for (Time& deadline : deadlines) {
    deadline = kStart + Duration::Nanoseconds(static_cast<int64_t>(random() % span_ns));
  }
  return deadlines;
}

// A wheel already holding `state.range(0)` timers over 10 s: insert then remove one more
// (a sleep that is cancelled). O(1): the cost does not depend on the population.
void BM_WheelInsertRemove(benchmark::State& state) {
  // Timers first: they outlive the wheel (its destructor unregisters what is left).
  std::vector<BenchTimer> population(state.range(0));
  BenchTimer timer;
  TimingWheel wheel(kStart);
  const std::vector<Time> deadlines = random_deadlines(population.size() + 4096, 10 * kSecond);
  for (size_t i = 0; i < population.size(); ++i) {
    population[i].deadline = deadlines[i];
    wheel.insert(population[i]);
  }
  size_t next = population.size();
  for (auto _ : state) {
    timer.deadline = deadlines[next];
    if (++next == deadlines.size()) next = population.size();
    wheel.insert(timer);
    wheel.remove(timer);
  }
}
BENCHMARK(BM_WheelInsertRemove)->Arg(0)->Arg(10'000)->Arg(1'000'000);

// Inserts alone (deadlines over 10 s); the wheel is emptied (untimed) every 64Ki inserts.
void BM_WheelInsert(benchmark::State& state) {
  constexpr size_t kPool = size_t{1} << 16;
  std::vector<BenchTimer> timers(kPool);
  TimingWheel wheel(kStart);
  const std::vector<Time> deadlines = random_deadlines(kPool, 10 * kSecond);
  for (size_t i = 0; i < kPool; ++i) timers[i].deadline = deadlines[i];
  size_t next = 0;
  for (auto _ : state) {
    if (next == kPool) {
      state.PauseTiming();
      for (BenchTimer& timer : timers) wheel.remove(timer);
      next = 0;
      state.ResumeTiming();
    }
    wheel.insert(timers[next++]);
  }
}
BENCHMARK(BM_WheelInsert);

// Removes alone, from a wheel refilled (untimed) with 64Ki timers when empty.
void BM_WheelRemove(benchmark::State& state) {
  constexpr size_t kPool = size_t{1} << 16;
  std::vector<BenchTimer> timers(kPool);
  TimingWheel wheel(kStart);
  const std::vector<Time> deadlines = random_deadlines(kPool, 10 * kSecond);
  for (size_t i = 0; i < kPool; ++i) timers[i].deadline = deadlines[i];
  size_t next = kPool;
  for (auto _ : state) {
    if (next == kPool) {
      state.PauseTiming();
      for (BenchTimer& timer : timers) wheel.insert(timer);
      next = 0;
      state.ResumeTiming();
    }
    wheel.remove(timers[next++]);
  }
}
BENCHMARK(BM_WheelRemove);

// Steady state: `state.range(0)` timers due within the next second; each iteration advances
// the clock by 100 us and re-arms every timer it hands out 0-1 s later (a server's read
// timeouts). Time per advance; items = timers handed out.
void BM_WheelAdvance(benchmark::State& state) {
  std::vector<BenchTimer> timers(state.range(0));
  TimingWheel wheel(kStart);
  std::mt19937_64 random(7);
  for (BenchTimer& timer : timers) {
    timer.deadline = kStart + Duration::Nanoseconds(static_cast<int64_t>(random() % kSecond));
    wheel.insert(timer);
  }
  Time now = kStart;
  int64_t fired = 0;
  for (auto _ : state) {
    now += Duration::Microseconds(100);
    fired += static_cast<int64_t>(wheel.advance(now, [&](TimerNode& node) {
      node.deadline = now + Duration::Nanoseconds(static_cast<int64_t>(random() % kSecond));
      wheel.insert(node);
    }));
  }
  state.SetItemsProcessed(fired);
}
BENCHMARK(BM_WheelAdvance)->Arg(1'000)->Arg(100'000);

// next_deadline() with `state.range(0)` timers over 10 s.
void BM_WheelNextDeadline(benchmark::State& state) {
  std::vector<BenchTimer> timers(state.range(0));
  TimingWheel wheel(kStart);
  const std::vector<Time> deadlines = random_deadlines(timers.size(), 10 * kSecond);
  for (size_t i = 0; i < timers.size(); ++i) {
    timers[i].deadline = deadlines[i];
    wheel.insert(timers[i]);
  }
  for (auto _ : state) benchmark::DoNotOptimize(wheel.next_deadline());
}
BENCHMARK(BM_WheelNextDeadline)->Arg(1'000)->Arg(100'000);

}  // namespace
}  // namespace asupersync::sched
