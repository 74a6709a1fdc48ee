#!/usr/bin/env bash
# The SQL translation equality test (issue 19): installs chdb (ClickHouse
# in-process) from PyPI into a virtual environment under the target
# directory (once), builds `footprint`, and checks every conformance case
# (tests/conformance/cases and analyses/cases) through
# tests/sql/run_cases.py: the translated SQL, run in ClickHouse over the
# case's Parquet export, must give `footprint query`'s answer; so must
# every query of tests/sql/queries on a `footprint gen` data set. Each
# case and query translates, so a refused one fails too (--all). A missing Python
# or a failed install is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
venv="$target/sql-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Pinned to the ClickHouse build the conformance answers were checked with
# (conformance/SEMANTICS.md).
"$venv/bin/pip" install -q --disable-pip-version-check "chdb==4.4.0"
cargo build -q --profile test -p footprint-server --bin footprint
"$venv/bin/python" tests/sql/run_cases.py "$target/debug/footprint" --all --queries tests/sql/queries \
  tests/conformance/cases tests/conformance/analyses/cases
