#include "core/internal/frame_allocator.h"

#include <new>

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

class ThreadCache {
 public:
  ~ThreadCache() {
    for (std::size_t i = 0; i < kClasses; ++i) {
      while (FreeBlock* block = heads_[i]) {
        heads_[i] = block->next;
        ::operator delete(block);
      }
    }
  }

  void* pop(std::size_t size_class) {
    FreeBlock* block = heads_[size_class];
    if (block == nullptr) return nullptr;
    heads_[size_class] = block->next;
    --counts_[size_class];
    return block;
  }

  bool push(std::size_t size_class, void* memory) {
    if (counts_[size_class] >= kMaxCachedPerClass) return false;
    auto* block = static_cast<FreeBlock*>(memory);
    block->next = heads_[size_class];
    heads_[size_class] = block;
    ++counts_[size_class];
    return true;
  }

 private:
  FreeBlock* heads_[kClasses] = {};
  std::size_t counts_[kClasses] = {};
};

ThreadCache& cache() {
  thread_local ThreadCache instance;
  return instance;
}

// Size class index for a request, or kClasses when too large to recycle.
std::size_t class_of(std::size_t size) {
  if (size == 0) size = 1;
  return (size + kFrameSizeClass - 1) / kFrameSizeClass - 1;
}

}  // namespace

void* allocate_frame(std::size_t size) {
  const std::size_t size_class = class_of(size);
  if (!kRecycle || size_class >= kClasses) return ::operator new(size);
  if (void* block = cache().pop(size_class)) return block;
  return ::operator new((size_class + 1) * kFrameSizeClass);
}

void deallocate_frame(void* block, std::size_t size) noexcept {
  const std::size_t size_class = class_of(size);
  if (!kRecycle || size_class >= kClasses || !cache().push(size_class, block)) {
    ::operator delete(block);
  }
}

}  // namespace asupersync::internal
