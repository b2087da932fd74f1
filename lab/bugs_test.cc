// A suite of small concurrency bugs written against the public API (acceptance test of the
// lab, issue 5). For each bug:
//   - the buggy program: every strategy (random, PCT, DPOR) must find the bug within its
//     budget; the number of runs each needed is recorded and printed as a table at the end
//     (lab/README.md shows it);
//   - the fixed program: DPOR must exhaust its state space without a failure, and random and
//     PCT runs must pass too.
//
// Shared state goes through lab::Tracked (the lab sees its reads and writes); everything a
// scenario shares is created inside it, so every run starts fresh.
//
// GCC 12 workaround (core/README.md): tasks are named before they are awaited; no lambda
// temporary inside a co_await expression; no co_await inside a condition.

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/region.h"
#include "gtest/gtest.h"
#include "lab/explore.h"
#include "lab/testing.h"
#include "lab/tracked.h"
#include "obligations/permit.h"

namespace asupersync {
namespace {

using lab::Tracked;
template <typename T>
using Shared = std::shared_ptr<Tracked<T>>;

template <typename T>
Shared<T> shared(T initial, const char* name) {
  return std::make_shared<Tracked<T>>(initial, name);
}

constexpr uint64_t kRandomBudget = 1000;
constexpr uint64_t kPctBudget = 1000;
constexpr uint64_t kDporBudget = 5000;

// ----- The table -----------------------------------------------------------------------------

struct Row {
  std::string kind;
  uint64_t random = 0, pct = 0, dpor = 0;
  uint64_t fixed_executions = 0;
  bool fixed_exhausted = false;
};

std::map<int, std::pair<std::string, Row>>& table() {
  static std::map<int, std::pair<std::string, Row>> rows;
  return rows;
}

class PrintTable : public ::testing::Environment {
 public:
  void TearDown() override {
    std::printf(
        "\n| # | bug | found as | runs to find: random | PCT (d=3) | DPOR | fixed: DPOR executions "
        "(exhausted) |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (const auto& [number, entry] : table()) {
      const Row& row = entry.second;
      std::printf(
          "| %d | %s | `%s` | %llu | %llu | %llu | %llu (%s) |\n", number, entry.first.c_str(),
          row.kind.c_str(), static_cast<unsigned long long>(row.random),
          static_cast<unsigned long long>(row.pct), static_cast<unsigned long long>(row.dpor),
          static_cast<unsigned long long>(row.fixed_executions),
          row.fixed_exhausted ? "yes" : "no");
    }
  }
};
const auto* const kPrintTable = ::testing::AddGlobalTestEnvironment(new PrintTable);

// Explores `buggy` with each strategy (each must find a failure of `kind`) and `fixed` (DPOR
// exhausts it without failure; random and PCT pass), and records the row.
template <typename Buggy, typename Fixed>
void check_bug(int number, const char* name, const char* kind, Buggy buggy, Fixed fixed) {
  Row row;
  row.kind = kind;
  lab::ExploreResult random =
      lab::Explore({.strategy = lab::Strategy::kRandom, .runs = kRandomBudget}, buggy);
  EXPECT_LAB_FINDS(random, kind);
  if (random.failure) row.random = random.failure->run;
  lab::ExploreResult pct =
      lab::Explore({.strategy = lab::Strategy::kPct, .runs = kPctBudget}, buggy);
  EXPECT_LAB_FINDS(pct, kind);
  if (pct.failure) row.pct = pct.failure->run;
  lab::ExploreResult dpor =
      lab::Explore({.strategy = lab::Strategy::kDpor, .runs = kDporBudget}, buggy);
  EXPECT_LAB_FINDS(dpor, kind);
  if (dpor.failure) {
    row.dpor = dpor.failure->run;
    EXPECT_TRUE(dpor.failure->reproduced) << dpor.report();
    // The replay string reproduces it (and the run is deterministic: same trace hash).
    lab::ExploreResult replayed = lab::Explore({.replay = dpor.failure->replay}, buggy);
    ASSERT_TRUE(replayed.failure.has_value()) << replayed.report();
    EXPECT_EQ(replayed.failure->kind, dpor.failure->kind);
    EXPECT_EQ(replayed.failure->trace_hash, dpor.failure->trace_hash);
  }

  lab::ExploreResult full = lab::Explore({.strategy = lab::Strategy::kDpor, .runs = 20'000}, fixed);
  EXPECT_LAB_OK(full);
  EXPECT_TRUE(full.exhausted) << full.report();
  row.fixed_executions = full.complete_runs();
  row.fixed_exhausted = full.exhausted;
  EXPECT_LAB_OK(lab::Explore({.strategy = lab::Strategy::kRandom, .runs = 200}, fixed));
  EXPECT_LAB_OK(lab::Explore({.strategy = lab::Strategy::kPct, .runs = 200}, fixed));
  table()[number] = {name, row};
}

// ----- 1. Lost update across an await ------------------------------------------------------

Task<void> lost_update(Cx& cx, bool fixed) {
  auto counter = shared(0, "counter");
  auto work = Region::open(cx, "increments", [counter, fixed](Cx& rx) -> Task<void> {
    for (int i = 0; i < 2; ++i) {
      (void)rx.spawn("incrementer", [counter, fixed](Cx& c) -> Task<void> {
        if (fixed) {
          (void)co_await c.yield();
          counter->update([](int v) { return v + 1; });  // read-modify-write in one step
          co_return;
        }
        const int seen = counter->load();
        (void)co_await c.yield();  // BUG: the other incrementer may write here
        counter->store(seen + 1);
      });
    }
    co_return;
  });
  (void)co_await std::move(work);
  lab::check(counter->load() == 2, "lost update: both increments must be counted");
}

TEST(BugsTest, LostUpdate) {
  check_bug(
      1, "lost update across an await", "check", [](Cx& cx) { return lost_update(cx, false); },
      [](Cx& cx) { return lost_update(cx, true); });
}

// ----- 2. Check-then-act across an await ---------------------------------------------------

Task<void> overdraw(Cx& cx, bool fixed) {
  auto balance = shared(100, "balance");
  auto work = Region::open(cx, "withdrawals", [balance, fixed](Cx& rx) -> Task<void> {
    for (int i = 0; i < 2; ++i) {
      (void)rx.spawn("withdraw70", [balance, fixed](Cx& c) -> Task<void> {
        if (fixed) {
          (void)co_await c.yield();
          if (balance->load() >= 70)
            balance->store(balance->load() - 70);  // check and act together
          co_return;
        }
        if (balance->load() < 70) co_return;
        (void)co_await c.yield();  // BUG: the check is stale after this
        balance->store(balance->load() - 70);
      });
    }
    co_return;
  });
  (void)co_await std::move(work);
  lab::check(balance->load() >= 0, "check-then-act: the balance went negative");
}

TEST(BugsTest, CheckThenAct) {
  check_bug(
      2, "check-then-act across an await", "check", [](Cx& cx) { return overdraw(cx, false); },
      [](Cx& cx) { return overdraw(cx, true); });
}

// ----- 3. Lock-order deadlock --------------------------------------------------------------

// A "lock" made of a tracked flag: acquire waits until it is free and takes it in one step.
Task<absl::Status> acquire(Cx& cx, Shared<bool> lock) {
  auto free = lock->wait_until(cx, [](bool held) { return !held; });
  absl::Status status = co_await std::move(free);
  if (status.ok()) lock->store(true);
  co_return status;
}

Task<void> lock_both(Cx& cx, Shared<bool> first, Shared<bool> second) {
  auto take_first = acquire(cx, first);
  absl::Status status = co_await std::move(take_first);
  if (!status.ok()) co_return;
  (void)co_await cx.yield();
  auto take_second = acquire(cx, second);
  status = co_await std::move(take_second);
  if (status.ok()) second->store(false);
  first->store(false);
}

Task<void> lock_order(Cx& cx, bool fixed) {
  auto a = shared(false, "lock_a");
  auto b = shared(false, "lock_b");
  auto left = cx.spawn("left", [a, b](Cx& c) { return lock_both(c, a, b); });
  // BUG: the right task takes the locks in the opposite order.
  auto right = cx.spawn(
      "right", [a, b, fixed](Cx& c) { return fixed ? lock_both(c, a, b) : lock_both(c, b, a); });
  (void)co_await left->join(cx);
  (void)co_await right->join(cx);
}

TEST(BugsTest, LockOrderDeadlock) {
  check_bug(
      3, "lock-order deadlock (two Tracked-flag locks)", "deadlock",
      [](Cx& cx) { return lock_order(cx, false); }, [](Cx& cx) { return lock_order(cx, true); });
}

// ----- 4. Missed notify --------------------------------------------------------------------

Task<void> missed_notify(Cx& cx, bool fixed) {
  auto bell = shared(0, "bell");
  auto waiter = cx.spawn("waiter", [bell, fixed](Cx& c) -> Task<void> {
    (void)co_await c.yield();
    if (fixed) {
      auto rung = bell->wait_until(c, [](int v) { return v != 0; });  // level: sees an earlier ring
      (void)co_await std::move(rung);
      co_return;
    }
    auto next_ring = bell->wait_changed(c);  // BUG: edge only; a ring before this is missed
    (void)co_await next_ring;
  });
  auto ringer = cx.spawn("ringer", [bell](Cx& c) -> Task<void> {
    bell->store(1);
    co_return;
  });
  (void)co_await ringer->join(cx);
  (void)co_await waiter->join(cx);
}

TEST(BugsTest, MissedNotify) {
  check_bug(
      4, "missed notify (set before the waiter waits)", "deadlock",
      [](Cx& cx) { return missed_notify(cx, false); },
      [](Cx& cx) { return missed_notify(cx, true); });
}

// ----- 5. A cancel that leaks an obligation ------------------------------------------------

class SlotSink final : public PermitSink<int> {
 public:
  void commit(int) override {}
  void release() noexcept override {}
};

Task<void> leaky_cancel(Cx& cx, bool fixed) {
  auto sink = std::make_shared<SlotSink>();
  auto holder = cx.spawn("holder", [sink, fixed](Cx& c) -> Task<void> {
    absl::StatusOr<ObligationId> id =
        c.region().ledger().record(ObligationKind::kPermit, "reply slot", SourceSite::current());
    if (!id.ok()) co_return;
    Permit<int> permit(sink.get(), &c.region().ledger(), *id);
    absl::Status status = co_await c.yield();  // a cancellation point while holding the permit
    if (!status.ok()) {
      if (fixed) std::move(permit).abort();
      co_return;  // BUG (unfixed): the permit is dropped: a leaked obligation
    }
    std::move(permit).send(1);
  });
  auto handle = std::make_shared<TaskHandle<void>>(std::move(holder).value());
  auto canceller = cx.spawn("canceller", [handle](Cx& c) -> Task<void> {
    (void)co_await c.yield();
    handle->cancel("shutting down");
  });
  (void)co_await canceller->join(cx);
  (void)co_await handle->join(cx);
}

TEST(BugsTest, CancelLeaksObligation) {
  check_bug(
      5, "cancel leaks an obligation (Permit held across a cancelled await)", "obligation_leak",
      [](Cx& cx) { return leaky_cancel(cx, false); },
      [](Cx& cx) { return leaky_cancel(cx, true); });
}

// ----- 6. A race loser not drained ---------------------------------------------------------

Task<void> hand_written_race(Cx& cx, bool fixed) {
  auto winner = shared(0, "winner");
  auto decided = shared(false, "decided");
  auto race = Region::open(cx, "race", [winner, decided, fixed](Cx& rx) -> Task<void> {
    std::vector<TaskHandle<void>> racers;
    for (int id = 1; id <= 2; ++id) {
      auto racer = rx.spawn("racer", [winner, decided, id](Cx& c) -> Task<void> {
        for (int step = 0; step < 2; ++step) {
          absl::Status status = co_await c.yield();
          if (!status.ok()) co_return;  // cancelled: stop
        }
        if (winner->load() == 0) {
          winner->store(id);
        } else {
          lab::check(!decided->load(),
                     "race loser kept running after the race was decided (not cancelled and "
                     "drained)");
        }
      });
      racers.push_back(std::move(racer).value());
    }
    auto first = winner->wait_until(rx, [](int v) { return v != 0; });
    (void)co_await std::move(first);
    decided->store(true);
    if (fixed) {
      // Cancel and drain the losers before returning the winner.
      for (TaskHandle<void>& racer : racers)
        racer.cancel("race lost", Budget::Infinite(), CancelKind::kRaceLost);
      for (TaskHandle<void>& racer : racers) (void)co_await racer.join(rx);
    }
    // BUG (unfixed): returns with the loser still running.
  });
  (void)co_await std::move(race);
}

TEST(BugsTest, RaceLoserNotDrained) {
  check_bug(
      6, "race loser not drained by hand-written code", "check",
      [](Cx& cx) { return hand_written_race(cx, false); },
      [](Cx& cx) { return hand_written_race(cx, true); });
}

// ----- 7. ABA on a tracked variable --------------------------------------------------------

// A two-node stack: head -> 1 -> 2. `pop_a` reads head and next, is preempted, then CASes
// head from the value it read. Meanwhile `other` pops 1, pops 2 (freeing it) and pushes 1
// back: head is 1 again and the stale CAS succeeds, installing the freed node 2. The fix tags
// head with a version so the CAS notices the change.
Task<void> aba(Cx& cx, bool fixed) {
  auto head = shared(1, "head");  // node | version << 8
  auto next1 = shared(2, "next[1]");
  auto next2 = shared(0, "next[2]");
  auto live2 = shared(true, "live[2]");
  auto next_of = [next1, next2](int node) { return node == 1 ? next1 : next2; };
  auto tag = [fixed](int node, int version) { return fixed ? node | (version << 8) : node; };
  auto popper = cx.spawn("pop_a", [=](Cx& c) -> Task<void> {
    while (true) {
      int observed = head->load();
      const int node = observed & 0xff;
      if (node == 0) co_return;
      const int next = next_of(node)->load();
      (void)co_await c.yield();  // preempted between the read and the CAS
      if (head->compare_exchange(observed, tag(next, (observed >> 8) + 1))) {
        lab::check(next == 0 || live2->load(), "ABA: pop installed a node freed meanwhile");
        co_return;
      }
    }
  });
  auto other = cx.spawn("other", [=](Cx& c) -> Task<void> {
    // pop 1
    int top = head->load();
    head->store(tag(next1->load(), (top >> 8) + 1));
    (void)co_await c.yield();
    // pop 2, free it
    top = head->load();
    if ((top & 0xff) == 2) {
      head->store(tag(next2->load(), (top >> 8) + 1));
      live2->store(false);
    }
    (void)co_await c.yield();
    // push 1 back
    top = head->load();
    next1->store(top & 0xff);
    head->store(tag(1, (top >> 8) + 1));
  });
  (void)co_await popper->join(cx);
  (void)co_await other->join(cx);
}

TEST(BugsTest, Aba) {
  check_bug(
      7, "ABA on a tracked variable (stack head CAS)", "check",
      [](Cx& cx) { return aba(cx, false); }, [](Cx& cx) { return aba(cx, true); });
}

// ----- 8. Order violation: use before init -------------------------------------------------

Task<void> use_before_init(Cx& cx, bool fixed) {
  auto config = shared(0, "config");
  auto init = cx.spawn("initializer", [config](Cx& c) -> Task<void> {
    (void)co_await c.yield();  // e.g. reading a file
    config->store(42);
  });
  auto user = cx.spawn("user", [config, fixed](Cx& c) -> Task<void> {
    if (fixed) {
      auto ready = config->wait_until(c, [](int v) { return v != 0; });
      (void)co_await std::move(ready);
    }
    lab::check(config->load() == 42, "order violation: config used before it was initialized");
    co_return;
  });
  (void)co_await init->join(cx);
  (void)co_await user->join(cx);
}

TEST(BugsTest, OrderViolation) {
  check_bug(
      8, "order violation (use before init)", "check",
      [](Cx& cx) { return use_before_init(cx, false); },
      [](Cx& cx) { return use_before_init(cx, true); });
}

// ----- 9. Atomicity violation on two tracked variables ------------------------------------

Task<void> transfer(Cx& cx, bool fixed) {
  auto a = shared(50, "account_a");
  auto b = shared(50, "account_b");
  auto mover = cx.spawn("transfer", [a, b, fixed](Cx& c) -> Task<void> {
    (void)co_await c.yield();
    a->store(a->load() - 10);
    if (!fixed) (void)co_await c.yield();  // BUG: the invariant a + b == 100 is broken across this
    b->store(b->load() + 10);
  });
  auto auditor = cx.spawn("auditor", [a, b](Cx& c) -> Task<void> {
    for (int i = 0; i < 2; ++i) {
      lab::check(a->load() + b->load() == 100, "atomicity violation: saw a half-done transfer");
      (void)co_await c.yield();
    }
  });
  (void)co_await mover->join(cx);
  (void)co_await auditor->join(cx);
}

TEST(BugsTest, AtomicityViolation) {
  check_bug(
      9, "atomicity violation on two Tracked vars", "check",
      [](Cx& cx) { return transfer(cx, false); }, [](Cx& cx) { return transfer(cx, true); });
}

// ----- 10. Double join ---------------------------------------------------------------------

Task<void> double_join(Cx& cx, bool fixed) {
  auto result = shared(0, "result");
  auto spawned = cx.spawn("worker", [](Cx& c) -> Task<int> {
    (void)co_await c.yield();
    co_return 7;
  });
  auto worker = std::make_shared<TaskHandle<int>>(std::move(spawned).value());
  auto first = cx.spawn("consumer_1", [worker, result](Cx& c) -> Task<void> {
    Outcome<int> outcome = co_await worker->join(c);
    lab::check(outcome.ok(), "double join: " + outcome.to_string());
    if (outcome.ok()) result->store(outcome.value());
  });
  auto second = cx.spawn("consumer_2", [worker, result, fixed](Cx& c) -> Task<void> {
    if (fixed) {
      // Only one task joins; the other waits for the shared result.
      auto ready = result->wait_until(c, [](int v) { return v != 0; });
      (void)co_await std::move(ready);
      co_return;
    }
    Outcome<int> outcome = co_await worker->join(c);  // BUG: the outcome can be taken once
    lab::check(outcome.ok(), "double join: " + outcome.to_string());
  });
  (void)co_await first->join(cx);
  (void)co_await second->join(cx);
}

TEST(BugsTest, DoubleJoin) {
  check_bug(
      10, "double join", "check", [](Cx& cx) { return double_join(cx, false); },
      [](Cx& cx) { return double_join(cx, true); });
}

// ----- 11. A task outliving the scope of data it references --------------------------------

Task<void> dangling_reference(Cx& cx, bool fixed) {
  auto scope = Region::open(cx, "scope", [fixed](Cx& rx) -> Task<void> {
    Tracked<int> local(0, "scope_local");  // lives in the body's frame
    auto late = rx.spawn("late", [ref = local.ref()](Cx& c) -> Task<void> {
      ref.store(1);  // a reference into the body's frame
      co_return;
    });
    (void)co_await rx.yield();
    if (fixed) (void)co_await late->join(rx);  // the data outlives its user
    // BUG (unfixed): the body returns, `local` is destroyed, `late` may still run.
  });
  (void)co_await std::move(scope);
}

TEST(BugsTest, TaskOutlivesScope) {
  check_bug(
      11, "task outlives a scope (dangling reference)", "use_after_scope",
      [](Cx& cx) { return dangling_reference(cx, false); },
      [](Cx& cx) { return dangling_reference(cx, true); });
}

// ----- 12. Deadlock on region close --------------------------------------------------------

Task<void> close_deadlock(Cx& cx, bool fixed) {
  auto started = shared(false, "body_done");
  auto scope = Region::open(cx, "scope", [started, fixed](Cx& rx) -> Task<void> {
    (void)rx.spawn("child", [started](Cx& c) -> Task<void> {
      auto go = started->wait_until(c, [](bool v) { return v; });  // waits for the parent
      (void)co_await std::move(go);
    });
    if (fixed) started->store(true);
    co_return;
  });
  (void)co_await std::move(scope);  // waits for the child...
  started->store(true);             // BUG: ...which waits for this
}

TEST(BugsTest, DeadlockOnRegionClose) {
  check_bug(
      12, "deadlock on region close (child waits for its parent's body)", "deadlock",
      [](Cx& cx) { return close_deadlock(cx, false); },
      [](Cx& cx) { return close_deadlock(cx, true); });
}

// ----- 13. A hand-written awaiter that loses its wake-up -----------------------------------

// A one-shot event built on the wait protocol. set() wakes a parked waiter or records the
// signal; a waiter that finds a recorded signal must not suspend. The bug: it returns true from
// await_suspend on that path ("true" means *suspend*), so it sleeps with nothing to wake it.
class HandRolledEvent {
 public:
  explicit HandRolledEvent(bool fixed) : fixed_(fixed) {}
  void set() {
    signals_.store(signals_.load() + 1);
    if (waiter_ != nullptr) {
      asupersync::internal::WakeToken token(*waiter_);
      waiter_ = nullptr;
      std::move(token).wake(Lane::kReady);
    }
  }

  class Awaiter final : public asupersync::internal::WaitNode {
   public:
    Awaiter(Cx& cx, HandRolledEvent& event) : cx_(&cx), event_(&event) {
      what = "hand-rolled event";
      scope = &cx.region();
    }
    ~Awaiter() {
      if (event_->waiter_ == this) event_->waiter_ = nullptr;
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle) {
      if (event_->signals_.load() > event_->consumed_) {
        ++event_->consumed_;
        return !event_->fixed_;  // BUG (unfixed): suspends although the signal is here
      }
      asupersync::internal::begin_wait(cx_->task_record(), *this);
      event_->waiter_ = this;
      if (asupersync::internal::park(*this, handle)) return true;
      event_->waiter_ = nullptr;
      return false;
    }
    void await_resume() { ++event_->consumed_; }
    void interrupt() override {
      if (event_->waiter_ == this) event_->waiter_ = nullptr;
    }

   private:
    Cx* cx_;
    HandRolledEvent* event_;
  };
  Awaiter wait(Cx& cx) { return Awaiter(cx, *this); }

 private:
  bool fixed_;
  Tracked<int> signals_{0, "event.signals"};
  int consumed_ = 0;
  Awaiter* waiter_ = nullptr;
};

Task<void> lost_wakeup(Cx& cx, bool fixed) {
  auto event = std::make_shared<HandRolledEvent>(fixed);
  auto waiter = cx.spawn("waiter", [event](Cx& c) -> Task<void> {
    (void)co_await c.yield();
    co_await event->wait(c);
  });
  auto setter = cx.spawn("setter", [event](Cx& c) -> Task<void> {
    event->set();
    co_return;
  });
  (void)co_await setter->join(cx);
  (void)co_await waiter->join(cx);
}

TEST(BugsTest, LostWakeupInHandWrittenAwaiter) {
  check_bug(
      13, "lost wake-up in a hand-written awaiter", "lost_wakeup",
      [](Cx& cx) { return lost_wakeup(cx, false); }, [](Cx& cx) { return lost_wakeup(cx, true); });
}

}  // namespace
}  // namespace asupersync
