// Copyright The Asupersync Authors.
//
// Tests of ObligationLedger: recording and resolving obligations, each exactly once (SPEC 5.1),
// rejection of unknown, stale and already-resolved ids (SPEC 1.6, 13), leak reports and leak
// policy (SPEC 5.3), admission closing (SPEC 3.2), the max_pending limit (SPEC 3.7), the drain
// notification that lets a region reach quiescence (SPEC 3.3), counted obligations (the same
// rules without an entry each), and concurrent use.

#include "obligations/ledger.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "core/id.h"
#include "core/source_site.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace asupersync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr RegionId kRegion(3, 1);

SourceSite site(int line) { return SourceSite{"foo.cc", line}; }

ObligationId record_or_die(ObligationLedger& ledger, std::string description, int line = 1) {
  absl::StatusOr<ObligationId> id =
      ledger.record(ObligationKind::kPermit, std::move(description), site(line));
  if (!id.ok()) {
    ADD_FAILURE() << id.status();
    return ObligationId();
  }
  return *id;
}

std::vector<std::string> descriptions(const std::vector<ObligationRecord>& records) {
  std::vector<std::string> out;
  for (const ObligationRecord& record : records) out.push_back(record.description);
  return out;
}

// SPEC 5.1: each obligation is resolved exactly once, by one of the paths; the ledger counts
// each path and nothing stays pending.
TEST(ObligationLedgerTest, RecordsAndResolvesEachPath) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  const ObligationId a = record_or_die(ledger, "a");
  const ObligationId b = record_or_die(ledger, "b");
  const ObligationId c = record_or_die(ledger, "c");
  const ObligationId d = record_or_die(ledger, "d");
  EXPECT_EQ(ledger.pending(), 4u);

  EXPECT_TRUE(ledger.resolve(a, Resolution::kCommitted).ok());
  EXPECT_TRUE(ledger.resolve(b, Resolution::kCompleted).ok());
  EXPECT_TRUE(ledger.resolve(c, Resolution::kAborted).ok());
  EXPECT_TRUE(ledger.resolve(d, Resolution::kLeaked).ok());

  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.committed(), 1u);
  EXPECT_EQ(ledger.completed(), 1u);
  EXPECT_EQ(ledger.aborted(), 1u);
  EXPECT_EQ(ledger.leaked(), 1u);
  ASSERT_EQ(ledger.leaks().size(), 1u);
  EXPECT_EQ(ledger.leaks()[0].record.description, "d");
  EXPECT_EQ(ledger.leaks()[0].record.id, d);
}

TEST(ObligationLedgerTest, RecordKeepsWhatWasRecorded) {
  ObligationLedger ledger(kRegion, LeakPolicy::kLog, 8);
  EXPECT_EQ(ledger.region(), kRegion);
  EXPECT_EQ(ledger.policy(), LeakPolicy::kLog);
  EXPECT_EQ(ledger.max_pending(), std::optional<size_t>(8));
  absl::StatusOr<ObligationId> id =
      ledger.record(ObligationKind::kLease, "db connection", site(42));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(id->is_valid());
  const std::vector<ObligationRecord> records = ledger.pending_records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id, *id);
  EXPECT_EQ(records[0].kind, ObligationKind::kLease);
  EXPECT_EQ(records[0].description, "db connection");
  EXPECT_EQ(records[0].acquired_at.to_string(), "foo.cc:42");
  EXPECT_TRUE(ledger.resolve(*id, Resolution::kCompleted).ok());
}

// pending_records is in acquisition order, not slot order: a reused slot sorts last.
TEST(ObligationLedgerTest, PendingRecordsAreInAcquisitionOrder) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  const ObligationId a = record_or_die(ledger, "a");
  const ObligationId b = record_or_die(ledger, "b");
  const ObligationId c = record_or_die(ledger, "c");
  ASSERT_TRUE(ledger.resolve(a, Resolution::kAborted).ok());
  const ObligationId d = record_or_die(ledger, "d");  // reuses a's slot (index 0)
  EXPECT_EQ(d.index(), a.index());
  EXPECT_THAT(descriptions(ledger.pending_records()), ElementsAre("b", "c", "d"));
  for (ObligationId id : {b, c, d}) EXPECT_TRUE(ledger.resolve(id, Resolution::kAborted).ok());
  EXPECT_THAT(ledger.pending_records(), IsEmpty());
}

// SPEC 5.1, 13: a second resolution of the same id is rejected and changes nothing.
TEST(ObligationLedgerTest, DoubleResolveIsRejected) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  const ObligationId a = record_or_die(ledger, "a");
  const ObligationId b = record_or_die(ledger, "b");
  ASSERT_TRUE(ledger.resolve(a, Resolution::kCommitted).ok());
  const absl::Status again = ledger.resolve(a, Resolution::kAborted);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.message(), HasSubstr("obligation " + a.to_string() + " is not pending"));
  EXPECT_THAT(again.message(), HasSubstr("region 3#1"));
  EXPECT_EQ(ledger.committed(), 1u);
  EXPECT_EQ(ledger.aborted(), 0u);
  EXPECT_EQ(ledger.pending(), 1u);
  EXPECT_TRUE(ledger.resolve(b, Resolution::kAborted).ok());
}

// The three forms of description read back the same text wherever a record is read: pending
// records, leak reports and the admission error. A literal is not copied at record time; an
// owned text is freed when its entry resolves (ASan's leak check covers the slot reuse below).
TEST(ObligationLedgerTest, DescriptionFormsReadBackTheirText) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic, /*max_pending=*/5);
  const auto record = [&ledger](ObligationDescription description) {
    absl::StatusOr<ObligationId> id =
        ledger.record(ObligationKind::kPermit, std::move(description), site(7));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(ObligationId());
  };
  const ObligationId literal = record("mpsc slot");
  const ObligationId counted = record(ObligationDescription("semaphore permits").with_count(2));
  const ObligationId owned = record(std::string("row ") + "42");
  const ObligationId owned_counted =
      record(ObligationDescription(std::string("rows")).with_count(3));
  const ObligationId twice = record(ObligationDescription("units").with_count(1).with_count(9));
  EXPECT_THAT(
      descriptions(ledger.pending_records()),
      ElementsAre("mpsc slot", "semaphore permits (2)", "row 42", "rows (3)", "units (1) (9)"));

  const absl::StatusOr<ObligationId> refused = ledger.record(
      ObligationKind::kPermit, ObligationDescription("semaphore permits").with_count(7), site(8));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("'semaphore permits (7)'"));

  EXPECT_TRUE(ledger.resolve(counted, Resolution::kLeaked).ok());
  EXPECT_TRUE(ledger.resolve(owned, Resolution::kLeaked).ok());
  ASSERT_EQ(ledger.leaks().size(), 2u);
  EXPECT_EQ(ledger.leaks()[0].record.description, "semaphore permits (2)");
  EXPECT_EQ(ledger.leaks()[1].record.description, "row 42");
  EXPECT_THAT(ledger.leaks()[0].to_string(), HasSubstr("permit 'semaphore permits (2)'"));

  // The freed slots are reused (most recent first) by entries of another form.
  const ObligationId reuse_owned_slot = record("oneshot slot");
  const ObligationId reuse_counted_slot = record(std::string("dynamic"));
  EXPECT_EQ(reuse_owned_slot.index(), owned.index());
  EXPECT_EQ(reuse_counted_slot.index(), counted.index());
  EXPECT_THAT(descriptions(ledger.pending_records()),
              ElementsAre("mpsc slot", "rows (3)", "units (1) (9)", "oneshot slot", "dynamic"));
  for (ObligationId id : {literal, owned_counted, twice, reuse_owned_slot, reuse_counted_slot}) {
    EXPECT_TRUE(ledger.resolve(id, Resolution::kCompleted).ok());
  }
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.completed(), 5u);
}

// SPEC 1.6: a stale id (its slot reused by a newer obligation) is rejected and does not resolve
// the newer obligation.
TEST(ObligationLedgerTest, StaleIdIsRejected) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  const ObligationId old_id = record_or_die(ledger, "old");
  ASSERT_TRUE(ledger.resolve(old_id, Resolution::kCommitted).ok());
  const ObligationId new_id = record_or_die(ledger, "new");
  ASSERT_EQ(new_id.index(), old_id.index());
  ASSERT_NE(new_id.generation(), old_id.generation());

  const absl::Status stale = ledger.resolve(old_id, Resolution::kLeaked);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.message(), HasSubstr("stale"));
  EXPECT_EQ(ledger.pending(), 1u);
  EXPECT_EQ(ledger.leaked(), 0u);
  EXPECT_THAT(ledger.leaks(), IsEmpty());
  EXPECT_TRUE(ledger.resolve(new_id, Resolution::kCommitted).ok());
}

// SPEC 13: ids that were never issued, including the invalid default id, are errors.
TEST(ObligationLedgerTest, UnknownIdsAreRejected) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  EXPECT_EQ(ledger.resolve(ObligationId(), Resolution::kAborted).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ledger.resolve(ObligationId(7, 1), Resolution::kAborted).code(),
            absl::StatusCode::kFailedPrecondition);
  const ObligationId a = record_or_die(ledger, "a");
  EXPECT_EQ(
      ledger.resolve(ObligationId(a.index(), a.generation() + 1), Resolution::kAborted).code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ledger.pending(), 1u);
  EXPECT_TRUE(ledger.resolve(a, Resolution::kAborted).ok());
}

// SPEC 13: enum values outside the enums are errors, not undefined behaviour.
TEST(ObligationLedgerTest, OutOfRangeEnumsAreRejected) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  EXPECT_EQ(ledger.record(static_cast<ObligationKind>(9), "x", site(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  const ObligationId a = record_or_die(ledger, "a");
  EXPECT_EQ(ledger.resolve(a, static_cast<Resolution>(42)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger.pending(), 1u);  // still pending, still resolvable
  EXPECT_TRUE(ledger.resolve(a, Resolution::kCommitted).ok());
  EXPECT_EQ(obligation_kind_name(static_cast<ObligationKind>(9)), "unknown");
  EXPECT_EQ(resolution_name(static_cast<Resolution>(42)), "unknown");
  EXPECT_EQ(leak_policy_name(static_cast<LeakPolicy>(7)), "unknown");
}

TEST(ObligationLedgerTest, Names) {
  EXPECT_EQ(obligation_kind_name(ObligationKind::kPermit), "permit");
  EXPECT_EQ(obligation_kind_name(ObligationKind::kLease), "lease");
  EXPECT_EQ(resolution_name(Resolution::kCommitted), "committed");
  EXPECT_EQ(resolution_name(Resolution::kCompleted), "completed");
  EXPECT_EQ(resolution_name(Resolution::kAborted), "aborted");
  EXPECT_EQ(resolution_name(Resolution::kLeaked), "leaked");
  EXPECT_EQ(leak_policy_name(LeakPolicy::kPanic), "panic");
  EXPECT_EQ(leak_policy_name(LeakPolicy::kLog), "log");
}

// SPEC 5.3: the leak report names kind, description, acquire site and region.
TEST(ObligationLedgerTest, LeakReportNamesKindDescriptionSiteAndRegion) {
  LeakReport report{ObligationRecord{ObligationId(5, 1), ObligationKind::kPermit, "mpsc slot",
                                     SourceSite{"foo.cc", 12}},
                    kRegion};
  EXPECT_EQ(report.to_string(),
            "obligation leaked: permit 'mpsc slot' acquired at foo.cc:12 in region 3#1 was "
            "dropped without send/commit, complete or abort; it was aborted");
  report.record.kind = ObligationKind::kLease;
  EXPECT_THAT(report.to_string(), HasSubstr("obligation leaked: lease 'mpsc slot'"));
}

// SPEC 5.3: under kLog a leak is printed to stderr, exactly once, when it happens.
TEST(ObligationLedgerTest, LogPolicyPrintsEachLeakOnce) {
  ObligationLedger ledger(kRegion, LeakPolicy::kLog);
  const ObligationId a = record_or_die(ledger, "request body", 77);
  const ObligationId b = record_or_die(ledger, "quiet", 78);
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(ledger.resolve(a, Resolution::kLeaked).ok());
  ASSERT_TRUE(ledger.resolve(b, Resolution::kAborted).ok());  // not a leak: silent
  (void)ledger.leaks();                                       // reading does not print again
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::string expected =
      "obligation leaked: permit 'request body' acquired at foo.cc:77 in region 3#1";
  EXPECT_THAT(err, HasSubstr(expected));
  EXPECT_EQ(err.find(expected), err.rfind(expected)) << err;  // once
  EXPECT_THAT(err, ::testing::Not(HasSubstr("quiet")));
  ASSERT_EQ(ledger.leaks().size(), 1u);
  EXPECT_EQ(ledger.leaks()[0].region, kRegion);
}

// SPEC 5.3: under kPanic the ledger prints nothing and does not abort; it keeps the report for
// the owning region, which turns it into a Panicked outcome.
TEST(ObligationLedgerTest, PanicPolicyRecordsWithoutPrinting) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  const ObligationId a = record_or_die(ledger, "request body", 77);
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(ledger.resolve(a, Resolution::kLeaked).ok());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ASSERT_EQ(ledger.leaks().size(), 1u);
  EXPECT_THAT(ledger.leaks()[0].to_string(), HasSubstr("acquired at foo.cc:77 in region 3#1"));
}

// SPEC 3.2: once the region leaves Open, no new obligation is admitted; existing ones still
// resolve.
TEST(ObligationLedgerTest, CloseAdmissionRejectsNewObligations) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  const ObligationId a = record_or_die(ledger, "a");
  EXPECT_FALSE(ledger.admission_closed());
  EXPECT_FALSE(ledger.close_admission());  // something is pending
  EXPECT_TRUE(ledger.admission_closed());

  const absl::StatusOr<ObligationId> late = ledger.record(ObligationKind::kPermit, "b", site(2));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(late.status().message(), "region 3#1 is closing; it admits no new obligations");
  EXPECT_EQ(ledger.pending(), 1u);

  EXPECT_TRUE(ledger.resolve(a, Resolution::kCommitted).ok());
  EXPECT_TRUE(ledger.close_admission());  // idempotent; now drained
}

TEST(ObligationLedgerTest, CloseAdmissionOnAnEmptyLedgerReportsDrained) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  int drained = 0;
  ledger.set_on_drained([&drained] { ++drained; });
  EXPECT_TRUE(ledger.close_admission());
  EXPECT_EQ(drained, 0);  // documented: the return value says it, the callback does not
}

// SPEC 3.7: over the limit, record fails at once with ResourceExhausted naming the limit.
TEST(ObligationLedgerTest, MaxPendingIsEnforced) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic, 2);
  const ObligationId a = record_or_die(ledger, "a");
  const ObligationId b = record_or_die(ledger, "b");
  const absl::StatusOr<ObligationId> third = ledger.record(ObligationKind::kPermit, "c", site(9));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("max_obligations = 2"));
  EXPECT_THAT(third.status().message(), HasSubstr("region 3#1"));
  EXPECT_THAT(third.status().message(), HasSubstr("'c' acquired at foo.cc:9"));
  EXPECT_EQ(ledger.pending(), 2u);

  ASSERT_TRUE(ledger.resolve(a, Resolution::kAborted).ok());  // room again
  const ObligationId c = record_or_die(ledger, "c");
  for (ObligationId id : {b, c}) EXPECT_TRUE(ledger.resolve(id, Resolution::kAborted).ok());
}

TEST(ObligationLedgerTest, MaxPendingZeroAdmitsNothing) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic, 0);
  EXPECT_EQ(ledger.record(ObligationKind::kPermit, "a", site(1)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// SPEC 3.3: the drain callback fires exactly once, when pending() reaches zero with admission
// closed, and not when it reaches zero while the region is still open.
TEST(ObligationLedgerTest, OnDrainedFiresOnceWhenClosedAndEmpty) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  int drained = 0;
  ledger.set_on_drained([&drained] { ++drained; });

  const ObligationId open_one = record_or_die(ledger, "open");
  ASSERT_TRUE(ledger.resolve(open_one, Resolution::kCommitted).ok());
  EXPECT_EQ(drained, 0);  // zero while Open: not a drain

  const ObligationId a = record_or_die(ledger, "a");
  const ObligationId b = record_or_die(ledger, "b");
  EXPECT_FALSE(ledger.close_admission());
  ASSERT_TRUE(ledger.resolve(a, Resolution::kCompleted).ok());
  EXPECT_EQ(drained, 0);  // one still pending
  ASSERT_TRUE(ledger.resolve(b, Resolution::kLeaked).ok());
  EXPECT_EQ(drained, 1);

  // Nothing afterwards fires it again.
  EXPECT_FALSE(ledger.resolve(b, Resolution::kAborted).ok());
  EXPECT_TRUE(ledger.close_admission());
  EXPECT_FALSE(ledger.record(ObligationKind::kPermit, "late", site(1)).ok());
  EXPECT_EQ(drained, 1);
}

// The callback runs with the ledger's lock released: it may call back into the ledger.
TEST(ObligationLedgerTest, OnDrainedMayCallIntoTheLedger) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  size_t pending_seen = 99;
  bool closed_seen = false;
  ledger.set_on_drained([&] {
    pending_seen = ledger.pending();
    closed_seen = ledger.admission_closed();
    ledger.set_on_drained(nullptr);  // replacing the running callback is allowed too
  });
  const ObligationId a = record_or_die(ledger, "a");
  ledger.close_admission();
  ASSERT_TRUE(ledger.resolve(a, Resolution::kCommitted).ok());
  EXPECT_EQ(pending_seen, 0u);
  EXPECT_TRUE(closed_seen);
}

// resolve touches nothing after the callback, so the callback may destroy the ledger (as a
// region that closes on drain might). ASan checks the claim.
TEST(ObligationLedgerTest, OnDrainedMayDestroyTheLedger) {
  auto ledger = std::make_unique<ObligationLedger>(kRegion, LeakPolicy::kLog);
  ObligationLedger* raw = ledger.get();
  raw->set_on_drained([&ledger] { ledger.reset(); });
  const ObligationId a = record_or_die(*raw, "a");
  raw->close_admission();
  EXPECT_TRUE(raw->resolve(a, Resolution::kCommitted).ok());
  EXPECT_EQ(ledger, nullptr);
}

// SPEC 5.3, 3.3: destroying a ledger that still has pending entries is an invariant violation
// (tokens would resolve into freed memory); it aborts naming the oldest pending obligation.
TEST(ObligationLedgerDeathTest, DestroyingWithPendingEntriesAborts) {
  EXPECT_DEATH(
      {
        ObligationLedger ledger(kRegion, LeakPolicy::kLog);
        (void)ledger.record(ObligationKind::kPermit, "first", site(5));
        (void)ledger.record(ObligationKind::kLease, "second", site(6));
      },
      "invariant violated: an ObligationLedger outlives every token that refers to it; the "
      "ledger of region 3#1 was destroyed with 2 pending obligation\\(s\\), the oldest permit "
      "'first' acquired at foo.cc:5");
}

TEST(ObligationLedgerDeathTest, ResolveOrDieAbortsNamingTheToken) {
  ObligationLedger ledger(kRegion, LeakPolicy::kLog);
  EXPECT_DEATH(obligations_internal::resolve_or_die(&ledger, ObligationId(4, 1),
                                                    Resolution::kCommitted, "Permit"),
               "invariant violated: a live Permit's obligation is pending in its ledger until the "
               "token is consumed; resolving it as committed failed: FAILED_PRECONDITION");
  // An untracked token has nothing to resolve.
  obligations_internal::resolve_or_die(nullptr, ObligationId(4, 1), Resolution::kCommitted,
                                       "Permit");
}

// Concurrency (runs under TSan): several threads record and resolve through every path while
// another reads; the totals add up and nothing stays pending.
TEST(ObligationLedgerTest, ConcurrentRecordAndResolveAddUp) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      const size_t pending = ledger.pending();
      EXPECT_LE(pending, static_cast<size_t>(kThreads));
      EXPECT_LE(ledger.pending_records().size(), static_cast<size_t>(kThreads));
      (void)ledger.leaks();
      (void)ledger.committed();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&ledger, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<ObligationId> id = ledger.record(ObligationKind::kPermit, "w", site(t));
        ASSERT_TRUE(id.ok()) << id.status();
        ASSERT_TRUE(ledger.resolve(*id, static_cast<Resolution>((i + t) % 4)).ok());
        ASSERT_FALSE(ledger.resolve(*id, Resolution::kAborted).ok());  // exactly once
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  stop.store(true);
  reader.join();

  constexpr uint64_t kTotal = uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.committed() + ledger.completed() + ledger.aborted() + ledger.leaked(), kTotal);
  EXPECT_EQ(ledger.committed(), kTotal / 4);
  EXPECT_EQ(ledger.completed(), kTotal / 4);
  EXPECT_EQ(ledger.aborted(), kTotal / 4);
  EXPECT_EQ(ledger.leaked(), kTotal / 4);
  EXPECT_EQ(ledger.leaks().size(), kTotal / 4);
}

// Concurrency (runs under TSan): admission closes while threads are recording. Every admitted
// obligation is resolved, records after the close fail, and the drain callback fires exactly
// once unless close_admission already found the ledger empty (SPEC 3.2, 3.3).
TEST(ObligationLedgerTest, ConcurrentCloseDrainsExactlyOnce) {
  constexpr int kThreads = 6;
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  std::atomic<int> drained{0};
  ledger.set_on_drained([&drained] { drained.fetch_add(1); });
  std::atomic<uint64_t> admitted{0};
  std::atomic<int> started{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&] {
      started.fetch_add(1);
      for (;;) {
        absl::StatusOr<ObligationId> id = ledger.record(ObligationKind::kLease, "w", site(1));
        if (!id.ok()) {
          EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition);
          return;
        }
        admitted.fetch_add(1);
        std::this_thread::yield();
        ASSERT_TRUE(ledger.resolve(*id, Resolution::kCompleted).ok());
      }
    });
  }
  while (started.load() < kThreads || admitted.load() < 500) std::this_thread::yield();
  const bool was_empty = ledger.close_admission();
  for (std::thread& worker : workers) worker.join();

  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.completed(), admitted.load());
  EXPECT_EQ(drained.load(), was_empty ? 0 : 1);
}

// Counted obligations (record_counted): pending like entries, resolved with one CAS each, not
// listed by pending_records; the totals count them.
TEST(ObligationLedgerTest, CountedObligationsArePendingUntilResolved) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  ASSERT_TRUE(ledger.record_counted(ObligationKind::kPermit, "permits", site(1)).ok());
  ASSERT_TRUE(ledger.try_record_counted());
  ASSERT_TRUE(ledger.try_record_counted());
  const ObligationId entry = record_or_die(ledger, "entry");
  EXPECT_EQ(ledger.pending(), 4u);
  EXPECT_THAT(descriptions(ledger.pending_records()), ElementsAre("entry"));

  EXPECT_TRUE(ledger.resolve_counted(Resolution::kCompleted).ok());
  EXPECT_TRUE(ledger.resolve_counted(Resolution::kCompleted).ok());
  EXPECT_TRUE(ledger.resolve_counted(Resolution::kAborted).ok());
  EXPECT_EQ(ledger.pending(), 1u);
  EXPECT_EQ(ledger.completed(), 2u);
  EXPECT_EQ(ledger.aborted(), 1u);

  // None left: resolving one more is refused and changes nothing.
  const absl::Status extra = ledger.resolve_counted(Resolution::kCompleted);
  EXPECT_EQ(extra.code(), absl::StatusCode::kFailedPrecondition) << extra;
  EXPECT_THAT(extra.message(), HasSubstr("no counted obligation is pending in region 3#1"));
  // A leak goes through leak_counted, which carries the record.
  EXPECT_EQ(ledger.resolve_counted(Resolution::kLeaked).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger.completed(), 2u);
  EXPECT_TRUE(ledger.resolve(entry, Resolution::kCommitted).ok());
  EXPECT_EQ(ledger.pending(), 0u);
}

// SPEC 5.3: a leaked counted obligation is reported with the token's description and acquire
// site, like an entry.
TEST(ObligationLedgerTest, CountedLeakIsReportedWithTheTokensSite) {
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  ASSERT_TRUE(ledger.try_record_counted());
  ASSERT_TRUE(ledger
                  .leak_counted(ObligationKind::kPermit,
                                ObligationDescription("semaphore permits").with_count(2), site(7))
                  .ok());
  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.leaked(), 1u);
  ASSERT_EQ(ledger.leaks().size(), 1u);
  EXPECT_EQ(ledger.leaks()[0].to_string(),
            "obligation leaked: permit 'semaphore permits (2)' acquired at foo.cc:7 in region 3#1 "
            "was dropped without send/commit, complete or abort; it was aborted");
  EXPECT_FALSE(ledger.leak_counted(ObligationKind::kPermit, "semaphore permits", site(8)).ok());
  EXPECT_EQ(ledger.leaked(), 1u);
}

// SPEC 3.2, 3.7: counted obligations obey admission closing and count toward the limit.
TEST(ObligationLedgerTest, CountedObligationsObeyAdmissionAndTheLimit) {
  ObligationLedger limited(kRegion, LeakPolicy::kPanic, /*max_pending=*/2);
  const ObligationId entry = record_or_die(limited, "entry");
  EXPECT_FALSE(limited.try_record_counted());  // a limit is checked under the lock
  ASSERT_TRUE(limited.record_counted(ObligationKind::kPermit, "permits", site(1)).ok());
  const absl::Status full = limited.record_counted(ObligationKind::kPermit, "permits", site(2));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_THAT(full.message(), HasSubstr("already has 2 pending obligations"));
  EXPECT_EQ(limited.record(ObligationKind::kPermit, "entry", site(3)).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(limited.resolve_counted(Resolution::kCompleted).ok());
  EXPECT_TRUE(limited.resolve(entry, Resolution::kCompleted).ok());

  ObligationLedger closing(kRegion, LeakPolicy::kPanic);
  EXPECT_TRUE(closing.close_admission());
  EXPECT_FALSE(closing.try_record_counted());
  EXPECT_EQ(closing.record_counted(ObligationKind::kPermit, "permits", site(1)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(closing.pending(), 0u);
}

// SPEC 3.3: a closing ledger drains once, when the last of its entries and counted obligations
// is resolved, whichever kind is last.
TEST(ObligationLedgerTest, CountedObligationsDrainOnceWithEntries) {
  for (const bool counted_last : {true, false}) {
    ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
    int drained = 0;
    ledger.set_on_drained([&drained] { ++drained; });
    const ObligationId entry = record_or_die(ledger, "entry");
    ASSERT_TRUE(ledger.try_record_counted());
    ASSERT_TRUE(ledger.try_record_counted());
    EXPECT_FALSE(ledger.close_admission());
    ASSERT_TRUE(ledger.resolve_counted(Resolution::kCompleted).ok());
    if (counted_last) {
      ASSERT_TRUE(ledger.resolve(entry, Resolution::kCompleted).ok());
    }
    EXPECT_EQ(drained, 0);
    ASSERT_TRUE(ledger.resolve_counted(Resolution::kCompleted).ok());
    EXPECT_EQ(drained, counted_last ? 1 : 0);
    if (!counted_last) {
      ASSERT_TRUE(ledger.resolve(entry, Resolution::kCompleted).ok());
    }
    EXPECT_EQ(drained, 1);
    EXPECT_EQ(ledger.completed(), 3u);
  }
}

TEST(ObligationLedgerDeathTest, DestroyingWithPendingCountedObligationsAborts) {
  EXPECT_DEATH(
      {
        ObligationLedger ledger(kRegion, LeakPolicy::kLog);
        (void)ledger.try_record_counted();
      },
      "invariant violated: an ObligationLedger outlives every token that refers to it; the "
      "ledger of region 3#1 was destroyed with 1 pending counted obligation");
}

// Concurrency (runs under TSan): threads record and resolve counted obligations and entries
// while admission closes; the totals add up and the drain callback fires exactly once unless
// close_admission already found the ledger empty.
TEST(ObligationLedgerTest, ConcurrentCountedCloseDrainsExactlyOnce) {
  constexpr int kThreads = 6;
  ObligationLedger ledger(kRegion, LeakPolicy::kPanic);
  std::atomic<int> drained{0};
  ledger.set_on_drained([&drained] { drained.fetch_add(1); });
  std::atomic<uint64_t> admitted{0};
  std::atomic<int> started{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      started.fetch_add(1);
      for (;;) {
        if (t % 2 == 0) {
          const absl::Status recorded =
              ledger.record_counted(ObligationKind::kPermit, "counted", site(1));
          if (!recorded.ok()) {
            EXPECT_EQ(recorded.code(), absl::StatusCode::kFailedPrecondition);
            return;
          }
          admitted.fetch_add(1);
          std::this_thread::yield();
          ASSERT_TRUE(ledger.resolve_counted(Resolution::kCompleted).ok());
        } else {
          absl::StatusOr<ObligationId> id = ledger.record(ObligationKind::kLease, "w", site(1));
          if (!id.ok()) {
            EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition);
            return;
          }
          admitted.fetch_add(1);
          std::this_thread::yield();
          ASSERT_TRUE(ledger.resolve(*id, Resolution::kCompleted).ok());
        }
      }
    });
  }
  while (started.load() < kThreads || admitted.load() < 500) std::this_thread::yield();
  const bool was_empty = ledger.close_admission();
  for (std::thread& worker : workers) worker.join();

  EXPECT_EQ(ledger.pending(), 0u);
  EXPECT_EQ(ledger.completed(), admitted.load());
  EXPECT_EQ(drained.load(), was_empty ? 0 : 1);
}

}  // namespace
}  // namespace asupersync
