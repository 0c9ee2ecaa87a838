#!/usr/bin/env bash
# The main job: build the library and run the examples. Installs its own
# dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
bazel build --config=opt //:rulloc //examples:all
for example in standalone buckets aligned containers; do
  echo "== examples/${example}"
  bazel run --config=opt --ui_event_filters=-info,-stdout,-stderr --noshow_progress \
    "//examples:${example}"
done
