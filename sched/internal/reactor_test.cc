// Copyright The Asupersync Authors.

#include "sched/internal/reactor.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

using ::testing::HasSubstr;

// Closes whatever fds it still holds.
struct FdPair {
  int first = -1;   // Pipe: the read end.
  int second = -1;  // Pipe: the write end.
  ~FdPair() {
    if (first >= 0) close(first);
    if (second >= 0) close(second);
  }
};

void make_pipe(FdPair& fds) {
  int raw[2];
  ASSERT_EQ(pipe2(raw, O_NONBLOCK | O_CLOEXEC), 0);
  fds.first = raw[0];
  fds.second = raw[1];
}

void make_socketpair(FdPair& fds) {
  int raw[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, raw), 0);
  fds.first = raw[0];
  fds.second = raw[1];
}

// Makes `fd` refer to its file under the number `number` (a free fd number).
void move_fd(int& fd, int number) {
  if (fd == number) return;
  ASSERT_EQ(dup3(fd, number, O_CLOEXEC), number);
  close(fd);
  fd = number;
}

void write_byte(int fd) { ASSERT_EQ(write(fd, "x", 1), 1); }

size_t drain(int fd) {
  char buffer[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) total += static_cast<size_t>(n);
  return total;
}

class Recorder final : public ReadinessHandler {
 public:
  explicit Recorder(std::function<void(uint32_t)> action = nullptr) : action_(std::move(action)) {}
  void on_ready(uint32_t events) override {
    calls.fetch_add(1);
    last_events.store(events);
    if (action_) action_(events);
  }
  std::atomic<int> calls{0};
  std::atomic<uint32_t> last_events{0};

 private:
  std::function<void(uint32_t)> action_;
};

std::unique_ptr<Reactor> make_reactor(size_t max_events = 256) {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::create(max_events);
  EXPECT_TRUE(reactor.ok()) << reactor.status();
  return std::move(reactor).value();
}

PollResult poll_now(Reactor& reactor, Duration max_wait = Duration::Zero()) {
  absl::StatusOr<PollResult> result = reactor.poll(max_wait);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.value_or(PollResult{});
}

TEST(ReactorTest, ReadinessOfAPipeIsDeliveredToTheHandler) {
  auto reactor = make_reactor();
  FdPair pipe;
  make_pipe(pipe);
  Recorder handler;
  absl::StatusOr<Registration> registration = reactor->register_fd(pipe.first, &handler);
  ASSERT_TRUE(registration.ok()) << registration.status();
  EXPECT_TRUE(registration->valid());
  EXPECT_EQ(registration->fd(), pipe.first);
  EXPECT_EQ(reactor->num_registrations(), 1u);

  EXPECT_EQ(poll_now(*reactor).dispatched, 0u);
  EXPECT_EQ(handler.calls.load(), 0);
  write_byte(pipe.second);
  PollResult result = poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(result.dispatched, 1u);
  EXPECT_EQ(handler.calls.load(), 1);
  EXPECT_NE(handler.last_events.load() & EPOLLIN, 0u);
  absl::StatusOr<ReadyEvent> ready = reactor->readiness(*registration);
  ASSERT_TRUE(ready.ok());
  EXPECT_NE(ready->events & EPOLLIN, 0u);
  EXPECT_EQ(ready->sequence, 1u);

  EXPECT_TRUE(reactor->deregister(*registration).ok());
  EXPECT_EQ(reactor->num_registrations(), 0u);
}

TEST(ReactorTest, EdgeTriggeredReportsATransitionOnce) {
  auto reactor = make_reactor();
  FdPair pipe;
  make_pipe(pipe);
  Recorder handler;
  auto registration = reactor->register_fd(pipe.first, &handler);
  ASSERT_TRUE(registration.ok());
  write_byte(pipe.second);
  EXPECT_EQ(poll_now(*reactor, Duration::Seconds(10)).dispatched, 1u);
  // The data is still unread; a level-triggered registration would report it again.
  EXPECT_EQ(poll_now(*reactor).dispatched, 0u);
  EXPECT_EQ(poll_now(*reactor, Duration::Milliseconds(5)).dispatched, 0u);
  EXPECT_EQ(handler.calls.load(), 1);
  // After draining, new data is a new edge.
  drain(pipe.first);
  write_byte(pipe.second);
  EXPECT_EQ(poll_now(*reactor, Duration::Seconds(10)).dispatched, 1u);
  EXPECT_EQ(handler.calls.load(), 2);
  EXPECT_TRUE(reactor->deregister(*registration).ok());
}

TEST(ReactorTest, ReaderWaiterIsCalledOnceAndClearReadinessKeepsNewEvents) {
  auto reactor = make_reactor();
  FdPair pipe;
  make_pipe(pipe);
  auto registration = reactor->register_fd(pipe.first, nullptr);
  ASSERT_TRUE(registration.ok());
  Recorder reader;
  absl::StatusOr<bool> ready_now = reactor->wait_readable(*registration, reader);
  ASSERT_TRUE(ready_now.ok());
  EXPECT_FALSE(*ready_now);  // Stored.

  write_byte(pipe.second);
  poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(reader.calls.load(), 1);
  write_byte(pipe.second);  // Another event: the waiter was used up.
  poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(reader.calls.load(), 1);

  // Readable now: wait_readable answers at once and stores nothing.
  ready_now = reactor->wait_readable(*registration, reader);
  ASSERT_TRUE(ready_now.ok());
  EXPECT_TRUE(*ready_now);

  // The reader drains, but an event arrives before it clears: the clear must not erase it.
  absl::StatusOr<ReadyEvent> observed = reactor->readiness(*registration);
  ASSERT_TRUE(observed.ok());
  drain(pipe.first);
  write_byte(pipe.second);
  poll_now(*reactor, Duration::Seconds(10));
  ASSERT_TRUE(reactor->clear_readiness(*registration, EPOLLIN, observed->sequence).ok());
  EXPECT_NE(reactor->readiness(*registration)->events & EPOLLIN, 0u);
  // With the current sequence the clear takes effect, and the next wait is stored.
  drain(pipe.first);
  const uint64_t sequence = reactor->readiness(*registration)->sequence;
  ASSERT_TRUE(reactor->clear_readiness(*registration, EPOLLIN, sequence).ok());
  EXPECT_FALSE(*reactor->wait_readable(*registration, reader));
  // Only one reader waiter per registration.
  Recorder second_reader;
  absl::StatusOr<bool> second = reactor->wait_readable(*registration, second_reader);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("already has a reader waiting"));
  // Cancelling the stored waiter: it is not called on the next event.
  EXPECT_TRUE(reactor->cancel_wait(*registration, reader));
  EXPECT_FALSE(reactor->cancel_wait(*registration, reader));
  write_byte(pipe.second);
  poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(reader.calls.load(), 1);
  EXPECT_TRUE(reactor->deregister(*registration).ok());
}

TEST(ReactorTest, WriterWaiterWakesWhenTheSocketDrainsAndReaderSeesHangUp) {
  auto reactor = make_reactor();
  FdPair sockets;
  make_socketpair(sockets);
  auto registration = reactor->register_fd(sockets.first, nullptr);
  ASSERT_TRUE(registration.ok());
  poll_now(*reactor);  // The initial EPOLLOUT edge.
  ASSERT_NE(reactor->readiness(*registration)->events & EPOLLOUT, 0u);

  // Fill the socket until it would block.
  const std::string chunk(4096, 'x');
  while (write(sockets.first, chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  const uint64_t sequence = reactor->readiness(*registration)->sequence;
  ASSERT_TRUE(reactor->clear_readiness(*registration, EPOLLOUT, sequence).ok());
  Recorder writer;
  ASSERT_FALSE(*reactor->wait_writable(*registration, writer));
  EXPECT_EQ(poll_now(*reactor).dispatched, 0u);
  EXPECT_EQ(writer.calls.load(), 0);

  drain(sockets.second);
  poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(writer.calls.load(), 1);
  EXPECT_NE(writer.last_events.load() & EPOLLOUT, 0u);

  Recorder reader;
  ASSERT_FALSE(*reactor->wait_readable(*registration, reader));
  close(sockets.second);
  sockets.second = -1;
  poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(reader.calls.load(), 1);
  EXPECT_NE(reader.last_events.load() & EPOLLRDHUP, 0u);
  EXPECT_TRUE(reactor->deregister(*registration).ok());
}

TEST(ReactorTest, RegistrationErrorsAreActionable) {
  auto reactor = make_reactor();
  FdPair pipe;
  make_pipe(pipe);
  auto registration = reactor->register_fd(pipe.first, nullptr);
  ASSERT_TRUE(registration.ok());

  auto twice = reactor->register_fd(pipe.first, nullptr);
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("deregister it first"));

  char path[] = "/tmp/reactor_test_XXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  auto regular = reactor->register_fd(file, nullptr);
  close(file);
  EXPECT_EQ(regular.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(regular.status().message()), HasSubstr("blocking pool"));

  auto closed = reactor->register_fd(1 << 20, nullptr);
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(closed.status().message()), HasSubstr("EBADF"));
  EXPECT_EQ(reactor->register_fd(-1, nullptr).status().code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(reactor->deregister(*registration).ok());
  absl::Status again = reactor->deregister(*registration);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.message()), HasSubstr("is not live"));
  Recorder waiter;
  EXPECT_EQ(reactor->wait_readable(*registration, waiter).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(reactor->readiness(*registration).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(reactor->deregister(Registration()).code(), absl::StatusCode::kFailedPrecondition);
}

// Creating a reactor without file descriptors left fails with ResourceExhausted and says what
// to do. Run in a child process, which can lower its own fd limit safely.
TEST(ReactorDeathTest, OutOfFileDescriptorsIsResourceExhausted) {
  EXPECT_EXIT(
      {
        rlimit limit{};
        getrlimit(RLIMIT_NOFILE, &limit);
        limit.rlim_cur = 0;
        setrlimit(RLIMIT_NOFILE, &limit);
        absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::create();
        std::fprintf(stderr, "%s\n", reactor.status().ToString().c_str());
        const bool expected =
            reactor.status().code() == absl::StatusCode::kResourceExhausted &&
            std::string(reactor.status().message()).find("RLIMIT_NOFILE") != std::string::npos;
        _exit(expected ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "RESOURCE_EXHAUSTED.*epoll_create1.*EMFILE.*ulimit -n");
}

// SPEC 6.5, the real thing: two fds are ready in the same epoll_wait batch. Whichever handler
// runs first deregisters the other registration, closes its fd, opens a new pipe whose read end
// gets the same fd number, and registers it (reusing the freed slot). The other registration's
// event is already in the batch: it must be dropped, not delivered to the new owner.
TEST(ReactorTest, StaleEventAfterDeregisterAndFdReuseIsNotDelivered) {
  auto reactor = make_reactor();
  FdPair pipes[2];
  make_pipe(pipes[0]);
  make_pipe(pipes[1]);
  Registration registrations[2];
  Recorder new_owner;
  FdPair replacement;  // The new pipe, its read end moved onto the old number.
  Registration new_registration;
  int first_called = -1;
  std::unique_ptr<Recorder> handlers[2];
  for (int i = 0; i < 2; ++i) {
    handlers[i] = std::make_unique<Recorder>([&, i](uint32_t) {
      if (first_called != -1) return;
      first_called = i;
      const int victim = 1 - i;
      const int number = pipes[victim].first;
      ASSERT_TRUE(reactor->deregister(registrations[victim]).ok());
      close(pipes[victim].first);
      pipes[victim].first = -1;
      make_pipe(replacement);
      // The lowest free fd is usually the number just closed; if not, move it there.
      move_fd(replacement.first, number);
      auto registered = reactor->register_fd(number, &new_owner);
      ASSERT_TRUE(registered.ok()) << registered.status();
      new_registration = *registered;
    });
    auto registered = reactor->register_fd(pipes[i].first, handlers[i].get());
    ASSERT_TRUE(registered.ok());
    registrations[i] = *registered;
  }
  write_byte(pipes[0].second);
  write_byte(pipes[1].second);
  // Let both events reach epoll's ready list before the single epoll_wait.
  PollResult result = poll_now(*reactor, Duration::Seconds(10));
  ASSERT_EQ(result.events, 2u) << "both events must come back in one batch";
  ASSERT_NE(first_called, -1);
  const int victim = 1 - first_called;

  EXPECT_EQ(new_registration.fd(), registrations[victim].fd());                  // Same fd number,
  EXPECT_EQ(new_registration.slot(), registrations[victim].slot());              // same slot,
  EXPECT_NE(new_registration.generation(), registrations[victim].generation());  // new generation.
  EXPECT_EQ(result.dispatched, 1u);
  EXPECT_EQ(result.stale_ignored, 1u);
  EXPECT_EQ(new_owner.calls.load(), 0) << "a stale event reached the fd's new owner";
  EXPECT_EQ(handlers[victim]->calls.load(), 0) << "a deregistered handler was called";

  // The new registration is live: its own events arrive.
  write_byte(replacement.second);
  result = poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(result.dispatched, 1u);
  EXPECT_EQ(new_owner.calls.load(), 1);
  EXPECT_TRUE(reactor->deregister(new_registration).ok());
  EXPECT_TRUE(reactor->deregister(registrations[first_called]).ok());
}

// The same, when the fd is closed without deregistering: registering the reused number
// supersedes the old registration, whose in-flight event is dropped, and whose late deregister
// fails instead of removing the new owner's watch.
TEST(ReactorTest, StaleEventAfterCloseWithoutDeregisterIsNotDelivered) {
  auto reactor = make_reactor();
  FdPair pipes[2];
  make_pipe(pipes[0]);
  make_pipe(pipes[1]);
  Registration registrations[2];
  Recorder new_owner;
  FdPair replacement;
  Registration new_registration;
  int first_called = -1;
  std::unique_ptr<Recorder> handlers[2];
  for (int i = 0; i < 2; ++i) {
    handlers[i] = std::make_unique<Recorder>([&, i](uint32_t) {
      if (first_called != -1) return;
      first_called = i;
      const int victim = 1 - i;
      const int number = pipes[victim].first;
      close(pipes[victim].first);  // No deregister.
      pipes[victim].first = -1;
      make_pipe(replacement);
      move_fd(replacement.first, number);
      auto registered = reactor->register_fd(number, &new_owner);
      ASSERT_TRUE(registered.ok()) << registered.status();
      new_registration = *registered;
    });
    auto registered = reactor->register_fd(pipes[i].first, handlers[i].get());
    ASSERT_TRUE(registered.ok());
    registrations[i] = *registered;
  }
  write_byte(pipes[0].second);
  write_byte(pipes[1].second);
  PollResult result = poll_now(*reactor, Duration::Seconds(10));
  ASSERT_EQ(result.events, 2u);
  const int victim = 1 - first_called;
  EXPECT_EQ(new_registration.fd(), registrations[victim].fd());
  EXPECT_EQ(result.stale_ignored, 1u);
  EXPECT_EQ(new_owner.calls.load(), 0) << "a stale event reached the fd's new owner";
  EXPECT_EQ(reactor->num_registrations(), 2u);

  EXPECT_EQ(reactor->deregister(registrations[victim]).code(),
            absl::StatusCode::kFailedPrecondition);
  write_byte(replacement.second);
  poll_now(*reactor, Duration::Seconds(10));
  EXPECT_EQ(new_owner.calls.load(), 1) << "the late deregister removed the new owner's watch";
  EXPECT_TRUE(reactor->deregister(new_registration).ok());
  EXPECT_TRUE(reactor->deregister(registrations[first_called]).ok());
}

TEST(ReactorTest, WakeInterruptsABlockedPollAndCoalesces) {
  auto reactor = make_reactor();
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reactor->wake();
  });
  const auto start = std::chrono::steady_clock::now();
  PollResult result = poll_now(*reactor, Duration::Infinite());
  waker.join();
  EXPECT_TRUE(result.woken);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  reactor->wake();
  reactor->wake();
  reactor->wake();
  EXPECT_TRUE(poll_now(*reactor).woken);
  EXPECT_FALSE(poll_now(*reactor).woken);
}

// Many wakes from several threads racing with a poll loop: after the last wake, a poll returns
// woken (no wake is lost by the coalescing flag).
TEST(ReactorStressTest, WakesAreNeverLost) {
  auto reactor = make_reactor();
  constexpr int kRounds = 3000;
  std::atomic<int> requested{0};
  std::atomic<int> acknowledged{0};
  std::thread poller([&] {
    while (acknowledged.load() < kRounds) {
      const int seen = requested.load();
      if (seen > acknowledged.load()) {
        acknowledged.store(seen);
        continue;
      }
      absl::StatusOr<PollResult> result = reactor->poll(Duration::Seconds(10));
      ASSERT_TRUE(result.ok());
      if (!result->woken && requested.load() == acknowledged.load()) {
        ADD_FAILURE() << "a poll slept 10 s with a wake pending";
        return;
      }
    }
  });
  for (int round = 1; round <= kRounds; ++round) {
    requested.store(round);
    reactor->wake();
    while (acknowledged.load() < round) std::this_thread::yield();
  }
  poller.join();
}

int64_t median(std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

TEST(ReactorTest, TimerFiresAtItsDeadlineWithSubMillisecondPrecision) {
  auto reactor = make_reactor();
  std::vector<int64_t> lateness_ns;
  for (int i = 0; i < 15; ++i) {
    const Time deadline = monotonic_now() + Duration::Microseconds(300);
    ASSERT_TRUE(reactor->arm_timer(deadline).ok());
    PollResult result;
    do {
      result = poll_now(*reactor, Duration::Seconds(10));
    } while (!result.timer_fired);
    const Time woke = monotonic_now();
    ASSERT_GE(woke, deadline) << "fired early";
    lateness_ns.push_back((woke - deadline).nanoseconds());
  }
  // epoll_wait's millisecond timeout would make a 300 us sleep at least 1 ms long.
  EXPECT_LT(median(lateness_ns), 1'000'000) << "median lateness " << median(lateness_ns) << " ns";
  std::printf("timerfd: median lateness %lld ns\n", static_cast<long long>(median(lateness_ns)));
}

TEST(ReactorTest, TimerRearmPastDeadlineAndDisarm) {
  auto reactor = make_reactor();
  // A deadline in the past (even the epoch itself) fires at once.
  ASSERT_TRUE(reactor->arm_timer(Time::Epoch()).ok());
  EXPECT_TRUE(poll_now(*reactor, Duration::Seconds(10)).timer_fired);
  // Re-arming replaces the deadline; Infinite disarms.
  ASSERT_TRUE(reactor->arm_timer(monotonic_now() + Duration::Milliseconds(5)).ok());
  ASSERT_TRUE(reactor->arm_timer(Time::Infinite()).ok());
  EXPECT_FALSE(poll_now(*reactor, Duration::Milliseconds(30)).timer_fired);
  ASSERT_TRUE(reactor->arm_timer(monotonic_now() + Duration::Seconds(60)).ok());
  ASSERT_TRUE(reactor->arm_timer(monotonic_now() + Duration::Milliseconds(2)).ok());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(poll_now(*reactor, Duration::Seconds(10)).timer_fired);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_TRUE(reactor->disarm_timer().ok());
}

// deregister from another thread waits for a callback of that registration that is running.
TEST(ReactorTest, DeregisterWaitsForARunningCallback) {
  auto reactor = make_reactor();
  FdPair pipe;
  make_pipe(pipe);
  std::atomic<bool> in_callback{false};
  std::atomic<bool> callback_done{false};
  Recorder handler([&](uint32_t) {
    in_callback = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    callback_done = true;
  });
  auto registration = reactor->register_fd(pipe.first, &handler);
  ASSERT_TRUE(registration.ok());
  write_byte(pipe.second);
  std::thread poller([&] { poll_now(*reactor, Duration::Seconds(10)); });
  while (!in_callback) std::this_thread::yield();
  EXPECT_TRUE(reactor->deregister(*registration).ok());
  EXPECT_TRUE(callback_done.load()) << "deregister returned while the handler still ran";
  poller.join();
}

// Threads register, wait, write, cancel and deregister pipes while one thread polls; handlers
// and waiters are destroyed right after deregister/cancel_wait return, so a late callback is a
// use-after-free (ASan) or a race (TSan).
TEST(ReactorStressTest, ConcurrentRegistrationsWithAPollingThread) {
  auto reactor = make_reactor(16);
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop.load()) {
      absl::StatusOr<PollResult> result = reactor->poll(Duration::Milliseconds(1));
      ASSERT_TRUE(result.ok()) << result.status();
    }
  });
  constexpr int kThreads = 3;
  constexpr int kIterations = 1500;
  std::atomic<int> delivered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      for (int i = 0; i < kIterations; ++i) {
        FdPair pipe;
        make_pipe(pipe);
        auto handler = std::make_unique<Recorder>([&](uint32_t) { delivered.fetch_add(1); });
        auto waiter = std::make_unique<Recorder>();
        auto registration = reactor->register_fd(pipe.first, handler.get());
        ASSERT_TRUE(registration.ok()) << registration.status();
        absl::StatusOr<bool> ready = reactor->wait_readable(*registration, *waiter);
        ASSERT_TRUE(ready.ok());
        if (random() % 2 == 0) write_byte(pipe.second);
        if (random() % 4 == 0) std::this_thread::yield();
        if (random() % 2 == 0) reactor->cancel_wait(*registration, *waiter);
        ASSERT_TRUE(reactor->deregister(*registration).ok());
        // Destroyed now: the reactor must never call them again.
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  stop = true;
  reactor->wake();
  poller.join();
  EXPECT_EQ(reactor->num_registrations(), 0u);
  EXPECT_GT(delivered.load(), 0);
}

}  // namespace
}  // namespace asupersync::sched
