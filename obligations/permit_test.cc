// Copyright The Asupersync Authors.
//
// Tests of Permit<T>: the send/commit and abort paths (SPEC 5.1), leaks (SPEC 5.3), move-only
// ownership (SPEC 5.2; the compile-time half is no_compile_test.sh), run-time rejection of
// consuming an empty permit, and use across threads. The sink is a tiny bounded channel that
// counts its slots, so every test can see where the capacity went.

#include "obligations/permit.h"

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/id.h"
#include "core/source_site.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "obligations/ledger.h"

namespace asupersync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr RegionId kRegion(3, 1);

// A bounded channel of strings with `capacity` slots. reserve() sets a slot aside and records
// the obligation; send puts the value in the queue (the slot stays used until pop()); release
// (abort, leak) gives the slot back. Thread-safe.
class SlotChannel final : public PermitSink<std::string> {
 public:
  SlotChannel(size_t capacity, ObligationLedger* ledger) : free_(capacity), ledger_(ledger) {}

  absl::StatusOr<Permit<std::string>> reserve(SourceSite site = SourceSite::current()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_ == 0) return absl::ResourceExhaustedError("no free slot");
    ObligationId id;
    if (ledger_ != nullptr) {
      absl::StatusOr<ObligationId> recorded =
          ledger_->record(ObligationKind::kPermit, "mpsc slot", site);
      if (!recorded.ok()) return recorded.status();
      id = *recorded;
    }
    --free_;
    return Permit<std::string>(this, ledger_, id);
  }

  void commit(std::string value) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_next_commit_) {
      fail_next_commit_ = false;
      throw std::runtime_error("commit failed");
    }
    queue_.push_back(std::move(value));
  }

  void release() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    ++free_;
  }

  std::optional<std::string> pop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return std::nullopt;
    std::string value = std::move(queue_.front());
    queue_.pop_front();
    ++free_;
    return value;
  }

  size_t free_slots() const {
    std::lock_guard<std::mutex> lock(mu_);
    return free_;
  }

  std::vector<std::string> queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<std::string>(queue_.begin(), queue_.end());
  }

  void fail_next_commit() {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_commit_ = true;
  }

 private:
  mutable std::mutex mu_;
  size_t free_;
  std::deque<std::string> queue_;
  bool fail_next_commit_ = false;
  ObligationLedger* const ledger_;
};

// A counting semaphore handing out value-less permits.
class Units final : public PermitSink<void> {
 public:
  explicit Units(size_t units) : free_(units) {}
  Permit<void> acquire(ObligationLedger* ledger) {
    absl::StatusOr<ObligationId> id =
        ledger->record(ObligationKind::kPermit, "unit", SourceSite::current());
    EXPECT_TRUE(id.ok()) << id.status();
    --free_;
    return Permit<void>(this, ledger, id.value_or(ObligationId()));
  }
  void commit() override { ++used_; }
  void release() noexcept override { ++free_; }
  size_t free_ = 0;
  size_t used_ = 0;
};

Permit<std::string> reserve_or_die(SlotChannel& channel) {
  absl::StatusOr<Permit<std::string>> permit = channel.reserve();
  if (!permit.ok()) {
    ADD_FAILURE() << permit.status();
    return Permit<std::string>();
  }
  return *std::move(permit);
}

// SPEC 5.1: send commits the effect synchronously and resolves the obligation as committed.
TEST(PermitTest, SendDeliversAndResolvesCommitted) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(2, &ledger);
  Permit<std::string> permit = reserve_or_die(channel);
  EXPECT_TRUE(permit.valid());
  EXPECT_TRUE(permit.tracked());
  EXPECT_TRUE(permit.id().is_valid());
  EXPECT_EQ(channel.free_slots(), 1u);
  EXPECT_EQ(ledger.pending(), 1u);

  std::move(permit).send("hello");
  EXPECT_FALSE(permit.valid());  // consumed: empty
  EXPECT_FALSE(permit.id().is_valid());
  EXPECT_THAT(channel.queued(), ElementsAre("hello"));
  EXPECT_EQ(channel.free_slots(), 1u);  // the value occupies the slot until received
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.committed(), 1u);
  EXPECT_EQ(channel.pop(), std::optional<std::string>("hello"));
  EXPECT_EQ(channel.free_slots(), 2u);
}

// SPEC 5.1: with capacity reserved, send cannot fail for lack of room even when the channel is
// otherwise full.
TEST(PermitTest, ReservedCapacityIsGuaranteed) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(1, &ledger);
  Permit<std::string> permit = reserve_or_die(channel);
  EXPECT_EQ(channel.reserve().status().code(), absl::StatusCode::kResourceExhausted);
  std::move(permit).send("fits");
  EXPECT_THAT(channel.queued(), ElementsAre("fits"));
}

// SPEC 5.1: abort has no effect and gives the capacity back.
TEST(PermitTest, AbortReturnsCapacityAndSendsNothing) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(1, &ledger);
  Permit<std::string> permit = reserve_or_die(channel);
  EXPECT_EQ(channel.free_slots(), 0u);
  std::move(permit).abort();
  EXPECT_FALSE(permit.valid());
  EXPECT_THAT(channel.queued(), IsEmpty());
  EXPECT_EQ(channel.free_slots(), 1u);
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.aborted(), 1u);
  EXPECT_EQ(ledger.leaked(), 0u);
}

// SPEC 5.3: a permit destroyed unconsumed is a leak: capacity back, nothing delivered, and a
// LeakReport naming the acquire site (file:line) and the region.
TEST(PermitTest, LeakReturnsCapacityAndReportsTheAcquireSite) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(1, &ledger);
  const int acquire_line = __LINE__ + 2;
  {
    absl::StatusOr<Permit<std::string>> permit = channel.reserve();
    ASSERT_TRUE(permit.ok());
    EXPECT_EQ(channel.free_slots(), 0u);
  }
  EXPECT_EQ(channel.free_slots(), 1u);
  EXPECT_THAT(channel.queued(), IsEmpty());
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.leaked(), 1u);
  EXPECT_EQ(ledger.aborted(), 0u);
  const std::vector<LeakReport> leaks = ledger.leaks();
  ASSERT_EQ(leaks.size(), 1u);
  EXPECT_EQ(leaks[0].region, kRegion);
  EXPECT_EQ(leaks[0].record.kind, ObligationKind::kPermit);
  EXPECT_EQ(leaks[0].record.acquired_at.line, acquire_line);
  EXPECT_THAT(leaks[0].record.acquired_at.file, HasSubstr("permit_test.cc"));
  const std::string site = leaks[0].record.acquired_at.to_string();
  EXPECT_THAT(leaks[0].to_string(), HasSubstr("obligation leaked: permit 'mpsc slot' acquired at " +
                                              site + " in region 3#1 was dropped"));
  EXPECT_THAT(site, HasSubstr("permit_test.cc:" + std::to_string(acquire_line)));
}

// SPEC 5.3: kLog prints the leak, with its acquire site, to stderr once.
TEST(PermitTest, LeakUnderLogPolicyIsPrintedOnce) {
  ObligationLedger ledger(kRegion, LeakPolicy::kLog);
  SlotChannel channel(1, &ledger);
  const int acquire_line = __LINE__ + 1;
  absl::StatusOr<Permit<std::string>> permit = channel.reserve();
  ASSERT_TRUE(permit.ok()) << permit.status();
  ::testing::internal::CaptureStderr();
  { Permit<std::string> dropped = *std::move(permit); }
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::string expected = "obligation leaked: permit 'mpsc slot' acquired at ";
  EXPECT_THAT(err, HasSubstr(expected));
  EXPECT_THAT(err, HasSubstr("permit_test.cc:" + std::to_string(acquire_line) + " in region 3#1"));
  EXPECT_EQ(err.find(expected), err.rfind(expected)) << err;
  EXPECT_EQ(channel.free_slots(), 1u);
  EXPECT_EQ(ledger.leaked(), 1u);
}

// SPEC 5.2: moving transfers the obligation; the moved-from permit is empty and destroying it
// is not a leak.
TEST(PermitTest, MoveTransfersTheObligation) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(2, &ledger);
  Permit<std::string> first = reserve_or_die(channel);
  const ObligationId id = first.id();
  Permit<std::string> second = std::move(first);
  EXPECT_FALSE(first.valid());
  EXPECT_TRUE(second.valid());
  EXPECT_EQ(second.id(), id);
  std::vector<Permit<std::string>> held;
  held.push_back(std::move(second));
  std::move(held.back()).send("via vector");
  held.clear();
  EXPECT_EQ(ledger.leaked(), 0u);
  EXPECT_EQ(ledger.committed(), 1u);
  EXPECT_THAT(channel.queued(), ElementsAre("via vector"));
}

// Assigning over a live permit destroys it: a leak, as for any other destruction.
TEST(PermitTest, MoveAssigningOverALivePermitLeaksIt) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(2, &ledger);
  Permit<std::string> a = reserve_or_die(channel);
  Permit<std::string> b = reserve_or_die(channel);
  const ObligationId b_id = b.id();
  EXPECT_EQ(channel.free_slots(), 0u);
  a = std::move(b);
  EXPECT_EQ(channel.free_slots(), 1u);
  EXPECT_EQ(ledger.leaked(), 1u);
  EXPECT_EQ(a.id(), b_id);
  std::move(a).send("b's value");
  EXPECT_EQ(ledger.committed(), 1u);
  EXPECT_EQ(ledger.pending(), 0u);

  Permit<std::string> empty;
  Permit<std::string> c = reserve_or_die(channel);
  c = std::move(empty);  // c's obligation leaks; c is empty now
  EXPECT_FALSE(c.valid());
  EXPECT_EQ(ledger.leaked(), 2u);
}

TEST(PermitTest, DefaultPermitIsEmptyAndInert) {
  Permit<std::string> permit;
  EXPECT_FALSE(permit.valid());
  EXPECT_FALSE(permit.tracked());
  EXPECT_FALSE(permit.id().is_valid());
}

// SPEC 5.1: the value-less permit commits or aborts the same way.
TEST(PermitTest, VoidPermitCommitAndAbort) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Units units(2);
  Permit<void> a = units.acquire(&ledger);
  Permit<void> b = units.acquire(&ledger);
  EXPECT_EQ(units.free_, 0u);
  std::move(a).commit();
  EXPECT_EQ(units.used_, 1u);
  EXPECT_EQ(units.free_, 0u);
  std::move(b).abort();
  EXPECT_EQ(units.free_, 1u);
  { Permit<void> leaked = units.acquire(&ledger); }
  EXPECT_EQ(units.free_, 1u);
  EXPECT_EQ(units.used_, 1u);
  EXPECT_EQ(ledger.committed(), 1u);
  EXPECT_EQ(ledger.aborted(), 1u);
  EXPECT_EQ(ledger.leaked(), 1u);
  EXPECT_EQ(ledger.pending(), 0u);
}

// A permit without a ledger works the same way, with nothing recorded.
TEST(PermitTest, UntrackedPermitStillReturnsCapacity) {
  SlotChannel channel(1, nullptr);
  Permit<std::string> permit = reserve_or_die(channel);
  EXPECT_TRUE(permit.valid());
  EXPECT_FALSE(permit.tracked());
  std::move(permit).send("x");
  EXPECT_EQ(channel.pop(), std::optional<std::string>("x"));
  { Permit<std::string> leaked = reserve_or_die(channel); }
  EXPECT_EQ(channel.free_slots(), 1u);
}

// If the sink's commit throws, the effect did not happen: the permit aborts (capacity back,
// kAborted, not a leak) and the exception propagates.
TEST(PermitTest, ThrowingCommitAbortsAndRethrows) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(1, &ledger);
  Permit<std::string> permit = reserve_or_die(channel);
  channel.fail_next_commit();
  EXPECT_THROW(std::move(permit).send("lost?"), std::runtime_error);
  EXPECT_FALSE(permit.valid());
  EXPECT_EQ(channel.free_slots(), 1u);
  EXPECT_THAT(channel.queued(), IsEmpty());
  EXPECT_EQ(ledger.aborted(), 1u);
  EXPECT_EQ(ledger.leaked(), 0u);
  EXPECT_EQ(ledger.pending(), 0u);
}

// SPEC 3.2, 3.7: the primitive's reserve fails when the ledger refuses the obligation, and no
// capacity is taken.
TEST(PermitTest, ReserveFailsWhenTheLedgerRefuses) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic, 1);
  SlotChannel channel(4, &ledger);
  Permit<std::string> held = reserve_or_die(channel);
  EXPECT_EQ(channel.reserve().status().code(), absl::StatusCode::kResourceExhausted);
  std::move(held).abort();
  ledger.close_admission();
  EXPECT_EQ(channel.reserve().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(channel.free_slots(), 4u);
}

// Run-time check behind the compile-time ones: consuming an empty permit aborts, naming the
// misuse (never undefined behaviour, SPEC 13).
TEST(PermitDeathTest, SendOnAMovedFromPermitAborts) {
  SlotChannel channel(1, nullptr);
  Permit<std::string> permit = reserve_or_die(channel);
  Permit<std::string> taken = std::move(permit);
  EXPECT_DEATH(std::move(permit).send("again"),
               "invariant violated: Permit::send on an empty \\(moved-from or consumed\\) permit");
  std::move(taken).abort();
}

TEST(PermitDeathTest, SendOnAConsumedPermitAborts) {
  SlotChannel channel(1, nullptr);
  Permit<std::string> permit = reserve_or_die(channel);
  Permit<std::string>& alias = permit;  // out of sight of -Wconsumed
  std::move(permit).send("once");
  EXPECT_DEATH(std::move(alias).send("twice"),
               "Permit::send on an empty \\(moved-from or consumed\\) permit");
}

TEST(PermitDeathTest, AbortAndCommitOnEmptyPermitsAbort) {
  Permit<std::string> empty;
  EXPECT_DEATH(std::move(empty).abort(),
               "Permit::abort on an empty \\(moved-from or consumed\\) permit");
  Permit<void> empty_unit;
  EXPECT_DEATH(std::move(empty_unit).commit(),
               "Permit::commit on an empty \\(moved-from or consumed\\) permit");
  EXPECT_DEATH(std::move(empty_unit).abort(),
               "Permit::abort on an empty \\(moved-from or consumed\\) permit");
}

TEST(PermitDeathTest, NullSinkAborts) {
  EXPECT_DEATH({ Permit<int> permit(nullptr, nullptr, ObligationId()); },
               "a Permit is built from a non-null PermitSink");
}

// A live permit's entry must be pending in its ledger; if someone resolved it behind the
// permit's back, consuming the permit aborts naming that invariant instead of continuing.
TEST(PermitDeathTest, EntryResolvedBehindThePermitsBackAborts) {
  EXPECT_DEATH(
      {
        ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
        SlotChannel channel(1, &ledger);
        Permit<std::string> permit = reserve_or_die(channel);
        (void)ledger.resolve(permit.id(), Resolution::kAborted);
        std::move(permit).send("x");
      },
      "invariant violated: a live Permit's obligation is pending in its ledger");
}

// Permits move between threads and are consumed there; the ledger and the sink are shared.
// Runs under TSan.
TEST(PermitTest, PermitsConsumedOnOtherThreadsAddUp) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  SlotChannel channel(kThreads * 2, &ledger);
  std::vector<std::thread> threads;
  std::atomic<int> sent{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Permit<std::string> permit = reserve_or_die(channel);
        // Hand it to a helper thread which consumes it one of three ways.
        std::thread consumer([&sent, t, i, p = std::move(permit)]() mutable {
          switch ((t + i) % 3) {
            case 0:
              std::move(p).send("v");
              sent.fetch_add(1);
              break;
            case 1:
              std::move(p).abort();
              break;
            default:
              break;  // leaked when the lambda is destroyed
          }
        });
        consumer.join();
        if ((t + i) % 3 == 0) (void)channel.pop();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.committed() + ledger.aborted() + ledger.leaked(),
            static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(ledger.committed(), static_cast<uint64_t>(sent.load()));
  EXPECT_EQ(channel.free_slots(), static_cast<size_t>(kThreads * 2));
  EXPECT_THAT(channel.queued(), IsEmpty());
}

}  // namespace
}  // namespace asupersync
