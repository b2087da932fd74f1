// IoSource on the production runtime: readiness waits, reads and writes through a pipe, and the
// cancellation contract of a readiness wait (SPEC 4.2, 6.5).

#include "sched/io.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "lab/lab_runtime.h"
#include "sched/runtime.h"

namespace asupersync::sched {
namespace {

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2] = {-1, -1};
};

RuntimeOptions two_workers() {
  RuntimeOptions options;
  options.workers = 2;
  options.leak_policy = LeakPolicy::kPanic;
  return options;
}

// SPEC 6.5: a reader parked on an empty pipe is woken by the writer's bytes.
TEST(IoSourceTest, ReaderWakesWhenWriterWrites) {
  Pipe pipe;
  Runtime runtime(two_workers());
  auto outcome = runtime.run([&pipe](Cx& cx) -> Task<std::string> {
    absl::StatusOr<IoSource> reader = IoSource::open(cx, pipe.fds[0]);
    absl::StatusOr<IoSource> writer = IoSource::open(cx, pipe.fds[1]);
    EXPECT_TRUE(reader.ok()) << reader.status();
    EXPECT_TRUE(writer.ok()) << writer.status();
    auto write_later = cx.spawn("writer", [&writer](Cx& c) -> Task<void> {
      (void)co_await c.sleep(Duration::Milliseconds(2));
      const char message[] = "hello";
      auto bytes = std::as_bytes(std::span(message, 5));
      absl::StatusOr<size_t> written = co_await writer->write_some(c, bytes);
      EXPECT_TRUE(written.ok()) << written.status();
    });
    std::array<std::byte, 16> buffer;
    absl::StatusOr<size_t> n = co_await reader->read_some(cx, buffer);
    EXPECT_TRUE(n.ok()) << n.status();
    (void)co_await write_later->join(cx);
    co_return std::string(reinterpret_cast<const char*>(buffer.data()), n.value_or(0));
  });
  ASSERT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcome.value(), "hello");
}

// SPEC 4.2, 6.5: a cancelled readiness wait consumes nothing: bytes written afterwards are all
// there for the next read.
TEST(IoSourceTest, CancelledReadConsumesNothing) {
  Pipe pipe;
  Runtime runtime(two_workers());
  auto outcome = runtime.run([&pipe](Cx& cx) -> Task<std::string> {
    absl::StatusOr<IoSource> reader = IoSource::open(cx, pipe.fds[0]);
    EXPECT_TRUE(reader.ok());
    auto waiting = cx.spawn("reader", [&reader](Cx& c) -> Task<absl::Status> {
      std::array<std::byte, 16> buffer;
      absl::StatusOr<size_t> n = co_await reader->read_some(c, buffer);
      co_return n.status();
    });
    (void)co_await cx.sleep(Duration::Milliseconds(2));
    waiting->cancel("stop reading");
    Outcome<absl::Status> joined = co_await waiting->join(cx);
    EXPECT_TRUE(joined.is_cancelled()) << joined.to_string();
    EXPECT_EQ(::write(pipe.fds[1], "abc", 3), 3);
    std::array<std::byte, 16> buffer;
    absl::StatusOr<size_t> n = co_await reader->read_some(cx, buffer);
    EXPECT_TRUE(n.ok()) << n.status();
    co_return std::string(reinterpret_cast<const char*>(buffer.data()), n.value_or(0));
  });
  // The reader was cancelled through its handle: the region reports Cancelled.
  ASSERT_TRUE(outcome.is_cancelled()) << outcome.to_string();
}

// SPEC 13: I/O on an executor without a reactor is a clear error, not a crash.
TEST(IoSourceTest, LabHasNoReactor) {
  Pipe pipe;
  lab::LabRuntime lab;
  auto outcome = lab.run([&pipe](Cx& cx) -> Task<absl::Status> {
    absl::StatusOr<IoSource> source = IoSource::open(cx, pipe.fds[0]);
    co_return source.status();
  });
  ASSERT_TRUE(outcome.is_err());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(outcome.status().message().find("production runtime"), std::string::npos);
}

// SPEC 2.4: without the Io capability, open() is PermissionDenied.
TEST(IoSourceTest, NeedsIoCapability) {
  Pipe pipe;
  Runtime runtime(two_workers());
  auto outcome = runtime.run([&pipe](Cx& cx) -> Task<absl::Status> {
    Cx narrowed = cx.restrict(Capabilities(Capability::kTime) | Capability::kSpawn);
    co_return IoSource::open(narrowed, pipe.fds[0]).status();
  });
  ASSERT_TRUE(outcome.is_err());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace asupersync::sched
