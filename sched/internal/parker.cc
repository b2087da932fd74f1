// Copyright The Asupersync Authors.

#include "sched/internal/parker.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "sched/internal/invariant.h"

namespace asupersync::sched {

namespace {

static_assert(sizeof(std::atomic<int32_t>) == sizeof(int32_t) &&
                  std::atomic<int32_t>::is_always_lock_free,
              "a futex word is a plain, lock-free 32-bit integer");

uint32_t* futex_word(std::atomic<int32_t>& state) { return reinterpret_cast<uint32_t*>(&state); }

// Sleeps while *word == expected, until woken or until the absolute CLOCK_MONOTONIC `deadline`
// (null: no deadline). Returns false on timeout. Spurious returns are the caller's business.
bool futex_wait(std::atomic<int32_t>& state, int32_t expected, const timespec* deadline) {
  // FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (FUTEX_WAIT's is relative,
  // which would drift across spurious wake-ups).
  const long result =
      syscall(SYS_futex, futex_word(state), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
              static_cast<uint32_t>(expected), deadline, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (result == 0) return true;
  switch (errno) {
    case EAGAIN:  // The word changed before we slept.
    case EINTR:
      return true;
    case ETIMEDOUT:
      return false;
    default:
      invariant_violated(
          "futex(FUTEX_WAIT_BITSET) on a Parker fails only with EAGAIN, EINTR or "
          "ETIMEDOUT");
  }
}

void futex_wake_one(std::atomic<int32_t>& state) {
  syscall(SYS_futex, futex_word(state), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, nullptr, 0);
}

timespec monotonic_deadline_after(Duration timeout) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t now_ns = int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  const Time deadline = Time::FromNanoseconds(now_ns) + timeout;  // Saturates.
  const int64_t deadline_ns = deadline.nanoseconds();
  return timespec{static_cast<time_t>(deadline_ns / 1'000'000'000),
                  static_cast<long>(deadline_ns % 1'000'000'000)};
}

}  // namespace

void Parker::park() {
  // NOTIFIED -> EMPTY: consume the token and return; EMPTY -> PARKED: sleep.
  if (state_.fetch_sub(1, std::memory_order_acquire) == kNotified) return;
  while (true) {
    futex_wait(state_, kParked, nullptr);
    int32_t expected = kNotified;
    if (state_.compare_exchange_strong(expected, kEmpty, std::memory_order_acquire)) return;
    // Spurious wake-up: still PARKED.
  }
}

bool Parker::park_for(Duration timeout) {
  if (timeout.is_infinite()) {
    park();
    return true;
  }
  if (state_.fetch_sub(1, std::memory_order_acquire) == kNotified) return true;
  if (timeout > Duration::Zero()) {
    const timespec deadline = monotonic_deadline_after(timeout);
    while (true) {
      const bool timed_out = !futex_wait(state_, kParked, &deadline);
      int32_t expected = kNotified;
      if (state_.compare_exchange_strong(expected, kEmpty, std::memory_order_acquire)) {
        return true;
      }
      if (timed_out) break;
    }
  }
  // Give up: PARKED -> EMPTY, unless an unpark arrived in between (then consume it).
  return state_.exchange(kEmpty, std::memory_order_acquire) == kNotified;
}

void Parker::unpark() {
  if (state_.exchange(kNotified, std::memory_order_release) == kParked) futex_wake_one(state_);
}

namespace {

size_t checked_num_workers(size_t num_workers) {
  if (num_workers == 0 || num_workers > INT32_MAX) {
    invariant_violated("an IdleSet has between 1 and 2^31 - 1 workers");
  }
  return num_workers;
}

}  // namespace

IdleSet::IdleSet(size_t num_workers)
    : num_workers_(checked_num_workers(num_workers)),
      parkers_(new Parker[num_workers]),
      state_(uint64_t{num_workers} * kOneUnparked),
      parked_(num_workers, false) {
  sleepers_.reserve(num_workers);
}

void IdleSet::check_worker(size_t worker, const char* caller) const {
  if (worker >= num_workers_) invariant_violated(caller);
}

Parker& IdleSet::parker(size_t worker) {
  check_worker(worker, "IdleSet::parker takes a worker index below num_workers()");
  return parkers_[worker];
}

std::optional<size_t> IdleSet::notify_one() {
  // A read-modify-write rather than a load: it is ordered after the caller's publication of
  // work and synchronises with every worker's transition (also RMWs), so either a worker going
  // to sleep sees the work, or this sees it going to sleep.
  uint64_t state = state_.fetch_add(0, std::memory_order_seq_cst);
  if (searching_of(state) != 0 || unparked_of(state) >= num_workers_) return std::nullopt;
  size_t worker;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state = state_.load(std::memory_order_seq_cst);
    if (searching_of(state) != 0 || unparked_of(state) >= num_workers_ || sleepers_.empty()) {
      return std::nullopt;
    }
    worker = sleepers_.back();
    sleepers_.pop_back();
    parked_[worker] = false;
    // The woken worker starts out searching, which keeps other notifiers from waking more
    // workers for the same burst of work.
    state_.fetch_add(kOneUnparked + kOneSearching, std::memory_order_seq_cst);
  }
  parkers_[worker].unpark();
  return worker;
}

void IdleSet::notify_all() {
  std::vector<size_t> woken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken.swap(sleepers_);
    sleepers_.reserve(num_workers_);
    for (size_t worker : woken) parked_[worker] = false;
    // Like notify_one, every worker woken through the set counts as searching, so a woken
    // worker can always tell how it woke (remove_sleeper returns false).
    state_.fetch_add(woken.size() * (kOneUnparked + kOneSearching), std::memory_order_seq_cst);
  }
  for (size_t worker : woken) parkers_[worker].unpark();
}

bool IdleSet::transition_to_searching() {
  const uint64_t state = state_.load(std::memory_order_seq_cst);
  if (2 * searching_of(state) >= num_workers_) return false;
  state_.fetch_add(kOneSearching, std::memory_order_seq_cst);
  return true;
}

bool IdleSet::transition_from_searching() {
  const uint64_t previous = state_.fetch_sub(kOneSearching, std::memory_order_seq_cst);
  if (searching_of(previous) == 0) {
    invariant_violated("IdleSet::transition_from_searching is called by a searching worker");
  }
  return searching_of(previous) == 1;
}

bool IdleSet::transition_to_parked(size_t worker, bool searching) {
  check_worker(worker, "IdleSet::transition_to_parked takes a worker index below num_workers()");
  std::lock_guard<std::mutex> lock(mutex_);
  if (parked_[worker]) {
    invariant_violated("IdleSet::transition_to_parked is called by a worker that is not parked");
  }
  const uint64_t previous =
      state_.fetch_sub(kOneUnparked + (searching ? kOneSearching : 0), std::memory_order_seq_cst);
  if (unparked_of(previous) == 0 || (searching && searching_of(previous) == 0)) {
    invariant_violated("IdleSet counters: a parking worker was counted unparked (and searching)");
  }
  sleepers_.push_back(worker);
  parked_[worker] = true;
  return searching && searching_of(previous) == 1;
}

bool IdleSet::remove_sleeper(size_t worker) {
  check_worker(worker, "IdleSet::remove_sleeper takes a worker index below num_workers()");
  std::lock_guard<std::mutex> lock(mutex_);
  if (!parked_[worker]) return false;
  parked_[worker] = false;
  sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), worker));
  state_.fetch_add(kOneUnparked, std::memory_order_seq_cst);
  return true;
}

bool IdleSet::is_parked(size_t worker) const {
  check_worker(worker, "IdleSet::is_parked takes a worker index below num_workers()");
  std::lock_guard<std::mutex> lock(mutex_);
  return parked_[worker];
}

size_t IdleSet::num_searching() const {
  return searching_of(state_.load(std::memory_order_seq_cst));
}

size_t IdleSet::num_unparked() const { return unparked_of(state_.load(std::memory_order_seq_cst)); }

}  // namespace asupersync::sched
