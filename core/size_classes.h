// Size classes: the block sizes of the small buckets, fixed at compile time.
//
//   size:   1..16 17..32 ... 113..128 129..160 161..192 ... 28673..32768
//   bucket:   0     1          7        8        9              39
//
// A table is any type with `static constexpr std::array<uint32_t, N> kSizes`
// (ascending multiples of 16, at most kMaxSmallBlock). SizeClassMap turns it
// into an O(1) lookup: one byte per 16-byte step, indexed by (size+15)/16.
#ifndef RULLOC_CORE_SIZE_CLASSES_H_
#define RULLOC_CORE_SIZE_CLASSES_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace rulloc {

// Every block is aligned to at least this (max_align_t on x86-64 and arm64).
inline constexpr size_t kMinAlignment = 16;
// Largest block a custom table may declare.
inline constexpr size_t kMaxSmallBlock = 64 * 1024;

namespace internal {

// 16, 32, ..., 128, then `steps` classes per doubling up to `max`.
template <size_t kMax, size_t kSteps>
constexpr auto GeometricSizes() {
  constexpr size_t count = [] {
    size_t n = 8;
    for (size_t base = 128; base < kMax; base *= 2) n += kSteps;
    return n;
  }();
  std::array<uint32_t, count> sizes{};
  size_t i = 0;
  for (uint32_t s = 16; s <= 128; s += 16) sizes[i++] = s;
  for (size_t base = 128; base < kMax; base *= 2) {
    for (size_t step = 1; step <= kSteps; ++step) {
      sizes[i++] = static_cast<uint32_t>(base + base * step / kSteps);
    }
  }
  return sizes;
}

}  // namespace internal

// The default table: 40 buckets from 16 B to 32 KiB, four per doubling above
// 128 B, so that no request above 128 B wastes more than 20% of its block.
struct DefaultBuckets {
  static constexpr auto kSizes = internal::GeometricSizes<32 * 1024, 4>();
};

template <class Table>
struct SizeClassMap {
  static constexpr size_t kCount = Table::kSizes.size();
  static constexpr size_t kMaxSize = Table::kSizes[kCount - 1];

  static constexpr bool Valid() {
    if (kCount == 0 || kCount > 255 || kMaxSize > kMaxSmallBlock) return false;
    for (size_t i = 0; i < kCount; ++i) {
      if (Table::kSizes[i] == 0 || Table::kSizes[i] % kMinAlignment != 0) return false;
      if (i > 0 && Table::kSizes[i] <= Table::kSizes[i - 1]) return false;
    }
    return true;
  }
  static_assert(Valid(),
                "bucket sizes must be ascending non-zero multiples of 16, at most 64 KiB, "
                "and fewer than 256");

  static constexpr std::array<uint8_t, kMaxSize / 16 + 1> kLookup = [] {
    std::array<uint8_t, kMaxSize / 16 + 1> lookup{};
    size_t bucket = 0;
    for (size_t step = 0; step < lookup.size(); ++step) {
      while (Table::kSizes[bucket] < step * 16) ++bucket;
      lookup[step] = static_cast<uint8_t>(bucket);
    }
    return lookup;
  }();

  // Bucket index for 0 < size <= kMaxSize.
  static constexpr size_t BucketFor(size_t size) { return kLookup[(size + 15) >> 4]; }
  static constexpr size_t BlockSize(size_t bucket) { return Table::kSizes[bucket]; }
};

}  // namespace rulloc

#endif  // RULLOC_CORE_SIZE_CLASSES_H_
