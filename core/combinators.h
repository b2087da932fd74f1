// Combinators: join_all, race and timeout (SPEC 7.1).
//
//   auto joined = join_all(cx, fetch_user, fetch_orders);   // tuple<Outcome<User>, Outcome<...>>
//   auto raced = race(cx, ask_primary, ask_replica);        // RaceResult<Answer>
//   auto bounded = timeout(cx, Duration::Milliseconds(50), ask_primary);  // Outcome<Answer>
//   // Name the task first, then await it (GCC 12 workaround, core/README.md):
//   auto both = co_await std::move(joined);
//
// Every argument is a callable `fn(Cx&) -> Task<T>` (a coroutine lambda, a functor, a function
// pointer); it is taken by value and kept alive until its task is done, so a coroutine lambda's
// captures stay valid.
//
// Structure: each combinator opens a private child region of the caller's region (named
// "join_all", "race" or "timeout", visible in Region::dump), runs every callable as a task of
// that region, and returns only when the region is Closed: every task it started has finished
// (or was destroyed by escalation, SPEC 4.5) and every finalizer those tasks registered there with
// cx.defer has run. Nothing a combinator starts outlives the call (SPEC 1, no orphans). The
// private region uses CollectAll (a failing task does not cancel its siblings; its outcome is
// returned) and the caller's region's escalation policy. It stays Open while its tasks run, so
// they may spawn helpers into it and use combinators in turn (a race contestant may call
// timeout). Cost per call, besides the tasks themselves: two regions and one waiter task (see
// the implementation notes below).
//
//   join_all   waits for every task; returns every outcome, in argument order.
//   race       the first task to finish wins, whatever its outcome (Ok, Err or Panicked). The
//              winner cancels the others (reason kind RaceLost, SPEC 4.7) and race drains them
//              (waits until each has finished) before it returns. A loser that panicked is
//              reported in RaceResult::loser_panics even when the winner succeeded.
//   timeout    a race of the work against a sleep of `duration`. On expiry the work is cancelled
//              (reason kind Timeout) and drained, and timeout returns
//              Err(DeadlineExceeded: "timeout: the work did not finish within 5ms; ...");
//              is_timeout_expired(status) tells it apart from a DeadlineExceeded the work
//              returned itself.
//
// Outcomes (SPEC 1.3): a task returning absl::Status / absl::StatusOr<U> that is not OK
// finishes with Err, as for cx.spawn; an escaped exception is Panicked (SPEC 2.3).
//
// Errors: a combinator that cannot start its tasks reports Err with the reason: RegionClosed
// (is_region_closed) when the caller's region no longer admits child regions, which is the case
// for a spawned task once its region's body has returned (SPEC 3.2, core/README.md);
// PermissionDenied without the Spawn capability (and, for timeout, the Time capability);
// InvalidArgument for a race of no contestants.
//
// Panics of the private region itself (a leaked obligation under LeakPolicy::kPanic, a throwing
// finalizer a task registered there) belong to no task's outcome; the combinator rethrows them
// after the region closed, so they reach the caller like any panic (SPEC 2.3, 5.3).
//
// Thread-safety: the state the tasks of one call share is guarded by a mutex, so the tasks may
// run on any worker thread. Call a combinator, and await it, from one task.
// Lifetime: the Cx& must be the caller's own context and outlive the returned Task; await the
// Task at once.
//
// Cancellation contract: every combinator is a cancellation point (SPEC 2.5). A cancel request
// already deliverable on entry returns Cancelled without starting anything. A request that
// arrives while the combinator waits cancels its private region: every task gets a
// ParentCancelled request (whose cause is the caller's reason) and the combinator keeps waiting
// until all of them have finished; then join_all returns each task's outcome (mostly
// Cancelled), and race and timeout return Cancelled(the reason the caller was cancelled with)
// unless a contestant had already won before the request (a won result is never thrown away:
// race returns it and the caller observes its request at its next cancellation point).

#ifndef ASUPERSYNC_CORE_COMBINATORS_H_
#define ASUPERSYNC_CORE_COMBINATORS_H_

#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cancel_reason.h"
#include "core/cx.h"
#include "core/outcome.h"
#include "core/region.h"
#include "core/task.h"
#include "core/time.h"

namespace asupersync {

// A callable that can be run as a task: `fn(cx)` returns a Task<T>.
template <typename F>
concept TaskFactory = requires(F& fn, Cx& cx) {
  typename std::invoke_result_t<F&, Cx&>::value_type;
  requires std::same_as<std::invoke_result_t<F&, Cx&>,
                        Task<typename std::invoke_result_t<F&, Cx&>::value_type>>;
};

// The T of the Task<T> that `F` returns.
template <TaskFactory F>
using TaskValueOf = typename std::invoke_result_t<F&, Cx&>::value_type;

// A race contestant that panicked after another one had won (or while the race was cancelled).
struct LoserPanic {
  size_t index = 0;  // position of the contestant among race's arguments
  PanicInfo panic;
};

// What race returns.
template <typename T>
struct RaceResult {
  // Position of the winner among the contestants: the first one to finish. Empty when no
  // contestant won: the race was cancelled before any finished, or it could not start.
  std::optional<size_t> winner_index;
  // The winner's outcome; Cancelled(the caller's reason) when the race was cancelled before a
  // winner; Err when it could not start.
  Outcome<T> outcome;
  // Every contestant that panicked without winning, in the order they finished.
  std::vector<LoserPanic> loser_panics;

  // `outcome` joined (SPEC 1.3) with every loser panic: Panicked (the first loser panic) when a
  // loser panicked, whatever the winner did. The single outcome to propagate.
  Outcome<T> joined() && {
    if (loser_panics.empty() || outcome.is_panicked()) return std::move(outcome);
    return Outcome<T>::Panicked(loser_panics.front().panic);
  }
};

// True when `status` is the DeadlineExceeded that timeout() returns on expiry.
bool is_timeout_expired(const absl::Status& status);

// join_all(cx, fns...): runs every callable as a task (named "join_all[i]") and waits for all
// of them; returns their outcomes in argument order. See the file comment.
template <TaskFactory... F>
auto join_all(Cx& cx, F... fns) -> Task<std::tuple<Outcome<TaskValueOf<F>>...>>;

// Homogeneous form: one outcome per callable, in order.
template <TaskFactory F>
auto join_all(Cx& cx, std::vector<F> fns) -> Task<std::vector<Outcome<TaskValueOf<F>>>>;

// race(cx, fns...): every callable returns the same Task<T>. The first to finish wins; the
// others are cancelled with RaceLost and drained before race returns. See the file comment.
template <TaskFactory F, TaskFactory... Rest>
auto race(Cx& cx, F first, Rest... rest) -> Task<RaceResult<TaskValueOf<F>>>;

// Homogeneous form. An empty vector returns Err(InvalidArgument).
template <TaskFactory F>
auto race(Cx& cx, std::vector<F> fns) -> Task<RaceResult<TaskValueOf<F>>>;

// timeout(cx, duration, fn): `fn`'s outcome if it finishes within `duration`; otherwise `fn` is
// cancelled (kind Timeout) and drained and the result is Err(DeadlineExceeded) (see
// is_timeout_expired), or Panicked if `fn` panicked while draining. Needs the Time capability.
template <TaskFactory F>
auto timeout(Cx& cx, Duration duration, F fn) -> Task<Outcome<TaskValueOf<F>>>;

// --- Implementation ------------------------------------------------------------------------------
//
// Shape of one call (race shown; join_all and timeout are the same):
//
//   caller task ── Region::open("race") ── body: spawns the contestants into "race", then
//                                            Region::open("race waiter") whose only task joins
//                                            the contestants one by one
//
// The body stays in Region::open("race waiter") until the waiter is done, which keeps "race"
// Open (a region's tasks may open regions and spawn only while its body runs), so contestants
// can use combinators in turn. The caller is parked on a region close the whole time: escalation
// and the lab's deadlock teardown never destroy a task parked there (they would destroy a region
// body parked on a join while its region still has tasks). A cancel request reaching the caller
// or the region cancels "race" and, through it, the waiter; the waiter's joins then return at
// once, the body returns, and Region::open("race") drains the contestants.

namespace combinators_internal {

// The reason to report when a cancellation point of `cx` returned the kCancelled `status`. Core
// exposes the reason object of a request only through the region: the region's reason when the
// caller's region was cancelled, else a User reason whose message is the request's text.
CancelReason reason_for_cancelled_caller(Cx& cx, const absl::Status& status);

// The reason the caller was cancelled with, given the reason its private region was cancelled
// with: a request reaching the caller reaches the region as ParentCancelled caused by it.
CancelReason caller_reason(const CancelReason& region_reason);

// The options of a combinator's private region (CollectAll, the caller's escalation policy).
RegionOptions private_region_options(Cx& cx);

// The error timeout returns on expiry.
absl::Status timeout_expired_error(Duration duration);

// "<prefix>[<index>]".
std::string indexed_name(const char* prefix, size_t index);

// Rethrows the private region's own panic (see the file comment).
[[noreturn]] void rethrow_region_panic(const char* combinator, const PanicInfo& panic);

// Starts one task of a combinator; an error stops the start.
using Spawner = std::function<absl::Status(Cx&)>;
// One step of a waiter: joins one task; true when the join itself was cancelled (stop waiting).
using JoinStep = std::function<Task<bool>(Cx&)>;

// The body of a combinator's private region: runs the spawners in order (returning the first
// error, after which the region cancels what did start), then runs the join steps in order in a
// task "<waiter_name>" of a child region "<waiter_name>" and returns when that region closed
// (see the comment above). Returns at once when the waiter region cannot be opened: the private
// region is then already closing, and its close does the waiting.
struct SpawnThenWait {
  std::vector<Spawner> spawners;
  std::vector<JoinStep> steps;
  std::string waiter_name;

  Task<absl::Status> operator()(Cx& region_cx);
};

// Joins `handle` and stores its outcome in `slot` (if not null). Returns true when the join was
// cancelled before the task finished, false when the task finished (or was never started).
template <typename T>
Task<bool> join_into(Cx& cx, TaskHandle<T>* handle, std::optional<Outcome<T>>* slot) {
  if (!handle->valid()) co_return false;
  Outcome<T> joined = co_await handle->join(cx);
  bool interrupted = false;
  if (joined.is_cancelled()) {
    // Cancelled is either the task's own outcome (then the join took it) or the join being
    // cancelled (then the outcome, if the task is done, is still there to take).
    if (std::optional<Outcome<T>> untaken = handle->try_take()) {
      joined = std::move(*untaken);
      interrupted = true;
    } else if (!handle->finished()) {
      co_return true;
    }
  }
  if (slot != nullptr) slot->emplace(std::move(joined));
  co_return interrupted;
}

template <typename T>
JoinStep join_step(TaskHandle<T>* handle, std::optional<Outcome<T>>* slot) {
  return [handle, slot](Cx& cx) { return join_into<T>(cx, handle, slot); };
}

template <typename T>
struct IsStatusLike : std::false_type {};
template <>
struct IsStatusLike<absl::Status> : std::true_type {};
template <typename U>
struct IsStatusLike<absl::StatusOr<U>> : std::true_type {};

// A returned value as an outcome: a non-OK Status / StatusOr is Err (as for cx.spawn).
template <typename T>
Outcome<T> outcome_of_value(T&& value) {
  if constexpr (std::is_same_v<T, absl::Status>) {
    if (!value.ok()) return Outcome<T>::Err(value);
  } else if constexpr (IsStatusLike<T>::value) {
    if (!value.ok()) return Outcome<T>::Err(value.status());
  }
  return Outcome<T>::Ok(std::move(value));
}

// Calls `each(index, element)` for every element of a std::vector or std::tuple, in order.
template <typename Container, typename Each>
void for_each_indexed(Container& container, Each&& each) {
  if constexpr (requires { container.size(); }) {
    for (size_t i = 0; i < container.size(); ++i) each(i, container[i]);
  } else {
    [&]<size_t... I>(std::index_sequence<I...>) { (each(I, std::get<I>(container)), ...); }
    (std::make_index_sequence<std::tuple_size_v<Container>>{});
  }
}

// ----- race and timeout ----------------------------------------------------------------------

// The state shared by the contestants of one race.
template <typename T>
struct RaceState {
  std::mutex mutex;
  std::optional<size_t> winner_index;    // guarded by mutex
  std::optional<Outcome<T>> winner;      // guarded by mutex
  bool timer_won = false;                // guarded by mutex (timeout only)
  std::vector<LoserPanic> loser_panics;  // guarded by mutex
};

// Claims the win for contestant `index` with `outcome` (null for timeout's timer) if nobody won
// yet and no cancel request is pending for it: a contestant that finishes because it was
// cancelled is not a winner. The winner cancels the race region (the other contestants) with
// `loser_kind`. A loser's panic is kept; its other outcomes are discarded.
template <typename T>
void claim_win(RaceState<T>& state, Cx& cx, size_t index, std::optional<Outcome<T>>* outcome,
               CancelKind loser_kind, const std::string& loser_message) {
  bool won = false;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    if (!state.winner_index.has_value() && !cx.cancel_requested()) {
      won = true;
      state.winner_index = index;
      if (outcome != nullptr) {
        state.winner = std::move(*outcome);
      } else {
        state.timer_won = true;
      }
    } else if (outcome != nullptr && (*outcome)->is_panicked()) {
      state.loser_panics.push_back(LoserPanic{index, (*outcome)->panic_info()});
    }
  }
  if (won) cx.cancel_region(loser_message, Budget::Infinite(), loser_kind);
}

// The task body of one contestant: runs `fn` inline, turns how it ended into an Outcome<T>, and
// claims the win with it.
template <typename T, typename F>
struct ContestantBody {
  std::shared_ptr<RaceState<T>> state;
  size_t index;
  CancelKind loser_kind;
  std::string loser_message;
  F fn;

  Task<void> operator()(Cx& cx) {
    std::optional<Outcome<T>> outcome;
    try {
      Task<T> work = fn(cx);
      if constexpr (std::is_void_v<T>) {
        co_await std::move(work);
        outcome.emplace(Outcome<void>::Ok());
      } else {
        T value = co_await std::move(work);
        outcome.emplace(outcome_of_value<T>(std::move(value)));
      }
    } catch (...) {
      outcome.emplace(Outcome<T>::Panicked(PanicInfo::from_current_exception()));
    }
    claim_win<T>(*state, cx, index, &outcome, loser_kind, loser_message);
  }
};

// The timer of timeout(): sleeps, then claims the win (which cancels the work with Timeout).
template <typename T>
struct TimerBody {
  std::shared_ptr<RaceState<T>> state;
  size_t index;
  Duration duration;

  Task<void> operator()(Cx& cx) {
    absl::Status slept = co_await cx.sleep(duration);
    if (!slept.ok()) co_return;  // the work finished first, or the caller was cancelled
    claim_win<T>(*state, cx, index, nullptr, CancelKind::kTimeout,
                 "timeout: the work did not finish within " + duration.to_string());
  }
};

// Builds the spawners and join steps of a race: contestant i is spawned as "race[i]" and its
// handle stored in (*handles)[i], which must already have one element per contestant.
template <typename T, typename Contestants>
SpawnThenWait race_body(const std::shared_ptr<RaceState<T>>& state, Contestants* contestants,
                        std::vector<TaskHandle<void>>* handles) {
  SpawnThenWait body;
  body.waiter_name = "race waiter";
  for_each_indexed(*contestants, [&]<typename F>(size_t index, F& fn) {
    TaskHandle<void>* handle = &(*handles)[index];
    body.spawners.push_back([state, index, fn = &fn, handle](Cx& race_cx) -> absl::Status {
      auto spawned =
          race_cx.spawn(indexed_name("race", index),
                        ContestantBody<T, F>{state, index, CancelKind::kRaceLost,
                                             "race: lost to contestant #" + std::to_string(index),
                                             std::move(*fn)});
      if (!spawned.ok()) return spawned.status();
      *handle = std::move(spawned).value();
      return absl::OkStatus();
    });
    body.steps.push_back(join_step<void>(handle, nullptr));
  });
  return body;
}

// Builds what race returns once the race region closed.
template <typename T>
RaceResult<T> finish_race(RaceState<T>& state, Outcome<absl::Status> region) {
  std::lock_guard<std::mutex> lock(state.mutex);
  // Contestants catch their own exceptions: a Panicked region is the region's own panic.
  if (region.is_panicked()) rethrow_region_panic("race", region.panic_info());
  if (state.winner_index.has_value() && state.winner.has_value()) {
    return RaceResult<T>{state.winner_index, std::move(*state.winner),
                         std::move(state.loser_panics)};
  }
  Outcome<T> outcome = Outcome<T>::Err(absl::InternalError(
      "race: the race region closed without a winner and without being cancelled"));
  if (region.is_cancelled()) {
    outcome = Outcome<T>::Cancelled(caller_reason(region.cancel_reason()));
  } else if (region.is_err()) {
    outcome = Outcome<T>::Err(region.status());
  }
  return RaceResult<T>{std::nullopt, std::move(outcome), std::move(state.loser_panics)};
}

template <typename T, typename Contestants>
Task<RaceResult<T>> race_impl(Cx& cx, std::unique_ptr<Contestants> contestants, size_t count) {
  if (count == 0) {
    co_return RaceResult<T>{std::nullopt,
                            Outcome<T>::Err(absl::InvalidArgumentError(
                                "race: no contestants; pass at least one callable")),
                            {}};
  }
  absl::Status entry = co_await cx.checkpoint();
  if (!entry.ok()) {
    co_return RaceResult<T>{
        std::nullopt, Outcome<T>::Cancelled(reason_for_cancelled_caller(cx, entry)), {}};
  }
  auto state = std::make_shared<RaceState<T>>();
  std::vector<TaskHandle<void>> handles(count);
  // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
  auto closing = Region::open(cx, "race", race_body<T>(state, contestants.get(), &handles),
                              private_region_options(cx));
  Outcome<absl::Status> region = co_await std::move(closing);
  co_return finish_race<T>(*state, std::move(region));
}

template <typename T, typename F>
Task<Outcome<T>> timeout_impl(Cx& cx, Duration duration, std::unique_ptr<F> work) {
  if (absl::Status time = cx.require(Capability::kTime); !time.ok()) {
    co_return Outcome<T>::Err(time);
  }
  absl::Status entry = co_await cx.checkpoint();
  if (!entry.ok()) co_return Outcome<T>::Cancelled(reason_for_cancelled_caller(cx, entry));
  auto state = std::make_shared<RaceState<T>>();
  TaskHandle<void> work_handle;
  TaskHandle<void> timer_handle;
  SpawnThenWait body;
  body.waiter_name = "timeout waiter";
  body.spawners.push_back([&](Cx& timeout_cx) -> absl::Status {
    auto spawned = timeout_cx.spawn(
        "timeout work",
        ContestantBody<T, F>{state, 0, CancelKind::kTimeout,
                             "timeout: the work finished first; the timer is not needed",
                             std::move(*work)});
    if (!spawned.ok()) return spawned.status();
    work_handle = std::move(spawned).value();
    return absl::OkStatus();
  });
  body.spawners.push_back([&](Cx& timeout_cx) -> absl::Status {
    auto spawned = timeout_cx.spawn("timeout timer", TimerBody<T>{state, 1, duration});
    if (!spawned.ok()) return spawned.status();
    timer_handle = std::move(spawned).value();
    return absl::OkStatus();
  });
  body.steps.push_back(join_step<void>(&work_handle, nullptr));
  body.steps.push_back(join_step<void>(&timer_handle, nullptr));
  // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
  auto closing = Region::open(cx, "timeout", std::move(body), private_region_options(cx));
  Outcome<absl::Status> region = co_await std::move(closing);
  bool timer_won = false;
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    timer_won = state->timer_won;
  }
  RaceResult<T> raced = finish_race<T>(*state, std::move(region));
  if (timer_won) raced.outcome = Outcome<T>::Err(timeout_expired_error(duration));
  co_return std::move(raced).joined();
}

// ----- join_all ------------------------------------------------------------------------------

// Builds the spawners and join steps of join_all: callable i is spawned as "join_all[i]"; its
// handle goes to element i of `handles` and its outcome, once joined, to element i of `slots`
// (tuples for the variadic form, vectors sized to the callables for the homogeneous one).
template <typename Factories, typename Handles, typename Slots>
SpawnThenWait join_all_body(Factories* factories, Handles* handles, Slots* slots) {
  SpawnThenWait body;
  body.waiter_name = "join_all waiter";
  auto add = [&]<typename F, typename T>(size_t index, F* fn, TaskHandle<T>* handle,
                                         std::optional<Outcome<T>>* slot) {
    body.spawners.push_back([index, fn, handle](Cx& join_cx) -> absl::Status {
      auto spawned = join_cx.spawn(indexed_name("join_all", index), std::move(*fn));
      if (!spawned.ok()) return spawned.status();
      *handle = std::move(spawned).value();
      return absl::OkStatus();
    });
    body.steps.push_back(join_step<T>(handle, slot));
  };
  if constexpr (requires { factories->size(); }) {
    for (size_t i = 0; i < factories->size(); ++i) {
      add(i, &(*factories)[i], &(*handles)[i], &(*slots)[i]);
    }
  } else {
    [&]<size_t... I>(std::index_sequence<I...>) {
      (add(I, &std::get<I>(*factories), &std::get<I>(*handles), &std::get<I>(*slots)), ...);
    }
    (std::make_index_sequence<std::tuple_size_v<Factories>>{});
  }
  return body;
}

// The outcome of one join_all task once its region closed.
template <typename T>
Outcome<T> take_joined(TaskHandle<T>& handle, std::optional<Outcome<T>>& slot,
                       const absl::Status& spawn_error,
                       const std::optional<CancelReason>& cancelled_on_entry) {
  if (cancelled_on_entry.has_value()) return Outcome<T>::Cancelled(*cancelled_on_entry);
  if (slot.has_value()) return std::move(*slot);
  if (!handle.valid()) {
    return Outcome<T>::Err(spawn_error.ok() ? absl::InternalError("join_all: task not started")
                                            : spawn_error);
  }
  std::optional<Outcome<T>> outcome = handle.try_take();
  if (!outcome.has_value()) {
    return Outcome<T>::Err(
        absl::InternalError("join_all: a task of the closed join_all region has no outcome"));
  }
  return std::move(*outcome);
}

template <typename... T, typename Factories>
Task<std::tuple<Outcome<T>...>> join_all_impl(Cx& cx, std::unique_ptr<Factories> factories) {
  std::tuple<TaskHandle<T>...> handles;
  std::tuple<std::optional<Outcome<T>>...> slots;
  absl::Status spawn_error;
  std::optional<CancelReason> cancelled_on_entry;
  std::optional<Outcome<absl::Status>> region;
  absl::Status entry = co_await cx.checkpoint();
  if (!entry.ok()) {
    cancelled_on_entry = reason_for_cancelled_caller(cx, entry);
  } else {
    // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
    auto closing = Region::open(cx, "join_all", join_all_body(factories.get(), &handles, &slots),
                                private_region_options(cx));
    region.emplace(co_await std::move(closing));
    if (region->is_err()) spawn_error = region->status();
  }
  std::tuple<Outcome<T>...> outcomes = [&]<size_t... I>(std::index_sequence<I...>) {
    return std::tuple<Outcome<T>...>(take_joined<T>(std::get<I>(handles), std::get<I>(slots),
                                                    spawn_error, cancelled_on_entry)...);
  }
  (std::index_sequence_for<T...>{});
  const bool any_panicked = std::apply(
      [](const Outcome<T>&... each) { return (each.is_panicked() || ... || false); }, outcomes);
  if (region.has_value() && region->is_panicked() && !any_panicked) {
    rethrow_region_panic("join_all", region->panic_info());
  }
  co_return std::move(outcomes);
}

template <typename T, typename F>
Task<std::vector<Outcome<T>>> join_all_vector_impl(Cx& cx, std::unique_ptr<std::vector<F>> fns) {
  std::vector<TaskHandle<T>> handles(fns->size());
  std::vector<std::optional<Outcome<T>>> slots(fns->size());
  absl::Status spawn_error;
  std::optional<CancelReason> cancelled_on_entry;
  std::optional<Outcome<absl::Status>> region;
  absl::Status entry = co_await cx.checkpoint();
  if (!entry.ok()) {
    cancelled_on_entry = reason_for_cancelled_caller(cx, entry);
  } else {
    // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
    auto closing = Region::open(cx, "join_all", join_all_body(fns.get(), &handles, &slots),
                                private_region_options(cx));
    region.emplace(co_await std::move(closing));
    if (region->is_err()) spawn_error = region->status();
  }
  std::vector<Outcome<T>> outcomes;
  outcomes.reserve(handles.size());
  bool any_panicked = false;
  for (size_t i = 0; i < handles.size(); ++i) {
    outcomes.push_back(take_joined<T>(handles[i], slots[i], spawn_error, cancelled_on_entry));
    any_panicked = any_panicked || outcomes.back().is_panicked();
  }
  if (region.has_value() && region->is_panicked() && !any_panicked) {
    rethrow_region_panic("join_all", region->panic_info());
  }
  co_return std::move(outcomes);
}

}  // namespace combinators_internal

template <TaskFactory... F>
auto join_all(Cx& cx, F... fns) -> Task<std::tuple<Outcome<TaskValueOf<F>>...>> {
  return combinators_internal::join_all_impl<TaskValueOf<F>...>(
      cx, std::make_unique<std::tuple<F...>>(std::move(fns)...));
}

template <TaskFactory F>
auto join_all(Cx& cx, std::vector<F> fns) -> Task<std::vector<Outcome<TaskValueOf<F>>>> {
  return combinators_internal::join_all_vector_impl<TaskValueOf<F>, F>(
      cx, std::make_unique<std::vector<F>>(std::move(fns)));
}

template <TaskFactory F, TaskFactory... Rest>
auto race(Cx& cx, F first, Rest... rest) -> Task<RaceResult<TaskValueOf<F>>> {
  using T = TaskValueOf<F>;
  static_assert((std::is_same_v<T, TaskValueOf<Rest>> && ...),
                "race: every contestant must return the same Task<T>");
  return combinators_internal::race_impl<T, std::tuple<F, Rest...>>(
      cx, std::make_unique<std::tuple<F, Rest...>>(std::move(first), std::move(rest)...),
      1 + sizeof...(Rest));
}

template <TaskFactory F>
auto race(Cx& cx, std::vector<F> fns) -> Task<RaceResult<TaskValueOf<F>>> {
  const size_t count = fns.size();
  return combinators_internal::race_impl<TaskValueOf<F>, std::vector<F>>(
      cx, std::make_unique<std::vector<F>>(std::move(fns)), count);
}

template <TaskFactory F>
auto timeout(Cx& cx, Duration duration, F fn) -> Task<Outcome<TaskValueOf<F>>> {
  return combinators_internal::timeout_impl<TaskValueOf<F>, F>(cx, duration,
                                                               std::make_unique<F>(std::move(fn)));
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_COMBINATORS_H_
