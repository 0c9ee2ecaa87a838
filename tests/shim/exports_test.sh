#!/usr/bin/env bash
# librulloc.so exports the malloc interface, operator new/delete and the
# rulloc_* C API, and nothing of its internals (shim/exports.lds); it needs
# no library but libc, so that a C program that preloads it loads no C++
# runtime.
set -euo pipefail
so="$1"
exported=$(readelf --dyn-syms -W "${so}" | awk '$5 == "GLOBAL" || $5 == "WEAK" { if ($7 != "UND") print $8 }')
for needed in malloc free calloc realloc posix_memalign aligned_alloc malloc_usable_size \
  rulloc_malloc rulloc_stats_write _Znwm _ZdlPv; do
  grep -qx "${needed}" <<<"${exported}" || { echo "FAIL: ${needed} is not exported" >&2; exit 1; }
done
stray=$(grep -vE '^(malloc|free|calloc|realloc|reallocarray|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|malloc_usable_size|malloc_trim|mallopt|mallinfo2?|malloc_stats|malloc_info|cfree|__libc_(malloc|free|calloc|realloc|memalign|valloc|pvalloc|mallinfo|mallopt)|__posix_memalign|rulloc_[a-z_]+|_Z(nw|na|dl|da)[A-Za-z0-9_]*)(@.*)?$' <<<"${exported}" || true)
if [ -n "${stray}" ]; then
  echo "FAIL: internal symbols exported:" >&2
  echo "${stray}" >&2
  exit 1
fi
needed_libs=$(readelf -d -W "${so}" | awk '/\(NEEDED\)/ { print $NF }' | tr -d '[]')
if [ "${needed_libs}" != "libc.so.6" ]; then
  echo "FAIL: needs more than libc: ${needed_libs//$'\n'/ }" >&2
  exit 1
fi
undefined_cxx=$(readelf --dyn-syms -W "${so}" | awk '$7 == "UND" { print $8 }' | grep -E 'GLIBCXX|CXXABI|GCC_' || true)
if [ -n "${undefined_cxx}" ]; then
  echo "FAIL: refers to the C++ runtime:" >&2
  echo "${undefined_cxx}" >&2
  exit 1
fi
echo "$(wc -l <<<"${exported}") symbols exported, all of the interface; needs only libc"
