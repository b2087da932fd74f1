// Barrier: trips, leaders, generations, cancelled waiters removed from the count, over many
// seeds.

#include "sync/barrier.h"

#include <map>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/internal/test_harness.h"

namespace asupersync {
namespace {

using sync_testing::RuntimeKind;

// SPEC 8.3: the n-th arrival releases everyone; exactly one leader per generation; reusable.
TEST(BarrierTest, TripsWithOneLeaderPerGeneration) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    std::map<uint64_t, int> leaders;
    std::map<uint64_t, int> passed;
    auto outcome = sync_testing::run_lab(seed, [&](Cx& cx) -> Task<void> {
      Barrier barrier(3);
      std::vector<TaskHandle<void>> tasks;
      for (int i = 0; i < 3; ++i) {
        auto task = cx.spawn("party", [&](Cx& cx) -> Task<void> {
          for (int round = 0; round < 3; ++round) {
            absl::StatusOr<BarrierWaitResult> result = co_await barrier.wait(cx);
            EXPECT_TRUE(result.ok()) << result.status();
            EXPECT_EQ(result->generation, static_cast<uint64_t>(round));
            ++passed[result->generation];
            if (result->is_leader) ++leaders[result->generation];
          }
        });
        tasks.push_back(std::move(task).value());
      }
      for (TaskHandle<void>& task : tasks) (void)co_await task.join(cx);
      EXPECT_EQ(barrier.generation(), 3u);
      EXPECT_EQ(barrier.waiting(), 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    for (uint64_t generation = 0; generation < 3; ++generation) {
      EXPECT_EQ(leaders[generation], 1) << "seed " << seed;
      EXPECT_EQ(passed[generation], 3) << "seed " << seed;
    }
  }
}

// Barrier(0) and Barrier(1): every wait passes at once, as leader.
TEST(BarrierTest, TrivialBarriersPassAtOnce) {
  auto outcome = sync_testing::run_lab(1, [](Cx& cx) -> Task<void> {
    for (size_t n : {0u, 1u}) {
      Barrier barrier(n);
      absl::StatusOr<BarrierWaitResult> result = co_await barrier.wait(cx);
      EXPECT_TRUE(result.ok() && result->is_leader);
    }
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 8.3 (a cancelled waiter is removed from the count), 4.2: the barrier then needs one more
// arrival; a waiter whose cancel raced with the trip reports success (the trip stands).
TEST(BarrierTest, CancelledWaiterIsRemovedFromTheCount) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto outcome = sync_testing::run_lab(seed, [](Cx& cx) -> Task<void> {
      Barrier barrier(3);
      auto inner = Region::open(cx, "inner", [&barrier](Cx& cx) -> Task<void> {
        auto party = [&barrier](bool expect_ok) {
          return [&barrier, expect_ok](Cx& cx) -> Task<void> {
            absl::StatusOr<BarrierWaitResult> result = co_await barrier.wait(cx);
            EXPECT_EQ(result.ok(), expect_ok) << result.status();
          };
        };
        TaskHandle<void> quitter = cx.spawn("quitter", party(false)).value();
        TaskHandle<void> stayer = cx.spawn("stayer", party(true)).value();
        while (barrier.waiting() < 2) (void)co_await cx.yield();
        quitter.cancel("leaves");
        (void)co_await quitter.join(cx);
        EXPECT_EQ(barrier.waiting(), 1u);  // removed from the count
        TaskHandle<void> third = cx.spawn("third", party(true)).value();
        while (barrier.waiting() < 2) (void)co_await cx.yield();
        EXPECT_EQ(barrier.generation(), 0u);  // two waiting: not tripped
        absl::StatusOr<BarrierWaitResult> mine = co_await barrier.wait(cx);
        EXPECT_TRUE(mine.ok() && mine->is_leader);
        (void)co_await stayer.join(cx);
        (void)co_await third.join(cx);

        // Raced: the trip releases `late`, whose cancel arrives before it runs: success.
        TaskHandle<void> late = cx.spawn("late", party(true)).value();
        TaskHandle<void> other = cx.spawn("other", party(true)).value();
        while (barrier.waiting() < 2) (void)co_await cx.yield();
        absl::StatusOr<BarrierWaitResult> trip = co_await barrier.wait(cx);
        EXPECT_TRUE(trip.ok());
        late.cancel("too late");
        (void)co_await late.join(cx);
        (void)co_await other.join(cx);
        EXPECT_EQ(barrier.generation(), 2u);
      });
      Outcome<void> joined = co_await std::move(inner);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_EQ(barrier.waiting(), 0u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// ------------------------------------------------------------------------------------------
// Cancellation injection (SPEC 4.2, 8.3, 11.3): three parties run kRounds rounds; a canceller
// cancels one after k yields (k = seed % kAwaitPoints); the test body then stands in for the
// rounds the cancelled party did not finish. If a cancelled waiter were still counted, a
// generation would trip short and the rest would not add up (or deadlock). Checks: every
// generation has exactly 3 passes and one leader; kRounds generations in all; nobody waits.

class BarrierCancelTest : public ::testing::TestWithParam<RuntimeKind> {};

TEST_P(BarrierCancelTest, CancelledPartyLeavesTheCountExact) {
  constexpr int kParties = 3;
  constexpr int kRounds = 4;
  constexpr uint64_t kAwaitPoints = 30;
  int cancelled_runs = 0;
  for (uint64_t seed = 0; seed < sync_testing::kSeeds; ++seed) {
    std::map<uint64_t, int> passed;
    std::map<uint64_t, int> leaders;
    bool cancelled = false;
    auto outcome = sync_testing::run_program(GetParam(), seed, [&](Cx& cx) -> Task<void> {
      Barrier barrier(kParties);
      auto work = Region::open(cx, "work", [&](Cx& cx) -> Task<void> {
        std::vector<int> rounds_done(kParties, 0);
        std::vector<TaskHandle<void>> parties;
        for (int p = 0; p < kParties; ++p) {
          auto party = cx.spawn("party", [&, p](Cx& cx) -> Task<void> {
            while (rounds_done[p] < kRounds) {
              absl::StatusOr<BarrierWaitResult> result = co_await barrier.wait(cx);
              if (!result.ok()) {
                EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
                cancelled = true;
                co_return;
              }
              ++passed[result->generation];
              if (result->is_leader) ++leaders[result->generation];
              ++rounds_done[p];
              if (absl::Status s = co_await cx.yield(); !s.ok()) {
                cancelled = true;
                co_return;
              }
            }
          });
          parties.push_back(std::move(party).value());
        }
        const int victim = static_cast<int>(seed % kParties);
        const uint64_t k = seed % kAwaitPoints;
        auto canceller = cx.spawn("canceller", [&, k](Cx& cx) -> Task<void> {
          for (uint64_t i = 0; i < k; ++i) (void)co_await cx.yield();
          parties[victim].cancel("injected");
        });
        (void)co_await canceller->join(cx);
        (void)co_await parties[victim].join(cx);
        // Stand in for the victim's missing rounds.
        while (rounds_done[victim] < kRounds) {
          absl::StatusOr<BarrierWaitResult> result = co_await barrier.wait(cx);
          EXPECT_TRUE(result.ok()) << result.status();
          ++passed[result->generation];
          if (result->is_leader) ++leaders[result->generation];
          ++rounds_done[victim];
        }
        for (TaskHandle<void>& party : parties) (void)co_await party.join(cx);
      });
      Outcome<void> finished = co_await std::move(work);
      EXPECT_FALSE(finished.is_panicked() || finished.is_err()) << finished.to_string();
      EXPECT_EQ(barrier.generation(), static_cast<uint64_t>(kRounds)) << "seed " << seed;
      EXPECT_EQ(barrier.waiting(), 0u) << "seed " << seed;
    });
    EXPECT_FALSE(outcome.is_panicked() || outcome.is_err()) << outcome.to_string();
    for (uint64_t generation = 0; generation < kRounds; ++generation) {
      EXPECT_EQ(passed[generation], kParties) << "generation " << generation << " seed " << seed;
      EXPECT_EQ(leaders[generation], 1) << "generation " << generation << " seed " << seed;
    }
    cancelled_runs += cancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled_runs, static_cast<int>(sync_testing::kSeeds / 3));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, BarrierCancelTest,
                         ::testing::ValuesIn(sync_testing::all_runtimes()),
                         sync_testing::runtime_name);

}  // namespace
}  // namespace asupersync
