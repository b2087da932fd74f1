// Copyright The Asupersync Authors.
//
// obligations/permit.h: `Permit<T>`, the linear right to send one value or use one slot
// (SPEC 5.1-5.4, 8.1).
//
// What it is for: a primitive that hands out capacity (a bounded channel's slot, a semaphore's
// unit) reserves it first and hands the caller a `Permit<T>`. Holding the permit means the
// capacity is set aside: sending through it cannot fail for lack of room and cannot block. The
// permit must then be consumed exactly once:
//
//   Permit<Request> permit = co_await tx.reserve(cx);    // may wait; a cancellation point
//   std::move(permit).send(Request{...});                // commit: the value is delivered
//   // or: std::move(permit).abort();                    // no effect, the slot is given back
//
//   | path            | effect            | capacity              | ledger resolution |
//   |-----------------|-------------------|-----------------------|-------------------|
//   | send / commit   | happens, now      | used by the value     | kCommitted        |
//   | abort           | none              | given back            | kAborted          |
//   | destroyed live  | none              | given back            | kLeaked + report  |
//
// (Permits have no "complete" path; that one belongs to `Lease`, obligations/lease.h.)
//
// The primitive implements `PermitSink<T>`: `commit(value)` performs the effect, `release()`
// gives the reserved capacity back. It records the obligation in its region's ledger
// (obligations/ledger.h) and builds the permit from the sink, the ledger and the id; the permit
// resolves that entry when it is consumed. A permit with a null ledger is untracked (for
// primitives used outside any region, and for tests).
//
// Compile-time checks (SPEC 5.2): permits are move-only and `[[nodiscard]]`; consuming members
// are rvalue-qualified, so `permit.send(v)` on an lvalue and any consuming call on a const permit
// do not compile, and copying does not compile (obligations/no_compile_test.sh proves each).
// Under Clang, `-Wconsumed` also flags a consuming call on a local permit that was already
// consumed or moved from (obligations/typestate.h). What the compiler cannot see (a consumed
// permit reached through a reference) is caught at run time: a consuming call on an empty permit
// aborts with "Permit::send on an empty (moved-from or consumed) permit" (or ::commit, ::abort).
//
// Leaks (SPEC 5.3): destroying a live permit (including assigning over one, and destroying a
// coroutine frame that holds one, SPEC 4.5) is a leak: the capacity is released, nothing is
// sent, and the ledger records a LeakReport naming the acquire site; the region's leak policy
// decides what follows. Code that means to give a permit up, e.g. while draining after a cancel,
// calls `abort()` explicitly.
//
// Thread-safety: a permit is a single-owner value. It may be moved to and consumed on another
// thread, but one permit object must not be used by two threads at once. Consuming it calls the
// sink and the ledger on the consuming thread; sinks must be thread-safe if permits may be
// consumed off the primitive's thread.
//
// Lifetime: the sink and the ledger must outlive the permit (the primitive and the region that
// handed it out guarantee this; a region does not close while the permit's entry is pending).
//
// Cancellation contract: nothing here waits; no member is a cancellation point. Reserving (in
// the primitive) is where cancellation is observed; once a permit is held, a cancelled task
// still decides what to do with it (send or abort) while it drains, SPEC 4.3.
//
// Exceptions: if `PermitSink::commit` throws (e.g. T's move constructor threw), the effect did
// not happen: the permit releases the capacity, resolves its entry as kAborted, and rethrows.

#ifndef ASUPERSYNC_OBLIGATIONS_PERMIT_H_
#define ASUPERSYNC_OBLIGATIONS_PERMIT_H_

#include <string_view>
#include <utility>

#include "core/id.h"
#include "obligations/ledger.h"
#include "obligations/typestate.h"

namespace asupersync {

// Implemented by the primitive that hands out `Permit<T>`s. Thread-safety as required by its
// users (see the file comment). Not owned by the permits: the sink outlives them.
template <typename T>
class PermitSink {
 public:
  // The commit path: performs the effect with `value`, synchronously. Must not fail for lack of
  // capacity: the capacity was reserved when the permit was handed out.
  virtual void commit(T value) = 0;
  // The abort and leak paths: gives the reserved capacity back; no effect.
  virtual void release() noexcept = 0;

 protected:
  ~PermitSink() = default;
};

// For permits that carry no value (a semaphore unit, a slot used in place).
template <>
class PermitSink<void> {
 public:
  virtual void commit() = 0;
  virtual void release() noexcept = 0;

 protected:
  ~PermitSink() = default;
};

namespace obligations_internal {

// The state shared by `Permit<T>` and `Permit<void>`: which sink, ledger and entry it stands for.
// Empty when `sink_` is null. Destroying or assigning over a live core leaks it.
template <typename T>
class PermitCore {
 public:
  PermitCore() = default;
  PermitCore(PermitSink<T>* sink, ObligationLedger* ledger, ObligationId id)
      : sink_(sink), ledger_(ledger), id_(id) {
    if (sink_ == nullptr) {
      invariant_violated(
          "a Permit is built from a non-null PermitSink (a default-constructed Permit is the "
          "empty one)");
    }
  }
  PermitCore(const PermitCore&) = delete;
  PermitCore& operator=(const PermitCore&) = delete;
  PermitCore(PermitCore&& other) noexcept
      : sink_(std::exchange(other.sink_, nullptr)),
        ledger_(std::exchange(other.ledger_, nullptr)),
        id_(std::exchange(other.id_, ObligationId())) {}
  PermitCore& operator=(PermitCore&& other) noexcept {
    if (this != &other) {
      leak();
      sink_ = std::exchange(other.sink_, nullptr);
      ledger_ = std::exchange(other.ledger_, nullptr);
      id_ = std::exchange(other.id_, ObligationId());
    }
    return *this;
  }
  ~PermitCore() { leak(); }

  bool valid() const { return sink_ != nullptr; }
  ObligationId id() const { return id_; }
  bool tracked() const { return ledger_ != nullptr; }

  // The commit path. Empties the core first (so a re-entrant sink sees an empty permit), then
  // commits and resolves kCommitted; if commit throws, releases, resolves kAborted and rethrows.
  template <typename... Value>
  void commit(std::string_view misuse, Value&&... value) {
    Taken taken = take(misuse);
    try {
      taken.sink->commit(std::forward<Value>(value)...);
    } catch (...) {
      taken.sink->release();
      resolve_or_die(taken.ledger, taken.id, Resolution::kAborted, "Permit");
      throw;
    }
    resolve_or_die(taken.ledger, taken.id, Resolution::kCommitted, "Permit");
  }

  // The abort path: releases the capacity and resolves kAborted.
  void abort(std::string_view misuse) {
    Taken taken = take(misuse);
    taken.sink->release();
    resolve_or_die(taken.ledger, taken.id, Resolution::kAborted, "Permit");
  }

 private:
  struct Taken {
    PermitSink<T>* sink;
    ObligationLedger* ledger;
    ObligationId id;
  };

  Taken take(std::string_view misuse) {
    if (sink_ == nullptr) invariant_violated(misuse);
    return Taken{std::exchange(sink_, nullptr), std::exchange(ledger_, nullptr),
                 std::exchange(id_, ObligationId())};
  }

  // The leak path (destroyed or assigned over while live): releases, resolves kLeaked.
  void leak() noexcept {
    if (sink_ == nullptr) return;
    Taken taken = take("PermitCore::leak on an empty permit");
    taken.sink->release();
    resolve_or_die(taken.ledger, taken.id, Resolution::kLeaked, "Permit");
  }

  PermitSink<T>* sink_ = nullptr;
  ObligationLedger* ledger_ = nullptr;
  ObligationId id_;
};

}  // namespace obligations_internal

// The right to send exactly one `T` (SPEC 5.1). See the file comment.
template <typename T>
class [[nodiscard]] ASUPERSYNC_CONSUMABLE(unconsumed) Permit {
 public:
  using value_type = T;

  // The empty permit (valid() is false). Destroying it does nothing.
  ASUPERSYNC_RETURN_TYPESTATE(consumed) Permit() noexcept {}
  // A live permit for the obligation `id` recorded in `ledger` (null: untracked), committing
  // into `sink` (must not be null: aborts). Built by the primitive that reserved the capacity.
  ASUPERSYNC_RETURN_TYPESTATE(unconsumed)
  Permit(PermitSink<T>* sink, ObligationLedger* ledger, ObligationId id)
      : core_(sink, ledger, id) {}

  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  // Moving leaves `other` empty.
  Permit(Permit&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept = default;
  // Moving over a live permit leaks it first (as destroying it would).
  Permit& operator=(Permit&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept = default;
  // Destroying a live permit is a leak (see the file comment).
  ~Permit() = default;

  // The commit path: delivers `value` through the sink and resolves the obligation as
  // kCommitted. Never fails for lack of capacity. Aborts on an empty permit.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void send(T value) && {
    core_.commit("Permit::send on an empty (moved-from or consumed) permit", std::move(value));
  }

  // The abort path: gives the capacity back, sends nothing, resolves kAborted. Aborts on an
  // empty permit.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void abort() && { core_.abort("Permit::abort on an empty (moved-from or consumed) permit"); }

  // True while the permit is live (not moved from, not consumed).
  ASUPERSYNC_TEST_TYPESTATE(unconsumed)
  bool valid() const { return core_.valid(); }
  // The ledger entry this permit stands for; the invalid id once empty.
  ObligationId id() const { return core_.id(); }
  // True if the permit resolves an entry in a ledger (false for untracked and empty permits).
  bool tracked() const { return core_.tracked(); }

 private:
  obligations_internal::PermitCore<T> core_;
};

// A permit that carries no value: `std::move(permit).commit()` performs the effect.
template <>
class [[nodiscard]] ASUPERSYNC_CONSUMABLE(unconsumed) Permit<void> {
 public:
  using value_type = void;

  ASUPERSYNC_RETURN_TYPESTATE(consumed) Permit() noexcept {}
  ASUPERSYNC_RETURN_TYPESTATE(unconsumed)
  Permit(PermitSink<void>* sink, ObligationLedger* ledger, ObligationId id)
      : core_(sink, ledger, id) {}

  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  Permit(Permit&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept = default;
  Permit& operator=(Permit&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept = default;
  ~Permit() = default;

  // The commit path: performs the effect through the sink, resolves kCommitted. Aborts on an
  // empty permit.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void commit() && { core_.commit("Permit::commit on an empty (moved-from or consumed) permit"); }

  // The abort path: gives the capacity back, resolves kAborted. Aborts on an empty permit.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void abort() && { core_.abort("Permit::abort on an empty (moved-from or consumed) permit"); }

  ASUPERSYNC_TEST_TYPESTATE(unconsumed)
  bool valid() const { return core_.valid(); }
  ObligationId id() const { return core_.id(); }
  bool tracked() const { return core_.tracked(); }

 private:
  obligations_internal::PermitCore<void> core_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_OBLIGATIONS_PERMIT_H_
