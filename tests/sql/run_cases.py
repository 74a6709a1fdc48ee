"""The SQL translation equality test (issue 19): for every conformance case,
load its events into a Footprint store, export them to Parquet, translate
the case's query to ClickHouse SQL (`footprint sql`), run it in ClickHouse
(chdb), rebuild the result JSON from the long-form rows and compare it with
`footprint query` on the same store.

A case whose query the translator refuses (`not translatable`) is reported
as not covered, per kind; any other difference or error is a failure.

usage: run_cases.py FOOTPRINT_BIN CASE_DIR...
"""
import json
import math
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

import chdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rebuild import rebuild  # noqa: E402

SCHEMA = "user String, event String, time DateTime64(3, \\'UTC\\'), seq UInt64, props String"


def same(a, b, path="$"):
    """Equal JSON, numbers compared as numbers (relative 1e-9: sums and
    averages may add in another order)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a is b else f"{path}: {a!r} != {b!r}"
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0):
            return None
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            d = same(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def one(bin_, case, work):
    """A conformance case: its events in a fresh store, then `compare`."""
    data, out = os.path.join(work, "db"), os.path.join(work, "pq")
    ev = os.path.join(work, "events.ndjson")
    with open(ev, "w") as f:
        for e in case["events"]:
            f.write(json.dumps(e) + "\n")
    r = run([bin_, "ingest", "--data", data, ev])
    assert r.returncode == 0, f"ingest failed: {r.stderr}"
    export(bin_, data, out)
    q = os.path.join(work, "query.json")
    with open(q, "w") as f:
        json.dump(case["query"], f)
    return compare(bin_, data, out, q)


def export(bin_, data, out):
    r = run([bin_, "export", "--data", data, "--parquet", out])
    assert r.returncode == 0, f"export failed: {r.stderr}"


def compare(bin_, data, out, q):
    """'pass', 'not covered: …' or raises AssertionError with the difference:
    query file `q` on store `data` (exported to `out`), through
    `footprint query` and through its SQL in ClickHouse."""
    r = run([bin_, "query", "--data", data, q])
    if r.returncode != 0:
        # An invalid query: the translator must refuse it with the same
        # error, since it parses with the same parser.
        s = run([bin_, "sql", "--data", data, q])
        if s.returncode != 0 and s.stderr == r.stderr:
            return "pass"
        if "not translatable to SQL" in s.stderr:
            return "not covered: " + s.stderr.strip().removeprefix("error: ")
        raise AssertionError(f"footprint query refused the query ({r.stderr.strip()}) "
                             f"but footprint sql answered: {s.stderr or s.stdout[:200]}")
    want = json.loads(r.stdout)
    # Warnings are advice about the store (an event never stored), not
    # part of the answer.
    want.pop("warnings", None)
    table = f"file('{out}/events/*/*/*.parquet', Parquet, '{SCHEMA}')"
    profiles = f"file('{out}/profiles.parquet', Parquet, 'user String, props String')"
    r = run([bin_, "sql", "--dialect", "clickhouse", "--data", data, "--table", table,
             "--profiles", profiles, q])
    if r.returncode != 0:
        if "not translatable to SQL" in r.stderr:
            return "not covered: " + r.stderr.strip().removeprefix("error: ")
        raise AssertionError(f"footprint sql failed: {r.stderr}")
    try:
        res = chdb.query(r.stdout, "JSONEachRow")
    except Exception as e:  # chdb raises its own error types
        raise AssertionError(f"ClickHouse refused the SQL: {e}\n{r.stdout}")
    rows = [json.loads(line) for line in res.bytes().decode().splitlines() if line]
    got = rebuild((x["path"], x["num"], x["text"]) for x in rows)
    diff = same(want, got)
    assert diff is None, f"{diff}\nengine: {json.dumps(want)}\nsql:    {json.dumps(got)}"
    return "pass"


def tally_one(tally, failures, uncovered, kind, name, verdict):
    if verdict == "pass":
        tally[kind]["pass"] += 1
    elif verdict.startswith("not covered: "):
        tally[kind]["not covered"] += 1
        uncovered[kind].append(verdict.removeprefix("not covered: "))
    else:
        tally[kind]["fail"] += 1
        failures.append(f"{name}: {verdict}")


def checked(f, *args):
    try:
        return f(*args)
    except AssertionError as e:
        return str(e) or "failed"


def main():
    """usage: run_cases.py FOOTPRINT_BIN [--all] [--queries DIR] CASE_DIR...

    `--queries DIR`: also every query file in DIR, on one data set made
    by `footprint gen` (profiles, typed properties, many users).
    `--all`: a case or query the translator refuses fails too (every kind
    is translated, so none may fall back)."""
    args = sys.argv[1:]
    bin_, queries, require_all = args.pop(0), None, False
    if args[:1] == ["--all"]:
        require_all = True
        args = args[1:]
    if args[:1] == ["--queries"]:
        queries = args[1]
        args = args[2:]
    dirs = args
    files = sorted(os.path.join(d, f) for d in dirs for f in os.listdir(d) if f.endswith(".json"))
    assert files, f"no cases in {dirs}"
    tally = defaultdict(lambda: defaultdict(int))
    failures, uncovered = [], defaultdict(list)
    for path in files:
        with open(path) as f:
            case = json.load(f)
        with tempfile.TemporaryDirectory() as work:
            verdict = checked(one, bin_, case, work)
        tally_one(tally, failures, uncovered, case["query"]["kind"], os.path.basename(path), verdict)
    if queries:
        qfiles = sorted(os.path.join(queries, f) for f in os.listdir(queries) if f.endswith(".json"))
        assert qfiles, f"no queries in {queries}"
        with tempfile.TemporaryDirectory() as work:
            data, out = os.path.join(work, "db"), os.path.join(work, "pq")
            r = run([bin_, "gen", "--users", "300", "--events", "12000", "--days", "14",
                     "--seed", "19", "--data", data])
            assert r.returncode == 0, f"gen failed: {r.stderr}"
            export(bin_, data, out)
            for q in qfiles:
                with open(q) as f:
                    kind = json.load(f)["kind"]
                verdict = checked(compare, bin_, data, out, q)
                tally_one(tally, failures, uncovered, kind + " (gen)", "gen: " + os.path.basename(q), verdict)
        files += qfiles
    print("SQL translation equality, per kind (cases):")
    for kind in sorted(tally):
        t = tally[kind]
        print(f"  {kind:19} {t['pass']:3} equal, {t['fail']:3} failed, {t['not covered']:3} not covered")
    for kind in sorted(uncovered):
        reasons = defaultdict(int)
        for why in uncovered[kind]:
            reasons[why] += 1
        for why, n in sorted(reasons.items()):
            print(f"  not covered ({kind}, {n}): {why}")
    for f in failures:
        print("FAIL", f)
    passed = sum(t["pass"] for t in tally.values())
    print(f"{passed} equal, {len(failures)} failed, "
          f"{sum(t['not covered'] for t in tally.values())} not covered, of {len(files)} cases")
    refused = sum(t["not covered"] for t in tally.values())
    if require_all and refused:
        print(f"FAIL --all: {refused} cases not covered")
    sys.exit(1 if failures or passed == 0 or (require_all and refused) else 0)


if __name__ == "__main__":
    main()
