// Copyright The Asupersync Authors.
//
// core/id.h: generational identifiers for tasks, regions and obligations (SPEC 1.6).
//
// A `GenerationalId<Tag>` names a slot (`index`) in a `GenerationalArena`
// (core/generational_arena.h) together with the slot's `generation` at the time the id was issued.
// When the slot is freed and reused, its generation moves on, so an old id stops resolving instead
// of silently naming the new occupant. The `Tag` keeps ids of different kinds from being mixed up
// at compile time.
//
// Generation 0 is never issued: a default-constructed id (0#0) is invalid and resolves to
// nothing. `is_valid()` only says the id could have been issued; whether it is still live is a
// question for the arena that issued it.
//
// Ids order by (index, generation), which is deterministic and independent of addresses, so they
// are usable as keys in ordered containers and in the lab's replayable traces. They hash with
// absl::Hash.
//
// Thread-safety: trivially copyable values.

#ifndef ASUPERSYNC_CORE_ID_H_
#define ASUPERSYNC_CORE_ID_H_

#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>

namespace asupersync {

template <typename Tag>
class GenerationalId {
 public:
  // The invalid id, 0#0.
  constexpr GenerationalId() = default;
  // An id with the given parts. Arenas issue ids; building one by hand is for tests and for
  // decoding (a hand-built id that the arena did not issue is simply rejected by it).
  constexpr GenerationalId(uint32_t index, uint32_t generation)
      : index_(index), generation_(generation) {}

  constexpr uint32_t index() const { return index_; }
  constexpr uint32_t generation() const { return generation_; }
  // False only for ids with generation 0, which no arena issues (e.g. default-constructed ones).
  constexpr bool is_valid() const { return generation_ != 0; }

  friend constexpr bool operator==(GenerationalId, GenerationalId) = default;
  // Orders by index, then generation.
  friend constexpr std::strong_ordering operator<=>(GenerationalId, GenerationalId) = default;

  // "index#generation", e.g. "3#1".
  std::string to_string() const {
    return std::to_string(index_) + "#" + std::to_string(generation_);
  }

  template <typename H>
  friend H AbslHashValue(H h, GenerationalId id) {
    return H::combine(std::move(h), id.index_, id.generation_);
  }
  friend std::ostream& operator<<(std::ostream& os, GenerationalId id) {
    return os << id.to_string();
  }

 private:
  uint32_t index_ = 0;
  uint32_t generation_ = 0;
};

struct TaskTag;
struct RegionTag;
struct ObligationTag;

using TaskId = GenerationalId<TaskTag>;
using RegionId = GenerationalId<RegionTag>;
using ObligationId = GenerationalId<ObligationTag>;

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_ID_H_
