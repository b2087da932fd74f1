// spawn_blocking and shutdown_signal on the production runtime (SPEC 6.1, 6.5, 4.2).

#include "sched/services.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "sched/runtime.h"

namespace asupersync::sched {
namespace {

RuntimeOptions two_workers() {
  RuntimeOptions options;
  options.workers = 2;
  options.leak_policy = LeakPolicy::kPanic;
  return options;
}

// SPEC 6.5: the job runs on a pool thread, not on a worker, and its value comes back.
TEST(SpawnBlockingTest, RunsOffTheWorkersAndReturnsTheValue) {
  Runtime runtime(two_workers());
  auto outcome = runtime.run([](Cx& cx) -> Task<bool> {
    const std::thread::id worker = std::this_thread::get_id();
    auto job = [] { return std::this_thread::get_id(); };
    auto call = spawn_blocking(cx, std::move(job));
    absl::StatusOr<std::thread::id> job_thread = co_await std::move(call);
    EXPECT_TRUE(job_thread.ok()) << job_thread.status();
    co_return job_thread.ok() && *job_thread != worker;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_TRUE(outcome.value());
}

// SPEC 4.2, 6.5: cancelling the waiting task ends the wait at once; the job, which cannot be
// interrupted, finishes later and its result is discarded safely.
TEST(SpawnBlockingTest, CancelledWaitDiscardsTheResult) {
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto job_finished = std::make_shared<std::atomic<bool>>(false);
  {
    Runtime runtime(two_workers());
    auto outcome = runtime.run([release, job_finished](Cx& cx) -> Task<void> {
      auto waiter = cx.spawn("waiter", [release, job_finished](Cx& c) -> Task<absl::Status> {
        // Named first: GCC 12 destroys lambda temporaries in a co_await twice (core/README.md).
        auto job = [release, job_finished] {
          while (!release->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          job_finished->store(true);
          return 42;
        };
        auto call = spawn_blocking(c, std::move(job));
        absl::StatusOr<int> value = co_await std::move(call);
        co_return value.status();
      });
      (void)co_await cx.sleep(Duration::Milliseconds(5));
      waiter->cancel("give up on the blocking call");
      Outcome<absl::Status> joined = co_await waiter->join(cx);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
      EXPECT_FALSE(job_finished->load());
      release->store(true);
    });
    EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
  }
  // The runtime's destructor joined the pool: the job ran to its end.
  EXPECT_TRUE(job_finished->load());
}

// SPEC 2.4: without the Blocking capability the call is refused before anything runs.
TEST(SpawnBlockingTest, NeedsBlockingCapability) {
  Runtime runtime(two_workers());
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto outcome = runtime.run([ran](Cx& cx) -> Task<absl::Status> {
    Cx narrowed = cx.restrict(Capabilities(Capability::kTime));
    auto job = [ran] {
      ran->store(true);
      return 1;
    };
    auto call = spawn_blocking(narrowed, std::move(job));
    absl::StatusOr<int> value = co_await std::move(call);
    co_return value.status();
  });
  ASSERT_TRUE(outcome.is_err());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(ran->load());
}

// SPEC 6.1: SIGTERM completes shutdown_signal, so a program can drain on Ctrl-C.
TEST(ShutdownSignalTest, SigtermCompletesTheWait) {
  RuntimeOptions options = two_workers();
  options.watch_shutdown_signals = true;
  Runtime runtime(options);
  auto outcome = runtime.run([](Cx& cx) -> Task<void> {
    auto sender = cx.spawn("sender", [](Cx& c) -> Task<void> {
      (void)co_await c.sleep(Duration::Milliseconds(5));
      ::kill(::getpid(), SIGTERM);
    });
    absl::Status waited = co_await shutdown_signal(cx);
    EXPECT_TRUE(waited.ok()) << waited;
    // Sticky: a later wait returns at once.
    waited = co_await shutdown_signal(cx);
    EXPECT_TRUE(waited.ok()) << waited;
    (void)co_await sender->join(cx);
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 13: without watch_shutdown_signals the wait is a clear error, not a hang.
TEST(ShutdownSignalTest, NotWatchingIsFailedPrecondition) {
  Runtime runtime(two_workers());
  auto outcome =
      runtime.run([](Cx& cx) -> Task<absl::Status> { co_return co_await shutdown_signal(cx); });
  ASSERT_TRUE(outcome.is_err());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace asupersync::sched
