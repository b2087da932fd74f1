// oneshot: a channel that delivers exactly one value, reserve then send (SPEC 8.2, 5.1).
//
//   auto [tx, rx] = oneshot::channel<Reply>();
//   // Producer: reserve the one slot (an obligation in its region's ledger), then commit.
//   absl::StatusOr<Permit<Reply>> permit = tx.reserve(cx);
//   if (permit.ok()) std::move(*permit).send(Reply{...});   // or .abort(): no effect
//   // Consumer:
//   absl::StatusOr<Reply> reply = co_await rx.recv(cx);
//   // is_channel_closed(reply.status()): the sender went away without sending.
//
// This is the first client of the obligation tokens (obligations/permit.h): the permit has the
// three consumption paths, each visible to the receiver:
//
//   | path                    | receiver sees                  | ledger      |
//   |-------------------------|--------------------------------|-------------|
//   | `std::move(p).send(v)`  | `v`                            | kCommitted  |
//   | `std::move(p).abort()`  | nothing; the sender may reserve again; once the Sender is also
//   |                         | gone, ChannelClosed            | kAborted    |
//   | permit destroyed (leak) | as abort                       | kLeaked + report (SPEC 5.3) |
//
// `tx.send(v)` commits without a permit (no ledger entry; the value comes back in the result
// if the receiver is gone). Reserving needs an Open region (SPEC 3.2). A second reserve while
// a permit is live, or any reserve/send after a value was sent, fails with FailedPrecondition.
//
// Receiver: `recv(cx)` waits for the value; ChannelClosed once no value can come any more (the
// Sender is gone and no permit is live); a second recv after the value was taken fails with
// FailedPrecondition. Receiver dropped: `reserve`/`send` fail with ChannelClosed, and a live
// permit's send is discarded safely (no effect; resolved as committed).
//
// Thread-safety: members may be called from any thread; one mutex per channel, wakers run
// after it is released. Each endpoint is used by one task at a time (a second recv while one is
// pending fails with FailedPrecondition). Lifetime: the state is reference counted by both
// endpoints and the live permit. The recv awaiter refers to the Receiver and the Cx: await it at
// once.
//
// Cancellation contract (SPEC 4.2, 8): `recv` is a cancellation point (a deliverable cancel is
// checked first). Cancelled, it consumes nothing (the value, if it arrived meanwhile, stays for
// the next recv) and leaves no waiter behind. `reserve` and `send` never wait, so they are not
// cancellation points; a cancelled task that holds a permit aborts or sends it while it drains
// (SPEC 4.3). A recv destroyed while parked (SPEC 4.5) deregisters.

#ifndef ASUPERSYNC_SYNC_ONESHOT_H_
#define ASUPERSYNC_SYNC_ONESHOT_H_

#include <atomic>
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

namespace asupersync::oneshot {

template <typename T>
class Sender;
template <typename T>
class Receiver;

template <typename T>
std::pair<Sender<T>, Receiver<T>> channel();

namespace oneshot_internal {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

inline absl::Status receiver_gone() {
  return channel_closed_error("oneshot: the receiver was dropped; the value cannot be delivered");
}
inline absl::Status sender_gone() {
  return channel_closed_error(
      "oneshot: the sender went away without sending (dropped, or its permit was aborted or "
      "leaked)");
}
inline absl::Status invalid_handle(const char* what) {
  return absl::FailedPreconditionError(std::string(what) +
                                       " on an invalid (moved-from or default) oneshot handle");
}

template <typename T>
class Channel final : public PermitSink<T> {
 public:
  void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // The commit path of the permit.
  void commit(T delivered) override {
    {
      WakeList wakes;
      Guard lock(mu);
      if (receiver_alive) {
        value.emplace(std::move(delivered));  // may throw: nothing changed, the permit aborts
        sent = true;
      }
      reserved = false;
      wake_receiver_locked(wakes);
    }
    unref();
  }

  // The abort and leak paths of the permit.
  void release() noexcept override {
    {
      WakeList wakes;
      Guard lock(mu);
      reserved = false;
      if (closed_for_receiver_locked()) wake_receiver_locked(wakes);
    }
    unref();
  }

  bool closed_for_receiver_locked() const { return !sent && !reserved && !sender_alive; }

  void wake_receiver_locked(WakeList& wakes) {
    if (recv_waiter == nullptr) return;
    recv_waiter->grant_locked(wakes);
    recv_waiter = nullptr;
  }

  // kGranted with `out` set, kRefused (`why` set), kIdle (nothing yet).
  WaitState try_recv_locked(std::optional<T>& out, absl::Status& why) {
    if (taken) {
      why = absl::FailedPreconditionError("oneshot recv: the value was already received");
      return WaitState::kRefused;
    }
    if (sent) {
      out.emplace(std::move(*value));
      value.reset();
      taken = true;
      return WaitState::kGranted;
    }
    if (closed_for_receiver_locked()) {
      why = sender_gone();
      return WaitState::kRefused;
    }
    return WaitState::kIdle;
  }

  // Checks that a value may be committed now (by reserve or send).
  absl::Status check_send_locked(const char* what) const {
    if (!receiver_alive) return receiver_gone();
    if (sent) {
      return absl::FailedPreconditionError(std::string(what) +
                                           ": the value was already sent (exactly once)");
    }
    if (reserved) {
      return absl::FailedPreconditionError(std::string(what) +
                                           ": the slot is already reserved by a live permit");
    }
    return absl::OkStatus();
  }

  void drop_sender() {
    {
      WakeList wakes;
      Guard lock(mu);
      sender_alive = false;
      if (closed_for_receiver_locked()) wake_receiver_locked(wakes);
    }
    unref();
  }

  void drop_receiver() {
    std::optional<T> discarded;
    {
      Guard lock(mu);
      receiver_alive = false;
      discarded.swap(value);
    }
    discarded.reset();  // destroyed without the lock held
    unref();
  }

  mutable sync_internal::ObservedMutex mu;
  std::optional<T> value;
  bool sender_alive = true;
  bool receiver_alive = true;
  bool reserved = false;  // a live permit holds the slot
  bool sent = false;
  bool taken = false;
  bool recv_busy = false;
  sync_internal::Waiter* recv_waiter = nullptr;
  std::atomic<int> refs{2};
};

// co_await rx.recv(cx) → absl::StatusOr<T>.
template <typename T>
class [[nodiscard]] RecvAwaiter final : public sync_internal::Awaiter<RecvAwaiter<T>> {
  using Base = sync_internal::Awaiter<RecvAwaiter<T>>;
  friend Base;

 public:
  RecvAwaiter(Cx& cx, Channel<T>* channel) : Base(cx, "oneshot recv"), channel_(channel) {}
  ~RecvAwaiter() { this->abandon(); }

  absl::StatusOr<T> await_resume() {
    if (this->settle() != WaitState::kGranted) return this->status;
    if (value_.has_value()) return std::move(*value_);
    Guard lock(channel_->mu);
    channel_->recv_busy = false;
    const WaitState taken = channel_->try_recv_locked(value_, this->status);
    if (taken == WaitState::kRefused) return this->status;
    if (taken != WaitState::kGranted) {
      internal::invariant_violated("oneshot: a woken recv found neither a value nor a close");
    }
    return std::move(*value_);
  }

 private:
  sync_internal::ObservedMutex& wait_mutex() { return channel_->mu; }
  absl::Status precheck() {
    return channel_ == nullptr ? invalid_handle("oneshot recv") : absl::OkStatus();
  }
  WaitState try_complete_locked(WakeList&) {
    if (channel_->recv_busy) {
      this->status = absl::FailedPreconditionError("oneshot recv: another recv is pending");
      return WaitState::kRefused;
    }
    return channel_->try_recv_locked(value_, this->status);
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
  void pass_on_locked(WakeList&) { channel_->recv_busy = false; }  // the value stays

  Channel<T>* channel_;
  std::optional<T> value_;
};

}  // namespace oneshot_internal

// The sending side. Move-only.
template <typename T>
class Sender {
 public:
  Sender() = default;
  Sender(Sender&& other) noexcept : channel_(std::exchange(other.channel_, nullptr)) {}
  Sender& operator=(Sender&& other) noexcept {
    if (this != &other) {
      reset();
      channel_ = std::exchange(other.channel_, nullptr);
    }
    return *this;
  }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  ~Sender() { reset(); }

  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_sender();
  }
  bool valid() const { return channel_ != nullptr; }

  // Reserves the channel's one slot: a permit recorded in `cx`'s region. Never waits. Errors:
  // ChannelClosed (receiver gone), FailedPrecondition (already sent, a permit is live, the
  // region is closing, invalid sender), ResourceExhausted (the region's obligation limit).
  absl::StatusOr<Permit<T>> reserve(Cx& cx, SourceSite site = SourceSite::current()) {
    if (channel_ == nullptr) return oneshot_internal::invalid_handle("oneshot reserve");
    {
      oneshot_internal::Guard lock(channel_->mu);
      if (absl::Status ok = channel_->check_send_locked("oneshot reserve"); !ok.ok()) return ok;
      channel_->reserved = true;
    }
    absl::StatusOr<sync_internal::RecordedObligation> recorded =
        sync_internal::record_permit(cx, "oneshot reserve", "oneshot slot", site);
    if (!recorded.ok()) {
      oneshot_internal::Guard lock(channel_->mu);
      channel_->reserved = false;  // the sender is alive: nothing to tell the receiver
      return recorded.status();
    }
    channel_->ref();  // the permit's reference
    return Permit<T>(channel_, recorded->ledger, recorded->id);
  }

  // Sends without a permit. On failure (ChannelClosed, already sent, a permit is live) the
  // value is given back.
  SendResult<T> send(T value) {
    if (channel_ == nullptr) {
      return SendResult<T>::Failed(oneshot_internal::invalid_handle("oneshot send"),
                                   std::move(value));
    }
    oneshot_internal::WakeList wakes;
    oneshot_internal::Guard lock(channel_->mu);
    if (absl::Status ok = channel_->check_send_locked("oneshot send"); !ok.ok()) {
      return SendResult<T>::Failed(std::move(ok), std::move(value));
    }
    channel_->value.emplace(std::move(value));
    channel_->sent = true;
    channel_->wake_receiver_locked(wakes);
    return SendResult<T>::Sent();
  }

  // True once the receiver is gone.
  bool is_closed() const {
    if (channel_ == nullptr) return true;
    oneshot_internal::Guard lock(channel_->mu);
    return !channel_->receiver_alive;
  }

 private:
  friend std::pair<Sender<T>, Receiver<T>> channel<T>();
  explicit Sender(oneshot_internal::Channel<T>* channel) : channel_(channel) {}
  oneshot_internal::Channel<T>* channel_ = nullptr;
};

// The receiving side. Move-only; dropping it discards a value that arrived.
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

  void reset() {
    if (channel_ != nullptr) std::exchange(channel_, nullptr)->drop_receiver();
  }
  bool valid() const { return channel_ != nullptr; }

  // Waits for the value. Errors: Cancelled (nothing consumed), ChannelClosed (no value can
  // come), FailedPrecondition (already received, another recv pending, invalid receiver).
  [[nodiscard]] oneshot_internal::RecvAwaiter<T> recv(Cx& cx) {
    return oneshot_internal::RecvAwaiter<T>(cx, channel_);
  }

  // The value if it arrived; Unavailable if not yet; the errors of recv otherwise.
  absl::StatusOr<T> try_recv() {
    if (channel_ == nullptr) return oneshot_internal::invalid_handle("oneshot try_recv");
    oneshot_internal::Guard lock(channel_->mu);
    if (channel_->recv_busy) {
      return absl::FailedPreconditionError("oneshot try_recv: a recv is pending");
    }
    std::optional<T> value;
    absl::Status why;
    const oneshot_internal::WaitState taken = channel_->try_recv_locked(value, why);
    if (taken == oneshot_internal::WaitState::kRefused) return why;
    if (taken == oneshot_internal::WaitState::kIdle) {
      return absl::UnavailableError("oneshot: no value yet");
    }
    return std::move(*value);
  }

  // True while a recv is parked on this receiver (for tests and diagnostics).
  bool waiting() const {
    if (channel_ == nullptr) return false;
    oneshot_internal::Guard lock(channel_->mu);
    return channel_->recv_waiter != nullptr;
  }

 private:
  friend std::pair<Sender<T>, Receiver<T>> channel<T>();
  explicit Receiver(oneshot_internal::Channel<T>* channel) : channel_(channel) {}
  oneshot_internal::Channel<T>* channel_ = nullptr;
};

template <typename T>
std::pair<Sender<T>, Receiver<T>> channel() {
  auto* shared = new oneshot_internal::Channel<T>();
  return {Sender<T>(shared), Receiver<T>(shared)};
}

}  // namespace asupersync::oneshot

#endif  // ASUPERSYNC_SYNC_ONESHOT_H_
