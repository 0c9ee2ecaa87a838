"""Compiler options shared by the allocator's libraries."""

# The allocator's own code throws and catches nothing, so it is built
# without exception handling: no landing pads for its lock holders, and
# librulloc.so needs no C++ runtime library (libstdc++, libgcc_s) to load.
# (A C++ runtime's std::bad_alloc may still unwind through operator new:
# shim/BUILD.bazel gives that code unwind tables.)
#
# -fno-semantic-interposition: position-independent code may otherwise
# assume any of its global functions can be replaced by another object at
# load time, and does not inline them (a bucket's small helpers stayed
# calls). librulloc.so binds its own symbols (-Bsymbolic), and a static
# link has no interposition to allow for.
RULLOC_COPTS = select({
    "@platforms//os:windows": [],
    "//conditions:default": [
        "-fno-exceptions",
        "-fno-semantic-interposition",
    ],
})
