// Funnel: steps picked from the schema, a window, a breakdown; bars with
// conversion from the first step.
import { eventNames, propNames } from './api.js';
import {
  el, fmt, pct, duration, select, chart, palette, queryPanel, queryFromHash, insight, breakdownSelect,
} from './ui.js';

const UNITS = ['minute', 'hour', 'day', 'week'];
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
    const breakdown = breakdownSelect(initial, props);
    for (const s of (initial && Array.isArray(initial.steps) ? initial.steps : [{}, {}])) addStep(s && s.event);
    const on = new Set(initial && Array.isArray(initial.mode) ? initial.mode : []);
    const modes = el('div', { class: 'modes', id: 'modes', 'data-path': 'mode' }, MODES.map((m) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', value: m, checked: on.has(m) }), ' ' + m.replace(/_/g, ' '))));

    form.append(
      el('div', { class: 'field' }, el('label', { text: 'Steps' }), steps,
        el('button', { type: 'button', id: 'add-step', text: '+ Add step', onclick: () => addStep('') })),
      el('div', { class: 'field inline' }, el('label', { for: 'window-value', text: 'Converted within' }), winValue, winUnit),
      el('div', { class: 'field inline' }, el('label', { for: 'breakdown', text: 'Breakdown by' }), breakdown),
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
      if (breakdown.value.trim()) q.breakdown = [{ event_prop: breakdown.value.trim() }];
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
  parts.push(queryPanel(q));
  out.replaceChildren(...parts);
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

const keyLabel = (k) => Object.values(k).map((v) => (v === null ? '(not set)' : String(v))).join(' · ');
