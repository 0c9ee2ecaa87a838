#include "concurrency/spin_lock.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <cstdint>

namespace rulloc {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Waits of a waiter that has spun and yielded this often without the lock
// coming free: the holder is not running. A yield gives the CPU only to
// threads of the same or a higher priority, so a real-time waiter would
// keep a preempted ordinary holder off its CPU for good; a sleep does not.
constexpr uint32_t kSpins = 64;
constexpr uint32_t kYields = 64;

void Sleep(uint32_t sleeps) {
  // 1 µs, doubling up to about 1 ms.
  const long nanoseconds = 1000L << (sleeps < 10 ? sleeps : 10);
  timespec delay{0, nanoseconds};
  // nanosleep is a cancellation point; malloc and free must not be one.
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  nanosleep(&delay, nullptr);
  pthread_setcancelstate(cancel_state, nullptr);
}

}  // namespace

void SpinLock::LockSlow() {
  uint32_t waits = 0;  // saturates: a long wait keeps sleeping
  for (;;) {
    while (locked_.load(std::memory_order_relaxed)) {
      if (waits < kSpins) {
        CpuRelax();
      } else if (waits < kSpins + kYields) {
        sched_yield();
      } else {
        Sleep(waits - kSpins - kYields);
      }
      if (waits != UINT32_MAX) ++waits;
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    waits = 0;  // another waiter took it: the lock is moving, not stuck
  }
}

}  // namespace rulloc
