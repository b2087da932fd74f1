// Copyright The Asupersync Authors.
//
// sched/internal/parker.h: how an idle worker sleeps and how new work wakes it (SPEC 6.3: idle
// workers park; no lost wake-ups; no busy loop when idle).
//
// `Parker` is a one-bit wake-up token on a Linux futex. `park()` blocks until the token is set
// and consumes it; `unpark()` sets it and wakes the parked thread. An `unpark()` that comes
// before the `park()` makes that `park()` return at once, so a worker that announced it is going
// to sleep and is then woken before it actually sleeps does not miss the wake-up. Tokens do not
// accumulate: several unparks before a park are one wake-up. Spurious futex wake-ups are
// absorbed: `park()` returns only once the token is set. `park_for()` also gives up after a
// timeout (the runtime passes the time to its next timer when the worker owns the timer wheel,
// SPEC 6.4).
//
// `IdleSet` is the shared bookkeeping of which workers are parked and how many are searching
// for work (stealing), after Tokio's idle/searching counters: a thread that makes work
// available calls `notify_one()`, which wakes a parked worker only when no worker is already
// searching and some worker is parked, so a burst of wake-ups costs one futex wake and the
// common case (everybody busy) costs one atomic read-modify-write. The worker protocol that
// makes this lose no wake-up:
//
//   bool searching = false;
//   while (running) {
//     if (T* task = local.pop()) { run(task); continue; }
//     if (!searching) searching = idle.transition_to_searching();  // false: enough searchers
//     T* task = (searching ? steal from the other workers : nullptr), or the injection queue;
//     if (task) {
//       // The last searcher to find work wakes another one, which searches for the rest.
//       if (searching && idle.transition_from_searching()) idle.notify_one();
//       searching = false;
//       run(task);
//       continue;
//     }
//     if (idle.transition_to_parked(me, searching)) {
//       // The last searcher re-checks every queue: work published before its transition is
//       // visible now (the transition synchronises with notify_one), and work published after
//       // it sees this worker parked and wakes a sleeper.
//       if (any queue has work) idle.notify_one();
//     }
//     searching = false;
//     idle.parker(me).park();  // or park_for(time to the next timer)
//     // Woken by notify_one: it made this worker a searcher. Otherwise (timeout, its own
//     // reason), take it out of the sleepers.
//     searching = !idle.remove_sleeper(me);
//   }
//
// Producers publish the work first (push to a deque or the injection queue), then call
// `notify_one()`.
//
// Thread-safety: `Parker::unpark` from any thread; `park`/`park_for` only from the thread that
// owns the parker (one parked thread per parker). `IdleSet::notify_one`, `notify_all`,
// `num_searching`, `num_unparked` and `is_parked` from any thread; the `transition_*` and
// `remove_sleeper` calls by the worker they are about (its index), following the protocol
// above. The parked set is a small vector behind a std::mutex taken only by a worker going to
// sleep or by a notifier that actually wakes one (SPEC 6.6: not on the busy wake path).
//
// Lifetime: an IdleSet owns its workers' Parkers; it must outlive every worker thread and every
// notifier (the runtime joins its workers before destroying it).
//
// Cancellation: not involved directly. A cancel request that makes a task runnable is work like
// any other: the runtime schedules it (SPEC 6.2) and calls notify_one(), and a parked worker
// wakes for it, so cancellation is never delayed by sleeping workers.

#ifndef ASUPERSYNC_SCHED_INTERNAL_PARKER_H_
#define ASUPERSYNC_SCHED_INTERNAL_PARKER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/time.h"

namespace asupersync::sched {

class Parker {
 public:
  Parker() = default;
  Parker(const Parker&) = delete;
  Parker& operator=(const Parker&) = delete;

  // Owner thread. Blocks until the token is set, then consumes it.
  void park();

  // Owner thread. Like park(), but gives up after `timeout` (measured on CLOCK_MONOTONIC).
  // Returns true when the token was consumed, false on timeout. A zero or negative timeout
  // only consumes a token that is already set; Duration::Infinite() is park().
  bool park_for(Duration timeout);

  // Any thread. Sets the token and wakes the owner if it is parked.
  void unpark();

 private:
  // EMPTY -> PARKED (the owner is about to wait) -> NOTIFIED (unparked) -> EMPTY (consumed).
  static constexpr int32_t kParked = -1;
  static constexpr int32_t kEmpty = 0;
  static constexpr int32_t kNotified = 1;

  std::atomic<int32_t> state_{kEmpty};
};

class IdleSet {
 public:
  // `num_workers` > 0; every worker starts unparked and not searching.
  explicit IdleSet(size_t num_workers);
  IdleSet(const IdleSet&) = delete;
  IdleSet& operator=(const IdleSet&) = delete;

  size_t num_workers() const { return num_workers_; }
  Parker& parker(size_t worker);

  // Any thread, after publishing work. Wakes one parked worker (which then counts as
  // searching) unless a worker is already searching or none is parked. Returns the worker
  // woken, if any.
  std::optional<size_t> notify_one();

  // Any thread. Wakes every parked worker (shutdown); like those woken by notify_one, they
  // count as searching until they call transition_from_searching or transition_to_parked.
  void notify_all();

  // Worker protocol (see the header comment).
  // Becomes a searcher unless at least half of the workers already are. Returns whether it did.
  bool transition_to_searching();
  // Stops searching. Returns true when this was the last searcher.
  bool transition_from_searching();
  // Records `worker` as parked (and no longer searching if `searching`). Returns true when it
  // was the last searcher: the caller must re-check every queue before parking.
  bool transition_to_parked(size_t worker, bool searching);
  // Takes `worker` out of the parked set if it is still there (it woke without being notified:
  // timeout, its own timer or I/O, shutdown). Returns whether it was there.
  bool remove_sleeper(size_t worker);

  bool is_parked(size_t worker) const;
  size_t num_searching() const;
  // Workers neither parked nor notified-and-not-yet-running.
  size_t num_unparked() const;

 private:
  // state_: num_unparked in the high 32 bits, num_searching in the low 32 bits.
  static constexpr uint64_t kOneSearching = 1;
  static constexpr uint64_t kOneUnparked = uint64_t{1} << 32;
  static size_t searching_of(uint64_t state) { return state & 0xffffffffu; }
  static size_t unparked_of(uint64_t state) { return state >> 32; }

  void check_worker(size_t worker, const char* caller) const;

  const size_t num_workers_;
  const std::unique_ptr<Parker[]> parkers_;
  std::atomic<uint64_t> state_;
  mutable std::mutex mutex_;
  std::vector<size_t> sleepers_;  // Guarded by mutex_; capacity num_workers_.
  std::vector<bool> parked_;      // Guarded by mutex_.
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_PARKER_H_
