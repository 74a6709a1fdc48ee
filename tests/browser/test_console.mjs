// The web console in a real headless Chromium (Debian's `chromium`, driven
// by playwright-core), against the real server on a generated demo data
// set. A person's steps: open the overview, build a funnel with the
// controls, follow the funnel's link, try bad input, run trends,
// retention and raw JSON, and use an API key. The numbers the charts and
// tables show must equal what `POST /v1/query` answers for the same query
// JSON; no request may leave the loopback host; the first chart must be
// drawn within 1 s of navigation. Screenshots go to docs/.
//
//   node test_console.mjs PATH/TO/footprint DOCS_DIR
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.argv[2];
const DOCS = process.argv[3];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const QUERY_KEY = 'console-query-key-0001';
const INGEST_KEY = 'console-ingest-key-001';
const FIRST_CHART_MS = 1000;
const failures = [];

function check(what, got, want) {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  console.log((ok ? 'ok   ' : 'FAIL ') + what + (ok ? '' : `: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`));
  if (!ok) failures.push(what);
}

function serve(data, keys) {
  const args = ['serve', '--data', data, '--addr', '127.0.0.1:0'];
  if (keys) args.push('--keys', keys);
  const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'inherit'] });
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

function stop(fp) {
  return new Promise((resolve) => { fp.proc.removeAllListeners('exit'); fp.proc.on('exit', resolve); fp.proc.kill('SIGTERM'); });
}

async function api(host, q, key) {
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = 'Bearer ' + key;
  const r = await fetch(host + '/v1/query', { method: 'POST', body: JSON.stringify(q), headers });
  return { status: r.status, body: await r.json() };
}

// The data of a chart's series, as the chart instance holds it.
const seriesData = (page, sel) => page.evaluate((s) => {
  const c = echarts.getInstanceByDom(document.querySelector(s));
  return c ? c.getOption().series.map((x) => x.data.map((d) => (d && typeof d === 'object' && !Array.isArray(d) ? d.value : d))) : null;
}, sel);
const chartDrawn = (page, sel) => page.waitForFunction((s) => {
  const e = document.querySelector(s);
  const c = e && echarts.getInstanceByDom(e);
  const ser = c && c.getOption().series;
  return ser && ser.length && ser[0].data && ser[0].data.length > 0;
}, sel, { timeout: 10000 });
// A screenshot once the charts' animations (1 s in ECharts) are over.
const shot = async (page, name) => {
  await page.waitForTimeout(1100);
  await page.screenshot({ path: path.join(DOCS, name), fullPage: true });
};
const cells = (page, sel) => page.$$eval(sel, (tds) => tds.map((t) => t.textContent));
const num = (s) => Number(s.replace(/,/g, ''));

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-console-'));
  const data = path.join(dir, 'data');
  execFileSync(BIN, ['gen', '--data', data, '--events', '200000', '--users', '5000', '--days', '30'], { stdio: 'ignore' });
  let fp = await serve(data);
  const host = fp.host;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const hosts = new Set();
    const errors = [];
    ctx.on('request', (r) => hosts.add(new URL(r.url()).host));
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    // The bad inputs below are answered 400 or 501 on purpose; Chromium logs
    // each failed request, which is not an error of the console's.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (400|501)/.test(m.text())) errors.push(m.text());
    });

    // Served compressed, with caching headers.
    for (const [file, cache] of [['/', 'no-cache'], ['/console/funnel.js', 'no-cache'], ['/console/vendor/echarts-6.1.0.min.js', 'public, max-age=604800']]) {
      const r = await fetch(host + file, { headers: { 'Accept-Encoding': 'gzip' } });
      await r.arrayBuffer();
      check(`${file}: gzip, ${cache}`, [r.status, r.headers.get('content-encoding'), r.headers.get('cache-control')], [200, 'gzip', cache]);
    }

    // Overview, cold: the first chart within the target.
    let t0 = Date.now();
    await page.goto(host + '/');
    await chartDrawn(page, '#daily');
    const overviewMs = Date.now() - t0;
    console.log(`     overview: first chart drawn ${overviewMs} ms after navigation (cold cache)`);
    check(`overview chart within ${FIRST_CHART_MS} ms`, overviewMs <= FIRST_CHART_MS, true);
    const daily = await api(host, { kind: 'events', interval: 'day', metrics: [{ event: '$any', agg: 'count' }, { event: '$any', agg: 'users' }] });
    check('overview: events and users per day as the API', await seriesData(page, '#daily'), daily.body.series.map((s) => s.values));
    await chartDrawn(page, '#top');
    const schema = await (await fetch(host + '/v1/schema')).json();
    const top = Object.entries(schema.events).sort((a, b) => b[1] - a[1]).slice(0, 12).reverse();
    check('overview: top events as the schema', await seriesData(page, '#top'), [top.map((e) => e[1])]);
    await page.waitForFunction(() => /events\/s now/.test(document.querySelector('.ratenow').textContent), null, { timeout: 8000 });
    check('overview: live rate measured', true, true);
    await shot(page, 'console-overview.png');

    // Funnel, built through the controls.
    await page.goto(host + '/#/funnel');
    await page.waitForSelector('#funnel-form .step-event');
    const steps = () => page.$$('#funnel-form .step-event');
    await (await steps())[0].selectOption('visit');
    await (await steps())[1].selectOption('signup');
    await page.click('#add-step');
    await (await steps())[2].selectOption('create_report');
    await page.fill('#window-value', '7');
    await page.selectOption('#window-unit', 'day');
    await page.fill('#breakdown', 'utm_source');
    await page.click('#run');
    await page.waitForSelector('#funnel-table');
    await chartDrawn(page, '#funnel-chart');
    const fq = { kind: 'funnel', steps: [{ event: 'visit' }, { event: 'signup' }, { event: 'create_report' }], window: { value: 7, unit: 'day' }, breakdown: [{ event_prop: 'utm_source' }] };
    check('funnel: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), fq);
    const fr = (await api(host, fq)).body;
    const shown = await seriesData(page, '#funnel-chart');
    check('funnel: chart bars = API users per step', shown[0], fr.steps.map((s) => s.users));
    check('funnel: table users = API', (await cells(page, '#funnel-table td.users')).map(num), fr.steps.map((s) => s.users));
    check('funnel: table conversion = API', await cells(page, '#funnel-table td.conv'),
      fr.steps.map((s) => (s.conversion_from_first * 100).toFixed(1) + '%'));
    const groups = fr.groups.slice().sort((a, b) => b.steps[0].users - a.steps[0].users).slice(0, 8);
    check('funnel: grouped bars = API groups', shown.slice(1), groups.map((g) => g.steps.map((s) => s.users)));
    check('funnel: copy as curl offers the same query',
      (await page.textContent('.querypanel pre.curl')).includes(JSON.stringify(fq)), true);
    await shot(page, 'console-funnel.png');

    // The link reproduces the chart, in a fresh tab, within the target.
    const link = page.url();
    const tab = await ctx.newPage();
    tab.on('pageerror', (e) => errors.push(String(e)));
    t0 = Date.now();
    await tab.goto(link);
    await chartDrawn(tab, '#funnel-chart');
    const funnelMs = Date.now() - t0;
    console.log(`     funnel link: chart drawn ${funnelMs} ms after navigation`);
    check(`funnel link: chart within ${FIRST_CHART_MS} ms`, funnelMs <= FIRST_CHART_MS, true);
    check('funnel link: same bars', (await seriesData(tab, '#funnel-chart'))[0], fr.steps.map((s) => s.users));
    await tab.close();

    // An exclusion and the conversion over time, through the controls.
    await page.click('#add-exclusion');
    await page.selectOption('#exclusions .x-event', 'churn');
    await page.fill('#exclusions .x-from', '1');
    await page.fill('#exclusions .x-to', '3');
    await page.check('#trend');
    await page.selectOption('#trend-interval', 'week');
    await page.click('#run');
    await chartDrawn(page, '#funnel-trend-chart');
    const ftq = { kind: 'funnel', steps: fq.steps, window: fq.window, exclusions: [{ event: 'churn', between: [0, 2] }], breakdown: fq.breakdown, trend: { interval: 'week' } };
    check('funnel trend: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), ftq);
    const ftr = (await api(host, ftq)).body;
    check('funnel trend: the API answers it with a trend', Array.isArray(ftr.trend) && ftr.trend.length > 0, true);
    const tshown = await seriesData(page, '#funnel-trend-chart');
    check('funnel trend: line = API conversion per week', tshown[0], ftr.trend.map((t) => t.conversion));
    check('funnel trend: bars = API users entering per week', tshown[1], ftr.trend.map((t) => t.steps[0]));
    check('funnel with exclusion: bars = API users per step', (await seriesData(page, '#funnel-chart'))[0], ftr.steps.map((s) => s.users));
    await shot(page, 'console-funnel-trend.png');
    // Back to the plain funnel for the bad input below.
    await page.click('#exclusions .remove');
    await page.uncheck('#trend');

    // Bad input: the API's own error, beside the form; nothing breaks.
    const errorShown = async (q, what) => {
      const want = await api(host, q);
      check(`${what}: the API refuses it`, want.status, 400);
      await page.waitForSelector('#funnel-error:not([hidden])');
      check(`${what}: the API's message is shown`, await page.textContent('#funnel-error .msg'), want.body.error.message);
      check(`${what}: its JSON path is shown`, await page.textContent('#funnel-error .path'), want.body.error.path);
      return want;
    };
    await page.fill('#window-value', '-1');
    await page.click('#run');
    await errorShown({ ...fq, window: { value: -1, unit: 'day' } }, 'window of -1');
    check('window of -1: the window control is marked', await page.$eval('#window-value', (e) => e.classList.contains('bad')), true);
    check('window of -1: the message stands beside the control', await page.$eval('#window-value + .fieldmsg', (e) => e.textContent),
      (await api(host, { ...fq, window: { value: -1, unit: 'day' } })).body.error.message);
    // A window of 0 is a valid query (steps in the same millisecond):
    // the console shows the API's answer, and the error is gone.
    await page.fill('#window-value', '0');
    await page.click('#run');
    await page.waitForSelector('#funnel-table');
    const zero = (await api(host, { ...fq, window: { value: 0, unit: 'day' } })).body;
    check('window of 0: the API answers and the table shows it', (await cells(page, '#funnel-table td.users')).map(num), zero.steps.map((s) => s.users));
    check('window of 0: no error left on screen', [await page.$eval('#funnel-error', (e) => e.hidden), (await page.$$('#funnel-form .fieldmsg')).length], [true, 0]);
    await page.check('#modes input[value=allow_reentry]');
    await page.click('#run');
    await errorShown({ ...fq, window: { value: 0, unit: 'day' }, mode: ['allow_reentry'] }, 'allow_reentry without strict_order');
    check('allow_reentry alone: the mode controls are marked', await page.$eval('#modes', (e) => e.classList.contains('bad')), true);
    await page.uncheck('#modes input[value=allow_reentry]');
    while ((await page.$$('#funnel-form .steps .remove')).length) await page.click('#funnel-form .steps .remove');
    await page.click('#run');
    await errorShown({ kind: 'funnel', steps: [], window: { value: 0, unit: 'day' }, breakdown: [{ event_prop: 'utm_source' }] }, 'empty funnel');
    await page.click('#add-step');
    await (await steps())[0].selectOption('visit');
    await page.fill('#window-value', '7');
    await page.click('#run');
    await page.waitForSelector('#funnel-table');
    check('after errors the funnel runs again', (await cells(page, '#funnel-table td.users')).map(num),
      (await api(host, { ...fq, steps: [{ event: 'visit' }] })).body.steps.map((s) => s.users));

    // Trends: runs its default, then a metric of users per week.
    await page.goto(host + '/#/trends');
    await chartDrawn(page, '#trends-chart');
    await page.selectOption('#trends-form .m-event', 'login');
    await page.selectOption('#trends-form .m-agg', 'users');
    await page.selectOption('#interval', 'week');
    await page.click('#trends-form button.primary');
    await page.waitForFunction(() => /login/.test(document.querySelector('#trends-table')?.textContent || ''));
    const tq = { kind: 'events', interval: 'week', metrics: [{ event: 'login', agg: 'users' }] };
    const tr = (await api(host, tq)).body;
    check('trends: line = API values', (await seriesData(page, '#trends-chart'))[0], tr.series[0].values);
    check('trends: total = API total', (await cells(page, '#trends-table td.num')).map(num), [tr.series[0].total]);
    await shot(page, 'console-trends.png');
    // A date range and a time zone, the same controls on every page.
    await page.selectOption('#range', 'custom');
    await page.fill('#range-from', '2026-01-05');
    await page.fill('#range-to', '2026-01-11');
    await page.fill('#timezone', 'Asia/Shanghai');
    await page.click('#trends-form button.primary');
    await page.waitForFunction(() => /Asia\/Shanghai/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    const rangeQ = { ...tq, time_range: { from: '2026-01-05T00:00:00Z', to: '2026-01-12T00:00:00Z' }, timezone: 'Asia/Shanghai' };
    check('range and time zone: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), rangeQ);
    await chartDrawn(page, '#trends-chart');
    const rr2 = (await api(host, rangeQ)).body;
    check('range and time zone: line = API values', (await seriesData(page, '#trends-chart'))[0], rr2.series[0].values);
    const rtab = await ctx.newPage();
    await rtab.goto(page.url());
    await chartDrawn(rtab, '#trends-chart');
    check('range and time zone: the link restores the controls',
      await rtab.evaluate(() => ['range', 'range-from', 'range-to', 'timezone'].map((i) => document.getElementById(i).value)),
      ['custom', '2026-01-05', '2026-01-11', 'Asia/Shanghai']);
    await rtab.close();
    await page.selectOption('#range', 'all');
    await page.fill('#timezone', '');

    // A filter on an event property.
    await page.selectOption('#trends-form .m-event', 'visit');
    await page.click('#add-filter');
    await page.fill('.filter .f-prop', 'utm_source');
    await page.selectOption('.filter .f-op', 'in');
    await page.fill('.filter .f-value', 'baidu, google');
    await page.click('#trends-form button.primary');
    await page.waitForFunction(() => /baidu/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    const whereQ = { kind: 'events', interval: 'week', metrics: [{ event: 'visit', agg: 'users' }], where: { prop: 'utm_source', op: 'in', value: ['baidu', 'google'] } };
    check('where filter: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), whereQ);
    await chartDrawn(page, '#trends-chart');
    const wr = (await api(host, whereQ)).body;
    check('where filter: line = API values', (await seriesData(page, '#trends-chart'))[0], wr.series[0].values);
    await page.click('.filter .remove');
    await page.selectOption('#trends-form .m-event', 'login');

    // A filter on the user's profile goes into `users`, beside a cohort.
    await page.click('#add-filter');
    await page.selectOption('.filter .f-scope', 'user_prop');
    await page.fill('.filter .f-prop', 'plan');
    await page.selectOption('.filter .f-op', 'eq');
    await page.fill('.filter .f-value', 'pro');
    await page.click('#trends-form button.primary');
    await page.waitForFunction(() => /user_prop/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    const userQ = { kind: 'events', interval: 'week', metrics: [{ event: 'login', agg: 'users' }], users: { user_prop: 'plan', op: 'eq', value: 'pro' } };
    check('user filter: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), userQ);
    await chartDrawn(page, '#trends-chart');
    const ur = (await api(host, userQ)).body;
    check('user filter: line = API values', (await seriesData(page, '#trends-chart'))[0], ur.series[0].values);
    check('user filter: fewer users than without it', ur.series[0].total < tr.series[0].total, true);
    await page.click('.filter .remove');

    // Any of two filters: an `or`, which the link brings back.
    await page.selectOption('#match', 'or');
    for (const v of ['baidu', 'google']) {
      await page.click('#add-filter');
      await page.fill('.filter:last-child .f-prop', 'utm_source');
      await page.fill('.filter:last-child .f-value', v);
    }
    await page.selectOption('#trends-form .m-event', 'visit');
    await page.click('#trends-form button.primary');
    await page.waitForFunction(() => /"or"/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    const orQ = { kind: 'events', interval: 'week', metrics: [{ event: 'visit', agg: 'users' }],
      where: { or: [{ prop: 'utm_source', op: 'eq', value: 'baidu' }, { prop: 'utm_source', op: 'eq', value: 'google' }] } };
    check('any of two filters: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), orQ);
    await chartDrawn(page, '#trends-chart');
    check('any of two filters: line = API values', (await seriesData(page, '#trends-chart'))[0], (await api(host, orQ)).body.series[0].values);
    const otab = await ctx.newPage();
    await otab.goto(page.url());
    await chartDrawn(otab, '#trends-chart');
    check('any of two filters: the link restores them', await otab.evaluate(() => [document.getElementById('match').value,
      ...[...document.querySelectorAll('.filter .f-value')].map((i) => i.value)]), ['or', 'baidu', 'google']);
    await otab.close();
    while ((await page.$$('.filter .remove')).length) await page.click('.filter .remove');
    await page.selectOption('#match', 'and');
    await page.selectOption('#trends-form .m-event', 'login');

    // A property name typed by hand that no event has: the API's error,
    // with its suggestion, on the breakdown field.
    await page.fill('#breakdown', 'utm_sourse');
    await page.click('#trends-form button.primary');
    await page.waitForSelector('#trends-error:not([hidden])');
    const typo = await api(host, { ...tq, breakdown: [{ event_prop: 'utm_sourse' }] });
    check('unknown property typed by hand: the API refuses it', typo.status, 400);
    check('unknown property typed by hand: its message and path are shown',
      [await page.textContent('#trends-error .msg'), await page.textContent('#trends-error .path')], [typo.body.error.message, typo.body.error.path]);
    check('unknown property typed by hand: the breakdown field is marked', await page.$eval('#breakdown', (e) => e.classList.contains('bad')), true);

    // Retention.
    await page.goto(host + '/#/retention');
    await page.waitForSelector('#start option[value=signup]', { state: 'attached' });
    await page.selectOption('#start', 'signup');
    await page.selectOption('#return', 'login');
    await page.selectOption('#unit', 'week');
    await page.fill('#periods', '4');
    await page.click('#retention-form button.primary');
    await chartDrawn(page, '#retention-chart');
    const rq = { kind: 'retention', start: { event: 'signup' }, return: { event: 'login' }, unit: 'week', periods: 4, first_time: true };
    const rr = (await api(host, rq)).body;
    check('retention: total row = API', (await cells(page, '#retention-table tr.total td.num')).map(num), [rr.total.users, ...rr.total.retained]);
    // Each drawn cell [period, cohort row, percent, count]; the rows run
    // upwards (newest cohort first in the data); blank cells are not drawn.
    const heat = (await seriesData(page, '#retention-chart'))[0];
    const cohortsUp = rr.cohorts.slice().reverse();
    check('retention: heat map counts = API', heat.map((d) => d[3]), heat.map((d) => cohortsUp[d[1]].retained[d[0]]));
    check('retention: heat map percents = API', heat.map((d) => d[2]),
      heat.map((d) => Math.round((1000 * cohortsUp[d[1]].retained[d[0]]) / cohortsUp[d[1]].users) / 10));
    check('retention: every non-zero count is drawn', heat.length >= rr.cohorts.flatMap((c) => c.retained).filter((v) => v > 0).length, true);
    await shot(page, 'console-retention.png');
    // A breakdown: each group's curve, as the API's groups.
    await page.fill('#breakdown', 'utm_source');
    await page.click('#retention-form button.primary');
    await chartDrawn(page, '#retention-groups-chart');
    const rbq = { ...rq, breakdown: [{ event_prop: 'utm_source' }] };
    check('retention breakdown: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), rbq);
    const rbr = (await api(host, rbq)).body;
    const rgroups = rbr.groups.slice(0, 10);
    check('retention breakdown: curves = API groups (percent of each group)', await seriesData(page, '#retention-groups-chart'),
      rgroups.map((g) => g.total.retained.map((v) => Math.round((1000 * v) / g.total.users) / 10)));
    check('retention breakdown: group users = API', (await cells(page, '#retention-groups tbody tr td:nth-child(2)')).map(num), rgroups.map((g) => g.total.users));

    // Interval: signup to the first pay.
    await page.goto(host + '/#/interval');
    await page.waitForSelector('#from option[value=signup]', { state: 'attached' });
    await page.selectOption('#from', 'signup');
    await page.selectOption('#to', 'pay');
    await page.selectOption('#pairs', 'first');
    await page.click('#interval-form button.primary');
    await chartDrawn(page, '#interval-chart');
    const iq = { kind: 'interval', from: { event: 'signup' }, to: { event: 'pay' }, pairs: 'first' };
    const ir = (await api(host, iq)).body;
    check('interval: histogram = API', (await seriesData(page, '#interval-chart'))[0], ir.histogram.map((h) => h.count));
    check('interval: pairs = API count', num(await page.textContent('#interval-stats .card .v')), ir.count);
    await shot(page, 'console-interval.png');

    // Distribution: users by how often they logged in; then bounds typed
    // by hand out of order.
    await page.goto(host + '/#/distribution');
    await page.waitForSelector('#event option[value=login]', { state: 'attached' });
    await page.selectOption('#event', 'login');
    await page.fill('#buckets', '1, 2, 3, 6, 11');
    await page.click('#distribution-form button.primary');
    await chartDrawn(page, '#distribution-chart');
    const dq = { kind: 'distribution', event: 'login', measure: 'count', buckets: [1, 2, 3, 6, 11] };
    const dr = (await api(host, dq)).body;
    check('distribution: bars = API users per bucket', (await seriesData(page, '#distribution-chart'))[0], dr.buckets.map((b) => b.users));
    check('distribution: users = API', num(await page.textContent('#distribution-stats .card .v')), dr.users);
    await shot(page, 'console-distribution.png');
    await page.fill('#buckets', '3, 1');
    await page.click('#distribution-form button.primary');
    await page.waitForSelector('#distribution-error:not([hidden])');
    const bad = (await api(host, { ...dq, buckets: [3, 1] })).body.error;
    check('bounds out of order: the API message and path', [await page.textContent('#distribution-error .msg'), await page.textContent('#distribution-error .path')], [bad.message, bad.path]);
    check('bounds out of order: the bounds field is marked', await page.$eval('#buckets', (e) => e.classList.contains('bad')), true);

    // Cohorts: users who logged in at least 3 times and never paid, saved.
    await page.goto(host + '/#/cohorts');
    await page.waitForSelector('#did .c-event option[value=login]', { state: 'attached' });
    await page.selectOption('#did .c-event', 'login');
    await page.fill('#did .c-n', '3');
    await page.click('#add-did_not');
    await page.selectOption('#did_not .c-event', 'pay');
    await page.fill('#save_as', 'console_loyal_unpaid');
    await page.fill('#return_users', '5');
    await page.click('#cohorts-form button.primary');
    await page.waitForSelector('#cohorts-ids');
    const cq = { kind: 'users', did: [{ event: 'login', count: { op: 'gte', value: 3 } }], did_not: [{ event: 'pay' }], save_as: 'console_loyal_unpaid', return_users: 5 };
    check('cohorts: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), cq);
    const cr = (await api(host, cq)).body;
    check('cohorts: users = API', num(await page.textContent('#cohorts-stats .card .v')), cr.users);
    await page.waitForSelector('#cohorts-members[data-profiles=shown]');
    check('cohorts: ids = API', await cells(page, '#cohorts-ids td:first-child'), cr.ids);
    // The members' profiles as GET /v1/profiles has them.
    const profs = await (await fetch(host + '/v1/profiles?' + cr.ids.map((u) => 'user=' + encodeURIComponent(u)).join('&'))).json();
    const pnames = await page.$$eval('#cohorts-ids th', (ths) => ths.slice(1).map((t) => t.textContent));
    check('cohorts: profile columns = the properties the members have', pnames, [...new Set(profs.profiles.flatMap((x) => Object.keys(x.props || {})))].sort());
    check('cohorts: profiles shown = GET /v1/profiles', await page.$$eval('#cohorts-ids tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent))),
      profs.profiles.map((x) => [x.user, ...pnames.map((n) => (x.props && n in x.props ? String(x.props[n]) : ''))]));
    check('cohorts: the members have profiles (demo data)', pnames.length > 0, true);
    const inCohort = (await api(host, { kind: 'events', interval: 'total', users: { cohort: 'console_loyal_unpaid' }, metrics: [{ event: '$any', agg: 'users' }] })).body;
    check('cohorts: the saved cohort is usable in a query', inCohort.series[0].total, cr.users);
    await shot(page, 'console-cohorts.png');
    // A profile condition (typed by hand) and the members counted by a
    // profile property.
    check('profile property names offered = /v1/schema', await page.$$eval('#fp-user-props option', (os) => os.map((o) => o.value)),
      Object.entries(schema.profile_properties).sort((a, b) => b[1] - a[1]).map((e) => e[0]));
    check('the demo data has profile properties', Object.keys(schema.profile_properties).includes('plan'), true);
    await page.click('#add-profile');
    await page.fill('#profile .f-prop', 'plan');
    await page.selectOption('#profile .f-op', 'in');
    await page.fill('#profile .f-value', 'pro, team');
    await page.fill('#cohort-by', 'industry');
    await page.fill('#save_as', '');
    await page.click('#cohorts-form button.primary');
    await chartDrawn(page, '#cohorts-chart');
    const cpq = { kind: 'users', profile: { prop: 'plan', op: 'in', value: ['pro', 'team'] }, did: cq.did, did_not: cq.did_not, breakdown: [{ user_prop: 'industry' }], return_users: 5 };
    check('cohorts with a profile: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), cpq);
    const cpr = (await api(host, cpq)).body;
    check('cohorts with a profile: fewer users', cpr.users > 0 && cpr.users < cr.users, true);
    check('cohorts with a profile: users = API', num(await page.textContent('#cohorts-stats .card .v')), cpr.users);
    check('cohorts by industry: bars = API groups', (await seriesData(page, '#cohorts-chart'))[0], cpr.groups.slice().reverse().map((g) => g.users));
    check('cohorts by industry: values = API', await cells(page, '#cohorts-groups td:first-child'), cpr.groups.map((g) => Object.values(g.key).join('')));

    // Sessions: page events and their page property, per week.
    await page.goto(host + '/#/sessions');
    await chartDrawn(page, '#sessions-chart');
    await page.selectOption('#interval', 'week');
    await page.fill('#page_events', 'visit, view_page');
    await page.fill('#page_prop', 'page');
    await page.click('#sessions-form button.primary');
    await page.waitForSelector('#sessions-entry');
    await chartDrawn(page, '#sessions-chart');
    const sq = { kind: 'sessions', interval: 'week', page_events: ['visit', 'view_page'], page_prop: 'page' };
    check('sessions: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), sq);
    const sr = (await api(host, sq)).body;
    check('sessions: bars and line = API sessions and users', await seriesData(page, '#sessions-chart'), [sr.sessions, sr.users]);
    check('sessions: histogram = API', (await seriesData(page, '#sessions-hist'))[0], sr.duration_histogram.map((h) => h.sessions));
    check('sessions: total = API', num(await page.textContent('#sessions-stats .card .v')), sr.total.sessions);
    check('sessions: entry pages = API', (await cells(page, '#sessions-entry td:first-child')), sr.entry.map((e) => e.value));
    check('sessions: entry counts = API', (await cells(page, '#sessions-entry td:nth-child(2)')).map(num), sr.entry.map((e) => e.sessions));
    check('sessions: exit counts = API', (await cells(page, '#sessions-exit td:nth-child(2)')).map(num), sr.exit.map((e) => e.sessions));
    await shot(page, 'console-sessions.png');

    // Paths from a visit, pages named by their property: a Sankey.
    await page.goto(host + '/#/paths');
    await chartDrawn(page, '#paths-chart');
    await page.selectOption('#anchor', 'start');
    await page.selectOption('#anchor-event', 'visit');
    await page.fill('#steps', '4');
    await page.fill('#label-events', 'visit, view_page');
    await page.fill('#label-prop', 'page');
    await page.click('#paths-form button.primary');
    await page.waitForFunction(() => /"start"/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    await chartDrawn(page, '#paths-chart');
    const pq = { kind: 'paths', start: { event: 'visit' }, steps: 4, label: { prop: 'page', events: ['visit', 'view_page'] }, count: 'sessions', top: 10 };
    check('paths: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), pq);
    const pr = (await api(host, pq)).body;
    const sankey = await page.evaluate(() => {
      const s = echarts.getInstanceByDom(document.querySelector('#paths-chart')).getOption().series[0];
      return { nodes: s.data.map((d) => [d.name, d.value]), links: s.links.map((l) => [l.source, l.target, l.value]) };
    });
    check('paths: Sankey nodes = API nodes', sankey.nodes, pr.nodes.map((n) => [`${n.step}. ${n.label}`, n.count]));
    check('paths: Sankey links = API links', sankey.links, pr.links.map((l) => [`${l.from[0]}. ${l.from[1]}`, `${l.to[0]}. ${l.to[1]}`, l.count]));
    await shot(page, 'console-paths.png');

    // Attribution: payments credited to channels, three models; first
    // run with no conversion picked, which the API refuses.
    await page.goto(host + '/#/attribution');
    await page.waitForSelector('#conversion option[value=pay]', { state: 'attached' });
    await page.click('#attribution-form button.primary');
    await page.waitForSelector('#attribution-error:not([hidden])');
    const noConv = (await api(host, { kind: 'attribution', conversion: { event: '' }, touch: { event: '$any' }, by: { channel: true }, lookback: { value: 30, unit: 'day' }, models: ['first', 'last', 'linear'] })).body.error;
    check('attribution without a conversion: the API message and path', [await page.textContent('#attribution-error .msg'), await page.textContent('#attribution-error .path')], [noConv.message, noConv.path]);
    check('attribution without a conversion: the conversion picker is marked', await page.$eval('#conversion', (e) => e.classList.contains('bad')), true);
    await page.selectOption('#conversion', 'pay');
    await page.fill('#value_prop', 'amount');
    await page.selectOption('#touch', 'visit');
    await page.click('#attribution-form button.primary');
    await chartDrawn(page, '#attribution-chart');
    const aq = { kind: 'attribution', conversion: { event: 'pay' }, value_prop: 'amount', touch: { event: 'visit' }, by: { channel: true }, lookback: { value: 30, unit: 'day' }, models: ['first', 'last', 'linear'] };
    check('attribution: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), aq);
    const ar = (await api(host, aq)).body;
    const arows = ar.rows.slice().reverse();
    check('attribution: bars = API conversions per value and model', await seriesData(page, '#attribution-chart'), aq.models.map((m) => arows.map((x) => x[m].conversions)));
    check('attribution: values = API', await cells(page, '#attribution-table td:first-child'), ar.rows.map((x) => x.value));
    check('attribution: conversions = API total', num(await page.textContent('#attribution-stats .card .v')), ar.total.conversions);
    await shot(page, 'console-attribution.png');

    // Lifecycle of logins per week.
    await page.goto(host + '/#/lifecycle');
    await chartDrawn(page, '#lifecycle-chart');
    await page.selectOption('#event', 'login');
    await page.selectOption('#interval', 'week');
    await page.click('#lifecycle-form button.primary');
    await page.waitForFunction(() => /login/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    await chartDrawn(page, '#lifecycle-chart');
    const lq = { kind: 'lifecycle', event: { event: 'login' }, interval: 'week' };
    check('lifecycle: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), lq);
    const lr = (await api(host, lq)).body;
    check('lifecycle: stacked bars = API', await seriesData(page, '#lifecycle-chart'), [lr.new, lr.returning, lr.resurrecting, lr.dormant]);
    await shot(page, 'console-lifecycle.png');

    // Stickiness: days in a row with a login.
    await page.goto(host + '/#/stickiness');
    await chartDrawn(page, '#stickiness-chart');
    await page.selectOption('#event', 'login');
    await page.check('#consecutive');
    await page.click('#stickiness-form button.primary');
    await page.waitForFunction(() => /consecutive/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    await chartDrawn(page, '#stickiness-chart');
    const kq = { kind: 'stickiness', event: { event: 'login' }, interval: 'day', consecutive: true };
    check('stickiness: the query JSON shown', JSON.parse(await page.textContent('.querypanel pre.json')), kq);
    const kr = (await api(host, kq)).body;
    check('stickiness: bars = API counts', (await seriesData(page, '#stickiness-chart'))[0], kr.counts);

    // Heatmap: clicks by element, one mistyped by hand first; then a grid.
    await page.goto(host + '/#/heatmap');
    await page.waitForSelector('#event option[value=click]', { state: 'attached' });
    await page.selectOption('#event', 'click');
    await page.fill('#element', 'elemnt');
    await page.click('#heatmap-form button.primary');
    await page.waitForSelector('#heatmap-error:not([hidden])');
    const htypo = await api(host, { kind: 'heatmap', event: { event: 'click' }, by: { element: 'elemnt' } });
    check('heatmap, property mistyped: the API refuses it', htypo.status, 400);
    check('heatmap, property mistyped: its message and path', [await page.textContent('#heatmap-error .msg'), await page.textContent('#heatmap-error .path')], [htypo.body.error.message, htypo.body.error.path]);
    check('heatmap, property mistyped: the field is marked', await page.$eval('#element', (e) => e.classList.contains('bad')), true);
    await page.fill('#element', 'element');
    await page.click('#heatmap-form button.primary');
    await chartDrawn(page, '#heatmap-chart');
    const hq = { kind: 'heatmap', event: { event: 'click' }, by: { element: 'element' } };
    const hr = (await api(host, hq)).body;
    check('heatmap: no error left on screen', await page.$eval('#heatmap-error', (e) => e.hidden), true);
    check('heatmap: bars = API clicks per element', (await seriesData(page, '#heatmap-chart'))[0], hr.elements.slice().reverse().map((e) => e.clicks));
    check('heatmap: elements = API', await cells(page, '#heatmap-table td:first-child'), hr.elements.map((e) => String(e.element)));
    await page.selectOption('#by', 'grid');
    await page.fill('#grid-x', 'x');
    await page.fill('#grid-y', 'y');
    await page.fill('#grid-width', 'viewport_width');
    await page.click('#heatmap-form button.primary');
    await page.waitForFunction(() => /grid/.test(document.querySelector('.querypanel pre.json')?.textContent || ''));
    await chartDrawn(page, '#heatmap-chart');
    const gq = { kind: 'heatmap', event: { event: 'click' }, by: { grid: { x: 'x', y: 'y', width: 'viewport_width', cols: 20, row_px: 50 } } };
    const gr = (await api(host, gq)).body;
    check('heatmap grid: cells = API', (await page.evaluate(() => echarts.getInstanceByDom(document.querySelector('#heatmap-chart')).getOption().series[0].data)),
      gr.cells.map((c) => [c.col, c.row, c.clicks, c.users]));
    await shot(page, 'console-heatmap.png');

    // Live events: events sent now (the Footprint API and PostHog's
    // capture) show up, as GET /v1/live has them.
    await page.goto(host + '/#/live');
    await page.waitForSelector('#live-stats .card');
    const stamp = Date.now();
    await fetch(host + '/v1/events', { method: 'POST', body: JSON.stringify({ user: `live-${stamp}`, event: 'visit', time: stamp, props: { utm_source: 'baidu' } }) });
    await fetch(host + '/capture/', { method: 'POST', body: JSON.stringify({ api_key: 'x', event: 'pay', distinct_id: `live-${stamp}`, properties: { amount: 5 } }) });
    await page.waitForFunction((u) => (document.querySelector('#live-table')?.textContent || '').includes(u), `live-${stamp}`, { timeout: 8000 });
    const lv = await (await fetch(host + '/v1/live?limit=50')).json();
    // The page reads every 2 s: compare with its next reading.
    await page.waitForTimeout(2500);
    const liveRows = await page.$$eval('#live-table tbody tr', (trs) => trs.map((tr) => [...tr.children].slice(1, 3).map((td) => td.textContent)));
    check('live: the events shown = GET /v1/live (event, user)', liveRows, lv.events.map((e) => [e.event, e.user]));
    check('live: the two events just sent are the newest', liveRows.slice(0, 2), [['pay', `live-${stamp}`], ['visit', `live-${stamp}`]]);
    check('live: stored since start = GET /v1/live', num(await page.textContent('#live-stats .card .v')), lv.total);
    check('live: per-minute bars add up to the last hour', (await seriesData(page, '#live-chart'))[0].reduce((a, b) => a + b, 0), lv.per_minute.reduce((a, m) => a + m.events, 0));
    await shot(page, 'console-live.png');

    // A bad query on the raw page shows the API's own error.
    await page.goto(host + '/#/raw');
    await page.fill('#raw-json', '{"kind": "paths", "steps": 1}');
    await page.click('#raw-run');
    await page.waitForSelector('#raw-error:not([hidden])');
    const paths = (await api(host, { kind: 'paths', steps: 1 })).body.error;
    check('raw: the API error of a bad paths query', await page.textContent('#raw-error .msg'), paths.message);

    check('no request left the loopback host', [...hosts].filter((h) => h !== new URL(host).host), []);
    check('no error in the browser console', errors, []);
    await ctx.close();

    // With keys: ask for one, say 401 and 403 plainly, keep it for the tab.
    await stop(fp);
    fp = null;
    const keys = path.join(dir, 'keys.json');
    writeFileSync(keys, JSON.stringify({ keys: [{ key: QUERY_KEY, role: 'query' }, { key: INGEST_KEY, role: 'ingest' }] }));
    fp = await serve(data, keys);
    const kctx = await browser.newContext();
    const kp = await kctx.newPage();
    await kp.goto(fp.host + '/');
    await kp.waitForSelector('#keybar:not([hidden])');
    check('no key: 401 asks for a query key', /^401: .*query role/.test(await kp.textContent('#keymsg')), true);
    await kp.fill('#keyinput', INGEST_KEY);
    await kp.click('#keyform button[type=submit]');
    await kp.waitForFunction(() => /^403/.test(document.querySelector('#keymsg').textContent) && !document.querySelector('#keybar').hidden);
    check('ingest key: 403 says so', true, true);
    await kp.fill('#keyinput', QUERY_KEY);
    await kp.click('#keyform button[type=submit]');
    await chartDrawn(kp, '#daily');
    check('query key: the overview draws, the bar is gone', await kp.$eval('#keybar', (e) => e.hidden), true);
    await kp.reload();
    await chartDrawn(kp, '#daily');
    check('the key is kept for the tab', await kp.evaluate(() => sessionStorage.getItem('footprint.key')), QUERY_KEY);
    await kctx.close();
  } finally {
    await browser.close();
    if (fp) await stop(fp);
    rmSync(dir, { recursive: true, force: true });
  }
  if (failures.length) {
    console.log(`${failures.length} console check(s) failed`);
    process.exit(1);
  }
  console.log('console: all checks passed');
}

main().catch((e) => { console.error(e); process.exit(1); });
