#!/usr/bin/env bash
# Runs preloaded_new (a C++ program that does not link Rulloc) with
# librulloc.so preloaded: alone, then followed by another library that
# defines operator new (which must never be called), then with a plugin
# built against libc++ loaded RTLD_LOCAL (whose failing new must throw
# what this libstdc++ program's runtime catches).
set -euo pipefail
rulloc="$(realpath "$1")"
LD_PRELOAD="$rulloc" "$2"
LD_PRELOAD="$rulloc $(realpath "$3")" "$2"
LD_PRELOAD="$rulloc" "$2" "$(realpath "$4")"
