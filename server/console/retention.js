// Retention: the cohort triangle as a heat map of percentages, with
// counts; with a breakdown, each group's retention curve.
import { eventNames, propNames } from './api.js';
import {
  el, fmt, select, chart, palette, queryPanel, queryFromHash, insight, breakdownField, keyLabel, table,
} from './ui.js';

export function render(root, params) {
  const { form, run, fail } = insight(root, 'retention', 'Retention', draw);

  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const q0 = queryFromHash(params) || {};
    const breakdown = breakdownField(q0, props);
    const start = select([['', '— pick an event —'], ...events], q0.start?.event || '', { id: 'start', 'data-path': 'start' });
    const ret = select([['', '— pick an event —'], ...events], q0.return?.event || '', { id: 'return', 'data-path': 'return' });
    const unit = select(['day', 'week', 'month'], q0.unit || 'week', { id: 'unit', 'data-path': 'unit' });
    const periods = el('input', { type: 'number', min: '1', value: String(q0.periods ?? 8), id: 'periods', 'data-path': 'periods' });
    const first = el('input', { type: 'checkbox', id: 'first_time', checked: q0.first_time !== false, 'data-path': 'first_time' });
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'start', text: 'Users who did' }), start,
        el('label', { for: 'return', text: 'and came back to' }), ret),
      el('div', { class: 'field inline' }, el('label', { for: 'unit', text: 'Per' }), unit,
        el('label', { for: 'periods', text: 'Periods' }), periods,
        el('label', { class: 'check' }, first, ' first time only')),
      el('div', { class: 'field inline' }, el('label', { for: 'breakdown', text: 'Breakdown by' }), breakdown.node),
      el('button', { type: 'submit', class: 'primary', text: 'Run retention' }));
    const build = () => {
      const q = {
        kind: 'retention', start: { event: start.value }, return: { event: ret.value }, unit: unit.value,
        periods: periods.value.trim() === '' ? null : Number(periods.value), first_time: first.checked,
      };
      const bd = breakdown.read();
      if (bd) q.breakdown = bd;
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (q0.kind === 'retention') run(q0);
  }, fail);
}

function draw(out, q, r) {
  const n = r.total.retained.length;
  const ks = [...Array(n).keys()].map((k) => `${q.unit} ${k}`);
  // The y axis draws upwards: reversed, the oldest cohort is on top.
  const cohorts = r.cohorts.slice().reverse();
  // A period that starts after the newest cohort's bucket may not have
  // happened yet: when the server counts 0 there, the cell is left blank
  // rather than drawn as a real 0% (the table keeps the server's counts).
  const newest = r.cohorts.length ? r.cohorts[r.cohorts.length - 1].cohort : '';
  const data = [];
  cohorts.forEach((c, y) => c.retained.forEach((v, x) => {
    if (v === 0 && after(c.cohort, x, q.unit, newest)) return;
    data.push([x, y, c.users ? Math.round((1000 * v) / c.users) / 10 : 0, v]);
  }));
  const box = el('div', { class: 'chart tall', id: 'retention-chart' });
  const counts = el('table', { id: 'retention-table' },
    el('thead', {}, el('tr', {}, el('th', { text: 'Cohort' }), el('th', { text: 'Users' }), ks.map((k) => el('th', { text: k })))),
    el('tbody', {},
      el('tr', { class: 'total' }, el('td', { text: 'total' }), el('td', { class: 'num', text: fmt(r.total.users) }),
        r.total.retained.map((v) => el('td', { class: 'num', text: fmt(v) }))),
      r.cohorts.map((c) => el('tr', {}, el('td', { text: c.cohort }), el('td', { class: 'num', text: fmt(c.users) }),
        c.retained.map((v) => el('td', { class: 'num', text: fmt(v) }))))));
  const note = el('p', { class: 'sub', text: 'Percent of each cohort that came back in period k; a blank cell starts after the newest cohort and has no returns counted yet.' });
  const parts = [box, note, counts];
  const groups = (r.groups || []).slice(0, 10);
  let gbox = null;
  if (groups.length) {
    const share = (g, k) => (g.total.users ? Math.round((1000 * g.total.retained[k]) / g.total.users) / 10 : null);
    gbox = el('div', { class: 'chart', id: 'retention-groups-chart' });
    parts.push(el('h2', { text: `By ${Object.keys(groups[0].key).join(', ')}: percent of all cohorts retained (largest ${groups.length} of ${r.groups.length})` }), gbox,
      table('retention-groups', ['Group', 'Users', ...ks], groups.map((g) => [keyLabel(g.key), [fmt(g.total.users), 'num'],
        ...g.total.retained.map((v, k) => [`${fmt(v)} (${share(g, k)}%)`, 'num'])])));
    out.replaceChildren(...parts, queryPanel(q));
    chart(gbox).setOption({
      color: palette,
      tooltip: { trigger: 'axis', valueFormatter: (v) => v + '%' },
      legend: { type: 'scroll', top: 0 },
      grid: { left: 50, right: 20, top: 40, bottom: 30 },
      xAxis: { type: 'category', data: ks },
      yAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } },
      series: groups.map((g) => ({ name: keyLabel(g.key), type: 'line', data: g.total.retained.map((_, k) => share(g, k)) })),
    });
  } else {
    out.replaceChildren(...parts, queryPanel(q));
  }
  chart(box).setOption({
    tooltip: { formatter: (p) => `${cohorts[p.data[1]].cohort}, ${ks[p.data[0]]}: ${p.data[2]}% (${fmt(p.data[3])} users)` },
    grid: { left: 100, right: 20, top: 10, bottom: 70 },
    xAxis: { type: 'category', data: ks, splitArea: { show: true } },
    yAxis: { type: 'category', data: cohorts.map((c) => `${c.cohort} (${fmt(c.users)})`), splitArea: { show: true } },
    visualMap: { dimension: 2, min: 0, max: 100, calculable: false, orient: 'horizontal', left: 'center', bottom: 0, inRange: { color: ['#f4f7fd', '#2f6fde'] }, text: ['100%', '0%'] },
    series: [{ type: 'heatmap', data, label: { show: true, formatter: (p) => p.data[2] + '%' } }],
  });
}

// Whether bucket `label` + k units starts after bucket `newest` (labels as
// the server writes them: YYYY-MM-DD for day and week, YYYY-MM for month).
function after(label, k, unit, newest) {
  if (unit === 'month') {
    const [y, m] = label.split('-').map(Number);
    const [ny, nm] = newest.split('-').map(Number);
    return (y * 12 + m - 1 + k) > (ny * 12 + nm - 1);
  }
  const day = unit === 'week' ? 7 : unit === 'day' ? 1 : 0;
  if (!day) return false;
  const t = Date.parse(label + 'T00:00:00Z') + k * day * 86400000;
  return t > Date.parse(newest + 'T00:00:00Z');
}
