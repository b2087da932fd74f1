// IoSource: waiting for a file descriptor to become readable or writable on the production
// runtime (SPEC 6.5). This is the readiness API that //net builds sockets on.
//
//   absl::StatusOr<IoSource> source = IoSource::open(cx, fd);   // fd must be non-blocking
//   absl::StatusOr<size_t> n = co_await source->read_some(cx, buffer);
//
// An IoSource registers the fd with the runtime's epoll reactor (edge-triggered, generation
// tagged: an event for an earlier registration of the same fd number is never delivered here)
// and deregisters it when destroyed; it does not own or close the fd.
//
// Thread-safety: one task uses an IoSource at a time for reading and one for writing (one
// reader and one writer may wait concurrently). Lifetime: destroy it before closing the fd and
// before the runtime. Requires the Io capability and a sched::Runtime (the lab has no reactor:
// open() fails with FailedPrecondition there).
//
// Cancellation contract: `readable`, `writable`, `read_some` and `write_some` are cancellation
// points (SPEC 4.2). A cancelled wait consumes nothing: no byte is read or written, the waiter
// is removed from the reactor, and readiness that arrived meanwhile stays recorded for the next
// wait. read_some/write_some cancelled after the syscall transferred data return the data
// (the effect happened) — the cancellation is then seen at the next cancellation point.

#ifndef ASUPERSYNC_SCHED_IO_H_
#define ASUPERSYNC_SCHED_IO_H_

#include <sys/types.h>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/internal/task_record.h"
#include "core/task.h"
#include "sched/internal/reactor.h"

namespace asupersync::sched {

class IoSource {
 public:
  // Registers `fd` (which must be non-blocking). PermissionDenied without the Io capability,
  // FailedPrecondition when `cx` does not run on a sched::Runtime, InvalidArgument for an fd
  // epoll cannot watch, AlreadyExists when it is registered already.
  static absl::StatusOr<IoSource> open(Cx& cx, int fd);

  IoSource(IoSource&& other) noexcept;
  IoSource& operator=(IoSource&& other) noexcept;
  IoSource(const IoSource&) = delete;
  IoSource& operator=(const IoSource&) = delete;
  ~IoSource();

  int fd() const { return registration_.fd(); }

  class ReadinessAwaiter final : public internal::WaitNode, public ReadinessHandler {
   public:
    ReadinessAwaiter(IoSource* source, Cx* cx, bool write);
    ReadinessAwaiter(const ReadinessAwaiter&) = delete;
    ~ReadinessAwaiter();
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle);
    absl::Status await_resume();
    void interrupt() override;
    void on_ready(uint32_t events) override;

   private:
    IoSource* source_;
    Cx* cx_;
    bool write_;
    // Whether the reactor holds this waiter; cleared by on_ready on the polling thread.
    std::atomic<bool> stored_{false};
    bool cancelled_ = false;
    absl::Status early_;
  };

  // Completes when the fd is readable (or hung up / in error: the next read tells which).
  ReadinessAwaiter readable(Cx& cx) { return ReadinessAwaiter(this, &cx, false); }
  // Completes when the fd is writable (or in error).
  ReadinessAwaiter writable(Cx& cx) { return ReadinessAwaiter(this, &cx, true); }

  // Reads at most buffer.size() bytes, waiting for readability as needed. 0 means end of file.
  Task<absl::StatusOr<size_t>> read_some(Cx& cx, std::span<std::byte> buffer);
  // Writes at most buffer.size() bytes (at least one), waiting for writability as needed.
  Task<absl::StatusOr<size_t>> write_some(Cx& cx, std::span<const std::byte> buffer);

 private:
  IoSource(Reactor* reactor, Registration registration)
      : reactor_(reactor), registration_(registration) {}
  // Forgets readiness of `events` observed at `sequence` (after EAGAIN).
  void clear(uint32_t events, uint64_t sequence);
  void reset();

  Reactor* reactor_ = nullptr;
  Registration registration_;
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_IO_H_
