// Copyright The Asupersync Authors.

#include "sched/internal/signal_watcher.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace asupersync::sched {
namespace {

bool blocked_in_this_thread(int signal_number) {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, signal_number) == 1;
}

// Polls until the watcher has read `count` signals (or 10 s pass).
void poll_until(Reactor& reactor, const SignalWatcher& watcher, uint64_t count) {
  for (int i = 0; i < 1000 && watcher.signals_received() < count; ++i) {
    ASSERT_TRUE(reactor.poll(Duration::Milliseconds(10)).ok());
  }
}

// In this process: raise() sends the signal to the calling thread, which has it blocked, so it
// stays pending until the signalfd reads it; the process survives its default action.
TEST(SignalWatcherTest, ReportsRaisedSignalsAndRestoresTheMask) {
  ASSERT_FALSE(blocked_in_this_thread(SIGTERM));
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  std::vector<int> seen;
  {
    absl::StatusOr<std::unique_ptr<SignalWatcher>> watcher =
        SignalWatcher::create(**reactor, [&](int signal_number) { seen.push_back(signal_number); });
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    EXPECT_TRUE(blocked_in_this_thread(SIGTERM));
    EXPECT_TRUE(blocked_in_this_thread(SIGINT));
    EXPECT_EQ((*watcher)->last_signal(), 0);

    ASSERT_EQ(raise(SIGTERM), 0);
    poll_until(**reactor, **watcher, 1);
    EXPECT_EQ((*watcher)->last_signal(), SIGTERM);
    ASSERT_EQ(raise(SIGINT), 0);
    poll_until(**reactor, **watcher, 2);
    EXPECT_EQ((*watcher)->last_signal(), SIGINT);
    EXPECT_EQ((*watcher)->signals_received(), 2u);
    EXPECT_EQ(seen, (std::vector<int>{SIGTERM, SIGINT}));

    // A signal still pending at destruction is discarded, not delivered with its default action.
    ASSERT_EQ(raise(SIGTERM), 0);
  }
  EXPECT_FALSE(blocked_in_this_thread(SIGTERM));
  EXPECT_FALSE(blocked_in_this_thread(SIGINT));
  EXPECT_EQ((*reactor)->num_registrations(), 0u);
}

TEST(SignalWatcherTest, RejectsSignalsThatCannotBeWatched) {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok());
  EXPECT_EQ(SignalWatcher::create(**reactor, nullptr, {SIGKILL}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SignalWatcher::create(**reactor, nullptr, {0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SignalWatcher::create(**reactor, nullptr, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(blocked_in_this_thread(SIGTERM));
}

// A process-directed SIGTERM from another process, as `kill <pid>` sends it, in a forked child
// (single-threaded, so the mask covers every thread): the child reports it and exits normally
// with the signal number as its status instead of being terminated by it.
TEST(SignalWatcherTest, ProcessDirectedSigtermFromAnotherProcessIsReported) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::create();
    if (!reactor.ok()) _exit(100);
    absl::StatusOr<std::unique_ptr<SignalWatcher>> watcher = SignalWatcher::create(**reactor);
    if (!watcher.ok()) _exit(101);
    if (write(ready[1], "r", 1) != 1) _exit(102);
    for (int i = 0; i < 1000 && (*watcher)->signals_received() == 0; ++i) {
      if (!(*reactor)->poll(Duration::Milliseconds(10)).ok()) _exit(103);
    }
    _exit((*watcher)->last_signal());
  }
  close(ready[1]);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the child failed to set up its watcher";
  close(ready[0]);
  ASSERT_EQ(kill(child, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), SIGTERM);
}

}  // namespace
}  // namespace asupersync::sched
