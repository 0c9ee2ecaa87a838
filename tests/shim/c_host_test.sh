#!/usr/bin/env bash
# Runs c_host (C, no C++ runtime of its own) with librulloc.so preloaded; it
# loads cxx_plugin.so with RTLD_LOCAL.
set -euo pipefail
LD_PRELOAD="$(realpath "$1")" "$2" "$(realpath "$3")"
