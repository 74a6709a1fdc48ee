// Funnel: steps picked from the schema, a window, exclusions, a breakdown;
// bars with conversion from the first step, and the conversion over time.
import { eventNames, propNames } from './api.js';
import {
  el, fmt, pct, duration, select, chart, palette, queryPanel, queryFromHash, insight, breakdownField, keyLabel,
} from './ui.js';

const UNITS = ['minute', 'hour', 'day', 'week'];
const TREND = ['hour', 'day', 'week', 'month'];
const MODES = ['strict_order', 'strict_deduplication', 'strict_increase', 'strict_once', 'allow_reentry'];

export function render(root, params) {
  const { form, run, fail } = insight(root, 'funnel', 'Funnel', draw);

  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const initial = queryFromHash(params);
    const steps = el('ol', { class: 'steps', 'data-path': 'steps' });
    const addStep = (name) => {
      const s = select([['', '— pick an event —'], ...events], name || '', { class: 'step-event' });
      const li = el('li', {}, s, el('button', {
        type: 'button', class: 'remove', title: 'Remove this step', text: '×',
        onclick: () => { li.remove(); renumber(); },
      }));
      steps.append(li);
      renumber();
    };
    const renumber = () => steps.querySelectorAll('li').forEach((li, i) => {
      li.querySelector('select').dataset.path = `steps[${i}]`;
    });
    const win = initial && initial.window && typeof initial.window === 'object' ? initial.window : { value: 7, unit: 'day' };
    const winValue = el('input', { type: 'number', min: '0', step: '1', value: String(win.value ?? ''), id: 'window-value', 'data-path': 'window.value' });
    const winUnit = select(UNITS, win.unit || 'day', { id: 'window-unit', 'data-path': 'window.unit' });
    const breakdown = breakdownField(initial, props);
    // Exclusions: an event between two steps (shown 1-based, sent 0-based).
    const excl = el('ol', { class: 'steps', id: 'exclusions', 'data-path': 'exclusions' });
    const renumberEx = () => excl.querySelectorAll('li').forEach((li, i) => { li.dataset.path = `exclusions[${i}]`; });
    const addExcl = (x = {}) => {
      const b = Array.isArray(x.between) ? x.between : [0, 1];
      const li = el('li', {},
        select([['', '— pick an event —'], ...events], x.event || '', { class: 'x-event' }),
        ' between step ', el('input', { type: 'number', class: 'x-from', min: '1', value: String((b[0] ?? 0) + 1) }),
        ' and step ', el('input', { type: 'number', class: 'x-to', min: '2', value: String((b[1] ?? 1) + 1) }),
        el('button', { type: 'button', class: 'remove', text: '×', title: 'Remove', onclick: () => { li.remove(); renumberEx(); } }));
      excl.append(li);
      renumberEx();
    };
    for (const x of (initial && Array.isArray(initial.exclusions) ? initial.exclusions : [])) addExcl(x);
    const t0 = initial && initial.trend && typeof initial.trend === 'object' ? initial.trend : null;
    const trendOn = el('input', { type: 'checkbox', id: 'trend', checked: !!t0 });
    const trendUnit = select(TREND, (t0 && t0.interval) || 'day', { id: 'trend-interval', 'data-path': 'trend' });
    for (const s of (initial && Array.isArray(initial.steps) ? initial.steps : [{}, {}])) addStep(s && s.event);
    const on = new Set(initial && Array.isArray(initial.mode) ? initial.mode : []);
    const modes = el('div', { class: 'modes', id: 'modes', 'data-path': 'mode' }, MODES.map((m) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', value: m, checked: on.has(m) }), ' ' + m.replace(/_/g, ' '))));

    form.append(
      el('div', { class: 'field' }, el('label', { text: 'Steps' }), steps,
        el('button', { type: 'button', id: 'add-step', text: '+ Add step', onclick: () => addStep('') })),
      el('div', { class: 'field inline' }, el('label', { for: 'window-value', text: 'Converted within' }), winValue, winUnit),
      el('div', { class: 'field' }, el('label', { text: 'Exclude users who did' }), excl,
        el('button', { type: 'button', id: 'add-exclusion', text: '+ Exclusion', onclick: () => addExcl() })),
      el('div', { class: 'field inline' }, el('label', { for: 'breakdown', text: 'Breakdown by' }), breakdown.node),
      el('div', { class: 'field inline' }, el('label', { class: 'check' }, trendOn, ' conversion over time, per'), trendUnit),
      el('div', { class: 'field' }, el('label', { text: 'Mode (ClickHouse windowFunnel)' }), modes),
      el('button', { type: 'submit', id: 'run', class: 'primary', text: 'Run funnel' }),
    );

    const build = () => {
      const q = {
        kind: 'funnel',
        steps: [...steps.querySelectorAll('select')].map((s) => ({ event: s.value })),
        window: { value: winValue.value.trim() === '' ? null : Number(winValue.value), unit: winUnit.value },
      };
      const mode = [...modes.querySelectorAll('input:checked')].map((c) => c.value);
      if (mode.length) q.mode = mode;
      const ex = [...excl.querySelectorAll('li')].map((li) => ({
        event: li.querySelector('.x-event').value,
        between: [Number(li.querySelector('.x-from').value) - 1, Number(li.querySelector('.x-to').value) - 1],
      }));
      if (ex.length) q.exclusions = ex;
      const bd = breakdown.read();
      if (bd) q.breakdown = bd;
      if (trendOn.checked) q.trend = { interval: trendUnit.value };
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (initial) run(initial);
  }, fail);
}

function draw(out, q, r) {
  const box = el('div', { class: 'chart', id: 'funnel-chart' });
  const labels = r.steps.map((s, i) => `${i + 1}. ${s.event}`);
  const groups = (r.groups || []).slice().sort((a, b) => (b.steps[0]?.users || 0) - (a.steps[0]?.users || 0)).slice(0, 8);
  const label = {
    show: true, position: 'top', color: '#333', lineHeight: 16,
    formatter: (p) => `${fmt(p.data.value)}\n${pct(p.data.conv)}`,
  };
  const series = [{
    name: 'all users', type: 'bar', barMaxWidth: 90,
    data: r.steps.map((s) => ({ value: s.users, conv: s.conversion_from_first })),
    label,
  }];
  for (const g of groups) {
    series.push({
      name: keyLabel(g.key), type: 'bar', barMaxWidth: 40,
      data: g.steps.map((s) => ({ value: s.users, conv: s.conversion_from_first })),
      label: groups.length <= 3 ? label : { show: false },
    });
  }
  const table = el('table', { id: 'funnel-table' },
    el('thead', {}, el('tr', {}, ['Step', 'Users', 'From previous', 'From first', 'Median time from first'].map((h) => el('th', { text: h })))),
    el('tbody', {}, r.steps.map((s, i) => el('tr', {},
      el('td', { text: labels[i] }), el('td', { class: 'num users', text: fmt(s.users) }),
      el('td', { class: 'num', text: pct(s.conversion_from_previous) }),
      el('td', { class: 'num conv', text: pct(s.conversion_from_first) }),
      el('td', { class: 'num', text: duration(s.median_ms_from_first) })))));
  const parts = [box, table];
  if (groups.length) {
    parts.push(el('h2', { text: `By ${Object.keys(groups[0].key).join(', ')} (largest ${groups.length} of ${r.groups.length})` }),
      el('table', { id: 'funnel-groups' },
        el('thead', {}, el('tr', {}, el('th', { text: 'Group' }), labels.map((l) => el('th', { text: l })), el('th', { text: 'Overall' }))),
        el('tbody', {}, groups.map((g) => el('tr', {}, el('td', { text: keyLabel(g.key) }),
          g.steps.map((s) => el('td', { class: 'num', text: fmt(s.users) })),
          el('td', { class: 'num', text: pct(g.steps[g.steps.length - 1]?.conversion_from_first) }))))));
  }
  let trendBox = null;
  if (Array.isArray(r.trend)) {
    trendBox = el('div', { class: 'chart', id: 'funnel-trend-chart' });
    parts.push(el('h2', { text: `Conversion from first to last step, per ${q.trend.interval} of entering the funnel` }), trendBox);
  }
  parts.push(queryPanel(q));
  out.replaceChildren(...parts);
  if (trendBox) {
    chart(trendBox).setOption({
      color: [palette[0], palette[7]],
      tooltip: { trigger: 'axis', valueFormatter: (v) => (typeof v === 'number' && v <= 1 ? pct(v) : fmt(v)) },
      legend: { top: 0 },
      grid: { left: 60, right: 70, top: 40, bottom: 30 },
      xAxis: { type: 'category', data: r.trend.map((t) => t.bucket) },
      yAxis: [{ type: 'value', min: 0, axisLabel: { formatter: (v) => pct(v) } }, { type: 'value', name: 'entered', splitLine: { show: false } }],
      series: [
        { name: 'conversion', type: 'line', data: r.trend.map((t) => t.conversion), label: { show: r.trend.length <= 16, formatter: (p) => pct(p.value) } },
        { name: 'users entering', type: 'bar', yAxisIndex: 1, data: r.trend.map((t) => t.steps[0]), itemStyle: { opacity: 0.25 } },
      ],
    });
  }
  chart(box).setOption({
    color: palette,
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: { show: groups.length > 0, top: 0 },
    grid: { left: 60, right: 20, top: groups.length ? 80 : 56, bottom: 30 },
    xAxis: { type: 'category', data: labels },
    yAxis: { type: 'value' },
    series,
  });
}

