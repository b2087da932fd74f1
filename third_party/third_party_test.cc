// Proves that each system-library wrapper links and works: Abseil containers, StatusOr,
// strings, synchronization and time; c-ares initialisation; llhttp parsing a request.

#include <ares.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llhttp/llhttp.h"

namespace {

absl::StatusOr<int> ParsePositive(int value) {
  if (value <= 0) return absl::InvalidArgumentError(absl::StrCat("not positive: ", value));
  return value;
}

TEST(AbseilTest, StatusOrCarriesValueOrError) {
  absl::StatusOr<int> good = ParsePositive(7);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  absl::StatusOr<int> bad = ParsePositive(-1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), testing::HasSubstr("not positive: -1"));
}

TEST(AbseilTest, ContainersStringsTimeAndMutex) {
  absl::flat_hash_map<std::string, int> counts;
  for (const char* word : {"a", "b", "a"}) ++counts[word];
  EXPECT_EQ(counts["a"], 2);
  EXPECT_EQ(counts["b"], 1);
  EXPECT_EQ(absl::StrFormat("%d-%s", 3, "x"), "3-x");
  EXPECT_EQ(absl::ToInt64Milliseconds(absl::Seconds(2)), 2000);
  absl::Mutex mutex;
  absl::MutexLock lock(&mutex);
  mutex.AssertHeld();
}

TEST(CaresTest, LibraryInitialisesAndChannelStarts) {
  ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
  ares_channel channel = nullptr;
  ares_options options{};
  options.flags = ARES_FLAG_NOSEARCH;
  // No servers are contacted: init only reads configuration.
  ASSERT_EQ(ares_init_options(&channel, &options, ARES_OPT_FLAGS), ARES_SUCCESS);
  EXPECT_NE(channel, nullptr);
  EXPECT_STREQ(ares_strerror(ARES_ENOTFOUND), "Domain name not found");
  ares_destroy(channel);
  ares_library_cleanup();
}

struct ParsedRequest {
  std::string url;
  std::vector<std::string> header_fields;
  std::string body;
  bool complete = false;
};

TEST(LlhttpTest, ParsesOneRequest) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = [](llhttp_t* parser, const char* at, size_t length) {
    static_cast<ParsedRequest*>(parser->data)->url.append(at, length);
    return 0;
  };
  settings.on_header_field = [](llhttp_t* parser, const char* at, size_t length) {
    static_cast<ParsedRequest*>(parser->data)->header_fields.emplace_back(at, length);
    return 0;
  };
  settings.on_body = [](llhttp_t* parser, const char* at, size_t length) {
    static_cast<ParsedRequest*>(parser->data)->body.append(at, length);
    return 0;
  };
  settings.on_message_complete = [](llhttp_t* parser) {
    static_cast<ParsedRequest*>(parser->data)->complete = true;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  ParsedRequest request;
  parser.data = &request;
  const std::string wire =
      "POST /items?id=3 HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello";
  ASSERT_EQ(llhttp_execute(&parser, wire.data(), wire.size()), HPE_OK);
  EXPECT_TRUE(request.complete);
  EXPECT_EQ(request.url, "/items?id=3");
  EXPECT_EQ(llhttp_get_method(&parser), HTTP_POST);
  EXPECT_THAT(request.header_fields, testing::ElementsAre("Host", "Content-Length"));
  EXPECT_EQ(request.body, "hello");
}

TEST(LlhttpTest, RejectsMalformedRequest) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  const std::string wire = "GET / HTTP/1.1\r\nBad Header\r\n\r\n";
  EXPECT_NE(llhttp_execute(&parser, wire.data(), wire.size()), HPE_OK);
  EXPECT_NE(std::string(llhttp_get_error_reason(&parser)), "");
}

}  // namespace
