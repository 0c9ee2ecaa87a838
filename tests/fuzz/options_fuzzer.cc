// libFuzzer harness for the RULLOC_OPTIONS parser (shim/options.h): the
// input, cut at its first NUL, is parsed as an option list. Checks that
//   - the parser never writes outside its Options (ASan: the Options is a
//     heap object of its own) and leaves stats_file NUL-terminated;
//   - the number of malformed entries returned equals the number of report
//     callbacks, and every reported entry is one whole, non-empty,
//     comma-separated entry of the input;
//   - a reported entry, parsed on its own with ParseOption, fails and leaves
//     the Options untouched;
//   - re-serialising the parsed Options as "stats=...,verbose=...,..." (with
//     spellings chosen by the input) and parsing that gives the same Options
//     and no malformed entry.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "shim/options.h"

namespace {

using rulloc::shim::Options;
using rulloc::shim::StatsFormat;

[[noreturn]] void Fail(int line, const char* what, const std::string& text) {
  std::fprintf(stderr, "\noptions_fuzzer: line %d: %s\ninput: \"%s\"\n", line, what, text.c_str());
  std::abort();
}
#define CHECK(cond, text)                     \
  do {                                        \
    if (!(cond)) Fail(__LINE__, #cond, text); \
  } while (0)

struct Report {
  const char* entry;
  size_t length;
};
std::vector<Report>* g_reports = nullptr;

void Record(const char* entry, size_t length) { g_reports->push_back(Report{entry, length}); }

bool Terminated(const Options& o) {
  return std::memchr(o.stats_file, '\0', sizeof(o.stats_file)) != nullptr;
}

bool Same(const Options& a, const Options& b) {
  return a.stats == b.stats && a.verbose == b.verbose && a.hardened == b.hardened &&
         a.huge_pages == b.huge_pages && std::strcmp(a.stats_file, b.stats_file) == 0;
}

// Byte-wise equality of the meaningful bytes: stats_file up to its NUL.
bool Untouched(const Options& before, const Options& after) {
  return Same(before, after) &&
         std::memcmp(before.stats_file, after.stats_file, sizeof(before.stats_file)) == 0;
}

// Mixed-case spelling of `word`, chosen by the input.
std::string Spell(FuzzedDataProvider& in, const char* word) {
  std::string s(word);
  if (in.ConsumeBool()) {
    for (char& c : s) {
      if (in.ConsumeBool() && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return s;
}

std::string Flag(FuzzedDataProvider& in, bool value) {
  static const char* const kYes[] = {"1", "true", "yes", "on"};
  static const char* const kNo[] = {"0", "false", "no", "off"};
  const size_t i = in.ConsumeIntegralInRange<size_t>(0, 3);
  return Spell(in, value ? kYes[i] : kNo[i]);
}

std::string Serialise(FuzzedDataProvider& in, const Options& o, bool with_file) {
  std::vector<std::string> entries;
  switch (o.stats) {
    case StatsFormat::kNone:
      entries.push_back(Spell(in, "stats") + "=" + Flag(in, false));
      break;
    case StatsFormat::kText:
      entries.push_back(Spell(in, "stats") + "=" +
                        (in.ConsumeBool() ? Spell(in, "text") : Flag(in, true)));
      break;
    case StatsFormat::kJson:
      entries.push_back(Spell(in, "stats") + "=" + Spell(in, "json"));
      break;
  }
  entries.push_back(Spell(in, "verbose") + "=" + Flag(in, o.verbose));
  entries.push_back(Spell(in, "hardened") + "=" + Flag(in, o.hardened));
  entries.push_back(Spell(in, "huge_pages") + "=" + Flag(in, o.huge_pages));
  if (with_file) entries.push_back(Spell(in, "stats_file") + "=" + o.stats_file);
  // Any order, with empty entries (",,") here and there: both are allowed.
  std::string text;
  while (!entries.empty()) {
    const size_t i = in.ConsumeIntegralInRange<size_t>(0, entries.size() - 1);
    if (!text.empty() || in.ConsumeBool()) text += in.ConsumeBool() ? ",," : ",";
    text += entries[i];
    entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (in.ConsumeBool()) text += ",";
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The option list itself: all of the input up to its first NUL.
  const std::string text(reinterpret_cast<const char*>(data),
                         strnlen(reinterpret_cast<const char*>(data), size));
  // What follows the NUL (if anything) chooses the spellings of the round trip.
  const size_t rest = text.size() < size ? size - text.size() - 1 : 0;
  FuzzedDataProvider in(data + size - rest, rest);

  std::vector<Report> reports;
  g_reports = &reports;
  auto options = std::make_unique<Options>();
  const size_t malformed = rulloc::shim::ParseOptionList(text.c_str(), options.get(), Record);
  CHECK(malformed == reports.size(), text);
  CHECK(Terminated(*options), text);
  CHECK(options->stats == StatsFormat::kNone || options->stats == StatsFormat::kText ||
            options->stats == StatsFormat::kJson,
        text);

  // Every report is one whole non-empty entry of the input, and that entry
  // alone is rejected by ParseOption without touching the Options.
  const char* begin = text.c_str();
  const char* prev_end = begin;
  for (const Report& r : reports) {
    CHECK(r.entry >= prev_end && r.entry + r.length <= begin + text.size(), text);
    CHECK(r.length > 0, text);
    CHECK(r.entry == begin || r.entry[-1] == ',', text);
    CHECK(r.entry[r.length] == ',' || r.entry[r.length] == '\0', text);
    CHECK(std::memchr(r.entry, ',', r.length) == nullptr, text);
    prev_end = r.entry + r.length;
    const char* equals = static_cast<const char*>(std::memchr(r.entry, '=', r.length));
    if (equals != nullptr) {
      Options before = *options;
      Options after = before;
      const size_t key_length = static_cast<size_t>(equals - r.entry);
      CHECK(!rulloc::shim::ParseOption(r.entry, key_length, equals + 1, r.length - key_length - 1,
                                       &after),
            text);
      CHECK(Untouched(before, after), text);
    }
  }

  // A list without malformed entries parses the same without a callback.
  {
    auto again = std::make_unique<Options>();
    CHECK(rulloc::shim::ParseOptionList(text.c_str(), again.get(), nullptr) == malformed, text);
    CHECK(Same(*again, *options), text);
  }

  // Round trip. A stats_file with a comma cannot be written in a list.
  const bool with_file = std::strchr(options->stats_file, ',') == nullptr;
  const std::string serialised = Serialise(in, *options, with_file);
  auto parsed = std::make_unique<Options>();
  if (!with_file) std::memcpy(parsed->stats_file, options->stats_file, sizeof(parsed->stats_file));
  const size_t bad = rulloc::shim::ParseOptionList(serialised.c_str(), parsed.get(), Record);
  CHECK(bad == 0, text + "\" re-serialised as \"" + serialised);
  CHECK(Same(*parsed, *options), text + "\" re-serialised as \"" + serialised);
  CHECK(Terminated(*parsed), serialised);
  g_reports = nullptr;
  return 0;
}
