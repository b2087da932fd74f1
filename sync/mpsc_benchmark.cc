// mpsc, uncontended: one task sends and receives on the lab runtime (no parking), plus the
// non-blocking calls without a runtime.

#include "benchmark/benchmark.h"
#include "lab/lab_runtime.h"
#include "sync/mpsc.h"

namespace asupersync {
namespace {

// try_send + try_recv: the channel's lock and queue, no runtime.
void BM_MpscTrySendTryRecv(benchmark::State& state) {
  auto made = mpsc::channel<int>(64);
  auto& [tx, rx] = *made;
  for (auto _ : state) {
    SendResult<int> sent = tx.try_send(1);
    benchmark::DoNotOptimize(sent);
    absl::StatusOr<int> got = rx.try_recv();
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_MpscTrySendTryRecv);

// co_await send(cx, v) + co_await recv(cx): both complete without parking.
void BM_MpscSendRecv(benchmark::State& state) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 1, .max_steps = ~0ull});
  Outcome<void> outcome = runtime.run([&state](Cx& cx) -> Task<void> {
    auto made = mpsc::channel<int>(64);
    mpsc::Sender<int>& tx = made->first;
    mpsc::Receiver<int>& rx = made->second;
    for (auto _ : state) {
      SendResult<int> sent = co_await tx.send(cx, 1);
      benchmark::DoNotOptimize(sent);
      absl::StatusOr<int> got = co_await rx.recv(cx);
      benchmark::DoNotOptimize(got);
    }
  });
  if (!outcome.ok()) state.SkipWithError(outcome.to_string().c_str());
}
BENCHMARK(BM_MpscSendRecv);

// co_await reserve(cx) → Permit (a ledger entry) → send → recv.
void BM_MpscReserveCommitRecv(benchmark::State& state) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 1, .max_steps = ~0ull});
  Outcome<void> outcome = runtime.run([&state](Cx& cx) -> Task<void> {
    auto made = mpsc::channel<int>(64);
    mpsc::Sender<int>& tx = made->first;
    mpsc::Receiver<int>& rx = made->second;
    for (auto _ : state) {
      absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
      std::move(*permit).send(1);
      absl::StatusOr<int> got = co_await rx.recv(cx);
      benchmark::DoNotOptimize(got);
    }
  });
  if (!outcome.ok()) state.SkipWithError(outcome.to_string().c_str());
}
BENCHMARK(BM_MpscReserveCommitRecv);

}  // namespace
}  // namespace asupersync
