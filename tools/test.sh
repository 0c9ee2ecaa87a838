#!/usr/bin/env bash
# The whole test suite: the plain build (unit, death, stress and shim tests,
# real programs under LD_PRELOAD, the example that consumes Rulloc as an
# external Bazel repository), then the ThreadSanitizer and the
# AddressSanitizer+UBSan builds of everything that does not replace malloc,
# then the libFuzzer harnesses.
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

# libFuzzer harnesses (clang, ASan + UBSan; tests/fuzz): each seed corpus as a
# regression test, then a short fuzzing run of each. A crash, a sanitizer
# report or a leak fails; the failing input and the log stay in the printed
# folder. README.md, "Fuzzing", says how to run them longer.
bazel test --config=fuzz //tests/fuzz:corpus_tests
bazel build --config=fuzz //tests/fuzz:api_fuzzer //tests/fuzz:options_fuzzer
fuzz_bin=$(bazel info --config=fuzz bazel-bin)/tests/fuzz
fuzz_dir=$(mktemp -d)
run_fuzzer() {  # name seconds [libFuzzer flags...]
  local name=$1 seconds=$2
  shift 2
  mkdir -p "$fuzz_dir/$name"
  if ! "$fuzz_bin/${name}_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2560 -timeout=60 \
    -artifact_prefix="$fuzz_dir/" "$@" "$fuzz_dir/$name" "tests/fuzz/corpus/$name" \
    >"$fuzz_dir/$name.log" 2>&1; then
    tail -n 40 "$fuzz_dir/$name.log"
    echo "${name}_fuzzer failed: input and log in $fuzz_dir" >&2
    return 1
  fi
  echo "${name}_fuzzer: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$fuzz_dir/$name.log")"
}
run_fuzzer api 60 -max_len=1024
run_fuzzer options 20 -dict=tests/fuzz/options.dict
rm -rf "$fuzz_dir"
