// Copyright The Asupersync Authors.
//
// Tests of Lease: the complete and abort paths (SPEC 5.1), leaks (SPEC 5.3), renewal that never
// moves the expiry backwards, move-only ownership (SPEC 5.2; the compile-time half is
// no_compile_test.sh) and run-time rejection of consuming an empty lease (SPEC 13). The holder is
// a tiny pool that counts its free resources, so every test can see where the resource went.

#include "obligations/lease.h"

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/id.h"
#include "core/source_site.h"
#include "core/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "obligations/ledger.h"

namespace asupersync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr RegionId kRegion(3, 1);
constexpr Time kT0 = Time::FromNanoseconds(1'000);

// A pool of `size` interchangeable resources. acquire() lends one as a Lease; on_release takes it
// back and remembers whether the work completed. Thread-safe.
class Pool final : public LeaseHolder {
 public:
  Pool(size_t size, ObligationLedger* ledger) : free_(size), ledger_(ledger) {}

  absl::StatusOr<Lease> acquire(Time expires_at, SourceSite site = SourceSite::current()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_ == 0) return absl::ResourceExhaustedError("pool empty");
    ObligationId id;
    if (ledger_ != nullptr) {
      absl::StatusOr<ObligationId> recorded =
          ledger_->record(ObligationKind::kLease, "db connection", site);
      if (!recorded.ok()) return recorded.status();
      id = *recorded;
    }
    --free_;
    return Lease(this, ledger_, id, expires_at);
  }

  void on_release(bool completed) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    ++free_;
    releases_.push_back(completed);
  }

  size_t free() const {
    std::lock_guard<std::mutex> lock(mu_);
    return free_;
  }
  std::vector<bool> releases() const {
    std::lock_guard<std::mutex> lock(mu_);
    return releases_;
  }

 private:
  mutable std::mutex mu_;
  size_t free_;
  std::vector<bool> releases_;
  ObligationLedger* const ledger_;
};

Lease acquire_or_die(Pool& pool, Time expires_at = kT0) {
  absl::StatusOr<Lease> lease = pool.acquire(expires_at);
  if (!lease.ok()) {
    ADD_FAILURE() << lease.status();
    return Lease();
  }
  return *std::move(lease);
}

// SPEC 5.1: complete means the work is done: the holder is told so and gets the resource back;
// the obligation resolves as completed.
TEST(LeaseTest, CompleteReleasesWithCompletedAndResolvesCompleted) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(1, &ledger);
  Lease lease = acquire_or_die(pool);
  EXPECT_TRUE(lease.valid());
  EXPECT_TRUE(lease.tracked());
  EXPECT_EQ(lease.expires_at(), kT0);
  EXPECT_EQ(pool.free(), 0u);
  EXPECT_EQ(ledger.pending(), 1u);

  std::move(lease).complete();
  EXPECT_FALSE(lease.valid());
  EXPECT_FALSE(lease.id().is_valid());
  EXPECT_EQ(lease.expires_at(), Time::Epoch());
  EXPECT_EQ(pool.free(), 1u);
  EXPECT_THAT(pool.releases(), ElementsAre(true));
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.completed(), 1u);
}

// SPEC 5.1: abort means the work was abandoned: the resource goes back, flagged not completed.
TEST(LeaseTest, AbortReleasesWithoutCompletedAndResolvesAborted) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(1, &ledger);
  Lease lease = acquire_or_die(pool);
  std::move(lease).abort();
  EXPECT_FALSE(lease.valid());
  EXPECT_EQ(pool.free(), 1u);
  EXPECT_THAT(pool.releases(), ElementsAre(false));
  EXPECT_EQ(ledger.aborted(), 1u);
  EXPECT_EQ(ledger.leaked(), 0u);
  EXPECT_EQ(ledger.pending(), 0u);
}

// SPEC 5.3: a lease destroyed unconsumed is a leak: the resource goes back (not completed) and
// the ledger records a report naming the acquire site and the region.
TEST(LeaseTest, LeakReleasesAndReportsTheAcquireSite) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(1, &ledger);
  const int acquire_line = __LINE__ + 2;
  {
    absl::StatusOr<Lease> lease = pool.acquire(kT0);
    ASSERT_TRUE(lease.ok()) << lease.status();
  }
  EXPECT_EQ(pool.free(), 1u);
  EXPECT_THAT(pool.releases(), ElementsAre(false));
  EXPECT_EQ(ledger.leaked(), 1u);
  EXPECT_EQ(ledger.pending(), 0u);
  const std::vector<LeakReport> leaks = ledger.leaks();
  ASSERT_EQ(leaks.size(), 1u);
  EXPECT_EQ(leaks[0].record.kind, ObligationKind::kLease);
  EXPECT_EQ(leaks[0].record.acquired_at.line, acquire_line);
  EXPECT_THAT(leaks[0].to_string(),
              HasSubstr("obligation leaked: lease 'db connection' acquired at "));
  EXPECT_THAT(leaks[0].to_string(),
              HasSubstr("lease_test.cc:" + std::to_string(acquire_line) + " in region 3#1"));
}

// SPEC 5.3: kLog prints the lease's leak to stderr once.
TEST(LeaseTest, LeakUnderLogPolicyIsPrintedOnce) {
  ObligationLedger ledger(kRegion, LeakPolicy::kLog);
  Pool pool(1, &ledger);
  Lease lease = acquire_or_die(pool);
  ::testing::internal::CaptureStderr();
  { Lease dropped = std::move(lease); }
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::string expected = "obligation leaked: lease 'db connection' acquired at ";
  EXPECT_THAT(err, HasSubstr(expected));
  EXPECT_EQ(err.find(expected), err.rfind(expected)) << err;
}

// Renewal pushes the expiry later, never earlier; renewing to the same instant is a no-op.
TEST(LeaseTest, RenewNeverMovesTheExpiryBackwards) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(1, &ledger);
  Lease lease = acquire_or_die(pool, kT0);
  const Time later = kT0 + Duration::Seconds(30);
  EXPECT_TRUE(lease.renew(later).ok());
  EXPECT_EQ(lease.expires_at(), later);
  EXPECT_TRUE(lease.renew(later).ok());
  EXPECT_EQ(lease.expires_at(), later);

  const absl::Status backwards = lease.renew(kT0);
  EXPECT_EQ(backwards.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(backwards.message(), HasSubstr("backwards"));
  EXPECT_THAT(backwards.message(), HasSubstr(lease.id().to_string()));
  EXPECT_EQ(lease.expires_at(), later);  // unchanged

  EXPECT_TRUE(lease.renew(Time::Infinite()).ok());
  EXPECT_EQ(lease.expires_at(), Time::Infinite());
  EXPECT_TRUE(lease.valid());  // renewing is not consuming
  std::move(lease).complete();
  EXPECT_EQ(ledger.completed(), 1u);
}

// SPEC 13: renewing an empty lease is an error, not undefined behaviour.
TEST(LeaseTest, RenewOnAnEmptyLeaseFails) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(1, &ledger);
  Lease lease = acquire_or_die(pool);
  Lease& alias = lease;  // out of sight of -Wconsumed
  std::move(lease).abort();
  const absl::Status status = alias.renew(kT0 + Duration::Seconds(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "Lease::renew on an empty (moved-from or consumed) lease");
  Lease empty;
  EXPECT_EQ(empty.renew(kT0).code(), absl::StatusCode::kFailedPrecondition);
}

// SPEC 5.2: moving transfers the obligation and its expiry; the moved-from lease is empty.
TEST(LeaseTest, MoveTransfersTheObligation) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(2, &ledger);
  Lease first = acquire_or_die(pool, kT0);
  const ObligationId id = first.id();
  Lease second = std::move(first);
  EXPECT_FALSE(first.valid());
  EXPECT_EQ(first.expires_at(), Time::Epoch());
  EXPECT_TRUE(second.valid());
  EXPECT_EQ(second.id(), id);
  EXPECT_EQ(second.expires_at(), kT0);
  std::move(second).complete();
  EXPECT_EQ(ledger.leaked(), 0u);
  EXPECT_EQ(pool.free(), 2u);
}

// Assigning over a live lease destroys it: a leak.
TEST(LeaseTest, MoveAssigningOverALiveLeaseLeaksIt) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(2, &ledger);
  Lease a = acquire_or_die(pool);
  Lease b = acquire_or_die(pool);
  const ObligationId b_id = b.id();
  a = std::move(b);
  EXPECT_EQ(ledger.leaked(), 1u);
  EXPECT_EQ(pool.free(), 1u);
  EXPECT_EQ(a.id(), b_id);
  std::move(a).complete();
  EXPECT_THAT(pool.releases(), ElementsAre(false, true));
  EXPECT_EQ(ledger.pending(), 0u);
}

TEST(LeaseTest, DefaultLeaseIsEmptyAndInert) {
  Lease lease;
  EXPECT_FALSE(lease.valid());
  EXPECT_FALSE(lease.tracked());
  EXPECT_EQ(lease.expires_at(), Time::Epoch());
}

TEST(LeaseTest, UntrackedLeaseStillReleases) {
  Pool pool(1, nullptr);
  Lease lease = acquire_or_die(pool);
  EXPECT_FALSE(lease.tracked());
  std::move(lease).complete();
  { Lease leaked = acquire_or_die(pool); }
  EXPECT_THAT(pool.releases(), ElementsAre(true, false));
  EXPECT_EQ(pool.free(), 1u);
}

// SPEC 3.2: a closing region admits no new leases; a lease already held is still consumed
// normally, and that drains the region's ledger.
TEST(LeaseTest, HeldLeaseDrainsAClosingRegion) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  int drained = 0;
  ledger.set_on_drained([&drained] { ++drained; });
  Pool pool(2, &ledger);
  Lease lease = acquire_or_die(pool);
  EXPECT_FALSE(ledger.close_admission());
  EXPECT_EQ(pool.acquire(kT0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool.free(), 1u);  // the refused acquire took nothing
  std::move(lease).complete();
  EXPECT_EQ(drained, 1);
}

TEST(LeaseDeathTest, ConsumingAnEmptyLeaseAborts) {
  Lease empty;
  EXPECT_DEATH(
      std::move(empty).complete(),
      "invariant violated: Lease::complete on an empty \\(moved-from or consumed\\) lease");
  EXPECT_DEATH(std::move(empty).abort(),
               "invariant violated: Lease::abort on an empty \\(moved-from or consumed\\) lease");
}

TEST(LeaseDeathTest, NullHolderAborts) {
  EXPECT_DEATH({ Lease lease(nullptr, nullptr, ObligationId(), kT0); },
               "a Lease is built from a non-null LeaseHolder");
}

// Leases handed to other threads and consumed there; runs under TSan.
TEST(LeaseTest, LeasesConsumedOnOtherThreadsAddUp) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  Pool pool(kThreads, &ledger);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Lease lease = acquire_or_die(pool);
        std::thread user([t, i, l = std::move(lease)]() mutable {
          EXPECT_TRUE(l.renew(kT0 + Duration::Milliseconds(i)).ok());
          switch ((t + i) % 3) {
            case 0:
              std::move(l).complete();
              break;
            case 1:
              std::move(l).abort();
              break;
            default:
              break;  // leaked when the lambda is destroyed
          }
        });
        user.join();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  constexpr uint64_t kTotal = uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.completed() + ledger.aborted() + ledger.leaked(), kTotal);
  EXPECT_EQ(pool.free(), static_cast<size_t>(kThreads));
  EXPECT_EQ(pool.releases().size(), kTotal);
}

}  // namespace
}  // namespace asupersync
