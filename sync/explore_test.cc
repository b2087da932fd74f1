// Systematic exploration of the sync primitives with the lab (issue 6, acceptance 1).
//
// Every operation of a primitive takes its ObservedMutex, which reports the access to the lab
// (core/internal/object_observer.h), so DPOR treats two operations on one channel or lock as
// dependent and explores both orders. The first group of tests pins that: without the reports,
// DPOR would run one order and miss the other outcome. The second group explores the
// cancellation contract (SPEC 4.2, 8): every task of a small producer/consumer scenario is
// cancelled at each of its await points in turn (systematic_cancel), and for each cancel point
// DPOR runs every interleaving; after each run the scenario checks that no message or unit was
// lost or duplicated, and the lab's oracles check that no permit, waiter or task leaked.
//
// GCC 12 workaround (core/README.md): tasks are named before they are awaited; no lambda
// temporary inside a co_await expression; no co_await inside a condition.

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/region.h"
#include "gtest/gtest.h"
#include "lab/explore.h"
#include "lab/testing.h"
#include "obligations/permit.h"
#include "sync/mpsc.h"
#include "sync/mutex.h"
#include "sync/notify.h"
#include "sync/oneshot.h"
#include "sync/semaphore.h"

namespace asupersync {
namespace {

lab::ExploreOptions Dpor(uint64_t runs = 20'000) {
  return lab::ExploreOptions{.strategy = lab::Strategy::kDpor, .runs = runs};
}

lab::ExploreOptions DporWithSystematicCancel(std::string target) {
  lab::ExploreOptions options = Dpor();
  options.systematic_cancel = true;
  options.faults.target = std::move(target);
  return options;
}

// Joins every handle: a region body that awaits its tasks keeps the region Open while they run
// (reserving an obligation needs an Open region, SPEC 3.2).
Task<void> JoinAll(Cx& cx, std::vector<absl::StatusOr<TaskHandle<void>>> handles) {
  for (absl::StatusOr<TaskHandle<void>>& handle : handles) {
    lab::check(handle.ok(), "spawned");
    if (!handle.ok()) continue;
    auto joined = handle->join(cx);
    (void)co_await joined;
  }
}

// ----- DPOR sees operations on one primitive as dependent ------------------------------------

// SPEC 11.2: a try_send and a try_recv on one empty channel do not commute: the receiver finds
// the value or nothing. DPOR runs exactly these two classes.
TEST(SyncDporTest, TrySendAndTryRecvOnOneChannelAreTwoClasses) {
  std::set<std::string> outcomes;
  lab::ExploreResult result = lab::Explore(Dpor(), [&outcomes](Cx& cx) -> Task<void> {
    auto made = mpsc::channel<int>(1);
    lab::check(made.ok(), "channel created");
    auto channel =
        std::make_shared<std::pair<mpsc::Sender<int>, mpsc::Receiver<int>>>(std::move(*made));
    auto seen = std::make_shared<std::string>();
    auto work = Region::open(cx, "work", [channel, seen](Cx& rx) -> Task<void> {
      (void)rx.spawn("sender", [channel](Cx&) -> Task<void> {
        lab::check(channel->first.try_send(7).ok(), "capacity 1: the send fits");
        co_return;
      });
      (void)rx.spawn("receiver", [channel, seen](Cx&) -> Task<void> {
        absl::StatusOr<int> got = channel->second.try_recv();
        *seen = got.ok() ? "got " + std::to_string(*got) : std::string("empty");
        co_return;
      });
      co_return;
    });
    co_await std::move(work);
    outcomes.insert(*seen);
  });
  EXPECT_LAB_OK(result);
  EXPECT_TRUE(result.exhausted);
  EXPECT_EQ(result.complete_runs(), 2u) << result.report();
  EXPECT_EQ(outcomes, (std::set<std::string>{"empty", "got 7"}));
}

// Two try_locks of one Mutex: who gets it depends on the order; both orders are explored, and
// operations on two different mutexes commute (one class).
TEST(SyncDporTest, TryLocksOfOneMutexConflictAndOfTwoMutexesCommute) {
  for (const bool same_mutex : {true, false}) {
    std::set<std::string> winners;
    lab::ExploreResult result = lab::Explore(Dpor(), [&winners, same_mutex](Cx& cx) -> Task<void> {
      auto mutexes = std::make_shared<std::pair<Mutex, Mutex>>();
      auto winner = std::make_shared<std::string>();
      auto work = Region::open(cx, "work", [mutexes, winner, same_mutex](Cx& rx) -> Task<void> {
        for (const char* name : {"a", "b"}) {
          Mutex* mutex = (same_mutex || name[0] == 'a') ? &mutexes->first : &mutexes->second;
          (void)rx.spawn(name, [mutex, winner, name](Cx& tx) -> Task<void> {
            absl::StatusOr<MutexGuard> guard = mutex->try_lock();
            if (guard.ok()) *winner += name;
            (void)co_await tx.yield();  // hold it across a step, then unlock
          });
        }
        co_return;
      });
      co_await std::move(work);
      winners.insert(*winner);
    });
    EXPECT_LAB_OK(result);
    EXPECT_TRUE(result.exhausted);
    if (same_mutex) {
      EXPECT_EQ(winners, (std::set<std::string>{"a", "b", "ab", "ba"})) << result.report();
    } else {
      EXPECT_EQ(result.complete_runs(), 1u) << result.report();
      EXPECT_EQ(winners.size(), 1u);
    }
  }
}

// A lost update guarded by a Mutex: with the lock held across the await, exhaustive DPOR finds
// no lost update; without the lock (the bug), DPOR finds it.
TEST(SyncDporTest, MutexProtectsAReadModifyWriteAcrossAnAwait) {
  for (const bool locked : {true, false}) {
    lab::ExploreResult result = lab::Explore(Dpor(), [locked](Cx& cx) -> Task<void> {
      auto mutex = std::make_shared<Mutex>();
      auto counter = std::make_shared<lab::Tracked<int>>(0, "counter");
      auto work = Region::open(cx, "work", [mutex, counter, locked](Cx& rx) -> Task<void> {
        for (int i = 0; i < 2; ++i) {
          (void)rx.spawn("incrementer", [mutex, counter, locked](Cx& tx) -> Task<void> {
            absl::StatusOr<MutexGuard> guard = absl::UnavailableError("not locked");
            if (locked) {
              auto lock = mutex->lock(tx);
              guard = co_await lock;
              lab::check(guard.ok(), "lock acquired");
            }
            const int seen = counter->load();
            (void)co_await tx.yield();
            counter->store(seen + 1);
          });
        }
        co_return;
      });
      co_await std::move(work);
      lab::check(counter->load() == 2, "both increments land");
    });
    if (locked) {
      EXPECT_LAB_OK(result);
      EXPECT_TRUE(result.exhausted) << result.report();
    } else {
      EXPECT_LAB_FINDS(result, "check");
    }
  }
}

// ----- The cancellation contract, every await point, every interleaving ------------------------

struct Traffic {
  std::vector<int> sent;      // committed sends
  std::vector<int> received;  // values received
  int given_back = 0;
  int aborted = 0;
};

// SPEC 8.1, 4.2, 5.3: a producer (two-phase send, then one-call send) and a consumer over a
// capacity-1 channel; the producer or the consumer is cancelled at each of its awaits in turn.
// After the run, what was received plus what is still queued is exactly what was committed,
// and a cancelled one-call send gave its value back.
void ExploreMpscCancellation(const std::string& target) {
  lab::ExploreResult result =
      lab::Explore(DporWithSystematicCancel(target), [](Cx& cx) -> Task<void> {
        auto made = mpsc::channel<int>(1);
        lab::check(made.ok(), "channel created");
        // The producer owns the only sender: when it ends, the channel ends and the consumer's
        // recv returns EndOfStream instead of waiting forever.
        auto sender = std::make_shared<mpsc::Sender<int>>(std::move(made->first));
        auto receiver = std::make_shared<mpsc::Receiver<int>>(std::move(made->second));
        auto traffic = std::make_shared<Traffic>();
        auto work = Region::open(cx, "work", [sender, receiver, traffic](Cx& rx) -> Task<void> {
          auto producer = rx.spawn("producer", [sender, traffic](Cx& tx) -> Task<void> {
            mpsc::Sender<int> tx_end = std::move(*sender);
            auto reserve = tx_end.reserve(tx);
            absl::StatusOr<Permit<int>> permit = co_await reserve;
            if (!permit.ok()) co_return;
            absl::Status between = co_await tx.yield();
            if (!between.ok()) {
              std::move(*permit).abort();
              ++traffic->aborted;
              co_return;
            }
            std::move(*permit).send(1);
            traffic->sent.push_back(1);
            auto send = tx_end.send(tx, 2);
            SendResult<int> sent = co_await send;
            if (sent.ok()) {
              traffic->sent.push_back(2);
            } else {
              lab::check(sent.value == 2, "a failed send gives its value back");
              ++traffic->given_back;
            }
          });
          auto consumer = rx.spawn("consumer", [receiver, traffic](Cx& tx) -> Task<void> {
            for (int i = 0; i < 2; ++i) {
              auto recv = receiver->recv(tx);
              absl::StatusOr<int> got = co_await recv;
              if (!got.ok()) break;  // cancelled (consumed nothing) or the end
              traffic->received.push_back(*got);
            }
            // No more receiving: a send still waiting fails and gives its value back; what is
            // queued stays for the drain below.
            receiver->close();
          });
          lab::check(producer.ok() && consumer.ok(), "spawned");
          // Keep the region Open while they run (reserving needs an Open region, SPEC 3.2).
          auto produced = producer->join(rx);
          (void)co_await produced;
          auto consumed = consumer->join(rx);
          (void)co_await consumed;
        });
        co_await std::move(work);
        for (absl::StatusOr<int> left = receiver->try_recv(); left.ok();
             left = receiver->try_recv()) {
          traffic->received.push_back(*left);
        }
        std::vector<int> received = traffic->received;
        std::sort(received.begin(), received.end());
        lab::check(received == traffic->sent, "no message lost or duplicated");
      });
  EXPECT_LAB_OK(result);
  EXPECT_TRUE(result.exhausted) << result.report();
  EXPECT_GE(result.cancel_points, 2u) << result.report();
}

TEST(SyncCancelExploreTest, MpscProducerCancelledAtEveryAwait) {
  ExploreMpscCancellation("producer");
}

TEST(SyncCancelExploreTest, MpscConsumerCancelledAtEveryAwait) {
  ExploreMpscCancellation("consumer");
}

// SPEC 8.3, 5.3: two tasks take the single unit of a Semaphore, hold it across an await and
// release it; either is cancelled at each await. No unit is lost or duplicated: at the end
// the unit is back and no waiter is left; never were both inside.
TEST(SyncCancelExploreTest, SemaphoreUnitsSurviveCancelAtEveryAwait) {
  for (const char* target : {"first", "second"}) {
    uint64_t acquired = 0;
    lab::ExploreResult result =
        lab::Explore(DporWithSystematicCancel(target), [&acquired](Cx& cx) -> Task<void> {
          auto semaphore = std::make_shared<Semaphore>(1);
          auto inside = std::make_shared<int>(0);
          auto work =
              Region::open(cx, "work", [semaphore, inside, &acquired](Cx& rx) -> Task<void> {
                std::vector<absl::StatusOr<TaskHandle<void>>> handles;
                for (const char* name : {"first", "second"}) {
                  handles.push_back(
                      rx.spawn(name, [semaphore, inside, &acquired](Cx& tx) -> Task<void> {
                        auto acquire = semaphore->acquire(tx);
                        absl::StatusOr<SemaphorePermit> permit = co_await acquire;
                        if (!permit.ok()) co_return;
                        ++acquired;
                        ++*inside;
                        lab::check(*inside == 1, "one unit: one holder at a time");
                        (void)co_await tx.yield();  // cancelled here or not, the permit is released
                        --*inside;
                        std::move(*permit).release();
                      }));
                }
                auto joined = JoinAll(rx, std::move(handles));
                co_await std::move(joined);
              });
          co_await std::move(work);
          lab::check(semaphore->available_permits() == 1, "the unit is back");
          lab::check(semaphore->waiter_count() == 0, "no waiter left");
        });
    EXPECT_LAB_OK(result) << target;
    EXPECT_TRUE(result.exhausted) << result.report();
    EXPECT_GT(acquired, result.complete_runs()) << "most runs must take the unit at least once";
  }
}

// SPEC 8.3: two tasks increment under a Mutex with an await inside the critical section; either
// is cancelled at each await. The lock is never held twice, is free at the end with no waiter,
// and a cancelled lock() never ran its critical section.
TEST(SyncCancelExploreTest, MutexStaysConsistentUnderCancelAtEveryAwait) {
  for (const char* target : {"first", "second"}) {
    lab::ExploreResult result =
        lab::Explore(DporWithSystematicCancel(target), [](Cx& cx) -> Task<void> {
          auto mutex = std::make_shared<Mutex>();
          auto entered = std::make_shared<int>(0);
          auto completed = std::make_shared<int>(0);
          auto work = Region::open(cx, "work", [mutex, entered, completed](Cx& rx) -> Task<void> {
            for (const char* name : {"first", "second"}) {
              (void)rx.spawn(name, [mutex, entered, completed](Cx& tx) -> Task<void> {
                auto lock = mutex->lock(tx);
                absl::StatusOr<MutexGuard> guard = co_await lock;
                if (!guard.ok()) co_return;
                ++*entered;
                absl::Status inside = co_await tx.yield();
                if (inside.ok()) ++*completed;
                guard->unlock();
              });
            }
            co_return;
          });
          co_await std::move(work);
          lab::check(!mutex->is_locked(), "the mutex is free at the end");
          lab::check(mutex->waiter_count() == 0, "no waiter left");
          lab::check(*completed <= *entered && *entered <= 2, "critical sections are counted");
        });
    EXPECT_LAB_OK(result) << target;
    EXPECT_TRUE(result.exhausted) << result.report();
  }
}

// SPEC 8.3: a notify_one is never lost, even when its waiter is cancelled: the waiter is
// cancelled at each await, and after every run exactly one of these holds — the waiter was
// notified, or the notification is stored as the permit (it was passed on, or nobody waited).
TEST(SyncCancelExploreTest, NotifyIsNeverLostWhenItsWaiterIsCancelled) {
  lab::ExploreResult result =
      lab::Explore(DporWithSystematicCancel("waiter"), [](Cx& cx) -> Task<void> {
        auto notify = std::make_shared<Notify>();
        auto woken = std::make_shared<bool>(false);
        auto work = Region::open(cx, "work", [notify, woken](Cx& rx) -> Task<void> {
          (void)rx.spawn("waiter", [notify, woken](Cx& tx) -> Task<void> {
            (void)co_await tx.yield();  // an await point before the wait, too
            auto wait = notify->notified(tx);
            absl::Status status = co_await wait;
            *woken = status.ok();
          });
          (void)rx.spawn("notifier", [notify](Cx&) -> Task<void> {
            notify->notify_one();
            co_return;
          });
          co_return;
        });
        co_await std::move(work);
        lab::check(*woken != notify->has_permit(),
                   "the notification reached the waiter or is stored, exactly once");
        lab::check(notify->waiter_count() == 0, "no waiter left");
      });
  EXPECT_LAB_OK(result);
  EXPECT_TRUE(result.exhausted) << result.report();
  EXPECT_GE(result.cancel_points, 2u) << result.report();
}

// SPEC 8.2, 5.1: a oneshot sender reserves, awaits, then sends or aborts when cancelled; the
// receiver gets the value, or sees the channel closed — never both, never a hang.
TEST(SyncCancelExploreTest, OneshotDeliversOrClosesUnderCancelAtEveryAwait) {
  for (const char* target : {"sender", "receiver"}) {
    uint64_t delivered = 0;
    lab::ExploreResult result =
        lab::Explore(DporWithSystematicCancel(target), [&delivered](Cx& cx) -> Task<void> {
          auto made = std::make_shared<std::pair<oneshot::Sender<int>, oneshot::Receiver<int>>>(
              oneshot::channel<int>());
          auto sent = std::make_shared<bool>(false);
          auto received = std::make_shared<int>(0);
          auto work = Region::open(cx, "work", [made, sent, received](Cx& rx) -> Task<void> {
            std::vector<absl::StatusOr<TaskHandle<void>>> handles;
            handles.push_back(rx.spawn("sender", [made, sent](Cx& tx) -> Task<void> {
              oneshot::Sender<int> sender = std::move(made->first);
              absl::StatusOr<Permit<int>> permit = sender.reserve(tx);
              if (!permit.ok()) co_return;
              absl::Status between = co_await tx.yield();
              if (!between.ok()) {
                std::move(*permit).abort();
                co_return;
              }
              std::move(*permit).send(5);
              *sent = true;
            }));
            handles.push_back(rx.spawn("receiver", [made, received](Cx& tx) -> Task<void> {
              auto recv = made->second.recv(tx);
              absl::StatusOr<int> got = co_await recv;
              if (got.ok()) *received = *got;
            }));
            auto joined = JoinAll(rx, std::move(handles));
            co_await std::move(joined);
          });
          co_await std::move(work);
          if (*received == 0) {
            absl::StatusOr<int> left = made->second.try_recv();
            if (left.ok()) *received = *left;
          }
          lab::check(*sent == (*received == 5), "received exactly what was sent");
          if (*sent) ++delivered;
        });
    EXPECT_LAB_OK(result) << target;
    EXPECT_GT(delivered, 0u) << "some runs must deliver";
    EXPECT_TRUE(result.exhausted) << result.report();
  }
}

}  // namespace
}  // namespace asupersync
