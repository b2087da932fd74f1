// lab::Explore: run a concurrency test under many schedules and report the first failure with
// everything needed to reproduce it.
//
//   lab::ExploreResult result = lab::Explore({.strategy = lab::Strategy::kDpor, .runs = 2000},
//       [](Cx& cx) -> Task<void> {
//         auto counter = std::make_shared<lab::Tracked<int>>(0, "counter");
//         auto work = Region::open(cx, "work", [counter](Cx& cx) -> Task<void> { ... });
//         co_await std::move(work);
//         lab::check(counter->load() == 2, "both increments landed");
//       });
//   EXPECT_LAB_OK(result);  // lab/testing.h: fails the test with result.report()
//
// Each run builds a fresh LabRuntime (LanePolicy::kAnyRunnable by default: any runnable task
// may go next, the interleavings N workers could produce) and runs the scenario as the body of
// region "main". A run FAILS when: the outcome is Err or Panicked (Cancelled too with
// `cancelled_is_failure`), a lab::check failed, an oracle fired (lab_runtime.h), the run
// deadlocked (every task blocked, no timer; lost wake-ups are called out), or it exceeded
// `max_steps` (livelock).
//
// Strategies (SPEC 11.2):
//   - kRandom: run r draws every choice from seed + r.
//   - kPct: probabilistic concurrency testing (Burckhardt et al. 2010): random task priorities,
//     depth−1 priority change points over the (estimated) step count; the highest-priority
//     runnable task runs. Finds any bug of depth d with probability ≥ 1/(n·k^(d−1)) per run.
//   - kDpor: systematic source-DPOR with sleep sets over the runtime's own events and
//     lab::Tracked accesses (lab/dpor.h): each equivalence class of interleavings runs once;
//     `exhausted` says whether the whole space was covered within `runs`.
// Faults (SPEC 11.4): `faults` as in LabOptions; with `systematic_cancel`, runs enumerate the
// cancel point k = 1, 2, ... (each target task cancelled at its k-th await) until no target
// reaches its k-th await, each point explored with the strategy (`runs_per_cancel_point` runs
// for random/PCT; the full space for DPOR). DPOR rejects random faults (cancel_probability,
// delay_probability): they would change the program between runs.
//
// On failure the report holds the run's seed, its replay string (lab/replay.h), the failure
// and the last `trace_tail` trace events; the failing schedule is then replayed once to check
// it reproduces (same failure, same trace hash). Setting `replay` — or the environment variable
// LAB_REPLAY, which wins; use it with --gtest_filter so it reaches one test — runs exactly that
// schedule instead of exploring. `trace_path` (or LAB_TRACE=<path>) writes the Chrome trace
// (lab/trace.h) of the failing run, or of the replayed run.
//
// Determinism: same options ⇒ same runs, same failure, same replay string and trace hash.
//
// Thread-safety: call from one thread; the scenario runs on that thread.
// Lifetime: the scenario is called once per run and must stay valid during Explore; state it
// shares between tasks belongs inside it (created per run).
// Cancellation contract: the scenario runs under the lab's cancel protocol; injected cancels
// are ordinary requests.

#ifndef ASUPERSYNC_LAB_EXPLORE_H_
#define ASUPERSYNC_LAB_EXPLORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/cx.h"
#include "core/task.h"
#include "lab/lab_runtime.h"
#include "lab/tracked.h"

namespace asupersync::lab {

enum class Strategy : uint8_t { kRandom, kPct, kDpor };
std::string_view strategy_name(Strategy strategy);

struct ExploreOptions {
  Strategy strategy = Strategy::kRandom;
  // First seed (random: run r uses seed + r; PCT likewise; DPOR: the fault seed).
  uint64_t seed = 1;
  // Run budget (DPOR: executions, sleep-set blocked ones included).
  uint64_t runs = 1000;
  // PCT: the bug depth d (d − 1 priority change points) and the expected steps per run (0:
  // learn it from the previous run, starting at 64).
  uint32_t pct_depth = 3;
  uint64_t pct_steps = 0;
  uint64_t max_steps = 100'000;
  bool oracles = true;
  FaultOptions faults;
  bool systematic_cancel = false;
  uint64_t runs_per_cancel_point = 8;
  LanePolicy lanes = LanePolicy::kAnyRunnable;
  // Run exactly this schedule (LAB_REPLAY overrides).
  std::string replay;
  // Chrome trace of the failing (or replayed) run (LAB_TRACE overrides).
  std::string trace_path;
  size_t trace_tail = 24;
  // Keep exploring after a failure (the first one is reported).
  bool stop_on_failure = true;
  bool cancelled_is_failure = false;
};

struct LabFailure {
  // The oracle's name, or "deadlock", "lost_wakeup", "livelock", "check", "outcome",
  // "nondeterminism", "replay_diverged".
  std::string kind;
  std::string message;
  uint64_t run = 0;  // 1-based
  uint64_t seed = 0;
  uint32_t cancel_at_await = 0;
  std::string replay;
  uint64_t trace_hash = 0;
  uint64_t steps = 0;
  std::string trace_tail;
  // The replay of this schedule gave the same failure kind and trace hash.
  bool reproduced = false;
};

struct ExploreResult {
  Strategy strategy = Strategy::kRandom;
  // Runs performed (DPOR: executions, including sleep-set blocked ones).
  uint64_t runs = 0;
  uint64_t sleep_blocked = 0;
  // DPOR: every equivalence class was run (within the budget).
  bool exhausted = false;
  uint64_t total_steps = 0;
  // Distinct trace hashes among the counted runs.
  uint64_t distinct_traces = 0;
  // Systematic cancellation: the cancel points explored.
  uint32_t cancel_points = 0;
  // Counted runs that failed (all of them with stop_on_failure off; else at most 1).
  uint64_t failed_runs = 0;
  std::optional<LabFailure> failure;
  // Bad options or an unreadable replay string (nothing ran).
  absl::Status status;
  // The trace hash of each counted run, in order (for determinism tests).
  std::vector<uint64_t> trace_hashes;

  bool ok() const { return status.ok() && !failure.has_value(); }
  // Complete runs (DPOR: excluding sleep-set blocked ones).
  uint64_t complete_runs() const { return runs - sleep_blocked; }
  // A multi-line report: verdict, counts and, on failure, seed, replay string, message, trace
  // tail.
  std::string report() const;
};

namespace internal {

// The result of one run, as Explore needs it.
struct RunResult {
  LabReport report;
  OutcomeKind outcome = OutcomeKind::kOk;
  std::string outcome_text;
  std::string trace_tail;
  std::vector<StepRecord> steps;
  absl::Status trace_written;
};
using RunOnce = std::function<RunResult(const LabOptions& options, const std::string& trace_path)>;

ExploreResult explore(const ExploreOptions& options, const RunOnce& run_once);

}  // namespace internal

template <typename F>
ExploreResult Explore(const ExploreOptions& options, F scenario) {
  internal::RunOnce run_once = [&scenario](const LabOptions& lab_options,
                                           const std::string& trace_path) {
    LabRuntime runtime(lab_options);
    auto outcome = runtime.run([&scenario](Cx& cx) { return scenario(cx); });
    internal::RunResult result;
    result.outcome = outcome.kind();
    if (!outcome.ok()) result.outcome_text = outcome.to_string();
    result.trace_tail = runtime.trace().render_tail();
    if (!trace_path.empty()) result.trace_written = runtime.trace().write_chrome_json(trace_path);
    result.steps = runtime.take_steps();
    result.report = runtime.report();
    return result;
  };
  return internal::explore(options, run_once);
}

}  // namespace asupersync::lab

#endif  // ASUPERSYNC_LAB_EXPLORE_H_
