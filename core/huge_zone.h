// Where huge mappings advised as transparent huge pages go: a zone of the
// address space far below the process's other mappings, filled downward.
//
//   higher addresses
//   ┌───────────────────────────────────┐
//   │ libraries, stacks, the program's  │  4 KiB pages, where the kernel
//   │ mappings, small and large regions │  places mappings (top down)
//   └───────────────────────────────────┘
//        kZoneGap: nothing of Rulloc's
//   ┌───────────────────────────────────┐ ◄─ zone top (1 GiB aligned)
//   │ huge mapping │ huge mapping │ ... │
//   └───────────────────────────────────┘ ◄─ next: the next one ends here
//
// On a guest whose hypervisor shadows its page tables, a 2 MiB huge page
// in the same 1 GiB of address space as 4 KiB pages made the first access
// to each of those pages after it fault into the hypervisor: reading 700 MB
// of small blocks took 0.2–1.1 s instead of 0.02 s (docs/design.md,
// "Giving pages back"). Huge pages 1 GiB or more away cost nothing.
#ifndef RULLOC_CORE_HUGE_ZONE_H_
#define RULLOC_CORE_HUGE_ZONE_H_

#include <cstddef>

#include "platform/pages.h"

namespace rulloc::internal {

// A committed mapping of `size` bytes, `alignment` aligned, in the zone; or
// nullptr (the caller maps it where the kernel chooses) when there is no
// zone (not Linux, no room), the request is larger than 16 GiB, the OS
// refuses, or the next places are taken. Four places taken in a row give
// the zone up: the program's own mappings have reached it.
void* ReserveInHugeZone(size_t size, size_t alignment, platform::Charge charge);

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_HUGE_ZONE_H_
