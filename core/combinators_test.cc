// join_all, race and timeout (SPEC 7.1) on the deterministic lab runtime. Tests sensitive to
// interleaving run over kSeeds seeds; the lab's oracles (SPEC 11.3) are checked after each run.
//
// GCC 12 workaround (core/README.md): every combinator's Task is named before it is awaited, and
// no lambda temporary appears inside a co_await expression.

#include "core/combinators.h"

#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lab/lab_runtime.h"

namespace asupersync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int kSeeds = 1000;

// ASSERT_* ends a function with `return`, which a coroutine cannot use: this one records the
// failure (with `context`) and ends the coroutine with co_return.
#define CO_ASSERT_TRUE(condition, context)                         \
  if (!(condition)) {                                              \
    ADD_FAILURE() << "Expected true: " #condition "; " << context; \
    co_return;                                                     \
  }

// Runs `main` on a fresh lab runtime with `seed` and checks the oracles.
template <typename F>
auto run_lab(uint64_t seed, F main) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
  auto outcome = runtime.run(std::move(main));
  EXPECT_THAT(runtime.report().violations, IsEmpty()) << "seed " << seed;
  EXPECT_FALSE(runtime.report().deadlocked) << runtime.report().deadlock_report;
  return outcome;
}

// Sets its flag when destroyed: observes that a task's frame is gone (finished or destroyed).
struct DrainedFlag {
  std::shared_ptr<bool> flag;
  ~DrainedFlag() { *flag = true; }
};

Time now_of(Cx& cx) { return cx.now().value(); }

Time at(int64_t milliseconds) { return Time::Epoch() + Duration::Milliseconds(milliseconds); }

// ----- join_all ------------------------------------------------------------------------------

// SPEC 7.1, 1.3, 2.3: join_all waits for every task and returns every outcome, Ok, Err and
// Panicked alike, in argument order; one failure does not cancel the others.
TEST(JoinAllTest, ReturnsMixedOutcomesInArgumentOrder) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto outcome = run_lab(seed, [](Cx& cx) -> Task<void> {
      auto joined = join_all(
          cx,
          [](Cx& c) -> Task<int> {
            (void)co_await c.sleep(Duration::Milliseconds(3));
            co_return 7;
          },
          [](Cx& c) -> Task<absl::Status> {
            (void)co_await c.sleep(Duration::Milliseconds(1));
            co_return absl::NotFoundError("no such user");
          },
          [](Cx& c) -> Task<std::string> {
            (void)co_await c.yield();
            throw std::runtime_error("boom");
            co_return "unreachable";
          },
          [](Cx& c) -> Task<void> { (void)co_await c.sleep(Duration::Milliseconds(2)); });
      auto [value, status, thrown, nothing] = co_await std::move(joined);
      EXPECT_EQ(value.value(), 7);
      EXPECT_TRUE(status.is_err()) << status.to_string();
      EXPECT_THAT(std::string(status.status().message()), HasSubstr("no such user"));
      EXPECT_TRUE(thrown.is_panicked()) << thrown.to_string();
      EXPECT_EQ(thrown.panic_info().message, "boom");
      EXPECT_TRUE(nothing.ok()) << nothing.to_string();
      // Waited for the slowest (3 ms); the Err at 1 ms cancelled nobody.
      EXPECT_EQ(now_of(cx), at(3));
    });
    // The failures stay inside join_all's private region: the caller's region is Ok.
    EXPECT_TRUE(outcome.ok()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 7.1: the homogeneous form returns one outcome per callable, in order.
TEST(JoinAllTest, VectorFormKeepsOrder) {
  auto outcome = run_lab(1, [](Cx& cx) -> Task<std::vector<int>> {
    std::vector<std::function<Task<int>(Cx&)>> work;
    for (int i = 0; i < 5; ++i) {
      work.push_back([i](Cx& c) -> Task<int> {
        (void)co_await c.sleep(Duration::Milliseconds(5 - i));  // finish in reverse order
        co_return i* i;
      });
    }
    auto joined = join_all(cx, std::move(work));
    std::vector<Outcome<int>> outcomes = co_await std::move(joined);
    std::vector<int> values;
    for (Outcome<int>& each : outcomes) values.push_back(each.value());
    co_return values;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_THAT(outcome.value(), ElementsAre(0, 1, 4, 9, 16));
}

// SPEC 7.1, 4.1, 1 (no orphans): cancelling the caller while join_all waits cancels every task
// (ParentCancelled, caused by the caller's reason) and join_all returns only when all of them
// are drained.
TEST(JoinAllTest, CancelledCallerDrainsEveryTaskBeforeReturning) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto drained = std::make_shared<std::vector<std::shared_ptr<bool>>>();
    for (int i = 0; i < 3; ++i) drained->push_back(std::make_shared<bool>(false));
    auto checked = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [drained, checked](Cx& cx) -> Task<void> {
      auto caller = cx.spawn("caller", [drained, checked](Cx& c) -> Task<void> {
        auto sleeper = [](std::shared_ptr<bool> flag) {
          return [flag](Cx& t) -> Task<int> {
            DrainedFlag guard{flag};
            absl::Status slept = co_await t.sleep(Duration::Seconds(3600));
            co_return slept.ok() ? 1 : -1;
          };
        };
        auto joined =
            join_all(c, sleeper((*drained)[0]), sleeper((*drained)[1]), sleeper((*drained)[2]));
        auto [a, b, d] = co_await std::move(joined);
        for (bool* flag : {(*drained)[0].get(), (*drained)[1].get(), (*drained)[2].get()}) {
          EXPECT_TRUE(*flag) << "a task outlived join_all";
        }
        for (const Outcome<int>* each : {&a, &b, &d}) {
          CO_ASSERT_TRUE(each->is_cancelled(), each->to_string())
          EXPECT_EQ(each->cancel_reason().kind(), CancelKind::kParentCancelled);
          CO_ASSERT_TRUE(each->cancel_reason().cause() != nullptr, "")
          EXPECT_EQ(each->cancel_reason().cause()->message(), "stop");
        }
        EXPECT_EQ(now_of(c), at(5));  // woken by the request, not by the hour-long sleeps
        *checked = true;
      });
      (void)co_await cx.sleep(Duration::Milliseconds(5));
      caller->cancel("stop");
    });
    EXPECT_TRUE(*checked) << "seed " << seed;
    SUCCEED() << outcome.to_string();
  }
}

// SPEC 2.5, 7.1: a request already deliverable on entry returns Cancelled and starts nothing.
TEST(JoinAllTest, CancelledOnEntryStartsNothing) {
  auto started = std::make_shared<bool>(false);
  auto outcome = run_lab(2, [started](Cx& cx) -> Task<void> {
    cx.cancel_region("already stopping");
    auto joined = join_all(cx, [started](Cx&) -> Task<int> {
      *started = true;
      co_return 1;
    });
    auto [only] = co_await std::move(joined);
    EXPECT_TRUE(only.is_cancelled()) << only.to_string();
    EXPECT_EQ(only.cancel_reason().message(), "already stopping");
  });
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
  EXPECT_FALSE(*started);
}

// SPEC 3.2: a task whose region's body already returned cannot open the private region; the
// combinator says so with RegionClosed instead of starting anything.
TEST(JoinAllTest, InClosingRegionIsRegionClosed) {
  auto checked = std::make_shared<bool>(false);
  auto outcome = run_lab(3, [checked](Cx& cx) -> Task<void> {
    (void)cx.spawn("late", [checked](Cx& c) -> Task<void> {
      (void)co_await c.yield();  // the body below has returned by now: the region is Closing
      auto joined = join_all(c, [](Cx&) -> Task<int> { co_return 1; });
      auto [only] = co_await std::move(joined);
      EXPECT_TRUE(only.is_err());
      EXPECT_TRUE(is_region_closed(only.status())) << only.to_string();
      *checked = true;
    });
    co_return;
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_TRUE(*checked);
}

// SPEC 11.1: a deadlock inside a combinator is reported by the lab like any other, and torn
// down cleanly: the caller waits on a region close, which the teardown never destroys (a region
// body parked on a join would be destroyed with its region's tasks still live, and abort).
TEST(JoinAllTest, DeadlockInsideIsReportedNotFatal) {
  auto self = std::make_shared<TaskHandle<void>>();  // a task that joins itself
  lab::LabRuntime runtime(lab::LabOptions{.seed = 11});
  auto outcome = runtime.run([self](Cx& cx) -> Task<void> {
    auto joined = join_all(cx, [self](Cx& c) -> Task<int> {
      auto stuck = c.spawn("stuck", [self](Cx& s) -> Task<void> {
        (void)co_await s.yield();
        (void)co_await self->join(s);
      });
      *self = std::move(stuck).value();
      (void)co_await self->join(c);
      co_return 1;
    });
    auto [only] = co_await std::move(joined);
    EXPECT_TRUE(only.is_cancelled()) << only.to_string();  // destroyed by the teardown
  });
  *self = TaskHandle<void>();  // break the cycle (the task's callable holds `self`)
  EXPECT_TRUE(runtime.report().deadlocked);
  ASSERT_TRUE(outcome.is_err()) << outcome.to_string();
  EXPECT_THAT(std::string(outcome.status().message()), HasSubstr("task 'stuck'"));
  EXPECT_THAT(runtime.report().violations, IsEmpty());
}

// ----- race ----------------------------------------------------------------------------------

// A contestant that sleeps `delay`, returns `value`, and on cancellation records the request's
// text and registers a finalizer on the race region before it ends.
std::function<Task<int>(Cx&)> sleeper(int64_t delay_ms, int value, std::shared_ptr<bool> drained,
                                      std::shared_ptr<bool> finalized,
                                      std::shared_ptr<std::string> cancel_text) {
  return [=](Cx& cx) -> Task<int> {
    DrainedFlag guard{drained};
    EXPECT_TRUE(cx.defer([finalized] { *finalized = true; }).ok());
    absl::Status slept = co_await cx.sleep(Duration::Milliseconds(delay_ms));
    if (!slept.ok()) {
      *cancel_text = std::string(slept.message());
      co_return -1;
    }
    co_return value;
  };
}

// SPEC 7.1, 11.3 (race losers drained): the first to finish wins; every loser is cancelled
// with RaceLost and has finished, and the finalizers it registered have run, before race
// returns; race returns when the winner finishes (5 ms), not when the losers would have.
TEST(RaceTest, LosersAreCancelledWithRaceLostAndDrainedBeforeReturn) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    std::vector<std::shared_ptr<bool>> drained, finalized;
    std::vector<std::shared_ptr<std::string>> texts;
    for (int i = 0; i < 3; ++i) {
      drained.push_back(std::make_shared<bool>(false));
      finalized.push_back(std::make_shared<bool>(false));
      texts.push_back(std::make_shared<std::string>());
    }
    auto outcome = run_lab(seed, [=](Cx& cx) -> Task<void> {
      auto raced = race(cx, sleeper(20, 2, drained[2], finalized[2], texts[2]),
                        sleeper(5, 0, drained[0], finalized[0], texts[0]),
                        sleeper(10, 1, drained[1], finalized[1], texts[1]));
      RaceResult<int> result = co_await std::move(raced);
      CO_ASSERT_TRUE(result.winner_index == 1u, "")
      EXPECT_EQ(result.outcome.value(), 0);
      EXPECT_THAT(result.loser_panics, IsEmpty());
      for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(*drained[i]) << "contestant " << i << " outlived race";
        EXPECT_TRUE(*finalized[i]) << "finalizer of contestant " << i << " did not run";
      }
      EXPECT_THAT(*texts[2], HasSubstr("RaceLost"));
      EXPECT_THAT(*texts[1], HasSubstr("RaceLost"));
      EXPECT_THAT(*texts[0], IsEmpty());  // the winner was not cancelled
      EXPECT_EQ(now_of(cx), at(5));
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 7.1: with contestants that finish at the same virtual instant, the schedule decides the
// winner; there is always exactly one, and every other one is drained. Different seeds explore
// different winners.
TEST(RaceTest, ExactlyOneWinnerWhateverTheInterleaving) {
  std::set<size_t> winners;
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto finished = std::make_shared<int>(0);
    auto outcome = run_lab(seed, [finished](Cx& cx) -> Task<size_t> {
      std::vector<std::function<Task<size_t>(Cx&)>> contestants;
      for (size_t i = 0; i < 4; ++i) {
        contestants.push_back([i, finished](Cx& c) -> Task<size_t> {
          DrainedFlag guard{std::make_shared<bool>()};
          for (int step = 0; step < 3; ++step) {
            if (absl::Status s = co_await c.yield(); !s.ok()) {
              ++*finished;
              co_return 100 + i;  // a loser's value is discarded
            }
          }
          ++*finished;
          co_return i;
        });
      }
      auto raced = race(cx, std::move(contestants));
      RaceResult<size_t> result = co_await std::move(raced);
      EXPECT_EQ(*finished, 4) << "a contestant outlived race";
      EXPECT_TRUE(result.winner_index.has_value());
      EXPECT_EQ(result.outcome.value(), *result.winner_index);
      co_return *result.winner_index;
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    winners.insert(outcome.value());
  }
  EXPECT_EQ(winners.size(), 4u);
}

// SPEC 7.1: a loser that panics while draining is reported even though the winner succeeded;
// joined() folds it into a Panicked outcome (SPEC 1.3).
TEST(RaceTest, LoserPanicIsReportedEvenWhenTheWinnerSucceeds) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto outcome = run_lab(seed, [](Cx& cx) -> Task<void> {
      auto raced = race(
          cx,
          [](Cx& c) -> Task<int> {
            (void)co_await c.sleep(Duration::Milliseconds(1));
            co_return 1;
          },
          [](Cx& c) -> Task<int> {
            absl::Status slept = co_await c.sleep(Duration::Milliseconds(10));
            if (!slept.ok()) throw std::runtime_error("cleanup failed");
            co_return 2;
          });
      RaceResult<int> result = co_await std::move(raced);
      EXPECT_EQ(result.winner_index, 0u);
      EXPECT_EQ(result.outcome.value(), 1);
      CO_ASSERT_TRUE(result.loser_panics.size() == 1u, "")
      EXPECT_EQ(result.loser_panics[0].index, 1u);
      EXPECT_EQ(result.loser_panics[0].panic.message, "cleanup failed");
      Outcome<int> joined = std::move(result).joined();
      EXPECT_TRUE(joined.is_panicked());
      EXPECT_EQ(joined.panic_info().message, "cleanup failed");
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 7.1, 4.1: cancelling the caller while it races cancels and drains every contestant,
// then race returns Cancelled with the caller's own reason.
TEST(RaceTest, CancelledCallerCancelsAndDrainsAllContestants) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    std::vector<std::shared_ptr<bool>> drained, finalized;
    std::vector<std::shared_ptr<std::string>> texts;
    for (int i = 0; i < 2; ++i) {
      drained.push_back(std::make_shared<bool>(false));
      finalized.push_back(std::make_shared<bool>(false));
      texts.push_back(std::make_shared<std::string>());
    }
    auto checked = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [=](Cx& cx) -> Task<void> {
      auto caller = cx.spawn("caller", [=](Cx& c) -> Task<void> {
        auto raced = race(c, sleeper(10, 0, drained[0], finalized[0], texts[0]),
                          sleeper(20, 1, drained[1], finalized[1], texts[1]));
        RaceResult<int> result = co_await std::move(raced);
        EXPECT_FALSE(result.winner_index.has_value());
        CO_ASSERT_TRUE(result.outcome.is_cancelled(), result.outcome.to_string())
        EXPECT_EQ(result.outcome.cancel_reason().kind(), CancelKind::kUser);
        EXPECT_EQ(result.outcome.cancel_reason().message(), "stop");
        for (int i = 0; i < 2; ++i) {
          EXPECT_TRUE(*drained[i]) << "contestant " << i << " outlived race";
          EXPECT_TRUE(*finalized[i]);
          EXPECT_THAT(*texts[i], HasSubstr("ParentCancelled"));
        }
        EXPECT_EQ(now_of(c), at(3));
        *checked = true;
      });
      (void)co_await cx.sleep(Duration::Milliseconds(3));
      caller->cancel("stop");
    });
    EXPECT_TRUE(*checked) << "seed " << seed;
    SUCCEED() << outcome.to_string();
  }
}

// SPEC 4.5, 7.1: a loser that ignores its RaceLost request is destroyed once its cleanup budget
// (RaceLost: 200 polls) is spent, still before race returns.
TEST(RaceTest, StubbornLoserIsEscalatedBeforeRaceReturns) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto destroyed = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [destroyed](Cx& cx) -> Task<void> {
      auto raced = race(
          cx,
          [](Cx& c) -> Task<int> {
            for (int i = 0; i < 3; ++i) (void)co_await c.yield();
            co_return 1;
          },
          [destroyed](Cx& c) -> Task<int> {
            DrainedFlag guard{destroyed};
            while (true) (void)co_await c.yield();  // ignores every Cancelled status
          });
      RaceResult<int> result = co_await std::move(raced);
      EXPECT_EQ(result.winner_index, 0u);
      EXPECT_TRUE(*destroyed) << "the stubborn loser outlived race";
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 7.1 (documented choice): the first to finish wins whatever its outcome, Err included.
TEST(RaceTest, FirstToFinishWinsEvenWithErr) {
  auto outcome = run_lab(4, [](Cx& cx) -> Task<void> {
    auto raced = race(
        cx,
        [](Cx& c) -> Task<absl::StatusOr<int>> {
          (void)co_await c.sleep(Duration::Milliseconds(2));
          co_return 2;
        },
        [](Cx& c) -> Task<absl::StatusOr<int>> {
          (void)co_await c.sleep(Duration::Milliseconds(1));
          co_return absl::UnavailableError("replica down");
        });
    RaceResult<absl::StatusOr<int>> result = co_await std::move(raced);
    EXPECT_EQ(result.winner_index, 1u);
    EXPECT_TRUE(result.outcome.is_err());
    EXPECT_THAT(std::string(result.outcome.status().message()), HasSubstr("replica down"));
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 13: a race of nothing is a clear error, not a hang.
TEST(RaceTest, EmptyRaceIsInvalidArgument) {
  auto outcome = run_lab(5, [](Cx& cx) -> Task<void> {
    auto raced = race(cx, std::vector<std::function<Task<int>(Cx&)>>{});
    RaceResult<int> result = co_await std::move(raced);
    EXPECT_FALSE(result.winner_index.has_value());
    EXPECT_EQ(result.outcome.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(result.outcome.status().message()), HasSubstr("no contestants"));
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 2.4: without the Spawn capability nothing can race; the error names the capability.
TEST(RaceTest, WithoutSpawnCapabilityIsPermissionDenied) {
  auto outcome = run_lab(6, [](Cx& cx) -> Task<void> {
    Cx narrowed = cx.restrict(Capability::kTime);
    auto raced = race(narrowed, [](Cx&) -> Task<int> { co_return 1; });
    RaceResult<int> result = co_await std::move(raced);
    EXPECT_EQ(result.outcome.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(result.outcome.status().message()), HasSubstr("Spawn capability"));
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// ----- timeout -------------------------------------------------------------------------------

// SPEC 7.1, 4.7: on expiry the work is cancelled with kind Timeout and drained before timeout
// returns Err(DeadlineExceeded) naming the duration.
TEST(TimeoutTest, FiresCancelsAndDrainsTheWork) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto drained = std::make_shared<bool>(false);
    auto finalized = std::make_shared<bool>(false);
    auto text = std::make_shared<std::string>();
    auto outcome = run_lab(seed, [=](Cx& cx) -> Task<void> {
      auto bounded =
          timeout(cx, Duration::Milliseconds(10), sleeper(3'600'000, 1, drained, finalized, text));
      Outcome<int> result = co_await std::move(bounded);
      CO_ASSERT_TRUE(result.is_err(), result.to_string())
      EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
      EXPECT_TRUE(is_timeout_expired(result.status()));
      EXPECT_THAT(std::string(result.status().message()), HasSubstr("within 10ms"));
      EXPECT_TRUE(*drained) << "the work outlived timeout";
      EXPECT_TRUE(*finalized);
      EXPECT_THAT(*text, HasSubstr("Timeout"));
      EXPECT_EQ(now_of(cx), at(10));
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 7.1, 6.4: work that finishes in time returns its own outcome at once; the timer is
// cancelled and its timer removed (the run ends at 5 ms, not at the 10 ms deadline).
TEST(TimeoutTest, NotFiringReturnsTheWorkOutcome) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
    auto outcome = runtime.run([](Cx& cx) -> Task<int> {
      auto bounded = timeout(cx, Duration::Milliseconds(10), [](Cx& c) -> Task<int> {
        (void)co_await c.sleep(Duration::Milliseconds(5));
        co_return 42;
      });
      Outcome<int> result = co_await std::move(bounded);
      EXPECT_EQ(now_of(cx), at(5));
      co_return result.value();
    });
    EXPECT_THAT(runtime.report().violations, IsEmpty());
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_EQ(outcome.value(), 42);
    EXPECT_EQ(runtime.report().end_time, at(5)) << "the timer was not removed";
  }
}

// SPEC 7.1: an Err of the work itself is returned as is, and is not mistaken for the timeout.
TEST(TimeoutTest, WorkErrIsNotATimeout) {
  auto outcome = run_lab(7, [](Cx& cx) -> Task<void> {
    auto bounded = timeout(cx, Duration::Milliseconds(10), [](Cx& c) -> Task<absl::Status> {
      (void)co_await c.sleep(Duration::Milliseconds(1));
      co_return absl::DeadlineExceededError("upstream deadline");
    });
    Outcome<absl::Status> result = co_await std::move(bounded);
    CO_ASSERT_TRUE(result.is_err(), "")
    EXPECT_FALSE(is_timeout_expired(result.status()));
    EXPECT_EQ(result.status().message(), "upstream deadline");
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 7.1, 2.3: work that panics while it drains after the timeout makes the result Panicked.
TEST(TimeoutTest, WorkPanickingWhileDrainingIsPanicked) {
  auto outcome = run_lab(8, [](Cx& cx) -> Task<void> {
    auto bounded = timeout(cx, Duration::Milliseconds(1), [](Cx& c) -> Task<int> {
      absl::Status slept = co_await c.sleep(Duration::Seconds(1));
      if (!slept.ok()) throw std::runtime_error("rollback failed");
      co_return 1;
    });
    Outcome<int> result = co_await std::move(bounded);
    CO_ASSERT_TRUE(result.is_panicked(), result.to_string())
    EXPECT_EQ(result.panic_info().message, "rollback failed");
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 2.4: timeout needs the Time capability and says so before starting anything.
TEST(TimeoutTest, WithoutTimeCapabilityIsPermissionDenied) {
  auto started = std::make_shared<bool>(false);
  auto outcome = run_lab(9, [started](Cx& cx) -> Task<void> {
    Cx narrowed = cx.restrict(Capability::kSpawn);
    auto bounded = timeout(narrowed, Duration::Milliseconds(1), [started](Cx&) -> Task<int> {
      *started = true;
      co_return 1;
    });
    Outcome<int> result = co_await std::move(bounded);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(result.status().message()), HasSubstr("Time capability"));
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_FALSE(*started);
}

// SPEC 7.1, 4.1: a caller cancelled while its timeout runs gets Cancelled, after the work
// drained.
TEST(TimeoutTest, CancelledCallerDrainsTheWork) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto drained = std::make_shared<bool>(false);
    auto finalized = std::make_shared<bool>(false);
    auto text = std::make_shared<std::string>();
    auto checked = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [=](Cx& cx) -> Task<void> {
      auto caller = cx.spawn("caller", [=](Cx& c) -> Task<void> {
        auto bounded =
            timeout(c, Duration::Milliseconds(50), sleeper(100, 1, drained, finalized, text));
        Outcome<int> result = co_await std::move(bounded);
        CO_ASSERT_TRUE(result.is_cancelled(), result.to_string())
        EXPECT_EQ(result.cancel_reason().message(), "stop");
        EXPECT_TRUE(*drained);
        EXPECT_EQ(now_of(c), at(2));
        *checked = true;
      });
      (void)co_await cx.sleep(Duration::Milliseconds(2));
      caller->cancel("stop");
    });
    EXPECT_TRUE(*checked) << "seed " << seed;
    SUCCEED() << outcome.to_string();
  }
}

// Combinators compose: a timeout inside a race contestant, a race inside join_all.
TEST(CombinatorTest, Compose) {
  auto outcome = run_lab(10, [](Cx& cx) -> Task<int> {
    auto joined = join_all(
        cx,
        [](Cx& c) -> Task<int> {
          auto raced = race(
              c,
              [](Cx& r) -> Task<int> {
                auto bounded = timeout(r, Duration::Milliseconds(3), [](Cx& w) -> Task<int> {
                  (void)co_await w.sleep(Duration::Milliseconds(100));
                  co_return 100;
                });
                Outcome<int> result = co_await std::move(bounded);
                co_return result.ok() ? result.value() : -1;
              },
              [](Cx& r) -> Task<int> {
                (void)co_await r.sleep(Duration::Milliseconds(5));
                co_return 5;
              });
          RaceResult<int> result = co_await std::move(raced);
          co_return result.outcome.value();
        },
        [](Cx& c) -> Task<int> {
          (void)co_await c.sleep(Duration::Milliseconds(4));
          co_return 4;
        });
    auto [first, second] = co_await std::move(joined);
    // The timeout expires at 3 ms, so its contestant finishes first (with -1).
    co_return first.value() * 10 + second.value();
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), -10 + 4);
}

}  // namespace
}  // namespace asupersync
