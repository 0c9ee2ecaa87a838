// Statistics of the process-wide allocator, written as text or JSON to a
// file descriptor without allocating (so it can run at exit, in a signal
// handler's aftermath, or from malloc_stats()).
//
//   rulloc: stats: pid 4242
//     totals: mapped 12.0 MiB, committed 11.5 MiB, resident 9.1 MiB, in use ...
//     small  block  in_use  in_caches  free  regions  mapped_kib
//              16     120        512    3464        1         256
//     ...
//
// JSON: {"pid":..,"totals":{..},"small":[{..},..],"large":[..],"huge":{..},
//        "thread_caches":{..}}
#ifndef RULLOC_CORE_STATS_REPORT_H_
#define RULLOC_CORE_STATS_REPORT_H_

namespace rulloc {

enum class StatsReportFormat { kText, kJson };

// Writes the report to `fd`; returns false if a write failed.
bool WriteStatsReport(int fd, StatsReportFormat format);

}  // namespace rulloc

#endif  // RULLOC_CORE_STATS_REPORT_H_
