# Helpers for tests that run real programs with Rulloc preloaded. Sourced.
set -euo pipefail

RULLOC_SO="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export HOME="${TEST_TMPDIR:-$(mktemp -d)}"
WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/work.XXXXXX")"
STATS="${WORK}/rulloc-stats.txt"

# Runs a command with Rulloc preloaded and its statistics appended to
# $STATS (a file: some programs close stderr before they exit).
with_rulloc() {
  LD_PRELOAD="${RULLOC_SO}" RULLOC_STATS_FILE="${STATS}" "$@"
}

# Fails unless Rulloc served allocations in the processes run so far: every
# statistics line is from a process whose thread caches were refilled.
expect_rulloc_served() {
  local lines served
  lines=$(grep -c '^rulloc: stats:' "${STATS}" || true)
  served=$(grep '^rulloc: stats:' "${STATS}" | grep -vc ' 0 refills' || true)
  if [ "${lines}" -eq 0 ] || [ "${served}" -eq 0 ]; then
    echo "FAIL: Rulloc served no allocations (${lines} statistics lines)" >&2
    cat "${STATS}" >&2
    exit 1
  fi
  if grep -v '^rulloc: stats:' "${STATS}" | grep -q '^rulloc:'; then
    echo "FAIL: Rulloc reported heap misuse" >&2
    cat "${STATS}" >&2
    exit 1
  fi
  echo "rulloc served ${served} of ${lines} processes"
  tail -n 1 "${STATS}"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
