#include "shim/options.h"

#include <strings.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace rulloc::shim {
namespace {

bool Equals(const char* text, size_t length, const char* word) {
  return std::strlen(word) == length && strncasecmp(text, word, length) == 0;
}

bool ParseBool(const char* value, size_t length, bool* out) {
  for (const char* yes : {"1", "true", "yes", "on"}) {
    if (Equals(value, length, yes)) return *out = true;
  }
  for (const char* no : {"0", "false", "no", "off"}) {
    if (Equals(value, length, no)) {
      *out = false;
      return true;
    }
  }
  return false;
}

bool ParseStatsFormat(const char* value, size_t length, StatsFormat* out) {
  bool on;
  if (Equals(value, length, "json")) {
    *out = StatsFormat::kJson;
  } else if (Equals(value, length, "text")) {
    *out = StatsFormat::kText;
  } else if (ParseBool(value, length, &on)) {
    *out = on ? StatsFormat::kText : StatsFormat::kNone;
  } else {
    return false;
  }
  return true;
}

void ReportToStderr(const char* entry, size_t length) {
  static constexpr char kPrefix[] = "rulloc: ignoring malformed option: ";
  ssize_t ignored = write(STDERR_FILENO, kPrefix, sizeof(kPrefix) - 1);
  ignored = write(STDERR_FILENO, entry, length);
  ignored = write(STDERR_FILENO, "\n", 1);
  (void)ignored;
}

// The value of `variable` in `environment` (the first entry that names it,
// as getenv), or nullptr.
const char* Lookup(char* const* environment, const char* variable) {
  const size_t length = std::strlen(variable);
  for (char* const* entry = environment; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, variable, length) == 0 && (*entry)[length] == '=') {
      return *entry + length + 1;
    }
  }
  return nullptr;
}

// Applies one environment variable holding the value of `key`.
void ApplyVariable(char* const* environment, const char* variable, const char* key,
                   Options* options) {
  const char* value = Lookup(environment, variable);
  if (value == nullptr) return;
  if (!ParseOption(key, std::strlen(key), value, std::strlen(value), options)) {
    ReportToStderr(variable, std::strlen(variable));
  }
}

}  // namespace

bool ParseOption(const char* key, size_t key_length, const char* value, size_t value_length,
                 Options* options) {
  if (Equals(key, key_length, "stats")) {
    if (!ParseStatsFormat(value, value_length, &options->stats)) return false;
    options->stats_given = true;
    return true;
  }
  if (Equals(key, key_length, "verbose")) return ParseBool(value, value_length, &options->verbose);
  if (Equals(key, key_length, "hardened"))
    return ParseBool(value, value_length, &options->hardened);
  if (Equals(key, key_length, "huge_pages")) {
    return ParseBool(value, value_length, &options->huge_pages);
  }
  if (Equals(key, key_length, "background_purge")) {
    return ParseBool(value, value_length, &options->background_purge);
  }
  if (Equals(key, key_length, "batched_decommit")) {
    return ParseBool(value, value_length, &options->batched_decommit);
  }
  if (Equals(key, key_length, "populate_pages")) {
    return ParseBool(value, value_length, &options->populate_pages);
  }
  if (Equals(key, key_length, "stats_file")) {
    if (value_length >= sizeof(options->stats_file) || std::memchr(value, '\0', value_length)) {
      return false;
    }
    std::memcpy(options->stats_file, value, value_length);
    options->stats_file[value_length] = '\0';
    return true;
  }
  return false;
}

size_t ParseOptionList(const char* text, Options* options,
                       void (*report)(const char* entry, size_t length)) {
  size_t malformed = 0;
  while (*text != '\0') {
    const char* end = std::strchr(text, ',');
    const size_t length = end != nullptr ? static_cast<size_t>(end - text) : std::strlen(text);
    if (length != 0) {
      const char* equals = static_cast<const char*>(std::memchr(text, '=', length));
      const bool ok = equals != nullptr &&
                      ParseOption(text, static_cast<size_t>(equals - text), equals + 1,
                                  length - static_cast<size_t>(equals - text) - 1, options);
      if (!ok) {
        ++malformed;
        if (report != nullptr) report(text, length);
      }
    }
    text += length;
    if (*text == ',') ++text;
  }
  return malformed;
}

Options ReadOptions(char* const* environment) {
  Options options;
  // Secure execution (setuid, setgid, capabilities): as secure_getenv.
  if (environment == nullptr || getauxval(AT_SECURE) != 0) return options;
  if (const char* list = Lookup(environment, "RULLOC_OPTIONS")) {
    ParseOptionList(list, &options, ReportToStderr);
  }
  ApplyVariable(environment, "RULLOC_STATS", "stats", &options);
  ApplyVariable(environment, "RULLOC_STATS_FILE", "stats_file", &options);
  ApplyVariable(environment, "RULLOC_VERBOSE", "verbose", &options);
  ApplyVariable(environment, "RULLOC_HARDENED", "hardened", &options);
  ApplyVariable(environment, "RULLOC_HUGE_PAGES", "huge_pages", &options);
  ApplyVariable(environment, "RULLOC_BACKGROUND_PURGE", "background_purge", &options);
  ApplyVariable(environment, "RULLOC_BATCHED_DECOMMIT", "batched_decommit", &options);
  ApplyVariable(environment, "RULLOC_POPULATE_PAGES", "populate_pages", &options);
  if (!options.stats_given && (options.verbose || options.stats_file[0] != '\0')) {
    options.stats = StatsFormat::kText;
  }
  return options;
}

}  // namespace rulloc::shim
