// Attribution: conversions (and revenue) credited to channels or to the
// values of a touch property, under several models side by side.
import { eventNames, propNames } from './api.js';
import {
  el, card, fmt, select, chart, palette, queryPanel, queryFromHash, insight, eventSelect, propList, table,
} from './ui.js';

const MODELS = ['first', 'last', 'linear', 'position', 'time_decay', 'participation'];
const dec = (x) => (x === null || x === undefined ? '–' : (Math.round(x * 10) / 10).toLocaleString('en-US'));

export function render(root, params) {
  const { form, run, fail } = insight(root, 'attribution', 'Attribution', draw);
  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const q0 = queryFromHash(params) || {};
    propList(props);
    const conv = eventSelect(events, q0.conversion?.event, { id: 'conversion', 'data-path': 'conversion' });
    const value = el('input', { type: 'text', id: 'value_prop', list: 'fp-props', size: 12, placeholder: 'none', value: q0.value_prop || '', 'data-path': 'value_prop' });
    const touch = eventSelect(events, q0.touch?.event, { id: 'touch', 'data-path': 'touch' }, true);
    const byProp = q0.by && typeof q0.by.event_prop === 'string' ? q0.by.event_prop : '';
    const by = select([['channel', 'channel'], ['event_prop', 'event property']], byProp ? 'event_prop' : 'channel', { id: 'by', 'data-path': 'by' });
    const byInput = el('input', { type: 'text', id: 'by-prop', list: 'fp-props', size: 12, value: byProp, placeholder: 'utm_source', 'data-path': 'by.event_prop' });
    const syncBy = () => { byInput.hidden = by.value === 'channel'; };
    by.addEventListener('change', syncBy);
    syncBy();
    const lb = q0.lookback && typeof q0.lookback === 'object' ? q0.lookback : {};
    const lookback = el('input', { type: 'number', id: 'lookback', min: '1', value: String(lb.value ?? 30), 'data-path': 'lookback' });
    const on = new Set(Array.isArray(q0.models) ? q0.models : ['first', 'last', 'linear']);
    const models = el('div', { class: 'modes', id: 'models', 'data-path': 'models' }, MODELS.map((m) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', value: m, checked: on.has(m) }), ' ' + m.replace(/_/g, ' '))));
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'conversion', text: 'Conversion' }), conv,
        el('label', { for: 'value_prop', text: 'worth' }), value),
      el('div', { class: 'field inline' }, el('label', { for: 'touch', text: 'Touchpoints' }), touch,
        el('label', { for: 'by', text: 'by' }), by, byInput,
        el('label', { for: 'lookback', text: 'looking back' }), lookback, ' days'),
      el('div', { class: 'field' }, el('label', { text: 'Models' }), models),
      el('button', { type: 'submit', class: 'primary', text: 'Run attribution' }));
    const build = () => {
      const q = { kind: 'attribution', conversion: { event: conv.value } };
      if (value.value.trim()) q.value_prop = value.value.trim();
      q.touch = { event: touch.value };
      q.by = by.value === 'channel' ? { channel: true } : { event_prop: byInput.value.trim() };
      q.lookback = { value: lookback.value.trim() === '' ? null : Number(lookback.value), unit: 'day' };
      q.models = [...models.querySelectorAll('input:checked')].map((c) => c.value);
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (q0.kind === 'attribution') run(q0);
  }, fail);
}

function draw(out, q, r) {
  const models = Array.isArray(q.models) && q.models.length ? q.models : ['last'];
  const revenue = 'revenue' in r.total;
  const stats = el('div', { class: 'stats', id: 'attribution-stats' },
    card('conversions', fmt(r.total.conversions)), card('converting users', fmt(r.total.users)),
    revenue ? card('revenue', dec(r.total.revenue)) : null);
  const box = el('div', { class: 'chart', id: 'attribution-chart', style: `height: ${Math.max(320, 60 + r.rows.length * 34)}px` });
  const rows = r.rows.slice().reverse(); // the chart's y axis runs upwards
  const head = ['Value', ...models.map((m) => `${m} conversions`), ...(revenue ? models.map((m) => `${m} revenue`) : [])];
  const t = table('attribution-table', head, r.rows.map((x) => [x.value,
    ...models.map((m) => [dec(x[m]?.conversions), 'num']),
    ...(revenue ? models.map((m) => [dec(x[m]?.revenue), 'num']) : [])]));
  out.replaceChildren(stats, box, t, queryPanel(q));
  chart(box).setOption({
    color: palette,
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: dec },
    legend: { top: 0 },
    grid: { left: 130, right: 30, top: 40, bottom: 30 },
    xAxis: { type: 'value', name: 'conversions' },
    yAxis: { type: 'category', data: rows.map((x) => x.value) },
    series: models.map((m) => ({ name: m.replace(/_/g, ' '), type: 'bar', data: rows.map((x) => x[m]?.conversions ?? 0) })),
  });
}
