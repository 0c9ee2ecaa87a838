// Every C++ operator new and delete, over Rulloc. When memory runs out,
// the same operator of the program's C++ runtime (the next definition after
// Rulloc's, found with dlsym(RTLD_NEXT)) takes over: it calls the
// new-handler and throws std::bad_alloc, or for the nothrow forms returns
// nullptr, by the standard's rules, and allocates through Rulloc's malloc.
// So the library needs no C++ runtime of its own: a C program that preloads
// it does not load libstdc++ (about 0.4 ms per process start).
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "concurrency/thread_cache.h"
#include "core/c_api.h"

namespace {

// The runtime's definition of the operator named `mangled`, looked up on
// the first failure and kept.
template <class Fn>
Fn NextDefinition(std::atomic<void*>& cached, const char* mangled) {
  void* fn = cached.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = dlsym(RTLD_NEXT, mangled);
    cached.store(fn, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(fn);
}

[[noreturn]] void NoRuntimeToThrow() {
  static const char kLine[] =
      "rulloc: out of memory in operator new, and no C++ runtime to throw std::bad_alloc\n";
  ssize_t ignored = write(STDERR_FILENO, kLine, sizeof(kLine) - 1);
  (void)ignored;
  abort();
}

// Passed to the runtime's nothrow forms (std::nothrow is the runtime's).
constexpr std::nothrow_t kNothrow{};

using New = void* (*)(size_t);
using NewNothrow = void* (*)(size_t, const std::nothrow_t&) noexcept;
using NewAligned = void* (*)(size_t, std::align_val_t);
using NewAlignedNothrow = void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept;

constinit std::atomic<void*> runtime_new{nullptr};
constinit std::atomic<void*> runtime_new_array{nullptr};
constinit std::atomic<void*> runtime_new_nothrow{nullptr};
constinit std::atomic<void*> runtime_new_array_nothrow{nullptr};
constinit std::atomic<void*> runtime_new_aligned{nullptr};
constinit std::atomic<void*> runtime_new_array_aligned{nullptr};
constinit std::atomic<void*> runtime_new_aligned_nothrow{nullptr};
constinit std::atomic<void*> runtime_new_array_aligned_nothrow{nullptr};

// The slow paths, out of line: the fast paths above them stay small.
__attribute__((noinline)) void* NewFailed(size_t size) {
  if (New next = NextDefinition<New>(runtime_new, "_Znwm")) return next(size);
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* NewArrayFailed(size_t size) {
  if (New next = NextDefinition<New>(runtime_new_array, "_Znam")) return next(size);
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* NewNothrowFailed(size_t size) noexcept {
  NewNothrow next = NextDefinition<NewNothrow>(runtime_new_nothrow, "_ZnwmRKSt9nothrow_t");
  return next != nullptr ? next(size, kNothrow) : nullptr;
}
__attribute__((noinline)) void* NewArrayNothrowFailed(size_t size) noexcept {
  NewNothrow next = NextDefinition<NewNothrow>(runtime_new_array_nothrow, "_ZnamRKSt9nothrow_t");
  return next != nullptr ? next(size, kNothrow) : nullptr;
}
__attribute__((noinline)) void* NewAlignedFailed(size_t size, std::align_val_t alignment) {
  if (NewAligned next = NextDefinition<NewAligned>(runtime_new_aligned, "_ZnwmSt11align_val_t")) {
    return next(size, alignment);
  }
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* NewArrayAlignedFailed(size_t size, std::align_val_t alignment) {
  if (NewAligned next =
          NextDefinition<NewAligned>(runtime_new_array_aligned, "_ZnamSt11align_val_t")) {
    return next(size, alignment);
  }
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* NewAlignedNothrowFailed(size_t size,
                                                        std::align_val_t alignment) noexcept {
  NewAlignedNothrow next = NextDefinition<NewAlignedNothrow>(runtime_new_aligned_nothrow,
                                                             "_ZnwmSt11align_val_tRKSt9nothrow_t");
  return next != nullptr ? next(size, alignment, kNothrow) : nullptr;
}
__attribute__((noinline)) void* NewArrayAlignedNothrowFailed(size_t size,
                                                             std::align_val_t alignment) noexcept {
  NewAlignedNothrow next = NextDefinition<NewAlignedNothrow>(runtime_new_array_aligned_nothrow,
                                                             "_ZnamSt11align_val_tRKSt9nothrow_t");
  return next != nullptr ? next(size, alignment, kNothrow) : nullptr;
}

void* AlignedOrNull(size_t size, std::align_val_t alignment) noexcept {
  return static_cast<size_t>(alignment) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__
             ? rulloc_malloc(size)
             : rulloc_aligned_alloc(static_cast<size_t>(alignment), size);
}

}  // namespace

#define RULLOC_EXPORT __attribute__((visibility("default")))

RULLOC_EXPORT void* operator new(size_t size) {
  void* p = rulloc::internal::CachedMalloc(size);
  return p != nullptr ? p : NewFailed(size);
}
RULLOC_EXPORT void* operator new[](size_t size) {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : NewArrayFailed(size);
}
RULLOC_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : NewNothrowFailed(size);
}
RULLOC_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : NewArrayNothrowFailed(size);
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment) {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : NewAlignedFailed(size, alignment);
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment) {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : NewArrayAlignedFailed(size, alignment);
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment,
                                 const std::nothrow_t&) noexcept {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : NewAlignedNothrowFailed(size, alignment);
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment,
                                   const std::nothrow_t&) noexcept {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : NewArrayAlignedNothrowFailed(size, alignment);
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
