#include "core/allocator.h"
#include "core/memory_resource.h"

namespace rulloc {

namespace internal {
constinit DefaultInstance default_instance;
}  // namespace internal

MemoryResource* DefaultMemoryResource() {
  static MemoryResource* const resource =
      new (DefaultAllocator().allocate(sizeof(MemoryResource), alignof(MemoryResource)))
          MemoryResource(DefaultAllocator());
  return resource;
}

}  // namespace rulloc
