#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to build, test and
# benchmark Rulloc. Needs root (or sudo) for apt-get; reaches only Debian's
# package archive.
set -euo pipefail

packages=(
  bazel-bootstrap bazel-bootstrap-source default-jdk-headless
  g++ clang clang-format libclang-rt-14-dev libc++-14-dev libc++abi-14-dev
  libabsl-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
  libjemalloc2 libjemalloc-dev libtcmalloc-minimal4 libgoogle-perftools-dev
  libmimalloc2.0 libmimalloc-dev
  python3 python3-scipy python3-statsmodels gnuplot-nox git sqlite3 xz-utils
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
