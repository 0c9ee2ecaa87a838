// A custom, compile-time bucket table: a program whose objects come in a
// few known sizes gets exactly those buckets.
#include <array>
#include <cstdint>
#include <cstdio>

#include "core/allocator.h"

struct MessageBuckets {
  // Headers, small payloads, full frames.
  static constexpr std::array<uint32_t, 4> kSizes{64, 256, 1536, 9216};
};

int main() {
  rulloc::BasicAllocator<MessageBuckets> allocator;
  std::printf("%zu buckets:", allocator.bucket_count());
  for (size_t b = 0; b < allocator.bucket_count(); ++b) {
    std::printf(" %zu", allocator.bucket_size(b));
  }
  std::printf("\n");
  for (size_t request : {1, 64, 65, 1500, 9000, 20000}) {
    void* p = allocator.allocate(request);
    std::printf("request %5zu -> usable %5zu\n", request, allocator.usable_size(p));
    allocator.deallocate(p);
  }
  return 0;
}
