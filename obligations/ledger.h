// Copyright The Asupersync Authors.
//
// obligations/ledger.h: the per-region record of outstanding obligations (SPEC 5.3, 3.3, 3.7).
//
// What it is for: every obligation token (`Permit<T>` in obligations/permit.h, `Lease` in
// obligations/lease.h) stands for an entry in the ledger of the region it was reserved in. The
// entry is created when the token is handed out (`record`) and removed exactly once when the
// token is consumed (`resolve`): committed (the value was sent), completed (the work it stood for
// is done), aborted (no effect, capacity given back) or leaked (the token was destroyed without
// being consumed; it was aborted on the holder's behalf). A region is quiescent only when its
// ledger has nothing pending (SPEC 3.3), so the ledger is what keeps a region from closing over
// an effect that could still happen or be lost.
//
//   ObligationLedger ledger(region_id, LeakPolicy::kLog, /*max_pending=*/64);
//   absl::StatusOr<ObligationId> id =
//       ledger.record(ObligationKind::kPermit, "mpsc slot", SourceSite::current());
//   if (!id.ok()) return id.status();  // the region is closing, or over its limit
//   ...
//   ledger.resolve(*id, Resolution::kCommitted);
//
// Application code does not call `record`/`resolve` itself: the primitive that hands out
// capacity (a channel, a semaphore) records the entry and wraps it in a token, and the token
// resolves it.
//
// Leak policy (SPEC 5.3): a leak is always aborted (the token returns its capacity and has no
// effect) and always stored in `leaks()`. What else happens depends on the policy:
//   - kLog (production default): the leak report is printed to stderr, once, when it happens.
//     Nothing else; the region's outcome is unaffected.
//   - kPanic (tests and the lab): the ledger prints nothing and does not abort the process. The
//     owning region turns `leaks()` into a Panicked outcome whose message is the leak report, so
//     the test or lab run that owns it fails and names the acquire site.
//
// Drain notification: `set_on_drained(fn)` registers a callback that is called each time
// `pending()` drops to zero while admission is closed. Because a closed ledger admits nothing
// new, that happens at most once after `close_admission()`. It is not called by
// `close_admission()` itself when nothing is pending; `close_admission()` returns true in that
// case instead, so the caller (which already holds whatever it needs) does not get a re-entrant
// call.
//
// Thread-safety: thread-safe; every member may be called concurrently from any thread (an
// internal std::mutex guards the state). The drain callback and the kLog stderr print run with
// that lock released, so the callback may call back into the ledger.
//
// Lifetime: the ledger must outlive every token that refers to it (tokens hold a raw pointer and
// resolve into it when consumed or destroyed). Destroying a ledger with pending entries aborts
// the process with a message naming the first pending obligation (the alternative would be a
// token resolving into freed memory later). `resolve` does not touch the ledger after it has
// invoked the drain callback, so the callback may destroy the ledger.
//
// Cancellation contract: nothing here blocks or waits; no member is a cancellation point.
// `close_admission()` is what the region calls when it leaves Open (SPEC 3.2): from then on
// `record` fails with FailedPrecondition, while already-issued tokens can still be consumed (a
// task being cancelled resolves its obligations while it drains, SPEC 4.3).
//
// Errors (SPEC 13): every misuse with an id or a resolution returns a Status; none is undefined
// behaviour. Internal invariant violations abort with a message naming the invariant.

#ifndef ASUPERSYNC_OBLIGATIONS_LEDGER_H_
#define ASUPERSYNC_OBLIGATIONS_LEDGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/generational_arena.h"
#include "core/id.h"
#include "core/source_site.h"

namespace asupersync {

// What kind of token an obligation is (SPEC 5.1).
enum class ObligationKind : uint8_t {
  kPermit,  // the right to send one value / use one slot (obligations/permit.h)
  kLease,   // a held resource with a renew/release life (obligations/lease.h)
};

// How an obligation was consumed (SPEC 5.1, 5.3).
enum class Resolution : uint8_t {
  kCommitted,  // send/commit: the effect happened
  kCompleted,  // complete: the work it stood for is done
  kAborted,    // abort: no effect, capacity given back
  kLeaked,     // destroyed unconsumed: aborted on the holder's behalf and reported
};

// What a leak does besides being aborted and recorded (SPEC 5.3); see the file comment.
enum class LeakPolicy : uint8_t {
  kPanic,  // the owning region's outcome becomes Panicked with the leak report (tests, lab)
  kLog,    // the leak report is printed to stderr (production default)
};

// "permit", "lease"; "unknown" for a value outside the enum.
std::string_view obligation_kind_name(ObligationKind kind);
// "committed", "completed", "aborted", "leaked"; "unknown" for a value outside the enum.
std::string_view resolution_name(Resolution resolution);
// "panic", "log"; "unknown" for a value outside the enum.
std::string_view leak_policy_name(LeakPolicy policy);

// One obligation as recorded: what it is and where it was acquired.
struct ObligationRecord {
  ObligationId id;
  ObligationKind kind = ObligationKind::kPermit;
  // What the token stands for, e.g. "mpsc slot" or "db connection".
  std::string description;
  // Where the token was acquired (the user's call site, as captured by the primitive).
  SourceSite acquired_at;
};

// A leaked obligation: the record and the region whose ledger held it.
struct LeakReport {
  ObligationRecord record;
  RegionId region;

  // E.g. "obligation leaked: permit 'mpsc slot' acquired at foo.cc:12 in region 3#1 was dropped
  // without send/commit, complete or abort; it was aborted".
  std::string to_string() const;
};

class ObligationLedger {
 public:
  // A ledger for `region`. `max_pending`, if set, is the most entries that may be pending at
  // once (the region's `max_obligations` admission limit, SPEC 3.7).
  ObligationLedger(RegionId region, LeakPolicy policy,
                   std::optional<size_t> max_pending = std::nullopt);
  // Aborts if an entry is still pending (see Lifetime in the file comment).
  ~ObligationLedger();

  ObligationLedger(const ObligationLedger&) = delete;
  ObligationLedger& operator=(const ObligationLedger&) = delete;

  // Records a new pending obligation and returns its id. Errors:
  //   FailedPrecondition "region <id> is closing; it admits no new obligations" after
  //     close_admission() (SPEC 3.2);
  //   ResourceExhausted, naming the limit, when `max_pending` entries are already pending
  //     (SPEC 3.7; the caller is told at once, never blocked);
  //   InvalidArgument for a `kind` outside the enum.
  absl::StatusOr<ObligationId> record(ObligationKind kind, std::string description,
                                      SourceSite site);

  // Resolves the pending obligation `id` (each id exactly once). kLeaked also stores a LeakReport
  // and, under kLog, prints it to stderr. If this was the last pending entry and admission is
  // closed, calls the drain callback (lock released) before returning. Errors:
  //   FailedPrecondition, naming the id, when `id` is not pending here: never recorded (including
  //     the invalid default id), already resolved, or stale (its slot was reused);
  //   InvalidArgument for a `resolution` outside the enum (the entry stays pending).
  absl::Status resolve(ObligationId id, Resolution resolution);

  // Stops admitting new obligations (idempotent). Returns true if nothing is pending, i.e. the
  // ledger is already drained; the drain callback is not called in that case.
  bool close_admission();
  bool admission_closed() const;

  // The number of pending entries. Read without taking the lock (a region asks on every
  // quiescence check); like any count it is a snapshot when other threads record and resolve.
  size_t pending() const { return pending_count_.load(std::memory_order_acquire); }
  // The pending entries in acquisition order (oldest first).
  std::vector<ObligationRecord> pending_records() const;
  // Every leak so far, in the order they happened.
  std::vector<LeakReport> leaks() const;

  RegionId region() const { return region_; }
  LeakPolicy policy() const { return policy_; }
  std::optional<size_t> max_pending() const { return max_pending_; }

  // Replaces the drain callback (see the file comment). An empty function clears it.
  void set_on_drained(std::function<void()> on_drained);

  // Totals by resolution since construction, for tests, oracles and the demo. A leaked
  // obligation counts under leaked() only, although it was aborted.
  uint64_t committed() const;
  uint64_t completed() const;
  uint64_t aborted() const;
  uint64_t leaked() const { return leaked_.load(std::memory_order_acquire); }

 private:
  struct Entry {
    ObligationRecord record;
    uint64_t sequence = 0;  // acquisition order
  };

  const RegionId region_;
  const LeakPolicy policy_;
  const std::optional<size_t> max_pending_;

  mutable std::mutex mu_;
  GenerationalArena<ObligationTag, Entry> entries_;  // guarded by mu_
  std::atomic<size_t> pending_count_{0};             // entries_.size(); written under mu_
  uint64_t next_sequence_ = 0;                       // guarded by mu_
  bool admission_closed_ = false;                    // guarded by mu_
  std::function<void()> on_drained_;                 // guarded by mu_
  std::vector<LeakReport> leaks_;                    // guarded by mu_
  uint64_t committed_ = 0;                           // guarded by mu_
  uint64_t completed_ = 0;                           // guarded by mu_
  uint64_t aborted_ = 0;                             // guarded by mu_
  std::atomic<uint64_t> leaked_{0};                  // written under mu_
};

namespace obligations_internal {

// Prints "asupersync: invariant violated: <invariant>" to stderr and aborts.
[[noreturn]] void invariant_violated(std::string_view invariant);

// What a token does when it is consumed or destroyed: resolves `id` in `ledger` (nothing for an
// untracked token, `ledger == nullptr`). A live token's entry is pending by construction, so a
// failure here is an invariant violation and aborts, naming `token` and the ledger's error.
void resolve_or_die(ObligationLedger* ledger, ObligationId id, Resolution resolution,
                    std::string_view token);

}  // namespace obligations_internal

}  // namespace asupersync

#endif  // ASUPERSYNC_OBLIGATIONS_LEDGER_H_
