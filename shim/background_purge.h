// The optional background thread of the malloc shim (RULLOC_BACKGROUND_PURGE
// or RULLOC_OPTIONS=background_purge=1): runs the decay step every 100 ms,
// so that memory comes back to the OS even when every thread of the
// program is idle (decay otherwise runs from allocation slow paths). Off by
// default, as jemalloc's background_thread: a malloc that starts threads
// surprises some programs. Not restarted in the child of a fork.
#ifndef RULLOC_SHIM_BACKGROUND_PURGE_H_
#define RULLOC_SHIM_BACKGROUND_PURGE_H_

namespace rulloc::shim {

// Starts the thread once; false if it could not be created.
bool StartBackgroundPurge();

}  // namespace rulloc::shim

#endif  // RULLOC_SHIM_BACKGROUND_PURGE_H_
