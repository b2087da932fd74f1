#include "cancel/cancel_state.h"

#include "gtest/gtest.h"

namespace asupersync {
namespace {

CancelReason reason(CancelKind kind, int64_t at_ms, std::string message = "") {
  return CancelReason(kind, RegionId(1, 1), std::nullopt,
                      Time::Epoch() + Duration::Milliseconds(at_ms), std::move(message));
}

// SPEC 4.1: requests are idempotent and monotone.
TEST(CancelStateTest, RepeatedRequestsStrengthenReasonAndTightenBudget) {
  CancelState state;
  EXPECT_FALSE(state.requested());
  EXPECT_TRUE(state.request(reason(CancelKind::kUser, 5),
                            cleanup_budget_for(CancelKind::kUser, Budget::Infinite())));
  EXPECT_EQ(state.reason().kind(), CancelKind::kUser);
  EXPECT_EQ(state.cleanup_budget().poll_quota, 1000u);

  EXPECT_FALSE(state.request(reason(CancelKind::kShutdown, 9),
                             cleanup_budget_for(CancelKind::kShutdown, Budget::Infinite())));
  EXPECT_EQ(state.reason().kind(), CancelKind::kShutdown);
  EXPECT_EQ(state.cleanup_budget().poll_quota, 50u);
  EXPECT_EQ(state.cleanup_budget().priority, 255);

  // A weaker request afterwards changes nothing (monotone).
  EXPECT_FALSE(state.request(reason(CancelKind::kUser, 1),
                             cleanup_budget_for(CancelKind::kUser, Budget::Infinite())));
  EXPECT_EQ(state.reason().kind(), CancelKind::kShutdown);
  EXPECT_EQ(state.cleanup_budget().poll_quota, 50u);
}

// SPEC 1.5: a caller-supplied budget is met with the kind's default.
TEST(CancelStateTest, CallerBudgetIsMetWithKindDefault) {
  Budget caller =
      Budget::Infinite().with_poll_quota(10).with_deadline(Time::Epoch() + Duration::Seconds(5));
  Budget cleanup = cleanup_budget_for(CancelKind::kTimeout, caller);
  EXPECT_EQ(cleanup.poll_quota, 10u);
  EXPECT_EQ(cleanup.priority, 210);
  ASSERT_TRUE(cleanup.deadline.has_value());
  EXPECT_EQ(*cleanup.deadline, Time::Epoch() + Duration::Seconds(5));
}

// SPEC 4.4: shields defer delivery and nest to depth 64.
TEST(CancelStateTest, ShieldDefersDeliveryAndHasDepthLimit) {
  CancelState state;
  ASSERT_TRUE(state.push_shield().ok());
  state.request(reason(CancelKind::kUser, 0), Budget::Infinite());
  EXPECT_TRUE(state.requested());
  EXPECT_FALSE(state.deliverable());
  state.pop_shield();
  EXPECT_TRUE(state.deliverable());

  for (int i = 0; i < kMaxShieldDepth; ++i) ASSERT_TRUE(state.push_shield().ok()) << i;
  absl::Status too_deep = state.push_shield();
  EXPECT_EQ(too_deep.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(too_deep.message().find("64"), absl::string_view::npos);
  EXPECT_EQ(state.shield_depth(), kMaxShieldDepth);
}

TEST(CancelStateTest, AcknowledgeIsRecorded) {
  CancelState state;
  state.request(reason(CancelKind::kDeadline, 0), Budget::Infinite());
  EXPECT_FALSE(state.acknowledged());
  state.acknowledge();
  state.acknowledge();
  EXPECT_TRUE(state.acknowledged());
}

}  // namespace
}  // namespace asupersync
