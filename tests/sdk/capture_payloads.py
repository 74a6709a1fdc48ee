import http.server, json, threading, sys, os, base64, gzip, time
OUT = sys.argv[1]
reqs = []
class H(http.server.BaseHTTPRequestHandler):
    def _handle(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        reqs.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body_b64": base64.b64encode(body).decode()})
        p = self.path
        if p.startswith('/track') or p.startswith('/engage') or p.startswith('/import'):
            resp = b'{"status": 1, "error": null}'
        elif p.startswith('/v1/'):
            resp = b'{"success": true}'
        else:
            resp = b'{"status": 1}'
        self.send_response(200); self.send_header('Content-Type','application/json'); self.send_header('Content-Length', str(len(resp))); self.end_headers(); self.wfile.write(resp)
    do_POST = _handle
    do_GET = _handle
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()
host = f"http://127.0.0.1:{port}"
T = "phc_footprint_ingest_key_0001"
# PostHog
from posthog import Posthog
ph = Posthog(T, host=host, sync_mode=True)
ph.capture("signup", distinct_id="anon-1", properties={"plan": "pro", "$set": {"email": "a@x.io"}}, uuid="00000000-0000-4000-8000-000000000001")
ph.set(distinct_id="user-1", properties={"plan": "pro"})
ph.set_once(distinct_id="user-1", properties={"first_seen": "2026-01-01"})
ph.alias(previous_id="anon-1", distinct_id="user-1")
ph.flush()
ph2 = Posthog(T, host=host, gzip=True, flush_at=3)
for i in range(3):
    ph2.capture("visit", distinct_id="user-2", properties={"i": i})
ph2.flush(); ph2.shutdown()
# Segment
import segment.analytics as sa
sa.write_key = "seg_footprint_ingest_key_01"; sa.host = host; sa.sync_mode = True
sa.track("user-3", "signup", {"plan": "team"}, context={"campaign": {"source": "google", "medium": "cpc", "name": "spring"}, "page": {"url": "https://x.io/pricing", "referrer": "https://www.baidu.com/s?wd=x"}})
sa.identify("user-3", {"email": "c@x.io"}, anonymous_id="anon-3")
sa.alias("anon-4", "user-3")
sa.page("user-3", "Docs", "Pricing", {"url": "https://x.io/pricing"})
sa.screen("user-3", "App", "Home")
sa.group("user-3", "acme", {"name": "Acme"})
sa.flush()
# Mixpanel
import mixpanel
mp = mixpanel.Mixpanel("mp_footprint_ingest_key_001", consumer=mixpanel.Consumer(events_url=host+"/track", people_url=host+"/engage", import_url=host+"/import", request_timeout=5))
mp.track("user-5", "signup", {"plan": "pro"})
mp.people_set("user-5", {"email": "e@x.io"})
mp.people_set_once("user-5", {"first": 1})
mp.people_increment("user-5", {"logins": 2})
mp.people_unset("user-5", ["email"])
# mp.alias always posts to api.mixpanel.com (SDK limitation)
try:
    mp.import_data("mp_footprint_ingest_key_001", "user-5", "pay", int(time.time()) - 3600, {"amount": 9}, api_secret="mp_secret_key_0000000001")
except Exception as e:
    print("import:", e)
time.sleep(0.5)
json.dump(reqs, open(OUT, "w"), indent=1)
print(len(reqs), "requests")
