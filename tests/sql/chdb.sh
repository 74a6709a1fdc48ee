# Sourced by tests/sql/run.sh and tests/clickhouse/run.sh, from the
# repository root: installs chdb (ClickHouse in-process) and DuckDB from PyPI into a
# virtual environment under the target directory (once) and builds
# `footprint`; sets $venv and $footprint.
target="${CARGO_TARGET_DIR:-target}"
venv="$target/sql-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Pinned to the ClickHouse build the conformance answers were checked with
# (conformance/SEMANTICS.md).
"$venv/bin/pip" install -q --disable-pip-version-check "chdb==4.4.0" "duckdb==2.0.1"
cargo build -q --profile test -p footprint-server --bin footprint
footprint="$target/debug/footprint"
