#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need when it is missing, builds, tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v swift >/dev/null 2>&1; then
  echo "hack/test.sh: swift is not on PATH (expected Swift 6.x, e.g. /opt/swift/usr/bin)" >&2
  exit 1
fi

swift build --build-tests
swift test --skip-build --parallel
