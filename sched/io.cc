#include "sched/io.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "core/region.h"
#include "sched/runtime.h"

namespace asupersync::sched {
namespace {

constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;

absl::Status errno_status(const char* what, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      std::string(what) + ": " + std::strerror(error));
}

}  // namespace

absl::StatusOr<IoSource> IoSource::open(Cx& cx, int fd) {
  if (absl::Status status = cx.require(Capability::kIo); !status.ok()) return status;
  auto* runtime = dynamic_cast<Runtime*>(&cx.region().executor());
  if (runtime == nullptr) {
    return absl::FailedPreconditionError(
        "IoSource::open: file descriptors need the production runtime (sched::Runtime); this "
        "task runs on another executor");
  }
  absl::StatusOr<Registration> registration = runtime->reactor().register_fd(fd, nullptr);
  if (!registration.ok()) return registration.status();
  return IoSource(&runtime->reactor(), *registration);
}

IoSource::IoSource(IoSource&& other) noexcept
    : reactor_(std::exchange(other.reactor_, nullptr)), registration_(other.registration_) {}

IoSource& IoSource::operator=(IoSource&& other) noexcept {
  if (this != &other) {
    reset();
    reactor_ = std::exchange(other.reactor_, nullptr);
    registration_ = other.registration_;
  }
  return *this;
}

IoSource::~IoSource() { reset(); }

void IoSource::reset() {
  if (reactor_ != nullptr) (void)std::exchange(reactor_, nullptr)->deregister(registration_);
}

void IoSource::clear(uint32_t events, uint64_t sequence) {
  (void)reactor_->clear_readiness(registration_, events, sequence);
}

IoSource::ReadinessAwaiter::ReadinessAwaiter(IoSource* source, Cx* cx, bool write)
    : source_(source), cx_(cx), write_(write) {
  what = write ? "fd writable" : "fd readable";
  scope = &cx->region();
}

IoSource::ReadinessAwaiter::~ReadinessAwaiter() {
  if (stored_ && source_->reactor_ != nullptr) {
    source_->reactor_->cancel_wait(source_->registration_, *this);
  }
}

bool IoSource::ReadinessAwaiter::await_suspend(std::coroutine_handle<> handle) {
  early_ = cx_->poll_cancel();
  if (!early_.ok()) return false;
  if (source_->reactor_ == nullptr) {
    early_ = absl::FailedPreconditionError("IoSource: waiting on a moved-from source");
    return false;
  }
  internal::begin_wait(cx_->task_record(), *this);
  Reactor& reactor = *source_->reactor_;
  absl::StatusOr<bool> ready = write_ ? reactor.wait_writable(source_->registration_, *this)
                                      : reactor.wait_readable(source_->registration_, *this);
  if (!ready.ok()) {
    early_ = ready.status();
    return false;
  }
  if (*ready) return false;
  stored_ = true;
  if (internal::park(*this, handle)) return true;
  // Woken before parking (on_ready ran), or a cancel is deliverable.
  const bool was_stored = reactor.cancel_wait(source_->registration_, *this);
  stored_ = false;
  cancelled_ = was_stored;
  return false;
}

absl::Status IoSource::ReadinessAwaiter::await_resume() {
  if (!early_.ok()) return early_;
  if (cancelled_) {
    absl::Status status = cx_->poll_cancel();
    return status.ok() ? absl::CancelledError("readiness wait cancelled") : status;
  }
  return absl::OkStatus();
}

void IoSource::ReadinessAwaiter::interrupt() {
  if (stored_) source_->reactor_->cancel_wait(source_->registration_, *this);
  stored_ = false;
  cancelled_ = true;
}

void IoSource::ReadinessAwaiter::on_ready(uint32_t) {
  // The reactor dropped the waiter before calling it.
  stored_ = false;
  internal::WakeToken(*this).wake(Lane::kReady);
}

Task<absl::StatusOr<size_t>> IoSource::read_some(Cx& cx, std::span<std::byte> buffer) {
  if (absl::Status status = cx.poll_cancel(); !status.ok()) co_return status;
  while (true) {
    if (reactor_ == nullptr) {
      co_return absl::FailedPreconditionError("IoSource::read_some on a moved-from source");
    }
    absl::StatusOr<ReadyEvent> seen = reactor_->readiness(registration_);
    if (!seen.ok()) co_return seen.status();
    const ssize_t n = ::read(registration_.fd(), buffer.data(), buffer.size());
    if (n >= 0) co_return static_cast<size_t>(n);
    const int error = errno;
    if (error == EINTR) continue;
    if (error != EAGAIN && error != EWOULDBLOCK) co_return errno_status("read", error);
    clear(kReadEvents, seen->sequence);
    absl::Status waited = co_await readable(cx);
    if (!waited.ok()) co_return waited;
  }
}

Task<absl::StatusOr<size_t>> IoSource::write_some(Cx& cx, std::span<const std::byte> buffer) {
  if (absl::Status status = cx.poll_cancel(); !status.ok()) co_return status;
  while (true) {
    if (reactor_ == nullptr) {
      co_return absl::FailedPreconditionError("IoSource::write_some on a moved-from source");
    }
    absl::StatusOr<ReadyEvent> seen = reactor_->readiness(registration_);
    if (!seen.ok()) co_return seen.status();
    const ssize_t n = ::write(registration_.fd(), buffer.data(), buffer.size());
    if (n >= 0) co_return static_cast<size_t>(n);
    const int error = errno;
    if (error == EINTR) continue;
    if (error != EAGAIN && error != EWOULDBLOCK) co_return errno_status("write", error);
    clear(EPOLLOUT, seen->sequence);
    absl::Status waited = co_await writable(cx);
    if (!waited.ok()) co_return waited;
  }
}

}  // namespace asupersync::sched
