// Copyright The Asupersync Authors.

#include "sched/internal/timing_wheel.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

struct TestTimer final : TimerNode {
  explicit TestTimer(int id = 0) : id(id) {}
  void fire() override { ++fired; }
  int id;
  int fired = 0;
};

constexpr Time At(int64_t nanos) { return Time::FromNanoseconds(nanos); }
constexpr int64_t kUs = 1'000;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kDay = 86'400 * kSecond;

// Advances `wheel` to `now` and returns the ids handed out, in order; fires nothing.
std::vector<int> advance_ids(TimingWheel& wheel, Time now) {
  std::vector<int> ids;
  wheel.advance(now, [&](TimerNode& node) {
    EXPECT_FALSE(node.registered);
    EXPECT_LE(node.deadline, now);
    ids.push_back(static_cast<TestTimer&>(node).id);
  });
  return ids;
}

TEST(TimingWheelTest, HandsOutInDeadlineOrderNeverEarly) {
  TimingWheel wheel(At(0));
  TestTimer a(1), b(2), c(3);
  a.deadline = At(5 * kMs);
  b.deadline = At(1 * kMs);
  c.deadline = At(5 * kMs + 1);
  wheel.insert(a);
  wheel.insert(b);
  wheel.insert(c);
  EXPECT_TRUE(a.registered);
  EXPECT_EQ(wheel.size(), 3u);
  EXPECT_EQ(wheel.next_deadline(), At(1 * kMs));

  EXPECT_THAT(advance_ids(wheel, At(1 * kMs - 1)), IsEmpty());
  EXPECT_THAT(advance_ids(wheel, At(1 * kMs)), ElementsAre(2));
  EXPECT_FALSE(b.registered);
  EXPECT_EQ(wheel.next_deadline(), At(5 * kMs));
  // Same 131 us tick as `a`, but one nanosecond later: `c` stays.
  EXPECT_THAT(advance_ids(wheel, At(5 * kMs)), ElementsAre(1));
  EXPECT_TRUE(c.registered);
  EXPECT_EQ(wheel.next_deadline(), At(5 * kMs + 1));
  EXPECT_THAT(advance_ids(wheel, At(5 * kMs + 1)), ElementsAre(3));
  EXPECT_TRUE(wheel.empty());
  EXPECT_EQ(wheel.next_deadline(), Time::Infinite());
}

TEST(TimingWheelTest, OneAdvanceHandsOutEarlierTicksFirst) {
  TimingWheel wheel(At(0));
  std::vector<std::unique_ptr<TestTimer>> timers;
  // Deadlines on every level, inserted out of order.
  const int64_t deadlines[] = {3 * kSecond, 200 * kUs, 2 * kMs, 40 * kMs, 700 * kMs, 90 * kSecond};
  for (int i = 0; i < 6; ++i) {
    timers.push_back(std::make_unique<TestTimer>(i));
    timers.back()->deadline = At(deadlines[i]);
    wheel.insert(*timers.back());
  }
  EXPECT_THAT(advance_ids(wheel, At(100 * kSecond)), ElementsAre(1, 2, 3, 4, 0, 5));
}

TEST(TimingWheelTest, CascadesFromHigherLevelsAndFiresExactly) {
  TimingWheel wheel(At(0));
  TestTimer timer(1);
  timer.deadline = At(kDay + 12345);  // Level 4.
  wheel.insert(timer);
  const Time first_wake = wheel.next_deadline();
  EXPECT_LE(first_wake, timer.deadline);
  EXPECT_GT(first_wake, At(0));
  // A runtime sleeping until next_deadline() each time reaches the deadline exactly, after a
  // few early wake-ups (one per level at most).
  Time now = At(0);
  int wakes = 0;
  std::vector<int> fired;
  while (!wheel.empty()) {
    now = wheel.next_deadline();
    ++wakes;
    wheel.advance(now, [&](TimerNode& node) {
      EXPECT_EQ(node.deadline, now);
      fired.push_back(static_cast<TestTimer&>(node).id);
    });
  }
  EXPECT_THAT(fired, ElementsAre(1));
  EXPECT_EQ(now, timer.deadline);
  EXPECT_LE(wakes, TimingWheel::kLevels + 1);
}

TEST(TimingWheelTest, RemovedTimersAreNeverHandedOut) {
  TimingWheel wheel(At(0));
  TestTimer near(1), far(2), overflow(3);
  near.deadline = At(1 * kMs);
  far.deadline = At(10 * kSecond);
  overflow.deadline = At(400 * kDay);
  wheel.insert(near);
  wheel.insert(far);
  wheel.insert(overflow);
  EXPECT_TRUE(wheel.remove(near));
  EXPECT_FALSE(near.registered);
  EXPECT_FALSE(wheel.remove(near));  // Already removed: a no-op.
  EXPECT_LE(wheel.next_deadline(), At(10 * kSecond));
  EXPECT_TRUE(wheel.remove(overflow));
  EXPECT_TRUE(wheel.remove(far));
  EXPECT_TRUE(wheel.empty());
  EXPECT_EQ(wheel.next_deadline(), Time::Infinite());
  EXPECT_THAT(advance_ids(wheel, At(500 * kDay)), IsEmpty());
  // Removed nodes can be inserted again.
  near.deadline = At(501 * kDay);
  wheel.insert(near);
  EXPECT_THAT(advance_ids(wheel, At(501 * kDay)), ElementsAre(1));
}

TEST(TimingWheelTest, PastDeadlinesAreDueAtTheNextAdvance) {
  TimingWheel wheel(At(10 * kSecond));
  TestTimer past(1), epoch(2), negative(3);
  past.deadline = At(9 * kSecond);
  epoch.deadline = Time::Epoch();
  negative.deadline = At(-5);
  wheel.insert(past);
  wheel.insert(epoch);
  wheel.insert(negative);
  EXPECT_EQ(wheel.next_deadline(), At(-5));
  // Even an advance to a time before the wheel's own time hands them out.
  EXPECT_THAT(advance_ids(wheel, At(9 * kSecond)), UnorderedElementsAre(1, 2, 3));
}

TEST(TimingWheelTest, FarFutureDeadlinesWaitInOverflowThenFireExactly) {
  const Time start = At(3 * kDay + 777);
  TimingWheel wheel(start);
  TestTimer far(1), farther(2), never(3);
  far.deadline = start + TimingWheel::kWheelSpan + Duration::Nanoseconds(5);
  farther.deadline = At(900 * kDay);
  never.deadline = Time::Infinite();
  wheel.insert(far);
  wheel.insert(farther);
  wheel.insert(never);
  EXPECT_EQ(wheel.next_deadline(), far.deadline);
  EXPECT_THAT(advance_ids(wheel, far.deadline - Duration::Nanoseconds(1)), IsEmpty());
  EXPECT_THAT(advance_ids(wheel, far.deadline), ElementsAre(1));
  EXPECT_LE(wheel.next_deadline(), farther.deadline);
  // One huge jump past several 104-day windows.
  EXPECT_THAT(advance_ids(wheel, At(5000 * kDay)), ElementsAre(2));
  EXPECT_TRUE(never.registered);
  EXPECT_EQ(wheel.next_deadline(), Time::Infinite());
  EXPECT_EQ(wheel.size(), 1u);
}

TEST(TimingWheelTest, CallbackMayRemoveDueNodesAndReinsert) {
  TimingWheel wheel(At(0));
  TestTimer periodic(1), victim(2);
  periodic.deadline = At(1 * kMs);
  victim.deadline = At(1 * kMs);
  wheel.insert(periodic);
  wheel.insert(victim);
  int periodic_fires = 0;
  std::vector<int> ids;
  wheel.advance(At(10 * kMs), [&](TimerNode& node) {
    auto& timer = static_cast<TestTimer&>(node);
    ids.push_back(timer.id);
    if (timer.id == 1) {
      wheel.remove(victim);  // Due in this same call, but removed first (or already out).
      if (++periodic_fires < 100) {
        timer.deadline = timer.deadline + Duration::Milliseconds(1);
        wheel.insert(timer);
      }
    }
  });
  // The periodic timer fires at 1, 2, ..., 10 ms within one advance.
  EXPECT_EQ(periodic_fires, 10);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), ids.front() == 2 ? 1 : 0);
  EXPECT_TRUE(periodic.registered);
  EXPECT_EQ(periodic.deadline, At(11 * kMs));
  EXPECT_EQ(wheel.next_deadline(), At(11 * kMs));
}

TEST(TimingWheelTest, DestroyingTheWheelUnregistersNodes) {
  TestTimer timer(1);
  {
    TimingWheel wheel(At(0));
    timer.deadline = At(5 * kSecond);
    wheel.insert(timer);
  }
  EXPECT_FALSE(timer.registered);
  EXPECT_EQ(timer.executor_next, nullptr);
}

TEST(TimingWheelDeathTest, InsertingARegisteredNodeAborts) {
  TimingWheel wheel(At(0));
  TestTimer timer(1);
  timer.deadline = At(kMs);
  wheel.insert(timer);
  EXPECT_DEATH(wheel.insert(timer),
               "invariant violated: TimingWheel::insert takes an "
               "unregistered TimerNode");
}

// A random deadline relative to `now`, mixing every level, the overflow list, ticks' edges,
// the past and Infinite.
Time random_deadline(std::mt19937_64& random, Time now) {
  const int64_t tick = TimingWheel::kTick.nanoseconds();
  auto uniform = [&](int64_t bound) { return static_cast<int64_t>(random() % bound); };
  switch (random() % 10) {
    case 0:
      return now - Duration::Nanoseconds(uniform(kSecond));
    case 1:
      return now;
    case 2:
      return now + Duration::Nanoseconds(uniform(3 * tick));
    case 3:
      return At((now.nanoseconds() / tick + 1 + uniform(100)) * tick + uniform(2) - 1);
    case 4:
      return now + Duration::Nanoseconds(uniform(20 * kMs));
    case 5:
      return now + Duration::Nanoseconds(uniform(2 * kSecond));
    case 6:
      return now + Duration::Nanoseconds(uniform(3 * 3600 * kSecond));
    case 7:
      return now + Duration::Nanoseconds(uniform(300 * kDay));
    case 8:
      return random() % 4 == 0 ? Time::Infinite() : now + Duration::Nanoseconds(uniform(kMs));
    default:
      return now + Duration::Nanoseconds(uniform(200 * kUs));
  }
}

Duration random_step(std::mt19937_64& random) {
  auto uniform = [&](int64_t bound) { return static_cast<int64_t>(random() % bound); };
  switch (random() % 20) {
    case 0:
      // Rarely a jump over whole 104-day windows (60000 steps stay far below int64's 292 years).
      return Duration::Nanoseconds(uniform(random() % 10 == 0 ? 200 * kDay : 5 * kDay));
    case 1:
    case 2:
      return Duration::Nanoseconds(uniform(2 * 3600 * kSecond));
    case 3:
    case 4:
    case 5:
      return Duration::Nanoseconds(uniform(5 * kSecond));
    case 6:
      return Duration::Zero();
    default:
      return Duration::Nanoseconds(uniform(random() % 2 == 0 ? 300 * kUs : 30 * kMs));
  }
}

// Random inserts, removes and advances, cross-checked against a std::multimap of deadlines:
// each advance hands out exactly the model's due nodes, never early; next_deadline() is never
// later than the model's earliest deadline and, after an advance, later than now.
void run_model_check(uint64_t seed, Time start, int steps) {
  SCOPED_TRACE(testing::Message() << "seed " << seed << " start " << start);
  std::mt19937_64 random(seed);
  constexpr int kTimers = 600;
  std::vector<std::unique_ptr<TestTimer>> timers;
  for (int i = 0; i < kTimers; ++i) timers.push_back(std::make_unique<TestTimer>(i));
  std::multimap<Time, int> model;
  TimingWheel wheel(start);
  Time now = start;
  size_t handed_out_total = 0;

  auto erase_from_model = [&](const TestTimer& timer) {
    auto [first, last] = model.equal_range(timer.deadline);
    for (auto it = first; it != last; ++it) {
      if (it->second == timer.id) {
        model.erase(it);
        return;
      }
    }
    ADD_FAILURE() << "timer " << timer.id << " missing from the model";
  };

  for (int step = 0; step < steps; ++step) {
    const int op = static_cast<int>(random() % 100);
    TestTimer& timer = *timers[random() % kTimers];
    if (op < 50) {
      if (timer.registered) continue;
      timer.deadline = random_deadline(random, now);
      wheel.insert(timer);
      model.emplace(timer.deadline, timer.id);
    } else if (op < 65) {
      const bool was_registered = timer.registered;
      ASSERT_EQ(wheel.remove(timer), was_registered);
      if (was_registered) erase_from_model(timer);
      ASSERT_FALSE(timer.registered);
    } else {
      now = now + random_step(random);
      std::set<int> handed_out;
      wheel.advance(now, [&](TimerNode& node) {
        auto& expired = static_cast<TestTimer&>(node);
        ASSERT_FALSE(expired.registered);
        ASSERT_LE(expired.deadline, now) << "handed out early";
        ASSERT_TRUE(handed_out.insert(expired.id).second) << "handed out twice";
      });
      std::set<int> expected;
      for (auto it = model.begin(); it != model.end() && it->first <= now;) {
        expected.insert(it->second);
        it = model.erase(it);
      }
      ASSERT_EQ(handed_out, expected) << "at step " << step << ", now " << now;
      handed_out_total += handed_out.size();
      ASSERT_GT(wheel.next_deadline(), now) << "a runtime loop would spin";
    }
    ASSERT_EQ(wheel.size(), model.size());
    const Time model_next = model.empty() ? Time::Infinite() : model.begin()->first;
    ASSERT_LE(wheel.next_deadline(), model_next) << "at step " << step;
  }
  EXPECT_GT(handed_out_total, static_cast<size_t>(steps) / 10);
}

TEST(TimingWheelModelTest, RandomOperationsMatchAMultimap) {
  run_model_check(1, At(0), 60000);
  run_model_check(2, At(12 * kDay + 987654321), 60000);
  // Just before a 104-day window boundary.
  run_model_check(3, Time::Epoch() + TimingWheel::kWheelSpan - Duration::Milliseconds(3), 60000);
}

// A runtime-like loop that always sleeps until next_deadline(): every timer fires exactly at its
// deadline, and the number of wake-ups stays close to the number of distinct deadlines.
TEST(TimingWheelModelTest, SleepingUntilNextDeadlineFiresEveryTimerOnTime) {
  std::mt19937_64 random(42);
  const Time start = At(5 * kDay);
  TimingWheel wheel(start);
  std::vector<std::unique_ptr<TestTimer>> timers;
  std::set<Time> distinct;
  for (int i = 0; i < 3000; ++i) {
    timers.push_back(std::make_unique<TestTimer>(i));
    Time deadline = random_deadline(random, start);
    if (deadline.is_infinite() || deadline < start) deadline = start + Duration::Seconds(1);
    timers.back()->deadline = deadline;
    distinct.insert(deadline);
    wheel.insert(*timers.back());
  }
  int wakes = 0;
  size_t fired = 0;
  Time now = start;
  while (!wheel.empty()) {
    const Time next = wheel.next_deadline();
    ASSERT_GE(next, now);
    now = next;
    ++wakes;
    wheel.advance(now, [&](TimerNode& node) {
      ASSERT_EQ(node.deadline, now) << "late or early";
      node.fire();
      ++fired;
    });
  }
  EXPECT_EQ(fired, timers.size());
  for (const auto& timer : timers) EXPECT_EQ(timer->fired, 1);
  EXPECT_LE(wakes, static_cast<int>(distinct.size()) * 2 + 64);
}

}  // namespace
}  // namespace asupersync::sched
