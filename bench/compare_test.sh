#!/usr/bin/env bash
# Runs bench/compare_test.py with Debian's python3, python3-scipy and
# python3-statsmodels, as the README's main command runs compare.py.
set -euo pipefail
exec /usr/bin/python3 bench/compare_test.py
