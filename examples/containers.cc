// Standard containers on Rulloc: StdAllocator<T> and a pmr memory resource.
#include <cstdio>
#include <map>
#include <memory_resource>
#include <string>
#include <vector>

#include "core/memory_resource.h"
#include "core/std_allocator.h"

int main() {
  rulloc::Allocator instance;

  rulloc::StdAllocator<int> ints(instance);
  std::vector<int, rulloc::StdAllocator<int>> squares(ints);
  for (int i = 0; i < 10; ++i) squares.push_back(i * i);
  std::printf("squares:");
  for (int s : squares) std::printf(" %d", s);
  std::printf("\n");

  using Entry = std::pair<const std::string, int>;
  std::map<std::string, int, std::less<>, rulloc::StdAllocator<Entry>> ages(ints);
  ages["ada"] = 36;
  ages["alan"] = 41;
  for (const auto& [name, age] : ages) std::printf("%s is %d\n", name.c_str(), age);

  rulloc::MemoryResource resource(instance);
  std::pmr::vector<std::pmr::string> words(&resource);
  for (const char* w : {"buckets", "regions", "blocks"}) words.emplace_back(w);
  std::printf("pmr words:");
  for (const auto& w : words) std::printf(" %s", w.c_str());
  std::printf("\n");
  std::printf("blocks in use while containers live: %s\n",
              instance.stats().small_blocks_in_use > 0 ? "yes" : "no");
  return 0;
}
