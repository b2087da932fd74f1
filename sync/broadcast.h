// broadcast: a bounded ring from many senders to many receivers; every receiver sees every
// value, unless it lags (SPEC 8.2).
//
//   absl::StatusOr<std::pair<broadcast::Sender<Event>, broadcast::Receiver<Event>>> made =
//       broadcast::channel<Event>(64);                     // capacity 0 → InvalidArgument
//   auto [tx, rx] = *std::move(made);
//   broadcast::Receiver<Event> rx2 = tx.subscribe();       // sees values sent from now on
//   (void)tx.send(Event{...});                             // never waits
//   absl::StatusOr<Event> event = co_await rx.recv(cx);
//   if (is_lagged(event.status())) { uint64_t missed = *lagged_count(event.status()); ... }
//
// The channel keeps the last `capacity` values. Each receiver has its own cursor; `recv` copies
// the value at the cursor (T must be copyable) and advances it. A send never waits: when the
// ring is full it overwrites the oldest value. A receiver whose cursor fell behind the oldest
// retained value gets a Lagged error (`is_lagged`, `lagged_count` = how many it missed); its
// cursor moves to the oldest retained value and the next recv continues from there.
// End of stream (`is_end_of_stream`): every sender is gone and the receiver has read everything
// retained. `send` with no receiver left fails with ChannelClosed and gives the value back
// (nothing is stored).
//
// Senders and receivers are copyable: a copied Sender counts as one more sender; a copied
// Receiver has the same cursor as the original and then moves independently. `subscribe()`
// makes a receiver that starts at the next value sent.
//
// Thread-safety: members may be called from any thread; one mutex per channel, wakers run after
// it is released; values are copied out under it. One Receiver object is used by one task at a
// time (copy it for another task). Lifetime: the state is reference counted by the endpoints;
// an awaiter refers to its Receiver and Cx: await it at once.
//
// Cancellation contract (SPEC 4.2, 8): recv is a cancellation point (a deliverable cancel is
// checked first). Cancelled, it consumes nothing (the cursor does not move: the value is still
// there for the next recv, unless the ring overwrote it, which the next recv reports as lag)
// and leaves no waiter behind. A recv woken by a send whose cancel raced in reports Cancelled
// and leaves the cursor where it was. A waiter destroyed while parked (SPEC 4.5) deregisters.

#ifndef ASUPERSYNC_SYNC_BROADCAST_H_
#define ASUPERSYNC_SYNC_BROADCAST_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"
#include "sync/status.h"

namespace asupersync::broadcast {

template <typename T>
class Sender;
template <typename T>
class Receiver;

template <typename T>
absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel(size_t capacity);

namespace broadcast_internal {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

inline absl::Status invalid_handle(const char* what) {
  return absl::FailedPreconditionError(std::string(what) +
                                       " on an invalid (moved-from or default) broadcast handle");
}

template <typename T>
class Channel {
 public:
  explicit Channel(size_t capacity) : capacity(capacity), ring(capacity) {}

  void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  uint64_t oldest_locked() const { return next_seq > capacity ? next_seq - capacity : 0; }

  // What a receiver at `*cursor` gets now: kGranted with `out` (cursor advanced), kRefused with
  // `why` (lag: cursor moved to the oldest retained; end of stream), kIdle (nothing new yet).
  WaitState read_locked(uint64_t* cursor, std::optional<T>& out, absl::Status& why) const {
    const uint64_t oldest = oldest_locked();
    if (*cursor < oldest) {
      const uint64_t missed = oldest - *cursor;
      *cursor = oldest;
      why = lagged_error("broadcast recv: the receiver fell behind the ring", missed);
      return WaitState::kRefused;
    }
    if (*cursor < next_seq) {
      out.emplace(*ring[*cursor % capacity]);  // a copy: other receivers read it too
      ++*cursor;
      return WaitState::kGranted;
    }
    if (senders == 0) {
      why = end_of_stream_error("broadcast recv: end of stream: every sender is gone");
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
      if (--senders == 0) wake_all_locked(wakes);  // end of stream for everyone waiting
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

  const size_t capacity;
  mutable sync_internal::ObservedMutex mu;
  std::vector<std::optional<T>> ring;
  uint64_t next_seq = 0;  // sequence number of the next value sent
  size_t senders = 1;
  size_t receivers = 1;
  sync_internal::WaiterList<sync_internal::Waiter> waiters;
  std::atomic<size_t> refs{2};
};

// co_await rx.recv(cx) → absl::StatusOr<T>.
template <typename T>
class [[nodiscard]] RecvAwaiter final : public sync_internal::Awaiter<RecvAwaiter<T>> {
  using Base = sync_internal::Awaiter<RecvAwaiter<T>>;
  friend Base;

 public:
  RecvAwaiter(Cx& cx, Channel<T>* channel, uint64_t* cursor)
      : Base(cx, "broadcast recv"), channel_(channel), cursor_(cursor) {}
  ~RecvAwaiter() { this->abandon(); }

  absl::StatusOr<T> await_resume() {
    if (this->settle() != WaitState::kGranted) return this->status;
    if (value_.has_value()) return std::move(*value_);
    Guard lock(channel_->mu);
    const WaitState read = channel_->read_locked(cursor_, value_, this->status);
    if (read == WaitState::kRefused) return this->status;
    if (read != WaitState::kGranted) {
      internal::invariant_violated("broadcast: a woken recv found neither a value nor an end");
    }
    return std::move(*value_);
  }

 private:
  sync_internal::ObservedMutex& wait_mutex() { return channel_->mu; }
  absl::Status precheck() {
    return channel_ == nullptr ? invalid_handle("broadcast recv") : absl::OkStatus();
  }
  WaitState try_complete_locked(WakeList&) {
    return channel_->read_locked(cursor_, value_, this->status);
  }
  void enqueue_locked() { channel_->waiters.push_back(this); }
  void dequeue_locked(WakeList&) { channel_->waiters.remove(this); }
  bool pass_on_when_cancelled() const { return true; }
  void pass_on_locked(WakeList&) {}  // nothing was read: the cursor did not move

  Channel<T>* channel_;
  uint64_t* cursor_;
  std::optional<T> value_;
};

}  // namespace broadcast_internal

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

  // Stores `value` for every receiver (overwriting the oldest when full) and wakes the waiting
  // ones. Never waits. ChannelClosed (value given back) when no receiver is left.
  SendResult<T> send(T value) {
    if (channel_ == nullptr) {
      return SendResult<T>::Failed(broadcast_internal::invalid_handle("broadcast send"),
                                   std::move(value));
    }
    std::optional<T> evicted;
    {
      broadcast_internal::WakeList wakes;
      broadcast_internal::Guard lock(channel_->mu);
      if (channel_->receivers == 0) {
        return SendResult<T>::Failed(channel_closed_error("broadcast send: no receiver is left"),
                                     std::move(value));
      }
      std::optional<T>& slot = channel_->ring[channel_->next_seq % channel_->capacity];
      evicted.swap(slot);
      slot.emplace(std::move(value));
      ++channel_->next_seq;
      channel_->wake_all_locked(wakes);
    }
    return SendResult<T>::Sent();  // `evicted` is destroyed without the lock held
  }

  // A receiver that starts at the next value sent.
  Receiver<T> subscribe() const;

  size_t receiver_count() const {
    if (channel_ == nullptr) return 0;
    broadcast_internal::Guard lock(channel_->mu);
    return channel_->receivers;
  }

 private:
  friend absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel<T>(size_t);
  explicit Sender(broadcast_internal::Channel<T>* channel) : channel_(channel) {}
  broadcast_internal::Channel<T>* channel_ = nullptr;
};

// The receiving side. Copyable (the copy starts at the same cursor).
template <typename T>
class Receiver {
 public:
  Receiver() = default;
  Receiver(const Receiver& other) : channel_(other.channel_), cursor_(other.cursor_) {
    if (channel_ != nullptr) channel_->add_receiver();
  }
  Receiver(Receiver&& other) noexcept
      : channel_(std::exchange(other.channel_, nullptr)), cursor_(other.cursor_) {}
  Receiver& operator=(const Receiver& other) {
    if (this != &other) *this = Receiver(other);
    return *this;
  }
  Receiver& operator=(Receiver&& other) noexcept {
    if (this != &other) {
      reset();
      channel_ = std::exchange(other.channel_, nullptr);
      cursor_ = other.cursor_;
    }
    return *this;
  }
  ~Receiver() { reset(); }

  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_receiver();
  }
  bool valid() const { return channel_ != nullptr; }

  // The next value for this receiver. Errors: Cancelled (cursor unchanged), Lagged (with the
  // count; the cursor moved to the oldest retained value), EndOfStream.
  [[nodiscard]] broadcast_internal::RecvAwaiter<T> recv(Cx& cx) {
    return broadcast_internal::RecvAwaiter<T>(cx, channel_, &cursor_);
  }

  // As recv, but Unavailable instead of waiting.
  absl::StatusOr<T> try_recv() {
    if (channel_ == nullptr) return broadcast_internal::invalid_handle("broadcast try_recv");
    broadcast_internal::Guard lock(channel_->mu);
    std::optional<T> value;
    absl::Status why;
    const broadcast_internal::WaitState read = channel_->read_locked(&cursor_, value, why);
    if (read == broadcast_internal::WaitState::kRefused) return why;
    if (read == broadcast_internal::WaitState::kIdle) {
      return absl::UnavailableError("broadcast: nothing new");
    }
    return std::move(*value);
  }

  // Values sent that this receiver has not read yet (including ones already overwritten).
  uint64_t pending() const {
    if (channel_ == nullptr) return 0;
    broadcast_internal::Guard lock(channel_->mu);
    return channel_->next_seq - cursor_;
  }
  // Tasks parked in recv on this channel (any receiver), for tests and diagnostics.
  size_t waiting() const {
    if (channel_ == nullptr) return 0;
    broadcast_internal::Guard lock(channel_->mu);
    return channel_->waiters.size();
  }

 private:
  friend class Sender<T>;
  friend absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel<T>(size_t);
  Receiver(broadcast_internal::Channel<T>* channel, uint64_t cursor)
      : channel_(channel), cursor_(cursor) {}

  broadcast_internal::Channel<T>* channel_ = nullptr;
  uint64_t cursor_ = 0;  // the sequence number of the next value to read
};

template <typename T>
Receiver<T> Sender<T>::subscribe() const {
  if (channel_ == nullptr) return Receiver<T>();
  channel_->add_receiver();
  broadcast_internal::Guard lock(channel_->mu);
  return Receiver<T>(channel_, channel_->next_seq);
}

template <typename T>
absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel(size_t capacity) {
  if (capacity == 0) {
    return absl::InvalidArgumentError(
        "broadcast::channel: the capacity must be at least 1 (got 0)");
  }
  auto* shared = new broadcast_internal::Channel<T>(capacity);
  return std::pair<Sender<T>, Receiver<T>>(Sender<T>(shared), Receiver<T>(shared, 0));
}

}  // namespace asupersync::broadcast

#endif  // ASUPERSYNC_SYNC_BROADCAST_H_
