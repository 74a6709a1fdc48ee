// Distribution: users by how often they did an event (or on how many
// days, or by a property's sum), in buckets by lower bound.
import { eventNames, propNames } from './api.js';
import { el, card, fmt, select, chart, palette, queryPanel, queryFromHash, insight } from './ui.js';

export function render(root, params) {
  const { form, run, fail } = insight(root, 'distribution', 'Distribution', draw);
  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const q0 = queryFromHash(params) || {};
    const event = select([['', '— pick an event —'], ...events], q0.event || '', { id: 'event', 'data-path': 'event' });
    const m0 = q0.measure && typeof q0.measure === 'object' ? 'sum:' + q0.measure.sum : q0.measure || 'count';
    const measure = select([['count', 'times done'], ['days', 'active days'], ...props.map((p) => ['sum:' + p, `sum of ${p}`])], m0,
      { id: 'measure', 'data-path': 'measure' });
    const buckets = el('input', { type: 'text', id: 'buckets', 'data-path': 'buckets', placeholder: 'default', size: 24,
      value: Array.isArray(q0.buckets) ? q0.buckets.join(', ') : '' });
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'event', text: 'Users by' }), measure, el('label', { for: 'event', text: 'of' }), event),
      el('div', { class: 'field inline' }, el('label', { for: 'buckets', text: 'Bucket lower bounds' }), buckets),
      el('button', { type: 'submit', class: 'primary', text: 'Run distribution' }));
    const build = () => {
      const q = { kind: 'distribution', event: event.value };
      q.measure = measure.value.startsWith('sum:') ? { sum: measure.value.slice(4) } : measure.value;
      const raw = buckets.value.trim();
      // A bound that is not a number goes to the server as typed: its
      // error then names the bad bound.
      if (raw) q.buckets = raw.split(/[\s,]+/).filter(Boolean).map((b) => (Number.isFinite(Number(b)) ? Number(b) : b));
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (q0.kind === 'distribution') run(q0);
  }, fail);
}

function label(b, integer) {
  if (b.to === null || b.to === undefined) return `${fmt(b.from)}+`;
  if (integer && Number.isInteger(b.from) && Number.isInteger(b.to)) {
    return b.to - b.from === 1 ? fmt(b.from) : `${fmt(b.from)}–${fmt(b.to - 1)}`;
  }
  return `${fmt(b.from)} to <${fmt(b.to)}`;
}

function draw(out, q, r) {
  const integer = typeof q.measure !== 'object';
  const stats = el('div', { class: 'stats', id: 'distribution-stats' },
    card('users', fmt(r.users)), card('below the first bound', fmt(r.below)), card('min', fmt(r.min)),
    card('median', fmt(r.median)), card('average', r.avg === null ? '–' : fmt(Math.round(r.avg * 100) / 100)), card('max', fmt(r.max)));
  const box = el('div', { class: 'chart', id: 'distribution-chart' });
  out.replaceChildren(stats, box, queryPanel(q));
  chart(box).setOption({
    color: [palette[4]],
    tooltip: {},
    grid: { left: 60, right: 20, top: 30, bottom: 30 },
    xAxis: { type: 'category', data: r.buckets.map((b) => label(b, integer)) },
    yAxis: { type: 'value', name: 'users' },
    series: [{ type: 'bar', data: r.buckets.map((b) => b.users), label: { show: true, position: 'top', formatter: (p) => fmt(p.value) } }],
  });
}
