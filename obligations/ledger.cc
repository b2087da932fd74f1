// Copyright The Asupersync Authors.

#include "obligations/ledger.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace asupersync {

namespace obligations_internal {

void invariant_violated(std::string_view invariant) {
  std::fprintf(stderr, "asupersync: invariant violated: %.*s\n", static_cast<int>(invariant.size()),
               invariant.data());
  std::fflush(stderr);
  std::abort();
}

void resolve_or_die(ObligationLedger* ledger, ObligationId id, Resolution resolution,
                    std::string_view token) {
  if (ledger == nullptr) return;
  absl::Status status = ledger->resolve(id, resolution);
  if (!status.ok()) {
    invariant_violated(absl::StrCat(
        "a live ", absl::string_view(token.data(), token.size()),
        "'s obligation is pending in its ledger until the token is "
        "consumed; resolving it as ",
        absl::string_view(resolution_name(resolution).data(), resolution_name(resolution).size()),
        " failed: ", status.ToString()));
  }
}

}  // namespace obligations_internal

namespace {

bool valid_kind(ObligationKind kind) {
  return kind == ObligationKind::kPermit || kind == ObligationKind::kLease;
}

bool valid_resolution(Resolution resolution) {
  switch (resolution) {
    case Resolution::kCommitted:
    case Resolution::kCompleted:
    case Resolution::kAborted:
    case Resolution::kLeaked:
      return true;
  }
  return false;
}

absl::string_view to_absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

std::string_view obligation_kind_name(ObligationKind kind) {
  switch (kind) {
    case ObligationKind::kPermit:
      return "permit";
    case ObligationKind::kLease:
      return "lease";
  }
  return "unknown";
}

std::string_view resolution_name(Resolution resolution) {
  switch (resolution) {
    case Resolution::kCommitted:
      return "committed";
    case Resolution::kCompleted:
      return "completed";
    case Resolution::kAborted:
      return "aborted";
    case Resolution::kLeaked:
      return "leaked";
  }
  return "unknown";
}

std::string_view leak_policy_name(LeakPolicy policy) {
  switch (policy) {
    case LeakPolicy::kPanic:
      return "panic";
    case LeakPolicy::kLog:
      return "log";
  }
  return "unknown";
}

std::string LeakReport::to_string() const {
  return absl::StrCat("obligation leaked: ", to_absl(obligation_kind_name(record.kind)), " '",
                      record.description, "' acquired at ", record.acquired_at.to_string(),
                      " in region ", region.to_string(),
                      " was dropped without send/commit, complete or abort; it was aborted");
}

ObligationDescription::ObligationDescription(std::string text)
    : owned_(new std::string(std::move(text))) {}

ObligationDescription& ObligationDescription::operator=(ObligationDescription&& other) noexcept {
  if (this != &other) {
    delete owned_;
    literal_ = other.literal_;
    count_ = other.count_;
    has_count_ = other.has_count_;
    owned_ = std::exchange(other.owned_, nullptr);
  }
  return *this;
}

ObligationDescription ObligationDescription::with_count_slow(uint64_t count) && {
  if (literal_ == nullptr) {
    if (owned_ == nullptr) owned_ = new std::string();
    absl::StrAppend(owned_, " (", count, ")");
  } else if (has_count_) {
    // A second count: spell the text out and append, as for an owned text.
    owned_ = new std::string(absl::StrCat(to_string(), " (", count, ")"));
    literal_ = nullptr;
    has_count_ = false;
  } else {
    count_ = count;
    has_count_ = true;
  }
  return std::move(*this);
}

std::string ObligationDescription::to_string() const {
  if (literal_ == nullptr) return owned_ == nullptr ? std::string() : *owned_;
  if (!has_count_) return std::string(literal_);
  return absl::StrCat(literal_, " (", count_, ")");
}

void ObligationLedger::SpinLock::lock_slow() noexcept {
  for (int spins = 0;; ++spins) {
    // Wait for the lock to look free before trying again (no cache-line ping-pong).
    while (locked_.load(std::memory_order_relaxed)) {
      if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        ++spins;
      } else {
        std::this_thread::yield();
      }
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

ObligationLedger::ObligationLedger(RegionId region, LeakPolicy policy,
                                   std::optional<size_t> max_pending)
    : region_(region), policy_(policy), max_pending_(max_pending) {}

ObligationLedger::ObligationLedger(RegionId region, LeakPolicy policy,
                                   std::optional<size_t> max_pending,
                                   std::function<void()> on_drained)
    : region_(region),
      policy_(policy),
      max_pending_(max_pending),
      on_drained_(std::move(on_drained)) {}

ObligationLedger::~ObligationLedger() {
  // No lock: a ledger being destroyed must not be used concurrently.
  const size_t pending = pending_count_.load(std::memory_order_relaxed);
  const uint64_t counted = counted_pending(counted_.load(std::memory_order_relaxed));
  if (pending == 0 && counted == 0) return;
  if (pending == 0) {
    obligations_internal::invariant_violated(absl::StrCat(
        "an ObligationLedger outlives every token that refers to it; the ledger of region ",
        region_.to_string(), " was destroyed with ", counted,
        " pending counted obligation(s) (semaphore permits, ...)"));
  }
  uint32_t oldest = kNoSlot;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].live && (oldest == kNoSlot || slots_[i].sequence < slots_[oldest].sequence)) {
      oldest = i;
    }
  }
  const ObligationRecord record = record_of(oldest);
  obligations_internal::invariant_violated(absl::StrCat(
      "an ObligationLedger outlives every token that refers to it; the ledger of region ",
      region_.to_string(), " was destroyed with ", pending + counted,
      " pending obligation(s), the oldest ", to_absl(obligation_kind_name(record.kind)), " '",
      record.description, "' acquired at ", record.acquired_at.to_string()));
}

ObligationRecord ObligationLedger::record_of(uint32_t index) const {
  const Slot& slot = slots_[index];
  return ObligationRecord{ObligationId(index, slot.generation), slot.kind,
                          slot.description.to_string(), slot.site};
}

absl::Status ObligationLedger::admission_error(ObligationKind kind,
                                               const ObligationDescription& description,
                                               SourceSite site, size_t pending) const {
  if (admission_closed_.load(std::memory_order_relaxed)) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", region_.to_string(), " is closing; it admits no new obligations"));
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("region ", region_.to_string(), " already has ", pending,
                   " pending obligations, its limit (max_obligations = ", *max_pending_,
                   "); cannot record ", to_absl(obligation_kind_name(kind)), " '",
                   description.to_string(), "' acquired at ", site.to_string()));
}

absl::StatusOr<ObligationId> ObligationLedger::record_general(ObligationKind kind,
                                                              ObligationDescription description,
                                                              SourceSite site) {
  if (!valid_kind(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("ObligationLedger::record: obligation kind ",
                                                   static_cast<int>(kind), " is not a kind"));
  }
  size_t refused_at;  // pending when refused: the message is formatted without the lock
  {
    std::lock_guard<SpinLock> lock(mu_);
    const size_t pending = pending_count_.load(std::memory_order_relaxed);
    const size_t total = pending + counted_pending(counted_.load(std::memory_order_relaxed));
    if (!admission_closed_.load(std::memory_order_relaxed) &&
        (!max_pending_.has_value() || total < *max_pending_)) {
      uint32_t index = free_head_;
      if (index == kNoSlot) {
        index = add_slot_locked();
      } else {
        free_head_ = slots_[index].next_free;
        ++slots_[index].generation;  // cannot wrap: a slot at the maximum generation is retired
      }
      Slot& slot = slots_[index];
      fill_locked(slot, kind, description, site);
      pending_count_.store(pending + 1, std::memory_order_release);
      return ObligationId(index, slot.generation);
    }
    refused_at = total;
  }
  return admission_error(kind, description, site, refused_at);
}

absl::Status ObligationLedger::record_counted_general(ObligationKind kind,
                                                      const ObligationDescription& description,
                                                      SourceSite site) {
  if (!valid_kind(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("ObligationLedger::record_counted: kind ",
                                                   static_cast<int>(kind), " is not a kind"));
  }
  size_t refused_at;
  {
    std::lock_guard<SpinLock> lock(mu_);
    // Under the lock nothing raises the count but this (with a limit, the fast path is not
    // taken), so the limit is exact; resolves may lower it meanwhile, hence the CAS.
    uint64_t word = counted_.load(std::memory_order_relaxed);
    while (true) {
      const size_t total = pending_count_.load(std::memory_order_relaxed) + counted_pending(word);
      if ((word & kCountedClosed) != 0 || (max_pending_.has_value() && total >= *max_pending_)) {
        refused_at = total;
        break;
      }
      if (counted_pending(word) == kCountedMaxPending) {
        obligations_internal::invariant_violated(
            "an ObligationLedger holds at most 2^31-1 counted obligations");
      }
      if (counted_.compare_exchange_weak(word, word + kCountedOne, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
        return absl::OkStatus();
      }
    }
  }
  return admission_error(kind, description, site, refused_at);
}

absl::Status ObligationLedger::leak_counted(ObligationKind kind,
                                            const ObligationDescription& description,
                                            SourceSite site) {
  const ObligationRecord record{ObligationId(), kind, description.to_string(), site};
  return resolve_counted_general(Resolution::kLeaked, &record);
}

absl::Status ObligationLedger::resolve_counted_general(Resolution resolution,
                                                       const ObligationRecord* leaked) {
  if (!valid_resolution(resolution) || (resolution == Resolution::kLeaked) != (leaked != nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ObligationLedger::resolve_counted: resolution ", static_cast<int>(resolution),
                     " is not a resolution (a leak is resolved with leak_counted)"));
  }
  std::function<void()> on_drained;
  std::optional<std::string> leak_message;
  {
    std::lock_guard<SpinLock> lock(mu_);
    uint64_t word = counted_.load(std::memory_order_relaxed);
    do {
      if (counted_pending(word) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("no counted obligation is pending in region ", region_.to_string(),
                         "; cannot resolve one as ", to_absl(resolution_name(resolution))));
      }
    } while (!counted_.compare_exchange_weak(word, word - kCountedOne, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
    count_resolution_locked(resolution);
    if (resolution == Resolution::kLeaked) leak_message = store_report_locked(*leaked);
    // Fold the completions counted in the word into completed_ (only done under the lock).
    if (const uint64_t folded = counted_.load(std::memory_order_relaxed) >> 32; folded != 0) {
      counted_.fetch_sub(folded << 32, std::memory_order_acq_rel);
      completed_.store(completed_.load(std::memory_order_relaxed) + folded,
                       std::memory_order_release);
    }
    // This was the last counted one of a closing ledger: the drain is seen here, once.
    if (counted_pending(word) == 1 && (word & kCountedClosed) != 0 &&
        pending_count_.load(std::memory_order_relaxed) == 0 && on_drained_) {
      on_drained = on_drained_;
    }
  }
  if (leak_message.has_value()) {
    std::fprintf(stderr, "asupersync: %s\n", leak_message->c_str());
    std::fflush(stderr);
  }
  if (on_drained) on_drained();  // last: the callback may destroy the ledger
  return absl::OkStatus();
}

uint64_t ObligationLedger::completed() const {
  std::lock_guard<SpinLock> lock(mu_);
  return completed_.load(std::memory_order_relaxed) +
         (counted_.load(std::memory_order_acquire) >> 32);
}

uint32_t ObligationLedger::add_slot_locked() {
  if (slots_.size() >= kNoSlot) {
    obligations_internal::invariant_violated("an ObligationLedger holds at most 2^32-1 slots");
  }
  const uint32_t index = static_cast<uint32_t>(slots_.size());
  slots_.emplace_back();
  slots_.back().generation = 1;
  return index;
}

absl::Status ObligationLedger::reject(ObligationId id, Resolution resolution) const {
  absl::string_view why;
  if (!id.is_valid()) {
    why = "the invalid id (generation 0) names no obligation";
  } else {
    why = "no live obligation has this id";
  }
  return absl::FailedPreconditionError(
      absl::StrCat("obligation ", id.to_string(), " is not pending in region ", region_.to_string(),
                   " (never recorded, already resolved, or stale); cannot resolve it as ",
                   to_absl(resolution_name(resolution)), ": ", why));
}

std::optional<std::string> ObligationLedger::store_report_locked(ObligationRecord record) {
  LeakReport report{std::move(record), region_};
  std::optional<std::string> message;
  if (policy_ == LeakPolicy::kLog) message = report.to_string();
  leaks_.push_back(std::move(report));
  return message;
}

absl::Status ObligationLedger::resolve_general(ObligationId id, Resolution resolution) {
  if (!valid_resolution(resolution)) {
    return absl::InvalidArgumentError(absl::StrCat("ObligationLedger::resolve(", id.to_string(),
                                                   "): resolution ", static_cast<int>(resolution),
                                                   " is not a resolution"));
  }
  std::function<void()> on_drained;
  std::optional<std::string> leak_message;
  std::unique_ptr<std::string> owned_description;  // freed after the lock is released
  {
    std::unique_lock<SpinLock> lock(mu_);
    const uint32_t index = id.index();
    if (!id.is_valid() || index >= slots_.size() || !slots_[index].live ||
        slots_[index].generation != id.generation()) {
      lock.unlock();
      return reject(id, resolution);
    }
    Slot& slot = slots_[index];
    count_resolution_locked(resolution);
    if (resolution == Resolution::kLeaked) leak_message = store_report_locked(record_of(index));
    slot.live = false;
    owned_description.reset(std::exchange(slot.description.owned_, nullptr));
    // A slot whose generation cannot be bumped again is retired rather than reused.
    if (slot.generation != ~uint32_t{0}) {
      slot.next_free = free_head_;
      free_head_ = index;
    }
    const size_t pending = pending_count_.load(std::memory_order_relaxed) - 1;
    pending_count_.store(pending, std::memory_order_release);
    if (pending == 0 && counted_pending(counted_.load(std::memory_order_relaxed)) == 0 &&
        admission_closed_.load(std::memory_order_relaxed) && on_drained_) {
      on_drained = on_drained_;
    }
  }
  // Lock released: printing and the callback may take their time or call back into the ledger.
  if (leak_message.has_value()) {
    std::fprintf(stderr, "asupersync: %s\n", leak_message->c_str());
    std::fflush(stderr);
  }
  // Last: the callback may destroy the ledger.
  if (on_drained) on_drained();
  return absl::OkStatus();
}

bool ObligationLedger::close_admission() {
  std::lock_guard<SpinLock> lock(mu_);
  admission_closed_.store(true, std::memory_order_release);
  const uint64_t word = counted_.fetch_or(kCountedClosed, std::memory_order_acq_rel);
  return pending_count_.load(std::memory_order_relaxed) == 0 && counted_pending(word) == 0;
}

std::vector<ObligationRecord> ObligationLedger::pending_records() const {
  std::vector<std::pair<uint64_t, uint32_t>> order;  // (sequence, index)
  std::vector<ObligationRecord> records;
  std::lock_guard<SpinLock> lock(mu_);
  order.reserve(pending_count_.load(std::memory_order_relaxed));
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].live) order.emplace_back(slots_[i].sequence, i);
  }
  std::sort(order.begin(), order.end());
  records.reserve(order.size());
  for (const auto& [sequence, index] : order) records.push_back(record_of(index));
  return records;
}

std::vector<LeakReport> ObligationLedger::leaks() const {
  std::lock_guard<SpinLock> lock(mu_);
  return leaks_;
}

void ObligationLedger::set_on_drained(std::function<void()> on_drained) {
  std::function<void()> previous;  // destroyed after the lock is released
  std::lock_guard<SpinLock> lock(mu_);
  previous = std::exchange(on_drained_, std::move(on_drained));
}

}  // namespace asupersync
