// Recording the obligations //sync hands out (mpsc and oneshot permits, semaphore permits) in
// the ledger of the reserving task's region (SPEC 5.3, 5.4). Internal to //sync.
//
// Thread-safety: the ledger is thread-safe; never call these with a primitive's lock held (a
// resolve may run the region's drain callback, which takes the region's lock).

#ifndef ASUPERSYNC_SYNC_INTERNAL_OBLIGATION_H_
#define ASUPERSYNC_SYNC_INTERNAL_OBLIGATION_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cx.h"
#include "core/region.h"
#include "core/source_site.h"
#include "obligations/ledger.h"

namespace asupersync::sync_internal {

struct RecordedObligation {
  ObligationLedger* ledger;
  ObligationId id;
};

// The error record_permit returns when the ledger refuses: `what` prefixes the ledger's message.
// Out of line: building it allocates, and the recording path stays small without it.
[[gnu::noinline]] inline absl::Status permit_refused(std::string_view what,
                                                     const absl::Status& why) {
  return absl::Status(
      why.code(), std::string(what) + ": cannot record the permit: " + std::string(why.message()));
}

// Records a permit obligation in `cx`'s region. Fails (SPEC 3.2, 3.7) when the region no
// longer admits obligations or is over its limit; `what` prefixes the message.
inline absl::StatusOr<RecordedObligation> record_permit(Cx& cx, std::string_view what,
                                                        ObligationDescription description,
                                                        SourceSite site) {
  ObligationLedger& ledger = cx.region().ledger();
  absl::StatusOr<ObligationId> id =
      ledger.record(ObligationKind::kPermit, std::move(description), site);
  if (!id.ok()) [[unlikely]] {
    return permit_refused(what, id.status());
  }
  return RecordedObligation{&ledger, *id};
}

// Whether `cx`'s region still admits obligations (a cheap check before waiting).
inline absl::Status check_admission(Cx& cx, std::string_view what) {
  ObligationLedger& ledger = cx.region().ledger();
  if (!ledger.admission_closed()) return absl::OkStatus();
  return absl::FailedPreconditionError(std::string(what) + ": region " +
                                       cx.region().id().to_string() +
                                       " is closing; it admits no new obligations (SPEC 3.2)");
}

}  // namespace asupersync::sync_internal

#endif  // ASUPERSYNC_SYNC_INTERNAL_OBLIGATION_H_
