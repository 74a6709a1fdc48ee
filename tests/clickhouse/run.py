"""The ClickHouse cluster path, end to end (issue 19, item 3).

A `footprint gen` data set goes into MergeTree tables made by
`footprint sql --ddl clickhouse --data DIR` (the one-server DDL) through
`footprint load-clickhouse`, and every query of tests/sql/queries run by
`footprint query --clickhouse URL` must equal `footprint query --data DIR`.
The cluster DDL (Replicated and Distributed tables) is checked as text
and must parse in ClickHouse (`EXPLAIN AST`); no cluster runs here.

ClickHouse is chdb (one `chdb.session.Session`) behind `Shim`, a small
server for the part of ClickHouse's HTTP interface the client uses: a
POST whose body is the SQL, or `?query=` with the body as the data of an
INSERT (gzip when `Content-Encoding: gzip`); other URL parameters are
settings, each checked to exist; an error is HTTP 500 with the message.

usage: run.py FOOTPRINT_BIN QUERY_DIR
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from chdb import session as chs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sql"))
from run_cases import same  # noqa: E402


class Shim(HTTPServer):
    """ClickHouse's HTTP interface over one chdb session, one request at
    a time (a session is not shared between threads)."""

    def __init__(self, sess):
        super().__init__(("127.0.0.1", 0), Handler)
        self.sess = sess
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        query = params.pop("query", [None])[0]
        sql = body.decode() if query is None else query + "\n" + body.decode()
        try:
            with self.server.lock:
                for name in params:
                    self.server.sess.query(f"SELECT getSetting('{name}')", "TSV")
                out = self.server.sess.query(sql, "TabSeparated").bytes()
            status = 200
        except Exception as e:  # chdb raises its own error types
            out, status = str(e).encode(), 500
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def post(url, sql):
    with urllib.request.urlopen(urllib.request.Request(url, data=sql.encode())) as r:
        return r.read().decode()


def statements(ddl):
    """The statements of a DDL script (comment lines dropped)."""
    text = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok", what)


def main():
    bin_, qdir = sys.argv[1], sys.argv[2]
    sess = chs.Session()
    shim = Shim(sess)
    threading.Thread(target=shim.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{shim.server_port}"
    failures = []
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "db")
        r = run([bin_, "gen", "--users", "2000", "--events", "100000", "--seed", "3", "--data", data])
        assert r.returncode == 0, f"gen failed: {r.stderr}"

        # The cluster DDL: the engines and sharding, and it parses.
        r = run([bin_, "sql", "--ddl", "clickhouse", "--cluster", "prod", "--database", "fp",
                 "--data", data])
        assert r.returncode == 0, r.stderr
        ddl = r.stdout
        for want in ["ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/fp/events_local', '{replica}')",
                     "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fp/profiles_local', '{replica}')",
                     "ENGINE = Distributed('prod', 'fp', 'events_local', shard)",
                     "ENGINE = Distributed('prod', 'fp', 'profiles_local', shard)",
                     "ORDER BY (user, time, seq)", "PARTITION BY toYYYYMM(time)",
                     "`utm_source` Nullable(String)", "`amount` Nullable(Float64)",
                     "distributed_group_by_no_merge", "optimize_distributed_group_by_sharding_key"]:
            check(want in ddl, f"cluster DDL has {want}")
        stmts = statements(ddl)
        check(len(stmts) == 5, "cluster DDL: a database, two local and two Distributed tables")
        for s in stmts:
            sess.query("EXPLAIN AST " + s, "TSV")
        print("ok cluster DDL parses (EXPLAIN AST)")

        # The one-server DDL, run through the HTTP interface.
        r = run([bin_, "sql", "--ddl", "clickhouse", "--data", data])
        assert r.returncode == 0, r.stderr
        check("Replicated" not in r.stdout and "Distributed" not in r.stdout,
              "one-server DDL has plain MergeTree tables")
        for s in statements(r.stdout):
            post(url, s)

        # Load, gzip, in batches that do not divide the count.
        r = run([bin_, "load-clickhouse", "--data", data, "--url", url, "--batch-rows", "7000",
                 "--gzip"])
        check(r.returncode == 0, f"load-clickhouse loads ({r.stderr.strip()[-300:]})")
        check(post(url, "SELECT count() FROM events").strip() == "100000", "100000 events in ClickHouse")
        check(post(url, "SELECT count() FROM profiles").strip() == "2000", "2000 profiles in ClickHouse")
        typed = post(url, "SELECT countIf(utm_source IS NOT NULL) = countIf(JSONHas(props, 'utm_source')) "
                          "AND countIf(amount IS NOT NULL) > 0 FROM events").strip()
        check(typed == "1", "typed columns hold the properties of props")
        check(post(url, "SELECT count() FROM (SELECT user FROM events GROUP BY user HAVING "
                        "uniqExact(shard) > 1 OR max(seq) + 1 != count())").strip() == "0",
              "one shard per user, seq 0.. per user")
        r = run([bin_, "load-clickhouse", "--data", data, "--url", url])
        check(r.returncode != 0 and "already holds 100000 rows" in r.stderr,
              "a second load is refused")
        # Tables without typed columns (DDL made without --data) take the
        # same load: the typed values are in props.
        r = run([bin_, "sql", "--ddl", "clickhouse", "--database", "bare"])
        for s in statements(r.stdout):
            post(url, s)
        r = run([bin_, "load-clickhouse", "--data", data, "--url", url, "--table", "bare.events",
                 "--profiles-table", "bare.profiles"])
        check(r.returncode == 0 and post(url, "SELECT count() FROM bare.events").strip() == "100000",
              f"a load into tables without typed columns ({r.stderr.strip()[-300:]})")

        # Every query: the same answer from ClickHouse as from the store.
        qfiles = sorted(f for f in os.listdir(qdir) if f.endswith(".json"))
        assert qfiles, f"no queries in {qdir}"
        for f in qfiles:
            q = os.path.join(qdir, f)
            a = run([bin_, "query", "--data", data, q])
            # Settings go in the URL, as a cluster needs (README).
            b = run([bin_, "query", "--clickhouse", url + "/?distributed_product_mode=local", q])
            if a.returncode != 0 or b.returncode != 0:
                failures.append(f"{f}: {a.stderr.strip()} {b.stderr.strip()}")
                continue
            want = json.loads(a.stdout)
            want.pop("warnings", None)
            diff = same(want, json.loads(b.stdout))
            if diff:
                failures.append(f"{f}: {diff}")
        print(f"{len(qfiles) - len(failures)} of {len(qfiles)} queries equal through --clickhouse")

        # Errors: ClickHouse's message, an unreachable server, an untranslatable query.
        q = os.path.join(qdir, qfiles[0])
        r = run([bin_, "query", "--clickhouse", url, "--table", "nowhere", q])
        check(r.returncode != 0 and "answered 500" in r.stderr and "nowhere" in r.stderr,
              "a ClickHouse error names the status and ClickHouse's message")
        shim.shutdown()
        shim.server_close()
        r = run([bin_, "query", "--clickhouse", url, q])
        check(r.returncode != 0 and "cannot be reached" in r.stderr, "an unreachable server is an error")
        users = os.path.join(work, "users.json")
        with open(users, "w") as fh:
            json.dump({"kind": "users", "did": [{"event": "login"}]}, fh)
        r = run([bin_, "query", "--clickhouse", url, users])
        check(r.returncode != 0 and "not translatable" in r.stderr, "an untranslatable query is refused")
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
