// fork() while other threads allocate: the child must be able to allocate
// (no lock of the allocator left held), many times over.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(ForkTest, ChildrenAllocateWhileParentThreadsChurn) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> churners;
  for (int t = 0; t < 4; ++t) {
    churners.emplace_back([&stop, t] {
      std::vector<void*> held;
      unsigned x = t + 1;
      while (!stop.load(std::memory_order_relaxed)) {
        x = x * 1103515245 + 12345;
        held.push_back(malloc(1 + x % 70000));
        if (held.size() > 200) {
          for (void* p : held) free(p);
          held.clear();
        }
      }
      for (void* p : held) free(p);
    });
  }
  constexpr int kForks = 200;
  int ok = 0;
  for (int i = 0; i < kForks; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: allocate across every size regime, including from a thread.
      std::vector<char*> blocks;
      for (size_t size : {16, 100, 5000, 40000, 300000, 5000000}) {
        char* p = static_cast<char*>(malloc(size));
        if (p == nullptr) _exit(2);
        std::memset(p, 1, size);
        blocks.push_back(p);
      }
      std::thread t([] { free(malloc(123)); });
      t.join();
      for (char* p : blocks) free(p);
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++ok;
  }
  stop = true;
  for (auto& t : churners) t.join();
  EXPECT_EQ(ok, kForks);
}

}  // namespace
