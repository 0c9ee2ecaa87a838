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
//     failure path is that of the program's C++ runtime: the same operator
//     of libstdc++ (or libc++), found by name once the runtime is loaded,
//     which calls the handler, retries through Rulloc's malloc and throws.
#include <cstddef>
#include <cstdint>
#include <new>

#include "concurrency/thread_cache.h"
#include "core/c_api.h"

#if defined(RULLOC_NEW_FAILURE_FROM_RUNTIME)
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#endif

namespace {

void* AlignedOrNull(size_t size, std::align_val_t alignment) noexcept {
  return static_cast<size_t>(alignment) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__
             ? rulloc_malloc(size)
             : rulloc_aligned_alloc(static_cast<size_t>(alignment), size);
}

// The eight forms of operator new, which the failure paths below name.
enum Form {
  kNew,
  kNewArray,
  kNewNothrow,
  kNewArrayNothrow,
  kNewAligned,
  kNewArrayAligned,
  kNewAlignedNothrow,
  kNewArrayAlignedNothrow,
  kForms
};

#if defined(RULLOC_NEW_FAILURE_FROM_RUNTIME)

// The mangled names below spell size_t as `m` (unsigned long).
static_assert(std::is_same_v<std::size_t, unsigned long>);

constexpr const char* kMangled[kForms] = {
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
};

// The runtime's definitions, by name in the runtime itself: not whatever
// library comes next in lookup order (another allocator's operator new
// would hand out blocks Rulloc cannot free), and found even when the
// runtime came in with an RTLD_LOCAL dlopen. Looked up when the shim starts
// and again on a failure while still missing. The dlopen below takes a
// reference that is never dropped, so the runtime stays loaded and the
// pointers valid.
//
// libstdc++ is asked first, then libc++. A process with both loaded throws
// libstdc++'s std::bad_alloc, which libc++ code catches only with `...`;
// without Rulloc, such code's operator new would bind to libstdc++'s all
// the same whenever libstdc++ is in the global scope (the usual case).
constinit std::atomic<void*> runtime_new[kForms] = {};

// True if a library whose file name is `name` is loaded. Walks the loaded
// objects rather than trying a dlopen, whose failure would leave an error
// string (allocated with malloc) for the program's next dlerror().
bool Loaded(const char* name) {
  return dl_iterate_phdr(
             [](dl_phdr_info* info, size_t, void* wanted) {
               const char* path = info->dlpi_name;
               const char* base = std::strrchr(path, '/');
               return std::strcmp(base != nullptr ? base + 1 : path,
                                  static_cast<const char*>(wanted)) == 0
                          ? 1
                          : 0;
             },
             const_cast<char*>(name)) != 0;
}

void* RuntimeDefinition(Form form) {
  void* fn = runtime_new[form].load(std::memory_order_acquire);
  if (fn != nullptr) return fn;
  for (const char* runtime : {"libstdc++.so.6", "libc++.so.1"}) {
    if (!Loaded(runtime)) continue;
    void* handle = dlopen(runtime, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    for (int f = 0; f < kForms; ++f) {
      if (void* found = dlsym(handle, kMangled[f])) {
        runtime_new[f].store(found, std::memory_order_release);
      }
    }
    return runtime_new[form].load(std::memory_order_acquire);
  }
  return nullptr;
}

// Called from the shim's start-up: a C++ program's runtime is loaded by then.
__attribute__((constructor(102))) void FindRuntimeNew() { RuntimeDefinition(kNew); }

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
__attribute__((noinline)) void* Failed(Form form, size_t size) {
  if (auto next = reinterpret_cast<New>(RuntimeDefinition(form))) return next(size);
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* FailedNothrow(Form form, size_t size) noexcept {
  auto next = reinterpret_cast<NewNothrow>(RuntimeDefinition(form));
  return next != nullptr ? next(size, kNothrow) : nullptr;
}
__attribute__((noinline)) void* FailedAligned(Form form, size_t size, std::align_val_t alignment) {
  if (auto next = reinterpret_cast<NewAligned>(RuntimeDefinition(form))) {
    return next(NoWrap(size, alignment), alignment);
  }
  NoRuntimeToThrow();
}
__attribute__((noinline)) void* FailedAlignedNothrow(Form form, size_t size,
                                                     std::align_val_t alignment) noexcept {
  auto next = reinterpret_cast<NewAlignedNothrow>(RuntimeDefinition(form));
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
__attribute__((noinline)) void* Failed(Form, size_t size) {
  return AllocateOrThrow(size, kDefault);
}
__attribute__((noinline)) void* FailedNothrow(Form, size_t size) noexcept {
  return AllocateOrNull(size, kDefault);
}
__attribute__((noinline)) void* FailedAligned(Form, size_t size, std::align_val_t alignment) {
  return AllocateOrThrow(size, alignment);
}
__attribute__((noinline)) void* FailedAlignedNothrow(Form, size_t size,
                                                     std::align_val_t alignment) noexcept {
  return AllocateOrNull(size, alignment);
}

#endif

}  // namespace

#define RULLOC_EXPORT __attribute__((visibility("default")))

RULLOC_EXPORT void* operator new(size_t size) {
  void* p = rulloc::internal::CachedMalloc(size);
  return p != nullptr ? p : Failed(kNew, size);
}
RULLOC_EXPORT void* operator new[](size_t size) {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : Failed(kNewArray, size);
}
RULLOC_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : FailedNothrow(kNewNothrow, size);
}
RULLOC_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  void* p = rulloc_malloc(size);
  return p != nullptr ? p : FailedNothrow(kNewArrayNothrow, size);
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment) {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : FailedAligned(kNewAligned, size, alignment);
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment) {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : FailedAligned(kNewArrayAligned, size, alignment);
}
RULLOC_EXPORT void* operator new(size_t size, std::align_val_t alignment,
                                 const std::nothrow_t&) noexcept {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : FailedAlignedNothrow(kNewAlignedNothrow, size, alignment);
}
RULLOC_EXPORT void* operator new[](size_t size, std::align_val_t alignment,
                                   const std::nothrow_t&) noexcept {
  void* p = AlignedOrNull(size, alignment);
  return p != nullptr ? p : FailedAlignedNothrow(kNewArrayAlignedNothrow, size, alignment);
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
