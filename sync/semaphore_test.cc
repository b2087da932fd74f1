// Semaphore: strict FIFO, permits as obligations, cancellation over many seeds, and several
// threads (each with its own lab runtime) sharing one semaphore (TSan).

#include "sync/semaphore.h"

#include <atomic>
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
using ::testing::HasSubstr;

// SPEC 8.3, 5.1: acquire hands out a permit recorded in the ledger; release gives the units
// back and resolves it as completed.
TEST(SemaphoreTest, AcquireAndRelease) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    Semaphore semaphore(3);
    ObligationLedger& ledger = cx.region().ledger();
    absl::StatusOr<SemaphorePermit> two = co_await semaphore.acquire(cx, 2);
    EXPECT_TRUE(two.ok()) << two.status();
    EXPECT_EQ(two->count(), 2u);
    EXPECT_EQ(semaphore.available_permits(), 1u);
    EXPECT_EQ(ledger.pending(), 1u);
    EXPECT_TRUE(absl::IsUnavailable(semaphore.try_acquire(cx, 2).status()));
    absl::StatusOr<SemaphorePermit> one = semaphore.try_acquire(cx, 1);
    EXPECT_TRUE(one.ok());
    const uint64_t completed = ledger.completed();
    std::move(*two).release();
    std::move(*one).release();
    EXPECT_EQ(ledger.completed(), completed + 2);
    EXPECT_EQ(ledger.pending(), 0u);
    EXPECT_EQ(semaphore.available_permits(), 3u);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 13, 3.2: acquiring 0 is InvalidArgument; acquiring in a closing region takes nothing.
TEST(SemaphoreTest, BadRequestsFailCleanly) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    Semaphore semaphore(1);
    absl::StatusOr<SemaphorePermit> zero = co_await semaphore.acquire(cx, 0);
    EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
    auto region = Region::open(cx, "closing", [&semaphore](Cx& cx) -> Task<void> {
      (void)cx.spawn("late", [&semaphore](Cx& cx) -> Task<void> {
        (void)co_await cx.yield();  // the body returned: the region is Closing
        absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx);
        EXPECT_EQ(permit.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_EQ(semaphore.available_permits(), 1u);
      });
      co_return;
    });
    Outcome<void> closed = co_await std::move(region);
    EXPECT_TRUE(closed.ok()) << closed.to_string();
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.3 (strict FIFO): a large request at the head blocks smaller ones behind it.
TEST(SemaphoreTest, LargeHeadRequestBlocksSmallerOnes) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto order = std::make_shared<std::vector<std::string>>();
    auto outcome = sync_testing::run_lab(seed, [order, seed](Cx& cx) -> Task<void> {
      Semaphore semaphore(2);
      absl::StatusOr<SemaphorePermit> held = co_await semaphore.acquire(cx, 2);
      auto big = cx.spawn("big", [&semaphore, order](Cx& cx) -> Task<void> {
        absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, 2);
        order->push_back("big");
        (void)co_await cx.yield();
        std::move(*permit).release();
      });
      while (semaphore.waiter_count() < 1) (void)co_await cx.yield();
      auto small = cx.spawn("small", [&semaphore, order](Cx& cx) -> Task<void> {
        absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, 1);
        order->push_back("small");
        std::move(*permit).release();
      });
      while (semaphore.waiter_count() < 2) (void)co_await cx.yield();
      semaphore.add_permits(1);  // 1 available: `small` would fit, but `big` is first
      for (int i = 0; i < 5; ++i) (void)co_await cx.yield();
      EXPECT_TRUE(order->empty()) << "seed " << seed;
      EXPECT_EQ(semaphore.waiter_count(), 2u);
      EXPECT_EQ(semaphore.available_permits(), 1u);
      std::move(*held).release();  // 3 available: `big` takes 2, then `small` 1
      EXPECT_EQ(semaphore.waiter_count(), 0u);
      EXPECT_EQ(semaphore.available_permits(), 0u);
      (void)co_await big->join(cx);
      (void)co_await small->join(cx);
      EXPECT_EQ(semaphore.available_permits(), 3u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(*order, ::testing::UnorderedElementsAre("big", "small")) << "seed " << seed;
  }
}

// SPEC 8.3: releasing N wakes enough waiters, in FIFO order.
TEST(SemaphoreTest, AddPermitsWakesEnoughWaitersInOrder) {
  auto order = std::make_shared<std::vector<int>>();
  auto outcome = sync_testing::run_lab(3, [order](Cx& cx) -> Task<void> {
    Semaphore semaphore(0);
    std::vector<TaskHandle<void>> waiters;
    for (int i = 0; i < 4; ++i) {
      auto waiter = cx.spawn("waiter", [&semaphore, order, i](Cx& cx) -> Task<void> {
        absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx);
        order->push_back(i);
        // Keep the unit: only add_permits may wake the others.
        while (order->size() < 4 && semaphore.waiter_count() > 0) (void)co_await cx.yield();
        std::move(*permit).release();
      });
      waiters.push_back(std::move(waiter).value());
      while (semaphore.waiter_count() < static_cast<size_t>(i + 1)) (void)co_await cx.yield();
    }
    semaphore.add_permits(3);
    EXPECT_EQ(semaphore.waiter_count(), 1u);  // three served at once, one left
    while (order->size() < 3) (void)co_await cx.yield();
    // The three oldest were served (they run in any order); the youngest still waits.
    EXPECT_THAT(*order, ::testing::UnorderedElementsAre(0, 1, 2));
    semaphore.release(1);
    EXPECT_EQ(semaphore.waiter_count(), 0u);
    for (TaskHandle<void>& waiter : waiters) (void)co_await waiter.join(cx);
    EXPECT_EQ(semaphore.available_permits(), 4u);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  ASSERT_EQ(order->size(), 4u);
  EXPECT_EQ(order->back(), 3);
}

// SPEC 5.3: a permit destroyed unreleased gives its units back and is reported (kPanic in the
// lab: the region is Panicked with the acquire site).
TEST(SemaphoreTest, LeakedPermitIsReleasedAndReported) {
  auto outcome = sync_testing::run_lab_with_leak(4, [](Cx& cx) -> Task<void> {
    Semaphore semaphore(2);
    auto leaky = Region::open(cx, "leaky", [&semaphore](Cx& cx) -> Task<void> {
      absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, 2);
      EXPECT_TRUE(permit.ok());
      EXPECT_EQ(semaphore.available_permits(), 0u);
    });
    Outcome<void> leaked = co_await std::move(leaky);
    EXPECT_TRUE(leaked.is_panicked()) << leaked.to_string();
    EXPECT_THAT(leaked.to_string(), HasSubstr("semaphore permits (2)"));
    EXPECT_THAT(leaked.to_string(), HasSubstr("semaphore_test.cc"));
    EXPECT_EQ(semaphore.available_permits(), 2u);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8, 4.2: a cancelled acquire at the head takes nothing, and the waiters behind it that
// the units now cover go through; units granted to a waiter whose cancel raced in pass on.
TEST(SemaphoreTest, CancelledWaitersTakeNothingAndPassUnitsOn) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      Semaphore semaphore(1);
      auto inner = Region::open(cx, "inner", [&semaphore](Cx& cx) -> Task<void> {
        auto acquirer = [&](size_t n, bool expect_ok) {
          return cx
              .spawn("acquirer",
                     [&semaphore, n, expect_ok](Cx& cx) -> Task<void> {
                       absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, n);
                       EXPECT_EQ(permit.ok(), expect_ok) << permit.status();
                       if (permit.ok()) std::move(*permit).release();
                     })
              .value();
        };
        // The head wants 3 (never available); the one behind wants 1 (available).
        TaskHandle<void> head = acquirer(3, false);
        while (semaphore.waiter_count() < 1) (void)co_await cx.yield();
        TaskHandle<void> behind = acquirer(1, true);
        while (semaphore.waiter_count() < 2) (void)co_await cx.yield();
        head.cancel("while queued at the head");
        (void)co_await head.join(cx);
        (void)co_await behind.join(cx);  // went through once the head left
        EXPECT_EQ(semaphore.available_permits(), 1u);

        // Raced grant: take the unit, queue `raced` then `next`, give the unit back (granted to
        // `raced`) and cancel `raced` before it runs.
        absl::StatusOr<SemaphorePermit> held = co_await semaphore.acquire(cx);
        TaskHandle<void> raced = acquirer(1, false);
        while (semaphore.waiter_count() < 1) (void)co_await cx.yield();
        TaskHandle<void> next = acquirer(1, true);
        while (semaphore.waiter_count() < 2) (void)co_await cx.yield();
        std::move(*held).release();
        raced.cancel("raced");
        (void)co_await raced.join(cx);
        (void)co_await next.join(cx);
        EXPECT_EQ(semaphore.available_permits(), 1u);
        EXPECT_EQ(semaphore.waiter_count(), 0u);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 4.5: a waiter destroyed by escalation while parked deregisters (queued) or gives back
// units already granted to it; nothing leaks.
TEST(SemaphoreTest, WaiterDestroyedWhileParkedGivesUnitsBack) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [seed](Cx& cx) -> Task<void> {
      Semaphore semaphore(2);
      auto inner = Region::open(cx, "inner", [&semaphore, seed](Cx& cx) -> Task<void> {
        absl::StatusOr<SemaphorePermit> held = co_await semaphore.acquire(cx, 2);
        auto stubborn = cx.spawn("stubborn", [&semaphore](Cx& cx) -> Task<void> {
          auto shield = cx.shield();
          absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, 2);
          ADD_FAILURE() << "resumed after escalation: " << permit.status();
        });
        while (semaphore.waiter_count() < 1) (void)co_await cx.yield();
        auto patient = cx.spawn("patient", [&semaphore](Cx& cx) -> Task<void> {
          absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, 1);
          EXPECT_TRUE(permit.ok()) << permit.status();
          if (permit.ok()) std::move(*permit).release();
        });
        while (semaphore.waiter_count() < 2) (void)co_await cx.yield();
        stubborn->cancel("escalate", Budget::Infinite().with_poll_quota(0).with_deadline(
                                         *cx.now() + Duration::Milliseconds(1)));
        if (seed % 2 == 0) {
          std::move(*held).release();  // grants 2 units to `stubborn`, then it is destroyed
        }
        Outcome<void> joined = co_await stubborn->join(cx);
        EXPECT_TRUE(joined.is_cancelled());
        EXPECT_TRUE(stubborn->budget_exhausted());
        if (seed % 2 == 1) std::move(*held).release();
        (void)co_await patient->join(cx);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();  // not Panicked: no leak
      EXPECT_EQ(semaphore.available_permits(), 2u);
      EXPECT_EQ(semaphore.waiter_count(), 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// close() refuses waiters and later acquires; held permits still release.
TEST(SemaphoreTest, CloseRefusesWaiters) {
  auto outcome = sync_testing::run_lab(5, [](Cx& cx) -> Task<void> {
    Semaphore semaphore(1);
    absl::StatusOr<SemaphorePermit> held = co_await semaphore.acquire(cx);
    auto waiter = cx.spawn("waiter", [&semaphore](Cx& cx) -> Task<void> {
      absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx);
      EXPECT_EQ(permit.status().code(), absl::StatusCode::kFailedPrecondition);
    });
    while (semaphore.waiter_count() < 1) (void)co_await cx.yield();
    semaphore.close();
    (void)co_await waiter->join(cx);
    absl::StatusOr<SemaphorePermit> late = co_await semaphore.acquire(cx);
    EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
    std::move(*held).release();
    EXPECT_EQ(semaphore.available_permits(), 1u);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8.3, 5, 11.3): workers acquire 1–3 units of 3, hold them
// across a yield, release; a canceller cancels one worker after k yields (k = seed %
// kAwaitPoints). Checks: never more than 3 units in use; at the end all 3 available, no waiter;
// every permit resolved as completed, none leaked; no deadlock (units granted to the cancelled
// worker were passed on).

class SemaphoreCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(SemaphoreCancelTest, CancelledAcquirerNeverLosesOrDuplicatesUnits) {
  constexpr int kWorkers = 4;
  constexpr int kRounds = 3;
  constexpr size_t kUnits = 3;
  constexpr uint64_t kAwaitPoints = 30;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    int acquired = 0;
    bool cancelled = false;
    std::shared_ptr<sync_testing::LedgerTotals> totals;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      Semaphore semaphore(kUnits);
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        totals = sync_testing::capture_ledger_at_close(cx);
        size_t in_use = 0;
        std::vector<TaskHandle<void>> workers;
        for (int w = 0; w < kWorkers; ++w) {
          auto worker = cx.spawn("worker", [&, w](Cx& cx) -> Task<void> {
            for (int round = 0; round < kRounds; ++round) {
              const size_t n = 1 + (seed + static_cast<uint64_t>(w * 7 + round)) % kUnits;
              absl::StatusOr<SemaphorePermit> permit = co_await semaphore.acquire(cx, n);
              if (!permit.ok()) {
                EXPECT_TRUE(absl::IsCancelled(permit.status())) << permit.status();
                cancelled = true;
                co_return;
              }
              ++acquired;
              in_use += n;
              EXPECT_LE(in_use, kUnits) << "seed " << seed;
              absl::Status yielded = co_await cx.yield();
              in_use -= n;
              std::move(*permit).release();
              if (!yielded.ok()) {
                cancelled = true;
                co_return;
              }
            }
          });
          workers.push_back(std::move(worker).value());
        }
        const uint64_t k = seed % kAwaitPoints;
        TaskHandle<void>* victim = &workers[seed % kWorkers];
        auto canceller = cx.spawn("canceller", [victim, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          victim->cancel("injected");
        });
        (void)co_await canceller->join(cx);
        for (TaskHandle<void>& worker : workers) (void)co_await worker.join(cx);
      });
      Outcome<void> done = co_await std::move(work);
      EXPECT_FALSE(done.is_panicked() || done.is_err()) << done.to_string();
      EXPECT_EQ(semaphore.available_permits(), kUnits) << "seed " << seed;
      EXPECT_EQ(semaphore.waiter_count(), 0u) << "seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    ASSERT_TRUE(totals && totals->captured) << "seed " << seed;
    EXPECT_EQ(totals->leaked, 0u) << "seed " << seed;
    EXPECT_EQ(totals->completed, static_cast<uint64_t>(acquired)) << "seed " << seed;
    EXPECT_GE(acquired, (kWorkers - 1) * kRounds) << "seed " << seed;
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, SemaphoreCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads (TSan): each thread runs its own lab runtime; all of them try_acquire and release
// units of one shared semaphore, and add_permits comes from yet another thread.
TEST(SemaphoreThreadTest, SharedAcrossThreads) {
  constexpr int kThreads = 3;
  constexpr int kIterations = 400;
  Semaphore semaphore(2);
  std::atomic<int> in_use{0};
  std::atomic<int> acquired{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      lab::LabRuntime runtime(lab::LabOptions{.seed = static_cast<uint64_t>(t)});
      Outcome<void> outcome = runtime.run([&](Cx& cx) -> Task<void> {
        for (int i = 0; i < kIterations; ++i) {
          absl::StatusOr<SemaphorePermit> permit = semaphore.try_acquire(cx, 1 + i % 2);
          if (!permit.ok()) {
            EXPECT_TRUE(absl::IsUnavailable(permit.status())) << permit.status();
            std::this_thread::yield();
            continue;
          }
          const int now = in_use.fetch_add(static_cast<int>(permit->count())) +
                          static_cast<int>(permit->count());
          EXPECT_LE(now, 3);  // 2 units, plus 1 added by the other thread below
          acquired.fetch_add(1);
          in_use.fetch_sub(static_cast<int>(permit->count()));
          std::move(*permit).release();
          (void)co_await cx.yield();
        }
      });
      EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    });
  }
  threads.emplace_back([&] { semaphore.add_permits(1); });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(semaphore.available_permits(), 3u);
  EXPECT_GT(acquired.load(), 0);
}

}  // namespace
}  // namespace asupersync
