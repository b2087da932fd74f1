// Copyright The Asupersync Authors.

#include "sched/internal/ring_queue.h"

#include <deque>

#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

TEST(RingQueueTest, FifoAcrossGrowthAndWrapAround) {
  RingQueue<int> ring;
  std::deque<int> model;
  int next = 0;
  // Interleave pushes and pops so that the head wraps while the ring grows several times.
  for (int round = 0; round < 2000; ++round) {
    for (int i = 0; i < round % 7 + 1; ++i) {
      ring.push_back(next);
      model.push_back(next++);
    }
    if (round % 11 == 0 && !model.empty()) {
      ring.pop_back();
      model.pop_back();
    }
    for (int i = 0; i < round % 5 && !model.empty(); ++i) {
      ASSERT_EQ(ring.front(), model.front());
      ring.pop_front();
      model.pop_front();
    }
    ASSERT_EQ(ring.size(), model.size());
    if (!model.empty()) {
      ASSERT_EQ(ring.back(), model.back());
    }
  }
  for (size_t i = 0; i < model.size(); ++i) ASSERT_EQ(ring[i], model[i]);
  ring.clear();
  EXPECT_TRUE(ring.empty());
}

TEST(RingQueueTest, InsertFromBackKeepsDescendingOrderAndFifoAmongEquals) {
  struct Entry {
    int priority;
    int id;
  };
  RingQueue<Entry> ring;
  const int priorities[] = {1, 3, 1, 2, 3, 0, 2};
  for (int id = 0; id < 7; ++id) {
    const int priority = priorities[id];
    ring.insert_from_back(Entry{priority, id},
                          [&](const Entry& e) { return e.priority < priority; });
  }
  const int expected_ids[] = {1, 4, 3, 6, 0, 2, 5};
  ASSERT_EQ(ring.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(ring[i].id, expected_ids[i]) << i;
}

}  // namespace
}  // namespace asupersync::sched
