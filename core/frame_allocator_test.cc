// Copyright The Asupersync Authors.
//
// The frame allocator's cross-thread flow: blocks that one thread frees beyond its list's cap
// reach another thread's allocations through the transfer store (not operator delete).

#include "core/internal/frame_allocator.h"

#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace asupersync::internal {
namespace {

TEST(FrameAllocatorTest, BlocksFreedOnAnotherThreadComeBackToTheAllocatingThread) {
#if defined(ASUPERSYNC_FRAME_POISONING)
  GTEST_SKIP() << "recycling is off under AddressSanitizer";
#else
  constexpr std::size_t kSize = 640;  // a spawn-sized block
  const std::size_t count = 3 * kMaxCachedPerClass;
  std::vector<void*> blocks;
  blocks.reserve(count);
  for (std::size_t i = 0; i < count; ++i) blocks.push_back(allocate_block(kSize));
  // Another thread frees them all: it keeps one list, the rest goes to the transfer store.
  std::thread([&] {
    for (void* block : blocks) deallocate_block(block, kSize);
  }).join();  // its exit drains its own list to operator delete
  const std::set<void*> freed(blocks.begin(), blocks.end());
  std::size_t reused = 0;
  std::vector<void*> again;
  again.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    again.push_back(allocate_block(kSize));
    if (freed.count(again.back()) != 0) ++reused;
  }
  // At least the lists handed over (two full ones) come back, unless the store's bound was hit.
  EXPECT_GE(reused, 2 * kMaxCachedPerClass);
  for (void* block : again) deallocate_block(block, kSize);
#endif
}

}  // namespace
}  // namespace asupersync::internal
