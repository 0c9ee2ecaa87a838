// rulloc::MemoryResource: a std::pmr::memory_resource over an allocator
// instance, for std::pmr containers.
//
//   std::pmr::vector<T> ──► polymorphic_allocator ──► MemoryResource ──► BasicAllocator
#ifndef RULLOC_CORE_MEMORY_RESOURCE_H_
#define RULLOC_CORE_MEMORY_RESOURCE_H_

#include <memory_resource>
#include <new>

#include "core/allocator.h"

namespace rulloc {

template <class Table = DefaultBuckets>
class BasicMemoryResource final : public std::pmr::memory_resource {
 public:
  BasicMemoryResource() : instance_(&ProcessInstance<Table>()) {}
  explicit BasicMemoryResource(BasicAllocator<Table>& instance) : instance_(&instance) {}

  BasicAllocator<Table>& instance() const { return *instance_; }

 private:
  void* do_allocate(size_t bytes, size_t alignment) override {
    void* p = instance_->allocate(bytes, alignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, size_t bytes, size_t alignment) override {
    instance_->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    auto* same = dynamic_cast<const BasicMemoryResource*>(&other);
    return same != nullptr && same->instance_ == instance_;
  }

  BasicAllocator<Table>* instance_;
};

using MemoryResource = BasicMemoryResource<DefaultBuckets>;

// A process-wide resource over DefaultAllocator().
MemoryResource* DefaultMemoryResource();

}  // namespace rulloc

#endif  // RULLOC_CORE_MEMORY_RESOURCE_H_
