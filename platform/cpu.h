// The CPU the calling thread runs on, for per-CPU data. A hint only: the
// thread may move to another CPU right after the call.
#ifndef RULLOC_PLATFORM_CPU_H_
#define RULLOC_PLATFORM_CPU_H_

#ifdef _WIN32
#include <windows.h>
#else
#include <sched.h>
#endif

namespace rulloc::platform {

// glibc reads it from the thread's restartable-sequences area when the
// kernel provides one (no system call), else from the vDSO.
inline unsigned CurrentCpu() {
#ifdef _WIN32
  return GetCurrentProcessorNumber();
#else
  const int cpu = sched_getcpu();
  return cpu < 0 ? 0u : static_cast<unsigned>(cpu);
#endif
}

}  // namespace rulloc::platform

#endif  // RULLOC_PLATFORM_CPU_H_
