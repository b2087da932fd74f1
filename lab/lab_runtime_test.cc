// The lab as a tool (SPEC 11): determinism (same seed ⇒ same trace hash), replay strings,
// Chrome trace export, the oracles (SPEC 11.3) and fault injection (SPEC 11.4).
//
// GCC 12 workaround (core/README.md): tasks are named before they are awaited; no lambda
// temporary inside a co_await expression; no co_await inside a condition.

#include "lab/lab_runtime.h"

#include <cctype>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/region.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lab/explore.h"
#include "lab/replay.h"
#include "lab/testing.h"
#include "lab/tracked.h"
#include "obligations/permit.h"

namespace asupersync {
namespace {

using ::testing::HasSubstr;

// A small program with everything that can vary: spawns, yields, tracked reads and writes,
// sleeps, entropy, a cancel and a nested region.
Task<void> busy_scenario(Cx& cx) {
  auto counter = std::make_shared<lab::Tracked<int>>(0, "counter");
  auto region = Region::open(cx, "workers", [counter](Cx& rx) -> Task<void> {
    for (int i = 0; i < 3; ++i) {
      (void)rx.spawn("worker", [counter, i](Cx& c) -> Task<void> {
        for (int k = 0; k < 3; ++k) {
          const int seen = counter->load();
          (void)co_await c.yield();
          counter->store(seen + 1);
        }
        (void)co_await c.sleep(Duration::Microseconds(10 * (i + 1)));
        (void)c.random_u64();
      });
    }
    auto doomed = rx.spawn(
        "doomed", [](Cx& c) -> Task<void> { (void)co_await c.sleep(Duration::Seconds(10)); });
    (void)co_await rx.yield();
    doomed->cancel("not needed");
  });
  (void)co_await std::move(region);
}

// SPEC 11.1: the same seed and options give the same trace, event for event.
TEST(LabDeterminismTest, SameSeedSameTraceAndTail) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    lab::LabRuntime first(lab::LabOptions{.seed = seed, .lanes = lab::LanePolicy::kAnyRunnable});
    lab::LabRuntime second(lab::LabOptions{.seed = seed, .lanes = lab::LanePolicy::kAnyRunnable});
    auto a = first.run(busy_scenario);
    auto b = second.run(busy_scenario);
    EXPECT_EQ(a.kind(), b.kind());
    EXPECT_EQ(first.report().trace_hash, second.report().trace_hash) << seed;
    EXPECT_EQ(first.report().trace_events, second.report().trace_events);
    EXPECT_EQ(first.trace().render_tail(), second.trace().render_tail());
    EXPECT_THAT(first.report().violations, ::testing::IsEmpty());
  }
}

// Explore twice with the same options: the same runs, in the same order, with the same traces.
TEST(LabDeterminismTest, ExploreIsDeterministicForEveryStrategy) {
  for (lab::Strategy strategy :
       {lab::Strategy::kRandom, lab::Strategy::kPct, lab::Strategy::kDpor}) {
    lab::ExploreOptions options{.strategy = strategy, .runs = 30};
    lab::ExploreResult first = lab::Explore(options, busy_scenario);
    lab::ExploreResult second = lab::Explore(options, busy_scenario);
    EXPECT_LAB_OK(first);
    EXPECT_EQ(first.trace_hashes, second.trace_hashes) << lab::strategy_name(strategy);
    EXPECT_EQ(first.runs, second.runs);
    EXPECT_GT(first.distinct_traces, 1u) << lab::strategy_name(strategy);
  }
}

// A lost update: two tasks read, await, then write back.
Task<void> lost_update(Cx& cx) {
  auto counter = std::make_shared<lab::Tracked<int>>(0, "counter");
  auto region = Region::open(cx, "increments", [counter](Cx& rx) -> Task<void> {
    for (int i = 0; i < 2; ++i) {
      (void)rx.spawn("incrementer", [counter](Cx& c) -> Task<void> {
        const int seen = counter->load();
        (void)co_await c.yield();
        counter->store(seen + 1);
      });
    }
    co_return;
  });
  (void)co_await std::move(region);
  lab::check(counter->load() == 2, "both increments are counted");
}

// SPEC 11.2: a failing run's replay string reproduces the same failure and the same trace hash.
TEST(LabReplayTest, ReplayStringReproducesFailureAndTraceHash) {
  for (lab::Strategy strategy :
       {lab::Strategy::kRandom, lab::Strategy::kPct, lab::Strategy::kDpor}) {
    lab::ExploreResult found = lab::Explore({.strategy = strategy, .runs = 200}, lost_update);
    ASSERT_LAB_FINDS(found, "check");
    EXPECT_TRUE(found.failure->reproduced) << found.report();
    if (strategy == lab::Strategy::kDpor) std::printf("%s", found.report().c_str());
    EXPECT_THAT(found.report(), HasSubstr("LAB_REPLAY='L1:"));
    EXPECT_THAT(found.report(), HasSubstr("both increments are counted"));
    EXPECT_THAT(found.report(), HasSubstr("trace tail"));

    for (int repeat = 0; repeat < 2; ++repeat) {
      lab::ExploreResult replayed = lab::Explore({.replay = found.failure->replay}, lost_update);
      ASSERT_TRUE(replayed.failure.has_value()) << replayed.report();
      EXPECT_EQ(replayed.runs, 1u);
      EXPECT_EQ(replayed.failure->kind, found.failure->kind);
      EXPECT_EQ(replayed.failure->trace_hash, found.failure->trace_hash);
      EXPECT_EQ(replayed.failure->replay, found.failure->replay);
      EXPECT_EQ(replayed.failure->trace_tail, found.failure->trace_tail);
      EXPECT_TRUE(replayed.failure->reproduced);
    }
  }
}

TEST(LabReplayTest, EnvironmentVariableSelectsTheSchedule) {
  lab::ExploreResult found = lab::Explore({.strategy = lab::Strategy::kDpor}, lost_update);
  ASSERT_LAB_FINDS(found, "check");
  ASSERT_EQ(setenv("LAB_REPLAY", found.failure->replay.c_str(), 1), 0);
  lab::ExploreResult replayed = lab::Explore({.runs = 1000}, lost_update);
  unsetenv("LAB_REPLAY");
  EXPECT_EQ(replayed.runs, 1u);
  ASSERT_TRUE(replayed.failure.has_value()) << replayed.report();
  EXPECT_EQ(replayed.failure->trace_hash, found.failure->trace_hash);
}

TEST(LabReplayTest, EncodingRoundTripsAndRejectsGarbage) {
  lab::ReplayToken token;
  token.seed = 0x2a;
  token.cancel_at_await = 3;
  token.trace_hash = 0xdeadbeef;
  token.choices = {0, 0, 0, 0, 1, 2, 2, 61, 62, 1000, 5, 5, 5};
  const std::string text = lab::encode_replay(token);
  EXPECT_EQ(text, "L1:a:2a:3:deadbeef:0.4.122Z_62__1000_5.3.");
  absl::StatusOr<lab::ReplayToken> decoded = lab::decode_replay(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->choices, token.choices);
  EXPECT_EQ(decoded->seed, token.seed);
  EXPECT_EQ(decoded->cancel_at_await, 3u);
  EXPECT_EQ(decoded->trace_hash, token.trace_hash);
  for (const char* bad :
       {"", "L2:a:1:0:0:", "L1:x:1:0:0:", "L1:a:zz:0:0:", "L1:a:1:0:0:0.x", "L1:a:1:0:0:!"}) {
    absl::StatusOr<lab::ReplayToken> parsed = lab::decode_replay(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  lab::ExploreResult result = lab::Explore({.replay = "nonsense"}, lost_update);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.report(), HasSubstr("replay string"));
}

// A replay string made for one program does not silently run another.
TEST(LabReplayTest, ReplayOfAnotherProgramDiverges) {
  lab::ExploreResult found = lab::Explore({.strategy = lab::Strategy::kDpor}, lost_update);
  ASSERT_TRUE(found.failure.has_value());
  lab::ExploreResult other = lab::Explore({.replay = found.failure->replay}, busy_scenario);
  ASSERT_TRUE(other.failure.has_value());
  EXPECT_EQ(other.failure->kind, "replay_diverged") << other.report();
}

// ----- Chrome trace ------------------------------------------------------------------------

// A minimal JSON reader: enough to check the shape of a trace file.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  std::string text;
  std::vector<Json> items;
  // An object's members as two parallel vectors: std::vector may hold the incomplete Json,
  // std::pair may not (clang with libstdc++ rejects it).
  std::vector<std::string> keys;
  std::vector<Json> values;
  const Json* get(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : s_(text) {}
  bool parse(Json& out) {
    if (!value(out)) return false;
    space();
    return i_ == s_.size();
  }

 private:
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  bool string(std::string& out) {
    if (s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        if (s_[i_] == 'u') {
          i_ += 4;
        } else {
          out += s_[i_];
        }
        ++i_;
        continue;
      }
      if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
      out += s_[i_++];
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool value(Json& out) {
    space();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') {
      out.kind = Json::kObject;
      ++i_;
      space();
      if (s_[i_] == '}') {
        ++i_;
        return true;
      }
      while (true) {
        space();
        std::string key;
        if (!string(key)) return false;
        space();
        if (s_[i_++] != ':') return false;
        Json item;
        if (!value(item)) return false;
        out.keys.push_back(std::move(key));
        out.values.push_back(std::move(item));
        space();
        if (s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (s_[i_] == '}') {
          ++i_;
          return true;
        }
        return false;
      }
    }
    if (c == '[') {
      out.kind = Json::kArray;
      ++i_;
      space();
      if (s_[i_] == ']') {
        ++i_;
        return true;
      }
      while (true) {
        Json item;
        if (!value(item)) return false;
        out.items.push_back(std::move(item));
        space();
        if (s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (s_[i_] == ']') {
          ++i_;
          return true;
        }
        return false;
      }
    }
    if (c == '"') {
      out.kind = Json::kString;
      return string(out.text);
    }
    if (literal("true") || literal("false")) {
      out.kind = Json::kBool;
      return true;
    }
    if (literal("null")) return true;
    const size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                              s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+')) {
      ++i_;
    }
    if (i_ == start) return false;
    out.kind = Json::kNumber;
    out.text = s_.substr(start, i_ - start);
    return true;
  }

  const std::string& s_;
  size_t i_ = 0;
};

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

// SPEC 12.2: the failing run's trace as Chrome trace-event JSON, parsed back.
TEST(LabTraceTest, ChromeTraceOfTheFailingRunIsValidJson) {
  const std::string path = temp_path("lost_update_trace.json");
  std::remove(path.c_str());
  lab::ExploreResult found =
      lab::Explore({.strategy = lab::Strategy::kDpor, .trace_path = path}, lost_update);
  ASSERT_LAB_FINDS(found, "check");
  std::ifstream file(path);
  ASSERT_TRUE(file.good()) << path;
  std::stringstream buffer;
  buffer << file.rdbuf();
  Json root;
  ASSERT_TRUE(JsonParser(buffer.str()).parse(root)) << buffer.str().substr(0, 2000);
  ASSERT_EQ(root.kind, Json::kObject);
  const Json* events = root.get("traceEvents");
  ASSERT_NE(events, nullptr);
  ASSERT_EQ(events->kind, Json::kArray);
  int spans = 0, instants = 0, names = 0, writes = 0, region_spans = 0;
  for (const Json& event : events->items) {
    ASSERT_EQ(event.kind, Json::kObject);
    const Json* ph = event.get("ph");
    ASSERT_NE(ph, nullptr);
    ASSERT_NE(event.get("pid"), nullptr);
    ASSERT_NE(event.get("name"), nullptr);
    if (ph->text == "X") {
      ASSERT_NE(event.get("ts"), nullptr);
      ASSERT_NE(event.get("dur"), nullptr);
      if (event.get("pid")->text == "2") {
        ++region_spans;
      } else {
        ++spans;
      }
    } else if (ph->text == "i") {
      ++instants;
      if (event.get("name")->text.rfind("write", 0) == 0) ++writes;
    } else if (ph->text == "M") {
      ++names;
    }
  }
  EXPECT_GT(spans, 4);
  EXPECT_GT(instants, 4);
  EXPECT_GE(writes, 2);
  EXPECT_GE(region_spans, 2);  // "main" and "increments"
  EXPECT_GE(names, 4);         // process names + one per task
  EXPECT_THAT(buffer.str(), HasSubstr("incrementer"));
}

TEST(LabTraceTest, UnwritablePathIsReported) {
  lab::ExploreResult found = lab::Explore(
      {.strategy = lab::Strategy::kDpor, .trace_path = "/nonexistent/dir/trace.json"}, lost_update);
  ASSERT_TRUE(found.failure.has_value());
  EXPECT_THAT(found.failure->message, HasSubstr("cannot open"));
}

// ----- Oracles (SPEC 11.3) -----------------------------------------------------------------

// A sink for hand-made permits.
class CountingSink final : public PermitSink<int> {
 public:
  void commit(int value) override { ++committed; }
  void release() noexcept override { ++released; }
  int committed = 0;
  int released = 0;
};

TEST(LabOracleTest, LeakedObligationIsNamed) {
  auto sink = std::make_shared<CountingSink>();
  lab::ExploreResult result = lab::Explore({.runs = 3}, [sink](Cx& cx) -> Task<void> {
    auto region = Region::open(cx, "leaky", [sink](Cx& rx) -> Task<void> {
      absl::StatusOr<ObligationId> id =
          rx.region().ledger().record(ObligationKind::kPermit, "slot", SourceSite::current());
      Permit<int> permit(sink.get(), &rx.region().ledger(), *id);
      co_return;  // dropped: a leak
    });
    (void)co_await std::move(region);
  });
  ASSERT_LAB_FINDS(result, "obligation_leak");
  EXPECT_THAT(result.failure->message, HasSubstr("'slot'"));
  EXPECT_THAT(result.failure->message, HasSubstr("lab_runtime_test.cc"));
}

// An awaiter that suspends without parking anywhere: nothing can resume the task.
struct ForgetfulAwaiter {
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<>) noexcept { return true; }
  void await_resume() noexcept {}
};

TEST(LabOracleTest, LostWakeupIsToldApartFromDeadlock) {
  lab::ExploreResult result = lab::Explore({.runs = 2}, [](Cx& cx) -> Task<void> {
    (void)cx.spawn("forgetful", [](Cx& c) -> Task<void> { co_await ForgetfulAwaiter{}; });
    co_return;
  });
  ASSERT_LAB_FINDS(result, "lost_wakeup");
  EXPECT_THAT(result.failure->message, HasSubstr("task 'forgetful'"));
  EXPECT_THAT(result.failure->message, HasSubstr("no registered wait"));
}

TEST(LabOracleTest, DeadlockNamesEveryWait) {
  lab::ExploreResult result = lab::Explore({.runs = 2}, [](Cx& cx) -> Task<void> {
    auto flag = std::make_shared<lab::Tracked<bool>>(false, "never_set");
    (void)cx.spawn("waiter", [flag](Cx& c) -> Task<void> {
      auto wait = flag->wait_until(c, [](bool v) { return v; });
      (void)co_await std::move(wait);
    });
    co_return;
  });
  ASSERT_LAB_FINDS(result, "deadlock");
  EXPECT_THAT(result.failure->message, HasSubstr("task 'waiter'"));
  EXPECT_THAT(result.failure->message, HasSubstr("lab::Tracked 'never_set'"));
}

// What a run records (lab/README.md): a plain runtime keeps no trace, no choices and no logical
// ids, and hashes its schedule instead; its schedule, outcome, oracles and deadlock report are
// the same as with the trace on.
Task<void> mixed_failures(Cx& cx) {
  co_await busy_scenario(cx);
  auto flag = std::make_shared<lab::Tracked<bool>>(false, "never_set");
  (void)cx.spawn("waiter", [flag](Cx& c) -> Task<void> {
    auto wait = flag->wait_until(c, [](bool v) { return v; });
    (void)co_await std::move(wait);
  });
  (void)cx.spawn("forgetful", [](Cx& c) -> Task<void> { co_await ForgetfulAwaiter{}; });
  co_return;
}

TEST(LabRecordingTest, PlainRuntimeRecordsLessAndBehavesTheSame) {
  std::set<uint64_t> hashes;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    lab::LabRuntime plain(lab::LabOptions{.seed = seed});
    lab::LabRuntime traced(lab::LabOptions{.seed = seed, .trace = true});
    lab::LabRuntime again(lab::LabOptions{.seed = seed});
    const auto a = plain.run(mixed_failures);
    const auto b = traced.run(mixed_failures);
    (void)again.run(mixed_failures);
    EXPECT_EQ(a.to_string(), b.to_string());
    EXPECT_EQ(plain.report().steps, traced.report().steps);
    EXPECT_EQ(plain.report().tasks_finished, traced.report().tasks_finished);
    // Includes cancel_protocol: busy_scenario's cancel is acknowledged, and without the trace
    // the oracle must still know it was requested.
    EXPECT_EQ(plain.report().violations, traced.report().violations);
    EXPECT_EQ(plain.report().deadlock_report, traced.report().deadlock_report);
    EXPECT_TRUE(plain.report().deadlocked);
    EXPECT_THAT(plain.report().deadlock_report, HasSubstr("lab::Tracked 'never_set'"));
    EXPECT_THAT(::testing::PrintToString(plain.report().violations), HasSubstr("task 'forgetful'"));
    // Without the trace: no events, no tail, no choices; a schedule hash that is reproducible.
    EXPECT_EQ(plain.report().trace_events, 0u);
    EXPECT_EQ(plain.trace().render_tail(), "");
    EXPECT_TRUE(plain.report().choices.empty());
    EXPECT_GT(traced.report().trace_events, 0u);
    EXPECT_FALSE(traced.report().choices.empty());
    EXPECT_EQ(plain.report().trace_hash, again.report().trace_hash);
    hashes.insert(plain.report().trace_hash);
  }
  EXPECT_GT(hashes.size(), 5u);
}

TEST(LabOracleTest, UseAfterScopeThroughTrackedRef) {
  lab::ExploreResult result =
      lab::Explore({.strategy = lab::Strategy::kDpor}, [](Cx& cx) -> Task<void> {
        auto inner = Region::open(cx, "scope", [](Cx& rx) -> Task<void> {
          lab::Tracked<int> local(0, "local");
          (void)rx.spawn("late", [ref = local.ref()](Cx& c) -> Task<void> {
            (void)co_await c.yield();
            ref.store(1);
          });
          co_return;  // `local` dies here; "late" still runs
        });
        (void)co_await std::move(inner);
      });
  ASSERT_LAB_FINDS(result, "use_after_scope");
  EXPECT_THAT(result.failure->message, HasSubstr("'local'"));
  EXPECT_THAT(result.failure->message, HasSubstr("task 'late'"));
}

TEST(LabOracleTest, TrackedCreatedOutsideTheRunIsReported) {
  auto shared = std::make_shared<lab::Tracked<int>>(0, "outside");
  lab::ExploreResult result = lab::Explore({.runs = 2}, [shared](Cx& cx) -> Task<void> {
    shared->store(1);
    co_return;
  });
  ASSERT_LAB_FINDS(result, "tracked_outside_run");
}

// Positive control: finalizers, cancellation, obligations used correctly raise nothing.
TEST(LabOracleTest, CorrectProgramRaisesNothing) {
  auto sink = std::make_shared<CountingSink>();
  lab::ExploreResult result =
      lab::Explore({.strategy = lab::Strategy::kDpor, .runs = 500}, [sink](Cx& cx) -> Task<void> {
        auto finalized = std::make_shared<lab::Tracked<int>>(0, "finalized");
        auto region = Region::open(cx, "careful", [sink, finalized](Cx& rx) -> Task<void> {
          (void)rx.defer([finalized] { finalized->store(finalized->load() + 1); });
          (void)rx.defer([finalized] { finalized->store(finalized->load() + 10); });
          auto worker = rx.spawn("worker", [sink](Cx& c) -> Task<void> {
            absl::StatusOr<ObligationId> id =
                c.region().ledger().record(ObligationKind::kPermit, "slot", SourceSite::current());
            if (!id.ok()) co_return;  // the region is already closing (SPEC 3.2)
            Permit<int> permit(sink.get(), &c.region().ledger(), *id);
            absl::Status status = co_await c.yield();
            if (!status.ok()) {
              std::move(permit).abort();
              co_return;
            }
            std::move(permit).send(1);
          });
          (void)co_await rx.yield();
          worker->cancel("maybe too late");
        });
        (void)co_await std::move(region);
        lab::check(finalized->load() == 11, "both finalizers ran once");
      });
  EXPECT_LAB_OK(result);
  EXPECT_TRUE(result.exhausted);
  EXPECT_GT(result.complete_runs(), 1u);
}

// ----- Fault injection (SPEC 11.4) ---------------------------------------------------------

// A task with three awaits; each systematic cancel point is reached once.
TEST(LabFaultTest, SystematicCancelVisitsEveryAwait) {
  auto cancelled_at = std::make_shared<std::vector<int>>();
  lab::ExploreOptions options{
      .strategy = lab::Strategy::kDpor, .faults = {.target = "stepper"}, .systematic_cancel = true};
  lab::ExploreResult result = lab::Explore(options, [cancelled_at](Cx& cx) -> Task<void> {
    (void)cx.spawn("stepper", [cancelled_at](Cx& c) -> Task<void> {
      for (int await = 1; await <= 3; ++await) {
        absl::Status status = co_await c.yield();
        if (!status.ok()) {
          cancelled_at->push_back(await);
          co_return;
        }
      }
    });
    co_return;
  });
  EXPECT_LAB_OK(result);
  EXPECT_TRUE(result.exhausted) << result.report();
  EXPECT_EQ(result.cancel_points, 4u);  // 1, 2, 3 reached; 4 is not
  EXPECT_THAT(*cancelled_at, ::testing::ElementsAre(1, 2, 3));
}

TEST(LabFaultTest, RandomCancelAndDelaysAreSeeded) {
  auto run = [] {
    lab::ExploreOptions options{.runs = 40,
                                .faults = {.cancel_probability = 0.3,
                                           .delay_probability = 0.3,
                                           .max_delay = Duration::Milliseconds(2)}};
    return lab::Explore(options, busy_scenario);
  };
  lab::ExploreResult first = run();
  lab::ExploreResult second = run();
  EXPECT_LAB_OK(first);
  EXPECT_EQ(first.trace_hashes, second.trace_hashes);
  EXPECT_GT(first.distinct_traces, 10u);
  // With DPOR, random faults are refused with an actionable message.
  lab::ExploreResult refused = lab::Explore(
      {.strategy = lab::Strategy::kDpor, .faults = {.cancel_probability = 0.5}}, busy_scenario);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.report(), HasSubstr("cancel_at_await"));
}

TEST(LabFaultTest, DelayedTimerFiresLate) {
  bool late = false;
  for (uint64_t seed = 0; seed < 20 && !late; ++seed) {
    lab::LabRuntime runtime(lab::LabOptions{
        .seed = seed,
        .faults = {.delay_probability = 1.0, .max_delay = Duration::Milliseconds(5)}});
    auto outcome = runtime.run(
        [](Cx& cx) -> Task<void> { (void)co_await cx.sleep(Duration::Milliseconds(1)); });
    EXPECT_TRUE(outcome.ok());
    late = runtime.report().end_time > Time::Epoch() + Duration::Milliseconds(1);
    EXPECT_GT(runtime.report().faults_injected, 0u);
  }
  EXPECT_TRUE(late);
}

// The wait protocol ignores stale wakes (a wake for an old ticket or one never issued).
TEST(LabFaultTest, StaleWakesAreIgnored) {
  lab::LabRuntime runtime(lab::LabOptions{.seed = 3, .faults = {.stale_wakes = true}});
  auto outcome = runtime.run([](Cx& cx) -> Task<void> {
    auto flag = std::make_shared<lab::Tracked<int>>(0, "flag");
    auto sleeper = cx.spawn(
        "sleeper", [](Cx& c) -> Task<void> { (void)co_await c.sleep(Duration::Milliseconds(1)); });
    auto waiter = cx.spawn("waiter", [flag](Cx& c) -> Task<void> {
      auto wait = flag->wait_until(c, [](int v) { return v == 2; });
      (void)co_await std::move(wait);
    });
    for (int i = 1; i <= 2; ++i) {
      (void)co_await cx.yield();
      flag->store(i);
    }
    (void)co_await sleeper->join(cx);
    (void)co_await waiter->join(cx);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_THAT(runtime.report().violations, ::testing::IsEmpty());
  EXPECT_GT(runtime.report().faults_injected, 2u);
  EXPECT_THAT(runtime.trace().render_tail() + "", ::testing::Not(HasSubstr("ORACLE")));
}

TEST(LabFaultTest, PollQuotaExhaustionCancelsTheTask) {
  auto observed = std::make_shared<CancelKind>(CancelKind::kUser);
  lab::ExploreResult result =
      lab::Explore({.runs = 3, .faults = {.target = "spinner", .poll_quota = 10}},
                   [observed](Cx& cx) -> Task<void> {
                     auto spinner = cx.spawn("spinner", [](Cx& c) -> Task<void> {
                       for (int i = 0; i < 100; ++i) {
                         absl::Status status = co_await c.yield();
                         if (!status.ok()) co_return;
                       }
                     });
                     Outcome<void> joined = co_await spinner->join(cx);
                     if (joined.is_cancelled()) *observed = joined.cancel_reason().kind();
                   });
  EXPECT_LAB_OK(result);
  EXPECT_EQ(*observed, CancelKind::kPollQuota);
}

TEST(LabFaultTest, LivelockIsReportedAndTornDown) {
  lab::ExploreResult result =
      lab::Explore({.runs = 1, .max_steps = 2000}, [](Cx& cx) -> Task<void> {
        auto flag = std::make_shared<lab::Tracked<bool>>(false, "never");
        (void)cx.spawn("spinner", [flag](Cx& c) -> Task<void> {
          while (!flag->load()) (void)co_await c.yield();  // ignores cancellation as well
        });
        co_return;
      });
  ASSERT_LAB_FINDS(result, "livelock");
  EXPECT_THAT(result.failure->message, HasSubstr("2000 steps"));
}

}  // namespace
}  // namespace asupersync

namespace asupersync {
namespace {

// ----- The worked example of lab/README.md -------------------------------------------------

// A request handler reserves a reply slot (an obligation), then awaits; a shutdown may cancel it
// there. The first version forgets the permit on the cancel path.
class ReplySink final : public PermitSink<std::string> {
 public:
  void commit(std::string) override {}
  void release() noexcept override {}
};

Task<void> handler_scenario(Cx& cx, bool fixed) {
  auto sink = std::make_shared<ReplySink>();
  auto handler = cx.spawn("handler", [sink, fixed](Cx& c) -> Task<void> {
    absl::StatusOr<ObligationId> id =
        c.region().ledger().record(ObligationKind::kPermit, "reply slot", SourceSite::current());
    if (!id.ok()) co_return;
    Permit<std::string> reply(sink.get(), &c.region().ledger(), *id);
    absl::Status status = co_await c.yield();  // e.g. waiting for the backend
    if (!status.ok()) {
      if (fixed) std::move(reply).abort();  // the fix: give the slot back
      co_return;
    }
    std::move(reply).send("200 OK");
  });
  auto target = std::make_shared<TaskHandle<void>>(std::move(handler).value());
  auto shutdown = cx.spawn("shutdown", [target](Cx& c) -> Task<void> {
    (void)co_await c.yield();
    target->cancel("server shutting down");
  });
  (void)co_await shutdown->join(cx);
  (void)co_await target->join(cx);
}

TEST(LabReadmeExampleTest, FindReplayAndFixALeakedPermit) {
  const std::string trace_path = temp_path("handler_trace.json");
  lab::ExploreResult result =
      lab::Explore({.strategy = lab::Strategy::kDpor, .trace_path = trace_path},
                   [](Cx& cx) { return handler_scenario(cx, /*fixed=*/false); });
  ASSERT_LAB_FINDS(result, "obligation_leak");
  std::printf("%s", result.report().c_str());
  std::ifstream file(trace_path);
  std::stringstream json;
  json << file.rdbuf();
  std::printf("--- %s (first 1500 bytes)\n%s\n", trace_path.c_str(),
              json.str().substr(0, 1500).c_str());

  // The replay string runs exactly that schedule again.
  lab::ExploreResult replayed = lab::Explore({.replay = result.failure->replay},
                                             [](Cx& cx) { return handler_scenario(cx, false); });
  ASSERT_TRUE(replayed.failure.has_value());
  EXPECT_EQ(replayed.failure->trace_hash, result.failure->trace_hash);

  // The fix passes full exploration, with systematic cancellation at every await on top.
  lab::ExploreResult fixed = lab::Explore({.strategy = lab::Strategy::kDpor},
                                          [](Cx& cx) { return handler_scenario(cx, true); });
  EXPECT_LAB_OK(fixed);
  EXPECT_TRUE(fixed.exhausted);
  std::printf("%s", fixed.report().c_str());
  lab::ExploreResult cancels = lab::Explore({.strategy = lab::Strategy::kDpor,
                                             .faults = {.target = "handler"},
                                             .systematic_cancel = true},
                                            [](Cx& cx) { return handler_scenario(cx, true); });
  EXPECT_LAB_OK(cancels);
  EXPECT_TRUE(cancels.exhausted);
  std::printf("%s", cancels.report().c_str());
}

}  // namespace
}  // namespace asupersync
