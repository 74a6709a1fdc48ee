#!/usr/bin/env bash
# The tracker SDK tests: installs the real SDKs from PyPI into a virtual
# environment under the target directory (once), builds `footprint`, and
# runs tests/sdk/test_python_sdks.py against it. A missing Python or a
# failed install is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
venv="$target/sdk-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Pinned to the versions this test was written against.
"$venv/bin/pip" install -q --disable-pip-version-check \
  "posthog==7.91.1" "segment-analytics-python==2.4.0" "mixpanel==5.4.1"
cargo build -q --profile test -p footprint-server --bin footprint
"$venv/bin/python" tests/sdk/test_python_sdks.py "$target/debug/footprint"
