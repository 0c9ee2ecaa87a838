// Options of the malloc shim, read once at start-up from RULLOC_OPTIONS (a
// comma-separated list of key=value) and from one variable per option:
//
//   key          variable            meaning
//   stats        RULLOC_STATS        print statistics at exit: 0, 1/text, json
//   stats_file   RULLOC_STATS_FILE   append them to this file, not stderr
//   verbose      RULLOC_VERBOSE      say when Rulloc takes over; implies stats
//   hardened     RULLOC_HARDENED     guard pages, random block order, zero on
//                                    free (docs/hardening.md)
//   huge_pages   RULLOC_HUGE_PAGES   advise huge blocks (2 MiB and more) as
//                                    transparent huge pages (default 1)
//   background_purge                 run the decay step every 100 ms from a
//                RULLOC_BACKGROUND_PURGE  thread of Rulloc's own (default 0)
//   batched_decommit                 give pages back with one process_madvise
//                RULLOC_BATCHED_DECOMMIT  per batch of ranges (default 1)
//   populate_pages                   make the pages of small blocks resident
//                RULLOC_POPULATE_PAGES    a step ahead of use, in one call
//                                         each (default 1)
//
//   RULLOC_OPTIONS=stats=json,stats_file=/tmp/rulloc.json,hardened=1
//
// A single variable overrides the same key in RULLOC_OPTIONS. A malformed
// entry is reported on stderr, one line, and ignored. In a setuid or
// setgid program (secure execution) the variables are not read.
#ifndef RULLOC_SHIM_OPTIONS_H_
#define RULLOC_SHIM_OPTIONS_H_

#include <cstddef>

namespace rulloc::shim {

enum class StatsFormat { kNone, kText, kJson };

struct Options {
  StatsFormat stats = StatsFormat::kNone;
  bool stats_given = false;  // stats was set, if only to 0: nothing implies it
  bool verbose = false;
  bool hardened = false;
  bool huge_pages = true;
  bool background_purge = false;
  bool batched_decommit = true;
  bool populate_pages = true;
  char stats_file[256] = {};  // empty: stderr
};

// Parses one `key=value` into `options`; false (and `options` untouched) if
// the key is unknown or the value invalid. Flags take 0/1, true/false,
// yes/no, on/off in any case.
bool ParseOption(const char* key, size_t key_length, const char* value, size_t value_length,
                 Options* options);

// Parses a RULLOC_OPTIONS string. Calls `report(entry, length)` for every
// malformed entry (if `report` is not null) and returns how many there were.
size_t ParseOptionList(const char* text, Options* options,
                       void (*report)(const char* entry, size_t length));

// RULLOC_OPTIONS, then the single variables, from `environment` (a
// null-terminated array of NAME=value, as `environ`); none in secure
// execution, as secure_getenv. No allocation, and no use of libc's
// `environ`, so it is safe in the shim's start-up, which can run before
// libc has set that up.
Options ReadOptions(char* const* environment);

}  // namespace rulloc::shim

#endif  // RULLOC_SHIM_OPTIONS_H_
