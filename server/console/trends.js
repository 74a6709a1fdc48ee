// Trends (`events` queries): metrics per interval, a breakdown; lines and
// a totals table.
import { eventNames, propNames } from './api.js';
import {
  el, fmt, select, chart, palette, queryPanel, queryFromHash, insight, breakdownField,
} from './ui.js';

const AGGS = ['count', 'users', 'per_user', 'sum', 'avg', 'min', 'max', 'p50', 'p90', 'p99'];
const INTERVALS = ['hour', 'day', 'week', 'month', 'total'];

export function render(root, params) {
  const { form, run, fail } = insight(root, 'trends', 'Trends', draw);

  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const initial = queryFromHash(params);
    const metrics = el('ol', { class: 'steps', 'data-path': 'metrics' });
    const renumber = () => metrics.querySelectorAll('li').forEach((li, i) => {
      li.querySelector('.m-event').dataset.path = `metrics[${i}].event`;
      li.querySelector('.m-agg').dataset.path = `metrics[${i}].agg`;
      li.querySelector('.m-prop').dataset.path = `metrics[${i}].prop`;
    });
    const addMetric = (m = {}) => {
      const li = el('li', {},
        select([['$any', 'any event'], ...events], m.event || '$any', { class: 'm-event' }),
        select(AGGS, m.agg || 'count', { class: 'm-agg' }),
        select([['', '(no property)'], ...props], m.prop || '', { class: 'm-prop', title: 'property for sum, avg, min, max, percentiles' }),
        el('button', { type: 'button', class: 'remove', text: '×', title: 'Remove', onclick: () => { li.remove(); renumber(); } }));
      metrics.append(li);
      renumber();
    };
    for (const m of (initial && Array.isArray(initial.metrics) ? initial.metrics : [{ event: '$any', agg: 'count' }])) addMetric(m);
    const interval = select(INTERVALS, (initial && initial.interval) || 'day', { id: 'interval', 'data-path': 'interval' });
    const breakdown = breakdownField(initial, props);
    form.append(
      el('div', { class: 'field' }, el('label', { text: 'Metrics' }), metrics,
        el('button', { type: 'button', text: '+ Add metric', onclick: () => addMetric() })),
      el('div', { class: 'field inline' }, el('label', { for: 'interval', text: 'Interval' }), interval),
      el('div', { class: 'field inline' }, el('label', { for: 'breakdown', text: 'Breakdown by' }), breakdown.node),
      el('button', { type: 'submit', class: 'primary', text: 'Run' }));
    const build = () => {
      const q = {
        kind: 'events', interval: interval.value,
        metrics: [...metrics.querySelectorAll('li')].map((li) => {
          const m = { event: li.querySelector('.m-event').value, agg: li.querySelector('.m-agg').value };
          const p = li.querySelector('.m-prop').value;
          if (p) m.prop = p;
          return m;
        }),
      };
      const bd = breakdown.read();
      if (bd) q.breakdown = bd;
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    run(initial || build());
  }, fail);
}

const name = (s) => `${s.agg}${s.prop ? '(' + s.prop + ')' : ''} of ${s.event === '$any' ? 'any event' : s.event}`;

function draw(out, q, r) {
  const rows = [];
  if (r.groups && r.groups.length) {
    for (const g of r.groups.slice(0, 10)) {
      const k = Object.values(g.key).map((v) => (v === null ? '(not set)' : v)).join(' · ');
      for (const s of g.series) rows.push({ label: `${name(s)} · ${k}`, s });
    }
  } else {
    for (const s of r.series) rows.push({ label: name(s), s });
  }
  const box = el('div', { class: 'chart', id: 'trends-chart' });
  const table = el('table', { id: 'trends-table' },
    el('thead', {}, el('tr', {}, el('th', { text: 'Series' }), el('th', { text: 'Total' }))),
    el('tbody', {}, rows.map(({ label, s }) => el('tr', {}, el('td', { text: label }), el('td', { class: 'num', text: fmt(s.total) })))));
  out.replaceChildren(box, table, queryPanel(q));
  const bars = r.buckets.length <= 2;
  chart(box).setOption({
    color: palette,
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 0 },
    grid: { left: 70, right: 20, top: 50, bottom: 30 },
    xAxis: { type: 'category', data: r.buckets },
    yAxis: { type: 'value' },
    series: rows.map(({ label, s }) => ({ name: label, type: bars ? 'bar' : 'line', symbol: r.buckets.length > 16 ? 'none' : 'circle', data: s.values })),
  });
}
