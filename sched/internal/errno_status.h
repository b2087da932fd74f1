// Copyright The Asupersync Authors.
//
// sched/internal/errno_status.h: turns a failed system call's errno into an absl::Status whose
// message says what failed, why (strerror and the errno name), and, for the errors a user can
// do something about (out of file descriptors, out of memory or kernel watches), what to do.
//
// Thread-safety: pure functions (strerror_r/strerrorname_np are thread-safe).
// Lifetime and cancellation: not involved.

#ifndef ASUPERSYNC_SCHED_INTERNAL_ERRNO_STATUS_H_
#define ASUPERSYNC_SCHED_INTERNAL_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace asupersync::sched {

// `operation` names the call and its subject, e.g. "epoll_ctl(EPOLL_CTL_ADD, fd 7)". The code
// is ResourceExhausted for EMFILE, ENFILE, ENOMEM, ENOSPC and EAGAIN; AlreadyExists for EEXIST;
// NotFound for ENOENT; InvalidArgument for EBADF, EINVAL and EPERM; Internal otherwise. `advice`
// (may be empty) is appended to the message.
absl::Status errno_status(int error_number, std::string_view operation,
                          std::string_view advice = {});

}  // namespace asupersync::sched

#endif  // ASUPERSYNC_SCHED_INTERNAL_ERRNO_STATUS_H_
