// Copyright The Asupersync Authors.
//
// sched/internal/timing_wheel.h: the production runtime's timer store (SPEC 6.4).
//
// `TimingWheel` is a hierarchical timing wheel over core's intrusive `TimerNode`
// (core/executor.h): 6 levels of 64 slots. A tick is 2^17 ns = 131.072 us, so level 0 spans
// 64 ticks (8.4 ms), level 1 537 ms, level 2 34.4 s, level 3 36.6 min, level 4 39.1 h and
// level 5 104.2 days (2^53 ns). Deadlines further away than that from the wheel's current
// time, and Time::Infinite(), wait in an overflow list that is re-sorted into the wheel when
// the wheel's time enters their 104-day window.
//
// Precision: the tick is only the bucket size, not the firing precision. `advance(now, ...)`
// hands out exactly the nodes whose deadline is <= now (a node in the current tick whose
// deadline is a few microseconds later stays until a later call), and `next_deadline()` is the
// exact earliest deadline whenever that deadline lies in the wheel's current 8.4 ms level-0
// window. For later deadlines it returns the start of the earliest occupied higher-level slot,
// a lower bound: the runtime wakes there, advances (which cascades that slot one level down)
// and asks again, so a deadline is reached after at most one early wake-up per level. The
// runtime programs the reactor's timerfd (absolute CLOCK_MONOTONIC, ns resolution) with it,
// which gives sub-millisecond timer precision.
//
// Costs: `insert` and `remove` are O(1) (bit arithmetic and an intrusive list link, no
// allocation). `advance` is O(levels) per occupied slot it passes plus O(1) per node handed out
// or cascaded; each node cascades at most once per level. `next_deadline` is O(levels) plus a
// scan of the one level-0 slot it reports (the nodes sharing its 131 us tick); after removals
// from the overflow list it rescans that list once.
//
// Thread-safety: none. A wheel is owned by one thread, or guarded by its owner's lock (the
// runtime guards it); `advance` must not be re-entered from its own callback (aborts).
//
// Lifetime: the wheel does not own nodes. A node stays alive while registered (its owner
// removes it before destroying it; core's awaiters do so in their destructors). `insert`
// aborts on a node that is already registered; `remove` of a node must be made on the wheel it
// was inserted into. Destroying the wheel unregisters every node still in it (without firing).
//
// Cancellation: a cancelled sleep calls `remove`, after which its node is never handed out
// (SPEC 6.4). The callback of `advance` may remove other nodes (including ones that are due in
// the same call: they are then not handed out) and may insert nodes; a node inserted with a
// deadline <= now is handed out by the same call, so a callback that keeps re-inserting due
// nodes never returns.

#ifndef ASUPERSYNC_SCHED_INTERNAL_TIMING_WHEEL_H_
#define ASUPERSYNC_SCHED_INTERNAL_TIMING_WHEEL_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/functional/function_ref.h"
#include "core/executor.h"
#include "core/time.h"

namespace asupersync::sched {

class TimingWheel {
 public:
  // Geometry (see the header comment).
  static constexpr int kTickShift = 17;
  static constexpr Duration kTick = Duration::Nanoseconds(int64_t{1} << kTickShift);
  static constexpr int kSlotBits = 6;
  static constexpr int kSlotsPerLevel = 1 << kSlotBits;
  static constexpr int kLevels = 6;
  // Deadlines less than this far past the current window's start fit in the wheel; later ones
  // wait in the overflow list.
  static constexpr Duration kWheelSpan =
      Duration::Nanoseconds(int64_t{1} << (kTickShift + kSlotBits * kLevels));

  // `now` is the wheel's starting time (the runtime's clock when it starts).
  explicit TimingWheel(Time now = Time::Epoch());
  ~TimingWheel();

  TimingWheel(const TimingWheel&) = delete;
  TimingWheel& operator=(const TimingWheel&) = delete;

  // Registers `node` to be handed out once `advance` reaches node.deadline (a deadline in the
  // past is handed out by the next `advance`). Sets node.registered; aborts if it was already
  // registered.
  void insert(TimerNode& node);

  // Unregisters `node` so that it is never handed out. Returns false (doing nothing) when it is
  // not registered: it was already handed out, removed, or never inserted.
  bool remove(TimerNode& node);

  // Hands every registered node whose deadline is <= `now` to `on_expired`, earliest tick
  // first (in no particular order within one tick), after unlinking it and setting
  // registered = false; the callback may destroy or re-insert the node. Moves the wheel's time
  // to `now` (a `now` earlier than the wheel's time is treated as the wheel's time, but nodes
  // are still compared with `now`). Returns how many nodes were handed out.
  size_t advance(Time now, absl::FunctionRef<void(TimerNode&)> on_expired);

  // A time that is never later than the earliest registered deadline, Time::Infinite() when
  // nothing is registered; exact in the cases described in the header comment. After
  // `advance(now)` it is always later than `now`, so a loop that sleeps until it and advances
  // never spins.
  Time next_deadline() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  // List indices kept in TimerNode::executor_slot: level * 64 + slot for the wheel, then the
  // overflow list and the list of nodes being handed out by `advance`.
  static constexpr uint64_t kWheelLists = kLevels * kSlotsPerLevel;
  static constexpr uint64_t kOverflowList = kWheelLists;
  static constexpr uint64_t kDueList = kWheelLists + 1;
  static constexpr uint64_t kListCount = kWheelLists + 2;

  struct Expiration {
    int level;
    int slot;
    uint64_t start_tick;  // The first tick the slot covers.
  };

  static uint64_t tick_of(Time time);
  static Time start_of(uint64_t tick);

  void place(TimerNode& node);
  void link(uint64_t list, TimerNode& node);
  void unlink(TimerNode& node);
  std::optional<Expiration> next_expiration() const;
  size_t expire_slot(int slot, Time now, absl::FunctionRef<void(TimerNode&)> on_expired);
  void cascade(int level, int slot);
  void set_elapsed(uint64_t tick);
  void refresh_overflow_min() const;

  TimerNode* heads_[kListCount] = {};
  uint64_t occupied_[kLevels] = {};  // Bit s of level l: list l * 64 + s is non-empty.
  uint64_t elapsed_;                 // The wheel's time, in ticks.
  size_t size_ = 0;
  bool advancing_ = false;
  // A lower bound of the overflow list's deadlines; exact unless a node was removed since it
  // was computed (then recomputed lazily by next_deadline).
  mutable Time overflow_min_ = Time::Infinite();
  mutable bool overflow_min_exact_ = true;
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_TIMING_WHEEL_H_
