// Replay strings: one lab run's schedule, compact enough to paste into a shell.
//
//   L1:<lanes>:<seed hex>:<cancel point>:<trace hash hex>:<choices>
//
// `lanes` is `a` (LanePolicy::kAnyRunnable) or `s` (kStrict); the seed feeds the fault-injection
// generator and the Random capability; the cancel point is FaultOptions::cancel_at_await of the
// run (0: none); the trace hash (0: unknown) lets a replay confirm it reproduced the same run.
// `choices` lists, for every choice point with more than one competitor, the index of the task
// that ran among the competitors (in the lab's deterministic candidate order). Indexes 0–61 are
// one character each (0-9, a-z, A-Z), larger ones `_<decimal>_`; a run of the same index is
// written once followed by `.<count>.`. Example: `0.12.10.3.2` is 0 twelve times, 1, 0 three
// times, 2. Everything is shell-safe; quote it anyway.
//
// Thread-safety: pure functions. Lifetime: values. Cancellation: not applicable.

#ifndef ASUPERSYNC_LAB_REPLAY_H_
#define ASUPERSYNC_LAB_REPLAY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lab/lab_runtime.h"

namespace asupersync::lab {

struct ReplayToken {
  LanePolicy lanes = LanePolicy::kAnyRunnable;
  uint64_t seed = 0;
  uint32_t cancel_at_await = 0;
  uint64_t trace_hash = 0;
  std::vector<uint32_t> choices;
};

std::string encode_replay(const ReplayToken& token);
// InvalidArgument naming the offending position for anything that is not a replay string.
absl::StatusOr<ReplayToken> decode_replay(std::string_view text);

}  // namespace asupersync::lab

#endif  // ASUPERSYNC_LAB_REPLAY_H_
