// Copyright The Asupersync Authors.
//
// Micro-benchmarks of the work-stealing deque and the injection queue
// (sched/internal/work_stealing_deque.h). Run optimised:
//   bazel run --config=opt //sched:work_stealing_deque_benchmark

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "sched/internal/work_stealing_deque.h"

namespace asupersync::sched {
namespace {

struct Item {
  int64_t value = 0;
};

constexpr size_t kCapacity = size_t{1} << 16;

std::vector<Item>& items() {
  static std::vector<Item> storage(kCapacity);
  return storage;
}

// Owner push then pop of the same item: the LIFO fast path of a worker running what it woke.
void BM_DequePushPop(benchmark::State& state) {
  WorkStealingDeque<Item> deque(256);
  Item item;
  for (auto _ : state) {
    deque.push(&item);
    benchmark::DoNotOptimize(deque.pop());
  }
}
BENCHMARK(BM_DequePushPop);

// Pushes alone; the deque is drained (untimed) every kCapacity pushes.
void BM_DequePush(benchmark::State& state) {
  WorkStealingDeque<Item> deque(kCapacity);
  size_t pushed = 0;
  for (auto _ : state) {
    if (pushed == kCapacity) {
      state.PauseTiming();
      while (deque.pop() != nullptr) {
      }
      pushed = 0;
      state.ResumeTiming();
    }
    deque.push(&items()[pushed++]);
  }
}
BENCHMARK(BM_DequePush);

// Pops alone (owner, LIFO); refilled (untimed) when empty.
void BM_DequePop(benchmark::State& state) {
  WorkStealingDeque<Item> deque(kCapacity);
  for (auto _ : state) {
    Item* item = deque.pop();
    if (item == nullptr) {
      state.PauseTiming();
      for (Item& each : items()) deque.push(&each);
      state.ResumeTiming();
      item = deque.pop();
    }
    benchmark::DoNotOptimize(item);
  }
}
BENCHMARK(BM_DequePop);

// Uncontended steals (FIFO); refilled (untimed) when empty.
void BM_DequeSteal(benchmark::State& state) {
  WorkStealingDeque<Item> deque(kCapacity);
  for (auto _ : state) {
    Item* item = deque.steal();
    if (item == nullptr) {
      state.PauseTiming();
      for (Item& each : items()) deque.push(&each);
      state.ResumeTiming();
      item = deque.steal();
    }
    benchmark::DoNotOptimize(item);
  }
}
BENCHMARK(BM_DequeSteal);

// steal_batch of up to 32 items into the thief's deque, which then pops them; per item moved.
void BM_DequeStealBatch(benchmark::State& state) {
  WorkStealingDeque<Item> victim(kCapacity);
  WorkStealingDeque<Item> thief(64);
  int64_t moved = 0;
  for (auto _ : state) {
    size_t count = victim.steal_batch(thief, 32);
    if (count == 0) {
      state.PauseTiming();
      for (Item& each : items()) victim.push(&each);
      state.ResumeTiming();
      count = victim.steal_batch(thief, 32);
    }
    while (thief.pop() != nullptr) {
    }
    moved += static_cast<int64_t>(count);
  }
  state.SetItemsProcessed(moved);
}
BENCHMARK(BM_DequeStealBatch);

// Contended: thread 0 owns the deque and pushes/pops; the other threads steal. Per operation of
// each thread.
WorkStealingDeque<Item>* shared_deque = nullptr;

void BM_DequeOwnerWithThieves(benchmark::State& state) {
  if (state.thread_index() == 0) shared_deque = new WorkStealingDeque<Item>(1024);
  Item item;
  int64_t taken = 0;
  for (auto _ : state) {
    if (state.thread_index() == 0) {
      // Keep the deque non-empty for the thieves: push two, pop one.
      shared_deque->push(&item);
      shared_deque->push(&item);
      taken += shared_deque->pop() != nullptr;
    } else {
      taken += shared_deque->steal() != nullptr;
    }
  }
  state.SetItemsProcessed(taken);
  if (state.thread_index() == 0) {
    // Every thread has left the loop before thread 0 passes it (the framework's barrier).
    delete shared_deque;
    shared_deque = nullptr;
  }
}
BENCHMARK(BM_DequeOwnerWithThieves)->Threads(2)->Threads(3)->UseRealTime();

void BM_InjectionQueuePushPop(benchmark::State& state) {
  InjectionQueue<Item> queue;
  Item item;
  for (auto _ : state) {
    queue.push(&item);
    benchmark::DoNotOptimize(queue.pop());
  }
}
BENCHMARK(BM_InjectionQueuePushPop);

void BM_InjectionQueueEmptyCheck(benchmark::State& state) {
  InjectionQueue<Item> queue;
  for (auto _ : state) benchmark::DoNotOptimize(queue.empty());
}
BENCHMARK(BM_InjectionQueueEmptyCheck);

}  // namespace
}  // namespace asupersync::sched
