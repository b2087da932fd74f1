// Copyright The Asupersync Authors.
//
// Input of core/no_compile_test.sh (not built by Bazel). Without a CASE_* macro this file is
// correct use of the compile-time capability views (CxView / CxWith, core/cx.h) and must compile;
// with exactly one CASE_* macro defined it contains exactly one misuse: using a member whose
// capability the view lacks, or widening a view. Each must be rejected (SPEC 2.4). Keeping every
// case next to the correct baseline means a case cannot "fail" for an unrelated reason unnoticed.

#include <string>

#include "absl/status/status.h"
#include "core/capabilities.h"
#include "core/cx.h"
#include "core/task.h"
#include "core/time.h"

namespace {

using asupersync::Capability;
using asupersync::Cx;
using asupersync::CxWith;
using asupersync::Duration;
using asupersync::Task;

Task<void> child(Cx&) { co_return; }

// Correct use: every member used here is allowed by the view's capabilities.
Task<void> allowed(Cx& cx) {
  CxWith<Capability::kSpawn, Capability::kTime> spawn_and_time(cx);
  (void)spawn_and_time.spawn("child", child);
  absl::Status slept = co_await spawn_and_time.sleep(Duration::Milliseconds(1));
  (void)slept;
  (void)spawn_and_time.now();
  CxWith<Capability::kRandom> random_only(cx);
  (void)random_only.random_u64();
  // Cancellation points need no capability.
  absl::Status checked = co_await random_only.checkpoint();
  (void)checked;
  // A view narrows further by construction from its runtime context.
  CxWith<Capability::kTime> time_only(spawn_and_time.cx());
  (void)time_only.now();
}

#if defined(CASE_SPAWN_WITHOUT_SPAWN)
// (a) No Spawn capability: the view has no spawn member.
Task<void> misuse(Cx& cx) {
  CxWith<Capability::kTime> time_only(cx);
  (void)time_only.spawn("child", child);
  co_return;
}
#endif

#if defined(CASE_SPAWN_WITHOUT_ANY_CAPABILITY)
// (a) The empty view: nothing but cancellation points.
Task<void> misuse(Cx& cx) {
  CxWith<> nothing(cx);
  (void)nothing.spawn("child", child);
  co_return;
}
#endif

#if defined(CASE_SLEEP_WITHOUT_TIME)
// (b) No Time capability: the view has no sleep member.
Task<void> misuse(Cx& cx) {
  CxWith<Capability::kSpawn, Capability::kIo> spawn_and_io(cx);
  absl::Status slept = co_await spawn_and_io.sleep(Duration::Milliseconds(1));
  (void)slept;
}
#endif

#if defined(CASE_NOW_WITHOUT_TIME)
// (b) No Time capability: no clock either.
Task<void> misuse(Cx& cx) {
  CxWith<Capability::kSpawn> spawn_only(cx);
  (void)spawn_only.now();
  co_return;
}
#endif

#if defined(CASE_RANDOM_WITHOUT_RANDOM)
// (c) No Random capability: no entropy.
Task<void> misuse(Cx& cx) {
  CxWith<Capability::kTime> time_only(cx);
  (void)time_only.random_u64();
  co_return;
}
#endif

#if defined(CASE_WIDEN_VIEW)
// (d) Attenuation only narrows: a narrow view does not convert to a wider one.
Task<void> misuse(Cx& cx) {
  CxWith<Capability::kTime> time_only(cx);
  CxWith<Capability::kSpawn, Capability::kTime> widened = time_only;
  (void)widened;
  co_return;
}
#endif

}  // namespace

int main() {
  Cx cx;
  Task<void> correct = allowed(cx);
  (void)correct;
#if defined(CASE_SPAWN_WITHOUT_SPAWN) || defined(CASE_SPAWN_WITHOUT_ANY_CAPABILITY) || \
    defined(CASE_SLEEP_WITHOUT_TIME) || defined(CASE_NOW_WITHOUT_TIME) ||              \
    defined(CASE_RANDOM_WITHOUT_RANDOM) || defined(CASE_WIDEN_VIEW)
  Task<void> wrong = misuse(cx);
  (void)wrong;
#endif
  return 0;
}
