// Copyright The Asupersync Authors.
//
// sched/internal/signal_watcher.h: turns SIGINT and SIGTERM into reactor events, so the
// runtime can cancel its root region on Ctrl-C or a stop request instead of dying mid-cleanup.
//
// `SignalWatcher::create(reactor)` blocks the watched signals (by default SIGINT and SIGTERM) in
// the calling thread's signal mask, opens a signalfd for them and registers it with `reactor`.
// When one arrives, the reactor's `poll` reads it from the signalfd, records it
// (`last_signal()`, `signals_received()`) and calls the optional callback with its number.
//
// Process-wide effect: while the watcher exists, the watched signals no longer terminate the
// process (their default action) and no signal handler runs for them; they are only reported
// here. Blocking is per thread and inherited by threads created afterwards, so create the
// watcher on the main thread before starting any other thread (the runtime does so first thing
// in Runtime::run): a thread created earlier still has them unblocked, and the kernel may
// deliver a process-directed SIGTERM to it, with its default action. Standard signals do not
// queue: several SIGTERMs that arrive before `poll` reads them are reported once. Create at most
// one watcher per signal and process (two signalfds would compete for the signals).
//
// Thread-safety: `last_signal` and `signals_received` from any thread. The callback runs on the
// thread that polls the reactor, with no reactor lock held. Create and destroy the watcher on
// the same thread.
//
// Lifetime: the reactor outlives the watcher. Destroying the watcher deregisters and closes the
// signalfd, reads and discards signals still pending, then unblocks the signals that were not
// blocked before `create` in the calling thread, restoring their default action (a signal that
// arrives after that terminates the process as usual).
//
// Cancellation: the watcher only reports; what a signal means (cancel the root region with
// CancelKind::kShutdown, SPEC 4) is the runtime's decision, made in the callback.

#ifndef ASUPERSYNC_SCHED_INTERNAL_SIGNAL_WATCHER_H_
#define ASUPERSYNC_SCHED_INTERNAL_SIGNAL_WATCHER_H_

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "sched/internal/reactor.h"

namespace asupersync::sched {

class SignalWatcher final : private ReadinessHandler {
 public:
  using SignalCallback = std::function<void(int signal_number)>;

  // Blocks `signals` in the calling thread, opens a signalfd and registers it with `reactor`.
  // InvalidArgument for signals that cannot be caught (SIGKILL, SIGSTOP) or are out of range;
  // ResourceExhausted when out of file descriptors.
  static absl::StatusOr<std::unique_ptr<SignalWatcher>> create(Reactor& reactor,
                                                               SignalCallback on_signal = nullptr,
                                                               const std::vector<int>& signals = {
                                                                   SIGINT, SIGTERM});

  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // The number of the most recent signal read, 0 before the first.
  int last_signal() const { return last_signal_.load(std::memory_order_acquire); }
  // How many signals were read so far.
  uint64_t signals_received() const { return signals_received_.load(std::memory_order_acquire); }

 private:
  SignalWatcher(Reactor& reactor, int signal_fd, const sigset_t& newly_blocked,
                SignalCallback on_signal);

  void on_ready(uint32_t events) override;
  // Reads every pending signal; reports them when `report`.
  void read_signals(bool report);

  Reactor& reactor_;
  const int signal_fd_;
  const sigset_t newly_blocked_;  // Watched signals that were not blocked before create().
  const std::thread::id creating_thread_;
  const SignalCallback on_signal_;
  Registration registration_;
  std::atomic<int> last_signal_{0};
  std::atomic<uint64_t> signals_received_{0};
};

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_SIGNAL_WATCHER_H_
