// Sessions: sessions and users per bucket, the totals, the duration
// histogram, and the entry and exit pages.
import { eventNames, propNames } from './api.js';
import {
  el, card, fmt, pct, duration, select, chart, palette, queryPanel, queryFromHash, insight, breakdownField, propList,
  keyLabel, table,
} from './ui.js';

const INTERVALS = ['hour', 'day', 'week', 'month'];
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

export function render(root, params) {
  const { form, run, fail } = insight(root, 'sessions', 'Sessions', draw);
  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const fromUrl = queryFromHash(params);
    const q0 = fromUrl || {};
    propList(props);
    const interval = select(INTERVALS, q0.interval || 'day', { id: 'interval', 'data-path': 'interval' });
    const t = q0.timeout && typeof q0.timeout === 'object' ? q0.timeout : {};
    const timeout = el('input', { type: 'number', id: 'timeout', min: '1', placeholder: '30', value: t.value === undefined ? '' : String(t.value), 'data-path': 'timeout' });
    const pages = el('input', { type: 'text', id: 'page_events', size: 22, placeholder: '$pageview, $screen', 'data-path': 'page_events',
      value: Array.isArray(q0.page_events) ? q0.page_events.join(', ') : '', title: 'events that are page views, separated by commas: ' + events.join(', ') });
    const pageProp = el('input', { type: 'text', id: 'page_prop', list: 'fp-props', size: 14, placeholder: '$current_url', 'data-path': 'page_prop', value: q0.page_prop || '' });
    const breakdown = breakdownField(q0, props);
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'interval', text: 'Per' }), interval,
        el('label', { for: 'timeout', text: 'New session after' }), timeout, ' minutes idle'),
      el('div', { class: 'field inline' }, el('label', { for: 'page_events', text: 'Page events' }), pages,
        el('label', { for: 'page_prop', text: 'page property' }), pageProp),
      el('div', { class: 'field inline' }, el('label', { for: 'breakdown', text: 'Breakdown by landing' }), breakdown.node),
      el('button', { type: 'submit', class: 'primary', text: 'Run sessions' }));
    const build = () => {
      const q = { kind: 'sessions', interval: interval.value };
      if (timeout.value.trim() !== '') q.timeout = { value: Number(timeout.value), unit: 'minute' };
      if (list(pages.value).length) q.page_events = list(pages.value);
      if (pageProp.value.trim()) q.page_prop = pageProp.value.trim();
      const bd = breakdown.read();
      if (bd) q.breakdown = bd;
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    run(fromUrl || build());
  }, fail);
}

// The lower bound of each histogram bucket, and the next one's.
const span = (h, i) => (i + 1 < h.length ? `${duration(h[i].from_ms)} – ${duration(h[i + 1].from_ms)}` : `≥ ${duration(h[i].from_ms)}`);

function draw(out, q, r) {
  const T = r.total;
  const stats = el('div', { class: 'stats', id: 'sessions-stats' },
    card('sessions', fmt(T.sessions)), card('users', fmt(T.users)), card('sessions per user', num(T.sessions_per_user)),
    card('average length', duration(T.avg_duration_ms)), card('median length', duration(T.median_duration_ms)),
    card('events per session', num(T.events_per_session)), card('bounce rate', pct(T.bounce_rate)));
  const box = el('div', { class: 'chart', id: 'sessions-chart' });
  const hbox = el('div', { class: 'chart', id: 'sessions-hist' });
  const h = r.duration_histogram || [];
  const groups = (r.groups || []).slice(0, 8);
  const pageTable = (id, title, rows, bounce) => el('section', {}, el('h2', { text: title }),
    rows.length
      ? table(id, ['Page', 'Sessions', ...(bounce ? ['Bounce rate'] : [])],
        rows.map((x) => [x.value, [fmt(x.sessions), 'num'], ...(bounce ? [[pct(x.bounce_rate), 'num']] : [])]))
      : el('p', { class: 'sub', text: 'No page events in these sessions: name the page events and their page property above.' }));
  const parts = [stats, el('h2', { text: groups.length ? `Sessions per ${q.interval}, by ${Object.keys(groups[0].key).join(', ')}` : `Sessions and users per ${q.interval}` }), box];
  if (groups.length) {
    parts.push(table('sessions-groups', ['Landing', 'Sessions', 'Users', 'Median length', 'Bounce rate'],
      groups.map((g) => [keyLabel(g.key), [fmt(g.total.sessions), 'num'], [fmt(g.total.users), 'num'],
        [duration(g.total.median_duration_ms), 'num'], [pct(g.total.bounce_rate), 'num']])));
  }
  parts.push(el('h2', { text: 'Session length' }), hbox,
    el('div', { class: 'two' }, pageTable('sessions-entry', 'Entry pages', r.entry || [], true), pageTable('sessions-exit', 'Exit pages', r.exit || [], false)),
    queryPanel(q));
  out.replaceChildren(...parts);
  chart(box).setOption({
    color: palette,
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 0 },
    grid: { left: 60, right: 60, top: 40, bottom: 30 },
    xAxis: { type: 'category', data: r.buckets },
    yAxis: [{ type: 'value', name: 'sessions' }, { type: 'value', name: 'users', splitLine: { show: false } }],
    series: groups.length
      ? groups.map((g) => ({ name: keyLabel(g.key), type: 'line', symbol: 'none', data: g.sessions }))
      : [
        { name: 'sessions', type: 'bar', data: r.sessions, itemStyle: { opacity: 0.8 } },
        { name: 'users', type: 'line', yAxisIndex: 1, symbol: 'none', data: r.users },
      ],
  });
  chart(hbox).setOption({
    color: [palette[2]],
    tooltip: {},
    grid: { left: 60, right: 20, top: 30, bottom: 30 },
    xAxis: { type: 'category', data: h.map((_, i) => span(h, i)) },
    yAxis: { type: 'value', name: 'sessions' },
    series: [{ type: 'bar', data: h.map((x) => x.sessions), label: { show: true, position: 'top', formatter: (p) => fmt(p.value) } }],
  });
}

const num = (x) => (x === null || x === undefined ? '–' : (Math.round(x * 100) / 100).toLocaleString('en-US'));
