#!/usr/bin/env bash
# git init, add, commit and log on a generated repository under Rulloc.
source "$(dirname "$0")/preload_lib.sh" "$1"
repo="${WORK}/repo"
mkdir -p "${repo}"
cd "${repo}"
with_rulloc git init -q .
with_rulloc git config user.name "Rulloc Test"
with_rulloc git config user.email "test@example.com"
for commit in $(seq 1 20); do
  for file in $(seq 1 50); do
    printf 'commit %d file %d\n%s\n' "${commit}" "${file}" "$(seq 1 $((commit * file % 200)))" \
      > "file${file}.txt"
  done
  with_rulloc git add -A
  with_rulloc git commit -q -m "commit ${commit}"
done
count=$(with_rulloc git log --oneline | wc -l)
[ "${count}" -eq 20 ] || fail "git log shows ${count} commits, expected 20"
with_rulloc git gc -q
with_rulloc git fsck --strict --no-progress > "${WORK}/fsck.txt" || fail "git fsck: $(cat "${WORK}/fsck.txt")"
last=$(with_rulloc git log -1 --format=%s)
[ "${last}" = "commit 20" ] || fail "last commit is '${last}'"
echo "git: ${count} commits, fsck clean"
expect_rulloc_served
