// The malloc shim's start-up: reads the options (RULLOC_*), applies them and
// registers the fork handlers. It runs before the constructors of every
// other library (librulloc.so is linked with -z initfirst, unless a library
// loaded later claims that too: the loader honours one; a program linked
// with the shim starts it from its .preinit_array), so that fork handlers
// that libraries register from their constructors come after Rulloc's: fork
// runs prepare handlers in reverse order of registration, so theirs run
// before Rulloc takes its locks, and may allocate.
#ifndef RULLOC_SHIM_START_H_
#define RULLOC_SHIM_START_H_

namespace rulloc::shim {

// Once; later calls do nothing. `environment` is the process's (as glibc
// passes it to constructors): that early, libc's `environ` may not be set.
void Start(char* const* environment);

}  // namespace rulloc::shim

#endif  // RULLOC_SHIM_START_H_
