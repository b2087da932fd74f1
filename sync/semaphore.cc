#include "sync/semaphore.h"

#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "sync/internal/obligation.h"

namespace asupersync {
namespace {

using sync_internal::WaitState;
using sync_internal::WakeList;
using Guard = std::lock_guard<std::mutex>;

absl::Status closed_error() {
  return absl::FailedPreconditionError("Semaphore: closed; it hands out no more permits");
}

size_t saturating_add(size_t a, size_t b) {
  return b > std::numeric_limits<size_t>::max() - a ? std::numeric_limits<size_t>::max() : a + b;
}

// The ledger description of a permit, "semaphore permits (n)", built in one allocation (the
// concatenation of to_string pieces cost a quarter of an uncontended acquire/release).
std::string permit_description(size_t n) {
  char digits[24];
  char* first = digits + sizeof digits;
  do {
    *--first = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  static constexpr std::string_view kPrefix = "semaphore permits (";
  const size_t count = static_cast<size_t>(digits + sizeof digits - first);
  std::string description;
  description.reserve(kPrefix.size() + count + 1);
  description.append(kPrefix).append(first, count).push_back(')');
  return description;
}

}  // namespace

// --- SemaphorePermit ------------------------------------------------------------------------

SemaphorePermit::SemaphorePermit(Semaphore* semaphore, size_t count, ObligationLedger* ledger,
                                 ObligationId id)
    : semaphore_(semaphore), count_(count), ledger_(ledger), id_(id) {}

SemaphorePermit::SemaphorePermit(SemaphorePermit&& other) noexcept
    : semaphore_(std::exchange(other.semaphore_, nullptr)),
      count_(std::exchange(other.count_, 0)),
      ledger_(std::exchange(other.ledger_, nullptr)),
      id_(std::exchange(other.id_, ObligationId())) {}

SemaphorePermit& SemaphorePermit::operator=(SemaphorePermit&& other) noexcept {
  if (this != &other) {
    if (semaphore_ != nullptr) finish(Resolution::kLeaked);
    semaphore_ = std::exchange(other.semaphore_, nullptr);
    count_ = std::exchange(other.count_, 0);
    ledger_ = std::exchange(other.ledger_, nullptr);
    id_ = std::exchange(other.id_, ObligationId());
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
  const ObligationId id = std::exchange(id_, ObligationId());
  semaphore->add_permits(std::exchange(count_, 0));
  // The units are back before the entry resolves (the resolve may let the region close).
  if (ledger != nullptr) {
    if (absl::Status resolved = ledger->resolve(id, resolution); !resolved.ok()) {
      internal::invariant_violated(
          ("SemaphorePermit: its ledger entry was resolved behind its back: " +
           std::string(resolved.message()))
              .c_str());
    }
  }
}

// --- Semaphore ------------------------------------------------------------------------------

Semaphore::Semaphore(size_t permits) : available_(permits) {}

Semaphore::~Semaphore() {
  Guard lock(mu_);
  if (!waiters_.empty()) {
    internal::invariant_violated("Semaphore destroyed while tasks wait on it");
  }
}

Semaphore::AcquireAwaiter Semaphore::acquire(Cx& cx, size_t n, SourceSite site) {
  return AcquireAwaiter(cx, this, n, site);
}

absl::StatusOr<SemaphorePermit> Semaphore::try_acquire(Cx& cx, size_t n, SourceSite site) {
  if (n == 0) return absl::InvalidArgumentError("Semaphore::try_acquire: 0 permits asked");
  {
    Guard lock(mu_);
    if (closed_) return closed_error();
    if (!waiters_.empty() || available_ < n) {
      return absl::UnavailableError("Semaphore: " + std::to_string(n) +
                                    " permits are not available now");
    }
    available_ -= n;
  }
  return make_permit(cx, n, site);
}

void Semaphore::add_permits(size_t n) {
  WakeList wakes;
  Guard lock(mu_);
  give_back_locked(n, wakes);
}

void Semaphore::close() {
  WakeList wakes;
  Guard lock(mu_);
  closed_ = true;
  while (sync_internal::Waiter* waiter = waiters_.pop_front()) {
    waiter->refuse_locked(closed_error(), wakes);
  }
}

bool Semaphore::is_closed() const {
  Guard lock(mu_);
  return closed_;
}

size_t Semaphore::available_permits() const {
  Guard lock(mu_);
  return available_;
}

size_t Semaphore::waiter_count() const {
  Guard lock(mu_);
  return waiters_.size();
}

void Semaphore::dispatch_locked(WakeList& wakes) {
  while (!waiters_.empty() && waiters_.front()->amount <= available_) {
    sync_internal::Waiter* waiter = waiters_.pop_front();
    available_ -= waiter->amount;
    waiter->grant_locked(wakes);
  }
}

void Semaphore::give_back_locked(size_t n, WakeList& wakes) {
  available_ = saturating_add(available_, n);
  dispatch_locked(wakes);
}

absl::StatusOr<SemaphorePermit> Semaphore::make_permit(Cx& cx, size_t n, SourceSite site) {
  absl::StatusOr<sync_internal::RecordedObligation> recorded =
      sync_internal::record_permit(cx, "Semaphore acquire", permit_description(n), site);
  if (!recorded.ok()) {
    add_permits(n);
    return recorded.status();
  }
  return SemaphorePermit(this, n, recorded->ledger, recorded->id);
}

// --- AcquireAwaiter -------------------------------------------------------------------------

absl::Status Semaphore::AcquireAwaiter::precheck() {
  if (amount == 0) return absl::InvalidArgumentError("Semaphore::acquire: 0 permits asked");
  return sync_internal::check_admission(cx(), "Semaphore acquire");
}

WaitState Semaphore::AcquireAwaiter::try_complete_locked(WakeList&) {
  if (semaphore_->closed_) {
    status = closed_error();
    return WaitState::kRefused;
  }
  if (!semaphore_->waiters_.empty() || semaphore_->available_ < amount) return WaitState::kIdle;
  semaphore_->available_ -= amount;
  return WaitState::kGranted;
}

void Semaphore::AcquireAwaiter::dequeue_locked(WakeList& wakes) {
  const bool was_head = semaphore_->waiters_.front() == this;
  semaphore_->waiters_.remove(this);
  if (was_head) semaphore_->dispatch_locked(wakes);  // the next ones may fit now
}

void Semaphore::AcquireAwaiter::pass_on_locked(WakeList& wakes) {
  semaphore_->give_back_locked(amount, wakes);
}

absl::StatusOr<SemaphorePermit> Semaphore::AcquireAwaiter::await_resume() {
  if (settle() != WaitState::kGranted) return status;
  return semaphore_->make_permit(cx(), amount, site_);
}

}  // namespace asupersync
