#include "core/combinators.h"

#include <stdexcept>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace asupersync {
namespace {

// The same payload key as RegionClosed (core/cx.cc): one place to look for a typed error.
constexpr char kErrorTypeUrl[] = "asupersync/error-type";
constexpr char kTimeoutExpired[] = "TimeoutExpired";

// The waiter task: runs the join steps in order until one is cancelled.
struct Waiter {
  std::vector<combinators_internal::JoinStep> steps;

  Task<void> operator()(Cx& cx) {
    for (combinators_internal::JoinStep& step : steps) {
      Task<bool> joining = step(cx);
      if (co_await std::move(joining)) co_return;
    }
  }
};

// The body of the waiter region: starts the waiter and returns; the region's close waits for it.
struct WaiterRegionBody {
  std::vector<combinators_internal::JoinStep> steps;
  std::string name;

  Task<void> operator()(Cx& region_cx) {
    // If the waiter cannot start, the private region is closing: its own close waits instead.
    (void)region_cx.spawn(name, Waiter{std::move(steps)});
    co_return;
  }
};

}  // namespace

bool is_timeout_expired(const absl::Status& status) {
  if (!absl::IsDeadlineExceeded(status)) return false;
  auto payload = status.GetPayload(kErrorTypeUrl);
  return payload.has_value() && *payload == kTimeoutExpired;
}

namespace combinators_internal {

CancelReason reason_for_cancelled_caller(Cx& cx, const absl::Status& status) {
  if (cx.region().cancel_requested()) return cx.region().cancel_reason();
  absl::StatusOr<Time> now = cx.now();
  return CancelReason(CancelKind::kUser, cx.region_id(), cx.task_id(),
                      now.ok() ? *now : Time::Epoch(), std::string(status.message()));
}

CancelReason caller_reason(const CancelReason& region_reason) {
  if (region_reason.kind() == CancelKind::kParentCancelled && region_reason.cause() != nullptr) {
    return *region_reason.cause();
  }
  return region_reason;
}

RegionOptions private_region_options(Cx& cx) {
  RegionOptions options;
  options.failure_policy = FailurePolicy::kCollectAll;
  options.escalation = cx.region().escalation_policy();
  return options;
}

absl::Status timeout_expired_error(Duration duration) {
  absl::Status status = absl::DeadlineExceededError(
      absl::StrCat("timeout: the work did not finish within ", duration.to_string(),
                   "; it was cancelled (reason Timeout) and drained before timeout returned"));
  status.SetPayload(kErrorTypeUrl, absl::Cord(kTimeoutExpired));
  return status;
}

std::string indexed_name(const char* prefix, size_t index) {
  return absl::StrCat(prefix, "[", index, "]");
}

Task<absl::Status> SpawnThenWait::operator()(Cx& region_cx) {
  for (Spawner& spawner : spawners) {
    if (absl::Status spawned = spawner(region_cx); !spawned.ok()) co_return spawned;
  }
  std::string name = waiter_name;
  // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
  auto waiting =
      Region::open(region_cx, std::move(name), WaiterRegionBody{std::move(steps), waiter_name});
  Outcome<void> waited = co_await std::move(waiting);
  (void)waited;  // the waiter's own outcome carries nothing: the steps stored what they joined
  co_return absl::OkStatus();
}

void rethrow_region_panic(const char* combinator, const PanicInfo& panic) {
  if (panic.exception != nullptr) std::rethrow_exception(panic.exception);
  throw std::runtime_error(
      absl::StrCat(combinator, ": its private region panicked: ", panic.message));
}

}  // namespace combinators_internal
}  // namespace asupersync
