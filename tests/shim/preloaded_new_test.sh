#!/usr/bin/env bash
# Runs preloaded_new (a C++ program that does not link Rulloc) with
# librulloc.so preloaded.
set -euo pipefail
LD_PRELOAD="$(realpath "$1")" "$2"
