"""Compiler options shared by the allocator's libraries."""

# The allocator's own code throws nothing and calls nothing that throws, so
# it is built without exception tables: no landing pads for its lock
# holders, and librulloc.so needs no C++ runtime library (libstdc++,
# libgcc_s) to load.
RULLOC_COPTS = select({
    "@platforms//os:windows": [],
    "//conditions:default": ["-fno-exceptions"],
})
