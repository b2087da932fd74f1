// Mutex: FIFO handoff, poisoning, cancellation on the lab runtime over many seeds, and a
// thread-level try_lock stress test (TSan).

#include "sync/mutex.h"

#include <memory>
#include <optional>
#include <stdexcept>
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

// SPEC 8.3: lock/unlock; try_lock fails while held.
TEST(MutexTest, LockAndTryLock) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    Mutex mutex;
    {
      absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
      EXPECT_TRUE(guard.ok()) << guard.status();
      EXPECT_TRUE(mutex.is_locked());
      EXPECT_TRUE(absl::IsUnavailable(mutex.try_lock().status()));
      guard->unlock();
      EXPECT_FALSE(guard->owns_lock());
      EXPECT_FALSE(mutex.is_locked());
      absl::StatusOr<MutexGuard> again = mutex.try_lock();
      EXPECT_TRUE(again.ok());
    }
    EXPECT_FALSE(mutex.is_locked());
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.3 (FIFO-fair): unlock hands the lock to the oldest waiter; the unlocker cannot barge.
TEST(MutexTest, UnlockHandsOffFifo) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto order = std::make_shared<std::vector<int>>();
    auto outcome = sync_testing::run_lab(seed, [order](Cx& cx) -> Task<void> {
      Mutex mutex;
      absl::StatusOr<MutexGuard> held = co_await mutex.lock(cx);
      std::vector<TaskHandle<void>> waiters;
      for (int i = 1; i <= 3; ++i) {
        auto waiter = cx.spawn("waiter", [&mutex, order, i](Cx& cx) -> Task<void> {
          absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
          EXPECT_TRUE(guard.ok());
          order->push_back(i);
          (void)co_await cx.yield();  // hold it across a suspension
        });
        waiters.push_back(std::move(waiter).value());
        while (mutex.waiter_count() < static_cast<size_t>(i)) (void)co_await cx.yield();
      }
      held->unlock();
      // Handed to waiter 1: still locked, and this task cannot take it back.
      EXPECT_TRUE(mutex.is_locked());
      EXPECT_TRUE(absl::IsUnavailable(mutex.try_lock().status()));
      absl::StatusOr<MutexGuard> last = co_await mutex.lock(cx);  // queues behind 2 and 3
      order->push_back(4);
      last->unlock();
      for (TaskHandle<void>& waiter : waiters) (void)co_await waiter.join(cx);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(*order, ElementsAre(1, 2, 3, 4)) << "seed " << seed;
  }
}

// SPEC 8.3: mutual exclusion across suspensions inside the critical section.
TEST(MutexTest, MutualExclusionAcrossSuspensions) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      Mutex mutex;
      int inside = 0;
      int total = 0;
      std::vector<TaskHandle<void>> workers;
      for (int w = 0; w < 4; ++w) {
        auto worker = cx.spawn("worker", [&](Cx& cx) -> Task<void> {
          for (int i = 0; i < 5; ++i) {
            absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
            EXPECT_EQ(++inside, 1);
            (void)co_await cx.yield();
            ++total;
            --inside;
          }
        });
        workers.push_back(std::move(worker).value());
      }
      for (TaskHandle<void>& worker : workers) (void)co_await worker.join(cx);
      EXPECT_EQ(total, 20);
      EXPECT_FALSE(mutex.is_locked());
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 8.3 (poisoned if a holder panicked), 2.3: an exception escaping the critical section
// poisons the mutex; waiters and later lockers get Poisoned until clear_poison().
TEST(MutexTest, PanickingHolderPoisons) {
  auto outcome = sync_testing::run_lab(2, [](Cx& cx) -> Task<void> {
    Mutex mutex;
    auto inner = Region::open(
        cx, "inner",
        [&mutex](Cx& cx) -> Task<void> {
          auto thrower = cx.spawn("thrower", [&mutex](Cx& cx) -> Task<void> {
            absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
            while (mutex.waiter_count() == 0) (void)co_await cx.yield();
            throw std::runtime_error("boom inside the critical section");
          });
          auto waiter = cx.spawn("waiter", [&mutex](Cx& cx) -> Task<void> {
            while (!mutex.is_locked()) (void)co_await cx.yield();
            absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
            EXPECT_TRUE(is_poisoned(guard.status())) << guard.status();
          });
          Outcome<void> thrown = co_await thrower->join(cx);
          EXPECT_TRUE(thrown.is_panicked());
          (void)co_await waiter->join(cx);
        },
        RegionOptions{.failure_policy = FailurePolicy::kCollectAll});
    Outcome<void> joined = co_await std::move(inner);
    EXPECT_TRUE(joined.is_panicked());
    EXPECT_TRUE(mutex.is_poisoned());
    EXPECT_FALSE(mutex.is_locked());
    EXPECT_TRUE(is_poisoned(mutex.try_lock().status()));
    absl::StatusOr<MutexGuard> refused = co_await mutex.lock(cx);
    EXPECT_TRUE(is_poisoned(refused.status()));
    mutex.clear_poison();
    absl::StatusOr<MutexGuard> recovered = co_await mutex.lock(cx);
    EXPECT_TRUE(recovered.ok()) << recovered.status();
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.3, 4.5: a holder destroyed by escalation (its cleanup budget ran out inside the
// critical section) poisons the mutex; an ordinary cancellation that unwinds does not.
TEST(MutexTest, EscalatedHolderPoisonsCancelledHolderDoesNot) {
  for (bool escalate : {false, true}) {
    auto outcome = sync_testing::run_lab(3, [escalate](Cx& cx) -> Task<void> {
      Mutex mutex;
      auto inner = Region::open(cx, "inner", [&mutex, escalate](Cx& cx) -> Task<void> {
        auto holder = cx.spawn("holder", [&mutex, escalate](Cx& cx) -> Task<void> {
          absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
          std::optional<absl::StatusOr<ShieldGuard>> shield;
          if (escalate) shield.emplace(cx.shield());  // ignores the cancel: escalated
          absl::Status slept = co_await cx.sleep(Duration::Seconds(3600));
          EXPECT_FALSE(escalate) << "an escalated task is not resumed";
          EXPECT_TRUE(absl::IsCancelled(slept));
        });
        while (!mutex.is_locked()) (void)co_await cx.yield();
        holder->cancel("stop",
                       Budget::Infinite().with_deadline(*cx.now() + Duration::Milliseconds(1)));
        Outcome<void> joined = co_await holder->join(cx);
        EXPECT_TRUE(joined.is_cancelled());
        EXPECT_EQ(holder->budget_exhausted(), escalate);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_FALSE(mutex.is_locked());
      EXPECT_EQ(mutex.is_poisoned(), escalate);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// Lifetime (mutex.h): a guard made by lock() borrows the locking task's record; moved out of
// that task it takes a reference, so it may outlive the task (ASan checks the record it reads
// on release is still alive) and still unlocks without poisoning.
TEST(MutexTest, GuardMovedOutOfTheLockingTaskOutlivesIt) {
  auto outcome = sync_testing::run_lab(5, [](Cx& cx) -> Task<void> {
    Mutex mutex;
    std::optional<MutexGuard> kept;
    {
      auto holder = cx.spawn("holder", [&mutex, &kept](Cx& cx) -> Task<void> {
        absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
        EXPECT_TRUE(guard.ok());
        kept.emplace(std::move(*guard));
      });
      Outcome<void> joined = co_await holder->join(cx);
      EXPECT_TRUE(joined.ok());
    }  // the handle is gone: only the guard still refers to the holder's record
    EXPECT_TRUE(mutex.is_locked());
    kept.reset();
    EXPECT_FALSE(mutex.is_locked());
    EXPECT_FALSE(mutex.is_poisoned());
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8, 4.2: a cancelled lock takes nothing and leaves no waiter; a lock handed to a waiter
// whose cancel raced in goes to the next waiter.
TEST(MutexTest, CancelledLockTakesNothingAndPassesHandoffOn) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      Mutex mutex;
      auto inner = Region::open(cx, "inner", [&mutex](Cx& cx) -> Task<void> {
        absl::StatusOr<MutexGuard> held = co_await mutex.lock(cx);
        auto spawn_locker = [&](bool expect_ok) {
          return cx
              .spawn("locker",
                     [&mutex, expect_ok](Cx& cx) -> Task<void> {
                       absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
                       EXPECT_EQ(guard.ok(), expect_ok) << guard.status();
                       if (!expect_ok) {
                         EXPECT_TRUE(absl::IsCancelled(guard.status()));
                       }
                     })
              .value();
        };
        TaskHandle<void> queued = spawn_locker(false);
        while (mutex.waiter_count() < 1) (void)co_await cx.yield();
        queued.cancel("while queued");
        (void)co_await queued.join(cx);
        EXPECT_EQ(mutex.waiter_count(), 0u);

        TaskHandle<void> raced = spawn_locker(false);
        while (mutex.waiter_count() < 1) (void)co_await cx.yield();
        TaskHandle<void> next = spawn_locker(true);
        while (mutex.waiter_count() < 2) (void)co_await cx.yield();
        held->unlock();         // hands the lock to `raced`...
        raced.cancel("raced");  // ...whose cancel wins: the lock goes to `next`
        (void)co_await raced.join(cx);
        (void)co_await next.join(cx);
        EXPECT_FALSE(mutex.is_locked());
        EXPECT_EQ(mutex.waiter_count(), 0u);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_FALSE(mutex.is_poisoned());
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 4.5: a waiter destroyed by escalation while parked deregisters (queued) or passes on a
// lock already handed to it (granted, not yet resumed); nothing is poisoned by a waiter.
TEST(MutexTest, WaiterDestroyedWhileParkedPassesTheLockOn) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [seed](Cx& cx) -> Task<void> {
      Mutex mutex;
      auto inner = Region::open(cx, "inner", [&mutex, seed](Cx& cx) -> Task<void> {
        absl::StatusOr<MutexGuard> held = co_await mutex.lock(cx);
        auto stubborn = cx.spawn("stubborn", [&mutex](Cx& cx) -> Task<void> {
          auto shield = cx.shield();  // the cancel is not delivered: it stays parked
          absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
          ADD_FAILURE() << "resumed after escalation: " << guard.status();
        });
        while (mutex.waiter_count() < 1) (void)co_await cx.yield();
        auto patient = cx.spawn("patient", [&mutex](Cx& cx) -> Task<void> {
          absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
          EXPECT_TRUE(guard.ok()) << guard.status();
        });
        while (mutex.waiter_count() < 2) (void)co_await cx.yield();
        stubborn->cancel("escalate", Budget::Infinite().with_poll_quota(0).with_deadline(
                                         *cx.now() + Duration::Milliseconds(1)));
        if (seed % 2 == 0) held->unlock();  // hands the lock to `stubborn`, then it is destroyed
        Outcome<void> joined = co_await stubborn->join(cx);
        EXPECT_TRUE(joined.is_cancelled());
        EXPECT_TRUE(stubborn->budget_exhausted());
        if (seed % 2 == 1) held->unlock();
        (void)co_await patient->join(cx);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
      EXPECT_FALSE(mutex.is_locked());
      EXPECT_FALSE(mutex.is_poisoned());
      EXPECT_EQ(mutex.waiter_count(), 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8, 11.3): workers loop lock → yield inside → unlock; a
// canceller cancels one worker after k yields (k = seed % kAwaitPoints), hitting it while
// queued, while holding the lock, or as the lock is handed to it. Checks: exclusion always
// holds, every critical section entered was left, the lock is free with no waiter at the end,
// not poisoned, and nobody deadlocks (a handoff to the cancelled worker was passed on).

class MutexCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(MutexCancelTest, CancelledWorkerNeverBreaksExclusionOrStrandsTheLock) {
  constexpr int kWorkers = 3;
  constexpr int kRounds = 4;
  constexpr uint64_t kAwaitPoints = 30;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    int entered = 0;
    int left = 0;
    bool worker_cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      Mutex mutex;
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        int inside = 0;
        std::vector<TaskHandle<void>> workers;
        for (int w = 0; w < kWorkers; ++w) {
          auto worker = cx.spawn("worker", [&](Cx& cx) -> Task<void> {
            for (int round = 0; round < kRounds; ++round) {
              absl::StatusOr<MutexGuard> guard = co_await mutex.lock(cx);
              if (!guard.ok()) {
                EXPECT_TRUE(absl::IsCancelled(guard.status())) << guard.status();
                worker_cancelled = true;
                co_return;
              }
              EXPECT_EQ(++inside, 1) << "seed " << seed;
              ++entered;
              absl::Status yielded = co_await cx.yield();
              --inside;
              ++left;
              if (!yielded.ok()) {
                worker_cancelled = true;
                co_return;  // the guard unlocks on the way out
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
      EXPECT_FALSE(mutex.is_locked()) << "seed " << seed;
      EXPECT_EQ(mutex.waiter_count(), 0u) << "seed " << seed;
      EXPECT_FALSE(mutex.is_poisoned()) << "seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    EXPECT_EQ(entered, left) << "seed " << seed;
    EXPECT_GE(entered, (kWorkers - 1) * kRounds) << "seed " << seed;
    cancelled_runs += worker_cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, MutexCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads without a runtime (TSan): try_lock from several threads protects a plain counter.
TEST(MutexThreadTest, TryLockFromThreads) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 2000;
  Mutex mutex;
  int64_t counter = 0;  // protected by `mutex` only
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements;) {
        absl::StatusOr<MutexGuard> guard = mutex.try_lock();
        if (!guard.ok()) {
          ASSERT_TRUE(absl::IsUnavailable(guard.status()));
          std::this_thread::yield();
          continue;
        }
        ++counter;
        ++i;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter, kThreads * kIncrements);
  EXPECT_FALSE(mutex.is_locked());
}

}  // namespace
}  // namespace asupersync
