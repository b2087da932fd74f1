// Semantics of tasks, regions and cancellation on the deterministic lab runtime. Tests that are
// sensitive to interleaving run over many seeds; the lab's oracles are checked after each run.

#include "core/region.h"

#include <algorithm>
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

using ::testing::HasSubstr;

constexpr int kSeeds = 1000;

// Runs `main` on a fresh lab runtime with `seed` and checks the oracles.
template <typename F>
auto run_lab(uint64_t seed, F main) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
  auto outcome = runtime.run(std::move(main));
  EXPECT_THAT(runtime.report().violations, ::testing::IsEmpty()) << "seed " << seed;
  return outcome;
}

// SPEC 2.1, 2.2: spawn runs the callable with the child's own Cx; join yields its outcome.
TEST(TaskTest, SpawnAndJoinYieldValue) {
  auto outcome = run_lab(1, [](Cx& cx) -> Task<int> {
    auto handle = cx.spawn("child", [](Cx& child) -> Task<int> {
      EXPECT_NE(child.task_id(), TaskId());
      co_return 41;
    });
    EXPECT_TRUE(handle.ok());
    Outcome<int> joined = co_await handle->join(cx);
    co_return joined.value() + 1;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), 42);
}

// The callable's captures live as long as the task, even after the spawning scope ended (run
// under ASan this catches a dangling capture).
TEST(TaskTest, CapturedStateOutlivesSpawningScope) {
  auto outcome = run_lab(2, [](Cx& cx) -> Task<std::string> {
    TaskHandle<std::string> handle;
    {
      auto text = std::make_unique<std::string>("captured");
      auto spawned = cx.spawn("child", [text = std::move(text)](Cx& child) -> Task<std::string> {
        (void)co_await child.yield();
        (void)co_await child.sleep(Duration::Milliseconds(1));
        co_return *text + " and alive";
      });
      handle = std::move(spawned).value();
    }
    Outcome<std::string> joined = co_await handle.join(cx);
    co_return joined.value();
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), "captured and alive");
}

// Issue 3: a spawn is one allocation, the root frame in its record's block (from the second
// spawn of a callable type on, once its frame size is known). A callable that returns another
// function's coroutine gets a separate frame; one that throws before producing a coroutine
// frees its record and rethrows.
struct Doubler {
  int input;
  Task<int> operator()(Cx& cx) const {
    (void)co_await cx.yield();
    co_return input * 2;
  }
};
Task<int> add_one(Cx& cx, int value) {
  (void)co_await cx.yield();
  co_return value + 1;
}
struct Forwarder {
  int value;
  Task<int> operator()(Cx& cx) const { return add_one(cx, value); }
};
struct ThrowsBeforeItsCoroutine {
  Task<int> operator()(Cx&) const { throw std::runtime_error("no coroutine"); }
};

TEST(TaskTest, SpawnIsOneAllocationWithTheRootFrame) {
  auto outcome = run_lab(5, [](Cx& cx) -> Task<int> {
    std::vector<TaskHandle<int>> handles;
    for (int i = 0; i < 4; ++i) {
      auto doubled = cx.spawn("doubler", Doubler{i});
      auto forwarded = cx.spawn("forwarder", Forwarder{i});
      EXPECT_TRUE(doubled.ok() && forwarded.ok());
#if !defined(__clang__)  // clang 14 passes no object parameter to a member coroutine's new
      if (i > 0) {
        EXPECT_TRUE(doubled->runtime_record().frame_in_block) << i;
      }
#endif
      EXPECT_FALSE(forwarded->runtime_record().frame_in_block) << i;
      handles.push_back(std::move(doubled).value());
      handles.push_back(std::move(forwarded).value());
    }
    bool threw = false;
    try {
      (void)cx.spawn("thrower", ThrowsBeforeItsCoroutine{});
    } catch (const std::runtime_error& error) {
      threw = std::string(error.what()) == "no coroutine";
    }
    EXPECT_TRUE(threw);
    int sum = 0;
    for (TaskHandle<int>& handle : handles) {
      Outcome<int> joined = co_await handle.join(cx);
      sum += joined.value();
    }
    co_return sum;
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), (0 + 2 + 4 + 6) + (1 + 2 + 3 + 4));
}

// SPEC 2.2: destroying a handle neither cancels nor detaches; the region waits.
TEST(TaskTest, DroppedHandleTaskStillRunsAndRegionWaits) {
  auto finished = std::make_shared<bool>(false);
  auto outcome = run_lab(3, [finished](Cx& cx) -> Task<void> {
    (void)cx.spawn("background", [finished](Cx& child) -> Task<void> {
      (void)co_await child.sleep(Duration::Milliseconds(50));
      *finished = true;
    });
    co_return;
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_TRUE(*finished);
}

// SPEC 2.3: an escaped exception becomes Panicked with its message.
TEST(TaskTest, ExceptionBecomesPanicked) {
  auto outcome = run_lab(4, [](Cx& cx) -> Task<int> {
    auto handle = cx.spawn("thrower", [](Cx&) -> Task<int> {
      throw std::runtime_error("boom");
      co_return 0;
    });
    Outcome<int> joined = co_await handle->join(cx);
    EXPECT_TRUE(joined.is_panicked());
    EXPECT_EQ(joined.panic_info().message, "boom");
    co_return 1;
  });
  // FailFast region: the panicked child makes the region's outcome Panicked (SPEC 3.5).
  EXPECT_TRUE(outcome.is_panicked()) << outcome.to_string();
}

// SPEC 2.4: a missing capability is a clear PermissionDenied naming it; restrict only narrows.
TEST(CxTest, MissingCapabilityIsPermissionDenied) {
  auto outcome = run_lab(5, [](Cx& cx) -> Task<void> {
    Cx narrowed = cx.restrict(Capability::kTime);
    auto spawned = narrowed.spawn("x", [](Cx&) -> Task<void> { co_return; });
    EXPECT_EQ(spawned.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(spawned.status().message()), HasSubstr("Spawn capability"));
    Cx widened = narrowed.restrict(Capabilities::All());
    EXPECT_FALSE(widened.capabilities().has(Capability::kSpawn));
    Cx no_time = cx.restrict(Capability::kSpawn);
    absl::Status slept = co_await no_time.sleep(Duration::Milliseconds(1));
    EXPECT_EQ(slept.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(slept.message()), HasSubstr("Time capability"));
    EXPECT_EQ(no_time.random_u64().status().code(), absl::StatusCode::kPermissionDenied);
    // A child spawned with narrowed options cannot widen later.
    auto child = cx.spawn(
        "narrow child",
        [](Cx& child) -> Task<bool> { co_return child.capabilities().has(Capability::kIo); },
        SpawnOptions{.capabilities = Capability::kSpawn | Capability::kTime});
    Outcome<bool> has_io = co_await child->join(cx);
    EXPECT_FALSE(has_io.value());
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

struct EmptyBody {
  Task<void> operator()(Cx&) const { co_return; }
};
template <typename View>
concept CanSpawn = requires(View view) {
  view.spawn(std::string("x"), EmptyBody{});
};
template <typename View>
concept CanSleep = requires(View view) {
  view.sleep(Duration::Zero());
};
static_assert(!CanSpawn<CxWith<Capability::kTime>>);
static_assert(CanSpawn<CxWith<Capability::kSpawn>>);
static_assert(CanSleep<CxWith<Capability::kTime>>);
static_assert(!CanSleep<CxWith<Capability::kSpawn, Capability::kIo>>);

// SPEC 2.4: the compile-time view offers only what its capabilities allow.
TEST(CxTest, CompileTimeViewNarrowsAtRunTimeToo) {
  auto outcome = run_lab(6, [](Cx& cx) -> Task<void> {
    CxWith<Capability::kTime> view(cx);
    absl::Status slept = co_await view.sleep(Duration::Milliseconds(1));
    EXPECT_TRUE(slept.ok());
    EXPECT_EQ(view.cx().require(Capability::kSpawn).code(), absl::StatusCode::kPermissionDenied);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
}

// SPEC 3.4: on Ok the region waits for its children; cancel_children_on_exit cancels them.
TEST(RegionTest, BodyOkWaitsForChildrenOrCancelsThemWhenAsked) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto log = std::make_shared<std::vector<std::string>>();
    auto outcome = run_lab(seed, [log](Cx& cx) -> Task<void> {
      // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
      auto waited_task = Region::open(cx, "wait", [log](Cx& cx) -> Task<void> {
        (void)cx.spawn("slow", [log](Cx& child) -> Task<void> {
          absl::Status slept = co_await child.sleep(Duration::Seconds(1));
          log->push_back(slept.ok() ? "slow finished" : "slow cancelled");
        });
        co_return;
      });
      Outcome<void> waited = co_await std::move(waited_task);
      EXPECT_TRUE(waited.ok()) << waited.to_string();
      // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
      auto cancelled_task = Region::open(
          cx, "cancel",
          [log](Cx& cx) -> Task<void> {
            (void)cx.spawn("slow", [log](Cx& child) -> Task<void> {
              absl::Status slept = co_await child.sleep(Duration::Seconds(1));
              log->push_back(slept.ok() ? "slow finished" : "slow cancelled");
            });
            co_return;
          },
          RegionOptions{.cancel_children_on_exit = true});
      Outcome<void> cancelled = co_await std::move(cancelled_task);
      // Children cancelled by the region's own decision do not make it Cancelled.
      EXPECT_TRUE(cancelled.ok()) << cancelled.to_string();
    });
    EXPECT_TRUE(outcome.ok());
    EXPECT_THAT(*log, ::testing::ElementsAre("slow finished", "slow cancelled")) << seed;
  }
}

// SPEC 3.5: FailFast cancels siblings on a child's Err; CollectAll lets them finish.
TEST(RegionTest, FailFastCancelsSiblingsCollectAllDoesNot) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    for (FailurePolicy policy : {FailurePolicy::kFailFast, FailurePolicy::kCollectAll}) {
      auto sibling_cancelled = std::make_shared<bool>(false);
      auto outcome = run_lab(seed, [=](Cx& cx) -> Task<void> {
        // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
        auto region_task = Region::open(
            cx, "group",
            [=](Cx& cx) -> Task<void> {
              (void)cx.spawn("failing", [](Cx& child) -> Task<absl::Status> {
                (void)co_await child.yield();
                co_return absl::InternalError("disk full");
              });
              (void)cx.spawn("sibling", [=](Cx& child) -> Task<void> {
                absl::Status slept = co_await child.sleep(Duration::Milliseconds(10));
                *sibling_cancelled = absl::IsCancelled(slept);
              });
              co_return;
            },
            RegionOptions{.failure_policy = policy});
        Outcome<void> region = co_await std::move(region_task);
        EXPECT_TRUE(region.is_err()) << region.to_string();
        EXPECT_THAT(std::string(region.status().message()), HasSubstr("disk full"));
      });
      EXPECT_TRUE(outcome.ok()) << outcome.to_string();
      EXPECT_EQ(*sibling_cancelled, policy == FailurePolicy::kFailFast) << "seed " << seed;
    }
  }
}

// SPEC 3.6: finalizers run exactly once, LIFO, after every child is done, shielded.
TEST(RegionTest, FinalizersRunOnceLifoAfterChildren) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto log = std::make_shared<std::vector<std::string>>();
    auto outcome = run_lab(seed, [log](Cx& cx) -> Task<void> {
      // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
      auto region_task = Region::open(cx, "r", [log](Cx& cx) -> Task<void> {
        EXPECT_TRUE(cx.defer([log] { log->push_back("first registered"); }).ok());
        EXPECT_TRUE(cx.defer_async([log](Cx& cx) -> Task<void> {
                        // Shielded: the cancel below does not interrupt this sleep.
                        absl::Status slept = co_await cx.sleep(Duration::Milliseconds(5));
                        log->push_back(slept.ok() ? "async ran" : "async interrupted");
                      }).ok());
        (void)cx.spawn("child", [log](Cx& child) -> Task<void> {
          (void)co_await child.sleep(Duration::Milliseconds(1));
          log->push_back("child done");
        });
        cx.cancel_region("stop");
        co_return;
      });
      Outcome<void> region = co_await std::move(region_task);
      EXPECT_TRUE(region.is_cancelled()) << region.to_string();
    });
    EXPECT_TRUE(outcome.ok());
    EXPECT_THAT(*log, ::testing::ElementsAre("child done", "async ran", "first registered"))
        << seed;
  }
}

// SPEC 3.2: a spawn into a region that is no longer Open fails with RegionClosed; nothing leaks.
TEST(RegionTest, SpawnIntoClosingRegionIsRegionClosed) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto outcome = run_lab(seed, [](Cx& cx) -> Task<void> {
      // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
      auto region_task = Region::open(cx, "r", [](Cx& cx) -> Task<void> {
        // A child keeps spawning while the body cancels the region.
        (void)cx.spawn("spawner", [](Cx& child) -> Task<void> {
          for (int i = 0; i < 5; ++i) {
            auto spawned =
                child.spawn("grandchild", [](Cx& g) -> Task<void> { (void)co_await g.yield(); });
            if (!spawned.ok()) {
              EXPECT_TRUE(is_region_closed(spawned.status())) << spawned.status();
              co_return;
            }
            (void)co_await child.yield();
          }
        });
        (void)co_await cx.yield();
        cx.cancel_region("closing");
      });
      Outcome<void> region = co_await std::move(region_task);
      EXPECT_TRUE(region.is_cancelled());
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 3.7: over the admission limit spawn fails with ResourceExhausted, never blocks.
TEST(RegionTest, AdmissionLimit) {
  auto outcome = run_lab(7, [](Cx& cx) -> Task<void> {
    // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
    auto region_task = Region::open(
        cx, "limited",
        [](Cx& cx) -> Task<void> {
          auto first = cx.spawn("a", [](Cx& c) -> Task<void> { (void)co_await c.yield(); });
          auto second = cx.spawn("b", [](Cx& c) -> Task<void> { (void)co_await c.yield(); });
          EXPECT_TRUE(first.ok());
          EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
          EXPECT_THAT(std::string(second.status().message()), HasSubstr("max_tasks"));
          co_return;
        },
        RegionOptions{.max_tasks = 1});
    Outcome<void> region = co_await std::move(region_task);
    EXPECT_TRUE(region.ok());
  });
  EXPECT_TRUE(outcome.ok());
}

// SPEC 4.1, 4.2, 4.3: cancelling a region wakes its sleepers at once (no waiting for the
// timer), delivers ParentCancelled to descendants, and cleanup runs in the cancel lane.
TEST(CancelTest, RegionCancelWakesSleepersAndPropagatesDown) {
#if !defined(__clang__)
  // GCC 12 miscompiles this test's nested coroutine lambdas (a captured shared_ptr is released
  // too often; reproduced without the runtime, see core/README.md). Clang runs it in CI.
  GTEST_SKIP() << "GCC 12 coroutine lambda miscompilation; runs under --config=clang";
#endif
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto kinds = std::make_shared<std::vector<CancelKind>>();
    lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
    auto outcome = runtime.run([kinds](Cx& cx) -> Task<void> {
      // Named first: GCC 12 mishandles a lambda temporary inside co_await (core/README.md).
      auto server_task = Region::open(cx, "server", [kinds](Cx& cx) -> Task<void> {
        for (int i = 0; i < 3; ++i) {
          (void)cx.spawn("worker", [kinds](Cx& w) -> Task<void> {
            absl::Status slept = co_await w.sleep(Duration::Seconds(3600));
            EXPECT_TRUE(absl::IsCancelled(slept));
            kinds->push_back(w.task_record().cancel.reason().kind());
          });
        }
        (void)cx.spawn("nested", [kinds](Cx& n) -> Task<void> {
          Outcome<void> inner = co_await Region::open(n, "inner", [kinds](Cx& cx) -> Task<void> {
            (void)cx.spawn("deep", [kinds](Cx& d) -> Task<void> {
              absl::Status slept = co_await d.sleep(Duration::Seconds(3600));
              EXPECT_TRUE(absl::IsCancelled(slept));
              kinds->push_back(d.task_record().cancel.reason().kind());
              const CancelReason* cause = d.task_record().cancel.reason().cause();
              EXPECT_NE(cause, nullptr);
            });
            co_return;
          });
          EXPECT_TRUE(inner.is_cancelled());
        });
        (void)co_await cx.sleep(Duration::Milliseconds(5));
        cx.cancel_region("shutting down");
      });
      Outcome<void> server = co_await std::move(server_task);
      EXPECT_TRUE(server.is_cancelled());
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    // Woken by the request, not by the hour-long timers.
    EXPECT_LT(runtime.report().end_time.nanoseconds(), Duration::Seconds(1).nanoseconds());
    ASSERT_EQ(kinds->size(), 4u);
    for (CancelKind kind : *kinds)
      if (kind != CancelKind::kUser && kind != CancelKind::kParentCancelled)
        ADD_FAILURE() << cancel_kind_name(kind);
    EXPECT_EQ(std::count(kinds->begin(), kinds->end(), CancelKind::kUser), 3);
    EXPECT_EQ(std::count(kinds->begin(), kinds->end(), CancelKind::kParentCancelled), 1);
  }
}

// SPEC 4.4: inside a shield cancellation points return normally; the request is delivered
// at the first point after the shield ends.
TEST(CancelTest, ShieldDefersDelivery) {
  auto outcome = run_lab(8, [](Cx& cx) -> Task<void> {
    auto handle = cx.spawn("shielded", [](Cx& c) -> Task<int> {
      {
        auto shield = c.shield();
        EXPECT_TRUE(shield.ok());
        absl::Status slept = co_await c.sleep(Duration::Milliseconds(20));
        EXPECT_TRUE(slept.ok());
        EXPECT_TRUE(c.cancel_requested());
      }
      absl::Status after = co_await c.checkpoint();
      EXPECT_TRUE(absl::IsCancelled(after));
      co_return 7;
    });
    (void)co_await cx.sleep(Duration::Milliseconds(1));
    handle->cancel("stop");
    Outcome<int> joined = co_await handle->join(cx);
    // SPEC 4.6: finishing Ok after delivery is recorded as Cancelled.
    EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
  });
  // SPEC 3.5: the region's outcome joins every child's, the cancelled one included.
  EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 4.5: a task that ignores cancellation is destroyed once its cleanup budget is spent;
// its frame's destructors run; the outcome is Cancelled with budget_exhausted.
TEST(CancelTest, IgnoringTaskIsEscalatedUnderDestroy) {
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto destructed = std::make_shared<bool>(false);
    auto outcome = run_lab(seed, [destructed](Cx& cx) -> Task<void> {
      auto handle = cx.spawn("stubborn", [destructed](Cx& c) -> Task<void> {
        struct Flag {
          std::shared_ptr<bool> set;
          ~Flag() { *set = true; }
        } flag{destructed};
        while (true) (void)co_await c.yield();  // ignores every Cancelled status
      });
      (void)co_await cx.yield();
      handle->cancel("stop", Budget::Infinite().with_poll_quota(10));
      Outcome<void> joined = co_await handle->join(cx);
      EXPECT_TRUE(joined.is_cancelled());
      EXPECT_TRUE(handle->budget_exhausted());
    });
    EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
    EXPECT_TRUE(*destructed) << seed;
  }
}

// SPEC 4.5: under kWait a task that overruns its cleanup budget is not destroyed: the runtime
// keeps waiting, reports the stall once (naming the task), and the task finishes on its own.
TEST(CancelTest, WaitPolicyReportsTheStallAndKeepsWaiting) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
    auto outcome = runtime.run([](Cx& cx) -> Task<void> {
      auto region = Region::open(
          cx, "patient",
          [](Cx& rx) -> Task<int> {
            auto slow = rx.spawn("slow cleaner", [](Cx& c) -> Task<int> {
              int polls = 0;
              // Ignores the request for 50 more polls, then finishes by itself.
              while (polls < 60) {
                (void)co_await c.yield();
                ++polls;
              }
              co_return polls;
            });
            (void)co_await rx.yield();
            rx.cancel_region("stop", Budget::Infinite().with_poll_quota(10));
            auto shield = rx.shield();
            Outcome<int> joined = co_await slow->join(rx);
            EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
            EXPECT_FALSE(slow->budget_exhausted());
            co_return 0;
          },
          RegionOptions{.escalation = EscalationPolicy::kWait});
      Outcome<int> closed = co_await std::move(region);
      EXPECT_TRUE(closed.is_cancelled()) << closed.to_string();
    });
    EXPECT_TRUE(outcome.ok()) << outcome.to_string();
    ASSERT_EQ(runtime.report().stalls.size(), 1u) << "seed " << seed;
    EXPECT_THAT(runtime.report().stalls[0], HasSubstr("slow cleaner"));
    EXPECT_THAT(runtime.report().stalls[0], HasSubstr("kWait"));
  }
}

// SPEC 4.5: destroying tasks parked in every kind of await is safe (run under ASan: no
// use-after-free, no leak, no dangling waiter). In an inner region, shielded tasks parked in a
// join (on a task of the outer region, which stays alive) and in a sleep ignore the region's
// cancellation; the cleanup deadline's escalation timer destroys them while parked, with no
// deadlock teardown involved.
TEST(CancelTest, DestroyTasksParkedInEveryAwait) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    lab::LabRuntime runtime(lab::LabOptions{.seed = seed});
    auto destroyed = std::make_shared<int>(0);
    auto outcome = runtime.run([destroyed, seed](Cx& cx) -> Task<void> {
      auto blocker = cx.spawn("blocker", [](Cx& c) -> Task<void> {
        (void)co_await c.sleep(Duration::Seconds(1'000'000));
      });
      auto blocker_handle = std::move(blocker).value();
      auto inner =
          Region::open(cx, "inner", [&blocker_handle, destroyed, seed](Cx& rx) -> Task<void> {
            struct CountOnDestroy {
              std::shared_ptr<int> count;
              ~CountOnDestroy() { ++*count; }
            };
            auto joiner = rx.spawn("joiner", [&blocker_handle, destroyed](Cx& c) -> Task<void> {
              CountOnDestroy guard{destroyed};
              auto shield = c.shield();
              (void)co_await blocker_handle.join(c);
            });
            auto sleeper = rx.spawn("sleeper", [destroyed](Cx& c) -> Task<void> {
              CountOnDestroy guard{destroyed};
              auto shield = c.shield();
              (void)co_await c.sleep(Duration::Seconds(1'000'000));
            });
            (void)co_await rx.yield();
            (void)co_await rx.yield();
            rx.cancel_region("tear down", Budget::Infinite().with_deadline(
                                              Time::Epoch() + Duration::Milliseconds(1)));
            auto shield = rx.shield();
            Outcome<void> joined = co_await joiner->join(rx);
            EXPECT_TRUE(joined.is_cancelled()) << joined.to_string() << " seed " << seed;
            EXPECT_TRUE(joiner->budget_exhausted()) << seed;
            joined = co_await sleeper->join(rx);
            EXPECT_TRUE(joined.is_cancelled()) << joined.to_string() << " seed " << seed;
            EXPECT_TRUE(sleeper->budget_exhausted()) << seed;
          });
      Outcome<void> inner_outcome = co_await std::move(inner);
      EXPECT_TRUE(inner_outcome.is_cancelled()) << inner_outcome.to_string();
      EXPECT_FALSE(blocker_handle.finished());
      cx.cancel_region("done");
    });
    EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
    EXPECT_FALSE(runtime.report().deadlocked) << runtime.report().deadlock_report;
    EXPECT_EQ(*destroyed, 2) << "seed " << seed;
    EXPECT_THAT(runtime.report().violations, ::testing::IsEmpty()) << "seed " << seed;
    // Virtual time advanced to the cleanup deadline, not to the sleepers' deadlines.
    EXPECT_LT(runtime.report().end_time, Time::Epoch() + Duration::Seconds(1));
  }
}

// SPEC 11.1: a deadlock is reported with each task's wait.
TEST(LabTest, DeadlockIsReportedWithWaits) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 10});
  // The task holds a handle to itself: a cycle the test breaks after the run.
  auto self_joiner = std::make_shared<TaskHandle<void>>();
  auto outcome = runtime.run([self_joiner](Cx& cx) -> Task<void> {
    auto a = cx.spawn("a", [self_joiner](Cx& c) -> Task<void> {
      (void)co_await c.yield();
      (void)co_await self_joiner->join(c);  // joins itself: never finishes
    });
    *self_joiner = std::move(a).value();
    co_return;
  });
  ASSERT_TRUE(outcome.is_err());
  EXPECT_THAT(std::string(outcome.status().message()), HasSubstr("deadlock"));
  EXPECT_THAT(std::string(outcome.status().message()), HasSubstr("task 'a'"));
  EXPECT_THAT(std::string(outcome.status().message()), HasSubstr("waiting on join"));
  *self_joiner = TaskHandle<void>();
}

// SPEC 11.1: same seed, same schedule (trace hash); different seeds explore differently.
TEST(LabTest, SameSeedSameTrace) {
  auto program = [](Cx& cx) -> Task<void> {
    for (int i = 0; i < 8; ++i) {
      (void)cx.spawn("t", [](Cx& c) -> Task<void> {
        for (int k = 0; k < 3; ++k) (void)co_await c.yield();
        (void)co_await c.sleep(Duration::Microseconds(10));
      });
    }
    co_return;
  };
  std::set<uint64_t> hashes;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    lab::LabRuntime first(lab::LabOptions{.seed = seed});
    lab::LabRuntime second(lab::LabOptions{.seed = seed});
    EXPECT_TRUE(first.run(program).ok());
    EXPECT_TRUE(second.run(program).ok());
    EXPECT_EQ(first.report().trace_hash, second.report().trace_hash) << seed;
    hashes.insert(first.report().trace_hash);
  }
  EXPECT_GT(hashes.size(), 10u);
}

}  // namespace
}  // namespace asupersync
