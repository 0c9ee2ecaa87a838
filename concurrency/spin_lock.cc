#include "concurrency/spin_lock.h"

#include "concurrency/backoff.h"

namespace rulloc {

void SpinLock::LockSlow() {
  Backoff backoff;
  for (;;) {
    while (locked_.load(std::memory_order_relaxed)) backoff.Wait();
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    backoff.Reset();  // another waiter took it: the lock is moving, not stuck
  }
}

}  // namespace rulloc
