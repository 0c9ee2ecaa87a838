#!/usr/bin/env bash
# The dynamic loader writes every page of librulloc.so's .data that holds a
# load-time relocation, in every process that loads it: a private copy of
# that page. The process allocator is constant data there, its buckets 320
# objects over 24 pages; they hold no pointer (SmallBucket's constructor),
# so that only the pages a process allocates from get written.
set -euo pipefail
so="$1"
# (The section index, "[ 9]" or "[26]", is stripped before the fields.)
read -r data_addr data_size < <(readelf -SW "${so}" | sed 's/^ *\[ *[0-9]*\] *//' |
  awk '$1 == ".data" { print $3, $5 }') || true
if [ -z "${data_addr:-}" ]; then
  echo "FAIL: no .data section in ${so}" >&2
  exit 1
fi
start=$((16#${data_addr}))
end=$((start + 16#${data_size}))
# Pages of 4 KiB, the unit of the file's layout (and of copies on x86-64).
declare -A pages=()
while read -r offset; do
  address=$((16#${offset}))
  if ((address >= start && address < end)); then pages[$((address / 4096))]=1; fi
done < <(readelf -rW "${so}" | awk '$1 ~ /^[0-9a-f]+$/ && NF >= 3 { print $1 }')
data_pages=$(((end - start + 4095) / 4096))
# The heap points at itself: none found means the relocations were not read
# (say, packed as RELR, which this does not parse).
if ((${#pages[@]} == 0)); then
  echo "FAIL: no relocation found in .data" >&2
  exit 1
fi
echo "${#pages[@]} of the ${data_pages} pages of .data hold relocations"
if ((${#pages[@]} > 8)); then
  echo "FAIL: more than 8 pages of .data are written at load time" >&2
  exit 1
fi
