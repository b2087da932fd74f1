// watch: the latest value and its version, observed by many receivers (SPEC 8.2).
//
//   auto [tx, rx] = watch::channel<Config>(Config{});    // version 0 holds the initial value
//   tx.send(new_config);                                  // version 1; never waits
//   absl::Status changed = co_await rx.changed(cx);       // waits for a version it has not seen
//   std::shared_ptr<const Config> now = rx.borrow();      // the latest value, no copy
//   Config copy = rx.get();
//
// Each receiver remembers the version it has seen. `changed(cx)` returns at once if the
// channel's version is newer than that, else waits for the next send; either way it then marks
// the current version seen (intermediate versions are skipped: a watch holds only the latest
// value). `borrow()` returns the current value as a shared_ptr<const T> snapshot (no lock is
// held by the caller; a later send does not change the snapshot); `borrow_and_update()` also
// marks it seen; `get()` copies it. `has_changed()` tells without waiting. When every sender is
// gone and the receiver has seen the last version, changed() fails with ChannelClosed; the
// last value stays readable.
//
// Senders and receivers are copyable (a copied Receiver starts with the same seen version);
// `subscribe()` makes a receiver that has seen the current version.
//
// Thread-safety: members may be called from any thread; one mutex per channel, wakers run after
// it is released; send allocates the new snapshot before taking the lock and destroys the old
// one after releasing it. One Receiver object is used by one task at a time.
// Lifetime: the state is reference counted by the endpoints; snapshots are shared_ptrs and may
// outlive the channel. An awaiter refers to its Receiver and Cx: await it at once.
//
// Cancellation contract (SPEC 4.2, 8): changed() is a cancellation point (a deliverable cancel
// is checked first). Cancelled, it consumes nothing: the seen version does not move, so the
// change is still reported by the next changed(); it leaves no waiter behind. A wake by a send
// whose cancel raced in reports Cancelled and marks nothing seen. A waiter destroyed while
// parked (SPEC 4.5) deregisters.

#ifndef ASUPERSYNC_SYNC_WATCH_H_
#define ASUPERSYNC_SYNC_WATCH_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "core/cx.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"
#include "sync/status.h"

namespace asupersync::watch {

template <typename T>
class Sender;
template <typename T>
class Receiver;

template <typename T>
std::pair<Sender<T>, Receiver<T>> channel(T initial);

namespace watch_internal {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

inline absl::Status invalid_handle(const char* what) {
  return absl::FailedPreconditionError(std::string(what) +
                                       " on an invalid (moved-from or default) watch handle");
}

template <typename T>
class Channel {
 public:
  explicit Channel(std::shared_ptr<const T> initial) : value(std::move(initial)) {}

  void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // kGranted (a newer version: marked seen), kRefused (no sender left; `why` set), kIdle.
  WaitState check_changed_locked(uint64_t* seen, absl::Status& why) const {
    if (version > *seen) {
      *seen = version;
      return WaitState::kGranted;
    }
    if (senders == 0) {
      why = channel_closed_error("watch changed: every sender is gone; no newer version can come");
      return WaitState::kRefused;
    }
    return WaitState::kIdle;
  }

  void wake_all_locked(WakeList& wakes) {
    while (sync_internal::Waiter* waiter = waiters.pop_front()) waiter->grant_locked(wakes);
  }

  void add_sender() {
    Guard lock(mu);
    ++senders;
    ref();
  }
  void drop_sender() {
    {
      WakeList wakes;
      Guard lock(mu);
      if (--senders == 0) wake_all_locked(wakes);
    }
    unref();
  }
  void add_receiver() {
    Guard lock(mu);
    ++receivers;
    ref();
  }
  void drop_receiver() {
    {
      Guard lock(mu);
      --receivers;
    }
    unref();
  }

  mutable sync_internal::ObservedMutex mu;
  std::shared_ptr<const T> value;
  uint64_t version = 0;
  size_t senders = 1;
  size_t receivers = 1;
  sync_internal::WaiterList<sync_internal::Waiter> waiters;
  std::atomic<size_t> refs{2};
};

// co_await rx.changed(cx) → absl::Status.
template <typename T>
class [[nodiscard]] ChangedAwaiter final : public sync_internal::Awaiter<ChangedAwaiter<T>> {
  using Base = sync_internal::Awaiter<ChangedAwaiter<T>>;
  friend Base;

 public:
  ChangedAwaiter(Cx& cx, Channel<T>* channel, uint64_t* seen)
      : Base(cx, "watch changed"), channel_(channel), seen_(seen) {}
  ~ChangedAwaiter() { this->abandon(); }

  absl::Status await_resume() {
    if (this->settle() != WaitState::kGranted) return this->status;
    if (marked_) return absl::OkStatus();
    Guard lock(channel_->mu);
    const WaitState checked = channel_->check_changed_locked(seen_, this->status);
    if (checked == WaitState::kRefused) return this->status;
    if (checked != WaitState::kGranted) {
      internal::invariant_violated("watch: a woken changed() found neither a version nor a close");
    }
    return absl::OkStatus();
  }

 private:
  sync_internal::ObservedMutex& wait_mutex() { return channel_->mu; }
  absl::Status precheck() {
    return channel_ == nullptr ? invalid_handle("watch changed") : absl::OkStatus();
  }
  WaitState try_complete_locked(WakeList&) {
    const WaitState checked = channel_->check_changed_locked(seen_, this->status);
    marked_ = checked == WaitState::kGranted;
    return checked;
  }
  void enqueue_locked() { channel_->waiters.push_back(this); }
  void dequeue_locked(WakeList&) { channel_->waiters.remove(this); }
  bool pass_on_when_cancelled() const { return true; }
  void pass_on_locked(WakeList&) {}  // nothing was marked seen

  Channel<T>* channel_;
  uint64_t* seen_;
  bool marked_ = false;
};

}  // namespace watch_internal

// The sending side. Copyable (each copy is one more sender).
template <typename T>
class Sender {
 public:
  Sender() = default;
  Sender(const Sender& other) : channel_(other.channel_) {
    if (channel_ != nullptr) channel_->add_sender();
  }
  Sender(Sender&& other) noexcept : channel_(std::exchange(other.channel_, nullptr)) {}
  Sender& operator=(const Sender& other) {
    if (this != &other) *this = Sender(other);
    return *this;
  }
  Sender& operator=(Sender&& other) noexcept {
    if (this != &other) {
      reset();
      channel_ = std::exchange(other.channel_, nullptr);
    }
    return *this;
  }
  ~Sender() { reset(); }

  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_sender();
  }
  bool valid() const { return channel_ != nullptr; }

  // Replaces the value, bumps the version and wakes every waiting changed(). Never waits; also
  // stores the value when no receiver is left (a later subscribe() sees it). No-op on an
  // invalid sender.
  void send(T value) {
    if (channel_ == nullptr) return;
    auto fresh = std::make_shared<const T>(std::move(value));
    {
      watch_internal::WakeList wakes;
      watch_internal::Guard lock(channel_->mu);
      fresh.swap(channel_->value);
      ++channel_->version;
      channel_->wake_all_locked(wakes);
    }
    // `fresh` now holds the old snapshot: released without the lock held.
  }

  std::shared_ptr<const T> borrow() const {
    if (channel_ == nullptr) return nullptr;
    watch_internal::Guard lock(channel_->mu);
    return channel_->value;
  }

  // A receiver that has seen the current version.
  Receiver<T> subscribe() const;

  size_t receiver_count() const {
    if (channel_ == nullptr) return 0;
    watch_internal::Guard lock(channel_->mu);
    return channel_->receivers;
  }

 private:
  friend std::pair<Sender<T>, Receiver<T>> channel<T>(T);
  explicit Sender(watch_internal::Channel<T>* channel) : channel_(channel) {}
  watch_internal::Channel<T>* channel_ = nullptr;
};

// The receiving side. Copyable (the copy has the same seen version).
template <typename T>
class Receiver {
 public:
  Receiver() = default;
  Receiver(const Receiver& other) : channel_(other.channel_), seen_(other.seen_) {
    if (channel_ != nullptr) channel_->add_receiver();
  }
  Receiver(Receiver&& other) noexcept
      : channel_(std::exchange(other.channel_, nullptr)), seen_(other.seen_) {}
  Receiver& operator=(const Receiver& other) {
    if (this != &other) *this = Receiver(other);
    return *this;
  }
  Receiver& operator=(Receiver&& other) noexcept {
    if (this != &other) {
      reset();
      channel_ = std::exchange(other.channel_, nullptr);
      seen_ = other.seen_;
    }
    return *this;
  }
  ~Receiver() { reset(); }

  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_receiver();
  }
  bool valid() const { return channel_ != nullptr; }

  // Waits for a version newer than the one seen, then marks it seen. Errors: Cancelled
  // (nothing marked), ChannelClosed (no sender left and nothing new), FailedPrecondition
  // (invalid receiver).
  [[nodiscard]] watch_internal::ChangedAwaiter<T> changed(Cx& cx) {
    return watch_internal::ChangedAwaiter<T>(cx, channel_, &seen_);
  }

  // The current value (null for an invalid receiver); does not mark it seen.
  std::shared_ptr<const T> borrow() const {
    if (channel_ == nullptr) return nullptr;
    watch_internal::Guard lock(channel_->mu);
    return channel_->value;
  }
  // The current value, marked seen.
  std::shared_ptr<const T> borrow_and_update() {
    if (channel_ == nullptr) return nullptr;
    watch_internal::Guard lock(channel_->mu);
    seen_ = channel_->version;
    return channel_->value;
  }
  // A copy of the current value. Requires a valid receiver.
  T get() const { return *borrow(); }

  bool has_changed() const {
    if (channel_ == nullptr) return false;
    watch_internal::Guard lock(channel_->mu);
    return channel_->version > seen_;
  }
  uint64_t version() const {
    if (channel_ == nullptr) return 0;
    watch_internal::Guard lock(channel_->mu);
    return channel_->version;
  }
  uint64_t seen_version() const { return seen_; }
  // Tasks parked in changed() on this channel, for tests and diagnostics.
  size_t waiting() const {
    if (channel_ == nullptr) return 0;
    watch_internal::Guard lock(channel_->mu);
    return channel_->waiters.size();
  }

 private:
  friend class Sender<T>;
  friend std::pair<Sender<T>, Receiver<T>> channel<T>(T);
  Receiver(watch_internal::Channel<T>* channel, uint64_t seen) : channel_(channel), seen_(seen) {}

  watch_internal::Channel<T>* channel_ = nullptr;
  uint64_t seen_ = 0;  // guarded by the channel's mutex while a changed() is pending
};

template <typename T>
Receiver<T> Sender<T>::subscribe() const {
  if (channel_ == nullptr) return Receiver<T>();
  channel_->add_receiver();
  watch_internal::Guard lock(channel_->mu);
  return Receiver<T>(channel_, channel_->version);
}

template <typename T>
std::pair<Sender<T>, Receiver<T>> channel(T initial) {
  auto* shared = new watch_internal::Channel<T>(std::make_shared<const T>(std::move(initial)));
  return {Sender<T>(shared), Receiver<T>(shared, 0)};
}

}  // namespace asupersync::watch

#endif  // ASUPERSYNC_SYNC_WATCH_H_
