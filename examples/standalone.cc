// A standalone allocator instance: allocate, grow, free, and watch its
// statistics. Destroying the instance returns all of its memory.
#include <cstdio>
#include <cstring>

#include "core/allocator.h"

int main() {
  rulloc::Allocator allocator;

  char* greeting = static_cast<char*>(allocator.allocate(32));
  std::strcpy(greeting, "hello from rulloc");
  std::printf("%s (usable %zu bytes)\n", greeting, allocator.usable_size(greeting));

  greeting = static_cast<char*>(allocator.reallocate(greeting, 100000));
  std::printf("after growing to 100000 bytes: %s\n", greeting);

  void* blocks[1000];
  for (void*& b : blocks) b = allocator.allocate(48);
  rulloc::AllocatorStats stats = allocator.stats();
  std::printf("small blocks in use: %zu, large blocks in use: %zu\n", stats.small_blocks_in_use,
              stats.large_blocks_in_use);

  for (void* b : blocks) allocator.deallocate(b);
  allocator.deallocate(greeting);
  stats = allocator.stats();
  std::printf("after freeing: small %zu, large %zu\n", stats.small_blocks_in_use,
              stats.large_blocks_in_use);
  return 0;
}
