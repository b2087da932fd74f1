// Minimal awaitables for bench/compare.cc (there is no //sync on this branch yet):
//
//   BoundedChannel<T>  a bounded multi-producer multi-consumer FIFO channel (ping_pong uses
//                      capacity 1, like the peers' channels) with send / recv / try_send / close;
//   ParkForever        a wait that only cancellation ends (Tokio's `pending()`): the targets
//                      of cancel_storm, cancel_latency and cancel_group park on it.
//
// Both follow docs/wait_protocol.md: begin_wait → register under the channel's lock → park;
// a completer grants under the lock and wakes with a WakeToken after releasing it; a
// cancellation claims the wait and calls interrupt(), which deregisters; the destructor
// deregisters too (frames may be destroyed while parked).
//
// Thread-safety: a channel may be used from tasks on any worker. Lifetime: the channel must
// outlive every awaiter made from it; an awaiter must be awaited at once (it keeps a pointer
// to the Cx it was made with).
// Cancellation contract: send and recv are cancellation points only when they have to wait
// (an operation that can complete at once completes). A cancelled wait returns kCancelled and
// consumes nothing: a cancelled send did not enqueue its value, a cancelled recv took nothing.
// A grant that raced in before the cancellation wins (the send happened / the value is
// returned). A recv frame destroyed while parked after a grant loses that one value.

#ifndef ASUPERSYNC_BENCH_COMPARE_CHANNEL_H_
#define ASUPERSYNC_BENCH_COMPARE_CHANNEL_H_

#include <coroutine>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/internal/spin_lock.h"
#include "core/internal/task_record.h"

namespace asupersync::bench {

// Parks the task until it is cancelled; yields the kCancelled status of the delivered request.
class ParkForever final : public internal::WaitNode {
 public:
  explicit ParkForever(Cx& cx) : cx_(&cx) {
    what = "park forever";
    scope = &cx.region();
  }
  ParkForever(const ParkForever&) = delete;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle) {
    if (absl::Status early = cx_->poll_cancel(); !early.ok()) {
      early_ = std::move(early);
      return false;
    }
    internal::begin_wait(cx_->task_record(), *this);
    // Nothing to register: no completer exists, only a cancellation ends this wait.
    return internal::park(*this, handle);
  }
  absl::Status await_resume() {
    if (!early_.ok()) return early_;
    return cx_->poll_cancel();
  }
  void interrupt() override {}

 private:
  Cx* cx_;
  absl::Status early_;
};

template <typename T>
class BoundedChannel {
  struct Waiter;

 public:
  explicit BoundedChannel(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {
    ring_.resize(capacity_);
  }
  BoundedChannel(const BoundedChannel&) = delete;
  BoundedChannel& operator=(const BoundedChannel&) = delete;

  class SendAwaiter;
  class RecvAwaiter;

  // co_await → absl::Status: Ok when `value` was enqueued (or handed to a receiver),
  // kCancelled, or FailedPrecondition once the channel is closed.
  SendAwaiter send(Cx& cx, T value) { return SendAwaiter(this, &cx, std::move(value)); }
  // co_await → absl::StatusOr<T>: the oldest value, kCancelled, or FailedPrecondition once the
  // channel is closed and drained.
  RecvAwaiter recv(Cx& cx) { return RecvAwaiter(this, &cx); }

  // Enqueues without waiting; false when full or closed.
  bool try_send(T value) {
    internal::WakeToken token;
    bool sent;
    {
      std::lock_guard<internal::SpinLock> guard(lock_);
      sent = offer_locked(value, token);
    }
    std::move(token).wake(Lane::kReady);
    return sent;
  }

  // Wakes every waiter: senders fail, receivers drain what is buffered and then fail.
  void close() {
    std::vector<internal::WakeToken> tokens;
    {
      std::lock_guard<internal::SpinLock> guard(lock_);
      closed_ = true;
      for (List* list : {&senders_, &receivers_}) {
        while (Waiter* waiter = list->pop_front()) {
          waiter->granted = true;  // granted "closed": the awaiter re-checks
          waiter->closed = true;
          tokens.emplace_back(*waiter);
        }
      }
    }
    for (internal::WakeToken& token : tokens) std::move(token).wake(Lane::kReady);
  }

 private:
  // A parked send or recv. `value` is the sender's value, or the receiver's granted one.
  struct Waiter : internal::WaitNode {
    std::optional<T> value;
    Waiter* prev = nullptr;
    Waiter* next = nullptr;
    bool linked = false;
    bool granted = false;
    bool closed = false;

   protected:
    ~Waiter() = default;
  };

  struct List {
    Waiter* head = nullptr;
    Waiter* tail = nullptr;
    void push_back(Waiter* waiter) {
      waiter->prev = tail;
      waiter->next = nullptr;
      (tail != nullptr ? tail->next : head) = waiter;
      tail = waiter;
      waiter->linked = true;
    }
    void remove(Waiter* waiter) {
      if (!waiter->linked) return;
      (waiter->prev != nullptr ? waiter->prev->next : head) = waiter->next;
      (waiter->next != nullptr ? waiter->next->prev : tail) = waiter->prev;
      waiter->prev = waiter->next = nullptr;
      waiter->linked = false;
    }
    Waiter* pop_front() {
      Waiter* waiter = head;
      if (waiter != nullptr) remove(waiter);
      return waiter;
    }
  };

  // Under lock_: completes a send of `value` at once if possible (a parked receiver gets it
  // directly, else the ring takes it); `token` then wakes that receiver.
  bool offer_locked(T& value, internal::WakeToken& token) {
    if (closed_) return false;
    if (Waiter* receiver = receivers_.pop_front()) {  // then the ring is empty
      receiver->value.emplace(std::move(value));
      receiver->granted = true;
      token = internal::WakeToken(*receiver);
      return true;
    }
    if (size_ == capacity_) return false;
    ring_[(head_ + size_) % capacity_].emplace(std::move(value));
    ++size_;
    return true;
  }

  // Under lock_: takes the oldest value at once if possible; a parked sender's value then
  // moves into the freed slot and `token` wakes that sender.
  std::optional<T> take_locked(internal::WakeToken& token) {
    if (size_ == 0) return std::nullopt;
    std::optional<T> value = std::move(ring_[head_]);
    ring_[head_].reset();
    head_ = (head_ + 1) % capacity_;
    --size_;
    if (Waiter* sender = senders_.pop_front()) {
      ring_[(head_ + size_) % capacity_] = std::move(sender->value);
      ++size_;
      sender->granted = true;
      token = internal::WakeToken(*sender);
    }
    return value;
  }

  const size_t capacity_;
  internal::SpinLock lock_;
  // Guarded by lock_.
  std::vector<std::optional<T>> ring_;
  size_t head_ = 0;
  size_t size_ = 0;
  List senders_;
  List receivers_;
  bool closed_ = false;

 public:
  class SendAwaiter final : public Waiter {
   public:
    SendAwaiter(BoundedChannel* channel, Cx* cx, T value) : channel_(channel), cx_(cx) {
      this->what = "channel send";
      this->scope = &cx->region();
      this->value.emplace(std::move(value));
    }
    SendAwaiter(const SendAwaiter&) = delete;
    ~SendAwaiter() { deregister(); }

    // Fast path: completes without suspending when a receiver waits or the ring has room.
    bool await_ready() {
      internal::WakeToken token;
      {
        std::lock_guard<internal::SpinLock> guard(channel_->lock_);
        const bool sent = channel_->offer_locked(*this->value, token);
        done_ = sent || channel_->closed_;
        if (done_) result_ = sent ? absl::OkStatus() : closed_status();
      }
      std::move(token).wake(Lane::kReady);
      return done_;
    }
    bool await_suspend(std::coroutine_handle<> handle) {
      if (absl::Status early = cx_->poll_cancel(); !early.ok()) {
        result_ = std::move(early);
        return false;
      }
      internal::begin_wait(cx_->task_record(), *this);
      internal::WakeToken token;
      {
        std::lock_guard<internal::SpinLock> guard(channel_->lock_);
        const bool sent = channel_->offer_locked(*this->value, token);
        done_ = sent || channel_->closed_;
        if (done_) {
          result_ = sent ? absl::OkStatus() : closed_status();
        } else {
          channel_->senders_.push_back(this);
          registered_ = true;
        }
      }
      if (done_) {
        std::move(token).wake(Lane::kReady);
        return false;
      }
      if (internal::park(*this, handle)) return true;
      // Not parked: granted in between, or a cancel is deliverable.
      deregister();
      return false;
    }
    absl::Status await_resume() {
      if (done_) return result_;
      if (this->granted && !this->closed) return absl::OkStatus();
      if (this->closed) return closed_status();
      return cx_->poll_cancel();  // cancelled: nothing was sent
    }
    void interrupt() override { deregister(); }

   private:
    static absl::Status closed_status() {
      return absl::FailedPreconditionError("send on a closed channel");
    }
    // Only a registered awaiter can still be queued (the flag is the awaiter's own).
    void deregister() {
      if (!registered_) return;
      std::lock_guard<internal::SpinLock> guard(channel_->lock_);
      channel_->senders_.remove(this);
    }

    BoundedChannel* channel_;
    Cx* cx_;
    bool done_ = false;
    bool registered_ = false;
    absl::Status result_;
  };

  class RecvAwaiter final : public Waiter {
   public:
    RecvAwaiter(BoundedChannel* channel, Cx* cx) : channel_(channel), cx_(cx) {
      this->what = "channel recv";
      this->scope = &cx->region();
    }
    RecvAwaiter(const RecvAwaiter&) = delete;
    ~RecvAwaiter() { deregister(); }

    // Fast path: takes a buffered value (or sees the channel closed) without suspending.
    bool await_ready() {
      internal::WakeToken token;
      {
        std::lock_guard<internal::SpinLock> guard(channel_->lock_);
        taken_ = channel_->take_locked(token);
        done_ = taken_.has_value() || channel_->closed_;
      }
      std::move(token).wake(Lane::kReady);
      return done_;
    }
    bool await_suspend(std::coroutine_handle<> handle) {
      if (absl::Status early = cx_->poll_cancel(); !early.ok()) {
        early_ = std::move(early);
        return false;
      }
      internal::begin_wait(cx_->task_record(), *this);
      internal::WakeToken token;
      {
        std::lock_guard<internal::SpinLock> guard(channel_->lock_);
        taken_ = channel_->take_locked(token);
        done_ = taken_.has_value() || channel_->closed_;
        if (!done_) {
          channel_->receivers_.push_back(this);
          registered_ = true;
        }
      }
      if (done_) {
        std::move(token).wake(Lane::kReady);
        return false;
      }
      if (internal::park(*this, handle)) return true;
      // Not parked: granted in between, or a cancel is deliverable.
      deregister();
      return false;
    }
    absl::StatusOr<T> await_resume() {
      if (!early_.ok()) return early_;
      if (taken_.has_value()) return std::move(*taken_);
      if (this->value.has_value()) return std::move(*this->value);  // granted (wins a cancel)
      if (this->closed || done_) {
        return absl::FailedPreconditionError("recv on a closed, drained channel");
      }
      return cx_->poll_cancel();  // cancelled: nothing was taken
    }
    void interrupt() override { deregister(); }

   private:
    void deregister() {
      if (!registered_) return;
      std::lock_guard<internal::SpinLock> guard(channel_->lock_);
      channel_->receivers_.remove(this);
    }

    BoundedChannel* channel_;
    Cx* cx_;
    bool done_ = false;
    bool registered_ = false;
    std::optional<T> taken_;
    absl::Status early_;
  };
};

}  // namespace asupersync::bench

#endif  // ASUPERSYNC_BENCH_COMPARE_CHANNEL_H_
