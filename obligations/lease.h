// Copyright The Asupersync Authors.
//
// obligations/lease.h: `Lease`, a linear token for a held resource with a renew/release life
// (SPEC 5.1-5.3).
//
// What it is for: a resource that is lent rather than spent (a pooled connection, a lock held on
// a task's behalf, a time-limited reservation) is handed out as a `Lease`. The lease carries an
// expiry that its holder may push later (`renew`), and must be consumed exactly once:
//
//   Lease lease = co_await pool.acquire(cx);             // may wait; a cancellation point
//   RETURN_IF_ERROR(lease.renew(now + Duration::Seconds(30)));
//   ... use the resource ...
//   std::move(lease).complete();                          // work done, the resource goes back
//   // or: std::move(lease).abort();                      // work abandoned, the resource goes back
//
//   | path            | holder is told            | resource     | ledger resolution |
//   |-----------------|---------------------------|--------------|-------------------|
//   | complete        | on_release(true)          | given back   | kCompleted        |
//   | abort           | on_release(false)         | given back   | kAborted          |
//   | destroyed live  | on_release(false)         | given back   | kLeaked + report  |
//
// (Leases have no send/commit path; that one belongs to `Permit<T>`, obligations/permit.h.)
//
// The lender implements `LeaseHolder`; `on_release(completed)` takes the resource back and learns
// whether the work finished (e.g. a pool discards a connection whose request was abandoned
// half-way). The lender records the obligation in its region's ledger (obligations/ledger.h) and
// builds the lease from the holder, the ledger, the id and the first expiry. A lease with a null
// ledger is untracked.
//
// Expiry: the lease stores `expires_at` and keeps it monotone (`renew` never moves it earlier);
// it does not read a clock and does not expire by itself. Enforcing the expiry (a timer that
// cancels the borrower, a pool that reclaims) is the lender's business; it reads `expires_at()`.
//
// Compile-time checks (SPEC 5.2): move-only, `[[nodiscard]]`, rvalue-qualified consuming members,
// Clang consumed-state annotations (obligations/typestate.h); see obligations/permit.h. At run
// time, `complete`/`abort` on an empty lease abort the process naming the misuse, and `renew` on
// an empty lease returns FailedPrecondition.
//
// Leaks (SPEC 5.3): destroying a live lease (or assigning over one) gives the resource back with
// on_release(false) and records a LeakReport naming the acquire site in the ledger.
//
// Thread-safety: a single-owner value; it may be moved to and consumed on another thread, but one
// lease object must not be used by two threads at once. `on_release` runs on the consuming
// thread.
//
// Lifetime: the holder and the ledger must outlive the lease.
//
// Cancellation contract: nothing here waits; no member is a cancellation point. A cancelled task
// holding a lease completes or aborts it while it drains (SPEC 4.3).

#ifndef ASUPERSYNC_OBLIGATIONS_LEASE_H_
#define ASUPERSYNC_OBLIGATIONS_LEASE_H_

#include "absl/status/status.h"
#include "core/id.h"
#include "core/time.h"
#include "obligations/ledger.h"
#include "obligations/typestate.h"

namespace asupersync {

// Implemented by whatever lends the resource. Not owned by the leases: it outlives them.
class LeaseHolder {
 public:
  // The resource is back. `completed` is true on the complete path, false on abort and leak.
  virtual void on_release(bool completed) noexcept = 0;

 protected:
  ~LeaseHolder() = default;
};

// A held resource that must be given back exactly once (SPEC 5.1). See the file comment.
class [[nodiscard]] ASUPERSYNC_CONSUMABLE(unconsumed) Lease {
 public:
  // The empty lease (valid() is false). Destroying it does nothing.
  ASUPERSYNC_RETURN_TYPESTATE(consumed) Lease() noexcept {}
  // A live lease for the obligation `id` recorded in `ledger` (null: untracked), lent by `holder`
  // (must not be null: aborts), expiring at `expires_at`.
  ASUPERSYNC_RETURN_TYPESTATE(unconsumed)
  Lease(LeaseHolder* holder, ObligationLedger* ledger, ObligationId id, Time expires_at);

  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // Moving leaves `other` empty (its expiry becomes Time::Epoch()).
  Lease(Lease&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept;
  // Moving over a live lease leaks it first (as destroying it would).
  Lease& operator=(Lease&& other ASUPERSYNC_RETURN_TYPESTATE(consumed)) noexcept;
  // Destroying a live lease is a leak (see the file comment).
  ~Lease();

  // Moves the expiry to `new_expiry`. Errors: FailedPrecondition on an empty (moved-from or
  // consumed) lease; InvalidArgument if `new_expiry` is earlier than the current expiry (a renewal
  // never shortens a lease; renewing to the same instant is a no-op).
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  absl::Status renew(Time new_expiry);

  // When the lease expires, as last renewed; Time::Epoch() for an empty lease.
  Time expires_at() const { return expires_at_; }

  // The complete path: the work is done; the holder gets on_release(true), the obligation is
  // resolved as kCompleted. Aborts on an empty lease.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void complete() &&;

  // The abort path: the work is abandoned; the holder gets on_release(false), the obligation is
  // resolved as kAborted. Aborts on an empty lease.
  ASUPERSYNC_CALLABLE_WHEN("unconsumed")
  ASUPERSYNC_SET_TYPESTATE(consumed)
  void abort() &&;

  // True while the lease is live (not moved from, not consumed).
  ASUPERSYNC_TEST_TYPESTATE(unconsumed)
  bool valid() const { return holder_ != nullptr; }
  // The ledger entry this lease stands for; the invalid id once empty.
  ObligationId id() const { return id_; }
  // True if the lease resolves an entry in a ledger (false for untracked and empty leases).
  bool tracked() const { return ledger_ != nullptr; }

 private:
  // Empties the lease, tells the holder, resolves the entry.
  void finish(bool completed, Resolution resolution) noexcept;

  LeaseHolder* holder_ = nullptr;
  ObligationLedger* ledger_ = nullptr;
  ObligationId id_;
  Time expires_at_;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_OBLIGATIONS_LEASE_H_
