#include "lab/explore.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "lab/dpor.h"
#include "lab/replay.h"

namespace asupersync::lab {
namespace {

using internal::splitmix64;

constexpr uint64_t kRandomSalt = 0x3c6ef372fe94f82bull;
constexpr uint64_t kPctSalt = 0xa54ff53a5f1d36f1ull;

std::string hex(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof(buffer), "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

std::string indent(const std::string& text, const std::string& prefix) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    absl::StrAppend(&out, prefix, text.substr(start, end - start), "\n");
    start = end + 1;
  }
  return out;
}

// Seeded uniform choice.
class RandomStrategy final : public internal::ScheduleStrategy {
 public:
  explicit RandomStrategy(uint64_t seed) : state_(seed ^ kRandomSalt) {}
  size_t choose(std::span<const internal::Candidate> candidates, uint64_t) override {
    if (candidates.size() == 1) return 0;
    return splitmix64(state_) % candidates.size();
  }

 private:
  uint64_t state_;
};

// PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte 2010): each task gets a random priority
// above `depth` when it appears; d − 1 change points are drawn uniformly over the expected step
// count; at change point i the task about to run drops to priority i (below every initial
// priority). The highest-priority runnable task always runs.
class PctStrategy final : public internal::ScheduleStrategy {
 public:
  PctStrategy(uint64_t seed, uint32_t depth, uint64_t steps)
      : state_(seed ^ kPctSalt), depth_(depth) {
    const uint64_t span = std::max<uint64_t>(1, steps);
    for (uint32_t i = 1; i < depth; ++i) change_points_.push_back(1 + splitmix64(state_) % span);
    applied_.assign(change_points_.size(), false);
  }
  void on_task_created(uint32_t lid) override {
    if (priorities_.size() <= lid) priorities_.resize(lid + 1, 0);
    priorities_[lid] = depth_ + 1 + (splitmix64(state_) >> 16);
  }
  size_t choose(std::span<const internal::Candidate> candidates, uint64_t step) override {
    const uint64_t now = step + 1;
    for (size_t i = 0; i < change_points_.size(); ++i) {
      if (applied_[i] || change_points_[i] != now) continue;
      applied_[i] = true;
      priority(candidates[best(candidates)].lid) = i + 1;
    }
    return best(candidates);
  }

 private:
  uint64_t& priority(uint32_t lid) {
    if (priorities_.size() <= lid) priorities_.resize(lid + 1, 0);
    return priorities_[lid];
  }
  size_t best(std::span<const internal::Candidate> candidates) {
    size_t index = 0;
    for (size_t i = 1; i < candidates.size(); ++i) {
      if (priority(candidates[i].lid) > priority(candidates[index].lid)) index = i;
    }
    return index;
  }

  uint64_t state_;
  uint32_t depth_;
  std::vector<uint64_t> change_points_;
  std::vector<bool> applied_;
  std::vector<uint64_t> priorities_;
};

// Forced choices (a replay string's).
class ReplayStrategy final : public internal::ScheduleStrategy {
 public:
  explicit ReplayStrategy(std::vector<uint32_t> choices) : choices_(std::move(choices)) {}
  size_t choose(std::span<const internal::Candidate> candidates, uint64_t) override {
    if (candidates.size() == 1) return 0;
    if (next_ >= choices_.size()) {
      overran_ = true;
      return 0;
    }
    return choices_[next_++];
  }
  std::string divergence() const {
    if (overran_) {
      return absl::StrCat("the run needed more choices than the replay string's ", choices_.size());
    }
    if (next_ < choices_.size()) {
      return absl::StrCat("the run ended after ", next_, " of the replay string's ",
                          choices_.size(), " choices");
    }
    return "";
  }

 private:
  std::vector<uint32_t> choices_;
  size_t next_ = 0;
  bool overran_ = false;
};

std::optional<LabFailure> classify(const internal::RunResult& run, const ExploreOptions& options) {
  const LabReport& report = run.report;
  LabFailure failure;
  if (!report.divergence.empty()) {
    failure.kind = "replay_diverged";
    failure.message =
        absl::StrCat("the forced schedule does not fit this program: ", report.divergence,
                     " (was the replay string made by this test with these options?)");
  } else if (report.livelock) {
    failure.kind = "livelock";
    failure.message = absl::StrCat(
        "more than ", options.max_steps,
        " steps without finishing: tasks keep running without progress (a spin loop whose "
        "condition never comes true?). The tree was cancelled and drained.");
  } else if (report.deadlocked) {
    failure.kind = "deadlock";
    for (const Violation& violation : report.oracle_violations) {
      if (violation.oracle == "lost_wakeup") {
        failure.kind = "lost_wakeup";
        failure.message = violation.message + "\n";
      }
    }
    absl::StrAppend(&failure.message,
                    "every task is blocked and no timer is pending; the region tree:\n",
                    report.deadlock_report);
  } else if (!report.oracle_violations.empty()) {
    failure.kind = report.oracle_violations.front().oracle;
    failure.message = report.oracle_violations.front().message;
    for (size_t i = 1; i < report.oracle_violations.size(); ++i) {
      absl::StrAppend(&failure.message, "\nalso ", report.violations[i]);
    }
  } else if (!report.check_failures.empty()) {
    failure.kind = "check";
    failure.message = absl::StrCat("lab::check failed: ", report.check_failures.front());
    for (size_t i = 1; i < report.check_failures.size(); ++i) {
      absl::StrAppend(&failure.message, "\nalso ", report.check_failures[i]);
    }
  } else if (run.outcome == OutcomeKind::kErr || run.outcome == OutcomeKind::kPanicked ||
             (run.outcome == OutcomeKind::kCancelled && options.cancelled_is_failure)) {
    failure.kind = "outcome";
    failure.message = absl::StrCat("the scenario finished ", run.outcome_text);
  } else {
    return std::nullopt;
  }
  return failure;
}

absl::Status validate(const ExploreOptions& options) {
  if (options.runs == 0) {
    return absl::InvalidArgumentError("lab::Explore: runs is 0; give a run budget of at least 1");
  }
  if (options.strategy == Strategy::kPct && options.pct_depth == 0) {
    return absl::InvalidArgumentError(
        "lab::Explore: pct_depth is 0; PCT needs a depth of at least 1 (1 = no change points)");
  }
  if (options.strategy == Strategy::kDpor) {
    if (options.faults.cancel_probability > 0 || options.faults.delay_probability > 0) {
      return absl::InvalidArgumentError(
          "lab::Explore: DPOR explores the schedules of one deterministic program; random faults "
          "(faults.cancel_probability, faults.delay_probability) would change the program "
          "between runs. Use faults.cancel_at_await or systematic_cancel with DPOR, or the "
          "random/PCT strategies for random faults.");
    }
    if (options.lanes != LanePolicy::kAnyRunnable) {
      return absl::InvalidArgumentError(
          "lab::Explore: DPOR needs lanes = LanePolicy::kAnyRunnable (with strict lanes a wake "
          "into a higher lane disables other tasks, which the reduction does not model)");
    }
  }
  if (options.systematic_cancel && options.faults.cancel_at_await != 0) {
    return absl::InvalidArgumentError(
        "lab::Explore: systematic_cancel enumerates the cancel point itself; leave "
        "faults.cancel_at_await at 0");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view strategy_name(Strategy strategy) {
  switch (strategy) {
    case Strategy::kRandom:
      return "random";
    case Strategy::kPct:
      return "pct";
    case Strategy::kDpor:
      return "dpor";
  }
  return "unknown";
}

std::string ExploreResult::report() const {
  const std::string_view name = strategy_name(strategy);
  std::string out =
      absl::StrCat("lab::Explore(", absl::string_view(name.data(), name.size()), "): ");
  if (!status.ok()) return absl::StrCat(out, "ERROR: ", status.ToString(), "\n");
  if (!failure.has_value()) {
    absl::StrAppend(&out, "passed ", complete_runs(), " runs (", distinct_traces,
                    " distinct traces, ", total_steps, " steps)");
  } else {
    absl::StrAppend(&out, "FAILED: ", failure->kind, " in run ", failure->run, " of ", runs,
                    " (seed ", hex(failure->seed));
    if (failed_runs > 1) absl::StrAppend(&out, "; ", failed_runs, " runs failed in all");
    if (failure->cancel_at_await > 0) {
      absl::StrAppend(&out, ", cancel at await ", failure->cancel_at_await);
    }
    absl::StrAppend(&out, ")");
  }
  if (strategy == Strategy::kDpor) {
    absl::StrAppend(&out, exhausted             ? "; state space exhausted"
                          : failure.has_value() ? "; stopped at the first failure"
                                                : "; not exhausted (run budget reached)");
    if (sleep_blocked > 0) absl::StrAppend(&out, "; ", sleep_blocked, " sleep-set blocked runs");
  }
  if (cancel_points > 0) absl::StrAppend(&out, "; cancel points explored: ", cancel_points);
  absl::StrAppend(&out, "\n");
  if (failure.has_value()) {
    absl::StrAppend(&out, indent(failure->message, "  "));
    absl::StrAppend(&out, "  replay: LAB_REPLAY='", failure->replay, "' (",
                    failure->reproduced ? "reproduced: same failure, same trace hash "
                                        : "NOT reproduced by replaying it; trace hash ",
                    hex(failure->trace_hash), ", ", failure->steps, " steps)\n");
    absl::StrAppend(&out, "  trace tail:\n", failure->trace_tail);
  }
  return out;
}

namespace internal {

ExploreResult explore(const ExploreOptions& input, const RunOnce& run_once) {
  ExploreOptions options = input;
  if (const char* replay = std::getenv("LAB_REPLAY"); replay != nullptr && *replay != '\0') {
    options.replay = replay;
  }
  if (const char* path = std::getenv("LAB_TRACE"); path != nullptr && *path != '\0') {
    options.trace_path = path;
  }
  ExploreResult result;
  result.strategy = options.strategy;
  result.status = validate(options);
  if (!result.status.ok()) return result;

  LogicalIds ids;
  auto lab_options = [&](uint64_t seed, uint32_t cancel_point) {
    LabOptions lab;
    lab.seed = seed;
    lab.randomize = false;
    lab.max_steps = options.max_steps;
    lab.lanes = options.lanes;
    lab.faults = options.faults;
    lab.faults.cancel_at_await = cancel_point;
    lab.oracles = options.oracles;
    lab.trace = true;  // failure reports and replay strings need the trace and the choices
    lab.trace_tail = options.trace_tail;
    lab.logical_ids = &ids;
    return lab;
  };
  auto token_of = [&](const RunResult& run, uint64_t seed, uint32_t cancel_point,
                      LanePolicy lanes) {
    ReplayToken token;
    token.lanes = lanes;
    token.seed = seed;
    token.cancel_at_await = cancel_point;
    token.trace_hash = run.report.trace_hash;
    token.choices = run.report.choices;
    return token;
  };
  // Runs `token`'s schedule once (full trace if a path is given).
  auto replay_run = [&](const ReplayToken& token, const std::string& trace_path,
                        std::string* divergence) {
    ReplayStrategy strategy(token.choices);
    LabOptions lab = lab_options(token.seed, token.cancel_at_await);
    lab.lanes = token.lanes;
    lab.strategy = &strategy;
    lab.full_trace = !trace_path.empty();
    RunResult run = run_once(lab, trace_path);
    const std::string leftover = strategy.divergence();
    if (!leftover.empty() && run.report.divergence.empty()) run.report.divergence = leftover;
    if (divergence != nullptr) *divergence = run.report.divergence;
    return run;
  };

  if (!options.replay.empty()) {
    absl::StatusOr<ReplayToken> token = decode_replay(options.replay);
    if (!token.ok()) {
      result.status = token.status();
      return result;
    }
    RunResult run = replay_run(*token, options.trace_path, nullptr);
    result.runs = 1;
    result.total_steps = run.report.steps;
    result.distinct_traces = 1;
    result.trace_hashes.push_back(run.report.trace_hash);
    const bool same_hash = token->trace_hash == 0 || token->trace_hash == run.report.trace_hash;
    std::optional<LabFailure> failure = classify(run, options);
    if (!failure.has_value() && !same_hash) {
      failure = LabFailure{.kind = "replay_diverged",
                           .message =
                               "the replayed run passed, but its trace hash differs from "
                               "the replay string's: the scenario or options changed"};
    }
    if (failure.has_value()) {
      failure->run = 1;
      failure->seed = token->seed;
      failure->cancel_at_await = token->cancel_at_await;
      failure->replay =
          encode_replay(token_of(run, token->seed, token->cancel_at_await, token->lanes));
      failure->trace_hash = run.report.trace_hash;
      failure->steps = run.report.steps;
      failure->trace_tail = run.trace_tail;
      failure->reproduced = same_hash;
      if (!run.trace_written.ok())
        absl::StrAppend(&failure->message, "\n(", run.trace_written.ToString(), ")");
      result.failure = std::move(failure);
    } else if (!run.trace_written.ok()) {
      result.status = run.trace_written;
    }
    return result;
  }

  std::set<uint64_t> hashes;
  std::optional<ReplayToken> last_token;
  uint64_t counted_runs = 0;
  uint64_t passed_runs = 0;
  // Accounts one run; true when exploration should stop.
  auto consider = [&](RunResult& run, uint64_t seed, uint32_t cancel_point) {
    ++result.runs;
    result.total_steps += run.report.steps;
    if (run.report.sleep_blocked) {
      ++result.sleep_blocked;
      return false;
    }
    hashes.insert(run.report.trace_hash);
    result.trace_hashes.push_back(run.report.trace_hash);
    last_token = token_of(run, seed, cancel_point, options.lanes);
    ++counted_runs;
    if (!classify(run, options).has_value()) ++passed_runs;
    if (result.failure.has_value()) return false;  // keep exploring (stop_on_failure is off)
    std::optional<LabFailure> failure = classify(run, options);
    if (!failure.has_value()) return false;
    failure->run = result.runs;
    failure->seed = seed;
    failure->cancel_at_await = cancel_point;
    const ReplayToken token = *last_token;
    failure->replay = encode_replay(token);
    failure->trace_hash = run.report.trace_hash;
    failure->steps = run.report.steps;
    failure->trace_tail = run.trace_tail;
    // Check the replay string reproduces the failure (and write the Chrome trace from it).
    RunResult again = replay_run(token, options.trace_path, nullptr);
    std::optional<LabFailure> repeated = classify(again, options);
    failure->reproduced = repeated.has_value() && repeated->kind == failure->kind &&
                          again.report.trace_hash == run.report.trace_hash;
    if (!again.trace_written.ok()) {
      absl::StrAppend(&failure->message, "\n(", again.trace_written.ToString(), ")");
    }
    result.failure = std::move(failure);
    return options.stop_on_failure;
  };

  const bool dpor = options.strategy == Strategy::kDpor;
  uint32_t cancel_point = options.systematic_cancel ? 1 : options.faults.cancel_at_await;
  uint64_t seed_offset = 0;
  uint64_t pct_estimate = options.pct_steps > 0 ? options.pct_steps : 64;
  bool exhausted = dpor;
  while (true) {
    bool reached = false;
    bool stop = false;
    if (dpor) {
      DporExplorer explorer;
      bool more = true;
      while (more && result.runs < options.runs) {
        explorer.begin_execution();
        LabOptions lab = lab_options(options.seed, cancel_point);
        lab.strategy = &explorer;
        lab.record_steps = true;
        RunResult run = run_once(lab, "");
        reached = reached || run.report.cancel_point_reached;
        if (!explorer.divergence().empty() && !result.failure.has_value()) {
          ++result.runs;
          result.failure = LabFailure{
              .kind = "nondeterminism",
              .message = absl::StrCat(
                  "the scenario behaved differently under the same schedule prefix: ",
                  explorer.divergence(),
                  ". Shared state must be created inside the scenario and reached only through "
                  "lab::Tracked or runtime primitives; no wall clock, no unseeded randomness."),
              .run = result.runs,
              .seed = options.seed,
              .cancel_at_await = cancel_point,
              .replay = encode_replay(token_of(run, options.seed, cancel_point, options.lanes)),
              .trace_hash = run.report.trace_hash,
              .steps = run.report.steps,
              .trace_tail = run.trace_tail};
          stop = true;
          break;
        }
        stop = consider(run, options.seed, cancel_point);
        more = explorer.end_execution(run.steps);
        if (stop) break;
      }
      if (more || stop) exhausted = false;
    } else {
      const uint64_t budget =
          options.systematic_cancel ? options.runs_per_cancel_point : options.runs;
      for (uint64_t r = 0; r < budget && result.runs < options.runs; ++r) {
        const uint64_t seed = options.seed + seed_offset++;
        RandomStrategy random(seed);
        PctStrategy pct(seed, options.pct_depth, pct_estimate);
        LabOptions lab = lab_options(seed, cancel_point);
        lab.strategy = options.strategy == Strategy::kPct ? static_cast<ScheduleStrategy*>(&pct)
                                                          : static_cast<ScheduleStrategy*>(&random);
        RunResult run = run_once(lab, "");
        if (options.pct_steps == 0 && run.report.steps > 0) pct_estimate = run.report.steps;
        reached = reached || run.report.cancel_point_reached;
        stop = consider(run, seed, cancel_point);
        if (stop) break;
      }
    }
    if (cancel_point > 0) ++result.cancel_points;
    if (stop || !options.systematic_cancel || !reached) break;
    if (result.runs >= options.runs) {
      exhausted = false;
      break;
    }
    ++cancel_point;
  }
  result.exhausted = exhausted;
  result.distinct_traces = hashes.size();
  result.failed_runs = counted_runs - passed_runs;
  if (!result.failure.has_value() && !options.trace_path.empty() && last_token.has_value()) {
    // Nothing failed: export the last run.
    RunResult again = replay_run(*last_token, options.trace_path, nullptr);
    if (!again.trace_written.ok()) result.status = again.trace_written;
  }
  return result;
}

}  // namespace internal
}  // namespace asupersync::lab
