// The statistics report of the process-wide allocator, as text and JSON.
#include "core/stats_report.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/c_api.h"
#include "core/region_carver.h"
#include "gtest/gtest.h"

namespace rulloc {
namespace {

std::string Report(bool json) {
  const int fd = memfd_create("stats", 0);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(rulloc_stats_write(fd, json ? 1 : 0), 0);
  std::string text(static_cast<size_t>(lseek(fd, 0, SEEK_END)), '\0');
  EXPECT_EQ(pread(fd, text.data(), text.size(), 0), static_cast<ssize_t>(text.size()));
  close(fd);
  return text;
}

// The number after `key` in the object that contains `anchor`.
size_t Field(const std::string& json, const std::string& anchor, const std::string& key) {
  const size_t at = json.find(anchor);
  EXPECT_NE(at, std::string::npos) << anchor;
  const size_t field = json.find("\"" + key + "\":", at);
  EXPECT_NE(field, std::string::npos) << key;
  return std::stoull(json.substr(field + key.size() + 3));
}

TEST(StatsReportTest, JsonCountsBlocksPerBucket) {
  constexpr size_t kBlocks = 5000;
  std::vector<void*> blocks;
  for (size_t i = 0; i < kBlocks; ++i) blocks.push_back(rulloc_malloc(64));
  void* large = rulloc_malloc(300000);
  void* huge = rulloc_malloc(size_t{5} << 20);
  // A small region's worth of address space, decommitted and kept.
  void* region = internal::RegionCarver::Carve(size_t{256} << 10);
  ASSERT_NE(region, nullptr);
  internal::RegionCarver::Return(region, size_t{256} << 10);
  internal::RegionCarver::Flush();
  const std::string json = Report(true);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '\n');
  EXPECT_EQ(json.find('\n'), json.size() - 1) << "one line";
  EXPECT_GE(Field(json, "\"block_size\":64,", "blocks_in_use"), kBlocks);
  EXPECT_GE(Field(json, "\"max_size\":2097152,", "blocks_in_use"), 1u);
  EXPECT_GE(Field(json, "\"huge\":", "blocks_in_use"), 1u);
  const size_t mapped = Field(json, "\"totals\":", "bytes_mapped");
  EXPECT_GE(mapped, kBlocks * 64 + 300000 + (size_t{5} << 20));
  EXPECT_LE(Field(json, "\"totals\":", "bytes_committed"), mapped);
  EXPECT_GT(Field(json, "\"totals\":", "bytes_resident"), 0u);
  EXPECT_GE(Field(json, "\"totals\":", "bytes_retained"), size_t{256} << 10);
  EXPECT_GE(Field(json, "\"thread_caches\":", "refills"), 1u);
  // Balanced: every object and array closes.
  int depth = 0;
  for (char c : json) {
    depth += (c == '{' || c == '[') - (c == '}' || c == ']');
    ASSERT_GE(depth, 0);
  }
  EXPECT_EQ(depth, 0);
  for (void* p : blocks) rulloc_free(p);
  rulloc_free(large);
  rulloc_free(huge);
}

TEST(StatsReportTest, TextHasTotalsAndBucketTables) {
  void* p = rulloc_malloc(1000);
  const std::string text = Report(false);
  EXPECT_EQ(text.rfind("rulloc: stats: pid ", 0), 0u);
  EXPECT_NE(text.find("  totals: "), std::string::npos);
  EXPECT_NE(text.find("  small "), std::string::npos);
  EXPECT_NE(text.find("  large "), std::string::npos);
  EXPECT_NE(text.find("  huge: "), std::string::npos);
  rulloc_free(p);
}

TEST(StatsReportTest, FailedWriteIsReported) { EXPECT_EQ(rulloc_stats_write(-1, 1), -1); }

}  // namespace
}  // namespace rulloc
