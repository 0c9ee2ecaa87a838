// Regions: page-multiple chunks of address space, aligned to a 64 KiB
// granule, each starting with a header. The page map sends every granule of
// a region to that header.
//
//   region base (64 KiB aligned)
//   ┌──────────────┬───────────────────────────────────────────────┐
//   │ RegionHeader │  kind-specific header, then blocks ...        │
//   └──────────────┴───────────────────────────────────────────────┘
//     kind, size, owner, list links
//
// Three kinds: small (slab of equal header-less blocks, one bucket), large
// (blocks with boundary tags, split and coalesced), huge (one allocation).
#ifndef RULLOC_CORE_REGION_H_
#define RULLOC_CORE_REGION_H_

#include <cstddef>
#include <cstdint>

#include "platform/pages.h"

namespace rulloc::internal {

enum class RegionKind : uint32_t {
  kSmall = 0x52534d4c,  // "RSML"
  kLarge = 0x524c5247,  // "RLRG"
  kHuge = 0x5248554b,   // "RHUK"
};

class Heap;

struct RegionHeader {
  RegionKind kind;
  // Granules after the first that the page map does not name (a huge
  // block's alignment gap: nothing there is ever handed out), or 0.
  uint32_t gap_granules;
  size_t size;  // bytes reserved from the OS, header included
  Heap* heap;   // the allocator instance that owns the region
  RegionHeader* prev = nullptr;
  RegionHeader* next = nullptr;
  uint64_t empty_since_ms = 0;  // when the region last became empty

  // Whether `p` lies in the region's reserved bytes.
  bool Holds(const void* p) const {
    return reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(this) < size;
  }
};

// An intrusive doubly linked list of regions; new ones go to the front, so
// the back holds the one that has been on the list longest. A cursor marks
// where a walk that lets go of the list's lock between steps goes on: a
// region removed meanwhile moves it to its successor.
//
//   head ─► R ⇄ R ⇄ R ⇄ R ◄─ tail
//                  ▲ cursor
class RegionList {
 public:
  constexpr RegionList() = default;
  bool empty() const { return head_ == nullptr; }
  RegionHeader* front() const { return head_; }
  RegionHeader* back() const { return tail_; }
  size_t size() const { return size_; }
  RegionHeader* cursor() const { return cursor_; }
  void set_cursor(RegionHeader* r) { cursor_ = r; }

  void PushFront(RegionHeader* r) {
    r->prev = nullptr;
    r->next = head_;
    if (head_ != nullptr) head_->prev = r;
    head_ = r;
    if (tail_ == nullptr) tail_ = r;
    ++size_;
  }
  void PushBack(RegionHeader* r) {
    r->next = nullptr;
    r->prev = tail_;
    if (tail_ != nullptr) tail_->next = r;
    tail_ = r;
    if (head_ == nullptr) head_ = r;
    ++size_;
  }
  void Remove(RegionHeader* r) {
    if (cursor_ == r) cursor_ = r->next;
    if (r->prev != nullptr) r->prev->next = r->next;
    if (r->next != nullptr) r->next->prev = r->prev;
    if (head_ == r) head_ = r->next;
    if (tail_ == r) tail_ = r->prev;
    r->prev = r->next = nullptr;
    --size_;
  }
  RegionHeader* PopFront() {
    RegionHeader* r = head_;
    if (r != nullptr) Remove(r);
    return r;
  }

 private:
  RegionHeader* head_ = nullptr;
  RegionHeader* tail_ = nullptr;
  RegionHeader* cursor_ = nullptr;
  size_t size_ = 0;
};

// Reserves a granule-aligned region of `size` bytes (at least `alignment`
// aligned), writes its RegionHeader and registers it in the page map, all
// but `gap_granules` granules after the first. Returns nullptr when the OS
// refuses.
RegionHeader* MapRegion(RegionKind kind, size_t size, size_t alignment, Heap* heap,
                        platform::Charge charge = platform::Charge::kOnTouch,
                        uint32_t gap_granules = 0);
// Writes the RegionHeader of [base, base+size), granule-aligned pages the
// caller holds, and registers it (but its gap); nullptr, the range released,
// if the page map cannot take it.
RegionHeader* InstallRegion(void* base, RegionKind kind, size_t size, Heap* heap,
                            uint32_t gap_granules = 0);
// Unregisters and releases a region mapped by MapRegion.
void UnmapRegion(RegionHeader* region);

inline constexpr size_t AlignUp(size_t n, size_t alignment) {
  return (n + alignment - 1) & ~(alignment - 1);
}

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_REGION_H_
