#include "bench/peer_allocators.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/allocator.h"
#include "core/c_api.h"

extern "C" void* __libc_malloc(size_t);
extern "C" void __libc_free(void*);

namespace rulloc::bench {
namespace {

constexpr char kJemalloc[] = "libjemalloc.so.2";

rulloc::Allocator& BucketPathInstance() {
  static rulloc::Allocator* instance = new rulloc::Allocator();
  return *instance;
}

void AddPeer(std::vector<PeerAllocator>& out, const char* name, const char* library,
             const char* malloc_symbol, const char* free_symbol) {
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "note: %s not loaded (%s)\n", name, dlerror());
    return;
  }
  auto* m = reinterpret_cast<void* (*)(size_t)>(dlsym(handle, malloc_symbol));
  auto* f = reinterpret_cast<void (*)(void*)>(dlsym(handle, free_symbol));
  if (m == nullptr || f == nullptr) {
    std::fprintf(stderr, "note: %s lacks %s/%s\n", name, malloc_symbol, free_symbol);
    return;
  }
  out.push_back({name, m, f});
}

}  // namespace

void PreloadJemallocAndReexec(char** argv) {
  // jemalloc uses initial-exec TLS, so it cannot be dlopen()ed; a process
  // that has it preloaded can still reach it by dlopen() of the same name.
  void* handle = dlopen(kJemalloc, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (handle != nullptr || getenv("RULLOC_BENCH_REEXECUTED") != nullptr) return;
  void* probe = dlopen(kJemalloc, RTLD_NOW | RTLD_LOCAL);
  if (probe != nullptr) return;
  if (access("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", R_OK) != 0) return;
  setenv("RULLOC_BENCH_REEXECUTED", "1", 1);
  setenv("LD_PRELOAD", kJemalloc, 1);
  execv("/proc/self/exe", argv);
}

const std::vector<PeerAllocator>& PeerAllocators() {
  static const std::vector<PeerAllocator> peers = [] {
    std::vector<PeerAllocator> out;
    out.push_back({"rulloc", rulloc_malloc, rulloc_free});
    out.push_back({"rulloc-nocache", [](size_t n) { return BucketPathInstance().allocate(n); },
                   [](void* p) { BucketPathInstance().deallocate(p); }});
    // glibc's own entry points, whatever malloc the process ended up with.
    out.push_back({"glibc", __libc_malloc, __libc_free});
    AddPeer(out, "mimalloc", "libmimalloc.so.2", "mi_malloc", "mi_free");
    AddPeer(out, "jemalloc", kJemalloc, "malloc", "free");
    AddPeer(out, "tcmalloc", "libtcmalloc_minimal.so.4", "tc_malloc", "tc_free");
    return out;
  }();
  return peers;
}

}  // namespace rulloc::bench
