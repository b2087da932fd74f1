// Copyright The Asupersync Authors.

#include "obligations/lease.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace asupersync {

Lease::Lease(LeaseHolder* holder, ObligationLedger* ledger, ObligationId id, Time expires_at)
    : holder_(holder), ledger_(ledger), id_(id), expires_at_(expires_at) {
  if (holder_ == nullptr) {
    obligations_internal::invariant_violated(
        "a Lease is built from a non-null LeaseHolder (a default-constructed Lease is the empty "
        "one)");
  }
}

Lease::Lease(Lease&& other) noexcept
    : holder_(std::exchange(other.holder_, nullptr)),
      ledger_(std::exchange(other.ledger_, nullptr)),
      id_(std::exchange(other.id_, ObligationId())),
      expires_at_(std::exchange(other.expires_at_, Time::Epoch())) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (holder_ != nullptr) finish(false, Resolution::kLeaked);
    holder_ = std::exchange(other.holder_, nullptr);
    ledger_ = std::exchange(other.ledger_, nullptr);
    id_ = std::exchange(other.id_, ObligationId());
    expires_at_ = std::exchange(other.expires_at_, Time::Epoch());
  }
  return *this;
}

Lease::~Lease() {
  if (holder_ != nullptr) finish(false, Resolution::kLeaked);
}

absl::Status Lease::renew(Time new_expiry) {
  if (holder_ == nullptr) {
    return absl::FailedPreconditionError("Lease::renew on an empty (moved-from or consumed) lease");
  }
  if (new_expiry < expires_at_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Lease::renew(", new_expiry.to_string(), ") of obligation ", id_.to_string(),
                     " would move its expiry backwards from ", expires_at_.to_string(),
                     "; a renewal never shortens a lease"));
  }
  expires_at_ = new_expiry;
  return absl::OkStatus();
}

void Lease::complete() && {
  if (holder_ == nullptr) {
    obligations_internal::invariant_violated(
        "Lease::complete on an empty (moved-from or consumed) lease");
  }
  finish(true, Resolution::kCompleted);
}

void Lease::abort() && {
  if (holder_ == nullptr) {
    obligations_internal::invariant_violated(
        "Lease::abort on an empty (moved-from or consumed) lease");
  }
  finish(false, Resolution::kAborted);
}

void Lease::finish(bool completed, Resolution resolution) noexcept {
  LeaseHolder* holder = std::exchange(holder_, nullptr);
  ObligationLedger* ledger = std::exchange(ledger_, nullptr);
  const ObligationId id = std::exchange(id_, ObligationId());
  expires_at_ = Time::Epoch();
  holder->on_release(completed);
  obligations_internal::resolve_or_die(ledger, id, resolution, "Lease");
}

}  // namespace asupersync
