// Stickiness: how many users were active in exactly (or at least) k of
// the range's buckets, or for k buckets in a row.
import { eventNames } from './api.js';
import { el, fmt, select, chart, palette, queryPanel, queryFromHash, insight, eventSelect, table } from './ui.js';

const OPS = [['gte', 'at least'], ['eq', 'exactly'], ['lte', 'at most']];

export function render(root, params) {
  const { form, run, fail } = insight(root, 'stickiness', 'Stickiness', draw);
  eventNames().then((events) => {
    const fromUrl = queryFromHash(params);
    const q0 = fromUrl || {};
    const ev = eventSelect(events, q0.event?.event, { id: 'event', 'data-path': 'event' }, true);
    const interval = select(['hour', 'day', 'week', 'month'], q0.interval || 'day', { id: 'interval', 'data-path': 'interval' });
    const c = q0.criteria && typeof q0.criteria === 'object' ? q0.criteria : {};
    const op = select(OPS, c.op || 'gte', { id: 'criteria-op', 'data-path': 'criteria.op' });
    const n = el('input', { type: 'number', id: 'criteria-value', min: '1', value: String(c.value ?? 1), 'data-path': 'criteria.value' });
    const cumulative = el('input', { type: 'checkbox', id: 'cumulative', checked: q0.cumulative === true, 'data-path': 'cumulative' });
    const consecutive = el('input', { type: 'checkbox', id: 'consecutive', checked: q0.consecutive === true, 'data-path': 'consecutive' });
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'event', text: 'Users who did' }), ev, op, n, ' times',
        el('label', { for: 'interval', text: 'per' }), interval),
      el('div', { class: 'field inline' }, el('label', { class: 'check' }, cumulative, ' k or more buckets'),
        el('label', { class: 'check' }, consecutive, ' k buckets in a row')),
      el('button', { type: 'submit', class: 'primary', text: 'Run stickiness' }));
    const build = () => {
      const q = { kind: 'stickiness', event: { event: ev.value }, interval: interval.value };
      if (!(op.value === 'gte' && n.value === '1')) q.criteria = { op: op.value, value: n.value.trim() === '' ? null : Number(n.value) };
      if (cumulative.checked) q.cumulative = true;
      if (consecutive.checked) q.consecutive = true;
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    run(fromUrl || build());
  }, fail);
}

function draw(out, q, r) {
  const unit = q.interval || 'day';
  const how = q.consecutive ? 'in a row' : q.cumulative ? 'or more' : '';
  const labels = r.counts.map((_, i) => `${i + 1} ${unit}${i ? 's' : ''}${how ? ' ' + how : ''}`);
  const users = r.counts.reduce((a, b) => (q.cumulative ? Math.max(a, b) : a + b), 0);
  const box = el('div', { class: 'chart', id: 'stickiness-chart' });
  const t = table('stickiness-table', [`Active ${unit}s`, 'Users', 'Share'],
    r.counts.map((c, i) => [labels[i], [fmt(c), 'num'], [users ? ((100 * c) / users).toFixed(1) + '%' : '–', 'num']]));
  out.replaceChildren(el('p', { class: 'sub', id: 'stickiness-users', text: `${fmt(users)} users active at least once` }), box,
    el('details', { class: 'querypanel' }, el('summary', { text: 'Counts' }), t), queryPanel(q));
  chart(box).setOption({
    color: [palette[4]],
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    grid: { left: 60, right: 20, top: 30, bottom: 50 },
    xAxis: { type: 'category', data: labels, axisLabel: { rotate: labels.length > 12 ? 40 : 0 } },
    yAxis: { type: 'value', name: 'users' },
    series: [{ type: 'bar', data: r.counts, label: { show: r.counts.length <= 16, position: 'top', formatter: (p) => fmt(p.value) } }],
  });
}
