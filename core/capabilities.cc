#include "core/capabilities.h"

namespace asupersync {

std::string_view capability_name(Capability capability) {
  switch (capability) {
    case Capability::kSpawn:
      return "Spawn";
    case Capability::kTime:
      return "Time";
    case Capability::kIo:
      return "Io";
    case Capability::kRandom:
      return "Random";
    case Capability::kBlocking:
      return "Blocking";
  }
  return "Unknown";
}

std::string Capabilities::to_string() const {
  std::string out;
  for (Capability capability : {Capability::kSpawn, Capability::kTime, Capability::kIo,
                                Capability::kRandom, Capability::kBlocking}) {
    if (!has(capability)) continue;
    if (!out.empty()) out += "|";
    out += capability_name(capability);
  }
  return out.empty() ? "none" : out;
}

}  // namespace asupersync
