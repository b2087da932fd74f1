// Notify: FIFO wakes, the stored permit, notify_all, cancellation over many seeds (no lost
// wake-up), and notify_one from other threads (TSan).

#include "sync/notify.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;
using ::testing::ElementsAre;

// SPEC 8.3, 8 (FIFO): notify_one wakes the oldest waiter.
TEST(NotifyTest, NotifyOneWakesOldestFirst) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto order = std::make_shared<std::vector<int>>();
    auto outcome = sync_testing::run_lab(seed, [order](Cx& cx) -> Task<void> {
      Notify notify;
      std::vector<TaskHandle<void>> waiters;
      for (int i = 0; i < 3; ++i) {
        auto waiter = cx.spawn("waiter", [&notify, order, i](Cx& cx) -> Task<void> {
          absl::Status woken = co_await notify.notified(cx);
          EXPECT_TRUE(woken.ok()) << woken;
          order->push_back(i);
        });
        waiters.push_back(std::move(waiter).value());
        while (notify.waiter_count() < static_cast<size_t>(i + 1)) (void)co_await cx.yield();
      }
      for (size_t woken = 1; woken <= 3; ++woken) {
        notify.notify_one();
        while (order->size() < woken) (void)co_await cx.yield();
      }
      for (TaskHandle<void>& waiter : waiters) (void)co_await waiter.join(cx);
      EXPECT_FALSE(notify.has_permit());
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(*order, ElementsAre(0, 1, 2)) << "seed " << seed;
  }
}

// SPEC 8.3: notify_one with nobody waiting stores one permit (not more); notify_all stores
// nothing.
TEST(NotifyTest, PermitIsStoredOnceNotifyAllStoresNothing) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    Notify notify;
    notify.notify_one();
    notify.notify_one();
    EXPECT_TRUE(notify.has_permit());
    absl::Status first = co_await notify.notified(cx);  // consumes the permit, no wait
    EXPECT_TRUE(first.ok());
    EXPECT_FALSE(notify.has_permit());
    notify.notify_all();
    EXPECT_FALSE(notify.has_permit());
    auto waiter = cx.spawn("waiter", [&notify](Cx& cx) -> Task<void> {
      absl::Status woken = co_await notify.notified(cx);  // must really wait
      EXPECT_TRUE(woken.ok());
    });
    while (notify.waiter_count() < 1) (void)co_await cx.yield();
    notify.notify_one();
    (void)co_await waiter->join(cx);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.3: notify_all wakes every current waiter.
TEST(NotifyTest, NotifyAllWakesEveryWaiter) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    Notify notify;
    int woken = 0;
    std::vector<TaskHandle<void>> waiters;
    for (int i = 0; i < 4; ++i) {
      auto waiter = cx.spawn("waiter", [&](Cx& cx) -> Task<void> {
        absl::Status status = co_await notify.notified(cx);
        EXPECT_TRUE(status.ok());
        ++woken;
      });
      waiters.push_back(std::move(waiter).value());
    }
    while (notify.waiter_count() < 4) (void)co_await cx.yield();
    notify.notify_all();
    EXPECT_EQ(notify.waiter_count(), 0u);
    for (TaskHandle<void>& waiter : waiters) (void)co_await waiter.join(cx);
    EXPECT_EQ(woken, 4);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8, 4.2: a cancelled waiter consumes nothing (a later notify_one is stored, not lost); a
// notify_one that picked a waiter whose cancel raced in passes to the next waiter, or is
// stored when there is none.
TEST(NotifyTest, CancelledWaiterPassesNotificationOn) {
  for (bool second_waiter : {false, true}) {
    auto outcome = sync_testing::run_lab(3, [second_waiter](Cx& cx) -> Task<void> {
      Notify notify;
      auto inner = Region::open(cx, "inner", [&](Cx& cx) -> Task<void> {
        auto cancelled = [&](Cx& cx) -> Task<void> {
          absl::Status woken = co_await notify.notified(cx);
          EXPECT_TRUE(absl::IsCancelled(woken)) << woken;
        };
        TaskHandle<void> queued = cx.spawn("queued", cancelled).value();
        while (notify.waiter_count() < 1) (void)co_await cx.yield();
        queued.cancel("while queued");
        (void)co_await queued.join(cx);
        EXPECT_EQ(notify.waiter_count(), 0u);

        TaskHandle<void> raced = cx.spawn("raced", cancelled).value();
        while (notify.waiter_count() < 1) (void)co_await cx.yield();
        TaskHandle<void> next;
        if (second_waiter) {
          next = cx.spawn("next", [&notify](Cx& cx) -> Task<void> {
                     absl::Status woken = co_await notify.notified(cx);
                     EXPECT_TRUE(woken.ok()) << woken;
                   }).value();
          while (notify.waiter_count() < 2) (void)co_await cx.yield();
        }
        notify.notify_one();  // picks `raced`...
        raced.cancel("raced");
        (void)co_await raced.join(cx);  // ...which passes it on
        if (second_waiter) {
          (void)co_await next.join(cx);
          EXPECT_FALSE(notify.has_permit());
        } else {
          EXPECT_TRUE(notify.has_permit());
        }
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_EQ(notify.waiter_count(), 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection, no lost wake-up (SPEC 4.2, 8.3, 11.3): a producer makes N items
// available one at a time with notify_one; consumers take items, waiting on notified() when
// there are none; a canceller cancels one consumer after k yields (k = seed % kAwaitPoints).
// If a notification given to the cancelled consumer were lost, the other consumers would sleep
// with items available and the lab would report a deadlock. Checks: every item is taken
// exactly once, no waiter is left, no deadlock.

class NotifyCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(NotifyCancelTest, CancelledWaiterNeverLosesAWakeUp) {
  constexpr int kConsumers = 3;
  constexpr int kItems = 12;
  constexpr uint64_t kAwaitPoints = 40;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    int taken = 0;
    bool cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      Notify notify;
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        int available = 0;
        bool done = false;
        std::vector<TaskHandle<void>> consumers;
        for (int c = 0; c < kConsumers; ++c) {
          auto consumer = cx.spawn("consumer", [&](Cx& cx) -> Task<void> {
            while (true) {
              if (available > 0) {
                --available;
                ++taken;
                if (absl::Status s = co_await cx.yield(); !s.ok()) {
                  cancelled = true;
                  co_return;
                }
                continue;
              }
              if (done) co_return;
              absl::Status woken = co_await notify.notified(cx);
              if (!woken.ok()) {
                EXPECT_TRUE(absl::IsCancelled(woken)) << woken;
                cancelled = true;
                co_return;
              }
            }
          });
          consumers.push_back(std::move(consumer).value());
        }
        auto producer = cx.spawn("producer", [&](Cx& cx) -> Task<void> {
          for (int i = 0; i < kItems; ++i) {
            ++available;
            notify.notify_one();
            (void)co_await cx.yield();
          }
          // Wait until the items are gone (bounded: a lost wake-up fails, not hangs), then
          // release everyone.
          for (int spins = 0; available > 0 && spins < 10'000; ++spins) (void)co_await cx.yield();
          EXPECT_EQ(available, 0) << "lost wake-up, seed " << seed;
          done = true;
          notify.notify_all();
        });
        const uint64_t k = seed % kAwaitPoints;
        TaskHandle<void>* victim = &consumers[seed % kConsumers];
        auto canceller = cx.spawn("canceller", [victim, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          victim->cancel("injected");
        });
        (void)co_await canceller->join(cx);
        (void)co_await producer->join(cx);
        for (TaskHandle<void>& consumer : consumers) (void)co_await consumer.join(cx);
        EXPECT_EQ(available, 0);
      });
      Outcome<void> finished = co_await std::move(work);
      EXPECT_FALSE(finished.is_panicked() || finished.is_err()) << finished.to_string();
      EXPECT_EQ(notify.waiter_count(), 0u) << "seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    EXPECT_EQ(taken, kItems) << "seed " << seed;
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, NotifyCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads (TSan): notify_one from other threads while nobody waits stores exactly one permit.
TEST(NotifyThreadTest, NotifyFromThreads) {
  Notify notify;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&notify] {
      for (int i = 0; i < 1000; ++i) {
        notify.notify_one();
        notify.notify_all();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_TRUE(notify.has_permit());
  EXPECT_EQ(notify.waiter_count(), 0u);
}

}  // namespace
}  // namespace asupersync
