// A bucket lock: one word, constant-initialisable, never allocates.
//
//   [ std::atomic<bool> locked ]
//
// Acquire tests with a plain load before it exchanges (test-and-test-and-
// set) and waits as Backoff does: spins with a CPU pause, then yields so
// that a preempted holder can run, then sleeps (a real-time waiter's yield
// would not let a lower-priority holder run on its CPU).
// Critical sections it guards are short (a batch of free-list operations).
#ifndef RULLOC_CONCURRENCY_SPIN_LOCK_H_
#define RULLOC_CONCURRENCY_SPIN_LOCK_H_

#include <atomic>

namespace rulloc {

class SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    LockSlow();
  }
  bool try_lock() {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  void LockSlow();

  std::atomic<bool> locked_{false};
};

// RAII holder, usable where std::lock_guard would pull in more headers.
class SpinLockHolder {
 public:
  explicit SpinLockHolder(SpinLock& lock) : lock_(lock) { lock_.lock(); }
  ~SpinLockHolder() { lock_.unlock(); }
  SpinLockHolder(const SpinLockHolder&) = delete;
  SpinLockHolder& operator=(const SpinLockHolder&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace rulloc

#endif  // RULLOC_CONCURRENCY_SPIN_LOCK_H_
