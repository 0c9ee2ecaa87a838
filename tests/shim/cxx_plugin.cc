// A C++ plugin for c_host.c: its operator new calls go to the preloaded
// Rulloc, whose failure path must find this plugin's C++ runtime although
// the host loaded it with RTLD_LOCAL.
#include <cstdint>
#include <cstdio>
#include <new>

namespace {
int handler_calls = 0;
void CountingHandler() {
  if (++handler_calls == 2) std::set_new_handler(nullptr);
}
volatile size_t too_much = SIZE_MAX / 2;
void* volatile sink;
}  // namespace

extern "C" __attribute__((visibility("default"))) int CheckNewInPlugin() {
  int failures = 0;
  std::set_new_handler(CountingHandler);
  try {
    sink = ::operator new(too_much);
    ++failures;
    std::fprintf(stderr, "FAIL: new returned\n");
  } catch (const std::bad_alloc&) {
  }
  if (handler_calls != 2) {
    ++failures;
    std::fprintf(stderr, "FAIL: the handler ran %d times, not 2\n", handler_calls);
  }
  if (::operator new[](too_much, std::nothrow) != nullptr) {
    ++failures;
    std::fprintf(stderr, "FAIL: nothrow new[] returned\n");
  }
  int* kept = new int[1000];
  kept[999] = 7;
  failures += kept[999] != 7;
  delete[] kept;
  return failures;
}
