// GoogleTest helpers for lab::Explore results.
//
//   EXPECT_LAB_OK(lab::Explore(options, scenario));      // fails with the full report
//   ASSERT_LAB_OK(result);
//   EXPECT_LAB_FINDS(result, "deadlock");                // a failure of that kind ("" = any)
//
// The report carries the seed, the replay string (re-run one schedule with
// LAB_REPLAY='<string>' and --gtest_filter=<the test>), the failure and the trace tail.
//
// Thread-safety, lifetime: as GoogleTest's assertions. Cancellation: not applicable.

#ifndef ASUPERSYNC_LAB_TESTING_H_
#define ASUPERSYNC_LAB_TESTING_H_

#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "lab/explore.h"

namespace asupersync::lab {

inline ::testing::AssertionResult LabPassed(const ExploreResult& result) {
  if (result.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\n" << result.report();
}

inline ::testing::AssertionResult LabFound(const ExploreResult& result, std::string_view kind) {
  if (!result.status.ok()) return ::testing::AssertionFailure() << "\n" << result.report();
  if (!result.failure.has_value()) {
    return ::testing::AssertionFailure() << "expected the lab to find a bug"
                                         << (kind.empty() ? "" : " of kind ") << kind << ", but\n"
                                         << result.report();
  }
  if (!kind.empty() && result.failure->kind != kind) {
    return ::testing::AssertionFailure() << "expected a failure of kind " << kind << ", got\n"
                                         << result.report();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace asupersync::lab

#define EXPECT_LAB_OK(result) EXPECT_TRUE(::asupersync::lab::LabPassed(result))
#define ASSERT_LAB_OK(result) ASSERT_TRUE(::asupersync::lab::LabPassed(result))
#define EXPECT_LAB_FINDS(result, kind) EXPECT_TRUE(::asupersync::lab::LabFound((result), (kind)))
#define ASSERT_LAB_FINDS(result, kind) ASSERT_TRUE(::asupersync::lab::LabFound((result), (kind)))

#endif  // ASUPERSYNC_LAB_TESTING_H_
