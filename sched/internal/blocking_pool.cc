// Copyright The Asupersync Authors.

#include "sched/internal/blocking_pool.h"

#include <chrono>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sched/internal/invariant.h"

namespace asupersync::sched {

namespace {

// The pool whose job is running on this thread, if any.
thread_local const BlockingPool* current_pool = nullptr;

}  // namespace

absl::StatusOr<std::unique_ptr<BlockingPool>> BlockingPool::create(BlockingPoolOptions options) {
  if (options.max_threads == 0 || options.min_threads > options.max_threads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BlockingPool::create: need 1 <= max_threads and min_threads <= max_threads, got "
        "min_threads = ",
        options.min_threads, ", max_threads = ", options.max_threads));
  }
  if (options.keep_alive < Duration::Zero()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BlockingPool::create: keep_alive must not be negative, got ",
                     options.keep_alive.to_string()));
  }
  if (options.max_queued == 0) {
    return absl::InvalidArgumentError("BlockingPool::create: max_queued must be at least 1");
  }
  std::unique_ptr<BlockingPool> pool(new BlockingPool(options));
  std::lock_guard<std::mutex> lock(pool->mutex_);
  for (size_t i = 0; i < options.min_threads; ++i) {
    if (absl::Status status = pool->spawn_locked(); !status.ok()) {
      // The destructor shuts the started threads down (after this lock is released).
      return status;
    }
  }
  return pool;
}

BlockingPool::BlockingPool(BlockingPoolOptions options) : options_(options) {}

BlockingPool::~BlockingPool() { shutdown(); }

absl::Status BlockingPool::spawn_locked() {
  try {
    std::thread thread(&BlockingPool::run_thread, this);
    const std::thread::id id = thread.get_id();
    threads_.emplace(id, std::move(thread));
  } catch (const std::system_error& error) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "BlockingPool: could not start a thread (", error.what(), ") with ", live_threads_,
        " running; lower BlockingPoolOptions::max_threads or raise the process's thread limit "
        "(ulimit -u, memory for stacks)"));
  }
  ++live_threads_;
  return absl::OkStatus();
}

absl::Status BlockingPool::submit(std::function<void()> job) {
  if (!job) return absl::InvalidArgumentError("BlockingPool::submit: the job is empty");
  std::vector<std::thread> exited;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutdown_) {
      return absl::FailedPreconditionError(
          "BlockingPool::submit after shutdown(): the pool no longer accepts jobs");
    }
    if (queue_.size() >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "BlockingPool::submit: ", queue_.size(), " jobs already wait for one of ", live_threads_,
          " busy threads (max_queued = ", options_.max_queued,
          ", max_threads = ", options_.max_threads,
          "); apply backpressure, or raise BlockingPoolOptions::max_queued or max_threads"));
    }
    queue_.push_back(std::move(job));
    if (idle_ > 0) {
      --idle_;
      ++notified_;
      work_available_.notify_one();
    } else if (live_threads_ < options_.max_threads) {
      if (absl::Status status = spawn_locked(); !status.ok() && live_threads_ == 0) {
        queue_.pop_back();  // Nobody would ever run it.
        return status;
      }
    }
    exited.swap(exited_);
  }
  for (std::thread& thread : exited) thread.join();
  return absl::OkStatus();
}

void BlockingPool::run_thread() {
  current_pool = this;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    if (!queue_.empty()) {
      std::function<void()> job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      job = nullptr;  // Destroy what it captured outside the lock too.
      lock.lock();
      continue;
    }
    if (shutdown_) break;
    ++idle_;
    bool retire = false;
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::nanoseconds(options_.keep_alive.nanoseconds());
    while (true) {
      const bool timed_out = work_available_.wait_until(lock, deadline) == std::cv_status::timeout;
      if (notified_ > 0) {  // submit() counted this thread out of idle_ already.
        --notified_;
        break;
      }
      if (shutdown_) {
        --idle_;
        break;
      }
      if (timed_out) {
        if (live_threads_ > options_.min_threads) {
          --idle_;
          retire = true;
          break;
        }
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::nanoseconds(options_.keep_alive.nanoseconds());
      }
    }
    if (retire) break;
  }
  --live_threads_;
  // Hand this thread's std::thread to whoever joins next (unless shutdown() holds it already).
  if (auto it = threads_.find(std::this_thread::get_id()); it != threads_.end()) {
    exited_.push_back(std::move(it->second));
    threads_.erase(it);
  }
}

void BlockingPool::shutdown() {
  if (current_pool == this) {
    invariant_violated(
        "BlockingPool::shutdown is not called from one of the pool's own jobs (it would join "
        "its own thread)");
  }
  std::lock_guard<std::mutex> shutdown_lock(shutdown_mutex_);
  std::vector<std::thread> to_join;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shutdown_ = true;
    work_available_.notify_all();
    for (auto& [id, thread] : threads_) to_join.push_back(std::move(thread));
    threads_.clear();
    for (std::thread& thread : exited_) to_join.push_back(std::move(thread));
    exited_.clear();
  }
  // Threads drain the queue before they see shutdown_, so every queued job runs.
  for (std::thread& thread : to_join) thread.join();
}

size_t BlockingPool::num_threads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_threads_;
}

size_t BlockingPool::num_idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return idle_;
}

size_t BlockingPool::num_queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

}  // namespace asupersync::sched
