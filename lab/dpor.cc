#include "lab/dpor.h"

#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"

namespace asupersync::lab::internal {
namespace {

using Clock = std::vector<uint32_t>;

bool data_kind(AccessKind kind) {
  return kind == AccessKind::kRead || kind == AccessKind::kUpdate || kind == AccessKind::kWrite;
}

bool kinds_conflict(AccessKind a, AccessKind b) {
  if (!data_kind(a) || !data_kind(b)) return false;
  if (a == AccessKind::kRead && b == AccessKind::kRead) return false;
  if (a == AccessKind::kUpdate && b == AccessKind::kUpdate) return false;
  return true;
}

void join(Clock& into, const Clock& from) {
  for (size_t i = 0; i < from.size(); ++i) into[i] = std::max(into[i], from[i]);
}

bool contains(const std::vector<uint32_t>& values, uint32_t value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string lids_text(const std::vector<uint32_t>& lids) {
  std::string out = "{";
  for (size_t i = 0; i < lids.size(); ++i) absl::StrAppend(&out, i ? "," : "", lids[i]);
  return out + "}";
}

// The earliest position at which `later` acquires an object that `earlier` released (max if
// none).
uint32_t acquire_position(const std::vector<Access>& earlier, const std::vector<Access>& later) {
  uint32_t position = std::numeric_limits<uint32_t>::max();
  for (const Access& release : earlier) {
    if (release.kind != AccessKind::kRelease) continue;
    for (const Access& acquire : later) {
      if (acquire.kind == AccessKind::kAcquire && acquire.object == release.object) {
        position = std::min(position, acquire.order);
      }
    }
  }
  return position;
}

// True when an access of `later` placed before `limit` conflicts with one of `earlier`.
bool conflicts_before(const std::vector<Access>& earlier, const std::vector<Access>& later,
                      uint32_t limit) {
  for (const Access& y : later) {
    if (y.order >= limit) continue;
    for (const Access& x : earlier) {
      if (x.object == y.object && kinds_conflict(x.kind, y.kind)) return true;
    }
  }
  return false;
}

}  // namespace

bool conflicts(const std::vector<Access>& a, const std::vector<Access>& b) {
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i].object < b[j].object) {
      ++i;
    } else if (b[j].object < a[i].object) {
      ++j;
    } else {
      const uint64_t object = a[i].object;
      size_t i_end = i;
      while (i_end < a.size() && a[i_end].object == object) ++i_end;
      size_t j_end = j;
      while (j_end < b.size() && b[j_end].object == object) ++j_end;
      for (size_t x = i; x < i_end; ++x) {
        for (size_t y = j; y < j_end; ++y) {
          if (kinds_conflict(a[x].kind, b[y].kind)) return true;
        }
      }
      i = i_end;
      j = j_end;
    }
  }
  return false;
}

void DporExplorer::begin_execution() {
  depth_ = 0;
  next_sleep_.clear();
}

bool DporExplorer::in_sleep(const Node& node, uint32_t lid) const {
  for (const Sleeper& sleeper : node.sleep) {
    if (sleeper.lid == lid) return true;
  }
  return false;
}

size_t DporExplorer::choose(std::span<const Candidate> candidates, uint64_t step) {
  if (depth_ < nodes_.size()) {
    // Replaying the prefix of an earlier execution.
    const Node& node = nodes_[depth_];
    bool same = node.enabled.size() == candidates.size();
    for (size_t i = 0; same && i < candidates.size(); ++i) {
      same = node.enabled[i] == candidates[i].lid;
    }
    std::vector<uint32_t> now;
    for (const Candidate& candidate : candidates) now.push_back(candidate.lid);
    if (!same && divergence_.empty()) {
      divergence_ =
          absl::StrCat("at step ", step + 1, " the runnable tasks were ", lids_text(now),
                       " but an earlier run with the same choices had ", lids_text(node.enabled));
    }
    ++depth_;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].lid == node.chosen) return i;
    }
    if (divergence_.empty()) {
      divergence_ = absl::StrCat("at step ", step + 1, " task ", node.chosen,
                                 " is not runnable although an earlier run ran it there");
    }
    return 0;
  }
  Node node;
  node.enabled.reserve(candidates.size());
  for (const Candidate& candidate : candidates) node.enabled.push_back(candidate.lid);
  node.sleep = next_sleep_;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (in_sleep(node, candidates[i].lid)) continue;
    node.chosen = candidates[i].lid;
    node.backtrack.push_back(node.chosen);
    nodes_.push_back(std::move(node));
    ++depth_;
    return i;
  }
  return kSleepBlocked;
}

void DporExplorer::on_step_recorded(const StepRecord& record) {
  if (record.barrier()) {
    std::vector<Sleeper> kept;
    for (Sleeper& sleeper : next_sleep_) {
      if (!conflicts(sleeper.footprint, record.accesses)) kept.push_back(std::move(sleeper));
    }
    next_sleep_ = std::move(kept);
    return;
  }
  if (depth_ == 0 || depth_ > nodes_.size()) return;
  Node& node = nodes_[depth_ - 1];
  if (depth_ < prefix_ && node.footprint_known && node.footprint != record.accesses &&
      divergence_.empty()) {
    divergence_ = absl::StrCat("step ", depth_, " (task ", node.chosen,
                               ") touched different objects than in an earlier run with the same "
                               "choices");
  }
  node.footprint = record.accesses;
  node.footprint_known = true;
  next_sleep_.clear();
  for (const Sleeper& sleeper : node.sleep) {
    if (sleeper.lid != node.chosen && !conflicts(sleeper.footprint, record.accesses)) {
      next_sleep_.push_back(sleeper);
    }
  }
}

bool DporExplorer::end_execution(const std::vector<StepRecord>& steps) {
  analyze(steps);
  for (size_t m = nodes_.size(); m-- > 0;) {
    Node& node = nodes_[m];
    for (uint32_t lid : node.enabled) {
      if (lid == node.chosen || !contains(node.backtrack, lid) || contains(node.done, lid) ||
          in_sleep(node, lid)) {
        continue;
      }
      node.done.push_back(node.chosen);
      node.sleep.push_back(Sleeper{node.chosen, node.footprint});
      node.chosen = lid;
      node.footprint.clear();
      node.footprint_known = false;
      nodes_.resize(m + 1);
      prefix_ = m + 1;
      return true;
    }
  }
  return false;
}

void DporExplorer::analyze(const std::vector<StepRecord>& steps) {
  const size_t threshold = prefix_ > 0 ? prefix_ - 1 : 0;
  const size_t n = steps.size();
  // Components: one per task (by logical id, ordered), plus one for barriers.
  std::map<uint32_t, uint32_t> component_of;
  for (const StepRecord& record : steps) {
    if (!record.barrier()) component_of.emplace(record.lid, 0);
  }
  uint32_t next_component = 0;
  for (auto& [lid, component] : component_of) component = next_component++;
  const uint32_t barrier_component = next_component;
  const size_t width = next_component + 1;

  std::vector<uint32_t> component(n);
  std::vector<uint32_t> local(n);
  std::vector<int64_t> node_of(n, -1);
  std::vector<std::vector<size_t>> events_of(width);
  std::vector<Clock> clocks(n);
  struct ObjectState {
    Clock write, reads, updates, release;
  };
  std::map<uint64_t, ObjectState> objects;
  auto state_of = [&](uint64_t object) -> ObjectState& {
    ObjectState& state = objects[object];
    if (state.write.empty()) {
      state.write.assign(width, 0);
      state.reads.assign(width, 0);
      state.updates.assign(width, 0);
      state.release.assign(width, 0);
    }
    return state;
  };
  int64_t nodes_seen = 0;
  for (size_t e = 0; e < n; ++e) {
    const StepRecord& record = steps[e];
    const uint32_t c = record.barrier() ? barrier_component : component_of[record.lid];
    component[e] = c;
    if (!record.barrier()) node_of[e] = nodes_seen++;
    Clock clock(width, 0);
    if (!events_of[c].empty()) join(clock, clocks[events_of[c].back()]);
    for (uint32_t enabler : record.enablers) {
      if (enabler < e) join(clock, clocks[enabler]);
    }
    for (const Access& access : record.accesses) {
      ObjectState& state = state_of(access.object);
      switch (access.kind) {
        case AccessKind::kRead:
          join(clock, state.write);
          join(clock, state.updates);
          break;
        case AccessKind::kUpdate:
          join(clock, state.write);
          join(clock, state.reads);
          break;
        case AccessKind::kWrite:
          join(clock, state.write);
          join(clock, state.reads);
          join(clock, state.updates);
          break;
        case AccessKind::kAcquire:
          join(clock, state.release);
          break;
        case AccessKind::kRelease:
          break;
      }
    }
    events_of[c].push_back(e);
    local[e] = static_cast<uint32_t>(events_of[c].size());
    clock[c] = local[e];
    for (const Access& access : record.accesses) {
      ObjectState& state = state_of(access.object);
      switch (access.kind) {
        case AccessKind::kRead:
          join(state.reads, clock);
          break;
        case AccessKind::kUpdate:
          join(state.updates, clock);
          break;
        case AccessKind::kWrite:
          state.write = clock;
          std::fill(state.reads.begin(), state.reads.end(), 0);
          std::fill(state.updates.begin(), state.updates.end(), 0);
          break;
        case AccessKind::kRelease:
          join(state.release, clock);
          break;
        case AccessKind::kAcquire:
          break;
      }
    }
    clocks[e] = std::move(clock);
  }

  // Makes sure some initial of notdep(i).proc(j) is tried before i.
  auto reverse = [&](size_t i, size_t j) {
    ++races_;
    const uint32_t li = local[i];
    const uint32_t cj = component[j];
    // v = notdep(i) . proc(j): the steps after i that do not happen after it, then j.
    const uint32_t ci = component[i];
    std::map<uint32_t, size_t> first_in_v;  // component -> first step in v
    for (size_t k = i + 1; k < j; ++k) {
      if (steps[k].barrier() || clocks[k][ci] >= li) continue;
      first_in_v.emplace(component[k], k);
    }
    first_in_v.emplace(cj, j);
    std::vector<uint32_t> initials;
    for (const auto& [q, fq] : first_in_v) {
      bool initial = true;
      for (const auto& [r, fr] : first_in_v) {
        if (r != q && clocks[fq][r] >= local[fr]) {
          initial = false;
          break;
        }
      }
      if (initial) initials.push_back(steps[fq].lid);
    }
    Node& node = nodes_[static_cast<size_t>(node_of[i])];
    bool covered = false;
    for (uint32_t lid : initials) {
      if (contains(node.backtrack, lid) || in_sleep(node, lid)) {
        covered = true;
        break;
      }
    }
    if (covered) return;
    uint32_t pick = kNoLid;
    if (contains(initials, steps[j].lid) && contains(node.enabled, steps[j].lid)) {
      pick = steps[j].lid;
    } else {
      for (uint32_t lid : node.enabled) {
        if (contains(initials, lid)) {
          pick = lid;
          break;
        }
      }
    }
    if (pick == kNoLid) {
      // Not expected under the model; stay sound by trying every runnable task there.
      ++fallbacks_;
      for (uint32_t lid : node.enabled) {
        if (!contains(node.backtrack, lid)) node.backtrack.push_back(lid);
      }
    } else {
      node.backtrack.push_back(pick);
    }
  };

  std::vector<int64_t> frontier(width);
  for (size_t j = 0; j < n; ++j) {
    if (steps[j].barrier() || node_of[j] < static_cast<int64_t>(threshold)) continue;
    const uint32_t cj = component[j];
    const Clock& clock_j = clocks[j];
    for (size_t q = 0; q < width; ++q) {
      const uint32_t count = q == cj ? clock_j[q] - 1 : clock_j[q];
      frontier[q] = count == 0 ? -1 : static_cast<int64_t>(events_of[q][count - 1]);
    }
    for (size_t p = 0; p < width; ++p) {
      if (p == cj || p == barrier_component || frontier[p] < 0) continue;
      const size_t i = static_cast<size_t>(frontier[p]);
      const uint32_t li = local[i];
      bool maximal = true;
      for (size_t q = 0; q < width && maximal; ++q) {
        if (q == p || frontier[q] < 0) continue;
        if (clocks[static_cast<size_t>(frontier[q])][p] >= li) maximal = false;
      }
      if (!maximal) continue;
      // The part of j that i made possible (a spawn or a wake: all of it; a release that a
      // close acquired: from the acquire on) can never come before i. The race is reversible
      // if j conflicts with i before that point.
      uint32_t gate = std::numeric_limits<uint32_t>::max();
      if (std::find(steps[j].enablers.begin(), steps[j].enablers.end(), i) !=
          steps[j].enablers.end()) {
        gate = 0;
      }
      gate = std::min(gate, acquire_position(steps[i].accesses, steps[j].accesses));
      if (!conflicts_before(steps[i].accesses, steps[j].accesses, gate)) continue;
      reverse(i, j);
    }
  }
}

}  // namespace asupersync::lab::internal
