// Every C++ operator new and delete, over Rulloc. When Rulloc has no memory
// for a new, the failure path follows the standard: call the new-handler
// until it gives up, then throw std::bad_alloc (the nothrow forms return
// nullptr instead).
//
// Two builds of this file (shim/BUILD.bazel):
//   - //shim:shim (cc_binary(malloc = ...)): the program links its C++
//     runtime anyway, so the failure path is written here, with exceptions.
//   - //shim:shim_preload (librulloc.so, RULLOC_NEW_FAILURE_FROM_RUNTIME):
//     the library needs no C++ runtime of its own, so that a preloaded C
//     program does not load one (about 0.4 ms per process start). The
//     failure path is that of the caller's C++ runtime (runtime_new.h).
#include <cstddef>
#include <cstdint>
#include <new>

#include "concurrency/thread_cache.h"
#include "core/c_api.h"
#include "shim/runtime_new.h"

#if defined(RULLOC_NEW_FAILURE_FROM_RUNTIME)
#include <unistd.h>

#include <cstdlib>
#endif

namespace {

void* AlignedOrNull(size_t size, std::align_val_t alignment) noexcept {
  return static_cast<size_t>(alignment) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__
             ? rulloc_malloc(size)
             : rulloc_aligned_alloc(static_cast<size_t>(alignment), size);
}

using namespace rulloc::shim;  // NewForm, kNew, ...

#if defined(RULLOC_NEW_FAILURE_FROM_RUNTIME)

[[noreturn]] void NoRuntimeToThrow() {
  static const char kLine[] =
      "rulloc: out of memory in operator new, and no C++ runtime to throw std::bad_alloc\n";
  ssize_t ignored = write(STDERR_FILENO, kLine, sizeof(kLine) - 1);
  (void)ignored;
  abort();
}

// The runtime's aligned forms round the size up to the alignment without
// checking for overflow: a size within `alignment` of SIZE_MAX would wrap to
// a tiny block. Such a request cannot be met; keep it so.
size_t NoWrap(size_t size, std::align_val_t alignment) {
  const size_t mask = static_cast<size_t>(alignment) - 1;
  return size > SIZE_MAX - mask ? SIZE_MAX & ~mask : size;
}

// Passed to the runtime's nothrow forms (std::nothrow is the runtime's).
constexpr std::nothrow_t kNothrow{};

using New = void* (*)(size_t);
using NewNothrow = void* (*)(size_t, const std::nothrow_t&) noexcept;
using NewAligned = void* (*)(size_t, std::align_val_t);
using NewAlignedNothrow = void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept;

// The slow paths, out of line, so that the fast paths stay small.
__attribute__((noinline)) void* Failed(NewForm form, size_t size, const void* caller) {
  if (auto next = reinterpret_cast<New>(RuntimeNew(form, caller))) return next(size);
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* FailedNothrow(NewForm form, size_t size,
                                              const void* caller) noexcept {
  auto next = reinterpret_cast<NewNothrow>(RuntimeNew(form, caller));
  return next != nullptr ? next(size, kNothrow) : nullptr;
}
__attribute__((noinline)) void* FailedAligned(NewForm form, size_t size, std::align_val_t alignment,
                                              const void* caller) {
  if (auto next = reinterpret_cast<NewAligned>(RuntimeNew(form, caller))) {
    return next(NoWrap(size, alignment), alignment);
  }
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* FailedAlignedNothrow(NewForm form, size_t size,
                                                     std::align_val_t alignment,
                                                     const void* caller) noexcept {
  auto next = reinterpret_cast<NewAlignedNothrow>(RuntimeNew(form, caller));
  return next != nullptr ? next(NoWrap(size, alignment), alignment, kNothrow) : nullptr;
}

#else  // the program's C++ runtime is linked in with the shim

void* AllocateOrThrow(size_t size, std::align_val_t alignment) {
  for (;;) {
    if (void* p = AlignedOrNull(size, alignment)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}
void* AllocateOrNull(size_t size, std::align_val_t alignment) noexcept {
  try {
    return AllocateOrThrow(size, alignment);
  } catch (...) {
    return nullptr;
  }
}

constexpr std::align_val_t kDefault{__STDCPP_DEFAULT_NEW_ALIGNMENT__};
__attribute__((noinline)) void* Failed(NewForm, size_t size, const void*) {
  return AllocateOrThrow(size, kDefault);
}
__attribute__((noinline)) void* FailedNothrow(NewForm, size_t size, const void*) noexcept {
  return AllocateOrNull(size, kDefault);
}
__attribute__((noinline)) void* FailedAligned(NewForm, size_t size, std::align_val_t alignment,
                                              const void*) {
  return AllocateOrThrow(size, alignment);
}
__attribute__((noinline)) void* FailedAlignedNothrow(NewForm, size_t size,
                                                     std::align_val_t alignment,
                                                     const void*) noexcept {
  return AllocateOrNull(size, alignment);
}

#endif

}  // namespace

#define RULLOC_EXPORT __attribute__((visibility("default")))
// The code that called the operator new it is used in: its C++ runtime
// throws the exception.
#define RULLOC_CALLER() __builtin_return_address(0)

RULLOC_EXPORT void* operator new(size_t size) {
  void* p = rulloc::internal::CachedMalloc(size);
  return p != nullptr ? p : Failed(kNew, size, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new[](size_t size) {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : Failed(kNewArray, size, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : FailedNothrow(kNewNothrow, size, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : FailedNothrow(kNewArrayNothrow, size, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment) {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : FailedAligned(kNewAligned, size, alignment, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment) {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : FailedAligned(kNewArrayAligned, size, alignment, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment,
                                 const std::nothrow_t&) noexcept {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p
                      : FailedAlignedNothrow(kNewAlignedNothrow, size, alignment, RULLOC_CALLER());
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment,
                                   const std::nothrow_t&) noexcept {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr
             ? p
             : FailedAlignedNothrow(kNewArrayAlignedNothrow, size, alignment, RULLOC_CALLER());
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
