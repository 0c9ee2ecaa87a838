#!/usr/bin/env bash
# Runs c_host (C, no C++ runtime of its own) with librulloc.so preloaded; it
# loads C++ plugins with RTLD_LOCAL: one built against libstdc++, one
# against libc++, one with a static libstdc++, then several (each plugin
# must catch its own runtime's std::bad_alloc). The libstdc++ plugin comes
# first whenever the libc++ one is loaded: libgcc_s (which it brings in)
# must be loaded before LLVM's libunwind, or a libstdc++ throw crashes in
# libunwind with no allocator preloaded at all.
set -euo pipefail
rulloc="$(realpath "$1")"
host="$2"
libstdcxx_plugin="$(realpath "$3")"
libcxx_plugin="$(realpath "$4")"
static_runtime_plugin="$(realpath "$5")"
LD_PRELOAD="$rulloc" "$host" "$libstdcxx_plugin"
LD_PRELOAD="$rulloc" "$host" "$libcxx_plugin"
LD_PRELOAD="$rulloc" "$host" "$libstdcxx_plugin" "$libcxx_plugin"
LD_PRELOAD="$rulloc" "$host" "$static_runtime_plugin"
LD_PRELOAD="$rulloc" "$host" "$libstdcxx_plugin" "$libcxx_plugin" "$static_runtime_plugin"
