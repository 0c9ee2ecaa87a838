#!/usr/bin/env bash
# Runs an example and compares its output with the expected file.
set -euo pipefail
actual=$("$1")
if ! diff <(printf '%s\n' "$actual") "$2"; then
  echo "output of $1 differs from $2" >&2
  exit 1
fi
