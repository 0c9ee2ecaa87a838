#!/usr/bin/env bash
# Runs preloaded_new (a C++ program that does not link Rulloc) with
# librulloc.so preloaded: alone; followed by another library that defines
# operator new (which must never be called); by the file libstdc++.so.6
# links to (the runtime, known by its DT_SONAME); and with a plugin built
# against libc++ loaded RTLD_LOCAL (whose failing new must throw what this
# libstdc++ program's runtime catches). Then forwarding_new, whose own
# operator new forwards to Rulloc's.
set -euo pipefail
rulloc="$(realpath "$1")"
LD_PRELOAD="$rulloc" "$2"
LD_PRELOAD="$rulloc $(realpath "$3")" "$2"
LD_PRELOAD="$rulloc" "$2" "$(realpath "$4")"
versioned_runtime="$(realpath "$(ldd "$2" | awk '$1 == "libstdc++.so.6" { print $3 }')")"
LD_PRELOAD="$rulloc $versioned_runtime" "$2"
LD_PRELOAD="$rulloc" "$5"
