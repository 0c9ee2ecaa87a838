// Finds the C++ runtime's operator new for a caller (runtime_new.h).
//
//   caller ──dladdr1──► its link_map ──► is it a runtime, or which runtime
//                                        its DT_NEEDED names first
//   runtime ──dlopen(RTLD_NOLOAD)──► handle ──dlsym──► the eight forms,
//                                                      cached per runtime
//
// By name in the runtime itself: not whatever library comes next in lookup
// order (another allocator's operator new would hand out blocks Rulloc
// cannot free), and found even when the runtime came in with an RTLD_LOCAL
// dlopen (a C program loading C++ plugins). The NOLOAD dlopen takes a
// reference that is never dropped, so a cached runtime stays loaded.
#include "shim/runtime_new.h"

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace rulloc::shim {
namespace {

// The mangled names spell size_t as `m` (unsigned long).
static_assert(std::is_same_v<std::size_t, unsigned long>);
constexpr const char* kMangled[kNewForms] = {
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
};

enum Runtime { kLibstdcxx, kLibcxx, kRuntimes, kUnknown = -1 };
// The file each runtime is opened by (libc++'s operators live in libc++abi,
// a dependency of libc++ that dlsym on libc++'s handle searches).
constexpr const char* kRuntimeFile[kRuntimes] = {"libstdc++.so.6", "libc++.so.1"};

constinit std::atomic<void*> cached[kRuntimes][kNewForms] = {};

const char* BaseName(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

// Which runtime a file name (a DT_NEEDED entry or a loaded object) is.
Runtime RuntimeNamed(const char* file) {
  if (std::strcmp(file, "libstdc++.so.6") == 0) return kLibstdcxx;
  if (std::strcmp(file, "libc++.so.1") == 0 || std::strcmp(file, "libc++abi.so.1") == 0) {
    return kLibcxx;
  }
  return kUnknown;
}

// True if a library whose file name is `name` is loaded. Walks the loaded
// objects rather than trying a dlopen that may fail.
bool Loaded(const char* name) {
  return dl_iterate_phdr(
             [](dl_phdr_info* info, size_t, void* wanted) {
               return std::strcmp(BaseName(info->dlpi_name), static_cast<const char*>(wanted)) == 0
                          ? 1
                          : 0;
             },
             const_cast<char*>(name)) != 0;
}

// The runtime's definition of `form`, looked up (all forms at once) while
// not yet cached and the runtime is loaded.
void* Definition(Runtime runtime, NewForm form) {
  if (void* fn = cached[runtime][form].load(std::memory_order_acquire)) return fn;
  if (!Loaded(kRuntimeFile[runtime])) return nullptr;
  void* handle = dlopen(kRuntimeFile[runtime], RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return nullptr;
  for (int f = 0; f < kNewForms; ++f) {
    if (void* found = dlsym(handle, kMangled[f])) {
      cached[runtime][f].store(found, std::memory_order_release);
    }
  }
  return cached[runtime][form].load(std::memory_order_acquire);
}

// The runtime the code at `caller` was linked against: the object itself if
// it is a runtime (libstdc++ calls new inside), else the first runtime its
// DT_NEEDED entries name, as the loader's search of its dependencies would
// find it.
Runtime RuntimeOf(const void* caller) {
  Dl_info info;
  link_map* map = nullptr;
  if (dladdr1(caller, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
      map == nullptr) {
    return kUnknown;
  }
  if (Runtime self = RuntimeNamed(BaseName(map->l_name)); self != kUnknown) return self;
  uintptr_t strtab = 0;
  for (const ElfW(Dyn)* d = map->l_ld; d->d_tag != DT_NULL; ++d) {
    if (d->d_tag == DT_STRTAB) strtab = d->d_un.d_ptr;
  }
  if (strtab == 0) return kUnknown;
  // glibc relocates the dynamic section's addresses in place; other loaders
  // leave them relative to the load address.
  if (strtab < map->l_addr) strtab += map->l_addr;
  for (const ElfW(Dyn)* d = map->l_ld; d->d_tag != DT_NULL; ++d) {
    if (d->d_tag != DT_NEEDED) continue;
    const Runtime needed = RuntimeNamed(reinterpret_cast<const char*>(strtab + d->d_un.d_val));
    if (needed != kUnknown) return needed;
  }
  return kUnknown;
}

// At the shim's start-up: a C++ program's runtime is loaded by then, so its
// failure path later asks the loader nothing.
__attribute__((constructor(102))) void CacheLoadedRuntimes() {
  for (int r = 0; r < kRuntimes; ++r) Definition(static_cast<Runtime>(r), kNew);
}

}  // namespace

void* RuntimeNew(NewForm form, const void* caller) {
  void* of[kRuntimes];
  for (int r = 0; r < kRuntimes; ++r) of[r] = Definition(static_cast<Runtime>(r), form);
  // With both runtimes loaded, the caller's: one runtime's exception thrown
  // through the other's frames is not caught there, or crashes the unwinder.
  if (of[kLibstdcxx] != nullptr && of[kLibcxx] != nullptr) {
    const Runtime runtime = RuntimeOf(caller);
    if (runtime != kUnknown) return of[runtime];
  }
  return of[kLibstdcxx] != nullptr ? of[kLibstdcxx] : of[kLibcxx];
}

}  // namespace rulloc::shim
