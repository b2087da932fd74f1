// OnceCell: one initializer at a time; a failed, cancelled, throwing or destroyed initializer
// leaves the cell empty for the next caller; cancellation over many seeds.

#include "sync/once_cell.h"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;

// SPEC 8.3: concurrent callers run one initializer; everybody gets the same value.
TEST(OnceCellTest, InitializesOnceForEveryone) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      OnceCell<std::string> cell;
      int inits = 0;
      auto init = [&inits](Cx& cx) -> Task<absl::StatusOr<std::string>> {
        ++inits;
        (void)co_await cx.yield();
        co_return std::string("value");
      };
      std::vector<const std::string*> got;
      std::vector<TaskHandle<void>> tasks;
      for (int i = 0; i < 4; ++i) {
        auto task = cx.spawn("caller", [&](Cx& cx) -> Task<void> {
          auto value = cell.get_or_init(cx, init);
          absl::StatusOr<const std::string*> result = co_await std::move(value);
          EXPECT_TRUE(result.ok()) << result.status();
          got.push_back(*result);
        });
        tasks.push_back(std::move(task).value());
      }
      for (TaskHandle<void>& task : tasks) (void)co_await task.join(cx);
      EXPECT_EQ(inits, 1);
      EXPECT_EQ(got.size(), 4u);
      for (const std::string* value : got) EXPECT_EQ(value, cell.get());
      EXPECT_EQ(*cell.get(), "value");
      EXPECT_EQ(cell.waiter_count(), 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// set() and get(): get never waits; set fails once initialized.
TEST(OnceCellTest, SetAndGet) {
  OnceCell<int> cell;
  EXPECT_EQ(cell.get(), nullptr);
  EXPECT_TRUE(cell.set(3).ok());
  EXPECT_EQ(*cell.get(), 3);
  EXPECT_EQ(cell.set(4).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*cell.get(), 3);
}

// SPEC 8.3: a failed initializer leaves the cell empty and the oldest waiter initializes next;
// so does one that throws (the exception reaches its caller).
TEST(OnceCellTest, FailedOrThrowingInitializerPassesTheTurn) {
  for (bool throws : {false, true}) {
    auto outcome = sync_testing::run_lab(1, [throws](Cx& cx) -> Task<void> {
      OnceCell<int> cell;
      int attempts = 0;
      auto init = [&](Cx& cx) -> Task<absl::StatusOr<int>> {
        const int attempt = ++attempts;
        while (cell.waiter_count() < 2 && attempt == 1) (void)co_await cx.yield();
        if (attempt == 1) {
          if (throws) throw std::runtime_error("init threw");
          co_return absl::UnavailableError("backend down");
        }
        co_return 42;
      };
      auto first = cx.spawn("first", [&](Cx& cx) -> Task<void> {
        auto value = cell.get_or_init(cx, init);
        try {
          absl::StatusOr<const int*> result = co_await std::move(value);
          EXPECT_FALSE(throws);
          EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
        } catch (const std::runtime_error& error) {
          EXPECT_TRUE(throws) << error.what();
        }
      });
      while (attempts == 0) (void)co_await cx.yield();  // `first` is the initializer
      std::vector<TaskHandle<void>> waiters;
      for (int i = 0; i < 2; ++i) {
        auto waiter = cx.spawn("waiter", [&](Cx& cx) -> Task<void> {
          auto value = cell.get_or_init(cx, init);
          absl::StatusOr<const int*> result = co_await std::move(value);
          EXPECT_TRUE(result.ok() && **result == 42) << result.status();
        });
        waiters.push_back(std::move(waiter).value());
      }
      (void)co_await first->join(cx);
      for (TaskHandle<void>& waiter : waiters) (void)co_await waiter.join(cx);
      EXPECT_EQ(attempts, 2);
      EXPECT_EQ(*cell.get(), 42);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 8.3, 4.2, 4.5: a cancelled initializer (its init sees the cancel and fails), or one
// destroyed by escalation while its init is suspended, leaves the cell empty for the next
// caller; a cancelled waiter leaves no waiter behind.
TEST(OnceCellTest, CancelledOrDestroyedInitializerPassesTheTurn) {
  for (bool escalate : {false, true}) {
    auto outcome = sync_testing::run_lab(2, [escalate](Cx& cx) -> Task<void> {
      OnceCell<int> cell;
      int attempts = 0;
      auto init = [&](Cx& cx) -> Task<absl::StatusOr<int>> {
        if (++attempts == 1) {
          std::optional<absl::StatusOr<ShieldGuard>> shield;
          if (escalate) shield.emplace(cx.shield());  // ignores the cancel: escalated
          absl::Status slept = co_await cx.sleep(Duration::Seconds(3600));
          if (!slept.ok()) co_return slept;
        }
        co_return 7;
      };
      auto inner = Region::open(cx, "inner", [&](Cx& cx) -> Task<void> {
        auto initializer = cx.spawn("initializer", [&](Cx& cx) -> Task<void> {
          auto value = cell.get_or_init(cx, init);
          absl::StatusOr<const int*> result = co_await std::move(value);
          EXPECT_FALSE(escalate) << "an escalated task is not resumed";
          EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
        });
        while (attempts == 0) (void)co_await cx.yield();
        auto quitter = cx.spawn("quitter", [&](Cx& cx) -> Task<void> {
          auto value = cell.get_or_init(cx, init);
          absl::StatusOr<const int*> result = co_await std::move(value);
          EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
        });
        while (cell.waiter_count() < 1) (void)co_await cx.yield();
        auto next = cx.spawn("next", [&](Cx& cx) -> Task<void> {
          auto value = cell.get_or_init(cx, init);
          absl::StatusOr<const int*> result = co_await std::move(value);
          EXPECT_TRUE(result.ok()) << result.status();
        });
        while (cell.waiter_count() < 2) (void)co_await cx.yield();
        quitter->cancel("leaves the queue");
        (void)co_await quitter->join(cx);
        EXPECT_EQ(cell.waiter_count(), 1u);
        initializer->cancel(
            "stop", Budget::Infinite().with_deadline(*cx.now() + Duration::Milliseconds(1)));
        Outcome<void> joined = co_await initializer->join(cx);
        EXPECT_TRUE(joined.is_cancelled());
        EXPECT_EQ(initializer->budget_exhausted(), escalate);
        (void)co_await next->join(cx);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_EQ(attempts, 2);
      EXPECT_TRUE(cell.get() != nullptr && *cell.get() == 7);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8.3, 11.3): four callers race to initialize; the first
// attempt fails when the seed says so; a canceller cancels one caller after k yields (k = seed
// % kAwaitPoints): the initializer inside its init, a waiter in the queue, or a waiter just
// handed the turn. Checks: exactly one successful init; every caller not cancelled gets the
// value (the same pointer); the cell is set; nobody waits; no deadlock (the turn always
// reached someone).

class OnceCellCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(OnceCellCancelTest, CancelledCallerNeverStrandsTheCell) {
  constexpr int kCallers = 4;
  constexpr uint64_t kAwaitPoints = 10;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    int successes = 0;
    int attempts = 0;
    bool cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      OnceCell<int> cell;
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        auto init = [&](Cx& cx) -> Task<absl::StatusOr<int>> {
          const int attempt = ++attempts;
          for (int i = 0; i < 3; ++i) {
            if (absl::Status s = co_await cx.yield(); !s.ok()) co_return s;
          }
          if (attempt == 1 && seed % 3 == 0) co_return absl::UnavailableError("flaky");
          ++successes;
          co_return 100 + attempt;
        };
        std::vector<TaskHandle<void>> callers;
        for (int c = 0; c < kCallers; ++c) {
          auto caller = cx.spawn("caller", [&](Cx& cx) -> Task<void> {
            auto value = cell.get_or_init(cx, init);
            absl::StatusOr<const int*> result = co_await std::move(value);
            if (result.ok()) {
              EXPECT_EQ(*result, cell.get()) << "seed " << seed;
            } else if (absl::IsCancelled(result.status())) {
              cancelled = true;
            } else {
              EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
            }
          });
          callers.push_back(std::move(caller).value());
        }
        const uint64_t k = seed % kAwaitPoints;
        TaskHandle<void>* victim = &callers[seed % kCallers];
        auto canceller = cx.spawn("canceller", [victim, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          victim->cancel("injected");
        });
        (void)co_await canceller->join(cx);
        for (TaskHandle<void>& caller : callers) (void)co_await caller.join(cx);
      });
      Outcome<void> finished = co_await std::move(work);
      EXPECT_FALSE(finished.is_panicked() || finished.is_err()) << finished.to_string();
      EXPECT_EQ(cell.waiter_count(), 0u) << "seed " << seed;
      EXPECT_NE(cell.get(), nullptr) << "seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    EXPECT_EQ(successes, 1) << "seed " << seed;
    EXPECT_LE(attempts, 3) << "seed " << seed;
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, OnceCellCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

// Threads (TSan): one thread sets the cell, the others spin on get(): the value is published
// with release/acquire, so readers see it whole.
TEST(OnceCellThreadTest, SetPublishesToReadersOnOtherThreads) {
  for (int round = 0; round < 50; ++round) {
    OnceCell<std::vector<int>> cell;
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) {
      readers.emplace_back([&cell, round] {
        const std::vector<int>* value = nullptr;
        while ((value = cell.get()) == nullptr) std::this_thread::yield();
        EXPECT_EQ(value->size(), 32u);
        EXPECT_EQ(value->back(), round);
      });
    }
    std::thread setter([&cell, round] { EXPECT_TRUE(cell.set(std::vector<int>(32, round)).ok()); });
    setter.join();
    for (std::thread& reader : readers) reader.join();
    EXPECT_EQ(cell.set(std::vector<int>()).code(), absl::StatusCode::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace asupersync
