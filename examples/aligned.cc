// Any power-of-two alignment, from 1 byte to 1 MiB.
#include <cstdint>
#include <cstdio>

#include "core/allocator.h"

int main() {
  rulloc::Allocator allocator;
  for (size_t alignment = 1; alignment <= (size_t{1} << 20); alignment <<= 1) {
    void* p = allocator.allocate(100, alignment);
    const bool ok = p != nullptr && reinterpret_cast<uintptr_t>(p) % alignment == 0;
    std::printf("alignment %7zu: %s\n", alignment, ok ? "aligned" : "NOT ALIGNED");
    allocator.deallocate(p);
  }
  void* bad = allocator.allocate(100, 24);
  std::printf("alignment      24: %s\n", bad == nullptr ? "rejected (EINVAL)" : "accepted?!");
  return 0;
}
