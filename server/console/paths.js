// Paths: where sessions go from an event (or to one, or from their
// start), as a Sankey diagram of the top labels per step.
import { eventNames, propNames } from './api.js';
import {
  el, fmt, select, chart, palette, queryPanel, queryFromHash, insight, eventSelect, propList, table,
} from './ui.js';

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

export function render(root, params) {
  const { form, run, fail } = insight(root, 'paths', 'Paths', draw);
  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const fromUrl = queryFromHash(params);
    const q0 = fromUrl || {};
    propList(props);
    const anchorOf = q0.end ? 'end' : q0.start ? 'start' : 'session';
    const anchor = select([['session', 'from the session start'], ['start', 'from the first'], ['end', 'up to the first']], anchorOf,
      { id: 'anchor', 'data-path': anchorOf === 'session' ? 'start' : anchorOf });
    const ev = eventSelect(events, (q0.start || q0.end || {}).event, { id: 'anchor-event' });
    const syncAnchor = () => {
      ev.hidden = anchor.value === 'session';
      anchor.dataset.path = anchor.value === 'end' ? 'end' : 'start';
      ev.dataset.path = anchor.dataset.path;
    };
    anchor.addEventListener('change', syncAnchor);
    syncAnchor();
    const steps = el('input', { type: 'number', id: 'steps', min: '2', max: '20', value: String(q0.steps ?? 5), 'data-path': 'steps' });
    const lab = q0.label && typeof q0.label === 'object' ? q0.label : {};
    const labelProp = el('input', { type: 'text', id: 'label-prop', list: 'fp-props', size: 12, placeholder: 'none', value: lab.prop || '', 'data-path': 'label.prop' });
    const labelEvents = el('input', { type: 'text', id: 'label-events', size: 20, placeholder: 'events, comma separated', 'data-path': 'label.events',
      value: Array.isArray(lab.events) ? lab.events.join(', ') : '', title: 'events named by that property instead of their name: ' + events.join(', ') });
    const count = select([['sessions', 'sessions'], ['users', 'users']], q0.count || 'sessions', { id: 'count', 'data-path': 'count' });
    const top = el('input', { type: 'number', id: 'top', min: '1', value: String(q0.top ?? 10), 'data-path': 'top' });
    const collapse = el('input', { type: 'checkbox', id: 'collapse', checked: q0.collapse_repeats !== false, 'data-path': 'collapse_repeats' });
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'anchor', text: 'Paths' }), anchor, ev,
        el('label', { for: 'steps', text: 'steps' }), steps),
      el('div', { class: 'field inline' }, el('label', { for: 'label-prop', text: 'Name events' }), labelEvents, ' by ', labelProp),
      el('div', { class: 'field inline' }, el('label', { for: 'count', text: 'Count' }), count,
        el('label', { for: 'top', text: 'top' }), top, ' per step',
        el('label', { class: 'check' }, collapse, ' merge repeats')),
      el('button', { type: 'submit', class: 'primary', text: 'Run paths' }));
    const build = () => {
      const q = { kind: 'paths' };
      if (anchor.value !== 'session') q[anchor.value] = { event: ev.value };
      q.steps = steps.value.trim() === '' ? null : Number(steps.value);
      if (labelProp.value.trim()) {
        q.label = { prop: labelProp.value.trim() };
        if (list(labelEvents.value).length) q.label.events = list(labelEvents.value);
      }
      q.count = count.value;
      q.top = top.value.trim() === '' ? null : Number(top.value);
      if (!collapse.checked) q.collapse_repeats = false;
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    run(fromUrl || build());
  }, fail);
}

// A node's name in the diagram: unique per step.
const nodeName = (step, label) => `${step}. ${label}`;

function draw(out, q, r) {
  // One colour per label, whatever its step.
  const colours = new Map();
  const colour = (label) => {
    if (!colours.has(label)) colours.set(label, label === '$other' ? '#9aa3b2' : palette[colours.size % palette.length]);
    return colours.get(label);
  };
  const steps = Math.max(0, ...r.nodes.map((n) => n.step));
  const perStep = Math.max(1, ...[...Array(steps).keys()].map((s) => r.nodes.filter((n) => n.step === s + 1).length));
  const box = el('div', { class: 'chart', id: 'paths-chart', style: `height: ${Math.max(360, perStep * 46)}px` });
  const unit = q.count === 'users' ? 'users' : 'sessions';
  const nodes = table('paths-nodes', ['Step', 'Label', unit, 'Ended here'],
    r.nodes.map((n) => [String(n.step), n.label, [fmt(n.count), 'num'], [fmt(n.dropoff), 'num']]));
  out.replaceChildren(
    el('p', { class: 'sub', id: 'paths-count', text: `${fmt(r.paths)} paths` }),
    box,
    el('details', { class: 'querypanel' }, el('summary', { text: `Every node (${r.nodes.length})` }), nodes),
    queryPanel(q));
  chart(box).setOption({
    color: palette,
    tooltip: {
      trigger: 'item',
      formatter: (p) => (p.dataType === 'edge'
        ? `${p.data.source} → ${p.data.target}: ${fmt(p.data.value)} ${unit}`
        : `${p.data.name}: ${fmt(p.data.value)} ${unit}, ${fmt(p.data.dropoff)} ended here`),
    },
    series: [{
      type: 'sankey',
      left: 10, right: 140, top: 10, bottom: 10,
      nodeAlign: 'left',
      layoutIterations: 0,
      emphasis: { focus: 'adjacency' },
      lineStyle: { color: 'gradient', opacity: 0.35 },
      label: { formatter: (p) => `${p.data.text}  ${fmt(p.data.value)}` },
      data: r.nodes.map((n) => ({
        name: nodeName(n.step, n.label), text: n.label, value: n.count, dropoff: n.dropoff, depth: n.step - 1, itemStyle: { color: colour(n.label) },
      })),
      links: r.links.map((l) => ({ source: nodeName(...l.from), target: nodeName(...l.to), value: l.count })),
    }],
  });
}
