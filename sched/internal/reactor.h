// Copyright The Asupersync Authors.
//
// sched/internal/reactor.h: the production runtime's I/O readiness source (SPEC 6.5) and its
// sub-millisecond timer (SPEC 6.4).
//
// `Reactor` wraps one epoll instance. A file descriptor is registered once, edge-triggered for
// EPOLLIN | EPOLLOUT | EPOLLRDHUP, and gets a `Registration`: a slot in the reactor's slab plus
// the slot's generation. The pair is the 64-bit epoll `data.u64` (generation << 32 | slot), so an
// event names the registration it was produced for, not just an fd or a slot. `deregister`
// bumps the slot's generation before the slot can be reused; an event that epoll_wait already
// returned for the old registration (in the same batch, or delivered while a deregistration
// raced with poll) then carries a generation that no longer matches and is dropped: it is never
// delivered to a new owner of the same fd number or of the same slot (SPEC 6.5). Registering an
// fd number that is still recorded for an older registration (the fd was closed without
// deregistering, and the number reused) supersedes the old registration the same way.
//
// Readiness: each registration accumulates the epoll bits it has seen (`readiness()`), with a
// sequence number counting events. Edge-triggered epoll reports a transition once, so a reader
// works like this: read while `readiness()` has EPOLLIN; on EAGAIN, `clear_readiness(reg,
// EPOLLIN, sequence-it-observed)` (which clears nothing if an event arrived since, so that event
// is not lost), then `wait_readable(reg, waiter)`, which returns true at once if the fd became
// readable in between, and otherwise stores `waiter` to be called once from `poll`. Each
// registration has one reader waiter slot and one writer waiter slot (intrusive: the reactor
// stores the caller's `ReadinessHandler*`, nothing is allocated). A reader is woken by EPOLLIN,
// EPOLLRDHUP, EPOLLHUP or EPOLLERR; a writer by EPOLLOUT, EPOLLHUP or EPOLLERR. The handler given
// to `register_fd` (may be null) is called for every event of the registration, before the
// waiters.
//
// Timer: the reactor owns a timerfd (CLOCK_MONOTONIC, TFD_TIMER_ABSTIME). `arm_timer(deadline)`
// makes `poll` return with `timer_fired` at `deadline`, with the timerfd's nanosecond
// resolution, instead of rounding to epoll_wait's milliseconds. The runtime's `Time` is
// CLOCK_MONOTONIC nanoseconds (`monotonic_now()`). Wake-up: the reactor owns an eventfd;
// `wake()` makes a blocked (or the next) `poll` return with `woken`; wakes coalesce.
//
// Thread-safety: `register_fd`, `deregister`, `readiness`, `clear_readiness`, `wait_*`,
// `cancel_wait`, `arm_timer`, `disarm_timer` and `wake` from any thread; `poll` from one thread
// at a time (a second concurrent poll aborts). The slab grows in fixed chunks that never move,
// so `poll` finds a slot without a global lock; each slot has its own mutex, and a mutex over
// the slab's free list is taken only to register and deregister. No reactor lock is held while a
// handler or waiter runs (SPEC 6.6), so callbacks may call back into the reactor (register,
// deregister, wait, wake, arm the timer).
//
// Lifetime: the reactor does not own registered fds (the caller closes them, after
// deregistering: an fd closed first is removed from epoll by the kernel, and `deregister` still
// succeeds). A handler or waiter must stay alive until it has been called, or until `deregister`
// or `cancel_wait` returned: both wait for a callback of that registration that is running on
// the polling thread (except when called from that thread, i.e. from inside a callback, where the
// callback in progress is the caller's own business). So never call them while holding a lock
// that a handler or waiter of the same registration takes: that would deadlock. Handlers still
// registered when the reactor is destroyed are never called. A `Registration` is a plain value;
// using it after deregistration fails with FailedPrecondition.
//
// Cancellation: a task whose wait is cancelled calls `cancel_wait`; afterwards its waiter is not
// called (or the call already finished). Deregistration drops both waiters without calling them:
// the owner of the registration cancels its waiting tasks itself. Nothing a callback does can be
// interrupted; callbacks are expected to be short (wake a task).

#ifndef ASUPERSYNC_SCHED_INTERNAL_REACTOR_H_
#define ASUPERSYNC_SCHED_INTERNAL_REACTOR_H_

#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <ostream>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/time.h"

namespace asupersync::sched {

// CLOCK_MONOTONIC now, as the production runtime's Time.
Time monotonic_now();

// Something the reactor calls from `poll` (on the polling thread, with no reactor lock held)
// when a registration it waits on sees events. `events` is the epoll mask of the event (EPOLLIN,
// EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).
class ReadinessHandler {
 public:
  virtual void on_ready(uint32_t events) = 0;

 protected:
  ~ReadinessHandler() = default;
};

// Names one registration: a slab slot and the generation it had when the fd was registered.
// The default value names nothing.
class Registration {
 public:
  Registration() = default;

  bool valid() const { return generation_ != 0; }
  int fd() const { return fd_; }
  uint32_t slot() const { return slot_; }
  uint32_t generation() const { return generation_; }
  // The epoll data.u64 of this registration's events.
  uint64_t token() const { return (uint64_t{generation_} << 32) | slot_; }

  friend bool operator==(const Registration&, const Registration&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Registration& registration);

 private:
  friend class Reactor;
  Registration(uint32_t slot, uint32_t generation, int fd)
      : slot_(slot), generation_(generation), fd_(fd) {}

  uint32_t slot_ = 0;
  uint32_t generation_ = 0;
  int fd_ = -1;
};

// What `readiness` reports: the accumulated epoll bits and the number of events seen so far.
struct ReadyEvent {
  uint32_t events = 0;
  uint64_t sequence = 0;
};

// What one `poll` did.
struct PollResult {
  size_t events = 0;         // Events returned by epoll_wait (including the reactor's own).
  size_t dispatched = 0;     // Events delivered to a live registration.
  size_t stale_ignored = 0;  // Events of a registration deregistered since (SPEC 6.5).
  bool timer_fired = false;  // The timerfd expired.
  bool woken = false;        // wake() was called.
};

class Reactor {
 public:
  static constexpr uint32_t kReadInterest = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  static constexpr uint32_t kWriteInterest = EPOLLOUT | EPOLLHUP | EPOLLERR;
  // The slab's size limit (register_fd fails with ResourceExhausted beyond it).
  static constexpr size_t kMaxRegistrations = size_t{1} << 20;

  // Creates the epoll instance, the eventfd and the timerfd (all close-on-exec). Fails with
  // ResourceExhausted when out of file descriptors or memory. `max_events_per_poll` > 0 bounds
  // one epoll_wait batch.
  static absl::StatusOr<std::unique_ptr<Reactor>> create(size_t max_events_per_poll = 256);
  ~Reactor();

  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Registers `fd` (which must support epoll: sockets, pipes, eventfds, signalfds, ttys...;
  // not regular files) edge-triggered for EPOLLIN | EPOLLOUT | EPOLLRDHUP. `handler` (may be
  // null) is called for each of its events. Errors: InvalidArgument (not an open fd, or one
  // epoll cannot watch), AlreadyExists (already registered with this reactor), ResourceExhausted
  // (kMaxRegistrations, or the kernel's fs.epoll.max_user_watches).
  absl::StatusOr<Registration> register_fd(int fd, ReadinessHandler* handler);

  // Removes the registration: its handler and waiters are never called again (see Lifetime),
  // and events already fetched for it are dropped. FailedPrecondition if it is not live
  // (deregistered already, or superseded).
  absl::Status deregister(const Registration& registration);

  // The epoll bits seen since registration (minus cleared ones) and the event count.
  absl::StatusOr<ReadyEvent> readiness(const Registration& registration) const;

  // Clears `events` from the readiness if no event arrived since `observed_sequence` (otherwise
  // does nothing: the new event may have re-armed what the caller found exhausted).
  absl::Status clear_readiness(const Registration& registration, uint32_t events,
                               uint64_t observed_sequence);

  // Returns true if the registration is already readable (kReadInterest bits present): the
  // caller retries its read and `waiter` is not stored. Otherwise stores `waiter`, to be called
  // once from `poll` on the next read-side event, and returns false. FailedPrecondition if the
  // registration is not live or another reader waiter is stored.
  absl::StatusOr<bool> wait_readable(const Registration& registration, ReadinessHandler& waiter);
  // The same for writability (kWriteInterest).
  absl::StatusOr<bool> wait_writable(const Registration& registration, ReadinessHandler& waiter);

  // Removes `waiter` from the registration's waiter slots. Returns true if it was stored (it
  // will not be called); false if it was not (already called, never stored, or the registration
  // is gone), in which case a call in progress on the polling thread has finished on return.
  bool cancel_wait(const Registration& registration, ReadinessHandler& waiter);

  // Makes the timerfd expire at `deadline` (CLOCK_MONOTONIC; a deadline in the past expires at
  // once; Time::Infinite() disarms). Replaces any earlier deadline.
  absl::Status arm_timer(Time deadline);
  absl::Status disarm_timer();

  // Waits up to `max_wait` (rounded up to a millisecond; Duration::Infinite() waits for ever,
  // zero does not block) for events, wakes and timer expiry, and dispatches the events.
  // Returns what happened; EINTR is an empty result, not an error.
  absl::StatusOr<PollResult> poll(Duration max_wait);

  // Makes the thread blocked in `poll` (or the next `poll`) return. Async-signal-safe.
  void wake();

  size_t num_registrations() const;

 private:
  struct Slot;
  static constexpr size_t kChunkSize = 256;
  static constexpr size_t kMaxChunks = kMaxRegistrations / kChunkSize;
  // Tokens of the reactor's own fds: generation 0, which no registration has.
  static constexpr uint64_t kWakeToken = 0;
  static constexpr uint64_t kTimerToken = 1;

  Reactor(int epoll_fd, int wake_fd, int timer_fd, size_t max_events_per_poll);

  Slot* slot_at(uint32_t index) const;
  Slot* live_slot(const Registration& registration, std::unique_lock<std::mutex>& lock) const;
  absl::StatusOr<bool> wait(const Registration& registration, ReadinessHandler& waiter,
                            bool readable);
  void dispatch(const epoll_event& event, PollResult& result);
  void retire_locked(uint32_t index, Slot& slot);
  bool on_polling_thread() const;

  const int epoll_fd_;
  const int wake_fd_;
  const int timer_fd_;
  std::vector<epoll_event> events_;  // Used only by the polling thread.
  std::atomic<bool> polling_{false};
  std::atomic<bool> wake_pending_{false};

  std::atomic<Slot*> chunks_[kMaxChunks] = {};
  std::atomic<uint32_t> num_slots_{0};  // Slots ever allocated.

  // Guards the slab's free list, fd ownership and the live count (and chunk allocation).
  mutable std::mutex slab_mutex_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> fd_owner_;  // fd -> slot + 1 of its live registration, 0 if none.
  size_t num_live_ = 0;
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_REACTOR_H_
