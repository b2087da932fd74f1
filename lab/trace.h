// Trace of one lab run: what happened, step by step, as compact events.
//
// The lab records every event of a run (dispatches, spawns, wakes, completions, cancel requests
// and acknowledgements, region transitions, reads and writes of `lab::Tracked` variables, time
// advances, injected faults, oracle violations) into a `TraceRecorder`:
//   - a 64-bit hash over every event (same seed and options ⇒ same hash; the "trace hash" a
//     determinism test compares),
//   - a ring of the last N events, rendered as text in a failure report (`render_tail`),
//   - optionally the whole run, exportable as Chrome trace-event JSON (`write_chrome_json`):
//     one track per task with an "X" span per resume and "i" instants for spawn, complete,
//     cancel requested / acknowledged, reads, writes and faults; one track per region with a span
//     from open to close. Open it in chrome://tracing or https://ui.perfetto.dev.
//
// Names are copied when first seen, so rendering never touches runtime objects.
//
// Thread-safety: none; a recorder belongs to the lab runtime that fills it (one thread).
// Lifetime: plain value; independent of the runtime once the run is over.
// Cancellation contract: not applicable (nothing here waits).

#ifndef ASUPERSYNC_LAB_TRACE_H_
#define ASUPERSYNC_LAB_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace asupersync::lab {

enum class TraceKind : uint8_t {
  kDispatch,            // task resumed (aux: lane)
  kSuspend,             // task suspended (end of its step)
  kComplete,            // task finished (aux: OutcomeKind)
  kSpawn,               // task spawned `other` (a task index)
  kWake,                // task woke `other` (a task index)
  kCancelRequested,     // `task` got a cancel request (aux: CancelKind)
  kCancelAcknowledged,  // `task` observed its request at a cancellation point
  kTimeAdvance,         // virtual time moved to `value` (ns)
  kRead,                // task read tracked object `other` (value: the value, if integral)
  kWrite,               // task wrote tracked object `other` (value: the new value, if integral)
  kRegionOpened,        // region `other` opened by `task`
  kRegionState,         // region `other` entered state `aux` (RegionState)
  kRegionCancelled,     // region `other` got a cancel request
  kRegionClosed,        // region `other` closed
  kFault,               // a fault was injected into `task` (aux: FaultKind)
  kViolation,           // an oracle fired (other: index into violation texts)
  kStaleWakeIgnored,    // an injected stale wake of `task` was ignored, as it must be
};

enum class FaultKind : uint8_t {
  kCancel,         // a cancel request injected at an await point
  kDelayDispatch,  // a dispatch delayed by `value` ns of virtual time
  kDelayTimer,     // a timer delayed by `value` ns
  kStaleWake,      // a stale wake (old ticket) delivered to a parked task
  kPollQuota,      // the task's poll quota declared spent (PollQuota cancel)
};

std::string_view trace_kind_name(TraceKind kind);
std::string_view fault_kind_name(FaultKind kind);

struct TraceEvent {
  uint64_t step = 0;    // the dispatch count when the event happened
  int64_t time_ns = 0;  // virtual time
  TraceKind kind = TraceKind::kDispatch;
  uint8_t aux = 0;     // kind-specific (see TraceKind)
  uint32_t task = 0;   // task index (0: no task, e.g. a time advance)
  uint32_t other = 0;  // kind-specific: task, region or object index
  int64_t value = 0;   // kind-specific
  bool has_value = false;
};

class TraceRecorder {
 public:
  // `tail` events are kept for failure reports; with `full`, every event (up to `max_full`).
  explicit TraceRecorder(size_t tail = 32, bool full = false, size_t max_full = 4'000'000);

  void record(const TraceEvent& event) {
    mix(event);
    if (tail_capacity_ > 0) {
      if (ring_.size() < tail_capacity_) {
        ring_.push_back(event);
      } else {
        ring_[ring_next_] = event;
      }
      if (++ring_next_ == tail_capacity_) ring_next_ = 0;
    }
    ++count_;
    if (full_ && events_.size() < max_full_) events_.push_back(event);
  }

  // Names, by index (first name wins). Index 0 is unused.
  void name_task(uint32_t index, std::string_view name);
  void name_region(uint32_t index, std::string_view name);
  void name_object(uint32_t index, std::string_view name);
  // Stores the text of a violation; returns the index a kViolation event refers to.
  uint32_t add_violation_text(std::string text) {
    violation_texts_.push_back(std::move(text));
    return static_cast<uint32_t>(violation_texts_.size() - 1);
  }

  uint64_t hash() const { return hash_; }
  uint64_t event_count() const { return count_; }
  bool full() const { return full_; }
  const std::vector<TraceEvent>& events() const { return events_; }

  // The last events (at most `tail`), oldest first, one line each.
  std::string render_tail() const;
  // One event as a line of text.
  std::string render(const TraceEvent& event) const;

  // The full trace as Chrome trace-event JSON. FailedPrecondition if the recorder was not
  // `full`; the file is written whole or not at all (Internal/NotFound naming the path).
  std::string chrome_json() const;
  absl::Status write_chrome_json(const std::string& path) const;

 private:
  void mix(const TraceEvent& event) {
    uint64_t h = hash_;
    auto step = [&h](uint64_t v) {
      h = (h ^ v) * 0x9e3779b97f4a7c15ull;
      h ^= h >> 29;
    };
    step((static_cast<uint64_t>(event.kind) << 8) | event.aux);
    step((static_cast<uint64_t>(event.task) << 32) | event.other);
    step(static_cast<uint64_t>(event.value));
    step(static_cast<uint64_t>(event.time_ns));
    hash_ = h;
  }
  std::string task_label(uint32_t index) const;
  std::string region_label(uint32_t index) const;
  std::string object_label(uint32_t index) const;

  size_t tail_capacity_;
  bool full_;
  size_t max_full_;
  std::vector<TraceEvent> ring_;
  size_t ring_next_ = 0;
  uint64_t count_ = 0;
  uint64_t hash_ = 0xcbf29ce484222325ull;
  std::vector<TraceEvent> events_;
  // Task names, interned: most tasks of a run share a few names, and a spawn in the lab should
  // not copy its name (task_name_ids_[index] indexes task_name_pool_; kNoName when unnamed).
  static constexpr uint32_t kNoName = 0xffffffffu;
  std::string_view task_name(uint32_t index) const {
    if (index >= task_name_ids_.size() || task_name_ids_[index] == kNoName) return {};
    return task_name_pool_[task_name_ids_[index]];
  }
  std::vector<uint32_t> task_name_ids_;
  std::vector<std::string> task_name_pool_;
  std::vector<std::string> region_names_;
  std::vector<std::string> object_names_;
  std::vector<std::string> violation_texts_;
};

}  // namespace asupersync::lab

#endif  // ASUPERSYNC_LAB_TRACE_H_
