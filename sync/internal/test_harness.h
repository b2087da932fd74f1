// Test helpers for //sync: run a program on a runtime and check the runtime's oracles.
//
// The lab tests of this package are written against `RuntimeKind` so that they can be run on
// every runtime: today only the deterministic lab runtime exists (seeded interleavings); when
// the multi-threaded runtime lands, add it to `all_runtimes()` and to `run_program` (there the
// seed only varies the program, not the schedule) and every parameterised test runs on it too.
//
// Thread-safety: a program runs on the calling thread (lab). Lifetime: values.

#ifndef ASUPERSYNC_SYNC_INTERNAL_TEST_HARNESS_H_
#define ASUPERSYNC_SYNC_INTERNAL_TEST_HARNESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cx.h"
#include "core/region.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lab/lab_runtime.h"

namespace asupersync::sync_testing {

// Seeds per cancellation-injection test (the brief and SPEC 11 ask for at least 1,000).
inline constexpr uint64_t kSeeds = 1000;

enum class RuntimeKind { kLab };

inline std::vector<RuntimeKind> all_runtimes() { return {RuntimeKind::kLab}; }

inline std::string runtime_name(const ::testing::TestParamInfo<RuntimeKind>& info) {
  switch (info.param) {
    case RuntimeKind::kLab:
      return "Lab";
  }
  return "Unknown";
}

struct RunReport {
  bool deadlocked = false;
  std::string deadlock_report;
  std::vector<std::string> violations;
  Time end_time = Time::Epoch();
  uint64_t steps = 0;
};

// Runs `main(cx)` on a fresh runtime of `kind` with `seed`, expects the oracles to hold (no
// violation, no deadlock) and returns the program's outcome.
// `expected_oracle`: the program deliberately breaks that oracle (e.g. "obligation_leak" for a
// test of the leak path): every violation must be of it, and there must be one.
template <typename F>
auto run_program(RuntimeKind kind, uint64_t seed, F main, RunReport* report = nullptr,
                 std::string_view expected_oracle = {}) {
  // A tighter livelock bound than the lab's default: these programs take a few thousand steps.
  lab::LabRuntime runtime(lab::LabOptions{.seed = seed, .max_steps = 2'000'000});
  auto outcome = runtime.run(std::move(main));
  const lab::LabReport& lab_report = runtime.report();
  if (expected_oracle.empty()) {
    EXPECT_THAT(lab_report.violations, ::testing::IsEmpty()) << "seed " << seed;
  } else {
    EXPECT_THAT(
        lab_report.violations,
        ::testing::AllOf(::testing::Not(::testing::IsEmpty()),
                         ::testing::Each(::testing::StartsWith(std::string(expected_oracle)))))
        << "seed " << seed;
  }
  EXPECT_FALSE(lab_report.deadlocked) << "seed " << seed << "\n" << lab_report.deadlock_report;
  if (report != nullptr) {
    *report = RunReport{lab_report.deadlocked, lab_report.deadlock_report, lab_report.violations,
                        lab_report.end_time, lab_report.steps};
  }
  return outcome;
}

// Convenience for the unit tests: the lab with one seed.
template <typename F>
auto run_lab(uint64_t seed, F main) {
  return run_program(RuntimeKind::kLab, seed, std::move(main));
}

// The lab with one seed, for a program that leaks an obligation on purpose: the lab's
// obligation_leak oracle must report it (and nothing else).
template <typename F>
auto run_lab_with_leak(uint64_t seed, F main) {
  return run_program(RuntimeKind::kLab, seed, std::move(main), nullptr, "obligation_leak");
}

// A region's ledger totals, captured by a finalizer when the region finalizes (after all of its
// tasks finished and every obligation was resolved, SPEC 3.3, 3.6).
struct LedgerTotals {
  bool captured = false;
  size_t pending = 0;
  uint64_t committed = 0;
  uint64_t completed = 0;
  uint64_t aborted = 0;
  uint64_t leaked = 0;
};

inline std::shared_ptr<LedgerTotals> capture_ledger_at_close(Cx& cx) {
  auto totals = std::make_shared<LedgerTotals>();
  ObligationLedger* ledger = &cx.region().ledger();
  absl::Status deferred = cx.defer([ledger, totals] {
    *totals = LedgerTotals{true,
                           ledger->pending(),
                           ledger->committed(),
                           ledger->completed(),
                           ledger->aborted(),
                           ledger->leaked()};
  });
  EXPECT_TRUE(deferred.ok()) << deferred;
  return totals;
}

}  // namespace asupersync::sync_testing

#endif  // ASUPERSYNC_SYNC_INTERNAL_TEST_HARNESS_H_
