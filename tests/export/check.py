"""The Parquet export read back by DuckDB and ClickHouse (chdb), with Hive
partitioning (issue 19, item 5).

A `footprint gen` store is exported (date partitions, the default); then
  - DuckDB `read_parquet('OUT/events/**/*.parquet', hive_partitioning = 1)`
    and ClickHouse `file('OUT/events/*/*/*.parquet')` count each event as
    `footprint query` does (an events query, interval total), count each
    day as the manifest and the `date=` partitions say, and count distinct
    users per event over a date range, filtered by the `date` partition
    column, as `footprint query` over the same time range;
  - every file is sorted by (user, time, seq) (DuckDB reads it in order);
  - more events are ingested (late ones with old times, ties in time, a
    new user), `footprint export --since last` adds exactly them, all
    counts agree again, and a second run adds nothing.
Any difference, error or missing tool fails.

usage: check.py FOOTPRINT_BIN
"""
import json
import os
import subprocess
import sys
import tempfile

import chdb
import duckdb


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr}"
    return r.stdout


def footprint_totals(bin_, data, metrics, time_range=None):
    """{(event, agg): total} of an events query, interval total."""
    q = {"kind": "events", "interval": "total", "metrics": metrics}
    if time_range:
        q["time_range"] = time_range
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(q, f)
    try:
        out = json.loads(run(bin_, "query", "--data", data, f.name))
    finally:
        os.unlink(f.name)
    return {(s["event"], s["agg"]): s["total"] for s in out["series"]}


def check(bin_, data, out, label):
    """Every count of the module doc, on the export in `out` of `data`."""
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["format"] == "footprint-parquet-export" and man["partition"] == "date", man
    files = os.path.join(out, "events", "**", "*.parquet")
    ch_files = os.path.join(out, "events", "*", "*", "*.parquet")
    dk = duckdb.connect()
    src = f"read_parquet('{files}', hive_partitioning = 1)"

    names = [r[0] for r in dk.sql(f"SELECT DISTINCT event FROM {src} ORDER BY 1").fetchall()]
    assert len(names) >= 3, names
    fp = footprint_totals(bin_, data, [{"event": e, "agg": "count"} for e in names])
    want = {e: fp[(e, "count")] for e in names}
    duck = dict(dk.sql(f"SELECT event, count(*) FROM {src} GROUP BY 1").fetchall())
    assert duck == want, f"{label}: DuckDB counts per event {duck} != footprint {want}"
    res = chdb.query(f"SELECT event, count() FROM file('{ch_files}', Parquet) GROUP BY event "
                     "SETTINGS use_hive_partitioning = 1", "JSONCompact")
    ch = {e: int(n) for e, n in json.loads(res.bytes())["data"]}
    assert ch == want, f"{label}: ClickHouse counts per event {ch} != footprint {want}"
    total = sum(want.values())
    assert man["watermark"]["events"] == total, (man["watermark"], total)
    assert sum(f["rows"] for f in man["files"]) == total

    # Per day: the partition column, the event times and the manifest agree.
    per_day = dict(dk.sql(f"SELECT CAST(date AS VARCHAR), count(*) FROM {src} GROUP BY 1").fetchall())
    by_time = dict(dk.sql(f"SELECT strftime(time AT TIME ZONE 'UTC', '%Y-%m-%d'), count(*) "
                          f"FROM {src} GROUP BY 1").fetchall())
    by_man = {}
    for f in man["files"]:
        by_man[f["partition"]["date"]] = by_man.get(f["partition"]["date"], 0) + f["rows"]
    assert per_day == by_time == by_man, f"{label}: per day {per_day} / {by_time} / {by_man}"
    res = chdb.query(f"SELECT toString(date), count() FROM file('{ch_files}', Parquet) GROUP BY 1 "
                     "SETTINGS use_hive_partitioning = 1", "JSONCompact")
    ch_day = {d: int(n) for d, n in json.loads(res.bytes())["data"]}
    assert ch_day == by_man, f"{label}: ClickHouse per day {ch_day} != {by_man}"

    # Each file in (user, time, seq) order.
    unsorted = dk.sql(f"""
        SELECT count(*) FROM (
          SELECT filename, file_row_number AS r, user, time, seq,
                 lag(user) OVER w AS pu, lag(time) OVER w AS pt, lag(seq) OVER w AS ps
          FROM read_parquet('{files}', filename = true, file_row_number = true)
          WINDOW w AS (PARTITION BY filename ORDER BY file_row_number))
        WHERE pu IS NOT NULL AND (pu, pt, ps) >= (user, time, seq)""").fetchall()[0][0]
    assert unsorted == 0, f"{label}: {unsorted} rows out of (user, time, seq) order"

    # The canonical query: distinct users per event over a week of days,
    # the engines filtering on the partition column.
    days = sorted(by_man)
    lo, hi = days[len(days) // 4], days[len(days) // 4 + 7] if len(days) > len(days) // 4 + 7 else days[-1]
    rng = {"from": f"{lo}T00:00:00Z", "to": f"{hi}T00:00:00Z"}
    fp = footprint_totals(bin_, data, [{"event": e, "agg": "users"} for e in names], rng)
    want = {e: fp[(e, "users")] for e in names if fp[(e, "users")]}
    duck = dict(dk.sql(f"SELECT event, count(DISTINCT user) FROM {src} "
                       f"WHERE date >= DATE '{lo}' AND date < DATE '{hi}' GROUP BY 1").fetchall())
    assert duck == want, f"{label}: DuckDB users per event {lo}..{hi} {duck} != footprint {want}"
    res = chdb.query(f"SELECT event, uniqExact(user) FROM file('{ch_files}', Parquet) "
                     f"WHERE date >= '{lo}' AND date < '{hi}' GROUP BY event "
                     "SETTINGS use_hive_partitioning = 1", "JSONCompact")
    ch = {e: int(n) for e, n in json.loads(res.bytes())["data"]}
    assert ch == want, f"{label}: ClickHouse users per event {lo}..{hi} {ch} != footprint {want}"
    print(f"{label}: {total} events in {len(man['files'])} files over {len(days)} days: "
          f"counts per event and day, order, and users per event {lo}..{hi} equal in DuckDB and ClickHouse")
    return man


def main():
    bin_ = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        data, out = os.path.join(work, "db"), os.path.join(work, "pq")
        run(bin_, "gen", "--users", "400", "--events", "30000", "--days", "21", "--seed", "5",
            "--data", data)
        run(bin_, "export", "--data", data, "--parquet", out)
        first = check(bin_, data, out, "full export")

        # Late events (old times, a user's exact earlier times: ties) and a
        # new user, then an incremental export.
        dk = duckdb.connect()
        old = dk.sql(f"SELECT user, epoch_ms(time) FROM read_parquet('{out}/events/**/*.parquet') "
                     "ORDER BY user, time LIMIT 40").fetchall()
        more = os.path.join(work, "more.ndjson")
        with open(more, "w") as f:
            for i, (user, t) in enumerate(old):
                f.write(json.dumps({"user": user, "event": "late_event", "time": t,
                                    "props": {"k": i}}) + "\n")
            for i in range(25):
                f.write(json.dumps({"user": "newcomer", "event": "visit",
                                    "time": old[0][1] + i * 3_600_000, "props": {}}) + "\n")
        run(bin_, "ingest", "--data", data, more)
        said = run(bin_, "export", "--data", data, "--parquet", out, "--since", "last")
        assert "exported 65 events new since the last export" in said, said
        second = check(bin_, data, out, "incremental export")
        added = [f for f in second["files"] if f not in first["files"]]
        assert all(f["run"] == 1 for f in added) and sum(f["rows"] for f in added) == 65, added
        assert all(f in second["files"] for f in first["files"])

        said = run(bin_, "export", "--data", data, "--parquet", out)
        assert "exported 0 events new since the last export" in said, said
        third = json.load(open(os.path.join(out, "manifest.json")))
        assert third["files"] == second["files"] and third["runs"] == 3
        print("a rerun added nothing")


if __name__ == "__main__":
    main()
