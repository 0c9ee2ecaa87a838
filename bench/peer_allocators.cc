#include "bench/peer_allocators.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/allocator.h"
#include "core/c_api.h"

extern "C" void* __libc_malloc(size_t);
extern "C" void __libc_free(void*);
extern "C" void* __libc_realloc(void*, size_t);

namespace rulloc::bench {
namespace {

constexpr char kJemalloc[] = "libjemalloc.so.2";

rulloc::Allocator& BucketPathInstance() {
  static rulloc::Allocator* instance = new rulloc::Allocator();
  return *instance;
}

// `prefix`: what the library puts before malloc, free and realloc.
void AddPeer(std::vector<PeerAllocator>& out, const char* name, const char* library,
             const std::string& prefix) {
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "note: %s not loaded (%s)\n", name, dlerror());
    return;
  }
  auto* m = reinterpret_cast<void* (*)(size_t)>(dlsym(handle, (prefix + "malloc").c_str()));
  auto* f = reinterpret_cast<void (*)(void*)>(dlsym(handle, (prefix + "free").c_str()));
  auto* r = reinterpret_cast<void* (*)(void*, size_t)>(dlsym(handle, (prefix + "realloc").c_str()));
  if (m == nullptr || f == nullptr || r == nullptr) {
    std::fprintf(stderr, "note: %s lacks %smalloc/free/realloc\n", name, prefix.c_str());
    return;
  }
  out.push_back({name, m, f, r});
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
    out.push_back({"rulloc", rulloc_malloc, rulloc_free, rulloc_realloc});
    out.push_back({"rulloc-nocache", [](size_t n) { return BucketPathInstance().allocate(n); },
                   [](void* p) { BucketPathInstance().deallocate(p); },
                   [](void* p, size_t n) { return BucketPathInstance().reallocate(p, n); }});
    // glibc's own entry points, whatever malloc the process ended up with.
    out.push_back({"glibc", __libc_malloc, __libc_free, __libc_realloc});
    AddPeer(out, "mimalloc", "libmimalloc.so.2", "mi_");
    AddPeer(out, "jemalloc", kJemalloc, "");
    AddPeer(out, "tcmalloc", "libtcmalloc_minimal.so.4", "tc_");
    return out;
  }();
  return peers;
}

}  // namespace rulloc::bench
