// fork() in a program with a library whose fork handlers allocate: they
// must run while Rulloc's locks are free (its handlers registered first),
// not wait for them forever. An alarm turns such a hang into a failure.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "gtest/gtest.h"

extern "C" int fork_handler_calls;

namespace {

TEST(ForkHandlersTest, HandlersALibraryRegisteredMayAllocate) {
  alarm(20);  // well under the test's timeout
  constexpr int kForks = 20;
  for (int i = 0; i < kForks; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The handler ran before the fork (prepare) and in the child.
      void* p = std::malloc(300000);
      _exit(p != nullptr && fork_handler_calls == 2 * i + 2 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "fork " << i;
    EXPECT_EQ(fork_handler_calls, 2 * i + 2);  // prepare and parent
  }
  alarm(0);
}

}  // namespace
