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
// Thread-safety: thread-safe; every member may be called concurrently from any thread. An
// internal spin lock guards the entry table; it is held for a few dozen instructions per
// `record`/`resolve` (no allocation, formatting or call out, except to store a leak report) and
// a waiter yields the CPU when it has to wait long; counted obligations (`record_counted`) take
// it only on their slow paths. `pending()`, `admission_closed()` and the totals other than
// `completed()` are read without it. The drain callback and the kLog stderr print run with the lock
// released, so the callback may call back into the ledger.
//
// Cost (why the description is an `ObligationDescription`): recording and resolving happen on
// every permit a channel or semaphore hands out, so neither allocates in the common case. A
// description given as a string literal is kept as a pointer (its text lives as long as the
// program); `ObligationDescription("semaphore permits").with_count(n)` keeps a literal and a
// number and spells "semaphore permits (n)" only when a record is read back (`pending_records`,
// `leaks`, an error). A `std::string` description is owned (moved in, no copy).
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
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// What an obligation stands for, as given to `record`: a string literal (kept as a pointer, no
// copy), a literal and a count (spelled "<literal> (<count>)" when read back), or an owned
// string. Cheap to move; see "Cost" in the file comment.
//
//   ledger.record(kind, "mpsc slot", site);                                   // literal
//   ledger.record(kind, ObligationDescription("permits").with_count(n), site);  // literal + n
//   ledger.record(kind, absl::StrCat("row ", key), site);                     // owned string
//
// The literal constructor is `consteval`: only a constant expression (a string literal) binds to
// it, so a pointer to a temporary buffer cannot be kept by mistake. Pass `std::string(p)` for a
// run-time `const char*`.
class ObligationDescription {
 public:
  // A string literal (or any constant expression naming a string with static storage).
  consteval ObligationDescription(const char* literal)  // NOLINT: implicit on purpose
      : literal_(literal) {}
  // An owned, run-time text.
  ObligationDescription(std::string text);  // NOLINT: implicit on purpose

  ObligationDescription(ObligationDescription&& other) noexcept
      : literal_(other.literal_),
        count_(other.count_),
        has_count_(other.has_count_),
        owned_(std::exchange(other.owned_, nullptr)) {}
  ObligationDescription& operator=(ObligationDescription&& other) noexcept;
  ObligationDescription(const ObligationDescription&) = delete;
  ObligationDescription& operator=(const ObligationDescription&) = delete;
  ~ObligationDescription() { delete owned_; }

  // This description followed by " (<count>)", e.g. "semaphore permits (2)". On a literal the
  // text is built only when read back; on an owned text it is appended now.
  ObligationDescription with_count(uint64_t count) && {
    if (literal_ != nullptr && !has_count_) {  // the common case, kept inline
      count_ = count;
      has_count_ = true;
      return std::move(*this);
    }
    return std::move(*this).with_count_slow(count);
  }

  // The text, e.g. "mpsc slot" or "semaphore permits (2)".
  std::string to_string() const;

 private:
  friend class ObligationLedger;
  ObligationDescription() = default;  // the empty text (a free ledger slot)
  ObligationDescription with_count_slow(uint64_t count) &&;

  // At most one of literal_ and owned_ is set. literal_: the text is the literal, plus
  // " (count_)" when has_count_. owned_: the text (a pointer, not a std::string member, so that
  // the literal constructor can be consteval: an SSO string is not a constant expression).
  const char* literal_ = nullptr;
  uint64_t count_ = 0;
  bool has_count_ = false;
  std::string* owned_ = nullptr;
};

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
  // The same with a drain callback from the start (as set_on_drained, without its lock: a
  // region registers one for every ledger it owns).
  ObligationLedger(RegionId region, LeakPolicy policy, std::optional<size_t> max_pending,
                   std::function<void()> on_drained);
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
  // `description` is kept as given (see ObligationDescription); it is spelled out only when the
  // record is read back or reported.
  [[gnu::always_inline]] absl::StatusOr<ObligationId> record(ObligationKind kind,
                                                             ObligationDescription description,
                                                             SourceSite site) {
    // Inline, the common case: a valid kind, admission open and under the limit, a free slot
    // to reuse. Everything else (errors, growing the table) is record_general.
    if (kind == ObligationKind::kPermit || kind == ObligationKind::kLease) {
      std::lock_guard<SpinLock> lock(mu_);
      const size_t pending = pending_count_.load(std::memory_order_relaxed);
      const uint32_t index = free_head_;
      if (index != kNoSlot && !admission_closed_.load(std::memory_order_relaxed) &&
          (!max_pending_.has_value() ||
           pending + counted_pending(counted_.load(std::memory_order_relaxed)) < *max_pending_)) {
        Slot& slot = slots_[index];
        free_head_ = slot.next_free;
        ++slot.generation;  // cannot wrap: a slot at the maximum generation is retired
        fill_locked(slot, kind, description, site);
        pending_count_.store(pending + 1, std::memory_order_release);
        return ObligationId(index, slot.generation);
      }
    }
    return record_general(kind, std::move(description), site);
  }

  // Resolves the pending obligation `id` (each id exactly once). kLeaked also stores a LeakReport
  // and, under kLog, prints it to stderr. If this was the last pending entry and admission is
  // closed, calls the drain callback (lock released) before returning. Errors:
  //   FailedPrecondition, naming the id, when `id` is not pending here: never recorded (including
  //     the invalid default id), already resolved, or stale (its slot was reused);
  //   InvalidArgument for a `resolution` outside the enum (the entry stays pending).
  [[gnu::always_inline]] absl::Status resolve(ObligationId id, Resolution resolution) {
    // Inline, the common case: a live entry whose description owns no text, resolved other
    // than as a leak, and not the last entry of a closing ledger (nothing to free, store,
    // print or call). Everything else is resolve_general.
    if (resolution == Resolution::kCommitted || resolution == Resolution::kCompleted ||
        resolution == Resolution::kAborted) {
      std::lock_guard<SpinLock> lock(mu_);
      const uint32_t index = id.index();
      if (id.is_valid() && index < slots_.size()) {
        Slot& slot = slots_[index];
        const size_t pending = pending_count_.load(std::memory_order_relaxed) - 1;
        if (slot.live && slot.generation == id.generation() && slot.description.owned_ == nullptr &&
            slot.generation != ~uint32_t{0} &&
            (pending != 0 || counted_pending(counted_.load(std::memory_order_relaxed)) != 0 ||
             !admission_closed_.load(std::memory_order_relaxed))) {
          count_resolution_locked(resolution);
          slot.live = false;
          slot.next_free = free_head_;
          free_head_ = index;
          pending_count_.store(pending, std::memory_order_release);
          return absl::OkStatus();
        }
      }
    }
    return resolve_general(id, resolution);
  }

  // Counted obligations: recorded as a count, without an entry of their own. For tokens a
  // primitive hands out by the thousand (semaphore permits): the token keeps its description
  // and acquire site itself and hands them over only if it leaks (`leak_counted`), so recording
  // and resolving are one compare-and-swap each, no lock. A counted obligation is pending like
  // an entry (pending(), the admission limit, close and drain, the destructor's check) but is
  // not listed by pending_records(). Same errors as record(); resolve_counted() fails with
  // FailedPrecondition when no counted obligation is pending, and takes no kLeaked.
  [[gnu::always_inline]] absl::Status record_counted(ObligationKind kind,
                                                     const ObligationDescription& description,
                                                     SourceSite site) {
    if ((kind == ObligationKind::kPermit || kind == ObligationKind::kLease) &&
        try_record_counted()) {
      return absl::OkStatus();
    }
    return record_counted_general(kind, description, site);
  }
  // The inline common case of record_counted (admission open, no limit; a limit is checked
  // under the lock, so that it is exact): true if it recorded one. False: nothing recorded,
  // call record_counted for the answer. For a caller that builds its description only then.
  [[gnu::always_inline]] bool try_record_counted() {
    if (max_pending_.has_value()) return false;
    uint64_t word = counted_.load(std::memory_order_relaxed);
    while ((word & kCountedClosed) == 0 && counted_pending(word) != kCountedMaxPending) {
      if (counted_.compare_exchange_weak(word, word + kCountedOne, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  [[gnu::always_inline]] absl::Status resolve_counted(Resolution resolution) {
    // Inline, the common case: completed, not the last of a closing ledger (that one may
    // drain: under the lock), room in the completion count.
    if (resolution == Resolution::kCompleted) {
      uint64_t word = counted_.load(std::memory_order_relaxed);
      while (counted_pending(word) > ((word & kCountedClosed) != 0 ? 1u : 0u) &&
             word < kCountedFoldAt) {
        if (counted_.compare_exchange_weak(word, word - kCountedOne + kCountedCompletion,
                                           std::memory_order_acq_rel, std::memory_order_relaxed)) {
          return absl::OkStatus();
        }
      }
    }
    return resolve_counted_general(resolution, nullptr);
  }
  // Resolves a counted obligation as leaked: stores (and under kLog prints) a LeakReport built
  // from the token's `kind`, `description` and acquire `site`. Errors as resolve_counted().
  absl::Status leak_counted(ObligationKind kind, const ObligationDescription& description,
                            SourceSite site);

  // Stops admitting new obligations (idempotent). Returns true if nothing is pending, i.e. the
  // ledger is already drained; the drain callback is not called in that case.
  bool close_admission();
  // Read without taking the lock (a primitive asks before every wait).
  bool admission_closed() const { return admission_closed_.load(std::memory_order_acquire); }

  // The number of pending entries. Read without taking the lock (a region asks on every
  // quiescence check); like any count it is a snapshot when other threads record and resolve.
  size_t pending() const {
    return pending_count_.load(std::memory_order_acquire) +
           counted_pending(counted_.load(std::memory_order_acquire));
  }
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
  uint64_t committed() const { return committed_.load(std::memory_order_acquire); }
  uint64_t completed() const;  // takes the lock (adds the counted completions)
  uint64_t aborted() const { return aborted_.load(std::memory_order_acquire); }
  uint64_t leaked() const { return leaked_.load(std::memory_order_acquire); }

 private:
  // A test-and-test-and-set lock: uncontended it costs one exchange and one store, against a
  // std::mutex's two library calls. Spins briefly, then yields (the holder may be preempted on a
  // busy machine). Critical sections under it are short: they never print or call out, and
  // allocate only to store a leak report or to grow the table.
  class SpinLock {
   public:
    void lock() noexcept {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      lock_slow();
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

   private:
    void lock_slow() noexcept;
    std::atomic<bool> locked_{false};
  };

  // One slot of the entry table. Slots are reused most-recently-freed first, and an id carries
  // the slot's generation, so a stale id (its slot since reused) is told apart from a live one.
  // The ids handed out are the same as GenerationalArena's (index, generation from 1).
  struct Slot {
    uint32_t generation = 0;  // of the current occupant, or of the last one while free
    bool live = false;
    ObligationKind kind = ObligationKind::kPermit;
    uint32_t next_free = 0;  // while free: the next free slot's index, or kNoSlot
    uint64_t sequence = 0;   // acquisition order
    SourceSite site;
    ObligationDescription description;
  };
  static constexpr uint32_t kNoSlot = ~uint32_t{0};

  // counted_: bit 0 admission closed (set with admission_closed_, under mu_), bits 1-31 the
  // counted obligations pending, bits 32-63 counted completions not yet added to completed_
  // (folded in under mu_ before they can overflow). Once closed, the count only falls, and its
  // last step (to 0) is taken under mu_, so exactly one resolve sees the ledger drain.
  static constexpr uint64_t kCountedClosed = 1;
  static constexpr uint64_t kCountedOne = 2;
  static constexpr uint64_t kCountedMaxPending = (uint64_t{1} << 31) - 1;
  static constexpr uint64_t kCountedCompletion = uint64_t{1} << 32;
  static constexpr uint64_t kCountedFoldAt = uint64_t{1} << 63;
  static constexpr uint64_t counted_pending(uint64_t word) {
    return (word >> 1) & kCountedMaxPending;
  }

  // Adds one to the total that `resolution` counts under (kLeaked: leaked_). Lock held: the
  // only writer, so a load and a store (the totals are read without the lock).
  void count_resolution_locked(Resolution resolution) {
    std::atomic<uint64_t>& total = resolution == Resolution::kCommitted   ? committed_
                                   : resolution == Resolution::kCompleted ? completed_
                                   : resolution == Resolution::kAborted   ? aborted_
                                                                          : leaked_;
    total.store(total.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  ObligationRecord record_of(uint32_t index) const;  // lock held (or no concurrency)
  // Appends a slot (generation 1) and returns its index; lock held.
  uint32_t add_slot_locked();
  // Makes a free slot (its generation already bumped) the live entry; lock held. A free slot
  // owns no text (resolve takes it out), so the description is a plain transfer.
  void fill_locked(Slot& slot, ObligationKind kind, ObligationDescription& description,
                   SourceSite site) {
    slot.live = true;
    slot.kind = kind;
    slot.sequence = next_sequence_++;
    slot.site = site;
    slot.description.literal_ = description.literal_;
    slot.description.count_ = description.count_;
    slot.description.has_count_ = description.has_count_;
    slot.description.owned_ = std::exchange(description.owned_, nullptr);
  }
  // record() and resolve() for every case their inline fast paths do not take (errors, a
  // closing or full ledger, growing the table; leaks, owned descriptions, the last entry of a
  // closing ledger).
  absl::StatusOr<ObligationId> record_general(ObligationKind kind,
                                              ObligationDescription description, SourceSite site);
  absl::Status resolve_general(ObligationId id, Resolution resolution);
  absl::Status record_counted_general(ObligationKind kind, const ObligationDescription& description,
                                      SourceSite site);
  // `leaked`: the token's record when resolution is kLeaked, else nullptr.
  absl::Status resolve_counted_general(Resolution resolution, const ObligationRecord* leaked);
  // Stores a leak report, lock held; returns the kLog message.
  std::optional<std::string> store_report_locked(ObligationRecord record);
  absl::Status reject(ObligationId id, Resolution resolution) const;
  absl::Status admission_error(ObligationKind kind, const ObligationDescription& description,
                               SourceSite site, size_t pending) const;

  const RegionId region_;
  const LeakPolicy policy_;
  const std::optional<size_t> max_pending_;

  mutable SpinLock mu_;
  std::vector<Slot> slots_;                    // guarded by mu_
  uint32_t free_head_ = kNoSlot;               // guarded by mu_
  std::atomic<size_t> pending_count_{0};       // live slots; written under mu_
  std::atomic<uint64_t> counted_{0};           // see kCountedClosed
  uint64_t next_sequence_ = 0;                 // guarded by mu_
  std::atomic<bool> admission_closed_{false};  // written under mu_
  std::function<void()> on_drained_;           // guarded by mu_
  std::vector<LeakReport> leaks_;              // guarded by mu_
  std::atomic<uint64_t> committed_{0};         // written under mu_
  std::atomic<uint64_t> completed_{0};         // written under mu_
  std::atomic<uint64_t> aborted_{0};           // written under mu_
  std::atomic<uint64_t> leaked_{0};            // written under mu_
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
