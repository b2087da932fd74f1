// Copyright The Asupersync Authors.
//
// sched/internal/blocking_pool.h: the threads that run blocking calls (file I/O, getaddrinfo
// without c-ares, CPU-heavy work) off the workers, so that they never stall the scheduler
// (SPEC 6.5).
//
// `BlockingPool` starts `min_threads` threads and grows lazily up to `max_threads`: a job
// submitted while no thread is idle starts a new thread (if the limit allows; otherwise it
// waits in the queue for the first thread that becomes free). A thread idle for `keep_alive`
// exits, down to `min_threads`. `submit` fails with ResourceExhausted when `max_queued` jobs are
// already waiting (so callers apply backpressure rather than queueing without bound) and with
// FailedPrecondition after `shutdown`.
//
// Thread-safety: every method from any thread, except that `shutdown` (and the destructor) must
// not be called from one of the pool's own jobs (it would join itself; aborts). Jobs run on the
// pool's threads, one at a time per thread, with no pool lock held.
//
// Lifetime: `shutdown()` (called by the destructor too) stops accepting jobs, lets the running
// jobs finish, still runs every job that was already queued, and joins all threads. It may
// therefore wait as long as the slowest queued job. Idempotent.
//
// Cancellation: a job cannot be interrupted. When the task waiting for a job's result is
// cancelled, the runtime stops waiting and discards the result when the job eventually finishes
// (the integration does this); the job keeps its thread until it returns. Jobs that must stop
// early have to poll a flag of their own. An exception escaping a job terminates the process
// (std::terminate), as for any std::thread.

#ifndef ASUPERSYNC_SCHED_INTERNAL_BLOCKING_POOL_H_
#define ASUPERSYNC_SCHED_INTERNAL_BLOCKING_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/time.h"

namespace asupersync::sched {

struct BlockingPoolOptions {
  size_t min_threads = 0;                       // Started by create() and never retired.
  size_t max_threads = 64;                      // >= 1 and >= min_threads.
  Duration keep_alive = Duration::Seconds(10);  // Idle time before a thread exits; >= 0.
  size_t max_queued = 65536;                    // Jobs waiting for a thread; >= 1.
};

class BlockingPool {
 public:
  // InvalidArgument for inconsistent options; ResourceExhausted if the minimum threads cannot
  // be started.
  static absl::StatusOr<std::unique_ptr<BlockingPool>> create(BlockingPoolOptions options = {});
  ~BlockingPool();

  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `job` (non-empty) to run on a pool thread. InvalidArgument for an empty job,
  // ResourceExhausted when max_queued jobs wait already (or no thread can be started and none
  // is running), FailedPrecondition after shutdown().
  absl::Status submit(std::function<void()> job);

  // See Lifetime above.
  void shutdown();

  size_t num_threads() const;  // Threads running or idle (not exiting).
  size_t num_idle() const;     // Threads waiting for a job.
  size_t num_queued() const;   // Jobs waiting for a thread.
  const BlockingPoolOptions& options() const { return options_; }

 private:
  explicit BlockingPool(BlockingPoolOptions options);
  absl::Status spawn_locked();
  void run_thread();

  const BlockingPoolOptions options_;
  std::mutex shutdown_mutex_;  // Serialises shutdown() calls.
  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<std::function<void()>> queue_;
  size_t live_threads_ = 0;
  size_t idle_ = 0;      // Threads waiting and not yet handed a job.
  size_t notified_ = 0;  // Jobs handed to idle threads that have not woken up yet.
  bool shutdown_ = false;
  std::unordered_map<std::thread::id, std::thread> threads_;
  std::vector<std::thread> exited_;  // Threads that returned; joined by the next submit.
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_BLOCKING_POOL_H_
