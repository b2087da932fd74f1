#include "lab/trace.h"

#include <cstdio>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/cancel_reason.h"
#include "core/executor.h"
#include "core/outcome.h"
#include "core/region.h"

namespace asupersync::lab {
namespace {

// Debian's Abseil has its own string_view: convert std::string_view for StrCat.
inline absl::string_view av(std::string_view text) {
  return absl::string_view(text.data(), text.size());
}
inline absl::string_view av(absl::string_view text) { return text; }

std::string_view lane_name(uint8_t lane) {
  switch (static_cast<Lane>(lane)) {
    case Lane::kCancel:
      return "cancel";
    case Lane::kTimed:
      return "timed";
    case Lane::kReady:
      return "ready";
  }
  return "?";
}

void set_name(std::vector<std::string>& names, uint32_t index, std::string_view name) {
  if (names.size() <= index) names.resize(index + 1);
  if (names[index].empty()) names[index] = std::string(name);
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(c));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string format_time(int64_t ns) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "%lld.%06lldms", static_cast<long long>(ns / 1'000'000),
                static_cast<long long>(ns % 1'000'000));
  return buffer;
}

}  // namespace

std::string_view trace_kind_name(TraceKind kind) {
  switch (kind) {
    case TraceKind::kDispatch:
      return "dispatch";
    case TraceKind::kSuspend:
      return "suspend";
    case TraceKind::kComplete:
      return "complete";
    case TraceKind::kSpawn:
      return "spawn";
    case TraceKind::kWake:
      return "wake";
    case TraceKind::kCancelRequested:
      return "cancel requested";
    case TraceKind::kCancelAcknowledged:
      return "cancel acknowledged";
    case TraceKind::kTimeAdvance:
      return "time advance";
    case TraceKind::kRead:
      return "read";
    case TraceKind::kWrite:
      return "write";
    case TraceKind::kRegionOpened:
      return "region opened";
    case TraceKind::kRegionState:
      return "region state";
    case TraceKind::kRegionCancelled:
      return "region cancelled";
    case TraceKind::kRegionClosed:
      return "region closed";
    case TraceKind::kFault:
      return "fault";
    case TraceKind::kViolation:
      return "violation";
    case TraceKind::kStaleWakeIgnored:
      return "stale wake ignored";
  }
  return "unknown";
}

std::string_view fault_kind_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kCancel:
      return "cancel";
    case FaultKind::kDelayDispatch:
      return "delay dispatch";
    case FaultKind::kDelayTimer:
      return "delay timer";
    case FaultKind::kStaleWake:
      return "stale wake";
    case FaultKind::kPollQuota:
      return "poll quota spent";
  }
  return "unknown";
}

TraceRecorder::TraceRecorder(size_t tail, bool full, size_t max_full)
    : tail_capacity_(tail), full_(full), max_full_(max_full) {
  ring_.reserve(tail);
}

void TraceRecorder::name_task(uint32_t index, std::string_view name) {
  // Tasks are numbered in spawn order: the list grows by one (inline), not by a resize call.
  while (task_name_ids_.size() <= index) task_name_ids_.push_back(kNoName);
  uint32_t& id = task_name_ids_[index];
  if (id != kNoName || name.empty()) return;  // the first (non-empty) name wins
  // Consecutive spawns mostly share a name: only a new one joins the pool.
  if (task_name_pool_.empty() || task_name_pool_.back() != name) {
    task_name_pool_.emplace_back(name);
  }
  id = static_cast<uint32_t>(task_name_pool_.size() - 1);
}
void TraceRecorder::name_region(uint32_t index, std::string_view name) {
  set_name(region_names_, index, name);
}
void TraceRecorder::name_object(uint32_t index, std::string_view name) {
  set_name(object_names_, index, name);
}

std::string TraceRecorder::task_label(uint32_t index) const {
  return absl::StrCat("'", std::string(task_name(index)), "'#", index);
}
std::string TraceRecorder::region_label(uint32_t index) const {
  std::string name = index < region_names_.size() ? region_names_[index] : "";
  return absl::StrCat("'", name, "'#", index);
}
std::string TraceRecorder::object_label(uint32_t index) const {
  std::string name = index < object_names_.size() ? object_names_[index] : "";
  if (name.empty()) return absl::StrCat("tracked#", index);
  return absl::StrCat("'", name, "'#", index);
}

std::string TraceRecorder::render(const TraceEvent& event) const {
  std::string line = absl::StrCat("[step ", event.step, " t=", format_time(event.time_ns), "] ");
  switch (event.kind) {
    case TraceKind::kDispatch:
      absl::StrAppend(&line, "dispatch task ", task_label(event.task), " (",
                      av(lane_name(event.aux)), " lane)");
      break;
    case TraceKind::kSuspend:
      absl::StrAppend(&line, "task ", task_label(event.task), " suspended");
      break;
    case TraceKind::kComplete:
      absl::StrAppend(&line, "task ", task_label(event.task),
                      " completed: ", av(outcome_kind_name(static_cast<OutcomeKind>(event.aux))));
      break;
    case TraceKind::kSpawn:
      absl::StrAppend(&line, "task ", task_label(event.task), " spawned ", task_label(event.other));
      break;
    case TraceKind::kWake:
      if (event.task == 0) {
        absl::StrAppend(&line, "timer woke ", task_label(event.other));
      } else {
        absl::StrAppend(&line, "task ", task_label(event.task), " woke ", task_label(event.other));
      }
      break;
    case TraceKind::kCancelRequested:
      absl::StrAppend(&line, "cancel requested for ", task_label(event.other), " (",
                      av(cancel_kind_name(static_cast<CancelKind>(event.aux))), ")");
      if (event.task != 0) absl::StrAppend(&line, " by ", task_label(event.task));
      break;
    case TraceKind::kCancelAcknowledged:
      absl::StrAppend(&line, "task ", task_label(event.task), " acknowledged its cancel");
      break;
    case TraceKind::kTimeAdvance:
      absl::StrAppend(&line, "virtual time -> ", format_time(event.value));
      break;
    case TraceKind::kRead:
    case TraceKind::kWrite:
      absl::StrAppend(&line, "task ", task_label(event.task),
                      event.kind == TraceKind::kRead ? " read " : " wrote ",
                      object_label(event.other));
      if (event.has_value) absl::StrAppend(&line, " = ", event.value);
      break;
    case TraceKind::kRegionOpened:
      absl::StrAppend(&line, "task ", task_label(event.task), " opened region ",
                      region_label(event.other));
      break;
    case TraceKind::kRegionState:
      absl::StrAppend(&line, "region ", region_label(event.other), " -> ",
                      av(region_state_name(static_cast<RegionState>(event.aux))));
      break;
    case TraceKind::kRegionCancelled:
      absl::StrAppend(&line, "region ", region_label(event.other), " cancelled");
      break;
    case TraceKind::kRegionClosed:
      absl::StrAppend(&line, "region ", region_label(event.other), " closed");
      break;
    case TraceKind::kFault:
      absl::StrAppend(&line, "fault injected into ", task_label(event.task), ": ",
                      av(fault_kind_name(static_cast<FaultKind>(event.aux))));
      if (event.has_value) absl::StrAppend(&line, " (", format_time(event.value), ")");
      break;
    case TraceKind::kViolation:
      absl::StrAppend(&line, "VIOLATION: ",
                      event.other < violation_texts_.size() ? violation_texts_[event.other] : "");
      break;
    case TraceKind::kStaleWakeIgnored:
      absl::StrAppend(&line, "stale wake of ", task_label(event.task), " ignored");
      break;
  }
  return line;
}

std::string TraceRecorder::render_tail() const {
  std::string out;
  const size_t n = ring_.size();
  const size_t start = n < tail_capacity_ ? 0 : ring_next_;
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(&out, "    ", render(ring_[(start + i) % n]), "\n");
  }
  return out;
}

std::string TraceRecorder::chrome_json() const {
  // Each dispatch step gets a 10 µs window on the timeline; events inside a step are spread
  // over it in order. Virtual time goes in the args.
  std::string out = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  bool first = true;
  auto emit = [&](const std::string& object) {
    if (!first) out += ",\n";
    first = false;
    out += object;
  };
  emit(R"({"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"tasks"}})");
  emit(R"({"name":"process_name","ph":"M","pid":2,"tid":0,"args":{"name":"regions"}})");
  for (uint32_t i = 1; i < task_name_ids_.size(); ++i) {
    emit(absl::StrCat(R"({"name":"thread_name","ph":"M","pid":1,"tid":)", i, R"(,"args":{"name":")",
                      json_escape(task_label(i)), "\"}}"));
  }
  for (uint32_t i = 1; i < region_names_.size(); ++i) {
    emit(absl::StrCat(R"({"name":"thread_name","ph":"M","pid":2,"tid":)", i, R"(,"args":{"name":")",
                      json_escape(region_label(i)), "\"}}"));
  }
  std::map<uint32_t, std::pair<double, uint64_t>> open_span;  // task -> (ts, step)
  std::map<uint32_t, double> open_region;                     // region -> ts
  uint64_t current_step = ~0ull;
  int within = 0;
  for (const TraceEvent& event : events_) {
    if (event.step != current_step) {
      current_step = event.step;
      within = 0;
    }
    // A step's events sit inside its 10 µs slot; its resume span covers 9 µs of it.
    const double ts = static_cast<double>(event.step) * 10.0 + std::min(8.9, 0.01 * within++);
    char ts_text[48];
    std::snprintf(ts_text, sizeof(ts_text), "%.3f", ts);
    const std::string args_time =
        absl::StrCat("\"vt_ns\":", event.time_ns, ",\"step\":", event.step);
    auto instant = [&](uint32_t task, std::string name, std::string extra) {
      emit(absl::StrCat(R"({"name":")", json_escape(name), R"(","ph":"i","s":"t","pid":1,"tid":)",
                        task, ",\"ts\":", ts_text, ",\"args\":{", args_time, extra, "}}"));
    };
    switch (event.kind) {
      case TraceKind::kDispatch:
        open_span[event.task] = {ts, event.step};
        break;
      case TraceKind::kSuspend:
      case TraceKind::kComplete: {
        auto it = open_span.find(event.task);
        if (it != open_span.end()) {
          char begin[48];
          std::snprintf(begin, sizeof(begin), "%.3f", it->second.first);
          char duration[48];
          std::snprintf(duration, sizeof(duration), "%.3f", std::max(9.0, ts - it->second.first));
          emit(absl::StrCat(R"({"name":"resume","ph":"X","pid":1,"tid":)", event.task, ",\"ts\":",
                            begin, ",\"dur\":", duration, ",\"args\":{", args_time, ",\"end\":\"",
                            event.kind == TraceKind::kSuspend ? "suspended" : "completed", "\"}}"));
          open_span.erase(it);
        }
        if (event.kind == TraceKind::kComplete) {
          instant(event.task, "complete",
                  absl::StrCat(",\"outcome\":\"",
                               av(outcome_kind_name(static_cast<OutcomeKind>(event.aux))), "\""));
        }
        break;
      }
      case TraceKind::kSpawn:
        instant(event.task, "spawn",
                absl::StrCat(",\"child\":\"", json_escape(task_label(event.other)), "\""));
        break;
      case TraceKind::kWake:
        if (event.task != 0) {
          instant(event.task, "wake",
                  absl::StrCat(",\"woken\":\"", json_escape(task_label(event.other)), "\""));
        }
        break;
      case TraceKind::kCancelRequested:
        instant(event.other, "cancel requested",
                absl::StrCat(",\"kind\":\"",
                             av(cancel_kind_name(static_cast<CancelKind>(event.aux))), "\""));
        break;
      case TraceKind::kCancelAcknowledged:
        instant(event.task, "cancel acknowledged", "");
        break;
      case TraceKind::kRead:
      case TraceKind::kWrite:
        instant(event.task,
                absl::StrCat(event.kind == TraceKind::kRead ? "read " : "write ",
                             object_label(event.other)),
                event.has_value ? absl::StrCat(",\"value\":", event.value) : std::string());
        break;
      case TraceKind::kFault:
        instant(event.task,
                absl::StrCat("fault: ", av(fault_kind_name(static_cast<FaultKind>(event.aux)))),
                "");
        break;
      case TraceKind::kViolation:
        emit(absl::StrCat(
            R"({"name":"oracle violation","ph":"i","s":"g","pid":1,"tid":0,"ts":)", ts_text,
            ",\"args\":{\"what\":\"",
            json_escape(event.other < violation_texts_.size() ? violation_texts_[event.other] : ""),
            "\"}}"));
        break;
      case TraceKind::kRegionOpened:
        open_region[event.other] = ts;
        break;
      case TraceKind::kRegionClosed: {
        auto it = open_region.find(event.other);
        if (it != open_region.end()) {
          char begin[48];
          std::snprintf(begin, sizeof(begin), "%.3f", it->second);
          char duration[48];
          std::snprintf(duration, sizeof(duration), "%.3f", std::max(0.5, ts - it->second));
          emit(absl::StrCat(R"({"name":")", json_escape(region_label(event.other)),
                            R"(","ph":"X","pid":2,"tid":)", event.other, ",\"ts\":", begin,
                            ",\"dur\":", duration, "}"));
          open_region.erase(it);
        }
        break;
      }
      case TraceKind::kRegionCancelled:
        emit(absl::StrCat(R"({"name":"region cancelled","ph":"i","s":"t","pid":2,"tid":)",
                          event.other, ",\"ts\":", ts_text, "}"));
        break;
      case TraceKind::kTimeAdvance:
      case TraceKind::kRegionState:
      case TraceKind::kStaleWakeIgnored:
        break;
    }
  }
  out += "\n]}\n";
  return out;
}

absl::Status TraceRecorder::write_chrome_json(const std::string& path) const {
  if (!full_) {
    return absl::FailedPreconditionError(
        "lab trace: this run recorded only the trace tail; set trace_path (or LAB_TRACE) before "
        "the run to record the whole trace");
  }
  const std::string json = chrome_json();
  const std::string temporary = path + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "w");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("lab trace: cannot open '", temporary,
                                            "' for writing (does the directory exist?)"));
  }
  const bool written = std::fwrite(json.data(), 1, json.size(), file) == json.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed || std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return absl::InternalError(absl::StrCat("lab trace: writing '", path, "' failed"));
  }
  return absl::OkStatus();
}

}  // namespace asupersync::lab
