// TaskGroup<T>: a dynamic set of tasks inside the caller's region (SPEC 7.1).
//
//   TaskGroup<Response> handlers(cx, "handlers");
//   for (Request& request : batch) {
//     absl::StatusOr<TaskId> id = handlers.spawn("handle " + request.path, Handler{request});
//     if (!id.ok()) break;                                  // e.g. RegionClosed: shutting down
//   }
//   while (!handlers.empty()) {
//     auto next = handlers.join_next(cx);                   // name it, then await it
//     Outcome<JoinedTask<Response>> finished = co_await std::move(next);
//     if (!finished.ok()) break;                            // Cancelled: we are being cancelled
//     use(finished.value().outcome);                        // in completion order
//   }
//
// Members are ordinary tasks of the region of the Cx the group was created with (spawned with
// that Cx's capabilities and budget, narrowed by SpawnOptions): they appear in Region::dump,
// the region waits for them before it closes (no orphans, SPEC 1), and its failure policy
// applies to them (under the default FailFast a member's Err or Panicked cancels the region's
// other tasks and its body; open the region with CollectAll to handle failures through the
// group). Each member's outcome is also kept for the group: join_next returns the next member
// to finish, in completion order; join_all and cancel_all return every member, in spawn order.
//
//   spawn       starts a member; RegionClosed (is_region_closed) once the region is no longer
//               Open (SPEC 3.2), PermissionDenied without Spawn, ResourceExhausted over the
//               region's max_tasks.
//   join_next   the next finished member (its id, name, outcome); Err(OutOfRange) when no
//               member is left to join; Cancelled when the caller is cancelled while waiting.
//   join_all    every member, once all have finished.
//   cancel_all  requests cancellation of every running member, waits until all have finished
//               (drained, or destroyed by escalation), and returns every member.
//
// Thread-safety: a group belongs to the task that created it: call its methods from that task
// only. One wait at a time: join_next, join_all or cancel_all called while another of them is
// waiting fails with FailedPrecondition. Members may finish on any worker thread: the state
// they share with the group is guarded by a mutex.
//
// Lifetime: the group must not outlive the task that created it (it spawns with a copy of that
// task's Cx), hence not its region; keep it a local of that task. Destroying the group requests
// cancellation (kind User) of every member still running and returns at once; the region still
// waits for them (SPEC 2.2: work is never detached), and their outcomes are dropped (a panic
// still reaches the region, SPEC 2.3). Like any TaskHandle::cancel, members cancelled by
// cancel_all or by the destructor count as Cancelled in the region's outcome (core/README.md).
// Movable (not while one of its waits runs), not copyable.
//
// Cancellation contract: join_next and join_all are cancellation points (SPEC 2.5): a
// deliverable request makes them return Cancelled(the caller's reason) and consume nothing —
// members they had collected stay in the group for a later call, in the same order. cancel_all
// is not interruptible: it drains under a shield, as a region close does. Waiting costs one
// short-lived child region of the caller's region holding one "bell" task, which the next
// member to finish rings. When the caller's region no longer admits child regions (a member
// task whose region's body returned), join_next waits on the oldest running member instead:
// the order stays the completion order, but a member that finishes earlier is returned only
// when that oldest one finishes.

#ifndef ASUPERSYNC_CORE_TASK_GROUP_H_
#define ASUPERSYNC_CORE_TASK_GROUP_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cancel_reason.h"
#include "core/combinators.h"
#include "core/cx.h"
#include "core/id.h"
#include "core/outcome.h"
#include "core/source_site.h"
#include "core/task.h"

namespace asupersync {

// A member of a TaskGroup that finished, as join_next, join_all and cancel_all return it.
template <typename T>
struct JoinedTask {
  TaskId task_id;
  std::string name;
  Outcome<T> outcome;
  // True when the member was destroyed by escalation after its cleanup budget ran out (SPEC 4.5).
  bool budget_exhausted = false;
};

namespace task_group_internal {

class GroupCore;

// The task join_next parks the caller behind: it joins itself, so it ends only when a member
// rings it (cancels it through `handle`).
class Bell {
 public:
  void ring(const std::string& group_name);

  TaskHandle<void> handle;  // set under the group's mutex before the bell is armed
};

// The part of a group that does not depend on T: which members finished, in order, and the
// bell a waiting join_next is parked behind.
class GroupCore {
 public:
  explicit GroupCore(std::string name) : name_(std::move(name)) {}
  GroupCore(const GroupCore&) = delete;
  GroupCore& operator=(const GroupCore&) = delete;

  const std::string& name() const { return name_; }

  // A member's frame ended (it returned, threw, or was destroyed by escalation): queue it in
  // completion order and ring the armed bell, if any.
  void member_finished(uint64_t key);

  enum class WaitKind { kReady, kCancelled, kUnavailable };
  struct WaitResult {
    WaitKind kind = WaitKind::kReady;
    std::optional<CancelReason> reason;  // for kCancelled
  };
  // Waits, as a cancellation point, until a member finished or none is running (kReady; the
  // caller rechecks), the caller is cancelled (kCancelled), or no waiting region can be opened
  // because the caller's region is no longer Open (kUnavailable).
  Task<WaitResult> wait_for_member(Cx& cx);

  // One wait at a time (see task_group.h).
  absl::Status begin_waiting(const char* operation);
  void end_waiting();

  std::mutex mutex;
  std::deque<uint64_t> completed;    // guarded by mutex: finished, not yet returned
  std::set<uint64_t> running;        // guarded by mutex: spawned, frame not ended
  std::shared_ptr<Bell> armed_bell;  // guarded by mutex
  bool waiting = false;              // guarded by mutex

 private:
  const std::string name_;
};

// Lives in a member's frame; tells the group when the frame ends, however it ends.
class FinishNotice {
 public:
  FinishNotice(GroupCore* core, uint64_t key) : core_(core), key_(key) {}
  FinishNotice(const FinishNotice&) = delete;
  FinishNotice& operator=(const FinishNotice&) = delete;
  ~FinishNotice() { core_->member_finished(key_); }

 private:
  GroupCore* core_;
  uint64_t key_;
};

// The task body of a member: runs `fn` inline and passes its result (or exception) through, so
// the runtime records the member's outcome exactly as for a plain spawn.
template <typename T, typename F>
struct MemberBody {
  std::shared_ptr<GroupCore> core;
  uint64_t key;
  F fn;

  Task<T> operator()(Cx& cx) {
    FinishNotice notice(core.get(), key);
    Task<T> work = fn(cx);
    if constexpr (std::is_void_v<T>) {
      co_await std::move(work);
      co_return;
    } else {
      co_return co_await std::move(work);
    }
  }
};

[[noreturn]] void invariant_violated(const std::string& what);

// The typed state: one entry per member not yet returned.
template <typename T>
class GroupState final : public GroupCore {
 public:
  using GroupCore::GroupCore;

  struct Member {
    std::string name;
    TaskId id;
    TaskHandle<T> handle;
    std::optional<Outcome<T>> outcome;  // taken from the handle, not yet returned
  };

  enum class NextKind { kMember, kEmpty, kCancelled };
  struct Next {
    NextKind kind = NextKind::kEmpty;
    uint64_t key = 0;
    std::optional<CancelReason> reason;
  };

  // The next finished member, its outcome taken into its entry; kEmpty when none is left
  // running or queued; kCancelled when the caller is cancelled while waiting (nothing taken).
  Task<Next> next_finished(Cx& cx);

  // Removes the members `keys` and returns them in spawn order.
  std::vector<JoinedTask<T>> remove_sorted(std::vector<uint64_t> keys);

  std::map<uint64_t, Member> members;  // guarded by mutex; keys in spawn order
  uint64_t next_key = 0;               // guarded by mutex

 private:
  Member& member(uint64_t key) {
    std::lock_guard<std::mutex> lock(mutex);
    return members.at(key);  // std::map entries are stable while other entries come and go
  }
};

template <typename T>
Task<typename GroupState<T>::Next> GroupState<T>::next_finished(Cx& cx) {
  while (true) {
    std::optional<uint64_t> key;
    std::optional<uint64_t> oldest_running;
    bool empty = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!completed.empty()) {
        key = completed.front();
        completed.pop_front();
      } else if (running.empty()) {
        empty = true;
      } else {
        oldest_running = *running.begin();
      }
    }
    if (empty) co_return Next{NextKind::kEmpty, 0, std::nullopt};
    if (key.has_value()) {
      Member& finished = member(*key);
      if (!finished.outcome.has_value()) {
        std::optional<Outcome<T>> taken = finished.handle.try_take();
        if (!taken.has_value()) {
          // The member's frame has ended but its worker has not completed it yet: wait for
          // that, shielded (it cannot block; a failed shield means we are shielded already).
          absl::StatusOr<ShieldGuard> shield = cx.shield();
          Outcome<T> joined = co_await finished.handle.join(cx);
          taken.emplace(std::move(joined));
        }
        finished.outcome = std::move(taken);
      }
      co_return Next{NextKind::kMember, *key, std::nullopt};
    }
    WaitResult waited = co_await wait_for_member(cx);
    if (waited.kind == WaitKind::kCancelled) {
      co_return Next{NextKind::kCancelled, 0, std::move(waited.reason)};
    }
    if (waited.kind == WaitKind::kUnavailable) {
      // No waiting region: wait for the oldest running member itself (see task_group.h).
      Member& oldest = member(*oldest_running);
      if (oldest.outcome.has_value()) continue;
      Outcome<T> joined = co_await oldest.handle.join(cx);
      if (joined.is_cancelled()) {
        // The member's own Cancelled, or this join cancelled (then the outcome is untaken).
        std::optional<Outcome<T>> untaken = oldest.handle.try_take();
        if (untaken.has_value() || !oldest.handle.finished()) {
          if (untaken.has_value()) oldest.outcome = std::move(untaken);
          co_return Next{NextKind::kCancelled, 0, joined.cancel_reason()};
        }
      }
      oldest.outcome = std::move(joined);  // it is queued in `completed` by now
    }
  }
}

template <typename T>
std::vector<JoinedTask<T>> GroupState<T>::remove_sorted(std::vector<uint64_t> keys) {
  std::sort(keys.begin(), keys.end());
  std::vector<JoinedTask<T>> joined;
  joined.reserve(keys.size());
  std::lock_guard<std::mutex> lock(mutex);
  for (uint64_t key : keys) {
    auto found = members.find(key);
    if (found == members.end() || !found->second.outcome.has_value()) {
      invariant_violated("TaskGroup '" + name() + "': a returned member has no outcome");
    }
    Member& finished = found->second;
    joined.push_back(JoinedTask<T>{finished.id, std::move(finished.name),
                                   std::move(*finished.outcome),
                                   finished.handle.budget_exhausted()});
    members.erase(found);
  }
  return joined;
}

// Ends a wait of the group when it goes out of scope.
class WaitingScope {
 public:
  explicit WaitingScope(GroupCore* core) : core_(core) {}
  WaitingScope(const WaitingScope&) = delete;
  WaitingScope& operator=(const WaitingScope&) = delete;
  ~WaitingScope() { core_->end_waiting(); }

 private:
  GroupCore* core_;
};

}  // namespace task_group_internal

template <typename T>
class TaskGroup {
 public:
  // A group whose members are spawned into `cx`'s region with `cx`'s capabilities and budget.
  // `name` appears in error messages and in the names of its waiting regions.
  explicit TaskGroup(Cx& cx, std::string name = "task group")
      : cx_(cx), state_(std::make_shared<task_group_internal::GroupState<T>>(std::move(name))) {}
  TaskGroup(TaskGroup&&) noexcept = default;
  TaskGroup& operator=(TaskGroup&&) = delete;
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  // Requests cancellation of the members still running; does not wait (see the file comment).
  ~TaskGroup();

  // Starts `fn(member_cx)` as a member named `name` (see cx.spawn for `options` and the errors).
  template <TaskFactory F>
  requires std::same_as<TaskValueOf<F>, T> absl::StatusOr<TaskId> spawn(
      std::string name, F fn, SpawnOptions options = {}, SourceSite site = SourceSite::current());

  // The next member to finish, in completion order. A cancellation point; see the file comment.
  Task<Outcome<JoinedTask<T>>> join_next(Cx& cx);

  // Every member, in spawn order, once all have finished (Ok of an empty vector for an empty
  // group). A cancellation point: Cancelled consumes nothing.
  Task<Outcome<std::vector<JoinedTask<T>>>> join_all(Cx& cx);

  // Requests cancellation of every running member with `message`, `cleanup` and `kind` (as
  // TaskHandle::cancel), waits until every member has finished, and returns them all in spawn
  // order. Not interruptible. Err(FailedPrecondition) only while another wait of the group runs.
  Task<Outcome<std::vector<JoinedTask<T>>>> cancel_all(
      Cx& cx, std::string message = "cancelled by TaskGroup::cancel_all",
      Budget cleanup = Budget::Infinite(), CancelKind kind = CancelKind::kUser);

  // Members not yet returned by a join (running, or finished and waiting to be joined).
  size_t size() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->members.size();
  }
  bool empty() const { return size() == 0; }
  // Members still running.
  size_t running() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->running.size();
  }
  const std::string& name() const { return state_->name(); }

 private:
  using State = task_group_internal::GroupState<T>;
  using NextKind = typename State::NextKind;

  Cx cx_;
  std::shared_ptr<State> state_;
};

template <typename T>
TaskGroup<T>::~TaskGroup() {
  if (state_ == nullptr) return;  // moved from
  std::vector<TaskHandle<T>> running;
  std::vector<TaskHandle<T>> finished;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    for (auto& [key, member] : state_->members) {
      (state_->running.count(key) != 0 ? running : finished).push_back(std::move(member.handle));
    }
    // The members' task records hold the state; dropping the handles here breaks that cycle.
    // Members finishing later find nothing to report to.
    state_->members.clear();
    state_->running.clear();
    state_->completed.clear();
  }
  const std::string message = "TaskGroup '" + state_->name() + "' was destroyed with " +
                              std::to_string(running.size()) + " member(s) still running";
  for (TaskHandle<T>& handle : running) handle.cancel(message);
}

template <typename T>
template <TaskFactory F>
requires std::same_as<TaskValueOf<F>, T> absl::StatusOr<TaskId> TaskGroup<T>::spawn(
    std::string name, F fn, SpawnOptions options, SourceSite site) {
  uint64_t key = 0;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    key = state_->next_key++;
    // Registered before the task exists: on another worker it may finish before spawn returns.
    state_->members.emplace(key, typename State::Member{name, TaskId(), TaskHandle<T>(), {}});
    state_->running.insert(key);
  }
  absl::StatusOr<TaskHandle<T>> spawned =
      cx_.spawn(std::move(name), task_group_internal::MemberBody<T, F>{state_, key, std::move(fn)},
                options, site);
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (!spawned.ok()) {
    state_->members.erase(key);
    state_->running.erase(key);
    return spawned.status();
  }
  typename State::Member& member = state_->members.at(key);
  member.id = spawned->id();
  member.handle = std::move(spawned).value();
  return member.id;
}

template <typename T>
Task<Outcome<JoinedTask<T>>> TaskGroup<T>::join_next(Cx& cx) {
  absl::Status entry = co_await cx.checkpoint();
  if (!entry.ok()) {
    co_return Outcome<JoinedTask<T>>::Cancelled(
        combinators_internal::reason_for_cancelled_caller(cx, entry));
  }
  if (absl::Status busy = state_->begin_waiting("join_next"); !busy.ok()) {
    co_return Outcome<JoinedTask<T>>::Err(busy);
  }
  task_group_internal::WaitingScope waiting(state_.get());
  typename State::Next next = co_await state_->next_finished(cx);
  switch (next.kind) {
    case NextKind::kMember: {
      std::vector<JoinedTask<T>> joined = state_->remove_sorted({next.key});
      co_return Outcome<JoinedTask<T>>::Ok(std::move(joined.front()));
    }
    case NextKind::kCancelled:
      co_return Outcome<JoinedTask<T>>::Cancelled(std::move(*next.reason));
    case NextKind::kEmpty:
      break;
  }
  co_return Outcome<JoinedTask<T>>::Err(absl::OutOfRangeError(
      "TaskGroup '" + state_->name() + "'::join_next: no member is left to join"));
}

template <typename T>
Task<Outcome<std::vector<JoinedTask<T>>>> TaskGroup<T>::join_all(Cx& cx) {
  using Result = Outcome<std::vector<JoinedTask<T>>>;
  absl::Status entry = co_await cx.checkpoint();
  if (!entry.ok()) {
    co_return Result::Cancelled(combinators_internal::reason_for_cancelled_caller(cx, entry));
  }
  if (absl::Status busy = state_->begin_waiting("join_all"); !busy.ok()) {
    co_return Result::Err(busy);
  }
  task_group_internal::WaitingScope waiting(state_.get());
  std::vector<uint64_t> keys;
  while (true) {
    typename State::Next next = co_await state_->next_finished(cx);
    if (next.kind == NextKind::kMember) {
      keys.push_back(next.key);
      continue;
    }
    if (next.kind == NextKind::kCancelled) {
      // Consume nothing: put the collected members back at the front, in the same order.
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->completed.insert(state_->completed.begin(), keys.begin(), keys.end());
      co_return Result::Cancelled(std::move(*next.reason));
    }
    break;
  }
  co_return Result::Ok(state_->remove_sorted(std::move(keys)));
}

template <typename T>
Task<Outcome<std::vector<JoinedTask<T>>>> TaskGroup<T>::cancel_all(Cx& cx, std::string message,
                                                                   Budget cleanup,
                                                                   CancelKind kind) {
  using Result = Outcome<std::vector<JoinedTask<T>>>;
  if (absl::Status busy = state_->begin_waiting("cancel_all"); !busy.ok()) {
    co_return Result::Err(busy);
  }
  task_group_internal::WaitingScope waiting(state_.get());
  std::vector<TaskHandle<T>*> running;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    for (uint64_t key : state_->running) running.push_back(&state_->members.at(key).handle);
  }
  for (TaskHandle<T>* handle : running) handle->cancel(message, cleanup, kind);
  // Drain like a region close: not interruptible. A failed shield means 64 are active already.
  absl::StatusOr<ShieldGuard> shield = cx.shield();
  std::vector<uint64_t> keys;
  while (true) {
    typename State::Next next = co_await state_->next_finished(cx);
    if (next.kind == NextKind::kEmpty) break;
    if (next.kind == NextKind::kCancelled) {
      task_group_internal::invariant_violated("TaskGroup '" + state_->name() +
                                              "'::cancel_all: a shielded wait was cancelled");
    }
    keys.push_back(next.key);
  }
  co_return Result::Ok(state_->remove_sorted(std::move(keys)));
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_TASK_GROUP_H_
