// watch: latest value + version, changed(), closing, cancellation over many seeds, and a
// sender thread with borrowing reader threads (TSan).

#include "sync/watch.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"
#include "sync/status.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;

// SPEC 8.2: the latest value and its version; changed() reports a newer version once.
TEST(WatchTest, LatestValueAndVersion) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    auto made = watch::channel<std::string>("initial");
    watch::Sender<std::string>& tx = made.first;
    watch::Receiver<std::string>& rx = made.second;
    EXPECT_EQ(*rx.borrow(), "initial");
    EXPECT_EQ(rx.version(), 0u);
    EXPECT_FALSE(rx.has_changed());
    std::shared_ptr<const std::string> snapshot = rx.borrow();
    tx.send("second");
    EXPECT_EQ(*snapshot, "initial");  // a snapshot does not change
    EXPECT_TRUE(rx.has_changed());
    absl::Status changed = co_await rx.changed(cx);  // no wait: version 1 is new
    EXPECT_TRUE(changed.ok()) << changed;
    EXPECT_EQ(rx.seen_version(), 1u);
    EXPECT_FALSE(rx.has_changed());
    EXPECT_EQ(rx.get(), "second");
    watch::Receiver<std::string> late = tx.subscribe();
    EXPECT_FALSE(late.has_changed());
    EXPECT_EQ(*late.borrow(), "second");
    tx.send("third");
    EXPECT_EQ(*late.borrow_and_update(), "third");
    EXPECT_FALSE(late.has_changed());
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.2: a waiting changed() wakes on a send; intermediate versions are skipped.
TEST(WatchTest, ChangedWaitsAndSeesTheLatest) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      auto made = watch::channel<int>(0);
      watch::Sender<int>& tx = made.first;
      watch::Receiver<int>& rx = made.second;
      auto observer = cx.spawn("observer", [&rx](Cx& cx) -> Task<int> {
        absl::Status changed = co_await rx.changed(cx);
        EXPECT_TRUE(changed.ok()) << changed;
        co_return *rx.borrow();
      });
      while (rx.waiting() < 1) (void)co_await cx.yield();
      tx.send(1);
      tx.send(2);
      tx.send(3);
      Outcome<int> seen = co_await observer->join(cx);
      EXPECT_EQ(seen.value(), 3);
      EXPECT_EQ(rx.seen_version(), 3u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 8.2, 13: when every sender is gone, an unseen version is still reported, then
// ChannelClosed; the last value stays readable.
TEST(WatchTest, ClosedAfterTheLastVersion) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    auto made = watch::channel<int>(0);
    watch::Receiver<int>& rx = made.second;
    auto waiter = cx.spawn("waiter", [&rx](Cx& cx) -> Task<void> {
      absl::Status first = co_await rx.changed(cx);
      EXPECT_TRUE(first.ok()) << first;
      absl::Status second = co_await rx.changed(cx);
      EXPECT_TRUE(is_channel_closed(second)) << second;
    });
    made.first.send(5);
    made.first.reset();
    (void)co_await waiter->join(cx);
    EXPECT_EQ(rx.get(), 5);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8, 4.2: a cancelled changed() marks nothing seen, also when a send raced in.
TEST(WatchTest, CancelledChangedMarksNothingSeen) {
  for (bool send_races_in : {false, true}) {
    auto outcome = sync_testing::run_lab(3, [send_races_in](Cx& cx) -> Task<void> {
      auto made = watch::channel<int>(0);
      watch::Sender<int>& tx = made.first;
      watch::Receiver<int>& rx = made.second;
      auto inner = Region::open(cx, "inner", [&](Cx& cx) -> Task<void> {
        auto observer = cx.spawn("observer", [&rx](Cx& cx) -> Task<void> {
          absl::Status changed = co_await rx.changed(cx);
          EXPECT_TRUE(absl::IsCancelled(changed)) << changed;
        });
        while (rx.waiting() < 1) (void)co_await cx.yield();
        if (send_races_in) tx.send(1);
        observer->cancel("stop");
        (void)co_await observer->join(cx);
        EXPECT_EQ(rx.waiting(), 0u);
        EXPECT_EQ(rx.seen_version(), 0u);
        if (!send_races_in) tx.send(1);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_TRUE(rx.has_changed());
      absl::Status changed = co_await rx.changed(cx);
      EXPECT_TRUE(changed.ok());
      EXPECT_EQ(rx.get(), 1);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8.2, 11.3): a sender publishes versions 1..N (value ==
// version), yielding in between; three observers loop on changed(); one is cancelled after k
// yields (k = seed % kAwaitPoints) and the test body continues with its receiver. Checks: each
// observer sees versions strictly increasing and values matching them, ends having seen the last
// version N, then ChannelClosed; no waiter is left.

class WatchCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(WatchCancelTest, CancelledObserverMissesNoFinalVersion) {
  constexpr int kObservers = 3;
  constexpr int kVersions = 8;
  constexpr uint64_t kAwaitPoints = 20;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    std::vector<std::vector<uint64_t>> seen(kObservers);
    bool cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      auto made = watch::channel<int>(0);
      std::vector<watch::Receiver<int>> receivers;
      for (int o = 0; o < kObservers; ++o) receivers.push_back(made.first.subscribe());
      made.second.reset();
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        auto observe = [&](Cx& cx, int o) -> Task<bool> {
          while (true) {
            absl::Status changed = co_await receivers[o].changed(cx);
            if (absl::IsCancelled(changed)) co_return false;
            if (!changed.ok()) {
              EXPECT_TRUE(is_channel_closed(changed)) << changed;
              co_return true;
            }
            const uint64_t version = receivers[o].seen_version();
            EXPECT_GE(static_cast<uint64_t>(*receivers[o].borrow()), version);
            if (!seen[o].empty()) {
              EXPECT_LT(seen[o].back(), version) << "seed " << seed;
            }
            seen[o].push_back(version);
          }
        };
        std::vector<TaskHandle<void>> tasks;
        for (int o = 0; o < kObservers; ++o) {
          auto task = cx.spawn("observer", [&, o](Cx& cx) -> Task<void> {
            Task<bool> observed = observe(cx, o);
            if (!co_await std::move(observed)) cancelled = true;
          });
          tasks.push_back(std::move(task).value());
        }
        auto sender = cx.spawn("sender", [tx = made.first](Cx& cx) mutable -> Task<void> {
          watch::Sender<int> mine = std::move(tx);
          for (int version = 1; version <= kVersions; ++version) {
            mine.send(version);
            (void)co_await cx.yield();
          }
        });
        made.first.reset();
        const int victim = static_cast<int>(seed % kObservers);
        const uint64_t k = seed % kAwaitPoints;
        auto canceller = cx.spawn("canceller", [&, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          tasks[victim].cancel("injected");
        });
        (void)co_await canceller->join(cx);
        (void)co_await tasks[victim].join(cx);
        Task<bool> rest = observe(cx, victim);
        EXPECT_TRUE(co_await std::move(rest));
        (void)co_await sender->join(cx);
        for (TaskHandle<void>& task : tasks) (void)co_await task.join(cx);
        EXPECT_EQ(receivers[victim].waiting(), 0u);
      });
      Outcome<void> finished = co_await std::move(work);
      EXPECT_FALSE(finished.is_panicked() || finished.is_err()) << finished.to_string();
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    for (int o = 0; o < kObservers; ++o) {
      ASSERT_FALSE(seen[o].empty()) << "observer " << o << " seed " << seed;
      EXPECT_EQ(seen[o].back(), static_cast<uint64_t>(kVersions))
          << "observer " << o << " seed " << seed;
    }
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, WatchCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads (TSan): one sender thread, reader threads borrowing; each reader sees values
// non-decreasing, matching the version order.
TEST(WatchThreadTest, SendAndBorrowFromThreads) {
  constexpr int kSends = 5000;
  auto made = watch::channel<std::vector<int>>(std::vector<int>(4, 0));
  std::thread sender([tx = std::move(made.first)]() mutable {
    for (int i = 1; i <= kSends; ++i) tx.send(std::vector<int>(4, i));
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([rx = made.second]() mutable {
      int last = 0;
      while (last < kSends) {
        std::shared_ptr<const std::vector<int>> now = rx.borrow_and_update();
        EXPECT_EQ(now->front(), now->back());
        EXPECT_GE(now->front(), last);
        last = now->front();
        std::this_thread::yield();
      }
    });
  }
  sender.join();
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(made.second.version(), static_cast<uint64_t>(kSends));
}

}  // namespace
}  // namespace asupersync
