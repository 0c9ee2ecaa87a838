// Process-wide switches, set once at start-up (the malloc shim reads them
// from the environment) before other threads run; the defaults serve a
// program that never sets them.
#ifndef RULLOC_CORE_RUNTIME_OPTIONS_H_
#define RULLOC_CORE_RUNTIME_OPTIONS_H_

namespace rulloc {

struct RuntimeOptions {
  // Advise huge blocks (mappings of 2 MiB and more) as transparent huge
  // pages: one fault per 2 MiB instead of per 4 KiB, when the kernel has a
  // free huge page at hand; when it has to compact memory first, the fault
  // waits for that (docs/design.md, "Huge blocks", weighs the two).
  bool huge_pages = true;
  // Hardened mode (docs/hardening.md): guard pages around region metadata
  // and around every block above the small sizes (each then gets its own
  // mapping, unmapped on free), random order of the blocks a thread cache
  // hands out, and blocks zeroed when freed.
  bool hardened = false;
};

inline constinit RuntimeOptions runtime_options;

}  // namespace rulloc

#endif  // RULLOC_CORE_RUNTIME_OPTIONS_H_
