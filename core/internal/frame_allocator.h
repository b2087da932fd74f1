// Recycling allocator for coroutine frames and task records.
//
// Spawning allocates one block for the task record and its root coroutine frame; it and the
// frames of awaited tasks come from per-thread free lists bucketed by 64-byte size class, so a spawn/complete cycle in steady state touches no
// global allocator. Blocks larger than kMaxRecycledSize go to operator new. A block freed on a
// different thread joins that thread's list (like a thread cache); each list is capped.
//
// Under AddressSanitizer recycling is disabled so that a use-after-free of a frame is caught.
//
// Thread-safety: thread-local state only. Internal to //core.

#ifndef ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_
#define ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_

#include <cstddef>

namespace asupersync::internal {

inline constexpr std::size_t kFrameSizeClass = 64;
inline constexpr std::size_t kMaxRecycledSize = 2048;
inline constexpr std::size_t kMaxCachedPerClass = 8192;

void* allocate_frame(std::size_t size);
void deallocate_frame(void* block, std::size_t size) noexcept;

// A spawned task is one allocation: its record and its root coroutine frame share a block (the
// record first, the frame at the 16-aligned offset after it). The callable lives in the record,
// so it is at its final address before it is called to create the frame; the frame's allocation
// happens inside that call, where only this thread-local reservation can steer it.

// Frames and records both come from the same size classes.
void* allocate_block(std::size_t size);
void deallocate_block(void* block, std::size_t size) noexcept;

// The frame of a coroutine called with (callable, cx) as its two parameters (the promise's
// operator new sees them): takes the current reservation when it was made for exactly this
// callable and Cx, i.e. the spawned callable's own coroutine; else a plain allocate_frame.
void* allocate_root_frame(std::size_t size, const void* callable, const void* cx);

// While alive, the frame of the coroutine `callable(cx)` takes `area` if it fits in `capacity`
// bytes (once), and freeing `area` is a no-op (its memory goes with the record's block). Nests:
// the previous reservation is restored on destruction (a callable may spawn when called).
class FrameReservation {
 public:
  FrameReservation(void* area, std::size_t capacity, const void* callable, const void* cx);
  FrameReservation(const FrameReservation&) = delete;
  FrameReservation& operator=(const FrameReservation&) = delete;
  ~FrameReservation();
  // Size of the frame that matched this reservation (0 if none), whether or not it fitted.
  std::size_t requested() const;

 private:
  struct State {
    void* area;
    std::size_t capacity;
    std::size_t requested;
    const void* callable;
    const void* cx;
    void* borrowed;
  };
  State saved_;
};

// While alive, freeing `frame` (a root frame in its record's block, being destroyed) is a no-op.
class BorrowedFrame {
 public:
  explicit BorrowedFrame(void* frame);
  BorrowedFrame(const BorrowedFrame&) = delete;
  BorrowedFrame& operator=(const BorrowedFrame&) = delete;
  ~BorrowedFrame();

 private:
  void* saved_borrowed_;
};

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_
