// SpinLock: the small lock that guards one task record's wait and cancel state.
//
// Critical sections under it are a few loads and stores (never user code, never a waker), so a
// test-and-test-and-set lock beats a std::mutex: uncontended it is one atomic exchange. Under
// contention it backs off and then yields the processor, so a preempted holder on a 2-core
// machine does not make the waiter burn its time slice.
//
// Thread-safety: that is its purpose. Lifetime: plain value member; not movable.
// Satisfies BasicLockable, so std::lock_guard / std::unique_lock work with it.

#ifndef ASUPERSYNC_CORE_INTERNAL_SPIN_LOCK_H_
#define ASUPERSYNC_CORE_INTERNAL_SPIN_LOCK_H_

#include <sched.h>

#include <atomic>

namespace asupersync::internal {

class SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  void lock_slow() noexcept {
    for (int spins = 0;; ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins < 64) {
          cpu_relax();
          ++spins;
        } else {
          sched_yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_SPIN_LOCK_H_
