// posthog-js (from npm) in a real headless Chromium (Debian's `chromium`,
// driven by playwright-core), on a page served from a second loopback
// origin, so every request to Footprint is cross-origin (CORS). The page
// captures, identifies and sets a profile property, then navigates away:
// the last events leave on page unload. Then queries must give exactly
// the answers that follow, with the anonymous events joined to the
// identified user, and the console must show no posthog-js error.
//
//   node test_posthog_js.mjs PATH/TO/footprint
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const BIN = process.argv[2];
const TOKEN = 'phc_footprint_browser_0001';
const QUERY_KEY = 'query_footprint_browser01';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const failures = [];

function check(what, got, want) {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  console.log((ok ? 'ok   ' : 'FAIL ') + what + (ok ? '' : `: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`));
  if (!ok) failures.push(what);
}

function startFootprint(dir) {
  const keys = path.join(dir, 'keys.json');
  writeFileSync(keys, JSON.stringify({ keys: [
    { key: TOKEN, role: 'ingest', name: 'web' },
    { key: QUERY_KEY, role: 'query', name: 'analyst' }] }));
  const p = spawn(BIN, ['serve', '--data', path.join(dir, 'data'), '--addr', '127.0.0.1:0', '--keys', keys]);
  return new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve({ proc: p, host: m[1] });
    });
    p.on('exit', (c) => reject(new Error(`footprint serve exited ${c}`)));
  });
}

function startPage(fpHost) {
  const lib = readFileSync(require.resolve('posthog-js/dist/array.full.no-external.js'));
  const page = `<!doctype html><html><head><title>shop</title>
<script src="/posthog.js"></script>
<script>
  posthog.init(${JSON.stringify(TOKEN)}, {
    api_host: ${JSON.stringify(fpHost)},
    autocapture: false, capture_pageview: true, disable_session_recording: true,
    persistence: 'localStorage', request_batching: true,
  });
  window.step = (n) => {
    if (n === 1) { posthog.capture('signup', { plan: 'pro' }); }
    if (n === 2) { posthog.identify('js-user-1', { email: 'j@x.io' }); posthog.capture('pay', { amount: 42 }); }
  };
</script></head><body>shop</body></html>`;
  const srv = http.createServer((req, res) => {
    if (req.url.startsWith('/posthog.js')) {
      res.writeHead(200, { 'Content-Type': 'application/javascript' }); res.end(lib);
    } else if (req.url.startsWith('/bye')) {
      res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<p>bye</p>');
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html' }); res.end(page);
    }
  });
  return new Promise((resolve) => srv.listen(0, 'localhost', () => resolve({ srv, url: `http://localhost:${srv.address().port}` })));
}

async function query(host, q) {
  const r = await fetch(host + '/v1/query', { method: 'POST', body: JSON.stringify(q),
    headers: { Authorization: 'Bearer ' + QUERY_KEY, 'Content-Type': 'application/json' } });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`query failed ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-browser-'));
  const fp = await startFootprint(dir);
  const page = await startPage(fp.host);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-blink-features=AutomationControlled'] });
  try {
    // A person's browser: headless Chromium's own user agent is filtered as a bot.
    const ctx = await browser.newContext({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' });
    const tab = await ctx.newPage();
    const errors = [];
    tab.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()); });
    tab.on('pageerror', (e) => errors.push(String(e)));
    const seen = [];
    tab.on('requestfinished', async (r) => {
      if (r.url().startsWith(fp.host)) seen.push([new URL(r.url()).pathname, (await r.response())?.status()]);
    });
    await tab.goto(page.url + '/');
    await tab.waitForFunction(() => window.posthog && window.posthog.__loaded);
    // Each batch's times follow PostHog's clock-skew rule (now + timestamp
    // − sent_at, now being when the server got it), so events of two
    // batches milliseconds apart may swap when one batch waits longer on a
    // busy machine: the funnel's steps are a moment apart, as a person's are.
    await new Promise((r) => setTimeout(r, 1500));
    await tab.evaluate(() => window.step(1));
    await tab.evaluate(() => window.step(2));
    // The SDK sends its queue in batches (every few seconds).
    const arrived = async (event, n) => {
      for (let i = 0; i < 40; i++) {
        const r = await query(fp.host, { kind: 'events', metrics: [{ event }] });
        if (r.series[0].total >= n) return r.series[0].total;
        await new Promise((r) => setTimeout(r, 250));
      }
      return 0;
    };
    check('the batched events arrived', await arrived('pay', 1), 1);
    // Then leave at once: what is still queued goes out on page unload
    // (posthog-js flushes with sendBeacon / keepalive fetch), and it
    // lands a moment after the page is gone.
    await tab.evaluate(() => posthog.capture('leave_click', { where: 'footer' }));
    await tab.goto(page.url + '/bye');
    check('the event captured just before unload arrived', await arrived('leave_click', 1), 1);
    console.log('requests answered:', JSON.stringify(seen));
    const failed = seen.filter(([, s]) => s !== undefined && s >= 400);
    check('no request to Footprint failed', failed, []);
    check('no console error or warning', errors, []);
    const funnel = await query(fp.host, { kind: 'funnel', steps: [{ event: '$pageview' }, { event: 'signup' }, { event: 'pay' }],
      window: { value: 1, unit: 'hour' } });
    check('funnel $pageview → signup → pay (anonymous steps joined)', funnel.steps.map((s) => s.users), [1, 1, 1]);
    const users = await query(fp.host, { kind: 'users', profile: { prop: 'email', op: 'eq', value: 'j@x.io' }, return_users: 5 });
    check('identify $set → profile', users.ids, ['js-user-1']);
    const pay = await query(fp.host, { kind: 'events', metrics: [{ event: 'pay' }], breakdown: [{ event_prop: 'amount' }] });
    check('pay with its property', pay.groups.map((g) => [g.key.amount, g.series[0].total]), [[42, 1]]);
  } finally {
    await browser.close();
    page.srv.close();
    fp.proc.kill('SIGTERM');
  }
  if (failures.length) { console.log(`${failures.length} check(s) failed`); process.exit(1); }
  console.log('posthog-js in Chromium: all checks passed');
}

main().catch((e) => { console.error(e); process.exit(1); });
