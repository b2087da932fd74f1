// Copyright The Asupersync Authors.

#include "core/id.h"

#include <cstdint>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "core/generational_arena.h"
#include "gtest/gtest.h"

namespace asupersync {
namespace {

using Arena = GenerationalArena<TaskTag, std::string>;

TEST(GenerationalIdTest, DefaultIsInvalid) {
  constexpr TaskId id;
  static_assert(!id.is_valid());
  EXPECT_EQ(id.index(), 0u);
  EXPECT_EQ(id.generation(), 0u);
  EXPECT_EQ(id.to_string(), "0#0");
  EXPECT_TRUE(TaskId(0, 1).is_valid());
}

TEST(GenerationalIdTest, EqualityOrderingHashAndText) {
  EXPECT_EQ(RegionId(3, 1), RegionId(3, 1));
  EXPECT_NE(RegionId(3, 1), RegionId(3, 2));
  // Ordered by index, then generation.
  EXPECT_LT(RegionId(1, 9), RegionId(2, 1));
  EXPECT_LT(RegionId(2, 1), RegionId(2, 2));
  std::set<RegionId> ordered = {RegionId(2, 2), RegionId(1, 9), RegionId(2, 1)};
  EXPECT_EQ(std::vector<RegionId>(ordered.begin(), ordered.end()),
            (std::vector<RegionId>{RegionId(1, 9), RegionId(2, 1), RegionId(2, 2)}));
  absl::flat_hash_set<ObligationId> set = {ObligationId(1, 1), ObligationId(1, 2),
                                           ObligationId(1, 1)};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(RegionId(3, 1).to_string(), "3#1");
  std::ostringstream os;
  os << TaskId(12, 4);
  EXPECT_EQ(os.str(), "12#4");
}

// SPEC 1.6
TEST(GenerationalArenaTest, InsertGetRemove) {
  Arena arena;
  EXPECT_TRUE(arena.empty());
  const TaskId a = arena.insert("a");
  const TaskId b = arena.insert("b");
  EXPECT_TRUE(a.is_valid());
  EXPECT_EQ(a, TaskId(0, 1));
  EXPECT_EQ(b, TaskId(1, 1));
  EXPECT_EQ(arena.size(), 2u);
  ASSERT_NE(arena.get(a), nullptr);
  EXPECT_EQ(*arena.get(a), "a");
  *arena.get(b) = "bee";
  const Arena& const_arena = arena;
  ASSERT_NE(const_arena.get(b), nullptr);
  EXPECT_EQ(*const_arena.get(b), "bee");
  EXPECT_TRUE(arena.contains(a));

  absl::StatusOr<std::string> removed = arena.remove(a);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, "a");
  EXPECT_EQ(arena.size(), 1u);
  EXPECT_EQ(arena.get(a), nullptr);
  EXPECT_FALSE(arena.contains(a));
}

// SPEC 1.6: a stale id is rejected after its slot is reused; the generation moves on.
TEST(GenerationalArenaTest, StaleIdRejectedAfterRemoveAndReinsert) {
  Arena arena;
  const TaskId old_id = arena.insert("old");
  ASSERT_TRUE(arena.remove(old_id).ok());
  const TaskId new_id = arena.insert("new");
  EXPECT_EQ(new_id.index(), old_id.index());                // The slot is reused...
  EXPECT_EQ(new_id.generation(), old_id.generation() + 1);  // ...under a new generation.
  EXPECT_NE(new_id, old_id);

  EXPECT_EQ(arena.get(old_id), nullptr);
  ASSERT_NE(arena.get(new_id), nullptr);
  EXPECT_EQ(*arena.get(new_id), "new");

  absl::StatusOr<std::string> stale = arena.remove(old_id);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("0#1"), absl::string_view::npos) << stale.status();
  EXPECT_NE(stale.status().message().find("stale"), absl::string_view::npos) << stale.status();
  // The failed remove did not disturb the new occupant.
  EXPECT_EQ(arena.size(), 1u);
  EXPECT_EQ(*arena.get(new_id), "new");
}

// SPEC 1.6
TEST(GenerationalArenaTest, DoubleRemoveIsAnError) {
  Arena arena;
  const TaskId id = arena.insert("x");
  ASSERT_TRUE(arena.remove(id).ok());
  absl::StatusOr<std::string> again = arena.remove(id);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("0#1"), absl::string_view::npos) << again.status();
  EXPECT_EQ(arena.size(), 0u);
}

// SPEC 1.6
TEST(GenerationalArenaTest, NeverIssuedIdsAreRejected) {
  Arena arena;
  const TaskId live = arena.insert("x");
  EXPECT_EQ(arena.get(TaskId()), nullptr);
  EXPECT_EQ(arena.remove(TaskId()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(arena.get(TaskId(7, 1)), nullptr);  // Index past the end.
  absl::Status past_end = arena.remove(TaskId(7, 1)).status();
  EXPECT_EQ(past_end.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(past_end.message().find("7#1"), absl::string_view::npos) << past_end;
  EXPECT_NE(past_end.message().find("never issued"), absl::string_view::npos) << past_end;
  // A generation the slot has not reached yet.
  const TaskId future(live.index(), live.generation() + 1);
  EXPECT_EQ(arena.get(future), nullptr);
  EXPECT_EQ(arena.remove(future).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*arena.get(live), "x");
  EXPECT_EQ(arena.size(), 1u);
}

TEST(GenerationalArenaTest, GenerationsKeepIncreasingOnReuse) {
  Arena arena;
  TaskId id = arena.insert("v0");
  std::vector<TaskId> history = {id};
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(arena.remove(id).ok());
    id = arena.insert("v" + std::to_string(i));
    EXPECT_EQ(id.index(), 0u);
    EXPECT_EQ(id.generation(), static_cast<uint32_t>(i + 1));
    history.push_back(id);
  }
  // Only the newest id resolves.
  for (size_t i = 0; i + 1 < history.size(); ++i) EXPECT_EQ(arena.get(history[i]), nullptr);
  EXPECT_EQ(*arena.get(history.back()), "v20");
}

TEST(GenerationalArenaTest, FreedSlotsReusedLastFreedFirst) {
  Arena arena;
  const TaskId a = arena.insert("a");
  const TaskId b = arena.insert("b");
  const TaskId c = arena.insert("c");
  ASSERT_TRUE(arena.remove(a).ok());
  ASSERT_TRUE(arena.remove(c).ok());
  EXPECT_EQ(arena.insert("d"), TaskId(c.index(), 2));
  EXPECT_EQ(arena.insert("e"), TaskId(a.index(), 2));
  EXPECT_EQ(arena.insert("f"), TaskId(3, 1));
  EXPECT_EQ(*arena.get(b), "b");
}

TEST(GenerationalArenaTest, ForEachVisitsLiveEntriesInIndexOrder) {
  Arena arena;
  std::vector<TaskId> ids;
  for (const char* s : {"a", "b", "c", "d", "e"}) ids.push_back(arena.insert(s));
  ASSERT_TRUE(arena.remove(ids[1]).ok());
  ASSERT_TRUE(arena.remove(ids[3]).ok());
  const TaskId reused = arena.insert("z");  // Takes slot 3, the last one freed.
  EXPECT_EQ(reused.index(), 3u);

  std::vector<std::pair<TaskId, std::string>> seen;
  arena.for_each([&](TaskId id, std::string& v) {
    v += "!";
    seen.emplace_back(id, v);
  });
  const std::vector<std::pair<TaskId, std::string>> expected = {
      {ids[0], "a!"}, {ids[2], "c!"}, {reused, "z!"}, {ids[4], "e!"}};
  EXPECT_EQ(seen, expected);

  // The const overload sees the same, in the same order.
  std::vector<TaskId> const_seen;
  static_cast<const Arena&>(arena).for_each(
      [&](TaskId id, const std::string&) { const_seen.push_back(id); });
  EXPECT_EQ(const_seen, (std::vector<TaskId>{ids[0], ids[2], reused, ids[4]}));
}

TEST(GenerationalArenaTest, SameOperationsGiveSameIds) {
  auto run = [] {
    Arena arena;
    std::vector<TaskId> out;
    for (int i = 0; i < 50; ++i) {
      out.push_back(arena.insert(std::to_string(i)));
      if (i % 3 == 2) {
        EXPECT_TRUE(arena.remove(out[static_cast<size_t>(i) / 2]).ok());
      }
    }
    arena.for_each([&](TaskId id, const std::string&) { out.push_back(id); });
    return out;
  };
  EXPECT_EQ(run(), run());
}

TEST(GenerationalArenaTest, HoldsMoveOnlyValues) {
  GenerationalArena<ObligationTag, std::unique_ptr<int>> arena;
  const ObligationId id = arena.insert(std::make_unique<int>(5));
  ASSERT_NE(arena.get(id), nullptr);
  EXPECT_EQ(**arena.get(id), 5);
  absl::StatusOr<std::unique_ptr<int>> removed = arena.remove(id);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(**removed, 5);
  EXPECT_TRUE(arena.empty());
}

TEST(GenerationalArenaTest, CopiesAreIndependent) {
  Arena arena;
  const TaskId id = arena.insert("a");
  Arena copy = arena;
  ASSERT_TRUE(copy.remove(id).ok());
  EXPECT_EQ(*arena.get(id), "a");
  EXPECT_EQ(copy.get(id), nullptr);
}

TEST(GenerationalArenaDeathTest, InsertDuringForEachAborts) {
  EXPECT_DEATH(
      {
        Arena arena;
        arena.insert("a");
        arena.for_each([&](TaskId, std::string&) { arena.insert("b"); });
      },
      "insert must not be called from for_each");
}

TEST(GenerationalArenaDeathTest, RemoveDuringForEachAborts) {
  EXPECT_DEATH(
      {
        Arena arena;
        arena.insert("a");
        arena.for_each([&](TaskId id, std::string&) { (void)arena.remove(id); });
      },
      "remove must not be called from for_each");
}

}  // namespace
}  // namespace asupersync
