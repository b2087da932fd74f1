// The intrusive FIFO waiter list shared by every primitive (sync/internal/waiter.h).

#include <vector>

#include "gtest/gtest.h"
#include "sync/internal/waiter.h"

namespace asupersync::sync_internal {
namespace {

struct Node : WaiterHook {
  explicit Node(int id) : id(id) {}
  int id;
};

std::vector<int> ids(const WaiterList<Node>& list) {
  std::vector<int> out;
  for (Node* node = list.front(); node != nullptr; node = WaiterList<Node>::next(node)) {
    out.push_back(node->id);
  }
  return out;
}

// SPEC 8: waiter queues are FIFO.
TEST(WaiterListTest, FifoOrderAndRemovalAnywhere) {
  Node a(1), b(2), c(3), d(4);
  WaiterList<Node> list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.pop_front(), nullptr);
  for (Node* node : {&a, &b, &c, &d}) list.push_back(node);
  EXPECT_EQ(list.size(), 4u);
  EXPECT_EQ(ids(list), (std::vector<int>{1, 2, 3, 4}));
  list.remove(&b);  // middle
  EXPECT_EQ(ids(list), (std::vector<int>{1, 3, 4}));
  list.remove(&d);  // tail
  EXPECT_EQ(ids(list), (std::vector<int>{1, 3}));
  list.remove(&d);  // not linked: a no-op (a destructor may deregister twice)
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.pop_front(), &a);
  EXPECT_FALSE(a.linked);
  list.push_back(&b);  // relinking after removal works
  EXPECT_EQ(ids(list), (std::vector<int>{3, 2}));
  list.remove(&c);  // head
  EXPECT_EQ(ids(list), (std::vector<int>{2}));
  EXPECT_EQ(list.pop_front(), &b);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
}

// Queuing a node twice is an invariant violation, never a corrupted list.
TEST(WaiterListDeathTest, DoublePushAborts) {
  Node a(1);
  WaiterList<Node> list;
  list.push_back(&a);
  EXPECT_DEATH(list.push_back(&a), "queued twice");
  list.remove(&a);
}

// An empty WakeList wakes nothing and allocates nothing.
TEST(WakeListTest, EmptyIsANoOp) {
  WakeList wakes;
  wakes.wake_all();
}

}  // namespace
}  // namespace asupersync::sync_internal
