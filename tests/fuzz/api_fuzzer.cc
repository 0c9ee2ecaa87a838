// libFuzzer harness for the allocation API: random sequences of every
// rulloc_* C API call (the process-wide allocator and its thread cache) and
// of every member of a standalone rulloc::Allocator, checked against a table
// of the live blocks.
//
// Every live block is filled with a pattern derived from its id (densely in
// its first 16 KiB, then one word per 16 KiB and its last 64 bytes) over its
// whole usable size, and the pattern is verified before every free and
// realloc, after a realloc (up to the smaller of the two requested sizes),
// and for every block after a flush or a trim. The harness also checks
// alignment, usable_size >= the request, that no two live blocks overlap,
// zeroed memory from calloc/allocate_zeroed, the errno/return-value
// contracts for impossible sizes and bad alignments, and after every step
// the block counts of Allocator::stats() and rulloc::GetProcessStats()
// against the table. rulloc_stats_write must give one balanced JSON line (or
// the text report) and call no malloc. Everything is freed at the end of
// each input, and the process-wide allocator must then hold no block at all.
//
// Never frees a bad pointer: misuse aborts by design (misuse_death_test).
#include <errno.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <sanitizer/allocator_interface.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"
#include "core/c_api.h"
#include "core/heap.h"
#include "core/huge.h"
#include "core/page_map.h"
#include "core/region.h"

namespace {

using rulloc::internal::PageMap;
using rulloc::internal::RegionKind;

constexpr size_t kMaxOps = 256;
constexpr size_t kMaxLiveBlocks = 64;               // per API
constexpr size_t kMaxLiveBytes = size_t{96} << 20;  // per API
constexpr size_t kMinAlign = rulloc::kMinAlignment;

// ---------------------------------------------------------------- failures

int g_step = 0;
const char* g_op = "";

[[noreturn]] __attribute__((format(printf, 4, 5))) void Fail(const char* file, int line,
                                                             const char* what, const char* format,
                                                             ...) {
  std::fprintf(stderr, "\napi_fuzzer: %s:%d: step %d (%s): %s: ", file, line, g_step, g_op, what);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
  std::abort();
}

#define CHECK(cond, ...)                                          \
  do {                                                            \
    if (!(cond)) Fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__); \
  } while (0)

// ---------------------------------------------------------------- patterns

// The pattern code is not instrumented for coverage: it is the harness's hot
// loop, and its branches say nothing about the allocator.
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))

NO_COVERAGE inline uint64_t Mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x9E3779B97F4A7C15u;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9u;
  return x ^ (x >> 32);
}

// Byte i of a block with this seed: byte (i % 8) of Mix(seed + i / 8), so
// that whole words can be written and compared at once (little-endian).
NO_COVERAGE inline uint8_t PatternByte(uint64_t seed, size_t i) {
  return static_cast<uint8_t>(Mix(seed + (i >> 3)) >> ((i & 7) * 8));
}

// The pattern covers the first 16 KiB of a block, then one word per 16 KiB,
// then its last 64 bytes: every size class is covered densely, and a huge
// block costs one page fault in four.
constexpr size_t kDense = size_t{16} << 10;
constexpr size_t kStride = size_t{16} << 10;
constexpr size_t kTail = 64;

// The byte ranges of an n-byte block that carry the pattern.
template <class F>
NO_COVERAGE void ForEachRange(size_t n, F f) {
  f(size_t{0}, std::min(n, kDense));
  if (n <= kDense) return;
  for (size_t off = kDense; off + 8 <= n; off += kStride) f(off, off + 8);
  f(std::max(kDense, n - kTail), n);
}

NO_COVERAGE void Fill(char* p, uint64_t seed, size_t n) {
  ForEachRange(n, [&](size_t b, size_t e) NO_COVERAGE {
    size_t i = b;
    for (; i < e && (i & 7) != 0; ++i) p[i] = static_cast<char>(PatternByte(seed, i));
    for (; i + 8 <= e; i += 8) {
      const uint64_t w = Mix(seed + (i >> 3));
      std::memcpy(p + i, &w, 8);
    }
    for (; i < e; ++i) p[i] = static_cast<char>(PatternByte(seed, i));
  });
}

[[noreturn]] void BadByte(const char* p, size_t n, size_t i, uint8_t want, const char* when) {
  Fail(__FILE__, __LINE__, "pattern",
       "%s: block %p (pattern over %zu bytes): byte %zu is 0x%02x, want 0x%02x", when,
       static_cast<const void*>(p), n, i, static_cast<uint8_t>(p[i]), want);
}

// Checks the pattern of an n-byte fill up to `limit` bytes.
NO_COVERAGE void Verify(const char* p, uint64_t seed, size_t n, size_t limit, const char* when) {
  ForEachRange(n, [&](size_t b, size_t e) NO_COVERAGE {
    e = std::min(e, limit);
    size_t i = b;
    for (; i < e && (i & 7) != 0; ++i) {
      if (static_cast<uint8_t>(p[i]) != PatternByte(seed, i))
        BadByte(p, n, i, PatternByte(seed, i), when);
    }
    for (; i + 8 <= e; i += 8) {
      uint64_t got;
      std::memcpy(&got, p + i, 8);
      if (got != Mix(seed + (i >> 3))) break;  // find the byte below
    }
    for (; i < e; ++i) {
      if (static_cast<uint8_t>(p[i]) != PatternByte(seed, i))
        BadByte(p, n, i, PatternByte(seed, i), when);
    }
  });
}

NO_COVERAGE void VerifyZero(const char* p, size_t n, const char* when) {
  ForEachRange(n, [&](size_t b, size_t e) NO_COVERAGE {
    for (size_t i = b; i < e; ++i) {
      if (p[i] != 0) BadByte(p, n, i, 0, when);
    }
  });
}

// ---------------------------------------------------------------- live table

struct Block {
  char* p;
  size_t size;    // requested
  size_t usable;  // usable_size when it was (re)allocated; the pattern covers it all
  uint64_t seed;
  size_t alignment = 0;  // C API: from aligned_alloc/posix_memalign/memalign (0: not);
                         // instance: the alignment it was (re)allocated with
};

// [begin, end) of every live block of both APIs.
using Intervals = std::map<uintptr_t, uintptr_t>;

class LiveTable {
 public:
  LiveTable(const char* name, Intervals* intervals) : name_(name), intervals_(*intervals) {}

  size_t count() const { return blocks_.size(); }
  size_t bytes() const { return bytes_; }
  bool full(size_t more) const {
    return blocks_.size() >= kMaxLiveBlocks || bytes_ + more > kMaxLiveBytes;
  }
  Block& at(size_t i) { return blocks_[i]; }
  const std::vector<Block>& blocks() const { return blocks_; }

  void Add(char* p, size_t size, size_t usable, uint64_t seed, size_t alignment = 0) {
    CHECK(usable >= size, "%s: usable_size(%p) = %zu < requested %zu", name_, static_cast<void*>(p),
          usable, size);
    Claim(p, usable);
    blocks_.push_back(Block{p, size, usable, seed, alignment});
    bytes_ += size;
    Fill(p, seed, usable);
  }

  // Removes block i from the table (after its pattern was verified).
  Block Remove(size_t i) {
    Block b = blocks_[i];
    blocks_[i] = blocks_.back();
    blocks_.pop_back();
    bytes_ -= b.size;
    intervals_.erase(reinterpret_cast<uintptr_t>(b.p));
    return b;
  }

  void VerifyAll(const char* when) const {
    for (const Block& b : blocks_) Verify(b.p, b.seed, b.usable, b.usable, when);
  }

 private:
  // Records [p, p + usable) and checks it overlaps no other live block.
  void Claim(char* p, size_t usable) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
    const uintptr_t end = begin + std::max<size_t>(usable, 1);
    auto next = intervals_.lower_bound(begin);
    CHECK(next == intervals_.end() || next->first >= end,
          "%s: new block [%p, +%zu) overlaps live block at 0x%zx", name_, static_cast<void*>(p),
          usable, static_cast<size_t>(next->first));
    if (next != intervals_.begin()) {
      auto prev = std::prev(next);
      CHECK(prev->second <= begin, "%s: new block [%p, +%zu) overlaps live block [0x%zx, 0x%zx)",
            name_, static_cast<void*>(p), usable, static_cast<size_t>(prev->first),
            static_cast<size_t>(prev->second));
    }
    intervals_.emplace(begin, end);
  }

  const char* name_;
  std::vector<Block> blocks_;
  Intervals& intervals_;
  size_t bytes_ = 0;
};

// ---------------------------------------------------------------- input decoding

// A size in [lo, hi], log-uniformly: small sizes are as likely as big ones.
size_t ConsumeLogUniform(FuzzedDataProvider& in, size_t lo, size_t hi) {
  const int top = 63 - __builtin_clzll(hi);
  const int bits = in.ConsumeIntegralInRange<int>(63 - __builtin_clzll(lo), top);
  const size_t from = std::max(lo, size_t{1} << bits);
  const size_t to = bits == top ? hi : std::min(hi, (size_t{2} << bits) - 1);
  return in.ConsumeIntegralInRange<size_t>(from, to);
}

// Mostly small sizes: huge blocks cost page faults, which bound the speed.
size_t ConsumeSize(FuzzedDataProvider& in) {
  const int range = in.ConsumeIntegralInRange<int>(0, 31);
  if (range < 2) return 0;
  if (range < 10) return in.ConsumeIntegralInRange<size_t>(1, 16);
  if (range < 22) return ConsumeLogUniform(in, 17, size_t{32} << 10);
  if (range < 26) return ConsumeLogUniform(in, (size_t{32} << 10) + 1, size_t{2} << 20);
  if (range < 27) return ConsumeLogUniform(in, (size_t{2} << 20) + 1, size_t{16} << 20);
  // Near a boundary of the size classes, the large buckets or a page.
  static constexpr size_t kEdges[] = {16,
                                      128,
                                      4096,
                                      size_t{32} << 10,
                                      size_t{64} << 10,
                                      size_t{128} << 10,
                                      size_t{1} << 20,
                                      size_t{2} << 20,
                                      size_t{4} << 20};
  const size_t edge = kEdges[in.ConsumeIntegralInRange<size_t>(0, std::size(kEdges) - 1)];
  const size_t delta = in.ConsumeIntegralInRange<size_t>(0, 96);
  return in.ConsumeBool() ? edge + delta : edge - std::min(edge, delta);
}

// Sizes no allocator can serve: beyond PTRDIFF_MAX or the address space.
size_t ConsumeImpossibleSize(FuzzedDataProvider& in) {
  static constexpr size_t kSizes[] = {SIZE_MAX,
                                      SIZE_MAX - 1,
                                      SIZE_MAX - 15,
                                      SIZE_MAX - 4095,
                                      SIZE_MAX / 2 + 1,
                                      size_t{PTRDIFF_MAX},
                                      size_t{PTRDIFF_MAX} - 4095,
                                      SIZE_MAX >> 2,
                                      (SIZE_MAX >> 2) - 70000,
                                      size_t{1} << 47,
                                      size_t{1} << 48};
  const size_t base = kSizes[in.ConsumeIntegralInRange<size_t>(0, std::size(kSizes) - 1)];
  return base - in.ConsumeIntegralInRange<size_t>(0, 8192);
}

// A power of two from 1 to 1 MiB, rarely up to 256 MiB.
size_t ConsumeAlignment(FuzzedDataProvider& in) {
  const int shift = in.ConsumeIntegralInRange<int>(0, 23);
  if (shift <= 20) return size_t{1} << shift;
  return size_t{1} << in.ConsumeIntegralInRange<int>(21, 28);
}

// Powers of two no mapping can be aligned to in a 47-bit address space.
size_t ConsumeImpossibleAlignment(FuzzedDataProvider& in) {
  return size_t{1} << in.ConsumeIntegralInRange<int>(47, 63);
}

// Alignments that are not powers of two.
size_t ConsumeBadAlignment(FuzzedDataProvider& in) {
  static constexpr size_t kBad[] = {
      3, 5, 6, 12, 24, 48, 100, 4097, 65535, (size_t{1} << 20) + 16, SIZE_MAX, SIZE_MAX - 1};
  return kBad[in.ConsumeIntegralInRange<size_t>(0, std::size(kBad) - 1)];
}

size_t RoundUpPow2(size_t x) {
  size_t r = 1;
  while (r < x) r <<= 1;
  return r;
}

void CheckAligned(const void* p, size_t alignment) {
  const size_t a = std::max(alignment, kMinAlign);
  CHECK(reinterpret_cast<uintptr_t>(p) % a == 0, "%p is not %zu-aligned", p, a);
}

RegionKind KindOf(const void* p) {
  const auto* region = PageMap::Lookup(p);
  CHECK(region != nullptr, "live block %p has no region in the page map", p);
  return region->kind;
}

// ---------------------------------------------------------------- stats report

// Counts calls to the (sanitizer's) malloc on this thread while
// `g_count_mallocs` is set: rulloc_stats_write must not allocate. (Thread
// local: libFuzzer's thread that watches the RSS allocates now and then.)
thread_local bool g_count_mallocs = false;
thread_local size_t g_mallocs = 0;
void OnMalloc(const volatile void*, size_t) {
  if (g_count_mallocs) ++g_mallocs;
}
void OnFree(const volatile void*) {}

void CheckStatsWrite(bool json) {
  static const int fd = [] {
    __sanitizer_install_malloc_and_free_hooks(OnMalloc, OnFree);
    return memfd_create("rulloc-stats", 0);
  }();
  CHECK(fd >= 0, "memfd_create: errno %d", errno);
  CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
  g_mallocs = 0;
  g_count_mallocs = true;
  const int rc = rulloc_stats_write(fd, json ? 1 : 0);
  g_count_mallocs = false;
  CHECK(rc == 0, "rulloc_stats_write returned %d", rc);
  CHECK(g_mallocs == 0, "rulloc_stats_write called malloc %zu times", g_mallocs);
  static char text[1 << 20];
  const ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
  CHECK(n > 0 && static_cast<size_t>(n) < sizeof(text) - 1, "read %zd bytes of report", n);
  text[n] = '\0';
  if (json) {
    CHECK(text[0] == '{' && text[n - 2] == '}' && text[n - 1] == '\n' &&
              std::memchr(text, '\n', static_cast<size_t>(n) - 1) == nullptr,
          "not one JSON object on one line: %s", text);
    // Balanced braces and brackets outside strings.
    int depth = 0;
    bool in_string = false;
    for (ssize_t i = 0; i < n; ++i) {
      const char c = text[i];
      if (in_string) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        CHECK(--depth >= 0, "unbalanced JSON: %s", text);
      }
    }
    CHECK(depth == 0 && !in_string, "unbalanced JSON: %s", text);
  } else {
    CHECK(std::strncmp(text, "rulloc: stats:", 14) == 0, "text report starts with: %.80s", text);
  }
  CHECK(rulloc_stats_write(-1, json ? 1 : 0) == -1, "writing to fd -1 did not fail");
}

// ---------------------------------------------------------------- the session

class Session {
 public:
  explicit Session(FuzzedDataProvider& in)
      : in_(in), instance_(std::make_unique<rulloc::Allocator>()) {}

  void Run() {
    const bool abandon_instance_blocks = in_.ConsumeBool();
    CHECK(rulloc_usable_size(nullptr) == 0);
    for (g_step = 0; g_step < static_cast<int>(kMaxOps) && in_.remaining_bytes() > 0; ++g_step) {
      Step();
      CheckStats();
    }
    g_op = "teardown";
    while (c_.count() > 0) FreeC(c_.count() - 1, in_.ConsumeBool());
    if (!abandon_instance_blocks) {
      while (inst_.count() > 0) FreeInstance(inst_.count() - 1, in_.ConsumeBool());
      const rulloc::AllocatorStats s = instance_->stats();
      CHECK(s.small_blocks_in_use + s.large_blocks_in_use + s.huge_blocks_in_use == 0);
      CHECK(s.bytes_in_use == 0, "bytes_in_use %zu with no live block", s.bytes_in_use);
    } else {
      inst_.VerifyAll("before destroying the instance");
    }
    instance_.reset();  // unmaps everything, live blocks included

    // No C API block is live and nothing else in this process uses Rulloc:
    // once the caches are flushed, the process-wide allocator holds nothing.
    rulloc_thread_cache_flush();
    const rulloc::AllocatorStats s = rulloc::DefaultAllocator().stats();
    CHECK(s.small_blocks_in_use == 0 && s.large_blocks_in_use == 0 && s.huge_blocks_in_use == 0,
          "process-wide allocator leaks: small %zu, large %zu, huge %zu in use",
          s.small_blocks_in_use, s.large_blocks_in_use, s.huge_blocks_in_use);
    CHECK(s.bytes_in_use == 0, "bytes_in_use %zu with no live block", s.bytes_in_use);
  }

 private:
  uint64_t NextSeed() { return Mix(++next_id_ * 0x2545F4914F6CDD1Du); }

  size_t PickC() { return in_.ConsumeIntegralInRange<size_t>(0, c_.count() - 1); }
  size_t PickInstance() { return in_.ConsumeIntegralInRange<size_t>(0, inst_.count() - 1); }

  // `aligned`: from aligned_alloc, posix_memalign or memalign, so a sized
  // free must be rulloc_free_aligned_sized.
  void AddC(void* p, size_t size, size_t alignment, bool aligned = false) {
    CHECK(p != nullptr, "C API returned NULL for %zu bytes (alignment %zu), errno %d", size,
          alignment, errno);
    CheckAligned(p, alignment);
    CHECK(rulloc::DefaultAllocator().owns(p), "%p is not the process-wide allocator's", p);
    CHECK(!instance_->owns(p), "%p from the C API is owned by the instance", p);
    c_.Add(static_cast<char*>(p), size, rulloc_usable_size(p), NextSeed(),
           aligned ? std::max<size_t>(alignment, 1) : 0);
  }

  void AddInstance(void* p, size_t size, size_t alignment) {
    CHECK(p != nullptr, "instance returned NULL for %zu bytes (alignment %zu), errno %d", size,
          alignment, errno);
    CheckAligned(p, alignment);
    CHECK(instance_->owns(p), "%p is not the instance's", p);
    CHECK(!rulloc::DefaultAllocator().owns(p), "%p from the instance is the process-wide one's", p);
    inst_.Add(static_cast<char*>(p), size, instance_->usable_size(p), NextSeed(), alignment);
  }

  void FreeC(size_t i, bool sized) {
    Block& b = c_.at(i);
    Verify(b.p, b.seed, b.usable, b.usable, "before rulloc_free");
    CHECK(rulloc_usable_size(b.p) == b.usable, "usable size of %p changed from %zu to %zu",
          static_cast<void*>(b.p), b.usable, rulloc_usable_size(b.p));
    const Block gone = c_.Remove(i);
    if (sized && gone.alignment != 0) {
      rulloc_free_aligned_sized(gone.p, gone.alignment, gone.size);
    } else if (sized) {
      rulloc_free_sized(gone.p, gone.size);
    } else {
      rulloc_free(gone.p);
    }
  }

  void FreeInstance(size_t i, bool sized) {
    Block& b = inst_.at(i);
    Verify(b.p, b.seed, b.usable, b.usable, "before deallocate");
    CHECK(instance_->usable_size(b.p) == b.usable, "usable size of %p changed from %zu to %zu",
          static_cast<void*>(b.p), b.usable, instance_->usable_size(b.p));
    const Block gone = inst_.Remove(i);
    if (sized) {
      instance_->deallocate(gone.p, gone.size, gone.alignment);  // the alignment it was given
    } else {
      instance_->deallocate(gone.p);
    }
  }

  // After a successful reallocation of `old` to `fresh` (size bytes): the
  // contents up to the smaller size are kept; refill the whole block.
  void Moved(LiveTable& table, const Block& old, void* fresh, size_t size, size_t alignment,
             size_t usable) {
    CheckAligned(fresh, alignment);
    Verify(static_cast<char*>(fresh), old.seed, old.usable, std::min(old.size, size),
           "after realloc");
    // (Instance blocks keep their alignment, for the sized deallocate.)
    table.Add(static_cast<char*>(fresh), size, usable, old.seed, &table == &inst_ ? alignment : 0);
  }

  void ReallocC() {
    const bool from_null = c_.count() == 0 || in_.ConsumeIntegralInRange<int>(0, 7) == 0;
    const size_t size = ConsumeSize(in_);
    if (from_null) {
      if (c_.full(size)) return;
      errno = 0;
      AddC(rulloc_realloc(nullptr, size), size, kMinAlign);
      return;
    }
    const size_t i = PickC();
    Block& b = c_.at(i);
    if (size > b.size && c_.full(size - b.size)) return;
    Verify(b.p, b.seed, b.usable, b.usable, "before rulloc_realloc");
    const Block old = c_.Remove(i);
    errno = 0;
    void* fresh = rulloc_realloc(old.p, size);
    if (size == 0) {
      CHECK(fresh == nullptr, "rulloc_realloc(p, 0) returned %p, want NULL (frees p)", fresh);
      return;
    }
    CHECK(fresh != nullptr, "rulloc_realloc(%p, %zu) failed, errno %d", static_cast<void*>(old.p),
          size, errno);
    CHECK(rulloc::DefaultAllocator().owns(fresh));
    Moved(c_, old, fresh, size, kMinAlign, rulloc_usable_size(fresh));
  }

  void ReallocInstance() {
    const bool from_null = inst_.count() == 0 || in_.ConsumeIntegralInRange<int>(0, 7) == 0;
    const size_t size = ConsumeSize(in_);
    const size_t alignment = in_.ConsumeBool() ? kMinAlign : ConsumeAlignment(in_);
    if (from_null) {
      if (inst_.full(size)) return;
      errno = 0;
      AddInstance(instance_->reallocate(nullptr, size, alignment), size, alignment);
      return;
    }
    const size_t i = PickInstance();
    Block& b = inst_.at(i);
    if (size > b.size && inst_.full(size - b.size)) return;
    Verify(b.p, b.seed, b.usable, b.usable, "before reallocate");
    const Block old = inst_.Remove(i);
    errno = 0;
    void* fresh = instance_->reallocate(old.p, size, alignment);
    CHECK(fresh != nullptr, "reallocate(%p, %zu, %zu) failed, errno %d", static_cast<void*>(old.p),
          size, alignment, errno);
    CHECK(instance_->owns(fresh));
    Moved(inst_, old, fresh, size, alignment, instance_->usable_size(fresh));
  }

  // A request no allocator can serve, or with a bad alignment: NULL (or an
  // error code) with the documented errno, and nothing changes.
  void ImpossibleC() {
    const size_t size = ConsumeImpossibleSize(in_);
    const int saved = 1234;
    switch (in_.ConsumeIntegralInRange<int>(0, 10)) {
      case 10: {
        g_op = "impossible alignment";
        const size_t alignment = ConsumeImpossibleAlignment(in_);
        const size_t small = ConsumeSize(in_);
        errno = 0;
        CHECK(rulloc_aligned_alloc(alignment, small) == nullptr, "(%zu, %zu)", alignment, small);
        CHECK(errno == ENOMEM, "rulloc_aligned_alloc(%zu, %zu): errno %d", alignment, small, errno);
        errno = 0;
        CHECK(rulloc_memalign(alignment, small) == nullptr, "(%zu, %zu)", alignment, small);
        CHECK(errno == ENOMEM, "rulloc_memalign(%zu, %zu): errno %d", alignment, small, errno);
        void* out = &out;
        errno = saved;
        const int rc = rulloc_posix_memalign(&out, alignment, small);
        CHECK(rc == ENOMEM, "rulloc_posix_memalign(%zu, %zu) returned %d", alignment, small, rc);
        CHECK(out == &out, "*out was written on failure");
        CHECK(errno == saved, "errno changed to %d", errno);
        break;
      }
      case 0:
        g_op = "rulloc_malloc(impossible)";
        errno = 0;
        CHECK(rulloc_malloc(size) == nullptr, "size %zu", size);
        CHECK(errno == ENOMEM, "rulloc_malloc(%zu): errno %d", size, errno);
        break;
      case 1: {
        g_op = "rulloc_calloc(overflow)";
        const size_t m = in_.ConsumeIntegralInRange<size_t>(2, 1 << 20);
        const size_t n = SIZE_MAX / m + 1 + in_.ConsumeIntegralInRange<size_t>(0, 1000);
        errno = 0;
        CHECK(rulloc_calloc(n, m) == nullptr, "%zu x %zu", n, m);
        CHECK(errno == ENOMEM, "rulloc_calloc(%zu, %zu): errno %d", n, m, errno);
        errno = 0;
        CHECK(rulloc_calloc(m, n) == nullptr, "%zu x %zu", m, n);
        CHECK(errno == ENOMEM, "rulloc_calloc(%zu, %zu): errno %d", m, n, errno);
        break;
      }
      case 2:
        g_op = "rulloc_calloc(impossible)";
        errno = 0;
        CHECK(rulloc_calloc(1, size) == nullptr, "size %zu", size);
        CHECK(errno == ENOMEM, "rulloc_calloc(1, %zu): errno %d", size, errno);
        break;
      case 3: {
        g_op = "rulloc_realloc(impossible)";
        if (c_.count() == 0) break;
        Block& b = c_.at(PickC());
        errno = 0;
        CHECK(rulloc_realloc(b.p, size) == nullptr, "size %zu", size);
        CHECK(errno == ENOMEM, "rulloc_realloc(p, %zu): errno %d", size, errno);
        Verify(b.p, b.seed, b.usable, b.usable, "after a failed rulloc_realloc");
        CHECK(rulloc_usable_size(b.p) == b.usable);
        break;
      }
      case 4: {
        g_op = "rulloc_aligned_alloc(impossible)";
        const size_t alignment = ConsumeAlignment(in_);
        errno = 0;
        CHECK(rulloc_aligned_alloc(alignment, size) == nullptr, "(%zu, %zu)", alignment, size);
        CHECK(errno == ENOMEM, "rulloc_aligned_alloc(%zu, %zu): errno %d", alignment, size, errno);
        break;
      }
      case 5: {
        g_op = "rulloc_aligned_alloc(bad alignment)";
        const size_t alignment = in_.ConsumeBool() ? 0 : ConsumeBadAlignment(in_);
        const size_t small = ConsumeSize(in_);
        errno = 0;
        CHECK(rulloc_aligned_alloc(alignment, small) == nullptr, "(%zu, %zu)", alignment, small);
        CHECK(errno == EINVAL, "rulloc_aligned_alloc(%zu, %zu): errno %d", alignment, small, errno);
        break;
      }
      case 6: {
        g_op = "rulloc_posix_memalign(bad alignment)";
        static constexpr size_t kTooSmall[] = {0, 1, 2, 4};
        const size_t alignment = in_.ConsumeBool()
                                     ? kTooSmall[in_.ConsumeIntegralInRange<size_t>(0, 3)]
                                     : ConsumeBadAlignment(in_);
        const size_t small = ConsumeSize(in_);
        void* out = &out;
        errno = saved;
        const int rc = rulloc_posix_memalign(&out, alignment, small);
        CHECK(rc == EINVAL, "rulloc_posix_memalign(%zu, %zu) returned %d", alignment, small, rc);
        CHECK(out == &out, "*out was written on failure");
        CHECK(errno == saved, "errno changed to %d", errno);
        break;
      }
      case 7: {
        g_op = "rulloc_posix_memalign(impossible)";
        const size_t alignment = std::max<size_t>(ConsumeAlignment(in_), sizeof(void*));
        void* out = &out;
        errno = saved;
        const int rc = rulloc_posix_memalign(&out, alignment, size);
        CHECK(rc == ENOMEM, "rulloc_posix_memalign(%zu, %zu) returned %d", alignment, size, rc);
        CHECK(out == &out, "*out was written on failure");
        CHECK(errno == saved, "errno changed to %d", errno);
        break;
      }
      case 8: {
        g_op = "rulloc_memalign(impossible)";
        const size_t alignment =
            in_.ConsumeBool() ? ConsumeAlignment(in_) : ConsumeBadAlignment(in_);
        errno = 0;
        CHECK(rulloc_memalign(alignment, size) == nullptr, "(%zu, %zu)", alignment, size);
        CHECK(errno == ENOMEM || (errno == EINVAL && alignment > (SIZE_MAX >> 1) + 1),
              "rulloc_memalign(%zu, %zu): errno %d", alignment, size, errno);
        break;
      }
      default: {
        g_op = "rulloc_memalign(alignment > 2^63)";
        const size_t alignment = (SIZE_MAX >> 1) + 2 + in_.ConsumeIntegral<uint32_t>();
        const size_t small = ConsumeSize(in_);
        errno = 0;
        CHECK(rulloc_memalign(alignment, small) == nullptr, "(%zu, %zu)", alignment, small);
        CHECK(errno == EINVAL, "rulloc_memalign(%zu, %zu): errno %d", alignment, small, errno);
        break;
      }
    }
  }

  void ImpossibleInstance() {
    const size_t size = ConsumeImpossibleSize(in_);
    switch (in_.ConsumeIntegralInRange<int>(0, 5)) {
      case 5: {
        g_op = "impossible alignment";
        const size_t alignment = ConsumeImpossibleAlignment(in_);
        const size_t small = ConsumeSize(in_);
        errno = 0;
        CHECK(instance_->allocate(small, alignment) == nullptr, "(%zu, %zu)", small, alignment);
        CHECK(errno == ENOMEM, "allocate(%zu, %zu): errno %d", small, alignment, errno);
        errno = 0;
        CHECK(instance_->allocate_zeroed(small, alignment) == nullptr, "(%zu, %zu)", small,
              alignment);
        CHECK(errno == ENOMEM, "allocate_zeroed(%zu, %zu): errno %d", small, alignment, errno);
        if (inst_.count() == 0) break;
        Block& b = inst_.at(PickInstance());
        errno = 0;
        CHECK(instance_->reallocate(b.p, small, alignment) == nullptr, "(%zu, %zu)", small,
              alignment);
        CHECK(errno == ENOMEM, "reallocate(p, %zu, %zu): errno %d", small, alignment, errno);
        Verify(b.p, b.seed, b.usable, b.usable, "after a failed reallocate");
        break;
      }
      case 0: {
        g_op = "allocate(impossible)";
        const size_t alignment = in_.ConsumeBool() ? kMinAlign : ConsumeAlignment(in_);
        errno = 0;
        CHECK(instance_->allocate(size, alignment) == nullptr, "(%zu, %zu)", size, alignment);
        CHECK(errno == ENOMEM, "allocate(%zu, %zu): errno %d", size, alignment, errno);
        break;
      }
      case 1: {
        g_op = "allocate_zeroed(impossible)";
        const size_t alignment = in_.ConsumeBool() ? kMinAlign : ConsumeAlignment(in_);
        errno = 0;
        CHECK(instance_->allocate_zeroed(size, alignment) == nullptr, "(%zu, %zu)", size,
              alignment);
        CHECK(errno == ENOMEM, "allocate_zeroed(%zu, %zu): errno %d", size, alignment, errno);
        break;
      }
      case 2: {
        g_op = "reallocate(impossible)";
        if (inst_.count() == 0) break;
        Block& b = inst_.at(PickInstance());
        const size_t alignment = in_.ConsumeBool() ? kMinAlign : ConsumeAlignment(in_);
        errno = 0;
        CHECK(instance_->reallocate(b.p, size, alignment) == nullptr, "(%zu, %zu)", size,
              alignment);
        CHECK(errno == ENOMEM, "reallocate(p, %zu, %zu): errno %d", size, alignment, errno);
        Verify(b.p, b.seed, b.usable, b.usable, "after a failed reallocate");
        CHECK(instance_->usable_size(b.p) == b.usable);
        break;
      }
      case 3: {
        g_op = "allocate(bad alignment)";
        const size_t alignment = ConsumeBadAlignment(in_);
        const size_t small = ConsumeSize(in_);
        errno = 0;
        CHECK(instance_->allocate(small, alignment) == nullptr, "(%zu, %zu)", small, alignment);
        CHECK(errno == EINVAL, "allocate(%zu, %zu): errno %d", small, alignment, errno);
        errno = 0;
        CHECK(instance_->allocate_zeroed(small, alignment) == nullptr, "(%zu, %zu)", small,
              alignment);
        CHECK(errno == EINVAL, "allocate_zeroed(%zu, %zu): errno %d", small, alignment, errno);
        break;
      }
      default: {
        g_op = "reallocate(bad alignment)";
        if (inst_.count() == 0) break;
        Block& b = inst_.at(PickInstance());
        const size_t alignment = ConsumeBadAlignment(in_);
        const size_t small = ConsumeSize(in_);
        errno = 0;
        CHECK(instance_->reallocate(b.p, small, alignment) == nullptr, "(%zu, %zu)", small,
              alignment);
        CHECK(errno == EINVAL, "reallocate(p, %zu, %zu): errno %d", small, alignment, errno);
        Verify(b.p, b.seed, b.usable, b.usable, "after a failed reallocate");
        break;
      }
    }
  }

  void Step() {
    switch (in_.ConsumeIntegralInRange<int>(0, 22)) {
      // ---- C API
      case 0:
      case 1: {
        g_op = "rulloc_malloc";
        const size_t size = ConsumeSize(in_);
        if (c_.full(size)) return;
        errno = 0;
        AddC(rulloc_malloc(size), size, kMinAlign);
        return;
      }
      case 2: {
        g_op = "rulloc_calloc";
        const size_t size = ConsumeSize(in_);
        if (c_.full(size)) return;
        const size_t m = in_.ConsumeIntegralInRange<size_t>(1, 64);
        const size_t n = size / m;
        errno = 0;
        void* p = rulloc_calloc(n, m);
        CHECK(p != nullptr, "rulloc_calloc(%zu, %zu) failed, errno %d", n, m, errno);
        VerifyZero(static_cast<char*>(p), n * m, "rulloc_calloc");
        AddC(p, n * m, kMinAlign);
        return;
      }
      case 3:
        g_op = "rulloc_realloc";
        ReallocC();
        return;
      case 4: {
        g_op = "rulloc_aligned_alloc";
        const size_t size = ConsumeSize(in_);
        const size_t alignment = ConsumeAlignment(in_);
        if (c_.full(size)) return;
        errno = 0;
        AddC(rulloc_aligned_alloc(alignment, size), size, alignment, true);
        return;
      }
      case 5: {
        g_op = "rulloc_posix_memalign";
        const size_t size = ConsumeSize(in_);
        const size_t alignment = std::max<size_t>(ConsumeAlignment(in_), sizeof(void*));
        if (c_.full(size)) return;
        void* out = nullptr;
        const int rc = rulloc_posix_memalign(&out, alignment, size);
        CHECK(rc == 0, "rulloc_posix_memalign(%zu, %zu) returned %d", alignment, size, rc);
        AddC(out, size, alignment, true);
        return;
      }
      case 6: {
        g_op = "rulloc_memalign";
        const size_t size = ConsumeSize(in_);
        // Any alignment up to 2^63 is accepted: others are rounded up.
        const size_t alignment = in_.ConsumeBool() ? ConsumeAlignment(in_)
                                                   : in_.ConsumeIntegralInRange<size_t>(0, 70000);
        if (c_.full(size)) return;
        errno = 0;
        AddC(rulloc_memalign(alignment, size), size, RoundUpPow2(alignment), true);
        return;
      }
      case 7:
      case 8:
        g_op = "rulloc_free";
        if (c_.count() > 0) FreeC(PickC(), in_.ConsumeBool());
        return;
      case 9: {
        g_op = "rulloc_usable_size";
        if (c_.count() == 0) return;
        const Block& b = c_.at(PickC());
        CHECK(rulloc_usable_size(b.p) == b.usable);
        return;
      }
      case 10:
        g_op = "rulloc_thread_cache_flush";
        rulloc_thread_cache_flush();
        c_.VerifyAll("after rulloc_thread_cache_flush");
        return;
      case 11:
        g_op = "rulloc_trim";
        rulloc_trim();
        c_.VerifyAll("after rulloc_trim");
        inst_.VerifyAll("after rulloc_trim");
        return;
      case 12:
        ImpossibleC();
        return;
      case 22:
        g_op = "rulloc_stats_write";
        CheckStatsWrite(in_.ConsumeBool());
        return;
      // ---- a standalone instance
      case 13:
      case 14: {
        g_op = "allocate";
        const size_t size = ConsumeSize(in_);
        const int how = in_.ConsumeIntegralInRange<int>(0, 2);
        const size_t alignment = how == 0 ? kMinAlign : how == 1 ? 0 : ConsumeAlignment(in_);
        if (inst_.full(size)) return;
        errno = 0;
        AddInstance(how == 0 ? instance_->allocate(size) : instance_->allocate(size, alignment),
                    size, alignment);
        return;
      }
      case 15: {
        g_op = "allocate_zeroed";
        const size_t size = ConsumeSize(in_);
        const size_t alignment = in_.ConsumeBool() ? kMinAlign : ConsumeAlignment(in_);
        if (inst_.full(size)) return;
        errno = 0;
        void* p = instance_->allocate_zeroed(size, alignment);
        CHECK(p != nullptr, "allocate_zeroed(%zu, %zu) failed, errno %d", size, alignment, errno);
        VerifyZero(static_cast<char*>(p), size, "allocate_zeroed");
        AddInstance(p, size, alignment);
        return;
      }
      case 16:
        g_op = "reallocate";
        ReallocInstance();
        return;
      case 17:
      case 18:
        g_op = "deallocate";
        if (inst_.count() > 0) FreeInstance(PickInstance(), in_.ConsumeBool());
        return;
      case 19: {
        g_op = "usable_size";
        if (inst_.count() == 0) return;
        const Block& b = inst_.at(PickInstance());
        CHECK(instance_->usable_size(b.p) == b.usable);
        return;
      }
      case 20:
        g_op = "trim";
        instance_->trim();
        inst_.VerifyAll("after trim");
        return;
      default:
        ImpossibleInstance();
        return;
    }
  }

  struct KindCounts {
    size_t small = 0, large = 0, huge = 0, usable = 0;
  };
  static KindCounts Count(const LiveTable& table) {
    KindCounts k;
    for (const Block& b : table.blocks()) {
      switch (KindOf(b.p)) {
        case RegionKind::kSmall:
          ++k.small;
          break;
        case RegionKind::kLarge:
          ++k.large;
          break;
        case RegionKind::kHuge:
          ++k.huge;
          break;
      }
      k.usable += b.usable;
    }
    return k;
  }

  void CheckStats() {
    // The instance: nothing but this table uses it, and it has no caches.
    const KindCounts mine = Count(inst_);
    const rulloc::AllocatorStats s = instance_->stats();
    CHECK(s.small_blocks_in_use == mine.small && s.large_blocks_in_use == mine.large &&
              s.huge_blocks_in_use == mine.huge,
          "instance stats: small/large/huge in use %zu/%zu/%zu, live table %zu/%zu/%zu",
          s.small_blocks_in_use, s.large_blocks_in_use, s.huge_blocks_in_use, mine.small,
          mine.large, mine.huge);
    CHECK(s.bytes_in_use >= mine.usable, "instance bytes_in_use %zu < usable sizes %zu",
          s.bytes_in_use, mine.usable);
    CHECK(s.bytes_in_use <= s.bytes_mapped, "bytes_in_use %zu > bytes_mapped %zu", s.bytes_in_use,
          s.bytes_mapped);
    CHECK(s.huge_bytes_cached <= rulloc::internal::HugeBlocks::kCacheBytes,
          "huge cache holds %zu bytes", s.huge_bytes_cached);
    CHECK(s.regions_unmapped <= s.regions_mapped);
    CHECK(s.bytes_committed <= s.bytes_mapped, "bytes_committed %zu > bytes_mapped %zu",
          s.bytes_committed, s.bytes_mapped);
    CHECK(s.bytes_in_use <= s.bytes_committed, "bytes_in_use %zu > bytes_committed %zu",
          s.bytes_in_use, s.bytes_committed);

    // The process-wide allocator: only the C API blocks of this table use it
    // (the sanitizers' malloc is not Rulloc). Its small counts include the
    // blocks in the thread and transfer caches; large and huge are exact.
    const KindCounts c = Count(c_);
    const rulloc::AllocatorStats d = rulloc::DefaultAllocator().stats();
    CHECK(d.large_blocks_in_use == c.large && d.huge_blocks_in_use == c.huge,
          "process-wide stats: large/huge in use %zu/%zu, live table %zu/%zu",
          d.large_blocks_in_use, d.huge_blocks_in_use, c.large, c.huge);
    CHECK(d.small_blocks_in_use >= c.small, "process-wide small in use %zu < live %zu",
          d.small_blocks_in_use, c.small);
    CHECK(d.huge_bytes_cached <= rulloc::internal::HugeBlocks::kCacheBytes);
    const rulloc::ProcessStats ps = rulloc::GetProcessStats();
    CHECK(ps.blocks_in_use == c.small, "GetProcessStats().blocks_in_use %zu, live small %zu",
          ps.blocks_in_use, c.small);
  }

  FuzzedDataProvider& in_;
  std::unique_ptr<rulloc::Allocator> instance_;
  Intervals intervals_;
  LiveTable c_{"C API", &intervals_};
  LiveTable inst_{"instance", &intervals_};
  uint64_t next_id_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Session(in).Run();
  return 0;
}
