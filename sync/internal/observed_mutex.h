// ObservedMutex: the mutex of a sync primitive, which reports each acquisition as an access to
// the primitive (core/internal/object_observer.h).
//
// Every operation of a primitive — a send, a try_recv that finds nothing, a lock, the unlinking
// of an interrupted or destroyed waiter — takes the primitive's mutex, so reporting the
// acquisition tells the lab runtime every step that touched the primitive. Exploration (DPOR)
// then never treats two operations on one channel or lock as independent. In production the
// report is a thread-local load and a branch.
//
// The lock is a test-and-test-and-set spin lock (core/internal/spin_lock.h): every critical
// section of a primitive is a few dozen instructions (queue links, a state word, moving one
// value), so uncontended it is one exchange and one store instead of std::mutex's two library
// calls, and under contention it spins briefly, then yields (a preempted holder does not make
// the others burn their time slice).
//
// Thread-safety: as std::mutex. Lifetime: as the primitive that owns it. Cancellation contract:
// none (never waits for a task).

#ifndef ASUPERSYNC_SYNC_INTERNAL_OBSERVED_MUTEX_H_
#define ASUPERSYNC_SYNC_INTERNAL_OBSERVED_MUTEX_H_

#include "core/internal/object_observer.h"
#include "core/internal/spin_lock.h"

namespace asupersync::sync_internal {

class ObservedMutex {
 public:
  ObservedMutex() { internal::observe_object_created(this); }
  ~ObservedMutex() { internal::observe_object_destroyed(this); }
  ObservedMutex(const ObservedMutex&) = delete;
  ObservedMutex& operator=(const ObservedMutex&) = delete;

  void lock() {
    mutex_.lock();
    internal::observe_object_access(this);
  }
  bool try_lock() {
    if (!mutex_.try_lock()) return false;
    internal::observe_object_access(this);
    return true;
  }
  void unlock() { mutex_.unlock(); }

 private:
  internal::SpinLock mutex_;
};

}  // namespace asupersync::sync_internal

#endif  // ASUPERSYNC_SYNC_INTERNAL_OBSERVED_MUTEX_H_
