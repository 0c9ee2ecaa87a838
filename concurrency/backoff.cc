#include "concurrency/backoff.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

namespace rulloc {
namespace {

constexpr uint32_t kSpins = 64;
constexpr uint32_t kYields = 64;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

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

void Backoff::Wait() {
  if (waits_ < kSpins) {
    CpuRelax();
  } else if (waits_ < kSpins + kYields) {
    sched_yield();
  } else {
    Sleep(waits_ - kSpins - kYields);
  }
  if (waits_ != UINT32_MAX) ++waits_;
}

}  // namespace rulloc
