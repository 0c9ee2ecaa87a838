#include "core/diagnostics.h"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace rulloc::internal {

void ReportHeapMisuse(const char* fault, const void* ptr) {
  char line[256];
  size_t n = 0;
  auto append = [&](const char* s) {
    for (; *s != '\0' && n < sizeof(line) - 1; ++s) line[n++] = *s;
  };
  append("rulloc: ");
  append(fault);
  append(": 0x");
  char hex[17];
  uintptr_t v = reinterpret_cast<uintptr_t>(ptr);
  for (int i = 15; i >= 0; --i, v >>= 4) hex[i] = "0123456789abcdef"[v & 15];
  hex[16] = '\0';
  append(hex);
  line[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, n);
  (void)ignored;
  abort();
}

}  // namespace rulloc::internal
