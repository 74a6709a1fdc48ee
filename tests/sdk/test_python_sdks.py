#!/usr/bin/env python3
"""The real tracker SDKs from PyPI (posthog, segment-analytics-python,
mixpanel), configured only with Footprint's host and a key, send to a
fresh `footprint serve`; then queries must give exactly the answers that
follow from what was sent, identified anonymous events must join their
known user, and bad requests must get the tracker's error codes while the
good records of a batch are kept.

    python3 test_python_sdks.py PATH/TO/footprint
"""
import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = sys.argv[1]
PH_TOKEN = "phc_footprint_ingest_0001"
SEG_KEY = "seg_footprint_ingest_0001"
MP_TOKEN = "mp_footprint_ingest_00001"
QUERY_KEY = "query_footprint_key_00001"
FAILURES = []


def check(what, got, want):
    ok = got == want
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": got {got!r}, want {want!r}"))
    if not ok:
        FAILURES.append(what)


def start_server(data, keys, addr="127.0.0.1:0"):
    p = subprocess.Popen([BIN, "serve", "--data", data, "--addr", addr, "--keys", keys],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "listening on" not in line:
        raise SystemExit(f"server did not start: {line} {p.stderr.read()}")
    return p, line.split("listening on ")[1].strip()


def http(host, path, body=None, headers=None, method=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(host + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def query(host, q):
    status, body = http(host, "/v1/query", q, {"Authorization": "Bearer " + QUERY_KEY,
                                                "Content-Type": "application/json"})
    if status != 200:
        raise SystemExit(f"query {q} failed: {status} {body}")
    return json.loads(body)


def main():
    tmp = tempfile.mkdtemp(prefix="fp-sdk-")
    keys = os.path.join(tmp, "keys.json")
    with open(keys, "w") as f:
        json.dump({"keys": [{"key": k, "role": "ingest", "name": n} for n, k in
                            [("posthog", PH_TOKEN), ("segment", SEG_KEY), ("mixpanel", MP_TOKEN)]]
                   + [{"key": QUERY_KEY, "role": "query", "name": "analyst"}]}, f)
    server, host = start_server(os.path.join(tmp, "data"), keys)
    try:
        send(host)
        verify(host)
        bad_input(host)
    finally:
        server.terminate()
        server.wait(timeout=30)
    retries(os.path.join(tmp, "retry-data"), keys)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("python SDKs: all checks passed")


def send(host):
    # PostHog: five users visit, three sign up, one pays; an anonymous
    # visitor is aliased to ph-6, who then signs up. One batch is gzipped.
    from posthog import Posthog
    ph = Posthog(PH_TOKEN, host=host, sync_mode=True)
    for i in range(1, 6):
        ph.capture("visit", distinct_id=f"ph-{i}", properties={"utm_source": "google"})
    for i in range(1, 4):
        ph.capture("signup", distinct_id=f"ph-{i}")
    ph.capture("pay", distinct_id="ph-1", properties={"amount": 99})
    ph.set(distinct_id="ph-1", properties={"plan": "enterprise"})
    ph.set_once(distinct_id="ph-1", properties={"first_plan": "trial"})
    ph.capture("visit", distinct_id="anon-6")
    ph.alias(previous_id="anon-6", distinct_id="ph-6")
    ph.capture("signup", distinct_id="ph-6")
    ph.flush()
    gz = Posthog(PH_TOKEN, host=host, gzip=True, flush_at=2)
    gz.capture("visit", distinct_id="ph-7")
    gz.capture("signup", distinct_id="ph-7")
    gz.flush()
    gz.shutdown()
    ph.shutdown()

    # Segment: a known user converts fully; an anonymous visitor is
    # identified as seg-2 (traits set), who then signs up; a page call.
    import segment.analytics as sa
    sa.write_key = SEG_KEY
    sa.host = host
    sa.sync_mode = True
    sa.on_error = lambda e, batch: FAILURES.append(f"segment error {e}")
    ctx = {"campaign": {"source": "baidu", "medium": "cpc", "name": "spring"},
           "page": {"url": "https://x.io/pricing", "referrer": "https://www.baidu.com/s?wd=crm"}}
    sa.track("seg-1", "visit", {"plan": "team"}, context=ctx)
    sa.track("seg-1", "signup")
    sa.track("seg-1", "pay", {"amount": 49})
    sa.track(anonymous_id="anon-s", event="visit", context=ctx)
    sa.identify("seg-2", {"plan": "enterprise", "email": "b@x.io"}, anonymous_id="anon-s")
    sa.track("seg-2", "signup")
    sa.page("seg-1", "Docs", "Pricing", {"url": "https://x.io/pricing"})
    sa.alias("anon-z", "seg-1")
    sa.flush()

    # Mixpanel: a visit and a signup; a profile with $set, $add, $unset;
    # an $identify event joining an anonymous visitor; one imported pay.
    import mixpanel
    mp = mixpanel.Mixpanel(MP_TOKEN, consumer=mixpanel.Consumer(
        events_url=host + "/track", people_url=host + "/engage", import_url=host + "/import"))
    mp.track("mp-1", "visit", {"utm_source": "wechat"})
    mp.track("mp-1", "signup")
    mp.people_set("mp-1", {"plan": "enterprise", "email": "m@x.io"})
    mp.people_increment("mp-1", {"logins": 2})
    mp.people_unset("mp-1", ["email"])
    mp.people_append("mp-1", {"tags": "vip"})
    mp.people_union("mp-1", {"tags": ["renewal", "vip"]})
    mp.people_remove("mp-1", {"tags": "vip"})
    mp.track("anon-m", "visit")
    mp.track("mp-2", "$identify", {"$anon_distinct_id": "anon-m"})
    mp.track("mp-2", "signup")
    mp.import_data(MP_TOKEN, "mp-1", "pay", int(time.time()) + 2, {"amount": 19},
                   api_secret="mixpanel-secret-not-a-footprint-key")


def verify(host):
    funnel = query(host, {"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}, {"event": "pay"}],
                          "window": {"value": 1, "unit": "day"}})
    # visit: ph-1..7 (ph-6 through anon-6), seg-1, seg-2 (anon-s), mp-1,
    # mp-2 (anon-m) = 11; signup: ph-1..3, ph-6, ph-7, seg-1, seg-2,
    # mp-1, mp-2 = 9; pay: ph-1, seg-1, mp-1 = 3.
    check("funnel visit→signup→pay", [s["users"] for s in funnel["steps"]], [11, 9, 3])
    users = query(host, {"kind": "users", "profile": {"prop": "plan", "op": "eq", "value": "enterprise"},
                         "return_users": 10})
    check("users with plan = enterprise", (users.get("users"), sorted(users.get("ids", []))), (3, ["mp-1", "ph-1", "seg-2"]))
    logins = query(host, {"kind": "users", "profile": {"and": [
        {"prop": "logins", "op": "eq", "value": 2}, {"prop": "email", "op": "is_not_set"}]}, "return_users": 10})
    check("Mixpanel $add and $unset on the profile", logins.get("ids"), ["mp-1"])
    tags = query(host, {"kind": "users", "profile": {"and": [
        {"prop": "tags", "op": "eq", "value": '["renewal"]'}]}, "return_users": 10})
    check("Mixpanel $append, $union, $remove on a list property", tags.get("ids"), ["mp-1"])
    once = query(host, {"kind": "users", "profile": {"prop": "first_plan", "op": "eq", "value": "trial"},
                        "return_users": 10})
    check("PostHog $set_once on the profile", once.get("ids"), ["ph-1"])
    by_source = query(host, {"kind": "events", "metrics": [{"event": "visit"}],
                             "breakdown": [{"event_prop": "utm_source"}]})
    got = {json.dumps(g["key"]["utm_source"]): g["series"][0]["total"] for g in by_source["groups"]}
    # Segment's context.campaign.source became utm_source.
    check("visits by utm_source", got, {'"google"': 5, '"baidu"': 2, '"wechat"': 1, "null": 3})
    pages = query(host, {"kind": "events", "metrics": [{"event": "$pageview"}],
                         "breakdown": [{"event_prop": "$current_url"}]})
    check("Segment page → $pageview with $current_url",
          [(g["key"]["$current_url"], g["series"][0]["total"]) for g in pages["groups"]],
          [("https://x.io/pricing", 1)])
    dom = query(host, {"kind": "events", "metrics": [{"event": "visit"}],
                       "where": {"prop": "$referring_domain", "op": "eq", "value": "www.baidu.com"}})
    check("$referring_domain from the referrer", dom["series"][0]["total"], 2)


def bad_input(host):
    ev = {"event": "visit", "distinct_id": "bad-1", "properties": {}}
    # Wrong key: PostHog 401 with a detail.
    s, b = http(host, "/batch/", {"api_key": "phc_wrong_key_000000000", "batch": [ev]},
                {"Content-Type": "application/json"})
    check("PostHog wrong key → 401", (s, "detail" in json.loads(b)), (401, True))
    # A query key cannot send.
    s, b = http(host, "/batch/", {"api_key": QUERY_KEY, "batch": [ev]}, {"Content-Type": "application/json"})
    check("PostHog query key → 403", s, 403)
    # Bad base64 in a data= form body.
    s, b = http(host, "/e/?compression=base64", b"data=%%%not-base64%%%",
                {"Content-Type": "application/x-www-form-urlencoded"})
    check("bad base64 → 400", s, 400)
    # Bad gzip (magic bytes, then junk).
    s, b = http(host, "/batch/", b"\x1f\x8b\x08\x00junkjunkjunk", {"Content-Type": "application/json"})
    check("bad gzip → 400", s, 400)
    # Good base64 + gzip form body, as posthog-js sends on unload.
    payload = base64.b64encode(gzip.compress(json.dumps(
        [dict(ev, distinct_id="b64-1", properties={"token": PH_TOKEN})]).encode())).decode()
    s, b = http(host, "/e/?compression=gzip-js", ("data=" + urllib.parse.quote(payload)).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
    check("base64 gzip data= body → 200", s, 200)
    # A missing distinct_id is refused, the rest of the batch kept.
    s, b = http(host, "/batch/", {"api_key": PH_TOKEN, "batch": [{"event": "visit", "properties": {}},
                                                                 dict(ev, distinct_id="kept-1")]},
                {"Content-Type": "application/json"})
    r = json.loads(b)
    check("missing distinct_id: one refused, one kept", (s, r.get("accepted"), r.get("rejected")), (200, 1, 1))
    # A 10 MB event is refused (413-style per record), the rest kept.
    big = dict(ev, distinct_id="big-1", properties={"blob": "x" * (10 << 20)})
    s, b = http(host, "/batch/", {"api_key": PH_TOKEN, "batch": [big, dict(ev, distinct_id="kept-2")]},
                {"Content-Type": "application/json"})
    r = json.loads(b)
    check("10 MB event: refused, the rest kept", (s, r.get("accepted"), r.get("rejected")), (200, 1, 1))
    # Segment without a write key → 401; with one but no user → 400.
    s, b = http(host, "/v1/track", {"event": "visit", "userId": "u"}, {"Content-Type": "application/json"})
    check("Segment without write key → 401", (s, json.loads(b).get("success")), (401, False))
    auth = "Basic " + base64.b64encode((SEG_KEY + ":").encode()).decode()
    s, b = http(host, "/v1/track", {"event": "visit"}, {"Content-Type": "application/json", "Authorization": auth})
    check("Segment without a user → 400", s, 400)
    # Mixpanel strict import lists the failed record and keeps the good one.
    recs = [{"event": "pay", "properties": {"distinct_id": "imp-1", "time": int(time.time()), "token": MP_TOKEN}},
            {"event": "pay", "properties": {"distinct_id": "imp-2", "token": MP_TOKEN}}]
    s, b = http(host, "/import?strict=1", recs, {"Content-Type": "application/json"})
    r = json.loads(b)
    check("Mixpanel strict import: 1 imported, record 1 failed",
          (s, r.get("num_records_imported"), [f["index"] for f in r.get("failed_records", [])]), (400, 1, [1]))
    # A batch of 100k events in one gzipped request is taken whole.
    many = [{"event": "bulk", "distinct_id": f"bulk-{i % 1000}", "properties": {"i": i}} for i in range(100_000)]
    s, b = http(host, "/batch/", gzip.compress(json.dumps({"api_key": PH_TOKEN, "batch": many}).encode()),
                {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    check("PostHog batch of 100k events", (s, json.loads(b).get("accepted")), (200, 100_000))
    # Each tracker's wrong key, bad gzip and bad base64.
    s, b = http(host, "/v1/batch", gzip.compress(b'{"batch": []}'),
                {"Content-Type": "application/json", "Content-Encoding": "gzip",
                 "Authorization": "Basic " + base64.b64encode(b"seg_wrong_key_00000000:").decode()})
    check("Segment wrong key → 401", s, 401)
    s, b = http(host, "/v1/t", b"\x1f\x8bnot gzip", {"Content-Type": "text/plain", "Authorization": auth})
    check("Segment bad gzip → 400", (s, json.loads(b).get("success")), (400, False))
    s, b = http(host, "/track?verbose=1", ("data=" + base64.b64encode(json.dumps(
        {"event": "x", "properties": {"distinct_id": "m", "token": "mp_wrong_token_00000"}}).encode()).decode()).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
    check("Mixpanel wrong token → 401", (s, json.loads(b).get("status")), (401, 0))
    s, b = http(host, "/track?verbose=1", b"data=%%%%", {"Content-Type": "application/x-www-form-urlencoded"})
    check("Mixpanel bad base64 → 400", (s, json.loads(b).get("status")), (400, 0))
    # Mixpanel's browser form: base64 of a JSON array, token inside.
    form = "data=" + urllib.parse.quote(base64.b64encode(json.dumps(
        [{"event": "visit", "properties": {"distinct_id": "mpb-1", "token": MP_TOKEN, "time": int(time.time())}}]
    ).encode()).decode())
    s, b = http(host, "/track", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    check("mixpanel-browser data= form → 1", (s, b), (200, "1"))
    # Flags and config answer empty, with CORS for another origin.
    s, b = http(host, "/flags/?v=2", {"token": PH_TOKEN, "distinct_id": "x"}, {"Origin": "http://localhost:9"})
    check("flags answer empty", (s, json.loads(b).get("featureFlags")), (200, {}))
    s, _ = http(host, "/e/", None, {"Origin": "http://localhost:9", "Access-Control-Request-Method": "POST"},
                method="OPTIONS")
    check("CORS preflight → 204", s, 204)


def retries(data, keys):
    """kill -9 the server twice while posthog-python is flushing, restart
    it on the same port, and let the SDK retry: every event arrives once."""
    import socket
    import threading
    from posthog import Posthog
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"127.0.0.1:{port}"
    server, host = start_server(data, keys, addr)
    errors = []
    ph = Posthog(PH_TOKEN, host=host, max_retries=10, flush_at=40, flush_interval=0.02,
                 on_error=lambda e, batch: errors.append((str(e), len(batch))))
    n = 4000
    done = threading.Event()

    def produce():
        for i in range(n):
            ph.capture("retry", distinct_id=f"r-{i % 97}", properties={"i": i})
            if i % 200 == 0:
                time.sleep(0.05)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    kills = 0
    for _ in range(2):
        time.sleep(0.4)
        server.kill()  # SIGKILL: no goodbye, replies in flight are lost
        server.wait()
        kills += 1
        time.sleep(0.3)
        server, host = start_server(data, keys, addr)
    t.join()
    ph.flush()
    ph.shutdown()
    try:
        got = query(host, {"kind": "events", "metrics": [{"event": "retry"}]})["series"][0]["total"]
        distinct = query(host, {"kind": "events", "metrics": [{"event": "retry"}],
                                "breakdown": [{"event_prop": "i"}], "limit": 10000})
        twice = sum(1 for g in distinct["groups"] if g["series"][0]["total"] != 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    check(f"SDK errors after {kills} kill -9 and retries", errors, [])
    check("every event stored exactly once after retries", (got, len(distinct["groups"]), twice), (n, n, 0))


if __name__ == "__main__":
    import urllib.parse  # noqa: E402
    main()
