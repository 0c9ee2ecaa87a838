#!/usr/bin/env bash
# The main job: build Rulloc and its benchmark workloads, then compare Rulloc
# with glibc, jemalloc, tcmalloc and mimalloc on every workload. Installs its
# own dependencies first.
#
#   tools/main.sh            quick mode (a few minutes)
#   tools/main.sh --full     full mode: 1, 2, 4 and 8 threads, scale 3 (large 1,
#                            peakidle and churn 1.5; under 30 min)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
mode=quick
[ "${1:-}" = "--full" ] && mode=full
bazel build --config=opt //:librulloc.so //bench:workloads
# The Bazel server's JVM wakes up now and then: stop it so that it does not
# share the two cores with the measured runs.
bazel shutdown
out="bench-results/${mode}"
# Debian's python3, for which setup.sh installed SciPy and statsmodels (the
# runner's significance test and its adjustment for the number of rows).
/usr/bin/python3 bench/compare.py --mode "${mode}" \
  --workloads bazel-bin/bench/workloads --rulloc bazel-bin/librulloc.so --out "${out}"
