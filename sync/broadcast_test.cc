// broadcast: fan-out, lag reports, end of stream, cancellation over many seeds, and senders on
// several threads with try_recv (TSan).

#include "sync/broadcast.h"

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
using ::testing::ElementsAre;

using IntChannel = std::pair<broadcast::Sender<int>, broadcast::Receiver<int>>;

IntChannel make_channel(size_t capacity) {
  absl::StatusOr<IntChannel> made = broadcast::channel<int>(capacity);
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

TEST(BroadcastTest, ZeroCapacityIsInvalidArgument) {
  EXPECT_EQ(broadcast::channel<int>(0).status().code(), absl::StatusCode::kInvalidArgument);
}

// SPEC 8.2: every receiver sees every value, in order; subscribe starts at the next value; a
// copied receiver continues from the same cursor.
TEST(BroadcastTest, EveryReceiverSeesEveryValue) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(8);
    broadcast::Sender<int>& tx = channel.first;
    broadcast::Receiver<int>& first = channel.second;
    EXPECT_TRUE(tx.send(0).ok());
    broadcast::Receiver<int> late = tx.subscribe();  // starts after 0
    for (int i = 1; i <= 3; ++i) EXPECT_TRUE(tx.send(i).ok());
    EXPECT_EQ(*(co_await first.recv(cx)), 0);
    broadcast::Receiver<int> copy = first;  // same cursor: at 1
    std::vector<int> got_first, got_copy, got_late;
    for (int i = 0; i < 3; ++i) {
      got_first.push_back(*(co_await first.recv(cx)));
      got_copy.push_back(*(co_await copy.recv(cx)));
      got_late.push_back(*(co_await late.recv(cx)));
    }
    EXPECT_THAT(got_first, ElementsAre(1, 2, 3));
    EXPECT_THAT(got_copy, ElementsAre(1, 2, 3));
    EXPECT_THAT(got_late, ElementsAre(1, 2, 3));
    EXPECT_TRUE(absl::IsUnavailable(first.try_recv().status()));
    EXPECT_EQ(tx.receiver_count(), 3u);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.2: a lagging receiver is told how many values it missed, then continues from the
// oldest retained one.
TEST(BroadcastTest, LaggingReceiverIsToldHowManyItMissed) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(2);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(channel.first.send(i).ok());  // keeps 3 and 4
    EXPECT_EQ(channel.second.pending(), 5u);
    absl::StatusOr<int> lagged = co_await channel.second.recv(cx);
    EXPECT_TRUE(is_lagged(lagged.status())) << lagged.status();
    EXPECT_EQ(lagged_count(lagged.status()), 3u);
    EXPECT_EQ(*(co_await channel.second.recv(cx)), 3);
    EXPECT_EQ(*(co_await channel.second.recv(cx)), 4);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.2, 13: end of stream once every sender is gone and everything retained was read; a
// send with no receiver fails and gives the value back.
TEST(BroadcastTest, EndOfStreamAndNoReceivers) {
  auto outcome = sync_testing::run_lab(3, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(4);
    broadcast::Sender<int> second_sender = channel.first;
    EXPECT_TRUE(channel.first.send(1).ok());
    channel.first.reset();
    EXPECT_TRUE(second_sender.send(2).ok());
    auto waiter = cx.spawn("waiter", [&channel](Cx& cx) -> Task<void> {
      EXPECT_EQ(*(co_await channel.second.recv(cx)), 1);
      EXPECT_EQ(*(co_await channel.second.recv(cx)), 2);
      absl::StatusOr<int> end = co_await channel.second.recv(cx);  // parks, then ends
      EXPECT_TRUE(is_end_of_stream(end.status())) << end.status();
    });
    while (channel.second.waiting() < 1) (void)co_await cx.yield();
    second_sender.reset();
    (void)co_await waiter->join(cx);
    EXPECT_TRUE(is_end_of_stream(channel.second.try_recv().status()));

    IntChannel lonely = make_channel(1);
    lonely.second.reset();
    SendResult<int> sent = lonely.first.send(9);
    EXPECT_TRUE(is_channel_closed(sent.status)) << sent.status;
    EXPECT_EQ(sent.value, 9);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8, 4.2: a cancelled recv leaves the cursor where it was, also when a send raced in.
TEST(BroadcastTest, CancelledRecvConsumesNothing) {
  for (bool send_races_in : {false, true}) {
    auto outcome = sync_testing::run_lab(4, [send_races_in](Cx& cx) -> Task<void> {
      IntChannel channel = make_channel(4);
      auto inner = Region::open(cx, "inner", [&](Cx& cx) -> Task<void> {
        auto receiver = cx.spawn("receiver", [&channel](Cx& cx) -> Task<void> {
          absl::StatusOr<int> got = co_await channel.second.recv(cx);
          EXPECT_TRUE(absl::IsCancelled(got.status())) << got.status();
        });
        while (channel.second.waiting() < 1) (void)co_await cx.yield();
        if (send_races_in) {
          EXPECT_TRUE(channel.first.send(7).ok());
        }
        receiver->cancel("stop");
        (void)co_await receiver->join(cx);
        EXPECT_EQ(channel.second.waiting(), 0u);
        if (!send_races_in) {
          EXPECT_TRUE(channel.first.send(7).ok());
        }
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_EQ(*(co_await channel.second.recv(cx)), 7);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8.2, 11.3): a sender broadcasts 0..N-1 (yielding between
// sends) to three receiving tasks; one of them is cancelled after k yields (k = seed %
// kAwaitPoints), and the test body then reads the rest through that same receiver. With a big
// ring nothing lags: each receiver must see exactly 0..N-1 in order. With a small ring values
// may be overwritten: each receiver's values increase strictly and values + lag counts add up
// to N exactly (nothing lost without being reported, nothing duplicated).

class BroadcastCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(BroadcastCancelTest, CancelledReceiverLosesNothingUnreported) {
  constexpr int kReceivers = 3;
  constexpr int kValues = 10;
  constexpr uint64_t kAwaitPoints = 30;
  int cancelled_runs = 0;
  int lag_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    const size_t capacity = seed % 2 == 0 ? 16 : 3;
    std::vector<std::vector<int>> seen(kReceivers);
    std::vector<uint64_t> missed(kReceivers, 0);
    bool cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      IntChannel channel = make_channel(capacity);
      std::vector<broadcast::Receiver<int>> receivers;
      for (int r = 0; r < kReceivers; ++r) receivers.push_back(channel.first.subscribe());
      channel.second.reset();
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        // Reads until end of stream (or cancel); returns false when cancelled.
        auto drain = [&](Cx& cx, int r) -> Task<bool> {
          while (true) {
            absl::StatusOr<int> got = co_await receivers[r].recv(cx);
            if (got.ok()) {
              seen[r].push_back(*got);
            } else if (is_lagged(got.status())) {
              missed[r] += *lagged_count(got.status());
            } else if (absl::IsCancelled(got.status())) {
              co_return false;
            } else {
              EXPECT_TRUE(is_end_of_stream(got.status())) << got.status();
              co_return true;
            }
          }
        };
        std::vector<TaskHandle<void>> tasks;
        for (int r = 0; r < kReceivers; ++r) {
          auto task = cx.spawn("receiver", [&, r](Cx& cx) -> Task<void> {
            Task<bool> drained = drain(cx, r);
            if (!co_await std::move(drained)) cancelled = true;
          });
          tasks.push_back(std::move(task).value());
        }
        auto sender = cx.spawn("sender", [tx = channel.first](Cx& cx) mutable -> Task<void> {
          broadcast::Sender<int> mine = std::move(tx);
          for (int i = 0; i < kValues; ++i) {
            EXPECT_TRUE(mine.send(i).ok());
            (void)co_await cx.yield();
          }
        });
        channel.first.reset();
        const int victim = static_cast<int>(seed % kReceivers);
        const uint64_t k = seed % kAwaitPoints;
        auto canceller = cx.spawn("canceller", [&, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          tasks[victim].cancel("injected");
        });
        (void)co_await canceller->join(cx);
        (void)co_await tasks[victim].join(cx);
        Task<bool> rest = drain(cx, victim);  // the same receiver, from where it stopped
        EXPECT_TRUE(co_await std::move(rest));
        (void)co_await sender->join(cx);
        for (TaskHandle<void>& task : tasks) (void)co_await task.join(cx);
        EXPECT_EQ(receivers[victim].waiting(), 0u);
      });
      Outcome<void> finished = co_await std::move(work);
      EXPECT_FALSE(finished.is_panicked() || finished.is_err()) << finished.to_string();
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    for (int r = 0; r < kReceivers; ++r) {
      EXPECT_EQ(seen[r].size() + missed[r], static_cast<size_t>(kValues))
          << "receiver " << r << " seed " << seed;
      for (size_t i = 1; i < seen[r].size(); ++i) {
        EXPECT_LT(seen[r][i - 1], seen[r][i]) << "receiver " << r << " seed " << seed;
      }
      if (capacity >= static_cast<size_t>(kValues)) {
        EXPECT_EQ(missed[r], 0u);
      }
      lag_runs += missed[r] > 0 ? 1 : 0;
    }
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
  EXPECT_GT(lag_runs, 0);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, BroadcastCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads (TSan): two sender threads, two receiver threads polling try_recv; each receiver's
// values + lags add up to everything sent.
TEST(BroadcastThreadTest, SendAndTryRecvFromThreads) {
  constexpr int kPerSender = 3000;
  IntChannel channel = make_channel(8);
  broadcast::Receiver<int> second = channel.first.subscribe();
  std::vector<std::thread> threads;
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([tx = channel.first, s]() mutable {
      for (int i = 0; i < kPerSender; ++i) EXPECT_TRUE(tx.send(s * kPerSender + i).ok());
    });
  }
  channel.first.reset();
  std::vector<uint64_t> totals(2, 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      broadcast::Receiver<int>& rx = r == 0 ? channel.second : second;
      while (true) {
        absl::StatusOr<int> got = rx.try_recv();
        if (got.ok()) {
          ++totals[r];
        } else if (is_lagged(got.status())) {
          totals[r] += *lagged_count(got.status());
        } else if (is_end_of_stream(got.status())) {
          break;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::thread& thread : readers) thread.join();
  EXPECT_EQ(totals[0], 2u * kPerSender);
  EXPECT_EQ(totals[1], 2u * kPerSender);
}

}  // namespace
}  // namespace asupersync
