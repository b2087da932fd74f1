// The core semantics that do not depend on determinism, run on both runtimes: the lab's
// single-threaded executor and the production multi-threaded Runtime (typed tests). Each
// scenario repeats a few times so that the production runtime sees different interleavings.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cx.h"
#include "core/region.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lab/lab_runtime.h"
#include "sched/runtime.h"

namespace asupersync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct LabHarness {
  static constexpr int kRepeats = 50;
  template <typename F>
  static auto run(int repeat, F main) {
    lab::LabRuntime runtime(lab::LabOptions{.seed = static_cast<uint64_t>(repeat)});
    auto outcome = runtime.run(std::move(main));
    EXPECT_THAT(runtime.report().violations, ::testing::IsEmpty());
    return outcome;
  }
};

struct ProductionHarness {
  static constexpr int kRepeats = 20;
  template <typename F>
  static auto run(int, F main) {
    sched::RuntimeOptions options;
    options.workers = 2;
    options.leak_policy = LeakPolicy::kPanic;
    sched::Runtime runtime(options);
    return runtime.run(std::move(main));
  }
};

template <typename Harness>
class ConformanceTest : public ::testing::Test {};

using Harnesses = ::testing::Types<LabHarness, ProductionHarness>;
TYPED_TEST_SUITE(ConformanceTest, Harnesses);

// Thread-safe log shared by tasks.
struct Log {
  void add(std::string entry) {
    std::lock_guard<std::mutex> lock(mutex);
    entries.push_back(std::move(entry));
  }
  std::mutex mutex;
  std::vector<std::string> entries;
};

// SPEC 2.2, 3.5: join yields each child's outcome; under CollectAll a child's Err does not
// cancel its siblings, and it counts in the region's outcome (SPEC 1.3).
TYPED_TEST(ConformanceTest, JoinYieldsChildOutcomes) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto outcome = TypeParam::run(repeat, [](Cx& cx) -> Task<void> {
      auto region = Region::open(
          cx, "collect",
          [](Cx& rx) -> Task<int> {
            auto ok = rx.spawn("ok", [](Cx& c) -> Task<int> {
              (void)co_await c.yield();
              co_return 20;
            });
            auto failing = rx.spawn("failing", [](Cx&) -> Task<absl::StatusOr<int>> {
              co_return absl::NotFoundError("no such thing");
            });
            Outcome<int> first = co_await ok->join(rx);
            Outcome<absl::StatusOr<int>> second = co_await failing->join(rx);
            EXPECT_TRUE(second.is_err()) << second.to_string();
            EXPECT_TRUE(first.ok()) << first.to_string();
            co_return first.ok() ? first.value() + 1 : -1;
          },
          RegionOptions{.failure_policy = FailurePolicy::kCollectAll});
      Outcome<int> closed = co_await std::move(region);
      EXPECT_TRUE(closed.is_err()) << closed.to_string();
      if (closed.is_err()) {
        EXPECT_THAT(std::string(closed.status().message()), HasSubstr("no such thing"));
      }
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

// SPEC 3.4: a region body returning Ok waits for its children; cancel_children_on_exit cancels
// them instead, and that does not make the region Cancelled.
TYPED_TEST(ConformanceTest, BodyExitWaitsOrCancels) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto log = std::make_shared<Log>();
    auto outcome = TypeParam::run(repeat, [log](Cx& cx) -> Task<void> {
      for (bool cancel_on_exit : {false, true}) {
        auto region = Region::open(
            cx, "r",
            [log](Cx& rx) -> Task<void> {
              (void)rx.spawn("slow", [log](Cx& c) -> Task<void> {
                absl::Status slept = co_await c.sleep(Duration::Milliseconds(3));
                log->add(slept.ok() ? "finished" : "cancelled");
              });
              co_return;
            },
            RegionOptions{.cancel_children_on_exit = cancel_on_exit});
        Outcome<void> closed = co_await std::move(region);
        EXPECT_TRUE(closed.ok()) << closed.to_string();
      }
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(log->entries, ElementsAre("finished", "cancelled"));
  }
}

// SPEC 3.5: FailFast cancels the siblings of a failing child.
TYPED_TEST(ConformanceTest, FailFastCancelsSiblings) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto sibling_cancelled = std::make_shared<std::atomic<bool>>(false);
    auto outcome = TypeParam::run(repeat, [sibling_cancelled](Cx& cx) -> Task<void> {
      auto region = Region::open(cx, "group", [sibling_cancelled](Cx& rx) -> Task<void> {
        (void)rx.spawn("sibling", [sibling_cancelled](Cx& c) -> Task<void> {
          absl::Status slept = co_await c.sleep(Duration::Seconds(60));
          sibling_cancelled->store(absl::IsCancelled(slept));
        });
        (void)rx.spawn("failing", [](Cx& c) -> Task<absl::Status> {
          (void)co_await c.yield();
          co_return absl::InternalError("disk full");
        });
        co_return;
      });
      Outcome<void> closed = co_await std::move(region);
      EXPECT_TRUE(closed.is_err()) << closed.to_string();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_TRUE(sibling_cancelled->load());
  }
}

// SPEC 3.6: finalizers run once, LIFO, after the children.
TYPED_TEST(ConformanceTest, FinalizersRunLifoAfterChildren) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto log = std::make_shared<Log>();
    auto outcome = TypeParam::run(repeat, [log](Cx& cx) -> Task<void> {
      auto region = Region::open(cx, "r", [log](Cx& rx) -> Task<void> {
        EXPECT_TRUE(rx.defer([log] { log->add("first registered"); }).ok());
        EXPECT_TRUE(rx.defer([log] { log->add("second registered"); }).ok());
        (void)rx.spawn("child", [log](Cx& c) -> Task<void> {
          (void)co_await c.sleep(Duration::Milliseconds(1));
          log->add("child done");
        });
        co_return;
      });
      Outcome<void> closed = co_await std::move(region);
      EXPECT_TRUE(closed.ok()) << closed.to_string();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_THAT(log->entries, ElementsAre("child done", "second registered", "first registered"));
  }
}

// SPEC 4.1, 4.2: a region cancel reaches tasks parked in sleep and join, down the tree.
TYPED_TEST(ConformanceTest, CancelPropagatesDownTheTree) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto cancelled = std::make_shared<std::atomic<int>>(0);
    auto outcome = TypeParam::run(repeat, [cancelled](Cx& cx) -> Task<void> {
      auto outer = Region::open(cx, "outer", [cancelled](Cx& ox) -> Task<void> {
        (void)ox.spawn("sleeper", [cancelled](Cx& c) -> Task<void> {
          absl::Status slept = co_await c.sleep(Duration::Seconds(60));
          if (absl::IsCancelled(slept)) cancelled->fetch_add(1);
        });
        auto inner = Region::open(ox, "inner", [cancelled](Cx& ix) -> Task<void> {
          auto sleeper = ix.spawn("inner sleeper", [cancelled](Cx& c) -> Task<void> {
            absl::Status slept = co_await c.sleep(Duration::Seconds(60));
            if (absl::IsCancelled(slept)) cancelled->fetch_add(1);
          });
          auto joiner = ix.spawn("joiner", [cancelled, &sleeper](Cx& c) -> Task<void> {
            Outcome<void> joined = co_await sleeper->join(c);
            if (joined.is_cancelled()) cancelled->fetch_add(1);
          });
          (void)co_await ix.yield();
          ix.region().parent()->cancel(CancelReason(CancelKind::kUser, ix.region().parent()->id(),
                                                    std::nullopt, Time::Epoch(), "stop everything"),
                                       Budget::Infinite());
          // The joiner refers to `sleeper` in this frame: wait for it before returning.
          auto shield = ix.shield();
          (void)co_await joiner->join(ix);
        });
        Outcome<void> inner_closed = co_await std::move(inner);
        EXPECT_TRUE(inner_closed.is_cancelled()) << inner_closed.to_string();
      });
      Outcome<void> closed = co_await std::move(outer);
      EXPECT_TRUE(closed.is_cancelled()) << closed.to_string();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
    EXPECT_EQ(cancelled->load(), 3);
  }
}

// SPEC 4.4: a shield defers delivery; the request is delivered at the first checkpoint after.
TYPED_TEST(ConformanceTest, ShieldDefersDelivery) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto outcome = TypeParam::run(repeat, [](Cx& cx) -> Task<void> {
      auto handle = cx.spawn("shielded", [](Cx& c) -> Task<int> {
        int completed_sleeps = 0;
        {
          auto shield = c.shield();
          for (int i = 0; i < 3; ++i) {
            absl::Status slept = co_await c.sleep(Duration::Milliseconds(1));
            if (slept.ok()) ++completed_sleeps;
          }
        }
        absl::Status after = co_await c.checkpoint();
        EXPECT_TRUE(absl::IsCancelled(after)) << after;
        co_return completed_sleeps;
      });
      (void)co_await cx.yield();
      handle->cancel("stop");
      auto shield = cx.shield();
      Outcome<int> joined = co_await handle->join(cx);
      // Finishing after a delivered request is recorded as Cancelled (SPEC 4.6).
      EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    });
    EXPECT_TRUE(outcome.is_cancelled()) << outcome.to_string();
  }
}

// SPEC 3.2: spawning into a region that is closing fails with RegionClosed.
TYPED_TEST(ConformanceTest, SpawnIntoClosingRegionIsRefused) {
  for (int repeat = 0; repeat < TypeParam::kRepeats; ++repeat) {
    auto outcome = TypeParam::run(repeat, [](Cx& cx) -> Task<void> {
      auto region = Region::open(cx, "r", [](Cx& rx) -> Task<void> {
        rx.cancel_region("closing");
        auto refused = rx.spawn("late", [](Cx&) -> Task<void> { co_return; });
        EXPECT_FALSE(refused.ok());
        EXPECT_TRUE(is_region_closed(refused.status())) << refused.status();
        co_return;
      });
      Outcome<void> closed = co_await std::move(region);
      EXPECT_TRUE(closed.is_cancelled()) << closed.to_string();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  }
}

}  // namespace
}  // namespace asupersync
