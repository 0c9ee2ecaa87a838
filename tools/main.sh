#!/usr/bin/env bash
# The main job: build Rulloc and its benchmark workloads, then compare Rulloc
# with glibc, jemalloc, tcmalloc and mimalloc on every workload. Installs its
# own dependencies first.
#
#   tools/main.sh            quick mode (a few minutes)
#   tools/main.sh --full     full mode: 1, 2, 4 and 8 threads, full sizes
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
mode=quick
[ "${1:-}" = "--full" ] && mode=full
bazel build --config=opt //:librulloc.so //bench:workloads
out="bench-results/${mode}"
python3 bench/compare.py --mode "${mode}" \
  --workloads bazel-bin/bench/workloads --rulloc bazel-bin/librulloc.so --out "${out}"
