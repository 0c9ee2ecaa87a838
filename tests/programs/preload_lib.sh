# Helpers for tests that run real programs with Rulloc preloaded. Sourced.
set -euo pipefail

RULLOC_SO="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export HOME="${TEST_TMPDIR:-$(mktemp -d)}"
WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/work.XXXXXX")"
STATS="${WORK}/rulloc-stats.json"

# Runs a command with Rulloc preloaded and its statistics appended to
# $STATS as one JSON line per process (a file: some programs close stderr
# before they exit).
with_rulloc() {
  LD_PRELOAD="${RULLOC_SO}" RULLOC_STATS=json RULLOC_STATS_FILE="${STATS}" "$@"
}

# Fails unless Rulloc served allocations in the processes run so far: every
# statistics line is valid JSON, and some are from processes whose thread
# caches were refilled.
expect_rulloc_served() {
  local lines served
  lines=$(grep -c '^{"pid":' "${STATS}" || true)
  served=$(grep '^{"pid":' "${STATS}" | grep -vc '"refills":0,' || true)
  if [ "${lines}" -eq 0 ] || [ "${served}" -eq 0 ]; then
    echo "FAIL: Rulloc served no allocations (${lines} statistics lines)" >&2
    cat "${STATS}" >&2
    exit 1
  fi
  if ! python3 -c 'import json, sys; [json.loads(line) for line in open(sys.argv[1])]' "${STATS}"; then
    echo "FAIL: a statistics line is not valid JSON" >&2
    cat "${STATS}" >&2
    exit 1
  fi
  echo "rulloc served ${served} of ${lines} processes"
  tail -n 1 "${STATS}" | cut -c1-400
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
