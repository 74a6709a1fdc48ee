#!/usr/bin/env bash
# The ClickHouse cluster path (issue 19, item 3): `sql --ddl clickhouse`,
# `load-clickhouse` and `query --clickhouse`, end to end against chdb
# (ClickHouse in-process, installed from PyPI into the same virtual
# environment as tests/sql/run.sh) behind a small HTTP shim that speaks
# ClickHouse's HTTP interface (tests/clickhouse/run.py). No real
# ClickHouse server: Debian's (18.16) is too old for the translated SQL.
# A missing Python or a failed install is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/sql/chdb.sh
"$venv/bin/python" tests/clickhouse/run.py "$footprint" tests/sql/queries
