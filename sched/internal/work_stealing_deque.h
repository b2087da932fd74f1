// Copyright The Asupersync Authors.
//
// sched/internal/work_stealing_deque.h: the per-worker ready queue of the production scheduler
// (SPEC 6.3) and the global injection queue behind it.
//
// `WorkStealingDeque<T>` is a bounded lock-free Chase–Lev deque of `T*`. Its owner (one worker
// thread) pushes and pops at the bottom, LIFO, so the task it just woke runs next while its
// data is still in cache; any other thread steals from the top, FIFO, so thieves take the
// oldest work. The algorithm and its memory orderings follow Lê, Pop, Cohen and Zappa Nardelli,
// "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), without the
// resizing: the capacity is a power of two fixed at construction and `push` returns false when
// the deque is full, so that the caller can spill to the `InjectionQueue`. The paper's
// store-load fences are expressed as seq_cst operations on `top`/`bottom` instead of
// `atomic_thread_fence` (same guarantees on the C++ model, the same instructions on x86, and
// visible to ThreadSanitizer, which does not model fences); every store of `bottom` is at least
// a release so that a thief that reads it also sees the item it is about to take.
//
// `steal_batch(dest, max)` moves up to half of the victim's items into the thief's own deque so
// that one successful search feeds the thief for a while. It is a run of single-item steals (one
// CAS on `top` each, re-reading `bottom` in between), not one CAS over a range: the owner pops
// without a CAS whenever it sees more than one item, so a range claimed by a single CAS could
// overlap items the owner pops meanwhile. Each step is the paper's steal, so the batch is as
// correct as a steal; it stops early when it loses a race.
//
// `InjectionQueue<T>` is the global MPMC FIFO for tasks scheduled from outside a worker and for
// overflow from a full deque: a mutex around a std::deque, plus an atomic length so that idle
// workers can check `empty()` without taking the lock.
//
// Thread-safety:
//   WorkStealingDeque: `push`, `pop` and `steal_batch` (which pushes into `dest`) only from the
//   owner thread of the deque they push into or pop from; `try_steal`, `steal`, `size`, `empty`
//   and `capacity` from any thread. `size`/`empty` are snapshots, exact only when quiescent.
//   InjectionQueue: every method from any thread.
//
// Lifetime: both hold raw pointers and own nothing; whatever a pointer names must stay alive
// until it has been taken out. Destroying a non-empty deque or queue drops the pointers (the
// runtime drains them first). Neither is copyable or movable (concurrent users hold references).
//
// Cancellation: these queues know nothing about cancellation. A task is queued at most once
// (the runtime deduplicates wakes, SPEC 6.3); moving a queued task to the cancel lane (SPEC 6.2)
// is done by the runtime's lane bookkeeping, not by removing it from here, so a cancelled task
// may still be popped or stolen from a ready queue and must be re-routed by whoever takes it.

#ifndef ASUPERSYNC_SCHED_INTERNAL_WORK_STEALING_DEQUE_H_
#define ASUPERSYNC_SCHED_INTERNAL_WORK_STEALING_DEQUE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>

#include "sched/internal/invariant.h"

namespace asupersync::sched {

// Keeps the owner's and the thieves' hot indices on separate cache lines.
inline constexpr size_t kCacheLineSize = 64;

// What a single steal attempt found.
enum class StealStatus : uint8_t {
  kSuccess,  // `item` is now the thief's.
  kEmpty,    // The deque looked empty.
  kRetry,    // Lost a race with the owner or another thief; the deque may still hold items.
};

template <typename T>
struct StealResult {
  StealStatus status = StealStatus::kEmpty;
  T* item = nullptr;  // Non-null exactly when status == kSuccess.
};

template <typename T>
class WorkStealingDeque {
 public:
  // `capacity` must be a power of two, at least 2 (aborts otherwise: it is a configuration
  // constant of the runtime, not an input).
  explicit WorkStealingDeque(size_t capacity)
      : mask_(static_cast<int64_t>(checked_capacity(capacity)) - 1),
        buffer_(new std::atomic<T*>[capacity]) {
    for (size_t i = 0; i < capacity; ++i) buffer_[i].store(nullptr, std::memory_order_relaxed);
  }

  WorkStealingDeque(const WorkStealingDeque&) = delete;
  WorkStealingDeque& operator=(const WorkStealingDeque&) = delete;

  size_t capacity() const { return static_cast<size_t>(mask_) + 1; }

  // Owner only. Pushes `item` (never null: aborts) at the bottom. Returns false, leaving the
  // deque unchanged, when it holds `capacity()` items.
  bool push(T* item) {
    if (item == nullptr) invariant_violated("WorkStealingDeque items are non-null");
    const int64_t bottom = bottom_.load(std::memory_order_relaxed);
    // Acquire: a thief's read of the slot we may overwrite happens before our write.
    const int64_t top = top_.load(std::memory_order_acquire);
    if (bottom - top > mask_) return false;
    buffer_[bottom & mask_].store(item, std::memory_order_relaxed);
    // Release: a thief that sees the new bottom sees the item (the paper's release fence).
    bottom_.store(bottom + 1, std::memory_order_release);
    return true;
  }

  // Owner only. Takes the most recently pushed item, or returns nullptr when empty.
  T* pop() {
    const int64_t bottom = bottom_.load(std::memory_order_relaxed) - 1;
    // seq_cst store then seq_cst load: the paper's full fence between publishing the claim on
    // `bottom` and reading `top` (a thief reads them in the other order).
    bottom_.store(bottom, std::memory_order_seq_cst);
    int64_t top = top_.load(std::memory_order_seq_cst);
    T* item = nullptr;
    if (top <= bottom) {
      item = buffer_[bottom & mask_].load(std::memory_order_relaxed);
      if (top == bottom) {
        // The last item: race the thieves for it on `top`.
        if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
          item = nullptr;
        }
        bottom_.store(bottom + 1, std::memory_order_release);
      }
    } else {
      bottom_.store(bottom + 1, std::memory_order_release);
    }
    return item;
  }

  // Any thread. One attempt to take the oldest item.
  StealResult<T> try_steal() {
    int64_t top = top_.load(std::memory_order_seq_cst);
    const int64_t bottom = bottom_.load(std::memory_order_seq_cst);
    if (top >= bottom) return {StealStatus::kEmpty, nullptr};
    T* item = buffer_[top & mask_].load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      return {StealStatus::kRetry, nullptr};
    }
    return {StealStatus::kSuccess, item};
  }

  // Any thread. Takes the oldest item, retrying lost races, or returns nullptr once the deque
  // looks empty. Lock-free: a retry means another thread took an item.
  T* steal() {
    while (true) {
      StealResult<T> result = try_steal();
      if (result.status != StealStatus::kRetry) return result.item;
    }
  }

  // Called by the owner of `dest` (a different deque). Moves up to half of this deque's items
  // (rounded up), at most `max` and at most the free space of `dest`, oldest first, into
  // `dest`, keeping their order. Returns how many moved; 0 when this deque looked empty or the
  // first steal lost a race.
  size_t steal_batch(WorkStealingDeque& dest, size_t max) {
    if (&dest == this) invariant_violated("WorkStealingDeque::steal_batch moves to another deque");
    int64_t top = top_.load(std::memory_order_seq_cst);
    int64_t bottom = bottom_.load(std::memory_order_seq_cst);
    const int64_t available = bottom - top;
    if (available <= 0 || max == 0) return 0;
    const size_t wanted =
        std::min({static_cast<size_t>((available + 1) / 2), max, dest.free_slots_for_owner()});
    size_t moved = 0;
    while (moved < wanted) {
      if (moved > 0) {
        // Our last CAS read `top` in the seq_cst order; now re-read `bottom` after it.
        bottom = bottom_.load(std::memory_order_seq_cst);
        if (top >= bottom) break;
      }
      T* item = buffer_[top & mask_].load(std::memory_order_relaxed);
      if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
        break;
      }
      if (!dest.push(item)) {
        invariant_violated(
            "WorkStealingDeque::steal_batch is called by dest's owner (dest had room for the "
            "batch when it started)");
      }
      ++top;
      ++moved;
    }
    return moved;
  }

  // Any thread: a snapshot of the number of items.
  size_t size() const {
    const int64_t bottom = bottom_.load(std::memory_order_acquire);
    const int64_t top = top_.load(std::memory_order_acquire);
    return bottom > top ? static_cast<size_t>(bottom - top) : 0;
  }
  bool empty() const { return size() == 0; }

 private:
  static size_t checked_capacity(size_t capacity) {
    if (capacity < 2 || (capacity & (capacity - 1)) != 0 || capacity > (size_t{1} << 40)) {
      invariant_violated("WorkStealingDeque capacity is a power of two in [2, 2^40]");
    }
    return capacity;
  }

  // Owner only: free slots, never overestimated (a stale `top` only makes it smaller).
  size_t free_slots_for_owner() const {
    const int64_t bottom = bottom_.load(std::memory_order_relaxed);
    const int64_t top = top_.load(std::memory_order_acquire);
    const int64_t used = std::max<int64_t>(bottom - top, 0);
    return static_cast<size_t>(mask_ + 1 - std::min(used, mask_ + 1));
  }

  // Padding rather than alignas: it keeps `top_` (written by thieves) and `bottom_` (written by
  // the owner) a full cache line apart from each other and from the read-mostly fields however
  // the deque itself is aligned (an over-aligned type is not honoured everywhere, e.g. by
  // AddressSanitizer's fake stack frames).
  [[maybe_unused]] char padding_before_top_[kCacheLineSize] = {};
  std::atomic<int64_t> top_{0};
  [[maybe_unused]] char padding_after_top_[kCacheLineSize] = {};
  std::atomic<int64_t> bottom_{0};
  [[maybe_unused]] char padding_after_bottom_[kCacheLineSize] = {};
  const int64_t mask_;
  const std::unique_ptr<std::atomic<T*>[]> buffer_;
};

template <typename T>
class InjectionQueue {
 public:
  InjectionQueue() = default;
  InjectionQueue(const InjectionQueue&) = delete;
  InjectionQueue& operator=(const InjectionQueue&) = delete;

  // Appends `item` (never null: aborts).
  void push(T* item) {
    if (item == nullptr) invariant_violated("InjectionQueue items are non-null");
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_back(item);
    length_.store(items_.size(), std::memory_order_seq_cst);
  }

  // Appends every item of `items`, in order, under one lock acquisition (a worker spilling
  // part of its full deque).
  void push_batch(std::span<T* const> items) {
    for (T* item : items) {
      if (item == nullptr) invariant_violated("InjectionQueue items are non-null");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    items_.insert(items_.end(), items.begin(), items.end());
    length_.store(items_.size(), std::memory_order_seq_cst);
  }

  // Takes the oldest item, or returns nullptr when empty (without locking when it looks empty).
  T* pop() {
    if (empty()) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    if (items_.empty()) return nullptr;
    T* item = items_.front();
    items_.pop_front();
    length_.store(items_.size(), std::memory_order_seq_cst);
    return item;
  }

  // Called by the owner of `dest`. Moves up to `max` of the oldest items (and no more than
  // `dest` has room for) into `dest`, in order. Returns how many moved.
  size_t pop_batch(WorkStealingDeque<T>& dest, size_t max) {
    if (empty() || max == 0) return 0;
    std::lock_guard<std::mutex> lock(mutex_);
    size_t moved = 0;
    while (moved < max && !items_.empty() && dest.push(items_.front())) {
      items_.pop_front();
      ++moved;
    }
    length_.store(items_.size(), std::memory_order_seq_cst);
    return moved;
  }

  // Lock-free snapshots. seq_cst, so that a worker that announces it is going to sleep and then
  // checks `empty()` cannot miss an item whose producer then checks for sleepers (parker.h).
  bool empty() const { return length_.load(std::memory_order_seq_cst) == 0; }
  size_t size() const { return length_.load(std::memory_order_seq_cst); }

 private:
  mutable std::mutex mutex_;
  std::deque<T*> items_;
  std::atomic<size_t> length_{0};
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_WORK_STEALING_DEQUE_H_
