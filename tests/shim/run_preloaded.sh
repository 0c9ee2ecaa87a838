#!/usr/bin/env bash
# run_preloaded.sh LIBRULLOC PROGRAM...: runs each program with the library
# preloaded; fails if one does.
set -euo pipefail
rulloc="$(realpath "$1")"
shift
for program in "$@"; do
  LD_PRELOAD="$rulloc" "$program"
done
