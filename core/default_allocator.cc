#include "core/allocator.h"
#include "core/memory_resource.h"

namespace rulloc {
namespace {

// Constant-initialised storage whose destructor never runs: the process
// allocator must outlive every static destructor that may still free.
union NeverDestroyed {
  constexpr NeverDestroyed() : allocator() {}
  ~NeverDestroyed() {}
  Allocator allocator;
};

constinit NeverDestroyed default_instance;

}  // namespace

Allocator& DefaultAllocator() { return default_instance.allocator; }

MemoryResource* DefaultMemoryResource() {
  static MemoryResource* const resource = new (DefaultAllocator().allocate(
      sizeof(MemoryResource), alignof(MemoryResource))) MemoryResource(DefaultAllocator());
  return resource;
}

}  // namespace rulloc
