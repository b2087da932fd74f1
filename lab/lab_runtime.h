// LabRuntime: the deterministic single-threaded runtime (SPEC 11).
//
// Runs a program — `rt.run([](Cx& cx) -> Task<T> {...})` — to completion on one thread with
// virtual time. At each step it dispatches one runnable task; which one is a *choice point*:
//   - LanePolicy::kStrict (the default of a plain LabRuntime): only the highest non-empty lane
//     competes (cancel > timed > ready, SPEC 6.2), i.e. what one worker would do;
//   - LanePolicy::kAnyRunnable (what lab::Explore uses): every runnable task competes, i.e. the
//     interleavings N workers could produce.
// The choice comes from a seeded generator (`randomize`), FIFO order, or an exploration strategy
// (random, PCT, DPOR, replay; see lab/explore.h). When every task is blocked, virtual time jumps
// to the next timer; when no timer is pending either, the run is a deadlock: the report names
// every task and what it waits on (and calls out lost wake-ups), the blocked tasks are destroyed
// (kDestroy, so every awaiter deregisters) and the outcome is Err(FailedPrecondition). A run
// that exceeds `max_steps` is a livelock: it is reported, the tree is cancelled (Shutdown) and
// drained.
//
// Determinism: same seed and options ⇒ same schedule, same trace (events and hash), same
// outcomes. The runtime reads no wall clock, draws every choice from the seed, and iterates only
// over containers ordered by its own deterministic indices (never by address or hash).
//
// What a run records: what its options consume, nothing more (a plain runtime is also the
// benchmark executor of issue 3). Always: the report's counts, violations, stalls and check
// failures, the state the oracles need, and the schedule hash. With `trace` (lab::Explore sets
// it): the trace (events, hash, tail, names) and the choices. With `trace`, a strategy,
// `logical_ids`, `record_steps` or any fault: the logical ids and a per-task record (TaskInfo);
// with `record_steps`, the steps' footprints. Each of these is recorded exactly as when all were
// recorded in every run; lab/README.md has the table.
//
// Oracles (SPEC 11.3), checked while the run goes and after it: no task outlives its region,
// every closed region is quiescent, no leaked obligation, finalizers ran exactly once, legal
// cancel-protocol transitions (task: request → acknowledge → Cancelled outcome; region states
// only move forward), no lost wake-up, deadlock detection, no use of a lab::Tracked after its
// scope ended, injected stale wakes ignored. Violations are listed in `report().violations`
// ("oracle: message") and `report().oracle_violations`.
//
// Fault injection (SPEC 11.4) through `LabOptions::faults`: cancellation at the k-th await of a
// target task or at random awaits, extra virtual time before a dispatch or a timer, stale wakes
// (which the wait protocol must ignore), poll-quota exhaustion.
//
// Thread-safety: a LabRuntime and everything running on it belong to the thread that calls
// run(). While run() executes, LabRuntime::current() on that thread is this runtime (used by
// lab::Tracked and lab::check; nested runs restore the outer one).
// Lifetime: run() returns only after the root region is Closed; a runtime may run() again
// (each run starts from a fresh root region, a fresh trace and the seed's first draw; task and
// region ids continue from the previous run).
// Cancellation contract: see Cx and Region; the lab adds the injected requests above, which
// follow the same protocol as any other request.

#ifndef ASUPERSYNC_LAB_LAB_RUNTIME_H_
#define ASUPERSYNC_LAB_LAB_RUNTIME_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cx.h"
#include "core/executor.h"
#include "core/internal/object_observer.h"
#include "core/region.h"
#include "core/source_site.h"
#include "core/task.h"
#include "lab/trace.h"

namespace asupersync::lab {

class LabRuntime;
class TrackedBase;

namespace internal {

// The lab's pseudo-random generator (SplitMix64): advances `state` and returns the next value.
// Every random choice of the lab and of the exploration strategies draws from it.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class ScheduleStrategy;
class LogicalIds;
}  // namespace internal

// Which runnable tasks compete at a choice point (see the file comment).
enum class LanePolicy : uint8_t { kStrict, kAnyRunnable };

// Fault injection (SPEC 11.4). Every decision is drawn from the run's seed.
struct FaultOptions {
  // The tasks faults apply to, by name; empty: every task except the lab's own driver task.
  std::string target;
  // Systematic cancellation: each target task is cancelled (kUser, "injected") when it is
  // dispatched after its `cancel_at_await`-th await (a suspension). 0: off.
  uint32_t cancel_at_await = 0;
  // Random cancellation: at each await of a target, with this probability.
  double cancel_probability = 0.0;
  // Delays: with this probability a dispatch is postponed, or a timer fires late, by up to
  // `max_delay` of virtual time.
  double delay_probability = 0.0;
  Duration max_delay = Duration::Milliseconds(1);
  // Before every step, one parked task gets a wake with a stale ticket; the wait protocol must
  // ignore it (oracle "stale_wake").
  bool stale_wakes = false;
  // Budget exhaustion: a target that has been polled this often gets a PollQuota cancel.
  std::optional<uint32_t> poll_quota;

  bool any() const {
    return cancel_at_await > 0 || cancel_probability > 0 || delay_probability > 0 || stale_wakes ||
           poll_quota.has_value();
  }
};

struct LabOptions {
  uint64_t seed = 0;
  // Draw the next task at random among the competing ones; false: FIFO. Ignored when an
  // exploration strategy is set.
  bool randomize = true;
  // A run with more dispatches is a livelock (reported, then torn down).
  uint64_t max_steps = 50'000'000;
  LeakPolicy leak_policy = LeakPolicy::kPanic;
  LanePolicy lanes = LanePolicy::kStrict;
  FaultOptions faults;
  // Region-close, cancel-protocol, lost-wake-up and scope oracles (the end-of-run quiescence
  // checks and deadlock detection always run).
  bool oracles = true;
  // Record the trace (lab/trace.h): every event feeds the trace hash and the ring of the last
  // `trace_tail` events, tasks, regions and tracked objects are named, and the choices are kept
  // (LabReport::choices, what a replay string is made of). lab::Explore turns it on.
  // Off (a plain LabRuntime): report().trace_hash is the *schedule hash* (which task ran at
  // each step, from which lane, at which virtual time), trace_events is 0, trace() is empty and
  // no choices are kept; the oracles, faults and DPOR steps are unaffected. What a run records
  // in each case: lab/README.md, "What a run records".
  bool trace = false;
  // Events kept for failure reports (with `trace`); `full_trace` keeps all (for Chrome export)
  // and implies `trace`.
  size_t trace_tail = 32;
  bool full_trace = false;

  // Set by lab::Explore. Not owned; must outlive run().
  internal::ScheduleStrategy* strategy = nullptr;
  internal::LogicalIds* logical_ids = nullptr;
  // Record each step's footprint (DPOR).
  bool record_steps = false;
};

struct Violation {
  std::string oracle;  // e.g. "obligation_leak", "lost_wakeup", "cancel_protocol"
  std::string message;
};

struct LabReport {
  uint64_t steps = 0;
  uint64_t tasks_started = 0;
  uint64_t tasks_finished = 0;
  Time end_time = Time::Epoch();
  // With LabOptions::trace, a 64-bit hash of every trace event of the run (dispatches, spawns,
  // wakes, reads and writes, transitions, time); without, a hash of the schedule (each dispatch:
  // task, lane, virtual time). Either way: same seed and options, same hash. Compare it between
  // runs of one build with the same options; its values are not stable across versions of the
  // lab.
  uint64_t trace_hash = 0;
  uint64_t trace_events = 0;  // 0 without LabOptions::trace
  bool deadlocked = false;
  std::string deadlock_report;
  bool livelock = false;
  // "oracle: message" for each violation (see oracle_violations for the parts).
  std::vector<std::string> violations;
  std::vector<Violation> oracle_violations;
  // Cleanup stalls reported under EscalationPolicy::kWait (SPEC 4.5), in order.
  std::vector<std::string> stalls;
  // Failed lab::check calls ("what (file:line)").
  std::vector<std::string> check_failures;
  // The choices made at points with more than one competitor (candidate indexes), in order
  // (with LabOptions::trace or a strategy; empty otherwise).
  std::vector<uint32_t> choices;
  uint64_t faults_injected = 0;
  // Systematic cancellation: some target reached its cancel_at_await-th await.
  bool cancel_point_reached = false;
  // The exploration strategy could not continue (DPOR: every runnable task was in the sleep
  // set); the rest of the run was scheduled FIFO and its verdict does not count.
  bool sleep_blocked = false;
  // The forced schedule did not match the program (replay of a different scenario or options).
  std::string divergence;
};

namespace internal {

// What a step does to a runtime object, for DPOR's dependence relation: two accesses to one
// object conflict unless both are reads or both are updates (commutative, e.g. admissions);
// acquire/release carry happens-before without ever conflicting.
enum class AccessKind : uint8_t { kRead, kUpdate, kWrite, kAcquire, kRelease };

enum class ObjectType : uint8_t {
  kTracked = 1,       // a lab::Tracked variable
  kTaskCancel,        // a task's cancel state: every step of the task reads it; a request and
                      // the task's completion write it; a request after completion reads it
  kTaskWait,          // who ends a task's current wait: wake attempts and cancel requests write it
  kTaskJoiners,       // a task's join list: unlinking a joiner and the completion write it
  kRegionState,       // a region's state (admission reads it, transitions write it)
  kRegionFinalizers,  // a region's finalizer list
  kRegionQuiescence,  // completions release it, close acquires it
  kClock,             // virtual time: every step reads it, a time advance writes it
  kEntropy,           // the Random capability's generator
  kSyncObject,        // a channel, lock, ... of //sync (every operation writes it; reported
                      // through core/internal/object_observer.h)
};

inline uint64_t object_key(ObjectType type, uint32_t id) {
  return (static_cast<uint64_t>(type) << 56) | id;
}

struct Access {
  uint64_t object = 0;
  AccessKind kind = AccessKind::kRead;
  // Position within its step (the earliest, when several accesses to one object merged).
  uint32_t order = 0;
  friend bool operator==(const Access&, const Access&) = default;
};

inline constexpr uint32_t kNoLid = 0xffffffffu;

// One step (a dispatch until the task suspends or completes) or one barrier (a time advance or
// work done outside any step), as DPOR sees it.
struct StepRecord {
  uint32_t lid = kNoLid;           // the task's logical id; kNoLid for a barrier
  std::vector<uint32_t> enabled;   // logical ids of the competitors (choice order); steps only
  uint32_t chosen = 0;             // index into `enabled`
  std::vector<Access> accesses;    // sorted by object, one per object (strongest kind)
  std::vector<uint32_t> enablers;  // earlier records whose spawn or wake made this step possible
  bool barrier() const { return lid == kNoLid; }
};

// Logical identities that stay the same across the runs of one exploration: a task is "the
// k-th task spawned by task P" (the driver has no parent), a region "the k-th region opened by
// task P", a tracked object "the k-th one created by task P". Runtime ids (allocation order)
// would differ between interleavings.
class LogicalIds {
 public:
  uint32_t task(uint32_t parent, uint32_t ordinal) { return lookup(tasks_, parent, ordinal); }
  uint32_t region(uint32_t creator, uint32_t ordinal) { return lookup(regions_, creator, ordinal); }
  uint32_t object(uint32_t creator, uint32_t ordinal) { return lookup(objects_, creator, ordinal); }
  size_t task_count() const { return tasks_.size(); }

 private:
  // (parent or creator, ordinal) -> logical id, numbered in order of first sight: one row per
  // parent (row 0 for kNoLid), indexed by ordinal. Lids and ordinals are dense and an ordinal
  // comes right after the previous one of its parent, so a lookup (one per spawn in every lab
  // run) is two indexings and a row grows by one.
  struct Table {
    std::vector<std::vector<uint32_t>> rows;
    uint32_t count = 0;
    size_t size() const { return count; }
  };
  static uint32_t lookup(Table& table, uint32_t parent, uint32_t ordinal) {
    const size_t row_index = parent == kNoLid ? 0 : size_t{parent} + 1;
    if (table.rows.size() <= row_index) table.rows.resize(row_index + 1);
    std::vector<uint32_t>& row = table.rows[row_index];
    while (row.size() <= ordinal) row.push_back(kNoLid);
    if (row[ordinal] == kNoLid) row[ordinal] = table.count++;
    return row[ordinal];
  }
  Table tasks_;
  Table regions_;
  Table objects_;
};

struct Candidate {
  asupersync::internal::TaskRecord* task;
  uint32_t lid;
};

// A FIFO of queued tasks (a lane or a cancel bucket): a ring buffer over one flat array whose
// capacity is a power of two, so pushing at the back and taking the front (what every dispatch
// does) is an index and a mask, and no chunk is allocated as the queue moves (std::deque
// allocates and frees one every 64 pushes). Taking or inserting in the middle (a random choice,
// a lane change, a re-bucketed cancel) shifts the elements after it, keeping the order.
class TaskQueue {
 public:
  using TaskRecord = asupersync::internal::TaskRecord;
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  TaskRecord* operator[](size_t index) const { return slots_[(head_ + index) & mask_]; }
  void push_back(TaskRecord* task) {
    if (size_ == capacity_) [[unlikely]] {
      grow_and_push_back(task);  // a tail call: the fast path keeps nothing live across it
      return;
    }
    slots_[(head_ + size_) & mask_] = task;
    ++size_;
  }
  TaskRecord* pop_front() {
    TaskRecord* task = slots_[head_];
    head_ = (head_ + 1) & mask_;
    --size_;
    return task;
  }
  // Removes and returns the task at `index` (0: the front).
  TaskRecord* take(size_t index);
  // Inserts `task` before position `index` (size(): at the back).
  void insert(size_t index, TaskRecord* task);
  // The position of `task`, or size() when it is not queued here.
  size_t find(const TaskRecord* task) const;

 private:
  // Doubles the capacity (64 at first), copying the queue in two contiguous runs.
  void grow();
  [[gnu::noinline]] void grow_and_push_back(TaskRecord* task);
  // Uninitialized past the queued tasks: a growth copies what is queued and nothing else.
  std::unique_ptr<TaskRecord*[]> slots_;
  size_t capacity_ = 0;  // 0 or a power of two
  size_t mask_ = 0;
  size_t head_ = 0;
  size_t size_ = 0;
};

// The pending timers, earliest (due, registration) first: a binary min-heap over one flat array.
// A registered node's executor_slot is its position in the heap, so removing it (a sleep that
// was cancelled or woken early) needs no search, and neither adding nor removing allocates once
// the array has grown (a std::map allocates a tree node per timer). Keys are unique
// (registration numbers never repeat), so the firing order is the same as a sorted map's.
// Thread-safety: none; owned and used by one LabRuntime on its thread. Lifetime: a node stays
// registered (and must stay alive) until popped or removed.
class TimerHeap {
 public:
  struct Entry {
    int64_t due;
    uint64_t sequence;  // registration order, breaks ties between equal dues
    TimerNode* node;
  };
  bool empty() const { return entries_.empty(); }
  const Entry& top() const { return entries_.front(); }
  void push(int64_t due, uint64_t sequence, TimerNode* node);
  // Removes the entry of `node` (which must be in this heap).
  void remove(TimerNode& node);
  // Removes and returns the earliest entry's node.
  TimerNode* pop();

 private:
  static bool before(const Entry& a, const Entry& b) {
    return a.due != b.due ? a.due < b.due : a.sequence < b.sequence;
  }
  void place(size_t position, const Entry& entry) {
    entries_[position] = entry;
    entry.node->executor_slot = position;
  }
  void sift_up(size_t position, Entry entry);
  void sift_down(size_t position, Entry entry);
  std::vector<Entry> entries_;
};

// Chooses the next task at each choice point (random, PCT, DPOR, replay: lab/explore.cc).
class ScheduleStrategy {
 public:
  static constexpr size_t kSleepBlocked = ~size_t{0};
  virtual ~ScheduleStrategy() = default;
  // A task appeared (its first schedule).
  virtual void on_task_created(uint32_t lid) {}
  // `candidates` (at least one) in a deterministic order; `step` is the dispatch count so far.
  // Returns an index, or kSleepBlocked.
  virtual size_t choose(std::span<const Candidate> candidates, uint64_t step) = 0;
  // A step or barrier finished (with record_steps).
  virtual void on_step_recorded(const StepRecord& record) {}
};

}  // namespace internal

class LabRuntime final : public Executor, private asupersync::internal::ObjectObserver {
 public:
  explicit LabRuntime(LabOptions options = {});
  ~LabRuntime() override;
  LabRuntime(const LabRuntime&) = delete;
  LabRuntime& operator=(const LabRuntime&) = delete;

  // Runs `main(cx)` as the body of a region "main" under the root region and returns its
  // outcome (the region's: body joined with its children).
  template <typename F>
  auto run(F main) -> Outcome<typename std::invoke_result_t<F&, Cx&>::value_type>;

  const LabReport& report() const { return report_; }
  const TraceRecorder& trace() const { return trace_; }
  // The steps of the last run (with record_steps).
  const std::vector<internal::StepRecord>& steps() const { return steps_; }
  std::vector<internal::StepRecord> take_steps() { return std::move(steps_); }

  // The runtime running on this thread, or null.
  static LabRuntime* current();
  // Increments with every run() of this runtime.
  uint64_t run_id() const { return run_id_; }

  // Executor.
  void schedule(asupersync::internal::TaskRecord& task, Lane lane) override;
  void promote_to_cancel_lane(asupersync::internal::TaskRecord& task) override;
  Time now() const override { return now_; }
  void add_timer(TimerNode& node) override;
  void remove_timer(TimerNode& node) override;
  uint64_t next_random() override;
  void on_task_started(asupersync::internal::TaskRecord& task) override;
  void on_task_finished(asupersync::internal::TaskRecord& task) override;
  void on_cleanup_stalled(asupersync::internal::TaskRecord& task,
                          const std::string& description) override;
  void observe_runtime_event(RuntimeEvent event, asupersync::internal::TaskRecord* task,
                             Region* region) override;

  // --- For lab::Tracked and lab::check ----------------------------------------------------------
  // Registers a tracked object created now; returns its per-run index (0 if the creation is
  // outside any task: then accesses are reported as a violation).
  uint32_t register_object(TrackedBase& object, std::string_view name);
  // `referenced`: the object handed out TrackedRefs, so its destruction is a write (a later use
  // through a ref conflicts with it). Otherwise its lifetime is C++ ownership's business (e.g. a
  // shared_ptr whose last owner is whichever task finishes last) and not an event.
  void unregister_object(uint32_t index, bool referenced);
  TrackedBase* object_at(uint32_t index) const;
  void on_object_access(uint32_t index, internal::AccessKind kind, bool has_value, int64_t value);
  // A waiter was unlinked from object `index` (an interrupted or destroyed wait): its waiter
  // list changed, which a store reads (an access, not a trace event).
  void on_object_waiters_changed(uint32_t index);
  // A lab::TrackedRef used after its object was destroyed (oracle "use_after_scope").
  void on_dangling_access(uint32_t index, std::string_view operation);
  void record_check_failure(std::string_view what, SourceSite site);
  void record_violation(std::string_view oracle, std::string message);
  // The task running the current step, or null.
  asupersync::internal::TaskRecord* running_task() const { return current_; }

 private:
  // ObjectObserver: operations on //sync objects (DPOR accesses; see ObjectType::kSyncObject).
  void on_object_created(const void* object) override;
  // The logical id of an object created now (by the running task, or outside any task).
  uint32_t next_object_lid();
  void on_object_access(const void* object) override;
  void on_object_destroyed(const void* object) override;

  struct TaskInfo {
    asupersync::internal::TaskRecord* record = nullptr;  // valid while `live`
    uint32_t lid = internal::kNoLid;
    uint32_t spawns = 0;
    uint32_t regions = 0;
    uint32_t objects = 0;
    uint32_t dispatches = 0;
    bool known = false;
    bool live = false;
    bool delayed = false;
    bool acknowledge_traced = false;
    bool fault_cancelled = false;
    bool quota_cancelled = false;
    bool target = false;
    int64_t pending_enabler = -1;
  };
  struct RegionInfo {
    uint32_t rlid = internal::kNoLid;
    uint32_t parent = 0;  // region index
    uint32_t creator_lid = internal::kNoLid;
    uint32_t finalizers_added = 0;
    RegionState last_state = RegionState::kOpen;
    bool known = false;
  };
  struct CandidateSlot {
    asupersync::internal::TaskRecord* task;
    int queue;  // -1 - bucket index for the cancel lane, else the lane
    size_t position;
  };

  void begin_run();
  void end_run();
  // Dispatches until `driver` finished and nothing is runnable or timed; on a deadlock fills
  // the report and destroys the blocked tasks.
  void drive(asupersync::internal::TaskRecord& driver);
  // drive's loop; kPlain: the runtime records nothing per dispatch (see plain_).
  template <bool kPlain>
  void drive_loop(asupersync::internal::TaskRecord& driver);
  asupersync::internal::TaskRecord* pick();
  // pick() of a plain runtime: with FIFO order and only the ready lane holding work (the common
  // case), the front of the ready lane without pick()'s lane scan; otherwise pick_plain_other.
  asupersync::internal::TaskRecord* pick_plain();
  [[gnu::noinline]] asupersync::internal::TaskRecord* pick_plain_other();
  // A dispatch went past options_.max_steps: the livelock report and teardown, or the abort.
  [[gnu::noinline, gnu::cold]] void on_step_limit();
  void collect_candidates();
  asupersync::internal::TaskRecord* take_candidate(size_t index);
  bool advance_time();
  void tear_down_deadlock();
  void diagnose_stall();
  void check_oracles();
  void check_region_closed(Region& region, RegionInfo& info);
  void inject_before_dispatch(asupersync::internal::TaskRecord& task, TaskInfo& info);
  void inject_stale_wake();
  bool roll(double probability);
  int64_t random_delay();

  TaskInfo& info_of(const asupersync::internal::TaskRecord& task) {
    const uint32_t index = task.id.index();
    if (index < tasks_.size()) [[likely]] {
      return tasks_[index];
    }
    return grow_task_infos(index);
  }
  TaskInfo& grow_task_infos(uint32_t index);
  RegionInfo& info_of(const Region& region) {
    RegionInfo& info = region_info_at(region.id().index());
    if (!info.known) [[unlikely]] {
      first_sight(info, region);
    }
    return info;
  }
  // A region the lab did not see open (the root): numbered in order of first sight.
  void first_sight(RegionInfo& info, const Region& region);
  RegionInfo& region_info_at(uint32_t index) {
    if (index < regions_.size()) [[likely]] {
      return regions_[index];
    }
    return grow_region_infos(index);
  }
  RegionInfo& grow_region_infos(uint32_t index);
  // The schedule hash (without LabOptions::trace): one mix per dispatch.
  void mix_schedule_hash(uint32_t task, Lane lane) {
    constexpr uint64_t kMultiplier = 0x9e3779b97f4a7c15ull;
    uint64_t h =
        (schedule_hash_ ^ ((uint64_t{task} << 8) | static_cast<uint8_t>(lane))) * kMultiplier;
    h = (h ^ (h >> 29) ^ static_cast<uint64_t>(now_.nanoseconds())) * kMultiplier;
    schedule_hash_ = h ^ (h >> 29);
  }
  uint32_t current_lid() const;
  uint32_t current_index() const;
  // A trace event (nothing without LabOptions::trace).
  void trace(TraceKind kind, uint32_t task, uint32_t other = 0, uint8_t aux = 0,
             std::optional<int64_t> value = std::nullopt) {
    if (tracing_) record_trace(kind, task, other, aux, value);
  }
  void record_trace(TraceKind kind, uint32_t task, uint32_t other, uint8_t aux,
                    std::optional<int64_t> value);
  // The tasks of the region tree, a region's before its children's (each with a reference taken:
  // release them when done).
  std::vector<asupersync::internal::TaskRecord*> tree_tasks_referenced() const;
  // The live tasks in index order (each with a reference taken: release them when done).
  std::vector<asupersync::internal::TaskRecord*> live_tasks_referenced() const;
  void access(uint64_t object, internal::AccessKind kind) {
    if (recording_ && !injecting_) record_access(object, kind);
  }
  void record_access(uint64_t object, internal::AccessKind kind);
  // The record receiving accesses now: the running step's, else a barrier record.
  internal::StepRecord* current_record();
  int64_t current_record_index();
  // Closes the open step or barrier record, if any (normalizes it, tells the strategy).
  void finish_record() {
    if (open_record_ >= 0) close_record();
  }
  void close_record();
  void on_region_state_changed(Region& region);
  [[gnu::noinline]] void record_region_state_changed(Region& region);
  [[gnu::noinline, gnu::cold]] void record_state_regression(const Region& region, RegionState from,
                                                            RegionState to);
  void on_region_opened(asupersync::internal::TaskRecord* task, Region& region);
  void on_region_closed(Region& region);
  // observe_runtime_event past its filter.
  void observe_event(RuntimeEvent event, asupersync::internal::TaskRecord* task, Region* region);

  // The cancel lane: one FIFO bucket per cleanup priority, highest priority first (SPEC 6.2).
  // Within a bucket, tasks keep their order of arrival in the lane, so the k-th task of the
  // best bucket is the k-th task of the lane among those of the best priority: picking needs no
  // scan of the lane. A task in the lane has executor_data = (arrival << 8) | its bucket's
  // priority.
  struct CancelBucket {
    uint8_t priority;
    internal::TaskQueue tasks;
  };
  void push_cancel(asupersync::internal::TaskRecord& task);
  // A repeated request can raise the cleanup priority of a task already in the cancel lane:
  // move it to its new bucket, at its place by arrival.
  void rebucket_cancel(asupersync::internal::TaskRecord& task);
  internal::TaskQueue& cancel_bucket(uint8_t priority) {
    // Most runs use one cleanup priority: its bucket is the first.
    if (!cancel_buckets_.empty() && cancel_buckets_.front().priority == priority) [[likely]] {
      return cancel_buckets_.front().tasks;
    }
    return find_cancel_bucket(priority);
  }
  // The bucket of `priority`, inserted at its place if there is none yet.
  internal::TaskQueue& find_cancel_bucket(uint8_t priority);
  // schedule() past its fast path.
  [[gnu::noinline]] void schedule_other(asupersync::internal::TaskRecord& task, Lane lane);
  // on_task_finished's parts for bookkeeping runs (TaskInfo, trace, DPOR accesses) and for the
  // cancel-protocol oracle (a task that acknowledged a cancel must finish Cancelled).
  [[gnu::noinline]] void record_task_finished(asupersync::internal::TaskRecord& task);
  [[gnu::noinline]] void check_cancelled_outcome(asupersync::internal::TaskRecord& task);
  void enqueue(asupersync::internal::TaskRecord& task, Lane lane) {
    task.queued_lane = lane;
    if (lane == Lane::kCancel) [[unlikely]] {
      push_cancel(task);
    } else {
      lanes_[static_cast<int>(lane)].push_back(&task);
    }
  }

  LabOptions options_;
  // What this runtime records (fixed by the options; see the file comment).
  bool tracing_;  // the trace and the choices
  // A TaskInfo per task and the logical ids of tasks, regions and objects (//sync objects
  // too): tracing, exploration, DPOR steps and faults need them.
  bool bookkeeping_;
  bool faults_;  // options_.faults.any()
  // No bookkeeping and strict lanes: a dispatch only picks, mixes the schedule hash and runs
  // the task (drive_loop<true>); no trace, step record, TaskInfo or fault check on the way.
  bool plain_;
  uint64_t schedule_hash_ = 0;
  // By task index: the task got a cancel request (kCancelRequested) and has acknowledged one
  // (kCancelAcknowledged), for the cancel_protocol oracle. Grown geometrically (requests
  // arrive in index order when a region is cancelled).
  enum CancelSeen : uint8_t { kNotRequested = 0, kRequested = 1, kAcknowledged = 2 };
  std::vector<uint8_t> cancel_seen_;
  void note_cancel_requested(uint32_t index) {
    if (cancel_seen_.size() <= index) [[unlikely]] {
      grow_cancel_seen(index);
    }
    if (cancel_seen_[index] == kNotRequested) cancel_seen_[index] = kRequested;
  }
  [[gnu::noinline]] void grow_cancel_seen(uint32_t index);
  uint64_t rng_state_;
  uint64_t entropy_state_;
  uint64_t fault_state_;
  Time now_ = Time::Epoch();
  // Indexed by Lane; lanes_[kCancel] is unused (see cancel_buckets_).
  internal::TaskQueue lanes_[3];
  std::vector<CancelBucket> cancel_buckets_;  // by priority, descending; empty ones are kept
  size_t cancel_queued_ = 0;
  uint64_t cancel_arrivals_ = 0;
  internal::TimerHeap timers_;
  uint64_t timer_sequence_ = 0;
  // Dispatches postponed by fault injection: (due, sequence) -> task (holding its queue ref).
  std::map<std::pair<int64_t, uint64_t>, asupersync::internal::TaskRecord*> delayed_tasks_;
  uint64_t delay_sequence_ = 0;
  RegionRef root_;
  asupersync::internal::TaskRecord* driver_ = nullptr;
  LabReport report_;
  TraceRecorder trace_;

  std::vector<TaskInfo> tasks_;      // by TaskId index
  std::vector<RegionInfo> regions_;  // by RegionId index
  std::vector<TrackedBase*> objects_;
  std::vector<uint32_t> object_lids_;
  std::unique_ptr<internal::LogicalIds> own_ids_;
  internal::LogicalIds* ids_ = nullptr;
  std::vector<CandidateSlot> candidates_;
  std::vector<internal::Candidate> strategy_candidates_;
  asupersync::internal::TaskRecord* current_ = nullptr;
  bool recording_ = false;
  std::vector<internal::StepRecord> steps_;
  int64_t open_record_ = -1;
  uint32_t external_objects_ = 0;
  uint32_t external_spawns_ = 0;
  uint32_t external_regions_ = 0;
  std::vector<std::string> object_names_;
  uint64_t run_id_ = 0;
  uint64_t hard_step_limit_ = 0;
  bool fifo_after_block_ = false;
  Lane dispatch_lane_ = Lane::kReady;
  std::vector<uint32_t> pending_enabled_;
  uint32_t pending_chosen_ = 0;
  uint64_t stale_cursor_ = 0;
  bool injecting_ = false;  // stale-wake injection: not part of any step
  LabRuntime* previous_current_ = nullptr;
  asupersync::internal::ObjectObserver* previous_object_observer_ = nullptr;
  // Objects of //sync seen in this run: address -> logical id ("the k-th object created by task
  // P", the same in every interleaving; an object created before the run is numbered when first
  // touched). Only looked up, never iterated; an entry goes when its object is destroyed.
  std::unordered_map<const void*, uint32_t> sync_objects_;
};

// Records a failed expectation in the lab run on this thread: the run fails with `what` and the
// call site (Explore reports it with the replay string). Outside a lab run it prints to stderr.
// Returns `condition`, so `if (!lab::check(x == 1, "x is 1")) co_return;` reads naturally.
bool check(bool condition, std::string_view what, SourceSite site = SourceSite::current());

template <typename F>
auto LabRuntime::run(F main) -> Outcome<typename std::invoke_result_t<F&, Cx&>::value_type> {
  using T = typename std::invoke_result_t<F&, Cx&>::value_type;
  begin_run();
  root_ = Region::create_root(*this, RegionOptions{}, options_.leak_policy);
  Cx root_cx(nullptr, root_.get(), Capabilities::All(), Budget::Infinite());
  auto driver = root_cx.spawn("main", [main = std::move(main)](Cx& cx) mutable -> Task<Outcome<T>> {
    co_return co_await Region::open(cx, "main", std::move(main));
  });
  if (!driver.ok()) {
    end_run();
    return Outcome<T>::Err(driver.status());
  }
  drive(driver->runtime_record());
  std::optional<Outcome<Outcome<T>>> result = driver->try_take();
  root_.reset();
  if (report_.deadlocked) {
    return Outcome<T>::Err(absl::FailedPreconditionError(
        "lab: deadlock: every task is blocked and no timer is pending\n" +
        report_.deadlock_report));
  }
  if (!result.has_value()) {
    return Outcome<T>::Err(absl::InternalError("lab: the main task did not finish"));
  }
  if (result->ok()) return std::move(*result).value();
  return result->template convert_error<T>();
}

}  // namespace asupersync::lab

#endif  // ASUPERSYNC_LAB_LAB_RUNTIME_H_
