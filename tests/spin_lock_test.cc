#include "concurrency/spin_lock.h"

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

TEST(SpinLockTest, TryLock) {
  EXPECT_TRUE(global_lock.try_lock());
  EXPECT_FALSE(global_lock.try_lock());
  global_lock.unlock();
  EXPECT_TRUE(global_lock.try_lock());
  global_lock.unlock();
}

}  // namespace
}  // namespace rulloc
