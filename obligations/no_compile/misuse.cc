// Copyright The Asupersync Authors.
//
// Input of obligations/no_compile_test.sh (not built by Bazel). Without a CASE_* macro this file
// is correct usage of the tokens and must compile cleanly; with exactly one CASE_* macro defined
// it contains exactly one misuse, which must be rejected (SPEC 5.2). Keeping every case next to
// the correct baseline means a case cannot "fail" for an unrelated reason unnoticed.

#include <utility>

#include "core/id.h"
#include "core/time.h"
#include "obligations/lease.h"
#include "obligations/ledger.h"
#include "obligations/permit.h"

namespace {

using asupersync::Lease;
using asupersync::LeaseHolder;
using asupersync::ObligationId;
using asupersync::Permit;
using asupersync::PermitSink;
using asupersync::Time;

class Sink final : public PermitSink<int> {
 public:
  void commit(int value) override { last = value; }
  void release() noexcept override {}
  int last = 0;
};

class VoidSink final : public PermitSink<void> {
 public:
  void commit() override {}
  void release() noexcept override {}
};

class Holder final : public LeaseHolder {
 public:
  void on_release(bool) noexcept override {}
};

Permit<int> reserve(Sink& sink) { return Permit<int>(&sink, nullptr, ObligationId()); }

}  // namespace

int main() {
  Sink sink;
  VoidSink void_sink;
  Holder holder;

  // Correct usage: every token consumed exactly once through an rvalue.
  Permit<int> permit = reserve(sink);
  std::move(permit).send(1);
  Permit<int> aborted = reserve(sink);
  std::move(aborted).abort();
  Permit<void> unit(&void_sink, nullptr, ObligationId());
  std::move(unit).commit();
  Lease lease(&holder, nullptr, ObligationId(), Time::Epoch());
  (void)lease.renew(Time::Infinite());
  std::move(lease).complete();

#if defined(CASE_COPY_PERMIT)
  // (a) Permits are move-only.
  Permit<int> original = reserve(sink);
  Permit<int> copy = original;
  std::move(copy).send(2);
  std::move(original).send(3);
#endif

#if defined(CASE_SEND_ON_LVALUE)
  // (b) Consuming members are rvalue-qualified: write std::move(lvalue).send(v).
  Permit<int> lvalue = reserve(sink);
  lvalue.send(2);
#endif

#if defined(CASE_SEND_ON_CONST)
  // (c) A const permit cannot be consumed.
  const Permit<int> constant = reserve(sink);
  std::move(constant).send(2);
#endif

#if defined(CASE_COMPLETE_LEASE_ON_LVALUE)
  // (b) for Lease.
  Lease held(&holder, nullptr, ObligationId(), Time::Epoch());
  held.complete();
#endif

#if defined(CASE_COPY_LEASE)
  // (a) for Lease.
  Lease held(&holder, nullptr, ObligationId(), Time::Epoch());
  Lease copy = held;
  std::move(copy).abort();
  std::move(held).abort();
#endif

#if defined(CASE_DISCARD_PERMIT)
  // [[nodiscard]]: a reserved permit that is dropped on the floor (checked with
  // -Werror=unused-result).
  reserve(sink);
#endif

#if defined(CASE_SEND_AFTER_SEND)
  // Use after consume of a local: Clang's -Wconsumed (checked with -Werror=consumed).
  Permit<int> twice = reserve(sink);
  std::move(twice).send(2);
  std::move(twice).send(3);
#endif

  return sink.last == 1 ? 0 : 1;
}
