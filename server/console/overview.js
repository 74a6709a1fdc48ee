// The landing page: is data flowing, and how much.
import { query, schema, stats } from './api.js';
import { el, card, fmt, chart, palette, showError } from './ui.js';

export function render(root) {
  const cards = el('div', { class: 'cards' });
  const err = el('div', { class: 'error', hidden: true });
  const daily = el('div', { class: 'chart', id: 'daily' });
  const top = el('div', { class: 'chart', id: 'top' });
  const rate = el('div', { class: 'chart small', id: 'rate' });
  const rateNow = el('span', { class: 'ratenow', text: 'measuring…' });
  const range = el('span', { class: 'sub' });
  root.append(
    el('h1', { text: 'Overview' }), err, cards,
    el('section', {}, el('h2', {}, 'Events and active users per day ', range), daily),
    el('div', { class: 'two' },
      el('section', {}, el('h2', { text: 'Top events (all stored events)' }), top),
      el('section', {}, el('h2', {}, 'Live event rate ', rateNow), rate)),
  );
  const fail = (e) => showError(err, null, e);

  const q = { kind: 'events', interval: 'day', metrics: [{ event: '$any', agg: 'count' }, { event: '$any', agg: 'users' }] };
  query(q).then((r) => {
    const [ev, us] = r.series;
    const b = r.buckets;
    range.textContent = b.length ? `${b[0]} to ${b[b.length - 1]}` : '(no events stored)';
    chart(daily).setOption({
      color: palette,
      tooltip: { trigger: 'axis' },
      legend: { data: ['events', 'active users'], top: 0 },
      grid: { left: 60, right: 60, top: 50, bottom: 30 },
      xAxis: { type: 'category', data: b },
      yAxis: [{ type: 'value', name: 'events' }, { type: 'value', name: 'users', splitLine: { show: false } }],
      series: [
        { name: 'events', type: 'bar', data: ev.values, itemStyle: { opacity: 0.75 } },
        { name: 'active users', type: 'line', yAxisIndex: 1, data: us.values, smooth: false, symbol: 'none', lineStyle: { width: 2 } },
      ],
    });
  }, fail);

  schema().then((s) => {
    const rows = Object.entries(s.events || {}).sort((a, b) => b[1] - a[1]).slice(0, 12).reverse();
    chart(top).setOption({
      color: [palette[0]],
      tooltip: {},
      grid: { left: 110, right: 70, top: 10, bottom: 20 },
      xAxis: { type: 'value' },
      yAxis: { type: 'category', data: rows.map((r) => r[0]) },
      series: [{ type: 'bar', data: rows.map((r) => r[1]), label: { show: true, position: 'right', formatter: (p) => fmt(p.value) } }],
    });
  }, fail);

  // The live rate: stored events counted every 2 s; the rate is the
  // difference between two readings.
  const rc = chart(rate);
  const points = [];
  rc.setOption({
    color: [palette[2]],
    grid: { left: 60, right: 20, top: 36, bottom: 30 },
    tooltip: { trigger: 'axis' },
    xAxis: { type: 'time', min: Date.now() - 180000, max: Date.now() },
    yAxis: { type: 'value', name: 'events/s', minInterval: 1 },
    series: [{ type: 'line', data: points, symbol: 'none', areaStyle: { opacity: 0.15 } }],
  });
  let last = null;
  let stopped = false;
  const tick = () => stats().then((s) => {
    if (stopped) return;
    const now = Date.now();
    cards.replaceChildren(
      card('events stored', fmt(s.events)),
      card('users', fmt(s.users)),
      card('event names', fmt(s.event_names)),
      card('on disk', mb(s.segment_bytes + s.dict_bytes + s.wal_bytes + s.profile_bytes)),
    );
    if (last) {
      const r = Math.max(0, (s.events - last.events) / ((now - last.t) / 1000));
      points.push([now, Math.round(r * 10) / 10]);
      if (points.length > 90) points.shift();
      // The last three minutes, however few readings there are yet.
      rc.setOption({ xAxis: { min: now - 180000, max: now }, series: [{ data: points }] });
      rateNow.textContent = `${fmt(Math.round(r))} events/s now`;
    }
    last = { t: now, events: s.events };
  }, fail);
  tick();
  const timer = setInterval(tick, 2000);
  return () => { stopped = true; clearInterval(timer); };
}

const mb = (b) => (Number.isFinite(b) ? (b / 1048576).toFixed(1) + ' MB' : '–');
