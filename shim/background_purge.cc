#include "shim/background_purge.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>

#include "concurrency/thread_cache.h"
#include "core/heap.h"

namespace rulloc::shim {
namespace {

std::atomic<bool> started{false};

void* PurgeLoop(void*) {
  const timespec interval{0, static_cast<long>(internal::Heap::kPurgeIntervalMillis) * 1000000};
  for (;;) {
    nanosleep(&interval, nullptr);
    RunDecay();
  }
  return nullptr;
}

}  // namespace

bool StartBackgroundPurge() {
  if (started.exchange(true)) return true;
  // Signals stay with the program's threads.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t thread;
  const bool ok = pthread_create(&thread, nullptr, PurgeLoop, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (ok) {
    pthread_detach(thread);
#ifdef __GLIBC__
    pthread_setname_np(thread, "rulloc-purge");
#endif
  }
  return ok;
}

}  // namespace rulloc::shim
