// Fatal heap-misuse reports: one line on stderr, then abort. Never allocates.
#ifndef RULLOC_CORE_DIAGNOSTICS_H_
#define RULLOC_CORE_DIAGNOSTICS_H_

namespace rulloc::internal {

// Prints "rulloc: <fault>: <ptr>" and aborts.
[[noreturn]] void ReportHeapMisuse(const char* fault, const void* ptr);

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_DIAGNOSTICS_H_
