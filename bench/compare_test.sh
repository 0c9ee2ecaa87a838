#!/usr/bin/env bash
# Runs bench/compare_test.py with the system's python3 (compare.py is a
# script the README's main command runs the same way).
set -euo pipefail
exec python3 bench/compare_test.py
