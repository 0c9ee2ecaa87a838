// A program linked with the shim (cc_binary(malloc = "//:malloc")) starts it
// from .preinit_array, which the loader runs before the constructors of the
// shared libraries the program loads (see shim/start.h). Only an
// executable's counts: librulloc.so gets the same order from -z initfirst.
#include "shim/start.h"

namespace {

void StartShim(int /*argc*/, char** /*argv*/, char** envp) { rulloc::shim::Start(envp); }

__attribute__((section(".preinit_array"), used)) void (*start_shim)(int, char**,
                                                                    char**) = StartShim;

}  // namespace
