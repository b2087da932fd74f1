#include "sched/services.h"

#include "core/region.h"
#include "sched/runtime.h"

namespace asupersync::sched::services_internal {
namespace {

Runtime* runtime_of(Cx& cx) { return dynamic_cast<Runtime*>(&cx.region().executor()); }

}  // namespace

absl::Status submit_blocking(Cx& cx, std::shared_ptr<BlockingCall> call,
                             std::function<void()> job) {
  Runtime* runtime = runtime_of(cx);
  if (runtime == nullptr) {
    return absl::FailedPreconditionError(
        "spawn_blocking: needs the production runtime (sched::Runtime); the lab runs no "
        "blocking threads");
  }
  return runtime->submit_blocking([call = std::move(call), job = std::move(job)] {
    job();
    internal::WakeToken token;
    {
      std::lock_guard<std::mutex> lock(call->mutex);
      call->done = true;
      if (call->waiter != nullptr) token = internal::WakeToken(*call->waiter);
      call->waiter = nullptr;
    }
    std::move(token).wake(Lane::kReady);
  });
}

BlockingAwaiter::BlockingAwaiter(Cx& cx, std::shared_ptr<BlockingCall> call, absl::Status submitted)
    : cx_(&cx), call_(std::move(call)), submitted_(std::move(submitted)) {
  what = "blocking call";
  scope = &cx.region();
}

BlockingAwaiter::~BlockingAwaiter() { detach(); }

void BlockingAwaiter::detach() {
  std::lock_guard<std::mutex> lock(call_->mutex);
  if (call_->waiter == this) call_->waiter = nullptr;
}

bool BlockingAwaiter::await_suspend(std::coroutine_handle<> handle) {
  if (absl::Status status = cx_->poll_cancel(); !status.ok()) {
    submitted_ = status;  // the job still runs; its result is discarded
    return false;
  }
  internal::begin_wait(cx_->task_record(), *this);
  {
    std::lock_guard<std::mutex> lock(call_->mutex);
    if (call_->done) return false;
    call_->waiter = this;
  }
  if (internal::park(*this, handle)) return true;
  std::lock_guard<std::mutex> lock(call_->mutex);
  call_->waiter = nullptr;
  cancelled_ = !call_->done;
  return false;
}

absl::Status BlockingAwaiter::await_resume() {
  if (!submitted_.ok()) return submitted_;
  if (cancelled_) {
    absl::Status status = cx_->poll_cancel();
    return status.ok() ? absl::CancelledError("blocking call abandoned") : status;
  }
  return absl::OkStatus();
}

void BlockingAwaiter::interrupt() {
  detach();
  cancelled_ = true;
}

ShutdownAwaiter::ShutdownAwaiter(Cx& cx) : cx_(&cx), runtime_(runtime_of(cx)) {
  what = "shutdown signal";
  scope = &cx.region();
}

ShutdownAwaiter::~ShutdownAwaiter() {
  if (runtime_ != nullptr) runtime_->unlink_shutdown_waiter(*this);
}

bool ShutdownAwaiter::await_suspend(std::coroutine_handle<> handle) {
  if (runtime_ == nullptr) {
    early_ = absl::FailedPreconditionError(
        "shutdown_signal: needs the production runtime (sched::Runtime)");
    return false;
  }
  early_ = cx_->poll_cancel();
  if (!early_.ok()) return false;
  internal::begin_wait(cx_->task_record(), *this);
  absl::StatusOr<bool> linked = runtime_->link_shutdown_waiter(*this);
  if (!linked.ok()) {
    early_ = linked.status();
    return false;
  }
  if (!*linked) return false;  // the signal already arrived
  if (internal::park(*this, handle)) return true;
  runtime_->unlink_shutdown_waiter(*this);
  cancelled_ = !runtime_->shutdown_requested();
  return false;
}

absl::Status ShutdownAwaiter::await_resume() {
  if (!early_.ok()) return early_;
  if (cancelled_) {
    absl::Status status = cx_->poll_cancel();
    return status.ok() ? absl::CancelledError("shutdown wait cancelled") : status;
  }
  return absl::OkStatus();
}

void ShutdownAwaiter::interrupt() {
  runtime_->unlink_shutdown_waiter(*this);
  cancelled_ = true;
}

}  // namespace asupersync::sched::services_internal
