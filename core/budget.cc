// Copyright The Asupersync Authors.

#include "core/budget.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace asupersync {

std::string Budget::to_string() const {
  return absl::StrCat(
      "Budget{deadline=", deadline.has_value() ? deadline->to_string() : "none",
      ", polls=", poll_quota == kUnlimitedPolls ? "unlimited" : std::to_string(poll_quota),
      ", cost=", cost_quota.has_value() ? std::to_string(*cost_quota) : "unlimited",
      ", priority=", static_cast<int>(priority), "}");
}

}  // namespace asupersync
