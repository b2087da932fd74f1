// mpsc, Mutex and Semaphore on the production multi-threaded runtime (issue 6: TSan stress).
// Tasks on two workers hammer each primitive while some are cancelled at random points; the
// invariants are checked afterwards: no message lost or duplicated (values given back by a
// cancelled send are counted), mutual exclusion, and at most N semaphore holders.

#include <atomic>
#include <memory>
#include <vector>

#include "core/region.h"
#include "gtest/gtest.h"
#include "sched/runtime.h"
#include "sync/mpsc.h"
#include "sync/mutex.h"
#include "sync/semaphore.h"

namespace asupersync {
namespace {

sched::RuntimeOptions two_workers() {
  sched::RuntimeOptions options;
  options.workers = 2;
  options.leak_policy = LeakPolicy::kPanic;
  return options;
}

// SPEC 8.1: with producers cancelled mid-stream, every value is either received exactly once
// or given back to its sender; nothing else.
TEST(SyncRuntimeStressTest, MpscLosesAndDuplicatesNothing) {
  for (int round = 0; round < 20; ++round) {
    sched::Runtime runtime(two_workers());
    auto received_sum = std::make_shared<std::atomic<int64_t>>(0);
    auto received_count = std::make_shared<std::atomic<int64_t>>(0);
    auto returned_sum = std::make_shared<std::atomic<int64_t>>(0);
    auto sent_sum = std::make_shared<std::atomic<int64_t>>(0);
    auto outcome = runtime.run([=](Cx& cx) -> Task<void> {
      auto made = mpsc::channel<int64_t>(4);
      EXPECT_TRUE(made.ok());
      mpsc::Sender<int64_t> tx = std::move(made->first);
      mpsc::Receiver<int64_t> rx = std::move(made->second);
      auto work = Region::open(cx, "work", [&](Cx& wx) -> Task<void> {
        std::vector<TaskHandle<void>> producers;
        for (int p = 0; p < 4; ++p) {
          auto producer = wx.spawn("producer", [=, sender = tx](Cx& c) mutable -> Task<void> {
            mpsc::Sender<int64_t> mine = std::move(sender);
            for (int64_t i = 1; i <= 500; ++i) {
              const int64_t value = p * 100'000 + i;
              SendResult<int64_t> sent = co_await mine.send(c, value);
              if (!sent.ok()) {
                if (sent.value.has_value()) returned_sum->fetch_add(*sent.value);
                co_return;
              }
              sent_sum->fetch_add(value);
              if (i % 7 == 0) (void)co_await c.yield();
            }
          });
          if (producer.ok()) producers.push_back(std::move(producer).value());
        }
        tx.reset();
        auto consumer =
            wx.spawn("consumer", [&rx, received_sum, received_count](Cx& c) -> Task<void> {
              while (true) {
                absl::StatusOr<int64_t> value = co_await rx.recv(c);
                if (!value.ok()) co_return;  // end of stream
                received_sum->fetch_add(*value);
                received_count->fetch_add(1);
              }
            });
        (void)co_await wx.sleep(Duration::Microseconds(50 * (round % 5)));
        producers[static_cast<size_t>(round) % producers.size()].cancel("stop one producer");
        for (auto& producer : producers) (void)co_await producer.join(wx);
        (void)co_await consumer->join(wx);
      });
      Outcome<void> done = co_await std::move(work);
      EXPECT_FALSE(done.is_err() || done.is_panicked()) << done.to_string();
    });
    EXPECT_FALSE(outcome.is_err() || outcome.is_panicked()) << outcome.to_string();
    EXPECT_EQ(received_sum->load(), sent_sum->load()) << "round " << round;
  }
}

// SPEC 8.3: a FIFO Mutex keeps exclusion across workers, with holders cancelled while waiting.
TEST(SyncRuntimeStressTest, MutexKeepsExclusion) {
  sched::Runtime runtime(two_workers());
  auto inside = std::make_shared<std::atomic<int>>(0);
  auto violations = std::make_shared<std::atomic<int>>(0);
  auto entries = std::make_shared<std::atomic<int>>(0);
  auto outcome = runtime.run([=](Cx& cx) -> Task<void> {
    Mutex mutex;
    auto work = Region::open(cx, "work", [&](Cx& wx) -> Task<void> {
      std::vector<TaskHandle<void>> tasks;
      for (int t = 0; t < 16; ++t) {
        auto task = wx.spawn("locker", [&mutex, inside, violations, entries](Cx& c) -> Task<void> {
          for (int i = 0; i < 200; ++i) {
            absl::StatusOr<MutexGuard> guard = co_await mutex.lock(c);
            if (!guard.ok()) co_return;  // cancelled: took nothing
            if (inside->fetch_add(1) != 0) violations->fetch_add(1);
            entries->fetch_add(1);
            if (i % 3 == 0) (void)co_await c.yield();  // hold it across an await
            inside->fetch_sub(1);
          }
        });
        if (task.ok()) tasks.push_back(std::move(task).value());
      }
      (void)co_await wx.sleep(Duration::Microseconds(100));
      for (size_t i = 0; i < tasks.size(); i += 4) tasks[i].cancel("stop");
      for (auto& task : tasks) (void)co_await task.join(wx);
    });
    Outcome<void> done = co_await std::move(work);
    EXPECT_FALSE(done.is_err() || done.is_panicked()) << done.to_string();
  });
  EXPECT_FALSE(outcome.is_err() || outcome.is_panicked()) << outcome.to_string();
  EXPECT_EQ(violations->load(), 0);
  EXPECT_GT(entries->load(), 0);
  EXPECT_EQ(inside->load(), 0);
}

// SPEC 8.3, 5.1: at most N holders at any time; every permit is released exactly once (a
// leak would fail the region under kPanic).
TEST(SyncRuntimeStressTest, SemaphoreBoundsHolders) {
  sched::Runtime runtime(two_workers());
  auto holders = std::make_shared<std::atomic<int>>(0);
  auto over = std::make_shared<std::atomic<int>>(0);
  auto outcome = runtime.run([=](Cx& cx) -> Task<void> {
    Semaphore semaphore(3);
    auto work = Region::open(cx, "work", [&](Cx& wx) -> Task<void> {
      std::vector<TaskHandle<void>> tasks;
      for (int t = 0; t < 12; ++t) {
        auto task = wx.spawn("user", [&semaphore, holders, over, t](Cx& c) -> Task<void> {
          for (int i = 0; i < 150; ++i) {
            const size_t units = 1 + static_cast<size_t>((t + i) % 2);
            absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(c, units);
            if (!permit.ok()) co_return;
            if (holders->fetch_add(static_cast<int>(units)) + static_cast<int>(units) > 3) {
              over->fetch_add(1);
            }
            if (i % 2 == 0) (void)co_await c.yield();
            holders->fetch_sub(static_cast<int>(units));
            std::move(*permit).release();
          }
        });
        if (task.ok()) tasks.push_back(std::move(task).value());
      }
      (void)co_await wx.sleep(Duration::Microseconds(100));
      for (size_t i = 1; i < tasks.size(); i += 3) tasks[i].cancel("stop");
      for (auto& task : tasks) (void)co_await task.join(wx);
    });
    Outcome<void> done = co_await std::move(work);
    EXPECT_FALSE(done.is_err() || done.is_panicked()) << done.to_string();
  });
  EXPECT_FALSE(outcome.is_err() || outcome.is_panicked()) << outcome.to_string();
  EXPECT_EQ(over->load(), 0);
  EXPECT_EQ(holders->load(), 0);
}

}  // namespace
}  // namespace asupersync
