#include "concurrency/spin_lock.h"

#include <sched.h>

namespace rulloc {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

void SpinLock::LockSlow() {
  int spins = 0;
  for (;;) {
    while (locked_.load(std::memory_order_relaxed)) {
      if (++spins < 64) {
        CpuRelax();
      } else {
        sched_yield();
      }
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

}  // namespace rulloc
