// Copyright The Asupersync Authors.
//
// core/outcome.h: `Outcome<T>`, how a task, region or combinator finished (SPEC 1.3).
//
// An `Outcome<T>` is in exactly one of four states, ordered by severity:
//   Ok(T) < Err(absl::Status) < Cancelled(CancelReason) < Panicked(PanicInfo).
// `Err` is an ordinary, expected failure; `Cancelled` means the work was stopped by the
// cancellation protocol; `Panicked` means an exception escaped the task body. `join` combines two
// outcomes (e.g. a region's body and its children) by keeping the more severe one.
//
// `Outcome<void>` has the same four states with no value: `Ok()` and a `value()` that only checks
// the state. `T` may be move-only (e.g. std::unique_ptr<int>); `T` must not be a reference.
//
// Accessors of the wrong state (`value()` on a non-Ok outcome, `cancel_reason()` on a
// non-Cancelled one, ...) are invariant violations: they abort with a message naming the
// accessor and the actual state. Check `kind()` (or `ok()`, `is_err()`, ...) first, or use
// `to_status()`, which is defined for every state.
//
// Thread-safety: a value type, as thread-safe as `T` (const access from several threads is safe
// when it is for `T`). Lifetime: `value()` and the other accessors return references into the
// outcome, valid while it lives and is not assigned to.

#ifndef ASUPERSYNC_CORE_OUTCOME_H_
#define ASUPERSYNC_CORE_OUTCOME_H_

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/cancel_reason.h"

namespace asupersync {

// What a panicked task left behind: the exception that escaped it and a description.
struct PanicInfo {
  std::exception_ptr exception;
  // what() for a std::exception, "unknown exception" for anything else.
  std::string message;

  // Captures the exception being handled. Call it inside a catch block; called with no exception
  // in flight it returns a null `exception` and a message saying so (it does not abort).
  static PanicInfo from_current_exception() {
    std::exception_ptr current = std::current_exception();
    if (current == nullptr) {
      return PanicInfo{nullptr,
                       "PanicInfo::from_current_exception() called with no exception in flight"};
    }
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      return PanicInfo{current, e.what()};
    } catch (...) {
      return PanicInfo{current, "unknown exception"};
    }
  }

  friend bool operator==(const PanicInfo&, const PanicInfo&) = default;
};

// The state of an Outcome; the enumerator order is the severity order.
enum class OutcomeKind : uint8_t { kOk, kErr, kCancelled, kPanicked };

// SPEC 1.3: Ok 0 < Err 1 < Cancelled 2 < Panicked 3.
constexpr int severity(OutcomeKind kind) { return static_cast<int>(kind); }

// "Ok", "Err", "Cancelled", "Panicked" ("InvalidOutcomeKind" for a value outside the enum).
constexpr absl::string_view outcome_kind_name(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kOk:
      return "Ok";
    case OutcomeKind::kErr:
      return "Err";
    case OutcomeKind::kCancelled:
      return "Cancelled";
    case OutcomeKind::kPanicked:
      return "Panicked";
  }
  return "InvalidOutcomeKind";
}

inline std::ostream& operator<<(std::ostream& os, OutcomeKind kind) {
  return os << outcome_kind_name(kind);
}

namespace outcome_internal {

// The argument type of `Outcome<void>::Ok` if it had one; the overload is constrained away.
struct NoValue {};

template <typename T>
struct ValueTraits {
  using Stored = T;
  using Param = T;
  using Ref = T&;
  using ConstRef = const T&;
  using RvalueRef = T&&;
};

template <>
struct ValueTraits<void> {
  using Stored = std::monostate;
  using Param = NoValue;
  using Ref = void;
  using ConstRef = void;
  using RvalueRef = void;
};

template <typename T>
concept Streamable = requires(std::ostream& os, const T& v) {
  os << v;
};

[[noreturn]] inline void InvariantViolated(absl::string_view accessor, absl::string_view required,
                                           const std::string& actual) {
  std::fprintf(stderr,
               "asupersync: invariant violated: Outcome::%.*s requires state %.*s, but the "
               "outcome is %s\n",
               static_cast<int>(accessor.size()), accessor.data(),
               static_cast<int>(required.size()), required.data(), actual.c_str());
  std::fflush(stderr);
  std::abort();
}

// Out of line and cold: the valueless check is on every inlined state test, and a call with no
// arguments keeps those tests small enough to inline.
[[noreturn, gnu::cold, gnu::noinline]] inline void ValuelessOutcome() {
  InvariantViolated("kind()", "any", "valueless (an assignment threw)");
}

}  // namespace outcome_internal

template <typename T>
class Outcome {
  static_assert(!std::is_reference_v<T>, "Outcome<T> cannot hold a reference");

  using Traits = outcome_internal::ValueTraits<T>;
  using Stored = typename Traits::Stored;

 public:
  using value_type = T;

  // Ok(value). For Outcome<void>: `Ok()`.
  static Outcome Ok(typename Traits::Param value) requires(!std::is_void_v<T>) {
    return Outcome(std::in_place_index<0>, std::move(value));
  }
  static Outcome Ok() requires(std::is_void_v<T>) { return Outcome(std::in_place_index<0>); }
  // Err(status). An OK `status` is a bug in the caller; it becomes an Internal error (never an
  // Ok outcome).
  static Outcome Err(absl::Status status) {
    if (status.ok()) status = absl::InternalError("Outcome::Err built from an OK status");
    return Outcome(std::in_place_index<1>, std::move(status));
  }
  static Outcome Cancelled(CancelReason reason) {
    return Outcome(std::in_place_index<2>, std::move(reason));
  }
  static Outcome Panicked(PanicInfo info) {
    return Outcome(std::in_place_index<3>, std::move(info));
  }

  Outcome(const Outcome&) = default;
  Outcome& operator=(const Outcome&) = default;
  Outcome(Outcome&&) = default;
  Outcome& operator=(Outcome&&) = default;

  // Always inlined: ok() and the other tests are on every task's completion path.
  [[gnu::always_inline]] OutcomeKind kind() const {
    if (rep_.valueless_by_exception()) [[unlikely]]
      outcome_internal::ValuelessOutcome();
    return static_cast<OutcomeKind>(rep_.index());
  }
  [[gnu::always_inline]] bool ok() const { return kind() == OutcomeKind::kOk; }
  [[gnu::always_inline]] bool is_err() const { return kind() == OutcomeKind::kErr; }
  [[gnu::always_inline]] bool is_cancelled() const { return kind() == OutcomeKind::kCancelled; }
  [[gnu::always_inline]] bool is_panicked() const { return kind() == OutcomeKind::kPanicked; }

  // The Ok value (nothing for Outcome<void>, which only checks). Aborts unless Ok.
  typename Traits::Ref value() & {
    Require(OutcomeKind::kOk, "value()");
    if constexpr (!std::is_void_v<T>) return std::get<0>(rep_);
  }
  typename Traits::ConstRef value() const& {
    Require(OutcomeKind::kOk, "value()");
    if constexpr (!std::is_void_v<T>) return std::get<0>(rep_);
  }
  typename Traits::RvalueRef value() && {
    Require(OutcomeKind::kOk, "value()");
    if constexpr (!std::is_void_v<T>) return std::get<0>(std::move(rep_));
  }

  // The status of a non-Ok outcome: the Err status itself, or what to_status() gives for
  // Cancelled and Panicked; OkStatus() for Ok (as absl::StatusOr does).
  absl::Status status() const { return to_status(); }
  // The reason of a Cancelled outcome. Aborts unless Cancelled.
  const CancelReason& cancel_reason() const {
    Require(OutcomeKind::kCancelled, "cancel_reason()");
    return std::get<2>(rep_);
  }
  // The panic of a Panicked outcome. Aborts unless Panicked.
  const PanicInfo& panic_info() const {
    Require(OutcomeKind::kPanicked, "panic_info()");
    return std::get<3>(rep_);
  }

  // Ok -> OkStatus(); Err -> its status; Cancelled -> CancelledError(reason.to_string());
  // Panicked -> InternalError("task panicked: " + message).
  absl::Status to_status() const {
    switch (kind()) {
      case OutcomeKind::kOk:
        return absl::OkStatus();
      case OutcomeKind::kErr:
        return std::get<1>(rep_);
      case OutcomeKind::kCancelled:
        return absl::CancelledError(std::get<2>(rep_).to_string());
      case OutcomeKind::kPanicked:
        return absl::InternalError(absl::StrCat("task panicked: ", std::get<3>(rep_).message));
    }
    return absl::InternalError("Outcome: invalid state");  // Unreachable: kind() checks.
  }

  // The same non-Ok state as an Outcome<U> (for propagating a failure across value types).
  // Aborts if Ok.
  template <typename U>
  Outcome<U> convert_error() const {
    switch (kind()) {
      case OutcomeKind::kErr:
        return Outcome<U>::Err(std::get<1>(rep_));
      case OutcomeKind::kCancelled:
        return Outcome<U>::Cancelled(std::get<2>(rep_));
      case OutcomeKind::kPanicked:
        return Outcome<U>::Panicked(std::get<3>(rep_));
      case OutcomeKind::kOk:
        break;
    }
    outcome_internal::InvariantViolated("convert_error()", "Err, Cancelled or Panicked",
                                        to_string());
  }

  // The same state without the value (Ok(v) -> Ok()).
  Outcome<void> discard_value() const {
    if (ok()) return Outcome<void>::Ok();
    return convert_error<void>();
  }

  // "Ok(42)" (the value is printed if it has operator<<, else "Ok(...)"; "Ok()" for void),
  // "Err(NOT_FOUND: no such key)", "Cancelled(<reason>)", "Panicked(<message>)".
  std::string to_string() const {
    switch (kind()) {
      case OutcomeKind::kOk:
        if constexpr (std::is_void_v<T>) {
          return "Ok()";
        } else if constexpr (outcome_internal::Streamable<T>) {
          std::ostringstream os;
          os << std::boolalpha << std::get<0>(rep_);
          return absl::StrCat("Ok(", os.str(), ")");
        } else {
          return "Ok(...)";
        }
      case OutcomeKind::kErr:
        return absl::StrCat("Err(", std::get<1>(rep_).ToString(), ")");
      case OutcomeKind::kCancelled:
        return absl::StrCat("Cancelled(", std::get<2>(rep_).to_string(), ")");
      case OutcomeKind::kPanicked:
        return absl::StrCat("Panicked(", std::get<3>(rep_).message, ")");
    }
    return "InvalidOutcome";  // Unreachable: kind() checks.
  }

  // Same state and equal payload. Needs T (if any) to be equality-comparable.
  friend bool operator==(const Outcome& a,
                         const Outcome& b) requires(std::equality_comparable<Stored>) {
    return a.rep_ == b.rep_;
  }

  friend std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    return os << o.to_string();
  }

 private:
  template <size_t I, typename... Args>
  explicit Outcome(std::in_place_index_t<I> index, Args&&... args)
      : rep_(index, std::forward<Args>(args)...) {}

  void Require(OutcomeKind required, absl::string_view accessor) const {
    if (kind() != required) {
      outcome_internal::InvariantViolated(accessor, outcome_kind_name(required), to_string());
    }
  }

  std::variant<Stored, absl::Status, CancelReason, PanicInfo> rep_;
};

// SPEC 1.3: the more severe of `a` and `b`; on equal severity `a`, except that two Cancelled
// outcomes join to Cancelled(strengthen(a's reason, b's reason)).
template <typename T>
Outcome<T> join(Outcome<T> a, Outcome<T> b) {
  if (a.is_cancelled() && b.is_cancelled()) {
    return Outcome<T>::Cancelled(strengthen(a.cancel_reason(), b.cancel_reason()));
  }
  if (severity(b.kind()) > severity(a.kind())) return b;
  return a;
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_OUTCOME_H_
