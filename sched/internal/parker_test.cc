// Copyright The Asupersync Authors.

#include "sched/internal/parker.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sched/internal/work_stealing_deque.h"

namespace asupersync::sched {
namespace {

using Clock = std::chrono::steady_clock;

TEST(ParkerTest, UnparkBeforeParkMakesParkReturnAtOnce) {
  Parker parker;
  parker.unpark();
  parker.park();  // Would hang if the token were lost.
  parker.unpark();
  EXPECT_TRUE(parker.park_for(Duration::Seconds(30)));
}

TEST(ParkerTest, TokensDoNotAccumulate) {
  Parker parker;
  parker.unpark();
  parker.unpark();
  EXPECT_TRUE(parker.park_for(Duration::Zero()));
  EXPECT_FALSE(parker.park_for(Duration::Zero()));
  EXPECT_FALSE(parker.park_for(Duration::Milliseconds(-3)));
}

TEST(ParkerTest, ParkForTimesOutAfterTheTimeout) {
  Parker parker;
  const auto start = Clock::now();
  EXPECT_FALSE(parker.park_for(Duration::Milliseconds(20)));
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(20));
  // A timeout leaves no token behind.
  EXPECT_FALSE(parker.park_for(Duration::Zero()));
}

TEST(ParkerTest, UnparkWakesAParkedThread) {
  Parker parker;
  std::atomic<bool> woken{false};
  std::thread sleeper([&] {
    EXPECT_TRUE(parker.park_for(Duration::Seconds(30)));
    woken = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));  // Usually parked by now.
  const auto start = Clock::now();
  parker.unpark();
  sleeper.join();
  EXPECT_TRUE(woken);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

// No lost wake-up: two threads hand a counter back and forth through two parkers, each
// sleeping until the other moves it. A lost wake-up hangs one side, which the 10 s timeout turns
// into a failure.
TEST(ParkerStressTest, PingPongLosesNoWakeUp) {
  constexpr int kRounds = 20000;
  Parker ping_parker, pong_parker;
  std::atomic<int> ball{0};  // Even: ping's turn; odd: pong's turn.
  std::atomic<int> lost{0};
  auto player = [&](Parker& mine, Parker& other, int parity) {
    for (int round = 0; round < kRounds; ++round) {
      while (ball.load(std::memory_order_acquire) % 2 != parity) {
        if (!mine.park_for(Duration::Seconds(10)) &&
            ball.load(std::memory_order_acquire) % 2 != parity) {
          lost.fetch_add(1);
          return;
        }
      }
      ball.fetch_add(1, std::memory_order_release);
      other.unpark();
    }
  };
  std::thread ping(player, std::ref(ping_parker), std::ref(pong_parker), 0);
  std::thread pong(player, std::ref(pong_parker), std::ref(ping_parker), 1);
  ping.join();
  pong.join();
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(ball.load(), 2 * kRounds);
}

// Many unparkers racing with a parker that consumes as it goes: every unpark issued after the
// last observed counter value is eventually seen.
TEST(ParkerStressTest, ConcurrentUnparkersNeverStrandTheParker) {
  constexpr int kPerProducer = 20000;
  constexpr int kProducers = 3;
  Parker parker;
  std::atomic<int> produced{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < kPerProducer; ++i) {
        produced.fetch_add(1, std::memory_order_release);
        parker.unpark();
      }
    });
  }
  int seen = 0;
  int lost = 0;
  while (seen < kProducers * kPerProducer) {
    const int now_seen = produced.load(std::memory_order_acquire);
    if (now_seen > seen) {
      seen = now_seen;
      continue;
    }
    if (!parker.park_for(Duration::Seconds(10)) && produced.load() == seen) {
      ++lost;
      break;
    }
  }
  for (std::thread& producer : producers) producer.join();
  EXPECT_EQ(lost, 0);
}

TEST(IdleSetTest, NotifiesOnlyWhenSomeoneIsParkedAndNobodySearches) {
  IdleSet idle(4);
  EXPECT_EQ(idle.num_unparked(), 4u);
  EXPECT_EQ(idle.num_searching(), 0u);
  EXPECT_EQ(idle.notify_one(), std::nullopt);  // Everybody is running.

  EXPECT_FALSE(idle.transition_to_parked(2, /*searching=*/false));
  EXPECT_TRUE(idle.is_parked(2));
  EXPECT_EQ(idle.num_unparked(), 3u);
  EXPECT_EQ(idle.notify_one(), 2u);
  EXPECT_FALSE(idle.is_parked(2));
  EXPECT_EQ(idle.num_unparked(), 4u);
  EXPECT_EQ(idle.num_searching(), 1u);                     // The woken worker searches.
  EXPECT_TRUE(idle.parker(2).park_for(Duration::Zero()));  // Its token is set.

  EXPECT_FALSE(idle.transition_to_parked(3, false));
  // A searcher exists: it will find the work, so no second wake-up.
  EXPECT_EQ(idle.notify_one(), std::nullopt);
  EXPECT_TRUE(idle.transition_from_searching());  // Worker 2 was the last searcher.
  EXPECT_EQ(idle.notify_one(), 3u);
  EXPECT_TRUE(idle.transition_from_searching());
}

TEST(IdleSetTest, AtMostHalfOfTheWorkersSearch) {
  IdleSet idle(4);
  EXPECT_TRUE(idle.transition_to_searching());
  EXPECT_TRUE(idle.transition_to_searching());
  EXPECT_FALSE(idle.transition_to_searching());
  EXPECT_EQ(idle.num_searching(), 2u);
  EXPECT_FALSE(idle.transition_from_searching());
  // The last searcher to park learns it must re-check the queues.
  EXPECT_TRUE(idle.transition_to_parked(1, /*searching=*/true));
  EXPECT_EQ(idle.num_searching(), 0u);
  EXPECT_EQ(idle.num_unparked(), 3u);
}

TEST(IdleSetTest, RemoveSleeperAndNotifyAll) {
  IdleSet idle(3);
  idle.transition_to_parked(0, false);
  idle.transition_to_parked(1, false);
  // Worker 0 woke from its own timer: it takes itself out.
  EXPECT_TRUE(idle.remove_sleeper(0));
  EXPECT_FALSE(idle.remove_sleeper(0));
  EXPECT_EQ(idle.num_unparked(), 2u);
  idle.notify_all();
  EXPECT_FALSE(idle.is_parked(1));
  EXPECT_EQ(idle.num_unparked(), 3u);
  EXPECT_EQ(idle.num_searching(), 1u);  // Worker 1 was woken through the set.
  EXPECT_TRUE(idle.parker(1).park_for(Duration::Zero()));
  EXPECT_TRUE(idle.transition_from_searching());
  EXPECT_FALSE(idle.parker(0).park_for(Duration::Zero()));
}

TEST(IdleSetDeathTest, ParkingTwiceAborts) {
  IdleSet idle(2);
  idle.transition_to_parked(0, false);
  EXPECT_DEATH(idle.transition_to_parked(0, false),
               "invariant violated: IdleSet::transition_to_parked is called by a worker that is "
               "not parked");
}

// A miniature runtime: producers push items into an injection queue and call notify_one();
// workers follow the protocol of parker.h (local deque, stealing while searching, parking with
// park(), no timeout). Every item must be processed; a lost wake-up strands items with every
// worker asleep, which the deadline below turns into a failure instead of a hang. Once the work
// is done the workers must stay asleep (no busy loop when idle).
TEST(IdleSetStressTest, MiniSchedulerLosesNoWakeUpAndSleepsWhenIdle) {
  constexpr size_t kWorkers = 4;
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 40000;
  constexpr int kItems = kProducers * kPerProducer;
  struct Item {
    std::atomic<int> processed{0};
  };
  std::vector<Item> items(kItems);
  InjectionQueue<Item> injection;
  std::vector<std::unique_ptr<WorkStealingDeque<Item>>> locals;
  for (size_t i = 0; i < kWorkers; ++i) {
    locals.push_back(std::make_unique<WorkStealingDeque<Item>>(64));
  }
  IdleSet idle(kWorkers);
  std::atomic<int> processed{0};
  std::atomic<bool> stop{false};
  std::atomic<int> wake_ups{0};

  auto any_work = [&] {
    if (!injection.empty()) return true;
    for (auto& local : locals) {
      if (!local->empty()) return true;
    }
    return false;
  };

  auto worker = [&](size_t me) {
    WorkStealingDeque<Item>& local = *locals[me];
    bool searching = false;
    while (!stop.load()) {
      Item* item = local.pop();
      if (item == nullptr) {
        if (!searching) searching = idle.transition_to_searching();
        if (searching) {
          for (size_t i = 1; i < kWorkers && item == nullptr; ++i) {
            WorkStealingDeque<Item>& victim = *locals[(me + i) % kWorkers];
            if (victim.steal_batch(local, 16) > 0) item = local.pop();
          }
        }
        if (item == nullptr && injection.pop_batch(local, 8) > 0) {
          item = local.pop();
          if (!local.empty()) idle.notify_one();  // Others may steal the rest.
        }
        if (item != nullptr) {
          if (searching && idle.transition_from_searching()) idle.notify_one();
          searching = false;
        }
      }
      if (item != nullptr) {
        item->processed.fetch_add(1);
        processed.fetch_add(1);
        continue;
      }
      if (idle.transition_to_parked(me, searching)) {
        if (any_work()) idle.notify_one();
      }
      searching = false;
      if (stop.load()) break;
      idle.parker(me).park();
      wake_ups.fetch_add(1);
      searching = !idle.remove_sleeper(me);
    }
    if (searching) idle.transition_from_searching();
  };

  std::vector<std::thread> threads;
  for (size_t i = 0; i < kWorkers; ++i) threads.emplace_back(worker, i);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 random(p);
      for (int i = 0; i < kPerProducer; ++i) {
        injection.push(&items[p * kPerProducer + i]);
        idle.notify_one();
        // Bursts and pauses, so that workers keep going to sleep and waking up.
        if (random() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
  }
  for (std::thread& producer : producers) producer.join();

  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (processed.load() < kItems && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(processed.load(), kItems) << "work stranded: a wake-up was lost";
  EXPECT_GT(wake_ups.load(), 100) << "the workers hardly ever slept: the test exercises nothing";
  std::printf("%d park/wake cycles\n", wake_ups.load());

  // Idle: every worker parks, and then stays parked. (Once all are counted parked no wake-up
  // token is outstanding: a notified worker consumes its token before it parks again.)
  const auto idle_deadline = Clock::now() + std::chrono::seconds(10);
  while (idle.num_unparked() != 0 && Clock::now() < idle_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(idle.num_unparked(), 0u) << "workers do not go to sleep when idle";
  const int wake_ups_when_idle = wake_ups.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(wake_ups.load(), wake_ups_when_idle) << "idle workers keep waking up";

  stop.store(true);
  idle.notify_all();
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(items[i].processed.load(), 1) << i;
  EXPECT_EQ(idle.num_searching(), 0u);
}

}  // namespace
}  // namespace asupersync::sched
