#include "core/task_group.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/region.h"

namespace asupersync::task_group_internal {
namespace {

// The bell task: joins itself, which never completes on its own; a ring (a cancel request)
// ends the join, and the task.
struct BellBody {
  GroupCore* core;
  Bell* bell;

  Task<void> operator()(Cx& cx) {
    // The handle is assigned under the mutex after spawn returns; wait for that.
    { std::lock_guard<std::mutex> lock(core->mutex); }
    Outcome<void> rung = co_await bell->handle.join(cx);
    (void)rung;  // Cancelled: rung, or the caller was cancelled
  }
};

// The body of the waiting region: arms a bell unless a member finished meanwhile, and returns;
// the region's close is the wait.
struct ArmBell {
  GroupCore* core;
  std::shared_ptr<Bell> bell;

  Task<void> operator()(Cx& region_cx) {
    std::lock_guard<std::mutex> lock(core->mutex);
    if (!core->completed.empty() || core->running.empty()) co_return;
    auto spawned =
        region_cx.spawn("task group '" + core->name() + "' bell", BellBody{core, bell.get()});
    if (!spawned.ok()) co_return;  // the region is being cancelled: its close returns at once
    bell->handle = std::move(spawned).value();
    core->armed_bell = bell;
  }
};

}  // namespace

void invariant_violated(const std::string& what) {
  std::fprintf(stderr, "asupersync: invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void Bell::ring(const std::string& group_name) {
  handle.cancel("a member of task group '" + group_name + "' finished");
}

void GroupCore::member_finished(uint64_t key) {
  std::shared_ptr<Bell> bell;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (running.erase(key) == 0) return;  // the group is gone (destroyed before the member)
    completed.push_back(key);
    bell = std::move(armed_bell);
  }
  if (bell != nullptr) bell->ring(name_);
}

absl::Status GroupCore::begin_waiting(const char* operation) {
  std::lock_guard<std::mutex> lock(mutex);
  if (waiting) {
    return absl::FailedPreconditionError(
        "TaskGroup '" + name_ + "'::" + operation +
        ": another join_next, join_all or cancel_all of this group is already waiting; a group "
        "belongs to one task and has one wait at a time");
  }
  waiting = true;
  return absl::OkStatus();
}

void GroupCore::end_waiting() {
  std::lock_guard<std::mutex> lock(mutex);
  waiting = false;
}

Task<GroupCore::WaitResult> GroupCore::wait_for_member(Cx& cx) {
  auto bell = std::make_shared<Bell>();
  // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
  auto waiting = Region::open(cx, "task group '" + name_ + "' join_next", ArmBell{this, bell});
  Outcome<void> waited = co_await std::move(waiting);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (armed_bell == bell) armed_bell.reset();  // not rung: the caller was cancelled
  }
  absl::Status after = co_await cx.checkpoint();
  if (!after.ok()) {
    const bool region_says_why =
        waited.is_cancelled() && waited.cancel_reason().kind() == CancelKind::kParentCancelled;
    co_return WaitResult{WaitKind::kCancelled,
                         region_says_why
                             ? combinators_internal::caller_reason(waited.cancel_reason())
                             : combinators_internal::reason_for_cancelled_caller(cx, after)};
  }
  // Err: the region could not be opened (the caller's region is not Open, or is at its
  // max_child_regions).
  co_return WaitResult{waited.is_err() ? WaitKind::kUnavailable : WaitKind::kReady, std::nullopt};
}

}  // namespace asupersync::task_group_internal
