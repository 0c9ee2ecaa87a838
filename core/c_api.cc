#include "core/c_api.h"

#include <errno.h>

#include "core/allocator.h"

using rulloc::DefaultAllocator;

extern "C" {

void* rulloc_malloc(size_t size) { return DefaultAllocator().allocate(size); }

void rulloc_free(void* ptr) { DefaultAllocator().deallocate(ptr); }

void rulloc_free_sized(void* ptr, size_t size) { DefaultAllocator().deallocate(ptr, size); }

void* rulloc_calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return DefaultAllocator().allocate_zeroed(bytes);
}

void* rulloc_realloc(void* ptr, size_t size) {
  if (ptr != nullptr && size == 0) {
    DefaultAllocator().deallocate(ptr);
    return nullptr;
  }
  return DefaultAllocator().reallocate(ptr, size);
}

void* rulloc_aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0) {
    errno = EINVAL;
    return nullptr;
  }
  return DefaultAllocator().allocate(size, alignment);
}

void* rulloc_memalign(size_t alignment, size_t size) {
  return rulloc_aligned_alloc(alignment, size);
}

int rulloc_posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  const int saved = errno;
  void* p = DefaultAllocator().allocate(size, alignment);
  if (p == nullptr) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

size_t rulloc_usable_size(const void* ptr) {
  return ptr == nullptr ? 0 : DefaultAllocator().usable_size(ptr);
}

}  // extern "C"
