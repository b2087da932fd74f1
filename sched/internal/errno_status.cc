// Copyright The Asupersync Authors.

#include "sched/internal/errno_status.h"

#include <string.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"

namespace asupersync::sched {

absl::Status errno_status(int error_number, std::string_view operation, std::string_view advice) {
  char buffer[256];
  // GNU strerror_r returns the message (possibly not in `buffer`).
  const char* description = strerror_r(error_number, buffer, sizeof(buffer));
  const char* name = strerrorname_np(error_number);
  std::string message(operation);
  absl::StrAppend(&message, " failed: ", description, " (",
                  name != nullptr ? std::string(name) : absl::StrCat("errno ", error_number), ")");
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (error_number) {
    case EMFILE:
    case ENFILE:
      code = absl::StatusCode::kResourceExhausted;
      absl::StrAppend(&message,
                      "; the process (EMFILE) or the system (ENFILE) is out of file descriptors: "
                      "raise RLIMIT_NOFILE (ulimit -n) or close descriptors");
      break;
    case ENOMEM:
    case ENOSPC:
    case EAGAIN:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case EEXIST:
      code = absl::StatusCode::kAlreadyExists;
      break;
    case ENOENT:
      code = absl::StatusCode::kNotFound;
      break;
    case EBADF:
    case EINVAL:
    case EPERM:
      code = absl::StatusCode::kInvalidArgument;
      break;
    default:
      break;
  }
  if (!advice.empty()) {
    message.append("; ");
    message.append(advice);
  }
  return absl::Status(code, message);
}

}  // namespace asupersync::sched
