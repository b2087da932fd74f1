#include "lab/replay.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace asupersync::lab {
namespace {

constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr uint32_t kSingleCharLimit = 62;

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return 10 + (c - 'a');
  if (c >= 'A' && c <= 'Z') return 36 + (c - 'A');
  return -1;
}

void append_value(std::string& out, uint32_t value) {
  if (value < kSingleCharLimit) {
    out += kDigits[value];
  } else {
    absl::StrAppend(&out, "_", value, "_");
  }
}

absl::Status bad(std::string_view text, size_t position, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("lab replay string: ", absl::string_view(what.data(), what.size()),
                   " at position ", position, " of '", absl::string_view(text.data(), text.size()),
                   "' (expected L1:<a|s>:<seed hex>:<cancel point>:<hash hex>:<choices>; copy "
                   "the string from a failure report)"));
}

bool parse_hex(std::string_view field, uint64_t& out) {
  if (field.empty() || field.size() > 16) return false;
  out = 0;
  for (char c : field) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = 10 + (c - 'a');
    } else {
      return false;
    }
    out = (out << 4) | static_cast<uint64_t>(v);
  }
  return true;
}

bool parse_decimal(std::string_view field, uint64_t& out) {
  if (field.empty() || field.size() > 19) return false;
  out = 0;
  for (char c : field) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

std::string hex(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof(buffer), "%llx", static_cast<unsigned long long>(value));
  return buffer;
}

}  // namespace

std::string encode_replay(const ReplayToken& token) {
  std::string out =
      absl::StrCat("L1:", token.lanes == LanePolicy::kAnyRunnable ? "a" : "s", ":", hex(token.seed),
                   ":", token.cancel_at_await, ":", hex(token.trace_hash), ":");
  const std::vector<uint32_t>& choices = token.choices;
  for (size_t i = 0; i < choices.size();) {
    size_t run = 1;
    while (i + run < choices.size() && choices[i + run] == choices[i]) ++run;
    append_value(out, choices[i]);
    if (run >= 3) {
      absl::StrAppend(&out, ".", run, ".");
    } else if (run == 2) {
      append_value(out, choices[i]);
    }
    i += run;
  }
  return out;
}

absl::StatusOr<ReplayToken> decode_replay(std::string_view text) {
  ReplayToken token;
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (int i = 0; i < 5; ++i) {
    const size_t colon = text.find(':', start);
    if (colon == std::string_view::npos) return bad(text, text.size(), "missing field");
    fields.push_back(text.substr(start, colon - start));
    start = colon + 1;
  }
  const std::string_view choices = text.substr(start);
  if (fields[0] != "L1") return bad(text, 0, "unknown version (not L1)");
  if (fields[1] == "a") {
    token.lanes = LanePolicy::kAnyRunnable;
  } else if (fields[1] == "s") {
    token.lanes = LanePolicy::kStrict;
  } else {
    return bad(text, 3, "lane policy must be 'a' or 's'");
  }
  if (!parse_hex(fields[2], token.seed)) return bad(text, 5, "bad seed");
  uint64_t point;
  if (!parse_decimal(fields[3], point) || point > 0xffffffffull) {
    return bad(text, 5, "bad cancel point");
  }
  token.cancel_at_await = static_cast<uint32_t>(point);
  if (!parse_hex(fields[4], token.trace_hash)) return bad(text, 5, "bad trace hash");
  const size_t base = start;
  for (size_t i = 0; i < choices.size();) {
    uint32_t value;
    if (choices[i] == '_') {
      const size_t end = choices.find('_', i + 1);
      uint64_t parsed;
      if (end == std::string_view::npos ||
          !parse_decimal(choices.substr(i + 1, end - i - 1), parsed) || parsed > 0xffffffffull) {
        return bad(text, base + i, "bad large index");
      }
      value = static_cast<uint32_t>(parsed);
      i = end + 1;
    } else {
      const int v = digit_value(choices[i]);
      if (v < 0) return bad(text, base + i, "unexpected character");
      value = static_cast<uint32_t>(v);
      ++i;
    }
    uint64_t count = 1;
    if (i < choices.size() && choices[i] == '.') {
      const size_t end = choices.find('.', i + 1);
      if (end == std::string_view::npos ||
          !parse_decimal(choices.substr(i + 1, end - i - 1), count) || count == 0 ||
          count > 100'000'000) {
        return bad(text, base + i, "bad repeat count");
      }
      i = end + 1;
    }
    token.choices.insert(token.choices.end(), count, value);
  }
  return token;
}

}  // namespace asupersync::lab
