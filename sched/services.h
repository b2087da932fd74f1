// Runtime services reached through a task's context on the production runtime:
// `spawn_blocking` (the Blocking capability, SPEC 6.5) and `shutdown_signal` (SIGINT/SIGTERM,
// SPEC 6.1).
//
//   absl::StatusOr<std::string> text = co_await spawn_blocking(cx, [] { return read_file(); });
//   co_await shutdown_signal(cx);   // returns when the process gets SIGINT or SIGTERM
//
// Thread-safety: both may be awaited from any task of the runtime, concurrently.
// Lifetime: the blocking job runs on a pool thread and may outlive the awaiting task (see below);
// it must not capture references to the task's frame unless the task waits for it.
//
// Cancellation contract:
// - spawn_blocking is a cancellation point. A blocking call cannot be interrupted: when the
//   waiting task is cancelled the wait ends at once with Cancelled, the job keeps running on its
//   thread, and its result is discarded when it finishes (documented loss: choose a shielded
//   await when the result must not be lost). A job that has not started yet still runs.
// - shutdown_signal is a cancellation point consuming nothing: a cancelled wait is removed, and
//   a signal that arrives later is seen by the next wait (the flag is sticky).
// Errors: PermissionDenied without the Blocking capability; FailedPrecondition on an executor
// other than sched::Runtime, or (shutdown_signal) when the runtime was created without
// `watch_shutdown_signals`; ResourceExhausted when the blocking pool's queue is full.

#ifndef ASUPERSYNC_SCHED_SERVICES_H_
#define ASUPERSYNC_SCHED_SERVICES_H_

#include <coroutine>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/internal/task_record.h"
#include "core/task.h"

namespace asupersync::sched {

class Runtime;

namespace services_internal {

// State shared by a blocking job and the task waiting for it.
struct BlockingCall {
  std::mutex mutex;
  bool done = false;
  bool waiter_gone = false;
  internal::WaitNode* waiter = nullptr;  // guarded by mutex, while the task is parked
};

// Submits `job` to the runtime's blocking pool; `call` is completed when it returns.
absl::Status submit_blocking(Cx& cx, std::shared_ptr<BlockingCall> call, std::function<void()> job);

class BlockingAwaiter final : public internal::WaitNode {
 public:
  BlockingAwaiter(Cx& cx, std::shared_ptr<BlockingCall> call, absl::Status submitted);
  BlockingAwaiter(const BlockingAwaiter&) = delete;
  ~BlockingAwaiter();
  bool await_ready() const noexcept { return !submitted_.ok(); }
  bool await_suspend(std::coroutine_handle<> handle);
  absl::Status await_resume();
  void interrupt() override;

 private:
  void detach();
  Cx* cx_;
  std::shared_ptr<BlockingCall> call_;
  absl::Status submitted_;
  bool cancelled_ = false;
};

}  // namespace services_internal

// Runs `fn()` on the runtime's blocking pool and returns its result (Blocking capability).
template <typename F>
auto spawn_blocking(Cx& cx, F fn) -> Task<absl::StatusOr<std::invoke_result_t<F&>>> {
  using R = std::invoke_result_t<F&>;
  static_assert(!std::is_void_v<R>, "spawn_blocking: return a value (e.g. absl::Status)");
  if (absl::Status status = cx.require(Capability::kBlocking); !status.ok()) co_return status;
  // The result lives beside the call state, so a job finishing after a cancelled wait writes
  // into memory it co-owns.
  struct Shared : services_internal::BlockingCall {
    std::optional<R> result;
  };
  auto shared = std::make_shared<Shared>();
  absl::Status submitted = services_internal::submit_blocking(
      cx, shared, [shared, fn = std::move(fn)]() mutable { shared->result.emplace(fn()); });
  // Named, not a temporary inside the co_await (GCC 12 coroutine temporaries, core/README.md).
  services_internal::BlockingAwaiter awaiter(cx, shared, std::move(submitted));
  absl::Status waited = co_await awaiter;
  if (!waited.ok()) co_return waited;
  co_return std::move(*shared->result);
}

namespace services_internal {

class ShutdownAwaiter final : public internal::WaitNode {
 public:
  explicit ShutdownAwaiter(Cx& cx);
  ShutdownAwaiter(const ShutdownAwaiter&) = delete;
  ~ShutdownAwaiter();
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle);
  absl::Status await_resume();
  void interrupt() override;

  ShutdownAwaiter* next = nullptr;
  ShutdownAwaiter* prev = nullptr;
  bool linked = false;

 private:
  Cx* cx_;
  Runtime* runtime_ = nullptr;
  absl::Status early_;
  bool cancelled_ = false;
};

}  // namespace services_internal

// Completes (OK) once the process received SIGINT or SIGTERM, at once if it already has.
inline services_internal::ShutdownAwaiter shutdown_signal(Cx& cx) {
  return services_internal::ShutdownAwaiter(cx);
}

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_SERVICES_H_
