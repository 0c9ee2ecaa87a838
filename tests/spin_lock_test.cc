#include "concurrency/spin_lock.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace rulloc {
namespace {

constinit SpinLock global_lock;  // constant-initialisable

// Eight threads each increment a plain counter `rounds` times under one
// lock (a race there is a TSan report), yielding the CPU inside the lock if
// asked; returns the count.
long CountUnderLock(int rounds, bool yield_inside) {
  SpinLock lock;
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        SpinLockHolder hold(lock);
        ++counter;
        if (yield_inside) std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  return counter;
}

TEST(SpinLockTest, MutualExclusion) { EXPECT_EQ(CountUnderLock(100000, false), 800000); }

// Holders that leave the CPU inside the lock push waiters past their spins
// into the yielding path; every increment must still be seen.
TEST(SpinLockTest, MutualExclusionWhenHoldersYield) {
  EXPECT_EQ(CountUnderLock(2000, true), 16000);
}

// A waiter held long enough to nap is not cancelled there: malloc and free
// must not be cancellation points (nanosleep is one). The cancel stays
// pending until the thread's next cancellation point, after the lock.
TEST(SpinLockTest, AWaiterIsNotCancelledInsideLock) {
  static SpinLock lock;
  static std::atomic<bool> acquired{false};
  acquired = false;
  lock.lock();
  pthread_t waiter;
  ASSERT_EQ(pthread_create(
                &waiter, nullptr,
                [](void*) -> void* {
                  lock.lock();
                  acquired = true;
                  lock.unlock();
                  pthread_testcancel();
                  return nullptr;
                },
                nullptr),
            0);
  pthread_cancel(waiter);
  // Long enough for the waiter to spin, yield and nap (its first naps are
  // microseconds long).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  lock.unlock();
  void* result;
  ASSERT_EQ(pthread_join(waiter, &result), 0);
  EXPECT_TRUE(acquired.load());
  EXPECT_EQ(result, PTHREAD_CANCELED);  // at the test's own cancellation point
}

TEST(SpinLockTest, TryLock) {
  EXPECT_TRUE(global_lock.try_lock());
  EXPECT_FALSE(global_lock.try_lock());
  global_lock.unlock();
  EXPECT_TRUE(global_lock.try_lock());
  global_lock.unlock();
}

}  // namespace
}  // namespace rulloc
