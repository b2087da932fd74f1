// Copyright The Asupersync Authors.

#include "core/outcome.h"

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace asupersync {
namespace {

constexpr std::array<OutcomeKind, 4> kAllKinds = {OutcomeKind::kOk, OutcomeKind::kErr,
                                                  OutcomeKind::kCancelled, OutcomeKind::kPanicked};

CancelReason Reason(CancelKind kind, int64_t time_ns, std::string message) {
  return CancelReason(kind, RegionId(1, 1), std::nullopt, Time::FromNanoseconds(time_ns),
                      std::move(message));
}

PanicInfo Panic(const std::string& what) {
  try {
    throw std::runtime_error(what);
  } catch (...) {
    return PanicInfo::from_current_exception();
  }
}

// An outcome of each kind, with payloads told apart by `tag`.
Outcome<int> Make(OutcomeKind kind, int tag) {
  switch (kind) {
    case OutcomeKind::kOk:
      return Outcome<int>::Ok(tag);
    case OutcomeKind::kErr:
      return Outcome<int>::Err(absl::NotFoundError("err" + std::to_string(tag)));
    case OutcomeKind::kCancelled:
      return Outcome<int>::Cancelled(Reason(CancelKind::kUser, tag, "c" + std::to_string(tag)));
    case OutcomeKind::kPanicked:
      return Outcome<int>::Panicked(Panic("p" + std::to_string(tag)));
  }
  return Outcome<int>::Ok(-1);
}

// SPEC 1.3
TEST(OutcomeTest, SeverityOrder) {
  EXPECT_EQ(severity(OutcomeKind::kOk), 0);
  EXPECT_EQ(severity(OutcomeKind::kErr), 1);
  EXPECT_EQ(severity(OutcomeKind::kCancelled), 2);
  EXPECT_EQ(severity(OutcomeKind::kPanicked), 3);
  EXPECT_EQ(outcome_kind_name(OutcomeKind::kCancelled), "Cancelled");
}

// SPEC 1.3: exactly four states.
TEST(OutcomeTest, FourStates) {
  Outcome<int> ok = Outcome<int>::Ok(42);
  EXPECT_EQ(ok.kind(), OutcomeKind::kOk);
  EXPECT_TRUE(ok.ok());
  EXPECT_FALSE(ok.is_err() || ok.is_cancelled() || ok.is_panicked());
  EXPECT_EQ(ok.value(), 42);
  ok.value() = 43;
  EXPECT_EQ(std::as_const(ok).value(), 43);
  EXPECT_TRUE(ok.to_status().ok());
  EXPECT_TRUE(ok.status().ok());
  EXPECT_EQ(ok.to_string(), "Ok(43)");

  const Outcome<int> err = Outcome<int>::Err(absl::NotFoundError("no key"));
  EXPECT_EQ(err.kind(), OutcomeKind::kErr);
  EXPECT_TRUE(err.is_err());
  EXPECT_FALSE(err.ok());
  EXPECT_EQ(err.status(), absl::NotFoundError("no key"));
  EXPECT_EQ(err.to_status(), absl::NotFoundError("no key"));
  EXPECT_EQ(err.to_string(), "Err(NOT_FOUND: no key)");

  const CancelReason reason = Reason(CancelKind::kTimeout, 12'000'000, "slow");
  const Outcome<int> cancelled = Outcome<int>::Cancelled(reason);
  EXPECT_EQ(cancelled.kind(), OutcomeKind::kCancelled);
  EXPECT_TRUE(cancelled.is_cancelled());
  EXPECT_EQ(cancelled.cancel_reason(), reason);
  EXPECT_EQ(cancelled.to_status(), absl::CancelledError(reason.to_string()));
  EXPECT_EQ(cancelled.status(), cancelled.to_status());
  EXPECT_EQ(cancelled.to_string(), "Cancelled(Timeout at 12ms from region 1#1: 'slow')");

  const Outcome<int> panicked = Outcome<int>::Panicked(Panic("boom"));
  EXPECT_EQ(panicked.kind(), OutcomeKind::kPanicked);
  EXPECT_TRUE(panicked.is_panicked());
  EXPECT_EQ(panicked.panic_info().message, "boom");
  EXPECT_EQ(panicked.to_status(), absl::InternalError("task panicked: boom"));
  EXPECT_EQ(panicked.status(), panicked.to_status());
  EXPECT_EQ(panicked.to_string(), "Panicked(boom)");
}

TEST(OutcomeTest, ErrFromOkStatusIsInternalError) {
  const Outcome<int> o = Outcome<int>::Err(absl::OkStatus());
  EXPECT_FALSE(o.ok());
  EXPECT_TRUE(o.is_err());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(o.status().message(), "Outcome::Err built from an OK status");
  EXPECT_FALSE(Outcome<void>::Err(absl::OkStatus()).to_status().ok());
}

// SPEC 1.3, 2.3: an exception that escapes keeps its exception_ptr and what().
TEST(OutcomeTest, PanicFromThrownException) {
  PanicInfo info;
  try {
    throw std::out_of_range("index 7");
  } catch (...) {
    info = PanicInfo::from_current_exception();
  }
  EXPECT_EQ(info.message, "index 7");
  ASSERT_NE(info.exception, nullptr);
  EXPECT_THROW(std::rethrow_exception(info.exception), std::out_of_range);

  try {
    throw 17;
  } catch (...) {
    info = PanicInfo::from_current_exception();
  }
  EXPECT_EQ(info.message, "unknown exception");
  ASSERT_NE(info.exception, nullptr);
  try {
    std::rethrow_exception(info.exception);
  } catch (int v) {
    EXPECT_EQ(v, 17);
  }

  const PanicInfo none = PanicInfo::from_current_exception();
  EXPECT_EQ(none.exception, nullptr);
  EXPECT_NE(none.message.find("no exception in flight"), std::string::npos);
}

TEST(OutcomeTest, VoidOutcome) {
  const Outcome<void> ok = Outcome<void>::Ok();
  EXPECT_TRUE(ok.ok());
  ok.value();  // Checks the state only.
  EXPECT_TRUE(ok.to_status().ok());
  EXPECT_EQ(ok.to_string(), "Ok()");
  EXPECT_EQ(ok, Outcome<void>::Ok());

  const Outcome<void> err = Outcome<void>::Err(absl::UnavailableError("down"));
  EXPECT_TRUE(err.is_err());
  EXPECT_EQ(err.status(), absl::UnavailableError("down"));
  EXPECT_NE(err, ok);
  EXPECT_TRUE(Outcome<void>::Cancelled(Reason(CancelKind::kUser, 0, "")).is_cancelled());
  EXPECT_TRUE(Outcome<void>::Panicked(Panic("x")).is_panicked());
  EXPECT_EQ(join(ok, err), err);
  static_assert(std::is_same_v<decltype(ok.value()), void>);
}

TEST(OutcomeTest, MoveOnlyValue) {
  Outcome<std::unique_ptr<int>> o = Outcome<std::unique_ptr<int>>::Ok(std::make_unique<int>(5));
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(*o.value(), 5);
  std::unique_ptr<int> taken = std::move(o).value();
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(*taken, 5);

  Outcome<std::unique_ptr<int>> moved = std::move(o);
  EXPECT_TRUE(moved.ok());
  const Outcome<std::unique_ptr<int>> err =
      Outcome<std::unique_ptr<int>>::Err(absl::AbortedError("a"));
  Outcome<std::unique_ptr<int>> joined =
      join(Outcome<std::unique_ptr<int>>::Ok(std::make_unique<int>(1)),
           Outcome<std::unique_ptr<int>>::Ok(std::make_unique<int>(2)));
  EXPECT_EQ(*joined.value(), 1);  // Tie: the left one.
  EXPECT_EQ(err.convert_error<int>().status(), absl::AbortedError("a"));
  EXPECT_TRUE(err.discard_value().is_err());
  static_assert(!std::is_copy_constructible_v<Outcome<std::unique_ptr<int>>>);
}

TEST(OutcomeTest, ValueOfNonPrintableType) {
  struct Opaque {
    int x;
  };
  const Outcome<Opaque> o = Outcome<Opaque>::Ok(Opaque{3});
  EXPECT_EQ(o.value().x, 3);
  EXPECT_EQ(o.to_string(), "Ok(...)");
  EXPECT_EQ(Outcome<bool>::Ok(true).to_string(), "Ok(true)");
  EXPECT_EQ(Outcome<std::string>::Ok("hi").to_string(), "Ok(hi)");
}

TEST(OutcomeTest, ConvertErrorAndDiscardValue) {
  for (OutcomeKind kind : kAllKinds) {
    const Outcome<int> o = Make(kind, 1);
    const Outcome<void> d = o.discard_value();
    EXPECT_EQ(d.kind(), kind);
    EXPECT_EQ(d.to_status(), o.to_status());
    if (kind == OutcomeKind::kOk) continue;
    const Outcome<std::string> s = o.convert_error<std::string>();
    EXPECT_EQ(s.kind(), kind);
    EXPECT_EQ(s.to_status(), o.to_status());
  }
  const Outcome<int> cancelled = Make(OutcomeKind::kCancelled, 4);
  EXPECT_EQ(cancelled.convert_error<double>().cancel_reason(), cancelled.cancel_reason());
  const Outcome<int> panicked = Make(OutcomeKind::kPanicked, 4);
  EXPECT_EQ(panicked.convert_error<void>().panic_info(), panicked.panic_info());
}

// SPEC 1.3: join keeps the more severe; on a tie the left one, except that two Cancelled join
// to the stronger reason. Checked over all 16 kind pairs.
TEST(OutcomeTest, JoinTable) {
  for (OutcomeKind ka : kAllKinds) {
    for (OutcomeKind kb : kAllKinds) {
      SCOPED_TRACE(std::string(outcome_kind_name(ka)) + " + " + std::string(outcome_kind_name(kb)));
      const Outcome<int> a = Make(ka, 1);
      const Outcome<int> b = Make(kb, 2);
      const Outcome<int> j = join(a, b);
      if (severity(ka) > severity(kb)) {
        EXPECT_EQ(j, a);
      } else if (severity(ka) < severity(kb)) {
        EXPECT_EQ(j, b);
      } else if (ka == OutcomeKind::kCancelled) {
        // Same tier (User): the earlier time (a's, 1ns) wins, whatever the order.
        EXPECT_EQ(j.cancel_reason(), a.cancel_reason());
        EXPECT_EQ(join(b, a).cancel_reason(), a.cancel_reason());
      } else {
        EXPECT_EQ(j, a);  // Tie: the left one.
        EXPECT_NE(join(b, a), a);
      }
      EXPECT_EQ(severity(j.kind()), std::max(severity(ka), severity(kb)));
    }
  }
}

// SPEC 1.3, 1.4: two Cancelled outcomes join to Cancelled(strengthen(ra, rb)).
TEST(OutcomeTest, JoinOfTwoCancelledStrengthens) {
  const CancelReason weak = Reason(CancelKind::kUser, 1, "user");
  const CancelReason strong = Reason(CancelKind::kShutdown, 9, "shutdown");
  const auto a = Outcome<std::string>::Cancelled(weak);
  const auto b = Outcome<std::string>::Cancelled(strong);
  EXPECT_EQ(join(a, b).cancel_reason(), strong);
  EXPECT_EQ(join(b, a).cancel_reason(), strong);
  const CancelReason early = Reason(CancelKind::kTimeout, 1, "t");
  const CancelReason late = Reason(CancelKind::kDeadline, 2, "d");
  EXPECT_EQ(join(Outcome<void>::Cancelled(late), Outcome<void>::Cancelled(early)).cancel_reason(),
            early);
  EXPECT_EQ(join(Outcome<void>::Cancelled(early), Outcome<void>::Cancelled(late)).cancel_reason(),
            strengthen(early, late));
}

TEST(OutcomeTest, JoinIsAssociativeOnKinds) {
  for (OutcomeKind a : kAllKinds) {
    for (OutcomeKind b : kAllKinds) {
      for (OutcomeKind c : kAllKinds) {
        // Built once: each Make() of a panic captures a distinct exception.
        const Outcome<int> oa = Make(a, 1);
        const Outcome<int> ob = Make(b, 2);
        const Outcome<int> oc = Make(c, 3);
        EXPECT_EQ(join(join(oa, ob), oc), join(oa, join(ob, oc)));
      }
    }
  }
}

TEST(OutcomeDeathTest, WrongStateAccessAborts) {
  const Outcome<int> err = Outcome<int>::Err(absl::NotFoundError("gone"));
  EXPECT_DEATH((void)err.value(), "Outcome::value\\(\\) requires state Ok, but the outcome is Err");
  EXPECT_DEATH((void)Outcome<int>::Ok(1).cancel_reason(),
               "cancel_reason\\(\\) requires state Cancelled, but the outcome is Ok\\(1\\)");
  EXPECT_DEATH((void)err.panic_info(), "panic_info\\(\\) requires state Panicked");
  EXPECT_DEATH((void)Outcome<int>::Ok(1).convert_error<void>(), "convert_error\\(\\) requires");
  EXPECT_DEATH(Outcome<void>::Cancelled(CancelReason()).value(), "requires state Ok");
}

}  // namespace
}  // namespace asupersync
