// A program whose operator new counts calls and forwards to the next
// definition (librulloc.so's, when preloaded), as allocation profilers do.
// When Rulloc fails, its failure path must not take this program's operator
// new for the runtime's: that would call back into Rulloc forever.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <new>

namespace {
unsigned long calls = 0;
volatile std::size_t too_much = SIZE_MAX / 2;
void* volatile sink;
}  // namespace

void* operator new(std::size_t size) {
  using New = void* (*)(std::size_t);
  static const New next = reinterpret_cast<New>(dlsym(RTLD_NEXT, "_Znwm"));
  ++calls;
  return next(size);
}

int main() {
  try {
    sink = ::operator new(too_much);
    std::fprintf(stderr, "FAIL: operator new returned\n");
    return 1;
  } catch (const std::bad_alloc&) {
  }
  if (calls != 1) {
    std::fprintf(stderr, "FAIL: the forwarding operator new ran %lu times, not once\n", calls);
    return 1;
  }
  std::printf("a forwarding operator new over the preloaded library: bad_alloc\n");
  return 0;
}
