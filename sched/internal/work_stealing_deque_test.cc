// Copyright The Asupersync Authors.

#include "sched/internal/work_stealing_deque.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

using ::testing::ElementsAre;

struct Item {
  int id = 0;
  // Written by the producer before the push and checked by whoever takes the item: a missing
  // happens-before edge shows up as a wrong value or as a ThreadSanitizer report.
  int64_t payload = 0;
};

std::vector<Item> make_items(int count) {
  std::vector<Item> items(count);
  for (int i = 0; i < count; ++i) items[i].id = i;
  return items;
}

TEST(WorkStealingDequeTest, OwnerPopsLifoThievesStealFifo) {
  std::vector<Item> items = make_items(4);
  WorkStealingDeque<Item> deque(8);
  for (Item& item : items) ASSERT_TRUE(deque.push(&item));
  EXPECT_EQ(deque.size(), 4u);
  EXPECT_EQ(deque.steal(), &items[0]);
  EXPECT_EQ(deque.pop(), &items[3]);
  EXPECT_EQ(deque.steal(), &items[1]);
  EXPECT_EQ(deque.pop(), &items[2]);
  EXPECT_EQ(deque.pop(), nullptr);
  EXPECT_EQ(deque.steal(), nullptr);
  EXPECT_EQ(deque.try_steal().status, StealStatus::kEmpty);
  EXPECT_TRUE(deque.empty());
}

TEST(WorkStealingDequeTest, PushReturnsFalseWhenFullAndWrapsAround) {
  std::vector<Item> items = make_items(6);
  WorkStealingDeque<Item> deque(4);
  EXPECT_EQ(deque.capacity(), 4u);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(deque.push(&items[i]));
  EXPECT_FALSE(deque.push(&items[4]));
  EXPECT_EQ(deque.size(), 4u);
  // Freeing the oldest slot lets the ring wrap around.
  EXPECT_EQ(deque.steal(), &items[0]);
  ASSERT_TRUE(deque.push(&items[4]));
  EXPECT_FALSE(deque.push(&items[5]));
  std::vector<int> stolen;
  while (Item* item = deque.steal()) stolen.push_back(item->id);
  EXPECT_THAT(stolen, ElementsAre(1, 2, 3, 4));
}

TEST(WorkStealingDequeTest, StealBatchMovesHalfOldestFirstBoundedByMaxAndDestRoom) {
  std::vector<Item> items = make_items(9);
  WorkStealingDeque<Item> victim(16);
  WorkStealingDeque<Item> thief(4);
  for (Item& item : items) ASSERT_TRUE(victim.push(&item));
  // Half of 9, rounded up, is 5; the thief's deque holds 4.
  EXPECT_EQ(victim.steal_batch(thief, 100), 4u);
  EXPECT_EQ(victim.size(), 5u);
  std::vector<int> moved;
  while (Item* item = thief.steal()) moved.push_back(item->id);
  EXPECT_THAT(moved, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(victim.steal_batch(thief, 2), 2u);  // `max` caps it.
  EXPECT_EQ(thief.pop(), &items[5]);
  EXPECT_EQ(thief.pop(), &items[4]);
  EXPECT_EQ(victim.steal_batch(thief, 100), 2u);  // Half of 3, rounded up.
  EXPECT_EQ(victim.steal_batch(thief, 100), 1u);  // A single item is stealable.
  EXPECT_EQ(victim.steal_batch(thief, 100), 0u);
  EXPECT_EQ(thief.size(), 3u);
}

TEST(WorkStealingDequeDeathTest, CapacityMustBeAPowerOfTwo) {
  EXPECT_DEATH(WorkStealingDeque<Item>(12),
               "invariant violated: WorkStealingDeque capacity is a "
               "power of two");
  EXPECT_DEATH(WorkStealingDeque<Item>(1), "power of two");
}

TEST(WorkStealingDequeDeathTest, NullItemsAreRejected) {
  WorkStealingDeque<Item> deque(4);
  EXPECT_DEATH(deque.push(nullptr), "invariant violated: WorkStealingDeque items are non-null");
}

// Linearizability stress: one owner pushes every item once (popping some itself, and spilling
// to an injection queue when full); several thieves steal single items and batches from the
// owner and from each other. Every item must be taken exactly once, with its payload intact.
TEST(WorkStealingDequeStressTest, EveryItemIsTakenExactlyOnce) {
  constexpr int kItems = 200000;
  constexpr int kThieves = 3;
  std::vector<Item> items = make_items(kItems);
  std::vector<std::atomic<int>> taken(kItems);
  std::atomic<int> total_taken{0};
  std::atomic<bool> corrupt{false};

  WorkStealingDeque<Item> owner_deque(64);  // Small, so it is often full and often near-empty.
  InjectionQueue<Item> overflow;
  std::vector<std::unique_ptr<WorkStealingDeque<Item>>> thief_deques;
  for (int i = 0; i < kThieves; ++i) {
    thief_deques.push_back(std::make_unique<WorkStealingDeque<Item>>(16));
  }

  auto take = [&](Item* item) {
    if (item->payload != int64_t{item->id} * 7 + 1) corrupt.store(true);
    taken[item->id].fetch_add(1, std::memory_order_relaxed);
    total_taken.fetch_add(1, std::memory_order_relaxed);
  };

  std::thread owner([&] {
    std::mt19937 random(1);
    for (int i = 0; i < kItems; ++i) {
      items[i].payload = int64_t{i} * 7 + 1;
      if (!owner_deque.push(&items[i])) overflow.push(&items[i]);
      if (random() % 2 == 0) {
        if (Item* item = owner_deque.pop()) take(item);
      }
    }
    while (total_taken.load() < kItems) {
      if (Item* item = owner_deque.pop()) take(item);
      if (Item* item = overflow.pop()) take(item);
    }
  });

  std::vector<std::thread> thieves;
  for (int t = 0; t < kThieves; ++t) {
    thieves.emplace_back([&, t] {
      std::mt19937 random(100 + t);
      WorkStealingDeque<Item>& mine = *thief_deques[t];
      while (total_taken.load(std::memory_order_relaxed) < kItems) {
        if (Item* item = mine.pop()) {
          take(item);
          continue;
        }
        const int victim_index = static_cast<int>(random() % (kThieves + 1));
        WorkStealingDeque<Item>& victim =
            victim_index == kThieves ? owner_deque : *thief_deques[victim_index];
        if (&victim == &mine) {
          if (Item* item = overflow.pop()) take(item);
          continue;
        }
        if (random() % 2 == 0) {
          if (Item* item = victim.steal()) take(item);
        } else {
          victim.steal_batch(mine, 1 + random() % 8);
        }
      }
    });
  }

  owner.join();
  for (std::thread& thief : thieves) thief.join();

  EXPECT_FALSE(corrupt.load());
  EXPECT_EQ(total_taken.load(), kItems);
  int wrong = 0;
  for (int i = 0; i < kItems; ++i) {
    if (taken[i].load() != 1) ++wrong;
  }
  EXPECT_EQ(wrong, 0) << "items taken zero times or more than once";
}

// The last-item race: in every round the owner pops and a thief steals, at the same moment,
// from a deque that holds one or two items; small random delays sweep their relative timing.
TEST(WorkStealingDequeStressTest, LastItemGoesToExactlyOneTaker) {
  constexpr int kRounds = 60000;
  std::vector<Item> items = make_items(2 * kRounds);
  std::vector<std::atomic<int>> taken(2 * kRounds);
  WorkStealingDeque<Item> deque(4);
  std::atomic<int> round_started{-1};
  std::atomic<int> thief_done{-1};
  auto spin = [](unsigned iterations) {
    for (unsigned i = 0; i < iterations; ++i) asm volatile("" ::: "memory");
  };
  // Spins (the two sides must start their round close together), but yields now and then: on
  // a machine with fewer free cores than threads, pure spinning waits out whole time slices.
  auto await = [](const std::atomic<int>& flag, int round) {
    for (int spins = 0; flag.load(std::memory_order_acquire) < round; ++spins) {
      if (spins % 256 == 255) std::this_thread::yield();
    }
  };

  std::thread thief([&] {
    std::mt19937 random(7);
    for (int round = 0; round < kRounds; ++round) {
      await(round_started, round);
      spin(random() % 32);
      if (Item* item = deque.steal()) taken[item->id].fetch_add(1);
      thief_done.store(round, std::memory_order_release);
    }
  });

  std::mt19937 random(3);
  for (int round = 0; round < kRounds; ++round) {
    const int count = 1 + round % 2;
    for (int i = 0; i < count; ++i) ASSERT_TRUE(deque.push(&items[2 * round + i]));
    round_started.store(round, std::memory_order_release);
    spin(random() % 128);
    while (Item* item = deque.pop()) taken[item->id].fetch_add(1);
    await(thief_done, round);
    while (Item* item = deque.pop()) taken[item->id].fetch_add(1);
  }
  thief.join();

  for (int round = 0; round < kRounds; ++round) {
    const int count = 1 + round % 2;
    for (int i = 0; i < count; ++i) {
      ASSERT_EQ(taken[2 * round + i].load(), 1) << "round " << round << " item " << i;
    }
  }
}

TEST(InjectionQueueTest, FifoWithBatches) {
  std::vector<Item> items = make_items(6);
  InjectionQueue<Item> queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.pop(), nullptr);
  queue.push(&items[0]);
  Item* batch[] = {&items[1], &items[2], &items[3], &items[4], &items[5]};
  queue.push_batch(batch);
  EXPECT_EQ(queue.size(), 6u);
  EXPECT_EQ(queue.pop(), &items[0]);

  WorkStealingDeque<Item> dest(4);
  ASSERT_TRUE(dest.push(&items[0]));
  // Room for 3 in `dest`, max 10: moves 1, 2, 3 in order.
  EXPECT_EQ(queue.pop_batch(dest, 10), 3u);
  EXPECT_EQ(queue.size(), 2u);
  std::vector<int> order;
  while (Item* item = dest.steal()) order.push_back(item->id);
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(queue.pop_batch(dest, 1), 1u);
  EXPECT_EQ(dest.pop(), &items[4]);
  EXPECT_EQ(queue.pop(), &items[5]);
  EXPECT_TRUE(queue.empty());
}

TEST(InjectionQueueStressTest, ManyProducersManyConsumersExactlyOnce) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 20000;
  std::vector<Item> items = make_items(kProducers * kPerProducer);
  std::vector<std::atomic<int>> taken(items.size());
  std::atomic<int> total{0};
  InjectionQueue<Item> queue;

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        Item& item = items[p * kPerProducer + i];
        item.payload = item.id * 7 + 1;
        queue.push(&item);
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      WorkStealingDeque<Item> local(8);
      while (total.load() < static_cast<int>(items.size())) {
        Item* item = c % 2 == 0 ? queue.pop() : nullptr;
        if (item == nullptr && queue.pop_batch(local, 8) > 0) item = local.pop();
        while (item != nullptr) {
          EXPECT_EQ(item->payload, item->id * 7 + 1);
          taken[item->id].fetch_add(1);
          total.fetch_add(1);
          item = local.pop();
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < items.size(); ++i) ASSERT_EQ(taken[i].load(), 1) << i;
}

}  // namespace
}  // namespace asupersync::sched
