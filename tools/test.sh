#!/usr/bin/env bash
# The whole test suite: the plain build (unit, death, stress and shim tests,
# real programs under LD_PRELOAD, the example that consumes Rulloc as an
# external Bazel repository), then the ThreadSanitizer and the
# AddressSanitizer+UBSan builds of everything that does not replace malloc.
# Installs its own dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

bazel test //...

# The consumer example is a Bazel workspace of its own.
(cd examples/consumer && bazel run //:server -- --check-rulloc)

# Sanitizers bring their own malloc: targets tagged no_sanitizer (the shim,
# and tests of binaries that link it) are left out of those builds.
sanitizer_filters=(--build_tag_filters=-no_sanitizer --test_tag_filters=-no_sanitizer)
bazel test --config=tsan "${sanitizer_filters[@]}" //...
bazel test --config=asan "${sanitizer_filters[@]}" //...
