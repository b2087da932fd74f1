#include "core/internal/frame_allocator.h"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>

#if defined(__has_include)
#if __has_include(<sanitizer/asan_interface.h>)
#include <sanitizer/asan_interface.h>
#endif
#endif

namespace asupersync::internal {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycle = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kRecycle = false;
#else
constexpr bool kRecycle = true;
#endif
#else
constexpr bool kRecycle = true;
#endif

constexpr std::size_t kClasses = kMaxRecycledSize / kFrameSizeClass;

struct FreeBlock {
  FreeBlock* next;
};

// The free lists of one thread. Trivially destructible and constant-initialised, so a
// thread_local of it is reached without a guard or an initialisation call (allocate and
// deallocate run once per spawned task and per awaited Task).
struct FreeLists {
  FreeBlock* heads[kClasses];
  uint32_t counts[kClasses];
  bool drain_registered;
};

thread_local constinit FreeLists free_lists{};

// Returns the cached blocks to the global allocator when the thread exits, and closes the lists:
// a frame freed later in the thread's teardown goes straight to operator delete.
struct DrainAtExit {
  ~DrainAtExit() {
    for (std::size_t i = 0; i < kClasses; ++i) {
      while (FreeBlock* block = free_lists.heads[i]) {
        free_lists.heads[i] = block->next;
        ::operator delete(block);
      }
      free_lists.counts[i] = kMaxCachedPerClass;  // full: push() refuses from now on
    }
  }
};

[[gnu::noinline]] void register_drain() {
  thread_local DrainAtExit drain;
  (void)drain;
  free_lists.drain_registered = true;
}

inline void* pop(std::size_t size_class) {
  FreeBlock* block = free_lists.heads[size_class];
  if (block == nullptr) return nullptr;
  free_lists.heads[size_class] = block->next;
  --free_lists.counts[size_class];
  return block;
}

inline bool push(std::size_t size_class, void* memory) {
  if (free_lists.counts[size_class] >= kMaxCachedPerClass) return false;
  if (!free_lists.drain_registered) [[unlikely]] {
    register_drain();
  }
  auto* block = static_cast<FreeBlock*>(memory);
  block->next = free_lists.heads[size_class];
  free_lists.heads[size_class] = block;
  ++free_lists.counts[size_class];
  return true;
}

// The transfer store: whole lists that a thread could not keep (its list was full), for threads
// whose list is empty. Bounded: kMaxTransferLists lists per class (then operator delete).
constexpr std::size_t kMaxTransferLists = 8;

struct TransferList {
  FreeBlock* head;
  uint32_t count;
};

struct TransferStore {
  std::mutex mutex;
  TransferList lists[kClasses][kMaxTransferLists];
  uint32_t sizes[kClasses];
  // sizes[] != 0, written under the mutex and read without it: a thread with an empty list
  // asks this before taking the mutex, so a burst of fresh allocations (a spawn loop, a region
  // cancel's first requests) does not take the mutex once per block only to find nothing. A
  // stale answer costs one operator new, or one lock that finds the store empty.
  std::atomic<bool> has_lists[kClasses];
};

constinit TransferStore transfer_store{};

// Moves this thread's full list of `size_class` into the transfer store (emptying it) and
// returns true, or returns false when the store is full for that class.
[[gnu::noinline]] bool hand_over_list(std::size_t size_class) {
  std::lock_guard<std::mutex> lock(transfer_store.mutex);
  uint32_t& size = transfer_store.sizes[size_class];
  if (size == kMaxTransferLists) return false;
  transfer_store.lists[size_class][size++] =
      TransferList{free_lists.heads[size_class], free_lists.counts[size_class]};
  transfer_store.has_lists[size_class].store(true, std::memory_order_relaxed);
  free_lists.heads[size_class] = nullptr;
  free_lists.counts[size_class] = 0;
  return true;
}

// Refills this thread's empty list of `size_class` from the transfer store; false if it had none.
[[gnu::noinline]] bool take_list(std::size_t size_class) {
  if (!transfer_store.has_lists[size_class].load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(transfer_store.mutex);
  uint32_t& size = transfer_store.sizes[size_class];
  if (size == 0) return false;
  const TransferList list = transfer_store.lists[size_class][--size];
  if (size == 0) transfer_store.has_lists[size_class].store(false, std::memory_order_relaxed);
  if (!free_lists.drain_registered) register_drain();
  free_lists.heads[size_class] = list.head;
  free_lists.counts[size_class] = list.count;
  return true;
}

// Size class index for a request, or kClasses or more when too large to recycle.
inline std::size_t class_of(std::size_t size) {
  if (size == 0) size = 1;
  return (size - 1) / kFrameSizeClass;
}

}  // namespace

void* allocate_block(std::size_t size) {
  const std::size_t size_class = class_of(size);
  if (!kRecycle || size_class >= kClasses) return ::operator new(size);
  if (void* block = pop(size_class)) return block;
  // The list is empty: take one the other threads could not keep (a drained thread's list is
  // closed: its count stays at the cap, see DrainAtExit).
  if (free_lists.counts[size_class] == 0 && take_list(size_class)) return pop(size_class);
  return ::operator new((size_class + 1) * kFrameSizeClass);
}

void deallocate_block(void* block, std::size_t size) noexcept {
#if defined(ASUPERSYNC_FRAME_POISONING)
  unpoison_frame_area(block, size);  // a record's block: its frame area may be poisoned
#endif
  const std::size_t size_class = class_of(size);
  if (!kRecycle || size_class >= kClasses) {
    ::operator delete(block);
    return;
  }
  if (push(size_class, block)) return;
  // Full (or closed by DrainAtExit: no head then): hand the list over and start a new one.
  if (free_lists.heads[size_class] != nullptr && hand_over_list(size_class) &&
      push(size_class, block)) {
    return;
  }
  ::operator delete(block);
}

void poison_frame_area([[maybe_unused]] void* area, [[maybe_unused]] std::size_t size) {
#if defined(ASUPERSYNC_FRAME_POISONING)
  __asan_poison_memory_region(area, size);
#endif
}

void unpoison_frame_area([[maybe_unused]] void* area, [[maybe_unused]] std::size_t size) {
#if defined(ASUPERSYNC_FRAME_POISONING)
  __asan_unpoison_memory_region(area, size);
#endif
}

}  // namespace asupersync::internal
