// Copyright The Asupersync Authors.

#include "core/budget.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace asupersync {
namespace {

constexpr uint64_t kMaxCost = std::numeric_limits<uint64_t>::max();

// Orders optional limits with "absent" as the largest (no limit).
template <typename T>
bool LimitLessEq(const std::optional<T>& a, const std::optional<T>& b) {
  if (!b.has_value()) return true;
  if (!a.has_value()) return false;
  return *a <= *b;
}

// Every combination of the given per-field values.
std::vector<Budget> Grid(const std::vector<std::optional<Time>>& deadlines,
                         const std::vector<uint32_t>& polls,
                         const std::vector<std::optional<uint64_t>>& costs,
                         const std::vector<uint8_t>& priorities) {
  std::vector<Budget> out;
  for (const auto& d : deadlines) {
    for (uint32_t p : polls) {
      for (const auto& c : costs) {
        for (uint8_t pr : priorities) {
          Budget b;
          b.deadline = d;
          b.poll_quota = p;
          b.cost_quota = c;
          b.priority = pr;
          out.push_back(b);
        }
      }
    }
  }
  return out;
}

// Edge values on every axis: absent, zero, small, large, the type's extremes.
std::vector<Budget> FullGrid() {
  return Grid({std::nullopt, Time::FromNanoseconds(std::numeric_limits<int64_t>::min()),
               Time::Epoch(), Time::FromNanoseconds(5), Time::Infinite()},
              {0, 1, 1000, Budget::kUnlimitedPolls}, {std::nullopt, 0, 1, kMaxCost},
              {0, 1, 200, 255});
}

// Smaller grid for the three-way law (its cube stays fast under sanitizers).
std::vector<Budget> SmallGrid() {
  return Grid({std::nullopt, Time::Epoch(), Time::Infinite()}, {0, 7, Budget::kUnlimitedPolls},
              {std::nullopt, 0, kMaxCost}, {0, 9, 255});
}

TEST(BudgetTest, InfiniteIsTheDefault) {
  const Budget inf = Budget::Infinite();
  EXPECT_EQ(inf, Budget{});
  EXPECT_FALSE(inf.deadline.has_value());
  EXPECT_EQ(inf.poll_quota, Budget::kUnlimitedPolls);
  EXPECT_EQ(Budget::kUnlimitedPolls, std::numeric_limits<uint32_t>::max());
  EXPECT_FALSE(inf.cost_quota.has_value());
  EXPECT_EQ(inf.priority, 0);
}

TEST(BudgetTest, BuildersReturnModifiedCopies) {
  const Budget base = Budget::Infinite();
  const Budget b = base.with_deadline(Time::FromNanoseconds(10))
                       .with_poll_quota(3)
                       .with_cost_quota(99)
                       .with_priority(7);
  EXPECT_EQ(b.deadline, Time::FromNanoseconds(10));
  EXPECT_EQ(b.poll_quota, 3u);
  EXPECT_EQ(b.cost_quota, 99u);
  EXPECT_EQ(b.priority, 7);
  EXPECT_EQ(base, Budget::Infinite());  // The original is untouched.
  EXPECT_NE(b, base);
  EXPECT_NE(b, b.with_priority(8));
  EXPECT_EQ(b, b.with_priority(7));
}

TEST(BudgetTest, ToString) {
  EXPECT_EQ(Budget::Infinite().to_string(),
            "Budget{deadline=none, polls=unlimited, cost=unlimited, priority=0}");
  EXPECT_EQ(Budget::Infinite()
                .with_deadline(Time::Epoch() + Duration::Milliseconds(12))
                .with_poll_quota(1000)
                .with_cost_quota(5)
                .with_priority(200)
                .to_string(),
            "Budget{deadline=12ms, polls=1000, cost=5, priority=200}");
}

// SPEC 1.2
TEST(BudgetTest, MeetTakesMinOfLimitsAndMaxOfPriority) {
  const Budget a = Budget::Infinite()
                       .with_deadline(Time::FromNanoseconds(100))
                       .with_poll_quota(50)
                       .with_priority(3);
  const Budget b = Budget::Infinite()
                       .with_deadline(Time::FromNanoseconds(40))
                       .with_poll_quota(80)
                       .with_cost_quota(9)
                       .with_priority(200);
  const Budget m = meet(a, b);
  EXPECT_EQ(m.deadline, Time::FromNanoseconds(40));
  EXPECT_EQ(m.poll_quota, 50u);
  EXPECT_EQ(m.cost_quota, 9u);
  EXPECT_EQ(m.priority, 200);
  static_assert(meet(Budget::Infinite(), Budget::Infinite()) == Budget::Infinite());
}

// SPEC 1.2
TEST(BudgetTest, MeetIsCommutativeIdempotentWithInfiniteIdentity) {
  const std::vector<Budget> grid = FullGrid();
  ASSERT_EQ(grid.size(), 320u);
  for (const Budget& a : grid) {
    SCOPED_TRACE(a.to_string());
    EXPECT_EQ(meet(a, a), a);
    EXPECT_EQ(meet(a, Budget::Infinite()), a);
    EXPECT_EQ(meet(Budget::Infinite(), a), a);
    for (const Budget& b : grid) {
      ASSERT_EQ(meet(a, b), meet(b, a)) << a << " vs " << b;
    }
  }
}

// SPEC 1.2
TEST(BudgetTest, MeetIsAssociative) {
  const std::vector<Budget> grid = SmallGrid();
  ASSERT_EQ(grid.size(), 81u);
  for (const Budget& a : grid) {
    for (const Budget& b : grid) {
      for (const Budget& c : grid) {
        ASSERT_EQ(meet(meet(a, b), c), meet(a, meet(b, c))) << a << ", " << b << ", " << c;
      }
    }
  }
}

// SPEC 1.2: a child's budget is meet(parent, requested) and never loosens the parent's limits.
TEST(BudgetTest, ChildNeverLoosensParent) {
  const std::vector<Budget> grid = FullGrid();
  for (const Budget& parent : grid) {
    for (const Budget& requested : grid) {
      const Budget child = meet(parent, requested);
      ASSERT_TRUE(LimitLessEq(child.deadline, parent.deadline)) << parent << " " << requested;
      ASSERT_TRUE(LimitLessEq(child.deadline, requested.deadline)) << parent << " " << requested;
      ASSERT_LE(child.poll_quota, parent.poll_quota);
      ASSERT_LE(child.poll_quota, requested.poll_quota);
      ASSERT_TRUE(LimitLessEq(child.cost_quota, parent.cost_quota)) << parent << " " << requested;
      ASSERT_TRUE(LimitLessEq(child.cost_quota, requested.cost_quota));
      // Priority is the max, so it is one of the two and at least either.
      ASSERT_GE(child.priority, parent.priority);
      ASSERT_GE(child.priority, requested.priority);
      ASSERT_TRUE(child.priority == parent.priority || child.priority == requested.priority);
      // Meeting the child with the parent again changes nothing: the parent is already obeyed.
      ASSERT_EQ(meet(child, parent), child);
    }
  }
}

// SPEC 1.2: a request can tighten but not widen; a looser request leaves the parent's limits.
TEST(BudgetTest, LooserRequestKeepsParentLimits) {
  const Budget parent = Budget::Infinite()
                            .with_deadline(Time::FromNanoseconds(1000))
                            .with_poll_quota(10)
                            .with_cost_quota(5);
  const Budget looser = Budget::Infinite()
                            .with_deadline(Time::FromNanoseconds(5000))
                            .with_poll_quota(100)
                            .with_cost_quota(50);
  EXPECT_EQ(meet(parent, looser), parent);
  EXPECT_EQ(meet(parent, Budget::Infinite()), parent);
}

}  // namespace
}  // namespace asupersync
