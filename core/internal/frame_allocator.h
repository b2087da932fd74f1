// Recycling allocator for coroutine frames and task records.
//
// Spawning allocates a task record and a coroutine frame; both come from per-thread free
// lists bucketed by 64-byte size class, so a spawn/complete cycle in steady state touches no
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

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_FRAME_ALLOCATOR_H_
