// ObjectObserver: lets a deterministic runtime see which shared runtime objects a step touches.
//
// Packages built on core (channels, locks, ...) report each operation on one of their objects
// through `observe_object_access(this)`; the lab runtime installs an observer for the thread
// running a lab run and records the access for its exploration (DPOR: two steps that touch one
// object do not commute). In production no observer is installed and a report is one
// thread-local load and a branch.
//
// Thread-safety: the observer is per thread. Lifetime: an observer stays installed only while
// the runtime that installed it runs on this thread. Cancellation contract: none (no waits).

#ifndef ASUPERSYNC_CORE_INTERNAL_OBJECT_OBSERVER_H_
#define ASUPERSYNC_CORE_INTERNAL_OBJECT_OBSERVER_H_

namespace asupersync::internal {

class ObjectObserver {
 public:
  virtual ~ObjectObserver() = default;
  // `object` was constructed (by the task running now, if any): its identity for the lab is
  // "the k-th object that task created", the same in every interleaving.
  virtual void on_object_created(const void* object) = 0;
  // A step operated on `object` (reads and writes alike: operations of one object are treated
  // as conflicting).
  virtual void on_object_access(const void* object) = 0;
  // `object` is destroyed: its address may be reused by another object.
  virtual void on_object_destroyed(const void* object) = 0;
};

inline thread_local ObjectObserver* t_object_observer = nullptr;

inline void observe_object_created(const void* object) {
  if (ObjectObserver* observer = t_object_observer) observer->on_object_created(object);
}

inline void observe_object_access(const void* object) {
  if (ObjectObserver* observer = t_object_observer) observer->on_object_access(object);
}

inline void observe_object_destroyed(const void* object) {
  if (ObjectObserver* observer = t_object_observer) observer->on_object_destroyed(object);
}

}  // namespace asupersync::internal

#endif  // ASUPERSYNC_CORE_INTERNAL_OBJECT_OBSERVER_H_
