// Copyright The Asupersync Authors.
//
// core/generational_arena.h: a slot map that hands out `GenerationalId`s (SPEC 1.6).
//
// `GenerationalArena<Tag, T>` stores values of type `T` in a vector of slots and names each one
// by a `GenerationalId<Tag>` (core/id.h). A freed slot is reused by a later `insert`, with its
// generation bumped, so an id issued for the old occupant never resolves to the new one: `get`
// returns nullptr for it and `remove` returns an error. Ids that were never issued (a default id,
// an index past the end, a generation the slot has not reached) are rejected the same way. A slot
// whose generation would wrap around is retired instead of reused.
//
// Determinism: ids depend only on the sequence of inserts and removes (freed slots are reused
// last-freed first), and `for_each` visits live entries in index order, so a lab run that
// replays the same operations sees the same ids in the same order.
//
// Thread-safety: not thread-safe. An arena is owned by one thread (or guarded by its owner's
// lock); concurrent const calls are safe.
//
// Lifetime: `get` returns a pointer into the arena. It stays valid until the entry is removed or
// the arena is destroyed, and is invalidated by any `insert` (the slot vector may grow). `for_each`
// must not insert or remove (that would invalidate the iteration); doing so aborts.

#ifndef ASUPERSYNC_CORE_GENERATIONAL_ARENA_H_
#define ASUPERSYNC_CORE_GENERATIONAL_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/id.h"

namespace asupersync {

namespace arena_internal {

[[noreturn]] inline void InvariantViolated(const char* invariant) {
  std::fprintf(stderr, "asupersync: invariant violated: %s\n", invariant);
  std::fflush(stderr);
  std::abort();
}

}  // namespace arena_internal

template <typename Tag, typename T>
class GenerationalArena {
 public:
  using Id = GenerationalId<Tag>;

  GenerationalArena() = default;
  GenerationalArena(const GenerationalArena&) = default;
  GenerationalArena& operator=(const GenerationalArena&) = default;
  GenerationalArena(GenerationalArena&&) = default;
  GenerationalArena& operator=(GenerationalArena&&) = default;

  // Stores `value` and returns its id. Reuses the most recently freed slot, if any, with its
  // generation bumped; otherwise appends a slot at generation 1.
  Id insert(T value) {
    CheckNotIterating("GenerationalArena::insert must not be called from for_each");
    if (!free_.empty()) {
      const uint32_t index = free_.back();
      free_.pop_back();
      Slot& slot = slots_[index];
      ++slot.generation;  // Cannot wrap: slots at the maximum generation are never freed.
      slot.value.emplace(std::move(value));
      ++size_;
      return Id(index, slot.generation);
    }
    if (slots_.size() > kMaxIndex) {
      arena_internal::InvariantViolated("GenerationalArena holds at most 2^32 slots");
    }
    const auto index = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{1, std::optional<T>(std::move(value))});
    ++size_;
    return Id(index, 1);
  }

  // The entry named by `id`, or nullptr if `id` is stale or was never issued by this arena.
  T* get(Id id) { return IsLive(id) ? &*slots_[id.index()].value : nullptr; }
  const T* get(Id id) const { return IsLive(id) ? &*slots_[id.index()].value : nullptr; }

  bool contains(Id id) const { return IsLive(id); }

  // Removes the entry named by `id` and returns it. Errors: InvalidArgument for an invalid id
  // (generation 0); FailedPrecondition, naming the id, if it is stale or was never issued.
  absl::StatusOr<T> remove(Id id) {
    CheckNotIterating("GenerationalArena::remove must not be called from for_each");
    if (!IsLive(id)) return RejectId(id);
    Slot& slot = slots_[id.index()];
    T value = std::move(*slot.value);
    slot.value.reset();
    --size_;
    // A slot whose generation cannot be bumped again is retired rather than reused.
    if (slot.generation != std::numeric_limits<uint32_t>::max()) free_.push_back(id.index());
    return value;
  }

  // The number of live entries.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Calls `fn(id, value)` for every live entry in increasing index order. `fn` may read and
  // modify the values but must not insert into or remove from this arena.
  template <typename Fn>
  void for_each(Fn&& fn) {
    IterationGuard guard(this);
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = slots_[i];
      if (slot.value.has_value()) fn(Id(static_cast<uint32_t>(i), slot.generation), *slot.value);
    }
  }
  template <typename Fn>
  void for_each(Fn&& fn) const {
    IterationGuard guard(this);
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& slot = slots_[i];
      if (slot.value.has_value()) {
        fn(Id(static_cast<uint32_t>(i), slot.generation), static_cast<const T&>(*slot.value));
      }
    }
  }

 private:
  static constexpr size_t kMaxIndex = std::numeric_limits<uint32_t>::max();

  struct Slot {
    // The generation of the current occupant, or of the last one while the slot is free.
    uint32_t generation;
    std::optional<T> value;
  };

  class IterationGuard {
   public:
    explicit IterationGuard(const GenerationalArena* arena) : arena_(arena) {
      ++arena_->iterating_.value;
    }
    ~IterationGuard() { --arena_->iterating_.value; }
    IterationGuard(const IterationGuard&) = delete;
    IterationGuard& operator=(const IterationGuard&) = delete;

   private:
    const GenerationalArena* arena_;
  };

  // Counts the for_each calls in progress. Copies and moves of an arena start at zero, and
  // assigning to an arena that is being iterated aborts (it would free the slots under the loop).
  class IterationCount {
   public:
    IterationCount() = default;
    IterationCount(const IterationCount&) noexcept {}
    IterationCount& operator=(const IterationCount&) noexcept {
      if (value != 0) {
        arena_internal::InvariantViolated(
            "a GenerationalArena must not be assigned to from its own for_each");
      }
      return *this;
    }

    int value = 0;
  };

  bool IsLive(Id id) const {
    if (!id.is_valid() || id.index() >= slots_.size()) return false;
    const Slot& slot = slots_[id.index()];
    return slot.value.has_value() && slot.generation == id.generation();
  }

  absl::Status RejectId(Id id) const {
    if (!id.is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GenerationalArena: id ", id.to_string(), " is invalid (generation 0)"));
    }
    if (id.index() >= slots_.size() || id.generation() > slots_[id.index()].generation) {
      return absl::FailedPreconditionError(
          absl::StrCat("GenerationalArena: id ", id.to_string(), " was never issued"));
    }
    const Slot& slot = slots_[id.index()];
    return absl::FailedPreconditionError(absl::StrCat(
        "GenerationalArena: id ", id.to_string(), " is stale (slot ", id.index(),
        slot.value.has_value() ? " now holds generation " : " is free since generation ",
        slot.generation, ")"));
  }

  void CheckNotIterating(const char* invariant) const {
    if (iterating_.value != 0) arena_internal::InvariantViolated(invariant);
  }

  // Declared first so that an assignment checks it before it touches the slots.
  mutable IterationCount iterating_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // Freed slot indices; the last one freed is reused first.
  size_t size_ = 0;
};

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_GENERATIONAL_ARENA_H_
