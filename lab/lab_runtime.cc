#include "lab/lab_runtime.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/internal/task_record.h"
#include "lab/tracked.h"

namespace asupersync::lab {
namespace {

// Debian's Abseil has its own string_view: convert std::string_view for StrCat.
inline absl::string_view av(std::string_view text) {
  return absl::string_view(text.data(), text.size());
}

using asupersync::internal::TaskRecord;
using asupersync::internal::TaskState;
using internal::AccessKind;
using internal::kNoLid;
using internal::object_key;
using internal::ObjectType;

thread_local LabRuntime* t_current = nullptr;

using internal::splitmix64;

constexpr uint64_t kEntropySalt = 0x6a09e667f3bcc909ull;
constexpr uint64_t kFaultSalt = 0xbb67ae8584caa73bull;

// Removes and returns the task at `index` (the front, in FIFO mode: the inline pop_front).
TaskRecord* take(internal::TaskQueue& queue, size_t index) {
  return index == 0 ? queue.pop_front() : queue.take(index);
}

// Merges the accesses of one record: one entry per (object, acquire/release or data), the
// strongest data kind (two different data kinds on one object act as a write).
void normalize(std::vector<internal::Access>& accesses) {
  auto data = [](AccessKind kind) {
    return kind == AccessKind::kRead || kind == AccessKind::kUpdate || kind == AccessKind::kWrite;
  };
  // Two different data kinds on one object act as a write.
  auto merge = [](AccessKind a, AccessKind b) { return a == b ? a : AccessKind::kWrite; };
  std::sort(accesses.begin(), accesses.end(),
            [&](const internal::Access& a, const internal::Access& b) {
              if (a.object != b.object) return a.object < b.object;
              return static_cast<int>(a.kind) < static_cast<int>(b.kind);
            });
  std::vector<internal::Access> merged;
  merged.reserve(accesses.size());
  for (const internal::Access& access : accesses) {
    if (!merged.empty() && merged.back().object == access.object) {
      internal::Access& last = merged.back();
      if (last.kind == access.kind) {
        last.order = std::min(last.order, access.order);
        continue;
      }
      if (data(last.kind) && data(access.kind)) {
        last.kind = merge(last.kind, access.kind);
        last.order = std::min(last.order, access.order);
        continue;
      }
    }
    merged.push_back(access);
  }
  // Two data kinds may now sit apart from a write of the same object (read, release, write):
  // fold them.
  std::vector<internal::Access> out;
  out.reserve(merged.size());
  for (const internal::Access& access : merged) {
    bool folded = false;
    if (data(access.kind)) {
      for (internal::Access& kept : out) {
        if (kept.object == access.object && data(kept.kind)) {
          kept.kind = merge(kept.kind, access.kind);
          kept.order = std::min(kept.order, access.order);
          folded = true;
          break;
        }
      }
    }
    if (!folded) out.push_back(access);
  }
  accesses = std::move(out);
}

}  // namespace

namespace internal {

void TaskQueue::grow() {
  const size_t capacity = capacity_ == 0 ? 64 : capacity_ * 2;
  std::unique_ptr<TaskRecord*[]> slots(new TaskRecord*[capacity]);
  // The queued tasks: from head_ to the end of the array, then the wrapped part from 0.
  const size_t first = std::min(size_, capacity_ - head_);
  if (size_ > 0) {
    std::copy_n(slots_.get() + head_, first, slots.get());
    std::copy_n(slots_.get(), size_ - first, slots.get() + first);
  }
  slots_ = std::move(slots);
  capacity_ = capacity;
  mask_ = capacity - 1;
  head_ = 0;
}

void TaskQueue::grow_and_push_back(TaskRecord* task) {
  grow();
  slots_[size_] = task;  // head_ is 0 after a growth
  ++size_;
}

TaskRecord* TaskQueue::take(size_t index) {
  if (index >= size_) {
    asupersync::internal::invariant_violated("lab: a task taken from a queue it is not in");
  }
  TaskRecord* task = (*this)[index];
  for (size_t i = index; i + 1 < size_; ++i) slots_[(head_ + i) & mask_] = (*this)[i + 1];
  --size_;
  return task;
}

void TaskQueue::insert(size_t index, TaskRecord* task) {
  push_back(task);  // grows if needed; then moved into place
  for (size_t i = size_ - 1; i > index; --i) slots_[(head_ + i) & mask_] = (*this)[i - 1];
  slots_[(head_ + index) & mask_] = task;
}

void TimerHeap::push(int64_t due, uint64_t sequence, TimerNode* node) {
  entries_.emplace_back();
  sift_up(entries_.size() - 1, Entry{due, sequence, node});
}

void TimerHeap::remove(TimerNode& node) {
  const size_t position = node.executor_slot;
  if (position >= entries_.size() || entries_[position].node != &node) {
    asupersync::internal::invariant_violated("lab: a timer removed from a heap it is not in");
  }
  const Entry last = entries_.back();
  entries_.pop_back();
  if (position == entries_.size()) return;  // it was the last one
  // The last entry fills the hole: it moves up or down from there.
  if (position > 0 && before(last, entries_[(position - 1) / 2])) {
    sift_up(position, last);
  } else {
    sift_down(position, last);
  }
}

TimerNode* TimerHeap::pop() {
  TimerNode* node = entries_.front().node;
  const Entry last = entries_.back();
  entries_.pop_back();
  if (!entries_.empty()) sift_down(0, last);
  return node;
}

void TimerHeap::sift_up(size_t position, Entry entry) {
  while (position > 0) {
    const size_t parent = (position - 1) / 2;
    if (!before(entry, entries_[parent])) break;
    place(position, entries_[parent]);
    position = parent;
  }
  place(position, entry);
}

void TimerHeap::sift_down(size_t position, Entry entry) {
  const size_t size = entries_.size();
  while (true) {
    size_t child = 2 * position + 1;
    if (child >= size) break;
    if (child + 1 < size && before(entries_[child + 1], entries_[child])) ++child;
    if (!before(entries_[child], entry)) break;
    place(position, entries_[child]);
    position = child;
  }
  place(position, entry);
}

size_t TaskQueue::find(const TaskRecord* task) const {
  for (size_t i = 0; i < size_; ++i) {
    if ((*this)[i] == task) return i;
  }
  return size_;
}

}  // namespace internal

LabRuntime* LabRuntime::current() { return t_current; }

LabRuntime::LabRuntime(LabOptions options)
    : options_(std::move(options)),
      tracing_(options_.trace || options_.full_trace),
      bookkeeping_(tracing_ || options_.strategy != nullptr || options_.logical_ids != nullptr ||
                   options_.record_steps || options_.faults.any()),
      faults_(options_.faults.any()),
      plain_(!bookkeeping_ && options_.lanes == LanePolicy::kStrict),
      rng_state_(options_.seed),
      entropy_state_(options_.seed ^ kEntropySalt),
      fault_state_(options_.seed ^ kFaultSalt),
      trace_(tracing_ ? options_.trace_tail : 0, options_.full_trace) {
  observes_runtime_events_ = true;
}

LabRuntime::~LabRuntime() {
  if (t_current == this) t_current = previous_current_;
  if (asupersync::internal::t_object_observer == this) {
    asupersync::internal::t_object_observer = previous_object_observer_;
  }
}

void LabRuntime::begin_run() {
  report_ = LabReport{};
  trace_ = TraceRecorder(tracing_ ? options_.trace_tail : 0, options_.full_trace);
  schedule_hash_ = 0;
  cancel_seen_.clear();
  rng_state_ = options_.seed;
  entropy_state_ = options_.seed ^ kEntropySalt;
  fault_state_ = options_.seed ^ kFaultSalt;
  now_ = Time::Epoch();
  tasks_.clear();
  regions_.clear();
  objects_.assign(1, nullptr);
  object_lids_.assign(1, kNoLid);
  object_names_.assign(1, "");
  if (options_.logical_ids != nullptr) {
    ids_ = options_.logical_ids;
  } else if (bookkeeping_) {
    own_ids_ = std::make_unique<internal::LogicalIds>();
    ids_ = own_ids_.get();
  } else {
    ids_ = nullptr;  // nothing consumes logical ids
  }
  steps_.clear();
  open_record_ = -1;
  recording_ = options_.record_steps;
  external_objects_ = 0;
  external_spawns_ = 0;
  external_regions_ = 0;
  stale_cursor_ = 0;
  current_ = nullptr;
  driver_ = nullptr;
  fifo_after_block_ = false;
  hard_step_limit_ = 0;
  ++run_id_;
  sync_objects_.clear();
  previous_current_ = t_current;
  t_current = this;
  previous_object_observer_ = asupersync::internal::t_object_observer;
  asupersync::internal::t_object_observer = this;
}

void LabRuntime::end_run() {
  if (t_current == this) t_current = previous_current_;
  previous_current_ = nullptr;
  if (asupersync::internal::t_object_observer == this) {
    asupersync::internal::t_object_observer = previous_object_observer_;
  }
  previous_object_observer_ = nullptr;
}

uint32_t LabRuntime::next_object_lid() {
  if (current_ == nullptr) return ids_->object(kNoLid, external_objects_++);
  TaskInfo& info = info_of(*current_);
  return ids_->object(info.lid, info.objects++);
}

void LabRuntime::on_object_created(const void* object) {
  if (!bookkeeping_) return;
  sync_objects_[object] = next_object_lid();
}

void LabRuntime::on_object_access(const void* object) {
  if (!bookkeeping_) return;
  auto [it, inserted] = sync_objects_.emplace(object, kNoLid);
  if (inserted) it->second = next_object_lid();  // created before the run
  if (!recording_ || injecting_) return;
  access(object_key(ObjectType::kSyncObject, it->second), AccessKind::kWrite);
}

void LabRuntime::on_object_destroyed(const void* object) {
  if (bookkeeping_) sync_objects_.erase(object);
}

// --- Bookkeeping -------------------------------------------------------------------------------

LabRuntime::TaskInfo& LabRuntime::grow_task_infos(uint32_t index) {
  // Tasks are numbered in spawn order: grow ahead (doubling), so the next spawns find their
  // entry in place. Entries past the last task seen are default ones (not known, not live).
  tasks_.resize(std::max<size_t>(index + 1, 2 * tasks_.size()));
  return tasks_[index];
}

LabRuntime::RegionInfo& LabRuntime::grow_region_infos(uint32_t index) {
  // As grow_task_infos: entries past the last region seen are default ones (not known).
  regions_.resize(std::max<size_t>(index + 1, 2 * regions_.size()));
  return regions_[index];
}

void LabRuntime::first_sight(RegionInfo& info, const Region& region) {
  info.known = true;
  if (bookkeeping_) info.rlid = ids_->region(kNoLid, external_regions_++);
  if (tracing_) trace_.name_region(region.id().index(), region.name());
}

uint32_t LabRuntime::current_lid() const {
  if (current_ == nullptr) return kNoLid;
  const uint32_t index = current_->id.index();
  return index < tasks_.size() ? tasks_[index].lid : kNoLid;
}

uint32_t LabRuntime::current_index() const {
  return current_ != nullptr ? current_->id.index() : 0;
}

void LabRuntime::record_trace(TraceKind kind, uint32_t task, uint32_t other, uint8_t aux,
                              std::optional<int64_t> value) {
  TraceEvent event;
  // Events of a step carry its (1-based) number; events between steps the previous one's.
  event.step = current_ != nullptr ? report_.steps + 1 : report_.steps;
  event.time_ns = now_.nanoseconds();
  event.kind = kind;
  event.aux = aux;
  event.task = task;
  event.other = other;
  if (value.has_value()) {
    event.value = *value;
    event.has_value = true;
  }
  trace_.record(event);
}

internal::StepRecord* LabRuntime::current_record() {
  const int64_t index = current_record_index();
  return index < 0 ? nullptr : &steps_[static_cast<size_t>(index)];
}

int64_t LabRuntime::current_record_index() {
  if (!recording_) return -1;
  if (open_record_ < 0) {
    // Work outside any step (setup, a time advance, a teardown): a barrier record.
    steps_.emplace_back();
    open_record_ = static_cast<int64_t>(steps_.size()) - 1;
  }
  return open_record_;
}

void LabRuntime::record_access(uint64_t object, AccessKind kind) {
  internal::StepRecord* record = current_record();
  record->accesses.push_back(
      internal::Access{object, kind, static_cast<uint32_t>(record->accesses.size())});
}

void LabRuntime::close_record() {
  internal::StepRecord& record = steps_[static_cast<size_t>(open_record_)];
  open_record_ = -1;
  normalize(record.accesses);
  if (options_.strategy != nullptr && !fifo_after_block_) {
    options_.strategy->on_step_recorded(record);
  }
}

void LabRuntime::record_violation(std::string_view oracle, std::string message) {
  for (const Violation& existing : report_.oracle_violations) {
    if (existing.oracle == oracle && existing.message == message) return;
  }
  std::string text = absl::StrCat(av(oracle), ": ", message);
  report_.violations.push_back(text);
  report_.oracle_violations.push_back(Violation{std::string(oracle), std::move(message)});
  if (tracing_) {
    trace(TraceKind::kViolation, current_index(), trace_.add_violation_text("oracle " + text));
  }
}

void LabRuntime::record_check_failure(std::string_view what, SourceSite site) {
  std::string text = absl::StrCat(av(what), " (", site.to_string(), ")");
  if (current_ != nullptr) absl::StrAppend(&text, " in task '", current_->name, "'");
  report_.check_failures.push_back(text);
  if (tracing_) {
    trace(TraceKind::kViolation, current_index(),
          trace_.add_violation_text("lab::check failed: " + text));
  }
}

bool check(bool condition, std::string_view what, SourceSite site) {
  if (condition) return true;
  if (LabRuntime* runtime = LabRuntime::current()) {
    runtime->record_check_failure(what, site);
  } else {
    std::fprintf(stderr, "lab::check failed outside a lab run: %.*s (%s)\n",
                 static_cast<int>(what.size()), what.data(), site.to_string().c_str());
  }
  return false;
}

// --- Tracked objects ---------------------------------------------------------------------------

uint32_t LabRuntime::register_object(TrackedBase& object, std::string_view name) {
  const uint32_t lid = bookkeeping_ ? next_object_lid() : kNoLid;
  const uint32_t index = static_cast<uint32_t>(objects_.size());
  objects_.push_back(&object);
  object_lids_.push_back(lid);
  object_names_.emplace_back(name);
  if (tracing_) {
    trace_.name_object(index, name.empty() ? absl::StrCat("tracked#", index) : std::string(name));
  }
  return index;
}

void LabRuntime::unregister_object(uint32_t index, bool referenced) {
  if (index == 0 || index >= objects_.size()) return;
  objects_[index] = nullptr;
  // Destroying the object conflicts with any later use through a TrackedRef.
  if (referenced) access(object_key(ObjectType::kTracked, object_lids_[index]), AccessKind::kWrite);
}

TrackedBase* LabRuntime::object_at(uint32_t index) const {
  return index < objects_.size() ? objects_[index] : nullptr;
}

void LabRuntime::on_object_access(uint32_t index, AccessKind kind, bool has_value, int64_t value) {
  if (index == 0 || index >= objects_.size()) return;
  const bool write = kind == AccessKind::kWrite || kind == AccessKind::kUpdate;
  trace(write ? TraceKind::kWrite : TraceKind::kRead, current_index(), index, 0,
        has_value ? std::optional<int64_t>(value) : std::nullopt);
  access(object_key(ObjectType::kTracked, object_lids_[index]), kind);
}

void LabRuntime::on_object_waiters_changed(uint32_t index) {
  if (index == 0 || index >= objects_.size()) return;
  access(object_key(ObjectType::kTracked, object_lids_[index]), AccessKind::kWrite);
}

void LabRuntime::on_dangling_access(uint32_t index, std::string_view operation) {
  if (index > 0 && index < objects_.size()) {
    access(object_key(ObjectType::kTracked, object_lids_[index]), AccessKind::kWrite);
  }
  const std::string name = index < object_names_.size() && !object_names_[index].empty()
                               ? object_names_[index]
                               : absl::StrCat("tracked#", index);
  record_violation(
      "use_after_scope",
      absl::StrCat("task '", current_ != nullptr ? current_->name : std::string("?"),
                   "' used lab::Tracked '", name, "' (", av(operation),
                   " through a TrackedRef) after it was destroyed: the task outlived the scope "
                   "of the data it references"));
}

// --- Executor ----------------------------------------------------------------------------------

uint64_t LabRuntime::next_random() {
  if (options_.strategy != nullptr) {
    // Exploration: entropy has its own stream, and the draw order is a shared object.
    access(object_key(ObjectType::kEntropy, 0), AccessKind::kWrite);
    return splitmix64(entropy_state_);
  }
  return splitmix64(rng_state_);
}

bool LabRuntime::roll(double probability) {
  if (probability <= 0.0) return false;
  const double draw =
      static_cast<double>(splitmix64(fault_state_) >> 11) / static_cast<double>(1ull << 53);
  return draw < probability;
}

int64_t LabRuntime::random_delay() {
  const int64_t max = std::max<int64_t>(1, options_.faults.max_delay.nanoseconds());
  return 1 + static_cast<int64_t>(splitmix64(fault_state_) % static_cast<uint64_t>(max));
}

void LabRuntime::schedule(TaskRecord& task, Lane lane) {
  // The common case of a runtime without bookkeeping: a spawn or a wake into the ready or timed
  // lane of a task not queued yet (what the rest of this function does for it, without the
  // frame its other cases need).
  if (!bookkeeping_ && !task.queued && lane != Lane::kCancel && !task.completed()) [[likely]] {
    task.queued = true;
    task.add_ref();  // the queue's reference; released after the task ran
    task.queued_lane = lane;
    lanes_[static_cast<int>(lane)].push_back(&task);
    return;
  }
  schedule_other(task, lane);
}

void LabRuntime::schedule_other(TaskRecord& task, Lane lane) {
  if (task.completed()) return;
  if (task.queued) {
    if (lane != Lane::kCancel) return;  // deduplicated
    if (faults_ && info_of(task).delayed) {
      task.queued_lane = Lane::kCancel;  // re-enqueued in the cancel lane when its delay ends
      return;
    }
    if (task.queued_lane == Lane::kCancel) {
      rebucket_cancel(task);
      return;
    }
    internal::TaskQueue& from = lanes_[static_cast<int>(task.queued_lane)];
    from.take(from.find(&task));
    enqueue(task, lane);
    return;
  }
  const uint32_t index = task.id.index();
  if (!bookkeeping_) {
    // Nothing consumes the spawn/wake distinction (see the file comment).
  } else if (!info_of(task).known) {
    // A spawn: the child is "the k-th task spawned by the running task".
    const uint32_t parent_lid = current_lid();
    const uint32_t ordinal = current_ != nullptr ? info_of(*current_).spawns++ : external_spawns_++;
    TaskInfo& info = info_of(task);
    info.known = true;
    info.live = true;
    info.record = &task;
    info.lid = ids_->task(parent_lid, ordinal);
    info.target =
        options_.faults.target.empty() ? parent_lid != kNoLid : task.name == options_.faults.target;
    info.pending_enabler = current_record_index();
    if (tracing_) trace_.name_task(index, task.name);
    trace(TraceKind::kSpawn, current_index(), index);
    if (options_.strategy != nullptr) options_.strategy->on_task_created(info.lid);
  } else if (&task != current_) {
    trace(TraceKind::kWake, current_index(), index);
    const int64_t enabler = current_record_index();
    info_of(task).pending_enabler = enabler;
  }
  task.queued = true;
  task.add_ref();  // the queue's reference; released after the task ran
  enqueue(task, lane);
}

internal::TaskQueue& LabRuntime::find_cancel_bucket(uint8_t priority) {
  auto it = cancel_buckets_.begin();
  while (it != cancel_buckets_.end() && it->priority > priority) ++it;
  if (it == cancel_buckets_.end() || it->priority != priority) {
    it = cancel_buckets_.insert(it, CancelBucket{priority, {}});
  }
  return it->tasks;
}

void LabRuntime::push_cancel(TaskRecord& task) {
  const uint8_t priority = task.cancel.cleanup_budget().priority;
  task.executor_data = (++cancel_arrivals_ << 8) | priority;
  cancel_bucket(priority).push_back(&task);
  ++cancel_queued_;
}

void LabRuntime::rebucket_cancel(TaskRecord& task) {
  const uint8_t old_priority = static_cast<uint8_t>(task.executor_data & 0xff);
  const uint8_t priority = task.cancel.cleanup_budget().priority;
  if (priority == old_priority) return;
  internal::TaskQueue& from = cancel_bucket(old_priority);
  from.take(from.find(&task));
  const uint64_t arrival = task.executor_data >> 8;
  task.executor_data = (arrival << 8) | priority;
  internal::TaskQueue& to = cancel_bucket(priority);
  // Its place by arrival (a bucket is sorted by arrival): before the first later arrival.
  size_t low = 0;
  size_t high = to.size();
  while (low < high) {
    const size_t middle = low + (high - low) / 2;
    if ((to[middle]->executor_data >> 8) < arrival) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  to.insert(low, &task);
}

void LabRuntime::promote_to_cancel_lane(TaskRecord& task) {
  if (task.queued) schedule(task, Lane::kCancel);
}

void LabRuntime::add_timer(TimerNode& node) {
  if (node.registered) return;
  node.registered = true;
  int64_t due = node.deadline.nanoseconds();
  if (options_.faults.delay_probability > 0 && roll(options_.faults.delay_probability)) {
    const int64_t delay = random_delay();
    due = due > std::numeric_limits<int64_t>::max() - delay ? due : due + delay;
    ++report_.faults_injected;
    trace(TraceKind::kFault, current_index(), 0, static_cast<uint8_t>(FaultKind::kDelayTimer),
          delay);
  }
  timers_.push(due, ++timer_sequence_, &node);  // sets node.executor_slot
}

void LabRuntime::remove_timer(TimerNode& node) {
  if (!node.registered) return;
  timers_.remove(node);
  node.registered = false;
}

void LabRuntime::on_task_started(TaskRecord& task) { ++report_.tasks_started; }

void LabRuntime::on_cleanup_stalled(TaskRecord&, const std::string& description) {
  report_.stalls.push_back(description);
}

void LabRuntime::on_task_finished(TaskRecord& task) {
  ++report_.tasks_finished;
  if (bookkeeping_) record_task_finished(task);
  // A task acknowledged a cancel exactly when core reported kCancelAcknowledged for it (the
  // acknowledgement and the report are one step of Cx's cancellation point): the lab's own
  // record answers without the task's lock, and is empty in runs without cancellation.
  const uint32_t index = task.id.index();
  if (options_.oracles && index < cancel_seen_.size() && cancel_seen_[index] == kAcknowledged)
      [[unlikely]] {
    check_cancelled_outcome(task);
  }
}

void LabRuntime::record_task_finished(TaskRecord& task) {
  const uint32_t index = task.id.index();
  if (tracing_) {
    trace(TraceKind::kComplete, index, 0, static_cast<uint8_t>(task.outcome_summary().kind()));
  }
  {
    TaskInfo& info = info_of(task);
    info.live = false;
    info.record = nullptr;
  }
  if (recording_) {
    access(object_key(ObjectType::kRegionQuiescence, info_of(*task.region).rlid),
           AccessKind::kRelease);
    // The cancel state becomes final: a later request is a no-op that reads it. The join list
    // is taken (its joiners are woken).
    const uint32_t lid = info_of(task).lid;
    if (lid != kNoLid) {
      access(object_key(ObjectType::kTaskCancel, lid), AccessKind::kWrite);
      access(object_key(ObjectType::kTaskJoiners, lid), AccessKind::kWrite);
    }
  }
}

void LabRuntime::check_cancelled_outcome(TaskRecord& task) {
  const Outcome<void> summary = task.outcome_summary();
  if (summary.ok() || summary.is_err()) {
    record_violation("cancel_protocol",
                     absl::StrCat("task '", task.name, "' acknowledged a cancel but finished ",
                                  summary.to_string(), " instead of Cancelled (SPEC 4.6)"));
  }
}

void LabRuntime::observe_runtime_event(RuntimeEvent event, TaskRecord* task, Region* region) {
  // Events that only add DPOR accesses: nothing to do unless steps are being recorded (the
  // common case on a spawn, a wake and a join of a plain runtime).
  constexpr uint32_t kAccessOnly = (1u << static_cast<int>(RuntimeEvent::kRegionStateRead)) |
                                   (1u << static_cast<int>(RuntimeEvent::kWakeAttempt)) |
                                   (1u << static_cast<int>(RuntimeEvent::kJoinWaitRemoved)) |
                                   (1u << static_cast<int>(RuntimeEvent::kJoinCompleted)) |
                                   (1u << static_cast<int>(RuntimeEvent::kCancelAfterCompletion));
  if (((kAccessOnly >> static_cast<int>(event)) & 1u) != 0 && !recording_) return;
  // The most frequent event of a region (four per open+close) on a path of its own: the big
  // switch's prologue (its frame holds the oracles' message temporaries) costs more than it.
  // The region lifecycle's events (what an open+close reports) go to small handlers too.
  switch (event) {
    case RuntimeEvent::kRegionStateChanged:
      on_region_state_changed(*region);
      return;
    case RuntimeEvent::kRegionOpened:
      on_region_opened(task, *region);
      return;
    case RuntimeEvent::kRegionClosed:
      on_region_closed(*region);
      return;
    // A region cancel reports both for each of its tasks: without trace or steps they only
    // update cancel_seen_.
    case RuntimeEvent::kCancelRequested:
      if (!tracing_ && !recording_) {
        note_cancel_requested(task->id.index());
        return;
      }
      break;
    case RuntimeEvent::kCancelAcknowledged:
      if (!tracing_) {
        const uint32_t index = task->id.index();
        if (index < cancel_seen_.size() && cancel_seen_[index] != kNotRequested) [[likely]] {
          cancel_seen_[index] = kAcknowledged;
          return;
        }
      }
      break;  // (observe_event reports the violation)
    default:
      break;
  }
  observe_event(event, task, region);
}

void LabRuntime::grow_cancel_seen(uint32_t index) {
  // Requests arrive in index order when a region is cancelled: grow ahead (doubling).
  cancel_seen_.resize(std::max<size_t>(index + 1, 2 * cancel_seen_.size()), kNotRequested);
}

void LabRuntime::on_region_opened(TaskRecord* task, Region& region) {
  const uint32_t index = region.id().index();
  const uint32_t parent = region.parent() != nullptr ? region.parent()->id().index() : 0;
  RegionInfo& info = region_info_at(index);
  info.known = true;
  info.parent = parent;
  if (bookkeeping_) {
    uint32_t creator_lid = kNoLid;
    uint32_t ordinal;
    if (task != nullptr) {
      TaskInfo& creator = info_of(*task);
      creator_lid = creator.lid;
      ordinal = creator.regions++;
    } else {
      ordinal = external_regions_++;
    }
    info.rlid = ids_->region(creator_lid, ordinal);
    info.creator_lid = creator_lid;
  }
  if (tracing_) {
    trace_.name_region(index, region.name());
    trace(TraceKind::kRegionOpened, task != nullptr ? task->id.index() : 0, index);
  }
}

void LabRuntime::on_region_closed(Region& region) {
  RegionInfo& info = info_of(region);
  // (Gated on bookkeeping_, not on recording or tracing: info_of(*parent) may be the parent's
  // first sight, which numbers it.)
  if (bookkeeping_) {
    access(object_key(ObjectType::kRegionQuiescence, info.rlid), AccessKind::kAcquire);
    if (Region* parent = region.parent()) {
      access(object_key(ObjectType::kRegionQuiescence, info_of(*parent).rlid),
             AccessKind::kRelease);
    }
    trace(TraceKind::kRegionClosed, current_index(), region.id().index());
  }
  if (options_.oracles) check_region_closed(region, info);
}

void LabRuntime::on_region_state_changed(Region& region) {
  // The common case, without a call (so without the frame the full version needs): a region
  // seen before moves forward, and nothing but the oracle consumes the transition.
  const uint32_t index = region.id().index();
  const RegionState state = region.state();
  if (index < regions_.size() && !recording_ && !tracing_) [[likely]] {
    RegionInfo& info = regions_[index];
    if (info.known && (!options_.oracles || state >= info.last_state)) [[likely]] {
      info.last_state = state;
      return;
    }
  }
  record_region_state_changed(region);
}

void LabRuntime::record_region_state_changed(Region& region) {
  RegionInfo& info = info_of(region);
  const RegionState state = region.state();
  if (options_.oracles && state < info.last_state) [[unlikely]] {
    record_state_regression(region, info.last_state, state);
  }
  info.last_state = state;
  if (!recording_ && !tracing_) return;  // nothing else consumes the transition
  // Finalizing begins once the close wait passed: everything after it depends on the
  // completions that made the region quiescent.
  if (state == RegionState::kFinalizing) {
    access(object_key(ObjectType::kRegionQuiescence, info.rlid), AccessKind::kAcquire);
  }
  access(object_key(ObjectType::kRegionState, info.rlid), AccessKind::kWrite);
  trace(TraceKind::kRegionState, current_index(), region.id().index(), static_cast<uint8_t>(state));
}

void LabRuntime::record_state_regression(const Region& region, RegionState from, RegionState to) {
  record_violation("cancel_protocol", absl::StrCat("region '", region.name(), "' went from ",
                                                   av(region_state_name(from)), " back to ",
                                                   av(region_state_name(to))));
}

void LabRuntime::observe_event(RuntimeEvent event, TaskRecord* task, Region* region) {
  switch (event) {
    case RuntimeEvent::kRegionStateRead:
      if (recording_) {
        access(object_key(ObjectType::kRegionState, info_of(*region).rlid), AccessKind::kRead);
      }
      break;
    // observe_runtime_event hands the region lifecycle to its own handlers and never passes
    // these here; they are listed so that the switch stays exhaustive (-Wswitch).
    case RuntimeEvent::kRegionOpened:
    case RuntimeEvent::kRegionStateChanged:
    case RuntimeEvent::kRegionClosed:
      break;
    case RuntimeEvent::kRegionCancelled: {
      RegionInfo& info = info_of(*region);
      access(object_key(ObjectType::kRegionState, info.rlid), AccessKind::kWrite);
      // The task running the body polls the region's cancel state at its cancellation points.
      if (info.creator_lid != kNoLid) {
        access(object_key(ObjectType::kTaskCancel, info.creator_lid), AccessKind::kWrite);
      }
      trace(TraceKind::kRegionCancelled, current_index(), region->id().index());
      break;
    }
    case RuntimeEvent::kFinalizerAdded: {
      RegionInfo& info = info_of(*region);
      ++info.finalizers_added;
      access(object_key(ObjectType::kRegionFinalizers, info.rlid), AccessKind::kWrite);
      access(object_key(ObjectType::kRegionState, info.rlid), AccessKind::kRead);
      break;
    }
    case RuntimeEvent::kCancelRequested: {
      const uint32_t index = task->id.index();
      note_cancel_requested(index);
      if (tracing_) {
        CancelKind kind;
        {
          std::lock_guard<asupersync::internal::SpinLock> guard(task->lock);
          kind = task->cancel.reason().kind();
        }
        trace(TraceKind::kCancelRequested, current_index(), index, static_cast<uint8_t>(kind));
      }
      if (!recording_) break;
      const uint32_t lid = info_of(*task).lid;
      // A task not scheduled yet (spawned into a cancelled region) cannot run before its spawn.
      // A request may also end the task's wait (it competes with wakers).
      if (lid != kNoLid) {
        access(object_key(ObjectType::kTaskCancel, lid), AccessKind::kWrite);
        access(object_key(ObjectType::kTaskWait, lid), AccessKind::kWrite);
      }
      break;
    }
    case RuntimeEvent::kWakeAttempt: {
      if (!recording_) break;
      const uint32_t lid = info_of(*task).lid;
      if (lid != kNoLid) access(object_key(ObjectType::kTaskWait, lid), AccessKind::kWrite);
      break;
    }
    case RuntimeEvent::kJoinCompleted:
    case RuntimeEvent::kJoinWaitRemoved: {
      if (!recording_) break;
      const uint32_t lid = info_of(*task).lid;
      if (lid != kNoLid) access(object_key(ObjectType::kTaskJoiners, lid), AccessKind::kWrite);
      break;
    }
    case RuntimeEvent::kCancelAfterCompletion: {
      // Reads the final cancel state that the task's last step wrote.
      if (!recording_) break;
      const uint32_t lid = info_of(*task).lid;
      if (lid != kNoLid) access(object_key(ObjectType::kTaskCancel, lid), AccessKind::kRead);
      break;
    }
    case RuntimeEvent::kCancelAcknowledged: {
      const uint32_t index = task->id.index();
      if (index >= cancel_seen_.size() || cancel_seen_[index] == kNotRequested) {
        if (options_.oracles) {
          record_violation("cancel_protocol",
                           absl::StrCat("task '", task->name,
                                        "' acknowledged a cancel that was never requested"));
        }
        if (cancel_seen_.size() <= index) cancel_seen_.resize(index + 1, kNotRequested);
      }
      cancel_seen_[index] = kAcknowledged;
      if (!tracing_) break;
      TaskInfo& info = info_of(*task);
      if (!info.acknowledge_traced) {
        info.acknowledge_traced = true;
        trace(TraceKind::kCancelAcknowledged, task->id.index());
      }
      break;
    }
  }
}

void LabRuntime::check_region_closed(Region& region, RegionInfo& info) {
  const RegionStats stats = region.stats();
  if (stats.live_tasks != 0 || stats.open_child_regions != 0) {
    record_violation("task_leak",
                     absl::StrCat("region '", region.name(), "' closed with ", stats.live_tasks,
                                  " live tasks and ", stats.open_child_regions,
                                  " open child regions (a task outlives its region)"));
  }
  if (stats.pending_obligations != 0) {
    record_violation("quiescence", absl::StrCat("region '", region.name(), "' closed with ",
                                                stats.pending_obligations, " pending obligations"));
  }
  if (stats.pending_finalizers != 0 || stats.finalizers_run != info.finalizers_added) {
    record_violation("finalizer", absl::StrCat("region '", region.name(), "' registered ",
                                               info.finalizers_added, " finalizers but ran ",
                                               stats.finalizers_run, " (", stats.pending_finalizers,
                                               " left): finalizers must run exactly once"));
  }
  if (region.ledger().leaked() > 0) {  // leaks() copies the list: only when there is one
    for (const LeakReport& leak : region.ledger().leaks()) {
      record_violation("obligation_leak", leak.to_string());
    }
  }
}

// --- Dispatch ----------------------------------------------------------------------------------

void LabRuntime::collect_candidates() {
  candidates_.clear();
  if (options_.lanes == LanePolicy::kStrict) {
    if (cancel_queued_ > 0) {
      for (size_t b = 0; b < cancel_buckets_.size(); ++b) {
        const auto& queue = cancel_buckets_[b].tasks;
        if (queue.empty()) continue;
        for (size_t i = 0; i < queue.size(); ++i) {
          candidates_.push_back(CandidateSlot{queue[i], -1 - static_cast<int>(b), i});
        }
        return;
      }
    }
    for (int lane = static_cast<int>(Lane::kTimed); lane < 3; ++lane) {
      const auto& queue = lanes_[lane];
      if (queue.empty()) continue;
      for (size_t i = 0; i < queue.size(); ++i) {
        candidates_.push_back(CandidateSlot{queue[i], lane, i});
      }
      return;
    }
    return;
  }
  for (size_t b = 0; b < cancel_buckets_.size(); ++b) {
    const auto& queue = cancel_buckets_[b].tasks;
    for (size_t i = 0; i < queue.size(); ++i) {
      candidates_.push_back(CandidateSlot{queue[i], -1 - static_cast<int>(b), i});
    }
  }
  for (int lane = static_cast<int>(Lane::kTimed); lane < 3; ++lane) {
    const auto& queue = lanes_[lane];
    for (size_t i = 0; i < queue.size(); ++i) {
      candidates_.push_back(CandidateSlot{queue[i], lane, i});
    }
  }
}

TaskRecord* LabRuntime::take_candidate(size_t index) {
  const CandidateSlot slot = candidates_[index];
  if (slot.queue < 0) {
    --cancel_queued_;
    dispatch_lane_ = Lane::kCancel;
    return take(cancel_buckets_[static_cast<size_t>(-1 - slot.queue)].tasks, slot.position);
  }
  dispatch_lane_ = static_cast<Lane>(slot.queue);
  return take(lanes_[slot.queue], slot.position);
}

TaskRecord* LabRuntime::pick() {
  while (true) {
    TaskRecord* task = nullptr;
    if (options_.strategy == nullptr && options_.lanes == LanePolicy::kStrict && !recording_) {
      // The plain runtime: one lane competes; no copy of the queue.
      internal::TaskQueue* queue = nullptr;
      if (cancel_queued_ > 0) {
        for (CancelBucket& bucket : cancel_buckets_) {
          if (bucket.tasks.empty()) continue;
          queue = &bucket.tasks;
          dispatch_lane_ = Lane::kCancel;
          break;
        }
      }
      if (queue == nullptr) {
        for (int lane = static_cast<int>(Lane::kTimed); lane < 3; ++lane) {
          if (lanes_[lane].empty()) continue;
          queue = &lanes_[lane];
          dispatch_lane_ = static_cast<Lane>(lane);
          break;
        }
      }
      if (queue == nullptr) return nullptr;
      const size_t count = queue->size();
      const size_t index = options_.randomize ? next_random() % count : 0;
      if (count > 1 && tracing_) report_.choices.push_back(static_cast<uint32_t>(index));
      task = take(*queue, index);
      if (dispatch_lane_ == Lane::kCancel) --cancel_queued_;
    } else {
      collect_candidates();
      if (candidates_.empty()) return nullptr;
      const size_t count = candidates_.size();
      size_t index = 0;
      if (options_.strategy != nullptr && !fifo_after_block_) {
        strategy_candidates_.clear();
        for (const CandidateSlot& slot : candidates_) {
          strategy_candidates_.push_back(internal::Candidate{slot.task, info_of(*slot.task).lid});
        }
        index = options_.strategy->choose(strategy_candidates_, report_.steps);
        if (index == internal::ScheduleStrategy::kSleepBlocked) {
          // Every competitor is asleep: this run can only repeat explored behaviour.
          report_.sleep_blocked = true;
          fifo_after_block_ = true;
          finish_record();
          recording_ = false;
          index = 0;
        } else if (index >= count) {
          report_.divergence = absl::StrCat("the schedule chose candidate ", index, " of ", count,
                                            " at step ", report_.steps);
          index = 0;
        }
      } else if (options_.randomize && options_.strategy == nullptr) {
        index = next_random() % count;
      }
      if (count > 1 && (tracing_ || options_.strategy != nullptr)) {
        report_.choices.push_back(static_cast<uint32_t>(index));
      }
      if (recording_) {
        pending_enabled_.clear();
        for (const CandidateSlot& slot : candidates_) {
          pending_enabled_.push_back(info_of(*slot.task).lid);
        }
        pending_chosen_ = static_cast<uint32_t>(index);
      }
      task = take_candidate(index);
    }
    if (!faults_) return task;
    TaskInfo& info = info_of(*task);
    if (options_.faults.delay_probability > 0 && info.target &&
        roll(options_.faults.delay_probability)) {
      const int64_t delay = random_delay();
      info.delayed = true;
      delayed_tasks_.emplace(std::make_pair(now_.nanoseconds() + delay, ++delay_sequence_), task);
      ++report_.faults_injected;
      trace(TraceKind::kFault, task->id.index(), 0, static_cast<uint8_t>(FaultKind::kDelayDispatch),
            delay);
      continue;
    }
    return task;
  }
}

bool LabRuntime::advance_time() {
  int64_t next = std::numeric_limits<int64_t>::max();
  if (!timers_.empty()) next = timers_.top().due;
  if (!delayed_tasks_.empty()) next = std::min(next, delayed_tasks_.begin()->first.first);
  if (timers_.empty() && delayed_tasks_.empty()) return false;
  if (next > now_.nanoseconds()) now_ = Time::FromNanoseconds(next);
  // A time advance is a barrier: every step reads the clock, this writes it.
  finish_record();
  access(object_key(ObjectType::kClock, 0), AccessKind::kWrite);
  trace(TraceKind::kTimeAdvance, 0, 0, 0, now_.nanoseconds());
  // Fire everything due now, in deadline-then-registration order.
  while (!timers_.empty() && timers_.top().due <= now_.nanoseconds()) {
    TimerNode* node = timers_.pop();
    node->registered = false;
    node->fire();
  }
  while (!delayed_tasks_.empty() && delayed_tasks_.begin()->first.first <= now_.nanoseconds()) {
    TaskRecord* task = delayed_tasks_.begin()->second;
    delayed_tasks_.erase(delayed_tasks_.begin());
    TaskInfo& info = info_of(*task);
    info.delayed = false;
    info.pending_enabler = current_record_index();
    enqueue(*task, task->queued_lane);
  }
  return true;
}

void LabRuntime::inject_before_dispatch(TaskRecord& task, TaskInfo& info_ref) {
  const uint32_t index = task.id.index();
  const FaultOptions& faults = options_.faults;
  TaskInfo* info = &info_ref;
  if (!info->target || info->dispatches < 2) return;
  const uint32_t awaits = info->dispatches - 1;
  bool cancel = false;
  if (faults.cancel_at_await > 0 && awaits == faults.cancel_at_await && !info->fault_cancelled) {
    report_.cancel_point_reached = true;
    cancel = true;
  } else if (faults.cancel_probability > 0 && !info->fault_cancelled &&
             roll(faults.cancel_probability)) {
    cancel = true;
  }
  if (cancel) {
    info->fault_cancelled = true;
    ++report_.faults_injected;
    trace(TraceKind::kFault, index, 0, static_cast<uint8_t>(FaultKind::kCancel));
    asupersync::internal::request_cancel(
        task,
        CancelReason(CancelKind::kUser, task.region->id(), task.id, now_,
                     absl::StrCat("lab: cancel injected at await ", awaits)),
        Budget::Infinite());
    info = &info_of(task);
  }
  if (faults.poll_quota.has_value() && task.polls >= *faults.poll_quota && !info->quota_cancelled) {
    info->quota_cancelled = true;
    ++report_.faults_injected;
    trace(TraceKind::kFault, index, 0, static_cast<uint8_t>(FaultKind::kPollQuota));
    asupersync::internal::request_cancel(
        task,
        CancelReason(CancelKind::kPollQuota, task.region->id(), task.id, now_,
                     absl::StrCat("lab: poll quota of ", *faults.poll_quota, " spent (injected)")),
        Budget::Infinite());
  }
}

void LabRuntime::inject_stale_wake() {
  std::vector<TaskRecord*> parked;
  for (TaskInfo& info : tasks_) {
    if (!info.live || info.record == nullptr) continue;
    std::lock_guard<asupersync::internal::SpinLock> guard(info.record->lock);
    if (info.record->current_wait != nullptr) parked.push_back(info.record);
  }
  if (parked.empty()) return;
  TaskRecord& task = *parked[stale_cursor_++ % parked.size()];
  uint64_t stale;
  {
    std::lock_guard<asupersync::internal::SpinLock> guard(task.lock);
    // Alternately an older ticket and one never issued.
    stale = (stale_cursor_ % 2 == 0 && task.current_ticket > 1) ? task.current_ticket - 1
                                                                : task.wait_tickets + 1;
  }
  ++report_.faults_injected;
  trace(TraceKind::kFault, task.id.index(), 0, static_cast<uint8_t>(FaultKind::kStaleWake));
  const bool was_queued = task.queued;
  injecting_ = true;
  asupersync::internal::wake(task, stale, Lane::kReady);
  injecting_ = false;
  bool still_parked;
  {
    std::lock_guard<asupersync::internal::SpinLock> guard(task.lock);
    still_parked = task.current_wait != nullptr;
  }
  if (task.queued != was_queued || !still_parked) {
    record_violation("stale_wake",
                     absl::StrCat("a wake with stale ticket ", stale, " resumed task '", task.name,
                                  "' (the wait protocol must ignore it)"));
  } else {
    trace(TraceKind::kStaleWakeIgnored, task.id.index());
  }
}

inline TaskRecord* LabRuntime::pick_plain() {
  internal::TaskQueue& ready = lanes_[static_cast<int>(Lane::kReady)];
  if (!options_.randomize && cancel_queued_ == 0 && lanes_[static_cast<int>(Lane::kTimed)].empty())
      [[likely]] {
    if (ready.empty()) return nullptr;
    dispatch_lane_ = Lane::kReady;
    return ready.pop_front();
  }
  return pick_plain_other();
}

TaskRecord* LabRuntime::pick_plain_other() {
  if (options_.randomize) return pick();
  // FIFO: the front of the highest non-empty lane (the choice pick() makes, without its
  // candidate list).
  if (cancel_queued_ > 0) {
    for (CancelBucket& bucket : cancel_buckets_) {
      if (bucket.tasks.empty()) continue;
      --cancel_queued_;
      dispatch_lane_ = Lane::kCancel;
      return bucket.tasks.pop_front();
    }
    asupersync::internal::invariant_violated("lab: cancel lane count without a queued task");
  }
  dispatch_lane_ = Lane::kTimed;  // (the ready-lane case is pick_plain's)
  return lanes_[static_cast<int>(Lane::kTimed)].pop_front();
}

void LabRuntime::on_step_limit() {
  if (!report_.livelock) {
    // Livelock: report, then cancel everything and let the tree drain (escalation destroys
    // tasks that keep ignoring the request).
    report_.livelock = true;
    root_->cancel(
        CancelReason(CancelKind::kShutdown, root_->id(), std::nullopt, now_,
                     absl::StrCat("lab: livelock: more than ", options_.max_steps, " steps")),
        Budget::Infinite());
  }
  if (report_.steps > hard_step_limit_) {
    std::fprintf(stderr, "lab: livelock that cannot be torn down: more than %llu steps\n",
                 static_cast<unsigned long long>(hard_step_limit_));
    std::abort();
  }
}

template <bool kPlain>
void LabRuntime::drive_loop(TaskRecord& driver) {
  while (true) {
    if (!kPlain && options_.faults.stale_wakes) inject_stale_wake();
    if (TaskRecord* task = kPlain ? pick_plain() : pick()) {
      const uint32_t index = task->id.index();
      if constexpr (kPlain) {
        current_ = task;
        task->queued = false;
        mix_schedule_hash(index, dispatch_lane_);
        asupersync::internal::run_task(*task);
        current_ = nullptr;
      } else {
        if (recording_) {
          finish_record();
          steps_.emplace_back();
          open_record_ = static_cast<int64_t>(steps_.size()) - 1;
          internal::StepRecord& record = steps_.back();
          TaskInfo& info = info_of(*task);
          record.lid = info.lid;
          record.enabled = pending_enabled_;
          record.chosen = pending_chosen_;
          if (info.pending_enabler >= 0) {
            record.enablers.push_back(static_cast<uint32_t>(info.pending_enabler));
          }
          record.accesses.push_back(
              internal::Access{object_key(ObjectType::kTaskCancel, info.lid), AccessKind::kRead});
          record.accesses.push_back(
              internal::Access{object_key(ObjectType::kClock, 0), AccessKind::kRead});
        }
        if (bookkeeping_) {
          TaskInfo& info = info_of(*task);
          info.pending_enabler = -1;
          ++info.dispatches;
        }
        current_ = task;
        task->queued = false;
        if (tracing_) {
          trace(TraceKind::kDispatch, index, 0, static_cast<uint8_t>(dispatch_lane_));
        } else {
          mix_schedule_hash(index, dispatch_lane_);
        }
        if (faults_) inject_before_dispatch(*task, info_of(*task));
        const bool completed = asupersync::internal::run_task(*task);
        if (!completed) trace(TraceKind::kSuspend, index);
        current_ = nullptr;
        finish_record();
      }
      task->release();
      if (++report_.steps > options_.max_steps) [[unlikely]] {
        on_step_limit();
      }
      continue;
    }
    if (advance_time()) continue;
    if (driver.completed()) break;
    tear_down_deadlock();
  }
}

void LabRuntime::drive(TaskRecord& driver) {
  driver_ = &driver;
  hard_step_limit_ = options_.max_steps + std::max<uint64_t>(100'000, options_.max_steps);
  if (plain_) {
    drive_loop<true>(driver);
  } else {
    drive_loop<false>(driver);
  }
  finish_record();
  report_.end_time = now_;
  check_oracles();
  report_.trace_hash = tracing_ ? trace_.hash() : schedule_hash_;
  report_.trace_events = trace_.event_count();
  end_run();
}

std::vector<TaskRecord*> LabRuntime::tree_tasks_referenced() const {
  std::vector<TaskRecord*> tasks;
  std::vector<Region*> pending = {root_.get()};
  while (!pending.empty()) {
    Region* region = pending.back();
    pending.pop_back();
    for (TaskRecord* task : region->live_tasks_referenced()) tasks.push_back(task);
    for (Region* child : region->children_snapshot()) pending.push_back(child);
  }
  return tasks;
}

std::vector<TaskRecord*> LabRuntime::live_tasks_referenced() const {
  std::vector<TaskRecord*> live;
  if (bookkeeping_) {
    for (const TaskInfo& info : tasks_) {
      if (!info.live || info.record == nullptr) continue;
      info.record->add_ref();
      live.push_back(info.record);
    }
    return live;
  }
  // No TaskInfo: the region tree has every live task; sorted into index order, as tasks_ is.
  live = tree_tasks_referenced();
  std::sort(live.begin(), live.end(),
            [](const TaskRecord* a, const TaskRecord* b) { return a->id.index() < b->id.index(); });
  return live;
}

void LabRuntime::diagnose_stall() {
  const std::vector<TaskRecord*> live = live_tasks_referenced();
  std::string lost;
  for (TaskRecord* live_task : live) {
    if (faults_ && info_of(*live_task).delayed) continue;
    TaskRecord& task = *live_task;
    if (task.queued) continue;
    std::string why;
    {
      std::lock_guard<asupersync::internal::SpinLock> guard(task.lock);
      asupersync::internal::WaitNode* wait = task.current_wait;
      if (wait == nullptr) {
        if (task.load_state() == TaskState::kSuspended) {
          why = "suspended with no registered wait and not scheduled: nothing will ever resume it";
        }
      } else if (auto* join = dynamic_cast<asupersync::internal::JoinWaiterBase*>(wait)) {
        if (!join->linked) why = "parked on a join whose target already finished";
      } else if (auto* tracked = dynamic_cast<TrackedBase::Waiter*>(wait)) {
        if (tracked->level() && tracked->object() != nullptr && tracked->satisfied()) {
          why = absl::StrCat("parked on lab::Tracked '", tracked->object()->name(),
                             "' whose condition already holds");
        }
      } else if (auto* timer = dynamic_cast<TimerNode*>(wait)) {
        if (!timer->registered) why = "parked on a sleep whose timer already fired";
      }
    }
    if (why.empty() && task.current_wait != nullptr &&
        std::string_view(task.current_wait->what) == "region close" &&
        task.body_region != nullptr && task.body_region->quiescent()) {
      why = absl::StrCat("parked on the close of region '", task.body_region->name(),
                         "', which is already quiescent");
    }
    if (!why.empty()) absl::StrAppend(&lost, "task '", task.name, "': ", why, "; ");
  }
  if (!lost.empty()) {
    lost.resize(lost.size() - 2);
    record_violation("lost_wakeup", lost +
                                        " (a wait was satisfied but the task was never "
                                        "rescheduled)");
  }
  // Name the tracked objects blocked tasks wait on.
  std::string waits;
  for (TaskRecord* task : live) {
    std::lock_guard<asupersync::internal::SpinLock> guard(task->lock);
    if (auto* tracked = dynamic_cast<TrackedBase::Waiter*>(task->current_wait)) {
      absl::StrAppend(&waits, "  task '", task->name, "' waits on lab::Tracked '",
                      tracked->object() != nullptr ? tracked->object()->name() : "(destroyed)",
                      tracked->level() ? "' (wait_until)\n" : "' (wait_changed)\n");
    }
  }
  if (!waits.empty()) absl::StrAppend(&report_.deadlock_report, waits);
  for (TaskRecord* task : live) task->release();
}

void LabRuntime::tear_down_deadlock() {
  // Deadlock (SPEC 11.1): report, then destroy the blocked tasks (innermost first: a task
  // waiting on a region close is destroyed once its region closed).
  if (!report_.deadlocked) {
    report_.deadlocked = true;
    report_.deadlock_report = root_->dump();
    if (options_.oracles) diagnose_stall();
  }
  finish_record();
  recording_ = false;  // the teardown is not part of the explored behaviour
  const std::vector<TaskRecord*> blocked = tree_tasks_referenced();
  bool progressed = false;
  for (TaskRecord* task : blocked) {
    asupersync::internal::escalate_destroy(*task);
    if (task->completed()) progressed = true;
  }
  for (TaskRecord* task : blocked) task->release();
  if (!progressed) {
    std::fprintf(stderr, "lab: deadlock that cannot be torn down:\n%s\n",
                 report_.deadlock_report.c_str());
    std::abort();
  }
}

void LabRuntime::check_oracles() {
  if (root_->live_task_count() != 0 || !root_->children_snapshot().empty()) {
    record_violation("task_leak",
                     "task outlives its region: root region not quiescent:\n" + root_->dump());
  }
  if (report_.tasks_finished != report_.tasks_started) {
    record_violation("task_leak", absl::StrCat("tasks started ", report_.tasks_started,
                                               " but finished ", report_.tasks_finished));
  }
  bool queued = cancel_queued_ != 0 || !delayed_tasks_.empty();
  for (auto& lane : lanes_) queued = queued || !lane.empty();
  if (queued) record_violation("task_leak", "tasks left queued after the run");
}

}  // namespace asupersync::lab
