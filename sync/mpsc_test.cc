// mpsc: unit tests on the lab runtime, cancellation-injection tests over many seeds, and a
// thread-level stress test of the non-blocking calls (run under TSan).

#include "sync/mpsc.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"
#include "sync/mutex.h"
#include "sync/status.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using IntChannel = std::pair<mpsc::Sender<int>, mpsc::Receiver<int>>;

IntChannel make_channel(size_t capacity) {
  absl::StatusOr<IntChannel> made = mpsc::channel<int>(capacity);
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

// SPEC 13: bad input is a clear error, never UB.
TEST(MpscTest, ZeroCapacityIsInvalidArgument) {
  absl::StatusOr<IntChannel> made = mpsc::channel<int>(0);
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(made.status().message()), HasSubstr("capacity"));
}

// SPEC 13: an invalid (moved-from) handle fails with FailedPrecondition.
TEST(MpscTest, InvalidHandlesFailCleanly) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(1);
    mpsc::Sender<int> moved = std::move(channel.first);
    absl::StatusOr<Permit<int>> permit = co_await channel.first.reserve(cx);
    EXPECT_EQ(permit.status().code(), absl::StatusCode::kFailedPrecondition);
    SendResult<int> sent = co_await channel.first.send(cx, 5);
    EXPECT_EQ(sent.status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(sent.value, 5);
    mpsc::Receiver<int> rx = std::move(channel.second);
    absl::StatusOr<int> got = co_await channel.second.recv(cx);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.1: reserve → send commits synchronously; one-call send; recv is FIFO.
TEST(MpscTest, ReserveSendAndRecvInOrder) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(4);
    mpsc::Sender<int>& tx = channel.first;
    mpsc::Receiver<int>& rx = channel.second;
    absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
    EXPECT_TRUE(permit.ok()) << permit.status();
    EXPECT_TRUE(permit->tracked());
    EXPECT_EQ(tx.stats().reserved, 1u);
    std::move(*permit).send(1);
    // Committed synchronously: visible before any other task ran.
    EXPECT_EQ(tx.stats().queued, 1u);
    EXPECT_EQ(tx.stats().reserved, 0u);
    SendResult<int> sent = co_await tx.send(cx, 2);
    EXPECT_TRUE(sent.ok()) << sent.status;
    EXPECT_TRUE(tx.try_send(3).ok());
    std::vector<int> got;
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<int> value = co_await rx.recv(cx);
      EXPECT_TRUE(value.ok()) << value.status();
      got.push_back(*value);
    }
    EXPECT_THAT(got, ElementsAre(1, 2, 3));
    EXPECT_TRUE(absl::IsUnavailable(rx.try_recv().status()));
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.1, 8 (FIFO waiters): a full channel parks senders in order; each receive hands the
// freed slot to the oldest waiting sender.
TEST(MpscTest, FullChannelParksSendersFifo) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto order = std::make_shared<std::vector<int>>();
    auto outcome = sync_testing::run_lab(seed, [order](Cx& cx) -> Task<void> {
      IntChannel channel = make_channel(1);
      mpsc::Sender<int>& tx = channel.first;
      mpsc::Receiver<int>& rx = channel.second;
      EXPECT_TRUE(tx.try_send(0).ok());
      EXPECT_TRUE(absl::IsResourceExhausted(tx.try_send(99).status));
      std::vector<TaskHandle<void>> senders;
      for (int i = 1; i <= 3; ++i) {
        auto spawned = cx.spawn("sender", [&tx, i](Cx& cx) -> Task<void> {
          SendResult<int> sent = co_await tx.send(cx, i);
          EXPECT_TRUE(sent.ok()) << sent.status;
        });
        senders.push_back(std::move(spawned).value());
        // Let it park before the next one arrives, so the queue order is 1, 2, 3.
        while (tx.stats().waiting_senders < static_cast<size_t>(i)) (void)co_await cx.yield();
      }
      for (int i = 0; i < 4; ++i) {
        absl::StatusOr<int> value = co_await rx.recv(cx);
        EXPECT_TRUE(value.ok()) << value.status();
        order->push_back(*value);
      }
      for (TaskHandle<void>& sender : senders) (void)co_await sender.join(cx);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(*order, ElementsAre(0, 1, 2, 3)) << "seed " << seed;
  }
}

// SPEC 8.1, 5.1: an aborted permit frees its slot and delivers nothing.
TEST(MpscTest, AbortedPermitFreesSlotAndDeliversNothing) {
  auto outcome = sync_testing::run_lab(3, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(1);
    mpsc::Sender<int>& tx = channel.first;
    absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
    EXPECT_TRUE(permit.ok());
    EXPECT_TRUE(absl::IsResourceExhausted(tx.try_send(1).status));
    const uint64_t aborted_before = cx.region().ledger().aborted();
    std::move(*permit).abort();
    EXPECT_EQ(cx.region().ledger().aborted(), aborted_before + 1);
    EXPECT_EQ(tx.stats().reserved, 0u);
    EXPECT_EQ(tx.stats().queued, 0u);
    EXPECT_TRUE(tx.try_send(2).ok());
    absl::StatusOr<int> value = co_await channel.second.recv(cx);
    EXPECT_EQ(*value, 2);
    EXPECT_TRUE(absl::IsUnavailable(channel.second.try_recv().status()));
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.1, 5.3: a leaked permit frees its slot, delivers nothing, and is reported with its
// acquire site (kPanic in the lab: the region's outcome is Panicked).
TEST(MpscTest, LeakedPermitFreesSlotAndIsReported) {
  auto outcome = sync_testing::run_lab_with_leak(4, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(1);
    mpsc::Sender<int>* tx = &channel.first;
    auto leaky = Region::open(cx, "leaky", [tx](Cx& cx) -> Task<void> {
      absl::StatusOr<Permit<int>> permit = co_await tx->reserve(cx);
      EXPECT_TRUE(permit.ok());
      // Dropped without send or abort: a leak.
    });
    Outcome<void> leaked = co_await std::move(leaky);
    EXPECT_TRUE(leaked.is_panicked()) << leaked.to_string();
    EXPECT_THAT(leaked.to_string(), HasSubstr("mpsc slot"));
    EXPECT_THAT(leaked.to_string(), HasSubstr("mpsc_test.cc"));
    EXPECT_EQ(channel.first.stats().reserved, 0u);
    EXPECT_TRUE(absl::IsUnavailable(channel.second.try_recv().status()));
    EXPECT_TRUE(channel.first.try_send(7).ok());
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 3.2: reserving needs an Open region; the one-call send does not.
TEST(MpscTest, ReserveInClosingRegionFails) {
  auto outcome = sync_testing::run_lab(5, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(2);
    mpsc::Sender<int>* tx = &channel.first;
    auto region = Region::open(cx, "closing", [tx](Cx& cx) -> Task<void> {
      (void)cx.spawn("late", [tx](Cx& cx) -> Task<void> {
        (void)co_await cx.yield();  // the body has returned: the region is Closing
        absl::StatusOr<Permit<int>> permit = co_await tx->reserve(cx);
        EXPECT_EQ(permit.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_THAT(std::string(permit.status().message()), HasSubstr("closing"));
        SendResult<int> sent = co_await tx->send(cx, 1);
        EXPECT_TRUE(sent.ok()) << sent.status;
      });
      co_return;
    });
    Outcome<void> closed = co_await std::move(region);
    EXPECT_TRUE(closed.ok()) << closed.to_string();
    EXPECT_EQ(*channel.second.try_recv(), 1);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.1: end of stream comes after the last committed value, once every sender is gone and
// no permit is outstanding; it is stable.
TEST(MpscTest, EndOfStreamAfterLastCommittedValue) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto got = std::make_shared<std::vector<int>>();
    auto outcome = sync_testing::run_lab(seed, [got](Cx& cx) -> Task<void> {
      IntChannel channel = make_channel(2);
      mpsc::Receiver<int>& rx = channel.second;
      // A permit taken by a sender that is then dropped: the stream is not over until the
      // permit resolves.
      absl::StatusOr<Permit<int>> held = co_await channel.first.reserve(cx);
      EXPECT_TRUE(held.ok());
      auto producer = cx.spawn("producer", [tx = channel.first](Cx& cx) mutable -> Task<void> {
        mpsc::Sender<int> mine = std::move(tx);
        for (int i = 1; i <= 3; ++i) {
          SendResult<int> sent = co_await mine.send(cx, i);
          EXPECT_TRUE(sent.ok());
        }
      });
      channel.first.reset();
      auto committer =
          cx.spawn("committer", [permit = std::move(*held)](Cx& cx) mutable -> Task<void> {
            Permit<int> mine = std::move(permit);
            (void)co_await cx.sleep(Duration::Milliseconds(5));
            std::move(mine).send(100);
          });
      while (true) {
        absl::StatusOr<int> value = co_await rx.recv(cx);
        if (!value.ok()) {
          EXPECT_TRUE(is_end_of_stream(value.status())) << value.status();
          break;
        }
        got->push_back(*value);
      }
      // Stable.
      absl::StatusOr<int> again = co_await rx.recv(cx);
      EXPECT_TRUE(is_end_of_stream(again.status()));
      EXPECT_TRUE(is_end_of_stream(rx.try_recv().status()));
      (void)co_await producer->join(cx);
      (void)co_await committer->join(cx);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    ASSERT_EQ(got->size(), 4u) << "seed " << seed;
    EXPECT_EQ(got->back(), 100) << "the permit's value comes last (committed after a sleep)";
  }
}

// SPEC 8.1, 13: receiver dropped → waiting and later senders get ChannelClosed, send gives the
// value back, a held permit's send is discarded safely.
TEST(MpscTest, ReceiverDroppedClosesForSenders) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      IntChannel channel = make_channel(1);
      mpsc::Sender<int>& tx = channel.first;
      absl::StatusOr<Permit<int>> held = co_await tx.reserve(cx);
      EXPECT_TRUE(held.ok());
      auto waiter = cx.spawn("waiter", [&tx](Cx& cx) -> Task<void> {
        SendResult<int> sent = co_await tx.send(cx, 42);
        EXPECT_TRUE(is_channel_closed(sent.status)) << sent.status;
        EXPECT_EQ(sent.value, 42);
      });
      auto reserver = cx.spawn("reserver", [&tx](Cx& cx) -> Task<void> {
        absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
        EXPECT_TRUE(is_channel_closed(permit.status())) << permit.status();
      });
      while (tx.stats().waiting_senders < 2) (void)co_await cx.yield();
      channel.second.reset();
      EXPECT_TRUE(tx.is_closed());
      std::move(*held).send(1);  // discarded: no receiver
      EXPECT_TRUE(is_channel_closed(tx.try_send(2).status));
      SendResult<int> late = co_await tx.send(cx, 3);
      EXPECT_TRUE(is_channel_closed(late.status));
      EXPECT_EQ(late.value, 3);
      (void)co_await waiter->join(cx);
      (void)co_await reserver->join(cx);
      EXPECT_EQ(tx.stats().waiting_senders, 0u);
      EXPECT_EQ(tx.stats().reserved, 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 8.1: close() refuses new reservations but delivers what was committed or reserved, then
// end of stream.
TEST(MpscTest, ReceiverCloseDrainsThenEndOfStream) {
  auto outcome = sync_testing::run_lab(6, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(3);
    mpsc::Sender<int>& tx = channel.first;
    mpsc::Receiver<int>& rx = channel.second;
    EXPECT_TRUE(tx.try_send(1).ok());
    absl::StatusOr<Permit<int>> held = co_await tx.reserve(cx);
    rx.close();
    EXPECT_TRUE(is_channel_closed(tx.try_send(9).status));
    absl::StatusOr<Permit<int>> refused = co_await tx.reserve(cx);
    EXPECT_TRUE(is_channel_closed(refused.status()));
    EXPECT_EQ(*(co_await rx.recv(cx)), 1);
    EXPECT_TRUE(absl::IsUnavailable(rx.try_recv().status()));  // the permit is still held
    std::move(*held).send(2);
    EXPECT_EQ(*(co_await rx.recv(cx)), 2);
    absl::StatusOr<int> end = co_await rx.recv(cx);
    EXPECT_TRUE(is_end_of_stream(end.status())) << end.status();
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.1: closing the receiver ends a recv that is waiting on an empty channel.
TEST(MpscTest, CloseEndsAWaitingRecv) {
  auto outcome = sync_testing::run_lab(10, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(2);
    mpsc::Receiver<int>& rx = channel.second;
    auto receiver = cx.spawn("receiver", [&rx](Cx& cx) -> Task<void> {
      absl::StatusOr<int> got = co_await rx.recv(cx);
      EXPECT_TRUE(is_end_of_stream(got.status())) << got.status();
    });
    while (!rx.stats().receiver_waiting) (void)co_await cx.yield();
    rx.close();  // the sender is alive, but nothing can be sent any more
    (void)co_await receiver->join(cx);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.1, 4.2: a send cancelled while waiting gives the value back and leaves no waiter.
TEST(MpscTest, CancelledSendGivesValueBack) {
  auto outcome = sync_testing::run_lab(7, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(1);
    mpsc::Sender<int>& tx = channel.first;
    EXPECT_TRUE(tx.try_send(0).ok());
    auto sender = cx.spawn("sender", [&tx](Cx& cx) -> Task<int> {
      SendResult<int> sent = co_await tx.send(cx, 42);
      EXPECT_TRUE(absl::IsCancelled(sent.status)) << sent.status;
      co_return sent.value.value_or(-1);
    });
    while (tx.stats().waiting_senders == 0) (void)co_await cx.yield();
    sender->cancel("stop");
    Outcome<int> joined = co_await sender->join(cx);
    EXPECT_TRUE(joined.is_cancelled());  // SPEC 4.6
    EXPECT_EQ(tx.stats().waiting_senders, 0u);
    EXPECT_EQ(tx.stats().queued, 1u);
    EXPECT_EQ(*channel.second.try_recv(), 0);
    EXPECT_TRUE(absl::IsUnavailable(channel.second.try_recv().status()));
  });
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();  // the child's Cancelled counts
}

// SPEC 8.1, 4.2: a recv cancelled while waiting loses no message.
TEST(MpscTest, CancelledRecvLosesNothing) {
  auto outcome = sync_testing::run_lab(8, [](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(1);
    mpsc::Receiver<int>& rx = channel.second;
    auto receiver = cx.spawn("receiver", [&rx](Cx& cx) -> Task<void> {
      absl::StatusOr<int> value = co_await rx.recv(cx);
      EXPECT_TRUE(absl::IsCancelled(value.status())) << value.status();
    });
    while (!rx.stats().receiver_waiting) (void)co_await cx.yield();
    receiver->cancel("stop");
    (void)co_await receiver->join(cx);
    EXPECT_FALSE(rx.stats().receiver_waiting);
    EXPECT_TRUE(channel.first.try_send(5).ok());
    EXPECT_EQ(*(co_await rx.recv(cx)), 5);
  });
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 8: a slot granted to a waiter whose cancel raced in passes to the next waiter; a value
// that woke a recv whose cancel raced in stays queued.
TEST(MpscTest, GrantRacingWithCancelIsPassedOn) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      auto inner = Region::open(cx, "inner", [](Cx& cx) -> Task<void> {
        IntChannel channel = make_channel(1);
        mpsc::Sender<int>& tx = channel.first;
        mpsc::Receiver<int>& rx = channel.second;
        EXPECT_TRUE(tx.try_send(0).ok());
        auto first = cx.spawn("first", [&tx](Cx& cx) -> Task<void> {
          absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
          EXPECT_TRUE(absl::IsCancelled(permit.status())) << permit.status();
        });
        while (tx.stats().waiting_senders < 1) (void)co_await cx.yield();
        auto second = cx.spawn("second", [&tx](Cx& cx) -> Task<void> {
          SendResult<int> sent = co_await tx.send(cx, 2);
          EXPECT_TRUE(sent.ok()) << sent.status;
        });
        while (tx.stats().waiting_senders < 2) (void)co_await cx.yield();
        // Free the slot (granted to `first`) and cancel `first` before it can run.
        EXPECT_EQ(*rx.try_recv(), 0);
        first->cancel("raced");
        (void)co_await first->join(cx);
        (void)co_await second->join(cx);
        EXPECT_EQ(*rx.try_recv(), 2);

        // The receive side: a value wakes the parked recv, whose cancel then wins.
        auto receiver = cx.spawn("receiver", [&rx](Cx& cx) -> Task<void> {
          absl::StatusOr<int> value = co_await rx.recv(cx);
          EXPECT_TRUE(absl::IsCancelled(value.status())) << value.status();
        });
        while (!rx.stats().receiver_waiting) (void)co_await cx.yield();
        EXPECT_TRUE(tx.try_send(3).ok());
        receiver->cancel("raced");
        (void)co_await receiver->join(cx);
        EXPECT_EQ(*rx.try_recv(), 3);
        EXPECT_EQ(tx.stats().reserved, 0u);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 4.5: a task destroyed by escalation while parked (queued, or granted but not yet
// resumed) deregisters and passes its slot on.
TEST(MpscTest, WaiterDestroyedWhileParkedPassesSlotOn) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [seed](Cx& cx) -> Task<void> {
      IntChannel channel = make_channel(1);
      mpsc::Sender<int>& tx = channel.first;
      mpsc::Receiver<int>& rx = channel.second;
      EXPECT_TRUE(tx.try_send(0).ok());
      auto inner = Region::open(cx, "inner", [&tx, &rx, seed](Cx& cx) -> Task<void> {
        // Shielded: the cancel is not delivered, so it stays parked until escalated.
        auto stubborn = cx.spawn("stubborn", [&tx](Cx& cx) -> Task<void> {
          auto shield = cx.shield();
          absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
          ADD_FAILURE() << "resumed after escalation: " << permit.status();
        });
        while (tx.stats().waiting_senders < 1) (void)co_await cx.yield();
        auto patient = cx.spawn("patient", [&tx](Cx& cx) -> Task<void> {
          SendResult<int> sent = co_await tx.send(cx, 2);
          EXPECT_TRUE(sent.ok()) << sent.status;
        });
        while (tx.stats().waiting_senders < 2) (void)co_await cx.yield();
        // Escalated at its next dispatch (no polls left) or when the cleanup deadline passes.
        stubborn->cancel("escalate", Budget::Infinite().with_poll_quota(0).with_deadline(
                                         *cx.now() + Duration::Milliseconds(1)));
        if (seed % 2 == 0) {
          EXPECT_EQ(*rx.try_recv(), 0);  // grants the slot to `stubborn`, then it is destroyed
        }
        Outcome<void> joined = co_await stubborn->join(cx);
        EXPECT_TRUE(joined.is_cancelled());
        EXPECT_TRUE(stubborn->budget_exhausted());
        if (seed % 2 == 1) {
          EXPECT_EQ(*rx.try_recv(), 0);
        }
        (void)co_await patient->join(cx);
        EXPECT_EQ(*rx.try_recv(), 2);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
      EXPECT_EQ(tx.stats().waiting_senders, 0u);
      EXPECT_EQ(tx.stats().reserved, 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// The usage example of sync/README.md, compiled and run (Job = int).
TEST(MpscTest, ReadmeExample) {
  auto recorded = std::make_shared<std::vector<int>>();
  auto outcome = sync_testing::run_lab(9, [recorded](Cx& cx) -> Task<absl::Status> {
    auto make_jobs = [] { return std::vector<int>{1, 2, 3, 4, 5}; };
    auto record = [recorded](int job) { recorded->push_back(job); };
    using Job = int;
    auto made = mpsc::channel<Job>(2);
    if (!made.ok()) co_return made.status();
    mpsc::Sender<Job> tx = std::move(made->first);
    mpsc::Receiver<Job> rx = std::move(made->second);
    Mutex stats_mutex;
    auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
      auto producer = cx.spawn("producer", [tx, make_jobs](Cx& cx) mutable -> Task<void> {
        mpsc::Sender<Job> mine = std::move(tx);
        for (Job& job : make_jobs()) {
          absl::StatusOr<Permit<Job>> slot = co_await mine.reserve(cx);
          if (!slot.ok()) co_return;
          std::move(*slot).send(std::move(job));
        }
      });
      tx.reset();
      auto consumer = cx.spawn("consumer", [&](Cx& cx) -> Task<void> {
        while (true) {
          absl::StatusOr<Job> job = co_await rx.recv(cx);
          if (!job.ok()) co_return;
          absl::StatusOr<MutexGuard> guard = co_await stats_mutex.lock(cx);
          if (!guard.ok()) co_return;
          record(*job);
        }
      });
      (void)co_await producer->join(cx);
      (void)co_await consumer->join(cx);
    });
    Outcome<void> done = co_await std::move(work);
    co_return done.status();
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_THAT(*recorded, ElementsAre(1, 2, 3, 4, 5));
}

// ------------------------------------------------------------------------------------------
// Cancellation injection over many seeds (SPEC 4.2, 8.1, 11.3): a canceller cancels one task
// after k yields, k = seed % kAwaitPoints, so each await point of the producers and of the
// consumer is hit in turn, under interleavings that vary with the seed. Checks: no message
// lost or duplicated (multiset and per-producer order), no waiter or slot left behind, no
// leaked permit (the region's ledger), the oracles (no deadlock: grants were passed on).

class MpscCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

constexpr int kProducers = 2;
constexpr int kPerProducer = 6;
constexpr uint64_t kAwaitPoints = 25;

struct Traffic {
  std::vector<int> sent;      // values whose send committed
  std::vector<int> received;  // values received, in order
  bool consumer_cancelled = false;
  int given_back = 0;       // one-call sends cancelled with their value returned
  int permits_aborted = 0;  // permits aborted after a cancel between reserve and send
  int reserves_cancelled = 0;
};

// Producer p sends p*100 + i, i = 0..kPerProducer-1, alternating the two-phase and one-call
// forms; between reserve and send it yields (a cancellation point): if cancelled there it aborts
// the permit. It stops at its first cancellation.
Task<void> produce(Cx& cx, mpsc::Sender<int> tx, int p, std::shared_ptr<Traffic> traffic) {
  for (int i = 0; i < kPerProducer; ++i) {
    const int value = p * 100 + i;
    if (i % 2 == 0) {
      absl::StatusOr<Permit<int>> permit = co_await tx.reserve(cx);
      if (!permit.ok()) {
        EXPECT_TRUE(absl::IsCancelled(permit.status())) << permit.status();
        ++traffic->reserves_cancelled;
        co_return;
      }
      if (absl::Status between = co_await cx.yield(); !between.ok()) {
        std::move(*permit).abort();
        ++traffic->permits_aborted;
        co_return;
      }
      std::move(*permit).send(value);
      traffic->sent.push_back(value);
    } else {
      SendResult<int> sent = co_await tx.send(cx, value);
      if (!sent.ok()) {
        EXPECT_TRUE(absl::IsCancelled(sent.status)) << sent.status;
        EXPECT_EQ(sent.value, value);  // given back
        ++traffic->given_back;
        co_return;
      }
      traffic->sent.push_back(value);
    }
  }
}

void check_traffic(const Traffic& traffic, uint64_t seed) {
  std::vector<int> sent = traffic.sent;
  std::vector<int> received = traffic.received;
  std::sort(sent.begin(), sent.end());
  std::sort(received.begin(), received.end());
  EXPECT_EQ(received, sent) << "lost or duplicated messages, seed " << seed;
  // Per-producer FIFO.
  std::map<int, int> last;
  for (int value : traffic.received) {
    auto it = last.find(value / 100);
    if (it != last.end()) {
      EXPECT_LT(it->second, value) << "out of order, seed " << seed;
    }
    last[value / 100] = value;
  }
}

// The program: producers and a consumer in region "work"; `victim` (-1: the consumer, else a
// producer index) is cancelled after k yields; main drains what is left.
auto cancel_program(uint64_t seed, int victim, std::shared_ptr<Traffic> traffic,
                    std::shared_ptr<sync_testing::LedgerTotals>* totals) {
  return [seed, victim, traffic, totals](Cx& cx) -> Task<void> {
    IntChannel channel = make_channel(2);
    mpsc::Receiver<int>& rx = channel.second;
    auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
      *totals = sync_testing::capture_ledger_at_close(cx);
      std::vector<TaskHandle<void>> producers;
      for (int p = 0; p < kProducers; ++p) {
        auto spawned = cx.spawn("producer", [tx = channel.first, p, traffic](Cx& cx) mutable {
          return produce(cx, std::move(tx), p, traffic);
        });
        producers.push_back(std::move(spawned).value());
      }
      channel.first.reset();  // only the producers hold senders now
      auto consumer = cx.spawn("consumer", [&rx, traffic](Cx& cx) -> Task<void> {
        while (true) {
          absl::StatusOr<int> value = co_await rx.recv(cx);
          if (!value.ok()) {
            if (absl::IsCancelled(value.status())) {
              traffic->consumer_cancelled = true;
            } else {
              EXPECT_TRUE(is_end_of_stream(value.status())) << value.status();
            }
            co_return;
          }
          traffic->received.push_back(*value);
        }
      });
      TaskHandle<void>* target = victim < 0 ? &*consumer : &producers[victim];
      const uint64_t k = seed % kAwaitPoints;
      auto canceller = cx.spawn("canceller", [target, k](Cx& cx) -> Task<void> {
        for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
        target->cancel("injected");
      });
      (void)co_await canceller->join(cx);
      (void)co_await consumer->join(cx);
      // Whatever the consumer left behind is still queued: drain it to the end of the stream.
      while (true) {
        absl::StatusOr<int> value = co_await rx.recv(cx);
        if (!value.ok()) {
          EXPECT_TRUE(is_end_of_stream(value.status())) << value.status() << " seed " << seed;
          break;
        }
        traffic->received.push_back(*value);
      }
      for (TaskHandle<void>& producer : producers) (void)co_await producer.join(cx);
      mpsc::ChannelStats stats = rx.stats();
      EXPECT_EQ(stats.waiting_senders, 0u) << "seed " << seed;
      EXPECT_EQ(stats.reserved, 0u) << "seed " << seed;
      EXPECT_EQ(stats.queued, 0u) << "seed " << seed;
      EXPECT_FALSE(stats.receiver_waiting) << "seed " << seed;
    });
    Outcome<void> done = co_await std::move(work);
    EXPECT_FALSE(done.is_panicked()) << done.to_string() << " seed " << seed;  // no leak
    EXPECT_FALSE(done.is_err()) << done.to_string() << " seed " << seed;
  };
}

// SPEC 8.1, 4.2: recv cancelled at any point loses no message.
TEST_P(MpscCancelTest, CancelledConsumerLosesNothing) {
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    auto traffic = std::make_shared<Traffic>();
    std::shared_ptr<sync_testing::LedgerTotals> totals;
    auto outcome =
        sync_testing::run_program(GetParam(), seed, cancel_program(seed, -1, traffic, &totals));
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    EXPECT_EQ(traffic->sent.size(), static_cast<size_t>(kProducers * kPerProducer));
    check_traffic(*traffic, seed);
    ASSERT_TRUE(totals && totals->captured) << "seed " << seed;
    EXPECT_EQ(totals->pending, 0u);
    EXPECT_EQ(totals->leaked, 0u) << "seed " << seed;
    EXPECT_EQ(totals->committed, static_cast<uint64_t>(kProducers * ((kPerProducer + 1) / 2)));
    cancelled_runs += traffic->consumer_cancelled ? 1 : 0;
  }
  // The injection hit the consumer mid-stream in most runs (not only after the end).
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

// SPEC 8.1, 4.2, 5.1: a producer cancelled at any point (waiting for a slot, holding a permit,
// inside a one-call send) sends nothing it did not commit, gets its value back, aborts its
// permit, and its slot goes to the other producer.
TEST_P(MpscCancelTest, CancelledProducerCommitsExactlyWhatItReported) {
  int given_back = 0;
  int permits_aborted = 0;
  int reserves_cancelled = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    auto traffic = std::make_shared<Traffic>();
    std::shared_ptr<sync_testing::LedgerTotals> totals;
    const int victim = static_cast<int>(seed % kProducers);
    auto outcome =
        sync_testing::run_program(GetParam(), seed, cancel_program(seed, victim, traffic, &totals));
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    EXPECT_FALSE(traffic->consumer_cancelled);
    check_traffic(*traffic, seed);
    ASSERT_TRUE(totals && totals->captured) << "seed " << seed;
    EXPECT_EQ(totals->leaked, 0u) << "seed " << seed;
    // Every permit recorded was either committed or aborted.
    size_t two_phase_sent = 0;
    for (int value : traffic->sent) two_phase_sent += (value % 100) % 2 == 0 ? 1 : 0;
    EXPECT_EQ(totals->committed, two_phase_sent) << "seed " << seed;
    EXPECT_EQ(totals->aborted, static_cast<uint64_t>(traffic->permits_aborted)) << seed;
    given_back += traffic->given_back;
    permits_aborted += traffic->permits_aborted;
    reserves_cancelled += traffic->reserves_cancelled;
  }
  // Every path was exercised.
  EXPECT_GT(given_back, 0);
  EXPECT_GT(permits_aborted, 0);
  EXPECT_GT(reserves_cancelled, 0);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, MpscCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// ------------------------------------------------------------------------------------------
// Threads without a runtime (TSan): try_send from several threads, try_recv from one; every
// value arrives exactly once, in order per thread.
TEST(MpscThreadTest, TrySendTryRecvFromThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  IntChannel channel = make_channel(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([tx = channel.first, t]() mutable {
      for (int i = 0; i < kPerThread; ++i) {
        int value = t * kPerThread + i;
        while (true) {
          SendResult<int> sent = tx.try_send(value);
          if (sent.ok()) break;
          ASSERT_TRUE(absl::IsResourceExhausted(sent.status)) << sent.status;
          value = *sent.value;
          std::this_thread::yield();
        }
      }
    });
  }
  channel.first.reset();
  std::vector<int> last(kThreads, -1);
  int64_t received = 0;
  while (true) {
    absl::StatusOr<int> value = channel.second.try_recv();
    if (!value.ok()) {
      if (is_end_of_stream(value.status())) break;
      ASSERT_TRUE(absl::IsUnavailable(value.status())) << value.status();
      std::this_thread::yield();
      continue;
    }
    const int t = *value / kPerThread;
    EXPECT_LT(last[t], *value);
    last[t] = *value;
    ++received;
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(received, kThreads * kPerThread);
}

}  // namespace
}  // namespace asupersync
