// Copyright The Asupersync Authors.

#include "sched/internal/signal_watcher.h"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sched/internal/errno_status.h"

namespace asupersync::sched {

absl::StatusOr<std::unique_ptr<SignalWatcher>> SignalWatcher::create(
    Reactor& reactor, SignalCallback on_signal, const std::vector<int>& signals) {
  if (signals.empty()) {
    return absl::InvalidArgumentError("SignalWatcher::create: no signal to watch");
  }
  sigset_t watched;
  sigemptyset(&watched);
  for (int signal_number : signals) {
    if (signal_number <= 0 || signal_number > SIGRTMAX || signal_number == SIGKILL ||
        signal_number == SIGSTOP) {
      return absl::InvalidArgumentError(
          absl::StrCat("SignalWatcher::create: signal ", signal_number,
                       " cannot be watched (SIGKILL and SIGSTOP cannot be blocked; valid "
                       "numbers are 1 to SIGRTMAX)"));
    }
    sigaddset(&watched, signal_number);
  }
  sigset_t previous;
  if (const int error = pthread_sigmask(SIG_BLOCK, &watched, &previous); error != 0) {
    return errno_status(error, "SignalWatcher::create: pthread_sigmask(SIG_BLOCK)");
  }
  sigset_t newly_blocked;
  sigemptyset(&newly_blocked);
  for (int signal_number : signals) {
    if (sigismember(&previous, signal_number) == 0) sigaddset(&newly_blocked, signal_number);
  }
  const int signal_fd = signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    const int error = errno;
    pthread_sigmask(SIG_UNBLOCK, &newly_blocked, nullptr);
    return errno_status(error, "SignalWatcher::create: signalfd");
  }
  // From here on the watcher's destructor undoes everything.
  std::unique_ptr<SignalWatcher> watcher(
      new SignalWatcher(reactor, signal_fd, newly_blocked, std::move(on_signal)));
  absl::StatusOr<Registration> registration = reactor.register_fd(signal_fd, watcher.get());
  if (!registration.ok()) return registration.status();
  watcher->registration_ = *registration;
  return watcher;
}

SignalWatcher::SignalWatcher(Reactor& reactor, int signal_fd, const sigset_t& newly_blocked,
                             SignalCallback on_signal)
    : reactor_(reactor),
      signal_fd_(signal_fd),
      newly_blocked_(newly_blocked),
      creating_thread_(std::this_thread::get_id()),
      on_signal_(std::move(on_signal)) {}

SignalWatcher::~SignalWatcher() {
  if (registration_.valid()) reactor_.deregister(registration_).IgnoreError();
  // Discard what is pending: unblocking it would run its default action (terminate).
  read_signals(/*report=*/false);
  close(signal_fd_);
  if (std::this_thread::get_id() == creating_thread_) {
    pthread_sigmask(SIG_UNBLOCK, &newly_blocked_, nullptr);
  }
}

void SignalWatcher::on_ready(uint32_t events) { read_signals(/*report=*/true); }

void SignalWatcher::read_signals(bool report) {
  signalfd_siginfo info;
  while (read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    if (!report) continue;
    const int signal_number = static_cast<int>(info.ssi_signo);
    last_signal_.store(signal_number, std::memory_order_release);
    signals_received_.fetch_add(1, std::memory_order_acq_rel);
    if (on_signal_) on_signal_(signal_number);
  }
}

}  // namespace asupersync::sched
