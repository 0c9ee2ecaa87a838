// The malloc family and operator new/delete of a binary whose allocator is
// Rulloc (cc_test(malloc = "//:malloc")).
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "gtest/gtest.h"
#include "platform/pages.h"

namespace {

// Runs during static initialisation, before main(): allocation, a string,
// and a thread, all served by Rulloc.
struct EarlyUser {
  EarlyUser() {
    void* p = malloc(100);
    owned_early = rulloc::DefaultAllocator().owns(p);
    free(p);
    std::thread t([this] { text = std::string(1000, 'x'); });
    t.join();
  }
  bool owned_early = false;
  std::string text;
};
EarlyUser early;

thread_local std::vector<int> tls_vector(1000, 7);  // allocates in a TLS initialiser

extern "C" struct mallinfo __libc_mallinfo();
extern "C" int __libc_mallopt(int param, int value);

bool Aligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(MallocContractsTest, RullocServesTheProcess) {
  EXPECT_TRUE(early.owned_early);
  EXPECT_EQ(early.text.size(), 1000u);
  void* p = malloc(64);
  EXPECT_TRUE(rulloc::DefaultAllocator().owns(p));
  free(p);
  int* q = new int(5);
  EXPECT_TRUE(rulloc::DefaultAllocator().owns(q));
  delete q;
  std::thread([] { EXPECT_TRUE(rulloc::DefaultAllocator().owns(tls_vector.data())); }).join();
}

TEST(MallocContractsTest, MallocFamily) {
  void* zero = malloc(0);
  ASSERT_NE(zero, nullptr);
  free(zero);
  errno = 0;
  EXPECT_EQ(malloc(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(calloc(SIZE_MAX / 8, 16), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  auto* z = static_cast<unsigned char*>(calloc(100, 100));
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(z[i], 0);
  free(z);

  char* r = static_cast<char*>(realloc(nullptr, 5));
  std::strcpy(r, "abcd");
  r = static_cast<char*>(realloc(r, 100000));
  EXPECT_STREQ(r, "abcd");
  EXPECT_EQ(realloc(r, 0), nullptr);
  errno = 0;
  volatile size_t huge_count = SIZE_MAX / 2;  // opaque to the compiler's size checks
  EXPECT_EQ(reallocarray(nullptr, huge_count, 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* ra = reallocarray(nullptr, 10, 10);
  EXPECT_GE(malloc_usable_size(ra), 100u);
  free(ra);
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
}

TEST(MallocContractsTest, BigCallocStaysOutOfMemoryUntilTouched) {
  // Fresh pages are zero: a 1 GiB calloc writes none of them (as glibc's).
  // A second one, which reuses the first one's cached mapping, clears only
  // the pages the first one wrote.
  const size_t start = rulloc::platform::ResidentBytes();
  auto* table = static_cast<unsigned char*>(calloc(size_t{1} << 20, 1024));
  ASSERT_NE(table, nullptr);
  EXPECT_LT(rulloc::platform::ResidentBytes(), start + (size_t{32} << 20));
  std::memset(table, 0x7e, size_t{16} << 20);
  free(table);
  table = static_cast<unsigned char*>(calloc(size_t{1} << 20, 1024));
  ASSERT_NE(table, nullptr);
  for (size_t i = 0; i < (size_t{1} << 30); i += 4096 - 1) ASSERT_EQ(table[i], 0) << i;
  free(table);
}

TEST(MallocContractsTest, AlignedForms) {
  void* p = nullptr;
  EXPECT_EQ(posix_memalign(&p, 256, 1000), 0);
  EXPECT_TRUE(Aligned(p, 256));
  free(p);
  EXPECT_EQ(posix_memalign(&p, 3, 10), EINVAL);
  EXPECT_EQ(posix_memalign(&p, 2, 10), EINVAL);  // below sizeof(void*)
  void* a = aligned_alloc(4096, 10);
  EXPECT_TRUE(Aligned(a, 4096));
  free(a);
  errno = 0;
  EXPECT_EQ(aligned_alloc(3, 16), nullptr);
  EXPECT_EQ(errno, EINVAL);
  void* m = memalign(1 << 20, 1);
  EXPECT_TRUE(Aligned(m, 1 << 20));
  free(m);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* v = valloc(1);
  EXPECT_TRUE(Aligned(v, page));
  free(v);
  void* pv = pvalloc(1);
  EXPECT_TRUE(Aligned(pv, page));
  EXPECT_GE(malloc_usable_size(pv), page);
  free(pv);
}

// The answers documented in docs/hardening.md, "Bad inputs", one by one.
TEST(MallocContractsTest, BadInputsHaveDefinedAnswers) {
  // Sizes near SIZE_MAX: null with ENOMEM from every function.
  volatile size_t max = SIZE_MAX;  // opaque to the compiler's size checks
  for (size_t minus :
       {size_t{0}, size_t{1}, size_t{15}, size_t{4096}, size_t{1} << 20, (size_t{1} << 63) - 1}) {
    const size_t size = max - minus;
    errno = 0;
    EXPECT_EQ(malloc(size), nullptr);
    EXPECT_EQ(errno, ENOMEM) << size;
    errno = 0;
    EXPECT_EQ(calloc(1, size), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(aligned_alloc(64, size), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(memalign(4096, size), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(valloc(size), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(pvalloc(size), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    void* untouched = &errno;
    void* out = untouched;
    EXPECT_EQ(posix_memalign(&out, 64, size), ENOMEM);
    EXPECT_EQ(out, untouched);
    void* p = malloc(100);
    errno = 0;
    EXPECT_EQ(realloc(p, size), nullptr);  // p stays valid
    EXPECT_EQ(errno, ENOMEM);
    free(p);
  }
  // calloc: an overflowing product is ENOMEM; a zero product is a block.
  errno = 0;
  EXPECT_EQ(calloc(max / 2 + 1, 2), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* none = calloc(0, max);
  EXPECT_NE(none, nullptr);
  free(none);
  // Alignment 0 or not a power of two: EINVAL from aligned_alloc and
  // posix_memalign (which also wants a multiple of sizeof(void*));
  // memalign rounds up, as glibc's does.
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{24}, size_t{4097}}) {
    errno = 0;
    EXPECT_EQ(aligned_alloc(alignment, 64), nullptr) << alignment;
    EXPECT_EQ(errno, EINVAL);
    void* out = nullptr;
    EXPECT_EQ(posix_memalign(&out, alignment, 64), EINVAL) << alignment;
    EXPECT_EQ(out, nullptr);
  }
  void* rounded = memalign(24, 10);
  EXPECT_TRUE(Aligned(rounded, 32));
  free(rounded);
  void* zero_alignment = memalign(0, 10);
  EXPECT_NE(zero_alignment, nullptr);
  free(zero_alignment);
  // Alignment larger than the size, and a size that is not a multiple of
  // the alignment: both served.
  for (size_t alignment = 1; alignment <= (size_t{1} << 22); alignment <<= 1) {
    void* a = aligned_alloc(alignment, 3);
    ASSERT_NE(a, nullptr) << alignment;
    EXPECT_TRUE(Aligned(a, alignment));
    EXPECT_GE(malloc_usable_size(a), 3u);
    free(a);
  }
  // realloc to 0 frees and returns null; realloc(NULL, 0) is malloc(0).
  void* p = malloc(10);
  errno = 0;
  EXPECT_EQ(realloc(p, 0), nullptr);
  EXPECT_EQ(errno, 0);
  void* fresh = realloc(nullptr, 0);
  EXPECT_NE(fresh, nullptr);
  free(fresh);
  free(nullptr);  // a no-op
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
}

TEST(MallocContractsTest, IntrospectionAndTrim) {
  std::vector<void*> blocks;
  for (int i = 0; i < 100000; ++i) blocks.push_back(malloc(48));
  const struct mallinfo2 busy = mallinfo2();
  EXPECT_GE(busy.uordblks, 100000u * 48);
  EXPECT_GE(busy.arena, busy.uordblks);
  for (void* p : blocks) free(p);
  malloc_trim(0);
  const struct mallinfo2 idle = mallinfo2();
  EXPECT_LT(idle.arena, busy.arena);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 1), 0);  // no tunables: declined
  EXPECT_EQ(__libc_mallopt(M_ARENA_MAX, 1), 0);
  EXPECT_GE(__libc_mallinfo().arena, 0);
  // A huge block counts as glibc's mmapped chunks do: in hblks and hblkhd,
  // not in arena.
  const struct mallinfo2 before = mallinfo2();
  void* volatile huge = malloc(size_t{64} << 20);  // (volatile: not elided)
  const struct mallinfo2 after = mallinfo2();
  EXPECT_EQ(after.hblks, before.hblks + 1);
  EXPECT_GE(after.hblkhd, before.hblkhd + (size_t{64} << 20));
  EXPECT_LT(after.arena, before.arena + (size_t{1} << 20));
  EXPECT_EQ(__libc_mallinfo().hblkhd, static_cast<int>(after.hblkhd));
  free(huge);
}

int handler_calls = 0;
void CountingHandler() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}

TEST(MallocContractsTest, OperatorNewFollowsTheStandard) {
  EXPECT_THROW((void)::operator new(SIZE_MAX / 2), std::bad_alloc);
  EXPECT_EQ(::operator new(SIZE_MAX / 2, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](SIZE_MAX / 2, std::nothrow), nullptr);
  std::set_new_handler(CountingHandler);
  EXPECT_THROW((void)::operator new(SIZE_MAX / 2), std::bad_alloc);
  EXPECT_EQ(handler_calls, 3);  // called until it uninstalled itself

  struct alignas(512) Wide {
    char bytes[512];
  };
  auto* w = new Wide[3];
  EXPECT_TRUE(Aligned(w, 512));
  delete[] w;
  auto* one = new Wide;
  EXPECT_TRUE(Aligned(one, 512));
  delete one;
  void* n = ::operator new (100, std::align_val_t{64}, std::nothrow);
  EXPECT_TRUE(Aligned(n, 64));
  ::operator delete (n, std::align_val_t{64}, std::nothrow);
  auto* sized = new long[10];
  ::operator delete[](sized, 10 * sizeof(long));
}

TEST(MallocContractsDeathTest, ForeignPointersAreRejected) {
  void* mapped = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_DEATH(free(mapped), "rulloc: free of a pointer not allocated by rulloc: 0x");
  static char static_buffer[64];
  EXPECT_DEATH(free(static_buffer), "rulloc: free of a pointer not allocated by rulloc");
  munmap(mapped, 4096);
}

TEST(MallocContractsDeathTest, DoubleFreeIsCaught) {
  EXPECT_DEATH(
      {
        void* volatile p = malloc(40000);  // large path: checked on every free
        free(p);
        free(p);
      },
      "rulloc: double free");
}

}  // namespace
