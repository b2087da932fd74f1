// Copyright The Asupersync Authors.
//
// sched/internal/ring_queue.h: `RingQueue<T>`, the FIFO container of the scheduler's lanes that
// are not lock-free (a worker's timed and cancel lanes, the global queues).
//
// Why not std::deque: a deque allocates a block each time its back crosses one and frees it
// when its front leaves it, so a lane that keeps cycling calls malloc every few dozen pushes.
// With many freed task frames in glibc's unsorted bin such a malloc can take milliseconds (it
// sorts that bin first): the timers benchmark saw 25 ms stalls of the firing worker inside
// deque::push_back (perf, 2026-11-26). A ring keeps its buffer: it allocates only when it grows
// to a new high-water mark (doubling), so a lane in steady state never calls malloc.
//
// Costs: push_back / pop_front / pop_back / front / back O(1) (amortised for growth);
// `insert_from_back` moves the entries it passes (the cancel lane's rare out-of-order insert).
//
// Thread-safety: none; the owner (one worker, or the holder of a lock) uses it.
// Lifetime: holds copies of T (the scheduler stores raw pointers whose references it manages).
// Cancellation: not applicable.

#ifndef ASUPERSYNC_SCHED_INTERNAL_RING_QUEUE_H_
#define ASUPERSYNC_SCHED_INTERNAL_RING_QUEUE_H_

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace asupersync::sched {

template <typename T>
class RingQueue {
  static_assert(std::is_trivially_copyable_v<T>, "RingQueue holds pointers and small records");

 public:
  RingQueue() = default;
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }
  T& back() { return slots_[(head_ + size_ - 1) & mask_]; }
  const T& back() const { return slots_[(head_ + size_ - 1) & mask_]; }
  // The i-th entry from the front.
  T& operator[](size_t i) { return slots_[(head_ + i) & mask_]; }
  const T& operator[](size_t i) const { return slots_[(head_ + i) & mask_]; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    slots_[(head_ + size_) & mask_] = value;
    ++size_;
  }

  void pop_front() {
    head_ = (head_ + 1) & mask_;
    --size_;
  }

  void pop_back() { --size_; }

  // Appends `value`, then moves it towards the front past every entry e for which
  // `goes_after(e)` holds, stopping at the first that does not (a sorted insert from the back).
  template <typename GoesAfter>
  void insert_from_back(T value, GoesAfter goes_after) {
    push_back(value);
    size_t i = size_ - 1;
    while (i > 0 && goes_after((*this)[i - 1])) {
      (*this)[i] = (*this)[i - 1];
      --i;
    }
    (*this)[i] = value;
  }

  void clear() {
    head_ = 0;
    size_ = 0;
  }

 private:
  void grow() {
    const size_t capacity = capacity_ == 0 ? 64 : capacity_ * 2;
    std::unique_ptr<T[]> slots(new T[capacity]);
    for (size_t i = 0; i < size_; ++i) slots[i] = (*this)[i];
    slots_ = std::move(slots);
    capacity_ = capacity;
    mask_ = capacity - 1;
    head_ = 0;
  }

  std::unique_ptr<T[]> slots_;
  size_t capacity_ = 0;
  size_t mask_ = 0;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_RING_QUEUE_H_
