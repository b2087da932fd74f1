// RwLock: sharing, exclusion, bounded writer preference, cancellation over many seeds, and a
// thread-level try_read/try_write stress test (TSan).

#include "sync/rw_lock.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;
using ::testing::ElementsAre;

// SPEC 8.3: readers share, a writer excludes everyone.
TEST(RwLockTest, ReadersShareWriterExcludes) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      RwLock lock;
      std::vector<TaskHandle<void>> readers;
      int reading = 0;
      int max_reading = 0;
      for (int i = 0; i < 3; ++i) {
        auto reader = cx.spawn("reader", [&](Cx& cx) -> Task<void> {
          absl::StatusOr<ReadGuard> guard = co_await lock.read(cx);
          EXPECT_TRUE(guard.ok());
          ++reading;
          max_reading = std::max(max_reading, reading);
          // Hold until the writer queues (after all three readers got in together).
          while (lock.stats().waiting_writers == 0) (void)co_await cx.yield();
          --reading;
        });
        readers.push_back(std::move(reader).value());
      }
      while (lock.stats().readers < 3) (void)co_await cx.yield();
      EXPECT_TRUE(absl::IsUnavailable(lock.try_write().status()));
      absl::StatusOr<WriteGuard> writer = co_await lock.write(cx);
      EXPECT_TRUE(writer.ok());
      EXPECT_EQ(reading, 0);
      EXPECT_EQ(lock.stats().readers, 0u);
      EXPECT_TRUE(absl::IsUnavailable(lock.try_read().status()));
      writer->unlock();
      for (TaskHandle<void>& reader : readers) (void)co_await reader.join(cx);
      EXPECT_EQ(max_reading, 3);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 8.3 (writer preference): while a writer waits, new readers queue instead of joining the
// readers holding the lock.
TEST(RwLockTest, WaitingWriterHoldsNewReadersBack) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    RwLock lock;
    absl::StatusOr<ReadGuard> held = co_await lock.read(cx);
    auto writer = cx.spawn("writer", [&lock](Cx& cx) -> Task<void> {
      absl::StatusOr<WriteGuard> guard = co_await lock.write(cx);
      EXPECT_TRUE(guard.ok());
    });
    while (lock.stats().waiting_writers < 1) (void)co_await cx.yield();
    EXPECT_TRUE(absl::IsUnavailable(lock.try_read().status()));
    auto reader = cx.spawn("late reader", [&lock](Cx& cx) -> Task<void> {
      absl::StatusOr<ReadGuard> guard = co_await lock.read(cx);
      EXPECT_TRUE(guard.ok());
    });
    while (lock.stats().waiting_readers < 1) (void)co_await cx.yield();
    EXPECT_EQ(lock.stats().readers, 1u);
    held->unlock();  // the writer goes first, then the late reader
    (void)co_await writer->join(cx);
    (void)co_await reader->join(cx);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.3 (bounded): with max_consecutive_writers = 2, a waiting reader gets in after at most
// two writers, ahead of the third.
TEST(RwLockTest, WriterPreferenceIsBounded) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto order = std::make_shared<std::vector<std::string>>();
    auto outcome = sync_testing::run_lab(seed, [order](Cx& cx) -> Task<void> {
      RwLock lock(RwLockOptions{.max_consecutive_writers = 2});
      absl::StatusOr<WriteGuard> held = co_await lock.write(cx);
      std::vector<TaskHandle<void>> tasks;
      auto add = [&](std::string name, bool write) {
        auto spawned = cx.spawn(name, [&lock, order, name, write](Cx& cx) -> Task<void> {
          if (write) {
            absl::StatusOr<WriteGuard> guard = co_await lock.write(cx);
            order->push_back(name);
            (void)co_await cx.yield();
          } else {
            absl::StatusOr<ReadGuard> guard = co_await lock.read(cx);
            order->push_back(name);
            (void)co_await cx.yield();
          }
        });
        tasks.push_back(std::move(spawned).value());
      };
      add("R1", false);
      while (lock.stats().waiting_readers < 1) (void)co_await cx.yield();
      for (int w = 1; w <= 3; ++w) {
        add("W" + std::to_string(w), true);
        while (lock.stats().waiting_writers < static_cast<size_t>(w)) (void)co_await cx.yield();
      }
      held->unlock();
      for (TaskHandle<void>& task : tasks) (void)co_await task.join(cx);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(*order, ElementsAre("W1", "W2", "R1", "W3")) << "seed " << seed;
  }
}

// SPEC 8, 4.2: a cancelled waiting writer stops holding readers back; a grant racing with a
// cancel is released and re-dispatched.
TEST(RwLockTest, CancelledWaitersTakeNothing) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      RwLock lock;
      auto inner = Region::open(cx, "inner", [&lock](Cx& cx) -> Task<void> {
        absl::StatusOr<ReadGuard> held = co_await lock.read(cx);
        auto writer = cx.spawn("writer", [&lock](Cx& cx) -> Task<void> {
          absl::StatusOr<WriteGuard> guard = co_await lock.write(cx);
          EXPECT_TRUE(absl::IsCancelled(guard.status())) << guard.status();
        });
        while (lock.stats().waiting_writers < 1) (void)co_await cx.yield();
        auto reader = cx.spawn("reader", [&lock](Cx& cx) -> Task<void> {
          absl::StatusOr<ReadGuard> guard = co_await lock.read(cx);
          EXPECT_TRUE(guard.ok()) << guard.status();
        });
        while (lock.stats().waiting_readers < 1) (void)co_await cx.yield();
        writer->cancel("stop");
        (void)co_await writer->join(cx);
        (void)co_await reader->join(cx);  // admitted beside `held` once the writer left
        held->unlock();

        // Raced: the write lock is handed to `raced`, which is cancelled before it runs; the
        // waiting reader gets in.
        absl::StatusOr<WriteGuard> writing = co_await lock.write(cx);
        auto raced = cx.spawn("raced", [&lock](Cx& cx) -> Task<void> {
          absl::StatusOr<WriteGuard> guard = co_await lock.write(cx);
          EXPECT_TRUE(absl::IsCancelled(guard.status())) << guard.status();
        });
        while (lock.stats().waiting_writers < 1) (void)co_await cx.yield();
        auto next = cx.spawn("next", [&lock](Cx& cx) -> Task<void> {
          absl::StatusOr<ReadGuard> guard = co_await lock.read(cx);
          EXPECT_TRUE(guard.ok()) << guard.status();
        });
        while (lock.stats().waiting_readers < 1) (void)co_await cx.yield();
        writing->unlock();
        raced->cancel("raced");
        (void)co_await raced->join(cx);
        (void)co_await next->join(cx);
        RwLock::Stats stats = lock.stats();
        EXPECT_EQ(stats.readers, 0u);
        EXPECT_FALSE(stats.writer);
        EXPECT_EQ(stats.waiting_readers + stats.waiting_writers, 0u);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8.3, 11.3): writers update a pair in two steps with a
// suspension in between (a reader must never see it half-updated); readers check it; a
// canceller cancels one task after k yields (k = seed % kAwaitPoints). Checks: readers and
// writers never overlap, no torn read, the lock ends free with no waiter, no deadlock.

class RwLockCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(RwLockCancelTest, CancelledReaderOrWriterNeverBreaksTheLock) {
  constexpr int kReaders = 3;
  constexpr int kWriters = 2;
  constexpr int kRounds = 3;
  constexpr uint64_t kAwaitPoints = 30;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    bool cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      RwLock lock(RwLockOptions{.max_consecutive_writers = 1 + static_cast<uint32_t>(seed % 3)});
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        int first = 0;
        int second = 0;
        int readers_in = 0;
        int writers_in = 0;
        std::vector<TaskHandle<void>> tasks;
        for (int r = 0; r < kReaders; ++r) {
          auto reader = cx.spawn("reader", [&](Cx& cx) -> Task<void> {
            for (int round = 0; round < kRounds; ++round) {
              absl::StatusOr<ReadGuard> guard = co_await lock.read(cx);
              if (!guard.ok()) {
                cancelled = true;
                co_return;
              }
              ++readers_in;
              EXPECT_EQ(writers_in, 0) << "seed " << seed;
              EXPECT_EQ(first, second) << "torn read, seed " << seed;
              absl::Status yielded = co_await cx.yield();
              --readers_in;
              if (!yielded.ok()) {
                cancelled = true;
                co_return;
              }
            }
          });
          tasks.push_back(std::move(reader).value());
        }
        for (int w = 0; w < kWriters; ++w) {
          auto writer = cx.spawn("writer", [&](Cx& cx) -> Task<void> {
            for (int round = 0; round < kRounds; ++round) {
              absl::StatusOr<WriteGuard> guard = co_await lock.write(cx);
              if (!guard.ok()) {
                cancelled = true;
                co_return;
              }
              EXPECT_EQ(++writers_in, 1) << "seed " << seed;
              EXPECT_EQ(readers_in, 0) << "seed " << seed;
              ++first;
              absl::Status yielded = co_await cx.yield();
              ++second;  // finish the update even when cancelled (drain, SPEC 4.3)
              --writers_in;
              if (!yielded.ok()) {
                cancelled = true;
                co_return;
              }
            }
          });
          tasks.push_back(std::move(writer).value());
        }
        const uint64_t k = seed % kAwaitPoints;
        TaskHandle<void>* victim = &tasks[seed % tasks.size()];
        auto canceller = cx.spawn("canceller", [victim, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          victim->cancel("injected");
        });
        (void)co_await canceller->join(cx);
        for (TaskHandle<void>& task : tasks) (void)co_await task.join(cx);
        EXPECT_EQ(first, second);
      });
      Outcome<void> done = co_await std::move(work);
      EXPECT_FALSE(done.is_panicked() || done.is_err()) << done.to_string();
      RwLock::Stats stats = lock.stats();
      EXPECT_EQ(stats.readers, 0u) << "seed " << seed;
      EXPECT_FALSE(stats.writer) << "seed " << seed;
      EXPECT_EQ(stats.waiting_readers + stats.waiting_writers, 0u) << "seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, RwLockCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads (TSan): try_write increments a plain pair, try_read checks it.
TEST(RwLockThreadTest, TryReadTryWriteFromThreads) {
  RwLock lock;
  int64_t first = 0;
  int64_t second = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (t % 2 == 0) {
          absl::StatusOr<WriteGuard> guard = lock.try_write();
          if (!guard.ok()) continue;
          ++first;
          ++second;
        } else {
          absl::StatusOr<ReadGuard> guard = lock.try_read();
          if (!guard.ok()) continue;
          EXPECT_EQ(first, second);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(first, second);
  EXPECT_GT(first, 0);
}

}  // namespace
}  // namespace asupersync
