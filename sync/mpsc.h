// mpsc: a bounded multi-producer, single-consumer channel (SPEC 8.1).
//
//   absl::StatusOr<std::pair<mpsc::Sender<Job>, mpsc::Receiver<Job>>> made =
//       mpsc::channel<Job>(16);                        // capacity 0 → InvalidArgument
//   auto [tx, rx] = *std::move(made);
//
//   // Two-phase send: reserve a slot (may wait), then commit synchronously.
//   absl::StatusOr<Permit<Job>> permit = co_await tx.reserve(cx);
//   if (permit.ok()) std::move(*permit).send(Job{...});   // or std::move(*permit).abort()
//
//   // One-call send: the value comes back if the send is cancelled or the channel is closed.
//   SendResult<Job> sent = co_await tx.send(cx, Job{...});
//   if (!sent.ok()) keep(std::move(*sent.value));
//
//   absl::StatusOr<Job> job = co_await rx.recv(cx);  // is_end_of_stream(job.status()) at the end
//
// Capacity counts committed values not yet received plus reserved slots. Waiting senders
// (reserve and send alike) are served strictly FIFO: a slot freed by a receive or by an
// aborted permit goes to the longest waiter. Senders are copyable (each copy counts); the
// receiver is move-only and single.
//
// Closing. Receiver dropped: queued values are destroyed, waiting senders and later
// reserve/send/try_send fail with ChannelClosed (`is_channel_closed`), a permit still held
// discards its value when sent (safely: no effect, the entry is resolved as committed), and a
// send(cx, v) gives `v` back. `rx.close()`: no new reservations (waiting senders are refused
// with ChannelClosed), but values already committed and permits already held are still
// delivered. End of stream (`is_end_of_stream`, code OutOfRange): recv returns it once every
// committed value was received, no permit is outstanding, and every sender is gone or the
// receiver closed; it is stable (every later recv returns it again).
//
// Obligations (SPEC 5): a permit from `reserve`/`try_reserve` is recorded in the ledger of the
// reserving context's region, as "mpsc slot", so the region cannot close while it is pending.
// Send commits (kCommitted), abort gives the slot back (kAborted), destroying a live permit
// gives the slot back and is reported as a leak (kLeaked). Reserving needs the region Open
// (SPEC 3.2): in a closing region reserve fails with FailedPrecondition. The one-call
// `send(cx, v)` takes no ledger entry (it holds its slot only inside the call) and works in a
// closing region too.
//
// Thread-safety: every member of Sender/Receiver may be called from any thread; one mutex per
// channel guards its state; wakers run after it is released. One Receiver object is used by
// one task at a time: a second recv/try_recv while a recv is pending fails with
// FailedPrecondition. Permits may be consumed on any thread.
// Lifetime: the channel state is reference counted by its senders, its receiver and every
// outstanding permit; it goes away with the last of them. An awaiter refers to the Sender or
// Receiver it came from and to the Cx: await it at once.
//
// Cancellation contract (SPEC 4.2, 8): reserve, send and recv are cancellation points (a
// deliverable cancel is checked first). A cancelled wait consumes nothing and leaves no waiter
// behind: a cancelled reserve holds no slot and no ledger entry; a cancelled send gives its
// value back in `SendResult::value`; a cancelled recv leaves every value queued (the next recv
// gets it). A slot granted to a waiter whose cancel raced in is passed to the next waiting
// sender; a recv woken by a value whose cancel raced in leaves the value queued. A waiter
// destroyed while parked (SPEC 4.5) deregisters and passes any untaken slot on.

#ifndef ASUPERSYNC_SYNC_MPSC_H_
#define ASUPERSYNC_SYNC_MPSC_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/source_site.h"
#include "obligations/permit.h"
#include "sync/internal/obligation.h"
#include "sync/internal/observed_mutex.h"
#include "sync/internal/waiter.h"
#include "sync/status.h"

namespace asupersync::mpsc {

template <typename T>
class Sender;
template <typename T>
class Receiver;

// A snapshot of a channel's counts, for tests and diagnostics.
struct ChannelStats {
  size_t capacity = 0;
  size_t queued = 0;           // committed values not yet received
  size_t reserved = 0;         // slots held by permits or granted waiters, not yet committed
  size_t senders = 0;          // live Sender objects
  size_t waiting_senders = 0;  // reserve/send waits queued
  bool receiver_waiting = false;
  bool closed = false;
  bool receiver_alive = true;
};

// Makes a channel holding at most `capacity` values (committed or reserved).
template <typename T>
absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel(size_t capacity);

namespace mpsc_internal {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

inline absl::Status closed_error() {
  return channel_closed_error(
      "mpsc: the receiver was dropped or closed; the channel accepts no more values");
}
inline absl::Status end_of_stream() {
  return end_of_stream_error(
      "mpsc: end of stream: every committed value was received and no sender is left");
}

// The shared state. Members are public for the awaiters of this file; fields are guarded by
// `mu`. Reference counted: the senders, the receiver and each outstanding permit.
template <typename T>
class Channel final : public PermitSink<T> {
 public:
  explicit Channel(size_t capacity) : capacity(capacity) {}

  void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // PermitSink<T>, the commit path of a permit: delivers (or, receiver gone, discards) `value`.
  // If queuing throws nothing changed; the permit then calls release().
  void commit(T value) override {
    {
      WakeList wakes;
      Guard lock(mu);
      if (receiver_alive) queue.push_back(std::move(value));
      --reserved;
      wake_receiver_locked(wakes);
    }
    unref();  // `value` (discarded or moved from) is destroyed after the lock, by the caller
  }

  // PermitSink<T>, the abort and leak paths: the slot goes to the next waiting sender.
  void release() noexcept override {
    {
      WakeList wakes;
      Guard lock(mu);
      give_back_slot_locked(wakes);
    }
    unref();
  }

  size_t free_locked() const {
    const size_t used = queue.size() + reserved;
    return used >= capacity ? 0 : capacity - used;
  }

  bool end_of_stream_locked() const {
    return queue.empty() && reserved == 0 && (senders == 0 || closed);
  }

  void wake_receiver_locked(WakeList& wakes) {
    if (recv_waiter == nullptr) return;
    recv_waiter->grant_locked(wakes);
    recv_waiter = nullptr;
  }

  // Free slots go to waiting senders, oldest first.
  void dispatch_slots_locked(WakeList& wakes) {
    while (!closed && !slot_waiters.empty() && free_locked() > 0) {
      sync_internal::Waiter* waiter = slot_waiters.pop_front();
      ++reserved;
      waiter->grant_locked(wakes);
    }
  }

  void give_back_slot_locked(WakeList& wakes) {
    --reserved;
    dispatch_slots_locked(wakes);
    if (end_of_stream_locked()) wake_receiver_locked(wakes);
  }

  // A slot for a new reservation: kGranted (reserved for the caller), kRefused (closed; `why`
  // set) or kIdle (full, or older senders wait: strict FIFO).
  WaitState try_take_slot_locked(absl::Status& why) {
    if (closed) {
      why = closed_error();
      return WaitState::kRefused;
    }
    if (!slot_waiters.empty() || free_locked() == 0) return WaitState::kIdle;
    ++reserved;
    return WaitState::kGranted;
  }

  // Queues `value` into a slot the caller reserved. If queuing throws, nothing changed.
  void commit_reserved_locked(T& value, WakeList& wakes) {
    queue.push_back(std::move(value));
    --reserved;
    wake_receiver_locked(wakes);
  }

  // kGranted with `out` set, kRefused (end of stream; `why` set) or kIdle (nothing yet).
  WaitState try_recv_locked(std::optional<T>& out, absl::Status& why, WakeList& wakes) {
    if (!queue.empty()) {
      out.emplace(std::move(queue.front()));
      queue.pop_front();
      dispatch_slots_locked(wakes);
      return WaitState::kGranted;
    }
    if (end_of_stream_locked()) {
      why = end_of_stream();
      return WaitState::kRefused;
    }
    return WaitState::kIdle;
  }

  // Turns a slot the caller holds into a permit recorded in `cx`'s region (gives the slot back
  // on failure).
  absl::StatusOr<Permit<T>> permit_for_slot(Cx& cx, SourceSite site) {
    {
      WakeList wakes;
      Guard lock(mu);
      if (!receiver_alive) {
        give_back_slot_locked(wakes);
        return closed_error();
      }
    }
    absl::StatusOr<sync_internal::RecordedObligation> recorded =
        sync_internal::record_permit(cx, "mpsc reserve", "mpsc slot", site);
    if (!recorded.ok()) {
      WakeList wakes;
      Guard lock(mu);
      give_back_slot_locked(wakes);
      return recorded.status();
    }
    ref();  // the permit's reference
    return Permit<T>(this, recorded->ledger, recorded->id);
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
      --senders;
      if (end_of_stream_locked()) wake_receiver_locked(wakes);
    }
    unref();
  }

  void refuse_slot_waiters_locked(WakeList& wakes) {
    while (sync_internal::Waiter* waiter = slot_waiters.pop_front()) {
      waiter->refuse_locked(closed_error(), wakes);
    }
  }

  void close() {
    WakeList wakes;
    Guard lock(mu);
    closed = true;
    refuse_slot_waiters_locked(wakes);
    if (end_of_stream_locked()) wake_receiver_locked(wakes);
  }

  void drop_receiver() {
    std::deque<T> discarded;
    {
      WakeList wakes;
      Guard lock(mu);
      receiver_alive = false;
      closed = true;
      discarded.swap(queue);
      refuse_slot_waiters_locked(wakes);
    }
    discarded.clear();  // values are destroyed without the lock held
    unref();
  }

  ChannelStats stats() const {
    Guard lock(mu);
    return ChannelStats{capacity, queue.size(),        reserved,
                        senders,  slot_waiters.size(), recv_waiter != nullptr,
                        closed,   receiver_alive};
  }

  const size_t capacity;
  mutable sync_internal::ObservedMutex mu;
  std::deque<T> queue;
  size_t reserved = 0;
  size_t senders = 1;
  bool receiver_alive = true;
  bool closed = false;
  bool recv_busy = false;  // a recv is parked or woken and not yet finished
  sync_internal::WaiterList<sync_internal::Waiter> slot_waiters;
  sync_internal::Waiter* recv_waiter = nullptr;
  std::atomic<size_t> refs{2};
};

inline absl::Status invalid_handle(const char* what) {
  return absl::FailedPreconditionError(std::string(what) +
                                       " on an invalid (moved-from or default) channel handle");
}

// co_await tx.reserve(cx) → absl::StatusOr<Permit<T>>.
template <typename T>
class [[nodiscard]] ReserveAwaiter final : public sync_internal::Awaiter<ReserveAwaiter<T>> {
  using Base = sync_internal::Awaiter<ReserveAwaiter<T>>;
  friend Base;

 public:
  ReserveAwaiter(Cx& cx, Channel<T>* channel, SourceSite site)
      : Base(cx, "mpsc reserve"), channel_(channel), site_(site) {}
  ~ReserveAwaiter() { this->abandon(); }

  absl::StatusOr<Permit<T>> await_resume() {
    if (this->settle() != WaitState::kGranted) return this->status;
    return channel_->permit_for_slot(this->cx(), site_);
  }

 private:
  sync_internal::ObservedMutex& wait_mutex() { return channel_->mu; }
  absl::Status precheck() {
    if (channel_ == nullptr) return invalid_handle("mpsc reserve");
    return sync_internal::check_admission(this->cx(), "mpsc reserve");
  }
  WaitState try_complete_locked(WakeList&) { return channel_->try_take_slot_locked(this->status); }
  void enqueue_locked() { channel_->slot_waiters.push_back(this); }
  void dequeue_locked(WakeList&) { channel_->slot_waiters.remove(this); }
  bool pass_on_when_cancelled() const { return true; }
  void pass_on_locked(WakeList& wakes) { channel_->give_back_slot_locked(wakes); }

  Channel<T>* channel_;
  SourceSite site_;
};

// co_await tx.send(cx, value) → SendResult<T>.
template <typename T>
class [[nodiscard]] SendAwaiter final : public sync_internal::Awaiter<SendAwaiter<T>> {
  using Base = sync_internal::Awaiter<SendAwaiter<T>>;
  friend Base;

 public:
  SendAwaiter(Cx& cx, Channel<T>* channel, T value)
      : Base(cx, "mpsc send"), channel_(channel), value_(std::move(value)) {}
  ~SendAwaiter() { this->abandon(); }

  SendResult<T> await_resume() {
    if (this->settle() != WaitState::kGranted) {
      return SendResult<T>::Failed(this->status, std::move(*value_));
    }
    if (sent_) return SendResult<T>::Sent();
    // A slot was granted while parked: commit into it.
    WakeList wakes;
    Guard lock(channel_->mu);
    if (!channel_->receiver_alive) {
      channel_->give_back_slot_locked(wakes);
      return SendResult<T>::Failed(closed_error(), std::move(*value_));
    }
    try {
      channel_->commit_reserved_locked(*value_, wakes);
    } catch (...) {
      channel_->give_back_slot_locked(wakes);
      throw;
    }
    return SendResult<T>::Sent();
  }

 private:
  sync_internal::ObservedMutex& wait_mutex() { return channel_->mu; }
  absl::Status precheck() {
    return channel_ == nullptr ? invalid_handle("mpsc send") : absl::OkStatus();
  }
  WaitState try_complete_locked(WakeList& wakes) {
    const WaitState taken = channel_->try_take_slot_locked(this->status);
    if (taken != WaitState::kGranted) return taken;
    try {
      channel_->commit_reserved_locked(*value_, wakes);
    } catch (...) {
      channel_->give_back_slot_locked(wakes);
      throw;
    }
    sent_ = true;
    return WaitState::kGranted;
  }
  void enqueue_locked() { channel_->slot_waiters.push_back(this); }
  void dequeue_locked(WakeList&) { channel_->slot_waiters.remove(this); }
  bool pass_on_when_cancelled() const { return true; }
  void pass_on_locked(WakeList& wakes) { channel_->give_back_slot_locked(wakes); }

  Channel<T>* channel_;
  std::optional<T> value_;
  bool sent_ = false;
};

// co_await rx.recv(cx) → absl::StatusOr<T>.
template <typename T>
class [[nodiscard]] RecvAwaiter final : public sync_internal::Awaiter<RecvAwaiter<T>> {
  using Base = sync_internal::Awaiter<RecvAwaiter<T>>;
  friend Base;

 public:
  RecvAwaiter(Cx& cx, Channel<T>* channel) : Base(cx, "mpsc recv"), channel_(channel) {}
  ~RecvAwaiter() { this->abandon(); }

  absl::StatusOr<T> await_resume() {
    if (this->settle() != WaitState::kGranted) return this->status;
    if (value_.has_value()) return std::move(*value_);
    // Woken by a commit or by the end of the stream: take it now.
    WakeList wakes;
    Guard lock(channel_->mu);
    channel_->recv_busy = false;
    const WaitState taken = channel_->try_recv_locked(value_, this->status, wakes);
    if (taken == WaitState::kRefused) return this->status;
    if (taken != WaitState::kGranted) {
      internal::invariant_violated("mpsc: a woken recv found neither a value nor end of stream");
    }
    return std::move(*value_);
  }

 private:
  sync_internal::ObservedMutex& wait_mutex() { return channel_->mu; }
  absl::Status precheck() {
    return channel_ == nullptr ? invalid_handle("mpsc recv") : absl::OkStatus();
  }
  WaitState try_complete_locked(WakeList& wakes) {
    if (channel_->recv_busy) {
      this->status = absl::FailedPreconditionError(
          "mpsc recv: another recv is pending on this receiver (one task at a time)");
      return WaitState::kRefused;
    }
    return channel_->try_recv_locked(value_, this->status, wakes);
  }
  void enqueue_locked() {
    channel_->recv_waiter = this;
    channel_->recv_busy = true;
  }
  void dequeue_locked(WakeList&) {
    channel_->recv_waiter = nullptr;
    channel_->recv_busy = false;
  }
  bool pass_on_when_cancelled() const { return true; }
  // Nothing was taken: the values stay queued for the next recv.
  void pass_on_locked(WakeList&) { channel_->recv_busy = false; }

  Channel<T>* channel_;
  std::optional<T> value_;
};

}  // namespace mpsc_internal

// The sending side. Copyable: each copy is one more sender; the stream ends when all are gone.
// A default-constructed or moved-from Sender is invalid: its operations fail with
// FailedPrecondition.
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

  // Drops this sender (as destroying it would).
  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_sender();
  }
  bool valid() const { return channel_ != nullptr; }

  // Waits for a free slot and returns a permit for it, recorded in `cx`'s region. Errors:
  // Cancelled, ChannelClosed, FailedPrecondition (region closing, invalid sender),
  // ResourceExhausted (the region's obligation limit).
  [[nodiscard]] mpsc_internal::ReserveAwaiter<T> reserve(Cx& cx,
                                                         SourceSite site = SourceSite::current()) {
    return mpsc_internal::ReserveAwaiter<T>(cx, channel_, site);
  }

  // Waits for a free slot and sends `value` into it. On failure (Cancelled, ChannelClosed) the
  // value is given back in the result.
  [[nodiscard]] mpsc_internal::SendAwaiter<T> send(Cx& cx, T value) {
    return mpsc_internal::SendAwaiter<T>(cx, channel_, std::move(value));
  }

  // A permit if a slot is free now (and no older sender waits); ResourceExhausted otherwise.
  // Not a cancellation point.
  absl::StatusOr<Permit<T>> try_reserve(Cx& cx, SourceSite site = SourceSite::current()) {
    if (channel_ == nullptr) return mpsc_internal::invalid_handle("mpsc try_reserve");
    absl::Status why;
    mpsc_internal::WaitState taken;
    {
      mpsc_internal::Guard lock(channel_->mu);
      taken = channel_->try_take_slot_locked(why);
    }
    if (taken == mpsc_internal::WaitState::kRefused) return why;
    if (taken == mpsc_internal::WaitState::kIdle) return full_error();
    return channel_->permit_for_slot(cx, site);
  }

  // Sends now if a slot is free (and no older sender waits); otherwise gives the value back
  // with ResourceExhausted (full) or ChannelClosed. Needs no runtime.
  SendResult<T> try_send(T value) {
    if (channel_ == nullptr) {
      return SendResult<T>::Failed(mpsc_internal::invalid_handle("mpsc try_send"),
                                   std::move(value));
    }
    mpsc_internal::WakeList wakes;
    mpsc_internal::Guard lock(channel_->mu);
    absl::Status why;
    const mpsc_internal::WaitState taken = channel_->try_take_slot_locked(why);
    if (taken == mpsc_internal::WaitState::kRefused) {
      return SendResult<T>::Failed(std::move(why), std::move(value));
    }
    if (taken == mpsc_internal::WaitState::kIdle) {
      return SendResult<T>::Failed(full_error(), std::move(value));
    }
    try {
      channel_->commit_reserved_locked(value, wakes);
    } catch (...) {
      channel_->give_back_slot_locked(wakes);
      throw;
    }
    return SendResult<T>::Sent();
  }

  // True once the receiver is dropped or closed.
  bool is_closed() const {
    if (channel_ == nullptr) return true;
    mpsc_internal::Guard lock(channel_->mu);
    return channel_->closed;
  }
  size_t capacity() const { return channel_ == nullptr ? 0 : channel_->capacity; }
  ChannelStats stats() const { return channel_ == nullptr ? ChannelStats{} : channel_->stats(); }

 private:
  friend absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel<T>(size_t);
  explicit Sender(mpsc_internal::Channel<T>* channel) : channel_(channel) {}

  static absl::Status full_error() {
    return absl::ResourceExhaustedError("mpsc: the channel is full");
  }

  mpsc_internal::Channel<T>* channel_ = nullptr;
};

// The receiving side. Move-only; destroying it closes the channel and discards queued values.
template <typename T>
class Receiver {
 public:
  Receiver() = default;
  Receiver(Receiver&& other) noexcept : channel_(std::exchange(other.channel_, nullptr)) {}
  Receiver& operator=(Receiver&& other) noexcept {
    if (this != &other) {
      reset();
      channel_ = std::exchange(other.channel_, nullptr);
    }
    return *this;
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() { reset(); }

  // Drops the receiver (as destroying it would).
  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_receiver();
  }
  bool valid() const { return channel_ != nullptr; }

  // The next value, FIFO. Errors: Cancelled (no value consumed), EndOfStream,
  // FailedPrecondition (another recv pending, invalid receiver).
  [[nodiscard]] mpsc_internal::RecvAwaiter<T> recv(Cx& cx) {
    return mpsc_internal::RecvAwaiter<T>(cx, channel_);
  }

  // The next value if one is queued; Unavailable if none yet; EndOfStream at the end. Needs
  // no runtime.
  absl::StatusOr<T> try_recv() {
    if (channel_ == nullptr) return mpsc_internal::invalid_handle("mpsc try_recv");
    mpsc_internal::WakeList wakes;
    mpsc_internal::Guard lock(channel_->mu);
    if (channel_->recv_busy) {
      return absl::FailedPreconditionError("mpsc try_recv: a recv is pending on this receiver");
    }
    std::optional<T> value;
    absl::Status why;
    const mpsc_internal::WaitState taken = channel_->try_recv_locked(value, why, wakes);
    if (taken == mpsc_internal::WaitState::kRefused) return why;
    if (taken == mpsc_internal::WaitState::kIdle) {
      return absl::UnavailableError("mpsc: the channel is empty");
    }
    return std::move(*value);
  }

  // Stops new reservations (waiting senders get ChannelClosed); what was committed or
  // reserved before is still delivered, then recv returns EndOfStream.
  void close() {
    if (channel_ != nullptr) channel_->close();
  }

  ChannelStats stats() const { return channel_ == nullptr ? ChannelStats{} : channel_->stats(); }

 private:
  friend absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel<T>(size_t);
  explicit Receiver(mpsc_internal::Channel<T>* channel) : channel_(channel) {}

  mpsc_internal::Channel<T>* channel_ = nullptr;
};

template <typename T>
absl::StatusOr<std::pair<Sender<T>, Receiver<T>>> channel(size_t capacity) {
  if (capacity == 0) {
    return absl::InvalidArgumentError("mpsc::channel: the capacity must be at least 1 (got 0)");
  }
  auto* shared = new mpsc_internal::Channel<T>(capacity);
  return std::pair<Sender<T>, Receiver<T>>(Sender<T>(shared), Receiver<T>(shared));
}

}  // namespace asupersync::mpsc

#endif  // ASUPERSYNC_SYNC_MPSC_H_
