// Copyright The Asupersync Authors.

#include "sched/internal/timing_wheel.h"

#include <algorithm>
#include <bit>

#include "sched/internal/invariant.h"

namespace asupersync::sched {

namespace {

constexpr int kWheelBits = TimingWheel::kSlotBits * TimingWheel::kLevels;  // 36

}  // namespace

TimingWheel::TimingWheel(Time now) : elapsed_(tick_of(now)) {}

TimingWheel::~TimingWheel() {
  for (TimerNode* head : heads_) {
    for (TimerNode* node = head; node != nullptr;) {
      TimerNode* next = node->executor_next;
      node->executor_prev = nullptr;
      node->executor_next = nullptr;
      node->registered = false;
      node = next;
    }
  }
}

uint64_t TimingWheel::tick_of(Time time) {
  const int64_t nanos = time.nanoseconds();
  return nanos <= 0 ? 0 : static_cast<uint64_t>(nanos) >> kTickShift;
}

Time TimingWheel::start_of(uint64_t tick) {
  // Ticks are below 2^46, so this never overflows.
  return Time::FromNanoseconds(static_cast<int64_t>(tick << kTickShift));
}

void TimingWheel::insert(TimerNode& node) {
  if (node.registered) {
    invariant_violated(
        "TimingWheel::insert takes an unregistered TimerNode (a node is in at most one timer "
        "list; remove it first)");
  }
  node.registered = true;
  ++size_;
  place(node);
}

bool TimingWheel::remove(TimerNode& node) {
  if (!node.registered) return false;
  unlink(node);
  node.registered = false;
  --size_;
  return true;
}

void TimingWheel::place(TimerNode& node) {
  // A deadline in the past counts as due now: it goes to the current tick's slot.
  const uint64_t when = std::max(tick_of(node.deadline), elapsed_);
  const uint64_t differing = when ^ elapsed_;
  if ((differing >> kWheelBits) != 0) {
    link(kOverflowList, node);
    overflow_min_ = std::min(overflow_min_, node.deadline);
    return;
  }
  // The level is the 6-bit group of the highest bit in which `when` and the wheel's time
  // differ: lower groups are finer than the distance, higher ones are equal.
  const int level = (63 - std::countl_zero(differing | (kSlotsPerLevel - 1))) / kSlotBits;
  const int slot = static_cast<int>((when >> (level * kSlotBits)) & (kSlotsPerLevel - 1));
  link(static_cast<uint64_t>(level) * kSlotsPerLevel + slot, node);
}

void TimingWheel::link(uint64_t list, TimerNode& node) {
  node.executor_slot = list;
  node.executor_prev = nullptr;
  node.executor_next = heads_[list];
  if (heads_[list] != nullptr) heads_[list]->executor_prev = &node;
  heads_[list] = &node;
  if (list < kWheelLists) {
    occupied_[list / kSlotsPerLevel] |= uint64_t{1} << (list % kSlotsPerLevel);
  }
}

void TimingWheel::unlink(TimerNode& node) {
  const uint64_t list = node.executor_slot;
  if (list >= kListCount) {
    invariant_violated("a registered TimerNode's executor_slot names one of the wheel's lists");
  }
  if (node.executor_prev != nullptr) {
    node.executor_prev->executor_next = node.executor_next;
  } else {
    if (heads_[list] != &node) {
      invariant_violated(
          "a registered TimerNode is linked in the wheel it is removed from (was it inserted "
          "into another wheel, or its links overwritten?)");
    }
    heads_[list] = node.executor_next;
  }
  if (node.executor_next != nullptr) node.executor_next->executor_prev = node.executor_prev;
  node.executor_prev = nullptr;
  node.executor_next = nullptr;
  if (list < kWheelLists && heads_[list] == nullptr) {
    occupied_[list / kSlotsPerLevel] &= ~(uint64_t{1} << (list % kSlotsPerLevel));
  } else if (list == kOverflowList) {
    overflow_min_exact_ = false;
  }
}

std::optional<TimingWheel::Expiration> TimingWheel::next_expiration() const {
  std::optional<Expiration> best;
  for (int level = 0; level < kLevels; ++level) {
    if (occupied_[level] == 0) continue;
    const int shift = level * kSlotBits;
    const int position = static_cast<int>((elapsed_ >> shift) & (kSlotsPerLevel - 1));
    // The first occupied slot at or after the wheel's position on this level.
    const int distance = std::countr_zero(std::rotr(occupied_[level], position));
    const int slot = (position + distance) & (kSlotsPerLevel - 1);
    const uint64_t level_span = uint64_t{1} << (shift + kSlotBits);
    uint64_t start = (elapsed_ & ~(level_span - 1)) + (static_cast<uint64_t>(slot) << shift);
    if (slot < position) start += level_span;  // Next rotation (not expected, but exact).
    // On a tie, the higher level wins: cascade before expiring, so the cascaded nodes are
    // handed out together with the level-0 ones of the same tick.
    if (!best || start <= best->start_tick) best = Expiration{level, slot, start};
  }
  return best;
}

size_t TimingWheel::expire_slot(int slot, Time now,
                                absl::FunctionRef<void(TimerNode&)> on_expired) {
  // First move the due nodes to their own list (no callback runs during the scan, so the scan
  // sees a stable list), then hand them out one at a time: a callback may remove a node that is
  // still waiting in the due list.
  TimerNode* node = heads_[slot];
  while (node != nullptr) {
    TimerNode* next = node->executor_next;
    if (node->deadline <= now) {
      unlink(*node);
      link(kDueList, *node);
    }
    node = next;
  }
  size_t handed_out = 0;
  while (TimerNode* due = heads_[kDueList]) {
    unlink(*due);
    due->registered = false;
    --size_;
    ++handed_out;
    on_expired(*due);
  }
  return handed_out;
}

void TimingWheel::cascade(int level, int slot) {
  const uint64_t list = static_cast<uint64_t>(level) * kSlotsPerLevel + slot;
  TimerNode* node = heads_[list];
  heads_[list] = nullptr;
  occupied_[level] &= ~(uint64_t{1} << slot);
  // The wheel's time is the slot's start, so each node lands on a lower level.
  while (node != nullptr) {
    TimerNode* next = node->executor_next;
    place(*node);
    node = next;
  }
}

void TimingWheel::set_elapsed(uint64_t tick) {
  if (tick < elapsed_) invariant_violated("TimingWheel time only moves forward");
  const bool window_changed = (tick >> kWheelBits) != (elapsed_ >> kWheelBits);
  elapsed_ = tick;
  if (!window_changed || heads_[kOverflowList] == nullptr) return;
  // Re-sort the overflow list: the nodes of the new window enter the wheel.
  TimerNode* node = heads_[kOverflowList];
  heads_[kOverflowList] = nullptr;
  overflow_min_ = Time::Infinite();
  overflow_min_exact_ = true;
  while (node != nullptr) {
    TimerNode* next = node->executor_next;
    place(*node);
    node = next;
  }
}

void TimingWheel::refresh_overflow_min() const {
  if (overflow_min_exact_) return;
  overflow_min_ = Time::Infinite();
  for (const TimerNode* node = heads_[kOverflowList]; node != nullptr; node = node->executor_next) {
    overflow_min_ = std::min(overflow_min_, node->deadline);
  }
  overflow_min_exact_ = true;
}

size_t TimingWheel::advance(Time now, absl::FunctionRef<void(TimerNode&)> on_expired) {
  if (advancing_) invariant_violated("TimingWheel::advance is not re-entered from its callback");
  advancing_ = true;
  const uint64_t now_tick = std::max(tick_of(now), elapsed_);
  size_t handed_out = 0;
  while (true) {
    const std::optional<Expiration> expiration = next_expiration();
    if (expiration && expiration->start_tick <= now_tick) {
      set_elapsed(std::max(elapsed_, expiration->start_tick));
      if (expiration->level > 0) {
        cascade(expiration->level, expiration->slot);
        continue;
      }
      const size_t expired = expire_slot(expiration->slot, now, on_expired);
      handed_out += expired;
      // Nothing due in the earliest slot: it is now's own tick and the rest of it is later
      // than `now` (an earlier tick's nodes are all due). Nothing else can be due.
      if (expired == 0) break;
      continue;
    }
    // Nothing in the wheel is due. If `now` is past the wheel's 104-day window, the wheel is
    // empty and only the overflow list can hold due nodes: jump to the earliest of them (or to
    // `now`), which re-sorts the list into the wheel.
    const uint64_t window_end = ((elapsed_ >> kWheelBits) + 1) << kWheelBits;
    if (heads_[kOverflowList] != nullptr && now_tick >= window_end) {
      refresh_overflow_min();
      set_elapsed(std::min(now_tick, std::max(window_end, tick_of(overflow_min_))));
      continue;
    }
    break;
  }
  set_elapsed(now_tick);
  advancing_ = false;
  return handed_out;
}

Time TimingWheel::next_deadline() const {
  if (const std::optional<Expiration> expiration = next_expiration()) {
    if (expiration->level > 0) return start_of(expiration->start_tick);
    Time earliest = Time::Infinite();
    for (const TimerNode* node = heads_[expiration->slot]; node != nullptr;
         node = node->executor_next) {
      earliest = std::min(earliest, node->deadline);
    }
    return earliest;
  }
  if (heads_[kOverflowList] == nullptr) return Time::Infinite();
  refresh_overflow_min();
  return overflow_min_;
}

}  // namespace asupersync::sched
