#!/usr/bin/env bash
# The SQL translation equality test (issue 19): installs chdb (ClickHouse
# in-process) and DuckDB from PyPI into a virtual environment under the target
# directory (once), builds `footprint`, and checks every conformance case
# (tests/conformance/cases and analyses/cases) through
# tests/sql/run_cases.py: the translated SQL, run in ClickHouse over the
# case's Parquet export, must give `footprint query`'s answer; so must
# every query of tests/sql/queries on a `footprint gen` data set. Each
# case and query translates, so a refused one fails too (--all). Then the
# Parquet export read back by DuckDB and ClickHouse (tests/export/check.py:
# counts per event and per day, distinct users per event over a date range,
# an incremental export). A missing Python or a failed install is a
# failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/sql/chdb.sh
status=0
"$venv/bin/python" tests/sql/run_cases.py "$footprint" --all --queries tests/sql/queries \
  tests/conformance/cases tests/conformance/analyses/cases || status=1
"$venv/bin/python" tests/export/check.py "$footprint" || status=1
exit $status
