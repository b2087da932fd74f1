// compare: the side-by-side scenarios of ../shared/peers (see its README, "Adding the new
// runtime as a peer") on the production runtime, so that Asupersync runs as one more column
// of the peers' table (bench/run_compare.sh drives it).
//
//   compare [--threads K] SCENARIO SIZE...
//     spawn_join N                 N tiny tasks spawned from one task, joined in order
//     yield_many T Y               T tasks, each `co_await cx.yield()` Y times
//     ping_pong M                  two tasks, M round trips over two channels of capacity 1
//     timers N                     N tasks each sleep ((i*2654435761) & 0xffffffff) % 10001 us
//     cancel_storm N               N tasks parked forever in a region; cancel the region, time
//                                  cancel → region Closed (spawn phase reported as spawn_s)
//     cancel_latency Q K BUDGET_S  Q busy tasks looping on yield forever; K times: a target
//                                  parks forever, handle.cancel(), time cancel → its cleanup
//     cancel_group Q G K BUDGET_S  same load; K times: G targets in their own region, cancel
//                                  the region, time cancel → the last cleanup
//     suspended_rss N              VmRSS with N tasks parked on a sleep (not a peer scenario)
//     noise_probe MS               no runtime: two threads spin on the clock for MS ms and report
//                                  the gaps (> 0.5 ms) in which they were not running, i.e. the
//                                  lateness floor the machine imposes on any runtime right now
//     tcp_echo_server | http_raw_server | http_fw_server   unsupported (exit 3)
//
// Prints exactly one line `peer=asupersync_tK scenario=... n=... seconds=... ops_per_sec=...
// [k=v ...]` and exits 0 with _exit (like the peers: large task sets, and the busy tasks of the
// cancel scenarios, are never torn down). Timings cover the measured part only. Every line ends
// with two noise gauges of the whole process: proc_cpu_s (CPU time) and proc_runq_wait_s (time
// its threads were runnable but waited for a CPU, from schedstat), since the 2-core machine is
// shared.

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/compare_channel.h"
#include "bench/compare_cli.h"
#include "core/cx.h"
#include "core/region.h"
#include "core/task.h"
#include "sched/runtime.h"

namespace asupersync::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double microseconds(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

uint64_t delay_us(uint64_t i) { return ((i * 2654435761ull) & 0xffffffffull) % 10001; }

// Nearest rank of an ascending vector (the peers' rule).
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::string g_peer = "asupersync_t2";

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "compare: %s\n", what.c_str());
  std::fflush(stderr);
  _exit(1);
}

// Noise gauges over the whole process so far: CPU time used, and time its threads spent
// runnable but waiting for a CPU (the run_delay of /proc/self/task/*/schedstat).
std::string process_gauges() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const double cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  double wait_s = 0;
  if (DIR* tasks = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(tasks)) {
      if (entry->d_name[0] == '.') continue;
      const std::string path = std::string("/proc/self/task/") + entry->d_name + "/schedstat";
      if (FILE* file = std::fopen(path.c_str(), "r")) {
        unsigned long long on_cpu_ns = 0, waiting_ns = 0;
        if (std::fscanf(file, "%llu %llu", &on_cpu_ns, &waiting_ns) == 2) {
          wait_s += static_cast<double>(waiting_ns) / 1e9;
        }
        std::fclose(file);
      }
    }
    closedir(tasks);
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "proc_cpu_s=%.3f proc_runq_wait_s=%.3f", cpu_s, wait_s);
  return buf;
}

// Prints the result line and ends the process at once (busy tasks are never joined).
[[noreturn]] void report(const char* scenario, uint64_t n, double seconds, double ops,
                         const std::string& extra) {
  const std::string gauges = process_gauges();
  std::printf("peer=%s scenario=%s n=%llu seconds=%.6f ops_per_sec=%.1f%s%s %s\n", g_peer.c_str(),
              scenario, static_cast<unsigned long long>(n), seconds,
              seconds > 0 ? ops / seconds : 0.0, extra.empty() ? "" : " ", extra.c_str(),
              gauges.c_str());
  std::fflush(stdout);
  _exit(0);
}

template <typename T>
T must(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) fail(std::string(what) + ": " + value.status().ToString());
  return std::move(value).value();
}

long rss_kb() {
  FILE* file = std::fopen("/proc/self/status", "r");
  if (file == nullptr) return -1;
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof line, file) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::strtol(line + 6, nullptr, 10);
  }
  std::fclose(file);
  return kb;
}

// ------------------------------------------------------------------------------ spawn_join
Task<void> spawn_join(Cx& cx, uint64_t n) {
  const auto t0 = Clock::now();
  std::vector<TaskHandle<uint64_t>> handles;
  handles.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    handles.push_back(must(cx.spawn("leaf", [i](Cx&) -> Task<uint64_t> { co_return i; }), "spawn"));
  }
  uint64_t sum = 0;
  for (auto& handle : handles) {
    Outcome<uint64_t> joined = co_await handle.join(cx);
    if (!joined.ok()) fail("join: " + joined.to_string());
    sum += joined.value();
  }
  const double dt = seconds_since(t0);
  if (sum != n * (n - 1) / 2) fail("spawn_join: wrong sum");
  report("spawn_join", n, dt, static_cast<double>(n), "");
}

// ------------------------------------------------------------------------------ yield_many
Task<void> yield_many(Cx& cx, uint64_t t, uint64_t y) {
  const auto t0 = Clock::now();
  std::vector<TaskHandle<uint64_t>> handles;
  handles.reserve(t);
  for (uint64_t i = 0; i < t; ++i) {
    handles.push_back(must(cx.spawn("yielder",
                                    [y](Cx& c) -> Task<uint64_t> {
                                      for (uint64_t j = 0; j < y; ++j) {
                                        absl::Status status = co_await c.yield();
                                        if (!status.ok()) co_return j;
                                      }
                                      co_return y;
                                    }),
                           "spawn"));
  }
  uint64_t total = 0;
  for (auto& handle : handles) {
    Outcome<uint64_t> joined = co_await handle.join(cx);
    if (!joined.ok()) fail("join: " + joined.to_string());
    total += joined.value();
  }
  const double dt = seconds_since(t0);
  if (total != t * y) fail("yield_many: wrong total");
  report("yield_many", t * y, dt, static_cast<double>(t * y),
         "tasks=" + std::to_string(t) + " yields_per_task=" + std::to_string(y));
}

// ------------------------------------------------------------------------------- ping_pong
Task<void> ping_pong(Cx& cx, uint64_t m) {
  BoundedChannel<uint64_t> requests(1);
  BoundedChannel<uint64_t> responses(1);
  auto pong = must(cx.spawn("pong",
                            [&requests, &responses](Cx& c) -> Task<void> {
                              while (true) {
                                auto recv = requests.recv(c);
                                absl::StatusOr<uint64_t> request = co_await recv;
                                if (!request.ok()) co_return;  // closed
                                auto send = responses.send(c, *request + 1);
                                absl::Status sent = co_await send;
                                if (!sent.ok()) co_return;
                              }
                            }),
                   "spawn");
  const auto t0 = Clock::now();
  uint64_t acc = 0;
  for (uint64_t i = 0; i < m; ++i) {
    auto send = requests.send(cx, i);
    absl::Status sent = co_await send;
    if (!sent.ok()) fail("ping send: " + sent.ToString());
    auto recv = responses.recv(cx);
    absl::StatusOr<uint64_t> response = co_await recv;
    if (!response.ok()) fail("ping recv: " + response.status().ToString());
    acc += *response - i;
  }
  const double dt = seconds_since(t0);
  requests.close();
  Outcome<void> joined = co_await pong.join(cx);
  if (!joined.ok()) fail("pong: " + joined.to_string());
  if (acc != m) fail("ping_pong: wrong sum");
  report("ping_pong", m, dt, static_cast<double>(m),
         "msgs=" + std::to_string(2 * m) + " capacity=1");
}

// ---------------------------------------------------------------------------------- timers
// Diagnostic (not part of the scenario): with ASUPERSYNC_TIMERS_TRACE=path set, each sleeper's
// start and wake (ns since the scenario's start), its requested sleep and the threads it started
// and woke on are written to `path` as CSV, to see where lateness comes from.
struct SleeperTrace {
  int64_t start_ns;
  int64_t wake_ns;
  uint32_t requested_us;
  int32_t start_thread;
  int32_t wake_thread;
};
std::vector<SleeperTrace>* g_sleeper_trace = nullptr;
Clock::time_point g_timers_t0;

int32_t thread_id() { return static_cast<int32_t>(gettid()); }

// Sleeps delay_us(i) and returns how late it woke, ns.
Task<int64_t> sleeper(Cx& cx, uint64_t i) {
  const auto requested = std::chrono::microseconds(delay_us(i));
  const auto start = Clock::now();
  const int32_t start_thread = g_sleeper_trace != nullptr ? thread_id() : 0;
  absl::Status slept = co_await cx.sleep(Duration::Microseconds(requested.count()));
  if (!slept.ok()) co_return -1;
  const auto woke = Clock::now();
  if (g_sleeper_trace != nullptr) {
    (*g_sleeper_trace)[i] =
        SleeperTrace{std::chrono::nanoseconds(start - g_timers_t0).count(),
                     std::chrono::nanoseconds(woke - g_timers_t0).count(),
                     static_cast<uint32_t>(requested.count()), start_thread, thread_id()};
  }
  const auto late = woke - start - requested;
  co_return std::max<int64_t>(0, std::chrono::nanoseconds(late).count());
}

void write_sleeper_trace(const char* path) {
  FILE* file = std::fopen(path, "w");
  if (file == nullptr) fail(std::string("cannot write ") + path);
  std::fprintf(file, "i,start_ns,wake_ns,requested_us,late_us,start_thread,wake_thread\n");
  for (size_t i = 0; i < g_sleeper_trace->size(); ++i) {
    const SleeperTrace& t = (*g_sleeper_trace)[i];
    std::fprintf(file, "%zu,%lld,%lld,%u,%.1f,%d,%d\n", i, static_cast<long long>(t.start_ns),
                 static_cast<long long>(t.wake_ns), t.requested_us,
                 static_cast<double>(t.wake_ns - t.start_ns) / 1e3 - t.requested_us, t.start_thread,
                 t.wake_thread);
  }
  std::fclose(file);
}

Task<void> timers(Cx& cx, uint64_t n) {
  const char* trace_path = std::getenv("ASUPERSYNC_TIMERS_TRACE");
  if (trace_path != nullptr) g_sleeper_trace = new std::vector<SleeperTrace>(n);
  const auto t0 = Clock::now();
  g_timers_t0 = t0;
  std::vector<TaskHandle<int64_t>> handles;
  handles.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    handles.push_back(must(cx.spawn("sleeper", [i](Cx& c) { return sleeper(c, i); }), "spawn"));
  }
  std::vector<double> late_us;
  late_us.reserve(n);
  double late_sum = 0;
  for (auto& handle : handles) {
    Outcome<int64_t> joined = co_await handle.join(cx);
    if (!joined.ok() || joined.value() < 0) fail("sleeper: " + joined.to_string());
    late_us.push_back(static_cast<double>(joined.value()) / 1e3);
    late_sum += late_us.back();
  }
  const double dt = seconds_since(t0);
  std::sort(late_us.begin(), late_us.end());
  char extra[256];
  std::snprintf(extra, sizeof extra,
                "overhead_s=%.6f late_mean_us=%.1f late_p50_us=%.1f late_p99_us=%.1f "
                "late_max_us=%.1f",
                dt - 0.010, late_sum / static_cast<double>(n), percentile(late_us, 50),
                percentile(late_us, 99), late_us.back());
  if (trace_path != nullptr) write_sleeper_trace(trace_path);
  report("timers", n, dt, static_cast<double>(n), extra);
}

// ---------------------------------------------------------------------------- cancel_storm
Task<void> cancel_storm(Cx& cx, uint64_t n) {
  std::atomic<uint64_t> started{0};
  double spawn_s = 0;
  Clock::time_point t0;
  const auto ts = Clock::now();
  auto storm = Region::open(cx, "storm", [&](Cx& rx) -> Task<void> {
    for (uint64_t i = 0; i < n; ++i) {
      must(rx.spawn("parked",
                    [&started](Cx& c) -> Task<void> {
                      started.fetch_add(1, std::memory_order_relaxed);
                      ParkForever park(c);
                      absl::Status status = co_await park;
                      (void)status;
                    }),
           "spawn");
    }
    // Every task has run once and is parked.
    while (started.load(std::memory_order_relaxed) < n) {
      absl::Status status = co_await rx.yield();
      (void)status;
    }
    spawn_s = seconds_since(ts);
    t0 = Clock::now();
    rx.cancel_region("cancel_storm");
  });
  Outcome<void> closed = co_await std::move(storm);
  const double dt = seconds_since(t0);
  if (!closed.is_cancelled()) fail("storm region: " + closed.to_string());
  char extra[64];
  std::snprintf(extra, sizeof extra, "spawn_s=%.6f", spawn_s);
  report("cancel_storm", n, dt, static_cast<double>(n), extra);
}

// ---------------------------------------------------------- cancel_latency / cancel_group
// Q busy tasks (in the caller's region, never joined) that loop on yield forever; returns once
// each has run once. The parent polls once per trip through the run queue, as the peers do.
Task<void> spawn_busy(Cx& cx, uint64_t q, std::atomic<uint64_t>* busy_started) {
  for (uint64_t i = 0; i < q; ++i) {
    must(cx.spawn("busy",
                  [busy_started](Cx& c) -> Task<void> {
                    busy_started->fetch_add(1, std::memory_order_relaxed);
                    while (true) {
                      absl::Status status = co_await c.yield();
                      if (!status.ok()) co_return;
                    }
                  }),
         "spawn");
  }
  while (busy_started->load(std::memory_order_relaxed) < q) {
    absl::Status status = co_await cx.yield();
    (void)status;
  }
}

std::string latency_extra(uint64_t q, const std::string& group, std::vector<double>& lat_us,
                          uint64_t k) {
  std::sort(lat_us.begin(), lat_us.end());
  char buf[256];
  std::snprintf(buf, sizeof buf, "queued=%llu%s p50_us=%.3f p99_us=%.3f max_us=%.3f",
                static_cast<unsigned long long>(q), group.c_str(), percentile(lat_us, 50),
                percentile(lat_us, 99), lat_us.empty() ? 0.0 : lat_us.back());
  std::string extra = buf;
  if (lat_us.size() < k) extra += " stopped_early=1 k_requested=" + std::to_string(k);
  return extra;
}

// Cleanup hook of a target: records when the target's frame lets go of it.
struct LatencyProbe {
  Clock::time_point t1;
  bool cleaned = false;
};
struct LatencyHook {
  LatencyProbe* probe;
  ~LatencyHook() {
    probe->t1 = Clock::now();
    probe->cleaned = true;
  }
};

Task<void> cancel_latency(Cx& cx, uint64_t q, uint64_t k, double budget_s) {
  std::atomic<uint64_t> busy_started{0};
  auto busy = spawn_busy(cx, q, &busy_started);
  co_await std::move(busy);
  BoundedChannel<int> parked(1);  // "started and parked", sent by the target
  std::vector<double> lat_us;
  lat_us.reserve(k);
  const auto t_start = Clock::now();
  for (uint64_t i = 0; i < k; ++i) {
    if (i > 0 && seconds_since(t_start) > budget_s) break;
    LatencyProbe probe;
    auto target = must(cx.spawn("target",
                                [&probe, &parked](Cx& c) -> Task<void> {
                                  LatencyHook hook{&probe};
                                  // Signalled from just before the park, as the peers do; the
                                  // parent runs only once this task has suspended.
                                  parked.try_send(1);
                                  ParkForever park(c);
                                  absl::Status status = co_await park;
                                  (void)status;
                                }),
                       "spawn");
    auto recv = parked.recv(cx);
    absl::StatusOr<int> started = co_await recv;
    if (!started.ok()) fail("target start: " + started.status().ToString());
    const auto t0 = Clock::now();
    target.cancel("cancel_latency");
    Outcome<void> joined = co_await target.join(cx);
    if (!joined.is_cancelled() || !probe.cleaned) fail("target: " + joined.to_string());
    lat_us.push_back(microseconds(probe.t1 - t0));
  }
  const double dt = seconds_since(t_start);
  const uint64_t n = lat_us.size();
  report("cancel_latency", n, dt, static_cast<double>(n), latency_extra(q, "", lat_us, k));
}

struct GroupProbe {
  std::atomic<int64_t> last_ns{0};           // latest hook time, ns since `base`
  std::atomic<int64_t> first_ns{INT64_MAX};  // earliest hook time (diagnostic)
  std::atomic<uint64_t> cleaned{0};
  std::atomic<uint64_t> started{0};
  Clock::time_point base;
};
struct GroupHook {
  GroupProbe* probe;
  ~GroupHook() {
    const int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - probe->base).count();
    int64_t seen = probe->last_ns.load(std::memory_order_relaxed);
    while (seen < ns && !probe->last_ns.compare_exchange_weak(seen, ns)) {
    }
    int64_t first = probe->first_ns.load(std::memory_order_relaxed);
    while (ns < first && !probe->first_ns.compare_exchange_weak(first, ns)) {
    }
    probe->cleaned.fetch_add(1, std::memory_order_acq_rel);
  }
};

Task<void> cancel_group(Cx& cx, uint64_t q, uint64_t g, uint64_t k, double budget_s) {
  std::atomic<uint64_t> busy_started{0};
  auto busy = spawn_busy(cx, q, &busy_started);
  co_await std::move(busy);
  BoundedChannel<int> all_parked(1);  // sent by the last target to start
  std::vector<double> lat_us, request_us, first_us;
  lat_us.reserve(k);
  request_us.reserve(k);
  first_us.reserve(k);
  const auto t_start = Clock::now();
  for (uint64_t i = 0; i < k; ++i) {
    if (i > 0 && seconds_since(t_start) > budget_s) break;
    GroupProbe probe;
    probe.base = Clock::now();
    int64_t t0_ns = 0;
    int64_t requested_ns = 0;
    auto group = Region::open(cx, "group", [&](Cx& gx) -> Task<void> {
      for (uint64_t j = 0; j < g; ++j) {
        must(gx.spawn("target",
                      [&probe, &all_parked, g](Cx& c) -> Task<void> {
                        GroupHook hook{&probe};
                        if (probe.started.fetch_add(1, std::memory_order_acq_rel) + 1 == g) {
                          all_parked.try_send(1);
                        }
                        ParkForever park(c);
                        absl::Status status = co_await park;
                        (void)status;
                      }),
             "spawn");
      }
      auto recv = all_parked.recv(gx);
      absl::StatusOr<int> started = co_await recv;
      if (!started.ok()) fail("group start: " + started.status().ToString());
      t0_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - probe.base).count();
      gx.cancel_region("cancel_group");  // one operation cancels all G
      requested_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - probe.base).count();
    });
    Outcome<void> closed = co_await std::move(group);  // Closed: every hook ran
    if (!closed.is_cancelled() || probe.cleaned.load() != g) {
      fail("group region: " + closed.to_string());
    }
    lat_us.push_back(static_cast<double>(probe.last_ns.load() - t0_ns) / 1e3);
    request_us.push_back(static_cast<double>(requested_ns - t0_ns) / 1e3);
    first_us.push_back(static_cast<double>(probe.first_ns.load() - t0_ns) / 1e3);
  }
  // Diagnostics: how long cancel_region took (request_*), when the first hook ran, and which
  // round was the slowest (round 0 pays first-use costs).
  const size_t slowest_round =
      static_cast<size_t>(std::max_element(lat_us.begin(), lat_us.end()) - lat_us.begin());
  std::sort(request_us.begin(), request_us.end());
  std::sort(first_us.begin(), first_us.end());
  char diagnostics[200];
  std::snprintf(diagnostics, sizeof diagnostics,
                " request_p50_us=%.3f request_max_us=%.3f first_hook_p50_us=%.3f slowest_round=%zu",
                percentile(request_us, 50), request_us.empty() ? 0.0 : request_us.back(),
                percentile(first_us, 50), slowest_round);
  const double dt = seconds_since(t_start);
  const uint64_t n = lat_us.size();
  report("cancel_group", n, dt, static_cast<double>(n * g),
         latency_extra(q, " group=" + std::to_string(g), lat_us, k) + diagnostics);
}

// --------------------------------------------------------------------------- suspended_rss
// RSS of N tasks parked on a sleep (an hour): VmRSS after all started, minus VmRSS before.
Task<void> suspended_rss(Cx& cx, uint64_t n) {
  std::atomic<uint64_t> started{0};
  const long before_kb = rss_kb();
  long after_kb = 0;
  const auto t0 = Clock::now();
  double spawn_s = 0;
  auto parked = Region::open(cx, "parked", [&](Cx& rx) -> Task<void> {
    for (uint64_t i = 0; i < n; ++i) {
      must(rx.spawn("sleeper",
                    [&started](Cx& c) -> Task<void> {
                      started.fetch_add(1, std::memory_order_relaxed);
                      absl::Status slept = co_await c.sleep(Duration::Seconds(3600));
                      (void)slept;
                    }),
           "spawn");
    }
    while (started.load(std::memory_order_relaxed) < n) {
      absl::Status status = co_await rx.yield();
      (void)status;
    }
    spawn_s = seconds_since(t0);
    after_kb = rss_kb();
    rx.cancel_region("suspended_rss");
  });
  Outcome<void> closed = co_await std::move(parked);
  (void)closed;
  char extra[160];
  std::snprintf(extra, sizeof extra, "rss_before_kb=%ld rss_kb=%ld bytes_per_task=%.0f", before_kb,
                after_kb,
                static_cast<double>(after_kb - before_kb) * 1024.0 / static_cast<double>(n));
  report("suspended_rss", n, spawn_s, static_cast<double>(n), extra);
}

// ----------------------------------------------------------------------------- noise_probe
// Two plain threads (as many as the runtime's workers) spin reading the clock; a gap between two
// reads of more than 0.5 ms is time the thread was not running (preempted by another process,
// or the VM's vCPU was not scheduled). Lateness beyond that floor is the runtime's.
[[noreturn]] void noise_probe(uint64_t ms, int threads) {
  struct Gaps {
    uint64_t count = 0;
    double total_us = 0;
    double max_us = 0;
  };
  std::vector<Gaps> gaps(static_cast<size_t>(threads));
  std::vector<std::thread> spinners;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::milliseconds(ms);
  for (int t = 0; t < threads; ++t) {
    spinners.emplace_back([&, t] {
      Gaps& mine = gaps[static_cast<size_t>(t)];
      auto previous = Clock::now();
      while (previous < end) {
        const auto now = Clock::now();
        const double gap_us = microseconds(now - previous);
        if (gap_us > 500) {
          ++mine.count;
          mine.total_us += gap_us;
          mine.max_us = std::max(mine.max_us, gap_us);
        }
        previous = now;
      }
    });
  }
  for (std::thread& spinner : spinners) spinner.join();
  const double dt = seconds_since(t0);
  Gaps all;
  for (const Gaps& g : gaps) {
    all.count += g.count;
    all.total_us += g.total_us;
    all.max_us = std::max(all.max_us, g.max_us);
  }
  char extra[200];
  std::snprintf(extra, sizeof extra, "gaps_over_500us=%llu max_gap_us=%.0f off_cpu_fraction=%.3f",
                static_cast<unsigned long long>(all.count), all.max_us,
                all.total_us / 1e6 / (dt * threads));
  report("noise_probe", ms, dt, static_cast<double>(all.count), extra);
}

int run_main(int argc, char** argv) {
  absl::StatusOr<CompareCommandLine> command_line = parse_compare_command_line(argc, argv);
  if (!command_line.ok()) fail(std::string(command_line.status().message()));
  const int threads = command_line->threads;
  const std::string& scenario = command_line->scenario;
  const std::vector<std::string>& arguments = command_line->arguments;
  g_peer = "asupersync_t" + std::to_string(threads);
  if (scenario.empty()) {
    std::fprintf(stderr,
                 "usage: compare [--threads K] spawn_join N | yield_many T Y | ping_pong M | "
                 "timers N | cancel_storm N | cancel_latency Q K BUDGET_S | "
                 "cancel_group Q G K BUDGET_S | suspended_rss N | noise_probe MS\n");
    return 2;
  }
  // Sizes are parsed before the runtime starts (a bad argument fails fast).
  std::vector<uint64_t> sizes;
  double budget_s = 45;
  auto need = [&](size_t count) {
    if (arguments.size() < count) {
      fail(scenario + " needs " + std::to_string(count) + " sizes (see the usage line)");
    }
    for (size_t j = 0; j < count; ++j) {
      absl::StatusOr<uint64_t> size = parse_positive_count(arguments[j], "size");
      if (!size.ok()) fail(std::string(size.status().message()));
      sizes.push_back(*size);
    }
  };
  auto optional_budget = [&](size_t index) {
    if (arguments.size() <= index) return;
    char* end = nullptr;
    budget_s = std::strtod(arguments[index].c_str(), &end);
    if (end == arguments[index].c_str() || *end != '\0' || !(budget_s > 0)) {
      fail("bad BUDGET_S: '" + arguments[index] + "' (expected positive seconds)");
    }
  };
  if (scenario == "spawn_join" || scenario == "ping_pong" || scenario == "timers" ||
      scenario == "cancel_storm" || scenario == "suspended_rss" || scenario == "noise_probe") {
    need(1);
  } else if (scenario == "yield_many") {
    need(2);
  } else if (scenario == "cancel_latency") {
    need(2);
    optional_budget(2);
  } else if (scenario == "cancel_group") {
    need(3);
    optional_budget(3);
  } else {
    // The servers (tcp_echo, http_*) and any scenario this runtime does not have.
    std::printf("peer=%s scenario=%s unsupported=1\n", g_peer.c_str(), scenario.c_str());
    std::fflush(stdout);
    return 3;
  }

  if (scenario == "noise_probe") noise_probe(sizes[0], threads);

  sched::RuntimeOptions options;
  options.workers = threads;
  sched::Runtime runtime(options);
  auto outcome = runtime.run([&](Cx& cx) -> Task<void> {
    // Each branch reports and ends the process.
    if (scenario == "spawn_join") {
      auto run = spawn_join(cx, sizes[0]);
      co_await std::move(run);
    } else if (scenario == "yield_many") {
      auto run = yield_many(cx, sizes[0], sizes[1]);
      co_await std::move(run);
    } else if (scenario == "ping_pong") {
      auto run = ping_pong(cx, sizes[0]);
      co_await std::move(run);
    } else if (scenario == "timers") {
      auto run = timers(cx, sizes[0]);
      co_await std::move(run);
    } else if (scenario == "cancel_storm") {
      auto run = cancel_storm(cx, sizes[0]);
      co_await std::move(run);
    } else if (scenario == "cancel_latency") {
      auto run = cancel_latency(cx, sizes[0], sizes[1], budget_s);
      co_await std::move(run);
    } else if (scenario == "cancel_group") {
      auto run = cancel_group(cx, sizes[0], sizes[1], sizes[2], budget_s);
      co_await std::move(run);
    } else if (scenario == "suspended_rss") {
      auto run = suspended_rss(cx, sizes[0]);
      co_await std::move(run);
    }
  });
  fail("the scenario returned without reporting: " + outcome.to_string());
}

}  // namespace
}  // namespace asupersync::bench

int main(int argc, char** argv) { return asupersync::bench::run_main(argc, argv); }
