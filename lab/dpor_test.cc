// DPOR correctness (SPEC 11.2): the number of executions equals the number of Mazurkiewicz
// traces (equivalence classes of interleavings) on programs where that number is known, and
// the exploration says it exhausted the space.
//
// GCC 12 workaround (core/README.md): tasks are named before they are awaited; no lambda
// temporary inside a co_await expression.

#include "lab/dpor.h"

#include "core/region.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lab/explore.h"
#include "lab/testing.h"
#include "lab/tracked.h"

namespace asupersync {
namespace {

using Var = lab::Tracked<int>;
using Vars = std::vector<std::unique_ptr<Var>>;

lab::ExploreOptions dpor() { return {.strategy = lab::Strategy::kDpor, .runs = 20'000}; }

std::shared_ptr<Vars> make_vars(int n) {
  auto vars = std::make_shared<Vars>();
  for (int i = 0; i < n; ++i) vars->push_back(std::make_unique<Var>(0, "v" + std::to_string(i)));
  return vars;
}

uint64_t factorial(int n) { return n <= 1 ? 1 : n * factorial(n - 1); }

// Explores `scenario` exhaustively and returns the number of complete executions. Source-DPOR
// (no wakeup trees) may start an execution that turns out equivalent to one already run and
// ends sleep-set blocked; `max_sleep_blocked` bounds that waste.
template <typename F>
uint64_t count_executions(F scenario, uint64_t max_sleep_blocked = 0) {
  lab::ExploreResult result = lab::Explore(dpor(), scenario);
  EXPECT_LAB_OK(result);
  EXPECT_TRUE(result.exhausted) << result.report();
  EXPECT_LE(result.sleep_blocked, max_sleep_blocked) << result.report();
  // Different classes give different traces.
  EXPECT_EQ(result.distinct_traces, result.complete_runs()) << result.report();
  return result.complete_runs();
}

// n tasks touching only their own variable (several steps each): one execution.
TEST(DporCountTest, IndependentTasksRunOnce) {
  for (int n : {1, 2, 3, 4, 6}) {
    const uint64_t count = count_executions([n](Cx& cx) -> Task<void> {
      auto vars = make_vars(n);
      for (int i = 0; i < n; ++i) {
        (void)cx.spawn("independent", [vars, i](Cx& c) -> Task<void> {
          (*vars)[i]->store(1);
          (void)co_await c.yield();
          (*vars)[i]->store((*vars)[i]->load() + 1);
          (void)co_await c.yield();
        });
      }
      co_return;
    });
    EXPECT_EQ(count, 1u) << "n = " << n;
  }
}

// n tasks each writing one shared variable once: every order is a different trace, n!.
TEST(DporCountTest, WritersOfOneVariableGiveNFactorial) {
  for (int n : {2, 3, 4}) {
    const uint64_t count = count_executions([n](Cx& cx) -> Task<void> {
      auto vars = make_vars(1);
      for (int i = 0; i < n; ++i) {
        (void)cx.spawn("writer", [vars, i](Cx& c) -> Task<void> {
          (*vars)[0]->store(i + 1);
          co_return;
        });
      }
      co_return;
    });
    EXPECT_EQ(count, factorial(n)) << "n = " << n;
  }
}

// Two tasks with k writes each to one variable (separate steps): C(2k, k) interleavings.
TEST(DporCountTest, TwoTasksWithKWritesGiveBinomial) {
  const uint64_t expected[] = {0, 2, 6, 20};
  for (int k : {1, 2, 3}) {
    const uint64_t count = count_executions([k](Cx& cx) -> Task<void> {
      auto vars = make_vars(1);
      for (int t = 0; t < 2; ++t) {
        (void)cx.spawn("writer", [vars, k](Cx& c) -> Task<void> {
          for (int w = 0; w < k; ++w) {
            (*vars)[0]->store(w);
            (void)co_await c.yield();
          }
        });
      }
      co_return;
    });
    EXPECT_EQ(count, expected[k]) << "k = " << k;
  }
}

// One writer and r readers of one variable: each reader is before or after the write (the
// readers commute with each other): 2^r.
TEST(DporCountTest, ReadersCommuteWithEachOther) {
  for (int readers : {1, 2, 3}) {
    const uint64_t count = count_executions([readers](Cx& cx) -> Task<void> {
      auto vars = make_vars(1);
      (void)cx.spawn("writer", [vars](Cx& c) -> Task<void> {
        (*vars)[0]->store(1);
        co_return;
      });
      for (int r = 0; r < readers; ++r) {
        (void)cx.spawn("reader", [vars](Cx& c) -> Task<void> {
          (void)(*vars)[0]->load();
          co_return;
        });
      }
      co_return;
    });
    EXPECT_EQ(count, uint64_t{1} << readers) << "readers = " << readers;
  }
}

// Store buffering: A writes x then reads y, B writes y then reads x. Under sequential
// consistency three classes (both reads see the other write; only one does, either way).
TEST(DporCountTest, StoreBufferingHasThreeClasses) {
  const uint64_t count = count_executions([](Cx& cx) -> Task<void> {
    auto vars = make_vars(2);
    for (int t = 0; t < 2; ++t) {
      (void)cx.spawn("sb", [vars, t](Cx& c) -> Task<void> {
        (*vars)[t]->store(1);
        (void)co_await c.yield();
        (void)(*vars)[1 - t]->load();
      });
    }
    co_return;
  });
  EXPECT_EQ(count, 3u);
}

// A cancel request lands before each of the target's three steps or after it completed
// (where it is a no-op): four classes.
TEST(DporCountTest, CancelLandsAtEachAwaitOrAfterCompletion) {
  const uint64_t count = count_executions([](Cx& cx) -> Task<void> {
    auto target = std::make_shared<TaskHandle<void>>();
    auto spawned = cx.spawn("target", [](Cx& c) -> Task<void> {
      (void)co_await c.yield();
      (void)co_await c.yield();
    });
    *target = std::move(spawned).value();
    (void)cx.spawn("canceller", [target](Cx& c) -> Task<void> {
      target->cancel("stop");
      co_return;
    });
    co_return;
  });
  EXPECT_EQ(count, 4u);
}

// Nested spawns: a grandchild's write races with a sibling's; the spawns themselves are
// independent. (The body joins both children: once it returns, the region admits no spawn.)
TEST(DporCountTest, GrandchildRacesWithSibling) {
  const uint64_t count = count_executions(
      [](Cx& cx) -> Task<void> {
        auto vars = make_vars(1);
        auto parent = cx.spawn("parent", [vars](Cx& c) -> Task<void> {
          (void)c.spawn("grandchild", [vars](Cx& g) -> Task<void> {
            (*vars)[0]->store(1);
            co_return;
          });
          co_return;
        });
        auto sibling = cx.spawn("sibling", [vars](Cx& c) -> Task<void> {
          (*vars)[0]->store(2);
          co_return;
        });
        (void)co_await parent->join(cx);
        (void)co_await sibling->join(cx);
      },
      // The main task's join of "parent" conflicts with parent's completion: the reversed order
      // (main joins first, parks) is tried once and is equivalent to a class already run.
      /*max_sleep_blocked=*/1);
  EXPECT_EQ(count, 2u);
}

// A spawn racing with the region's close is admitted or refused (SPEC 3.2): two classes.
TEST(DporCountTest, SpawnRacingWithCloseHasTwoClasses) {
  auto refused = std::make_shared<int>(0);
  const uint64_t count = count_executions([refused](Cx& cx) -> Task<void> {
    auto inner = Region::open(cx, "inner", [refused](Cx& rx) -> Task<void> {
      (void)rx.spawn("spawner", [refused](Cx& c) -> Task<void> {
        (void)co_await c.yield();
        auto late = c.spawn("late", [](Cx&) -> Task<void> { co_return; });
        if (!late.ok()) ++*refused;
      });
      (void)co_await rx.yield();
    });
    (void)co_await std::move(inner);
  });
  EXPECT_EQ(count, 2u);
  EXPECT_EQ(*refused, 1);
}

// A level-triggered wait and the write that satisfies it: the check is a read whether it
// passes or fails, so "finds it set" and "parks, then is woken" are two classes (the parked task
// could be interrupted in between); the woken step is never reordered before its wake.
TEST(DporCountTest, LevelWaitAndItsEnablingWriteAreTwoClasses) {
  const uint64_t count = count_executions([](Cx& cx) -> Task<void> {
    auto vars = make_vars(1);
    (void)cx.spawn("setter", [vars](Cx& c) -> Task<void> {
      (*vars)[0]->store(1);
      co_return;
    });
    (void)cx.spawn("waiter", [vars](Cx& c) -> Task<void> {
      auto wait = (*vars)[0]->wait_until(c, [](int v) { return v == 1; });
      absl::Status status = co_await std::move(wait);
      EXPECT_TRUE(status.ok());
    });
    co_return;
  });
  EXPECT_EQ(count, 2u);
}

// Two tasks taking a lock made of a tracked flag: the second one's check either comes after the
// first one's release (passes) or before it (parks, woken by the release), for each order of
// acquisition: four classes.
TEST(DporCountTest, TrackedFlagLockHasTwoClasses) {
  for (bool waiter_first : {false, true}) {
    const uint64_t count = count_executions([waiter_first](Cx& cx) -> Task<void> {
      auto lock = std::make_shared<lab::Tracked<bool>>(false, "lock");
      for (int t = 0; t < 2; ++t) {
        (void)cx.spawn("locker", [lock, t, waiter_first](Cx& c) -> Task<void> {
          if (waiter_first == (t == 0)) (void)co_await c.yield();
          auto free = lock->wait_until(c, [](bool held) { return !held; });
          (void)co_await std::move(free);
          lock->store(true);
          (void)co_await c.yield();
          lock->store(false);
        });
      }
      co_return;
    });
    EXPECT_EQ(count, 4u);
  }
}

// Virtual time is a barrier: a sleeper's write after its timer cannot be reordered with steps
// that run before the timer fires.
TEST(DporCountTest, TimeAdvanceIsABarrier) {
  const uint64_t count = count_executions([](Cx& cx) -> Task<void> {
    auto vars = make_vars(1);
    (void)cx.spawn("sleeper", [vars](Cx& c) -> Task<void> {
      (void)co_await c.sleep(Duration::Milliseconds(1));
      (*vars)[0]->store(1);
    });
    (void)cx.spawn("writer", [vars](Cx& c) -> Task<void> {
      (*vars)[0]->store(2);
      co_return;
    });
    co_return;
  });
  EXPECT_EQ(count, 1u);
}

// ----- Differential test against brute force ------------------------------------------------

// A tiny random program: each task runs its operations, one step each.
struct Op {
  enum Kind {
    kRead,
    kWrite,
    kIncrement,
    kAwaitNonZero,
    kCancelNext,
    kSleep,
    kWaitChanged,
    kSpawnIncrementer,
    kNestedRegion,
    kJoinNext
  } kind;
  int var;
  int value;
};
using Program = std::vector<std::vector<Op>>;

// Tasks joining each other are in the mix: every join reports itself to the lab
// (RuntimeEvent::kJoinCompleted), also one that found its target finished and never parked.
// Build with -DLAB_SOUNDNESS_JOINS=0 to leave them out.
#ifndef LAB_SOUNDNESS_JOINS
#define LAB_SOUNDNESS_JOINS 1
#endif
constexpr bool kJoinsInPrograms = LAB_SOUNDNESS_JOINS != 0;

uint64_t next_random(uint64_t& state) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return state >> 33;
}

Program random_program(uint64_t seed) {
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 7;
  const int tasks = 2 + static_cast<int>(next_random(state) % 2);
  Program program(tasks);
  int budget = 6;
  for (int t = 0; t < tasks; ++t) {
    const int ops = 1 + static_cast<int>(next_random(state) % (tasks == 2 ? 3 : 2));
    for (int o = 0; o < ops && budget > 0; ++o, --budget) {
      const int roll = static_cast<int>(next_random(state) % 100);
      const int var = static_cast<int>(next_random(state) % 2);
      const int value = 1 + static_cast<int>(next_random(state) % 2);
      Op::Kind kind = roll < 25                        ? Op::kRead
                      : roll < 45                      ? Op::kWrite
                      : roll < 60                      ? Op::kIncrement
                      : roll < 68                      ? Op::kAwaitNonZero
                      : roll < 74                      ? Op::kCancelNext
                      : roll < 80                      ? Op::kSleep
                      : roll < 86                      ? Op::kWaitChanged
                      : roll < 90                      ? Op::kSpawnIncrementer
                      : roll < 95 || !kJoinsInPrograms ? Op::kNestedRegion
                                                       : Op::kJoinNext;
      program[t].push_back(Op{kind, var, value});
    }
  }
  return program;
}

std::string describe(const Program& program) {
  std::string out;
  for (size_t t = 0; t < program.size(); ++t) {
    out += "t" + std::to_string(t) + ":";
    for (const Op& op : program[t]) {
      const char* names[] = {"read",  "write",        "incr",       "await",         "cancel_next",
                             "sleep", "wait_changed", "spawn_incr", "nested_region", "join_next"};
      out += std::string(" ") + names[op.kind] + "(v" + std::to_string(op.var) +
             (op.kind == Op::kWrite ? "=" + std::to_string(op.value) : "") + ")";
    }
    out += "; ";
  }
  return out;
}

// Runs `program` in a region; once that region closed (every task and grandchild done), inserts
// "what every task saw | final values" into `outcomes`.
Task<void> run_program(Cx& cx, const Program* program, std::set<std::string>* outcomes) {
  auto vars = make_vars(2);
  const size_t tasks = program->size();
  auto logs = std::make_shared<std::vector<std::string>>(tasks);
  auto work = Region::open(cx, "work", [vars, logs, program, tasks](Cx& wx) -> Task<void> {
    auto handles = std::make_shared<std::vector<TaskHandle<void>>>();
    for (size_t t = 0; t < tasks; ++t) {
      // A weak reference: the handles must not keep the tasks that hold them alive (a cycle).
      std::weak_ptr<std::vector<TaskHandle<void>>> weak_handles = handles;
      auto spawned = wx.spawn(
          "t" + std::to_string(t), [vars, logs, weak_handles, program, t](Cx& c) -> Task<void> {
            for (const Op& op : (*program)[t]) {
              Var& var = *(*vars)[op.var];
              std::string& log = (*logs)[t];
              if (op.kind == Op::kRead) {
                log += "r" + std::to_string(var.load());
              } else if (op.kind == Op::kWrite) {
                var.store(op.value);
              } else if (op.kind == Op::kIncrement) {
                log += "i" + std::to_string(var.update([](int v) { return v + 1; }));
              } else if (op.kind == Op::kAwaitNonZero) {
                auto wait = var.wait_until(c, [](int v) { return v != 0; });
                absl::Status status = co_await std::move(wait);
                log += status.ok() ? "w" : "W";
              } else if (op.kind == Op::kCancelNext) {
                auto handles = weak_handles.lock();
                if (handles && t + 1 < handles->size()) {
                  (*handles)[t + 1].cancel("cancelled by its neighbour");
                }
              } else if (op.kind == Op::kSleep) {
                absl::Status status = co_await c.sleep(Duration::Milliseconds(1 + op.value));
                log += status.ok() ? "s" : "S";
              } else if (op.kind == Op::kWaitChanged) {
                auto changed = var.wait_changed(c);
                absl::Status status = co_await changed;
                log += status.ok() ? "e" : "E";
              } else if (op.kind == Op::kSpawnIncrementer) {
                auto child = c.spawn("child", [vars, which = op.var](Cx&) -> Task<void> {
                  (*vars)[which]->update([](int v) { return v + 1; });
                  co_return;
                });
                log += child.ok() ? "p" : "P";
              } else if (op.kind == Op::kJoinNext) {
                auto handles = weak_handles.lock();
                if (handles && t + 1 < handles->size()) {
                  Outcome<void> joined = co_await (*handles)[t + 1].join(c);
                  log += joined.ok() ? "j" : joined.is_cancelled() ? "J" : "x";
                }
              } else {
                auto nested =
                    Region::open(c, "nested", [vars, which = op.var](Cx& rx) -> Task<void> {
                      (void)rx.spawn("grandchild", [vars, which](Cx&) -> Task<void> {
                        (*vars)[which]->update([](int v) { return v + 10; });
                        co_return;
                      });
                      co_return;
                    });
                Outcome<void> closed = co_await std::move(nested);
                log += closed.ok() ? "n" : "N";
              }
              absl::Status status = co_await c.yield();
              log += status.ok() ? "." : "c";
            }
          });
      handles->push_back(std::move(spawned).value());
    }
    for (TaskHandle<void>& handle : *handles) (void)co_await handle.join(wx);
  });
  (void)co_await std::move(work);
  std::string outcome;
  for (const std::string& log : *logs) outcome += log + "|";
  outcome += std::to_string((*vars)[0]->load()) + "," + std::to_string((*vars)[1]->load());
  outcomes->insert(outcome);
}

// Every schedule, by enumerating choice vectors like an odometer.
class EverySchedule final : public lab::internal::ScheduleStrategy {
 public:
  size_t choose(std::span<const lab::internal::Candidate> candidates, uint64_t) override {
    const uint32_t pick = position_ < prefix_.size() ? prefix_[position_] : 0;
    counts_.push_back(static_cast<uint32_t>(candidates.size()));
    taken_.push_back(pick);
    ++position_;
    return pick;
  }
  // Prepares the next schedule; false when all were run.
  bool advance() {
    for (size_t k = taken_.size(); k-- > 0;) {
      if (taken_[k] + 1 < counts_[k]) {
        prefix_.assign(taken_.begin(), taken_.begin() + static_cast<std::ptrdiff_t>(k) + 1);
        ++prefix_[k];
        taken_.clear();
        counts_.clear();
        position_ = 0;
        return true;
      }
    }
    return false;
  }

 private:
  std::vector<uint32_t> prefix_, taken_, counts_;
  size_t position_ = 0;
};

std::set<std::string> outcomes_of(const Program& program, bool dpor, uint64_t& runs) {
  std::set<std::string> outcomes;
  lab::internal::LogicalIds ids;
  lab::internal::DporExplorer explorer;
  EverySchedule every;
  while (true) {
    if (dpor) explorer.begin_execution();
    std::set<std::string> seen;
    lab::LabRuntime runtime(lab::LabOptions{
        .randomize = false,
        .max_steps = 10'000,
        .lanes = lab::LanePolicy::kAnyRunnable,
        .strategy = dpor ? static_cast<lab::internal::ScheduleStrategy*>(&explorer) : &every,
        .logical_ids = &ids,
        .record_steps = dpor});
    (void)runtime.run([&program, &seen](Cx& cx) { return run_program(cx, &program, &seen); });
    if (!runtime.report().sleep_blocked) {
      ++runs;
      outcomes.insert(seen.begin(), seen.end());
      if (runtime.report().deadlocked) outcomes.insert("deadlock");
      EXPECT_TRUE(runtime.report().violations.empty()) << runtime.report().violations.front();
    }
    const bool more = dpor ? explorer.end_execution(runtime.steps()) : every.advance();
    EXPECT_TRUE(explorer.divergence().empty()) << explorer.divergence();
    if (!more) break;
  }
  return outcomes;
}

// DPOR reaches exactly the outcomes (every value every task read, final values, deadlocks)
// that running every schedule reaches, with far fewer runs. The programs come in blocks, one
// test each, so that the test shards (BUILD: shard_count) keep it quick on a loaded machine.
#ifndef LAB_SOUNDNESS_PROGRAMS
#define LAB_SOUNDNESS_PROGRAMS 60
#endif
constexpr uint64_t kPrograms = LAB_SOUNDNESS_PROGRAMS;
constexpr uint64_t kProgramsPerBlock = 10;

class DporSoundnessTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(DporSoundnessTest, RandomProgramsReachEveryOutcomeOfBruteForce) {
  uint64_t total_dpor = 0, total_brute = 0;
  const uint64_t first = GetParam() * kProgramsPerBlock;
  for (uint64_t seed = first; seed < std::min(kPrograms, first + kProgramsPerBlock); ++seed) {
    const Program program = random_program(seed);
    uint64_t dpor_runs = 0, brute_runs = 0;
    const std::set<std::string> reduced = outcomes_of(program, true, dpor_runs);
    const std::set<std::string> all = outcomes_of(program, false, brute_runs);
    EXPECT_EQ(reduced, all) << "program seed " << seed << ": " << describe(program);
    EXPECT_LE(dpor_runs, brute_runs) << "program seed " << seed;
#ifdef LAB_SOUNDNESS_VERBOSE
    std::fprintf(stderr, "program %llu: dpor %llu brute %llu: %s\n",
                 static_cast<unsigned long long>(seed), static_cast<unsigned long long>(dpor_runs),
                 static_cast<unsigned long long>(brute_runs), describe(program).c_str());
#endif
    total_dpor += dpor_runs;
    total_brute += brute_runs;
  }
  std::printf(
      "programs %llu..%llu: DPOR ran %llu executions where brute force ran %llu "
      "schedules\n",
      static_cast<unsigned long long>(first),
      static_cast<unsigned long long>(first + kProgramsPerBlock - 1),
      static_cast<unsigned long long>(total_dpor), static_cast<unsigned long long>(total_brute));
  EXPECT_LT(total_dpor * 2, total_brute);
}

INSTANTIATE_TEST_SUITE_P(Blocks, DporSoundnessTest,
                         ::testing::Range<uint64_t>(0, (kPrograms + kProgramsPerBlock - 1) /
                                                           kProgramsPerBlock));

TEST(DporTest, ConflictRelation) {
  using lab::internal::Access;
  using lab::internal::AccessKind;
  auto one = [](uint64_t object, AccessKind kind) { return std::vector<Access>{{object, kind}}; };
  EXPECT_FALSE(lab::internal::conflicts(one(1, AccessKind::kRead), one(1, AccessKind::kRead)));
  EXPECT_TRUE(lab::internal::conflicts(one(1, AccessKind::kRead), one(1, AccessKind::kWrite)));
  EXPECT_FALSE(lab::internal::conflicts(one(1, AccessKind::kUpdate), one(1, AccessKind::kUpdate)));
  EXPECT_TRUE(lab::internal::conflicts(one(1, AccessKind::kUpdate), one(1, AccessKind::kRead)));
  EXPECT_FALSE(lab::internal::conflicts(one(1, AccessKind::kWrite), one(2, AccessKind::kWrite)));
  EXPECT_FALSE(
      lab::internal::conflicts(one(1, AccessKind::kRelease), one(1, AccessKind::kAcquire)));
}

// With stop_on_failure off, DPOR runs every class and counts the failing ones. Two
// read-then-write incrementers have 4 classes (the two reads commute); in 2 of them both read
// before either writes: a lost update.
TEST(DporTest, KeepsExploringAfterAFailure) {
  lab::ExploreOptions options = dpor();
  options.stop_on_failure = false;
  lab::ExploreResult result = lab::Explore(options, [](Cx& cx) -> Task<void> {
    auto vars = make_vars(1);
    auto work = Region::open(cx, "work", [vars](Cx& rx) -> Task<void> {
      for (int i = 0; i < 2; ++i) {
        (void)rx.spawn("incrementer", [vars](Cx& c) -> Task<void> {
          const int seen = (*vars)[0]->load();
          (void)co_await c.yield();
          (*vars)[0]->store(seen + 1);
        });
      }
      co_return;
    });
    (void)co_await std::move(work);
    lab::check((*vars)[0]->load() == 2, "no lost update");
  });
  ASSERT_TRUE(result.failure.has_value()) << result.report();
  EXPECT_TRUE(result.exhausted) << result.report();
  EXPECT_EQ(result.complete_runs(), 4u) << result.report();
  EXPECT_EQ(result.failed_runs, 2u) << result.report();
}

// A budget smaller than the space: not exhausted, and the report says so.
TEST(DporTest, BudgetStopsBeforeExhaustion) {
  lab::ExploreOptions options = dpor();
  options.runs = 5;
  lab::ExploreResult result = lab::Explore(options, [](Cx& cx) -> Task<void> {
    auto vars = make_vars(1);
    for (int i = 0; i < 4; ++i) {
      (void)cx.spawn("writer", [vars, i](Cx& c) -> Task<void> {
        (*vars)[0]->store(i);
        co_return;
      });
    }
    co_return;
  });
  EXPECT_LAB_OK(result);
  EXPECT_EQ(result.runs, 5u);
  EXPECT_FALSE(result.exhausted);
  EXPECT_NE(result.report().find("not exhausted"), std::string::npos) << result.report();
}

}  // namespace
}  // namespace asupersync
