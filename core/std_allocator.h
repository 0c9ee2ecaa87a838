// rulloc::StdAllocator<T>: a std::allocator-compatible adaptor, for
// std::vector, std::map, std::unordered_map and friends.
//
//   StdAllocator<T> ──► BasicAllocator<Table>*   (the process allocator by default)
//
// Copies (and rebinds) share the instance and compare equal exactly when
// they point at the same one.
#ifndef RULLOC_CORE_STD_ALLOCATOR_H_
#define RULLOC_CORE_STD_ALLOCATOR_H_

#include <cstddef>
#include <limits>
#include <new>

#include "core/allocator.h"

namespace rulloc {

template <class T, class Table = DefaultBuckets>
class StdAllocator {
 public:
  using value_type = T;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  template <class U>
  struct rebind {
    using other = StdAllocator<U, Table>;
  };

  StdAllocator() noexcept : instance_(&ProcessInstance<Table>()) {}
  explicit StdAllocator(BasicAllocator<Table>& instance) noexcept : instance_(&instance) {}
  template <class U>
  StdAllocator(const StdAllocator<U, Table>& other) noexcept : instance_(other.instance()) {}

  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    void* p = instance_->allocate(n * sizeof(T), alignof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept { instance_->deallocate(p, n * sizeof(T), alignof(T)); }

  BasicAllocator<Table>* instance() const noexcept { return instance_; }

  template <class U>
  bool operator==(const StdAllocator<U, Table>& other) const noexcept {
    return instance_ == other.instance();
  }

 private:
  BasicAllocator<Table>* instance_;
};

}  // namespace rulloc

#endif  // RULLOC_CORE_STD_ALLOCATOR_H_
