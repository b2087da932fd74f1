// Copyright The Asupersync Authors.

#include "sched/internal/blocking_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

using ::testing::HasSubstr;

// A gate jobs block on until the test opens it.
class Gate {
 public:
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    opened_.wait(lock, [this] { return open_; });
  }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    opened_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

// Waits up to 10 s for `condition`.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::unique_ptr<BlockingPool> make_pool(BlockingPoolOptions options) {
  absl::StatusOr<std::unique_ptr<BlockingPool>> pool = BlockingPool::create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(pool).value();
}

TEST(BlockingPoolTest, GrowsLazilyUpToMaxThenQueues) {
  auto pool = make_pool({.min_threads = 0, .max_threads = 3});
  EXPECT_EQ(pool->num_threads(), 0u);
  Gate gate;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  auto job = [&] {
    started.fetch_add(1);
    gate.wait();
    finished.fetch_add(1);
  };
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool->submit(job).ok());
  ASSERT_TRUE(eventually([&] { return started.load() == 3; }));
  EXPECT_EQ(pool->num_threads(), 3u);  // One per blocked job.
  ASSERT_TRUE(pool->submit(job).ok());
  ASSERT_TRUE(pool->submit(job).ok());
  EXPECT_EQ(pool->num_threads(), 3u);  // At the limit: the rest wait.
  EXPECT_EQ(pool->num_queued(), 2u);
  gate.open();
  ASSERT_TRUE(eventually([&] { return finished.load() == 5; }));
  EXPECT_EQ(pool->num_queued(), 0u);
}

TEST(BlockingPoolTest, IdleThreadsAreReusedBeforeNewOnesStart) {
  auto pool = make_pool({.max_threads = 8, .keep_alive = Duration::Seconds(30)});
  std::mutex mutex;
  std::set<std::thread::id> ids;
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> done{false};
    ASSERT_TRUE(pool->submit([&] {
                      std::lock_guard<std::mutex> lock(mutex);
                      ids.insert(std::this_thread::get_id());
                      done = true;
                    })
                    .ok());
    ASSERT_TRUE(eventually([&] { return done.load() && pool->num_idle() == 1; }));
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(pool->num_threads(), 1u);
}

TEST(BlockingPoolTest, QueueBoundIsResourceExhausted) {
  auto pool = make_pool({.max_threads = 1, .max_queued = 2});
  Gate gate;
  std::atomic<bool> running{false};
  ASSERT_TRUE(pool->submit([&] {
                    running = true;
                    gate.wait();
                  })
                  .ok());
  ASSERT_TRUE(eventually([&] { return running.load(); }));
  ASSERT_TRUE(pool->submit([] {}).ok());
  ASSERT_TRUE(pool->submit([] {}).ok());
  absl::Status full = pool->submit([] {});
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.message()), HasSubstr("max_queued = 2"));
  EXPECT_THAT(std::string(full.message()), HasSubstr("backpressure"));
  gate.open();
  ASSERT_TRUE(eventually([&] { return pool->num_queued() == 0; }));
  EXPECT_TRUE(pool->submit([] {}).ok());
}

TEST(BlockingPoolTest, IdleThreadsRetireAfterKeepAliveDownToMin) {
  auto pool =
      make_pool({.min_threads = 1, .max_threads = 4, .keep_alive = Duration::Milliseconds(30)});
  EXPECT_EQ(pool->num_threads(), 1u);  // The minimum starts at once.
  Gate gate;
  std::atomic<int> started{0};
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(pool->submit([&] {
                      started.fetch_add(1);
                      gate.wait();
                    })
                    .ok());
  }
  ASSERT_TRUE(eventually([&] { return started.load() == 4; }));
  EXPECT_EQ(pool->num_threads(), 4u);
  gate.open();
  ASSERT_TRUE(eventually([&] { return pool->num_threads() == 1; }))
      << "idle threads did not retire; " << pool->num_threads() << " left";
  // The minimum stays, well past the keep-alive.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(pool->num_threads(), 1u);
  std::atomic<bool> ran{false};
  ASSERT_TRUE(pool->submit([&] { ran = true; }).ok());
  ASSERT_TRUE(eventually([&] { return ran.load(); }));
}

TEST(BlockingPoolTest, ShutdownFinishesRunningAndQueuedJobsThenRejects) {
  auto pool = make_pool({.max_threads = 1});
  Gate gate;
  std::atomic<int> ran{0};
  std::atomic<bool> first_running{false};
  ASSERT_TRUE(pool->submit([&] {
                    first_running = true;
                    gate.wait();
                    ran.fetch_add(1);
                  })
                  .ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool->submit([&] { ran.fetch_add(1); }).ok());
  ASSERT_TRUE(eventually([&] { return first_running.load(); }));
  std::atomic<bool> shutdown_returned{false};
  std::thread stopper([&] {
    pool->shutdown();
    shutdown_returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(shutdown_returned.load()) << "shutdown did not wait for the running job";
  gate.open();
  stopper.join();
  EXPECT_EQ(ran.load(), 4) << "queued jobs are still run by shutdown";
  EXPECT_EQ(pool->num_threads(), 0u);
  absl::Status late = pool->submit([] {});
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.message()), HasSubstr("after shutdown"));
  pool->shutdown();  // Idempotent.
}

TEST(BlockingPoolTest, RejectsBadOptionsAndEmptyJobs) {
  EXPECT_EQ(BlockingPool::create({.max_threads = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockingPool::create({.min_threads = 3, .max_threads = 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockingPool::create({.keep_alive = Duration::Seconds(-1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockingPool::create({.max_queued = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto pool = make_pool({});
  EXPECT_EQ(pool->submit(nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST(BlockingPoolDeathTest, ShutdownFromAJobAborts) {
  EXPECT_DEATH(
      {
        auto pool = make_pool({});
        std::atomic<bool> done{false};
        (void)pool->submit([&] {
          pool->shutdown();
          done = true;
        });
        while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      },
      "invariant violated: BlockingPool::shutdown is not called from one of the pool's own jobs");
}

// Submitters race with threads that retire after a 1 ms keep-alive and with new ones starting:
// every job runs exactly once.
TEST(BlockingPoolStressTest, EveryJobRunsOnceWhileThreadsComeAndGo) {
  auto pool = make_pool({.min_threads = 0,
                         .max_threads = 4,
                         .keep_alive = Duration::Milliseconds(1),
                         .max_queued = 1 << 20});
  constexpr int kSubmitters = 3;
  constexpr int kJobs = 3000;
  std::vector<std::atomic<int>> runs(kSubmitters * kJobs);
  std::vector<std::thread> submitters;
  for (int s = 0; s < kSubmitters; ++s) {
    submitters.emplace_back([&, s] {
      for (int i = 0; i < kJobs; ++i) {
        ASSERT_TRUE(
            pool->submit([&runs, index = s * kJobs + i] { runs[index].fetch_add(1); }).ok());
        if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  for (std::thread& submitter : submitters) submitter.join();
  pool->shutdown();
  for (size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i].load(), 1) << i;
}

}  // namespace
}  // namespace asupersync::sched
