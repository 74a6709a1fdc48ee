#!/usr/bin/env python3
"""Side-by-side: Footprint vs ClickHouse (chdb) vs DuckDB on the same data.

Exports a Footprint data directory to Parquet (`footprint export`), loads it
into ClickHouse (MergeTree ordered by (user, ts)) and DuckDB, runs each
canonical query on all three engines in this one process run, checks the
answers agree, and prints latencies and peer/Footprint ratios.

    pip install chdb duckdb
    python3 benches/peers/peers.py --data DIR [--footprint target/release/footprint] [--repeat 3]
"""
import argparse
import json
import os
import subprocess
import sys
import time

DAY = 86_400_000


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def timed(fn, repeat):
    fn()  # warm-up
    ts = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return out, ts[len(ts) // 2]


# The canonical queries: Footprint JSON, ClickHouse SQL, DuckDB SQL, and how
# to compare the answers.
FUNNEL_STEPS = ["visit", "signup", "view_demo", "create_report"]
W7 = 7 * DAY


def fp_funnel(r):
    return [s["users"] for s in r["steps"]]


def ch_funnel():
    conds = ", ".join(f"event = '{e}'" for e in FUNNEL_STEPS)
    return f"""SELECT level, count() FROM (SELECT user, windowFunnel({W7})(ts, {conds}) AS level
               FROM ev GROUP BY user) WHERE level > 0 GROUP BY level ORDER BY level"""


def duck_funnel():
    # Default-mode windowFunnel equals: the longest chain e1..ek with
    # t1 <= ... <= tk <= t1 + window. Taking the earliest next step from each
    # start (ASOF joins) finds it.
    s = FUNNEL_STEPS
    sql = f"WITH s1 AS (SELECT user, ts AS t1 FROM ev WHERE event = '{s[0]}')"
    prev = "s1"
    cols = "t1"
    for i, e in enumerate(s[1:], start=2):
        sql += f""", e{i} AS (SELECT user, ts FROM ev WHERE event = '{e}'),
        s{i} AS (SELECT p.*, n.ts AS t{i} FROM {prev} p ASOF LEFT JOIN e{i} n
                 ON p.user = n.user AND n.ts >= p.t{i-1})"""
        prev = f"s{i}"
    lv = " + ".join(
        [f"(t{i} IS NOT NULL AND t{i} <= t1 + {W7}" + "".join(f" AND t{j} IS NOT NULL AND t{j} <= t1 + {W7}" for j in range(2, i)) + ")::INT"
         for i in range(2, len(s) + 1)])
    sql += f"""
    , lv AS (SELECT user, max(1 + {lv}) AS level FROM {prev} GROUP BY user)
    SELECT level, count(*) FROM lv GROUP BY level ORDER BY level"""
    return sql


def levels_to_steps(rows, n):
    h = {int(l): int(c) for l, c in rows}
    return [sum(c for l, c in h.items() if l >= k) for k in range(1, n + 1)]


def ch_funnel_by_utm():
    # windowFunnel returns only the level; the breakdown needs the chain that
    # gave it. This replays windowFunnel's default-mode state machine with
    # arrayFold: acc[k] / acc[k + n] hold the row and time of the step-1
    # event of the latest chain at level k (SEMANTICS.md: same-ms events in
    # ascending step order; the window is inclusive; a full chain ends it).
    n = len(FUNNEL_STEPS)
    step = "multiIf(" + ", ".join(f"event = '{e}', {i + 1}" for i, e in enumerate(FUNNEL_STEPS)) + ", 0)"
    names = ", ".join(f"'{e}'" for e in FUNNEL_STEPS)
    fold = f"""arrayFold((acc, x, i) -> if(acc[{n}] != 0, acc,
                 if(x.2 = 1, arrayMap(k -> if(k = 1, i, if(k = {n + 1}, x.1, acc[k])), range(1, {2 * n + 1})),
                 if(acc[x.2 - 1] != 0 AND x.1 <= acc[x.2 - 1 + {n}] + {W7},
                    arrayMap(k -> if(k = x.2, acc[x.2 - 1], if(k = x.2 + {n}, acc[x.2 - 1 + {n}], acc[k])), range(1, {2 * n + 1})),
                    acc))),
               evs, arrayEnumerate(evs), CAST(arrayWithConstant({2 * n}, 0) AS Array(UInt64)))"""
    level = "multiIf(" + ", ".join(f"st[{k}] != 0, {k}" for k in range(n, 0, -1)) + ", 0)"
    return f"""SELECT utm, level, count() FROM (
                 SELECT {level} AS level, evs[st[level]].3 AS utm FROM (
                   SELECT {fold} AS st, evs FROM (
                     SELECT user, arraySort(x -> (x.1, x.2), groupArray((ts, toUInt64({step}), utm_source))) AS evs
                     FROM ev WHERE event IN ({names}) GROUP BY user)))
               WHERE level > 0 GROUP BY utm, level"""


def duck_funnel_by_utm():
    # The same replay as ch_funnel_by_utm with DuckDB's list_reduce: each
    # event is [ts, step, row]; acc[k] / acc[k + n] as there.
    n = len(FUNNEL_STEPS)
    step = "CASE " + " ".join(f"WHEN event = '{e}' THEN {i + 1}" for i, e in enumerate(FUNNEL_STEPS)) + " END"
    names = ", ".join(f"'{e}'" for e in FUNNEL_STEPS)
    fold = f"""list_reduce(evs, lambda acc, x: CASE
                 WHEN acc[{n}] != 0 THEN acc
                 WHEN x[2] = 1 THEN list_transform(range(1, {2 * n + 1}),
                      lambda k: CASE WHEN k = 1 THEN x[3] WHEN k = {n + 1} THEN x[1] ELSE acc[k] END)
                 WHEN acc[x[2] - 1] != 0 AND x[1] <= acc[x[2] - 1 + {n}] + {W7} THEN list_transform(range(1, {2 * n + 1}),
                      lambda k: CASE WHEN k = x[2] THEN acc[x[2] - 1] WHEN k = x[2] + {n} THEN acc[x[2] - 1 + {n}] ELSE acc[k] END)
                 ELSE acc END, {[0] * (2 * n)}::BIGINT[])"""
    level = "CASE " + " ".join(f"WHEN st[{k}] != 0 THEN {k}" for k in range(n, 0, -1)) + " ELSE 0 END"
    return f"""WITH s AS (SELECT user, ts, {step} AS step, utm_source FROM ev WHERE event IN ({names})),
               r AS (SELECT *, row_number() OVER (PARTITION BY user ORDER BY ts, step) AS i FROM s),
               u AS (SELECT user, list([ts, step, i]::BIGINT[] ORDER BY i) AS evs, list(utm_source ORDER BY i) AS utms
                     FROM r GROUP BY user),
               f AS (SELECT {fold} AS st, utms FROM u),
               l AS (SELECT {level} AS level, st, utms FROM f)
               SELECT utms[st[level]] AS utm, level, count(*) FROM l WHERE level > 0 GROUP BY 1, 2"""


def by_key(pair):
    return (pair[0] is None, pair[0] or "")


def fp_funnel_by_utm(r):
    return sorted(((g["key"]["utm_source"], [s["users"] for s in g["steps"]]) for g in r["groups"]), key=by_key)


def funnel_groups(rows):
    by = {}
    for utm, level, c in rows:
        by.setdefault(utm, []).append((level, c))
    return sorted(((u, levels_to_steps(v, len(FUNNEL_STEPS))) for u, v in by.items()), key=by_key)


# Retention: signup (first time) → login, in day or ISO-week buckets (UTC).
def bucket_sql(unit, ts, div):
    day = div(ts, DAY)
    return day if unit == "day" else div(f"{day} + 3", 7)


def ch_div(a, b):
    return f"intDiv({a}, {b})"


def duck_div(a, b):
    return f"(({a}) // {b})"


def fp_ret(r):
    return [r["total"]["users"]] + r["total"]["retained"][1:]


def ch_ret(unit, periods):
    b0 = bucket_sql(unit, "min(ts)", ch_div)
    b = bucket_sql(unit, "e.ts", ch_div)
    return f"""WITH starts AS (SELECT user, {b0} AS d0 FROM ev WHERE event = 'signup' GROUP BY user)
               SELECT count(), {', '.join(f'sum(r{k})' for k in range(1, periods + 1))} FROM (
                 SELECT s.user, {', '.join(f"max(e.event = 'login' AND {b} - s.d0 = {k}) AS r{k}" for k in range(1, periods + 1))}
                 FROM starts s LEFT JOIN (SELECT user, event, ts FROM ev WHERE event = 'login') e ON e.user = s.user
                 GROUP BY s.user)"""


def duck_ret(unit, periods):
    b0 = bucket_sql(unit, "min(ts)", duck_div)
    b = bucket_sql(unit, "e.ts", duck_div)
    return f"""WITH starts AS (SELECT user, {b0} AS d0 FROM ev WHERE event = 'signup' GROUP BY user),
               rets AS (SELECT DISTINCT s.user, {b} - s.d0 AS k FROM starts s JOIN ev e ON e.user = s.user
                        WHERE e.event = 'login' AND {b} - s.d0 BETWEEN 1 AND {periods})
               SELECT (SELECT count(*) FROM starts), {', '.join(f'count(*) FILTER (WHERE k = {k})' for k in range(1, periods + 1))} FROM rets"""


# Daily trend of visits (events and distinct users) by utm_source.
def fp_trend(r):
    out = []
    for g in r["groups"]:
        count, users = g["series"][0]["values"], g["series"][1]["values"]
        for day, c, u in zip(r["buckets"], count, users):
            if c:
                out.append((day, g["key"]["utm_source"], c, u))
    return sorted(out)


def ch_trend():
    return f"""SELECT toString(toDate(intDiv(ts, {DAY}))), utm_source, count(), uniqExact(user) FROM ev
               WHERE event = 'visit' GROUP BY 1, 2"""


def duck_trend():
    return f"""SELECT strftime(DATE '1970-01-01' + CAST(ts // {DAY} AS INTEGER), '%Y-%m-%d'), utm_source, count(*),
               count(DISTINCT user) FROM ev WHERE event = 'visit' GROUP BY 1, 2"""


def trend_rows(rows):
    return sorted((d, u, int(c), int(n)) for d, u, c, n in rows)


def fp_interval(r):
    return [r["count"], r["min"], r["max"], round(r["median"], 3)]


def ch_interval():
    return """SELECT count(), min(d), max(d), quantileExactInclusive(0.5)(d) FROM (
                SELECT f.user, min(t.ts) - f.t0 AS d FROM
                  (SELECT user, min(ts) AS t0 FROM ev WHERE event = 'signup' GROUP BY user) f
                  JOIN (SELECT user, ts FROM ev WHERE event = 'pay') t ON t.user = f.user
                WHERE t.ts >= f.t0 GROUP BY f.user, f.t0)"""


def duck_interval():
    return """WITH f AS (SELECT user, min(ts) AS t0 FROM ev WHERE event = 'signup' GROUP BY user),
               d AS (SELECT f.user, min(t.ts) - f.t0 AS d FROM f JOIN ev t ON t.user = f.user
                     WHERE t.event = 'pay' AND t.ts >= f.t0 GROUP BY f.user, f.t0)
               SELECT count(*), min(d), max(d), quantile_cont(d, 0.5) FROM d"""


# How many users logged in 1, 2, 3-5, 6-10, 11-20, 21-50, 51+ times.
DIST_BOUNDS = [1, 2, 3, 6, 11, 21, 51]


def fp_dist(r):
    return [b["users"] for b in r["buckets"]]


def dist_sql(case):
    arms = [(f"c >= {b}", b) for b in reversed(DIST_BOUNDS)]
    return f"""SELECT {case(arms)} AS b, count(*) FROM (SELECT user, count(*) AS c FROM ev WHERE event = 'login'
               GROUP BY user) GROUP BY b"""


def ch_dist():
    return dist_sql(lambda arms: "multiIf(" + ", ".join(f"{c}, {b}" for c, b in arms) + ", 0)")


def duck_dist():
    return dist_sql(lambda arms: "CASE " + " ".join(f"WHEN {c} THEN {b}" for c, b in arms) + " ELSE 0 END")


def dist_rows(rows):
    h = {int(b): int(n) for b, n in rows}
    return [h.get(b, 0) for b in DIST_BOUNDS]


# The cohort "logged in at least 3 times in the 30 days before the range's
# end, and not in the last 7" (benches/queries/cohort_at_risk.json).
COHORT_FROM = 1_767_225_600_000  # 2026-01-01T00:00:00Z
COHORT_END = 1_774_915_200_000  # 2026-03-31T00:00:00Z


def fp_cohort(r):
    return r["users"]


def cohort_sql(count_if):
    return f"""SELECT count(*) FROM (SELECT user,
                 {count_if(f"event = 'login' AND ts >= {COHORT_END - 30 * DAY}")} AS c30,
                 {count_if(f"event = 'login' AND ts >= {COHORT_END - 7 * DAY}")} AS c7
               FROM ev WHERE ts >= {COHORT_FROM} AND ts < {COHORT_END} GROUP BY user)
               WHERE c30 >= 3 AND c7 = 0"""


# Sessions (benches/queries/sessions_daily.json): 30-minute inactivity
# timeout; pages are visit and view_page. Both peers are asked with window
# functions: a row starts a session when it is the user's first or comes
# at least 30 min after the previous one (lag), and a running sum numbers
# the sessions. The 24 h cap is not in the SQL; `max_ms` checks that no
# session comes near it on this data, so the answers must still be equal.
SESS_FROM = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SESS_TO = 1_775_001_600_000  # 2026-04-01T00:00:00Z
TIMEOUT = 30 * 60_000
PAGE_EVENTS = "('visit', 'view_page')"


def sessions_sql(lag, day, median, rollup, count_if, where=f"ts >= {SESS_FROM} AND ts < {SESS_TO}"):
    w = "PARTITION BY user ORDER BY ts, seq"
    return f"""WITH s AS (
                 SELECT user, min(ts) AS start, max(ts) - min(ts) AS dur, count(*) AS n,
                        {count_if(f"event IN {PAGE_EVENTS}")} AS pages
                 FROM (SELECT user, ts, event, sum(new) OVER ({w} ROWS UNBOUNDED PRECEDING) AS sid
                       FROM (SELECT user, ts, seq, event,
                                    CASE WHEN ts - {lag} >= {TIMEOUT} THEN 1 ELSE 0 END AS new
                             FROM ev WHERE {where}) x) y
                 GROUP BY user, sid)
               SELECT {day} AS d, count(*), count(DISTINCT user), avg(dur), {median}, avg(n),
                      {count_if("pages = 1 AND dur < 10000")}, {count_if("pages > 0")}, max(dur)
               FROM s GROUP BY {rollup}"""


def ch_sessions():
    return sessions_sql(
        "lagInFrame(ts, 1, 0) OVER (PARTITION BY user ORDER BY ts, seq ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
        f"toString(toDate(intDiv(start, {DAY})))", "quantileExactInclusive(0.5)(dur)", "d WITH ROLLUP",
        lambda c: f"countIf({c})")


def duck_sessions():
    return sessions_sql(
        "coalesce(lag(ts) OVER (PARTITION BY user ORDER BY ts, seq), 0)",
        f"strftime(DATE '1970-01-01' + CAST(start // {DAY} AS INTEGER), '%Y-%m-%d')", "quantile_cont(dur, 0.5)",
        "ROLLUP (d)", lambda c: f"count(*) FILTER (WHERE {c})")


def r6(x):
    return None if x is None else round(float(x), 6)


def fp_sessions(r):
    out = [(d, n, u, r6(a), r6(m), r6(e), r6(b))
           for d, n, u, a, m, e, b in zip(r["buckets"], r["sessions"], r["users"], r["avg_duration_ms"],
                                          r["median_duration_ms"], r["events_per_session"], r["bounce_rate"]) if n]
    t = r["total"]
    out.append(("total", t["sessions"], t["users"], r6(t["avg_duration_ms"]), r6(t["median_duration_ms"]),
                r6(t["events_per_session"]), r6(t["bounce_rate"])))
    return sorted(out, key=lambda x: (x[0] == "total", x[0]))


def sessions_rows(rows):
    out = []
    for d, n, u, a, m, e, bounces, paged, max_ms in rows:
        if int(max_ms) >= DAY:
            raise SystemExit("a session reaches the 24 h cap the SQL leaves out; the answers would differ")
        out.append(("total" if d is None or d == "" else d, int(n), int(u), r6(a), r6(m), r6(e),
                    r6(int(bounces) / int(paged)) if int(paged) else None))
    return sorted(out, key=lambda x: (x[0] == "total", x[0]))


# Paths from visit, 5 steps, visit/view_page labelled by page, repeats
# collapsed (benches/queries/paths_from_visit.json). The peers compute every
# session's path (sessions as above, then arrays per session: cut at the
# first visit, collapse, keep 5) and count each distinct path; the top-10
# `$other` merge and the node and link counts are then worked out from those
# counts here, in Python, by the rules of ANALYSES.md (outside the timing).
PATH_STEPS, PATH_TOP = 5, 10


def paths_sql(lag, label, group_array, path_expr, length):
    w = "PARTITION BY user ORDER BY ts, seq"
    return f"""WITH e AS (
                 SELECT user, ts, seq, {label} AS label, event = 'visit' AS is_start,
                        sum(new) OVER ({w} ROWS UNBOUNDED PRECEDING) AS sid
                 FROM (SELECT user, ts, seq, event, page,
                              CASE WHEN ts - {lag} >= {TIMEOUT} THEN 1 ELSE 0 END AS new FROM ev) x),
               s AS (SELECT {group_array} FROM e GROUP BY user, sid)
               SELECT p, count(*) FROM (SELECT {path_expr} AS p FROM s) z WHERE {length}(p) > 0 GROUP BY p"""


def ch_paths():
    tail = "arraySlice(l, indexOf(st, 1))"
    return paths_sql(
        "lagInFrame(ts, 1, 0) OVER (PARTITION BY user ORDER BY ts, seq ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
        "if(event IN ('visit', 'view_page') AND page IS NOT NULL, assumeNotNull(page), event)",
        "arrayMap(x -> x.3, arraySort(x -> (x.1, x.2), groupArray((ts, seq, label)))) AS l, "
        "arrayMap(x -> x.3, arraySort(x -> (x.1, x.2), groupArray((ts, seq, is_start)))) AS st",
        f"""if(indexOf(st, 1) = 0, [], arraySlice(arrayFilter((x, i) -> i = 1 OR x != {tail}[i - 1],
                  {tail}, arrayEnumerate({tail})), 1, {PATH_STEPS}))""", "length")


def duck_paths():
    return paths_sql(
        "coalesce(lag(ts) OVER (PARTITION BY user ORDER BY ts, seq), 0)",
        "CASE WHEN event IN ('visit', 'view_page') AND page IS NOT NULL THEN page ELSE event END",
        "list(label ORDER BY ts, seq) AS l, list(is_start ORDER BY ts, seq) AS st",
        f"""CASE WHEN list_position(st, true) IS NULL THEN []::VARCHAR[] ELSE
                (SELECT list_filter(t, lambda x, i: i = 1 OR x != t[i - 1])[1:{PATH_STEPS}]
                 FROM (SELECT l[list_position(st, true):] AS t)) END""", "len")


def sankey(counts, steps=PATH_STEPS, top=PATH_TOP):
    """Nodes and links of ANALYSES.md from (path, sessions) pairs."""
    paths = [(list(p), int(n)) for p, n in counts]
    for k in range(steps):
        at = {}
        for p, n in paths:
            if len(p) > k:
                at[p[k]] = at.get(p[k], 0) + n
        keep = set(sorted(at, key=lambda l: (-at[l], l.encode()))[:top])
        for p, _ in paths:
            if len(p) > k and p[k] not in keep:
                p[k] = "$other"
    nodes, drops, links = {}, {}, {}
    for p, n in paths:
        for k, l in enumerate(p):
            nodes[(k + 1, l)] = nodes.get((k + 1, l), 0) + n
            if k + 1 < len(p):
                links[(k + 1, l, p[k + 1])] = links.get((k + 1, l, p[k + 1]), 0) + n
        if len(p) < steps:
            drops[(len(p), p[-1])] = drops.get((len(p), p[-1]), 0) + n
    return (sum(n for _, n in paths),
            sorted((s, l, c, drops.get((s, l), 0)) for (s, l), c in nodes.items()),
            sorted((s, a, b, c) for (s, a, b), c in links.items()))


def fp_paths(r):
    return (r["paths"], sorted((n["step"], n["label"], n["count"], n["dropoff"]) for n in r["nodes"]),
            sorted((l["from"][0], l["from"][1], l["to"][1], l["count"]) for l in r["links"]))


# (name, query file, Footprint answer, ClickHouse SQL, DuckDB SQL or None, answer from rows)
QUERIES = [
    ("funnel_4step", "benches/queries/funnel_4step.json", fp_funnel, ch_funnel(), duck_funnel(),
     lambda rows: levels_to_steps(rows, 4)),
    ("funnel_4step_by_utm", "benches/queries/funnel_4step_by_utm.json", fp_funnel_by_utm, ch_funnel_by_utm(),
     duck_funnel_by_utm(), funnel_groups),
    ("retention_daily_30", "benches/queries/retention_daily_30.json", fp_ret, ch_ret("day", 30),
     duck_ret("day", 30), lambda rows: [int(x) for x in rows[0]]),
    ("retention_weekly", "benches/queries/retention_weekly.json", fp_ret, ch_ret("week", 12),
     duck_ret("week", 12), lambda rows: [int(x) for x in rows[0]]),
    ("interval_signup_pay", "benches/queries/interval_signup_pay.json", fp_interval, ch_interval(), duck_interval(),
     lambda rows: [int(rows[0][0]), int(rows[0][1]), int(rows[0][2]), round(float(rows[0][3]), 3)]),
    ("trend_daily_by_utm", "benches/queries/trend_daily_by_utm.json", fp_trend, ch_trend(), duck_trend(),
     trend_rows),
    ("distribution_logins", "benches/queries/distribution_logins.json", fp_dist, ch_dist(), duck_dist(),
     dist_rows),
    ("cohort_at_risk", "benches/queries/cohort_at_risk.json", fp_cohort,
     cohort_sql(lambda c: f"countIf({c})"), cohort_sql(lambda c: f"count(*) FILTER (WHERE {c})"),
     lambda rows: int(rows[0][0])),
    ("sessions_daily", "benches/queries/sessions_daily.json", fp_sessions, ch_sessions(), duck_sessions(),
     sessions_rows),
    ("paths_from_visit", "benches/queries/paths_from_visit.json", fp_paths, ch_paths(), duck_paths(), sankey),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--footprint", default="target/release/footprint")
    ap.add_argument("--export", default=None, help="Parquet directory (default: DATA.parquet)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import chdb
    import duckdb
    from chdb import session

    export = args.export or args.data.rstrip("/") + ".parquet"
    if not os.path.exists(os.path.join(export, "events")):
        print(f"exporting {args.data} to {export} …", file=sys.stderr)
        run([args.footprint, "export", "--data", args.data, "--parquet", export])
    files = os.path.join(export, "events", "*", "*", "*.parquet")
    # Property columns are p0, p1… in the files, named in their metadata.
    import glob
    first = sorted(glob.glob(files))[0]
    meta = duckdb.sql(f"SELECT value FROM parquet_kv_metadata('{first}') "
                      "WHERE key = 'footprint.property_columns'").fetchall()[0]
    cols = {name: col for col, name in json.loads(bytes(meta[0]).decode())}
    utm, page = cols["utm_source"], cols["page"]

    t = time.perf_counter()
    ch = session.Session()
    ch.query("CREATE DATABASE IF NOT EXISTS b ENGINE = Atomic")
    ch.query("DROP TABLE IF EXISTS b.ev")
    # `seq` is the row's place in its export file, where a user's rows are
    # in (time, arrival) order: it orders a user's events at one millisecond.
    ch.query("""CREATE TABLE b.ev (user String, event LowCardinality(String), ts UInt64,
                utm_source LowCardinality(Nullable(String)), page LowCardinality(Nullable(String)), seq UInt64)
                ENGINE = MergeTree ORDER BY (user, ts)""")
    ch.query(f"INSERT INTO b.ev SELECT user, event, toUnixTimestamp64Milli(time), {utm}, {page}, _row_number "
             f"FROM file('{files}', Parquet)")
    # Merge the parts now: ClickHouse at its best, and no background merges
    # competing for the cores while anything is timed.
    ch.query("OPTIMIZE TABLE b.ev FINAL")
    ch_load = time.perf_counter() - t
    t = time.perf_counter()
    dk = duckdb.connect()
    dk.execute(f"SET threads = {args.threads}")
    dk.execute(f"CREATE TABLE ev AS SELECT user, event, epoch_ms(time) AS ts, {utm} AS utm_source, "
               f"{page} AS page, file_row_number AS seq FROM read_parquet('{files}', file_row_number = true)")
    dk_load = time.perf_counter() - t
    print(f"loaded: ClickHouse {ch_load:.1f} s, DuckDB {dk_load:.1f} s", file=sys.stderr)

    def ch_rows(sql):
        res = ch.query(sql.replace(" ev ", " b.ev ").replace("FROM ev", "FROM b.ev").replace("JOIN ev", "JOIN b.ev"), "JSONCompact")
        return json.loads(res.bytes())["data"]

    bench = json.loads(run([args.footprint, "bench", "--data", args.data, "--repeat", str(args.repeat), "--json",
                            "--queries"] + [q[1] for q in QUERIES]))
    fp_ms = {r["query"]: r["median_ms"] for r in bench}
    print(f"{'query':<22} {'footprint ms':>12} {'clickhouse ms':>14} {'duckdb ms':>10} {'CH/FP':>7} {'DuckDB/FP':>10}  answers")
    for name, path, fp_fn, ch_sql, dk_sql, norm in QUERIES:
        fp = fp_fn(json.loads(run([args.footprint, "query", "--data", args.data, path])))
        chr_, ch_ms = timed(lambda: ch_rows(ch_sql), args.repeat)
        chv = norm(chr_)
        f = fp_ms[name]
        if dk_sql is None:
            # No fold over a user's ordered events in plain DuckDB SQL.
            same = "equal (ClickHouse; DuckDB not run)" if fp == chv else f"DIFFER: footprint {fp} clickhouse {chv}"
            print(f"{name:<22} {f:>12.1f} {ch_ms:>14.1f} {'n/a':>10} {ch_ms / f:>7.1f} {'n/a':>10}  {same}")
            continue
        dkr, dk_ms = timed(lambda: dk.execute(dk_sql).fetchall(), args.repeat)
        dkv = norm(dkr)
        same = "equal" if fp == chv == dkv else f"DIFFER: footprint {fp} clickhouse {chv} duckdb {dkv}"
        print(f"{name:<22} {f:>12.1f} {ch_ms:>14.1f} {dk_ms:>10.1f} {ch_ms / f:>7.1f} {dk_ms / f:>10.1f}  {same}")


if __name__ == "__main__":
    main()
