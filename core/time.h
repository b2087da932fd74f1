// Copyright The Asupersync Authors.
//
// core/time.h: `Duration` and `Time`, the runtime's notion of time (SPEC 1.1).
//
// `Duration` is a signed span of nanoseconds held in an int64. `Time` is an instant, counted in
// nanoseconds since the runtime's epoch: a monotonic clock in production, virtual time in the lab.
// Neither type ever reads a clock; whoever owns the runtime supplies `now`.
//
// Arithmetic never has undefined behaviour. Every operation saturates to the int64 range, and
// `Infinite()` (int64 max) is the saturation point at the top: a `Time::Infinite()` deadline means
// "never", a `Duration::Infinite()` timeout means "unbounded". Infinity is absorbing on the left:
// `Infinite() + d` and `Infinite() - d` stay `Infinite()` for every finite `d`, and so does
// anything plus `Infinite()`. `x - x` is `Zero()` for every `x`, including infinities. There is
// no negative infinity: subtracting `Infinite()` from a finite value just saturates.
//
// Thread-safety: both are trivially copyable values; concurrent reads are safe, as for an int64.

#ifndef ASUPERSYNC_CORE_TIME_H_
#define ASUPERSYNC_CORE_TIME_H_

#include <compare>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <utility>

namespace asupersync {

namespace time_internal {

inline constexpr int64_t kMaxNanos = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kMinNanos = std::numeric_limits<int64_t>::min();

constexpr int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t result = 0;
  if (__builtin_add_overflow(a, b, &result)) return b > 0 ? kMaxNanos : kMinNanos;
  return result;
}

constexpr int64_t SaturatingSub(int64_t a, int64_t b) {
  int64_t result = 0;
  if (__builtin_sub_overflow(a, b, &result)) return b < 0 ? kMaxNanos : kMinNanos;
  return result;
}

constexpr int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t result = 0;
  if (__builtin_mul_overflow(a, b, &result)) return (a < 0) != (b < 0) ? kMinNanos : kMaxNanos;
  return result;
}

// Formats a nanosecond count with the largest unit (ns, us, ms, s) not exceeding it, exactly
// (no floating point): 1500000 -> "1.5ms", 999 -> "999ns", 0 -> "0s".
inline std::string FormatNanos(int64_t nanos) {
  if (nanos == 0) return "0s";
  std::string out;
  uint64_t magnitude = static_cast<uint64_t>(nanos);
  if (nanos < 0) {
    out = "-";
    magnitude = uint64_t{0} - magnitude;
  }
  uint64_t scale = 1;
  int frac_digits = 0;
  const char* suffix = "ns";
  if (magnitude >= 1'000'000'000) {
    scale = 1'000'000'000;
    frac_digits = 9;
    suffix = "s";
  } else if (magnitude >= 1'000'000) {
    scale = 1'000'000;
    frac_digits = 6;
    suffix = "ms";
  } else if (magnitude >= 1'000) {
    scale = 1'000;
    frac_digits = 3;
    suffix = "us";
  }
  out += std::to_string(magnitude / scale);
  uint64_t frac = magnitude % scale;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, static_cast<size_t>(frac_digits) - digits.size(), '0');
    while (digits.back() == '0') digits.pop_back();
    out += '.';
    out += digits;
  }
  out += suffix;
  return out;
}

}  // namespace time_internal

// A signed span of time with nanosecond resolution. The default value is `Zero()`.
class Duration {
 public:
  constexpr Duration() = default;

  static constexpr Duration Nanoseconds(int64_t n) { return Duration(n); }
  static constexpr Duration Microseconds(int64_t us) {
    return Duration(time_internal::SaturatingMul(us, 1'000));
  }
  static constexpr Duration Milliseconds(int64_t ms) {
    return Duration(time_internal::SaturatingMul(ms, 1'000'000));
  }
  static constexpr Duration Seconds(int64_t s) {
    return Duration(time_internal::SaturatingMul(s, 1'000'000'000));
  }
  static constexpr Duration Zero() { return Duration(0); }
  // The unbounded duration, int64 max nanoseconds (about 292 years).
  static constexpr Duration Infinite() { return Duration(time_internal::kMaxNanos); }

  constexpr int64_t nanoseconds() const { return nanos_; }
  constexpr bool is_infinite() const { return nanos_ == time_internal::kMaxNanos; }

  friend constexpr bool operator==(Duration, Duration) = default;
  friend constexpr std::strong_ordering operator<=>(Duration, Duration) = default;

  friend constexpr Duration operator+(Duration a, Duration b) {
    if (a.is_infinite() || b.is_infinite()) return Infinite();
    return Duration(time_internal::SaturatingAdd(a.nanos_, b.nanos_));
  }
  friend constexpr Duration operator-(Duration a, Duration b) {
    if (a.is_infinite()) return b.is_infinite() ? Zero() : Infinite();
    return Duration(time_internal::SaturatingSub(a.nanos_, b.nanos_));
  }
  // Negation saturates: -Nanoseconds(int64 min) is Infinite().
  friend constexpr Duration operator-(Duration d) {
    return Duration(time_internal::SaturatingSub(0, d.nanos_));
  }
  friend constexpr Duration operator*(Duration d, int64_t k) {
    return Duration(time_internal::SaturatingMul(d.nanos_, k));
  }
  friend constexpr Duration operator*(int64_t k, Duration d) { return d * k; }

  constexpr Duration& operator+=(Duration d) { return *this = *this + d; }
  constexpr Duration& operator-=(Duration d) { return *this = *this - d; }
  constexpr Duration& operator*=(int64_t k) { return *this = *this * k; }

  // "1.5ms", "250us", "3s", "-2ns", "0s"; "inf" for Infinite().
  std::string to_string() const {
    return is_infinite() ? std::string("inf") : time_internal::FormatNanos(nanos_);
  }

  template <typename H>
  friend H AbslHashValue(H h, Duration d) {
    return H::combine(std::move(h), d.nanos_);
  }
  friend std::ostream& operator<<(std::ostream& os, Duration d) { return os << d.to_string(); }

 private:
  constexpr explicit Duration(int64_t nanos) : nanos_(nanos) {}

  int64_t nanos_ = 0;
};

// An instant: nanoseconds since the runtime's epoch. The default value is `Epoch()`.
class Time {
 public:
  constexpr Time() = default;

  static constexpr Time FromNanoseconds(int64_t nanos) { return Time(nanos); }
  static constexpr Time Epoch() { return Time(0); }
  // "Never": later than every other instant.
  static constexpr Time Infinite() { return Time(time_internal::kMaxNanos); }

  constexpr int64_t nanoseconds() const { return nanos_; }
  constexpr bool is_infinite() const { return nanos_ == time_internal::kMaxNanos; }
  // The span since the epoch (Infinite() for Time::Infinite()).
  constexpr Duration since_epoch() const { return Duration::Nanoseconds(nanos_); }

  friend constexpr bool operator==(Time, Time) = default;
  friend constexpr std::strong_ordering operator<=>(Time, Time) = default;

  friend constexpr Time operator+(Time t, Duration d) {
    if (t.is_infinite() || d.is_infinite()) return Infinite();
    return Time(time_internal::SaturatingAdd(t.nanos_, d.nanoseconds()));
  }
  friend constexpr Time operator+(Duration d, Time t) { return t + d; }
  friend constexpr Time operator-(Time t, Duration d) {
    if (t.is_infinite()) return Infinite();
    return Time(time_internal::SaturatingSub(t.nanos_, d.nanoseconds()));
  }
  // The span from `b` to `a`. Infinite() - finite is Duration::Infinite().
  friend constexpr Duration operator-(Time a, Time b) {
    if (a.is_infinite()) return b.is_infinite() ? Duration::Zero() : Duration::Infinite();
    return Duration::Nanoseconds(time_internal::SaturatingSub(a.nanos_, b.nanos_));
  }

  constexpr Time& operator+=(Duration d) { return *this = *this + d; }
  constexpr Time& operator-=(Duration d) { return *this = *this - d; }

  // The offset from the epoch in Duration's format ("12ms"); "inf" for Infinite().
  std::string to_string() const {
    return is_infinite() ? std::string("inf") : time_internal::FormatNanos(nanos_);
  }

  template <typename H>
  friend H AbslHashValue(H h, Time t) {
    return H::combine(std::move(h), t.nanos_);
  }
  friend std::ostream& operator<<(std::ostream& os, Time t) { return os << t.to_string(); }

 private:
  constexpr explicit Time(int64_t nanos) : nanos_(nanos) {}

  int64_t nanos_ = 0;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_TIME_H_
