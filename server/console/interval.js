// Interval: the time from one event to another, as quartiles and a
// histogram.
import { eventNames } from './api.js';
import { el, card, fmt, duration, select, chart, palette, queryPanel, queryFromHash, insight } from './ui.js';

const UNITS = ['second', 'minute', 'hour', 'day', 'week'];

export function render(root, params) {
  const { form, run, fail } = insight(root, 'interval', 'Interval', draw);
  eventNames().then((events) => {
    const q0 = queryFromHash(params) || {};
    const from = select([['', '— pick an event —'], ...events], q0.from?.event || '', { id: 'from', 'data-path': 'from' });
    const to = select([['', '— pick an event —'], ...events], q0.to?.event || '', { id: 'to', 'data-path': 'to' });
    const pairs = select([['each', 'every pair'], ['first', 'first time only']], q0.pairs || 'each', { id: 'pairs', 'data-path': 'pairs' });
    const w = q0.window && typeof q0.window === 'object' ? q0.window : {};
    const winValue = el('input', { type: 'number', min: '0', value: w.value === undefined ? '' : String(w.value), id: 'window-value', 'data-path': 'window.value', placeholder: 'any' });
    const winUnit = select(UNITS, w.unit || 'day', { id: 'window-unit', 'data-path': 'window.unit' });
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'from', text: 'From' }), from, el('label', { for: 'to', text: 'to' }), to),
      el('div', { class: 'field inline' }, el('label', { for: 'pairs', text: 'Pairs' }), pairs),
      el('div', { class: 'field inline' }, el('label', { for: 'window-value', text: 'At most' }), winValue, winUnit),
      el('button', { type: 'submit', class: 'primary', text: 'Run interval' }));
    const build = () => {
      const q = { kind: 'interval', from: { event: from.value }, to: { event: to.value }, pairs: pairs.value };
      if (winValue.value.trim() !== '') q.window = { value: Number(winValue.value), unit: winUnit.value };
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (q0.kind === 'interval') run(q0);
  }, fail);
}

function draw(out, q, r) {
  const stats = el('div', { class: 'stats', id: 'interval-stats' },
    card('pairs', fmt(r.count)), card('min', duration(r.min)), card('25th percentile', duration(r.p25)),
    card('median', duration(r.median)), card('75th percentile', duration(r.p75)), card('max', duration(r.max)),
    card('average', duration(r.avg)));
  const box = el('div', { class: 'chart', id: 'interval-chart' });
  const hist = r.histogram || [];
  out.replaceChildren(stats, box, queryPanel(q));
  chart(box).setOption({
    color: [palette[0]],
    tooltip: {},
    grid: { left: 60, right: 20, top: 30, bottom: 30 },
    xAxis: { type: 'category', data: hist.map((h) => `${duration(h.from)} – ${duration(h.to)}`) },
    yAxis: { type: 'value', name: 'pairs' },
    series: [{ type: 'bar', data: hist.map((h) => h.count), label: { show: true, position: 'top', formatter: (p) => fmt(p.value) } }],
  });
}
