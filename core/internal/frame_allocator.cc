#include "core/internal/frame_allocator.h"

#include <cstdint>
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

// Under ASan the frame area of a record's block is poisoned while no frame lives in it, so a
// use of a destroyed root frame is caught although its memory is not freed yet.
#if defined(__SANITIZE_ADDRESS__)
#define ASUPERSYNC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASUPERSYNC_ASAN 1
#endif
#endif

#if defined(ASUPERSYNC_ASAN)
inline void poison(void* memory, std::size_t size) { __asan_poison_memory_region(memory, size); }
inline void unpoison(void* memory, std::size_t size) {
  __asan_unpoison_memory_region(memory, size);
}
#else
inline void poison(void*, std::size_t) {}
inline void unpoison(void*, std::size_t) {}
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
  // The spawn reservation (see FrameReservation), and the frame whose free is a no-op.
  void* reserved_area;
  std::size_t reserved_capacity;
  std::size_t reserved_requested;
  const void* reserved_callable;
  const void* reserved_cx;
  void* borrowed;
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

// Size class index for a request, or kClasses or more when too large to recycle.
inline std::size_t class_of(std::size_t size) {
  if (size == 0) size = 1;
  return (size - 1) / kFrameSizeClass;
}

}  // namespace

void* allocate_frame(std::size_t size) { return allocate_block(size); }

void* allocate_root_frame(std::size_t size, const void* callable, const void* cx) {
  void* area = free_lists.reserved_area;
  if (area == nullptr || callable != free_lists.reserved_callable ||
      cx != free_lists.reserved_cx) {
    return allocate_block(size);
  }
  free_lists.reserved_area = nullptr;  // once
  free_lists.reserved_requested = size;
  if (size > free_lists.reserved_capacity) return allocate_block(size);
  unpoison(area, size);
  return area;
}

void deallocate_frame(void* block, std::size_t size) noexcept {
  if (block == free_lists.borrowed) [[unlikely]] {
    poison(block, size);  // freed with its record's block
    return;
  }
  deallocate_block(block, size);
}

void* allocate_block(std::size_t size) {
  const std::size_t size_class = class_of(size);
  if (!kRecycle || size_class >= kClasses) return ::operator new(size);
  if (void* block = pop(size_class)) return block;
  return ::operator new((size_class + 1) * kFrameSizeClass);
}

void deallocate_block(void* block, std::size_t size) noexcept {
  unpoison(block, size);
  const std::size_t size_class = class_of(size);
  if (!kRecycle || size_class >= kClasses || !push(size_class, block)) {
    ::operator delete(block);
  }
}

FrameReservation::FrameReservation(void* area, std::size_t capacity, const void* callable,
                                   const void* cx)
    : saved_{free_lists.reserved_area,     free_lists.reserved_capacity,
             free_lists.reserved_requested, free_lists.reserved_callable,
             free_lists.reserved_cx,        free_lists.borrowed} {
  free_lists.reserved_area = area;
  free_lists.reserved_capacity = capacity;
  free_lists.reserved_requested = 0;
  free_lists.reserved_callable = callable;
  free_lists.reserved_cx = cx;
  // A frame that took the area and is destroyed before the spawn returns (the coroutine's
  // creation threw) must not be freed on its own either.
  free_lists.borrowed = area;
  poison(area, capacity);
}

FrameReservation::~FrameReservation() {
  free_lists.reserved_area = saved_.area;
  free_lists.reserved_capacity = saved_.capacity;
  free_lists.reserved_requested = saved_.requested;
  free_lists.reserved_callable = saved_.callable;
  free_lists.reserved_cx = saved_.cx;
  free_lists.borrowed = saved_.borrowed;
}

std::size_t FrameReservation::requested() const { return free_lists.reserved_requested; }

BorrowedFrame::BorrowedFrame(void* frame) : saved_borrowed_(free_lists.borrowed) {
  free_lists.borrowed = frame;
}

BorrowedFrame::~BorrowedFrame() { free_lists.borrowed = saved_borrowed_; }

}  // namespace asupersync::internal
