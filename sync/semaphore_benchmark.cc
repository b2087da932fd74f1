// Semaphore, uncontended: acquire/release from one task on the lab runtime (each permit is a
// ledger entry), and try_acquire.

#include "benchmark/benchmark.h"
#include "lab/lab_runtime.h"
#include "sync/semaphore.h"

namespace asupersync {
namespace {

void BM_SemaphoreAcquireRelease(benchmark::State& state) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 1, .max_steps = ~0ull});
  Outcome<void> outcome = runtime.run([&state](Cx& cx) -> Task<void> {
    Semaphore semaphore(4);
    for (auto _ : state) {
      absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, 2);
      std::move(*permit).release();
    }
  });
  if (!outcome.ok()) state.SkipWithError(outcome.to_string().c_str());
}
BENCHMARK(BM_SemaphoreAcquireRelease);

void BM_SemaphoreTryAcquireRelease(benchmark::State& state) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 1, .max_steps = ~0ull});
  Outcome<void> outcome = runtime.run([&state](Cx& cx) -> Task<void> {
    Semaphore semaphore(4);
    for (auto _ : state) {
      absl::StatusOr<SemaphorePermit> permit = semaphore.try_acquire(cx);
      std::move(*permit).release();
    }
    co_return;
  });
  if (!outcome.ok()) state.SkipWithError(outcome.to_string().c_str());
}
BENCHMARK(BM_SemaphoreTryAcquireRelease);

}  // namespace
}  // namespace asupersync
