// sync_compare: the sync primitives of //sync (mpsc, Mutex, Semaphore) on the production
// runtime, in the scenarios that bench/tokio_sync runs with tokio::sync, so that the two can be
// compared side by side (bench/run_sync_compare.sh drives both; issue 6, acceptance 3).
//
//   sync_compare [--threads K] SCENARIO N
//     mpsc_uncontended       1 producer, 1 consumer, capacity 1024, N messages
//     mpsc_contended         8 producers, 1 consumer, capacity 64, N messages in total
//     mutex_uncontended      one task, N lock/unlock
//     mutex_contended        8 tasks, N lock/increment/unlock in total
//     semaphore_uncontended  one task, N acquire(1)/release on a semaphore of 4 permits
//     semaphore_contended    8 tasks, N acquire(1)/increment/release in total, 4 permits
//
// Every scenario runs in tasks spawned by the main task and joined by it; the time covers the
// spawns, the work and the joins (the same span the Tokio side times). The work is split over
// the tasks as N/8 each, the first N%8 tasks doing one more. The results are checked (every
// message received once, in order per producer; the counters equal N): a wrong result prints
// an error and exits 1.
//
// Prints one line `peer=asupersync_tK scenario=... n=... seconds=... ops_per_sec=...` and
// exits 0. Thread-safety: the shared counters are guarded by the primitive under test (the
// semaphore's, which admits 4 holders at once, is atomic).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/compare_cli.h"
#include "core/cx.h"
#include "core/task.h"
#include "sched/runtime.h"
#include "sync/mpsc.h"
#include "sync/mutex.h"
#include "sync/semaphore.h"

namespace asupersync::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kContendedTasks = 8;
constexpr size_t kUncontendedCapacity = 1024;
constexpr size_t kContendedCapacity = 64;
constexpr size_t kSemaphorePermits = 4;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "sync_compare: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

template <typename T>
T must(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) fail(std::string(what) + ": " + value.status().ToString());
  return std::move(value).value();
}

// The share of N that task `i` of `tasks` does.
uint64_t share(uint64_t n, uint64_t tasks, uint64_t i) { return n / tasks + (i < n % tasks); }

// Joins every handle; fails on an outcome that is not Ok.
Task<void> join_all(Cx& cx, std::vector<TaskHandle<void>>& handles) {
  for (TaskHandle<void>& handle : handles) {
    Outcome<void> joined = co_await handle.join(cx);
    if (!joined.ok()) fail("join: " + joined.to_string());
  }
}

// Each message is producer << 40 | sequence number: the consumer checks every producer's
// messages arrive in order, none lost or duplicated.
constexpr int kProducerShift = 40;

Task<void> mpsc_scenario(Cx& cx, uint64_t n, uint64_t producers, size_t capacity) {
  auto made = mpsc::channel<uint64_t>(capacity);
  if (!made.ok()) fail("channel: " + made.status().ToString());
  mpsc::Sender<uint64_t> tx = std::move(made->first);
  mpsc::Receiver<uint64_t> rx = std::move(made->second);
  std::vector<uint64_t> next_seq(producers, 0);
  uint64_t received = 0;
  std::vector<TaskHandle<void>> handles;
  handles.reserve(producers + 1);
  for (uint64_t p = 0; p < producers; ++p) {
    const uint64_t count = share(n, producers, p);
    handles.push_back(must(cx.spawn("producer",
                                    [tx, p, count](Cx& c) mutable -> Task<void> {
                                      mpsc::Sender<uint64_t> mine = std::move(tx);
                                      for (uint64_t i = 0; i < count; ++i) {
                                        auto send = mine.send(c, p << kProducerShift | i);
                                        SendResult<uint64_t> sent = co_await send;
                                        if (!sent.ok()) fail("send: " + sent.status.ToString());
                                      }
                                    }),
                           "spawn producer"));
  }
  tx.reset();  // only the producers send: the stream ends when they are done
  handles.push_back(
      must(cx.spawn("consumer",
                    [&rx, &next_seq, &received](Cx& c) -> Task<void> {
                      while (true) {
                        auto recv = rx.recv(c);
                        absl::StatusOr<uint64_t> value = co_await recv;
                        if (!value.ok()) {
                          if (is_end_of_stream(value.status())) co_return;
                          fail("recv: " + value.status().ToString());
                        }
                        const uint64_t producer = *value >> kProducerShift;
                        const uint64_t seq = *value & ((uint64_t{1} << kProducerShift) - 1);
                        if (producer >= next_seq.size() || next_seq[producer] != seq) {
                          fail("recv: a message out of order, lost or duplicated");
                        }
                        ++next_seq[producer];
                        ++received;
                      }
                    }),
           "spawn consumer"));
  auto joined = join_all(cx, handles);
  co_await std::move(joined);
  if (received != n) {
    fail("mpsc: received " + std::to_string(received) + " of " + std::to_string(n));
  }
}

Task<void> mutex_scenario(Cx& cx, uint64_t n, uint64_t tasks) {
  Mutex mutex;
  uint64_t counter = 0;  // guarded by `mutex`
  std::vector<TaskHandle<void>> handles;
  handles.reserve(tasks);
  for (uint64_t t = 0; t < tasks; ++t) {
    const uint64_t count = share(n, tasks, t);
    handles.push_back(must(cx.spawn("locker",
                                    [&mutex, &counter, count](Cx& c) -> Task<void> {
                                      for (uint64_t i = 0; i < count; ++i) {
                                        auto lock = mutex.lock(c);
                                        absl::StatusOr<MutexGuard> guard = co_await lock;
                                        if (!guard.ok()) fail("lock: " + guard.status().ToString());
                                        ++counter;
                                      }
                                    }),
                           "spawn locker"));
  }
  auto joined = join_all(cx, handles);
  co_await std::move(joined);
  if (counter != n) fail("mutex: counter " + std::to_string(counter) + " != " + std::to_string(n));
}

Task<void> semaphore_scenario(Cx& cx, uint64_t n, uint64_t tasks) {
  Semaphore semaphore(kSemaphorePermits);
  std::atomic<uint64_t> counter{0};
  std::vector<TaskHandle<void>> handles;
  handles.reserve(tasks);
  for (uint64_t t = 0; t < tasks; ++t) {
    const uint64_t count = share(n, tasks, t);
    handles.push_back(must(cx.spawn("acquirer",
                                    [&semaphore, &counter, count](Cx& c) -> Task<void> {
                                      for (uint64_t i = 0; i < count; ++i) {
                                        auto acquire = semaphore.acquire(c, 1);
                                        absl::StatusOr<SemaphorePermit> permit = co_await acquire;
                                        if (!permit.ok())
                                          fail("acquire: " + permit.status().ToString());
                                        counter.fetch_add(1, std::memory_order_relaxed);
                                        std::move(*permit).release();
                                      }
                                    }),
                           "spawn acquirer"));
  }
  auto joined = join_all(cx, handles);
  co_await std::move(joined);
  if (counter.load() != n) {
    fail("semaphore: counter " + std::to_string(counter.load()) + " != " + std::to_string(n));
  }
  if (semaphore.available_permits() != kSemaphorePermits) fail("semaphore: permits not back");
}

int run_main(int argc, char** argv) {
  absl::StatusOr<CompareCommandLine> command_line = parse_compare_command_line(argc, argv);
  if (!command_line.ok()) fail(std::string(command_line.status().message()));
  const int threads = command_line->threads;
  const std::string& scenario = command_line->scenario;
  if (scenario.empty() || command_line->arguments.size() != 1) {
    std::fprintf(stderr,
                 "usage: sync_compare [--threads K] SCENARIO N\n  SCENARIO: mpsc_uncontended "
                 "mpsc_contended mutex_uncontended mutex_contended semaphore_uncontended "
                 "semaphore_contended\n");
    return 2;
  }
  absl::StatusOr<uint64_t> count = parse_positive_count(command_line->arguments[0], "N");
  if (!count.ok()) fail(std::string(count.status().message()));
  const uint64_t n = *count;
  if (scenario != "mpsc_uncontended" && scenario != "mpsc_contended" &&
      scenario != "mutex_uncontended" && scenario != "mutex_contended" &&
      scenario != "semaphore_uncontended" && scenario != "semaphore_contended") {
    fail("unknown scenario " + scenario);
  }

  sched::RuntimeOptions options;
  options.workers = threads;
  sched::Runtime runtime(options);
  double seconds = 0;
  Outcome<void> outcome = runtime.run([&](Cx& cx) -> Task<void> {
    const auto t0 = Clock::now();
    if (scenario == "mpsc_uncontended") {
      auto run = mpsc_scenario(cx, n, 1, kUncontendedCapacity);
      co_await std::move(run);
    } else if (scenario == "mpsc_contended") {
      auto run = mpsc_scenario(cx, n, kContendedTasks, kContendedCapacity);
      co_await std::move(run);
    } else if (scenario == "mutex_uncontended") {
      auto run = mutex_scenario(cx, n, 1);
      co_await std::move(run);
    } else if (scenario == "mutex_contended") {
      auto run = mutex_scenario(cx, n, kContendedTasks);
      co_await std::move(run);
    } else if (scenario == "semaphore_uncontended") {
      auto run = semaphore_scenario(cx, n, 1);
      co_await std::move(run);
    } else {
      auto run = semaphore_scenario(cx, n, kContendedTasks);
      co_await std::move(run);
    }
    seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  });
  if (!outcome.ok()) fail("the run failed: " + outcome.to_string());
  std::printf("peer=asupersync_t%d scenario=%s n=%llu seconds=%.6f ops_per_sec=%.1f\n", threads,
              scenario.c_str(), static_cast<unsigned long long>(n), seconds,
              seconds > 0 ? static_cast<double>(n) / seconds : 0.0);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace asupersync::bench

int main(int argc, char** argv) { return asupersync::bench::run_main(argc, argv); }
