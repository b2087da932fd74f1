// Copyright The Asupersync Authors.

#include "obligations/ledger.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

ObligationLedger::ObligationLedger(RegionId region, LeakPolicy policy,
                                   std::optional<size_t> max_pending)
    : region_(region), policy_(policy), max_pending_(max_pending) {}

ObligationLedger::~ObligationLedger() {
  // No lock: a ledger being destroyed must not be used concurrently.
  if (entries_.empty()) return;
  const Entry* oldest = nullptr;
  entries_.for_each([&oldest](ObligationId, const Entry& entry) {
    if (oldest == nullptr || entry.sequence < oldest->sequence) oldest = &entry;
  });
  obligations_internal::invariant_violated(absl::StrCat(
      "an ObligationLedger outlives every token that refers to it; the ledger of region ",
      region_.to_string(), " was destroyed with ", entries_.size(),
      " pending obligation(s), the oldest ", to_absl(obligation_kind_name(oldest->record.kind)),
      " '", oldest->record.description, "' acquired at ", oldest->record.acquired_at.to_string()));
}

absl::StatusOr<ObligationId> ObligationLedger::record(ObligationKind kind, std::string description,
                                                      SourceSite site) {
  if (!valid_kind(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("ObligationLedger::record: obligation kind ",
                                                   static_cast<int>(kind), " is not a kind"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (admission_closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", region_.to_string(), " is closing; it admits no new obligations"));
  }
  if (max_pending_.has_value() && entries_.size() >= *max_pending_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("region ", region_.to_string(), " already has ", entries_.size(),
                     " pending obligations, its limit (max_obligations = ", *max_pending_,
                     "); cannot record ", to_absl(obligation_kind_name(kind)), " '", description,
                     "' acquired at ", site.to_string()));
  }
  const ObligationId id = entries_.insert(Entry{
      ObligationRecord{ObligationId(), kind, std::move(description), site}, next_sequence_++});
  Entry* entry = entries_.get(id);
  if (entry == nullptr) {
    obligations_internal::invariant_violated(
        "GenerationalArena::get resolves the id that insert just returned");
  }
  entry->record.id = id;
  pending_count_.store(entries_.size(), std::memory_order_release);
  return id;
}

absl::Status ObligationLedger::resolve(ObligationId id, Resolution resolution) {
  if (!valid_resolution(resolution)) {
    return absl::InvalidArgumentError(absl::StrCat("ObligationLedger::resolve(", id.to_string(),
                                                   "): resolution ", static_cast<int>(resolution),
                                                   " is not a resolution"));
  }
  std::function<void()> on_drained;
  std::optional<std::string> leak_message;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<Entry> removed = entries_.remove(id);
    if (!removed.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "obligation ", id.to_string(), " is not pending in region ", region_.to_string(),
          " (never recorded, already resolved, or stale); cannot resolve it as ",
          to_absl(resolution_name(resolution)), ": ", removed.status().message()));
    }
    pending_count_.store(entries_.size(), std::memory_order_release);
    switch (resolution) {
      case Resolution::kCommitted:
        ++committed_;
        break;
      case Resolution::kCompleted:
        ++completed_;
        break;
      case Resolution::kAborted:
        ++aborted_;
        break;
      case Resolution::kLeaked: {
        leaked_.fetch_add(1, std::memory_order_release);
        LeakReport report{std::move(removed->record), region_};
        if (policy_ == LeakPolicy::kLog) leak_message = report.to_string();
        leaks_.push_back(std::move(report));
        break;
      }
    }
    if (admission_closed_ && entries_.empty()) on_drained = on_drained_;
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
  std::lock_guard<std::mutex> lock(mu_);
  admission_closed_ = true;
  return entries_.empty();
}

bool ObligationLedger::admission_closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return admission_closed_;
}

std::vector<ObligationRecord> ObligationLedger::pending_records() const {
  std::vector<const Entry*> entries;
  std::vector<ObligationRecord> records;
  std::lock_guard<std::mutex> lock(mu_);
  entries.reserve(entries_.size());
  entries_.for_each([&entries](ObligationId, const Entry& entry) { entries.push_back(&entry); });
  std::sort(entries.begin(), entries.end(),
            [](const Entry* a, const Entry* b) { return a->sequence < b->sequence; });
  records.reserve(entries.size());
  for (const Entry* entry : entries) records.push_back(entry->record);
  return records;
}

std::vector<LeakReport> ObligationLedger::leaks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leaks_;
}

void ObligationLedger::set_on_drained(std::function<void()> on_drained) {
  std::function<void()> previous;  // destroyed after the lock is released
  std::lock_guard<std::mutex> lock(mu_);
  previous = std::exchange(on_drained_, std::move(on_drained));
}

uint64_t ObligationLedger::committed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return committed_;
}

uint64_t ObligationLedger::completed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return completed_;
}

uint64_t ObligationLedger::aborted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return aborted_;
}

}  // namespace asupersync
