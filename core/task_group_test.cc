// TaskGroup (SPEC 7.1) on the deterministic lab runtime. Tests sensitive to interleaving run over
// kSeeds seeds; the lab's oracles (SPEC 11.3) are checked after each run.
//
// GCC 12 workaround (core/README.md): every awaited Task is named first, and no lambda
// temporary appears inside a co_await expression.

#include "core/task_group.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
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

template <typename F>
auto run_lab(uint64_t seed, F main) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
  auto outcome = runtime.run(std::move(main));
  EXPECT_THAT(runtime.report().violations, IsEmpty()) << "seed " << seed;
  EXPECT_FALSE(runtime.report().deadlocked) << runtime.report().deadlock_report;
  return outcome;
}

struct DrainedFlag {
  std::shared_ptr<bool> flag;
  ~DrainedFlag() { *flag = true; }
};

Time now_of(Cx& cx) { return cx.now().value(); }
Time at(int64_t milliseconds) { return Time::Epoch() + Duration::Milliseconds(milliseconds); }

// A member that sleeps `delay_ms` and returns it.
auto sleeps(int64_t delay_ms) {
  return [delay_ms](Cx& cx) -> Task<int> {
    absl::Status slept = co_await cx.sleep(Duration::Milliseconds(delay_ms));
    co_return slept.ok() ? static_cast<int>(delay_ms) : -1;
  };
}

// SPEC 7.1: join_next returns members in completion order, each as soon as it finishes (virtual
// time proves there is no extra delay), then OutOfRange once none is left.
TEST(TaskGroupTest, JoinNextReturnsMembersInCompletionOrder) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto outcome = run_lab(seed, [](Cx& cx) -> Task<void> {
      TaskGroup<int> group(cx, "sleepers");
      EXPECT_TRUE(group.spawn("slow", sleeps(30)).ok());
      EXPECT_TRUE(group.spawn("fast", sleeps(10)).ok());
      EXPECT_TRUE(group.spawn("middle", sleeps(20)).ok());
      EXPECT_EQ(group.size(), 3u);
      std::vector<std::string> order;
      for (int i = 0; i < 3; ++i) {
        auto next = group.join_next(cx);
        Outcome<JoinedTask<int>> joined = co_await std::move(next);
        CO_ASSERT_TRUE(joined.ok(), joined.status());
        EXPECT_EQ(now_of(cx), at(joined.value().outcome.value()));
        order.push_back(joined.value().name);
      }
      EXPECT_THAT(order, ElementsAre("fast", "middle", "slow"));
      EXPECT_TRUE(group.empty());
      auto after = group.join_next(cx);
      Outcome<JoinedTask<int>> none = co_await std::move(after);
      EXPECT_EQ(none.status().code(), absl::StatusCode::kOutOfRange);
      EXPECT_THAT(std::string(none.status().message()), HasSubstr("no member is left"));
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 7.1: members finishing at the same instant are all returned, each exactly once, in the
// order the schedule finished them.
TEST(TaskGroupTest, SimultaneousFinishesAreEachReturnedOnce) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto outcome = run_lab(seed, [](Cx& cx) -> Task<void> {
      TaskGroup<int> group(cx);
      auto finish_order = std::make_shared<std::vector<int>>();
      for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(group
                        .spawn("member",
                               [i, finish_order](Cx& c) -> Task<int> {
                                 for (int k = 0; k < i % 3; ++k) (void)co_await c.yield();
                                 finish_order->push_back(i);
                                 co_return i;
                               })
                        .ok());
      }
      std::vector<int> joined_order;
      while (!group.empty()) {
        auto next = group.join_next(cx);
        Outcome<JoinedTask<int>> joined = co_await std::move(next);
        CO_ASSERT_TRUE(joined.ok(), joined.status());
        joined_order.push_back(joined.value().outcome.value());
      }
      EXPECT_EQ(joined_order, *finish_order);
      EXPECT_EQ(joined_order.size(), 5u);
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 2.5, 7.1: join_next is a cancellation point that consumes nothing: a cancelled
// join_next returns Cancelled with the caller's reason, and the member is still there for the
// next call.
TEST(TaskGroupTest, CancelledJoinNextConsumesNothing) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto checked = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [checked](Cx& cx) -> Task<void> {
      auto owner = cx.spawn("owner", [checked](Cx& c) -> Task<void> {
        TaskGroup<int> group(c);
        EXPECT_TRUE(group.spawn("member", sleeps(10)).ok());
        auto first = group.join_next(c);
        Outcome<JoinedTask<int>> cancelled = co_await std::move(first);
        CO_ASSERT_TRUE(cancelled.is_cancelled(), cancelled.to_string());
        EXPECT_EQ(cancelled.cancel_reason().message(), "stop");
        EXPECT_EQ(now_of(c), at(5));
        EXPECT_EQ(group.size(), 1u);
        // Shielded, the wait runs to the end: the member was not consumed.
        absl::StatusOr<ShieldGuard> shield = c.shield();
        auto second = group.join_next(c);
        Outcome<JoinedTask<int>> joined = co_await std::move(second);
        CO_ASSERT_TRUE(joined.ok(), joined.to_string());
        EXPECT_EQ(joined.value().outcome.value(), 10);
        EXPECT_EQ(now_of(c), at(10));
        *checked = true;
      });
      (void)co_await cx.sleep(Duration::Milliseconds(5));
      owner->cancel("stop");
      (void)co_await cx.sleep(Duration::Milliseconds(20));
    });
    EXPECT_TRUE(*checked) << "seed " << seed;
    SUCCEED() << outcome.to_string();
  }
}

// SPEC 2.5, 7.1: a cancelled join_all consumes nothing either: members it had collected are
// returned by later calls, in the same order.
TEST(TaskGroupTest, CancelledJoinAllConsumesNothing) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto checked = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [checked](Cx& cx) -> Task<void> {
      auto owner = cx.spawn("owner", [checked](Cx& c) -> Task<void> {
        TaskGroup<int> group(c);
        EXPECT_TRUE(group.spawn("a", sleeps(4)).ok());
        EXPECT_TRUE(group.spawn("b", sleeps(2)).ok());
        EXPECT_TRUE(group.spawn("c", sleeps(15)).ok());
        auto all = group.join_all(c);
        Outcome<std::vector<JoinedTask<int>>> cancelled = co_await std::move(all);
        CO_ASSERT_TRUE(cancelled.is_cancelled(), cancelled.to_string());
        EXPECT_EQ(group.size(), 3u);
        absl::StatusOr<ShieldGuard> shield = c.shield();
        std::vector<std::string> order;
        while (!group.empty()) {
          auto next = group.join_next(c);
          Outcome<JoinedTask<int>> joined = co_await std::move(next);
          CO_ASSERT_TRUE(joined.ok(), joined.to_string());
          order.push_back(joined.value().name);
        }
        EXPECT_THAT(order, ElementsAre("b", "a", "c"));
        *checked = true;
      });
      (void)co_await cx.sleep(Duration::Milliseconds(10));
      owner->cancel("stop");
      (void)co_await cx.sleep(Duration::Milliseconds(20));
    });
    EXPECT_TRUE(*checked) << "seed " << seed;
    SUCCEED() << outcome.to_string();
  }
}

// SPEC 7.1, 1.3, 2.3, 3.5: join_all returns every member in spawn order with its own outcome;
// under CollectAll the failures do not cancel the others, and they count in the region's
// outcome (members are tasks of the region).
TEST(TaskGroupTest, JoinAllReturnsMixedOutcomesInSpawnOrder) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto outcome = run_lab(seed, [](Cx& cx) -> Task<void> {
      auto region = Region::open(
          cx, "collect",
          [](Cx& cx) -> Task<void> {
            TaskGroup<absl::StatusOr<int>> group(cx);
            EXPECT_TRUE(group
                            .spawn("ok",
                                   [](Cx& c) -> Task<absl::StatusOr<int>> {
                                     (void)co_await c.sleep(Duration::Milliseconds(3));
                                     co_return 3;
                                   })
                            .ok());
            EXPECT_TRUE(group
                            .spawn("err",
                                   [](Cx& c) -> Task<absl::StatusOr<int>> {
                                     (void)co_await c.sleep(Duration::Milliseconds(1));
                                     co_return absl::NotFoundError("missing");
                                   })
                            .ok());
            EXPECT_TRUE(group
                            .spawn("panic",
                                   [](Cx& c) -> Task<absl::StatusOr<int>> {
                                     (void)co_await c.yield();
                                     throw std::runtime_error("boom");
                                     co_return 0;
                                   })
                            .ok());
            auto all = group.join_all(cx);
            Outcome<std::vector<JoinedTask<absl::StatusOr<int>>>> joined = co_await std::move(all);
            CO_ASSERT_TRUE(joined.ok(), joined.to_string());
            const auto& members = joined.value();
            CO_ASSERT_TRUE(members.size() == 3u, members.size());
            EXPECT_EQ(members[0].name, "ok");
            EXPECT_EQ(members[0].outcome.value().value(), 3);
            EXPECT_EQ(members[1].name, "err");
            EXPECT_TRUE(members[1].outcome.is_err());
            EXPECT_EQ(members[2].name, "panic");
            EXPECT_TRUE(members[2].outcome.is_panicked());
            EXPECT_EQ(members[2].outcome.panic_info().message, "boom");
            EXPECT_NE(members[0].task_id, members[1].task_id);
            EXPECT_EQ(now_of(cx), at(3));
          },
          RegionOptions{.failure_policy = FailurePolicy::kCollectAll});
      Outcome<void> closed = co_await std::move(region);
      EXPECT_TRUE(closed.is_panicked()) << closed.to_string();
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 3.5: members are tasks of the region, so its default FailFast policy applies: a member's
// Err cancels the other members (FailFast) and the body, whose join_all returns Cancelled; the
// outcomes stay in the group.
TEST(TaskGroupTest, MemberErrUnderFailFastCancelsTheOthers) {
  auto outcome = run_lab(1, [](Cx& cx) -> Task<void> {
    TaskGroup<absl::Status> group(cx);
    EXPECT_TRUE(group
                    .spawn("failing",
                           [](Cx& c) -> Task<absl::Status> {
                             (void)co_await c.sleep(Duration::Milliseconds(1));
                             co_return absl::InternalError("disk full");
                           })
                    .ok());
    EXPECT_TRUE(group
                    .spawn("sibling",
                           [](Cx& c) -> Task<absl::Status> {
                             co_return co_await c.sleep(Duration::Seconds(10));
                           })
                    .ok());
    auto all = group.join_all(cx);
    Outcome<std::vector<JoinedTask<absl::Status>>> joined = co_await std::move(all);
    EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    EXPECT_EQ(joined.cancel_reason().kind(), CancelKind::kFailFast);
    absl::StatusOr<ShieldGuard> shield = cx.shield();
    auto rest = group.join_all(cx);
    Outcome<std::vector<JoinedTask<absl::Status>>> members = co_await std::move(rest);
    CO_ASSERT_TRUE(members.ok() && members.value().size() == 2u, members.to_string());
    EXPECT_TRUE(members.value()[0].outcome.is_err());
    EXPECT_TRUE(members.value()[1].outcome.is_cancelled());
    EXPECT_EQ(members.value()[1].outcome.cancel_reason().kind(), CancelKind::kFailFast);
    EXPECT_LT(now_of(cx), at(10));
  });
  EXPECT_TRUE(outcome.is_err()) << outcome.to_string();
}

// SPEC 7.1, 4.3, 4.5: cancel_all requests cancellation of every member and returns only when
// all have finished: the cooperative ones drained, the one ignoring the request destroyed once
// its cleanup budget ran out.
TEST(TaskGroupTest, CancelAllDrainsEveryMember) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    std::vector<std::shared_ptr<bool>> drained;
    for (int i = 0; i < 4; ++i) drained.push_back(std::make_shared<bool>(false));
    auto outcome = run_lab(seed, [drained](Cx& cx) -> Task<void> {
      TaskGroup<int> group(cx, "workers");
      for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(group
                        .spawn("cooperative",
                               [flag = drained[i]](Cx& c) -> Task<int> {
                                 DrainedFlag guard{flag};
                                 absl::Status slept = co_await c.sleep(Duration::Seconds(3600));
                                 co_return slept.ok() ? 1 : -1;
                               })
                        .ok());
      }
      EXPECT_TRUE(group
                      .spawn("stubborn",
                             [flag = drained[3]](Cx& c) -> Task<int> {
                               DrainedFlag guard{flag};
                               absl::StatusOr<ShieldGuard> shield = c.shield();
                               while (true) (void)co_await c.sleep(Duration::Milliseconds(1));
                             })
                      .ok());
      (void)co_await cx.sleep(Duration::Milliseconds(5));
      auto cancelling =
          group.cancel_all(cx, "shutting down", Budget::Infinite().with_poll_quota(3));
      Outcome<std::vector<JoinedTask<int>>> cancelled = co_await std::move(cancelling);
      CO_ASSERT_TRUE(cancelled.ok() && cancelled.value().size() == 4u, cancelled.to_string());
      for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(*drained[i]) << "member " << i << " outlived cancel_all";
        const JoinedTask<int>& member = cancelled.value()[i];
        EXPECT_TRUE(member.outcome.is_cancelled()) << member.outcome.to_string();
        EXPECT_EQ(member.outcome.cancel_reason().message(), "shutting down");
        EXPECT_EQ(member.budget_exhausted, i == 3) << member.name;
      }
      EXPECT_TRUE(group.empty());
      EXPECT_LT(now_of(cx), at(20));
    });
    // Members cancelled through their handles count as Cancelled (core/README.md).
    EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string() << " seed " << seed;
  }
}

// SPEC 3.2: spawning into a group whose region is closing fails with RegionClosed.
TEST(TaskGroupTest, SpawnIntoClosingRegionIsRegionClosed) {
  auto outcome = run_lab(2, [](Cx& cx) -> Task<void> {
    TaskGroup<int> group(cx);
    EXPECT_TRUE(group.spawn("before", sleeps(1)).ok());
    cx.cancel_region("closing");
    absl::StatusOr<TaskId> refused = group.spawn("after", sleeps(1));
    EXPECT_TRUE(is_region_closed(refused.status())) << refused.status();
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("Closing"));
    EXPECT_EQ(group.size(), 1u);
    co_return;
  });
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 3.2, 7.1: a group owned by a task whose region's body has returned can no longer spawn
// (RegionClosed) and cannot open waiting regions; join_next still returns its members in
// completion order (waiting on the oldest running one).
TEST(TaskGroupTest, OwnerInClosingRegionStillJoinsInCompletionOrder) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto checked = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [checked](Cx& cx) -> Task<void> {
      (void)cx.spawn("owner", [checked](Cx& c) -> Task<void> {
        TaskGroup<int> group(c);
        EXPECT_TRUE(group.spawn("slow", sleeps(30)).ok());
        EXPECT_TRUE(group.spawn("fast", sleeps(10)).ok());
        (void)co_await c.sleep(Duration::Milliseconds(2));  // the body has returned by now
        absl::StatusOr<TaskId> refused = group.spawn("late", sleeps(1));
        EXPECT_TRUE(is_region_closed(refused.status())) << refused.status();
        std::vector<std::string> order;
        while (!group.empty()) {
          auto next = group.join_next(c);
          Outcome<JoinedTask<int>> joined = co_await std::move(next);
          CO_ASSERT_TRUE(joined.ok(), joined.to_string());
          order.push_back(joined.value().name);
        }
        EXPECT_THAT(order, ElementsAre("fast", "slow"));
        *checked = true;
      });
      (void)co_await cx.sleep(Duration::Milliseconds(1));
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_TRUE(*checked) << "seed " << seed;
  }
}

// SPEC 2.2, 1 (no orphans): destroying a group cancels its running members without waiting;
// the region waits for them to drain.
TEST(TaskGroupTest, DestroyingTheGroupCancelsRunningMembers) {
  auto drained = std::make_shared<bool>(false);
  auto text = std::make_shared<std::string>();
  lab::LabRuntime runtime(lab::LabOptions{.seed = 3});
  auto outcome = runtime.run([drained, text](Cx& cx) -> Task<void> {
    TaskGroup<void> group(cx, "background");
    EXPECT_TRUE(group
                    .spawn("sleeper",
                           [drained, text](Cx& c) -> Task<void> {
                             DrainedFlag guard{drained};
                             absl::Status slept = co_await c.sleep(Duration::Seconds(3600));
                             *text = std::string(slept.message());
                           })
                    .ok());
    (void)co_await cx.sleep(Duration::Milliseconds(1));
  });
  EXPECT_THAT(runtime.report().violations, IsEmpty());
  EXPECT_TRUE(*drained);
  EXPECT_THAT(*text, HasSubstr("TaskGroup 'background' was destroyed with 1 member(s)"));
  EXPECT_EQ(runtime.report().end_time, at(1));
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 2.3: a member's panic reaches both the group (join_next) and the region.
TEST(TaskGroupTest, MemberPanicReachesGroupAndRegion) {
  auto outcome = run_lab(4, [](Cx& cx) -> Task<void> {
    TaskGroup<void> group(cx);
    EXPECT_TRUE(group
                    .spawn("thrower",
                           [](Cx& c) -> Task<void> {
                             (void)co_await c.yield();
                             throw std::runtime_error("member exploded");
                             co_return;
                           })
                    .ok());
    absl::StatusOr<ShieldGuard> shield = cx.shield();  // FailFast cancels the body too
    auto next = group.join_next(cx);
    Outcome<JoinedTask<void>> joined = co_await std::move(next);
    CO_ASSERT_TRUE(joined.ok(), joined.to_string());
    EXPECT_TRUE(joined.value().outcome.is_panicked());
    EXPECT_EQ(joined.value().outcome.panic_info().message, "member exploded");
  });
  ASSERT_TRUE(outcome.is_panicked()) << outcome.to_string();
  EXPECT_EQ(outcome.panic_info().message, "member exploded");
}

// A group has one wait at a time; a second one is a clear error, not a hang.
TEST(TaskGroupTest, SecondConcurrentWaitIsFailedPrecondition) {
  auto outcome = run_lab(5, [](Cx& cx) -> Task<void> {
    TaskGroup<int> group(cx);
    EXPECT_TRUE(group.spawn("member", sleeps(5)).ok());
    auto intruder = cx.spawn("intruder", [&group](Cx& c) -> Task<void> {
      (void)co_await c.sleep(Duration::Milliseconds(1));
      auto next = group.join_next(c);
      Outcome<JoinedTask<int>> refused = co_await std::move(next);
      EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(std::string(refused.status().message()), HasSubstr("already waiting"));
    });
    auto next = group.join_next(cx);
    Outcome<JoinedTask<int>> joined = co_await std::move(next);
    EXPECT_TRUE(joined.ok()) << joined.to_string();
    auto done = co_await intruder->join(cx);
    EXPECT_TRUE(done.ok());
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// Members run while the owner's region is Open, so they can use combinators.
TEST(TaskGroupTest, MembersCanUseCombinators) {
  auto outcome = run_lab(6, [](Cx& cx) -> Task<int> {
    TaskGroup<int> group(cx);
    EXPECT_TRUE(group
                    .spawn("bounded",
                           [](Cx& c) -> Task<int> {
                             auto bounded = timeout(c, Duration::Milliseconds(2), sleeps(50));
                             Outcome<int> result = co_await std::move(bounded);
                             co_return is_timeout_expired(result.status()) ? 2 : 0;
                           })
                    .ok());
    auto next = group.join_next(cx);
    Outcome<JoinedTask<int>> joined = co_await std::move(next);
    co_return joined.ok() && joined.value().outcome.ok() ? joined.value().outcome.value() : -1;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), 2);
}

}  // namespace
}  // namespace asupersync
