// A source location captured at a call site (file and line), used to name where a task was
// spawned or an obligation was acquired in diagnostics and leak reports.
//
// Why not std::source_location: Clang 14 with libstdc++ 12 does not provide it, and both
// compilers support the builtins used here.
//
// Thread-safety: a trivially copyable value. Lifetime: `file` points at a string literal.

#ifndef ASUPERSYNC_CORE_SOURCE_SITE_H_
#define ASUPERSYNC_CORE_SOURCE_SITE_H_

#include <string>

namespace asupersync {

struct SourceSite {
  const char* file = "";
  int line = 0;

  // Used as a default argument, captures the caller's location.
  static constexpr SourceSite current(const char* file = __builtin_FILE(),
                                      int line = __builtin_LINE()) {
    return SourceSite{file, line};
  }

  std::string to_string() const { return std::string(file) + ":" + std::to_string(line); }
};

}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_SOURCE_SITE_H_
