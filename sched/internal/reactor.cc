// Copyright The Asupersync Authors.

#include "sched/internal/reactor.h"

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sched/internal/errno_status.h"
#include "sched/internal/invariant.h"

namespace asupersync::sched {

namespace {

// The reactor whose poll() is running on this thread (callbacks run inside it), if any.
thread_local const Reactor* polling_reactor = nullptr;

constexpr uint32_t kRegisteredEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

std::string describe(const Registration& registration) {
  return absl::StrCat("registration {fd ", registration.fd(), ", slot ", registration.slot(),
                      ", generation ", registration.generation(), "}");
}

absl::Status not_live(const Registration& registration) {
  return absl::FailedPreconditionError(
      absl::StrCat(describe(registration),
                   " is not live: it was deregistered, or superseded by a new registration of "
                   "the same fd number after the fd was closed without deregistering"));
}

void close_quietly(int fd) {
  if (fd >= 0) ::close(fd);
}

}  // namespace

Time monotonic_now() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return Time::FromNanoseconds(int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec);
}

std::ostream& operator<<(std::ostream& os, const Registration& registration) {
  return os << describe(registration);
}

struct Reactor::Slot {
  std::mutex mutex;
  std::condition_variable dispatch_done;
  // Written under `mutex`; read without it by dispatch between callbacks.
  std::atomic<uint32_t> generation{1};
  bool live = false;
  int fd = -1;
  ReadinessHandler* handler = nullptr;
  ReadinessHandler* reader = nullptr;
  ReadinessHandler* writer = nullptr;
  uint32_t readiness = 0;
  uint64_t sequence = 0;
  bool dispatching = false;  // poll() is between its first and last callback for this slot.
};

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::create(size_t max_events_per_poll) {
  if (max_events_per_poll == 0 || max_events_per_poll > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("Reactor::create: max_events_per_poll must be in [1, ", INT_MAX, "], got ",
                     max_events_per_poll));
  }
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return errno_status(errno, "Reactor::create: epoll_create1");
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    const int error = errno;
    close_quietly(epoll_fd);
    return errno_status(error, "Reactor::create: eventfd");
  }
  const int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timer_fd < 0) {
    const int error = errno;
    close_quietly(epoll_fd);
    close_quietly(wake_fd);
    return errno_status(error, "Reactor::create: timerfd_create(CLOCK_MONOTONIC)");
  }
  // From here on the Reactor owns the three fds.
  std::unique_ptr<Reactor> reactor(new Reactor(epoll_fd, wake_fd, timer_fd, max_events_per_poll));
  // Level-triggered: poll drains both every time they are reported.
  for (auto [fd, token] : {std::pair{wake_fd, kWakeToken}, std::pair{timer_fd, kTimerToken}}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = token;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
      return errno_status(errno, "Reactor::create: epoll_ctl(EPOLL_CTL_ADD) of its own fd");
    }
  }
  return reactor;
}

Reactor::Reactor(int epoll_fd, int wake_fd, int timer_fd, size_t max_events_per_poll)
    : epoll_fd_(epoll_fd), wake_fd_(wake_fd), timer_fd_(timer_fd), events_(max_events_per_poll) {}

Reactor::~Reactor() {
  if (polling_.load()) invariant_violated("a Reactor is not destroyed while poll() runs");
  close_quietly(epoll_fd_);
  close_quietly(wake_fd_);
  close_quietly(timer_fd_);
  for (std::atomic<Slot*>& chunk : chunks_) delete[] chunk.load();
}

Reactor::Slot* Reactor::slot_at(uint32_t index) const {
  if (index >= num_slots_.load(std::memory_order_acquire)) return nullptr;
  return &chunks_[index / kChunkSize].load(std::memory_order_acquire)[index % kChunkSize];
}

Reactor::Slot* Reactor::live_slot(const Registration& registration,
                                  std::unique_lock<std::mutex>& lock) const {
  if (!registration.valid()) return nullptr;
  Slot* slot = slot_at(registration.slot());
  if (slot == nullptr) return nullptr;
  lock = std::unique_lock<std::mutex>(slot->mutex);
  if (!slot->live ||
      slot->generation.load(std::memory_order_relaxed) != registration.generation()) {
    lock.unlock();
    return nullptr;
  }
  return slot;
}

bool Reactor::on_polling_thread() const { return polling_reactor == this; }

absl::StatusOr<Registration> Reactor::register_fd(int fd, ReadinessHandler* handler) {
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Reactor::register_fd: fd ", fd, " is not a file descriptor"));
  }
  std::lock_guard<std::mutex> slab_lock(slab_mutex_);
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = num_slots_.load(std::memory_order_relaxed);
    if (index >= kMaxRegistrations) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "Reactor::register_fd(fd ", fd, "): the reactor holds its maximum of ", kMaxRegistrations,
          " registrations; deregister fds that are no longer used"));
    }
    if (index % kChunkSize == 0) {
      chunks_[index / kChunkSize].store(new Slot[kChunkSize], std::memory_order_release);
    }
    num_slots_.store(index + 1, std::memory_order_release);
  }
  Slot& slot = *slot_at(index);
  uint32_t generation;
  {
    // Live before EPOLL_CTL_ADD: a concurrent poll may see the first event right away.
    std::lock_guard<std::mutex> lock(slot.mutex);
    generation = slot.generation.load(std::memory_order_relaxed);
    slot.live = true;
    slot.fd = fd;
    slot.handler = handler;
    slot.reader = nullptr;
    slot.writer = nullptr;
    slot.readiness = 0;
    slot.sequence = 0;
  }
  const Registration registration(index, generation, fd);
  epoll_event event{};
  event.events = kRegisteredEvents;
  event.data.u64 = registration.token();
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    const int error = errno;
    {
      std::lock_guard<std::mutex> lock(slot.mutex);
      slot.live = false;
      slot.handler = nullptr;
    }
    free_slots_.push_back(index);  // The generation was never seen by epoll: no bump needed.
    const std::string operation =
        absl::StrCat("Reactor::register_fd: epoll_ctl(EPOLL_CTL_ADD, fd ", fd, ")");
    switch (error) {
      case EEXIST:
        return errno_status(error, operation,
                            "the fd is already registered with this reactor; deregister it first");
      case EPERM:
        return errno_status(error, operation,
                            "epoll cannot watch this kind of file (regular files and directories "
                            "are always ready): run the blocking calls on the blocking pool");
      case ENOSPC:
        return errno_status(error, operation,
                            "the user's epoll watch limit is reached: raise "
                            "/proc/sys/fs/epoll/max_user_watches or close registrations");
      case EBADF:
        return errno_status(error, operation, "the fd is not open");
      default:
        return errno_status(error, operation);
    }
  }
  if (static_cast<size_t>(fd) >= fd_owner_.size()) fd_owner_.resize(fd + 1, 0);
  if (const uint32_t previous = fd_owner_[fd]; previous != 0) {
    // EPOLL_CTL_ADD succeeded, so epoll no longer watches the old registration of this fd
    // number: its fd was closed without deregistering. Its events, if any are in flight, must
    // not reach the new owner.
    Slot& old_slot = *slot_at(previous - 1);
    std::lock_guard<std::mutex> lock(old_slot.mutex);
    retire_locked(previous - 1, old_slot);
    --num_live_;
  }
  fd_owner_[fd] = index + 1;
  ++num_live_;
  return registration;
}

// Ends the slot's current registration: bumps the generation (so its tokens no longer match)
// and forgets its handler and waiters. Called with slab_mutex_ and slot.mutex held; the slot
// goes back to the free list, unless its generation is used up (it is then never reused).
void Reactor::retire_locked(uint32_t index, Slot& slot) {
  slot.live = false;
  slot.handler = nullptr;
  slot.reader = nullptr;
  slot.writer = nullptr;
  slot.readiness = 0;
  const uint32_t generation = slot.generation.load(std::memory_order_relaxed);
  if (generation == UINT32_MAX) {
    slot.generation.store(0, std::memory_order_release);  // Matches no token; never reused.
    return;
  }
  slot.generation.store(generation + 1, std::memory_order_release);
  free_slots_.push_back(index);
}

absl::Status Reactor::deregister(const Registration& registration) {
  absl::Status status;
  Slot* slot = nullptr;
  {
    std::lock_guard<std::mutex> slab_lock(slab_mutex_);
    std::unique_lock<std::mutex> lock;
    slot = live_slot(registration, lock);
    if (slot == nullptr) return not_live(registration);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, registration.fd(), nullptr) != 0) {
      // EBADF/ENOENT: the fd was closed first, and the kernel already forgot it.
      if (errno != EBADF && errno != ENOENT) {
        status = errno_status(errno, absl::StrCat("Reactor::deregister: epoll_ctl(EPOLL_CTL_DEL, ",
                                                  describe(registration), ")"));
      }
    }
    if (static_cast<size_t>(registration.fd()) < fd_owner_.size() &&
        fd_owner_[registration.fd()] == registration.slot() + 1) {
      fd_owner_[registration.fd()] = 0;
    }
    --num_live_;
    // Not yet on the free list if a callback of this slot runs on another thread: wait first,
    // so that the slot's dispatch state is not shared with a new owner.
    const bool must_wait = slot->dispatching && !on_polling_thread();
    slot->live = false;
    slot->handler = nullptr;
    slot->reader = nullptr;
    slot->writer = nullptr;
    slot->readiness = 0;
    if (!must_wait) {
      retire_locked(registration.slot(), *slot);
      return status;
    }
    const uint32_t generation = slot->generation.load(std::memory_order_relaxed);
    slot->generation.store(generation == UINT32_MAX ? 0 : generation + 1,
                           std::memory_order_release);
  }
  {
    std::unique_lock<std::mutex> lock(slot->mutex);
    slot->dispatch_done.wait(lock, [slot] { return !slot->dispatching; });
  }
  std::lock_guard<std::mutex> slab_lock(slab_mutex_);
  if (slot->generation.load(std::memory_order_relaxed) != 0) {
    free_slots_.push_back(registration.slot());
  }
  return status;
}

absl::StatusOr<ReadyEvent> Reactor::readiness(const Registration& registration) const {
  std::unique_lock<std::mutex> lock;
  Slot* slot = live_slot(registration, lock);
  if (slot == nullptr) return not_live(registration);
  return ReadyEvent{slot->readiness, slot->sequence};
}

absl::Status Reactor::clear_readiness(const Registration& registration, uint32_t events,
                                      uint64_t observed_sequence) {
  std::unique_lock<std::mutex> lock;
  Slot* slot = live_slot(registration, lock);
  if (slot == nullptr) return not_live(registration);
  if (slot->sequence == observed_sequence) slot->readiness &= ~events;
  return absl::OkStatus();
}

absl::StatusOr<bool> Reactor::wait(const Registration& registration, ReadinessHandler& waiter,
                                   bool readable) {
  std::unique_lock<std::mutex> lock;
  Slot* slot = live_slot(registration, lock);
  if (slot == nullptr) return not_live(registration);
  if ((slot->readiness & (readable ? kReadInterest : kWriteInterest)) != 0) return true;
  ReadinessHandler*& stored = readable ? slot->reader : slot->writer;
  if (stored != nullptr && stored != &waiter) {
    return absl::FailedPreconditionError(
        absl::StrCat(describe(registration), " already has a ", readable ? "reader" : "writer",
                     " waiting; a registration holds one reader and one writer waiter"));
  }
  stored = &waiter;
  return false;
}

absl::StatusOr<bool> Reactor::wait_readable(const Registration& registration,
                                            ReadinessHandler& waiter) {
  return wait(registration, waiter, /*readable=*/true);
}

absl::StatusOr<bool> Reactor::wait_writable(const Registration& registration,
                                            ReadinessHandler& waiter) {
  return wait(registration, waiter, /*readable=*/false);
}

bool Reactor::cancel_wait(const Registration& registration, ReadinessHandler& waiter) {
  if (!registration.valid()) return false;
  Slot* slot = slot_at(registration.slot());
  if (slot == nullptr) return false;
  std::unique_lock<std::mutex> lock(slot->mutex);
  if (slot->live && slot->generation.load(std::memory_order_relaxed) == registration.generation()) {
    if (slot->reader == &waiter) {
      slot->reader = nullptr;
      return true;
    }
    if (slot->writer == &waiter) {
      slot->writer = nullptr;
      return true;
    }
  }
  // Possibly being called right now by poll on another thread: wait until that is over.
  if (!on_polling_thread()) {
    slot->dispatch_done.wait(lock, [slot] { return !slot->dispatching; });
  }
  return false;
}

absl::Status Reactor::arm_timer(Time deadline) {
  if (deadline.is_infinite()) return disarm_timer();
  // it_value {0, 0} would disarm: a deadline at or before the epoch is "expire now".
  const int64_t nanos = std::max<int64_t>(deadline.nanoseconds(), 1);
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(nanos / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(nanos % 1'000'000'000);
  if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    return errno_status(errno, absl::StrCat("Reactor::arm_timer(", deadline.to_string(),
                                            "): timerfd_settime(TFD_TIMER_ABSTIME)"));
  }
  return absl::OkStatus();
}

absl::Status Reactor::disarm_timer() {
  itimerspec spec{};
  if (timerfd_settime(timer_fd_, 0, &spec, nullptr) != 0) {
    return errno_status(errno, "Reactor::disarm_timer: timerfd_settime");
  }
  return absl::OkStatus();
}

void Reactor::wake() {
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;  // Already on its way.
  const uint64_t one = 1;
  // EAGAIN (counter saturated) still leaves the eventfd readable: the wake is not lost.
  [[maybe_unused]] ssize_t written = ::write(wake_fd_, &one, sizeof(one));
}

absl::StatusOr<PollResult> Reactor::poll(Duration max_wait) {
  if (polling_.exchange(true, std::memory_order_acquire)) {
    invariant_violated("Reactor::poll is called from one thread at a time");
  }
  const Reactor* outer = polling_reactor;
  polling_reactor = this;
  int timeout_ms;
  if (max_wait.is_infinite()) {
    timeout_ms = -1;
  } else if (max_wait <= Duration::Zero()) {
    timeout_ms = 0;
  } else {
    const int64_t ms = (max_wait.nanoseconds() + 999'999) / 1'000'000;  // Round up.
    timeout_ms = static_cast<int>(std::min<int64_t>(ms, INT_MAX));
  }
  PollResult result;
  absl::Status status;
  const int count =
      epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (count < 0) {
    if (errno != EINTR) status = errno_status(errno, "Reactor::poll: epoll_wait");
  } else {
    result.events = static_cast<size_t>(count);
    for (int i = 0; i < count; ++i) dispatch(events_[i], result);
  }
  polling_reactor = outer;
  polling_.store(false, std::memory_order_release);
  if (!status.ok()) return status;
  return result;
}

void Reactor::dispatch(const epoll_event& event, PollResult& result) {
  const uint64_t token = event.data.u64;
  if (token == kWakeToken) {
    uint64_t count;
    // Drain first, then clear the flag: a wake() after the read writes again (flag clear), one
    // before the clear is covered by this return (the flag's exchange orders its work first).
    while (::read(wake_fd_, &count, sizeof(count)) == sizeof(count)) {
    }
    wake_pending_.exchange(false, std::memory_order_acq_rel);
    result.woken = true;
    return;
  }
  if (token == kTimerToken) {
    uint64_t expirations;
    // EAGAIN: re-armed for a later deadline after it expired; nothing fired.
    if (::read(timer_fd_, &expirations, sizeof(expirations)) == sizeof(expirations)) {
      result.timer_fired = true;
    }
    return;
  }
  const uint32_t index = static_cast<uint32_t>(token);
  const uint32_t generation = static_cast<uint32_t>(token >> 32);
  Slot* slot = slot_at(index);
  if (slot == nullptr) {
    invariant_violated("an epoll event's data.u64 names a slot the reactor allocated");
  }
  ReadinessHandler* handler;
  {
    std::lock_guard<std::mutex> lock(slot->mutex);
    if (!slot->live || slot->generation.load(std::memory_order_relaxed) != generation) {
      ++result.stale_ignored;
      return;
    }
    slot->readiness |= event.events;
    ++slot->sequence;
    handler = slot->handler;
    slot->dispatching = true;
  }
  ++result.dispatched;
  const uint32_t events = event.events;
  auto still_live = [&] {
    return slot->live && slot->generation.load(std::memory_order_relaxed) == generation;
  };
  if (handler != nullptr) handler->on_ready(events);
  ReadinessHandler* reader = nullptr;
  if ((events & kReadInterest) != 0) {
    std::lock_guard<std::mutex> lock(slot->mutex);
    if (still_live()) std::swap(reader, slot->reader);
  }
  if (reader != nullptr) reader->on_ready(events);
  ReadinessHandler* writer = nullptr;
  if ((events & kWriteInterest) != 0) {
    std::lock_guard<std::mutex> lock(slot->mutex);
    if (still_live()) std::swap(writer, slot->writer);
  }
  if (writer != nullptr) writer->on_ready(events);
  std::lock_guard<std::mutex> lock(slot->mutex);
  slot->dispatching = false;
  slot->dispatch_done.notify_all();
}

size_t Reactor::num_registrations() const {
  std::lock_guard<std::mutex> lock(slab_mutex_);
  return num_live_;
}

}  // namespace asupersync::sched
