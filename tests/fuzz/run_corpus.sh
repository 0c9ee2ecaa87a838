#!/bin/sh
# Runs a libFuzzer binary once over each input file given: its seed corpus
# as a regression test. Any crash, sanitizer report or leak fails the test.
set -eu
fuzzer=$1
shift
exec "$fuzzer" -rss_limit_mb=2560 "$@"
