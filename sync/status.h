// Errors shared by the sync primitives and `SendResult<T>`, the result of a send that gives
// its value back when it cannot deliver it (SPEC 8.1, 13).
//
// Every failure is an `absl::Status` whose message names the primitive and the reason. The
// typed ones carry a payload so that code can test for them without parsing messages:
//
//   | predicate             | code                | when                                       |
//   |-----------------------|---------------------|--------------------------------------------|
//   | `is_channel_closed`   | FailedPrecondition  | the other side is gone (receiver dropped / |
//   |                       |                     | closed, oneshot sender dropped unsent)     |
//   | `is_end_of_stream`    | OutOfRange          | every value was received and no sender is  |
//   |                       |                     | left (mpsc, broadcast)                     |
//   | `is_lagged`           | DataLoss            | a broadcast receiver fell behind;          |
//   |                       |                     | `lagged_count` says how many it missed     |
//   | `is_poisoned`         | FailedPrecondition  | a Mutex holder panicked (or was destroyed) |
//   | `absl::IsCancelled`   | Cancelled           | the wait was cancelled; nothing consumed   |
//
// Non-blocking calls also use `absl::IsUnavailable` (nothing to receive now / lock held) and
// `absl::IsResourceExhausted` (a bounded channel is full now).
//
// Thread-safety: plain values. Lifetime: values. Cancellation: nothing here waits.

#ifndef ASUPERSYNC_SYNC_STATUS_H_
#define ASUPERSYNC_SYNC_STATUS_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

namespace asupersync {

absl::Status channel_closed_error(std::string_view message);
bool is_channel_closed(const absl::Status& status);

absl::Status end_of_stream_error(std::string_view message);
bool is_end_of_stream(const absl::Status& status);

// A broadcast receiver missed `missed` values; it continues from the oldest one retained.
absl::Status lagged_error(std::string_view message, uint64_t missed);
bool is_lagged(const absl::Status& status);
// How many values a lagged receiver missed; nullopt for any other status.
std::optional<uint64_t> lagged_count(const absl::Status& status);

absl::Status poisoned_error(std::string_view message);
bool is_poisoned(const absl::Status& status);

// The result of a send that could not always deliver: `status` is OK when the value was
// delivered (committed); otherwise `value` holds it, given back untouched (a cancelled or
// refused send consumes nothing, SPEC 8.1).
//
//   SendResult<Job> sent = co_await tx.send(cx, std::move(job));
//   if (!sent.ok()) retry_later(std::move(*sent.value));
template <typename T>
struct [[nodiscard]] SendResult {
  absl::Status status;
  std::optional<T> value;

  static SendResult Sent() { return SendResult{absl::OkStatus(), std::nullopt}; }
  static SendResult Failed(absl::Status why, T returned) {
    return SendResult{std::move(why), std::optional<T>(std::move(returned))};
  }

  bool ok() const { return status.ok(); }
};

}  // namespace asupersync

#endif  // ASUPERSYNC_SYNC_STATUS_H_
