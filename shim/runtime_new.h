// The C++ runtime's own operator new, for librulloc.so's failure path.
//
// librulloc.so links no C++ runtime. When Rulloc has no memory for a `new`,
// it calls the same operator of the caller's C++ runtime (libstdc++, or
// libc++ through libc++abi, or a runtime's copy linked into the caller),
// which runs the new-handler, retries through Rulloc's malloc and throws
// its std::bad_alloc, which the caller's code can catch and unwind. Finding
// it neither allocates nor takes the loader's main lock.
#ifndef RULLOC_SHIM_RUNTIME_NEW_H_
#define RULLOC_SHIM_RUNTIME_NEW_H_

namespace rulloc::shim {

// The eight replaceable forms of operator new.
enum NewForm {
  kNew,
  kNewArray,
  kNewNothrow,
  kNewArrayNothrow,
  kNewAligned,
  kNewArrayAligned,
  kNewAlignedNothrow,
  kNewArrayAlignedNothrow,
  kNewForms
};

// The runtime's definition of `form` for code at `caller` (a return
// address), or nullptr when no C++ runtime is loaded.
void* RuntimeNew(NewForm form, const void* caller);

}  // namespace rulloc::shim

#endif  // RULLOC_SHIM_RUNTIME_NEW_H_
