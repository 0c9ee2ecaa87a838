// Options of the malloc shim, read once from the environment:
//
//   RULLOC_STATS=1          print the allocator's statistics on stderr at exit
//   RULLOC_STATS_FILE=path  append them to `path` instead (for programs that
//                           close stderr before they exit)
//   RULLOC_VERBOSE=1        print a line when Rulloc takes over the process,
//                           and the statistics at exit
#ifndef RULLOC_SHIM_OPTIONS_H_
#define RULLOC_SHIM_OPTIONS_H_

namespace rulloc::shim {

struct Options {
  bool stats_at_exit = false;
  bool verbose = false;
  const char* stats_file = nullptr;  // from the environment; never freed
};

// Parses the variables (getenv only: no allocation).
Options ReadOptions();

// True for "1", "true", "yes", "on" (any case); false for anything else.
bool ParseFlag(const char* value);

// Writes the statistics of the process-wide allocator, one line, to `fd`
// without allocating.
void PrintStats(int fd);
// PrintStats to `path` (appended) or, if it is null, to stderr.
void PrintStatsTo(const char* path);

}  // namespace rulloc::shim

#endif  // RULLOC_SHIM_OPTIONS_H_
