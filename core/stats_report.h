// Statistics of the process-wide allocator, written as text or JSON to a
// file descriptor without allocating (so it can run at exit, in a signal
// handler's aftermath, or from malloc_stats()).
//
//   rulloc: stats: pid 4242
//     totals: 12288 KiB mapped, 11776 KiB committed, 9318 KiB resident, ...
//     thread caches: 2 threads, 1024 blocks cached, 40 refills, 3 flushes in all
//     small     block     in_use  in_caches       free  regions  mapped_kib
//                  16        120        512       3464        1         256
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
