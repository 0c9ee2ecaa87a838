// The shim's option parser: RULLOC_OPTIONS lists and single values.
#include "shim/options.h"

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rulloc::shim {
namespace {

std::vector<std::string> reported;
void Record(const char* entry, size_t length) { reported.emplace_back(entry, length); }

size_t Parse(const char* text, Options* options) {
  reported.clear();
  return ParseOptionList(text, options, Record);
}

TEST(OptionsTest, DefaultsServeAProgramThatSetsNothing) {
  Options options;
  EXPECT_EQ(Parse("", &options), 0u);
  EXPECT_EQ(options.stats, StatsFormat::kNone);
  EXPECT_FALSE(options.verbose);
  EXPECT_FALSE(options.hardened);
  EXPECT_TRUE(options.huge_pages);
  EXPECT_FALSE(options.background_purge);
  EXPECT_TRUE(options.batched_decommit);
  EXPECT_TRUE(options.populate_pages);
  EXPECT_STREQ(options.stats_file, "");
}

TEST(OptionsTest, ParsesEveryKey) {
  Options options;
  EXPECT_EQ(Parse("stats=json,stats_file=/tmp/x y,verbose=ON,hardened=yes,huge_pages=0,"
                  "background_purge=1,batched_decommit=no,populate_pages=off",
                  &options),
            0u);
  EXPECT_TRUE(options.background_purge);
  EXPECT_FALSE(options.batched_decommit);
  EXPECT_FALSE(options.populate_pages);
  EXPECT_EQ(options.stats, StatsFormat::kJson);
  EXPECT_STREQ(options.stats_file, "/tmp/x y");
  EXPECT_TRUE(options.verbose);
  EXPECT_TRUE(options.hardened);
  EXPECT_FALSE(options.huge_pages);
  EXPECT_EQ(Parse("stats=1", &options), 0u);
  EXPECT_EQ(options.stats, StatsFormat::kText);
  EXPECT_EQ(Parse("stats=off,,", &options), 0u);
  EXPECT_EQ(options.stats, StatsFormat::kNone);
}

TEST(OptionsTest, MalformedEntriesAreReportedAndIgnored) {
  Options options;
  EXPECT_EQ(Parse("nonsense,stats=maybe,hardened=1,=1,colour=blue", &options), 4u);
  EXPECT_EQ(reported, (std::vector<std::string>{"nonsense", "stats=maybe", "=1", "colour=blue"}));
  EXPECT_TRUE(options.hardened);
  EXPECT_EQ(options.stats, StatsFormat::kNone);
}

TEST(OptionsTest, OverlongStatsFileIsRejectedNotTruncated) {
  Options options;
  const std::string path(sizeof(options.stats_file), 'p');
  EXPECT_EQ(Parse(("stats_file=" + path).c_str(), &options), 1u);
  EXPECT_STREQ(options.stats_file, "");
  const std::string fits(sizeof(options.stats_file) - 1, 'q');
  EXPECT_EQ(Parse(("stats_file=" + fits).c_str(), &options), 0u);
  EXPECT_EQ(std::strlen(options.stats_file), fits.size());
}

TEST(OptionsTest, SingleVariablesOverrideTheList) {
  setenv("RULLOC_OPTIONS", "stats=text,hardened=1,huge_pages=1", 1);
  setenv("RULLOC_HUGE_PAGES", "false", 1);
  setenv("RULLOC_BATCHED_DECOMMIT", "off", 1);
  setenv("RULLOC_POPULATE_PAGES", "0", 1);
  setenv("RULLOC_STATS_FILE", "/dev/null", 1);
  Options options = ReadOptions(environ);
  EXPECT_FALSE(options.batched_decommit);
  EXPECT_FALSE(options.populate_pages);
  unsetenv("RULLOC_BATCHED_DECOMMIT");
  unsetenv("RULLOC_POPULATE_PAGES");
  EXPECT_EQ(options.stats, StatsFormat::kText);
  EXPECT_TRUE(options.hardened);
  EXPECT_FALSE(options.huge_pages);
  EXPECT_STREQ(options.stats_file, "/dev/null");
  unsetenv("RULLOC_OPTIONS");
  unsetenv("RULLOC_HUGE_PAGES");
  options = ReadOptions(environ);
  // A stats file alone turns the text report on...
  EXPECT_EQ(options.stats, StatsFormat::kText);
  // ...but not against an explicit no, which verbose does not undo either.
  setenv("RULLOC_STATS", "0", 1);
  setenv("RULLOC_VERBOSE", "1", 1);
  options = ReadOptions(environ);
  EXPECT_EQ(options.stats, StatsFormat::kNone);
  EXPECT_STREQ(options.stats_file, "/dev/null");
  unsetenv("RULLOC_STATS");
  unsetenv("RULLOC_VERBOSE");
  unsetenv("RULLOC_STATS_FILE");
}

TEST(OptionsTest, ReadsTheEnvironmentItIsGiven) {
  // As libc's getenv: the first entry that names the variable, by its whole
  // name. (The shim passes the environment glibc gives its constructor,
  // before libc has set up `environ`.)
  char options_list[] = "RULLOC_OPTIONS=hardened=1";
  char stats_longer_name[] = "RULLOC_STATSX=json";
  char stats[] = "RULLOC_STATS=json";
  char stats_again[] = "RULLOC_STATS=0";
  char* environment[] = {options_list, stats_longer_name, stats, stats_again, nullptr};
  Options options = ReadOptions(environment);
  EXPECT_TRUE(options.hardened);
  EXPECT_EQ(options.stats, StatsFormat::kJson);
  char* empty[] = {nullptr};
  options = ReadOptions(empty);
  EXPECT_FALSE(options.hardened);
  EXPECT_EQ(options.stats, StatsFormat::kNone);
  EXPECT_TRUE(options.huge_pages);
  options = ReadOptions(nullptr);
  EXPECT_EQ(options.stats, StatsFormat::kNone);
}

}  // namespace
}  // namespace rulloc::shim
