// Capabilities: what a task's context allows it to do (SPEC 2.4).
//
// A Cx carries a set of capabilities: Spawn (start tasks), Time (sleep, timers, now), Io
// (sockets, DNS), Random (entropy) and Blocking (the blocking pool). A child inherits its
// parent's set unless narrowed; narrowing only ever removes capabilities.
//
// Thread-safety: a value type. Cancellation contract: none (no waits).

#ifndef ASUPERSYNC_CORE_CAPABILITIES_H_
#define ASUPERSYNC_CORE_CAPABILITIES_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace asupersync {

enum class Capability : uint8_t {
  kSpawn = 1 << 0,
  kTime = 1 << 1,
  kIo = 1 << 2,
  kRandom = 1 << 3,
  kBlocking = 1 << 4,
};

std::string_view capability_name(Capability capability);

class Capabilities {
 public:
  constexpr Capabilities() = default;
  constexpr explicit Capabilities(uint8_t bits) : bits_(bits & kAllBits) {}
  constexpr Capabilities(Capability capability)  // NOLINT: implicit by design
      : bits_(static_cast<uint8_t>(capability)) {}

  static constexpr Capabilities All() { return Capabilities(kAllBits); }
  static constexpr Capabilities None() { return Capabilities(0); }

  constexpr bool has(Capability capability) const {
    return (bits_ & static_cast<uint8_t>(capability)) != 0;
  }
  constexpr bool contains(Capabilities other) const { return (bits_ & other.bits_) == other.bits_; }
  // Intersection: what narrowing to `other` leaves.
  constexpr Capabilities intersect(Capabilities other) const {
    return Capabilities(static_cast<uint8_t>(bits_ & other.bits_));
  }
  constexpr uint8_t bits() const { return bits_; }
  constexpr bool operator==(const Capabilities&) const = default;

  friend constexpr Capabilities operator|(Capabilities a, Capabilities b) {
    return Capabilities(static_cast<uint8_t>(a.bits_ | b.bits_));
  }

  // "Spawn|Time", or "none".
  std::string to_string() const;

 private:
  static constexpr uint8_t kAllBits = 0x1f;
  uint8_t bits_ = 0;
};

constexpr Capabilities operator|(Capability a, Capability b) {
  return Capabilities(a) | Capabilities(b);
}

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_CAPABILITIES_H_
