#include "bench/compare_cli.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace asupersync::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<CompareCommandLine> parse(std::vector<const char*> words) {
  words.insert(words.begin(), "compare");
  return parse_compare_command_line(static_cast<int>(words.size()), words.data());
}

TEST(CompareCommandLineTest, ScenarioAndArgumentsWithTheDefaultWorkers) {
  absl::StatusOr<CompareCommandLine> line = parse({"cancel_group", "100000", "100", "50"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->threads, kDefaultCompareThreads);
  EXPECT_EQ(line->scenario, "cancel_group");
  EXPECT_THAT(line->arguments, ElementsAre("100000", "100", "50"));
}

TEST(CompareCommandLineTest, ThreadsOption) {
  absl::StatusOr<CompareCommandLine> line = parse({"--threads", "1", "spawn_join", "10"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->threads, 1);
  EXPECT_EQ(line->scenario, "spawn_join");
  EXPECT_THAT(line->arguments, ElementsAre("10"));
}

TEST(CompareCommandLineTest, NoScenarioIsNotAnError) {
  absl::StatusOr<CompareCommandLine> line = parse({"--threads", "4"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_TRUE(line->scenario.empty());
  EXPECT_TRUE(line->arguments.empty());
}

TEST(CompareCommandLineTest, BadOptionsAreNamed) {
  EXPECT_THAT(parse({"--workers", "2", "spawn_join", "1"}).status().message(),
              HasSubstr("unknown option --workers"));
  EXPECT_THAT(parse({"--threads"}).status().message(), HasSubstr("needs a worker count"));
  EXPECT_THAT(parse({"--threads", "two", "spawn_join"}).status().message(),
              HasSubstr("bad --threads: 'two'"));
  EXPECT_THAT(parse({"--threads", "0", "spawn_join"}).status().message(),
              HasSubstr("bad --threads: '0'"));
  EXPECT_THAT(parse({"--threads", "5000", "spawn_join"}).status().message(),
              HasSubstr("more than 1024"));
  EXPECT_EQ(parse({"--threads", "-1", "spawn_join"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParsePositiveCountTest, AcceptsDecimalAndRejectsTheRest) {
  EXPECT_EQ(*parse_positive_count("1000000", "size"), 1000000u);
  EXPECT_THAT(parse_positive_count("", "size").status().message(), HasSubstr("bad size: ''"));
  EXPECT_FALSE(parse_positive_count("0", "size").ok());
  EXPECT_FALSE(parse_positive_count("-5", "size").ok());
  EXPECT_FALSE(parse_positive_count("12x", "size").ok());
  EXPECT_FALSE(parse_positive_count("99999999999999999999999", "size").ok());  // overflows
}

}  // namespace
}  // namespace asupersync::bench
