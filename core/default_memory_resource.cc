#include "core/memory_resource.h"

namespace rulloc {

MemoryResource* DefaultMemoryResource() {
  static MemoryResource* const resource =
      new (DefaultAllocator().allocate(sizeof(MemoryResource), alignof(MemoryResource)))
          MemoryResource(DefaultAllocator());
  return resource;
}

}  // namespace rulloc
