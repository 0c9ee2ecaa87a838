#include "concurrency/spin_lock.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace rulloc {
namespace {

constinit SpinLock global_lock;  // constant-initialisable

TEST(SpinLockTest, MutualExclusion) {
  SpinLock lock;
  long counter = 0;  // plain: a race here is a TSan report
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        SpinLockHolder hold(lock);
        ++counter;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 800000);
}

// Holders that leave the CPU inside the lock push waiters past their spins
// into the yielding path; every increment must still be seen.
TEST(SpinLockTest, MutualExclusionWhenHoldersYield) {
  SpinLock lock;
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        SpinLockHolder hold(lock);
        ++counter;
        std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 16000);
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
