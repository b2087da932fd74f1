// The first program to run: cancellation as a protocol (request -> drain -> finalize), watched
// as it happens.
//
// A "server" region runs four workers. Each holds a lease (a pooled connection) for its whole
// life and reserves a permit (a reply slot) for every request it handles: both are obligations
// (SPEC 5) recorded in the region's ledger, and each must be committed, completed or aborted.
// At 25 ms the program cancels the server with a 15 ms cleanup budget. Three workers acknowledge
// at once, abort their in-flight permit, flush, and give their lease back; the fourth shields
// itself and keeps working, so when its budget runs out the runtime destroys it (escalation
// kDestroy, SPEC 4.5) and its RAII guard aborts its lease. Then the region's finalizers run,
// last registered first, and the outcomes travel up.
//
// Everything runs on the deterministic lab runtime: time is virtual (the timestamps are
// virtual milliseconds; the program takes a few milliseconds of real time) and the output is
// the same on every run (SPEC 11.1).
//
// Thread-safety: single-threaded (the lab runtime). Lifetime: everything lives in main().
// Cancellation contract: see the workers below; this file is the example.

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/cx.h"
#include "core/region.h"
#include "core/task.h"
#include "lab/lab_runtime.h"
#include "obligations/lease.h"
#include "obligations/ledger.h"
#include "obligations/permit.h"

namespace asupersync::demo {
namespace {

constexpr Duration kCancelAt = Duration::Milliseconds(25);
constexpr Duration kCleanupBudget = Duration::Milliseconds(15);

// ----- Output ------------------------------------------------------------------------------

void heading(std::string_view text) {
  std::printf("\n== %.*s ==\n", int(text.size()), text.data());
}

void note(std::string_view text) { std::printf("   %.*s\n", int(text.size()), text.data()); }

// "[  25.000ms] worker-1   acknowledged ..."
void log(Cx& cx, std::string_view who, std::string_view what) {
  const int64_t nanos = cx.now().value().nanoseconds();
  std::printf("[%4" PRId64 ".%03" PRId64 "ms] %-9.*s %.*s\n", nanos / 1'000'000,
              nanos / 1'000 % 1'000, int(who.size()), who.data(), int(what.size()), what.data());
}

// "ParentCancelled <- Shutdown 'demo: shutting down'": the kinds along the cause chain, then the
// original message.
std::string describe(const CancelReason& reason) {
  std::string out(cancel_kind_name(reason.kind()));
  const CancelReason* root = &reason;
  while (root->cause() != nullptr) {
    root = root->cause();
    absl::StrAppend(&out, " <- ", cancel_kind_name(root->kind()));
  }
  absl::StrAppend(&out, " '", root->message(), "'");
  return out;
}

std::string describe(const Outcome<void>& outcome) {
  if (outcome.is_cancelled()) return "Cancelled (" + describe(outcome.cancel_reason()) + ")";
  return outcome.to_string();
}

// ----- Two primitives that hand out obligations ------------------------------------------------

// Reply slots: reserve() hands out a Permit<std::string>; sending through it delivers a reply.
class ReplySlots final : public PermitSink<std::string> {
 public:
  absl::StatusOr<Permit<std::string>> reserve(Cx& cx) {
    absl::StatusOr<ObligationId> id =
        cx.region().ledger().record(ObligationKind::kPermit, "reply slot", SourceSite::current());
    if (!id.ok()) return id.status();
    return Permit<std::string>(this, &cx.region().ledger(), *id);
  }
  void commit(std::string reply) override { delivered_.push_back(std::move(reply)); }
  void release() noexcept override { ++given_back_; }

  size_t sent() const { return delivered_.size(); }
  size_t given_back() const { return given_back_; }

 private:
  std::vector<std::string> delivered_;
  size_t given_back_ = 0;
};

// A connection pool: acquire() lends a connection as a Lease.
class ConnectionPool final : public LeaseHolder {
 public:
  absl::StatusOr<Lease> acquire(Cx& cx, const std::string& what) {
    absl::StatusOr<ObligationId> id =
        cx.region().ledger().record(ObligationKind::kLease, what, SourceSite::current());
    if (!id.ok()) return id.status();
    return Lease(this, &cx.region().ledger(), *id, cx.now().value() + Duration::Seconds(60));
  }
  void on_release(bool completed) noexcept override { ++(completed ? completed_ : aborted_); }

  size_t completed() const { return completed_; }
  size_t aborted() const { return aborted_; }

 private:
  size_t completed_ = 0;
  size_t aborted_ = 0;
};

struct Services {
  ReplySlots replies;
  ConnectionPool pool;
  // The workers, for the outcome table at the end.
  std::vector<std::pair<std::string, TaskHandle<void>>> workers;
  std::string region_outcome;
};

// ----- The workers -------------------------------------------------------------------------

// A cooperative worker: handles a request every `period`; on cancellation it aborts the
// request in flight, flushes (shielded, so the flush itself is not cancelled), gives its
// connection back and returns.
struct Worker {
  Services* services;
  std::string name;
  Duration period;

  Task<void> operator()(Cx& cx) {
    absl::StatusOr<Lease> connection = services->pool.acquire(cx, "connection of " + name);
    if (!connection.ok()) co_return;
    log(cx, name, "acquired a lease: its connection");
    for (int request = 1;; ++request) {
      absl::StatusOr<Permit<std::string>> slot = services->replies.reserve(cx);
      if (!slot.ok()) co_return;
      absl::Status handled = co_await cx.sleep(period);  // a cancellation point
      if (!handled.ok()) {
        log(cx, name, "acknowledged the request: its sleep returned Cancelled");
        std::move(*slot).abort();
        log(cx, name, absl::StrCat("aborted the permit of request ", request, " (no reply)"));
        {
          absl::StatusOr<ShieldGuard> shield = cx.shield();
          (void)co_await cx.sleep(Duration::Milliseconds(2));
        }
        std::move(*connection).complete();
        log(cx, name, "flushed for 2ms (shielded); completed its lease; returns");
        co_return;
      }
      std::move(*slot).send(absl::StrCat(name, " reply ", request));
      log(cx, name, absl::StrCat("request ", request, " done: permit committed (reply sent)"));
    }
  }
};

// Aborts the lease if the frame holding it is destroyed: the explicit abort path, not a leak.
struct LeaseGuard {
  Cx* cx;
  std::string owner;
  Lease lease;
  ~LeaseGuard() {
    if (!lease.valid()) return;
    log(*cx, owner, "cleanup budget spent: the runtime destroyed its frame (kDestroy);");
    log(*cx, owner, "its RAII guard aborts its lease on the way out (an abort, not a leak)");
    std::move(lease).abort();
  }
};

// A worker that ignores cancellation: it shields itself and keeps working. Shields defer
// delivery (SPEC 4.4) but cannot outlive the cleanup budget (SPEC 4.5).
struct StubbornWorker {
  Services* services;
  std::string name;

  Task<void> operator()(Cx& cx) {
    absl::StatusOr<Lease> lock = services->pool.acquire(cx, "cache lock of " + name);
    if (!lock.ok()) co_return;
    LeaseGuard guard{&cx, name, std::move(*lock)};
    log(cx, name, "acquired a lease: a cache lock; shields itself from cancellation");
    absl::StatusOr<ShieldGuard> shield = cx.shield();
    while (true) {
      (void)co_await cx.sleep(Duration::Milliseconds(10));  // shielded: returns normally
      if (cx.cancel_requested()) log(cx, name, "cancel requested, but shielded: keeps working");
    }
  }
};

// ----- The server --------------------------------------------------------------------------

// The body of region "server": registers its finalizers, starts the workers, then serves until
// it is cancelled.
struct ServerBody {
  Services* services;

  Task<void> operator()(Cx& cx) {
    Region* server = &cx.region();
    // Finalizers run once every task of the region is done, last registered first (SPEC 3.6).
    (void)cx.defer([&cx] { log(cx, "finalizer", "'close listener' ran (registered first)"); });
    (void)cx.defer_async([](Cx& finalizer_cx) -> Task<void> {
      (void)co_await finalizer_cx.sleep(Duration::Milliseconds(1));
      log(finalizer_cx, "finalizer", "'flush access log' ran (async, 1ms, shielded)");
    });
    (void)cx.defer([&cx, server, services = services] {
      heading("5. Finalize: every task is done; finalizers run, last registered first");
      const ObligationLedger& ledger = server->ledger();
      log(cx, "finalizer",
          absl::StrCat("'report ledger' ran: committed ", ledger.committed(), ", completed ",
                       ledger.completed(), ", aborted ", ledger.aborted(), ", leaked ",
                       ledger.leaked(), ", pending ", ledger.pending()));
      note(absl::StrCat("(reply permits: ", services->replies.sent(), " sent, ",
                        services->replies.given_back(),
                        " aborted; connection leases: ", services->pool.completed(), " completed, ",
                        services->pool.aborted(), " aborted)"));
    });
    log(cx, "server", "registered 3 finalizers: close listener, flush access log, report ledger");

    const std::pair<const char*, int64_t> cooperative[] = {
        {"worker-1", 7}, {"worker-2", 11}, {"worker-3", 13}};
    for (const auto& [name, period_ms] : cooperative) {
      auto spawned = cx.spawn(name, Worker{services, name, Duration::Milliseconds(period_ms)});
      if (spawned.ok()) services->workers.emplace_back(name, std::move(spawned).value());
    }
    auto stubborn = cx.spawn("stubborn", StubbornWorker{services, "stubborn"});
    if (stubborn.ok()) services->workers.emplace_back("stubborn", std::move(stubborn).value());
    log(cx, "server", "spawned worker-1 (every 7ms), worker-2 (11ms), worker-3 (13ms), stubborn");

    (void)co_await cx.sleep(kCancelAt);  // serving

    heading("2. The region tree at 25ms (Region::dump)");
    std::printf("%s", server->parent()->dump().c_str());

    heading("3. Request: the server cancels its region, cleanup budget 15ms");
    const Time deadline = cx.now().value() + kCleanupBudget;
    cx.cancel_region("demo: shutting down", Budget::Infinite().with_deadline(deadline),
                     CancelKind::kShutdown);
    log(cx, "server", "cx.cancel_region(Shutdown, 'demo: shutting down', cleanup until 40ms)");
    note("Requests propagate down: region 'server' is Closing (it admits no new work) and each");
    note("of its tasks has a request. Nothing has run yet; a request is only a request:");
    std::printf("%s", server->dump().c_str());

    heading("4. Drain: each task acknowledges at its next cancellation point and cleans up");
    log(cx, "server", "body returns; Region::open now waits until every task is done");
  }
};

Task<void> run_server(Cx& cx, Services* services) {
  // Named first: GCC 12 mishandles temporaries inside co_await (core/README.md).
  auto serving = Region::open(cx, "server", ServerBody{services});
  Outcome<void> closed = co_await std::move(serving);
  log(cx, "server", "region 'server' is Closed: " + describe(closed));
  services->region_outcome = describe(closed);
}

Task<void> demo_main(Cx& cx, Services* services) {
  heading("1. Start: region 'server' with four workers holding obligations");
  auto server =
      cx.spawn("server", [services](Cx& server_cx) { return run_server(server_cx, services); });
  if (!server.ok()) {
    log(cx, "main", "could not start the server: " + server.status().ToString());
    co_return;
  }
  Outcome<void> joined = co_await server->join(cx);

  heading("6. Outcomes (they travel up: each task -> its region -> the task that opened it)");
  for (auto& [name, handle] : services->workers) {
    std::optional<Outcome<void>> outcome = handle.try_take();
    std::printf("   %-9s %s%s\n", name.c_str(),
                outcome.has_value() ? describe(*outcome).c_str() : "(no outcome)",
                handle.budget_exhausted() ? "  [budget exhausted: destroyed]" : "");
  }
  std::printf("   %-9s %s\n", "region", services->region_outcome.c_str());
  std::printf("   %-9s %s (it got the region's outcome from Region::open and returned)\n", "server",
              describe(joined).c_str());
}

int run() {
  std::printf("Asupersync demo: cancellation is a protocol (request -> drain -> finalize).\n");
  std::printf("Lab runtime, seed 1: virtual time in milliseconds; the same output on every run.\n");
  Services services;
  lab::LabRuntime runtime(lab::LabOptions{.seed = 1});
  Outcome<void> outcome =
      runtime.run([services = &services](Cx& cx) { return demo_main(cx, services); });
  std::printf("   %-9s %s\n", "main", describe(outcome).c_str());

  heading("Checks");
  const lab::LabReport& report = runtime.report();
  const bool clean = report.violations.empty() && !report.deadlocked;
  std::printf("   %" PRIu64 " tasks started, %" PRIu64 " finished, run ended at %s virtual\n",
              report.tasks_started, report.tasks_finished, report.end_time.to_string().c_str());
  std::printf("   oracles (no task outlives its region, closed regions quiescent): %s\n",
              clean ? "all hold" : "VIOLATED");
  for (const std::string& violation : report.violations) std::printf("   %s\n", violation.c_str());
  return clean ? 0 : 1;
}

}  // namespace
}  // namespace asupersync::demo

int main() { return asupersync::demo::run(); }
