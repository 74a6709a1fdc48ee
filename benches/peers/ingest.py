#!/usr/bin/env python3
"""Bulk load of one NDJSON file, side by side in one run: `footprint ingest`
(durable at the end, compacted) vs ClickHouse (chdb: a MergeTree ordered by
(user, time), `INSERT ... FROM file(..., JSONEachRow)`) vs DuckDB
(`read_ndjson` into a table). Prints seconds, events/s and peer/Footprint
ratios, and checks every engine loaded every row.

    pip install chdb duckdb
    footprint gen --events 10000000 --out /tmp/ev.ndjson
    python3 benches/peers/ingest.py --file /tmp/ev.ndjson [--footprint target/release/footprint]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time


def footprint(binary, path, tmp):
    data = os.path.join(tmp, "fp")
    t = time.perf_counter()
    out = subprocess.run([binary, "ingest", "--data", data, path], check=True,
                         capture_output=True, text=True).stdout
    secs = time.perf_counter() - t
    stats = json.loads(subprocess.run([binary, "stats", "--json", "--data", data], check=True,
                                      capture_output=True, text=True).stdout)
    return secs, stats["events"], out.strip().splitlines()[-1]


def clickhouse(path, tmp):
    from chdb import session
    s = session.Session(os.path.join(tmp, "ch"))
    s.query("CREATE TABLE ev (user String, event String, time DateTime64(3, 'UTC'), "
            "props JSON) ENGINE = MergeTree ORDER BY (user, time)")
    t = time.perf_counter()
    s.query(f"INSERT INTO ev SELECT user, event, fromUnixTimestamp64Milli(time), props "
            f"FROM file('{path}', JSONEachRow, 'user String, event String, time Int64, props JSON')")
    secs = time.perf_counter() - t
    n = int(str(s.query("SELECT count() FROM ev", "CSV")).strip())
    s.close()
    return secs, n


def duckdb_load(path, tmp):
    import duckdb
    con = duckdb.connect(os.path.join(tmp, "duck.db"))
    t = time.perf_counter()
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_ndjson('{path}', "
                "columns={'user': 'VARCHAR', 'event': 'VARCHAR', 'time': 'BIGINT', 'props': 'JSON'})")
    con.execute("CHECKPOINT")
    secs = time.perf_counter() - t
    n = con.execute("SELECT count(*) FROM ev").fetchone()[0]
    con.close()
    return secs, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--footprint", default="target/release/footprint")
    a = ap.parse_args()
    path = os.path.abspath(a.file)
    mb = os.path.getsize(path) / 1e6
    tmp = tempfile.mkdtemp(prefix="fp-ingest-", dir=os.path.dirname(path))
    try:
        fs, fn, line = footprint(a.footprint, path, tmp)
        shutil.rmtree(os.path.join(tmp, "fp"))
        print(f"footprint  {fs:8.2f} s  {fn / fs:12,.0f} events/s  ({fn} events; {line})")
        cs, cn = clickhouse(path, tmp)
        shutil.rmtree(os.path.join(tmp, "ch"), ignore_errors=True)
        print(f"clickhouse {cs:8.2f} s  {cn / cs:12,.0f} events/s  ({cn} rows)  {cs / fs:.2f}x Footprint's time")
        ds, dn = duckdb_load(path, tmp)
        print(f"duckdb     {ds:8.2f} s  {dn / ds:12,.0f} events/s  ({dn} rows)  {ds / fs:.2f}x Footprint's time")
        assert fn == cn == dn, (fn, cn, dn)
        print(f"file: {mb:.0f} MB; all three loaded every row")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
