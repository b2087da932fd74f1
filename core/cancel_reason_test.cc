// Copyright The Asupersync Authors.

#include "core/cancel_reason.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace asupersync {
namespace {

const RegionId kRegion(3, 1);
const TaskId kTask(4, 2);

CancelReason Reason(CancelKind kind, int64_t time_ns, std::string message = "",
                    RegionId region = kRegion, std::optional<TaskId> task = std::nullopt) {
  return CancelReason(kind, region, task, Time::FromNanoseconds(time_ns), std::move(message));
}

// A spread of reasons: every kind, at several times, with several messages, plus variants that
// differ only in origin or cause (so ties on the SPEC keys are exercised).
std::vector<CancelReason> Sample() {
  std::vector<CancelReason> out;
  for (CancelKind kind : kAllCancelKinds) {
    for (int64_t t : {0, 5, 9}) {
      for (const char* msg : {"", "a", "b"}) out.push_back(Reason(kind, t, msg));
    }
    out.push_back(Reason(kind, 5, "a", RegionId(1, 1)));
    out.push_back(Reason(kind, 5, "a", kRegion, kTask));
    out.push_back(Reason(CancelKind::kUser, 1, "root")
                      .caused_by(kind, kRegion, std::nullopt, Time::FromNanoseconds(5), "a"));
  }
  return out;
}

// SPEC 1.4
TEST(CancelKindTest, Tiers) {
  const std::map<CancelKind, int> expected = {
      {CancelKind::kUser, 0},
      {CancelKind::kTimeout, 1},
      {CancelKind::kDeadline, 1},
      {CancelKind::kPollQuota, 2},
      {CancelKind::kCostBudget, 2},
      {CancelKind::kFailFast, 3},
      {CancelKind::kRaceLost, 3},
      {CancelKind::kLinkedExit, 3},
      {CancelKind::kParentCancelled, 4},
      {CancelKind::kResourceUnavailable, 4},
      {CancelKind::kShutdown, 5},
  };
  ASSERT_EQ(expected.size(), kAllCancelKinds.size());
  for (CancelKind kind : kAllCancelKinds) {
    EXPECT_EQ(cancel_tier(kind), expected.at(kind)) << cancel_kind_name(kind);
  }
}

TEST(CancelKindTest, Names) {
  std::vector<std::string> names;
  for (CancelKind kind : kAllCancelKinds) names.emplace_back(cancel_kind_name(kind));
  EXPECT_EQ(names,
            (std::vector<std::string>{"User", "Timeout", "Deadline", "PollQuota", "CostBudget",
                                      "FailFast", "RaceLost", "LinkedExit", "ParentCancelled",
                                      "ResourceUnavailable", "Shutdown"}));
  EXPECT_EQ(cancel_kind_name(static_cast<CancelKind>(200)), "InvalidCancelKind");
}

TEST(CancelKindDeathTest, InvalidKindAborts) {
  EXPECT_DEATH(cancel_tier(static_cast<CancelKind>(200)), "CancelKind must be one of");
  EXPECT_DEATH(cleanup_budget(static_cast<CancelKind>(200)), "CancelKind must be one of");
  EXPECT_DEATH(Reason(static_cast<CancelKind>(11), 0), "CancelKind must be one of");
}

// SPEC 1.5
TEST(CancelKindTest, CleanupBudgets) {
  struct Row {
    CancelKind kind;
    uint32_t polls;
    uint8_t priority;
  };
  const std::vector<Row> table = {
      {CancelKind::kUser, 1000, 200},           {CancelKind::kTimeout, 500, 210},
      {CancelKind::kDeadline, 500, 210},        {CancelKind::kPollQuota, 300, 215},
      {CancelKind::kCostBudget, 300, 215},      {CancelKind::kFailFast, 200, 220},
      {CancelKind::kRaceLost, 200, 220},        {CancelKind::kLinkedExit, 200, 220},
      {CancelKind::kParentCancelled, 200, 220}, {CancelKind::kResourceUnavailable, 200, 220},
      {CancelKind::kShutdown, 50, 255},
  };
  ASSERT_EQ(table.size(), kAllCancelKinds.size());
  for (const Row& row : table) {
    const Budget b = cleanup_budget(row.kind);
    SCOPED_TRACE(cancel_kind_name(row.kind));
    EXPECT_EQ(b.poll_quota, row.polls);
    EXPECT_EQ(b.priority, row.priority);
    EXPECT_FALSE(b.deadline.has_value());
    EXPECT_FALSE(b.cost_quota.has_value());
  }
}

// SPEC 1.5: a caller-supplied budget is met with the kind's cleanup budget; a more severe kind
// never gets a lower cleanup priority or a larger poll quota.
TEST(CancelKindTest, CleanupBudgetMetWithCallerBudget) {
  const Budget caller = Budget::Infinite().with_deadline(Time::Epoch() + Duration::Seconds(5));
  const Budget b = meet(cleanup_budget(CancelKind::kTimeout), caller);
  EXPECT_EQ(b.deadline, Time::Epoch() + Duration::Seconds(5));
  EXPECT_EQ(b.poll_quota, 500u);
  EXPECT_EQ(b.priority, 210);
  for (CancelKind a : kAllCancelKinds) {
    for (CancelKind c : kAllCancelKinds) {
      if (cancel_tier(a) < cancel_tier(c)) {
        EXPECT_LE(cleanup_budget(a).priority, cleanup_budget(c).priority);
        EXPECT_GE(cleanup_budget(a).poll_quota, cleanup_budget(c).poll_quota);
      }
    }
  }
}

// SPEC 1.4
TEST(CancelReasonTest, Fields) {
  const CancelReason r = Reason(CancelKind::kTimeout, 12'000'000, "slow", kRegion, kTask);
  EXPECT_EQ(r.kind(), CancelKind::kTimeout);
  EXPECT_EQ(r.tier(), 1);
  EXPECT_EQ(r.origin_region(), kRegion);
  EXPECT_EQ(r.origin_task(), kTask);
  EXPECT_EQ(r.time(), Time::FromNanoseconds(12'000'000));
  EXPECT_EQ(r.message(), "slow");
  EXPECT_EQ(r.cause(), nullptr);
  EXPECT_EQ(r.cause_depth(), 0);
  EXPECT_FALSE(r.cause_truncated());
  EXPECT_EQ(r.to_string(), "Timeout at 12ms from region 3#1 task 4#2: 'slow'");
}

TEST(CancelReasonTest, DefaultConstructed) {
  const CancelReason r;
  EXPECT_EQ(r.kind(), CancelKind::kUser);
  EXPECT_FALSE(r.origin_region().is_valid());
  EXPECT_FALSE(r.origin_task().has_value());
  EXPECT_EQ(r.time(), Time::Epoch());
  EXPECT_TRUE(r.message().empty());
  EXPECT_EQ(r.cause(), nullptr);
  EXPECT_EQ(r, CancelReason());
  std::vector<CancelReason> v(3);  // Usable in containers.
  EXPECT_EQ(v[2], r);
}

// SPEC 1.4, 4.1: a ParentCancelled reason whose cause is the original one.
TEST(CancelReasonTest, CausedBy) {
  const CancelReason root = Reason(CancelKind::kUser, 10'000'000, "ctrl-c", RegionId(1, 1), kTask);
  const CancelReason child = root.caused_by(CancelKind::kParentCancelled, kRegion, std::nullopt,
                                            Time::FromNanoseconds(12'000'000), "server stopping");
  EXPECT_EQ(child.kind(), CancelKind::kParentCancelled);
  ASSERT_NE(child.cause(), nullptr);
  EXPECT_EQ(*child.cause(), root);
  EXPECT_EQ(child.cause_depth(), 1);
  EXPECT_FALSE(child.cause_truncated());
  EXPECT_EQ(child.to_string(),
            "ParentCancelled at 12ms from region 3#1: 'server stopping' <- User at 10ms from "
            "region 1#1 task 4#2: 'ctrl-c'");
  // The cause is a snapshot: copies share it and outlive the original.
  const CancelReason copy = child;
  EXPECT_EQ(copy, child);
  EXPECT_EQ(copy.cause(), child.cause());
}

TEST(CancelReasonTest, EqualityComparesEveryField) {
  const CancelReason base = Reason(CancelKind::kTimeout, 5, "m", kRegion, kTask);
  EXPECT_EQ(base, Reason(CancelKind::kTimeout, 5, "m", kRegion, kTask));
  EXPECT_NE(base, Reason(CancelKind::kDeadline, 5, "m", kRegion, kTask));
  EXPECT_NE(base, Reason(CancelKind::kTimeout, 6, "m", kRegion, kTask));
  EXPECT_NE(base, Reason(CancelKind::kTimeout, 5, "n", kRegion, kTask));
  EXPECT_NE(base, Reason(CancelKind::kTimeout, 5, "m", RegionId(9, 1), kTask));
  EXPECT_NE(base, Reason(CancelKind::kTimeout, 5, "m", kRegion, std::nullopt));
  const CancelReason cause_a = Reason(CancelKind::kUser, 1, "x");
  const CancelReason cause_b = Reason(CancelKind::kUser, 2, "x");
  const auto derive = [](const CancelReason& cause) {
    return cause.caused_by(CancelKind::kTimeout, kRegion, kTask, Time::FromNanoseconds(5), "m");
  };
  EXPECT_NE(base, derive(cause_a));
  EXPECT_EQ(derive(cause_a), derive(cause_a));  // Distinct cause objects, equal values.
  EXPECT_NE(derive(cause_a), derive(cause_b));
}

// SPEC 1.4: the cause chain is bounded; the oldest causes are dropped.
TEST(CancelReasonTest, CauseChainIsBounded) {
  CancelReason r = Reason(CancelKind::kUser, 0, "m0");
  for (int i = 1; i <= CancelReason::kMaxCauseDepth; ++i) {
    r = r.caused_by(CancelKind::kParentCancelled, kRegion, std::nullopt, Time::FromNanoseconds(i),
                    "m" + std::to_string(i));
    EXPECT_EQ(r.cause_depth(), i);
    EXPECT_FALSE(r.cause_truncated());
  }
  const CancelReason full = r;  // m8 <- m7 <- ... <- m0: exactly kMaxCauseDepth causes.
  for (int i = CancelReason::kMaxCauseDepth + 1; i <= 20; ++i) {
    r = r.caused_by(CancelKind::kParentCancelled, kRegion, std::nullopt, Time::FromNanoseconds(i),
                    "m" + std::to_string(i));
    EXPECT_EQ(r.cause_depth(), CancelReason::kMaxCauseDepth);
    EXPECT_TRUE(r.cause_truncated());
    // The newest causes are kept, in order, and the chain really ends after kMaxCauseDepth.
    const CancelReason* link = &r;
    for (int k = 0; k <= CancelReason::kMaxCauseDepth; ++k) {
      ASSERT_NE(link, nullptr);
      EXPECT_EQ(link->message(), "m" + std::to_string(i - k));
      EXPECT_EQ(link->cause_depth(), CancelReason::kMaxCauseDepth - k);
      EXPECT_TRUE(link->cause_truncated());
      link = link->cause();
    }
    EXPECT_EQ(link, nullptr);
  }
  EXPECT_NE(r.to_string().find("'m20' <- "), std::string::npos);
  EXPECT_EQ(r.to_string().find("'m11'"), std::string::npos);
  EXPECT_TRUE(r.to_string().ends_with(": 'm12' <- ...")) << r.to_string();
  // Truncation built new links: the earlier full chain is unchanged.
  EXPECT_FALSE(full.cause_truncated());
  EXPECT_EQ(full.cause_depth(), CancelReason::kMaxCauseDepth);
  int length = 0;
  for (const CancelReason* link = full.cause(); link != nullptr; link = link->cause()) ++length;
  EXPECT_EQ(length, CancelReason::kMaxCauseDepth);
}

// SPEC 1.4: the higher tier wins; on a tie the earlier time; then the smaller message.
TEST(StrengthenTest, SpecRules) {
  for (CancelKind a : kAllCancelKinds) {
    for (CancelKind b : kAllCancelKinds) {
      // Different tiers: the higher tier wins whatever the times and messages.
      const CancelReason ra = Reason(a, 1, "a");
      const CancelReason rb = Reason(b, 100, "z");
      const CancelReason s = strengthen(ra, rb);
      if (cancel_tier(a) > cancel_tier(b)) {
        EXPECT_EQ(s, ra);
      } else if (cancel_tier(a) < cancel_tier(b)) {
        EXPECT_EQ(s, rb);
      } else {
        EXPECT_EQ(s, ra);  // Same tier: the earlier time wins over kind order.
        EXPECT_EQ(strengthen(rb, ra), ra);
      }
    }
  }
  const CancelReason early = Reason(CancelKind::kTimeout, 1, "z");
  const CancelReason late = Reason(CancelKind::kDeadline, 2, "a");
  EXPECT_EQ(strengthen(early, late), early);
  EXPECT_EQ(strengthen(late, early), early);
  const CancelReason small = Reason(CancelKind::kRaceLost, 7, "alpha");
  const CancelReason big = Reason(CancelKind::kFailFast, 7, "beta");
  EXPECT_EQ(strengthen(small, big), small);
  EXPECT_EQ(strengthen(big, small), small);
  EXPECT_EQ(strengthen(Reason(CancelKind::kUser, 0), Reason(CancelKind::kShutdown, 99)).kind(),
            CancelKind::kShutdown);
}

// SPEC 1.4: deterministic, idempotent, commutative (in value), associative, monotone, and the
// result is one of the inputs, at least as strong as both.
TEST(StrengthenTest, AlgebraicProperties) {
  const std::vector<CancelReason> sample = Sample();
  ASSERT_GT(sample.size(), 100u);
  for (const CancelReason& a : sample) {
    EXPECT_EQ(strengthen(a, a), a);
    EXPECT_EQ(compare_strength(a, a), 0);
    for (const CancelReason& b : sample) {
      const CancelReason ab = strengthen(a, b);
      ASSERT_EQ(ab, strengthen(b, a)) << a << " | " << b;
      ASSERT_EQ(ab, strengthen(a, b));  // Deterministic.
      ASSERT_TRUE(ab == a || ab == b);
      ASSERT_GE(compare_strength(ab, a), 0);
      ASSERT_GE(compare_strength(ab, b), 0);
      ASSERT_EQ(ab.tier(), std::max(a.tier(), b.tier()));
      ASSERT_EQ(strengthen(ab, a), ab);  // Strengthening again with an input changes nothing.
      // The order is total and antisymmetric, and 0 means equal.
      const int ca = compare_strength(a, b);
      ASSERT_EQ(ca, -compare_strength(b, a));
      ASSERT_EQ(ca == 0, a == b);
    }
  }
}

TEST(StrengthenTest, AssociativeAndMonotone) {
  // A smaller sample keeps the cube fast.
  std::vector<CancelReason> sample;
  for (CancelKind kind : {CancelKind::kUser, CancelKind::kTimeout, CancelKind::kDeadline,
                          CancelKind::kFailFast, CancelKind::kShutdown}) {
    for (int64_t t : {0, 5}) {
      for (const char* msg : {"a", "b"}) sample.push_back(Reason(kind, t, msg));
    }
    sample.push_back(Reason(kind, 5, "a", RegionId(1, 1), kTask));
  }
  for (const CancelReason& a : sample) {
    for (const CancelReason& b : sample) {
      for (const CancelReason& c : sample) {
        ASSERT_EQ(strengthen(strengthen(a, b), c), strengthen(a, strengthen(b, c)));
        // Monotone: strengthening a stronger input never gives a weaker result.
        if (compare_strength(a, b) >= 0) {
          ASSERT_GE(compare_strength(strengthen(a, c), strengthen(b, c)), 0) << a << b << c;
        }
      }
    }
  }
}

// SPEC 4.1: repeated requests only ever tighten: folding strengthen over any sequence of
// requests gives a non-decreasing sequence of reasons.
TEST(StrengthenTest, RepeatedRequestsOnlyTighten) {
  const std::vector<CancelReason> sample = Sample();
  CancelReason current = sample.front();
  std::set<std::string> seen_kinds;
  for (size_t i = 0; i < sample.size(); ++i) {
    const CancelReason& request = sample[(i * 37) % sample.size()];
    const CancelReason next = strengthen(current, request);
    ASSERT_GE(compare_strength(next, current), 0);
    ASSERT_GE(next.tier(), current.tier());
    current = next;
    seen_kinds.emplace(cancel_kind_name(current.kind()));
  }
  EXPECT_EQ(current.kind(), CancelKind::kShutdown);
  EXPECT_EQ(current.time(), Time::Epoch());
  EXPECT_GT(seen_kinds.size(), 1u);
}

}  // namespace
}  // namespace asupersync
