// Copyright The Asupersync Authors.

#include "core/time.h"

#include <cstdint>
#include <limits>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace asupersync {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// Everything below the factories is usable in constant expressions.
static_assert(Duration::Milliseconds(3).nanoseconds() == 3'000'000);
static_assert(Duration::Seconds(kMax).is_infinite());
static_assert(Time::Epoch() + Duration::Seconds(1) == Time::FromNanoseconds(1'000'000'000));
static_assert(Duration::Zero() < Duration::Nanoseconds(1));

TEST(DurationTest, FactoriesScale) {
  EXPECT_EQ(Duration::Nanoseconds(7).nanoseconds(), 7);
  EXPECT_EQ(Duration::Microseconds(7).nanoseconds(), 7'000);
  EXPECT_EQ(Duration::Milliseconds(7).nanoseconds(), 7'000'000);
  EXPECT_EQ(Duration::Seconds(7).nanoseconds(), 7'000'000'000);
  EXPECT_EQ(Duration::Seconds(-2).nanoseconds(), -2'000'000'000);
  EXPECT_EQ(Duration::Zero().nanoseconds(), 0);
  EXPECT_EQ(Duration().nanoseconds(), 0);
  EXPECT_EQ(Duration::Infinite().nanoseconds(), kMax);
  EXPECT_TRUE(Duration::Infinite().is_infinite());
  EXPECT_FALSE(Duration::Seconds(1).is_infinite());
}

TEST(DurationTest, FactoriesSaturate) {
  EXPECT_EQ(Duration::Seconds(kMax), Duration::Infinite());
  EXPECT_EQ(Duration::Microseconds(kMax / 999), Duration::Infinite());
  EXPECT_EQ(Duration::Milliseconds(kMin).nanoseconds(), kMin);
  EXPECT_EQ(Duration::Seconds(kMin / 2).nanoseconds(), kMin);
}

TEST(DurationTest, Comparisons) {
  EXPECT_LT(Duration::Microseconds(999), Duration::Milliseconds(1));
  EXPECT_EQ(Duration::Microseconds(1000), Duration::Milliseconds(1));
  EXPECT_GT(Duration::Infinite(), Duration::Seconds(1'000'000'000));
  EXPECT_LT(Duration::Nanoseconds(-1), Duration::Zero());
  EXPECT_NE(Duration::Nanoseconds(1), Duration::Nanoseconds(2));
}

TEST(DurationTest, Arithmetic) {
  EXPECT_EQ(Duration::Milliseconds(1) + Duration::Microseconds(500), Duration::Microseconds(1500));
  EXPECT_EQ(Duration::Milliseconds(1) - Duration::Milliseconds(3), Duration::Milliseconds(-2));
  EXPECT_EQ(Duration::Milliseconds(3) * 4, Duration::Milliseconds(12));
  EXPECT_EQ(4 * Duration::Milliseconds(3), Duration::Milliseconds(12));
  EXPECT_EQ(-Duration::Seconds(2), Duration::Seconds(-2));
  Duration d = Duration::Seconds(1);
  d += Duration::Seconds(2);
  d -= Duration::Milliseconds(500);
  d *= 2;
  EXPECT_EQ(d, Duration::Seconds(5));
}

TEST(DurationTest, ArithmeticSaturates) {
  const Duration max_finite = Duration::Nanoseconds(kMax - 1);
  EXPECT_EQ(max_finite + Duration::Nanoseconds(10), Duration::Infinite());
  EXPECT_EQ(Duration::Nanoseconds(kMin) - Duration::Nanoseconds(1), Duration::Nanoseconds(kMin));
  EXPECT_EQ(Duration::Nanoseconds(kMin) + Duration::Nanoseconds(-1), Duration::Nanoseconds(kMin));
  EXPECT_EQ(Duration::Seconds(1) * kMax, Duration::Infinite());
  EXPECT_EQ(Duration::Seconds(1) * kMin, Duration::Nanoseconds(kMin));
  EXPECT_EQ(Duration::Seconds(-1) * kMin, Duration::Infinite());
  EXPECT_EQ(-Duration::Nanoseconds(kMin), Duration::Infinite());
  EXPECT_EQ(Duration::Zero() - Duration::Infinite(), Duration::Nanoseconds(-kMax));
}

TEST(DurationTest, InfinityIsAbsorbing) {
  const Duration inf = Duration::Infinite();
  EXPECT_EQ(inf + Duration::Seconds(1), inf);
  EXPECT_EQ(inf + Duration::Seconds(-1), inf);
  EXPECT_EQ(Duration::Seconds(-1) + inf, inf);
  EXPECT_EQ(inf - Duration::Seconds(1), inf);
  EXPECT_EQ(inf - inf, Duration::Zero());
  EXPECT_EQ(inf * 3, inf);
  EXPECT_EQ(inf * 0, Duration::Zero());
}

TEST(DurationTest, ToString) {
  EXPECT_EQ(Duration::Zero().to_string(), "0s");
  EXPECT_EQ(Duration::Nanoseconds(999).to_string(), "999ns");
  EXPECT_EQ(Duration::Microseconds(250).to_string(), "250us");
  EXPECT_EQ(Duration::Nanoseconds(1'500).to_string(), "1.5us");
  EXPECT_EQ(Duration::Microseconds(1'500).to_string(), "1.5ms");
  EXPECT_EQ(Duration::Nanoseconds(1'234'567).to_string(), "1.234567ms");
  EXPECT_EQ(Duration::Milliseconds(12).to_string(), "12ms");
  EXPECT_EQ(Duration::Seconds(3).to_string(), "3s");
  EXPECT_EQ(Duration::Nanoseconds(3'000'000'001).to_string(), "3.000000001s");
  EXPECT_EQ(Duration::Milliseconds(-1'500).to_string(), "-1.5s");
  EXPECT_EQ(Duration::Nanoseconds(kMin).to_string(), "-9223372036.854775808s");
  EXPECT_EQ(Duration::Infinite().to_string(), "inf");
  EXPECT_EQ(Duration::Nanoseconds(kMax - 1).to_string(), "9223372036.854775806s");
  std::ostringstream os;
  os << Duration::Milliseconds(2);
  EXPECT_EQ(os.str(), "2ms");
}

// SPEC 1.1
TEST(TimeTest, NanosecondsSinceEpoch) {
  EXPECT_EQ(Time::Epoch().nanoseconds(), 0);
  EXPECT_EQ(Time().nanoseconds(), 0);
  EXPECT_EQ(Time::FromNanoseconds(42).nanoseconds(), 42);
  EXPECT_EQ(Time::Infinite().nanoseconds(), kMax);
  EXPECT_TRUE(Time::Infinite().is_infinite());
  EXPECT_FALSE(Time::Epoch().is_infinite());
  EXPECT_EQ(Time::FromNanoseconds(5).since_epoch(), Duration::Nanoseconds(5));
}

TEST(TimeTest, Comparisons) {
  EXPECT_LT(Time::Epoch(), Time::FromNanoseconds(1));
  EXPECT_LT(Time::FromNanoseconds(kMax - 1), Time::Infinite());
  EXPECT_EQ(Time::FromNanoseconds(3), Time::Epoch() + Duration::Nanoseconds(3));
  EXPECT_GE(Time::Infinite(), Time::Infinite());
}

TEST(TimeTest, Arithmetic) {
  const Time t = Time::Epoch() + Duration::Milliseconds(10);
  EXPECT_EQ(t.nanoseconds(), 10'000'000);
  EXPECT_EQ(Duration::Milliseconds(10) + Time::Epoch(), t);
  EXPECT_EQ(t - Duration::Milliseconds(4), Time::FromNanoseconds(6'000'000));
  EXPECT_EQ(t - Time::Epoch(), Duration::Milliseconds(10));
  EXPECT_EQ(Time::Epoch() - t, Duration::Milliseconds(-10));
  EXPECT_EQ(t - t, Duration::Zero());
  Time u = t;
  u += Duration::Seconds(1);
  u -= Duration::Milliseconds(10);
  EXPECT_EQ(u, Time::Epoch() + Duration::Seconds(1));
}

TEST(TimeTest, ArithmeticSaturates) {
  EXPECT_EQ(Time::FromNanoseconds(kMax - 5) + Duration::Nanoseconds(100), Time::Infinite());
  EXPECT_EQ(Time::FromNanoseconds(kMin) - Duration::Nanoseconds(1), Time::FromNanoseconds(kMin));
  EXPECT_EQ(Time::FromNanoseconds(kMin + 1) + Duration::Nanoseconds(-5),
            Time::FromNanoseconds(kMin));
  EXPECT_EQ(Time::FromNanoseconds(kMin) - Time::FromNanoseconds(1), Duration::Nanoseconds(kMin));
  EXPECT_EQ(Time::FromNanoseconds(kMax - 1) - Time::FromNanoseconds(-5), Duration::Infinite());
}

TEST(TimeTest, InfinityIsAbsorbing) {
  const Time never = Time::Infinite();
  EXPECT_EQ(never + Duration::Seconds(1), never);
  EXPECT_EQ(never + Duration::Seconds(-1), never);
  EXPECT_EQ(never - Duration::Seconds(1), never);
  EXPECT_EQ(Time::Epoch() + Duration::Infinite(), never);
  EXPECT_EQ(Time::FromNanoseconds(-100) + Duration::Infinite(), never);
  // The time left until "never" is unbounded, whatever now is.
  EXPECT_EQ(never - Time::FromNanoseconds(123), Duration::Infinite());
  EXPECT_EQ(never - never, Duration::Zero());
}

TEST(TimeTest, ToString) {
  EXPECT_EQ(Time::Epoch().to_string(), "0s");
  EXPECT_EQ((Time::Epoch() + Duration::Milliseconds(12)).to_string(), "12ms");
  EXPECT_EQ(Time::FromNanoseconds(1'500'000).to_string(), "1.5ms");
  EXPECT_EQ(Time::Infinite().to_string(), "inf");
  std::ostringstream os;
  os << Time::FromNanoseconds(7);
  EXPECT_EQ(os.str(), "7ns");
}

TEST(TimeTest, Hashes) {
  absl::flat_hash_set<Time> times = {Time::Epoch(), Time::FromNanoseconds(1), Time::Epoch()};
  EXPECT_EQ(times.size(), 2u);
  absl::flat_hash_set<Duration> durations = {Duration::Zero(), Duration::Infinite()};
  EXPECT_EQ(durations.size(), 2u);
}

}  // namespace
}  // namespace asupersync
