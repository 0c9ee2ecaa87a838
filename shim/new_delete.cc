// Every C++ operator new and delete, over Rulloc. new loops on the
// new-handler and then throws std::bad_alloc; the nothrow forms return
// nullptr instead of throwing.
#include <cstddef>
#include <new>

#include "concurrency/thread_cache.h"
#include "core/c_api.h"

namespace {

void* AllocateOrThrow(size_t size, size_t alignment) {
  for (;;) {
    void* p = alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? rulloc_malloc(size)
                                                            : rulloc_aligned_alloc(alignment, size);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* AllocateOrNull(size_t size, size_t alignment) noexcept {
  try {
    return AllocateOrThrow(size, alignment);
  } catch (...) {
    return nullptr;
  }
}

constexpr size_t kDefault = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

#define RULLOC_EXPORT __attribute__((visibility("default")))

RULLOC_EXPORT void* operator new(size_t size) {
  void* p = rulloc::internal::CachedMalloc(size);
  return p != nullptr ? p : AllocateOrThrow(size, kDefault);
}
RULLOC_EXPORT void* operator new[](size_t size) {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : AllocateOrThrow(size, kDefault);
}
RULLOC_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return AllocateOrNull(size, kDefault);
}
RULLOC_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return AllocateOrNull(size, kDefault);
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment) {
  return AllocateOrThrow(size, static_cast<size_t>(alignment));
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment) {
  return AllocateOrThrow(size, static_cast<size_t>(alignment));
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment,
                                 const std::nothrow_t&) noexcept {
  return AllocateOrNull(size, static_cast<size_t>(alignment));
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment,
                                   const std::nothrow_t&) noexcept {
  return AllocateOrNull(size, static_cast<size_t>(alignment));
}

RULLOC_EXPORT void operator delete(void* p) noexcept { rulloc::internal::CachedFreeUnlessNull(p); }
RULLOC_EXPORT void operator delete[](void* p) noexcept { rulloc_free(p); }
RULLOC_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { rulloc_free(p); }
RULLOC_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { rulloc_free(p); }
RULLOC_EXPORT void operator delete(void* p, size_t size) noexcept {
  rulloc::internal::CachedFreeSizedUnlessNull(p, size);
}
RULLOC_EXPORT void operator delete[](void* p, size_t size) noexcept { rulloc_free_sized(p, size); }
RULLOC_EXPORT void operator delete(void* p, std::align_val_t) noexcept { rulloc_free(p); }
RULLOC_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { rulloc_free(p); }
RULLOC_EXPORT void operator delete(void* p, size_t size, std::align_val_t alignment) noexcept {
  rulloc_free_aligned_sized(p, static_cast<size_t>(alignment), size);
}
RULLOC_EXPORT void operator delete[](void* p, size_t size, std::align_val_t alignment) noexcept {
  rulloc_free_aligned_sized(p, static_cast<size_t>(alignment), size);
}
RULLOC_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  rulloc_free(p);
}
RULLOC_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  rulloc_free(p);
}
