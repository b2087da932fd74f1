// Recycling allocator for coroutine frames and task records.
//
// Spawning allocates one block for the task record and its root coroutine frame; it and the
// frames of awaited tasks come from per-thread free lists bucketed by 16-byte size class, so a
// spawn/complete cycle in steady state touches no global allocator. Blocks larger than
// kMaxRecycledSize go to operator new. A block freed on a different thread joins that thread's list
// (like a thread cache); each list is capped. A full list is handed whole to a small global
// transfer store (a few lists per size class, under a mutex taken once per kMaxCachedPerClass
// blocks), from which a thread whose list is empty takes a list before it calls operator new:
// when one thread spawns and another completes the tasks (a spawn loop that never yields), the
// blocks flow back to the spawner instead of through glibc's free, whose arena lock the
// spawner's mallocs hold (that starved the completing worker for ~100 ms per 100,000 spawns in
// the timers benchmark). Only past the transfer store's bound do blocks go to operator delete.
//
// Under AddressSanitizer recycling is disabled so that a use-after-free of a frame is caught.
//
// Thread-safety: per-thread lists, and the transfer store under its mutex. Internal to //core.

#ifndef ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_
#define ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <utility>

namespace asupersync::internal {

inline constexpr std::size_t kFrameSizeClass = 16;
inline constexpr std::size_t kMaxRecycledSize = 2048;
inline constexpr std::size_t kMaxCachedPerClass = 8192;

// Frames of awaited tasks, and the blocks of task records (see below): same size classes.
void* allocate_block(std::size_t size);
void deallocate_block(void* block, std::size_t size) noexcept;

// A spawned task is one allocation: its record and its root coroutine frame share a block (the
// record first, the frame at the 16-aligned offset after it). The callable lives in the record,
// so it is at its final address before it is called to create the frame; the frame is allocated
// inside that call, where only this thread-local reservation can steer it: the frame of the
// coroutine `callable(cx)` takes `area` if it fits in `capacity` bytes (once), and freeing
// `borrowed` is a no-op (its memory goes with the record's block).
struct FrameReservationState {
  void* area;
  const void* callable;
  void* borrowed;
  uint32_t capacity;
  uint32_t requested;  // size of the frame that matched, whether or not it fitted
};
inline thread_local constinit FrameReservationState t_frame_reservation{};

#if defined(__SANITIZE_ADDRESS__)
#define ASUPERSYNC_FRAME_POISONING 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASUPERSYNC_FRAME_POISONING 1
#endif
#endif
// Under ASan a record's frame area is poisoned while no frame lives in it, so a use of a
// destroyed root frame is caught although its memory is not freed yet.
void poison_frame_area(void* area, std::size_t size);
void unpoison_frame_area(void* area, std::size_t size);

inline void* allocate_frame(std::size_t size) { return allocate_block(size); }

inline void deallocate_frame(void* block, std::size_t size) noexcept {
  if (block == t_frame_reservation.borrowed) [[unlikely]] {
#if defined(ASUPERSYNC_FRAME_POISONING)
    poison_frame_area(block, size);
#endif
    return;
  }
  deallocate_block(block, size);
}

// The frame of a coroutine called with (callable, ...) as its two parameters (the promise's
// operator new sees them): takes the reservation when it was made for exactly this callable,
// i.e. the frame of the spawned callable's own coroutine, callable(cx).
inline void* allocate_root_frame(std::size_t size, const void* callable) {
  FrameReservationState& state = t_frame_reservation;
  if (state.area == nullptr || callable != state.callable) [[likely]] {
    return allocate_block(size);
  }
  void* area = std::exchange(state.area, nullptr);  // once
  state.requested = static_cast<uint32_t>(size);
  if (size > state.capacity) return allocate_block(size);
#if defined(ASUPERSYNC_FRAME_POISONING)
  unpoison_frame_area(area, size);
#endif
  return area;
}

// Sets the reservation while alive. A spawn made while another one's reservation is set (a
// callable that spawns when called, which is rare) reserves nothing: its frame is allocated
// apart from its record.
class FrameReservation {
 public:
  FrameReservation(void* area, uint32_t capacity, const void* callable)
      : active_(t_frame_reservation.area == nullptr && t_frame_reservation.borrowed == nullptr) {
    if (!active_) return;
    // `borrowed`: a frame that took the area and is destroyed before the spawn returns (its
    // creation threw) must not be freed on its own either.
    t_frame_reservation = {area, callable, area, capacity, 0};
#if defined(ASUPERSYNC_FRAME_POISONING)
    poison_frame_area(area, capacity);
#endif
  }
  FrameReservation(const FrameReservation&) = delete;
  FrameReservation& operator=(const FrameReservation&) = delete;
  ~FrameReservation() {
    if (!active_) return;
    t_frame_reservation.area = nullptr;
    t_frame_reservation.borrowed = nullptr;
  }
  // The size of the frame that matched (0 if none or inactive).
  uint32_t requested() const { return active_ ? t_frame_reservation.requested : 0; }

 private:
  bool active_;
};

// While alive, freeing `frame` (a root frame in its record's block, being destroyed) is a no-op.
class BorrowedFrame {
 public:
  explicit BorrowedFrame(void* frame)
      : saved_(std::exchange(t_frame_reservation.borrowed, frame)) {}
  BorrowedFrame(const BorrowedFrame&) = delete;
  BorrowedFrame& operator=(const BorrowedFrame&) = delete;
  ~BorrowedFrame() { t_frame_reservation.borrowed = saved_; }

 private:
  void* saved_;
};

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_
