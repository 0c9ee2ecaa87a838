// What the running Linux kernel offers, for tests whose expectations depend
// on it.
#ifndef RULLOC_TESTS_KERNEL_H_
#define RULLOC_TESTS_KERNEL_H_

#include <sys/prctl.h>
#include <sys/utsname.h>

#include <cstdio>

namespace rulloc::kernel {

// Whether the running kernel is `major`.`minor` or later.
inline bool AtLeast(int major, int minor) {
  utsname name;
  int running_major = 0, running_minor = 0;
  if (uname(&name) != 0 ||
      std::sscanf(name.release, "%d.%d", &running_major, &running_minor) != 2) {
    return false;
  }
  return running_major > major || (running_major == major && running_minor >= minor);
}

// While it lives, the process's pages fault in as small pages, whatever the
// system's transparent huge page mode (PR_SET_THP_DISABLE): for tests that
// count resident pages, which "always" would back 2 MiB at a time.
// Pages already backed by a huge page stay so: a test also needs memory
// mapped after it starts.
class SmallPagesOnly {
 public:
  SmallPagesOnly() : was_(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1) {
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
  }
  ~SmallPagesOnly() { prctl(PR_SET_THP_DISABLE, was_ ? 1 : 0, 0, 0, 0); }
  SmallPagesOnly(const SmallPagesOnly&) = delete;
  SmallPagesOnly& operator=(const SmallPagesOnly&) = delete;

 private:
  const bool was_;
};

}  // namespace rulloc::kernel

#endif  // RULLOC_TESTS_KERNEL_H_
