// The allocators a benchmark compares, as plain functions, all in one
// process: Rulloc (thread caches), Rulloc's bucket path alone (a standalone
// instance, no caches), glibc's malloc, and the Debian builds of mimalloc,
// jemalloc and tcmalloc, loaded with dlopen(RTLD_LOCAL) so that they do not
// replace the process's malloc.
#ifndef RULLOC_BENCH_PEER_ALLOCATORS_H_
#define RULLOC_BENCH_PEER_ALLOCATORS_H_

#include <cstddef>
#include <string>
#include <vector>

namespace rulloc::bench {

struct PeerAllocator {
  std::string name;
  void* (*malloc)(size_t);
  void (*free)(void*);
  void* (*realloc)(void*, size_t);
};

// Call first in main(): re-executes the program with jemalloc preloaded
// when that is the only way to load it (its TLS model forbids dlopen). The
// process's own malloc then is jemalloc; "glibc" still measures glibc,
// through __libc_malloc/__libc_free.
void PreloadJemallocAndReexec(char** argv);

// The allocators found on this machine, Rulloc first.
const std::vector<PeerAllocator>& PeerAllocators();

}  // namespace rulloc::bench

#endif  // RULLOC_BENCH_PEER_ALLOCATORS_H_
