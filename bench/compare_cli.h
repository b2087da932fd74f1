// The command line shared by the side-by-side benchmark binaries (`compare`, `sync_compare`):
//
//   PROGRAM [--threads K] SCENARIO ARGUMENT...
//
// as the peers' contract asks (../shared/peers/README.md, "Adding the new runtime as a peer").
// Each binary parses the options here and interprets SCENARIO and its arguments itself.
//
// Thread-safety: plain functions of their arguments. Errors are InvalidArgument statuses whose
// message names the bad option or value, for the binary to print before it exits.

#ifndef ASUPERSYNC_BENCH_COMPARE_CLI_H_
#define ASUPERSYNC_BENCH_COMPARE_CLI_H_

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace asupersync::bench {

// The worker count when --threads is not given: the 2-core machine's column in the peers' table.
inline constexpr int kDefaultCompareThreads = 2;
// More workers than this is a typo, not a benchmark on a 2-core machine.
inline constexpr uint64_t kMaxCompareThreads = 1024;

struct CompareCommandLine {
  int threads = kDefaultCompareThreads;
  std::string scenario;                // empty: no scenario given (the binary prints its usage)
  std::vector<std::string> arguments;  // everything after the scenario
};

// A positive decimal integer, e.g. a size. Errors: InvalidArgument "bad <what>: '<text>'".
inline absl::StatusOr<uint64_t> parse_positive_count(absl::string_view text,
                                                     absl::string_view what) {
  const std::string owned(text);
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(owned.c_str(), &end, 10);
  if (owned.empty() || owned[0] == '-' || end != owned.c_str() + owned.size() || errno != 0 ||
      value == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad ", what, ": '", text, "' (expected a positive integer)"));
  }
  return static_cast<uint64_t>(value);
}

// Splits argv into the options (only --threads K) and the scenario with its arguments.
// Errors: InvalidArgument for an unknown option, a missing or bad K.
inline absl::StatusOr<CompareCommandLine> parse_compare_command_line(int argc,
                                                                     const char* const* argv) {
  CompareCommandLine command_line;
  int i = 1;
  while (i < argc && absl::string_view(argv[i]).substr(0, 2) == "--") {
    const absl::string_view option = argv[i];
    if (option != "--threads") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option ", option, " (the only option is --threads K)"));
    }
    if (i + 1 >= argc) return absl::InvalidArgumentError("--threads needs a worker count");
    absl::StatusOr<uint64_t> threads = parse_positive_count(argv[i + 1], "--threads");
    if (!threads.ok()) return threads.status();
    if (*threads > kMaxCompareThreads) {
      return absl::InvalidArgumentError(
          absl::StrCat("--threads ", *threads, " is more than ", kMaxCompareThreads));
    }
    command_line.threads = static_cast<int>(*threads);
    i += 2;
  }
  if (i < argc) command_line.scenario = argv[i++];
  for (; i < argc; ++i) command_line.arguments.emplace_back(argv[i]);
  return command_line;
}

}  // namespace asupersync::bench

#endif  // ASUPERSYNC_BENCH_COMPARE_CLI_H_
