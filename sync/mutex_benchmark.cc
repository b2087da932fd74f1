// Mutex, uncontended: lock/unlock from one task on the lab runtime, and try_lock without one.

#include "benchmark/benchmark.h"
#include "lab/lab_runtime.h"
#include "sync/mutex.h"

namespace asupersync {
namespace {

void BM_MutexTryLock(benchmark::State& state) {
  Mutex mutex;
  for (auto _ : state) {
    absl::StatusOr<MutexGuard> guard = mutex.try_lock();
    benchmark::DoNotOptimize(guard);
  }
}
BENCHMARK(BM_MutexTryLock);

// co_await lock(cx): poll_cancel, the fast path (one lock, no ticket), the guard's unlock.
void BM_MutexLockUnlock(benchmark::State& state) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 1, .max_steps = ~0ull});
  Outcome<void> outcome = runtime.run([&state](Cx& cx) -> Task<void> {
    Mutex mutex;
    for (auto _ : state) {
      absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
      benchmark::DoNotOptimize(guard);
    }
  });
  if (!outcome.ok()) state.SkipWithError(outcome.to_string().c_str());
}
BENCHMARK(BM_MutexLockUnlock);

}  // namespace
}  // namespace asupersync
