// Source-DPOR with sleep sets over the lab's steps (Abdulla, Aronis, Jonsson, Sagonas 2014,
// "Optimal dynamic partial order reduction", Algorithm 1), run statelessly: every execution
// starts from scratch, replays a prefix of choices and extends it.
//
// Model. A transition is one *step*: a dispatch of a task until it suspends or completes. Its
// footprint is the set of runtime objects it touched (lab_runtime.h, ObjectType): tracked
// variables (read/write), its own cancel state (every step reads it; a cancel request writes
// it), region state (admission reads, transitions write), a region's finalizer list, virtual
// time (every step reads it; a time advance — a barrier, never a choice — writes it), the
// Random generator. Two steps of different tasks are dependent when they conflict on an
// object (not both reads, not both commutative updates). Happens-before is program order,
// conflicts, enabling edges (a spawn or a wake makes the woken task's next step possible; a
// race is never reversed across one) and release/acquire (a completion releases its region's
// quiescence, the close acquires it). Blocking waits are modelled as disabled transitions: a
// wait that parks is not a read (the task is not enabled until woken), the step that passes it
// is.
//
// Per execution, races are the pairs (e, e') of dependent steps of different tasks where e
// happens-before e' with nothing in between; for each, the initials of notdep(e).proc(e') are
// computed and, unless one is already in the backtrack or sleep set of the state before e, one
// is added there (proc(e') preferred). Sleep sets carry each explored sibling's footprint and
// drop it at the first dependent step. Executions in which every runnable task is asleep are
// "sleep-set blocked": counted separately, finished FIFO, their verdict ignored.
//
// Thread-safety: single-threaded (used by lab::Explore). Lifetime: one explorer per
// exploration (one scenario and one set of options). Cancellation: not applicable.

#ifndef ASUPERSYNC_LAB_DPOR_H_
#define ASUPERSYNC_LAB_DPOR_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lab/lab_runtime.h"

namespace asupersync::lab::internal {

// True when two footprints conflict (see the file comment).
bool conflicts(const std::vector<Access>& a, const std::vector<Access>& b);

class DporExplorer final : public ScheduleStrategy {
 public:
  // Call before each execution.
  void begin_execution();
  size_t choose(std::span<const Candidate> candidates, uint64_t step) override;
  void on_step_recorded(const StepRecord& record) override;
  // After each execution with its recorded steps: race analysis, then the next branch. False
  // when the space is exhausted.
  bool end_execution(const std::vector<StepRecord>& steps);

  // Set when a replayed prefix behaved differently (the scenario is not deterministic).
  const std::string& divergence() const { return divergence_; }
  uint64_t races() const { return races_; }
  uint64_t fallbacks() const { return fallbacks_; }

 private:
  struct Sleeper {
    uint32_t lid;
    std::vector<Access> footprint;
  };
  struct Node {
    std::vector<uint32_t> enabled;  // logical ids, candidate order
    uint32_t chosen = kNoLid;
    std::vector<Access> footprint;  // of the chosen step
    bool footprint_known = false;
    std::vector<uint32_t> backtrack;
    std::vector<uint32_t> done;
    std::vector<Sleeper> sleep;
  };
  void analyze(const std::vector<StepRecord>& steps);
  bool in_sleep(const Node& node, uint32_t lid) const;

  std::vector<Node> nodes_;
  size_t depth_ = 0;
  size_t prefix_ = 0;
  std::vector<Sleeper> next_sleep_;
  std::string divergence_;
  uint64_t races_ = 0;
  uint64_t fallbacks_ = 0;
};

}  // namespace asupersync::lab::internal

#endif  // ASUPERSYNC_LAB_DPOR_H_
