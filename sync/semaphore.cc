#include "sync/semaphore.h"

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "sync/internal/obligation.h"
#include "sync/internal/observed_mutex.h"

namespace asupersync {
namespace {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<sync_internal::ObservedMutex>;

absl::Status closed_error() {
  return absl::FailedPreconditionError("Semaphore: closed; it hands out no more permits");
}

size_t saturating_add(size_t a, size_t b) {
  return b > std::numeric_limits<size_t>::max() - a ? std::numeric_limits<size_t>::max() : a + b;
}

}  // namespace

// --- SemaphorePermit ------------------------------------------------------------------------

SemaphorePermit::SemaphorePermit(SemaphorePermit&& other) noexcept
    : semaphore_(std::exchange(other.semaphore_, nullptr)),
      count_(std::exchange(other.count_, 0)),
      ledger_(std::exchange(other.ledger_, nullptr)),
      site_(other.site_) {}

SemaphorePermit& SemaphorePermit::operator=(SemaphorePermit&& other) noexcept {
  if (this != &other) {
    if (semaphore_ != nullptr) finish(Resolution::kLeaked);
    semaphore_ = std::exchange(other.semaphore_, nullptr);
    count_ = std::exchange(other.count_, 0);
    ledger_ = std::exchange(other.ledger_, nullptr);
    site_ = other.site_;
  }
  return *this;
}

SemaphorePermit::~SemaphorePermit() {
  if (semaphore_ != nullptr) finish(Resolution::kLeaked);
}

void SemaphorePermit::release() && {
  if (semaphore_ == nullptr) {
    internal::invariant_violated(
        "SemaphorePermit::release on an empty (moved-from or released) permit");
  }
  finish(Resolution::kCompleted);
}

void SemaphorePermit::finish(Resolution resolution) noexcept {
  Semaphore* semaphore = std::exchange(semaphore_, nullptr);
  ObligationLedger* ledger = std::exchange(ledger_, nullptr);
  const size_t count = std::exchange(count_, 0);
  semaphore->add_permits(count);
  // The units are back before the obligation resolves (the resolve may let the region close).
  if (ledger == nullptr) return;
  absl::Status resolved = resolution == Resolution::kLeaked ? leak(*ledger, count, site_)
                                                            : ledger->resolve_counted(resolution);
  if (!resolved.ok()) [[unlikely]] {
    internal::invariant_violated(
        ("SemaphorePermit: its counted obligation was resolved behind its back: " +
         std::string(resolved.message()))
            .c_str());
  }
}

absl::Status SemaphorePermit::leak(ObligationLedger& ledger, size_t count, SourceSite site) {
  return ledger.leak_counted(ObligationKind::kPermit,
                             ObligationDescription("semaphore permits").with_count(count), site);
}

// --- Semaphore ------------------------------------------------------------------------------

namespace {
uint64_t units_of(uint64_t state, int shift) { return state >> shift; }
}  // namespace

Semaphore::Semaphore(size_t permits)
    : state_(std::min<uint64_t>(permits, kMaxUnits) << kUnitShift) {}

Semaphore::~Semaphore() {
  Guard lock(mu_);
  if (!waiters_.empty()) {
    internal::invariant_violated("Semaphore destroyed while tasks wait on it");
  }
}

absl::StatusOr<SemaphorePermit> Semaphore::try_acquire(Cx& cx, size_t n, SourceSite site) {
  if (n == 0) return absl::InvalidArgumentError("Semaphore::try_acquire: 0 permits asked");
  if (!try_take_fast(n)) {
    if ((state_.load(std::memory_order_acquire) & kClosed) != 0) return closed_error();
    return absl::UnavailableError("Semaphore: " + std::to_string(n) +
                                  " permits are not available now");
  }
  return make_permit(cx, n, site);
}

void Semaphore::add_permits(size_t n) {
  internal::observe_object_access(&mu_);
  uint64_t state = state_.load(std::memory_order_relaxed);
  while ((state & kWaiters) == 0) {
    const uint64_t units =
        std::min<uint64_t>(saturating_add(units_of(state, kUnitShift), n), kMaxUnits);
    const uint64_t next = units << kUnitShift | (state & (kWaiters | kClosed));
    if (state_.compare_exchange_weak(state, next, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      return;
    }
  }
  WakeList wakes;
  Guard lock(mu_);
  give_back_locked(n, wakes);
}

void Semaphore::close() {
  WakeList wakes;
  Guard lock(mu_);
  state_.fetch_or(kClosed, std::memory_order_acq_rel);
  while (sync_internal::Waiter* waiter = waiters_.pop_front()) {
    waiter->refuse_locked(closed_error(), wakes);
  }
  sync_waiters_flag_locked();
}

bool Semaphore::is_closed() const {
  internal::observe_object_access(&mu_);
  return (state_.load(std::memory_order_acquire) & kClosed) != 0;
}

size_t Semaphore::available_permits() const {
  internal::observe_object_access(&mu_);
  return static_cast<size_t>(units_of(state_.load(std::memory_order_acquire), kUnitShift));
}

size_t Semaphore::waiter_count() const {
  Guard lock(mu_);
  return waiters_.size();
}

void Semaphore::sync_waiters_flag_locked() {
  if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_acq_rel);
}

// kWaiters is set while the queue is non-empty, so nothing outside mu_ changes the word here.
void Semaphore::dispatch_locked(WakeList& wakes) {
  while (!waiters_.empty() &&
         waiters_.front()->amount <= units_of(state_.load(std::memory_order_acquire), kUnitShift)) {
    sync_internal::Waiter* waiter = waiters_.pop_front();
    state_.fetch_sub(waiter->amount << kUnitShift, std::memory_order_acq_rel);
    waiter->grant_locked(wakes);
  }
  sync_waiters_flag_locked();
}

void Semaphore::give_back_locked(size_t n, WakeList& wakes) {
  // Without kWaiters a fast acquire or release may change the word meanwhile: CAS.
  uint64_t state = state_.load(std::memory_order_relaxed);
  while (true) {
    const uint64_t units =
        std::min<uint64_t>(saturating_add(units_of(state, kUnitShift), n), kMaxUnits);
    const uint64_t next = units << kUnitShift | (state & (kWaiters | kClosed));
    if (state_.compare_exchange_weak(state, next, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  dispatch_locked(wakes);
}

absl::StatusOr<SemaphorePermit> Semaphore::make_permit(Cx& cx, size_t n, SourceSite site) {
  ObligationLedger& ledger = cx.region().ledger();
  if (!ledger.try_record_counted()) [[unlikely]] {
    absl::Status recorded = ledger.record_counted(
        ObligationKind::kPermit, ObligationDescription("semaphore permits").with_count(n), site);
    if (!recorded.ok()) {
      add_permits(n);
      return sync_internal::permit_refused("Semaphore acquire", recorded);
    }
  }
  return SemaphorePermit(this, n, &ledger, site);
}

// --- AcquireAwaiter -------------------------------------------------------------------------

absl::Status Semaphore::AcquireAwaiter::precheck() {
  if (amount == 0) return absl::InvalidArgumentError("Semaphore::acquire: 0 permits asked");
  return sync_internal::check_admission(cx(), "Semaphore acquire");
}

WaitState Semaphore::AcquireAwaiter::try_complete_locked(WakeList&) {
  uint64_t state = semaphore_->state_.load(std::memory_order_acquire);
  while (true) {
    if ((state & kClosed) != 0) {
      status = closed_error();
      return WaitState::kRefused;
    }
    if (semaphore_->waiters_.empty() && units_of(state, kUnitShift) >= amount) {
      if (semaphore_->state_.compare_exchange_weak(state, state - (amount << kUnitShift),
                                                   std::memory_order_acquire,
                                                   std::memory_order_acquire)) {
        return WaitState::kGranted;
      }
      continue;
    }
    // About to park: mark the word first, so that a release cannot take the fast path and
    // leave the waiter queued in this critical section (or the next one) unserved.
    if ((state & kWaiters) != 0) return WaitState::kIdle;
    if (semaphore_->state_.compare_exchange_weak(state, state | kWaiters, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
      return WaitState::kIdle;
    }
  }
}

void Semaphore::AcquireAwaiter::dequeue_locked(WakeList& wakes) {
  const bool was_head = semaphore_->waiters_.front() == this;
  semaphore_->waiters_.remove(this);
  if (was_head) {
    semaphore_->dispatch_locked(wakes);  // the next ones may fit now
  } else {
    semaphore_->sync_waiters_flag_locked();
  }
}

void Semaphore::AcquireAwaiter::pass_on_locked(WakeList& wakes) {
  semaphore_->give_back_locked(amount, wakes);
}

absl::StatusOr<SemaphorePermit> Semaphore::AcquireAwaiter::await_resume() {
  if (settle() != WaitState::kGranted) return status;
  return semaphore_->make_permit(cx(), amount, site_);
}

}  // namespace asupersync
