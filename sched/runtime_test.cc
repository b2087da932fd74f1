// The production runtime: the core semantics on real threads, plus what only a multi-threaded
// runtime has (stealing, cross-thread wakes and cancels, timers on the wheel, parking).

#include "sched/runtime.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

RuntimeOptions two_workers() {
  RuntimeOptions options;
  options.workers = 2;
  options.leak_policy = LeakPolicy::kPanic;
  return options;
}

// SPEC 2.1, 2.2, 6.1, 6.3: spawned tasks run on the workers and join across threads.
TEST(RuntimeTest, SpawnJoinManyTasks) {
  Runtime runtime(two_workers());
  constexpr int kTasks = 20'000;
  auto outcome = runtime.run([](Cx& cx) -> Task<int64_t> {
    std::vector<TaskHandle<int64_t>> handles;
    handles.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i) {
      auto handle = cx.spawn("leaf", [i](Cx&) -> Task<int64_t> { co_return i; });
      EXPECT_TRUE(handle.ok());
      handles.push_back(std::move(handle).value());
    }
    int64_t sum = 0;
    for (auto& handle : handles) {
      Outcome<int64_t> joined = co_await handle.join(cx);
      sum += joined.value();
    }
    co_return sum;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), int64_t{kTasks} * (kTasks - 1) / 2);
  EXPECT_GE(runtime.stats().dispatches, static_cast<uint64_t>(kTasks));
}

// SPEC 6.3: yields interleave tasks; every yield comes back exactly once.
TEST(RuntimeTest, YieldingTasksAllFinish) {
  Runtime runtime(two_workers());
  auto counter = std::make_shared<std::atomic<int64_t>>(0);
  auto outcome = runtime.run([counter](Cx& cx) -> Task<void> {
    for (int t = 0; t < 100; ++t) {
      auto handle = cx.spawn("yielder", [counter](Cx& c) -> Task<void> {
        for (int i = 0; i < 1000; ++i) {
          EXPECT_TRUE((co_await c.yield()).ok());
          counter->fetch_add(1, std::memory_order_relaxed);
        }
      });
      EXPECT_TRUE(handle.ok());
    }
    co_return;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(counter->load(), 100 * 1000);
}

// SPEC 6.4: a sleep never ends early, and many sleepers all wake.
TEST(RuntimeTest, SleepsWakeNoEarlierThanTheirDeadline) {
  Runtime runtime(two_workers());
  auto early = std::make_shared<std::atomic<int>>(0);
  auto woke = std::make_shared<std::atomic<int>>(0);
  auto outcome = runtime.run([early, woke](Cx& cx) -> Task<void> {
    for (int i = 0; i < 2000; ++i) {
      auto handle = cx.spawn("sleeper", [i, early, woke](Cx& c) -> Task<void> {
        const Time start = c.now().value();
        const Duration requested = Duration::Microseconds((i * 7919) % 5000);
        EXPECT_TRUE((co_await c.sleep(requested)).ok());
        if (c.now().value() < start + requested) early->fetch_add(1);
        woke->fetch_add(1);
      });
      EXPECT_TRUE(handle.ok());
    }
    co_return;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(woke->load(), 2000);
  EXPECT_EQ(early->load(), 0);
  EXPECT_GT(runtime.stats().timers_fired, 0u);
}

// SPEC 4.1, 4.2, 6.2, 6.4: cancelling a region of parked tasks wakes every one through the
// cancel lane, removes their timers and closes the region.
TEST(RuntimeTest, CancelRegionOfParkedTasks) {
  Runtime runtime(two_workers());
  auto cleaned = std::make_shared<std::atomic<int>>(0);
  auto outcome = runtime.run([cleaned](Cx& cx) -> Task<void> {
    auto group = Region::open(cx, "group", [cleaned](Cx& gx) -> Task<void> {
      for (int i = 0; i < 10'000; ++i) {
        auto handle = gx.spawn("parked", [cleaned](Cx& c) -> Task<void> {
          absl::Status slept = co_await c.sleep(Duration::Seconds(3600));
          EXPECT_EQ(slept.code(), absl::StatusCode::kCancelled);
          cleaned->fetch_add(1);
        });
        EXPECT_TRUE(handle.ok());
      }
      (void)co_await gx.yield();
      gx.cancel_region("test cancels the group");
      co_return;
    });
    Outcome<void> closed = co_await std::move(group);
    EXPECT_TRUE(closed.is_cancelled()) << closed.to_string();
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(cleaned->load(), 10'000);
}

// SPEC 4.3, 6.2: a region cancel hands its woken tasks to the cancel lane in batches
// (Executor::schedule_cancel_batch, several chunks here); every member is cleaned up before any
// ready work runs again (one worker, and a streak limit that does not cut in), in the order of
// the region's walk (newest first: equal priorities stay FIFO).
TEST(RuntimeTest, GroupCancelDeliversEveryMemberBeforeReadyWork) {
  RuntimeOptions options;
  options.workers = 1;
  options.leak_policy = LeakPolicy::kPanic;
  options.cancel_streak_limit = 1'000'000;
  Runtime runtime(options);
  constexpr int kMembers = 300;  // more than one CancelBatch chunk (64)
  struct Shared {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> ready_runs{0};
    std::atomic<int> started{0};
    int64_t ready_runs_at_cancel = -1;
    std::vector<int64_t> ready_runs_seen;  // one worker: no lock needed
    std::vector<int> cleanup_order;
  };
  auto shared = std::make_shared<Shared>();
  auto outcome = runtime.run([shared](Cx& cx) -> Task<void> {
    for (int i = 0; i < 4; ++i) {
      auto busy = cx.spawn("busy", [shared](Cx& c) -> Task<void> {
        while (!shared->stop.load()) {
          shared->ready_runs.fetch_add(1);
          absl::Status yielded = co_await c.yield();
          if (!yielded.ok()) co_return;
        }
      });
      EXPECT_TRUE(busy.ok());
    }
    auto group = Region::open(cx, "group", [shared](Cx& gx) -> Task<void> {
      for (int i = 0; i < kMembers; ++i) {
        auto member = gx.spawn("member", [shared, i](Cx& c) -> Task<void> {
          shared->started.fetch_add(1);
          absl::Status slept = co_await c.sleep(Duration::Seconds(3600));
          EXPECT_EQ(slept.code(), absl::StatusCode::kCancelled);
          shared->ready_runs_seen.push_back(shared->ready_runs.load());
          shared->cleanup_order.push_back(i);
        });
        EXPECT_TRUE(member.ok());
      }
      while (shared->started.load() < kMembers) (void)co_await gx.yield();
      gx.cancel_region("test cancels the group");
      shared->ready_runs_at_cancel = shared->ready_runs.load();
      co_return;
    });
    Outcome<void> closed = co_await std::move(group);
    EXPECT_TRUE(closed.is_cancelled()) << closed.to_string();
    shared->stop.store(true);
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  ASSERT_EQ(shared->cleanup_order.size(), static_cast<size_t>(kMembers));
  for (int i = 0; i < kMembers; ++i) {
    EXPECT_EQ(shared->ready_runs_seen[i], shared->ready_runs_at_cancel) << "member " << i;
    EXPECT_EQ(shared->cleanup_order[i], kMembers - 1 - i);
  }
}

// SPEC 4.1, 6.3: a region cancelled from a thread that is not a worker hands the batch to the
// global cancel queue and wakes a parked worker: nothing is lost and the region closes.
TEST(RuntimeTest, GroupCancelFromOutsideTheWorkersWakesThem) {
  Runtime runtime(two_workers());
  constexpr int kMembers = 500;
  auto cleaned = std::make_shared<std::atomic<int>>(0);
  auto started = std::make_shared<std::atomic<int>>(0);
  std::thread canceller;
  auto outcome = runtime.run([&](Cx& cx) -> Task<void> {
    auto group = Region::open(cx, "group", [&](Cx& gx) -> Task<void> {
      for (int i = 0; i < kMembers; ++i) {
        auto member = gx.spawn("member", [cleaned, started](Cx& c) -> Task<void> {
          started->fetch_add(1);
          absl::Status slept = co_await c.sleep(Duration::Seconds(3600));
          EXPECT_EQ(slept.code(), absl::StatusCode::kCancelled);
          cleaned->fetch_add(1);
        });
        EXPECT_TRUE(member.ok());
      }
      while (started->load() < kMembers) (void)co_await gx.yield();
      Region& region = gx.region();
      region.add_ref();
      canceller = std::thread([target = RegionRef(&region)] {
        // Let the workers park first, so that the batch must wake one.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        target->cancel(CancelReason(CancelKind::kUser, RegionId(), std::nullopt, Time::Epoch(),
                                    "cancelled from outside"),
                       Budget::Infinite());
      });
      co_return;
    });
    Outcome<void> closed = co_await std::move(group);
    EXPECT_TRUE(closed.is_cancelled()) << closed.to_string();
  });
  canceller.join();
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(cleaned->load(), kMembers);
}

// SPEC 2.2, 4.1: a handle cancels a task parked on another worker; the joiner sees Cancelled.
TEST(RuntimeTest, CancelThroughHandleAcrossWorkers) {
  Runtime runtime(two_workers());
  auto outcome = runtime.run([](Cx& cx) -> Task<void> {
    for (int round = 0; round < 200; ++round) {
      auto handle = cx.spawn(
          "target", [](Cx& c) -> Task<void> { (void)co_await c.sleep(Duration::Seconds(3600)); });
      (void)co_await cx.yield();
      handle->cancel("round over");
      Outcome<void> joined = co_await handle->join(cx);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    }
  });
  // A child cancelled from outside the region's own decisions makes the region Cancelled.
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 6.2: the cancel lane runs the highest cleanup priority first. One worker, and the
// cancels come from the task running on it, so the three entries meet in its cancel lane.
TEST(RuntimeTest, CancelLaneRunsHigherCleanupPriorityFirst) {
  RuntimeOptions options;
  options.workers = 1;
  options.leak_policy = LeakPolicy::kPanic;
  Runtime runtime(options);
  auto cleaned = std::make_shared<std::vector<std::string>>();
  auto outcome = runtime.run([cleaned](Cx& cx) -> Task<void> {
    auto parked = std::make_shared<std::atomic<int>>(0);
    std::vector<TaskHandle<void>> handles;
    for (std::string name : {"low", "high", "middle"}) {
      auto handle = cx.spawn(name, [cleaned, parked, name](Cx& c) -> Task<void> {
        parked->fetch_add(1);
        (void)co_await c.sleep(Duration::Seconds(3600));
        cleaned->push_back(name);
      });
      EXPECT_TRUE(handle.ok());
      handles.push_back(std::move(handle).value());
    }
    while (parked->load() < 3) (void)co_await cx.yield();
    Budget high = Budget::Infinite();
    high.priority = 250;
    Budget middle = Budget::Infinite();
    middle.priority = 230;
    handles[0].cancel("low: the kUser default, 200");
    handles[1].cancel("high", high);
    handles[2].cancel("middle", middle);
    for (TaskHandle<void>& handle : handles) {
      Outcome<void> joined = co_await handle.join(cx);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    }
  });
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
  EXPECT_EQ(*cleaned, (std::vector<std::string>{"high", "middle", "low"}));
}

// SPEC 3.4, 3.6: nested regions close in order on the runtime and finalizers run once, LIFO.
TEST(RuntimeTest, NestedRegionsAndFinalizers) {
  Runtime runtime(two_workers());
  auto order = std::make_shared<std::vector<int>>();
  auto mutex = std::make_shared<std::mutex>();
  auto outcome = runtime.run([order, mutex](Cx& cx) -> Task<void> {
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(cx.defer([order, mutex, i] {
                      std::lock_guard<std::mutex> lock(*mutex);
                      order->push_back(i);
                    }).ok());
    }
    for (int r = 0; r < 20; ++r) {
      auto inner = Region::open(cx, "inner", [](Cx& rx) -> Task<int> {
        for (int i = 0; i < 50; ++i) {
          auto handle = rx.spawn("child", [](Cx& c) -> Task<void> {
            (void)co_await c.sleep(Duration::Microseconds(100));
          });
          EXPECT_TRUE(handle.ok());
        }
        co_return 7;
      });
      Outcome<int> closed = co_await std::move(inner);
      EXPECT_TRUE(closed.ok()) << closed.to_string();
      EXPECT_TRUE(cx.region().stats().open_child_regions == 0);
    }
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(*order, (std::vector<int>{2, 1, 0}));
}

// SPEC 4.5: a task ignoring cancellation while parked is escalated by its cleanup deadline.
TEST(RuntimeTest, IgnoringTaskIsEscalatedByDeadline) {
  Runtime runtime(two_workers());
  auto outcome = runtime.run([](Cx& cx) -> Task<void> {
    auto handle = cx.spawn("stubborn", [](Cx& c) -> Task<void> {
      auto shield = c.shield();
      (void)co_await c.sleep(Duration::Seconds(3600));
    });
    (void)co_await cx.yield();
    handle->cancel("stop",
                   Budget::Infinite().with_deadline(cx.now().value() + Duration::Milliseconds(5)));
    auto shield = cx.shield();
    Outcome<void> joined = co_await handle->join(cx);
    EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    EXPECT_TRUE(handle->budget_exhausted());
  });
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 6.3: idle workers park instead of spinning: half a second of idling costs far less CPU
// than one busy core (a generous bound: a spinning runtime would use ~1 s here).
TEST(RuntimeTest, IdleRuntimeDoesNotSpin) {
  Runtime runtime(two_workers());
  rusage before;
  getrusage(RUSAGE_SELF, &before);
  auto outcome = runtime.run(
      [](Cx& cx) -> Task<void> { (void)co_await cx.sleep(Duration::Milliseconds(500)); });
  rusage after;
  getrusage(RUSAGE_SELF, &after);
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  auto cpu_microseconds = [](const rusage& usage) {
    return int64_t{usage.ru_utime.tv_sec} * 1'000'000 + usage.ru_utime.tv_usec +
           int64_t{usage.ru_stime.tv_sec} * 1'000'000 + usage.ru_stime.tv_usec;
  };
  EXPECT_LT(cpu_microseconds(after) - cpu_microseconds(before), 250'000);
}

// Stress (SPEC 3, 4, 6 with the oracles): random trees of regions, spawns, sleeps, yields,
// joins and cancels on two workers; after each round the main region is quiescent and every
// task's cleanup ran exactly once. ASUPERSYNC_STRESS_SECONDS sets the duration (default 3).
TEST(RuntimeTest, RandomizedStormsKeepTheInvariants) {
  double seconds = 3;
  if (const char* env = std::getenv("ASUPERSYNC_STRESS_SECONDS")) seconds = std::atof(env);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  Runtime runtime(two_workers());
  int rounds = 0;
  do {
    auto started = std::make_shared<std::atomic<int>>(0);
    auto finished = std::make_shared<std::atomic<int>>(0);
    auto outcome = runtime.run([started, finished, rounds](Cx& cx) -> Task<void> {
      uint64_t random = static_cast<uint64_t>(rounds) * 0x9e3779b97f4a7c15ull + 1;
      auto next = [&random] {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        return random;
      };
      for (int r = 0; r < 8; ++r) {
        const uint64_t seed = next();
        auto region = Region::open(cx, "storm", [started, finished, seed](Cx& rx) -> Task<void> {
          std::vector<TaskHandle<void>> handles;
          for (int i = 0; i < 64; ++i) {
            const uint64_t kind = (seed >> (i % 60)) % 4;
            auto handle = rx.spawn("worker", [started, finished, kind](Cx& c) -> Task<void> {
              started->fetch_add(1);
              struct Cleanup {
                std::shared_ptr<std::atomic<int>> finished;
                ~Cleanup() { finished->fetch_add(1); }
              } cleanup{finished};
              for (int step = 0; step < 20; ++step) {
                // One co_await per statement: GCC 12 mishandles co_await inside ?: .
                absl::Status status;
                if (kind == 0) {
                  status = co_await c.yield();
                } else if (kind == 1) {
                  status = co_await c.sleep(Duration::Microseconds(50));
                } else if (kind == 2) {
                  status = co_await c.checkpoint();
                } else {
                  status = co_await c.sleep(Duration::Seconds(60));
                }
                if (!status.ok()) co_return;
              }
            });
            if (handle.ok()) handles.push_back(std::move(handle).value());
          }
          for (size_t i = 0; i < handles.size(); i += 3) handles[i].cancel("storm");
          (void)co_await rx.yield();
          if (seed % 2 == 0) rx.cancel_region("storm over");
          (void)co_await rx.sleep(Duration::Microseconds(static_cast<int64_t>(seed % 200)));
          rx.cancel_region("storm done");
          // Shielded joins wait for the cancelled tasks to drain.
          auto shield = rx.shield();
          for (size_t i = 1; i < handles.size(); i += 5) {
            Outcome<void> joined = co_await handles[i].join(rx);
            EXPECT_TRUE(joined.is_cancelled() || joined.ok()) << joined.to_string();
          }
        });
        Outcome<void> closed = co_await std::move(region);
        EXPECT_EQ(cx.region().stats().open_child_regions, 0u);
        EXPECT_TRUE(closed.is_cancelled() || closed.ok()) << closed.to_string();
      }
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    ASSERT_EQ(started->load(), finished->load()) << "round " << rounds;
    ++rounds;
  } while (std::chrono::steady_clock::now() < end);
  EXPECT_GT(rounds, 0);
}

}  // namespace
}  // namespace asupersync::sched
