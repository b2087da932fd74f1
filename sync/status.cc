#include "sync/status.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace asupersync {
namespace {

// The same payload key core uses for typed errors (RegionClosed).
constexpr char kErrorTypeUrl[] = "asupersync/error-type";
constexpr char kLaggedCountUrl[] = "asupersync/lagged-count";

absl::Status typed(absl::Status status, std::string_view type) {
  status.SetPayload(kErrorTypeUrl, absl::Cord(absl::string_view(type.data(), type.size())));
  return status;
}

bool has_type(const absl::Status& status, std::string_view type) {
  auto payload = status.GetPayload(kErrorTypeUrl);
  return payload.has_value() && std::string(*payload) == type;
}

}  // namespace

absl::Status channel_closed_error(std::string_view message) {
  return typed(absl::FailedPreconditionError(std::string(message) + " (ChannelClosed)"),
               "ChannelClosed");
}

bool is_channel_closed(const absl::Status& status) { return has_type(status, "ChannelClosed"); }

absl::Status end_of_stream_error(std::string_view message) {
  return typed(absl::OutOfRangeError(std::string(message) + " (EndOfStream)"), "EndOfStream");
}

bool is_end_of_stream(const absl::Status& status) { return has_type(status, "EndOfStream"); }

absl::Status lagged_error(std::string_view message, uint64_t missed) {
  absl::Status status = typed(absl::DataLossError(std::string(message) + " (Lagged: missed " +
                                                  std::to_string(missed) + ")"),
                              "Lagged");
  const std::string count = std::to_string(missed);
  status.SetPayload(kLaggedCountUrl, absl::Cord(absl::string_view(count)));
  return status;
}

bool is_lagged(const absl::Status& status) { return has_type(status, "Lagged"); }

std::optional<uint64_t> lagged_count(const absl::Status& status) {
  if (!is_lagged(status)) return std::nullopt;
  auto payload = status.GetPayload(kLaggedCountUrl);
  uint64_t missed = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &missed)) {
    return std::nullopt;
  }
  return missed;
}

absl::Status poisoned_error(std::string_view message) {
  return typed(absl::FailedPreconditionError(std::string(message) + " (Poisoned)"), "Poisoned");
}

bool is_poisoned(const absl::Status& status) { return has_type(status, "Poisoned"); }

}  // namespace asupersync
