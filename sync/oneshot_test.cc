// oneshot: the first obligation client. Unit tests show each consumption path of its permit
// (send/commit, abort, leak) as the receiver and the ledger see it; cancellation injection over
// many seeds in a request/reply service.

#include "sync/oneshot.h"

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"
#include "sync/mpsc.h"
#include "sync/status.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;
using ::testing::HasSubstr;

// SPEC 5.1 (send/commit path), 8.2: reserve then send delivers exactly once; the ledger entry
// is committed.
TEST(OneshotTest, CommitPathDeliversTheValue) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    auto [tx, rx] = oneshot::channel<std::string>();
    ObligationLedger& ledger = cx.region().ledger();
    const uint64_t committed = ledger.committed();
    absl::StatusOr<Permit<std::string>> permit = tx.reserve(cx);
    EXPECT_TRUE(permit.ok()) << permit.status();
    EXPECT_EQ(ledger.pending(), 1u);
    std::move(*permit).send("hello");
    EXPECT_EQ(ledger.pending(), 0u);
    EXPECT_EQ(ledger.committed(), committed + 1);
    absl::StatusOr<std::string> got = co_await rx.recv(cx);
    EXPECT_EQ(*got, "hello");
    // Exactly once: nothing more can be sent or received.
    EXPECT_EQ(tx.reserve(cx).status().code(), absl::StatusCode::kFailedPrecondition);
    SendResult<std::string> again = tx.send("again");
    EXPECT_EQ(again.status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(again.value, "again");
    absl::StatusOr<std::string> second = co_await rx.recv(cx);
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 5.1 (abort path): an aborted permit delivers nothing and gives the slot back: the sender
// may reserve again; once the sender is gone too, the receiver gets ChannelClosed.
TEST(OneshotTest, AbortPathDeliversNothing) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    auto [tx, rx] = oneshot::channel<int>();
    ObligationLedger& ledger = cx.region().ledger();
    const uint64_t aborted = ledger.aborted();
    absl::StatusOr<Permit<int>> permit = tx.reserve(cx);
    EXPECT_EQ(tx.reserve(cx).status().code(), absl::StatusCode::kFailedPrecondition);
    std::move(*permit).abort();
    EXPECT_EQ(ledger.aborted(), aborted + 1);
    EXPECT_TRUE(absl::IsUnavailable(rx.try_recv().status()));
    // The slot came back: reserve and abort again, then drop the sender.
    absl::StatusOr<Permit<int>> second = tx.reserve(cx);
    EXPECT_TRUE(second.ok()) << second.status();
    std::move(*second).abort();
    tx.reset();
    absl::StatusOr<int> got = co_await rx.recv(cx);
    EXPECT_TRUE(is_channel_closed(got.status())) << got.status();
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 5.3 (leak path): a permit destroyed unconsumed delivers nothing, is resolved as leaked,
// and the region reports it with the acquire site (kPanic in the lab). A receiver waiting
// meanwhile learns that the sender is gone.
TEST(OneshotTest, LeakPathIsAbortedAndReported) {
  auto outcome = sync_testing::run_lab_with_leak(3, [](Cx& cx) -> Task<void> {
    auto made = oneshot::channel<int>();
    oneshot::Receiver<int> rx = std::move(made.second);
    auto waiting = cx.spawn("waiting", [&rx](Cx& cx) -> Task<void> {
      absl::StatusOr<int> got = co_await rx.recv(cx);
      EXPECT_TRUE(is_channel_closed(got.status())) << got.status();
    });
    auto leaky =
        Region::open(cx, "leaky", [tx = std::move(made.first)](Cx& cx) mutable -> Task<void> {
          oneshot::Sender<int> mine = std::move(tx);
          absl::StatusOr<Permit<int>> permit = mine.reserve(cx);
          EXPECT_TRUE(permit.ok());
          (void)co_await cx.yield();
          // Both the sender and the permit go out of scope here: the permit leaks.
        });
    Outcome<void> leaked = co_await std::move(leaky);
    EXPECT_TRUE(leaked.is_panicked()) << leaked.to_string();
    EXPECT_THAT(leaked.to_string(), HasSubstr("oneshot slot"));
    EXPECT_THAT(leaked.to_string(), HasSubstr("oneshot_test.cc"));
    (void)co_await waiting->join(cx);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.2: a sender dropped without sending wakes a waiting receiver with ChannelClosed.
TEST(OneshotTest, SenderDroppedWakesReceiverWithClosed) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      auto made = oneshot::channel<int>();
      oneshot::Receiver<int>& rx = made.second;
      auto dropper =
          cx.spawn("dropper", [tx = std::move(made.first)](Cx& cx) mutable -> Task<void> {
            oneshot::Sender<int> mine = std::move(tx);
            (void)co_await cx.sleep(Duration::Milliseconds(1));
          });
      absl::StatusOr<int> got = co_await rx.recv(cx);
      EXPECT_TRUE(is_channel_closed(got.status())) << got.status();
      (void)co_await dropper->join(cx);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 8.2, 13: receiver dropped → reserve and send fail with ChannelClosed; a live permit's
// send is discarded safely.
TEST(OneshotTest, ReceiverDroppedClosesForSender) {
  auto outcome = sync_testing::run_lab(4, [](Cx& cx) -> Task<void> {
    auto [tx, rx] = oneshot::channel<std::string>();
    absl::StatusOr<Permit<std::string>> permit = tx.reserve(cx);
    rx.reset();
    EXPECT_TRUE(tx.is_closed());
    std::move(*permit).send("into the void");
    EXPECT_TRUE(is_channel_closed(tx.reserve(cx).status()));
    SendResult<std::string> sent = tx.send("late");
    EXPECT_TRUE(is_channel_closed(sent.status));
    EXPECT_EQ(sent.value, "late");
    co_return;
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.2, 4.2: a cancelled recv consumes nothing; a value that raced with the cancel stays.
TEST(OneshotTest, CancelledRecvConsumesNothing) {
  for (bool value_races_in : {false, true}) {
    auto outcome = sync_testing::run_lab(5, [value_races_in](Cx& cx) -> Task<void> {
      auto made = oneshot::channel<int>();
      oneshot::Sender<int>& tx = made.first;
      oneshot::Receiver<int>& rx = made.second;
      auto inner = Region::open(cx, "inner", [&](Cx& cx) -> Task<void> {
        auto receiver = cx.spawn("receiver", [&rx](Cx& cx) -> Task<void> {
          absl::StatusOr<int> got = co_await rx.recv(cx);
          EXPECT_TRUE(absl::IsCancelled(got.status())) << got.status();
        });
        while (!rx.waiting()) (void)co_await cx.yield();
        if (value_races_in) {
          EXPECT_TRUE(tx.send(7).ok());
        }
        receiver->cancel("stop");
        (void)co_await receiver->join(cx);
        EXPECT_FALSE(rx.waiting());
        if (!value_races_in) {
          EXPECT_TRUE(tx.send(7).ok());
        }
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      absl::StatusOr<int> got = co_await rx.recv(cx);
      EXPECT_EQ(*got, 7);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// A request/reply service: clients send (id, oneshot sender) over an mpsc channel and await the
// reply; the server reserves the reply's permit, yields (a cancellation point), then sends, or
// aborts if cancelled there. A canceller cancels one client or the server after k yields
// (k = seed % kAwaitPoints). Checks: every committed reply reaches its client unless that
// client was cancelled; no client gets a reply that was not committed; a client whose reply
// can no longer come gets ChannelClosed; no permit leaks (ledger).

class OneshotCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

constexpr int kClients = 3;
constexpr uint64_t kAwaitPoints = 20;

struct Request {
  int id;
  oneshot::Sender<int> reply;
};

struct ServiceLog {
  std::map<int, int> committed;   // id → reply the server committed
  int aborted = 0;                // permits the server aborted
  std::map<int, int> replies;     // id → reply the client received
  std::map<int, bool> closed;     // id → the client saw ChannelClosed
  std::map<int, bool> cancelled;  // id → the client's wait was cancelled
  bool server_cancelled = false;
};

Task<void> serve(Cx& cx, mpsc::Receiver<Request> requests, std::shared_ptr<ServiceLog> log) {
  while (true) {
    absl::StatusOr<Request> request = co_await requests.recv(cx);
    if (!request.ok()) {
      if (absl::IsCancelled(request.status())) log->server_cancelled = true;
      co_return;
    }
    absl::StatusOr<Permit<int>> permit = request->reply.reserve(cx);
    if (!permit.ok()) continue;  // that client is gone
    if (absl::Status between = co_await cx.yield(); !between.ok()) {
      std::move(*permit).abort();
      ++log->aborted;
      log->server_cancelled = true;
      co_return;
    }
    std::move(*permit).send(request->id * 10);
    log->committed[request->id] = request->id * 10;
  }
}

Task<void> ask(Cx& cx, mpsc::Sender<Request> requests, int id, std::shared_ptr<ServiceLog> log) {
  auto reply = oneshot::channel<int>();
  oneshot::Receiver<int> reply_rx = std::move(reply.second);
  // Named, not a temporary inside the co_await expression (core/README.md, GCC 12).
  Request request{id, std::move(reply.first)};
  SendResult<Request> sent = co_await requests.send(cx, std::move(request));
  if (!sent.ok()) {
    if (absl::IsCancelled(sent.status)) {
      log->cancelled[id] = true;
    } else {
      EXPECT_TRUE(is_channel_closed(sent.status)) << sent.status;  // the server is gone
      log->closed[id] = true;
    }
    co_return;  // the request (and its reply sender) came back and is dropped here
  }
  requests.reset();
  absl::StatusOr<int> got = co_await reply_rx.recv(cx);
  if (got.ok()) {
    log->replies[id] = *got;
  } else if (absl::IsCancelled(got.status())) {
    log->cancelled[id] = true;
  } else {
    EXPECT_TRUE(is_channel_closed(got.status())) << got.status();
    log->closed[id] = true;
  }
}

TEST_P(OneshotCancelTest, RepliesAreDeliveredExactlyOnceOrReportedClosed) {
  int server_cancellations = 0;
  int aborted = 0;
  int client_cancellations = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    auto log = std::make_shared<ServiceLog>();
    std::shared_ptr<sync_testing::LedgerTotals> totals;
    const int victim = static_cast<int>(seed % (kClients + 1)) - 1;  // -1: the server
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      auto work = Region::open(cx, "service", [&](Cx& cx) -> Task<void> {
        totals = sync_testing::capture_ledger_at_close(cx);
        auto made = mpsc::channel<Request>(2);
        auto requests = std::move(made).value();
        auto server = cx.spawn("server", [rx = std::move(requests.second), log](Cx& cx) mutable {
          return serve(cx, std::move(rx), log);
        });
        std::vector<TaskHandle<void>> clients;
        for (int id = 0; id < kClients; ++id) {
          auto client = cx.spawn("client", [tx = requests.first, id, log](Cx& cx) mutable {
            return ask(cx, std::move(tx), id, log);
          });
          clients.push_back(std::move(client).value());
        }
        requests.first.reset();
        TaskHandle<void>* target = victim < 0 ? &*server : &clients[victim];
        const uint64_t k = seed % kAwaitPoints;
        auto canceller = cx.spawn("canceller", [target, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          target->cancel("injected");
        });
        (void)co_await canceller->join(cx);
        for (TaskHandle<void>& client : clients) (void)co_await client.join(cx);
        (void)co_await server->join(cx);
      });
      Outcome<void> done = co_await std::move(work);
      EXPECT_FALSE(done.is_panicked() || done.is_err()) << done.to_string() << " seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    for (int id = 0; id < kClients; ++id) {
      const bool committed = log->committed.count(id) > 0;
      const bool replied = log->replies.count(id) > 0;
      const bool cancelled = log->cancelled.count(id) > 0;
      const bool closed = log->closed.count(id) > 0;
      EXPECT_EQ(replied + cancelled + closed, 1) << "client " << id << " seed " << seed;
      if (replied) {
        EXPECT_TRUE(committed) << "a reply nobody committed, seed " << seed;
        EXPECT_EQ(log->replies[id], id * 10);
      }
      if (committed && !cancelled) {
        EXPECT_TRUE(replied) << "lost reply, seed " << seed;
      }
      if (closed) {
        EXPECT_FALSE(committed) << "closed after a commit, seed " << seed;
      }
    }
    ASSERT_TRUE(totals && totals->captured) << "seed " << seed;
    EXPECT_EQ(totals->leaked, 0u) << "seed " << seed;
    EXPECT_EQ(totals->committed, log->committed.size()) << "seed " << seed;
    EXPECT_EQ(totals->aborted, static_cast<uint64_t>(log->aborted)) << "seed " << seed;
    server_cancellations += log->server_cancelled ? 1 : 0;
    aborted += log->aborted;
    client_cancellations += static_cast<int>(log->cancelled.size());
  }
  // The injection reached every path: the server while waiting and while holding a permit,
  // clients while sending and while waiting for the reply.
  EXPECT_GT(server_cancellations, 0);
  EXPECT_GT(aborted, 0);
  EXPECT_GT(client_cancellations, 0);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, OneshotCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads without a runtime (TSan): one thread sends, another polls try_recv.
TEST(OneshotThreadTest, SendAndTryRecvOnTwoThreads) {
  for (int round = 0; round < 200; ++round) {
    auto made = oneshot::channel<std::vector<int>>();
    oneshot::Sender<std::vector<int>>& tx = made.first;
    oneshot::Receiver<std::vector<int>>& rx = made.second;
    std::thread sender([&tx, round] {
      EXPECT_TRUE(tx.send(std::vector<int>(16, round)).ok());
      tx.reset();
    });
    while (true) {
      absl::StatusOr<std::vector<int>> got = rx.try_recv();
      if (got.ok()) {
        EXPECT_EQ(got->size(), 16u);
        EXPECT_EQ(got->front(), round);
        break;
      }
      ASSERT_TRUE(absl::IsUnavailable(got.status())) << got.status();
      std::this_thread::yield();
    }
    sender.join();
  }
}

}  // namespace
}  // namespace asupersync
