#!/usr/bin/env bash
# sqlite3 building, indexing and querying a generated database under Rulloc.
source "$(dirname "$0")/preload_lib.sh" "$1"
db="${WORK}/test.db"
sql="${WORK}/load.sql"
{
  echo 'CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, category INTEGER);'
  echo 'BEGIN;'
  echo 'WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000)'
  echo "INSERT INTO items SELECT x, 'item' || x || substr('abcdefghij', 1, x % 10), (x * 37 % 1000) / 10.0, x % 97 FROM n;"
  echo 'COMMIT;'
  echo 'CREATE INDEX by_category ON items(category, price);'
} > "${sql}"
with_rulloc sqlite3 "${db}" < "${sql}"
query='SELECT count(*), sum(price), max(length(name)) FROM items; SELECT category, count(*), round(avg(price), 3) FROM items GROUP BY category ORDER BY 3 DESC LIMIT 3; PRAGMA integrity_check;'
expected=$(sqlite3 "${db}" "${query}")
actual=$(with_rulloc sqlite3 "${db}" "${query}")
[ "${actual}" = "${expected}" ] || fail "sqlite3 answers differ: ${actual} vs ${expected}"
echo "${actual}" | grep -q '^200000|' || fail "row count: ${actual}"
echo "${actual}" | grep -q '^ok$' || fail "integrity check: ${actual}"
echo "sqlite3: $(echo "${actual}" | head -1)"
expect_rulloc_served
